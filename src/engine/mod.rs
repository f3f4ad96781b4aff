//! The threaded presence core (DESIGN §1, §3): presentities sharded over worker threads,
//! publications composed per package, subscriptions with authorization and soft state, and
//! events delivered to the application by callback or polling.
//!
//! ```
//! use impp::engine::{Engine, EngineConfig, AuthAction, SubscribeRequest, Package, Event};
//! use impp::doc::pidf::{Basic, Presence, Tuple};
//! use impp::uri::Uri;
//!
//! let engine = Engine::new(EngineConfig { default_policy: AuthAction::Allow, ..Default::default() })?;
//! let alice: Uri = "sip:alice@example.test".parse()?;
//! let bob: Uri = "sip:bob@example.test".parse()?;
//! let id = engine.subscribe(SubscribeRequest::new(bob, alice.clone(), Package::Presence))?;
//!
//! let mut doc = Presence::new("sip:alice@example.test");
//! doc.tuples.push(Tuple::new("phone", Basic::Open));
//! engine.publish(&alice, doc.into(), Some(3600))?;
//!
//! let mut open = false;
//! while let Some(event) = engine.next_event(Some(std::time::Duration::from_secs(1))) {
//!     if let Event::Notification(n) = event {
//!         assert_eq!(n.subscription, id);
//!         open = n.document.is_some_and(|d| matches!(&*d, impp::engine::Document::Presence(p) if p.is_open()));
//!         if open { break; }
//!     }
//! }
//! assert!(open);
//! # Ok::<(), impp::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod authorization;
pub mod clock;
pub mod compose;
pub mod config;
mod directory;
pub(crate) mod dispatcher;
pub mod events;
pub mod limits;
mod lists;
pub(crate) mod member;
mod port;
pub(crate) mod queue;
pub(crate) mod random;
mod restore;
pub mod served;
mod shard;
mod subscription;
mod timers;
mod watchers;

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Sender};

pub use crate::model::list::{ListEntry, Resource, ResourceList};
/// Event packages, now in [`crate::model::package`]; re-exported under their old path.
pub use crate::model::package;
pub use crate::model::package::{Document, Package};
pub use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{EngineConfig, ExpiryBounds, RuntimeSettings};
pub use events::{
    Delivery, DeliveryOutcome, Event, FailureReason, Message, MessageId, Notification,
    SubscriptionId, SubscriptionState, TerminationReason,
};
pub use limits::StateLimits;
pub use port::{InlineTaker, Port, PortCloser, PortOptions, PortStats};
pub use served::Served;
pub use shard::authorization::REDIRECT_MEMORY_MS;
pub use shard::messaging::EndpointInfo;
pub use subscription::SubscriptionInfo;

use directory::Directory;
use dispatcher::Dispatcher;
use lists::Lists;
use queue::EventQueue;
use shard::{shard_of, shard_of_etag, Command, NewSubscription, Reply, Shard, ShardCounters, Then};

use crate::doc::filter::FilterSet;
use crate::doc::pidf::Presence;
use crate::error::{Error, Result};
use crate::log;
use crate::model::key::presentity_key;
use crate::store::Credential;
use crate::uri::Uri;

/// The application's event callback: called on the dispatcher thread, one event at a time.
pub type EventCallback = Box<dyn FnMut(&Event) + Send>;

/// A request to watch a presentity.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    /// Who watches.
    pub watcher: Uri,
    /// Who is watched.
    pub presentity: Uri,
    /// The event package.
    pub package: Package,
    /// Requested expiry in seconds (`None`: the configured default; `Some(0)`: fetch the
    /// current state once and end, RFC 6665 §4.4.3).
    pub expires: Option<u32>,
    /// What and when to be told (RFC 4661); the filter for this presentity is picked.
    pub filter: Option<FilterSet>,
    /// Minimum time between notifications (RFC 6446); `None`: the engine default.
    pub min_interval: Option<Duration>,
    /// For a remote watcher (a SIP dialog): where its notifications go, in the transport's
    /// own serialization. A subscription with a target is kept in the store, so after a
    /// restart it is restored (see [`Core::remote_subscriptions`]) and notified again;
    /// `None` (the default) is a local watcher, gone with the process.
    pub target: Option<Arc<[u8]>>,
}

impl SubscribeRequest {
    /// A subscription with the defaults.
    pub fn new(watcher: Uri, presentity: Uri, package: Package) -> SubscribeRequest {
        SubscribeRequest {
            watcher,
            presentity,
            package,
            expires: None,
            filter: None,
            min_interval: None,
            target: None,
        }
    }
}

/// An instant message to send (RFC 3428 page mode). The fields are shared pointers, so an
/// application that sends many messages from the same sender, or the same body to many
/// recipients, builds them once and clones the pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Who sends it.
    pub sender: Arc<Uri>,
    /// Who it is for.
    pub recipient: Arc<Uri>,
    /// Its MIME type (`type/subtype`, parameters allowed), e.g. `text/plain;charset=utf-8`.
    pub content_type: Arc<str>,
    /// Its body: any bytes.
    pub body: Arc<[u8]>,
    /// One endpoint of the recipient to deliver to (when it is online; otherwise every
    /// endpoint gets it).
    pub endpoint: Option<String>,
    /// The message or call it refers to (the application's reference), handed over as is.
    pub in_reply_to: Option<String>,
    /// The message as a transport received it (see [`Message::wire`]); `None` for a
    /// message the application sends.
    pub wire: Option<Arc<[u8]>>,
}

/// A subscription made, with the expiry the engine granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The new subscription.
    pub id: SubscriptionId,
    /// Its granted expiry in seconds (the request, or the default, clamped to the
    /// configured bounds; 0 for a fetch, which ends at once).
    pub expires: u32,
}

impl OutgoingMessage {
    /// A message with no endpoint and no reference. URIs may be given as `Uri` or
    /// `Arc<Uri>`, the content type as `&str`, `String` or `Arc<str>`, the body as anything
    /// that is bytes (`&str`, `String`, `Vec<u8>`, `&[u8]`, ...).
    pub fn new(
        sender: impl Into<Arc<Uri>>,
        recipient: impl Into<Arc<Uri>>,
        content_type: impl Into<Arc<str>>,
        body: impl AsRef<[u8]>,
    ) -> OutgoingMessage {
        OutgoingMessage {
            sender: sender.into(),
            recipient: recipient.into(),
            content_type: content_type.into(),
            body: Arc::from(body.as_ref()),
            endpoint: None,
            in_reply_to: None,
            wire: None,
        }
    }
}

/// Checks a MIME type: `type/subtype` of RFC 2045 tokens, then optional parameters, no
/// control characters.
fn check_content_type(content_type: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "content type '{}' {why}",
            content_type.escape_debug()
        )))
    };
    if content_type.chars().any(|c| c.is_control()) {
        return bad("holds a control character");
    }
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, sub)) if token(t) && token(sub) => Ok(()),
        _ => bad("is not of the form type/subtype"),
    }
}

