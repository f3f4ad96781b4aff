//! Subscriptions to request-contained resource lists (RFC 5367) at the list server, at the
//! wire with the crate's UDP client on a manual clock: a SUBSCRIBE with `Require:
//! recipient-list-subscribe` carries its own list (`application/resource-lists+xml`,
//! `Content-Disposition: recipient-list`, plain or `Content-Encoding: deflate`/`gzip`), and
//! the dialog watches exactly those resources, each under its own rules, whether or not a
//! list of the Request-URI is stored (the body wins). A refresh without a body keeps the list,
//! one with a body replaces it; the list comes back after a restart. Bad bodies get `400`
//! with the reason and change nothing; a `Require` naming an unknown option tag gets `420`
//! with `Unsupported`. A subscriber whose User-Agent is Linphone's gets its NOTIFYs in
//! Linphone's dialect (`Event: Presence`, `Content-Id: cid`); any other, the standard one.

mod common;
use std::io::Write;
use std::time::Duration;

use common::fixtures::{pidf, uri};
use common::rls::{instance_of, list_body, publish, state_text, uris};
use common::sip::{aor, header_map, to_tag, token, Client, Server, SqliteFile, DOMAIN};
use impp::doc::rlmi::InstanceState;
use impp::engine::{AuthAction, AuthRule, ResourceList, WatcherMatch};
use impp::sip::SipMessage;

const LIST: &str = "sip:bob-buddies@example.test";

/// A resource-lists document of `users`, as Linphone writes its friend list.
fn resource_lists(users: &[&str]) -> String {
    let mut doc = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<resource-lists \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns=\"urn:ietf:params:xml:ns:resource-lists\">\n <list>\n",
    );
    for u in users {
        doc.push_str(&format!("  <entry uri=\"{}\"/>\n", aor(u)));
    }
    doc.push_str(" </list>\n</resource-lists>\n");
    doc
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

const HEADERS: &str = "Event: presence\r\nSupported: eventlist\r\n\
    Accept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n\
    Require: recipient-list-subscribe\r\nContent-Disposition: recipient-list\r\n";

/// A SUBSCRIBE to [`LIST`] carrying `body` (`None`: no body), with more header lines
/// `extra`, in the dialog `to_tag` names (`None`: a new one).
fn subscribe(
    client: &mut Client,
    call_id: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: Option<&[u8]>,
) -> SipMessage {
    let headers = format!("{HEADERS}Expires: 600\r\n{extra}");
    let body = body.map(|b| ("application/resource-lists+xml", b));
    common::rls::subscribe(client, LIST, call_id, to_tag, &headers, body)
}

/// The body's resources are watched (deflated, as Linphone sends them): no stored list
/// needed, each resource under its own rules, full state then partial state, the standard
/// spelling for a subscriber that is not Linphone.
#[test]
fn a_deflated_recipient_list_is_watched_without_a_stored_list() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    s.engine
        .set_rule(AuthRule::new(
            uri(&aor("carol")),
            WatcherMatch::Watcher(uri(&aor("bob"))),
            AuthAction::Block,
        ))
        .unwrap();
    let mut bob = Client::new(s.udp(), "bob");
    let doc = resource_lists(&["alice", "carol", "dave"]);
    let r = subscribe(
        &mut bob,
        &token(),
        None,
        "Content-Encoding: deflate\r\n",
        Some(&deflate(doc.as_bytes())),
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(header_map(&r)["require"], "eventlist");
    let first = bob.next_request("NOTIFY");
    let h = header_map(&first);
    assert_eq!(h["event"], "presence", "the standard spelling for others");
    assert!(String::from_utf8_lossy(first.body()).contains("Content-ID: <"));
    let body = list_body(&first);
    assert_eq!(body.rlmi.uri, LIST, "the Request-URI names the ad-hoc list");
    assert!(body.rlmi.full_state);
    assert_eq!(uris(&body), [aor("alice"), aor("carol"), aor("dave")]);
    assert!(state_text(&body, &aor("alice")).contains("alice 0"));
    assert_eq!(
        instance_of(&body, &aor("carol")).state,
        InstanceState::Terminated,
        "carol's own rules block bob"
    );
    assert_eq!(
        instance_of(&body, &aor("dave")).state,
        InstanceState::Active,
        "no publication: active, closed"
    );
    // alice and dave are watched (carol refused bob).
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    publish(&s, "dave", "dave 1");
    s.advance(Duration::from_secs(1));
    let next = list_body(&bob.next_request("NOTIFY"));
    assert!(!next.rlmi.full_state);
    assert_eq!(uris(&next), [aor("dave")]);
    assert!(state_text(&next, &aor("dave")).contains("dave 1"));
}

