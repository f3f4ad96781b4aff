//! One worker thread and the presentities it owns. A shard's state is touched by its thread
//! alone: commands arrive on a channel, replies go back on one-shot channels, events go to
//! the shared queue. Nothing here takes a lock on the hot path.
#![forbid(unsafe_code)]

mod endpoint_tuples;
pub(crate) mod messaging;
mod recovery;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::authorization::{presentity_key, AuthAction, AuthRule, RuleBook, WatcherMatch};
use super::compose::{compose, neutral};
use super::config::EngineConfig;
use super::directory::Directory;
use super::events::{Event, Notification, SubscriptionId, SubscriptionState, TerminationReason};
use super::package::{Document, Package};
use super::queue::EventQueue;
use super::random::Random;
use super::subscription::{Remote, Subscription, SubscriptionInfo, Subscriptions, Throttle};
use super::timers::{Timer, Timers};
use super::watchers::WatcherLog;
use crate::doc::filter::Filter;
use crate::doc::winfo::WatcherEvent;
use crate::error::{Error, Result};
use crate::log;
use crate::uri::Uri;

/// Commands handled after the first one of a wake-up before the events are queued.
const BURST: usize = 255;

/// Replies to a command.
pub(crate) type Reply<T> = Sender<Result<T>>;

/// What a shard is asked to do.
pub(crate) enum Command {
    Publish {
        presentity: Arc<Uri>,
        package: Package,
        document: Document,
        expires: u32,
        reply: Reply<String>,
    },
    RefreshPublication {
        etag: String,
        expires: u32,
        reply: Reply<String>,
    },
    ModifyPublication {
        etag: String,
        document: Document,
        reply: Reply<String>,
    },
    RemovePublication {
        etag: String,
        reply: Reply<()>,
    },
    ModifyPublications {
        changes: Vec<(String, Document)>,
        reply: Reply<Vec<Result<String>>>,
    },
    Subscribe {
        request: NewSubscription,
        /// The subscription and its granted expiry (seconds).
        reply: Reply<(SubscriptionId, u32)>,
    },
    RefreshSubscription {
        id: SubscriptionId,
        expires: u32,
        /// The granted expiry (seconds; 0 when it ended).
        reply: Reply<u32>,
    },
    Unsubscribe {
        id: SubscriptionId,
        reply: Reply<()>,
    },
    Terminate {
        id: SubscriptionId,
        reason: TerminationReason,
        reply: Reply<()>,
    },
    QuerySubscription {
        id: SubscriptionId,
        reply: Reply<SubscriptionInfo>,
    },
    Authorize {
        id: SubscriptionId,
        action: AuthAction,
        reply: Reply<()>,
    },
    SetRule {
        rule: AuthRule,
        reply: Reply<()>,
    },
    RemoveRule {
        presentity: Uri,
        watcher: WatcherMatch,
        reply: Reply<bool>,
    },
    Rules {
        presentity: Uri,
        reply: Reply<Vec<AuthRule>>,
    },
    /// Sends an instant message (the recipient's shard); the outcome is an event.
    SendMessage(Box<messaging::Letter>),
    /// A message that came in from another domain for one of the transport's local users.
    ReceiveMessage(Box<messaging::Letter>),
    /// The outcome a transport reports for a remote message.
    ReportDelivery(super::events::Delivery),
    /// A transport's word on a message it relayed to one of the recipient's devices.
    ReportHandover {
        id: u64,
        endpoint: String,
        taken: bool,
    },
    /// The store's answer to a message write.
    MessageStored {
        id: u64,
        result: Result<()>,
    },
    Login {
        user: Arc<Uri>,
        endpoint: Arc<str>,
        contact: Option<Arc<str>>,
        expires: u32,
        reply: Reply<u32>,
    },
    Logout {
        user: Uri,
        endpoint: String,
        reply: Reply<bool>,
    },
    Endpoints {
        user: Uri,
        reply: Reply<Vec<messaging::EndpointInfo>>,
    },
    RemoteSubscriptions {
        reply: Reply<Vec<SubscriptionInfo>>,
    },
    Renotify {
        id: SubscriptionId,
        reply: Reply<()>,
    },
    /// Run what is due, then answer: a barrier for tests and shutdown.
    Sync {
        reply: Reply<()>,
    },
    Stop,
}

/// A subscription as the engine received it, already checked.
pub(crate) struct NewSubscription {
    pub(crate) id: SubscriptionId,
    pub(crate) watcher: Arc<Uri>,
    pub(crate) presentity: Arc<Uri>,
    pub(crate) package: Package,
    pub(crate) expires: u32,
    pub(crate) filter: Option<Filter>,
    pub(crate) min_interval: Duration,
    /// For a remote watcher: where its notifications go (the subscription is kept in the
    /// store).
    pub(crate) remote: Option<Remote>,
}

/// Counters a shard updates and anyone may read.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) presentities: AtomicU64,
    pub(crate) publications: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) endpoints: AtomicU64,
    /// Messages waiting in mailboxes.
    pub(crate) waiting: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
}

struct Publication {
    etag: String,
    document: Document,
    expires_at: u64,
    /// Recency: higher is newer (for composition).
    seq: u64,
    /// Made by the engine for a logged-in endpoint (`endpoint_presence`): composed only when
    /// the presentity has no publication of its own, never stored, no timer of its own (it
    /// lives as long as the endpoint's login).
    automatic: bool,
}

