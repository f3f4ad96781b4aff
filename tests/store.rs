//! The SQLite store: the `Store` contract, reopening, the schema version, group commit, bad
//! files, an engine restarted on the same file, and the C setter.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use impp::engine::authorization::{AuthAction, AuthRule, WatcherMatch};
use impp::engine::{
    Engine, EngineConfig, ListEntry, ManualClock, Package, Resource, ResourceList,
    SubscribeRequest, SubscriptionState,
};
use impp::error::Error;
use impp::store::sqlite::MIGRATIONS;
use impp::store::{
    Credential, EndpointRecord, ListDialogRecord, MemoryStore, PublicationRecord, Snapshot,
    SqliteStore, Store, StoredMessage, SubscriptionRecord, Write,
};
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
    // Fewer commits than writes: some commit carried the writes of several threads. (How
    // many share one depends on the scheduler: on a loaded 2-core machine about half the
    // writes commit alone, so the bound is not tighter.)
    assert!(
        commits < (THREADS * SAVES) as u64,
        "{commits} commits for {} concurrent writes: no group commit",
        THREADS * SAVES
    );
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_rules().unwrap().len(), THREADS * SAVES);
}

// ---- Every record kind -------------------------------------------------------------------

/// Bytes that are not text: NUL, 0xff, and every other byte value.
fn binary(seed: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0xff, seed, 0x00];
    body.extend(0..=255u8);
    body
}

fn message(id: u64, body: Vec<u8>) -> StoredMessage {
    StoredMessage {
        id,
        sender: uri("sip:alice@x"),
        recipient: uri("sips:Bob@x;transport=tls"),
        content_type: "application/octet-stream".into(),
        body,
        endpoint: (id % 2 == 0).then(|| format!("phone-{id}")),
        in_reply_to: (id % 3 == 0).then(|| format!("parent-of-{id}")),
        sent_at: 1_700_000_000_000 + id,
        expires_at: 1_700_000_600_000 + id,
        wire: (id % 4 == 1).then(|| format!("MESSAGE sip:bob@x SIP/2.0\r\n{id}").into_bytes()),
    }
}

fn endpoint(user: &str, id: &str, contact: Option<&str>) -> EndpointRecord {
    EndpointRecord {
        user: uri(user),
        endpoint: id.into(),
        contact: contact.map(str::to_owned),
        expires_at: 1_700_000_000_000,
    }
}

fn publication(etag: &str, presentity: &str, package: Package, seq: u64) -> PublicationRecord {
    PublicationRecord {
        etag: etag.into(),
        presentity: uri(presentity),
        package,
        body: format!("<presence entity=\"{presentity}\">{etag} é</presence>"),
        expires_at: 1_700_000_003_600 + seq,
        seq,
    }
}

fn subscription(id: u64, filter: Option<&str>) -> SubscriptionRecord {
    SubscriptionRecord {
        id,
        watcher: uri("sip:bob@x"),
        presentity: uri("pres:alice@x"),
        package: Package::ALL[id as usize % Package::ALL.len()],
        expires_at: 1_700_000_003_600,
        filter: filter.map(str::to_owned),
        min_interval_ms: 5_000,
        action: [
            AuthAction::Allow,
            AuthAction::Confirm,
            AuthAction::PoliteBlock,
        ][id as usize % 3],
        target: binary(id as u8),
    }
}

fn list_dialog(id: u64, watcher: &str) -> ListDialogRecord {
    ListDialogRecord {
        id,
        watcher: uri(watcher),
        package: Package::ALL[id as usize % Package::ALL.len()],
        expires_at: 1_700_000_003_600 + id,
        record: binary(id as u8),
    }
}

fn save_publication(p: PublicationRecord, previous: Option<&str>) -> Write {
    Write::SavePublication {
        publication: p,
        previous_etag: previous.map(str::to_owned),
    }
}

