//! The list server (RFC 4662): a SUBSCRIBE to a resource list of an owned domain
//! ([`crate::model::list`]) watches every resource of the list in one dialog, notified with
//! `multipart/related` bodies whose root is an RLMI document ([`crate::sip::list_body`]).
//!
//! # Who may subscribe
//!
//! Any authenticated user of an owned domain (its identity checked as for any SUBSCRIBE);
//! a watcher of another domain gets `403`. What each user then sees of each resource is
//! decided by that resource's own authorization rules, as if the user watched it alone.
//!
//! # Lists sent in the SUBSCRIBE (RFC 5367)
//!
//! A SUBSCRIBE that requires `recipient-list-subscribe` carries its own list
//! ([`crate::sip::recipient_list`]: a resource-lists body, maybe deflated or gzipped): the
//! dialog watches those resources, an ad-hoc list, instead of a stored one. Its Request-URI,
//! any URI of an owned domain (Linphone's `rls_uri`), only names the list (the RLMI `uri`):
//! the body wins over a list stored under that URI, so none is needed. The body is read
//! once the subscriber is authenticated (nothing is inflated for a stranger); one that cannot
//! be read gets `400` with the reason and makes nothing. A refresh without a body keeps the
//! list, one with a body replaces it (a dialog of a stored list takes none: `400`). The
//! option tag itself is known to the node's `420` check (`crate::sip::server::bad_extension`).
//!
//! # Linphone's dialect, an interoperability exception
//!
//! liblinphone 5.1 (Linphone's engine) takes a list NOTIFY to its friend list only when the
//! Event header is exactly `Presence` (it compares with that string, case-sensitively, though
//! RFC 6665 compares packages byte by byte and it subscribed with `presence`), and finds a
//! resource's part only under a header spelled `Content-Id` whose value is the RLMI `cid`
//! without the angle brackets RFC 2045 requires. Spelled as the RFCs have them, its NOTIFYs
//! are answered `200` and nothing is shown. So a subscriber whose User-Agent names Linphone
//! or belle-sip ([`linphone_dialect`]) gets `Event: Presence` (for the presence package) and
//! `Content-Id: cid` part headers ([`ContentIdStyle::Bare`]); everyone else the standard
//! spelling. It is decided when the dialog starts and written in its record, so it holds
//! after a restart. It applies to every Linphone version: whether one that reads the
//! standard spelling still reads this one is not known (tests/linphone.rs would tell).
//!
//! # Members and back subscriptions, inside the engine
//!
//! A list dialog watches each resource of the expanded list for the list's subscriber, with
//! no SIP to itself, in one of two ways:
//!
//! - A resource of an owned domain (not served elsewhere) is watched through a **member** of
//!   the resource's shared subscription ([`crate::engine::member`]): one per (resource,
//!   package) however many lists hold it, the subscriber authorized as a member by the
//!   resource's own rules. A member's notification (its own state) reaches the entries of
//!   its watcher's dialogs that hold the resource; the group's (the resource's document
//!   changed) reaches every entry that shows the composed document, through one index of the
//!   entries by resource (`holders`): a change of a key is one engine notification, not one
//!   per list. A member has no expiry and needs no refresh; it is joined when its entry is
//!   made and left when the entry or the dialog goes (one engine call per shard for all of a
//!   dialog's resources).
//!
//! A list server keeps one entry per resource of every list dialog (fifty thousand for a
//! thousand busy-lamp panels of fifty keys), so what the entries of a resource share is kept
//! once, in the resource (`Watched`, one per package and resource key): its URI, the
//! composed document the entries that follow it show, its holders. An entry is twelve bytes
//! (its resource's index, its instance id, its state); what few entries have of their own (a
//! back subscription, a document not the composed one, another spelling of the resource's
//! URI) is kept beside the entries (`Apart`), and a holder names its dialog by a four-byte
//! slot, not its id.
//! - A resource of another domain gets a **back subscription** of its own: an engine
//!   subscription whose target starts with [`LIST_TARGET`] (then the dialog's record,
//!   [`record`]), a local watcher of a remote presentity that federation's back-end role
//!   serves through its shared back-end subscription (module `crate::sip::agent::backend`),
//!   as for any local watcher (it decides on such watchers one by one, which a member could
//!   not give it). Back subscriptions are made, refreshed and ended with the list dialog; a
//!   back notification finds its entry through `by_back`.
//!
//! Either way the state maps to the resource's RLMI instance: pending → `pending`, active →
//! `active` with the document the engine composed for the watcher (a polite block's neutral
//! one too) in a part of its own, terminated → `terminated` with the reason (a blocked
//! subscriber: `rejected`; a resource that comes back after it ended is a new instance).
//! Engine calls are made outside the role's lock (a round trip each would hold back every
//! other list dialog and the events thread); the entries are in the table before any
//! notification of theirs can come.
//!
//! # After a restart
//!
//! Each list dialog has a row of its own in the store's table of list dialogs (soft state,
//! [`crate::store::ListDialogRecord`]), written when it is made and at each refresh, deleted
//! when it ends: its record ([`record`]: its id, the list's URI and the SIP dialog) and, for
//! an ad-hoc list, its resources' URIs ([`stored_record`]). [`ListServer::start`] rebuilds
//! each dialog from its row, expands its list again, joins its members again, finds its back
//! subscriptions again in the store (their target is the same record; an earlier version
//! kept only those, and such a dialog still comes back from them), has the engine tell every
//! resource's state again and sends the full state in the same dialog. Display names of an
//! ad-hoc list are not kept. The RLMI version and the CSeq are not written at each NOTIFY; a
//! restored dialog continues from the seconds counted on the wall clock
//! ([`restart_version`]), and no dialog sends a version ahead of that count ([`pace_ms`]: a
//! NOTIFY waits a second at most, and only after a restart or beyond one NOTIFY a second),
//! so both keep rising for the subscriber across any number of restarts. Unreadable records,
//! lists gone or no longer serving the package, and dialogs that expired while the server
//! was down are forgotten (row deleted, back subscriptions ended). New dialogs are numbered
//! above every restored one, so a tag never names two.
//!
//! # NOTIFYs
//!
//! The first NOTIFY (sent once every resource's first state is known) and the one after
//! each refresh carry full state; the others only the resources that changed. The RLMI
//! `version` counts the NOTIFYs of the dialog from 0. Changes are collected over
//! [`crate::sip::SipServerConfig::list_batch_interval`] from the first change after a
//! NOTIFY (on the engine's clock, through the stack's alarm), and one NOTIFY is in flight
//! per dialog: what changes meanwhile merges (the latest state of each resource) into the
//! next one. A NOTIFY answered 401 or 407 counts as answered (no credentials to offer); one
//! refused with `Retry-After: N` (but 408 and 481) that ends before the dialog does holds
//! the dialog N seconds, then its full state goes out (what changed meanwhile in it), as for
//! single subscriptions; any other failure (or no answer) ends the list dialog and its back
//! subscriptions.
//!
//! A shared subscription's own notification (its composed document changed: one per change
//! of a busy lamp) can only show at the end of the batch it opens. With a batch of
//! [`BATCH_SLACK_FROM_MS`] or more it does not go through the engine's port queue and the
//! events thread: the port hands it over on the shard's thread
//! ([`crate::engine::Port::take_inline`]), it waits in the role's inbox (the latest state of
//! each subscription), and the timer thread applies it, timed from when it came, at the end
//! of that batch or on any earlier round. One thread fewer is woken per change. While a
//! dialog waits for its full state the inbox is applied at once (such a notification may be
//! the last report the dialog waits for).
//!
//! # The list changing
//!
//! A list is expanded when subscribed and again at each refresh: resources added are joined
//! or subscribed, removed ones left or ended, and the refresh's full-state NOTIFY shows the
//! list as it is then. Between refreshes the dialog watches the resources it expanded to.
//! A resource whose back subscription ended (rejected, say), or whose member was refused or
//! sent elsewhere, is subscribed or joined again at the next refresh, so a rule changed
//! meanwhile counts (a member blocked by a rule needs no refresh: the rule allowing it again
//! is enough).
//!
//! `Expires: 0` (an unsubscribe, or a fetch on the first SUBSCRIBE) leaves the members, ends
//! the back subscriptions and sends a final full-state NOTIFY, `terminated`; the dialog's
//! expiry does the same with `terminated;reason=timeout`.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::auth::Authentication;
use super::dialog_table::{notify_destination, restart_cseq};
use crate::doc::rlmi::{InstanceState, Rlmi, RlmiWriter};
use crate::engine::member::{GROUP_TARGET, MEMBER_TARGET};
use crate::engine::{
    Document, EngineHandle, Notification, SubscribeRequest, SubscriptionInfo, SubscriptionState,
    TerminationReason,
};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::list::{Resource, LIST_PACKAGES};
use crate::model::package::Package;
use crate::model::snug::{push_snug, trim_snug};
use crate::sip::dialog::{DialogView, SubscriptionDialog};
use crate::sip::header::Contacts;
use crate::sip::list_body::{self, WrittenPart};
use crate::sip::multipart::{BodyPart, ContentIdStyle, MultipartRelated};
use crate::sip::recipient_list;
use crate::sip::stack::{lock, push_hex, Reply, Request, Stack, Waiting};
use crate::sip::transport::Proto;
use crate::sip::SipMessage;
use crate::uri::Uri;

/// How long a full-state NOTIFY waits for resources that have not told their first state
/// yet (clock ms), when the batching interval is shorter: the full state goes out as soon as
/// every resource has told its state, and after this at the latest (a resource whose
/// subscription never reports must not hold the list back). Without it, a batching interval
/// of 0 would send every resource as pending and correct it at once in a partial NOTIFY.
const FIRST_STATE_WAIT_MS: u64 = 200;

/// How the target of a back subscription starts (then the list dialog's record: see
/// [`record`]).
pub(crate) const LIST_TARGET: &[u8] = b"impp-list ";

/// The longest a NOTIFY is held to keep the RLMI version behind the seconds counted by
/// [`restart_cseq`] (see [`pace_ms`]): the pace holds a NOTIFY a second at most, so a longer
/// wait means the wall clock stepped back, and the NOTIFY goes rather than wait for it.
const MAX_PACE_MS: u64 = 2_000;

/// The least grid (clock ms) a batch's end is rounded up to when batching lasts at least
/// [`BATCH_SLACK_FROM_MS`]; the grid is a tenth of the batching interval when that is more
/// ([`batch_end`]). The dialogs whose batches end on the same grid line send their NOTIFYs
/// in one turn of the timer thread (and the I/O thread and the workers take them and their
/// answers together), instead of each waking those threads at a millisecond of its own: a
/// thousand busy-lamp panels batching for a second otherwise wake them about a thousand
/// times a second; on a 100 ms grid, ten. A batch so lasts its interval and at most a tenth
/// more (1 to 1.1 s by default); measured with benches/rls (list mode, 1,000 panels): a 20 ms
/// grid cost about a fifth more CPU per change than a 100 ms one.
const BATCH_SLACK_MS: u64 = 20;

/// The least batching interval whose ends are rounded to a grid (a shorter one asked for
/// promptness the rounding would take away).
const BATCH_SLACK_FROM_MS: u64 = 200;

/// When a batch of `batch_ms` that starts at `now` ends (see [`BATCH_SLACK_MS`]).
fn batch_end(now: u64, batch_ms: u64) -> u64 {
    let at = now + batch_ms;
    if batch_ms >= BATCH_SLACK_FROM_MS {
        at.next_multiple_of((batch_ms / 10).max(BATCH_SLACK_MS))
    } else {
        at
    }
}

/// The option tag of RFC 4662.
const EVENTLIST: &str = "eventlist";

/// Where a local tag's list dialog id starts: after `.l` (a notifier's tag has hex digits
/// only after its dot, so the two never take each other's dialogs).
const TAG_MARK: &str = ".l";

/// The list server role.
pub(crate) struct ListServer {
    me: Weak<ListServer>,
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    /// How long changes are collected before a partial NOTIFY (clock ms).
    batch_ms: u64,
    /// The multipart boundary of its NOTIFYs: random, drawn once, so that no document's
    /// bytes need be scanned for it more than once (when written, [`Rendered::clashes`]).
    boundary: String,
    table: Mutex<Table>,
    /// Notifications of shared subscriptions taken on the shards' threads
    /// ([`ListServer::take_inline`]), for the timer thread to apply.
    inbox: Mutex<Inbox>,
    /// How many dialogs wait for their full state (new or restored, or refreshed, and not
    /// sent yet; set again by each tick while any does): while one does, a shared
    /// subscription's notification is applied at once, as it may be the last report it
    /// waits for.
    awaiting_full: AtomicUsize,
}

/// The notifications of shared subscriptions that wait for the timer thread (see
/// [`ListServer::take_inline`]).
#[derive(Default)]
struct Inbox {
    /// Each with the clock ms it came at, in order; one per subscription (a later one merges
    /// into it and keeps its time: the batch it opened stays the one it opened).
    notes: Vec<(u64, Notification)>,
    at: HashMap<SubscriptionId, usize>,
    /// When the timer thread must have applied them: the end of the earliest batch they
    /// open, or now while a dialog waits for its full state.
    due: Option<u64>,
}

/// The list dialogs and which back subscription belongs to which.
#[derive(Default)]
struct Table {
    /// Boxed: a dialog is about 350 bytes, and a map's free slots would each be as large.
    dialogs: HashMap<u64, Box<ListDialog>>,
    /// The dialog of each slot ([`ListDialog::slot`]; `u64::MAX`: free), and the free
    /// slots: the holders of a resource name a dialog by its slot, four bytes, where its id
    /// would take eight (a list server keeps one holder per resource of every list).
    slots: Vec<u64>,
    free_slots: Vec<u32>,
    /// Each back subscription's list dialog, and its entry there (an index of the dialog's
    /// `resources`, set again whenever they are rebuilt: see [`Table::index`]).
    by_back: HashMap<SubscriptionId, (u64, usize)>,
    /// The resources the entries name, each once.
    watched: Resources,
    next_id: u64,
    rendered: RenderedDocs,
    /// When the timer thread is to look at which dialog, earliest first: a dialog's next
    /// NOTIFY ([`Table::schedule`]) and its end ([`Table::schedule_end`]), pushed when they
    /// are set, so that a tick looks only at the dialogs with something due, not at every
    /// dialog (a thousand busy-lamp panels send about as many NOTIFYs a second, each at a
    /// time of its own). An entry made stale by a later change (an earlier NOTIFY, a
    /// refresh) wakes its dialog for nothing; there is one per change, so they stay few.
    wakes: BinaryHeap<Reverse<(u64, u64)>>,
}

