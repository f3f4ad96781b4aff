//! sipp (Debian package `sip-tester`) runs of the scenarios in `tests/sip/`, as a client of a
//! server under test or as a user agent waiting for requests, with a time limit and sipp's
//! message log kept for the test to read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::kamailio::DOMAIN;

pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip")
}

/// sipp's screen goes to a file: a pipe nobody reads could fill up and stall it.
fn screen(dir: &Path, log_name: &str) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join(format!("{log_name}.screen"))).unwrap())
}

/// One sipp run of a scenario (one call).
pub struct Sipp {
    cmd: Command,
    scenario: String,
    log: PathBuf,
}

impl Sipp {
    /// `scenario` (a file in tests/sip/) against `target`, with `-set user` and
    /// `-set domain`; sipp's messages are logged to `<dir>/<log_name>.log`.
    pub fn new(scenario: &str, target: SocketAddr, user: &str, dir: &Path, log_name: &str) -> Sipp {
        let log = dir.join(format!("{log_name}.log"));
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenarios().join(scenario))
            .args(["-set", "user", user, "-set", "domain", DOMAIN])
            // A port of its own: sipp's -p 0 takes 5060 when that is free, which two tests
            // running at once would share.
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &super::kamailio::free_port().to_string(),
            ])
            .args(["-m", "1"])
            .args(["-timeout", "30", "-timeout_error", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&log)
            .arg(target.to_string())
            .current_dir(dir)
            .stdout(screen(dir, log_name))
            .stderr(screen(dir, &format!("{log_name}.err")));
        Sipp {
            cmd,
            scenario: scenario.to_string(),
            log,
        }
    }

    /// A user agent on `port` that waits for the requests of `scenario` (no call of its own).
    pub fn listener(scenario: &str, port: u16, dir: &Path, log_name: &str) -> Sipp {
        let log = dir.join(format!("{log_name}.log"));
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenarios().join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-timeout", "30", "-timeout_error", "-nostdin"])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&log)
            .current_dir(dir)
            .stdout(screen(dir, log_name))
            .stderr(screen(dir, &format!("{log_name}.err")));
        Sipp {
            cmd,
            scenario: scenario.to_string(),
            log,
        }
    }

    pub fn set(mut self, name: &str, value: &str) -> Sipp {
        self.cmd.args(["-set", name, value]);
        self
    }

    /// More of sipp's own arguments (`-t t1`, `-oocsf FILE`; a later `-m` wins).
    pub fn args(mut self, args: &[&str]) -> Sipp {
        self.cmd.args(args);
        self
    }

    /// Digest credentials for the scenario's `[authentication]`.
    pub fn auth(mut self, user: &str, password: &str) -> Sipp {
        self.cmd.args(["-au", user, "-ap", password]);
        self
    }

    /// Runs to the end; panics with sipp's screen when the call failed.
    pub fn run(self) -> SippLog {
        self.spawn().wait()
    }

    pub fn spawn(mut self) -> Running {
        let child = match self.cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run sipp ({e}): install the Debian package sip-tester (.ci/run does)"
            ),
        };
        Running {
            child,
            scenario: self.scenario,
            log: self.log,
        }
    }
}

/// A sipp run in the background, killed if dropped before it ends.
pub struct Running {
    child: Child,
    scenario: String,
    log: PathBuf,
}

impl Running {
    /// Kills sipp with SIGKILL (its sockets close with it) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// sipp's message log so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 40 s) until the message log contains `text`.
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.messages().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "sipp {} never saw {text:?}; its messages:\n{}",
            self.scenario,
            self.messages()
        );
    }

    /// Waits for the end of the run; panics with sipp's screen when the call failed.
    pub fn wait(mut self) -> SippLog {
        let deadline = Instant::now() + Duration::from_secs(45);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "sipp {} did not finish; its messages:\n{}",
                    self.scenario,
                    self.messages()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let messages = self.messages();
        let read =
            |ext: &str| std::fs::read_to_string(self.log.with_extension(ext)).unwrap_or_default();
        let (screen, errors) = (read("screen"), read("err.screen"));
        assert!(
            status.success(),
            "sipp {} failed with {status}:\n{screen}\n{errors}\nmessages:\n{messages}",
            self.scenario,
        );
        SippLog(messages)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The SIP messages a finished sipp run sent and received, as logged by `-trace_msg`.
pub struct SippLog(pub String);

impl SippLog {
    /// The received requests of `method`, each as its text (start line, headers, body).
    pub fn received(&self, method: &str) -> Vec<String> {
        received_in(&self.0, method)
    }
}

/// The requests of `method` received in a sipp message log.
pub fn received_in(log: &str, method: &str) -> Vec<String> {
    // sipp separates entries with a dashed line followed by the event ("UDP message received").
    log.split("----------------------------------------------- ")
        .filter(|entry| entry.contains("message received"))
        .filter_map(|entry| {
            let start = entry.find(&format!("{method} sip:"))?;
            Some(entry[start..].to_string())
        })
        .collect()
}
