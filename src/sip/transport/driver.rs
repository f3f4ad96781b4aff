//! The I/O thread: socket setup, the poll loop, UDP and TCP state.
//!
//! Tokens: the waker is `usize::MAX`; listening sockets take `0..listeners`; TCP
//! connections take the following numbers, one per connection, never reused. A connection's
//! token is also its [`ConnectionId`].

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use super::web_root::WebRoot;
use super::websocket::{self, OriginPolicy};
use super::{
    ConnectionId, EarlyHandler, FailureHandler, Framer, Handler, Inbound, ListenAddr, Outbound,
    PeerCertificate, Proto, SendError, SendFailure, TransportConfig, UdpRecvBuffer, HELD_RETRY,
    MAX_TCP_SEND_QUEUE,
};
use crate::log;

const WAKER: Token = Token(usize::MAX);
/// Big enough for any UDP datagram, and the chunk size of TCP reads.
const RECV_BUF: usize = 64 << 10;
/// Datagrams waiting for a full UDP socket to drain; beyond that sends fail.
const UDP_QUEUE_MAX: usize = 4096;
/// Pending connections the system may queue on a TCP listener.
const LISTEN_BACKLOG: i32 = 1024;
/// Reads from one socket before the others get their turn: a busy peer cannot starve the
/// rest. The socket is read again after the next (non-waiting) poll.
const UDP_READ_BUDGET: usize = 256;
const TCP_READ_BUDGET: usize = 16;

pub(super) enum Command {
    Send(Outbound),
    Vouch(ConnectionId),
    /// Close what timed out now, then say so.
    Sweep(Sender<()>),
    /// Close the connection this transport opened to a peer (a flow found dead).
    CloseFlow(Proto, SocketAddr),
    Stop,
}

/// How other threads wake the I/O thread for their commands: the poll's waker, rung once
/// for however many commands are queued before the I/O thread takes them (each ring is a
/// system call, and the timer thread queues a round of NOTIFYs at a time).
pub(super) struct Doorbell {
    waker: Waker,
    /// Rung since the I/O thread last took the commands.
    rung: std::sync::atomic::AtomicBool,
}

impl Doorbell {
    /// Wakes the I/O thread for the commands queued before this call, unless a ring it has
    /// not answered yet already will.
    pub fn ring(&self) -> io::Result<()> {
        if self.rung.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        self.waker.wake()
    }

    /// The I/O thread is about to take every queued command: the next one rings again.
    fn answer(&self) {
        self.rung.store(false, std::sync::atomic::Ordering::Release);
    }
}

pub(super) struct Started {
    /// A second handle on each UDP socket (same file description), with its local address,
    /// for sending from the caller's thread (see `Transport::send`).
    pub udp_senders: Vec<(SocketAddr, std::net::UdpSocket)>,
    pub commands: Sender<Command>,
    pub doorbell: Arc<Doorbell>,
    pub thread: JoinHandle<()>,
    pub local: Vec<ListenAddr>,
    pub udp_buffers: Vec<UdpRecvBuffer>,
    pub stats: Arc<Counters>,
}

/// What [`super::Transport::stats`] reads.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub open: AtomicUsize,
    pub refused: AtomicU64,
    pub timed_out: AtomicU64,
    /// Stream messages the handler refused and the connection held (once each).
    pub held: AtomicU64,
    /// Open connections by [`super::CONNECTION_PROTOS`].
    pub by_proto: [AtomicUsize; super::CONNECTION_PROTOS.len()],
    /// The timer turns' lateness (see [`super::TransportStats`]).
    pub lag_sum_us: AtomicU64,
    pub lag_last_us: AtomicU64,
    pub lag_max_us: AtomicU64,
    pub turns: AtomicU64,
}

impl Counters {
    fn by_proto(&self, proto: Proto) -> Option<&AtomicUsize> {
        let i = super::CONNECTION_PROTOS.iter().position(|&p| p == proto)?;
        Some(&self.by_proto[i])
    }

    /// A timer turn that ran `late` after its deadline.
    fn turn(&self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        self.lag_sum_us.fetch_add(us, Relaxed);
        self.lag_last_us.store(us, Relaxed);
        self.lag_max_us.fetch_max(us, Relaxed);
        self.turns.fetch_add(1, Relaxed);
    }
}

enum Listener {
    Udp {
        socket: UdpSocket,
        local: SocketAddr,
        /// Datagrams that met a full send buffer, sent when the socket is writable again.
        queue: VecDeque<(SocketAddr, Vec<u8>)>,
    },
    /// TCP, TLS, WS or WSS (`proto`).
    Tcp { socket: TcpListener, proto: Proto },
}

struct Conn {
    id: ConnectionId,
    /// TCP or TLS.
    proto: Proto,
    stream: TcpStream,
    /// The TLS session of a TLS connection (boxed: a TCP connection pays one pointer).
    tls: Option<Box<rustls::Connection>>,
    /// The WebSocket layer of a WS or WSS connection (its session boxed: others pay one
    /// pointer).
    ws: Option<WsState>,
    /// The certificate a TLS peer presented, once its handshake is done.
    certificate: Option<PeerCertificate>,
    /// When it opened (clock ms): a TLS handshake and an unvouched connection have a
    /// bounded time from there.
    opened: u64,
    /// Whether the layer above vouched for it (outbound connections are ours: vouched).
    vouched: bool,
    /// Accepted (counted against its address's limit) rather than opened by us.
    inbound: bool,
    peer: SocketAddr,
    local: SocketAddr,
    /// An outbound connection whose connect has not completed.
    connecting: bool,
    inbuf: Vec<u8>,
    /// Messages to write; the flag tells whether a failure is reported (not for pongs).
    out: VecDeque<(Vec<u8>, bool)>,
    /// Bytes of the front message already written.
    out_pos: usize,
    /// Bytes in `out`, counting the written part of the front message.
    out_bytes: usize,
    /// Clock ms of the last byte read or written.
    last_active: u64,
    /// Messages cut out of the stream that the handler refused (its queue was full), oldest
    /// first: offered again before anything else of the connection, which is not read
    /// while any wait. One at most on TCP and TLS (framing stops at the refused one); a
    /// WebSocket read may have decoded several at once, the refused one and those after it.
    held: VecDeque<Inbound>,
}