/// The resources list dialogs watch, one [`Watched`] per (package, resource key) however
/// many entries name it: an entry names its resource by a four-byte index here instead of
/// holding its URI and document itself (a thousand busy-lamp panels of fifty keys are fifty
/// thousand entries over a thousand resources). Freed when no entry names it any more.
#[derive(Default)]
struct Resources {
    slots: Vec<Option<Watched>>,
    by_key: HashMap<(Package, String), u32>,
    free: Vec<u32>,
}

/// A resource's holder: (list dialog's slot, index of its entry). Eight bytes: a list
/// server keeps one per resource of every list served by members.
type Holder = (u32, u32);

/// One resource of one package, for every entry that names it.
struct Watched {
    /// The resource as the first list to name it wrote it (an entry whose list spells it
    /// otherwise keeps its own spelling beside it, [`Apart::uri`]); the engine's own copy of
    /// it once a notification shows they are the same.
    uri: Arc<Uri>,
    package: Package,
    /// The document it shows the entries that follow the composed document
    /// ([`Entry::shows_group`]): the engine composes one for all of them, so it is kept
    /// here once, and a group's notification changes it once.
    document: Option<Arc<Rendered>>,
    /// The entries served by members of its shared subscription: (list dialog's slot,
    /// index of its entry). A group's notification (the resource's document changed)
    /// reaches them all through it.
    holders: Vec<Holder>,
    /// How many entries name it.
    entries: u32,
}

impl Resources {
    /// The resource `uri` of `package` for one more entry: its index, and the entry's own
    /// spelling of it when the resource is kept under another (an equal key, written
    /// otherwise).
    fn intern(&mut self, uri: Uri, package: Package) -> (u32, Option<Arc<Uri>>) {
        match self.by_key.entry((package, presentity_key(&uri))) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let w = self.slots[*o.get() as usize]
                    .as_mut()
                    .expect("a resource keyed is kept");
                w.entries += 1;
                let own = (*w.uri != uri).then(|| Arc::new(uri));
                (*o.get(), own)
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let w = Watched {
                    uri: Arc::new(uri),
                    package,
                    document: None,
                    holders: Vec::new(),
                    entries: 1,
                };
                let at = match self.free.pop() {
                    Some(at) => {
                        self.slots[at as usize] = Some(w);
                        at
                    }
                    None => {
                        self.slots.push(Some(w));
                        (self.slots.len() - 1) as u32
                    }
                };
                v.insert(at);
                (at, None)
            }
        }
    }

    /// An entry naming resource `at` goes; the resource goes with its last entry.
    fn unref(&mut self, at: u32) {
        let Some(w) = self.slots.get_mut(at as usize).and_then(Option::as_mut) else {
            return;
        };
        w.entries -= 1;
        if w.entries == 0 {
            // Holders are released before their entries go.
            debug_assert!(w.holders.is_empty());
            let key = (w.package, presentity_key(&w.uri));
            self.by_key.remove(&key);
            self.slots[at as usize] = None;
            self.free.push(at);
        }
    }

    /// The resource of `package` whose key is `key`.
    fn find(&self, package: Package, key: String) -> Option<u32> {
        self.by_key.get(&(package, key)).copied()
    }

    fn get(&self, at: u32) -> &Watched {
        self.slots[at as usize]
            .as_ref()
            .expect("an entry's resource is kept")
    }

    fn get_mut(&mut self, at: u32) -> &mut Watched {
        self.slots[at as usize]
            .as_mut()
            .expect("an entry's resource is kept")
    }

    /// Entry `e`'s resource as its list writes it, `a` what it keeps apart.
    fn uri_with<'a>(&'a self, e: &Entry, a: &'a Apart) -> &'a Arc<Uri> {
        a.uri.as_ref().unwrap_or(&self.get(e.resource).uri)
    }

    /// Entry `at` of dialog `d`'s resource as its list writes it.
    fn uri_of<'a>(&'a self, d: &'a ListDialog, at: usize) -> &'a Arc<Uri> {
        match d.apart(at).and_then(|a| a.uri.as_ref()) {
            Some(own) => own,
            None => &self.get(d.resources[at].resource).uri,
        }
    }

    /// The document entry `at` of dialog `d` shows, if any.
    fn document_of<'a>(&'a self, d: &'a ListDialog, at: usize) -> Option<&'a Arc<Rendered>> {
        let e = &d.resources[at];
        if e.shows_group() {
            self.get(e.resource).document.as_ref()
        } else {
            d.apart(at).and_then(|a| a.document.as_ref())
        }
    }
}

/// The documents written ([`Rendered`]), by the address of the engine's document each
/// holds (so the address names nothing else while it is here); swept of those no entry
/// holds any more when they have doubled since the last sweep ([`RenderedDocs::sweep`]).
#[derive(Default)]
struct RenderedDocs {
    by_address: HashMap<usize, Arc<Rendered>>,
    sweep_at: usize,
}

/// The least number of written documents kept before the first sweep.
const RENDERED_SWEEP_MIN: usize = 1024;

impl RenderedDocs {
    /// The written form of `document` ([`Rendered`]): the one already written, or written
    /// now and kept for the other lists that show it.
    fn render(&mut self, document: &Arc<Document>, boundary: &str) -> Arc<Rendered> {
        let at = Arc::as_ptr(document) as usize;
        if let Some(r) = self.by_address.get(&at) {
            return r.clone();
        }
        let body = document.to_body().into_bytes().into_boxed_slice();
        let rendered = Arc::new(Rendered {
            clashes: list_body::starts_a_line(&body, boundary),
            document: document.clone(),
            body,
        });
        self.by_address.insert(at, rendered.clone());
        rendered
    }

    /// Drops the written documents no entry holds any more, once there are twice as many as
    /// after the last sweep (so sweeping costs a constant per document written).
    fn sweep(&mut self) {
        if self.by_address.len() < self.sweep_at.max(RENDERED_SWEEP_MIN) {
            return;
        }
        self.by_address.retain(|_, r| Arc::strong_count(r) > 1);
        self.sweep_at = self.by_address.len() * 2;
    }
}

impl Table {
    /// Has the timer thread look at dialog `id` when its next NOTIFY is due.
    fn schedule(&mut self, id: u64) {
        if let Some(at) = self.dialogs.get(&id).and_then(|d| d.next_due()) {
            self.wakes.push(Reverse((at, id)));
        }
    }

    /// Has the timer thread look at dialog `id` when it expires.
    fn schedule_end(&mut self, id: u64) {
        if let Some(d) = self.dialogs.get(&id).filter(|d| d.ending.is_none()) {
            self.wakes.push(Reverse((d.expires_at, id)));
        }
    }

    /// A slot for new list dialog `id` ([`ListDialog::slot`]).
    fn take_slot(&mut self, id: u64) -> u32 {
        match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = id;
                slot
            }
            None => {
                self.slots.push(id);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Points the back subscriptions of list dialog `id` at their entries of `d`, once its
    /// resources are built (or rebuilt), under the lock the back subscriptions'
    /// notifications wait for.
    fn index(&mut self, id: u64, d: &ListDialog) {
        for (at, a) in &d.apart {
            if let Some(back) = a.back.get() {
                self.by_back.insert(back, (id, *at as usize));
            }
        }
        for (at, e) in d.resources.iter().enumerate() {
            if e.is(Entry::SHARED) {
                push_snug(
                    &mut self.watched.get_mut(e.resource).holders,
                    (d.slot, at as u32),
                );
            }
        }
    }

    /// Forgets the entries of list dialog `d` in the holders of their resources, before
    /// they are rebuilt or the dialog ends.
    fn release(&mut self, d: &ListDialog) {
        release(&mut self.watched, d);
    }
}

/// Forgets the entries of list dialog `d` in the holders of their resources (see
/// [`Table::release`]).
fn release(watched: &mut Resources, d: &ListDialog) {
    for e in d.resources.iter().filter(|e| e.is(Entry::SHARED)) {
        let h = &mut watched.get_mut(e.resource).holders;
        h.retain(|h| h.0 != d.slot);
        trim_snug(h);
    }
}

/// Frees list dialog `d`'s slot, and names its resources by one entry fewer each (see
/// [`Table::slots`]).
fn forget(slots: &mut [u64], free_slots: &mut Vec<u32>, watched: &mut Resources, d: &ListDialog) {
    for e in &d.resources {
        watched.unref(e.resource);
    }
    slots[d.slot as usize] = u64::MAX;
    free_slots.push(d.slot);
}

/// What the engine must be told of list dialogs that ended (after the table's lock).
#[derive(Default)]
struct Ended {
    backs: Vec<SubscriptionId>,
    /// Per dialog: its watcher, package and the resources its members joined.
    members: Vec<(Uri, Package, Vec<Uri>)>,
    /// Dialogs whose row in the store goes.
    dialogs: Vec<u64>,
}

impl Ended {
    /// Takes what the entries of dialog `d` hold in the engine: their back subscriptions
    /// (forgotten in `by_back`) and their members.
    fn take(
        &mut self,
        d: &mut ListDialog,
        watched: &Resources,
        by_back: &mut HashMap<SubscriptionId, (u64, usize)>,
    ) {
        for (_, a) in d.apart.iter_mut() {
            if let Some(back) = a.back.take() {
                by_back.remove(&back);
                self.backs.push(back);
            }
        }
        let mut joined = Vec::new();
        for at in 0..d.resources.len() {
            if d.resources[at].is(Entry::JOINED) {
                d.resources[at].mark(Entry::JOINED, false);
                joined.push(Uri::clone(watched.uri_of(d, at)));
            }
        }
        if !joined.is_empty() {
            self.members.push((d.watcher.clone(), d.package, joined));
        }
    }

    /// Takes what entries taken out of a dialog of `watcher` (`left`, with what each kept
    /// apart) hold in the engine, as [`Ended::take`] does.
    fn take_left(
        &mut self,
        watcher: &Uri,
        package: Package,
        left: &mut [(Entry, Apart)],
        watched: &Resources,
        by_back: &mut HashMap<SubscriptionId, (u64, usize)>,
    ) {
        let mut joined = Vec::new();
        for (e, a) in left.iter_mut() {
            if let Some(back) = a.back.take() {
                by_back.remove(&back);
                self.backs.push(back);
            }
            if e.is(Entry::JOINED) {
                e.mark(Entry::JOINED, false);
                let uri = a.uri.as_ref().unwrap_or(&watched.get(e.resource).uri);
                joined.push(Uri::clone(uri));
            }
        }
        if !joined.is_empty() {
            self.members.push((watcher.clone(), package, joined));
        }
    }

