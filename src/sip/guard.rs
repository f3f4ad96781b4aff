//! What the server refuses to protect its users, counted: every limit, throttle and trust
//! check adds to [`GuardCounters`] when it refuses something, and [`SipServer::guard_stats`]
//! reads them. One struct for all of them so an operator finds every refusal in one place.
//!
//! [`SipServer::guard_stats`]: super::SipServer::guard_stats
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Refusals counted since the server started, cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Digest credentials refused (wrong password, unknown user, foreign nonce).
    pub auth_failures: u64,
    /// Requests answered `503` for coming from an address over its rate limit.
    pub rate_refused: u64,
    /// Messages dropped unread from an address far over its rate limit.
    pub rate_dropped: u64,
    /// UDP messages dropped because the workers' queue was full (their clients
    /// retransmit). TCP, TLS and WebSocket ones are held on their connection instead,
    /// counted in [`super::transport::TransportStats::messages_held`].
    pub queue_dropped: u64,
    /// Credentials refused unchecked: their address, user or pair had failed too often.
    pub auth_throttled: u64,
    /// Correct digest responses refused for reusing a nonce count (challenged again).
    pub nonce_replays: u64,
    /// Requests refused `403` for the identity they claim (see [`super::server::trust`]):
    /// another domain's user from a peer that does not speak for that domain, or asking
    /// what such a user may not (REGISTER, PUBLISH); an authenticated user acting as
    /// someone else; a MESSAGE for an account not from the account's server.
    pub untrusted: u64,
    /// Requests for other domains the forwarder would not relay: not from an own user, a
    /// trusted peer or a dialog it record-routed.
    pub relays_refused: u64,
}

/// The live counters behind [`GuardStats`], shared by the stack and the roles.
#[derive(Debug, Default)]
pub(crate) struct GuardCounters {
    pub(crate) auth_failures: AtomicU64,
    pub(crate) rate_refused: AtomicU64,
    pub(crate) rate_dropped: AtomicU64,
    pub(crate) queue_dropped: AtomicU64,
    pub(crate) auth_throttled: AtomicU64,
    pub(crate) nonce_replays: AtomicU64,
    pub(crate) untrusted: AtomicU64,
    pub(crate) relays_refused: AtomicU64,
}

impl GuardCounters {
    /// Adds one to a counter.
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot.
    pub(crate) fn stats(&self) -> GuardStats {
        GuardStats {
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            rate_refused: self.rate_refused.load(Ordering::Relaxed),
            rate_dropped: self.rate_dropped.load(Ordering::Relaxed),
            queue_dropped: self.queue_dropped.load(Ordering::Relaxed),
            auth_throttled: self.auth_throttled.load(Ordering::Relaxed),
            nonce_replays: self.nonce_replays.load(Ordering::Relaxed),
            untrusted: self.untrusted.load(Ordering::Relaxed),
            relays_refused: self.relays_refused.load(Ordering::Relaxed),
        }
    }
}
