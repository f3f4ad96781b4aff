//! Instant messages in the user-agent role: an engine of client.test with the account
//! `sip:alice@b.test` at b.test's SIP server (digest authentication on). The application
//! sends as alice to bob of b.test: the MESSAGE goes through the account with alice's
//! credentials, and bob's answer (delivered, or stored while he is offline) is alice's
//! delivery outcome. bob writes back: b.test relays it to alice's registered contact, and the
//! application gets it as an ordinary message event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use impp::engine::{Delivery, DeliveryOutcome, Engine, Event, MessageId, OutgoingMessage};
use impp::sip::agent::Account;
use impp::sip::route::NextHop;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::Credential;

mod common;
use common::fixtures::{engine, uri};
fn next<T>(engine: &Engine, secs: u64, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(e) = engine.next_event(Some(Duration::from_millis(50))) {
            if let Some(found) = pick(e) {
                return found;
            }
        }
    }
    panic!("timed out");
}

fn outcome(engine: &Engine, id: MessageId) -> DeliveryOutcome {
    next(engine, 10, |e| match e {
        Event::Delivery(Delivery {
            message, outcome, ..
        }) if message == id => Some(outcome),
        _ => None,
    })
}

#[test]
fn an_account_sends_and_receives_messages_through_its_server() {
    // b.test: alice, bob and carol with passwords; authentication on.
    let b = engine("b.test");
    for user in ["alice", "bob", "carol"] {
        b.set_user(Credential::new(
            uri(&format!("sip:{user}@b.test")),
            "b.test",
            &format!("{user}-pw"),
        ))
        .unwrap();
    }
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b_stack =
        SipServer::start(b.clone(), SipServerConfig::new(vec![ListenAddr::udp(any)])).unwrap();
    let b_addr = b_stack.local_addrs()[0].addr;

    // The client: owns nothing of b.test; alice is its account there.
    let client = engine("client.test");
    let mut config = SipServerConfig::new(vec![ListenAddr::udp(any)]);
    let mut account = Account::new(
        uri("sip:alice@b.test"),
        "alice",
        "alice-pw",
        NextHop {
            proto: Proto::Udp,
            addr: b_addr,
        },
    );
    account.expires = 600;
    config.accounts.push(account);
    let client_stack = SipServer::start(client.clone(), config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.endpoints(&uri("sip:alice@b.test")).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "alice did not register");
        std::thread::sleep(Duration::from_millis(20));
    }

    // bob is online at b.test (in-process): delivered, with alice as the sender.
    b.login(&uri("sip:bob@b.test"), "pc", None).unwrap();
    let id = client
        .send_message(OutgoingMessage::new(
            uri("sip:alice@b.test"),
            uri("sip:bob@b.test"),
            "text/plain",
            "hi bob",
        ))
        .unwrap();
    assert_eq!(outcome(&client, id), DeliveryOutcome::Delivered);
    let got = next(&b, 10, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    });
    assert_eq!(
        (got.sender.to_string(), &*got.body),
        ("sip:alice@b.test".into(), &b"hi bob"[..])
    );

    // carol is offline: b.test keeps it (202), alice hears "stored".
    let id = client
        .send_message(OutgoingMessage::new(
            uri("sip:alice@b.test"),
            uri("sip:carol@b.test"),
            "text/plain",
            "later",
        ))
        .unwrap();
    assert_eq!(outcome(&client, id), DeliveryOutcome::Stored);

    // bob writes to alice: b.test relays it to the contact alice registered, and the client's
    // application gets it.
    let sent = b
        .send_message(OutgoingMessage::new(
            uri("sip:bob@b.test"),
            uri("sip:alice@b.test"),
            "text/plain",
            "hello alice",
        ))
        .unwrap();
    let got = next(&client, 10, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    });
    assert_eq!(got.sender.to_string(), "sip:bob@b.test");
    assert_eq!(got.recipient.to_string(), "sip:alice@b.test");
    assert_eq!(&*got.body, b"hello alice");
    assert_eq!(outcome(&b, sent), DeliveryOutcome::Delivered);
    drop(client_stack);
    drop(b_stack);
}
