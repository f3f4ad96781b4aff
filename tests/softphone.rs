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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::{SipLimits, SipMessage, Transport};
use impp::store::Credential;

mod common;

use common::baresip::{free_port_pair, installed, terminate, wait_until, Output, Phone};
use common::certs::TestCa;
use common::kamailio::{TempDir, DOMAIN};

const IMPPD: &str = env!("CARGO_BIN_EXE_imppd");

type Check = Result<(), String>;

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
    // A clear message first when baresip is missing.
    if let Err(e) = installed() {
        panic!("{e}");
    }
    let started = Instant::now();
    let dir = TempDir::new(&format!("softphone-imppd-{transport}"));
    let tls = (transport == "tls").then(|| TlsFiles::make(dir.path()));
    let mut server = Server::start(&dir.path().join("imppd.db"), tls);
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
    let at = server.addr_for(transport);
    phones.push(Phone::start_over("alice", "bob", transport, at, trust)?);
    phones.push(Phone::start_over("bob", "alice", transport, at, trust)?);

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
    phones.push(Phone::start_over("bob", "alice", transport, at, trust)?);
    let bob = phones.len() - 1;
    phones[bob].expect(0, "registered successfully", SHORT)?;
    for text in texts {
        phones[bob].expect(0, &format!("sip:alice@{DOMAIN}: \"{text}\""), SHORT)?;
    }

    for p in phones.iter_mut() {
        if p.running() {
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
        let dir = TempDir::new("softphone-stranger-ca");
        let stranger = TestCa::new("a CA that did not sign imppd's certificate");
        let ca_file = stranger.write(dir.path(), "stranger-ca");
        phones.push(Phone::start_over(
            "alice",
            "bob",
            transport,
            at,
            Some(&ca_file),
        )?);
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
