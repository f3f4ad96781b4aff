//! The server acting as a SIP user agent towards other domains (DESIGN §5, "distribute
//! state"): for a presentity of a domain the engine does not own, local watchers share ONE
//! back-end subscription per (presentity, package), whose NOTIFYs are mirrored into the local
//! engine as the presentity's publication; the engine then notifies every local watcher with
//! its own filter and policy.
//!
//! | module | concept |
//! | --- | --- |
//! | [`account`] | the accounts of the user-agent role |
//! | `backend` | the back-end subscriptions: created, refreshed, retried, ended, mirrored |
//! | `edge` | a serving account's half of presence at the edge: feature tag, keep-alives, rules over XCAP |
//! | `hops` | where the agent roles' requests go: the accounts' servers and the other domains' routes, addresses or names (RFC 3263), and the targets left out after a failure |
//!
//! # Identity
//!
//! A back-end SUBSCRIBE is sent in the name of the first local watcher of the presentity
//! (its From URI); the dialog keeps that identity while it lives, even after that watcher
//! leaves, and a new dialog (after a failure) takes the first remaining watcher. The remote
//! domain therefore applies its policy for that watcher to every local watcher (what it
//! shows that watcher, every local watcher sees); the local engine's own rules still apply to
//! each of them. When the remote domain rejects that watcher, only its local subscriptions
//! end, and the others get a new dialog in another watcher's name. A local watcher whose watcher URI is an
//! account's address of record goes through that account's proxy and credentials instead.
//!
//! # Shape
//!
//! Two roles, each its own type over the stack (`crate::sip::stack::Stack`) and the
//! engine's API, which never reach into each other or into the server roles: `Backends`
//! (federation) and `account::Accounts`. What they share is below them: the accounts'
//! configuration ([`Account`]), the counters (`AgentCounters`) and the timing helpers here.
//!
//! # Threads
//!
//! Everything here runs on the node's threads: engine events on the event thread,
//! responses and NOTIFYs on the workers, refreshes and retries on the timer thread. One mutex
//! guards each role's table; engine calls made under it are short round trips to a shard,
//! which never waits for the event thread.
#![forbid(unsafe_code)]

pub mod account;
pub(crate) mod backend;
pub(crate) mod edge;
pub(crate) mod hops;

pub use account::{Account, ListSubscription};

use std::sync::atomic::{AtomicU64, Ordering};

use super::route::NextHop;
use super::stack::Stack;
use crate::model::key::presentity_key;
use crate::sip::digest_client::DigestClient;
use crate::uri::Uri;

pub(crate) use backend::Backends;

/// Counts about the back-end subscriptions, cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FederationStats {
    /// Back-end subscriptions held (one per remote presentity and package with local
    /// watchers, plus one per watcher with a dialog of its own).
    pub backends: u64,
    /// Local watchers served by them.
    pub local_watchers: u64,
    /// SUBSCRIBE requests sent (initial, refreshes, retries, removals).
    pub subscribes_sent: u64,
    /// NOTIFY requests received in back-end dialogs.
    pub notifies_received: u64,
    /// Back-end dialogs that failed (481, timeout, error answer, terminated) and were retried.
    pub failures: u64,
    /// Fetches (SUBSCRIBE with `Expires: 0`) sent to ask the remote domain about a local
    /// watcher joining a back-end subscription made in another watcher's name.
    pub probes_sent: u64,
    /// Back-end subscriptions made for one watcher alone, because the remote domain did not
    /// show it what it shows the shared subscription's watcher (or did not answer).
    pub own_dialogs: u64,
}

/// The agent roles' counters, shared by both.
#[derive(Debug, Default)]
pub(crate) struct AgentCounters {
    pub(crate) subscribes_sent: AtomicU64,
    pub(crate) notifies_received: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) probes_sent: AtomicU64,
    pub(crate) own_dialogs: AtomicU64,
    /// Requests sent and not answered yet.
    outstanding: AtomicU64,
}

impl AgentCounters {
    /// A request was sent.
    pub(crate) fn sent(&self) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered (or timed out).
    pub(crate) fn answered(&self) {
        let _ = self
            .outstanding
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Requests sent and not answered yet (for a stopping node, which waits a little).
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The statistics, with the back-end counts (back-ends, local watchers).
    pub(crate) fn stats(&self, (backends, local_watchers): (u64, u64)) -> FederationStats {
        FederationStats {
            backends,
            local_watchers,
            subscribes_sent: self.subscribes_sent.load(Ordering::Relaxed),
            notifies_received: self.notifies_received.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            probes_sent: self.probes_sent.load(Ordering::Relaxed),
            own_dialogs: self.own_dialogs.load(Ordering::Relaxed),
        }
    }
}

/// The account whose address of record is `watcher`, and where its requests go now.
pub(crate) fn account_route(
    accounts: &[Account],
    hops: &hops::Hops,
    watcher: &Uri,
) -> Option<(usize, NextHop)> {
    let key = presentity_key(watcher);
    accounts
        .iter()
        .position(|a| presentity_key(&a.aor) == key)
        .map(|i| (i, hops.next_hop(i)))
}

/// Fresh digest state for account `i` (client nonces from `seed`).
pub(crate) fn account_digest(accounts: &[Account], i: usize, seed: u64) -> Option<DigestClient> {
    accounts
        .get(i)
        .map(|a| DigestClient::seeded(&a.username, &a.password, seed))
}

/// The refresh time of a subscription granted `granted` seconds from `now` (clock ms): at a
/// random point between 60% and 85% of its life, so that the refreshes of many
/// subscriptions created together spread out, and always before it expires.
pub(crate) fn refresh_at(stack: &Stack, now: u64, granted: u32) -> u64 {
    let life = u64::from(granted.max(1)) * 1000;
    now + (life as f64 * stack.jitter(0.6, 0.85)) as u64
}

/// The wait before retry number `failures` (1, 2, ...): 1 s doubling up to 5 minutes, times a
/// random factor between 0.5 and 1 so that retries after a common failure spread out.
pub(crate) fn backoff(stack: &Stack, failures: u32) -> u64 {
    let base = 1000u64 << failures.saturating_sub(1).min(9);
    (base.min(300_000) as f64 * stack.jitter(0.5, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_refreshes_and_retries() {
        let stack = Stack::new(
            crate::sip::stack::StackConfig {
                timers: Default::default(),
                limits: Default::default(),
                server_name: "test".into(),
            },
            crate::engine::ManualClock::new(),
            crate::engine::random::Random::seeded(7).shared(),
        );
        let times: Vec<u64> = (0..200).map(|_| refresh_at(&stack, 0, 100)).collect();
        assert!(times.iter().all(|&t| (60_000..85_000).contains(&t)));
        let distinct: std::collections::BTreeSet<u64> = times.iter().map(|t| t / 1000).collect();
        assert!(distinct.len() > 10, "refreshes bunch up: {distinct:?}");
        assert!((500..1000).contains(&backoff(&stack, 1)));
        assert!((1000..2000).contains(&backoff(&stack, 2)));
        assert!(backoff(&stack, 40) <= 300_000);
    }
}
