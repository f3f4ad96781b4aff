//! The dispatcher thread (DESIGN §3): one thread that takes events from the
//! [`EventQueue`] in batches and calls the application's callback for each, in order. One
//! thread, so callbacks are serialized; no lock is held while the callback runs, so the
//! callback may call anything, including [`Dispatcher::set_callback`].
//!
//! # Callback or polling
//!
//! Without a callback (the initial state) the thread does not consume: the application polls
//! the queue. [`Dispatcher::set_callback`] with `Some` switches to callback mode, with `None`
//! back to polling. The queue arbitrates (see `super::queue`, "Consumers"): in callback mode
//! pops return `None` at once; when switching back, the thread puts the events it took but
//! did not deliver back at the front of the queue before giving it up, and pollers wait for
//! that handover, so no event is lost, duplicated or reordered by a switch. (An application
//! that polls on one thread while it switches on another may of course see events of the
//! same moment in both places.)
//!
//! # Lifetimes of callbacks
//!
//! A switch takes effect at the next event boundary the thread reaches: called from inside the
//! callback, exactly after the current event; from another thread, the callback may still be
//! running, or start once more on the event in hand, when `set_callback` returns (it does not
//! wait: waiting there is how applications deadlock on their own locks). A replaced callback
//! is dropped on the dispatcher thread after its last call has returned, also when it was
//! replaced before it was ever called, so a C `free_user_data` runs exactly once, on the
//! dispatcher thread, after the last call. [`Dispatcher::stop`] joins the thread: once it
//! returns, no callback runs and every callback has been dropped.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use super::events::Event;
use super::queue::{Consumer, EventQueue, Take};
use crate::error::{Error, Result};
use crate::log;

/// The application's event callback, run on the dispatcher thread.
pub(crate) type Callback = super::EventCallback;

/// How many events the thread takes from the queue under one lock.
const BATCH: usize = 256;

