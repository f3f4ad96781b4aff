//! The engine's one source of randomness (entity tags), seeded from the operating system's
//! per-process random keys (std's `RandomState`), so tags differ across runs and cannot be
//! guessed from earlier ones.
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

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
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
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
