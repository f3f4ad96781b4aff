//! Presence at the edge, the device's half (issue 19): an imppd with
//! `--account sip:alice@example.test,...,serve=yes,keepalive=2,xcap=URL` is the presence
//! agent of alice. Real processes on loopback:
//!
//! - the REGISTER it sends carries the RFC 3840 feature tag and the RFC 5626 instance,
//!   reg-id and `Supported: outbound`, and its flow is kept alive with CRLF CRLF pings every
//!   2 s; when the flow closes it registers again at once over a new connection, and a ping
//!   left unanswered closes the flow and registers again on a new one (a registrar played by
//!   the test on a TCP socket, which sees the bytes as sent);
//! - against a server imppd (`--http` for XCAP, alice's rule allowing bob), sipp as bob
//!   subscribing directly to the device's contact gets `200` and a NOTIFY with alice's
//!   presence as the device composes it (set with `imppd ctl publish` on the device), then a
//!   NOTIFY when it changes; carol, whom no rule allows, is refused (`403`); bob's
//!   dialog through a record-routing proxy gets its NOTIFYs along the route set, and its
//!   refresh and un-subscribe are served;
//! - a device whose XCAP root does not answer has no rules and answers `480`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::imppd::{Imppd, IMPPD};
use common::kamailio::{free_port, TempDir, DOMAIN};
use common::sip::{parse, Client};
use common::sipp::Sipp;

fn ctl(db: &Path, args: &[&str]) -> Output {
    Command::new(IMPPD)
        .arg("ctl")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "imppd ctl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The account option of a device serving alice at `registrar` with rules from `xcap`.
fn account(registrar: SocketAddr, xcap: &str) -> String {
    format!(
        "sip:alice@{DOMAIN},password=alice-pw,registrar=tcp:{registrar},serve=yes,keepalive=2,xcap={xcap}"
    )
}

/// A device imppd (domain device.test) with `account`, and `extra` arguments.
fn device(account: &str, extra: &[&str]) -> Imppd {
    let mut args = vec!["--account", account];
    args.extend_from_slice(extra);
    Imppd::start_domain("device.test", &[], |_| {}, &args)
}

/// Reads one SIP request (head and Content-Length body) off `reader`, skipping keep-alive
/// CRLFs; `None` when the connection closed.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" && head.is_empty() {
            continue;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    head.push_str(&String::from_utf8_lossy(&body));
    Some(head)
}

/// The `200` a registrar gives `register`, granting 60 s.
fn ok_register(register: &str) -> Vec<u8> {
    let m = parse(register.as_bytes());
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", m.header(name).unwrap()));
    }
    let contact = m.header("Contact").unwrap();
    let uri_end = contact.find('>').unwrap() + 1;
    out.push_str(&format!(
        "Contact: {};expires=60\r\nContent-Length: 0\r\n\r\n",
        &contact[..uri_end]
    ));
    out.into_bytes()
}

/// Accepts the next connection within `secs` and reads the REGISTER on it.
fn next_register(listener: &TcpListener, secs: u64) -> (BufReader<TcpStream>, String) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no connection within {secs} s: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let register = read_request(&mut reader).expect("a REGISTER");
    assert!(register.starts_with("REGISTER "), "{register}");
    (reader, register)
}

/// Waits up to `secs` for one ping (CRLF CRLF) on `reader`; when it comes. Requests that
/// come first (the account's uplink PUBLISH goes over the same flow) are answered `200`.
fn next_ping(reader: &mut BufReader<TcpStream>, secs: u64) -> Instant {
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    loop {
        let first = reader.fill_buf().expect("a ping")[0];
        if first == b'\r' {
            let mut ping = [0u8; 4];
            reader.read_exact(&mut ping).expect("a ping");
            assert_eq!(&ping, b"\r\n\r\n");
            return Instant::now();
        }
        let request = read_request(reader).expect("a request");
        let m = parse(request.as_bytes());
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            out.push_str(&format!("{name}: {}\r\n", m.header(name).unwrap()));
        }
        out.push_str("SIP-ETag: e1\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n");
        reader.get_mut().write_all(out.as_bytes()).unwrap();
    }
}

