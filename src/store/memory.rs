//! The in-memory [`Store`]: nothing survives the process, everything else behaves like a
//! persistent store (same identities, same load order). Completions run in the caller,
//! before [`Store::submit`] returns.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    Completion, Credential, EndpointRecord, ListDialogRecord, PublicationRecord, Snapshot, Store,
    StoredMessage, SubscriptionRecord, Write,
};
use crate::error::Result;
use crate::model::key::presentity_key;
use crate::model::list::ResourceList;
use crate::model::rule::{AuthRule, RuleSlot};

/// A [`Store`] in memory. Rules are keyed by their identity as [`crate::model::rule`]
/// defines it (presentity key and slot), the same as the engine's and the SQLite store's.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Soft state is not wanted ([`MemoryStore::volatile`]).
    volatile: bool,
}

#[derive(Debug, Default)]
struct State {
    /// By (presentity key, slot): the order [`Snapshot::rules`] lists them in.
    rules: BTreeMap<(String, RuleSlot), AuthRule>,
    messages: BTreeMap<u64, StoredMessage>,
    endpoints: BTreeMap<(String, String), EndpointRecord>,
    publications: HashMap<String, PublicationRecord>,
    subscriptions: BTreeMap<u64, SubscriptionRecord>,
    credentials: BTreeMap<String, Credential>,
    lists: BTreeMap<String, ResourceList>,
    list_dialogs: BTreeMap<u64, ListDialogRecord>,
}

impl MemoryStore {
    /// An empty store that keeps everything, soft state included: an engine opened later on
    /// the same store (in the same process) takes it all back, as from a file.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store that declines soft state ([`Store::keeps_soft_state`] is false):
    /// rules, lists, messages and credentials only (no publications, endpoints, remote
    /// subscriptions or list dialogs). The engine's default, where nothing outlives the
    /// engine and serializing every publication would be wasted work.
    pub fn volatile() -> MemoryStore {
        MemoryStore {
            volatile: true,
            ..MemoryStore::default()
        }
    }

    /// The state. Each write is a map update that cannot be left half done, so a panic
    /// elsewhere while the lock was held leaves it consistent: poisoning is ignored.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn apply(&mut self, write: Write) {
        match write {
            Write::SaveRule(rule) => {
                let key = (presentity_key(&rule.presentity), rule.watcher.slot());
                self.rules.insert(key, rule);
            }
            Write::DeleteRule {
                presentity,
                watcher,
            } => {
                self.rules
                    .remove(&(presentity_key(&presentity), watcher.slot()));
            }
            Write::SaveMessage(m) => {
                self.messages.insert(m.id, m);
            }
            Write::DeleteMessage(id) => {
                self.messages.remove(&id);
            }
            Write::SaveEndpoint(e) => {
                self.endpoints
                    .insert((presentity_key(&e.user), e.endpoint.clone()), e);
            }
            Write::DeleteEndpoint { user, endpoint } => {
                self.endpoints.remove(&(presentity_key(&user), endpoint));
            }
            Write::SavePublication {
                publication,
                previous_etag,
            } => {
                if let Some(old) = previous_etag {
                    self.publications.remove(&old);
                }
                self.publications
                    .insert(publication.etag.clone(), publication);
            }
            Write::DeletePublication(etag) => {
                self.publications.remove(&etag);
            }
            Write::SaveSubscription(s) => {
                self.subscriptions.insert(s.id, s);
            }
            Write::DeleteSubscription(id) => {
                self.subscriptions.remove(&id);
            }
            Write::SaveCredential(c) => {
                self.credentials.insert(presentity_key(&c.user), c);
            }
            Write::DeleteCredential(user) => {
                self.credentials.remove(&presentity_key(&user));
            }
            Write::SaveList(list) => {
                self.lists.insert(list.key(), list);
            }
            Write::DeleteList(uri) => {
                self.lists.remove(&presentity_key(&uri));
            }
            Write::SaveListDialog(d) => {
                self.list_dialogs.insert(d.id, d);
            }
            Write::DeleteListDialog(id) => {
                self.list_dialogs.remove(&id);
            }
        }
    }
}

impl Store for MemoryStore {
    fn flush(&self) -> Result<()> {
        Ok(()) // every write is applied, and its completion run, before `submit` returns
    }

    fn submit(&self, write: Write, done: Option<Completion>) {
        self.state().apply(write);
        if let Some(done) = done {
            done(Ok(()));
        }
    }

    fn keeps_soft_state(&self) -> bool {
        !self.volatile
    }

    fn load(&self) -> Result<Snapshot> {
        let state = self.state();
        let mut publications: Vec<PublicationRecord> =
            state.publications.values().cloned().collect();
        // Ties (same presentity key and seq) by etag, so the order is deterministic (and the
        // same as the SQLite store's).
        publications.sort_by_cached_key(|p| (presentity_key(&p.presentity), p.seq, p.etag.clone()));
        Ok(Snapshot {
            rules: state.rules.values().cloned().collect(),
            messages: state.messages.values().cloned().collect(),
            endpoints: state.endpoints.values().cloned().collect(),
            publications,
            subscriptions: state.subscriptions.values().cloned().collect(),
            credentials: state.credentials.values().cloned().collect(),
            lists: state.lists.values().cloned().collect(),
            list_dialogs: state.list_dialogs.values().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::rule::{AuthAction, WatcherMatch};
    use crate::uri::Uri;

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
    fn list_dialogs_save_replace_delete_load_by_id() {
        let store = MemoryStore::new();
        let dialog = |id: u64, record: &[u8]| super::super::ListDialogRecord {
            id,
            watcher: uri("sip:bob@x"),
            package: crate::model::package::Package::Presence,
            expires_at: 1_000 + id,
            record: record.to_vec(),
        };
        for d in [dialog(5, b"five"), dialog(2, b"two"), dialog(9, b"nine")] {
            store.write(Write::SaveListDialog(d)).unwrap();
        }
        store.write(Write::SaveListDialog(dialog(5, b"5"))).unwrap();
        store.write(Write::DeleteListDialog(9)).unwrap();
        store.write(Write::DeleteListDialog(9)).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded.list_dialogs,
            vec![dialog(2, b"two"), dialog(5, b"5")]
        );
        assert_eq!(
            loaded,
            Snapshot {
                list_dialogs: loaded.list_dialogs.clone(),
                ..Snapshot::default()
            }
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
