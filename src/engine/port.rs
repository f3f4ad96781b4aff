//! The engine port (DESIGN §3): how a transport plugged into the engine (the SIP stack)
//! receives the events that are its own to deliver, through a queue of its own.
//!
//! # What is the transport's
//!
//! The engine decides, from what the transport itself made, never from what an event says:
//!
//! | event | goes to the port when |
//! | --- | --- |
//! | [`Event::Notification`] | its subscription has a target (the transport made it for a remote watcher) |
//! | [`Event::Message`] | its endpoint has a contact (the transport logged it in with [`super::Core::login_at`]) |
//! | [`Event::RemoteMessage`] | always (only made while a port asks for them) |
//! | [`Event::Delivery`] | copied: the transport answers the senders of the messages it took in, and the application sees it too |
//! | [`Event::SubscriptionStateChanged`], [`Event::AuthorizationRequested`] | copied, when [`PortOptions::subscription_events`] asks; a request about a watcher of another domain's presentity that the transport decides goes to the port alone |
//!
//! Everything else, and everything while no port is open, goes to the application's queue
//! alone: the application keeps its own callback or polling whatever transport runs beside
//! it, and sees exactly the events that are its own.
//!
//! # The queue
//!
//! The port's queue is the same bounded queue as the application's (`super::queue`): below
//! its bound every event is kept; at the bound a notification merges into the one of its
//! subscription still waiting (the latest state wins; a change-only watcher-information
//! document merges as its full state), and what cannot merge (messages, outcomes) is kept
//! beyond the bound, never dropped. A transport that falls behind under a PUBLISH storm
//! therefore costs at most one waiting notification per subscription.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use super::events::{Event, Notification};
use super::queue::EventQueue;
use crate::error::{Error, Result};

/// What a transport asks of the port it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOptions {
    /// The port queue's bound (events), past which notifications merge. Default 65,536.
    pub capacity: usize,
    /// Whether messages for domains the engine does not own become
    /// [`Event::RemoteMessage`]s for the transport to send on, instead of failing as
    /// `unknown-user`. Default: no.
    pub remote_messages: bool,
    /// Whether the transport gets copies of [`Event::SubscriptionStateChanged`] and
    /// [`Event::AuthorizationRequested`] (a SIP stack that keeps back-end subscriptions
    /// for its local watchers of remote presentities). Default: no.
    ///
    /// It also hands the transport the last word on watchers of presentities of domains the
    /// engine does not own, unless a rule of the engine restricts them (block, polite-block,
    /// or confirm, which asks the application as usual): such a subscription starts pending
    /// and an [`Event::AuthorizationRequested`] that only the transport sees asks it; it
    /// allows the watcher once the presentity's own domain did. The exception is a first
    /// watcher of a presentity with no state here: allowed at once, as there is nothing to
    /// show and the transport's subscription is made in its name.
    pub subscription_events: bool,
}

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions {
            capacity: 65_536,
            remote_messages: false,
            subscription_events: false,
        }
    }
}

/// A function that takes notifications for the port on the shard's thread, as the shard
/// makes them, instead of their going through the port's queue (see [`Port::take_inline`]):
/// `None` when it took one, `Some` to give it back to the queue.
pub type InlineTaker = Arc<dyn Fn(Notification) -> Option<Notification> + Send + Sync>;

/// Counters of a port's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Events waiting now.
    pub waiting: usize,
    /// Notifications merged into one of the same subscription that was still waiting.
    pub merged: u64,
    /// Events kept beyond the bound (they could not merge).
    pub overflowed: u64,
}

/// The transport's end of the port: where it takes its events. Closing it (or dropping it)
/// sends the transport's events to the application again.
pub struct Port {
    queue: Arc<EventQueue>,
    slot: Arc<PortSlot>,
}

impl Port {
    /// Up to `max` events, in order, waiting at most `timeout` for the first (`None`:
    /// until one comes or the port closes). Empty after a timeout, or once the port is
    /// closed and drained.
    pub fn next_events(&self, max: usize, timeout: Option<Duration>) -> Vec<Event> {
        self.queue.pop_batch(max, timeout)
    }

    /// Whether the port is closed (no more events will come once the waiting ones are
    /// taken).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Has `take` look at each notification for this port as a shard makes it, on the
    /// shard's thread, before it is queued: one it takes (returns `None` for) never reaches
    /// the queue, and no thread is woken for it. For a transport that only records some
    /// notifications to act on them later (a list server's shared subscriptions, whose
    /// changes wait for a batch anyway): the queue's consumer is then not woken once per
    /// change. `take` runs while the shard waits on it: it must be quick and must never wait
    /// for the engine, nor for a lock that anyone holds while waiting for the engine.
    /// Replaces an earlier one; the port's closing drops it.
    pub fn take_inline(&self, take: InlineTaker) {
        *self
            .slot
            .inline
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(take);
    }

    /// The queue's counters.
    pub fn stats(&self) -> PortStats {
        let stats = self.queue.stats();
        PortStats {
            waiting: self.queue.len(),
            merged: stats.merged,
            overflowed: stats.overflowed,
        }
    }

