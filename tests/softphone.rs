//! imppd with a real softphone: two headless baresip user agents (Debian package
//! `baresip-core`, tested with 1.0.0), alice and bob, configured from the templates in
//! `tests/softphone/`, against an imppd started here. Everything is checked from what baresip
//! prints (its own status lines, its `/contacts` table, received messages, and its SIP trace):
//!
//! - digest REGISTER for both;
//! - bob sees alice Online after `/presence_online`, Offline after `/presence_offline`;
//! - a second publisher for alice (a PUBLISH written here, with `<rpid:busy/>`) makes bob
//!   see her Busy, and Offline again once that publication is removed;
//! - MESSAGE alice → bob and bob → alice;
//! - bob quits, alice sends two messages (stored), a new bob registers and gets both.
//!
//! Over UDP, TCP and TLS, with imppd as a user starts it (its challenges offer MD5 alone by
//! default; libre fails a 401 that offers any algorithm but MD5). Each run also checks from
//! baresip's SIP trace that every message it sent or received went over the transport under
//! test.
//!
//! Over TLS imppd presents a certificate for example.test (and 127.0.0.1) signed by a CA made
//! for the run (tests/common/certs.rs), and each phone is given that CA as `sip_cafile`.
//! baresip 1.0.0 only loads that file: libre 1.1.0 has `tls_set_verify_server` and
//! `tls_peer_set_verify_host`, but baresip 1.0.0 calls neither (it has no
//! `sip_verify_server`, which came in 1.1.0), so by itself it would register to any server.
//! The phones therefore run with `OPENSSL_CONF` naming `tests/softphone/openssl.cnf`, whose
//! system default `VerifyMode = Peer` makes OpenSSL check the chain against `sip_cafile` on
//! every connection; a phone given another CA is shown to be refused (`Register: Protocol
//! error`). The certificate's *name* is still not checked by baresip; the second publisher
//! (a rustls client here) checks that imppd's certificate names example.test (RFC 5922). presence.so is loaded with `/insmod` after REGISTER succeeded: its
//! first PUBLISH carries `<basic>unknown</basic>`, which imppd refuses (400); the next
//! `/presence_online` then starts a publication of its own.
//!
//! Every wait is bounded; every process is stopped by its PID; on failure the output of
//! imppd and of every baresip is printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::{SipLimits, SipMessage, Transport};
use impp::store::Credential;

mod common;

use common::certs::TestCa;

const DOMAIN: &str = "example.test";
const IMPPD: &str = env!("CARGO_BIN_EXE_imppd");

type Check = Result<(), String>;

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/softphone")
}

