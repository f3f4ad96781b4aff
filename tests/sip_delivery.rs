//! What the server promises about delivery, checked at the wire with a manual clock (no test
//! waits for a timer):
//!
//! - one NOTIFY in flight per dialog (RFC 6665 §4.2.2): changes that come while a NOTIFY
//!   waits for its answer merge into the next one, so a slow watcher sees the last state,
//!   one NOTIFY at a time;
//! - what each NOTIFY failure does: 481 ends the subscription, a 5xx with Retry-After waits
//!   and then sends the current state, any other failure ends it;
//! - nothing acknowledged is lost: a MESSAGE relayed to a registered contact is answered
//!   `200` only once the contact answered 2xx; a contact that never answers, or answers
//!   `480`, gets the message stored (`202` to the sender) and relayed again, as the sender
//!   wrote it, at its next registration.

mod common;
use std::time::Duration;

use common::fixtures::{pidf, wait_for};
use common::sip::{cseq, header_map, token, Client, Server};
use impp::sip::SipMessage;

/// Bob's subscription to alice's presence; bob answers nothing by himself. The first NOTIFY,
/// unanswered.
fn slow_watcher(s: &Server, alice: &mut Client, bob: &mut Client) -> SipMessage {
    let aor = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "state 0"))).status(),
        Some(200)
    );
    bob.auto_answer = false;
    let request = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    assert_eq!(bob.transact(&request).status(), Some(200));
    let first = bob.next_request("NOTIFY");
    assert!(body(&first).contains("state 0"));
    assert_eq!(s.engine.stats().subscriptions_active, 1);
    first
}

fn body(m: &SipMessage) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn a_slow_watcher_has_one_notify_in_flight_and_ends_on_the_last_state() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let first = slow_watcher(&s, &mut alice, &mut bob);
    let aor = alice.aor();
    // Five changes while the first NOTIFY waits: none goes out.
    for i in 1..=5 {
        let r = alice.publish("", Some(&pidf(&aor, &format!("state {i}"))));
        assert_eq!(r.status(), Some(200));
    }
    s.engine.sync().unwrap();
    assert!(
        s.nothing_arrives(&mut bob),
        "a second NOTIFY while one is in flight"
    );
    // The answer lets the next one go: it carries the last state, merged.
    bob.answer(&first);
    let next = bob.next_request("NOTIFY");
    assert_eq!(cseq(&next), cseq(&first) + 1);
    // Each publication is one tuple of alice's, so the composed document carries all five
    // publications' notes; the last one is there, and nothing newer waits.
    assert!(body(&next).contains("state 5"), "{}", body(&next));
    bob.answer(&next);
    assert!(s.nothing_arrives(&mut bob), "one NOTIFY for five changes");
    // A change after the answer goes out at once.
    let r = alice.publish("", Some(&pidf(&aor, "state 6")));
    assert_eq!(r.status(), Some(200));
    let last = bob.next_request("NOTIFY");
    assert!(body(&last).contains("state 6"));
    assert_eq!(cseq(&last), cseq(&next) + 1);
}

#[test]
fn a_notify_answered_481_ends_the_subscription_and_what_waited_is_dropped() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let first = slow_watcher(&s, &mut alice, &mut bob);
    let aor = alice.aor();
    alice.publish("", Some(&pidf(&aor, "state 1")));
    s.engine.sync().unwrap();
    bob.answer_with(&first, 481, "Call/Transaction Does Not Exist", "");
    wait_for("the subscription to end", 5, || {
        s.engine.stats().subscriptions_active == 0
    });
    assert!(
        s.nothing_arrives(&mut bob),
        "nothing is sent into a dialog that is gone"
    );
}

#[test]
fn a_notify_answered_503_with_retry_after_is_sent_again_with_the_current_state() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let first = slow_watcher(&s, &mut alice, &mut bob);
    let aor = alice.aor();
    bob.answer_with(&first, 503, "Service Unavailable", "Retry-After: 30\r\n");
    s.engine.sync().unwrap();
    let r = alice.publish("", Some(&pidf(&aor, "while away")));
    assert_eq!(r.status(), Some(200));
    s.advance(Duration::from_secs(29));
    assert!(s.nothing_arrives(&mut bob), "not before Retry-After");
    s.advance(Duration::from_secs(1));
    let again = bob.next_request("NOTIFY");
    assert!(body(&again).contains("while away"), "{}", body(&again));
    assert!(header_map(&again)["subscription-state"].starts_with("active"));
    assert_eq!(s.engine.stats().subscriptions_active, 1);
    // Without Retry-After, a failure ends the subscription.
    bob.answer_with(&again, 500, "Server Internal Error", "");
    wait_for("the subscription to end", 5, || {
        s.engine.stats().subscriptions_active == 0
    });
}

