//! Federation ("distribute state", DESIGN §5): two servers, a.test and b.test, each an engine
//! with a SIP server on loopback and a route to the other. Watchers in a.test of presentities
//! in b.test share one back-end subscription per presentity: b.test holds one subscription
//! per presentity whatever the number of watchers in a.test, sends one NOTIFY per change
//! across the boundary, and a.test fans it out to its own watchers.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use impp::engine::{
    AuthAction, AuthRule, Clock, Engine, EngineConfig, Event, ExpiryBounds, ManualClock, Package,
    ResourceList, SubscribeRequest, SubscriptionId, SystemClock, TerminationReason, WatcherMatch,
};
use impp::sip::digest_client::{DigestClient, Retry};
use impp::sip::route::{NextHop, Route, RouteTable};
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipLimits, SipMessage, Transport};
use impp::sip::{SipServer, SipServerConfig, TrustedPeer};
use impp::store::{Credential, MemoryStore};

mod common;
use common::clock::advance;
use common::fixtures::{pidf, uri, wait_for};

/// What the application of a.test saw: per subscription, the bodies of its notifications.
type Seen = Arc<Mutex<HashMap<SubscriptionId, Vec<String>>>>;

struct Domain {
    engine: Arc<Engine>,
    server: SipServer,
    seen: Seen,
}

/// A port free for UDP and TCP on loopback (bound and released; the server binds it right
/// after).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
impl Domain {
    /// `domain` on UDP `port`, with a route for `peer_domain` to `peer_port`.
    fn start(
        domain: &str,
        port: u16,
        peer_domain: &str,
        peer_port: u16,
        policy: AuthAction,
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Domain {
        Domain::start_on(
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock::new()),
            domain,
            port,
            peer_domain,
            peer_port,
            policy,
            tweak,
        )
    }

