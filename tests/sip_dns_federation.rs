//! Federation over routes by name (RFC 3263): the local server (engine + SipServer, domain
//! a.test) reaches example.test, served by a real imppd, only through SRV records that
//! dnsmasq serves on a loopback port. Local watchers of a presentity there, one through the
//! engine's API and one over SIP (sipp), share one back-end subscription and get its
//! NOTIFYs; when the first SRV target does not answer, the back-end subscription is made at
//! the second, and the next one goes straight there. An established dialog keeps its target
//! when the records change, a new dialog follows them. A peer by name is believed from the
//! addresses its records give, as they change. Last, both domains are imppd processes
//! configured by their flags (`--route '*=dns' --dns-server`, each trusting the other's
//! server by host name, `--peer DOMAIN=HOST`), and the local one counts its back-end
//! subscription in `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::engine::{
    Clock, Engine, Event, ManualClock, Package, SubscribeRequest, SubscriptionId, SystemClock,
};
use impp::sip::route::{Route, RouteTable};
use impp::sip::transport::ListenAddr;
use impp::sip::{SipServer, SipServerConfig, TrustedPeer};

mod common;
use common::clock::{advance, timer_e_steps};
use common::dnsmasq::{self, Dnsmasq};
use common::fixtures::{engine_with, pidf, uri, wait_for};
use common::imppd::{Imppd, IMPPD};
use common::kamailio::TempDir;
use common::sipp::Sipp;

/// The remote domain (the one `Imppd` serves).
const REMOTE: &str = "example.test";

/// dnsmasq, or `None` (skipped outside CI) when it is not installed.
fn dns(records: &[String]) -> Option<Dnsmasq> {
    dns_ttl(records, 3600)
}

/// As `dns`, with `ttl` seconds on every record.
fn dns_ttl(records: &[String], ttl: u32) -> Option<Dnsmasq> {
    let binary = dnsmasq::present(dnsmasq::installed())?;
    Some(Dnsmasq::start(binary, records, ttl))
}

/// example.test's SIP servers: SRV records of `_sip._udp.example.test` at `first`
/// (priority 10) and `second` (20), both on 127.0.0.1.
fn srv(first: u16, second: u16) -> Vec<String> {
    vec![
        format!("--srv-host=_sip._udp.{REMOTE},one.{REMOTE},{first},10,10"),
        format!("--srv-host=_sip._udp.{REMOTE},two.{REMOTE},{second},20,10"),
        format!("--host-record=one.{REMOTE},127.0.0.1"),
        format!("--host-record=two.{REMOTE},127.0.0.1"),
    ]
}

/// example.test: a real imppd (no authentication) that allows any watcher and believes
/// a.test's server at 127.0.0.1.
fn remote() -> Imppd {
    Imppd::start(
        &["bob", "dave"],
        &["--open", "--policy", "allow", "--peer", "a.test=127.0.0.1"],
    )
}

/// What the application of a.test saw: per subscription, the bodies of its notifications.
type Seen = Arc<Mutex<Vec<(SubscriptionId, String)>>>;

/// a.test's server, without authentication, routing by `routes`, asking `dns` for names.
struct Local {
    engine: Arc<Engine>,
    server: SipServer,
    seen: Seen,
}

impl Local {
    fn start(clock: Arc<dyn Clock>, dns: SocketAddr, routes: &[&str]) -> Local {
        Local::start_with(clock, dns, routes, |_| {})
    }

    fn start_with(
        clock: Arc<dyn Clock>,
        dns: SocketAddr,
        routes: &[&str],
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Local {
        let engine = engine_with("a.test", |c| {
            c.workers = 1;
            c.clock = clock;
        });
        let seen: Seen = Arc::default();
        let record = seen.clone();
        engine
            .set_event_callback(Some(Box::new(move |event: &Event| {
                if let Event::Notification(n) = event {
                    let body = n.document.as_ref().map(|d| d.to_body()).unwrap_or_default();
                    record.lock().unwrap().push((n.subscription, body));
                }
            })))
            .unwrap();
        let mut config =
            SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
        config.authenticate = false;
        config.routes = RouteTable::new(routes.iter().map(|r| Route::parse(r).unwrap()).collect());
        config.peers = vec![TrustedPeer::parse(&format!("{REMOTE}=127.0.0.1")).unwrap()];
        config.dns.server = Some(dns);
        config.dns.timeout = Duration::from_millis(500);
        tweak(&mut config);
        let server = SipServer::start(engine.clone(), config).unwrap();
        Local {
            engine,
            server,
            seen,
        }
    }

    fn udp(&self) -> SocketAddr {
        self.server.local_addrs()[0].addr
    }

    /// `watcher` (of a.test) watches `presentity` through the engine's API.
    fn watch(&self, watcher: &str, presentity: &str) -> SubscriptionId {
        self.engine
            .subscribe(SubscribeRequest::new(
                uri(watcher),
                uri(presentity),
                Package::Presence,
            ))
            .unwrap()
    }

    /// Whether subscription `id` was notified a document containing `text`.
    fn saw(&self, id: SubscriptionId, text: &str) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(s, body)| *s == id && body.contains(text))
    }
}

