//! Routing by DNS (RFC 3263, `impp::sip::dns`): what a cached name costs, and whether slow
//! DNS slows the SIP server. Run with `cargo bench --bench dns`; prints its figures.
//!
//! A small DNS server of the bench's own (hickory-proto messages over a loopback UDP
//! socket) answers every `NAME.test`: no NAPTR, one SRV record `_sip._udp.NAME.test` to
//! `sink.test` on the sink's port, `sink.test` at 127.0.0.1, TTL one hour. Names containing
//! `slow` are answered only after a delay.
//!
//! 1. Cached resolution: after one lookup of `fast.test`, `Resolver::cached` is timed in
//!    batches of 1,000 calls; the median batch over 2,000 batches, per call.
//! 2. NOTIFY rate: a SipServer (a.test, `*=dns`, 2 workers) relays NOTIFYs from alice to
//!    `sip:bob@fast.test` (cached) with up to 200 in flight, answered 200 by a UDP sink;
//!    one NOTIFY in ten goes to a fresh name `slowN.test` that the DNS server answers after
//!    200 ms (or at once, in the rounds with normal DNS). The figure is the rate of the
//!    fast NOTIFYs' 200s over 2 s, five rounds each way, alternating; medians quoted.
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use impp::engine::{AuthAction, Engine, EngineConfig, SystemClock};
use impp::sip::dns::{Destination, Resolution, Resolver, ResolverConfig};
use impp::sip::route::{Route, RouteTable};
use impp::sip::transport::ListenAddr;
use impp::sip::{SipServer, SipServerConfig};
use impp::store::MemoryStore;

/// The bench's DNS server: see the module documentation. `delay_ms` applies to `slow`
/// names and may be changed while it runs.
fn dns_server(sink_port: u16, delay_ms: Arc<AtomicU64>) -> SocketAddr {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries().first().cloned() else {
                continue;
            };
            let name = q.name().to_ascii().to_ascii_lowercase();
            let mut answer = Message::new();
            answer
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(true)
                .set_recursion_available(true)
                .set_response_code(ResponseCode::NoError)
                .add_query(q.clone());
            match q.query_type() {
                RecordType::SRV if name.starts_with("_sip._udp.") => {
                    answer.add_answer(Record::from_rdata(
                        q.name().clone(),
                        3600,
                        RData::SRV(SRV::new(
                            10,
                            10,
                            sink_port,
                            Name::from_str("sink.test.").unwrap(),
                        )),
                    ));
                }
                RecordType::A if name == "sink.test." => {
                    answer.add_answer(Record::from_rdata(
                        q.name().clone(),
                        3600,
                        RData::A(A::new(127, 0, 0, 1)),
                    ));
                }
                _ => {}
            }
            let bytes = answer.to_vec().unwrap();
            let delay = if name.contains("slow") {
                delay_ms.load(Ordering::Relaxed)
            } else {
                0
            };
            if delay == 0 {
                let _ = socket.send_to(&bytes, from);
            } else {
                let socket = socket.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(delay));
                    let _ = socket.send_to(&bytes, from);
                });
            }
        }
    });
    addr
}

/// A UDP sink answering every request 200.
fn sink() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let _ = socket.send_to(ok(&text).as_bytes(), from);
        }
    });
    port
}

/// `200 OK` to `request`.
fn ok(request: &str) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in request.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(line);
                out.push_str(";tag=sink\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn cached_resolution(dns: SocketAddr) {
    let resolver = Resolver::start(
        ResolverConfig {
            server: Some(dns),
            ..ResolverConfig::default()
        },
        Arc::new(SystemClock::new()),
        Arc::new({
            let n = AtomicU64::new(1);
            move || n.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        }),
    )
    .unwrap();
    let dest = Destination::parse("fast.test").unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Resolution::Pending = resolver.resolve(
        &dest,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    ) {
        rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    }
    per_call(
        "cached resolution (Resolver::cached, fast.test -> 1 SRV target)",
        || {
            std::hint::black_box(
                resolver
                    .cached(std::hint::black_box(&dest))
                    .unwrap()
                    .unwrap(),
            );
        },
    );
    // What a request from a peer trusted by name costs its trust check (the addresses of
    // the same cached name).
    per_call(
        "cached addresses (Resolver::cached_addresses, a peer by name)",
        || {
            std::hint::black_box(
                resolver
                    .cached_addresses(std::hint::black_box(&dest))
                    .unwrap()
                    .unwrap(),
            );
        },
    );
}