/// Submits every write with a completion and checks each completion ran once, in
/// submission order, with `Ok` (by the time `load` answers, which sees them all).
fn apply(store: &dyn Store, writes: Vec<Write>) -> Snapshot {
    let answered = Arc::new(Mutex::new(Vec::new()));
    let n = writes.len();
    for (i, w) in writes.into_iter().enumerate() {
        let answered = Arc::clone(&answered);
        store.submit(
            w,
            Some(Box::new(move |result| {
                answered.lock().unwrap().push((i, result));
            })),
        );
    }
    let snapshot = store.load().unwrap();
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let expected: Vec<_> = (0..n).map(|i| (i, Ok(()))).collect();
    assert_eq!(answered, expected);
    snapshot
}

/// Save, replace by identity, delete (idempotent) and load order, for every kind of record.
fn contract_all_kinds(store: &dyn Store) {
    assert_eq!(store.load().unwrap(), Snapshot::default());

    // Messages, by id; bodies are bytes.
    let s = apply(
        store,
        vec![
            Write::SaveMessage(message(3, binary(3))),
            Write::SaveMessage(message(1, Vec::new())),
            Write::SaveMessage(message(2, binary(2))),
        ],
    );
    assert_eq!(
        s.messages,
        vec![
            message(1, Vec::new()),
            message(2, binary(2)),
            message(3, binary(3))
        ]
    );
    let s = apply(
        store,
        vec![
            Write::SaveMessage(message(2, vec![0xff; 3])),
            Write::DeleteMessage(1),
            Write::DeleteMessage(1),
            Write::DeleteMessage(99),
        ],
    );
    assert_eq!(
        s.messages,
        vec![message(2, vec![0xff; 3]), message(3, binary(3))]
    );

    // Endpoints, by user key then endpoint id; the user URI is kept as given.
    let s = apply(
        store,
        vec![
            Write::SaveEndpoint(endpoint("sip:bob@x", "a", None)),
            Write::SaveEndpoint(endpoint(
                "sip:alice@x",
                "b",
                Some("sip:alice@10.0.0.1:5060"),
            )),
            Write::SaveEndpoint(endpoint("sip:alice@x", "a", None)),
            Write::SaveEndpoint(endpoint("sip:alice@x", "B", None)),
        ],
    );
    assert_eq!(
        s.endpoints,
        vec![
            endpoint("sip:alice@x", "B", None),
            endpoint("sip:alice@x", "a", None),
            endpoint("sip:alice@x", "b", Some("sip:alice@10.0.0.1:5060")),
            endpoint("sip:bob@x", "a", None),
        ]
    );
    let s = apply(
        store,
        vec![
            // Same user by key, same endpoint: replaced.
            Write::SaveEndpoint(endpoint("pres:alice@x", "a", Some("sip:a@h"))),
            Write::DeleteEndpoint {
                user: uri("sip:alice@x;transport=tcp"),
                endpoint: "B".into(),
            },
            Write::DeleteEndpoint {
                user: uri("sip:alice@x"),
                endpoint: "B".into(),
            },
            Write::DeleteEndpoint {
                user: uri("sip:nobody@x"),
                endpoint: "a".into(),
            },
        ],
    );
    assert_eq!(
        s.endpoints,
        vec![
            endpoint("pres:alice@x", "a", Some("sip:a@h")),
            endpoint("sip:alice@x", "b", Some("sip:alice@10.0.0.1:5060")),
            endpoint("sip:bob@x", "a", None),
        ]
    );

    // Publications, by presentity key then seq; a new tag replaces the previous one.
    let s = apply(
        store,
        vec![
            save_publication(publication("e1", "sip:zed@x", Package::Presence, 1), None),
            save_publication(publication("e2", "sip:alice@x", Package::Presence, 7), None),
            save_publication(publication("e3", "pres:alice@x", Package::Dialog, 2), None),
            save_publication(
                publication("e4", "sip:alice@x", Package::MessageSummary, 5),
                None,
            ),
        ],
    );
    assert_eq!(
        s.publications,
        vec![
            publication("e3", "pres:alice@x", Package::Dialog, 2),
            publication("e4", "sip:alice@x", Package::MessageSummary, 5),
            publication("e2", "sip:alice@x", Package::Presence, 7),
            publication("e1", "sip:zed@x", Package::Presence, 1),
        ]
    );
    let s = apply(
        store,
        vec![
            // A refresh under a new tag: the old one goes in the same write.
            save_publication(
                publication("e5", "sip:alice@x", Package::Presence, 8),
                Some("e2"),
            ),
            // Same tag: replaced.
            save_publication(publication("e1", "sip:zed@x", Package::Presence, 9), None),
            // A previous tag that is not stored is fine.
            save_publication(
                publication("e6", "sip:bob@x", Package::Presence, 1),
                Some("gone"),
            ),
            Write::DeletePublication("e3".into()),
            Write::DeletePublication("e3".into()),
        ],
    );
    assert_eq!(
        s.publications,
        vec![
            publication("e4", "sip:alice@x", Package::MessageSummary, 5),
            publication("e5", "sip:alice@x", Package::Presence, 8),
            publication("e6", "sip:bob@x", Package::Presence, 1),
            publication("e1", "sip:zed@x", Package::Presence, 9),
        ]
    );

    // Subscriptions, by id; the target is opaque bytes.
    let s = apply(
        store,
        vec![
            Write::SaveSubscription(subscription(9, None)),
            Write::SaveSubscription(subscription(2, Some("<filter-set/>"))),
            Write::SaveSubscription(subscription(5, None)),
        ],
    );
    assert_eq!(
        s.subscriptions,
        vec![
            subscription(2, Some("<filter-set/>")),
            subscription(5, None),
            subscription(9, None)
        ]
    );
    let s = apply(
        store,
        vec![
            Write::SaveSubscription(subscription(5, Some("<f/>"))),
            Write::DeleteSubscription(9),
            Write::DeleteSubscription(9),
            Write::DeleteSubscription(1234),
        ],
    );
    assert_eq!(
        s.subscriptions,
        vec![
            subscription(2, Some("<filter-set/>")),
            subscription(5, Some("<f/>"))
        ]
    );

    // Credentials, by user key.
    let bob = Credential::new(uri("sip:bob@x"), "x", "secret");
    let alice = Credential::new(uri("sip:alice@x"), "x", "pw");
    let s = apply(
        store,
        vec![
            Write::SaveCredential(bob.clone()),
            Write::SaveCredential(alice.clone()),
        ],
    );
    assert_eq!(s.credentials, vec![alice, bob.clone()]);
    let alice2 = Credential::new(uri("pres:alice@x"), "other realm", "pw2");
    let s = apply(store, vec![Write::SaveCredential(alice2.clone())]);
    assert_eq!(s.credentials, vec![alice2, bob.clone()]);
    let s = apply(
        store,
        vec![
            Write::DeleteCredential(uri("sip:alice@x")),
            Write::DeleteCredential(uri("sip:alice@x")),
            Write::DeleteCredential(uri("sip:nobody@x")),
        ],
    );
    assert_eq!(s.credentials, vec![bob]);

    // Resource lists, by list key, entries in order; saving replaces entries and all.
    let blf = resource_list("blf", 3);
    let team = resource_list("team", 0);
    let s = apply(
        store,
        vec![
            Write::SaveList(team.clone()),
            Write::SaveList(blf.clone()),
            Write::SaveList(resource_list("zz", 1)),
        ],
    );
    assert_eq!(
        s.lists,
        vec![blf.clone(), team.clone(), resource_list("zz", 1)]
    );
    let mut shorter = resource_list("blf", 1);
    shorter.uri = uri("pres:blf@x");
    shorter.display_name = None;
    let s = apply(
        store,
        vec![
            Write::SaveList(shorter.clone()),
            Write::DeleteList(uri("sip:zz@x;transport=tcp")),
            Write::DeleteList(uri("sip:zz@x")),
            Write::DeleteList(uri("sip:nothing@x")),
        ],
    );
    assert_eq!(s.lists, vec![shorter, team]);

    // The list server's dialogs, by id; the watcher URI is kept as given, the record is
    // opaque bytes.
    let s = apply(
        store,
        vec![
            Write::SaveListDialog(list_dialog(8, "sips:Bob@x;transport=tls")),
            Write::SaveListDialog(list_dialog(2, "sip:alice@x")),
            Write::SaveListDialog(list_dialog(5, "tel:+15550100")),
        ],
    );
    assert_eq!(
        s.list_dialogs,
        vec![
            list_dialog(2, "sip:alice@x"),
            list_dialog(5, "tel:+15550100"),
            list_dialog(8, "sips:Bob@x;transport=tls"),
        ]
    );
    let mut refreshed = list_dialog(5, "tel:+15550100");
    refreshed.expires_at += 3_600_000;
    refreshed.record = Vec::new();
    let s = apply(
        store,
        vec![
            // Same id: replaced.
            Write::SaveListDialog(refreshed.clone()),
            Write::DeleteListDialog(8),
            Write::DeleteListDialog(8),
            Write::DeleteListDialog(1234),
            Write::DeleteListDialog(u64::MAX),
        ],
    );
    assert_eq!(
        s.list_dialogs,
        vec![list_dialog(2, "sip:alice@x"), refreshed]
    );

    // Nothing else was disturbed by the other kinds' writes.
    assert!(s.rules.is_empty());
    assert_eq!(s.messages.len(), 2);
    assert_eq!(s.endpoints.len(), 3);
    assert_eq!(s.publications.len(), 4);
    assert_eq!(s.subscriptions.len(), 2);
    assert_eq!(s.credentials.len(), 1);
    assert_eq!(s.lists.len(), 2);
}

