//! The list client (RFC 4662, subscriber side): an engine of b.test with an account
//! `sip:bob@a.test` subscribes to a resource list at a.test (`SipServer::subscribe_list`),
//! and each resource's state reaches b.test's local watchers of that resource as ordinary
//! notifications: against libimpp's own list server (two SIP servers in one process), and
//! against a scripted list server sending faulty bodies, which are answered `400` and change
//! nothing.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::engine::{
    AuthAction, Clock, Engine, EngineConfig, Event, ManualClock, Package, ResourceList,
    SubscribeRequest, SubscriptionId,
};
use impp::sip::agent::Account;
use impp::sip::route::NextHop;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::{Credential, MemoryStore};

mod common;
use common::clock::advance;
use common::fixtures::{pidf, uri, wait_for};

/// Per subscription, the bodies of its notifications ("" for none).
type Seen = Arc<Mutex<HashMap<SubscriptionId, Vec<String>>>>;

fn last(seen: &Seen, id: SubscriptionId) -> Option<String> {
    seen.lock()
        .unwrap()
        .get(&id)
        .and_then(|b| b.last().cloned())
}

fn last_saw(seen: &Seen, id: SubscriptionId, text: &str) -> bool {
    last(seen, id).is_some_and(|b| b.contains(text))
}

/// An engine of `domain` on `clock` (every watcher allowed), recording its notifications.
fn engine(domain: &str, clock: Arc<dyn Clock>) -> (Arc<Engine>, Seen) {
    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec![domain.into()],
            default_policy: AuthAction::Allow,
            workers: 2,
            clock,
            store: Arc::new(MemoryStore::new()),
            ..EngineConfig::default()
        })
        .unwrap(),
    );
    let seen: Seen = Arc::default();
    let record = seen.clone();
    engine
        .set_event_callback(Some(Box::new(move |event: &Event| {
            if let Event::Notification(n) = event {
                let body = n.document.as_ref().map(|d| d.to_body()).unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .entry(n.subscription)
                    .or_default()
                    .push(body);
            }
        })))
        .unwrap();
    (engine, seen)
}