/// Where a WebSocket connection is.
enum WsState {
    /// Waiting for the client's opening handshake.
    Handshake,
    /// Open: each message is a SIP message.
    Open(Box<websocket::Session>),
    /// Not a WebSocket: a file of the web root was queued as the answer, and the
    /// connection closes once it is written.
    Served,
}

struct Driver {
    poll: Poll,
    /// Answered before the queued commands are taken (see [`Doorbell`]).
    doorbell: Arc<Doorbell>,
    listeners: Vec<Listener>,
    conns: HashMap<usize, Conn>,
    /// The most recent open connection with each peer, by protocol (TCP or TLS).
    by_peer: HashMap<(Proto, SocketAddr), usize>,
    next_token: usize,
    commands: Receiver<Command>,
    handler: Handler,
    early: Option<EarlyHandler>,
    on_failure: FailureHandler,
    framer: Framer,
    tls: Option<crate::sip::tls::TlsConfig>,
    tls_name: Option<super::TlsName>,
    ws_origins: OriginPolicy,
    on_connection_closed: Option<super::ClosedHandler>,
    on_ping: Option<super::ClosedHandler>,
    on_flow: Option<super::FlowHandler>,
    web_root: Option<WebRoot>,
    handshake_timeout: Duration,
    unvouched_timeout: Duration,
    max_per_address: usize,
    /// Open inbound connections by peer IP address.
    per_address: HashMap<std::net::IpAddr, usize>,
    clock: Arc<dyn crate::engine::Clock>,
    stats: Arc<Counters>,
    idle_timeout: Duration,
    max_message_size: usize,
    max_conns: usize,
    recv_buf: Vec<u8>,
    /// Sockets whose read budget ran out with data possibly left: read again next round.
    unfinished: Vec<usize>,
    /// Connections holding messages the handler refused, in the order they were held: each
    /// round offers their messages again (see [`Driver::retry_held`]).
    held: Vec<usize>,
    stopping: bool,
}

pub(super) fn start(
    config: TransportConfig,
    handler: Handler,
    on_failure: FailureHandler,
) -> io::Result<Started> {
    if config.listen.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a SIP transport needs at least one listen address",
        ));
    }
    if config.tls.is_none() && config.listen.iter().any(|l| l.proto.is_tls()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TLS listen address needs a certificate and key (TransportConfig::tls)",
        ));
    }
    let web_root = config.web_root.as_deref().map(WebRoot::new).transpose()?;
    let poll = Poll::new()?;
    let mut listeners = Vec::with_capacity(config.listen.len());
    let mut local = Vec::with_capacity(config.listen.len());
    let mut udp_buffers = Vec::new();
    let mut udp_senders = Vec::new();
    for (i, want) in config.listen.iter().enumerate() {
        let token = Token(i);
        match want.proto {
            Proto::Udp => {
                let (mut socket, sender, addr, granted) =
                    bind_udp(want.addr, config.udp_recv_buffer)?;
                udp_senders.push((addr, sender));
                // Write interest only while datagrams wait (a UDP socket would otherwise
                // report writable after every datagram sent).
                poll.registry()
                    .register(&mut socket, token, Interest::READABLE)?;
                if granted < config.udp_recv_buffer {
                    log::warn!(
                        "SIP UDP {addr}: receive buffer {granted} bytes granted of {} requested \
                         (raise net.core.rmem_max to get more)",
                        config.udp_recv_buffer
                    );
                } else {
                    log::info!("SIP UDP {addr}: receive buffer {granted} bytes");
                }
                udp_buffers.push(UdpRecvBuffer {
                    local: addr,
                    requested: config.udp_recv_buffer,
                    granted,
                });
                local.push(ListenAddr::udp(addr));
                listeners.push(Listener::Udp {
                    socket,
                    local: addr,
                    queue: VecDeque::new(),
                });
            }
            Proto::Tcp | Proto::Tls | Proto::Ws | Proto::Wss => {
                let (mut socket, addr) = bind_tcp(want.addr)?;
                poll.registry()
                    .register(&mut socket, token, Interest::READABLE)?;
                log::info!("SIP {} listening on {addr}", want.proto);
                local.push(ListenAddr {
                    proto: want.proto,
                    addr,
                });
                listeners.push(Listener::Tcp {
                    socket,
                    proto: want.proto,
                });
            }
        }
    }
    let doorbell = Arc::new(Doorbell {
        waker: Waker::new(poll.registry(), WAKER)?,
        rung: std::sync::atomic::AtomicBool::new(false),
    });
    let stats = Arc::new(Counters::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let driver = Driver {
        poll,
        next_token: listeners.len(),
        listeners,
        conns: HashMap::new(),
        by_peer: HashMap::new(),
        commands: rx,
        doorbell: doorbell.clone(),
        handler,
        early: config.early,
        on_failure,
        framer: config.framer,
        tls: config.tls,
        tls_name: config.tls_name,
        ws_origins: config.ws_origins,
        on_connection_closed: config.on_connection_closed,
        on_ping: config.on_ping,
        on_flow: config.on_flow,
        web_root,
        handshake_timeout: config.tls_handshake_timeout,
        unvouched_timeout: config.unvouched_timeout,
        max_per_address: config.max_connections_per_address,
        per_address: HashMap::new(),
        clock: config.clock,
        stats: stats.clone(),
        idle_timeout: config.tcp_idle_timeout,
        max_message_size: config.max_message_size,
        max_conns: config.max_tcp_connections,
        recv_buf: vec![0; RECV_BUF],
        unfinished: Vec::new(),
        held: Vec::new(),
        stopping: false,
    };
    let thread = std::thread::Builder::new()
        .name("impp-sip-io".into())
        .spawn(move || driver.run())?;
    Ok(Started {
        udp_senders,
        commands: tx,
        doorbell,
        thread,
        local,
        udp_buffers,
        stats,
    })
}

fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        // IPv4 gets its own sockets: a v6 socket must not claim the v4 port too.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bound_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bound socket has no IP address"))
}

