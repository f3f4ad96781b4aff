//! Presence at the edge with watchers that know nothing of it (issue 19, part 5): sipp,
//! baresip and PJSIP's pjsua2 follow alice's presence agent from the server to her device
//! and back. Real processes on loopback, each started here and stopped by its PID:
//!
//! - the server: imppd for example.test with `--migrate proxy`, `--http` (XCAP), users alice
//!   and bob, a rule of alice allowing bob, and `--subscription-expiry 5/10/10`: baresip and
//!   pjsua2 ask for 600 s (they cannot be told otherwise) and are granted 10, so they
//!   refresh within 10 s (sipp's scenario asks for 10 itself);
//! - the device: imppd (domain device.test) whose account `sip:alice@example.test` serves
//!   (`serve=yes,keepalive=30,xcap=...`, TCP to the server, pinging every 2 s as the server's
//!   `Flow-Timer` asks), alice's presence set there
//!   with `imppd ctl publish` (which the account also publishes uplink); for baresip and
//!   pjsua2 with `--subscription-expiry 5/10/10` too, so that their refreshes of the
//!   device's dialog pass through the server while the device serves them;
//! - the watcher, bob, over UDP with digest, subscribed to alice *before* the device
//!   registers.
//!
//! Each test shows: served by the server; the device registers and alice's state (published
//! on the device, uplink) reaches the watcher through the server; at the watcher's next
//! refresh it is moved (`terminated;reason=deactivated`), subscribes again, and that
//! SUBSCRIBE is proxied to the device, whose NOTIFYs (relayed by the server: the device's
//! Via on them) carry alice's state as the device composes it, then a change made on the
//! device (the server counts the dialog handed over, the device holds bob's subscription).
//! Then the device is killed with SIGKILL: the watcher gets
//! `terminated;reason=deactivated`, subscribes again, is served by the server (no NOTIFY
//! with the device's Via since) with the last state the device published (no change lost),
//! then sees a change made at the server. The time from the SIGKILL until the watcher is
//! served by the server again (its NOTIFY with that state) is printed.
//!
//! What each watcher does on `deactivated` is its own, and is what is asserted: sipp does
//! what its scenario says (subscribes again at once); baresip 1.0.0's presence module waits
//! 5 s ("will retry in 5 secs") before it subscribes again, whatever RFC 6665 §4.1.3
//! suggests; pjsua2 (PJSIP 2.15) subscribes again after 0.5 s.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output as ProcessOutput, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::baresip::{installed, terminate, wait_until, Output, Phone};
use common::imppd::{password, Imppd, IMPPD};
use common::kamailio::{free_port, TempDir, DOMAIN};
use common::sipp::{received_in, Sipp};

fn alice() -> String {
    format!("sip:alice@{DOMAIN}")
}

