//! The SIP message codec through the public API: realistic messages from softphones and
//! servers, the grammar's corners, malformed and oversized input, the 400 builder, stream
//! framing and round trips.

use impp::sip::framing::{frame, Frame, Framer};
use impp::sip::{bad_request, Contacts, MessageBuilder, SipLimits, SipMessage, Transport};
use impp::Error;

const L: SipLimits = SipLimits::DEFAULT;

/// The wire form of a message written with `\n` line ends: every `\n` becomes CRLF, `{len}`
/// becomes the body length, and the empty line and the body are appended.
fn wire(head: &str, body: &[u8]) -> Vec<u8> {
    let head = head.replace("{len}", &body.len().to_string());
    let mut out = head.replace('\n', "\r\n").into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn parse(bytes: &[u8]) -> SipMessage {
    strict(bytes, Transport::Datagram).unwrap_or_else(|e| {
        panic!(
            "should parse: {e}\n{}",
            String::from_utf8_lossy(bytes).escape_debug()
        )
    })
}

/// [`SipMessage::parse`] followed by the full [`SipMessage::check`].
fn strict(bytes: &[u8], transport: Transport) -> impp::Result<SipMessage> {
    let m = SipMessage::parse(bytes, &L, transport)?;
    m.check()?;
    Ok(m)
}

fn malformed_with(bytes: &[u8], transport: Transport) -> String {
    match strict(bytes, transport) {
        Err(Error::Malformed(m)) => m,
        other => panic!(
            "should be Malformed, got {other:?}\n{}",
            String::from_utf8_lossy(bytes).escape_debug()
        ),
    }
}

fn malformed(bytes: &[u8]) -> String {
    malformed_with(bytes, Transport::Datagram)
}

fn too_large(bytes: &[u8]) -> String {
    match strict(bytes, Transport::Datagram) {
        Err(Error::TooLarge(m)) => m,
        other => panic!("should be TooLarge, got {other:?}"),
    }
}

const REGISTER: &str = "REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5062;rport;branch=z9hG4bK-524287-1---6a1f2b8d3c
Max-Forwards: 70
Contact: <sip:alice@192.0.2.10:5062;rinstance=8e1c0d2a;transport=UDP>;+sip.instance=\"<urn:uuid:0a3c9c1e-9b4f-4c3e-8a55-1d2e3f4a5b6c>\";expires=3600
To: \"Alice\" <sip:alice@example.test>
From: \"Alice\" <sip:alice@example.test>;tag=4f1a9e2b
Call-ID: ZDY3OWM1ZjE4YjdlNGQ4Mzk1NmI2MjY3
CSeq: 2 REGISTER
Expires: 3600
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE
Supported: replaces, outbound, path
User-Agent: Zoiper rv2.10.19.6
Authorization: Digest username=\"alice\",realm=\"example.test\",nonce=\"Y2l0eS5leGFtcGxlLnRlc3Q6MTcwMA==\",uri=\"sip:example.test\",response=\"6629fae49393a05397450978507c4ef1\",cnonce=\"3a0f\",nc=00000001,qop=auth,algorithm=MD5
Allow-Events: presence, kpml, talk
Content-Length: {len}
";

#[test]
fn register_with_digest_authorization() {
    let m = parse(&wire(REGISTER, b""));
    assert!(m.is_request());
    assert_eq!(m.method(), Some("REGISTER"));
    assert_eq!(m.request_uri_text(), Some("sip:example.test"));
    assert_eq!(m.request_uri().unwrap().host(), "example.test");
    let via = m.top_via().unwrap();
    assert_eq!(via.transport(), "UDP");
    assert_eq!((via.host(), via.port()), ("192.0.2.10", Some(5062)));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.branch(), Some("z9hG4bK-524287-1---6a1f2b8d3c"));
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    let Contacts::List(contacts) = m.contact().unwrap() else {
        panic!("not a wildcard")
    };
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].params().value("expires"), Some("3600"));
    assert_eq!(
        contacts[0].params().value("+sip.instance"),
        Some("<urn:uuid:0a3c9c1e-9b4f-4c3e-8a55-1d2e3f4a5b6c>")
    );
    assert_eq!(contacts[0].uri().unwrap().param("transport"), Some("UDP"));
    assert_eq!(m.from().unwrap().tag(), Some("4f1a9e2b"));
    assert_eq!(m.from().unwrap().display_name(), Some("Alice"));
    assert_eq!(m.to().unwrap().tag(), None);
    assert_eq!(m.call_id().unwrap(), "ZDY3OWM1ZjE4YjdlNGQ4Mzk1NmI2MjY3");
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (2, "REGISTER"));
    assert_eq!(m.expires().unwrap(), Some(3600));
    assert_eq!(m.allow().unwrap().len(), 10);
    assert_eq!(m.supported().unwrap(), vec!["replaces", "outbound", "path"]);
    assert_eq!(m.allow_events().unwrap(), vec!["presence", "kpml", "talk"]);
    assert_eq!(m.header("user-agent"), Some("Zoiper rv2.10.19.6"));
    let auth = m.authorization().unwrap();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].scheme(), "Digest");
    assert_eq!(auth[0].param("username"), Some("alice"));
    assert_eq!(auth[0].param("uri"), Some("sip:example.test"));
    assert_eq!(auth[0].param("qop"), Some("auth"));
    assert_eq!(auth[0].param("nc"), Some("00000001"));
    assert_eq!(auth[0].param("response").map(str::len), Some(32));
    assert!(m.body().is_empty());
    assert_eq!(m.content_length(), Some(0));
    assert_eq!(m.event().unwrap(), None);
}

