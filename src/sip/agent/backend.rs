//! Back-end subscriptions (RFC 6665 subscriber side): one SUBSCRIBE dialog per remote
//! (presentity, package) with local watchers, towards the next hop of the presentity's
//! domain.
//!
//! - Where a new dialog goes is asked of [`Hops`] when it is made: the account's
//!   server, else the route of the presentity's domain, an address or a name (`dns`: the
//!   domain's own records) resolved by RFC 3263 without waiting (a name not cached is looked
//!   up on the resolver thread, which sends the SUBSCRIBE when the answer is in). The
//!   dialog stays with that target while it lives (its refreshes, its fetches and its end go
//!   there, to the notifier's Contact as Request-URI, RFC 3261 §12.2); the next dialog asks
//!   again, so it follows the records once their TTL ends.
//! - A SUBSCRIBE not answered, one that could not be sent, or one answered `503` leaves that
//!   target out for a while (its `Retry-After`, else 30 s: [`Hops::unreachable`]); a
//!   dialog still being made goes to the name's next target at once (RFC 3263 §4.3), an
//!   established one is made again after the back-off below, at a target still listed.
//! - Created with the first local watcher (an engine subscription that is not terminated),
//!   ended (`Expires: 0`) with the last one.
//! - Refreshed in its dialog before it expires (see [`super::refresh_at`]).
//! - A failure (`481`, a timeout, an error answer, or a NOTIFY saying `terminated` with
//!   `deactivated`, `timeout` or `probation`) starts a new dialog after a back-off
//!   ([`super::backoff`]). `rejected` ends the local subscriptions of the watcher the dialog
//!   was made for (the remote rules are per watcher) and a new dialog is made in the name of
//!   another watcher; `noresource` and `giveup` end every local watcher's subscription with
//!   the same reason.
//! - Each NOTIFY is answered `200` and mirrored into the engine as the presentity's
//!   publication: published on the first document, modified after, removed when the remote
//!   side sends no document (pending) or ends the dialog.
//!
//! # Who shares a dialog
//!
//! The remote domain's rules are per watcher, and a shared dialog shows every local watcher
//! what it shows the one it was made for (its owner). So a watcher shares it only once the
//! remote domain showed it the same:
//!
//! - The engine leaves the last word on watchers of other domains' presentities to this role
//!   ([`crate::engine::PortOptions::subscription_events`]): such a subscription is pending
//!   and an [`Event::AuthorizationRequested`] that the application does not see comes here,
//!   except for the first watcher of a presentity that has nothing to show yet, which is
//!   let through and becomes the owner. A local rule for the watcher may restrict it (block,
//!   polite-block; `confirm` asks the application as for an owned presentity), never allow
//!   more. A presentity without a route follows the local default (`confirm`: it stays
//!   pending; nothing would be shown anyway).
//! - The owner is allowed at once: the dialog tells it exactly what the remote domain tells
//!   it (refused: `rejected` ends it, see above).
//! - Any other watcher is asked about with a fetch in its name (`Expires: 0`, RFC 6665
//!   §4.4.3), through the same route, and waits pending. The fetch's NOTIFY decides: the same
//!   document as the shared dialog's last one (a document that looks like the package's
//!   neutral one never counts: a polite-blocked watcher would share the real state once it
//!   changed) — it shares the dialog, remembered as verified for this back-end; `rejected` —
//!   its subscriptions end as rejected; no document while the shared dialog has none either —
//!   it sees the neutral document (polite-block: active, revealing nothing) and is asked again
//!   when the shared dialog shows one; anything else (pending, another document, an error
//!   answer, no answer in [`PROBE_MS`]) — a dialog of its own (a [`Key`] naming the
//!   watcher). A fetch answered before the shared dialog's first NOTIFY waits for it.
//! - A dialog of its own mirrors nothing (the others would see it): its NOTIFYs decide its
//!   watcher's local subscriptions — pending stays pending, active with the shared
//!   dialog's document allows it, any other document or none gives the neutral document,
//!   `rejected` ends it. It lasts as long as the watcher watches.
//! - A new dialog (after a failure, or after the owner was refused) is made in the owner's
//!   name while it watches, else in a verified watcher's; a watcher never asked about that
//!   becomes the owner is allowed and the verified ones are forgotten.
//! - A watcher restored after a restart was allowed before: it is taken as verified.
//!
//! Residual risk: a remote domain that changes its rules for a verified watcher later is not
//! asked again (not at the watcher's refreshes either) until the watcher subscribes anew;
//! a watcher with a dialog of its own follows such changes. Cost: at most one fetch per
//! joining watcher (two when nothing was shown at the first), short transactions, and the
//! back-end dialogs stay one per presentity for watchers the remote domain treats alike.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use std::sync::{Arc, Mutex, Weak};

use super::account::check_list_package;
use super::hops::Hops;
use super::{account_digest, account_route, backoff, refresh_at, Account, AgentCounters};
use crate::engine::{Event, TerminationReason};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::{Document, Package};
use crate::model::rule::{AuthAction, WatcherMatch};
use crate::sip::digest_client::{DigestClient, Retry};
use crate::sip::dns::{Resolution, ResolveError};
use crate::sip::header::Contacts;
use crate::sip::message::SipMessage;
use crate::sip::route::NextHop;
use crate::sip::stack::{lock, Reply, Request, Stack, Waiting};
use crate::uri::Uri;

/// How long a dialog nobody watches any more is remembered, so that its last NOTIFYs are
/// answered `200` rather than `481` and a late `200` to its SUBSCRIBE still ends it.
const CLOSING_MS: u64 = 32_000;

/// How long the answer to a fetch about a joining watcher is awaited (a transaction's
/// timeout, plus the NOTIFY that follows its `200`).
const PROBE_MS: u64 = 32_000;

/// A back-end subscription's identity: the presentity (its key), the package, and the
/// account whose proxy and credentials it uses (`None`: the domain's route).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    presentity: String,
    package: Package,
    account: Option<usize>,
    /// A list subscription (RFC 4662): the presentity is a resource list at the account's
    /// server, and each resource's state is mirrored.
    list: bool,
    /// A dialog of one watcher alone (its key): the remote domain does not show it what it
    /// shows the shared dialog's watchers (or did not say). Its NOTIFYs are not mirrored;
    /// they decide the watcher's local subscriptions.
    watcher: Option<String>,
}

impl Key {
    /// The shared back-end of the same presentity and package (of an own dialog's key).
    fn shared(&self) -> Key {
        Key {
            watcher: None,
            ..self.clone()
        }
    }
}

/// The subscriber's side of a dialog.
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    local_tag: String,
    /// The notifier's tag, once its answer or first NOTIFY came.
    remote_tag: Option<String>,
    /// Our identity (From URI).
    from: String,
    /// The Request-URI of in-dialog requests (the notifier's Contact once known).
    remote_target: String,
    /// CSeq of our last SUBSCRIBE.
    cseq: u32,
    /// CSeq of the last NOTIFY accepted.
    remote_cseq: u32,
    /// A list subscription's dialog (`Supported: eventlist`, the list's `Accept`).
    list: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A SUBSCRIBE is due at this clock time (a new dialog when there is none).
    Due(u64),
    /// A SUBSCRIBE is on its way.
    Sent,
    /// A new dialog waits for its route's name to be resolved.
    Resolving,
    /// Subscribed; refreshed at this clock time.
    Active(u64),
}

struct Backend {
    presentity: Uri,
    package: Package,
    /// The local subscriptions served, with their watcher.
    watchers: BTreeMap<SubscriptionId, Uri>,
    /// Where the current dialog and its fetches go (else the last dialog's target; `None`
    /// until the first is chosen). Changed only when a new dialog is made.
    hop: Option<NextHop>,
    /// Where the next new dialog goes, when chosen already (the next target after a
    /// failure, or a lookup's answer); else it is asked for then.
    next: Option<NextHop>,
    /// The other targets of the name the current dialog's target came from, not tried yet.
    rest: Vec<NextHop>,
    dialog: Option<Dialog>,
    phase: Phase,
    /// The entity tag of the mirrored publication in the local engine.
    etag: Option<String>,
    /// Consecutive failures (for the back-off).
    failures: u32,
    /// Expiry asked for (seconds); raised by a `423`'s Min-Expires.
    expires: u32,
    /// The account's credentials, for a back-end of an account.
    auth: Option<DigestClient>,
    /// Watcher identities (keys) the notifier rejected: not used as the From of a new
    /// dialog, and their local subscriptions end as rejected.
    refused: HashSet<String>,
    /// For a list subscription: the resources whose state is mirrored, by key, with their
    /// URI and the entity tag of their publication in the local engine.
    mirrored: BTreeMap<String, (Uri, String)>,
    /// The document of the current dialog's last NOTIFY (`None`: none, or none yet), which
    /// a joining watcher's fetch is compared with.
    document: Option<Document>,
    /// Whether the current dialog had a NOTIFY (its `document` is what it says).
    notified: bool,
    /// The watcher (key) in whose name the dialogs are made while it watches.
    owner: Option<String>,
    /// Watchers (keys) the remote domain showed what it showed the owner: they share the
    /// dialog.
    verified: HashSet<String>,
    /// Watchers (keys) being asked about (a fetch in flight), with the fetch's Call-ID
    /// (empty: waiting for the first target to be chosen).
    probing: HashMap<String, String>,
    /// Watchers (keys) asked about while neither they nor the owner were shown a document
    /// ([`Verdict::Unsure`]): asked again when the shared dialog shows one.
    unsure: HashSet<String>,
    /// An own dialog's last word for its watcher (`None`: nothing yet; pending).
    decision: Option<AuthAction>,
}