/// Publishes `user`'s presence at the remote imppd (open, with `note`), answered `200`.
fn publish(remote: SocketAddr, user: &str, note: &str) {
    publish_of(remote, REMOTE, user, note)
}

/// As `publish`, for a user of `domain`.
fn publish_of(remote: SocketAddr, domain: &str, user: &str, note: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let aor = format!("sip:{user}@{domain}");
    let body = pidf(&aor, note);
    let call_id = format!("pub-{user}-{}-{}", me.port(), std::process::id());
    let m = format!(
        "PUBLISH {aor} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpub{};rport\r\n\
         Max-Forwards: 70\r\nFrom: <{aor}>;tag=p1\r\nTo: <{aor}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 PUBLISH\r\nEvent: presence\r\nExpires: 3600\r\n\
         Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
        me.port(),
        body.len()
    );
    socket.send_to(m.as_bytes(), remote).unwrap();
    assert_eq!(final_status(&socket, &call_id), 200, "PUBLISH {aor}");
}

/// The final status of the answer to the request `call_id` that `socket` sent.
fn final_status(socket: &UdpSocket, call_id: &str) -> u16 {
    let mut buf = [0u8; 65536];
    loop {
        let n = socket.recv(&mut buf).expect("an answer");
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

/// The subscriptions to `presentity` the remote imppd holds and has not ended (`imppd ctl`).
fn remote_subscriptions(remote: &Imppd, presentity: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(IMPPD)
        .arg("ctl")
        .arg("--db")
        .arg(remote.db())
        .args(["--json", "subscriptions", presentity])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "terminated")
        .cloned()
        .collect()
}

#[test]
fn watchers_of_a_domain_routed_by_dns_share_one_backend_subscription() {
    let far = remote();
    // The first target is the remote server itself (the second is never needed).
    let Some(dns) = dns(&srv(far.port(), 9)) else {
        return;
    };
    publish(far.addr(), "bob", "by name");
    let local = Local::start(Arc::new(SystemClock::new()), dns.addr, &["*=dns"]);
    let bob = format!("sip:bob@{REMOTE}");

    // A watcher of the engine's API: the back-end subscription is made by DNS.
    let alice = local.watch("sip:alice@a.test", &bob);
    wait_for("alice sees bob", 10, || local.saw(alice, "by name"));

    // A SIP watcher through the server: served from the same back-end subscription.
    let dir = TempDir::new("dnsfed");
    let carol = Sipp::new(
        "federation_watch.xml",
        local.udp(),
        "carol",
        dir.path(),
        "carol",
    )
    .set("watcher_domain", "a.test")
    .set("target", "bob")
    .spawn();
    carol.wait_for("basic>open");
    let stats = local.server.federation_stats();
    assert_eq!(stats.backends, 1, "{stats:?}");
    assert_eq!(stats.local_watchers, 2, "{stats:?}");
    assert_eq!(stats.own_dialogs, 0, "{stats:?}");
    // The remote domain holds one subscription to bob (carol was asked about with a
    // fetch, which ends at once).
    let held = remote_subscriptions(&far, &bob);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["watcher"], "sip:alice@a.test", "{held:?}");
    let log = carol.wait();
    assert!(
        log.received("NOTIFY").iter().any(|n| n.contains("by name")),
        "{}",
        log.0
    );

    // A change at the remote domain reaches the watcher left, through the same dialog.
    publish(far.addr(), "bob", "moved");
    wait_for("alice sees the change", 10, || local.saw(alice, "moved"));
    assert_eq!(local.server.federation_stats().backends, 1);
    assert!(local.server.dns_stats().resolutions >= 1);
}

