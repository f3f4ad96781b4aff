//! Details of what the server puts on the wire, checked there with the client of
//! `common::sip`: a SUBSCRIBE whose Accept takes no type of its package is refused `406` and
//! makes nothing; every 2xx to PUBLISH carries `SIP-ETag`, a removal's the removed tag with
//! `Expires: 0`; the server's NOTIFYs name it in `User-Agent` (a request header), its answers
//! in `Server`.

mod common;
use common::sip::{header_map, token, Client, Server};

/// A SUBSCRIBE from `watcher` to `presentity` outside a dialog, with `extra` header lines.
fn subscribe(watcher: &mut Client, presentity: &str, extra: &str) -> impp::sip::SipMessage {
    let request = watcher.request(
        "SUBSCRIBE",
        presentity,
        &format!("<{presentity}>"),
        &token(),
        &format!("{extra}Expires: 600\r\n"),
        None,
    );
    watcher.transact(&request)
}

#[test]
fn a_subscribe_whose_accept_takes_no_type_of_the_package_is_refused_406_and_makes_nothing() {
    let s = Server::start(false);
    let alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let aor = alice.aor();
    for (extra, accept) in [
        (
            "Event: presence\r\nAccept: text/plain\r\n",
            "application/pidf+xml",
        ),
        (
            "Event: presence\r\nAccept: application/pidf+xml;q=0\r\n",
            "application/pidf+xml",
        ),
        // The most specific range decides: PIDF is refused although */* is listed.
        (
            "Event: presence\r\nAccept: application/pidf+xml;q=0, */*\r\n",
            "application/pidf+xml",
        ),
        // Present but empty: no body is acceptable (RFC 3261 §20.1).
        ("Event: presence\r\nAccept:\r\n", "application/pidf+xml"),
        (
            "Event: dialog\r\nAccept: application/pidf+xml\r\n",
            "application/dialog-info+xml",
        ),
    ] {
        let r = subscribe(&mut bob, &aor, extra);
        assert_eq!(r.status(), Some(406), "{extra:?}: {:?}", r.reason());
        assert_eq!(header_map(&r)["accept"], accept, "{extra:?}");
        assert_eq!(s.engine.stats().subscriptions_active, 0, "{extra:?}");
    }
    // A media range that is not one: 400, and nothing either.
    let r = subscribe(&mut bob, &aor, "Event: presence\r\nAccept: */plain\r\n");
    assert_eq!(r.status(), Some(400), "{:?}", r.reason());
    assert_eq!(s.engine.stats().subscriptions_active, 0);

    // Accepted: a wildcard, the types of an RLS watcher (RFC 4662) among which is PIDF, the
    // dialog package's own type, and no Accept at all (the package's type is assumed). Each
    // is answered 200 and its first NOTIFY has the package's type; the NOTIFYs that arrive
    // are of these dialogs only, none of the refused ones.
    for (extra, content_type) in [
        (
            "Event: presence\r\nAccept: application/*\r\n",
            "application/pidf+xml",
        ),
        (
            "Event: presence\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n",
            "application/pidf+xml",
        ),
        (
            "Event: dialog\r\nAccept: application/dialog-info+xml\r\n",
            "application/dialog-info+xml",
        ),
        ("Event: presence\r\n", "application/pidf+xml"),
    ] {
        let r = subscribe(&mut bob, &aor, extra);
        assert_eq!(r.status(), Some(200), "{extra:?}: {:?}", r.reason());
        let n = bob.next_request("NOTIFY");
        assert_eq!(n.call_id().unwrap(), r.call_id().unwrap(), "{extra:?}");
        let h = header_map(&n);
        if let Some(ct) = h.get("content-type") {
            assert_eq!(ct, content_type, "{extra:?}");
        }
    }
    assert_eq!(s.engine.stats().subscriptions_active, 4);
    assert!(
        bob.requests.is_empty(),
        "unexpected requests: {:?}",
        bob.requests
            .iter()
            .map(|m| m.call_id().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    // Only an initial SUBSCRIBE is checked: a refresh inside the dialog is not refused for
    // its Accept.
    let first = subscribe(&mut bob, &aor, "Event: presence\r\n");
    let to_tag = first.to().unwrap().tag().unwrap().to_string();
    let call_id = first.call_id().unwrap().to_string();
    bob.next_request("NOTIFY");
    let refresh = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>;tag={to_tag}"),
        &call_id,
        "Event: presence\r\nAccept: text/plain\r\nExpires: 300\r\n",
        None,
    );
    let r = bob.transact(&refresh);
    assert_eq!(r.status(), Some(200), "{:?}", r.reason());
    assert_eq!(bob.next_request("NOTIFY").call_id().unwrap(), call_id);
}

#[test]
fn every_2xx_to_publish_carries_sip_etag_and_a_removal_the_removed_tag_with_expires_0() {
    let s = Server::start(true);
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    let etag_and_expires = |r: &impp::sip::SipMessage| {
        let h = header_map(r);
        (
            h.get("sip-etag").cloned().expect("a SIP-ETag"),
            h["expires"].clone(),
        )
    };
    let document = common::fixtures::pidf(&aor, "here");
    // Initial, refresh, modify: each a new tag.
    let r = alice.publish("Expires: 600\r\n", Some(&document));
    assert_eq!(r.status(), Some(200));
    let (initial, expires) = etag_and_expires(&r);
    assert_eq!(expires, "600");
    let r = alice.publish(
        &format!("SIP-If-Match: {initial}\r\nExpires: 600\r\n"),
        None,
    );
    assert_eq!(r.status(), Some(200));
    let (refreshed, _) = etag_and_expires(&r);
    let r = alice.publish(
        &format!("SIP-If-Match: {refreshed}\r\n"),
        Some(&common::fixtures::pidf(&aor, "away")),
    );
    assert_eq!(r.status(), Some(200));
    let (modified, _) = etag_and_expires(&r);
    assert_eq!(
        [&initial, &refreshed, &modified]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    assert_eq!(s.engine.stats().publications, 1);
    // Removal: the tag removed, and Expires: 0.
    let r = alice.publish(&format!("SIP-If-Match: {modified}\r\nExpires: 0\r\n"), None);
    assert_eq!(r.status(), Some(200), "{:?}", r.reason());
    assert_eq!(etag_and_expires(&r), (modified.clone(), "0".to_string()));
    assert_eq!(s.engine.stats().publications, 0);
    // The tag is gone: removing it again is 412, without a SIP-ETag.
    let r = alice.publish(&format!("SIP-If-Match: {modified}\r\nExpires: 0\r\n"), None);
    assert_eq!(r.status(), Some(412));
    assert!(!header_map(&r).contains_key("sip-etag"));
}

#[test]
fn notifies_carry_user_agent_and_answers_server() {
    let s = Server::start(false);
    let alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let r = subscribe(&mut bob, &alice.aor(), "Event: presence\r\n");
    assert_eq!(r.status(), Some(200));
    let h = header_map(&r);
    assert!(h["server"].starts_with("libimpp/"), "{h:?}");
    assert!(!h.contains_key("user-agent"), "{h:?}");
    let n = bob.next_request("NOTIFY");
    let h = header_map(&n);
    assert!(h["user-agent"].starts_with("libimpp/"), "{h:?}");
    assert!(!h.contains_key("server"), "{h:?}");
}