/// The REGISTER of a serving device on the wire, its keep-alives, and a new registration
/// at once when its flow closes or a ping goes unanswered.
#[test]
fn a_serving_device_registers_with_its_feature_tag_and_keeps_its_flow_alive() {
    let registrar = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = registrar.local_addr().unwrap();
    let mut node = device(&account(addr, "http://127.0.0.1:1/xcap-root"), &[]);

    let (mut flow, register) = next_register(&registrar, 10);
    let contact = register
        .lines()
        .find(|l| l.starts_with("Contact:"))
        .unwrap()
        .to_owned();
    assert!(contact.contains(";transport=tcp>"), "{contact}");
    assert!(contact.contains("events=\"presence\""), "{contact}");
    assert!(contact.contains("+sip.instance=\"<urn:uuid:"), "{contact}");
    assert!(contact.contains("reg-id=1"), "{contact}");
    assert!(
        register.contains("\r\nSupported: outbound\r\n"),
        "{register}"
    );
    flow.get_mut().write_all(&ok_register(&register)).unwrap();

    // Pings every 2 s, each answered with a pong.
    let first = next_ping(&mut flow, 5);
    flow.get_mut().write_all(b"\r\n").unwrap();
    let second = next_ping(&mut flow, 5);
    flow.get_mut().write_all(b"\r\n").unwrap();
    let gap = second - first;
    assert!(
        (Duration::from_millis(1500)..Duration::from_millis(3000)).contains(&gap),
        "pings {gap:?} apart"
    );
    let third = next_ping(&mut flow, 5);
    assert!(third - second >= Duration::from_millis(1500));

    // The flow closes: a new connection and a REGISTER at once (not at the next ping).
    drop(flow);
    let closed = Instant::now();
    let (mut flow, again) = next_register(&registrar, 5);
    eprintln!(
        "pings {gap:?} apart; registered again {:?} after the flow closed",
        closed.elapsed()
    );
    assert!(
        closed.elapsed() < Duration::from_millis(1500),
        "registered again {:?} after the flow closed",
        closed.elapsed()
    );
    assert!(again.contains("events=\"presence\""), "{again}");
    flow.get_mut().write_all(&ok_register(&again)).unwrap();

    // A ping left unanswered: the flow is closed and the device registers again on a new
    // connection, by the time the next ping was due.
    let _ = next_ping(&mut flow, 5);
    let unanswered = Instant::now();
    assert!(
        read_request(&mut flow).is_none(),
        "the dead flow stays open"
    );
    let (_flow, third) = next_register(&registrar, 5);
    eprintln!(
        "registered again {:?} after the unanswered ping",
        unanswered.elapsed()
    );
    assert!(third.contains("events=\"presence\""), "{third}");
    // One interval (2 s) by design; the slack is for a loaded machine, where the device's
    // timer thread may be late by a second or more.
    assert!(
        unanswered.elapsed() < Duration::from_millis(6000),
        "{:?}",
        unanswered.elapsed()
    );
    assert!(
        node.log().contains("keep-alive unanswered"),
        "{}",
        node.log()
    );
    node.stop();
}

