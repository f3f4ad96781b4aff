//! The SQLite store: the `Store` contract, reopening, the schema version, group commit, bad
//! files, an engine restarted on the same file, and the C setter.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use impp::engine::authorization::{AuthAction, AuthRule, WatcherMatch};
use impp::engine::{
    Engine, EngineConfig, ManualClock, Package, SubscribeRequest, SubscriptionState,
};
use impp::error::Error;
use impp::store::sqlite::MIGRATIONS;
use impp::store::{MemoryStore, SqliteStore, Store};
use impp::uri::Uri;

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "impp-store-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uri(s: &str) -> Uri {
    Uri::parse(s).unwrap()
}

fn rule(p: &str, m: WatcherMatch, a: AuthAction) -> AuthRule {
    AuthRule::new(uri(p), m, a)
}

fn contract(store: &dyn Store) {
    assert!(store.load_rules().unwrap().is_empty());
    let bob = WatcherMatch::Watcher(uri("sip:bob@x"));
    let corp = WatcherMatch::Domain("Corp.test".into());
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

    // Same presentity and watcher by key: replaced, not added; the new URIs are kept as given.
    let replacement = rule(
        "pres:alice@x",
        WatcherMatch::Watcher(uri("sip:bob@x;transport=tcp")),
        AuthAction::PoliteBlock,
    );
    store.save_rule(&replacement).unwrap();
    assert_eq!(
        store.load_rules().unwrap(),
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
    store.delete_rule(&uri("im:alice@x"), &bob).unwrap();
    store.delete_rule(&uri("sip:carol@x"), &bob).unwrap();
    assert!(store.load_rules().unwrap().is_empty());
}

#[test]
fn follows_the_store_contract_in_memory_and_in_a_file() {
    contract(&MemoryStore::new());
    contract(&SqliteStore::in_memory().unwrap());
    let dir = TempDir::new("contract");
    contract(&SqliteStore::open(dir.file("impp.db")).unwrap());
}

#[test]
fn loads_in_the_same_order_as_the_memory_store() {
    let memory = MemoryStore::new();
    let sqlite = SqliteStore::in_memory().unwrap();
    let presentities = [
        "sip:alice@x",
        "sip:Alice@x",
        "tel:+12125550100",
        "sip:zed@a",
    ];
    let watchers = [
        WatcherMatch::Watcher(uri("sip:bob@x")),
        WatcherMatch::Watcher(uri("sip:Bob@x")),
        WatcherMatch::Watcher(uri("sips:bob@X;transport=tls")),
        WatcherMatch::Watcher(uri("tel:+15550100")),
        WatcherMatch::Domain("b.test".into()),
        WatcherMatch::Domain("A.test".into()),
        WatcherMatch::Domain("a.test".into()),
    ];
    let mut n = 0usize;
    for p in presentities {
        for w in &watchers {
            n += 1;
            let r = rule(p, w.clone(), AuthAction::ALL[n % 4]);
            memory.save_rule(&r).unwrap();
            sqlite.save_rule(&r).unwrap();
            if n % 5 == 0 {
                memory.delete_rule(&r.presentity, &r.watcher).unwrap();
                sqlite.delete_rule(&r.presentity, &r.watcher).unwrap();
            }
        }
    }
    let expected = memory.load_rules().unwrap();
    assert!(expected.len() > 10);
    assert_eq!(sqlite.load_rules().unwrap(), expected);
}

#[test]
fn rules_survive_reopening_the_file() {
    let dir = TempDir::new("reopen");
    let path = dir.file("impp.db");
    let saved = vec![
        rule(
            "sip:alice@x",
            WatcherMatch::Watcher(uri("sip:bob@x")),
            AuthAction::Allow,
        ),
        rule(
            "sip:alice@x",
            WatcherMatch::Domain("corp.test".into()),
            AuthAction::Block,
        ),
    ];
    {
        let store = SqliteStore::open(&path).unwrap();
        for r in &saved {
            store.save_rule(r).unwrap();
        }
    }
    assert!(path.exists());
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_rules().unwrap(), saved);
}

