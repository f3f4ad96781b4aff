//! What the engine tells the application: one [`Event`] type for both delivery modes
//! (callback on the dispatcher thread, or polling).
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::package::{Document, Package};
use crate::uri::Uri;

/// Identifies a subscription for its whole life. Unique within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a subscription ended (RFC 6665 §4.2.2 reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// Ended by the notifier; the watcher may subscribe again at once.
    Deactivated,
    /// Ended by the notifier; the watcher should wait before subscribing again.
    Probation,
    /// Authorization was refused or revoked.
    Rejected,
    /// Not refreshed in time, or ended by the watcher.
    Timeout,
    /// The presentity did not decide on authorization in time.
    Giveup,
    /// The presentity no longer exists.
    Noresource,
}

impl TerminationReason {
    /// The reason as SIP's `Subscription-State` header spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Deactivated => "deactivated",
            TerminationReason::Probation => "probation",
            TerminationReason::Rejected => "rejected",
            TerminationReason::Timeout => "timeout",
            TerminationReason::Giveup => "giveup",
            TerminationReason::Noresource => "noresource",
        }
    }
}

/// The state of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    /// Waiting for the presentity's authorization; notifications carry no document.
    Pending,
    /// Authorized; notifications carry the (filtered) state.
    Active,
    /// Ended, with the reason when there is one.
    Terminated(Option<TerminationReason>),
}

impl SubscriptionState {
    /// `"pending"`, `"active"` or `"terminated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Pending => "pending",
            SubscriptionState::Active => "active",
            SubscriptionState::Terminated(_) => "terminated",
        }
    }

    /// Whether the subscription has ended.
    pub fn is_terminated(self) -> bool {
        matches!(self, SubscriptionState::Terminated(_))
    }
}

/// A notification to one watcher: the state of its subscription and, when the watcher may
/// see it, the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The subscription notified.
    pub subscription: SubscriptionId,
    /// Who watches.
    pub watcher: Arc<Uri>,
    /// Who is watched.
    pub presentity: Arc<Uri>,
    /// The event package.
    pub package: Package,
    /// The subscription's state as of this notification.
    pub state: SubscriptionState,
    /// The document the watcher may see; `None` while pending, after termination, or for a
    /// blocked watcher. Shared between the watchers that see the same document.
    pub document: Option<Arc<Document>>,
    /// For packages that notify changes only (watcher information partial documents): the
    /// full state at the same moment, used instead of `document` when this notification is
    /// merged into one that was still waiting.
    pub full_state: Option<Arc<Document>>,
}

/// Something the application is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A watcher's notification.
    Notification(Notification),
    /// A subscription awaits the presentity's decision (its rules say `confirm`).
    AuthorizationRequested {
        /// The pending subscription.
        subscription: SubscriptionId,
        /// Who asks to watch.
        watcher: Arc<Uri>,
        /// Who would be watched.
        presentity: Arc<Uri>,
        /// The package asked for.
        package: Package,
    },
    /// A subscription changed state (created, authorized, terminated), for the application
    /// that manages subscriptions on behalf of users.
    SubscriptionStateChanged {
        /// The subscription.
        subscription: SubscriptionId,
        /// Who watches.
        watcher: Arc<Uri>,
        /// Who is watched.
        presentity: Arc<Uri>,
        /// The package.
        package: Package,
        /// The new state.
        state: SubscriptionState,
    },
    /// A publication was not refreshed in time and was withdrawn.
    PublicationExpired {
        /// Whose publication.
        presentity: Arc<Uri>,
        /// The package.
        package: Package,
        /// Its entity tag (now unknown to the engine).
        etag: String,
    },
}

impl Event {
    /// The subscription the event is about, if any.
    pub fn subscription(&self) -> Option<SubscriptionId> {
        match self {
            Event::Notification(n) => Some(n.subscription),
            Event::AuthorizationRequested { subscription, .. }
            | Event::SubscriptionStateChanged { subscription, .. } => Some(*subscription),
            Event::PublicationExpired { .. } => None,
        }
    }
}
