//! The list client (RFC 4662, subscriber side): an engine of b.test with an account
//! `sip:bob@a.test` subscribes to a resource list at a.test (`SipServer::subscribe_list`),
//! and each resource's state reaches b.test's local watchers of that resource as ordinary
//! notifications: against libimpp's own list server (two SIP servers in one process), and
//! against a scripted list server sending faulty bodies, which are answered `400` and change
//! nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::engine::{
    AuthAction, Clock, Engine, EngineConfig, Event, ManualClock, Package, ResourceList,
    SubscribeRequest, SubscriptionId,
};
use impp::sip::agent::Account;
use impp::sip::route::NextHop;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::{Credential, MemoryStore};

mod common;
use common::clock::advance;
use common::fixtures::{pidf, uri, wait_for};

/// Per subscription, the bodies of its notifications ("" for none).
type Seen = Arc<Mutex<HashMap<SubscriptionId, Vec<String>>>>;

fn last(seen: &Seen, id: SubscriptionId) -> Option<String> {
    seen.lock()
        .unwrap()
        .get(&id)
        .and_then(|b| b.last().cloned())
}

fn last_saw(seen: &Seen, id: SubscriptionId, text: &str) -> bool {
    last(seen, id).is_some_and(|b| b.contains(text))
}

/// An engine of `domain` on `clock` (every watcher allowed), recording its notifications.
fn engine(domain: &str, clock: Arc<dyn Clock>) -> (Arc<Engine>, Seen) {
    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec![domain.into()],
            default_policy: AuthAction::Allow,
            workers: 2,
            clock,
            store: Arc::new(MemoryStore::new()),
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

/// b.test's engine and SIP server, with the account `sip:bob@a.test` whose server is at
/// `registrar`.
fn client(clock: &Arc<ManualClock>, registrar: SocketAddr) -> (Arc<Engine>, Seen, SipServer) {
    let (engine, seen) = engine("b.test", clock.clone());
    let account = Account::new(
        uri("sip:bob@a.test"),
        "bob",
        "bob-pw",
        NextHop {
            proto: Proto::Udp,
            addr: registrar,
        },
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    config.workers = 1;
    let server = SipServer::start(engine.clone(), config).unwrap();
    (engine, seen, server)
}

/// Moves the clock past the list server's batch interval (1 s), so that a change that
/// reached it by now is notified; called while waiting, as a change reaches it on its own
/// threads.
fn step(clock: &ManualClock, a: &Engine, b: &Engine, a_server: &SipServer, b_server: &SipServer) {
    advance(
        clock,
        Duration::from_millis(1100),
        &[a, b],
        &[a_server, b_server],
    );
}

/// dave of b.test watches `resource` in-process.
fn watch(engine: &Engine, resource: &str) -> SubscriptionId {
    engine
        .subscribe(SubscribeRequest::new(
            uri("sip:dave@b.test"),
            uri(resource),
            Package::Presence,
        ))
        .unwrap()
}

#[test]
fn a_list_at_another_server_feeds_local_watchers_of_its_resources() {
    let clock = ManualClock::new();
    // a.test: users, a list of alice and carol, alice's state already published.
    let (a, _) = engine("a.test", clock.clone());
    for user in ["alice", "bob", "carol"] {
        a.set_user(Credential::new(
            uri(&format!("sip:{user}@a.test")),
            "a.test",
            &format!("{user}-pw"),
        ))
        .unwrap();
    }
    let list_uri = uri("sip:buddies@a.test");
    let mut list = ResourceList::new(list_uri.clone());
    list.packages = vec![Package::Presence];
    list.push_resource(uri("sip:alice@a.test"), None);
    list.push_resource(uri("sip:carol@a.test"), None);
    a.set_list(list).unwrap();
    let alice_etag = a
        .publish_body(
            &uri("sip:alice@a.test"),
            Package::Presence,
            &pidf("sip:alice@a.test", "at her desk"),
            None,
        )
        .unwrap();
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.workers = 1;
    let a_server = SipServer::start(a.clone(), config).unwrap();
    let a_addr = a_server.local_addrs()[0].addr;

    // b.test: dave watches both resources; nothing is known of them yet.
    let (b, seen, b_server) = client(&clock, a_addr);
    wait_for("the account to register", 10, || {
        b_server.account_registered(0)
    });
    let alice = watch(&b, "sip:alice@a.test");
    let carol = watch(&b, "sip:carol@a.test");
    b.sync().unwrap();
    assert!(!last_saw(&seen, alice, "at her desk"));

    // One list subscription: full state gives alice's state to dave.
    b_server
        .subscribe_list(0, &list_uri, Package::Presence)
        .unwrap();
    wait_for("dave to see alice 'at her desk'", 10, || {
        last_saw(&seen, alice, "at her desk")
    });

    // Changes at a.test come as partial state after the batch interval.
    let carol_etag = a
        .publish_body(
            &uri("sip:carol@a.test"),
            Package::Presence,
            &pidf("sip:carol@a.test", "out for lunch"),
            None,
        )
        .unwrap();
    wait_for("dave to see carol 'out for lunch'", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, carol, "out for lunch")
    });
    assert!(last_saw(&seen, alice, "at her desk"));
    a.modify_publication(
        &alice_etag,
        Package::Presence
            .parse(
                &pidf("sip:alice@a.test", "in a meeting"),
                &Default::default(),
            )
            .unwrap(),
    )
    .unwrap();
    wait_for("dave to see alice 'in a meeting'", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, alice, "in a meeting")
    });
    assert!(last_saw(&seen, carol, "out for lunch"));

    // carol withdraws her state: the list says so, and dave sees her without a document.
    a.remove_publication(&carol_etag).unwrap();
    wait_for("dave to see carol's state gone", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        !last_saw(&seen, carol, "out for lunch")
    });

    // Ending the list subscription removes what it mirrored.
    assert!(b_server.unsubscribe_list(0, &list_uri, Package::Presence));
    assert!(!b_server.unsubscribe_list(0, &list_uri, Package::Presence));
    b.sync().unwrap();
    wait_for("dave to see alice's state gone", 10, || {
        !last_saw(&seen, alice, "in a meeting")
    });
}
