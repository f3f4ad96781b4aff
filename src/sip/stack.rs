//! The SIP stack (DESIGN §5): what every role stands on, knowing no role. It owns the
//! transport, the server and client transaction tables, the clock (the engine's) and the
//! timer thread's alarm, and the tokens (tags, branches, Call-IDs: a split of the engine's
//! random generator). Roles send requests through it and answer requests in their
//! transactions; a client transaction's outcome goes to whoever sent the request (a
//! [`Waiting`] it handed over with it), whatever role that is.
//!
//! # What comes in
//!
//! [`Stack::handle`] parses what the transport received, absorbs retransmitted requests
//! (answering them again when they were answered), answers a malformed request `400`, and
//! gives a new request to the node ([`Dispatch::request`]). A response first goes to the node
//! ([`Dispatch::response`]: the forwarder passes the answers to forwarded requests on whole),
//! then completes its client transaction, whose waiter gets the outcome. A final response
//! whose waiter needs no more than a note (a NOTIFY accepted, a relayed MESSAGE answered) is
//! taken on the transport's I/O thread itself, read in place ([`Stack::early_final_response`]).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use super::alarm::Alarm;
use super::builder::{bad_request, MessageBuilder};
use super::guard::GuardCounters;
use super::header::{NameAddr, Via};
use super::message::SipMessage;
use super::proxy::with_received;
use super::traffic::TrafficCounters;
use super::transaction::{
    Arrival, ClientAction, ClientTransactions, ServerKey, ServerTransactions, Timers,
};
use super::transport::{
    via_received_rport, ConnectionId, Inbound, ListenAddr, Outbound, PeerCertificate, Proto,
    SendFailure, Transport,
};
use super::{SipLimits, Transport as Framing};
use crate::engine::random::SharedRandom;
use crate::engine::Clock;
use crate::error::{Error, Result};
use crate::log;
use crate::uri::Uri;

/// What the stack is set up with.
#[derive(Debug, Clone)]
pub(crate) struct StackConfig {
    pub(crate) timers: Timers,
    pub(crate) limits: SipLimits,
    /// The Server (answers) and User-Agent (requests) header value.
    pub(crate) server_name: String,
}

/// Whoever waits for the outcome of a request sent in a client transaction.
pub(crate) trait Waiting: Send {
    /// The final outcome: the status of the final response (408 and no response when none
    /// came in time).
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>);

    /// Whether a final response with `status` needs nothing but its status, so that it may
    /// be taken on the transport's I/O thread without a full parse (see
    /// [`Stack::early_final_response`]). Default: no.
    fn early(&self, _status: u16) -> bool {
        false
    }
}

/// Where the stack hands what is not its own: the node.
pub(crate) trait Dispatch: Send + Sync {
    /// A new request (not a retransmission), checked well-formed.
    fn request(&self, request: Request);

    /// Whether the response to the request sent with Via branch `branch` answers a request
    /// passed on whole (a proxy's): then it is not completed before the full check, but
    /// given to [`Dispatch::response`].
    fn passes_on(&self, _branch: &str) -> bool {
        false
    }

    /// A response, before it completes a client transaction; `true` when it was taken (the
    /// answer to a request passed on whole, which the taker completes itself).
    fn response(&self, _response: &SipMessage) -> bool {
        false
    }

    /// The transport could not send `failure.data`.
    fn unsent(&self, _failure: &SendFailure) {}
}

/// The SIP stack: see the module documentation.
pub(crate) struct Stack {
    config: StackConfig,
    transport: OnceLock<Arc<Transport>>,
    /// The bound addresses as text, by transport and family (written into every request).
    #[allow(clippy::type_complexity)]
    local_text: OnceLock<Vec<(Proto, bool, Arc<str>)>>,
    server_tx: Mutex<ServerTransactions>,
    client_tx: Mutex<ClientTransactions<Box<dyn Waiting>>>,
    /// The engine's clock: every SIP timer runs on it.
    clock: Arc<dyn Clock>,
    /// Tags, branches and Call-IDs: a split of the engine's generator.
    random: SharedRandom,
    /// Makes tokens unique.
    counter: AtomicU64,
    /// Wakes the timer thread (see [`super::alarm`]).
    alarm: Alarm,
    /// Refusals of every limit, throttle and trust check (see [`super::guard`]).
    guard: GuardCounters,
    /// Answers and requests by method and class (see [`super::traffic`]).
    traffic: TrafficCounters,
}

