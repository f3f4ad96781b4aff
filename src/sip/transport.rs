//! The SIP transport layer (RFC 3261 §18): UDP datagrams and TCP streams in and out.
//!
//! A [`Transport`] binds any number of UDP and TCP listen addresses (IPv4 and IPv6) and runs
//! **one I/O thread** (named `impp-sip-io`) that drives every socket with non-blocking I/O
//! through a `mio` poller. One thread is plenty for the byte shuffling done here; the parsing
//! and the presence logic run elsewhere.
//!
//! * **Receiving.** Each complete message is handed to the [`Handler`] as an [`Inbound`]: one
//!   UDP datagram, or one message cut out of a TCP stream by the [`Framer`] the user supplies
//!   (the transport knows nothing of SIP syntax). The handler runs **on the I/O thread** and
//!   must not block: it should parse or just queue the bytes and hand the work on. A panic in
//!   the handler is caught and logged. An optional [`EarlyHandler`] sees each message in
//!   place first and may keep it from the handler, for work too small to be worth the copy
//!   and the hand-off.
//! * **Push-back.** A handler that cannot take a message now (its queue is full) gives it
//!   back. Nothing retransmits over a connection, so a refused stream message is held on its
//!   connection, which is read no further (its peer then meets TCP's own flow control), and
//!   offered again every [`HELD_RETRY`] until taken, before the messages after it: order per
//!   connection is kept, and other connections are served meanwhile. A refused UDP datagram
//!   is dropped: its sender retransmits.
//! * **Sending.** [`Transport::send`] may be called from any thread (including the handler);
//!   it queues the [`Outbound`] and wakes the I/O thread, and returns at once. UDP goes out of
//!   the first UDP listening socket of the destination's address family, so the peer sees the
//!   address it sent to (RFC 3261 §18.2.2, RFC 3581). TCP goes over the connection named in
//!   [`Outbound::connection`] if it is still open, else over the most recent open connection
//!   with that peer (inbound ones included: responses reuse the request's connection,
//!   §18.2.2), else over a new connection, connected without blocking; data waits in the
//!   connection's queue until it is connected and writable. A message that cannot be sent is
//!   reported to the [`FailureHandler`], also on the I/O thread.
//! * **TCP housekeeping.** A connection is closed when its peer closes it, when the framer
//!   rejects its bytes, when a message grows past [`TransportConfig::max_message_size`], or
//!   when nothing was read or written for [`TransportConfig::tcp_idle_timeout`]. Keep-alive
//!   pings (a double CRLF, RFC 5626 §4.4.1) are answered with a single CRLF; stray CRLFs
//!   between messages (RFC 3261 §7.5) are skipped and never reach the framer.
//! * **Fairness.** A socket is read at most 256 datagrams or 16 × 64 KiB of stream at a time
//!   before the other ready sockets get their turn, so one busy peer cannot starve the rest.
//! * **Stopping.** [`Transport::stop`] (or dropping the transport) wakes the thread, which
//!   writes what the kernel takes at once, closes every socket, reports what is still queued
//!   as [`SendError::Stopped`], and is joined.
//!
//! The pure rules the SIP layer applies around the transport (where responses go, the Via
//! `received`/`rport` parameters, when a request must use TCP) are in [`via_received_rport`],
//! [`response_destination`] and [`must_use_stream`].
#![forbid(unsafe_code)]

mod driver;
mod identity;
mod rules;
pub mod web_root;
pub mod websocket;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

pub use identity::PeerCertificate;
pub use rules::{must_use_stream, response_destination, via_received_rport};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Datagrams: one message per datagram.
    Udp,
    /// A byte stream: messages are cut out by the [`Framer`].
    Tcp,
    /// A byte stream over TLS (RFC 3261 §26): as TCP, encrypted, with the peer's certificate
    /// checked.
    Tls,
    /// WebSocket (RFC 7118) over TCP: one SIP message per WebSocket message. Only inbound:
    /// browsers connect, the server answers over their connection.
    Ws,
    /// WebSocket over TLS (`wss`, RFC 7118): as [`Proto::Ws`], encrypted.
    Wss,
}

