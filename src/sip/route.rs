//! Where requests for other domains go: a next hop per domain and an optional default route
//! (DESIGN §5, "forwarder for namespace division"). A route's target is a transport address
//! as configured, a host name resolved by RFC 3263 ([`super::dns`]), or `dns`: the
//! request's own domain, resolved.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;

use super::dns::Destination;
use super::transport::Proto;
use crate::error::{Error, Result};

/// A transport address requests are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// UDP, TCP or TLS.
    pub proto: Proto,
    /// The address.
    pub addr: SocketAddr,
}

impl NextHop {
    /// Reads `udp:ADDR:PORT`, `tcp:ADDR:PORT` or `tls:ADDR:PORT` (IPv6 as `[::1]:5060`). A
    /// WebSocket is no next hop: only its clients open connections (RFC 7118).
    pub fn parse(text: &str) -> Result<NextHop> {
        let hop = parse_transport_address(text)?;
        if hop.proto.is_websocket() {
            return Err(Error::InvalidArgument(format!(
                "'{text}': a WebSocket cannot be a next hop (only clients open WebSockets)"
            )));
        }
        Ok(hop)
    }
}

/// `PROTO:ADDR:PORT` for any transport.
fn parse_transport_address(text: &str) -> Result<NextHop> {
    let (proto, addr) = text.split_once(':').ok_or_else(|| {
        Error::InvalidArgument(format!(
            "'{text}': expected udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT (to listen, also \
             ws: and wss:)"
        ))
    })?;
    let proto = Proto::from_param(proto).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "'{text}': unknown transport '{proto}' (udp, tcp, tls; to listen, also ws, wss)"
        ))
    })?;
    let addr = addr.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "'{text}': '{addr}' is not ADDR:PORT (IPv6: [::1]:5060)"
        ))
    })?;
    Ok(NextHop { proto, addr })
}

impl super::transport::ListenAddr {
    /// Reads `udp:ADDR:PORT`, `tcp:`, `tls:`, `ws:` or `wss:` (IPv6 as `[::1]:5060`).
    pub fn parse(text: &str) -> Result<super::transport::ListenAddr> {
        parse_transport_address(text).map(Into::into)
    }
}

/// Listening where a next hop would be sent to: the same `udp|tcp:ADDR:PORT` text.
impl From<NextHop> for super::transport::ListenAddr {
    fn from(hop: NextHop) -> Self {
        super::transport::ListenAddr {
            proto: hop.proto,
            addr: hop.addr,
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto.param(), self.addr)
    }
}

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A transport address, as configured.
    Hop(NextHop),
    /// A host, resolved by RFC 3263 (NAPTR, SRV, A/AAAA; fewer lookups when the text names
    /// a transport or a port).
    Name(Destination),
    /// The request's own domain, resolved by RFC 3263 (`*=dns`: any domain through its own
    /// records).
    Dns,
}

impl RouteTarget {
    /// Reads `udp:ADDR:PORT` (an address), `dns`, or `[udp:|tcp:|tls:]HOST[:PORT]`.
    pub fn parse(text: &str) -> Result<RouteTarget> {
        if text.eq_ignore_ascii_case("dns") {
            return Ok(RouteTarget::Dns);
        }
        if let Ok(hop) = NextHop::parse(text) {
            return Ok(RouteTarget::Hop(hop));
        }
        let dest = Destination::parse(text)?;
        Ok(match dest.numeric() {
            // A numeric host without a transport or port: the defaults, no DNS.
            Some(hop) => RouteTarget::Hop(hop),
            None => RouteTarget::Name(dest),
        })
    }

    /// Reads the server of an account (a registrar, an outbound proxy): as
    /// [`RouteTarget::parse`], but `dns` is refused (a server is named, not found by each
    /// request's domain).
    pub fn parse_server(text: &str) -> Result<RouteTarget> {
        match RouteTarget::parse(text)? {
            RouteTarget::Dns => Err(Error::InvalidArgument(
                "an account's server is an address or a host name, not `dns`".into(),
            )),
            target => Ok(target),
        }
    }

    /// Whether requests to it go over TLS (a `tls:` address, or a name to resolve for TLS).
    pub fn is_tls(&self) -> bool {
        match self {
            RouteTarget::Hop(hop) => hop.proto == super::transport::Proto::Tls,
            RouteTarget::Name(dest) => {
                dest.secure || dest.proto == Some(super::transport::Proto::Tls)
            }
            RouteTarget::Dns => false,
        }
    }

    /// The transport address, when it is one.
    pub fn hop(&self) -> Option<NextHop> {
        match self {
            RouteTarget::Hop(hop) => Some(*hop),
            _ => None,
        }
    }

