//! SIP over WebSocket (RFC 7118) at the wire: a browser-like client (tungstenite's client,
//! over plain TCP and over TLS) registers, watches, is notified and messaged over its own
//! WebSocket; refused handshakes get the right HTTP status, bad frames the right close code,
//! and a stalled handshake is closed on time, without disturbing anyone else.

mod common;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::certs::TestCa;
use common::fixtures::{pidf, wait_for};
use common::sip::{header_map, token, Client, Server, DOMAIN};
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipLimits, SipMessage, Transport};
use rustls::pki_types::ServerName;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// A stream a WebSocket client runs over: TCP or TLS.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A server of example.test listening on UDP and TCP (for the other phones), WS and WSS.
fn server(tweak: impl FnOnce(&mut impp::sip::SipServerConfig)) -> (TestCa, Server) {
    let ca = TestCa::new("ws test CA");
    let tls = ca.issue(&["127.0.0.1", DOMAIN]).config(&ca);
    let s = Server::clocked(false, move |c| {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        c.listen.push(ListenAddr::ws(local));
        c.listen.push(ListenAddr::wss(local));
        c.tls = Some(tls);
        tweak(c);
    });
    (ca, s)
}

/// bob, a UDP phone of the server, who published "at my desk"; and his address of record.
fn bob_at_his_desk(s: &Server) -> (Client, String) {
    let mut bob = Client::new(s.udp(), "bob");
    let b = bob.aor();
    assert_eq!(
        bob.publish("", Some(&pidf(&b, "at my desk"))).status(),
        Some(200)
    );
    (bob, b)
}

/// A browser's SIP user agent on one WebSocket.
struct WsPhone {
    ws: WebSocket<Box<dyn Stream>>,
    user: String,
    /// The host a browser puts in its Via and Contact (RFC 7118 §5.2: it has none to give).
    host: String,
    proto: Proto,
    cseq: u32,
    tag: String,
}

fn tcp(server: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(server).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp
}

fn tls(server: SocketAddr, ca: &TestCa) -> Box<dyn Stream> {
    let name = ServerName::IpAddress(server.ip().into());
    let conn = rustls::ClientConnection::new(ca.client_config(), name).unwrap();
    Box::new(rustls::StreamOwned::new(conn, tcp(server)))
}

