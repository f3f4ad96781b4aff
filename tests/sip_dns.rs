//! Routing by DNS (RFC 3263) against a real DNS server: dnsmasq on a loopback port serving
//! NAPTR, SRV and A records, and the SIP server (engine + SipServer, domain a.test) relaying
//! a user's MESSAGE to far.test through `*=dns` or a route naming a host. Next hops are
//! sockets of the test. Checks the lowest-priority SRV target first, fail-over on a timeout
//! and on 503 (with Retry-After honoured), the transport a NAPTR record chooses, the cache
//! by TTL on a manual clock, a name without records, and the resolver's ordered targets
//! against sofia-sip's `sip-dig`, an independent RFC 3263 implementation, for a few names.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use impp::engine::{AuthAction, Clock, Engine, EngineConfig, ManualClock, SystemClock};
use impp::sip::agent::Account;
use impp::sip::dns::{Destination, Resolution, Resolver, ResolverConfig};
use impp::sip::route::{Route, RouteTable, RouteTarget};
use impp::sip::transport::ListenAddr;
use impp::sip::{SipServer, SipServerConfig};
use impp::store::MemoryStore;

mod common;
use common::clock::{advance, timer_e_steps};
use common::dnsmasq::{self, Dnsmasq};
use common::imppd::Imppd;

/// dnsmasq, or `None` (skipped outside CI) when it is not installed.
fn dns(records: &[String], ttl: u32) -> Option<Dnsmasq> {
    let binary = dnsmasq::present(dnsmasq::installed())?;
    Some(Dnsmasq::start(binary, records, ttl))
}

/// The SIP server for a.test, without authentication (a.test's users are relayed), with
/// `routes`, asking `dns` for names.
struct Server {
    engine: Arc<Engine>,
    server: SipServer,
}

impl Server {
    fn start(clock: Arc<dyn Clock>, dns: SocketAddr, routes: &[&str]) -> Server {
        Server::start_with(clock, dns, routes, |_| {})
    }

    fn start_with(
        clock: Arc<dyn Clock>,
        dns: SocketAddr,
        routes: &[&str],
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Server {
        let engine = Arc::new(
            Engine::new(EngineConfig {
                domains: vec!["a.test".into()],
                default_policy: AuthAction::Allow,
                workers: 1,
                store: Arc::new(MemoryStore::new()),
                clock,
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(local)]);
        config.authenticate = false;
        config.routes = RouteTable::new(routes.iter().map(|r| Route::parse(r).unwrap()).collect());
        config.dns.server = Some(dns);
        config.dns.timeout = Duration::from_millis(500);
        tweak(&mut config);
        let server = SipServer::start(engine.clone(), config).unwrap();
        Server { engine, server }
    }

    fn udp(&self) -> SocketAddr {
        self.server.local_addrs()[0].addr
    }
}

/// alice's UDP socket (alice@a.test unless said otherwise).
struct Alice {
    socket: UdpSocket,
    server: SocketAddr,
    domain: &'static str,
    n: u32,
}

impl Alice {
    fn new(server: SocketAddr) -> Alice {
        Alice::of(server, "a.test")
    }

    fn of(server: SocketAddr, domain: &'static str) -> Alice {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Alice {
            socket,
            server,
            domain,
            n: 0,
        }
    }

    /// Sends a MESSAGE to `to`; its Call-ID.
    fn send(&mut self, to: &str) -> String {
        self.n += 1;
        let call_id = format!("dns-{}-{}@{}", self.n, std::process::id(), self.domain);
        let me = self.socket.local_addr().unwrap();
        let body = "hello";
        let m = format!(
            "MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKdns{}x{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{}>;tag=a{}\r\nTo: <{to}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.n,
            std::process::id(),
            self.domain,
            self.n,
            body.len()
        );
        self.socket.send_to(m.as_bytes(), self.server).unwrap();
        call_id
    }

    /// The final status answering `call_id`.
    fn final_status(&self, call_id: &str) -> u16 {
        let mut buf = [0u8; 65536];
        loop {
            let n = self.socket.recv(&mut buf).expect("an answer to alice");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if !text.contains(call_id) {
                continue;
            }
            let status: u16 = text[8..11].parse().unwrap();
            if status >= 200 {
                return status;
            }
        }
    }
}

/// A next hop over UDP: takes requests and answers them.
struct Hop {
    socket: UdpSocket,
}

impl Hop {
    fn new() -> Hop {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Hop { socket }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// The next request (not a retransmission of `skip`) with `call_id`, and who sent it;
    /// `None` when none comes within `wait`.
    fn request(&self, call_id: &str, wait: Duration) -> Option<(String, SocketAddr)> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 65536];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.contains(call_id) {
                return Some((text, from));
            }
        }
    }

    /// Answers `request` with `status` (and `extra` header lines).
    fn answer(&self, request: &str, from: SocketAddr, status: u16, extra: &str) {
        self.socket
            .send_to(response(request, status, extra).as_bytes(), from)
            .unwrap();
    }
}

