//! Who may watch a presentity (DESIGN §1 "authorization"): the engine's evaluation of the
//! per-presentity rules, [`RuleBook`].
//!
//! The rules themselves ([`AuthRule`], [`WatcherMatch`], [`AuthAction`]) and the keys that
//! identify presentities and watchers ([`presentity_key`], [`watcher_key`]) are vocabulary
//! every layer shares, so they live in [`crate::model`]; they are re-exported here under
//! their old paths.
//!
//! # Decision
//!
//! [`RuleBook::decide`] looks, in order, for:
//!
//! 1. the watcher being the presentity itself (same key): always [`AuthAction::Allow`],
//!    whatever the rules say — a presentity can always see its own state, so no rule can
//!    lock a user out of their own presence;
//! 2. a rule for exactly that watcher ([`WatcherMatch::Watcher`], by key);
//! 3. a rule for the watcher's domain ([`WatcherMatch::Domain`]): the domain equals the
//!    watcher URI's host, compared case-insensitively; subdomains do not match
//!    (`example.com` does not cover `sip:bob@lab.example.com`), and a `tel` watcher, which
//!    has no host, matches no domain rule;
//! 4. the default the caller passes: the engine passes
//!    [`crate::engine::EngineConfig::policy_for`], its `same_domain_policy` for a watcher of
//!    the presentity's own host when set, else its `default_policy`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

pub use crate::model::key::{presentity_key, watcher_key};
use crate::model::rule::RuleSlot;
pub use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
use crate::uri::Uri;

/// The rules of many presentities, keyed by [`presentity_key`]; within a presentity, at most
/// one rule per watcher key and one per (lower-cased) domain.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    by_presentity: BTreeMap<String, BTreeMap<RuleSlot, AuthRule>>,
}

impl RuleBook {
    /// An empty rule book.
    pub fn new() -> RuleBook {
        RuleBook::default()
    }

    /// Adds `rule`, replacing the rule of the same presentity for the same watcher key or
    /// domain; returns the replaced rule.
    pub fn set(&mut self, rule: AuthRule) -> Option<AuthRule> {
        let slot = rule.watcher.slot();
        self.by_presentity
            .entry(presentity_key(&rule.presentity))
            .or_default()
            .insert(slot, rule)
    }

    /// Removes the rule of `presentity` for `watcher` (by key, as [`RuleBook::set`] matches);
    /// returns whether there was one.
    pub fn remove(&mut self, presentity: &Uri, watcher: &WatcherMatch) -> bool {
        let key = presentity_key(presentity);
        let Some(rules) = self.by_presentity.get_mut(&key) else {
            return false;
        };
        let removed = rules.remove(&watcher.slot()).is_some();
        if rules.is_empty() {
            self.by_presentity.remove(&key);
        }
        removed
    }

    /// The rule of `presentity` for `watcher` (by key), if set.
    pub fn get(&self, presentity: &Uri, watcher: &WatcherMatch) -> Option<&AuthRule> {
        self.by_presentity
            .get(&presentity_key(presentity))?
            .get(&watcher.slot())
    }