/// The documents to compose: the presentity's own publications, or (when it has none) the
/// automatic ones.
fn composable(publications: &[Publication]) -> Vec<(u64, &Document)> {
    let own = publications.iter().any(|p| !p.automatic);
    publications
        .iter()
        .filter(|p| !own || !p.automatic)
        .map(|p| (p.seq, &p.document))
        .collect()
}

/// One package's state of one presentity.
#[derive(Default)]
struct Channel {
    publications: Vec<Publication>,
    /// The composition of the live publications, shared by every watcher that sees it.
    composed: Option<Arc<Document>>,
    subscribers: Vec<SubscriptionId>,
}

struct Presentity {
    uri: Arc<Uri>,
    channels: HashMap<Package, Channel>,
    watchers: WatcherLog,
}

impl Presentity {
    fn is_idle(&self) -> bool {
        self.channels
            .values()
            .all(|c| c.publications.is_empty() && c.subscribers.is_empty())
    }
}

pub(crate) struct Shard {
    index: usize,
    workers: usize,
    config: Arc<EngineConfig>,
    queue: Arc<EventQueue>,
    counters: Arc<ShardCounters>,
    presentities: HashMap<String, Presentity>,
    etags: HashMap<String, (String, Package)>,
    /// Every notification looks its subscription up.
    subscriptions: Subscriptions,
    /// Watcher URIs shared by all the subscriptions of one watcher (a watcher usually
    /// watches many presentities; equal URIs are one watcher). An entry whose URI nobody
    /// else holds any more is swept out now and then.
    watcher_uris: HashSet<Arc<Uri>>,
    /// The size of `watcher_uris` after its last sweep.
    watcher_uris_swept: usize,
    rules: RuleBook,
    timers: Timers,
    next_seq: u64,
    next_etag: u64,
    random: Random,
    /// Events produced by the command being handled, pushed in one batch.
    outbox: Vec<Event>,
    /// Notifications made since the last flush (added to the shared counter there).
    notified: u64,
    /// Users with endpoints online or messages waiting, by user key.
    users: HashMap<String, messaging::User>,
    /// The user key of each message waiting in a mailbox.
    waiting: HashMap<u64, String>,
    /// Messages handed to a transport's devices, by id, until one takes them.
    handovers: HashMap<u64, messaging::Handover>,
    /// This shard's own command channel (the store answers through it).
    me: Sender<Command>,
    /// Whether the store wants soft state ([`crate::store::Store::keeps_soft_state`]).
    soft_state: bool,
    directory: Arc<Directory>,
    /// What a transport set on the engine (event tap, remote delivery).
    pub(crate) port: Arc<super::port::PortSlot>,
}

/// The shard a presentity lives on.
pub(crate) fn shard_of(key: &str, workers: usize) -> usize {
    // FNV-1a: stable across runs and platforms, so a future store can rely on it.
    (text_hash(key) % workers as u64) as usize
}

/// FNV-1a of a string.
fn text_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shard an entity tag was issued by (its prefix), if it looks like one of ours.
pub(crate) fn shard_of_etag(etag: &str) -> Option<usize> {
    let (shard, _) = etag.split_once('-')?;
    usize::from_str_radix(shard, 16).ok()
}

