//! Resource lists held by the engine (the Rust API): set, replace, get, list, expand and
//! remove; the rules between lists refused with a clear error and nothing changed; the owned
//! domains; durability (a list is acknowledged once stored, and a store that refuses changes
//! nothing); and the lists taken back from a SQLite file at start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use impp::engine::{Engine, EngineConfig, ListEntry, ManualClock, Package, Resource, ResourceList};
use impp::error::Error;
use impp::store::{Completion, MemoryStore, Snapshot, SqliteStore, Store, Write};
use impp::uri::Uri;

fn uri(s: &str) -> Uri {
    Uri::parse(s).unwrap()
}

fn config(store: Arc<dyn Store>) -> EngineConfig {
    EngineConfig {
        workers: 2,
        domains: vec!["example.test".into()],
        clock: ManualClock::new(),
        store,
        ..EngineConfig::default()
    }
}

/// `sip:NAME@example.test` with resources `sip:R@example.test` and references to the
/// lists `sip:L@example.test`.
fn list(name: &str, resources: &[&str], references: &[&str]) -> ResourceList {
    let mut l = ResourceList::new(uri(&format!("sip:{name}@example.test")));
    for r in resources {
        l.push_resource(uri(&format!("sip:{r}@example.test")), None);
    }
    for r in references {
        l.push_reference(uri(&format!("sip:{r}@example.test")));
    }
    l
}

fn users(resources: &[Resource]) -> Vec<&str> {
    resources.iter().map(|r| r.uri.user().unwrap()).collect()
}

