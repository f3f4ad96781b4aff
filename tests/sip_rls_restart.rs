//! The list server (RFC 4662) across a restart, and a subscriber's Retry-After, on a manual
//! clock: a list subscription accepted before a restart keeps its dialog (its back
//! subscriptions in a SQLite file carry it), so the subscriber gets a full-state NOTIFY in
//! the same dialog with a higher RLMI version and CSeq, partial NOTIFYs after, and its
//! refreshes are answered `200`; one that expired meanwhile, or whose record or list is
//! gone, leaves nothing, and new dialogs are numbered above the ids found. A list NOTIFY
//! refused with a Retry-After holds the dialog that long, then sends its full state; any
//! other failure ends it. A resource whose place in the list changes at a refresh, or that
//! follows one whose back subscription the engine refused, is still notified. The back
//! subscriptions of one dialog share its record in memory, also after a restart.

mod common;
use std::sync::Arc;
use std::time::Duration;

use common::fixtures::{uri, wait_for};
use common::rls::{list_body, publish, set_list, state_text};
use common::sip::{aor, cseq, header_map, to_tag, token, Client, Server, SqliteFile, DOMAIN};
use impp::engine::{ManualClock, Package};
use impp::sip::SipMessage;
use impp::store::SqliteStore;

const EVENTLIST: &str = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n";

/// The list `buddies` of alice and carol, for presence.
fn buddies(s: &Server) -> String {
    set_list(s, "buddies", Package::Presence, &["alice", "carol"])
}

fn subscribe(bob: &mut Client, list: &str, call_id: &str, to_tag: Option<&str>) -> SipMessage {
    let headers = format!("Event: presence\r\nExpires: 600\r\n{EVENTLIST}");
    common::rls::subscribe(bob, list, call_id, to_tag, &headers, None)
}

/// alice publishes, the list `buddies` is set, and bob subscribes to it and is told its full
/// state: the list's URI, bob, and the dialog's tag.
fn bob_watches_buddies(s: &Server) -> (String, Client, String) {
    publish(s, "alice", "alice 0");
    let list = buddies(s);
    let mut bob = Client::new(s.udp(), "bob");
    let r = subscribe(&mut bob, &list, &token(), None);
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    assert!(list_body(&bob.next_request("NOTIFY")).rlmi.full_state);
    (list, bob, tag)
}