#[test]
fn the_backend_subscription_fails_over_to_the_next_srv_target() {
    let far = remote();
    // The first target takes requests and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let Some(dns) = dns(&srv(silent.local_addr().unwrap().port(), far.port())) else {
        return;
    };
    publish(far.addr(), "bob", "second target");
    publish(far.addr(), "dave", "straight there");
    let clock = ManualClock::new();
    // A route naming the domain's host (resolved as `dns` would).
    let local = Local::start(clock.clone(), dns.addr, &[&format!("{REMOTE}={REMOTE}")]);
    let alice = local.watch("sip:alice@a.test", &format!("sip:bob@{REMOTE}"));
    let mut buf = [0u8; 65536];
    let n = silent.recv(&mut buf).expect("the SUBSCRIBE at priority 10");
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        first.starts_with(&format!("SUBSCRIBE sip:bob@{REMOTE} SIP/2.0")),
        "{first}"
    );
    // Its retransmissions, then timer F: the next target.
    for step in timer_e_steps(&impp::sip::transaction::Timers::default()) {
        advance(&clock, step, &[&local.engine], &[&local.server]);
    }
    wait_for("alice sees bob through the second target", 10, || {
        local.saw(alice, "second target")
    });
    assert_eq!(
        remote_subscriptions(&far, &format!("sip:bob@{REMOTE}")).len(),
        1
    );

    // The target that did not answer is left out: the next back-end subscription goes
    // straight to the second.
    silent
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while silent.recv(&mut buf).is_ok() {} // the first SUBSCRIBE's retransmissions
    let dave = local.watch("sip:alice@a.test", &format!("sip:dave@{REMOTE}"));
    wait_for("alice sees dave", 10, || local.saw(dave, "straight there"));
    silent
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        silent.recv(&mut buf).is_err(),
        "nothing more for the target that did not answer"
    );
    let stats = local.server.federation_stats();
    assert_eq!(stats.backends, 2, "{stats:?}");
}

#[test]
fn a_dialog_keeps_its_target_while_new_dialogs_follow_the_records() {
    let far = remote();
    let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    let one = |port: u16| {
        vec![
            format!("--srv-host=_sip._udp.{REMOTE},one.{REMOTE},{port},10,10"),
            format!("--host-record=one.{REMOTE},127.0.0.1"),
        ]
    };
    let Some(mut dns) = dns_ttl(&one(far.port()), 60) else {
        return;
    };
    publish(far.addr(), "bob", "kept");
    let clock = ManualClock::new();
    let local = Local::start(clock.clone(), dns.addr, &["*=dns"]);
    let bob = format!("sip:bob@{REMOTE}");
    let alice = local.watch("sip:alice@a.test", &bob);
    wait_for("alice sees bob", 10, || local.saw(alice, "kept"));

    // The records now lead elsewhere, and their TTL ran out long ago when the dialog is
    // refreshed (at 60 to 85% of its hour): the refresh still goes where the dialog was made.
    dns.restart(&one(moved.local_addr().unwrap().port()), 60);
    let before = local.server.federation_stats();
    advance(
        &clock,
        Duration::from_secs(3100),
        &[&local.engine],
        &[&local.server],
    );
    // The notifier's NOTIFY after a refresh (RFC 6665 §4.2.2) says it reached b's server.
    wait_for("the refresh at the dialog's target", 10, || {
        let now = local.server.federation_stats();
        now.subscribes_sent > before.subscribes_sent
            && now.notifies_received > before.notifies_received
    });
    moved
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 65536];
    assert!(
        moved.recv(&mut buf).is_err(),
        "nothing at the new target yet"
    );
    let stats = local.server.federation_stats();
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert_eq!(remote_subscriptions(&far, &bob).len(), 1);

    // A new dialog looks the name up again: it goes where the records say now.
    moved
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let dave = format!("sip:dave@{REMOTE}");
    local.watch("sip:alice@a.test", &dave);
    let n = moved
        .recv(&mut buf)
        .expect("the new dialog at the new target");
    let request = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        request.starts_with(&format!("SUBSCRIBE {dave} SIP/2.0")),
        "{request}"
    );
}