impl Backend {
    fn new(presentity: Uri, package: Package, now: u64, expires: u32) -> Backend {
        Backend {
            presentity,
            package,
            watchers: BTreeMap::new(),
            hop: None,
            next: None,
            rest: Vec::new(),
            dialog: None,
            phase: Phase::Due(now),
            etag: None,
            failures: 0,
            expires,
            auth: None,
            refused: HashSet::new(),
            mirrored: BTreeMap::new(),
            document: None,
            notified: false,
            owner: None,
            verified: HashSet::new(),
            probing: HashMap::new(),
            unsure: HashSet::new(),
            decision: None,
        }
    }

    /// The local subscriptions of watcher `wkey` (a key).
    fn ids_of(&self, wkey: &str) -> Vec<SubscriptionId> {
        self.watchers
            .iter()
            .filter(|(_, w)| presentity_key(w) == wkey)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Removes every mirrored publication (the presentity's, and a list's resources').
    fn clear_mirror(&mut self, engine: &crate::engine::Core) {
        if let Some(etag) = self.etag.take() {
            let _ = engine.remove_publication(&etag);
        }
        for (_, (_, etag)) in std::mem::take(&mut self.mirrored) {
            let _ = engine.remove_publication(&etag);
        }
    }
}

/// A fetch (RFC 6665 §4.4.3) asking the remote domain what it shows one watcher, before
/// that watcher shares a dialog made in another watcher's name.
struct Probe {
    /// The shared back-end the watcher would join.
    key: Key,
    /// The watcher asked about (its key).
    watcher: String,
    local_tag: String,
    /// Until when the answer is awaited (then the watcher gets a dialog of its own); once
    /// decided, until when its late NOTIFYs are still answered `200`.
    until: u64,
    /// What the remote domain said, once it said it.
    verdict: Option<Verdict>,
    /// What the fetch's NOTIFY showed (a document or none), while the shared dialog has not
    /// said its own yet.
    waiting: Option<Option<Document>>,
}

/// How a local subscription came to the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joined {
    /// New and pending: decided when the engine asks ([`Backends::event`]).
    Pending,
    /// New and let through by the engine already.
    Active,
    /// Restored after a restart, as it was then.
    Restored,
}

/// What watcher `wkey` of back-end `key` (`b`) may see now, as far as the remote domain said
/// (`None`: being asked about; it waits).
fn standing(key: &Key, b: &Backend, wkey: &str) -> Option<AuthAction> {
    if key.account.is_some() || key.list {
        Some(AuthAction::Allow)
    } else if key.watcher.is_some() {
        b.decision
    } else if b.owner.as_deref() == Some(wkey) || b.verified.contains(wkey) {
        Some(AuthAction::Allow)
    } else if b.unsure.contains(wkey) {
        Some(AuthAction::PoliteBlock)
    } else {
        None
    }
}

/// What a fetch tells of a watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Shown what the shared dialog's watcher is shown: it shares the dialog.
    Alike,
    /// Refused (`terminated;reason=rejected`): its local subscriptions end as rejected.
    Rejected,
    /// No document, as the shared dialog shows none: nothing tells a watcher shown nothing
    /// yet from one the remote domain keeps pending. It sees the neutral document (active,
    /// revealing nothing) and is asked again when the shared dialog shows a document.
    Unsure,
    /// Anything else (pending, another document, an error answer, no answer): a dialog of
    /// its own.
    Own,
}

/// A dialog ended locally whose notifier may still send or answer.
struct Closing {
    dialog: Dialog,
    hop: NextHop,
    until: u64,
}

/// A back-end subscription's next timed step, ordered soonest first in a max-heap.
struct Wake(u64, Key);

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.cmp(&self.0)
    }
}

/// What a back-end's client transaction is for.
#[derive(Debug, Clone)]
enum BackendTx {
    /// A SUBSCRIBE of the back-end subscription `key`, in the dialog with `call_id`, sent
    /// with credentials or not.
    Subscribe {
        key: Key,
        call_id: String,
        with_auth: bool,
    },
    /// A SUBSCRIBE with `Expires: 0` ending a dialog nobody watches any more.
    Unsubscribe,
    /// A fetch about a joining watcher (see [`Probe`]).
    Probe { call_id: String },
}

/// The federation role: the back-end subscriptions and what they are made with.
pub(crate) struct Backends {
    me: Weak<Backends>,
    stack: Arc<Stack>,
    engine: crate::engine::EngineHandle,
    /// Whether local watchers of remote presentities are served here at all.
    federate: bool,
    /// Expiry asked for in back-end SUBSCRIBEs (seconds).
    backend_expires: u32,
    /// The accounts: a watcher that is one goes through its proxy and credentials.
    accounts: Arc<[Account]>,
    /// Where the accounts' requests and the other domains' go.
    hops: Arc<Hops>,
    table: Mutex<BackendTable>,
    counters: Arc<AgentCounters>,
}

/// What federation is set up with (see the node's configuration).
pub(crate) struct FederationConfig {
    /// Whether local watchers of remote presentities are served here at all.
    pub(crate) federate: bool,
    /// Expiry asked for in back-end SUBSCRIBEs (seconds).
    pub(crate) backend_expires: u32,
}

/// The outcome of a back-end's request goes back to the role.
struct BackendWaiter {
    role: Weak<Backends>,
    tx: BackendTx,
}

impl Waiting for BackendWaiter {
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.counters.answered();
            role.response(self.tx, status, response);
        }
    }
}

/// The back-end subscriptions.
#[derive(Default)]
pub(crate) struct BackendTable {
    by_key: HashMap<Key, Backend>,
    by_local: HashMap<SubscriptionId, Key>,
    by_call_id: HashMap<String, Key>,
    closing: HashMap<String, Closing>,
    /// Fetches about joining watchers, by Call-ID.
    probes: HashMap<String, Probe>,
    /// When each back-end has something to do, so that the timer thread (every 20 ms) looks
    /// only at what is due rather than at every back-end. An entry whose back-end changed
    /// its plan since is skipped when it comes up.
    wakes: BinaryHeap<Wake>,
}

impl BackendTable {
    /// Records the timed step of back-end `key` (after its phase was set).
    fn schedule(&mut self, key: &Key) {
        let at = match self.by_key.get(key).map(|b| b.phase) {
            Some(Phase::Due(at)) | Some(Phase::Active(at)) if at != u64::MAX => at,
            _ => return,
        };
        self.wakes.push(Wake(at, key.clone()));
    }

    /// (back-end subscriptions, local watchers).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.by_key.len() as u64, self.by_local.len() as u64)
    }
}

/// What to do after the table's lock is released.
enum After {
    Nothing,
    Terminate(Vec<SubscriptionId>, TerminationReason),
}