    /// Ends them in the engine.
    fn finish(self, engine: &crate::engine::Core) {
        for back in self.backs {
            let _ = engine.unsubscribe(back);
        }
        for (watcher, package, resources) in self.members {
            let _ = engine.leave(&watcher, package, &resources);
        }
        for id in self.dialogs {
            engine.delete_list_dialog(id);
        }
    }
}

/// Whether `resource` is served by a member of its shared subscription (a resource of an
/// owned domain not served elsewhere) rather than a back subscription of its own.
fn shared_resource(engine: &crate::engine::Core, resource: &Uri) -> bool {
    engine.config().owns(resource) && engine.served_here(resource).is_none()
}

/// One list subscription.
struct ListDialog {
    /// The SIP dialog in its compact form ([`SubscriptionDialog::to_bytes`]), read in place
    /// for each NOTIFY ([`DialogView`]) and shared with the NOTIFYs in flight: about 150
    /// bytes, where the dialog itself is 240 and eight strings of its own.
    dialog: Arc<[u8]>,
    /// The list's URI as the subscriber wrote it (the RLMI `uri`).
    list_text: String,
    list_uri: Uri,
    list_name: Option<String>,
    /// The resources of an ad-hoc list (RFC 5367: the subscriber sent them in its
    /// SUBSCRIBE), which the dialog watches instead of a stored list; `None`: the stored
    /// list `list_uri`, expanded at each refresh.
    adhoc: Option<Vec<Resource>>,
    /// Its NOTIFYs are written in Linphone's dialect ([`linphone_dialect`]).
    linphone: bool,
    watcher: Uri,
    /// The watcher's key (members' notifications name the watcher).
    watcher_key: String,
    package: Package,
    /// Its place in the table's slots ([`Table::slots`]), by which its resources' holders
    /// name it.
    slot: u32,
    resources: Vec<Entry>,
    /// What the few entries that need more than an [`Entry`] keep (a back subscription, a
    /// document of their own, a spelling of their own), by index of the entry (in order).
    apart: Vec<(u32, Apart)>,
    /// The display names of its resources that have one, by RLMI instance id (in order):
    /// rare in busy-lamp lists, so not a field of every entry.
    names: Vec<(u32, Box<str>)>,
    /// The RLMI instance id of the next back subscription made ([`Entry::instance`]).
    next_instance: u32,
    /// The RLMI version of the next NOTIFY.
    version: u32,
    next_cseq: u32,
    /// When it ends (clock ms).
    expires_at: u64,
    /// A NOTIFY waits for its answer.
    in_flight: bool,
    /// The next NOTIFY carries full state.
    full: bool,
    /// When the next NOTIFY is due (clock ms); `None`: nothing to tell.
    due: Option<u64>,
    /// No NOTIFY but the final one before this (clock ms): the subscriber's Retry-After,
    /// or the version's pace after a restart ([`pace_ms`]).
    hold_until: Option<u64>,
    /// The dialog ends with its next NOTIFY, with this Subscription-State reason.
    ending: Option<Option<&'static str>>,
}

/// One resource of a list dialog, and what it last told. Kept at 8 bytes: a list server
/// holds one per resource of every list subscription (50,000 for a thousand busy-lamp
/// panels of 50 keys), so its instance id, state, reason and marks share one word
/// ([`Entry::bits`]). What all the entries of a resource share (its URI, the composed
/// document) is the resource's ([`Watched`]); what few entries have (a back subscription,
/// a document of their own) is beside the entries ([`ListDialog::apart`]).
struct Entry {
    /// Its resource ([`Resources`]).
    resource: u32,
    /// From the lowest bit: the RLMI instance id (22 bits: [`INSTANCE_BITS`]), a number of
    /// the dialog's, stable while the instance lives (a new back subscription or a resource
    /// back after it ended gets a new one), written in hex; the instance state (2 bits);
    /// the termination reason (3 bits, 0 for none); what is known of it (5 bits, one each:
    /// [`Entry::REPORTED`] and the others).
    bits: u32,
}

/// The bits of an RLMI instance id: a dialog numbers its instances from 1 and wraps to 1
/// after 4,194,303 (an instance that old has long ended: ids name the live ones).
const INSTANCE_BITS: u32 = 22;
const INSTANCE_MASK: u32 = (1 << INSTANCE_BITS) - 1;
const STATE_SHIFT: u32 = INSTANCE_BITS;
const REASON_SHIFT: u32 = STATE_SHIFT + 2;
const MARKS_SHIFT: u32 = REASON_SHIFT + 3;

/// The termination reasons an entry keeps, by their 3-bit number less one.
const REASONS: [TerminationReason; 6] = [
    TerminationReason::Deactivated,
    TerminationReason::Probation,
    TerminationReason::Rejected,
    TerminationReason::Timeout,
    TerminationReason::Giveup,
    TerminationReason::Noresource,
];

/// What an entry keeps beside it, when it has any of it ([`ListDialog::apart`]).
#[derive(Default)]
struct Apart {
    back: Back,
    /// The document it shows the subscriber (while active) when not the resource's
    /// composed one ([`Watched::document`]): a back subscription's, or a member's neutral
    /// one (politely blocked).
    document: Option<Arc<Rendered>>,
    /// Its list's spelling of the resource, when the resource is kept under another.
    uri: Option<Arc<Uri>>,
}

impl Apart {
    fn is_empty(&self) -> bool {
        self.back == Back::NONE && self.document.is_none() && self.uri.is_none()
    }
}

/// A document a back subscription delivered, with its bytes as a NOTIFY part: written once
/// per document, not once per list that shows it (the engine shares one composed document
/// between the watchers that see the same; 50 lists watching a key get the same `Arc`).
struct Rendered {
    document: Arc<Document>,
    body: Box<[u8]>,
    /// The server's boundary starts a line of `body`: a NOTIFY carrying it is written the
    /// checked way, under a boundary chosen for it ([`ListBody::encode_with`]).
    clashes: bool,
}

/// A NOTIFY built under the lock, sent after it.
struct Prepared {
    id: u64,
    /// The Event header, when not the dialog's own (Linphone's dialect).
    event: Option<&'static str>,
    /// The dialog's compact form ([`ListDialog::dialog`]).
    dialog: Arc<[u8]>,
    cseq: u32,
    state: String,
    content_type: String,
    body: Vec<u8>,
}

/// A NOTIFY's answer goes back to the list server.
struct NotifyWaiter {
    role: Weak<ListServer>,
    id: u64,
}

impl Waiting for NotifyWaiter {
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            let retry_after = response.and_then(SipMessage::retry_after);
            role.notify_outcome(self.id, status, retry_after);
        }
    }

    fn early(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// The list dialog a local tag names.
fn dialog_in_tag(tag: &str) -> Option<u64> {
    let at = tag.rfind(TAG_MARK)?;
    u64::from_str_radix(&tag[at + TAG_MARK.len()..], 16).ok()
}

/// What a list dialog's record says of it besides its list and its SIP dialog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    /// Its list is ad-hoc (RFC 5367): its resources are its back subscriptions' presentities.
    adhoc: bool,
    /// Its NOTIFYs are written in Linphone's dialect.
    linphone: bool,
}

/// The record of list dialog `id`, kept in its row of the store's table of list dialogs
/// ([`stored_record`]; an earlier version had each back subscription carry it as its
/// target, and a dialog it stored so still comes back): [`LIST_TARGET`], the id in hex, a space,
/// the list's URI as the subscriber wrote it, then ` adhoc` for an ad-hoc list and
/// ` linphone` for Linphone's dialect ([`Flags`]), a line feed, then the dialog
/// ([`SubscriptionDialog::to_bytes_beside`], leaving out the local URI when it is the list's
/// text and the remote one when it is the watcher's). The watcher, the package and the
/// expiry are the row's own. What changes with each NOTIFY (the RLMI version, the CSeq) is not
/// written: a restored dialog continues from the wall clock ([`restart_version`]).
fn record(
    id: u64,
    list_text: &str,
    flags: Flags,
    dialog: &SubscriptionDialog,
    watcher: &str,
) -> Arc<[u8]> {
    let mut out = LIST_TARGET.to_vec();
    out.extend_from_slice(format!("{id:x} {list_text}").as_bytes());
    if flags.adhoc {
        out.extend_from_slice(b" adhoc");
    }
    if flags.linphone {
        out.extend_from_slice(b" linphone");
    }
    out.push(b'\n');
    out.extend_from_slice(&dialog.to_bytes_beside(list_text, watcher));
    out.into()
}

/// The target of list dialog `id`'s back subscriptions: [`LIST_TARGET`] and the id alone
/// (the dialog's record is its row in the store, [`stored_record`]), so that they are found
/// again after a restart: a few bytes each, and only for resources of other domains.
fn back_target(id: u64) -> Arc<[u8]> {
    let mut out = LIST_TARGET.to_vec();
    out.extend_from_slice(format!("{id:x}").as_bytes());
    out.into()
}

/// What a record holds besides the id: the list's text, its flags and the dialog's bytes.
type Written<'a> = (&'a str, Flags, &'a [u8]);

/// A record or a back subscription's target read: the list dialog's id and, unless it is
/// the id alone ([`back_target`]), the list's text and the dialog's bytes; `None`: not a
/// list's.
fn read_record(target: &[u8]) -> Option<(u64, Option<Written<'_>>)> {
    let rest = target.strip_prefix(LIST_TARGET)?;
    let (head, dialog) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut words = head.split(' ');
    let id = u64::from_str_radix(words.next()?, 16).ok()?;
    let list_text = words.next();
    let mut flags = Flags::default();
    for word in words {
        match word {
            "adhoc" => flags.adhoc = true,
            "linphone" => flags.linphone = true,
            _ => return None,
        }
    }
    Some((id, list_text.zip(dialog).map(|(l, d)| (l, flags, d))))
}

/// The RLMI version a list dialog restored after a restart continues from: one more than the
/// seconds [`restart_cseq`] counts at the restart. A list dialog never sends a version
/// ahead of those seconds ([`pace_ms`]), so every version it sent before the restart is
/// lower, however many restarts came before; its CSeq, always the version plus one, rises
/// with it.
fn restart_version(unix_ms: u64) -> u32 {
    restart_cseq(unix_ms).saturating_add(1)
}

/// How long (ms) the NOTIFY of RLMI version `version` waits at wall-clock time `unix_ms`, so
/// that no version goes out before [`restart_cseq`] has counted that many seconds: 0 for
/// every dialog that sent fewer NOTIFYs than seconds passed since its last restart (a fresh
/// one starts at 0, far behind), at most a second after a restart or for a dialog that sent
/// more than one a second since; 0 as well when the wait is longer than [`MAX_PACE_MS`] (the
/// wall clock stepped back) or the wall clock is before the count's start (not set: there is
/// nothing to keep pace with).
fn pace_ms(version: u32, unix_ms: u64) -> u64 {
    let counted = u64::from(restart_cseq(unix_ms));
    let version = u64::from(version);
    if version <= counted || counted == 0 {
        return 0;
    }
    let wait = (version - counted) * 1000 - unix_ms % 1000;
    if wait > MAX_PACE_MS {
        0
    } else {
        wait
    }
}

/// The back subscription of `watcher` to `resource` for a list dialog whose record is
/// `target`.
fn back_request(
    watcher: &Uri,
    resource: Uri,
    package: Package,
    target: &Arc<[u8]>,
    expires: u32,
) -> SubscribeRequest {
    let mut request = SubscribeRequest::new(watcher.clone(), resource, package);
    request.target = Some(target.clone());
    request.expires = Some(expires);
    // The list server batches; the engine need not hold notifications back.
    request.min_interval = Some(std::time::Duration::ZERO);
    request
}

/// An entry's back subscription, if it has one, in eight bytes (an `Option` of an id takes
/// sixteen): `u64::MAX` is none (the engine numbers subscriptions up from zero).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Back(u64);

impl Back {
    const NONE: Back = Back(u64::MAX);

    fn of(id: SubscriptionId) -> Back {
        Back(id.0)
    }

    fn get(self) -> Option<SubscriptionId> {
        (self != Back::NONE).then_some(SubscriptionId(self.0))
    }

    fn take(&mut self) -> Option<SubscriptionId> {
        std::mem::replace(self, Back::NONE).get()
    }
}

impl Default for Back {
    fn default() -> Back {
        Back::NONE
    }
}

/// Entry `e` of list dialog `id` (resource `uri`), whose subscription or member the engine
/// refused with `error`: a terminated instance (`rejected` when the resource's rules or
/// bounds said no).
fn refused(id: u64, uri: &Uri, e: &mut Entry, error: &Error) {
    log::debug!("list dialog {id}: no subscription to {uri}: {error}");
    e.set_state(InstanceState::Terminated);
    e.set_reason(Some(match error {
        // A resource whose rules send this subscriber to another presence agent is not
        // served in this list: RLMI has no place for the target, so it reads as refused.
        Error::Forbidden(_) | Error::LimitReached(_) | Error::Moved(_) => {
            TerminationReason::Rejected
        }
        _ => TerminationReason::Noresource,
    }));
    e.mark(Entry::REPORTED, true);
    e.mark(Entry::CHANGED, true);
}

/// A resource's entry with RLMI instance id `instance` in a dialog of `package`, before
/// anything is told of it: pending, to be told; and what it keeps apart (its spelling of the
/// resource, when the resource is kept under another).
fn new_entry(
    watched: &mut Resources,
    package: Package,
    resource: Resource,
    instance: u32,
) -> (Entry, Apart) {
    let (at, uri) = watched.intern(resource.uri, package);
    let mut e = Entry {
        resource: at,
        bits: 0,
    };
    e.set_instance(instance);
    e.set_state(InstanceState::Pending);
    e.mark(Entry::CHANGED, true);
    (
        e,
        Apart {
            uri,
            ..Apart::default()
        },
    )
}

impl Entry {
    /// Its first state is known.
    const REPORTED: u8 = 1;
    /// Changed since the last NOTIFY.
    const CHANGED: u8 = 2;
    /// Served by a member of the resource's shared subscription (a resource of an owned
    /// domain, [`crate::engine::member`]), not by a back subscription of its own.
    const SHARED: u8 = 4;
    /// Its member was made (the engine took the join).
    const JOINED: u8 = 8;
    /// It shows the resource's composed document: the group's notifications update it.
    const FOLLOWS: u8 = 16;

    /// It shows its resource's composed document ([`Watched::document`]): a member's entry
    /// that follows it, while active.
    fn shows_group(&self) -> bool {
        self.is(Entry::SHARED) && self.is(Entry::FOLLOWS) && self.state() == InstanceState::Active
    }

    fn is(&self, mark: u8) -> bool {
        self.bits & (u32::from(mark) << MARKS_SHIFT) != 0
    }

    fn mark(&mut self, mark: u8, on: bool) {
        let bit = u32::from(mark) << MARKS_SHIFT;
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    /// Its RLMI instance id.
    fn instance(&self) -> u32 {
        self.bits & INSTANCE_MASK
    }

    fn set_instance(&mut self, instance: u32) {
        debug_assert!(instance <= INSTANCE_MASK);
        self.bits = (self.bits & !INSTANCE_MASK) | (instance & INSTANCE_MASK);
    }

    fn state(&self) -> InstanceState {
        match (self.bits >> STATE_SHIFT) & 3 {
            0 => InstanceState::Pending,
            1 => InstanceState::Active,
            _ => InstanceState::Terminated,
        }
    }

    fn set_state(&mut self, state: InstanceState) {
        let n = match state {
            InstanceState::Pending => 0,
            InstanceState::Active => 1,
            InstanceState::Terminated => 2,
        };
        self.bits = (self.bits & !(3 << STATE_SHIFT)) | (n << STATE_SHIFT);
    }

    fn reason(&self) -> Option<TerminationReason> {
        let n = (self.bits >> REASON_SHIFT) & 7;
        (n != 0).then(|| REASONS[n as usize - 1])
    }

    fn set_reason(&mut self, reason: Option<TerminationReason>) {
        let n = reason.map_or(0, |r| {
            REASONS
                .iter()
                .position(|&k| k == r)
                .expect("every reason is kept") as u32
                + 1
        });
        self.bits = (self.bits & !(7 << REASON_SHIFT)) | (n << REASON_SHIFT);
    }
}

/// What was saved of a list dialog, from the store's table or an earlier version's back
/// subscriptions.
struct Saved {
    watcher: Uri,
    package: Package,
    /// Its record ([`record`]).
    target: Vec<u8>,
    expires_in: std::time::Duration,
    /// An ad-hoc list's resources.
    adhoc: Option<Vec<Resource>>,
}

impl Saved {
    /// From its row in the store's table (see [`stored_record`]), at wall-clock `unix_ms`.
    fn from_row(row: &crate::store::ListDialogRecord, unix_ms: u64) -> Option<Saved> {
        let at = row.record.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&row.record[..at]).ok()?;
        let resources: Vec<Resource> = line
            .split(' ')
            .filter(|u| !u.is_empty())
            .map(|u| Uri::parse(u).map(Resource::new))
            .collect::<Result<_>>()
            .ok()?;
        let target = row.record[at + 1..].to_vec();
        let adhoc = read_record(&target)
            .and_then(|(_, w)| w)
            .is_some_and(|(_, flags, _)| flags.adhoc)
            .then_some(resources);
        Some(Saved {
            watcher: row.watcher.clone(),
            package: row.package,
            target,
            expires_in: std::time::Duration::from_millis(row.expires_at.saturating_sub(unix_ms)),
            adhoc,
        })
    }

