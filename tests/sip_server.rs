//! The SIP server over an engine, driven by the SIP client of `common::sip` on loopback (and
//! by hand over TCP): OPTIONS, REGISTER with digest authentication, PUBLISH (initial,
//! refresh, modify, remove, unknown tag), SUBSCRIBE with its NOTIFYs, MESSAGE to online and
//! offline users, and bad input.

use std::io::{Read, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use impp::sip::transaction::Timers;
use impp::sip::{SipLimits, SipMessage, Transport};

mod common;
use common::clock::timer_e_steps;
use common::fixtures::wait_for;
use common::sip::{header_map, parse, token, Client, Server, DOMAIN};

fn pidf(entity: &str, basic: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}">
  <tuple id="t1"><status><basic>{basic}</basic></status><note>{note}</note></tuple>
</presence>"#
    )
}

#[test]
fn options_and_unknown_methods() {
    let s = Server::start(true);
    let mut c = Client::new(s.udp(), "alice");
    let r = c.transact(&c.request(
        "OPTIONS",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{DOMAIN}>"),
        &token(),
        "",
        None,
    ));
    assert_eq!(r.status(), Some(200));
    let h = header_map(&r);
    assert!(h["allow"].contains("SUBSCRIBE") && h["allow"].contains("MESSAGE"));
    assert!(h["allow-events"].contains("presence.winfo"));
    // received/rport on the top Via (RFC 3581).
    let via = r.top_via().unwrap();
    assert_eq!(via.received(), Some("127.0.0.1"));
    assert_eq!(via.rport(), Some(Some(c.local().port())));
    let r = c.transact(&c.request(
        "INFO",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{DOMAIN}>"),
        &token(),
        "",
        None,
    ));
    assert_eq!(r.status(), Some(405));
    assert!(header_map(&r)["allow"].contains("PUBLISH"));
}

#[test]
fn register_needs_digest_credentials_of_the_same_user() {
    let s = Server::start(true);
    let mut alice = Client::new(s.udp(), "alice");
    let r = alice.register(600);
    assert_eq!(r.status(), Some(200), "{:?}", header_map(&r));
    let contact = header_map(&r)["contact"].clone();
    assert!(contact.contains(&alice.local().to_string()), "{contact}");
    assert!(contact.contains("expires=600"), "{contact}");
    // A wrong password is refused.
    let mut mallory = Client::new(s.udp(), "alice");
    mallory.user = "alice".into();
    let aor = mallory.aor();
    let r = mallory.transact_auth(|c, auth| {
        let auth = auth.replace("response=\"", "response=\"0");
        c.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &format!("<{aor}>"),
            "reg-m",
            &format!("Expires: 600\r\n{auth}"),
            None,
        )
    });
    assert_eq!(r.status(), Some(403));
    // Too brief.
    let r = alice.register(5);
    assert_eq!(r.status(), Some(423));
    assert!(header_map(&r).contains_key("min-expires"));
    // Unregister.
    assert_eq!(alice.register(0).status(), Some(200));
}

#[test]
fn publish_refresh_modify_remove_and_unknown_tag() {
    let s = Server::start(true);
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    let r = alice.publish("Expires: 600\r\n", Some(&pidf(&aor, "open", "here")));
    assert_eq!(r.status(), Some(200));
    let tag1 = header_map(&r)["sip-etag"].clone();
    // Refresh without a body keeps the document; a new tag.
    let r = alice.publish(&format!("SIP-If-Match: {tag1}\r\nExpires: 600\r\n"), None);
    assert_eq!(r.status(), Some(200));
    let tag2 = header_map(&r)["sip-etag"].clone();
    assert_ne!(tag1, tag2);
    // The old tag is gone: 412.
    let r = alice.publish(&format!("SIP-If-Match: {tag1}\r\nExpires: 600\r\n"), None);
    assert_eq!(r.status(), Some(412));
    // Modify.
    let r = alice.publish(
        &format!("SIP-If-Match: {tag2}\r\n"),
        Some(&pidf(&aor, "closed", "away")),
    );
    assert_eq!(r.status(), Some(200));
    let tag3 = header_map(&r)["sip-etag"].clone();
    // A body that is not PIDF: 415; too brief: 423.
    let r = alice.publish("", Some("<not-pidf/>"));
    assert_eq!(r.status(), Some(400));
    let r = alice.publish("Expires: 1\r\n", Some(&pidf(&aor, "open", "x")));
    assert_eq!(r.status(), Some(423));
    // Remove.
    let r = alice.publish(&format!("SIP-If-Match: {tag3}\r\nExpires: 0\r\n"), None);
    assert_eq!(r.status(), Some(200));
    // Publishing for someone else is refused.
    let mut bob = Client::new(s.udp(), "bob");
    let r = bob.transact_auth(|c, auth| {
        c.request(
            "PUBLISH",
            &aor,
            &format!("<{aor}>"),
            "pub-b",
            &format!("Event: presence\r\n{auth}"),
            Some((
                "application/pidf+xml",
                pidf(&aor, "open", "fake").as_bytes(),
            )),
        )
    });
    assert_eq!(r.status(), Some(403));
}

