//! imppd's HTTP listener (`--http ADDR:PORT`, or over TLS `--https ADDR:PORT`): `/health` for
//! load balancers, `/metrics` in the Prometheus text exposition format 0.0.4, from the
//! counters the library already keeps, and XCAP below [`XCAP_ROOT`].
//!
//! Why here and not in the library: what it serves is imppd's operation surface (its metric
//! names, its health meaning "this process serves SIP"); an embedder of the C or Python API
//! reads the same counters through `stats()` and exports them with its own HTTP stack. XCAP's
//! logic is the library's (`impp::xcap::XcapServer`): this listener only reads the request
//! (head and body) and writes the answer back.
//!
//! Kept apart from SIP on purpose: its own blocking accept thread and one short-lived thread
//! per connection, so a slow scraper never touches the SIP I/O thread. Bounded: at most
//! [`MAX_CONNECTIONS`] at once (more are answered `503` and closed), a request head of at most
//! [`MAX_HEAD`] bytes (`431` past it), an XCAP body of at most `impp::xcap::MAX_BODY` bytes with a
//! `Content-Length` (`413`, `411`), [`REQUEST_TIMEOUT`] to send it all, TLS handshake included
//! (closed after it), one request per connection (`Connection: close`). Requests are read by
//! `httparse`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use impp::engine::Engine;
use impp::sip::SipServer;

/// Connections served at once; a scraper and a load balancer or two need a handful.
pub const MAX_CONNECTIONS: usize = 16;
/// Bytes of request line and headers; a scrape's head is a few hundred.
pub const MAX_HEAD: usize = 8192;
/// Time a client has to send its request head, from the connection's acceptance.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Headers read (more is `431`).
const MAX_HEADERS: usize = 32;
/// Where XCAP is served (RFC 4825 §6.1: the XCAP root URI is `http[s]://HOST:PORT/xcap-root`).
pub const XCAP_ROOT: &str = "/xcap-root";

/// The TLS server settings of an HTTPS listener (imppd's `--tls-cert`/`--tls-key`).
pub type Tls = Arc<rustls::ServerConfig>;

/// What the listener reports on.
#[derive(Clone)]
pub struct Sources {
    pub engine: Arc<Engine>,
    pub server: Arc<Mutex<SipServer>>,
    /// Set when imppd was asked to stop (SIGTERM, SIGINT): `/health` answers `503` from then.
    pub stopping: Arc<AtomicBool>,
    /// The XCAP server answering below [`XCAP_ROOT`] (`None`: those paths are `404`).
    pub xcap: Option<Arc<impp::xcap::XcapServer>>,
}

/// The running listener; [`HttpListener::stop`] joins its accept thread.
pub struct HttpListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The listener's own counters, exported with the rest.
#[derive(Default)]
struct Counters {
    active: AtomicUsize,
    requests: AtomicU64,
    refused: AtomicU64,
}