/// A response to `request`: its Via, From, To, Call-ID and CSeq.
fn response(request: &str, status: u16, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status} Whatever\r\n");
    for line in request.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        } else if name == "to" {
            out.push_str(line);
            out.push_str(";tag=hop\r\n");
        }
    }
    out.push_str(extra);
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// far.test: NAPTR to UDP SRV records, priority 10 at `first`, 20 at `second`.
fn two_targets(first: u16, second: u16) -> Vec<String> {
    vec![
        "--naptr-record=far.test,10,10,S,SIP+D2U,,_sip._udp.far.test".into(),
        format!("--srv-host=_sip._udp.far.test,one.far.test,{first},10,10"),
        format!("--srv-host=_sip._udp.far.test,two.far.test,{second},20,10"),
        "--host-record=one.far.test,127.0.0.1".into(),
        "--host-record=two.far.test,127.0.0.1".into(),
    ]
}

#[test]
fn the_lowest_priority_target_first_then_the_next_on_503_with_retry_after() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&two_targets(one.port(), two.port()), 300) else {
        return;
    };
    let s = Server::start(Arc::new(SystemClock::new()), dns.addr, &["*=dns"]);
    let mut alice = Alice::new(s.udp());

    let call = alice.send("sip:bob@far.test");
    let (request, from) = one
        .request(&call, Duration::from_secs(5))
        .expect("at priority 10");
    assert!(
        request.starts_with("MESSAGE sip:bob@far.test SIP/2.0"),
        "{request}"
    );
    one.answer(&request, from, 503, "Retry-After: 120\r\n");
    let (request, from) = two
        .request(&call, Duration::from_secs(5))
        .expect("fail-over");
    two.answer(&request, from, 200, "");
    assert_eq!(alice.final_status(&call), 200);

    // The first target asked not to be tried for 120 s: the next MESSAGE skips it.
    let call = alice.send("sip:bob@far.test");
    let (request, from) = two
        .request(&call, Duration::from_secs(5))
        .expect("straight to two");
    two.answer(&request, from, 200, "");
    assert_eq!(alice.final_status(&call), 200);
    assert!(one.request(&call, Duration::from_millis(300)).is_none());

    // Both answer 503: the last one's answer reaches alice.
    let s2 = Server::start(
        Arc::new(SystemClock::new()),
        dns.addr,
        &["far.test=far.test"],
    );
    let mut alice = Alice::new(s2.udp());
    let call = alice.send("sip:bob@far.test");
    let (request, from) = one
        .request(&call, Duration::from_secs(5))
        .expect("a name route");
    one.answer(&request, from, 503, "");
    let (request, from) = two.request(&call, Duration::from_secs(5)).unwrap();
    two.answer(&request, from, 503, "");
    assert_eq!(alice.final_status(&call), 503);
    assert!(
        s.server.dns_stats().cache_hits >= 1,
        "{:?}",
        s.server.dns_stats()
    );
}