/// Counts that are cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Presentities with publications or subscribers.
    pub presentities: u64,
    /// Live publications.
    pub publications: u64,
    /// Subscriptions waiting for authorization.
    pub subscriptions_pending: u64,
    /// Active subscriptions.
    pub subscriptions_active: u64,
    /// Pending and active subscriptions of each package, in [`Package::ALL`] order.
    pub subscriptions_by_package: [[u64; 2]; Package::ALL.len()],
    /// Events waiting to be delivered.
    pub events_queued: u64,
    /// Notifications produced.
    pub notifications_sent: u64,
    /// Notifications merged into a waiting one (the consumer fell behind).
    pub notifications_merged: u64,
    /// Notifications held back by a minimum interval.
    pub notifications_throttled: u64,
    /// Events queued beyond the bound because they could not merge.
    pub events_overflowed: u64,
    /// Panics caught in the event callback (each logged as an error, see [`crate::log`]).
    pub callback_panics: u64,
    /// Endpoints logged in.
    pub endpoints: u64,
    /// Messages waiting for their recipient (stored, or queued behind stored ones).
    pub messages_waiting: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Messages that failed.
    pub messages_failed: u64,
    /// Messages refused because the recipient's mailbox was full (also counted in
    /// `messages_failed`; see [`StateLimits`]).
    pub messages_refused: u64,
    /// Subscriptions refused because their watcher or presentity had as many as allowed.
    pub subscriptions_refused: u64,
    /// Logins (SIP registrations) refused because their user had as many endpoints as
    /// allowed.
    pub endpoints_refused: u64,
}

/// The presence engine. Dropping it shuts it down (see [`Core::shutdown`]).
///
/// Every API call may be made from any thread, including from inside the event callback.
/// A callback that needs the engine should capture an [`EngineHandle`] (from
/// [`Core::handle`]), not the engine itself.
pub struct Engine {
    core: Arc<Core>,
}

/// A weak reference to an engine, for callbacks: calls through it fail with
/// [`Error::Shutdown`] once the engine is gone.
#[derive(Clone)]
pub struct EngineHandle {
    core: Weak<Core>,
}

impl EngineHandle {
    /// The engine, while it exists.
    pub fn get(&self) -> Result<Arc<Core>> {
        self.core
            .upgrade()
            .ok_or_else(|| Error::Shutdown("the engine was destroyed".into()))
    }
}

/// What an [`Engine`] does; reached through the engine (it dereferences to this) or an
/// [`EngineHandle`].
pub struct Core {
    config: Arc<EngineConfig>,
    shards: Vec<Sender<Command>>,
    counters: Vec<Arc<ShardCounters>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queue: Arc<EventQueue>,
    dispatcher: Dispatcher,
    next_id: AtomicU64,
    next_message_id: AtomicU64,
    directory: Arc<Directory>,
    lists: Lists,
    port: Arc<port::PortSlot>,
    /// Presentities of other domains served here ([`served`]).
    served: Arc<served::ServedHere>,
    /// The engine's one generator; shards and transports draw their own splits of it.
    random: Mutex<random::Random>,
    /// The list server's dialogs the store gave back at start, until the list server takes
    /// them ([`Core::take_stored_list_dialogs`]).
    stored_list_dialogs: Mutex<Vec<crate::store::ListDialogRecord>>,
    closed: AtomicBool,
    me: Weak<Core>,
}

impl std::ops::Deref for Engine {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // From inside a callback this refuses (nothing is torn down); see `Core::shutdown`.
        let _ = self.core.shutdown();
    }
}