impl WsPhone {
    /// Opens the WebSocket with the `sip` subprotocol.
    fn open(
        stream: Box<dyn Stream>,
        url: &str,
    ) -> Result<WebSocket<Box<dyn Stream>>, tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        match tungstenite::client::client(request, stream) {
            Ok((ws, response)) => {
                assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "sip");
                Ok(ws)
            }
            Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
            Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("blocking stream"),
        }
    }

    fn connect(s: &Server, proto: Proto, ca: &TestCa, user: &str) -> WsPhone {
        let addr = s.addr(proto);
        let (stream, url): (Box<dyn Stream>, String) = match proto {
            Proto::Ws => (Box::new(tcp(addr)), format!("ws://{addr}/")),
            _ => (tls(addr, ca), format!("wss://{addr}/")),
        };
        WsPhone {
            ws: WsPhone::open(stream, &url).unwrap(),
            user: user.into(),
            host: format!("{}.invalid", token()),
            proto,
            cseq: 1,
            tag: token(),
        }
    }

    fn aor(&self) -> String {
        format!("sip:{}@{DOMAIN}", self.user)
    }

    fn request(
        &mut self,
        method: &str,
        uri: &str,
        call_id: &str,
        extra: &str,
        body: &str,
    ) -> String {
        self.cseq += 1;
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {host};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\n\
             From: <{aor}>;tag={tag}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@{host};transport=ws>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            via = self.proto.as_str(),
            host = self.host,
            b = token(),
            aor = self.aor(),
            tag = self.tag,
            to = if method == "REGISTER" { self.aor() } else { uri.to_string() },
            cseq = self.cseq,
            user = self.user,
            len = body.len(),
        )
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).unwrap();
    }

    /// The next SIP message on the WebSocket; requests are answered 200 and returned too.
    fn next(&mut self) -> SipMessage {
        loop {
            match self.ws.read().expect("a message on the WebSocket") {
                Message::Text(t) => {
                    let m =
                        SipMessage::parse(t.as_bytes(), &SipLimits::DEFAULT, Transport::Datagram)
                            .unwrap();
                    if m.is_request() {
                        let mut answer = String::from("SIP/2.0 200 OK\r\n");
                        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                            for v in m.headers(name) {
                                answer.push_str(&format!("{name}: {v}\r\n"));
                            }
                        }
                        answer.push_str("Content-Length: 0\r\n\r\n");
                        self.send(&answer);
                    }
                    return m;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn transact(&mut self, text: &str) -> SipMessage {
        self.send(text);
        loop {
            let m = self.next();
            if !m.is_request() && m.status().unwrap() >= 200 {
                return m;
            }
        }
    }

    fn next_request(&mut self, method: &str) -> SipMessage {
        loop {
            let m = self.next();
            if m.method() == Some(method) {
                return m;
            }
        }
    }

    fn register(&mut self) -> SipMessage {
        let call_id = token();
        let r = self.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &call_id,
            "Expires: 600\r\n",
            "",
        );
        self.transact(&r)
    }
}

/// `from` sends `text` (text/plain) to `to` in a MESSAGE, without waiting for the answer;
/// its Call-ID, to read that answer by.
fn send_text(from: &Client, to: &str, text: &[u8]) -> String {
    let m = from.request(
        "MESSAGE",
        to,
        &format!("<{to}>"),
        &token(),
        "",
        Some(("text/plain", text)),
    );
    from.send(&m)
}

#[test]
fn a_browser_registers_watches_and_chats_over_ws_and_wss() {
    let (ca, s) = server(|_| {});
    let (mut bob, b) = bob_at_his_desk(&s);

    for (proto, user) in [(Proto::Ws, "alice"), (Proto::Wss, "carol")] {
        let mut phone = WsPhone::connect(&s, proto, &ca, user);
        let r = phone.register();
        assert_eq!(r.status(), Some(200), "{proto} REGISTER");
        let contact = header_map(&r)["contact"].clone();
        assert!(contact.contains(";transport=ws"), "{contact}");

        // Watching bob: the NOTIFY comes back over the WebSocket.
        let call_id = token();
        let sub = phone.request(
            "SUBSCRIBE",
            &b,
            &call_id,
            "Event: presence\r\nExpires: 600\r\n",
            "",
        );
        let r = phone.transact(&sub);
        assert_eq!(r.status(), Some(200), "{proto} SUBSCRIBE");
        let notify = phone.next_request("NOTIFY");
        assert!(String::from_utf8_lossy(notify.body()).contains("at my desk"));
        let via = notify.headers("Via").next().unwrap().to_string();
        assert!(
            via.starts_with(&format!("SIP/2.0/{} ", proto.as_str())),
            "{via}"
        );
        let contact = header_map(&notify)["contact"].clone();
        assert!(
            contact.contains(&format!(";transport={}", proto.param())),
            "{contact}"
        );

        // A change: another NOTIFY.
        assert_eq!(
            bob.publish("", Some(&pidf(&b, "in a meeting"))).status(),
            Some(200)
        );
        let notify = phone.next_request("NOTIFY");
        assert!(String::from_utf8_lossy(notify.body()).contains("in a meeting"));
        assert_eq!(
            bob.publish("", Some(&pidf(&b, "at my desk"))).status(),
            Some(200)
        );
        phone.next_request("NOTIFY");

        // A MESSAGE from bob (over UDP) reaches the browser over its WebSocket; and one from
        // the browser reaches bob.
        let call_id = send_text(&bob, &phone.aor(), b"hello browser");
        let message = phone.next_request("MESSAGE");
        assert_eq!(message.body(), b"hello browser");
        assert_eq!(bob.final_response(&call_id).status(), Some(200));
    }
}

#[test]
fn a_message_for_a_closed_websocket_is_stored_and_delivered_at_the_next_sign_in() {
    let (ca, s) = server(|_| {});
    let mut alice = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
    assert_eq!(alice.register().status(), Some(200));
    let aor: impp::uri::Uri = alice.aor().parse().unwrap();
    assert_eq!(s.engine.endpoints(&aor).unwrap().len(), 1);
    alice.ws.close(None).unwrap();
    while alice.ws.read().is_ok() {}
    // The registration ends with its WebSocket, at once: no clock moves.
    wait_for("the registration to end", 5, || {
        s.server.sync();
        s.engine.endpoints(&aor).unwrap().is_empty()
    });

    // So a MESSAGE for alice is stored at once (202), not handed to a closed connection.
    let mut bob = Client::new(s.udp(), "bob");
    let call_id = send_text(&bob, &alice.aor(), b"while you were away");
    assert_eq!(bob.final_response(&call_id).status(), Some(202));

    let mut again = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
    assert_eq!(again.register().status(), Some(200));
    let stored = again.next_request("MESSAGE");
    assert_eq!(stored.body(), b"while you were away");
}

/// What the server answers a raw handshake, as text.
fn raw_handshake(addr: SocketAddr, text: &str) -> String {
    let mut tcp = tcp(addr);
    tcp.write_all(text.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn handshake(extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

#[test]
fn bad_handshakes_are_refused_with_the_right_status() {
    let (ca, s) = server(|c| c.ws_origins = vec!["https://app.example.test".into()]);
    let addr = s.addr(Proto::Ws);
    let first_line = |text: &str| {
        raw_handshake(addr, text)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        first_line(&handshake("")).starts_with("HTTP/1.1 400"),
        "no sip subprotocol"
    );
    assert!(first_line(&handshake("Sec-WebSocket-Protocol: chat\r\n")).starts_with("HTTP/1.1 400"));
    assert!(
        first_line("OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    assert!(first_line(&handshake(
        "Sec-WebSocket-Protocol: sip\r\nOrigin: https://evil.test\r\n"
    ))
    .starts_with("HTTP/1.1 403"));
    assert!(first_line(
        &handshake("Sec-WebSocket-Protocol: sip\r\n").replace("Version: 13", "Version: 7")
    )
    .starts_with("HTTP/1.1 426"));
    // Allowed: an origin on the list, and the server's own.
    for origin in ["https://app.example.test", &format!("http://{addr}")] {
        let mut request = format!("ws://{addr}/").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        request
            .headers_mut()
            .insert("Host", addr.to_string().parse().unwrap());
        assert!(
            tungstenite::client::client(request, tcp(addr)).is_ok(),
            "{origin}"
        );
    }
    // A handshake that stalls is closed once the handshake time is over (on the clock).
    let mut slow = tcp(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    s.advance(Duration::from_secs(11));
    let mut buf = [0u8; 16];
    assert!(matches!(slow.read(&mut buf), Ok(0) | Err(_)), "closed");

    // Nothing of this disturbed a phone on the WebSocket.
    let mut phone = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
    assert_eq!(phone.register().status(), Some(200));
}

#[test]
fn bad_frames_close_the_websocket_with_the_right_code() {
    let (ca, s) = server(|c| c.limits.max_message_size = 4096);
    let close_code = |message: Message| {
        let mut phone = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
        let _ = phone.ws.send(message);
        loop {
            match phone.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => continue,
                Err(e) => panic!("no close frame: {e}"),
            }
        }
    };
    assert_eq!(
        close_code(Message::text("{\"not\": \"sip\"}")),
        Some(CloseCode::Unsupported)
    );
    assert_eq!(
        close_code(Message::text(format!(
            "OPTIONS sip:x SIP/2.0\r\nX: {}\r\n\r\n",
            "a".repeat(8000)
        ))),
        Some(CloseCode::Size)
    );
    // A keep-alive is answered, a ping too; the WebSocket stays open.
    let mut phone = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
    phone.send("\r\n\r\n");
    assert_eq!(phone.ws.read().unwrap(), Message::text("\r\n"));
    phone.ws.send(Message::Ping(vec![1, 2].into())).unwrap();
    assert_eq!(phone.ws.read().unwrap(), Message::Pong(vec![1, 2].into()));
    assert_eq!(phone.register().status(), Some(200));
}

#[test]
fn a_subscription_over_a_closed_websocket_ends_at_its_next_notify() {
    let (ca, s) = server(|_| {});
    let (mut bob, b) = bob_at_his_desk(&s);
    let mut alice = WsPhone::connect(&s, Proto::Ws, &ca, "alice");
    let call_id = token();
    let sub = alice.request(
        "SUBSCRIBE",
        &b,
        &call_id,
        "Event: presence\r\nExpires: 600\r\n",
        "",
    );
    assert_eq!(alice.transact(&sub).status(), Some(200));
    alice.next_request("NOTIFY");
    assert_eq!(s.engine.stats().subscriptions_active, 1);
    alice.ws.close(None).unwrap();
    while alice.ws.read().is_ok() {}

    // The next NOTIFY cannot go anywhere: its transaction fails at once (a transport error
    // is a 503), and the subscription ends without waiting for Timer F (no clock moves).
    assert_eq!(
        bob.publish("", Some(&pidf(&b, "gone home"))).status(),
        Some(200)
    );
    wait_for("the subscription to end", 5, || {
        s.server.sync();
        s.engine.stats().subscriptions_active == 0
    });
}

/// What the server answers `request` on `stream` (read until it closes), as bytes.
fn http(mut stream: Box<dyn Stream>, request: &str) -> Vec<u8> {
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    answer
}

#[test]
fn a_web_root_serves_its_files_on_the_websocket_listeners() {
    let dir = std::env::temp_dir().join(format!("impp-ws-web-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www/lib")).unwrap();
    std::fs::write(dir.join("www/index.html"), "<title>buddies</title>").unwrap();
    // A script bigger than a socket's first write: it must arrive whole before the close.
    let script = "x".repeat(900 << 10);
    std::fs::write(dir.join("www/lib/app.js"), &script).unwrap();
    std::fs::write(dir.join("secret.txt"), "not for the web").unwrap();
    let web_root = dir.join("www");
    let (ca, s) = server(move |c| c.web_root = Some(web_root));
    for proto in [Proto::Ws, Proto::Wss] {
        let addr = s.addr(proto);
        let stream = || -> Box<dyn Stream> {
            match proto {
                Proto::Ws => Box::new(tcp(addr)),
                _ => tls(addr, &ca),
            }
        };
        let get = |target: &str| {
            let answer = http(
                stream(),
                &format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            );
            String::from_utf8_lossy(&answer).into_owned()
        };
        let page = get("/");
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{proto}: {page}");
        assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(page.ends_with("\r\n\r\n<title>buddies</title>"), "{page}");
        let js = get("/lib/app.js");
        assert!(js.contains("Content-Type: text/javascript"), "{proto}");
        assert!(
            js.ends_with(&script),
            "{proto}: the whole script, then the close"
        );
        for target in ["/../secret.txt", "/%2e%2e/secret.txt", "/nothing.html"] {
            assert!(get(target).starts_with("HTTP/1.1 404 "), "{proto} {target}");
        }
        let post = String::from_utf8_lossy(&http(
            stream(),
            &format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"),
        ))
        .into_owned();
        assert!(post.starts_with("HTTP/1.1 405 "), "{proto}: {post}");
        // The WebSocket on the same listener works as before.
        let mut phone = WsPhone::connect(&s, proto, &ca, "alice");
        assert_eq!(phone.register().status(), Some(200), "{proto}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_web_root_a_plain_get_is_refused() {
    let (_ca, s) = server(|_| {});
    let answer = raw_handshake(s.addr(Proto::Ws), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}
