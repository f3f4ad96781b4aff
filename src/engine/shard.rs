//! One worker thread and the presentities it owns. A shard's state is touched by its thread
//! alone: commands arrive on a channel, replies go back on one-shot channels, events go to
//! the shared queue. Nothing here takes a lock on the hot path.
//!
//! This module is the shard itself: its state, its commands, the thread's loop that
//! dispatches them, its timers and its counters. The work is done by one child module per
//! concept, each with its own `impl Shard` block:
//!
//! | module | what |
//! | --- | --- |
//! | [`publications`] | publish, refresh, modify, remove, expiry; composition |
//! | [`subscriptions`] | subscribe, refresh, unsubscribe, termination; notifications and their throttling |
//! | [`authorization`] | rules (set, remove, list) and the decisions on watchers |
//! | [`watcher_info`] | the watcher log and `presence.winfo` notifications |
//! | [`members`] | members of shared subscriptions (list servers' watchers, [`super::member`]) |
//! | [`watcher_uris`] | one copy of each watcher URI, and the places members name them by |
//! | [`messaging`] | users, their endpoints and mailboxes of instant messages |
//! | [`endpoint_tuples`] | the automatic tuples of logged-in endpoints |
//! | [`recovery`] | taking back the store's share at start-up; writing soft state behind |
#![forbid(unsafe_code)]

pub(super) mod authorization;
mod endpoint_tuples;
mod members;
pub(crate) mod messaging;
mod publications;
mod recovery;
mod subscriptions;
mod watcher_info;
mod watcher_uris;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::authorization::{presentity_key, AuthAction, AuthRule, RuleBook, WatcherMatch};
use super::config::EngineConfig;
use super::directory::Directory;
use super::events::{Event, SubscriptionId, SubscriptionState, TerminationReason};
use super::limits::WatcherTally;
use super::queue::EventQueue;
use super::random::Random;
use super::subscription::{Remote, SubscriptionInfo, Subscriptions};
use super::timers::{Timer, Timers};
use super::watchers::WatcherLog;
use crate::doc::filter::Filter;
use crate::error::Result;
use crate::log;
use crate::model::package::{Document, Package};
use crate::uri::Uri;
use publications::Publication;

/// The target of the shard's log lines, whichever child module writes them (applications
/// filter by it; it was this module's name before the children were split out).
const LOG_TARGET: &str = module_path!();

/// Commands handled after the first one of a wake-up before the events are queued.
const BURST: usize = 255;

/// Where a command's result goes: back to a caller waiting on a one-shot channel, or into a
/// function run on the shard's thread as soon as the result is known, for a caller that
/// need not wait (the SIP publisher answers a PUBLISH from there: its worker does not sit
/// blocked while the shard works, and is not woken again to send the answer).
pub(crate) enum Reply<T> {
    Wait(Sender<Result<T>>),
    Then(Then<T>),
}

/// A function that takes a command's result. Dropped without being called (the command
/// never reached a shard, or the shard stopped first), it is called with
/// [`crate::Error::Shutdown`]: every caller hears back exactly once.
pub(crate) struct Then<T>(Option<Box<dyn FnOnce(Result<T>) + Send>>);

impl<T> Then<T> {
    pub(crate) fn new(f: impl FnOnce(Result<T>) + Send + 'static) -> Then<T> {
        Then(Some(Box::new(f)))
    }

    fn call(mut self, result: Result<T>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl<T> Drop for Then<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(crate::Error::Shutdown(
                "the engine stopped before answering".into(),
            )));
        }
    }
}