impl HttpListener {
    /// Binds `addr` and starts serving. Fails when the address cannot be bound.
    /// With `tls`, every connection is TLS (`--https`).
    pub fn start(
        addr: SocketAddr,
        sources: Sources,
        tls: Option<Tls>,
    ) -> Result<HttpListener, String> {
        let flag = if tls.is_some() { "--https" } else { "--http" };
        let listener = TcpListener::bind(addr).map_err(|e| format!("{flag} {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("{flag} {addr}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let counters = Arc::new(Counters::default());
        let thread = std::thread::Builder::new()
            .name("imppd-http".into())
            .spawn(move || accept_loop(listener, stopped, sources, counters, tls))
            .map_err(|e| format!("{flag}: cannot start its thread: {e}"))?;
        Ok(HttpListener {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the accept thread (connections in progress finish on their
    /// own threads within [`REQUEST_TIMEOUT`]).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        // The accept thread blocks in accept(): one connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Decrements the count of connections served when a connection's thread ends.
struct Active(Arc<Counters>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    sources: Sources,
    counters: Arc<Counters>,
    tls: Option<Tls>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        if counters.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            counters.active.fetch_sub(1, Ordering::AcqRel);
            counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = stream.write_all(&response(
                "503 Service Unavailable",
                "text/plain",
                b"too many connections\n",
                false,
            ));
            continue;
        }
        let active = Active(counters.clone());
        let sources = sources.clone();
        let tls = tls.clone();
        let spawned = std::thread::Builder::new()
            .name("imppd-http-conn".into())
            .spawn(move || {
                let counters = active.0.clone();
                serve_stream(stream, &sources, &counters, tls.as_ref());
                drop(active);
            });
        // Not spawned: `active` was dropped with the closure, the connection closed.
        let _ = spawned;
    }
}

/// A connection the listener serves: plain TCP, or TLS over it.
trait Connection: Read + Write {
    /// The TCP socket under it (for its timeouts).
    fn tcp(&self) -> &TcpStream;

    /// Ends the connection after the answer.
    fn close(&mut self) {
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }
}

impl Connection for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Connection for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    /// close_notify first, so the client sees a clean end of the answer.
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// Serves one accepted connection, over TLS when the listener has a certificate (the
/// handshake runs under the same deadline as the request).
fn serve_stream(stream: TcpStream, sources: &Sources, counters: &Counters, tls: Option<&Tls>) {
    // Digest nonces are bound to the client's address; without one the socket is gone.
    let Ok(peer) = stream.peer_addr() else { return };
    let client = peer.ip();
    match tls {
        None => serve_connection(stream, client, sources, counters),
        Some(config) => {
            // Fails only for a configuration rustls refuses, which start() already built.
            if let Ok(session) = rustls::ServerConnection::new(config.clone()) {
                let stream = rustls::StreamOwned::new(session, stream);
                serve_connection(stream, client, sources, counters);
            }
        }
    }
}

/// Reads one request (head and body, within the bounds) and answers it.
fn serve_connection<C: Connection>(
    mut stream: C,
    client: IpAddr,
    sources: &Sources,
    counters: &Counters,
) {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let _ = stream.tcp().set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    // Reads more into `buf[len..]`; false when the client stalled, closed or failed.
    let read_more = |stream: &mut C, buf: &mut [u8], len: &mut usize| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.tcp().set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.read(&mut buf[*len..]) {
            Ok(0) => return false,
            Ok(n) => {
                *len += n;
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false, // Timed out, reset, or a failed TLS handshake.
        }
    };
    let answer = loop {
        if !read_more(&mut stream, &mut buf, &mut len) {
            return; // Stalled: closed without an answer.
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(head)) => {
                counters.requests.fetch_add(1, Ordering::Relaxed);
                let method = request.method.unwrap_or("").to_owned();
                let target = request.path.unwrap_or("").to_owned();
                let fields: Vec<(String, String)> = request
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let Some(xcap_target) = target.strip_prefix(XCAP_ROOT) else {
                    break answer(&method, &target, sources, counters);
                };
                let Some(xcap) = &sources.xcap else {
                    break answer(&method, &target, sources, counters);
                };
                let body = match read_body(&mut stream, &fields, &buf[head..len], |s, b, l| {
                    read_more(s, b, l)
                }) {
                    Ok(body) => body,
                    Err(Some(refused)) => break refused,
                    Err(None) => return,
                };
                let request = impp::xcap::XcapRequest {
                    method,
                    target: xcap_target.to_owned(),
                    headers: fields,
                    body,
                    client,
                };
                break xcap_response(&xcap.handle(&request), request.method == "HEAD");
            }
            Ok(httparse::Status::Partial) if len == MAX_HEAD => {
                break response(
                    "431 Request Header Fields Too Large",
                    "text/plain",
                    b"request head too large\n",
                    false,
                )
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                break response(
                    "431 Request Header Fields Too Large",
                    "text/plain",
                    b"too many header fields\n",
                    false,
                )
            }
            Err(e) => {
                break response(
                    "400 Bad Request",
                    "text/plain",
                    format!("{e}\n").as_bytes(),
                    false,
                )
            }
        }
    };
    let _ = stream.write_all(&answer);
    let _ = stream.flush();
    stream.close();
}

/// The body of a request with a `Content-Length` (at most [`impp::xcap::MAX_BODY`]), the
/// part already read first: `Err(Some(answer))` refuses it, `Err(None)` means the client
/// stalled or left. `Expect: 100-continue` is answered before reading on.
fn read_body<C: Connection>(
    stream: &mut C,
    fields: &[(String, String)],
    already: &[u8],
    mut read_more: impl FnMut(&mut C, &mut [u8], &mut usize) -> bool,
) -> Result<Vec<u8>, Option<Vec<u8>>> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if field("Transfer-Encoding").is_some() {
        return Err(Some(response(
            "411 Length Required",
            "text/plain",
            b"a body is sent with Content-Length\n",
            false,
        )));
    }
    let length = match field("Content-Length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Err(Some(response(
                "400 Bad Request",
                "text/plain",
                b"bad Content-Length\n",
                false,
            )))
        }
    };
    if length > impp::xcap::MAX_BODY || already.len() > length {
        return Err(Some(response(
            "413 Content Too Large",
            "text/plain",
            b"body too large (or more than Content-Length)\n",
            false,
        )));
    }
    let mut body = vec![0u8; length];
    body[..already.len()].copy_from_slice(already);
    let mut have = already.len();
    if have < length
        && field("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
    {
        return Err(None);
    }
    while have < length {
        if !read_more(stream, &mut body, &mut have) {
            return Err(None);
        }
    }
    Ok(body)
}

