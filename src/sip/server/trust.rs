//! Trust between domains (DESIGN §5a): who may speak for an identity of a domain the server
//! does not own. Digest authentication covers the owned domains' users only (the directory
//! holds no one else); a request whose From names another domain is believed only from a
//! peer that speaks for that domain:
//!
//! * a mutual-TLS connection whose certificate names the domain (a DNS subjectAltName,
//!   RFC 5922 §7.2), verified during the handshake, or
//! * a source address the operator lists for the domain ([`TrustedPeer`]), or one of the
//!   A/AAAA addresses of a host name listed for it (`--peer b.test=sip.b.test`).
//!
//! What such an identity may ask for at all, and where each is decided:
//!
//! | request | foreign identity |
//! | --- | --- |
//! | SUBSCRIBE (to an owned presentity), MESSAGE (to an owned user) | from a trusted peer ([`Federation::Open`]: from anyone) |
//! | PUBLISH | never as itself; a [`TrustedPublisher`] address may publish for the users of its domain |
//! | REGISTER | never |
//! | NOTIFY | only inside a back-end subscription this server opened (the back-end subscriptions match it to the dialog: its Call-ID and tag are this server's own unguessable tokens), never through here |
//! | relayed to another domain (the forwarder) | from a trusted peer only, whatever the federation mode, or inside a dialog the forwarder record-routed |
//! | MESSAGE for an account (the user-agent role) | from the account's registrar or outbound proxy, or a trusted peer of the account's domain |
//!
//! An identity without a domain (a `tel:` From) has no peer to vouch for it: it is believed
//! only in open federation.
//!
//! Responses need no such check: they are matched to this server's own client transactions
//! by the branch it chose.
//!
//! # Peers by name
//!
//! A peer given by host name is resolved when the configuration is taken (the server
//! starting, a reload: threads that may wait; a name that does not resolve refuses the
//! configuration, saying which), through the server's resolver ([`crate::sip::dns`]: its
//! A/AAAA records, as for a destination with a port). From then on each request that needs
//! it takes the resolver's cached answer, in place: an expired one while it is refreshed,
//! so the addresses follow the records once their TTL ends. An answer gone from the cache
//! is looked up in the background while the addresses found last are used. Every address
//! counts, also one that failed to answer a request of ours (who a server is does not change
//! with its health). Peers by name are not exempt from the rate limit (their addresses are
//! not known when the limiter is made); peers by address are.
//!
//! A telephony system speaks for its users in one more way: a [`TrustedPublisher`] (a PBX by
//! its address, or a privileged account authenticated by digest) may PUBLISH `presence`,
//! `dialog` and `message-summary` state for any user of its domain (busy lamps, message
//! waiting lamps), which otherwise only the user itself may.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::key::presentity_key;
use crate::model::package::Package;
use crate::sip::dns::{Destination, Resolver};
use crate::sip::live::Live;
use crate::sip::message::SipMessage;
use crate::sip::stack::{lock, Peer, Request};
use crate::uri::Uri;

/// A block of IP addresses: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`;
/// a single address is `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// The block of `addr` with `prefix` leading bits (at most 32 for IPv4, 128 for IPv6). An
    /// IPv4-mapped IPv6 block is taken as the IPv4 block it maps.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Network> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::InvalidArgument(format!(
                "{addr}/{prefix}: the prefix length is at most {max}"
            )));
        }
        Ok(match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Network {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Network { addr, prefix },
            },
            _ => Network { addr, prefix },
        })
    }

    /// Reads `ADDR` or `ADDR/PREFIX` (IPv4 or IPv6, an IPv6 address bare or in brackets).
    pub fn parse(text: &str) -> Result<Network> {
        let bad = |why: &str| Error::InvalidArgument(format!("'{text}': {why}"));
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("expected an IP address, ADDR or ADDR/PREFIX"))?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| bad("the prefix length is not a number"))?,
        };
        Network::new(addr, prefix)
    }

    /// The block's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The block's prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(net) ^ u32::from(ip)) & mask == 0
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(net) ^ u128::from(ip)) & mask == 0
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Network> {
        Network::parse(s)
    }
}

