//! The node (DESIGN §5): a running SIP server, assembled from the stack and the roles.
//! The stack (`super::stack`) carries messages and transactions; the server roles
//! ([`super::server`]) serve the owned domains; the agent roles ([`super::agent`]) act as a
//! user agent of other domains. The node is the one place that knows them all: it gives
//! each request to its role (who may ask what is decided in the roles, through
//! `super::server::auth` and `super::server::trust`), each event of the engine's port ([`crate::engine::Port`]) to
//! the role that delivers it, and runs the timers; the roles never call each other.
//!
//! A request served here (not relayed) whose `Require` names an option tag the server does
//! not implement for its method gets `420 Bad Extension` with `Unsupported` before any role
//! sees it (`super::server::bad_extension`).
//!
//! | request | role |
//! | --- | --- |
//! | a SUBSCRIBE whose To is the address of record of an account with `serve` on (presence at the edge) | the notifier, if it comes from the account's server or a peer trusted for its domain (else `403`); never relayed |
//! | any non-INVITE request for another domain with a route (not a SUBSCRIBE served by federation) | forwarder (relaying only the own users, trusted peers and its record-routed dialogs) |
//! | REGISTER | registrar |
//! | SUBSCRIBE to a resource list of an owned domain, carrying its own list (RFC 5367, to any URI of an owned domain), or inside a list dialog | list server |
//! | SUBSCRIBE | notifier (a presentity of another domain: served through a back-end subscription, when federation takes it; with migration on, a presence SUBSCRIBE of an allowed watcher for a presentity with a serving device goes to the device: see below) |
//! | PUBLISH | publisher |
//! | MESSAGE | an account's, when its To is the account (from the account's server or a peer believed for its domain, else `403`); else the pager |
//! | NOTIFY | the back-end subscriptions (`481` for any other: only the dialogs this server opened take NOTIFYs) |
//! | OPTIONS | answered here: `200` with Allow, Allow-Events, Supported, Accept |
//! | anything else | `405 Method Not Allowed` with Allow |
//!
//! | port event | role |
//! | --- | --- |
//! | a notification of a back subscription of a list dialog (its target starts with `list_server::LIST_TARGET`), or of a shared subscription's group or member (`engine::member`) | the list server |
//! | a notification | the notifier (a SIP dialog), else the accounts (an account's own presence) |
//! | a message for a registered contact | the pager (relayed) |
//! | a delivery outcome | the pager (the answer to a MESSAGE that waited for it) |
//! | (transport) a pong or the closing of a flow this node opened | the accounts (a serving account's keep-alives) |
//! | a message for another domain | the accounts when its sender is one, else the pager |
//! | subscription state changes, authorization requests | the back-end subscriptions |
//!
//! # Presence at the edge (migration)
//!
//! The one decision that needs several roles is made here ([`Migrator`], asked by the
//! notifier): with [`SipServerConfig::migration`] on, a presence SUBSCRIBE (or refresh)
//! moves when the presentity has a serving contact (the registrar's) and the engine would
//! allow the watcher; by proxy the forwarder carries it to the device, and what becomes of
//! it goes to the hand-over table (`super::server::handover`) and, when the device does not
//! take it, back to the notifier. The registrar tells of each serving contact that ends,
//! the node passes it to the hand-over table, which takes that device's watchers back.
//!
//! # Threads
//!
//! The transport's I/O thread queues what arrives for `workers` threads, which parse and
//! handle requests (engine calls are round trips to a shard, so they are kept off the I/O
//! thread); only the final answers that need no more than a note (a NOTIFY accepted, a
//! relayed MESSAGE answered) are taken on the I/O thread itself. One events thread takes
//! the port's events; one timer thread runs every timer of the stack and the roles, on the
//! engine's clock, sleeping until the next deadline (`super::alarm`).
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::agent::account::{Accounts, UPLINK_TARGET};
use super::agent::backend::FederationConfig;
use super::agent::{AgentCounters, Backends, FederationStats};
use super::digest::DigestAuthenticator;
use super::guard::GuardCounters;
use super::live::Live;
use super::rate::{Admission, RateLimit, RateLimiter};
use super::server::auth::{Authentication, Challenges};
use super::server::forwarder::{Forwarder, ForwarderConfig};
use super::server::handover::{Handover, HandoverStats, Migration};
use super::server::list_server::{ListServer, LIST_TARGET};
use super::server::notifier::{Migrates, Notifier, Placement};
use super::server::pager::Pager;
use super::server::publisher::Publisher;
use super::server::registrar::Registrar;
use super::server::throttle::{AuthLimits, Throttle};
use super::server::trust::{Trust, TrustConfig};
use super::server::{ALLOW, ALLOW_EVENTS};
use super::stack::{lock, Dispatch, Request, Stack, StackConfig};
use super::transaction::Timers;
use super::transport::{Inbound, ListenAddr, Proto, SendFailure, Transport, TransportConfig};
use super::{SipLimits, SipMessage};
use crate::engine::{Engine, Event, PortCloser, PortOptions};
use crate::error::{Error, Result};
use crate::log;
use std::sync::atomic::AtomicU64;

