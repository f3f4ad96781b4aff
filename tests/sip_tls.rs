//! SIP over TLS (RFC 3261 §26, RFC 5922) at the wire: phones register and are reached over
//! their own TLS connection; servers of two domains talk over mutual TLS and check that the
//! peer's certificate names the domain; bad handshakes and plain text on the TLS port are
//! refused without disturbing anyone else. Certificates are made by the tests.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{Issued, TestCa};
use common::sip::token;
use common::tls::{client_config, framed_len, TlsConn};
use impp::engine::{AuthAction, Engine, EngineConfig};
use impp::sip::route::Route;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipLimits, SipMessage, SipServer, SipServerConfig, Transport};
use impp::store::MemoryStore;
use rustls::pki_types::ServerName;

/// A server for `domain` listening on UDP and TLS with `cert`.
struct Node {
    _engine: Arc<Engine>,
    server: SipServer,
}

impl Node {
    fn start(
        domain: &str,
        ca: &TestCa,
        cert: &Issued,
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Node {
        let engine = Arc::new(
            Engine::new(EngineConfig {
                domains: vec![domain.into()],
                default_policy: AuthAction::Allow,
                workers: 1,
                store: Arc::new(MemoryStore::new()),
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(local), ListenAddr::tls(local)]);
        config.authenticate = false;
        config.tls = Some(cert.config(ca));
        tweak(&mut config);
        let server = SipServer::start(engine.clone(), config).unwrap();
        Node {
            _engine: engine,
            server,
        }
    }

    fn addr(&self, proto: Proto) -> SocketAddr {
        self.server
            .local_addrs()
            .iter()
            .find(|l| l.proto == proto)
            .unwrap()
            .addr
    }
}

/// A phone on one TLS connection.
struct TlsPhone {
    conn: TlsConn,
    user: String,
    domain: String,
}

impl TlsPhone {
    fn connect(server: SocketAddr, ca: &TestCa, user: &str, domain: &str) -> TlsPhone {
        TlsPhone {
            conn: TlsConn::connect(server, ca, None),
            user: user.into(),
            domain: domain.into(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.conn.local()
    }

    fn request(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &str,
        body: &str,
    ) -> (String, Vec<u8>) {
        let call_id = token();
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{local};transport=tls>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            local = self.local(),
            b = token(),
            user = self.user,
            domain = self.domain,
            tag = token(),
            len = body.len(),
        );
        (call_id, text.into_bytes())
    }

    fn send(&mut self, bytes: &[u8]) {
        self.conn.send(bytes);
    }

    fn next(&mut self) -> SipMessage {
        self.conn.next()
    }

    fn transact(&mut self, request: &(String, Vec<u8>)) -> SipMessage {
        self.conn.transact(&request.0, &request.1)
    }

    fn register(&mut self) {
        let req = self.request(
            "REGISTER",
            &format!("sip:{}", self.domain),
            &format!("sip:{}@{}", self.user, self.domain),
            "Expires: 600\r\n",
            "",
        );
        assert_eq!(self.transact(&req).status(), Some(200));
    }

    fn answer(&mut self, request: &SipMessage, status: u16) {
        let mut text = format!("SIP/2.0 {status} OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in request.headers(name) {
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        self.send(text.as_bytes());
    }
}

/// A UDP phone, for the other end of a message.
struct UdpPhone {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    domain: String,
}

impl UdpPhone {
    fn new(server: SocketAddr, user: &str, domain: &str) -> UdpPhone {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        UdpPhone {
            socket,
            server,
            user: user.into(),
            domain: domain.into(),
        }
    }

    fn request(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        extra: &str,
        body: &str,
    ) -> (String, Vec<u8>) {
        let call_id = token();
        let local = self.socket.local_addr().unwrap();
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{local}>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            b = token(),
            user = self.user,
            domain = self.domain,
            tag = token(),
            len = body.len(),
        );
        (call_id, text.into_bytes())
    }

    /// Sends `request` and waits for its final answer; requests that come meanwhile are
    /// answered 200 and returned too.
    fn transact(&self, request: &(String, Vec<u8>)) -> (SipMessage, Vec<SipMessage>) {
        self.socket.send_to(&request.1, self.server).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let m = SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Datagram).unwrap();
            if m.is_request() {
                let mut text = "SIP/2.0 200 OK\r\n".to_string();
                for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    for v in m.headers(name) {
                        text.push_str(&format!("{name}: {v}\r\n"));
                    }
                }
                text.push_str("Content-Length: 0\r\n\r\n");
                self.socket.send_to(text.as_bytes(), from).unwrap();
                seen.push(m);
                continue;
            }
            if m.call_id().unwrap() == request.0 && m.status().unwrap() >= 200 {
                return (m, seen);
            }
        }
        panic!("no final answer to {}", request.0);
    }

