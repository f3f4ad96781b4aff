//! A flood from one address (garbage and well-formed requests, over UDP and TCP) does not
//! stop another address's users from registering, subscribing, publishing, being notified
//! and messaging: the flooder's requests beyond its rate are answered `503` with
//! `Retry-After`, then dropped unread, and counted.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::sip::{header_map, token, Client, Server};
use impp::sip::rate::RateLimit;

fn pidf(entity: &str, basic: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple></presence>"
    )
}

#[test]
fn a_flood_from_one_address_leaves_the_others_served() {
    let s = Server::start_with(true, 65536, |c| {
        c.rate_limit = RateLimit {
            per_second: 100,
            burst: 200,
        };
    });
    let (udp, tcp) = (s.udp(), s.tcp());

    // The flooder, on another loopback address: UDP garbage and OPTIONS as fast as it can
    // send them, and OPTIONS over a TCP connection, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(10)))
                .unwrap();
            let local = socket.local_addr().unwrap();
            let mut stream = Some(connect_from("127.0.0.2:0", tcp));
            let mut sent = 0u64;
            let mut answers = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                for i in 0..50 {
                    let ping = format!(
                        "OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{i}x{sent}\r\nFrom: <sip:x@example.test>;tag=f\r\nTo: <sip:example.test>\r\nCall-ID: flood-{sent}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = socket.send_to(ping.as_bytes(), udp);
                    let _ = socket.send_to(b"\x00\x01garbage that is not SIP", udp);
                    if let Some(s) = stream.as_mut() {
                        if s.write_all(ping.as_bytes()).is_err() {
                            stream = None;
                        }
                    }
                    sent += 1;
                }
                // Paced at about 5,000 requests and 5,000 garbage datagrams a second, 50 times
                // the limit (the benchmark offers 100,000 a second to a release build; this
                // test runs in a debug build on a shared machine).
                while let Ok(n) = socket.recv(&mut buf) {
                    answers.push(String::from_utf8_lossy(&buf[..n]).to_string());
                }
            }
            (sent, answers)
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // Meanwhile, users on 127.0.0.1 do everything a presence user does.
    let mut alice = Client::new(udp, "alice");
    let mut bob = Client::new(udp, "bob");
    assert_eq!(alice.register(600).status(), Some(200));
    assert_eq!(bob.register(600).status(), Some(200));
    let aor = alice.aor();
    let call_id = token();
    let r = bob.transact_auth(|c, auth| {
        c.request(
            "SUBSCRIBE",
            &aor,
            &format!("<{aor}>"),
            &call_id,
            &format!("Event: presence\r\nExpires: 600\r\n{auth}"),
            None,
        )
    });
    assert_eq!(r.status(), Some(200));
    let _first = bob.next_request("NOTIFY");
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "open"))).status(),
        Some(200)
    );
    let n = bob.next_request("NOTIFY");
    assert!(String::from_utf8_lossy(n.body()).contains("open"));
    let bob_aor = bob.aor();
    // bob reads (and answers) on his own thread: alice's MESSAGE is answered when he does.
    let bob_reads = std::thread::spawn(move || bob.next_request("MESSAGE"));
    let message = alice.transact_auth(|c, auth| {
        c.request(
            "MESSAGE",
            &bob_aor,
            &format!("<{bob_aor}>"),
            &token(),
            auth,
            Some(("text/plain", b"through the flood")),
        )
    });
    assert_eq!(message.status(), Some(200));
    assert_eq!(bob_reads.join().unwrap().body(), b"through the flood");

    stop.store(true, Ordering::Relaxed);
    let (sent, answers) = flooder.join().unwrap();
    let stats = s.server.guard_stats();
    assert!(sent > 300, "the flooder sent {sent}");
    assert!(
        stats.rate_refused > 0 && stats.rate_dropped > 0,
        "{stats:?}"
    );
    let refused: Vec<&String> = answers
        .iter()
        .filter(|a| a.starts_with("SIP/2.0 503"))
        .collect();
    assert!(!refused.is_empty(), "the flooder was told to back off");
    let first = common::sip::parse(refused[0].as_bytes());
    assert!(header_map(&first).contains_key("retry-after"));
}

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&from.parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

fn options(via: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK{call_id}\r\nFrom: <sip:x@example.test>;tag=f\r\nTo: <sip:example.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads one message from a stream (head to the blank line, then `Content-Length` bytes),
/// keeping what follows it in `buf`.
fn read_stream_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body: usize = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + body {
                return Some(buf.drain(..end + 4 + body).collect());
            }
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A burst bigger than the workers' queue: over TCP nothing retransmits, so the connection
/// is read no further while the queue is full (its requests held, counted) and every
/// request is answered; over UDP the requests beyond the queue are still dropped and
/// counted (the client retransmits).
#[test]
fn a_tcp_burst_beyond_the_workers_queue_waits_and_is_answered_in_full() {
    let s = Server::start_with(false, 65536, |c| {
        c.inbound_queue = 4;
        c.workers = 1;
        c.rate_limit = RateLimit::OFF;
    });

    // UDP: a burst of 200 into a queue of 4: each request is answered or dropped and
    // counted, and some are dropped.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let (socket, stop, answered) =
            (socket.try_clone().unwrap(), stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for i in 0..200 {
        let request = options(&format!("UDP {local}"), &format!("udp-{i}"));
        socket.send_to(request.as_bytes(), s.udp()).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while answered.load(Ordering::Relaxed) + s.server.guard_stats().queue_dropped < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} answered, {:?}",
            answered.load(Ordering::Relaxed),
            s.server.guard_stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let dropped = s.server.guard_stats().queue_dropped;
    assert!(dropped > 0, "a UDP burst beyond the queue drops");
    assert_eq!(
        s.server.transport_stats().messages_held,
        0,
        "nothing held over UDP"
    );

    // TCP: 500 requests in one write.
    let mut stream = TcpStream::connect(s.tcp()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let local = stream.local_addr().unwrap();
    let burst: String = (0..500)
        .map(|i| options(&format!("TCP {local}"), &format!("tcp-{i}")))
        .collect();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(burst.as_bytes()).unwrap())
    };
    let mut buf = Vec::new();
    for i in 0..500 {
        let answer = read_stream_message(&mut stream, &mut buf)
            .unwrap_or_else(|| panic!("answer {i} of 500 arrives"));
        let answer = common::sip::parse(&answer);
        assert_eq!(answer.status(), Some(200), "{answer:?}");
        assert_eq!(
            header_map(&answer)["call-id"],
            format!("tcp-{i}"),
            "answers in order"
        );
    }
    writer.join().unwrap();
    assert_eq!(
        s.server.guard_stats().queue_dropped,
        dropped,
        "nothing dropped over TCP"
    );
    assert!(
        s.server.transport_stats().messages_held > 0,
        "the TCP burst was held back"
    );
}