/// How a [`SipServer`] is set up.
#[derive(Debug, Clone)]
pub struct SipServerConfig {
    /// Where to listen.
    pub listen: Vec<ListenAddr>,
    /// Whether requests must carry digest credentials of a user in the engine's directory
    /// (REGISTER, PUBLISH, SUBSCRIBE, MESSAGE). Default: yes.
    pub authenticate: bool,
    /// Transaction timers (T1 = 500 ms by default).
    pub timers: Timers,
    /// Message limits.
    pub limits: SipLimits,
    /// Threads handling requests. Default 2.
    pub workers: usize,
    /// The Server / User-Agent header value.
    pub server_name: String,
    /// Whether the SHA-256 challenge comes before the MD5 one. Default: no. RFC 8760 orders
    /// by preference (SHA-256 first), but deployed clients such as sipp read only the first
    /// challenge and know only MD5, so the default puts MD5 first and a client that knows
    /// SHA-256 still finds it.
    pub prefer_sha256: bool,
    /// Whether a SHA-256 challenge is offered next to the MD5 one. Default: yes. libre-based
    /// clients (baresip) try every challenge of a 401 and fail the request on one naming an
    /// algorithm other than MD5 ("Function not implemented"), whatever the order; such
    /// clients need this off (imppd offers MD5 alone unless given `--sha256`).
    pub offer_sha256: bool,
    /// Where requests for domains the engine does not own go (forwarding, federation,
    /// the user-agent role). Empty: such requests are refused.
    pub routes: super::route::RouteTable,
    /// Whether a SUBSCRIBE from a user of an owned domain to a presentity of another domain
    /// is served here, with one back-end subscription per remote presentity shared by all
    /// local watchers (federation, "distribute state"), rather than forwarded. Default: yes.
    pub federate: bool,
    /// Expiry asked for in back-end SUBSCRIBEs (seconds); they are refreshed at a random
    /// point between 60% and 85% of what the notifier grants. Default 3600.
    pub backend_expires: u32,
    /// Bounds on TCP and TLS connections.
    pub connections: ConnectionLimits,
    /// Messages per second each source address may send (see [`super::rate`]); the front
    /// proxies of [`SipServerConfig::auth_limits`] and the [`SipServerConfig::peers`] are
    /// exempt. Default
    /// [`RateLimit::DEFAULT`]: 200 a second, bursts of 1000.
    pub rate_limit: RateLimit,
    /// The certificate, key and trust anchors for TLS listeners and outgoing TLS (routes and
    /// accounts with `tls:` next hops); required when any of them uses TLS. Default: none.
    pub tls: Option<super::tls::TlsConfig>,
    /// Accounts at other servers this server acts for as a user agent (REGISTER, uplink
    /// PUBLISH, subscriptions of the account's buddies): see [`super::agent::Account`].
    /// Default: none.
    pub accounts: Vec<super::agent::Account>,
    /// Nonce lifetime, `nc` window and the throttle on failed credentials (see
    /// [`AuthLimits`]).
    pub auth_limits: AuthLimits,
    /// Peers trusted by address to speak for the users of other domains: a request whose
    /// From names such a domain is believed from the listed addresses (besides mutual-TLS
    /// peers whose certificate names the domain). See [`super::server::trust`]. Default:
    /// none.
    pub peers: Vec<super::TrustedPeer>,
    /// Whom requests claiming another domain's identity are believed from: trusted peers
    /// only (default), or anyone ([`super::Federation::Open`]).
    pub federation: super::Federation,
    /// Telephony systems that PUBLISH `presence`, `dialog` and `message-summary` state for
    /// any user of an owned domain: a PBX by its address, or a privileged account. Default:
    /// none.
    pub publishers: Vec<super::TrustedPublisher>,
    /// How long the list server (RFC 4662) collects the changes of a list subscription's
    /// resources before it sends them in one NOTIFY, counted from the first change after a
    /// NOTIFY; zero sends each change at once (one NOTIFY is still in flight per list
    /// dialog at most). Default 1 s. An interval of 200 ms or more ends on the next 20 ms of
    /// the clock, so that the dialogs whose batches end together are sent in one go.
    pub list_batch_interval: Duration,
    /// Which web pages may open WebSocket connections to the `ws` and `wss` listeners
    /// (RFC 7118): pages of the server's own host and port, and these origins
    /// (`https://phone.example.test`; `*` for any). Clients that send no `Origin` (not
    /// browsers) are not asked. Default: none besides the server's own.
    pub ws_origins: Vec<String>,
    /// A directory whose files the `ws` and `wss` listeners serve to plain HTTP requests
    /// (a web page that opens its SIP WebSocket to the same origin; see
    /// [`super::transport::web_root`]). Default: none.
    pub web_root: Option<std::path::PathBuf>,
    /// How next hops given by name are resolved (RFC 3263; see [`super::dns`]): the DNS
    /// server (default: the first of `/etc/resolv.conf`), timeouts, queue and cache bounds.
    pub dns: super::dns::ResolverConfig,
    /// Whether watchers of a presentity whose registered device offers to serve them
    /// (`events="presence"` in its Contact, RFC 3840) are handed to it: by proxy (the
    /// server record-routes the SUBSCRIBE to the device and takes the watchers back when
    /// it goes) or by `302` redirect. Only watchers the presentity's rules allow move;
    /// existing subscriptions move at their next refresh. Changed by
    /// [`SipServer::reconfigure`]. Default: off.
    pub migration: Migration,
    /// Messages received and not yet taken by a worker, at most. Beyond, a UDP request is
    /// dropped (counted as [`super::GuardStats::queue_dropped`]; its client retransmits)
    /// and a TCP, TLS or WebSocket connection is read no further until there is room (its
    /// message held, counted as [`super::transport::TransportStats::messages_held`]), so
    /// that the burst waits in the kernel's buffers and its sender's, and nothing sent over
    /// a connection is lost. The queue's slots are allocated at start (about 130 bytes
    /// each). Default [`SipServerConfig::DEFAULT_INBOUND_QUEUE`]; at least 1.
    pub inbound_queue: usize,
    /// How long the TCP or TLS flow of a device serving its watchers may stay silent (no
    /// RFC 5626 keep-alive, CRLF CRLF, since the last one or its REGISTER) before its
    /// watchers are taken back, as when the flow closes: a device cut off by the network
    /// leaves its connection open, and only its silence tells. Set it above the devices'
    /// keep-alive interval (an account's `keepalive`; 2 to 3 times it). Changed by
    /// [`SipServer::reconfigure`]. Default: none (the flow's close, the binding's end or a
    /// failed request tell).
    pub flow_timeout: Option<Duration>,
}

impl SipServerConfig {
    /// Default of [`SipServerConfig::inbound_queue`]: 16,384 messages.
    pub const DEFAULT_INBOUND_QUEUE: usize = 16_384;

    /// Listening on `listen`, every other option at its default.
    pub fn new(listen: Vec<ListenAddr>) -> SipServerConfig {
        SipServerConfig {
            listen,
            authenticate: true,
            timers: Timers::default(),
            limits: SipLimits::DEFAULT,
            workers: 2,
            server_name: format!("libimpp/{}", env!("CARGO_PKG_VERSION")),
            prefer_sha256: false,
            offer_sha256: true,
            routes: super::route::RouteTable::default(),
            federate: true,
            backend_expires: 3600,
            accounts: Vec::new(),
            tls: None,
            connections: ConnectionLimits::default(),
            rate_limit: RateLimit::DEFAULT,
            auth_limits: AuthLimits::default(),
            peers: Vec::new(),
            federation: super::Federation::Trusted,
            publishers: Vec::new(),
            list_batch_interval: Duration::from_secs(1),
            ws_origins: Vec::new(),
            web_root: None,
            dns: super::dns::ResolverConfig::default(),
            migration: Migration::Off,
            flow_timeout: None,
            inbound_queue: SipServerConfig::DEFAULT_INBOUND_QUEUE,
        }
    }
}

/// Bounds on TCP and TLS connections, so that strangers cannot hold them open or take them
/// all (see [`TransportConfig`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, inbound and outbound. Default 4096.
    pub max_total: usize,
    /// Inbound connections from one IP address. Default 64.
    pub max_per_address: usize,
    /// A connection with nothing read or written this long closes. Default 180 s.
    pub idle_timeout: Duration,
    /// A TLS handshake, and a WebSocket's opening handshake, must end this long after the
    /// connection opened. Default 10 s.
    pub handshake_timeout: Duration,
    /// An inbound connection no request authenticated on (nor a trusted peer used) closes
    /// this long after it opened. Default 32 s.
    pub unvouched_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_total: TransportConfig::DEFAULT_MAX_TCP_CONNECTIONS,
            max_per_address: TransportConfig::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            idle_timeout: TransportConfig::DEFAULT_TCP_IDLE_TIMEOUT,
            handshake_timeout: TransportConfig::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            unvouched_timeout: TransportConfig::DEFAULT_UNVOUCHED_TIMEOUT,
        }
    }
}

/// The timer thread's grain (clock ms): SIP's timers (T1 = 500 ms and its multiples) need
/// no finer one.
const TIMER_GRAIN_MS: u64 = 10;

