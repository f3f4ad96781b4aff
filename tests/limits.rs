//! The bounds on the state one user, watcher or presentity makes the engine keep
//! (`EngineConfig::state_limits`), through the Rust API on a manual clock: below a bound
//! everything works; at it the request is refused with a clear error (a message with a
//! `mailbox-full` outcome), nothing changes, and the refusal is counted; state that ends
//! (delivered, unsubscribed, expired, logged out) makes room again; what a restart takes
//! back counts too.

use std::sync::Arc;
use std::time::Duration;

use impp::engine::{
    AuthAction, AuthRule, Delivery, DeliveryOutcome, Engine, EngineConfig, Event, FailureReason,
    ManualClock, Message, MessageId, OutgoingMessage, Package, Port, PortOptions, StateLimits,
    SubscribeRequest, SubscriptionId, WatcherMatch,
};
use impp::store::{MemoryStore, Store};
use impp::uri::Uri;
use impp::Error;

const ALICE: &str = "sip:alice@example.test";
const BOB: &str = "sip:bob@example.test";
const CAROL: &str = "sip:carol@example.test";

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn config(clock: &Arc<ManualClock>, store: Arc<dyn Store>, limits: StateLimits) -> EngineConfig {
    EngineConfig {
        workers: 4,
        default_policy: AuthAction::Allow,
        clock: clock.clone(),
        store,
        state_limits: limits,
        ..EngineConfig::default()
    }
}

fn engine(limits: StateLimits) -> (Engine, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let engine = Engine::new(config(&clock, Arc::new(MemoryStore::new()), limits)).unwrap();
    (engine, clock)
}

/// The delivery outcomes so far, by message id (`stored` comes once the store has the
/// message, after refusals told at once).
fn outcomes(engine: &Engine) -> Vec<(MessageId, DeliveryOutcome)> {
    engine.sync().unwrap();
    let mut out = Vec::new();
    while let Some(e) = engine.next_event(Some(Duration::ZERO)) {
        if let Event::Delivery(Delivery {
            message, outcome, ..
        }) = e
        {
            out.push((message, outcome));
        }
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

fn send(engine: &Engine, from: &str, to: &str) -> MessageId {
    engine
        .send_message(OutgoingMessage::new(uri(from), uri(to), "text/plain", "hi"))
        .unwrap()
}

const STORED: DeliveryOutcome = DeliveryOutcome::Stored;
const FULL: DeliveryOutcome = DeliveryOutcome::Failed(FailureReason::MailboxFull);

#[test]
fn a_mailbox_takes_so_many_from_one_sender_and_so_many_in_all() {
    let (e, _clock) = engine(StateLimits {
        max_offline_messages_per_user: 3,
        max_offline_messages_per_sender: 2,
        ..StateLimits::default()
    });
    // Bob is offline: Alice fills her share, Carol the rest; one more of each is refused.
    let ids: Vec<MessageId> = [ALICE, ALICE, ALICE, CAROL, CAROL, "sip:dave@example.test"]
        .iter()
        .map(|from| send(&e, from, BOB))
        .collect();
    let want = [STORED, STORED, FULL, STORED, FULL, FULL];
    assert_eq!(
        outcomes(&e),
        ids.iter().copied().zip(want).collect::<Vec<_>>()
    );
    let stats = e.stats();
    assert_eq!(stats.messages_waiting, 3, "nothing refused was kept");
    assert_eq!(stats.messages_refused, 3);
    assert_eq!(stats.messages_failed, 3);
    // Another user's mailbox is its own.
    let other = send(&e, ALICE, CAROL);
    assert_eq!(outcomes(&e), [(other, STORED)]);

    // Bob logs in: the three are delivered, and the mailbox takes messages again.
    e.login(&uri(BOB), "phone", None).unwrap();
    let delivered = outcomes(&e);
    assert_eq!(delivered.len(), 3);
    assert!(delivered
        .iter()
        .all(|(_, o)| *o == DeliveryOutcome::Delivered));
    e.logout(&uri(BOB), "phone").unwrap();
    let again = [send(&e, ALICE, BOB), send(&e, ALICE, BOB)];
    assert_eq!(outcomes(&e), [(again[0], STORED), (again[1], STORED)]);
    assert_eq!(e.stats().messages_refused, 3);
}

#[test]
fn messages_waiting_behind_a_handover_count_and_is_composing_stays_offline() {
    let (e, _clock) = engine(StateLimits {
        max_offline_messages_per_user: 1,
        ..StateLimits::default()
    });
    // Bob's registered device is reached through a transport: while it has not taken the
    // first message, the next ones wait in his mailbox, which holds one.
    let port = e.open_port(PortOptions::default()).unwrap();
    let device = "sip:bob@192.0.2.7:5062";
    e.login_at(&uri(BOB), device, Some("udp:192.0.2.7:5062"), Some(3600))
        .unwrap();
    let first = send(&e, ALICE, BOB);
    let queued = send(&e, CAROL, BOB);
    let refused = send(&e, ALICE, BOB);
    assert_eq!(outcomes(&e), [(refused, FULL)]);
    let relayed = |port: &Port| -> Vec<Message> {
        port.next_events(64, Some(Duration::ZERO))
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(*m),
                _ => None,
            })
            .collect()
    };
    let got = relayed(&port);
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [first]);
    e.report_handover(&got[0], true).unwrap();
    assert_eq!(outcomes(&e), [(first, DeliveryOutcome::Delivered)]);
    let got = relayed(&port);
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [queued]);
    drop(port);

    // An is-composing indication for an offline user fails as `offline`, as before.
    let typing = e
        .send_message(OutgoingMessage::new(
            uri(ALICE),
            uri(CAROL),
            "application/im-iscomposing+xml",
            "<isComposing/>",
        ))
        .unwrap();
    assert_eq!(
        outcomes(&e),
        [(typing, DeliveryOutcome::Failed(FailureReason::Offline))]
    );
    assert_eq!(e.stats().messages_refused, 1);
}

