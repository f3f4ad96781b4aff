//! One subscription's state: who, to what, how long, what it may see, and when it was last
//! told (filters and the minimum notification interval act here).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::authorization::AuthAction;
use super::events::{SubscriptionId, SubscriptionState};
use super::package::{Document, Package};
use super::watchers::status_of_event;
use crate::doc::filter::Filter;
use crate::doc::winfo::{WatcherEvent, WatcherStatus};
use crate::log;
use crate::uri::Uri;

/// A snapshot of a subscription, as `Engine::subscription` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The subscription.
    pub id: SubscriptionId,
    /// Who watches.
    pub watcher: Uri,
    /// Who is watched.
    pub presentity: Uri,
    /// The package.
    pub package: Package,
    /// Its state.
    pub state: SubscriptionState,
    /// What authorization decided for it.
    pub authorization: AuthAction,
    /// Time left before it expires unless refreshed.
    pub expires_in: Duration,
    /// Where its notifications go, for a remote watcher (see [`super::SubscribeRequest`]).
    pub target: Option<Arc<[u8]>>,
}

/// What a subscription of a remote watcher carries besides the rest: kept in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The remote target's own serialization (the SIP dialog), opaque to the engine.
    pub(crate) target: Arc<[u8]>,
    /// The filter document the watcher gave, serialized, to rebuild its filter on restart.
    pub(crate) filter: Option<String>,
}

/// What the minimum notification interval says about a notification due now.
pub(crate) enum Throttle {
    /// Send it.
    Send,
    /// Hold it; a timer must fire at this clock time to send the merged state.
    HoldUntil(u64),
    /// Hold it; a timer is already set.
    Held,
}

/// A subscription. Kept small (a shard holds hundreds of thousands): what only some
/// subscriptions need (a filter, a minimum interval, watcher-information progress) is boxed
/// apart. A remote watcher's target is kept here, not there: a SIP server's subscriptions
/// are nearly all remote and nearly none has a filter, so the box would be one more
/// allocation (about 130 bytes with its parts) for each of them.
pub(crate) struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) watcher: Arc<Uri>,
    pub(crate) presentity: Arc<Uri>,
    pub(crate) expires_at: u64,
    pub(crate) first_subscribed: u64,
    /// A remote watcher's target (see [`Remote::target`]).
    target: Option<Arc<[u8]>>,
    extra: Option<Box<Extra>>,
    pub(crate) package: Package,
    pub(crate) state: SubscriptionState,
    pub(crate) action: AuthAction,
    /// Watcher information about this subscription (kept by the presentity's
    /// [`super::watchers::WatcherLog`]): its status and the event that caused it.
    pub(crate) winfo_status: WatcherStatus,
    pub(crate) winfo_event: WatcherEvent,
}

/// The rarely needed part of a subscription.
#[derive(Default)]
struct Extra {
    /// Boxed: a filter is several times the size of the rest of the subscription.
    filter: Option<Box<Filter>>,
    /// The last document this subscription's triggers looked at (unfiltered).
    last_seen: Option<Arc<Document>>,
    /// Whether a failure to apply the filter was already logged as a warning (later ones
    /// go to debug: the same filter usually fails on every document of the presentity).
    filter_failure_logged: bool,
    min_interval_ms: u64,
    last_notified: Option<u64>,
    held_until: Option<u64>,
    /// Watcher information only: the version of the next document, and how far into the
    /// presentity's watcher log this subscriber has been told.
    winfo_version: u32,
    winfo_seen: u64,
    /// A remote watcher's filter document (see [`Remote::filter`]).
    filter_text: Option<String>,
}

