//! The SIP transport over loopback: UDP and TCP, IPv4 and IPv6, framing, connection reuse,
//! limits, keep-alives and shutdown. Every socket is bound to 127.0.0.1 or ::1, port 0.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::sip::transport::{
    Inbound, ListenAddr, Outbound, Proto, SendError, SendFailure, Transport, TransportConfig,
};

const WAIT: Duration = Duration::from_secs(2);

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

fn ipv6_available() -> bool {
    UdpSocket::bind(v6()).is_ok() && TcpListener::bind(v6()).is_ok()
}

/// A test framer: the head ends at the first blank line, the body is `Content-Length` (or
/// `l`) bytes long. Bytes that are not UTF-8 in the head are garbage.
fn frame(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return match std::str::from_utf8(buf) {
            Err(e) if e.error_len().is_some() => Err("not UTF-8".into()),
            _ => Ok(None),
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "not UTF-8".to_string())?;
    let mut body = 0;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                body = value
                    .trim()
                    .parse()
                    .map_err(|_| "bad Content-Length".to_string())?;
            }
        }
    }
    let total = end + 4 + body;
    Ok((buf.len() >= total).then_some(total))
}

fn message(first_line: &str, body: &str) -> Vec<u8> {
    format!(
        "{first_line}\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Harness {
    transport: Transport,
    inbound: Receiver<Inbound>,
    failures: Receiver<SendFailure>,
}

impl Harness {
    fn start(listen: Vec<ListenAddr>) -> Harness {
        Harness::start_with(listen, |_| {})
    }

    fn start_with(listen: Vec<ListenAddr>, tweak: impl FnOnce(&mut TransportConfig)) -> Harness {
        let mut config = TransportConfig::new(listen, Arc::new(frame));
        tweak(&mut config);
        let (in_tx, inbound) = channel();
        let (fail_tx, failures) = channel();
        let transport = Transport::start(
            config,
            Arc::new(move |m| {
                let _ = in_tx.send(m);
                Ok(())
            }),
            Arc::new(move |f| {
                let _ = fail_tx.send(f);
            }),
        )
        .expect("transport starts");
        Harness {
            transport,
            inbound,
            failures,
        }
    }

    fn recv(&self) -> Inbound {
        self.inbound.recv_timeout(WAIT).expect("a message arrives")
    }

    fn addr(&self, proto: Proto, v6: bool) -> SocketAddr {
        self.transport.local_addr(proto, v6).expect("bound")
    }

    fn reply(&self, to: &Inbound, data: &[u8]) {
        self.transport
            .send(Outbound {
                proto: to.proto,
                dest: to.source,
                data: data.to_vec(),
                connection: to.connection,
                server_name: None,
            })
            .expect("running");
    }
}

fn tcp_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one framed message from a client stream.
fn read_message(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(n) = frame(&buf).unwrap() {
            assert_eq!(n, buf.len(), "one message at a time");
            return buf;
        }
        let n = s.read(&mut chunk).expect("reply arrives");
        assert!(n > 0, "connection closed before the reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// True when the server closed the stream (EOF or reset) within the wait.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

fn udp_round_trip(any: SocketAddr, v6: bool) {
    let h = Harness::start(vec![ListenAddr::udp(any)]);
    let server = h.addr(Proto::Udp, v6);
    assert_ne!(server.port(), 0);
    let client = UdpSocket::bind(any).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let request = message("OPTIONS sip:x@example.test SIP/2.0", "");
    client.send_to(&request, server).unwrap();
    let got = h.recv();
    assert_eq!(got.data, request);
    assert_eq!(got.proto, Proto::Udp);
    assert_eq!(got.source, client.local_addr().unwrap());
    assert_eq!(got.local, server);
    assert_eq!(got.connection, None);
    h.reply(&got, b"SIP/2.0 200 OK\r\n\r\n");
    let mut buf = [0u8; 1024];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n\r\n");
    assert_eq!(from, server, "the reply leaves from the listening socket");
}

#[test]
fn udp_round_trip_v4() {
    udp_round_trip(v4(), false);
}

#[test]
fn udp_round_trip_v6() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 cannot be bound");
        return;
    }
    udp_round_trip(v6(), true);
}

#[test]
fn several_listen_addresses() {
    let mut listen = vec![
        ListenAddr::udp(v4()),
        ListenAddr::udp(v4()),
        ListenAddr::tcp(v4()),
    ];
    let six = ipv6_available();
    if six {
        listen.push(ListenAddr::udp(v6()));
        listen.push(ListenAddr::tcp(v6()));
    }
    let h = Harness::start(listen.clone());
    let local = h.transport.local_addrs().to_vec();
    assert_eq!(local.len(), listen.len());
    for (want, got) in listen.iter().zip(&local) {
        assert_eq!(want.proto, got.proto);
        assert_eq!(want.addr.ip(), got.addr.ip());
        assert_ne!(got.addr.port(), 0);
    }
    for l in &local {
        let data = message(&format!("OPTIONS sip:{} SIP/2.0", l.addr), "");
        match l.proto {
            Proto::Udp => {
                let any = if l.addr.is_ipv6() { v6() } else { v4() };
                UdpSocket::bind(any)
                    .unwrap()
                    .send_to(&data, l.addr)
                    .unwrap();
            }
            Proto::Tls | Proto::Ws | Proto::Wss => {
                unreachable!("no TLS or WebSocket listener here")
            }
            Proto::Tcp => {
                let mut s = tcp_client(l.addr);
                s.write_all(&data).unwrap();
                // Kept open until the message is seen: closing early is fine too, but
                // this keeps the test about addresses.
                let got = h.recv();
                assert_eq!(got.data, data);
                assert_eq!(got.local, l.addr);
                continue;
            }
        }
        let got = h.recv();
        assert_eq!(got.data, data);
        assert_eq!(got.local, l.addr);
        assert_eq!(got.proto, l.proto);
    }
}

#[test]
fn large_udp_datagram_and_oversized_one() {
    let h = Harness::start(vec![ListenAddr::udp(v4())]);
    let server = h.addr(Proto::Udp, false);
    let client = UdpSocket::bind(v4()).unwrap();
    let body = "x".repeat(60_000);
    let big = message("MESSAGE sip:x@example.test SIP/2.0", &body);
    assert!(big.len() < TransportConfig::DEFAULT_MAX_MESSAGE_SIZE);
    client.send_to(&big, server).unwrap();
    assert_eq!(h.recv().data, big);

    // Above max_message_size: dropped, and the next datagram still gets through.
    let h = Harness::start_with(vec![ListenAddr::udp(v4())], |c| c.max_message_size = 1000);
    let server = h.addr(Proto::Udp, false);
    client.send_to(&vec![b'y'; 1001], server).unwrap();
    client.send_to(b"small", server).unwrap();
    assert_eq!(h.recv().data, b"small");
    assert!(h.inbound.try_recv().is_err());
}

#[test]
fn tcp_framing_and_reply_on_the_same_connection() {
    let h = Harness::start(vec![ListenAddr::tcp(v4())]);
    let server = h.addr(Proto::Tcp, false);
    let mut client = tcp_client(server);

    // Two messages in one write.
    let one = message("MESSAGE sip:a@example.test SIP/2.0", "first body");
    let two = message("MESSAGE sip:b@example.test SIP/2.0", "second");
    client
        .write_all(&[one.clone(), two.clone()].concat())
        .unwrap();
    let a = h.recv();
    let b = h.recv();
    assert_eq!(a.data, one);
    assert_eq!(b.data, two);
    assert_eq!(a.proto, Proto::Tcp);
    assert_eq!(a.source, client.local_addr().unwrap());
    assert_eq!(a.local, server);
    assert!(a.connection.is_some());
    assert_eq!(a.connection, b.connection);

    // One message (compact `l:` header) trickled in three-byte writes.
    let three = b"MESSAGE sip:c@example.test SIP/2.0\r\nl: 5\r\n\r\nhello".to_vec();
    for piece in three.chunks(3) {
        client.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let c = h.recv();
    assert_eq!(c.data, three);
    assert_eq!(c.connection, a.connection);

    // The reply reuses the connection: by its identifier ...
    let reply = message("SIP/2.0 200 OK", "");
    h.reply(&a, &reply);
    assert_eq!(read_message(&mut client), reply);
    // ... and by the peer's address alone.
    let reply2 = message("SIP/2.0 202 Accepted", "ok");
    h.transport
        .send(Outbound {
            proto: Proto::Tcp,
            dest: a.source,
            data: reply2.clone(),
            connection: None,
            server_name: None,
        })
        .unwrap();
    assert_eq!(read_message(&mut client), reply2);
    assert!(h.failures.try_recv().is_err());
}

#[test]
fn outbound_tcp_connect_to_another_transport() {
    let a = Harness::start(vec![ListenAddr::tcp(v4())]);
    let b = Harness::start(vec![ListenAddr::tcp(v4())]);
    let b_addr = b.addr(Proto::Tcp, false);
    let request = message("SUBSCRIBE sip:b@example.test SIP/2.0", "");
    // Two sends before the connect completes: both wait in the queue, in order, on one
    // connection.
    for _ in 0..2 {
        a.transport
            .send(Outbound {
                proto: Proto::Tcp,
                dest: b_addr,
                data: request.clone(),
                connection: None,
                server_name: None,
            })
            .unwrap();
    }
    let got = b.recv();
    let got2 = b.recv();
    assert_eq!(got.data, request);
    assert_eq!(got2.data, request);
    assert_eq!(got.connection, got2.connection);
    let response = message("SIP/2.0 200 OK", "");
    b.reply(&got, &response);
    let back = a.recv();
    assert_eq!(back.data, response);
    assert_eq!(back.source, b_addr);
    assert_eq!(back.proto, Proto::Tcp);
    assert_eq!(
        back.local, got.source,
        "the same connection, seen from both ends"
    );
    assert!(a.failures.try_recv().is_err());
}

#[test]
fn failed_sends_are_reported() {
    let h = Harness::start(vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())]);
    // Nothing listens on a port just released.
    let closed = TcpListener::bind(v4()).unwrap().local_addr().unwrap();
    h.transport
        .send(Outbound {
            proto: Proto::Tcp,
            dest: closed,
            data: b"hello".to_vec(),
            connection: None,
            server_name: None,
        })
        .unwrap();
    let f = h
        .failures
        .recv_timeout(WAIT)
        .expect("connect failure reported");
    assert_eq!(f.dest, closed);
    assert_eq!(f.data, b"hello");
    assert!(
        matches!(&f.error, SendError::Io(e) if e.kind() == ErrorKind::ConnectionRefused),
        "{:?}",
        f.error
    );

    // No IPv6 UDP socket is bound.
    h.transport
        .send(Outbound {
            proto: Proto::Udp,
            dest: "[::1]:5060".parse().unwrap(),
            data: b"x".to_vec(),
            connection: None,
            server_name: None,
        })
        .unwrap();
    let f = h.failures.recv_timeout(WAIT).unwrap();
    assert!(matches!(f.error, SendError::NoSocket));
}

