//! The engine's bounds on stored messages, subscriptions and registrations
//! (`EngineConfig::state_limits`) at the wire: what a SIP client is answered past each one
//! (`480` for a MESSAGE to a full mailbox, `403` for one SUBSCRIBE or REGISTER too many), and
//! that the refused request changed nothing.

use impp::engine::StateLimits;

mod common;
use common::sip::{header_map, token, Client, Server, DOMAIN};

fn server(limits: StateLimits) -> Server {
    Server::start_configured(false, |c| c.state_limits = limits, |_| {})
}

#[test]
fn a_message_to_a_full_mailbox_is_480_and_not_stored() {
    let s = server(StateLimits {
        max_offline_messages_per_sender: 1,
        ..StateLimits::default()
    });
    let mut alice = Client::new(s.udp(), "alice");
    let mut carol = Client::new(s.udp(), "carol");
    let bob_aor = format!("sip:bob@{DOMAIN}");
    let send = |from: &mut Client, text: &str| {
        let m = from.request(
            "MESSAGE",
            &bob_aor,
            &format!("<{bob_aor}>"),
            &token(),
            "",
            Some(("text/plain", text.as_bytes())),
        );
        from.transact(&m)
    };
    // Bob is offline: Alice's first is stored, her second is past her share.
    assert_eq!(send(&mut alice, "first").status(), Some(202));
    let r = send(&mut alice, "second");
    assert_eq!(r.status(), Some(480));
    assert_eq!(r.reason(), Some("Temporarily Unavailable (mailbox full)"));
    // Carol still gets through.
    assert_eq!(send(&mut carol, "hello").status(), Some(202));
    let stats = s.engine.stats();
    assert_eq!((stats.messages_waiting, stats.messages_refused), (2, 1));
    // Bob registers: what was stored arrives, the refused message does not.
    let mut bob = Client::new(s.udp(), "bob");
    assert_eq!(bob.register(600).status(), Some(200));
    let got = [bob.next_request("MESSAGE"), bob.next_request("MESSAGE")];
    assert_eq!(
        got.iter().map(|m| m.body().to_vec()).collect::<Vec<_>>(),
        [b"first".to_vec(), b"hello".to_vec()]
    );
}

#[test]
fn a_subscribe_past_the_watchers_bound_is_403_and_makes_no_dialog() {
    let s = server(StateLimits {
        max_subscriptions_per_watcher: 1,
        ..StateLimits::default()
    });
    let mut bob = Client::new(s.udp(), "bob");
    let subscribe = |bob: &mut Client, user: &str| {
        let aor = format!("sip:{user}@{DOMAIN}");
        let m = bob.request(
            "SUBSCRIBE",
            &aor,
            &format!("<{aor}>"),
            &token(),
            "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 600\r\n",
            None,
        );
        bob.transact(&m)
    };
    assert_eq!(subscribe(&mut bob, "alice").status(), Some(200));
    bob.next_request("NOTIFY");
    let r = subscribe(&mut bob, "carol");
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), Some("Forbidden (too many subscriptions)"));
    assert!(
        !header_map(&r).contains_key("expires"),
        "no subscription was made"
    );
    let stats = s.engine.stats();
    assert_eq!(
        (stats.subscriptions_active, stats.subscriptions_refused),
        (1, 1)
    );
    // No NOTIFY follows the refusal: an OPTIONS round trip shows nothing came meanwhile.
    let ping = bob.request(
        "OPTIONS",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{DOMAIN}>"),
        &token(),
        "",
        None,
    );
    assert_eq!(bob.transact(&ping).status(), Some(200));
    assert!(
        bob.requests.iter().all(|m| m.method() != Some("NOTIFY")),
        "{:?}",
        bob.requests
    );
}

#[test]
fn a_register_past_the_users_bound_is_403_and_registers_nothing() {
    let s = server(StateLimits {
        max_endpoints_per_user: 1,
        ..StateLimits::default()
    });
    let bob_aor = format!("sip:bob@{DOMAIN}");
    let mut phone = Client::new(s.udp(), "bob");
    let mut laptop = Client::new(s.udp(), "bob");
    assert_eq!(phone.register(600).status(), Some(200));
    let r = laptop.register(600);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), Some("Forbidden (too many registrations)"));
    let endpoints = s.engine.endpoints(&bob_aor.parse().unwrap()).unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].endpoint, phone.contact_uri());
    assert_eq!(s.engine.stats().endpoints_refused, 1);
    // The phone refreshes as before.
    assert_eq!(phone.register(1200).status(), Some(200));
    // One REGISTER that removes the phone and adds the laptop leaves one: taken.
    let (old, new) = (phone.contact_uri(), laptop.contact_uri());
    let r = laptop.transact(&laptop.request(
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        &format!("<{bob_aor}>"),
        &token(),
        &format!("Contact: <{old}>;expires=0\r\nContact: <{new}>;expires=600\r\n"),
        None,
    ));
    assert_eq!(r.status(), Some(200), "{:?}", header_map(&r));
    let endpoints = s.engine.endpoints(&bob_aor.parse().unwrap()).unwrap();
    assert_eq!(
        endpoints.iter().map(|e| &e.endpoint).collect::<Vec<_>>(),
        [&new]
    );
}