/// b.test's engine and SIP server, with the account `sip:bob@a.test` whose server is at
/// `registrar`.
fn client(clock: &Arc<ManualClock>, registrar: SocketAddr) -> (Arc<Engine>, Seen, SipServer) {
    let (engine, seen) = engine("b.test", clock.clone());
    let account = Account::new(
        uri("sip:bob@a.test"),
        "bob",
        "bob-pw",
        NextHop {
            proto: Proto::Udp,
            addr: registrar,
        },
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    config.workers = 1;
    let server = SipServer::start(engine.clone(), config).unwrap();
    (engine, seen, server)
}

/// Moves the clock past the list server's batch interval (1 s), so that a change that
/// reached it by now is notified; called while waiting, as a change reaches it on its own
/// threads.
fn step(clock: &ManualClock, a: &Engine, b: &Engine, a_server: &SipServer, b_server: &SipServer) {
    advance(
        clock,
        Duration::from_millis(1100),
        &[a, b],
        &[a_server, b_server],
    );
}

/// dave of b.test watches `resource` in-process.
fn watch(engine: &Engine, resource: &str) -> SubscriptionId {
    engine
        .subscribe(SubscribeRequest::new(
            uri("sip:dave@b.test"),
            uri(resource),
            Package::Presence,
        ))
        .unwrap()
}

#[test]
fn a_list_at_another_server_feeds_local_watchers_of_its_resources() {
    let clock = ManualClock::new();
    // a.test: users, a list of alice and carol, alice's state already published.
    let (a, a_server, alice_etag) = list_server(&clock);
    let list_uri = uri("sip:buddies@a.test");
    let a_addr = a_server.local_addrs()[0].addr;

    // b.test: dave watches both resources; nothing is known of them yet.
    let (b, seen, b_server) = client(&clock, a_addr);
    wait_for("the account to register", 10, || {
        b_server.account_registered(0)
    });
    let alice = watch(&b, "sip:alice@a.test");
    let carol = watch(&b, "sip:carol@a.test");
    b.sync().unwrap();
    assert!(!last_saw(&seen, alice, "at her desk"));

    // One list subscription: full state gives alice's state to dave.
    b_server
        .subscribe_list(0, &list_uri, Package::Presence)
        .unwrap();
    wait_for("dave to see alice 'at her desk'", 10, || {
        last_saw(&seen, alice, "at her desk")
    });

    // Changes at a.test come as partial state after the batch interval.
    let carol_etag = a
        .publish_body(
            &uri("sip:carol@a.test"),
            Package::Presence,
            &pidf("sip:carol@a.test", "out for lunch"),
            None,
        )
        .unwrap();
    wait_for("dave to see carol 'out for lunch'", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, carol, "out for lunch")
    });
    assert!(last_saw(&seen, alice, "at her desk"));
    a.modify_publication(
        &alice_etag,
        Package::Presence
            .parse(
                &pidf("sip:alice@a.test", "in a meeting"),
                &Default::default(),
            )
            .unwrap(),
    )
    .unwrap();
    wait_for("dave to see alice 'in a meeting'", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, alice, "in a meeting")
    });
    assert!(last_saw(&seen, carol, "out for lunch"));

    // carol withdraws her state: the list says so, and dave sees her without a document.
    a.remove_publication(&carol_etag).unwrap();
    wait_for("dave to see carol's state gone", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        !last_saw(&seen, carol, "out for lunch")
    });

    // Ending the list subscription removes what it mirrored.
    assert!(b_server
        .unsubscribe_list(0, &list_uri, Package::Presence)
        .unwrap());
    assert!(!b_server
        .unsubscribe_list(0, &list_uri, Package::Presence)
        .unwrap());
    b.sync().unwrap();
    wait_for("dave to see alice's state gone", 10, || {
        !last_saw(&seen, alice, "in a meeting")
    });
}

/// a.test's engine and server, with users alice, bob, carol, the list
/// `sip:buddies@a.test` of alice and carol, and alice's state "at her desk" (its entity tag
/// last).
fn list_server(clock: &Arc<ManualClock>) -> (Arc<Engine>, SipServer, String) {
    let (a, _) = engine("a.test", clock.clone());
    for user in ["alice", "bob", "carol"] {
        a.set_user(Credential::new(
            uri(&format!("sip:{user}@a.test")),
            "a.test",
            &format!("{user}-pw"),
        ))
        .unwrap();
    }
    let mut list = ResourceList::new(uri("sip:buddies@a.test"));
    list.packages = vec![Package::Presence];
    list.push_resource(uri("sip:alice@a.test"), None);
    list.push_resource(uri("sip:carol@a.test"), None);
    a.set_list(list).unwrap();
    let alice_etag = a
        .publish_body(
            &uri("sip:alice@a.test"),
            Package::Presence,
            &pidf("sip:alice@a.test", "at her desk"),
            None,
        )
        .unwrap();
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.workers = 1;
    let server = SipServer::start(a.clone(), config).unwrap();
    (a, server, alice_etag)
}

/// The configuration of b.test's server with `account`.
fn client_config(account: Account) -> SipServerConfig {
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    config.workers = 1;
    config
}

fn bob_at(registrar: SocketAddr) -> Account {
    Account::new(
        uri("sip:bob@a.test"),
        "bob",
        "bob-pw",
        NextHop {
            proto: Proto::Udp,
            addr: registrar,
        },
    )
}