/// Where a trusted peer's requests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// A block of addresses.
    Network(Network),
    /// The A/AAAA addresses of a host name (lower case), as resolved now (see "Peers by
    /// name" in the module documentation).
    Host(String),
}

impl PeerSource {
    /// The block of addresses, for a peer listed by address.
    pub fn network(&self) -> Option<Network> {
        match self {
            PeerSource::Network(n) => Some(*n),
            PeerSource::Host(_) => None,
        }
    }
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSource::Network(n) => n.fmt(f),
            PeerSource::Host(h) => f.write_str(h),
        }
    }
}

/// A peer the operator trusts to speak for the users of another domain by its address: a
/// request whose From names `domain` is believed when it comes from `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPeer {
    /// The domain (lower case).
    pub domain: String,
    /// Where its server's requests come from.
    pub source: PeerSource,
}

impl TrustedPeer {
    /// A peer for `domain` at the addresses of `network`.
    pub fn network(domain: &str, network: Network) -> TrustedPeer {
        TrustedPeer {
            domain: domain.to_ascii_lowercase(),
            source: PeerSource::Network(network),
        }
    }

    /// Reads `DOMAIN=ADDR[/PREFIX]` (`b.test=192.0.2.10`, `b.test=2001:db8::/64`) or
    /// `DOMAIN=HOST` (`b.test=sip.b.test`: a name with a dot, resolved).
    pub fn parse(text: &str) -> Result<TrustedPeer> {
        let (domain, network) = text.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "peer '{text}': expected DOMAIN=ADDR[/PREFIX] or DOMAIN=HOST"
            ))
        })?;
        let domain = domain.trim();
        if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '*') {
            return Err(Error::InvalidArgument(format!(
                "peer '{text}': '{domain}' is not a domain"
            )));
        }
        let source = match Network::parse(network) {
            Ok(n) => PeerSource::Network(n),
            Err(_) if host_name(network.trim()) => {
                PeerSource::Host(network.trim().trim_end_matches('.').to_ascii_lowercase())
            }
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "peer {} (nor a host name with a dot)",
                    strip_kind(&e)
                )))
            }
        };
        Ok(TrustedPeer {
            domain: domain.to_ascii_lowercase(),
            source,
        })
    }
}

/// Whether `text` is a host name: labels of letters, digits and `-`, at least two, not all
/// digits (that would be a malformed address).
fn host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !text.chars().all(|c| c.is_ascii_digit() || c == '.')
}

impl fmt::Display for TrustedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.domain, self.source)
    }
}

/// Whom requests claiming an identity of another domain are believed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Federation {
    /// Only from a trusted peer of that domain: a mutual-TLS certificate naming it, or an
    /// address listed for it ([`TrustedPeer`]). The default.
    #[default]
    Trusted,
    /// From anyone, as SIP servers without peering did: any SUBSCRIBE or MESSAGE "from" any
    /// foreign user is believed. Relaying to other domains stays for trusted peers.
    Open,
}

impl Federation {
    /// `trusted` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Federation::Trusted => "trusted",
            Federation::Open => "open",
        }
    }
}

impl FromStr for Federation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Federation> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trusted" => Ok(Federation::Trusted),
            "open" => Ok(Federation::Open),
            other => Err(Error::InvalidArgument(format!(
                "federation '{other}': trusted or open"
            ))),
        }
    }
}

impl fmt::Display for Federation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a [`TrustedPublisher`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublisherId {
    /// Requests from these addresses (a PBX); no digest is asked of them.
    Network(Network),
    /// A user of an owned domain, authenticated by digest (a voicemail system's account).
    Account(Uri),
}

/// A telephony system that publishes for the users of `domain` (an owned domain):
/// `presence`, `dialog` and `message-summary` state of any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPublisher {
    /// Who publishes.
    pub id: PublisherId,
    /// For whose users (lower case).
    pub domain: String,
}