/// A MESSAGE from alice to bob with what a real client writes besides the body.
fn rich_message(alice: &Client, bob_aor: &str, call_id: &str) -> Vec<u8> {
    let bytes = alice.request(
        "MESSAGE",
        bob_aor,
        &format!("\"Bob B.\" <{bob_aor}>"),
        call_id,
        "Subject: lunch\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nPriority: urgent\r\nContent-Encoding: deflate\r\n",
        Some(("text/plain", &b"x\x9c\xcbH\xcd\xc9\xc9\x07\x00\x06,\x02\x15"[..])),
    );
    // With a display name in From, as Linphone and Twinkle send it (the body is binary:
    // the head is edited alone).
    let at = bytes.windows(6).position(|w| w == b"From: ").unwrap() + 6;
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(b"\"Alice A.\" ");
    out.extend_from_slice(&bytes[at..]);
    out
}

/// What the sender wrote that must reach the recipient unchanged.
fn assert_as_written(relayed: &SipMessage, call_id: &str, bob: &Client) {
    let h = header_map(relayed);
    assert_eq!(relayed.request_uri_text().unwrap(), bob.contact_uri());
    assert_eq!(relayed.call_id().unwrap(), call_id);
    assert_eq!(h["subject"], "lunch");
    assert_eq!(h["date"], "Mon, 07 Dec 2026 12:00:00 GMT");
    assert_eq!(h["priority"], "urgent");
    assert_eq!(h["content-encoding"], "deflate");
    assert!(h["from"].starts_with("\"Alice A.\" <"), "{}", h["from"]);
    assert!(h["to"].starts_with("\"Bob B.\" <"), "{}", h["to"]);
    assert_eq!(
        relayed.body(),
        b"x\x9c\xcbH\xcd\xc9\xc9\x07\x00\x06,\x02\x15"
    );
    assert!(
        !h.contains_key("server"),
        "relayed as a proxy, not written anew"
    );
    assert_eq!(relayed.via().unwrap().len(), 2, "our Via on top of alice's");
}

#[test]
fn a_message_a_contact_never_answers_is_stored_then_relayed_as_written_at_its_next_registration() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    assert_eq!(bob.register(600).status(), Some(200));
    bob.auto_answer = false;
    let call_id = token();
    alice.send(&rich_message(&alice, &bob.aor(), &call_id));
    let relayed = bob.next_request("MESSAGE");
    assert_as_written(&relayed, &call_id, &bob);
    // Bob's device never answers. Before the bound alice hears nothing...
    s.advance(Duration::from_secs(7));
    alice.socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        alice.socket.recv_from(&mut buf).is_err(),
        "no answer before a device took it"
    );
    alice.socket.set_nonblocking(false).unwrap();
    // ...then the message is stored, and alice hears 202.
    s.advance(Duration::from_secs(1));
    assert_eq!(alice.final_response(&call_id).status(), Some(202));
    assert_eq!(s.engine.stats().messages_waiting, 1);
    // At bob's next registration it is relayed again, as alice wrote it; bob takes it.
    // (First the retransmissions of the first relay, which bob ignored, are thrown away.)
    while !s.nothing_arrives(&mut bob) {
        bob.requests.clear();
    }
    bob.requests.clear();
    bob.auto_answer = true;
    assert_eq!(bob.register(600).status(), Some(200));
    let again = bob.next_request("MESSAGE");
    assert_as_written(&again, &call_id, &bob);
    wait_for("the stored message to be delivered", 5, || {
        s.engine.stats().messages_waiting == 0
    });
}

#[test]
fn a_message_a_contact_refuses_with_480_is_stored_at_once() {
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    assert_eq!(bob.register(600).status(), Some(200));
    bob.auto_answer = false;
    let call_id = token();
    alice.send(&rich_message(&alice, &bob.aor(), &call_id));
    let relayed = bob.next_request("MESSAGE");
    bob.answer_with(&relayed, 480, "Temporarily Unavailable", "");
    assert_eq!(alice.final_response(&call_id).status(), Some(202));
    assert_eq!(s.engine.stats().messages_waiting, 1);
    // A second message does not bother the device until it registers again.
    let second = token();
    alice.send(&rich_message(&alice, &bob.aor(), &second));
    assert_eq!(alice.final_response(&second).status(), Some(202));
    assert!(s.nothing_arrives(&mut bob));
    // Registered again: both come, in order, each after the other was taken.
    bob.auto_answer = true;
    assert_eq!(bob.register(600).status(), Some(200));
    assert_eq!(bob.next_request("MESSAGE").call_id().unwrap(), call_id);
    assert_eq!(bob.next_request("MESSAGE").call_id().unwrap(), second);
    wait_for("both delivered", 5, || {
        s.engine.stats().messages_waiting == 0
    });
}