/// A request being handled (cloned by a handler that answers it later, from another thread).
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) message: SipMessage,
    pub(crate) peer: Peer,
    pub(crate) key: ServerKey,
}

/// Where a request came from (and where its answer goes).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) proto: Proto,
    pub(crate) source: SocketAddr,
    pub(crate) connection: Option<ConnectionId>,
    /// The certificate a TLS peer presented (mutual TLS), verified during the handshake.
    pub(crate) certificate: Option<PeerCertificate>,
}

impl Peer {
    pub(crate) fn reliable(&self) -> bool {
        self.proto.is_stream()
    }
}

/// A response being built, with its status.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) builder: MessageBuilder,
}

impl Reply {
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Result<&mut Reply> {
        self.builder.header(name, value)?;
        Ok(self)
    }
}

/// Locks `m`, going on after a panic elsewhere (the tables stay consistent: every change
/// to them is one step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stack {
    pub(crate) fn new(config: StackConfig, clock: Arc<dyn Clock>, random: SharedRandom) -> Stack {
        Stack {
            server_tx: Mutex::new(ServerTransactions::new(config.timers)),
            // Answered client transactions end at once (see `without_timer_k`).
            client_tx: Mutex::new(ClientTransactions::new(config.timers).without_timer_k()),
            config,
            transport: OnceLock::new(),
            local_text: OnceLock::new(),
            clock,
            random,
            counter: AtomicU64::new(1),
            alarm: Alarm::default(),
            guard: GuardCounters::default(),
            traffic: TrafficCounters::default(),
        }
    }

    /// Vouches for the connection a request came on (it authenticated, or came from a
    /// trusted peer): it is no longer closed as a stranger's (see
    /// [`super::transport::TransportConfig::unvouched_timeout`]).
    pub(crate) fn vouch(&self, peer: &Peer) {
        if let (Some(connection), Some(t)) = (peer.connection, self.transport.get()) {
            t.vouch(connection);
        }
    }

    /// The refusal counters every role adds to (see [`super::guard`]).
    pub(crate) fn guard(&self) -> &GuardCounters {
        &self.guard
    }

    /// The traffic counters (see [`super::traffic`]).
    pub(crate) fn traffic(&self) -> &TrafficCounters {
        &self.traffic
    }

    /// Server and client transactions in their tables now (each table locked a moment).
    pub(crate) fn transactions(&self) -> (usize, usize) {
        let server = lock(&self.server_tx).len();
        let client = lock(&self.client_tx).len();
        (server, client)
    }

    /// Sets the transport (once, right after it started: it is made with handlers that
    /// call back into the stack).
    pub(crate) fn attach(&self, transport: Arc<Transport>) {
        let _ = self.transport.set(transport);
    }

    /// The bound addresses (empty before the transport is attached).
    pub(crate) fn local_addrs(&self) -> &[ListenAddr] {
        self.transport.get().map_or(&[], |t| t.local_addrs())
    }

    pub(crate) fn config(&self) -> &StackConfig {
        &self.config
    }

    pub(crate) fn limits(&self) -> &SipLimits {
        &self.config.limits
    }

    /// The clock's time (ms).
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The clock's Unix time (ms).
    pub(crate) fn unix_ms(&self) -> u64 {
        self.clock.unix_ms()
    }

    pub(crate) fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// 32 random bits.
    pub(crate) fn random_u32(&self) -> u32 {
        (self.random.next_u64() >> 32) as u32
    }

    /// 64 random bits.
    pub(crate) fn random_u64(&self) -> u64 {
        self.random.next_u64()
    }

    /// A random fraction in `[low, high)`, for jitter.
    pub(crate) fn jitter(&self, low: f64, high: f64) -> f64 {
        self.random.fraction(low, high)
    }

    /// A fresh token (tags, branches, Call-IDs): a counter and random bits.
    pub(crate) fn token(&self) -> String {
        let mut token = String::with_capacity(32);
        self.push_token(&mut token);
        token
    }

    /// Appends a fresh token (see [`Stack::token`]); written by hand rather than with
    /// `format!`, as every request sent needs one.
    fn push_token(&self, out: &mut String) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        push_hex(out, n, 1);
        push_hex(out, u64::from(self.random_u32()), 8);
    }

    /// A new Via branch (RFC 3261 §8.1.1.7: the magic cookie, then a fresh token).
    pub(crate) fn branch(&self) -> String {
        let mut branch = String::with_capacity(40);
        branch.push_str("z9hG4bK");
        self.push_token(&mut branch);
        branch
    }

    /// Sends `data` (a request or response) to `dest` over `proto` (on `connection` when
    /// given).
    pub(crate) fn send(
        &self,
        proto: Proto,
        dest: SocketAddr,
        connection: Option<ConnectionId>,
        data: Vec<u8>,
    ) {
        if let Some(t) = self.transport.get() {
            // A new TLS connection's name comes from `tls_server_name`, asked by the
            // transport only when it opens one.
            let _ = t.send(Outbound {
                proto,
                dest,
                data,
                connection,
                server_name: None,
            });
        }
    }

    /// Closes the connection this stack opened to `dest` over `proto` (a dead flow; see
    /// [`Transport::close_flow`]); messages sent after this open a new one.
    pub(crate) fn close_flow(&self, proto: Proto, dest: SocketAddr) {
        if let Some(t) = self.transport.get() {
            t.close_flow(proto, dest);
        }
    }

    /// The address this stack uses on `proto` for the address family of `dest`, as text.
    pub(crate) fn local_for(&self, proto: Proto, dest: SocketAddr) -> Arc<str> {
        let Some(transport) = self.transport.get() else {
            return Arc::from("127.0.0.1:5060");
        };
        let texts = self.local_text.get_or_init(|| {
            transport
                .local_addrs()
                .iter()
                .map(|l| (l.proto, l.addr.is_ipv6(), Arc::from(l.addr.to_string())))
                .collect()
        });
        // The first bound address of the transport and family, as `Transport::local_addr`.
        texts
            .iter()
            .find(|(p, v6, _)| *p == proto && *v6 == dest.is_ipv6())
            .map_or_else(|| Arc::from("127.0.0.1:5060"), |(_, _, t)| t.clone())
    }

    /// The Contact this stack puts in its requests and dialog-creating answers.
    pub(crate) fn contact_for(&self, proto: Proto, peer: SocketAddr) -> String {
        let local = self.local_for(proto, peer);
        match proto {
            Proto::Udp => format!("<sip:{local}>"),
            _ => format!("<sip:{local};transport={}>", proto.param()),
        }
    }

    /// A request sent to `dest` over `proto`: its start line, a Via with a new branch
    /// (returned) and `rport`, and Max-Forwards; the caller adds the rest.
    pub(crate) fn new_request(
        &self,
        method: &str,
        uri: &str,
        proto: Proto,
        dest: SocketAddr,
    ) -> Result<(MessageBuilder, String)> {
        let branch = self.branch();
        let mut b = MessageBuilder::request(method, uri)?;
        b.header_parts(
            "Via",
            &[
                "SIP/2.0/",
                proto.as_str(),
                " ",
                &self.local_for(proto, dest),
                ";branch=",
                &branch,
                ";rport",
            ],
        )?;
        b.header("Max-Forwards", "70")?;
        Ok((b, branch))
    }

    /// Sends a request made by [`Stack::new_request`] in a new client transaction, whose
    /// outcome goes to `waiting`.
    pub(crate) fn send_request(
        &self,
        branch: String,
        bytes: Vec<u8>,
        proto: Proto,
        dest: SocketAddr,
        waiting: Box<dyn Waiting>,
    ) {
        let now = self.now();
        self.traffic.sent(&bytes);
        // Kept for retransmission over UDP only (a stream transport does not retransmit).
        let kept = if proto.is_stream() {
            Vec::new()
        } else {
            bytes.clone()
        };
        lock(&self.client_tx).start(branch, kept, dest, proto.is_stream(), waiting, now);
        // Its first timer: E over UDP, F over TCP.
        let first = if proto.is_stream() {
            self.config.timers.timeout()
        } else {
            self.config.timers.t1
        };
        self.alarm.at(now + first.as_millis() as u64);
        self.send(proto, dest, None, bytes);
    }

    /// Ends the client transaction of the request in `data` that could not be sent, as if
    /// answered `503` (RFC 3261 §8.1.3.1: a transport error is a 503): its waiter hears at
    /// once rather than when the transaction times out. Off the I/O thread (waiters may work
    /// with the engine).
    pub(crate) fn fail_unsent(&self, data: &[u8]) {
        let Ok(m) = SipMessage::parse_lenient(data, self.limits(), Framing::Stream) else {
            return;
        };
        if !m.is_request() {
            return; // a response: no transaction of ours waits for it
        }
        let Some(branch) = m.top_via().ok().and_then(|v| v.branch().map(str::to_owned)) else {
            return;
        };
        let waiting = lock(&self.client_tx).respond(&branch, 503, true, self.now());
        if let Some(waiting) = waiting {
            self.traffic.outcome(503);
            waiting.outcome(503, None);
        }
    }

    /// Completes the client transaction of `branch` with a final `status`, taking its
    /// waiter (for a response passed on whole by its taker, see [`Dispatch::response`]).
    pub(crate) fn complete(&self, branch: &str, status: u16, reliable: bool) {
        let waiting = lock(&self.client_tx).respond(branch, status, reliable, self.now());
        if waiting.is_some() {
            self.traffic.outcome(status);
        }
    }

    /// What came in from the transport (on a worker thread): see the module documentation.
    pub(crate) fn handle(&self, inbound: Inbound, dispatch: &dyn Dispatch) {
        let framing = match inbound.proto {
            Proto::Tcp | Proto::Tls => Framing::Stream,
            // A WebSocket message is one whole SIP message, as a datagram is (RFC 7118 §5:
            // Content-Length is optional).
            Proto::Udp | Proto::Ws | Proto::Wss => Framing::Datagram,
        };
        let peer = Peer {
            proto: inbound.proto,
            source: inbound.source,
            connection: inbound.connection,
            certificate: inbound.certificate.clone(),
        };
        let message = match SipMessage::parse_lenient(&inbound.data, &self.config.limits, framing) {
            Ok(m) => m,
            Err(e) => {
                log::debug!(
                    "SIP: dropped unparseable message from {}: {e}",
                    inbound.source
                );
                return;
            }
        };
        // The answers to this stack's own requests (NOTIFYs, mostly: one per notification)
        // need only their top Via's branch and their status: the whole-message check is left
        // for the rest. Answers to requests passed on whole are the dispatcher's, after it.
        if !message.is_request() && message.status().unwrap_or(0) >= 200 {
            if let Ok(via) = message.top_via() {
                if via.branch().is_some_and(|b| !dispatch.passes_on(b))
                    && self.complete_client_transaction(&message, &via)
                {
                    return;
                }
            }
        }
        if let Err(problem) = message.check() {
            if message.is_request() && message.can_answer_bad_request() {
                log::debug!("SIP: 400 to {}: {problem}", inbound.source);
                if let Ok(bytes) = bad_request(&message, &problem, Some(&self.token())) {
                    self.traffic
                        .answered(message.method().unwrap_or_default(), 400);
                    self.send(peer.proto, peer.source, peer.connection, bytes);
                }
            } else {
                log::debug!(
                    "SIP: dropped bad message from {}: {problem}",
                    inbound.source
                );
            }
            return;
        }
        if message.is_request() {
            self.request(message, peer, dispatch);
        } else if !dispatch.response(&message) {
            if let Ok(via) = message.top_via() {
                self.complete_client_transaction(&message, &via);
            }
        }
    }

    /// Answers a request from an address over its rate limit `503 Service Unavailable`
    /// with `Retry-After`, statelessly (see [`super::rate`]); anything else is dropped.
    pub(crate) fn refuse_over_rate(&self, inbound: Inbound, retry_after: u32) {
        let framing = if inbound.proto.is_stream() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        let Ok(message) = SipMessage::parse_lenient(&inbound.data, &self.config.limits, framing)
        else {
            return;
        };
        if !message.is_request() || message.method() == Some("ACK") || message.check().is_err() {
            return;
        }
        let built = (|| -> Result<Vec<u8>> {
            let reason = "Service Unavailable (too many requests from your address)";
            let mut b = MessageBuilder::response_to(&message, 503, reason, Some(&self.token()))?;
            b.header("Retry-After", &retry_after.to_string())?;
            b.header("Server", &self.config.server_name)?;
            Ok(b.build())
        })();
        if let Ok(bytes) = built {
            self.traffic
                .answered(message.method().unwrap_or_default(), 503);
            self.send(inbound.proto, inbound.source, inbound.connection, bytes);
        }
    }

    fn request(&self, message: SipMessage, peer: Peer, dispatch: &dyn Dispatch) {
        let method = message.method().unwrap_or_default().to_string();
        if method == "ACK" {
            return;
        }
        let via = match message.top_via() {
            Ok(v) => v,
            Err(_) => return,
        };
        let key = ServerKey {
            branch: via.branch().unwrap_or_default().to_string(),
            sent_by: format!(
                "{}:{}",
                via.host().to_ascii_lowercase(),
                via.port().unwrap_or(5060)
            ),
            method,
        };
        match lock(&self.server_tx).arrive(key.clone(), self.now()) {
            Arrival::New => {}
            Arrival::Absorb => return,
            Arrival::Resend(bytes) => {
                self.send(peer.proto, peer.source, peer.connection, bytes);
                return;
            }
        }
        dispatch.request(Request { message, peer, key });
    }

    /// Gives `message` (top Via `via`) to the client transaction of its branch, and a final
    /// one's outcome to the transaction's waiter; whether there was a transaction.
    fn complete_client_transaction(&self, message: &SipMessage, via: &Via<'_>) -> bool {
        let Some(branch) = via.branch() else {
            return false;
        };
        let status = message.status().unwrap_or(0);
        let reliable = !via.transport().eq_ignore_ascii_case("UDP");
        let waiting = lock(&self.client_tx).respond(branch, status, reliable, self.now());
        match waiting {
            Some(waiting) => {
                if status >= 200 {
                    self.traffic.outcome(status);
                    waiting.outcome(status, Some(message));
                }
                true
            }
            None => false,
        }
    }

    /// On the I/O thread, with the bytes in place: whether `data` is a final response that
    /// completes a client transaction whose waiter needs no more than its status
    /// ([`Waiting::early`]), which it then completes. Everything else (requests,
    /// provisional responses, answers to requests passed on whole, whose transactions have
    /// waiters that never take early answers) is left to the workers, which parse and check
    /// it whole.
    pub(crate) fn early_final_response(&self, data: &[u8]) -> bool {
        let Some((status, top_via)) = SipMessage::peek_response(data) else {
            return false;
        };
        if status < 200 {
            return false;
        }
        let Ok(via) = Via::parse(top_via) else {
            return false;
        };
        let Some(branch) = via.branch() else {
            return false;
        };
        let reliable = !via.transport().eq_ignore_ascii_case("UDP");
        let waiting = {
            let mut table = lock(&self.client_tx);
            match table.pending(branch) {
                Some(waiting) if waiting.early(status) => {}
                _ => return false,
            }
            table.respond(branch, status, reliable, self.now())
        };
        if let Some(waiting) = waiting {
            self.traffic.outcome(status);
            waiting.outcome(status, None);
        }
        true
    }

    /// Sends `answer` in the request's transaction.
    pub(crate) fn answer(&self, request: &Request, answer: Reply) {
        let bytes = answer.builder.build();
        self.answer_bytes(request, answer.status, bytes);
    }

    /// Sends the response `bytes` (status `status`) in the request's transaction.
    pub(crate) fn answer_bytes(&self, request: &Request, status: u16, bytes: Vec<u8>) {
        let now = self.now();
        if status >= 200 {
            self.traffic.answered(&request.key.method, status);
        }
        // Kept to answer retransmissions, which come over UDP only (and, there, a
        // provisional answer too); a final answer over a stream ends the transaction.
        let reliable = request.peer.reliable();
        let kept = if reliable && status >= 200 {
            Vec::new()
        } else {
            bytes.clone()
        };
        lock(&self.server_tx).respond(&request.key, status, kept, reliable, now);
        if !request.peer.reliable() {
            // Timer J.
            self.alarm
                .at(now + self.config.timers.timeout().as_millis() as u64);
        }
        self.send(
            request.peer.proto,
            request.peer.source,
            request.peer.connection,
            bytes,
        );
    }

    /// Records a response passed on whole in the request's transaction (so retransmitted
    /// requests get it again) without sending it: the caller sends it where it must go.
    pub(crate) fn record_answer(
        &self,
        key: &ServerKey,
        status: u16,
        bytes: Vec<u8>,
        reliable: bool,
    ) {
        self.traffic.answered(&key.method, status);
        lock(&self.server_tx).respond(key, status, bytes, reliable, self.now());
    }

    /// Sends what a handler decided (`Ok(None)`: it answered, or answers later).
    pub(crate) fn finish(&self, request: &Request, answer: Result<Option<Reply>>) {
        match answer {
            Ok(None) => {}
            Ok(Some(answer)) => self.answer(request, answer),
            Err(e) => {
                let answer = self.error_reply(request, &e);
                self.answer(request, answer);
            }
        }
    }

    /// A response to `request` (RFC 3261 §8.2.6) with `received`/`rport` on the top Via
    /// (RFC 3581), a To tag when the request had none, and the Server header.
    pub(crate) fn reply(&self, request: &Request, status: u16, reason: &str) -> Reply {
        self.reply_tagged(request, status, reason, None)
    }

    pub(crate) fn reply_tagged(
        &self,
        request: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Reply {
        let m = &request.message;
        let mut b = MessageBuilder::response(status, reason).expect("a valid status line");
        // (Checked well-formed before the request was handled.)
        let mut vias = m.header_values("Via").unwrap_or_default().into_iter();
        if let (Some(top), Ok(parsed)) = (vias.next(), m.top_via()) {
            let (received, rport) = via_received_rport(
                parsed.host(),
                parsed.rport() == Some(None),
                request.peer.source,
            );
            let _ = b.header("Via", &with_received(top, received, rport));
        }
        for via in vias {
            let _ = b.header("Via", via);
        }
        let _ = b.header("From", m.header("From").unwrap_or_default());
        let to = m.header("To").unwrap_or_default();
        let has_tag = m.to().map(|t| t.tag().is_some()).unwrap_or(true);
        if has_tag || status == 100 {
            let _ = b.header("To", to);
        } else {
            let tag = to_tag.map(str::to_owned).unwrap_or_else(|| self.token());
            let _ = b.header("To", &format!("{to};tag={tag}"));
            // A dialog-creating answer carries the request's Record-Route (RFC 3261
            // §12.1.1), so the proxies that recorded the route stay on the dialog's path.
            if (101..300).contains(&status) && request.key.method == "SUBSCRIBE" {
                for rr in m.headers("Record-Route") {
                    let _ = b.header("Record-Route", rr);
                }
            }
        }
        let _ = b.header("Call-ID", m.header("Call-ID").unwrap_or_default());
        let _ = b.header("CSeq", m.header("CSeq").unwrap_or_default());
        let _ = b.header("Server", &self.config.server_name);
        Reply { status, builder: b }
    }

    /// The answer for an engine error.
    pub(crate) fn error_reply(&self, request: &Request, e: &Error) -> Reply {
        let (status, reason) = match e {
            Error::UnknownEntityTag(_) => (412, "Conditional Request Failed"),
            Error::IntervalTooBrief(_) => (423, "Interval Too Brief"),
            Error::UnknownPackage(_) => (489, "Bad Event"),
            Error::Forbidden(_) => (403, "Forbidden"),
            Error::LimitReached(_) => (403, "Forbidden (limit reached)"),
            Error::NotFound(_) => (481, "Subscription Does Not Exist"),
            Error::InvalidUri(_) | Error::InvalidArgument(_) => (400, "Bad Request"),
            Error::Malformed(_) | Error::UnsafeXml(_) => (400, "Bad Request"),
            Error::TooLarge(_) => (413, "Request Entity Too Large"),
            Error::Unsupported(_) => (415, "Unsupported Media Type"),
            Error::Shutdown(_) => (503, "Service Unavailable"),
            _ => (500, "Server Internal Error"),
        };
        log::debug!("SIP: {status} for {}: {e}", request.key.method);
        let reason = if status == 400 {
            format!("Bad Request ({})", short(&e.to_string()))
        } else {
            reason.to_string()
        };
        self.reply(request, status, &reason)
    }

    /// `423 Interval Too Brief` with the shortest expiry taken.
    pub(crate) fn too_brief(&self, request: &Request, min: u32) -> Result<Reply> {
        let mut answer = self.reply(request, 423, "Interval Too Brief");
        answer.header("Min-Expires", &min.to_string())?;
        Ok(answer)
    }

    /// Runs the transaction timers due at `now` (clock ms): retransmissions, and timeouts,
    /// whose waiters get a 408.
    pub(crate) fn tick(&self, now: u64) {
        lock(&self.server_tx).tick(now);
        let actions = lock(&self.client_tx).tick(now);
        for action in actions {
            match action {
                ClientAction::Retransmit { dest, request } => {
                    self.send(Proto::Udp, dest, None, request)
                }
                ClientAction::TimedOut(waiting) => {
                    self.traffic.timed_out();
                    waiting.outcome(408, None)
                }
            }
        }
    }

    /// The earliest clock time [`Stack::tick`] has work.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let server = lock(&self.server_tx).next_deadline();
        let client = lock(&self.client_tx).next_deadline();
        server.into_iter().chain(client).min()
    }
}