/// A stored list of the same URI does not count: the dialog watches the body's resources.
/// gzip is read too.
#[test]
fn the_body_wins_over_a_stored_list_of_that_uri() {
    let s = Server::clocked(false, |_| {});
    let mut stored = ResourceList::new(uri(LIST));
    stored.push_resource(uri(&aor("zoe")), None);
    s.engine.set_list(stored).unwrap();
    let mut bob = Client::new(s.udp(), "bob");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(resource_lists(&["alice"]).as_bytes()).unwrap();
    let r = subscribe(
        &mut bob,
        &token(),
        None,
        "Content-Encoding: gzip\r\n",
        Some(&gz.finish().unwrap()),
    );
    assert_eq!(r.status(), Some(200));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert_eq!(uris(&body), [aor("alice")]);
    // Without the recipient list, the stored list is served as before.
    let mut carol = Client::new(s.udp(), "carol");
    let request = carol.request(
        "SUBSCRIBE",
        LIST,
        &format!("<{LIST}>"),
        &token(),
        "Event: presence\r\nSupported: eventlist\r\nExpires: 600\r\n",
        None,
    );
    assert_eq!(carol.transact(&request).status(), Some(200));
    let body = list_body(&carol.next_request("NOTIFY"));
    assert_eq!(uris(&body), [aor("zoe")]);
}

/// A refresh without a body keeps the list; one with a body replaces it (resources gone
/// unsubscribed, new ones subscribed); a bad one is refused and changes nothing.
#[test]
fn refreshes_keep_or_replace_the_list() {
    let s = Server::clocked(false, |_| {});
    let mut bob = Client::new(s.udp(), "bob");
    let call_id = token();
    let doc = resource_lists(&["alice", "carol"]);
    let r = subscribe(&mut bob, &call_id, None, "", Some(doc.as_bytes()));
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let _ = bob.next_request("NOTIFY");
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    let r = subscribe(&mut bob, &call_id, Some(&tag), "", None);
    assert_eq!(r.status(), Some(200));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(body.rlmi.full_state);
    assert_eq!(uris(&body), [aor("alice"), aor("carol")]);

    // A bad body: 400, the dialog as it was.
    let r = subscribe(&mut bob, &call_id, Some(&tag), "", Some(b"<resource-lists"));
    assert_eq!(r.status(), Some(400));
    assert!(r.reason().unwrap().contains("recipient list"), "{r:?}");
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    let doc = resource_lists(&["carol", "dave"]);
    let r = subscribe(&mut bob, &call_id, Some(&tag), "", Some(doc.as_bytes()));
    assert_eq!(r.status(), Some(200));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(body.rlmi.full_state);
    assert_eq!(uris(&body), [aor("carol"), aor("dave")]);
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 2);
    // And kept at the next refresh without a body.
    let r = subscribe(&mut bob, &call_id, Some(&tag), "", None);
    assert_eq!(r.status(), Some(200));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert_eq!(uris(&body), [aor("carol"), aor("dave")]);
}

