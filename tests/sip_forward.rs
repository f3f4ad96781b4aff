//! The SIP server as a proxy for other domains: two or three servers (engine + SipServer, one
//! domain each) on loopback with routes to each other, driven by a small UDP client written
//! here. MESSAGE and SUBSCRIBE across domains, Max-Forwards, a routing loop, no route, and a
//! next hop that never answers.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::engine::{AuthAction, Clock, Engine, EngineConfig, ManualClock, SystemClock};
use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::route::Route;
use impp::sip::transaction::Timers;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipLimits, SipMessage, Transport};
use impp::sip::{SipServer, SipServerConfig, TrustedPeer};
use impp::store::{Credential, MemoryStore};

mod common;
use common::clock::{advance, timer_e_steps};

/// One domain's server.
struct Node {
    engine: Arc<Engine>,
    server: SipServer,
}

impl Node {
    /// A server for `domain` with users alice, bob and carol (password `USER-pw`).
    fn start(domain: &str, tweak: impl FnOnce(&mut SipServerConfig)) -> Node {
        Node::start_on(Arc::new(SystemClock::new()), domain, tweak)
    }

    /// Like [`Node::start`], on `clock` (a manual one: timers fire when the test moves it).
    fn start_on(
        clock: Arc<dyn Clock>,
        domain: &str,
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Node {
        let engine = Arc::new(
            Engine::new(EngineConfig {
                domains: vec![domain.into()],
                default_policy: AuthAction::Allow,
                workers: 2,
                store: Arc::new(MemoryStore::new()),
                clock,
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        for user in ["alice", "bob", "carol"] {
            let uri = format!("sip:{user}@{domain}").parse().unwrap();
            engine
                .set_user(Credential::new(uri, domain, &format!("{user}-pw")))
                .unwrap();
        }
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(local), ListenAddr::tcp(local)]);
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

    fn tcp(&self) -> SocketAddr {
        self.addr(Proto::Tcp)
    }
}

fn route(text: &str) -> Route {
    Route::parse(text).unwrap()
}

/// `domain`'s server is trusted at loopback (where every server of these tests runs) to
/// speak for its users.
fn peer(domain: &str) -> TrustedPeer {
    TrustedPeer::parse(&format!("{domain}=127.0.0.1")).unwrap()
}

static N: AtomicU32 = AtomicU32::new(1);

fn token() -> String {
    format!("f{}", N.fetch_add(1, Ordering::Relaxed))
}

fn parse(bytes: &[u8]) -> SipMessage {
    SipMessage::parse(bytes, &SipLimits::DEFAULT, Transport::Datagram).unwrap()
}

/// A user agent on one UDP socket that sends everything to one server (its outbound proxy).
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    domain: String,
    tag: String,
    cseq: AtomicU32,
    /// Requests received and not yet looked at, with where they came from.
    requests: Vec<(SipMessage, SocketAddr)>,
}

impl Client {
    fn new(server: SocketAddr, user: &str, domain: &str) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Client {
            socket,
            server,
            user: user.into(),
            domain: domain.into(),
            tag: token(),
            cseq: AtomicU32::new(1),
            requests: Vec::new(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    fn contact(&self) -> String {
        format!("sip:{}@{}", self.user, self.local())
    }

    /// A request from this client; `extra` are more header lines (CRLF-terminated).
    fn request(&self, method: &str, uri: &str, to: &str, call_id: &str, extra: &str) -> Vec<u8> {
        self.request_with_body(method, uri, to, call_id, extra, None)
    }

    fn request_with_body(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        extra: &str,
        body: Option<&str>,
    ) -> Vec<u8> {
        let cseq = self.cseq.fetch_add(1, Ordering::Relaxed);
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\nFrom: <{aor}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <{contact}>\r\n{extra}",
            local = self.local(),
            b = token(),
            aor = self.aor(),
            tag = self.tag,
            contact = self.contact(),
        );
        if !extra.to_ascii_lowercase().contains("max-forwards") {
            text.push_str("Max-Forwards: 70\r\n");
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            text.push_str("Content-Type: text/plain\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text.into_bytes()
    }

    /// Receives one message (`None` after the read timeout); requests are answered 200 and
    /// kept.
    fn receive(&mut self) -> Option<(SipMessage, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = self.socket.recv_from(&mut buf).ok()?;
        let m = parse(&buf[..n]);
        if m.is_request() {
            self.answer(&m, from);
        }
        Some((m, from))
    }

    /// Sends `request` to the server and waits for its final response (and where it came
    /// from), keeping the requests that arrive in between.
    fn transact(&mut self, request: &[u8], wait: Duration) -> (SipMessage, SocketAddr) {
        self.send(request);
        self.final_response(request, wait)
    }

    /// Sends `request` to the server without waiting for its answer.
    fn send(&self, request: &[u8]) {
        self.socket.send_to(request, self.server).unwrap();
    }

    /// Waits for the final response to `request`, sent before (see [`Client::transact`]).
    fn final_response(&mut self, request: &[u8], wait: Duration) -> (SipMessage, SocketAddr) {
        let sent = parse(request);
        let call_id = sent.call_id().unwrap().to_string();
        let cseq = sent.header("CSeq").unwrap().to_string();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let Some((m, from)) = self.receive() else {
                continue;
            };
            if m.is_request() {
                self.requests.push((m, from));
                continue;
            }
            if m.call_id().unwrap() == call_id
                && m.header("CSeq") == Some(&cseq)
                && m.status().unwrap() >= 200
            {
                return (m, from);
            }
        }
        panic!("no final response to {}", String::from_utf8_lossy(request));
    }

    /// Sends the request `build` makes, answering a 401 (a registrar's challenge) or a 407
    /// (a proxy's) once with this user's password.
    fn transact_auth(&mut self, build: impl Fn(&Client, &str) -> Vec<u8>) -> SipMessage {
        let first = build(self, "");
        let (r, _) = self.transact(&first, Duration::from_secs(5));
        if !matches!(r.status(), Some(401 | 407)) {
            return r;
        }
        let (realm, nonce) = challenge_of(&r);
        let m = parse(&first);
        let auth = self.authorization(
            m.method().unwrap(),
            m.request_uri_text().unwrap(),
            &realm,
            &nonce,
        );
        let auth = if r.status() == Some(407) {
            format!("Proxy-{auth}")
        } else {
            auth
        };
        self.transact(&build(self, &auth), Duration::from_secs(5)).0
    }

    /// The Authorization line answering the challenge (`realm`, `nonce`) for `method` to
    /// `uri` with this user's password (`Proxy-` in front answers a 407).
    fn authorization(&self, method: &str, uri: &str, realm: &str, nonce: &str) -> String {
        let credential = Credential::new(
            self.aor().parse().unwrap(),
            realm,
            &format!("{}-pw", self.user),
        );
        let cnonce = token();
        let response = expected_response(
            Algorithm::Md5,
            &credential.ha1_md5,
            method,
            uri,
            nonce,
            Some(("auth", "00000001", &cnonce)),
        );
        format!(
            "Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n",
            self.user
        )
    }

    fn answer(&self, request: &SipMessage, to: SocketAddr) {
        let mut text = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in request.headers(name) {
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        self.socket.send_to(text.as_bytes(), to).unwrap();
    }

    /// Waits for a request `method` (answered 200), with where it came from.
    fn next_request(&mut self, method: &str) -> (SipMessage, SocketAddr) {
        if let Some(i) = self
            .requests
            .iter()
            .position(|(m, _)| m.method() == Some(method))
        {
            return self.requests.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some((m, from)) = self.receive() {
                if m.method() == Some(method) {
                    return (m, from);
                }
                if m.is_request() {
                    self.requests.push((m, from));
                }
            }
        }
        panic!("no {method} arrived");
    }

    fn register(&mut self) -> SipMessage {
        let (aor, domain) = (self.aor(), self.domain.clone());
        let call_id = format!("reg-{}", self.tag);
        self.transact_auth(|c, auth| {
            c.request(
                "REGISTER",
                &format!("sip:{domain}"),
                &format!("<{aor}>"),
                &call_id,
                &format!("Expires: 300\r\n{auth}"),
            )
        })
    }
}

/// a.test forwards b.test to B over UDP; B (no authentication: a request from a foreign
/// user must not be challenged there; A trusted to speak for a.test) serves bob.
fn a_and_b(b_route_proto: Proto, tweak_a: impl FnOnce(&mut SipServerConfig)) -> (Node, Node) {
    let b = Node::start("b.test", |c| {
        c.authenticate = false;
        c.peers.push(peer("a.test"));
    });
    let hop = match b_route_proto {
        Proto::Udp => format!("b.test=udp:{}", b.udp()),
        Proto::Tcp => format!("b.test=tcp:{}", b.tcp()),
        _ => unreachable!("these tests route over UDP and TCP"),
    };
    let a = Node::start("a.test", |c| {
        c.routes.add(route(&hop));
        tweak_a(c);
    });
    (a, b)
}

#[test]
fn message_to_another_domain_is_forwarded_and_answered_back() {
    let (a, b) = a_and_b(Proto::Udp, |_| {});
    let mut bob = Client::new(b.udp(), "bob", "b.test");
    assert_eq!(bob.register().status(), Some(200));

    let mut alice = Client::new(a.udp(), "alice", "a.test");
    // A challenges its own user before forwarding, as a proxy (realm a.test)...
    let first = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some("hi"),
    );
    let (r, _) = alice.transact(&first, Duration::from_secs(5));
    assert_eq!(r.status(), Some(407));
    assert!(r
        .header("Proxy-Authenticate")
        .unwrap()
        .contains("realm=\"a.test\""));
    // ...then forwards it; B delivers it to bob's registered contact and its 200 comes back
    // through A, with only alice's Via left, from A's address.
    // (B answers once bob's device took the message: bob answers, then alice hears 200.)
    let call_id = token();
    let (realm, nonce) = {
        let first = alice.request_with_body(
            "MESSAGE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &call_id,
            "",
            Some("hello bob"),
        );
        let (r, _) = alice.transact(&first, Duration::from_secs(5));
        assert_eq!(r.status(), Some(407));
        challenge_of(&r)
    };
    let auth = format!(
        "Proxy-{}",
        alice.authorization("MESSAGE", "sip:bob@b.test", &realm, &nonce)
    );
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &call_id,
        &auth,
        Some("hello bob"),
    );
    alice.send(&request);
    let (m, _) = bob.next_request("MESSAGE");
    assert_eq!(m.body(), b"hello bob");
    let (r, _) = alice.final_response(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let vias = r.via().unwrap();
    assert_eq!(vias.len(), 1, "our Via is removed on the way back");
    assert_eq!(vias[0].rport(), Some(Some(alice.local().port())));
    assert_eq!(r.call_id().unwrap(), call_id);
    assert!(m.from().unwrap().uri_text().contains("alice@a.test"));
    assert!(
        b.engine.user(&"sip:bob@b.test".parse().unwrap()).is_some(),
        "bob is B's user"
    );

    // A user may only send as itself: alice's credentials with carol's From are refused.
    let mut mallory = Client::new(a.udp(), "alice", "a.test");
    let call_id = token();
    let r = mallory.transact_auth(|c, auth| {
        let text = String::from_utf8(c.request_with_body(
            "MESSAGE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &call_id,
            auth,
            Some("it's carol"),
        ))
        .unwrap();
        text.replace("From: <sip:alice@a.test>", "From: <sip:carol@a.test>")
            .into_bytes()
    });
    assert_eq!(r.status(), Some(403));

    // A request from a user of a domain A does not trust, arriving at A for b.test, is not
    // relayed (it is not A's to authenticate, and A is no open relay; tests/sip_trust.rs
    // has the rest).
    let mut stranger = Client::new(a.udp(), "zed", "c.test");
    let request = stranger.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some("from afar"),
    );
    let (r, _) = stranger.transact(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(403));
    assert_eq!(
        r.reason(),
        Some("Forbidden (not relayed: c.test is not a trusted peer)")
    );
    assert_eq!(a.server.guard_stats().relays_refused, 1);
}

#[test]
fn max_forwards_zero_is_refused_with_483() {
    let (a, _b) = a_and_b(Proto::Udp, |c| c.authenticate = false);
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &token(),
            "Max-Forwards: 0\r\n",
            Some("x"),
        ),
        Duration::from_secs(5),
    );
    assert_eq!(r.status(), Some(483));
    // Max-Forwards 1 still gets through one hop (B serves bob: 202, stored for later).
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &token(),
            "Max-Forwards: 1\r\n",
            Some("x"),
        ),
        Duration::from_secs(5),
    );
    assert_eq!(r.status(), Some(202));
}

