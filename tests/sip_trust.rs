//! Trust between domains (DESIGN §5a) at the wire: a request claiming an identity of a
//! domain the server does not own is believed only from a peer that speaks for it (a listed
//! address, a mutual-TLS certificate naming it), unless federation is open; the forwarder
//! challenges its own users as a proxy (407) and relays no stranger; a PBX listed as a
//! publisher publishes its users' dialog state; an account takes messages only from its
//! server; imppd's flags and config file set all of it.
//!
//! Every server runs on 127.0.0.1. The other loopback addresses (127.0.0.2, .3, .4, all of
//! 127.0.0.0/8 reaches the host) stand for other machines: a stranger, a PBX, a peer.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{Issued, TestCa};
use common::sip::token;
use common::tls::TlsConn;
use impp::engine::{AuthAction, Engine, EngineConfig};
use impp::sip::agent::Account;
use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::route::{NextHop, Route};
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{
    Federation, SipLimits, SipMessage, SipServer, SipServerConfig, Transport, TrustedPeer,
    TrustedPublisher,
};
use impp::store::{Credential, MemoryStore};

/// One domain's server, with users alice, bob, carol and voicemail (password `USER-pw`).
struct Node {
    engine: Arc<Engine>,
    server: SipServer,
}

impl Node {
    fn start(domain: &str, tweak: impl FnOnce(&mut SipServerConfig)) -> Node {
        let engine = Arc::new(
            Engine::new(EngineConfig {
                domains: vec![domain.into()],
                default_policy: AuthAction::Allow,
                workers: 2,
                store: Arc::new(MemoryStore::new()),
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        for user in ["alice", "bob", "carol", "voicemail"] {
            engine
                .set_user(Credential::new(
                    format!("sip:{user}@{domain}").parse().unwrap(),
                    domain,
                    &format!("{user}-pw"),
                ))
                .unwrap();
        }
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(local)]);
        tweak(&mut config);
        let server = SipServer::start(engine.clone(), config).unwrap();
        Node { engine, server }
    }

    fn addr(&self, proto: Proto) -> SocketAddr {
        self.server
            .local_addrs()
            .iter()
            .find(|l| l.proto == proto)
            .unwrap()
            .addr
    }

    fn udp(&self) -> SocketAddr {
        self.addr(Proto::Udp)
    }

    fn messages_waiting(&self) -> u64 {
        self.engine.stats().messages_waiting
    }

    fn subscriptions(&self) -> u64 {
        let s = self.engine.stats();
        s.subscriptions_active + s.subscriptions_pending
    }
}

fn peer(text: &str) -> TrustedPeer {
    TrustedPeer::parse(text).unwrap()
}

fn parse(bytes: &[u8], transport: Transport) -> SipMessage {
    SipMessage::parse(bytes, &SipLimits::DEFAULT, transport).unwrap()
}

static CSEQ: AtomicU32 = AtomicU32::new(1);

/// The text of a request from `user@domain` at `local` (a Via of `via` transport).
#[allow(clippy::too_many_arguments)]
fn request_text(
    via: &str,
    local: SocketAddr,
    user: &str,
    domain: &str,
    method: &str,
    uri: &str,
    to: &str,
    call_id: &str,
    extra: &str,
    body: Option<(&str, &str)>,
) -> Vec<u8> {
    let cseq = CSEQ.fetch_add(1, Ordering::Relaxed);
    let (content, body) = match body {
        Some((ct, b)) => (format!("Content-Type: {ct}\r\n"), b),
        None => (String::new(), ""),
    };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{local}>\r\n{extra}{content}Content-Length: {len}\r\n\r\n{body}",
        b = token(),
        tag = token(),
        len = body.len(),
    )
    .into_bytes()
}