fn ctl(db: &Path, args: &[&str]) -> ProcessOutput {
    Command::new(IMPPD)
        .arg("ctl")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: ProcessOutput) -> String {
    assert!(
        out.status.success(),
        "imppd ctl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The server and, once started, alice's device.
struct Edge {
    server: Imppd,
    xcap: String,
    device: Option<Imppd>,
}

impl Edge {
    fn start() -> Edge {
        let http = free_port();
        let server = Imppd::start_prepared(
            &["alice", "bob"],
            |db| {
                let out = Command::new(IMPPD)
                    .args(["rule", "add", &alice(), &format!("sip:bob@{DOMAIN}")])
                    .args(["allow", "--db"])
                    .arg(db)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
            },
            &[
                "--http",
                &format!("127.0.0.1:{http}"),
                "--migrate",
                "proxy",
                "--subscription-expiry",
                "5/10/10",
                // The device's own keepalive is 30 s; the server's 200 asks for keep-alives
                // every 2 s (Flow-Timer: half the flow timeout) and the device pings that
                // often, so its flow stays alive through every test, which would lose its
                // watchers mid-way if the pings did not come or did not count.
                "--flow-timeout",
                "5",
            ],
        );
        Edge {
            server,
            xcap: format!("http://127.0.0.1:{http}/xcap-root"),
            device: None,
        }
    }

    /// Starts alice's device (with `extra` arguments) and waits until it registered and read
    /// alice's rules from the server.
    fn start_device(&mut self, extra: &[&str]) {
        let account = format!(
            "{},password={},registrar=tcp:{},serve=yes,keepalive=30,xcap={}",
            alice(),
            password("alice"),
            self.server.addr(),
            self.xcap
        );
        let mut args = vec!["--account", account.as_str()];
        args.extend_from_slice(extra);
        let device = Imppd::start_domain("device.test", &[], |_| {}, &args);
        let loaded = wait_until(Duration::from_secs(10), || {
            device.log().contains("rules loaded from the server")
        });
        assert!(loaded, "the device read no rules:\n{}", device.log());
        self.device = Some(device);
    }

    fn device(&self) -> &Imppd {
        self.device.as_ref().expect("the device runs")
    }

    /// alice's state on the device (and uplink, through the device's account).
    fn publish_on_device(&self, basic: &str, note: &str) {
        ok(ctl(
            &self.device().db(),
            &["publish", &alice(), basic, note],
        ));
    }

    /// alice's state at the server (a publication of the server's own, next to the one the
    /// device left there).
    fn publish_at_server(&self, basic: &str, note: &str) {
        ok(ctl(&self.server.db(), &["publish", &alice(), basic, note]));
    }

    /// Kills the device with SIGKILL (its connection to the server closes with it); when.
    fn kill_device(&mut self) -> Instant {
        let device = self.device.take().expect("the device runs");
        let killed = Instant::now();
        // Imppd's drop is SIGKILL by PID, then wait.
        drop(device);
        killed
    }

    /// The server's counters.
    fn stats(&self) -> serde_json::Value {
        let out = ok(ctl(&self.server.db(), &["--json", "stats"]));
        serde_json::from_str(&out).unwrap()
    }

    /// Checks that the device serves bob now: the server counts one dialog handed over, and
    /// the device holds bob's subscription to alice, active.
    fn served_by_the_device(&self) {
        let s = self.stats();
        assert_eq!(s["handed_over_dialogs"], 1, "{s}");
        let subs = ok(ctl(
            &self.device().db(),
            &["--json", "subscriptions", &alice()],
        ));
        let subs: serde_json::Value = serde_json::from_str(&subs).unwrap();
        let bob = format!("sip:bob@{DOMAIN}");
        let held = subs
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["watcher"] == bob.as_str() && s["state"] == "active");
        assert!(
            held,
            "the device holds no active subscription of bob: {subs}"
        );
    }

    /// Checks that the server serves bob again: nothing handed over, one take-back.
    fn served_by_the_server(&self) {
        let s = self.stats();
        assert_eq!(s["handed_over_dialogs"], 0, "{s}");
        assert!(s["take_backs"].as_u64().unwrap() >= 1, "{s}");
    }

    /// The Via a request the device sent carries (relayed by the server, it is the second).
    fn device_via(&self) -> String {
        format!("SIP/2.0/TCP {}", self.device().addr())
    }
}

/// The times of a take-back as a watcher lived it, from the SIGKILL.
struct Back {
    deactivated: Duration,
    served: Duration,
}

fn report(peer: &str, back: &Back) {
    println!(
        "edge peers: {peer}: SIGKILL of the device to its deactivated NOTIFY {} ms, to being \
         served by the server again {} ms",
        back.deactivated.as_millis(),
        back.served.as_millis()
    );
}

/// Polls `seen` every 2 ms for up to `secs` seconds; how long it took.
fn poll(since: Instant, secs: u64, mut seen: impl FnMut() -> bool) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if seen() {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The SIP messages in a trace, each from its start line on; `opens` tells the line before
/// each (the trace's own header of a message).
fn messages(trace: &str, opens: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    for line in trace.split_inclusive('\n') {
        if opens(line.trim_end()) {
            starts.push(at + line.len());
        }
        at += line.len();
    }
    starts.push(trace.len());
    starts.windows(2).map(|w| &trace[w[0]..w[1]]).collect()
}

/// The NOTIFYs in `messages` whose Subscription-State starts with `state`.
fn notifies<'m>(messages: &[&'m str], state: &str) -> Vec<&'m str> {
    messages
        .iter()
        .filter(|m| m.trim_start().starts_with("NOTIFY "))
        .filter(|m| m.contains(&format!("Subscription-State: {state}")))
        .copied()
        .collect()
}

