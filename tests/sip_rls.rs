//! The list server (RFC 4662) at the wire, on a manual clock: a SUBSCRIBE to a resource list
//! with `Supported: eventlist` is answered 200 and notified with `multipart/related` RLMI
//! bodies (parsed here with the crate's own codec): full state first, then after the batch
//! interval only what changed, one NOTIFY per window, the RLMI version rising by one each
//! time; each resource's own rules decide its instance (pending, active, or terminated as
//! rejected); an unsubscribe ends with `terminated`. Without `Supported: eventlist`: `421`.

mod common;
use std::time::Duration;

use common::fixtures::{pidf, uri};
use common::rls::{eventually, instance_of, set_list, state_of};
use common::sip::{aor, header_map, to_tag, token, Client, Server};
use impp::doc::rlmi::InstanceState;
use impp::engine::{AuthAction, AuthRule, WatcherMatch};
use impp::sip::list_body::ListBody;
use impp::sip::SipMessage;

/// A new subscription to `list` for `event`, with more header lines `extra`.
fn subscribe(
    client: &mut Client,
    list: &str,
    event: &str,
    call_id: &str,
    extra: &str,
) -> SipMessage {
    let headers = format!("Event: {event}\r\nExpires: 600\r\n{extra}");
    common::rls::subscribe(client, list, call_id, None, &headers, None)
}

const EVENTLIST: &str = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml, application/dialog-info+xml\r\n";

/// The list body of a NOTIFY, checked for the headers every list NOTIFY carries.
fn list_body(m: &SipMessage) -> ListBody {
    let ct = &header_map(m)["content-type"];
    assert!(ct.starts_with("multipart/related"), "{ct}");
    assert!(ct.contains("type=\"application/rlmi+xml\""), "{ct}");
    assert!(ct.contains("start="), "{ct}");
    common::rls::list_body(m)
}

fn unsubscribe(client: &mut Client, list: &str, call_id: &str, to_tag: &str, event: &str) {
    let headers = format!("Event: {event}\r\nExpires: 0\r\n{EVENTLIST}");
    let r = common::rls::subscribe(client, list, call_id, Some(to_tag), &headers, None);
    assert_eq!(r.status(), Some(200));
}

#[test]
fn a_list_subscription_without_eventlist_is_refused_with_421() {
    let s = Server::clocked(false, |_| {});
    let list = set_list(&s, "buddies", impp::engine::Package::Presence, &["alice"]);
    let mut bob = Client::new(s.udp(), "bob");
    let r = subscribe(&mut bob, &list, "presence", &token(), "");
    assert_eq!(r.status(), Some(421));
    assert_eq!(header_map(&r)["require"], "eventlist");
    // An event the list does not serve.
    let r = subscribe(&mut bob, &list, "dialog", &token(), EVENTLIST);
    assert_eq!(r.status(), Some(489));
    assert_eq!(s.engine.stats().subscriptions_active, 0);
}

#[test]
fn a_buddy_list_gets_full_state_then_one_batched_partial_notify_per_window() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut carol = Client::new(s.udp(), "carol");
    let mut bob = Client::new(s.udp(), "bob");
    for (c, note) in [(&mut alice, "alice 0"), (&mut carol, "carol 0")] {
        let a = c.aor();
        assert_eq!(c.publish("", Some(&pidf(&a, note))).status(), Some(200));
    }
    let list = set_list(
        &s,
        "buddies",
        impp::engine::Package::Presence,
        &["alice", "carol"],
    );
    let call_id = token();
    let r = subscribe(&mut bob, &list, "presence", &call_id, EVENTLIST);
    assert_eq!(r.status(), Some(200));
    assert_eq!(header_map(&r)["require"], "eventlist");
    let tag = to_tag(&r);

    // Full state at once: one part per active resource.
    let first = bob.next_request("NOTIFY");
    assert!(header_map(&first)["subscription-state"].starts_with("active"));
    let body = list_body(&first);
    assert_eq!(body.rlmi.uri, list);
    assert_eq!(body.rlmi.version, 0);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.resources.len(), 2);
    assert_eq!(body.parts.len(), 2);
    for (who, note) in [("alice", "alice 0"), ("carol", "carol 0")] {
        assert_eq!(instance_of(&body, &aor(who)).state, InstanceState::Active);
        assert!(state_of(&body, &aor(who)).unwrap().contains(note));
    }
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    // One change: after the batch interval, one partial NOTIFY with that resource only.
    let a = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&a, "alice 1"))).status(),
        Some(200)
    );
    assert!(s.nothing_arrives(&mut bob), "not before the batch interval");
    s.advance(Duration::from_secs(1));
    let second = bob.next_request("NOTIFY");
    let body = list_body(&second);
    assert_eq!(body.rlmi.version, 1);
    assert!(!body.rlmi.full_state);
    assert_eq!(body.rlmi.resources.len(), 1);
    assert!(state_of(&body, &aor("alice")).unwrap().contains("alice 1"));

    // Two changes within one window: one NOTIFY, with the latest state.
    for note in ["alice 2", "alice 3"] {
        assert_eq!(alice.publish("", Some(&pidf(&a, note))).status(), Some(200));
        s.engine.sync().unwrap();
    }
    assert!(s.nothing_arrives(&mut bob));
    s.advance(Duration::from_secs(1));
    let third = bob.next_request("NOTIFY");
    let body = list_body(&third);
    assert_eq!(body.rlmi.version, 2);
    assert_eq!(body.rlmi.resources.len(), 1);
    assert!(state_of(&body, &aor("alice")).unwrap().contains("alice 3"));
    s.advance(Duration::from_secs(1));
    assert!(s.nothing_arrives(&mut bob), "one NOTIFY for two changes");

    // Unsubscribe: the back subscriptions end, a final NOTIFY says terminated.
    unsubscribe(&mut bob, &list, &call_id, &tag, "presence");
    let last = bob.next_request("NOTIFY");
    assert!(header_map(&last)["subscription-state"].starts_with("terminated"));
    let body = list_body(&last);
    assert_eq!(body.rlmi.version, 3);
    assert!(body.rlmi.full_state);
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 0);
}