/// An XCAP answer on the wire (`Connection: close`; HEAD without the body).
fn xcap_response(r: &impp::xcap::XcapResponse, head_only: bool) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, r.reason);
    for (name, value) in &r.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    );
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    out
}

/// The response to a complete request head.
fn answer(method: &str, target: &str, sources: &Sources, counters: &Counters) -> Vec<u8> {
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        // With the `Allow` field a 405 must carry (RFC 9110 §15.5.6).
        return response(
            "405 Method Not Allowed\r\nAllow: GET, HEAD",
            "text/plain",
            b"GET or HEAD only\n",
            false,
        );
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/health" => {
            if sources.stopping.load(Ordering::Relaxed) {
                response(
                    "503 Service Unavailable",
                    "text/plain",
                    b"stopping\n",
                    head_only,
                )
            } else {
                response("200 OK", "text/plain", b"ok\n", head_only)
            }
        }
        "/metrics" => response(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(sources, counters).as_bytes(),
            head_only,
        ),
        _ => response("404 Not Found", "text/plain", b"not found\n", head_only),
    }
}

/// A whole response with `Connection: close`; `head_only` leaves the body out (HEAD) but
/// keeps its length. `status` may end with header lines of its own (`\r\n`-separated).
fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body);
    }
    r
}

/// Writes one metric family: its help, its type and its samples (label text, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The exposition: every counter read once, relaxed (a scrape is a snapshot, not a
/// transaction).
fn metrics(sources: &Sources, counters: &Counters) -> String {
    let e = sources.engine.stats();
    let (t, g, f, w, h) = {
        let server = sources
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (
            server.transport_stats(),
            server.guard_stats(),
            server.federation_stats(),
            server.traffic_stats(),
            server.handover_stats(),
        )
    };
    let mut o = String::with_capacity(8192);
    let gauge = "gauge";
    let counter = "counter";
    family(
        &mut o,
        "imppd_up",
        gauge,
        "1 while imppd serves, 0 once it was asked to stop.",
        &[("", u64::from(!sources.stopping.load(Ordering::Relaxed)))],
    );
    family(
        &mut o,
        "imppd_presentities",
        gauge,
        "Presentities with publications or subscribers.",
        &[("", e.presentities)],
    );
    family(
        &mut o,
        "imppd_publications",
        gauge,
        "Live publications.",
        &[("", e.publications)],
    );
    family(
        &mut o,
        "imppd_subscriptions",
        gauge,
        "Subscriptions by state (pending: waiting for an authorization decision).",
        &[
            ("state=\"active\"", e.subscriptions_active),
            ("state=\"pending\"", e.subscriptions_pending),
        ],
    );
    family(
        &mut o,
        "imppd_endpoints",
        gauge,
        "Endpoints logged in (registered contacts).",
        &[("", e.endpoints)],
    );
    family(
        &mut o,
        "imppd_events_queued",
        gauge,
        "Engine events waiting to be delivered (queue depth).",
        &[("", e.events_queued)],
    );
    family(
        &mut o,
        "imppd_notifications_total",
        counter,
        "Notifications produced (sent), merged into a waiting one, held back by a minimum interval.",
        &[
            ("outcome=\"sent\"", e.notifications_sent),
            ("outcome=\"merged\"", e.notifications_merged),
            ("outcome=\"throttled\"", e.notifications_throttled),
        ],
    );
    family(
        &mut o,
        "imppd_events_overflowed_total",
        counter,
        "Events queued beyond the bound because they could not merge.",
        &[("", e.events_overflowed)],
    );
    family(
        &mut o,
        "imppd_callback_panics_total",
        counter,
        "Panics caught in the engine's event callback.",
        &[("", e.callback_panics)],
    );
    family(
        &mut o,
        "imppd_messages_waiting",
        gauge,
        "Messages stored for an offline recipient.",
        &[("", e.messages_waiting)],
    );
    family(
        &mut o,
        "imppd_messages_total",
        counter,
        "Messages delivered and failed (refused for a full mailbox counts as failed too).",
        &[
            ("outcome=\"delivered\"", e.messages_delivered),
            ("outcome=\"failed\"", e.messages_failed),
        ],
    );
    family(
        &mut o,
        "imppd_state_limit_refusals_total",
        counter,
        "Requests refused by a --max-* state limit, by what they would have made.",
        &[
            ("kind=\"message\"", e.messages_refused),
            ("kind=\"subscription\"", e.subscriptions_refused),
            ("kind=\"endpoint\"", e.endpoints_refused),
        ],
    );
    family(
        &mut o,
        "imppd_connections_open",
        gauge,
        "TCP, TLS and WebSocket connections open now.",
        &[("", t.open_connections as u64)],
    );
    family(
        &mut o,
        "imppd_connections_refused_total",
        counter,
        "Inbound connections refused for their address's connection limit.",
        &[("", t.connections_refused)],
    );
    family(
        &mut o,
        "imppd_connections_timed_out_total",
        counter,
        "Connections closed for a TLS handshake or a vouch that did not come in time.",
        &[("", t.connections_timed_out)],
    );
    family(
        &mut o,
        "imppd_guard_total",
        counter,
        "Requests the network guards refused or dropped, by reason.",
        &[
            ("reason=\"auth_failure\"", g.auth_failures),
            ("reason=\"auth_throttled\"", g.auth_throttled),
            ("reason=\"nonce_replay\"", g.nonce_replays),
            ("reason=\"rate_refused\"", g.rate_refused),
            ("reason=\"rate_dropped\"", g.rate_dropped),
            ("reason=\"queue_dropped\"", g.queue_dropped),
            ("reason=\"untrusted\"", g.untrusted),
            ("reason=\"relay_refused\"", g.relays_refused),
        ],
    );
    family(
        &mut o,
        "imppd_messages_held_total",
        counter,
        "TCP, TLS and WebSocket messages held on their connection, its reading paused, \
         while the workers' queue was full (UDP ones are dropped: queue_dropped).",
        &[("", t.messages_held)],
    );
    family(
        &mut o,
        "imppd_federation_backends",
        gauge,
        "Back-end subscriptions held to other domains.",
        &[("", f.backends)],
    );
    family(
        &mut o,
        "imppd_federation_local_watchers",
        gauge,
        "Local watchers served by back-end subscriptions.",
        &[("", f.local_watchers)],
    );
    family(
        &mut o,
        "imppd_federation_own_dialogs",
        gauge,
        "Back-end subscriptions made for one watcher alone.",
        &[("", f.own_dialogs)],
    );
    family(
        &mut o,
        "imppd_federation_requests_total",
        counter,
        "Back-end SUBSCRIBE requests sent, fetches (probes) sent and NOTIFY requests received.",
        &[
            ("kind=\"subscribe_sent\"", f.subscribes_sent),
            ("kind=\"probe_sent\"", f.probes_sent),
            ("kind=\"notify_received\"", f.notifies_received),
        ],
    );
    family(
        &mut o,
        "imppd_federation_failures_total",
        counter,
        "Back-end dialogs that failed and were retried.",
        &[("", f.failures)],
    );
    family(
        &mut o,
        "imppd_handed_over_dialogs",
        gauge,
        "Subscription dialogs handed to devices that serve their own watchers (migration by proxy).",
        &[("", h.handed_over)],
    );
    family(
        &mut o,
        "imppd_hand_overs_total",
        counter,
        "Watchers handed to a device: by proxy (confirmed by the device's 2xx) or by 302 redirect.",
        &[
            ("mode=\"proxy\"", h.hand_overs),
            ("mode=\"redirect\"", h.redirects),
        ],
    );
    family(
        &mut o,
        "imppd_take_backs_total",
        counter,
        "Handed-over dialogs taken back from a device that went (NOTIFY terminated;reason=deactivated sent).",
        &[("", h.take_backs)],
    );
    traffic(&mut o, &w);
    load(&mut o, sources, &e);
    dns(&mut o, sources);
    family(
        &mut o,
        "imppd_heap_live_bytes",
        gauge,
        "Bytes allocated and not freed (the live heap).",
        &[("", super::heap::live_bytes() as u64)],
    );
    family(
        &mut o,
        "imppd_http_requests_total",
        counter,
        "Requests read by this HTTP listener (this scrape included).",
        &[("", counters.requests.load(Ordering::Relaxed))],
    );
    family(
        &mut o,
        "imppd_http_connections_refused_total",
        counter,
        "HTTP connections refused for the listener's connection limit.",
        &[("", counters.refused.load(Ordering::Relaxed))],
    );
    o
}