#[test]
fn a_list_declared_with_the_account_is_subscribed_at_every_start() {
    let clock = ManualClock::new();
    let (a, a_server, _) = list_server(&clock);
    let list_uri = uri("sip:buddies@a.test");
    let mut account = bob_at(a_server.local_addrs()[0].addr);
    account
        .add_list(list_uri.clone(), Package::Presence)
        .unwrap();
    // The same list again is one declaration; a package without documents is refused.
    account
        .add_list(uri("pres:buddies@a.test"), Package::Presence)
        .unwrap();
    assert!(account
        .add_list(list_uri.clone(), Package::PresenceWinfo)
        .is_err());
    assert_eq!(account.lists.len(), 1);
    let config = client_config(account);

    // dave watches alice before any server runs: nothing is known of her.
    let (b, seen) = engine("b.test", clock.clone());
    let alice = watch(&b, "sip:alice@a.test");
    b.sync().unwrap();
    assert!(!last_saw(&seen, alice, "at her desk"));

    // The server starts and subscribes to the declared list without being asked.
    let b_server = SipServer::start(b.clone(), config.clone()).unwrap();
    wait_for("dave to see alice 'at her desk'", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, alice, "at her desk")
    });
    assert_eq!(b_server.federation_stats().backends, 1);

    // Stopping ends it and removes what it mirrored.
    drop(b_server);
    b.sync().unwrap();
    wait_for("dave to see alice's state gone", 10, || {
        !last_saw(&seen, alice, "at her desk")
    });

    // A restart (a new server, the same configuration) subscribes again.
    let b_server = SipServer::start(b.clone(), config).unwrap();
    wait_for("dave to see alice 'at her desk' again", 10, || {
        step(&clock, &a, &b, &a_server, &b_server);
        last_saw(&seen, alice, "at her desk")
    });

    // The declared list can be ended at run time (until the next start).
    assert!(b_server
        .unsubscribe_list(0, &list_uri, Package::Presence)
        .unwrap());
    assert_eq!(b_server.federation_stats().backends, 0);
}

#[test]
fn bad_list_subscriptions_are_refused_and_change_nothing() {
    let clock = ManualClock::new();
    // Nobody answers at the registrar: nothing here needs an answer.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let registrar = silent.local_addr().unwrap();
    let (b, _) = engine("b.test", clock.clone());

    // A declared list of the server's own domain: the server does not start.
    let mut account = bob_at(registrar);
    account
        .add_list(uri("sip:mine@b.test"), Package::Presence)
        .unwrap();
    let err = SipServer::start(b.clone(), client_config(account))
        .err()
        .expect("a list of an owned domain is refused");
    assert!(
        matches!(&err, impp::Error::InvalidArgument(m) if m.contains("sip:mine@b.test") && m.contains("own domain")),
        "{err:?}"
    );

    // At run time: an unknown account, a list of an owned domain, a package without
    // documents.
    let server = SipServer::start(b.clone(), client_config(bob_at(registrar))).unwrap();
    let list = uri("sip:buddies@a.test");
    let refused = [
        (1, list.clone(), Package::Presence, "no account 1"),
        (0, uri("sip:mine@b.test"), Package::Presence, "own domain"),
        (0, list.clone(), Package::PresenceWinfo, "presence.winfo"),
    ];
    for (account, list, package, says) in refused {
        let err = server.subscribe_list(account, &list, package).unwrap_err();
        assert!(
            matches!(&err, impp::Error::InvalidArgument(m) if m.contains(says)),
            "{err:?}"
        );
        let err = server
            .unsubscribe_list(account, &list, package)
            .unwrap_err();
        assert!(matches!(&err, impp::Error::InvalidArgument(_)), "{err:?}");
    }
    assert_eq!(server.federation_stats().backends, 0);
    assert_eq!(server.federation_stats().subscribes_sent, 0);
    assert!(!server.unsubscribe_list(0, &list, Package::Dialog).unwrap());
}

/// The value of header `name` in the raw SIP text `text` (first occurrence).
fn raw_header<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A scripted a.test: answers the account's REGISTER and PUBLISH 200, hands back the
/// SUBSCRIBE it answers 200, and sends NOTIFYs in its dialog.
struct ScriptedListServer {
    socket: UdpSocket,
    /// (client address, Call-ID, the client's tag) once subscribed.
    dialog: Option<(SocketAddr, String, String)>,
    cseq: u32,
}

