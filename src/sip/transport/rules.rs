//! Pure transport rules the SIP layer applies: Via `received`/`rport` (RFC 3261 §18.2.1,
//! RFC 3581 §4), where responses go (RFC 3261 §18.2.2, RFC 3581 §4), and when a request is
//! too big for UDP (RFC 3261 §18.1.1, RFC 3428 §6).

use std::net::{IpAddr, SocketAddr};

use super::Proto;

/// The SIP port used when a Via's sent-by has none (RFC 3261 §19.1.2; TLS is not handled).
const DEFAULT_SIP_PORT: u16 = 5060;
/// The port for TLS when none is given (RFC 3261 §19.1.2).
const DEFAULT_SIPS_PORT: u16 = 5061;

/// The parameters a server adds to the top Via of a request it received from `source`.
///
/// * `received` (RFC 3261 §18.2.1) is the source IP address, without brackets for IPv6. It
///   is added when the Via's sent-by host (`via_host`, an IP literal, IPv6 with or without
///   brackets, or a domain name) is not the source IP: a domain name, or a different
///   address. RFC 3581 §4 adds it also when the client asked for `rport`, even if the address
///   is the same, so that the response can be routed by `received` and `rport` alone.
/// * `rport` (RFC 3581 §4) is the source port, filled in only when the request's top Via had
///   an `rport` parameter without a value (`via_rport_requested`).
///
/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
pub fn via_received_rport(
    via_host: &str,
    via_rport_requested: bool,
    source: SocketAddr,
) -> (Option<String>, Option<u16>) {
    let source_ip = source.ip().to_canonical();
    let host = via_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(via_host);
    let same = host
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == source_ip);
    let received = (via_rport_requested || !same).then(|| source_ip.to_string());
    let rport = via_rport_requested.then_some(source.port());
    (received, rport)
}

/// Where a response to a request received from `source` goes when no `maddr` is present
/// (multicast `maddr` is left to the caller):
///
/// * UDP with `rport` in the request's top Via (RFC 3581 §4): back to the source IP address
///   and port, which gets through NATs.
/// * UDP without it (RFC 3261 §18.2.2): to the `received` address, which is the source IP
///   whenever it differs from the sent-by host (see [`via_received_rport`]), at the sent-by
///   port (`via_port`, 5060 when absent).
/// * TCP: the response should go over the connection the request came on
///   ([`super::Inbound::connection`]); this is the address to connect to if that connection
///   has closed: the source IP at the sent-by port (RFC 3261 §18.2.2; `rport` does not apply
///   to reliable transports).
pub fn response_destination(
    proto: Proto,
    via_port: Option<u16>,
    via_rport_requested: bool,
    source: SocketAddr,
) -> SocketAddr {
    if proto == Proto::Udp && via_rport_requested {
        return source;
    }
    let default = if proto == Proto::Tls {
        DEFAULT_SIPS_PORT
    } else {
        DEFAULT_SIP_PORT
    };
    SocketAddr::new(source.ip(), via_port.unwrap_or(default))
}

/// Whether a request of `message_len` bytes must go over a congestion-controlled stream
/// transport (TCP) rather than UDP (RFC 3261 §18.1.1, applied to MESSAGE by RFC 3428 §6):
/// when the path MTU is unknown, if it is larger than 1300 bytes; when it is known, if it
/// comes within 200 bytes of it (`message_len + 200 > mtu`). The two agree for the usual
/// 1500-byte Ethernet MTU.
pub fn must_use_stream(message_len: usize, path_mtu: Option<usize>) -> bool {
    match path_mtu {
        None => message_len > 1300,
        Some(mtu) => message_len.saturating_add(200) > mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sip_received_only_when_host_differs() {
        let src = addr("192.0.2.7:5060");
        assert_eq!(via_received_rport("192.0.2.7", false, src), (None, None));
        assert_eq!(
            via_received_rport("10.0.0.1", false, src),
            (Some("192.0.2.7".into()), None)
        );
        assert_eq!(
            via_received_rport("pc33.example.test", false, src),
            (Some("192.0.2.7".into()), None)
        );
    }

    #[test]
    fn sip_rport_requested_fills_port_and_received() {
        let src = addr("192.0.2.7:40123");
        assert_eq!(
            via_received_rport("192.0.2.7", true, src),
            (Some("192.0.2.7".into()), Some(40123))
        );
        assert_eq!(
            via_received_rport("10.0.0.1", true, src),
            (Some("192.0.2.7".into()), Some(40123))
        );
    }

    #[test]
    fn sip_received_ipv6_forms() {
        let src = addr("[2001:db8::1]:5060");
        assert_eq!(
            via_received_rport("[2001:db8::1]", false, src),
            (None, None)
        );
        assert_eq!(
            via_received_rport("2001:DB8:0::1", false, src),
            (None, None)
        );
        assert_eq!(
            via_received_rport("[2001:db8::2]", false, src),
            (Some("2001:db8::1".into()), None)
        );
        // A v4-mapped source compares equal to the plain v4 literal and is reported as v4.
        let mapped = addr("[::ffff:192.0.2.7]:5060");
        assert_eq!(via_received_rport("192.0.2.7", false, mapped), (None, None));
        assert_eq!(
            via_received_rport("host.example.test", false, mapped),
            (Some("192.0.2.7".into()), None)
        );
    }

    #[test]
    fn sip_response_destination_rules() {
        let src = addr("198.51.100.4:40123");
        assert_eq!(response_destination(Proto::Udp, Some(5070), true, src), src);
        assert_eq!(
            response_destination(Proto::Udp, Some(5070), false, src),
            addr("198.51.100.4:5070")
        );
        assert_eq!(
            response_destination(Proto::Udp, None, false, src),
            addr("198.51.100.4:5060")
        );
        assert_eq!(
            response_destination(Proto::Tcp, None, true, src),
            addr("198.51.100.4:5060")
        );
        assert_eq!(
            response_destination(Proto::Tcp, Some(5080), false, src),
            addr("198.51.100.4:5080")
        );
    }

    #[test]
    fn sip_must_use_stream_thresholds() {
        assert!(!must_use_stream(1300, None));
        assert!(must_use_stream(1301, None));
        assert!(!must_use_stream(1300, Some(1500)));
        assert!(must_use_stream(1301, Some(1500)));
        assert!(must_use_stream(100, Some(250)));
        assert!(must_use_stream(0, Some(100)));
        assert!(!must_use_stream(8000, Some(9000)));
        assert!(must_use_stream(usize::MAX, Some(9000)));
    }
}