impl Backends {
    /// The role, for the stack and engine given, with the configuration it needs.
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: crate::engine::EngineHandle,
        config: FederationConfig,
        accounts: Arc<[Account]>,
        hops: Arc<Hops>,
        counters: Arc<AgentCounters>,
    ) -> Arc<Backends> {
        Arc::new_cyclic(|me| Backends {
            me: me.clone(),
            stack,
            engine,
            federate: config.federate,
            backend_expires: config.backend_expires,
            accounts,
            hops,
            table: Mutex::new(BackendTable::default()),
            counters,
        })
    }

    fn engine(&self) -> Result<Arc<crate::engine::Core>> {
        self.engine.get()
    }

    /// Sends a request of a back-end in a new client transaction (counted until answered).
    fn send_request(&self, branch: String, bytes: Vec<u8>, hop: NextHop, tx: BackendTx) {
        self.counters.sent();
        let waiter = Box::new(BackendWaiter {
            role: self.me.clone(),
            tx,
        });
        self.stack
            .send_request(branch, bytes, hop.proto, hop.addr, waiter);
    }

    /// (back-end subscriptions, local watchers).
    pub(crate) fn counts(&self) -> (u64, u64) {
        lock(&self.table).counts()
    }

    /// Where the back-end subscription of `watcher` to `presentity` goes, if it is one, and
    /// through which account (`Some(None)`: the domain's route): federation on, a domain the
    /// engine does not own (nor a presentity served here), a publishable package, and a
    /// route (the watcher's account, else the domain's route, an address or a name).
    fn backend_route(
        &self,
        watcher: &Uri,
        presentity: &Uri,
        package: Package,
    ) -> Option<Option<usize>> {
        if !self.federate || !package.is_publishable() {
            return None;
        }
        let engine = self.engine().ok()?;
        // A presentity served here (a serving account's own address of record) is composed
        // here: mirroring its server's view of it back would loop, as for an owned one.
        if engine.config().owns(presentity) || engine.served_here(presentity).is_some() {
            return None;
        }
        if let Some((i, _)) = account_route(&self.accounts, &self.hops, watcher) {
            // An account watching itself sees what it publishes from here: mirroring the
            // registrar's view of it back would loop into the uplink publication.
            if presentity_key(watcher) == presentity_key(presentity) {
                return None;
            }
            return Some(Some(i));
        }
        self.hops.routed(presentity.host()).then_some(None)
    }

    /// Checks the arguments of a list subscription: account `account` exists, `package` has
    /// documents to mirror, and `list` is not of a domain the engine owns (its own lists are
    /// served here, not subscribed to).
    fn check_list(&self, account: usize, list: &Uri, package: Package) -> Result<()> {
        if account >= self.accounts.len() {
            return Err(Error::InvalidArgument(format!(
                "no account {account} (there are {})",
                self.accounts.len()
            )));
        }
        check_list_package(package)?;
        check_list_domain(self.engine()?.config(), list)
    }

    /// Subscribes account `account` to the resource list `list` (RFC 4662) for `package`,
    /// through the account's proxy and with its credentials; each resource's state is
    /// mirrored into the engine as that resource's publication until
    /// [`Backends::unsubscribe_list`]. Subscribing again to the same list is a no-op.
    pub(crate) fn subscribe_list(
        &self,
        account: usize,
        list: &Uri,
        package: Package,
    ) -> Result<()> {
        self.check_list(account, list, package)?;
        let mut table = lock(&self.table);
        if let Some(key) = self.add_list(&mut table, account, list, package) {
            self.send_subscribe(&mut table, &key);
            table.schedule(&key);
        }
        Ok(())
    }

    /// Subscribes every account to the lists it declares ([`Account::lists`], checked when
    /// the server started): due at once, sent by the timer thread.
    pub(crate) fn start_lists(&self) {
        let mut table = lock(&self.table);
        for (i, account) in self.accounts.iter().enumerate() {
            for l in &account.lists {
                if let Some(key) = self.add_list(&mut table, i, &l.uri, l.package) {
                    table.schedule(&key);
                }
            }
        }
    }

    /// A new list back-end, due now; `None` when the account holds it already.
    fn add_list(
        &self,
        table: &mut BackendTable,
        account: usize,
        list: &Uri,
        package: Package,
    ) -> Option<Key> {
        let key = Key {
            presentity: presentity_key(list),
            package,
            account: Some(account),
            list: true,
            watcher: None,
        };
        if table.by_key.contains_key(&key) {
            return None;
        }
        let mut backend = Backend::new(
            list.clone(),
            package,
            self.stack.now(),
            self.backend_expires,
        );
        backend.auth = account_digest(&self.accounts, account, self.stack.random_u64());
        table.by_key.insert(key.clone(), backend);
        Some(key)
    }

    /// Ends account `account`'s subscription to `list` for `package`: the dialog ends
    /// (`Expires: 0`) and the mirrored states are removed. `Ok(false)` when there was none;
    /// refused as [`Backends::subscribe_list`] refuses its arguments.
    pub(crate) fn unsubscribe_list(
        &self,
        account: usize,
        list: &Uri,
        package: Package,
    ) -> Result<bool> {
        self.check_list(account, list, package)?;
        let key = Key {
            presentity: presentity_key(list),
            package,
            account: Some(account),
            list: true,
            watcher: None,
        };
        let mut table = lock(&self.table);
        if !table.by_key.contains_key(&key) {
            return Ok(false);
        }
        self.end_backend(&mut table, &key);
        Ok(true)
    }

    /// A subscription of a remote watcher restored from the store after a restart: if it is a
    /// local watcher of a remote presentity, its back-end subscription is made again.
    pub(crate) fn restored(&self, sub: &crate::engine::SubscriptionInfo) {
        if !sub.state.is_terminated() {
            let state = if sub.state == crate::engine::SubscriptionState::Pending {
                Joined::Pending
            } else {
                Joined::Restored
            };
            self.local_watcher(sub.id, &sub.watcher, &sub.presentity, sub.package, state);
        }
    }

    /// Whether a SUBSCRIBE from `watcher` to the non-owned `presentity` is served here with a
    /// back-end subscription (rather than refused or forwarded): the watcher must be a user
    /// of an owned domain.
    pub(crate) fn federates(&self, watcher: &Uri, presentity: &Uri, package: Package) -> bool {
        let Ok(engine) = self.engine() else {
            return false;
        };
        engine.config().owns(watcher) && self.backend_route(watcher, presentity, package).is_some()
    }

    /// The agent's part of an engine event; `true` when it is consumed (the application does
    /// not see it).
    pub(crate) fn event(&self, event: &Event) -> bool {
        match event {
            Event::SubscriptionStateChanged {
                subscription,
                watcher,
                presentity,
                package,
                state,
            } => {
                if state.is_terminated() {
                    self.local_watcher_gone(*subscription);
                } else {
                    let joined = if *state == crate::engine::SubscriptionState::Pending {
                        Joined::Pending
                    } else {
                        Joined::Active
                    };
                    self.local_watcher(*subscription, watcher, presentity, *package, joined);
                }
                false
            }
            Event::AuthorizationRequested {
                subscription,
                watcher,
                presentity,
                package,
            } => self.authorization_requested(*subscription, watcher, presentity, *package),
            _ => false,
        }
    }

    /// A local subscription to a remote presentity awaits a decision (the engine leaves
    /// the last word on watchers of other domains to this role, see
    /// [`crate::engine::PortOptions::subscription_events`]); `true` when decided (or being
    /// decided) here. Without a local rule, the remote domain decides: the watcher the
    /// back-end dialog is made for, a watcher the remote domain showed what it shows that one,
    /// and a watcher of an account's own dialog are allowed; one being asked about waits for
    /// the answer, one with a dialog of its own follows what that dialog says.
    fn authorization_requested(
        &self,
        id: SubscriptionId,
        watcher: &Uri,
        presentity: &Uri,
        package: Package,
    ) -> bool {
        let Ok(engine) = self.engine() else {
            return false;
        };
        // A local rule for this watcher may restrict a remote presentity's watchers (`confirm`
        // leaves the decision to the application, as for an owned presentity); without one,
        // or with one that allows, the presentity's own domain decides.
        let Ok(rules) = engine.rules(presentity) else {
            return false;
        };
        let ruled = rules
            .iter()
            .find(|r| matches!(&r.watcher, WatcherMatch::Watcher(_)) && r.watcher.matches(watcher))
            .or_else(|| rules.iter().find(|r| r.watcher.matches(watcher)))
            .map(|r| r.action);
        let served = self.backend_route(watcher, presentity, package).is_some();
        let decision = match ruled {
            Some(AuthAction::Confirm) => return false,
            Some(action) if action != AuthAction::Allow => Some(action),
            // Not served here: what the engine would have decided for an owned presentity.
            _ if !served => {
                match ruled.unwrap_or(engine.config().policy_for(presentity, watcher)) {
                    AuthAction::Confirm => return false,
                    action => Some(action),
                }
            }
            _ => {
                let table = lock(&self.table);
                let Some(key) = table.by_local.get(&id) else {
                    return false;
                };
                let Some(b) = table.by_key.get(key) else {
                    return false;
                };
                standing(key, b, &presentity_key(watcher))
            }
        };
        if let Some(action) = decision {
            if let Err(e) = engine.authorize(id, action) {
                log::debug!("subscription {id}: cannot decide: {e}");
            }
        }
        true
    }

    fn local_watcher(
        &self,
        id: SubscriptionId,
        watcher: &Uri,
        presentity: &Uri,
        package: Package,
        joined: Joined,
    ) {
        let Some(account) = self.backend_route(watcher, presentity, package) else {
            return;
        };
        let mut key = Key {
            presentity: presentity_key(presentity),
            package,
            account,
            list: false,
            watcher: None,
        };
        let wkey = presentity_key(watcher);
        let mut table = lock(&self.table);
        if table.by_local.contains_key(&id) {
            return; // a state change of a watcher already counted (pending → active)
        }
        if account.is_none() {
            let own = Key {
                watcher: Some(wkey.clone()),
                ..key.clone()
            };
            if table.by_key.contains_key(&own) {
                // The watcher has a dialog of its own already: this subscription joins it.
                key = own;
            }
        }
        table.by_local.insert(id, key.clone());
        let now = self.stack.now();
        let expires = self.backend_expires;
        let auth = account.and_then(|i| account_digest(&self.accounts, i, self.stack.random_u64()));
        let backend = table.by_key.entry(key.clone()).or_insert_with(|| {
            log::debug!("federation: first local watcher of {presentity} ({package})");
            let mut b = Backend::new(presentity.clone(), package, now, expires);
            b.auth = auth;
            b.owner = Some(wkey.clone());
            b
        });
        if account.is_none() && backend.refused.contains(&wkey) {
            // The remote domain refused this watcher already.
            table.by_local.remove(&id);
            drop(table);
            if let Ok(engine) = self.engine() {
                let _ = engine.terminate_subscription(id, TerminationReason::Rejected);
            }
            return;
        }
        backend.watchers.insert(id, watcher.clone());
        if backend.owner.is_none() {
            backend.owner = Some(wkey.clone());
        }
        if joined == Joined::Restored && key.watcher.is_none() {
            // Allowed before (a subscription restored after a restart): trusted as the remote
            // domain allowed it then.
            backend.verified.insert(wkey.clone());
        }
        // Let through by the engine (nothing to show, see `PortOptions::subscription_events`)
        // while a back-end in another watcher's name is still here: held back like the
        // others until the remote domain said.
        let held = match joined {
            Joined::Active => Some(standing(&key, backend, &wkey).unwrap_or(AuthAction::Confirm))
                .filter(|a| *a != AuthAction::Allow),
            _ => None,
        };
        let ask = account.is_none()
            && key.watcher.is_none()
            && backend.owner.as_deref() != Some(wkey.as_str())
            && !backend.verified.contains(&wkey)
            && !backend.unsure.contains(&wkey)
            && !backend.probing.contains_key(&wkey);
        // New, or refused for the watchers before (they are being ended): this one asks
        // again for itself.
        let start = matches!(backend.phase, Phase::Due(at) if at == now || at == u64::MAX);
        if start && backend.dialog.is_none() {
            self.send_subscribe(&mut table, &key);
        }
        if ask {
            self.send_probe(&mut table, &key, watcher);
        }
        drop(table);
        if let Some(action) = held {
            self.decide(vec![(id, action)]);
        }
    }

    /// Asks the remote domain what it shows `watcher` of back-end `key`'s presentity: a fetch
    /// in the watcher's name, through the same route.
    fn send_probe(&self, table: &mut BackendTable, key: &Key, watcher: &Uri) {
        let Some(b) = table.by_key.get_mut(key) else {
            return;
        };
        let wkey = presentity_key(watcher);
        let Some(hop) = b.hop else {
            // Asked once the first target is chosen (see `Backends::choose_hop`).
            b.probing.insert(wkey, String::new());
            return;
        };
        let dialog = Dialog {
            call_id: format!("{}@impp", self.stack.token()),
            local_tag: self.stack.token(),
            remote_tag: None,
            from: watcher.to_string(),
            remote_target: b.presentity.to_string(),
            cseq: 1,
            remote_cseq: 0,
            list: false,
        };
        match self.subscribe_request(&dialog, &b.presentity, b.package, 0, hop, None) {
            Ok((branch, bytes, _)) => {
                self.counters.probes_sent.fetch_add(1, Ordering::Relaxed);
                b.probing.insert(wkey.clone(), dialog.call_id.clone());
                table.probes.insert(
                    dialog.call_id.clone(),
                    Probe {
                        key: key.clone(),
                        watcher: wkey,
                        local_tag: dialog.local_tag.clone(),
                        until: self.stack.now() + PROBE_MS,
                        verdict: None,
                        waiting: None,
                    },
                );
                let tx = BackendTx::Probe {
                    call_id: dialog.call_id,
                };
                self.send_request(branch, bytes, hop, tx);
            }
            Err(e) => {
                log::warn!("federation: cannot build a fetch for {}: {e}", b.presentity);
                self.own_dialog(table, key, &wkey);
            }
        }
    }

    /// The fetch `call_id` decided `verdict`: the watcher shares the dialog (allowed), or
    /// gets a dialog of its own. Returns the local decisions to apply once the table's lock
    /// is released.
    fn probe_decided(
        &self,
        table: &mut BackendTable,
        call_id: &str,
        verdict: Verdict,
    ) -> Vec<(SubscriptionId, AuthAction)> {
        let Some(p) = table.probes.get_mut(call_id) else {
            return Vec::new();
        };
        if p.verdict.is_some() {
            return Vec::new();
        }
        p.verdict = Some(verdict);
        p.waiting = None;
        p.until = self.stack.now() + CLOSING_MS;
        let (key, wkey) = (p.key.clone(), p.watcher.clone());
        let Some(b) = table.by_key.get_mut(&key) else {
            return Vec::new();
        };
        if b.probing.get(&wkey).map(String::as_str) != Some(call_id) {
            return Vec::new();
        }
        b.probing.remove(&wkey);
        if b.owner.as_deref() == Some(wkey.as_str()) || b.verified.contains(&wkey) {
            return Vec::new(); // became the dialog's watcher meanwhile (allowed then)
        }
        b.unsure.remove(&wkey);
        match verdict {
            Verdict::Alike => {
                log::debug!("federation: {wkey} shares the dialog of {}", b.presentity);
                b.verified.insert(wkey.clone());
                b.ids_of(&wkey)
                    .into_iter()
                    .map(|id| (id, AuthAction::Allow))
                    .collect()
            }
            Verdict::Unsure => {
                b.unsure.insert(wkey.clone());
                b.ids_of(&wkey)
                    .into_iter()
                    .map(|id| (id, AuthAction::PoliteBlock))
                    .collect()
            }
            Verdict::Rejected => {
                b.refused.insert(wkey.clone());
                b.ids_of(&wkey)
                    .into_iter()
                    .map(|id| (id, AuthAction::Block))
                    .collect()
            }
            Verdict::Own => {
                self.own_dialog(table, &key, &wkey);
                Vec::new()
            }
        }
    }

    /// Moves watcher `wkey`'s subscriptions of the shared back-end `key` to a dialog of its
    /// own; the shared back-end ends if nobody is left in it.
    fn own_dialog(&self, table: &mut BackendTable, key: &Key, wkey: &str) {
        let Some(b) = table.by_key.get_mut(key) else {
            return;
        };
        let ids = b.ids_of(wkey);
        if ids.is_empty() {
            return;
        }
        log::debug!(
            "federation: {wkey} gets a dialog of its own for {}",
            b.presentity
        );
        let mut own = Backend::new(
            b.presentity.clone(),
            b.package,
            self.stack.now(),
            self.backend_expires,
        );
        own.owner = Some(wkey.to_string());
        for id in &ids {
            if let Some(w) = b.watchers.remove(id) {
                own.watchers.insert(*id, w);
            }
        }
        let empty = b.watchers.is_empty();
        let own_key = Key {
            watcher: Some(wkey.to_string()),
            ..key.clone()
        };
        for id in &ids {
            table.by_local.insert(*id, own_key.clone());
        }
        table.by_key.insert(own_key.clone(), own);
        self.counters.own_dialogs.fetch_add(1, Ordering::Relaxed);
        if empty {
            self.end_backend(table, key);
        }
        self.send_subscribe(table, &own_key);
        table.schedule(&own_key);
    }

    /// Applies local decisions (outside the table's lock).
    fn decide(&self, decisions: Vec<(SubscriptionId, AuthAction)>) {
        if decisions.is_empty() {
            return;
        }
        let Ok(engine) = self.engine() else {
            return;
        };
        for (id, action) in decisions {
            if let Err(e) = engine.authorize(id, action) {
                log::debug!("subscription {id}: cannot decide: {e}");
            }
        }
    }

    fn local_watcher_gone(&self, id: SubscriptionId) {
        let mut table = lock(&self.table);
        let Some(key) = table.by_local.remove(&id) else {
            return;
        };
        let Some(backend) = table.by_key.get_mut(&key) else {
            return;
        };
        backend.watchers.remove(&id);
        if !backend.watchers.is_empty() {
            return;
        }
        log::debug!(
            "federation: last local watcher of {} ({}) gone",
            backend.presentity,
            backend.package
        );
        self.end_backend(&mut table, &key);
    }

    /// Ends back-end `key`: its mirror is removed, its dialog ended (`Expires: 0`).
    fn end_backend(&self, table: &mut BackendTable, key: &Key) {
        let Some(mut backend) = table.by_key.remove(key) else {
            return;
        };
        if let Ok(engine) = self.engine() {
            backend.clear_mirror(&engine);
        }
        if let Some((dialog, hop)) = backend.dialog.zip(backend.hop) {
            table.by_call_id.remove(&dialog.call_id);
            let mut closing = Closing {
                dialog,
                hop,
                until: self.stack.now() + CLOSING_MS,
            };
            // Without the notifier's tag the SUBSCRIBE is not answered yet: the answer ends
            // it (see `Backends::response`).
            if closing.dialog.remote_tag.is_some() {
                self.send_unsubscribe(&mut closing, &backend.presentity, backend.package);
            }
            table
                .closing
                .insert(closing.dialog.call_id.clone(), closing);
        }
    }

    /// Sends the SUBSCRIBE the back-end `key` is due: in its dialog, or a new one (once
    /// its target is chosen: see [`Backends::choose_hop`]).
    fn send_subscribe(&self, table: &mut BackendTable, key: &Key) {
        let new = table.by_key.get(key).is_some_and(|b| b.dialog.is_none());
        if new && !self.choose_hop(table, key) {
            return;
        }
        let Some(b) = table.by_key.get_mut(key) else {
            return;
        };
        let hop = b.hop.expect("chosen for the dialog");
        if b.dialog.is_none() {
            let from = if key.list {
                Some(account_or(&self.accounts, key.account, &b.presentity))
            } else {
                // The owner while it watches, else a watcher the remote domain showed what
                // it showed the owner (the others see the same), else anyone not refused.
                let candidates = || {
                    b.watchers
                        .values()
                        .filter(|w| !b.refused.contains(&presentity_key(w)))
                };
                let chosen = candidates()
                    .find(|w| b.owner.as_deref() == Some(presentity_key(w).as_str()))
                    .or_else(|| candidates().find(|w| b.verified.contains(&presentity_key(w))))
                    .or_else(|| candidates().next())
                    .cloned();
                if let Some(w) = &chosen {
                    self.take_ownership(b, w);
                }
                chosen.map(|w| account_or(&self.accounts, key.account, &w))
            };
            let Some(from) = from else {
                // Every watcher left was refused; their subscriptions are ending.
                b.phase = Phase::Due(u64::MAX);
                return;
            };
            b.notified = false;
            let call_id = format!("{}@impp", self.stack.token());
            table.by_call_id.insert(call_id.clone(), key.clone());
            b.dialog = Some(Dialog {
                call_id,
                local_tag: self.stack.token(),
                remote_tag: None,
                from,
                remote_target: b.presentity.to_string(),
                cseq: 0,
                remote_cseq: 0,
                list: key.list,
            });
        }
        let d = b.dialog.as_mut().expect("set above");
        d.cseq += 1;
        let authorization = b
            .auth
            .as_mut()
            .and_then(|a| a.authorize("SUBSCRIBE", &d.remote_target));
        let built =
            self.subscribe_request(d, &b.presentity, b.package, b.expires, hop, authorization);
        b.phase = Phase::Sent;
        let with_auth = built.as_ref().is_ok_and(|(_, _, a)| *a);
        match built.map(|(branch, bytes, _)| (branch, bytes)) {
            Ok((branch, bytes)) => {
                self.counters
                    .subscribes_sent
                    .fetch_add(1, Ordering::Relaxed);
                let tx = BackendTx::Subscribe {
                    key: key.clone(),
                    call_id: d.call_id.clone(),
                    with_auth,
                };
                self.send_request(branch, bytes, hop, tx);
            }
            Err(e) => {
                log::warn!(
                    "federation: cannot build a SUBSCRIBE for {}: {e}",
                    b.presentity
                );
                b.failures += 1;
                b.phase = Phase::Due(self.stack.now() + backoff(&self.stack, b.failures));
                table.schedule(key);
            }
        }
    }

    /// Chooses where back-end `key`'s new dialog goes (its `hop`): the target chosen
    /// already (`next`), else the account's server, else the first target of its domain's
    /// route (the others kept for fail-over). `false` when there is none yet: the name is
    /// being looked up (then [`Backends::resolved`] goes on), or the back-end failed and
    /// is retried after a back-off. Fetches that waited for a target are sent.
    fn choose_hop(&self, table: &mut BackendTable, key: &Key) -> bool {
        let Some(b) = table.by_key.get_mut(key) else {
            return false;
        };
        if b.next.is_none() {
            if let Some(i) = key.account {
                b.next = Some(self.hops.next_hop(i));
                b.rest.clear();
            } else {
                let role = self.me.clone();
                let waiting = key.clone();
                let then = Box::new(move |found| {
                    if let Some(role) = role.upgrade() {
                        role.resolved(&waiting, found);
                    }
                });
                match self.hops.domain(b.presentity.host(), then) {
                    // The route is gone (a reload): where the last dialog went, if anywhere.
                    None if b.hop.is_some() => {
                        b.next = b.hop;
                        b.rest.clear();
                    }
                    None => {
                        log::info!("federation: no route to {}", b.presentity.host());
                        self.backend_failed(table, key, 404);
                        return false;
                    }
                    Some(Resolution::Pending) => {
                        b.phase = Phase::Resolving;
                        return false;
                    }
                    Some(Resolution::Ready(found)) => {
                        if !self.found_hops(table, key, found) {
                            return false;
                        }
                    }
                }
            }
        }
        let b = table.by_key.get_mut(key).expect("present");
        b.hop = b.next.take();
        let waiting: Vec<Uri> = b
            .probing
            .iter()
            .filter(|(_, call_id)| call_id.is_empty())
            .filter_map(|(w, _)| b.watchers.values().find(|u| presentity_key(u) == *w))
            .cloned()
            .collect();
        for w in waiting {
            self.send_probe(table, key, &w);
        }
        true
    }

    /// Takes the targets `found` for back-end `key`'s new dialog: the first next, the others
    /// for fail-over. `false` when there are none: the back-end failed (a name without
    /// records as a `404`, a DNS failure as a `503`) and is retried after a back-off.
    fn found_hops(
        &self,
        table: &mut BackendTable,
        key: &Key,
        found: std::result::Result<Vec<NextHop>, ResolveError>,
    ) -> bool {
        let Some(b) = table.by_key.get_mut(key) else {
            return false;
        };
        let status = match found {
            Ok(mut hops) if !hops.is_empty() => {
                b.next = Some(hops.remove(0));
                b.rest = hops;
                return true;
            }
            Ok(_) | Err(ResolveError::NotFound(_)) => 404,
            Err(_) => 503,
        };
        log::info!(
            "federation: no address for {} ({status}); retried later",
            b.presentity.host()
        );
        self.backend_failed(table, key, status);
        false
    }

    /// The lookup a new dialog of back-end `key` waited for is answered: the dialog is made
    /// (unless the back-end ended or went on meanwhile).
    fn resolved(&self, key: &Key, found: std::result::Result<Vec<NextHop>, ResolveError>) {
        let mut table = lock(&self.table);
        if !table
            .by_key
            .get(key)
            .is_some_and(|b| b.phase == Phase::Resolving)
        {
            return;
        }
        if self.found_hops(&mut table, key, found) {
            self.send_subscribe(&mut table, key);
        }
    }

    /// Makes `watcher` the one back-end `b`'s dialogs are made for. A new owner the remote
    /// domain was not asked about yet is allowed (it sees what its own dialog says), and the
    /// watchers found alike with the old one are no longer known alike with it.
    fn take_ownership(&self, b: &mut Backend, watcher: &Uri) {
        let wkey = presentity_key(watcher);
        if b.owner.as_deref() == Some(wkey.as_str()) {
            return;
        }
        if !b.verified.contains(&wkey) {
            b.verified.clear();
            b.probing.remove(&wkey);
            b.unsure.remove(&wkey);
            if let Ok(engine) = self.engine() {
                for id in b.ids_of(&wkey) {
                    let _ = engine.authorize(id, AuthAction::Allow);
                }
            }
        }
        b.owner = Some(wkey);
    }

    fn send_unsubscribe(&self, closing: &mut Closing, presentity: &Uri, package: Package) {
        closing.dialog.cseq += 1;
        match self.subscribe_request(&closing.dialog, presentity, package, 0, closing.hop, None) {
            Ok((branch, bytes, _)) => {
                self.counters
                    .subscribes_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.send_request(branch, bytes, closing.hop, BackendTx::Unsubscribe);
            }
            Err(e) => log::debug!("federation: cannot build an unsubscribe: {e}"),
        }
    }

    fn subscribe_request(
        &self,
        d: &Dialog,
        presentity: &Uri,
        package: Package,
        expires: u32,
        hop: NextHop,
        authorization: Option<(&'static str, String)>,
    ) -> Result<(String, Vec<u8>, bool)> {
        let (mut b, branch) =
            self.stack
                .new_request("SUBSCRIBE", &d.remote_target, hop.proto, hop.addr)?;
        b.header("From", &format!("<{}>;tag={}", d.from, d.local_tag))?;
        match &d.remote_tag {
            Some(tag) => b.header("To", &format!("<{presentity}>;tag={tag}"))?,
            None => b.header("To", &format!("<{presentity}>"))?,
        };
        b.header("Call-ID", &d.call_id)?;
        b.header("CSeq", &format!("{} SUBSCRIBE", d.cseq))?;
        b.header("Contact", &self.stack.contact_for(hop.proto, hop.addr))?;
        b.header("Event", package.as_str())?;
        if d.list {
            b.header("Supported", "eventlist")?;
            b.header(
                "Accept",
                &format!(
                    "{}, multipart/related, {}",
                    crate::doc::rlmi::Rlmi::CONTENT_TYPE,
                    package.content_type()
                ),
            )?;
        } else {
            b.header("Accept", package.content_type())?;
        }
        b.header("Expires", &expires.to_string())?;
        b.header("User-Agent", &self.stack.config().server_name)?;
        let with_auth = authorization.is_some();
        if let Some((name, value)) = authorization {
            b.header(name, &value)?;
        }
        Ok((branch, b.build(), with_auth))
    }

    /// The final answer to a SUBSCRIBE of the agent (`None`: no answer in time, 408).
    fn response(&self, tx: BackendTx, status: u16, response: Option<&SipMessage>) {
        let (key, call_id, with_auth) = match tx {
            BackendTx::Subscribe {
                key,
                call_id,
                with_auth,
            } => (key, call_id, with_auth),
            BackendTx::Probe { call_id } => {
                // A success waits for the NOTIFY; anything else gets the watcher a dialog
                // of its own, which meets the same answer and follows it.
                if !(200..300).contains(&status) {
                    let mut table = lock(&self.table);
                    let decisions = self.probe_decided(&mut table, &call_id, Verdict::Own);
                    drop(table);
                    self.decide(decisions);
                }
                return;
            }
            BackendTx::Unsubscribe => return,
        };
        let mut table = lock(&self.table);
        let now = self.stack.now();
        let current = table
            .by_key
            .get(&key)
            .and_then(|b| b.dialog.as_ref())
            .is_some_and(|d| d.call_id == call_id);
        if !current {
            // A dialog already ended here: a late success is ended at once.
            if (200..300).contains(&status) {
                if let (Some(mut closing), Some(r)) = (table.closing.remove(&call_id), response) {
                    if closing.dialog.remote_tag.is_none() {
                        closing.dialog.remote_tag =
                            r.to().ok().and_then(|t| t.tag().map(str::to_owned));
                        let presentity = Uri::parse(&closing.dialog.remote_target).ok();
                        if let Some(p) = presentity {
                            self.send_unsubscribe(&mut closing, &p, key.package);
                        }
                    }
                    table.closing.insert(call_id, closing);
                }
            }
            return;
        }
        if self.fail_over(&mut table, &key, status, response) {
            return;
        }
        let stack = &self.stack;
        let b = table.by_key.get_mut(&key).expect("checked above");
        match status {
            200..=299 => {
                let d = b.dialog.as_mut().expect("checked above");
                if let Some(r) = response {
                    if d.remote_tag.is_none() {
                        d.remote_tag = r.to().ok().and_then(|t| t.tag().map(str::to_owned));
                    }
                    if let Ok(Contacts::List(list)) = r.contact() {
                        if let Some(c) = list.first() {
                            d.remote_target = c.uri_text().to_string();
                        }
                    }
                }
                let granted = response
                    .and_then(|r| r.expires().ok().flatten())
                    .unwrap_or(b.expires);
                b.failures = 0;
                // The mirrored publication lives as long as the subscription does: each
                // refresh extends it (to the engine's maximum), so a remote state that does
                // not change for a long time does not expire here.
                if let (Some(etag), Ok(engine)) = (&b.etag, self.engine()) {
                    match engine.refresh_publication(etag, u32::MAX) {
                        Ok(etag) => b.etag = Some(etag),
                        Err(e) => {
                            log::debug!("federation: mirror of {} not extended: {e}", b.presentity)
                        }
                    }
                }
                if let Ok(engine) = self.engine() {
                    for (uri, etag) in b.mirrored.values_mut() {
                        match engine.refresh_publication(etag, u32::MAX) {
                            Ok(tag) => *etag = tag,
                            Err(e) => log::debug!("list: mirror of {uri} not extended: {e}"),
                        }
                    }
                }
                b.phase = if granted == 0 {
                    Phase::Due(now + backoff(stack, 1))
                } else {
                    Phase::Active(refresh_at(stack, now, granted))
                };
            }
            401 | 407 => {
                let retry = match (&mut b.auth, response) {
                    (Some(auth), Some(r)) => {
                        let name = if status == 401 {
                            "WWW-Authenticate"
                        } else {
                            "Proxy-Authenticate"
                        };
                        auth.on_challenge(status, r.headers(name), with_auth)
                    }
                    _ => Retry::GiveUp("no credentials for this domain".into()),
                };
                match retry {
                    Retry::Again => {
                        b.phase = Phase::Due(now);
                        self.send_subscribe(&mut table, &key);
                    }
                    Retry::GiveUp(why) => {
                        log::warn!("federation: SUBSCRIBE to {} refused: {why}", b.presentity);
                        self.backend_failed(&mut table, &key, status);
                    }
                }
            }
            423 => {
                let min = response.and_then(|r| r.min_expires().ok().flatten());
                match min {
                    Some(min) if min > b.expires => {
                        b.expires = min;
                        b.phase = Phase::Due(now);
                        self.send_subscribe(&mut table, &key);
                    }
                    _ => self.backend_failed(&mut table, &key, status),
                }
            }
            _ => self.backend_failed(&mut table, &key, status),
        }
        table.schedule(&key);
    }

    /// Back-end `key`'s SUBSCRIBE was answered `status` (`response`). When its target did not
    /// answer, could not be reached or answered `503`, it is left out for a while, and a
    /// dialog still being made goes to the name's next target at once (`true`). The dialog
    /// given up is remembered as closing, so that a late success from that target is ended.
    fn fail_over(
        &self,
        table: &mut BackendTable,
        key: &Key,
        status: u16,
        response: Option<&SipMessage>,
    ) -> bool {
        let Some(b) = table.by_key.get_mut(key) else {
            return false;
        };
        let Some(hop) = b.hop else {
            return false;
        };
        if !self.hops.answered(hop, status, response) {
            return false;
        }
        let made = b.dialog.as_ref().is_some_and(|d| d.remote_tag.is_some());
        if made || b.rest.is_empty() {
            return false;
        }
        let next = b.rest.remove(0);
        log::debug!(
            "federation: SUBSCRIBE to {} failed at {:?}; trying {next}",
            b.presentity,
            b.hop
        );
        b.next = Some(next);
        let given_up = b.dialog.take().zip(b.hop);
        if let Some((dialog, hop)) = given_up {
            table.by_call_id.remove(&dialog.call_id);
            let until = self.stack.now() + CLOSING_MS;
            table
                .closing
                .insert(dialog.call_id.clone(), Closing { dialog, hop, until });
        }
        self.send_subscribe(table, key);
        table.schedule(key);
        true
    }

    /// A back-end dialog failed (`status`: the answer, 408 for none): a new one after a
    /// back-off.
    fn backend_failed(&self, table: &mut BackendTable, key: &Key, status: u16) {
        let Some(b) = table.by_key.get_mut(key) else {
            return;
        };
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        b.failures += 1;
        log::debug!(
            "federation: subscription to {} failed ({status}); retry #{}",
            b.presentity,
            b.failures
        );
        if status == 403 {
            // Credentials refused outright: perhaps the server restarted and no longer knows
            // our nonce. The next attempt starts without them (and is challenged afresh).
            if let Some(auth) = b.auth.as_mut() {
                auth.reset();
            }
        }
        if let Some(d) = b.dialog.take() {
            table.by_call_id.remove(&d.call_id);
        }
        // The notifier forgot the dialog (481): the state it gave is still the latest known
        // and a new dialog is tried at once. Otherwise the remote state is unknown now.
        let b = table.by_key.get_mut(key).expect("present");
        if status != 481 {
            if let Ok(engine) = self.engine() {
                b.clear_mirror(&engine);
            }
        }
        let wait = if status == 481 && b.failures == 1 {
            0
        } else {
            backoff(&self.stack, b.failures)
        };
        b.phase = Phase::Due(self.stack.now() + wait);
        table.schedule(key);
    }

    /// A NOTIFY: in a back-end dialog it is answered `200` and mirrored; `481` otherwise.
    pub(crate) fn notify(&self, request: &Request) -> Result<Option<Reply>> {
        let m = &request.message;
        let call_id = m.call_id()?.to_string();
        let to_tag = m.to()?.tag().unwrap_or_default().to_string();
        let from_tag = m.from()?.tag().map(str::to_owned);
        let cseq = m.cseq()?.seq;
        let mut table = lock(&self.table);
        let key = table.by_call_id.get(&call_id).cloned();
        if key.is_none() && table.probes.contains_key(&call_id) {
            return self.probe_notify(table, request, &call_id, &to_tag);
        }
        let Some(key) = key else {
            let closing = table
                .closing
                .get(&call_id)
                .is_some_and(|c| c.dialog.local_tag == to_tag);
            return Ok(Some(if closing {
                self.stack.reply(request, 200, "OK")
            } else {
                self.stack
                    .reply(request, 481, "Subscription Does Not Exist")
            }));
        };
        let engine = self.engine()?;
        // What the shared dialog shows, which a watcher's own dialog is compared with.
        let shared = match key.watcher {
            Some(_) => table
                .by_key
                .get(&key.shared())
                .filter(|s| s.notified)
                .and_then(|s| s.document.clone()),
            None => None,
        };
        let b = table.by_key.get_mut(&key).expect("indexed");
        let Some(d) = b.dialog.as_mut().filter(|d| d.local_tag == to_tag) else {
            return Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )));
        };
        if d.remote_tag.is_some() && d.remote_tag != from_tag {
            return Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )));
        }
        if cseq <= d.remote_cseq {
            return Ok(Some(self.stack.reply(
                request,
                500,
                "Server Internal Error (CSeq out of order)",
            )));
        }
        let Some(state) = m.subscription_state()? else {
            return Ok(Some(self.stack.reply(
                request,
                400,
                "Bad Request (no Subscription-State)",
            )));
        };
        let list = if key.list && !m.body().is_empty() {
            match list_updates(m, b.package, &engine.config().limits) {
                Ok(updates) => Some(updates),
                Err(e) => {
                    log::info!("list: NOTIFY for {} refused: {e}", b.presentity);
                    return Ok(Some(self.stack.reply(request, 400, "Bad Request")));
                }
            }
        } else {
            None
        };
        let document = if m.body().is_empty() || key.list {
            None
        } else {
            let text = std::str::from_utf8(m.body())
                .map_err(|_| Error::Malformed("NOTIFY body is not UTF-8".into()))?;
            Some(b.package.parse(text, &engine.config().limits)?)
        };
        // Checked: the NOTIFY is taken.
        self.counters
            .notifies_received
            .fetch_add(1, Ordering::Relaxed);
        d.remote_cseq = cseq;
        if d.remote_tag.is_none() {
            d.remote_tag = from_tag;
        }
        if let Ok(Contacts::List(list)) = m.contact() {
            if let Some(c) = list.first() {
                d.remote_target = c.uri_text().to_string();
            }
        }
        let terminated = state.state().eq_ignore_ascii_case("terminated");
        let active = state.state().eq_ignore_ascii_case("active");
        let mut decisions = Vec::new();
        if key.watcher.is_some() {
            // A watcher's own dialog: what it says decides that watcher's subscriptions;
            // nothing is mirrored (the others would see it).
            if !terminated {
                let action = match (active, document) {
                    (true, Some(doc)) if alike(&doc, shared.as_ref(), key.package) => {
                        AuthAction::Allow
                    }
                    // Shown something else, or nothing: nothing of the shared state.
                    (true, _) => AuthAction::PoliteBlock,
                    _ => AuthAction::Confirm,
                };
                if b.decision != Some(action) {
                    b.decision = Some(action);
                    decisions = b.watchers.keys().map(|id| (*id, action)).collect();
                }
            }
        } else {
            let shown = match (active, document) {
                _ if key.list => {
                    match list {
                        Some((full_state, updates)) if !terminated => {
                            mirror_list(&engine, b, full_state, updates)
                        }
                        // Nothing known any more (pending, or ended): no resource's state is
                        // shown.
                        _ if !active => b.clear_mirror(&engine),
                        _ => {}
                    }
                    None
                }
                (true, Some(doc)) => {
                    let etag = match &b.etag {
                        Some(etag) => match engine.modify_publication(etag, doc.clone()) {
                            Err(Error::UnknownEntityTag(_)) => {
                                engine.publish(&b.presentity, doc.clone(), Some(u32::MAX))
                            }
                            other => other,
                        },
                        None => engine.publish(&b.presentity, doc.clone(), Some(u32::MAX)),
                    };
                    match etag {
                        Ok(etag) => b.etag = Some(etag),
                        Err(e) => log::warn!("federation: cannot mirror {}: {e}", b.presentity),
                    }
                    Some(doc)
                }
                _ => {
                    b.clear_mirror(&engine);
                    None
                }
            };
            if !key.list {
                b.document = shown;
                b.notified = true;
            }
        }
        let mut after = After::Nothing;
        if terminated {
            let reason = state.reason().unwrap_or("").to_ascii_lowercase();
            let retry_after = state.retry_after();
            let refused_from = b.dialog.as_ref().map(|d| d.from.clone());
            if let Some(d) = b.dialog.take() {
                table.by_call_id.remove(&d.call_id);
            }
            let b = table.by_key.get_mut(&key).expect("present");
            let ended = match reason.as_str() {
                "rejected" => Some(TerminationReason::Rejected),
                "noresource" => Some(TerminationReason::Noresource),
                "giveup" => Some(TerminationReason::Giveup),
                _ => None,
            };
            match ended {
                // Only the identity the dialog was made with was refused (the remote
                // domain's rules are per watcher): its local subscriptions end, and the
                // others get a new dialog in the name of one of them.
                Some(TerminationReason::Rejected) if key.account.is_none() => {
                    let refused = refused_from
                        .and_then(|f| Uri::parse(&f).ok())
                        .map(|u| presentity_key(&u))
                        .unwrap_or_default();
                    let ids: Vec<SubscriptionId> = b
                        .watchers
                        .iter()
                        .filter(|(_, w)| presentity_key(w) == refused)
                        .map(|(id, _)| *id)
                        .collect();
                    b.refused.insert(refused);
                    let others = b
                        .watchers
                        .values()
                        .any(|w| !b.refused.contains(&presentity_key(w)));
                    b.phase = Phase::Due(if others { self.stack.now() } else { u64::MAX });
                    after = After::Terminate(ids, TerminationReason::Rejected);
                }
                Some(reason) => {
                    b.phase = Phase::Due(u64::MAX);
                    after = After::Terminate(b.watchers.keys().copied().collect(), reason);
                }
                None => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    b.failures += 1;
                    let wait = match retry_after {
                        Some(s) => u64::from(s) * 1000,
                        None if reason == "probation" => backoff(&self.stack, b.failures.max(3)),
                        // deactivated / timeout: subscribe again at once (RFC 6665 §4.1.3).
                        None if b.failures == 1 => 0,
                        None => backoff(&self.stack, b.failures),
                    };
                    b.phase = Phase::Due(self.stack.now() + wait);
                }
            }
        } else if let (Phase::Active(at), Some(expires)) = (b.phase, state.expires()) {
            // The notifier may shorten the subscription (RFC 6665 §4.1.2.3).
            let limit = refresh_at(&self.stack, self.stack.now(), expires);
            if limit < at {
                b.phase = Phase::Active(limit);
            }
        }
        table.schedule(&key);
        if key.watcher.is_none() && !key.list {
            decisions.extend(self.resolve_waiting(&mut table, &key));
        }
        drop(table);
        if let After::Terminate(ids, reason) = after {
            for id in ids {
                let _ = engine.terminate_subscription(id, reason);
            }
        }
        self.decide(decisions);
        Ok(Some(self.stack.reply(request, 200, "OK")))
    }

    /// Decides the fetches about watchers of back-end `key` that had their answer before the
    /// shared dialog said its own document.
    fn resolve_waiting(
        &self,
        table: &mut BackendTable,
        key: &Key,
    ) -> Vec<(SubscriptionId, AuthAction)> {
        let shared = table.by_key.get(key).and_then(|b| b.document.clone());
        let ready: Vec<(String, Verdict)> = table
            .probes
            .iter()
            .filter(|(_, p)| p.key == *key && p.verdict.is_none())
            .filter_map(|(id, p)| p.waiting.as_ref().map(|doc| (id, doc)))
            .map(|(id, doc)| {
                (
                    id.clone(),
                    judge(doc.as_ref(), shared.as_ref(), key.package),
                )
            })
            .collect();
        let mut decisions = Vec::new();
        for (call_id, verdict) in ready {
            decisions.extend(self.probe_decided(table, &call_id, verdict));
        }
        // The shared dialog shows a document now: the watchers nothing could be told of
        // before are asked again.
        let again: Vec<Uri> = match table.by_key.get_mut(key) {
            Some(b) if b.document.is_some() && !b.unsure.is_empty() => {
                let unsure = std::mem::take(&mut b.unsure);
                unsure
                    .iter()
                    .filter_map(|w| b.watchers.values().find(|u| presentity_key(u) == *w))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        for w in again {
            self.send_probe(table, key, &w);
        }
        decisions
    }

    /// A NOTIFY of a fetch about a joining watcher: answered `200`; its first word decides.
    fn probe_notify(
        &self,
        mut table: std::sync::MutexGuard<'_, BackendTable>,
        request: &Request,
        call_id: &str,
        to_tag: &str,
    ) -> Result<Option<Reply>> {
        let m = &request.message;
        let p = table.probes.get(call_id).expect("checked by the caller");
        if p.local_tag != to_tag {
            return Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )));
        }
        if p.verdict.is_some() || p.waiting.is_some() {
            return Ok(Some(self.stack.reply(request, 200, "OK")));
        }
        let Some(state) = m.subscription_state()? else {
            return Ok(Some(self.stack.reply(
                request,
                400,
                "Bad Request (no Subscription-State)",
            )));
        };
        let key = p.key.clone();
        let engine = self.engine()?;
        let document = if m.body().is_empty() {
            None
        } else {
            let text = std::str::from_utf8(m.body())
                .map_err(|_| Error::Malformed("NOTIFY body is not UTF-8".into()))?;
            Some(key.package.parse(text, &engine.config().limits)?)
        };
        let reason = state.reason().unwrap_or("").to_ascii_lowercase();
        let pending = state.state().eq_ignore_ascii_case("pending");
        let verdict = if reason == "rejected" {
            Some(Verdict::Rejected)
        } else if pending {
            Some(Verdict::Own)
        } else {
            // Active, or ended at once as a fetch is (`timeout`) with the state it had.
            match table.by_key.get(&key).filter(|b| b.notified) {
                Some(b) => Some(judge(document.as_ref(), b.document.as_ref(), key.package)),
                None => {
                    // The shared dialog has not said yet: decided when it does.
                    table.probes.get_mut(call_id).expect("present").waiting = Some(document);
                    None
                }
            }
        };
        let decisions = match verdict {
            Some(v) => self.probe_decided(&mut table, call_id, v),
            None => Vec::new(),
        };
        drop(table);
        self.decide(decisions);
        Ok(Some(self.stack.reply(request, 200, "OK")))
    }

    /// Runs the due SUBSCRIBEs (new dialogs, refreshes, retries).
    pub(crate) fn tick(&self, now: u64) {
        let mut table = lock(&self.table);
        while table.wakes.peek().is_some_and(|w| w.0 <= now) {
            let Wake(_, key) = table.wakes.pop().expect("peeked");
            let due = table.by_key.get(&key).is_some_and(|b| match b.phase {
                Phase::Due(at) | Phase::Active(at) => at <= now,
                Phase::Sent | Phase::Resolving => false,
            });
            if due {
                self.send_subscribe(&mut table, &key);
            }
        }
        if !table.closing.is_empty() {
            table.closing.retain(|_, c| c.until > now);
        }
        // Fetches not answered in time: a dialog of its own (never sharing unasked).
        let late: Vec<String> = table
            .probes
            .iter()
            .filter(|(_, p)| p.verdict.is_none() && p.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut decisions = Vec::new();
        for call_id in late {
            decisions.extend(self.probe_decided(&mut table, &call_id, Verdict::Own));
        }
        table
            .probes
            .retain(|_, p| p.verdict.is_none() || p.until > now);
        drop(table);
        self.decide(decisions);
    }

    /// The earliest clock time [`Backends::tick`] has work.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let table = lock(&self.table);
        let wake = table.wakes.peek().map(|w| w.0);
        let closing = table.closing.values().map(|c| c.until).min();
        let probe = table.probes.values().map(|p| p.until).min();
        wake.into_iter().chain(closing).chain(probe).min()
    }

    /// Ends every back-end dialog (`Expires: 0`), for a server stopping.
    pub(crate) fn stop(&self) {
        let mut table = lock(&self.table);
        let backends: Vec<Backend> = table.by_key.drain().map(|(_, b)| b).collect();
        table.by_local.clear();
        table.by_call_id.clear();
        table.wakes.clear();
        table.probes.clear();
        for mut b in backends {
            if let Ok(engine) = self.engine() {
                b.clear_mirror(&engine);
            }
            if let Some((dialog, hop)) = b.dialog.filter(|d| d.remote_tag.is_some()).zip(b.hop) {
                let mut closing = Closing {
                    dialog,
                    hop,
                    until: 0,
                };
                self.send_unsubscribe(&mut closing, &b.presentity, b.package);
            }
        }
    }
}