const SUBSCRIBE: &str = "SUBSCRIBE sip:bob@example.test SIP/2.0
Via: SIP/2.0/TCP 198.51.100.7:49152;branch=z9hG4bKPjb0c6ae3a0a8b4d0b;alias
Route: <sip:proxy.example.test;transport=tcp;lr>
Max-Forwards: 70
From: <sip:alice@example.test>;tag=9fxced76sl
To: <sip:bob@example.test>
Contact: \"Alice\" <sip:alice@198.51.100.7:49152;transport=TCP;ob>
Call-ID: 2d6a7fb3-8b1c-4d0b-a7e3-0b9d5c1e4f60
CSeq: 17741 SUBSCRIBE
Event: presence
Expires: 600
Accept: application/pidf+xml, application/rlmi+xml, multipart/related
Supported: eventlist, replaces, 100rel, timer, norefersub
Allow-Events: presence, message-summary, refer
User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)
Content-Length: {len}
";

#[test]
fn subscribe_for_presence() {
    let m = SipMessage::parse(&wire(SUBSCRIBE, b""), &L, Transport::Stream).unwrap();
    assert_eq!(m.method(), Some("SUBSCRIBE"));
    assert_eq!(m.event().unwrap().unwrap().package(), "presence");
    assert_eq!(m.event().unwrap().unwrap().id(), None);
    assert_eq!(m.expires().unwrap(), Some(600));
    assert_eq!(
        m.header_values("accept").unwrap(),
        vec![
            "application/pidf+xml",
            "application/rlmi+xml",
            "multipart/related"
        ]
    );
    let route = m.route().unwrap();
    assert_eq!(route.len(), 1);
    assert!(route[0].uri().unwrap().param("lr").is_some());
    assert!(route[0].uri_text().ends_with(";lr"));
    assert!(m.record_route().unwrap().is_empty());
    let with_rr = SUBSCRIBE.replace(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nRecord-Route: <sip:p1.example.test;lr>, <sip:p2.example.test;lr>\nrecord-route: <sip:p3.example.test;lr>\n",
    );
    let rr = parse(&wire(&with_rr, b""));
    let hops: Vec<&str> = rr
        .record_route()
        .unwrap()
        .iter()
        .map(|n| n.uri_text())
        .collect();
    assert_eq!(
        hops,
        vec![
            "sip:p1.example.test;lr",
            "sip:p2.example.test;lr",
            "sip:p3.example.test;lr"
        ]
    );
    assert_eq!(m.top_via().unwrap().params().get("alias"), Some(None));
    assert_eq!(m.cseq().unwrap().seq, 17741);
}

const PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:bob@example.test">
<tuple id="a8098a.b7eeb"><status><basic>open</basic></status><contact priority="0.8">sip:bob@203.0.113.5:5060</contact></tuple>
<dm:person id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person>
</presence>"#;

const NOTIFY: &str = "NOTIFY sip:alice@198.51.100.7:49152;transport=TCP;ob SIP/2.0
Via: SIP/2.0/TCP pa.example.test:5060;branch=z9hG4bK.3f1e0c9a2b;rport
Max-Forwards: 70
From: <sip:bob@example.test>;tag=ad8a2b1f
To: <sip:alice@example.test>;tag=9fxced76sl
Call-ID: 2d6a7fb3-8b1c-4d0b-a7e3-0b9d5c1e4f60
CSeq: 3 NOTIFY
Contact: <sip:pa.example.test;transport=tcp>
Event: presence;id=watch-17
Subscription-State: active;expires=599
Content-Type: application/pidf+xml
Content-Length: {len}
";

#[test]
fn notify_with_pidf_body() {
    let m = parse(&wire(NOTIFY, PIDF.as_bytes()));
    let state = m.subscription_state().unwrap().unwrap();
    assert_eq!(state.state(), "active");
    assert_eq!(state.expires(), Some(599));
    assert_eq!(state.reason(), None);
    assert_eq!(m.event().unwrap().unwrap().id(), Some("watch-17"));
    assert!(m
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "pidf+xml"));
    assert_eq!(m.body(), PIDF.as_bytes());
    let doc = impp::doc::pidf::Presence::parse(
        std::str::from_utf8(m.body()).unwrap(),
        &impp::doc::Limits::DEFAULT,
    )
    .unwrap();
    assert!(doc.is_open());
    assert_eq!(m.to().unwrap().tag(), Some("9fxced76sl"));
    assert_eq!(m.top_via().unwrap().rport(), Some(None));
}

#[test]
fn publish_with_sip_if_match() {
    let head = "PUBLISH sip:alice@example.test SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:alice@example.test>
From: <sip:alice@example.test>;tag=1928301774
Call-ID: a84b4c76e66710@192.0.2.10
CSeq: 4 PUBLISH
SIP-If-Match: dx200xyz
Event: presence
Expires: 3600
Content-Type: application/pidf+xml
Content-Length: {len}
";
    let m = parse(&wire(head, PIDF.as_bytes()));
    assert_eq!(m.header("sip-if-match"), Some("dx200xyz"));
    assert_eq!(m.headers("SIP-IF-MATCH").count(), 1);
    assert_eq!(m.header("SIP-ETag"), None);
}

#[test]
fn message_with_text_body() {
    let body = "Hello Bob, ça va? 👋\r\nSecond line".as_bytes();
    let head = "MESSAGE sip:bob@example.test SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-msg-1
Max-Forwards: 70
From: \"Alice\" <sip:alice@example.test>;tag=49583
To: <sip:bob@example.test>
Call-ID: asd88asd77a@192.0.2.10
CSeq: 1 MESSAGE
Content-Type: text/plain; charset=UTF-8
Content-Length: {len}
";
    let m = parse(&wire(head, body));
    assert_eq!(m.body(), body);
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("text", "plain"));
    assert_eq!(ct.params().value("charset"), Some("UTF-8"));
}

