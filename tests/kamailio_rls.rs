//! The list client against Kamailio's rls module (deploy/kamailio/presence-rls.cfg): a list
//! defined as an rls-services document in Kamailio's xcap table (db_text), an engine of
//! b.test whose account `sip:bob@example.test` subscribes to it (`SipServer::subscribe_list`),
//! and a local watcher of a resource of the list sees that resource's state as it is
//! published at Kamailio.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixtures::{pidf, uri, wait_for};
use common::kamailio::{Kamailio, TempDir, DOMAIN};
use impp::engine::{
    AuthAction, Engine, EngineConfig, Event, Package, SubscribeRequest, SubscriptionId,
};
use impp::sip::agent::Account;
use impp::sip::route::NextHop;
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};

/// The db_text tables rls and pua need, the xcap table holding `bob`'s rls-services
/// document with the list `sip:buddies@DOMAIN` of alice and carol (doc_type 8: Kamailio
/// 5.6's RLS_SERVICES, 1<<3).
fn database(dir: &std::path::Path) {
    let tables = std::path::Path::new("/usr/share/kamailio/dbtext/kamailio");
    for t in ["version", "rls_watchers", "rls_presentity", "pua"] {
        std::fs::copy(tables.join(t), dir.join(t)).unwrap();
    }
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\"><service uri=\"sip:buddies@{DOMAIN}\"><list><rl:entry uri=\"sip:alice@{DOMAIN}\"/><rl:entry uri=\"sip:carol@{DOMAIN}\"/></list><packages><package>presence</package></packages></service></rls-services>"
    );
    let header = std::fs::read_to_string(tables.join("xcap")).unwrap();
    // db_text: fields separated by ':', a ':' inside a value escaped.
    let row = format!(
        "1:bob:{DOMAIN}:{}:8:e1:0:/rls-services/users/sip\\:bob@{DOMAIN}/index:0\n",
        doc.replace(':', "\\:")
    );
    std::fs::write(dir.join("xcap"), format!("{header}{row}")).unwrap();
}

/// PUBLISHes `note` as alice's presence at Kamailio, modifying the publication `etag` if
/// given; returns the entity tag.
fn publish(kamailio: SocketAddr, note: &str, n: u32, etag: Option<&str>) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let alice = format!("sip:alice@{DOMAIN}");
    let body = pidf(&alice, note);
    let request = format!(
        "PUBLISH {alice} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-pub{n};rport\r\nMax-Forwards: 70\r\nFrom: <{alice}>;tag=p{n}\r\nTo: <{alice}>\r\nCall-ID: pub{n}@test\r\nCSeq: 1 PUBLISH\r\n{}Event: presence\r\nExpires: 600\r\nContent-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
        etag.map(|e| format!("SIP-If-Match: {e}\r\n"))
            .unwrap_or_default(),
        body.len()
    );
    socket.send_to(request.as_bytes(), kamailio).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer to PUBLISH");
    assert!(
        buf[..len].starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..len])
    );
    String::from_utf8_lossy(&buf[..len])
        .lines()
        .find_map(|l| l.strip_prefix("SIP-ETag:"))
        .expect("an entity tag")
        .trim()
        .to_owned()
}

#[test]
fn a_kamailio_rls_list_feeds_local_watchers() {
    let db = TempDir::new("kamailio-rls-db");
    database(db.path());
    let kamailio = Kamailio::start(
        "presence-rls.cfg",
        &[("DB_URL", &format!("\"text://{}\"", db.path().display()))],
    );
    let etag = publish(kamailio.addr(), "at the bench", 1, None);

    let engine = Arc::new(
        Engine::new(EngineConfig {
            domains: vec!["b.test".into()],
            default_policy: AuthAction::Allow,
            workers: 2,
            ..EngineConfig::default()
        })
        .unwrap(),
    );
    let seen: Arc<Mutex<Vec<(SubscriptionId, String)>>> = Arc::default();
    let record = seen.clone();
    engine
        .set_event_callback(Some(Box::new(move |event: &Event| {
            if let Event::Notification(n) = event {
                let body = n.document.as_ref().map(|d| d.to_body()).unwrap_or_default();
                record.lock().unwrap().push((n.subscription, body));
            }
        })))
        .unwrap();
    let account = Account::new(
        uri(&format!("sip:bob@{DOMAIN}")),
        "bob",
        "bob-pw",
        NextHop {
            proto: Proto::Udp,
            addr: kamailio.addr(),
        },
    );
    let mut config = SipServerConfig::new(vec![ListenAddr::udp("127.0.0.1:0".parse().unwrap())]);
    config.accounts = vec![account];
    let server = SipServer::start(engine.clone(), config).unwrap();
    let alice = engine
        .subscribe(SubscribeRequest::new(
            uri("sip:dave@b.test"),
            uri(&format!("sip:alice@{DOMAIN}")),
            Package::Presence,
        ))
        .unwrap();
    server
        .subscribe_list(0, &uri(&format!("sip:buddies@{DOMAIN}")), Package::Presence)
        .unwrap();
    let saw = |text: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(id, _)| *id == alice)
            .is_some_and(|(_, b)| b.contains(text))
    };
    let log = || format!("{}\nseen: {:?}", kamailio.log(), seen.lock().unwrap());
    wait_for_or(
        "dave to see alice 'at the bench' through the list",
        &saw,
        "at the bench",
        &log,
    );
    publish(kamailio.addr(), "gone fishing", 2, Some(&etag));
    wait_for_or(
        "dave to see alice 'gone fishing'",
        &saw,
        "gone fishing",
        &log,
    );
}

/// As `wait_for`, printing Kamailio's log when it times out.
fn wait_for_or(what: &str, saw: &dyn Fn(&str) -> bool, text: &str, log: &dyn Fn() -> String) {
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(what, 15, || saw(text))
    }));
    if done.is_err() {
        panic!("timed out waiting for {what}; kamailio log:\n{}", log());
    }
}