/// Appends `value` in lower-case hex, at least `width` digits (zero-padded).
pub(crate) fn push_hex(out: &mut String, value: u64, width: usize) {
    let digits = (64 - value.leading_zeros() as usize)
        .div_ceil(4)
        .max(width.max(1));
    for i in (0..digits).rev() {
        let nibble = if i < 16 { (value >> (4 * i)) & 0xf } else { 0 };
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// The name a request's TLS peer must show: the host of the top Route, else of the
/// Request-URI, the first that is a domain name rather than an address; `None` (the IP
/// address is checked) for responses and requests that name only addresses.
pub(crate) fn tls_server_name(data: &[u8], limits: &SipLimits) -> Option<String> {
    let message = SipMessage::parse(data, limits, Framing::Stream).ok()?;
    let route = message
        .headers("Route")
        .next()
        .and_then(|r| NameAddr::parse(r, "Route").ok())
        .and_then(|r| r.uri().ok())
        .map(|u| u.host().to_string());
    let target = message.request_uri().ok().map(|u| u.host().to_string());
    [route, target]
        .into_iter()
        .flatten()
        .find(|host| !host.starts_with('[') && host.parse::<std::net::IpAddr>().is_err())
}

/// At most 80 characters of `text` on one line (for reason phrases).
pub(crate) fn short(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    line
}

/// The transport address a contact URI names, when its host is an IP address (no DNS here);
/// without a port, 5061 for TLS and 5060 otherwise (RFC 3263 §4.2).
pub(crate) fn contact_address(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    let default = if uri_transport(uri) == Proto::Tls {
        5061
    } else {
        5060
    };
    Some(SocketAddr::new(ip, uri.port().unwrap_or(default)))
}

/// The transport a URI asks for: TLS for `sips:` (RFC 5630) or `;transport=tls`, TCP for
/// `;transport=tcp`, else UDP.
pub(crate) fn uri_transport(uri: &Uri) -> Proto {
    if uri.scheme() == crate::uri::Scheme::Sips {
        return Proto::Tls;
    }
    uri.param("transport")
        .and_then(Proto::from_param)
        .unwrap_or(Proto::Udp)
}

/// `udp:1.2.3.4:5060` for an endpoint's contact location.
pub(crate) fn location(proto: Proto, addr: SocketAddr) -> String {
    format!("{}:{addr}", proto.param())
}

/// Reads a location written by [`location`].
pub(crate) fn parse_location(text: &str) -> Option<(Proto, SocketAddr)> {
    let (proto, addr) = text.split_once(':')?;
    Some((Proto::from_param(proto)?, addr.parse().ok()?))
}
