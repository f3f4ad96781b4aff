//! Redirect as an authorization outcome (issue 19, part 4): a rule, or the application's
//! decision on one subscription, sends a watcher to another presence agent. Through the
//! engine's Rust API (with a manual clock) and over SIP on loopback, where the watcher gets
//! `302 Moved Temporarily` with the target as `Contact`.

use std::sync::Arc;
use std::time::Duration;

use impp::engine::{
    AuthAction, AuthRule, Engine, EngineConfig, Event, ManualClock, Package, SubscribeRequest,
    SubscriptionId, SubscriptionState, TerminationReason, WatcherMatch, REDIRECT_MEMORY_MS,
};
use impp::uri::Uri;
use impp::Error;

mod common;
use common::sip::{header_map, token, Client, Server, DOMAIN};

const ALICE: &str = "sip:alice@example.test";
const BOB: &str = "sip:bob@example.test";
const CAROL: &str = "sip:carol@example.test";
const EDGE: &str = "sip:alice@192.0.2.7:5070;transport=tcp";

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn engine(policy: AuthAction) -> (Engine, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let config = EngineConfig {
        workers: 2,
        default_policy: policy,
        clock: clock.clone(),
        ..EngineConfig::default()
    };
    (Engine::new(config).unwrap(), clock)
}

fn subscribe(e: &Engine, watcher: &str) -> Result<SubscriptionId, Error> {
    e.subscribe(SubscribeRequest::new(
        uri(watcher),
        uri(ALICE),
        Package::Presence,
    ))
}

/// The states the events so far gave `id`.
fn states(e: &Engine, id: SubscriptionId) -> Vec<SubscriptionState> {
    e.sync().unwrap();
    let mut out = Vec::new();
    while let Some(ev) = e.next_event(Some(Duration::ZERO)) {
        if let Event::SubscriptionStateChanged {
            subscription,
            state,
            ..
        } = ev
        {
            if subscription == id {
                out.push(state);
            }
        }
    }
    out
}

const DEACTIVATED: SubscriptionState =
    SubscriptionState::Terminated(Some(TerminationReason::Deactivated));

#[test]
fn a_redirect_rule_sends_its_watchers_elsewhere_and_makes_nothing() {
    let (e, _) = engine(AuthAction::Allow);
    e.set_rule(AuthRule::redirect(
        uri(ALICE),
        WatcherMatch::Watcher(uri(BOB)),
        uri(EDGE),
    ))
    .unwrap();
    match subscribe(&e, BOB) {
        Err(Error::Moved(target)) => assert_eq!(uri(&target), uri(EDGE)),
        other => panic!("{other:?}"),
    }
    assert!(
        e.subscriptions(None).unwrap().is_empty(),
        "nothing was made"
    );
    // Others are decided as before; the presentity itself is never sent away.
    subscribe(&e, CAROL).unwrap();
    subscribe(&e, ALICE).unwrap();
    // The rule reads back with its target, and a domain rule redirects too.
    let rules = e.rules(&uri(ALICE)).unwrap();
    assert_eq!(rules[0].action, AuthAction::Redirect);
    assert_eq!(rules[0].target, Some(uri(EDGE)));
    e.set_rule(AuthRule::redirect(
        uri(ALICE),
        WatcherMatch::Domain("example.test".into()),
        uri(EDGE),
    ))
    .unwrap();
    assert!(matches!(
        subscribe(&e, "sip:dave@example.test"),
        Err(Error::Moved(_))
    ));
}

#[test]
fn a_live_subscription_a_new_redirect_rule_covers_ends_deactivated() {
    let (e, _) = engine(AuthAction::Allow);
    let id = subscribe(&e, BOB).unwrap();
    assert_eq!(states(&e, id), [SubscriptionState::Active]);
    e.set_rule(AuthRule::redirect(
        uri(ALICE),
        WatcherMatch::Watcher(uri(BOB)),
        uri(EDGE),
    ))
    .unwrap();
    assert_eq!(states(&e, id), [DEACTIVATED]);
    // The watcher subscribes again at once and meets the redirect.
    assert!(matches!(subscribe(&e, BOB), Err(Error::Moved(_))));
    // Without the rule it is served here again.
    assert!(e
        .remove_rule(&uri(ALICE), &WatcherMatch::Watcher(uri(BOB)))
        .unwrap());
    subscribe(&e, BOB).unwrap();
}

