//! tls_swarm: TLS (and plain TCP) clients of imppd, for the figures of benches/network/run.sh.
//!
//! ```text
//! tls_swarm certs DIR
//! tls_swarm handshake --server ADDR:PORT --ca FILE [--seconds S] [--threads T] [--sources N]
//!                     [--no-verify] [--tls12] [--group x25519|p256|p384]
//! tls_swarm hold --server ADDR:PORT [--tcp | --ca FILE] [--ws] --conns N [--rate R] [--sources N]
//!                [--method REGISTER|OPTIONS] --ready-file FILE --until-file FILE
//! tls_swarm watch --server ADDR:PORT [--tcp | --ca FILE] [--ws] --conns C --dialogs K --pres P
//!                 [--rate R] [--sources N] --stats-file FILE --until-file FILE
//!                 [--blf list|single --users U [--seed S]]
//! tls_swarm blf-lists --conns C --dialogs K --users U [--seed S]
//! ```
//!
//! * `certs` writes a test CA (`ca.crt`) and a certificate it signed for `example.test`,
//!   127.0.0.1 and ::1 (`server.crt`, `server.key`; ECDSA P-256, what rcgen makes) into DIR,
//!   for imppd's `--tls-cert`/`--tls-key`.
//! * `handshake`: T threads (4) each open a connection, complete a full TLS handshake (no
//!   resumption; TLS 1.3 unless `--tls12`), send close_notify and close, again and again for S
//!   seconds (10). Prints `handshakes=N failed=F seconds=S rate=R`. The server's certificate
//!   is checked against `--ca` unless `--no-verify`, which spares the generator two ECDSA
//!   verifications per handshake (the key exchange is done in full either way). The client
//!   offers the `--group` key exchange first (x25519: what OpenSSL, browsers and phones
//!   offer first; rustls with ring offers P-384 first, which costs the server several times
//!   more, and a rustls server follows the client's order). `hold` and `watch` take
//!   `--group`, `--tls12` and `--no-verify` too.
//! * `hold`: opens N connections (TLS, or plain TCP with `--tcp`), at most R new ones a second
//!   (2000) and 256 unanswered at once; on each, once its handshake is done, sends one request
//!   (a REGISTER of its own user `hK`, or an OPTIONS) and waits for the answer. Once every
//!   connection is answered or failed it writes `held=N failed=F handshakes=H ...` to the
//!   ready file (and stdout), then keeps the connections open and idle until the until-file
//!   exists, and prints how many the server closed meanwhile.
//! * `watch`: C connections with K subscription dialogs each: watcher `wI`
//!   (`I = conn * K + k`) SUBSCRIBEs to `sip:user<I % P>@example.test` over its connection
//!   and answers every NOTIFY with 200 at once. Every 100 ms it appends
//!   `epoch subscribed initial_notifies later_notifies failed closed` to the stats file; it
//!   stops when the until-file exists.
//! * Busy-lamp phones (`watch --blf`, for benches/rls/run.sh): connection `k` is phone `k`,
//!   whose K keys are K distinct users among `sip:user0..user<U-1>@example.test`, drawn
//!   pseudo-randomly from the seed (1) and the phone's number, so every run and both modes
//!   draw the same. `--blf single`: the phone's K dialogs are `Event: dialog` subscriptions,
//!   one per key. `--blf list`: the phone has one dialog, a subscription to its own list
//!   `sip:blf<k>@example.test` with `Supported: eventlist` (RFC 4662), whose NOTIFYs are
//!   `multipart/related`. Either way every NOTIFY's `<dialog-info>` documents are counted as
//!   resource states delivered, and the sequence number a publisher put in each
//!   (`impp-seq:N`, examples/sip_publisher.rs `--event dialog`) says how many changes of
//!   that key the phone learnt of: `N` less the last it had. The stats lines get three
//!   more columns: `states covered notify_bytes` (all NOTIFYs, the first ones included).
//! * `watch --pause-at N --resume-file FILE`: opens the first N connections only, then waits
//!   for the resume file before opening the rest (benches/rls/run.sh measures the server's
//!   heap in between: what the second half of the phones adds is what one more costs, once
//!   every resource is watched by someone).
//! * `blf-lists` prints the phones' lists as an RFC 4826 rls-services document (one
//!   `<service uri="sip:blf<k>@example.test">` of package `dialog` per phone, its keys as
//!   entries), for `imppd list import`.
//!
//! * `--ws` (with `hold` and `watch`): SIP over WebSocket (RFC 7118) on each connection,
//!   `ws` over TCP (`--tcp`) or `wss` over TLS: the opening handshake with the `sip`
//!   subprotocol first, then each SIP message in a masked text frame, as a browser sends it;
//!   the server's frames are read back into messages and its pings answered.
//!
//! Connections come from the loopback addresses 127.0.0.2, 127.0.0.3, ... (`--sources`, 16),
//! in turn: a server limits the connections of one address, and one address has only so many
//! ports. No authentication: imppd runs with `--open`. The file descriptor limit is raised to
//! its hard limit at start.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

const DOMAIN: &str = "example.test";