#[test]
fn responses_200_401_407_423() {
    let ok = "SIP/2.0 200 OK
Via: SIP/2.0/TCP 198.51.100.7:49152;branch=z9hG4bKPjb0c6ae3a0a8b4d0b;alias;received=198.51.100.7;rport=49152
From: <sip:alice@example.test>;tag=9fxced76sl
To: <sip:bob@example.test>;tag=ad8a2b1f
Call-ID: 2d6a7fb3-8b1c-4d0b-a7e3-0b9d5c1e4f60
CSeq: 17741 SUBSCRIBE
Contact: <sip:pa.example.test;transport=tcp>
Expires: 600
Content-Length: 0
";
    let m = parse(&wire(ok, b""));
    assert!(!m.is_request());
    assert_eq!((m.status(), m.reason()), (Some(200), Some("OK")));
    assert_eq!(m.method(), None);
    assert!(matches!(m.request_uri(), Err(Error::InvalidArgument(_))));
    let via = m.top_via().unwrap();
    assert_eq!(via.received(), Some("198.51.100.7"));
    assert_eq!(via.rport(), Some(Some(49152)));

    let unauthorized = "SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.10:5062;rport=5062;received=203.0.113.9;branch=z9hG4bK-524287-1---6a1f2b8d3c
From: \"Alice\" <sip:alice@example.test>;tag=4f1a9e2b
To: \"Alice\" <sip:alice@example.test>;tag=as5f2a
Call-ID: ZDY3OWM1ZjE4YjdlNGQ4Mzk1NmI2MjY3
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm=\"example.test\", nonce=\"b7c9036d\", algorithm=SHA-256, qop=\"auth\"
WWW-Authenticate: Digest realm=\"example.test\", nonce=\"b7c9036d\", algorithm=MD5, qop=\"auth\", opaque=\"\"
Server: imppd
Content-Length: 0
";
    let m = parse(&wire(unauthorized, b""));
    assert_eq!(m.status(), Some(401));
    let ch = m.www_authenticate().unwrap();
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].param("algorithm"), Some("SHA-256"));
    assert_eq!(ch[1].param("algorithm"), Some("MD5"));
    assert_eq!(ch[1].param("opaque"), Some(""));

    let proxy = unauthorized
        .replace("401 Unauthorized", "407 Proxy Authentication Required")
        .replace("WWW-Authenticate", "Proxy-Authenticate");
    let m = parse(&wire(&proxy, b""));
    assert_eq!(m.reason(), Some("Proxy Authentication Required"));
    assert_eq!(m.proxy_authenticate().unwrap().len(), 2);
    assert!(m.www_authenticate().unwrap().is_empty());

    let brief = "SIP/2.0 423 Interval Too Brief
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-2
From: <sip:alice@example.test>;tag=4f1a9e2b
To: <sip:alice@example.test>;tag=x1
Call-ID: c2
CSeq: 3 REGISTER
Min-Expires: 1800
Content-Length: 0
";
    let m = parse(&wire(brief, b""));
    assert_eq!(m.min_expires().unwrap(), Some(1800));
    assert_eq!(m.status(), Some(423));
    assert_eq!(m.retry_after(), None);

    // Retry-After: delta-seconds, then maybe a comment and parameters; at most a day.
    for (value, seconds) in [
        ("120", Some(120)),
        ("120 (back soon);duration=60", Some(120)),
        ("30;duration=10", Some(30)),
        ("999999999", Some(86_400)),
        ("soon", None),
    ] {
        let busy = brief
            .replace("423 Interval Too Brief", "503 Service Unavailable")
            .replace("Min-Expires: 1800", &format!("Retry-After: {value}"));
        assert_eq!(parse(&wire(&busy, b"")).retry_after(), seconds, "{value}");
    }
}

#[test]
fn compact_forms() {
    let head = "MESSAGE sip:bob@example.test SIP/2.0
v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc1
f: <sip:alice@example.test>;tag=1
t: <sip:bob@example.test>
i: compact-1@192.0.2.10
CSeq: 8 MESSAGE
m: <sip:alice@192.0.2.10>
k: path, gruu
o: presence
u: presence, dialog
s: hi there
e: gzip
c: text/plain
l: {len}
";
    let m = parse(&wire(head, b"hi"));
    assert_eq!(m.call_id().unwrap(), "compact-1@192.0.2.10");
    assert_eq!(m.header("Call-ID"), Some("compact-1@192.0.2.10"));
    assert_eq!(m.header("I"), Some("compact-1@192.0.2.10"));
    assert_eq!(m.from().unwrap().tag(), Some("1"));
    assert_eq!(m.to().unwrap().uri_text(), "sip:bob@example.test");
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKc1"));
    assert_eq!(m.supported().unwrap(), vec!["path", "gruu"]);
    assert_eq!(m.event().unwrap().unwrap().package(), "presence");
    assert_eq!(m.allow_events().unwrap(), vec!["presence", "dialog"]);
    assert_eq!(m.header("Subject"), Some("hi there"));
    assert_eq!(m.header("Content-Encoding"), Some("gzip"));
    assert_eq!(m.body(), b"hi");
    assert!(matches!(m.contact().unwrap(), Contacts::List(l) if l.len() == 1));
    // The names as written are kept.
    assert!(m.all_headers().any(|(n, _)| n == "l"));
}

#[test]
fn folded_headers_are_unfolded() {
    let head = "NOTIFY sip:alice@example.test SIP/2.0
Via: SIP/2.0/UDP pa.example.test;branch=z9hG4bKf1,
 SIP/2.0/UDP proxy.example.test
\t;branch=z9hG4bKf2
From: <sip:bob@example.test>
  ;tag=f
To: <sip:alice@example.test>;tag=t
Call-ID: fold-1
CSeq:
  5 NOTIFY
Subject: I know you're there,
   pick up the phone
   and talk to me!
Event: presence
Subscription-State: active
Content-Length: {len}
";
    let m = parse(&wire(head, b""));
    let vias = m.via().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host(), "proxy.example.test");
    assert_eq!(vias[1].branch(), Some("z9hG4bKf2"));
    assert_eq!(m.from().unwrap().tag(), Some("f"));
    assert_eq!(m.cseq().unwrap().seq, 5);
    let subject = m.header("Subject").unwrap();
    assert!(!subject.contains('\r') && !subject.contains('\n'));
    let words: Vec<&str> = subject.split_whitespace().collect();
    assert_eq!(
        words.join(" "),
        "I know you're there, pick up the phone and talk to me!"
    );
    // A continuation line before the first header is an error.
    let bad = "OPTIONS sip:x@example.test SIP/2.0\n folded\nContent-Length: 0\n";
    assert!(malformed(&wire(bad, b"")).contains("continuation line"));
}

