//! The default durable [`Store`]: SQLite in one file (DESIGN §4).
//!
//! # Durability
//!
//! The file is in WAL mode with `synchronous=FULL`: every commit syncs the write-ahead log
//! before it returns, so an `Ok` from a `save_*` or `delete_*` means the change is on disk and
//! survives a crash or power loss right after. (`synchronous=NORMAL`, the usual pairing with
//! WAL, syncs only at checkpoints: a power loss could lose the last commits after they were
//! acknowledged, which the [`Store`] contract forbids.)
//!
//! # Group commit
//!
//! One store thread owns the connection. Callers send their operation and a reply channel;
//! the thread takes the first waiting request and everything queued behind it, runs them all
//! in one transaction (each in its own savepoint, so one failing operation fails alone),
//! commits once, then answers every caller. While a commit is syncing, new requests queue
//! up and go into the next transaction, so N concurrent writers cost about one sync, not N.
//! A read ([`Store::load_rules`]) first commits and answers the writes queued before it, then
//! reads, so it sees every write that was acknowledged before it was asked.
//!
//! # Schema
//!
//! A `schema_version` table holds one row, the number of [`MIGRATIONS`] applied. Opening a
//! file applies the missing ones in order, in one transaction; a file whose version is newer
//! than this library knows is refused ([`Error::Unsupported`]) rather than misread.
//!
//! # Errors
//!
//! A file that is not an SQLite database, or is corrupt, is [`Error::Malformed`]; a newer
//! schema [`Error::Unsupported`]; every other SQLite failure (cannot open, I/O error, disk
//! full, locked) is [`Error::Storage`] with the SQLite message and the file name.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::{Completion, Snapshot, Store, Write};
use crate::engine::authorization::{presentity_key, watcher_key, AuthRule, WatcherMatch};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The schema, one step per version: `MIGRATIONS[i]` takes a file from version `i` to
/// `i + 1`. Steps are only ever appended, never edited.
///
/// Version 1, the rules: the primary key is the rule's identity as
/// [`crate::engine::authorization::RuleBook`] defines it — the presentity key, the kind of
/// match, and the watcher key (for `watcher`) or the lower-cased domain (for `domain`).
/// `presentity_uri` and `watcher_value` keep the URI or domain as it was given, so a loaded
/// rule equals the saved one.
pub const MIGRATIONS: &[&str] = &["CREATE TABLE rules (
        presentity_key TEXT NOT NULL,
        watcher_kind   TEXT NOT NULL CHECK (watcher_kind IN ('watcher', 'domain')),
        watcher_key    TEXT NOT NULL,
        presentity_uri TEXT NOT NULL,
        watcher_value  TEXT NOT NULL,
        action         TEXT NOT NULL,
        PRIMARY KEY (presentity_key, watcher_kind, watcher_key)
    ) WITHOUT ROWID;"];

/// How long a statement waits for a lock held by another connection to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in an SQLite file (or in memory, for tests). See the module documentation for
/// durability, group commit and the schema.
#[derive(Debug)]
pub struct SqliteStore {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    name: Arc<str>,
}

enum Request {
    Write(Box<Write>, Option<Completion>),
    Load(Sender<Result<Snapshot>>),
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, and brings its schema
    /// up to date.
    ///
    /// Errors: [`Error::Malformed`] (not an SQLite database, or corrupt),
    /// [`Error::Unsupported`] (written by a newer library: schema version above
    /// [`MIGRATIONS`]`.len()`), [`Error::Storage`] (cannot create or open, I/O).
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let name: Arc<str> = path.display().to_string().into();
        let conn = Connection::open(&path).map_err(|e| sql_error(&name, e))?;
        SqliteStore::start(conn, name, true)
    }

    /// A store in memory: the same code and schema as a file, nothing kept after drop.
    pub fn in_memory() -> Result<SqliteStore> {
        let name: Arc<str> = ":memory:".into();
        let conn = Connection::open_in_memory().map_err(|e| sql_error(&name, e))?;
        SqliteStore::start(conn, name, false)
    }

    fn start(mut conn: Connection, name: Arc<str>, wal: bool) -> Result<SqliteStore> {
        prepare(&mut conn, wal).map_err(|e| match e {
            Prepared::Sql(e) => sql_error(&name, e),
            Prepared::Newer(found) => Error::Unsupported(format!(
                "store {name}: schema version {found} is newer than this library knows ({}); \
                 it was written by a newer libimpp",
                MIGRATIONS.len()
            )),
            Prepared::NotWal(mode) => Error::Storage(format!(
                "store {name}: cannot switch to WAL mode (journal mode stays {mode})"
            )),
        })?;
        let (requests, receiver) = crossbeam_channel::unbounded();
        let commits = Arc::new(AtomicU64::new(0));
        let thread = {
            let commits = Arc::clone(&commits);
            let thread_name = Arc::clone(&name);
            std::thread::Builder::new()
                .name("impp-store".into())
                .spawn(move || serve(conn, &receiver, &commits, &thread_name))
                .map_err(|e| Error::Internal(format!("store {name}: cannot start thread: {e}")))?
        };
        Ok(SqliteStore {
            requests: Some(requests),
            thread: Some(thread),
            commits,
            name,
        })
    }

    /// How many write transactions the store thread has committed since open. Several
    /// concurrent writes share one (group commit); for tests and monitoring.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn stopped(&self) -> Error {
        Error::Storage(format!("store {}: store thread stopped", self.name))
    }
}