struct Options {
    server: SocketAddr,
    ca: Option<PathBuf>,
    tcp: bool,
    /// `--ws`: SIP over WebSocket (RFC 7118) on the connection, `ws` over TCP, `wss` over TLS.
    ws: bool,
    verify: bool,
    tls12: bool,
    /// The key exchange group offered first (the one the client sends a key share for).
    group: String,
    seconds: f64,
    threads: usize,
    sources: usize,
    conns: usize,
    dialogs: usize,
    pres: usize,
    rate: f64,
    method: String,
    ready_file: Option<PathBuf>,
    until_file: Option<PathBuf>,
    /// `--pause-at N` and `--resume-file FILE` (watch).
    pause_at: Option<usize>,
    resume_file: Option<PathBuf>,
    stats_file: Option<PathBuf>,
    max_s: f64,
    /// `--blf`: busy-lamp phones, one list subscription or one per key.
    blf: Option<Blf>,
    users: usize,
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Blf {
    List,
    Single,
}

fn usage() -> ! {
    eprintln!(
        "usage: tls_swarm certs DIR\n\
         \x20      tls_swarm handshake --server ADDR:PORT --ca FILE [--seconds S] [--threads T]\n\
         \x20                          [--sources N] [--no-verify] [--tls12] [--group G]\n\
         \x20      tls_swarm hold --server ADDR:PORT [--tcp | --ca FILE] [--ws] --conns N [--rate R]\n\
         \x20                     [--sources N] [--method REGISTER|OPTIONS] --ready-file FILE\n\
         \x20                     --until-file FILE [--max-s S]\n\
         \x20      tls_swarm watch --server ADDR:PORT [--tcp | --ca FILE] [--ws] --conns C --dialogs K\n\
         \x20                      --pres P [--rate R] [--sources N] --stats-file FILE\n\
         \x20                      --until-file FILE [--max-s S]\n\
         \x20                      [--blf list|single --users U [--seed S]]\n\
         \x20                      [--pause-at N --resume-file FILE]\n\
         \x20      tls_swarm blf-lists --conns C --dialogs K --users U [--seed S]"
    );
    std::process::exit(2);
}

fn options(args: impl Iterator<Item = String>) -> Options {
    let mut o = Options {
        server: "127.0.0.1:5061".parse().unwrap(),
        ca: None,
        tcp: false,
        ws: false,
        verify: true,
        tls12: false,
        group: "x25519".into(),
        seconds: 10.0,
        threads: 4,
        sources: 16,
        conns: 1000,
        dialogs: 10,
        pres: 100,
        rate: 2000.0,
        method: "REGISTER".into(),
        ready_file: None,
        until_file: None,
        pause_at: None,
        resume_file: None,
        stats_file: None,
        max_s: 900.0,
        blf: None,
        users: 1000,
        seed: 1,
    };
    let mut args = args.peekable();
    while let Some(name) = args.next() {
        match name.as_str() {
            "--tcp" => {
                o.tcp = true;
                continue;
            }
            "--ws" => {
                o.ws = true;
                continue;
            }
            "--no-verify" => {
                o.verify = false;
                continue;
            }
            "--tls12" => {
                o.tls12 = true;
                continue;
            }
            _ => {}
        }
        let value = args.next().unwrap_or_else(|| usage());
        let bad = |what: &str| -> ! {
            eprintln!("tls_swarm: {name} {value}: {what}");
            std::process::exit(2)
        };
        let count = || -> usize {
            value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| bad("not a count"))
        };
        let number = || -> f64 {
            value
                .parse()
                .ok()
                .filter(|n: &f64| *n > 0.0)
                .unwrap_or_else(|| bad("not a positive number"))
        };
        match name.as_str() {
            "--server" => o.server = value.parse().unwrap_or_else(|_| bad("not ADDR:PORT")),
            "--ca" => o.ca = Some(value.into()),
            "--group" => match value.as_str() {
                "x25519" | "p256" | "p384" => o.group = value,
                _ => bad("x25519, p256 or p384"),
            },
            "--seconds" => o.seconds = number(),
            "--threads" => o.threads = count(),
            "--sources" => o.sources = count().min(250),
            "--conns" => o.conns = count(),
            "--dialogs" => o.dialogs = count(),
            "--pres" => o.pres = count(),
            "--rate" => o.rate = number(),
            "--max-s" => o.max_s = number(),
            "--method" => match value.as_str() {
                "REGISTER" | "OPTIONS" => o.method = value,
                _ => bad("REGISTER or OPTIONS"),
            },
            "--ready-file" => o.ready_file = Some(value.into()),
            "--until-file" => o.until_file = Some(value.into()),
            "--pause-at" => {
                o.pause_at = Some(value.parse().unwrap_or_else(|_| bad("not a number")))
            }
            "--resume-file" => o.resume_file = Some(value.into()),
            "--stats-file" => o.stats_file = Some(value.into()),
            "--blf" => match value.as_str() {
                "list" => o.blf = Some(Blf::List),
                "single" => o.blf = Some(Blf::Single),
                _ => bad("list or single"),
            },
            "--users" => o.users = count(),
            "--seed" => o.seed = value.parse().unwrap_or_else(|_| bad("not a number")),
            _ => usage(),
        }
    }
    if o.blf.is_some() && o.dialogs > o.users {
        eprintln!("tls_swarm: --dialogs (keys per phone) must not exceed --users");
        std::process::exit(2);
    }
    if !o.tcp && o.ca.is_none() && o.verify {
        eprintln!("tls_swarm: TLS needs --ca FILE (or --no-verify)");
        std::process::exit(2);
    }
    o
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    raise_fd_limit();
    match mode.as_str() {
        "certs" => certs(&PathBuf::from(args.next().unwrap_or_else(|| usage()))),
        "handshake" => handshake(&options(args)),
        "hold" => hold(&options(args)),
        "watch" => watch(&options(args)),
        "blf-lists" => blf_lists(&options(args)),
        _ => usage(),
    }
}