fn minimal(extra: &str) -> String {
    format!(
        "OPTIONS sip:bob@example.test SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKm
From: <sip:alice@example.test>;tag=a
To: <sip:bob@example.test>
Call-ID: m1@192.0.2.10
CSeq: 1 OPTIONS
{extra}Content-Length: {{len}}
"
    )
}

#[test]
fn repeated_and_comma_separated_via_and_contact_agree() {
    let repeated = "REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP a.example.test;branch=z9hG4bK1
Via: SIP/2.0/TCP b.example.test:5070;branch=z9hG4bK2
Via: SIP/2.0/TLS [2001:db8::7]:5061;branch=z9hG4bK3
From: <sip:alice@example.test>;tag=a
To: <sip:alice@example.test>
Call-ID: rep-1
CSeq: 1 REGISTER
Contact: <sip:alice@192.0.2.1>;q=0.7
Contact: \"Alice, mobile\" <sip:alice@192.0.2.2>;q=0.5
Content-Length: 0
";
    let combined = "REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP a.example.test;branch=z9hG4bK1, SIP/2.0/TCP b.example.test:5070;branch=z9hG4bK2,SIP/2.0/TLS [2001:db8::7]:5061;branch=z9hG4bK3
From: <sip:alice@example.test>;tag=a
To: <sip:alice@example.test>
Call-ID: rep-1
CSeq: 1 REGISTER
Contact: <sip:alice@192.0.2.1>;q=0.7, \"Alice, mobile\" <sip:alice@192.0.2.2>;q=0.5
Content-Length: 0
";
    let a = parse(&wire(repeated, b""));
    let b = parse(&wire(combined, b""));
    assert_eq!(a.via().unwrap(), b.via().unwrap());
    assert_eq!(a.via().unwrap().len(), 3);
    assert_eq!(a.top_via().unwrap(), b.top_via().unwrap());
    assert_eq!(a.via().unwrap()[2].host(), "[2001:db8::7]");
    assert_eq!(a.contact().unwrap(), b.contact().unwrap());
    let Contacts::List(list) = b.contact().unwrap() else {
        panic!()
    };
    assert_eq!(list[1].display_name(), Some("Alice, mobile"));
    assert_eq!(list[1].params().value("q"), Some("0.5"));
    assert_eq!(a.headers("via").count(), 3);
    assert_eq!(b.headers("via").count(), 1);
    assert_eq!(b.header_values("Via").unwrap().len(), 3);
}

#[test]
fn quoted_display_names_with_commas_and_escapes() {
    let extra = "Contact: \"Smith, John \\\"JJ\\\"\" <sip:jj@192.0.2.3>, \"O'Brien \\\\ Co\" <sip:ob@192.0.2.4>;expires=60\n";
    let text = minimal(extra).replace(
        "From: <sip:alice@example.test>;tag=a",
        "From: \"Doe, Jane \\\"the <boss>\\\"\" <sip:jane@example.test>;tag=a",
    );
    let m = parse(&wire(&text, b""));
    assert_eq!(
        m.from().unwrap().display_name(),
        Some("Doe, Jane \"the <boss>\"")
    );
    assert_eq!(m.from().unwrap().uri_text(), "sip:jane@example.test");
    let Contacts::List(list) = m.contact().unwrap() else {
        panic!()
    };
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].display_name(), Some("Smith, John \"JJ\""));
    assert_eq!(list[1].display_name(), Some("O'Brien \\ Co"));
    assert_eq!(list[1].params().value("expires"), Some("60"));
}

#[test]
fn ipv6_via_and_request_uri() {
    let head = "MESSAGE sip:bob@[2001:db8::5]:5080;transport=udp SIP/2.0
Via: SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK6;received=2001:db8::99;rport=5062
Via: SIP/2.0/UDP [::1];branch=z9hG4bK7
From: <sip:alice@[2001:db8::10]>;tag=6
To: <sip:bob@[2001:db8::5]>
Call-ID: v6@[2001:db8::10]
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: {len}
";
    let m = parse(&wire(head, b"x"));
    let uri = m.request_uri().unwrap();
    assert_eq!((uri.host(), uri.port()), ("[2001:db8::5]", Some(5080)));
    let vias = m.via().unwrap();
    assert_eq!(vias[0].host(), "[2001:db8::10]");
    assert_eq!(vias[0].received(), Some("2001:db8::99"));
    assert_eq!(vias[0].rport(), Some(Some(5062)));
    assert_eq!(vias[1].host(), "[::1]");
    assert_eq!(vias[1].port(), None);
    assert_eq!(m.from().unwrap().uri().unwrap().host(), "[2001:db8::10]");
    let bad = head.replace("[2001:db8::10]:5062", "[2001:db8::zz]:5062");
    assert!(malformed(&wire(&bad, b"x")).contains("IPv6"));
}

#[test]
fn header_names_are_case_insensitive() {
    let head = "OPTIONS sip:bob@example.test SIP/2.0
VIA: SIP/2.0/UDP 192.0.2.10;BRANCH=z9hG4bKci
fROM: <sip:alice@example.test>;TAG=a
to: <sip:bob@example.test>
cAlL-iD: ci-1
cseq: 1 OPTIONS
X-Custom-Thing: one
x-custom-thing: two
content-length: {len}
";
    let m = parse(&wire(head, b""));
    assert_eq!(m.call_id().unwrap(), "ci-1");
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKci"));
    assert_eq!(m.from().unwrap().tag(), Some("a"));
    assert_eq!(
        m.headers("X-CUSTOM-THING").collect::<Vec<_>>(),
        vec!["one", "two"]
    );
    assert_eq!(m.header("Call-Id"), Some("ci-1"));
}