impl Drop for SqliteStore {
    /// Closes the channel, lets the thread finish what is queued, and joins it.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store for SqliteStore {
    fn submit(&self, write: Write, done: Option<Completion>) {
        let Some(requests) = self.requests.as_ref() else {
            if let Some(done) = done {
                done(Err(self.stopped()));
            }
            return;
        };
        if let Err(e) = requests.send(Request::Write(Box::new(write), done)) {
            if let Request::Write(_, Some(done)) = e.into_inner() {
                done(Err(self.stopped()));
            }
        }
    }

    fn load(&self) -> Result<Snapshot> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.requests
            .as_ref()
            .ok_or_else(|| self.stopped())?
            .send(Request::Load(reply))
            .map_err(|_| self.stopped())?;
        answer.recv().map_err(|_| self.stopped())?
    }
}

enum Prepared {
    Sql(rusqlite::Error),
    Newer(i64),
    NotWal(String),
}

impl From<rusqlite::Error> for Prepared {
    fn from(e: rusqlite::Error) -> Prepared {
        Prepared::Sql(e)
    }
}

/// Sets the connection up (WAL, full sync) and applies the missing migrations.
fn prepare(conn: &mut Connection, wal: bool) -> std::result::Result<(), Prepared> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if wal {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Prepared::NotWal(mode));
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    let found = found.unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(Prepared::Newer(found));
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step)?;
    }
    if found < known {
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])?;
    }
    tx.commit()?;
    Ok(())
}

/// The store thread: takes every waiting request, runs the writes in one transaction, and
/// answers after the commit.
fn serve(mut conn: Connection, requests: &Receiver<Request>, commits: &AtomicU64, name: &str) {
    while let Ok(first) = requests.recv() {
        let mut writes: Vec<(Option<Completion>, Result<()>)> = Vec::new();
        let mut open = false;
        for request in std::iter::once(first).chain(requests.try_iter()) {
            let (op, done) = match request {
                Request::Load(reply) => {
                    // Reads see every write queued before them: commit those first.
                    finish(&mut open, &mut conn, &mut writes, commits, name);
                    let answer = load_rules(&conn).map(|rules| Snapshot {
                        rules,
                        ..Snapshot::default()
                    });
                    let _ = reply.send(answer.map_err(|e| sql_error(name, e)));
                    continue;
                }
                Request::Write(op, done) => (op, done),
            };
            if !open {
                match conn.execute_batch("BEGIN IMMEDIATE") {
                    Ok(()) => open = true,
                    Err(e) => {
                        if let Some(done) = done {
                            done(Err(sql_error(name, e)));
                        }
                        continue;
                    }
                }
            }
            let outcome = write(&conn, &op).map_err(|e| sql_error(name, e));
            writes.push((done, outcome));
        }
        finish(&mut open, &mut conn, &mut writes, commits, name);
    }
}