#[test]
fn subscribe_gets_the_state_then_every_change_then_the_end() {
    let s = Server::start(false);
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let aor = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "open", "in"))).status(),
        Some(200)
    );

    let call_id = token();
    let sub = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &call_id,
        "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 600\r\n",
        None,
    );
    let r = bob.transact(&sub);
    assert_eq!(r.status(), Some(200));
    let to_tag = r.to().unwrap().tag().unwrap().to_string();
    let h = header_map(&r);
    assert_eq!(h["expires"], "600");
    let n = bob.next_request("NOTIFY");
    let nh = header_map(&n);
    assert!(nh["subscription-state"].starts_with("active"), "{nh:?}");
    assert_eq!(nh["event"], "presence");
    assert!(String::from_utf8_lossy(n.body()).contains("<basic>open</basic>"));
    assert_eq!(n.from().unwrap().tag(), Some(to_tag.as_str()));
    assert_eq!(n.call_id().unwrap(), call_id);

    // A change is notified.
    assert_eq!(
        alice
            .publish("", Some(&pidf(&aor, "closed", "out")))
            .status(),
        Some(200)
    );
    let n = bob.next_request("NOTIFY");
    let body = String::from_utf8_lossy(n.body()).to_string();
    assert!(body.contains("open") || body.contains("closed"), "{body}");

    // The To tag names the subscription, but the rest of the dialog must match too: a
    // refresh with another Call-ID, or with a tag naming the subscription but not its own,
    // is refused and changes nothing.
    let (tag_random, named) = to_tag
        .rsplit_once('.')
        .expect("the tag names its subscription");
    let other_random = format!("{}{}", &tag_random[1..], &tag_random[..1]);
    for (to, cid) in [
        (format!("<{aor}>;tag={to_tag}"), token()),
        (
            format!("<{aor}>;tag={other_random}.{named}"),
            call_id.clone(),
        ),
    ] {
        let forged = bob.request(
            "SUBSCRIBE",
            &aor,
            &to,
            &cid,
            "Event: presence\r\nExpires: 0\r\n",
            None,
        );
        assert_eq!(bob.transact(&forged).status(), Some(481), "{to} {cid}");
    }

    // Refresh inside the dialog: 200 and a NOTIFY with the current state.
    let refresh = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>;tag={to_tag}"),
        &call_id,
        "Event: presence\r\nExpires: 300\r\n",
        None,
    );
    let r = bob.transact(&refresh);
    assert_eq!(r.status(), Some(200));
    assert_eq!(header_map(&r)["expires"], "300");
    let n = bob.next_request("NOTIFY");
    assert!(header_map(&n)["subscription-state"].starts_with("active"));

    // Unsubscribe: a final NOTIFY, terminated.
    let end = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>;tag={to_tag}"),
        &call_id,
        "Event: presence\r\nExpires: 0\r\n",
        None,
    );
    assert_eq!(bob.transact(&end).status(), Some(200));
    loop {
        let n = bob.next_request("NOTIFY");
        if header_map(&n)["subscription-state"].starts_with("terminated") {
            break;
        }
    }
    // The dialog is gone: 481.
    let again = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>;tag={to_tag}"),
        &call_id,
        "Event: presence\r\nExpires: 300\r\n",
        None,
    );
    assert_eq!(bob.transact(&again).status(), Some(481));
    // An unknown package: 489.
    let bad = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: weather\r\n",
        None,
    );
    let r = bob.transact(&bad);
    assert_eq!(r.status(), Some(489));
    assert!(header_map(&r)["allow-events"].contains("presence"));
}