/// Times `call` in 2,000 batches of 1,000 and prints the median, p10 and p90 per call.
fn per_call(what: &str, mut call: impl FnMut()) {
    let mut per_call = Vec::new();
    for _ in 0..2000 {
        let start = Instant::now();
        for _ in 0..1000 {
            call();
        }
        per_call.push(start.elapsed().as_nanos() as f64 / 1000.0);
    }
    let med = median(&mut per_call);
    println!(
        "{what}: median {med:.0} ns per call (batches of 1,000; p10 {:.0} ns, p90 {:.0} ns)",
        per_call[per_call.len() / 10],
        per_call[per_call.len() * 9 / 10]
    );
}

/// One round: fast NOTIFYs' 200s per second over `duration`.
fn notify_round(server: SocketAddr, round: usize, duration: Duration) -> f64 {
    const WINDOW: usize = 200;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let send = |n: u64, host: &str| {
        let m = format!(
            "NOTIFY sip:bob@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKb{round}x{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@a.test>;tag=b{round}\r\nTo: <sip:bob@{host}>\r\n\
             Call-ID: bench-{round}-{n}\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\n\
             Subscription-State: active;expires=3600\r\nContent-Length: 0\r\n\r\n"
        );
        socket.send_to(m.as_bytes(), server).unwrap();
    };
    let mut outstanding: HashSet<u64> = HashSet::new();
    let (mut n, mut done) = (0u64, 0u64);
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while start.elapsed() < duration {
        while outstanding.len() < WINDOW {
            n += 1;
            if n % 10 == 0 {
                // A fresh name each time: never cached, always waiting for the DNS.
                send(n, &format!("slow{round}x{n}.test"));
            } else {
                send(n, "fast.test");
                outstanding.insert(n);
            }
        }
        match socket.recv(&mut buf) {
            Ok(len) => {
                let text = String::from_utf8_lossy(&buf[..len]);
                if !text.starts_with("SIP/2.0 200") {
                    continue;
                }
                if let Some(id) = text
                    .split(&format!("bench-{round}-")[..])
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|d| d.parse::<u64>().ok())
                {
                    if outstanding.remove(&id) {
                        done += 1;
                    }
                }
            }
            // Lost ones (none expected on loopback) free their place after a while.
            Err(_) => outstanding.clear(),
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let delay = Arc::new(AtomicU64::new(0));
    let sink_port = sink();
    let dns = dns_server(sink_port, delay.clone());
    cached_resolution(dns);

    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec!["a.test".into()],
            default_policy: AuthAction::Allow,
            workers: 2,
            store: Arc::new(MemoryStore::new()),
            ..EngineConfig::default()
        })
        .unwrap(),
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.authenticate = false;
    config.rate_limit = impp::sip::rate::RateLimit {
        per_second: 0,
        burst: 0,
    };
    config.routes = RouteTable::new(vec![Route::parse("*=dns").unwrap()]);
    config.dns.server = Some(dns);
    let server = SipServer::start(engine, config).unwrap();
    let addr = server.local_addrs()[0].addr;
    // Warm up (and resolve fast.test once).
    notify_round(addr, 0, Duration::from_millis(500));
    let (mut normal, mut slow) = (Vec::new(), Vec::new());
    for round in 1..=10 {
        let slow_round = round % 2 == 0;
        delay.store(if slow_round { 200 } else { 0 }, Ordering::Relaxed);
        let rate = notify_round(addr, round, Duration::from_secs(2));
        if slow_round {
            slow.push(rate);
        } else {
            normal.push(rate);
        }
    }
    let stats = server.dns_stats();
    let (n, s) = (median(&mut normal), median(&mut slow));
    println!(
        "NOTIFY rate to a cached name, 1 in 10 NOTIFYs to a fresh name: median {n:.0}/s with \
         DNS answering at once, {s:.0}/s with DNS answering after 200 ms ({:+.1} %); rounds \
         normal {normal:.0?}, slow {slow:.0?}",
        (s - n) / n * 100.0
    );
    println!(
        "resolver: {} resolutions, {} cache hits, {} refused (queue full), {} failed",
        stats.resolutions, stats.cache_hits, stats.queue_full, stats.failures
    );
}
