//! A shard's deadline queue: soft-state expiries and notification throttles.
//!
//! Entries are never removed early: when an object is refreshed or deleted its old entry
//! stays and is recognised as stale when it comes due (the owner compares deadlines), which
//! keeps refresh O(log n) without a search.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::events::SubscriptionId;

/// What comes due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A publication's expiry, by entity tag.
    Publication(String),
    /// A subscription's expiry.
    Subscription(SubscriptionId),
    /// The end of a subscription's minimum notification interval.
    Throttle(SubscriptionId),
}

/// Deadlines in clock milliseconds, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, Timer)>>,
}

impl Timers {
    /// Schedules `timer` at `deadline_ms`.
    pub(crate) fn schedule(&mut self, deadline_ms: u64, timer: Timer) {
        self.heap.push(Reverse((deadline_ms, timer)));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Removes and returns the earliest entry if it is due at `now_ms`.
    pub(crate) fn pop_due(&mut self, now_ms: u64) -> Option<(u64, Timer)> {
        if self.next_deadline()? <= now_ms {
            self.heap.pop().map(|Reverse(entry)| entry)
        } else {
            None
        }
    }

    /// Entries scheduled (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_in_deadline_order() {
        let mut t = Timers::default();
        t.schedule(30, Timer::Subscription(SubscriptionId(3)));
        t.schedule(10, Timer::Publication("a".into()));
        t.schedule(20, Timer::Throttle(SubscriptionId(2)));
        assert_eq!(t.next_deadline(), Some(10));
        assert!(t.pop_due(5).is_none());
        assert_eq!(t.pop_due(25).map(|e| e.0), Some(10));
        assert_eq!(t.pop_due(25).map(|e| e.0), Some(20));
        assert!(t.pop_due(25).is_none());
        assert_eq!(t.len(), 1);
    }
}