#[test]
fn a_target_that_never_answers_is_left_at_timer_f() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&two_targets(one.port(), two.port()), 3600) else {
        return;
    };
    let clock = ManualClock::new();
    let s = Server::start(clock.clone(), dns.addr, &["*=dns"]);
    let mut alice = Alice::new(s.udp());
    let call = alice.send("sip:bob@far.test");
    one.request(&call, Duration::from_secs(5))
        .expect("at priority 10");
    assert!(two.request(&call, Duration::from_millis(200)).is_none());
    // one stays silent: its retransmissions, then timer F, then two.
    for step in timer_e_steps(&impp::sip::transaction::Timers::default()) {
        advance(&clock, step, &[&s.engine], &[&s.server]);
    }
    let (request, from) = two
        .request(&call, Duration::from_secs(5))
        .expect("fail-over on timeout");
    two.answer(&request, from, 200, "");
    assert_eq!(alice.final_status(&call), 200);
}

#[test]
fn naptr_chooses_the_transport() {
    let udp = Hop::new();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let records = vec![
        // TCP first by order; the UDP record (a later order) is not considered.
        "--naptr-record=far.test,10,10,S,SIP+D2T,,_sip._tcp.far.test".to_string(),
        "--naptr-record=far.test,20,10,S,SIP+D2U,,_sip._udp.far.test".into(),
        format!("--srv-host=_sip._tcp.far.test,one.far.test,{tcp_port},10,10"),
        format!(
            "--srv-host=_sip._udp.far.test,one.far.test,{},10,10",
            udp.port()
        ),
        "--host-record=one.far.test,127.0.0.1".into(),
    ];
    let Some(dns) = dns(&records, 300) else {
        return;
    };
    let s = Server::start(Arc::new(SystemClock::new()), dns.addr, &["*=dns"]);
    let mut alice = Alice::new(s.udp());
    let call = alice.send("sip:bob@far.test");
    let (mut stream, _) = tcp.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("hello") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the request");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("Via: SIP/2.0/TCP"), "{got}");
    assert!(got.contains(&call));
    stream
        .write_all(response(&got, 200, "").as_bytes())
        .unwrap();
    assert_eq!(alice.final_status(&call), 200);
    assert!(udp.request(&call, Duration::from_millis(200)).is_none());
}

#[test]
fn answers_are_cached_for_their_ttl_and_missing_names_refused() {
    let (one, two) = (Hop::new(), Hop::new());
    let only = |port: u16| {
        vec![
            format!("--srv-host=_sip._udp.far.test,one.far.test,{port},10,10"),
            "--host-record=one.far.test,127.0.0.1".to_string(),
        ]
    };
    let Some(mut dns) = dns(&only(one.port()), 60) else {
        return;
    };
    let clock = ManualClock::new();
    // dnsmasq sends no SOA with its empty answers (far.test's NAPTR, one.far.test's AAAA):
    // without one they would be kept for the default 30 s, shorter than the records' 60.
    let s = Server::start_with(clock.clone(), dns.addr, &["*=dns"], |c| {
        c.dns.negative_ttl = 120
    });
    let mut alice = Alice::new(s.udp());
    let deliver = |alice: &mut Alice, hop: &Hop| {
        let call = alice.send("sip:bob@far.test");
        let (request, from) = hop
            .request(&call, Duration::from_secs(5))
            .expect("delivered");
        hop.answer(&request, from, 200, "");
        assert_eq!(alice.final_status(&call), 200);
    };
    deliver(&mut alice, &one);
    // The zone changes; the answer is kept for its 60 s.
    dns.restart(&only(two.port()), 60);
    advance(&clock, Duration::from_secs(59), &[&s.engine], &[&s.server]);
    deliver(&mut alice, &one);
    advance(&clock, Duration::from_secs(2), &[&s.engine], &[&s.server]);
    // Expired: handed out once more (RFC 8767) while it is refreshed, then the new record.
    deliver(&mut alice, &one);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.server.dns_stats().resolutions < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            s.server.dns_stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    deliver(&mut alice, &two);
    assert_eq!(
        s.server.dns_stats().resolutions,
        2,
        "{:?}",
        s.server.dns_stats()
    );
    assert_eq!(
        s.server.dns_stats().stale_hits,
        1,
        "{:?}",
        s.server.dns_stats()
    );

    // No records at all: 404, said once and then from the cache.
    let call = alice.send("sip:bob@nowhere.test");
    assert_eq!(alice.final_status(&call), 404);
    let call = alice.send("sip:bob@nowhere.test");
    assert_eq!(alice.final_status(&call), 404);
    assert_eq!(
        s.server.dns_stats().resolutions,
        3,
        "{:?}",
        s.server.dns_stats()
    );
}