#[test]
fn a_routing_loop_ends_with_482_and_no_storm() {
    // A sends c.test to B, and B sends it back to A. A's port is picked first (a free one,
    // released just before A binds it) so that B's route can name it.
    let a_udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // On a manual clock, so that every retransmission timer can be run below.
    let clock = ManualClock::new();
    let b = Node::start_on(clock.clone(), "b.test", |c| {
        c.authenticate = false;
        c.routes.add(route(&format!("c.test=udp:{a_udp}")));
        c.peers.push(peer("a.test"));
    });
    let a = Node::start_on(clock.clone(), "a.test", |c| {
        c.authenticate = false;
        c.listen = vec![ListenAddr::udp(a_udp)];
        c.routes.add(route(&format!("c.test=udp:{}", b.udp())));
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let started = Instant::now();
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            "sip:x@c.test",
            "<sip:x@c.test>",
            &token(),
            "",
            Some("round and round"),
        ),
        Duration::from_secs(5),
    );
    // A recognises its own Via (same branch) on the second pass, long before Max-Forwards
    // would run out.
    assert_eq!(r.status(), Some(482), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    // Nothing more arrives: no storm of repeated answers, neither at once nor from a timer
    // (the clock runs through every timer E of the forwarded requests, up to timer F).
    for step in timer_e_steps(&Timers::default()) {
        advance(
            &clock,
            step,
            &[&a.engine, &b.engine],
            &[&a.server, &b.server],
        );
    }
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        if let Some((m, _)) = alice.receive() {
            panic!("unexpected after the loop was cut: {m:?}");
        }
    }
}

