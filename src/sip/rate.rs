//! Requests per second per source address: a token bucket for each IP address, checked on the
//! transport's I/O thread before a message is parsed or queued, so that a flood from one
//! address costs little more than reading it and cannot crowd out everyone else's requests.
//!
//! Each address may send [`RateLimit::per_second`] messages a second on average, in bursts
//! of up to [`RateLimit::burst`]. Beyond that, as many again are answered `503 Service
//! Unavailable` with `Retry-After` (a well-behaved client backs off and learns why); the
//! rest are dropped unparsed. Addresses the operator trusts (peers' proxies, which carry
//! many users' requests) are exempt.
//!
//! The table of addresses is bounded: when it is full, addresses whose bucket is full again
//! (quiet for a while) are forgotten; addresses that still do not fit share one bucket.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::sip::live::Live;
use crate::sip::stack::lock;

/// The rate a source address may send at (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages per second on average; 0 turns the limit off.
    pub per_second: u32,
    /// Messages at once after a quiet spell (at least `per_second`).
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };

    /// The default: 200 a second, bursts of 1000 (a phone sends a few a minute; a
    /// presence client subscribing to a buddy list of a few hundred sends them at once).
    pub const DEFAULT: RateLimit = RateLimit {
        per_second: 200,
        burst: 1000,
    };

    /// Reads `N` or `N/BURST` (`0`: off).
    pub fn parse(text: &str) -> crate::Result<RateLimit> {
        let bad = || {
            crate::Error::InvalidArgument(format!(
                "rate limit '{text}': expected N or N/BURST (messages per second; 0: off)"
            ))
        };
        let (rate, burst) = match text.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (text, None),
        };
        let per_second: u32 = rate.trim().parse().map_err(|_| bad())?;
        let burst = match burst {
            Some(b) => b.trim().parse().map_err(|_| bad())?,
            None => per_second.saturating_mul(5),
        };
        if per_second > 0 && burst < per_second {
            return Err(bad());
        }
        Ok(RateLimit { per_second, burst })
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::DEFAULT
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Handle it.
    Admit,
    /// Answer it `503` with `Retry-After` (seconds), if it is a request.
    Refuse { retry_after: u32 },
    /// Drop it unread.
    Drop,
}

/// Addresses tracked at once before quiet ones are forgotten.
const MAX_ADDRESSES: usize = 65_536;

struct Bucket {
    /// Tokens, in thousandths of a message.
    milli_tokens: u64,
    /// Clock ms of the last refill.
    at: u64,
    /// Refusals answered in the current second, and which second that is.
    refusals: u32,
    second: u64,
}

/// The per-address buckets: see the [module](self) documentation.
pub(crate) struct RateLimiter {
    /// The limit and who is exempt, replaced by a reload ([`RateLimiter::set`]).
    settings: Live<Settings>,
    buckets: Mutex<Table>,
}

struct Settings {
    limit: RateLimit,
    exempt: Vec<(IpAddr, u8)>,
}

struct Table {
    by_address: HashMap<IpAddr, Bucket>,
    /// Shared by the addresses that did not fit.
    overflow: Bucket,
}

impl RateLimiter {
    /// Limits every address to `limit` except those in the `exempt` networks (address,
    /// prefix length).
    pub(crate) fn new(limit: RateLimit, exempt: Vec<(IpAddr, u8)>) -> RateLimiter {
        RateLimiter {
            settings: Live::new(Settings { limit, exempt }),
            buckets: Mutex::new(Table {
                by_address: HashMap::new(),
                overflow: Bucket::full(limit, 0),
            }),
        }
    }

    /// Limits to `limit` from now on, with `exempt` the networks that are not limited. An
    /// address keeps the tokens it has (never more than the new burst once it refills).
    pub(crate) fn set(&self, limit: RateLimit, exempt: Vec<(IpAddr, u8)>) {
        self.settings.set(Settings { limit, exempt });
    }