/// The Authorization (or, answering a 407, Proxy-Authorization) line for `user`'s
/// password answering challenge `r` of `request`.
fn credentials(r: &SipMessage, request: &[u8], user: &str, domain: &str) -> String {
    let (header, answer) = match r.status() {
        Some(407) => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => ("WWW-Authenticate", "Authorization"),
    };
    let challenge = r
        .headers(header)
        .find(|c| c.contains("MD5"))
        .expect("an MD5 challenge")
        .to_string();
    let param = |name: &str| {
        let i = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        challenge[i..].split('"').next().unwrap().to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let credential = Credential::new(
        format!("sip:{user}@{domain}").parse().unwrap(),
        &realm,
        &format!("{user}-pw"),
    );
    let m = parse(request, Transport::Datagram);
    let (method, uri) = (m.method().unwrap(), m.request_uri_text().unwrap());
    let cnonce = token();
    let response = expected_response(
        Algorithm::Md5,
        &credential.ha1_md5,
        method,
        uri,
        &nonce,
        Some(("auth", "00000001", &cnonce)),
    );
    format!(
        "{answer}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n"
    )
}

/// A user agent on one UDP socket bound to a loopback address of its own.
struct Ua {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    domain: String,
    /// Requests received and not yet looked at (answered 200).
    requests: Vec<SipMessage>,
}

impl Ua {
    fn new(ip: &str, server: SocketAddr, user: &str, domain: &str) -> Ua {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Ua {
            socket,
            server,
            user: user.into(),
            domain: domain.into(),
            requests: Vec::new(),
        }
    }

    fn request(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        request_text(
            "UDP",
            self.socket.local_addr().unwrap(),
            &self.user,
            &self.domain,
            method,
            uri,
            to,
            &token(),
            extra,
            body,
        )
    }

    fn message(&self, to: &str, text: &str) -> Vec<u8> {
        self.request(
            "MESSAGE",
            to,
            &format!("<{to}>"),
            "",
            Some(("text/plain", text)),
        )
    }

    fn subscribe(&self, to: &str, event: &str) -> Vec<u8> {
        self.request(
            "SUBSCRIBE",
            to,
            &format!("<{to}>"),
            &format!("Event: {event}\r\nExpires: 600\r\n"),
            None,
        )
    }

    fn send(&self, request: &[u8]) {
        self.socket.send_to(request, self.server).unwrap();
    }

    /// Receives one message (`None` after the read timeout); requests are answered 200.
    fn receive(&mut self) -> Option<SipMessage> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = self.socket.recv_from(&mut buf).ok()?;
        let m = parse(&buf[..n], Transport::Datagram);
        if m.is_request() {
            self.socket.send_to(&ok_for(&m), from).unwrap();
        }
        Some(m)
    }

    /// The final answer to `request`, sent before.
    fn final_response(&mut self, request: &[u8]) -> SipMessage {
        let sent = parse(request, Transport::Datagram);
        let (call_id, cseq) = (sent.call_id().unwrap(), sent.header("CSeq").unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Some(m) = self.receive() else { continue };
            if m.is_request() {
                self.requests.push(m);
            } else if m.call_id().unwrap() == call_id
                && m.header("CSeq") == Some(cseq)
                && m.status().unwrap() >= 200
            {
                return m;
            }
        }
        panic!("no final response to {}", String::from_utf8_lossy(request));
    }

    fn transact(&mut self, request: &[u8]) -> SipMessage {
        self.send(request);
        self.final_response(request)
    }

    /// `build(credentials)` sent, and again with credentials after a 401 or 407.
    fn transact_auth(&mut self, build: impl Fn(&Ua, &str) -> Vec<u8>) -> SipMessage {
        let first = build(self, "");
        let r = self.transact(&first);
        if !matches!(r.status(), Some(401 | 407)) {
            return r;
        }
        let (user, domain) = (self.user.clone(), self.domain.clone());
        let again = build(self, &credentials(&r, &first, &user, &domain));
        self.transact(&again)
    }

    /// Waits for a request `method` from the server (answered 200).
    fn next_request(&mut self, method: &str) -> SipMessage {
        if let Some(i) = self
            .requests
            .iter()
            .position(|m| m.method() == Some(method))
        {
            return self.requests.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(m) = self.receive() {
                if m.method() == Some(method) {
                    return m;
                }
                if m.is_request() {
                    self.requests.push(m);
                }
            }
        }
        panic!("no {method} arrived");
    }

    /// Whether nothing arrives for a while (what arrives is kept).
    fn quiet(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(m) = self.receive() {
                self.requests.push(m);
                return false;
            }
        }
        true
    }
}