impl TrustedPublisher {
    /// Reads `ADDR[/PREFIX]=DOMAIN` (`192.0.2.20=a.test`) or `ACCOUNT=DOMAIN`
    /// (`sip:voicemail@a.test=a.test`).
    pub fn parse(text: &str) -> Result<TrustedPublisher> {
        let bad = |why: String| Error::InvalidArgument(format!("publisher '{text}': {why}"));
        let (who, domain) = text
            .rsplit_once('=')
            .ok_or_else(|| bad("expected ADDR[/PREFIX]=DOMAIN or ACCOUNT=DOMAIN".into()))?;
        let (who, domain) = (who.trim(), domain.trim());
        if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '*') {
            return Err(bad(format!("'{domain}' is not a domain")));
        }
        let uri_like = who.starts_with("sip:") || who.starts_with("sips:");
        let id = if !uri_like
            && (who.contains(':') || who.contains('/') || who.parse::<IpAddr>().is_ok())
        {
            PublisherId::Network(Network::parse(who).map_err(|e| bad(strip_kind(&e)))?)
        } else {
            let uri = Uri::parse(who).map_err(|e| bad(e.to_string()))?;
            if uri.user().is_none() {
                return Err(bad(format!("{who} is neither an address nor user@domain")));
            }
            PublisherId::Account(uri)
        };
        Ok(TrustedPublisher {
            id,
            domain: domain.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for TrustedPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            PublisherId::Network(n) => write!(f, "{n}={}", self.domain),
            PublisherId::Account(u) => write!(f, "{u}={}", self.domain),
        }
    }
}

/// An error's message without the kind's prefix ("invalid argument: ").
fn strip_kind(e: &Error) -> String {
    match e {
        Error::InvalidArgument(m) => m.clone(),
        e => e.to_string(),
    }
}

/// What the server is set up to trust (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustConfig {
    pub(crate) peers: Vec<TrustedPeer>,
    pub(crate) federation: Federation,
    pub(crate) publishers: Vec<TrustedPublisher>,
}

/// The trust decisions: see the module documentation. Shared by the roles, made by the node.
pub(crate) struct Trust {
    /// The owned domains (none: every domain is owned).
    domains: Vec<String>,
    /// Replaced whole by a reload ([`Trust::replace`]).
    config: Live<TrustConfig>,
    /// How peers by name are resolved (`None`: they are refused).
    names: Option<PeerNames>,
}

/// The resolver peers by name are looked up with, how long a configuration may wait for
/// it, and each name's addresses found last.
struct PeerNames {
    resolver: Arc<Resolver>,
    wait: Duration,
    last: Mutex<HashMap<String, Vec<IpAddr>>>,
}

/// What a peer's host name is looked up as: its A/AAAA records (a port given: no NAPTR, no
/// SRV, RFC 3263 §4.2).
fn peer_destination(host: &str) -> Destination {
    Destination {
        host: host.to_string(),
        port: Some(5060),
        proto: Some(crate::sip::transport::Proto::Udp),
        secure: false,
    }
}

impl Trust {
    /// Checks `config` against the owned `domains`: a peer for an owned domain, or a publisher
    /// for a domain (or an account of a domain) not owned, is a mistake. A peer by name is
    /// refused (see [`Trust::resolving`]).
    #[cfg(test)]
    pub(crate) fn new(domains: Vec<String>, config: TrustConfig) -> Result<Trust> {
        Trust::make(domains, config, None)
    }

    /// As [`Trust::new`], peers by name resolved through `resolver`, which a configuration
    /// waits at most `wait` for each (see "Peers by name" in the module documentation).
    pub(crate) fn resolving(
        domains: Vec<String>,
        config: TrustConfig,
        resolver: Arc<Resolver>,
        wait: Duration,
    ) -> Result<Trust> {
        let names = PeerNames {
            resolver,
            wait,
            last: Mutex::default(),
        };
        Trust::make(domains, config, Some(names))
    }

    fn make(domains: Vec<String>, config: TrustConfig, names: Option<PeerNames>) -> Result<Trust> {
        let trust = Trust {
            domains,
            config: Live::new(TrustConfig::default()),
            names,
        };
        trust.replace(config)?;
        Ok(trust)
    }

