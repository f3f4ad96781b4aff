//! When the SIP stack's timer thread wakes. It sleeps until the earliest deadline any of the
//! stack's tables holds (transaction timers, refreshes, retries), all in the engine's clock
//! time; whoever schedules something earlier than that tells the alarm
//! ([`Alarm::at`]), which wakes the thread early. Nothing polls.
//!
//! With a manual clock (tests) no real time passes between deadlines: a test advances the
//! clock and calls [`Alarm::ring_and_wait`], which wakes the thread and returns once it has
//! run one full round of due work at the new time.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The timer thread's alarm: see the module documentation.
#[derive(Debug)]
pub(crate) struct Alarm {
    /// The clock time the thread sleeps until (`u64::MAX`: no deadline), read without the
    /// lock by [`Alarm::at`], so that scheduling something later costs one atomic load.
    sleeping_until: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Set by a wake-up, cleared by the thread when it starts a round.
    rung: bool,
    /// Rounds completed.
    rounds: u64,
    /// Whether the thread is in a round (not asleep in [`Alarm::sleep`]).
    busy: bool,
    stopped: bool,
}

impl Default for Alarm {
    fn default() -> Self {
        Alarm {
            sleeping_until: AtomicU64::new(u64::MAX),
            // The thread starts with a round.
            state: Mutex::new(State {
                busy: true,
                ..State::default()
            }),
            changed: Condvar::new(),
        }
    }
}

impl Alarm {
    /// Something is due at `deadline` (clock ms): wakes the thread if it sleeps past it.
    pub(crate) fn at(&self, deadline: u64) {
        if deadline < self.sleeping_until.load(Ordering::Acquire) {
            self.ring();
        }
    }

    /// Wakes the thread for a round now.
    pub(crate) fn ring(&self) {
        let mut state = self.lock();
        state.rung = true;
        self.changed.notify_all();
    }

    /// Wakes the thread and waits until it completed a round that started after this call
    /// (at most `limit` of real time; `false` when it did not, or the thread stopped).
    pub(crate) fn ring_and_wait(&self, limit: Duration) -> bool {
        let mut state = self.lock();
        // A round under way may have read the clock before the caller changed it: wait for
        // the one after it.
        let target = state.rounds + if state.busy { 2 } else { 1 };
        state.rung = true;
        self.changed.notify_all();
        let deadline = std::time::Instant::now() + limit;
        while state.rounds < target && !state.stopped {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        !state.stopped
    }

    /// For the timer thread, after a round at clock time `now`: counts the round, then
    /// sleeps until `next` (clock ms; `None`: until rung) or a ring. Whether to go on
    /// (`false` once stopped).
    pub(crate) fn sleep(&self, now: u64, next: Option<u64>) -> bool {
        let mut state = self.lock();
        state.rounds += 1;
        state.busy = false;
        self.changed.notify_all();
        self.sleeping_until
            .store(next.unwrap_or(u64::MAX), Ordering::Release);
        while !state.rung && !state.stopped {
            match next {
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now).max(1));
                    let (s, timeout) = self
                        .changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = s;
                    if timeout.timed_out() {
                        break;
                    }
                }
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        state.rung = false;
        state.busy = true;
        // Anything scheduled from now on may need this round: the next `at` rings.
        self.sleeping_until.store(0, Ordering::Release);
        !state.stopped
    }

    /// Stops the thread (and releases every waiter).
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_ring_wakes_a_thread_sleeping_without_deadline_and_rounds_are_counted() {
        let alarm = Arc::new(Alarm::default());
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (alarm, rounds) = (alarm.clone(), rounds.clone());
            std::thread::spawn(move || loop {
                rounds.fetch_add(1, Ordering::SeqCst);
                if !alarm.sleep(0, None) {
                    break;
                }
            })
        };
        assert!(alarm.ring_and_wait(Duration::from_secs(10)));
        let seen = rounds.load(Ordering::SeqCst);
        assert!(seen >= 2, "{seen}");
        assert!(alarm.ring_and_wait(Duration::from_secs(10)));
        assert!(rounds.load(Ordering::SeqCst) > seen);
        alarm.stop();
        thread.join().unwrap();
        assert!(!alarm.ring_and_wait(Duration::from_secs(1)));
    }

    #[test]
    fn scheduling_later_than_the_sleep_does_not_ring() {
        let alarm = Alarm::default();
        alarm.sleeping_until.store(1_000, Ordering::Release);
        alarm.at(5_000);
        assert!(!alarm.lock().rung);
        alarm.at(999);
        assert!(alarm.lock().rung);
    }
}