#[test]
fn imppd_routes_by_dns_from_its_flags() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&two_targets(one.port(), two.port()), 300) else {
        return;
    };
    let server = dns.addr.to_string();
    let mut imppd = Imppd::start(
        &[],
        &["--open", "--route", "*=dns", "--dns-server", &server],
    );
    let log = imppd.log();
    assert!(
        log.contains("routes *=dns") && log.contains(&format!("DNS {server}")),
        "{log}"
    );
    let mut alice = Alice::of(imppd.addr(), "example.test");
    let call = alice.send("sip:bob@far.test");
    let (request, from) = one
        .request(&call, Duration::from_secs(5))
        .expect("at priority 10");
    one.answer(&request, from, 503, "");
    let (request, from) = two
        .request(&call, Duration::from_secs(5))
        .expect("fail-over");
    two.answer(&request, from, 200, "");
    assert_eq!(alice.final_status(&call), 200);
    imppd.stop();

    // A bad server address is refused before anything starts.
    let out = Command::new(common::imppd::IMPPD)
        .args([
            "--domain",
            "example.test",
            "--db",
            "none",
            "--dns-server",
            "localhost",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dns-server"));
}

/// The zone the comparison with sip-dig runs over: distinct priorities (sofia orders equal
/// ones by weight at random too), weights that are not zero (sip-dig prints one priority
/// level only when every weight is zero).
fn zone() -> Vec<String> {
    [
        "--naptr-record=far.test,10,10,S,SIP+D2T,,_sip._tcp.far.test",
        "--naptr-record=far.test,20,10,S,SIP+D2U,,_sip._udp.far.test",
        "--srv-host=_sip._tcp.far.test,b.far.test,5071,20,10",
        "--srv-host=_sip._tcp.far.test,a.far.test,5070,10,10",
        "--srv-host=_sip._udp.far.test,a.far.test,5072,10,10",
        "--host-record=a.far.test,127.0.0.1",
        "--host-record=b.far.test,127.0.0.2",
        "--srv-host=_sip._udp.srv.test,c.srv.test,5080,10,10",
        "--srv-host=_sip._tcp.srv.test,c.srv.test,5081,10,10",
        "--srv-host=_sips._tcp.srv.test,c.srv.test,5082,10,10",
        "--host-record=c.srv.test,127.0.0.3",
        "--host-record=plain.test,127.0.0.4",
        "--naptr-record=tls.test,10,10,S,SIPS+D2T,,_sips._tcp.tls.test",
        "--naptr-record=tls.test,10,20,S,SIP+D2U,,_sip._udp.tls.test",
        "--srv-host=_sips._tcp.tls.test,a.far.test,5091,10,10",
        "--srv-host=_sip._udp.tls.test,b.far.test,5092,10,10",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Our targets for `uri`, as sip-dig prints them: `tcp 5070 127.0.0.1`.
fn ours(resolver: &Resolver, uri: &str) -> Vec<String> {
    let dest = Destination::from_uri(&uri.parse().unwrap());
    let (tx, rx) = crossbeam_channel::bounded(1);
    let hops = match resolver.resolve(
        &dest,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    ) {
        Resolution::Ready(r) => r,
        Resolution::Pending => rx.recv_timeout(Duration::from_secs(10)).unwrap(),
    };
    hops.map(|hops| {
        hops.iter()
            .map(|h| format!("{} {} {}", h.proto.param(), h.addr.port(), h.addr.ip()))
            .collect()
    })
    .unwrap_or_default()
}

/// sip-dig's targets for `uri` (UDP, TCP and TLS: the transports we speak), in its order.
fn theirs(sip_dig: &std::path::Path, conf: &std::path::Path, uri: &str) -> Vec<String> {
    let out = Command::new(sip_dig)
        .env("SRESOLV_CONF", conf)
        .args(["--udp", "--tcp", "--tls", uri])
        .output()
        .expect("run sip-dig");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "\t1 0.500 tcp 5070 127.0.0.1": preference, weight, then what we compare.
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.len() == 5).then(|| words[2..].join(" "))
        })
        .collect()
}

