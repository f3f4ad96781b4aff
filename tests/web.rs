//! The web buddy list (`examples/web/`) in a real browser: imppd serves the page and its
//! SIP WebSocket on one loopback port (`--listen ws:... --web-root examples/web`), and
//! `tests/web/buddy_list.mjs` drives headless Chromium (Debian's `chromium`, through npm
//! `playwright-core`) through it:
//!
//! - `two_pages`: alice and bob sign in (digest), see each other come online, change
//!   status (activity, note, offline) and see the change, sign out and in, chat, see "is
//!   typing" both ways (RFC 3994); bob closes his page, alice's messages are stored (202),
//!   and bob sees them, marked as such, when he signs in again;
//! - `page_and_softphone`: alice's page and carol on a baresip softphone watch each other
//!   and exchange messages.
//!
//! Screenshots go to `target/web-screenshots/`. Every step waits a bounded time and fails
//! the test when it does not happen. Without Chromium, node or the npm packages (`npm ci` in
//! `examples/web` and `tests/web`; `.ci/run` does both) the tests are skipped, unless `CI`
//! is set, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::baresip::{terminate, wait_until, Output, Phone};
use common::imppd::Imppd;
use common::kamailio::free_port;

/// One browser at a time: the machine is small, and Chromium is not.
static BROWSER: Mutex<()> = Mutex::new(());

/// The longest a whole scenario may take.
const RUN_LIMIT: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(15);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What the browser tests need and do not have; empty when all is there.
fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().is_file() {
        missing.push(format!(
            "{} (apt-get install chromium)",
            chromium().display()
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node".into());
    }
    for (dir, package) in [("examples/web", "sip.js"), ("tests/web", "playwright-core")] {
        let path = root().join(dir).join("node_modules").join(package);
        if !path.join("package.json").is_file() {
            missing.push(format!("{package} (npm ci --prefix {dir})"));
        }
    }
    missing
}

/// Whether to run: true when everything is installed; false (skip) when something is
/// missing and `CI` is unset; a failure when something is missing under CI.
fn ready(test: &str) -> bool {
    let missing = missing();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: missing {} (CI is set, so this is a failure, not a skip)",
        missing.join(", ")
    );
    eprintln!("{test}: SKIPPED, missing {}", missing.join(", "));
    false
}

fn screenshots() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-screenshots")
}

/// imppd with alice, bob and carol (passwords `<name>-pw`), UDP and TCP on one port, the
/// page and its WebSocket on another.
fn imppd() -> (Imppd, u16) {
    let web = free_port();
    let listen = format!("ws:127.0.0.1:{web}");
    let web_root = root().join("examples/web");
    let node = Imppd::start(
        &["alice", "bob", "carol"],
        &[
            "--listen",
            &listen,
            "--web-root",
            web_root.to_str().unwrap(),
        ],
    );
    (node, web)
}

/// The driver script running one scenario; stopped by PID when dropped.
struct Driver {
    child: Child,
    out: Output,
}

impl Driver {
    fn start(scenario: &str, web_port: u16) -> Driver {
        let mut child = Command::new("node")
            .arg(root().join("tests/web/buddy_list.mjs"))
            .arg(scenario)
            .env("IMPP_WEB_URL", format!("http://127.0.0.1:{web_port}/"))
            .env("IMPP_SCREENSHOTS", screenshots())
            .env("CHROMIUM", chromium())
            .current_dir(root().join("tests/web"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let out = Output::default();
        out.collect(child.stdout.take().unwrap());
        out.collect(child.stderr.take().unwrap());
        Driver { child, out }
    }

    /// Waits for the script to end within [`RUN_LIMIT`]: Ok when it passed every step.
    fn finish(&mut self) -> Result<(), String> {
        let mut status = None;
        wait_until(RUN_LIMIT, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("the browser script failed ({s})")),
            None => Err(format!(
                "the browser script did not end within {RUN_LIMIT:?}"
            )),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(3));
    }
}

/// Fails the test with everything that helps: the script's steps, imppd's log, baresip's.
fn fail(why: String, driver: &Driver, imppd: &Imppd, phone: Option<&Phone>) -> ! {
    let phone = phone.map(|p| format!("\n--- {}:\n{}", p.name, p.out.text()));
    panic!(
        "{why}\n--- browser script:\n{}\n--- imppd:\n{}{}\n(screenshots in {})",
        driver.out.text(),
        imppd.log(),
        phone.unwrap_or_default(),
        screenshots().display()
    );
}

#[test]
fn two_pages() {
    if !ready("two_pages") {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (mut imppd, web) = imppd();
    let mut driver = Driver::start("pages", web);
    if let Err(why) = driver.finish() {
        fail(why, &driver, &imppd, None);
    }
    let out = driver.out.text();
    assert!(out.contains("STEP done"), "{out}");
    // The page was served by imppd itself (one connection per file).
    assert!(imppd.log().contains("web page served"));
    imppd.stop();
}

#[test]
fn page_and_softphone() {
    if !ready("page_and_softphone") {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (mut imppd, web) = imppd();
    let mut carol = match Phone::start("carol", "alice", imppd.addr()) {
        Ok(phone) => phone,
        Err(e) => panic!("{e}"),
    };
    let setup = carol
        .expect(0, "registered successfully", SHORT)
        .and_then(|()| {
            // presence.so after REGISTER (see tests/softphone.rs: its first PUBLISH is
            // refused), then a publication of its own.
            let since = carol.mark();
            carol.cmd("/insmod presence.so")?;
            carol.expect(since, "loaded module presence.so", SHORT)?;
            carol.cmd("/presence_online")
        });
    let driver = Driver::start("softphone", web);
    let run = |carol: &mut Phone, driver: &mut Driver| -> Result<(), String> {
        setup.clone()?;
        // The page sees carol online, then carol sees alice online.
        driver.out.expect(0, "STEP sees-carol", SHORT * 2)?;
        carol.sees("alice", "Online", SHORT)?;
        let since = carol.mark();
        carol.cmd("/message hello from baresip")?;
        driver.finish()?;
        carol.expect(
            since,
            "sip:alice@example.test: \"hello from the web page\"",
            SHORT,
        )
    };
    let mut driver = driver;
    if let Err(why) = run(&mut carol, &mut driver) {
        fail(why, &driver, &imppd, Some(&carol));
    }
    drop(carol);
    imppd.stop();
}
