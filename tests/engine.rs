//! The engine through its Rust API, with a manual clock: no test sleeps to wait for expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::doc::filter::FilterSet;
use impp::doc::pidf::{Basic, Presence, Tuple};
use impp::doc::rpid::{Activities, Activity};
use impp::doc::winfo::{WatcherEvent, WatcherStatus};
use impp::doc::{DocState, Limits};
use impp::engine::{
    AuthAction, AuthRule, Document, Engine, EngineConfig, Event, ManualClock, Notification,
    Package, SubscribeRequest, SubscriptionId, SubscriptionState, TerminationReason, WatcherMatch,
};
use impp::uri::Uri;
use impp::Error;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
}

fn world_with(policy: AuthAction, tweak: impl FnOnce(&mut EngineConfig)) -> World {
    let clock = ManualClock::new();
    let mut config = EngineConfig {
        workers: 2,
        default_policy: policy,
        clock: clock.clone(),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    World {
        engine: Engine::new(config).unwrap(),
        clock,
    }
}

fn world(policy: AuthAction) -> World {
    world_with(policy, |_| {})
}

impl World {
    /// Every event produced so far.
    fn events(&self) -> Vec<Event> {
        self.engine.sync().unwrap();
        let mut out = Vec::new();
        while let Some(e) = self.engine.next_event(Some(Duration::ZERO)) {
            out.push(e);
        }
        out
    }

    fn notifications(&self) -> Vec<Notification> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Notification(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
        self.engine.sync().unwrap();
    }

    fn subscribe(&self, watcher: &str, presentity: &str) -> SubscriptionId {
        self.engine
            .subscribe(SubscribeRequest::new(
                uri(watcher),
                uri(presentity),
                Package::Presence,
            ))
            .unwrap()
    }
}

fn presence(entity: &str, tuples: &[(&str, Basic)]) -> Document {
    let mut p = Presence::new(entity);
    for (id, b) in tuples {
        p.tuples.push(Tuple::new(*id, *b));
    }
    Document::Presence(p)
}

fn pidf(n: &Notification) -> &Presence {
    match n.document.as_deref() {
        Some(Document::Presence(p)) => p,
        other => panic!("expected a presence document, got {other:?}"),
    }
}

fn tuple_ids(n: &Notification) -> Vec<String> {
    let mut ids: Vec<String> = pidf(n).tuples.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    ids
}

const ALICE: &str = "sip:alice@example.test";
const BOB: &str = "sip:bob@example.test";
const CAROL: &str = "sip:carol@other.test";

#[test]
fn three_devices_compose_into_one_document() {
    let w = world(AuthAction::Allow);
    let id = w.subscribe(BOB, ALICE);
    let first = w.notifications();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].subscription, id);
    assert_eq!(first[0].state, SubscriptionState::Active);
    assert!(pidf(&first[0]).tuples.is_empty(), "nothing published yet");

    let a = uri(ALICE);
    w.engine
        .publish(&a, presence(ALICE, &[("phone", Basic::Open)]), None)
        .unwrap();
    w.engine
        .publish(&a, presence(ALICE, &[("desk", Basic::Closed)]), None)
        .unwrap();
    let mut laptop = Presence::new(ALICE);
    laptop.tuples.push(Tuple::new("laptop", Basic::Open));
    let mut person = impp::doc::datamodel::Person::new("p");
    person.activities = Some(Activities::new(vec![Activity::OnThePhone]));
    laptop.persons.push(person);
    w.engine.publish(&a, laptop.into(), None).unwrap();

    let notes = w.notifications();
    assert_eq!(notes.len(), 3, "one notification per publication");
    let last = notes.last().unwrap();
    assert_eq!(tuple_ids(last), ["desk", "laptop", "phone"]);
    assert_eq!(pidf(last).persons.len(), 1);
    assert!(pidf(last).is_open());
    assert_eq!(w.engine.stats().publications, 3);
}

/// A SIP PUBLISH that modifies (RFC 3903 §4.4) replaces the document and the expiry in one
/// step: one new tag, the old one gone; a refused expiry or document changes nothing.
#[test]
fn modify_with_expiry_is_one_step_and_refusals_change_nothing() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    w.subscribe(BOB, ALICE);
    let tag = w
        .engine
        .publish(&a, presence(ALICE, &[("t", Basic::Open)]), Some(120))
        .unwrap();
    w.events();

    // Refusals: too brief, zero, another package, an unknown tag. Nothing changes, no
    // notification, the tag still works.
    for refused in [
        w.engine
            .modify_publication_expiring(&tag, presence(ALICE, &[("t", Basic::Closed)]), 1),
        w.engine
            .modify_publication_expiring(&tag, presence(ALICE, &[("t", Basic::Closed)]), 0),
        w.engine
            .modify_publication_expiring("zz-1", presence(ALICE, &[("t", Basic::Closed)]), 120),
    ] {
        assert!(refused.is_err(), "{refused:?}");
    }
    assert!(matches!(
        w.engine
            .modify_publication_expiring(&tag, presence(ALICE, &[("t", Basic::Closed)]), 1),
        Err(Error::IntervalTooBrief(_))
    ));
    assert!(w.notifications().is_empty());

    // Accepted at 100 s with 300 s more: alive at 350 s, where the first expiry (120 s)
    // would have withdrawn it; the document is the new one.
    w.advance(100);
    let tag2 = w
        .engine
        .modify_publication_expiring(&tag, presence(ALICE, &[("t", Basic::Closed)]), 300)
        .unwrap();
    assert_ne!(tag2, tag);
    assert!(matches!(
        w.engine.refresh_publication(&tag, 120),
        Err(Error::UnknownEntityTag(_))
    ));
    let n = w.notifications();
    assert_eq!(n.len(), 1, "one notification for the one change");
    assert_eq!(pidf(&n[0]).tuples[0].status.basic, Some(Basic::Closed));
    w.advance(250);
    assert_eq!(w.engine.stats().publications, 1);
    w.advance(51);
    assert_eq!(w.engine.stats().publications, 0);
}