/// A bound non-blocking UDP socket for the poller, a second handle on it for direct sends,
/// its address and its receive buffer size.
fn bind_udp(
    addr: SocketAddr,
    recv_buffer: usize,
) -> io::Result<(UdpSocket, std::net::UdpSocket, SocketAddr, usize)> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer) {
        log::warn!("SIP UDP {addr}: cannot set the receive buffer to {recv_buffer} bytes: {e}");
    }
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size()?;
    let local = bound_addr(&socket)?;
    // new_socket made it non-blocking; the duplicate shares that (one file description).
    let sender: std::net::UdpSocket = socket.try_clone()?.into();
    let std_socket: std::net::UdpSocket = socket.into();
    Ok((UdpSocket::from_std(std_socket), sender, local, granted))
}

fn bind_tcp(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    // Lets a restarted server bind while old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let local = bound_addr(&socket)?;
    let std_listener: std::net::TcpListener = socket.into();
    Ok((TcpListener::from_std(std_listener), local))
}

/// Whether an I/O error means "try again now" rather than a failure.
fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Driver {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        // Idle connections are looked for a few times per timeout, at most once a second.
        let sweep_every =
            (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut next_sweep = std::time::Instant::now() + sweep_every;
        while !self.stopping {
            let until_sweep = next_sweep.saturating_duration_since(std::time::Instant::now());
            let wait = if !self.unfinished.is_empty() {
                Duration::ZERO
            } else if !self.held.is_empty() {
                // Back soon to offer the held messages again, without spinning on a queue
                // that stays full.
                until_sweep.min(HELD_RETRY)
            } else {
                until_sweep
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if interrupted(&e) {
                    continue;
                }
                log::error!("SIP transport: poll failed, stopping: {e}");
                break;
            }
            // Before the sockets: room the handler made goes first to the messages that
            // waited for it.
            self.retry_held();
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    // Before taking them: a command queued after this rings again.
                    self.doorbell.answer();
                    self.take_commands();
                } else if token.0 < self.listeners.len() {
                    self.listener_event(token.0, event.is_readable(), event.is_writable());
                } else {
                    self.conn_event(token.0);
                }
            }
            for token in std::mem::take(&mut self.unfinished) {
                if token < self.listeners.len() {
                    self.read_udp(token);
                } else {
                    self.read(token);
                }
            }
            // The sweep's own rhythm is real time; what it closes is decided on the clock.
            let now = std::time::Instant::now();
            if now >= next_sweep {
                self.stats.turn(now - next_sweep);
                self.close_idle();
                next_sweep = std::time::Instant::now() + sweep_every;
            }
        }
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Whatever the kernel takes now still goes out after the sockets are closed.
        for index in 0..self.listeners.len() {
            self.flush_udp(index);
        }
        let tokens: Vec<usize> = self.conns.keys().copied().collect();
        for &token in &tokens {
            self.flush(token);
        }
        for token in tokens {
            self.close(token, "transport stopping", SendError::Stopped);
        }
        for listener in &mut self.listeners {
            if let Listener::Udp { queue, .. } = listener {
                for (dest, data) in queue.drain(..) {
                    report(
                        &self.on_failure,
                        SendFailure {
                            proto: Proto::Udp,
                            dest,
                            connection: None,
                            data,
                            error: SendError::Stopped,
                        },
                    );
                }
            }
        }
        while let Ok(cmd) = self.commands.try_recv() {
            if let Command::Send(out) = cmd {
                self.fail(out, None, SendError::Stopped);
            }
        }
        log::info!("SIP transport stopped");
        // Dropping `self` closes every socket.
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Stop => {
                    self.stopping = true;
                    return;
                }
                Command::Send(out) => match out.proto {
                    Proto::Udp => self.send_udp(out),
                    _ => self.send_stream(out),
                },
                Command::Vouch(id) => {
                    if let Some(conn) = self.conns.get_mut(&(id.0 as usize)) {
                        conn.vouched = true;
                    }
                }
                Command::Sweep(done) => {
                    self.close_idle();
                    let _ = done.send(());
                }
                Command::CloseFlow(proto, peer) => {
                    let token = self.by_peer.get(&(proto, peer)).copied();
                    if let Some(token) =
                        token.filter(|t| self.conns.get(t).is_some_and(|c| !c.inbound))
                    {
                        self.close(token, "flow found dead", SendError::Closed);
                    }
                }
            }
        }
    }

    fn fail(&self, out: Outbound, connection: Option<ConnectionId>, error: SendError) {
        report(
            &self.on_failure,
            SendFailure {
                proto: out.proto,
                dest: out.dest,
                connection,
                data: out.data,
                error,
            },
        );
    }

    /// Offers a message to the early handler, if any: whether it took it.
    fn taken_early(early: Option<&EarlyHandler>, data: &[u8], proto: Proto) -> bool {
        let Some(early) = early else {
            return false;
        };
        match panic::catch_unwind(AssertUnwindSafe(|| early(data, proto))) {
            Ok(taken) => taken,
            Err(_) => {
                // It may have done part of its work: dropping the message is safer than
                // having it done twice.
                log::error!("SIP transport: the early handler panicked; message dropped");
                true
            }
        }
    }

    /// Offers the held messages again, connection by connection in the order they were
    /// held. A connection whose messages are all taken frames what its buffer still holds
    /// and is read again (its socket may have data that edge-triggered readiness will not
    /// announce again). A refusal ends the round: the handler is full, and the connections
    /// after it keep their places, ahead of any held during this round.
    fn retry_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut waiting: VecDeque<usize> = std::mem::take(&mut self.held).into();
        while let Some(token) = waiting.pop_front() {
            // A connection closed since has no messages left (see `close`).
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            while let Some(inbound) = conn.held.pop_front() {
                if let Err(refused) = offer(&self.handler, inbound) {
                    conn.held.push_front(refused);
                    break;
                }
                conn.last_active = self.clock.now_ms();
            }
            if !conn.held.is_empty() {
                waiting.push_front(token);
                break;
            }
            if self.frame(token) && self.conns.get(&token).is_some_and(|c| c.held.is_empty()) {
                self.unfinished.push(token);
            }
        }
        // Those held during this round (framing after a delivery) wait behind the others.
        waiting.extend(self.held.drain(..));
        self.held = waiting.into();
    }

    /// Hands a UDP datagram to the handler; one it refuses is dropped (the sender
    /// retransmits; the handler counts what it refuses).
    fn deliver(&self, inbound: Inbound) {
        if let Err(refused) = offer(&self.handler, inbound) {
            log::debug!(
                "SIP UDP: the handler refused a datagram from {}: dropped",
                refused.source
            );
        }
    }

    // ---- UDP ----

    fn send_udp(&mut self, out: Outbound) {
        let index = self.listeners.iter().position(
            |l| matches!(l, Listener::Udp { local, .. } if local.is_ipv6() == out.dest.is_ipv6()),
        );
        let Some(index) = index else {
            return self.fail(out, None, SendError::NoSocket);
        };
        let Listener::Udp { socket, queue, .. } = &mut self.listeners[index] else {
            unreachable!("position() matched a UDP listener");
        };
        if queue.is_empty() {
            loop {
                match socket.send_to(&out.data, out.dest) {
                    Ok(_) => return,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) if would_block(&e) => break,
                    Err(e) => return self.fail(out, None, SendError::Io(e)),
                }
            }
        }
        if queue.len() >= UDP_QUEUE_MAX {
            let e = io::Error::new(io::ErrorKind::WouldBlock, "UDP send queue full");
            return self.fail(out, None, SendError::Io(e));
        }
        if queue.is_empty() {
            let both = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().reregister(socket, Token(index), both) {
                log::warn!("SIP UDP: cannot wait for a full socket to drain: {e}");
                return self.fail(out, None, SendError::Io(e));
            }
        }
        queue.push_back((out.dest, out.data));
    }

    fn flush_udp(&mut self, index: usize) {
        let Listener::Udp { socket, queue, .. } = &mut self.listeners[index] else {
            return;
        };
        let mut failures = Vec::new();
        while let Some((dest, data)) = queue.front() {
            match socket.send_to(data, *dest) {
                Ok(_) => {}
                Err(e) if interrupted(&e) => continue,
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    let (dest, data) = queue.pop_front().expect("front exists");
                    failures.push(SendFailure {
                        proto: Proto::Udp,
                        dest,
                        connection: None,
                        data,
                        error: SendError::Io(e),
                    });
                    continue;
                }
            }
            queue.pop_front();
        }
        if queue.is_empty() {
            let token = Token(index);
            if let Err(e) = self
                .poll
                .registry()
                .reregister(socket, token, Interest::READABLE)
            {
                log::warn!("SIP UDP: cannot drop write interest: {e}");
            }
        }
        for failure in failures {
            report(&self.on_failure, failure);
        }
    }

    fn read_udp(&mut self, index: usize) {
        let mut errors = 0;
        for _ in 0..UDP_READ_BUDGET {
            let Listener::Udp { socket, local, .. } = &self.listeners[index] else {
                return;
            };
            let local = *local;
            match socket.recv_from(&mut self.recv_buf) {
                Ok((n, source)) => {
                    errors = 0;
                    if n > self.max_message_size {
                        log::debug!("SIP UDP {local}: dropped a {n}-byte datagram from {source}");
                        continue;
                    }
                    if Self::taken_early(self.early.as_ref(), &self.recv_buf[..n], Proto::Udp) {
                        continue;
                    }
                    let inbound = Inbound {
                        data: self.recv_buf[..n].to_vec(),
                        source,
                        local,
                        proto: Proto::Udp,
                        connection: None,
                        certificate: None,
                    };
                    self.deliver(inbound);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // Such as ICMP errors for earlier sends (ECONNREFUSED): one per call, so
                    // keep reading, but do not spin on a socket that only fails.
                    log::debug!("SIP UDP {local}: receive error: {e}");
                    errors += 1;
                    if errors > 16 {
                        return;
                    }
                }
            }
        }
        self.unfinished.push(index);
    }

    fn listener_event(&mut self, index: usize, readable: bool, writable: bool) {
        match &self.listeners[index] {
            Listener::Udp { .. } => {
                if writable {
                    self.flush_udp(index);
                }
                if readable {
                    self.read_udp(index);
                }
            }
            Listener::Tcp { .. } => self.accept(index),
        }
    }

    // ---- TCP ----

    fn accept(&mut self, index: usize) {
        loop {
            let Listener::Tcp { socket, proto } = &self.listeners[index] else {
                return;
            };
            let proto = *proto;
            match socket.accept() {
                Ok((stream, peer)) => {
                    if self.conns.len() >= self.max_conns {
                        log::warn!("SIP TCP: connection limit reached, refusing {peer}");
                        drop(stream);
                        continue;
                    }
                    let from_peer = self.per_address.get(&peer.ip()).copied().unwrap_or(0);
                    if from_peer >= self.max_per_address {
                        log::info!(
                            "SIP TCP: {} already has {from_peer} connections, refusing another",
                            peer.ip()
                        );
                        self.stats.refused.fetch_add(1, Relaxed);
                        drop(stream);
                        continue;
                    }
                    let local = stream.local_addr().unwrap_or(peer);
                    let session = match self.tls_session(proto.is_tls(), None, peer) {
                        Ok(session) => session,
                        Err(e) => {
                            log::warn!("SIP TLS: cannot start a session with {peer}: {e}");
                            continue;
                        }
                    };
                    if let Some(token) = self.add_conn(stream, proto, peer, local, false, session) {
                        *self.per_address.entry(peer.ip()).or_insert(0) += 1;
                        log::debug!("SIP TCP: accepted {peer} as conn#{token}");
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::warn!("SIP TCP: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Registers a connection; `None` (and the stream closed) if registration fails.
    fn add_conn(
        &mut self,
        mut stream: TcpStream,
        proto: Proto,
        peer: SocketAddr,
        local: SocketAddr,
        connecting: bool,
        tls: Option<Box<rustls::Connection>>,
    ) -> Option<usize> {
        let token = self.next_token;
        let registered = self.poll.registry().register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = registered {
            log::warn!("SIP TCP: cannot register a connection with {peer}: {e}");
            return None;
        }
        if !connecting {
            let _ = stream.set_nodelay(true);
        }
        self.next_token += 1;
        self.conns.insert(
            token,
            Conn {
                id: ConnectionId(token as u64),
                proto,
                stream,
                tls,
                ws: proto.is_websocket().then_some(WsState::Handshake),
                certificate: None,
                opened: self.clock.now_ms(),
                vouched: connecting,
                inbound: !connecting,
                peer,
                local,
                connecting,
                inbuf: Vec::new(),
                out: VecDeque::new(),
                out_pos: 0,
                out_bytes: 0,
                last_active: self.clock.now_ms(),
                held: VecDeque::new(),
            },
        );
        self.by_peer.insert((proto, peer), token);
        self.stats.open.store(self.conns.len(), Relaxed);
        if let Some(n) = self.stats.by_proto(proto) {
            n.fetch_add(1, Relaxed);
        }
        Some(token)
    }

    /// A new TLS session (`None` for a TCP connection): the server side for an accepted
    /// connection, the client side verifying `server_name` (or the peer's address) for an
    /// outgoing one.
    fn tls_session(
        &self,
        tls: bool,
        outgoing: Option<Option<&str>>,
        peer: SocketAddr,
    ) -> Result<Option<Box<rustls::Connection>>, SendError> {
        if !tls {
            return Ok(None);
        }
        let config = self.tls.as_ref().ok_or(SendError::NoTlsConfig)?;
        let invalid = |e: String| SendError::Io(io::Error::new(io::ErrorKind::InvalidInput, e));
        let session: rustls::Connection = match outgoing {
            None => rustls::ServerConnection::new(config.server.clone())
                .map_err(|e| invalid(e.to_string()))?
                .into(),
            Some(name) => {
                let name = match name {
                    Some(name) => rustls_pki_types::ServerName::try_from(name.to_string())
                        .map_err(|e| invalid(format!("'{name}': {e}")))?,
                    None => rustls_pki_types::ServerName::IpAddress(peer.ip().into()),
                };
                rustls::ClientConnection::new(config.client.clone(), name)
                    .map_err(|e| invalid(e.to_string()))?
                    .into()
            }
        };
        Ok(Some(Box::new(session)))
    }

    fn send_stream(&mut self, out: Outbound) {
        if out.data.is_empty() {
            // Nothing to write (and a zero-byte write would look like a dead connection).
            return;
        }
        let preferred = out
            .connection
            .map(|id| id.0 as usize)
            .filter(|t| self.conns.get(t).is_some_and(|c| c.proto == out.proto));
        let existing = preferred.or_else(|| self.by_peer.get(&(out.proto, out.dest)).copied());
        let token = match existing {
            Some(token) => token,
            None => {
                let name = match (&out.server_name, &self.tls_name) {
                    (Some(name), _) => Some(name.clone()),
                    (None, Some(read)) if out.proto == Proto::Tls => read(&out.data),
                    _ => None,
                };
                match self.connect(out.proto, out.dest, name.as_deref()) {
                    Ok(token) => token,
                    Err(e) => return self.fail(out, None, e),
                }
            }
        };
        let conn = self.conns.get_mut(&token).expect("the connection is open");
        if conn.out_bytes + out.data.len() > MAX_TCP_SEND_QUEUE {
            let id = conn.id;
            return self.fail(out, Some(id), SendError::QueueFull);
        }
        let data = match conn.ws.as_mut() {
            None => out.data,
            Some(WsState::Open(session)) => match session.frame(&out.data) {
                Ok(frame) => frame,
                Err(e) => {
                    let id = conn.id;
                    return self.fail(out, Some(id), SendError::Io(e));
                }
            },
            Some(WsState::Handshake | WsState::Served) => {
                let id = conn.id;
                return self.fail(out, Some(id), SendError::NotConnected);
            }
        };
        conn.out_bytes += data.len();
        conn.out.push_back((data, true));
        self.flush(token);
    }

    fn connect(
        &mut self,
        proto: Proto,
        dest: SocketAddr,
        server_name: Option<&str>,
    ) -> Result<usize, SendError> {
        if proto.is_websocket() {
            return Err(SendError::NotConnected);
        }
        if self.conns.len() >= self.max_conns {
            return Err(SendError::ConnectionLimit);
        }
        let session = self.tls_session(proto == Proto::Tls, Some(server_name), dest)?;
        let stream = TcpStream::connect(dest).map_err(SendError::Io)?;
        let unspecified = SocketAddr::new(
            if dest.is_ipv6() {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            },
            0,
        );
        let token = self
            .add_conn(stream, proto, dest, unspecified, true, session)
            .ok_or(SendError::Closed)?;
        log::debug!("SIP TCP: connecting to {dest} as conn#{token}");
        Ok(token)
    }

    fn conn_event(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.connecting {
            match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    return self.close(token, "connect failed", SendError::Io(e))
                }
                Ok(None) => {}
            }
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.connecting = false;
                    conn.last_active = self.clock.now_ms();
                    let _ = conn.stream.set_nodelay(true);
                    if let Ok(local) = conn.stream.local_addr() {
                        conn.local = local;
                    }
                    log::debug!("SIP TCP: conn#{token} connected to {}", conn.peer);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.close(token, "connect failed", SendError::Io(e)),
            }
        }
        // Edge-triggered: trying both directions whenever anything happens is cheap and
        // never misses a readiness change.
        self.flush(token);
        self.read(token);
    }

    /// Writes as much queued data as the socket takes.
    fn flush(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.connecting {
            return;
        }
        if conn.tls.is_some() {
            return self.flush_tls(token);
        }
        while let Some((data, _)) = conn.out.front() {
            match conn.stream.write(&data[conn.out_pos..]) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "connection wrote nothing");
                    return self.close(token, "write failed", SendError::Io(e));
                }
                Ok(n) => {
                    conn.last_active = self.clock.now_ms();
                    conn.out_pos += n;
                    if conn.out_pos == data.len() {
                        conn.out_bytes -= data.len();
                        conn.out.pop_front();
                        conn.out_pos = 0;
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return self.close(token, "write failed", SendError::Io(e)),
            }
        }
        if matches!(conn.ws, Some(WsState::Served)) {
            return self.close(token, "web page served", SendError::Closed);
        }
        // Written out: an idle connection keeps no queue.
        conn.out = VecDeque::new();
    }

    /// Writes what the TLS session has ready, then moves queued messages into the session
    /// one at a time (a part at a time when it is larger than the session takes), each once
    /// the records before it are written: the session never holds more than one message,
    /// and what the queue still holds when the connection fails is reported as unsent.
    fn flush_tls(&mut self, token: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let Conn {
                stream, tls, out, ..
            } = conn;
            let tls = tls.as_mut().expect("a TLS connection");
            while tls.wants_write() {
                match tls.write_tls(stream) {
                    Ok(0) => {
                        let e =
                            io::Error::new(io::ErrorKind::WriteZero, "connection wrote nothing");
                        return self.close(token, "write failed", SendError::Io(e));
                    }
                    Ok(_) => conn.last_active = self.clock.now_ms(),
                    Err(e) if would_block(&e) => return,
                    Err(e) if interrupted(&e) => continue,
                    Err(e) => return self.close(token, "write failed", SendError::Io(e)),
                }
            }
            if tls.is_handshaking() {
                return;
            }
            let Some((data, _)) = out.front() else {
                if matches!(conn.ws, Some(WsState::Served)) {
                    return self.close(token, "web page served", SendError::Closed);
                }
                // Written out: an idle connection keeps no queue.
                *out = VecDeque::new();
                return;
            };
            // The session takes at most its buffer limit (rustls: 64 KiB of records) at
            // once: a bigger message (a file of the web root) goes in in parts, each once
            // the records before it are written.
            let len = data.len();
            match tls.writer().write(&data[conn.out_pos..]) {
                Ok(0) => return,
                Ok(n) => {
                    conn.out_pos += n;
                    if conn.out_pos == len {
                        conn.out_bytes -= len;
                        out.pop_front();
                        conn.out_pos = 0;
                    }
                }
                Err(e) => return self.close(token, "TLS write failed", SendError::Io(e)),
            }
        }
    }

    /// Reads what a TLS connection has, decrypts it, and delivers each complete message;
    /// answers the handshake as it goes.
    fn read_tls(&mut self, token: usize) {
        for _ in 0..TCP_READ_BUDGET {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            if conn.connecting || !conn.held.is_empty() {
                // A connection holding a refused message is read again once it is taken.
                return;
            }
            let Conn {
                stream,
                tls,
                inbuf,
                certificate,
                peer,
                ..
            } = conn;
            let tls = tls.as_mut().expect("a TLS connection");
            match tls.read_tls(stream) {
                Ok(0) => return self.close(token, "closed by peer", SendError::Closed),
                Ok(_) => {
                    conn.last_active = self.clock.now_ms();
                    let was_handshaking = tls.is_handshaking();
                    let state = match tls.process_new_packets() {
                        Ok(state) => state,
                        Err(e) => {
                            // The alert saying why, if the socket takes it.
                            let _ = tls.write_tls(stream);
                            log::info!("SIP TLS: {peer}: {e}");
                            return self.close(token, &format!("TLS: {e}"), SendError::Closed);
                        }
                    };
                    let mut plain = state.plaintext_bytes_to_read();
                    while plain > 0 {
                        let n = plain.min(self.recv_buf.len());
                        if tls.reader().read_exact(&mut self.recv_buf[..n]).is_err() {
                            break;
                        }
                        inbuf.extend_from_slice(&self.recv_buf[..n]);
                        plain -= n;
                    }
                    if was_handshaking && !tls.is_handshaking() {
                        *certificate = tls
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|c| PeerCertificate::new(c.clone().into_owned()));
                        log::debug!(
                            "SIP TLS: conn#{token} with {peer} established{}",
                            if certificate.is_some() {
                                " (the peer gave a certificate)"
                            } else {
                                ""
                            }
                        );
                    }
                    // Handshake answers, and the messages that waited for the handshake.
                    self.flush(token);
                    if !self.frame(token) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return self.close(token, "read failed", SendError::Io(e)),
            }
        }
        self.read_again(token);
    }

    /// A connection whose read budget ran out is read again next round, unless it holds a
    /// refused message ([`Driver::retry_held`] puts it back once that is taken).
    fn read_again(&mut self, token: usize) {
        if self.conns.get(&token).is_some_and(|c| c.held.is_empty()) {
            self.unfinished.push(token);
        }
    }

    /// Reads until the socket is drained or the budget is spent, delivering each complete
    /// message.
    fn read(&mut self, token: usize) {
        if self.conns.get(&token).is_some_and(|c| c.tls.is_some()) {
            return self.read_tls(token);
        }
        for _ in 0..TCP_READ_BUDGET {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            if conn.connecting || !conn.held.is_empty() {
                // A connection holding a refused message is read again once it is taken.
                return;
            }
            match conn.stream.read(&mut self.recv_buf) {
                Ok(0) => return self.close(token, "closed by peer", SendError::Closed),
                Ok(n) => {
                    conn.last_active = self.clock.now_ms();
                    conn.inbuf.extend_from_slice(&self.recv_buf[..n]);
                    if !self.frame(token) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return self.close(token, "read failed", SendError::Io(e)),
            }
        }
        self.read_again(token);
    }

    /// Cuts complete messages out of the connection's buffer; false if it closed it.
    fn frame(&mut self, token: usize) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        if !conn.held.is_empty() {
            // What follows a held message waits behind it.
            return true;
        }
        if conn.ws.is_some() {
            return self.frame_ws(token);
        }
        // Messages are cut at offset `at`; the buffer is shifted once, at the end.
        let mut at = 0;
        let mut pongs = 0;
        let mut pongs_in = 0;
        let outcome = loop {
            let (skip, pings) = skip_crlf(&conn.inbuf[at..]);
            at += skip;
            pongs += pings;
            let rest = &conn.inbuf[at..];
            if rest == b"\r\n" && !conn.inbound && self.on_flow.is_some() {
                // A pong on a flow this transport opened (see `TransportConfig::on_flow`).
                at += 2;
                pongs_in += 1;
                break Ok(());
            }
            if rest.is_empty() || b"\r\n\r\n".starts_with(rest) {
                // Nothing, or the start of a ping still arriving.
                break Ok(());
            }
            match (self.framer)(rest) {
                Ok(Some(n)) if n > 0 && n <= rest.len() => {
                    if n > self.max_message_size {
                        break Err("message too large".to_string());
                    }
                    at += n;
                    if Self::taken_early(self.early.as_ref(), &rest[..n], conn.proto) {
                        continue;
                    }
                    let inbound = Inbound {
                        data: rest[..n].to_vec(),
                        source: conn.peer,
                        local: conn.local,
                        proto: conn.proto,
                        connection: Some(conn.id),
                        certificate: conn.certificate.clone(),
                    };
                    // The handler cannot reach this thread's state: `conn` stays valid.
                    if let Err(refused) = offer(&self.handler, inbound) {
                        // Framing stops here: what follows stays in the buffer, behind it.
                        hold(&mut conn.held, token, refused, &mut self.held, &self.stats);
                        break Ok(());
                    }
                }
                Ok(Some(n)) => {
                    break Err(format!("the framer returned {n} for {} bytes", rest.len()))
                }
                Ok(None) if rest.len() > self.max_message_size => {
                    break Err("message too large".to_string());
                }
                Ok(None) => break Ok(()),
                Err(reason) => break Err(format!("framing error: {reason}")),
            }
        };
        if let Err(why) = outcome {
            self.close(token, &why, SendError::Closed);
            return false;
        }
        conn.inbuf.drain(..at);
        if pongs_in > 0 {
            if let Some(on_flow) = &self.on_flow {
                let event = super::FlowEvent::Pong {
                    proto: conn.proto,
                    peer: conn.peer,
                };
                if panic::catch_unwind(AssertUnwindSafe(|| on_flow(event))).is_err() {
                    log::error!("SIP transport: the flow handler panicked");
                }
            }
        }
        if conn.inbuf.is_empty() && conn.inbuf.capacity() > 0 {
            // An idle connection keeps no buffer from its last message (most connections
            // are idle most of the time; a new buffer per message costs little beside its
            // parse).
            conn.inbuf = Vec::new();
        }
        if let (Some(on_ping), true, true) = (&self.on_ping, pongs > 0, conn.inbound) {
            let (proto, peer) = (conn.proto, conn.peer);
            if panic::catch_unwind(AssertUnwindSafe(|| on_ping(proto, peer))).is_err() {
                log::error!("SIP transport: the keep-alive handler panicked");
            }
        }
        if pongs > 0 {
            for _ in 0..pongs {
                conn.out_bytes += 2;
                conn.out.push_back((b"\r\n".to_vec(), false));
            }
            self.flush(token);
            return self.conns.contains_key(&token);
        }
        true
    }

    /// The WebSocket layer of [`Driver::frame`]: answers the opening handshake, then takes
    /// each WebSocket message as one SIP message; false if it closed the connection.
    fn frame_ws(&mut self, token: usize) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        let Some(ws) = conn.ws.as_mut() else {
            return true;
        };
        if matches!(ws, WsState::Served) {
            // One answer per connection: what follows the request is not read.
            conn.inbuf.clear();
            return true;
        }
        if matches!(ws, WsState::Handshake) {
            if let Some(page) = self.web_root.as_ref().and_then(|w| w.answer(&conn.inbuf)) {
                log::debug!(
                    "SIP {}: conn#{token} with {}: web page",
                    conn.proto,
                    conn.peer
                );
                *ws = WsState::Served;
                conn.inbuf.clear();
                conn.out_bytes += page.len();
                conn.out.push_back((page, false));
                self.flush(token);
                return self.conns.contains_key(&token);
            }
            match websocket::accept(&conn.inbuf, &self.ws_origins) {
                Ok(None) => return true,
                Ok(Some((length, answer))) => {
                    log::debug!("SIP {}: conn#{token} with {} open", conn.proto, conn.peer);
                    *ws = WsState::Open(Box::new(websocket::Session::new(self.max_message_size)));
                    conn.inbuf.drain(..length);
                    conn.out_bytes += answer.len();
                    conn.out.push_back((answer, false));
                }
                Err(refusal) => {
                    log::info!(
                        "SIP {}: {} refused: {} {}",
                        conn.proto,
                        conn.peer,
                        refusal.status,
                        refusal.reason
                    );
                    let answer = refusal.response();
                    conn.out_bytes += answer.len();
                    conn.out.push_back((answer, false));
                    self.flush(token);
                    self.close(token, "WebSocket handshake refused", SendError::Closed);
                    return false;
                }
            }
        }
        let Some(WsState::Open(session)) = conn.ws.as_mut() else {
            return true;
        };
        let input = std::mem::take(&mut conn.inbuf);
        let mut received = session.receive(&input);
        let mut refused = None;
        for message in received.messages {
            match websocket::keep_alive(&message) {
                Some(true) => match session.frame(b"\r\n") {
                    Ok(pong) => received.output.extend(pong),
                    Err(_) => refused = Some("cannot answer a keep-alive".to_string()),
                },
                Some(false) => {}
                None if !websocket::looks_like_sip(&message) => {
                    received
                        .output
                        .extend(session.close(1003, "not a SIP message"));
                    refused = Some("a WebSocket message that is not SIP".into());
                }
                None => {
                    if Self::taken_early(self.early.as_ref(), &message, conn.proto) {
                        continue;
                    }
                    let inbound = Inbound {
                        data: message,
                        source: conn.peer,
                        local: conn.local,
                        proto: conn.proto,
                        connection: Some(conn.id),
                        certificate: conn.certificate.clone(),
                    };
                    // The messages after a refused one (decoded by the same read) are held
                    // behind it, not offered: order is kept.
                    let offered = if conn.held.is_empty() {
                        offer(&self.handler, inbound)
                    } else {
                        Err(inbound)
                    };
                    if let Err(refused) = offered {
                        hold(&mut conn.held, token, refused, &mut self.held, &self.stats);
                    }
                }
            }
            if refused.is_some() {
                break;
            }
        }
        if !received.output.is_empty() {
            conn.out_bytes += received.output.len();
            conn.out.push_back((received.output, false));
        }
        if !conn.out.is_empty() {
            // The handshake's answer, pongs, a close.
            self.flush(token);
        }
        if let Some(why) = refused.or(received.closed) {
            self.close(token, &why, SendError::Closed);
            return false;
        }
        self.conns.contains_key(&token)
    }

    fn close_idle(&mut self) {
        let now = self.clock.now_ms();
        let past =
            |since: u64, limit: Duration| now.saturating_sub(since) >= limit.as_millis() as u64;
        let mut idle = Vec::new();
        for (&token, c) in &self.conns {
            let why = if past(c.last_active, self.idle_timeout) {
                "idle"
            } else if c.tls.as_ref().is_some_and(|t| t.is_handshaking())
                && past(c.opened, self.handshake_timeout)
            {
                "TLS handshake too slow"
            } else if matches!(c.ws, Some(WsState::Handshake))
                && past(c.opened, self.handshake_timeout)
            {
                "WebSocket handshake too slow"
            } else if !c.vouched && past(c.opened, self.unvouched_timeout) {
                "nothing authenticated on it in time"
            } else {
                continue;
            };
            idle.push((token, why));
        }
        for (token, why) in idle {
            if why != "idle" {
                self.stats.timed_out.fetch_add(1, Relaxed);
            }
            let error = if self.conns[&token].connecting {
                SendError::Io(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            } else {
                SendError::Closed
            };
            self.close(token, why, error);
        }
    }

    /// Closes a connection; each message still queued on it is reported with `error`.
    fn close(&mut self, token: usize, why: &str, error: SendError) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        self.stats.open.store(self.conns.len(), Relaxed);
        if let Some(n) = self.stats.by_proto(conn.proto) {
            n.fetch_sub(1, Relaxed);
        }
        if conn.inbound {
            if let Some(n) = self.per_address.get_mut(&conn.peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_address.remove(&conn.peer.ip());
                }
            }
        }
        if self.by_peer.get(&(conn.proto, conn.peer)) == Some(&token) {
            self.by_peer.remove(&(conn.proto, conn.peer));
        }
        if let Some(tls) = conn.tls.as_mut() {
            // Says goodbye if the socket takes it at once; the peer learns of the close
            // from the TCP FIN anyway.
            tls.send_close_notify();
            let _ = tls.write_tls(&mut conn.stream);
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        log::debug!("SIP TCP: conn#{token} with {} closed: {why}", conn.peer);
        if !conn.held.is_empty() {
            // Closed by this side (a failed write, a timeout, the transport stopping): no
            // answer could go back over it. A peer's close is seen only once the held
            // messages are taken (reading resumes after them), so they are not lost to it.
            log::debug!(
                "SIP TCP: conn#{token}: {} held messages dropped with it",
                conn.held.len()
            );
        }
        if let Some(on_closed) = &self.on_connection_closed {
            let (on_closed, proto, peer) = (on_closed.clone(), conn.proto, conn.peer);
            if panic::catch_unwind(AssertUnwindSafe(|| on_closed(proto, peer))).is_err() {
                log::error!("SIP transport: the closed-connection handler panicked");
            }
        }
        if let (Some(on_flow), false) = (&self.on_flow, conn.inbound || conn.ws.is_some()) {
            let event = super::FlowEvent::Closed {
                proto: conn.proto,
                peer: conn.peer,
            };
            if panic::catch_unwind(AssertUnwindSafe(|| on_flow(event))).is_err() {
                log::error!("SIP transport: the flow handler panicked");
            }
        }
        for (mut data, reported) in conn.out.drain(..) {
            if reported {
                if conn.ws.is_some() {
                    // The SIP message inside the frame.
                    data = websocket::payload(&data).to_vec();
                }
                report(
                    &self.on_failure,
                    SendFailure {
                        proto: conn.proto,
                        dest: conn.peer,
                        connection: Some(conn.id),
                        data,
                        error: error.duplicate(),
                    },
                );
            }
        }
        // Dropping `conn` closes the socket.
    }
}

