//! The user-agent role: an engine of client.test with an account `sip:alice@b.test` at the
//! SIP server of b.test (digest authentication on). The account registers (b.test sees its
//! endpoint), publishes alice's presence as composed in the local engine (b.test's watchers
//! see it; after b.test restarts and no longer knows the entity tag, it is published again
//! in full), subscribes to a buddy of b.test for the application (which gets Notification
//! events as for any local subscription), and un-registers when it stops. sipp, playing a
//! registrar, checks the digest answers with its own code.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use impp::engine::{
    AuthAction, Clock, Engine, EngineConfig, Event, ExpiryBounds, ManualClock, Package,
    SubscribeRequest, SubscriptionId, SystemClock,
};
use impp::sip::agent::Account;
use impp::sip::route::NextHop;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::{Credential, MemoryStore, Store};
use impp::uri::Uri;

mod common;
use common::clock::advance;
use common::fixtures::{pidf, uri, wait_for};

/// Per subscription, the bodies of its notifications ("" for none).
type Seen = Arc<Mutex<HashMap<SubscriptionId, Vec<String>>>>;
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
fn last_saw(seen: &Seen, id: SubscriptionId, text: &str) -> bool {
    seen.lock()
        .unwrap()
        .get(&id)
        .and_then(|b| b.last())
        .is_some_and(|b| b.contains(text))
}

/// An engine on `clock` over `store`, whose application records its notifications.
fn engine(
    domain: &str,
    policy: AuthAction,
    clock: Arc<dyn Clock>,
    store: Arc<MemoryStore>,
) -> (Arc<Engine>, Seen) {
    let short = ExpiryBounds {
        default: 3600,
        min: 1,
        max: 86400,
    };
    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec![domain.into()],
            default_policy: policy,
            workers: 2,
            publication_expiry: short,
            subscription_expiry: short,
            endpoint_expiry: short,
            clock,
            store,
            ..EngineConfig::default()
        })
        .unwrap(),
    );
    let seen: Seen = Arc::default();
    let record = seen.clone();
    engine
        .set_event_callback(Some(Box::new(move |event: &Event| {
            if let Event::Notification(n) = event {
                let body = n.document.as_ref().map(|d| d.to_body()).unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .entry(n.subscription)
                    .or_default()
                    .push(body);
            }
        })))
        .unwrap();
    (engine, seen)
}

/// The registrar and presence server of b.test on UDP `port`, authentication on, on `clock`
/// over `store`.
fn registrar(
    port: u16,
    clock: &Arc<ManualClock>,
    store: &Arc<MemoryStore>,
) -> (Arc<Engine>, Seen, SipServer) {
    let (engine, seen) = engine("b.test", AuthAction::Allow, clock.clone(), store.clone());
    for user in ["alice", "bob", "carol"] {
        engine
            .set_user(Credential::new(
                uri(&format!("sip:{user}@b.test")),
                "b.test",
                &format!("{user}-pw"),
            ))
            .unwrap();
    }
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut config = SipServerConfig::new(vec![ListenAddr::udp(addr)]);
    assert!(config.authenticate);
    // One worker: what arrives is handled in order (see options_round_trip).
    config.workers = 1;
    let server = SipServer::start(engine.clone(), config).unwrap();
    (engine, seen, server)
}

/// Whether `b`'s store holds a registration and a publication of `aor`, each alive past
/// `ms` of clock time (what the engine wrote of them by now).
fn held_past(b: &Engine, store: &MemoryStore, aor: &Uri, ms: u64) -> bool {
    b.sync().unwrap();
    let snapshot = store.load().unwrap();
    let past = ManualClock::UNIX_ORIGIN_MS + ms;
    let endpoints: Vec<u64> = snapshot
        .endpoints
        .iter()
        .filter(|e| e.user == *aor)
        .map(|e| e.expires_at)
        .collect();
    let publications: Vec<u64> = snapshot
        .publications
        .iter()
        .filter(|p| p.presentity == *aor)
        .map(|p| p.expires_at)
        .collect();
    !endpoints.is_empty()
        && !publications.is_empty()
        && endpoints.iter().chain(&publications).all(|&at| at > past)
}