#[test]
fn publication_lifecycle_and_unknown_tags() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    w.subscribe(BOB, ALICE);
    w.events();
    let tag = w
        .engine
        .publish(&a, presence(ALICE, &[("t", Basic::Open)]), Some(120))
        .unwrap();

    // Refresh extends and gives a new tag; the old one stops working.
    w.advance(100);
    let tag2 = w.engine.refresh_publication(&tag, 120).unwrap();
    assert_ne!(tag2, tag);
    assert!(matches!(
        w.engine.refresh_publication(&tag, 120),
        Err(Error::UnknownEntityTag(_))
    ));
    w.advance(100); // 200 s after the first publish: alive thanks to the refresh
    assert_eq!(w.engine.stats().publications, 1);

    // Modify replaces the document.
    let tag3 = w
        .engine
        .modify_publication(&tag2, presence(ALICE, &[("t", Basic::Closed)]))
        .unwrap();
    let n = w.notifications();
    assert_eq!(
        pidf(n.last().unwrap()).tuples[0].status.basic,
        Some(Basic::Closed)
    );

    // Expiry withdraws it and re-notifies.
    w.advance(121);
    let events = w.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::PublicationExpired { etag, .. } if *etag == tag3)));
    let n = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Notification(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert!(pidf(n).tuples.is_empty());
    assert!(matches!(
        w.engine.refresh_publication(&tag3, 120),
        Err(Error::UnknownEntityTag(_))
    ));
    assert!(matches!(
        w.engine.remove_publication("zz-1"),
        Err(Error::UnknownEntityTag(_))
    ));
    assert!(matches!(
        w.engine.remove_publication("garbage"),
        Err(Error::UnknownEntityTag(_))
    ));

    // Remove.
    let t = w
        .engine
        .publish(&a, presence(ALICE, &[("x", Basic::Open)]), None)
        .unwrap();
    w.engine.remove_publication(&t).unwrap();
    assert!(matches!(
        w.engine.remove_publication(&t),
        Err(Error::UnknownEntityTag(_))
    ));
    assert_eq!(w.engine.stats().publications, 0);

    // Bounds.
    assert!(matches!(
        w.engine.publish(&a, presence(ALICE, &[]), Some(10)),
        Err(Error::IntervalTooBrief(_))
    ));
    assert!(matches!(
        w.engine.publish(&a, presence(ALICE, &[]), Some(0)),
        Err(Error::InvalidArgument(_))
    ));
    // A bad body changes nothing.
    assert!(w
        .engine
        .publish_body(&a, Package::Presence, "<presence/>", None)
        .is_err());
    assert_eq!(w.engine.stats().publications, 0);
}

#[test]
fn subscription_lifecycle_refresh_unsubscribe_expiry_fetch() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    w.engine
        .publish(&a, presence(ALICE, &[("t", Basic::Open)]), Some(86400))
        .unwrap();

    let mut req = SubscribeRequest::new(uri(BOB), a.clone(), Package::Presence);
    req.expires = Some(120);
    let id = w.engine.subscribe(req.clone()).unwrap();
    let first = w.notifications();
    assert_eq!(
        tuple_ids(&first[0]),
        ["t"],
        "the first notification carries the full state"
    );
    assert_eq!(
        w.engine.subscription(id).unwrap().expires_in,
        Duration::from_secs(120)
    );

    w.advance(100);
    w.engine.refresh_subscription(id, 120).unwrap();
    w.advance(100);
    assert_eq!(
        w.engine.subscription(id).unwrap().state,
        SubscriptionState::Active
    );
    w.advance(21);
    let last = w.notifications();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[0].state,
        SubscriptionState::Terminated(Some(TerminationReason::Timeout))
    );
    assert!(last[0].document.is_none());
    assert!(matches!(w.engine.subscription(id), Err(Error::NotFound(_))));

    let id2 = w.engine.subscribe(req.clone()).unwrap();
    w.events();
    w.engine.unsubscribe(id2).unwrap();
    let fin = w.notifications();
    assert_eq!(fin.len(), 1);
    assert!(
        fin[0].state.is_terminated(),
        "unsubscribe sends a final notification"
    );
    assert!(matches!(w.engine.unsubscribe(id2), Err(Error::NotFound(_))));

    // Too brief, too long, fetch.
    req.expires = Some(5);
    assert!(matches!(
        w.engine.subscribe(req.clone()),
        Err(Error::IntervalTooBrief(_))
    ));
    req.expires = Some(10_000_000);
    let long = w.engine.subscribe(req.clone()).unwrap();
    assert_eq!(
        w.engine.subscription(long).unwrap().expires_in,
        Duration::from_secs(86400)
    );
    w.engine.unsubscribe(long).unwrap();
    w.events();
    req.expires = Some(0);
    let fetch = w.engine.subscribe(req).unwrap();
    let n = w.notifications();
    assert_eq!(n.len(), 2, "a fetch gets the state and then ends");
    assert_eq!(tuple_ids(&n[0]), ["t"]);
    assert!(n[1].state.is_terminated());
    assert!(w.engine.subscription(fetch).is_err());
    assert_eq!(w.engine.stats().subscriptions_active, 0);
}

#[test]
fn watching_a_presentity_before_it_exists() {
    let w = world(AuthAction::Allow);
    w.subscribe(BOB, "sip:nobody-yet@example.test");
    let n = w.notifications();
    assert!(pidf(&n[0]).tuples.is_empty());
    w.engine
        .publish(
            &uri("sip:nobody-yet@example.test"),
            presence(ALICE, &[("t", Basic::Open)]),
            None,
        )
        .unwrap();
    let n = w.notifications();
    assert_eq!(tuple_ids(&n[0]), ["t"]);
    assert_eq!(pidf(&n[0]).entity, "sip:nobody-yet@example.test");
}

#[test]
fn confirm_then_approve_then_revoke() {
    let w = world(AuthAction::Confirm);
    let a = uri(ALICE);
    w.engine
        .publish(&a, presence(ALICE, &[("t", Basic::Open)]), None)
        .unwrap();
    let id = w.subscribe(BOB, ALICE);
    let events = w.events();
    assert!(events.iter().any(
        |e| matches!(e, Event::AuthorizationRequested { subscription, .. } if *subscription == id)
    ));
    let pending: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Notification(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, SubscriptionState::Pending);
    assert!(pending[0].document.is_none(), "nothing while pending");
    assert_eq!(w.engine.stats().subscriptions_pending, 1);

    w.engine.authorize(id, AuthAction::Allow).unwrap();
    let n = w.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].state, SubscriptionState::Active);
    assert_eq!(
        tuple_ids(&n[0]),
        ["t"],
        "approval brings a full notification"
    );

    // Revocation through a rule added later.
    w.engine
        .set_rule(AuthRule {
            presentity: a.clone(),
            watcher: WatcherMatch::Watcher(uri(BOB)),
            action: AuthAction::Block,
            target: None,
        })
        .unwrap();
    let n = w.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(
        n[0].state,
        SubscriptionState::Terminated(Some(TerminationReason::Rejected))
    );
    assert!(n[0].document.is_none());
    assert!(w.engine.authorize(id, AuthAction::Allow).is_err());
}

