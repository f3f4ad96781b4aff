//! An engine reopened on the same store: subscriptions of remote watchers come back with
//! their targets, decisions and filters, and are notified again; what ran out while the
//! engine was down ends at once.

use std::sync::Arc;
use std::time::Duration;

use impp::doc::filter::FilterSet;
use impp::doc::pidf::{Basic, Presence, Tuple};
use impp::doc::Limits;
use impp::engine::{
    AuthAction, Document, Engine, EngineConfig, Event, ManualClock, Notification, Package,
    SubscribeRequest, SubscriptionState, TerminationReason,
};
use impp::store::{MemoryStore, Store};
use impp::uri::Uri;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn engine(clock: &Arc<ManualClock>, store: &Arc<dyn Store>, workers: usize) -> Engine {
    Engine::new(EngineConfig {
        workers,
        default_policy: AuthAction::Confirm,
        clock: clock.clone(),
        store: store.clone(),
        ..EngineConfig::default()
    })
    .unwrap()
}

fn events(engine: &Engine) -> Vec<Event> {
    engine.sync().unwrap();
    std::iter::from_fn(|| engine.next_event(Some(Duration::ZERO))).collect()
}

fn notifications(events: &[Event]) -> Vec<&Notification> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Notification(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn tuples(n: &Notification) -> Vec<String> {
    match n.document.as_deref() {
        Some(Document::Presence(p)) => p.tuples.iter().map(|t| t.id.clone()).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn remote_subscriptions_come_back_with_target_decision_and_filter() {
    let clock = ManualClock::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let alice = uri("sip:alice@example.test");
    let filter = FilterSet::parse(
        r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">
             <ns-bindings>
               <ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/>
             </ns-bindings>
             <filter id="f1" uri="sip:alice@example.test">
               <what><include type="xpath">//pidf:tuple[@id="phone"]</include></what>
             </filter>
           </filter-set>"#,
        &Limits::DEFAULT,
    )
    .unwrap();
    let (approved, waiting, short, local);
    {
        let e = engine(&clock, &store, 2);
        let mut doc = Presence::new("sip:alice@example.test");
        doc.tuples.push(Tuple::new("phone", Basic::Open));
        doc.tuples.push(Tuple::new("desk", Basic::Closed));
        e.publish(&alice, doc.into(), Some(7200)).unwrap();

        let remote = |watcher: &str, expires: u32, target: &[u8]| {
            let mut r = SubscribeRequest::new(uri(watcher), alice.clone(), Package::Presence);
            r.target = Some(target.to_vec().into());
            r.expires = Some(expires);
            r
        };
        let mut r = remote("sip:bob@remote.test", 3600, b"dialog-bob");
        r.filter = Some(filter.clone());
        approved = e.subscribe(r).unwrap();
        e.authorize(approved, AuthAction::Allow).unwrap();
        waiting = e
            .subscribe(remote("sip:carol@remote.test", 3600, b"dialog-carol"))
            .unwrap();
        short = e
            .subscribe(remote("sip:dave@remote.test", 600, b"dialog-dave"))
            .unwrap();
        e.authorize(short, AuthAction::Allow).unwrap();
        local = e
            .subscribe(SubscribeRequest::new(
                uri("sip:erin@example.test"),
                alice.clone(),
                Package::Presence,
            ))
            .unwrap();
        let _ = local;
        assert_eq!(e.remote_subscriptions().unwrap().len(), 3);
        events(&e);
    }
    // Down for 20 minutes: dave's 10-minute subscription ran out.
    clock.advance(Duration::from_secs(1200));
    let e = engine(&clock, &store, 3);
    let got = events(&e);
    let remote = e.remote_subscriptions().unwrap();
    assert_eq!(remote.len(), 2, "{remote:?}");
    let by_target = |t: &[u8]| {
        remote
            .iter()
            .find(|s| s.target.as_deref() == Some(t))
            .unwrap()
            .clone()
    };
    let bob = by_target(b"dialog-bob");
    let carol = by_target(b"dialog-carol");
    assert_eq!(bob.state, SubscriptionState::Active);
    assert_eq!(bob.expires_in, Duration::from_secs(2400));
    assert_eq!(carol.state, SubscriptionState::Pending);
    let notes = notifications(&got);
    // Bob is told the current state again, through his filter (the phone only).
    let bob_note = notes.iter().find(|n| n.subscription == bob.id).unwrap();
    assert_eq!(tuples(bob_note), ["phone"]);
    // Carol, still pending, learns nothing but her state; Alice is asked again.
    assert!(notes
        .iter()
        .filter(|n| n.subscription == carol.id)
        .all(|n| n.document.is_none()));
    assert!(got.iter().any(|e| matches!(e,
        Event::AuthorizationRequested { subscription, .. } if *subscription == carol.id)));
    // Dave's ended with a timeout.
    assert!(notes
        .iter()
        .any(|n| n.watcher.to_string() == "sip:dave@remote.test"
            && n.state == SubscriptionState::Terminated(Some(TerminationReason::Timeout))));
    // The local watcher is gone with the old process.
    assert!(notes
        .iter()
        .all(|n| n.watcher.to_string() != "sip:erin@example.test"));
    // Ids from the old run are still good where the shard count allowed it.
    let _ = (approved, waiting);
    // Restored subscriptions live on: refresh works, unsubscribing removes the row.
    e.refresh_subscription(bob.id, 3600).unwrap();
    e.unsubscribe(carol.id).unwrap();
    e.sync().unwrap();
    assert_eq!(store.load().unwrap().subscriptions.len(), 1);
    // And a third engine sees just bob.
    drop(e);
    let e = engine(&clock, &store, 2);
    assert_eq!(e.remote_subscriptions().unwrap().len(), 1);
}
