//! A shard's deadline queue: soft-state expiries and notification throttles.
//!
//! Entries are never removed early: when an object is refreshed or deleted its old entry
//! stays and is recognised as stale when it comes due (the owner compares deadlines), which
//! keeps refresh O(log n) without a search.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::id::SubscriptionId;

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
    /// The end of the wait for a transport's devices to take a message, by message id.
    Handover(u64),
}

/// Deadlines in clock milliseconds, earliest first (on a tie: publications, then
/// subscriptions, then throttles, then messages, then endpoints, each by key).
///
/// One heap per kind, so the many subscription entries are 16 bytes each rather than the
/// size of a [`Timer`] (which holds a `String`) plus the deadline.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    publications: BinaryHeap<Reverse<(u64, String)>>,
    /// The many: in chunks, so the heap does not keep the room of a doubled vector.
    subscriptions: ChunkedMinHeap<(u64, SubscriptionId)>,
    throttles: BinaryHeap<Reverse<(u64, SubscriptionId)>>,
    messages: BinaryHeap<Reverse<(u64, u64)>>,
    endpoints: BinaryHeap<Reverse<(u64, (String, String))>>,
    handovers: BinaryHeap<Reverse<(u64, u64)>>,
}

/// Which heap holds the earliest entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Publication,
    Subscription,
    Throttle,
    Message,
    Endpoint,
    Handover,
}

impl Timers {
    /// Schedules `timer` at `deadline_ms`.
    pub(crate) fn schedule(&mut self, deadline_ms: u64, timer: Timer) {
        match timer {
            Timer::Publication(etag) => self.publications.push(Reverse((deadline_ms, etag))),
            Timer::Subscription(id) => self.subscriptions.push((deadline_ms, id)),
            Timer::Throttle(id) => self.throttles.push(Reverse((deadline_ms, id))),
            Timer::Message(id) => self.messages.push(Reverse((deadline_ms, id))),
            Timer::Endpoint(user, endpoint) => self
                .endpoints
                .push(Reverse((deadline_ms, (user, endpoint)))),
            Timer::Handover(id) => self.handovers.push(Reverse((deadline_ms, id))),
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
            .map(|(d, _)| (*d, Kind::Subscription));
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
        let h = self
            .handovers
            .peek()
            .map(|Reverse((d, _))| (*d, Kind::Handover));
        [p, s, t, m, e, h].into_iter().flatten().min()
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
                .map(|(d, id)| (d, Timer::Subscription(id))),
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
            Kind::Handover => self
                .handovers
                .pop()
                .map(|Reverse((d, id))| (d, Timer::Handover(id))),
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
            + self.handovers.len()
    }
}

/// A binary min-heap whose entries live in fixed-size chunks instead of one vector: a
/// vector grows by doubling and keeps that room (a shard's expiry timers after a burst of
/// 5,000 subscriptions: room for 8,192, 26 bytes a subscription instead of 16); chunks
/// waste at most one. The first chunk grows like a vector, so a shard with a handful of
/// entries holds little.
#[derive(Debug)]
struct ChunkedMinHeap<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedMinHeap<T> {
    fn default() -> Self {
        ChunkedMinHeap {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// Entries in one chunk of [`ChunkedMinHeap`] (16 KiB of expiry timers).
const HEAP_CHUNK: usize = 1024;

impl<T: Ord> ChunkedMinHeap<T> {
    fn at(&self, i: usize) -> &T {
        &self.chunks[i / HEAP_CHUNK][i % HEAP_CHUNK]
    }

    fn swap(&mut self, i: usize, j: usize) {
        let (ci, oi, cj, oj) = (
            i / HEAP_CHUNK,
            i % HEAP_CHUNK,
            j / HEAP_CHUNK,
            j % HEAP_CHUNK,
        );
        if ci == cj {
            self.chunks[ci].swap(oi, oj);
        } else {
            let (lo, hi) = (ci.min(cj), ci.max(cj));
            let (left, right) = self.chunks.split_at_mut(hi);
            let (a, b) = (&mut left[lo], &mut right[0]);
            if ci < cj {
                std::mem::swap(&mut a[oi], &mut b[oj]);
            } else {
                std::mem::swap(&mut a[oj], &mut b[oi]);
            }
        }
    }

    fn push(&mut self, value: T) {
        let full = self.chunks.last().map_or(true, |c| c.len() == HEAP_CHUNK);
        if full {
            // Only the first chunk starts small; the others are made whole at once.
            let room = if self.chunks.is_empty() {
                4
            } else {
                HEAP_CHUNK
            };
            self.chunks.push(Vec::with_capacity(room));
        }
        let first_only = self.chunks.len() == 1;
        let last = self.chunks.last_mut().expect("a chunk with room");
        if first_only && last.len() == last.capacity() {
            last.reserve_exact((last.capacity() * 2).min(HEAP_CHUNK) - last.len());
        }
        last.push(value);
        self.len += 1;
        // Sift up.
        let mut i = self.len - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.at(i) >= self.at(parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn peek(&self) -> Option<&T> {
        (self.len > 0).then(|| self.at(0))
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.swap(0, self.len - 1);
        let last = self.chunks.last_mut().expect("a chunk");
        let top = last.pop().expect("the last entry");
        if last.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        // Sift down.
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.len && self.at(l) < self.at(least) {
                least = l;
            }
            if r < self.len && self.at(r) < self.at(least) {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
        Some(top)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunked_heap_pops_what_a_binary_heap_pops() {
        let mut ours = ChunkedMinHeap::default();
        let mut std_heap = BinaryHeap::new();
        let mut x: u64 = 0x9E37_79B9;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 != 0 || step < 5_000 {
                let v = (x % 4_000, step);
                ours.push(v);
                std_heap.push(Reverse(v));
            } else {
                assert_eq!(ours.pop(), std_heap.pop().map(|Reverse(v)| v));
            }
            assert_eq!(ours.len(), std_heap.len());
            assert_eq!(ours.peek(), std_heap.peek().map(|Reverse(v)| v));
        }
        while let Some(Reverse(v)) = std_heap.pop() {
            assert_eq!(ours.pop(), Some(v));
        }
        assert_eq!(ours.pop(), None);
        assert!(ours.chunks.is_empty());
    }

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