    /// Trusts what `config` says from now on, once it is checked as [`Trust::new`] checks
    /// it and its peers by name are resolved (waiting); refused, the trust stays as it was.
    pub(crate) fn replace(&self, config: TrustConfig) -> Result<()> {
        let trust = self;
        for peer in &config.peers {
            if !trust.domains.is_empty() && trust.owns(&peer.domain) {
                return Err(Error::InvalidArgument(format!(
                    "peer {peer}: {} is a domain of this server (its users authenticate)",
                    peer.domain
                )));
            }
        }
        let mut found = HashMap::new();
        for peer in &config.peers {
            let PeerSource::Host(host) = &peer.source else {
                continue;
            };
            let Some(names) = &self.names else {
                return Err(Error::InvalidArgument(format!(
                    "peer {peer}: a peer by name needs the server's resolver"
                )));
            };
            let hops = names
                .resolver
                .resolve_wait(&peer_destination(host), names.wait)
                .map_err(|why| Error::Network(format!("peer {peer}: {host}: {why}")))?;
            found.insert(host.clone(), hops.iter().map(|h| h.addr.ip()).collect());
        }
        for p in &config.publishers {
            if !trust.owns(&p.domain) {
                return Err(Error::InvalidArgument(format!(
                    "publisher {p}: {} is not a domain of this server",
                    p.domain
                )));
            }
            if let PublisherId::Account(a) = &p.id {
                if !trust.owns(a.host()) {
                    return Err(Error::InvalidArgument(format!(
                        "publisher {p}: {a} is not a user of this server"
                    )));
                }
            }
        }
        if let Some(names) = &self.names {
            lock(&names.last).extend(found);
        }
        self.config.set(config);
        Ok(())
    }

    /// The addresses of the peer named `host` now (see "Peers by name" in the module
    /// documentation).
    fn addresses_of(&self, host: &str) -> Vec<IpAddr> {
        let Some(names) = &self.names else {
            return Vec::new();
        };
        let dest = peer_destination(host);
        match names.resolver.cached_addresses(&dest) {
            Some(Ok(ips)) => {
                let mut last = lock(&names.last);
                if last.get(host) != Some(&ips) {
                    last.insert(host.to_string(), ips.clone());
                }
                ips
            }
            // Gone from the cache (or failing): looked up again in the background (the answer
            // lands in the cache); the addresses found last meanwhile.
            _ => {
                let _ = names.resolver.resolve(&dest, Box::new(|_| {}));
                lock(&names.last).get(host).cloned().unwrap_or_default()
            }
        }
    }

