//! One subscription's state: who, to what, how long, what it may see, and when it was last
//! told (filters and the minimum notification interval act here).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::events::SubscriptionState;
use crate::doc::filter::Filter;
use crate::doc::winfo::{WatcherEvent, WatcherStatus};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::id_table::{IdTable, Keyed};
use crate::model::package::{Document, Package};
use crate::model::rule::AuthAction;
use crate::uri::Uri;

/// The watcher status (RFC 3857) of a subscription in `state` after `event`.
pub(crate) fn status_of_event(state: SubscriptionState, event: WatcherEvent) -> WatcherStatus {
    match state {
        SubscriptionState::Pending => WatcherStatus::Pending,
        SubscriptionState::Active => WatcherStatus::Active,
        // RFC 3857 §3.9: a pending subscription that times out waits for the presentity.
        SubscriptionState::Terminated(_) if event == WatcherEvent::Giveup => WatcherStatus::Waiting,
        SubscriptionState::Terminated(_) => WatcherStatus::Terminated,
    }
}

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
    /// When it was made, in whole seconds of the shard clock (watcher information tells
    /// the age in seconds; four bytes last 136 years).
    subscribed_s: u32,
    /// A remote watcher's target (see [`Remote::target`]).
    target: Option<Arc<[u8]>>,
    extra: Option<Box<Extra>>,
    pub(crate) package: Package,
    pub(crate) state: SubscriptionState,
    pub(crate) action: AuthAction,
    /// Watcher information about this subscription (kept by the presentity's
    /// [`super::watchers::WatcherLog`]): its status and the event that caused it, in one
    /// byte (with the creation time in seconds, this keeps the subscription at 64 bytes).
    winfo: WinfoMark,
}

/// A watcher status and event in one byte: the status in the high bits.
#[derive(Clone, Copy)]
pub(crate) struct WinfoMark(u8);

const WINFO_STATUSES: [WatcherStatus; 4] = [
    WatcherStatus::Pending,
    WatcherStatus::Active,
    WatcherStatus::Waiting,
    WatcherStatus::Terminated,
];

const WINFO_EVENTS: [WatcherEvent; 8] = [
    WatcherEvent::Subscribe,
    WatcherEvent::Approved,
    WatcherEvent::Deactivated,
    WatcherEvent::Probation,
    WatcherEvent::Rejected,
    WatcherEvent::Timeout,
    WatcherEvent::Giveup,
    WatcherEvent::Noresource,
];

impl WinfoMark {
    pub(crate) fn new(status: WatcherStatus, event: WatcherEvent) -> WinfoMark {
        let s = WINFO_STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(0);
        let e = WINFO_EVENTS.iter().position(|x| *x == event).unwrap_or(0);
        WinfoMark((s << 4 | e) as u8)
    }

    pub(crate) fn status(self) -> WatcherStatus {
        WINFO_STATUSES[usize::from(self.0 >> 4)]
    }

    pub(crate) fn event(self) -> WatcherEvent {
        WINFO_EVENTS[usize::from(self.0 & 0xf)]
    }
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
            subscribed_s: u32::try_from(now / 1000).unwrap_or(u32::MAX),
            target,
            extra,
            package,
            state,
            action,
            winfo: WinfoMark::new(
                status_of_event(state, WatcherEvent::Subscribe),
                WatcherEvent::Subscribe,
            ),
        }
    }

    /// How long ago it was made, in whole seconds.
    pub(crate) fn age_s(&self, now: u64) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.subscribed_s))
    }

    /// Its watcher status, for watcher information.
    pub(crate) fn winfo_status(&self) -> WatcherStatus {
        self.winfo.status()
    }

    /// The event that caused its watcher status.
    pub(crate) fn winfo_event(&self) -> WatcherEvent {
        self.winfo.event()
    }

    /// Records a watcher status and the event that caused it.
    pub(crate) fn set_winfo(&mut self, status: WatcherStatus, event: WatcherEvent) {
        self.winfo = WinfoMark::new(status, event);
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

/// A shard's subscriptions by id.
pub(crate) type Subscriptions = IdTable<Subscription>;

impl Keyed for Subscription {
    fn id(&self) -> SubscriptionId {
        self.id
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
        // 56 before a remote watcher's target (16 bytes) moved in from the boxed extra part;
        // back to 64 with the creation time in seconds and the watcher mark in one byte.
        assert!(std::mem::size_of::<Option<Subscription>>() <= 64);
    }

    #[test]
    fn subscriptions_are_found_by_their_own_id() {
        let mut subs = Subscriptions::default();
        for id in [3, 5, 1_000_003] {
            subs.insert(SubscriptionId(id), sub(id));
        }
        assert_eq!(subs[&SubscriptionId(5)].id, SubscriptionId(5));
        assert_eq!(subs.values().count(), 3);
        assert!(subs.remove(&SubscriptionId(5)).is_some());
        assert!(!subs.contains_key(&SubscriptionId(5)));
        assert_eq!(subs.len(), 2);
    }

    #[test]
    fn the_watcher_mark_keeps_every_status_and_event() {
        for status in WINFO_STATUSES {
            for event in WINFO_EVENTS {
                let mark = WinfoMark::new(status, event);
                assert_eq!((mark.status(), mark.event()), (status, event));
            }
        }
    }
}
