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
//! # Threads
//!
//! Everything here runs on the server's threads: engine events on the event thread,
//! responses and NOTIFYs on the workers, refreshes and retries on the timer thread. One mutex
//! guards the tables; engine calls made under it are short round trips to a shard, which
//! never waits for the event thread.
#![forbid(unsafe_code)]

pub mod account;
pub(crate) mod backend;

pub use account::Account;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::message::SipMessage;
use super::server::Inner;

pub(crate) use backend::Backends;

/// Counts about the back-end subscriptions, cheap to read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FederationStats {
    /// Back-end subscriptions held (one per remote presentity and package with local
    /// watchers).
    pub backends: u64,
    /// Local watchers served by them.
    pub local_watchers: u64,
    /// SUBSCRIBE requests sent (initial, refreshes, retries, removals).
    pub subscribes_sent: u64,
    /// NOTIFY requests received in back-end dialogs.
    pub notifies_received: u64,
    /// Back-end dialogs that failed (481, timeout, error answer, terminated) and were retried.
    pub failures: u64,
}

/// What an outgoing client transaction of the agent is for.
#[derive(Debug, Clone)]
pub(crate) enum AgentTx {
    /// A SUBSCRIBE of the back-end subscription `key`, in the dialog with `call_id`, sent
    /// with credentials or not.
    Subscribe {
        key: backend::Key,
        call_id: String,
        with_auth: bool,
    },
    /// A SUBSCRIBE with `Expires: 0` ending a dialog nobody watches any more.
    Unsubscribe,
    /// A request of an account (REGISTER, PUBLISH, one-shot), sent with credentials or not.
    Account {
        account: usize,
        purpose: account::Purpose,
        with_auth: bool,
    },
}

/// The agent's state, held by the server.
pub(crate) struct Agent {
    pub(crate) backends: Mutex<Backends>,
    pub(crate) accounts: Mutex<account::Accounts>,
    random: crate::engine::random::SharedRandom,
    pub(crate) subscribes_sent: AtomicU64,
    pub(crate) notifies_received: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Requests sent and not answered yet.
    pub(crate) outstanding: AtomicU64,
}

impl Agent {
    /// An agent drawing its jitter from `random` (a split of the engine's generator).
    pub(crate) fn new(random: crate::engine::random::SharedRandom) -> Agent {
        Agent {
            backends: Mutex::new(Backends::default()),
            accounts: Mutex::new(account::Accounts::default()),
            random,
            subscribes_sent: AtomicU64::new(0),
            notifies_received: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
        }
    }

    /// A random fraction in `[low, high)`, for jitter.
    pub(crate) fn jitter(&self, low: f64, high: f64) -> f64 {
        self.random.fraction(low, high)
    }

    /// Requests sent whose answer has not come yet (for a stopping server).
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> FederationStats {
        let (backends, local_watchers) = super::server::lock(&self.backends).counts();
        FederationStats {
            backends,
            local_watchers,
            subscribes_sent: self.subscribes_sent.load(Ordering::Relaxed),
            notifies_received: self.notifies_received.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// The final answer to a request of the agent (408 and no response: none in time).
    pub(crate) fn agent_response(&self, tx: AgentTx, status: u16, response: Option<&SipMessage>) {
        let _ = self
            .agent
            .outstanding
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match tx {
            AgentTx::Account {
                account,
                purpose,
                with_auth,
            } => self.account_response(account, purpose, with_auth, status, response),
            tx => self.backend_response(tx, status, response),
        }
    }

    /// Sends a request of the agent in a new client transaction (counted until answered).
    pub(crate) fn agent_send_request(
        &self,
        branch: String,
        bytes: Vec<u8>,
        proto: super::transport::Proto,
        dest: std::net::SocketAddr,
        context: super::server::ClientContext,
    ) {
        self.agent.outstanding.fetch_add(1, Ordering::Relaxed);
        self.send_request(branch, bytes, proto, dest, context);
    }

    /// Runs what is due at `now` (clock ms): SUBSCRIBEs to send again.
    pub(crate) fn agent_tick(&self, now: u64) {
        self.backend_tick(now);
        self.accounts_tick(now);
    }

    /// The earliest clock time [`Inner::agent_tick`] has work.
    pub(crate) fn agent_next_deadline(&self) -> Option<u64> {
        [self.backend_next_deadline(), self.accounts_next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ends what the agent holds at the remote servers, for a server stopping, and waits a
    /// little (at most a second) for the answers.
    pub(crate) fn agent_stop(&self) {
        self.backend_stop();
        self.accounts_stop();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < deadline && self.agent.outstanding() > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The refresh time of a subscription granted `granted` seconds from `now` (clock ms): at a
/// random point between 60% and 85% of its life, so that the refreshes of many
/// subscriptions created together spread out, and always before it expires.
pub(crate) fn refresh_at(agent: &Agent, now: u64, granted: u32) -> u64 {
    let life = u64::from(granted.max(1)) * 1000;
    now + (life as f64 * agent.jitter(0.6, 0.85)) as u64
}

/// The wait before retry number `failures` (1, 2, ...): 1 s doubling up to 5 minutes, times a
/// random factor between 0.5 and 1 so that retries after a common failure spread out.
pub(crate) fn backoff(agent: &Agent, failures: u32) -> u64 {
    let base = 1000u64 << failures.saturating_sub(1).min(9);
    (base.min(300_000) as f64 * agent.jitter(0.5, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_refreshes_and_retries() {
        let agent = Agent::new(crate::engine::random::Random::seeded(7).shared());
        let times: Vec<u64> = (0..200).map(|_| refresh_at(&agent, 0, 100)).collect();
        assert!(times.iter().all(|&t| (60_000..85_000).contains(&t)));
        let distinct: std::collections::BTreeSet<u64> = times.iter().map(|t| t / 1000).collect();
        assert!(distinct.len() > 10, "refreshes bunch up: {distinct:?}");
        assert!((500..1000).contains(&backoff(&agent, 1)));
        assert!((1000..2000).contains(&backoff(&agent, 2)));
        assert!(backoff(&agent, 40) <= 300_000);
    }
}