/// Sends an OPTIONS to the SIP server at `server` and waits for its answer: with one worker,
/// the server handled whatever reached it before.
fn options_round_trip(server: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let request = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-barrier;rport\r\nMax-Forwards: 70\r\nFrom: <sip:test@{local}>;tag=barrier\r\nTo: <sip:{server}>\r\nCall-ID: barrier@{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer to OPTIONS");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn an_account_registers_publishes_and_subscribes_with_digest() {
    // Both servers on one manual clock: the account's refreshes and b.test's expiries happen
    // when the test moves it.
    let clock = ManualClock::new();
    let b_store = Arc::new(MemoryStore::new());
    let port_b = free_port();
    let (b, b_seen, b_server) = registrar(port_b, &clock, &b_store);
    let alice = "sip:alice@b.test";
    let carol_watches = b
        .subscribe(SubscribeRequest::new(
            uri("sip:carol@b.test"),
            uri(alice),
            Package::Presence,
        ))
        .unwrap();

    // The client: its own domain is client.test; b.test is reached through the account.
    let (c, c_seen) = engine(
        "client.test",
        AuthAction::Confirm,
        clock.clone(),
        Arc::new(MemoryStore::new()),
    );
    let mut account = Account::new(
        uri(alice),
        "alice",
        "alice-pw",
        NextHop {
            proto: Proto::Udp,
            addr: format!("127.0.0.1:{port_b}").parse().unwrap(),
        },
    );
    // Short registration and publication, so that refreshes happen during the test.
    account.expires = 3;
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    config.workers = 1;
    let mut client = SipServer::start(c.clone(), config).unwrap();

    wait_for("the account to register", 10, || {
        client.account_registered(0)
    });
    let endpoints = b.endpoints(&uri(alice)).unwrap();
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");

    // Uplink: what the application publishes locally reaches b.test's watchers.
    c.publish_body(
        &uri(alice),
        Package::Presence,
        &pidf(alice, "on the road"),
        None,
    )
    .unwrap();
    wait_for("carol in b.test to see 'on the road'", 10, || {
        last_saw(&b_seen, carol_watches, "on the road")
    });

    // Buddies: an in-process subscription of the account goes to b.test with credentials.
    let buddy = c
        .subscribe(SubscribeRequest::new(
            uri(alice),
            uri("sip:bob@b.test"),
            Package::Presence,
        ))
        .unwrap();
    wait_for("b.test to hold the buddy subscription", 10, || {
        b.remote_subscriptions().unwrap().len() == 1
    });
    b.publish_body(
        &uri("sip:bob@b.test"),
        Package::Presence,
        &pidf("sip:bob@b.test", "in a meeting"),
        None,
    )
    .unwrap();
    wait_for("the application to see bob 'in a meeting'", 10, || {
        last_saw(&c_seen, buddy, "in a meeting")
    });

    // Refreshes: after more than the expiry, b.test still has the endpoint and the document.
    // The account refreshes both at 60% to 85% of the 3 s granted: all due at 2.6 s. Once
    // b.test took them, its clock goes past the first expiry (3 s; the account's next
    // refreshes are not due before 4.4 s).
    advance(
        &clock,
        Duration::from_millis(2600),
        &[&b, &c],
        &[&b_server, &client],
    );
    wait_for("the refreshes to reach b.test", 5, || {
        held_past(&b, &b_store, &uri(alice), 3000)
    });
    advance(&clock, Duration::from_millis(1000), &[&b], &[&b_server]);
    assert_eq!(b.endpoints(&uri(alice)).unwrap().len(), 1);
    let fresh = b
        .subscribe(SubscribeRequest::new(
            uri("sip:carol@b.test"),
            uri(alice),
            Package::Presence,
        ))
        .unwrap();
    wait_for("alice's document to be alive in b.test", 5, || {
        last_saw(&b_seen, fresh, "on the road")
    });
    b.unsubscribe(fresh).unwrap();
    b.unsubscribe(carol_watches).unwrap();

    // b.test restarts and forgets everything (registration, entity tag, nonces): the account
    // registers again and publishes in full when its tag is refused.
    drop(b_server);
    drop(b);
    let (b, b_seen, b_server) = registrar(port_b, &clock, &Arc::new(MemoryStore::new()));
    let carol_again = b
        .subscribe(SubscribeRequest::new(
            uri("sip:carol@b.test"),
            uri(alice),
            Package::Presence,
        ))
        .unwrap();
    // The account's next refreshes (at most 85% of 3 s after the last) go to the new b.test.
    advance(
        &clock,
        Duration::from_secs(3),
        &[&b, &c],
        &[&b_server, &client],
    );
    wait_for("alice to register again", 10, || {
        b.endpoints(&uri(alice)).unwrap().len() == 1
    });
    wait_for("alice published again in full", 10, || {
        last_saw(&b_seen, carol_again, "on the road")
    });
    // A change now goes as a modification with the new tag.
    c.publish_body(&uri(alice), Package::Presence, &pidf(alice, "back"), None)
        .unwrap();
    wait_for("carol to see 'back'", 10, || {
        last_saw(&b_seen, carol_again, "back")
    });

    // Stopping un-registers and withdraws the publication. The removal names the entity
    // tag of b.test's answer to that last PUBLISH, so the client must have taken it first
    // (carol may see the change before b.test sends its answer): with one worker each, an
    // OPTIONS answered by b.test comes after that answer, and one answered by the client
    // after the client took it.
    options_round_trip(b_server.local_addrs()[0].addr);
    options_round_trip(client.local_addrs()[0].addr);
    client.stop();
    wait_for("the registration to end", 5, || {
        b.endpoints(&uri(alice)).unwrap().is_empty()
    });
    wait_for("the publication to be withdrawn", 5, || {
        b_seen
            .lock()
            .unwrap()
            .get(&carol_again)
            .and_then(|b| b.last())
            .is_some_and(|b| !b.contains("back"))
    });
}

/// sipp, as a registrar that challenges and checks the answer itself (its own digest code,
/// not libimpp's): the account registers, and un-registers with credentials when stopped.
#[test]
fn an_account_registers_at_sipp_checking_its_credentials() {
    let port = free_port();
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/agent_registrar.xml");
    let mut sipp = match std::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-set", "user", "alice", "-set", "password", "alice-pw"])
        .args(["-set", "domain", "b.test"])
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-timeout", "20", "-timeout_error", "-nostdin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run sipp ({e}): install the Debian package sip-tester"),
    };
    // sipp binds its port before reading the scenario's first message.
    std::thread::sleep(Duration::from_millis(300));

    let (c, _) = engine(
        "client.test",
        AuthAction::Confirm,
        Arc::new(SystemClock::new()),
        Arc::new(MemoryStore::new()),
    );
    let account = Account::new(
        uri("sip:alice@b.test"),
        "alice",
        "alice-pw",
        NextHop {
            proto: Proto::Udp,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        },
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    let mut client = SipServer::start(c, config).unwrap();
    let registered = Instant::now() + Duration::from_secs(10);
    while !client.account_registered(0) && Instant::now() < registered {
        std::thread::sleep(Duration::from_millis(20));
    }
    let was_registered = client.account_registered(0);
    client.stop();

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sipp.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = sipp.kill();
    }
    let out = sipp.wait_with_output().unwrap();
    assert!(
        was_registered && status.is_some_and(|s| s.success()),
        "registered: {was_registered}; sipp: {status:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