/// `subscriptions`: an operator's view of every live subscription, or one presentity's, in
/// any state and across shards, by id (what `imppd ctl pending` and `subscriptions` show).
#[test]
fn subscriptions_are_listed_by_presentity_and_state() {
    let w = world(AuthAction::Confirm);
    let carol = "sip:carol@example.test";
    let to_alice = w.subscribe(BOB, ALICE);
    let to_carol = w.subscribe(BOB, carol);
    let dave_to_alice = w.subscribe("sip:dave@example.test", ALICE);
    w.engine
        .authorize(dave_to_alice, AuthAction::Allow)
        .unwrap();
    w.engine.sync().unwrap();

    let all = w.engine.subscriptions(None).unwrap();
    let mut ids: Vec<_> = [to_alice, to_carol, dave_to_alice].into();
    ids.sort();
    assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), ids);
    let alices = w.engine.subscriptions(Some(&uri(ALICE))).unwrap();
    assert_eq!(alices.len(), 2);
    assert!(alices.iter().all(|s| s.presentity == uri(ALICE)));
    let state = |id| alices.iter().find(|s| s.id == id).unwrap().state;
    assert_eq!(state(to_alice), SubscriptionState::Pending);
    assert_eq!(state(dave_to_alice), SubscriptionState::Active);
    assert!(w
        .engine
        .subscriptions(Some(&uri("sip:nobody@example.test")))
        .unwrap()
        .is_empty());

    w.engine.unsubscribe(to_carol).unwrap();
    w.engine.sync().unwrap();
    assert!(w
        .engine
        .subscriptions(Some(&uri(carol)))
        .unwrap()
        .is_empty());
}

#[test]
fn a_blocked_watcher_learns_nothing() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    w.engine
        .set_rule(AuthRule {
            presentity: a.clone(),
            watcher: WatcherMatch::Domain("other.test".into()),
            action: AuthAction::Block,
            target: None,
        })
        .unwrap();
    w.engine
        .publish(&a, presence(ALICE, &[("secret-tuple", Basic::Open)]), None)
        .unwrap();
    let id = w.subscribe(CAROL, ALICE);
    w.engine
        .publish(&a, presence(ALICE, &[("second-secret", Basic::Open)]), None)
        .unwrap();
    let events = w.events();
    let mine: Vec<&Notification> = events
        .iter()
        .filter_map(|e| match e {
            Event::Notification(n) if n.subscription == id => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        mine[0].state,
        SubscriptionState::Terminated(Some(TerminationReason::Rejected))
    );
    for n in &mine {
        assert!(n.document.is_none() && n.full_state.is_none());
    }
    let dump = format!("{mine:?}");
    assert!(!dump.contains("secret"), "{dump}");
}

#[test]
fn a_polite_blocked_watcher_sees_only_the_neutral_document() {
    let w = world(AuthAction::PoliteBlock);
    let a = uri(ALICE);
    let mut doc = Presence::new(ALICE);
    let mut t = Tuple::new("secret-phone", Basic::Open);
    t.notes.push(impp::doc::Note::new("in the secret meeting"));
    doc.tuples.push(t);
    w.engine.publish(&a, doc.into(), None).unwrap();
    let id = w.subscribe(BOB, ALICE);
    w.engine
        .publish(&a, presence(ALICE, &[("secret-desk", Basic::Open)]), None)
        .unwrap();
    let n = w.notifications();
    assert!(!n.is_empty());
    for n in n.iter().filter(|n| n.subscription == id) {
        assert_eq!(n.state, SubscriptionState::Active, "told active");
        let p = pidf(n);
        assert!(!p.is_open(), "the neutral document is closed");
        let xml = p.to_xml();
        assert!(!xml.contains("secret"), "{xml}");
    }
}

/// `Core::decision`: what a new subscription would be decided, by the rules and the
/// policies, without making one (a server asks before it hands a watcher to a device).
#[test]
fn a_decision_is_asked_without_subscribing() {
    let w = world_with(AuthAction::Confirm, |c| {
        c.same_domain_policy = Some(AuthAction::Allow)
    });
    let (a, bob, carol) = (uri(ALICE), uri(BOB), uri(CAROL));
    assert_eq!(w.engine.decision(&a, &bob).unwrap(), AuthAction::Allow);
    assert_eq!(w.engine.decision(&a, &carol).unwrap(), AuthAction::Confirm);
    w.engine
        .set_rule(AuthRule::new(
            a.clone(),
            WatcherMatch::Watcher(bob.clone()),
            AuthAction::PoliteBlock,
        ))
        .unwrap();
    assert_eq!(
        w.engine.decision(&a, &bob).unwrap(),
        AuthAction::PoliteBlock
    );
    assert!(w.engine.subscriptions(Some(&a)).unwrap().is_empty());
}

/// `same_domain_policy`: a watcher no rule names is decided by whether its host is the
/// presentity's (case-insensitively, subdomains and hostless `tel` URIs are not); rules win
/// over it, and removing a rule falls back to it.
#[test]
fn watchers_of_the_presentitys_own_domain_get_the_same_domain_policy() {
    let w = world_with(AuthAction::Confirm, |c| {
        c.same_domain_policy = Some(AuthAction::Allow)
    });
    let state = |id| w.engine.subscription(id).unwrap();
    let bob = w.subscribe(BOB, ALICE);
    let shouting = w.subscribe("sip:dave@EXAMPLE.Test", ALICE);
    let carol = w.subscribe(CAROL, ALICE);
    let lab = w.subscribe("sip:erin@lab.example.test", ALICE);
    let tel = w.subscribe("tel:+12125550100", "tel:+12125550199");
    for id in [bob, shouting] {
        assert_eq!(state(id).state, SubscriptionState::Active);
        assert_eq!(state(id).authorization, AuthAction::Allow);
    }
    for id in [carol, lab, tel] {
        assert_eq!(state(id).state, SubscriptionState::Pending, "{id}");
        assert_eq!(state(id).authorization, AuthAction::Confirm);
    }
    // The presentity's host, not the engine's domains: carol's own presentity lets bob wait.
    let other = w.subscribe(BOB, CAROL);
    assert_eq!(state(other).state, SubscriptionState::Pending);

    // Rules win over the same-domain policy, both ways.
    let a = uri(ALICE);
    let own_domain = WatcherMatch::Domain("example.test".into());
    w.engine
        .set_rule(AuthRule::new(
            a.clone(),
            own_domain.clone(),
            AuthAction::PoliteBlock,
        ))
        .unwrap();
    w.engine
        .set_rule(AuthRule::new(
            a.clone(),
            WatcherMatch::Watcher(uri(CAROL)),
            AuthAction::Allow,
        ))
        .unwrap();
    assert_eq!(state(bob).authorization, AuthAction::PoliteBlock);
    assert_eq!(state(shouting).authorization, AuthAction::PoliteBlock);
    assert_eq!(state(carol).state, SubscriptionState::Active);
    let late = w.subscribe("sip:frank@example.test", ALICE);
    assert_eq!(state(late).authorization, AuthAction::PoliteBlock);

    // Without the rules, each falls back to the policy its domain gives.
    assert!(w.engine.remove_rule(&a, &own_domain).unwrap());
    assert!(w
        .engine
        .remove_rule(&a, &WatcherMatch::Watcher(uri(CAROL)))
        .unwrap());
    assert_eq!(state(bob).authorization, AuthAction::Allow);
    assert_eq!(state(late).authorization, AuthAction::Allow);
    assert_eq!(state(carol).state, SubscriptionState::Pending);

    // Unset (the default), every watcher gets the default policy.
    assert_eq!(EngineConfig::default().same_domain_policy, None);
    let w = world(AuthAction::Confirm);
    let id = w.subscribe(BOB, ALICE);
    assert_eq!(
        w.engine.subscription(id).unwrap().state,
        SubscriptionState::Pending
    );
}

