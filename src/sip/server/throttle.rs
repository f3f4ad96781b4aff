//! The brake on password guessing: failed digest credentials are counted per source address,
//! per user and per (user, source) pair, and once one of them reaches
//! [`AuthLimits::max_failures`] within [`AuthLimits::failure_window`], credentials it
//! covers are refused for a while without being checked.
//!
//! # Who is blocked, and why that way
//!
//! - **The source address** (an IPv6 address by its /64, see [`address_key`]) stops one
//!   machine guessing, whatever user names it tries, for [`AuthLimits::block`].
//! - **The user** stops many machines guessing one user's password together, but only for
//!   the short [`AuthLimits::user_block`], and never from an address the user authenticated
//!   from in the last [`AuthLimits::known_address_for`]: a stranger who fails on purpose
//!   under alice's name blocks alice nowhere she has been before, and elsewhere for a minute
//!   at a time.
//! - **The (user, source) pair** is what still limits guessing from an address that is
//!   exempt from the two blocks above (a stranger behind the same NAT as alice): it is
//!   blocked for [`AuthLimits::block`], and a success clears its count.
//!
//! Failures are counted against the address the challenge went to: the server binds its
//! nonces to the client's address ([`crate::sip::digest`]), so a sender forging a source
//! address over UDP never gets a response checked, or a failure counted, in that address's
//! name. Behind a front proxy every request comes from the proxy; the proxies listed in
//! [`AuthLimits::proxies`] have their requests counted against the client's address as the
//! proxy recorded it in the client's Via.
//!
//! Unknown user names are counted exactly like known ones, so the throttle tells no one
//! which users exist. Requests without credentials are always challenged (a challenge checks
//! nothing). Each table holds at most [`AuthLimits::max_tracked`] entries: expired ones go
//! first, then the least recently touched (blocks last).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::log;
use crate::sip::digest::{address_key, DEFAULT_NC_WINDOW, DEFAULT_NONCE_LIFETIME};
use crate::sip::SipMessage;

/// How the server's digest authentication limits replays and guessing (see
/// [`crate::sip::digest`] and the throttle's notes in the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimits {
    /// How long a nonce is good for. Default 300 s.
    pub nonce_lifetime: Duration,
    /// How far below the highest `nc` seen under a nonce an unused `nc` is still accepted
    /// (requests verified out of order); at most 64, 0 for a strictly rising `nc`.
    /// Default 32.
    pub nc_window: u32,
    /// Failed credentials within `failure_window` that start a block; 0: no throttle.
    /// Default 10.
    pub max_failures: u32,
    /// Default 60 s.
    pub failure_window: Duration,
    /// How long a source address, or a (user, source) pair, is refused. Default 300 s.
    pub block: Duration,
    /// How long a user is refused from addresses it has not authenticated from lately.
    /// Default 60 s.
    pub user_block: Duration,
    /// How long an address a user authenticated from stays exempt from the blocks of the
    /// address and of the user. Default 7 days.
    pub known_address_for: Duration,
    /// Entries per table (sources, users, pairs, known addresses). Default 16384.
    pub max_tracked: usize,
    /// Front proxies (a Kamailio dispatching to this server): their requests count against
    /// the client's address in the Via below the proxy's (its `received`, else its host).
    /// Default: none.
    pub proxies: Vec<IpAddr>,
}

impl Default for AuthLimits {
    fn default() -> AuthLimits {
        AuthLimits {
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            nc_window: DEFAULT_NC_WINDOW,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            block: Duration::from_secs(300),
            user_block: Duration::from_secs(60),
            known_address_for: Duration::from_secs(7 * 24 * 3600),
            max_tracked: 16_384,
            proxies: Vec::new(),
        }
    }
}

/// Who credentials say they are, unchecked: (username, realm).
pub(crate) type Claimed = (String, String);

/// The failures of one key.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    /// When the current window started (clock ms).
    since: u64,
    failures: u32,
    /// Refused until then (clock ms).
    blocked_until: u64,
    /// The last failure (clock ms), for eviction.
    last: u64,
}

/// What [`Table::fail`] needs to know.
#[derive(Debug, Clone, Copy)]
struct Rule {
    max: u32,
    window: u64,
    block: u64,
    cap: usize,
}