/// The SIP traffic counters: labels made once per scrape (a few dozen short strings).
fn traffic(o: &mut String, w: &impp::sip::TrafficStats) {
    use impp::sip::traffic::{CLASSES, METHODS};
    let answered: Vec<(String, u64)> = METHODS
        .iter()
        .enumerate()
        .flat_map(|(m, method)| {
            CLASSES.iter().enumerate().map(move |(c, class)| {
                (
                    format!("method=\"{method}\",class=\"{class}\""),
                    w.answered[m][c],
                )
            })
        })
        .collect();
    let refs: Vec<(&str, u64)> = answered.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "imppd_sip_answers_total",
        "counter",
        "Final SIP answers sent (or passed on as a proxy), by request method and class.",
        &refs,
    );
    let sent: Vec<(String, u64)> = METHODS
        .iter()
        .zip(w.sent)
        .map(|(method, n)| (format!("method=\"{method}\""), n))
        .collect();
    let refs: Vec<(&str, u64)> = sent.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "imppd_sip_requests_sent_total",
        "counter",
        "SIP requests imppd sent in client transactions (NOTIFY, SUBSCRIBE, ...), by method.",
        &refs,
    );
    let mut outcomes: Vec<(String, u64)> = CLASSES
        .iter()
        .zip(w.sent_answered)
        .map(|(class, n)| (format!("outcome=\"{class}\""), n))
        .collect();
    outcomes.push(("outcome=\"timeout\"".into(), w.sent_timed_out));
    let refs: Vec<(&str, u64)> = outcomes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "imppd_sip_request_outcomes_total",
        "counter",
        "How the SIP requests imppd sent ended: final answer class (unsendable counts as 5xx) or timeout.",
        &refs,
    );
}

