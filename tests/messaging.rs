//! Endpoints and instant messages through the Rust API, with a manual clock: online
//! delivery, offline storage with its outcomes, order, expiry, failures, restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::doc::pidf::Basic;
use impp::engine::{
    AuthAction, AuthRule, Delivery, DeliveryOutcome, Document, Engine, EngineConfig, Event,
    FailureReason, ManualClock, Message, MessageId, OutgoingMessage, Package, Port, PortOptions,
    SubscribeRequest, WatcherMatch,
};
use impp::store::{Completion, MemoryStore, Snapshot, Store, Write};
use impp::uri::Uri;
use impp::Error;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
}

fn config(clock: &Arc<ManualClock>, store: Arc<dyn Store>) -> EngineConfig {
    EngineConfig {
        workers: 2,
        default_policy: AuthAction::Allow,
        clock: clock.clone(),
        store,
        ..EngineConfig::default()
    }
}

fn world_with(tweak: impl FnOnce(&mut EngineConfig)) -> World {
    let clock = ManualClock::new();
    let mut config = config(&clock, Arc::new(MemoryStore::new()));
    tweak(&mut config);
    World {
        engine: Engine::new(config).unwrap(),
        clock,
    }
}

fn world() -> World {
    world_with(|_| {})
}

impl World {
    fn events(&self) -> Vec<Event> {
        events(&self.engine)
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
        self.engine.sync().unwrap();
    }

    fn send(&self, from: &str, to: &str, body: &str) -> MessageId {
        self.engine
            .send_message(OutgoingMessage::new(uri(from), uri(to), "text/plain", body))
            .unwrap()
    }
}

fn events(engine: &Engine) -> Vec<Event> {
    engine.sync().unwrap();
    let mut out = Vec::new();
    while let Some(e) = engine.next_event(Some(Duration::ZERO)) {
        out.push(e);
    }
    out
}

fn messages(events: &[Event]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(&**m),
            _ => None,
        })
        .collect()
}

fn outcomes(events: &[Event]) -> Vec<(MessageId, DeliveryOutcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivery(Delivery {
                message, outcome, ..
            }) => Some((*message, *outcome)),
            _ => None,
        })
        .collect()
}

