//! The engine's one source of randomness (entity tags), seeded from the operating system's
//! per-process random keys (std's `RandomState`), so tags differ across runs and cannot be
//! guessed from earlier ones.
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A SplitMix64 generator: fast, good enough to make tags unguessable by a peer that sees
/// some of them (not a cryptographic generator).
#[derive(Debug, Clone)]
pub(crate) struct Random {
    state: u64,
}

impl Random {
    /// A generator seeded from the process's random hash keys.
    pub(crate) fn from_entropy() -> Random {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Random { state: h.finish() }
    }

    /// The next 64 random bits.
    /// A generator from a fixed seed (repeatable runs: [`super::EngineConfig::random_seed`]).
    pub(crate) fn seeded(seed: u64) -> Random {
        Random { state: seed }
    }

    /// A new generator whose stream is independent of this one's (each shard, and the SIP
    /// stack, draws from its own split of the engine's one generator, without a lock).
    pub(crate) fn split(&mut self) -> Random {
        Random {
            state: self.next_u64() ^ 0x6a09_e667_f3bc_c908,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// The same stream, shared by threads without a lock (see [`SharedRandom`]).
    pub(crate) fn shared(self) -> SharedRandom {
        SharedRandom(AtomicU64::new(self.state))
    }
}

/// A SplitMix64 stream many threads draw from: the state advances by one atomic add, so a
/// NOTIFY's branch costs no lock.
#[derive(Debug)]
pub(crate) struct SharedRandom(AtomicU64);

impl SharedRandom {
    pub(crate) fn next_u64(&self) -> u64 {
        mix(self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }

    /// A fraction in `[low, high)`, for jitter.
    pub(crate) fn fraction(&self, low: f64, high: f64) -> f64 {
        low + (high - low) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_differ_and_do_not_repeat_quickly() {
        let (mut a, mut b) = (Random::from_entropy(), Random::from_entropy());
        let xs: Vec<u64> = (0..1000).map(|_| a.next_u64()).collect();
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), xs.len());
        assert_ne!(xs[0], b.next_u64());
    }
}
