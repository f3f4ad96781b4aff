//! The list server's subscribers of owned resources as members of shared subscriptions
//! (issue 16), at the wire on a manual clock. A list subscriber of a resource of this domain
//! is a member of that resource's shared subscription, not a subscription of its own, yet
//! the IMPP model must still hold for it one by one: the presentity's rules decide it (a
//! pending one is listed and decided by its id, a blocked one comes back when a rule later
//! allows it, with a new RLMI instance), a polite-blocked one sees a neutral document and
//! never the presentity's own, the presentity sees it in watcher information, it lives while
//! the list dialogs that hold it do, and a change of the resource is one engine notification
//! however many dialogs watch it. These tests hold the list server and the engine to that.

mod common;
use std::collections::HashSet;
use std::time::Duration;

use common::fixtures::uri;
use common::rls::{
    eventually, instance_of, list_body, publish, set_list, state_of, state_text, uris,
};
use common::sip::{aor, header_map, to_tag, token, Client, Server};
use impp::doc::rlmi::InstanceState;
use impp::doc::winfo::{Watcher, WatcherEvent, WatcherStatus, Watcherinfo};
use impp::doc::Limits;
use impp::engine::{AuthAction, AuthRule, Package, SubscriptionState, WatcherMatch};
use impp::sip::list_body::ListBody;
use impp::sip::SipMessage;

const EVENTLIST: &str = "Supported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n";

/// A list dialog of one client: what it needs to refresh or end it.
struct Dialog {
    list: String,
    call_id: String,
    tag: String,
}

/// `client` subscribes to `list` for presence; the dialog and its first NOTIFY's body.
fn open(client: &mut Client, list: &str) -> (Dialog, ListBody) {
    let call_id = token();
    let headers = format!("Event: presence\r\nExpires: 600\r\n{EVENTLIST}");
    let r = common::rls::subscribe(client, list, &call_id, None, &headers, None);
    assert_eq!(r.status(), Some(200), "{:?}", header_map(&r));
    let tag = to_tag(&r);
    let first = next_notify(client, &call_id);
    assert!(header_map(&first)["subscription-state"].starts_with("active"));
    let body = list_body(&first);
    assert!(body.rlmi.full_state);
    let dialog = Dialog {
        list: list.to_owned(),
        call_id,
        tag,
    };
    (dialog, body)
}

/// Ends `dialog` (Expires: 0); its last NOTIFY, which says terminated.
fn close(client: &mut Client, dialog: &Dialog) -> SipMessage {
    let headers = format!("Event: presence\r\nExpires: 0\r\n{EVENTLIST}");
    let r = common::rls::subscribe(
        client,
        &dialog.list,
        &dialog.call_id,
        Some(&dialog.tag),
        &headers,
        None,
    );
    assert_eq!(r.status(), Some(200));
    let last = next_notify(client, &dialog.call_id);
    assert!(header_map(&last)["subscription-state"].starts_with("terminated"));
    last
}

/// The next NOTIFY of the dialog `call_id` (others are kept for later).
fn next_notify(client: &mut Client, call_id: &str) -> SipMessage {
    let mut others = Vec::new();
    let found = loop {
        let n = client.next_request("NOTIFY");
        if header_map(&n)["call-id"] == call_id {
            break n;
        }
        others.push(n);
    };
    client.requests.extend(others);
    found
}

/// A rule of `presentity` for the watcher `watcher`.
fn rule(s: &Server, presentity: &str, watcher: &str, action: AuthAction) {
    s.engine
        .set_rule(AuthRule::new(
            uri(&aor(presentity)),
            WatcherMatch::Watcher(uri(&aor(watcher))),
            action,
        ))
        .unwrap();
}