/// The baresip executable and its module directory; a clear failure when it is missing.
fn baresip() -> (PathBuf, PathBuf) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(binary) = std::env::split_paths(&path)
        .map(|d| d.join("baresip"))
        .find(|p| p.is_file())
    else {
        panic!(
            "baresip is not installed: install the Debian package baresip-core \
             (apt-get install baresip-core; .ci/run does)"
        );
    };
    let candidates = [
        std::env::var_os("BARESIP_MODULES").map(PathBuf::from),
        Some(PathBuf::from("/usr/lib/baresip/modules")),
        Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/baresip/modules")),
        Some(PathBuf::from("/usr/lib64/baresip/modules")),
        Some(PathBuf::from("/usr/local/lib/baresip/modules")),
    ];
    let Some(modules) = candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("stdio.so").is_file())
    else {
        panic!(
            "baresip's modules (stdio.so, presence.so) not found: install the Debian package \
             baresip-core, or set BARESIP_MODULES to their directory"
        );
    };
    (binary, modules)
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "impp-softphone-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local port free for UDP and TCP together with the next one (baresip binds SIP/TLS on
/// port + 1), never handed out twice by this process.
fn free_port_pair() -> u16 {
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

/// Output of a process, collected by reader threads (ANSI colours removed).
#[derive(Clone, Default)]
struct Output(Arc<Mutex<String>>);

impl Output {
    fn collect(&self, stream: impl Read + Send + 'static) {
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

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
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
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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
fn terminate(child: &mut Child, grace: Duration) {
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

/// What the TLS run makes in imppd's directory: a CA for the run, and imppd's certificate
/// for DOMAIN (and 127.0.0.1) signed by it. No key material outlives the run.
struct TlsFiles {
    ca: TestCa,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn make(dir: &Path) -> TlsFiles {
        let ca = TestCa::new("softphone test CA");
        let ca_file = ca.write(dir, "ca");
        let (cert, key) = ca.issue(&[DOMAIN]).write(dir, "imppd");
        TlsFiles {
            ca,
            ca_file,
            cert,
            key,
        }
    }
}

/// imppd on a free loopback port (UDP and TCP), and on the next one over TLS when given
/// certificates; MD5-only digest.
struct Server {
    child: Child,
    port: u16,
    tls: Option<TlsFiles>,
    log: Output,
}

impl Server {
    fn start(db: &Path, tls: Option<TlsFiles>) -> Server {
        for user in ["alice", "bob"] {
            let out = Command::new(IMPPD)
                .args(["user", "add", &format!("sip:{user}@{DOMAIN}")])
                .args(["--password", &format!("{user}-pw")])
                .args(["--db", db.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "imppd user add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port_pair();
        let mut command = Command::new(IMPPD);
        command
            .args(["--domain", DOMAIN, "--log-level", "debug"])
            .args(["--listen", &format!("udp:127.0.0.1:{port}")])
            .args(["--listen", &format!("tcp:127.0.0.1:{port}")])
            .args(["--db", db.to_str().unwrap()]);
        if let Some(tls) = &tls {
            command
                .args(["--listen", &format!("tls:127.0.0.1:{}", port + 1)])
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key)
                .arg("--tls-ca")
                .arg(&tls.ca_file);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Output::default();
        log.collect(child.stderr.take().unwrap());
        let mut server = Server {
            child,
            port,
            tls,
            log,
        };
        if !wait_until(Duration::from_secs(10), || {
            server.log.text().contains("imppd ready")
        }) {
            terminate(&mut server.child, Duration::from_secs(2));
            panic!("imppd did not become ready:\n{}", server.log.text());
        }
        server
    }

    /// UDP and TCP.
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where a phone using `transport` sends.
    fn addr_for(&self, transport: &str) -> SocketAddr {
        match transport {
            "tls" => SocketAddr::from(([127, 0, 0, 1], self.port + 1)),
            _ => self.addr(),
        }
    }

    /// Stops imppd with SIGTERM; an error if it does not exit cleanly in time.
    fn stop(&mut self) -> Check {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut status = None;
        wait_until(Duration::from_secs(10), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("imppd exited with {s}")),
            None => Err("imppd did not stop on SIGTERM".into()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// One baresip process: commands on its stdin pipe, its output (with the SIP trace) kept.
struct Phone {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Output,
    _dir: Dir,
}

impl Phone {
    /// A phone of `user` watching `buddy`. Over TLS it trusts the CA in `trust` (imppd's, or
    /// another one to see it refused).
    fn start(
        user: &str,
        buddy: &str,
        transport: &str,
        server: &Server,
        trust: Option<&Path>,
    ) -> Phone {
        let (binary, modules) = baresip();
        let dir = Dir::new(user);
        let port = free_port_pair();
        let tls_ca = match trust {
            Some(ca) => format!("sip_cafile\t\t{}", ca.display()),
            None => String::new(),
        };
        let fill = |template: &str| {
            let text = std::fs::read_to_string(templates().join(template)).unwrap();
            let text = text
                .replace("${LISTEN}", &format!("127.0.0.1:{port}"))
                .replace("${MODULE_PATH}", modules.to_str().unwrap())
                .replace("${USER}", user)
                .replace("${PASSWORD}", &format!("{user}-pw"))
                .replace("${SERVER}", &server.addr_for(transport).to_string())
                .replace("${TLS_CA}", &tls_ca)
                .replace("${TRANSPORT}", transport)
                .replace("${BUDDY_NAME}", buddy)
                .replace("${BUDDY}", buddy)
                .replace("${DOMAIN}", DOMAIN);
            assert!(!text.contains("${"), "{template}: a placeholder is left");
            std::fs::write(dir.0.join(template), text).unwrap();
        };
        for template in ["config", "accounts", "contacts"] {
            fill(template);
        }
        let mut command = Command::new(binary);
        if trust.is_some() {
            // OpenSSL's system default for this process: verify the server's chain.
            fill("openssl.cnf");
            command.env("OPENSSL_CONF", dir.0.join("openssl.cnf"));
        }
        // -s: SIP trace; -t: baresip quits by itself after 55 s, whatever happens here.
        let mut child = command
            .arg("-f")
            .arg(&dir.0)
            .args(["-s", "-t", "55"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Output::default();
        out.collect(child.stdout.take().unwrap());
        out.collect(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Phone {
            name: format!("{user} (pid {}, port {port})", child.id()),
            child,
            stdin,
            out,
            _dir: dir,
        }
    }

    fn cmd(&mut self, line: &str) -> Check {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: cannot write {line:?}: {e}", self.name))
    }

    /// Waits until the output after `since` contains `what`.
    fn expect(&self, since: usize, what: &str, timeout: Duration) -> Check {
        if wait_until(timeout, || {
            self.out
                .text()
                .get(since..)
                .is_some_and(|t| t.contains(what))
        }) {
            Ok(())
        } else {
            Err(format!("{}: no {what:?} within {timeout:?}", self.name))
        }
    }

    /// Waits until the output after `since` contains `what` `n` times.
    fn expect_n(&self, since: usize, what: &str, n: usize, timeout: Duration) -> Check {
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

    fn mark(&self) -> usize {
        self.out.len()
    }

    /// Asks `/contacts` (every 300 ms) until `buddy` is shown as `status`.
    fn sees(&mut self, buddy: &str, status: &str, timeout: Duration) -> Check {
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

    /// `/quit`, then SIGTERM and SIGKILL by PID if it lingers. Ok when it quit by itself.
    fn quit(&mut self) -> Check {
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
}

impl Phone {
    /// How many SIP messages baresip traced (`-s`) per transport: a trace opens with a line
    /// `PROTO SRC -> DST` (after a line `#`, which the other output stream may separate from it).
    fn traced(&self) -> Vec<(String, usize)> {
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
    fn only_over(&self, transport: &str) -> Check {
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

/// The second publisher's way to imppd: UDP (the UDP and TCP runs), or a TLS connection of
/// its own that accepts imppd's certificate only if it chains to the run's CA and names
/// DOMAIN (RFC 5922 §7.2; rustls checks the name given here against the subjectAltNames).
enum Link {
    Udp(UdpSocket, SocketAddr),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Link {
    fn udp(server: SocketAddr) -> Result<Link, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ok(Link::Udp(socket, server))
    }

    /// Connects and completes the handshake, so a certificate refused shows as such.
    fn tls(server: SocketAddr, ca: &TestCa) -> Result<Link, String> {
        let tcp = TcpStream::connect(server).map_err(|e| format!("connect {server}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let name = rustls::pki_types::ServerName::try_from(DOMAIN.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(ca.client_config(), name).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake with imppd for {DOMAIN}: {e}"))?;
        }
        Ok(Link::Tls(Box::new(stream)))
    }

    fn local(&self) -> SocketAddr {
        match self {
            Link::Udp(socket, _) => socket.local_addr().unwrap(),
            Link::Tls(stream) => stream.sock.local_addr().unwrap(),
        }
    }

    /// The Via of a request sent on this link.
    fn via(&self, branch: &str) -> String {
        match self {
            Link::Udp(..) => format!("SIP/2.0/UDP {};branch={branch};rport", self.local()),
            Link::Tls(..) => format!("SIP/2.0/TLS {};branch={branch}", self.local()),
        }
    }

    /// Sends `request` (again every 500 ms over UDP) until its final answer comes, for 4 s.
    fn transact(&mut self, request: &str) -> Result<SipMessage, String> {
        let deadline = Instant::now() + Duration::from_secs(4);
        match self {
            Link::Udp(socket, server) => {
                let mut buf = vec![0u8; 65536];
                let mut next_send = Instant::now();
                while Instant::now() < deadline {
                    if Instant::now() >= next_send {
                        socket
                            .send_to(request.as_bytes(), *server)
                            .map_err(|e| e.to_string())?;
                        next_send = Instant::now() + Duration::from_millis(500);
                    }
                    let Ok((n, _)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let m = SipMessage::parse(&buf[..n], &SipLimits::DEFAULT, Transport::Datagram)
                        .map_err(|e| e.to_string())?;
                    if m.status().is_some_and(|s| s >= 200) {
                        return Ok(m);
                    }
                }
                Err("no final answer to PUBLISH".into())
            }
            Link::Tls(stream) => {
                stream
                    .write_all(request.as_bytes())
                    .and_then(|()| stream.flush())
                    .map_err(|e| format!("PUBLISH over TLS: {e}"))?;
                let mut buf = Vec::new();
                while Instant::now() < deadline {
                    // One whole message: the head, then Content-Length bytes of body.
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let bytes: Vec<u8> = buf.drain(..end + 4 + len).collect();
                            let m =
                                SipMessage::parse(&bytes, &SipLimits::DEFAULT, Transport::Stream)
                                    .map_err(|e| e.to_string())?;
                            if m.status().is_some_and(|s| s >= 200) {
                                return Ok(m);
                            }
                            continue;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk) {
                        Ok(0) => return Err("imppd closed the TLS connection".into()),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) => return Err(format!("reading over TLS: {e}")),
                    }
                }
                Err("no final answer to PUBLISH over TLS".into())
            }
        }
    }
}

/// A second publisher for alice: PUBLISH on `link` (MD5 digest when challenged). `body`
/// `None` removes the publication `etag`. Returns the new SIP-ETag.
fn publish(link: &mut Link, body: Option<&str>, etag: Option<&str>) -> Result<String, String> {
    let aor = format!("sip:alice@{DOMAIN}");
    static N: AtomicUsize = AtomicUsize::new(0);
    let call_id = format!(
        "second-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let build = |link: &Link, cseq: u32, auth: &str| {
        let mut text = format!(
            "PUBLISH {aor} SIP/2.0\r\n\
             Via: {}\r\n\
             Max-Forwards: 70\r\n\
             From: <{aor}>;tag=second\r\n\
             To: <{aor}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} PUBLISH\r\n\
             Event: presence\r\n\
             Expires: {}\r\n{auth}",
            link.via(&format!("z9hG4bK{call_id}-{cseq}")),
            if body.is_some() { 60 } else { 0 }
        );
        if let Some(tag) = etag {
            text.push_str(&format!("SIP-If-Match: {tag}\r\n"));
        }
        match body {
            Some(b) => text.push_str(&format!(
                "Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        text
    };
    let first = build(link, 1, "");
    let mut answer = link.transact(&first)?;
    if answer.status() == Some(401) {
        let challenge = answer
            .headers("WWW-Authenticate")
            .find(|c| c.contains("MD5"))
            .ok_or("401 without an MD5 challenge")?
            .to_string();
        let param = |name: &str| -> Result<String, String> {
            let key = format!("{name}=\"");
            let i = challenge
                .find(&key)
                .ok_or(format!("no {name} in challenge"))?
                + key.len();
            Ok(challenge[i..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_string())
        };
        let (realm, nonce, opaque) = (param("realm")?, param("nonce")?, param("opaque")?);
        let credential = Credential::new(aor.parse().unwrap(), &realm, "alice-pw");
        let cnonce = format!("{:x}", std::process::id() as u64 * 7919 + 13);
        let response = expected_response(
            Algorithm::Md5,
            &credential.ha1_md5,
            "PUBLISH",
            &aor,
            &nonce,
            Some(("auth", "00000001", &cnonce)),
        );
        let auth = format!(
            "Authorization: Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{aor}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"{cnonce}\", opaque=\"{opaque}\"\r\n"
        );
        let second = build(link, 2, &auth);
        answer = link.transact(&second)?;
    }
    match answer.status() {
        Some(200) => Ok(answer
            .header("SIP-ETag")
            .map(|t| t.trim().to_string())
            .unwrap_or_default()),
        other => Err(format!(
            "second publisher: PUBLISH answered {other:?}: {}",
            answer.reason().unwrap_or_default()
        )),
    }
}

fn busy_pidf() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    entity="sip:alice@{DOMAIN}">
  <tuple id="desk"><status><basic>open</basic></status></tuple>
  <dm:person id="alice-desk"><rpid:activities><rpid:busy/></rpid:activities></dm:person>
</presence>"#
    )
}

const SHORT: Duration = Duration::from_secs(5);

/// The whole flow over `transport`; on failure the logs of everything it ran are printed.
fn softphones(transport: &str) {
    let _ = baresip(); // a clear message first when baresip is missing
    let started = Instant::now();
    let dir = Dir::new(&format!("imppd-{transport}"));
    let tls = (transport == "tls").then(|| TlsFiles::make(&dir.0));
    let mut server = Server::start(&dir.0.join("imppd.db"), tls);
    let mut phones: Vec<Phone> = Vec::new();
    let result = flow(transport, &mut server, &mut phones);
    let stopped = server.stop();
    let result = result.and(stopped);
    if let Err(why) = result {
        let mut report = format!("softphone test over {transport} failed: {why}\n");
        report.push_str(&format!("\n===== imppd =====\n{}", server.log.text()));
        for p in &phones {
            report.push_str(&format!("\n===== {} =====\n{}", p.name, p.out.text()));
        }
        panic!("{report}\nsoftphone test over {transport} failed: {why}");
    }
    eprintln!(
        "softphones over {transport}: every step passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn flow(transport: &str, server: &mut Server, phones: &mut Vec<Phone>) -> Check {
    const ALICE: usize = 0;
    const BOB: usize = 1;
    // Over TLS the phones trust the run's CA, which signed imppd's certificate.
    let trust = server.tls.as_ref().map(|t| t.ca_file.clone());
    let trust = trust.as_deref();
    phones.push(Phone::start("alice", "bob", transport, server, trust));
    phones.push(Phone::start("bob", "alice", transport, server, trust));

    // REGISTER with digest (the 401 first, then the 200).
    for p in phones.iter() {
        p.expect(0, "registered successfully", SHORT)?;
        p.expect(0, "SIP/2.0 401 Unauthorized", Duration::ZERO)?;
    }

    // presence.so now: its first PUBLISH (<basic>unknown</basic>) is refused with 400;
    // it SUBSCRIBEs to its buddy a second later.
    for p in phones.iter_mut() {
        let since = p.mark();
        p.cmd("/insmod presence.so")?;
        p.expect(since, "loaded module presence.so", SHORT)?;
        p.expect(since, "publisher got error response 400", SHORT)?;
    }
    // The first NOTIFY (alice has published nothing) shows her Offline.
    phones[BOB].sees("alice", "Offline", SHORT)?;

    // alice online, then offline.
    phones[ALICE].cmd("/presence_online")?;
    phones[BOB].sees("alice", "Online", SHORT)?;
    phones[ALICE].cmd("/presence_offline")?;
    phones[BOB].sees("alice", "Offline", SHORT)?;

    // A second publisher for alice says busy; removed, she is offline again. Over TLS it
    // checks that imppd's certificate names the domain.
    let mut link = match &server.tls {
        Some(tls) => Link::tls(server.addr_for("tls"), &tls.ca)?,
        None => Link::udp(server.addr())?,
    };
    let etag = publish(&mut link, Some(&busy_pidf()), None)?;
    phones[BOB].sees("alice", "Busy", SHORT)?;
    publish(&mut link, None, Some(&etag))?;
    drop(link);
    phones[BOB].sees("alice", "Offline", SHORT)?;

    // MESSAGE both ways.
    for (from, to) in [(ALICE, BOB), (BOB, ALICE)] {
        let sender = if from == ALICE { "alice" } else { "bob" };
        let text = format!("hello from {sender} over {transport}");
        let since = phones[to].mark();
        phones[from].cmd(&format!("/message {text}"))?;
        phones[to].expect(since, &format!("sip:{sender}@{DOMAIN}: \"{text}\""), SHORT)?;
    }

    // bob quits (un-REGISTER); alice's messages are stored (202) and reach the next bob.
    phones[BOB].quit()?;
    let since = phones[ALICE].mark();
    let texts = ["while you were out 1", "while you were out 2"];
    for text in texts {
        phones[ALICE].cmd(&format!("/message {text}"))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    phones[ALICE].expect_n(since, "SIP/2.0 202 ", texts.len(), SHORT)?;
    phones.push(Phone::start("bob", "alice", transport, server, trust));
    let bob = phones.len() - 1;
    phones[bob].expect(0, "registered successfully", SHORT)?;
    for text in texts {
        phones[bob].expect(0, &format!("sip:alice@{DOMAIN}: \"{text}\""), SHORT)?;
    }

    for p in phones.iter_mut() {
        if matches!(p.child.try_wait(), Ok(None)) {
            p.quit()?;
        }
    }
    // Everything went over the transport under test (no fallback to another).
    for p in phones.iter() {
        p.only_over(transport)?;
    }

    // Over TLS, a phone that trusts another CA does not get through: OpenSSL refuses imppd's
    // chain, so the REGISTER never leaves.
    if server.tls.is_some() {
        let dir = Dir::new("stranger-ca");
        let stranger = TestCa::new("a CA that did not sign imppd's certificate");
        let ca_file = stranger.write(&dir.0, "stranger-ca");
        phones.push(Phone::start(
            "alice",
            "bob",
            transport,
            server,
            Some(&ca_file),
        ));
        let p = phones.last_mut().unwrap();
        p.expect(0, "Register: Protocol error", SHORT)?;
        if p.out.text().contains("registered successfully") {
            return Err(format!("{}: registered with a CA it should refuse", p.name));
        }
        p.quit()?;
        if p.traced().iter().any(|(_, n)| *n > 0) {
            return Err(format!("{}: sent SIP without a trusted server", p.name));
        }
    }
    Ok(())
}

#[test]
fn baresip_over_udp() {
    softphones("udp");
}

#[test]
fn baresip_over_tcp() {
    softphones("tcp");
}

#[test]
fn baresip_over_tls() {
    softphones("tls");
}
