//! `imppd ctl`: the control socket of a running imppd, with the real binary. A SIP watcher
//! waits under `--policy confirm` until `imppd ctl decide` allows it; users added and
//! deleted through the socket count at once (rules, registrations and lists are shown too);
//! the socket is 0600 and gone after exit; ctl against no server, and bad commands, fail
//! clearly with exit 1 and 2.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::imppd::{Imppd, IMPPD};
use common::kamailio::DOMAIN;
use common::sip::{token, Client};

fn socket(server: &Imppd) -> PathBuf {
    let mut path = server.db().into_os_string();
    path.push(".ctl");
    PathBuf::from(path)
}

/// `imppd ctl --db DB ARGS...`: the server's socket found from its database, as an
/// operator would.
fn ctl(db: &Path, args: &[&str]) -> Output {
    Command::new(IMPPD)
        .arg("ctl")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "imppd ctl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("--json prints JSON")
}

/// Refused as a usage error (exit 2) with `message` on standard error.
fn refused(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr.contains(message), "{stderr}");
}

/// The Subscription-State of the watcher's next NOTIFY.
fn next_state(client: &mut Client) -> String {
    let notify = client.next_request("NOTIFY");
    notify.header("Subscription-State").unwrap().to_string()
}

#[test]
fn a_pending_watcher_is_listed_and_allowed_with_imppd_ctl() {
    let mut server = Imppd::start(&[], &["--open", "--policy", "confirm"]);
    let db = server.db();
    let mode = std::fs::metadata(socket(&server))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let alice = format!("sip:alice@{DOMAIN}");
    let mut bob = Client::new(server.addr(), "bob");
    let subscribe = bob.request(
        "SUBSCRIBE",
        &alice,
        &format!("<{alice}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    assert_eq!(bob.transact(&subscribe).status(), Some(200));
    assert!(next_state(&mut bob).starts_with("pending"));

    // For people: a header and one aligned row; for scripts: the same as JSON.
    let text = ok(&ctl(&db, &["pending"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("ID  "), "{text}");
    assert!(lines[1].contains("sip:bob@example.test"), "{text}");
    assert_eq!(
        lines[0].find("WATCHER"),
        lines[1].find("sip:bob@"),
        "aligned columns:\n{text}"
    );
    let pending = json(&ctl(&db, &["--json", "pending", &alice]));
    let rows = pending.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{pending}");
    assert_eq!(rows[0]["watcher"], "sip:bob@example.test");
    assert_eq!(rows[0]["presentity"], alice.as_str());
    assert_eq!(rows[0]["state"], "pending");
    let id = rows[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(
        json(&ctl(&db, &["--json", "pending", "sip:carol@example.test"])),
        serde_json::json!([])
    );

    // Bad decisions change nothing.
    refused(
        &ctl(&db, &["decide", &id, "confirm"]),
        "not allow, block or polite-block",
    );
    refused(
        &ctl(&db, &["decide", "x", "allow"]),
        "not a subscription id",
    );
    refused(&ctl(&db, &["decide", "987654321", "allow"]), "987654321");
    refused(&ctl(&db, &["decide", &id]), "expected SUBSCRIPTION-ID");
    refused(&ctl(&db, &["frobnicate"]), "unknown command 'frobnicate'");
    assert_eq!(
        json(&ctl(&db, &["--json", "pending"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let out = ok(&ctl(&db, &["decide", &id, "allow"]));
    assert!(
        out.contains(&format!("subscription {id} of sip:bob@example.test")),
        "{out}"
    );
    assert!(next_state(&mut bob).starts_with("active"));
    assert_eq!(
        json(&ctl(&db, &["--json", "pending"])),
        serde_json::json!([])
    );
    let subs = json(&ctl(&db, &["--json", "subscriptions", &alice]));
    assert_eq!(subs[0]["state"], "active", "{subs}");
    assert_eq!(subs[0]["authorization"], "allow", "{subs}");

    let status = json(&ctl(&db, &["--json", "status"]));
    assert_eq!(status["subscriptions_active"], 1, "{status}");
    assert_eq!(status["policy"], "confirm", "{status}");
    let stats = ok(&ctl(&db, &["stats"]));
    assert!(stats.contains("notifications_sent"), "{stats}");

    server.stop();
    assert!(!socket(&server).exists(), "the socket outlived imppd");
    let out = ctl(&db, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no imppd is running on"));
}

#[test]
fn users_changed_with_imppd_ctl_count_without_a_restart() {
    let mut server = Imppd::start_prepared(
        &["alice"],
        |db| {
            let out = Command::new(IMPPD)
                .args(["list", "add", "sip:team@example.test"])
                .args(["--entry", "sip:alice@example.test", "--db"])
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        },
        &[],
    );
    let db = server.db();
    let lists = json(&ctl(&db, &["--json", "lists"]));
    assert_eq!(lists[0]["uri"], "sip:team@example.test", "{lists}");
    assert_eq!(lists[0]["entries"], 1, "{lists}");
    let register = |c: &Client, auth: &str| {
        c.request(
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &format!("<{}>", c.aor()),
            &token(),
            &format!("Expires: 600\r\n{auth}"),
            None,
        )
    };
    let mut bob = Client::new(server.addr(), "bob");
    assert_ne!(bob.transact_auth(register).status(), Some(200));

    let out = ok(&ctl(
        &db,
        &["users", "add", "sip:bob@example.test", "bob-pw"],
    ));
    assert_eq!(out, "added sip:bob@example.test (realm example.test)\n");
    assert_eq!(bob.transact_auth(register).status(), Some(200));
    let regs = json(&ctl(
        &db,
        &["--json", "registrations", "sip:bob@example.test"],
    ));
    assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
    assert!(
        regs[0]["contact"]
            .as_str()
            .unwrap()
            .contains(&bob.local().to_string()),
        "{regs}"
    );
    let users = json(&ctl(&db, &["--json", "users", "list"]));
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
    // Kept in the database too: what `imppd user list` reads.
    let listed = Command::new(IMPPD)
        .args(["user", "list", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("sip:bob@example.test"));

    refused(
        &ctl(&db, &["users", "passwd", "sip:nobody@example.test", "x"]),
        "no user sip:nobody@example.test",
    );
    refused(
        &ctl(&db, &["users", "add", "sip:example.test", "x"]),
        "no user part",
    );
    ok(&ctl(&db, &["users", "del", "sip:bob@example.test"]));
    assert_ne!(bob.transact_auth(register).status(), Some(200));
    refused(
        &ctl(&db, &["users", "del", "sip:bob@example.test"]),
        "nothing deleted",
    );
    assert_eq!(
        json(&ctl(&db, &["--json", "users", "list"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Rules through the socket, kept in the store.
    let alice = format!("sip:alice@{DOMAIN}");
    ok(&ctl(&db, &["rules", "add", &alice, "other.test", "block"]));
    refused(
        &ctl(&db, &["rules", "add", &alice, "other.test", "maybe"]),
        "maybe",
    );
    let rules = ok(&ctl(&db, &["rules", "list"]));
    assert!(rules.contains("other.test  block"), "{rules}");
    ok(&ctl(&db, &["rules", "del", &alice, "other.test"]));
    assert_eq!(ok(&ctl(&db, &["rules", "list"])), "(none)\n");
    let reload = json(&ctl(&db, &["--json", "reload"]));
    assert_eq!(reload["users"]["removed"], 0, "{reload}");
    // Stopping does not need the socket's path: removed under it, imppd still stops.
    std::fs::remove_file(socket(&server)).unwrap();
    server.stop();
}

#[test]
fn ctl_without_a_server_says_none_runs() {
    let dir = common::kamailio::TempDir::new("ctl-none");
    let db = dir.path().join("imppd.db");
    let out = ctl(&db, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no imppd is running on"), "{stderr}");
    // A socket file nobody listens on (an imppd that was killed): connection refused.
    let stale = dir.path().join("stale.ctl");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = Command::new(IMPPD)
        .args(["ctl", "--socket"])
        .arg(&stale)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no imppd is running on {} (connection refused)",
            stale.display()
        )),
        "{stderr}"
    );
    // An imppd started on that stale socket replaces it; `--ctl-socket none`: no socket.
    let mut server = Imppd::start(&[], &["--open", "--ctl-socket", stale.to_str().unwrap()]);
    let out = Command::new(IMPPD)
        .args(["ctl", "--json", "--socket"])
        .arg(&stale)
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", server.log());
    // A second imppd asked for the same socket does not take it from the first.
    let second = Command::new(IMPPD)
        .args(["--domain", DOMAIN, "--open", "--db", "none"])
        .args([
            "--listen",
            &format!("udp:127.0.0.1:{}", common::kamailio::free_port()),
        ])
        .arg("--ctl-socket")
        .arg(&stale)
        .output()
        .unwrap();
    assert!(!second.status.success(), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another imppd answers on it"), "{stderr}");
    ok(&Command::new(IMPPD)
        .args(["ctl", "--socket"])
        .arg(&stale)
        .arg("status")
        .output()
        .unwrap());
    server.stop();
    let mut server = Imppd::start(&[], &["--open", "--ctl-socket", "none"]);
    assert!(!socket(&server).exists());
    server.stop();
    refused(&ctl(&db, &[]), "no command");
}