    /// Like [`Domain::start`], over `store` (kept across restarts) and on `clock`.
    #[allow(clippy::too_many_arguments)]
    fn start_on(
        store: Arc<MemoryStore>,
        clock: Arc<dyn Clock>,
        domain: &str,
        port: u16,
        peer_domain: &str,
        peer_port: u16,
        policy: AuthAction,
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Domain {
        let bounds = ExpiryBounds {
            default: 3600,
            min: 1,
            max: 86400,
        };
        let engine = Arc::new(
            Engine::new(EngineConfig {
                domains: vec![domain.into()],
                default_policy: policy,
                workers: 2,
                subscription_expiry: bounds,
                store,
                clock,
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        for user in ["alice", "bob", "carol"] {
            engine
                .set_user(Credential::new(
                    uri(&format!("sip:{user}@{domain}")),
                    domain,
                    &format!("{user}-pw"),
                ))
                .unwrap();
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(addr), ListenAddr::tcp(addr)]);
        config.routes = RouteTable::new(vec![Route {
            domain: Some(peer_domain.into()),
            target: impp::sip::route::RouteTarget::Hop(NextHop {
                proto: Proto::Udp,
                addr: format!("127.0.0.1:{peer_port}").parse().unwrap(),
            }),
        }]);
        // The peer's server, at loopback, speaks for its users (DESIGN §5a).
        config.peers = vec![TrustedPeer::parse(&format!("{peer_domain}=127.0.0.1")).unwrap()];
        tweak(&mut config);
        let seen: Seen = Arc::default();
        let record = seen.clone();
        // The application's own callback: it sees the notifications of local watchers.
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
        let server = SipServer::start(engine.clone(), config).unwrap();
        Domain {
            engine,
            server,
            seen,
        }
    }

    /// Its UDP address.
    fn udp(&self) -> SocketAddr {
        self.server
            .local_addrs()
            .iter()
            .find(|l| l.proto == Proto::Udp)
            .expect("a UDP listener")
            .addr
    }

    /// Subscriptions of remote watchers held by this domain's engine.
    fn remote_subscriptions(&self) -> usize {
        self.engine.remote_subscriptions().unwrap().len()
    }

    /// Whether every one of `ids` was last notified with a document containing `text`.
    fn all_saw(&self, ids: &[SubscriptionId], text: &str) -> bool {
        let seen = self.seen.lock().unwrap();
        ids.iter().all(|id| {
            seen.get(id)
                .and_then(|bodies| bodies.last())
                .is_some_and(|b| b.contains(text))
        })
    }
}
/// b.test (allowing every watcher) and a.test (with `policy` and `tweak`), each routing to
/// the other on a free port: (a, b).
fn two_domains(policy: AuthAction, tweak: impl FnOnce(&mut SipServerConfig)) -> (Domain, Domain) {
    let (port_a, port_b) = (free_port(), free_port());
    let b = Domain::start(
        "b.test",
        port_b,
        "a.test",
        port_a,
        AuthAction::Allow,
        |_| {},
    );
    let a = Domain::start("a.test", port_a, "b.test", port_b, policy, tweak);
    (a, b)
}

/// A SIP watcher of a.test on its own UDP socket: subscribes with digest authentication and
/// answers NOTIFYs 200 on a thread, keeping their bodies.
struct SipWatcher {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    call_id: String,
    tag: String,
    to_tag: Arc<Mutex<Option<String>>>,
    /// The notifier's Contact: the Request-URI of in-dialog requests (RFC 3261 §12.2.1.1).
    remote_target: Option<String>,
    cseq: AtomicU32,
    responses: crossbeam_channel::Receiver<SipMessage>,
    notifies: Arc<Mutex<Vec<String>>>,
    digest: DigestClient,
    thread: Option<JoinHandle<()>>,
}

static N: AtomicU32 = AtomicU32::new(1);

impl SipWatcher {
    fn new(server: SocketAddr, user: &str) -> SipWatcher {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (tx, responses) = crossbeam_channel::unbounded();
        let notifies: Arc<Mutex<Vec<String>>> = Arc::default();
        let (reader, seen) = (socket.try_clone().unwrap(), notifies.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match reader.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(_) => return,
                };
                if n == 1 && buf[0] == 0 {
                    return; // the test's stop signal
                }
                let m =
                    SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Datagram).unwrap();
                if m.is_request() {
                    let mut text = String::from("SIP/2.0 200 OK\r\n");
                    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                        for v in m.headers(name) {
                            text.push_str(&format!("{name}: {v}\r\n"));
                        }
                    }
                    text.push_str("Content-Length: 0\r\n\r\n");
                    reader.send_to(text.as_bytes(), server).unwrap();
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(m.body()).into_owned());
                } else if tx.send(m).is_err() {
                    return;
                }
            }
        });
        let n = N.fetch_add(1, Ordering::Relaxed);
        SipWatcher {
            socket,
            server,
            user: user.into(),
            call_id: format!("w{n}@test"),
            tag: format!("wt{n}"),
            to_tag: Arc::default(),
            remote_target: None,
            cseq: AtomicU32::new(1),
            responses,
            notifies,
            digest: DigestClient::new(user, &format!("{user}-pw")),
            thread: Some(thread),
        }
    }

    fn subscribe(&mut self, presentity: &str, expires: u32) -> u16 {
        self.subscribe_with(presentity, expires, "")
    }

    /// [`SipWatcher::subscribe`] with more header lines (CRLF-terminated).
    fn subscribe_with(&mut self, presentity: &str, expires: u32, extra: &str) -> u16 {
        let mut answered = false;
        loop {
            let cseq = self.cseq.fetch_add(1, Ordering::Relaxed);
            let local = self.socket.local_addr().unwrap();
            let to_tag = self.to_tag.lock().unwrap().clone();
            let to = match to_tag {
                Some(t) => format!("<{presentity}>;tag={t}"),
                None => format!("<{presentity}>"),
            };
            let request_uri = self.remote_target.clone().unwrap_or(presentity.to_string());
            let mut text = format!(
                "SUBSCRIBE {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKw{cseq}{tag};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@a.test>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{user}@{local}>\r\nEvent: presence\r\nExpires: {expires}\r\n{extra}",
                tag = self.tag,
                user = self.user,
                call_id = self.call_id,
            );
            let sent_auth = match self.digest.authorize("SUBSCRIBE", &request_uri) {
                Some((name, value)) => {
                    text.push_str(&format!("{name}: {value}\r\n"));
                    true
                }
                None => false,
            };
            text.push_str("Content-Length: 0\r\n\r\n");
            self.socket.send_to(text.as_bytes(), self.server).unwrap();
            let r = self
                .responses
                .recv_timeout(Duration::from_secs(5))
                .expect("an answer to SUBSCRIBE");
            let status = r.status().unwrap();
            if status == 401 && !answered {
                answered = true;
                let retry = self
                    .digest
                    .on_challenge(401, r.headers("WWW-Authenticate"), sent_auth);
                assert_eq!(retry, Retry::Again);
                continue;
            }
            if let Some(tag) = r.to().unwrap().tag() {
                *self.to_tag.lock().unwrap() = Some(tag.to_string());
            }
            if let Ok(impp::sip::Contacts::List(list)) = r.contact() {
                if let Some(c) = list.first() {
                    self.remote_target = Some(c.uri_text().to_string());
                }
            }
            return status;
        }
    }

    fn saw(&self, text: &str) -> bool {
        self.notifies
            .lock()
            .unwrap()
            .last()
            .is_some_and(|b| b.contains(text))
    }
}

