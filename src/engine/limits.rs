//! Bounds on the state strangers can make the engine keep: stored messages, subscriptions
//! and endpoints. A request past a bound is refused and changes nothing (a message fails as
//! `mailbox-full`, a subscription or login with [`crate::Error::LimitReached`]); each
//! refusal is counted in [`crate::engine::Stats`]. Room comes back as that state ends.
//!
//! Every bound but one is checked by the shard that owns the state: a user's mailbox and
//! endpoints and a presentity's subscriptions live on one shard. A watcher's subscriptions
//! are spread over every shard (they are sharded by presentity), so their count is kept in
//! one [`WatcherTally`] the shards share, taken once per subscription made or ended, never
//! per notification.
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// How much state the engine keeps for one user, watcher or presentity. Each bound is at
/// least 1; `u32::MAX` is as good as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Messages waiting for one recipient (stored while it is offline, or queued behind
    /// those): more fail as `mailbox-full`. Default 1000.
    pub max_offline_messages_per_user: u32,
    /// Messages from one sender waiting for one recipient: more from that sender fail as
    /// `mailbox-full` while others may still write. Counted per (sender, recipient), so one
    /// stranger fills a tenth of a mailbox at most and the user's other correspondents still
    /// get through; per sender across recipients would protect no one's mailbox (and would
    /// cost a count shared by every shard). Default 100.
    pub max_offline_messages_per_sender: u32,
    /// Live subscriptions of one watcher, over every presentity and package: more are
    /// [`Error::LimitReached`]. A fetch (expiry 0) holds no subscription and is not
    /// refused. Default 1000.
    pub max_subscriptions_per_watcher: u32,
    /// Live subscriptions to one presentity, over every package: more are
    /// [`Error::LimitReached`] (fetches are not). Default 10000.
    pub max_subscriptions_per_presentity: u32,
    /// Endpoints (logins, registered SIP contacts) of one user: logging in one more is
    /// [`Error::LimitReached`]; refreshing one that is logged in always works. Default 10.
    pub max_endpoints_per_user: u32,
}

impl StateLimits {
    /// No bound at all (each `u32::MAX`): for benchmarks and trusted embedders.
    pub const UNLIMITED: StateLimits = StateLimits {
        max_offline_messages_per_user: u32::MAX,
        max_offline_messages_per_sender: u32::MAX,
        max_subscriptions_per_watcher: u32::MAX,
        max_subscriptions_per_presentity: u32::MAX,
        max_endpoints_per_user: u32::MAX,
    };

    /// Checks that every bound is at least 1.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            (
                "max_offline_messages_per_user",
                self.max_offline_messages_per_user,
            ),
            (
                "max_offline_messages_per_sender",
                self.max_offline_messages_per_sender,
            ),
            (
                "max_subscriptions_per_watcher",
                self.max_subscriptions_per_watcher,
            ),
            (
                "max_subscriptions_per_presentity",
                self.max_subscriptions_per_presentity,
            ),
            ("max_endpoints_per_user", self.max_endpoints_per_user),
        ] {
            if value == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be at least 1 (u32::MAX for no bound), not 0"
                )));
            }
        }
        Ok(())
    }
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_offline_messages_per_user: 1000,
            max_offline_messages_per_sender: 100,
            max_subscriptions_per_watcher: 1000,
            max_subscriptions_per_presentity: 10000,
            max_endpoints_per_user: 10,
        }
    }
}

/// Stripes of the tally: shards that count different watchers rarely wait for each other.
const STRIPES: usize = 64;

/// One stripe of the tally: live subscriptions by watcher key.
type Stripe = HashMap<Box<str>, u32>;

/// The live subscriptions of each watcher (by watcher key), over every shard.
pub(crate) struct WatcherTally {
    hasher: RandomState,
    stripes: Box<[Mutex<Stripe>]>,
}

impl Default for WatcherTally {
    fn default() -> Self {
        WatcherTally {
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }
}

impl WatcherTally {
    fn stripe(&self, watcher: &str) -> MutexGuard<'_, Stripe> {
        let index = (self.hasher.hash_one(watcher) % STRIPES as u64) as usize;
        self.stripes[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more subscription of `watcher` unless it has `max` already; whether it
    /// was counted.
    pub(crate) fn try_add(&self, watcher: &str, max: u32) -> bool {
        let mut stripe = self.stripe(watcher);
        match stripe.get_mut(watcher) {
            Some(n) if *n >= max => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if max == 0 => false,
            None => {
                stripe.insert(watcher.into(), 1);
                true
            }
        }
    }

    /// Counts one more subscription of `watcher`, whatever it has (a fetch, a restored one).
    pub(crate) fn add(&self, watcher: &str) {
        let mut stripe = self.stripe(watcher);
        match stripe.get_mut(watcher) {
            Some(n) => *n = n.saturating_add(1),
            None => {
                stripe.insert(watcher.into(), 1);
            }
        }
    }

    /// Counts one subscription of `watcher` less.
    pub(crate) fn remove(&self, watcher: &str) {
        let mut stripe = self.stripe(watcher);
        if let Some(n) = stripe.get_mut(watcher) {
            *n -= 1;
            if *n == 0 {
                stripe.remove(watcher);
            }
        }
    }

    /// The live subscriptions of `watcher`.
    #[cfg(test)]
    pub(crate) fn count(&self, watcher: &str) -> u32 {
        self.stripe(watcher).get(watcher).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_up_to_the_bound_and_frees_room() {
        let tally = WatcherTally::default();
        assert!(tally.try_add("w", 2));
        assert!(tally.try_add("w", 2));
        assert!(!tally.try_add("w", 2));
        assert_eq!(tally.count("w"), 2);
        assert!(tally.try_add("other", 2));
        tally.remove("w");
        assert!(tally.try_add("w", 2));
        tally.add("w");
        assert_eq!(tally.count("w"), 3);
        for _ in 0..3 {
            tally.remove("w");
        }
        assert_eq!(tally.count("w"), 0);
        tally.remove("w"); // nothing to remove: no underflow
        assert_eq!(tally.count("w"), 0);
    }

    #[test]
    fn zero_is_no_bound_to_configure() {
        assert!(StateLimits::default().validate().is_ok());
        assert!(StateLimits::UNLIMITED.validate().is_ok());
        let zero = StateLimits {
            max_endpoints_per_user: 0,
            ..StateLimits::default()
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidArgument(_))));
    }
}