#[test]
fn idle_tcp_connection_is_closed() {
    // The idle timeout runs on the configured clock, moved by hand; `sweep` applies it now.
    let clock = impp::engine::ManualClock::new();
    let c2 = clock.clone();
    let h = Harness::start_with(vec![ListenAddr::tcp(v4())], move |c| {
        c.tcp_idle_timeout = Duration::from_millis(200);
        c.clock = c2;
    });
    let mut client = tcp_client(h.addr(Proto::Tcp, false));
    // The connection is accepted (a message gets through) before the clock moves.
    let ping = message("OPTIONS sip:x@example.test SIP/2.0", "");
    client.write_all(&ping).unwrap();
    assert_eq!(h.recv().data, ping);
    clock.advance(Duration::from_millis(199));
    h.transport.sweep();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert!(!closed_by_server(&mut client), "199 ms idle: still open");
    clock.advance(Duration::from_millis(1));
    h.transport.sweep();
    client.set_read_timeout(Some(WAIT)).unwrap();
    assert!(closed_by_server(&mut client), "200 ms idle: closed");
}

#[test]
fn oversized_tcp_message_closes_only_its_connection() {
    let h = Harness::start_with(vec![ListenAddr::tcp(v4())], |c| c.max_message_size = 1000);
    let server = h.addr(Proto::Tcp, false);
    let mut good = tcp_client(server);
    let mut bad = tcp_client(server);
    let big = message("MESSAGE sip:x@example.test SIP/2.0", &"z".repeat(5000));
    let _ = bad.write_all(&big);
    assert!(closed_by_server(&mut bad));

    // The announced length alone can be too much: closed before the body arrives.
    let mut bad2 = tcp_client(server);
    let _ = bad2.write_all(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 4000\r\n\r\n");
    let _ = bad2.write_all(&[b'z'; 1200]);
    assert!(closed_by_server(&mut bad2));

    let ok = message("MESSAGE sip:x@example.test SIP/2.0", "fits");
    good.write_all(&ok).unwrap();
    let got = h.recv();
    assert_eq!(got.data, ok);
    h.reply(&got, &ok);
    assert_eq!(read_message(&mut good), ok);
}

#[test]
fn framing_error_closes_only_its_connection() {
    let h = Harness::start(vec![ListenAddr::tcp(v4())]);
    let server = h.addr(Proto::Tcp, false);
    let mut good = tcp_client(server);
    let mut bad = tcp_client(server);
    bad.write_all(b"\xff\xfe garbage\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut bad));
    let mut bad2 = tcp_client(server);
    bad2.write_all(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: many\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut bad2));

    let ok = message("OPTIONS sip:x@example.test SIP/2.0", "");
    good.write_all(&ok).unwrap();
    assert_eq!(h.recv().data, ok);
    assert!(h.inbound.try_recv().is_err());
}

#[test]
fn crlf_keepalive_is_answered() {
    let h = Harness::start(vec![ListenAddr::tcp(v4())]);
    let mut client = tcp_client(h.addr(Proto::Tcp, false));
    client.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");

    // A ping split in two writes, then a message after a stray CRLF: the ping is answered
    // and the message framed without the CRLFs.
    client.write_all(b"\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    client.write_all(b"\r\n").unwrap();
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    let m = message("OPTIONS sip:x@example.test SIP/2.0", "");
    client.write_all(&[&b"\r\n"[..], &m].concat()).unwrap();
    assert_eq!(h.recv().data, m);
    assert!(h.inbound.try_recv().is_err());
}

#[test]
fn udp_receive_buffer_is_reported() {
    let h = Harness::start(vec![ListenAddr::udp(v4())]);
    let buffers = h.transport.udp_recv_buffers();
    assert_eq!(buffers.len(), 1);
    assert_eq!(
        buffers[0].requested,
        TransportConfig::DEFAULT_UDP_RECV_BUFFER
    );
    assert_eq!(buffers[0].local, h.addr(Proto::Udp, false));
    let default = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .unwrap()
        .recv_buffer_size()
        .unwrap();
    assert!(
        buffers[0].granted >= default,
        "granted {} < default {default}",
        buffers[0].granted
    );
}

#[test]
fn stop_joins_promptly_and_closes_everything() {
    let h = Harness::start(vec![ListenAddr::tcp(v4()), ListenAddr::udp(v4())]);
    let server = h.addr(Proto::Tcp, false);
    let mut client = tcp_client(server);
    client
        .write_all(&message("OPTIONS sip:x SIP/2.0", ""))
        .unwrap();
    let got = h.recv();
    let started = Instant::now();
    h.transport.stop();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(closed_by_server(&mut client));
    assert!(
        TcpStream::connect(server).is_err(),
        "the listener is closed"
    );
    let again = h.transport.send(Outbound {
        proto: Proto::Tcp,
        dest: got.source,
        data: b"late".to_vec(),
        connection: got.connection,
        server_name: None,
    });
    assert!(again.is_err());
    h.transport.stop(); // a second stop does nothing
}

#[test]
fn transport_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Transport>();
}

#[test]
fn a_panicking_handler_does_not_stop_the_transport() {
    let (tx, rx) = channel();
    let transport = Transport::start(
        TransportConfig::new(vec![ListenAddr::udp(v4())], Arc::new(frame)),
        Arc::new(move |m: Inbound| {
            if m.data == b"panic" {
                panic!("handler fails on purpose");
            }
            let _ = tx.send(m);
            Ok(())
        }),
        Arc::new(|_| {}),
    )
    .unwrap();
    let server = transport.local_addr(Proto::Udp, false).unwrap();
    let client = UdpSocket::bind(v4()).unwrap();
    client.send_to(b"panic", server).unwrap();
    client.send_to(b"after", server).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().data, b"after");
}