    /// From an earlier version's back subscriptions `subs` (each carries the record; an
    /// ad-hoc list is exactly their presentities, in the order they were made).
    fn from_backs(subs: &[SubscriptionInfo]) -> Option<Saved> {
        let first = subs.first()?;
        let mut ordered: Vec<&SubscriptionInfo> = subs.iter().collect();
        ordered.sort_by_key(|s| s.id);
        let mut seen = std::collections::HashSet::new();
        let resources: Vec<Resource> = ordered
            .into_iter()
            .filter(|s| seen.insert(presentity_key(&s.presentity)))
            .map(|s| Resource::new(s.presentity.clone()))
            .collect();
        Some(Saved {
            watcher: first.watcher.clone(),
            package: first.package,
            target: first.target.as_deref()?.to_vec(),
            // The dialog lives as long as its longest-lived back subscription.
            expires_in: subs.iter().map(|s| s.expires_in).max()?,
            adhoc: Some(resources),
        })
    }
}

/// List dialog `d`'s row in the store's table of list dialogs: the resources of an ad-hoc
/// list (their URIs, space-separated: display names are not kept) on a line of their own
/// (empty for a stored list), then its record ([`record`]); `None` when its dialog cannot be
/// read back (it always can: it is the dialog's own compact form).
fn stored_record(id: u64, d: &ListDialog) -> Option<Vec<u8>> {
    let dialog = SubscriptionDialog::from_bytes(&d.dialog).ok()?;
    let mut out = Vec::new();
    if let Some(adhoc) = &d.adhoc {
        for (i, r) in adhoc.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(r.uri.to_string().as_bytes());
        }
    }
    out.push(b'\n');
    let flags = Flags {
        adhoc: d.adhoc.is_some(),
        linphone: d.linphone,
    };
    out.extend_from_slice(&record(
        id,
        &d.list_text,
        flags,
        &dialog,
        &d.watcher.to_string(),
    ));
    Some(out)
}

impl ListDialog {
    /// When the dialog's next NOTIFY is due, not before a hold ends; none while one is in
    /// flight (its answer schedules the dialog again).
    fn next_due(&self) -> Option<u64> {
        let hold = self
            .hold_until
            .filter(|_| self.ending.is_none())
            .unwrap_or(0);
        if self.in_flight {
            None
        } else {
            self.due.map(|at| at.max(hold))
        }
    }

    /// What entry `at` keeps apart, if anything.
    fn apart(&self, at: usize) -> Option<&Apart> {
        let at = at as u32;
        let i = self.apart.binary_search_by_key(&at, |a| a.0).ok()?;
        Some(&self.apart[i].1)
    }

    /// Changes what entry `at` keeps apart (forgotten once it is nothing). Most entries
    /// keep nothing and are told nothing apart: no room is made for them (an empty vector
    /// allocates nothing, one emptied again gives its room back).
    fn change_apart(&mut self, at: usize, change: impl FnOnce(&mut Apart)) {
        let at = at as u32;
        match self.apart.binary_search_by_key(&at, |a| a.0) {
            Ok(i) => {
                change(&mut self.apart[i].1);
                if self.apart[i].1.is_empty() {
                    self.apart.remove(i);
                    if self.apart.is_empty() {
                        self.apart = Vec::new();
                    }
                }
            }
            Err(i) => {
                let mut apart = Apart::default();
                change(&mut apart);
                if !apart.is_empty() {
                    self.apart.insert(i, (at, apart));
                }
            }
        }
    }

    /// Entry `at`'s back subscription, if it has one.
    fn back(&self, at: usize) -> Option<SubscriptionId> {
        self.apart(at).and_then(|a| a.back.get())
    }

    /// Appends an entry and what it keeps apart.
    fn push(&mut self, e: Entry, apart: Apart) {
        if !apart.is_empty() {
            self.apart.push((self.resources.len() as u32, apart));
        }
        self.resources.push(e);
    }

    /// A new RLMI instance id ([`Entry::instance`]).
    fn take_instance(&mut self) -> u32 {
        let n = self.next_instance;
        self.next_instance = ((self.next_instance + 1) & INSTANCE_MASK).max(1);
        n
    }
}

/// A list NOTIFY's body written the checked way, under a boundary chosen for its parts: for
/// the rare NOTIFY whose parts the list server's own boundary starts a line of.
fn checked_body(
    rlmi: &str,
    rlmi_cid: &str,
    parts: &[WrittenPart<'_>],
    style: ContentIdStyle,
) -> Result<(String, Vec<u8>)> {
    let mut all = vec![BodyPart::new(
        rlmi_cid,
        list_body::RLMI_PART_TYPE,
        rlmi.as_bytes().to_vec(),
    )];
    all.extend(
        parts
            .iter()
            .map(|p| BodyPart::new(p.content_id, p.content_type, p.body.to_vec())),
    );
    MultipartRelated::new(Rlmi::CONTENT_TYPE, Some(rlmi_cid.to_string()), all).encode_with(style)
}

/// Whether a request's Supported headers (or their compact form `k`) name `eventlist`.
fn supports_eventlist(m: &SipMessage) -> bool {
    m.headers("Supported")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(EVENTLIST))
}

/// Whether a subscriber is Linphone (liblinphone over belle-sip), by its User-Agent:
/// `Linphonec/5.1.65` for linphonec, `LinphoneAndroid/...`, `LinphoneiOS/...`,
/// `Linphone Desktop/...` for the apps, and `belle-sip/...` in the products of others built
/// on the same stack. Its NOTIFYs are then written in Linphone's dialect (see the module
/// doc): liblinphone 5.1 shows nothing of the standard spelling.
fn linphone_dialect(m: &SipMessage) -> bool {
    m.headers("User-Agent").any(|ua| {
        let ua = ua.to_ascii_lowercase();
        ua.contains("linphone") || ua.contains("belle-sip")
    })
}

/// Where a new list dialog's resources come from.
enum Source {
    /// The stored list the Request-URI names.
    Stored(crate::model::list::ResourceList),
    /// The subscriber's own (RFC 5367), read from the SUBSCRIBE when it is authenticated.
    Adhoc(Uri),
}

