//! imppd on the wire, driven by sipp (Debian package `sip-tester`) with the project's own
//! scenarios in `tests/sip/`: REGISTER, PUBLISH, SUBSCRIBE/NOTIFY and MESSAGE, each with
//! digest authentication, over UDP and TCP; a message stored for an offline user reaches it
//! when it registers, also after imppd restarts; users are managed with `imppd user`, and
//! authorization rules with `imppd rule` (closed by default: a watcher of another domain
//! waits for a decision), both picked up by a running server on SIGHUP.
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored: i64 = rusqlite::Connection::open(dir.db())
            .and_then(|c| c.query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0)))
            .unwrap_or(0);
        if stored == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the subscription never reached the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
    server.hup_until("rules reloaded (2 added or changed, 0 removed)");
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
    server.hup_until("rules reloaded (0 added or changed, 1 removed)");
    assert!(next_state(&mut carol).starts_with("pending"));
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
            "--listen",
            "tls:127.0.0.1:0",
            "need a TLS certificate and key",
        ),
        (
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-cert and --tls-key go together",
        ),
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
        ],
    );
    let log = node.log();
    assert!(
        log.contains("connections 4096 (8 per address), rate limit 50/s bursts 100"),
        "{log}"
    );
    node.stop();
}