/// A list `sip:NAME@x` with `n` entries of every shape (resources named or not, references),
/// a display name and both packages.
fn resource_list(name: &str, n: usize) -> ResourceList {
    let mut list = ResourceList::new(uri(&format!("sip:{name}@x")));
    list.display_name = Some(format!("{name} é \"quoted\""));
    list.packages = vec![Package::Presence, Package::Dialog];
    for i in 0..n {
        list.entries.push(match i % 3 {
            0 => ListEntry::Resource(Resource::named(
                uri(&format!("sip:r{i}@x;transport=tcp")),
                format!("Resource {i}"),
            )),
            1 => ListEntry::Resource(Resource::new(uri(&format!("tel:+1555000{i}")))),
            _ => ListEntry::Reference(uri(&format!("sip:other{i}@x"))),
        });
    }
    list
}

#[test]
fn every_record_kind_follows_the_contract_in_memory_and_in_a_file() {
    contract_all_kinds(&MemoryStore::new());
    contract_all_kinds(&SqliteStore::in_memory().unwrap());
    let dir = TempDir::new("contract-all");
    contract_all_kinds(&SqliteStore::open(dir.file("impp.db")).unwrap());
}

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The first difference between two lists, shown briefly.
fn first_difference<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], expected: &[T]) {
    if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i)) {
        panic!(
            "{what} differ at {i} (got {} items, expected {}):\n got      {:?}\n expected {:?}",
            got.len(),
            expected.len(),
            got.get(i),
            expected.get(i)
        );
    }
}

