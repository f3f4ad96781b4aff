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
    /// A stored message's expiry, by message id.
    Message(u64),
    /// An endpoint login's expiry: (user key, endpoint id).
    Endpoint(String, String),
}

/// Deadlines in clock milliseconds, earliest first (on a tie: publications, then
/// subscriptions, then throttles, then messages, then endpoints, each by key).
///
/// One heap per kind, so the many subscription entries are 16 bytes each rather than the
/// size of a [`Timer`] (which holds a `String`) plus the deadline.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    publications: BinaryHeap<Reverse<(u64, String)>>,
    subscriptions: BinaryHeap<Reverse<(u64, SubscriptionId)>>,
    throttles: BinaryHeap<Reverse<(u64, SubscriptionId)>>,
    messages: BinaryHeap<Reverse<(u64, u64)>>,
    endpoints: BinaryHeap<Reverse<(u64, (String, String))>>,
}

/// Which heap holds the earliest entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Publication,
    Subscription,
    Throttle,
    Message,
    Endpoint,
}

impl Timers {
    /// Schedules `timer` at `deadline_ms`.
    pub(crate) fn schedule(&mut self, deadline_ms: u64, timer: Timer) {
        match timer {
            Timer::Publication(etag) => self.publications.push(Reverse((deadline_ms, etag))),
            Timer::Subscription(id) => self.subscriptions.push(Reverse((deadline_ms, id))),
            Timer::Throttle(id) => self.throttles.push(Reverse((deadline_ms, id))),
            Timer::Message(id) => self.messages.push(Reverse((deadline_ms, id))),
            Timer::Endpoint(user, endpoint) => self
                .endpoints
                .push(Reverse((deadline_ms, (user, endpoint)))),
        }
    }

    /// The earliest entry's deadline and heap.
    fn earliest(&self) -> Option<(u64, Kind)> {
        let p = self
            .publications
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Publication));
        let s = self
            .subscriptions
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Subscription));
        let t = self
            .throttles
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Throttle));
        let m = self
            .messages
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Message));
        let e = self
            .endpoints
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Endpoint));
        [p, s, t, m, e].into_iter().flatten().min()
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.earliest().map(|(d, _)| d)
    }

    /// Removes and returns the earliest entry if it is due at `now_ms`.
    pub(crate) fn pop_due(&mut self, now_ms: u64) -> Option<(u64, Timer)> {
        let (deadline, kind) = self.earliest()?;
        if deadline > now_ms {
            return None;
        }
        match kind {
            Kind::Publication => self
                .publications
                .pop()
                .map(|Reverse((d, etag))| (d, Timer::Publication(etag))),
            Kind::Subscription => self
                .subscriptions
                .pop()
                .map(|Reverse((d, id))| (d, Timer::Subscription(id))),
            Kind::Throttle => self
                .throttles
                .pop()
                .map(|Reverse((d, id))| (d, Timer::Throttle(id))),
            Kind::Message => self
                .messages
                .pop()
                .map(|Reverse((d, id))| (d, Timer::Message(id))),
            Kind::Endpoint => self
                .endpoints
                .pop()
                .map(|Reverse((d, (user, endpoint)))| (d, Timer::Endpoint(user, endpoint))),
        }
    }

    /// Entries scheduled (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.publications.len()
            + self.subscriptions.len()
            + self.throttles.len()
            + self.messages.len()
            + self.endpoints.len()
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

    #[test]
    fn ties_in_kind_then_key_order() {
        let mut t = Timers::default();
        t.schedule(10, Timer::Throttle(SubscriptionId(1)));
        t.schedule(10, Timer::Subscription(SubscriptionId(9)));
        t.schedule(10, Timer::Subscription(SubscriptionId(4)));
        t.schedule(10, Timer::Publication("b".into()));
        t.schedule(10, Timer::Publication("a".into()));
        let order: Vec<Timer> = std::iter::from_fn(|| t.pop_due(10).map(|e| e.1)).collect();
        assert_eq!(
            order,
            vec![
                Timer::Publication("a".into()),
                Timer::Publication("b".into()),
                Timer::Subscription(SubscriptionId(4)),
                Timer::Subscription(SubscriptionId(9)),
                Timer::Throttle(SubscriptionId(1)),
            ]
        );
    }
}