    /// What to resolve for a request to `domain`: `None` for a transport address.
    pub fn destination(&self, domain: &str) -> Option<Destination> {
        match self {
            RouteTarget::Hop(_) => None,
            RouteTarget::Name(dest) => Some(dest.clone()),
            RouteTarget::Dns => Some(Destination {
                host: domain.trim_end_matches('.').to_ascii_lowercase(),
                port: None,
                proto: None,
                secure: false,
            }),
        }
    }
}

impl From<NextHop> for RouteTarget {
    fn from(hop: NextHop) -> RouteTarget {
        RouteTarget::Hop(hop)
    }
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::Hop(hop) => hop.fmt(f),
            RouteTarget::Name(dest) => dest.fmt(f),
            RouteTarget::Dns => f.write_str("dns"),
        }
    }
}

/// One route: requests for `domain` (`None`: any domain without a route of its own) go to
/// `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The domain (lower case), or `None` for the default route.
    pub domain: Option<String>,
    /// Where its requests go.
    pub target: RouteTarget,
}

impl Route {
    /// Reads `DOMAIN=TARGET`, or `*=...` / `default=...` for the default route; TARGET is
    /// `udp|tcp|tls:ADDR:PORT`, `[udp:|tcp:|tls:]HOST[:PORT]` (resolved by RFC 3263) or
    /// `dns` (the request's own domain, resolved).
    pub fn parse(text: &str) -> Result<Route> {
        let (domain, hop) = text.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "route '{text}': expected DOMAIN=udp:ADDR:PORT, DOMAIN=HOST or DOMAIN=dns (or \
                 *=... for the default)"
            ))
        })?;
        let domain = domain.trim();
        if domain.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "route '{text}': the domain is empty"
            )));
        }
        let domain = match domain {
            "*" | "default" => None,
            d => Some(d.to_ascii_lowercase()),
        };
        Ok(Route {
            domain,
            target: RouteTarget::parse(hop.trim())?,
        })
    }
}

/// The routes, looked up by domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of `routes`; a later route for the same domain replaces an earlier one.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let mut table = RouteTable::default();
        for r in routes {
            table.add(r);
        }
        table
    }

    /// Adds (or replaces) a route.
    pub fn add(&mut self, route: Route) {
        self.routes.retain(|r| r.domain != route.domain);
        self.routes.push(route);
    }

    /// The next hop for `domain` (case-insensitive): its own route, else the default one;
    /// `None` too when that route names a host to resolve (see [`RouteTable::target`]).
    pub fn lookup(&self, domain: &str) -> Option<NextHop> {
        self.target(domain).and_then(RouteTarget::hop)
    }

    /// The route target for `domain` (case-insensitive): its own route, else the default one.
    pub fn target(&self, domain: &str) -> Option<&RouteTarget> {
        self.routes
            .iter()
            .find(|r| {
                r.domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
            .or_else(|| self.routes.iter().find(|r| r.domain.is_none()))
            .map(|r| &r.target)
    }

    /// Whether a route names a host or `dns` (a resolver is needed).
    pub fn needs_dns(&self) -> bool {
        self.routes.iter().any(|r| r.target.hop().is_none())
    }

    /// Whether there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes, in the order added.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_look_up() {
        let table = RouteTable::new(vec![
            Route::parse("b.test=udp:127.0.0.1:5070").unwrap(),
            Route::parse("*=tcp:[::1]:5080").unwrap(),
            Route::parse("B.test=tcp:127.0.0.1:5071").unwrap(),
        ]);
        assert_eq!(
            table.lookup("b.TEST").unwrap().to_string(),
            "tcp:127.0.0.1:5071"
        );
        assert_eq!(
            table.lookup("c.test").unwrap().to_string(),
            "tcp:[::1]:5080"
        );
        assert!(RouteTable::default().lookup("b.test").is_none());
        for bad in [
            "b.test",
            "=udp:1.2.3.4:5",
            "b=sctp:1.2.3.4:5",
            "b=udp:ho st:5",
            "b=ws:host",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad}");
        }
        let named = RouteTable::new(vec![
            Route::parse("b.test=tcp:Proxy.B.test").unwrap(),
            Route::parse("*=dns").unwrap(),
            Route::parse("c.test=192.0.2.3").unwrap(),
        ]);
        assert!(named.lookup("b.test").is_none(), "a name is no address");
        assert_eq!(
            named.target("b.test").unwrap().to_string(),
            "tcp:proxy.b.test"
        );
        assert_eq!(
            named
                .target("d.test")
                .unwrap()
                .destination("D.test")
                .unwrap()
                .host,
            "d.test"
        );
        assert_eq!(
            named.lookup("c.test").unwrap().to_string(),
            "udp:192.0.2.3:5060"
        );
        assert!(named.needs_dns());
    }
}