/// The `200 OK` for `request`.
fn ok_for(request: &SipMessage) -> Vec<u8> {
    let mut text = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in request.headers(name) {
            text.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

#[test]
fn a_foreign_identity_is_believed_only_from_a_trusted_peer() {
    // b.test's server is trusted at 127.0.0.1 and at ::1.
    let node = Node::start("example.test", |c| {
        c.listen.push(ListenAddr::udp("[::1]:0".parse().unwrap()));
        c.peers = vec![peer("b.test=127.0.0.1"), peer("b.test=::1")];
    });
    let alice = "sip:alice@example.test";

    // From anywhere else, a MESSAGE or SUBSCRIBE "from" a user of b.test is refused, saying
    // why; nothing is stored or watched, and each refusal is counted.
    let mut mallory = Ua::new("127.0.0.2", node.udp(), "bob", "b.test");
    for request in [
        mallory.message(alice, "it's bob, honest"),
        mallory.subscribe(alice, "presence"),
        mallory.subscribe(alice, "dialog"),
    ] {
        let r = mallory.transact(&request);
        assert_eq!(r.status(), Some(403), "{r:?}");
        assert_eq!(r.reason(), Some("Forbidden (b.test is not a trusted peer)"));
    }
    assert_eq!(node.messages_waiting(), 0, "nothing stored for alice");
    assert_eq!(node.subscriptions(), 0, "nobody watches alice");
    assert_eq!(node.server.guard_stats().untrusted, 3);
    assert!(mallory.quiet(Duration::from_millis(200)), "no NOTIFY");

    // From the listed address: believed (alice is offline: stored, 202; the watcher is
    // told alice's state).
    let mut b = Ua::new("127.0.0.1", node.udp(), "bob", "b.test");
    let r = b.transact(&b.message(alice, "hello from b.test"));
    assert_eq!(r.status(), Some(202), "{r:?}");
    assert_eq!(node.messages_waiting(), 1);
    let r = b.transact(&b.subscribe(alice, "presence"));
    assert_eq!(r.status(), Some(200), "{r:?}");
    b.next_request("NOTIFY");
    assert_eq!(node.subscriptions(), 1);
    // Over IPv6 too.
    let v6 = node
        .server
        .local_addrs()
        .iter()
        .find(|l| l.addr.is_ipv6())
        .unwrap()
        .addr;
    let mut b6 = Ua::new("::1", v6, "carol", "b.test");
    let r = b6.transact(&b6.message(alice, "over IPv6"));
    assert_eq!(r.status(), Some(202), "{r:?}");

    // Even a trusted peer's users neither register nor publish here.
    let r = b.transact(&b.request(
        "REGISTER",
        "sip:example.test",
        &format!("<{alice}>"),
        "",
        None,
    ));
    assert_eq!(r.status(), Some(403));
    assert_eq!(
        r.reason(),
        Some("Forbidden (a user of b.test does not register here)")
    );
    let r = b.transact(&b.request(
        "PUBLISH",
        alice,
        &format!("<{alice}>"),
        "Event: presence\r\n",
        Some(("application/pidf+xml", &pidf(alice, "not me"))),
    ));
    assert_eq!(r.status(), Some(403));
    assert_eq!(node.engine.stats().publications, 0);
    assert_eq!(node.server.guard_stats().untrusted, 5);
}

#[test]
fn open_federation_believes_anyone_as_before() {
    let node = Node::start("example.test", |c| c.federation = Federation::Open);
    let alice = "sip:alice@example.test";
    let mut stranger = Ua::new("127.0.0.2", node.udp(), "zed", "c.test");
    let r = stranger.transact(&stranger.message(alice, "hi"));
    assert_eq!(r.status(), Some(202), "{r:?}");
    let r = stranger.transact(&stranger.subscribe(alice, "presence"));
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(node.server.guard_stats().untrusted, 0);
    // Registering stays for the server's own users.
    let r = stranger.transact(&stranger.request(
        "REGISTER",
        "sip:example.test",
        &format!("<{alice}>"),
        "",
        None,
    ));
    assert_eq!(r.status(), Some(403));
}

/// A phone or server on one TLS connection, presenting `cert` (if any).
struct TlsUa {
    conn: TlsConn,
}

impl TlsUa {
    fn connect(server: SocketAddr, ca: &TestCa, cert: Option<&Issued>) -> TlsUa {
        TlsUa {
            conn: TlsConn::connect(server, ca, cert),
        }
    }

    /// A MESSAGE from `from_user@from_domain` to `to`, and its final answer.
    fn message(&mut self, from_user: &str, from_domain: &str, to: &str) -> SipMessage {
        let call_id = token();
        let local = self.conn.local();
        let request = request_text(
            "TLS",
            local,
            from_user,
            from_domain,
            "MESSAGE",
            to,
            &format!("<{to}>"),
            &call_id,
            "",
            Some(("text/plain", "over mutual TLS")),
        );
        self.conn.transact(&call_id, &request)
    }
}

#[test]
fn a_mutual_tls_peer_speaks_for_the_domains_its_certificate_names() {
    let ca = TestCa::new("test CA");
    let cert = ca.issue(&["example.test"]);
    // No listed peers at all: only certificates vouch.
    let node = Node::start("example.test", |c| {
        c.listen
            .push(ListenAddr::tls("127.0.0.1:0".parse().unwrap()));
        c.tls = Some(cert.config(&ca));
    });
    let tls = node.addr(Proto::Tls);
    let alice = "sip:alice@example.test";

    // b.test's server, with a certificate naming b.test: believed for b.test's users.
    let b_cert = ca.issue(&["b.test"]);
    let mut b = TlsUa::connect(tls, &ca, Some(&b_cert));
    let r = b.message("bob", "b.test", alice);
    assert_eq!(r.status(), Some(202), "{r:?}");
    assert_eq!(node.messages_waiting(), 1);

    // A server whose certificate names c.test claiming b.test's users: refused.
    let mut c = TlsUa::connect(tls, &ca, Some(&ca.issue(&["c.test"])));
    let r = c.message("bob", "b.test", alice);
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(
        r.reason(),
        Some("Forbidden (the TLS certificate does not name b.test)")
    );
    // (It speaks for its own domain's users, though.)
    let r = c.message("carol", "c.test", alice);
    assert_eq!(r.status(), Some(202), "{r:?}");

    // TLS without a client certificate vouches for nobody.
    let mut anonymous = TlsUa::connect(tls, &ca, None);
    let r = anonymous.message("bob", "b.test", alice);
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(r.reason(), Some("Forbidden (b.test is not a trusted peer)"));
    assert_eq!(node.messages_waiting(), 2);
    assert_eq!(node.server.guard_stats().untrusted, 2);
}

#[test]
fn own_users_authenticate_to_the_proxy_and_strangers_are_never_relayed() {
    // B serves b.test and believes a.test's and c.test's users from A (127.0.0.1).
    let b = Node::start("b.test", |c| {
        c.authenticate = false;
        c.peers = vec![peer("a.test=127.0.0.1"), peer("c.test=127.0.0.1")];
    });
    // A authenticates its users, routes b.test to B and trusts c.test's server at 127.0.0.3.
    let a = Node::start("a.test", |c| {
        c.routes
            .add(Route::parse(&format!("b.test=udp:{}", b.udp())).unwrap());
        c.peers = vec![peer("c.test=127.0.0.3")];
    });
    let mut bob = Ua::new("127.0.0.1", b.udp(), "bob", "b.test");
    let register = bob.request(
        "REGISTER",
        "sip:b.test",
        "<sip:bob@b.test>",
        "Expires: 600\r\n",
        None,
    );
    assert_eq!(bob.transact(&register).status(), Some(200));
    let bob_uri = "sip:bob@b.test";

    // alice of a.test: challenged as by a proxy (407, realm a.test), then relayed; her
    // credentials for A stay at A.
    let mut alice = Ua::new("127.0.0.1", a.udp(), "alice", "a.test");
    let first = alice.message(bob_uri, "hello bob");
    let r = alice.transact(&first);
    assert_eq!(r.status(), Some(407), "{r:?}");
    assert!(r.header("WWW-Authenticate").is_none());
    assert!(r
        .header("Proxy-Authenticate")
        .unwrap()
        .contains("realm=\"a.test\""));
    let proxy_auth = credentials(&r, &first, "alice", "a.test");
    assert!(proxy_auth.starts_with("Proxy-Authorization: "));
    let second = alice.request(
        "MESSAGE",
        bob_uri,
        &format!("<{bob_uri}>"),
        &proxy_auth,
        Some(("text/plain", "hello bob")),
    );
    alice.send(&second);
    let m = bob.next_request("MESSAGE");
    assert_eq!(m.body(), b"hello bob");
    assert!(m.header("Proxy-Authorization").is_none());
    assert_eq!(alice.final_response(&second).status(), Some(200));

    // Someone claiming to be alice without her credentials is challenged, not relayed.
    let mut forger = Ua::new("127.0.0.2", a.udp(), "alice", "a.test");
    let r = forger.transact(&forger.message(bob_uri, "it's alice"));
    assert_eq!(r.status(), Some(407));

    // A user of c.test from anywhere but c.test's server: never relayed.
    let mut stranger = Ua::new("127.0.0.2", a.udp(), "zed", "c.test");
    let r = stranger.transact(&stranger.message(bob_uri, "relay me"));
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(
        r.reason(),
        Some("Forbidden (not relayed: c.test is not a trusted peer)")
    );
    // Nor by naming A in a Route with a made-up seal, as if inside a dialog, toward any
    // address.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let forged = stranger.request(
        "NOTIFY",
        &format!("sip:x@{}", target.local_addr().unwrap()),
        "<sip:x@b.test>;tag=t1",
        &format!(
            "Route: <sip:{};transport=udp;lr;dlg=0123456789abcdef>\r\nEvent: presence\r\nSubscription-State: active\r\n",
            a.udp()
        ),
        None,
    );
    let r = stranger.transact(&forged);
    assert_eq!(r.status(), Some(403), "{r:?}");
    let mut buf = [0u8; 2048];
    assert!(target.recv_from(&mut buf).is_err(), "nothing reached it");
    assert_eq!(a.server.guard_stats().relays_refused, 2);
    assert!(bob.quiet(Duration::from_millis(200)), "nothing reached bob");

    // c.test's server itself: relayed.
    let mut c_server = Ua::new("127.0.0.3", a.udp(), "zed", "c.test");
    let request = c_server.message(bob_uri, "from c.test's server");
    c_server.send(&request);
    let m = bob.next_request("MESSAGE");
    assert_eq!(m.body(), b"from c.test's server");
    assert_eq!(c_server.final_response(&request).status(), Some(200));
}

fn pidf(entity: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}"><tuple id="t1"><status><basic>open</basic></status><note>{note}</note></tuple></presence>"#
    )
}