/// Two snapshots are equal; if not, the first differing item of the first differing kind
/// is shown (whole snapshots are too long to read).
fn assert_same(got: &Snapshot, expected: &Snapshot) {
    first_difference("rules", &got.rules, &expected.rules);
    first_difference("messages", &got.messages, &expected.messages);
    first_difference("endpoints", &got.endpoints, &expected.endpoints);
    first_difference("publications", &got.publications, &expected.publications);
    first_difference("subscriptions", &got.subscriptions, &expected.subscriptions);
    first_difference("credentials", &got.credentials, &expected.credentials);
    first_difference("lists", &got.lists, &expected.lists);
    first_difference("list dialogs", &got.list_dialogs, &expected.list_dialogs);
    assert_eq!(got, expected);
}

/// Many random writes of every kind: the SQLite store loads exactly what the memory store does.
fn random_writes(seed: u64, n: usize) -> Vec<Write> {
    let mut rng = Rng(seed);
    let users = [
        "sip:alice@x",
        "pres:alice@x",
        "sip:Alice@x",
        "tel:+12125550100",
        "sips:bob@y",
        "im:carol@z",
    ];
    let mut writes = Vec::new();
    for _ in 0..n {
        let user = users[rng.below(users.len() as u64) as usize];
        let k = rng.below(20);
        writes.push(match rng.below(15) {
            0 => Write::SaveMessage(message(k, binary(k as u8))),
            1 => Write::DeleteMessage(k),
            2 => Write::SaveEndpoint(endpoint(user, &format!("ep{}", k % 4), None)),
            3 => Write::DeleteEndpoint {
                user: uri(user),
                endpoint: format!("ep{}", k % 4),
            },
            4 => {
                let p = publication(&format!("e{k}"), user, Package::Presence, rng.below(5));
                let previous = format!("e{}", rng.below(20));
                let replaces = rng.below(2) == 0;
                save_publication(p, replaces.then_some(previous.as_str()))
            }
            5 => Write::DeletePublication(format!("e{k}")),
            6 => Write::SaveSubscription(subscription(k, None)),
            7 => Write::DeleteSubscription(k),
            8 => Write::SaveCredential(Credential::new(uri(user), "r", &k.to_string())),
            9 => Write::DeleteCredential(uri(user)),
            10 => {
                let mut list = resource_list(&format!("l{}", k % 5), (k % 7) as usize);
                list.uri = uri(&format!(
                    "{}l{}@x",
                    ["sip:", "pres:"][k as usize % 2],
                    k % 5
                ));
                Write::SaveList(list)
            }
            11 => Write::DeleteList(uri(&format!("sip:l{}@x", k % 5))),
            12 => Write::SaveListDialog(list_dialog(k, user)),
            13 => Write::DeleteListDialog(k),
            _ => Write::SaveRule(rule(
                user,
                WatcherMatch::Watcher(uri(users[k as usize % users.len()])),
                AuthAction::ALL[k as usize % 4],
            )),
        });
    }
    writes
}

