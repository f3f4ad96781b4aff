//! The threaded presence core (DESIGN §1, §3): presentities sharded over worker threads,
//! publications composed per package, subscriptions with authorization and soft state, and
//! events delivered to the application by callback or polling.
#![forbid(unsafe_code)]

pub mod clock;
pub(crate) mod dispatcher;
pub mod events;
pub mod package;
pub(crate) mod queue;

pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{Event, Notification, SubscriptionId, SubscriptionState, TerminationReason};
pub use package::{Document, Package};