/// Refuses a list of a domain `config` owns: the server serves its own lists (list server)
/// and subscribing to one would mirror its own resources back into them.
fn check_list_domain(config: &crate::engine::EngineConfig, list: &Uri) -> Result<()> {
    if config.owns(list) {
        return Err(Error::InvalidArgument(format!(
            "{list} is a list of this server's own domain (subscribe to lists of other servers)"
        )));
    }
    Ok(())
}

/// Checks the lists the accounts declare before a server starts: none of a domain the
/// engine owns (the packages were checked when they were added).
pub(crate) fn check_declared_lists(
    accounts: &[Account],
    config: &crate::engine::EngineConfig,
) -> Result<()> {
    for a in accounts {
        for l in &a.lists {
            check_list_package(l.package)?;
            check_list_domain(config, &l.uri)
                .map_err(|e| Error::InvalidArgument(format!("account {}: {e}", a.aor)))?;
        }
    }
    Ok(())
}

/// What a fetch showing `doc` (or nothing) says of its watcher, the shared dialog showing
/// `shared`.
fn judge(doc: Option<&Document>, shared: Option<&Document>, package: Package) -> Verdict {
    match doc {
        Some(doc) if alike(doc, shared, package) => Verdict::Alike,
        None if shared.is_none() => Verdict::Unsure,
        _ => Verdict::Own,
    }
}

