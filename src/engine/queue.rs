//! The event queue between the engine's shards (producers) and the application (the
//! consumer), DESIGN §3: bounded, with per-subscription coalescing of notifications, a
//! condition variable for blocking consumers and a file descriptor for select/epoll/asyncio
//! loops.
//!
//! # The bound, merging and overflow
//!
//! The queue holds up to `capacity` events. Below the bound every event is appended: a watcher
//! that keeps up sees every intermediate state (a `presence.winfo` partial document, a filter
//! trigger such as open → closed → open), and memory is bounded anyway.
//!
//! Merging happens only when the queue is at (or beyond) its bound at the moment an event
//! arrives; inside one batch the check is made per event, so a batch that fills the queue
//! merges its tail. Then an [`Event::Notification`] for a subscription that already has a
//! notification waiting *merges* into that waiting one: in place, keeping its position, the
//! latest state wins (the newer notification replaces the older one whole; when the newer
//! carries `full_state`, that full state becomes the merged `document`, because a partial
//! change must not replace a state the watcher never saw). Each merge counts in
//! [`QueueStats::merged`].
//!
//! A notification merges only into the *latest* waiting notification of its subscription, and
//! only when no other event about the same subscription (a state change, an authorization
//! request) was queued after it: merging across such an event would move the newer state in
//! front of it and reorder what the watcher is told.
//!
//! Events that cannot merge (every other kind, and a notification whose subscription has
//! nothing waiting) are **still appended beyond the bound, never dropped**, and count in
//! [`QueueStats::overflowed`]. Instant messages will be such events: they must never be lost.
//! The bound therefore limits notifications, the one thing a storm multiplies; the overflow
//! beyond it is at most one notification per subscription plus the unmergeable events.
//!
//! # Cost
//!
//! A push takes the lock once per batch and moves the events; no allocation beyond the
//! batch's `Vec` (and the queue's amortized growth), and no system call except one byte on the
//! readiness socket when the queue goes from empty to non-empty (the consumer reads it back
//! when it empties the queue) - and that only once the readiness descriptor was asked for
//! ([`EventQueue::fd`]): a queue whose descriptor nobody holds cannot be watched through it,
//! so it skips both system calls; asking for the descriptor while events wait makes it
//! readable at once, so the descriptor is readable exactly while events wait from the moment
//! anyone has it. A producer notifies the condition variable only when a consumer sleeps on
//! it; a consumer about to sleep first yields its core for a few microseconds
//! (`SPIN`), so a producer that is about to push finds it awake and skips the wake-up
//! system call. The subscription → position index that makes a merge O(1) is
//! only kept while the queue is congested: it is built on the first push that finds the queue
//! full (one pass over the waiting events, paid for by the pushes that filled it) and dropped
//! when the consumer has brought the queue down to half the bound, so a queue that keeps up
//! never hashes anything.
//!
//! # Consumers
//!
//! Exactly one kind of consumer takes events at a time, and the queue itself enforces it:
//! either the application polls ([`EventQueue::pop`], [`EventQueue::pop_batch`], the
//! readiness descriptor), or the dispatcher thread takes them for the application's callback
//! (`super::dispatcher`). [`EventQueue::set_consumer`] records which one the application
//! asked for; the dispatcher thread [`claim`](EventQueue::claim)s the queue when it starts
//! consuming and [`release`](EventQueue::release)s it when it stops, after putting back the
//! events it took but did not deliver ([`EventQueue::requeue_front`]), so order is kept
//! across a switch. While the application asked for the dispatcher, pops return `None` at
//! once; while a switch back to polling is under way, pops wait for it (within their timeout).
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::events::{Event, Notification};
use crate::model::id::SubscriptionId;

/// Counters of a queue since it was created. `queued - delivered` is the current length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueStats {
    /// Events appended as their own entry (merged notifications are not counted here).
    pub queued: u64,
    /// Notifications merged into one of the same subscription that was still waiting.
    pub merged: u64,
    /// Events appended while the queue was at or beyond its bound (they could not merge).
    pub overflowed: u64,
    /// Events taken by a consumer (and not put back).
    pub delivered: u64,
    /// Events refused because the queue was closed.
    pub refused: u64,
}

/// Who takes events from the queue: the application polling, or the dispatcher thread
/// calling the application's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consumer {
    /// The application polls (the initial mode).
    Application,
    /// The dispatcher thread consumes; pops return `None`.
    Dispatcher,
}

/// What [`EventQueue::take_claimed`] came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Events were appended to the caller's buffer.
    Events,
    /// [`EventQueue::set_consumer`] was called since the last take: look at the controls.
    Interrupted,
    /// The queue is closed and empty: nothing will ever come.
    Closed,
}

