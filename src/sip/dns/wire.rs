//! One DNS query on the wire: a recursive query to the configured server over UDP, again
//! over TCP when the answer comes back truncated (RFC 1035 §4.2, RFC 7766). Messages are
//! written and read by `hickory-proto`; the sockets are ours, blocking with a timeout, used
//! on the resolver thread only (never the SIP I/O thread).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::procedure::{Kind, Lookup, Record, Records, ResolveError};

/// A DNS server and how to ask it.
pub struct Wire {
    /// Where queries go.
    pub server: SocketAddr,
    /// How long one try waits for its answer.
    pub timeout: Duration,
    /// Tries over UDP before giving up (each waits `timeout`).
    pub tries: u32,
    /// Seconds a negative answer is kept when the server sends no SOA, and the most it is
    /// kept whatever the SOA says (RFC 2308 §5).
    pub negative_ttl: u32,
    pub max_negative_ttl: u32,
    /// Query ids (16 random bits each: RFC 5452 against spoofed answers).
    pub random: Box<dyn FnMut() -> u64 + Send>,
}

impl Wire {
    /// The query message for `name` and `kind`, and its id.
    fn query(&mut self, name: &str, kind: Kind) -> Result<(u16, Vec<u8>), ResolveError> {
        let fqdn = Name::from_ascii(format!("{name}."))
            .map_err(|e| ResolveError::Failed(format!("'{name}' is no domain name: {e}")))?;
        let id = ((self.random)() & 0xffff) as u16;
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(fqdn, record_type(kind)));
        let bytes = m
            .to_vec()
            .map_err(|e| ResolveError::Failed(format!("cannot write a query for {name}: {e}")))?;
        Ok((id, bytes))
    }

    /// The answer over UDP, `None` when it was truncated.
    fn over_udp(&self, id: u16, query: &[u8]) -> Result<Option<Message>, ResolveError> {
        let any: SocketAddr = match self.server.ip() {
            IpAddr::V4(_) => "0.0.0.0:0".parse().expect("address"),
            IpAddr::V6(_) => "[::]:0".parse().expect("address"),
        };
        let failed = |e: std::io::Error| ResolveError::Failed(format!("{}: {e}", self.server));
        let socket = UdpSocket::bind(any).map_err(failed)?;
        socket.connect(self.server).map_err(failed)?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..self.tries.max(1) {
            socket.send(query).map_err(failed)?;
            let deadline = Instant::now() + self.timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(left)).map_err(failed)?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(failed(e)),
                };
                // Anything but the answer to our query (a late one, a forgery) is ignored.
                let Ok(answer) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if answer.id() != id || answer.message_type() != MessageType::Response {
                    continue;
                }
                return Ok((!answer.truncated()).then_some(answer));
            }
        }
        Err(ResolveError::Failed(format!(
            "no answer from {} ({} tries of {} ms)",
            self.server,
            self.tries.max(1),
            self.timeout.as_millis()
        )))
    }

    /// The answer over TCP (two length bytes before each message).
    fn over_tcp(&self, id: u16, query: &[u8]) -> Result<Message, ResolveError> {
        let failed =
            |e: std::io::Error| ResolveError::Failed(format!("{} (TCP): {e}", self.server));
        let mut stream = TcpStream::connect_timeout(&self.server, self.timeout).map_err(failed)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(failed)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(failed)?;
        let mut out = Vec::with_capacity(query.len() + 2);
        out.extend_from_slice(&(query.len() as u16).to_be_bytes());
        out.extend_from_slice(query);
        stream.write_all(&out).map_err(failed)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(failed)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).map_err(failed)?;
        let answer = Message::from_vec(&buf).map_err(|e| {
            ResolveError::Failed(format!("{}: unreadable answer: {e}", self.server))
        })?;
        if answer.id() != id {
            return Err(ResolveError::Failed(format!(
                "{}: an answer to another query",
                self.server
            )));
        }
        Ok(answer)
    }

    /// How long an empty answer is kept: its SOA's minimum (or the SOA record's own TTL if
    /// shorter, RFC 2308 §5), else the default; never more than the bound.
    fn negative(&self, answer: &Message) -> u32 {
        answer
            .name_servers()
            .iter()
            .find_map(|r| match r.data() {
                RData::SOA(soa) => Some(soa.minimum().min(r.ttl())),
                _ => None,
            })
            .unwrap_or(self.negative_ttl)
            .min(self.max_negative_ttl)
    }
}

fn record_type(kind: Kind) -> RecordType {
    match kind {
        Kind::Naptr => RecordType::NAPTR,
        Kind::Srv => RecordType::SRV,
        Kind::A => RecordType::A,
        Kind::Aaaa => RecordType::AAAA,
    }
}

/// A domain name as text, without the trailing dot.
fn name_text(name: &Name) -> String {
    let text = name.to_ascii();
    text.trim_end_matches('.').to_ascii_lowercase()
}

impl Lookup for Wire {
    fn lookup(&mut self, name: &str, kind: Kind) -> Result<Records, ResolveError> {
        let (id, query) = self.query(name, kind)?;
        let answer = match self.over_udp(id, &query)? {
            Some(answer) => answer,
            None => self.over_tcp(id, &query)?,
        };
        match answer.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => {
                return Ok(Records {
                    records: Vec::new(),
                    ttl: self.negative(&answer),
                })
            }
            code => {
                return Err(ResolveError::Failed(format!(
                    "{} answered {code} for {name} {kind:?}",
                    self.server
                )))
            }
        }
        // CNAMEs are followed by the recursive server: the records of the asked type are
        // taken whatever name they are under.
        let wanted = record_type(kind);
        let mut ttl = u32::MAX;
        let records: Vec<Record> = answer
            .answers()
            .iter()
            .filter(|r| r.record_type() == wanted)
            .filter_map(|r| {
                ttl = ttl.min(r.ttl());
                match r.data() {
                    RData::A(a) => Some(Record::Address(IpAddr::V4(a.0))),
                    RData::AAAA(a) => Some(Record::Address(IpAddr::V6(a.0))),
                    RData::SRV(srv) => Some(Record::Srv {
                        priority: srv.priority(),
                        weight: srv.weight(),
                        port: srv.port(),
                        target: name_text(srv.target()),
                    }),
                    RData::NAPTR(n) => Some(Record::Naptr {
                        order: n.order(),
                        preference: n.preference(),
                        flags: String::from_utf8_lossy(n.flags()).into_owned(),
                        service: String::from_utf8_lossy(n.services()).into_owned(),
                        replacement: name_text(n.replacement()),
                    }),
                    _ => None,
                }
            })
            .collect();
        if records.is_empty() {
            ttl = self.negative(&answer);
        }
        Ok(Records { records, ttl })
    }
}
