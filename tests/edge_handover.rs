//! Presence at the edge, the server's side (issue 19): imppd with `--migrate proxy` (or
//! `redirect`) and real peers on loopback. A sipp device registers over TCP with
//! `events="presence"` (tests/sip/edge_device.xml) and plays the SUBSCRIBEs handed to it
//! with an out-of-call scenario (edge_device_serve.xml: `200` and a NOTIFY through the
//! server's Record-Route; edge_device_refuse.xml: `480`); sipp watchers know nothing of
//! migration. Checked: the watcher's SUBSCRIBE reaches the device and the device's NOTIFY
//! the watcher; killing the device (SIGKILL: its TCP connection closes) brings the watcher
//! back with `terminated;reason=deactivated` within the bound, and its new SUBSCRIBE is
//! served by the server with the composed state; a watcher subscribed at the server moves
//! at its refresh; a device answering `480` leaves the watcher on the server; a pending
//! watcher is not handed over; `--migrate redirect` answers `302` with the device's contact.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::imppd::{password, Imppd, IMPPD};
use common::kamailio::{TempDir, DOMAIN};
use common::sipp::{received_in, scenarios, Running, Sipp};

/// The device: registered (its REGISTER answered) before this returns.
fn device(server: &Imppd, dir: &Path, ooc: &str) -> Running {
    device_playing(server, dir, "edge_device.xml", ooc)
}

fn device_playing(server: &Imppd, dir: &Path, scenario: &str, ooc: &str) -> Running {
    let ooc = scenarios().join(ooc);
    let device = Sipp::new(scenario, server.addr(), "alice", dir, "device")
        .args(&["-t", "t1", "-oocsf", ooc.to_str().unwrap()])
        .spawn();
    device.wait_for("SIP/2.0 200 OK");
    device
}

/// alice publishes at the server: what a watcher the server serves sees.
fn publish(server: &Imppd, dir: &Path) {
    Sipp::new("edge_publish.xml", server.addr(), "alice", dir, "publish").run();
}

fn watcher(server: &Imppd, dir: &Path, scenario: &str, user: &str) -> Sipp {
    Sipp::new(scenario, server.addr(), user, dir, user).set("target", "alice")
}