impl Shard {
    // Each argument is a separate shared part the engine hands every shard.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        config: Arc<EngineConfig>,
        queue: Arc<EventQueue>,
        counters: Arc<ShardCounters>,
        rules: Vec<AuthRule>,
        me: Sender<Command>,
        directory: Arc<Directory>,
        port: Arc<super::port::PortSlot>,
        random: Random,
    ) -> Shard {
        let mut book = RuleBook::default();
        for rule in rules {
            book.set(rule);
        }
        let soft_state = config.store.keeps_soft_state();
        Shard {
            index,
            workers: config.workers,
            config,
            queue,
            counters,
            presentities: HashMap::new(),
            etags: HashMap::new(),
            subscriptions: Subscriptions::default(),
            watcher_uris: HashSet::new(),
            watcher_uris_swept: 0,
            rules: book,
            timers: Timers::default(),
            next_seq: 0,
            next_etag: 0,
            random,
            outbox: Vec::new(),
            notified: 0,
            users: HashMap::new(),
            waiting: HashMap::new(),
            handovers: HashMap::new(),
            me,
            soft_state,
            directory,
            port,
        }
    }

    fn now(&self) -> u64 {
        self.config.clock.now_ms()
    }

    /// The thread's loop: commands and timers until `Stop`.
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        // What the restore produced, and what expired while the engine was down.
        self.run_due_timers();
        self.flush();
        loop {
            let command = match self.timers.next_deadline() {
                None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(deadline) => {
                    let wait = deadline.saturating_sub(self.now());
                    commands.recv_timeout(Duration::from_millis(wait))
                }
            };
            match command {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => {
                    self.handle(command);
                    // Commands that need no answer (messages, the store's answers) come in
                    // bursts: handle what already waits before queueing the events, so a
                    // burst costs one push to the event queue, not one per command. (A
                    // command with a caller waiting flushes before it answers anyway.)
                    let mut stop = false;
                    for _ in 0..BURST {
                        match commands.try_recv() {
                            Ok(Command::Stop) => {
                                stop = true;
                                break;
                            }
                            Ok(command) => self.handle(command),
                            Err(_) => break,
                        }
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.run_due_timers();
            self.flush();
        }
        self.flush();
    }

    /// Queues the events the command produced, then answers the caller: a watcher is told
    /// no later than the caller learns the outcome.
    fn answer<T>(&mut self, reply: Reply<T>, result: Result<T>) {
        self.flush();
        let _ = reply.send(result);
    }

    fn flush(&mut self) {
        if self.notified > 0 {
            let n = std::mem::take(&mut self.notified);
            self.counters.notifications.fetch_add(n, Ordering::Relaxed);
        }
        if !self.outbox.is_empty() {
            let mut events = std::mem::take(&mut self.outbox);
            self.port.route(&mut events);
            // Refused only after the queue closed at shutdown: nobody is left to deliver to.
            if let Err(refused) = self.queue.push_batch(events) {
                log::warn!(
                    "shard {}: the event queue is closed; {} events dropped",
                    self.index,
                    refused.len()
                );
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Publish {
                presentity,
                package,
                document,
                expires,
                reply,
            } => {
                let result = self.publish(presentity, package, document, expires);
                self.answer(reply, result);
            }
            Command::RefreshPublication {
                etag,
                expires,
                reply,
            } => {
                let result = self.refresh_publication(&etag, expires);
                self.answer(reply, result);
            }
            Command::ModifyPublication {
                etag,
                document,
                reply,
            } => {
                let result = self.modify_publication(&etag, document);
                self.answer(reply, result);
            }
            Command::ModifyPublications { changes, reply } => {
                let results = changes
                    .into_iter()
                    .map(|(etag, document)| self.modify_publication(&etag, document))
                    .collect();
                self.answer(reply, Ok(results));
            }
            Command::RemovePublication { etag, reply } => {
                let result = self.remove_publication(&etag);
                self.answer(reply, result);
            }
            Command::Subscribe { request, reply } => {
                let result = self.subscribe(request);
                self.answer(reply, result);
            }
            Command::RefreshSubscription { id, expires, reply } => {
                let _ = reply.send(self.refresh_subscription(id, expires));
            }
            Command::Unsubscribe { id, reply } => {
                let result = self.unsubscribe(id);
                self.answer(reply, result);
            }
            Command::Terminate { id, reason, reply } => {
                let result = if self.subscriptions.contains_key(&id) {
                    self.terminate(id, Some(reason));
                    Ok(())
                } else {
                    Err(unknown_subscription(id))
                };
                let _ = reply.send(result);
            }
            Command::QuerySubscription { id, reply } => {
                let now = self.now();
                let _ = reply.send(
                    self.subscriptions
                        .get(&id)
                        .map(|s| s.info(now))
                        .ok_or_else(|| unknown_subscription(id)),
                );
            }
            Command::Authorize { id, action, reply } => {
                let result = self.authorize(id, action);
                self.answer(reply, result);
            }
            Command::SetRule { rule, reply } => {
                let result = self.set_rule(rule);
                self.answer(reply, result);
            }
            Command::RemoveRule {
                presentity,
                watcher,
                reply,
            } => {
                let result = self.remove_rule(&presentity, &watcher);
                self.answer(reply, result);
            }
            Command::Rules { presentity, reply } => {
                let _ = reply.send(Ok(self.rules.rules_for(&presentity)));
            }
            Command::SendMessage(letter) => self.send_message(*letter),
            Command::ReceiveMessage(letter) => self.receive_message(*letter),
            Command::ReportDelivery(delivery) => self.report_delivery(delivery),
            Command::ReportHandover {
                id,
                endpoint,
                taken,
            } => self.report_handover(id, &endpoint, taken),
            Command::MessageStored { id, result } => self.message_stored(id, result),
            Command::Login {
                user,
                endpoint,
                contact,
                expires,
                reply,
            } => {
                let result = self.login(user, endpoint, contact, expires);
                self.answer(reply, result);
            }
            Command::Logout {
                user,
                endpoint,
                reply,
            } => {
                let result = self.logout(&user, &endpoint, false);
                self.answer(reply, Ok(result));
            }
            Command::Renotify { id, reply } => {
                let result = if self.subscriptions.contains_key(&id) {
                    self.notify(id, true);
                    Ok(())
                } else {
                    Err(unknown_subscription(id))
                };
                self.answer(reply, result);
            }
            Command::RemoteSubscriptions { reply } => {
                let _ = reply.send(Ok(self.remote_subscriptions()));
            }
            Command::Endpoints { user, reply } => {
                let _ = reply.send(Ok(self.endpoints(&user)));
            }
            Command::Sync { reply } => {
                self.run_due_timers();
                self.flush();
                let _ = reply.send(Ok(()));
            }
            Command::Stop => {}
        }
    }

    // ----------------------------------------------------------------------------------
    // Publications
    // ----------------------------------------------------------------------------------

    fn new_etag(&mut self) -> String {
        self.next_etag += 1;
        // The shard prefix routes later requests; the counter keeps tags unique within the
        // shard; the random part keeps them from being guessed.
        format!(
            "{:x}-{:x}{:08x}",
            self.index,
            self.next_etag,
            self.random.next_u64() as u32
        )
    }

    /// The shard's shared copy of `watcher` when one written the same way is known (else
    /// `watcher` becomes the shared copy).
    fn intern_watcher(&mut self, watcher: Arc<Uri>) -> Arc<Uri> {
        if self.watcher_uris.len() > 2 * self.watcher_uris_swept + 1024 {
            self.watcher_uris.retain(|uri| Arc::strong_count(uri) > 1);
            self.watcher_uris_swept = self.watcher_uris.len();
        }
        if let Some(known) = self.watcher_uris.get(&*watcher) {
            return known.clone();
        }
        self.watcher_uris.insert(watcher.clone());
        watcher
    }

    fn presentity_entry(&mut self, uri: &Arc<Uri>) -> &mut Presentity {
        let key = presentity_key(uri);
        let counters = &self.counters;
        self.presentities.entry(key).or_insert_with(|| {
            counters.presentities.fetch_add(1, Ordering::Relaxed);
            Presentity {
                uri: uri.clone(),
                channels: HashMap::new(),
                watchers: WatcherLog::default(),
            }
        })
    }

    fn publish(
        &mut self,
        presentity: Arc<Uri>,
        package: Package,
        document: Document,
        expires: u32,
    ) -> Result<String> {
        if !package.is_publishable() || document.package() != package {
            return Err(Error::InvalidArgument(format!(
                "a {} document cannot be published as {package}",
                document.package()
            )));
        }
        if expires == 0 {
            return Err(Error::InvalidArgument(
                "a new publication needs an expiry above 0 (0 removes a publication)".into(),
            ));
        }
        let expires = self
            .config
            .publication_expiry
            .grant(Some(expires), "publication")?;
        let etag = self.new_etag();
        let now = self.now();
        self.next_seq += 1;
        let seq = self.next_seq;
        let expires_at = now + u64::from(expires) * 1000;
        let key = self.add_publication(
            &presentity,
            package,
            Publication {
                etag: etag.clone(),
                document,
                expires_at,
                seq,
                automatic: false,
            },
        );
        self.persist_publication(&etag, None);
        self.recompose_and_notify(&key, package);
        Ok(etag)
    }

    /// Adds a publication to its presentity's channel, indexes its tag and (unless it is
    /// automatic: it lives as long as its endpoint) schedules its expiry; returns the
    /// presentity key. Composition and notification are the caller's.
    fn add_publication(
        &mut self,
        presentity: &Arc<Uri>,
        package: Package,
        publication: Publication,
    ) -> String {
        let key = presentity_key(presentity);
        let (etag, expires_at, automatic) = (
            publication.etag.clone(),
            publication.expires_at,
            publication.automatic,
        );
        self.presentity_entry(presentity)
            .channels
            .entry(package)
            .or_default()
            .publications
            .push(publication);
        self.etags.insert(etag.clone(), (key.clone(), package));
        if !automatic {
            self.timers.schedule(expires_at, Timer::Publication(etag));
        }
        self.counters.publications.fetch_add(1, Ordering::Relaxed);
        key
    }

    /// Finds a live publication by entity tag: (presentity key, package, index).
    fn find_publication(&self, etag: &str) -> Result<(String, Package, usize)> {
        let unknown = || {
            Error::UnknownEntityTag(format!(
                "no live publication has entity tag '{etag}' (it expired, was removed, or never existed)"
            ))
        };
        let (key, package) = self.etags.get(etag).ok_or_else(unknown)?;
        let index = self
            .presentities
            .get(key)
            .and_then(|p| p.channels.get(package))
            .and_then(|c| c.publications.iter().position(|p| p.etag == etag))
            .ok_or_else(unknown)?;
        Ok((key.clone(), *package, index))
    }

    /// Gives the publication a new entity tag (RFC 3903: every successful refresh or
    /// modification gets a new one) and returns it.
    fn retag(&mut self, key: &str, package: Package, index: usize) -> String {
        let etag = self.new_etag();
        let publication = self.publication_mut(key, package, index);
        let old = std::mem::replace(&mut publication.etag, etag.clone());
        let expires_at = publication.expires_at;
        self.etags.remove(&old);
        self.etags.insert(etag.clone(), (key.to_owned(), package));
        self.timers
            .schedule(expires_at, Timer::Publication(etag.clone()));
        self.persist_publication(&etag, Some(old));
        etag
    }

    fn publication_mut(&mut self, key: &str, package: Package, index: usize) -> &mut Publication {
        &mut self
            .presentities
            .get_mut(key)
            .and_then(|p| p.channels.get_mut(&package))
            .expect("publication located before")
            .publications[index]
    }

    fn refresh_publication(&mut self, etag: &str, expires: u32) -> Result<String> {
        let (key, package, index) = self.find_publication(etag)?;
        if expires == 0 {
            self.withdraw(&key, package, index);
            self.recompose_and_notify(&key, package);
            return Ok(String::new());
        }
        let expires = self
            .config
            .publication_expiry
            .grant(Some(expires), "publication")?;
        let expires_at = self.now() + u64::from(expires) * 1000;
        self.publication_mut(&key, package, index).expires_at = expires_at;
        Ok(self.retag(&key, package, index))
    }

    fn modify_publication(&mut self, etag: &str, document: Document) -> Result<String> {
        let (key, package, index) = self.find_publication(etag)?;
        if document.package() != package {
            return Err(Error::InvalidArgument(format!(
                "publication '{etag}' is {package}; a {} document cannot replace it",
                document.package()
            )));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let publication = self.publication_mut(&key, package, index);
        publication.document = document;
        publication.seq = seq;
        let new_tag = self.retag(&key, package, index);
        self.recompose_and_notify(&key, package);
        Ok(new_tag)
    }

    fn remove_publication(&mut self, etag: &str) -> Result<()> {
        let (key, package, index) = self.find_publication(etag)?;
        self.withdraw(&key, package, index);
        self.recompose_and_notify(&key, package);
        Ok(())
    }

    fn withdraw(&mut self, key: &str, package: Package, index: usize) -> Publication {
        let channel = self
            .presentities
            .get_mut(key)
            .and_then(|p| p.channels.get_mut(&package))
            .expect("publication located before");
        let publication = channel.publications.remove(index);
        self.etags.remove(&publication.etag);
        self.forget_publication(&publication.etag, publication.automatic);
        self.counters.publications.fetch_sub(1, Ordering::Relaxed);
        publication
    }

    /// Composes the package's live publications and tells every subscriber.
    fn recompose_and_notify(&mut self, key: &str, package: Package) {
        let Some(p) = self.presentities.get_mut(key) else {
            return;
        };
        let uri = p.uri.clone();
        let channel = p.channels.entry(package).or_default();
        let docs = composable(&channel.publications);
        let composed = Arc::new(compose(package, &uri, &docs));
        channel.composed = Some(composed.clone());
        let subscribers = channel.subscribers.clone();
        for id in subscribers {
            self.notify_with(id, false, Some(&composed));
        }
        self.collect_if_idle(key);
    }

    fn composed(&mut self, key: &str, package: Package) -> Arc<Document> {
        let p = self
            .presentities
            .get_mut(key)
            .expect("presentity of a subscription");
        let uri = p.uri.clone();
        let channel = p.channels.entry(package).or_default();
        if channel.composed.is_none() {
            let docs = composable(&channel.publications);
            channel.composed = Some(Arc::new(compose(package, &uri, &docs)));
        }
        channel.composed.clone().expect("composed above")
    }

    fn collect_if_idle(&mut self, key: &str) {
        if self.presentities.get(key).is_some_and(Presentity::is_idle) {
            self.presentities.remove(key);
            self.counters.presentities.fetch_sub(1, Ordering::Relaxed);
        }
    }

    // ----------------------------------------------------------------------------------
    // Subscriptions
    // ----------------------------------------------------------------------------------

    fn subscribe(&mut self, request: NewSubscription) -> Result<(SubscriptionId, u32)> {
        let NewSubscription {
            id,
            watcher,
            presentity,
            package,
            expires,
            filter,
            min_interval,
            remote,
        } = request;
        let key = presentity_key(&presentity);
        let fetch = expires == 0;
        let expires = if fetch {
            0
        } else {
            self.config
                .subscription_expiry
                .grant(Some(expires), "subscription")?
        };
        let action = if package == Package::PresenceWinfo {
            let own = presentity_key(&watcher) == key;
            let admin = self
                .config
                .winfo_admins
                .iter()
                .any(|a| presentity_key(a) == presentity_key(&watcher));
            if !own && !admin {
                return Err(Error::Forbidden(format!(
                    "{watcher} may not watch the watchers of {presentity} (only the presentity itself or a configured administrator may)"
                )));
            }
            AuthAction::Allow
        } else {
            self.rules
                .decide(&presentity, &watcher, self.config.default_policy)
        };
        log::debug!(
            "subscription {id}: {watcher} to {presentity} ({package}) authorized: {action}"
        );
        let now = self.now();
        let expires_at = now + u64::from(expires) * 1000;
        let state = match action {
            AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
            AuthAction::Confirm => SubscriptionState::Pending,
            AuthAction::Block => SubscriptionState::Terminated(Some(TerminationReason::Rejected)),
        };
        // The watchers of a presentity share its URI when they name it the same way: one
        // allocation per presentity instead of one per subscription.
        let known = &self.presentity_entry(&presentity).uri;
        let presentity = if known.to_string() == presentity.to_string() {
            known.clone()
        } else {
            presentity
        };
        // Likewise a watcher's subscriptions share its URI.
        let watcher = self.intern_watcher(watcher);
        let sub = Subscription::new(
            id,
            watcher.clone(),
            presentity.clone(),
            package,
            state,
            action,
            expires_at,
            now,
            filter,
            min_interval,
            remote,
        );
        self.presentity_entry(&presentity)
            .channels
            .entry(package)
            .or_default()
            .subscribers
            .push(id);
        self.count_state(None, Some(state));
        self.subscriptions.insert(id, sub);
        if !fetch {
            self.timers.schedule(expires_at, Timer::Subscription(id));
        }
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: id,
            watcher: watcher.clone(),
            presentity: presentity.clone(),
            package,
            state,
        });
        if package != Package::PresenceWinfo {
            let event = if action == AuthAction::Block {
                WatcherEvent::Rejected
            } else {
                WatcherEvent::Subscribe
            };
            self.log_watcher(id, event);
        }
        if action == AuthAction::Confirm {
            self.outbox.push(Event::AuthorizationRequested {
                subscription: id,
                watcher,
                presentity,
                package,
            });
        }
        self.notify(id, true);
        if state.is_terminated() {
            self.drop_subscription(id);
        } else if fetch {
            self.terminate(id, Some(TerminationReason::Timeout));
        } else {
            self.persist_subscription(id);
        }
        Ok((id, if fetch { 0 } else { expires }))
    }

    fn refresh_subscription(&mut self, id: SubscriptionId, expires: u32) -> Result<u32> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        if expires == 0 {
            return self.unsubscribe(id).map(|()| 0);
        }
        let expires = self
            .config
            .subscription_expiry
            .grant(Some(expires), "subscription")?;
        let expires_at = self.now() + u64::from(expires) * 1000;
        let sub = self.subscriptions.get_mut(&id).expect("checked above");
        sub.expires_at = expires_at;
        self.timers.schedule(expires_at, Timer::Subscription(id));
        self.persist_subscription(id);
        Ok(expires)
    }

    fn unsubscribe(&mut self, id: SubscriptionId) -> Result<()> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        self.terminate(id, None);
        Ok(())
    }

    /// Ends a subscription: final notification, watcher-info entry, removal.
    fn terminate(&mut self, id: SubscriptionId, reason: Option<TerminationReason>) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        let old = sub.state;
        let state = SubscriptionState::Terminated(reason);
        sub.state = state;
        count_state(&self.counters, Some(old), Some(state));
        let (watcher, presentity, package) =
            (sub.watcher.clone(), sub.presentity.clone(), sub.package);
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: id,
            watcher,
            presentity,
            package,
            state,
        });
        if package != Package::PresenceWinfo {
            let event = match reason {
                Some(TerminationReason::Deactivated) => WatcherEvent::Deactivated,
                Some(TerminationReason::Probation) => WatcherEvent::Probation,
                Some(TerminationReason::Rejected) => WatcherEvent::Rejected,
                Some(TerminationReason::Giveup) => WatcherEvent::Giveup,
                Some(TerminationReason::Noresource) => WatcherEvent::Noresource,
                Some(TerminationReason::Timeout) | None => WatcherEvent::Timeout,
            };
            self.log_watcher(id, event);
        }
        self.notify(id, true);
        self.drop_subscription(id);
    }

    fn drop_subscription(&mut self, id: SubscriptionId) {
        let Some(sub) = self.subscriptions.remove(&id) else {
            return;
        };
        if sub.target().is_some() && self.soft_state {
            self.config
                .store
                .submit(crate::store::Write::DeleteSubscription(id.0), None);
        }
        self.count_state(Some(sub.state), None);
        let key = presentity_key(&sub.presentity);
        if let Some(p) = self.presentities.get_mut(&key) {
            if let Some(c) = p.channels.get_mut(&sub.package) {
                c.subscribers.retain(|s| *s != id);
            }
            if sub.package != Package::PresenceWinfo {
                p.watchers.forget(id);
            }
        }
        self.collect_if_idle(&key);
    }

    fn count_state(&self, old: Option<SubscriptionState>, new: Option<SubscriptionState>) {
        count_state(&self.counters, old, new);
    }

    /// Queues a notification for subscription `id` with what its watcher may see now.
    /// `full` forces one (state changes); otherwise filters' triggers and the minimum
    /// interval may hold it back.
    fn notify(&mut self, id: SubscriptionId, full: bool) {
        self.notify_with(id, full, None);
    }

    /// [`Shard::notify`], given the channel's current composition when the caller has it in
    /// hand (a publication changed): one notification per watcher then costs no presentity
    /// key (an allocated string) and no presentity or channel lookup.
    fn notify_with(&mut self, id: SubscriptionId, full: bool, composed: Option<&Arc<Document>>) {
        let Some(sub) = self.subscriptions.get(&id) else {
            return;
        };
        let (package, state, action) = (sub.package, sub.state, sub.action);
        if !full && state == SubscriptionState::Pending {
            // A pending watcher sees no state, so a change of state has nothing to tell it.
            return;
        }
        let document: Option<Arc<Document>> = match state {
            SubscriptionState::Active => Some(match (package, action) {
                (Package::PresenceWinfo, _) => {
                    let key = presentity_key(&sub.presentity);
                    self.watcher_info(&key, id, full)
                }
                (_, AuthAction::PoliteBlock) => Arc::new(neutral(package, &sub.presentity)),
                _ => match composed {
                    Some(document) => document.clone(),
                    None => {
                        let key = presentity_key(&sub.presentity);
                        self.composed(&key, package)
                    }
                },
            }),
            _ => None,
        };
        // One lookup for the common case; the fields used below are disjoint from
        // `subscriptions`, so they are borrowed alongside it.
        let sub = self.subscriptions.get_mut(&id).expect("looked up above");
        // Only a subscription with a minimum interval reads the clock (a clock read per
        // notification showed in profiles).
        let now = if sub.uses_clock() {
            self.config.clock.now_ms()
        } else {
            0
        };
        let Some(document) = sub.shape(document, full) else {
            return; // a filter's trigger says this change is not worth telling
        };
        if !full && !state.is_terminated() {
            match sub.throttle(now) {
                Throttle::Send => {}
                Throttle::HoldUntil(at) => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    self.timers.schedule(at, Timer::Throttle(id));
                    return;
                }
                Throttle::Held => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        sub.notified(now);
        let (watcher, presentity) = (sub.watcher.clone(), sub.presentity.clone());
        let target = sub.target().cloned();
        let full_state = match (&document, package, full) {
            (Some(_), Package::PresenceWinfo, false) => {
                let version = sub.winfo_version().saturating_sub(1);
                let key = presentity_key(&presentity);
                Some(self.watcher_info_full(&key, version))
            }
            _ => None,
        };
        self.notified += 1;
        log::trace!("subscription {id}: notification queued ({state:?})");
        self.outbox.push(Event::Notification(Notification {
            subscription: id,
            watcher,
            presentity,
            package,
            state,
            document,
            full_state,
            target,
        }));
    }

    // ----------------------------------------------------------------------------------
    // Authorization
    // ----------------------------------------------------------------------------------

    fn authorize(&mut self, id: SubscriptionId, action: AuthAction) -> Result<()> {
        let sub = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| unknown_subscription(id))?;
        if sub.package == Package::PresenceWinfo {
            return Err(Error::InvalidArgument(format!(
                "subscription {id} watches watcher information, which needs no authorization"
            )));
        }
        self.apply_decision(id, action);
        Ok(())
    }

    /// Moves a subscription to what `action` says: approve (pending → active with a full
    /// notification), polite-block (active, neutral document), block/revoke (terminated,
    /// rejected), confirm (back to pending: the watcher sees nothing more).
    fn apply_decision(&mut self, id: SubscriptionId, action: AuthAction) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        if sub.action == action && sub.state != SubscriptionState::Pending {
            return;
        }
        log::debug!(
            "subscription {id}: authorization decided: {action} (was {})",
            sub.action
        );
        let old_state = sub.state;
        sub.action = action;
        let state = match action {
            AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
            AuthAction::Confirm => SubscriptionState::Pending,
            AuthAction::Block => {
                self.terminate(id, Some(TerminationReason::Rejected));
                return;
            }
        };
        if state == old_state && action == AuthAction::Confirm {
            return;
        }
        sub.state = state;
        count_state(&self.counters, Some(old_state), Some(state));
        let (watcher, presentity, package) =
            (sub.watcher.clone(), sub.presentity.clone(), sub.package);
        self.persist_subscription(id);
        if old_state != state {
            self.outbox.push(Event::SubscriptionStateChanged {
                subscription: id,
                watcher,
                presentity,
                package,
                state,
            });
            match state {
                SubscriptionState::Active => self.log_watcher(id, WatcherEvent::Approved),
                SubscriptionState::Pending => {
                    // Back to waiting for a decision: ask again.
                    let sub = &self.subscriptions[&id];
                    self.outbox.push(Event::AuthorizationRequested {
                        subscription: id,
                        watcher: sub.watcher.clone(),
                        presentity: sub.presentity.clone(),
                        package: sub.package,
                    });
                }
                SubscriptionState::Terminated(_) => {}
            }
        }
        self.notify(id, true);
    }

    fn set_rule(&mut self, rule: AuthRule) -> Result<()> {
        self.config.store.save_rule(&rule)?;
        let presentity = rule.presentity.clone();
        self.rules.set(rule);
        self.reevaluate(&presentity);
        Ok(())
    }

    fn remove_rule(&mut self, presentity: &Uri, watcher: &WatcherMatch) -> Result<bool> {
        self.config.store.delete_rule(presentity, watcher)?;
        let removed = self.rules.remove(presentity, watcher);
        if removed {
            self.reevaluate(presentity);
        }
        Ok(removed)
    }

    /// Applies changed rules to the presentity's existing subscriptions: a decision can be
    /// given later and changed later.
    fn reevaluate(&mut self, presentity: &Uri) {
        let key = presentity_key(presentity);
        let ids: Vec<SubscriptionId> = self
            .presentities
            .get(&key)
            .map(|p| {
                p.channels
                    .iter()
                    .filter(|(package, _)| **package != Package::PresenceWinfo)
                    .flat_map(|(_, c)| c.subscribers.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let Some(sub) = self.subscriptions.get(&id) else {
                continue;
            };
            let action =
                self.rules
                    .decide(&sub.presentity, &sub.watcher, self.config.default_policy);
            // A pending subscription stays pending until someone decides; a rule that
            // still says confirm does not re-ask.
            if action != sub.action {
                self.apply_decision(id, action);
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Watcher information
    // ----------------------------------------------------------------------------------

    /// Records a watcher event of a (non-winfo) subscription and tells the presentity's
    /// watcher-info subscribers.
    fn log_watcher(&mut self, id: SubscriptionId, event: WatcherEvent) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        let key = presentity_key(&sub.presentity);
        let Some(p) = self.presentities.get_mut(&key) else {
            return;
        };
        let winfo_subscribers = p
            .channels
            .get(&Package::PresenceWinfo)
            .map(|c| c.subscribers.clone())
            .unwrap_or_default();
        p.watchers.record(sub, event, !winfo_subscribers.is_empty());
        for w in &winfo_subscribers {
            self.notify(*w, false);
        }
        // Changes every winfo subscriber was told are needed no more (one that was told
        // nothing yet gets a full document first).
        let told = winfo_subscribers
            .iter()
            .filter_map(|w| self.subscriptions.get(w))
            .filter(|s| s.winfo_version() > 0)
            .map(|s| s.winfo_seen())
            .min();
        if let Some(p) = self.presentities.get_mut(&key) {
            p.watchers.trim(told);
        }
    }

    /// The watcher-info document for winfo subscription `id`: full the first time (or when
    /// `full`), otherwise the changes since its last notification. Advances the
    /// subscription's version and what it has been told.
    fn watcher_info(&mut self, key: &str, id: SubscriptionId, full: bool) -> Arc<Document> {
        let now = self.now();
        let sub = self.subscriptions.get(&id).expect("winfo subscription");
        let p = self
            .presentities
            .get(key)
            .expect("presentity of a subscription");
        let first = sub.winfo_version() == 0;
        let since = (!full && !first).then_some(sub.winfo_seen());
        let watchers = watchers_of(&self.subscriptions, p);
        let doc = p
            .watchers
            .document(&p.uri, sub.winfo_version(), since, now, &watchers);
        let last = p.watchers.last_change();
        self.subscriptions
            .get_mut(&id)
            .expect("winfo subscription")
            .winfo_advance(last);
        Arc::new(Document::Winfo(doc))
    }

    /// The full watcher-info document at `version`, without side effects.
    fn watcher_info_full(&self, key: &str, version: u32) -> Arc<Document> {
        let p = &self.presentities[key];
        let watchers = watchers_of(&self.subscriptions, p);
        Arc::new(Document::Winfo(p.watchers.document(
            &p.uri,
            version,
            None,
            self.now(),
            &watchers,
        )))
    }

    // ----------------------------------------------------------------------------------
    // Timers
    // ----------------------------------------------------------------------------------

    fn run_due_timers(&mut self) {
        let now = self.now();
        while let Some((deadline, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Publication(etag) => {
                    let Ok((key, package, index)) = self.find_publication(&etag) else {
                        continue; // refreshed (new tag) or removed since
                    };
                    let expires_at = self.publication_mut(&key, package, index).expires_at;
                    if expires_at != deadline {
                        continue;
                    }
                    let publication = self.withdraw(&key, package, index);
                    let presentity = self.presentities[&key].uri.clone();
                    log::debug!(
                        "publication {} of {presentity} ({package}) expired",
                        publication.etag
                    );
                    self.outbox.push(Event::PublicationExpired {
                        presentity,
                        package,
                        etag: publication.etag,
                    });
                    self.recompose_and_notify(&key, package);
                }
                Timer::Subscription(id) => {
                    if self
                        .subscriptions
                        .get(&id)
                        .is_some_and(|s| s.expires_at == deadline)
                    {
                        let pending = self.subscriptions[&id].state == SubscriptionState::Pending;
                        // A watcher still waiting for a decision when its subscription runs
                        // out gave up on it (RFC 3857 "giveup").
                        let reason = if pending {
                            TerminationReason::Giveup
                        } else {
                            TerminationReason::Timeout
                        };
                        let sub = &self.subscriptions[&id];
                        log::debug!(
                            "subscription {id}: {} to {} ({}) expired ({})",
                            sub.watcher,
                            sub.presentity,
                            sub.package,
                            if pending {
                                "still pending: giveup"
                            } else {
                                "timeout"
                            }
                        );
                        self.terminate(id, Some(reason));
                    }
                }
                Timer::Message(id) => self.message_expired(id),
                Timer::Endpoint(key, endpoint) => self.endpoint_timer(&key, &endpoint, deadline),
                Timer::Handover(id) => self.handover_timer(id),
                Timer::Throttle(id) => {
                    if self
                        .subscriptions
                        .get(&id)
                        .is_some_and(|s| s.held_until() == Some(deadline))
                    {
                        // The held changes go out as one notification of the latest state;
                        // forced, because the filter's triggers already passed them.
                        self.notify(id, true);
                    }
                }
            }
        }
    }

    /// The shard's number (for routing and diagnostics).
    #[allow(dead_code)]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Worker count the shard was built for.
    #[allow(dead_code)]
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }
}

/// The (non-winfo) subscriptions to `p`, in subscription order within a package, packages
/// in the order of their first subscription.
fn watchers_of<'a>(subscriptions: &'a Subscriptions, p: &Presentity) -> Vec<&'a Subscription> {
    let mut channels: Vec<Vec<&Subscription>> = p
        .channels
        .iter()
        .filter(|(package, _)| **package != Package::PresenceWinfo)
        .map(|(_, c)| {
            c.subscribers
                .iter()
                .filter_map(|id| subscriptions.get(id))
                .collect::<Vec<_>>()
        })
        .filter(|subs| !subs.is_empty())
        .collect();
    channels.sort_by_key(|subs| subs[0].id);
    channels.into_iter().flatten().collect()
}

fn unknown_subscription(id: SubscriptionId) -> Error {
    Error::NotFound(format!("no subscription {id} (it ended or never existed)"))
}

/// Moves one subscription between the per-state counters.
fn count_state(
    counters: &ShardCounters,
    old: Option<SubscriptionState>,
    new: Option<SubscriptionState>,
) {
    let counter = |s: SubscriptionState| match s {
        SubscriptionState::Pending => Some(&counters.pending),
        SubscriptionState::Active => Some(&counters.active),
        SubscriptionState::Terminated(_) => None,
    };
    if let Some(c) = old.and_then(counter) {
        c.fetch_sub(1, Ordering::Relaxed);
    }
    if let Some(c) = new.and_then(counter) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