/// Alice's device serves bob (allowed by her rule at the server, learned over XCAP) and
/// refuses carol; a device without rules answers 480.
#[test]
fn a_device_serves_its_allowed_watchers_by_the_rules_of_its_server() {
    let http = free_port();
    let server = Imppd::start_prepared(
        &["alice", "bob", "carol"],
        |db| {
            let out = Command::new(IMPPD)
                .args([
                    "rule",
                    "add",
                    &format!("sip:alice@{DOMAIN}"),
                    &format!("sip:bob@{DOMAIN}"),
                    "allow",
                    "--db",
                ])
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        },
        &["--http", &format!("127.0.0.1:{http}")],
    );
    let xcap = format!("http://127.0.0.1:{http}/xcap-root");
    // A route to alice's domain too: her watchers here must still get no back-end
    // subscription (her state is composed here, not mirrored from her server).
    let route = format!("{DOMAIN}=udp:{}", server.addr());
    let mut node = device(&account(server.addr(), &xcap), &["--route", &route]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.log().contains("rules loaded from the server") {
        assert!(
            Instant::now() < deadline,
            "no rules loaded:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let alice = format!("sip:alice@{DOMAIN}");
    ok(ctl(&node.db(), &["publish", &alice, "open", "at-her-desk"]));

    let dir = TempDir::new("edge-device");
    let bob = Sipp::new("edge_watch.xml", node.addr(), "bob", dir.path(), "bob")
        .set("target", "alice")
        .spawn();
    bob.wait_for("at-her-desk");
    ok(ctl(
        &node.db(),
        &["publish", &alice, "open", "in-a-meeting"],
    ));
    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert_eq!(notifies.len(), 2, "{notifies:?}");
    assert!(
        notifies[0].contains(&format!("From: <{alice}>")),
        "{}",
        notifies[0]
    );

    // carol: no rule allows her (the server's same-domain default is not the device's).
    let mut carol = Client::new(node.addr(), "carol");
    let subscribe = |c: &Client| {
        c.request(
            "SUBSCRIBE",
            &format!("sip:alice@{}", node.addr()),
            &format!("<{alice}>"),
            &common::sip::token(),
            "Event: presence\r\nExpires: 600\r\n",
            None,
        )
    };
    let r = carol.transact(&subscribe(&carol));
    assert_eq!(r.status(), Some(403), "{r:?}");

    // bob again, through a proxy that record-routes (a UDP socket of the test): the
    // NOTIFYs follow the route set, a refresh gets a NOTIFY, an un-subscribe ends it.
    let proxy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    proxy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let route = format!("<sip:{};lr>", proxy.local_addr().unwrap());
    let mut bob = Client::new(node.addr(), "bob");
    let call = common::sip::token();
    let uri = format!("sip:alice@{}", node.addr());
    let extra = |expires: u32| {
        format!("Event: presence\r\nExpires: {expires}\r\nRecord-Route: {route}\r\n")
    };
    let r = bob.transact(&bob.request(
        "SUBSCRIBE",
        &uri,
        &format!("<{alice}>"),
        &call,
        &extra(600),
        None,
    ));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let to = r.header("To").unwrap().to_owned();
    let notify_at_proxy = |state: &str, text: Option<&str>| {
        let mut buf = vec![0u8; 65536];
        let (n, from) = proxy.recv_from(&mut buf).expect("a NOTIFY at the proxy");
        let m = parse(&buf[..n]);
        assert_eq!(m.method(), Some("NOTIFY"), "{m:?}");
        assert_eq!(m.header("Route"), Some(route.as_str()), "{m:?}");
        assert!(
            m.header("Subscription-State").unwrap().starts_with(state),
            "{m:?}"
        );
        if let Some(text) = text {
            assert!(String::from_utf8_lossy(m.body()).contains(text), "{m:?}");
        }
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            ok.push_str(&format!("{name}: {}\r\n", m.header(name).unwrap()));
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        proxy.send_to(ok.as_bytes(), from).unwrap();
    };
    notify_at_proxy("active", Some("in-a-meeting"));
    let r = bob.transact(&bob.request("SUBSCRIBE", &uri, &to, &call, &extra(600), None));
    assert_eq!(r.status(), Some(200), "refresh: {r:?}");
    notify_at_proxy("active", Some("in-a-meeting"));
    let r = bob.transact(&bob.request("SUBSCRIBE", &uri, &to, &call, &extra(0), None));
    assert_eq!(r.status(), Some(200), "un-subscribe: {r:?}");
    notify_at_proxy("terminated", None);

    assert!(
        !node
            .log()
            .contains("federation: first local watcher of sip:alice"),
        "{}",
        node.log()
    );

    // A device whose XCAP root does not answer has no rules: 480, and nothing is made.
    let mut bare = device(&account(server.addr(), "http://127.0.0.1:1/xcap-root"), &[]);
    let mut bob = Client::new(bare.addr(), "bob");
    let r = bob.transact(&subscribe(&bob));
    assert_eq!(r.status(), Some(480), "{r:?}");
    bare.stop();
    node.stop();
}

/// The XCAP client against imppd's XCAP server: digest with the account's credentials, the
/// document and its entity tag, `304` for the same tag, `404` for a user without rules, and
/// a wrong password refused.
/// A watcher that reaches the device over TCP itself (as after a `302`) keeps its connection:
/// the device challenges nobody, so a believed SUBSCRIBE vouches for its connection, which
/// the unauthenticated-connection timeout would otherwise close (here after 1 s).
#[test]
fn a_watcher_over_tcp_keeps_its_connection_to_the_device() {
    let http = free_port();
    let server = Imppd::start_prepared(
        &["alice", "bob"],
        |db| {
            let out = Command::new(IMPPD)
                .args(["rule", "add", &format!("sip:alice@{DOMAIN}")])
                .args([&format!("sip:bob@{DOMAIN}"), "allow", "--db"])
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        },
        &["--http", &format!("127.0.0.1:{http}")],
    );
    let xcap = format!("http://127.0.0.1:{http}/xcap-root");
    let node = device(
        &account(server.addr(), &xcap),
        &["--unauthenticated-timeout", "1"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.log().contains("rules loaded from the server") {
        assert!(
            Instant::now() < deadline,
            "no rules loaded:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let alice = format!("sip:alice@{DOMAIN}");
    ok(ctl(&node.db(), &["publish", &alice, "open", "first-note"]));

    let stream = TcpStream::connect(node.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let local = stream.local_addr().unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let subscribe = format!(
        "SUBSCRIBE sip:alice@{device} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-tcpw1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=tcpw\r\nTo: <{alice}>\r\n\
         Call-ID: tcp-watcher@test\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:bob@{local};transport=tcp>\r\n\
         Event: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
        device = node.addr(),
    );
    writer.write_all(subscribe.as_bytes()).unwrap();
    // The 200 and the first NOTIFY, in either order; each NOTIFY answered 200.
    let answer_notify = |notify: &str, writer: &mut TcpStream| {
        let via: String = notify
            .lines()
            .filter(|l| l.starts_with("Via:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let header = |name: &str| {
            notify
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        let reply = format!(
            "SIP/2.0 200 OK\r\n{via}{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            header("From:"),
            header("To:"),
            header("Call-ID:"),
            header("CSeq:")
        );
        writer.write_all(reply.as_bytes()).unwrap();
    };
    let mut saw_200 = false;
    let mut first = String::new();
    while !saw_200 || first.is_empty() {
        let m = read_request(&mut reader).expect("the device closed the connection");
        if m.starts_with("SIP/2.0 200") {
            saw_200 = true;
        } else if m.starts_with("NOTIFY") {
            answer_notify(&m, &mut writer);
            first = m;
        }
    }
    assert!(first.contains("first-note"), "{first}");
    // Past the unauthenticated-connection timeout, the next state still comes this way.
    std::thread::sleep(Duration::from_millis(2500));
    ok(ctl(&node.db(), &["publish", &alice, "open", "second-note"]));
    let next = read_request(&mut reader).expect("the device closed the watcher's connection");
    assert!(next.contains("second-note"), "{next}");
    answer_notify(&next, &mut writer);
}

#[test]
fn the_xcap_client_reads_rules_with_digest_and_entity_tags() {
    use impp::sip::digest_client::DigestClient;
    use impp::xcap::client::{Fetched, XcapClient, XcapRoot};
    let http = free_port();
    let server = Imppd::start_prepared(
        &["alice", "bob"],
        |db| {
            let out = Command::new(IMPPD)
                .args([
                    "rule",
                    "add",
                    &format!("sip:alice@{DOMAIN}"),
                    "other.test",
                    "block",
                    "--db",
                ])
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        },
        &["--http", &format!("127.0.0.1:{http}")],
    );
    let root = XcapRoot::parse(&format!("http://127.0.0.1:{http}/xcap-root")).unwrap();
    let alice: impp::uri::Uri = format!("sip:alice@{DOMAIN}").parse().unwrap();
    let mut client = XcapClient::new(root.clone(), DigestClient::new("alice", "alice-pw"), None);
    let Fetched::Document { body, etag } = client.fetch_pres_rules(&alice, None).unwrap() else {
        panic!("no document");
    };
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("other.test"), "{text}");
    let etag = etag.expect("an ETag");
    assert_eq!(
        client.fetch_pres_rules(&alice, Some(&etag)).unwrap(),
        Fetched::NotModified
    );
    let mut bob = XcapClient::new(root.clone(), DigestClient::new("bob", "bob-pw"), None);
    let bob_uri: impp::uri::Uri = format!("sip:bob@{DOMAIN}").parse().unwrap();
    assert_eq!(
        bob.fetch_pres_rules(&bob_uri, None).unwrap(),
        Fetched::Missing
    );
    let mut wrong = XcapClient::new(root, DigestClient::new("alice", "nope"), None);
    assert!(matches!(
        wrong.fetch_pres_rules(&alice, None),
        Err(impp::Error::Forbidden(_))
    ));
    drop(server);
}

/// Serving settings imppd refuses: a bad XCAP root or keep-alive (before anything starts,
/// exit 2), an address of record of imppd's own domain (at start, exit 1).
#[test]
fn imppd_refuses_serving_settings_that_cannot_work() {
    let account = format!("sip:alice@{DOMAIN},password=pw,registrar=tcp:127.0.0.1:9,serve=yes");
    for (extra, code, says) in [
        (",xcap=ftp://h/", 2, "not an http:// or https:// URL"),
        (",keepalive=soon", 2, "keepalive 'soon'"),
        (",serve=maybe", 2, "serve 'maybe'"),
        ("", 1, "served here already"),
    ] {
        let out = Command::new(IMPPD)
            .args(["--db", "none", "--domain", DOMAIN, "--listen"])
            .arg(format!("tcp:127.0.0.1:{}", free_port()))
            .arg("--account")
            .arg(format!("{account}{extra}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra}: {stderr}");
        assert!(stderr.contains(says), "{extra}: {stderr}");
    }
}
