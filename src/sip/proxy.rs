//! A request as a proxy forwards it and a response as a proxy passes it back (RFC 3261
//! §16.6, §16.7): the received message with this server's part added or removed, every
//! other header field and the body kept as the sender wrote them. No I/O; used by the
//! forwarder (requests for other domains) and the pager (messages relayed to registered
//! contacts).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::digest::parse_authorization;
use super::lex::split_list;
use super::message::SipMessage;
use super::name::{classify, Known};
use super::transport::via_received_rport;

/// The dialogs a proxy relays that it handed to a device serving its own watchers
/// (`crate::sip::server::handover`), as the forwarder asks about them: the forwarder relays,
/// the hand-over table learns from what passes. Implemented by the table; the forwarder
/// knows only this.
pub(crate) trait HandedDialogs: Send + Sync {
    /// An in-dialog request of a dialog we record-routed (a sealed Route entry of ours),
    /// about to be relayed: `None` when the dialog is not one handed over; else the flow it
    /// goes over, if any (`Some(hop)`: the device's, or the connection of a watcher that
    /// subscribed over one), else by its Request-URI as usual. A handed-over dialog's
    /// requests are relayed without asking for the proxy's credentials: the seal is the
    /// dialog's, and each end authenticates the other as it wishes.
    fn relaying(&self, m: &SipMessage) -> Option<Option<crate::sip::route::NextHop>>;

    /// The final answer to such a request (`408` for none in time, `503` for a transport
    /// error).
    fn relayed(&self, m: &SipMessage, status: u16);
}

/// The credentials this server checked itself, taken out of what it passes on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Checked<'a> {
    /// None: every credential goes on.
    Nothing,
    /// Every Authorization header (a registrar's proxy relaying to a registered contact:
    /// they were answers to this server's own challenges).
    Authorization,
    /// The Proxy-Authorization headers for these realms (RFC 3261 §22.3: a proxy takes out
    /// its own; those for proxies further on stay).
    ProxyAuthorization { realms: &'a [String] },
}

impl Checked<'_> {
    /// Whether the header `name: value` is taken out.
    fn strips(&self, name: Known, value: &str) -> bool {
        match (self, name) {
            (Checked::Authorization, Known::Authorization) => true,
            (Checked::ProxyAuthorization { realms }, Known::ProxyAuthorization) => {
                parse_authorization(value).is_ok_and(|c| realms.contains(&c.realm))
            }
            _ => false,
        }
    }
}

/// The request `m` as it is forwarded: `our_via` on top, then our `record_route` entries,
/// the received top Via with `received`/`rport` for `source`, `popped` Route entries
/// removed, Max-Forwards set to `max_forwards`, the credentials `checked` here taken out,
/// and Content-Length recomputed.
pub(crate) fn forwarded(
    m: &SipMessage,
    source: SocketAddr,
    our_via: &str,
    record_route: &[String],
    popped: usize,
    max_forwards: u32,
    checked: Checked<'_>,
) -> crate::error::Result<Vec<u8>> {
    retargeted(
        m,
        m.request_uri_text().unwrap_or_default(),
        Some(source),
        our_via,
        record_route,
        popped,
        max_forwards,
        checked,
    )
}

/// [`forwarded`] with a new Request-URI: a proxy's retargeting (RFC 3261 §16.5, §16.6 step
/// 2), as a registrar's proxy sends a request for an address of record to a registered
/// contact. `source`: where the request came from, written into its top Via (RFC 3581);
/// `None` leaves it as it is (a stored request, relayed later).
#[allow(clippy::too_many_arguments)] // each is one of §16.6's steps
pub(crate) fn retargeted(
    m: &SipMessage,
    request_uri: &str,
    source: Option<SocketAddr>,
    our_via: &str,
    record_route: &[String],
    popped: usize,
    max_forwards: u32,
    checked: Checked<'_>,
) -> crate::error::Result<Vec<u8>> {
    let start = format!("{} {} SIP/2.0", m.method().unwrap_or_default(), request_uri);
    let mut fields: Vec<(&str, String)> = vec![("Via", our_via.to_string())];
    for rr in record_route {
        fields.push(("Record-Route", rr.clone()));
    }
    let routes = m.header_values("Route")?;
    let (mut first_via, mut routes_done, mut had_max_forwards) = (true, false, false);
    for (name, value) in m.all_headers() {
        match classify(name) {
            Known::Via if first_via => {
                first_via = false;
                let mut items =
                    split_list(value, "Via").collect::<crate::error::Result<Vec<_>>>()?;
                let rewritten;
                if let Some(source) = source {
                    let top = m.top_via()?;
                    let (received, rport) =
                        via_received_rport(top.host(), top.rport() == Some(None), source);
                    rewritten = with_received(items[0], received, rport);
                    items[0] = &rewritten;
                }
                fields.push(("Via", items.join(", ")));
            }
            Known::Route => {
                if !routes_done {
                    routes_done = true;
                    for r in routes.iter().skip(popped) {
                        fields.push(("Route", r.to_string()));
                    }
                }
            }
            Known::MaxForwards => {
                had_max_forwards = true;
                fields.push(("Max-Forwards", max_forwards.to_string()));
            }
            Known::ContentLength => {}
            known if checked.strips(known, value) => {}
            _ => fields.push((name, value.to_string())),
        }
    }
    if !had_max_forwards {
        fields.push(("Max-Forwards", max_forwards.to_string()));
    }
    Ok(assemble(&start, &fields, m.body()))
}

