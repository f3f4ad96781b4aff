//! `imppd ctl`: the control socket of a running imppd, with the real binary. A SIP watcher
//! waits under `--policy confirm` until `imppd ctl decide` allows it; users added and
//! deleted through the socket count at once (rules, registrations and lists are shown too);
//! the socket is 0600 and gone after exit; ctl against no server, and bad commands, fail
//! clearly with exit 1 and 2.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::certs::TestCa;
use common::imppd::{Imppd, IMPPD};
use common::kamailio::DOMAIN;
use common::sip::{token, Client};
use common::tls::TlsConn;

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
        "not allow, block, polite-block or redirect TARGET",
    );
    refused(
        &ctl(&db, &["decide", &id, "redirect"]),
        "not allow, block, polite-block or redirect TARGET",
    );
    refused(
        &ctl(&db, &["decide", &id, "redirect", "not a uri"]),
        "target",
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

/// `decide ID redirect TARGET` sends a pending watcher to another presence agent: its dialog
/// ends deactivated and its next SUBSCRIBE is answered `302` naming the target; `rules add
/// ... redirect TARGET` does it for every later one, and lists with its target.
#[test]
fn a_watcher_is_redirected_with_imppd_ctl() {
    let mut server = Imppd::start(&[], &["--open", "--policy", "confirm"]);
    let db = server.db();
    let alice = format!("sip:alice@{DOMAIN}");
    let edge = "sip:alice@192.0.2.7:5070;transport=tcp";
    let mut bob = Client::new(server.addr(), "bob");
    let subscribe = |c: &Client| {
        c.request(
            "SUBSCRIBE",
            &alice,
            &format!("<{alice}>"),
            &token(),
            "Event: presence\r\nExpires: 600\r\n",
            None,
        )
    };
    assert_eq!(bob.transact(&subscribe(&bob)).status(), Some(200));
    assert!(next_state(&mut bob).starts_with("pending"));
    let pending = json(&ctl(&db, &["--json", "pending"]));
    let id = pending[0]["id"].as_u64().unwrap().to_string();
    let decided = json(&ctl(&db, &["--json", "decide", &id, "redirect", edge]));
    assert_eq!(decided["action"], "redirect", "{decided}");
    assert_eq!(decided["target"], edge, "{decided}");
    let state = next_state(&mut bob);
    assert!(state.contains("reason=deactivated"), "{state}");
    let r = bob.transact(&subscribe(&bob));
    assert_eq!(r.status(), Some(302), "{r:?}");
    assert_eq!(r.header("Contact"), Some(format!("<{edge}>").as_str()));

    // A rule: listed with its target; a redirect without one is refused.
    refused(
        &ctl(&db, &["rules", "add", &alice, "other.test", "redirect"]),
        "needs the TARGET",
    );
    refused(
        &ctl(&db, &["rules", "add", &alice, "other.test", "allow", edge]),
        "takes no target",
    );
    ok(&ctl(
        &db,
        &["rules", "add", &alice, DOMAIN, "redirect", edge],
    ));
    let rules = json(&ctl(&db, &["--json", "rules", "list", &alice]));
    assert_eq!(rules[0]["action"], "redirect", "{rules}");
    assert_eq!(rules[0]["target"], edge, "{rules}");
    let mut carol = Client::new(server.addr(), "carol");
    let r = carol.transact(&subscribe(&carol));
    assert_eq!(r.status(), Some(302), "{r:?}");
    server.stop();
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

/// A UDP socket standing for another domain's server: what imppd forwards to it arrives.
struct NextHop(std::net::UdpSocket);

impl NextHop {
    fn new() -> NextHop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        NextHop(socket)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Whether a request with `call_id` arrives within `wait` (other datagrams are skipped).
    fn receives(&self, call_id: &str, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        while std::time::Instant::now() < deadline {
            if let Ok(n) = self.0.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).contains(call_id) {
                    return true;
                }
            }
        }
        false
    }
}

/// bob sends an OPTIONS for a user of b.test (which imppd routes); its Call-ID.
fn options_to_b(bob: &Client) -> String {
    let call_id = token();
    let request = bob.request(
        "OPTIONS",
        "sip:carol@b.test",
        "<sip:carol@b.test>",
        &call_id,
        "",
        None,
    );
    bob.send(&request);
    call_id
}

