//! Restart: what the store kept, split among the shards that own it.
//!
//! An engine opened on a store that holds state takes it back: rules, endpoints,
//! publications and stored messages each go to the shard of their presentity or user (the
//! shard count may differ from the last run). Soft state whose time passed while the engine
//! was down expires at once, with the normal events (a publication's `PublicationExpired`,
//! an endpoint's `EndpointExpired`, a message's `Failed(Expired)` for its sender); messages
//! for users with an endpoint still logged in are delivered at once.
//!
//! The list server's dialogs are not split: no shard owns them. The engine keeps them whole
//! until the list server takes them (`Core::take_stored_list_dialogs`), and ending those whose
//! time passed is the list server's, which knows what each one holds.
#![forbid(unsafe_code)]

use super::shard::shard_of;
use crate::model::key::presentity_key;
use crate::model::rule::AuthRule;
use crate::store::{
    EndpointRecord, PublicationRecord, Snapshot, Store, StoredMessage, SubscriptionRecord, Write,
};
use crate::uri::Uri;

/// One shard's share of a [`Snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) rules: Vec<AuthRule>,
    /// In id order.
    pub(crate) messages: Vec<StoredMessage>,
    pub(crate) endpoints: Vec<EndpointRecord>,
    /// In presentity, then recency order.
    pub(crate) publications: Vec<PublicationRecord>,
    /// Subscriptions of remote watchers, their ids fitting the shard.
    pub(crate) subscriptions: Vec<SubscriptionRecord>,
}

/// Splits a snapshot among `workers` shards (orders within each kind are kept). A
/// subscription id names its shard (`id % workers`); one that does not fit the shard of its
/// presentity (the shard count changed) is given a new id, and its old row deleted (the
/// shard writes the new one). Returns the shares and the first subscription number
/// (`id / workers`) not used.
pub(crate) fn split(snapshot: Snapshot, workers: usize, store: &dyn Store) -> (Vec<Restored>, u64) {
    let k = workers as u64;
    let mut parts: Vec<Restored> = (0..workers).map(|_| Restored::default()).collect();
    let shard = |uri: &Uri| shard_of(&presentity_key(uri), workers);
    for rule in snapshot.rules {
        let s = shard(&rule.presentity);
        parts[s].rules.push(rule);
    }
    for m in snapshot.messages {
        let s = shard(&m.recipient);
        parts[s].messages.push(m);
    }
    for e in snapshot.endpoints {
        let s = shard(&e.user);
        parts[s].endpoints.push(e);
    }
    for p in snapshot.publications {
        let s = shard(&p.presentity);
        parts[s].publications.push(p);
    }
    let mut next = snapshot
        .subscriptions
        .iter()
        .map(|s| s.id / k + 1)
        .max()
        .unwrap_or(1);
    for mut sub in snapshot.subscriptions {
        let s = shard(&sub.presentity);
        if sub.id % k != s as u64 {
            let new_id = next * k + s as u64;
            next += 1;
            store.submit(Write::DeleteSubscription(sub.id), None);
            sub.id = new_id;
        }
        parts[s].subscriptions.push(sub);
    }
    (parts, next)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::engine::{Engine, EngineConfig, ManualClock};
    use crate::model::package::Package;
    use crate::store::{ListDialogRecord, MemoryStore, SqliteStore, Store};
    use crate::uri::Uri;

    /// A fresh directory for one test, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "impp-restore-{test}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dialog(id: u64, record: &[u8]) -> ListDialogRecord {
        ListDialogRecord {
            id,
            watcher: Uri::parse("sip:bob@example.test").unwrap(),
            package: Package::Dialog,
            expires_at: 1_700_000_003_600 + id,
            record: record.to_vec(),
        }
    }

    fn open_engine(store: Arc<dyn Store>) -> Engine {
        Engine::new(EngineConfig {
            workers: 2,
            clock: ManualClock::new(),
            store,
            ..EngineConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn list_dialogs_saved_by_one_engine_are_given_once_to_the_next_on_the_same_file() {
        let dir = TempDir::new("list-dialogs");
        let path = dir.0.join("impp.db");
        {
            let engine = open_engine(Arc::new(SqliteStore::open(&path).unwrap()));
            assert!(engine.take_stored_list_dialogs().is_empty());
            engine.save_list_dialog(dialog(7, b"first"));
            engine.save_list_dialog(dialog(3, &[0, 0xff, 1]));
            engine.save_list_dialog(dialog(9, b"ends"));
            // Replaced by id, deleted by id, deleting twice or what was never saved is fine.
            engine.save_list_dialog(dialog(7, b"refreshed"));
            engine.delete_list_dialog(9);
            engine.delete_list_dialog(9);
            engine.delete_list_dialog(1234);
            engine.shutdown().unwrap();
            // The engine and its store are dropped here: the store thread finishes what is
            // queued (the writes were not waited for) and closes the file.
        }
        let engine = open_engine(Arc::new(SqliteStore::open(&path).unwrap()));
        assert_eq!(
            engine.take_stored_list_dialogs(),
            vec![dialog(3, &[0, 0xff, 1]), dialog(7, b"refreshed")]
        );
        assert!(engine.take_stored_list_dialogs().is_empty());
        // Taking them does not delete them: until the list server does, they stay stored.
        drop(engine);
        let engine = open_engine(Arc::new(SqliteStore::open(&path).unwrap()));
        assert_eq!(engine.take_stored_list_dialogs().len(), 2);
    }

    #[test]
    fn a_store_without_soft_state_is_given_no_list_dialog() {
        let volatile = Arc::new(MemoryStore::volatile());
        let engine = open_engine(volatile.clone());
        engine.save_list_dialog(dialog(1, b"x"));
        assert!(volatile.load().unwrap().list_dialogs.is_empty());

        let kept = Arc::new(MemoryStore::new());
        let engine = open_engine(kept.clone());
        engine.save_list_dialog(dialog(1, b"x"));
        assert_eq!(kept.load().unwrap().list_dialogs, vec![dialog(1, b"x")]);
        engine.delete_list_dialog(1);
        assert!(kept.load().unwrap().list_dialogs.is_empty());
    }
}