impl Subscription {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: SubscriptionId,
        watcher: Arc<Uri>,
        presentity: Arc<Uri>,
        package: Package,
        state: SubscriptionState,
        action: AuthAction,
        expires_at: u64,
        now: u64,
        filter: Option<Filter>,
        min_interval: Duration,
        remote: Option<Remote>,
    ) -> Subscription {
        let min_interval_ms = min_interval.as_millis() as u64;
        let (target, filter_text) = match remote {
            Some(r) => (Some(r.target), r.filter),
            None => (None, None),
        };
        let extra = (filter.is_some()
            || min_interval_ms > 0
            || package == Package::PresenceWinfo
            || filter_text.is_some())
        .then(|| {
            Box::new(Extra {
                filter: filter.map(Box::new),
                min_interval_ms,
                filter_text,
                ..Extra::default()
            })
        });
        Subscription {
            id,
            watcher,
            presentity,
            expires_at,
            first_subscribed: now,
            target,
            extra,
            package,
            state,
            action,
            winfo_status: status_of_event(state, WatcherEvent::Subscribe),
            winfo_event: WatcherEvent::Subscribe,
        }
    }

    /// Watcher information only: the version of the next document (0: none sent yet).
    pub(crate) fn winfo_version(&self) -> u32 {
        self.extra.as_ref().map_or(0, |e| e.winfo_version)
    }

    /// Watcher information only: how far into the watcher log this subscriber was told.
    pub(crate) fn winfo_seen(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.winfo_seen)
    }

    /// Watcher information only: a document was made; `seen` is the log's last change.
    pub(crate) fn winfo_advance(&mut self, seen: u64) {
        let extra = self.extra.get_or_insert_with(Box::default);
        extra.winfo_version += 1;
        extra.winfo_seen = seen;
    }

    pub(crate) fn info(&self, now: u64) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id,
            watcher: (*self.watcher).clone(),
            presentity: (*self.presentity).clone(),
            package: self.package,
            state: self.state,
            authorization: self.action,
            expires_in: Duration::from_millis(self.expires_at.saturating_sub(now)),
            target: self.target.clone(),
        }
    }

    /// A remote watcher's target; `None` for an in-process watcher.
    pub(crate) fn target(&self) -> Option<&Arc<[u8]>> {
        self.target.as_ref()
    }

    /// A remote watcher's filter document, as it gave it.
    pub(crate) fn filter_text(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.filter_text.as_deref())
    }

    /// The minimum notification interval.
    pub(crate) fn min_interval_ms(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.min_interval_ms)
    }

    /// Applies the subscription's filter to `document`. Returns `None` when the filter's
    /// triggers say the change is not worth a notification (never for `full` ones), else the
    /// document to send (`Some(None)`: a notification without document).
    pub(crate) fn shape(
        &mut self,
        document: Option<Arc<Document>>,
        full: bool,
    ) -> Option<Option<Arc<Document>>> {
        let Some(doc) = document else {
            return Some(None);
        };
        let Some(extra) = self.extra.as_deref_mut() else {
            return Some(Some(doc));
        };
        let (Some(filter), Document::Presence(new)) = (&extra.filter, &*doc) else {
            return Some(Some(doc));
        };
        let old = match extra.last_seen.as_deref() {
            Some(Document::Presence(p)) => Some(p),
            _ => None,
        };
        let wanted = full || filter.should_notify_presence(old, new);
        // A filter whose result is not a valid document cannot be honoured; the watcher is
        // authorized, so it gets the unfiltered state rather than nothing.
        let shaped = match filter.apply_to_presence(new) {
            Ok(p) => Arc::new(Document::Presence(p)),
            Err(e) => {
                let level = if extra.filter_failure_logged {
                    log::Level::Debug
                } else {
                    log::Level::Warn
                };
                extra.filter_failure_logged = true;
                log::log!(
                    level,
                    "subscription {}: its filter cannot be applied to the presence of {} ({e}); \
                     sending the unfiltered document",
                    self.id,
                    self.presentity
                );
                doc.clone()
            }
        };
        extra.last_seen = Some(doc);
        wanted.then_some(Some(shaped))
    }

    /// Whether [`Subscription::throttle`] and [`Subscription::notified`] look at the time
    /// (only a subscription with a minimum interval does).
    pub(crate) fn uses_clock(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.min_interval_ms > 0)
    }

    /// Decides whether a (non-forced) notification may go now.
    pub(crate) fn throttle(&mut self, now: u64) -> Throttle {
        let Some(extra) = self.extra.as_deref_mut() else {
            return Throttle::Send;
        };
        if extra.held_until.is_some() {
            return Throttle::Held;
        }
        match extra.last_notified {
            Some(last) if extra.min_interval_ms > 0 && now < last + extra.min_interval_ms => {
                let at = last + extra.min_interval_ms;
                extra.held_until = Some(at);
                Throttle::HoldUntil(at)
            }
            _ => Throttle::Send,
        }
    }

    /// When a held notification is due, if one is held.
    pub(crate) fn held_until(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.held_until)
    }

    /// Records that a notification went out.
    pub(crate) fn notified(&mut self, now: u64) {
        if let Some(extra) = self.extra.as_deref_mut() {
            extra.last_notified = Some(now);
            extra.held_until = None;
        }
    }
}