impl Drop for SipWatcher {
    fn drop(&mut self) {
        let local = self.socket.local_addr().unwrap();
        let _ = self.socket.send_to(&[0], local);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn subscribe(engine: &Engine, watcher: &str, presentity: &str) -> SubscriptionId {
    engine
        .subscribe(SubscribeRequest::new(
            uri(watcher),
            uri(presentity),
            Package::Presence,
        ))
        .unwrap()
}

#[test]
fn a_thousand_watchers_share_ten_backend_subscriptions() {
    let (port_a, port_b) = (free_port(), free_port());
    let b = Domain::start(
        "b.test",
        port_b,
        "a.test",
        port_a,
        AuthAction::Allow,
        |_| {},
    );
    // Watchers in a.test are let through by a.test (no local rule: the remote domain decides),
    // although its default policy would ask the presentity.
    let a = Domain::start(
        "a.test",
        port_a,
        "b.test",
        port_b,
        AuthAction::Confirm,
        |_| {},
    );
    let presentities: Vec<String> = (0..10).map(|i| format!("sip:p{i}@b.test")).collect();
    for p in &presentities {
        b.engine
            .publish_body(&uri(p), Package::Presence, &pidf(p, "v1"), None)
            .unwrap();
    }

    let mut local: Vec<(SubscriptionId, usize)> = Vec::new();
    for i in 0..1000 {
        let p = i % 10;
        let id = subscribe(&a.engine, &format!("sip:w{i}@a.test"), &presentities[p]);
        local.push((id, p));
    }
    let a_addr = a.udp();
    let mut sip_watchers: Vec<SipWatcher> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| SipWatcher::new(a_addr, u))
        .collect();
    for (n, w) in sip_watchers.iter_mut().enumerate() {
        assert_eq!(w.subscribe(&presentities[n], 600), 200);
    }

    let ids: Vec<SubscriptionId> = local.iter().map(|(id, _)| *id).collect();
    wait_for("every local watcher to see v1", 20, || {
        a.all_saw(&ids, "v1")
    });
    wait_for("every SIP watcher to see v1", 10, || {
        sip_watchers.iter().all(|w| w.saw("v1"))
    });
    assert_eq!(
        b.remote_subscriptions(),
        10,
        "one subscription per presentity in b.test"
    );
    let stats = a.server.federation_stats();
    assert_eq!(stats.backends, 10);
    assert_eq!(stats.local_watchers, 1003);
    assert_eq!(stats.subscribes_sent, 10);
    // Every watcher but the ten the dialogs are made for was asked about once, with a fetch
    // (a short transaction, not a dialog), and found alike.
    assert_eq!(stats.probes_sent, 993);
    assert_eq!(stats.own_dialogs, 0);

    // One change per presentity in b.test: ten NOTIFYs across the boundary, a thousand and
    // three notifications in a.test.
    let before = a.server.federation_stats().notifies_received;
    let started = Instant::now();
    for p in &presentities {
        b.engine
            .publish_body(&uri(p), Package::Presence, &pidf(p, "v2"), None)
            .unwrap();
    }
    wait_for("every local watcher to see v2", 20, || {
        a.all_saw(&ids, "v2")
    });
    wait_for("every SIP watcher to see v2", 10, || {
        sip_watchers.iter().all(|w| w.saw("v2"))
    });
    let fan_out = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let notifies = a.server.federation_stats().notifies_received - before;
    assert_eq!(notifies, 10, "NOTIFYs crossing from b.test to a.test");
    eprintln!(
        "federation: 10 publications in b.test reached 1003 watchers in a.test in {fan_out:?} with {notifies} NOTIFYs across"
    );

    // The watchers of p1 leave: its back-end subscription goes; the others stay.
    for (id, p) in &local {
        if *p == 1 {
            a.engine.unsubscribe(*id).unwrap();
        }
    }
    sip_watchers[1].subscribe(&presentities[1], 0);
    wait_for("b.test to drop p1's subscription", 10, || {
        b.remote_subscriptions() == 9
    });
    assert_eq!(a.server.federation_stats().backends, 9);
    // Everyone leaves: nothing is left in b.test.
    for (id, p) in &local {
        if *p != 1 {
            a.engine.unsubscribe(*id).unwrap();
        }
    }
    for (n, w) in sip_watchers.iter_mut().enumerate() {
        if n != 1 {
            w.subscribe(&presentities[n], 0);
        }
    }
    wait_for("b.test to drop every subscription", 10, || {
        b.remote_subscriptions() == 0
    });
    let stats = a.server.federation_stats();
    assert_eq!((stats.backends, stats.local_watchers), (0, 0));
}

#[test]
fn a_restarted_or_deactivating_notifier_is_subscribed_again() {
    // Both domains on one manual clock: a.test refreshes when the test moves it.
    let clock = ManualClock::new();
    let on_clock = |domain: &str, port: u16, peer: &str, peer_port: u16, backend_expires| {
        Domain::start_on(
            Arc::new(MemoryStore::new()),
            clock.clone(),
            domain,
            port,
            peer,
            peer_port,
            AuthAction::Allow,
            |c| c.backend_expires = backend_expires,
        )
    };
    let (port_a, port_b) = (free_port(), free_port());
    let b = on_clock("b.test", port_b, "a.test", port_a, 3600);
    // Short back-end subscriptions, so a refresh comes soon after b.test restarts.
    let a = on_clock("a.test", port_a, "b.test", port_b, 4);
    let p = "sip:bob@b.test";
    b.engine
        .publish_body(&uri(p), Package::Presence, &pidf(p, "before"), None)
        .unwrap();
    let ids: Vec<SubscriptionId> = (0..5)
        .map(|i| subscribe(&a.engine, &format!("sip:w{i}@a.test"), p))
        .collect();
    wait_for("the watchers to see 'before'", 10, || {
        a.all_saw(&ids, "before")
    });
    assert_eq!(b.remote_subscriptions(), 1);

    // b.test restarts without its subscriptions: the next refresh is answered 481 and a new
    // dialog is made.
    let Domain { engine, server, .. } = b;
    drop(server);
    drop(engine);
    let b = on_clock("b.test", port_b, "a.test", port_a, 3600);
    b.engine
        .publish_body(&uri(p), Package::Presence, &pidf(p, "after-restart"), None)
        .unwrap();
    // The refresh is due at 60% to 85% of the 4 s granted.
    advance(
        &clock,
        Duration::from_secs(4),
        &[&a.engine, &b.engine],
        &[&a.server, &b.server],
    );
    wait_for("the watchers to see 'after-restart'", 20, || {
        a.all_saw(&ids, "after-restart")
    });
    assert_eq!(b.remote_subscriptions(), 1);
    assert!(a.server.federation_stats().failures >= 1);

    // b.test ends the subscription (deactivated): a.test subscribes again at once.
    let old = b.engine.remote_subscriptions().unwrap()[0].id;
    b.engine
        .terminate_subscription(old, TerminationReason::Deactivated)
        .unwrap();
    wait_for("a new subscription in b.test", 10, || {
        b.engine
            .remote_subscriptions()
            .unwrap()
            .iter()
            .any(|s| s.id != old)
    });
    assert_eq!(b.remote_subscriptions(), 1);
    assert_eq!(a.server.federation_stats().backends, 1);

    // b.test rejects the watcher the dialog was made for: that watcher's subscription ends
    // as rejected; the others get a new dialog in the name of one of them.
    let current = b.engine.remote_subscriptions().unwrap()[0].clone();
    b.engine
        .terminate_subscription(current.id, TerminationReason::Rejected)
        .unwrap();
    wait_for("a dialog in another watcher's name", 10, || {
        b.engine
            .remote_subscriptions()
            .unwrap()
            .iter()
            .any(|s| s.id != current.id && s.watcher != current.watcher)
    });
    let (refused, kept): (Vec<SubscriptionId>, Vec<SubscriptionId>) = ids
        .iter()
        .partition(|id| a.engine.subscription(**id).is_err());
    assert_eq!(
        refused.len(),
        1,
        "only the refused watcher's subscription ends"
    );
    assert_eq!(kept.len(), 4);
    // A watcher b.test refused cannot come back through the shared dialog.
    let again = subscribe(&a.engine, &current.watcher.to_string(), p);
    wait_for("the refused watcher to be ended again", 10, || {
        a.engine.subscription(again).is_err()
    });
    b.engine
        .publish_body(&uri(p), Package::Presence, &pidf(p, "still here"), None)
        .unwrap();
    wait_for("the others to see 'still here'", 10, || {
        a.all_saw(&kept, "still here")
    });
    // Everybody refused, one after the other: nothing is left.
    let mut rejected = std::collections::HashSet::new();
    wait_for("every watcher refused and the back-end gone", 20, || {
        for s in b.engine.remote_subscriptions().unwrap() {
            if rejected.insert(s.id) {
                b.engine
                    .terminate_subscription(s.id, TerminationReason::Rejected)
                    .unwrap();
            }
        }
        a.server.federation_stats().backends == 0
    });
    assert_eq!(rejected.len(), 4, "one dialog per remaining watcher");
    for id in ids {
        assert!(a.engine.subscription(id).is_err(), "{id} still lives");
    }
}

#[test]
fn backend_subscriptions_go_over_tcp_when_routed_so() {
    let (port_a, port_b) = (free_port(), free_port());
    let b = Domain::start(
        "b.test",
        port_b,
        "a.test",
        port_a,
        AuthAction::Allow,
        |_| {},
    );
    let a = Domain::start("a.test", port_a, "b.test", port_b, AuthAction::Allow, |c| {
        c.routes = RouteTable::new(vec![Route::parse(&format!(
            "b.test=tcp:127.0.0.1:{port_b}"
        ))
        .unwrap()]);
    });
    let p = "sip:carol@b.test";
    let ids: Vec<SubscriptionId> = (0..3)
        .map(|i| subscribe(&a.engine, &format!("sip:w{i}@a.test"), p))
        .collect();
    wait_for("b.test to hold one subscription", 10, || {
        b.remote_subscriptions() == 1
    });
    // The back-end dialog's first NOTIFY in before the change, so that the change is a
    // NOTIFY of its own (not already in the first one, on a busy machine).
    wait_for("the back-end dialog's first NOTIFY", 10, || {
        a.server.federation_stats().notifies_received >= 1
    });
    b.engine
        .publish_body(&uri(p), Package::Presence, &pidf(p, "over tcp"), None)
        .unwrap();
    wait_for("the watchers to see 'over tcp'", 10, || {
        a.all_saw(&ids, "over tcp")
    });
    assert_eq!(a.server.federation_stats().notifies_received, 2);
    for id in ids {
        a.engine.unsubscribe(id).unwrap();
    }
    wait_for("b.test to drop it", 10, || b.remote_subscriptions() == 0);
}

#[test]
fn a_restarted_server_subscribes_again_for_its_restored_sip_watchers() {
    let (port_a, port_b) = (free_port(), free_port());
    let b = Domain::start(
        "b.test",
        port_b,
        "a.test",
        port_a,
        AuthAction::Allow,
        |_| {},
    );
    let store = Arc::new(MemoryStore::new());
    let a = Domain::start_on(
        store.clone(),
        Arc::new(SystemClock::new()),
        "a.test",
        port_a,
        "b.test",
        port_b,
        AuthAction::Allow,
        |_| {},
    );
    let p = "sip:dave@b.test";
    let a_addr = a.udp();
    let mut watcher = SipWatcher::new(a_addr, "alice");
    assert_eq!(watcher.subscribe(p, 600), 200);
    wait_for("b.test to hold the back-end subscription", 10, || {
        b.remote_subscriptions() == 1
    });
    // ... and a.test to know the dialog (b.test's 200 or first NOTIFY gave it its tag): a
    // server stopping ends only the back-end dialogs it knows the far end of (it cannot
    // end the others in-dialog), so stopping before that would leave b.test's to expire.
    wait_for("a.test to know the back-end dialog", 10, || {
        a.server.federation_stats().notifies_received >= 1
    });

    // a.test restarts on the same store: its SIP watcher's subscription comes back, and so
    // does the back-end subscription serving it.
    let Domain { engine, server, .. } = a;
    drop(server);
    drop(engine);
    wait_for("the old back-end subscription to end", 10, || {
        b.remote_subscriptions() == 0
    });
    let a = Domain::start_on(
        store,
        Arc::new(SystemClock::new()),
        "a.test",
        port_a,
        "b.test",
        port_b,
        AuthAction::Allow,
        |_| {},
    );
    wait_for("a new back-end subscription", 10, || {
        b.remote_subscriptions() == 1
    });
    b.engine
        .publish_body(&uri(p), Package::Presence, &pidf(p, "restored"), None)
        .unwrap();
    wait_for("the SIP watcher to see 'restored'", 10, || {
        watcher.saw("restored")
    });
    assert_eq!(a.server.federation_stats().local_watchers, 1);
}

/// A resource list of a.test with resources of b.test (RFC 4662 §4.3: a list may hold
/// resources its server does not own): each remote resource is watched through federation's
/// shared back-end subscription, one per presentity whatever the number of lists and watchers
/// in a.test, and its state reaches the list's NOTIFYs like a local resource's.
#[test]
fn a_list_with_resources_of_another_domain_watches_them_through_federation() {
    let (a, b) = two_domains(AuthAction::Allow, |c| {
        c.list_batch_interval = Duration::ZERO
    });
    let (dave, erin, alice) = ("sip:dave@b.test", "sip:erin@b.test", "sip:alice@a.test");
    for (p, note) in [(dave, "dave v1"), (erin, "erin v1")] {
        b.engine
            .publish_body(&uri(p), Package::Presence, &pidf(p, note), None)
            .unwrap();
    }
    a.engine
        .publish_body(
            &uri(alice),
            Package::Presence,
            &pidf(alice, "alice v1"),
            None,
        )
        .unwrap();
    let mut list = ResourceList::new(uri("sip:buddies@a.test"));
    for r in [dave, erin, alice] {
        list.push_resource(uri(r), None);
    }
    a.engine.set_list(list).unwrap();
    // One more watcher of dave in a.test, outside any list: it shares the back-end
    // subscription.
    let single = subscribe(&a.engine, "sip:carol@a.test", dave);

    let a_addr = a.udp();
    let eventlist = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n";
    let mut watchers: Vec<SipWatcher> = ["bob", "carol"]
        .iter()
        .map(|user| SipWatcher::new(a_addr, user))
        .collect();
    for w in &mut watchers {
        assert_eq!(w.subscribe_with("sip:buddies@a.test", 600, eventlist), 200);
    }
    // Every list watcher sees every resource active with its document, the remote ones
    // included (the first full state may show them pending until the back-end dialogs
    // answer; a partial NOTIFY follows).
    let shows =
        |w: &SipWatcher, text: &str| w.notifies.lock().unwrap().iter().any(|b| b.contains(text));
    for w in &watchers {
        wait_for("the list to show the remote resources", 10, || {
            ["dave v1", "erin v1", "alice v1"]
                .iter()
                .all(|t| shows(w, t))
        });
    }
    // One back-end subscription per remote presentity: the two lists and carol's single
    // subscription share dave's.
    wait_for("b.test to hold one subscription per presentity", 10, || {
        b.remote_subscriptions() == 2
    });
    assert_eq!(a.server.federation_stats().backends, 2);

    // A change at b.test crosses once and reaches every list and the single watcher.
    b.engine
        .publish_body(&uri(dave), Package::Presence, &pidf(dave, "dave v2"), None)
        .unwrap();
    for w in &watchers {
        wait_for("the lists to show dave's change", 10, || {
            shows(w, "dave v2")
        });
    }
    wait_for("carol's single subscription to see it", 10, || {
        a.all_saw(&[single], "dave v2")
    });
    // The partial NOTIFY carries dave alone.
    let last = watchers[0].notifies.lock().unwrap().last().unwrap().clone();
    assert!(
        last.contains("dave v2") && !last.contains("erin v1"),
        "{last}"
    );

    // The lists end: dave's back-end subscription stays for carol, erin's ends.
    for w in &mut watchers {
        assert_eq!(w.subscribe_with("sip:buddies@a.test", 0, eventlist), 200);
    }
    wait_for("erin's back-end subscription to end", 10, || {
        b.remote_subscriptions() == 1
    });
    a.engine.unsubscribe(single).unwrap();
    wait_for("dave's too, with the last watcher", 10, || {
        b.remote_subscriptions() == 0
    });
}

/// A remote resource of a list is authorized by its own domain's rules for the list's
/// subscriber: b.test blocks bob of a.test from dave, so bob's list shows dave
/// `terminated;reason=rejected` while carol's list, sharing the back-end subscription, shows
/// dave active.
#[test]
fn a_remote_resource_of_a_list_follows_its_domains_rules_for_each_subscriber() {
    let (a, b) = two_domains(AuthAction::Allow, |c| {
        c.list_batch_interval = Duration::ZERO
    });
    let dave = "sip:dave@b.test";
    b.engine
        .set_rule(AuthRule::new(
            uri(dave),
            WatcherMatch::Watcher(uri("sip:bob@a.test")),
            AuthAction::Block,
        ))
        .unwrap();
    b.engine
        .publish_body(&uri(dave), Package::Presence, &pidf(dave, "dave v1"), None)
        .unwrap();
    let mut list = ResourceList::new(uri("sip:buddies@a.test"));
    list.push_resource(uri(dave), None);
    a.engine.set_list(list).unwrap();

    let a_addr = a.udp();
    let eventlist = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n";
    let mut bob = SipWatcher::new(a_addr, "bob");
    let mut carol = SipWatcher::new(a_addr, "carol");
    let shows =
        |w: &SipWatcher, text: &str| w.notifies.lock().unwrap().iter().any(|b| b.contains(text));
    assert_eq!(
        bob.subscribe_with("sip:buddies@a.test", 600, eventlist),
        200
    );
    wait_for("bob's list to show dave rejected", 10, || {
        shows(&bob, "reason=\"rejected\"")
    });
    assert_eq!(
        carol.subscribe_with("sip:buddies@a.test", 600, eventlist),
        200
    );
    wait_for("carol's list to show dave", 10, || shows(&carol, "dave v1"));
    assert!(!shows(&bob, "dave v1"), "bob never sees dave's document");
    assert!(!shows(&carol, "rejected"));
}

/// b.test's rules for dave, per watcher of a.test: bob blocked, alice polite-blocked, erin
/// confirmed (pending until dave decides), carol allowed (b.test's default).
fn daves_rules(b: &Domain, dave: &str) {
    for (watcher, action) in [
        ("sip:bob@a.test", AuthAction::Block),
        ("sip:alice@a.test", AuthAction::PoliteBlock),
        ("sip:erin@a.test", AuthAction::Confirm),
    ] {
        b.engine
            .set_rule(AuthRule::new(
                uri(dave),
                WatcherMatch::Watcher(uri(watcher)),
                action,
            ))
            .unwrap();
    }
    b.engine
        .publish_body(&uri(dave), Package::Presence, &pidf(dave, "dave v1"), None)
        .unwrap();
}

/// A watcher joining a back-end subscription made in another watcher's name is shown what
/// the remote domain's rules show it, not what they show the first one: carol (allowed)
/// subscribes first, then bob (blocked) is rejected, alice (polite-blocked) sees the neutral
/// document, erin (confirm) stays pending until dave approves her. a.test's own policy is
/// `allow`: the remote domain has the last word.
#[test]
fn a_watcher_joining_a_shared_backend_follows_the_remote_rules_for_itself() {
    let (a, b) = two_domains(AuthAction::Allow, |_| {});
    let dave = "sip:dave@b.test";
    daves_rules(&b, dave);
    let carol = subscribe(&a.engine, "sip:carol@a.test", dave);
    wait_for("carol to see dave", 10, || a.all_saw(&[carol], "dave v1"));
    let bob = subscribe(&a.engine, "sip:bob@a.test", dave);
    let alice = subscribe(&a.engine, "sip:alice@a.test", dave);
    let erin = subscribe(&a.engine, "sip:erin@a.test", dave);
    wait_for("bob to be rejected", 10, || {
        a.engine.subscription(bob).is_err()
    });
    wait_for("alice to see the neutral document", 10, || {
        a.all_saw(&[alice], "<tuple id=\"t0\"")
    });
    wait_for("erin's own dialog at b.test", 10, || {
        b.engine
            .remote_subscriptions()
            .unwrap()
            .iter()
            .any(|s| s.watcher == uri("sip:erin@a.test"))
    });
    let state = a.engine.subscription(erin).unwrap().state;
    assert_eq!(state, impp::engine::SubscriptionState::Pending);
    let leaked = |id: SubscriptionId, text: &str| {
        a.seen
            .lock()
            .unwrap()
            .get(&id)
            .is_some_and(|bodies| bodies.iter().any(|b| b.contains(text)))
    };
    for (who, id) in [("bob", bob), ("alice", alice), ("erin", erin)] {
        assert!(!leaked(id, "dave v1"), "{who} was shown dave's state");
    }

    // A change reaches carol, and nobody else.
    b.engine
        .publish_body(&uri(dave), Package::Presence, &pidf(dave, "dave v2"), None)
        .unwrap();
    wait_for("carol to see dave's change", 10, || {
        a.all_saw(&[carol], "dave v2")
    });
    // dave approves erin at b.test: her own dialog turns active and she is shown dave.
    let erins = b
        .engine
        .remote_subscriptions()
        .unwrap()
        .into_iter()
        .find(|s| s.watcher == uri("sip:erin@a.test"))
        .unwrap();
    b.engine.authorize(erins.id, AuthAction::Allow).unwrap();
    wait_for("erin to see dave once approved", 10, || {
        a.all_saw(&[erin], "dave v2")
    });
    for (who, id) in [("bob", bob), ("alice", alice)] {
        assert!(!leaked(id, "dave v2"), "{who} was shown dave's change");
    }
    let stats = a.server.federation_stats();
    assert_eq!(stats.probes_sent, 3, "{stats:?}");
    // alice and erin have dialogs of their own; bob was refused by his fetch.
    assert_eq!(stats.own_dialogs, 2, "{stats:?}");
}

/// The same through a list of a.test with dave as a resource: carol's list shows dave, then
/// bob's list shows him rejected and alice's the neutral document, never dave's state.
#[test]
fn a_list_subscriber_joining_a_shared_backend_follows_the_remote_rules_for_itself() {
    let (a, b) = two_domains(AuthAction::Allow, |c| {
        c.list_batch_interval = Duration::ZERO
    });
    let dave = "sip:dave@b.test";
    daves_rules(&b, dave);
    let mut list = ResourceList::new(uri("sip:buddies@a.test"));
    list.push_resource(uri(dave), None);
    a.engine.set_list(list).unwrap();

    let a_addr = a.udp();
    let eventlist = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n";
    let shows =
        |w: &SipWatcher, text: &str| w.notifies.lock().unwrap().iter().any(|b| b.contains(text));
    let mut carol = SipWatcher::new(a_addr, "carol");
    assert_eq!(
        carol.subscribe_with("sip:buddies@a.test", 600, eventlist),
        200
    );
    wait_for("carol's list to show dave", 10, || shows(&carol, "dave v1"));
    let mut bob = SipWatcher::new(a_addr, "bob");
    let mut alice = SipWatcher::new(a_addr, "alice");
    for w in [&mut bob, &mut alice] {
        assert_eq!(w.subscribe_with("sip:buddies@a.test", 600, eventlist), 200);
    }
    wait_for("bob's list to show dave rejected", 10, || {
        shows(&bob, "reason=\"rejected\"")
    });
    wait_for("alice's list to show the neutral document", 10, || {
        shows(&alice, "<tuple id=\"t0\"")
    });
    b.engine
        .publish_body(&uri(dave), Package::Presence, &pidf(dave, "dave v2"), None)
        .unwrap();
    wait_for("carol's list to show dave's change", 10, || {
        shows(&carol, "dave v2")
    });
    std::thread::sleep(Duration::from_millis(300));
    for (who, w) in [("bob", &bob), ("alice", &alice)] {
        assert!(!shows(w, "dave v"), "{who}'s list showed dave's state");
    }
}

/// A remote domain that never answers the fetch about a joining watcher: the watcher is not
/// let into the shared dialog; once the fetch times out it gets a dialog of its own, which
/// the remote side (a stand-in for b.test on a socket of the test) keeps pending, so the
/// watcher stays pending and is never shown the shared state.
#[test]
fn a_fetch_without_an_answer_gets_the_watcher_a_dialog_of_its_own_not_the_shared_one() {
    let clock = ManualClock::new();
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port_b = fake.local_addr().unwrap().port();
    let port_a = free_port();
    let a = Domain::start_on(
        Arc::new(MemoryStore::new()),
        clock.clone(),
        "a.test",
        port_a,
        "b.test",
        port_b,
        AuthAction::Allow,
        |_| {},
    );
    let dave = "sip:dave@b.test";
    // b.test's stand-in: carol's SUBSCRIBE is answered and followed by an active NOTIFY with
    // dave's state; fetches (Expires: 0) are never answered; any other watcher's SUBSCRIBE is
    // answered and kept pending.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (stop, log) = (
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        seen.clone(),
    );
    let stopping = stop.clone();
    let a_addr = a.udp();
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !stopping.load(Ordering::Relaxed) {
            let Ok((n, _)) = fake.recv_from(&mut buf) else {
                continue;
            };
            let m = SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Datagram).unwrap();
            if m.method() != Some("SUBSCRIBE") {
                continue;
            }
            let from = m.header("From").unwrap().to_string();
            let expires = m.header("Expires").unwrap_or("").trim().to_string();
            log.lock().unwrap().push((from.clone(), expires.clone()));
            if expires == "0" {
                continue; // the fetch: no answer
            }
            let mut reply = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "Call-ID", "CSeq"] {
                for v in m.headers(name) {
                    reply.push_str(&format!("{name}: {v}\r\n"));
                }
            }
            let to = m.header("To").unwrap();
            reply.push_str(&format!(
                "To: {to};tag=bt\r\nContact: <sip:dave@127.0.0.1:{port_b}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
            ));
            fake.send_to(reply.as_bytes(), a_addr).unwrap();
            let (state, body) = if from.contains("carol") {
                ("active;expires=600", pidf(dave, "dave v1"))
            } else {
                ("pending;expires=600", String::new())
            };
            let call_id = m.header("Call-ID").unwrap();
            let notify = format!(
                "NOTIFY sip:a@127.0.0.1:{port_a} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port_b};branch=z9hG4bKfake{n}{len}\r\nMax-Forwards: 70\r\nFrom: <{dave}>;tag=bt\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 1 NOTIFY\r\nContact: <sip:dave@127.0.0.1:{port_b}>\r\nEvent: presence\r\nSubscription-State: {state}\r\n{ctype}Content-Length: {len}\r\n\r\n{body}",
                len = body.len(),
                ctype = if body.is_empty() { "" } else { "Content-Type: application/pidf+xml\r\n" },
            );
            fake.send_to(notify.as_bytes(), a_addr).unwrap();
        }
    });
    let carol = subscribe(&a.engine, "sip:carol@a.test", dave);
    wait_for("carol to see dave", 10, || a.all_saw(&[carol], "dave v1"));
    let bob = subscribe(&a.engine, "sip:bob@a.test", dave);
    wait_for("the fetch about bob", 10, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(from, expires)| from.contains("bob") && expires == "0")
    });
    let state = |id| a.engine.subscription(id).unwrap().state;
    assert_eq!(state(bob), impp::engine::SubscriptionState::Pending);
    // The fetch's transaction and its wait run out.
    advance(&clock, Duration::from_secs(33), &[&a.engine], &[&a.server]);
    wait_for("a dialog of bob's own", 10, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(from, expires)| from.contains("bob") && expires != "0")
    });
    std::thread::sleep(Duration::from_millis(200));
    a.engine.sync().unwrap();
    assert_eq!(state(bob), impp::engine::SubscriptionState::Pending);
    let shown = a
        .seen
        .lock()
        .unwrap()
        .get(&bob)
        .cloned()
        .unwrap_or_default();
    assert!(shown.iter().all(|b| !b.contains("dave v1")), "{shown:?}");
    let stats = a.server.federation_stats();
    assert_eq!(
        (stats.backends, stats.own_dialogs, stats.probes_sent),
        (2, 1, 1),
        "{stats:?}"
    );
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