/// The bounded, coalescing event queue, shared as `Arc<EventQueue>` by the producers (the
/// shard threads) and the consumer. See the module documentation for the rules.
pub(crate) struct EventQueue {
    capacity: usize,
    inner: Mutex<Inner>,
    /// Signalled when events arrive, on close and on every consumer change.
    wakeup: Condvar,
    /// One byte is written here when the queue goes from empty to non-empty...
    bell_tx: UnixStream,
    /// ...and read back from here when it becomes empty; this end is the readiness descriptor.
    bell_rx: UnixStream,
    /// Whether events wait: a hint read without the lock by a consumer about to sleep (the
    /// lock decides; it is written under the lock on every change of emptiness).
    nonempty: AtomicBool,
}

/// How long a consumer that found the queue empty yields its core, looking at
/// [`EventQueue::nonempty`], before it sleeps on the condition variable (which costs the next
/// producer a wake-up system call and the consumer a scheduler round trip).
const SPIN: Duration = Duration::from_micros(50);

struct Inner {
    events: VecDeque<Event>,
    /// The sequence number of `events[0]`; `events[i]` has `head + i` (wrapping).
    head: u64,
    /// Whether `waiting` is kept (the queue is congested, see the module documentation).
    indexed: bool,
    /// While `indexed`: subscription → sequence number of its latest waiting notification,
    /// for subscriptions with no other event about them queued after that notification.
    waiting: IdMap,
    /// Whether the readiness byte is written and not yet read back.
    rung: bool,
    /// Whether the readiness descriptor was handed out ([`EventQueue::fd`]); until then the
    /// byte is never written.
    armed: bool,
    closed: bool,
    consumer: Consumer,
    /// Whether the dispatcher thread holds the queue (it alone pops).
    claimed: bool,
    /// Set by `set_consumer`, cleared by the dispatcher's next `take_claimed`.
    interrupted: bool,
    /// Threads blocked on `wakeup`; nobody is notified (no system call) when there are none.
    waiters: usize,
    stats: QueueStats,
}