#[test]
fn messages_to_online_and_offline_users() {
    let s = Server::start_with(false, 1000, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let bob_aor = bob.aor();
    let message = |alice: &Client, text: &str| {
        alice.request(
            "MESSAGE",
            &bob_aor,
            &format!("<{bob_aor}>"),
            &token(),
            "",
            Some(("text/plain", text.as_bytes())),
        )
    };
    let send = |alice: &mut Client, text: &str| {
        let m = message(alice, text);
        alice.transact(&m)
    };
    // Bob is offline: stored (202).
    assert_eq!(send(&mut alice, "first").status(), Some(202));
    assert_eq!(send(&mut alice, "second").status(), Some(202));
    // Bob registers: both arrive at his contact, in order.
    assert_eq!(bob.register(600).status(), Some(200));
    let m1 = bob.next_request("MESSAGE");
    let m2 = bob.next_request("MESSAGE");
    assert_eq!((m1.body(), m2.body()), (&b"first"[..], &b"second"[..]));
    assert_eq!(m1.from().unwrap().uri_text(), alice.aor());
    // Online now: relayed, and delivered (200) once bob's device took it (answered 200).
    let call_id = alice.send(&message(&alice, "third"));
    let relayed = bob.next_request("MESSAGE");
    assert_eq!(relayed.body(), b"third");
    assert_eq!(alice.final_response(&call_id).status(), Some(200));
    // Relayed as a proxy forwards it: what alice wrote reaches bob unchanged.
    assert_eq!(relayed.call_id().unwrap(), call_id);
    assert_eq!(relayed.request_uri_text().unwrap(), bob.contact_uri());
    // Unknown user: 404; too large: 413.
    let m = alice.request(
        "MESSAGE",
        &format!("sip:nobody@{DOMAIN}"),
        &format!("<sip:nobody@{DOMAIN}>"),
        &token(),
        "",
        Some(("text/plain", b"hi")),
    );
    assert_eq!(alice.transact(&m).status(), Some(404));
    let big = vec![b'x'; 1001];
    let m = alice.request(
        "MESSAGE",
        &bob_aor,
        &format!("<{bob_aor}>"),
        &token(),
        "",
        Some(("text/plain", &big)),
    );
    assert_eq!(alice.transact(&m).status(), Some(413));
    // Over TCP too, on one connection.
    let mut tcp = TcpStream::connect(s.tcp()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let m = alice.request(
        "MESSAGE",
        &bob_aor,
        &format!("<{bob_aor}>"),
        &token(),
        "",
        Some(("text/plain", b"by tcp")),
    );
    let m = String::from_utf8(m)
        .unwrap()
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(m.as_bytes()).unwrap();
    assert_eq!(bob.next_request("MESSAGE").body(), b"by tcp");
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
}

#[test]
fn bad_input_is_answered_or_dropped_and_the_server_goes_on() {
    let s = Server::start(false);
    let mut c = Client::new(s.udp(), "alice");
    for garbage in [
        &b"\x00\x01\x02 not sip"[..],
        b"OPTIONS sip:x SIP/2.0\r\n",
        b"",
        b"SIP/2.0 200 OK\r\n\r\n",
    ] {
        c.socket.send_to(garbage, s.udp()).unwrap();
    }
    // Missing CSeq method agreement: 400 naming it.
    let bad = c.request(
        "OPTIONS",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{DOMAIN}>"),
        &token(),
        "",
        None,
    );
    let bad = String::from_utf8(bad)
        .unwrap()
        .replace(" OPTIONS\r\nContact", " INFO\r\nContact");
    let r = c.transact(bad.as_bytes());
    assert_eq!(r.status(), Some(400));
    assert!(r.reason().unwrap().contains("CSeq"), "{:?}", r.reason());
    // Still serving.
    let r = c.transact(&c.request(
        "OPTIONS",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{DOMAIN}>"),
        &token(),
        "",
        None,
    ));
    assert_eq!(r.status(), Some(200));
}

#[test]
fn a_notify_nobody_answers_is_retransmitted_then_ends_the_subscription() {
    // On a manual clock: timer E sends the unanswered NOTIFY again at T1, timer F (64·T1)
    // ends it, each when the test moves the clock there.
    let s = Server::clocked(false, |_| {});
    let timers = Timers::default();
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "open", "in"))).status(),
        Some(200)
    );
    // A watcher that subscribes, then goes silent.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let watcher = Client::new(s.udp(), "bob");
    let sub = watcher.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let sub = String::from_utf8(sub).unwrap().replace(
        &watcher.local().to_string(),
        &silent.local_addr().unwrap().to_string(),
    );
    silent.send_to(sub.as_bytes(), s.udp()).unwrap();
    let mut notifies = 0;
    let mut ok = false;
    let mut buf = vec![0u8; 65536];
    // Reads what reaches the silent watcher until `done` holds (at most 5 s of real time for
    // the datagrams to arrive; the clock stands still meanwhile).
    let mut read = |ok: &mut bool, notifies: &mut usize, done: fn(bool, usize) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(*ok, *notifies) && Instant::now() < deadline {
            if let Ok((n, _)) = silent.recv_from(&mut buf) {
                let m = parse(&buf[..n]);
                match m.method() {
                    Some("NOTIFY") => *notifies += 1,
                    None => *ok |= m.status() == Some(200),
                    _ => {}
                }
            }
        }
    };
    // The answer and the first NOTIFY come at once; T1 later timer E sends the NOTIFY again.
    read(&mut ok, &mut notifies, |ok, notifies| ok && notifies == 1);
    s.advance(timers.t1);
    read(&mut ok, &mut notifies, |_, notifies| notifies > 1);
    // At 64·T1 timer F ends the transaction, and the subscription with it.
    s.advance(timers.timeout() - timers.t1);
    wait_for("the subscription to end", 5, || {
        s.engine.stats().subscriptions_active == 0
    });
    assert!(ok, "the SUBSCRIBE was answered 200");
    assert!(
        notifies > 1,
        "the NOTIFY was retransmitted ({notifies} seen)"
    );
    assert_eq!(
        s.engine.stats().subscriptions_active,
        0,
        "the subscription ended"
    );
}