/// The response `m` as it is passed upstream: its top Via removed.
pub(crate) fn relayed(m: &SipMessage) -> crate::error::Result<Vec<u8>> {
    let start = format!(
        "SIP/2.0 {} {}",
        m.status().unwrap_or(500),
        m.reason().unwrap_or("")
    );
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut first_via = true;
    for (name, value) in m.all_headers() {
        match classify(name) {
            Known::Via if first_via => {
                first_via = false;
                let rest = split_list(value, "Via")
                    .skip(1)
                    .collect::<crate::error::Result<Vec<_>>>()?;
                if !rest.is_empty() {
                    fields.push(("Via", rest.join(", ")));
                }
            }
            Known::ContentLength => {}
            _ => fields.push((name, value.to_string())),
        }
    }
    Ok(assemble(&start, &fields, m.body()))
}

/// Writes a message: the start line, the fields, Content-Length, the empty line, the body.
fn assemble(start: &str, fields: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(start.len() + body.len() + fields.len() * 48 + 32);
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The top Via `via` with its `received` and `rport` parameters replaced by the ones given
/// (computed by [`via_received_rport`], RFC 3581).
pub(crate) fn with_received(via: &str, received: Option<String>, rport: Option<u16>) -> String {
    let mut out = String::with_capacity(via.len() + 40);
    for (i, part) in via.split(';').enumerate() {
        let name = part.split('=').next().unwrap_or("").trim();
        if i > 0 && (name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received")) {
            continue;
        }
        if i > 0 {
            out.push(';');
        }
        out.push_str(part);
    }
    if let Some(ip) = received {
        out.push_str(&format!(";received={ip}"));
    }
    if let Some(port) = rport {
        out.push_str(&format!(";rport={port}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::SipLimits;

    fn parse(text: &str) -> SipMessage {
        SipMessage::parse(
            text.as_bytes(),
            &SipLimits::DEFAULT,
            crate::sip::Transport::Datagram,
        )
        .unwrap()
    }

    #[test]
    fn a_forwarded_request_keeps_what_it_carried_and_adds_our_part() {
        // Compact header names, two Vias in one line, two Routes of which one is popped.
        let m = parse(
            "MESSAGE sip:bob@b.test SIP/2.0\r\n\
             v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n\
             Route: <sip:us;lr>, <sip:next;lr>\r\n\
             f: <sip:alice@a.test>;tag=1\r\nt: <sip:bob@b.test>\r\ni: c1\r\nCSeq: 2 MESSAGE\r\n\
             Max-Forwards: 7\r\nAuthorization: Digest username=\"alice\"\r\n\
             c: text/plain\r\nl: 2\r\n\r\nhi",
        );
        let source: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        let out = forwarded(
            &m,
            source,
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfw1;rport",
            &["<sip:192.0.2.1:5060;transport=udp;lr>".to_string()],
            1,
            6,
            Checked::Authorization,
        )
        .unwrap();
        let f = parse(std::str::from_utf8(&out).unwrap());
        let vias: Vec<String> = f
            .header_values("Via")
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfw1;rport",
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.9;rport=4000",
                "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb",
            ]
        );
        assert_eq!(f.header_values("Route").unwrap(), ["<sip:next;lr>"]);
        assert_eq!(
            f.header("Record-Route"),
            Some("<sip:192.0.2.1:5060;transport=udp;lr>")
        );
        assert_eq!(f.max_forwards().unwrap(), Some(6));
        assert!(f.header("Authorization").is_none());
        assert_eq!(f.body(), b"hi");
        assert_eq!(f.content_length(), Some(2));
        assert_eq!(f.request_uri_text(), Some("sip:bob@b.test"));
        assert_eq!(f.call_id().unwrap(), "c1");
    }

    #[test]
    fn a_proxy_takes_out_only_its_own_proxy_credentials() {
        let m = parse(
            "MESSAGE sip:bob@b.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
             From: <sip:alice@a.test>;tag=1\r\nTo: <sip:bob@b.test>\r\nCall-ID: c1\r\n\
             CSeq: 2 MESSAGE\r\n\
             Proxy-Authorization: Digest username=\"alice\", realm=\"a.test\", nonce=\"n\", uri=\"sip:bob@b.test\", response=\"0\"\r\n\
             Proxy-Authorization: Digest username=\"alice\", realm=\"next.test\", nonce=\"n\", uri=\"sip:bob@b.test\", response=\"1\"\r\n\
             Authorization: Digest username=\"alice\", realm=\"b.test\", nonce=\"n\", uri=\"sip:bob@b.test\", response=\"2\"\r\n\
             Content-Length: 0\r\n\r\n",
        );
        let realms = ["a.test".to_string()];
        let out = forwarded(
            &m,
            "192.0.2.9:4000".parse().unwrap(),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfw1;rport",
            &[],
            0,
            69,
            Checked::ProxyAuthorization { realms: &realms },
        )
        .unwrap();
        let f = parse(std::str::from_utf8(&out).unwrap());
        let proxy: Vec<&str> = f.headers("Proxy-Authorization").collect();
        assert_eq!(proxy.len(), 1);
        assert!(proxy[0].contains("next.test"), "{proxy:?}");
        assert!(f.header("Authorization").unwrap().contains("b.test"));
    }

    #[test]
    fn a_relayed_response_loses_only_the_top_via() {
        let m = parse(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfw1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n\
             Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n\
             From: <sip:alice@a.test>;tag=1\r\nTo: <sip:bob@b.test>;tag=2\r\nCall-ID: c1\r\n\
             CSeq: 2 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        );
        let out = relayed(&m).unwrap();
        let r = parse(std::str::from_utf8(&out).unwrap());
        assert_eq!(r.status(), Some(200));
        assert_eq!(
            r.header_values("Via").unwrap(),
            [
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa",
                "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb"
            ]
        );
        assert_eq!(r.header("To"), Some("<sip:bob@b.test>;tag=2"));
    }
}