impl Proto {
    /// The name used in a Via header's sent-protocol (`UDP`, `TCP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        }
    }

    /// Whether it is a connection (TCP or TLS) rather than datagrams: reliable, ordered, and
    /// the way back to a peer behind NAT.
    pub fn is_stream(self) -> bool {
        self != Proto::Udp
    }

    /// The `transport=` URI parameter value, lower case (`udp`, `tcp`, `tls`).
    pub fn param(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Ws => "ws",
            Proto::Wss => "wss",
        }
    }

    /// Whether it is encrypted by TLS (TLS or secure WebSocket): what `sips:` asks for.
    pub fn is_tls(self) -> bool {
        matches!(self, Proto::Tls | Proto::Wss)
    }

    /// Whether it is a WebSocket (RFC 7118): connections only its clients open.
    pub fn is_websocket(self) -> bool {
        matches!(self, Proto::Ws | Proto::Wss)
    }

    /// From a `transport=` parameter or a Via sent-protocol transport, any case.
    pub fn from_param(text: &str) -> Option<Proto> {
        [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss]
            .into_iter()
            .find(|p| p.param().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One address to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    /// UDP or TCP.
    pub proto: Proto,
    /// The address; port 0 lets the system choose (see [`Transport::local_addrs`]).
    pub addr: SocketAddr,
}

impl ListenAddr {
    /// A UDP listen address.
    pub fn udp(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            proto: Proto::Udp,
            addr,
        }
    }

    /// A TCP listen address.
    pub fn tcp(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            proto: Proto::Tcp,
            addr,
        }
    }

    /// A TLS listen address (needs [`TransportConfig::tls`]).
    pub fn tls(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            proto: Proto::Tls,
            addr,
        }
    }

    /// A WebSocket listen address (RFC 7118, `ws`).
    pub fn ws(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            proto: Proto::Ws,
            addr,
        }
    }

    /// A secure WebSocket listen address (`wss`; needs [`TransportConfig::tls`]).
    pub fn wss(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            proto: Proto::Wss,
            addr,
        }
    }
}

/// Cuts messages out of a TCP stream. Given the bytes buffered so far on a connection (never
/// empty, never starting with CRLF or LF: keep-alives and stray CRLFs are removed first), it
/// answers
/// `Ok(Some(n))` when the first `n` bytes (`0 < n <= len`) are one complete message,
/// `Ok(None)` when more bytes are needed, and `Err(reason)` when the bytes cannot be a
/// message, which closes the connection. It runs on the I/O thread.
pub type Framer = Arc<dyn Fn(&[u8]) -> Result<Option<usize>, String> + Send + Sync>;

/// Receives every inbound message, on the I/O thread; it must not block. `Ok(())`: taken.
/// `Err(message)`: not now (the handler's queue is full), and the message given back. A
/// refused message of a stream (TCP, TLS, WebSocket) is held: its connection is not read
/// until the handler takes it, offered again every [`HELD_RETRY`] (see the [module](self)
/// docs); a refused UDP datagram is dropped, so a handler should count its own refusals
/// over UDP (and take, rather than refuse, what it prefers to drop).
pub type Handler = Arc<dyn Fn(Inbound) -> Result<(), Inbound> + Send + Sync>;

/// How often a message the [`Handler`] refused is offered to it again: often enough that a
/// queue with room is filled again long before it runs dry (a worker takes a few hundred
/// messages in this time), seldom enough that a full one costs the I/O thread nothing much.
pub const HELD_RETRY: Duration = Duration::from_millis(2);

/// Sees each inbound message in place (the bytes, and UDP or TCP), on the I/O thread, before
/// it is copied into an [`Inbound`] for the [`Handler`]; `true` means it dealt with the
/// message, which the handler then never sees. It is for work smaller than the hand-off to
/// another thread it saves (a copy, a channel send, a thread wake-up): completing the
/// server's own transactions from their answers, say. It must not block; a panic in it is
/// caught and logged, and the message dropped.
pub type EarlyHandler = Arc<dyn Fn(&[u8], Proto) -> bool + Send + Sync>;

/// Reads the name a new TLS connection's peer must show from the message that opens it (see
/// [`TransportConfig::tls_name`]).
pub type TlsName = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Receives every message that could not be sent, on the I/O thread; it must not block.
pub type FailureHandler = Arc<dyn Fn(SendFailure) + Send + Sync>;

