//! The in-memory [`Store`]: nothing survives the process, everything else behaves like a
//! persistent store.
#![forbid(unsafe_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Store;
use crate::engine::authorization::{AuthRule, RuleBook, WatcherMatch};
use crate::error::Result;
use crate::uri::Uri;

/// A [`Store`] in memory. Rules are kept in a [`RuleBook`], so the store and the engine
/// agree on what makes two rules the same; [`Store::load_rules`] returns them in
/// [`RuleBook::rules`] order (by presentity key, then watcher rules, then domain rules).
#[derive(Debug, Default)]
pub struct MemoryStore {
    rules: Mutex<RuleBook>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The rule book. Each operation is one map update that cannot be left half done, so a
    /// panic elsewhere while the lock was held leaves the book consistent: poisoning is
    /// ignored.
    fn rules(&self) -> MutexGuard<'_, RuleBook> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn save_rule(&self, rule: &AuthRule) -> Result<()> {
        self.rules().set(rule.clone());
        Ok(())
    }

    fn delete_rule(&self, presentity: &Uri, watcher: &WatcherMatch) -> Result<()> {
        self.rules().remove(presentity, watcher);
        Ok(())
    }

    fn load_rules(&self) -> Result<Vec<AuthRule>> {
        Ok(self.rules().rules())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::authorization::AuthAction;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    fn rule(p: &str, m: WatcherMatch, a: AuthAction) -> AuthRule {
        AuthRule::new(uri(p), m, a)
    }

    #[test]
    fn starts_empty() {
        assert!(MemoryStore::new().load_rules().unwrap().is_empty());
    }

    #[test]
    fn save_replace_delete_load() {
        let store = MemoryStore::new();
        let bob = WatcherMatch::Watcher(uri("sip:bob@x"));
        let corp = WatcherMatch::Domain("corp.test".into());
        store
            .save_rule(&rule("sip:alice@x", bob.clone(), AuthAction::Block))
            .unwrap();
        store
            .save_rule(&rule("sip:alice@x", corp.clone(), AuthAction::Allow))
            .unwrap();
        store
            .save_rule(&rule("sip:carol@x", bob.clone(), AuthAction::Confirm))
            .unwrap();
        assert_eq!(store.load_rules().unwrap().len(), 3);

        // Same presentity and watcher by key: replaced, not added.
        let replacement = rule(
            "pres:alice@x",
            WatcherMatch::Watcher(uri("sip:bob@x;transport=tcp")),
            AuthAction::PoliteBlock,
        );
        store.save_rule(&replacement).unwrap();
        let rules = store.load_rules().unwrap();
        assert_eq!(
            rules,
            vec![
                replacement.clone(),
                rule("sip:alice@x", corp.clone(), AuthAction::Allow),
                rule("sip:carol@x", bob.clone(), AuthAction::Confirm),
            ]
        );

        store
            .delete_rule(
                &uri("sip:alice@x"),
                &WatcherMatch::Domain("CORP.test".into()),
            )
            .unwrap();
        // Deleting what is not stored is fine.
        store.delete_rule(&uri("sip:alice@x"), &corp).unwrap();
        store.delete_rule(&uri("sip:nobody@x"), &bob).unwrap();
        assert_eq!(
            store.load_rules().unwrap(),
            vec![
                replacement,
                rule("sip:carol@x", bob.clone(), AuthAction::Confirm)
            ]
        );
        store.delete_rule(&uri("sip:alice@x"), &bob).unwrap();
        store.delete_rule(&uri("sip:carol@x"), &bob).unwrap();
        assert!(store.load_rules().unwrap().is_empty());
    }

    #[test]
    fn loaded_rules_rebuild_the_same_decisions() {
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
    fn shared_between_threads() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for j in 0..25 {
                        let w = WatcherMatch::Watcher(uri(&format!("sip:w{j}@x")));
                        store
                            .save_rule(&rule(&format!("sip:p{i}@x"), w, AuthAction::Allow))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(store.load_rules().unwrap().len(), 100);
    }
}