/// Bad recipient lists get `400` saying why, and no subscription is made.
#[test]
fn bad_recipient_lists_are_refused_with_400() {
    let s = Server::clocked(false, |_| {});
    let mut bob = Client::new(s.udp(), "bob");
    let doc = resource_lists(&["alice"]);
    let bomb = deflate(&vec![b' '; 1 << 20]);
    let mut many =
        String::from("<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>");
    for n in 0..=impp::model::list::MAX_RESOURCES {
        many.push_str(&format!("<entry uri=\"sip:u{n}@{DOMAIN}\"/>"));
    }
    many.push_str("</list></resource-lists>");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("", b"<resource-lists><list>".to_vec(), "recipient list"),
        ("", Vec::new(), "no body"),
        (
            "Content-Encoding: br\r\n",
            doc.clone().into_bytes(),
            "Content-Encoding",
        ),
        ("Content-Encoding: deflate\r\n", bomb, "inflates past"),
        (
            "Content-Encoding: deflate\r\n",
            deflate(many.as_bytes()),
            "more than 1000 entries",
        ),
        (
            "",
            b"<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>\
              <entry-ref ref=\"lists/x\"/></list></resource-lists>"
                .to_vec(),
            "entry-ref",
        ),
    ];
    for (extra, body, why) in cases {
        let body = (!body.is_empty()).then_some(body);
        let r = subscribe(&mut bob, &token(), None, extra, body.as_deref());
        assert_eq!(r.status(), Some(400), "{why}");
        let reason = r.reason().unwrap();
        assert!(reason.contains(why), "{why}: {reason}");
    }
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 0);
    assert!(bob.requests.is_empty(), "no NOTIFY");
}

/// RFC 3261 §8.2.2.3: a requirement the server does not implement is refused with `420`
/// and `Unsupported` naming it (and only it), for a SUBSCRIBE and any other request.
#[test]
fn an_unknown_requirement_gets_420_with_unsupported() {
    let s = Server::clocked(false, |_| {});
    let mut bob = Client::new(s.udp(), "bob");
    let doc = resource_lists(&["alice"]);
    let r = subscribe(
        &mut bob,
        &token(),
        None,
        "Require: eventlist, foo\r\nRequire: bar\r\n",
        Some(doc.as_bytes()),
    );
    assert_eq!(r.status(), Some(420));
    assert_eq!(header_map(&r)["unsupported"], "foo, bar");
    // A single subscription too.
    let alice = aor("alice");
    let request = bob.request(
        "SUBSCRIBE",
        &alice,
        &format!("<{alice}>"),
        &token(),
        "Event: presence\r\nRequire: 100rel\r\n",
        None,
    );
    let r = bob.transact(&request);
    assert_eq!(r.status(), Some(420));
    assert_eq!(header_map(&r)["unsupported"], "100rel");
    // recipient-list-subscribe is a SUBSCRIBE's option: a PUBLISH requiring it is refused.
    let request = bob.request(
        "PUBLISH",
        &bob.aor(),
        &format!("<{}>", bob.aor()),
        &token(),
        "Event: presence\r\nRequire: recipient-list-subscribe\r\n",
        Some(("application/pidf+xml", pidf(&bob.aor(), "x").as_bytes())),
    );
    let r = bob.transact(&request);
    assert_eq!(r.status(), Some(420));
    assert_eq!(header_map(&r)["unsupported"], "recipient-list-subscribe");
    s.engine.sync().unwrap();
    assert_eq!(s.engine.stats().subscriptions_active, 0);
    // OPTIONS says what is supported.
    let r = bob.options();
    assert_eq!(
        header_map(&r)["supported"],
        "eventlist, recipient-list-subscribe"
    );
}

const LINPHONE: &str = "User-Agent: Linphonec/5.1.65\r\n";

