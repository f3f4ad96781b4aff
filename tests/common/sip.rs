//! A SIP server over an engine on loopback and a small SIP client written over a UDP socket,
//! for the tests that talk to the server at the wire: requests built as text, answers and
//! the server's own requests (answered 200) read back as parsed messages.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::engine::{AuthAction, Engine, EngineConfig, ManualClock};
use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::transport::ListenAddr;
use impp::sip::{SipLimits, SipMessage, Transport};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::{Credential, MemoryStore, SqliteStore};

use super::kamailio::TempDir;

pub const DOMAIN: &str = "example.test";

/// `sip:<user>@DOMAIN`.
pub fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

pub struct Server {
    pub engine: Arc<Engine>,
    pub server: SipServer,
    /// The manual clock of a server made by [`Server::clocked`].
    pub clock: Option<Arc<ManualClock>>,
}

impl Server {
    pub fn start(authenticate: bool) -> Server {
        Server::start_with(authenticate, 65536, |_| {})
    }

    pub fn start_with(
        authenticate: bool,
        max_message_size: usize,
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Server {
        Server::start_configured(
            authenticate,
            |c| c.max_message_size = max_message_size,
            tweak,
        )
    }

    /// A server on a manual clock: no timer fires until the test moves it
    /// ([`Server::advance`]).
    pub fn clocked(authenticate: bool, tweak: impl FnOnce(&mut SipServerConfig)) -> Server {
        let clock = ManualClock::new();
        let c = clock.clone();
        let mut server = Server::start_configured(authenticate, move |e| e.clock = c, tweak);
        server.clock = Some(clock);
        server
    }

    /// Moves the clock of a [`Server::clocked`] forward by `by` and runs what fell due, in
    /// the engine and in the SIP stack (see [`super::clock::sync`]).
    pub fn advance(&self, by: Duration) {
        let clock = self
            .clock
            .as_ref()
            .expect("a server made by Server::clocked");
        super::clock::advance(clock, by, &[&self.engine], &[&self.server]);
    }

    /// A server on `clock` over the SQLite file `db`, which outlives it: a restart is
    /// [`Server::stop`] and this again on the same file.
    pub fn on_sqlite(db: &Path, clock: &Arc<ManualClock>) -> Server {
        let store = Arc::new(SqliteStore::open(db).unwrap());
        let c = clock.clone();
        let mut s = Server::start_configured(
            false,
            move |e| {
                e.clock = c;
                e.store = store;
            },
            |_| {},
        );
        s.clock = Some(clock.clone());
        s
    }

    /// Stops the SIP server and the engine, as a process exit would (the store is closed).
    pub fn stop(self) {
        let Server { engine, server, .. } = self;
        drop(server);
        engine.shutdown().unwrap();
        drop(engine);
    }

    /// Whether no request reached `client` (none kept from before either): the engine and
    /// the stack run what is due (a NOTIFY claimed by an answer goes out on the timer
    /// thread), then an OPTIONS round trip over the same socket, whose answer comes after
    /// anything the server sent before it. What arrives meanwhile is kept in
    /// `client.requests`.
    pub fn nothing_arrives(&self, client: &mut Client) -> bool {
        self.engine.sync().unwrap();
        assert!(self.server.sync());
        assert_eq!(client.options().status(), Some(200));
        client.requests.is_empty()
    }

    /// A server whose engine's configuration `engine` may change first (a manual clock, say).
    pub fn start_configured(
        authenticate: bool,
        engine: impl FnOnce(&mut EngineConfig),
        tweak: impl FnOnce(&mut SipServerConfig),
    ) -> Server {
        let store = Arc::new(MemoryStore::new());
        let mut config = EngineConfig {
            domains: vec![DOMAIN.into()],
            default_policy: AuthAction::Allow,
            workers: 2,
            store,
            ..EngineConfig::default()
        };
        engine(&mut config);
        let engine = Arc::new(Engine::new(config).unwrap());
        for user in ["alice", "bob", "carol"] {
            let uri = format!("sip:{user}@{DOMAIN}").parse().unwrap();
            engine
                .set_user(Credential::new(uri, DOMAIN, &format!("{user}-pw")))
                .unwrap();
        }
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = SipServerConfig::new(vec![ListenAddr::udp(local), ListenAddr::tcp(local)]);
        config.authenticate = authenticate;
        tweak(&mut config);
        let server = SipServer::start(engine.clone(), config).unwrap();
        Server {
            engine,
            server,
            clock: None,
        }
    }

    pub fn udp(&self) -> SocketAddr {
        self.addr(impp::sip::transport::Proto::Udp)
    }

    pub fn tcp(&self) -> SocketAddr {
        self.addr(impp::sip::transport::Proto::Tcp)
    }

    pub fn addr(&self, proto: impp::sip::transport::Proto) -> SocketAddr {
        self.server
            .local_addrs()
            .iter()
            .find(|l| l.proto == proto)
            .unwrap()
            .addr
    }
}

/// A SQLite file in a directory of its own (removed when dropped) and a manual clock: what a
/// test stops a server on and starts it again on, as a process restarts.
pub struct SqliteFile {
    _dir: TempDir,
    pub db: PathBuf,
    pub clock: Arc<ManualClock>,
}

impl SqliteFile {
    pub fn new(name: &str) -> SqliteFile {
        let dir = TempDir::new(name);
        let db = dir.path().join("impp.db");
        SqliteFile {
            _dir: dir,
            db,
            clock: ManualClock::new(),
        }
    }

