//! What the engine tells the application: one [`Event`] type for both delivery modes
//! (callback on the dispatcher thread, or polling).
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::package::{Document, Package};
pub use crate::model::id::SubscriptionId;
use crate::uri::Uri;

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
    /// The subscription's target, for a remote watcher (see
    /// [`super::SubscribeRequest::target`]): its notifications are for the transport that
    /// made it to deliver (they go to its port, [`super::Port`]), and carry the target so
    /// that the transport need not keep a copy of every dialog. `None`: an in-process
    /// watcher.
    pub target: Option<Arc<[u8]>>,
}

impl Notification {
    /// Whether the watcher is remote (the subscription has a target).
    pub fn is_remote(&self) -> bool {
        self.target.is_some()
    }

    /// Merges a newer notification of the same subscription into this one, which the
    /// watcher has not been told yet: the latest state wins, and a change-only document
    /// (watcher information) gives way to the full state it came with, since the watcher
    /// never saw the state the change applies to. The one rule for every place that holds
    /// notifications back (the event queues, a transport's per-dialog delivery).
    pub fn merge(&mut self, mut newer: Notification) {
        if let Some(full) = &newer.full_state {
            newer.document = Some(Arc::clone(full));
        }
        *self = newer;
    }
}

/// Something the application is told. New kinds may be added: match with a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A watcher's notification.
    Notification(Notification),
    /// A subscription awaits the presentity's decision (its rules say `confirm`). With a
    /// transport that decides on watchers of other domains' presentities
    /// ([`super::PortOptions::subscription_events`]), the requests it decides go to it alone.
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
    /// An instant message for one of the recipient's endpoints (one event per endpoint it
    /// reaches). Boxed: the queue moves every event, and notifications are the many.
    Message(Box<Message>),
    /// An instant message for a user of a domain this engine does not own, while a transport
    /// delivers such messages (the transport's port ([`super::PortOptions::remote_messages`])): the transport sends it
    /// on and reports the outcome with [`super::Core::report_delivery`]. `endpoint` is empty.
    RemoteMessage(Box<Message>),
    /// What became of a sent message, for its sender: `Stored` (the recipient was offline;
    /// it is on disk), then `Delivered` or `Failed`.
    Delivery(Delivery),
    /// An endpoint's login was not refreshed in time and ended.
    EndpointExpired {
        /// Whose endpoint.
        user: Arc<Uri>,
        /// The endpoint's id.
        endpoint: Arc<str>,
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
            Event::PublicationExpired { .. }
            | Event::Message(_)
            | Event::RemoteMessage(_)
            | Event::Delivery(_)
            | Event::EndpointExpired { .. } => None,
        }
    }
}

/// Identifies an instant message for its whole life, across restarts of an engine on the
/// same store. Ids grow in the order messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An instant message as its recipient's endpoint receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The id the sender was given.
    pub id: MessageId,
    /// Who sent it.
    pub sender: Arc<Uri>,
    /// Who it is for.
    pub recipient: Arc<Uri>,
    /// Its MIME type, as the sender gave it.
    pub content_type: Arc<str>,
    /// Its body (bytes; shared by the copies for each endpoint).
    pub body: Arc<[u8]>,
    /// The endpoint this copy is for.
    pub endpoint: Arc<str>,
    /// The message or call it refers to, as the sender gave it.
    pub in_reply_to: Option<Arc<str>>,
    /// When it was sent, in Unix milliseconds.
    pub sent_at: u64,
    /// Where the endpoint is reached, for an endpoint a transport logged in with a contact
    /// ([`super::Core::login_at`]): such a message is the transport's to deliver (it goes
    /// to its port), and the transport tells the engine whether the device took it
    /// ([`super::Core::report_handover`]). `None`: an in-process endpoint.
    pub contact: Option<Arc<str>>,
    /// The message as the sender's transport received it, when it came through one (for
    /// SIP, the MESSAGE request's bytes), kept with the message (on disk too) so that a
    /// transport relays it as it was written: headers, encoding, identifiers. Opaque to the
    /// engine.
    pub wire: Option<Arc<[u8]>>,
}

/// Why a message could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The recipient is not a user of this engine (a domain it does not own, or not in its
    /// user directory when it has one).
    UnknownUser,
    /// The body is larger than the configured limit.
    TooLarge,
    /// It was stored for an offline recipient who did not log in before it expired.
    Expired,
    /// The recipient's rules block the sender.
    Rejected,
    /// The recipient is offline and the message is of a kind never stored
    /// (`application/im-iscomposing+xml`).
    Offline,
    /// The recipient is offline and the store could not keep the message.
    Storage,
    /// The recipient's domain could not be reached: its next hop did not answer, or
    /// answered with a server error (a message sent on by a transport).
    Unreachable,
    /// The recipient cannot take it now and its mailbox is full: it holds as many waiting
    /// messages as the engine keeps for one user, or as many from this sender as it keeps
    /// from one sender for one user ([`crate::engine::StateLimits`]). Nothing was stored.
    MailboxFull,
}

impl FailureReason {
    /// The reason as the C and Python APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::UnknownUser => "unknown-user",
            FailureReason::TooLarge => "too-large",
            FailureReason::Expired => "expired",
            FailureReason::Rejected => "rejected",
            FailureReason::Offline => "offline",
            FailureReason::Storage => "storage",
            FailureReason::Unreachable => "unreachable",
            FailureReason::MailboxFull => "mailbox-full",
        }
    }
}

/// A message's delivery outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// Given to the recipient's endpoints.
    Delivered,
    /// Kept on disk for an offline recipient; `Delivered` or `Failed(Expired)` follows.
    Stored,
    /// Not delivered, and never will be.
    Failed(FailureReason),
}

impl DeliveryOutcome {
    /// `"delivered"`, `"stored"` or `"failed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Stored => "stored",
            DeliveryOutcome::Failed(_) => "failed",
        }
    }

    /// The failure reason, for `Failed`.
    pub fn reason(self) -> Option<FailureReason> {
        match self {
            DeliveryOutcome::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// A delivery outcome, told to the message's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message: MessageId,
    /// Who sent it (whom this event is for).
    pub sender: Arc<Uri>,
    /// Who it was for.
    pub recipient: Arc<Uri>,
    /// What became of it.
    pub outcome: DeliveryOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every queued event is moved in and out of the queue: keep the type small (the rare,
    /// large kinds are boxed).
    #[test]
    fn events_stay_small() {
        let (event, notification) = (
            std::mem::size_of::<Event>(),
            std::mem::size_of::<Notification>(),
        );
        println!("Event {event} B, Notification {notification} B");
        assert!(event <= 64, "Event is {event} bytes");
    }
}