/// Told of every TCP, TLS and WebSocket connection that closed (its protocol and peer
/// address), on the I/O thread; it must not block. A WebSocket peer cannot be reached any
/// other way (RFC 7118 §5: only the client opens connections), so what was registered over
/// it is unreachable from then on; a TCP or TLS flow of a device that serves its own
/// watchers (RFC 5626) tells that the device is gone.
pub type ClosedHandler = Arc<dyn Fn(Proto, SocketAddr) + Send + Sync>;

/// What happened to a flow (RFC 5626 §3.5): a TCP or TLS connection this transport opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    /// A keep-alive pong (a lone CRLF, RFC 5626 §4.4.1) came over it from `peer`.
    Pong { proto: Proto, peer: SocketAddr },
    /// It closed (by the peer, an error or idleness).
    Closed { proto: Proto, peer: SocketAddr },
}

/// Told of [`FlowEvent`]s, on the I/O thread; it must not block.
pub type FlowHandler = Arc<dyn Fn(FlowEvent) + Send + Sync>;

/// What a [`Transport`] listens on and how it treats its connections.
#[derive(Clone)]
pub struct TransportConfig {
    /// The addresses to bind; at least one.
    pub listen: Vec<ListenAddr>,
    /// The receive buffer requested for each UDP socket, in bytes. A burst of requests (say
    /// the NOTIFY answers after a presentity with many watchers changes) must fit in it or is
    /// dropped by the kernel; the system default (about 200 KiB on Linux) is too small for a
    /// busy server. The system may grant less (on Linux, at most `net.core.rmem_max`): the
    /// amount granted is logged and returned by [`Transport::udp_recv_buffers`].
    pub udp_recv_buffer: usize,
    /// A TCP connection with no byte read or written for this long is closed; a connection
    /// still connecting after this long fails. The default, 180 s, outlasts the 120 s
    /// keep-alive period of RFC 5626 §4.4.1, so a client that only sends keep-alives keeps
    /// its connection (and stays reachable for requests sent to it).
    pub tcp_idle_timeout: Duration,
    /// The largest message accepted, in bytes: a bigger UDP datagram is dropped, a TCP
    /// connection whose next message would be bigger is closed.
    pub max_message_size: usize,
    /// The most TCP connections (inbound and outbound together) open at once. An inbound
    /// connection beyond it is accepted and closed at once; an outbound one fails with
    /// [`SendError::ConnectionLimit`].
    pub max_tcp_connections: usize,
    /// Cuts TCP streams into messages.
    pub framer: Framer,
    /// Takes the messages it can deal with before they reach the [`Handler`]; `None` (the
    /// default): every message goes to the handler.
    pub early: Option<EarlyHandler>,
    /// The certificate, key and trust anchors for TLS listeners and outgoing TLS
    /// connections; required when any listen address is TLS. Default: none.
    pub tls: Option<crate::sip::tls::TlsConfig>,
    /// A TLS handshake, or a WebSocket opening handshake, not complete this long after the
    /// connection opened fails (and the connection closes). Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Reads, from a message that needs a new TLS connection, the name the peer's
    /// certificate must show (the transport knows no SIP; the layer above does). Called
    /// only when a connection is opened, never for messages on open ones. Default: none
    /// (the peer's IP address, unless [`Outbound::server_name`] says otherwise).
    pub tls_name: Option<TlsName>,
    /// The most TCP and TLS connections one IP address may have open with the transport at
    /// once (inbound ones; beyond it a new one is accepted and closed at once): one address
    /// cannot take the whole [`TransportConfig::max_tcp_connections`]. Default 64.
    pub max_connections_per_address: usize,
    /// An inbound connection that nothing vouched for ([`Transport::vouch`]: the SIP layer
    /// does when a request on it authenticates, or comes from a trusted peer) is closed
    /// this long after it opened, whatever it sends: a stranger cannot hold connections
    /// (and their buffers) open by trickling bytes. Default 32 s (64 × T1: long enough for
    /// a challenge and its answer over a slow link).
    pub unvouched_timeout: Duration,
    /// Which web pages may open WebSockets ([`websocket::OriginPolicy`]): by default only
    /// pages of the server's own host and port (and clients that are not browsers).
    pub ws_origins: websocket::OriginPolicy,
    /// Told when a stream connection (TCP, TLS, WebSocket) closes. Default: none.
    pub on_connection_closed: Option<ClosedHandler>,
    /// Told of each keep-alive ping (CRLF CRLF, RFC 5626 §4.4.1) that comes over a TCP or
    /// TLS connection a client opened (its protocol and peer address), on the I/O thread;
    /// it must not block. Default: none.
    pub on_ping: Option<ClosedHandler>,
    /// Told of the pongs and the closing of the TCP and TLS connections the transport
    /// opened (a user agent's flows to its registrar, which it keeps alive with pings).
    /// On those connections a lone CRLF is a pong, taken at once (a server does not ping
    /// its clients). Default: none.
    pub on_flow: Option<FlowHandler>,
    /// A directory whose files answer the HTTP requests on `ws` and `wss` listeners that
    /// do not ask for a WebSocket ([`web_root::WebRoot`]): a web page served from the same
    /// origin as the SIP WebSocket it opens. Default: none (such requests are refused, 400).
    pub web_root: Option<std::path::PathBuf>,
    /// The clock the timeouts above run on (the engine's, so tests can move it; see
    /// [`Transport::sweep`]). Default: the system clock.
    pub clock: Arc<dyn crate::engine::Clock>,
}