impl ScriptedListServer {
    fn new() -> ScriptedListServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        ScriptedListServer {
            socket,
            dialog: None,
            cseq: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Receives until a response comes (its status), answering requests on the way: 200
    /// (a SUBSCRIBE's headers are returned through `subscribed`).
    fn run(&mut self, mut subscribed: Option<&mut String>) -> u16 {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).expect("a message");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(status) = text.strip_prefix("SIP/2.0 ") {
                return status[..3].parse().unwrap();
            }
            let method = text.split(' ').next().unwrap().to_owned();
            let mut extra = String::new();
            match method.as_str() {
                "REGISTER" => extra = "Expires: 3600\r\n".into(),
                "PUBLISH" => extra = "Expires: 3600\r\nSIP-ETag: e1\r\n".into(),
                "SUBSCRIBE" => {
                    extra = "Expires: 600\r\n".into();
                    if let Some(s) = subscribed.as_deref_mut() {
                        *s = text.clone();
                    }
                    let from_tag = raw_header(&text, "From")
                        .split(";tag=")
                        .nth(1)
                        .unwrap()
                        .to_owned();
                    self.dialog = Some((from, raw_header(&text, "Call-ID").to_owned(), from_tag));
                }
                _ => {}
            }
            let to = raw_header(&text, "To");
            let to = if to.contains(";tag=") {
                to.to_owned()
            } else {
                format!("{to};tag=srv")
            };
            let answer = format!(
                "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{}>\r\n{extra}Content-Length: 0\r\n\r\n",
                raw_header(&text, "Via"),
                raw_header(&text, "From"),
                raw_header(&text, "Call-ID"),
                raw_header(&text, "CSeq"),
                self.addr(),
            );
            self.socket.send_to(answer.as_bytes(), from).unwrap();
            if method == "SUBSCRIBE" && subscribed.is_some() {
                return 0;
            }
        }
    }

    /// Sends a NOTIFY with `content_type` and `body` in the dialog; returns the answer's
    /// status.
    fn notify(&mut self, content_type: &str, body: &[u8]) -> u16 {
        let (to, call_id, tag) = self.dialog.clone().expect("subscribed");
        self.cseq += 1;
        let me = self.addr();
        let mut request = format!(
            "NOTIFY sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-n{c}\r\nMax-Forwards: 70\r\nFrom: <sip:buddies@a.test>;tag=srv\r\nTo: <sip:bob@a.test>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {c} NOTIFY\r\nContact: <sip:{me}>\r\nEvent: presence\r\nSubscription-State: active;expires=600\r\nRequire: eventlist\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len(),
            c = self.cseq,
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.socket.send_to(&request, to).unwrap();
        self.run(None)
    }
}

/// A list NOTIFY body: `resources` as (user of a.test, note: `Some` active with a PIDF,
/// `None` terminated), in full or partial state.
fn list_body(version: u32, full: bool, resources: &[(&str, Option<&str>)]) -> (String, Vec<u8>) {
    use impp::doc::rlmi::{Instance, Resource, Rlmi};
    use impp::sip::list_body::ListBody;
    use impp::sip::multipart::BodyPart;
    let mut rlmi = Rlmi::new("sip:buddies@a.test", version);
    rlmi.full_state = full;
    let mut parts = Vec::new();
    for (user, note) in resources {
        let resource_uri = format!("sip:{user}@a.test");
        let mut r = Resource::new(&resource_uri);
        match note {
            Some(note) => {
                let cid = format!("{user}{version}@a.test");
                r.instances
                    .push(Instance::active(format!("i-{user}"), &cid));
                parts.push(BodyPart::new(
                    cid,
                    "application/pidf+xml",
                    pidf(&resource_uri, note),
                ));
            }
            None => r
                .instances
                .push(Instance::terminated(format!("i-{user}"), "noresource")),
        }
        rlmi.resources.push(r);
    }
    let mut body = ListBody::new(rlmi, format!("rlmi{version}@a.test"));
    body.parts = parts;
    body.encode().unwrap()
}