/// `Engine::all_rules`: every presentity's rules, in the store's order.
#[test]
fn all_rules_lists_every_presentity_in_the_stores_order() {
    use impp::store::{MemoryStore, Store};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let w = world_with(AuthAction::Confirm, |c| c.store = store.clone());
    assert!(w.engine.all_rules().unwrap().is_empty());
    for (p, m, a) in [
        (
            BOB,
            WatcherMatch::Domain("other.test".into()),
            AuthAction::Block,
        ),
        (
            ALICE,
            WatcherMatch::Domain("Other.test".into()),
            AuthAction::Allow,
        ),
        (ALICE, WatcherMatch::Watcher(uri(CAROL)), AuthAction::Block),
        (CAROL, WatcherMatch::Watcher(uri(BOB)), AuthAction::Confirm),
    ] {
        w.engine.set_rule(AuthRule::new(uri(p), m, a)).unwrap();
    }
    let all = w.engine.all_rules().unwrap();
    assert_eq!(all, store.load_rules().unwrap());
    let listed: Vec<(String, AuthAction)> = all
        .iter()
        .map(|r| (r.presentity.to_string(), r.action))
        .collect();
    assert_eq!(
        listed,
        [
            (ALICE.to_string(), AuthAction::Block),
            (ALICE.to_string(), AuthAction::Allow),
            (BOB.to_string(), AuthAction::Block),
            (CAROL.to_string(), AuthAction::Confirm),
        ]
    );
}

#[test]
fn pending_watcher_that_is_never_answered_gives_up() {
    let w = world(AuthAction::Confirm);
    let mut req = SubscribeRequest::new(uri(BOB), uri(ALICE), Package::Presence);
    req.expires = Some(60);
    let id = w.engine.subscribe(req).unwrap();
    w.events();
    w.advance(61);
    let n = w.notifications();
    assert_eq!(n[0].subscription, id);
    assert_eq!(
        n[0].state,
        SubscriptionState::Terminated(Some(TerminationReason::Giveup))
    );
}

#[test]
fn watcher_information_full_then_partial_with_versions() {
    let w = world(AuthAction::Confirm);
    let a = uri(ALICE);
    // Only the presentity itself may watch its watchers.
    assert!(matches!(
        w.engine.subscribe(SubscribeRequest::new(
            uri(BOB),
            a.clone(),
            Package::PresenceWinfo
        )),
        Err(Error::Forbidden(_))
    ));
    let winfo = w
        .engine
        .subscribe(SubscribeRequest::new(
            a.clone(),
            a.clone(),
            Package::PresenceWinfo,
        ))
        .unwrap();
    let n = w.notifications();
    let Some(Document::Winfo(doc)) = n[0].document.as_deref() else {
        panic!()
    };
    assert_eq!((doc.version, doc.state), (0, DocState::Full));

    let bob = w.subscribe(BOB, ALICE);
    let n: Vec<_> = w
        .notifications()
        .into_iter()
        .filter(|n| n.subscription == winfo)
        .collect();
    assert_eq!(n.len(), 1);
    let Some(Document::Winfo(doc)) = n[0].document.as_deref() else {
        panic!()
    };
    assert_eq!((doc.version, doc.state), (1, DocState::Partial));
    let watcher = &doc.lists[0].watchers[0];
    assert_eq!(
        (watcher.status, watcher.event),
        (WatcherStatus::Pending, WatcherEvent::Subscribe)
    );
    assert_eq!(watcher.uri, BOB);
    assert_eq!(doc.lists[0].package, "presence");
    // The full state rides along for merging.
    let Some(Document::Winfo(full)) = n[0].full_state.as_deref() else {
        panic!()
    };
    assert_eq!(full.state, DocState::Full);

    w.engine.authorize(bob, AuthAction::Allow).unwrap();
    let n: Vec<_> = w
        .notifications()
        .into_iter()
        .filter(|n| n.subscription == winfo)
        .collect();
    let Some(Document::Winfo(doc)) = n[0].document.as_deref() else {
        panic!()
    };
    assert_eq!(doc.version, 2);
    let watcher = &doc.lists[0].watchers[0];
    assert_eq!(
        (watcher.status, watcher.event),
        (WatcherStatus::Active, WatcherEvent::Approved)
    );

    w.engine.authorize(bob, AuthAction::Block).unwrap();
    let n: Vec<_> = w
        .notifications()
        .into_iter()
        .filter(|n| n.subscription == winfo)
        .collect();
    let Some(Document::Winfo(doc)) = n[0].document.as_deref() else {
        panic!()
    };
    assert_eq!(doc.version, 3);
    let watcher = &doc.lists[0].watchers[0];
    assert_eq!(
        (watcher.status, watcher.event),
        (WatcherStatus::Terminated, WatcherEvent::Rejected)
    );
    // The document round-trips through its codec.
    let xml = doc.to_xml();
    assert_eq!(
        &impp::doc::winfo::Watcherinfo::parse(&xml, &Limits::DEFAULT).unwrap(),
        doc
    );
}

#[test]
fn filters_shape_documents_and_triggers_decide() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    let filter = FilterSet::parse(
        r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">
             <filter id="f1">
               <what><include type="xpath">/pidf:presence/pidf:tuple[@id="phone"]</include></what>
               <trigger><changed>/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger>
             </filter>
           </filter-set>"#,
        &Limits::DEFAULT,
    )
    .unwrap();
    let both = |phone: Basic, note: &str| {
        let mut p = Presence::new(ALICE);
        let mut t = Tuple::new("phone", phone);
        t.notes.push(impp::doc::Note::new(note));
        p.tuples.push(t);
        p.tuples.push(Tuple::new("desk", Basic::Open));
        Document::Presence(p)
    };
    let tag = w
        .engine
        .publish(&a, both(Basic::Open, "one"), None)
        .unwrap();
    let mut req = SubscribeRequest::new(uri(BOB), a.clone(), Package::Presence);
    req.filter = Some(filter);
    w.engine.subscribe(req).unwrap();
    let n = w.notifications();
    let last = n.last().unwrap();
    assert_eq!(tuple_ids(last), ["phone"], "only the selected tuple");

    // A change the trigger does not watch: no notification.
    let tag = w
        .engine
        .modify_publication(&tag, both(Basic::Open, "two"))
        .unwrap();
    assert!(w.notifications().is_empty());
    // A basic status change: notified.
    w.engine
        .modify_publication(&tag, both(Basic::Closed, "two"))
        .unwrap();
    let n = w.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(pidf(&n[0]).tuples[0].status.basic, Some(Basic::Closed));
}