impl EventQueue {
    /// A queue bounded at `capacity` events (at least 1). Fails when the readiness socket pair
    /// cannot be made (out of file descriptors) or `capacity` is 0.
    pub(crate) fn new(capacity: usize) -> io::Result<Arc<EventQueue>> {
        if capacity == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "event queue capacity must be at least 1, got 0",
            ));
        }
        let (bell_tx, bell_rx) = UnixStream::pair()?;
        bell_tx.set_nonblocking(true)?;
        bell_rx.set_nonblocking(true)?;
        Ok(Arc::new(EventQueue {
            capacity,
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                head: 0,
                indexed: false,
                waiting: IdMap::default(),
                rung: false,
                armed: false,
                closed: false,
                consumer: Consumer::Application,
                claimed: false,
                interrupted: false,
                waiters: 0,
                stats: QueueStats::default(),
            }),
            wakeup: Condvar::new(),
            bell_tx,
            bell_rx,
            nonempty: AtomicBool::new(false),
        }))
    }

    /// Appends a batch of events in order, under one lock, merging notifications when the
    /// queue is at its bound (module documentation). Never drops an accepted event.
    ///
    /// After [`close`](Self::close) nothing is accepted: the whole batch comes back as the
    /// error, untouched, so the caller can fail it with a clear outcome (an instant message
    /// must not vanish); it counts in [`QueueStats::refused`]. Events queued before the close
    /// stay queued.
    pub(crate) fn push_batch(&self, events: Vec<Event>) -> Result<(), Vec<Event>> {
        if events.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        if inner.closed {
            inner.stats.refused += events.len() as u64;
            return Err(events);
        }
        let was_empty = inner.events.is_empty();
        for event in events {
            inner.push(event, self.capacity);
        }
        if was_empty {
            self.ring(&mut inner);
        }
        self.note_len(&inner);
        self.wake(inner);
        Ok(())
    }

    /// Takes the oldest event, waiting up to `timeout` (`None`: until one comes or the queue
    /// is closed; `Some(Duration::ZERO)`: no wait). `None` on timeout, when the queue is
    /// closed and empty, or while the dispatcher consumes (callback mode).
    pub(crate) fn pop(&self, timeout: Option<Duration>) -> Option<Event> {
        let deadline = deadline(timeout);
        let mut inner = self.lock();
        let mut spun = false;
        loop {
            if inner.consumer == Consumer::Dispatcher {
                return None;
            }
            if !inner.claimed {
                if let Some(event) = self.take_one(&mut inner) {
                    return Some(event);
                }
                if inner.closed {
                    return None;
                }
            }
            inner = self.wait(inner, deadline, &mut spun)?;
        }
    }

    /// Takes up to `max` events at once, oldest first, waiting up to `timeout` for the first
    /// one as [`pop`](Self::pop) does; empty when `pop` would give `None` (or `max` is 0).
    /// One lock for the whole batch.
    pub(crate) fn pop_batch(&self, max: usize, timeout: Option<Duration>) -> Vec<Event> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        let deadline = deadline(timeout);
        let mut inner = self.lock();
        let mut spun = false;
        loop {
            if inner.consumer == Consumer::Dispatcher {
                return out;
            }
            if !inner.claimed {
                if !inner.events.is_empty() {
                    out.reserve(max.min(inner.events.len()));
                    self.take_into(&mut inner, &mut out, max);
                    return out;
                }
                if inner.closed {
                    return out;
                }
            }
            match self.wait(inner, deadline, &mut spun) {
                Some(guard) => inner = guard,
                None => return out,
            }
        }
    }

    /// The readiness descriptor: readable exactly while events wait. Register it with
    /// select/poll/epoll/asyncio and call [`pop`](Self::pop) when it is readable; never read
    /// it. It lives as long as the queue.
    ///
    /// The first call arms it (until then no byte is ever written, which saves two system
    /// calls per empty → non-empty → empty cycle for applications that do not use it); when
    /// events already wait, it is readable when this returns.
    pub(crate) fn fd(&self) -> RawFd {
        let mut inner = self.lock();
        if !inner.armed {
            inner.armed = true;
            self.ring(&mut inner);
        }
        self.bell_rx.as_raw_fd()
    }

    /// The number of events waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> QueueStats {
        self.lock().stats
    }

    /// Stops intake: wakes every waiter; later pushes are refused, pops drain what is left and
    /// then return `None`. Idempotent.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        self.wake(inner);
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Records which consumer the application wants and interrupts the dispatcher thread's
    /// [`take_claimed`](Self::take_claimed) so it looks at its controls. Waiting pollers
    /// return `None` when the dispatcher is asked for, and wait for the handover when polling
    /// is asked for while the dispatcher still holds the queue.
    pub(crate) fn set_consumer(&self, consumer: Consumer) {
        let mut inner = self.lock();
        inner.consumer = consumer;
        inner.interrupted = true;
        self.wake(inner);
    }

    /// The dispatcher thread takes the queue: from now on it alone pops.
    pub(crate) fn claim(&self) {
        let mut inner = self.lock();
        inner.claimed = true;
        self.wake(inner);
    }

    /// The dispatcher thread gives the queue back to the application (after putting back what
    /// it did not deliver).
    pub(crate) fn release(&self) {
        let mut inner = self.lock();
        inner.claimed = false;
        self.wake(inner);
    }

    /// For the dispatcher thread, which has [`claim`](Self::claim)ed the queue: waits until
    /// events are there and appends up to `max` of them to `out`, or until it is interrupted
    /// (consumer change, close) or the queue is closed and empty. No timeout: every way out
    /// is an event.
    pub(crate) fn take_claimed(&self, out: &mut Vec<Event>, max: usize) -> Take {
        let mut inner = self.lock();
        debug_assert!(inner.claimed, "take_claimed without claim");
        let mut spun = false;
        loop {
            if inner.interrupted {
                inner.interrupted = false;
                return Take::Interrupted;
            }
            if !inner.events.is_empty() {
                self.take_into(&mut inner, out, max.max(1));
                return Take::Events;
            }
            if inner.closed {
                return Take::Closed;
            }
            // No deadline: `wait` only gives up on a deadline.
            inner = self.wait(inner, None, &mut spun).expect("no deadline");
        }
    }

    /// Puts events that a consumer took but did not deliver back at the front, in their
    /// order (the iterator yields them oldest first). Allowed after close: they were accepted
    /// before it.
    pub(crate) fn requeue_front<I>(&self, events: I)
    where
        I: DoubleEndedIterator<Item = Event>,
    {
        let mut inner = self.lock();
        let was_empty = inner.events.is_empty();
        let mut count = 0u64;
        for event in events.rev() {
            inner.events.push_front(event);
            count += 1;
        }
        if count == 0 {
            return;
        }
        inner.head = inner.head.wrapping_sub(count);
        inner.stats.delivered = inner.stats.delivered.saturating_sub(count);
        // The put-back notifications are older than every indexed one; rather than work out
        // which of them are merge targets, rebuild the index on the next push at the bound.
        inner.drop_index();
        if was_empty {
            self.ring(&mut inner);
        }
        self.note_len(&inner);
        self.wake(inner);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding this lock; if it ever did, the state is still whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notifies the waiters, if any, after letting go of the lock.
    fn wake(&self, inner: MutexGuard<'_, Inner>) {
        let waiters = inner.waiters;
        drop(inner);
        if waiters > 0 {
            self.wakeup.notify_all();
        }
    }

    /// Keeps the lock-free emptiness hint in step (called under the lock after a change).
    fn note_len(&self, inner: &Inner) {
        self.nonempty
            .store(!inner.events.is_empty(), Ordering::Relaxed);
    }

    /// Waits for a notification on `wakeup`; `None` when `deadline` has passed. The first
    /// call of a pop (`*spun` false) instead lets go of the lock and yields the core for up to
    /// [`SPIN`] while no event comes, then returns the lock without sleeping: the caller
    /// looks again (anything may have changed meanwhile) and calls again to sleep.
    fn wait<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        deadline: Option<Instant>,
        spun: &mut bool,
    ) -> Option<MutexGuard<'a, Inner>> {
        if !*spun {
            *spun = true;
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return None;
            }
            drop(inner);
            let until = deadline.map_or(now + SPIN, |deadline| deadline.min(now + SPIN));
            while !self.nonempty.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::yield_now();
            }
            return Some(self.lock());
        }
        inner.waiters += 1;
        let mut inner = match deadline {
            None => self
                .wakeup
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    inner.waiters -= 1;
                    return None;
                }
                self.wakeup
                    .wait_timeout(inner, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        inner.waiters -= 1;
        Some(inner)
    }

    /// Makes the descriptor readable (the queue just became non-empty).
    fn ring(&self, inner: &mut Inner) {
        if inner.armed && !inner.rung && !inner.events.is_empty() {
            // At most one byte is ever outstanding, so the write cannot find the buffer full.
            let written = (&self.bell_tx).write(&[1]);
            debug_assert!(matches!(written, Ok(1)), "readiness write: {written:?}");
            inner.rung = written.is_ok();
        }
    }

    /// Makes the descriptor unreadable (the queue just became empty).
    fn unring(&self, inner: &mut Inner) {
        if inner.rung {
            let mut byte = [0u8; 8];
            let read = (&self.bell_rx).read(&mut byte);
            debug_assert!(matches!(read, Ok(1)), "readiness read: {read:?}");
            inner.rung = false;
        }
    }

    fn take_one(&self, inner: &mut Inner) -> Option<Event> {
        let event = inner.events.pop_front()?;
        if inner.indexed {
            inner.forget(&event, inner.head);
        }
        inner.head = inner.head.wrapping_add(1);
        inner.stats.delivered += 1;
        self.after_take(inner);
        Some(event)
    }

    fn take_into(&self, inner: &mut Inner, out: &mut Vec<Event>, max: usize) {
        let count = max.min(inner.events.len());
        if inner.indexed {
            let Inner {
                events,
                head,
                waiting,
                ..
            } = &mut *inner;
            for (offset, event) in events.iter().take(count).enumerate() {
                forget(waiting, event, head.wrapping_add(offset as u64));
            }
        }
        out.extend(inner.events.drain(..count));
        inner.head = inner.head.wrapping_add(count as u64);
        inner.stats.delivered += count as u64;
        self.after_take(inner);
    }

    fn after_take(&self, inner: &mut Inner) {
        if inner.indexed && inner.events.len() <= self.capacity / 2 {
            inner.drop_index();
        }
        if inner.events.is_empty() {
            self.unring(inner);
        }
        self.note_len(inner);
    }
}