    /// Closes the port: from now on the engine's events go to the application; the events
    /// still waiting can be taken, then [`Port::next_events`] returns empty at once. A
    /// handle that may be moved to the thread that waits on the port.
    pub fn closer(&self) -> PortCloser {
        PortCloser {
            queue: self.queue.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.closer().close();
    }
}

/// Closes a [`Port`] from another thread (see [`Port::closer`]).
#[derive(Clone)]
pub struct PortCloser {
    queue: Arc<EventQueue>,
    slot: Arc<PortSlot>,
}

impl PortCloser {
    /// The events waiting now, and how many were taken so far (read in that order): the
    /// taker has dealt with everything queued before this call once it has handled that
    /// many and none wait. For [`crate::sip::SipServer::sync`].
    pub(crate) fn progress(&self) -> (usize, u64) {
        let waiting = self.queue.len();
        (waiting, self.queue.stats().delivered)
    }

    /// Closes the port (once; later calls do nothing).
    pub fn close(&self) {
        self.slot.detach(&self.queue);
        self.queue.close();
    }
}

/// The engine's side: the open port (if any), read by every shard when it queues events.
#[derive(Default)]
pub(crate) struct PortSlot {
    open: RwLock<Option<(Arc<EventQueue>, PortOptions)>>,
    /// What takes notifications before the queue ([`Port::take_inline`]).
    inline: RwLock<Option<InlineTaker>>,
    /// Whether a port is open: lets shards skip the lock when none is (the usual case for
    /// an embedding application).
    is_open: AtomicBool,
    remote_messages: AtomicBool,
    subscription_events: AtomicBool,
    /// Subscriptions whose next [`Event::AuthorizationRequested`] is the transport's alone.
    transport_asks: Mutex<HashSet<crate::model::id::SubscriptionId>>,
}

impl PortSlot {
    /// Opens the port; one per engine.
    pub(crate) fn open(self: &Arc<PortSlot>, options: PortOptions) -> Result<Port> {
        if options.capacity == 0 {
            return Err(Error::InvalidArgument(
                "the port's capacity must be at least 1".into(),
            ));
        }
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if open.is_some() {
            return Err(Error::InvalidArgument(
                "a transport's port is already open on this engine".into(),
            ));
        }
        let queue = EventQueue::new(options.capacity)
            .map_err(|e| Error::Internal(format!("cannot create the port's queue: {e}")))?;
        *open = Some((queue.clone(), options));
        self.remote_messages
            .store(options.remote_messages, Ordering::Release);
        self.subscription_events
            .store(options.subscription_events, Ordering::Release);
        self.is_open.store(true, Ordering::Release);
        Ok(Port {
            queue,
            slot: self.clone(),
        })
    }

    fn detach(&self, queue: &Arc<EventQueue>) {
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if open.as_ref().is_some_and(|(q, _)| Arc::ptr_eq(q, queue)) {
            *open = None;
            *self.inline.write().unwrap_or_else(PoisonError::into_inner) = None;
            self.is_open.store(false, Ordering::Release);
            self.remote_messages.store(false, Ordering::Release);
            self.subscription_events.store(false, Ordering::Release);
            self.transport_asks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// The next [`Event::AuthorizationRequested`] of `id` goes to the transport alone.
    pub(crate) fn transport_asks(&self, id: crate::model::id::SubscriptionId) {
        self.transport_asks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    /// Whether the transport decides on watchers of other domains' presentities
    /// ([`PortOptions::subscription_events`]).
    pub(crate) fn decides_remote_watchers(&self) -> bool {
        self.subscription_events.load(Ordering::Acquire)
    }

    /// Whether messages for other domains go to the transport.
    pub(crate) fn remote_messages(&self) -> bool {
        self.remote_messages.load(Ordering::Acquire)
    }

    /// Whether a port is open.
    pub(crate) fn is_open(&self) -> bool {
        self.is_open.load(Ordering::Acquire)
    }

    /// Moves the transport's events of `events` to the port (copies the ones both see);
    /// the rest stay, in order, for the application's queue.
    pub(crate) fn route(&self, events: &mut Vec<Event>) {
        if !self.is_open() {
            return;
        }
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        let Some((queue, options)) = open.as_ref() else {
            return;
        };
        if !events.iter().any(|e| share(e, options) != Share::None) {
            return;
        }
        let inline = self.inline.read().unwrap_or_else(PoisonError::into_inner);
        let mut mine = Vec::new();
        for event in std::mem::take(events) {
            let share = match &event {
                Event::AuthorizationRequested { subscription, .. }
                    if self
                        .transport_asks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(subscription) =>
                {
                    Share::Port
                }
                _ => share(&event, options),
            };
            match share {
                Share::Port => match (event, inline.as_ref()) {
                    (Event::Notification(n), Some(take)) => {
                        if let Some(n) = take(n) {
                            mine.push(Event::Notification(n));
                        }
                    }
                    (event, _) => mine.push(event),
                },
                Share::Both => {
                    mine.push(event.clone());
                    events.push(event);
                }
                Share::None => events.push(event),
            }
        }
        // Refused only once the port closed: the transport is gone, and what it made is
        // the application's again.
        if let Err(refused) = queue.push_batch(mine) {
            events.extend(
                refused
                    .into_iter()
                    .filter(|e| share(e, options) == Share::Port),
            );
        }
    }
}

/// Who sees an event while a port is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    Port,
    Both,
    None,
}

fn share(event: &Event, options: &PortOptions) -> Share {
    match event {
        Event::Notification(n) if n.target.is_some() => Share::Port,
        Event::Message(m) if m.contact.is_some() => Share::Port,
        Event::RemoteMessage(_) => Share::Port,
        Event::Delivery(_) => Share::Both,
        Event::SubscriptionStateChanged { .. } | Event::AuthorizationRequested { .. }
            if options.subscription_events =>
        {
            Share::Both
        }
        _ => Share::None,
    }
}