impl TransportConfig {
    /// Default of [`TransportConfig::udp_recv_buffer`]: 8 MiB.
    pub const DEFAULT_UDP_RECV_BUFFER: usize = 8 << 20;
    /// Default of [`TransportConfig::tcp_idle_timeout`]: 180 s.
    pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(180);
    /// Default of [`TransportConfig::max_message_size`]: 64 KiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 10;
    /// Default of [`TransportConfig::max_tcp_connections`]: 4096.
    pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 4096;
    /// Default of [`TransportConfig::tls_handshake_timeout`]: 10 s.
    pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`TransportConfig::max_connections_per_address`]: 64.
    pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
    /// Default of [`TransportConfig::unvouched_timeout`]: 32 s.
    pub const DEFAULT_UNVOUCHED_TIMEOUT: Duration = Duration::from_secs(32);

    /// A configuration with these listen addresses and framer and the defaults otherwise.
    pub fn new(listen: Vec<ListenAddr>, framer: Framer) -> TransportConfig {
        TransportConfig {
            listen,
            udp_recv_buffer: Self::DEFAULT_UDP_RECV_BUFFER,
            tcp_idle_timeout: Self::DEFAULT_TCP_IDLE_TIMEOUT,
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_tcp_connections: Self::DEFAULT_MAX_TCP_CONNECTIONS,
            framer,
            early: None,
            tls: None,
            tls_handshake_timeout: Self::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            tls_name: None,
            max_connections_per_address: Self::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            unvouched_timeout: Self::DEFAULT_UNVOUCHED_TIMEOUT,
            ws_origins: websocket::OriginPolicy::default(),
            on_connection_closed: None,
            on_ping: None,
            on_flow: None,
            web_root: None,
            clock: Arc::new(crate::engine::SystemClock::new()),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("listen", &self.listen)
            .field("udp_recv_buffer", &self.udp_recv_buffer)
            .field("tcp_idle_timeout", &self.tcp_idle_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_tcp_connections", &self.max_tcp_connections)
            .field("early", &self.early.is_some())
            .field("tls", &self.tls.is_some())
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("unvouched_timeout", &self.unvouched_timeout)
            .finish_non_exhaustive()
    }
}

/// Names one TCP connection of a transport. Identifiers are never reused within a transport,
/// so a stale one simply matches no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The identifier as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The whole datagram, or one framed TCP message.
    pub data: Vec<u8>,
    /// The peer's address.
    pub source: SocketAddr,
    /// The local address it arrived on. For UDP this is the listening socket's address, so a
    /// socket bound to a wildcard address (`0.0.0.0`) reports the wildcard; for TCP it is the
    /// connection's actual local address.
    pub local: SocketAddr,
    /// UDP or TCP.
    pub proto: Proto,
    /// The TCP connection it came on (`None` for UDP); pass it back in
    /// [`Outbound::connection`] to answer on the same connection.
    pub connection: Option<ConnectionId>,
    /// The certificate the peer presented on a TLS connection (mutual TLS), verified against
    /// the trust anchors; `None` otherwise.
    pub certificate: Option<PeerCertificate>,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// UDP or TCP.
    pub proto: Proto,
    /// Where to; for TCP, used to find or open a connection when `connection` is not open.
    pub dest: SocketAddr,
    /// The bytes, one whole message.
    pub data: Vec<u8>,
    /// For TCP and TLS: the connection to prefer, if still open. Ignored for UDP.
    pub connection: Option<ConnectionId>,
    /// For TLS, when a new connection must be opened: the domain the peer's certificate
    /// must name (RFC 5922 §7.2); `None`: the one [`TransportConfig::tls_name`] reads from
    /// the message, else the peer's IP address.
    pub server_name: Option<String>,
}