#[test]
fn a_peer_that_does_not_read_fills_its_send_queue() {
    let h = Harness::start(vec![ListenAddr::tcp(v4())]);
    // A peer that accepts nothing and reads nothing: the kernel completes the handshake.
    let peer = TcpListener::bind(v4()).unwrap();
    let dest = peer.local_addr().unwrap();
    let chunk = vec![b'q'; 1 << 20];
    for _ in 0..32 {
        h.transport
            .send(Outbound {
                proto: Proto::Tcp,
                dest,
                data: chunk.clone(),
                connection: None,
                server_name: None,
            })
            .unwrap();
    }
    let f = h.failures.recv_timeout(WAIT).expect("the queue fills");
    assert!(matches!(f.error, SendError::QueueFull), "{:?}", f.error);
    assert_eq!(f.dest, dest);
    assert!(f.connection.is_some());
}

#[test]
fn bursts_beyond_one_read_round_all_arrive_in_order() {
    let h = Harness::start(vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())]);

    // 300 datagrams: more than one round of UDP reads (and, at about 1 KiB of kernel
    // memory each, within even a default receive buffer should the reader fall behind).
    let client = UdpSocket::bind(v4()).unwrap();
    let udp = h.addr(Proto::Udp, false);
    for i in 0..300u32 {
        client.send_to(format!("d{i}").as_bytes(), udp).unwrap();
    }
    for i in 0..300u32 {
        assert_eq!(h.recv().data, format!("d{i}").into_bytes());
    }

    // 2 MiB on one connection: more than one round of TCP reads.
    let mut stream = tcp_client(h.addr(Proto::Tcp, false));
    let body = "b".repeat(10_000);
    let writer = std::thread::spawn(move || {
        let all: Vec<u8> = (0..200)
            .flat_map(|i| message(&format!("MESSAGE sip:{i}@example.test SIP/2.0"), &body))
            .collect();
        stream.write_all(&all).unwrap();
        stream
    });
    for i in 0..200 {
        let got = h.recv();
        let want = format!("MESSAGE sip:{i}@example.test SIP/2.0\r\n");
        assert!(
            got.data.starts_with(want.as_bytes()),
            "message {i} out of order"
        );
        assert_eq!(frame(&got.data).unwrap(), Some(got.data.len()));
    }
    drop(writer.join().unwrap());
}