#[test]
fn loads_every_kind_in_the_same_order_as_the_memory_store() {
    for seed in [1, 2, 3] {
        let memory = MemoryStore::new();
        let sqlite = SqliteStore::in_memory().unwrap();
        let writes = random_writes(seed, 600);
        let expected = apply(&memory, writes.clone());
        assert_same(&apply(&sqlite, writes), &expected);
        assert!(!expected.publications.is_empty() && !expected.credentials.is_empty());
    }
}

#[test]
fn every_kind_survives_reopening_the_file() {
    let dir = TempDir::new("reopen-all");
    let path = dir.file("impp.db");
    let writes = random_writes(7, 400);
    let expected = apply(&MemoryStore::new(), writes.clone());
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_same(&apply(&store, writes), &expected);
    }
    let store = SqliteStore::open(&path).unwrap();
    let loaded = store.load().unwrap();
    assert_same(&loaded, &expected);
    assert!(!loaded.rules.is_empty());
    assert!(!loaded.messages.is_empty());
    assert!(!loaded.endpoints.is_empty());
    assert!(!loaded.publications.is_empty());
    assert!(!loaded.subscriptions.is_empty());
    assert!(!loaded.credentials.is_empty());
    assert!(!loaded.lists.is_empty());
    assert!(!loaded.list_dialogs.is_empty());
}

/// Makes `path` a file as schema version `version` left it (its migrations and the version
/// row, as an earlier library wrote them), holding `rows` (SQL).
fn file_at_version(path: &std::path::Path, version: usize, rows: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for step in &MIGRATIONS[..version] {
        conn.execute_batch(step).unwrap();
    }
    conn.execute_batch(&format!(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES ({version});
         {rows}"
    ))
    .unwrap();
}