impl Engine {
    /// Starts an engine: one thread per shard and the event queue. What the store keeps is
    /// loaded and given to the shards that own it: rules, users, resource lists, endpoints,
    /// publications, stored messages and remote subscriptions (what ran out while the engine
    /// was down expires at once, with the usual events); the list server's dialogs are kept
    /// for it as they were stored. A stored list of a domain the engine does not own is left
    /// in the store and not served (a warning is logged).
    pub fn new(config: EngineConfig) -> Result<Engine> {
        config.validate()?;
        let config = Arc::new(config);
        let queue = EventQueue::new(config.queue_capacity)
            .map_err(|e| Error::Internal(format!("cannot create the event queue: {e}")))?;
        let mut snapshot = config.store.load()?;
        let directory = Arc::new(Directory::new(snapshot.credentials.clone()));
        let lists = Lists::new(
            std::mem::take(&mut snapshot.lists)
                .into_iter()
                .filter(|l| {
                    let owned = config.owns(&l.uri);
                    if !owned {
                        log::warn!(
                            "list {} is not of a domain this engine owns: not served",
                            l.uri
                        );
                    }
                    owned
                })
                .collect(),
        );
        let next_message_id = snapshot
            .messages
            .iter()
            .map(|m| m.id + 1)
            .max()
            .unwrap_or(0)
            .max(config.clock.unix_ms().saturating_mul(1000));
        let stored_list_dialogs = std::mem::take(&mut snapshot.list_dialogs);
        let (parts, next_subscription) =
            restore::split(snapshot, config.workers, config.store.as_ref());
        let mut senders = Vec::with_capacity(config.workers);
        let mut threads = Vec::with_capacity(config.workers);
        let mut counters = Vec::with_capacity(config.workers);
        let port = Arc::new(port::PortSlot::default());
        let tally = Arc::new(limits::WatcherTally::default());
        let served = Arc::new(served::ServedHere::default());
        let mut random = match config.random_seed {
            Some(seed) => random::Random::seeded(seed),
            None => random::Random::from_entropy(),
        };
        for (index, mut part) in parts.into_iter().enumerate() {
            let (tx, rx) = unbounded();
            let c = Arc::new(ShardCounters::default());
            let mut shard = Shard::new(
                index,
                config.clone(),
                queue.clone(),
                c.clone(),
                std::mem::take(&mut part.rules),
                tx.clone(),
                directory.clone(),
                port.clone(),
                tally.clone(),
                served.clone(),
                random.split(),
            );
            shard.restore(part);
            let thread = std::thread::Builder::new()
                .name(format!("impp-shard-{index}"))
                .spawn(move || shard.run(rx))
                .map_err(|e| Error::Internal(format!("cannot start a shard thread: {e}")))?;
            senders.push(tx);
            threads.push(thread);
            counters.push(c);
        }
        let dispatcher = Dispatcher::new(queue.clone())
            .map_err(|e| Error::Internal(format!("cannot start the dispatcher: {e}")))?;
        let core = Arc::new_cyclic(|me| Core {
            config,
            shards: senders,
            counters,
            threads: Mutex::new(threads),
            queue,
            dispatcher,
            next_id: AtomicU64::new(next_subscription),
            next_message_id: AtomicU64::new(next_message_id),
            directory,
            lists,
            port,
            served,
            random: Mutex::new(random),
            stored_list_dialogs: Mutex::new(stored_list_dialogs),
            closed: AtomicBool::new(false),
            me: me.clone(),
        });
        log::info!(
            "engine started: {} workers, event queue capacity {}",
            core.config.workers,
            core.config.queue_capacity
        );
        Ok(Engine { core })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A change to a publication, made by [`Core::publication_then`] without waiting: what a
/// SIP PUBLISH asks (RFC 3903 §4).
pub(crate) enum PublicationChange {
    /// A new publication (`expires` `None`: the default).
    Publish {
        presentity: Uri,
        document: Document,
        expires: Option<u32>,
    },
    /// A refresh with a new expiry (0 removes, as [`Core::refresh_publication`]).
    Refresh { etag: String, expires: u32 },
    /// A new document and a new expiry (not 0), as [`Core::modify_publication_expiring`].
    Modify {
        etag: String,
        document: Document,
        expires: u32,
    },
    /// A removal.
    Remove { etag: String },
}

impl Core {
    /// A weak handle for callbacks.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            core: self.me.clone(),
        }
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn call<T>(&self, shard: usize, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown("the engine is shut down".into()));
        }
        let (tx, rx) = bounded(1);
        self.shards[shard]
            .send(make(Reply::Wait(tx)))
            .map_err(|_| Error::Shutdown("the engine is shut down".into()))?;
        rx.recv()
            .map_err(|_| Error::Shutdown("the engine stopped before answering".into()))?
    }

    /// [`Core::call`] without waiting: `then` gets the result on the shard's thread (or on
    /// this one, when the command cannot be sent), exactly once.
    fn call_then<T: 'static>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<T>) -> Command,
        then: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let reply = Reply::Then(Then::new(then));
        if self.closed.load(Ordering::Acquire) {
            // Dropped: `then` hears of the shutdown.
            drop(reply);
            return;
        }
        // A command the shard can no longer take is dropped with its reply, likewise.
        let _ = self.shards[shard].send(make(reply));
    }

    fn shard_for(&self, presentity: &Uri) -> usize {
        shard_of(&presentity_key(presentity), self.shards.len())
    }

    fn shard_for_etag(&self, etag: &str) -> Result<usize> {
        shard_of_etag(etag)
            .filter(|s| *s < self.shards.len())
            .ok_or_else(|| {
                Error::UnknownEntityTag(format!("'{etag}' is not an entity tag of this engine"))
            })
    }

    fn shard_for_subscription(&self, id: SubscriptionId) -> usize {
        (id.0 % self.shards.len() as u64) as usize
    }

    // ----------------------------------------------------------------------------------
    // Publications
    // ----------------------------------------------------------------------------------

    /// Publishes a document for `presentity` (its package is the document's). Returns the
    /// publication's entity tag. `expires` in seconds (`None`: the default); below the
    /// minimum is [`Error::IntervalTooBrief`], above the maximum is shortened.
    pub fn publish(
        &self,
        presentity: &Uri,
        document: Document,
        expires: Option<u32>,
    ) -> Result<String> {
        let package = document.package();
        let expires = expires.unwrap_or(self.config.publication_expiry.default);
        let presentity = Arc::new(presentity.clone());
        self.call(self.shard_for(&presentity), |reply| Command::Publish {
            presentity,
            package,
            document,
            expires,
            reply,
        })
    }

    /// Publishes a document given as text (parsed with the configured limits).
    pub fn publish_body(
        &self,
        presentity: &Uri,
        package: Package,
        body: &str,
        expires: Option<u32>,
    ) -> Result<String> {
        let document = package.parse(body, &self.config.limits)?;
        self.publish(presentity, document, expires)
    }

    /// Extends a publication; returns its new entity tag (the old one stops working).
    /// `expires` 0 removes it (and returns an empty tag). An unknown or expired tag is
    /// [`Error::UnknownEntityTag`].
    pub fn refresh_publication(&self, etag: &str, expires: u32) -> Result<String> {
        let etag = etag.to_owned();
        self.call(self.shard_for_etag(&etag)?, |reply| {
            Command::RefreshPublication {
                etag,
                expires,
                reply,
            }
        })
    }

    /// Replaces a publication's document; returns its new entity tag.
    pub fn modify_publication(&self, etag: &str, document: Document) -> Result<String> {
        let etag = etag.to_owned();
        self.call(self.shard_for_etag(&etag)?, |reply| {
            Command::ModifyPublication {
                etag,
                document,
                expires: None,
                reply,
            }
        })
    }

    /// Replaces a publication's document and sets its expiry, in one step: what a SIP
    /// PUBLISH with `SIP-If-Match` and a body asks (RFC 3903 §4.4: a modification is also a
    /// refresh). One round trip, one new entity tag, one write to the store. An expiry below
    /// the minimum is [`Error::IntervalTooBrief`] and changes nothing; 0 is refused (remove
    /// with [`Core::remove_publication`]).
    pub fn modify_publication_expiring(
        &self,
        etag: &str,
        document: Document,
        expires: u32,
    ) -> Result<String> {
        if expires == 0 {
            return Err(Error::InvalidArgument(
                "a modified publication cannot expire at once (remove it instead)".into(),
            ));
        }
        let etag = etag.to_owned();
        self.call(self.shard_for_etag(&etag)?, |reply| {
            Command::ModifyPublication {
                etag,
                document,
                expires: Some(expires),
                reply,
            }
        })
    }

    /// Replaces the documents of many publications at once: for a gateway that publishes
    /// for many presentities (a PBX's busy lamps), one round trip per shard instead of one
    /// per publication. Each change is `(entity tag, document)`; the results come back in
    /// the same order, each as [`Core::modify_publication`] would give it (a failed change
    /// does not stop the others).
    pub fn modify_publications(&self, changes: Vec<(String, Document)>) -> Vec<Result<String>> {
        let n = changes.len();
        let mut per_shard: Vec<Vec<(usize, String, Document)>> =
            (0..self.shards.len()).map(|_| Vec::new()).collect();
        let mut results: Vec<Option<Result<String>>> = (0..n).map(|_| None).collect();
        for (i, (etag, document)) in changes.into_iter().enumerate() {
            match self.shard_for_etag(&etag) {
                Ok(shard) => per_shard[shard].push((i, etag, document)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // Every shard works on its share at the same time; then the answers are collected.
        let mut waiting = Vec::new();
        for (shard, items) in per_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let (order, changes): (Vec<usize>, Vec<(String, Document)>) =
                items.into_iter().map(|(i, e, d)| (i, (e, d))).unzip();
            let (tx, rx) = bounded(1);
            let sent = !self.closed.load(Ordering::Acquire)
                && self.shards[shard]
                    .send(Command::ModifyPublications {
                        changes,
                        reply: Reply::Wait(tx),
                    })
                    .is_ok();
            waiting.push((order, sent.then_some(rx)));
        }
        for (order, rx) in waiting {
            let answers = rx
                .ok_or_else(|| Error::Shutdown("the engine is shut down".into()))
                .and_then(|rx| {
                    rx.recv().map_err(|_| {
                        Error::Shutdown("the engine stopped before answering".into())
                    })?
                });
            match answers {
                Ok(answers) => {
                    for (i, answer) in order.into_iter().zip(answers) {
                        results[i] = Some(answer);
                    }
                }
                Err(e) => {
                    for i in order {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal("a change was not answered".into()))))
            .collect()
    }

    /// Withdraws a publication.
    pub fn remove_publication(&self, etag: &str) -> Result<()> {
        let etag = etag.to_owned();
        self.call(self.shard_for_etag(&etag)?, |reply| {
            Command::RemovePublication { etag, reply }
        })
    }

    /// Makes `change` and gives its result (the publication's entity tag; for a removal the
    /// tag removed) to `then`, run on the shard's thread, without waiting for it. For a
    /// caller that answers a request from there (the SIP publisher): `then` must be quick
    /// and must not call the engine and wait.
    pub(crate) fn publication_then(
        &self,
        change: PublicationChange,
        then: impl FnOnce(Result<String>) + Send + 'static,
    ) {
        // A tag of no shard is refused here, on the caller's thread.
        let shard = match &change {
            PublicationChange::Publish { presentity, .. } => Ok(self.shard_for(presentity)),
            PublicationChange::Refresh { etag, .. }
            | PublicationChange::Modify { etag, .. }
            | PublicationChange::Remove { etag } => self.shard_for_etag(etag),
        };
        let shard = match shard {
            Ok(shard) => shard,
            Err(e) => return then(Err(e)),
        };
        match change {
            PublicationChange::Publish {
                presentity,
                document,
                expires,
            } => {
                let package = document.package();
                let expires = expires.unwrap_or(self.config.publication_expiry.default);
                let presentity = Arc::new(presentity);
                let make = |reply| Command::Publish {
                    presentity,
                    package,
                    document,
                    expires,
                    reply,
                };
                self.call_then(shard, make, then);
            }
            PublicationChange::Refresh { etag, expires } => {
                let make = |reply| Command::RefreshPublication {
                    etag,
                    expires,
                    reply,
                };
                self.call_then(shard, make, then);
            }
            PublicationChange::Modify {
                etag,
                document,
                expires,
            } => {
                let make = |reply| Command::ModifyPublication {
                    etag,
                    document,
                    expires: Some(expires),
                    reply,
                };
                self.call_then(shard, make, then);
            }
            PublicationChange::Remove { etag } => {
                let removed = etag.clone();
                let make = |reply| Command::RemovePublication { etag, reply };
                self.call_then(shard, make, move |result: Result<()>| {
                    then(result.map(|()| removed))
                });
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Subscriptions
    // ----------------------------------------------------------------------------------

    /// Subscribes `watcher` to `presentity`. The first notification (an event) carries the
    /// full current state, or none while authorization is pending. A presentity that has
    /// not published yet can be watched. Expiry outside the bounds is
    /// [`Error::IntervalTooBrief`]; watching another presentity's watchers is
    /// [`Error::Forbidden`]; a watcher or presentity with as many subscriptions as
    /// [`EngineConfig::state_limits`] allows is [`Error::LimitReached`].
    pub fn subscribe(&self, request: SubscribeRequest) -> Result<SubscriptionId> {
        self.subscribe_naming(request, |_| None).map(|s| s.id)
    }

    /// [`Core::subscribe`] for a transport whose target names the subscription: `target` is
    /// given the subscription's id before the subscription is made and returns the target
    /// to keep (it replaces [`SubscribeRequest::target`] unless it returns `None`). A SIP
    /// server writes the id into the dialog's tag, so a request inside the dialog finds its
    /// subscription without a second index of every dialog.
    pub fn subscribe_naming(
        &self,
        mut request: SubscribeRequest,
        target: impl FnOnce(SubscriptionId) -> Option<Arc<[u8]>>,
    ) -> Result<Subscribed> {
        let shard = self.shard_for(&request.presentity);
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = SubscriptionId(n * self.shards.len() as u64 + shard as u64);
        if let Some(named) = target(id) {
            request.target = Some(named);
        }
        let filter = request
            .filter
            .as_ref()
            .and_then(|set| set.filter_for(&request.presentity.to_string()).cloned());
        let remote = request.target.map(|target| subscription::Remote {
            target,
            filter: request.filter.as_ref().map(|f| f.to_xml()),
        });
        let expires = request
            .expires
            .unwrap_or(self.config.subscription_expiry.default);
        let new = NewSubscription {
            id,
            watcher: Arc::new(request.watcher),
            presentity: Arc::new(request.presentity),
            package: request.package,
            expires,
            filter,
            min_interval: request
                .min_interval
                .unwrap_or(self.config.min_notify_interval),
            remote,
        };
        self.call(shard, |reply| Command::Subscribe {
            request: new,
            reply,
        })
        .map(|(id, expires)| Subscribed { id, expires })
    }

    /// `watcher` joins the shared subscriptions ([`member`]) of `presentities`' `package`:
    /// one member each, authorized by that presentity's rules, whose notifications (and
    /// the group's) go to the transport's port. One answer per presentity, in order: `Ok`
    /// once the member is made or counted (its state follows as a notification), or why it
    /// was refused ([`Error::Moved`] for a redirect, [`Error::LimitReached`]). For a list
    /// server of domains this engine owns.
    pub(crate) fn join(
        &self,
        watcher: &Uri,
        package: Package,
        presentities: &[Uri],
    ) -> Result<Vec<Result<()>>> {
        let watcher = Arc::new(watcher.clone());
        // Per shard: (place in `presentities`, (presentity, member id, group id)).
        type Joins = Vec<(usize, (Arc<Uri>, SubscriptionId, SubscriptionId))>;
        let mut by_shard: Vec<Joins> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for (at, p) in presentities.iter().enumerate() {
            let shard = self.shard_for(p);
            let n = self.next_id.fetch_add(2, Ordering::Relaxed);
            let id = |n: u64| SubscriptionId(n * self.shards.len() as u64 + shard as u64);
            by_shard[shard].push((at, (Arc::new(p.clone()), id(n), id(n + 1))));
        }
        let mut results: Vec<Option<Result<()>>> = presentities.iter().map(|_| None).collect();
        for (shard, items) in by_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let (places, items): (Vec<usize>, Vec<_>) = items.into_iter().unzip();
            let answers = self.call(shard, |reply| Command::Join {
                package,
                watcher: watcher.clone(),
                presentities: items,
                reply,
            })?;
            for (at, answer) in places.into_iter().zip(answers) {
                results[at] = Some(answer);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal("no answer".into()))))
            .collect())
    }

    /// `watcher` leaves the shared subscriptions of `presentities`' `package` (one holder
    /// each; see [`Core::join`]).
    pub(crate) fn leave(
        &self,
        watcher: &Uri,
        package: Package,
        presentities: &[Uri],
    ) -> Result<()> {
        let watcher = Arc::new(watcher.clone());
        let mut by_shard: Vec<Vec<Arc<Uri>>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for p in presentities {
            by_shard[self.shard_for(p)].push(Arc::new(p.clone()));
        }
        for (shard, items) in by_shard.into_iter().enumerate() {
            if !items.is_empty() {
                self.call(shard, |reply| Command::Leave {
                    package,
                    watcher: watcher.clone(),
                    presentities: items,
                    reply,
                })?;
            }
        }
        Ok(())
    }

    /// Extends a subscription; `expires` 0 ends it like [`Core::unsubscribe`]. Returns the
    /// granted expiry in seconds (the request clamped to the configured maximum; 0 when it
    /// ended).
    pub fn refresh_subscription(&self, id: SubscriptionId, expires: u32) -> Result<u32> {
        self.call(self.shard_for_subscription(id), |reply| {
            Command::RefreshSubscription { id, expires, reply }
        })
    }

    /// Ends a subscription; its watcher gets a final `terminated` notification.
    pub fn unsubscribe(&self, id: SubscriptionId) -> Result<()> {
        self.call(self.shard_for_subscription(id), |reply| {
            Command::Unsubscribe { id, reply }
        })
    }

    /// Ends a subscription from the notifier's side with a reason: `Deactivated` (the
    /// watcher may subscribe again at once), `Probation` (later), `Noresource` (the
    /// presentity is gone), `Rejected`, `Giveup` or `Timeout`. The watcher gets a final
    /// notification with that reason.
    pub fn terminate_subscription(
        &self,
        id: SubscriptionId,
        reason: TerminationReason,
    ) -> Result<()> {
        self.call(self.shard_for_subscription(id), |reply| {
            Command::Terminate { id, reason, reply }
        })
    }

    /// Every live subscription of a remote watcher (one with a target), by id: after a
    /// restart, the transport rebuilds its dialogs from these.
    pub fn remote_subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            all.extend(self.call(shard, |reply| Command::RemoteSubscriptions { reply })?);
        }
        all.sort_by_key(|s| s.id);
        Ok(all)
    }

    /// Every live subscription (`presentity` `None`) or those of one presentity, by id, in
    /// any state: an operator's view (`imppd ctl subscriptions`, `pending`). The state is
    /// each shard's at the moment it answered.
    pub fn subscriptions(&self, presentity: Option<&Uri>) -> Result<Vec<SubscriptionInfo>> {
        let mut all = Vec::new();
        match presentity {
            Some(p) => {
                let key = presentity_key(p);
                all.extend(
                    self.call(self.shard_for(p), |reply| Command::Subscriptions {
                        presentity: Some(key),
                        reply,
                    })?,
                );
            }
            None => {
                for shard in 0..self.shards.len() {
                    all.extend(self.call(shard, |reply| Command::Subscriptions {
                        presentity: None,
                        reply,
                    })?);
                }
                all.sort_by_key(|s| s.id);
            }
        }
        Ok(all)
    }

    /// Sends the subscription's watcher a notification with the full current state now (as
    /// RFC 6665 §4.2.1.2 asks after a refresh); no document while it is pending.
    pub fn renotify(&self, id: SubscriptionId) -> Result<()> {
        self.call(self.shard_for_subscription(id), |reply| Command::Renotify {
            id,
            reply,
        })
    }

    /// A snapshot of a live subscription.
    pub fn subscription(&self, id: SubscriptionId) -> Result<SubscriptionInfo> {
        self.call(self.shard_for_subscription(id), |reply| {
            Command::QuerySubscription { id, reply }
        })
    }

    // ----------------------------------------------------------------------------------
    // Authorization
    // ----------------------------------------------------------------------------------

    /// Decides one subscription: `Allow` approves (pending → active with a full
    /// notification), `PoliteBlock` shows the neutral document, `Block` ends it as rejected
    /// (also when it was active: revocation), `Confirm` puts it back to pending.
    pub fn authorize(&self, id: SubscriptionId, action: AuthAction) -> Result<()> {
        self.call(self.shard_for_subscription(id), |reply| {
            Command::Authorize { id, action, reply }
        })
    }

    /// Sends one subscription's watcher to another presence agent, `target`: the
    /// subscription ends with reason `deactivated` (over SIP the watcher subscribes again at
    /// once, RFC 6665 §4.1.3), and the watcher's next subscription to this presentity, made
    /// within [`REDIRECT_MEMORY_MS`], fails with [`Error::Moved`] naming `target` (over SIP,
    /// `302 Moved Temporarily` with it as `Contact`). A decision on this one subscription:
    /// a rule ([`AuthRule::redirect`]) sends every later one.
    pub fn redirect(&self, id: SubscriptionId, target: Uri) -> Result<()> {
        self.call(self.shard_for_subscription(id), |reply| Command::Redirect {
            id,
            target,
            reply,
        })
    }

    /// Adds or replaces a rule (kept in the store); existing subscriptions follow it.
    pub fn set_rule(&self, rule: AuthRule) -> Result<()> {
        rule.check()?;
        let shard = self.shard_for(&rule.presentity);
        self.call(shard, |reply| Command::SetRule { rule, reply })
    }

    /// Removes a rule; returns whether there was one.
    pub fn remove_rule(&self, presentity: &Uri, watcher: &WatcherMatch) -> Result<bool> {
        let (presentity, watcher) = (presentity.clone(), watcher.clone());
        self.call(self.shard_for(&presentity), |reply| Command::RemoveRule {
            presentity,
            watcher,
            reply,
        })
    }

    /// The rules of a presentity.
    pub fn rules(&self, presentity: &Uri) -> Result<Vec<AuthRule>> {
        let presentity = presentity.clone();
        self.call(self.shard_for(&presentity), |reply| Command::Rules {
            presentity,
            reply,
        })
    }

    /// Marks `presentity`, of a domain the engine does not own, as served here: this
    /// engine is its presence agent (a device serving its own address of record; see
    /// [`served`]). Its watchers are decided by this engine's rules alone, strictly (a
    /// watcher no rule names is blocked), and a transport refuses them until the rules are
    /// loaded with [`Core::replace_served_rules`]. Marking again changes nothing.
    ///
    /// Errors: [`Error::InvalidArgument`] for a presentity of an owned domain (served here
    /// anyway, by the engine's own rules and policy).
    pub fn serve_here(&self, presentity: &Uri) -> Result<()> {
        self.check_open()?;
        if self.config.owns(presentity) {
            return Err(Error::InvalidArgument(format!(
                "{presentity} is of a domain this engine owns: it is served here already"
            )));
        }
        self.served.mark(presentity);
        Ok(())
    }

    /// Where `presentity` stands as a presentity served here ([`Core::serve_here`]);
    /// `None` when it is not one.
    pub fn served_here(&self, presentity: &Uri) -> Option<Served> {
        self.served.get(presentity)
    }

    /// Makes `rules` the whole set of rules of `presentity`, a presentity served here (the
    /// rules its own server keeps, as the device learned them): rules of other watchers are
    /// removed, and the presentity is [`Served::Ready`]. The subscriptions it has are
    /// decided again, as for [`Core::set_rule`].
    ///
    /// Errors: [`Error::InvalidArgument`] for a presentity not served here or a rule of
    /// another presentity (nothing changes), [`Error::Storage`], [`Error::Shutdown`].
    pub fn replace_served_rules(&self, presentity: &Uri, rules: Vec<AuthRule>) -> Result<()> {
        if self.served.get(presentity).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{presentity} is not served here (see serve_here)"
            )));
        }
        let key = presentity_key(presentity);
        if let Some(other) = rules.iter().find(|r| presentity_key(&r.presentity) != key) {
            return Err(Error::InvalidArgument(format!(
                "a rule of {} is not a rule of {presentity}",
                other.presentity
            )));
        }
        let keep: std::collections::BTreeSet<_> = rules.iter().map(|r| r.watcher.slot()).collect();
        for old in self.rules(presentity)? {
            if !keep.contains(&old.watcher.slot()) {
                self.remove_rule(presentity, &old.watcher)?;
            }
        }
        for rule in rules {
            self.set_rule(rule)?;
        }
        self.served.ready(presentity);
        Ok(())
    }

    /// Replaces, while the engine runs, the settings of its configuration that an operator
    /// changes without a restart: [`EngineConfig::default_policy`],
    /// [`EngineConfig::same_domain_policy`] and [`EngineConfig::state_limits`]. They apply
    /// to what comes next (a new subscription's authorization, the next message stored or
    /// endpoint logged in); subscriptions already decided stay as they are. What
    /// [`Core::config`] returns keeps the values the engine started with.
    ///
    /// Errors: [`Error::InvalidArgument`] for a limit of 0 (nothing changes),
    /// [`Error::Shutdown`].
    pub fn set_runtime_settings(&self, settings: RuntimeSettings) -> Result<()> {
        settings.state_limits.validate()?;
        config::check_policies(settings.default_policy, settings.same_domain_policy)?;
        for shard in 0..self.shards.len() {
            self.call(shard, |reply| Command::SetPolicies { settings, reply })?;
        }
        Ok(())
    }

    /// What a new subscription of `watcher` to `presentity` (a package other than watcher
    /// information) would be decided now, by the presentity's rules and the policies, with
    /// nothing changed: a server that hands allowed watchers to the presentity's own device
    /// asks before it does (pending, blocked and polite-blocked watchers stay where the
    /// presentity decides them; redirected ones, by a rule or a waiting [`Core::redirect`],
    /// go where the redirect says), and a device serving its own address of record asks
    /// whom its learned rules allow (a watcher they do not name: `block`, see
    /// [`served`]).
    pub fn decision(&self, presentity: &Uri, watcher: &Uri) -> Result<AuthAction> {
        let (presentity, watcher) = (presentity.clone(), watcher.clone());
        self.call(self.shard_for(&presentity), |reply| Command::Decision {
            presentity,
            watcher,
            reply,
        })
    }

    /// Every rule of every presentity, in the order of [`crate::store::Snapshot::rules`]
    /// (a server compares them with its store's after the store changed beside it).
    pub fn all_rules(&self) -> Result<Vec<AuthRule>> {
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            all.extend(self.call(shard, |reply| Command::AllRules { reply })?);
        }
        all.sort_by_cached_key(|r| (presentity_key(&r.presentity), r.watcher.slot()));
        Ok(all)
    }

    // ----------------------------------------------------------------------------------
    // Endpoints and instant messages
    // ----------------------------------------------------------------------------------

    /// Logs endpoint `endpoint` of `user` in, or refreshes its login; returns the granted
    /// expiry in seconds (`expires` `None`: the default; below the minimum is
    /// [`Error::IntervalTooBrief`]; 0 logs out). Messages waiting for the user are delivered
    /// to it, in the order sent. A user outside the owned domains is [`Error::Forbidden`]; a
    /// new endpoint of a user with as many as [`EngineConfig::state_limits`] allows is
    /// [`Error::LimitReached`] (refreshing one always works).
    pub fn login(&self, user: &Uri, endpoint: &str, expires: Option<u32>) -> Result<u32> {
        self.login_at(user, endpoint, None, expires)
    }

    /// [`Core::login`] with the address the endpoint is reached at (a SIP contact).
    pub fn login_at(
        &self,
        user: &Uri,
        endpoint: &str,
        contact: Option<&str>,
        expires: Option<u32>,
    ) -> Result<u32> {
        check_endpoint_id(endpoint)?;
        let user = Arc::new(user.clone());
        let expires = expires.unwrap_or(self.config.endpoint_expiry.default);
        self.call(self.shard_for(&user), |reply| Command::Login {
            user,
            endpoint: endpoint.into(),
            contact: contact.map(Into::into),
            expires,
            reply,
        })
    }

    /// Counts a login refused at [`StateLimits::max_endpoints_per_user`] by a transport
    /// that checked the bound itself before changing anything (a SIP REGISTER adding and
    /// removing several contacts at once is refused whole).
    pub(crate) fn count_endpoint_refusal(&self, user: &Uri) {
        self.counters[self.shard_for(user)]
            .endpoints_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Logs an endpoint out; returns whether it was logged in.
    pub fn logout(&self, user: &Uri, endpoint: &str) -> Result<bool> {
        let (user, endpoint) = (user.clone(), endpoint.to_owned());
        self.call(self.shard_for(&user), |reply| Command::Logout {
            user,
            endpoint,
            reply,
        })
    }

    /// The endpoints of `user` that are logged in.
    pub fn endpoints(&self, user: &Uri) -> Result<Vec<EndpointInfo>> {
        let user = user.clone();
        self.call(self.shard_for(&user), |reply| Command::Endpoints {
            user,
            reply,
        })
    }

    /// Sends an instant message; returns its id at once. What becomes of it arrives as
    /// [`Event::Delivery`] events for the sender: `Delivered` (the recipient's endpoints got
    /// an [`Event::Message`] each), or `Stored` (the recipient is offline; the message is on
    /// disk when this event is queued) and later `Delivered` on the recipient's next login or
    /// `Failed(Expired)`, or `Failed` with a reason. Arguments that are not a message at all
    /// (a malformed content type, an empty endpoint id) are an error and send nothing.
    pub fn send_message(&self, message: OutgoingMessage) -> Result<MessageId> {
        let (shard, letter) = self.letter(message)?;
        let id = MessageId(letter.id);
        self.shards[shard]
            .send(Command::SendMessage(Box::new(letter)))
            .map_err(|_| Error::Shutdown("the engine is shut down".into()))?;
        Ok(id)
    }

    /// Hands a message that came in from another domain (over a transport) to the
    /// application, as one [`Event::Message`] for `message.recipient` with `message.endpoint`
    /// (or an empty endpoint). Nothing is stored: the transport has answered for it. For the
    /// user-agent role, whose users belong to domains the engine does not own. Returns the
    /// id the event carries.
    pub fn receive_message(&self, message: OutgoingMessage) -> Result<MessageId> {
        if message.body.len() > self.config.max_message_size {
            return Err(Error::TooLarge(format!(
                "message of {} bytes; the limit is {}",
                message.body.len(),
                self.config.max_message_size
            )));
        }
        let (shard, letter) = self.letter(message)?;
        let id = MessageId(letter.id);
        self.shards[shard]
            .send(Command::ReceiveMessage(Box::new(letter)))
            .map_err(|_| Error::Shutdown("the engine is shut down".into()))?;
        Ok(id)
    }

    /// Opens the engine's port for a transport (see [`Port`]): from now on the events that
    /// are the transport's (notifications of the subscriptions it made with a target,
    /// messages for the endpoints it logged in with a contact, messages for other domains
    /// when [`PortOptions::remote_messages`] asks) go to the port's own bounded queue, and
    /// copies of the others it asks for. One port per engine; closing or dropping the
    /// [`Port`] gives everything back to the application's queue.
    pub fn open_port(&self, options: PortOptions) -> Result<Port> {
        self.check_open()?;
        self.port.open(options)
    }

    /// A generator of its own for a part of the engine or a transport, split from the
    /// engine's one generator (see [`EngineConfig::random_seed`]).
    pub(crate) fn random(&self) -> random::Random {
        lock(&self.random).split()
    }

    /// A transport's word on a message it relayed (an [`Event::Message`] with a contact,
    /// given back as it came): `taken` when the device answered that it accepted it (SIP:
    /// 2xx), `false` when it refused or failed. The first device that takes it makes it
    /// `delivered` for its sender; when every device refused, or none answered within
    /// [`EngineConfig::handover_timeout`], it is stored for the user's next login.
    pub fn report_handover(&self, message: &Message, taken: bool) -> Result<()> {
        self.check_open()?;
        let shard = shard_of(&presentity_key(&message.recipient), self.shards.len());
        self.shards[shard]
            .send(Command::ReportHandover {
                id: message.id.0,
                endpoint: message.endpoint.to_string(),
                taken,
            })
            .map_err(|_| Error::Shutdown("the engine is shut down".into()))
    }

    /// Tells a remote message's sender what became of it: queues an [`Event::Delivery`]
    /// (counted in the statistics like the engine's own outcomes). For the transport that
    /// took the [`Event::RemoteMessage`].
    pub fn report_delivery(&self, delivery: Delivery) -> Result<()> {
        self.check_open()?;
        let shard = shard_of(&presentity_key(&delivery.sender), self.shards.len());
        self.shards[shard]
            .send(Command::ReportDelivery(delivery))
            .map_err(|_| Error::Shutdown("the engine is shut down".into()))
    }

    /// Checks `message` and makes it a letter with a new id; the shard of its recipient.
    fn letter(&self, message: OutgoingMessage) -> Result<(usize, shard::messaging::Letter)> {
        check_content_type(&message.content_type)?;
        if let Some(endpoint) = &message.endpoint {
            check_endpoint_id(endpoint)?;
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown("the engine is shut down".into()));
        }
        let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        let key = presentity_key(&message.recipient);
        let shard = shard_of(&key, self.shards.len());
        let letter = shard::messaging::Letter {
            id,
            key: key.into(),
            sender: message.sender,
            recipient: message.recipient,
            content_type: message.content_type,
            body: message.body,
            endpoint: message.endpoint.map(Into::into),
            in_reply_to: message.in_reply_to.map(Into::into),
            sent_at: self.config.clock.unix_ms(),
            wire: message.wire,
        };
        Ok((shard, letter))
    }

    // ----------------------------------------------------------------------------------
    // Users
    // ----------------------------------------------------------------------------------

    /// Adds a user to the directory, or replaces its credentials; returns once they are
    /// durable. While the directory has users, messages to anyone else fail as
    /// `unknown-user` (an empty directory means every user of an owned domain exists).
    pub fn set_user(&self, credential: Credential) -> Result<()> {
        self.check_open()?;
        self.config
            .store
            .write(crate::store::Write::SaveCredential(credential.clone()))?;
        self.directory.set(credential);
        Ok(())
    }

    /// Adds a user with a password, or changes the password: only its digests are kept
    /// ([`Credential::new`], realm = the user's domain); returns once they are durable.
    pub fn set_user_password(&self, user: &Uri, password: &str) -> Result<()> {
        if user.user().is_none() {
            return Err(Error::InvalidArgument(format!(
                "{user} has no user part; a user of the directory is user@domain"
            )));
        }
        self.set_user(Credential::new(user.clone(), user.host(), password))
    }

    /// Removes a user from the directory; returns whether it was there.
    pub fn remove_user(&self, user: &Uri) -> Result<bool> {
        self.check_open()?;
        self.config
            .store
            .write(crate::store::Write::DeleteCredential(user.clone()))?;
        Ok(self.directory.remove(user))
    }

    /// A user's credentials, if the directory has the user.
    pub fn user(&self, user: &Uri) -> Option<Credential> {
        self.directory.get(user)
    }

    /// Every user of the directory, by user key.
    pub fn users(&self) -> Vec<Credential> {
        self.directory.all()
    }

    // ----------------------------------------------------------------------------------
    // Resource lists
    // ----------------------------------------------------------------------------------

    /// Adds a resource list, or replaces the list with its URI (by key: scheme and
    /// parameters do not count); returns once it is durable. The list is checked on its own
    /// and against the other lists ([`crate::model::list`]: at most 500 entries, no resource
    /// or reference twice, no cycle through references, at most 8 levels of nesting and
    /// 1000 resources expanded, from it or from any list that reaches it); references to
    /// lists that do not exist yet are allowed. What the engine keeps is the checked list
    /// (packages in order, `presence` when none was named).
    ///
    /// Errors: [`Error::InvalidArgument`] (a rule broken; the message says which),
    /// [`Error::Forbidden`] (the list's URI is not of a domain the engine owns),
    /// [`Error::Storage`], [`Error::Shutdown`]. Refused: nothing changes.
    pub fn set_list(&self, list: ResourceList) -> Result<()> {
        self.check_open()?;
        self.check_list_domain(&list.uri)?;
        self.lists.set(self.config.store.as_ref(), list).map(drop)
    }

    /// Removes the list named `uri`; returns whether there was one, once its removal is
    /// durable. Lists that reference it keep the reference, which expands to nothing until
    /// a list of that URI is set again.
    pub fn remove_list(&self, uri: &Uri) -> Result<bool> {
        self.check_open()?;
        self.lists.remove(self.config.store.as_ref(), uri)
    }

    /// Makes the engine's lists exactly `lists` (checked together, as [`Core::set_list`]
    /// checks one; the ones that differ are stored or deleted), so that a server can follow
    /// its store after lists were changed beside it without passing through a state that
    /// breaks a rule. Refused: nothing changes.
    pub fn replace_lists(&self, lists: Vec<ResourceList>) -> Result<()> {
        self.check_open()?;
        for list in &lists {
            self.check_list_domain(&list.uri)?;
        }
        self.lists.replace(self.config.store.as_ref(), lists)
    }

    /// The list named `uri`, if there is one.
    pub fn list(&self, uri: &Uri) -> Option<ResourceList> {
        self.lists.get(uri)
    }

    /// Every list, by key ([`ResourceList::key`]).
    pub fn lists(&self) -> Vec<ResourceList> {
        self.lists.all()
    }

    /// The resources of the list named `uri`: its entries, references replaced by the
    /// resources of the lists they name, in order, each resource once (the first met, with
    /// its display name), references to missing lists skipped.
    ///
    /// Errors: [`Error::NotFound`] (no list has that URI).
    pub fn expand_list(&self, uri: &Uri) -> Result<Vec<Resource>> {
        self.lists
            .expand(uri)
            .ok_or_else(|| Error::NotFound(format!("there is no list {uri}")))
    }

    fn check_list_domain(&self, uri: &Uri) -> Result<()> {
        if self.config.owns(uri) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "list {uri} is not in a domain this engine owns"
            )))
        }
    }

    /// [`Error::Shutdown`] once the engine is shut down (for calls that read shared state
    /// without asking a shard, which would answer the same).
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown("the engine is shut down".into()));
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------

    /// The next event, waiting up to `timeout` (`None`: forever). `None` when none came or
    /// the engine shut down. Do not poll while a callback is set: the dispatcher consumes.
    pub fn next_event(&self, timeout: Option<Duration>) -> Option<Event> {
        self.queue.pop(timeout)
    }

    /// Up to `max` events at once, oldest first, waiting up to `timeout` for the first one
    /// as [`Core::next_event`] does (it does not wait to fill the batch). Empty when
    /// `next_event` would give `None`, or `max` is 0. Same events, same order as calling
    /// `next_event` repeatedly, but one lock on the queue per batch instead of one per event:
    /// the cheaper way for a polling consumer to keep up with a storm.
    pub fn next_events(&self, max: usize, timeout: Option<Duration>) -> Vec<Event> {
        self.queue.pop_batch(max, timeout)
    }

    /// A file descriptor that is readable while events wait (for select/poll/epoll and
    /// asyncio); never read it, call [`Core::next_event`] or [`Core::next_events`]. It is
    /// armed by the first call (an engine whose descriptor nobody asked for spends no system
    /// call on it); if events wait then, it is readable when this returns.
    pub fn event_fd(&self) -> RawFd {
        self.queue.fd()
    }

    /// Sets (or with `None` removes) the callback that receives every event, in order, on
    /// the engine's dispatcher thread. The callback may call any engine function. A replaced
    /// callback is dropped after its last call returned.
    pub fn set_event_callback(&self, callback: Option<EventCallback>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown("the engine is shut down".into()));
        }
        self.dispatcher.set_callback(callback)
    }

    /// Waits until every shard has handled every earlier call and run every timer due at the
    /// clock's current time, and their events are queued. Tests with a [`ManualClock`] call
    /// it after advancing the clock.
    /// Store writes the shards made are waited for too, and what their completions started
    /// (a stored message's `stored` outcome, its delivery) is done.
    pub fn sync(&self) -> Result<()> {
        for shard in 0..self.shards.len() {
            self.call(shard, |reply| Command::Sync { reply })?;
        }
        self.config.store.flush()?;
        for shard in 0..self.shards.len() {
            self.call(shard, |reply| Command::Sync { reply })?;
        }
        Ok(())
    }

    /// Current counts.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for c in &self.counters {
            s.presentities += c.presentities.load(Ordering::Relaxed);
            s.publications += c.publications.load(Ordering::Relaxed);
            s.subscriptions_pending += c.pending.load(Ordering::Relaxed);
            s.subscriptions_active += c.active.load(Ordering::Relaxed);
            for (sum, counts) in s.subscriptions_by_package.iter_mut().zip(&c.by_package) {
                sum[0] += counts[0].load(Ordering::Relaxed);
                sum[1] += counts[1].load(Ordering::Relaxed);
            }
            s.notifications_sent += c.notifications.load(Ordering::Relaxed);
            s.notifications_throttled += c.throttled.load(Ordering::Relaxed);
            s.endpoints += c.endpoints.load(Ordering::Relaxed);
            s.messages_waiting += c.waiting.load(Ordering::Relaxed);
            s.messages_delivered += c.delivered.load(Ordering::Relaxed);
            s.messages_failed += c.failed.load(Ordering::Relaxed);
            s.messages_refused += c.messages_refused.load(Ordering::Relaxed);
            s.subscriptions_refused += c.subscriptions_refused.load(Ordering::Relaxed);
            s.endpoints_refused += c.endpoints_refused.load(Ordering::Relaxed);
        }
        let q = self.queue.stats();
        s.events_queued = self.queue.len() as u64;
        s.notifications_merged = q.merged;
        s.events_overflowed = q.overflowed;
        s.callback_panics = self.dispatcher.panics();
        s
    }

    /// Stops the engine: refuses new calls, lets the shards finish the calls already made,
    /// joins every thread, and discards events not yet delivered. No callback runs after it
    /// returns. From inside a callback it refuses with [`Error::InCallback`] and tears
    /// nothing down. Calling it again is a no-op.
    pub fn shutdown(&self) -> Result<()> {
        if dispatcher::in_dispatcher_thread() {
            return Err(Error::InCallback(
                "the engine cannot be shut down from inside its own event callback".into(),
            ));
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        for shard in &self.shards {
            let _ = shard.send(Command::Stop);
        }
        for thread in lock(&self.threads).drain(..) {
            let _ = thread.join();
        }
        self.dispatcher.stop()?;
        let undelivered = self.queue.len();
        self.queue.close();
        log::info!(
            "engine stopped: {} workers joined, {undelivered} events left undelivered",
            self.shards.len()
        );
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // List dialogs (the list server's soft state)
    // ----------------------------------------------------------------------------------
    //
    // The list server keeps its dialogs itself; the engine only carries them to and from the
    // store (the list server sits above the engine and reaches the store through it). They
    // are soft state: written behind, and only to a store that keeps soft state.

    /// The list server's dialogs the store held when the engine started, in id order; once:
    /// a later call returns none. Dialogs whose time ran out while the engine was down are
    /// among them: ending them is the list server's (it knows what each one holds).
    pub(crate) fn take_stored_list_dialogs(&self) -> Vec<crate::store::ListDialogRecord> {
        std::mem::take(&mut *lock(&self.stored_list_dialogs))
    }

    /// Stores a dialog of the list server, replacing the one with the same id; written
    /// behind (not waited for).
    pub(crate) fn save_list_dialog(&self, record: crate::store::ListDialogRecord) {
        if self.config.store.keeps_soft_state() {
            self.config
                .store
                .submit(crate::store::Write::SaveListDialog(record), None);
        }
    }

    /// Deletes a dialog of the list server from the store (it ended); written behind.
    pub(crate) fn delete_list_dialog(&self, id: u64) {
        if self.config.store.keeps_soft_state() {
            self.config
                .store
                .submit(crate::store::Write::DeleteListDialog(id), None);
        }
    }
}

/// Checks an endpoint id: 1 to 256 characters, none of them a control character. (Also
/// used by the C API's message options, which check an endpoint when it is set.)
pub(crate) fn check_endpoint_id(endpoint: &str) -> Result<()> {
    if endpoint.is_empty() || endpoint.len() > 256 || endpoint.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "endpoint id '{}' must be 1 to 256 characters without control characters",
            endpoint.escape_debug()
        )));
    }
    Ok(())
}