#[test]
fn stop_from_the_handler_does_not_wait_for_itself() {
    let slot: Arc<std::sync::Mutex<Option<Arc<Transport>>>> = Arc::default();
    let in_handler = Arc::clone(&slot);
    let (tx, rx) = channel();
    let transport = Arc::new(
        Transport::start(
            TransportConfig::new(vec![ListenAddr::udp(v4())], Arc::new(frame)),
            Arc::new(move |_m: Inbound| {
                if let Some(t) = in_handler.lock().unwrap().take() {
                    t.stop();
                    let _ = tx.send(());
                }
                Ok(())
            }),
            Arc::new(|_| {}),
        )
        .unwrap(),
    );
    *slot.lock().unwrap() = Some(Arc::clone(&transport));
    let server = transport.local_addr(Proto::Udp, false).unwrap();
    UdpSocket::bind(v4())
        .unwrap()
        .send_to(b"stop", server)
        .unwrap();
    rx.recv_timeout(WAIT)
        .expect("the handler returned from stop");
    let deadline = Instant::now() + WAIT;
    let out = Outbound {
        proto: Proto::Udp,
        dest: server,
        data: b"x".to_vec(),
        connection: None,
        server_name: None,
    };
    while transport.send(out.clone()).is_ok() {
        assert!(Instant::now() < deadline, "the I/O thread did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The early handler sees each message in place, before the handler, over UDP and TCP: what
/// it takes never reaches the handler, what it leaves does, whole and in order; a panic in it
/// loses that one message only.
#[test]
fn early_handler_takes_what_it_deals_with() {
    let (seen_tx, seen) = channel::<(Vec<u8>, Proto)>();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let h = Harness::start_with(
        vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())],
        move |config| {
            config.early = Some(Arc::new(move |data: &[u8], proto: Proto| {
                assert!(
                    !data.starts_with(b"PANIC"),
                    "a test panic in the early handler"
                );
                let _ = seen_tx.lock().unwrap().send((data.to_vec(), proto));
                data.starts_with(b"SIP/2.0 ")
            }));
        },
    );
    let request = message("OPTIONS sip:x@example.test SIP/2.0", "");
    let response = message("SIP/2.0 200 OK", "");

    // UDP: the response is taken, the request passed on; both were seen early.
    let client = UdpSocket::bind(v4()).unwrap();
    let udp = h.addr(Proto::Udp, false);
    client.send_to(&response, udp).unwrap();
    client.send_to(&request, udp).unwrap();
    assert_eq!(h.recv().data, request);
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        (response.clone(), Proto::Udp)
    );
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        (request.clone(), Proto::Udp)
    );
    // A panic drops its message; the next one gets through.
    client.send_to(b"PANIC\r\n\r\n", udp).unwrap();
    client.send_to(&request, udp).unwrap();
    assert_eq!(h.recv().data, request);
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        (request.clone(), Proto::Udp)
    );

    // TCP: a taken message between two passed ones in one write.
    let mut stream = tcp_client(h.addr(Proto::Tcp, false));
    let other = message("MESSAGE sip:y@example.test SIP/2.0", "body");
    stream
        .write_all(&[request.clone(), response.clone(), other.clone()].concat())
        .unwrap();
    let first = h.recv();
    assert_eq!(first.data, request);
    assert_eq!(first.proto, Proto::Tcp);
    assert_eq!(h.recv().data, other);
    for want in [&request, &response, &other] {
        assert_eq!(seen.recv_timeout(WAIT).unwrap(), (want.clone(), Proto::Tcp));
    }
    assert!(
        h.inbound.recv_timeout(Duration::from_millis(100)).is_err(),
        "the taken ones never reach the handler"
    );
}