impl ListServer {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        batch: std::time::Duration,
    ) -> Arc<ListServer> {
        Arc::new_cyclic(|me| ListServer {
            me: me.clone(),
            stack: stack.clone(),
            engine,
            auth,
            batch_ms: batch.as_millis() as u64,
            boundary: {
                let mut b = String::from("impp-");
                push_hex(&mut b, u64::from(stack.random_u32()), 8);
                push_hex(&mut b, u64::from(stack.random_u32()), 8);
                b
            },
            table: Mutex::new(Table::default()),
            inbox: Mutex::default(),
            awaiting_full: AtomicUsize::new(0),
        })
    }

    /// Takes a notification of a shared subscription (the engine's port gives it on the
    /// shard's thread, [`crate::engine::Port::take_inline`]) into the inbox, and gives
    /// every other one back for the port's queue. Its change can only show in a NOTIFY at
    /// the end of the batch it opens: the timer thread applies it then (or earlier, on any
    /// round it makes meanwhile), timed from when it came, so the events thread is not woken
    /// once per change of a busy-lamp storm. With batches shorter than
    /// [`BATCH_SLACK_FROM_MS`] (promptness asked for) nothing is taken.
    pub(crate) fn take_inline(&self, n: Notification) -> Option<Notification> {
        if self.batch_ms < BATCH_SLACK_FROM_MS
            || !n
                .target
                .as_deref()
                .is_some_and(|t| t.starts_with(GROUP_TARGET))
        {
            return Some(n);
        }
        let now = self.stack.now();
        let due = if self.awaiting_full.load(Ordering::Acquire) > 0 {
            now
        } else {
            self.batch_due(now)
        };
        let earlier = {
            let mut inbox = lock(&self.inbox);
            match inbox.at.get(&n.subscription) {
                Some(&i) => inbox.notes[i].1.merge(n),
                None => {
                    let i = inbox.notes.len();
                    inbox.at.insert(n.subscription, i);
                    inbox.notes.push((now, n));
                }
            }
            let earlier = inbox.due.map_or(true, |d| due < d);
            if earlier {
                inbox.due = Some(due);
            }
            earlier
        };
        if earlier {
            // Rings only if the timer thread sleeps past it.
            self.stack.alarm().at(due);
        }
        None
    }

    /// A dialog now waits for its full state: what the inbox holds is applied at once, and
    /// so is what comes until it is sent (see [`ListServer::awaiting_full`]). Called with
    /// the table locked (the inbox's lock is never held while the table's is taken).
    fn await_full(&self) {
        self.awaiting_full.fetch_add(1, Ordering::AcqRel);
        let now = self.stack.now();
        let mut inbox = lock(&self.inbox);
        if !inbox.notes.is_empty() && inbox.due.map_or(true, |d| d > now) {
            inbox.due = Some(now);
            drop(inbox);
            self.stack.alarm().at(now);
        }
    }

    /// Applies what the inbox holds (see [`ListServer::take_inline`]), each at the time it
    /// came; schedules the dialogs it makes due.
    fn apply_inbox(&self) {
        let notes = {
            let mut inbox = lock(&self.inbox);
            if inbox.notes.is_empty() {
                return;
            }
            inbox.due = None;
            inbox.at.clear();
            std::mem::take(&mut inbox.notes)
        };
        for (came, n) in notes {
            // Its due time is scheduled in the table's wakes, looked at by this round.
            let _ = self.group_notification(&n, came);
        }
    }

    /// Brings back the list dialogs an earlier run left in the store (called once the
    /// engine's port is open, before any request is taken): each from its row in the
    /// store's table of list dialogs ([`stored_record`]), or, for a dialog an earlier
    /// version kept only on its back subscriptions, from their record ([`record`]). Its list
    /// is expanded again; resources of owned domains join their shared subscriptions again,
    /// the others keep their back subscriptions (notified again) or get new ones, and its
    /// full state goes out once every resource has told it (RLMI version and CSeq from
    /// [`restart_version`]). A dialog whose record cannot be read, whose list or package is
    /// gone, or which expired is forgotten, its back subscriptions ended. New dialogs get
    /// ids above every id seen, so their tags never name a restored dialog.
    pub(crate) fn start(&self) {
        let Ok(engine) = self.engine.get() else {
            return;
        };
        let mut backs_of: HashMap<u64, Vec<SubscriptionInfo>> = HashMap::new();
        for sub in engine.remote_subscriptions().unwrap_or_default() {
            let Some((id, _)) = sub.target.as_deref().and_then(read_record) else {
                continue;
            };
            backs_of.entry(id).or_default().push(sub);
        }
        let mut stored: HashMap<u64, crate::store::ListDialogRecord> = engine
            .take_stored_list_dialogs()
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut ids: Vec<u64> = backs_of.keys().chain(stored.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let now = self.stack.now();
        let unix = self.stack.unix_ms();
        let version = restart_version(unix);
        let bounds = engine.config().subscription_expiry;
        let mut ended = Ended::default();
        let mut forgotten = Vec::new();
        let mut renotify = Vec::new();
        let mut joins = Vec::new();
        let mut dues = Vec::new();
        let mut table = lock(&self.table);
        table.next_id = table.next_id.max(ids.last().copied().unwrap_or(0));
        for id in ids {
            let subs = backs_of.remove(&id).unwrap_or_default();
            let row = stored.remove(&id);
            let has_row = row.is_some();
            let saved = match row {
                Some(row) => Saved::from_row(&row, unix),
                None => Saved::from_backs(&subs),
            };
            let Some(mut d) =
                saved.and_then(|saved| self.restored(&engine, id, saved, now, version))
            else {
                ended.backs.extend(subs.iter().map(|s| s.id));
                forgotten.push(id);
                continue;
            };
            // The list as it is now, in its order: a restored back subscription per resource
            // still listed (one; any other ends), a new one for a resource added meanwhile
            // (or whose subscription ended before the restart); resources of owned domains
            // join their shared subscriptions.
            let mut backs: HashMap<String, SubscriptionId> = HashMap::new();
            for sub in &subs {
                if let Some(other) = backs.insert(presentity_key(&sub.presentity), sub.id) {
                    ended.backs.push(other);
                }
            }
            let remaining_s = (d.expires_at - now).div_ceil(1000) as u32;
            let resources = match &d.adhoc {
                Some(adhoc) => adhoc.clone(),
                None => engine.expand_list(&d.list_uri).unwrap_or_default(),
            };
            let mut to_join = Vec::new();
            let mut names = Vec::new();
            d.resources.reserve_exact(resources.len());
            for mut r in resources {
                let instance = d.take_instance();
                if let Some(name) = r.display_name.take() {
                    names.push((instance, name.into_boxed_str()));
                }
                let (entry, apart) = if shared_resource(&engine, &r.uri) {
                    if let Some(back) = backs.remove(&presentity_key(&r.uri)) {
                        ended.backs.push(back); // kept by an earlier version
                    }
                    let (mut e, apart) = new_entry(&mut table.watched, d.package, r, instance);
                    e.mark(Entry::SHARED, true);
                    let uri = apart
                        .uri
                        .as_ref()
                        .unwrap_or(&table.watched.get(e.resource).uri);
                    to_join.push((d.resources.len(), Uri::clone(uri)));
                    (e, apart)
                } else {
                    match backs.remove(&presentity_key(&r.uri)) {
                        Some(back) => {
                            renotify.push(back);
                            let (e, apart) = new_entry(&mut table.watched, d.package, r, instance);
                            (
                                e,
                                Apart {
                                    back: Back::of(back),
                                    ..apart
                                },
                            )
                        }
                        None => self.back_subscription(
                            &engine,
                            id,
                            &mut table.watched,
                            &d,
                            r,
                            instance,
                            remaining_s.max(bounds.min),
                        ),
                    }
                };
                d.push(entry, apart);
            }
            d.names = names;
            ended.backs.extend(backs.into_values());
            d.slot = table.take_slot(id);
            table.index(id, &d);
            if d.resources.iter().all(|e| e.is(Entry::REPORTED)) {
                d.due = Some(now);
            }
            dues.extend(d.due);
            log::debug!(
                "list dialog {id}: restored, {} watching {}",
                d.watcher,
                d.list_uri
            );
            joins.push((id, d.watcher.clone(), d.package, to_join));
            if !has_row {
                // An earlier version's dialog gets its row now (one with a row keeps it).
                self.save(&engine, id, &d);
            }
            table.dialogs.insert(id, Box::new(d));
            self.await_full();
            table.schedule(id);
            table.schedule_end(id);
        }
        drop(table);
        // Their final notifications find no dialog.
        ended.finish(&engine);
        for id in forgotten {
            engine.delete_list_dialog(id);
        }
        for (id, watcher, package, to_join) in joins {
            self.join(&engine, id, &watcher, package, to_join);
        }
        // The current state of each resource, for the full-state NOTIFY.
        for back in renotify {
            let _ = engine.renotify(back);
        }
        if let Some(at) = dues.into_iter().min() {
            self.stack.alarm().at(at);
        }
    }

    /// Writes list dialog `id`'s row in the store's table of list dialogs (see
    /// [`stored_record`]): when it is made, and again at each refresh (its expiry, an ad-hoc
    /// list replaced).
    fn save(&self, engine: &crate::engine::Core, id: u64, d: &ListDialog) {
        let Some(record) = stored_record(id, d) else {
            log::warn!("list dialog {id}: its dialog cannot be read back; not saved");
            return;
        };
        let remaining = d.expires_at.saturating_sub(self.stack.now());
        engine.save_list_dialog(crate::store::ListDialogRecord {
            id,
            watcher: d.watcher.clone(),
            package: d.package,
            expires_at: self.stack.unix_ms() + remaining,
            record,
        });
    }

    /// List dialog `id` rebuilt from what was saved of it, without resources yet; `None`
    /// when it cannot come back (see [`ListServer::start`]).
    fn restored(
        &self,
        engine: &crate::engine::Core,
        id: u64,
        saved: Saved,
        now: u64,
        version: u32,
    ) -> Option<ListDialog> {
        let Saved {
            watcher,
            package,
            target,
            expires_in,
            adhoc,
        } = saved;
        let Some((_, Some((list_text, flags, dialog)))) = read_record(&target) else {
            log::info!("list dialog {id}: no record to restore it from; it ends");
            return None;
        };
        let dialog =
            match SubscriptionDialog::from_bytes_beside(dialog, list_text, &watcher.to_string()) {
                Ok(dialog) => dialog,
                Err(e) => {
                    log::warn!("list dialog {id}: stored dialog unreadable: {e}");
                    return None;
                }
            };
        if expires_in.is_zero() {
            log::debug!("list dialog {id}: expired before the restart");
            return None;
        }
        let (list_uri, list_name, adhoc) = if flags.adhoc {
            let Ok(uri) = Uri::parse(list_text) else {
                log::warn!("list dialog {id}: its ad-hoc list's URI {list_text} unreadable");
                return None;
            };
            if !LIST_PACKAGES.contains(&package) {
                return None;
            }
            (uri, None, Some(adhoc.unwrap_or_default()))
        } else {
            let list = Uri::parse(list_text).ok().and_then(|uri| engine.list(&uri));
            let Some(list) = list.filter(|l| {
                l.packages.is_empty() && package == Package::Presence
                    || l.packages.contains(&package)
            }) else {
                log::info!("list dialog {id}: its list {list_text} no longer serves {package}");
                return None;
            };
            (list.uri, list.display_name, None)
        };
        let list_text = list_text.to_string();
        Some(ListDialog {
            dialog: dialog.to_bytes().into(),
            list_text,
            list_uri,
            list_name,
            adhoc,
            linphone: flags.linphone,
            watcher_key: presentity_key(&watcher),
            watcher,
            package,
            slot: u32::MAX,
            resources: Vec::new(),
            apart: Vec::new(),
            names: Vec::new(),
            next_instance: 1,
            version,
            next_cseq: version.wrapping_add(1).max(1),
            expires_at: now + expires_in.as_millis() as u64,
            in_flight: false,
            full: true,
            due: Some(now + self.batch_ms.max(FIRST_STATE_WAIT_MS)),
            hold_until: None,
            ending: None,
        })
    }

    /// Takes a SUBSCRIBE if it is this role's (to a list of an owned domain, or inside a
    /// list dialog) and answers it; `false`: not a list's, for the notifier.
    pub(crate) fn handle(&self, request: &Request) -> bool {
        let m = &request.message;
        let Ok(engine) = self.engine.get() else {
            return false;
        };
        let Ok(to) = m.to() else { return false };
        if let Some(tag) = to.tag() {
            // A tag of this role's form naming a dialog it has; anything else is the
            // notifier's.
            let Some(id) = dialog_in_tag(tag) else {
                return false;
            };
            if !lock(&self.table).dialogs.contains_key(&id) {
                return false;
            }
            let answer = self.resubscribe(request, id, tag.to_string());
            self.stack.finish(request, answer);
            return true;
        }
        let Ok(uri) = m.request_uri() else {
            return false;
        };
        let owned = engine.config().owns(&uri);
        let source = if recipient_list::required(m) {
            // RFC 5367: the SUBSCRIBE carries its list; the Request-URI only names it (the
            // body wins over a stored list of that URI, which is not needed).
            if !owned {
                let answer = self.stack.reply(
                    request,
                    403,
                    "Forbidden (recipient lists are served for this server's domains)",
                );
                self.stack.answer(request, answer);
                return true;
            }
            Source::Adhoc(uri)
        } else {
            match engine.list(&uri) {
                Some(list) if owned => Source::Stored(list),
                _ => return false,
            }
        };
        let answer = self.subscribe(request, &engine, source);
        self.stack.finish(request, answer);
        true
    }

    /// A new list subscription; `Ok(None)`: answered already.
    fn subscribe(
        &self,
        request: &Request,
        engine: &crate::engine::Core,
        source: Source,
    ) -> Result<Option<Reply>> {
        let m = &request.message;
        let packages = match &source {
            Source::Stored(list) if list.packages.is_empty() => vec![Package::Presence],
            Source::Stored(list) => list.packages.clone(),
            Source::Adhoc(_) => LIST_PACKAGES.to_vec(),
        };
        let Some(event) = m.event()? else {
            return Ok(Some(super::bad_event(
                &self.stack,
                request,
                "no Event header",
            )));
        };
        let package = match event.package().parse::<Package>() {
            Ok(p) if packages.contains(&p) => p,
            _ => {
                let mut answer = self.stack.reply(request, 489, "Bad Event");
                let served: Vec<&str> = packages.iter().map(|p| p.as_str()).collect();
                answer.header("Allow-Events", &served.join(", "))?;
                return Ok(Some(answer));
            }
        };
        if !supports_eventlist(m) {
            let mut answer = self.stack.reply(request, 421, "Extension Required");
            answer.header("Require", EVENTLIST)?;
            return Ok(Some(answer));
        }
        if let Some(accept) = m.accept()? {
            if !accept.accepts("multipart/related") {
                let mut answer = self.stack.reply(request, 406, "Not Acceptable");
                answer.header(
                    "Accept",
                    &format!(
                        "multipart/related, {}, {}",
                        Rlmi::CONTENT_TYPE,
                        package.content_type()
                    ),
                )?;
                return Ok(Some(answer));
            }
        }
        let from = m.from()?;
        let watcher = from.uri()?;
        let Some(remote_tag) = from.tag().map(str::to_owned) else {
            return Ok(Some(self.stack.reply(
                request,
                400,
                "Bad Request (From without a tag)",
            )));
        };
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &watcher) {
            return Ok(Some(answer));
        }
        if !engine.config().owns(&watcher) {
            return Ok(Some(self.stack.reply(
                request,
                403,
                "Forbidden (lists are for users of this server)",
            )));
        }
        let remote_target = match m.contact()? {
            Contacts::List(l) if !l.is_empty() => l[0].uri_text().to_string(),
            _ => {
                return Ok(Some(self.stack.reply(
                    request,
                    400,
                    "Bad Request (SUBSCRIBE without Contact)",
                )))
            }
        };
        let bounds = engine.config().subscription_expiry;
        let asked = m.expires()?;
        let granted = match asked {
            Some(0) => 0,
            Some(e) if e < bounds.min => {
                return self.stack.too_brief(request, bounds.min).map(Some);
            }
            other => other.unwrap_or(bounds.default).min(bounds.max),
        };
        // Read once the subscriber is known (no inflating for strangers); a bad one changes
        // nothing.
        let (list_uri, list_name, adhoc) = match source {
            Source::Stored(list) => (list.uri, list.display_name, None),
            Source::Adhoc(uri) => match recipient_list::resources(m) {
                Ok(resources) => (uri, None, Some(resources)),
                Err(e) => return Ok(Some(self.bad_list(request, &e))),
            },
        };
        let resources = match &adhoc {
            Some(resources) => resources.clone(),
            None => engine.expand_list(&list_uri)?,
        };
        let linphone = linphone_dialect(m);
        let flags = Flags {
            adhoc: adhoc.is_some(),
            linphone,
        };
        let to = m.to()?;
        let now = self.stack.now();
        let mut table = lock(&self.table);
        table.next_id += 1;
        let id = table.next_id;
        let mut local_tag = String::with_capacity(24);
        push_hex(&mut local_tag, u64::from(self.stack.random_u32()), 8);
        local_tag.push_str(TAG_MARK);
        push_hex(&mut local_tag, id, 1);
        let dialog = SubscriptionDialog {
            call_id: m.call_id()?.to_string(),
            local_tag: local_tag.clone(),
            remote_tag,
            local_uri: to.uri_text().to_string(),
            remote_uri: from.uri_text().to_string(),
            remote_target,
            route_set: m
                .record_route()?
                .iter()
                .map(|r| format!("<{}>", r.uri_text()))
                .collect(),
            local_cseq: 0,
            remote_cseq: m.cseq()?.seq,
            event: m
                .header("Event")
                .unwrap_or(package.as_str())
                .trim()
                .to_string(),
            proto: request.peer.proto,
            peer: request.peer.source,
        };
        let list_text = m.request_uri_text().unwrap_or_default().to_string();
        let mut d = ListDialog {
            dialog: dialog.to_bytes().into(),
            list_text,
            list_uri: list_uri.clone(),
            list_name,
            adhoc,
            linphone,
            watcher_key: presentity_key(&watcher),
            watcher,
            package,
            slot: u32::MAX,
            resources: Vec::new(),
            apart: Vec::new(),
            names: Vec::new(),
            next_instance: resources.len() as u32 + 1,
            version: 0,
            next_cseq: 1,
            expires_at: now + u64::from(granted) * 1000,
            in_flight: false,
            full: true,
            due: Some(now + self.batch_ms.max(FIRST_STATE_WAIT_MS)),
            hold_until: None,
            ending: (granted == 0).then_some(Some("timeout")),
        };
        // The dialog goes into the table first, and its back subscriptions are made without
        // the table's lock (an engine round trip each would hold back every other list
        // dialog, and the events thread): "in flight" keeps the timer thread from sending a
        // NOTIFY before the answer below, and each entry is in the table, under the id the
        // engine gives before it makes the subscription, before its first notification can
        // come. Nothing else can reach the dialog meanwhile: its tag is not known outside.
        let back_expires = granted.max(bounds.min);
        let (watcher, target) = (d.watcher.clone(), back_target(id));
        // Pushed into a vector of their number: collected from `resources`, they would reuse
        // its larger allocation (in place) and keep it.
        d.resources = Vec::with_capacity(resources.len());
        for (at, mut r) in resources.into_iter().enumerate() {
            if let Some(name) = r.display_name.take() {
                d.names.push((at as u32 + 1, name.into_boxed_str()));
            }
            let shared = shared_resource(engine, &r.uri);
            let (mut e, apart) = new_entry(&mut table.watched, package, r, at as u32 + 1);
            e.mark(Entry::SHARED, shared);
            d.push(e, apart);
        }
        let (mut shared, mut backs) = (Vec::new(), Vec::new());
        for at in 0..d.resources.len() {
            let place = (at, Uri::clone(table.watched.uri_of(&d, at)));
            if d.resources[at].is(Entry::SHARED) {
                shared.push(place);
            } else {
                backs.push(place);
            }
        }
        d.in_flight = true;
        d.slot = table.take_slot(id);
        table.index(id, &d);
        table.dialogs.insert(id, Box::new(d));
        self.await_full();
        drop(table);
        self.join(engine, id, &watcher, package, shared);
        for (at, uri) in backs {
            let request = back_request(&watcher, uri, package, &target, back_expires);
            let made = engine.subscribe_naming(request, |sub| {
                let mut table = lock(&self.table);
                let Table {
                    dialogs, by_back, ..
                } = &mut *table;
                if let Some(d) = dialogs.get_mut(&id).filter(|d| at < d.resources.len()) {
                    d.change_apart(at, |a| a.back = Back::of(sub));
                    by_back.insert(sub, (id, at));
                }
                None
            });
            if let Err(error) = made {
                let mut table = lock(&self.table);
                let Table {
                    dialogs,
                    by_back,
                    watched,
                    ..
                } = &mut *table;
                if let Some(d) = dialogs.get_mut(&id).filter(|d| at < d.resources.len()) {
                    if let Some(back) = d.back(at) {
                        by_back.remove(&back);
                    }
                    d.change_apart(at, |a| a.back = Back::NONE);
                    let uri = watched.uri_of(d, at).clone();
                    refused(id, &uri, &mut d.resources[at], &error);
                }
            }
        }
        let mut table = lock(&self.table);
        // Decided again now that every entry is in (a notification that came meanwhile
        // judged "every resource told" over the entries made so far).
        let due = table.dialogs.get_mut(&id).and_then(|d| {
            d.in_flight = false;
            d.due = Some(if d.resources.iter().all(|e| e.is(Entry::REPORTED)) {
                now
            } else {
                now + self.batch_ms.max(FIRST_STATE_WAIT_MS)
            });
            d.due
        });
        table.schedule(id);
        table.schedule_end(id);
        if let Some(d) = table.dialogs.get(&id).filter(|d| d.ending.is_none()) {
            self.save(engine, id, d);
        }
        let mut answer = self
            .stack
            .reply_tagged(request, 200, "OK", Some(&local_tag));
        answer.header("Expires", &granted.to_string())?;
        answer.header("Require", EVENTLIST)?;
        answer.header(
            "Contact",
            &self
                .stack
                .contact_for(request.peer.proto, request.peer.source),
        )?;
        self.stack.answer(request, answer);
        drop(table);
        log::debug!(
            "list dialog {id}: {} watches {}{}{}",
            request.peer.source,
            list_uri,
            if flags.adhoc { " (ad-hoc)" } else { "" },
            if flags.linphone { " (Linphone)" } else { "" },
        );
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        Ok(None)
    }

    /// The subscriber of list dialog `id` joins the shared subscriptions of its entries
    /// `shared` (index, resource), outside the table's lock (one engine call per shard);
    /// an entry whose join is refused is a terminated instance.
    fn join(
        &self,
        engine: &crate::engine::Core,
        id: u64,
        watcher: &Uri,
        package: Package,
        shared: Vec<(usize, Uri)>,
    ) {
        if shared.is_empty() {
            return;
        }
        let (places, uris): (Vec<usize>, Vec<Uri>) = shared.into_iter().unzip();
        let answers = match engine.join(watcher, package, &uris) {
            Ok(answers) => answers,
            Err(e) => uris.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut table = lock(&self.table);
        let mut left = Vec::new();
        match table.dialogs.get_mut(&id) {
            Some(d) => {
                for ((at, answer), uri) in places.into_iter().zip(answers).zip(&uris) {
                    let Some(e) = d.resources.get_mut(at) else {
                        continue;
                    };
                    match answer {
                        Ok(()) => e.mark(Entry::JOINED, true),
                        Err(error) => refused(id, uri, e, &error),
                    }
                }
            }
            // Ended meanwhile: what was joined is left again.
            None => {
                left = uris
                    .into_iter()
                    .zip(answers)
                    .filter(|(_, a)| a.is_ok())
                    .map(|(u, _)| u)
                    .collect()
            }
        }
        drop(table);
        if !left.is_empty() {
            let _ = engine.leave(watcher, package, &left);
        }
    }

    /// `400` for a recipient list that cannot be read, saying why.
    fn bad_list(&self, request: &Request, e: &Error) -> Reply {
        log::debug!("list server: 400 for {}: {e}", request.peer.source);
        let reason = format!("Bad Request ({})", recipient_list::reason_text(e));
        self.stack.reply(request, 400, &reason)
    }

    /// The back subscription of `resource` for list dialog `id` (made with the table's lock
    /// held; the caller indexes it, [`Table::index`]), as an entry and what it keeps apart;
    /// one the engine refuses is a terminated instance.
    #[allow(clippy::too_many_arguments)]
    fn back_subscription(
        &self,
        engine: &crate::engine::Core,
        id: u64,
        watched: &mut Resources,
        d: &ListDialog,
        resource: crate::model::list::Resource,
        instance: u32,
        expires: u32,
    ) -> (Entry, Apart) {
        let (mut entry, mut apart) = new_entry(watched, d.package, resource, instance);
        let uri = Uri::clone(
            apart
                .uri
                .as_ref()
                .unwrap_or(&watched.get(entry.resource).uri),
        );
        let request = back_request(
            &d.watcher,
            uri.clone(),
            d.package,
            &back_target(id),
            expires,
        );
        match engine.subscribe(request) {
            Ok(sub) => apart.back = Back::of(sub),
            Err(e) => refused(id, &uri, &mut entry, &e),
        }
        (entry, apart)
    }

    /// When a batch of changes that starts at `now` ends.
    fn batch_due(&self, now: u64) -> u64 {
        batch_end(now, self.batch_ms)
    }

    /// A SUBSCRIBE inside list dialog `id`: a refresh (the list expanded again, full state
    /// follows) or, with `Expires: 0`, the end.
    fn resubscribe(&self, request: &Request, id: u64, local_tag: String) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine.get()?;
        let call_id = m.call_id()?.to_string();
        let remote_tag = m.from()?.tag().unwrap_or_default().to_string();
        let gone = || {
            Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )))
        };
        let adhoc = {
            let table = lock(&self.table);
            let Some(d) = table.dialogs.get(&id) else {
                return gone();
            };
            let same = DialogView::read(&d.dialog).is_ok_and(|v| {
                v.call_id == call_id && v.local_tag == local_tag && v.remote_tag == remote_tag
            });
            if !same {
                return gone();
            }
            d.adhoc.is_some()
        };
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &m.from()?.uri()?) {
            return Ok(Some(answer));
        }
        let bounds = engine.config().subscription_expiry;
        let expires = m.expires()?.unwrap_or(bounds.default);
        if expires != 0 && expires < bounds.min {
            return self.stack.too_brief(request, bounds.min).map(Some);
        }
        let granted = expires.min(bounds.max);
        // A refresh of an ad-hoc list with a recipient list replaces the list; one without a
        // body keeps it. A dialog of a stored list stays one (its back subscriptions' record
        // says so): a recipient list is for a new subscription.
        let replaced = if recipient_list::required(m) && !m.body().is_empty() {
            if !adhoc {
                return Ok(Some(self.stack.reply(
                    request,
                    400,
                    "Bad Request (this dialog serves a stored list; a recipient list needs a \
                     new subscription)",
                )));
            }
            match recipient_list::resources(m) {
                Ok(resources) => Some(resources),
                Err(e) => return Ok(Some(self.bad_list(request, &e))),
            }
        } else {
            None
        };
        let cseq = m.cseq()?.seq;
        // The back subscriptions as they are, taken under the lock; the list is expanded and
        // they are refreshed without it (an engine round trip each), then the dialog is
        // rebuilt under it from what it is by then (notifications, a NOTIFY's answer, the
        // timer may have changed it meanwhile).
        let (list_uri, adhoc, before) = {
            let mut table = lock(&self.table);
            let table = &mut *table;
            let Some(d) = table.dialogs.get_mut(&id) else {
                return gone();
            };
            let mut dialog = SubscriptionDialog::from_bytes(&d.dialog)?;
            if cseq <= dialog.remote_cseq {
                return Ok(Some(self.stack.reply(
                    request,
                    500,
                    "Server Internal Error (CSeq out of order)",
                )));
            }
            dialog.remote_cseq = cseq;
            d.dialog = dialog.to_bytes().into();
            let before: HashMap<SubscriptionId, String> = d
                .apart
                .iter()
                .filter_map(|(at, a)| {
                    let uri = table.watched.uri_of(d, *at as usize);
                    Some((a.back.get()?, presentity_key(uri)))
                })
                .collect();
            (
                d.list_uri.clone(),
                replaced.or_else(|| d.adhoc.clone()),
                before,
            )
        };
        let (resources, refreshed) = if granted == 0 {
            (Vec::new(), std::collections::HashSet::new())
        } else {
            let resources = match &adhoc {
                Some(adhoc) => adhoc.clone(),
                None => engine.expand_list(&list_uri).unwrap_or_default(),
            };
            let listed: std::collections::HashSet<String> =
                resources.iter().map(|r| presentity_key(&r.uri)).collect();
            let refreshed: std::collections::HashSet<SubscriptionId> = before
                .iter()
                .filter(|(_, key)| listed.contains(*key))
                .map(|(&back, _)| back)
                .filter(|&back| engine.refresh_subscription(back, granted).is_ok())
                .collect();
            (resources, refreshed)
        };
        let now = self.stack.now();
        let mut table = lock(&self.table);
        let Some(mut d) = table.dialogs.remove(&id) else {
            return gone(); // ended meanwhile (expired, or its NOTIFY refused)
        };
        if d.ending.is_some() {
            table.dialogs.insert(id, d);
            return gone(); // ending meanwhile (an unsubscribe)
        }
        let mut ended = Ended::default();
        let mut to_join: Vec<(usize, Uri)> = Vec::new();
        table.release(&d);
        if granted == 0 {
            let t = &mut *table;
            ended.take(&mut d, &t.watched, &mut t.by_back);
            d.ending = Some(None);
        } else {
            d.expires_at = now + u64::from(granted) * 1000;
            if adhoc.is_some() {
                d.adhoc = adhoc;
            }
            // The list as it is now: resources kept are refreshed (or subscribed again when
            // their subscription ended), new ones subscribed, removed ones ended. A back
            // subscription made since the snapshot (by a refresh at the same time) is new. A
            // member needs no refresh (it lives with the dialog); one refused or sent
            // elsewhere (deactivated) joins again, so a rule changed meanwhile counts.
            let entries = std::mem::take(&mut d.resources);
            let mut aparts = std::mem::take(&mut d.apart).into_iter().peekable();
            let mut old: HashMap<String, (Entry, Apart)> = HashMap::with_capacity(entries.len());
            // Entries that go without ending anything in the engine: their resources are
            // named by one entry fewer once the new ones are made.
            let mut dropped: Vec<(Entry, Apart)> = Vec::new();
            for (at, e) in entries.into_iter().enumerate() {
                let apart = match aparts.next_if(|(i, _)| *i as usize == at) {
                    Some((_, a)) => a,
                    None => Apart::default(),
                };
                let key = presentity_key(table.watched.uri_with(&e, &apart));
                dropped.extend(old.insert(key, (e, apart)));
            }
            let mut gone_members = Vec::new();
            let mut names = Vec::new();
            d.resources.reserve_exact(resources.len());
            for mut r in resources {
                let name = r.display_name.take();
                let kept = match old.remove(&presentity_key(&r.uri)) {
                    Some((e, a))
                        if e.is(Entry::SHARED)
                            && e.is(Entry::JOINED)
                            && !(e.state() == InstanceState::Terminated
                                && e.reason() == Some(TerminationReason::Deactivated)) =>
                    {
                        Some((e, a))
                    }
                    Some((e, a)) if e.is(Entry::SHARED) => {
                        if e.is(Entry::JOINED) {
                            gone_members.push(Uri::clone(table.watched.uri_with(&e, &a)));
                        }
                        dropped.push((e, a));
                        None
                    }
                    Some((e, a))
                        if a.back.get().is_some_and(|b| {
                            refreshed.contains(&b) || !before.contains_key(&b)
                        }) =>
                    {
                        Some((e, a))
                    }
                    Some((e, a)) => {
                        if let Some(gone) = a.back.get() {
                            table.by_back.remove(&gone);
                        }
                        dropped.push((e, a));
                        None
                    }
                    None => None,
                };
                let (entry, apart) = match kept {
                    Some(kept) => kept,
                    None if shared_resource(&engine, &r.uri) => {
                        let instance = d.take_instance();
                        let (mut e, apart) = new_entry(&mut table.watched, d.package, r, instance);
                        e.mark(Entry::SHARED, true);
                        let uri = table.watched.uri_with(&e, &apart);
                        to_join.push((d.resources.len(), Uri::clone(uri)));
                        (e, apart)
                    }
                    None => {
                        let instance = d.take_instance();
                        self.back_subscription(
                            &engine,
                            id,
                            &mut table.watched,
                            &d,
                            r,
                            instance,
                            granted,
                        )
                    }
                };
                if let Some(name) = name {
                    names.push((entry.instance(), name.into_boxed_str()));
                }
                d.push(entry, apart);
            }
            names.sort_unstable_by_key(|n| n.0);
            d.names = names;
            let mut left: Vec<(Entry, Apart)> = old.into_values().collect();
            let t = &mut *table;
            ended.take_left(&d.watcher, d.package, &mut left, &t.watched, &mut t.by_back);
            for (e, _) in left.iter().chain(&dropped) {
                t.watched.unref(e.resource);
            }
            if !gone_members.is_empty() {
                ended
                    .members
                    .push((d.watcher.clone(), d.package, gone_members));
            }
            table.index(id, &d);
        }
        d.full = true;
        d.due = Some(
            if d.resources.iter().all(|e| e.is(Entry::REPORTED)) || granted == 0 {
                now
            } else {
                now + self.batch_ms.max(FIRST_STATE_WAIT_MS)
            },
        );
        let due = d.due;
        if d.ending.is_none() {
            self.save(&engine, id, &d);
        }
        table.dialogs.insert(id, d);
        self.await_full();
        table.schedule(id);
        table.schedule_end(id);
        let mut answer = self.stack.reply(request, 200, "OK");
        answer.header("Expires", &granted.to_string())?;
        answer.header("Require", EVENTLIST)?;
        self.stack.answer(request, answer);
        let (watcher, package) = (
            table.dialogs[&id].watcher.clone(),
            table.dialogs[&id].package,
        );
        drop(table);
        // Joined again before the old holders leave: a member redirected is decided again
        // by the join, and the leave then only counts a holder off.
        self.join(&engine, id, &watcher, package, to_join);
        ended.finish(&engine);
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        Ok(None)
    }

    /// A notification of the engine: `true` when it is this role's (of a back subscription,
    /// of a member of a shared subscription or of its group; kept for the list dialogs'
    /// next NOTIFYs), `false` when it is not.
    pub(crate) fn notification(&self, n: &Notification) -> bool {
        let Some(target) = n.target.as_deref() else {
            return false;
        };
        let due = if target.starts_with(GROUP_TARGET) {
            self.group_notification(n, self.stack.now())
        } else if target.starts_with(MEMBER_TARGET) {
            self.member_notification(n, target == MEMBER_TARGET)
        } else if target.starts_with(LIST_TARGET) {
            self.back_notification(n)
        } else {
            return false;
        };
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        true
    }

    /// A back subscription's notification: its entry learns the state.
    fn back_notification(&self, n: &Notification) -> Option<u64> {
        let now = self.stack.now();
        let mut table = lock(&self.table);
        let &(id, at) = table.by_back.get(&n.subscription)?;
        if n.state.is_terminated() {
            table.by_back.remove(&n.subscription);
        }
        let d = table
            .dialogs
            .get_mut(&id)
            .filter(|d| d.back(at) == Some(n.subscription))?;
        if n.state.is_terminated() {
            d.change_apart(at, |a| a.back = Back::NONE);
        }
        let document = n
            .document
            .as_ref()
            .filter(|_| n.state == SubscriptionState::Active);
        self.learn(
            &mut table,
            id,
            at,
            n.state,
            document,
            &n.presentity,
            None,
            now,
        )
    }

    /// A member's notification (its own state): the entries of its watcher's dialogs that
    /// hold the resource learn it, and whether they follow the composed document.
    fn member_notification(&self, n: &Notification, follows: bool) -> Option<u64> {
        let now = self.stack.now();
        let key = presentity_key(&n.presentity);
        let watcher = presentity_key(&n.watcher);
        let mut table = lock(&self.table);
        let res = table.watched.find(n.package, key)?;
        let holders: Vec<(u64, u32)> = table
            .watched
            .get(res)
            .holders
            .iter()
            .map(|&(slot, at)| (table.slots[slot as usize], at))
            .filter(|(id, _)| {
                table
                    .dialogs
                    .get(id)
                    .is_some_and(|d| d.watcher_key == watcher)
            })
            .collect();
        let mut due: Option<u64> = None;
        for (id, at) in holders {
            let document = n
                .document
                .as_ref()
                .filter(|_| n.state == SubscriptionState::Active);
            let at = self.learn(
                &mut table,
                id,
                at as usize,
                n.state,
                document,
                &n.presentity,
                Some(follows),
                now,
            );
            due = due.into_iter().chain(at).min();
        }
        due
    }

    /// A group's notification (the resource's document changed): the resource's document
    /// is written once ([`Watched::document`]), and every entry that shows it learns it.
    fn group_notification(&self, n: &Notification, now: u64) -> Option<u64> {
        let key = presentity_key(&n.presentity);
        let mut table = lock(&self.table);
        let res = table.watched.find(n.package, key)?;
        let Table {
            watched,
            rendered,
            dialogs,
            slots,
            ..
        } = &mut *table;
        let w = watched.get_mut(res);
        if !Arc::ptr_eq(&w.uri, &n.presentity) && *w.uri == *n.presentity {
            w.uri = n.presentity.clone();
        }
        let same = match (&w.document, &n.document) {
            (None, None) => true,
            (Some(had), Some(new)) => Arc::ptr_eq(&had.document, new) || *had.document == **new,
            _ => false,
        };
        if same {
            return None;
        }
        let shown = w.holders.iter().any(|&(slot, at)| {
            dialogs
                .get(&slots[slot as usize])
                .and_then(|d| d.resources.get(at as usize))
                .is_some_and(Entry::shows_group)
        });
        // Written only when an entry shows it (a member's notification brings the
        // composed document to an entry that starts following it).
        w.document = n
            .document
            .as_ref()
            .filter(|_| shown)
            .map(|doc| rendered.render(doc, &self.boundary));
        if !shown {
            return None;
        }
        self.fan_out(&mut table, res, None, now)
    }

    /// Resource `res`'s composed document changed: every entry that shows it (but `except`,
    /// a holder's (slot, entry)) is news for its dialog's next NOTIFY. Returns when the
    /// alarm must ring, if a dialog's next NOTIFY moved.
    fn fan_out(
        &self,
        table: &mut Table,
        res: u32,
        except: Option<(u32, u32)>,
        now: u64,
    ) -> Option<u64> {
        let holders = std::mem::take(&mut table.watched.get_mut(res).holders);
        let mut due: Option<u64> = None;
        for &(slot, at) in &holders {
            if except == Some((slot, at)) {
                continue;
            }
            let id = table.slots[slot as usize];
            let Some(d) = table.dialogs.get_mut(&id) else {
                continue;
            };
            let Some(e) = d.resources.get_mut(at as usize) else {
                continue;
            };
            if !e.shows_group() {
                continue;
            }
            e.mark(Entry::REPORTED, true);
            e.mark(Entry::CHANGED, true);
            if let Some(at) = self.touch(d, now) {
                table.schedule(id);
                due = due.into_iter().chain(Some(at)).min();
            }
        }
        table.watched.get_mut(res).holders = holders;
        due
    }

    /// An entry of dialog `d` changed: when its next NOTIFY is due now, if that moved.
    fn touch(&self, d: &mut ListDialog, now: u64) -> Option<u64> {
        // Only a dialog waiting for its full state looks at every resource.
        let waiting_first = d.version == 0 || d.full;
        let due = if waiting_first && d.resources.iter().all(|e| e.is(Entry::REPORTED)) {
            Some(now)
        } else {
            Some(d.due.unwrap_or_else(|| self.batch_due(now)))
        };
        let moved = d.due != due;
        d.due = due;
        if moved {
            due
        } else {
            None
        }
    }

    /// Entry `at` of list dialog `id` learns the state its resource shows the subscriber
    /// (and the document, while active; with `follows`, whether it follows the composed
    /// document); the dialog's next NOTIFY is scheduled when this is news. An entry that
    /// shows the composed document keeps it in its resource ([`Watched::document`]): when
    /// this changes it, the other entries that show it learn it too. Returns when the alarm
    /// must ring, if a dialog's next NOTIFY moved.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &self,
        table: &mut Table,
        id: u64,
        at: usize,
        state: SubscriptionState,
        document: Option<&Arc<Document>>,
        presentity: &Arc<Uri>,
        follows: Option<bool>,
        now: u64,
    ) -> Option<u64> {
        let Table {
            dialogs,
            rendered,
            watched,
            ..
        } = &mut *table;
        let d = dialogs.get_mut(&id)?;
        let res = d.resources.get(at)?.resource;
        let w = watched.get_mut(res);
        if !Arc::ptr_eq(&w.uri, presentity) && *w.uri == **presentity {
            w.uri = presentity.clone();
        }
        // A resource that comes back after it ended (a blocked member allowed later) is a
        // new instance (RFC 4662: an instance ends with its subscription).
        let was_ended = d.resources[at].state() == InstanceState::Terminated
            && d.resources[at].is(Entry::REPORTED);
        if was_ended && !state.is_terminated() {
            let instance = d.take_instance();
            d.resources[at].set_instance(instance);
        }
        let (state, reason) = match state {
            SubscriptionState::Active => (InstanceState::Active, None),
            SubscriptionState::Pending => (InstanceState::Pending, None),
            SubscriptionState::Terminated(reason) => (InstanceState::Terminated, reason),
        };
        // The same state told again (a resource's first state can be notified twice, say)
        // is nothing to tell the subscriber: no partial NOTIFY for it.
        let had = watched.document_of(d, at).cloned();
        let same_document = match (&had, document) {
            (None, None) => true,
            (Some(had), Some(new)) => Arc::ptr_eq(&had.document, new) || *had.document == **new,
            _ => false,
        };
        let e = &mut d.resources[at];
        let unchanged =
            e.is(Entry::REPORTED) && e.state() == state && e.reason() == reason && same_document;
        let document = match document {
            Some(doc) if !same_document => Some(rendered.render(doc, &self.boundary)),
            Some(_) => had,
            None => None,
        };
        if let Some(follows) = follows {
            e.mark(Entry::FOLLOWS, follows);
        }
        e.set_state(state);
        e.set_reason(reason);
        let mut fan_out = false;
        if e.shows_group() {
            d.change_apart(at, |a| a.document = None);
            let w = watched.get_mut(res);
            if let Some(doc) = document {
                fan_out = !w.document.as_ref().is_some_and(|had| {
                    Arc::ptr_eq(&had.document, &doc.document) || *had.document == *doc.document
                });
                if fan_out {
                    w.document = Some(doc);
                }
            }
        } else {
            d.change_apart(at, |a| a.document = document);
        }
        let mut due = None;
        if !unchanged {
            let e = &mut d.resources[at];
            e.mark(Entry::REPORTED, true);
            e.mark(Entry::CHANGED, true);
            if let Some(at) = self.touch(d, now) {
                table.schedule(id);
                due = Some(at);
            }
        }
        if fan_out {
            let slot = table.dialogs.get(&id).map(|d| d.slot);
            let others = self.fan_out(table, res, slot.map(|s| (s, at as u32)), now);
            due = due.into_iter().chain(others).min();
        }
        due
    }

    /// On the timer thread, at `now`: ends the dialogs that expired, and sends the NOTIFYs
    /// that are due.
    pub(crate) fn tick(&self, now: u64) {
        self.apply_inbox();
        let mut ready = Vec::new();
        let mut ended = Ended::default();
        {
            let mut table = lock(&self.table);
            let mut woken = Vec::new();
            while let Some(&Reverse((at, id))) = table.wakes.peek() {
                if at > now {
                    break;
                }
                table.wakes.pop();
                woken.push(id);
            }
            woken.sort_unstable();
            woken.dedup();
            let Table {
                dialogs,
                by_back,
                watched,
                slots,
                free_slots,
                ..
            } = &mut *table;
            let mut finished = Vec::new();
            let mut waiting = Vec::new();
            for id in woken {
                let Some(d) = dialogs.get_mut(&id) else {
                    continue;
                };
                waiting.push(id);
                if d.ending.is_none() && d.expires_at <= now {
                    d.ending = Some(Some("timeout"));
                    d.full = true;
                    d.due = Some(now);
                }
                let held = d.ending.is_none() && d.hold_until.is_some_and(|at| at > now);
                if d.in_flight || held || !d.due.is_some_and(|at| at <= now) {
                    continue;
                }
                if d.ending.is_some() {
                    release(watched, d);
                    ended.take(d, watched, by_back);
                }
                if let Some(p) = self.prepare(id, d, watched, now) {
                    ready.push(p);
                }
                if d.ending.is_some() {
                    finished.push(id);
                }
            }
            for id in finished {
                if let Some(d) = dialogs.remove(&id) {
                    forget(slots, free_slots, watched, &d);
                }
                ended.dialogs.push(id);
            }
            for id in waiting {
                table.schedule(id);
            }
            table.rendered.sweep();
            if self.awaiting_full.load(Ordering::Acquire) > 0 {
                let awaiting = table
                    .dialogs
                    .values()
                    .filter(|d| d.version == 0 || d.full)
                    .count();
                self.awaiting_full.store(awaiting, Ordering::Release);
            }
        }
        if let Ok(engine) = self.engine.get() {
            ended.finish(&engine);
        }
        for p in ready {
            self.send(p);
        }
    }

    /// The earliest clock time [`ListServer::tick`] has work (or may have: a dialog woken
    /// early finds nothing to do and is scheduled again).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let inbox = lock(&self.inbox).due;
        let wakes = lock(&self.table).wakes.peek().map(|w| w.0 .0);
        inbox.into_iter().chain(wakes).min()
    }

    /// The NOTIFY of dialog `d` for what is due: full or partial state, the version counted,
    /// the dialog marked in flight; `None` when there is nothing to tell.
    fn prepare(
        &self,
        id: u64,
        d: &mut ListDialog,
        watched: &Resources,
        now: u64,
    ) -> Option<Prepared> {
        let due = d.due.take();
        let full = d.full || d.version == 0 || d.ending.is_some();
        if !full && !d.resources.iter().any(|e| e.is(Entry::CHANGED)) {
            return None;
        }
        if d.ending.is_none() {
            let wait = pace_ms(d.version, self.stack.unix_ms());
            if wait > 0 {
                d.hold_until = Some(now + wait);
                d.due = due;
                self.stack.alarm().at(now + wait);
                return None;
            }
        }
        let host = d.list_uri.host();
        let style = if d.linphone {
            ContentIdStyle::Bare
        } else {
            ContentIdStyle::Standard
        };
        // The ids of this NOTIFY's parts: unique in the body, and across the dialog's
        // NOTIFYs (its id, the version, the instance).
        let prefix = format!("{id:x}.{:x}", d.version);
        let rlmi_cid = format!("{prefix}@{host}");
        let written = if full {
            d.resources.len()
        } else {
            d.resources.iter().filter(|e| e.is(Entry::CHANGED)).count()
        };
        let mut rlmi = RlmiWriter::with_room_for(written);
        if let Some(name) = &d.list_name {
            rlmi.list_name(name);
        }
        let mut shown: Vec<(String, Arc<Rendered>)> = Vec::new();
        let mut instance = String::with_capacity(8);
        let mut uri = String::with_capacity(64);
        // Whether the boundary may start a line somewhere: only where a name (text the server
        // did not write) or a part that clashes is in the NOTIFY.
        let mut check = d.list_name.is_some();
        for at in 0..d.resources.len() {
            if !(full || d.resources[at].is(Entry::CHANGED)) {
                continue;
            }
            d.resources[at].mark(Entry::CHANGED, false);
            let e = &d.resources[at];
            instance.clear();
            push_hex(&mut instance, u64::from(e.instance()), 1);
            let cid = match (e.state(), watched.document_of(d, at)) {
                (InstanceState::Active, Some(doc)) => {
                    let mut cid =
                        String::with_capacity(prefix.len() + instance.len() + host.len() + 2);
                    for piece in [&prefix, ".", &instance, "@", host] {
                        cid.push_str(piece);
                    }
                    check |= doc.clashes;
                    shown.push((cid, doc.clone()));
                    shown.last().map(|(cid, _)| cid.as_str())
                }
                _ => None,
            };
            uri.clear();
            use std::fmt::Write as _;
            let _ = write!(uri, "{}", watched.uri_of(d, at));
            let name = d
                .names
                .binary_search_by_key(&e.instance(), |n| n.0)
                .ok()
                .map(|at| &*d.names[at].1);
            check |= name.is_some();
            let reason = e.reason().map(TerminationReason::as_str);
            rlmi.resource(&uri, name, &instance, e.state(), reason, cid);
        }
        let rlmi = rlmi.finish(&d.list_text, d.version, full);
        let content_type = d.package.content_type();
        let parts: Vec<WrittenPart<'_>> = shown
            .iter()
            .map(|(cid, doc)| WrittenPart {
                content_id: cid,
                content_type,
                body: &doc.body,
            })
            .collect();
        // A name is text the server did not write (a list's, a resource's): the boundary is
        // looked for in the document, as in any part the boundary starts a line of (so
        // unlikely with a random boundary that it is not worth a faster way).
        let (content_type, bytes) = if check
            && (list_body::starts_a_line(rlmi.as_bytes(), &self.boundary)
                || shown.iter().any(|(_, doc)| doc.clashes))
        {
            match checked_body(&rlmi, &rlmi_cid, &parts, style) {
                Ok(encoded) => encoded,
                Err(e) => {
                    log::warn!("list dialog {id}: cannot build its NOTIFY: {e}");
                    return None;
                }
            }
        } else {
            list_body::write_trusted(&rlmi, &rlmi_cid, &parts, &self.boundary, style)
        };
        d.version = d.version.wrapping_add(1);
        d.full = false;
        d.in_flight = true;
        let cseq = d.next_cseq;
        d.next_cseq = d.next_cseq.wrapping_add(1).max(1);
        let state = match d.ending {
            Some(Some(reason)) => format!("terminated;reason={reason}"),
            Some(None) => "terminated".to_string(),
            None => format!("active;expires={}", d.expires_at.saturating_sub(now) / 1000),
        };
        Some(Prepared {
            id,
            event: (d.linphone && d.package == Package::Presence).then_some("Presence"),
            dialog: d.dialog.clone(),
            cseq,
            state,
            content_type,
            body: bytes,
        })
    }

    fn send(&self, mut p: Prepared) {
        let body = std::mem::take(&mut p.body);
        let d = match DialogView::read(&p.dialog) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("list dialog {}: its dialog: {e}", p.id);
                return self.notify_outcome(p.id, 500, None);
            }
        };
        let (proto, dest): (Proto, SocketAddr) = notify_destination(&d);
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self
                .stack
                .new_request("NOTIFY", d.remote_target, proto, dest)?;
            for route in d.routes() {
                b.header("Route", route)?;
            }
            // Written in full ([`SubscriptionDialog::to_bytes`] leaves nothing out).
            let (Some(local_uri), Some(remote_uri)) = (d.local_uri, d.remote_uri) else {
                return Err(Error::Internal("a list dialog without its URIs".into()));
            };
            b.header_parts("From", &["<", local_uri, ">;tag=", d.local_tag])?;
            b.header_parts("To", &["<", remote_uri, ">;tag=", d.remote_tag])?;
            b.header("Call-ID", d.call_id)?;
            b.header("CSeq", &format!("{} NOTIFY", p.cseq))?;
            let local = self.stack.local_for(proto, dest);
            let contact_end = match proto {
                Proto::Udp => ">",
                Proto::Tcp => ";transport=tcp>",
                Proto::Tls => ";transport=tls>",
                Proto::Ws => ";transport=ws>",
                Proto::Wss => ";transport=wss>",
            };
            b.header_parts("Contact", &["<sip:", &local, contact_end])?;
            b.header("Event", p.event.unwrap_or(d.event))?;
            b.header("Subscription-State", &p.state)?;
            b.header("Require", EVENTLIST)?;
            b.header("User-Agent", &self.stack.config().server_name)?;
            b.body_owned(&p.content_type, body)?;
            Ok((branch, b.build()))
        })();
        match built {
            Ok((branch, bytes)) => {
                let waiter = Box::new(NotifyWaiter {
                    role: self.me.clone(),
                    id: p.id,
                });
                self.stack.send_request(branch, bytes, proto, dest, waiter);
            }
            Err(e) => {
                log::warn!("list dialog {}: cannot build its NOTIFY: {e}", p.id);
                self.notify_outcome(p.id, 500, None);
            }
        }
    }

    /// What the subscriber answered a NOTIFY of list dialog `id` (408: no answer), with the
    /// seconds of its Retry-After if it had one: as for the notifier's dialogs, a failure
    /// with a Retry-After that ends before the dialog does (not 408 nor 481) holds the
    /// dialog that long, then its full state goes out (the subscriber missed the refused
    /// one; what changed meanwhile is in it); any other failure ends the dialog.
    fn notify_outcome(&self, id: u64, status: u16, retry_after: Option<u64>) {
        let mut table = lock(&self.table);
        if (200..300).contains(&status) || matches!(status, 401 | 407) {
            let Some(d) = table.dialogs.get_mut(&id) else {
                return;
            };
            d.in_flight = false;
            if d.due.is_some() {
                table.schedule(id);
                drop(table);
                // Sent from the timer thread (not the I/O thread that took the answer).
                self.stack.alarm().ring();
            }
            return;
        }
        if let Some(wait) = retry_after.filter(|_| !matches!(status, 408 | 481)) {
            let now = self.stack.now();
            if let Some(d) = table
                .dialogs
                .get_mut(&id)
                .filter(|d| d.ending.is_none() && d.expires_at.saturating_sub(now) > wait * 1000)
            {
                log::debug!("list dialog {id}: NOTIFY answered {status}; again in {wait} s");
                let at = now + wait * 1000;
                d.in_flight = false;
                d.full = true;
                d.hold_until = Some(at);
                d.due = Some(at);
                table.schedule(id);
                drop(table);
                self.stack.alarm().at(at);
                return;
            }
        }
        log::debug!("list dialog {id}: NOTIFY answered {status}; ending it");
        let Some(mut d) = table.dialogs.remove(&id) else {
            return;
        };
        table.release(&d);
        let mut ended = Ended::default();
        let t = &mut *table;
        ended.take(&mut d, &t.watched, &mut t.by_back);
        forget(&mut t.slots, &mut t.free_slots, &mut t.watched, &d);
        ended.dialogs.push(id);
        drop(table);
        if let Ok(engine) = self.engine.get() {
            ended.finish(&engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_instance_state_reason_and_marks_apart() {
        let marks = [
            Entry::REPORTED,
            Entry::CHANGED,
            Entry::SHARED,
            Entry::JOINED,
            Entry::FOLLOWS,
        ];
        let reasons = std::iter::once(None).chain(REASONS.iter().copied().map(Some));
        for reason in reasons {
            for state in [
                InstanceState::Pending,
                InstanceState::Active,
                InstanceState::Terminated,
            ] {
                for instance in [1, 2, 0x1234, INSTANCE_MASK] {
                    for (i, &mark) in marks.iter().enumerate() {
                        let mut e = Entry {
                            resource: u32::MAX,
                            bits: 0,
                        };
                        e.set_instance(instance);
                        e.set_state(state);
                        e.set_reason(reason);
                        e.mark(mark, true);
                        assert_eq!(
                            (e.instance(), e.state(), e.reason()),
                            (instance, state, reason)
                        );
                        for (j, &other) in marks.iter().enumerate() {
                            assert_eq!(e.is(other), i == j);
                        }
                        e.mark(mark, false);
                        e.set_instance(7);
                        assert_eq!((e.instance(), e.state(), e.reason()), (7, state, reason));
                        assert!(!e.is(mark));
                        assert_eq!(e.resource, u32::MAX);
                    }
                }
            }
        }
    }

    #[test]
    fn entries_and_holders_stay_small() {
        // One of each per resource of every list subscription: what a list phone costs
        // (benches/rls). Grow them back and this fails.
        assert!(
            std::mem::size_of::<Entry>() <= 8,
            "{}",
            std::mem::size_of::<Entry>()
        );
        assert!(std::mem::size_of::<Holder>() <= 8);
        // One per list subscription, with its SIP dialog in its compact form (the dialog
        // itself is 240 bytes).
        let dialog = std::mem::size_of::<ListDialog>();
        assert!(dialog <= 336, "{dialog}");
    }

    #[test]
    fn resources_are_kept_once_and_go_with_their_last_entry() {
        let mut r = Resources::default();
        let uri = |s: &str| Uri::parse(s).unwrap();
        let (a, own) = r.intern(uri("sip:alice@a.test"), Package::Presence);
        assert!(own.is_none());
        let (again, own) = r.intern(uri("sip:alice@a.test"), Package::Presence);
        assert_eq!((again, own.is_none()), (a, true));
        // Another spelling of the same key: the same resource, the entry's own spelling.
        let (other, own) = r.intern(uri("pres:alice@a.test"), Package::Presence);
        assert_eq!(other, a);
        assert_eq!(own.unwrap().to_string(), "pres:alice@a.test");
        // Another package: another resource.
        let (dialog, _) = r.intern(uri("sip:alice@a.test"), Package::Dialog);
        assert_ne!(dialog, a);
        assert_eq!(r.find(Package::Presence, "alice@a.test".into()), Some(a));
        for _ in 0..3 {
            r.unref(a);
        }
        assert_eq!(r.find(Package::Presence, "alice@a.test".into()), None);
        assert_eq!(r.find(Package::Dialog, "alice@a.test".into()), Some(dialog));
        // Its slot is taken again.
        let (bob, _) = r.intern(uri("sip:bob@a.test"), Package::Presence);
        assert_eq!(bob, a);
        assert_eq!(r.get(bob).uri.to_string(), "sip:bob@a.test");
    }

    #[test]
    fn batches_end_on_a_grid_unless_short() {
        // A second's batches end on a 100 ms grid: 1 to 1.1 s.
        assert_eq!(batch_end(1_003, 1_000), 2_100);
        assert_eq!(batch_end(1_000, 1_000), 2_000);
        assert_eq!(batch_end(1_099, 1_000), 2_100);
        assert_eq!(batch_end(1_101, 1_000), 2_200);
        // Shorter ones on the 20 ms grid, the shortest not at all.
        assert_eq!(batch_end(1_003, 200), 1_220);
        assert_eq!(batch_end(1_003, 100), 1_103);
        assert_eq!(batch_end(1_003, 0), 1_003);
    }

    #[test]
    fn list_tags_are_told_apart_from_the_notifiers() {
        assert_eq!(dialog_in_tag("0badf00d.l2a"), Some(0x2a));
        assert_eq!(dialog_in_tag("0badf00d.2a"), None);
        assert_eq!(dialog_in_tag("1f3a9c0de"), None);
        assert_eq!(dialog_in_tag("x.lzz"), None);
    }

    fn dialog() -> SubscriptionDialog {
        SubscriptionDialog {
            call_id: "c1@phone".into(),
            local_tag: "0badf00d.l2a".into(),
            remote_tag: "r1".into(),
            local_uri: "sip:buddies@a.test".into(),
            remote_uri: "sip:bob@a.test".into(),
            remote_target: "sip:bob@192.0.2.4:5062".into(),
            route_set: vec!["<sip:p.test;lr>".into()],
            local_cseq: 0,
            remote_cseq: 7,
            event: "presence".into(),
            proto: Proto::Udp,
            peer: "192.0.2.4:5062".parse().unwrap(),
        }
    }

    #[test]
    fn a_back_subscriptions_target_carries_its_list_dialog() {
        let d = dialog();
        let target = record(
            0x2a,
            "sip:buddies@a.test",
            Flags::default(),
            &d,
            "sip:bob@a.test",
        );
        let (id, rest) = read_record(&target).unwrap();
        assert_eq!(id, 0x2a);
        let (list, flags, bytes) = rest.unwrap();
        assert_eq!(list, "sip:buddies@a.test");
        assert_eq!(flags, Flags::default());
        // The URIs the list and the back subscription give are left out.
        assert!(bytes.len() < d.to_bytes().len());
        let back = SubscriptionDialog::from_bytes_beside(bytes, list, "sip:bob@a.test").unwrap();
        assert_eq!(back, d);
        // What an earlier version wrote: the id alone, no dialog to restore.
        assert_eq!(read_record(b"impp-list 2a"), Some((0x2a, None)));
        // An ad-hoc list's dialog with Linphone: both said, the rest as before.
        let both = Flags {
            adhoc: true,
            linphone: true,
        };
        let target = record(0x2b, "sip:buddies@a.test", both, &d, "sip:bob@a.test");
        assert!(target.starts_with(b"impp-list 2b sip:buddies@a.test adhoc linphone\n"));
        let (_, rest) = read_record(&target).unwrap();
        let (list, flags, again) = rest.unwrap();
        assert_eq!((list, flags, again), ("sip:buddies@a.test", both, bytes));
        for other in [
            &b"impp-dialog 1"[..],
            b"impp-list zz x\n",
            b"impp-list ",
            b"impp-list 2a sip:l@a.test later\nx",
        ] {
            assert_eq!(read_record(other), None, "{other:?}");
        }
    }

    #[test]
    fn versions_never_run_ahead_of_the_seconds_a_restart_continues_from() {
        // 2026-11-24, on a second.
        let unix = 1_795_500_000_000;
        let restored = restart_version(unix);
        assert_eq!(restored, restart_cseq(unix) + 1);
        // The restored version waits for its second; one behind it goes at once.
        assert_eq!(pace_ms(restored, unix), 1000);
        assert_eq!(pace_ms(restored, unix + 400), 600);
        assert_eq!(pace_ms(restored, unix + 1000), 0);
        assert_eq!(pace_ms(0, unix), 0);
        // A wall clock stepped back: no wait of more than MAX_PACE_MS.
        assert_eq!(pace_ms(restored + 10, unix), 0);
        // A wall clock not set (before the count starts): no pace at all.
        assert_eq!(pace_ms(1, 0), 0);
        assert_eq!(pace_ms(2, 1_000_000_000_000), 0);
        // Any version sent before a restart (at most the seconds counted then) is below the
        // one the restart continues from, even a second later.
        assert!(restart_version(unix + 999) > restart_cseq(unix + 999));
    }
}
