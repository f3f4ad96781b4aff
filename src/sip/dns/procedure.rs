//! RFC 3263's client procedure (§4.1 transport, §4.2 port and address), over any source of
//! records ([`Lookup`]: the DNS wire in the server, a table in the unit tests):
//!
//! * a numeric host needs no lookup: the transport named (else UDP, TLS for `sips:`) and the
//!   port named (else 5060, 5061 for TLS);
//! * a host name with a port: its A and AAAA records, on that port, over the transport named
//!   (else UDP, TLS for `sips:`);
//! * a transport without a port: the SRV records of `_sip._udp`, `_sip._tcp` or `_sips._tcp`
//!   (TLS) of the host, each target's addresses; none: A/AAAA on the default port;
//! * neither: the NAPTR records of the host whose flag is `s` and whose service is one we
//!   speak (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`; only the `SIPS` one for `sips:`), those of the
//!   lowest order among them only (RFC 3403 §4.1: a later order is not considered once one
//!   matched), by preference, each replacement's SRV records; no usable NAPTR: the SRV
//!   records of every transport we speak (UDP, TCP, TLS; TLS only for `sips:`), in that
//!   order; none of those either: A/AAAA on the default port, over UDP then TCP (TLS for
//!   `sips:`, the transport named if one is).
//!
//! sofia-sip's resolver (`sip-dig`) makes the same choices; `tests/sip_dns.rs` compares.
//!
//! The answer keeps the SRV sets apart (each is ordered on its own, by priority and weight,
//! every time it is used: [`Answer::hops`]) and the shortest TTL of every record it rests
//! on, negative answers included, which is how long it may be cached.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::destination::{default_port, Destination};
use super::srv_order::{order, Weighted};
use crate::sip::route::NextHop;
use crate::sip::transport::Proto;

/// Bounds on what one name may make us do: NAPTR records followed, SRV records per set,
/// addresses per target. A zone that lists more gets the first ones tried.
const MAX_NAPTR: usize = 8;
const MAX_SRV: usize = 16;
const MAX_ADDRESSES: usize = 8;

/// A record type the procedure asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// NAPTR (RFC 3403).
    Naptr,
    /// SRV (RFC 2782).
    Srv,
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
}

/// One record of an answer, as far as the procedure reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// NAPTR: `order`, `preference`, `flags`, `service`, `replacement` (a name; no regexp
    /// rewriting, which RFC 3263 does not use).
    Naptr {
        order: u16,
        preference: u16,
        flags: String,
        service: String,
        replacement: String,
    },
    /// SRV: `priority`, `weight`, `port`, `target`.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    /// An A or AAAA record.
    Address(IpAddr),
}

/// The records of one name and type, with how long they may be kept: the shortest TTL of
/// the records, or for an empty answer (no such name, no such record) its negative TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    pub records: Vec<Record>,
    pub ttl: u32,
}

/// Where records come from.
pub trait Lookup {
    /// The records of `name` of type `kind`; empty when there are none (not an error).
    fn lookup(&mut self, name: &str, kind: Kind) -> Result<Records, ResolveError>;
}

/// Why a destination has no next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The DNS has no address for it (no such name, or no records leading to an address).
    NotFound(String),
    /// The DNS server failed, refused, or did not answer in time.
    Failed(String),
    /// Too many requests already wait for names being resolved.
    QueueFull,
    /// The resolver is stopped.
    Stopped,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotFound(name) => write!(f, "DNS: no address for {name}"),
            ResolveError::Failed(why) => write!(f, "DNS: {why}"),
            ResolveError::QueueFull => f.write_str("DNS: too many lookups waiting"),
            ResolveError::Stopped => f.write_str("DNS: resolver stopped"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// One server of an SRV set (or the one server of an A/AAAA answer).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    priority: u16,
    weight: u16,
    proto: Proto,
    port: u16,
    addrs: Vec<IpAddr>,
}

impl Weighted for Server {
    fn priority(&self) -> u16 {
        self.priority
    }
    fn weight(&self) -> u16 {
        self.weight
    }
}