#[test]
fn a_pending_member_is_listed_and_decided_by_its_id() {
    let s = Server::clocked(false, |_| {});
    rule(&s, "alice", "bob", AuthAction::Confirm);
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    let list = set_list(&s, "buddies", Package::Presence, &["alice", "carol"]);
    let mut bob = Client::new(s.udp(), "bob");
    let (dialog, body) = open(&mut bob, &list);
    let pending = instance_of(&body, &aor("alice"));
    assert_eq!(pending.state, InstanceState::Pending);
    assert!(pending.cid.is_none(), "a pending watcher sees nothing yet");
    assert_eq!(
        instance_of(&body, &aor("carol")).state,
        InstanceState::Active
    );

    // The application sees bob's member among alice's subscriptions, pending.
    s.engine.sync().unwrap();
    let subs = s.engine.subscriptions(Some(&uri(&aor("alice")))).unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    let member = &subs[0];
    assert_eq!(member.watcher, uri(&aor("bob")));
    assert_eq!(member.state, SubscriptionState::Pending);
    assert_eq!(member.authorization, AuthAction::Confirm);
    assert_eq!(member.expires_in, Duration::ZERO);
    assert_eq!(member.target.as_deref(), Some(&b"impp-member"[..]));
    assert_eq!(s.engine.stats().subscriptions_pending, 1);

    // Alice allows it: the next (partial) list NOTIFY shows it active with her document.
    s.engine.authorize(member.id, AuthAction::Allow).unwrap();
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &dialog.call_id));
    assert!(!body.rlmi.full_state);
    assert_eq!(body.rlmi.version, 1);
    assert_eq!(uris(&body), [aor("alice")]);
    assert_eq!(
        instance_of(&body, &aor("alice")).state,
        InstanceState::Active
    );
    assert!(state_text(&body, &aor("alice")).contains("alice 0"));
    let subs = s.engine.subscriptions(Some(&uri(&aor("alice")))).unwrap();
    assert_eq!(subs[0].state, SubscriptionState::Active);
    assert_eq!(s.engine.stats().subscriptions_pending, 0);

    close(&mut bob, &dialog);
    eventually(&s, "the members leave", || {
        s.engine.subscriptions(None).unwrap().is_empty()
    });
}

#[test]
fn a_rule_changed_during_the_dialog_blocks_and_allows_the_member_again() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    publish(&s, "carol", "carol 0");
    rule(&s, "alice", "bob", AuthAction::Allow);
    let list = set_list(&s, "buddies", Package::Presence, &["alice", "carol"]);
    let mut bob = Client::new(s.udp(), "bob");
    let (dialog, body) = open(&mut bob, &list);
    let before = instance_of(&body, &aor("alice"));
    assert_eq!(before.state, InstanceState::Active);
    assert!(state_text(&body, &aor("alice")).contains("alice 0"));

    // Allow → block: alice's resource alone ends as rejected; carol is not sent again.
    rule(&s, "alice", "bob", AuthAction::Block);
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &dialog.call_id));
    assert!(!body.rlmi.full_state);
    assert_eq!(uris(&body), [aor("alice")], "carol's resource is unchanged");
    let blocked = instance_of(&body, &aor("alice"));
    assert_eq!(blocked.state, InstanceState::Terminated);
    assert_eq!(blocked.reason.as_deref(), Some("rejected"));
    assert!(blocked.cid.is_none(), "a blocked watcher learns nothing");
    assert!(body.parts.is_empty());
    let subs = s.engine.subscriptions(Some(&uri(&aor("alice")))).unwrap();
    assert_eq!(
        subs[0].state,
        SubscriptionState::Terminated(Some(impp::engine::TerminationReason::Rejected))
    );

    // While blocked, alice's changes stay hidden.
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);

    // Block → allow: active again, with alice's latest document, as a new instance.
    rule(&s, "alice", "bob", AuthAction::Allow);
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &dialog.call_id));
    assert_eq!(uris(&body), [aor("alice")]);
    let again = instance_of(&body, &aor("alice"));
    assert_eq!(again.state, InstanceState::Active);
    assert_ne!(again.id, before.id, "a new instance after a terminated one");
    assert!(state_text(&body, &aor("alice")).contains("alice 1"));

    // And it follows alice again.
    publish(&s, "alice", "alice 2");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &dialog.call_id));
    assert_eq!(uris(&body), [aor("alice")]);
    assert_eq!(instance_of(&body, &aor("alice")).id, again.id);
    assert!(state_text(&body, &aor("alice")).contains("alice 2"));
    close(&mut bob, &dialog);
}