    fn owns(&self, host: &str) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
    }

    /// The domain of the identity `m` claims (its From) when the server does not own it.
    pub(crate) fn foreign_domain(&self, m: &SipMessage) -> Option<String> {
        let from = m.from().ok()?.uri().ok()?;
        (!self.owns(from.host())).then(|| from.host().to_ascii_lowercase())
    }

    /// Whether `peer` speaks for `domain`: its mutual-TLS certificate names it, or its
    /// source address is listed for it. `Err`: why not, for a reason phrase.
    pub(crate) fn speaks_for(&self, peer: &Peer, domain: &str) -> std::result::Result<(), String> {
        if domain.is_empty() {
            // A tel: identity: no domain, so no peer can be listed or named for it.
            return Err("an identity without a domain has no trusted peer".into());
        }
        if peer
            .certificate
            .as_ref()
            .is_some_and(|c| c.names_domain(domain))
        {
            return Ok(());
        }
        let ip = peer.source.ip();
        let listed = |p: &TrustedPeer| match &p.source {
            PeerSource::Network(n) => n.contains(ip),
            PeerSource::Host(h) => self.addresses_of(h).contains(&ip.to_canonical()),
        };
        if self
            .config
            .get()
            .peers
            .iter()
            .any(|p| p.domain.eq_ignore_ascii_case(domain) && listed(p))
        {
            return Ok(());
        }
        Err(if peer.certificate.is_some() {
            format!("the TLS certificate does not name {domain}")
        } else {
            format!("{domain} is not a trusted peer")
        })
    }

    /// Whether a request from `peer` claiming an identity of `domain` (not owned) is
    /// believed: from anyone in open federation, else when `peer` speaks for `domain`.
    pub(crate) fn believes(&self, peer: &Peer, domain: &str) -> std::result::Result<(), String> {
        match self.config.get().federation {
            Federation::Open => Ok(()),
            Federation::Trusted => self.speaks_for(peer, domain),
        }
    }

    /// Whether `request`, whose From claims an identity of `domain` (not owned), is believed:
    /// see the table of the module documentation. `Err`: why not, for a reason phrase.
    pub(crate) fn foreign_request(
        &self,
        request: &Request,
        domain: &str,
    ) -> std::result::Result<(), String> {
        match request.key.method.as_str() {
            "SUBSCRIBE" | "MESSAGE" => self.believes(&request.peer, domain),
            "REGISTER" => Err(format!("a user of {domain} does not register here")),
            "PUBLISH" => Err(format!("a user of {domain} does not publish here")),
            method => Err(format!("a user of {domain} may not send {method} here")),
        }
    }

    /// Whether `peer`'s address is a [`TrustedPublisher`] for `presentity`'s domain that may
    /// publish `package` (no digest is asked of it).
    pub(crate) fn publishes_from(&self, peer: &Peer, presentity: &Uri, package: Package) -> bool {
        let ip = peer.source.ip();
        delegated(package)
            && self.config.get().publishers.iter().any(|p| {
                p.domain.eq_ignore_ascii_case(presentity.host())
                    && matches!(&p.id, PublisherId::Network(n) if n.contains(ip))
            })
    }

    /// Whether the authenticated `user` is a [`TrustedPublisher`] account for `presentity`'s
    /// domain that may publish `package`.
    pub(crate) fn publishes_as(&self, user: &Uri, presentity: &Uri, package: Package) -> bool {
        let key = presentity_key(user);
        delegated(package)
            && self.config.get().publishers.iter().any(|p| {
                p.domain.eq_ignore_ascii_case(presentity.host())
                    && matches!(&p.id, PublisherId::Account(a) if presentity_key(a) == key)
            })
    }
}