    /// A server over this file on this clock ([`Server::on_sqlite`]).
    pub fn start(&self) -> Server {
        Server::on_sqlite(&self.db, &self.clock)
    }

    /// A restart: stops `s`, moves the clock by `down` (the time the process was down), and
    /// starts a server again on the file. Its clients must be pointed at the new one.
    pub fn restart(&self, s: Server, down: Duration) -> Server {
        s.stop();
        self.clock.advance(down);
        self.start()
    }
}

/// A SIP client on one UDP socket.
pub struct Client {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    /// The domain of its address of record (default DOMAIN).
    pub domain: String,
    pub tag: String,
    pub cseq: AtomicU32,
    /// Requests received from the server that were not yet looked at.
    pub requests: Vec<SipMessage>,
    /// Whether requests from the server are answered `200` as they are read (default);
    /// off, the test answers them itself ([`Client::answer_with`]).
    pub auto_answer: bool,
}

static N: AtomicU32 = AtomicU32::new(1);

pub fn token() -> String {
    format!("t{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn parse(bytes: &[u8]) -> SipMessage {
    SipMessage::parse(bytes, &SipLimits::DEFAULT, Transport::Datagram).unwrap()
}

impl Client {
    pub fn new(server: SocketAddr, user: &str) -> Client {
        Client::bound(server, user, "127.0.0.1")
    }

    /// A client on a socket of loopback address `ip` (any of 127.0.0.0/8), for tests that
    /// need requests from several source addresses.
    pub fn bound(server: SocketAddr, user: &str, ip: &str) -> Client {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Client {
            socket,
            server,
            user: user.into(),
            domain: DOMAIN.into(),
            tag: token(),
            cseq: AtomicU32::new(1),
            requests: Vec::new(),
            auto_answer: true,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The Contact this client registers and subscribes with.
    pub fn contact_uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.local())
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }

    /// A request from this client; `extra` are more header lines (CRLF-terminated).
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        to: &str,
        call_id: &str,
        extra: &str,
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        let cseq = self.cseq.fetch_add(1, Ordering::Relaxed);
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: <{aor}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{local}>\r\n{extra}",
            local = self.local(),
            b = token(),
            aor = self.aor(),
            tag = self.tag,
            user = self.user,
        );
        let body = match body {
            Some((ct, bytes)) => {
                text.push_str(&format!("Content-Type: {ct}\r\n"));
                bytes
            }
            None => &[],
        };
        text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut out = text.into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// Sends `request` and waits for its final response, keeping requests that arrive in
    /// between (and answering them 200).
    pub fn transact(&mut self, request: &[u8]) -> SipMessage {
        let call_id = self.send(request);
        self.final_response(&call_id)
    }

    /// Sends `request` without waiting for its answer; its Call-ID.
    pub fn send(&self, request: &[u8]) -> String {
        self.socket.send_to(request, self.server).unwrap();
        SipMessage::parse_lenient(request, &SipLimits::DEFAULT, Transport::Datagram)
            .unwrap()
            .call_id()
            .unwrap()
            .to_string()
    }

    /// The final response of the request with `call_id` (answering the requests that come
    /// meanwhile).
    pub fn final_response(&mut self, call_id: &str) -> SipMessage {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let m = parse(&buf[..n]);
            if m.is_request() {
                if self.auto_answer {
                    self.answer(&m);
                }
                self.requests.push(m);
                continue;
            }
            if m.call_id().unwrap() == call_id && m.status().unwrap() >= 200 {
                return m;
            }
        }
        panic!("no final response to {call_id}");
    }

