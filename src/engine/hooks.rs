//! What a transport plugged into the engine (the SIP stack) sets on it: the event tap, which
//! sees every batch of events before the application's queue and takes the ones that are
//! the transport's to deliver (NOTIFYs of remote watchers, messages for SIP contacts), and
//! remote delivery, which hands messages for domains the engine does not own to the
//! transport instead of failing them.
//!
//! Why a tap and not the application's callback: the application keeps its own callback or
//! polling, whatever transport runs beside it, and sees exactly the events that are its own.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::events::Event;

/// A transport's event tap: called on a shard thread with each batch of events, in order,
/// before the batch reaches the application's queue. Events it removes from the `Vec` are
/// never seen by the application; the rest are queued as they are left. It must be quick and
/// must not wait for anything an engine call may hold (it runs while shards work): hand the
/// events over to a thread of the transport's own.
pub type EventTap = Arc<dyn Fn(&mut Vec<Event>) + Send + Sync>;

/// The hooks, shared by the engine and its shards.
#[derive(Default)]
pub(crate) struct Hooks {
    tap: RwLock<Option<EventTap>>,
    /// Whether a tap is set: lets shards skip the lock when none is (the usual case).
    tapped: AtomicBool,
    remote_delivery: AtomicBool,
}

impl Hooks {
    pub(crate) fn set_tap(&self, tap: Option<EventTap>) {
        let mut slot = self.tap.write().unwrap_or_else(PoisonError::into_inner);
        self.tapped.store(tap.is_some(), Ordering::Release);
        *slot = tap;
    }

    /// Runs the tap (if any) over `events`.
    pub(crate) fn tap(&self, events: &mut Vec<Event>) {
        if !self.tapped.load(Ordering::Acquire) {
            return;
        }
        let tap = self
            .tap
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(tap) = tap {
            tap(events);
        }
    }

    pub(crate) fn set_remote_delivery(&self, on: bool) {
        self.remote_delivery.store(on, Ordering::Release);
    }

    pub(crate) fn remote_delivery(&self) -> bool {
        self.remote_delivery.load(Ordering::Acquire)
    }
}