/// A shard's subscriptions by id: a slab of subscriptions and an open-addressing index of
/// slab slots (4 bytes a bucket, linear probing, the id compared in the slab). Costs about
/// one subscription plus 5–11 bytes per entry, where a `HashMap` costs twice that.
///
/// The slab is made of fixed-size chunks rather than one vector: a vector grows by
/// doubling, so after growing it holds up to twice the room it needs (on average a third
/// of the slab would be spare, about 36 bytes a subscription); chunks waste at most one.
#[derive(Default)]
pub(crate) struct Subscriptions {
    chunks: Vec<Box<[Option<Subscription>]>>,
    /// Slots ever used (the next new slot); the slots below it that are free are in `free`.
    used: u32,
    free: Vec<u32>,
    /// Slab slots; `EMPTY` marks a free bucket. Its length is 0 or a power of two, at most
    /// three quarters full (linear probing stays short: about 2.5 probes to find an id, 8.5
    /// to miss one).
    index: Vec<u32>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

/// Subscriptions in one slab chunk (18 KiB): small enough for a shard with a handful.
const CHUNK: usize = 256;

impl Subscriptions {
    fn slot(&self, slot: u32) -> &Option<Subscription> {
        let slot = slot as usize;
        &self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Option<Subscription> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn home(&self, id: SubscriptionId) -> usize {
        let bits = self.index.len().trailing_zeros();
        // Fibonacci hashing: the ids of a shard are nearly consecutive multiples of the
        // worker count; the multiplication spreads them over the table.
        (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn id_at(&self, slot: u32) -> SubscriptionId {
        self.slot(slot)
            .as_ref()
            .expect("indexed slot holds a subscription")
            .id
    }

    /// The bucket and slab slot of `id`.
    fn find(&self, id: SubscriptionId) -> Option<(usize, u32)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = self.home(id);
        loop {
            let slot = self.index[i];
            if slot == EMPTY {
                return None;
            }
            if self.id_at(slot) == id {
                return Some((i, slot));
            }
            i = (i + 1) & mask;
        }
    }

    fn place(&mut self, slot: u32) {
        let mask = self.index.len() - 1;
        let mut i = self.home(self.id_at(slot));
        while self.index[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = slot;
    }

    fn grow_index(&mut self) {
        let size = (self.index.len() * 2).max(16);
        let old = std::mem::replace(&mut self.index, vec![EMPTY; size]);
        for slot in old.into_iter().filter(|s| *s != EMPTY) {
            self.place(slot);
        }
    }

    pub(crate) fn contains_key(&self, id: &SubscriptionId) -> bool {
        self.find(*id).is_some()
    }

    pub(crate) fn get(&self, id: &SubscriptionId) -> Option<&Subscription> {
        let (_, slot) = self.find(*id)?;
        self.slot(slot).as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &SubscriptionId) -> Option<&mut Subscription> {
        let (_, slot) = self.find(*id)?;
        self.slot_mut(slot).as_mut()
    }

    /// Adds `sub` under `id` (its own id), replacing one with the same id.
    pub(crate) fn insert(&mut self, id: SubscriptionId, sub: Subscription) {
        debug_assert_eq!(id, sub.id);
        if let Some((_, slot)) = self.find(id) {
            *self.slot_mut(slot) = Some(sub);
            return;
        }
        if (self.len + 1) * 4 > self.index.len() * 3 {
            self.grow_index();
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.used;
                assert!(
                    slot != EMPTY,
                    "fewer than 2^32 - 1 subscriptions in a shard"
                );
                if slot as usize == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                }
                self.used += 1;
                slot
            }
        };
        *self.slot_mut(slot) = Some(sub);
        self.place(slot);
        self.len += 1;
    }

    pub(crate) fn remove(&mut self, id: &SubscriptionId) -> Option<Subscription> {
        let (mut hole, slot) = self.find(*id)?;
        let mask = self.index.len() - 1;
        self.index[hole] = EMPTY;
        // Backward-shift deletion: pull later entries of the probe run into the hole when
        // their home bucket allows it, so no tombstones are needed.
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(self.id_at(s));
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                self.index[j] = EMPTY;
                hole = j;
            }
        }
        let sub = self.slot_mut(slot).take();
        if slot + 1 == self.used {
            self.used -= 1;
        } else {
            self.free.push(slot);
        }
        self.len -= 1;
        if self.len == 0 {
            self.chunks.clear();
            self.used = 0;
            self.free.clear();
        }
        sub
    }