/// The packages a telephony system publishes for its users.
fn delegated(package: Package) -> bool {
    matches!(
        package,
        Package::Presence | Package::Dialog | Package::MessageSummary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!n.contains("::1".parse().unwrap()));
        let one = Network::parse("192.0.2.7").unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = Network::parse("[2001:db8::]/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(Network::parse("::1").unwrap().to_string(), "::1/128");
        let all = Network::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert_eq!(
            Network::parse("::ffff:192.0.2.0/120").unwrap().to_string(),
            "192.0.2.0/24"
        );
        for bad in ["10.0.0.0/33", "::/129", "host", "10.0.0.0/x", ""] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_and_publishers_parse() {
        let p = TrustedPeer::parse("B.test=192.0.2.0/24").unwrap();
        assert_eq!(p.to_string(), "b.test=192.0.2.0/24");
        assert_eq!(
            TrustedPeer::parse("b.test=2001:db8::1")
                .unwrap()
                .to_string(),
            "b.test=2001:db8::1/128"
        );
        for bad in [
            "b.test",
            "=1.2.3.4",
            "*=1.2.3.4",
            "b.test=nowhere",
            "b.test=10.0.0.0/33",
            "b.test=999.1.2.3",
            "b.test=sip.b.test:5060",
            "b.test=-x.b.test",
        ] {
            assert!(TrustedPeer::parse(bad).is_err(), "{bad}");
        }
        let named = TrustedPeer::parse("b.test=SIP.b.test.").unwrap();
        assert_eq!(named.source, PeerSource::Host("sip.b.test".into()));
        assert_eq!(named.to_string(), "b.test=sip.b.test");
        // Without a resolver a name cannot be trusted.
        let config = TrustConfig {
            peers: vec![named],
            ..TrustConfig::default()
        };
        assert!(Trust::new(vec!["a.test".into()], config).is_err());
        let pbx = TrustedPublisher::parse("192.0.2.20=A.test").unwrap();
        assert_eq!(
            pbx.id,
            PublisherId::Network(Network::parse("192.0.2.20").unwrap())
        );
        assert_eq!(pbx.domain, "a.test");
        let v6 = TrustedPublisher::parse("2001:db8::/64=a.test").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64=a.test");
        let vm = TrustedPublisher::parse("sip:voicemail@a.test=a.test").unwrap();
        assert!(matches!(&vm.id, PublisherId::Account(u) if u.user() == Some("voicemail")));
        for bad in [
            "a.test",
            "sip:a.test=a.test",
            "192.0.2.1=",
            "nowhere=a.test",
        ] {
            assert!(TrustedPublisher::parse(bad).is_err(), "{bad}");
        }
        assert_eq!("open".parse::<Federation>().unwrap(), Federation::Open);
        assert_eq!(Federation::default(), Federation::Trusted);
        assert!("closed".parse::<Federation>().is_err());
    }

    fn from(addr: &str) -> Peer {
        Peer {
            proto: crate::sip::transport::Proto::Udp,
            source: addr.parse().unwrap(),
            connection: None,
            certificate: None,
        }
    }

    #[test]
    fn listed_addresses_speak_for_their_domain_only() {
        let config = TrustConfig {
            peers: vec![
                TrustedPeer::parse("b.test=192.0.2.0/24").unwrap(),
                TrustedPeer::parse("c.test=2001:db8::7").unwrap(),
            ],
            ..TrustConfig::default()
        };
        let trust = Trust::new(vec!["a.test".into()], config.clone()).unwrap();
        assert!(trust.speaks_for(&from("192.0.2.9:5060"), "b.test").is_ok());
        assert!(trust
            .speaks_for(&from("[::ffff:192.0.2.9]:5060"), "b.test")
            .is_ok());
        assert_eq!(
            trust.speaks_for(&from("192.0.2.9:5060"), "c.test"),
            Err("c.test is not a trusted peer".to_string())
        );
        assert!(trust
            .speaks_for(&from("[2001:db8::7]:5061"), "c.test")
            .is_ok());
        assert!(trust
            .speaks_for(&from("198.51.100.1:5060"), "b.test")
            .is_err());
        assert!(trust
            .believes(&from("198.51.100.1:5060"), "b.test")
            .is_err());
        // A tel: identity has no domain: nobody vouches for it, except in open federation.
        assert!(trust.speaks_for(&from("192.0.2.9:5060"), "").is_err());
        let open = Trust::new(
            vec!["a.test".into()],
            TrustConfig {
                federation: Federation::Open,
                ..config
            },
        )
        .unwrap();
        assert!(open.believes(&from("198.51.100.1:5060"), "b.test").is_ok());
        assert!(open.believes(&from("198.51.100.1:5060"), "").is_ok());
    }

    #[test]
    fn configuration_is_checked_against_the_owned_domains() {
        let owned = vec!["a.test".to_string()];
        let config = |peers: &[&str], publishers: &[&str]| TrustConfig {
            peers: peers
                .iter()
                .map(|p| TrustedPeer::parse(p).unwrap())
                .collect(),
            federation: Federation::Trusted,
            publishers: publishers
                .iter()
                .map(|p| TrustedPublisher::parse(p).unwrap())
                .collect(),
        };
        assert!(Trust::new(
            owned.clone(),
            config(&["b.test=10.0.0.1"], &["10.0.0.2=a.test"])
        )
        .is_ok());
        assert!(Trust::new(owned.clone(), config(&["a.test=10.0.0.1"], &[])).is_err());
        assert!(Trust::new(owned.clone(), config(&[], &["10.0.0.2=b.test"])).is_err());
        assert!(Trust::new(owned, config(&[], &["sip:vm@b.test=a.test"])).is_err());
    }
}
