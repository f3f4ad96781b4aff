//! imppd on the wire, driven by sipp (Debian package `sip-tester`) with the project's own
//! scenarios in `tests/sip/`: REGISTER, PUBLISH, SUBSCRIBE/NOTIFY and MESSAGE, each with
//! digest authentication, over UDP and TCP; a message stored for an offline user reaches it
//! when it registers, also after imppd restarts; users are managed with `imppd user`, and
//! authorization rules with `imppd rule` (closed by default: a watcher of another domain
//! waits for a decision), and resource lists with `imppd list` (add, del, show, import of
//! RFC 4826 documents), all picked up by a running server on SIGHUP; a phone's list
//! subscription survives an imppd restart.
//!
//! imppd is started by the test on a free loopback port and stopped by PID (SIGTERM).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::kamailio::free_port;
use common::sip::{token, Client};

const DOMAIN: &str = "example.test";
const IMPPD: &str = env!("CARGO_BIN_EXE_imppd");

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip")
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "impp-imppd-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("imppd.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn imppd(args: &[&str]) -> std::process::Output {
    Command::new(IMPPD).args(args).output().unwrap()
}

fn add_user(db: &Path, name: &str) {
    let out = imppd(&[
        "user",
        "add",
        &format!("sip:{name}@{DOMAIN}"),
        "--password",
        &format!("{name}-pw"),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running imppd, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    port: u16,
    /// What it wrote on standard error so far.
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(db: &Path) -> Server {
        Server::start_on(db, free_port(), &[])
    }

    /// imppd on `port` with `db`, for DOMAIN unless `extra` names its own `--domain`.
    fn start_on(db: &Path, port: u16, extra: &[&str]) -> Server {
        let domain = if extra.contains(&"--domain") {
            vec![]
        } else {
            vec!["--domain", DOMAIN]
        };
        let mut child = Command::new(IMPPD)
            .args(domain)
            .args([
                "--listen",
                &format!("udp:127.0.0.1:{port}"),
                "--listen",
                &format!("tcp:127.0.0.1:{port}"),
                "--db",
                db.to_str().unwrap(),
                "--log-level",
                "info",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                drop(log);
                if line.starts_with("imppd ready") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                if std::env::var_os("IMPP_TEST_VERBOSE").is_some() {
                    eprintln!("{line}");
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("imppd did not become ready");
        Server { child, port, log }
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Sends SIGHUP and waits until the server logged `line` (the reload's summary).
    fn hup_until(&self, line: &str) {
        let hup = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log.lock().unwrap().contains(line) {
            assert!(
                Instant::now() < deadline,
                "imppd never logged '{line}':\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        common::imppd::terminate(&mut self.child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs one sipp scenario against the server; panics with sipp's screen when it fails.
fn sipp(server: &Server, scenario: &str, tcp: bool, user: &str, vars: &[(&str, &str)]) {
    sipp_as(server, scenario, tcp, user, &format!("{user}-pw"), vars);
}

fn sipp_with_password(server: &Server, scenario: &str, user: &str, password: &str) {
    sipp_as(server, scenario, false, user, password, &[]);
}

fn sipp_as(
    server: &Server,
    scenario: &str,
    tcp: bool,
    user: &str,
    password: &str,
    vars: &[(&str, &str)],
) {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenarios().join(scenario))
        .args(["-set", "user", user, "-set", "domain", DOMAIN])
        .args(["-au", user, "-ap", password])
        .args(["-i", "127.0.0.1", "-p", "0", "-m", "1"])
        .args(["-timeout", "15", "-timeout_error", "-nostdin"]);
    for (name, value) in vars {
        cmd.args(["-set", name, value]);
    }
    if tcp {
        cmd.args(["-t", "t1"]);
    }
    cmd.arg(format!("127.0.0.1:{}", server.port));
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            panic!("cannot run sipp ({e}): install the Debian package sip-tester (.ci/run does)")
        }
    };
    assert!(
        out.status.success(),
        "sipp {scenario} ({}) failed with {}:\n{}\n{}",
        if tcp { "TCP" } else { "UDP" },
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn users_are_managed_with_imppd_user() {
    let dir = Dir::new("users");
    let db = dir.db();
    add_user(&db, "alice");
    add_user(&db, "bob");
    let out = imppd(&["user", "list", "--db", db.to_str().unwrap()]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("sip:alice@example.test") && list.contains("sip:bob@example.test"));
    let out = imppd(&[
        "user",
        "del",
        "sip:bob@example.test",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = imppd(&["user", "list", "--db", db.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bob"));
    // Bad input: a clear error and a failing exit status.
    let out = imppd(&[
        "user",
        "add",
        "not a uri",
        "--password",
        "x",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let out = imppd(&["--listen", "sctp:127.0.0.1:5060", "--domain", DOMAIN]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown transport"));
    let out = imppd(&["--nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `imppd user add` / `user del` beside a running server, then SIGHUP: the server's users
/// are what the database holds, without a restart.
#[test]
fn users_changed_beside_a_running_server_count_after_sighup() {
    let dir = Dir::new("reload");
    let db = dir.db();
    add_user(&db, "alice");
    let mut server = Server::start(&db);
    add_user(&db, "dave");
    let out = imppd(&[
        "user",
        "del",
        &format!("sip:alice@{DOMAIN}"),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(500));
    sipp(&server, "register_auth.xml", false, "dave", &[]);
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sipp(&server, "register_auth.xml", false, "alice", &[]);
    }));
    assert!(
        refused.is_err(),
        "alice was removed: her REGISTER must fail"
    );
    server.stop();
}

/// `--db none`: memory only, as a memory-only Kamailio; serves with --open, keeps no users.
#[test]
fn imppd_runs_memory_only_without_a_database() {
    let out = imppd(&[
        "user",
        "add",
        "sip:x@example.test",
        "--password",
        "p",
        "--db",
        "none",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no users"));
    let mut server = Server::start_on(Path::new("none"), free_port(), &["--open"]);
    sipp(
        &server,
        "kamailio_publish.xml",
        false,
        "alice",
        &[("note", "in memory"), ("note2", "still")],
    );
    server.stop();
    assert!(!Path::new("none").exists(), "no file named 'none' was made");
}

/// `--account`: a second imppd (client.test) is a user agent of the first: it registers
/// alice there with her digest credentials, so a MESSAGE to alice is delivered online (200,
/// not stored: 202). A bad `--account` is refused before anything starts.
#[test]
fn imppd_registers_an_account_at_another_server() {
    let dir = Dir::new("account");
    let db = dir.db();
    add_user(&db, "alice");
    add_user(&db, "bob");
    let server = Server::start(&db);
    let out = imppd(&[
        "--domain",
        "client.test",
        "--account",
        "sip:alice@example.test,registrar=udp:127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password= is needed"));

    let client_db = dir.0.join("client.db");
    let mut client = Server::start_on(
        &client_db,
        free_port(),
        &[
            "--open",
            "--domain",
            "client.test",
            "--account",
            &format!(
                "sip:alice@{DOMAIN},password=alice-pw,registrar=udp:127.0.0.1:{},expires=60",
                server.port
            ),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    sipp(
        &server,
        "message_auth_online.xml",
        false,
        "bob",
        &[("target", "alice"), ("text", "hi")],
    );
    client.stop();
}

#[test]
fn register_publish_subscribe_over_udp_and_tcp() {
    let dir = Dir::new("presence");
    for name in ["alice", "bob"] {
        add_user(&dir.db(), name);
    }
    let mut server = Server::start(&dir.db());
    for tcp in [false, true] {
        sipp(&server, "register_auth.xml", tcp, "alice", &[]);
        sipp(&server, "publish_auth.xml", tcp, "alice", &[]);
        sipp(
            &server,
            "subscribe_auth.xml",
            tcp,
            "bob",
            &[("target", "alice")],
        );
    }
    server.stop();
}

/// A sipp user agent on `port` that waits for one MESSAGE (see message_receive.xml).
fn receiver(port: u16) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(scenarios().join("message_receive.xml"))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-timeout", "15", "-timeout_error", "-nostdin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp (Debian package sip-tester) must be installed")
}

/// Waits (20 s at most) until the store `db` of a running imppd holds `n` rows in `table`
/// (soft state, written behind; read here through SQLite's WAL). `what` names them in the
/// failure.
fn wait_stored(db: &Path, table: &str, n: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored: i64 = rusqlite::Connection::open(db)
            .and_then(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
            .unwrap_or(0);
        if stored == n {
            break;
        }
        assert!(Instant::now() < deadline, "{what} never reached the store");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_received(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "the receiving user agent failed ({status}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the receiving user agent got no MESSAGE");
}

#[test]
fn a_message_for_an_offline_user_arrives_when_it_registers_even_after_a_restart() {
    let dir = Dir::new("messages");
    for name in ["alice", "carol", "dave"] {
        add_user(&dir.db(), name);
    }
    let mut server = Server::start(&dir.db());
    let text = [("target", "carol"), ("text", "stored for you")];
    sipp(&server, "message_auth.xml", false, "alice", &text);
    let port = free_port();
    let ua = receiver(port);
    let cport = port.to_string();
    sipp(
        &server,
        "register_contact.xml",
        false,
        "carol",
        &[("cport", &cport)],
    );
    wait_received(ua);

    // Stored (sent over TCP this time), then imppd restarts, then the user registers.
    let text = [
        ("target", "dave"),
        ("text", "stored for you, across a restart"),
    ];
    sipp(&server, "message_auth.xml", true, "alice", &text);
    server.stop();
    let mut server = Server::start(&dir.db());
    let port = free_port();
    let ua = receiver(port);
    let cport = port.to_string();
    sipp(
        &server,
        "register_contact.xml",
        false,
        "dave",
        &[("cport", &cport)],
    );
    wait_received(ua);
    server.stop();
}

#[test]
fn a_remote_watcher_is_notified_again_in_its_dialog_after_a_restart() {
    let dir = Dir::new("restart");
    let port = free_port();
    let mut server = Server::start_on(&dir.db(), port, &["--open"]);
    // The watcher subscribes and stays, waiting for a second NOTIFY in the same dialog.
    let watcher = Command::new("sipp")
        .arg("-sf")
        .arg(scenarios().join("subscribe_hold.xml"))
        .args([
            "-set", "user", "bob", "-set", "target", "alice", "-set", "domain", DOMAIN,
        ])
        .args(["-i", "127.0.0.1", "-p", "0", "-m", "1"])
        .args(["-timeout", "30", "-timeout_error", "-nostdin"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp (Debian package sip-tester) must be installed");
    // Once the subscription is in the store (written behind, read here through SQLite's WAL
    // while imppd runs), restart imppd (SIGTERM: the subscription stays).
    wait_stored(&dir.db(), "subscriptions", 1, "the subscription");
    server.stop();
    let mut server = Server::start_on(&dir.db(), port, &["--open"]);
    wait_received(watcher);
    server.stop();
}

#[test]
fn the_readme_main_command_starts_imppd_with_two_users() {
    let dir = Dir::new("readme");
    let port = free_port();
    let mut child = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/imppd.sh"))
        .env("IMPPD_BIN", IMPPD)
        .env("IMPPD_DB", dir.db())
        .env(
            "IMPPD_LISTEN",
            format!("udp:127.0.0.1:{port} tcp:127.0.0.1:{port}"),
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("imppd ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("imppd did not start");
    // It serves the users it created: alice registers with her password.
    let log = Arc::default();
    let server = Server { child, port, log };
    sipp_with_password(&server, "register_auth.xml", "alice", "alice-secret");
    let mut server = server;
    server.stop();
}

/// `imppd rule ...` on `db`.
fn rule(db: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["rule"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--db", db.to_str().unwrap()]);
    imppd(&all)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rules_are_managed_with_imppd_rule() {
    let dir = Dir::new("rules");
    let db = dir.db();
    let alice = format!("sip:alice@{DOMAIN}");
    for (watcher, action) in [
        ("sip:carol@other.test", "allow"),
        ("Other.Test", "block"),
        ("other.test", "polite-block"),
    ] {
        let out = rule(&db, &["add", &alice, watcher, action]);
        assert!(out.status.success(), "{out:?}");
    }
    let out = rule(
        &db,
        &[
            "add",
            "sip:zed@example.test",
            "sip:bob@example.test",
            "confirm",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // The third replaced the second: one rule per watcher or domain.
    let listed = "sip:alice@example.test sip:carol@other.test allow\n\
                  sip:alice@example.test other.test polite-block\n";
    assert_eq!(
        stdout(&rule(&db, &["list", "pres:alice@example.test"])),
        listed
    );
    let all = stdout(&rule(&db, &["list"]));
    assert_eq!(
        all,
        format!("{listed}sip:zed@example.test sip:bob@example.test confirm\n")
    );

    // Bad input: a clear message, exit status 1 (as `imppd user`), nothing changed.
    for (args, message) in [
        (
            vec!["add", "not a uri", "other.test", "allow"],
            "presentity 'not a uri'",
        ),
        (
            vec!["add", &alice, "carol@other.test", "allow"],
            "neither a URI",
        ),
        (
            vec!["add", &alice, "sip:bad uri", "allow"],
            "watcher 'sip:bad uri'",
        ),
        (
            vec!["add", &alice, "other.test", "deny"],
            "unknown authorization action 'deny'",
        ),
        (vec!["add", &alice, "other.test"], "needs an action"),
        (
            vec!["add", &alice, "other.test", "redirect"],
            "needs the TARGET",
        ),
        (
            vec!["add", &alice, "other.test", "allow", "sip:pa@x.test"],
            "takes no target",
        ),
        (
            vec!["add", &alice, "other.test", "redirect", "not a uri"],
            "target 'not a uri'",
        ),
        (
            vec!["del", &alice, "sip:dave@other.test"],
            "no rule for sip:dave@other.test",
        ),
        (vec!["del", &alice, "third.test"], "no rule for third.test"),
        (vec!["frob"], "add, del or list"),
    ] {
        let out = rule(&db, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(stdout(&rule(&db, &["list"])), all);
    let out = imppd(&["rule", "list", "--db", "none"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no rules"));

    let out = rule(&db, &["del", "pres:alice@example.test", "OTHER.test"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&rule(&db, &["list", &alice])),
        "sip:alice@example.test sip:carol@other.test allow\n"
    );

    // A redirect lists with its target, as `rule add` takes it.
    let out = rule(
        &db,
        &["add", &alice, "third.test", "redirect", "sip:pa@edge.test"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&rule(&db, &["list", &alice])),
        "sip:alice@example.test sip:carol@other.test allow\n\
         sip:alice@example.test third.test redirect sip:pa@edge.test\n"
    );
}

/// A watcher subscribes to alice; the server's first NOTIFY's Subscription-State.
fn subscribe(server: &Server, user: &str, domain: &str) -> (Client, String) {
    let mut client = Client::new(server.addr(), user);
    client.domain = domain.into();
    let alice = format!("sip:alice@{DOMAIN}");
    let request = client.request(
        "SUBSCRIBE",
        &alice,
        &format!("<{alice}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let r = client.transact(&request);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let state = next_state(&mut client);
    (client, state)
}

/// The Subscription-State of the next NOTIFY.
fn next_state(client: &mut Client) -> String {
    let notify = client.next_request("NOTIFY");
    notify.header("Subscription-State").unwrap().to_string()
}

/// The closed default, then `imppd rule add` / `rule del` beside the running server and
/// SIGHUP: its decisions change, for existing subscriptions too, without a restart.
#[test]
fn rules_changed_beside_a_running_server_decide_after_sighup() {
    let dir = Dir::new("rule-reload");
    let db = dir.db();
    // other.test's server is at loopback too (its users' requests come from there).
    let mut server = Server::start_on(
        &db,
        free_port(),
        &["--open", "--peer", "other.test=127.0.0.1"],
    );
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .contains("policy same domain allow, others confirm"),
        "{}",
        server.log.lock().unwrap()
    );
    // Closed: a watcher of alice's domain may watch, one of another domain waits.
    let (mut carol, state) = subscribe(&server, "carol", "other.test");
    assert!(state.starts_with("pending"), "{state}");
    let (mut bob, state) = subscribe(&server, "bob", DOMAIN);
    assert!(state.starts_with("active"), "{state}");

    let alice = format!("sip:alice@{DOMAIN}");
    for (watcher, action) in [("other.test", "allow"), ("sip:bob@example.test", "block")] {
        let out = rule(&db, &["add", &alice, watcher, action]);
        assert!(out.status.success(), "{out:?}");
    }
    server.hup_until("rules 2 added or changed, 0 removed");
    assert!(server
        .log
        .lock()
        .unwrap()
        .contains("imppd: rule added: sip:alice@example.test other.test allow"));
    assert!(next_state(&mut carol).starts_with("active"));
    assert_eq!(next_state(&mut bob), "terminated;reason=rejected");
    let (_dave, state) = subscribe(&server, "dave", "other.test");
    assert!(state.starts_with("active"), "{state}");
    let (_bob, state) = subscribe(&server, "bob", DOMAIN);
    assert_eq!(state, "terminated;reason=rejected");

    // Deleted from the store: gone from the server at the next SIGHUP; carol waits again.
    let out = rule(&db, &["del", &alice, "other.test"]);
    assert!(out.status.success(), "{out:?}");
    server.hup_until("rules 0 added or changed, 1 removed");
    assert!(next_state(&mut carol).starts_with("pending"));
    server.stop();
}

/// `imppd list ...` on `db`.
fn list(db: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--db", db.to_str().unwrap()]);
    imppd(&all)
}

fn assert_ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    stdout(out)
}

/// Runs `args`; checks the exit status is 1 and standard error says `message`.
fn assert_refused(db: &Path, args: &[&str], message: &str) {
    let out = list(db, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{args:?}: {stderr}");
}

#[test]
fn lists_are_managed_with_imppd_list() {
    let dir = Dir::new("lists");
    let db = dir.db();
    let sales = "sip:sales-blf@example.test";
    let support = "sip:support-blf@example.test";
    let out = assert_ok(&list(
        &db,
        &[
            "add",
            sales,
            "--entry",
            "Alice <sip:alice@example.test>",
            "--ref",
            support,
            "--entry",
            "sip:bob@example.test",
            "--package",
            "dialog",
            "--package",
            "presence",
            "--name",
            "Sales team",
        ],
    ));
    assert_eq!(
        out,
        "added sip:sales-blf@example.test \"Sales team\" (presence, dialog): 3 entries, 2 resources\n"
    );
    assert_ok(&list(
        &db,
        &[
            "add",
            support,
            "--entry",
            "sip:carol@example.test",
            "--entry",
            "\"A. \\\"Al\\\" Smith\" <sip:alice@example.test>",
        ],
    ));
    let shown = "sip:sales-blf@example.test \"Sales team\" (presence, dialog)\n  \
                 entry \"Alice\" <sip:alice@example.test>\n  \
                 ref <sip:support-blf@example.test>\n  \
                 entry <sip:bob@example.test>\n  \
                 expands to 3 resources\n";
    let all = assert_ok(&list(&db, &["show"]));
    assert_eq!(
        all,
        format!(
            "{shown}sip:support-blf@example.test (presence)\n  \
             entry <sip:carol@example.test>\n  \
             entry \"A. \\\"Al\\\" Smith\" <sip:alice@example.test>\n  \
             expands to 2 resources\n"
        )
    );
    // One list, with its resources in order (the first display name met).
    assert_eq!(
        assert_ok(&list(&db, &["show", "pres:sales-blf@example.test"])),
        format!(
            "{shown}  resource \"Alice\" <sip:alice@example.test>\n  \
             resource <sip:carol@example.test>\n  \
             resource <sip:bob@example.test>\n"
        )
    );

    // Bad input: a clear message, exit status 1, nothing changed.
    let many: Vec<String> = (0..501)
        .flat_map(|i| ["--entry".to_string(), format!("sip:u{i}@example.test")])
        .collect();
    let mut too_many = vec!["add", support];
    too_many.extend(many.iter().map(String::as_str));
    let nine: Vec<String> = (1..=9).map(|i| format!("sip:l{i}@example.test")).collect();
    for (args, message) in [
        (vec!["add", "not a uri", "--entry", "sip:a@example.test"], "list 'not a uri'"),
        (vec!["add", support, "--entry", "sip:bad uri"], "entry 'sip:bad uri'"),
        (vec!["add", support, "--ref", "nope"], "ref 'nope'"),
        (
            vec!["add", support, "--entry", "sip:a@example.test", "--ref", sales],
            "sip:support-blf@example.test -> sip:sales-blf@example.test -> sip:support-blf@example.test is a cycle",
        ),
        (
            vec!["add", support, "--entry", "sip:a@example.test", "--entry", "pres:a@example.test"],
            "names resource pres:a@example.test twice",
        ),
        (too_many, "at most 500"),
        (vec!["add", support], "at least one --entry or --ref"),
        (
            vec!["add", support, "--entry", "sip:a@example.test", "--package", "message-summary"],
            "a list serves presence or dialog",
        ),
        (
            vec!["add", support, "--entry", "sip:a@example.test", "--package", "weather"],
            "unknown event package: 'weather'",
        ),
        (
            vec!["add", "sip:x@other.test", "--entry", "sip:a@example.test", "--domain", DOMAIN],
            "not of a domain imppd serves",
        ),
        (vec!["del", "sip:nothing@example.test"], "there is no list sip:nothing@example.test"),
        (vec!["show", "sip:nothing@example.test"], "there is no list"),
        (vec!["frob"], "add, del, show or import"),
    ] {
        assert_refused(&db, &args, message);
    }
    // Nine levels deep: eight are fine, the ninth is refused.
    for i in (1..=8).rev() {
        let mut args = vec!["add", nine[i - 1].as_str(), "--entry", "sip:r@example.test"];
        if i < 8 {
            args.extend(["--ref", nine[i].as_str()]);
        }
        assert_ok(&list(&db, &args));
    }
    assert_refused(
        &db,
        &["add", "sip:l0@example.test", "--ref", &nine[0]],
        "more than 8 levels",
    );
    for l in &nine[..8] {
        assert_ok(&list(&db, &["del", l]));
    }
    assert_eq!(assert_ok(&list(&db, &["show"])), all);
    let out = imppd(&["list", "show", "--db", "none"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no lists"));

    // Deleting a referenced list: the reference stays, and says so.
    let out = assert_ok(&list(&db, &["del", support]));
    assert!(
        out.contains("deleted sip:support-blf@example.test"),
        "{out}"
    );
    assert!(
        out.contains("still referenced by sip:sales-blf@example.test"),
        "{out}"
    );
    let out = assert_ok(&list(&db, &["show"]));
    assert!(
        out.contains("ref <sip:support-blf@example.test> (no such list yet)"),
        "{out}"
    );
    assert!(out.contains("expands to 2 resources"), "{out}");
}

#[test]
fn lists_are_imported_from_rfc_4826_documents() {
    let dir = Dir::new("list-import");
    let db = dir.db();
    let file = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // Kamailio's rls-services: one service pointing at an XCAP list, one inline.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let services = corpus.join("rls-services/kamailio-rls-blf-services.xml");
    let services = services.to_str().unwrap();
    assert_refused(&db, &["import", services], "give one --domain DOMAIN");
    let out = assert_ok(&list(
        &db,
        &["import", services, "--domain", "pbx.example.test"],
    ));
    assert_eq!(
        out,
        format!(
            "imported 2 lists from {services} (rls-services)\n\
             added sip:blf-lobby@pbx.example.test (dialog): 1 entries, 0 resources\n\
             added sip:lobby-buddies@pbx.example.test (presence): 3 entries, 3 resources\n"
        )
    );
    // The resource-lists document it points into: its list becomes the one referenced.
    let panel = corpus.join("resource-lists/yealink-blf-50-entries.xml");
    let panel = panel.to_str().unwrap();
    assert_refused(&db, &["import", panel], "give one --domain");
    let out = assert_ok(&list(
        &db,
        &[
            "import",
            panel,
            "--domain",
            "pbx.example.test",
            "--package",
            "dialog",
        ],
    ));
    assert!(
        out.contains("added sip:blf-t46-lobby@pbx.example.test \"Lobby BLF panel\" (dialog): 50 entries, 50 resources"),
        "{out}"
    );
    let out = assert_ok(&list(&db, &["show", "sip:blf-lobby@pbx.example.test"]));
    assert!(out.contains("expands to 50 resources"), "{out}");
    assert!(
        out.contains("resource \"Reception\" <sip:201@pbx.example.test>"),
        "{out}"
    );

    // Nested lists flattened in order, each resource once; an entry-ref by URI; a
    // re-import replaces.
    let nested = file(
        "nested.xml",
        r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
             <list name="team"><display-name> Team </display-name>
               <entry uri="sip:a@example.test"><display-name>A</display-name></entry>
               <list name="inner"><entry uri="sip:b@example.test"/><entry uri="sip:a@example.test"/></list>
               <entry-ref ref="r/~~/resource-lists/list%5b@name=%22x%22%5d/entry%5b@uri=%22sip:c@example.test%22%5d"/>
               <external anchor="sip:sales@example.test"/>
             </list>
           </resource-lists>"#,
    );
    let out = assert_ok(&list(&db, &["import", &nested, "--domain", DOMAIN]));
    assert!(
        out.contains("added sip:team@example.test \"Team\" (presence): 4 entries, 3 resources"),
        "{out}"
    );
    let out = assert_ok(&list(&db, &["import", &nested, "--domain", DOMAIN]));
    assert!(out.contains("replaced sip:team@example.test"), "{out}");
    let before = assert_ok(&list(&db, &["show"]));

    // Bad documents: a message naming the file, exit status 1, nothing changed.
    let cycle = file(
        "cycle.xml",
        r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
             <service uri="sip:sales@example.test"><list><rl:external anchor="sip:team@example.test"/></list>
               <packages><package>presence</package></packages></service>
             <service uri="sip:new@example.test"><list><rl:entry uri="sip:z@example.test"/></list></service>
           </rls-services>"#,
    );
    for (path, message) in [
        (file("truncated.xml", "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service uri=\"sip:a@x\">"), "truncated"),
        (file("other.xml", "<presence xmlns='urn:ietf:params:xml:ns:pidf'/>"), "neither a resource-lists nor an rls-services document"),
        (file("doctype.xml", "<!DOCTYPE x [<!ENTITY e 'x'>]><resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>"), "unsafe XML"),
        (cycle, "is a cycle"),
        (file("winfo.xml", r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:w@example.test"><list/><packages><package>presence.winfo</package></packages></service></rls-services>"#), "not one a list serves"),
        (file("xcap.xml", r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="x"><entry-ref ref="users/sip:a@x/index"/></list></resource-lists>"#), "does not select an entry"),
        (dir.0.join("missing.xml").to_str().unwrap().to_owned(), "cannot read"),
    ] {
        assert_refused(&db, &["import", &path, "--domain", DOMAIN], message);
    }
    assert_eq!(assert_ok(&list(&db, &["show"])), before);
    assert!(!before.contains("sip:new@example.test"));
}

/// `imppd list` beside a running server, then SIGHUP: the server takes the lists, all at
/// once (a change that is only valid together with another one passes), and logs each.
#[test]
fn lists_changed_beside_a_running_server_are_taken_on_sighup() {
    let dir = Dir::new("list-reload");
    let db = dir.db();
    let (a, b) = ("sip:a@example.test", "sip:b@example.test");
    assert_ok(&list(
        &db,
        &["add", a, "--entry", "sip:x@example.test", "--ref", b],
    ));
    let mut server = Server::start_on(&db, free_port(), &["--open"]);
    server.hup_until("lists 0 added or changed, 0 removed");

    assert_ok(&list(&db, &["add", b, "--entry", "sip:y@example.test"]));
    assert_ok(&list(
        &db,
        &[
            "add",
            "sip:c@elsewhere.test",
            "--entry",
            "sip:z@example.test",
        ],
    ));
    server.hup_until("lists 1 added or changed, 0 removed");
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("imppd: list added: sip:b@example.test (presence): 1 entries"),
        "{log}"
    );
    assert!(
        log.contains("imppd: list ignored: sip:c@elsewhere.test is not of a domain imppd serves"),
        "{log}"
    );
    assert_ok(&list(&db, &["del", "sip:c@elsewhere.test"]));

    // Turned around: a -> b becomes b -> a. Each step in the store was valid; the server,
    // which still has a -> b, takes both changes at once.
    assert_ok(&list(&db, &["add", a, "--entry", "sip:x@example.test"]));
    assert_ok(&list(
        &db,
        &["add", b, "--entry", "sip:y@example.test", "--ref", a],
    ));
    server.hup_until("lists 2 added or changed, 0 removed");
    assert!(server
        .log
        .lock()
        .unwrap()
        .contains("imppd: list changed: sip:a@example.test"));

    assert_ok(&list(&db, &["del", a]));
    server.hup_until("lists 0 added or changed, 1 removed");
    assert!(server
        .log
        .lock()
        .unwrap()
        .contains("imppd: list removed: sip:a@example.test"));
    server.stop();
}

/// `--policy` decides every watcher no rule names, whatever its domain.
#[test]
fn the_policy_flag_applies_to_every_watcher() {
    let dir = Dir::new("policy");
    let mut server = Server::start_on(
        &dir.db(),
        free_port(),
        &[
            "--open",
            "--policy",
            "allow",
            "--peer",
            "other.test=127.0.0.1",
        ],
    );
    let (_carol, state) = subscribe(&server, "carol", "other.test");
    assert!(state.starts_with("active"), "{state}");
    server.stop();
    let mut server = Server::start_on(&dir.db(), free_port(), &["--open", "--policy", "confirm"]);
    let (_bob, state) = subscribe(&server, "bob", DOMAIN);
    assert!(state.starts_with("pending"), "{state}");
    server.stop();
}

/// The `--max-*` bounds, from the command line and from a config file: past them imppd
/// answers as the library's server does (here a second registration of one user is 403 and
/// a second waiting message from one sender is 480), and a bound of 0 is refused at start.
#[test]
fn state_limits_come_from_flags_and_the_config_file() {
    use common::sip::{token, Client};
    let bad = imppd(&["--domain", DOMAIN, "--max-endpoints-per-user", "0"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--max-endpoints-per-user needs a number"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let dir = Dir::new("limits");
    let config = dir.0.join("imppd.conf");
    std::fs::write(&config, "open\nmax-endpoints-per-user = 1\n").unwrap();
    let mut server = Server::start_on(
        &dir.db(),
        free_port(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-offline-messages-per-sender",
            "1",
        ],
    );
    let addr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let (mut phone, mut laptop) = (Client::new(addr, "bob"), Client::new(addr, "bob"));
    assert_eq!(phone.register(600).status(), Some(200));
    assert_eq!(laptop.register(600).status(), Some(403));
    let mut alice = Client::new(addr, "alice");
    let carol = format!("sip:carol@{DOMAIN}");
    let mut send = || {
        let m = alice.request(
            "MESSAGE",
            &carol,
            &format!("<{carol}>"),
            &token(),
            "",
            Some(("text/plain", b"hi")),
        );
        alice.transact(&m).status()
    };
    assert_eq!(send(), Some(202));
    assert_eq!(send(), Some(480));
    server.stop();
}

/// The network bounds come from flags (and the config file, as every option): bad values
/// are refused at start with a message, good ones show in the start-up line.
#[test]
fn network_bounds_come_from_flags() {
    for (flag, value, says) in [
        ("--rate-limit", "50/10", "--rate-limit"),
        ("--rate-limit", "fast", "--rate-limit"),
        ("--max-connections", "0", "--max-connections needs a number"),
        (
            "--max-connections-per-address",
            "x",
            "--max-connections-per-address needs",
        ),
        (
            "--unauthenticated-timeout",
            "0",
            "--unauthenticated-timeout needs seconds",
        ),
        (
            "--auth-proxy",
            "proxy.test",
            "--auth-proxy needs an IP address",
        ),
        (
            "--list-batch-interval",
            "60001",
            "--list-batch-interval needs milliseconds",
        ),
        (
            "--listen",
            "tls:127.0.0.1:0",
            "need a TLS certificate and key",
        ),
        (
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-cert and --tls-key go together",
        ),
        ("--web-root", "/nonexistent/web", "--web-root: web root"),
        ("--web-root", "Cargo.toml", "is not a directory"),
    ] {
        let out = imppd(&["--domain", DOMAIN, "--db", "none", "--open", flag, value]);
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
    let mut node = common::imppd::Imppd::start(
        &[],
        &[
            "--open",
            "--rate-limit",
            "50/100",
            "--max-connections-per-address",
            "8",
            "--auth-proxy",
            "127.0.0.9",
            "--list-batch-interval",
            "250",
        ],
    );
    let log = node.log();
    assert!(
        log.contains(
            "connections 4096 (8 per address), rate limit 50/s bursts 100, list batch 250 ms"
        ),
        "{log}"
    );
    node.stop();
}

/// A desk phone's BLF list against the real binary (sipp, digest on): `imppd list add` a
/// dialog list of alice and bob; the phone subscribes with `Supported: eventlist` and gets a
/// full-state RLMI NOTIFY (version 0); alice publishes a call and a partial NOTIFY with alice
/// only follows (`--list-batch-interval 0`: at once; partial NOTIFYs of the resources' own
/// first changes may come between).
#[test]
fn a_desk_phone_watches_its_blf_list() {
    let dir = Dir::new("blf");
    for name in ["alice", "bob", "phone"] {
        add_user(&dir.db(), name);
    }
    let blf = format!("sip:blf@{DOMAIN}");
    assert_ok(&list(
        &dir.db(),
        &[
            "add",
            &blf,
            "--entry",
            &format!("sip:alice@{DOMAIN}"),
            "--entry",
            &format!("sip:bob@{DOMAIN}"),
            "--package",
            "dialog",
        ],
    ));
    let mut server = Server::start_on(&dir.db(), free_port(), &["--list-batch-interval", "0"]);
    let phone = common::sipp::Sipp::new(
        "blf_list_subscribe.xml",
        server.addr(),
        "phone",
        &dir.0,
        "phone",
    )
    .auth("phone", "phone-pw")
    .set("list", "blf")
    .spawn();
    phone.wait_for("fullState=\"true\"");
    sipp(&server, "publish_dialog_auth.xml", false, "alice", &[]);
    let log = phone.wait();
    let notifies = log.received("NOTIFY");
    assert!(notifies.len() >= 3, "{notifies:?}");
    // The partial state with alice's call (partial NOTIFYs of the resources' own first
    // changes may come before it).
    let partial = notifies
        .iter()
        .find(|n| n.contains("confirmed"))
        .expect("alice's call in a NOTIFY");
    assert!(partial.contains("fullState=\"false\""), "{partial}");
    assert!(
        partial.contains(&format!("uri=\"sip:alice@{DOMAIN}\"")),
        "{partial}"
    );
    assert!(
        !partial.contains(&format!("sip:bob@{DOMAIN}")),
        "only alice changed: {partial}"
    );
    server.stop();
}

/// A one-tuple PIDF document of `entity` with `note`.
fn pidf(entity: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\"><tuple id=\"t1\"><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
    )
}

/// Reads NOTIFYs (for up to `tries` of them, 5 s each) until one's body contains `text`.
fn notified(client: &mut Client, text: &str, tries: usize) -> bool {
    (0..tries).any(|_| {
        let notify = client.next_request("NOTIFY");
        String::from_utf8_lossy(notify.body()).contains(text)
    })
}

/// The list client in imppd: a client imppd (client.test) whose account bob@example.test
/// declares the list `sip:buddies@example.test` (`--account ...,list=URI`) subscribes to it
/// at the first imppd as it starts, and a SIP watcher of client.test at the client imppd
/// sees alice's state there as it changes. The client's route to example.test is a dead
/// end, so alice's state can only come through the list. Bad `list=` values stop imppd
/// with a message.
#[test]
fn an_account_subscribes_to_its_list_at_another_imppd() {
    let dir = Dir::new("list-client");
    let db = dir.db();
    for user in ["alice", "bob", "carol"] {
        add_user(&db, user);
    }
    let buddies = format!("sip:buddies@{DOMAIN}");
    assert_ok(&list(
        &db,
        &[
            "add",
            &buddies,
            "--entry",
            &format!("sip:alice@{DOMAIN}"),
            "--entry",
            &format!("sip:carol@{DOMAIN}"),
        ],
    ));
    let mut server = Server::start_on(&db, free_port(), &["--list-batch-interval", "0"]);
    let mut alice = Client::new(server.addr(), "alice");
    let r = alice.publish(
        "Expires: 600\r\n",
        Some(&pidf(&format!("sip:alice@{DOMAIN}"), "at her desk")),
    );
    assert_eq!(r.status(), Some(200), "{r:?}");

    // Bad list= values: refused before anything starts (exit 2), or at start (exit 1).
    let account = format!(
        "sip:bob@{DOMAIN},password=bob-pw,registrar=udp:127.0.0.1:{}",
        server.port
    );
    for (list, code, says) in [
        ("not a uri", 2, "list=not a uri"),
        (
            "presence.winfo:sip:buddies@example.test",
            2,
            "cannot be mirrored",
        ),
        ("sip:mine@client.test", 1, "own domain"),
    ] {
        let out = imppd(&[
            "--domain",
            "client.test",
            "--db",
            "none",
            "--open",
            "--listen",
            &format!("udp:127.0.0.1:{}", free_port()),
            "--account",
            &format!("{account},list={list}"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{list}: {stderr}");
        assert!(stderr.contains(says), "{list}: {stderr}");
    }

    let client_db = dir.0.join("client.db");
    let mut client = Server::start_on(
        &client_db,
        free_port(),
        &[
            "--open",
            "--domain",
            "client.test",
            "--policy",
            "allow",
            "--route",
            "example.test=udp:127.0.0.1:1",
            "--account",
            &format!("{account},list={buddies}"),
        ],
    );

    // dave of client.test watches alice at the client imppd.
    let mut dave = Client::new(client.addr(), "dave");
    dave.domain = "client.test".into();
    let alice_uri = format!("sip:alice@{DOMAIN}");
    let request = dave.request(
        "SUBSCRIBE",
        &alice_uri,
        &format!("<{alice_uri}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    let r = dave.transact(&request);
    assert!(matches!(r.status(), Some(200 | 202)), "{r:?}");
    assert!(
        notified(&mut dave, "at her desk", 4),
        "dave never saw alice 'at her desk':\n{}",
        client.log.lock().unwrap()
    );

    // A change at example.test reaches dave through the list.
    let r = alice.publish(
        "Expires: 600\r\n",
        Some(&pidf(&format!("sip:alice@{DOMAIN}"), "in a meeting")),
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert!(
        notified(&mut dave, "in a meeting", 4),
        "dave never saw alice 'in a meeting'"
    );
    client.stop();
    server.stop();
}

/// A phone's list subscription survives an imppd restart on the same `--db`: after SIGTERM
/// and a new imppd, the phone (a small UDP client here) gets a full-state NOTIFY in the same
/// dialog with a higher RLMI version and CSeq, and its refresh is answered 200.
#[test]
fn a_list_subscription_survives_an_imppd_restart() {
    let dir = Dir::new("rls-restart");
    let buddies = format!("sip:buddies@{DOMAIN}");
    assert_ok(&list(
        &dir.db(),
        &[
            "add",
            &buddies,
            "--entry",
            &format!("sip:alice@{DOMAIN}"),
            "--entry",
            &format!("sip:carol@{DOMAIN}"),
        ],
    ));
    let port = free_port();
    let mut server = Server::start_on(&dir.db(), port, &["--open"]);
    let mut phone = Client::new(server.addr(), "bob");
    let call_id = token();
    let subscribe = |phone: &Client, to: &str| {
        phone.request(
            "SUBSCRIBE",
            &buddies,
            to,
            &call_id,
            "Event: presence\r\nExpires: 600\r\nSupported: eventlist\r\nAccept: multipart/related, application/rlmi+xml, application/pidf+xml\r\n",
            None,
        )
    };
    let r = phone.transact(&subscribe(&phone, &format!("<{buddies}>")));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let local_tag = r.to().unwrap().tag().unwrap().to_string();
    let rlmi = |m: &impp::sip::SipMessage| {
        let ct = m.header("Content-Type").unwrap();
        impp::sip::list_body::ListBody::parse(ct, m.body(), &impp::doc::Limits::default())
            .unwrap()
            .rlmi
    };
    let first = phone.next_request("NOTIFY");
    let before = rlmi(&first);
    assert!(before.full_state);
    // Once the list dialog is in the store (written behind), restart imppd.
    wait_stored(&dir.db(), "list_dialogs", 1, "the list dialog");
    server.stop();
    let mut server = Server::start_on(&dir.db(), port, &["--open"]);
    let again = phone.next_request("NOTIFY");
    assert_eq!(again.call_id().unwrap(), call_id);
    assert_eq!(again.from().unwrap().tag(), Some(local_tag.as_str()));
    let after = rlmi(&again);
    assert!(after.full_state);
    assert_eq!(after.resources.len(), 2);
    assert!(
        after.version > before.version,
        "{} after {}",
        after.version,
        before.version
    );
    assert!(again.cseq().unwrap().seq > first.cseq().unwrap().seq);
    let r = phone.transact(&subscribe(&phone, &format!("<{buddies}>;tag={local_tag}")));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let refreshed = rlmi(&phone.next_request("NOTIFY"));
    assert!(refreshed.full_state);
    assert_eq!(refreshed.version, after.version + 1);
    server.stop();
}