/// What a destination resolved to (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SRV sets, in NAPTR order; each ordered by priority and weight when used.
    sets: Vec<Vec<Server>>,
    /// Seconds the answer may be kept: the shortest TTL it rests on.
    ttl: u32,
}

impl Answer {
    /// The answer of a numeric host: one hop, kept forever.
    pub fn single(hop: NextHop) -> Answer {
        Answer {
            sets: vec![vec![Server {
                priority: 0,
                weight: 0,
                proto: hop.proto,
                port: hop.addr.port(),
                addrs: vec![hop.addr.ip()],
            }]],
            ttl: u32::MAX,
        }
    }

    /// Whether it has no hop at all (a negative answer).
    pub fn is_empty(&self) -> bool {
        self.sets
            .iter()
            .all(|s| s.iter().all(|srv| srv.addrs.is_empty()))
    }

    /// Seconds it may be kept.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The hops to try, in order: each SRV set ordered by RFC 2782 with `random`, each
    /// server's addresses in the order of its records.
    pub fn hops(&self, random: &mut dyn FnMut() -> u64) -> Vec<NextHop> {
        let mut out = Vec::new();
        for set in &self.sets {
            let ordered;
            let servers: &[Server] = if set.len() == 1 {
                set
            } else {
                ordered = order(set, random);
                &ordered
            };
            for s in servers {
                out.extend(s.addrs.iter().map(|ip| NextHop {
                    proto: s.proto,
                    addr: SocketAddr::new(*ip, s.port),
                }));
            }
        }
        out
    }
}

/// The transport a NAPTR service names, among those we speak (RFC 3263 §4.1, RFC 7118 for
/// the WebSocket ones, which a server does not dial).
fn naptr_transport(service: &str) -> Option<Proto> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Proto::Udp),
        "SIP+D2T" => Some(Proto::Tcp),
        "SIPS+D2T" => Some(Proto::Tls),
        _ => None,
    }
}

/// The SRV name of `proto` at `host` (RFC 3263 §4.1).
fn srv_name(proto: Proto, host: &str) -> String {
    match proto {
        Proto::Tls => format!("_sips._tcp.{host}"),
        Proto::Tcp => format!("_sip._tcp.{host}"),
        _ => format!("_sip._udp.{host}"),
    }
}

/// The procedure's state: the lookup and the shortest TTL seen.
struct Run<'a> {
    lookup: &'a mut dyn Lookup,
    ttl: u32,
}

impl Run<'_> {
    fn records(&mut self, name: &str, kind: Kind) -> Result<Vec<Record>, ResolveError> {
        let r = self.lookup.lookup(name, kind)?;
        self.ttl = self.ttl.min(r.ttl);
        Ok(r.records)
    }

    /// The A then AAAA addresses of `name`.
    fn addresses(&mut self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let mut addrs = Vec::new();
        for kind in [Kind::A, Kind::Aaaa] {
            for r in self.records(name, kind)? {
                if let Record::Address(ip) = r {
                    if addrs.len() < MAX_ADDRESSES && !addrs.contains(&ip) {
                        addrs.push(ip);
                    }
                }
            }
        }
        Ok(addrs)
    }

    /// The servers of the SRV records of `name`, each with its addresses (targets without
    /// any, and the "service not offered here" target `.`, left out).
    fn srv_set(&mut self, proto: Proto, name: &str) -> Result<Vec<Server>, ResolveError> {
        let mut set = Vec::new();
        for r in self.records(name, Kind::Srv)?.into_iter().take(MAX_SRV) {
            let Record::Srv {
                priority,
                weight,
                port,
                target,
            } = r
            else {
                continue;
            };
            let target = target.trim_end_matches('.');
            if target.is_empty() {
                continue;
            }
            let addrs = self.addresses(target)?;
            if !addrs.is_empty() {
                set.push(Server {
                    priority,
                    weight,
                    proto,
                    port,
                    addrs,
                });
            }
        }
        Ok(set)
    }
}

