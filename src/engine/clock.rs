//! Time, injected: the engine reads a [`Clock`], so tests drive soft-state expiry and
//! notification throttling with a [`ManualClock`] instead of sleeping.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock in milliseconds since an arbitrary origin, and the wall-clock time that
/// goes with it.
///
/// Timers run on the monotonic time; what is kept in the store across a restart (when a
/// publication or a stored message expires) is in wall-clock Unix milliseconds, converted at
/// the boundary.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the clock's origin; never decreases.
    fn now_ms(&self) -> u64;

    /// Wall-clock time in milliseconds since the Unix epoch.
    fn unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// A clock that moves only when told to. Share it (`Arc`) between the test and the engine;
/// after [`ManualClock::advance`], call `Engine::sync` so every shard runs what became due.
///
/// Its wall-clock time is [`ManualClock::UNIX_ORIGIN_MS`] plus the time advanced, so a test
/// can stop an engine, advance the clock ("the process was down for an hour") and open a new
/// engine on the same store and clock.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// The wall-clock time of a manual clock at zero: 2027-01-15T08:00:00Z.
    pub const UNIX_ORIGIN_MS: u64 = 1_800_000_000_000;

    /// A manual clock at zero.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock::default())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn unix_ms(&self) -> u64 {
        ManualClock::UNIX_ORIGIN_MS + self.now_ms()
    }
}