#[test]
fn no_route_is_refused_as_before() {
    let (a, _b) = a_and_b(Proto::Udp, |c| {
        c.authenticate = false;
        c.federate = false;
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let (r, _) = alice.transact(
        &alice.request(
            "SUBSCRIBE",
            "sip:x@c.test",
            "<sip:x@c.test>",
            &token(),
            "Event: presence\r\n",
        ),
        Duration::from_secs(5),
    );
    assert_eq!(r.status(), Some(404));
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            "sip:x@c.test",
            "<sip:x@c.test>",
            &token(),
            "",
            Some("x"),
        ),
        Duration::from_secs(5),
    );
    let status = r.status().unwrap();
    assert!((400..500).contains(&status), "refused, got {status}");
}

#[test]
fn a_silent_next_hop_times_out_with_408() {
    // Bound but never read: requests vanish there.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // On a manual clock: the forwarded request's timers fire as the test moves it.
    let clock = ManualClock::new();
    let a = Node::start_on(clock.clone(), "a.test", |c| {
        c.authenticate = false;
        c.routes
            .add(route(&format!("*=udp:{}", silent.local_addr().unwrap())));
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let started = Instant::now();
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some("anyone?"),
    );
    alice.send(&request);
    // Forwarded (its transaction started): then timer E after timer E up to timer F.
    let mut buf = vec![0u8; 65536];
    let (n, _) = silent
        .recv_from(&mut buf)
        .expect("the request is forwarded");
    let mut copies = vec![parse(&buf[..n])];
    for step in timer_e_steps(&Timers::default()) {
        advance(&clock, step, &[&a.engine], &[&a.server]);
    }
    let (r, _) = alice.final_response(&request, Duration::from_secs(10));
    assert_eq!(r.status(), Some(408));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The forwarded request was retransmitted over UDP while it waited, with one Via of
    // A's on top of alice's and Max-Forwards decremented.
    silent
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    while let Ok((n, _)) = silent.recv_from(&mut buf) {
        copies.push(parse(&buf[..n]));
    }
    assert!(copies.len() >= 3, "retransmitted: {} copies", copies.len());
    let first = &copies[0];
    assert_eq!(first.via().unwrap().len(), 2);
    assert_eq!(first.max_forwards().unwrap(), Some(69));
    assert!(copies
        .iter()
        .all(|c| c.top_via().unwrap().branch() == first.top_via().unwrap().branch()));
}

#[test]
fn subscribe_forwarded_keeps_its_dialog_through_the_proxy() {
    subscribe_through_the_proxy(Proto::Tcp);
}

/// Over UDP too: B sends its NOTIFYs to the first entry of the route set (A), not to alice's
/// Contact.
#[test]
fn subscribe_forwarded_over_udp_keeps_its_dialog_through_the_proxy() {
    subscribe_through_the_proxy(Proto::Udp);
}

fn subscribe_through_the_proxy(hop: Proto) {
    // federate off: A forwards alice's SUBSCRIBE to B instead of serving it.
    let (a, b) = a_and_b(hop, |c| c.federate = false);
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let call_id = token();
    let r = alice.transact_auth(|c, auth| {
        c.request(
            "SUBSCRIBE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &call_id,
            &format!("Event: presence\r\nExpires: 600\r\n{auth}"),
        )
    });
    assert_eq!(r.status(), Some(200), "{r:?}");
    // B made the subscription before it answered. Looked for until a deadline all the same:
    // one CI run on a loaded machine saw none at once (not reproduced in 300 runs since); a
    // failure now says what B holds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.engine.remote_subscriptions().unwrap().len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        b.engine.remote_subscriptions().unwrap().len(),
        1,
        "B's subscriptions: {:?}",
        b.engine.subscriptions(None).unwrap()
    );
    // A record-routed the dialog: over TCP one entry facing B, one facing alice (UDP), each
    // sealed for the dialog (`dlg=`, which lets B's NOTIFYs through A).
    let mut rr: Vec<String> = r
        .record_route()
        .unwrap()
        .iter()
        .map(|n| n.uri_text().to_string())
        .collect();
    let unsealed: Vec<String> = rr.iter().map(|e| without_seal(e)).collect();
    if hop == Proto::Tcp {
        assert_eq!(
            unsealed,
            vec![
                format!("sip:{};transport=tcp;lr", a.tcp()),
                format!("sip:{};transport=udp;lr", a.udp()),
            ]
        );
    } else {
        assert_eq!(unsealed, vec![format!("sip:{};transport=udp;lr", a.udp())]);
        rr.push(rr[0].clone());
    }
    let to = r.header("To").unwrap().to_string();
    let remote_target = match r.contact().unwrap() {
        impp::sip::Contacts::List(l) => l[0].uri_text().to_string(),
        _ => panic!("no Contact"),
    };

    // B's NOTIFY comes to alice from A, with B's Via under A's.
    let (notify, from) = alice.next_request("NOTIFY");
    assert_eq!(from, a.udp(), "the NOTIFY passes through A");
    assert_eq!(notify.via().unwrap().len(), 2);
    assert!(
        notify.header("Route").is_none(),
        "A removed its Route entries"
    );

    // The refresh goes the same way: to A, with the route set reversed.
    let route_set = format!("Route: <{}>, <{}>\r\n", rr[1], rr[0]);
    let refresh = |alice: &mut Client, expires: u32| {
        let (to, call_id, target, route_set) = (
            to.clone(),
            call_id.clone(),
            remote_target.clone(),
            route_set.clone(),
        );
        alice.transact_auth(move |c, auth| {
            c.request(
                "SUBSCRIBE",
                &target,
                &to,
                &call_id,
                &format!("Event: presence\r\nExpires: {expires}\r\n{route_set}{auth}"),
            )
        })
    };
    let r = refresh(&mut alice, 300);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let (notify, from) = alice.next_request("NOTIFY");
    assert_eq!(from, a.udp());
    assert!(notify
        .header("Subscription-State")
        .unwrap()
        .starts_with("active"));

    // And the un-SUBSCRIBE: B ends the subscription and its last NOTIFY comes through A.
    let r = refresh(&mut alice, 0);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let (notify, from) = alice.next_request("NOTIFY");
    assert_eq!(from, a.udp());
    assert!(notify
        .header("Subscription-State")
        .unwrap()
        .starts_with("terminated"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !b.engine.remote_subscriptions().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(b.engine.remote_subscriptions().unwrap().is_empty());
}

/// A running imppd, stopped by PID (SIGTERM) when dropped.
struct Imppd {
    child: std::process::Child,
    /// Its "imppd ready" line.
    ready: String,
}

impl Imppd {
    fn start(args: &[&str]) -> Imppd {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imppd"))
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("imppd ready") {
                    let _ = tx.send(line.clone());
                }
                if std::env::var_os("IMPP_TEST_VERBOSE").is_some() {
                    eprintln!("{line}");
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("imppd did not become ready");
        Imppd { child, ready }
    }
}

impl Drop for Imppd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A temporary directory for imppd's database and config file.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("impp-forward-{}-{}", std::process::id(), token()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Record-Route entry of ours without its `;dlg=` seal (which must be there).
fn without_seal(entry: &str) -> String {
    let (before, seal) = entry.split_once(";dlg=").expect("a sealed entry");
    assert_eq!(seal.len(), 16, "{entry}");
    assert!(seal.bytes().all(|b| b.is_ascii_hexdigit()), "{entry}");
    before.to_string()
}

#[test]
fn imppd_routes_and_federation_from_flags_and_config_file() {
    let b = Node::start("b.test", |c| {
        c.authenticate = false;
        c.peers.push(peer("a.test"));
    });
    let mut bob = Client::new(b.udp(), "bob", "b.test");
    assert_eq!(bob.register().status(), Some(200));
    let dir = TempDir::new();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("udp:127.0.0.1:{port}");
    let a_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // A bad route is refused with a clear error, before anything starts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imppd"))
        .args([
            "--domain",
            "a.test",
            "--route",
            "b.test=udp:nowhere",
            "--db",
        ])
        .arg(dir.path("bad.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--route") && stderr.contains("nowhere"),
        "{stderr}"
    );

    // From the config file: a route for b.test, and federation off, so alice's SUBSCRIBE to
    // bob@b.test is forwarded (imppd record-routes it) rather than served by imppd.
    let config = dir.path("imppd.conf");
    std::fs::write(
        &config,
        format!(
            "domain = a.test\nlisten = {listen}\nroute = b.test=udp:{}\nfederate = no\nopen\n",
            b.udp()
        ),
    )
    .unwrap();
    {
        let a = Imppd::start(&["--config", &config, "--db", &dir.path("a1.db")]);
        assert!(
            a.ready
                .contains(&format!("routes b.test=udp:{}, federation off", b.udp())),
            "{}",
            a.ready
        );
        let mut alice = Client::new(a_addr, "alice", "a.test");
        let (r, _) = alice.transact(
            &alice.request(
                "SUBSCRIBE",
                "sip:bob@b.test",
                "<sip:bob@b.test>",
                &token(),
                "Event: presence\r\nExpires: 60\r\n",
            ),
            Duration::from_secs(5),
        );
        assert_eq!(r.status(), Some(200), "{r:?}");
        let rr = r.header("Record-Route").unwrap();
        assert_eq!(
            without_seal(rr.trim_start_matches('<').trim_end_matches('>')),
            format!("sip:{a_addr};transport=udp;lr")
        );
        assert_eq!(b.engine.remote_subscriptions().unwrap().len(), 1);
    }

    // From flags: the default route; a MESSAGE for bob@b.test reaches bob.
    let a = Imppd::start(&[
        "--domain",
        "a.test",
        "--listen",
        &listen,
        "--open",
        "--db",
        &dir.path("a2.db"),
        "--route",
        &format!("*=udp:{}", b.udp()),
        "--no-federate",
    ]);
    assert!(
        a.ready
            .contains(&format!("routes *=udp:{}, federation off", b.udp())),
        "{}",
        a.ready
    );
    let mut alice = Client::new(a_addr, "alice", "a.test");
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some("via imppd"),
    );
    alice.send(&request);
    let (m, _) = bob.next_request("MESSAGE");
    assert_eq!(m.body(), b"via imppd");
    let (r, _) = alice.final_response(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(200), "{r:?}");
}

/// The realm and nonce of a 401's or 407's MD5 challenge.
fn challenge_of(r: &SipMessage) -> (String, String) {
    let challenge = r
        .headers("WWW-Authenticate")
        .chain(r.headers("Proxy-Authenticate"))
        .find(|c| c.contains("MD5"))
        .expect("an MD5 challenge")
        .to_string();
    let param = |name: &str| {
        let i = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        challenge[i..].split('"').next().unwrap().to_string()
    };
    (param("realm"), param("nonce"))
}

/// A port free on 127.0.0.1 for both UDP and TCP, with its UDP socket kept bound.
fn udp_with_free_tcp_port() -> UdpSocket {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return udp;
        }
    }
    panic!("no free port");
}