/// imppd's `/metrics` text (its HTTP listener from the `imppd ready` line).
fn metrics(node: &Imppd) -> String {
    let log = node.log();
    let ready = log
        .lines()
        .find(|l| l.starts_with("imppd ready"))
        .expect("a ready line");
    let addr: SocketAddr = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http:"))
        .unwrap_or_else(|| panic!("no http: address in {ready}"))
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of the sample `name` (no labels) in a metrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn two_imppd_federate_over_dns_and_trust_each_other_by_name() {
    // Each trusts the other's server by its host name (--peer DOMAIN=HOST).
    let mut records = vec![
        "--host-record=sip.example.test,127.0.0.1".to_string(),
        "--host-record=sip.b.test,127.0.0.1".to_string(),
    ];
    let Some(mut dns) = dns(&records) else {
        return;
    };
    let server = dns.addr.to_string();
    // b.test, known only by its SRV record (added once its port is known).
    let far = Imppd::start_domain(
        "b.test",
        &["bob"],
        |_| {},
        &[
            "--open",
            "--policy",
            "allow",
            "--dns-server",
            &server,
            "--peer",
            "example.test=sip.example.test",
        ],
    );
    assert!(
        far.log().contains("example.test=sip.example.test"),
        "{}",
        far.log()
    );
    records.push(format!(
        "--srv-host=_sip._udp.b.test,sip.b.test,{},10,10",
        far.port()
    ));
    dns.restart(&records, 3600);
    publish_of(far.addr(), "b.test", "bob", "between two imppd");
    // example.test reaches any other domain through its records.
    let near = Imppd::start(
        &["carol"],
        &[
            "--open",
            "--route",
            "*=dns",
            "--dns-server",
            &server,
            "--peer",
            "b.test=sip.b.test",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let dir = TempDir::new("dnsfed-imppd");
    let carol = Sipp::new(
        "federation_watch.xml",
        near.addr(),
        "carol",
        dir.path(),
        "carol",
    )
    .set("watcher_domain", "example.test")
    .set("target", "bob")
    .set("domain", "b.test")
    .spawn();
    carol.wait_for("between two imppd");
    let text = metrics(&near);
    assert_eq!(
        sample(&text, "imppd_federation_backends"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "imppd_federation_local_watchers"),
        Some(1.0),
        "{text}"
    );
    let held = remote_subscriptions(&far, "sip:bob@b.test");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["watcher"], "sip:carol@example.test", "{held:?}");
    carol.wait();
    // The last watcher gone, the back-end subscription ends at b.test too.
    wait_for("the back-end subscription to end", 10, || {
        remote_subscriptions(&far, "sip:bob@b.test").is_empty()
    });
    assert_eq!(
        sample(&metrics(&near), "imppd_federation_backends"),
        Some(0.0)
    );

    // A peer whose name does not resolve stops the start, saying which.
    let out = std::process::Command::new(IMPPD)
        .args(["--domain", "c.test", "--db", "none", "--open"])
        .args(["--listen", "udp:127.0.0.1:0", "--dns-server", &server])
        .args(["--peer", "b.test=nowhere.b.test"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nowhere.b.test"), "{stderr}");
}

/// The final status answering a MESSAGE from `from` to `to` sent from `socket` to `server`.
fn message_status(socket: &UdpSocket, server: SocketAddr, from: &str, to: &str) -> u16 {
    let me = socket.local_addr().unwrap();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let call_id = format!("peer-{n}@b.test");
    let body = "hello";
    let m = format!(
        "MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKpeer{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <{from}>;tag=p{n}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.send_to(m.as_bytes(), server).unwrap();
    final_status(socket, &call_id)
}

#[test]
fn a_peer_by_name_is_believed_from_its_addresses_as_the_records_change() {
    let records = vec!["--host-record=sip.b.test,127.0.0.1".to_string()];
    let Some(mut dns) = dns_ttl(&records, 60) else {
        return;
    };
    let clock = ManualClock::new();
    let local = Local::start_with(clock.clone(), dns.addr, &[], |c| {
        c.peers = vec![TrustedPeer::parse("b.test=sip.b.test").unwrap()];
    });
    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    bob.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let say = || message_status(&bob, local.udp(), "sip:bob@b.test", "sip:alice@a.test");
    assert_ne!(say(), 403, "sip.b.test is 127.0.0.1: believed");

    // The records move sip.b.test elsewhere; its TTL ends. The expired answer is still used
    // while it is refreshed (RFC 8767), then the new one is.
    dns.restart(&["--host-record=sip.b.test,127.0.0.2".to_string()], 60);
    advance(
        &clock,
        Duration::from_secs(61),
        &[&local.engine],
        &[&local.server],
    );
    let mut statuses = Vec::new();
    wait_for("the new address to be the peer's", 10, || {
        statuses.push(say());
        statuses.last() == Some(&403)
    });
    assert!(local.server.dns_stats().stale_hits >= 1, "{statuses:?}");
}