/// Measures the CRLFs at the start of a connection's buffer and counts the keep-alive pings
/// (double CRLFs) among them: returns (bytes to skip, pings). A lone CRLF (RFC 3261 §7.5
/// allows them between messages) is skipped; a prefix that may still become a ping (`\r`,
/// `\r\n`, `\r\n\r`) is not, and waits for more bytes.
fn skip_crlf(buf: &[u8]) -> (usize, usize) {
    let mut pings = 0;
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        if rest.starts_with(b"\r\n\r\n") {
            pings += 1;
            at += 4;
        } else if rest.starts_with(b"\r\n") && rest.len() >= 3 && rest[2] != b'\r' {
            at += 2;
        } else if rest.first() == Some(&b'\n') {
            at += 1;
        } else {
            return (at, pings);
        }
    }
}

/// Offers a message to the handler: `Err` gives it back, refused for now. A handler that
/// panicked took it (it may have done part of its work: offering it again could do that
/// twice).
fn offer(handler: &Handler, inbound: Inbound) -> Result<(), Inbound> {
    match panic::catch_unwind(AssertUnwindSafe(|| handler(inbound))) {
        Ok(taken) => taken,
        Err(_) => {
            log::error!("SIP transport: the inbound handler panicked");
            Ok(())
        }
    }
}