#[test]
fn a_notify_that_cannot_reach_a_tcp_watcher_ends_the_subscription_at_once() {
    // On a manual clock that never moves: the subscription can only end through the
    // transport error (RFC 3261 §8.1.3.1: a 503), not through Timer F.
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "open", "in"))).status(),
        Some(200)
    );
    // A watcher over TCP whose Contact is a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let contact = closed.local_addr().unwrap();
    drop(closed);
    let mut tcp = TcpStream::connect(s.tcp()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = tcp.local_addr().unwrap();
    let call_id = token();
    let sub = format!(
        "SUBSCRIBE {aor} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bob@{DOMAIN}>;tag={}\r\n\
         To: <{aor}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:bob@{contact};transport=tcp>\r\n\
         Event: presence\r\n\
         Expires: 600\r\n\
         Content-Length: 0\r\n\r\n",
        token(),
        token()
    );
    tcp.write_all(sub.as_bytes()).unwrap();
    // The 200 and the first NOTIFY on the connection (the NOTIFY answered 200).
    let mut seen = String::new();
    let mut buf = vec![0u8; 65536];
    while !(seen.contains("SIP/2.0 200") && seen.contains("NOTIFY ")) {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let at = seen.find("NOTIFY ").unwrap();
    let notify = parse(&seen.as_bytes()[at..]);
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Content-Length: 0\r\n\r\n",
        notify.header("Via").unwrap(),
        notify.header("From").unwrap(),
        notify.header("To").unwrap(),
        notify.header("Call-ID").unwrap(),
        notify.header("CSeq").unwrap(),
    );
    tcp.write_all(ok.as_bytes()).unwrap();
    wait_for("the first NOTIFY answered", 5, || {
        s.server.sync();
        s.engine.stats().subscriptions_active == 1
    });
    // The watcher's connection goes; the next NOTIFY has nowhere to go.
    drop(tcp);
    assert_eq!(
        alice
            .publish("", Some(&pidf(&aor, "closed", "out")))
            .status(),
        Some(200)
    );
    wait_for("the subscription to end", 10, || {
        s.server.sync();
        s.engine.stats().subscriptions_active == 0
    });
}

