//! The options that bound what strangers on the network can make imppd do: connections,
//! requests per second per address, and the digest throttle's front proxies; and the list
//! server's batching interval; and the DNS server next hops given by name are resolved
//! with (RFC 3263). Each is a flag and a config-file key of the same name; the
//! defaults are the library's.

use std::net::IpAddr;
use std::time::Duration;

use impp::sip::rate::RateLimit;
use impp::sip::{ConnectionLimits, SipServerConfig};

/// `--max-connections`, `--max-connections-per-address`, `--unauthenticated-timeout`,
/// `--tls-handshake-timeout`, `--idle-timeout`, `--rate-limit`, `--auth-proxy`,
/// `--list-batch-interval`.
#[derive(Debug, Default)]
pub struct NetworkOptions {
    connections: ConnectionLimits,
    rate_limit: Option<RateLimit>,
    auth_proxies: Vec<IpAddr>,
    list_batch_interval: Option<Duration>,
    /// `--ws-origin`, repeatable.
    ws_origins: Vec<String>,
    /// `--web-root`.
    web_root: Option<std::path::PathBuf>,
    /// `--dns-server ADDR:PORT` (default: the first nameserver of /etc/resolv.conf).
    dns_server: Option<std::net::SocketAddr>,
    /// `--flow-timeout S`: a serving device's flow silent this long is dead (0: never).
    flow_timeout: Option<Duration>,
}

/// The longest `--list-batch-interval`, in milliseconds (as the C API's bound).
const MAX_LIST_BATCH_MS: u64 = 60_000;

/// The names this module reads (each takes a value).
pub const NAMES: [&str; 12] = [
    "max-connections",
    "max-connections-per-address",
    "unauthenticated-timeout",
    "tls-handshake-timeout",
    "idle-timeout",
    "rate-limit",
    "auth-proxy",
    "list-batch-interval",
    "ws-origin",
    "web-root",
    "dns-server",
    "flow-timeout",
];

impl NetworkOptions {
    /// Applies option `name` if it is one of [`NAMES`]: `None` when it is not.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), String>> {
        let count = |v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("--{name} needs a number of at least 1, not '{v}'"))
        };
        let seconds = |v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("--{name} needs seconds (at least 1), not '{v}'"))
        };
        let c = &mut self.connections;
        let result = match name {
            "max-connections" => count(value).map(|n| c.max_total = n),
            "max-connections-per-address" => count(value).map(|n| c.max_per_address = n),
            "unauthenticated-timeout" => seconds(value).map(|d| c.unvouched_timeout = d),
            "tls-handshake-timeout" => seconds(value).map(|d| c.handshake_timeout = d),
            "idle-timeout" => seconds(value).map(|d| c.idle_timeout = d),
            "rate-limit" => RateLimit::parse(value)
                .map(|r| self.rate_limit = Some(r))
                .map_err(|e| format!("--rate-limit: {e}")),
            "auth-proxy" => value
                .parse()
                .map(|ip| self.auth_proxies.push(ip))
                .map_err(|_| format!("--auth-proxy needs an IP address, not '{value}'")),
            "list-batch-interval" => value
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= MAX_LIST_BATCH_MS)
                .map(|ms| self.list_batch_interval = Some(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!(
                        "--list-batch-interval needs milliseconds (0 to {MAX_LIST_BATCH_MS}), not '{value}'"
                    )
                }),
            "ws-origin" => impp::sip::transport::websocket::parse_origin(value)
                .map(|o| self.ws_origins.push(o))
                .map_err(|e| format!("--ws-origin: {e}")),
            "web-root" => impp::sip::transport::web_root::WebRoot::new(value.as_ref())
                .map(|_| self.web_root = Some(value.into()))
                .map_err(|e| format!("--web-root: {e}")),
            "dns-server" => value
                .parse()
                .map(|a| self.dns_server = Some(a))
                .map_err(|_| {
                    format!("--dns-server needs ADDR:PORT (IPv6: [::1]:53), not '{value}'")
                }),
            "flow-timeout" => value
                .parse::<u64>()
                .map(|s| self.flow_timeout = (s > 0).then(|| Duration::from_secs(s)))
                .map_err(|_| format!("--flow-timeout needs seconds (0: none), not '{value}'")),
            _ => return None,
        };
        Some(result)
    }

    /// Puts the options into the server's configuration.
    pub fn apply(&self, sip: &mut SipServerConfig) {
        sip.connections = self.connections;
        sip.flow_timeout = self.flow_timeout;
        if let Some(rate) = self.rate_limit {
            sip.rate_limit = rate;
        }
        sip.auth_limits
            .proxies
            .extend(self.auth_proxies.iter().copied());
        if let Some(interval) = self.list_batch_interval {
            sip.list_batch_interval = interval;
        }
        sip.ws_origins.extend(self.ws_origins.iter().cloned());
        if let Some(dir) = &self.web_root {
            sip.web_root = Some(dir.clone());
        }
        if self.dns_server.is_some() {
            sip.dns.server = self.dns_server;
        }
    }

    /// One line for the start-up report.
    pub fn summary(&self, sip: &SipServerConfig) -> String {
        let rate = if sip.rate_limit.per_second == 0 {
            "off".to_string()
        } else {
            format!(
                "{}/s bursts {}",
                sip.rate_limit.per_second, sip.rate_limit.burst
            )
        };
        let dns = sip
            .dns
            .server
            .or_else(impp::sip::dns::ResolverConfig::system_server)
            .map_or("none".to_string(), |a| a.to_string());
        format!(
            "connections {} ({} per address), rate limit {rate}, list batch {} ms, DNS {dns}",
            sip.connections.max_total,
            sip.connections.max_per_address,
            sip.list_batch_interval.as_millis()
        )
    }
}