#[test]
fn contact_star() {
    let text = minimal("Contact: *\nExpires: 0\n").replace("OPTIONS", "REGISTER");
    let m = parse(&wire(&text, b""));
    assert_eq!(m.contact().unwrap(), Contacts::Wildcard);
    assert_eq!(m.expires().unwrap(), Some(0));
    let text = minimal("Contact: *, <sip:a@192.0.2.1>\n");
    let m = parse(&wire(&text, b""));
    assert!(m.contact().is_err());
    let text = minimal("Contact: *\nContact: *\n");
    assert!(parse(&wire(&text, b"")).contact().is_err());
    let m = parse(&wire(&minimal(""), b""));
    assert_eq!(m.contact().unwrap(), Contacts::List(vec![]));
}

#[test]
fn binary_body() {
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n\0\0").collect();
    let text = minimal("Content-Type: application/octet-stream\n");
    let bytes = wire(&text, &body);
    let m = parse(&bytes);
    assert_eq!(m.body(), &body[..]);
    let s = SipMessage::parse(&bytes, &L, Transport::Stream).unwrap();
    assert_eq!(s.body(), &body[..]);
    assert_eq!(
        frame(&bytes, &L).unwrap(),
        Some(Frame::Message(bytes.len()))
    );
}

#[test]
fn content_length_mismatches() {
    let text = minimal("Content-Type: text/plain\n");
    // Longer body than Content-Length: a datagram's extra bytes are discarded...
    let short = text.replace("{len}", "3");
    let bytes = wire(&short, b"hello");
    assert_eq!(parse(&bytes).body(), b"hel");
    // ...but on a stream they are an error.
    assert!(malformed_with(&bytes, Transport::Stream).contains("2 bytes after"));
    // Content-Length larger than the body received.
    let long = text.replace("{len}", "50");
    let bytes = wire(&long, b"hello");
    let msg = malformed(&bytes);
    assert!(msg.contains("Content-Length 50 but only 5"), "{msg}");
    // Still answerable with a 400.
    let lenient = SipMessage::parse_lenient(&bytes, &L, Transport::Datagram).unwrap();
    assert!(lenient.can_answer_bad_request());
    // No Content-Length: fine over UDP (rest of the datagram), an error over TCP.
    let none = text.replace("Content-Length: {len}\n", "");
    let bytes = wire(&none, b"body");
    assert_eq!(parse(&bytes).body(), b"body");
    assert!(malformed_with(&bytes, Transport::Stream).contains("missing Content-Length"));
    // Not a number, and conflicting values.
    let bytes = wire(&text.replace("{len}", "4x"), b"body");
    assert!(malformed(&bytes).contains("Content-Length"));
    let two = text.replace("Content-Length: {len}\n", "Content-Length: 4\nl: 3\n");
    assert!(malformed(&wire(&two, b"body")).contains("conflicting Content-Length"));
    // A body without Content-Type.
    let bytes = wire(&minimal(""), b"body");
    assert!(malformed(&bytes).contains("without Content-Type"));
}

#[test]
fn missing_mandatory_headers() {
    let full = minimal("");
    for (line, name) in [
        ("Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKm\n", "Via"),
        ("From: <sip:alice@example.test>;tag=a\n", "From"),
        ("To: <sip:bob@example.test>\n", "To"),
        ("Call-ID: m1@192.0.2.10\n", "Call-ID"),
        ("CSeq: 1 OPTIONS\n", "CSeq"),
    ] {
        let text = full.replace(line, "");
        let bytes = wire(&text, b"");
        let msg = malformed(&bytes);
        assert!(msg.contains(&format!("missing {name} header")), "{msg}");
        let lenient = SipMessage::parse_lenient(&bytes, &L, Transport::Datagram).unwrap();
        assert!(!lenient.can_answer_bad_request());
        assert!(bad_request(&lenient, &Error::Malformed(msg), None).is_err());
    }
    // Duplicates of single-valued headers.
    let text = full.replace("Call-ID: m1@192.0.2.10\n", "Call-ID: a\nCall-ID: b\n");
    assert!(malformed(&wire(&text, b"")).contains("more than one Call-ID"));
}

#[test]
fn parse_defers_typed_syntax_to_the_accessors() {
    let text = minimal("")
        .replace(
            "From: <sip:alice@example.test>;tag=a",
            "From: <sip:alice@example.test",
        )
        .replace("branch=z9hG4bKm", "branch=z9hG4bKm;rport=x");
    let bytes = wire(&text, b"");
    let m = SipMessage::parse(&bytes, &L, Transport::Datagram).unwrap();
    assert!(m.from().unwrap_err().to_string().contains("missing >"));
    assert!(m.top_via().unwrap_err().to_string().contains("rport"));
    let err = m.check().unwrap_err();
    assert!(err.to_string().contains("rport"), "{err}");
    assert!(!m.can_answer_bad_request());
    assert_eq!(m.call_id().unwrap(), "m1@192.0.2.10");
}

#[test]
fn bad_cseq() {
    for (cseq, expect) in [
        ("CSeq: x OPTIONS", "sequence number"),
        ("CSeq: 1", "missing the method"),
        ("CSeq: 1 SUBSCRIBE", "differs from the request method"),
        ("CSeq: 4294967296 OPTIONS", "not below 2^31"),
        ("CSeq: 1 OPTIONS extra", "unexpected"),
    ] {
        let text = minimal("").replace("CSeq: 1 OPTIONS", cseq);
        let msg = malformed(&wire(&text, b""));
        assert!(
            msg.contains("CSeq") && msg.contains(expect),
            "{cseq}: {msg}"
        );
    }
}