/// A Linphone subscriber gets `Event: Presence` and `Content-Id: cid` (see the list
/// server's module doc), which the crate's own parser reads as well.
#[test]
fn linphone_gets_its_dialect() {
    let s = Server::clocked(false, |_| {});
    publish(&s, "alice", "alice 0");
    let mut bob = Client::new(s.udp(), "bob");
    let doc = resource_lists(&["alice", "carol"]);
    let r = subscribe(&mut bob, &token(), None, LINPHONE, Some(doc.as_bytes()));
    assert_eq!(r.status(), Some(200));
    let first = bob.next_request("NOTIFY");
    assert_eq!(header_map(&first)["event"], "Presence");
    let text = String::from_utf8_lossy(first.body()).to_string();
    assert!(text.contains("\r\nContent-Id: "), "{text}");
    assert!(!text.contains("Content-ID: <"), "{text}");
    let body = list_body(&first);
    assert!(state_text(&body, &aor("alice")).contains("alice 0"));
    publish(&s, "alice", "alice 1");
    s.advance(Duration::from_secs(1));
    let next = bob.next_request("NOTIFY");
    assert_eq!(header_map(&next)["event"], "Presence");
    assert!(state_text(&list_body(&next), &aor("alice")).contains("alice 1"));
}

/// An ad-hoc list dialog comes back after a restart from its back subscriptions: the same
/// resources (no stored list anywhere), the same dialog, Linphone's dialect kept, and a
/// refresh without a body keeps the list.
#[test]
fn an_adhoc_list_survives_a_restart() {
    let file = SqliteFile::new("rls-adhoc-restart");
    let s = file.start();
    let mut bob = Client::new(s.udp(), "bob");
    let call_id = token();
    let doc = resource_lists(&["alice", "carol"]);
    let r = subscribe(
        &mut bob,
        &call_id,
        None,
        &format!("{LINPHONE}Content-Encoding: deflate\r\n"),
        Some(&deflate(doc.as_bytes())),
    );
    assert_eq!(r.status(), Some(200));
    let tag = to_tag(&r);
    let first = bob.next_request("NOTIFY");
    let body = list_body(&first);
    let (version_before, cseq_before) = (body.rlmi.version, first.cseq().unwrap().seq);
    assert_eq!(uris(&body), [aor("alice"), aor("carol")]);

    // Stopped, started again on the same file a minute later: no stored list anywhere.
    let s = file.restart(s, Duration::from_secs(60));
    assert!(s.engine.lists().is_empty());
    bob.server = s.udp();
    s.advance(Duration::from_secs(1));
    let full = bob.next_request("NOTIFY");
    assert_eq!(full.call_id().unwrap(), call_id, "the same dialog");
    assert_eq!(full.from().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(
        header_map(&full)["event"],
        "Presence",
        "Linphone's dialect kept"
    );
    assert!(String::from_utf8_lossy(full.body()).contains("\r\nContent-Id: "));
    let body = list_body(&full);
    assert!(body.rlmi.full_state);
    assert!(body.rlmi.version > version_before);
    assert!(full.cseq().unwrap().seq > cseq_before);
    assert_eq!(uris(&body), [aor("alice"), aor("carol")]);
    assert_eq!(s.engine.stats().subscriptions_active, 2);

    publish(&s, "carol", "carol 1");
    s.advance(Duration::from_secs(1));
    let partial = list_body(&bob.next_request("NOTIFY"));
    assert_eq!(uris(&partial), [aor("carol")]);
    assert!(state_text(&partial, &aor("carol")).contains("carol 1"));

    // A refresh without a body keeps the restored list.
    let r = subscribe(&mut bob, &call_id, Some(&tag), LINPHONE, None);
    assert_eq!(r.status(), Some(200));
    s.advance(Duration::from_secs(1));
    let body = list_body(&bob.next_request("NOTIFY"));
    assert!(body.rlmi.full_state);
    assert_eq!(uris(&body), [aor("alice"), aor("carol")]);
    assert_eq!(s.engine.stats().subscriptions_active, 2);
    s.stop();
}
