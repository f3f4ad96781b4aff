//! Trust between domains (DESIGN §5a): who may speak for an identity of a domain the server
//! does not own. Digest authentication covers the owned domains' users only (the directory
//! holds no one else); a request whose From names another domain is believed only from a
//! peer that speaks for that domain:
//!
//! * a mutual-TLS connection whose certificate names the domain (a DNS subjectAltName,
//!   RFC 5922 §7.2), verified during the handshake, or
//! * a source address the operator lists for the domain ([`TrustedPeer`]).
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
//! A telephony system speaks for its users in one more way: a [`TrustedPublisher`] (a PBX by
//! its address, or a privileged account authenticated by digest) may PUBLISH `presence`,
//! `dialog` and `message-summary` state for any user of its domain (busy lamps, message
//! waiting lamps), which otherwise only the user itself may.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::model::key::presentity_key;
use crate::model::package::Package;
use crate::sip::live::Live;
use crate::sip::message::SipMessage;
use crate::sip::stack::{Peer, Request};
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

/// A peer the operator trusts to speak for the users of another domain by its address: a
/// request whose From names `domain` is believed when it comes from `network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPeer {
    /// The domain (lower case).
    pub domain: String,
    /// Where its server's requests come from.
    pub network: Network,
}

impl TrustedPeer {
    /// Reads `DOMAIN=ADDR[/PREFIX]` (`b.test=192.0.2.10`, `b.test=2001:db8::/64`).
    pub fn parse(text: &str) -> Result<TrustedPeer> {
        let (domain, network) = text.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!("peer '{text}': expected DOMAIN=ADDR[/PREFIX]"))
        })?;
        let domain = domain.trim();
        if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '*') {
            return Err(Error::InvalidArgument(format!(
                "peer '{text}': '{domain}' is not a domain"
            )));
        }
        let network = Network::parse(network)
            .map_err(|e| Error::InvalidArgument(format!("peer {}", strip_kind(&e))))?;
        Ok(TrustedPeer {
            domain: domain.to_ascii_lowercase(),
            network,
        })
    }
}

impl fmt::Display for TrustedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.domain, self.network)
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
}

impl Trust {
    /// Checks `config` against the owned `domains`: a peer for an owned domain, or a publisher
    /// for a domain (or an account of a domain) not owned, is a mistake.
    pub(crate) fn new(domains: Vec<String>, config: TrustConfig) -> Result<Trust> {
        let trust = Trust {
            domains,
            config: Live::new(TrustConfig::default()),
        };
        trust.replace(config)?;
        Ok(trust)
    }

    /// Trusts what `config` says from now on, once it is checked as [`Trust::new`] checks
    /// it; refused, the trust stays as it was.
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
        self.config.set(config);
        Ok(())
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
        if self
            .config
            .get()
            .peers
            .iter()
            .any(|p| p.domain.eq_ignore_ascii_case(domain) && p.network.contains(ip))
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
        for bad in ["b.test", "=1.2.3.4", "*=1.2.3.4", "b.test=nowhere"] {
            assert!(TrustedPeer::parse(bad).is_err(), "{bad}");
        }
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