#[test]
fn bad_start_lines() {
    let ok = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n";
    parse(&wire(ok, b""));
    for status in ["99", "700", "20x", "2000", "", "-20"] {
        let text = ok.replace("200 OK", &format!("{status} OK"));
        let msg = malformed(&wire(&text, b""));
        assert!(msg.contains("status code"), "{status}: {msg}");
    }
    let empty_reason = ok.replace("200 OK", "200 ");
    assert_eq!(parse(&wire(&empty_reason, b"")).reason(), Some(""));
    // Found by fuzzing: a status line without the space and reason phrase.
    let no_reason = ok.replace("200 OK", "200");
    assert_eq!(parse(&wire(&no_reason, b"")).reason(), Some(""));
    // Found by fuzzing: a multi-byte character across the fourth byte of the start line.
    let msg = malformed("SI/\u{4ef}2ipc\r\nContent-Length: 0\r\n\r\n".as_bytes());
    assert!(msg.contains("not a token"), "{msg}");
    for version in ["SIP/3.0", "HTTP/1.1", "SIP/2.00"] {
        let text = ok.replace("SIP/2.0 200", &format!("{version} 200"));
        let msg = malformed(&wire(&text, b""));
        assert!(
            msg.contains("version") || msg.contains("not a token"),
            "{msg}"
        );
        let req = minimal("").replacen(" SIP/2.0\n", &format!(" {version}\n"), 1);
        let msg = malformed(&wire(&req, b""));
        assert!(msg.contains("unsupported protocol version"), "{msg}");
    }
    let text = minimal("").replacen("OPTIONS sip:bob@example.test SIP/2.0", "OPTIONS SIP/2.0", 1);
    assert!(malformed(&wire(&text, b"")).contains("not \"method Request-URI SIP/2.0\""));
    let text = minimal("").replacen("OPTIONS sip:", "OPT(IONS sip:", 1);
    assert!(malformed(&wire(&text, b"")).contains("method"));
    // Lines must end in CRLF.
    let mut bytes = wire(&minimal(""), b"");
    let lf = bytes.iter().position(|&b| b == b'\r').unwrap();
    bytes.remove(lf);
    assert!(malformed(&bytes).contains("bare LF"));
    let header_no_colon = minimal("Garbage line\n");
    assert!(malformed(&wire(&header_no_colon, b"")).contains("without a colon"));
    assert!(malformed(b"").contains("empty"));
    assert!(malformed(b"OPTIONS sip:a@b SIP/2.0").contains("not terminated"));
    assert!(malformed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n").contains("empty line"));
    // Leading CRLFs are skipped.
    let mut bytes = b"\r\n\r\n".to_vec();
    bytes.extend(wire(&minimal(""), b""));
    assert_eq!(parse(&bytes).method(), Some("OPTIONS"));
}

#[test]
fn oversized_input() {
    let many: String = (0..129).map(|i| format!("X-H{i}: v\n")).collect();
    let msg = too_large(&wire(&minimal(&many), b""));
    assert!(msg.contains("more than 128 header fields"), "{msg}");
    let fits: String = (0..120).map(|i| format!("X-H{i}: v\n")).collect();
    parse(&wire(&minimal(&fits), b""));

    let long = format!("Subject: {}\n", "a".repeat(9000));
    assert!(too_large(&wire(&minimal(&long), b"")).contains("line of"));
    let folded = format!("Subject: {}\n {}\n", "a".repeat(5000), "b".repeat(5000));
    assert!(too_large(&wire(&minimal(&folded), b"")).contains("folded header"));

    let body = vec![b'x'; 70 * 1024];
    let text = minimal("Content-Type: text/plain\n");
    assert!(too_large(&wire(&text, &body)).contains("exceed the limit"));
    let roomy = SipLimits {
        max_message_size: 1 << 20,
        ..L
    };
    let m = SipMessage::parse(&wire(&text, &body), &roomy, Transport::Datagram).unwrap();
    assert_eq!(m.body().len(), body.len());
}

#[test]
fn nul_and_control_bytes() {
    let text = minimal("Subject: a\0b\n");
    let msg = malformed(&wire(&text, b""));
    assert!(msg.contains("control character 0x00"), "{msg}");
    let text = minimal("").replace("OPTIONS sip:bob", "OPTIONS sip:b\x01ob");
    assert!(malformed(&wire(&text, b"")).contains("0x01"));
    let text = minimal("Subject: a\x7fb\n");
    assert!(malformed(&wire(&text, b"")).contains("0x7f"));
    let mut bytes = wire(&minimal("Subject: xx\n"), b"");
    let at = bytes.windows(2).position(|w| w == b"xx").unwrap();
    bytes[at] = 0xff;
    assert!(malformed(&bytes).contains("not valid UTF-8"));
    // Tabs are fine.
    parse(&wire(&minimal("Subject:\ta\tb\n"), b""));
}

#[test]
fn bad_request_names_the_problem() {
    let text = minimal("").replace("CSeq: 1 OPTIONS", "CSeq: 1 NOTIFY");
    let bytes = wire(&text, b"");
    let err = SipMessage::parse(&bytes, &L, Transport::Datagram).unwrap_err();
    let req = SipMessage::parse_lenient(&bytes, &L, Transport::Datagram).unwrap();
    assert_eq!(req.check().unwrap_err(), err);
    assert!(req.can_answer_bad_request());
    let out = bad_request(&req, &err, Some("srv7")).unwrap();
    let resp = parse(&out);
    assert_eq!(resp.status(), Some(400));
    let reason = resp.reason().unwrap();
    assert!(reason.starts_with("Bad Request - CSeq header"), "{reason}");
    assert!(reason.contains("differs from the request method"));
    assert_eq!(resp.to().unwrap().tag(), Some("srv7"));
    assert_eq!(resp.from().unwrap().tag(), Some("a"));
    assert_eq!(resp.call_id().unwrap(), "m1@192.0.2.10");
    assert_eq!(resp.cseq().unwrap().method, "NOTIFY");
    assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bKm"));
    // An ACK is never answered; a long problem is cut.
    let ack = minimal("").replace("OPTIONS", "ACK");
    let ack = SipMessage::parse(&wire(&ack, b""), &L, Transport::Datagram).unwrap();
    assert!(!ack.can_answer_bad_request());
    let out = bad_request(&req, &Error::Malformed("x".repeat(1000)), None).unwrap();
    assert!(parse(&out).reason().unwrap().len() <= 200);
}

fn stream_of(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut s = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if i % 2 == 1 {
            s.extend_from_slice(b"\r\n\r\n");
        }
        s.extend_from_slice(m);
    }
    s
}