/// A running SIP server over an engine.
pub struct SipServer {
    node: Arc<Node>,
    transport: Arc<Transport>,
    threads: Vec<JoinHandle<()>>,
    inbound: Option<Sender<(Inbound, Admission)>>,
    /// Closing the port ends the events thread (and gives the engine's events back to the
    /// application).
    port: PortCloser,
    _engine: Arc<Engine>,
    /// What [`SipServer::reconfigure`] replaces.
    live: LiveParts,
    /// The configuration running now (what a reconfiguration is compared with).
    config: Mutex<SipServerConfig>,
}

/// The cells shared with the roles that a reconfiguration replaces (besides the trust, which
/// the node holds, and the TLS identity, which the configuration holds).
struct LiveParts {
    routes: Live<super::route::RouteTable>,
    limiter: Arc<RateLimiter>,
    migration: Live<Migration>,
}

/// Work in flight and waiting in a running server, cheap to read (two short locks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Server transactions (requests received whose transaction has not ended).
    pub server_transactions: usize,
    /// Client transactions (requests sent, NOTIFYs most of all, not yet ended).
    pub client_transactions: usize,
    /// Messages received and waiting for a worker (at most 16384).
    pub inbound_queued: usize,
    /// Engine events waiting for the server's events thread (notifications to send).
    pub events_queued: usize,
    /// Connections by transport and the I/O thread's lateness.
    pub transport: super::transport::TransportLoad,
}

/// What [`SipServer::reconfigure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// What changed and applies from now on: `peers` (with federation and publishers),
    /// `routes`, `rate limit`, `tls certificate`.
    pub changed: Vec<&'static str>,
    /// What differs from the running configuration but takes a restart (not applied).
    pub needs_restart: Vec<&'static str>,
}

/// TLS listeners, routes and accounts need a certificate.
fn check_tls(config: &SipServerConfig) -> Result<()> {
    if config.tls.is_none() {
        let named_tls = config
            .routes
            .routes()
            .iter()
            .any(|r| matches!(&r.target, super::route::RouteTarget::Name(d) if d.secure));
        let hops = config.routes.routes().iter().filter_map(|r| r.target.hop());
        let accounts_tls = config
            .accounts
            .iter()
            .flat_map(|a| std::iter::once(&a.registrar).chain(&a.outbound_proxy))
            .any(|t| t.is_tls());
        let wants_tls = config.listen.iter().any(|l| l.proto.is_tls())
            || named_tls
            || accounts_tls
            || hops.into_iter().any(|h| h.proto == Proto::Tls);
        if wants_tls {
            return Err(Error::InvalidArgument(
                "TLS listen addresses, routes and accounts need a TLS certificate and key".into(),
            ));
        }
    }
    Ok(())
}

/// Front proxies and trusted peers carry many clients' requests: they are not limited as one
/// client. Nor is the server of an account that serves its own watchers (presence at the
/// edge): every watcher it hands over comes from its address, and a `503` from the limit
/// would make it take all of the device's watchers back. (Accounts' servers named by DNS
/// are not listed: their addresses are known only once resolved.)
fn rate_exempt(config: &SipServerConfig) -> Vec<(std::net::IpAddr, u8)> {
    let host = |ip: std::net::IpAddr| (ip, if ip.is_ipv4() { 32 } else { 128 });
    let serving_servers = config
        .accounts
        .iter()
        .filter(|a| a.serve)
        .flat_map(|a| [Some(&a.registrar), a.outbound_proxy.as_ref()])
        .flatten()
        .filter_map(|target| match target {
            super::route::RouteTarget::Hop(hop) => Some(host(hop.addr.ip())),
            super::route::RouteTarget::Name(_) | super::route::RouteTarget::Dns => None,
        });
    config
        .auth_limits
        .proxies
        .iter()
        .map(|&ip| host(ip))
        .chain(
            config
                .peers
                .iter()
                .filter_map(|p| p.source.network())
                .map(|n| (n.addr(), n.prefix())),
        )
        .chain(serving_servers)
        .collect()
}

/// The stack and the roles, wired together.
struct Node {
    stack: Arc<Stack>,
    /// Next hops by name (RFC 3263): its thread is stopped with the server's.
    resolver: Arc<super::dns::Resolver>,
    registrar: Registrar,
    publisher: Publisher,
    notifier: Arc<Notifier>,
    list_server: Arc<ListServer>,
    pager: Arc<Pager>,
    forwarder: Arc<Forwarder>,
    /// The dialogs handed to devices serving their own watchers.
    handover: Arc<Handover>,
    backends: Arc<Backends>,
    accounts: Arc<Accounts>,
    agent_counters: Arc<AgentCounters>,
    /// For the MESSAGEs of the accounts (the server roles reach it through `auth`).
    trust: Arc<Trust>,
    /// Port events the events thread has handled (see [`SipServer::sync`]).
    events_handled: std::sync::atomic::AtomicU64,
    /// The locations of stream connections that closed, for the timer thread to end the
    /// registrations made over them (the transport tells of them on its I/O thread, which
    /// must not wait for the engine).
    closed_flows: Mutex<Vec<String>>,
    /// Requests the transport could not send (see [`SipServer`]'s `unsent`), for the timer
    /// thread to end their transactions.
    unsent_requests: Mutex<Vec<Vec<u8>>>,
    /// Pongs and closings of the flows this node opened, for the timer thread to give to
    /// the accounts (a serving account keeps its flow alive; see `super::agent::edge`).
    flow_events: Mutex<Vec<super::transport::FlowEvent>>,
}