#[test]
fn targets_agree_with_sofia_sip_dig() {
    let Some(sip_dig) = dnsmasq::present(dnsmasq::find("sip-dig").ok_or_else(|| {
        "sip-dig is not installed: apt-get install sofia-sip-bin (.ci/run does)".into()
    })) else {
        return;
    };
    let Some(dns) = dns(&zone(), 300) else {
        return;
    };
    let resolver = Resolver::start(
        ResolverConfig {
            server: Some(dns.addr),
            ..ResolverConfig::default()
        },
        Arc::new(SystemClock::new()),
        Arc::new(|| 7),
    )
    .unwrap();
    let conf = dns.sres_conf();
    for (uri, expected) in [
        (
            "sip:far.test",
            &["tcp 5070 127.0.0.1", "tcp 5071 127.0.0.2"][..],
        ),
        (
            "sip:srv.test",
            &[
                "udp 5080 127.0.0.3",
                "tcp 5081 127.0.0.3",
                "tls 5082 127.0.0.3",
            ],
        ),
        ("sips:srv.test", &["tls 5082 127.0.0.3"]),
        (
            "sip:plain.test",
            &["udp 5060 127.0.0.4", "tcp 5060 127.0.0.4"],
        ),
        ("sip:far.test;transport=udp", &["udp 5072 127.0.0.1"]),
        ("sips:tls.test", &["tls 5091 127.0.0.1"]),
        (
            "sip:tls.test",
            &["tls 5091 127.0.0.1", "udp 5092 127.0.0.2"],
        ),
        ("sip:missing.test", &[]),
    ] {
        let (ours, theirs) = (ours(&resolver, uri), theirs(&sip_dig, &conf, uri));
        println!("{uri}: ours {ours:?}, sip-dig {theirs:?}");
        assert_eq!(ours, expected, "ours for {uri}");
        assert_eq!(theirs, expected, "sip-dig for {uri}");
    }
}

/// b.test's registrar, known only by DNS: SRV records of `_sip._udp.b.test` at `first`
/// (priority 10) and `second` (20).
fn registrar_targets(first: u16, second: u16) -> Vec<String> {
    vec![
        format!("--srv-host=_sip._udp.b.test,one.b.test,{first},10,10"),
        format!("--srv-host=_sip._udp.b.test,two.b.test,{second},20,10"),
        "--host-record=one.b.test,127.0.0.1".into(),
        "--host-record=two.b.test,127.0.0.1".into(),
    ]
}