/// Failure records by key, bounded.
#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Table<K> {
        Table {
            records: HashMap::new(),
        }
    }

    /// The time (ms) `key` stays blocked, if it is.
    fn blocked(&self, key: &K, now: u64) -> Option<u64> {
        self.records
            .get(key)
            .filter(|r| r.blocked_until > now)
            .map(|r| r.blocked_until - now)
    }

    /// Counts a failure of `key`; whether that started a block.
    fn fail(&mut self, key: &K, now: u64, rule: Rule) -> bool {
        if !self.records.contains_key(key) && self.records.len() >= rule.cap {
            self.make_room(now, rule);
        }
        let r = self.records.entry(key.clone()).or_default();
        if r.blocked_until > now {
            return false; // counted while checks raced; the block stands
        }
        if r.failures == 0 || now >= r.since.saturating_add(rule.window) {
            r.since = now;
            r.failures = 0;
        }
        r.failures += 1;
        r.last = now;
        if r.failures >= rule.max {
            r.blocked_until = now.saturating_add(rule.block);
            r.failures = 0;
            return true;
        }
        false
    }

    fn clear(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Drops what no longer counts; if the table is still full, the least recently failed
    /// eighth (unblocked entries before blocked ones), so that eviction is paid for once
    /// per many insertions.
    fn make_room(&mut self, now: u64, rule: Rule) {
        self.records.retain(|_, r| {
            r.blocked_until > now || (r.failures > 0 && now < r.since.saturating_add(rule.window))
        });
        if self.records.len() < rule.cap {
            return;
        }
        let mut order: Vec<(bool, u64, K)> = self
            .records
            .iter()
            .map(|(k, r)| (r.blocked_until > now, r.last, k.clone()))
            .collect();
        order.sort_unstable_by_key(|(blocked, last, _)| (*blocked, *last));
        for (_, _, k) in order.into_iter().take(rule.cap / 8 + 1) {
            self.records.remove(&k);
        }
    }
}

#[derive(Debug)]
struct State {
    sources: Table<IpAddr>,
    users: Table<Claimed>,
    pairs: Table<(Claimed, IpAddr)>,
    /// When each user last authenticated from each address (clock ms).
    known: HashMap<(Claimed, IpAddr), u64>,
}