impl From<Presence> for Document {
    fn from(p: Presence) -> Document {
        Document::Presence(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::pidf::{Basic, Tuple};
    use std::sync::mpsc;

    fn open(entity: &Uri) -> Document {
        let mut p = Presence::new(entity.to_string());
        p.tuples.push(Tuple::new("t", Basic::Open));
        p.into()
    }

    /// The result and the name of the thread `then` ran on.
    type Heard = (Result<String>, String);

    fn then(tx: &mpsc::Sender<Heard>) -> impl FnOnce(Result<String>) + Send + 'static {
        let tx = tx.clone();
        move |result| {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            tx.send((result, thread)).unwrap();
        }
    }

    #[test]
    fn a_publication_change_is_answered_once_from_its_shard_and_after_shutdown_too() {
        let engine = Engine::new(EngineConfig {
            workers: 2,
            ..EngineConfig::default()
        })
        .unwrap();
        let alice: Uri = "sip:alice@example.test".parse().unwrap();
        let (tx, rx) = mpsc::channel();
        let wait = || rx.recv_timeout(Duration::from_secs(30)).unwrap();

        engine.publication_then(
            PublicationChange::Publish {
                presentity: alice.clone(),
                document: open(&alice),
                expires: Some(120),
            },
            then(&tx),
        );
        let (tag, thread) = wait();
        let tag = tag.unwrap();
        assert!(thread.starts_with("impp-shard-"), "ran on {thread}");

        engine.publication_then(
            PublicationChange::Modify {
                etag: tag.clone(),
                document: open(&alice),
                expires: 300,
            },
            then(&tx),
        );
        let tag2 = wait().0.unwrap();
        assert_ne!(tag2, tag);
        // The old tag is gone; a tag of no shard is refused at once, on the caller's thread.
        engine.publication_then(PublicationChange::Remove { etag: tag }, then(&tx));
        assert!(matches!(wait().0, Err(Error::UnknownEntityTag(_))));
        engine.publication_then(
            PublicationChange::Refresh {
                etag: "garbage".into(),
                expires: 60,
            },
            then(&tx),
        );
        let (refused, thread) = wait();
        assert!(matches!(refused, Err(Error::UnknownEntityTag(_))));
        assert_eq!(thread, std::thread::current().name().unwrap_or(""));

        engine.publication_then(PublicationChange::Remove { etag: tag2.clone() }, then(&tx));
        assert_eq!(
            wait().0.unwrap(),
            tag2,
            "a removal answers with the tag removed"
        );
        assert_eq!(engine.stats().publications, 0);

        engine.shutdown().unwrap();
        engine.publication_then(
            PublicationChange::Publish {
                presentity: alice.clone(),
                document: open(&alice),
                expires: None,
            },
            then(&tx),
        );
        assert!(matches!(wait().0, Err(Error::Shutdown(_))));
        assert!(
            rx.try_recv().is_err(),
            "each change is answered exactly once"
        );
    }

    #[test]
    fn a_reply_function_dropped_unheard_hears_of_the_shutdown() {
        let (tx, rx) = mpsc::channel();
        let reply: Reply<String> = Reply::Then(Then::new(then(&tx)));
        drop(reply);
        assert!(matches!(rx.try_recv().unwrap().0, Err(Error::Shutdown(_))));
        let reply: Reply<String> = Reply::Then(Then::new(then(&tx)));
        assert!(reply.send(Ok("x".into())));
        assert_eq!(rx.try_recv().unwrap().0.unwrap(), "x");
        assert!(rx.try_recv().is_err(), "called once, not again on drop");
    }
}