/// As many descriptors as the hard limit allows: `hold` keeps one per connection.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed, which lives
    // across the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---- certificates ----

fn certs(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tls_swarm test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec![DOMAIN.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, DOMAIN);
    for ip in ["127.0.0.1", "::1"] {
        params
            .subject_alt_names
            .push(SanType::IpAddress(ip.parse().unwrap()));
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    println!(
        "tls_swarm: wrote ca.crt, server.crt, server.key in {}",
        dir.display()
    );
}

// ---- TLS client configuration ----

/// Accepts any certificate and signature (`--no-verify`): a benchmark client that spends
/// its CPU on the key exchange only.
#[derive(Debug)]
struct NoVerify(Vec<SignatureScheme>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// A client configuration: full handshakes only (no session resumption), ring as imppd
/// uses, no client certificate.
fn client_config(o: &Options) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    // ring, as the library itself uses (see src/sip/tls.rs).
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    // The group offered first gets the key share, and a rustls server takes the client's
    // order: x25519 first as OpenSSL, browsers and phones do (rustls's ring provider puts
    // P-384 first).
    use rustls::crypto::ring::kx_group;
    let first: &'static dyn rustls::crypto::SupportedKxGroup = match o.group.as_str() {
        "p256" => kx_group::SECP256R1,
        "p384" => kx_group::SECP384R1,
        _ => kx_group::X25519,
    };
    provider.kx_groups.retain(|g| g.name() != first.name());
    provider.kx_groups.insert(0, first);
    let provider = Arc::new(provider);
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let versions: &[&rustls::SupportedProtocolVersion] = if o.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions");
    let mut config = if o.verify {
        let pem = std::fs::read(o.ca.as_ref().expect("--ca")).expect("read the CA file");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("a PEM certificate")).expect("a CA");
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(schemes)))
            .with_no_client_auth()
    };
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

fn server_name(o: &Options) -> ServerName<'static> {
    ServerName::IpAddress(o.server.ip().into())
}

/// The `i`-th source address: 127.0.0.2, 127.0.0.3, ...
fn source(o: &Options, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % o.sources) as u8))
}

/// A TCP socket bound to `from` (any port), connecting to `to`; non-blocking if asked.
fn socket_to(from: IpAddr, to: SocketAddr, nonblocking: bool) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
    s.set_nodelay(true)?;
    if nonblocking {
        s.set_nonblocking(true)?;
        match s.connect(&SockAddr::from(to)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
    } else {
        s.connect_timeout(&SockAddr::from(to), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
    }
    Ok(s.into())
}

// ---- handshake ----

fn handshake(o: &Options) {
    let config = client_config(o);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..o.threads)
        .map(|t| {
            let (config, ok, failed, stop) =
                (config.clone(), ok.clone(), failed.clone(), stop.clone());
            let (server, name) = (o.server, server_name(o));
            let sources: Vec<IpAddr> = (0..o.sources).map(|i| source(o, i)).collect();
            std::thread::spawn(move || {
                let mut i = t;
                let mut last_error = String::new();
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let from = sources[i % sources.len()];
                    match one_handshake(&config, &name, from, server) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 3 || e != last_error {
                                eprintln!("tls_swarm: handshake from {from} failed: {e}");
                            }
                            last_error = e;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(o.seconds));
    stop.store(true, Ordering::Relaxed);
    let done = ok.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "tls_swarm: handshakes={done} failed={} seconds={elapsed:.3} rate={:.1} threads={} \
         tls={} group={} verify={}",
        failed.load(Ordering::Relaxed),
        done as f64 / elapsed,
        o.threads,
        if o.tls12 { "1.2" } else { "1.3" },
        o.group,
        if o.verify { "yes" } else { "no" }
    );
}

/// Connect, full handshake, close_notify, close.
fn one_handshake(
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    from: IpAddr,
    to: SocketAddr,
) -> Result<(), String> {
    let mut stream = socket_to(from, to, false).map_err(|e| format!("connect: {e}"))?;
    let mut tls = ClientConnection::new(config.clone(), name.clone()).map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut stream)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    tls.send_close_notify();
    while tls.wants_write() {
        tls.write_tls(&mut stream)
            .map_err(|e| format!("close: {e}"))?;
    }
    Ok(())
}

// ---- connections driven by a poller (hold, watch) ----

/// One client connection, TLS or plain TCP, non-blocking.
struct Conn {
    stream: TcpStream,
    tls: Option<ClientConnection>,
    /// A WebSocket connection: whether the server's `101` was read yet.
    ws: Option<bool>,
    local: SocketAddr,
    connected: bool,
    /// Plaintext received, not yet cut into messages.
    inbuf: Vec<u8>,
    /// Plaintext to send (over TLS: handed to the session once its handshake is done).
    out: Vec<u8>,
}

fn fail(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, what.to_string())
}