/// Reads one SIP message from a TCP stream.
fn read_stream_message(stream: &mut std::net::TcpStream) -> SipMessage {
    use std::io::Read as _;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + len {
                return SipMessage::parse(
                    &data[..end + 4 + len],
                    &SipLimits::DEFAULT,
                    Transport::Stream,
                )
                .unwrap();
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed");
        data.extend_from_slice(&buf[..n]);
    }
}

/// The `200 OK` a next hop answers `request` with.
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
fn a_large_message_goes_over_tcp_and_falls_back_to_udp() {
    let big = "x".repeat(1500);
    // A next hop listening on UDP and TCP at the same port: the large MESSAGE comes over TCP.
    let hop_udp = udp_with_free_tcp_port();
    let hop = hop_udp.local_addr().unwrap();
    let listener = std::net::TcpListener::bind(hop).unwrap();
    let a = Node::start("a.test", |c| {
        c.authenticate = false;
        c.routes.add(route(&format!("b.test=udp:{hop}")));
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some(&big),
    );
    alice.socket.send_to(&request, alice.server).unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let forwarded = read_stream_message(&mut stream);
    assert!(forwarded
        .top_via()
        .unwrap()
        .transport()
        .eq_ignore_ascii_case("TCP"));
    assert_eq!(forwarded.body(), big.as_bytes());
    use std::io::Write as _;
    stream.write_all(&ok_for(&forwarded)).unwrap();
    let (r, _) = alice.transact(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(200));
    drop((stream, listener, hop_udp));

    // Only UDP at the hop (the TCP connection is refused): it comes over UDP after all.
    let hop_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    hop_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let hop = hop_udp.local_addr().unwrap();
    let a = Node::start("a.test", |c| {
        c.authenticate = false;
        c.routes.add(route(&format!("b.test=udp:{hop}")));
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        "",
        Some(&big),
    );
    alice.socket.send_to(&request, alice.server).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = hop_udp.recv_from(&mut buf).unwrap();
    let forwarded = parse(&buf[..n]);
    assert!(forwarded
        .top_via()
        .unwrap()
        .transport()
        .eq_ignore_ascii_case("UDP"));
    assert_eq!(forwarded.body(), big.as_bytes());
    hop_udp.send_to(&ok_for(&forwarded), from).unwrap();
    let (r, _) = alice.transact(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(200));
}

#[test]
fn a_tcp_hop_refusing_the_connection_is_answered_503_at_once() {
    // A closed TCP port; A keeps the default T1 (timer F would take 32 s).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = Node::start("a.test", |c| {
        c.authenticate = false;
        c.timers = impp::sip::transaction::Timers::default();
        c.routes.add(route(&format!("b.test=tcp:{closed}")));
    });
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let started = Instant::now();
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            "sip:bob@b.test",
            "<sip:bob@b.test>",
            &token(),
            "",
            Some("hello?"),
        ),
        Duration::from_secs(10),
    );
    assert_eq!(r.status(), Some(503));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn loose_routing_follows_the_route_set_but_is_no_open_relay() {
    let b = Node::start("b.test", |c| {
        c.authenticate = false;
        c.peers.push(peer("a.test"));
    });
    let mut bob = Client::new(b.udp(), "bob", "b.test");
    assert_eq!(bob.register().status(), Some(200));
    // A has no route to b.test: only the Route header leads there.
    let a = Node::start("a.test", |c| c.authenticate = false);
    let mut alice = Client::new(a.udp(), "alice", "a.test");
    let request = alice.request_with_body(
        "MESSAGE",
        "sip:bob@b.test",
        "<sip:bob@b.test>",
        &token(),
        &format!("Route: <sip:{};lr>, <sip:{};lr>\r\n", a.udp(), b.udp()),
        Some("routed"),
    );
    alice.send(&request);
    let (m, _) = bob.next_request("MESSAGE");
    assert_eq!(m.body(), b"routed");
    let (r, _) = alice.final_response(&request, Duration::from_secs(5));
    assert_eq!(r.status(), Some(200), "{r:?}");

    // Outside a dialog, a Route naming A and a Request-URI naming some address does not make
    // A send there: the request is refused as one for a domain A does not serve.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (r, _) = alice.transact(
        &alice.request_with_body(
            "MESSAGE",
            &format!("sip:x@{}", target.local_addr().unwrap()),
            "<sip:x@elsewhere.test>",
            &token(),
            &format!("Route: <sip:{};lr>\r\n", a.udp()),
            Some("relay me"),
        ),
        Duration::from_secs(5),
    );
    assert!((400..500).contains(&r.status().unwrap()), "{r:?}");
    let mut buf = [0u8; 2048];
    assert!(target.recv_from(&mut buf).is_err(), "nothing reached it");
}