fn schema_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn records_the_schema_version_and_refuses_a_newer_one() {
    let dir = TempDir::new("schema");
    let path = dir.file("impp.db");
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(schema_version(&path), MIGRATIONS.len() as i64);
    let journal: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");

    // Opening again applies nothing and keeps one version row.
    drop(SqliteStore::open(&path).unwrap());
    let rows: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM schema_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 1);

    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    match SqliteStore::open(&path) {
        Err(Error::Unsupported(message)) => {
            assert!(message.contains("99"), "{message}");
            assert!(message.contains("newer"), "{message}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Refusing did not touch the file.
    assert_eq!(schema_version(&path), 99);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("notes.txt");
    std::fs::write(
        &path,
        "these are notes, not an SQLite database\n".repeat(200),
    )
    .unwrap();
    match SqliteStore::open(&path) {
        Err(Error::Malformed(message)) => {
            assert!(message.contains("notes.txt"), "{message}");
            assert!(
                message.contains("not a usable SQLite database"),
                "{message}"
            );
        }
        other => panic!("expected Malformed, got {other:?}"),
    }

    // A directory where the file should be: cannot open.
    assert!(matches!(
        SqliteStore::open(dir.file("missing-dir").join("impp.db")),
        Err(Error::Storage(_))
    ));
}

#[test]
fn concurrent_writers_share_commits_and_every_write_is_durable() {
    const THREADS: usize = 8;
    const SAVES: usize = 200;
    let dir = TempDir::new("group");
    let path = dir.file("impp.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let before = store.commits();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..SAVES {
                    let w = WatcherMatch::Watcher(uri(&format!("sip:w{i}@x")));
                    store
                        .save_rule(&rule(&format!("sip:p{t}@x"), w, AuthAction::Allow))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let commits = store.commits() - before;
    assert!(commits > 0);
    assert!(
        commits <= (THREADS * SAVES / 2) as u64,
        "{commits} commits for {} concurrent writes: no group commit",
        THREADS * SAVES
    );
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_rules().unwrap().len(), THREADS * SAVES);
}

const ALICE: &str = "sip:alice@example.test";
const BOB: &str = "sip:bob@example.test";

#[test]
fn an_engine_keeps_its_rules_in_the_file_across_a_restart() {
    let dir = TempDir::new("engine");
    let path = dir.file("impp.db");
    let config = |store: Arc<dyn Store>| EngineConfig {
        workers: 2,
        default_policy: AuthAction::Confirm,
        clock: ManualClock::new(),
        store,
        ..EngineConfig::default()
    };
    let rule = AuthRule {
        presentity: uri(ALICE),
        watcher: WatcherMatch::Watcher(uri(BOB)),
        action: AuthAction::Allow,
    };
    {
        let engine = Engine::new(config(Arc::new(SqliteStore::open(&path).unwrap()))).unwrap();
        engine.set_rule(rule.clone()).unwrap();
        assert_eq!(engine.rules(&uri(ALICE)).unwrap(), vec![rule.clone()]);
    }

    // A new process would do the same: open the file, start an engine.
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let engine = Engine::new(config(store.clone())).unwrap();
    assert_eq!(engine.rules(&uri(ALICE)).unwrap(), vec![rule.clone()]);
    let id = engine
        .subscribe(SubscribeRequest::new(
            uri(BOB),
            uri(ALICE),
            Package::Presence,
        ))
        .unwrap();
    assert_eq!(
        engine.subscription(id).unwrap().state,
        SubscriptionState::Active
    );
    assert!(engine
        .remove_rule(&uri(ALICE), &WatcherMatch::Watcher(uri(BOB)))
        .unwrap());
    assert!(store.load_rules().unwrap().is_empty());
    drop(engine);
    drop(store);
    assert!(SqliteStore::open(&path)
        .unwrap()
        .load_rules()
        .unwrap()
        .is_empty());
}

mod c_api {
    use super::*;
    use impp::ffi::{
        impp_auth_action, impp_config, impp_config_free, impp_config_new,
        impp_config_set_store_path, impp_engine_free, impp_engine_new, impp_engine_rule_count,
        impp_engine_set_rule, impp_status,
    };

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// A configuration with the store at `path`, as C would build it.
    fn config_at(path: &CStr) -> (*mut impp_config, impp_status) {
        let mut config = std::ptr::null_mut();
        // SAFETY: valid out pointer; the configuration is live until freed or consumed.
        unsafe {
            assert_eq!(impp_config_new(&mut config), impp_status::IMPP_OK);
            let status = impp_config_set_store_path(config, path.as_ptr());
            (config, status)
        }
    }

    #[test]
    fn set_store_path_checks_its_arguments() {
        let (config, status) = config_at(&c(""));
        assert_eq!(status, impp_status::IMPP_ERR_INVALID_ARGUMENT);
        // SAFETY: live configuration; NULL and a non-UTF-8 string are the cases under test.
        unsafe {
            assert_eq!(
                impp_config_set_store_path(config, std::ptr::null()),
                impp_status::IMPP_ERR_INVALID_ARGUMENT
            );
            let bad = b"/tmp/\xff.db\0";
            assert_eq!(
                impp_config_set_store_path(config, bad.as_ptr() as *const c_char),
                impp_status::IMPP_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                impp_config_set_store_path(std::ptr::null_mut(), c("x.db").as_ptr()),
                impp_status::IMPP_ERR_INVALID_ARGUMENT
            );
            impp_config_free(config);
        }

        let dir = TempDir::new("c-errors");
        let notes = dir.file("notes.txt");
        std::fs::write(&notes, "not a database\n".repeat(100)).unwrap();
        let (config, status) = config_at(&c(notes.to_str().unwrap()));
        assert_eq!(status, impp_status::IMPP_ERR_MALFORMED);
        // SAFETY: live configuration.
        unsafe { impp_config_free(config) };
        let missing = dir.file("no-such-dir").join("impp.db");
        let (config, status) = config_at(&c(missing.to_str().unwrap()));
        assert_eq!(status, impp_status::IMPP_ERR_STORAGE);
        // SAFETY: live configuration.
        unsafe { impp_config_free(config) };
    }

    #[test]
    fn an_engine_built_from_c_keeps_its_rules_in_the_file() {
        let dir = TempDir::new("c-engine");
        let path = c(dir.file("impp.db").to_str().unwrap());
        let alice = c(ALICE);
        let bob = c(BOB);
        let count = || {
            let (config, status) = config_at(&path);
            assert_eq!(status, impp_status::IMPP_OK);
            let mut engine = std::ptr::null_mut();
            let mut n = 0usize;
            // SAFETY: the configuration is consumed by impp_engine_new; the engine is live
            // until freed.
            unsafe {
                assert_eq!(impp_engine_new(config, &mut engine), impp_status::IMPP_OK);
                assert_eq!(
                    impp_engine_rule_count(engine, alice.as_ptr(), &mut n),
                    impp_status::IMPP_OK
                );
            }
            (engine, n)
        };
        let (engine, n) = count();
        assert_eq!(n, 0);
        // SAFETY: live engine, NUL-terminated strings.
        unsafe {
            assert_eq!(
                impp_engine_set_rule(
                    engine,
                    alice.as_ptr(),
                    bob.as_ptr(),
                    std::ptr::null(),
                    impp_auth_action::IMPP_AUTH_ALLOW as std::ffi::c_int
                ),
                impp_status::IMPP_OK
            );
            assert_eq!(impp_engine_free(engine), impp_status::IMPP_OK);
        }
        let (engine, n) = count();
        assert_eq!(n, 1);
        // SAFETY: live engine.
        unsafe { assert_eq!(impp_engine_free(engine), impp_status::IMPP_OK) };
    }
}
