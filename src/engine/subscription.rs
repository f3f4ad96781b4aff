//! One subscription's state: who, to what, how long, what it may see, and when it was last
//! told (filters and the minimum notification interval act here).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::authorization::AuthAction;
use super::events::{SubscriptionId, SubscriptionState};
use super::package::{Document, Package};
use crate::doc::filter::Filter;
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

pub(crate) struct Subscription {
    pub(crate) id: SubscriptionId,
    pub(crate) watcher: Arc<Uri>,
    pub(crate) presentity: Arc<Uri>,
    pub(crate) package: Package,
    pub(crate) state: SubscriptionState,
    pub(crate) action: AuthAction,
    pub(crate) expires_at: u64,
    pub(crate) first_subscribed: u64,
    /// Boxed: most subscriptions have none, and a filter is several times the size of the
    /// rest of the subscription.
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
    pub(crate) winfo_version: u32,
    pub(crate) winfo_seen: u64,
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
    ) -> Subscription {
        Subscription {
            id,
            watcher,
            presentity,
            package,
            state,
            action,
            expires_at,
            first_subscribed: now,
            filter: filter.map(Box::new),
            last_seen: None,
            filter_failure_logged: false,
            min_interval_ms: min_interval.as_millis() as u64,
            last_notified: None,
            held_until: None,
            winfo_version: 0,
            winfo_seen: 0,
        }
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
        }
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
        let (Some(filter), Document::Presence(new)) = (&self.filter, &*doc) else {
            return Some(Some(doc));
        };
        let old = match self.last_seen.as_deref() {
            Some(Document::Presence(p)) => Some(p),
            _ => None,
        };
        let wanted = full || filter.should_notify_presence(old, new);
        // A filter whose result is not a valid document cannot be honoured; the watcher is
        // authorized, so it gets the unfiltered state rather than nothing.
        let shaped = match filter.apply_to_presence(new) {
            Ok(p) => Arc::new(Document::Presence(p)),
            Err(e) => {
                let level = if self.filter_failure_logged {
                    log::Level::Debug
                } else {
                    log::Level::Warn
                };
                self.filter_failure_logged = true;
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
        self.last_seen = Some(doc);
        wanted.then_some(Some(shaped))
    }

    /// Decides whether a (non-forced) notification may go now.
    pub(crate) fn throttle(&mut self, now: u64) -> Throttle {
        if self.held_until.is_some() {
            return Throttle::Held;
        }
        match self.last_notified {
            Some(last) if self.min_interval_ms > 0 && now < last + self.min_interval_ms => {
                let at = last + self.min_interval_ms;
                self.held_until = Some(at);
                Throttle::HoldUntil(at)
            }
            _ => Throttle::Send,
        }
    }

    /// When a held notification is due, if one is held.
    pub(crate) fn held_until(&self) -> Option<u64> {
        self.held_until
    }

    /// Records that a notification went out.
    pub(crate) fn notified(&mut self, now: u64) {
        self.last_notified = Some(now);
        self.held_until = None;
    }
}