#[test]
fn a_list_subscription_keeps_its_dialog_across_a_restart() {
    let file = SqliteFile::new("rls-restart");
    let s = file.start();
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    let list = buddies(&s);
    let mut bob = Client::new(s.udp(), "bob");
    let call_id = token();
    let r = subscribe(&mut bob, &list, &call_id, None);
    assert_eq!(r.status(), Some(200));
    let local_tag = to_tag(&r);
    let first = bob.next_request("NOTIFY");
    let body = list_body(&first);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 0);
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let partial = bob.next_request("NOTIFY");
    let body = list_body(&partial);
    assert!(!body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 1);
    assert!(state_text(&body, &aor("alice")).contains("alice 1"));
    let (version_before, cseq_before) = (body.rlmi.version, cseq(&partial));
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    // The process stops, and starts again on the same file a minute later.
    let s = file.restart(s, Duration::from_secs(60));
    bob.server = s.udp();
    // The full state, once every resource told it (and the version's pace allows it).
    s.advance(Duration::from_secs(1));
    let full = bob.next_request("NOTIFY");
    let h = header_map(&full);
    assert_eq!(full.call_id().unwrap(), call_id, "the same dialog");
    assert_eq!(full.from().unwrap().tag(), Some(local_tag.as_str()));
    assert_eq!(full.to().unwrap().tag(), Some(bob.tag.as_str()));
    assert!(h["subscription-state"].starts_with("active"), "{h:?}");
    let body = list_body(&full);
    assert!(body.rlmi.full_state);
    assert!(
        body.rlmi.version > version_before,
        "{} after {version_before}",
        body.rlmi.version
    );
    assert!(
        cseq(&full) > cseq_before,
        "{} after {cseq_before}",
        cseq(&full)
    );
    assert_eq!(body.rlmi.resources.len(), 2);
    assert!(state_text(&body, &aor("alice")).contains("alice 1"));
    assert!(state_text(&body, &aor("carol")).contains("carol 0"));
    assert_eq!(
        s.engine.stats().subscriptions_active,
        2,
        "the same back subscriptions, no more"
    );
    let (version, full_cseq) = (body.rlmi.version, cseq(&full));

    // A change afterwards: a partial NOTIFY, the next version.
    publish(&s, "carol", "carol 1");
    s.advance(Duration::from_secs(1));
    let partial = bob.next_request("NOTIFY");
    let body = list_body(&partial);
    assert!(!body.rlmi.full_state);
    assert_eq!(body.rlmi.version, version + 1);
    assert_eq!(cseq(&partial), full_cseq + 1);
    assert_eq!(body.rlmi.resources.len(), 1);
    assert!(state_text(&body, &aor("carol")).contains("carol 1"));

    // A refresh inside the dialog is taken, and full state follows.
    let r = subscribe(&mut bob, &list, &call_id, Some(&local_tag));
    assert_eq!(r.status(), Some(200));
    s.advance(Duration::from_secs(1));
    let refreshed = bob.next_request("NOTIFY");
    let body = list_body(&refreshed);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, version + 2);
    assert!(s.nothing_arrives(&mut bob));
    assert_eq!(s.engine.stats().subscriptions_active, 2);
    s.stop();
}

#[test]
fn a_list_subscription_that_expired_before_the_restart_leaves_nothing() {
    let file = SqliteFile::new("rls-restart-expired");
    let s = file.start();
    let (list, mut bob, local_tag) = bob_watches_buddies(&s);
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    // Down for longer than the subscription's 600 s.
    let s = file.restart(s, Duration::from_secs(700));
    bob.server = s.udp();
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
    assert_eq!(s.engine.stats().subscriptions_active, 0);
    assert_eq!(s.engine.remote_subscriptions().unwrap().len(), 0);

    // A refresh of the gone dialog: 481.
    let r = subscribe(&mut bob, &list, &token(), Some(&local_tag));
    assert_eq!(r.status(), Some(481));
    s.stop();
}

#[test]
fn a_list_notify_refused_with_retry_after_waits_then_sends_full_state() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    let list = buddies(&s);
    let mut bob = Client::new(s.udp(), "bob");
    bob.auto_answer = false;
    let r = subscribe(&mut bob, &list, &token(), None);
    assert_eq!(r.status(), Some(200));
    let first = bob.next_request("NOTIFY");
    assert_eq!(list_body(&first).rlmi.version, 0);
    bob.answer(&first);

    // A partial NOTIFY refused for 5 s: the dialog stays, nothing goes meanwhile (another
    // change included).
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let refused = bob.next_request("NOTIFY");
    assert_eq!(list_body(&refused).rlmi.version, 1);
    bob.answer_with(&refused, 503, "Service Unavailable", "Retry-After: 5\r\n");
    assert!(s.nothing_arrives(&mut bob), "the answer taken at this time");
    publish(&s, "alice", "alice 2");
    s.advance(Duration::from_secs(1));
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    // After the wait: the full state, the latest of each resource.
    s.advance(Duration::from_secs(2));
    let again = bob.next_request("NOTIFY");
    let body = list_body(&again);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 2);
    assert_eq!(body.rlmi.resources.len(), 2);
    assert!(state_text(&body, &aor("alice")).contains("alice 2"));
    assert!(state_text(&body, &aor("carol")).contains("carol 0"));

    // Another failure with a Retry-After (not 503) holds it the same way.
    bob.answer_with(&again, 480, "Temporarily Unavailable", "Retry-After: 3\r\n");
    assert!(s.nothing_arrives(&mut bob), "the answer taken at this time");
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
    s.advance(Duration::from_secs(1));
    let third = bob.next_request("NOTIFY");
    let body = list_body(&third);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 3);

    // A failure without Retry-After ends the dialog and its back subscriptions.
    bob.answer_with(&third, 500, "Server Internal Error", "");
    assert!(s.nothing_arrives(&mut bob), "the answer taken at this time");
    s.advance(Duration::from_secs(1));
    // The back subscriptions end through the engine's shards: wait for them (the answer
    // travels over UDP, so it may be read after the clock moved; no timer is involved).
    wait_for("the back subscriptions to end", 10, || {
        s.server.sync();
        s.engine.stats().subscriptions_active == 0
    });
    publish(&s, "alice", "alice 3");
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
}