/// Whether any part of any list NOTIFY in `notifies` contains `text`.
fn leaks(notifies: &[SipMessage], text: &str) -> bool {
    notifies
        .iter()
        .filter(|m| m.method() == Some("NOTIFY"))
        .any(|m| String::from_utf8_lossy(m.body()).contains(text))
}

#[test]
fn a_polite_blocked_member_sees_a_neutral_document_and_never_the_presentitys() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice secret 0");
    rule(&s, "alice", "bob", AuthAction::PoliteBlock);
    let list = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let mut bob = Client::new(s.udp(), "bob");
    let mut carol = Client::new(s.udp(), "carol");
    let (bob_dialog, body) = open(&mut bob, &list);
    assert_eq!(
        instance_of(&body, &aor("alice")).state,
        InstanceState::Active
    );
    let neutral = state_text(&body, &aor("alice"));
    assert!(neutral.contains(&aor("alice")), "{neutral}");
    assert!(!neutral.contains("secret"), "{neutral}");
    let (carol_dialog, body) = open(&mut carol, &list);
    assert!(state_text(&body, &aor("alice")).contains("alice secret 0"));

    // Alice publishes: carol is told, bob's NOTIFYs carry none of it.
    publish(&s, "alice", "alice secret 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut carol, &carol_dialog.call_id));
    assert!(state_text(&body, &aor("alice")).contains("alice secret 1"));
    s.advance(Duration::from_secs(1));
    let quiet = s.nothing_arrives(&mut bob);
    assert!(
        !leaks(&bob.requests, "secret"),
        "alice's document reached bob: {:?}",
        bob.requests
    );
    assert!(quiet, "nothing changed for bob: {:?}", bob.requests);

    // A refresh's full state still shows only the neutral document.
    let headers = format!("Event: presence\r\nExpires: 600\r\n{EVENTLIST}");
    let r = common::rls::subscribe(
        &mut bob,
        &list,
        &bob_dialog.call_id,
        Some(&bob_dialog.tag),
        &headers,
        None,
    );
    assert_eq!(r.status(), Some(200));
    let full = next_notify(&mut bob, &bob_dialog.call_id);
    let body = list_body(&full);
    assert!(body.rlmi.full_state);
    assert!(!state_text(&body, &aor("alice")).contains("secret"));
    close(&mut bob, &bob_dialog);
    close(&mut carol, &carol_dialog);
}

/// The watchers of `presentity`'s presence in a watcher-information NOTIFY.
fn watchers(n: &SipMessage, presentity: &str) -> Vec<Watcher> {
    assert_eq!(header_map(n)["content-type"], "application/watcherinfo+xml");
    let doc = Watcherinfo::parse(&String::from_utf8_lossy(n.body()), &Limits::default()).unwrap();
    doc.list(presentity, "presence")
        .map(|l| l.watchers.clone())
        .unwrap_or_default()
}

#[test]
fn the_presentity_sees_a_list_subscriber_in_watcher_information() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let a = alice.aor();
    let winfo_call = token();
    let winfo = alice.request(
        "SUBSCRIBE",
        &a,
        &format!("<{a}>"),
        &winfo_call,
        "Event: presence.winfo\r\nExpires: 600\r\nAccept: application/watcherinfo+xml\r\n",
        None,
    );
    assert_eq!(alice.transact(&winfo).status(), Some(200));
    let first = next_notify(&mut alice, &winfo_call);
    assert!(watchers(&first, &a).is_empty());

    let list = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let mut bob = Client::new(s.udp(), "bob");
    let (dialog, _) = open(&mut bob, &list);
    s.engine.sync().unwrap();
    let told = watchers(&next_notify(&mut alice, &winfo_call), &a);
    let w = told
        .iter()
        .find(|w| w.uri == aor("bob"))
        .unwrap_or_else(|| panic!("bob is not a watcher: {told:?}"));
    assert_eq!(w.status, WatcherStatus::Active);
    assert_eq!(w.event, WatcherEvent::Subscribe);

    // Bob's list dialog ends: his member leaves, and alice is told so.
    close(&mut bob, &dialog);
    s.engine.sync().unwrap();
    let told = watchers(&next_notify(&mut alice, &winfo_call), &a);
    let w = told
        .iter()
        .find(|w| w.uri == aor("bob"))
        .unwrap_or_else(|| panic!("bob is not in {told:?}"));
    assert_eq!(w.status, WatcherStatus::Terminated);
    assert_eq!(w.event, WatcherEvent::Timeout);
}