/// Throughput and latency of forwarding, printed (run with `--ignored --nocapture`): OPTIONS
/// for b.test sent to A, forwarded to B, answered there and passed back, 50 in flight (`WINDOW=n` to change).
#[test]
#[ignore = "a measurement; run explicitly"]
fn forwarding_throughput() {
    let (a, b) = a_and_b(Proto::Udp, |c| c.authenticate = false);
    // DIRECT=1: the same OPTIONS straight to B, the baseline without the proxy.
    let direct = std::env::var_os("DIRECT").is_some();
    let first = if direct { b.udp() } else { a.udp() };
    let alice = Client::new(first, "alice", "a.test");
    alice
        .socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    const TOTAL: usize = 5000;
    let window: usize = std::env::var("WINDOW").map_or(50, |w| w.parse().unwrap());
    let mut sent_at = std::collections::HashMap::new();
    let mut latencies = Vec::with_capacity(TOTAL);
    let (mut sent, mut buf) = (0, vec![0u8; 65536]);
    let started = Instant::now();
    while latencies.len() < TOTAL {
        while sent < TOTAL && sent - latencies.len() < window {
            let call_id = format!("perf-{sent}");
            let request = alice.request(
                "OPTIONS",
                "sip:bob@b.test",
                "<sip:bob@b.test>",
                &call_id,
                "",
            );
            alice.socket.send_to(&request, first).unwrap();
            sent_at.insert(call_id, Instant::now());
            sent += 1;
        }
        let (n, _) = alice.socket.recv_from(&mut buf).expect("an answer");
        let r = parse(&buf[..n]);
        assert_eq!(r.status(), Some(200));
        let at = sent_at
            .remove(r.call_id().unwrap())
            .expect("one answer each");
        latencies.push(at.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "{} {TOTAL} OPTIONS ({window} in flight) in {:.2} s: {:.0}/s, latency p50 {:?} p99 {:?}",
        if direct {
            "direct to B:"
        } else {
            "forwarded A->B->A:"
        },
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64(),
        latencies[TOTAL / 2],
        latencies[TOTAL * 99 / 100]
    );
}