fn invalid(result: impp::Result<()>) -> String {
    match result {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn lists_are_set_read_expanded_and_removed() {
    let engine = Engine::new(config(Arc::new(MemoryStore::new()))).unwrap();
    assert!(engine.lists().is_empty());

    let mut sales = list("sales-blf", &[], &["support-blf", "nowhere"]);
    sales.display_name = Some("Sales".into());
    sales.packages = vec![Package::Dialog, Package::Presence];
    sales.entries.insert(
        0,
        ListEntry::Resource(Resource::named(uri("sip:alice@example.test"), "Alice")),
    );
    engine.set_list(sales.clone()).unwrap();
    engine
        .set_list(list("support-blf", &["bob", "alice", "carol"], &[]))
        .unwrap();

    // Read back as set (packages in order), by any URI of the same key.
    let got = engine.list(&uri("pres:sales-blf@example.test")).unwrap();
    assert_eq!(got.entries, sales.entries);
    assert_eq!(got.display_name.as_deref(), Some("Sales"));
    assert_eq!(got.packages, vec![Package::Presence, Package::Dialog]);
    // A list set without packages serves presence.
    let support = engine.list(&uri("sip:support-blf@example.test")).unwrap();
    assert_eq!(support.packages, vec![Package::Presence]);
    // By key.
    let all: Vec<String> = engine.lists().iter().map(|l| l.uri.to_string()).collect();
    assert_eq!(
        all,
        ["sip:sales-blf@example.test", "sip:support-blf@example.test"]
    );

    // Expanded: in order, once each (the first display name kept), missing lists skipped.
    let resources = engine
        .expand_list(&uri("sip:sales-blf@example.test"))
        .unwrap();
    assert_eq!(users(&resources), ["alice", "bob", "carol"]);
    assert_eq!(resources[0].display_name.as_deref(), Some("Alice"));
    assert!(matches!(
        engine.expand_list(&uri("sip:nobody@example.test")),
        Err(Error::NotFound(_))
    ));

    // Replaced.
    engine
        .set_list(list("support-blf", &["dave"], &[]))
        .unwrap();
    assert_eq!(
        users(
            &engine
                .expand_list(&uri("sip:sales-blf@example.test"))
                .unwrap()
        ),
        ["alice", "dave"]
    );

    // Removed: the reference stays and expands to nothing.
    assert!(engine
        .remove_list(&uri("sip:support-blf@example.test"))
        .unwrap());
    assert!(!engine
        .remove_list(&uri("sip:support-blf@example.test"))
        .unwrap());
    assert_eq!(
        users(
            &engine
                .expand_list(&uri("sip:sales-blf@example.test"))
                .unwrap()
        ),
        ["alice"]
    );
    assert!(engine.list(&uri("sip:support-blf@example.test")).is_none());
}

#[test]
fn bad_lists_are_refused_and_change_nothing() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(config(store.clone())).unwrap();
    engine.set_list(list("a", &["r"], &["b"])).unwrap();
    engine.set_list(list("b", &["s"], &["c"])).unwrap();
    let before = engine.lists();
    let stored = store.load().unwrap().lists;
    assert_eq!(stored, before);

    let cycle = invalid(engine.set_list(list("c", &[], &["a"])));
    assert!(
        cycle.contains(
            "sip:c@example.test -> sip:a@example.test -> sip:b@example.test -> sip:c@example.test is a cycle"
        ),
        "{cycle}"
    );
    let twice = invalid(engine.set_list(list("a", &["r", "r"], &[])));
    assert!(
        twice.contains("names resource sip:r@example.test twice"),
        "{twice}"
    );
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let long = invalid(engine.set_list(list("a", &many, &[])));
    assert!(long.contains("at most 500"), "{long}");
    let mut wrong = list("a", &[], &[]);
    wrong.packages = vec![Package::PresenceWinfo];
    assert!(invalid(engine.set_list(wrong)).contains("presence or dialog"));
    // Another domain's list is not the engine's to serve.
    match engine.set_list(ResourceList::new(uri("sip:team@other.test"))) {
        Err(Error::Forbidden(m)) => assert!(m.contains("sip:team@other.test"), "{m}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    // Replacing the whole set with one that breaks a rule.
    let replaced = engine.replace_lists(vec![list("a", &[], &["b"]), list("b", &[], &["a"])]);
    assert!(invalid(replaced).contains("is a cycle"));

    assert_eq!(engine.lists(), before);
    assert_eq!(store.load().unwrap().lists, before);
}

#[test]
fn replacing_every_list_at_once_passes_through_no_broken_state() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(config(store.clone())).unwrap();
    engine.set_list(list("a", &["r"], &["b"])).unwrap();
    engine.set_list(list("b", &["s"], &[])).unwrap();
    engine.set_list(list("gone", &["t"], &[])).unwrap();
    // b -> a is a cycle with the current a, but not with the new one: set one by one, the
    // first change would be refused; together they are fine.
    let wanted = vec![list("a", &["r"], &[]), list("b", &["s"], &["a"])];
    assert!(engine.set_list(wanted[1].clone()).is_err());
    engine.replace_lists(wanted).unwrap();
    let now = engine.lists();
    assert_eq!(
        now.iter()
            .map(|l| l.uri.user().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        users(&engine.expand_list(&uri("sip:b@example.test")).unwrap()),
        ["s", "r"]
    );
    assert_eq!(store.load().unwrap().lists, now);
}

/// A store whose list writes are refused while `refuse` is set, counting every list write
/// and answering each only after it was applied.
#[derive(Default)]
struct Refusing {
    inner: MemoryStore,
    refuse: AtomicBool,
    list_writes: AtomicUsize,
}

impl Store for Refusing {
    fn submit(&self, write: Write, done: Option<Completion>) {
        let is_list = matches!(write, Write::SaveList(_) | Write::DeleteList(_));
        if is_list {
            self.list_writes.fetch_add(1, Ordering::SeqCst);
            if self.refuse.load(Ordering::SeqCst) {
                if let Some(done) = done {
                    done(Err(Error::Storage("disk full".into())));
                }
                return;
            }
        }
        self.inner.submit(write, done);
    }

    fn load(&self) -> impp::Result<Snapshot> {
        self.inner.load()
    }
}

#[test]
fn a_list_is_acknowledged_once_stored_and_a_refusing_store_changes_nothing() {
    let store = Arc::new(Refusing::default());
    let engine = Engine::new(config(store.clone())).unwrap();
    engine.set_list(list("a", &["r"], &[])).unwrap();
    // Acknowledged: already in the store.
    assert_eq!(store.inner.load().unwrap().lists.len(), 1);

    store.refuse.store(true, Ordering::SeqCst);
    match engine.set_list(list("a", &["changed"], &[])) {
        Err(Error::Storage(m)) => assert!(m.contains("disk full"), "{m}"),
        other => panic!("expected Storage, got {other:?}"),
    }
    assert!(matches!(
        engine.remove_list(&uri("sip:a@example.test")),
        Err(Error::Storage(_))
    ));
    assert!(matches!(
        engine.set_list(list("new", &[], &[])),
        Err(Error::Storage(_))
    ));
    assert_eq!(
        users(&engine.expand_list(&uri("sip:a@example.test")).unwrap()),
        ["r"]
    );
    assert!(engine.list(&uri("sip:new@example.test")).is_none());

    // A refused check never reaches the store.
    let writes = store.list_writes.load(Ordering::SeqCst);
    assert!(engine.set_list(list("b", &[], &["b"])).is_err());
    assert_eq!(store.list_writes.load(Ordering::SeqCst), writes);
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

#[test]
fn lists_survive_a_restart_in_a_sqlite_file() {
    let file = TempFile(
        std::env::temp_dir().join(format!("impp-lists-restart-{}.db", std::process::id())),
    );
    let mut blf = list("blf", &[], &["team"]);
    blf.display_name = Some("Busy lamps".into());
    blf.packages = vec![Package::Dialog];
    blf.entries.push(ListEntry::Resource(Resource::named(
        uri("sips:boss@example.test;transport=tls"),
        "The Boss",
    )));
    {
        let engine = Engine::new(config(Arc::new(SqliteStore::open(&file.0).unwrap()))).unwrap();
        engine.set_list(blf.clone()).unwrap();
        engine.set_list(list("team", &["a", "b"], &[])).unwrap();
        engine.set_list(list("old", &["c"], &[])).unwrap();
        assert!(engine.remove_list(&uri("sip:old@example.test")).unwrap());
    }
    let store = Arc::new(SqliteStore::open(&file.0).unwrap());
    // A list of a domain the next engine does not own stays in the store, unserved.
    store
        .write(Write::SaveList(ResourceList::new(uri(
            "sip:x@elsewhere.test",
        ))))
        .unwrap();
    let engine = Engine::new(config(store)).unwrap();
    let lists = engine.lists();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0], blf);
    assert_eq!(
        users(&engine.expand_list(&uri("sip:blf@example.test")).unwrap()),
        ["a", "b", "boss"]
    );
}