const ON_THE_PHONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:alice@example.test">
 <dialog id="call-7" direction="initiator"><state>confirmed</state></dialog>
</dialog-info>
"#;

#[test]
fn a_pbx_and_a_voicemail_account_publish_for_their_users() {
    let node = Node::start("example.test", |c| {
        c.publishers = vec![
            TrustedPublisher::parse("127.0.0.3=example.test").unwrap(),
            TrustedPublisher::parse("sip:voicemail@example.test=example.test").unwrap(),
        ];
    });
    let alice = "sip:alice@example.test";
    // bob watches alice's busy lamp.
    let mut bob = Ua::new("127.0.0.1", node.udp(), "bob", "example.test");
    let r = bob.transact_auth(|ua, auth| {
        ua.request(
            "SUBSCRIBE",
            alice,
            &format!("<{alice}>"),
            &format!("Event: dialog\r\nExpires: 600\r\n{auth}"),
            None,
        )
    });
    assert_eq!(r.status(), Some(200), "{r:?}");
    let first = bob.next_request("NOTIFY");
    assert!(!String::from_utf8_lossy(first.body()).contains("confirmed"));

    // The PBX (its own From; no credentials asked) publishes alice's call: bob sees it.
    let mut pbx = Ua::new("127.0.0.3", node.udp(), "pbx", "pbx.test");
    let publish = |ua: &Ua, auth: &str| {
        ua.request(
            "PUBLISH",
            alice,
            &format!("<{alice}>"),
            &format!("Event: dialog\r\nExpires: 600\r\n{auth}"),
            Some(("application/dialog-info+xml", ON_THE_PHONE)),
        )
    };
    let r = pbx.transact(&publish(&pbx, ""));
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(r.header("SIP-ETag").is_some());
    let notify = bob.next_request("NOTIFY");
    let body = String::from_utf8_lossy(notify.body()).into_owned();
    assert!(
        body.contains("confirmed") && body.contains("call-7"),
        "{body}"
    );

    // An address not listed: refused, nothing published.
    let mut other = Ua::new("127.0.0.4", node.udp(), "pbx", "pbx.test");
    let r = other.transact(&publish(&other, ""));
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(node.engine.stats().publications, 1);

    // The voicemail account lights alice's message-waiting lamp with its own credentials;
    // carol, with hers, may not.
    let summary = |ua: &Ua, auth: &str| {
        ua.request(
            "PUBLISH",
            alice,
            &format!("<{alice}>"),
            &format!("Event: message-summary\r\nExpires: 600\r\n{auth}"),
            Some((
                "application/simple-message-summary",
                "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n",
            )),
        )
    };
    let mut voicemail = Ua::new("127.0.0.1", node.udp(), "voicemail", "example.test");
    let r = voicemail.transact_auth(|ua, auth| summary(ua, auth));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let mut carol = Ua::new("127.0.0.1", node.udp(), "carol", "example.test");
    let r = carol.transact_auth(|ua, auth| summary(ua, auth));
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(node.engine.stats().publications, 2);
}