impl<T> Reply<T> {
    /// Gives the result; `false` when a waiting caller is gone.
    pub(crate) fn send(self, result: Result<T>) -> bool {
        match self {
            Reply::Wait(tx) => tx.send(result).is_ok(),
            Reply::Then(then) => {
                then.call(result);
                true
            }
        }
    }
}

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
        /// A new expiry in seconds, granted in the same step (`None`: the expiry stays).
        expires: Option<u32>,
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
    /// Watchers join shared subscriptions ([`super::member`]): per presentity, the member's
    /// id and the group's (used when new); one answer each, in order.
    Join {
        package: Package,
        watcher: Arc<Uri>,
        presentities: Vec<(Arc<Uri>, SubscriptionId, SubscriptionId)>,
        reply: Reply<Vec<Result<()>>>,
    },
    /// A watcher leaves shared subscriptions.
    Leave {
        package: Package,
        watcher: Arc<Uri>,
        presentities: Vec<Arc<Uri>>,
        reply: Reply<()>,
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
    Redirect {
        id: SubscriptionId,
        target: Uri,
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
    /// What a new subscription of `watcher` to `presentity` would be decided now.
    Decision {
        presentity: Uri,
        watcher: Uri,
        reply: Reply<AuthAction>,
    },
    /// Every rule of the shard's presentities.
    AllRules {
        reply: Reply<Vec<AuthRule>>,
    },
    /// Replaces the policies for watchers no rule names and the state limits (a reload).
    SetPolicies {
        settings: super::RuntimeSettings,
        reply: Reply<()>,
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
    /// The shard's live subscriptions, all or one presentity's (by its key).
    Subscriptions {
        presentity: Option<String>,
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
    /// Pending and active subscriptions of each package, by [`Package::ALL`] order.
    pub(crate) by_package: [[AtomicU64; 2]; Package::ALL.len()],
    pub(crate) notifications: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) endpoints: AtomicU64,
    /// Messages waiting in mailboxes.
    pub(crate) waiting: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Refusals at the bounds of [`super::limits::StateLimits`].
    pub(crate) messages_refused: AtomicU64,
    pub(crate) subscriptions_refused: AtomicU64,
    pub(crate) endpoints_refused: AtomicU64,
}

/// One package's state of one presentity.
#[derive(Default)]
struct Channel {
    publications: Vec<Publication>,
    /// The composition of the live publications, shared by every watcher that sees it.
    composed: Option<Arc<Document>>,
    subscribers: Vec<SubscriptionId>,
    /// The shared subscription of list servers' watchers ([`super::member`]), if any.
    group: Option<Box<super::member::Group>>,
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
            .all(|c| c.publications.is_empty() && c.subscribers.is_empty() && c.group.is_none())
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
    /// Watcher URIs shared by all the subscriptions and members of one watcher, and the
    /// places members name them by ([`watcher_uris`]).
    watcher_uris: watcher_uris::WatcherUris,
    /// The upper halves of members' numbers, which turn what a member keeps back into its
    /// id ([`super::member::MemberNames`]).
    member_names: super::member::MemberNames,
    rules: RuleBook,
    /// The watchers an application's decision sent elsewhere ([`Shard::redirect`]), until
    /// they subscribe again or the memory runs out.
    redirected: authorization::Redirected,
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
    /// Every watcher's live subscriptions, over every shard (see [`super::limits`]).
    tally: Arc<WatcherTally>,
    /// Presentities of other domains served here (see [`super::served`]).
    served: Arc<super::served::ServedHere>,
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
        tally: Arc<WatcherTally>,
        served: Arc<super::served::ServedHere>,
        random: Random,
    ) -> Shard {
        let mut book = RuleBook::default();
        for rule in rules {
            book.set(rule);
        }
        let soft_state = config.store.keeps_soft_state();
        let workers = config.workers;
        Shard {
            index,
            workers,
            config,
            queue,
            counters,
            presentities: HashMap::new(),
            etags: HashMap::new(),
            subscriptions: Subscriptions::default(),
            watcher_uris: Default::default(),
            member_names: super::member::MemberNames::new(index, workers),
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
            redirected: authorization::Redirected::default(),
            me,
            soft_state,
            directory,
            port,
            tally,
            served,
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
                expires,
                reply,
            } => {
                let result = self.modify_publication(&etag, document, expires);
                self.answer(reply, result);
            }
            Command::ModifyPublications { changes, reply } => {
                let results = changes
                    .into_iter()
                    .map(|(etag, document)| self.modify_publication(&etag, document, None))
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
            Command::Join {
                package,
                watcher,
                presentities,
                reply,
            } => {
                let results = presentities
                    .into_iter()
                    .map(|(presentity, member, group)| {
                        self.join(package, watcher.clone(), presentity, member, group)
                    })
                    .collect();
                self.answer(reply, Ok(results));
            }
            Command::Leave {
                package,
                watcher,
                presentities,
                reply,
            } => {
                for presentity in presentities {
                    self.leave(package, &watcher, &presentity);
                }
                self.answer(reply, Ok(()));
            }
            Command::RefreshSubscription { id, expires, reply } => {
                let _ = reply.send(self.refresh_subscription(id, expires));
            }
            Command::Unsubscribe { id, reply } => {
                let result = self.unsubscribe(id);
                self.answer(reply, result);
            }
            Command::Terminate { id, reason, reply } => {
                let _ = reply.send(self.end_subscription(id, reason));
            }
            Command::QuerySubscription { id, reply } => {
                let _ = reply.send(self.subscription_info(id));
            }
            Command::Authorize { id, action, reply } => {
                let result = self.authorize(id, action);
                self.answer(reply, result);
            }
            Command::Redirect { id, target, reply } => {
                let result = self.redirect(id, target);
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
                let _ = reply.send(Ok(self.list_rules(&presentity)));
            }
            Command::Decision {
                presentity,
                watcher,
                reply,
            } => {
                let _ = reply.send(Ok(self.decision(&presentity, &watcher)));
            }
            Command::AllRules { reply } => {
                let _ = reply.send(Ok(self.rules.rules()));
            }
            Command::SetPolicies { settings, reply } => {
                // Copied on write: the shard's one copy of the configuration, read by
                // everything it does next; what was decided before stays decided.
                let mut config = (*self.config).clone();
                config.default_policy = settings.default_policy;
                config.same_domain_policy = settings.same_domain_policy;
                config.state_limits = settings.state_limits;
                self.config = Arc::new(config);
                let _ = reply.send(Ok(()));
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
                let result = self.renotify(id);
                self.answer(reply, result);
            }
            Command::RemoteSubscriptions { reply } => {
                let _ = reply.send(Ok(self.remote_subscriptions()));
            }
            Command::Subscriptions { presentity, reply } => {
                let _ = reply.send(Ok(self.list_subscriptions(presentity.as_deref())));
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
    // Presentities
    // ----------------------------------------------------------------------------------

    /// The presentity's entry, made (and counted) when it has none: publications and
    /// subscriptions both hang off it.
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

    /// Drops the presentity's entry once it has no publication and no subscriber left.
    fn collect_if_idle(&mut self, key: &str) {
        if self.presentities.get(key).is_some_and(Presentity::is_idle) {
            self.presentities.remove(key);
            self.counters.presentities.fetch_sub(1, Ordering::Relaxed);
        }
    }

    // ----------------------------------------------------------------------------------
    // Counters
    // ----------------------------------------------------------------------------------

    fn count_state(
        &self,
        package: Package,
        old: Option<SubscriptionState>,
        new: Option<SubscriptionState>,
    ) {
        count_state(&self.counters, package, old, new);
    }

    // ----------------------------------------------------------------------------------
    // Timers
    // ----------------------------------------------------------------------------------

    fn run_due_timers(&mut self) {
        let now = self.now();
        while let Some((deadline, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Publication(etag) => self.publication_timer(&etag, deadline),
                Timer::Subscription(id) => self.subscription_timer(id, deadline),
                Timer::Message(id) => self.message_expired(id),
                Timer::Endpoint(key, endpoint) => self.endpoint_timer(&key, &endpoint, deadline),
                Timer::Handover(id) => self.handover_timer(id),
                Timer::Throttle(id) => self.throttle_timer(id, deadline),
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

/// Moves one subscription between the per-state counters.
fn count_state(
    counters: &ShardCounters,
    package: Package,
    old: Option<SubscriptionState>,
    new: Option<SubscriptionState>,
) {
    let p = Package::ALL.iter().position(|&p| p == package).unwrap_or(0);
    let counter = |s: SubscriptionState| match s {
        SubscriptionState::Pending => Some((&counters.pending, &counters.by_package[p][0])),
        SubscriptionState::Active => Some((&counters.active, &counters.by_package[p][1])),
        SubscriptionState::Terminated(_) => None,
    };
    if let Some((c, by)) = old.and_then(counter) {
        c.fetch_sub(1, Ordering::Relaxed);
        by.fetch_sub(1, Ordering::Relaxed);
    }
    if let Some((c, by)) = new.and_then(counter) {
        c.fetch_add(1, Ordering::Relaxed);
        by.fetch_add(1, Ordering::Relaxed);
    }
}