impl Conn {
    fn open(
        from: IpAddr,
        to: SocketAddr,
        tls: Option<(&Arc<ClientConfig>, &ServerName<'static>)>,
        ws: bool,
    ) -> io::Result<Conn> {
        let std = socket_to(from, to, true)?;
        let local = std.local_addr()?;
        let tls = match tls {
            Some((config, name)) => Some(
                ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| fail(io::ErrorKind::InvalidInput, &e.to_string()))?,
            ),
            None => None,
        };
        // The opening handshake goes first; SIP frames may follow it at once (the server
        // reads the handshake, then frames from the rest).
        let out = if ws {
            format!(
                "GET / HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: sip\r\n\r\n"
            )
            .into_bytes()
        } else {
            Vec::new()
        };
        Ok(Conn {
            stream: TcpStream::from_std(std),
            tls,
            ws: ws.then_some(false),
            local,
            connected: false,
            inbuf: Vec::new(),
            out,
        })
    }

    /// Queues one SIP message: as it is, or in a masked WebSocket text frame.
    fn send(&mut self, sip: &[u8]) {
        if self.ws.is_none() {
            self.out.extend_from_slice(sip);
            return;
        }
        const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x2e];
        self.out.push(0x81);
        match sip.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n < 65536 => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&MASK);
        self.out
            .extend(sip.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    }

    /// Whether it is connected and, over TLS, past its handshake.
    fn up(&self) -> bool {
        self.connected && self.tls.as_ref().map_or(true, |t| !t.is_handshaking())
    }

    /// Does all the I/O the socket allows now; an error closes the connection.
    fn pump(&mut self) -> io::Result<()> {
        use io::ErrorKind::{Interrupted, NotConnected, WouldBlock};
        if !self.connected {
            if let Some(e) = self.stream.take_error()? {
                return Err(e);
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let Some(tls) = self.tls.as_mut() else {
            while !self.out.is_empty() {
                match self.stream.write(&self.out) {
                    Ok(0) => return Err(fail(io::ErrorKind::WriteZero, "wrote nothing")),
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                    Err(e) if e.kind() == WouldBlock => break,
                    Err(e) if e.kind() == Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let mut buf = [0u8; 16384];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(fail(io::ErrorKind::UnexpectedEof, "closed by the server"))
                    }
                    Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == WouldBlock => return Ok(()),
                    Err(e) if e.kind() == Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        };
        loop {
            if !tls.is_handshaking() && !self.out.is_empty() {
                tls.writer().write_all(&self.out)?;
                self.out.clear();
            }
            let mut write_blocked = false;
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => return Err(fail(io::ErrorKind::WriteZero, "wrote nothing")),
                    Ok(_) => {}
                    Err(e) if e.kind() == WouldBlock => {
                        write_blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Err(fail(io::ErrorKind::UnexpectedEof, "closed by the server")),
                Ok(_) => {
                    let state = tls
                        .process_new_packets()
                        .map_err(|e| fail(io::ErrorKind::InvalidData, &format!("TLS: {e}")))?;
                    let n = state.plaintext_bytes_to_read();
                    if n > 0 {
                        let at = self.inbuf.len();
                        self.inbuf.resize(at + n, 0);
                        tls.reader().read_exact(&mut self.inbuf[at..])?;
                    }
                }
                Err(e) if e.kind() == WouldBlock => {
                    let more = !tls.is_handshaking() && !self.out.is_empty();
                    if write_blocked || (!tls.wants_write() && !more) {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Cuts the complete messages out of the buffer.
    fn messages(&mut self) -> Vec<String> {
        if self.ws.is_some() {
            return self.ws_messages();
        }
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(n) = message_len(&self.inbuf[at..]) {
            found.push(String::from_utf8_lossy(&self.inbuf[at..at + n]).into_owned());
            at += n;
        }
        self.inbuf.drain(..at);
        found
    }
}

impl Conn {
    /// The SIP messages in the server's WebSocket frames (unmasked), after its `101`.
    fn ws_messages(&mut self) -> Vec<String> {
        let mut at = 0;
        if self.ws == Some(false) {
            let Some(end) = self.inbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Vec::new();
            };
            if !self.inbuf.starts_with(b"HTTP/1.1 101") {
                eprintln!(
                    "tls_swarm: WebSocket refused: {}",
                    String::from_utf8_lossy(&self.inbuf[..end])
                );
            }
            self.ws = Some(true);
            at = end + 4;
        }
        let mut found = Vec::new();
        loop {
            let buf = &self.inbuf[at..];
            if buf.len() < 2 {
                break;
            }
            let (len, head) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < head + len {
                break;
            }
            let payload = &buf[head..head + len];
            match buf[0] & 0x0f {
                1 | 2 => found.push(String::from_utf8_lossy(payload).into_owned()),
                9 => {
                    // A ping: its pong (masked, as a client's frames are).
                    let pong = payload.to_vec();
                    self.out
                        .extend_from_slice(&[0x8a, 0x80 | pong.len() as u8, 0, 0, 0, 0]);
                    self.out.extend_from_slice(&pong);
                }
                _ => {}
            }
            at += head + len;
        }
        self.inbuf.drain(..at);
        found
    }
}

/// The length of the first complete message in `buf` (leading CRLFs included), if complete.
fn message_len(buf: &[u8]) -> Option<usize> {
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skip..];
    if rest.is_empty() {
        return None;
    }
    let end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&rest[..end]).ok()?;
    let length: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (rest.len() >= end + length).then_some(skip + end + length)
}

fn header<'a>(msg: &'a str, long: &'static str, short: &'static str) -> Option<&'a str> {
    headers(msg, long, short).next()
}

fn headers<'a>(
    msg: &'a str,
    long: &'static str,
    short: &'static str,
) -> impl Iterator<Item = &'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(move |l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case(long) || (!short.is_empty() && name == short))
                .then(|| value.trim())
        })
}