#[test]
fn a_corpus_of_bad_requests_changes_nothing_and_the_server_goes_on() {
    let s = Server::start(false);
    let mut c = Client::new(s.udp(), "alice");
    let aor = c.aor();
    let good = |c: &Client| {
        c.request(
            "OPTIONS",
            &format!("sip:{DOMAIN}"),
            &format!("<sip:{DOMAIN}>"),
            &token(),
            "",
            None,
        )
    };
    let publish_with = |c: &Client, body: &str| {
        c.request(
            "PUBLISH",
            &aor,
            &format!("<{aor}>"),
            &token(),
            "Event: presence\r\n",
            Some(("application/pidf+xml", body.as_bytes())),
        )
    };
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    let mut corpus: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // Truncated: no empty line after the headers.
        text(good(&c))
            .split("Content-Length")
            .next()
            .unwrap()
            .as_bytes()
            .to_vec(),
        // A NUL in a header.
        text(good(&c))
            .replace("Max-Forwards: 70", "Max-Forwards: 7\u{0}0")
            .into_bytes(),
        // Content-Length larger than the body, and a body without Content-Type.
        text(good(&c))
            .replace("Content-Length: 0", "Content-Length: 500")
            .into_bytes(),
        text(good(&c))
            .replace(
                "Content-Length: 0\r\n\r\n",
                "Content-Length: 5\r\n\r\nhello",
            )
            .into_bytes(),
        // Missing mandatory headers.
        text(good(&c)).replace("Call-ID", "X-Call-ID").into_bytes(),
        text(good(&c)).replace("CSeq: ", "X-CSeq: ").into_bytes(),
        text(good(&c))
            .replace("\r\nFrom: ", "\r\nX-From: ")
            .into_bytes(),
        // A bad Request-URI and a bad version.
        text(good(&c))
            .replacen(&format!("sip:{DOMAIN}"), "sip:", 1)
            .into_bytes(),
        text(good(&c))
            .replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1)
            .into_bytes(),
        // A huge header line, and too many headers.
        text(good(&c))
            .replace("Max-Forwards: 70", &format!("X-Big: {}", "a".repeat(9000)))
            .into_bytes(),
        text(good(&c))
            .replace("Max-Forwards: 70", &"X-H: 1\r\n".repeat(200))
            .into_bytes(),
        // PUBLISH bodies that are not PIDF, or not XML at all.
        publish_with(&c, "<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple"),
        publish_with(&c, "<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>"),
        publish_with(&c, "not xml at all"),
    ];
    corpus.retain(|m| m.len() < 60_000);
    for (i, bad) in corpus.iter().enumerate() {
        c.socket.send_to(bad, s.udp()).unwrap();
        // The server still answers, and nothing was published or subscribed.
        let r = c.transact(&good(&c));
        assert_eq!(r.status(), Some(200), "after bad input #{i}");
    }
    // Whatever was answerable got an error status, never a success.
    let stats = s.engine.stats();
    assert_eq!((stats.publications, stats.subscriptions_active), (0, 0));
    assert!(
        c.requests.is_empty(),
        "the server sent requests: {:?}",
        c.requests.iter().map(|m| m.method()).collect::<Vec<_>>()
    );
    // Answers that arrived for the bad requests (drained with a short wait) are all errors.
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = c.socket.recv_from(&mut buf) {
        if let Ok(m) = SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Datagram) {
            if let Some(status) = m.status() {
                assert!(status >= 400, "a bad request was answered {status}");
            }
        }
    }
}