/// A measurement: `FED_WATCHERS` watchers in a.test (default 20,000) over `FED_PRESENTITIES`
/// presentities of b.test (default 200): the time until every back-end subscription is made
/// and every watcher has the first document, then the time for one change of every
/// presentity to reach every watcher, and the NOTIFYs that crossed.
#[test]
#[ignore = "a measurement; run explicitly"]
fn federation_scale() {
    let env =
        |name: &str, default: usize| std::env::var(name).map_or(default, |v| v.parse().unwrap());
    let (watchers, presentities) = (env("FED_WATCHERS", 20_000), env("FED_PRESENTITIES", 200));
    let (a, b) = two_domains(AuthAction::Allow, |_| {});
    let names: Vec<String> = (0..presentities)
        .map(|i| format!("sip:p{i}@b.test"))
        .collect();
    for p in &names {
        b.engine
            .publish_body(&uri(p), Package::Presence, &pidf(p, "v1"), None)
            .unwrap();
    }
    let started = Instant::now();
    let ids: Vec<SubscriptionId> = (0..watchers)
        .map(|i| {
            subscribe(
                &a.engine,
                &format!("sip:w{i}@a.test"),
                &names[i % presentities],
            )
        })
        .collect();
    wait_for("every watcher to see v1", 120, || a.all_saw(&ids, "v1"));
    let setup = started.elapsed();
    assert_eq!(b.remote_subscriptions(), presentities);
    let before = a.server.federation_stats().notifies_received;
    let started = Instant::now();
    for p in &names {
        b.engine
            .publish_body(&uri(p), Package::Presence, &pidf(p, "v2"), None)
            .unwrap();
    }
    wait_for("every watcher to see v2", 120, || a.all_saw(&ids, "v2"));
    let fan_out = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let crossed = a.server.federation_stats().notifies_received - before;
    assert_eq!(crossed as usize, presentities);
    eprintln!(
        "federation_scale: {watchers} watchers over {presentities} presentities: subscribed and first state in {setup:?}; \
         one change per presentity reached every watcher in {fan_out:?} with {crossed} NOTIFYs across"
    );
}