#[test]
fn faulty_list_bodies_are_refused_and_change_nothing() {
    let clock = ManualClock::new();
    let mut a = ScriptedListServer::new();
    let (b, seen, b_server) = client(&clock, a.addr());
    let alice = watch(&b, "sip:alice@a.test");
    let carol = watch(&b, "sip:carol@a.test");
    b_server
        .subscribe_list(0, &uri("sip:buddies@a.test"), Package::Presence)
        .unwrap();
    let mut subscribe = String::new();
    assert_eq!(a.run(Some(&mut subscribe)), 0);
    assert!(
        subscribe.starts_with("SUBSCRIBE sip:buddies@a.test "),
        "{subscribe}"
    );
    assert_eq!(raw_header(&subscribe, "Supported"), "eventlist");
    assert_eq!(
        raw_header(&subscribe, "Accept"),
        "application/rlmi+xml, multipart/related, application/pidf+xml"
    );
    assert_eq!(raw_header(&subscribe, "Event"), "presence");

    // Full state: both resources.
    let (ct, body) = list_body(0, true, &[("alice", Some("home")), ("carol", Some("gym"))]);
    assert_eq!(a.notify(&ct, &body), 200);
    wait_for("dave to see alice and carol", 10, || {
        last_saw(&seen, alice, "home") && last_saw(&seen, carol, "gym")
    });

    // Faulty bodies, each carrying a change: 400, and nothing changes.
    let (ct, body) = list_body(1, false, &[("alice", Some("FAULTY"))]);
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"');
    let bad_boundary = ct.replace(boundary, "not-the-boundary");
    assert_eq!(a.notify(&bad_boundary, &body), 400, "bad boundary");
    let no_start = ct.replace("rlmi1@a.test", "elsewhere@a.test");
    assert_ne!(no_start, ct);
    assert_eq!(a.notify(&no_start, &body), 400, "missing start part");
    let text = String::from_utf8(body.clone()).unwrap();
    let no_cid_part = text.replacen("cid=\"alice1@a.test\"", "cid=\"gone@a.test\"", 1);
    assert_ne!(no_cid_part, text);
    assert_eq!(
        a.notify(&ct, no_cid_part.as_bytes()),
        400,
        "missing cid part"
    );
    let wrong_type = text.replace(
        "Content-Type: application/pidf+xml",
        "Content-Type: text/plain",
    );
    assert_ne!(wrong_type, text);
    assert_eq!(
        a.notify(&ct, wrong_type.as_bytes()),
        400,
        "part of another type"
    );
    b.sync().unwrap();
    assert!(last_saw(&seen, alice, "home"));
    assert!(last_saw(&seen, carol, "gym"));
    assert!(!seen
        .lock()
        .unwrap()
        .values()
        .flatten()
        .any(|n| n.contains("FAULTY")));

    // Partial state changes only what it lists.
    let (ct, body) = list_body(1, false, &[("alice", Some("office"))]);
    assert_eq!(a.notify(&ct, &body), 200);
    wait_for("dave to see alice 'office'", 10, || {
        last_saw(&seen, alice, "office")
    });
    assert!(last_saw(&seen, carol, "gym"));

    // A terminated instance clears that resource only.
    let (ct, body) = list_body(2, false, &[("carol", None)]);
    assert_eq!(a.notify(&ct, &body), 200);
    wait_for("dave to see carol's state gone", 10, || {
        last(&seen, carol).is_some_and(|n| !n.contains("gym"))
    });
    assert!(last_saw(&seen, alice, "office"));

    // Full state replaces every resource's state: carol back, alice not listed any more.
    let (ct, body) = list_body(3, true, &[("carol", Some("back"))]);
    assert_eq!(a.notify(&ct, &body), 200);
    wait_for("dave to see carol back and alice gone", 10, || {
        last_saw(&seen, carol, "back") && last(&seen, alice).is_some_and(|n| !n.contains("office"))
    });
}