#[test]
fn sipp_follows_the_presence_agent_to_the_device_and_back() {
    let dir = TempDir::new("edge-peers-sipp");
    let mut edge = Edge::start();
    let bob = Sipp::new(
        "edge_peer_watcher.xml",
        edge.server.addr(),
        "bob",
        dir.path(),
        "bob",
    )
    .set("target", "alice")
    .auth("bob", &password("bob"))
    // The device's first NOTIFY may overtake its 200 (see the scenario).
    .args(&["-aa"])
    .spawn();
    // Served by the server first.
    bob.wait_for("NOTIFY sip:");
    assert_eq!(edge.stats()["hand_overs"], 0);

    // The device registers; alice's state there goes uplink and reaches bob through the
    // server; at bob's refresh he moves to the device.
    edge.start_device(&[]);
    edge.publish_on_device("open", "on-the-device");
    let wait = Instant::now() + Duration::from_secs(20);
    while received_in(&bob.messages(), "NOTIFY")
        .iter()
        .filter(|n| n.contains("on-the-device"))
        .count()
        < 2
    {
        assert!(Instant::now() < wait, "{}", bob.messages());
        std::thread::sleep(Duration::from_millis(20));
    }
    let via = edge.device_via();
    let notifies = received_in(&bob.messages(), "NOTIFY");
    let moved = notifies
        .iter()
        .position(|n| n.contains("reason=deactivated"))
        .expect("moved at the refresh");
    let from_device = &notifies[moved + 1];
    assert!(
        from_device.contains(&via) && from_device.contains("on-the-device"),
        "the device's NOTIFY, relayed by the server: {from_device}"
    );
    assert!(
        notifies[..moved].iter().all(|n| !n.contains(&via)),
        "before the move the server notified"
    );
    edge.served_by_the_device();

    // A change made on the device.
    edge.publish_on_device("closed", "in-a-meeting");
    bob.wait_for("in-a-meeting");

    // SIGKILL: deactivated, subscribed again, served by the server with the last state.
    let killed = edge.kill_device();
    let count = |text: &str| {
        received_in(&bob.messages(), "NOTIFY")
            .iter()
            .filter(|n| n.contains(text))
            .count()
    };
    let deactivated = poll(killed, 10, || count("reason=deactivated") >= 2)
        .unwrap_or_else(|| panic!("not deactivated:\n{}", edge.server.log()));
    let served = poll(killed, 10, || count("in-a-meeting") >= 2)
        .unwrap_or_else(|| panic!("not served again:\n{}", bob.messages()));
    let back = Back {
        deactivated,
        served,
    };
    report("sipp", &back);
    assert!(back.served < Duration::from_secs(5), "{:?}", back.served);
    edge.served_by_the_server();
    let notifies = received_in(&bob.messages(), "NOTIFY");
    let last = notifies.last().unwrap();
    assert!(
        last.contains("in-a-meeting") && !last.contains(&via),
        "the server's NOTIFY: {last}"
    );

    // A change made at the server.
    edge.publish_at_server("open", "back-at-the-server");
    let log = bob.wait();
    let notifies = log.received("NOTIFY");
    assert!(
        notifies.last().unwrap().contains("back-at-the-server"),
        "{notifies:?}"
    );
}

/// How a watcher's trace opens each SIP message (see [`messages`]).
type Opens = fn(&str) -> bool;

/// baresip's `-s` trace: a line `PROTO SRC -> DST` before each message.
fn baresip_opens(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() == 4 && ["UDP", "TCP", "TLS"].contains(&words[0]) && words[2] == "->"
}

/// PJSIP's log: `RX 540 bytes Request msg NOTIFY/cseq=1 (...) from UDP ...:` (or TX, or a
/// Response) before each message.
fn pjsip_opens(line: &str) -> bool {
    line.contains(" bytes Request msg ") || line.contains(" bytes Response msg ")
}

/// A real watcher, as its output (with its SIP trace) shows it.
struct Watcher {
    name: &'static str,
    out: Output,
    opens: Opens,
    /// The earliest and the latest it subscribes again after a `deactivated` NOTIFY.
    resubscribes: (Duration, Duration),
}

impl Watcher {
    fn text(&self) -> String {
        self.out.text()
    }

    fn mark(&self) -> usize {
        self.out.len()
    }