/// The list server finds a back subscription's resource by its place in the list; a refresh
/// that moves it (alice left the list, carol is now first) must not lose its changes.
#[test]
fn a_resource_moved_in_the_list_at_a_refresh_is_still_notified() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    let list = buddies(&s);
    let mut bob = Client::new(s.udp(), "bob");
    let call_id = token();
    let r = subscribe(&mut bob, &list, &call_id, None);
    assert_eq!(r.status(), Some(200));
    let local_tag = to_tag(&r);
    assert_eq!(
        list_body(&bob.next_request("NOTIFY")).rlmi.resources.len(),
        2
    );

    // The same list, now of carol alone.
    assert_eq!(set_list(&s, "buddies", Package::Presence, &["carol"]), list);
    assert_eq!(
        subscribe(&mut bob, &list, &call_id, Some(&local_tag)).status(),
        Some(200)
    );
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.resources.len(), 1);
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 1, "alice's ended");

    publish(&s, "carol", "carol 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(!body.rlmi.full_state);
    assert!(state_text(&body, &aor("carol")).contains("carol 1"));
}

/// The back subscriptions of a new list dialog are made outside the list server's lock: one
/// the engine refuses (alice has as many watchers as the engine keeps) is a terminated
/// instance in its place, and the resource after it is still notified.
#[test]
fn a_back_subscription_the_engine_refuses_is_a_rejected_instance_in_its_place() {
    let clock = ManualClock::new();
    let c = clock.clone();
    let mut s = Server::start_configured(
        false,
        move |e| {
            e.clock = c;
            e.state_limits.max_subscriptions_per_presentity = 1;
        },
        |_| {},
    );
    s.clock = Some(clock);
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    // Alice's one watcher.
    s.engine
        .subscribe(impp::engine::SubscribeRequest::new(
            uri(&aor("carol")),
            uri(&aor("alice")),
            Package::Presence,
        ))
        .unwrap();
    let list = buddies(&s);
    let mut bob = Client::new(s.udp(), "bob");
    let r = subscribe(&mut bob, &list, &token(), None);
    assert_eq!(r.status(), Some(200));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(body.rlmi.full_state);
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice"), aor("carol")]);
    let alice = &body.rlmi.resources[0].instances[0];
    assert_eq!(alice.state, impp::doc::rlmi::InstanceState::Terminated);
    assert_eq!(alice.reason.as_deref(), Some("rejected"));
    assert!(state_text(&body, &aor("carol")).contains("carol 0"));

    publish(&s, "carol", "carol 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(!body.rlmi.full_state);
    assert_eq!(body.rlmi.resources.len(), 1);
    assert!(state_text(&body, &aor("carol")).contains("carol 1"));
}

/// A list dialog of resources of an owned domain holds no engine subscription of its own:
/// its subscriber is a member of each resource's shared subscription (listed among the
/// subscriptions, with no expiry and no record), and the dialog's own row in the store brings
/// it back after a restart, joined again.
#[test]
fn a_list_dialog_of_owned_resources_is_members_and_a_row_of_its_own_across_a_restart() {
    let file = SqliteFile::new("rls-restart-members");
    let s = file.start();
    let members: Vec<String> = (0..8).map(|n| format!("user{n}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let list_uri = set_list(&s, "panel", Package::Presence, &members);
    let mut bob = Client::new(s.udp(), "bob");
    assert_eq!(
        subscribe(&mut bob, &list_uri, &token(), None).status(),
        Some(200)
    );
    assert_eq!(
        list_body(&bob.next_request("NOTIFY")).rlmi.resources.len(),
        8
    );
    assert_eq!(s.engine.remote_subscriptions().unwrap().len(), 0);
    let listed = s.engine.subscriptions(None).unwrap();
    assert_eq!(listed.len(), 8, "{listed:?}");
    assert!(listed.iter().all(|m| m.watcher == uri(&aor("bob"))
        && m.state == impp::engine::SubscriptionState::Active
        && m.expires_in.is_zero()));
    assert_eq!(s.engine.stats().subscriptions_active, 8);

    let s = file.restart(s, Duration::from_secs(5));
    bob.server = s.udp();
    s.advance(Duration::from_secs(1));
    assert_eq!(
        list_body(&bob.next_request("NOTIFY")).rlmi.resources.len(),
        8
    );
    assert_eq!(s.engine.remote_subscriptions().unwrap().len(), 0);
    assert_eq!(s.engine.subscriptions(None).unwrap().len(), 8);
    // The change of a resource reaches the restored dialog through its member.
    publish(&s, "user3", "user3 busy");
    s.advance(Duration::from_secs(1));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(!body.rlmi.full_state);
    assert!(state_text(&body, &aor("user3")).contains("user3 busy"));
    s.stop();
}

/// Back subscriptions whose list dialog cannot come back are ended at start, and the
/// subscriber hears nothing: a record an earlier version wrote (the id alone), one whose
/// dialog is unreadable, and a dialog whose list was deleted while the server was down. New
/// list dialogs are numbered above every id found.
#[test]
fn list_dialogs_that_cannot_come_back_leave_no_back_subscriptions() {
    let file = SqliteFile::new("rls-restart-incomplete");
    let s = file.start();
    let (list, mut bob, _) = bob_watches_buddies(&s);
    // What an earlier version stored, and a record whose dialog is garbage.
    for target in [
        &b"impp-list 7"[..],
        b"impp-list 30 sip:buddies@example.test\n\x03\x00garbage",
    ] {
        let mut request = impp::engine::SubscribeRequest::new(
            uri(&aor("bob")),
            uri(&aor("carol")),
            Package::Presence,
        );
        request.target = Some(target.into());
        s.engine.subscribe(request).unwrap();
    }
    // The list's own resources are members, not remote subscriptions.
    assert_eq!(s.engine.remote_subscriptions().unwrap().len(), 2);
    s.stop();

    // The list is deleted while the server is down (imppd list del).
    {
        let store = Arc::new(SqliteStore::open(&file.db).unwrap());
        let engine = impp::engine::Engine::new(impp::engine::EngineConfig {
            domains: vec![DOMAIN.into()],
            store,
            clock: file.clock.clone(),
            ..impp::engine::EngineConfig::default()
        })
        .unwrap();
        assert!(engine.remove_list(&uri(&list)).unwrap());
        engine.shutdown().unwrap();
    }
    file.clock.advance(Duration::from_secs(5));
    let s = file.start();
    bob.server = s.udp();
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
    assert_eq!(s.engine.remote_subscriptions().unwrap().len(), 0);
    assert_eq!(s.engine.stats().subscriptions_active, 0);

    // A new list dialog's tag names an id above the 0x30 found in the store.
    let list = buddies(&s);
    let r = subscribe(&mut bob, &list, &token(), None);
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let id = u64::from_str_radix(tag.rsplit_once(".l").unwrap().1, 16).unwrap();
    assert!(id > 0x30, "{tag}");
    assert!(list_body(&bob.next_request("NOTIFY")).rlmi.full_state);
    s.stop();
}