#[test]
fn a_file_of_schema_version_1_is_migrated_and_keeps_its_rules() {
    let dir = TempDir::new("v1");
    let path = dir.file("impp.db");
    file_at_version(
        &path,
        1,
        "INSERT INTO rules VALUES
             ('alice@x', 'watcher', 'bob@x', 'sip:alice@x', 'sip:bob@x', 'allow');",
    );
    assert_eq!(schema_version(&path), 1);
    let expected = rule(
        "sip:alice@x",
        WatcherMatch::Watcher(uri("sip:bob@x")),
        AuthAction::Allow,
    );
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load_rules().unwrap(), vec![expected.clone()]);
        store
            .write(Write::SaveMessage(message(1, binary(1))))
            .unwrap();
    }
    assert_eq!(schema_version(&path), MIGRATIONS.len() as i64);
    let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.rules, vec![expected]);
    assert_eq!(loaded.messages, vec![message(1, binary(1))]);
}

#[test]
fn a_file_of_schema_version_3_gains_the_list_tables_and_keeps_everything_else() {
    let dir = TempDir::new("v3");
    let path = dir.file("impp.db");
    file_at_version(
        &path,
        3,
        "INSERT INTO rules VALUES
             ('alice@x', 'domain', 'corp.test', 'sip:alice@x', 'corp.test', 'block');
         INSERT INTO credentials VALUES ('bob@x', 'sip:bob@x', 'x', 'aa', 'bb');",
    );
    assert_eq!(schema_version(&path), 3);
    {
        let store = SqliteStore::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.rules.len(), 1);
        assert_eq!(loaded.credentials.len(), 1);
        assert!(loaded.lists.is_empty());
        store
            .write(Write::SaveList(resource_list("blf", 4)))
            .unwrap();
    }
    assert_eq!(schema_version(&path), MIGRATIONS.len() as i64);
    let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.lists, vec![resource_list("blf", 4)]);
    assert_eq!(loaded.rules.len(), 1);
}

#[test]
fn a_file_of_schema_version_4_keeps_its_rules_and_stores_redirect_targets() {
    let dir = TempDir::new("v4");
    let path = dir.file("impp.db");
    file_at_version(
        &path,
        4,
        "INSERT INTO rules VALUES
             ('alice@x', 'domain', 'corp.test', 'sip:alice@x', 'corp.test', 'block');",
    );
    let redirect = AuthRule::redirect(
        uri("sip:alice@x"),
        WatcherMatch::Watcher(uri("sip:bob@x")),
        uri("sip:alice@192.0.2.7:5070;transport=tcp"),
    );
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.load_rules().unwrap(),
            vec![rule(
                "sip:alice@x",
                WatcherMatch::Domain("corp.test".into()),
                AuthAction::Block
            )]
        );
        store.write(Write::SaveRule(redirect.clone())).unwrap();
    }
    assert_eq!(schema_version(&path), MIGRATIONS.len() as i64);
    let rules = SqliteStore::open(&path).unwrap().load_rules().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0], redirect);
    // A row that says redirect without a target cannot be read back as a rule.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE rules SET target = NULL WHERE action = 'redirect';")
        .unwrap();
    let err = SqliteStore::open(&path).unwrap().load_rules().unwrap_err();
    assert!(err.to_string().contains("needs a target"), "{err}");
}

#[test]
fn a_file_of_schema_version_5_gains_the_list_dialogs_table_and_keeps_everything_else() {
    let dir = TempDir::new("v5");
    let path = dir.file("impp.db");
    // A file of version 5 holding every other kind: written by this store, then made what
    // version 5 left (no list_dialogs table, version 5).
    let writes: Vec<Write> = random_writes(11, 400)
        .into_iter()
        .filter(|w| !matches!(w, Write::SaveListDialog(_) | Write::DeleteListDialog(_)))
        .collect();
    let expected = apply(&MemoryStore::new(), writes.clone());
    assert!(!expected.subscriptions.is_empty() && !expected.lists.is_empty());
    {
        let store = SqliteStore::open(&path).unwrap();
        apply(&store, writes);
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE list_dialogs; UPDATE schema_version SET version = 5;")
        .unwrap();
    assert_eq!(schema_version(&path), 5);

    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(schema_version(&path), MIGRATIONS.len() as i64);
        assert_same(&store.load().unwrap(), &expected);
        store
            .write(Write::SaveListDialog(list_dialog(3, "sip:bob@x")))
            .unwrap();
    }
    let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.list_dialogs, vec![list_dialog(3, "sip:bob@x")]);
    assert_same(
        &Snapshot {
            list_dialogs: Vec::new(),
            ..loaded
        },
        &expected,
    );
}

