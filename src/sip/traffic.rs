//! What went over the wire, counted by the stack as it happens: final answers sent by method
//! and class, requests this server sent by method, and how those ended. Read with
//! [`SipServer::traffic_stats`] (imppd exports them at `/metrics`).
//!
//! Cheap on purpose: one relaxed atomic add per answer and per request, indexed by a short
//! match on the method name; nothing is allocated and no lock is taken. The stack's client
//! transactions do not keep their method, so outcomes are by class only (most requests the
//! server sends are NOTIFYs; [`TrafficStats::sent`] says how many of which).
//!
//! [`SipServer::traffic_stats`]: super::SipServer::traffic_stats

use std::sync::atomic::{AtomicU64, Ordering};

/// The methods counted apart; anything else counts as the last, `other`.
pub const METHODS: [&str; 14] = [
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "OPTIONS",
    "INVITE",
    "BYE",
    "CANCEL",
    "INFO",
    "REFER",
    "UPDATE",
    "PRACK",
    "other",
];

/// Final answer classes: `2xx` to `6xx`.
pub const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "6xx"];

/// A snapshot of the counts since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Final answers this server sent (or passed on as a proxy), by the request's method
    /// (index into [`METHODS`]) and class (index into [`CLASSES`]).
    pub answered: [[u64; CLASSES.len()]; METHODS.len()],
    /// Requests this server sent in client transactions (NOTIFYs, back-end SUBSCRIBEs,
    /// registrations of accounts, forwarded requests), by method.
    pub sent: [u64; METHODS.len()],
    /// How those ended: final answers by class (a request that could not be sent counts as
    /// the `503` RFC 3261 §8.1.3.1 makes of it).
    pub sent_answered: [u64; CLASSES.len()],
    /// Those that had no final answer in time (timer F or E ran out).
    pub sent_timed_out: u64,
}

/// The live counters behind [`TrafficStats`].
#[derive(Debug, Default)]
pub(crate) struct TrafficCounters {
    answered: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    sent: [AtomicU64; METHODS.len()],
    sent_answered: [AtomicU64; CLASSES.len()],
    sent_timed_out: AtomicU64,
}

/// The index of `method` in [`METHODS`].
fn method_index(method: &str) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The index of a final `status` in [`CLASSES`]; `None` for a provisional or invalid one.
fn class_index(status: u16) -> Option<usize> {
    matches!(status, 200..=699).then(|| usize::from(status / 100 - 2))
}

impl TrafficCounters {
    /// A final answer `status` to a `method` request went out.
    pub(crate) fn answered(&self, method: &str, status: u16) {
        if let Some(class) = class_index(status) {
            self.answered[method_index(method)][class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request went out in a client transaction; `request` is its bytes (the method is
    /// the start line's first word).
    pub(crate) fn sent(&self, request: &[u8]) {
        let end = request.iter().position(|b| *b == b' ').unwrap_or(0);
        let method = std::str::from_utf8(&request[..end]).unwrap_or("");
        self.sent[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// A request this server sent ended with a final `status`.
    pub(crate) fn outcome(&self, status: u16) {
        if let Some(class) = class_index(status) {
            self.sent_answered[class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request this server sent had no answer in time.
    pub(crate) fn timed_out(&self) {
        self.sent_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> TrafficStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TrafficStats {
            answered: std::array::from_fn(|m| std::array::from_fn(|c| load(&self.answered[m][c]))),
            sent: std::array::from_fn(|m| load(&self.sent[m])),
            sent_answered: std::array::from_fn(|c| load(&self.sent_answered[c])),
            sent_timed_out: load(&self.sent_timed_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_classes_are_counted_apart() {
        let c = TrafficCounters::default();
        c.answered("REGISTER", 200);
        c.answered("REGISTER", 401);
        c.answered("FOO", 699);
        c.answered("NOTIFY", 100); // provisional: not counted
        c.answered("NOTIFY", 700); // invalid: not counted
        c.sent(b"NOTIFY sip:a@b SIP/2.0\r\n");
        c.sent(b"garbage");
        c.outcome(481);
        c.outcome(180);
        c.timed_out();
        let s = c.stats();
        assert_eq!(s.answered[0], [1, 0, 1, 0, 0]);
        assert_eq!(s.answered[METHODS.len() - 1], [0, 0, 0, 0, 1]);
        assert_eq!(s.answered[2], [0; 5]);
        assert_eq!(s.sent[2], 1);
        assert_eq!(s.sent[METHODS.len() - 1], 1);
        assert_eq!(s.sent_answered, [0, 0, 1, 0, 0]);
        assert_eq!(s.sent_timed_out, 1);
    }
}