/// Holds a refused message on connection `token` (`queue`: its [`Conn::held`]), which is
/// read no further: `held` lists the connection once, when its first message is held; each
/// message is counted once.
fn hold(
    queue: &mut VecDeque<Inbound>,
    token: usize,
    refused: Inbound,
    held: &mut Vec<usize>,
    stats: &Counters,
) {
    if queue.is_empty() {
        held.push(token);
    }
    queue.push_back(refused);
    stats.held.fetch_add(1, Relaxed);
}

fn report(on_failure: &FailureHandler, failure: SendFailure) {
    log::debug!(
        "SIP {} send to {} failed: {}",
        failure.proto,
        failure.dest,
        failure.error
    );
    if panic::catch_unwind(AssertUnwindSafe(|| on_failure(failure))).is_err() {
        log::error!("SIP transport: the failure handler panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::skip_crlf;

    #[test]
    fn sip_skip_crlf_counts_pings_and_keeps_partial_ones() {
        assert_eq!(skip_crlf(b"\r\n\r\nINVITE"), (4, 1));
        assert_eq!(skip_crlf(b"\r\nINVITE"), (2, 0));
        assert_eq!(skip_crlf(b"\r\n\r\n\r\n\r\n"), (8, 2));
        assert_eq!(skip_crlf(b"\r\n\r\n\r\nX"), (6, 1));
        for partial in [&b"\r"[..], b"\r\n", b"\r\n\r"] {
            assert_eq!(skip_crlf(partial), (0, 0));
        }
        assert_eq!(skip_crlf(b"\r\n\r\n\r"), (4, 1));
        assert_eq!(skip_crlf(b"\nOPTIONS"), (1, 0));
        assert_eq!(skip_crlf(b"OPTIONS\r\n\r\n"), (0, 0));
        assert_eq!(skip_crlf(b""), (0, 0));
    }
}