#[test]
fn minimum_interval_merges_changes_into_one_notification() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    let mut req = SubscribeRequest::new(uri(BOB), a.clone(), Package::Presence);
    req.min_interval = Some(Duration::from_secs(10));
    w.engine.subscribe(req).unwrap();
    assert_eq!(w.notifications().len(), 1);
    let tag = w
        .engine
        .publish(&a, presence(ALICE, &[("t", Basic::Open)]), None)
        .unwrap();
    let tag = w
        .engine
        .modify_publication(&tag, presence(ALICE, &[("t", Basic::Closed)]))
        .unwrap();
    w.engine
        .modify_publication(&tag, presence(ALICE, &[("t2", Basic::Open)]))
        .unwrap();
    assert!(w.notifications().is_empty(), "held inside the interval");
    w.advance(10);
    let n = w.notifications();
    assert_eq!(n.len(), 1, "one merged notification");
    assert_eq!(tuple_ids(&n[0]), ["t2"], "carrying the latest state");
    assert!(w.engine.stats().notifications_throttled >= 2);
}

#[test]
fn a_slow_consumer_costs_bounded_memory_and_sees_the_final_state() {
    let w = world_with(AuthAction::Allow, |c| c.queue_capacity = 16);
    let a = uri(ALICE);
    let watchers: Vec<String> = (0..5).map(|i| format!("sip:w{i}@example.test")).collect();
    let ids: Vec<SubscriptionId> = watchers.iter().map(|wt| w.subscribe(wt, ALICE)).collect();
    let mut tag = w
        .engine
        .publish(&a, presence(ALICE, &[("t0", Basic::Open)]), None)
        .unwrap();
    for i in 1..=200 {
        let id = format!("t{i}");
        tag = w
            .engine
            .modify_publication(&tag, presence(ALICE, &[(id.as_str(), Basic::Open)]))
            .unwrap();
    }
    w.engine.sync().unwrap();
    let stats = w.engine.stats();
    assert!(
        stats.events_queued <= 16 + 10,
        "queue stayed bounded: {stats:?}"
    );
    assert!(stats.notifications_merged > 0);
    let mut last: HashMap<SubscriptionId, Vec<String>> = HashMap::new();
    for n in w.notifications() {
        if n.document.is_some() {
            last.insert(n.subscription, tuple_ids(&n));
        }
    }
    for id in ids {
        assert_eq!(
            last[&id],
            ["t200"],
            "every watcher ends with the true final state"
        );
    }
}

#[test]
fn callbacks_run_in_order_and_may_call_the_engine() {
    let w = world(AuthAction::Allow);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let handle = w.engine.handle();
    let log = seen.clone();
    w.engine
        .set_event_callback(Some(Box::new(move |e: &Event| {
            let engine = handle.get().unwrap();
            if let Event::Notification(n) = e {
                let ids = match n.document.as_deref() {
                    Some(Document::Presence(p)) => p
                        .tuples
                        .iter()
                        .map(|t| t.id.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => String::new(),
                };
                log.lock()
                    .unwrap()
                    .push(format!("{}:{}:{ids}", n.watcher, n.state.as_str()));
                // Re-entrancy: subscribe, publish and unsubscribe from inside the callback.
                if n.watcher.to_string() == BOB && ids == "t" {
                    let id = engine
                        .subscribe(SubscribeRequest::new(
                            uri(CAROL),
                            uri(ALICE),
                            Package::Presence,
                        ))
                        .unwrap();
                    engine
                        .publish(&uri(CAROL), presence(CAROL, &[("c", Basic::Open)]), None)
                        .unwrap();
                    engine.unsubscribe(id).unwrap();
                    assert!(matches!(engine.shutdown(), Err(Error::InCallback(_))));
                }
            }
        })))
        .unwrap();
    w.subscribe(BOB, ALICE);
    w.engine
        .publish(&uri(ALICE), presence(ALICE, &[("t", Basic::Open)]), None)
        .unwrap();
    // Wait (bounded) for the callback's own calls to have produced their events.
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], format!("{BOB}:active:"));
    assert_eq!(seen[1], format!("{BOB}:active:t"));
    assert_eq!(seen[2], format!("{CAROL}:active:t"));
    assert_eq!(seen[3], format!("{CAROL}:terminated:"));
}

#[test]
fn destroy_while_events_are_queued_and_while_a_callback_runs() {
    let w = world(AuthAction::Allow);
    for i in 0..50 {
        w.subscribe(&format!("sip:w{i}@example.test"), ALICE);
    }
    w.engine.sync().unwrap();
    drop(w.engine); // events still queued: discarded, threads joined

    let w = world(AuthAction::Allow);
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    w.engine
        .set_event_callback(Some(Box::new(move |_e: &Event| {
            std::thread::sleep(Duration::from_millis(2));
            *c.lock().unwrap() += 1;
        })))
        .unwrap();
    for i in 0..50 {
        w.subscribe(&format!("sip:w{i}@example.test"), ALICE);
    }
    w.engine.shutdown().unwrap();
    let after = *calls.lock().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        *calls.lock().unwrap(),
        after,
        "no callback after shutdown returned"
    );
    assert!(matches!(
        w.engine.subscribe(SubscribeRequest::new(
            uri(BOB),
            uri(ALICE),
            Package::Presence
        )),
        Err(Error::Shutdown(_))
    ));
}