    /// Sends `request`, answering a 401 (or a proxy's 407) challenge once with this client's
    /// password.
    pub fn transact_auth(&mut self, build: impl Fn(&Client, &str) -> Vec<u8>) -> SipMessage {
        let first = build(self, "");
        let r = self.transact(&first);
        let (challenge_header, credentials_header) = match r.status() {
            Some(401) => ("WWW-Authenticate", "Authorization"),
            Some(407) => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => return r,
        };
        let challenge = r
            .headers(challenge_header)
            .find(|c| c.contains("MD5"))
            .expect("an MD5 challenge")
            .to_string();
        let param = |name: &str| {
            let i = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            challenge[i..].split('"').next().unwrap().to_string()
        };
        let (realm, nonce) = (param("realm"), param("nonce"));
        let credential = Credential::new(
            self.aor().parse().unwrap(),
            &realm,
            &format!("{}-pw", self.user),
        );
        let m = parse(&first);
        let method = m.method().unwrap().to_string();
        let uri = m.request_uri_text().unwrap().to_string();
        let cnonce = token();
        let response = expected_response(
            Algorithm::Md5,
            &credential.ha1_md5,
            &method,
            &uri,
            &nonce,
            Some(("auth", "00000001", &cnonce)),
        );
        let auth = format!(
            "{credentials_header}: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n",
            self.user
        );
        self.transact(&build(self, &auth))
    }

    pub fn answer(&self, request: &SipMessage) {
        self.answer_with(request, 200, "OK", "");
    }

    /// Answers `request` with `status` and `reason`; `extra` are more header lines
    /// (CRLF-terminated).
    pub fn answer_with(&self, request: &SipMessage, status: u16, reason: &str, extra: &str) {
        let mut text = format!("SIP/2.0 {status} {reason}\r\n{extra}");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in request.headers(name) {
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        self.socket.send_to(text.as_bytes(), self.server).unwrap();
    }

    /// Waits for a request from the server (answering it 200).
    pub fn next_request(&mut self, method: &str) -> SipMessage {
        if let Some(i) = self
            .requests
            .iter()
            .position(|m| m.method() == Some(method))
        {
            return self.requests.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let m = parse(&buf[..n]);
            if m.is_request() {
                if self.auto_answer {
                    self.answer(&m);
                }
                if m.method() == Some(method) {
                    return m;
                }
                self.requests.push(m);
            }
        }
        panic!("no {method} arrived");
    }

    /// An OPTIONS to the domain; its answer.
    pub fn options(&mut self) -> SipMessage {
        let target = format!("sip:{DOMAIN}");
        let options = self.request(
            "OPTIONS",
            &target,
            &format!("<{target}>"),
            &token(),
            "",
            None,
        );
        self.transact(&options)
    }

    pub fn register(&mut self, expires: u32) -> SipMessage {
        let aor = self.aor();
        let call_id = format!("reg-{}", self.tag);
        self.transact_auth(|c, auth| {
            c.request(
                "REGISTER",
                &format!("sip:{DOMAIN}"),
                &format!("<{aor}>"),
                &call_id,
                &format!("Expires: {expires}\r\n{auth}"),
                None,
            )
        })
    }

    pub fn publish(&mut self, extra: &str, body: Option<&str>) -> SipMessage {
        let aor = self.aor();
        let call_id = token();
        let extra = extra.to_string();
        let body = body.map(str::to_owned);
        self.transact_auth(move |c, auth| {
            c.request(
                "PUBLISH",
                &aor,
                &format!("<{aor}>"),
                &call_id,
                &format!("Event: presence\r\n{extra}{auth}"),
                body.as_deref()
                    .map(|b| ("application/pidf+xml", b.as_bytes())),
            )
        })
    }
}

/// The To tag of an answer: the dialog's tag on the server's side.
pub fn to_tag(m: &SipMessage) -> String {
    m.to().unwrap().tag().unwrap().to_string()
}

/// The CSeq number of a message.
pub fn cseq(m: &SipMessage) -> u32 {
    m.cseq().unwrap().seq
}

pub fn header_map(m: &SipMessage) -> HashMap<String, String> {
    m.all_headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect()
}