fn dialog_info(entity: &str, state: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\" entity=\"{entity}\"><dialog id=\"d1\" direction=\"recipient\"><state>{state}</state></dialog></dialog-info>"
    )
}

fn publish_dialog(c: &mut Client, state: &str) {
    let a = c.aor();
    let body = dialog_info(&a, state);
    let request = c.request(
        "PUBLISH",
        &a,
        &format!("<{a}>"),
        &token(),
        "Event: dialog\r\nExpires: 600\r\n",
        Some(("application/dialog-info+xml", body.as_bytes())),
    );
    assert_eq!(c.transact(&request).status(), Some(200));
}

#[test]
fn a_blf_list_shows_each_resources_own_authorization() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut carol = Client::new(s.udp(), "carol");
    let mut bob = Client::new(s.udp(), "bob");
    publish_dialog(&mut alice, "confirmed");
    publish_dialog(&mut carol, "early");
    let bob_uri = uri(&aor("bob"));
    // Carol blocks bob; dave asks to confirm him.
    for (who, action) in [("carol", AuthAction::Block), ("dave", AuthAction::Confirm)] {
        s.engine
            .set_rule(AuthRule::new(
                uri(&aor(who)),
                WatcherMatch::Watcher(bob_uri.clone()),
                action,
            ))
            .unwrap();
    }
    let list = set_list(
        &s,
        "sales-blf",
        impp::engine::Package::Dialog,
        &["alice", "carol", "dave"],
    );
    let call_id = token();
    let r = subscribe(&mut bob, &list, "dialog", &call_id, EVENTLIST);
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let first = bob.next_request("NOTIFY");
    let body = list_body(&first);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 0);
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice"), aor("carol"), aor("dave")]);
    assert_eq!(
        instance_of(&body, &aor("alice")).state,
        InstanceState::Active
    );
    let part = state_of(&body, &aor("alice")).unwrap();
    assert!(part.contains("confirmed"), "{part}");
    assert!(body.parts[0].is("application/dialog-info+xml"));
    let carol_i = instance_of(&body, &aor("carol"));
    assert_eq!(carol_i.state, InstanceState::Terminated);
    assert_eq!(carol_i.reason.as_deref(), Some("rejected"));
    assert!(carol_i.cid.is_none(), "a blocked watcher learns nothing");
    assert_eq!(
        instance_of(&body, &aor("dave")).state,
        InstanceState::Pending
    );
    assert_eq!(body.parts.len(), 1);

    // Carol's calls stay hidden; alice's show, after the batch interval.
    publish_dialog(&mut carol, "confirmed");
    publish_dialog(&mut alice, "terminated");
    s.advance(Duration::from_secs(1));
    let next = bob.next_request("NOTIFY");
    let body = list_body(&next);
    assert_eq!(body.rlmi.version, 1);
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice")]);
    assert!(state_of(&body, &aor("alice"))
        .unwrap()
        .contains("terminated"));

    unsubscribe(&mut bob, &list, &call_id, &tag, "dialog");
    let last = bob.next_request("NOTIFY");
    assert!(header_map(&last)["subscription-state"].starts_with("terminated"));
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 0);
}

#[test]
fn an_expired_list_subscription_ends_with_its_back_subscriptions() {
    let s = Server::clocked(false, |_| {});
    let mut bob = Client::new(s.udp(), "bob");
    let list = set_list(&s, "buddies", impp::engine::Package::Presence, &["alice"]);
    let r = subscribe(&mut bob, &list, "presence", &token(), EVENTLIST);
    assert_eq!(r.status(), Some(200));
    let first = bob.next_request("NOTIFY");
    assert_eq!(list_body(&first).rlmi.version, 0);
    s.advance(Duration::from_secs(601));
    let last = bob.next_request("NOTIFY");
    assert_eq!(
        header_map(&last)["subscription-state"],
        "terminated;reason=timeout"
    );
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 0);
}