/// Runs the procedure for `dest` (see the module documentation). An empty answer (nothing
/// found) is `Ok`, to be cached as negative; `Err` is a failure of the DNS itself.
pub fn resolve(dest: &Destination, lookup: &mut dyn Lookup) -> Result<Answer, ResolveError> {
    if let Some(hop) = dest.numeric() {
        return Ok(Answer::single(hop));
    }
    let mut run = Run {
        lookup,
        ttl: u32::MAX,
    };
    let host = dest.host.as_str();
    let proto = dest.default_proto();
    let mut sets = Vec::new();
    if let Some(port) = dest.port {
        // §4.2: an explicit port: no SRV.
        sets.push(vec![Server {
            priority: 0,
            weight: 0,
            proto,
            port,
            addrs: run.addresses(host)?,
        }]);
    } else if dest.proto.is_some() {
        // §4.1: an explicit transport: no NAPTR.
        sets.push(run.srv_set(proto, &srv_name(proto, host))?);
    } else {
        let mut naptrs: Vec<(u16, u16, Proto, String)> = run
            .records(host, Kind::Naptr)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Naptr {
                    order,
                    preference,
                    flags,
                    service,
                    replacement,
                } if flags.eq_ignore_ascii_case("s") => {
                    let p = naptr_transport(&service)?;
                    (!dest.secure || p == Proto::Tls).then_some((order, preference, p, replacement))
                }
                _ => None,
            })
            .collect();
        naptrs.sort_by_key(|n| (n.0, n.1));
        let first_order = naptrs.first().map(|n| n.0);
        naptrs.retain(|n| Some(n.0) == first_order);
        for (_, _, p, replacement) in naptrs.into_iter().take(MAX_NAPTR) {
            let set = run.srv_set(p, replacement.trim_end_matches('.'))?;
            if !set.is_empty() {
                sets.push(set);
            }
        }
        if sets.is_empty() {
            // §4.1: no usable NAPTR: the SRV records of each transport we speak.
            let protos: &[Proto] = if dest.secure {
                &[Proto::Tls]
            } else {
                &[Proto::Udp, Proto::Tcp, Proto::Tls]
            };
            for &p in protos {
                let set = run.srv_set(p, &srv_name(p, host))?;
                if !set.is_empty() {
                    sets.push(set);
                }
            }
        }
    }
    sets.retain(|s| s.iter().any(|srv| !srv.addrs.is_empty()));
    if sets.is_empty() && dest.port.is_none() {
        // §4.2: no SRV records: the host's addresses on the default port; UDP, then TCP
        // when no transport was asked for (§4.1: both are mandatory to implement).
        let addrs = run.addresses(host)?;
        if !addrs.is_empty() {
            let protos: &[Proto] = if dest.proto.is_none() && !dest.secure {
                &[Proto::Udp, Proto::Tcp]
            } else {
                std::slice::from_ref(&proto)
            };
            for &p in protos {
                sets.push(vec![Server {
                    priority: 0,
                    weight: 0,
                    proto: p,
                    port: default_port(p),
                    addrs: addrs.clone(),
                }]);
            }
        }
    }
    Ok(Answer { sets, ttl: run.ttl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Records from a table; counts the lookups.
    #[derive(Default)]
    struct Table {
        records: HashMap<(String, Kind), Vec<Record>>,
        asked: Vec<(String, Kind)>,
    }

    impl Table {
        fn add(&mut self, name: &str, kind: Kind, r: Record) -> &mut Self {
            self.records
                .entry((name.to_string(), kind))
                .or_default()
                .push(r);
            self
        }
        fn srv(
            &mut self,
            name: &str,
            priority: u16,
            weight: u16,
            port: u16,
            target: &str,
        ) -> &mut Self {
            self.add(
                name,
                Kind::Srv,
                Record::Srv {
                    priority,
                    weight,
                    port,
                    target: target.into(),
                },
            )
        }
        fn a(&mut self, name: &str, ip: &str) -> &mut Self {
            self.add(name, Kind::A, Record::Address(ip.parse().unwrap()))
        }
        fn naptr(&mut self, host: &str, order: u16, service: &str, replacement: &str) -> &mut Self {
            self.add(
                host,
                Kind::Naptr,
                Record::Naptr {
                    order,
                    preference: 10,
                    flags: "s".into(),
                    service: service.into(),
                    replacement: replacement.into(),
                },
            )
        }
    }

    impl Lookup for Table {
        fn lookup(&mut self, name: &str, kind: Kind) -> Result<Records, ResolveError> {
            self.asked.push((name.to_string(), kind));
            let records = self
                .records
                .get(&(name.to_string(), kind))
                .cloned()
                .unwrap_or_default();
            let ttl = if records.is_empty() { 30 } else { 60 };
            Ok(Records { records, ttl })
        }
    }

    fn hops(dest: &str, table: &mut Table) -> Vec<String> {
        let answer = resolve(&Destination::parse(dest).unwrap(), table).unwrap();
        answer
            .hops(&mut || 0)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn naptr_then_srv_then_addresses() {
        let mut t = Table::default();
        t.naptr("far.test", 20, "SIP+D2U", "_sip._udp.far.test")
            .naptr("far.test", 10, "SIP+D2T", "_sip._tcp.far.test")
            .naptr("far.test", 5, "X-FOO", "_foo.far.test")
            .srv("_sip._tcp.far.test", 10, 0, 5070, "b.far.test")
            .srv("_sip._tcp.far.test", 5, 0, 5071, "a.far.test")
            .srv("_sip._udp.far.test", 1, 0, 5072, "a.far.test")
            .a("a.far.test", "192.0.2.1")
            .a("b.far.test", "192.0.2.2");
        // Order 10 (TCP) only: the UDP record's order 20 is not considered.
        assert_eq!(
            hops("far.test", &mut t),
            ["tcp:192.0.2.1:5071", "tcp:192.0.2.2:5070"]
        );
        // sips: only SIPS+D2T; none here, nor _sips._tcp: A of the host, which has none.
        let answer = resolve(&Destination::parse("tls:far.test").unwrap(), &mut t).unwrap();
        assert!(answer.is_empty());
        assert_eq!(
            answer.ttl(),
            30,
            "negative answers are kept as long as they say"
        );
    }

    #[test]
    fn explicit_port_or_transport_skips_lookups() {
        let mut t = Table::default();
        t.naptr("far.test", 10, "SIP+D2T", "_sip._tcp.far.test")
            .srv("_sip._udp.far.test", 1, 0, 5072, "a.far.test")
            .a("far.test", "192.0.2.9")
            .a("a.far.test", "192.0.2.1");
        assert_eq!(hops("far.test:5080", &mut t), ["udp:192.0.2.9:5080"]);
        assert!(t
            .asked
            .iter()
            .all(|(_, k)| matches!(k, Kind::A | Kind::Aaaa)));
        t.asked.clear();
        assert_eq!(hops("udp:far.test", &mut t), ["udp:192.0.2.1:5072"]);
        assert!(!t.asked.iter().any(|(_, k)| *k == Kind::Naptr));
        // No SRV for TCP: the host's address on 5060.
        assert_eq!(hops("tcp:far.test", &mut t), ["tcp:192.0.2.9:5060"]);
        t.asked.clear();
        assert_eq!(hops("192.0.2.7", &mut t), ["udp:192.0.2.7:5060"]);
        assert!(t.asked.is_empty());
    }

    #[test]
    fn without_naptr_every_transport_srv() {
        let mut t = Table::default();
        t.srv("_sip._tcp.far.test", 1, 0, 5070, "a.far.test")
            .srv("_sips._tcp.far.test", 1, 0, 5071, "a.far.test")
            .a("a.far.test", "192.0.2.1");
        assert_eq!(
            hops("far.test", &mut t),
            ["tcp:192.0.2.1:5070", "tls:192.0.2.1:5071"]
        );
    }
}