#[test]
fn stored_messages_taken_back_at_a_restart_count_against_the_mailbox() {
    let clock = ManualClock::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let limits = StateLimits {
        max_offline_messages_per_sender: 2,
        ..StateLimits::default()
    };
    {
        let e = Engine::new(config(&clock, store.clone(), limits)).unwrap();
        send(&e, ALICE, BOB);
        send(&e, ALICE, BOB);
        assert_eq!(outcomes(&e).len(), 2);
    }
    let mut c = config(&clock, store.clone(), limits);
    c.workers = 3; // another shard count
    let e = Engine::new(c).unwrap();
    let refused = send(&e, ALICE, BOB);
    let welcome = send(&e, CAROL, BOB);
    assert_eq!(outcomes(&e), [(refused, FULL), (welcome, STORED)]);
    assert_eq!(store.load().unwrap().messages.len(), 3);
}

fn subscribe(e: &Engine, watcher: &str, presentity: &str) -> Result<SubscriptionId, Error> {
    e.subscribe(SubscribeRequest::new(
        uri(watcher),
        uri(presentity),
        Package::Presence,
    ))
}

fn presentity(n: usize) -> String {
    format!("sip:p{n}@example.test")
}

#[test]
fn a_watcher_holds_so_many_subscriptions_over_every_shard() {
    let (e, clock) = engine(StateLimits {
        max_subscriptions_per_watcher: 3,
        ..StateLimits::default()
    });
    // Four shards: the watcher's subscriptions are spread over them, the bound is over all.
    let ids: Vec<SubscriptionId> = (0..3)
        .map(|n| subscribe(&e, BOB, &presentity(n)).unwrap())
        .collect();
    let before = e.stats();
    let refused = subscribe(&e, BOB, &presentity(3));
    assert!(
        matches!(&refused, Err(Error::LimitReached(m)) if m.contains(BOB)),
        "{refused:?}"
    );
    e.sync().unwrap();
    let after = e.stats();
    assert_eq!(after.subscriptions_refused, 1);
    assert_eq!(after.subscriptions_active, 3);
    assert_eq!(after.presentities, before.presentities, "nothing was made");
    // Other watchers are not bounded by Bob's count; a fetch holds nothing and passes.
    subscribe(&e, CAROL, &presentity(3)).unwrap();
    let mut fetch = SubscribeRequest::new(uri(BOB), uri(&presentity(3)), Package::Presence);
    fetch.expires = Some(0);
    e.subscribe(fetch).unwrap();
    // Winfo subscriptions count too: Bob watching his own watchers is one more.
    let mut winfo = SubscribeRequest::new(uri(BOB), uri(BOB), Package::PresenceWinfo);
    winfo.expires = None;
    assert!(matches!(e.subscribe(winfo), Err(Error::LimitReached(_))));

    // Ending one makes room; so does expiry.
    e.unsubscribe(ids[0]).unwrap();
    let fourth = subscribe(&e, BOB, &presentity(3)).unwrap();
    assert!(matches!(
        subscribe(&e, BOB, &presentity(4)),
        Err(Error::LimitReached(_))
    ));
    clock.advance(Duration::from_secs(3601));
    e.sync().unwrap();
    assert!(e.subscription(fourth).is_err(), "expired");
    for n in 4..7 {
        subscribe(&e, BOB, &presentity(n)).unwrap();
    }
    assert_eq!(e.stats().subscriptions_refused, 3);
}

#[test]
fn subscriptions_refused_or_rejected_at_once_leave_no_count_behind() {
    let (e, _clock) = engine(StateLimits {
        max_subscriptions_per_watcher: 1,
        ..StateLimits::default()
    });
    // Alice blocks Bob: each attempt is rejected and ends at once, holding nothing.
    e.set_rule(AuthRule {
        presentity: uri(ALICE),
        watcher: WatcherMatch::Watcher(uri(BOB)),
        action: AuthAction::Block,
        target: None,
    })
    .unwrap();
    for _ in 0..3 {
        subscribe(&e, BOB, ALICE).unwrap();
    }
    e.sync().unwrap();
    subscribe(&e, BOB, CAROL).unwrap();
    assert!(matches!(
        subscribe(&e, BOB, &presentity(1)),
        Err(Error::LimitReached(_))
    ));
    assert!(matches!(
        subscribe(&e, BOB, &presentity(1)),
        Err(Error::LimitReached(_))
    ));
    e.sync().unwrap();
    assert_eq!(e.stats().subscriptions_active, 1);
    assert_eq!(e.stats().subscriptions_refused, 2);
}