/// `doc` without what a notifier numbers per subscription (a dialog-info's `version`, RFC
/// 4235 §4.1), so that two subscriptions' views of one state compare equal.
fn comparable(doc: &Document) -> std::borrow::Cow<'_, Document> {
    match doc {
        Document::Dialog(d) if d.version != 0 => {
            let mut d = d.clone();
            d.version = 0;
            std::borrow::Cow::Owned(Document::Dialog(d))
        }
        _ => std::borrow::Cow::Borrowed(doc),
    }
}

/// Whether `doc`, shown to a joining watcher, is what the shared dialog shows (`shared`), so
/// that the watcher may share it. A document that looks like the package's neutral one is
/// never alike: a polite-blocked watcher would then share the real state when it changes.
fn alike(doc: &Document, shared: Option<&Document>, package: Package) -> bool {
    let Some(shared) = shared else {
        return false;
    };
    if comparable(shared) != comparable(doc) {
        return false;
    }
    // The neutral document names the presentity as the document does.
    let entity = match doc {
        Document::Presence(p) => Uri::parse(&p.entity).ok(),
        Document::Dialog(d) => Uri::parse(&d.entity).ok(),
        Document::MessageSummary(_) | Document::Winfo(_) => Uri::parse("sip:x@x.invalid").ok(),
    };
    match entity {
        Some(e) => crate::engine::compose::neutral(package, &e).to_body() != doc.to_body(),
        None => true,
    }
}