    /// The rules of one presentity: watcher rules by watcher key, then domain rules by domain.
    pub fn rules_for(&self, presentity: &Uri) -> Vec<AuthRule> {
        self.by_presentity
            .get(&presentity_key(presentity))
            .map(|rules| rules.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every rule, by presentity key, then as [`RuleBook::rules_for`] orders them.
    pub fn rules(&self) -> Vec<AuthRule> {
        self.by_presentity
            .values()
            .flat_map(|rules| rules.values().cloned())
            .collect()
    }

    /// How many rules the book holds.
    pub fn len(&self) -> usize {
        self.by_presentity.values().map(BTreeMap::len).sum()
    }

    /// Whether the book holds no rule.
    pub fn is_empty(&self) -> bool {
        self.by_presentity.is_empty()
    }

    /// Whether the presentity with key `key` ([`presentity_key`]) has any rule.
    pub fn has_rules(&self, key: &str) -> bool {
        self.by_presentity.contains_key(key)
    }

    /// What to do with `watcher` asking to watch `presentity` (precedence in the module
    /// documentation): self-watch, then the watcher's rule, then its domain's, then `default`.
    pub fn decide(&self, presentity: &Uri, watcher: &Uri, default: AuthAction) -> AuthAction {
        self.ruled(presentity, watcher).unwrap_or(default)
    }

    /// Where the rule that decides `watcher` watching `presentity` sends it, when that rule
    /// is a redirect ([`AuthAction::Redirect`]).
    pub fn redirect_target(&self, presentity: &Uri, watcher: &Uri) -> Option<&Uri> {
        let key = presentity_key(presentity);
        let wkey = watcher_key(watcher);
        if key == wkey {
            return None;
        }
        let rules = self.by_presentity.get(&key)?;
        let rule = rules.get(&RuleSlot::Watcher(wkey)).or_else(|| {
            (!watcher.host().is_empty())
                .then(|| rules.get(&RuleSlot::Domain(watcher.host().to_owned())))
                .flatten()
        })?;
        rule.target.as_ref()
    }

    /// What the rules alone say of `watcher` watching `presentity` (self-watch, the
    /// watcher's rule, its domain's); `None` when none speaks of it.
    pub fn ruled(&self, presentity: &Uri, watcher: &Uri) -> Option<AuthAction> {
        let key = presentity_key(presentity);
        let wkey = watcher_key(watcher);
        if key == wkey {
            return Some(AuthAction::Allow);
        }
        let rules = self.by_presentity.get(&key)?;
        if let Some(rule) = rules.get(&RuleSlot::Watcher(wkey)) {
            return Some(rule.action);
        }
        if !watcher.host().is_empty() {
            // The canonical host is already lower-case.
            if let Some(rule) = rules.get(&RuleSlot::Domain(watcher.host().to_owned())) {
                return Some(rule.action);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    fn watcher(s: &str) -> WatcherMatch {
        WatcherMatch::Watcher(uri(s))
    }

    fn domain(s: &str) -> WatcherMatch {
        WatcherMatch::Domain(s.to_owned())
    }

    fn rule(p: &str, m: WatcherMatch, a: AuthAction) -> AuthRule {
        AuthRule::new(uri(p), m, a)
    }

    const ALICE: &str = "sip:alice@example.test";

    #[test]
    fn precedence_watcher_then_domain_then_default() {
        let mut book = RuleBook::new();
        let bob = uri("sip:bob@corp.test");
        let carol = uri("sip:carol@corp.test");
        let dave = uri("sip:dave@elsewhere.test");
        assert_eq!(
            book.decide(&uri(ALICE), &bob, AuthAction::Confirm),
            AuthAction::Confirm
        );

        book.set(rule(ALICE, domain("corp.test"), AuthAction::Allow));
        book.set(rule(ALICE, watcher("sip:bob@corp.test"), AuthAction::Block));
        assert_eq!(
            book.decide(&uri(ALICE), &bob, AuthAction::Confirm),
            AuthAction::Block
        );
        assert_eq!(
            book.decide(&uri(ALICE), &carol, AuthAction::Confirm),
            AuthAction::Allow
        );
        assert_eq!(
            book.decide(&uri(ALICE), &dave, AuthAction::Confirm),
            AuthAction::Confirm
        );
        // Another presentity's rules do not apply.
        let zed = uri("sip:zed@example.test");
        assert_eq!(
            book.decide(&zed, &bob, AuthAction::PoliteBlock),
            AuthAction::PoliteBlock
        );
        // The presentity is matched by key: pres: and sip: are the same presentity.
        assert_eq!(
            book.decide(&uri("pres:alice@example.test"), &bob, AuthAction::Confirm),
            AuthAction::Block
        );
    }

    #[test]
    fn set_replaces_the_same_slot() {
        let mut book = RuleBook::new();
        assert!(book
            .set(rule(ALICE, watcher("sip:bob@x"), AuthAction::Block))
            .is_none());
        // Same watcher by key (other scheme, parameters) and same presentity by key.
        let old = book.set(rule(
            "pres:alice@example.test",
            watcher("pres:bob@x"),
            AuthAction::PoliteBlock,
        ));
        assert_eq!(old.unwrap().action, AuthAction::Block);
        book.set(rule(ALICE, domain("X"), AuthAction::Allow));
        let old = book.set(rule(ALICE, domain("x"), AuthAction::Confirm));
        assert_eq!(old.unwrap().action, AuthAction::Allow);
        assert_eq!(book.len(), 2);
        let rules = book.rules_for(&uri(ALICE));
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action, AuthAction::PoliteBlock);
        assert_eq!(rules[0].watcher, watcher("pres:bob@x"));
        assert_eq!(rules[1].watcher, domain("x"));
        assert_eq!(rules[1].action, AuthAction::Confirm);
        assert_eq!(
            book.decide(
                &uri(ALICE),
                &uri("sip:bob@x;transport=tcp"),
                AuthAction::Allow
            ),
            AuthAction::PoliteBlock
        );
        // A watcher rule and a domain rule never share a slot.
        assert!(book.get(&uri(ALICE), &domain("x")).is_some());
        assert!(book.get(&uri(ALICE), &watcher("sip:x")).is_none());
    }

    #[test]
    fn remove_by_key() {
        let mut book = RuleBook::new();
        book.set(rule(ALICE, watcher("sip:bob@x"), AuthAction::Block));
        book.set(rule(ALICE, domain("Corp.test"), AuthAction::Block));
        assert!(!book.remove(&uri(ALICE), &watcher("sip:carol@x")));
        assert!(!book.remove(&uri("sip:zed@x"), &watcher("sip:bob@x")));
        assert!(book.remove(&uri("pres:alice@example.test"), &watcher("sips:bob@x;lr")));
        assert!(!book.remove(&uri(ALICE), &watcher("sip:bob@x")));
        assert!(book.remove(&uri(ALICE), &domain("CORP.TEST")));
        assert!(book.is_empty());
        assert_eq!(book.len(), 0);
        assert!(book.rules_for(&uri(ALICE)).is_empty());
        assert_eq!(
            book.decide(&uri(ALICE), &uri("sip:bob@x"), AuthAction::Confirm),
            AuthAction::Confirm
        );
    }

    #[test]
    fn domains_compare_case_insensitively_and_exactly() {
        let mut book = RuleBook::new();
        book.set(rule(ALICE, domain("Corp.Test"), AuthAction::Block));
        let d = AuthAction::Allow;
        assert_eq!(
            book.decide(&uri(ALICE), &uri("sip:bob@CORP.test"), d),
            AuthAction::Block
        );
        assert_eq!(
            book.decide(&uri(ALICE), &uri("pres:bob@corp.test"), d),
            AuthAction::Block
        );
        assert_eq!(
            book.decide(&uri(ALICE), &uri("sip:bob@lab.corp.test"), d),
            d
        );
        assert_eq!(
            book.decide(&uri(ALICE), &uri("sip:bob@corp.test.evil"), d),
            d
        );
        assert!(domain("CORP.TEST").matches(&uri("sip:x@corp.test")));
        assert!(!domain("").matches(&uri("tel:+12125550100")));
        // A tel watcher has no host and matches no domain rule, not even an empty one.
        book.set(rule(ALICE, domain(""), AuthAction::Block));
        assert_eq!(book.decide(&uri(ALICE), &uri("tel:+12125550100"), d), d);
    }

    #[test]
    fn watcher_rules_match_by_address_of_record() {
        let mut book = RuleBook::new();
        book.set(rule(ALICE, watcher("sip:bob@x"), AuthAction::Block));
        let d = AuthAction::Allow;
        for w in [
            "sip:bob@x;transport=tcp",
            "sip:bob@X:5060",
            "sips:bob@x",
            "pres:bob@x",
            "im:bob@x",
            "sip:bob@x?subject=hi",
        ] {
            assert_eq!(
                book.decide(&uri(ALICE), &uri(w), d),
                AuthAction::Block,
                "{w}"
            );
        }
        // The user part is case-sensitive; another host is another watcher.
        assert_eq!(book.decide(&uri(ALICE), &uri("sip:Bob@x"), d), d);
        assert_eq!(book.decide(&uri(ALICE), &uri("sip:bob@y"), d), d);
        assert!(watcher("pres:bob@x").matches(&uri("sip:bob@x;transport=udp")));
    }

    #[test]
    fn the_presentity_may_always_watch_itself() {
        let mut book = RuleBook::new();
        book.set(rule(ALICE, watcher(ALICE), AuthAction::Block));
        book.set(rule(ALICE, domain("example.test"), AuthAction::Block));
        for w in [
            ALICE,
            "pres:alice@example.test",
            "sip:alice@EXAMPLE.test;gr=x",
        ] {
            assert_eq!(
                book.decide(&uri(ALICE), &uri(w), AuthAction::Block),
                AuthAction::Allow,
                "{w}"
            );
        }
        let tel = uri("tel:+12125550100");
        assert_eq!(
            book.decide(&tel, &tel, AuthAction::Block),
            AuthAction::Allow
        );
    }

    #[test]
    fn rules_lists_every_presentity() {
        let mut book = RuleBook::new();
        book.set(rule("sip:b@x", watcher("sip:c@x"), AuthAction::Block));
        book.set(rule("sip:a@x", domain("y"), AuthAction::Confirm));
        book.set(rule("sip:a@x", watcher("sip:d@x"), AuthAction::Allow));
        let all = book.rules();
        let keys: Vec<String> = all.iter().map(|r| presentity_key(&r.presentity)).collect();
        assert_eq!(keys, ["a@x", "a@x", "b@x"]);
        assert_eq!(all[0].watcher, watcher("sip:d@x"));
        assert_eq!(book.len(), 3);
    }

    #[test]
    fn loaded_rules_rebuild_the_same_decisions() {
        use crate::store::{MemoryStore, Store};
        let store = MemoryStore::new();
        store
            .save_rule(&rule(
                "sip:alice@x",
                WatcherMatch::Domain("corp.test".into()),
                AuthAction::Block,
            ))
            .unwrap();
        let mut book = RuleBook::new();
        for r in store.load_rules().unwrap() {
            book.set(r);
        }
        assert_eq!(
            book.decide(
                &uri("sip:alice@x"),
                &uri("sip:eve@corp.test"),
                AuthAction::Allow
            ),
            AuthAction::Block
        );
    }

    #[test]
    fn the_memory_store_keeps_rules_as_the_book_does() {
        use crate::store::{MemoryStore, Store};
        // The same saves and deletes, in a store and in a book: the same rules (replaced by
        // the same identity), in the same order.
        let store = MemoryStore::new();
        let mut book = RuleBook::new();
        let saves = [
            rule("sip:b@x", watcher("sip:c@x"), AuthAction::Block),
            rule("sip:a@x", domain("Y"), AuthAction::Confirm),
            rule("sip:a@x", watcher("sip:d@x"), AuthAction::Allow),
            rule("pres:a@x", watcher("sips:d@x;lr"), AuthAction::PoliteBlock),
            rule("sip:a@x", domain("y"), AuthAction::Block),
            rule("sip:a@x", watcher("sip:a@y"), AuthAction::Block),
            rule("tel:+12125550100", domain("x"), AuthAction::Allow),
        ];
        for r in saves {
            store.save_rule(&r).unwrap();
            book.set(r);
        }
        store
            .delete_rule(&uri("sip:b@x"), &watcher("pres:c@x"))
            .unwrap();
        book.remove(&uri("sip:b@x"), &watcher("pres:c@x"));
        assert_eq!(store.load_rules().unwrap(), book.rules());
        assert_eq!(book.len(), 4);
    }
}