impl SipServer {
    /// Starts serving the engine's domains: binds the listen addresses, opens the engine's
    /// port (the application keeps every event that is not the server's to deliver, through
    /// its own callback or polling), and starts the worker, events and timer threads.
    /// Subscriptions of remote watchers restored from the store get their dialogs back and
    /// are notified again.
    pub fn start(engine: Arc<Engine>, config: SipServerConfig) -> Result<SipServer> {
        if config.workers == 0 {
            return Err(Error::InvalidArgument("workers must be at least 1".into()));
        }
        check_tls(&config)?;
        super::agent::backend::check_declared_lists(&config.accounts, engine.config())?;
        super::agent::edge::check_serving(&config.accounts, engine.config())?;
        let domains = engine.config().domains.clone();
        let realms: Vec<String> = if domains.is_empty() {
            vec!["impp".to_string()]
        } else {
            domains.clone()
        };
        let digest = DigestAuthenticator::new(realms)?
            .with_engine_clock(engine.config().clock.clone())
            .with_nonce_lifetime(config.auth_limits.nonce_lifetime)
            .with_nc_window(config.auth_limits.nc_window);
        let stack = Arc::new(Stack::new(
            StackConfig {
                timers: config.timers,
                limits: config.limits,
                server_name: config.server_name.clone(),
            },
            engine.config().clock.clone(),
            engine.random().shared(),
        ));
        let handle = engine.handle();
        // Next hops by name: SRV draws from the stack's share of the engine's generator.
        let resolver = {
            let stack = stack.clone();
            Arc::new(super::dns::Resolver::start(
                config.dns.clone(),
                engine.config().clock.clone(),
                Arc::new(move || stack.random_u64()),
            )?)
        };
        // Peers by name are resolved now, as the accounts' servers are below.
        let dns_wait = config.dns.timeout * config.dns.tries.max(1) * 3 + Duration::from_secs(1);
        let trust = Arc::new(Trust::resolving(
            domains.clone(),
            TrustConfig {
                peers: config.peers.clone(),
                federation: config.federation,
                publishers: config.publishers.clone(),
            },
            resolver.clone(),
            dns_wait,
        )?);
        let auth = Arc::new(Authentication::new(
            stack.clone(),
            handle.clone(),
            digest,
            Throttle::new(config.auth_limits.clone()),
            domains.clone(),
            Challenges {
                enabled: config.authenticate,
                prefer_sha256: config.prefer_sha256,
                offer_sha256: config.offer_sha256,
            },
            trust.clone(),
        ));
        let gate = Arc::new(Mutex::new(()));
        let routes = Live::new(config.routes.clone());
        let accounts_config: Arc<[super::agent::Account]> = config.accounts.clone().into();
        // The accounts' servers given by name are resolved now, here and not on the I/O
        // thread, so that every request of an account has an address from the start.
        let hops = match super::agent::hops::Hops::resolve(
            resolver.clone(),
            &config.accounts,
            routes.clone(),
            dns_wait,
        ) {
            Ok(hops) => Arc::new(hops),
            Err(e) => {
                resolver.stop();
                return Err(e);
            }
        };
        let agent_counters = Arc::new(AgentCounters::default());
        let backends = Backends::new(
            stack.clone(),
            handle.clone(),
            FederationConfig {
                federate: config.federate,
                backend_expires: config.backend_expires,
            },
            accounts_config.clone(),
            hops.clone(),
            agent_counters.clone(),
        );
        let federates = {
            let backends = Arc::downgrade(&backends);
            Box::new(
                move |watcher: &crate::uri::Uri, presentity: &crate::uri::Uri, package| {
                    backends
                        .upgrade()
                        .is_some_and(|b| b.federates(watcher, presentity, package))
                },
            )
        };
        let migration = Live::new(config.migration);
        let node = Arc::new_cyclic(|me: &std::sync::Weak<Node>| {
            // A device that failed a request is no longer handed watchers (until it registers
            // again); a serving contact that ended takes its watchers back.
            let handover = Arc::new(Handover::new(stack.clone(), {
                let me = me.clone();
                Box::new(move |aor: &crate::uri::Uri, contact: &str| {
                    if let Some(node) = me.upgrade() {
                        node.registrar.stop_serving(aor, contact);
                    }
                })
            }));
            let serving_ended = {
                let handover = handover.clone();
                Box::new(move |c: &super::server::registrar::ServingContact| {
                    handover.take_back(&c.aor, &c.contact);
                })
            };
            Node {
                registrar: Registrar::new(
                    stack.clone(),
                    handle.clone(),
                    auth.clone(),
                    gate.clone(),
                    serving_ended,
                ),
                publisher: Publisher::new(stack.clone(), handle.clone(), auth.clone()),
                notifier: Notifier::new(
                    stack.clone(),
                    handle.clone(),
                    auth.clone(),
                    federates,
                    Box::new(Migrator {
                        node: me.clone(),
                        engine: handle.clone(),
                        mode: migration.clone(),
                    }),
                ),
                list_server: ListServer::new(
                    stack.clone(),
                    handle.clone(),
                    auth.clone(),
                    config.list_batch_interval,
                ),
                pager: Pager::new(
                    stack.clone(),
                    handle.clone(),
                    auth.clone(),
                    gate,
                    routes.clone(),
                    resolver.clone(),
                ),
                forwarder: Forwarder::new(
                    stack.clone(),
                    auth,
                    domains,
                    ForwarderConfig {
                        routes: routes.clone(),
                        federate: config.federate,
                        authenticate: config.authenticate,
                        resolver: resolver.clone(),
                        handed: handover.clone(),
                    },
                ),
                handover,
                backends,
                accounts: Accounts::new(
                    stack.clone(),
                    handle.clone(),
                    accounts_config,
                    hops,
                    agent_counters.clone(),
                    config.tls.as_ref().map(|t| t.client.clone()),
                ),
                agent_counters,
                flow_events: Mutex::default(),
                events_handled: std::sync::atomic::AtomicU64::new(0),
                closed_flows: Mutex::default(),
                unsent_requests: Mutex::default(),
                trust,
                resolver,
                stack,
            }
        });

        // Bounded: what the workers cannot take in time is not held without limit: UDP is
        // dropped (and counted), streams are read no further until there is room (see the
        // handler below); the rate limiter keeps one address from filling it.
        let (inbound_tx, inbound_rx) =
            crossbeam_channel::bounded::<(Inbound, Admission)>(config.inbound_queue.max(1));
        // Front proxies and trusted peers carry many clients' requests: they are not limited
        // as one client.
        let limiter = Arc::new(RateLimiter::new(config.rate_limit, rate_exempt(&config)));
        let live = LiveParts {
            routes,
            limiter: limiter.clone(),
            migration,
        };
        let clock = engine.config().clock.clone();
        let limits = config.limits;
        let framer: super::transport::Framer = Arc::new(move |buf: &[u8]| {
            super::framing::frame(buf, &limits)
                .map(|f| f.map(|f| f.len()))
                .map_err(|e| e.to_string())
        });
        let mut tconfig = TransportConfig::new(config.listen.clone(), framer);
        tconfig.max_message_size = config.limits.max_message_size;
        tconfig.tls = config.tls.clone();
        // A new TLS connection checks that the peer's certificate names the domain the
        // request is for (RFC 5922 §7.2).
        tconfig.tls_name = Some(Arc::new(move |data: &[u8]| {
            super::stack::tls_server_name(data, &limits)
        }));
        tconfig.clock = engine.config().clock.clone();
        tconfig.max_tcp_connections = config.connections.max_total;
        tconfig.max_connections_per_address = config.connections.max_per_address;
        tconfig.tcp_idle_timeout = config.connections.idle_timeout;
        tconfig.tls_handshake_timeout = config.connections.handshake_timeout;
        tconfig.unvouched_timeout = config.connections.unvouched_timeout;
        tconfig.ws_origins = super::transport::websocket::OriginPolicy {
            allowed: config.ws_origins.clone(),
        };
        tconfig.web_root = config.web_root.clone();
        tconfig.on_connection_closed = Some(Arc::new({
            // Weak: the transport is held by the stack.
            let node = Arc::downgrade(&node);
            move |proto, peer| {
                if let Some(node) = node.upgrade() {
                    lock(&node.closed_flows).push(super::stack::location(proto, peer));
                    let now = node.stack.now();
                    node.stack.alarm().at(now);
                }
            }
        }));
        node.registrar.set_flow_timeout(config.flow_timeout);
        tconfig.on_ping = Some(Arc::new({
            // Weak: the transport is held by the stack.
            let node = Arc::downgrade(&node);
            move |proto, peer| {
                if let Some(node) = node.upgrade() {
                    node.registrar.pinged(super::stack::location(proto, peer));
                }
            }
        }));
        if config.accounts.iter().any(|a| a.serve) {
            tconfig.on_flow = Some(Arc::new({
                // Weak: the transport is held by the stack.
                let node = Arc::downgrade(&node);
                move |event| {
                    if let Some(node) = node.upgrade() {
                        lock(&node.flow_events).push(event);
                        let now = node.stack.now();
                        node.stack.alarm().at(now);
                    }
                }
            }));
        }
        tconfig.early = Some(Arc::new({
            // Weak: the transport is held by the stack.
            let stack = Arc::downgrade(&node.stack);
            move |data: &[u8], _: Proto| {
                stack
                    .upgrade()
                    .is_some_and(|stack| stack.early_final_response(data))
            }
        }));
        let handler_tx = inbound_tx.clone();
        let transport = Arc::new(
            Transport::start(
                tconfig,
                Arc::new({
                    let node = Arc::downgrade(&node);
                    move |inbound: Inbound| {
                        // Nothing retransmits over a connection: a stream message the queue
                        // has no room for goes back to the transport, which holds it and
                        // stops reading its connection until there is room (see
                        // `transport::Handler`). Asked before the rate limiter, which would
                        // otherwise charge the message at each offer; this thread is the
                        // queue's only sender, so room seen here is still there below.
                        if inbound.proto.is_stream() && handler_tx.is_full() {
                            return Err(inbound);
                        }
                        let admission = limiter.admit(inbound.source.ip(), clock.now_ms());
                        let guard = node.upgrade();
                        let count = |counter: fn(&GuardCounters) -> &AtomicU64| {
                            if let Some(node) = &guard {
                                GuardCounters::count(counter(node.stack.guard()));
                            }
                        };
                        match admission {
                            Admission::Admit => {}
                            Admission::Refuse { .. } => count(|g| &g.rate_refused),
                            Admission::Drop => {
                                count(|g| &g.rate_dropped);
                                return Ok(());
                            }
                        }
                        match handler_tx.try_send((inbound, admission)) {
                            Ok(()) => Ok(()),
                            Err(TrySendError::Full((inbound, _))) if inbound.proto.is_stream() => {
                                Err(inbound)
                            }
                            // UDP: the client retransmits. Disconnected: stopping.
                            Err(_) => {
                                count(|g| &g.queue_dropped);
                                Ok(())
                            }
                        }
                    }
                }),
                Arc::new({
                    // Weak: the transport is held by the stack.
                    let node = Arc::downgrade(&node);
                    move |failure| {
                        log::debug!(
                            "SIP: could not send to {} over {}: {:?}",
                            failure.dest,
                            failure.proto,
                            failure.error
                        );
                        if let Some(node) = node.upgrade() {
                            node.unsent(&failure);
                        }
                    }
                }),
            )
            .map_err(|e| Error::Network(format!("cannot start the SIP transport: {e}")))?,
        );
        node.stack.attach(transport.clone());

        // Dialogs of restored subscriptions.
        for sub in engine.remote_subscriptions()? {
            node.backends.restored(&sub);
            let Some(target) = sub.target.clone() else {
                continue;
            };
            if target.starts_with(UPLINK_TARGET) || target.starts_with(LIST_TARGET) {
                continue; // an account's (replaced at start), or a list dialog's (see below)
            }
            node.notifier.restore(&sub, &target);
        }

        // The engine port: the events that are this server's to deliver come to its own
        // bounded queue. Messages for other domains go out through the routes, or an
        // account's proxy; copies of subscription state changes are needed only where a
        // back-end subscription can exist at all (a route or an account).
        let port = engine.open_port(PortOptions {
            capacity: engine.config().queue_capacity,
            remote_messages: !config.routes.is_empty() || !config.accounts.is_empty(),
            subscription_events: !config.accounts.is_empty()
                || (config.federate && !config.routes.is_empty()),
        })?;
        // The list server's shared subscriptions change at every busy-lamp change, and the
        // change waits for a batch anyway: it is taken on the shard's thread rather than
        // waking the events thread once per change (see `ListServer::take_inline`).
        port.take_inline(Arc::new({
            let list_server = Arc::downgrade(&node.list_server);
            move |n| match list_server.upgrade() {
                Some(list_server) => list_server.take_inline(n),
                None => Some(n),
            }
        }));
        let port_closer = port.closer();
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| Error::Internal(format!("cannot start a SIP thread: {e}")))
        };
        {
            let node = node.clone();
            threads.push(spawn(
                "impp-sip-events".into(),
                Box::new(move || loop {
                    let events = port.next_events(256, None);
                    if events.is_empty() && port.is_closed() {
                        break;
                    }
                    let taken = events.len() as u64;
                    for event in events {
                        node.event(event);
                    }
                    node.events_handled
                        .fetch_add(taken, std::sync::atomic::Ordering::Release);
                }),
            )?);
        }
        // What was restored is notified again, now that its dialogs are known.
        for id in node.notifier.dialogs_known() {
            let _ = engine.renotify(id);
        }
        // Accounts (user-agent role): their registrations and uplink publications start
        // with the timer thread.
        node.accounts.start();
        node.backends.start_lists();
        node.wake_for_agent();
        // List dialogs come back from the store's table of them (before any request).
        node.list_server.start();

        for n in 0..config.workers {
            let (node, rx) = (node.clone(), inbound_rx.clone());
            threads.push(spawn(
                format!("impp-sip-{n}"),
                Box::new(move || worker(&node, &rx)),
            )?);
        }
        {
            let node = node.clone();
            threads.push(spawn(
                "impp-sip-timers".into(),
                Box::new(move || loop {
                    let now = node.stack.now();
                    node.tick(now);
                    // Deadlines are taken on a grid of TIMER_GRAIN_MS: under load the many
                    // transactions' timers then run in rounds, not one wake-up each.
                    let next = node
                        .next_deadline()
                        .map(|at| at.div_ceil(TIMER_GRAIN_MS) * TIMER_GRAIN_MS);
                    if !node.stack.alarm().sleep(now, next) {
                        break;
                    }
                }),
            )?);
        }
        for l in transport.local_addrs() {
            log::info!("SIP: listening on {}:{}", l.proto.as_str(), l.addr);
        }
        Ok(SipServer {
            node,
            transport,
            threads,
            inbound: Some(inbound_tx),
            port: port_closer,
            _engine: engine,
            live,
            config: Mutex::new(config),
        })
    }

    /// Applies `config` to the running server as far as it can change without a restart:
    /// the routes ([`SipServerConfig::routes`]), whom it trusts (`peers`, `federation`,
    /// `publishers`), the rate limit (`rate_limit`, and who is exempt from it) and the TLS
    /// certificate and key (`tls`: presented from the next handshake on; connections open
    /// keep theirs, and the trust anchors stay those the server started with). Dialogs,
    /// registrations, transactions and connections carry on. Every other field that differs
    /// from what the server runs with is named in [`Reconfigured::needs_restart`] and not
    /// applied (also the next time: the comparison is with what runs).
    ///
    /// Errors: [`Error::InvalidArgument`] when `config` would not start a server (a peer of
    /// an owned domain, TLS hops without a certificate, ...): nothing changes.
    pub fn reconfigure(&self, config: SipServerConfig) -> Result<Reconfigured> {
        check_tls(&config)?;
        let mut current = lock(&self.config);
        let mut done = Reconfigured::default();
        let trust = TrustConfig {
            peers: config.peers.clone(),
            federation: config.federation,
            publishers: config.publishers.clone(),
        };
        let trust_changed = current.peers != config.peers
            || current.federation != config.federation
            || current.publishers != config.publishers;
        if trust_changed {
            // The one step that can refuse: first, so that a refusal changes nothing.
            self.node.trust.replace(trust)?;
            current.peers = config.peers.clone();
            current.federation = config.federation;
            current.publishers = config.publishers.clone();
            done.changed.push("peers");
        }
        if current.routes != config.routes {
            // The engine's port was opened knowing whether messages for other domains have
            // anywhere to go: from no route to some (or back) is for a restart.
            if current.routes.is_empty() != config.routes.is_empty() && current.accounts.is_empty()
            {
                done.needs_restart
                    .push("routes (from none to some, or back)");
            } else {
                self.live.routes.set(config.routes.clone());
                current.routes = config.routes.clone();
                done.changed.push("routes");
            }
        }
        if current.flow_timeout != config.flow_timeout {
            self.node.registrar.set_flow_timeout(config.flow_timeout);
            current.flow_timeout = config.flow_timeout;
            done.changed.push("flow timeout");
        }
        if current.migration != config.migration {
            self.live.migration.set(config.migration);
            current.migration = config.migration;
            done.changed.push("migration");
        }
        let exempt_changed = current.auth_limits.proxies != config.auth_limits.proxies;
        if current.rate_limit != config.rate_limit || exempt_changed || trust_changed {
            let mut next = current.clone();
            next.rate_limit = config.rate_limit;
            next.auth_limits.proxies = config.auth_limits.proxies.clone();
            self.live.limiter.set(next.rate_limit, rate_exempt(&next));
            if current.rate_limit != config.rate_limit {
                done.changed.push("rate limit");
            }
            current.rate_limit = config.rate_limit;
            current.auth_limits.proxies = config.auth_limits.proxies.clone();
        }
        match (&current.tls, &config.tls) {
            (Some(running), Some(renewed)) => {
                if running.certificate_sha256() != renewed.certificate_sha256() {
                    running.renew_identity(renewed);
                    done.changed.push("tls certificate");
                }
            }
            (None, None) => {}
            _ => done.needs_restart.push("tls (on or off)"),
        }
        let c = &*current;
        let differs = [
            ("listen", c.listen != config.listen),
            ("authenticate", c.authenticate != config.authenticate),
            ("timers", c.timers != config.timers),
            ("limits", c.limits != config.limits),
            ("workers", c.workers != config.workers),
            ("server name", c.server_name != config.server_name),
            (
                "sha256",
                c.prefer_sha256 != config.prefer_sha256 || c.offer_sha256 != config.offer_sha256,
            ),
            ("federate", c.federate != config.federate),
            (
                "backend expires",
                c.backend_expires != config.backend_expires,
            ),
            ("connections", c.connections != config.connections),
            ("accounts", c.accounts != config.accounts),
            (
                "auth limits",
                AuthLimits {
                    proxies: Vec::new(),
                    ..c.auth_limits.clone()
                } != AuthLimits {
                    proxies: Vec::new(),
                    ..config.auth_limits.clone()
                },
            ),
            (
                "list batch interval",
                c.list_batch_interval != config.list_batch_interval,
            ),
            ("ws origins", c.ws_origins != config.ws_origins),
            ("web root", c.web_root != config.web_root),
            ("dns server", c.dns != config.dns),
        ];
        done.needs_restart
            .extend(differs.iter().filter(|(_, d)| *d).map(|(name, _)| *name));
        Ok(done)
    }

    /// The accounts role (for the crate's tests).
    #[cfg(test)]
    pub(crate) fn accounts(&self) -> &Arc<Accounts> {
        &self.node.accounts
    }

    /// Whether account `index` of [`SipServerConfig::accounts`] is registered now.
    pub fn account_registered(&self, index: usize) -> bool {
        self.node.accounts.registered(index)
    }

    /// Subscribes account `account` (an index of [`SipServerConfig::accounts`]) to the
    /// resource list `list` at its server (RFC 4662: `Supported: eventlist`), for `package`
    /// (`presence` or `dialog`), refreshed until [`SipServer::unsubscribe_list`] or the server
    /// stops. Each NOTIFY's `multipart/related` body is read strictly (a faulty one is
    /// answered `400` and changes nothing) and every resource's state is mirrored into the
    /// engine as that resource's publication, so local watchers of the resources get
    /// ordinary notifications: full state replaces every resource's state, partial state
    /// those listed, and a resource that is pending or terminated has none. Subscribing
    /// again to the same list is a no-op. Refused (`InvalidArgument`, nothing changed) for an
    /// unknown account, a list of an owned domain, or a package without documents. Lists
    /// declared with the account ([`super::agent::Account::lists`]) are subscribed at every
    /// start without this call.
    pub fn subscribe_list(
        &self,
        account: usize,
        list: &crate::uri::Uri,
        package: crate::model::package::Package,
    ) -> crate::error::Result<()> {
        self.node.backends.subscribe_list(account, list, package)
    }

    /// Ends what [`SipServer::subscribe_list`] started, or a list the account declares
    /// ([`super::agent::Account::lists`]) until the next start; `Ok(false)` when there was no
    /// such subscription. Refused as `subscribe_list` refuses its arguments.
    pub fn unsubscribe_list(
        &self,
        account: usize,
        list: &crate::uri::Uri,
        package: crate::model::package::Package,
    ) -> crate::error::Result<bool> {
        self.node.backends.unsubscribe_list(account, list, package)
    }

    /// Counts of the hand-overs to devices serving their own watchers.
    pub fn handover_stats(&self) -> HandoverStats {
        self.node.handover.stats()
    }

    /// Counts about the back-end subscriptions of federation.
    pub fn federation_stats(&self) -> FederationStats {
        self.node.agent_counters.stats(self.node.backends.counts())
    }

    /// Final answers by method and class, requests sent and how they ended (see
    /// [`super::traffic`]).
    pub fn traffic_stats(&self) -> super::TrafficStats {
        self.node.stack.traffic().stats()
    }

    /// Counts of what the server refused to protect its users (see [`super::guard`]).
    pub fn guard_stats(&self) -> super::GuardStats {
        self.node.stack.guard().stats()
    }

    /// Runs the stack's timers at the clock's current time and returns when they have run
    /// (at most 10 s of real time): for tests and embedders that drive the engine with a
    /// manual clock ([`crate::engine::ManualClock`]), after advancing it. With the system
    /// clock the timers run by themselves. Whether they ran (`false`: stopped).
    pub fn sync(&self) -> bool {
        // What the engine queued for this server is handled first, at the current time (a
        // change reaching a role after the clock moved would be timed from the new time).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (waiting, taken) = self.port.progress();
            let handled = self
                .node
                .events_handled
                .load(std::sync::atomic::Ordering::Acquire);
            if (waiting == 0 && handled >= taken) || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::yield_now();
        }
        let ran = self
            .node
            .stack
            .alarm()
            .ring_and_wait(Duration::from_secs(10));
        // The connections' timeouts run on the same clock.
        self.transport.sweep();
        ran
    }

    /// Work in flight and waiting now (see [`LoadStats`]).
    pub fn load_stats(&self) -> LoadStats {
        let (server_transactions, client_transactions) = self.node.stack.transactions();
        LoadStats {
            server_transactions,
            client_transactions,
            inbound_queued: self.inbound.as_ref().map_or(0, |tx| tx.len()),
            events_queued: self.port.progress().0,
            transport: self.transport.load(),
        }
    }

    /// Counts about the TCP and TLS connections.
    pub fn transport_stats(&self) -> super::transport::TransportStats {
        self.transport.stats()
    }

    /// The bound addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        self.transport.local_addrs()
    }

    /// Counts of the DNS resolver (next hops by name, RFC 3263).
    pub fn dns_stats(&self) -> super::dns::ResolverStats {
        self.node.resolver.stats()
    }

    /// Stops the transport and the server's threads. The engine keeps running (its
    /// subscriptions, with their dialogs, stay in its store).
    pub fn stop(&mut self) {
        self.node.resolver.stop();
        self.node.stop_agent();
        self.port.close();
        self.transport.stop();
        self.node.stack.alarm().stop();
        drop(self.inbound.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SipServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node's migration decisions (see "Presence at the edge" in the module
/// documentation).
struct Migrator {
    /// Weak: the node holds the notifier that holds this.
    node: std::sync::Weak<Node>,
    engine: crate::engine::EngineHandle,
    mode: Live<Migration>,
}

impl Migrator {
    /// The serving contact `watcher` would move to, and the mode: only with migration on,
    /// a serving contact, a watcher that is not the presentity itself (its own device
    /// watching it) and one the presentity's rules allow.
    fn target(
        &self,
        node: &Node,
        presentity: &crate::uri::Uri,
        watcher: &crate::uri::Uri,
    ) -> Option<(Migration, super::server::registrar::ServingContact)> {
        let mode = *self.mode.get();
        if mode == Migration::Off {
            return None;
        }
        let key = crate::model::key::presentity_key;
        if key(presentity) == key(watcher) {
            return None;
        }
        let serving = node.registrar.serving(presentity)?;
        let decision = self.engine.get().ok()?.decision(presentity, watcher).ok()?;
        (decision == crate::engine::AuthAction::Allow).then_some((mode, serving))
    }
}

impl Migrates for Migrator {
    fn place(
        &self,
        request: &Request,
        presentity: &crate::uri::Uri,
        watcher: &crate::uri::Uri,
    ) -> Placement {
        let Some(node) = self.node.upgrade() else {
            return Placement::Here;
        };
        let Some((mode, serving)) = self.target(&node, presentity, watcher) else {
            return Placement::Here;
        };
        if mode == Migration::Redirect {
            node.handover.redirected();
            log::info!(
                "{presentity}: watcher {watcher} redirected to {}",
                serving.contact
            );
            return Placement::Redirect(serving.contact);
        }
        let Some((proto, addr)) = super::stack::parse_location(&serving.location) else {
            return Placement::Here;
        };
        let flow = super::route::NextHop { proto, addr };
        if !node.handover.start(
            &request.message,
            &request.peer,
            presentity,
            &serving.contact,
            flow,
        ) {
            return Placement::Here;
        }
        let weak = self.node.clone();
        let (serving_aor, serving_contact) = (serving.aor.clone(), serving.contact.clone());
        node.forwarder.hand_over(
            request,
            &serving.contact,
            flow,
            Box::new(move |request, response| {
                let Some(node) = weak.upgrade() else { return };
                node.handover.answered(&request.message, response.as_ref());
                let status = response.as_ref().and_then(SipMessage::status);
                if matches!(status, None | Some(408 | 503)) {
                    // Not there, or overloaded: not a refusal of this watcher.
                    node.registrar.stop_serving(&serving_aor, &serving_contact);
                }
                let taken = response
                    .as_ref()
                    .and_then(SipMessage::status)
                    .is_some_and(|s| (200..300).contains(&s));
                if !taken {
                    log::info!(
                        "SIP: the device did not take a watcher ({}); serving it here",
                        response
                            .as_ref()
                            .and_then(SipMessage::status)
                            .map_or("no answer".to_string(), |s| s.to_string())
                    );
                    node.notifier.serve_here(&request);
                }
            }),
        );
        Placement::Taken
    }

    fn moves(&self, presentity: &crate::uri::Uri, watcher: &crate::uri::Uri) -> bool {
        self.node
            .upgrade()
            .is_some_and(|node| self.target(&node, presentity, watcher).is_some())
    }
}

fn worker(node: &Arc<Node>, rx: &Receiver<(Inbound, Admission)>) {
    while let Ok((inbound, admission)) = rx.recv() {
        match admission {
            Admission::Refuse { retry_after } => node.stack.refuse_over_rate(inbound, retry_after),
            _ => node.stack.handle(inbound, &**node),
        }
    }
}

impl Node {
    /// An event of the engine's port: to the role that delivers it (see the module
    /// documentation).
    fn event(&self, event: Event) {
        match event {
            Event::Notification(n) => {
                if !self.list_server.notification(&n)
                    && !self.notifier.notification(&n)
                    && !self.accounts.uplink_notification(&n)
                {
                    log::debug!(
                        "subscription {}: no dialog for its notification",
                        n.subscription
                    );
                }
            }
            Event::Message(m) => self.pager.relay(&m),
            Event::Delivery(d) => {
                self.pager.delivery(&d);
            }
            Event::RemoteMessage(m) => {
                if !self.accounts.send_message(&m) {
                    self.pager.remote_message(&m);
                }
            }
            event => {
                self.backends.event(&event);
                self.wake_for_agent();
            }
        }
    }

    /// Runs what is due at `now` (clock ms).
    fn tick(&self, now: u64) {
        let closed = std::mem::take(&mut *lock(&self.closed_flows));
        for location in closed {
            self.registrar.flow_closed(&location);
        }
        self.registrar.tick(now);
        self.forwarder.tick(now);
        self.handover.tick(now);
        let unsent = std::mem::take(&mut *lock(&self.unsent_requests));
        for data in unsent {
            self.stack.fail_unsent(&data);
        }
        let flows = std::mem::take(&mut *lock(&self.flow_events));
        for event in flows {
            self.accounts.flow_event(event);
        }
        self.notifier.tick(now);
        self.list_server.tick(now);
        self.stack.tick(now);
        self.backends.tick(now);
        self.accounts.tick(now);
    }

    /// The earliest clock time [`Node::tick`] has work.
    fn next_deadline(&self) -> Option<u64> {
        [
            self.stack.next_deadline(),
            self.notifier.next_deadline(),
            self.registrar.next_deadline(),
            self.forwarder.next_deadline(),
            self.handover.next_deadline(),
            self.list_server.next_deadline(),
            self.backends.next_deadline(),
            self.accounts.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Tells the timer thread of the agent roles' earliest deadline (after their state
    /// changed: their requests' answers, back-end NOTIFYs, their events).
    fn wake_for_agent(&self) {
        let next = [self.backends.next_deadline(), self.accounts.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        if let Some(at) = next {
            self.stack.alarm().at(at);
        }
    }

    /// Ends what the agent roles hold at the remote servers, for a server stopping, and
    /// waits a little (at most a second of real time: these are network answers, not
    /// timers) for the answers.
    fn stop_agent(&self) {
        self.backends.stop();
        self.accounts.stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline && self.agent_counters.outstanding() > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a MESSAGE (or a SUBSCRIBE to a serving account) for account `account` comes from the account's server (its
    /// registrar or outbound proxy), or from a peer believed for the account's domain
    /// (`super::server::trust`); else the `403` refusing it.
    fn account_sender(
        &self,
        request: &Request,
        account: usize,
    ) -> std::result::Result<(), super::stack::Reply> {
        if self.accounts.is_server_of(&request.peer, account) {
            return Ok(());
        }
        let domain = self.accounts.domain(account);
        match self.trust.believes(&request.peer, &domain) {
            Ok(()) => Ok(()),
            Err(_) => {
                log::info!(
                    "SIP: a {} for account {account} from {} refused: not its server",
                    request.key.method,
                    request.peer.source
                );
                GuardCounters::count(&self.stack.guard().untrusted);
                Err(self.stack.reply(
                    request,
                    403,
                    &format!("Forbidden (not from the server of {domain})"),
                ))
            }
        }
    }

    /// A SUBSCRIBE for serving account `account`'s address of record: believed from the
    /// account's server (which authenticated the watcher and proxied it here) or a peer
    /// trusted for the account's domain (a watcher the server redirected here, as far as
    /// the operator trusts it), then served by the notifier; else `403`. The device holds
    /// no credentials of its server's users, so it does not challenge.
    fn served_subscribe(&self, request: &Request, account: usize) {
        if let Some(answer) = super::server::bad_extension(&self.stack, request) {
            return self.stack.answer(request, answer);
        }
        match self.account_sender(request, account) {
            Ok(()) => {
                // Believed by where it came from, as an authenticated request is: its
                // connection carries the dialog from now on, and is no stranger's (else the
                // unauthenticated-connection timeout would cut a watcher the device never
                // challenges, after 32 s).
                self.stack.vouch(&request.peer);
                self.notifier.handle(request)
            }
            Err(refusal) => self.stack.answer(request, refusal),
        }
    }

    fn options(&self, request: &Request) -> Result<super::stack::Reply> {
        let mut b = self.stack.reply(request, 200, "OK");
        b.header("Allow", ALLOW)?;
        b.header("Allow-Events", ALLOW_EVENTS)?;
        b.header("Supported", "eventlist, recipient-list-subscribe")?;
        b.header(
            "Accept",
            "application/pidf+xml, application/dialog-info+xml, application/simple-message-summary, application/watcherinfo+xml, application/simple-filter+xml, text/plain, */*",
        )?;
        Ok(b)
    }
}

impl Dispatch for Node {
    fn request(&self, request: Request) {
        // A sips: Request-URI asks for TLS on every hop (RFC 5630 §4.1): one that came over
        // anything else has already lost that, and is not served.
        let secure = request.message.request_uri_text().is_some_and(|u| {
            u.get(..5)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
        });
        if secure && !request.peer.proto.is_tls() {
            let answer =
                self.stack
                    .reply(&request, 416, "Unsupported URI Scheme (sips: needs TLS)");
            return self.stack.answer(&request, answer);
        }
        // A SUBSCRIBE for a serving account's address of record is the device's own
        // (presence at the edge): not relayed, whatever its Request-URI (the contact).
        if request.key.method == "SUBSCRIBE" {
            if let Some(account) = self.accounts.serving(&request.message) {
                return self.served_subscribe(&request, account);
            }
        }
        if self.forwarder.forward(&request) {
            return;
        }
        if let Some(answer) = super::server::bad_extension(&self.stack, &request) {
            return self.stack.answer(&request, answer);
        }
        match request.key.method.as_str() {
            "REGISTER" => self.registrar.handle(&request),
            "SUBSCRIBE" => {
                if !self.list_server.handle(&request) {
                    self.notifier.handle(&request);
                }
            }
            "PUBLISH" => self.publisher.handle(&request),
            "MESSAGE" => match self.accounts.addressed(&request.message) {
                Some(account) => {
                    let answer = match self.account_sender(&request, account) {
                        Ok(()) => self.accounts.message(&request, account).map(Some),
                        Err(refusal) => Ok(Some(refusal)),
                    };
                    self.stack.finish(&request, answer);
                }
                None => self.pager.handle(&request),
            },
            "OPTIONS" => {
                let answer = self.options(&request).map(Some);
                self.stack.finish(&request, answer);
            }
            // Only back-end dialogs receive NOTIFYs; `481` for any other.
            "NOTIFY" => {
                let answer = self.backends.notify(&request);
                if matches!(&answer, Ok(Some(reply)) if reply.status < 300) {
                    // The server of a back-end dialog this node opened: no stranger.
                    self.stack.vouch(&request.peer);
                }
                self.wake_for_agent();
                self.stack.finish(&request, answer);
            }
            _ => {
                let mut b = self.stack.reply(&request, 405, "Method Not Allowed");
                let _ = b.header("Allow", ALLOW);
                self.stack.answer(&request, b);
            }
        }
    }

    fn passes_on(&self, branch: &str) -> bool {
        self.forwarder.passes_on(branch)
    }

    fn response(&self, response: &SipMessage) -> bool {
        self.forwarder.forward_response(response)
    }

    fn unsent(&self, failure: &SendFailure) {
        if self.forwarder.forward_unsent(failure) {
            return;
        }
        // A request that could not be sent (a connection refused or lost, a WebSocket
        // client gone: only the client can open its WebSocket): its transaction ends now
        // with a 503, on the timer thread, rather than after Timer F (32 s). A full UDP
        // socket buffer keeps the retransmissions.
        if failure.error.is_final(failure.proto) {
            lock(&self.unsent_requests).push(failure.data.clone());
            let now = self.stack.now();
            self.stack.alarm().at(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::agent::Account;
    use crate::sip::route::RouteTarget;

    #[test]
    fn a_serving_accounts_server_is_not_rate_limited_as_one_client() {
        let mut config = SipServerConfig::new(Vec::new());
        let account = |aor: &str, registrar: &str| {
            let target = RouteTarget::parse(registrar).unwrap();
            Account::new(aor.parse().unwrap(), "alice", "pw", target)
        };
        let mut serving = account("sip:alice@b.test", "tcp:192.0.2.7:5060");
        serving.serve = true;
        config.accounts = vec![serving, account("sip:bob@b.test", "udp:192.0.2.8:5060"), {
            let mut named = account("sip:carol@b.test", "tcp:registrar.b.test");
            named.serve = true;
            named
        }];
        let exempt = rate_exempt(&config);
        assert_eq!(exempt, vec![("192.0.2.7".parse().unwrap(), 32)]);
    }
}