    fn register(&self) {
        let req = self.request(
            "REGISTER",
            &format!("sip:{}", self.domain),
            &format!("sip:{}@{}", self.user, self.domain),
            "Expires: 600\r\n",
            "",
        );
        assert_eq!(self.transact(&req).0.status(), Some(200));
    }
}

#[test]
fn a_phone_registered_over_tls_is_reached_over_its_own_connection() {
    let ca = TestCa::new("test CA");
    let node = Node::start("a.test", &ca, &ca.issue(&["a.test"]), |_| {});
    let mut alice = TlsPhone::connect(node.addr(Proto::Tls), &ca, "alice", "a.test");
    alice.register();
    let bob = UdpPhone::new(node.addr(Proto::Udp), "bob", "a.test");
    let message = bob.request(
        "MESSAGE",
        "sip:alice@a.test",
        "sip:alice@a.test",
        "Content-Type: text/plain\r\n",
        "over TLS",
    );
    bob.socket.send_to(&message.1, bob.server).unwrap();
    let relayed = alice.next();
    assert_eq!(relayed.method(), Some("MESSAGE"));
    assert_eq!(relayed.body(), b"over TLS");
    let via = relayed.headers("Via").next().unwrap().to_string();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    alice.answer(&relayed, 200);
    let (answer, _) = bob.transact(&(message.0.clone(), Vec::new()));
    assert_eq!(answer.status(), Some(200));
}

/// a.test routes b.test over TLS; a MESSAGE from alice@a.test reaches bob@b.test.
fn two_domains(b_cert: &Issued, ca: &TestCa) -> (Node, Node) {
    let b = Node::start("b.test", ca, b_cert, |_| {});
    let hop = format!("b.test=tls:{}", b.addr(Proto::Tls));
    let a = Node::start("a.test", ca, &ca.issue(&["a.test"]), |c| {
        c.routes.add(Route::parse(&hop).unwrap());
    });
    (a, b)
}

#[test]
fn servers_of_two_domains_talk_over_tls() {
    let ca = TestCa::new("test CA");
    let (a, b) = two_domains(&ca.issue(&["b.test"]), &ca);
    let bob = UdpPhone::new(b.addr(Proto::Udp), "bob", "b.test");
    bob.register();
    let alice = UdpPhone::new(a.addr(Proto::Udp), "alice", "a.test");
    let message = alice.request(
        "MESSAGE",
        "sip:bob@b.test",
        "sip:bob@b.test",
        "Content-Type: text/plain\r\n",
        "across domains",
    );
    // bob answers on his own socket, in a thread: alice waits for the end-to-end answer.
    let bob_thread = std::thread::spawn(move || {
        let ping = bob.request("OPTIONS", "sip:b.test", "sip:b.test", "", "");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while Instant::now() < deadline && got.is_empty() {
            got = bob.transact(&ping).1;
        }
        got
    });
    let (answer, _) = alice.transact(&message);
    assert_eq!(answer.status(), Some(200));
    let got = bob_thread.join().unwrap();
    assert_eq!(got[0].body(), b"across domains");
    let vias: Vec<String> = got[0].headers("Via").map(str::to_string).collect();
    assert!(
        vias.iter().any(|v| v.starts_with("SIP/2.0/TLS ")),
        "{vias:?}"
    );
}

#[test]
fn a_peer_whose_certificate_names_another_domain_is_refused() {
    let ca = TestCa::new("test CA");
    // b.test's server presents a certificate for c.test: a.test must not talk to it.
    let (a, b) = two_domains(&ca.issue(&["c.test"]), &ca);
    let bob = UdpPhone::new(b.addr(Proto::Udp), "bob", "b.test");
    bob.register();
    let alice = UdpPhone::new(a.addr(Proto::Udp), "alice", "a.test");
    let message = alice.request(
        "MESSAGE",
        "sip:bob@b.test",
        "sip:bob@b.test",
        "Content-Type: text/plain\r\n",
        "to the wrong server",
    );
    let (answer, _) = alice.transact(&message);
    // The handshake fails on a.test's side: the next hop is unreachable.
    assert_eq!(answer.status(), Some(503), "{:?}", answer.reason());
    // Nothing reached bob.
    let ping = bob.request("OPTIONS", "sip:b.test", "sip:b.test", "", "");
    assert!(bob.transact(&ping).1.is_empty());
}