#[test]
fn an_account_registers_at_its_registrars_srv_targets_and_fails_over_on_503() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&registrar_targets(one.port(), two.port()), 3600) else {
        return;
    };
    let clock = ManualClock::new();
    let registrar = RouteTarget::parse_server("b.test").unwrap();
    assert!(matches!(registrar, RouteTarget::Name(_)), "{registrar:?}");
    let account = Account::new(
        impp::uri::Uri::parse("sip:alice@b.test").unwrap(),
        "alice",
        "alice-pw",
        registrar,
    );
    let s = Server::start_with(clock.clone(), dns.addr, &[], |c| {
        c.accounts = vec![account];
    });
    // Resolved as the server started: the first REGISTER goes to priority 10.
    let (request, from) = one
        .request("REGISTER ", Duration::from_secs(5))
        .expect("the REGISTER at priority 10");
    assert!(
        request.starts_with("REGISTER sip:b.test SIP/2.0"),
        "{request}"
    );
    one.answer(&request, from, 503, "Retry-After: 300\r\n");
    // The retry, after its back-off, goes to the next target (one is left out for 300 s).
    let mut registered = None;
    for _ in 0..10 {
        advance(&clock, Duration::from_secs(2), &[&s.engine], &[&s.server]);
        if let Some(found) = two.request("REGISTER ", Duration::from_millis(300)) {
            registered = Some(found);
            break;
        }
    }
    let (request, from) = registered.expect("the REGISTER failed over to priority 20");
    assert!(
        request.starts_with("REGISTER sip:b.test SIP/2.0"),
        "{request}"
    );
    two.answer(&request, from, 200, "");
    assert!(
        one.request("REGISTER ", Duration::from_millis(300))
            .is_none(),
        "nothing more for the target that answered 503"
    );
}

#[test]
fn an_accounts_publish_fails_over_to_the_next_srv_target_as_its_register_does() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&registrar_targets(one.port(), two.port()), 3600) else {
        return;
    };
    let clock = ManualClock::new();
    let alice = impp::uri::Uri::parse("sip:alice@b.test").unwrap();
    let account = Account::new(
        alice.clone(),
        "alice",
        "alice-pw",
        RouteTarget::parse_server("b.test").unwrap(),
    );
    let s = Server::start_with(clock.clone(), dns.addr, &[], |c| {
        c.accounts = vec![account];
    });
    let (request, from) = one
        .request("REGISTER ", Duration::from_secs(5))
        .expect("the REGISTER at priority 10");
    one.answer(&request, from, 200, "Expires: 3600\r\n");
    // alice's presence, set here, goes up to b.test: to the same target first.
    let body = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                entity=\"sip:alice@b.test\"><tuple id=\"t\"><status><basic>open</basic>\
                </status></tuple></presence>";
    s.engine
        .publish_body(&alice, impp::engine::Package::Presence, body, None)
        .unwrap();
    let (first, from) = one
        .request("PUBLISH ", Duration::from_secs(5))
        .expect("the PUBLISH at priority 10");
    one.answer(&first, from, 503, "Retry-After: 300\r\n");
    // The retry, after its back-off, goes to the next target (one is left out for 300 s).
    let mut published = None;
    for _ in 0..10 {
        advance(&clock, Duration::from_secs(2), &[&s.engine], &[&s.server]);
        if let Some(found) = two.request("PUBLISH ", Duration::from_millis(300)) {
            published = Some(found);
            break;
        }
    }
    let (request, from) = published.expect("the PUBLISH failed over to priority 20");
    assert!(request.contains("basic>open"), "{request}");
    two.answer(&request, from, 200, "SIP-ETag: e1\r\nExpires: 3600\r\n");
    // (A retransmission of the first may still come: the clock may move before the 503
    // reaches the client.)
    while let Some((request, _)) = one.request("PUBLISH ", Duration::from_millis(300)) {
        assert_eq!(
            request, first,
            "nothing more for the target that answered 503"
        );
    }
}