/// The throttle: see the module notes. Shared by the server roles (through
/// [`super::auth::Authentication`]).
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: AuthLimits,
    state: Mutex<State>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Throttle {
    pub(crate) fn new(limits: AuthLimits) -> Throttle {
        Throttle {
            limits,
            state: Mutex::new(State {
                sources: Table::new(),
                users: Table::new(),
                pairs: Table::new(),
                known: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enabled(&self) -> bool {
        self.limits.max_failures > 0
    }

    fn rule(&self, block: Duration) -> Rule {
        Rule {
            max: self.limits.max_failures,
            window: ms(self.limits.failure_window),
            block: ms(block),
            cap: self.limits.max_tracked.max(1),
        }
    }

    /// The address a request counts against ([`address_key`] of it): where it came from,
    /// or for a request from a listed front proxy, the client's address as the proxy
    /// recorded it (the `received` of the second Via, else its host; the proxy's own when
    /// there is none).
    pub(crate) fn client_address(&self, source: IpAddr, message: &SipMessage) -> IpAddr {
        let source = address_key(source);
        if !self
            .limits
            .proxies
            .iter()
            .any(|p| address_key(*p) == source)
        {
            return source;
        }
        let client = message.via().ok().and_then(|vias| {
            let via = vias.get(1)?;
            let text = via.received().unwrap_or(via.host());
            text.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
        client.map_or(source, address_key)
    }

    fn known(state: &State, who: &Claimed, client: IpAddr, now: u64, for_ms: u64) -> bool {
        state
            .known
            .get(&(who.clone(), client))
            .is_some_and(|at| now < at.saturating_add(for_ms))
    }

    /// `None` when credentials claiming to be `who` (unparsable: `None`) from `client` may be
    /// checked at `now` (clock ms); otherwise how long (ms) they stay refused.
    pub(crate) fn check(&self, who: Option<&Claimed>, client: IpAddr, now: u64) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let state = self.state();
        let pair = who.and_then(|w| state.pairs.blocked(&(w.clone(), client), now));
        if pair.is_some() {
            return pair;
        }
        let known_for = ms(self.limits.known_address_for);
        if who.is_some_and(|w| Self::known(&state, w, client, now, known_for)) {
            return None;
        }
        let source = state.sources.blocked(&client, now);
        let user = who.and_then(|w| state.users.blocked(w, now));
        source.max(user)
    }

    /// Counts refused credentials claiming to be `who` from `client`.
    pub(crate) fn failed(&self, who: Option<&Claimed>, client: IpAddr, now: u64) {
        if !self.enabled() {
            return;
        }
        let (block, user_block) = (
            self.rule(self.limits.block),
            self.rule(self.limits.user_block),
        );
        let mut state = self.state();
        if state.sources.fail(&client, now, block) {
            log::info!(
                "SIP: credentials from {client} refused for {} s after {} failures",
                block.block / 1000,
                block.max
            );
        }
        let Some(who) = who else { return };
        if state.users.fail(who, now, user_block) {
            log::info!(
                "SIP: credentials of user {:?} (realm {:?}) refused for {} s from addresses \
                 it has not authenticated from, after {} failures",
                who.0,
                who.1,
                user_block.block / 1000,
                user_block.max
            );
        }
        if state.pairs.fail(&(who.clone(), client), now, block) {
            log::info!(
                "SIP: credentials of user {:?} from {client} refused for {} s after {} failures",
                who.0,
                block.block / 1000,
                block.max
            );
        }
    }

    /// Notes that `who` authenticated from `client`: the address is known for the user, and
    /// the pair's count starts again. (The address's and the user's counts do not: a guesser
    /// with an account of its own could otherwise clear them between guesses.)
    pub(crate) fn succeeded(&self, who: &Claimed, client: IpAddr, now: u64) {
        if !self.enabled() {
            return;
        }
        let key = (who.clone(), client);
        let cap = self.limits.max_tracked.max(1);
        let known_for = ms(self.limits.known_address_for);
        let mut state = self.state();
        state.pairs.clear(&key);
        if !state.known.contains_key(&key) && state.known.len() >= cap {
            state
                .known
                .retain(|_, at| now < at.saturating_add(known_for));
            if state.known.len() >= cap {
                let mut order: Vec<(u64, (Claimed, IpAddr))> =
                    state.known.iter().map(|(k, at)| (*at, k.clone())).collect();
                order.sort_unstable_by_key(|(at, _)| *at);
                for (_, k) in order.into_iter().take(cap / 8 + 1) {
                    state.known.remove(&k);
                }
            }
        }
        state.known.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AuthLimits {
        AuthLimits {
            max_failures: 3,
            failure_window: Duration::from_secs(60),
            block: Duration::from_secs(300),
            user_block: Duration::from_secs(60),
            known_address_for: Duration::from_secs(3600),
            max_tracked: 16,
            ..AuthLimits::default()
        }
    }

    fn who(user: &str) -> Claimed {
        (user.to_owned(), "example.test".to_owned())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_blocked_after_the_failures_of_a_window() {
        let t = Throttle::new(limits());
        let a = ip("192.0.2.1");
        // Two failures, then the window passes: the count starts again.
        t.failed(Some(&who("alice")), a, 0);
        t.failed(Some(&who("bob")), a, 1_000);
        t.failed(None, a, 61_000);
        assert_eq!(t.check(Some(&who("carol")), a, 61_000), None);
        t.failed(Some(&who("dave")), a, 62_000);
        t.failed(Some(&who("erin")), a, 63_000);
        assert_eq!(t.check(Some(&who("frank")), a, 63_000), Some(300_000));
        assert_eq!(t.check(None, a, 363_000 - 1), Some(1));
        assert_eq!(t.check(None, a, 363_000), None);
        // Another address is not concerned.
        assert_eq!(t.check(None, ip("192.0.2.2"), 63_000), None);
    }

    #[test]
    fn a_user_is_blocked_briefly_and_not_where_it_is_known() {
        let t = Throttle::new(limits());
        let home = ip("192.0.2.10");
        t.succeeded(&who("alice"), home, 0);
        for (n, from) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            .into_iter()
            .enumerate()
        {
            t.failed(Some(&who("alice")), ip(from), 1_000 + n as u64);
        }
        // Elsewhere, alice is refused for the user block; at home she is not.
        assert_eq!(
            t.check(Some(&who("alice")), ip("203.0.113.9"), 2_000),
            Some(60_000 - 2_000 + 1_002)
        );
        assert_eq!(t.check(Some(&who("alice")), home, 2_000), None);
        assert_eq!(t.check(Some(&who("bob")), ip("203.0.113.9"), 2_000), None);
        assert_eq!(
            t.check(Some(&who("alice")), ip("203.0.113.9"), 61_002),
            None
        );
        // The known address is forgotten after known_address_for.
        for n in 0..3 {
            t.failed(Some(&who("alice")), ip("198.51.100.1"), 3_600_000 + n);
        }
        assert!(t.check(Some(&who("alice")), home, 3_600_010).is_some());
    }

    #[test]
    fn the_pair_still_limits_a_known_address_and_success_clears_it() {
        let t = Throttle::new(limits());
        let nat = ip("192.0.2.20");
        t.succeeded(&who("alice"), nat, 0);
        t.failed(Some(&who("alice")), nat, 1);
        t.failed(Some(&who("alice")), nat, 2);
        t.succeeded(&who("alice"), nat, 3);
        t.failed(Some(&who("alice")), nat, 4);
        assert_eq!(t.check(Some(&who("alice")), nat, 5), None, "cleared");
        t.failed(Some(&who("alice")), nat, 6);
        t.failed(Some(&who("alice")), nat, 7);
        assert_eq!(t.check(Some(&who("alice")), nat, 8), Some(300_000 - 1));
        // The address is blocked for others too (it counted every failure).
        assert!(t.check(Some(&who("bob")), nat, 8).is_some());
    }

    #[test]
    fn tables_stay_bounded() {
        let t = Throttle::new(limits());
        for n in 0..1000u32 {
            let a = IpAddr::from(n.to_be_bytes());
            t.failed(Some(&who(&format!("u{n}"))), a, u64::from(n));
            t.succeeded(&who(&format!("u{n}")), a, u64::from(n));
        }
        let s = t.state();
        assert!(s.sources.records.len() <= 16);
        assert!(s.users.records.len() <= 16);
        assert!(s.pairs.records.len() <= 16);
        assert!(s.known.len() <= 16);
    }

    #[test]
    fn blocks_outlive_eviction_of_unblocked_entries() {
        let t = Throttle::new(limits());
        let bad = ip("192.0.2.66");
        for n in 0..3 {
            t.failed(None, bad, n);
        }
        for n in 0..100u32 {
            t.failed(None, IpAddr::from((0x0a00_0000 + n).to_be_bytes()), 10);
        }
        assert!(t.check(None, bad, 20).is_some());
    }

    #[test]
    fn off_when_max_failures_is_zero() {
        let t = Throttle::new(AuthLimits {
            max_failures: 0,
            ..limits()
        });
        let a = ip("192.0.2.1");
        for n in 0..100 {
            t.failed(Some(&who("alice")), a, n);
        }
        assert_eq!(t.check(Some(&who("alice")), a, 100), None);
    }

    #[test]
    fn front_proxy_requests_count_against_the_client() {
        let t = Throttle::new(AuthLimits {
            proxies: vec![ip("10.0.0.1")],
            ..limits()
        });
        let m = |vias: &str| {
            let text = format!(
                "REGISTER sip:example.test SIP/2.0\r\n{vias}Max-Forwards: 70\r\n\
                 From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\n\
                 Call-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            );
            SipMessage::parse(
                text.as_bytes(),
                &crate::sip::SipLimits::DEFAULT,
                crate::sip::Transport::Datagram,
            )
            .unwrap()
        };
        let proxied = m("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n\
                         Via: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKc;received=203.0.113.7;rport=4000\r\n");
        assert_eq!(
            t.client_address(ip("10.0.0.1"), &proxied),
            ip("203.0.113.7")
        );
        // Not from a listed proxy: the source, whatever the Vias say.
        assert_eq!(t.client_address(ip("10.0.0.2"), &proxied), ip("10.0.0.2"));
        let bracketed = m("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n\
                           Via: SIP/2.0/TCP [2001:db8::5]:5060;branch=z9hG4bKc\r\n");
        assert_eq!(
            t.client_address(ip("::ffff:10.0.0.1"), &bracketed),
            ip("2001:db8::")
        );
        let direct = m("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n");
        assert_eq!(t.client_address(ip("10.0.0.1"), &direct), ip("10.0.0.1"));
    }
}