/// The DNS resolver's lookups (RFC 3263 routing by name): its counters, read at once.
fn dns(o: &mut String, sources: &Sources) {
    let d = sources
        .server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .dns_stats();
    family(
        o,
        "imppd_dns_lookups",
        "counter",
        "Next hops named by host: answered from the cache (fresh or stale while refreshed), \
         resolved on the resolver thread, failed (no answer from the DNS server), refused \
         (its queue full).",
        &[
            ("outcome=\"cached\"", d.cache_hits),
            ("outcome=\"stale\"", d.stale_hits),
            ("outcome=\"resolved\"", d.resolutions),
            ("outcome=\"failed\"", d.failures),
            ("outcome=\"refused\"", d.queue_full),
        ],
    );
    family(
        o,
        "imppd_dns_waiting",
        "gauge",
        "Requests waiting for a name to be resolved.",
        &[("", d.waiting)],
    );
}

/// Subscriptions by package and state, work in flight and waiting (transactions, queues),
/// connections by transport and the I/O thread's lag: each a counter read, or a table's
/// length under its lock for a moment.
fn load(o: &mut String, sources: &Sources, e: &impp::engine::Stats) {
    use std::fmt::Write as _;
    let l = sources
        .server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .load_stats();
    let t = l.transport;
    let by_package: Vec<(String, u64)> = impp::engine::Package::ALL
        .iter()
        .zip(e.subscriptions_by_package)
        .flat_map(|(p, [pending, active])| {
            [
                (format!("package=\"{p}\",state=\"pending\""), pending),
                (format!("package=\"{p}\",state=\"active\""), active),
            ]
        })
        .collect();
    let refs: Vec<(&str, u64)> = by_package.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "imppd_subscriptions_by_package",
        "gauge",
        "Subscriptions by event package and state.",
        &refs,
    );
    family(
        o,
        "imppd_transactions",
        "gauge",
        "SIP transactions in flight: server (requests received) and client (requests sent).",
        &[
            ("kind=\"server\"", l.server_transactions as u64),
            ("kind=\"client\"", l.client_transactions as u64),
        ],
    );
    family(
        o,
        "imppd_queue_depth",
        "gauge",
        "Work waiting: SIP messages for the workers (inbound), engine events for the SIP server (notify).",
        &[
            ("queue=\"inbound\"", l.inbound_queued as u64),
            ("queue=\"notify\"", l.events_queued as u64),
        ],
    );
    let by_proto: Vec<(String, u64)> = impp::sip::transport::CONNECTION_PROTOS
        .iter()
        .zip(t.connections_by_proto)
        .map(|(p, n)| (format!("transport=\"{}\"", p.as_str()), n as u64))
        .collect();
    let refs: Vec<(&str, u64)> = by_proto.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "imppd_connections",
        "gauge",
        "Connections open now, by transport.",
        &refs,
    );
    let seconds = |us: u64| us as f64 / 1e6;
    let _ = writeln!(
        o,
        "# HELP imppd_event_loop_lag_seconds How late the SIP I/O thread's timer turns ran (about one a second).\n\
         # TYPE imppd_event_loop_lag_seconds summary\n\
         imppd_event_loop_lag_seconds_sum {}\n\
         imppd_event_loop_lag_seconds_count {}",
        seconds(t.loop_lag_sum_us),
        t.loop_turns
    );
    let _ = writeln!(
        o,
        "# HELP imppd_event_loop_lag_last_seconds The lateness of the latest timer turn.\n\
         # TYPE imppd_event_loop_lag_last_seconds gauge\n\
         imppd_event_loop_lag_last_seconds {}\n\
         # HELP imppd_event_loop_lag_max_seconds The greatest lateness of a timer turn since the start.\n\
         # TYPE imppd_event_loop_lag_max_seconds gauge\n\
         imppd_event_loop_lag_max_seconds {}",
        seconds(t.loop_lag_last_us),
        seconds(t.loop_lag_max_us)
    );
}
