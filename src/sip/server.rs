//! The SIP server role (DESIGN §5): requests for the owned domains arrive through the
//! [`Transport`], are matched to their transactions, authenticated, and mapped onto the
//! engine; what the engine tells (notifications, messages, delivery outcomes) goes back out
//! as NOTIFY and MESSAGE requests and as the answers to pending MESSAGEs.
//!
//! | method | what it becomes |
//! | --- | --- |
//! | REGISTER | [`Core::login_at`] per contact (registrar, [`registrar`]) |
//! | PUBLISH | publish / refresh / modify / remove ([`publisher`]) |
//! | SUBSCRIBE | a subscription whose target is the dialog; NOTIFYs from its notifications ([`notifier`]) |
//! | MESSAGE | [`Core::send_message`]; relayed to registered contacts ([`pager`]) |
//! | OPTIONS | `200` with Allow, Allow-Events, Accept |
//! | anything else | `405 Method Not Allowed` with Allow |
//! | a non-INVITE request for another domain with a route | forwarded to its next hop, as a proxy ([`forwarder`]) |
//!
//! # Threads
//!
//! The transport's I/O thread queues what arrives for `workers` threads, which parse and
//! handle requests (engine calls are round trips to a shard, so they are kept off the I/O
//! thread). Only the final answers to this server's own requests that need no more than a
//! note (a NOTIFY accepted: one per NOTIFY sent) are taken on the I/O thread itself, read in
//! place: that costs less than waking a worker for them;
//! the server's event tap on the engine ([`crate::engine::EventTap`]) takes the events that
//! are the server's to deliver (notifications of remote watchers, messages for registered
//! contacts) and hands them to one events thread that turns them into requests; every other
//! event reaches the application's own callback or polling as usual. One timer thread runs
//! transaction timers. Shared tables are behind short mutexes.
//!
//! [`Core::login_at`]: crate::engine::Core::login_at
//! [`Core::send_message`]: crate::engine::Core::send_message
#![forbid(unsafe_code)]

mod forwarder;
mod notifier;
mod pager;
mod publisher;
mod registrar;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::builder::{bad_request, MessageBuilder};
use super::dialog::{DialogId, SubscriptionDialog};
use super::digest::{DigestAuthenticator, Outcome};
use super::header::Via;
use super::message::SipMessage;
use super::proxy::with_received;
use super::transaction::{
    Arrival, ClientAction, ClientTransactions, ServerKey, ServerTransactions, Timers,
};
use super::transport::{
    via_received_rport, Inbound, ListenAddr, Outbound, Proto, Transport, TransportConfig,
};
use super::{SipLimits, Transport as Framing};
use crate::engine::{Engine, EngineHandle, Event, MessageId, Notification};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::id_table::{IdTable, Keyed};
use crate::model::key::presentity_key;
use crate::uri::Uri;

/// Methods the server answers.
pub const ALLOW: &str = "REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, MESSAGE, OPTIONS";
/// Event packages the server serves.
pub const ALLOW_EVENTS: &str = "presence, presence.winfo, dialog, message-summary";

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
    /// Accounts at other servers this server acts for as a user agent (REGISTER, uplink
    /// PUBLISH, subscriptions of the account's buddies): see [`super::agent::Account`].
    /// Default: none.
    pub accounts: Vec<super::agent::Account>,
}

impl SipServerConfig {
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
        }
    }
}

/// A running SIP server over an engine.
pub struct SipServer {
    inner: Arc<Inner>,
    transport: Arc<Transport>,
    threads: Vec<JoinHandle<()>>,
    inbound: Option<Sender<Inbound>>,
    stop: Arc<AtomicBool>,
    /// Closing the port ends the events thread (and gives the engine's events back to the
    /// application).
    port: crate::engine::PortCloser,
    _engine: Arc<Engine>,
}

/// What a client transaction is for.
#[derive(Debug, Clone)]
pub(crate) enum ClientContext {
    /// A NOTIFY of a subscription.
    Notify(SubscriptionId),
    /// A MESSAGE relayed to a registered contact: the engine's message event.
    Relay(Box<crate::engine::Message>),
    /// A MESSAGE sent on to another domain; its answer is the sender's outcome.
    Remote(Box<crate::engine::Delivery>),
    /// A request of the user-agent role (back-end subscriptions, accounts).
    Agent(super::agent::AgentTx),
    /// A request forwarded to the next hop of another domain (by our Via branch).
    Forward(String),
}

/// A MESSAGE whose answer waits for the engine's first delivery outcome.
pub(crate) struct PendingMessage {
    pub(crate) request: SipMessage,
    pub(crate) from: Peer,
    pub(crate) key: ServerKey,
}

/// Where a request came from (and where its answer goes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) proto: Proto,
    pub(crate) source: SocketAddr,
    pub(crate) connection: Option<super::transport::ConnectionId>,
}

impl Peer {
    pub(crate) fn reliable(&self) -> bool {
        self.proto == Proto::Tcp
    }
}