#[test]
fn the_applications_redirect_is_for_one_subscription_and_is_forgotten() {
    let (e, clock) = engine(AuthAction::Confirm);
    let id = subscribe(&e, BOB).unwrap();
    assert_eq!(states(&e, id), [SubscriptionState::Pending]);
    e.redirect(id, uri(EDGE)).unwrap();
    assert_eq!(states(&e, id), [DEACTIVATED]);
    // A server asking what a new subscription would be decided (before handing it to the
    // presentity's device) hears redirect, and asking takes nothing.
    for _ in 0..2 {
        assert_eq!(
            e.decision(&uri(ALICE), &uri(BOB)).unwrap(),
            AuthAction::Redirect
        );
    }
    match subscribe(&e, BOB) {
        Err(Error::Moved(target)) => assert_eq!(uri(&target), uri(EDGE)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.decision(&uri(ALICE), &uri(BOB)).unwrap(),
        AuthAction::Confirm
    );
    // Said once: the next subscription is decided by the rules (pending again).
    let again = subscribe(&e, BOB).unwrap();
    assert_eq!(states(&e, again), [SubscriptionState::Pending]);
    // A redirect the watcher never came back for is forgotten.
    e.redirect(again, uri(EDGE)).unwrap();
    clock.advance(Duration::from_millis(REDIRECT_MEMORY_MS + 1));
    e.sync().unwrap();
    subscribe(&e, BOB).unwrap();
}

#[test]
fn a_redirect_without_a_target_is_refused_and_changes_nothing() {
    let (e, _) = engine(AuthAction::Confirm);
    let id = subscribe(&e, BOB).unwrap();
    // A rule saying redirect without a target, a target on another action.
    let bare = AuthRule::new(
        uri(ALICE),
        WatcherMatch::Watcher(uri(BOB)),
        AuthAction::Redirect,
    );
    assert!(matches!(e.set_rule(bare), Err(Error::InvalidArgument(_))));
    let mut stray = AuthRule::new(
        uri(ALICE),
        WatcherMatch::Watcher(uri(BOB)),
        AuthAction::Allow,
    );
    stray.target = Some(uri(EDGE));
    assert!(matches!(e.set_rule(stray), Err(Error::InvalidArgument(_))));
    assert!(e.rules(&uri(ALICE)).unwrap().is_empty());
    // authorize has no target to give; redirect needs a live subscription.
    assert!(matches!(
        e.authorize(id, AuthAction::Redirect),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        e.redirect(SubscriptionId(999_999), uri(EDGE)),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        e.subscription(id).unwrap().state,
        SubscriptionState::Pending
    );
    // Nor is redirect a policy.
    let config = EngineConfig {
        default_policy: AuthAction::Redirect,
        ..EngineConfig::default()
    };
    assert!(matches!(
        Engine::new(config),
        Err(Error::InvalidArgument(m)) if m.contains("no policy")
    ));
}

/// Over SIP: a redirect rule answers a new SUBSCRIBE `302` with the target as `Contact`; a
/// live dialog the rule now covers gets `terminated;reason=deactivated`; the application's
/// redirect of a pending watcher does the same once.
#[test]
fn over_sip_a_redirected_watcher_gets_302_with_the_new_presence_agent() {
    let s = Server::start_configured(false, |c| c.default_policy = AuthAction::Confirm, |_| {});
    let alice = format!("sip:alice@{DOMAIN}");
    let mut bob = Client::new(s.udp(), "bob");
    let subscribe = |c: &Client, call_id: &str, extra: &str| {
        c.request(
            "SUBSCRIBE",
            &alice,
            &format!("<{alice}>{extra}"),
            call_id,
            "Event: presence\r\nExpires: 600\r\n",
            None,
        )
    };

    // The application redirects a pending watcher: its dialog ends deactivated ...
    let call_id = token();
    let r = bob.transact(&subscribe(&bob, &call_id, ""));
    assert_eq!(r.status(), Some(200));
    let n = bob.next_request("NOTIFY");
    assert!(header_map(&n)["subscription-state"].starts_with("pending"));
    let id = s.engine.subscriptions(None).unwrap()[0].id;
    s.engine.redirect(id, uri(EDGE)).unwrap();
    let n = bob.next_request("NOTIFY");
    let state = &header_map(&n)["subscription-state"];
    assert!(
        state.starts_with("terminated") && state.contains("reason=deactivated"),
        "{state}"
    );
    // ... and the SUBSCRIBE it sends at once is answered 302, naming the target.
    let r = bob.transact(&subscribe(&bob, &token(), ""));
    assert_eq!(r.status(), Some(302), "{:?}", r.reason());
    assert_eq!(header_map(&r)["contact"], format!("<{EDGE}>"));
    assert!(s.engine.subscriptions(None).unwrap().is_empty());

    // A rule: every new SUBSCRIBE of the watcher is redirected, with no dialog made.
    s.engine
        .set_rule(AuthRule::redirect(
            uri(&alice),
            WatcherMatch::Watcher(uri(&bob.aor())),
            uri(EDGE),
        ))
        .unwrap();
    for _ in 0..2 {
        let r = bob.transact(&subscribe(&bob, &token(), ""));
        assert_eq!(r.status(), Some(302));
        assert_eq!(header_map(&r)["contact"], format!("<{EDGE}>"));
    }
    assert!(s.engine.subscriptions(None).unwrap().is_empty());

    // Carol, whom no rule redirects, is served here; a redirect rule added later ends
    // her dialog deactivated, and her next SUBSCRIBE is redirected.
    let mut carol = Client::new(s.udp(), "carol");
    s.engine
        .set_rule(AuthRule::new(
            uri(&alice),
            WatcherMatch::Watcher(uri(&carol.aor())),
            AuthAction::Allow,
        ))
        .unwrap();
    let r = carol.transact(&subscribe(&carol, &token(), ""));
    assert_eq!(r.status(), Some(200));
    let n = carol.next_request("NOTIFY");
    assert!(header_map(&n)["subscription-state"].starts_with("active"));
    s.engine
        .set_rule(AuthRule::redirect(
            uri(&alice),
            WatcherMatch::Domain(DOMAIN.into()),
            uri(EDGE),
        ))
        .unwrap();
    // Carol's own allow rule still wins over the domain's redirect.
    assert!(s.nothing_arrives(&mut carol));
    s.engine
        .remove_rule(&uri(&alice), &WatcherMatch::Watcher(uri(&carol.aor())))
        .unwrap();
    let n = carol.next_request("NOTIFY");
    let state = &header_map(&n)["subscription-state"];
    assert!(state.contains("reason=deactivated"), "{state}");
    let r = carol.transact(&subscribe(&carol, &token(), ""));
    assert_eq!(r.status(), Some(302));
    s.stop();
}