impl Inner {
    fn push(&mut self, event: Event, capacity: usize) {
        let full = self.events.len() >= capacity;
        let event = match event {
            Event::Notification(newer) if full => match self.merge(newer) {
                Ok(()) => {
                    self.stats.merged += 1;
                    return;
                }
                Err(newer) => Event::Notification(newer),
            },
            other => other,
        };
        if full {
            self.stats.overflowed += 1;
        }
        if self.indexed {
            let seq = self.head.wrapping_add(self.events.len() as u64);
            index(&mut self.waiting, &event, seq);
        }
        self.events.push_back(event);
        self.stats.queued += 1;
    }

    /// Merges `newer` into the waiting notification of its subscription, if there is one it
    /// may merge into; gives it back otherwise.
    fn merge(&mut self, newer: Notification) -> Result<(), Notification> {
        if !self.indexed {
            self.build_index();
        }
        let Some(&seq) = self.waiting.get(&newer.subscription) else {
            return Err(newer);
        };
        let offset = usize::try_from(seq.wrapping_sub(self.head)).ok();
        match offset.and_then(|offset| self.events.get_mut(offset)) {
            Some(Event::Notification(waiting)) if waiting.subscription == newer.subscription => {
                merge_into(waiting, newer);
                Ok(())
            }
            _ => {
                debug_assert!(false, "index points at the wrong event");
                Err(newer)
            }
        }
    }

    fn build_index(&mut self) {
        self.waiting.clear();
        for (offset, event) in self.events.iter().enumerate() {
            index(
                &mut self.waiting,
                event,
                self.head.wrapping_add(offset as u64),
            );
        }
        self.indexed = true;
    }

    fn drop_index(&mut self) {
        if self.indexed {
            self.waiting.clear();
            self.indexed = false;
        }
    }

    fn forget(&mut self, event: &Event, seq: u64) {
        forget(&mut self.waiting, event, seq);
    }
}

/// Records an event appended at `seq` in the index: a notification becomes its
/// subscription's merge target; any other event about a subscription is a barrier.
fn index(waiting: &mut IdMap, event: &Event, seq: u64) {
    match event {
        Event::Notification(note) => {
            waiting.insert(note.subscription, seq);
        }
        other => {
            if let Some(subscription) = other.subscription() {
                waiting.remove(&subscription);
            }
        }
    }
}

/// Removes a taken notification from the index if it was its subscription's merge target.
fn forget(waiting: &mut IdMap, event: &Event, seq: u64) {
    if let Event::Notification(note) = event {
        if waiting.get(&note.subscription) == Some(&seq) {
            waiting.remove(&note.subscription);
        }
    }
}