/// Submits `n` messages from one thread without waiting; returns how many completions were
/// `Ok` and how long until the last was answered.
fn submit_messages(store: &SqliteStore, n: u64) -> (usize, std::time::Duration) {
    let ok = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for id in 0..n {
        let ok = Arc::clone(&ok);
        store.submit(
            Write::SaveMessage(message(id, vec![id as u8; 100])),
            Some(Box::new(move |result| {
                if result.is_ok() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })),
        );
    }
    // The load is answered after every write before it, and their completions, ran.
    let loaded = store.load().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(loaded.messages.len() as u64, n);
    (ok.load(Ordering::Relaxed), elapsed)
}

#[test]
fn async_writes_from_one_thread_share_commits() {
    const N: u64 = 20_000;
    let dir = TempDir::new("group-async");
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    let before = store.commits();
    let (ok, _) = submit_messages(&store, N);
    assert_eq!(ok as u64, N);
    let commits = store.commits() - before;
    println!("{N} async SaveMessage: {commits} commits");
    assert!(commits > 0);
    assert!(commits < 2_000, "{commits} commits for {N} writes");
    drop(store);
    let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.messages.len() as u64, N);
    assert_eq!(
        loaded.messages[1234],
        message(1234, vec![1234u64 as u8; 100])
    );
}

/// A file with `n` stored messages, closed (checkpointed: everything is in the main file).
fn file_with_messages(dir: &TempDir, n: u64) -> PathBuf {
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    let (ok, _) = submit_messages(&store, n);
    assert_eq!(ok as u64, n);
    drop(store);
    assert!(
        !dir.file("impp.db-wal").exists()
            || std::fs::metadata(dir.file("impp.db-wal")).unwrap().len() == 0
    );
    path
}

/// A damaged file is refused with a clear error at open or at load: never a panic, never
/// fewer rows without an error.
fn assert_refused(path: &Path, n: u64) {
    let outcome = SqliteStore::open(path).and_then(|store| store.load());
    match outcome {
        Err(Error::Malformed(m)) => {
            assert!(m.contains("impp.db"), "{m}");
            println!("refused: {m}");
        }
        Err(Error::Storage(m)) => {
            assert!(m.contains("impp.db"), "{m}");
            println!("refused: {m}");
        }
        Err(other) => panic!("expected Malformed or Storage, got {other:?}"),
        Ok(snapshot) => panic!(
            "a damaged file loaded without an error ({} of {n} messages)",
            snapshot.messages.len()
        ),
    }
}