/// The most bytes queued for writing on one TCP connection: a peer that stops reading
/// cannot make the transport hold more for it (further messages fail with
/// [`SendError::QueueFull`]). 8 MiB.
pub const MAX_TCP_SEND_QUEUE: usize = 8 << 20;

/// A message that could not be sent, given back to the [`FailureHandler`].
#[derive(Debug)]
pub struct SendFailure {
    /// The protocol it was to go over.
    pub proto: Proto,
    /// Its destination (for TCP, the connection's peer).
    pub dest: SocketAddr,
    /// The TCP connection it was queued on, if it got that far.
    pub connection: Option<ConnectionId>,
    /// The message.
    pub data: Vec<u8>,
    /// Why it was not sent.
    pub error: SendError,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No UDP socket of the destination's address family is bound.
    #[error("no UDP socket of the destination's address family")]
    NoSocket,
    /// Opening a connection would exceed [`TransportConfig::max_tcp_connections`].
    #[error("the TCP connection limit is reached")]
    ConnectionLimit,
    /// The connection closed (by the peer, a framing error or idleness) before the message
    /// was wholly written.
    #[error("the connection closed before the message was written")]
    Closed,
    /// The connection already holds [`MAX_TCP_SEND_QUEUE`] bytes not yet taken by the peer.
    #[error("the connection's send queue is full")]
    QueueFull,
    /// The transport stopped before the message was written.
    #[error("the transport stopped")]
    Stopped,
    /// A TLS message, and the transport has no TLS configuration.
    #[error("no TLS certificate and key are configured")]
    NoTlsConfig,
    /// A WebSocket peer with no open connection: only the peer can open one (RFC 7118).
    #[error("no WebSocket connection is open with the peer")]
    NotConnected,
    /// Connecting, writing or sending failed; `TimedOut` for a connect that outlasted the
    /// idle timeout, `WouldBlock` when a UDP socket's send queue is full.
    #[error("{0}")]
    Io(io::Error),
}

impl SendError {
    /// Whether a message over `proto` that failed so is lost for good, so that its client
    /// transaction should end now with the transport error's `503` (RFC 3261 §8.1.3.1 and
    /// §17.1.4) rather than wait for Timer F (32 s): every failure over a connection (a
    /// connection does not retransmit), and over UDP every one but a full socket buffer,
    /// which the transaction's next retransmission may find emptied.
    pub fn is_final(&self, proto: Proto) -> bool {
        let full = match self {
            SendError::Io(e) => e.kind() == io::ErrorKind::WouldBlock,
            _ => false,
        };
        !(proto == Proto::Udp && full)
    }