/// See [`Notification::merge`].
fn merge_into(waiting: &mut Notification, newer: Notification) {
    waiting.merge(newer);
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too large to represent is as good as none.
    timeout.and_then(|timeout| Instant::now().checked_add(timeout))
}

type IdMap = HashMap<SubscriptionId, u64, BuildHasherDefault<IdHasher>>;

/// Hashes subscription ids (one `u64` each) with one multiplication instead of SipHash: the
/// ids are made by the engine, not chosen by an attacker. The fold brings the well-mixed high
/// bits down to the low bits the table indexes with, so strided ids spread too.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    use std::thread;

    use super::*;
    use crate::doc::mwi::MessageSummary;
    use crate::engine::events::SubscriptionState;
    use crate::model::package::{Document, Package};
    use crate::uri::Uri;

    fn uri() -> Arc<Uri> {
        static URI: OnceLock<Arc<Uri>> = OnceLock::new();
        Arc::clone(URI.get_or_init(|| Arc::new(Uri::parse("sip:alice@example.test").unwrap())))
    }

    /// A document told apart from others by `tag`.
    fn doc(tag: u64) -> Arc<Document> {
        Arc::new(Document::MessageSummary(MessageSummary {
            account: Some(tag.to_string()),
            ..MessageSummary::new(true)
        }))
    }

    fn notification(sub: u64, tag: u64) -> Notification {
        Notification {
            subscription: SubscriptionId(sub),
            watcher: uri(),
            presentity: uri(),
            package: Package::MessageSummary,
            state: SubscriptionState::Active,
            document: Some(doc(tag)),
            full_state: None,
            target: None,
        }
    }

    fn note(sub: u64, tag: u64) -> Event {
        Event::Notification(notification(sub, tag))
    }

    fn changed(sub: u64) -> Event {
        Event::SubscriptionStateChanged {
            subscription: SubscriptionId(sub),
            watcher: uri(),
            presentity: uri(),
            package: Package::MessageSummary,
            state: SubscriptionState::Active,
        }
    }

    /// An event no notification can merge into (like an instant message will be).
    fn expired(tag: u64) -> Event {
        Event::PublicationExpired {
            presentity: uri(),
            package: Package::Presence,
            etag: tag.to_string(),
        }
    }

    /// The tag of a notification's document or of an expiry's entity tag.
    fn tag(event: &Event) -> u64 {
        match event {
            Event::Notification(n) => match n.document.as_deref() {
                Some(Document::MessageSummary(m)) => m.account.as_ref().unwrap().parse().unwrap(),
                other => panic!("unexpected document {other:?}"),
            },
            Event::PublicationExpired { etag, .. } => etag.parse().unwrap(),
            Event::SubscriptionStateChanged { subscription, .. } => subscription.0,
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn snapshot(queue: &EventQueue) -> Vec<Event> {
        queue.lock().events.iter().cloned().collect()
    }

    /// How many bytes the readiness descriptor has to read (they are put back).
    fn bell_bytes(queue: &EventQueue) -> usize {
        let mut buf = [0u8; 16];
        match (&queue.bell_rx).read(&mut buf) {
            Ok(n) => {
                (&queue.bell_tx).write_all(&buf[..n]).unwrap();
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("{e}"),
        }
    }

    fn push(queue: &EventQueue, events: Vec<Event>) {
        queue.push_batch(events).expect("queue open");
    }

    #[test]
    fn capacity_zero_is_refused() {
        let err = EventQueue::new(0).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn keeps_order_and_the_descriptor_is_readable_exactly_while_events_wait() {
        let queue = EventQueue::new(16).unwrap();
        assert_eq!(queue.fd(), queue.bell_rx.as_raw_fd());
        assert_eq!(bell_bytes(&queue), 0);
        assert_eq!(queue.pop(Some(Duration::ZERO)), None);
        assert_eq!(bell_bytes(&queue), 0);

        push(&queue, vec![expired(1), note(7, 2), expired(3)]);
        assert_eq!(bell_bytes(&queue), 1);
        push(&queue, vec![note(8, 4), expired(5)]);
        // Still one byte: only the empty → non-empty transition writes.
        assert_eq!(bell_bytes(&queue), 1);
        assert!(queue.lock().rung);

        for want in 1..=4 {
            assert_eq!(tag(&queue.pop(None).unwrap()), want);
            assert_eq!(bell_bytes(&queue), 1, "events still wait");
        }
        assert_eq!(tag(&queue.pop(None).unwrap()), 5);
        assert_eq!(bell_bytes(&queue), 0, "queue empty");
        assert!(!queue.lock().rung);

        push(&queue, (10..20).map(expired).collect());
        assert_eq!(bell_bytes(&queue), 1);
        let first: Vec<u64> = queue.pop_batch(4, None).iter().map(tag).collect();
        assert_eq!(first, [10, 11, 12, 13]);
        assert_eq!(bell_bytes(&queue), 1);
        let rest: Vec<u64> = queue.pop_batch(100, None).iter().map(tag).collect();
        assert_eq!(rest, (14..20).collect::<Vec<_>>());
        assert_eq!(bell_bytes(&queue), 0);
        assert!(queue.pop_batch(0, None).is_empty());

        let stats = queue.stats();
        assert_eq!((stats.queued, stats.delivered, stats.merged), (15, 15, 0));
    }

    #[test]
    fn the_descriptor_is_armed_by_asking_for_it_and_readable_at_once_if_events_wait() {
        let queue = EventQueue::new(16).unwrap();
        // Nobody has the descriptor: no byte is written (no system call).
        push(&queue, vec![expired(1), expired(2)]);
        assert_eq!(bell_bytes(&queue), 0);
        assert!(!queue.lock().rung);
        // Asked for while events wait: readable when `fd` returns.
        queue.fd();
        assert_eq!(bell_bytes(&queue), 1);
        assert_eq!(tag(&queue.pop(None).unwrap()), 1);
        assert_eq!(bell_bytes(&queue), 1, "an event still waits");
        assert_eq!(tag(&queue.pop(None).unwrap()), 2);
        assert_eq!(bell_bytes(&queue), 0, "queue empty");
        // From then on it follows the queue, also through batch pops.
        push(&queue, vec![expired(3)]);
        assert_eq!(bell_bytes(&queue), 1);
        assert_eq!(queue.pop_batch(8, None).len(), 1);
        assert_eq!(bell_bytes(&queue), 0);
    }

    #[test]
    fn a_consumer_spinning_before_it_sleeps_still_sees_every_event_and_times_out() {
        let queue = EventQueue::new(1024).unwrap();
        let start = Instant::now();
        assert_eq!(queue.pop(Some(Duration::from_millis(20))), None);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(queue.pop_batch(4, Some(Duration::ZERO)).is_empty());
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 1000 {
                    let batch = queue.pop_batch(64, Some(Duration::from_secs(5)));
                    assert!(!batch.is_empty(), "timed out");
                    got.extend(batch.iter().map(tag));
                }
                got
            })
        };
        for first in (0..1000).step_by(10) {
            push(&queue, (first..first + 10).map(expired).collect());
            if first % 100 == 0 {
                thread::sleep(Duration::from_micros(200));
            }
        }
        assert_eq!(consumer.join().unwrap(), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn does_not_merge_below_the_bound() {
        let queue = EventQueue::new(10).unwrap();
        push(&queue, (0..10).map(|i| note(1, i)).collect());
        assert_eq!(queue.len(), 10);
        assert_eq!(queue.stats().merged, 0);
        assert!(!queue.lock().indexed, "no index while the queue keeps up");
        // The eleventh arrives at the bound and merges into the tenth.
        push(&queue, vec![note(1, 10)]);
        let tags: Vec<u64> = snapshot(&queue).iter().map(tag).collect();
        assert_eq!(tags, [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]);
        assert_eq!(queue.stats().merged, 1);
    }

    #[test]
    fn coalesces_at_the_bound_keeping_the_last_state_of_each_subscription() {
        let capacity = 100;
        let queue = EventQueue::new(capacity).unwrap();
        push(&queue, (0..100).map(|i| expired(10_000 + i)).collect());
        assert_eq!(queue.len(), capacity);

        // 1,000 notifications for subscriptions 1, 2, 3 in turn; the i-th carries tag i.
        for chunk in (0..1000u64).collect::<Vec<_>>().chunks(10) {
            push(&queue, chunk.iter().map(|&i| note(i % 3 + 1, i)).collect());
            assert!(queue.len() <= capacity + 3, "length {}", queue.len());
        }
        let stats = queue.stats();
        // The first of each subscription had nothing to merge into: appended beyond the bound.
        assert_eq!(stats.overflowed, 3);
        assert_eq!(stats.merged, 997);
        assert_eq!(stats.queued, 103);
        assert_eq!(queue.len(), 103);

        let events = queue.pop_batch(usize::MAX, None);
        let expiries: Vec<u64> = events[..100].iter().map(tag).collect();
        assert_eq!(expiries, (10_000..10_100).collect::<Vec<_>>());
        // Positions of the first arrivals (subscriptions 1, 2, 3), states of the last ones.
        let last: Vec<(u64, u64)> = events[100..]
            .iter()
            .map(|e| (e.subscription().unwrap().0, tag(e)))
            .collect();
        assert_eq!(last, [(1, 999), (2, 997), (3, 998)]);
        assert_eq!(queue.stats().delivered, 103);
        assert!(
            !queue.lock().indexed,
            "index dropped once the queue drained"
        );
        assert!(queue.lock().waiting.is_empty());
    }

    #[test]
    fn merges_into_notifications_queued_before_the_queue_filled() {
        let queue = EventQueue::new(4).unwrap();
        push(&queue, vec![note(1, 1), note(2, 2), expired(3), expired(4)]);
        push(&queue, vec![note(1, 5), note(2, 6), note(1, 7)]);
        let tags: Vec<u64> = snapshot(&queue).iter().map(tag).collect();
        assert_eq!(tags, [7, 6, 3, 4]);
        assert_eq!(queue.stats().merged, 3);
        assert_eq!(queue.stats().overflowed, 0);
    }

    #[test]
    fn a_merged_change_only_notification_carries_the_full_state() {
        let queue = EventQueue::new(1).unwrap();
        let mut first = notification(1, 1);
        first.full_state = Some(doc(100));
        let mut second = notification(1, 2);
        second.full_state = Some(doc(200));
        push(&queue, vec![Event::Notification(first)]);
        push(&queue, vec![Event::Notification(second)]);
        let Some(Event::Notification(merged)) = queue.pop(None) else {
            panic!("a notification")
        };
        assert_eq!(merged.document, Some(doc(200)));
        assert_eq!(merged.full_state, Some(doc(200)));

        // A newer notification without a separate full state is taken as it is.
        let mut first = notification(1, 1);
        first.full_state = Some(doc(100));
        let mut second = notification(1, 3);
        second.state = SubscriptionState::Pending;
        second.document = None;
        push(&queue, vec![Event::Notification(first)]);
        push(&queue, vec![Event::Notification(second.clone())]);
        assert_eq!(queue.pop(None), Some(Event::Notification(second)));
    }

    #[test]
    fn does_not_merge_across_another_event_about_the_subscription() {
        let queue = EventQueue::new(2).unwrap();
        push(&queue, vec![note(1, 1), changed(1)]);
        push(&queue, vec![note(1, 2)]); // appended: a state change stands between
        push(&queue, vec![note(1, 3)]); // merges into the one after the state change
        assert_eq!(snapshot(&queue), vec![note(1, 1), changed(1), note(1, 3)]);
        let stats = queue.stats();
        assert_eq!((stats.merged, stats.overflowed), (1, 1));
    }

    #[test]
    fn keeps_unmergeable_events_beyond_the_bound() {
        let queue = EventQueue::new(4).unwrap();
        push(&queue, (0..4).map(|i| note(i, i)).collect());
        push(&queue, (100..150).map(expired).collect());
        push(&queue, vec![changed(1), note(9, 9)]);
        assert_eq!(queue.len(), 56);
        let stats = queue.stats();
        assert_eq!((stats.overflowed, stats.merged), (52, 0));
        let tags: Vec<u64> = queue.pop_batch(usize::MAX, None).iter().map(tag).collect();
        let mut want: Vec<u64> = (0..4).chain(100..150).collect();
        want.extend([1, 9]);
        assert_eq!(tags, want);
    }

    #[test]
    fn pop_gives_up_at_its_timeout() {
        let queue = EventQueue::new(4).unwrap();
        let start = Instant::now();
        assert_eq!(queue.pop(Some(Duration::from_millis(20))), None);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(queue
            .pop_batch(8, Some(Duration::from_millis(5)))
            .is_empty());
        assert_eq!(queue.lock().waiters, 0);
    }

    #[test]
    fn close_wakes_waiters_refuses_new_events_and_lets_the_rest_drain() {
        let queue = EventQueue::new(4).unwrap();
        let waiter = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop(None))
        };
        let batch_waiter = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop_batch(4, None))
        };
        // Let both block (if they do not get there first, they see the close at once).
        while queue.lock().waiters < 2 && !waiter.is_finished() {
            thread::yield_now();
        }
        queue.close();
        assert_eq!(waiter.join().unwrap(), None);
        assert!(batch_waiter.join().unwrap().is_empty());

        let queue = EventQueue::new(4).unwrap();
        queue.fd(); // arms the readiness descriptor checked below
        push(&queue, vec![expired(1), expired(2)]);
        queue.close();
        assert!(queue.is_closed());
        let refused = queue.push_batch(vec![expired(3), note(1, 4)]).unwrap_err();
        assert_eq!(
            refused,
            vec![expired(3), note(1, 4)],
            "given back untouched"
        );
        assert_eq!(queue.stats().refused, 2);
        assert_eq!(queue.len(), 2);
        assert_eq!(bell_bytes(&queue), 1);
        assert_eq!(queue.pop(None).map(|e| tag(&e)), Some(1));
        assert_eq!(queue.pop_batch(8, None).len(), 1);
        assert_eq!(queue.pop(None), None, "closed and empty: no wait");
        assert_eq!(bell_bytes(&queue), 0);
    }

    #[test]
    fn many_producers_one_consumer_deliver_every_event_exactly_once_in_order() {
        const PRODUCERS: u64 = 4;
        const EACH: u64 = 20_000;
        let queue = EventQueue::new(64).unwrap();
        queue.fd(); // arms the readiness descriptor checked below
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut seq = 0;
                    let mut size = 1;
                    while seq < EACH {
                        let end = (seq + size).min(EACH);
                        queue
                            .push_batch((seq..end).map(|s| changed(p << 32 | s)).collect())
                            .unwrap();
                        seq = end;
                        size = size % 37 + 1;
                    }
                })
            })
            .collect();
        let mut next = [0u64; PRODUCERS as usize];
        let mut seen = 0;
        while seen < PRODUCERS * EACH {
            let batch = queue.pop_batch(128, Some(Duration::from_secs(5)));
            assert!(!batch.is_empty(), "timed out after {seen} events");
            for event in batch {
                let id = event.subscription().unwrap().0;
                let (p, s) = ((id >> 32) as usize, id & 0xffff_ffff);
                assert_eq!(s, next[p], "producer {p}: out of order or duplicated");
                next[p] += 1;
                seen += 1;
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert_eq!(queue.pop(Some(Duration::ZERO)), None);
        let stats = queue.stats();
        assert_eq!(stats.queued, PRODUCERS * EACH);
        assert_eq!(stats.delivered, PRODUCERS * EACH);
        assert_eq!(stats.merged, 0);
        assert_eq!(bell_bytes(&queue), 0);
    }

    #[test]
    fn a_notification_storm_from_many_threads_ends_with_the_last_states() {
        const PRODUCERS: u64 = 4;
        const SUBS: u64 = 10;
        const EACH: u64 = 5_000;
        let queue = EventQueue::new(16).unwrap();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for chunk in (0..EACH).collect::<Vec<_>>().chunks(25) {
                        let batch = chunk.iter().map(|&i| note(p * SUBS + i % SUBS, i));
                        queue.push_batch(batch.collect()).unwrap();
                    }
                })
            })
            .collect();
        let mut last: HashMap<u64, u64> = HashMap::new();
        let mut check = |events: Vec<Event>| {
            for event in events {
                let (sub, tag) = (event.subscription().unwrap().0, tag(&event));
                if let Some(&before) = last.get(&sub) {
                    assert!(tag > before, "subscription {sub}: {tag} after {before}");
                }
                last.insert(sub, tag);
            }
        };
        while !producers.iter().all(|p| p.is_finished()) {
            check(queue.pop_batch(8, Some(Duration::from_millis(1))));
        }
        for producer in producers {
            producer.join().unwrap();
        }
        check(queue.pop_batch(usize::MAX, Some(Duration::ZERO)));
        for sub in 0..PRODUCERS * SUBS {
            assert_eq!(last[&sub], EACH - SUBS + sub % SUBS, "subscription {sub}");
        }
        let stats = queue.stats();
        assert_eq!(stats.queued + stats.merged, PRODUCERS * EACH);
        // Each batch of 25 is longer than the bound of 16: merging happened for sure.
        assert!(stats.merged > 0);
        assert_eq!(stats.delivered, stats.queued);
    }

    /// The queue against a plain list that merges by scanning backwards, over random pushes,
    /// pops and put-backs at small bounds (where the index is built and dropped often).
    #[test]
    fn agrees_with_a_naive_model() {
        fn model_push(model: &mut VecDeque<Event>, event: Event, capacity: usize) {
            if model.len() >= capacity {
                if let Event::Notification(newer) = &event {
                    for waiting in model.iter_mut().rev() {
                        if waiting.subscription() == Some(newer.subscription) {
                            if let Event::Notification(waiting) = waiting {
                                merge_into(waiting, newer.clone());
                                return;
                            }
                            break;
                        }
                    }
                }
            }
            model.push_back(event);
        }

        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut tags = 0;
        for capacity in [1, 2, 3, 8] {
            let queue = EventQueue::new(capacity).unwrap();
            queue.fd(); // arms the readiness descriptor checked below
            let mut model = VecDeque::new();
            for _ in 0..3_000 {
                match next(10) {
                    0..=4 => {
                        let batch: Vec<Event> = (0..1 + next(6))
                            .map(|_| {
                                tags += 1;
                                match next(8) {
                                    0 => expired(tags),
                                    1 => changed(next(5)),
                                    2 => {
                                        let mut n = notification(next(5), tags);
                                        n.full_state = Some(doc(tags + 1_000_000));
                                        Event::Notification(n)
                                    }
                                    _ => note(next(5), tags),
                                }
                            })
                            .collect();
                        for event in batch.iter().cloned() {
                            model_push(&mut model, event, capacity);
                        }
                        push(&queue, batch);
                    }
                    5..=6 => {
                        assert_eq!(queue.pop(Some(Duration::ZERO)), model.pop_front());
                    }
                    7..=8 => {
                        let max = 1 + next(4) as usize;
                        let got = queue.pop_batch(max, Some(Duration::ZERO));
                        let want: Vec<Event> = model.drain(..max.min(model.len())).collect();
                        assert_eq!(got, want);
                    }
                    _ => {
                        let taken = queue.pop_batch(1 + next(4) as usize, Some(Duration::ZERO));
                        let keep = next(taken.len() as u64 + 1) as usize;
                        let mut taken = taken.into_iter();
                        for event in taken.by_ref().take(keep) {
                            assert_eq!(Some(event), model.pop_front());
                        }
                        queue.requeue_front(taken);
                    }
                }
                assert_eq!(snapshot(&queue), Vec::from(model.clone()));
                assert_eq!(bell_bytes(&queue), usize::from(!model.is_empty()));
                let stats = queue.stats();
                assert_eq!(stats.queued - stats.delivered, model.len() as u64);
            }
        }
    }
}