#[test]
fn an_account_takes_messages_only_from_its_server() {
    // The account's registrar: a socket that answers every REGISTER 200.
    let registrar = UdpSocket::bind("127.0.0.1:0").unwrap();
    let registrar_addr = registrar.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answering = {
        let stop = stop.clone();
        registrar
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = registrar.recv_from(&mut buf) {
                    let m = parse(&buf[..n], Transport::Datagram);
                    if m.is_request() {
                        registrar.send_to(&ok_for(&m), from).unwrap();
                    }
                }
            }
        })
    };
    let node = Node::start("client.test", |c| {
        c.accounts = vec![Account::new(
            "sip:me@provider.test".parse().unwrap(),
            "me",
            "pw",
            NextHop {
                proto: Proto::Udp,
                addr: registrar_addr,
            },
        )];
    });
    let me = "sip:me@provider.test";
    let mut stranger = Ua::new("127.0.0.2", node.udp(), "friend", "provider.test");
    let r = stranger.transact(&stranger.message(me, "from a stranger"));
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(
        r.reason(),
        Some("Forbidden (not from the server of provider.test)")
    );
    // From the provider's address (another port than the registrar's: its connections and
    // sockets differ).
    let mut provider = Ua::new("127.0.0.1", node.udp(), "friend", "provider.test");
    let r = provider.transact(&provider.message(me, "through the provider"));
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(node.server.guard_stats().untrusted, 1);
    stop.store(true, Ordering::Relaxed);
    answering.join().unwrap();
}