    /// A copy, for reporting one cause against several queued messages.
    fn duplicate(&self) -> SendError {
        match self {
            SendError::NoSocket => SendError::NoSocket,
            SendError::ConnectionLimit => SendError::ConnectionLimit,
            SendError::Closed => SendError::Closed,
            SendError::Stopped => SendError::Stopped,
            SendError::QueueFull => SendError::QueueFull,
            SendError::NoTlsConfig => SendError::NoTlsConfig,
            SendError::NotConnected => SendError::NotConnected,
            SendError::Io(e) => SendError::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Returned by [`Transport::send`] once the transport has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SIP transport has stopped")]
pub struct Stopped;

/// The receive buffer of one UDP socket: what was asked for and what the system granted, as
/// the system reports it (Linux reports twice the usable size, counting its bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRecvBuffer {
    /// The socket's bound address.
    pub local: SocketAddr,
    /// [`TransportConfig::udp_recv_buffer`].
    pub requested: usize,
    /// `SO_RCVBUF` as read back after setting it.
    pub granted: usize,
}

/// A running SIP transport: sockets plus the I/O thread. See the [module](self) docs.
pub struct Transport {
    /// Direct senders on the UDP sockets (see [`Transport::send`]).
    udp_senders: Vec<(SocketAddr, std::net::UdpSocket)>,
    /// Set by [`Transport::stop`]: nothing is sent after it.
    stopped: std::sync::atomic::AtomicBool,
    commands: Sender<driver::Command>,
    doorbell: Arc<driver::Doorbell>,
    thread: Mutex<Option<JoinHandle<()>>>,
    local: Vec<ListenAddr>,
    udp_buffers: Vec<UdpRecvBuffer>,
    stats: Arc<driver::Counters>,
}

/// Counts about a transport's connections, cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// TCP and TLS connections open now.
    pub open_connections: usize,
    /// Inbound connections refused because their address had
    /// [`TransportConfig::max_connections_per_address`] open already.
    pub connections_refused: u64,
    /// Connections closed for a TLS handshake or a vouch that did not come in time.
    pub connections_timed_out: u64,
    /// Stream messages the [`Handler`] could not take at once (its queue was full), each
    /// held on its connection, whose reading paused, until it was taken. Counted once per
    /// message, however many times it was offered.
    pub messages_held: u64,
}

/// Connections by transport and the I/O thread's lateness, cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportLoad {
    /// Connections open now by transport, in [`CONNECTION_PROTOS`] order.
    pub connections_by_proto: [usize; CONNECTION_PROTOS.len()],
    /// How late the I/O thread's timer turns ran (the connection sweep, due about once a
    /// second): microseconds past their deadline, summed, the latest, the most, and how
    /// many turns were measured. A turn is late when the thread was busy with sockets (or
    /// not scheduled) when it fell due.
    pub loop_lag_sum_us: u64,
    pub loop_lag_last_us: u64,
    pub loop_lag_max_us: u64,
    pub loop_turns: u64,
}

/// The transports that have connections, in the order of
/// [`TransportStats::connections_by_proto`].
pub const CONNECTION_PROTOS: [Proto; 4] = [Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss];

impl Transport {
    /// Binds every listen address and starts the I/O thread. Fails (with nothing left
    /// running) when a socket cannot be created or bound, or when `listen` is empty.
    pub fn start(
        config: TransportConfig,
        handler: Handler,
        on_failure: FailureHandler,
    ) -> io::Result<Transport> {
        let started = driver::start(config, handler, on_failure)?;
        Ok(Transport {
            udp_senders: started.udp_senders,
            stopped: std::sync::atomic::AtomicBool::new(false),
            commands: started.commands,
            doorbell: started.doorbell.clone(),
            thread: Mutex::new(Some(started.thread)),
            local: started.local,
            udp_buffers: started.udp_buffers,
            stats: started.stats,
        })
    }