#[test]
fn watcher_information_dialog_and_filters_over_sip() {
    let s = Server::start(false);
    let mut alice = Client::new(s.udp(), "alice");
    let mut bob = Client::new(s.udp(), "bob");
    let aor = alice.aor();
    // Alice watches her watchers.
    let winfo = alice.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence.winfo\r\nAccept: application/watcherinfo+xml\r\n",
        None,
    );
    assert_eq!(alice.transact(&winfo).status(), Some(200));
    let n = alice.next_request("NOTIFY");
    assert_eq!(
        header_map(&n)["content-type"],
        "application/watcherinfo+xml"
    );
    assert!(String::from_utf8_lossy(n.body()).contains("state=\"full\""));
    // Bob watches Alice with a filter: only the tuple "desk".
    let filter = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter"><ns-bindings><ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/></ns-bindings><filter id="f" uri="sip:alice@example.test"><what><include type="xpath">//pidf:tuple[@id="desk"]</include></what></filter></filter-set>"#;
    let sub = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence\r\n",
        Some(("application/simple-filter+xml", filter.as_bytes())),
    );
    assert_eq!(bob.transact(&sub).status(), Some(200));
    bob.next_request("NOTIFY");
    // Alice learns about Bob (a partial watcherinfo document).
    let n = alice.next_request("NOTIFY");
    let body = String::from_utf8_lossy(n.body()).to_string();
    assert!(
        body.contains("sip:bob@example.test") && body.contains("partial"),
        "{body}"
    );
    // Alice publishes two tuples; Bob's filter lets only "desk" through.
    let two = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{aor}"><tuple id="desk"><status><basic>open</basic></status></tuple><tuple id="cell"><status><basic>closed</basic></status></tuple></presence>"#
    );
    assert_eq!(alice.publish("", Some(&two)).status(), Some(200));
    let n = bob.next_request("NOTIFY");
    let body = String::from_utf8_lossy(n.body()).to_string();
    assert!(body.contains("desk") && !body.contains("cell"), "{body}");
    // Bob may not watch Alice's watchers: 403.
    let spy = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence.winfo\r\n",
        None,
    );
    assert_eq!(bob.transact(&spy).status(), Some(403));
    // A busy lamp: dialog state published by Alice's phone reaches a dialog watcher.
    let dlg = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: dialog\r\n",
        None,
    );
    assert_eq!(bob.transact(&dlg).status(), Some(200));
    bob.next_request("NOTIFY");
    let info = format!(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="{aor}"><dialog id="d1"><state>confirmed</state></dialog></dialog-info>"#
    );
    let call_id = token();
    let publish = alice.request(
        "PUBLISH",
        &aor,
        &format!("<{aor}>"),
        &call_id,
        "Event: dialog\r\n",
        Some(("application/dialog-info+xml", info.as_bytes())),
    );
    assert_eq!(alice.transact(&publish).status(), Some(200));
    let n = bob.next_request("NOTIFY");
    assert_eq!(header_map(&n)["event"], "dialog");
    assert!(String::from_utf8_lossy(n.body()).contains("confirmed"));
}

/// The first PUBLISH baresip 1.0.0 sends (presence.so loaded, no status chosen yet).
fn baresip_pidf(entity: &str, basic: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    entity="{entity}">
  <dm:person id="p1"><rpid:activities/></dm:person>
  <tuple id="t1">
    <status>
      <basic>{basic}</basic>
    </status>
    <contact>{entity}</contact>
  </tuple>
</presence>
"#
    )
}

/// Regression (baresip): PIDF allows only open and closed, so baresip's
/// `<basic>unknown</basic>` is refused, with 400: the type is right, the document is not, and
/// 415 with `Accept: application/pidf+xml` told the client to send the type it had sent. A
/// body of another type is still 415 with Accept. The same document with `open` is taken.
#[test]
fn publish_of_an_invalid_pidf_document_is_a_bad_request() {
    let s = Server::start(true);
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    let r = alice.publish("Expires: 600\r\n", Some(&baresip_pidf(&aor, "unknown")));
    assert_eq!(r.status(), Some(400), "{:?}", r.reason());
    assert!(r.reason().unwrap().contains("unknown"), "{:?}", r.reason());
    assert!(!header_map(&r).contains_key("accept"));
    let call_id = token();
    let r = alice.transact_auth(|c, auth| {
        c.request(
            "PUBLISH",
            &aor,
            &format!("<{aor}>"),
            &call_id,
            &format!("Event: presence\r\n{auth}"),
            Some(("text/plain", b"open")),
        )
    });
    assert_eq!(r.status(), Some(415));
    assert_eq!(header_map(&r)["accept"], "application/pidf+xml");
    let r = alice.publish("Expires: 600\r\n", Some(&baresip_pidf(&aor, "open")));
    assert_eq!(r.status(), Some(200));
    assert!(header_map(&r).contains_key("sip-etag"));
}

/// Regression (baresip): libre tries every challenge of a 401 and fails the request on one
/// naming another algorithm than MD5, so a server for such clients offers MD5 alone
/// (`offer_sha256 = false`, imppd's default). By default the library offers both, MD5 first.
#[test]
fn md5_only_challenges_offer_md5_alone() {
    let register = |s: &Server| {
        let mut alice = Client::new(s.udp(), "alice");
        let aor = alice.aor();
        alice.transact(&alice.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &format!("<{aor}>"),
            &token(),
            "Expires: 600\r\n",
            None,
        ))
    };
    let both = Server::start(true);
    let r = register(&both);
    assert_eq!(r.status(), Some(401));
    let challenges: Vec<&str> = r.headers("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].contains("algorithm=MD5"), "{challenges:?}");
    assert!(
        challenges[1].contains("algorithm=SHA-256"),
        "{challenges:?}"
    );

    let md5 = Server::start_with(true, 65536, |c| c.offer_sha256 = false);
    let r = register(&md5);
    assert_eq!(r.status(), Some(401));
    let challenges: Vec<&str> = r.headers("WWW-Authenticate").collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].contains("algorithm=MD5"), "{challenges:?}");
    // The MD5 answer is taken.
    let mut alice = Client::new(md5.udp(), "alice");
    assert_eq!(alice.register(600).status(), Some(200));
}