#[test]
fn many_threads_end_with_every_watcher_on_the_composed_state() {
    let w = world_with(AuthAction::Allow, |c| c.workers = 3);
    let engine = &w.engine;
    let presentities: Vec<String> = (0..12).map(|i| format!("sip:p{i}@example.test")).collect();
    let mut ids: HashMap<SubscriptionId, String> = HashMap::new();
    std::thread::scope(|s| {
        let subs: Vec<_> = (0..4)
            .map(|t| {
                let presentities = &presentities;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for (i, p) in presentities.iter().enumerate() {
                        let watcher = format!("sip:w{t}-{i}@example.test");
                        let id = engine
                            .subscribe(SubscribeRequest::new(
                                uri(&watcher),
                                uri(p),
                                Package::Presence,
                            ))
                            .unwrap();
                        mine.push((id, p.clone()));
                    }
                    mine
                })
            })
            .collect();
        let pubs: Vec<_> = (0..4)
            .map(|t| {
                let presentities = &presentities;
                s.spawn(move || {
                    // Each thread is one device of every presentity: it publishes once and
                    // then keeps modifying its publication, as a phone does.
                    let tid = format!("dev{t}");
                    let mut tags: Vec<String> = presentities
                        .iter()
                        .map(|p| {
                            let doc = presence(p, &[(tid.as_str(), Basic::Open)]);
                            engine.publish(&uri(p), doc, Some(3600)).unwrap()
                        })
                        .collect();
                    for round in 0..100 {
                        for (p, tag) in presentities.iter().zip(tags.iter_mut()) {
                            let b = if round % 2 == 0 {
                                Basic::Closed
                            } else {
                                Basic::Open
                            };
                            let doc = presence(p, &[(tid.as_str(), b)]);
                            *tag = engine.modify_publication(tag, doc).unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in subs {
            ids.extend(h.join().unwrap());
        }
        for h in pubs {
            h.join().unwrap();
        }
    });
    // One final publication per presentity settles the expected state.
    for p in &presentities {
        engine
            .publish(&uri(p), presence(p, &[("final", Basic::Open)]), Some(3600))
            .unwrap();
    }
    let mut last: HashMap<SubscriptionId, usize> = HashMap::new();
    let mut final_count: HashMap<SubscriptionId, usize> = HashMap::new();
    for n in w.notifications() {
        if let Some(Document::Presence(p)) = n.document.as_deref() {
            last.insert(n.subscription, p.tuples.len());
            if p.tuple("final").is_some() {
                *final_count.entry(n.subscription).or_default() += 1;
            }
        }
    }
    assert_eq!(ids.len(), 48);
    for id in ids.keys() {
        // Composed state: the four devices' publications and the final one.
        assert_eq!(last[id], 5, "subscription {id}");
        assert_eq!(
            final_count[id], 1,
            "exactly one final notification for {id}"
        );
    }
}

#[test]
fn dialog_and_message_summary_publications_use_the_same_machinery() {
    use impp::doc::dialog::{Dialog, DialogInfo, DialogStateValue};
    use impp::doc::mwi::{MessageClass, MessageCount, MessageSummary};
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    let lamp = w
        .engine
        .subscribe(SubscribeRequest::new(uri(BOB), a.clone(), Package::Dialog))
        .unwrap();
    let mwi = w
        .engine
        .subscribe(SubscribeRequest::new(
            a.clone(),
            a.clone(),
            Package::MessageSummary,
        ))
        .unwrap();
    w.events();

    // Two lines of one phone publish separately; the lamp shows both calls.
    let mut line1 = DialogInfo::default();
    line1
        .dialogs
        .push(Dialog::new("call-1", DialogStateValue::Confirmed));
    let mut line2 = DialogInfo::default();
    line2
        .dialogs
        .push(Dialog::new("call-2", DialogStateValue::Early));
    w.engine.publish(&a, Document::Dialog(line1), None).unwrap();
    w.engine.publish(&a, Document::Dialog(line2), None).unwrap();

    // Two voicemail systems: counts add up.
    let mut vm1 = MessageSummary::new(true);
    vm1.counts
        .push(MessageCount::new(MessageClass::Voice, 2, 1));
    let mut vm2 = MessageSummary::new(false);
    vm2.counts
        .push(MessageCount::new(MessageClass::Voice, 1, 4));
    w.engine
        .publish(&a, Document::MessageSummary(vm1), None)
        .unwrap();
    w.engine
        .publish(&a, Document::MessageSummary(vm2), None)
        .unwrap();

    let n = w.notifications();
    let last_dialog = n.iter().rfind(|n| n.subscription == lamp).unwrap();
    let Some(Document::Dialog(d)) = last_dialog.document.as_deref() else {
        panic!()
    };
    let mut ids: Vec<&str> = d.dialogs.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["call-1", "call-2"]);
    assert_eq!(d.entity, ALICE);
    let last_mwi = n.iter().rfind(|n| n.subscription == mwi).unwrap();
    let Some(Document::MessageSummary(m)) = last_mwi.document.as_deref() else {
        panic!()
    };
    assert!(m.messages_waiting);
    assert_eq!((m.counts[0].new, m.counts[0].old), (3, 5));

    // A document of the wrong package cannot be published as another, nor winfo at all.
    assert!(w
        .engine
        .publish_body(&a, Package::PresenceWinfo, "<x/>", None)
        .is_err());
    assert!(w
        .engine
        .publish_body(&a, Package::Dialog, "Messages-Waiting: yes\r\n", None)
        .is_err());
}

#[test]
fn rules_are_kept_in_the_store_and_survive_a_restart() {
    use impp::store::{MemoryStore, Store};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new();
    let config = EngineConfig {
        workers: 2,
        default_policy: AuthAction::Confirm,
        clock: clock.clone(),
        store: store.clone(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config.clone()).unwrap();
    let rule = AuthRule {
        presentity: uri(ALICE),
        watcher: WatcherMatch::Watcher(uri(BOB)),
        action: AuthAction::Allow,
        target: None,
    };
    engine.set_rule(rule.clone()).unwrap();
    assert_eq!(engine.rules(&uri(ALICE)).unwrap(), vec![rule.clone()]);
    drop(engine);

    let engine = Engine::new(config).unwrap();
    assert_eq!(engine.rules(&uri(ALICE)).unwrap(), vec![rule.clone()]);
    let id = engine
        .subscribe(SubscribeRequest::new(
            uri(BOB),
            uri(ALICE),
            Package::Presence,
        ))
        .unwrap();
    assert_eq!(
        engine.subscription(id).unwrap().state,
        SubscriptionState::Active
    );
    assert!(engine
        .remove_rule(&uri(ALICE), &WatcherMatch::Watcher(uri(BOB)))
        .unwrap());
    assert!(store.load_rules().unwrap().is_empty());
    // With the rule gone, the subscription falls back to the default (confirm): pending.
    assert_eq!(
        engine.subscription(id).unwrap().state,
        SubscriptionState::Pending
    );
}

#[test]
fn every_termination_reason_reaches_the_watcher_and_the_watcher_info() {
    let w = world(AuthAction::Allow);
    let a = uri(ALICE);
    let winfo = w
        .engine
        .subscribe(SubscribeRequest::new(
            a.clone(),
            a.clone(),
            Package::PresenceWinfo,
        ))
        .unwrap();
    for (reason, event) in [
        (TerminationReason::Deactivated, WatcherEvent::Deactivated),
        (TerminationReason::Probation, WatcherEvent::Probation),
        (TerminationReason::Rejected, WatcherEvent::Rejected),
        (TerminationReason::Timeout, WatcherEvent::Timeout),
        (TerminationReason::Giveup, WatcherEvent::Giveup),
        (TerminationReason::Noresource, WatcherEvent::Noresource),
    ] {
        let id = w.subscribe(BOB, ALICE);
        w.events();
        w.engine.terminate_subscription(id, reason).unwrap();
        let n = w.notifications();
        let mine = n.iter().find(|n| n.subscription == id).unwrap();
        assert_eq!(mine.state, SubscriptionState::Terminated(Some(reason)));
        assert!(mine.document.is_none());
        let info = n.iter().find(|n| n.subscription == winfo).unwrap();
        let Some(Document::Winfo(doc)) = info.document.as_deref() else {
            panic!()
        };
        assert_eq!(doc.lists[0].watchers[0].event, event, "{reason:?}");
        assert!(matches!(
            w.engine.terminate_subscription(id, reason),
            Err(Error::NotFound(_))
        ));
    }
}

#[test]
fn events_queued_counts_what_waits_now() {
    let w = world(AuthAction::Allow);
    w.subscribe(BOB, ALICE);
    w.engine.sync().unwrap();
    assert_eq!(
        w.engine.stats().events_queued,
        2,
        "a state change and the first notification"
    );
    w.events();
    assert_eq!(w.engine.stats().events_queued, 0);
}

#[test]
fn many_publications_modified_in_one_call() {
    let w = world(AuthAction::Allow);
    let alice = uri("sip:alice@example.test");
    let bob = uri("sip:bob@example.test");
    let a = w
        .engine
        .publish(
            &alice,
            presence("sip:alice@example.test", &[("a", Basic::Open)]),
            None,
        )
        .unwrap();
    let b = w
        .engine
        .publish(
            &bob,
            presence("sip:bob@example.test", &[("b", Basic::Open)]),
            None,
        )
        .unwrap();
    w.subscribe("sip:carol@example.test", "sip:bob@example.test");
    w.events();
    let results = w.engine.modify_publications(vec![
        (
            a.clone(),
            presence("sip:alice@example.test", &[("a2", Basic::Closed)]),
        ),
        ("nonsense".into(), presence("sip:alice@example.test", &[])),
        (
            b.clone(),
            presence("sip:bob@example.test", &[("b2", Basic::Closed)]),
        ),
    ]);
    assert_eq!(results.len(), 3);
    let new_a = results[0].clone().unwrap();
    assert!(matches!(results[1], Err(Error::UnknownEntityTag(_))));
    assert!(results[2].is_ok());
    assert_ne!(new_a, a);
    // The old tag is gone; the watcher of bob saw the change.
    assert!(matches!(
        w.engine.refresh_publication(&a, 60),
        Err(Error::UnknownEntityTag(_))
    ));
    let notes = w.notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(tuple_ids(&notes[0]), ["b2"]);
}

#[test]
fn renotify_sends_the_full_state_again() {
    let w = world(AuthAction::Allow);
    let id = w.subscribe("sip:bob@example.test", "sip:alice@example.test");
    w.engine
        .publish(
            &uri("sip:alice@example.test"),
            presence("sip:alice@example.test", &[("a", Basic::Open)]),
            None,
        )
        .unwrap();
    w.events();
    w.engine.renotify(id).unwrap();
    let notes = w.notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(tuple_ids(&notes[0]), ["a"]);
    w.engine.unsubscribe(id).unwrap();
    assert!(matches!(w.engine.renotify(id), Err(Error::NotFound(_))));
}

#[test]
fn a_transport_can_name_the_subscription_in_its_target() {
    let w = world(AuthAction::Allow);
    let mut asked = None;
    let mut request = SubscribeRequest::new(uri(BOB), uri(ALICE), Package::Presence);
    request.expires = Some(999_999);
    let made = w
        .engine
        .subscribe_naming(request, |id| {
            asked = Some(id);
            Some(format!("dialog of {}", id.0).into_bytes().into())
        })
        .unwrap();
    let id = made.id;
    assert_eq!(asked, Some(id));
    // The expiry granted: the request clamped to the configured maximum.
    assert_eq!(made.expires, w.engine.config().subscription_expiry.max);
    assert_eq!(
        w.engine.refresh_subscription(id, 999_999).unwrap(),
        w.engine.config().subscription_expiry.max
    );
    let info = w.engine.subscription(id).unwrap();
    assert_eq!(
        info.target.as_deref(),
        Some(format!("dialog of {}", id.0).as_bytes())
    );
    // The notifications of a subscription with a target are for its transport.
    assert!(w
        .notifications()
        .iter()
        .all(|n| n.is_remote()
            && n.target.as_deref() == Some(format!("dialog of {}", id.0).as_bytes())));
    // `None` keeps the request's own target (here none: a local watcher).
    let local = w
        .engine
        .subscribe_naming(
            SubscribeRequest::new(uri(BOB), uri(ALICE), Package::Presence),
            |_| None,
        )
        .unwrap()
        .id;
    assert_ne!(local, id);
    assert_eq!(w.engine.subscription(local).unwrap().target, None);
    // A refused subscription asked for its target but was not made.
    let mut brief = SubscribeRequest::new(uri(BOB), uri(ALICE), Package::Presence);
    brief.expires = Some(1);
    let mut named = None;
    let refused = w.engine.subscribe_naming(brief, |id| {
        named = Some(id);
        None
    });
    assert!(refused.is_err());
    assert!(w.engine.subscription(named.unwrap()).is_err());
}

#[test]
fn a_transports_port_is_bounded_and_merges_per_subscription_like_the_applications_queue() {
    let w = world(AuthAction::Allow);
    // A port of two events: a transport that does not keep up under a storm.
    let port = w.engine.open_port(port_options(2)).unwrap();
    let remote = |watcher: &str| {
        let mut request = SubscribeRequest::new(uri(watcher), uri(ALICE), Package::Presence);
        request.target = Some(Arc::from(&b"a dialog"[..]));
        w.engine.subscribe(request).unwrap()
    };
    let (bob, carol) = (remote(BOB), remote("sip:carol@example.test"));
    let local = w.subscribe("sip:dave@example.test", ALICE);
    let a = uri(ALICE);
    let mut etag = w
        .engine
        .publish(&a, presence(ALICE, &[("t0", Basic::Open)]), None)
        .unwrap();
    for i in 1..=50 {
        etag = w
            .engine
            .modify_publication(&etag, presence(ALICE, &[(&format!("t{i}"), Basic::Open)]))
            .unwrap();
    }
    w.engine.sync().unwrap();
    // The application's watcher saw its own notifications, none of the transport's.
    let mine = w.notifications();
    assert!(mine.iter().all(|n| n.subscription == local), "{mine:?}");
    // The transport's: bounded (at most one waiting per subscription beyond the bound),
    // each subscription ending on the last state.
    let theirs: Vec<Notification> = port
        .next_events(1000, Some(Duration::ZERO))
        .into_iter()
        .filter_map(|e| match e {
            Event::Notification(n) => Some(n),
            _ => None,
        })
        .collect();
    assert!(
        theirs.len() <= 2 + 2,
        "{} notifications waited",
        theirs.len()
    );
    assert!(port.stats().merged > 90, "{:?}", port.stats());
    for sub in [bob, carol] {
        let last = theirs
            .iter()
            .rev()
            .find(|n| n.subscription == sub)
            .expect("notified");
        assert_eq!(tuple_ids(last), ["t50"], "{sub}");
        assert!(last.is_remote());
    }
}

/// A transport's inline taker sees the port's notifications on the shard's thread as they
/// are made: what it takes never reaches the port's queue, what it gives back does; once the
/// port is closed it sees nothing more.
#[test]
fn a_port_inline_taker_keeps_what_it_takes_out_of_the_queue() {
    let w = world(AuthAction::Allow);
    let port = w.engine.open_port(port_options(1000)).unwrap();
    let taken: Arc<Mutex<Vec<(SubscriptionId, String)>>> = Arc::default();
    port.take_inline(Arc::new({
        let taken = taken.clone();
        move |n: Notification| {
            if n.target.as_deref() != Some(&b"take"[..]) {
                return Some(n);
            }
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            taken.lock().unwrap().push((n.subscription, thread));
            None
        }
    }));
    let remote = |watcher: &str, target: &[u8]| {
        let mut request = SubscribeRequest::new(uri(watcher), uri(ALICE), Package::Presence);
        request.target = Some(Arc::from(target));
        w.engine.subscribe(request).unwrap()
    };
    let took = remote("sip:bob@example.com", b"take");
    let queued = remote("sip:carol@example.com", b"queue");
    w.engine
        .publish(&uri(ALICE), presence(ALICE, &[("t", Basic::Open)]), None)
        .unwrap();
    w.engine.sync().unwrap();
    let in_queue: Vec<SubscriptionId> = port
        .next_events(1000, Some(Duration::ZERO))
        .into_iter()
        .filter_map(|e| match e {
            Event::Notification(n) => Some(n.subscription),
            _ => None,
        })
        .collect();
    assert_eq!(
        in_queue,
        [queued, queued],
        "the first state, then the published one"
    );
    let seen = taken.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(sub, thread)| *sub == took && thread.starts_with("impp-shard-")),
        "{seen:?}"
    );

    // Closed: the notifications are the application's, the taker sees none.
    drop(port);
    w.events();
    w.engine
        .publish(&uri(ALICE), presence(ALICE, &[("t", Basic::Closed)]), None)
        .unwrap();
    let notified: Vec<SubscriptionId> = w.notifications().iter().map(|n| n.subscription).collect();
    assert!(
        notified.contains(&took) && notified.contains(&queued),
        "{notified:?}"
    );
    assert_eq!(taken.lock().unwrap().len(), 2);
}

fn port_options(capacity: usize) -> impp::engine::PortOptions {
    impp::engine::PortOptions {
        capacity,
        ..impp::engine::PortOptions::default()
    }
}

/// A transport that keeps back-end subscriptions for local watchers of other domains' presentities
/// (`subscription_events`) has the last word on them: unless a rule of this domain restricts
/// the watcher, the subscription is pending and the transport alone is asked, except when
/// there is nothing to show and no other watcher (the first watcher, in whose name the
/// transport subscribes). An owned presentity is not concerned.
#[test]
fn a_transport_that_keeps_backend_subscriptions_decides_on_watchers_of_other_domains() {
    let w = world_with(AuthAction::Allow, |c| c.domains = vec!["a.test".into()]);
    let port = w
        .engine
        .open_port(impp::engine::PortOptions {
            subscription_events: true,
            ..port_options(1000)
        })
        .unwrap();
    let dave = "sip:dave@b.test";
    let state = |id| w.engine.subscription(id).unwrap().state;
    let carol = w.subscribe("sip:carol@a.test", dave);
    assert_eq!(state(carol), SubscriptionState::Active, "the first watcher");
    let bob = w.subscribe("sip:bob@a.test", dave);
    assert_eq!(state(bob), SubscriptionState::Pending, "a second watcher");
    w.engine.sync().unwrap();
    let asked: Vec<SubscriptionId> = port
        .next_events(1000, Some(Duration::ZERO))
        .into_iter()
        .filter_map(|e| match e {
            Event::AuthorizationRequested { subscription, .. } => Some(subscription),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![bob]);
    // The application is not asked: the transport has the last word.
    let app_asked = w
        .events()
        .into_iter()
        .any(|e| matches!(e, Event::AuthorizationRequested { .. }));
    assert!(!app_asked);
    // A rule set later that allows does not override the transport's decision.
    w.engine
        .set_rule(AuthRule::new(
            uri(dave),
            WatcherMatch::Watcher(uri("sip:bob@a.test")),
            AuthAction::Allow,
        ))
        .unwrap();
    assert_eq!(state(bob), SubscriptionState::Pending);
    // One that restricts does.
    w.engine
        .set_rule(AuthRule::new(
            uri(dave),
            WatcherMatch::Domain("a.test".into()),
            AuthAction::PoliteBlock,
        ))
        .unwrap();
    let erin = w.subscribe("sip:erin@a.test", dave);
    assert_eq!(
        w.engine.subscription(erin).unwrap().authorization,
        AuthAction::PoliteBlock
    );
    // A rule that says confirm asks the application (and the transport hears of it).
    w.engine
        .set_rule(AuthRule::new(
            uri(dave),
            WatcherMatch::Watcher(uri("sip:gus@a.test")),
            AuthAction::Confirm,
        ))
        .unwrap();
    let gus = w.subscribe("sip:gus@a.test", dave);
    let app_asked: Vec<SubscriptionId> = w
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::AuthorizationRequested { subscription, .. } => Some(subscription),
            _ => None,
        })
        .collect();
    assert_eq!(app_asked, vec![gus]);
    // An owned presentity follows this domain's rules alone.
    let alice = w.subscribe("sip:bob@a.test", "sip:alice@a.test");
    assert_eq!(state(alice), SubscriptionState::Active);
    // Without the port's word, the engine decides as before.
    drop(port);
    let frank = w.subscribe("sip:frank@a.test", dave);
    assert_eq!(
        w.engine.subscription(frank).unwrap().authorization,
        AuthAction::PoliteBlock
    );
    w.subscribe("sip:zoe@a.test", "sip:zed@c.test");
    let yann = w.subscribe("sip:yann@a.test", "sip:zed@c.test");
    assert_eq!(
        state(yann),
        SubscriptionState::Active,
        "a second watcher, no port"
    );
}