#[test]
fn plain_text_on_the_tls_port_and_untrusted_client_certificates_are_refused() {
    let ca = TestCa::new("test CA");
    let node = Node::start("a.test", &ca, &ca.issue(&["a.test"]), |_| {});
    let tls = node.addr(Proto::Tls);

    // Plain SIP on the TLS port: not a TLS record, the connection is closed.
    let mut plain = TcpStream::connect(tls).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"OPTIONS sip:a.test SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = plain.read(&mut buf).unwrap_or(0);
    // At most a TLS alert (content type 21), never a SIP answer.
    assert!(n == 0 || buf[0] == 21, "{:?}", &buf[..n]);

    // A client certificate from a CA the server does not trust: the handshake fails.
    let other = TestCa::new("another CA");
    let stranger = other.issue(&["x.test"]);
    let tcp = TcpStream::connect(tls).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::IpAddress(tls.ip().into());
    let conn = rustls::ClientConnection::new(client_config(&ca, Some(&stranger)), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let ping = b"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKx\r\nFrom: <sip:x@x.test>;tag=1\r\nTo: <sip:a.test>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let refused = s.write_all(ping).and_then(|_| s.flush()).and_then(|_| {
        let mut b = [0u8; 512];
        s.read(&mut b)
    });
    assert!(matches!(refused, Err(_) | Ok(0)), "{refused:?}");

    // Neither disturbed anyone: a phone still registers.
    let mut alice = TlsPhone::connect(tls, &ca, "alice", "a.test");
    alice.register();
}

/// Whether the server closed `stream` (end of stream or reset, within 5 s).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert, say
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Whether `stream` is still open: nothing arrives within a short wait, and no end.
fn still_open(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1];
    matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn stalled_handshakes_and_unvouched_connections_close_on_the_clock() {
    let ca = TestCa::new("test CA");
    let cert = ca.issue(&["example.test"]);
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = common::sip::Server::clocked(true, |c| {
        c.listen.push(ListenAddr::tls(local));
        c.tls = Some(cert.config(&ca));
    });
    let tls = server
        .server
        .local_addrs()
        .iter()
        .find(|l| l.proto == Proto::Tls)
        .unwrap()
        .addr;
    let tcp = server.tcp();

    // A TLS connection that never says hello, and a TCP one that sends a request that is
    // never authenticated (it is challenged and left there).
    let mut silent = TcpStream::connect(tls).unwrap();
    let mut stranger = TcpStream::connect(tcp).unwrap();
    stranger
        .write_all(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKs1\r\nFrom: <sip:x@x.test>;tag=1\r\nTo: <sip:example.test>\r\nCall-ID: s1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    // A phone that registers over TCP with its password: vouched for.
    let mut phone = TcpStream::connect(tcp).unwrap();
    register_over_tcp(&mut phone, "alice", "alice-pw");

    server.advance(Duration::from_secs(9));
    assert!(still_open(&mut silent), "9 s: the handshake may still come");
    server.advance(Duration::from_secs(2));
    assert!(
        closed_by_server(&mut silent),
        "11 s: a stalled handshake is closed"
    );
    assert!(still_open(&mut phone));

    server.advance(Duration::from_secs(25));
    assert!(
        closed_by_server(&mut stranger),
        "36 s: an unvouched connection is closed"
    );
    assert!(still_open(&mut phone), "the phone's connection stays");
    let stats = server.server.transport_stats();
    assert_eq!(stats.connections_timed_out, 2, "{stats:?}");
    assert_eq!(stats.open_connections, 1, "{stats:?}");

    // Idle: the phone's connection closes 180 s after its last byte (it sent nothing since
    // its REGISTER at 0 s); a keep-alive ping (RFC 5626 §4.4.1) would have kept it.
    server.advance(Duration::from_secs(143));
    assert!(still_open(&mut phone), "179 s");
    server.advance(Duration::from_secs(2));
    assert!(closed_by_server(&mut phone), "181 s: idle");
}

#[test]
fn keep_alive_pings_over_tls_are_answered_and_keep_the_connection() {
    let ca = TestCa::new("test CA");
    let cert = ca.issue(&["example.test"]);
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = common::sip::Server::clocked(false, |c| {
        c.listen.push(ListenAddr::tls(local));
        c.tls = Some(cert.config(&ca));
    });
    let tls = server
        .server
        .local_addrs()
        .iter()
        .find(|l| l.proto == Proto::Tls)
        .unwrap()
        .addr;
    let mut alice = TlsPhone::connect(tls, &ca, "alice", "example.test");
    alice.register();
    for _ in 0..3 {
        server.advance(Duration::from_secs(120));
        // A double CRLF is answered with a single CRLF, inside TLS.
        alice.send(b"\r\n\r\n");
        let mut pong = [0u8; 2];
        alice.conn.stream.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"\r\n");
    }
    // 360 s after the REGISTER, the connection is still there: a request still works.
    alice.register();
}