#[test]
fn a_refresh_expands_the_list_again() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut carol = Client::new(s.udp(), "carol");
    let mut bob = Client::new(s.udp(), "bob");
    for (c, note) in [(&mut alice, "alice 0"), (&mut carol, "carol 0")] {
        let a = c.aor();
        assert_eq!(c.publish("", Some(&pidf(&a, note))).status(), Some(200));
    }
    let list = set_list(&s, "buddies", impp::engine::Package::Presence, &["alice"]);
    let call_id = token();
    let r = subscribe(&mut bob, &list, "presence", &call_id, EVENTLIST);
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let body = list_body(&bob.next_request("NOTIFY"));
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice")]);

    // Carol joins the list (the engine's API); nothing is sent before the refresh.
    set_list(
        &s,
        "buddies",
        impp::engine::Package::Presence,
        &["alice", "carol"],
    );
    assert!(
        s.nothing_arrives(&mut bob),
        "the list is expanded at refreshes"
    );
    let refresh = bob.request(
        "SUBSCRIBE",
        &list,
        &format!("<{list}>;tag={tag}"),
        &call_id,
        &format!("Event: presence\r\nExpires: 600\r\n{EVENTLIST}"),
        None,
    );
    let r = bob.transact(&refresh);
    assert_eq!(r.status(), Some(200));
    assert_eq!(header_map(&r)["require"], "eventlist");
    // At once: every resource's state is known (no advance of the clock, which would
    // retransmit the NOTIFY before the client reads it).
    let after = bob.next_request("NOTIFY");
    assert!(header_map(&after)["subscription-state"].starts_with("active"));
    let body = list_body(&after);
    assert!(body.rlmi.full_state, "a refresh's NOTIFY has full state");
    assert_eq!(body.rlmi.version, 1);
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice"), aor("carol")]);
    assert!(state_of(&body, &aor("carol")).unwrap().contains("carol 0"));
    assert!(state_of(&body, &aor("alice")).unwrap().contains("alice 0"));
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    unsubscribe(&mut bob, &list, &call_id, &tag, "presence");
    let last = bob.next_request("NOTIFY");
    assert!(
        header_map(&last)["subscription-state"].starts_with("terminated"),
        "{last:?}"
    );
    eventually(&s, "the back subscriptions end", || {
        s.engine.stats().subscriptions_active == 0
    });
}

#[test]
fn a_fetch_gets_one_full_state_terminated_notify() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let a = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&a, "alice 0"))).status(),
        Some(200)
    );
    let list = set_list(
        &s,
        "buddies",
        impp::engine::Package::Presence,
        &["alice", "carol"],
    );
    let fetch = bob.request(
        "SUBSCRIBE",
        &list,
        &format!("<{list}>"),
        &token(),
        &format!("Event: presence\r\nExpires: 0\r\n{EVENTLIST}"),
        None,
    );
    let r = bob.transact(&fetch);
    assert_eq!(r.status(), Some(200));
    assert_eq!(header_map(&r)["expires"], "0");
    let only = bob.next_request("NOTIFY");
    assert!(
        header_map(&only)["subscription-state"].starts_with("terminated"),
        "{:?}",
        header_map(&only)
    );
    let body = list_body(&only);
    assert!(body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 0);
    let uris: Vec<&str> = body.rlmi.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, [aor("alice"), aor("carol")]);
    assert!(state_of(&body, &aor("alice")).unwrap().contains("alice 0"));
    eventually(&s, "the back subscriptions end", || {
        s.engine.stats().subscriptions_active == 0
    });
    // Nothing more: a change of alice is not sent.
    assert_eq!(
        alice.publish("", Some(&pidf(&a, "alice 1"))).status(),
        Some(200)
    );
    s.advance(Duration::from_secs(2));
    assert!(
        s.nothing_arrives(&mut bob),
        "a fetch has one NOTIFY: {:?}",
        bob.requests
    );
}

#[test]
fn a_list_notify_answered_481_ends_the_dialog_and_its_back_subscriptions() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    bob.auto_answer = false;
    let list = set_list(
        &s,
        "buddies",
        impp::engine::Package::Presence,
        &["alice", "carol"],
    );
    let call_id = token();
    let r = subscribe(&mut bob, &list, "presence", &call_id, EVENTLIST);
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let first = bob.next_request("NOTIFY");
    assert_eq!(list_body(&first).rlmi.version, 0);
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 2);
    bob.answer_with(&first, 481, "Subscription Does Not Exist", "");
    eventually(&s, "the back subscriptions end", || {
        s.engine.stats().subscriptions_active == 0
    });

    // The dialog is gone: no NOTIFY for a change, and a refresh gets 481.
    let a = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&a, "alice 1"))).status(),
        Some(200)
    );
    s.advance(Duration::from_secs(2));
    assert!(s.nothing_arrives(&mut bob), "the list dialog ended");
    let refresh = bob.request(
        "SUBSCRIBE",
        &list,
        &format!("<{list}>;tag={tag}"),
        &call_id,
        &format!("Event: presence\r\nExpires: 600\r\n{EVENTLIST}"),
        None,
    );
    assert_eq!(bob.transact(&refresh).status(), Some(481));
}