#[test]
fn a_file_overwritten_in_the_middle_is_refused() {
    const N: u64 = 5_000;
    let dir = TempDir::new("overwritten");
    let path = file_with_messages(&dir, N);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    let mut rng = Rng(0x5eed);
    for b in &mut bytes[middle - 8192..middle + 8192] {
        *b = rng.next() as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    assert_refused(&path, N);
}

#[test]
fn a_file_truncated_to_half_is_refused() {
    const N: u64 = 5_000;
    let dir = TempDir::new("truncated");
    let path = file_with_messages(&dir, N);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(&path, N);
}

/// Throughput and check costs, printed; run with
/// `cargo test --release --test store -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_async_writes_and_quick_check() {
    let dir = TempDir::new("measure");
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    let before = store.commits();
    let (ok, elapsed) = submit_messages(&store, 50_000);
    assert_eq!(ok, 50_000);
    println!(
        "50000 async SaveMessage (100-byte bodies), file store: {:.0} writes/s ({:?}, {} commits)",
        50_000.0 / elapsed.as_secs_f64(),
        elapsed,
        store.commits() - before
    );
    let (ok, _) = submit_messages(&store, 100_000);
    assert_eq!(ok, 100_000);
    drop(store);
    let size = std::fs::metadata(&path).unwrap().len();

    let conn = rusqlite::Connection::open(&path).unwrap();
    let start = Instant::now();
    let result: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .unwrap();
    println!(
        "PRAGMA quick_check on 100000 messages ({size} bytes): {result} in {:?}",
        start.elapsed()
    );
    drop(conn);
    let start = Instant::now();
    let store = SqliteStore::open(&path).unwrap();
    println!(
        "SqliteStore::open (with quick_check): {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(store.load().unwrap().messages.len(), 100_000);
    println!("load of 100000 messages: {:?}", start.elapsed());
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
        target: None,
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
        impp_config_set_store_path, impp_engine_free, impp_engine_new, impp_engine_rules,
        impp_engine_set_rule, impp_rule_list_count, impp_rule_list_free, impp_status,
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
            let mut rules = std::ptr::null_mut();
            // SAFETY: the configuration is consumed by impp_engine_new; the engine is live
            // until freed; the rule list is live until freed here.
            let n = unsafe {
                assert_eq!(impp_engine_new(config, &mut engine), impp_status::IMPP_OK);
                assert_eq!(
                    impp_engine_rules(engine, alice.as_ptr(), &mut rules),
                    impp_status::IMPP_OK
                );
                let n = impp_rule_list_count(rules);
                impp_rule_list_free(rules);
                n
            };
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

/// Soft state (writes nobody waits for) submitted within one write-behind window is one
/// commit, and an awaited request ends the window at once: the window here is an hour, so
/// only the flush can have committed them.
#[test]
fn writes_nobody_waits_for_share_one_commit_until_something_is_awaited() {
    const N: u64 = 300;
    let dir = TempDir::new("behind");
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_write_behind(std::time::Duration::from_secs(3600));
    assert_eq!(store.write_behind(), std::time::Duration::from_secs(3600));
    let before = store.commits();
    for seq in 0..N {
        let p = publication(&format!("e{seq}"), "sip:p@x", Package::Presence, seq);
        store.submit(save_publication(p, None), None);
    }
    assert_eq!(store.commits(), before, "committed inside the window");
    store.flush().unwrap();
    assert_eq!(store.commits(), before + 1, "{N} soft writes in one commit");
    assert_eq!(store.load().unwrap().publications.len() as u64, N);

    // A write with a completion in the middle of a window is answered at once, on disk with
    // the soft writes before it.
    store.submit(
        save_publication(publication("late", "sip:p@x", Package::Presence, 1), None),
        None,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    store.submit(
        Write::SaveMessage(message(7, b"awaited".to_vec())),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the awaited write did not wait for the window")
        .unwrap();
    assert_eq!(store.commits(), before + 2);
    // Another connection sees both: they are in the file, not only in this one.
    let other = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(other.publications.len() as u64, N + 1);
    assert_eq!(other.messages.len(), 1);
}

/// Dropping the store commits the writes still in their window; it does not wait for the
/// window to end.
#[test]
fn dropping_the_store_commits_the_writes_in_their_window() {
    let dir = TempDir::new("behind-drop");
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_write_behind(std::time::Duration::from_secs(3600));
    store.submit(Write::SaveListDialog(list_dialog(5, "sip:w@x")), None);
    let started = Instant::now();
    drop(store);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let loaded = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(loaded.list_dialogs, vec![list_dialog(5, "sip:w@x")]);
}

/// A window ends by itself: soft writes reach the file with nothing awaited after them.
#[test]
fn a_write_behind_window_ends_by_itself() {
    let dir = TempDir::new("behind-ends");
    let path = dir.file("impp.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_write_behind(std::time::Duration::from_millis(20));
    let before = store.commits();
    store.submit(Write::SaveEndpoint(endpoint("sip:u@x", "d1", None)), None);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while store.commits() == before {
        assert!(Instant::now() < deadline, "the window never ended");
        std::thread::yield_now();
    }
    let other = SqliteStore::open(&path).unwrap().load().unwrap();
    assert_eq!(other.endpoints.len(), 1);
}