    /// The bound addresses, in the order of [`TransportConfig::listen`], with port 0
    /// replaced by the port the system chose.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local
    }

    /// The first bound address of this protocol and address family (`v6`), if any.
    pub fn local_addr(&self, proto: Proto, v6: bool) -> Option<SocketAddr> {
        self.local
            .iter()
            .find(|l| l.proto == proto && l.addr.is_ipv6() == v6)
            .map(|l| l.addr)
    }

    /// Counts about the connections.
    pub fn stats(&self) -> TransportStats {
        use std::sync::atomic::Ordering::Relaxed;
        TransportStats {
            open_connections: self.stats.open.load(Relaxed),
            connections_refused: self.stats.refused.load(Relaxed),
            connections_timed_out: self.stats.timed_out.load(Relaxed),
            messages_held: self.stats.held.load(Relaxed),
        }
    }

    /// Connections by transport and the I/O thread's lateness.
    pub fn load(&self) -> TransportLoad {
        use std::sync::atomic::Ordering::Relaxed;
        TransportLoad {
            connections_by_proto: std::array::from_fn(|i| self.stats.by_proto[i].load(Relaxed)),
            loop_lag_sum_us: self.stats.lag_sum_us.load(Relaxed),
            loop_lag_last_us: self.stats.lag_last_us.load(Relaxed),
            loop_lag_max_us: self.stats.lag_max_us.load(Relaxed),
            loop_turns: self.stats.turns.load(Relaxed),
        }
    }

    /// The receive buffer of each UDP socket, as requested and as granted.
    pub fn udp_recv_buffers(&self) -> &[UdpRecvBuffer] {
        &self.udp_buffers
    }

    /// Queues a message for the I/O thread and returns at once; a failure to deliver it later
    /// goes to the [`FailureHandler`]. Callable from any thread, the handlers included.
    pub fn send(&self, out: Outbound) -> Result<(), Stopped> {
        // A UDP datagram goes out at once from the caller's thread when the socket takes it:
        // no queue, no wake-up of the I/O thread (most of the cost of a small datagram). A
        // full socket buffer or an error hands it to the I/O thread, which waits for the
        // socket or reports the failure. (Datagrams may pass one another there; UDP never
        // promised order.)
        if out.proto == Proto::Udp {
            if let Some((_, socket)) = self
                .udp_senders
                .iter()
                .find(|(local, _)| local.is_ipv6() == out.dest.is_ipv6())
            {
                if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
                    return Err(Stopped);
                }
                loop {
                    match socket.send_to(&out.data, out.dest) {
                        Ok(_) => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
            }
        }
        self.commands
            .send(driver::Command::Send(out))
            .map_err(|_| Stopped)?;
        // A send racing `stop` may be accepted here after the thread has drained its queue
        // for the last time: that message is dropped without a report.
        self.doorbell.ring().map_err(|_| Stopped)
    }

    /// Marks a connection as trusted by the layer above (a request on it authenticated):
    /// it is no longer closed for being unvouched (see
    /// [`TransportConfig::unvouched_timeout`]). Unknown or closed connections are ignored.
    pub fn vouch(&self, connection: ConnectionId) {
        if self
            .commands
            .send(driver::Command::Vouch(connection))
            .is_ok()
        {
            let _ = self.doorbell.ring();
        }
    }

    /// Closes the TCP or TLS connection this transport opened to `peer` over `proto`, if one
    /// is open (a flow its user found dead: the next message to the peer opens a new one).
    /// Inbound connections are left alone.
    pub fn close_flow(&self, proto: Proto, peer: SocketAddr) {
        if self
            .commands
            .send(driver::Command::CloseFlow(proto, peer))
            .is_ok()
        {
            let _ = self.doorbell.ring();
        }
    }

    /// Closes, now, the connections whose timeouts have passed on the configured clock, and
    /// returns when that is done (at most 10 s). The transport does this by itself a few
    /// times per timeout; this is for a clock moved by hand (tests).
    pub fn sweep(&self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.commands.send(driver::Command::Sweep(done)).is_ok() && self.doorbell.ring().is_ok()
        {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Stops the I/O thread and waits for it; every socket is closed when this returns. Data
    /// already queued is handed to the kernel as far as it takes it without waiting; the rest
    /// is reported as [`SendError::Stopped`]. Later calls do nothing, and later
    /// [`Transport::send`] calls fail with [`Stopped`]. Called from a handler (on the I/O
    /// thread), it does not wait: the thread stops once the handler returns.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else { return };
        let _ = self.commands.send(driver::Command::Stop);
        let _ = self.doorbell.ring();
        if thread.thread().id() == std::thread::current().id() {
            // Called (or dropped) from a handler, on the I/O thread itself: it stops when the
            // handler returns; waiting for itself would never end.
            return;
        }
        if thread.join().is_err() {
            crate::log::error!("the SIP I/O thread panicked");
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local", &self.local)
            .field("udp_buffers", &self.udp_buffers)
            .finish_non_exhaustive()
    }
}