/// Commits the open transaction (if any) and answers its writers: each with its own result
/// if the commit succeeded, every one with the commit's error otherwise.
fn finish(
    open: &mut bool,
    conn: &mut Connection,
    writes: &mut Vec<(Option<Completion>, Result<()>)>,
    commits: &AtomicU64,
    name: &str,
) {
    if !std::mem::take(open) {
        return;
    }
    let committed = conn.execute_batch("COMMIT");
    if committed.is_ok() {
        commits.fetch_add(1, Ordering::Relaxed);
    } else {
        // A failed COMMIT may leave the transaction open; nothing of it is kept.
        let _ = conn.execute_batch("ROLLBACK");
    }
    for (done, outcome) in writes.drain(..) {
        let answer = match &committed {
            Ok(()) => outcome,
            Err(e) => Err(Error::Storage(format!("store {name}: commit failed: {e}"))),
        };
        if let Some(done) = done {
            done(answer);
        }
    }
}

/// One write in its own savepoint: if it fails, it is undone and the others in the
/// transaction are kept.
fn write(conn: &Connection, op: &Write) -> rusqlite::Result<()> {
    conn.execute_batch("SAVEPOINT op")?;
    let result = match op {
        Write::SaveRule(rule) => save_rule(conn, rule),
        Write::DeleteRule {
            presentity,
            watcher,
        } => delete_rule(conn, presentity, watcher),
        _ => Err(rusqlite::Error::InvalidParameterName(
            "this store does not keep that kind of item yet".into(),
        )),
    };
    match result {
        Ok(()) => conn.execute_batch("RELEASE op"),
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
            Err(e)
        }
    }
}

/// The kind column and key of a watcher match (its identity within a presentity's rules).
fn watcher_slot(watcher: &WatcherMatch) -> (&'static str, String) {
    match watcher {
        WatcherMatch::Watcher(uri) => ("watcher", watcher_key(uri)),
        WatcherMatch::Domain(domain) => ("domain", domain.to_ascii_lowercase()),
    }
}

fn save_rule(conn: &Connection, rule: &AuthRule) -> rusqlite::Result<()> {
    let (kind, key) = watcher_slot(&rule.watcher);
    let value = match &rule.watcher {
        WatcherMatch::Watcher(uri) => uri.to_string(),
        WatcherMatch::Domain(domain) => domain.clone(),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO rules
             (presentity_key, watcher_kind, watcher_key, presentity_uri, watcher_value, action)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        presentity_key(&rule.presentity),
        kind,
        key,
        rule.presentity.to_string(),
        value,
        rule.action.as_str(),
    ])?;
    Ok(())
}

fn delete_rule(
    conn: &Connection,
    presentity: &Uri,
    watcher: &WatcherMatch,
) -> rusqlite::Result<()> {
    let (kind, key) = watcher_slot(watcher);
    conn.prepare_cached(
        "DELETE FROM rules WHERE presentity_key = ?1 AND watcher_kind = ?2 AND watcher_key = ?3",
    )?
    .execute(params![presentity_key(presentity), kind, key])?;
    Ok(())
}

/// Every rule, in [`crate::engine::authorization::RuleBook::rules`] order: by presentity key,
/// then watcher rules by watcher key, then domain rules by domain (byte order, as Rust
/// compares strings).
fn load_rules(conn: &Connection) -> rusqlite::Result<Vec<AuthRule>> {
    let mut statement = conn.prepare_cached(
        "SELECT presentity_uri, watcher_kind, watcher_value, action FROM rules
         ORDER BY presentity_key, watcher_kind = 'domain', watcher_key",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut rules = Vec::new();
    for row in rows {
        let (presentity, kind, value, action) = row?;
        let bad = |what: String| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("stored rule: {what}").into(),
            )
        };
        let presentity = Uri::parse(&presentity).map_err(|e| bad(e.to_string()))?;
        let watcher = match kind.as_str() {
            "watcher" => WatcherMatch::Watcher(Uri::parse(&value).map_err(|e| bad(e.to_string()))?),
            "domain" => WatcherMatch::Domain(value),
            other => return Err(bad(format!("unknown watcher kind '{other}'"))),
        };
        let action = action.parse().map_err(|e: Error| bad(e.to_string()))?;
        rules.push(AuthRule::new(presentity, watcher, action));
    }
    Ok(rules)
}

/// Maps an SQLite failure to the crate's error (see the module documentation).
fn sql_error(name: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Error::Malformed(format!("store {name} is not a usable SQLite database: {e}"))
        }
        _ => Error::Storage(format!("store {name}: {e}")),
    }
}
