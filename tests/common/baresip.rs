//! One headless baresip softphone (Debian package `baresip-core`) against an imppd started by
//! the test, configured from the templates in `tests/softphone/`: commands go to its stdin,
//! its output (with the SIP trace, `-s`) is kept and waited on. It quits by itself after 55 s
//! (`-t`) whatever happens, and is stopped by PID when dropped. tests/softphone.rs runs it
//! over UDP, TCP and TLS; tests/web.rs over UDP next to a web page.

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
        Some(PathBuf::from("/usr/local/lib/baresip/modules")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.join("stdio.so").is_file())
    .ok_or(
        "baresip's modules (stdio.so, presence.so) not found: install baresip-core or set \
         BARESIP_MODULES to their directory",
    )?;
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

/// Sends SIGTERM to `child` by its PID; kills it if it has not exited within `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !wait_until(grace, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A local port free for UDP and TCP together with the next one (baresip binds SIP/TLS on
/// port + 1), never handed out twice by this process (phones and imppd of one test file
/// start in parallel).
pub fn free_port_pair() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if port >= u16::MAX - 1 || taken.contains(&port) || taken.contains(&(port + 1)) {
            continue;
        }
        let free = [port, port + 1].iter().all(|&p| {
            UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            taken.extend([port, port + 1]);
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
        Phone::start_over(user, buddy, "udp", server, None)
    }

    /// As [`Phone::start`], over `transport` (`udp`, `tcp` or `tls`). Over TLS the phone
    /// trusts the CA in `trust` alone, and OpenSSL is told to verify the server's chain
    /// against it (`tests/softphone/openssl.cnf`: baresip 1.0.0 does not ask for that itself).
    pub fn start_over(
        user: &str,
        buddy: &str,
        transport: &str,
        server: SocketAddr,
        trust: Option<&Path>,
    ) -> Result<Phone, String> {
        let (binary, modules) = installed()?;
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/softphone");
        let dir = TempDir::new(&format!("baresip-{user}"));
        let port = free_port_pair();
        let tls_ca = match trust {
            Some(ca) => format!("sip_cafile\t\t{}", ca.display()),
            None => String::new(),
        };
        let fill = |template: &str| {
            let text = std::fs::read_to_string(templates.join(template)).unwrap();
            let text = text
                .replace("${LISTEN}", &format!("127.0.0.1:{port}"))
                .replace("${MODULE_PATH}", modules.to_str().unwrap())
                .replace("${USER}", user)
                .replace("${PASSWORD}", &format!("{user}-pw"))
                .replace("${SERVER}", &server.to_string())
                .replace("${TLS_CA}", &tls_ca)
                .replace("${TRANSPORT}", transport)
                .replace("${BUDDY_NAME}", buddy)
                .replace("${BUDDY}", buddy)
                .replace("${DOMAIN}", DOMAIN);
            assert!(!text.contains("${"), "{template}: a placeholder is left");
            std::fs::write(dir.path().join(template), text).unwrap();
        };
        for template in ["config", "accounts", "contacts"] {
            fill(template);
        }
        let mut command = Command::new(binary);
        if trust.is_some() {
            // OpenSSL's system default for this process: verify the server's chain.
            fill("openssl.cnf");
            command.env("OPENSSL_CONF", dir.path().join("openssl.cnf"));
        }
        // -s: SIP trace; -t: baresip quits by itself after 55 s, whatever happens here.
        let mut child = command
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

    /// Waits until the output after `since` contains `what` `n` times.
    pub fn expect_n(
        &self,
        since: usize,
        what: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        if wait_until(timeout, || {
            self.out
                .text()
                .get(since..)
                .is_some_and(|t| t.matches(what).count() >= n)
        }) {
            Ok(())
        } else {
            Err(format!(
                "{}: {what:?} not seen {n} times within {timeout:?}",
                self.name
            ))
        }
    }

    /// Whether baresip has not exited yet.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `/quit`, then SIGTERM and SIGKILL by PID if it lingers. Ok when it quit by itself.
    pub fn quit(&mut self) -> Result<(), String> {
        let _ = self.cmd("/quit");
        let exited = wait_until(Duration::from_secs(6), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        drop(self.stdin.take());
        if exited {
            Ok(())
        } else {
            terminate(&mut self.child, Duration::from_secs(2));
            Err(format!("{}: did not exit on /quit", self.name))
        }
    }

    /// How many SIP messages baresip traced (`-s`) per transport: a trace opens with a line
    /// `PROTO SRC -> DST` (after a line `#`, which the other output stream may separate from it).
    pub fn traced(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for line in self.out.text().lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let head = words.len() == 4
                && ["UDP", "TCP", "TLS"].contains(&words[0])
                && words[2] == "->"
                && words[1].parse::<SocketAddr>().is_ok()
                && words[3].parse::<SocketAddr>().is_ok();
            if head {
                match counts.iter_mut().find(|(p, _)| p == words[0]) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((words[0].to_string(), 1)),
                }
            }
        }
        counts
    }

    /// Every SIP message baresip traced went over `transport`, and there were some.
    pub fn only_over(&self, transport: &str) -> Result<(), String> {
        let counts = self.traced();
        let want = transport.to_ascii_uppercase();
        if counts.len() == 1 && counts[0].0 == want {
            Ok(())
        } else {
            Err(format!(
                "{}: messages traced per transport {counts:?}, expected {want} alone",
                self.name
            ))
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        drop(self.stdin.take());
        terminate(&mut self.child, Duration::from_secs(2));
    }
}