/// Feeds `stream` to a framer in the chunk sizes `next_chunk` gives and returns the frames.
fn feed(stream: &[u8], mut next_chunk: impl FnMut() -> usize) -> Vec<Frame> {
    let mut framer = Framer::new(L);
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = next_chunk().clamp(1, stream.len() - at);
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        while let Some(f) = framer.next_frame(&buf).unwrap() {
            if let Frame::Message(len) = f {
                SipMessage::parse(&buf[..len], &L, Transport::Stream).unwrap();
            }
            buf.drain(..f.len());
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    frames
}

#[test]
fn framing_with_partial_reads() {
    let messages = vec![
        wire(NOTIFY, PIDF.as_bytes()),
        wire(SUBSCRIBE, b""),
        wire(
            &minimal("Content-Type: application/octet-stream\n"),
            &[0, 13, 10, 13, 10, 255],
        ),
        wire(REGISTER, b""),
    ];
    let stream = stream_of(&messages);
    let expected: Vec<Frame> = vec![
        Frame::Message(messages[0].len()),
        Frame::Ping,
        Frame::Message(messages[1].len()),
        Frame::Message(messages[2].len()),
        Frame::Ping,
        Frame::Message(messages[3].len()),
    ];
    assert_eq!(feed(&stream, || stream.len()), expected);
    // Byte by byte: a ping whose second CRLF comes later is seen as two pongs.
    let bytewise = feed(&stream, || 1);
    let messages_only = |f: &[Frame]| {
        f.iter()
            .filter(|f| matches!(f, Frame::Message(_)))
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(messages_only(&bytewise), messages_only(&expected));
    assert_eq!(
        bytewise.iter().filter(|f| **f == Frame::Pong).count(),
        4,
        "{bytewise:?}"
    );
    // Random chunk sizes (a fixed linear congruential sequence).
    let mut seed = 0x2545_f491_u64;
    for _ in 0..50 {
        let frames = feed(&stream, || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % 300 + 1
        });
        assert_eq!(messages_only(&frames), messages_only(&expected));
    }
}

#[test]
fn framing_keep_alives_and_errors() {
    assert_eq!(frame(b"", &L).unwrap(), None);
    assert_eq!(frame(b"\r", &L).unwrap(), None);
    assert_eq!(frame(b"\r\n", &L).unwrap(), Some(Frame::Pong));
    assert_eq!(frame(b"\r\n\r", &L).unwrap(), None);
    assert_eq!(frame(b"\r\n\r\n", &L).unwrap(), Some(Frame::Ping));
    assert_eq!(frame(b"\r\nOPTIONS", &L).unwrap(), Some(Frame::Pong));
    assert_eq!(frame(b"OPTIONS sip:a@b SIP/2.0\r\nVia", &L).unwrap(), None);
    for garbage in [
        &b"\x16\x03\x01\x02\x00"[..],
        b"\n\n",
        b"GET / HTTP/1.1\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nX: a\0",
        b"OPTIONS sip:a@b SIP/2.0\nVia",
    ] {
        assert!(
            matches!(frame(garbage, &L), Err(Error::Malformed(_))),
            "{garbage:?}"
        );
    }
    let no_length = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
    let err = frame(no_length, &L).unwrap_err().to_string();
    assert!(err.contains("missing Content-Length"), "{err}");
    let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n";
    assert!(matches!(frame(huge, &L), Err(Error::TooLarge(_))));
    let mut endless = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
    while endless.len() <= L.max_message_size {
        endless.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(matches!(frame(&endless, &L), Err(Error::TooLarge(_))));
    let long_line = [&b"OPTIONS sip:a@b SIP/2.0\r\nX: "[..], &[b'a'; 9000]].concat();
    assert!(matches!(frame(&long_line, &L), Err(Error::TooLarge(_))));
    // A folded Content-Length is found.
    let folded = b"OPTIONS sip:a@b SIP/2.0\r\nl:\r\n 2\r\n\r\nhi";
    assert_eq!(
        frame(folded, &L).unwrap(),
        Some(Frame::Message(folded.len()))
    );
}

#[test]
fn build_and_round_trip() {
    let mut b =
        MessageBuilder::request("NOTIFY", "sip:alice@198.51.100.7:49152;transport=tcp").unwrap();
    b.header("Via", "SIP/2.0/TCP pa.example.test;branch=z9hG4bK.rt1")
        .unwrap()
        .header("Max-Forwards", "70")
        .unwrap()
        .header("From", "<sip:bob@example.test>;tag=rt-f")
        .unwrap()
        .header("To", "\"Alice, A.\" <sip:alice@example.test>;tag=rt-t")
        .unwrap()
        .header("Call-ID", "rt-1@pa.example.test")
        .unwrap()
        .header("CSeq", "9 NOTIFY")
        .unwrap()
        .header("Event", "presence")
        .unwrap()
        .header("Subscription-State", "terminated;reason=noresource")
        .unwrap()
        .body("application/pidf+xml", PIDF.as_bytes())
        .unwrap();
    let bytes = b.build();
    let m = SipMessage::parse(&bytes, &L, Transport::Stream).unwrap();
    assert_eq!(m.method(), Some("NOTIFY"));
    assert_eq!(m.body(), PIDF.as_bytes());
    assert_eq!(m.content_length(), Some(PIDF.len() as u32));
    assert_eq!(m.to().unwrap().display_name(), Some("Alice, A."));
    assert_eq!(
        m.subscription_state().unwrap().unwrap().reason(),
        Some("noresource")
    );
    assert_eq!(
        frame(&bytes, &L).unwrap(),
        Some(Frame::Message(bytes.len()))
    );

    // The response copies Via(s), From, To (+ tag), Call-ID and CSeq.
    let req = parse(&wire(
        &minimal("Via: SIP/2.0/UDP second.example.test;branch=z9hG4bK2\n"),
        b"",
    ));
    let mut r = MessageBuilder::response_to(&req, 200, "OK", Some("uas-1")).unwrap();
    r.header("Expires", "600").unwrap();
    let resp = parse(&r.build());
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.via().unwrap(), req.via().unwrap());
    assert_eq!(resp.from().unwrap(), req.from().unwrap());
    assert_eq!(resp.to().unwrap().tag(), Some("uas-1"));
    assert_eq!(resp.call_id().unwrap(), req.call_id().unwrap());
    assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
    assert_eq!(resp.expires().unwrap(), Some(600));
    // An existing To tag is kept.
    let again = MessageBuilder::response_to(&resp, 202, "Accepted", Some("other"));
    assert!(again.is_err(), "a response is not a request");
    let tagged = parse(&wire(
        &minimal("").replace(
            "To: <sip:bob@example.test>",
            "To: <sip:bob@example.test>;tag=old",
        ),
        b"",
    ));
    let r = MessageBuilder::response_to(&tagged, 200, "OK", Some("new")).unwrap();
    assert_eq!(parse(&r.build()).to().unwrap().tag(), Some("old"));

    // Builder refusals.
    assert!(MessageBuilder::request("BAD METHOD", "sip:a@b").is_err());
    assert!(MessageBuilder::request("OPTIONS", "sip:a@b c").is_err());
    assert!(MessageBuilder::response(99, "x").is_err());
    assert!(MessageBuilder::response(200, "O\r\nK").is_err());
    let mut b = MessageBuilder::request("OPTIONS", "sip:a@b").unwrap();
    assert!(b.header("X-A", "x\r\nInjected: 1").is_err());
    assert!(b.header("Bad Name", "x").is_err());
    assert!(b.header("Content-Length", "5").is_err());
    assert!(b.header("l", "5").is_err());
    assert!(b.body("text", b"x").is_err());
    // A header written in parts is the header of their concatenation, refused alike.
    assert!(b.header_parts("X-A", &["x", "\r\nInjected: 1"]).is_err());
    assert!(b.header_parts("Content-Length", &["5"]).is_err());
    assert!(b.header_parts("Bad Name", &["x"]).is_err());
    let mut whole = MessageBuilder::request("OPTIONS", "sip:a@b").unwrap();
    whole.header("From", "<sip:a@b>;tag=t1").unwrap();
    let mut parts = MessageBuilder::request("OPTIONS", "sip:a@b").unwrap();
    parts
        .header_parts("From", &["<", "sip:a@b", ">;tag=", "t1"])
        .unwrap();
    assert_eq!(parts.build(), whole.build());
}

/// `peek_response` reads a response's status and top Via in place; where it answers, the
/// answer is the full parse's; where the message is not plain enough it declines (`None`) and
/// leaves the decision to the full parse.
#[test]
fn peek_response_agrees_with_the_full_parse_or_declines() {
    let agrees = |bytes: &[u8]| {
        let (status, top) = SipMessage::peek_response(bytes)
            .unwrap_or_else(|| panic!("peeked: {}", String::from_utf8_lossy(bytes)));
        let m = parse(bytes);
        assert_eq!(Some(status), m.status());
        let full = m.top_via().unwrap();
        let peeked = impp::sip::header::Via::parse(top).unwrap();
        assert_eq!(peeked.branch(), full.branch());
        assert_eq!(peeked.transport(), full.transport());
        assert_eq!(peeked.host(), full.host());
        (status, top.to_string())
    };
    let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnotify1;rport=5060";
    let response = |status: &str, headers: &str| {
        wire(
            &format!(
                "SIP/2.0 {status}\n{headers}From: <sip:a@example.test>;tag=1\nTo: <sip:b@example.test>;tag=2\nCall-ID: c1\nCSeq: 7 NOTIFY\nContent-Length: 0\n"
            ),
            b"",
        )
    };
    // The usual answer to a NOTIFY, and the same with the Via further down, compact, in
    // odd case, with a second entry in the same field, after leading CRLFs.
    let (status, top) = agrees(&response("200 OK", &format!("Via: {via}\n")));
    assert_eq!((status, top.as_str()), (200, via));
    agrees(&response(
        "481 Call/Transaction Does Not Exist",
        &format!("Server: x\nv:   {via}\n"),
    ));
    agrees(&response(
        "200 OK",
        &format!("vIA : {via} , SIP/2.0/TCP 198.51.100.2;branch=z9hG4bKsecond\n"),
    ));
    agrees(&response(
        "202 Accepted",
        &format!(
            "Subject: folded\n  over two lines\nVia: {via}\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\n"
        ),
    ));
    let mut lead = b"\r\n\r\n".to_vec();
    lead.extend(response("200 OK", &format!("Via: {via}\n")));
    agrees(&lead);
    let (status, _) = agrees(&response("100 Trying", &format!("Via: {via}\n")));
    assert_eq!(
        status, 100,
        "provisional responses are read too; the caller decides"
    );

    // Declined: requests, a folded Via, bare LF, control characters or non-UTF-8 bytes in
    // the Via, no Via, a malformed status line, cut short.
    let declined = |bytes: &[u8]| {
        assert_eq!(
            SipMessage::peek_response(bytes),
            None,
            "{}",
            String::from_utf8_lossy(bytes)
        )
    };
    declined(&wire(
        &format!("NOTIFY sip:b@example.test SIP/2.0\nVia: {via}\nContent-Length: 0\n"),
        b"",
    ));
    declined(&response(
        "200 OK",
        "Via: SIP/2.0/UDP 192.0.2.1:5060\n ;branch=z9hG4bKfold\n",
    ));
    declined(format!("SIP/2.0 200 OK\nVia: {via}\n\n").as_bytes());
    declined(&response(
        "200 OK",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK\u{1}x\n",
    ));
    let mut latin1 = response("200 OK", "Via: SIP/2.0/UDP h;branch=z9hG4bKxx\n");
    let at = latin1.windows(2).position(|w| w == b"xx").unwrap();
    latin1[at] = 0xe9;
    declined(&latin1);
    declined(&response("200 OK", ""));
    for status in ["2000 OK", "20 OK", "abc OK", "099 Low", "700 High"] {
        declined(&response(status, &format!("Via: {via}\n")));
    }
    declined(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKcut");
    declined(b"SIP/2.0 200 OK");
    declined(b"");
}
