//! imppd nodes started by a test: the crate's own binary on a free 127.0.0.1 port (UDP and
//! TCP) with a SQLite store in a temporary directory, ready once it prints `imppd ready`,
//! stopped by PID (SIGTERM) when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kamailio::{free_port, TempDir, DOMAIN};

pub const IMPPD: &str = env!("CARGO_BIN_EXE_imppd");

/// The password `add_user` gives a user: its name followed by `-pw`.
pub fn password(name: &str) -> String {
    format!("{name}-pw")
}

/// `imppd user add sip:<name>@DOMAIN` into the store `db`.
pub fn add_user(db: &Path, name: &str) {
    add_user_of(db, DOMAIN, name)
}

/// `imppd user add sip:<name>@<domain>` into the store `db`.
pub fn add_user_of(db: &Path, domain: &str, name: &str) {
    let out = Command::new(IMPPD)
        .args(["user", "add", &format!("sip:{name}@{domain}")])
        .args(["--password", &password(name), "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imppd user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running imppd.
pub struct Imppd {
    child: Child,
    port: u16,
    dir: TempDir,
    log: Arc<Mutex<String>>,
}

impl Imppd {
    /// A store with `users` (see `add_user`) and an imppd serving DOMAIN on it with the given
    /// extra arguments.
    pub fn start(users: &[&str], extra: &[&str]) -> Imppd {
        Imppd::start_prepared(users, |_| {}, extra)
    }

    /// As `start`, with `prepare` run on the store after the users are added and before
    /// imppd starts (e.g. `imppd list add`, which a running imppd takes only on SIGHUP).
    pub fn start_prepared(users: &[&str], prepare: impl FnOnce(&Path), extra: &[&str]) -> Imppd {
        Imppd::start_domain(DOMAIN, users, prepare, extra)
    }

    /// As `start_prepared`, serving `domain` (its users are of `domain`).
    pub fn start_domain(
        domain: &str,
        users: &[&str],
        prepare: impl FnOnce(&Path),
        extra: &[&str],
    ) -> Imppd {
        let dir = TempDir::new("imppd");
        let db = dir.path().join("imppd.db");
        for user in users {
            add_user_of(&db, domain, user);
        }
        prepare(&db);
        let port = free_port();
        let mut child = Command::new(IMPPD)
            .args(["--domain", domain])
            .args(["--listen", &format!("udp:127.0.0.1:{port}")])
            .args(["--listen", &format!("tcp:127.0.0.1:{port}")])
            .arg("--db")
            .arg(&db)
            // Debug lines for a failure's report, unless a config file names its own level
            // (a flag would win over it, also at a reload).
            .args(if extra.contains(&"--config") {
                &[][..]
            } else {
                &["--log-level", "debug"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut node = Imppd {
            child,
            port,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !node.log().contains("imppd ready") {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("imppd exited with {status}:\n{}", node.log());
            }
            assert!(
                Instant::now() < deadline,
                "imppd did not become ready:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("imppd.db")
    }

    /// What imppd has logged so far (stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for a clean exit (panics if there is none within 10 s).
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Sends imppd SIGTERM and waits for it to exit successfully (it may have exited already);
/// panics if it does not exit within 10 s or exits with a failure.
pub fn terminate(child: &mut Child) {
    if let Ok(Some(status)) = child.try_wait() {
        assert!(status.success(), "imppd exited with {status}");
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "imppd exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("imppd did not stop on SIGTERM");
}

impl Drop for Imppd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