/// What the server keeps of a subscription dialog: the parts that change. The dialog itself
/// is the engine subscription's target (its serialized [`SubscriptionDialog`]), which each
/// notification carries, so the server holds no copy of it.
pub(crate) struct DialogState {
    /// The subscription.
    id: SubscriptionId,
    /// The CSeq of the next NOTIFY (never 0, which lets `Option<DialogState>` be as small
    /// as the state itself in the table).
    next_cseq: std::num::NonZeroU32,
    /// The CSeq of the last SUBSCRIBE received.
    pub(crate) remote_cseq: u32,
    /// When the subscription ends (clock seconds: the clock's milliseconds / 1000; 32 bits
    /// keep the state in 24 bytes).
    expires_at_s: u32,
    /// Whether a NOTIFY of this dialog waits for its answer (RFC 6665 §4.2.2: one at a
    /// time; what changes meanwhile waits in [`Dialogs::deferred`]).
    pub(crate) in_flight: bool,
}

impl Keyed for DialogState {
    fn id(&self) -> SubscriptionId {
        self.id
    }
}

impl DialogState {
    /// Sets the subscription's end `granted_s` seconds after `now_ms` (clock time).
    pub(crate) fn expire_after(&mut self, now_ms: u64, granted_s: u32) {
        self.expires_at_s = expiry_seconds(now_ms, u64::from(granted_s) * 1000);
    }

    /// Whole seconds left at `now_ms`.
    pub(crate) fn remaining_s(&self, now_ms: u64) -> u64 {
        (u64::from(self.expires_at_s) * 1000).saturating_sub(now_ms) / 1000
    }

    /// The CSeq for the next NOTIFY (and counts it).
    pub(crate) fn take_cseq(&mut self) -> u32 {
        let cseq = self.next_cseq.get();
        self.next_cseq =
            std::num::NonZeroU32::new(cseq.wrapping_add(1)).unwrap_or(std::num::NonZeroU32::MIN);
        cseq
    }
}

/// The subscription a local tag names (see [`Inner::tag_naming`]).
fn subscription_in_tag(tag: &str) -> Option<SubscriptionId> {
    let (_, id) = tag.rsplit_once('.')?;
    u64::from_str_radix(id, 16).ok().map(SubscriptionId)
}

/// Whether `target` (a subscription's serialized dialog) is the dialog `id`.
pub(crate) fn is_dialog(target: &[u8], id: &DialogId) -> bool {
    DialogId::from_bytes(target).is_ok_and(|known| known == *id)
}

/// The clock second (rounded up) `life_ms` after `now_ms`.
fn expiry_seconds(now_ms: u64, life_ms: u64) -> u32 {
    (now_ms + life_ms).div_ceil(1000).min(u64::from(u32::MAX)) as u32
}

/// The server's subscription dialogs, by subscription: 24 bytes each in a dense table.
/// A dialog's local tag names its subscription, so a request inside a dialog finds it
/// through the same table, and checks it against the subscription's target.
#[derive(Default)]
pub(crate) struct Dialogs {
    pub(crate) by_subscription: IdTable<DialogState>,
    /// The notification each dialog with a NOTIFY in flight is told next: what changed
    /// meanwhile, merged (the latest state wins), so a slow watcher costs one waiting
    /// notification at most.
    pub(crate) deferred: HashMap<SubscriptionId, Notification>,
    /// Dialogs whose last NOTIFY was refused with a Retry-After: when to try again (clock
    /// ms), earliest first.
    pub(crate) retries: std::collections::BinaryHeap<std::cmp::Reverse<(u64, SubscriptionId)>>,
    /// Dialogs whose local tag does not name their subscription (made before tags did, and
    /// restored from the store), by a keyed hash of the dialog id (the key is random per
    /// process, so ids cannot be made to collide on purpose).
    untagged: HashMap<u64, SubscriptionId>,
    hasher: std::collections::hash_map::RandomState,
}

impl Dialogs {
    fn key(&self, id: &DialogId) -> u64 {
        use std::hash::BuildHasher;
        self.hasher
            .hash_one((&id.call_id, &id.local_tag, &id.remote_tag))
    }

    /// Adds the dialog of subscription `id`, which ends at `expires_at` (clock ms).
    pub(crate) fn insert(
        &mut self,
        id: SubscriptionId,
        dialog: &SubscriptionDialog,
        expires_at: u64,
    ) {
        if subscription_in_tag(&dialog.local_tag) != Some(id) {
            let key = self.key(&dialog.id());
            self.untagged.insert(key, id);
        }
        self.by_subscription.insert(
            id,
            DialogState {
                id,
                next_cseq: std::num::NonZeroU32::new(dialog.local_cseq.wrapping_add(1))
                    .unwrap_or(std::num::NonZeroU32::MIN),
                remote_cseq: dialog.remote_cseq,
                expires_at_s: expiry_seconds(expires_at, 0),
                in_flight: false,
            },
        );
    }

    /// Keeps `n` for when the NOTIFY in flight is answered, merged into what waits already.
    pub(crate) fn defer(&mut self, n: Notification) {
        match self.deferred.entry(n.subscription) {
            std::collections::hash_map::Entry::Occupied(mut waiting) => waiting.get_mut().merge(n),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(n);
            }
        }
    }

    /// The subscription whose dialog `dialog` may be: the caller checks it against the
    /// subscription's target ([`is_dialog`]).
    pub(crate) fn candidate(&self, dialog: &DialogId) -> Option<SubscriptionId> {
        if let Some(sub) =
            subscription_in_tag(&dialog.local_tag).filter(|s| self.by_subscription.contains_key(s))
        {
            return Some(sub);
        }
        if self.untagged.is_empty() {
            return None;
        }
        self.untagged.get(&self.key(dialog)).copied()
    }

    pub(crate) fn remove(&mut self, id: SubscriptionId) -> Option<DialogState> {
        let state = self.by_subscription.remove(&id)?;
        self.deferred.remove(&id);
        if !self.untagged.is_empty() {
            self.untagged.retain(|_, sub| *sub != id);
        }
        Some(state)
    }
}

