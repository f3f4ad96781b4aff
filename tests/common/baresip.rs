//! One headless baresip softphone (Debian package `baresip-core`) against an imppd started by
//! the test, configured from the templates in `tests/softphone/` (the ones tests/softphone.rs
//! uses): commands go to its stdin, its output (with the SIP trace, `-s`) is kept and waited
//! on. It quits by itself after 55 s (`-t`) whatever happens, and is stopped by PID when
//! dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kamailio::{TempDir, DOMAIN};

/// The baresip executable and its module directory; a clear failure when either is missing.
pub fn installed() -> Result<(PathBuf, PathBuf), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::split_paths(&path)
        .map(|d| d.join("baresip"))
        .find(|p| p.is_file())
        .ok_or("baresip is not installed: apt-get install baresip-core (.ci/run does)")?;
    let modules = [
        std::env::var_os("BARESIP_MODULES").map(PathBuf::from),
        Some(PathBuf::from("/usr/lib/baresip/modules")),
        Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/baresip/modules")),
        Some(PathBuf::from("/usr/lib64/baresip/modules")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.join("stdio.so").is_file())
    .ok_or("baresip's modules (stdio.so) not found: install baresip-core or set BARESIP_MODULES")?;
    Ok((binary, modules))
}

/// Output of a process, collected by reader threads (ANSI colours removed).
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub fn collect(&self, stream: impl Read + Send + 'static) {
        let out = self.0.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                let text = strip_ansi(&String::from_utf8_lossy(&line));
                out.lock().unwrap().push_str(&text);
                line.clear();
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits until the output after byte `since` contains `what`.
    pub fn expect(&self, since: usize, what: &str, timeout: Duration) -> Result<(), String> {
        let seen = wait_until(timeout, || {
            self.text().get(since..).is_some_and(|t| t.contains(what))
        });
        seen.then_some(())
            .ok_or_else(|| format!("no {what:?} within {timeout:?}"))
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A local port free for UDP and TCP together with the next one (baresip binds SIP/TLS on
/// port + 1).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port >= u16::MAX - 1 {
            continue;
        }
        let free = [port, port + 1].iter().all(|&p| {
            UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no two free ports in a row");
}

/// A running baresip of one user, watching one buddy.
pub struct Phone {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub out: Output,
    _dir: TempDir,
}

impl Phone {
    /// baresip as `user` (password `<user>-pw`) of DOMAIN registering with `server` over UDP,
    /// with `buddy` as its one contact.
    pub fn start(user: &str, buddy: &str, server: SocketAddr) -> Result<Phone, String> {
        let (binary, modules) = installed()?;
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/softphone");
        let dir = TempDir::new(&format!("baresip-{user}"));
        let port = free_port_pair();
        for template in ["config", "accounts", "contacts"] {
            let text = std::fs::read_to_string(templates.join(template)).unwrap();
            let text = text
                .replace("${LISTEN}", &format!("127.0.0.1:{port}"))
                .replace("${MODULE_PATH}", modules.to_str().unwrap())
                .replace("${USER}", user)
                .replace("${PASSWORD}", &format!("{user}-pw"))
                .replace("${SERVER}", &server.to_string())
                .replace("${TLS_CA}", "")
                .replace("${TRANSPORT}", "udp")
                .replace("${BUDDY_NAME}", buddy)
                .replace("${BUDDY}", buddy)
                .replace("${DOMAIN}", DOMAIN);
            assert!(!text.contains("${"), "{template}: a placeholder is left");
            std::fs::write(dir.path().join(template), text).unwrap();
        }
        let mut child = Command::new(binary)
            .arg("-f")
            .arg(dir.path())
            .args(["-s", "-t", "55"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("baresip: {e}"))?;
        let out = Output::default();
        out.collect(child.stdout.take().unwrap());
        out.collect(child.stderr.take().unwrap());
        Ok(Phone {
            name: format!("baresip {user} (pid {}, port {port})", child.id()),
            stdin: child.stdin.take(),
            child,
            out,
            _dir: dir,
        })
    }

    pub fn cmd(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: cannot write {line:?}: {e}", self.name))
    }

    pub fn mark(&self) -> usize {
        self.out.len()
    }

    pub fn expect(&self, since: usize, what: &str, timeout: Duration) -> Result<(), String> {
        self.out
            .expect(since, what, timeout)
            .map_err(|e| format!("{}: {e}", self.name))
    }

    /// Asks `/contacts` (every 300 ms) until `buddy` is shown as `status` (`Online`,
    /// `Offline`, `Busy`, ...).
    pub fn sees(&mut self, buddy: &str, status: &str, timeout: Duration) -> Result<(), String> {
        let uri = format!("<sip:{buddy}@{DOMAIN}>");
        let deadline = Instant::now() + timeout;
        let mut last = String::from("nothing");
        while Instant::now() < deadline {
            let since = self.mark();
            self.cmd("/contacts")?;
            std::thread::sleep(Duration::from_millis(300));
            let text = self.out.text();
            let shown = text
                .get(since..)
                .unwrap_or_default()
                .lines()
                .rev()
                .find_map(|l| {
                    let l = l.trim_start_matches(['>', ' ']);
                    l.ends_with(&uri)
                        .then(|| l.split_whitespace().next().unwrap_or_default().to_string())
                });
            if let Some(shown) = shown {
                if shown == status {
                    return Ok(());
                }
                last = shown;
            }
        }
        Err(format!(
            "{}: {buddy} not shown {status} within {timeout:?} (last shown: {last})",
            self.name
        ))
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if !wait_until(Duration::from_secs(2), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}