/// `who` subscribes to `presentity`'s presence; the answer's status and the first NOTIFY's
/// Subscription-State.
fn subscribe(who: &mut Client, presentity: &str) -> (u16, Option<String>) {
    let request = who.request(
        "SUBSCRIBE",
        presentity,
        &format!("<{presentity}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let status = who.transact(&request).status().unwrap();
    let state = (status < 300).then(|| next_state(who));
    (status, state)
}

/// alice publishes `note` (open); the answer's status.
fn publish(alice: &mut Client, note: &str) -> u16 {
    let aor = alice.aor();
    let pidf = format!(
        "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         entity=\"{aor}\"><tuple id=\"t\"><status><basic>open</basic></status>\
         <note>{note}</note></tuple></presence>"
    );
    let request = alice.request(
        "PUBLISH",
        &aor,
        &format!("<{aor}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        Some(("application/pidf+xml", pidf.as_bytes())),
    );
    alice.transact(&request).status().unwrap()
}

/// The body of the watcher's next NOTIFY.
fn next_body(client: &mut Client) -> String {
    let notify = client.next_request("NOTIFY");
    String::from_utf8_lossy(notify.body()).into_owned()
}

#[test]
fn reload_applies_a_changed_config_while_a_subscription_lives() {
    let dir = common::kamailio::TempDir::new("ctl-reload");
    let (first, second) = (NextHop::new(), NextHop::new());
    let config = dir.path().join("imppd.conf");
    let write = |route: &NextHop, policy: &str, max: u32, level: &str| {
        std::fs::write(
            &config,
            format!(
                "# changed by the test, then reloaded\nroute = b.test=udp:127.0.0.1:{}\n\
                 policy = {policy}\nmax-subscriptions-per-watcher = {max}\nlog-level = {level}\n",
                route.port()
            ),
        )
        .unwrap();
    };
    write(&first, "allow", 100, "info");
    let mut server = Imppd::start(&[], &["--open", "--config", config.to_str().unwrap()]);
    let db = server.db();
    let status = json(&ctl(&db, &["--json", "status"]));
    assert_eq!(status["log_level"], "info", "{status}");
    assert_eq!(status["policy"], "allow", "{status}");

    // bob watches alice (allowed) and sees what she publishes; his OPTIONS to b.test goes
    // to the first next hop.
    let alice_aor = format!("sip:alice@{DOMAIN}");
    let mut alice = Client::new(server.addr(), "alice");
    let mut bob = Client::new(server.addr(), "bob");
    let (status, state) = subscribe(&mut bob, &alice_aor);
    assert_eq!(status, 200);
    assert!(state.unwrap().starts_with("active"));
    assert_eq!(publish(&mut alice, "before"), 200);
    assert!(next_body(&mut bob).contains("before"));
    let (status, _) = subscribe(&mut bob, &format!("sip:dave@{DOMAIN}"));
    assert_eq!(status, 200, "a second subscription is within 100");
    assert!(first.receives(&options_to_b(&bob), std::time::Duration::from_secs(5)));

    // The file changes: another next hop, confirm, one subscription per watcher, debug.
    write(&second, "confirm", 1, "debug");
    let reload = json(&ctl(&db, &["--json", "reload"]));
    let changed: Vec<&str> = reload["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for what in ["routes", "policy", "state limits", "log level"] {
        assert!(changed.contains(&what), "{what} not changed: {reload}");
    }
    assert_eq!(reload["needs_restart"], serde_json::json!([]), "{reload}");
    let status = json(&ctl(&db, &["--json", "status"]));
    assert_eq!(status["log_level"], "debug", "{status}");
    assert_eq!(status["policy"], "confirm", "{status}");

    // The new route, policy and limit apply ...
    let call_id = options_to_b(&bob);
    assert!(second.receives(&call_id, std::time::Duration::from_secs(5)));
    assert!(!first.receives(&call_id, std::time::Duration::from_millis(300)));
    let mut carol = Client::new(server.addr(), "carol");
    let (status, state) = subscribe(&mut carol, &alice_aor);
    assert_eq!(status, 200);
    assert!(state.unwrap().starts_with("pending"), "confirm now");
    let (status, _) = subscribe(&mut bob, &format!("sip:erin@{DOMAIN}"));
    assert_eq!(status, 403, "bob is past one subscription now");
    // ... and bob's subscription made before the reload still gets NOTIFYs.
    assert_eq!(publish(&mut alice, "after"), 200);
    assert!(next_body(&mut bob).contains("after"));

    // SIGHUP does the same reload: nothing differs now, so nothing changes.
    let _ = Command::new("kill")
        .args(["-HUP", &server_pid(&db).to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log().contains("reloaded: changed nothing") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.stop();
}

fn server_pid(db: &Path) -> u64 {
    json(&ctl(db, &["--json", "status"]))["pid"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_bad_config_file_changes_nothing_and_says_why() {
    let dir = common::kamailio::TempDir::new("ctl-bad-config");
    let (first, second) = (NextHop::new(), NextHop::new());
    let config = dir.path().join("imppd.conf");
    let route = |hop: &NextHop| format!("route = b.test=udp:127.0.0.1:{}\n", hop.port());
    std::fs::write(&config, route(&first) + "log-level = info\n").unwrap();
    let mut server = Imppd::start(&[], &["--open", "--config", config.to_str().unwrap()]);
    let db = server.db();
    let bob = Client::new(server.addr(), "bob");

    // A line that does not read; a file that reads but would not start a server (a trusted
    // peer for imppd's own domain); a certificate that is not there. Each changes another
    // setting too, which must stay as it runs.
    let bad = [
        (format!("{}log-level = loud\n", route(&second)), "line 2"),
        (
            format!("{}peer = {DOMAIN}=127.0.0.9\n", route(&second)),
            "is a domain of this server",
        ),
        (
            format!(
                "tls-cert = {0}/none.crt\ntls-key = {0}/none.key\n",
                dir.path().display()
            ) + &route(&second),
            "none.crt",
        ),
    ];
    for (text, why) in &bad {
        std::fs::write(&config, text).unwrap();
        let out = ctl(&db, &["reload"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("reload refused, nothing changed") && stderr.contains(why),
            "{stderr}"
        );
        let call_id = options_to_b(&bob);
        assert!(
            first.receives(&call_id, std::time::Duration::from_secs(5)),
            "the route changed after: {text}"
        );
        assert_eq!(json(&ctl(&db, &["--json", "status"]))["log_level"], "info");
    }
    // SIGHUP with a bad file says so in the log.
    let _ = Command::new("kill")
        .args(["-HUP", &server_pid(&db).to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log().contains("reload refused, nothing changed") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // What needs a restart is named, not applied.
    let other = common::kamailio::free_port();
    std::fs::write(
        &config,
        route(&first) + &format!("log-level = info\nlisten = udp:127.0.0.1:{other}\n"),
    )
    .unwrap();
    let reload = json(&ctl(&db, &["--json", "reload"]));
    assert_eq!(
        reload["needs_restart"],
        serde_json::json!(["listen"]),
        "{reload}"
    );
    assert_eq!(reload["changed"], serde_json::json!([]), "{reload}");
    let text = ok(&ctl(&db, &["reload"]));
    assert!(text.contains("needs restart listen"), "{text}");
    drop(second);
    server.stop();
}

#[test]
fn log_level_changes_at_once() {
    let mut server = Imppd::start(&[], &["--open"]);
    let db = server.db();
    assert_eq!(json(&ctl(&db, &["--json", "status"]))["log_level"], "debug");
    let text = ok(&ctl(&db, &["log-level", "warn"]));
    assert_eq!(text, "log level warn (was debug)\n");
    assert_eq!(json(&ctl(&db, &["--json", "status"]))["log_level"], "warn");
    // Debug lines stop: a SUBSCRIBE logs none now.
    let before = server.log().matches("[debug]").count();
    let mut bob = Client::new(server.addr(), "bob");
    let (status, _) = subscribe(&mut bob, &format!("sip:alice@{DOMAIN}"));
    assert_eq!(status, 200);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.log().matches("[debug]").count(), before);
    refused(
        &ctl(&db, &["log-level", "loud"]),
        "error, warn, info, debug or trace",
    );
    refused(&ctl(&db, &["log-level"]), "expected error|warn");
    assert_eq!(json(&ctl(&db, &["--json", "status"]))["log_level"], "warn");
    // A reload that finds the same level in the configuration leaves the operator's.
    let reload = json(&ctl(&db, &["--json", "reload"]));
    assert!(
        !reload["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "log level"),
        "{reload}"
    );
    assert_eq!(json(&ctl(&db, &["--json", "status"]))["log_level"], "warn");
    // stats carries the SIP server's counters too.
    let stats = json(&ctl(&db, &["--json", "stats"]));
    assert!(stats["sip_answers_2xx"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["sip_requests_sent"].as_u64().unwrap() >= 1, "{stats}");
    server.stop();
}

/// An OPTIONS over `conn` answered 200 (the connection works); returns the SHA-256 of the
/// certificate the server presented on it.
fn options_over_tls(conn: &mut TlsConn) -> String {
    use sha2::Digest as _;
    let call_id = token();
    let local = conn.local();
    let request = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{b}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag={t}\r\nTo: <sip:{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        b = token(),
        t = token(),
    );
    assert_eq!(
        conn.transact(&call_id, request.as_bytes()).status(),
        Some(200)
    );
    let certs = conn
        .stream
        .conn
        .peer_certificates()
        .expect("a server certificate");
    sha2::Sha256::digest(certs[0].as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of the certificate imppd's HTTPS listener presents to a new connection
/// (after a `GET /health` answered).
fn https_sha256(addr: SocketAddr, ca: &TestCa) -> String {
    use sha2::Digest as _;
    use std::io::{Read, Write};
    let mut conn = TlsConn::connect(addr, ca, None);
    conn.stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: imppd\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    conn.stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let certs = conn
        .stream
        .conn
        .peer_certificates()
        .expect("a server certificate");
    sha2::Sha256::digest(certs[0].as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a PEM certificate's DER form.
fn pem_sha256(pem: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest as _;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_renewed_tls_certificate_is_presented_after_reload() {
    let dir = common::kamailio::TempDir::new("ctl-tls");
    let ca = TestCa::new("reload test CA");
    let old = ca.issue(&[DOMAIN]);
    let (cert, key) = old.write(dir.path(), "imppd");
    let ca_file = ca.write(dir.path(), "ca");
    let config = dir.path().join("imppd.conf");
    std::fs::write(
        &config,
        format!(
            "tls-cert = {}\ntls-key = {}\ntls-ca = {}\nlog-level = debug\n",
            cert.display(),
            key.display(),
            ca_file.display()
        ),
    )
    .unwrap();
    let tls = SocketAddr::from(([127, 0, 0, 1], common::kamailio::free_port()));
    let https = SocketAddr::from(([127, 0, 0, 1], common::kamailio::free_port()));
    let mut server = Imppd::start(
        &[],
        &[
            "--open",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &format!("tls:{tls}"),
            "--https",
            &https.to_string(),
        ],
    );
    let db = server.db();
    let mut before = TlsConn::connect(tls, &ca, None);
    assert_eq!(options_over_tls(&mut before), pem_sha256(&old.cert_pem));
    assert_eq!(https_sha256(https, &ca), pem_sha256(&old.cert_pem));

    // The files are replaced (a renewal) and imppd told to reload.
    let new = ca.issue(&[DOMAIN]);
    assert_ne!(pem_sha256(&new.cert_pem), pem_sha256(&old.cert_pem));
    new.write(dir.path(), "imppd");
    let reload = json(&ctl(&db, &["--json", "reload"]));
    assert_eq!(
        reload["changed"],
        serde_json::json!(["tls certificate"]),
        "{reload}"
    );
    assert_eq!(reload["needs_restart"], serde_json::json!([]), "{reload}");

    // A new connection sees the new certificate; the one open before keeps working.
    let mut after = TlsConn::connect(tls, &ca, None);
    assert_eq!(options_over_tls(&mut after), pem_sha256(&new.cert_pem));
    assert_eq!(options_over_tls(&mut before), pem_sha256(&old.cert_pem));
    assert_eq!(
        https_sha256(https, &ca),
        pem_sha256(&new.cert_pem),
        "HTTPS too"
    );

    // A key that does not fit the certificate changes nothing.
    let other = ca.issue(&[DOMAIN]);
    std::fs::write(&key, &other.key_pem).unwrap();
    let out = ctl(&db, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let mut third = TlsConn::connect(tls, &ca, None);
    assert_eq!(options_over_tls(&mut third), pem_sha256(&new.cert_pem));
    server.stop();
}