/// The status code of a response, `None` for a request.
fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// CSeq number and method.
fn cseq(msg: &str) -> Option<(u32, &str)> {
    let mut it = header(msg, "CSeq", "")?.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?))
}

/// `200 OK` to a request, with its Vias, From, To, Call-ID and CSeq.
fn ok_to(msg: &str) -> String {
    let mut r = String::from("SIP/2.0 200 OK\r\n");
    for v in headers(msg, "Via", "v") {
        r.push_str("Via: ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    for (long, short) in [("From", "f"), ("To", "t"), ("Call-ID", "i"), ("CSeq", "")] {
        if let Some(v) = header(msg, long, short) {
            r.push_str(long);
            r.push_str(": ");
            r.push_str(v);
            r.push_str("\r\n");
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

fn transport_name(o: &Options) -> &'static str {
    match (o.ws, o.tcp) {
        (false, true) => "TCP",
        (false, false) => "TLS",
        (true, true) => "WS",
        (true, false) => "WSS",
    }
}

/// Opens connections at a rate, with a bound on those not yet answered, and runs the poller.
struct Driver {
    poll: Poll,
    events: Events,
    conns: HashMap<usize, Conn>,
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
    next: usize,
    start: Instant,
    /// Connection failures by reason (first words of the error).
    errors: HashMap<String, u64>,
}

impl Driver {
    fn new(o: &Options) -> Driver {
        Driver {
            poll: Poll::new().expect("a poller"),
            events: Events::with_capacity(1024),
            conns: HashMap::new(),
            config: (!o.tcp).then(|| client_config(o)),
            name: server_name(o),
            next: 0,
            start: Instant::now(),
            errors: HashMap::new(),
        }
    }

    /// Opens connection number `self.next`; `None` (counted) when it fails at once.
    fn open(&mut self, o: &Options) -> Option<usize> {
        let token = self.next;
        self.next += 1;
        let tls = self.config.as_ref().map(|c| (c, &self.name));
        match Conn::open(source(o, token), o.server, tls, o.ws) {
            Ok(mut conn) => {
                self.poll
                    .registry()
                    .register(
                        &mut conn.stream,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .expect("register a connection");
                self.conns.insert(token, conn);
                Some(token)
            }
            Err(e) => {
                self.error(&e);
                None
            }
        }
    }

    fn error(&mut self, e: &io::Error) {
        let text = e.to_string();
        let key: String = text
            .split_whitespace()
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        *self.errors.entry(key).or_insert(0) += 1;
    }

    fn close(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    /// The tokens that had events within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Vec<usize> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                panic!("poll: {e}");
            }
        }
        let mut tokens: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        tokens.dedup();
        tokens
    }

    fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        let mut v: Vec<_> = self.errors.iter().collect();
        v.sort();
        v.iter()
            .map(|(k, n)| format!("{n} x '{k}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---- hold ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum HoldState {
    /// Connecting or handshaking; the request waits in the connection's queue.
    Opening,
    /// Up (handshake done); the request is sent, its answer awaited.
    Asked,
    /// Answered 2xx: held, idle.
    Held,
}

fn hold_request(o: &Options, k: usize, local: SocketAddr) -> String {
    let t = transport_name(o);
    let param = t.to_ascii_lowercase();
    let (uri, to, contact) = if o.method == "REGISTER" {
        (
            format!("sip:{DOMAIN}"),
            format!("<sip:h{k}@{DOMAIN}>"),
            format!("Contact: <sip:h{k}@{local};transport={param}>\r\nExpires: 3600\r\n"),
        )
    } else {
        (
            format!("sip:{DOMAIN}"),
            format!("<sip:{DOMAIN}>"),
            String::new(),
        )
    };
    format!(
        "{m} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {local};branch=z9hG4bK-hold{k};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:h{k}@{DOMAIN}>;tag=h{k}\r\n\
         To: {to}\r\n\
         Call-ID: hold{k}@{ip}\r\n\
         CSeq: 1 {m}\r\n\
         {contact}Content-Length: 0\r\n\r\n",
        m = o.method,
        ip = local.ip()
    )
}

fn hold(o: &Options) {
    const IN_FLIGHT: usize = 256;
    let mut d = Driver::new(o);
    let mut state: HashMap<usize, (HoldState, Instant)> = HashMap::new();
    let (mut held, mut failed, mut handshakes, mut lost_after) = (0usize, 0usize, 0usize, 0usize);
    let mut codes: HashMap<u16, u64> = HashMap::new();
    let mut ready_at: Option<Instant> = None;
    let mut last_report = Instant::now();
    let deadline = Instant::now() + Duration::from_secs_f64(o.max_s);
    eprintln!(
        "tls_swarm: holding {} {} connections to {} ({} requests)",
        o.conns,
        transport_name(o),
        o.server,
        o.method
    );
    loop {
        let now = Instant::now();
        if now >= deadline {
            eprintln!("tls_swarm: time limit reached");
            break;
        }
        // New connections due at the rate, with at most IN_FLIGHT unanswered.
        let due = ((now - d.start).as_secs_f64() * o.rate) as usize + 1;
        let pending = state
            .values()
            .filter(|(s, _)| *s != HoldState::Held)
            .count();
        let mut room = IN_FLIGHT.saturating_sub(pending);
        while d.next < o.conns.min(due) && room > 0 {
            room -= 1;
            let k = d.next;
            match d.open(o) {
                Some(token) => {
                    let conn = d.conns.get_mut(&token).expect("just opened");
                    let request = hold_request(o, k, conn.local);
                    conn.send(request.as_bytes());
                    state.insert(token, (HoldState::Opening, now));
                    // A connect to loopback may complete at once: no edge would come.
                    pump_hold(
                        o,
                        &mut d,
                        token,
                        &mut state,
                        &mut HoldCounts {
                            held: &mut held,
                            failed: &mut failed,
                            handshakes: &mut handshakes,
                            lost_after: &mut lost_after,
                            codes: &mut codes,
                        },
                    );
                }
                None => failed += 1,
            }
        }
        for token in d.wait(Duration::from_millis(10)) {
            pump_hold(
                o,
                &mut d,
                token,
                &mut state,
                &mut HoldCounts {
                    held: &mut held,
                    failed: &mut failed,
                    handshakes: &mut handshakes,
                    lost_after: &mut lost_after,
                    codes: &mut codes,
                },
            );
        }
        // Unanswered for 30 s: failed.
        let stale: Vec<usize> = state
            .iter()
            .filter(|(_, (s, at))| *s != HoldState::Held && now - *at > Duration::from_secs(30))
            .map(|(t, _)| *t)
            .collect();
        for token in stale {
            state.remove(&token);
            d.close(token);
            failed += 1;
            *d.errors.entry("no answer in 30 s".into()).or_insert(0) += 1;
        }
        if last_report.elapsed() > Duration::from_secs(5) && ready_at.is_none() {
            eprintln!("tls_swarm: {} opened, {held} held, {failed} failed", d.next);
            last_report = Instant::now();
        }
        if ready_at.is_none()
            && d.next >= o.conns
            && state.values().all(|(s, _)| *s == HoldState::Held)
        {
            ready_at = Some(now);
            let line = format!(
                "held={held} failed={failed} handshakes={handshakes} seconds={:.3} \
                 transport={} method={} answers={} errors={}",
                (now - d.start).as_secs_f64(),
                transport_name(o),
                o.method,
                {
                    let mut c: Vec<_> = codes.iter().collect();
                    c.sort();
                    c.iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                },
                d.errors_text().replace(' ', "_")
            );
            println!("tls_swarm: ready: {line}");
            if let Some(path) = &o.ready_file {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, format!("{line}\n")).expect("write the ready file");
                std::fs::rename(&tmp, path).expect("rename the ready file");
            }
        }
        if ready_at.is_some() && o.until_file.as_ref().is_some_and(|p| p.exists()) {
            break;
        }
    }
    println!(
        "tls_swarm: done: held={held} (closed by the server while idle: {lost_after}), \
         failed={failed}, errors: {}",
        d.errors_text()
    );
}

struct HoldCounts<'a> {
    held: &'a mut usize,
    failed: &'a mut usize,
    handshakes: &'a mut usize,
    lost_after: &'a mut usize,
    codes: &'a mut HashMap<u16, u64>,
}

fn pump_hold(
    o: &Options,
    d: &mut Driver,
    token: usize,
    state: &mut HashMap<usize, (HoldState, Instant)>,
    c: &mut HoldCounts<'_>,
) {
    let Some(conn) = d.conns.get_mut(&token) else {
        return;
    };
    let mut result = conn.pump();
    let Some(&(was, _)) = state.get(&token) else {
        return;
    };
    let mut now = was;
    if now == HoldState::Opening && conn.up() {
        now = HoldState::Asked;
        if !o.tcp {
            *c.handshakes += 1;
        }
        // Over TLS the request goes into the session now that the handshake is done.
        if result.is_ok() {
            result = conn.pump();
        }
    }
    let mut refused = false;
    for msg in conn.messages() {
        let (Some(code), Some((_, method))) = (status(&msg), cseq(&msg)) else {
            continue;
        };
        if code < 200 || method != o.method {
            continue;
        }
        *c.codes.entry(code).or_insert(0) += 1;
        if now != HoldState::Held {
            if (200..300).contains(&code) {
                now = HoldState::Held;
                *c.held += 1;
            } else {
                refused = true;
            }
        }
    }
    if refused {
        state.remove(&token);
        d.close(token);
        *c.failed += 1;
        return;
    }
    if now != was {
        state.insert(token, (now, Instant::now()));
    }
    if let Err(e) = result {
        hold_error(d, token, state, c, &e);
    }
}

fn hold_error(
    d: &mut Driver,
    token: usize,
    state: &mut HashMap<usize, (HoldState, Instant)>,
    c: &mut HoldCounts<'_>,
    e: &io::Error,
) {
    match state.remove(&token) {
        Some((HoldState::Held, _)) => {
            *c.held -= 1;
            *c.lost_after += 1;
        }
        Some(_) => *c.failed += 1,
        None => {}
    }
    d.error(e);
    d.close(token);
}

// ---- watch ----

/// SplitMix64: a small fixed generator, so the keys are the same on every machine.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The busy-lamp keys of phone `k`: `o.dialogs` distinct users below `o.users` (a partial
/// Fisher-Yates shuffle seeded by `o.seed` and `k`).
fn blf_keys(o: &Options, k: usize) -> Vec<usize> {
    let mut state = o.seed ^ (k as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut all: Vec<usize> = (0..o.users).collect();
    for j in 0..o.dialogs {
        let pick = j + (splitmix(&mut state) % (o.users - j) as u64) as usize;
        all.swap(j, pick);
    }
    all.truncate(o.dialogs);
    all
}

/// `blf-lists`: every phone's list as one rls-services document.
fn blf_lists(o: &Options) {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"\n    \
         xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n",
    );
    for k in 0..o.conns {
        out.push_str(&format!(
            "  <service uri=\"sip:blf{k}@{DOMAIN}\">\n    <list>\n"
        ));
        for u in blf_keys(o, k) {
            out.push_str(&format!("      <rl:entry uri=\"sip:user{u}@{DOMAIN}\"/>\n"));
        }
        out.push_str(
            "    </list>\n    <packages><package>dialog</package></packages>\n  </service>\n",
        );
    }
    out.push_str("</rls-services>\n");
    print!("{out}");
}

/// Dialogs per connection: one list subscription, or one per key (or `--dialogs`).
fn per_conn(o: &Options) -> usize {
    if o.blf == Some(Blf::List) {
        1
    } else {
        o.dialogs
    }
}

/// The SUBSCRIBE of watcher `i`, on connection `i / per_conn(o)`.
fn subscribe(o: &Options, i: usize, local: SocketAddr) -> String {
    let t = transport_name(o);
    let param = t.to_ascii_lowercase();
    let (target, event) = match o.blf {
        None => (
            format!("user{}", i % o.pres),
            "Event: presence\r\nAccept: application/pidf+xml\r\n",
        ),
        Some(Blf::Single) => (
            format!("user{}", blf_keys(o, i / o.dialogs)[i % o.dialogs]),
            "Event: dialog\r\nAccept: application/dialog-info+xml\r\n",
        ),
        Some(Blf::List) => (
            format!("blf{i}"),
            "Event: dialog\r\nSupported: eventlist\r\n\
             Accept: multipart/related, application/rlmi+xml, application/dialog-info+xml\r\n",
        ),
    };
    format!(
        "SUBSCRIBE sip:{target}@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {local};branch=z9hG4bK-watch{i};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:w{i}@{DOMAIN}>;tag=w{i}\r\n\
         To: <sip:{target}@{DOMAIN}>\r\n\
         Call-ID: watch{i}@{ip}\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:w{i}@{local};transport={param}>\r\n\
         {event}\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip()
    )
}

/// The watcher index of one of our Call-IDs (`watchI@...`).
fn watcher(call_id: &str) -> Option<usize> {
    call_id
        .strip_prefix("watch")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

#[derive(Default)]
struct WatchCounts {
    subscribed: u64,
    initial: u64,
    later: u64,
    failed: u64,
    closed: u64,
    /// `--blf`: `<dialog-info>` documents received, the changes they covered, and the
    /// NOTIFYs' bytes.
    states: u64,
    covered: u64,
    notify_bytes: u64,
    /// The last sequence number each (watcher, user) had.
    last_seq: HashMap<(usize, u32), u64>,
}

impl WatchCounts {
    /// Counts the dialog-info documents of a NOTIFY to watcher `i`.
    fn blf_states(&mut self, i: usize, msg: &str) {
        let body = msg.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        for doc in body.split("<dialog-info").skip(1) {
            self.states += 1;
            let head = doc.split('>').next().unwrap_or("");
            let user = head
                .split("entity=\"sip:user")
                .nth(1)
                .and_then(|r| r.split('@').next())
                .and_then(|n| n.parse::<u32>().ok());
            let seq = doc
                .split("impp-seq:")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if let Some(user) = user {
                let last = self.last_seq.entry((i, user)).or_insert(0);
                if seq > *last {
                    self.covered += seq - *last;
                    *last = seq;
                }
            }
        }
    }
}

fn watch(o: &Options) {
    const IN_FLIGHT: usize = 64;
    let mut d = Driver::new(o);
    let per_conn = per_conn(o);
    let dialogs = o.conns * per_conn;
    // Highest NOTIFY CSeq of each dialog (0: none yet).
    let mut last_cseq = vec![0u32; dialogs];
    // Connections whose SUBSCRIBEs are queued but not sent: not up yet.
    let mut opening: HashMap<usize, ()> = HashMap::new();
    let mut c = WatchCounts::default();
    let mut stats = o
        .stats_file
        .as_ref()
        .map(|p| std::fs::File::create(p).expect("create the stats file"));
    let mut next_sample = Instant::now();
    let mut resumed = false;
    let deadline = Instant::now() + Duration::from_secs_f64(o.max_s);
    eprintln!(
        "tls_swarm: {} watchers on {} {} connections to {}, {} presentities",
        dialogs,
        o.conns,
        transport_name(o),
        o.server,
        o.pres
    );
    loop {
        let now = Instant::now();
        if now >= deadline {
            eprintln!("tls_swarm: time limit reached");
            break;
        }
        // Held at the pause until the resume file exists; then on at the same rate, as if
        // the pause had not been (a burst of the second half would measure the server's
        // queues, not its state).
        let mut paused = None;
        if let Some(at) = o.pause_at.filter(|&at| d.next >= at && !resumed) {
            if o.resume_file.as_ref().is_some_and(|p| p.exists()) {
                resumed = true;
                let behind = Duration::from_secs_f64(at as f64 * per_conn as f64 / o.rate);
                d.start = now.checked_sub(behind).unwrap_or(now);
            } else {
                paused = Some(at);
            }
        }
        // Connections at `rate / dialogs` a second (the SUBSCRIBE rate is `rate`).
        let due = ((now - d.start).as_secs_f64() * o.rate / per_conn as f64) as usize + 1;
        let limit = paused.unwrap_or(o.conns).min(o.conns);
        while d.next < limit.min(due) && opening.len() < IN_FLIGHT {
            let k = d.next;
            match d.open(o) {
                Some(token) => {
                    let conn = d.conns.get_mut(&token).expect("just opened");
                    let local = conn.local;
                    for j in 0..per_conn {
                        conn.send(subscribe(o, k * per_conn + j, local).as_bytes());
                    }
                    opening.insert(token, ());
                    pump_watch(o, &mut d, token, &mut last_cseq, &mut opening, &mut c);
                }
                None => c.failed += per_conn as u64,
            }
        }
        for token in d.wait(Duration::from_millis(10)) {
            pump_watch(o, &mut d, token, &mut last_cseq, &mut opening, &mut c);
        }
        if now >= next_sample {
            if let Some(f) = stats.as_mut() {
                let _ = writeln!(
                    f,
                    "{:.3} {} {} {} {} {} {} {} {}",
                    epoch(),
                    c.subscribed,
                    c.initial,
                    c.later,
                    c.failed,
                    c.closed,
                    c.states,
                    c.covered,
                    c.notify_bytes
                );
                let _ = f.flush();
            }
            next_sample = now + Duration::from_millis(100);
        }
        if d.next >= o.conns && o.until_file.as_ref().is_some_and(|p| p.exists()) {
            break;
        }
    }
    println!(
        "tls_swarm: watch done: {} SUBSCRIBE 2xx, {} initial NOTIFYs, {} later NOTIFYs, \
         {} failed, {} connections closed by the server; errors: {}",
        c.subscribed,
        c.initial,
        c.later,
        c.failed,
        c.closed,
        d.errors_text()
    );
}

fn pump_watch(
    o: &Options,
    d: &mut Driver,
    token: usize,
    last_cseq: &mut [u32],
    opening: &mut HashMap<usize, ()>,
    c: &mut WatchCounts,
) {
    let Some(conn) = d.conns.get_mut(&token) else {
        return;
    };
    let mut result = conn.pump();
    if conn.up() && opening.remove(&token).is_some() && result.is_ok() {
        // Over TLS the SUBSCRIBEs go into the session now that the handshake is done.
        result = conn.pump();
    }
    let mut answered = false;
    for msg in conn.messages() {
        let Some((n, method)) = cseq(&msg) else {
            continue;
        };
        if let Some(code) = status(&msg) {
            if method == "SUBSCRIBE" && code >= 200 {
                if (200..300).contains(&code) {
                    c.subscribed += 1;
                } else {
                    c.failed += 1;
                }
            }
            continue;
        }
        if !msg.starts_with("NOTIFY ") {
            continue;
        }
        let i = header(&msg, "Call-ID", "i")
            .and_then(watcher)
            .filter(|i| *i < last_cseq.len());
        if let Some(i) = i {
            if last_cseq[i] == 0 {
                c.initial += 1;
            } else if n > last_cseq[i] {
                c.later += 1;
            }
            last_cseq[i] = last_cseq[i].max(n);
            if o.blf.is_some() {
                c.notify_bytes += msg.len() as u64;
                c.blf_states(i, &msg);
            }
        }
        conn.send(ok_to(&msg).as_bytes());
        answered = true;
    }
    if answered && result.is_ok() {
        result = conn.pump();
    }
    if let Err(e) = result {
        opening.remove(&token);
        c.closed += 1;
        d.error(&e);
        d.close(token);
    }
}
