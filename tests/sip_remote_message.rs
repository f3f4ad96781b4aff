//! Instant messages across domains: an application of domain A sends to users of domain B
//! through A's SIP stack, which sends each on as a MESSAGE to B's next hop (a second engine
//! with its own SIP stack on loopback); B's answer becomes the sender's delivery outcome.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::engine::{
    Delivery, DeliveryOutcome, Engine, Event, FailureReason, ManualClock, MessageId,
    OutgoingMessage,
};
use impp::sip::route::Route;
use impp::sip::transaction::Timers;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig, TrustedPeer};
use impp::store::Credential;

mod common;
use common::clock::advance;
use common::fixtures::{engine_with, uri};
fn stack(engine: &Arc<Engine>, routes: &[String], peers: &[&str]) -> SipServer {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = SipServerConfig::new(vec![ListenAddr::udp(local)]);
    config.authenticate = false;
    config.peers = peers
        .iter()
        .map(|p| TrustedPeer::parse(p).unwrap())
        .collect();
    for r in routes {
        config.routes.add(Route::parse(r).unwrap());
    }
    SipServer::start(engine.clone(), config).unwrap()
}

fn udp(server: &SipServer) -> SocketAddr {
    server
        .local_addrs()
        .iter()
        .find(|l| l.proto == Proto::Udp)
        .unwrap()
        .addr
}

/// The delivery outcomes of `id` that arrive within `wait`.
fn outcomes(engine: &Engine, id: MessageId, wait: Duration) -> Vec<DeliveryOutcome> {
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    while Instant::now() < deadline {
        match engine.next_event(Some(Duration::from_millis(50))) {
            Some(Event::Delivery(Delivery {
                message, outcome, ..
            })) if message == id => {
                found.push(outcome);
                if outcome != DeliveryOutcome::Stored {
                    break;
                }
            }
            _ => {}
        }
    }
    found
}

fn send(engine: &Engine, to: &str, body: &str) -> MessageId {
    engine
        .send_message(OutgoingMessage::new(
            uri("sip:alice@a.test"),
            uri(to),
            "text/plain",
            body,
        ))
        .unwrap()
}

#[test]
fn messages_to_another_domain_go_through_its_next_hop() {
    // Both domains on one manual clock: the transaction timers run when the test moves it.
    let clock = ManualClock::new();
    let b = engine_with("b.test", |c| c.clock = clock.clone());
    for user in ["bob", "carol"] {
        b.set_user(Credential::new(
            uri(&format!("sip:{user}@b.test")),
            "b.test",
            "pw",
        ))
        .unwrap();
    }
    // B believes a.test's users from loopback, where A's stack sends from (DESIGN §5a).
    let b_stack = stack(&b, &[], &["a.test=127.0.0.1"]);
    // Nothing answers here: a next hop that is down.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let a = engine_with("a.test", |c| c.clock = clock.clone());
    let a_stack = stack(
        &a,
        &[
            format!("b.test=udp:{}", udp(&b_stack)),
            format!("down.test=udp:{}", silent.local_addr().unwrap()),
        ],
        &[],
    );
    b.login(&uri("sip:bob@b.test"), "pc", None).unwrap();

    // Online at B: delivered, and bob's application has it, from alice.
    let id = send(&a, "sip:bob@b.test", "hello bob");
    assert_eq!(
        outcomes(&a, id, Duration::from_secs(5)),
        [DeliveryOutcome::Delivered]
    );
    let got = (0..50)
        .filter_map(|_| b.next_event(Some(Duration::from_millis(50))))
        .find_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .expect("bob's message");
    assert_eq!(&*got.body, b"hello bob");
    assert_eq!(got.sender.to_string(), "sip:alice@a.test");

    // Offline at B: B stores it (202), which A reports as stored.
    let id = send(&a, "sip:carol@b.test", "for later");
    assert_eq!(
        outcomes(&a, id, Duration::from_secs(5)),
        [DeliveryOutcome::Stored]
    );

    // Not a user of B: 404 there, unknown user here.
    let id = send(&a, "sip:nobody@b.test", "?");
    assert_eq!(
        outcomes(&a, id, Duration::from_secs(5)),
        [DeliveryOutcome::Failed(FailureReason::UnknownUser)]
    );

    // No route: as without routes, a domain nobody serves has no such user.
    let id = send(&a, "sip:dave@c.test", "?");
    assert_eq!(
        outcomes(&a, id, Duration::from_secs(5)),
        [DeliveryOutcome::Failed(FailureReason::UnknownUser)]
    );

    // A next hop that never answers: unreachable after the transaction times out (64·T1),
    // not before.
    let id = send(&a, "sip:erin@down.test", "?");
    let mut buf = [0u8; 2048];
    silent.recv_from(&mut buf).expect("the MESSAGE is sent");
    let timeout = Timers::default().timeout();
    let (engines, stacks) = ([&*a, &*b], [&a_stack, &b_stack]);
    advance(
        &clock,
        timeout - Duration::from_millis(1),
        &engines,
        &stacks,
    );
    assert_eq!(
        outcomes(&a, id, Duration::from_millis(100)),
        [],
        "an outcome before 64·T1"
    );
    advance(&clock, Duration::from_millis(1), &engines, &stacks);
    assert_eq!(
        outcomes(&a, id, Duration::from_secs(10)),
        [DeliveryOutcome::Failed(FailureReason::Unreachable)]
    );

    // Users of A are still served locally.
    a.login(&uri("sip:frank@a.test"), "pc", None).unwrap();
    let id = send(&a, "sip:frank@a.test", "local");
    let local = outcomes(&a, id, Duration::from_secs(5));
    assert_eq!(local, [DeliveryOutcome::Delivered]);
}