/// The first line of a message, for naming it in assertions.
fn first_line(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.split("\r\n").next().unwrap_or_default().to_string()
}

/// Waits (up to `WAIT`) until `done` holds, polling.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// A handler that cannot take a stream message now gives it back: the message is held on
/// its connection, nothing after it is framed or read, and it is offered again until taken.
/// Then the rest follow, each once, in order; another connection and UDP are served all
/// along.
#[test]
fn a_refused_stream_message_is_held_until_taken_and_the_rest_follow_in_order() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Mutex;

    // Closed: the burst's messages (MESSAGE) are refused; the others pass.
    let gate = Arc::new(AtomicBool::new(false));
    let offered: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = channel();
    let transport = Transport::start(
        TransportConfig::new(
            vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())],
            Arc::new(frame),
        ),
        Arc::new({
            let (gate, offered) = (gate.clone(), offered.clone());
            move |m: Inbound| {
                if m.data.starts_with(b"MESSAGE") {
                    offered.lock().unwrap().push(first_line(&m.data));
                    if !gate.load(SeqCst) {
                        return Err(m);
                    }
                }
                let _ = tx.send(m);
                Ok(())
            }
        }),
        Arc::new(|_| {}),
    )
    .unwrap();
    let tcp = transport.local_addr(Proto::Tcp, false).unwrap();
    let udp = transport.local_addr(Proto::Udp, false).unwrap();

    // 200 small requests in one write.
    let mut burst = tcp_client(tcp);
    let all: Vec<u8> = (0..200)
        .flat_map(|i| message(&format!("MESSAGE sip:{i}@example.test SIP/2.0"), "hi"))
        .collect();
    burst.write_all(&all).unwrap();
    // The first is offered again and again (the transport came back to it by itself)...
    assert!(wait_until(|| offered.lock().unwrap().len() >= 3));

    // ... while another connection and UDP are served.
    let mut other = tcp_client(tcp);
    other
        .write_all(&message("OPTIONS sip:other@example.test SIP/2.0", ""))
        .unwrap();
    let got = rx
        .recv_timeout(WAIT)
        .expect("the other connection is served");
    assert_eq!(
        first_line(&got.data),
        "OPTIONS sip:other@example.test SIP/2.0"
    );
    let client = UdpSocket::bind(v4()).unwrap();
    client.send_to(b"datagram", udp).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).expect("UDP is served").data,
        b"datagram"
    );

    // Nothing after the held message was offered: framing stopped at it.
    {
        let offered = offered.lock().unwrap();
        assert!(
            offered
                .iter()
                .all(|l| l == "MESSAGE sip:0@example.test SIP/2.0"),
            "{offered:?}"
        );
    }
    assert_eq!(transport.stats().messages_held, 1);

    gate.store(true, SeqCst);
    for i in 0..200 {
        let got = rx.recv_timeout(WAIT).expect("every message arrives");
        assert_eq!(
            first_line(&got.data),
            format!("MESSAGE sip:{i}@example.test SIP/2.0"),
            "message {i} out of order"
        );
        assert_eq!(frame(&got.data).unwrap(), Some(got.data.len()));
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "a message arrived twice"
    );
    assert_eq!(
        transport.stats().messages_held,
        1,
        "held once, however often offered"
    );

    // The connection is read again: a later request on it arrives.
    burst
        .write_all(&message("MESSAGE sip:later@example.test SIP/2.0", ""))
        .unwrap();
    let got = rx.recv_timeout(WAIT).expect("reading resumed");
    assert_eq!(
        first_line(&got.data),
        "MESSAGE sip:later@example.test SIP/2.0"
    );
}