thread_local! {
    static IN_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a dispatcher thread (of any engine), i.e. the caller is
/// inside an event callback or something it called. The engine refuses `shutdown` there with
/// [`Error::InCallback`]: joining the dispatcher from itself cannot work.
pub(crate) fn in_dispatcher_thread() -> bool {
    IN_DISPATCHER.with(Cell::get)
}

/// The dispatcher thread and its controls. Dropping it stops it (see [`Dispatcher::stop`]).
pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    /// Taken by the first `stop`; held while joining so a second `stop` waits too.
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

struct Shared {
    queue: Arc<EventQueue>,
    control: Mutex<Control>,
    /// Signalled on every change of `control`.
    changed: Condvar,
    /// Bumped on every change of `control`; the thread reads it after each callback to find
    /// out, without a lock, whether it must stop delivering the batch in hand.
    generation: AtomicU64,
    panics: AtomicU64,
}

#[derive(Default)]
struct Control {
    /// Callbacks set and not yet picked up by the thread, oldest first (each replaces the one
    /// before it; the thread drops the replaced ones).
    changes: Vec<Option<Callback>>,
    /// Whether the latest change set a callback.
    has_callback: bool,
    stopping: bool,
}

impl Dispatcher {
    /// Starts the dispatcher thread over `queue`, in polling mode (no callback). Fails only
    /// when the thread cannot be spawned.
    pub(crate) fn new(queue: Arc<EventQueue>) -> io::Result<Dispatcher> {
        let shared = Arc::new(Shared {
            queue,
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        });
        let thread = thread::Builder::new().name("impp-dispatch".into()).spawn({
            let shared = Arc::clone(&shared);
            move || run(&shared)
        })?;
        Ok(Dispatcher {
            shared,
            thread_id: thread.thread().id(),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Sets the callback (`Some`: callback mode) or removes it (`None`: back to polling). See
    /// the module documentation for when the switch takes effect and when the replaced
    /// callback is dropped. Allowed from inside a callback. After [`stop`](Self::stop):
    /// [`Error::Shutdown`], and `callback` is dropped at once on the calling thread (still
    /// exactly once).
    pub(crate) fn set_callback(&self, callback: Option<Callback>) -> Result<()> {
        let mut control = lock(&self.shared.control);
        if control.stopping {
            drop(control);
            drop(callback);
            return Err(Error::Shutdown(
                "the event dispatcher is stopped; no callback can be set".into(),
            ));
        }
        control.has_callback = callback.is_some();
        // Under the control lock, so the queue sees the changes in the order they are made.
        self.shared.queue.set_consumer(if control.has_callback {
            Consumer::Dispatcher
        } else {
            Consumer::Application
        });
        control.changes.push(callback);
        self.shared.generation.fetch_add(1, Ordering::Release);
        drop(control);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Whether a callback is set (callback mode) as of the latest `set_callback`.
    #[cfg(test)]
    pub(crate) fn has_callback(&self) -> bool {
        lock(&self.shared.control).has_callback
    }

    /// How many times the callback panicked (each panic was caught and the dispatcher went on
    /// with the next event).
    pub(crate) fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Stops the thread and joins it: waits for a running callback to return, puts events it
    /// took but did not deliver back in the queue (they stay there, in order, for the engine
    /// to drain or fail), drops the callbacks on the dispatcher thread and hands the queue
    /// back to polling. Once it returns, no callback runs, ever. Idempotent; a second caller
    /// waits for the first one's join.
    ///
    /// From the dispatcher thread itself (inside a callback) it would wait for itself: it
    /// returns [`Error::InCallback`] and changes nothing.
    ///
    /// It takes `&self`, not `self`: a consuming `stop` would have to hand the dispatcher back
    /// inside its error for "changes nothing" to hold.
    pub(crate) fn stop(&self) -> Result<()> {
        if thread::current().id() == self.thread_id {
            return Err(Error::InCallback(
                "stopping the event dispatcher from its own thread (inside an event callback)"
                    .into(),
            ));
        }
        let mut thread = lock(&self.thread);
        self.request_stop();
        if let Some(thread) = thread.take() {
            // The thread catches every panic of application code; a failed join would be
            // a bug of ours, and there is nothing left to clean up after it.
            let _ = thread.join();
        }
        Ok(())
    }

    fn request_stop(&self) {
        let mut control = lock(&self.shared.control);
        if !control.stopping {
            control.stopping = true;
            control.has_callback = false;
            self.shared.queue.set_consumer(Consumer::Application);
            self.shared.generation.fetch_add(1, Ordering::Release);
        }
        drop(control);
        self.shared.changed.notify_one();
    }
}

impl Drop for Dispatcher {
    /// Stops and joins the thread; dropped on the dispatcher thread itself (the last owner
    /// went away inside a callback), it asks the thread to stop after the current callback
    /// and lets it finish on its own.
    fn drop(&mut self) {
        if self.stop().is_err() {
            self.request_stop();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Application code never runs under these locks; if a panic ever poisoned one, the data
    // is still whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The dispatcher thread.
fn run(shared: &Shared) {
    IN_DISPATCHER.with(|flag| flag.set(true));
    let queue = &shared.queue;
    let mut current: Option<Callback> = None;
    let mut claimed = false;
    // The queue is closed and empty: nothing to do until the controls change.
    let mut drained = false;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let (changes, stopping, seen) = {
            let mut control = lock(&shared.control);
            while control.changes.is_empty() && !control.stopping && (current.is_none() || drained)
            {
                control = shared
                    .changed
                    .wait(control)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let seen = shared.generation.load(Ordering::Acquire);
            (mem::take(&mut control.changes), control.stopping, seen)
        };
        // Replaced callbacks are dropped here: after their last call, outside every lock.
        if !changes.is_empty() {
            drained = false;
        }
        for change in changes {
            discard(shared, mem::replace(&mut current, change));
        }
        let Some(callback) = current.as_mut().filter(|_| !stopping) else {
            if claimed {
                queue.release();
                claimed = false;
            }
            if stopping {
                break;
            }
            continue;
        };
        if !claimed {
            queue.claim();
            claimed = true;
        }
        match queue.take_claimed(&mut batch, BATCH) {
            Take::Interrupted => {}
            Take::Closed => drained = true,
            Take::Events => deliver(shared, callback, &mut batch, seen),
        }
    }
    discard(shared, current.take());
}

/// Calls the callback for each event of the batch, in order; stops early when the controls
/// changed (a new callback, polling, stop) and puts the rest back at the front of the queue.
fn deliver(shared: &Shared, callback: &mut Callback, batch: &mut Vec<Event>, seen: u64) {
    let mut rest = None;
    for (i, event) in batch.iter().enumerate() {
        if panic::catch_unwind(AssertUnwindSafe(|| callback(event))).is_err() {
            let count = shared.panics.fetch_add(1, Ordering::Relaxed) + 1;
            log::error!(
                "the event callback panicked ({count} so far); going on with the next event"
            );
        }
        if shared.generation.load(Ordering::Acquire) != seen {
            rest = Some(i + 1);
            break;
        }
    }
    if let Some(rest) = rest {
        shared.queue.requeue_front(batch.drain(rest..));
    }
    batch.clear();
}

/// Drops a callback on this thread, containing a panic of its destructor.
fn discard(shared: &Shared, callback: Option<Callback>) {
    if let Some(callback) = callback {
        if panic::catch_unwind(AssertUnwindSafe(move || drop(callback))).is_err() {
            shared.panics.fetch_add(1, Ordering::Relaxed);
            log::error!("dropping a replaced event callback panicked; going on");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::sync::{OnceLock, Weak};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::package::Package;
    use crate::uri::Uri;

    const WAIT: Duration = Duration::from_secs(5);

    fn event(tag: u64) -> Event {
        static URI: OnceLock<Arc<Uri>> = OnceLock::new();
        let uri = URI.get_or_init(|| Arc::new(Uri::parse("sip:bob@example.test").unwrap()));
        Event::PublicationExpired {
            presentity: Arc::clone(uri),
            package: Package::Presence,
            etag: tag.to_string(),
        }
    }

    fn tag(event: &Event) -> u64 {
        match event {
            Event::PublicationExpired { etag, .. } => etag.parse().unwrap(),
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn events(tags: std::ops::Range<u64>) -> Vec<Event> {
        tags.map(event).collect()
    }

    /// What the callbacks of a test saw, in the order it happened.
    #[derive(Debug, PartialEq)]
    enum Seen {
        /// Callback `name` got the event with this tag.
        Call(&'static str, u64),
        /// Callback `name` was dropped; on a dispatcher thread or not.
        Dropped(&'static str, bool),
    }

    /// Reports its callback's drop, and where it happened.
    struct DropGuard(&'static str, Sender<Seen>);

    impl Drop for DropGuard {
        fn drop(&mut self) {
            let _ = self.1.send(Seen::Dropped(self.0, in_dispatcher_thread()));
        }
    }

    /// A callback that reports each call and its drop.
    fn recorder(name: &'static str, seen: &Sender<Seen>) -> Callback {
        let guard = DropGuard(name, seen.clone());
        Box::new(move |e| {
            assert!(in_dispatcher_thread());
            guard.1.send(Seen::Call(name, tag(e))).unwrap();
        })
    }

    fn next(seen: &Receiver<Seen>) -> Seen {
        seen.recv_timeout(WAIT).expect("the dispatcher went quiet")
    }

    fn setup(capacity: usize) -> (Arc<EventQueue>, Arc<Dispatcher>) {
        let queue = EventQueue::new(capacity).unwrap();
        let dispatcher = Arc::new(Dispatcher::new(Arc::clone(&queue)).unwrap());
        (queue, dispatcher)
    }

    fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::yield_now();
        }
    }

    #[test]
    fn callback_mode_delivers_in_order_on_the_dispatcher_thread() {
        let (queue, dispatcher) = setup(1024);
        let (tx, seen) = mpsc::channel();
        assert!(!in_dispatcher_thread());
        dispatcher.set_callback(Some(recorder("a", &tx))).unwrap();
        assert!(dispatcher.has_callback());
        // Pollers get nothing while the dispatcher consumes, and do not wait for it.
        let start = Instant::now();
        assert_eq!(queue.pop(Some(WAIT)), None);
        assert!(queue.pop_batch(8, Some(WAIT)).is_empty());
        assert!(start.elapsed() < WAIT / 2);

        for first in (0..5_000).step_by(50) {
            queue.push_batch(events(first..first + 50)).unwrap();
        }
        for want in 0..5_000 {
            assert_eq!(next(&seen), Seen::Call("a", want));
        }
        dispatcher.stop().unwrap();
        assert_eq!(next(&seen), Seen::Dropped("a", true));
        assert!(seen.try_recv().is_err());
        assert_eq!(queue.stats().delivered, 5_000);
    }

    #[test]
    fn polling_mode_does_not_consume_and_switching_back_loses_nothing() {
        let (queue, dispatcher) = setup(1024);
        assert!(!dispatcher.has_callback());
        queue.push_batch(events(0..10)).unwrap();
        let polled: Vec<u64> = queue.pop_batch(100, Some(WAIT)).iter().map(tag).collect();
        assert_eq!(polled, (0..10).collect::<Vec<_>>());

        // The callback goes back to polling from inside itself at event 104, in the middle
        // of the batch the thread took: the rest goes back to the queue, in order.
        let (tx, seen) = mpsc::channel();
        let weak = Arc::downgrade(&dispatcher);
        let record = recorder("a", &tx);
        let mut record = Some(record);
        dispatcher
            .set_callback(Some(Box::new(move |e| {
                if let Some(record) = record.as_mut() {
                    record(e);
                }
                if tag(e) == 104 {
                    let dispatcher = weak.upgrade().unwrap();
                    dispatcher.set_callback(None).unwrap();
                    assert!(!dispatcher.has_callback());
                }
            })))
            .unwrap();
        queue.push_batch(events(100..200)).unwrap();
        for want in 100..=104 {
            assert_eq!(next(&seen), Seen::Call("a", want));
        }
        assert_eq!(next(&seen), Seen::Dropped("a", true));
        let mut polled = Vec::new();
        while polled.len() < 95 {
            let event = queue
                .pop(Some(WAIT))
                .expect("the rest comes back to polling");
            polled.push(tag(&event));
        }
        assert_eq!(polled, (105..200).collect::<Vec<_>>());
        assert!(seen.try_recv().is_err(), "no call after the switch");
        let stats = queue.stats();
        assert_eq!((stats.queued, stats.delivered), (110, 110));
        dispatcher.stop().unwrap();
    }

    #[test]
    fn a_poller_waits_for_the_handover_when_switched_back_from_another_thread() {
        let (queue, dispatcher) = setup(1024);
        let (tx, seen) = mpsc::channel();
        let (open, gate) = mpsc::channel::<()>();
        let record = recorder("a", &tx);
        let mut record = Some(record);
        dispatcher
            .set_callback(Some(Box::new(move |e| {
                if let Some(record) = record.as_mut() {
                    record(e);
                }
                // Hold the first event until the test switched back to polling.
                if tag(e) == 0 {
                    gate.recv_timeout(WAIT).unwrap();
                }
            })))
            .unwrap();
        queue.push_batch(events(0..50)).unwrap();
        assert_eq!(next(&seen), Seen::Call("a", 0));
        dispatcher.set_callback(None).unwrap();
        let poller = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop_batch(100, Some(WAIT)))
        };
        open.send(()).unwrap();
        // The event in hand was the last the callback got; the poller gets all the rest.
        let polled: Vec<u64> = poller.join().unwrap().iter().map(tag).collect();
        assert_eq!(polled, (1..50).collect::<Vec<_>>());
        assert_eq!(next(&seen), Seen::Dropped("a", true));
        dispatcher.stop().unwrap();
    }

    #[test]
    fn set_callback_from_inside_a_callback_switches_after_the_current_event() {
        let (queue, dispatcher) = setup(1024);
        let (tx, seen) = mpsc::channel();
        let weak: Weak<Dispatcher> = Arc::downgrade(&dispatcher);
        let mut a = recorder("a", &tx);
        let b = Mutex::new(Some(recorder("b", &tx)));
        dispatcher
            .set_callback(Some(Box::new(move |e| {
                a(e);
                if tag(e) == 3 {
                    let b = b.lock().unwrap().take();
                    weak.upgrade().unwrap().set_callback(b).unwrap();
                }
            })))
            .unwrap();
        queue.push_batch(events(0..10)).unwrap();
        for want in 0..=3 {
            assert_eq!(next(&seen), Seen::Call("a", want));
        }
        // The replaced callback is dropped on the dispatcher thread before the next call.
        assert_eq!(next(&seen), Seen::Dropped("a", true));
        for want in 4..10 {
            assert_eq!(next(&seen), Seen::Call("b", want));
        }
        dispatcher.stop().unwrap();
        assert_eq!(next(&seen), Seen::Dropped("b", true));
        assert!(seen.try_recv().is_err(), "each dropped exactly once");
    }

    #[test]
    fn callbacks_replaced_before_any_call_are_dropped_once_on_the_dispatcher_thread() {
        let (_queue, dispatcher) = setup(16);
        let (tx, seen) = mpsc::channel();
        dispatcher.set_callback(Some(recorder("a", &tx))).unwrap();
        dispatcher.set_callback(Some(recorder("b", &tx))).unwrap();
        dispatcher.set_callback(None).unwrap();
        dispatcher.set_callback(Some(recorder("c", &tx))).unwrap();
        dispatcher.stop().unwrap();
        let mut dropped: Vec<Seen> = seen.try_iter().collect();
        dropped.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            dropped,
            [
                Seen::Dropped("a", true),
                Seen::Dropped("b", true),
                Seen::Dropped("c", true)
            ]
        );
        // After stop: refused, and the callback is dropped at once, here.
        let err = dispatcher.set_callback(Some(recorder("d", &tx)));
        assert!(matches!(err, Err(Error::Shutdown(_))), "{err:?}");
        assert_eq!(seen.try_recv().unwrap(), Seen::Dropped("d", false));
    }

    #[test]
    fn stop_with_events_queued_runs_no_callback_after_it_returns() {
        let (queue, dispatcher) = setup(1024);
        let stopped = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let (started_tx, started) = mpsc::channel();
        let (open, gate) = mpsc::channel::<()>();
        dispatcher
            .set_callback(Some(Box::new({
                let (stopped, late, calls) = (stopped.clone(), late.clone(), calls.clone());
                move |e| {
                    if stopped.load(Ordering::SeqCst) {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                    if tag(e) == 0 {
                        started_tx.send(()).unwrap();
                        gate.recv_timeout(WAIT).unwrap();
                    }
                }
            })))
            .unwrap();
        queue.push_batch(events(0..1000)).unwrap();
        started.recv_timeout(WAIT).unwrap();

        let stopper = {
            let (dispatcher, stopped) = (Arc::clone(&dispatcher), Arc::clone(&stopped));
            thread::spawn(move || {
                dispatcher.stop().unwrap();
                stopped.store(true, Ordering::SeqCst);
            })
        };
        // Let the callback return only once the stop is under way.
        eventually("the stop request", || {
            lock(&dispatcher.shared.control).stopping
        });
        open.send(()).unwrap();
        stopper.join().unwrap();

        assert_eq!(late.load(Ordering::SeqCst), 0);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "stopped after the event in hand"
        );
        // What was not delivered is still queued, in order, and polling works again.
        assert_eq!(queue.len(), 999);
        let rest: Vec<u64> = queue.pop_batch(2000, Some(WAIT)).iter().map(tag).collect();
        assert_eq!(rest, (1..1000).collect::<Vec<_>>());
        assert!(dispatcher.stop().is_ok(), "idempotent");
    }

    #[test]
    fn stop_from_inside_the_callback_is_refused_and_changes_nothing() {
        let (queue, dispatcher) = setup(16);
        let (tx, seen) = mpsc::channel();
        let weak = Arc::downgrade(&dispatcher);
        let mut record = recorder("a", &tx);
        let (result_tx, result) = mpsc::channel();
        dispatcher
            .set_callback(Some(Box::new(move |e| {
                record(e);
                if tag(e) == 0 {
                    result_tx.send(weak.upgrade().unwrap().stop()).unwrap();
                }
            })))
            .unwrap();
        queue.push_batch(vec![event(0)]).unwrap();
        let refused = result.recv_timeout(WAIT).unwrap();
        assert!(matches!(refused, Err(Error::InCallback(_))), "{refused:?}");
        assert_eq!(next(&seen), Seen::Call("a", 0));
        // Still running.
        queue.push_batch(vec![event(1)]).unwrap();
        assert_eq!(next(&seen), Seen::Call("a", 1));
        dispatcher.stop().unwrap();
        assert_eq!(next(&seen), Seen::Dropped("a", true));
    }

    #[test]
    fn dropping_the_last_handle_inside_the_callback_stops_without_deadlock() {
        let (queue, dispatcher) = setup(16);
        let (tx, seen) = mpsc::channel();
        let slot: Arc<Mutex<Option<Arc<Dispatcher>>>> = Arc::default();
        let mut record = recorder("a", &tx);
        dispatcher
            .set_callback(Some(Box::new({
                let slot = Arc::clone(&slot);
                move |e| {
                    record(e);
                    drop(slot.lock().unwrap().take());
                }
            })))
            .unwrap();
        *slot.lock().unwrap() = Some(dispatcher);
        queue.push_batch(vec![event(0), event(1)]).unwrap();
        assert_eq!(next(&seen), Seen::Call("a", 0));
        // The thread ends on its own after the callback returns, dropping the callback.
        assert_eq!(next(&seen), Seen::Dropped("a", true));
        assert_eq!(queue.pop(Some(WAIT)).map(|e| tag(&e)), Some(1));
    }

    #[test]
    fn a_panicking_callback_does_not_stop_delivery() {
        let (queue, dispatcher) = setup(16);
        let (tx, seen) = mpsc::channel();
        let mut record = recorder("a", &tx);
        dispatcher
            .set_callback(Some(Box::new(move |e| {
                if tag(e) == 2 {
                    panic!("a bug in the application's callback");
                }
                record(e);
            })))
            .unwrap();
        queue.push_batch(events(0..5)).unwrap();
        for want in [0, 1, 3, 4] {
            assert_eq!(next(&seen), Seen::Call("a", want));
        }
        assert_eq!(dispatcher.panics(), 1);
        dispatcher.stop().unwrap();
        assert_eq!(next(&seen), Seen::Dropped("a", true));
    }
}
