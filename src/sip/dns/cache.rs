//! Answers by destination, kept until their TTL ends on the engine's clock (RFC 1035 §3.2.1;
//! negative answers as long as the zone's SOA says, RFC 2308 §5, within the bounds the
//! resolver sets). The cache is bounded: when full, expired answers go first, then the one
//! closest to expiry.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use super::destination::Destination;
use super::procedure::Answer;

/// A cached answer and when it expires (clock ms).
#[derive(Debug, Clone)]
struct Entry {
    answer: Arc<Answer>,
    expires: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Destination, Entry>,
    max: usize,
}

impl Cache {
    /// A cache of at most `max` answers (at least one).
    pub fn new(max: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            max: max.max(1),
        }
    }

    /// The answer for `dest` if it is still valid at `now` (clock ms).
    pub fn get(&self, dest: &Destination, now: u64) -> Option<&Arc<Answer>> {
        self.entries
            .get(dest)
            .filter(|e| e.expires > now)
            .map(|e| &e.answer)
    }

    /// The answer for `dest` that expired at most `stale_ms` before `now` (still valid ones
    /// too), and whether it expired (RFC 8767: served while it is refreshed).
    pub fn get_stale(
        &self,
        dest: &Destination,
        now: u64,
        stale_ms: u64,
    ) -> Option<(&Arc<Answer>, bool)> {
        self.entries
            .get(dest)
            .filter(|e| e.expires.saturating_add(stale_ms) > now)
            .map(|e| (&e.answer, e.expires <= now))
    }

    /// Keeps `answer` for `dest` from `now` for `ttl_ms`.
    pub fn insert(&mut self, dest: Destination, answer: Arc<Answer>, now: u64, ttl_ms: u64) {
        if self.entries.len() >= self.max && !self.entries.contains_key(&dest) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.max {
                if let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(d, _)| d.clone())
                {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(
            dest,
            Entry {
                answer,
                expires: now.saturating_add(ttl_ms),
            },
        );
    }

    /// How many answers are kept (expired ones included until they are replaced).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::route::NextHop;

    fn answer(text: &str) -> Arc<Answer> {
        Arc::new(Answer::single(NextHop::parse(text).unwrap()))
    }

    #[test]
    fn answers_expire_and_the_cache_stays_bounded() {
        let mut cache = Cache::new(2);
        let a = Destination::parse("a.test").unwrap();
        let b = Destination::parse("b.test").unwrap();
        let c = Destination::parse("c.test").unwrap();
        cache.insert(a.clone(), answer("udp:192.0.2.1:5060"), 1_000, 60_000);
        assert!(cache.get(&a, 60_999).is_some());
        assert!(cache.get(&a, 61_000).is_none(), "expired at its TTL");
        assert!(
            cache.get_stale(&a, 61_000, 1_000).unwrap().1,
            "stale for a while"
        );
        assert!(cache.get_stale(&a, 62_000, 1_000).is_none());
        cache.insert(b.clone(), answer("udp:192.0.2.2:5060"), 1_000, 10_000);
        // Full: the one closest to expiry (b) makes room.
        cache.insert(c.clone(), answer("udp:192.0.2.3:5060"), 2_000, 60_000);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&b, 2_000).is_none());
        assert!(cache.get(&a, 2_000).is_some() && cache.get(&c, 2_000).is_some());
    }
}