    /// The NOTIFYs received since `since` in the state `state` (a prefix).
    fn notifies_since(&self, since: usize, state: &str) -> Vec<String> {
        let text = self.text();
        let tail = text.get(since..).unwrap_or_default();
        notifies(&messages(tail, self.opens), state)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Waits up to `secs` for a NOTIFY since `since` in `state` holding `text`; when, from
    /// `from`.
    fn notified(
        &self,
        since: usize,
        state: &str,
        text: &str,
        from: Instant,
        secs: u64,
    ) -> Result<Duration, String> {
        poll(from, secs, || {
            self.notifies_since(since, state)
                .iter()
                .any(|n| n.contains(text))
        })
        .ok_or_else(|| {
            format!(
                "{}: no NOTIFY {state} with {text:?} within {secs} s",
                self.name
            )
        })
    }

    /// Waits up to `secs` for a new SUBSCRIBE (outside a dialog) it sends since `since`;
    /// when, from `from`.
    fn subscribed(&self, since: usize, from: Instant, secs: u64) -> Result<Duration, String> {
        let initial = format!("SUBSCRIBE sip:alice@{DOMAIN} ");
        poll(from, secs, || {
            let text = self.text();
            let tail = text.get(since..).unwrap_or_default();
            messages(tail, self.opens)
                .iter()
                .any(|m| m.trim_start().starts_with(&initial))
        })
        .ok_or_else(|| format!("{}: no new SUBSCRIBE within {secs} s", self.name))
    }
}

/// The flow every softphone goes through, once it watches alice at the server (its first
/// NOTIFY came). `shows(status)` checks what the phone shows of alice (`None`: nothing but
/// the trace to check).
fn follow(
    edge: &mut Edge,
    w: &Watcher,
    shows: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<Back, String> {
    // The device registers; alice's state there goes uplink and reaches the watcher through
    // the server.
    let before = w.mark();
    edge.start_device(&["--subscription-expiry", "5/10/10"]);
    edge.publish_on_device("open", "on-the-device");
    let via = edge.device_via();
    w.notified(before, "active", "on-the-device", Instant::now(), 10)?;
    shows("online")?;
    // At its next refresh (within 10 s) it is moved.
    let started = Instant::now();
    w.notified(before, "terminated;reason=deactivated", "", started, 15)?;
    let moved_at = started.elapsed();
    let after_move = w.text().rfind("reason=deactivated").unwrap();
    let again = w.subscribed(after_move, started, 10)? - moved_at;
    let (earliest, latest) = w.resubscribes;
    println!(
        "edge peers: {}: moved at its refresh ({} ms after it showed the device's state); \
         subscribed again {} ms after the deactivated NOTIFY",
        w.name,
        moved_at.as_millis(),
        again.as_millis()
    );
    if again < earliest || again > latest {
        return Err(format!(
            "{}: subscribed again {again:?} after deactivated, expected {earliest:?} to {latest:?}",
            w.name
        ));
    }
    // The new SUBSCRIBE was proxied to the device: its NOTIFYs come through the server.
    w.notified(after_move, "active", "on-the-device", Instant::now(), 10)?;
    let from_device = w.notifies_since(after_move, "active");
    if !from_device.iter().all(|n| n.contains(&via)) {
        return Err(format!("not the device's NOTIFY: {from_device:?}"));
    }
    edge.served_by_the_device();
    shows("online")?;
    // A change made on the device.
    edge.publish_on_device("closed", "in-a-meeting");
    w.notified(after_move, "active", "in-a-meeting", Instant::now(), 10)?;
    shows("offline")?;

    // SIGKILL: deactivated, subscribed again, served by the server with the last state.
    let mark = w.mark();
    let killed = edge.kill_device();
    let deactivated = w.notified(mark, "terminated;reason=deactivated", "", killed, 10)?;
    let served = w.notified(mark, "active", "in-a-meeting", killed, 15)?;
    let back = Back {
        deactivated,
        served,
    };
    report(w.name, &back);
    if back.served < back.deactivated + earliest || back.served > back.deactivated + latest {
        return Err(format!(
            "{}: served again {:?} after the SIGKILL, deactivated after {:?}",
            w.name, back.served, back.deactivated
        ));
    }
    let served_by = w.notifies_since(mark, "active");
    if served_by.iter().any(|n| n.contains(&via)) {
        return Err(format!("a NOTIFY of the dead device: {served_by:?}"));
    }
    edge.served_by_the_server();
    shows("offline")?;

    // A change made at the server.
    edge.publish_at_server("open", "back-at-the-server");
    w.notified(mark, "active", "back-at-the-server", Instant::now(), 10)?;
    shows("online")?;
    Ok(back)
}

const SHORT: Duration = Duration::from_secs(10);

#[test]
fn baresip_follows_the_presence_agent_to_the_device_and_back() {
    if let Err(e) = installed() {
        panic!("{e}");
    }
    let mut edge = Edge::start();
    let mut bob = Phone::start("bob", "alice", edge.server.addr()).unwrap();
    let watcher = Watcher {
        name: "baresip",
        out: bob.out.clone(),
        opens: baresip_opens,
        // presence.so says "will retry in 5 secs" after deactivated, and does.
        resubscribes: (Duration::from_millis(4800), Duration::from_millis(6500)),
    };
    let result = (|| -> Result<Back, String> {
        bob.expect(0, "registered successfully", SHORT)?;
        // presence.so after the REGISTER (see tests/softphone.rs); it subscribes to alice.
        let since = bob.mark();
        bob.cmd("/insmod presence.so")?;
        bob.expect(since, "loaded module presence.so", SHORT)?;
        watcher.notified(since, "active", "", Instant::now(), 10)?;
        bob.sees("alice", "Offline", SHORT)?;
        let mut shows = |status: &str| {
            let shown = if status == "online" {
                "Online"
            } else {
                "Offline"
            };
            bob.sees("alice", shown, SHORT)
        };
        let back = follow(&mut edge, &watcher, &mut shows)?;
        if !watcher.text().contains("deactivated; will retry in 5 secs") {
            return Err("baresip did not say when it subscribes again".into());
        }
        Ok(back)
    })();
    if let Err(why) = result {
        panic!(
            "baresip: {why}\n===== server =====\n{}\n===== baresip =====\n{}",
            edge.server.log(),
            watcher.text()
        );
    }
    let _ = bob.quit();
}

/// pjsua2 as bob (tests/peers/pjsua2_watcher.py), stopped by PID when dropped.
struct Pjsua2 {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Output,
}

impl Pjsua2 {
    fn start(server: std::net::SocketAddr) -> Pjsua2 {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let found = Command::new(&python)
            .args(["-c", "import pjsua2"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "pjsua2 (PJSIP's Python binding) is needed: {python} -m pip install pjsua2-python \
             (.ci/run does)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pjsua2_watcher.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--server", &server.to_string(), "--user", "bob"])
            .args(["--password", &password("bob"), "--buddy", "alice"])
            .args(["--domain", DOMAIN, "--seconds", "90"])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Output::default();
        out.collect(child.stdout.take().unwrap());
        out.collect(child.stderr.take().unwrap());
        Pjsua2 {
            stdin: child.stdin.take(),
            child,
            out,
        }
    }

    /// What pjsua2 reported of alice last: `(status, note)` of its last `BUDDY` line.
    fn last_state(&self) -> Option<(String, String)> {
        let text = self.out.text();
        let line = text.lines().rev().find(|l| l.starts_with("BUDDY "))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        Some((words.get(3)?.to_string(), words.get(4)?.to_string()))
    }

    /// Asks it to un-subscribe and quit; then by PID.
    fn quit(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        if !wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            terminate(&mut self.child, Duration::from_secs(2));
        }
    }
}

impl Drop for Pjsua2 {
    fn drop(&mut self) {
        drop(self.stdin.take());
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

#[test]
fn pjsua2_follows_the_presence_agent_to_the_device_and_back() {
    let mut edge = Edge::start();
    let mut bob = Pjsua2::start(edge.server.addr());
    let watcher = Watcher {
        name: "pjsua2",
        out: bob.out.clone(),
        opens: pjsip_opens,
        // PJSIP subscribes again 0.5 s after a deactivated NOTIFY (501 ms on the wire).
        resubscribes: (Duration::from_millis(300), Duration::from_millis(2000)),
    };
    let result = (|| -> Result<Back, String> {
        bob.out.expect(0, "REG 200", SHORT)?;
        watcher.notified(0, "active", "", Instant::now(), 10)?;
        let mut shows = |status: &str| {
            let seen = wait_until(SHORT, || {
                bob.last_state().is_some_and(|(shown, _)| shown == status)
            });
            seen.then_some(())
                .ok_or_else(|| format!("pjsua2 shows alice {:?}, not {status}", bob.last_state()))
        };
        follow(&mut edge, &watcher, &mut shows)
    })();
    if let Err(why) = result {
        panic!(
            "pjsua2: {why}\n===== server =====\n{}\n===== pjsua2 =====\n{}",
            edge.server.log(),
            watcher.text()
        );
    }
    // The notes pjsua2 showed, in order: the device's, its change, the server's.
    let text = watcher.text();
    let notes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("BUDDY ACTIVE "))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    let mut shown: Vec<&str> = notes.iter().copied().filter(|n| *n != "-").collect();
    shown.dedup();
    assert_eq!(
        shown,
        ["on-the-device", "in-a-meeting", "back-at-the-server"],
        "{notes:?}"
    );
    bob.quit();
}

/// `--subscription-expiry` bounds imppd refuses before anything starts (exit 2).
#[test]
fn imppd_refuses_subscription_expiry_bounds_that_cannot_work() {
    for bad in [
        "5/10",
        "5/10/8",
        "20/10/30",
        "0/0/10",
        "a/10/20",
        "5/10/20/30",
    ] {
        let out = Command::new(IMPPD)
            .args(["--db", "none", "--open", "--domain", DOMAIN, "--listen"])
            .arg(format!("udp:127.0.0.1:{}", free_port()))
            .args(["--subscription-expiry", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--subscription-expiry {bad}: expected MIN/DEFAULT/MAX"
            )),
            "{bad}: {stderr}"
        );
    }
}