/// A handler that refuses every stream message at its first offer: each is held in turn,
/// and all still arrive once and in order (holding and resuming a connection repeatedly),
/// over TCP and over a WebSocket, whose one read may decode several messages at once (those
/// after a refused one wait behind it). A refused datagram is dropped.
#[test]
fn every_message_refused_once_still_arrives_once_in_order() {
    use std::sync::Mutex;

    let seen: Arc<Mutex<std::collections::HashSet<Vec<u8>>>> = Arc::default();
    let (tx, rx) = channel();
    let transport = Transport::start(
        TransportConfig::new(
            vec![
                ListenAddr::udp(v4()),
                ListenAddr::tcp(v4()),
                ListenAddr::ws(v4()),
            ],
            Arc::new(frame),
        ),
        Arc::new({
            let seen = seen.clone();
            move |m: Inbound| {
                if seen.lock().unwrap().insert(m.data.clone()) {
                    return Err(m);
                }
                let _ = tx.send(m);
                Ok(())
            }
        }),
        Arc::new(|_| {}),
    )
    .unwrap();

    let udp = transport.local_addr(Proto::Udp, false).unwrap();
    let client = UdpSocket::bind(v4()).unwrap();
    client.send_to(b"refused", udp).unwrap();
    assert!(wait_until(|| seen
        .lock()
        .unwrap()
        .contains(&b"refused"[..])));
    client.send_to(b"refused", udp).unwrap(); // its retransmission
    assert_eq!(rx.recv_timeout(WAIT).unwrap().data, b"refused");

    let mut stream = tcp_client(transport.local_addr(Proto::Tcp, false).unwrap());
    let all: Vec<u8> = (0..200)
        .flat_map(|i| message(&format!("MESSAGE sip:{i}@example.test SIP/2.0"), "hi"))
        .collect();
    stream.write_all(&all).unwrap();
    for i in 0..200 {
        let got = rx.recv_timeout(WAIT).expect("every TCP message arrives");
        assert_eq!(
            first_line(&got.data),
            format!("MESSAGE sip:{i}@example.test SIP/2.0")
        );
    }
    assert_eq!(transport.stats().messages_held, 200);

    let ws = transport.local_addr(Proto::Ws, false).unwrap();
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{ws}/")).unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut socket, _) = tungstenite::client::client(request, tcp_client(ws)).expect("WS opens");
    for i in 0..100 {
        let text = message(&format!("MESSAGE sip:ws{i}@example.test SIP/2.0"), "hi");
        socket
            .write(tungstenite::Message::binary(text))
            .expect("queued");
    }
    socket.flush().expect("sent in one go");
    for i in 0..100 {
        let got = rx
            .recv_timeout(WAIT)
            .expect("every WebSocket message arrives");
        assert_eq!(got.proto, Proto::Ws);
        assert_eq!(
            first_line(&got.data),
            format!("MESSAGE sip:ws{i}@example.test SIP/2.0")
        );
    }
    assert_eq!(transport.stats().messages_held, 300);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}