#[test]
fn one_address_cannot_take_every_connection() {
    let server = common::sip::Server::start_with(false, 65536, |c| {
        c.connections.max_per_address = 3;
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.tcp()).unwrap())
        .collect();
    let mut fourth = TcpStream::connect(server.tcp()).unwrap();
    assert!(
        closed_by_server(&mut fourth),
        "the fourth from one address is refused"
    );
    for s in &mut held {
        assert!(still_open(s));
    }
    assert_eq!(server.server.transport_stats().connections_refused, 1);
    // Closing one makes room again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TcpStream::connect(server.tcp()).unwrap();
        if still_open(&mut again) {
            break;
        }
        assert!(Instant::now() < deadline, "room after a close");
    }
}

/// Registers `user` over a plain TCP connection, answering the digest challenge.
fn register_over_tcp(stream: &mut TcpStream, user: &str, password: &str) {
    use impp::sip::digest::{expected_response, Algorithm};
    let local = stream.local_addr().unwrap();
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@example.test>;tag=r1\r\nTo: <sip:{user}@example.test>\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local};transport=tcp>\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
            b = token()
        )
    };
    stream.write_all(request(1, "").as_bytes()).unwrap();
    let challenge = read_stream_message(stream);
    assert_eq!(challenge.status(), Some(401));
    let www = challenge
        .headers("WWW-Authenticate")
        .find(|c| c.contains("MD5"))
        .unwrap()
        .to_string();
    let param = |name: &str| {
        let i = www.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        www[i..].split('"').next().unwrap().to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let credential = impp::store::Credential::new(
        format!("sip:{user}@example.test").parse().unwrap(),
        &realm,
        password,
    );
    let response = expected_response(
        Algorithm::Md5,
        &credential.ha1_md5,
        "REGISTER",
        "sip:example.test",
        &nonce,
        Some(("auth", "00000001", "c1")),
    );
    let auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:example.test\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c1\"\r\n"
    );
    stream.write_all(request(2, &auth).as_bytes()).unwrap();
    assert_eq!(read_stream_message(stream).status(), Some(200));
}

fn read_stream_message(stream: &mut TcpStream) -> SipMessage {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(n) = framed_len(&buf) {
            return SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Stream).unwrap();
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sips_uris_are_served_over_tls_only() {
    let ca = TestCa::new("test CA");
    let node = Node::start("a.test", &ca, &ca.issue(&["a.test"]), |c| {
        // b.test is reached over UDP: no hop for a sips: request.
        c.routes
            .add(Route::parse("b.test=udp:127.0.0.1:9").unwrap());
    });
    let bob = UdpPhone::new(node.addr(Proto::Udp), "bob", "a.test");
    let over_udp = bob.request(
        "REGISTER",
        "sips:a.test",
        "sips:bob@a.test",
        "Expires: 600\r\n",
        "",
    );
    let (answer, _) = bob.transact(&over_udp);
    assert_eq!(answer.status(), Some(416), "{:?}", answer.reason());

    let mut alice = TlsPhone::connect(node.addr(Proto::Tls), &ca, "alice", "a.test");
    let over_tls = alice.request(
        "REGISTER",
        "sips:a.test",
        "sips:alice@a.test",
        "Expires: 600\r\n",
        "",
    );
    assert_eq!(alice.transact(&over_tls).status(), Some(200));
    let onward = alice.request(
        "MESSAGE",
        "sips:carol@b.test",
        "sips:carol@b.test",
        "Content-Type: text/plain\r\n",
        "not in clear",
    );
    let answer = alice.transact(&onward);
    assert_eq!(answer.status(), Some(480), "{:?}", answer.reason());
}