pub(crate) struct Inner {
    pub(crate) config: SipServerConfig,
    pub(crate) engine: EngineHandle,
    pub(crate) transport: OnceLock<Arc<Transport>>,
    /// The bound addresses as text, by transport and family (written into every request).
    local_text: OnceLock<Vec<(Proto, bool, Arc<str>)>>,
    pub(crate) auth: DigestAuthenticator,
    pub(crate) server_tx: Mutex<ServerTransactions>,
    pub(crate) client_tx: Mutex<ClientTransactions<ClientContext>>,
    pub(crate) dialogs: Mutex<Dialogs>,
    pub(crate) pending: Mutex<HashMap<MessageId, PendingMessage>>,
    /// Held while a REGISTER is handled and answered; relaying waits for it, so a client
    /// gets its REGISTER's answer before the messages that waited for it.
    pub(crate) register_gate: Mutex<()>,
    /// The last document serialized for a NOTIFY, and its body (see `Inner::body_of`).
    #[allow(clippy::type_complexity)]
    pub(crate) last_body:
        Mutex<Option<(std::sync::Weak<crate::model::package::Document>, Arc<[u8]>)>>,
    /// The engine's clock: every SIP timer runs on it.
    pub(crate) clock: Arc<dyn crate::engine::Clock>,
    /// Tags, branches and Call-IDs: a split of the engine's generator.
    pub(crate) random: crate::engine::random::SharedRandom,
    /// Wakes the timer thread (see [`super::alarm`]).
    pub(crate) alarm: super::alarm::Alarm,
    pub(crate) counter: AtomicU64,
    pub(crate) domains: Vec<String>,
    /// The user-agent role: back-end subscriptions and accounts.
    pub(crate) agent: super::agent::Agent,
    /// Requests forwarded to other domains, waiting for their answers ([`forwarder`]).
    pub(crate) forwards: Mutex<forwarder::Forwards>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SipServer {
    /// Starts serving the engine's domains: binds the listen addresses, sets the server's
    /// event tap on the engine (the application keeps every event that is not the server's
    /// to deliver, through its own callback or polling), and starts the worker, events and
    /// timer threads. Subscriptions of remote watchers restored from the store get their
    /// dialogs back and are notified again.
    pub fn start(engine: Arc<Engine>, config: SipServerConfig) -> Result<SipServer> {
        if config.workers == 0 {
            return Err(Error::InvalidArgument("workers must be at least 1".into()));
        }
        let domains = engine.config().domains.clone();
        let realms: Vec<String> = if domains.is_empty() {
            vec!["impp".to_string()]
        } else {
            domains.clone()
        };
        let auth =
            DigestAuthenticator::new(realms)?.with_engine_clock(engine.config().clock.clone());
        let inner = Arc::new(Inner {
            config: config.clone(),
            engine: engine.handle(),
            transport: OnceLock::new(),
            local_text: OnceLock::new(),
            auth,
            server_tx: Mutex::new(ServerTransactions::new(config.timers)),
            client_tx: Mutex::new(ClientTransactions::new(config.timers)),
            dialogs: Mutex::new(Dialogs::default()),
            pending: Mutex::new(HashMap::new()),
            register_gate: Mutex::new(()),
            last_body: Mutex::new(None),
            clock: engine.config().clock.clone(),
            random: engine.random().shared(),
            alarm: super::alarm::Alarm::default(),
            counter: AtomicU64::new(1),
            domains,
            agent: super::agent::Agent::new(engine.random().shared()),
            forwards: Mutex::new(HashMap::new()),
        });

        let (inbound_tx, inbound_rx) = crossbeam_channel::unbounded::<Inbound>();
        let limits = config.limits;
        let framer: super::transport::Framer = Arc::new(move |buf: &[u8]| {
            super::framing::frame(buf, &limits)
                .map(|f| f.map(|f| f.len()))
                .map_err(|e| e.to_string())
        });
        let mut tconfig = TransportConfig::new(config.listen.clone(), framer);
        tconfig.max_message_size = config.limits.max_message_size;
        tconfig.early = Some(Arc::new({
            // Weak: the transport is held by `inner`.
            let inner = Arc::downgrade(&inner);
            move |data: &[u8], _: Proto| {
                inner
                    .upgrade()
                    .is_some_and(|inner| inner.early_final_response(data))
            }
        }));
        let handler_tx = inbound_tx.clone();
        let transport = Arc::new(
            Transport::start(
                tconfig,
                Arc::new(move |inbound| {
                    let _ = handler_tx.send(inbound);
                }),
                Arc::new({
                    // Weak: the transport is held by `inner`.
                    let inner = Arc::downgrade(&inner);
                    move |failure| {
                        log::debug!(
                            "SIP: could not send to {} over {}: {:?}",
                            failure.dest,
                            failure.proto,
                            failure.error
                        );
                        if let Some(inner) = inner.upgrade() {
                            inner.forward_unsent(&failure);
                        }
                    }
                }),
            )
            .map_err(|e| Error::Storage(format!("cannot start the SIP transport: {e}")))?,
        );
        let _ = inner.transport.set(transport.clone());

        // Dialogs of restored subscriptions.
        for sub in engine.remote_subscriptions()? {
            inner.agent_restored(&sub);
            let Some(target) = sub.target else { continue };
            if target.starts_with(super::agent::account::UPLINK_TARGET) {
                continue; // an account's internal subscription (replaced at start)
            }
            let (presentity, watcher) = (sub.presentity.to_string(), sub.watcher.to_string());
            match SubscriptionDialog::from_bytes_beside(&target, &presentity, &watcher) {
                Ok(mut dialog) => {
                    // The NOTIFYs sent before the restart are not counted in the store; the
                    // next CSeq must still be higher than theirs (RFC 3261 §12.2.1.1).
                    dialog.local_cseq = dialog
                        .local_cseq
                        .max(restart_cseq(engine.config().clock.unix_ms()));
                    let expires_at = inner.now() + sub.expires_in.as_millis() as u64;
                    lock(&inner.dialogs).insert(sub.id, &dialog, expires_at);
                }
                Err(e) => log::warn!("subscription {}: stored dialog unreadable: {e}", sub.id),
            }
        }

        // The engine port: the events that are this server's to deliver come to its own
        // bounded queue. Messages for other domains go out through the routes, or an
        // account's proxy; copies of subscription state changes are needed only where a
        // back-end subscription can exist at all (a route or an account).
        let port = engine.open_port(crate::engine::PortOptions {
            capacity: engine.config().queue_capacity,
            remote_messages: !config.routes.is_empty() || !config.accounts.is_empty(),
            subscription_events: !config.accounts.is_empty()
                || (config.federate && !config.routes.is_empty()),
        })?;
        let port_closer = port.closer();
        let mut threads = Vec::new();
        {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("impp-sip-events".into())
                    .spawn(move || loop {
                        let events = port.next_events(256, None);
                        if events.is_empty() && port.is_closed() {
                            break;
                        }
                        for event in events {
                            inner.on_event(event);
                        }
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a SIP thread: {e}")))?,
            );
        }
        // What was restored is notified again, now that its dialogs are known.
        let restored: Vec<SubscriptionId> = lock(&inner.dialogs)
            .by_subscription
            .values()
            .map(|d| d.id)
            .collect();
        for id in restored {
            let _ = engine.renotify(id);
        }
        // Accounts (user-agent role): their registrations and uplink publications start
        // with the timer thread.
        inner.accounts_start();
        inner.wake_for_agent();

        let stop = Arc::new(AtomicBool::new(false));
        for n in 0..config.workers {
            let (inner, rx) = (inner.clone(), inbound_rx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("impp-sip-{n}"))
                    .spawn(move || worker(&inner, &rx))
                    .map_err(|e| Error::Internal(format!("cannot start a SIP thread: {e}")))?,
            );
        }
        {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("impp-sip-timers".into())
                    .spawn(move || loop {
                        let now = inner.now();
                        inner.tick(now);
                        if !inner.alarm.sleep(now, inner.next_deadline()) {
                            break;
                        }
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a SIP thread: {e}")))?,
            );
        }
        for l in transport.local_addrs() {
            log::info!("SIP: listening on {}:{}", l.proto.as_str(), l.addr);
        }
        Ok(SipServer {
            inner,
            transport,
            threads,
            inbound: Some(inbound_tx),
            stop,
            port: port_closer,
            _engine: engine,
        })
    }

    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Whether account `index` of [`SipServerConfig::accounts`] is registered now.
    pub fn account_registered(&self, index: usize) -> bool {
        self.inner.account_registered(index)
    }

    /// Counts about the back-end subscriptions of federation.
    pub fn federation_stats(&self) -> super::agent::FederationStats {
        self.inner.agent.stats()
    }

    /// Runs the stack's timers at the clock's current time and returns when they have run
    /// (at most 10 s of real time): for tests and embedders that drive the engine with a
    /// manual clock ([`crate::engine::ManualClock`]), after advancing it. With the system
    /// clock the timers run by themselves. Whether they ran (`false`: stopped).
    pub fn sync(&self) -> bool {
        self.inner.alarm.ring_and_wait(Duration::from_secs(10))
    }

    /// The bound addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        self.transport.local_addrs()
    }

    /// Stops the transport and the server's threads. The engine keeps running (its
    /// subscriptions, with their dialogs, stay in its store).
    pub fn stop(&mut self) {
        self.inner.agent_stop();
        self.port.close();
        self.transport.stop();
        self.stop.store(true, Ordering::Release);
        self.inner.alarm.stop();
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

fn worker(inner: &Arc<Inner>, rx: &Receiver<Inbound>) {
    while let Ok(inbound) = rx.recv() {
        inner.handle(inbound);
    }
}

impl Inner {
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn engine(&self) -> Result<Arc<crate::engine::Core>> {
        self.engine.get()
    }

    /// A local tag for the dialog of subscription `id`: random hex, a dot, the id in hex
    /// (see [`Dialogs`]).
    pub(crate) fn tag_naming(&self, id: SubscriptionId) -> String {
        let (_, mix) = self.next_mix();
        let mut tag = String::with_capacity(24);
        push_hex(&mut tag, u64::from(mix), 8);
        tag.push('.');
        push_hex(&mut tag, id.0, 1);
        tag
    }

    /// A fresh token (tags, branches, Call-IDs): a counter and random-looking bits.
    pub(crate) fn token(&self) -> String {
        let mut token = String::with_capacity(32);
        self.push_token(&mut token);
        token
    }

    /// Appends a fresh token (see [`Inner::token`]); written by hand rather than with
    /// `format!`, as every request this server sends needs one.
    fn push_token(&self, out: &mut String) {
        let (n, mix) = self.next_mix();
        push_hex(out, n, 1);
        push_hex(out, u64::from(mix), 8);
    }

    /// The next counter value (unique) and 32 random bits.
    fn next_mix(&self) -> (u64, u32) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (n, (self.random.next_u64() >> 32) as u32)
    }

    pub(crate) fn send(
        &self,
        proto: Proto,
        dest: SocketAddr,
        connection: Option<super::transport::ConnectionId>,
        data: Vec<u8>,
    ) {
        if let Some(t) = self.transport.get() {
            let _ = t.send(Outbound {
                proto,
                dest,
                data,
                connection,
            });
        }
    }

    /// The address this server uses on `proto` for the address family of `dest`, as text.
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

    /// A new Via branch (RFC 3261 §8.1.1.7: the magic cookie, then a fresh token).
    pub(crate) fn branch(&self) -> String {
        let mut branch = String::with_capacity(40);
        branch.push_str("z9hG4bK");
        self.push_token(&mut branch);
        branch
    }

    /// A request this server sends to `dest` over `proto`: its start line, a Via with a new
    /// branch (returned) and `rport`, and Max-Forwards; the caller adds the rest.
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

    /// Sends a request made by [`Inner::new_request`] in a new client transaction, whose
    /// outcome comes back with `context`.
    pub(crate) fn send_request(
        &self,
        branch: String,
        bytes: Vec<u8>,
        proto: Proto,
        dest: SocketAddr,
        context: ClientContext,
    ) {
        let now = self.now();
        lock(&self.client_tx).start(
            branch,
            bytes.clone(),
            dest,
            proto == Proto::Tcp,
            context,
            now,
        );
        // Its first timer: E over UDP, F over TCP.
        let first = if proto == Proto::Tcp {
            self.config.timers.timeout()
        } else {
            self.config.timers.t1
        };
        self.alarm.at(now + first.as_millis() as u64);
        self.send(proto, dest, None, bytes);
    }

    fn handle(&self, inbound: Inbound) {
        let framing = match inbound.proto {
            Proto::Tcp => Framing::Stream,
            Proto::Udp => Framing::Datagram,
        };
        let peer = Peer {
            proto: inbound.proto,
            source: inbound.source,
            connection: inbound.connection,
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
        // The answers to this server's own requests (NOTIFYs, mostly: one per notification)
        // need only their top Via's branch and their status: the whole-message check is left
        // for the rest.
        if !message.is_request() && self.own_final_response(&message) {
            return;
        }
        if let Err(problem) = message.check() {
            if message.is_request() && message.can_answer_bad_request() {
                log::debug!("SIP: 400 to {}: {problem}", inbound.source);
                if let Ok(bytes) = bad_request(&message, &problem, Some(&self.token())) {
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
            self.request(message, peer);
        } else {
            self.response(&message);
        }
    }

    fn request(&self, message: SipMessage, peer: Peer) {
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
            method: method.clone(),
        };
        match lock(&self.server_tx).arrive(key.clone(), self.now()) {
            Arrival::New => {}
            Arrival::Absorb => return,
            Arrival::Resend(bytes) => {
                self.send(peer.proto, peer.source, peer.connection, bytes);
                return;
            }
        }
        let request = Request { message, peer, key };
        if self.forward(&request) {
            return;
        }
        // `Ok(None)`: answered already, or answered later (a MESSAGE waits for the
        // engine's first delivery outcome).
        let answer: Result<Option<Reply>> = match method.as_str() {
            "REGISTER" => {
                // Messages waiting for the user are relayed as soon as it is online; the
                // gate keeps them behind the REGISTER's answer (see `relay`).
                let _gate = lock(&self.register_gate);
                let answer = self.register(&request).map(Some);
                self.finish(&request, answer);
                return;
            }
            "SUBSCRIBE" => self.subscribe(&request),
            "PUBLISH" => self.publish(&request).map(Some),
            "MESSAGE" => self.message(&request),
            "OPTIONS" => self.options(&request).map(Some),
            // Only back-end dialogs receive NOTIFYs; `481` for any other.
            "NOTIFY" => {
                let answer = self.agent_notify(&request);
                self.wake_for_agent();
                answer
            }
            _ => {
                let mut b = self.reply(&request, 405, "Method Not Allowed");
                let _ = b.header("Allow", ALLOW);
                Ok(Some(b))
            }
        };
        self.finish(&request, answer);
    }

    /// Sends what a handler decided (`Ok(None)`: it answered, or answers later).
    fn finish(&self, request: &Request, answer: Result<Option<Reply>>) {
        match answer {
            Ok(None) => {}
            Ok(Some(answer)) => self.answer(request, answer),
            Err(e) => {
                let answer = self.error_reply(request, &e);
                self.answer(request, answer);
            }
        }
    }

    /// Sends `answer` in the request's transaction.
    pub(crate) fn answer(&self, request: &Request, answer: Reply) {
        let bytes = answer.builder.build();
        let now = self.now();
        lock(&self.server_tx).respond(
            &request.key,
            answer.status,
            bytes.clone(),
            request.peer.reliable(),
            now,
        );
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

    fn options(&self, request: &Request) -> Result<Reply> {
        let mut b = self.reply(request, 200, "OK");
        b.header("Allow", ALLOW)?;
        b.header("Allow-Events", ALLOW_EVENTS)?;
        b.header(
            "Accept",
            "application/pidf+xml, application/dialog-info+xml, application/simple-message-summary, application/watcherinfo+xml, application/simple-filter+xml, text/plain, */*",
        )?;
        Ok(b)
    }

    /// Checks the request's digest credentials; `Ok(None)` when authentication is off,
    /// `Ok(Some(user))` when they are good, `Err(answer)` (a challenge or a refusal)
    /// otherwise.
    pub(crate) fn authenticate(
        &self,
        request: &Request,
    ) -> std::result::Result<Option<Uri>, Reply> {
        if !self.config.authenticate {
            return Ok(None);
        }
        let method = request.key.method.as_str();
        let engine = match self.engine() {
            Ok(e) => e,
            Err(e) => return Err(self.error_reply(request, &e)),
        };
        // A SUBSCRIBE from a user of another domain (federation) cannot be checked here: the
        // directory holds only this server's users. It may only watch (never act for a local
        // identity), and the presentity's rules decide what it sees. A MESSAGE from another
        // domain likewise (relayed by that domain's server, as a Kamailio with a route to us
        // does): it is delivered as from its foreign sender, whom the recipient may block.
        if (method == "SUBSCRIBE" || method == "MESSAGE")
            && request
                .message
                .from()
                .and_then(|f| f.uri())
                .is_ok_and(|u| !engine.config().owns(&u))
        {
            return Ok(None);
        }
        let lookup = |username: &str, realm: &str| {
            Uri::parse(&format!("sip:{username}@{realm}"))
                .ok()
                .and_then(|u| engine.user(&u))
        };
        let mut refused = None;
        let mut stale = false;
        for value in request.message.headers("Authorization") {
            match self.auth.verify(method, value, lookup) {
                Outcome::Authenticated { user } => return Ok(Some(user)),
                Outcome::Stale => stale = true,
                Outcome::Rejected(why) | Outcome::Malformed(why) => refused = Some(why),
            }
        }
        if let (Some(why), false) = (&refused, stale) {
            log::info!("SIP: {method} from {} refused: {why}", request.peer.source);
            return Err(self.reply(request, 403, "Forbidden"));
        }
        let realm = self.realm_for(request);
        let mut b = self.reply(request, 401, "Unauthorized");
        let mut challenges = self.auth.challenge(&realm, stale);
        if !self.config.prefer_sha256 {
            challenges.reverse(); // MD5 first (see SipServerConfig::prefer_sha256)
        }
        for challenge in challenges {
            if !self.config.offer_sha256 && challenge.contains("algorithm=SHA-256") {
                continue;
            }
            let _ = b.header("WWW-Authenticate", &challenge);
        }
        Err(b)
    }

    fn realm_for(&self, request: &Request) -> String {
        let host = request
            .message
            .to()
            .ok()
            .and_then(|t| t.uri().ok())
            .map(|u| u.host().to_string())
            .unwrap_or_default();
        self.domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(&host))
            .or_else(|| self.domains.first())
            .cloned()
            .unwrap_or_else(|| "impp".to_string())
    }

    /// Checks that the authenticated user (if any) is `identity`; the answer refusing it
    /// otherwise.
    pub(crate) fn check_identity(
        &self,
        request: &Request,
        user: &Option<Uri>,
        identity: &Uri,
    ) -> std::result::Result<(), Reply> {
        match user {
            Some(u) if presentity_key(u) != presentity_key(identity) => {
                log::info!("SIP: {u} may not act as {identity}");
                Err(self.reply(request, 403, "Forbidden (not your identity)"))
            }
            _ => Ok(()),
        }
    }

    /// Completes the client transaction a final response answers, if it is one of ours.
    fn own_final_response(&self, message: &SipMessage) -> bool {
        let status = message.status().unwrap_or(0);
        if status < 200 {
            return false;
        }
        self.complete_client_transaction(message, true)
    }

    /// On the I/O thread, with the bytes in place: whether `data` is a final response that
    /// completes a client transaction of ours whose outcome needs no more than a note (a
    /// NOTIFY accepted, a relayed MESSAGE answered), which it then completes, as
    /// [`Inner::own_final_response`] would on a worker. Everything else (requests,
    /// provisional responses, answers to forwarded requests, a NOTIFY refused, which ends its
    /// subscription, the answers the user-agent role acts on) is left to the workers, which
    /// parse and check it whole.
    fn early_final_response(&self, data: &[u8]) -> bool {
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
        if lock(&self.forwards).contains_key(branch) {
            return false;
        }
        let reliable = via.transport().eq_ignore_ascii_case("TCP");
        let context = {
            let mut table = lock(&self.client_tx);
            match table.pending(branch) {
                Some(ClientContext::Notify(_)) if status < 300 => {}
                Some(ClientContext::Relay(_)) => {}
                _ => return false,
            }
            table.respond(branch, status, reliable, self.now())
        };
        if let Some(context) = context {
            self.client_outcome(context, status, None);
        }
        true
    }

    fn response(&self, message: &SipMessage) {
        if self.forward_response(message) {
            return;
        }
        self.complete_client_transaction(message, false);
    }

    /// Gives `message` to the client transaction of its top Via's branch, and its final
    /// outcome to whoever sent the request; whether there was one. `skip_forwarded`: leave
    /// the answers to forwarded requests alone (they are passed on whole, after the full
    /// check).
    fn complete_client_transaction(&self, message: &SipMessage, skip_forwarded: bool) -> bool {
        let Ok(via) = message.top_via() else {
            return false;
        };
        let Some(branch) = via.branch() else {
            return false;
        };
        if skip_forwarded && lock(&self.forwards).contains_key(branch) {
            return false;
        }
        let status = message.status().unwrap_or(0);
        let reliable = via.transport().eq_ignore_ascii_case("TCP");
        let context = lock(&self.client_tx).respond(branch, status, reliable, self.now());
        match context {
            Some(context) => {
                self.client_outcome(context, status, Some(message));
                true
            }
            None => false,
        }
    }

    /// The final outcome of a request this server sent (`status` 408 and no response for a
    /// timeout).
    fn client_outcome(&self, context: ClientContext, status: u16, response: Option<&SipMessage>) {
        match context {
            ClientContext::Agent(tx) => {
                self.agent_response(tx, status, response);
                self.wake_for_agent();
            }
            ClientContext::Notify(id) => self.notify_outcome(id, status, response),
            ClientContext::Relay(message) => self.relay_outcome(&message, status),
            ClientContext::Remote(delivery) => self.report_remote(*delivery, status),
            ClientContext::Forward(branch) => self.forward_failed(&branch, status),
        }
    }

    /// Runs what is due at `now` (clock ms).
    fn tick(&self, now: u64) {
        self.notify_retries(now);
        lock(&self.server_tx).tick(now);
        let actions = lock(&self.client_tx).tick(now);
        for action in actions {
            match action {
                ClientAction::Retransmit { dest, request } => {
                    self.send(Proto::Udp, dest, None, request)
                }
                ClientAction::TimedOut(context) => self.client_outcome(context, 408, None),
            }
        }
        self.agent_tick(now);
    }

    /// Tells the timer thread of the agent's earliest deadline (after the agent's state
    /// changed: its requests' answers, back-end NOTIFYs, its events).
    fn wake_for_agent(&self) {
        if let Some(at) = self.agent_next_deadline() {
            self.alarm.at(at);
        }
    }

    /// The earliest clock time [`Inner::tick`] has work.
    fn next_deadline(&self) -> Option<u64> {
        let server = lock(&self.server_tx).next_deadline();
        let client = lock(&self.client_tx).next_deadline();
        [
            server,
            client,
            self.next_retry(),
            self.agent_next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// An event of the server's port (see [`crate::engine::Port`] for which they are).
    fn on_event(&self, event: Event) {
        match event {
            Event::Notification(n) if !self.notification(&n) && !self.uplink_notification(&n) => {
                log::debug!(
                    "subscription {}: no dialog for its notification",
                    n.subscription
                );
            }
            Event::Message(m) => self.relay(&m),
            Event::Delivery(d) => {
                self.delivery(&d);
            }
            Event::RemoteMessage(m) => self.remote_message(&m),
            event => {
                self.agent_event(&event);
                self.wake_for_agent();
            }
        }
    }
}

/// A request being handled.
pub(crate) struct Request {
    pub(crate) message: SipMessage,
    pub(crate) peer: Peer,
    pub(crate) key: ServerKey,
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

/// The CSeq a dialog restored after a restart continues from: seconds since 2023-11-14
/// (Unix 1,700,000,000), below 2^31. Higher than any count of NOTIFYs a dialog sent before,
/// unless it sent more than one a second on average since that date; and it grows with each
/// restart.
pub(crate) fn restart_cseq(unix_ms: u64) -> u32 {
    let seconds = (unix_ms / 1000).saturating_sub(1_700_000_000);
    seconds.min((1 << 31) - (1 << 24)) as u32
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

/// At most 80 characters of `text` on one line (for reason phrases).
pub(crate) fn short(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    line
}

/// The transport address a contact URI names, when its host is an IP address (no DNS here).
pub(crate) fn contact_address(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port().unwrap_or(5060)))
}

/// `udp:1.2.3.4:5060` for an endpoint's contact location.
pub(crate) fn location(proto: Proto, addr: SocketAddr) -> String {
    let proto = if proto == Proto::Tcp { "tcp" } else { "udp" };
    format!("{proto}:{addr}")
}

/// Reads a location written by [`location`].
pub(crate) fn parse_location(text: &str) -> Option<(Proto, SocketAddr)> {
    let (proto, addr) = text.split_once(':')?;
    let proto = match proto {
        "udp" => Proto::Udp,
        "tcp" => Proto::Tcp,
        _ => return None,
    };
    Some((proto, addr.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_and_rport() {
        let src: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let (received, rport) = via_received_rport("10.0.0.1", true, src);
        assert_eq!(
            with_received(
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport",
                received,
                rport
            ),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.9;rport=40000"
        );
        let (received, rport) = via_received_rport("h", false, src);
        assert_eq!(
            with_received("SIP/2.0/TCP h;branch=z9hG4bK2", received, rport),
            "SIP/2.0/TCP h;branch=z9hG4bK2;received=192.0.2.9"
        );
    }

    #[test]
    fn restored_dialogs_continue_with_a_higher_cseq() {
        // 2026-11-24: about 95 million seconds since the base.
        let now = restart_cseq(1_795_500_000_000);
        assert!(now > 90_000_000 && now < 1 << 31);
        assert!(restart_cseq(1_795_500_060_000) > now);
        assert_eq!(restart_cseq(0), 0);
        assert!(restart_cseq(u64::MAX) < 1 << 31);
    }

    #[test]
    fn locations_round_trip() {
        let a: SocketAddr = "[::1]:5070".parse().unwrap();
        assert_eq!(
            parse_location(&location(Proto::Tcp, a)),
            Some((Proto::Tcp, a))
        );
        assert_eq!(parse_location("sctp:1.2.3.4:5"), None);
    }
}

#[cfg(test)]
mod dialog_table_tests {
    use super::*;

    fn dialog(call_id: &str, local_tag: &str) -> SubscriptionDialog {
        SubscriptionDialog {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: "r1".into(),
            local_uri: "sip:alice@a.test".into(),
            remote_uri: "sip:bob@a.test".into(),
            remote_target: "sip:bob@192.0.2.4:5062".into(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 1,
            event: "presence".into(),
            proto: Proto::Udp,
            peer: "192.0.2.4:5062".parse().unwrap(),
        }
    }

    #[test]
    fn a_dialog_is_found_through_the_subscription_its_tag_names() {
        let mut dialogs = Dialogs::default();
        let d = dialog("c1", "0badf00d.2a");
        dialogs.insert(SubscriptionId(0x2a), &d, 0);
        assert!(dialogs.untagged.is_empty());
        assert_eq!(dialogs.candidate(&d.id()), Some(SubscriptionId(0x2a)));
        assert_eq!(dialogs.candidate(&dialog("c1", "0badf00d.2b").id()), None);
        // A tag naming the subscription is not enough: Call-ID and tags must all match
        // the subscription's target.
        let target = d.to_bytes_beside("sip:alice@a.test", "sip:bob@a.test");
        assert!(is_dialog(&target, &d.id()));
        for other in [dialog("c2", "0badf00d.2a"), dialog("c1", "0badf00e.2a")] {
            assert!(!is_dialog(&target, &other.id()), "{:?}", other.id());
        }
        let mut spoof = d.id();
        spoof.remote_tag = "r2".into();
        assert!(!is_dialog(&target, &spoof));
        assert!(dialogs.remove(SubscriptionId(0x2a)).is_some());
        assert_eq!(dialogs.candidate(&d.id()), None);
    }

    #[test]
    fn dialogs_with_tags_of_earlier_versions_are_found_by_their_id() {
        let mut dialogs = Dialogs::default();
        // Tags made before they named the subscription (a restored dialog), or naming
        // another one.
        let old = dialog("c1", "1f3a9c0de");
        let odd = dialog("c2", "0badf00d.99");
        dialogs.insert(SubscriptionId(7), &old, 0);
        dialogs.insert(SubscriptionId(8), &odd, 0);
        assert_eq!(dialogs.untagged.len(), 2);
        assert_eq!(dialogs.candidate(&old.id()), Some(SubscriptionId(7)));
        assert_eq!(dialogs.candidate(&odd.id()), Some(SubscriptionId(8)));
        assert_eq!(dialogs.candidate(&dialog("c3", "1f3a9c0de").id()), None);
        dialogs.remove(SubscriptionId(7));
        dialogs.remove(SubscriptionId(8));
        assert!(dialogs.untagged.is_empty());
        assert_eq!(dialogs.candidate(&old.id()), None);
    }

    #[test]
    fn dialog_state_is_small_and_counts_its_cseqs() {
        assert_eq!(
            std::mem::size_of::<Option<DialogState>>(),
            std::mem::size_of::<DialogState>()
        );
        assert!(std::mem::size_of::<DialogState>() <= 24);
        let mut dialogs = Dialogs::default();
        let mut d = dialog("c1", "0badf00d.1");
        d.local_cseq = 41;
        dialogs.insert(SubscriptionId(1), &d, 0);
        let state = dialogs.by_subscription.get_mut(&SubscriptionId(1)).unwrap();
        assert_eq!(state.take_cseq(), 42);
        assert_eq!(state.take_cseq(), 43);
        // Past the largest CSeq it starts again at 1, never 0.
        d.local_cseq = u32::MAX - 1;
        dialogs.insert(SubscriptionId(1), &d, 0);
        let state = dialogs.by_subscription.get_mut(&SubscriptionId(1)).unwrap();
        assert_eq!(state.take_cseq(), u32::MAX);
        assert_eq!(state.take_cseq(), 1);
    }

    #[test]
    fn hex_is_written_like_format() {
        for (v, w) in [
            (0u64, 1),
            (0, 8),
            (0xabc, 8),
            (u64::MAX, 1),
            (0x0001_2345_6789, 8),
            (7, 1),
        ] {
            let mut out = String::new();
            push_hex(&mut out, v, w);
            assert_eq!(out, format!("{v:0w$x}"));
        }
    }
}