fn bodies(events: &[Event]) -> Vec<(String, String)> {
    messages(events)
        .iter()
        .map(|m| {
            (
                m.endpoint.to_string(),
                String::from_utf8(m.body.to_vec()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn online_message_reaches_every_endpoint_and_the_sender_hears_delivered() {
    let w = world();
    let bob = uri("sip:bob@example.test");
    assert_eq!(w.engine.login(&bob, "phone", Some(600)).unwrap(), 600);
    w.engine.login(&bob, "laptop", None).unwrap();
    let mut m = OutgoingMessage::new(
        uri("sip:alice@example.test"),
        bob.clone(),
        "application/octet-stream",
        vec![0u8, 0xff, 0x10],
    );
    m.in_reply_to = Some("call-42".into());
    let id = w.engine.send_message(m).unwrap();
    let events = w.events();
    let got = messages(&events);
    assert_eq!(got.len(), 2);
    let mut endpoints: Vec<&str> = got.iter().map(|m| &*m.endpoint).collect();
    endpoints.sort();
    assert_eq!(endpoints, ["laptop", "phone"]);
    for m in &got {
        assert_eq!(m.id, id);
        assert_eq!(&*m.body, &[0u8, 0xff, 0x10]);
        assert_eq!(&*m.content_type, "application/octet-stream");
        assert_eq!(m.sender.to_string(), "sip:alice@example.test");
        assert_eq!(m.in_reply_to.as_deref(), Some("call-42"));
        assert_eq!(m.sent_at, ManualClock::UNIX_ORIGIN_MS);
    }
    assert_eq!(outcomes(&events), vec![(id, DeliveryOutcome::Delivered)]);
    let stats = w.engine.stats();
    assert_eq!((stats.endpoints, stats.messages_delivered), (2, 1));
}

#[test]
fn a_named_endpoint_alone_gets_the_message_when_online() {
    let w = world();
    let bob = uri("sip:bob@example.test");
    w.engine.login(&bob, "phone", None).unwrap();
    w.engine.login(&bob, "laptop", None).unwrap();
    let mut m = OutgoingMessage::new(
        uri("sip:alice@example.test"),
        bob.clone(),
        "text/plain",
        "hi",
    );
    m.endpoint = Some("laptop".into());
    w.engine.send_message(m.clone()).unwrap();
    assert_eq!(bodies(&w.events()), [("laptop".into(), "hi".into())]);
    // Not online: every endpoint gets it.
    m.endpoint = Some("tablet".into());
    w.engine.send_message(m).unwrap();
    assert_eq!(bodies(&w.events()).len(), 2);
}

#[test]
fn offline_messages_are_stored_then_delivered_in_order_exactly_once_on_login() {
    let w = world();
    let bob = uri("sip:bob@example.test");
    let ids: Vec<MessageId> = (1..=3)
        .map(|i| {
            w.send(
                "sip:alice@example.test",
                "sip:bob@example.test",
                &format!("m{i}"),
            )
        })
        .collect();
    let events = w.events();
    assert!(messages(&events).is_empty());
    assert_eq!(
        outcomes(&events),
        ids.iter()
            .map(|id| (*id, DeliveryOutcome::Stored))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.engine.stats().messages_waiting, 3);

    w.engine.login(&bob, "phone", None).unwrap();
    let events = w.events();
    assert_eq!(
        bodies(&events),
        [("phone", "m1"), ("phone", "m2"), ("phone", "m3")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        outcomes(&events),
        ids.iter()
            .map(|id| (*id, DeliveryOutcome::Delivered))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.engine.stats().messages_waiting, 0);

    // Exactly once: logging in again brings nothing.
    w.engine.logout(&bob, "phone").unwrap();
    w.engine.login(&bob, "laptop", None).unwrap();
    assert!(messages(&w.events()).is_empty());
}

#[test]
fn stored_messages_expire_with_a_failed_outcome() {
    let w = world_with(|c| c.message_expiry = Duration::from_secs(3600));
    let id = w.send("sip:alice@example.test", "sip:bob@example.test", "late");
    assert_eq!(outcomes(&w.events()), [(id, DeliveryOutcome::Stored)]);
    w.advance(3599);
    assert!(w.events().is_empty());
    w.advance(1);
    assert_eq!(
        outcomes(&w.events()),
        [(id, DeliveryOutcome::Failed(FailureReason::Expired))]
    );
    w.engine
        .login(&uri("sip:bob@example.test"), "phone", None)
        .unwrap();
    assert!(messages(&w.events()).is_empty());
}

#[test]
fn failures_have_reasons() {
    let w = world_with(|c| {
        c.max_message_size = 16;
        c.domains = vec!["example.test".into()];
    });
    let alice = "sip:alice@example.test";
    let big = w.send(alice, "sip:bob@example.test", "12345678901234567");
    let foreign = w.send(alice, "sip:bob@elsewhere.test", "hi");
    w.engine
        .set_rule(AuthRule::new(
            uri("sip:carol@example.test"),
            WatcherMatch::Watcher(uri(alice)),
            AuthAction::Block,
        ))
        .unwrap();
    let blocked = w.send(alice, "sip:carol@example.test", "hi");
    let typing = w
        .engine
        .send_message(OutgoingMessage::new(
            uri(alice),
            uri("sip:bob@example.test"),
            "application/im-iscomposing+xml",
            "<isComposing/>",
        ))
        .unwrap();
    let got = outcomes(&w.events());
    for (id, reason) in [
        (big, FailureReason::TooLarge),
        (foreign, FailureReason::UnknownUser),
        (blocked, FailureReason::Rejected),
        (typing, FailureReason::Offline),
    ] {
        assert!(
            got.contains(&(id, DeliveryOutcome::Failed(reason))),
            "{reason:?} missing from {got:?}"
        );
    }
    assert_eq!(got.len(), 4);
    assert_eq!(w.engine.stats().messages_failed, 4);
    assert_eq!(w.engine.stats().messages_waiting, 0);
}

#[test]
fn polite_block_pretends_delivery_and_delivers_nothing() {
    let w = world();
    let bob = uri("sip:bob@example.test");
    w.engine.login(&bob, "phone", None).unwrap();
    w.engine
        .set_rule(AuthRule::new(
            bob.clone(),
            WatcherMatch::Domain("spam.test".into()),
            AuthAction::PoliteBlock,
        ))
        .unwrap();
    let id = w.send("sip:eve@spam.test", "sip:bob@example.test", "buy");
    let events = w.events();
    assert!(messages(&events).is_empty());
    assert_eq!(outcomes(&events), [(id, DeliveryOutcome::Delivered)]);
}

#[test]
fn unknown_users_when_the_directory_has_users() {
    let w = world();
    w.engine
        .set_user(impp::store::Credential {
            user: uri("sip:bob@example.test"),
            realm: "example.test".into(),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "0".repeat(64),
        })
        .unwrap();
    let known = w.send("sip:alice@example.test", "sip:bob@example.test", "hi");
    let unknown = w.send("sip:alice@example.test", "sip:nobody@example.test", "hi");
    let mut got = outcomes(&w.events());
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        [
            (known, DeliveryOutcome::Stored),
            (unknown, DeliveryOutcome::Failed(FailureReason::UnknownUser))
        ]
    );
    assert!(w.engine.user(&uri("sip:bob@example.test")).is_some());
    assert!(w.engine.remove_user(&uri("sip:bob@example.test")).unwrap());
    assert!(w.engine.users().is_empty());
}

#[test]
fn bad_arguments_are_errors_and_send_nothing() {
    let w = world();
    for ct in ["", "text", "text/", "/plain", "te xt/plain", "text/plain\n"] {
        let m = OutgoingMessage::new(
            uri("sip:a@example.test"),
            uri("sip:b@example.test"),
            ct,
            "x",
        );
        assert!(
            matches!(w.engine.send_message(m), Err(Error::InvalidArgument(_))),
            "{ct:?}"
        );
    }
    let mut m = OutgoingMessage::new(
        uri("sip:a@example.test"),
        uri("sip:b@example.test"),
        "text/plain; charset=utf-8",
        "x",
    );
    m.endpoint = Some(String::new());
    assert!(matches!(
        w.engine.send_message(m),
        Err(Error::InvalidArgument(_))
    ));
    assert!(w.events().is_empty());
    let b = uri("sip:b@example.test");
    assert!(matches!(
        w.engine.login(&b, "", None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        w.engine.login(&b, "phone", Some(10)),
        Err(Error::IntervalTooBrief(_))
    ));
    assert!(w.engine.endpoints(&b).unwrap().is_empty());
}

#[test]
fn endpoint_logins_expire_and_refresh() {
    let w = world();
    let bob = uri("sip:bob@example.test");
    w.engine
        .login_at(&bob, "phone", Some("sip:bob@192.0.2.1:5060"), Some(120))
        .unwrap();
    w.engine.login(&bob, "laptop", Some(300)).unwrap();
    w.advance(100);
    w.engine.login(&bob, "phone", Some(120)).unwrap(); // refresh
    let eps = w.engine.endpoints(&bob).unwrap();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0].contact.as_deref(), Some("sip:bob@192.0.2.1:5060"));
    assert_eq!(eps[0].expires_in, 120);
    w.advance(119);
    assert!(w.events().is_empty());
    w.advance(1); // 120 s since the phone's refresh
    let expired = |events: Vec<Event>| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::EndpointExpired { endpoint, user } => {
                    assert_eq!(user.to_string(), "sip:bob@example.test");
                    Some(endpoint.to_string())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(expired(w.events()), ["phone"]);
    w.advance(79);
    assert!(w.events().is_empty());
    w.advance(1); // 300 s since the laptop logged in
    assert_eq!(expired(w.events()), ["laptop"]);
    assert_eq!(w.engine.stats().endpoints, 0);
    // Offline again: messages are stored.
    let id = w.send("sip:alice@example.test", "sip:bob@example.test", "x");
    assert_eq!(outcomes(&w.events()), [(id, DeliveryOutcome::Stored)]);
    assert!(w.engine.logout(&bob, "phone").is_ok_and(|was| !was));
}

#[test]
fn endpoint_presence_makes_a_silent_user_open_until_logout() {
    let w = world_with(|c| c.endpoint_presence = true);
    let bob = uri("sip:bob@example.test");
    w.engine
        .subscribe(SubscribeRequest::new(
            uri("sip:alice@example.test"),
            bob.clone(),
            Package::Presence,
        ))
        .unwrap();
    let open = |events: &[Event]| -> Option<bool> {
        events.iter().rev().find_map(|e| match e {
            Event::Notification(n) => n.document.as_deref().map(|d| match d {
                Document::Presence(p) => p.is_open(),
                _ => false,
            }),
            _ => None,
        })
    };
    assert_eq!(open(&w.events()), Some(false));
    w.engine
        .login_at(&bob, "phone", Some("sip:bob@192.0.2.1"), None)
        .unwrap();
    let events = w.events();
    assert_eq!(open(&events), Some(true));
    // A publication of the user's own replaces the automatic tuples.
    let mut doc = impp::doc::pidf::Presence::new("sip:bob@example.test");
    doc.tuples
        .push(impp::doc::pidf::Tuple::new("desk", Basic::Closed));
    let etag = w.engine.publish(&bob, doc.into(), None).unwrap();
    assert_eq!(open(&w.events()), Some(false));
    w.engine.remove_publication(&etag).unwrap();
    assert_eq!(open(&w.events()), Some(true));
    w.engine.logout(&bob, "phone").unwrap();
    assert_eq!(open(&w.events()), Some(false));
}

/// A store that keeps message completions until told to release them (a slow disk).
struct SlowStore {
    inner: MemoryStore,
    held: Mutex<Vec<Completion>>,
}

impl Store for SlowStore {
    fn submit(&self, write: Write, done: Option<Completion>) {
        let is_message = matches!(write, Write::SaveMessage(_));
        self.inner.submit(write, None);
        if let Some(done) = done {
            if is_message {
                self.held.lock().unwrap().push(done);
            } else {
                done(Ok(()));
            }
        }
    }

    fn load(&self) -> impp::Result<Snapshot> {
        self.inner.load()
    }
}

impl SlowStore {
    fn release(&self) {
        for done in self.held.lock().unwrap().drain(..) {
            done(Ok(()));
        }
    }
}

#[test]
fn stored_is_told_only_when_durable_and_always_before_delivered_and_in_order() {
    let clock = ManualClock::new();
    let store = Arc::new(SlowStore {
        inner: MemoryStore::new(),
        held: Mutex::new(Vec::new()),
    });
    let engine = Engine::new(config(&clock, store.clone())).unwrap();
    let bob = uri("sip:bob@example.test");
    let send = |body: &str| {
        engine
            .send_message(OutgoingMessage::new(
                uri("sip:alice@example.test"),
                bob.clone(),
                "text/plain",
                body,
            ))
            .unwrap()
    };
    let first = send("first");
    // Not durable yet: nothing said.
    assert!(outcomes(&events(&engine)).is_empty());
    // Bob logs in while the write is still under way; a second message arrives.
    engine.login(&bob, "phone", None).unwrap();
    let second = send("second");
    let got = events(&engine);
    assert!(
        messages(&got).is_empty(),
        "nothing overtakes the first message"
    );
    assert!(outcomes(&got).is_empty());
    store.release();
    let got = events(&engine);
    assert_eq!(
        outcomes(&got),
        [
            (first, DeliveryOutcome::Stored),
            (first, DeliveryOutcome::Delivered),
            (second, DeliveryOutcome::Delivered)
        ]
    );
    assert_eq!(
        bodies(&got),
        [("phone", "first"), ("phone", "second")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn a_restarted_engine_delivers_what_was_stored_and_expires_what_ran_out() {
    let clock = ManualClock::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let bob = uri("sip:bob@example.test");
    let (kept, lost);
    {
        let mut c = config(&clock, store.clone());
        c.message_expiry = Duration::from_secs(7200);
        let engine = Engine::new(c).unwrap();
        let send = |body: &str| {
            engine
                .send_message(OutgoingMessage::new(
                    uri("sip:alice@example.test"),
                    bob.clone(),
                    "text/plain",
                    body,
                ))
                .unwrap()
        };
        lost = send("old");
        clock.advance(Duration::from_secs(3600));
        kept = send("new");
        assert_eq!(outcomes(&events(&engine)).len(), 2);
    }
    // Down for 1.5 hours: the first message's 2 hours ran out, the second's did not.
    clock.advance(Duration::from_secs(5400));
    let mut c = config(&clock, store.clone());
    c.workers = 3; // another shard count
    c.message_expiry = Duration::from_secs(7200);
    let engine = Engine::new(c).unwrap();
    assert_eq!(
        outcomes(&events(&engine)),
        [(lost, DeliveryOutcome::Failed(FailureReason::Expired))]
    );
    engine.login(&bob, "phone", None).unwrap();
    let got = events(&engine);
    assert_eq!(outcomes(&got), [(kept, DeliveryOutcome::Delivered)]);
    assert_eq!(bodies(&got), [("phone".to_string(), "new".to_string())]);
    assert!(store.load().unwrap().messages.is_empty());
    // New ids never repeat the old ones.
    let next = engine
        .send_message(OutgoingMessage::new(
            uri("sip:a@x.test"),
            bob.clone(),
            "text/plain",
            "x",
        ))
        .unwrap();
    assert!(next > kept);
}

#[test]
fn a_restarted_engine_restores_endpoints_and_publications() {
    let clock = ManualClock::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let bob = uri("sip:bob@example.test");
    let alice = uri("sip:alice@example.test");
    let (short_tag, long_tag);
    {
        let engine = Engine::new(config(&clock, store.clone())).unwrap();
        engine.login(&bob, "phone", Some(7200)).unwrap();
        engine.login(&bob, "pager", Some(600)).unwrap();
        let mut doc = impp::doc::pidf::Presence::new("sip:alice@example.test");
        doc.tuples
            .push(impp::doc::pidf::Tuple::new("desk", Basic::Open));
        long_tag = engine
            .publish(&alice, doc.clone().into(), Some(7200))
            .unwrap();
        doc.tuples[0] = impp::doc::pidf::Tuple::new("cell", Basic::Closed);
        let t = engine.publish(&alice, doc.into(), Some(600)).unwrap();
        short_tag = engine.refresh_publication(&t, 900).unwrap();
        engine.sync().unwrap();
    }
    clock.advance(Duration::from_secs(1000));
    let engine = Engine::new(config(&clock, store.clone())).unwrap();
    let got = events(&engine);
    assert!(got
        .iter()
        .any(|e| matches!(e, Event::EndpointExpired { endpoint, .. } if &**endpoint == "pager")));
    assert!(got
        .iter()
        .any(|e| matches!(e, Event::PublicationExpired { etag, .. } if *etag == short_tag)));
    let eps = engine.endpoints(&bob).unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].expires_in, 6200);
    // The long publication is back under its own tag, and it is what a watcher sees.
    assert!(engine.refresh_publication(&long_tag, 3600).is_ok());
    engine
        .subscribe(SubscribeRequest::new(
            bob.clone(),
            alice.clone(),
            Package::Presence,
        ))
        .unwrap();
    let open = events(&engine).iter().any(|e| match e {
        Event::Notification(n) => n.document.as_deref().is_some_and(
            |d| matches!(d, Document::Presence(p) if p.is_open() && p.tuples.len() == 1),
        ),
        _ => false,
    });
    assert!(open);
    // A message to bob goes straight to the restored endpoint.
    engine
        .send_message(OutgoingMessage::new(
            alice.clone(),
            bob.clone(),
            "text/plain",
            "hi",
        ))
        .unwrap();
    assert_eq!(
        bodies(&events(&engine)),
        [("phone".to_string(), "hi".to_string())]
    );
}

// ----------------------------------------------------------------------------------------
// What a transport plugs in: the engine port
// ----------------------------------------------------------------------------------------

/// The events waiting at a port (every shard has queued what it made when `sync` returns).
fn port_events(engine: &Engine, port: &Port) -> Vec<Event> {
    engine.sync().unwrap();
    let mut out = Vec::new();
    loop {
        let more = port.next_events(1024, Some(Duration::ZERO));
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

#[test]
fn a_port_gets_what_is_the_transports_and_the_application_sees_the_rest() {
    let w = world_with(|c| c.domains = vec!["a.test".into()]);

    // Without a port asking for them, another domain's user is unknown.
    let first = w.send("sip:alice@a.test", "sip:bob@b.test", "hi");
    w.engine.sync().unwrap();
    assert!(matches!(
        &w.events()[..],
        [Event::Delivery(Delivery { message, outcome: DeliveryOutcome::Failed(FailureReason::UnknownUser), .. })] if *message == first
    ));

    // With one, the message goes to the transport, and the sender hears what it reports.
    let port = w
        .engine
        .open_port(PortOptions {
            remote_messages: true,
            ..PortOptions::default()
        })
        .unwrap();
    assert!(matches!(
        w.engine.open_port(PortOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    let id = w.send("sip:alice@a.test", "sip:bob@b.test", "hello");
    w.engine.sync().unwrap();
    assert!(w.events().is_empty(), "the port took the remote message");
    let got = port_events(&w.engine, &port);
    let [Event::RemoteMessage(m)] = &got[..] else {
        panic!("not one remote message: {got:?}")
    };
    assert_eq!((m.id, &*m.body, &*m.endpoint), (id, &b"hello"[..], ""));
    assert_eq!(m.recipient.to_string(), "sip:bob@b.test");
    w.engine
        .report_delivery(Delivery {
            message: m.id,
            sender: m.sender.clone(),
            recipient: m.recipient.clone(),
            outcome: DeliveryOutcome::Delivered,
        })
        .unwrap();
    w.engine.sync().unwrap();
    // Outcomes are seen by both: the transport answers its senders, the application
    // follows them.
    assert!(matches!(
        &w.events()[..],
        [Event::Delivery(Delivery { message, outcome: DeliveryOutcome::Delivered, .. })] if *message == id
    ));
    assert!(matches!(
        &port_events(&w.engine, &port)[..],
        [Event::Delivery(Delivery { message, outcome: DeliveryOutcome::Delivered, .. })] if *message == id
    ));

    // Local users are still local.
    w.engine
        .login(&uri("sip:carol@a.test"), "pc", None)
        .unwrap();
    w.send("sip:alice@a.test", "sip:carol@a.test", "local");
    w.engine.sync().unwrap();
    let kinds: Vec<_> = w
        .events()
        .iter()
        .map(|e| matches!(e, Event::Message(_)))
        .collect();
    assert_eq!(kinds, [true, false]);
    let _ = port_events(&w.engine, &port); // the copy of carol's delivery

    // A message that came in from elsewhere reaches the application once, as sent.
    let mut incoming = OutgoingMessage::new(
        uri("sip:dave@c.test"),
        uri("sip:alice@b.test"),
        "text/plain",
        &b"from afar"[..],
    );
    incoming.endpoint = Some("sip-ua".into());
    w.engine.receive_message(incoming).unwrap();
    w.engine.sync().unwrap();
    assert!(matches!(
        &w.events()[..],
        [Event::Message(m)] if &*m.body == b"from afar" && &*m.endpoint == "sip-ua"
    ));

    // Closing the port gives the application everything again.
    drop(port);
    w.send("sip:alice@a.test", "sip:bob@b.test", "again");
    w.engine.sync().unwrap();
    assert!(matches!(
        &w.events()[..],
        [Event::Delivery(Delivery {
            outcome: DeliveryOutcome::Failed(FailureReason::UnknownUser),
            ..
        })]
    ));
    let too_big = OutgoingMessage::new(
        uri("sip:dave@c.test"),
        uri("sip:alice@b.test"),
        "text/plain",
        vec![b'x'; 70_000],
    );
    assert!(matches!(
        w.engine.receive_message(too_big),
        Err(Error::TooLarge(_))
    ));
}

// ----------------------------------------------------------------------------------------
// Hand-over to a transport's devices: `delivered` only once a device took the message
// ----------------------------------------------------------------------------------------

const BOB_DEVICE: &str = "sip:bob@192.0.2.7:5062";

/// An engine with a transport's port open and bob registered through it.
fn transport_world() -> (World, Port) {
    let w = world_with(|c| c.domains = vec!["a.test".into()]);
    let port = w.engine.open_port(PortOptions::default()).unwrap();
    register_bob(&w);
    (w, port)
}

fn register_bob(w: &World) {
    w.engine
        .login_at(
            &uri("sip:bob@a.test"),
            BOB_DEVICE,
            Some("udp:192.0.2.7:5062"),
            Some(3600),
        )
        .unwrap();
}

/// The messages the port got for devices, in order.
fn relayed(w: &World, port: &Port) -> Vec<Message> {
    port_events(&w.engine, port)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(*m),
            _ => None,
        })
        .collect()
}

/// What the senders were told, in order.
fn told(w: &World) -> Vec<(MessageId, DeliveryOutcome)> {
    outcomes(&w.events())
}

#[test]
fn a_message_for_a_device_is_delivered_when_the_device_takes_it() {
    let (w, port) = transport_world();
    let id = w.send("sip:alice@a.test", "sip:bob@a.test", "hi");
    let got = relayed(&w, &port);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(&*got[0].endpoint, BOB_DEVICE);
    assert_eq!(got[0].contact.as_deref(), Some("udp:192.0.2.7:5062"));
    assert!(
        told(&w).is_empty(),
        "nothing told before the device answers"
    );
    w.engine.report_handover(&got[0], true).unwrap();
    assert_eq!(told(&w), [(id, DeliveryOutcome::Delivered)]);
    // A late word about it changes nothing.
    w.engine.report_handover(&got[0], false).unwrap();
    assert!(told(&w).is_empty());
}

#[test]
fn a_message_no_device_answers_is_stored_and_handed_over_again_at_the_next_login() {
    let (w, port) = transport_world();
    let first = w.send("sip:alice@a.test", "sip:bob@a.test", "one");
    assert_eq!(relayed(&w, &port).len(), 1);
    // A second message waits behind the first (one hand-over at a time keeps the order).
    let second = w.send("sip:alice@a.test", "sip:bob@a.test", "two");
    assert!(relayed(&w, &port).is_empty());
    w.advance(7);
    assert!(told(&w).is_empty(), "the bound is 8 s");
    w.advance(1);
    // Both are stored; the senders hear it.
    assert_eq!(
        told(&w),
        [
            (first, DeliveryOutcome::Stored),
            (second, DeliveryOutcome::Stored)
        ]
    );
    assert_eq!(w.engine.stats().messages_waiting, 2);
    // The device does not answer: until bob logs in again nothing more is tried, and a new
    // message is stored at once.
    let third = w.send("sip:alice@a.test", "sip:bob@a.test", "three");
    assert_eq!(told(&w), [(third, DeliveryOutcome::Stored)]);
    assert!(relayed(&w, &port).is_empty());
    // The next registration hands them over again, one at a time, in order.
    register_bob(&w);
    for (id, body) in [(first, "one"), (second, "two"), (third, "three")] {
        let got = relayed(&w, &port);
        assert_eq!(got.len(), 1, "one at a time");
        assert_eq!((got[0].id, &*got[0].body), (id, body.as_bytes()));
        w.engine.report_handover(&got[0], true).unwrap();
        assert_eq!(told(&w), [(id, DeliveryOutcome::Delivered)]);
    }
    assert_eq!(w.engine.stats().messages_waiting, 0);
}

#[test]
fn a_message_every_device_refuses_is_stored_at_once() {
    let (w, port) = transport_world();
    w.engine
        .login_at(
            &uri("sip:bob@a.test"),
            "sip:bob@192.0.2.8:5062",
            Some("udp:192.0.2.8:5062"),
            Some(3600),
        )
        .unwrap();
    let id = w.send("sip:alice@a.test", "sip:bob@a.test", "hi");
    let got = relayed(&w, &port);
    assert_eq!(got.len(), 2, "every device gets it");
    w.engine.report_handover(&got[0], false).unwrap();
    assert!(told(&w).is_empty(), "the other device may still take it");
    w.engine.report_handover(&got[1], false).unwrap();
    assert_eq!(told(&w), [(id, DeliveryOutcome::Stored)]);
    // An is-composing indication is never stored: it fails as offline.
    let mut typing = OutgoingMessage::new(
        uri("sip:alice@a.test"),
        uri("sip:bob@a.test"),
        "application/im-iscomposing+xml",
        "<x/>",
    );
    typing.endpoint = None;
    let typing = w.engine.send_message(typing).unwrap();
    assert_eq!(
        told(&w),
        [(typing, DeliveryOutcome::Failed(FailureReason::Offline))]
    );
}

#[test]
fn a_device_that_refuses_an_is_composing_indication_still_gets_the_next_message() {
    // baresip answers an is-composing indication 415 (it takes text alone): that says
    // nothing about whether bob is reachable, so the text that follows is delivered, not
    // stored for his next login.
    let (w, port) = transport_world();
    let typing = w
        .engine
        .send_message(OutgoingMessage::new(
            uri("sip:alice@a.test"),
            uri("sip:bob@a.test"),
            "application/im-iscomposing+xml",
            "<x/>",
        ))
        .unwrap();
    let text = w.send("sip:alice@a.test", "sip:bob@a.test", "hi");
    let got = relayed(&w, &port);
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [typing]);
    w.engine.report_handover(&got[0], false).unwrap();
    assert_eq!(
        told(&w),
        [(typing, DeliveryOutcome::Failed(FailureReason::Offline))]
    );
    let got = relayed(&w, &port);
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [text]);
    w.engine.report_handover(&got[0], true).unwrap();
    assert_eq!(told(&w), [(text, DeliveryOutcome::Delivered)]);
    assert_eq!(w.engine.stats().messages_waiting, 0);
}

#[test]
fn a_message_for_an_application_endpoint_as_well_is_delivered_at_once() {
    let (w, port) = transport_world();
    w.engine
        .login(&uri("sip:bob@a.test"), "desktop", None)
        .unwrap();
    let id = w.send("sip:alice@a.test", "sip:bob@a.test", "hi");
    let events = w.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if &*m.endpoint == "desktop")));
    assert!(events.iter().any(
        |e| matches!(e, Event::Delivery(d) if d.message == id && d.outcome == DeliveryOutcome::Delivered)
    ));
    // The device still gets its copy.
    assert_eq!(relayed(&w, &port).len(), 1);
}

#[test]
fn the_transport_keeps_the_message_as_it_received_it() {
    let (w, port) = transport_world();
    let mut m = OutgoingMessage::new(
        uri("sip:alice@a.test"),
        uri("sip:bob@a.test"),
        "text/plain",
        "hi",
    );
    m.wire = Some(Arc::from(&b"MESSAGE sip:bob@a.test SIP/2.0\r\n..."[..]));
    let id = w.engine.send_message(m).unwrap();
    let got = relayed(&w, &port);
    assert_eq!(
        got[0].wire.as_deref(),
        Some(&b"MESSAGE sip:bob@a.test SIP/2.0\r\n..."[..])
    );
    w.advance(8);
    assert_eq!(told(&w), [(id, DeliveryOutcome::Stored)]);
    register_bob(&w);
    let again = relayed(&w, &port);
    assert_eq!(again[0].wire, got[0].wire, "kept with the stored message");
}
