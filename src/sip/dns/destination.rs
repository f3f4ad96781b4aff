//! What RFC 3263 looks up: the host of a SIP URI (or of a configured next hop), with the
//! port and transport it names, and whether it is a `sips:` URI. Which of those are given
//! decides which lookups are made (see [`super::procedure`]).
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};
use crate::sip::route::NextHop;
use crate::sip::transport::Proto;
use crate::uri::{Scheme, Uri};

/// A host to reach, as a URI or a route names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// A domain name (lower case, no trailing dot) or an IP address (IPv6 without brackets).
    pub host: String,
    /// An explicit port: then no SRV lookup (RFC 3263 §4.2).
    pub port: Option<u16>,
    /// An explicit transport (`;transport=` or `tcp:` in a route): then no NAPTR lookup.
    pub proto: Option<Proto>,
    /// A `sips:` URI: TLS only (RFC 3263 §4.1, RFC 5630).
    pub secure: bool,
}

impl Destination {
    /// The destination a SIP URI names (its host, port, `transport` parameter and scheme).
    pub fn from_uri(uri: &Uri) -> Destination {
        let host = uri.host().trim_start_matches('[').trim_end_matches(']');
        Destination {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port: uri.port(),
            proto: uri.param("transport").and_then(Proto::from_param),
            secure: uri.scheme() == Scheme::Sips,
        }
    }

    /// Reads `[udp:|tcp:|tls:]HOST[:PORT]` (IPv6 as `[::1]`): the text of a route target or
    /// an account's server that names a host.
    pub fn parse(text: &str) -> Result<Destination> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "'{text}': {why} (expected [udp:|tcp:|tls:]HOST[:PORT])"
            ))
        };
        let (proto, rest) = match text.split_once(':') {
            Some((p, rest)) if Proto::from_param(p).is_some() && !p.is_empty() => {
                let proto = Proto::from_param(p).ok_or_else(|| bad("unknown transport"))?;
                if proto.is_websocket() {
                    return Err(bad("a WebSocket cannot be a next hop"));
                }
                (Some(proto), rest)
            }
            _ => (None, text),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            match after {
                "" => (host.to_string(), None),
                p => (
                    host.to_string(),
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            ),
            None => None,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        // A configured host is a full domain name: one label alone would need a search
        // list, which next hops do not go through, and is most likely a typing mistake.
        if host.parse::<IpAddr>().is_err() && (!is_domain_name(&host) || !host.contains('.')) {
            return Err(bad(
                "the host is neither a domain name (with a dot) nor an IP address",
            ));
        }
        Ok(Destination {
            host,
            port,
            proto,
            secure: proto == Some(Proto::Tls),
        })
    }

    /// The one next hop of a numeric host, which needs no DNS (RFC 3263 §4.1, §4.2: the
    /// transport named, else UDP, TLS for `sips:`; the port named, else 5060, 5061 for TLS).
    pub fn numeric(&self) -> Option<NextHop> {
        let ip: IpAddr = self.host.parse().ok()?;
        let proto = self.default_proto();
        Some(NextHop {
            proto,
            addr: SocketAddr::new(ip, self.port.unwrap_or(default_port(proto))),
        })
    }

    /// The transport when the records do not choose one: TLS for `sips:` (whatever
    /// `transport=` says: `sips:...;transport=tcp` is TLS over TCP, RFC 5630 §3), else the
    /// one named, else UDP.
    pub(crate) fn default_proto(&self) -> Proto {
        if self.secure {
            Proto::Tls
        } else {
            self.proto.unwrap_or(Proto::Udp)
        }
    }
}

/// 5061 for TLS, 5060 otherwise (RFC 3261 §19.1.2).
pub(crate) fn default_port(proto: Proto) -> u16 {
    if proto.is_tls() {
        5061
    } else {
        5060
    }
}

/// Whether `host` is a plausible domain name: labels of letters, digits, `-` and `_`, at
/// most 63 characters each and 253 in all.
fn is_domain_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.proto {
            write!(f, "{}:", p.param())?;
        } else if self.secure {
            f.write_str("sips:")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let d = Destination::parse("Far.Test.").unwrap();
        assert_eq!((d.host.as_str(), d.port, d.proto), ("far.test", None, None));
        let d = Destination::parse("tcp:far.test:5070").unwrap();
        assert_eq!(d.port, Some(5070));
        assert_eq!(d.proto, Some(Proto::Tcp));
        assert_eq!(d.to_string(), "tcp:far.test:5070");
        let d = Destination::parse("tls:far.test").unwrap();
        assert!(d.secure);
        let d = Destination::parse("[::1]:5062").unwrap();
        assert_eq!(d.numeric().unwrap().to_string(), "udp:[::1]:5062");
        let d = Destination::parse("tls:192.0.2.1").unwrap();
        assert_eq!(d.numeric().unwrap().to_string(), "tls:192.0.2.1:5061");
        for bad in [
            "",
            "far..test",
            "far.test:0",
            "far.test:x",
            "ws:far.test",
            "[far]",
            "a b",
            "udp:nowhere",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_of_uris() {
        let uri: Uri = "sips:bob@Far.Test;transport=tcp".parse().unwrap();
        let d = Destination::from_uri(&uri);
        assert_eq!(d.host, "far.test");
        assert!(d.secure);
        assert_eq!(d.proto, Some(Proto::Tcp));
        let uri: Uri = "sip:bob@[2001:db8::1]:5070".parse().unwrap();
        assert_eq!(
            Destination::from_uri(&uri).numeric().unwrap().to_string(),
            "udp:[2001:db8::1]:5070"
        );
    }
}