#[test]
fn a_presentity_has_so_many_watchers_over_every_package() {
    let (e, _clock) = engine(StateLimits {
        max_subscriptions_per_presentity: 2,
        ..StateLimits::default()
    });
    let bob = subscribe(&e, BOB, ALICE).unwrap();
    // Alice's own watcher-information subscription counts as one of hers.
    e.subscribe(SubscribeRequest::new(
        uri(ALICE),
        uri(ALICE),
        Package::PresenceWinfo,
    ))
    .unwrap();
    let refused = subscribe(&e, CAROL, ALICE);
    assert!(
        matches!(&refused, Err(Error::LimitReached(m)) if m.contains(ALICE)),
        "{refused:?}"
    );
    assert!(matches!(
        e.subscribe(SubscribeRequest::new(
            uri(CAROL),
            uri(ALICE),
            Package::Dialog
        )),
        Err(Error::LimitReached(_))
    ));
    // Another presentity is not bounded by Alice's count.
    subscribe(&e, CAROL, BOB).unwrap();
    e.sync().unwrap();
    assert_eq!(e.stats().subscriptions_refused, 2);
    assert_eq!(e.stats().subscriptions_active, 3);
    e.unsubscribe(bob).unwrap();
    subscribe(&e, CAROL, ALICE).unwrap();
}

#[test]
fn remote_subscriptions_taken_back_at_a_restart_count_against_their_watcher() {
    let clock = ManualClock::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let limits = StateLimits {
        max_subscriptions_per_watcher: 2,
        ..StateLimits::default()
    };
    let remote = |n: usize| {
        let mut r = SubscribeRequest::new(uri(BOB), uri(&presentity(n)), Package::Presence);
        r.target = Some(Arc::from(&b"dialog"[..]));
        r
    };
    {
        let e = Engine::new(config(&clock, store.clone(), limits)).unwrap();
        e.subscribe(remote(0)).unwrap();
        e.subscribe(remote(1)).unwrap();
        e.sync().unwrap();
    }
    let e = Engine::new(config(&clock, store, limits)).unwrap();
    assert_eq!(e.remote_subscriptions().unwrap().len(), 2);
    assert!(matches!(
        e.subscribe(remote(2)),
        Err(Error::LimitReached(_))
    ));
}

#[test]
fn a_user_has_so_many_endpoints_and_a_refresh_always_passes() {
    let (e, clock) = engine(StateLimits {
        max_endpoints_per_user: 2,
        ..StateLimits::default()
    });
    let bob = uri(BOB);
    e.login(&bob, "phone", Some(600)).unwrap();
    e.login_at(&bob, "laptop", Some("udp:192.0.2.1:5060"), Some(3600))
        .unwrap();
    let refused = e.login(&bob, "tablet", None);
    assert!(
        matches!(&refused, Err(Error::LimitReached(m)) if m.contains(BOB)),
        "{refused:?}"
    );
    let names = |e: &Engine| {
        let mut n: Vec<String> = e
            .endpoints(&bob)
            .unwrap()
            .into_iter()
            .map(|i| i.endpoint)
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&e), ["laptop", "phone"]);
    assert_eq!(e.login(&bob, "phone", Some(1200)).unwrap(), 1200);
    let stats = e.stats();
    assert_eq!((stats.endpoints, stats.endpoints_refused), (2, 1));
    // Another user is not bounded by Bob's count.
    e.login(&uri(CAROL), "tablet", None).unwrap();
    // A logout makes room, and so does an expiry.
    e.logout(&bob, "laptop").unwrap();
    e.login(&bob, "tablet", Some(600)).unwrap();
    assert!(matches!(
        e.login(&bob, "watch", None),
        Err(Error::LimitReached(_))
    ));
    clock.advance(Duration::from_secs(601));
    e.sync().unwrap();
    assert_eq!(names(&e), ["phone"]);
    e.login(&bob, "watch", None).unwrap();
    assert_eq!(e.stats().endpoints_refused, 2);
}

#[test]
fn every_bound_is_at_least_one_and_the_defaults_are_documented() {
    let d = StateLimits::default();
    assert_eq!(
        (
            d.max_offline_messages_per_user,
            d.max_offline_messages_per_sender,
            d.max_subscriptions_per_watcher,
            d.max_subscriptions_per_presentity,
            d.max_endpoints_per_user
        ),
        (1000, 100, 1000, 10000, 10)
    );
    assert_eq!(EngineConfig::default().state_limits, d);
    let config = EngineConfig {
        state_limits: StateLimits {
            max_subscriptions_per_presentity: 0,
            ..d
        },
        ..EngineConfig::default()
    };
    assert!(matches!(
        Engine::new(config),
        Err(Error::InvalidArgument(m)) if m.contains("max_subscriptions_per_presentity")
    ));
}