    /// Takes one message from `source` at clock ms `now`.
    pub(crate) fn admit(&self, source: IpAddr, now: u64) -> Admission {
        let settings = self.settings.get();
        if settings.limit.per_second == 0
            || settings
                .exempt
                .iter()
                .any(|&(net, len)| in_network(source, net, len))
        {
            return Admission::Admit;
        }
        let mut table = lock(&self.buckets);
        let table = &mut *table;
        if !table.by_address.contains_key(&source) && table.by_address.len() >= MAX_ADDRESSES {
            let limit = settings.limit;
            table.by_address.retain(|_, b| !b.refilled(limit, now));
        }
        let bucket =
            if table.by_address.len() < MAX_ADDRESSES || table.by_address.contains_key(&source) {
                table
                    .by_address
                    .entry(source)
                    .or_insert_with(|| Bucket::full(settings.limit, now))
            } else {
                &mut table.overflow
            };
        bucket.take(settings.limit, now)
    }
}

impl Bucket {
    fn full(limit: RateLimit, now: u64) -> Bucket {
        Bucket {
            milli_tokens: u64::from(limit.burst) * 1000,
            at: now,
            refusals: 0,
            second: now / 1000,
        }
    }

    /// Refills for the time since the last refill; whether the bucket is full.
    fn refilled(&mut self, limit: RateLimit, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.at);
        let cap = u64::from(limit.burst) * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(limit.per_second)).min(cap);
        self.at = now;
        self.milli_tokens == cap
    }

    fn take(&mut self, limit: RateLimit, now: u64) -> Admission {
        self.refilled(limit, now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            return Admission::Admit;
        }
        if self.second != now / 1000 {
            self.second = now / 1000;
            self.refusals = 0;
        }
        if self.refusals < limit.per_second {
            self.refusals += 1;
            // Time until the bucket holds a token again, in whole seconds (at least 1).
            let missing = 1000 - self.milli_tokens;
            let ms = missing.div_ceil(u64::from(limit.per_second));
            let retry_after = ms.div_ceil(1000).max(1) as u32;
            Admission::Refuse { retry_after }
        } else {
            Admission::Drop
        }
    }
}

/// Whether `ip` is in the network `net`/`len` (same family only).
pub(crate) fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate_then_refusals_then_drops() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 10,
                burst: 20,
            },
            Vec::new(),
        );
        let a = ip("192.0.2.1");
        let at = |now| limiter.admit(a, now);
        for _ in 0..20 {
            assert_eq!(at(0), Admission::Admit);
        }
        for _ in 0..10 {
            assert!(matches!(at(0), Admission::Refuse { retry_after: 1 }));
        }
        assert_eq!(at(0), Admission::Drop);
        // 100 ms later one token is back.
        assert_eq!(at(100), Admission::Admit);
        assert_eq!(
            at(100),
            Admission::Drop,
            "the refusal budget of this second is spent"
        );
        // The next second: refusals may be answered again.
        assert!(matches!(at(1000), Admission::Admit));
        // Another address is not affected at all.
        assert_eq!(limiter.admit(ip("192.0.2.2"), 0), Admission::Admit);
    }

    #[test]
    fn exempt_networks_and_off_admit_everything() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 1,
            },
            vec![(ip("10.1.0.0"), 16), (ip("2001:db8::"), 32)],
        );
        for _ in 0..100 {
            assert_eq!(limiter.admit(ip("10.1.200.3"), 0), Admission::Admit);
            assert_eq!(limiter.admit(ip("2001:db8::7"), 0), Admission::Admit);
        }
        assert_eq!(limiter.admit(ip("10.2.0.1"), 0), Admission::Admit);
        assert_ne!(limiter.admit(ip("10.2.0.1"), 0), Admission::Admit);
        let off = RateLimiter::new(RateLimit::OFF, Vec::new());
        for _ in 0..10_000 {
            assert_eq!(off.admit(ip("192.0.2.1"), 0), Admission::Admit);
        }
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            RateLimit::parse("50").unwrap(),
            RateLimit {
                per_second: 50,
                burst: 250
            }
        );
        assert_eq!(
            RateLimit::parse("50/80").unwrap(),
            RateLimit {
                per_second: 50,
                burst: 80
            }
        );
        assert_eq!(RateLimit::parse("0").unwrap().per_second, 0);
        for bad in ["", "x", "50/10", "-1", "5/"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks_match_by_prefix() {
        assert!(in_network(ip("192.0.2.77"), ip("192.0.2.0"), 24));
        assert!(!in_network(ip("192.0.3.1"), ip("192.0.2.0"), 24));
        assert!(in_network(ip("203.0.113.9"), ip("203.0.113.9"), 32));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(!in_network(ip("::1"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("2001:db8::1"), ip("2001:db8::"), 64));
    }
}