/// The From URI of a back-end dialog: the account's address of record, else the watcher.
fn account_or(accounts: &[Account], account: Option<usize>, watcher: &Uri) -> String {
    account
        .and_then(|i| accounts.get(i))
        .map_or_else(|| watcher.to_string(), |a| a.aor.to_string())
}

use std::sync::atomic::Ordering;

/// What a list NOTIFY says of one resource.
#[derive(Debug)]
enum ResourceUpdate {
    /// Its state, to mirror.
    Set(crate::model::package::Document),
    /// No state (pending, terminated): its mirror is removed.
    Clear,
    /// Listed without a state part (unchanged, or a nested list): left as it is.
    Keep,
}

/// Reads a list NOTIFY's body strictly (RFC 4662 §5): whether it is full state, and what it
/// says of each resource it lists. Any fault (boundary, root, a `cid` without its part, a
/// part of another type, a state document that does not parse) refuses the whole body.
fn list_updates(
    m: &SipMessage,
    package: Package,
    limits: &crate::doc::Limits,
) -> Result<(bool, Vec<(Uri, ResourceUpdate)>)> {
    use crate::doc::rlmi::InstanceState;
    let content_type = m
        .header("Content-Type")
        .ok_or_else(|| Error::Malformed("list NOTIFY without Content-Type".into()))?;
    let body = crate::sip::list_body::ListBody::parse(content_type, m.body(), limits)?;
    let mut updates = Vec::with_capacity(body.rlmi.resources.len());
    for r in &body.rlmi.resources {
        let uri = Uri::parse(&r.uri)?;
        let mut update = ResourceUpdate::Clear;
        for instance in &r.instances {
            if instance.state != InstanceState::Active {
                continue;
            }
            let Some(part) = body.state_of(instance) else {
                if instance.cid.is_some() {
                    return Err(Error::Malformed(format!(
                        "instance {} of {} names a part the body lacks",
                        instance.id, r.uri
                    )));
                }
                update = ResourceUpdate::Keep;
                continue;
            };
            if part.is("multipart/related") {
                log::debug!("list: {} is a nested list, not mirrored", r.uri);
                update = ResourceUpdate::Keep;
                continue;
            }
            if !part.is(package.content_type()) {
                return Err(Error::Malformed(format!(
                    "the state of {} is {}, not {}",
                    r.uri,
                    part.content_type,
                    package.content_type()
                )));
            }
            let text = std::str::from_utf8(&part.body)
                .map_err(|_| Error::Malformed(format!("the state of {} is not UTF-8", r.uri)))?;
            update = ResourceUpdate::Set(package.parse(text, limits)?);
            break;
        }
        updates.push((uri, update));
    }
    Ok((body.rlmi.full_state, updates))
}