#[test]
fn a_registrar_whose_name_does_not_resolve_stops_the_start() {
    let Some(dns) = dns(&[], 3600) else {
        return;
    };
    let account = Account::new(
        impp::uri::Uri::parse("sip:alice@b.test").unwrap(),
        "alice",
        "alice-pw",
        RouteTarget::parse_server("nowhere.b.test").unwrap(),
    );
    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec!["a.test".into()],
            store: Arc::new(MemoryStore::new()),
            ..EngineConfig::default()
        })
        .unwrap(),
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.dns.server = Some(dns.addr);
    config.dns.timeout = Duration::from_millis(500);
    config.accounts = vec![account];
    let e = SipServer::start(engine, config).err().expect("refused");
    let text = e.to_string();
    assert!(
        text.contains("registrar") && text.contains("nowhere.b.test"),
        "{text}"
    );
    assert!(RouteTarget::parse_server("dns").is_err());
}

#[test]
fn a_message_the_engine_sends_to_another_domain_goes_by_dns_and_fails_over_on_503() {
    let (one, two) = (Hop::new(), Hop::new());
    let Some(dns) = dns(&two_targets(one.port(), two.port()), 300) else {
        return;
    };
    let s = Server::start(Arc::new(SystemClock::new()), dns.addr, &["*=dns"]);
    // Not relayed for a SIP client: the engine's own message (an application's, say).
    s.engine
        .send_message(impp::engine::OutgoingMessage::new(
            impp::uri::Uri::parse("sip:alice@a.test").unwrap(),
            impp::uri::Uri::parse("sip:bob@far.test").unwrap(),
            "text/plain",
            "by name",
        ))
        .unwrap();
    let (request, from) = one
        .request("MESSAGE ", Duration::from_secs(5))
        .expect("at priority 10");
    assert!(
        request.starts_with("MESSAGE sip:bob@far.test SIP/2.0"),
        "{request}"
    );
    one.answer(&request, from, 503, "");
    let (request, from) = two
        .request("MESSAGE ", Duration::from_secs(5))
        .expect("fail-over to priority 20");
    assert!(request.contains("by name"), "{request}");
    two.answer(&request, from, 200, "");
}

#[test]
fn an_account_stays_with_one_of_equal_registrars_across_refreshes() {
    // Two targets of equal priority and weight: each lookup orders them at random, but the
    // account keeps the one it registered at (six REGISTERs all at one server by chance:
    // 1 in 32).
    let (one, two) = (Hop::new(), Hop::new());
    let records = vec![
        format!(
            "--srv-host=_sip._udp.b.test,one.b.test,{},10,10",
            one.port()
        ),
        format!(
            "--srv-host=_sip._udp.b.test,two.b.test,{},10,10",
            two.port()
        ),
        "--host-record=one.b.test,127.0.0.1".into(),
        "--host-record=two.b.test,127.0.0.1".into(),
    ];
    let Some(dns) = dns(&records, 86_400) else {
        return;
    };
    let clock = ManualClock::new();
    let mut account = Account::new(
        impp::uri::Uri::parse("sip:alice@b.test").unwrap(),
        "alice",
        "alice-pw",
        RouteTarget::parse_server("b.test").unwrap(),
    );
    account.expires = 60;
    let s = Server::start_with(clock.clone(), dns.addr, &[], |c| {
        c.accounts = vec![account];
    });
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut got = None;
        for _ in 0..40 {
            for hop in [&one, &two] {
                // Every request is answered: one left unanswered would leave its server out
                // (as a REGISTER's would) and move the account.
                while let Some((request, from)) =
                    hop.request(" SIP/2.0\r\n", Duration::from_millis(50))
                {
                    if request.starts_with("REGISTER ") {
                        hop.answer(&request, from, 200, "Expires: 60\r\n");
                        got = Some(hop.port());
                    } else {
                        hop.answer(&request, from, 200, "SIP-ETag: e1\r\nExpires: 60\r\n");
                    }
                }
            }
            if got.is_some() {
                break;
            }
            advance(&clock, Duration::from_secs(5), &[&s.engine], &[&s.server]);
        }
        seen.push(got.expect("a REGISTER or its refresh"));
        advance(&clock, Duration::from_secs(5), &[&s.engine], &[&s.server]);
    }
    assert!(seen.iter().all(|&p| p == seen[0]), "{seen:?}");
}