#[test]
fn a_member_held_by_two_list_dialogs_lives_until_both_end() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    let buddies = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let friends = set_list(&s, "friends", Package::Presence, &["alice", "carol"]);
    // Bob's desk phone and soft phone, each with a list holding alice.
    let mut desk = Client::new(s.udp(), "bob");
    let mut soft = Client::new(s.udp(), "bob");
    let (d1, b1) = open(&mut desk, &buddies);
    let (d2, b2) = open(&mut soft, &friends);
    for body in [&b1, &b2] {
        assert!(state_text(body, &aor("alice")).contains("alice 0"));
    }
    s.engine.sync().unwrap();
    let alice_uri = uri(&aor("alice"));
    assert_eq!(s.engine.subscriptions(Some(&alice_uri)).unwrap().len(), 1);
    // One member of alice and one of carol.
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    // The desk phone leaves; the soft phone still follows alice.
    close(&mut desk, &d1);
    s.engine.sync().unwrap();
    assert_eq!(s.engine.subscriptions(Some(&alice_uri)).unwrap().len(), 1);
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut soft, &d2.call_id));
    assert_eq!(uris(&body), [aor("alice")]);
    assert!(state_text(&body, &aor("alice")).contains("alice 1"));
    assert_eq!(
        instance_of(&body, &aor("alice")).state,
        InstanceState::Active
    );
    assert!(s.nothing_arrives(&mut desk), "{:?}", desk.requests);

    // The soft phone leaves too: no member is left.
    close(&mut soft, &d2);
    eventually(&s, "the members leave", || {
        s.engine.subscriptions(None).unwrap().is_empty()
    });
    let stats = s.engine.stats();
    assert_eq!(stats.subscriptions_active, 0);
    assert_eq!(stats.subscriptions_pending, 0);
}

#[test]
fn one_change_watched_by_twenty_list_dialogs_is_one_engine_notification() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    let list = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let mut watchers: Vec<(Client, Dialog)> = (0..20)
        .map(|i| {
            let mut c = Client::new(s.udp(), &format!("w{i}"));
            let (d, body) = open(&mut c, &list);
            assert!(state_text(&body, &aor("alice")).contains("alice 0"));
            (c, d)
        })
        .collect();
    s.engine.sync().unwrap();
    let before = s.engine.stats();
    assert_eq!(before.subscriptions_active, 20);
    assert_eq!(
        s.engine
            .subscriptions(Some(&uri(&aor("alice"))))
            .unwrap()
            .len(),
        20
    );

    publish(&s, "alice", "alice 1");
    s.engine.sync().unwrap();
    let after = s.engine.stats();
    assert_eq!(
        after.notifications_sent - before.notifications_sent,
        1,
        "one group notification, not one per member"
    );

    // Yet every dialog is told.
    s.advance(Duration::from_secs(1));
    let mut told = HashSet::new();
    for (c, d) in &mut watchers {
        let body = list_body(&next_notify(c, &d.call_id));
        assert!(state_of(&body, &aor("alice")).unwrap().contains("alice 1"));
        told.insert(c.user.clone());
    }
    assert_eq!(told.len(), 20);
}