/// baresip's SUBSCRIBE: no Accept (PIDF is the default), an empty `Supported:` header, and a
/// loose Route naming the server. Answered 200 with a Contact, then a PIDF NOTIFY.
#[test]
fn subscribe_without_accept_and_with_an_empty_supported_header() {
    let s = Server::start(true);
    let mut bob = Client::new(s.udp(), "bob");
    let target = format!("sip:alice@{DOMAIN}");
    let route = format!("Route: <sip:{};transport=udp;lr>\r\n", s.udp());
    let call_id = token();
    let r = bob.transact_auth(|c, auth| {
        c.request(
            "SUBSCRIBE",
            &target,
            &format!("<{target}>"),
            &call_id,
            &format!("{route}Supported:\r\nEvent: presence\r\nExpires: 600\r\n{auth}"),
            None,
        )
    });
    assert_eq!(r.status(), Some(200), "{:?}", r.reason());
    assert!(header_map(&r).contains_key("contact"));
    let notify = bob.next_request("NOTIFY");
    assert_eq!(
        header_map(&notify)["content-type"],
        "application/pidf+xml",
        "{notify:?}"
    );
}

/// The answers to the server's NOTIFYs are taken as they arrive (on the transport's thread):
/// a 200 completes the transaction, so the NOTIFY is never sent again; a 481 (the watcher
/// forgot the dialog) ends the subscription.
#[test]
fn a_notify_answered_200_is_done_and_one_answered_481_ends_the_subscription() {
    // On a manual clock: an unanswered NOTIFY would be sent again at each timer E.
    let s = Server::clocked(false, |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    let aor = alice.aor();
    assert_eq!(
        alice.publish("", Some(&pidf(&aor, "open", "in"))).status(),
        Some(200)
    );
    let mut bob = Client::new(s.udp(), "bob");
    let sub = bob.request(
        "SUBSCRIBE",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    assert_eq!(bob.transact(&sub).status(), Some(200));
    bob.next_request("NOTIFY"); // answered 200 by the client
    let options = |bob: &Client| {
        bob.request(
            "OPTIONS",
            &format!("sip:{DOMAIN}"),
            &format!("<sip:{DOMAIN}>"),
            &token(),
            "",
            None,
        )
    };
    // Once bob's OPTIONS is answered, his 200 was taken: the I/O thread reads his datagrams
    // in order, and takes the answer to a NOTIFY as it reads it.
    assert_eq!(bob.transact(&options(&bob)).status(), Some(200));
    // Nothing more comes while the clock runs through every timer E up to timer F: what
    // the timer rounds sent left before the answer to a second OPTIONS.
    for step in timer_e_steps(&Timers::default()) {
        s.advance(step);
    }
    assert_eq!(bob.transact(&options(&bob)).status(), Some(200));
    if let Some(m) = bob.requests.first() {
        panic!("unexpected after a NOTIFY answered 200: {m:?}");
    }
    assert_eq!(s.engine.stats().subscriptions_active, 1);
    let mut buf = vec![0u8; 65536];

    // The next NOTIFY is answered 481.
    assert_eq!(
        alice
            .publish("", Some(&pidf(&aor, "closed", "out")))
            .status(),
        Some(200)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let notify = loop {
        assert!(Instant::now() < deadline, "no second NOTIFY");
        if let Ok((n, _)) = bob.socket.recv_from(&mut buf) {
            let m = parse(&buf[..n]);
            if m.method() == Some("NOTIFY") {
                break m;
            }
        }
    };
    let mut text = String::from("SIP/2.0 481 Call/Transaction Does Not Exist\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in notify.headers(name) {
            text.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    bob.socket.send_to(text.as_bytes(), s.udp()).unwrap();
    while s.engine.stats().subscriptions_active != 0 {
        assert!(
            Instant::now() < deadline,
            "the subscription did not end after the 481"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