    /// Every subscription, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Subscription> {
        self.chunks.iter().flat_map(|c| c.iter().flatten())
    }

    /// How many subscriptions there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl std::ops::Index<&SubscriptionId> for Subscriptions {
    type Output = Subscription;

    fn index(&self, id: &SubscriptionId) -> &Subscription {
        self.get(id).expect("no such subscription")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: u64) -> Subscription {
        let uri: Arc<Uri> = Arc::new("sip:a@example.test".parse().expect("uri"));
        Subscription::new(
            SubscriptionId(id),
            uri.clone(),
            uri,
            Package::Presence,
            SubscriptionState::Active,
            AuthAction::Allow,
            0,
            0,
            None,
            Duration::ZERO,
            None,
        )
    }

    #[test]
    fn sizes() {
        println!(
            "Subscription {} B, Option<Subscription> {} B",
            std::mem::size_of::<Subscription>(),
            std::mem::size_of::<Option<Subscription>>()
        );
        // 56 before a remote watcher's target (16 bytes) moved in from the boxed extra part.
        assert!(std::mem::size_of::<Option<Subscription>>() <= 72);
    }

    #[test]
    fn slab_and_index_agree_with_a_map() {
        let mut subs = Subscriptions::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x1234_5678;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 3000) * 3 + 1;
            if x % 5 < 3 {
                if model.insert(id) {
                    subs.insert(SubscriptionId(id), sub(id));
                }
            } else {
                assert_eq!(
                    subs.remove(&SubscriptionId(id)).map(|s| s.id.0),
                    model.take(&id)
                );
            }
            if step % 997 == 0 {
                for probe in 0..9100 {
                    assert_eq!(
                        subs.get(&SubscriptionId(probe)).map(|s| s.id.0),
                        model.get(&probe).copied()
                    );
                }
            }
            assert_eq!(subs.len(), model.len());
        }
        for id in model.clone() {
            assert!(subs.remove(&SubscriptionId(id)).is_some());
        }
        assert_eq!(subs.len(), 0);
        assert!(subs.get(&SubscriptionId(1)).is_none());
    }
}