/// A dialog-info document of `user`'s one dialog in `state`.
fn dialog_info(user: &str, state: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\" entity=\"{}\"><dialog id=\"d1\" direction=\"recipient\"><state>{state}</state></dialog></dialog-info>",
        aor(user)
    )
}

#[test]
fn a_resource_in_lists_of_two_packages_shows_each_its_own_documents() {
    // The list server keeps a resource once per package: a change of alice's calls is no
    // news for a presence list, and her presence none for a busy-lamp list.
    let s = Server::clocked(false, |_| {});
    let alice = uri(&aor("alice"));
    publish(&s, "alice", "alice 0");
    let busy = dialog_info("alice", "early");
    s.engine
        .publish_body(&alice, Package::Dialog, &busy, None)
        .unwrap();
    let buddies = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let blf = set_list(&s, "blf", Package::Dialog, &["alice"]);
    let mut bob = Client::new(s.udp(), "bob");
    let (presence, body) = open(&mut bob, &buddies);
    assert!(state_text(&body, &aor("alice")).contains("alice 0"));
    let call_id = token();
    let headers = "Event: dialog\r\nExpires: 600\r\nSupported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/dialog-info+xml\r\n";
    let r = common::rls::subscribe(&mut bob, &blf, &call_id, None, headers, None);
    assert_eq!(r.status(), Some(200));
    let body = list_body(&next_notify(&mut bob, &call_id));
    assert!(state_text(&body, &aor("alice")).contains("early"));

    // Her calls change: the busy-lamp list is told, the presence list is not.
    let busy = dialog_info("alice", "confirmed");
    s.engine
        .publish_body(&alice, Package::Dialog, &busy, None)
        .unwrap();
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &call_id));
    assert_eq!(body.rlmi.version, 1);
    assert!(state_text(&body, &aor("alice")).contains("confirmed"));
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);

    // Her presence changes: the presence list's next NOTIFY is its first partial one, with
    // her presence document.
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &presence.call_id));
    assert_eq!(body.rlmi.version, 1);
    let part = state_text(&body, &aor("alice"));
    assert!(
        part.contains("alice 1") && !part.contains("dialog-info"),
        "{part}"
    );
    assert!(s.nothing_arrives(&mut bob), "{:?}", bob.requests);
}

#[test]
fn a_resource_two_lists_spell_apart_is_written_as_each_list_spells_it() {
    // The list server keeps a resource once, under its key; a list that names it otherwise
    // (`pres:` here) still sees its own spelling in its RLMI, and the changes.
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    let sip_list = set_list(&s, "buddies", Package::Presence, &["alice"]);
    let pres_alice = format!("pres:alice@{}", common::sip::DOMAIN);
    let mut other = impp::engine::ResourceList::new(uri(&aor("others")));
    other.packages = vec![Package::Presence];
    other.push_resource(uri(&pres_alice), None);
    s.engine.set_list(other).unwrap();
    let mut bob = Client::new(s.udp(), "bob");
    let (first, body) = open(&mut bob, &sip_list);
    assert_eq!(uris(&body), [aor("alice")]);
    let (second, body) = open(&mut bob, &aor("others"));
    assert_eq!(uris(&body), std::slice::from_ref(&pres_alice));
    assert!(state_text(&body, &pres_alice).contains("alice 0"));

    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &first.call_id));
    assert!(state_text(&body, &aor("alice")).contains("alice 1"));
    let body = list_body(&next_notify(&mut bob, &second.call_id));
    assert_eq!(uris(&body), std::slice::from_ref(&pres_alice));
    assert!(state_text(&body, &pres_alice).contains("alice 1"));

    // The first list ends; the second keeps the resource and its changes.
    close(&mut bob, &first);
    publish(&s, "alice", "alice 2");
    s.advance(Duration::from_secs(1));
    let body = list_body(&next_notify(&mut bob, &second.call_id));
    assert_eq!(uris(&body), std::slice::from_ref(&pres_alice));
    assert!(state_text(&body, &pres_alice).contains("alice 2"));
}
