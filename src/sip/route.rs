//! Where requests for other domains go: a next hop per domain and an optional default route
//! (DESIGN §5, "forwarder for namespace division"). No DNS here: a next hop is a transport
//! and an IP address with a port, as configured.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::SocketAddr;

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

/// One route: requests for `domain` (`None`: any domain without a route of its own) go to
/// `next_hop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The domain (lower case), or `None` for the default route.
    pub domain: Option<String>,
    /// Where its requests go.
    pub next_hop: NextHop,
}

impl Route {
    /// Reads `DOMAIN=udp:ADDR:PORT`, or `*=...` / `default=...` for the default route.
    pub fn parse(text: &str) -> Result<Route> {
        let (domain, hop) = text.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "route '{text}': expected DOMAIN=udp:ADDR:PORT (or *=... for the default)"
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
            next_hop: NextHop::parse(hop.trim())?,
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

    /// The next hop for `domain` (case-insensitive): its own route, else the default one.
    pub fn lookup(&self, domain: &str) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| {
                r.domain
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
            .or_else(|| self.routes.iter().find(|r| r.domain.is_none()))
            .map(|r| r.next_hop)
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
            "b=udp:host:5",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad}");
        }
    }
}