/// `imppd ctl stats` of the running server, as JSON text.
fn stats(server: &Imppd) -> String {
    let out = Command::new(IMPPD)
        .args(["ctl", "--db"])
        .arg(server.db())
        .args(["--json", "stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stat(stats: &str, name: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

/// The NOTIFYs a watcher received, one per expected text (`""`: any), each containing it.
fn assert_notifies(notifies: &[String], expected: &[&str]) {
    assert_eq!(notifies.len(), expected.len(), "{notifies:?}");
    for (notify, text) in notifies.iter().zip(expected) {
        assert!(notify.contains(text), "expected {text:?} in {notify}");
    }
}

#[test]
fn handed_over_by_proxy_and_taken_back_when_the_device_is_killed() {
    let dir = TempDir::new("edge-back");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let mut device = device(&server, dir.path(), "edge_device_serve.xml");
    let bob = watcher(&server, dir.path(), "edge_watcher_back.xml", "bob").spawn();
    // The device's NOTIFY reached the watcher, through the server.
    bob.wait_for("served by the device");
    // The watcher's SUBSCRIBE reached the device, retargeted and record-routed.
    let handed = received_in(&device.messages(), "SUBSCRIBE");
    assert_eq!(handed.len(), 1, "{}", device.messages());
    assert!(
        handed[0].contains("Record-Route:") && handed[0].contains("dlg="),
        "{}",
        handed[0]
    );
    let s = stats(&server);
    assert_eq!(stat(&s, "hand_overs"), 1, "{s}");
    assert_eq!(stat(&s, "handed_over_dialogs"), 1, "{s}");
    // Let the device's NOTIFY be answered before it dies.
    let deadline = Instant::now() + Duration::from_secs(5);
    while device.messages().matches("SIP/2.0 200 OK").count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }

    // One device, one registration (sipp starts no second call).
    assert_eq!(device.messages().matches("REGISTER sip:").count(), 1);
    let killed = Instant::now();
    device.kill();
    // Polled every millisecond: the figure is the report's.
    while !bob.messages().contains("reason=deactivated")
        && killed.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let back = killed.elapsed();
    println!(
        "edge take-back: SIGKILL of the device to the watcher's deactivated NOTIFY: {} ms",
        back.as_millis()
    );
    assert!(back < Duration::from_secs(5), "{back:?}\n{}", server.log());

    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert_eq!(notifies.len(), 3, "{notifies:?}");
    assert!(
        notifies[1].contains(";tag=") && notifies[1].contains("CSeq: 8 NOTIFY"),
        "the device's side of the dialog, above its CSeq 7: {}",
        notifies[1]
    );
    assert!(
        notifies[2].contains("composed at the server"),
        "served by the server again: {}",
        notifies[2]
    );
    let s = stats(&server);
    assert_eq!(stat(&s, "take_backs"), 1, "{s}");
    assert_eq!(stat(&s, "handed_over_dialogs"), 0, "{s}");
}

#[test]
fn with_digest_authentication_the_devices_dialog_is_relayed_on_its_seal() {
    let dir = TempDir::new("edge-auth");
    let server = Imppd::start(&["alice", "bob"], &["--migrate", "proxy"]);
    let ooc = scenarios().join("edge_device_serve.xml");
    let mut device = Sipp::new(
        "edge_device_auth.xml",
        server.addr(),
        "alice",
        dir.path(),
        "device",
    )
    .args(&["-t", "t1", "-oocsf", ooc.to_str().unwrap()])
    .auth("alice", &password("alice"))
    .spawn();
    device.wait_for("SIP/2.0 200 OK");
    let bob = watcher(&server, dir.path(), "edge_watcher_back_auth.xml", "bob")
        .auth("bob", &password("bob"))
        .spawn();
    // The device's NOTIFY (From alice, a user of the domain) passed without a 407.
    bob.wait_for("served by the device");
    let handed = received_in(&device.messages(), "SUBSCRIBE");
    assert_eq!(handed.len(), 1, "{}", device.messages());
    assert!(
        !handed[0].contains("Authorization:"),
        "bob's credentials stop at the server: {}",
        handed[0]
    );
    assert!(
        !device.messages().contains("SIP/2.0 407"),
        "{}",
        device.messages()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while device.messages().matches("SIP/2.0 200 OK").count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    device.kill();
    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert_notifies(&notifies, &["", "reason=deactivated", ""]);
    assert!(
        !notifies[2].contains("served by the device"),
        "{}",
        notifies[2]
    );
}

#[test]
fn a_watcher_over_tcp_is_reached_over_its_connection() {
    let dir = TempDir::new("edge-tcp-watcher");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let mut device = device(&server, dir.path(), "edge_device_serve.xml");
    // sipp over TCP listens on no UDP port: its Contact (no transport) leads nowhere, and
    // only its connection reaches it.
    let bob = watcher(&server, dir.path(), "edge_watcher_back.xml", "bob")
        .args(&["-t", "t1"])
        .spawn();
    bob.wait_for("served by the device");
    let deadline = Instant::now() + Duration::from_secs(5);
    while device.messages().matches("SIP/2.0 200 OK").count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    device.kill();
    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert_notifies(
        &notifies,
        &["", "reason=deactivated", "composed at the server"],
    );
}

/// A device whose flow stays open but silent (no RFC 5626 keep-alive: cut off by the
/// network, or hung) loses its watchers once `--flow-timeout` passes; its sipp stand-in
/// sends no keep-alives at all.
#[test]
fn watchers_come_back_when_the_devices_flow_falls_silent() {
    let dir = TempDir::new("edge-silent");
    let server = Imppd::start(
        &[],
        &["--open", "--migrate", "proxy", "--flow-timeout", "2"],
    );
    publish(&server, dir.path());
    let mut device = device(&server, dir.path(), "edge_device_serve.xml");
    let registered = Instant::now();
    let log = watcher(&server, dir.path(), "edge_watcher_back.xml", "bob").run();
    let back = registered.elapsed();
    let notifies = log.received("NOTIFY");
    assert_notifies(
        &notifies,
        &[
            "served by the device",
            "reason=deactivated",
            "composed at the server",
        ],
    );
    // Not before the silence was long enough, and soon after.
    assert!(back >= Duration::from_secs(2), "{back:?}");
    assert!(back < Duration::from_secs(6), "{back:?}");
    assert!(
        server.log().contains("sent no keep-alive in time"),
        "{}",
        server.log()
    );
    let s = stats(&server);
    assert_eq!(stat(&s, "take_backs"), 1, "{s}");
    // The device is still there (its connection open): only its silence told.
    device.kill();
}

#[test]
fn watchers_come_back_when_the_device_unregisters() {
    let dir = TempDir::new("edge-unregister");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let device = device_playing(
        &server,
        dir.path(),
        "edge_device_leaves.xml",
        "edge_device_serve.xml",
    );
    let log = watcher(&server, dir.path(), "edge_watcher_back.xml", "bob").run();
    let notifies = log.received("NOTIFY");
    assert_notifies(
        &notifies,
        &[
            "served by the device",
            "reason=deactivated",
            "composed at the server",
        ],
    );
    // Still connected: the binding's end alone brought the watcher back.
    assert!(device.messages().contains("Expires: 0"));
    let s = stats(&server);
    assert_eq!(stat(&s, "take_backs"), 1, "{s}");
}

#[test]
fn watchers_come_back_when_a_relayed_refresh_fails_at_the_device() {
    let dir = TempDir::new("edge-relay-fails");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let device = device(&server, dir.path(), "edge_device_fail.xml");
    let log = watcher(&server, dir.path(), "edge_watcher_refresh_fails.xml", "bob").run();
    let notifies = log.received("NOTIFY");
    assert_notifies(
        &notifies,
        &["", "reason=deactivated", "composed at the server"],
    );
    // The refresh went to the device through the server, over the device's connection.
    let at_device = received_in(&device.messages(), "SUBSCRIBE");
    assert_eq!(at_device.len(), 2, "{}", device.messages());
    assert!(
        at_device[1].contains("CSeq: 2 SUBSCRIBE"),
        "{}",
        at_device[1]
    );
    let s = stats(&server);
    assert_eq!(stat(&s, "take_backs"), 1, "{s}");
}

#[test]
fn a_watcher_subscribed_at_the_server_moves_at_its_refresh() {
    let dir = TempDir::new("edge-moves");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let bob = watcher(&server, dir.path(), "edge_watcher_moves.xml", "bob").spawn();
    bob.wait_for("composed at the server");
    // The device registers while the watcher waits for its refresh.
    let device = device(&server, dir.path(), "edge_device_serve.xml");
    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert_notifies(
        &notifies,
        &[
            "composed at the server",
            "reason=deactivated",
            "served by the device",
        ],
    );
    assert_eq!(received_in(&device.messages(), "SUBSCRIBE").len(), 1);
}

#[test]
fn a_device_answering_480_leaves_the_watcher_on_the_server() {
    let dir = TempDir::new("edge-480");
    let server = Imppd::start(&[], &["--open", "--migrate", "proxy"]);
    publish(&server, dir.path());
    let device = device(&server, dir.path(), "edge_device_refuse.xml");
    let log = watcher(&server, dir.path(), "edge_watcher.xml", "bob").run();
    let notifies = log.received("NOTIFY");
    assert_eq!(notifies.len(), 1, "{notifies:?}");
    assert!(
        notifies[0].contains("composed at the server"),
        "{}",
        notifies[0]
    );
    assert!(
        !log.0.contains("SIP/2.0 480"),
        "the watcher never sees the device's refusal"
    );
    device.wait_for("SIP/2.0 480");
    let s = stats(&server);
    assert_eq!(stat(&s, "hand_overs"), 0, "{s}");
    assert_eq!(stat(&s, "handed_over_dialogs"), 0, "{s}");
}

#[test]
fn a_pending_watcher_is_not_handed_over() {
    let dir = TempDir::new("edge-pending");
    let server = Imppd::start_prepared(
        &[],
        |db| {
            let out = Command::new(IMPPD)
                .args(["rule", "add", &format!("sip:alice@{DOMAIN}")])
                .args([&format!("sip:carol@{DOMAIN}"), "confirm", "--db"])
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        },
        &["--open", "--migrate", "proxy"],
    );
    let device = device(&server, dir.path(), "edge_device_serve.xml");
    let log = watcher(&server, dir.path(), "edge_watcher.xml", "carol").run();
    let notifies = log.received("NOTIFY");
    assert_eq!(notifies.len(), 1, "{notifies:?}");
    assert!(
        notifies[0].contains("Subscription-State: pending"),
        "{}",
        notifies[0]
    );
    assert!(
        received_in(&device.messages(), "SUBSCRIBE").is_empty(),
        "{}",
        device.messages()
    );
}

#[test]
fn redirect_mode_answers_302_with_the_devices_contact() {
    let dir = TempDir::new("edge-redirect");
    let server = Imppd::start(&[], &["--open", "--migrate", "redirect"]);
    let device = device(&server, dir.path(), "edge_device_serve.xml");
    let log = watcher(&server, dir.path(), "edge_watcher_redirect.xml", "bob").run();
    let answer = log
        .0
        .split("----------------------------------------------- ")
        .find(|e| e.contains("SIP/2.0 302"))
        .expect("a 302")
        .to_string();
    assert!(
        answer.contains("Contact: <sip:alice@127.0.0.1:") && answer.contains("transport=tcp>"),
        "{answer}"
    );
    assert!(received_in(&device.messages(), "SUBSCRIBE").is_empty());
    let s = stats(&server);
    assert_eq!(stat(&s, "hand_over_redirects"), 1, "{s}");
}

#[test]
fn the_migration_mode_changes_by_reload() {
    let dir = TempDir::new("edge-reload");
    let config = dir.path().join("imppd.conf");
    std::fs::write(&config, "open = yes\nlog-level = debug\nmigrate = off\n").unwrap();
    let server = Imppd::start(&[], &["--config", config.to_str().unwrap()]);
    let device = device(&server, dir.path(), "edge_device_serve.xml");
    // Off: the server serves the watcher although the device offers to.
    let log = watcher(&server, dir.path(), "edge_watcher.xml", "bob").run();
    assert_eq!(log.received("NOTIFY").len(), 1);
    assert!(received_in(&device.messages(), "SUBSCRIBE").is_empty());

    std::fs::write(
        &config,
        "open = yes\nlog-level = debug\nmigrate = redirect\n",
    )
    .unwrap();
    let out = Command::new(IMPPD)
        .args(["ctl", "--db"])
        .arg(server.db())
        .args(["--json", "reload"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("migration"), "{text}");
    let log = watcher(&server, dir.path(), "edge_watcher_redirect.xml", "carol").run();
    assert!(log.0.contains("SIP/2.0 302"), "{}", log.0);
}

/// In process, on a manual clock (no test sleeps for an expiry): a device registered over
/// UDP (no flow to watch) is handed a watcher, and its binding's expiry brings the watcher
/// back.
#[test]
fn watchers_come_back_when_the_devices_binding_expires() {
    use common::sip::{token, Client, Server};
    use impp::sip::Migration;

    let server = Server::clocked(false, |c| c.migration = Migration::Proxy);
    let mut device = Client::new(server.udp(), "alice");
    device.auto_answer = false;
    let register = device.request(
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        &format!("<{}>", device.aor()),
        &token(),
        &format!(
            "Contact: <{}>;events=\"presence\"\r\nExpires: 60\r\n",
            device.contact_uri()
        ),
        None,
    );
    // The REGISTER's own Contact line comes first: the serving one is the second, so send
    // the request with the first one taken out.
    let text = String::from_utf8(register).unwrap();
    let plain = format!("Contact: <sip:alice@{}>\r\n", device.local());
    let register = text.replacen(&plain, "", 1);
    assert_eq!(device.transact(register.as_bytes()).status(), Some(200));

    let mut bob = Client::new(server.udp(), "bob");
    let subscribe = bob.request(
        "SUBSCRIBE",
        &format!("sip:alice@{DOMAIN}"),
        &format!("<sip:alice@{DOMAIN}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let call_id = bob.send(&subscribe);
    // The device takes it: 200 with its tag.
    let handed = device.next_request("SUBSCRIBE");
    assert!(handed.header("Record-Route").is_some());
    let mut answer = String::from("SIP/2.0 200 OK\r\n");
    for v in handed.headers("Via") {
        answer.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq", "Record-Route"] {
        for v in handed.headers(name) {
            answer.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    answer.push_str(&format!(
        "To: {};tag=devtag\r\nContact: <{}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
        handed.header("To").unwrap(),
        device.contact_uri()
    ));
    device
        .socket
        .send_to(answer.as_bytes(), server.udp())
        .unwrap();
    let ok = bob.final_response(&call_id);
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("To").unwrap().contains("tag=devtag"));
    assert_eq!(
        server.server.handover_stats().handed_over,
        1,
        "{:?}",
        server.server.handover_stats()
    );

    // The binding expires: the watcher is told, as the device's side of the dialog.
    server.advance(Duration::from_secs(61));
    let notify = bob.next_request("NOTIFY");
    assert_eq!(
        notify.header("Subscription-State").map(str::trim),
        Some("terminated;reason=deactivated")
    );
    assert!(notify.header("From").unwrap().contains("tag=devtag"));
    assert!(notify.header("To").unwrap().contains(&bob.tag));
    assert_eq!(notify.call_id().unwrap(), call_id);
    let stats = server.server.handover_stats();
    assert_eq!((stats.handed_over, stats.take_backs), (0, 1), "{stats:?}");
    // Served by the server again.
    let again = bob.request(
        "SUBSCRIBE",
        &format!("sip:alice@{DOMAIN}"),
        &format!("<sip:alice@{DOMAIN}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let ok = bob.transact(&again);
    assert_eq!(ok.status(), Some(200));
    assert!(!ok.header("To").unwrap().contains("devtag"));
}