/// Mirrors a list NOTIFY into the engine: each resource's state as its publication; in full
/// state, the resources it does not list lose theirs.
fn mirror_list(
    engine: &crate::engine::Core,
    b: &mut Backend,
    full_state: bool,
    updates: Vec<(Uri, ResourceUpdate)>,
) {
    if full_state {
        let listed: HashSet<String> = updates.iter().map(|(u, _)| presentity_key(u)).collect();
        let gone: Vec<String> = b
            .mirrored
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((_, etag)) = b.mirrored.remove(&k) {
                let _ = engine.remove_publication(&etag);
            }
        }
    }
    for (uri, update) in updates {
        let k = presentity_key(&uri);
        match update {
            ResourceUpdate::Keep => {}
            ResourceUpdate::Clear => {
                if let Some((_, etag)) = b.mirrored.remove(&k) {
                    let _ = engine.remove_publication(&etag);
                }
            }
            ResourceUpdate::Set(doc) => {
                let etag = match b.mirrored.get(&k) {
                    Some((_, etag)) => match engine.modify_publication(etag, doc.clone()) {
                        Err(Error::UnknownEntityTag(_)) => {
                            engine.publish(&uri, doc, Some(u32::MAX))
                        }
                        other => other,
                    },
                    None => engine.publish(&uri, doc, Some(u32::MAX)),
                };
                match etag {
                    Ok(etag) => {
                        b.mirrored.insert(k, (uri, etag));
                    }
                    Err(e) => log::warn!("list: cannot mirror {uri}: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::pidf::{Basic, Presence, Tuple};

    fn presence(entity: &str, tuple: &str, basic: Basic) -> Document {
        let mut p = Presence::new(entity);
        p.tuples.push(Tuple::new(tuple, basic));
        Document::Presence(p)
    }

    #[test]
    fn a_fetch_shares_only_what_the_shared_dialog_shows_and_never_a_neutral_document() {
        let dave = "sip:dave@b.test";
        let open = presence(dave, "phone", Basic::Open);
        let closed = presence(dave, "phone", Basic::Closed);
        let p = Package::Presence;
        assert_eq!(judge(Some(&open), Some(&open), p), Verdict::Alike);
        assert_eq!(judge(Some(&open), Some(&closed), p), Verdict::Own);
        assert_eq!(judge(Some(&open), None, p), Verdict::Own);
        // Nothing shown either way: cannot tell.
        assert_eq!(judge(None, None, p), Verdict::Unsure);
        assert_eq!(judge(None, Some(&open), p), Verdict::Own);
        // The neutral document, even when the shared dialog shows the same.
        let neutral = crate::engine::compose::neutral(p, &Uri::parse(dave).unwrap());
        assert_eq!(judge(Some(&neutral), Some(&neutral), p), Verdict::Own);
        let look_alike = presence(
            dave,
            crate::engine::compose::NEUTRAL_TUPLE_ID,
            Basic::Closed,
        );
        assert_eq!(judge(Some(&look_alike), Some(&look_alike), p), Verdict::Own);
    }

    #[test]
    fn dialog_documents_compare_without_their_per_subscription_version() {
        let body = |version: u32| {
            format!(
                "<?xml version=\"1.0\"?><dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"sip:dave@b.test\"><dialog id=\"d1\"><state>confirmed</state></dialog></dialog-info>"
            )
        };
        let limits = crate::doc::Limits::default();
        let a = Package::Dialog.parse(&body(3), &limits).unwrap();
        let b = Package::Dialog.parse(&body(9), &limits).unwrap();
        assert_ne!(a, b);
        assert_eq!(judge(Some(&a), Some(&b), Package::Dialog), Verdict::Alike);
    }
}