#[test]
fn imppd_takes_peers_federation_and_publishers_from_flags_and_its_config_file() {
    use common::imppd::Imppd;
    // Bad values are refused before anything starts.
    for (flag, value) in [
        ("--peer", "b.test"),
        ("--peer", "b.test=nowhere"),
        ("--federation", "sometimes"),
        ("--publisher", "127.0.0.3"),
    ] {
        let out = std::process::Command::new(common::imppd::IMPPD)
            .args(["--domain", "example.test", "--db", "none", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }

    let alice = "sip:alice@example.test";
    let imppd = Imppd::start(
        &["alice", "bob"],
        &[
            "--peer",
            "b.test=127.0.0.2",
            "--publisher",
            "127.0.0.3=example.test",
        ],
    );
    assert!(
        imppd.log().contains(
            "imppd trust: federation trusted, peers b.test=127.0.0.2/32, publishers 127.0.0.3/32=example.test"
        ),
        "{}",
        imppd.log()
    );
    let mut mallory = Ua::new("127.0.0.1", imppd.addr(), "bob", "b.test");
    let r = mallory.transact(&mallory.message(alice, "forged"));
    assert_eq!(r.status(), Some(403), "{r:?}");
    let mut b = Ua::new("127.0.0.2", imppd.addr(), "bob", "b.test");
    let r = b.transact(&b.message(alice, "from b.test"));
    assert_eq!(r.status(), Some(202), "{r:?}");
    let mut pbx = Ua::new("127.0.0.3", imppd.addr(), "pbx", "pbx.test");
    let r = pbx.transact(&pbx.request(
        "PUBLISH",
        alice,
        &format!("<{alice}>"),
        "Event: dialog\r\n",
        Some(("application/dialog-info+xml", ON_THE_PHONE)),
    ));
    assert_eq!(r.status(), Some(200), "{r:?}");
    drop(imppd);

    // The config file: open federation.
    let dir = common::kamailio::TempDir::new("imppd-trust");
    let config = dir.path().join("imppd.conf");
    std::fs::write(
        &config,
        "federation = open\npeer = c.test=192.0.2.0/24\npublisher = sip:bob@example.test=example.test\n",
    )
    .unwrap();
    let imppd = Imppd::start(&["alice", "bob"], &["--config", config.to_str().unwrap()]);
    assert!(
        imppd.log().contains(
            "imppd trust: federation open, peers c.test=192.0.2.0/24, publishers sip:bob@example.test=example.test"
        ),
        "{}",
        imppd.log()
    );
    let mut anyone = Ua::new("127.0.0.1", imppd.addr(), "zed", "d.test");
    let r = anyone.transact(&anyone.message(alice, "open"));
    assert_eq!(r.status(), Some(202), "{r:?}");
}
