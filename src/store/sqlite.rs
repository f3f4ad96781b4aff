//! The default durable [`Store`]: SQLite in one file (DESIGN §4).
//!
//! # Durability
//!
//! The file is in WAL mode with `synchronous=FULL`: every commit syncs the write-ahead log
//! before it returns, and completions are called only after the commit of their write, so a
//! completion called with `Ok` (and so an `Ok` from [`Store::write`], `save_rule` or
//! `delete_rule`) means the change is on disk and survives a crash or power loss right after. (`synchronous=NORMAL`, the usual pairing with
//! WAL, syncs only at checkpoints: a power loss could lose the last commits after they were
//! acknowledged, which the [`Store`] contract forbids.)
//!
//! # Group commit
//!
//! One store thread owns the connection. [`Store::submit`] only queues the write (with its
//! completion) for that thread and returns. The thread takes the first waiting request and
//! everything queued behind it, runs the writes in one transaction (each in its own
//! savepoint, so one failing write fails alone), commits once, then calls every completion,
//! in submission order. While a commit is syncing, new requests queue up and go into the next
//! transaction, so N writes submitted close together cost about one sync, not N — whether
//! they come from N threads waiting on [`Store::write`] or from one thread submitting
//! asynchronously.
//!
//! # Writes behind: soft state waits for a window
//!
//! A write submitted without a completion is one nobody waits for: the engine writes soft
//! state (publications, subscriptions, list dialogs, endpoints) behind, and their owners
//! restore them anyway after a `412` or `481` (see [`crate::store`]). Such a write does not
//! start a commit of its own: the store thread waits up to the *write-behind window*
//! ([`WRITE_BEHIND`], 100 ms by default; [`SqliteStore::set_write_behind`]) for more, and
//! commits everything that came in one transaction. Under a steady stream of PUBLISHes
//! (200 a second) that is one commit and one sync every window instead of one per
//! PUBLISH, and the store thread is woken once per window, not once per write (submitting
//! during the window only queues; nothing wakes the thread until the window ends).
//!
//! Anything that waits — a write with a completion, a [`Store::load`], a [`Store::flush`] —
//! ends the window at once: it is committed with everything queued before it, in submission
//! order, so a completion still means on disk, for its own write and every earlier one.
//! Dropping the store commits what is queued. So the window changes only what a crash of
//! the process or a power loss may take: the soft state of the last window, which is what
//! soft state already allowed ("the last few milliseconds"), now bounded by the window.
//!
//! A transaction holds at most [`MAX_BATCH`] (4096) writes: when a writer keeps the queue
//! full, the thread commits and answers every 4096 writes rather than when the queue first
//! runs dry, so a completion waits for at most 4096 writes' work plus one sync (a few
//! milliseconds), and the memory of one transaction stays bounded.
//!
//! A read ([`Store::load`]) first commits and answers the writes queued before it, then
//! reads every table in one read transaction, so it sees every write submitted before it and
//! a consistent state across tables.
//!
//! # Schema
//!
//! A `schema_version` table holds one row, the number of [`MIGRATIONS`] applied. Opening a
//! file applies the missing ones in order, in one transaction; a file whose version is newer
//! than this library knows is refused ([`Error::Unsupported`]) rather than misread. The
//! tables are described on [`MIGRATIONS`].
//!
//! Unsigned values (`u64` ids, times, sequence numbers, intervals) are stored as SQLite
//! integers, which are signed 64-bit: values up to `i64::MAX` are kept exactly; a write with
//! a larger value is refused ([`Error::InvalidArgument`] in its completion) rather than
//! wrapped. (`i64::MAX` milliseconds is about 292 million years.) Deleting a message,
//! subscription or list dialog whose id is above `i64::MAX` is `Ok` and changes nothing: it
//! cannot be stored.
//!
//! # Errors
//!
//! A file that is not an SQLite database, or is corrupt, is [`Error::Malformed`]. Opening a
//! file runs `PRAGMA quick_check` (a structural check of every page, without the index
//! cross-checks of `integrity_check`), so a file that was truncated or overwritten is
//! refused at open rather than loaded short; corruption that appears later fails the read
//! that meets it, also as [`Error::Malformed`]. A stored value that does not parse back (a
//! URI, a package name, a negative number) is [`Error::Malformed`] naming the table and the
//! row. A newer schema is [`Error::Unsupported`]; every other SQLite failure (cannot open,
//! I/O error, disk full, locked) is [`Error::Storage`] with the SQLite message and the file
//! name.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::{
    Completion, Credential, EndpointRecord, ListDialogRecord, PublicationRecord, Snapshot, Store,
    StoredMessage, SubscriptionRecord, Write,
};
use crate::error::{Error, Result};
use crate::model::key::{presentity_key, watcher_key};
use crate::model::list::{ListEntry, Resource, ResourceList};
use crate::model::package::Package;
use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
use crate::uri::Uri;

/// The schema, one step per version: `MIGRATIONS[i]` takes a file from version `i` to
/// `i + 1`. Steps are only ever appended, never edited.
///
/// Version 1, the rules: the primary key is the rule's identity as [`crate::model::rule`]
/// defines it — the presentity key, the kind of match, and the watcher key (for `watcher`)
/// or the lower-cased domain (for `domain`).
/// `presentity_uri` and `watcher_value` keep the URI or domain as it was given, so a loaded
/// rule equals the saved one.
///
/// Version 2, every other record of [`Snapshot`]. URIs are kept as given (their canonical
/// text); where the identity is a user or presentity, its
/// [`presentity_key`] is a column of the key, so URIs that name the same user replace each
/// other. Packages are kept by name ([`Package::as_str`]). `u64` values are `INTEGER`s
/// (see the module documentation). Bodies that are bytes are `BLOB`s.
///
/// - `messages`: key `id`.
/// - `endpoints`: key `user_key` (presentity key of `user_uri`) and `endpoint`.
/// - `publications`: key `etag`; indexed by `presentity_key`, `seq` (the load order).
/// - `subscriptions`: key `id`; `target` is the remote target's opaque bytes.
/// - `credentials`: key `user_key` (presentity key of `user_uri`).
///
/// Version 3: `messages.wire`, the message as the sender's transport received it (a BLOB,
/// NULL for messages sent through the API and for those stored by earlier versions).
///
/// Version 4, resource lists ([`crate::model::list`]): `lists` holds one row per list, key
/// `list_key` ([`ResourceList::key`]), with its URI as given, its display name and its
/// packages (names, comma-separated, in order); `list_entries` its entries, key `list_key`
/// and `position` (0, 1, ...: the list's order), each a `resource` (URI and display name)
/// or a `reference` (the URI of another list). Saving a list replaces its row and all its
/// entries; deleting it deletes both (the entries also go with their list by foreign key).
///
/// Version 5: `rules.target`, the URI a `redirect` rule sends watchers to (NULL for every
/// other action, and for the rules of earlier versions, none of which redirects).
///
/// Version 6: `list_dialogs`, the list server's dialogs ([`ListDialogRecord`]), key `id`;
/// `watcher` is the URI as given, `package` its name, `record` the list server's opaque
/// bytes. Soft state like `subscriptions`: written behind, restored at start.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE rules (
        presentity_key TEXT NOT NULL,
        watcher_kind   TEXT NOT NULL CHECK (watcher_kind IN ('watcher', 'domain')),
        watcher_key    TEXT NOT NULL,
        presentity_uri TEXT NOT NULL,
        watcher_value  TEXT NOT NULL,
        action         TEXT NOT NULL,
        PRIMARY KEY (presentity_key, watcher_kind, watcher_key)
    ) WITHOUT ROWID;",
    "CREATE TABLE messages (
        id           INTEGER PRIMARY KEY,
        sender       TEXT NOT NULL,
        recipient    TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body         BLOB NOT NULL,
        endpoint     TEXT NULL,
        in_reply_to  TEXT NULL,
        sent_at      INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE TABLE endpoints (
        user_key   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        user_uri   TEXT NOT NULL,
        contact    TEXT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (user_key, endpoint)
    ) WITHOUT ROWID;
    CREATE TABLE publications (
        etag           TEXT NOT NULL PRIMARY KEY,
        presentity_key TEXT NOT NULL,
        presentity_uri TEXT NOT NULL,
        package        TEXT NOT NULL,
        body           TEXT NOT NULL,
        expires_at     INTEGER NOT NULL,
        seq            INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX publications_by_presentity ON publications (presentity_key, seq, etag);
    CREATE TABLE subscriptions (
        id              INTEGER PRIMARY KEY,
        watcher         TEXT NOT NULL,
        presentity      TEXT NOT NULL,
        package         TEXT NOT NULL,
        expires_at      INTEGER NOT NULL,
        filter          TEXT NULL,
        min_interval_ms INTEGER NOT NULL,
        action          TEXT NOT NULL,
        target          BLOB NOT NULL
    );
    CREATE TABLE credentials (
        user_key   TEXT NOT NULL PRIMARY KEY,
        user_uri   TEXT NOT NULL,
        realm      TEXT NOT NULL,
        ha1_md5    TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL
    ) WITHOUT ROWID;",
    "ALTER TABLE messages ADD COLUMN wire BLOB NULL;",
    "CREATE TABLE lists (
        list_key     TEXT NOT NULL PRIMARY KEY,
        uri          TEXT NOT NULL,
        display_name TEXT NULL,
        packages     TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE list_entries (
        list_key     TEXT NOT NULL REFERENCES lists (list_key) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('resource', 'reference')),
        uri          TEXT NOT NULL,
        display_name TEXT NULL,
        PRIMARY KEY (list_key, position)
    ) WITHOUT ROWID;",
    "ALTER TABLE rules ADD COLUMN target TEXT NULL;",
    "CREATE TABLE list_dialogs (
        id         INTEGER PRIMARY KEY,
        watcher    TEXT NOT NULL,
        package    TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        record     BLOB NOT NULL
    );",
];

/// The most writes one transaction holds (see "Group commit" in the module documentation).
pub const MAX_BATCH: usize = 4096;

/// How long a write nobody waits for may wait for others to share its commit (see
/// "Writes behind" in the module documentation).
pub const WRITE_BEHIND: Duration = Duration::from_millis(100);

/// How long a statement waits for a lock held by another connection to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in an SQLite file (or in memory, for tests). See the module documentation for
/// durability, group commit and the schema.
#[derive(Debug)]
pub struct SqliteStore {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    /// The write-behind window in microseconds, read by the store thread at each window.
    write_behind_us: Arc<AtomicU64>,
    name: Arc<str>,
}

// Nearly every request is a write, so the small `Load` variant wastes nothing; boxing the
// write would only add an allocation per submit.
#[allow(clippy::large_enum_variant)]
enum Request {
    Write(Box<Write>, Option<Completion>),
    Load(Sender<Result<Snapshot>>),
    /// Answered once every write before it is committed and its completion returned.
    Flush(Sender<()>),
}

impl Request {
    /// Whether someone waits for it: it ends the write-behind window at once.
    fn awaited(&self) -> bool {
        !matches!(self, Request::Write(_, None))
    }
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, and brings its schema
    /// up to date.
    ///
    /// Errors: [`Error::Malformed`] (not an SQLite database, or corrupt: `PRAGMA quick_check`
    /// is run on open),
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
            Prepared::Corrupt(problems) => Error::Malformed(format!(
                "store {name} is not a usable SQLite database: quick_check found: {problems}"
            )),
        })?;
        let (requests, receiver) = crossbeam_channel::unbounded();
        let commits = Arc::new(AtomicU64::new(0));
        let write_behind_us = Arc::new(AtomicU64::new(WRITE_BEHIND.as_micros() as u64));
        let thread = {
            let commits = Arc::clone(&commits);
            let window = Arc::clone(&write_behind_us);
            let thread_name = Arc::clone(&name);
            std::thread::Builder::new()
                .name("impp-store".into())
                .spawn(move || serve(conn, &receiver, &commits, &window, &thread_name))
                .map_err(|e| Error::Internal(format!("store {name}: cannot start thread: {e}")))?
        };
        Ok(SqliteStore {
            requests: Some(requests),
            thread: Some(thread),
            commits,
            write_behind_us,
            name,
        })
    }

    /// Sets the write-behind window (default [`WRITE_BEHIND`]): how long a write submitted
    /// without a completion may wait for others before it is committed. Zero commits every
    /// write as soon as the store thread takes it. Takes effect from the next window.
    pub fn set_write_behind(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.write_behind_us.store(us, Ordering::Relaxed);
    }

    /// The write-behind window in force.
    pub fn write_behind(&self) -> Duration {
        Duration::from_micros(self.write_behind_us.load(Ordering::Relaxed))
    }

    /// Ends the write-behind window now, for a request someone waits for.
    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
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
        self.wake();
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
        let awaited = done.is_some();
        if let Err(e) = requests.send(Request::Write(Box::new(write), done)) {
            if let Request::Write(_, Some(done)) = e.into_inner() {
                done(Err(self.stopped()));
            }
        } else if awaited {
            self.wake();
        }
    }

    fn flush(&self) -> Result<()> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.requests
            .as_ref()
            .ok_or_else(|| self.stopped())?
            .send(Request::Flush(reply))
            .map_err(|_| self.stopped())?;
        self.wake();
        answer.recv().map_err(|_| self.stopped())
    }

    fn load(&self) -> Result<Snapshot> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.requests
            .as_ref()
            .ok_or_else(|| self.stopped())?
            .send(Request::Load(reply))
            .map_err(|_| self.stopped())?;
        self.wake();
        answer.recv().map_err(|_| self.stopped())?
    }
}

enum Prepared {
    Sql(rusqlite::Error),
    Newer(i64),
    NotWal(String),
    Corrupt(String),
}

impl From<rusqlite::Error> for Prepared {
    fn from(e: rusqlite::Error) -> Prepared {
        Prepared::Sql(e)
    }
}

/// Sets the connection up (WAL, full sync), checks the file's structure, and applies the
/// missing migrations.
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
    quick_check(conn)?;

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
    for step in &MIGRATIONS[found.max(0) as usize..] {
        tx.execute_batch(step)?;
    }
    if found < known {
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])?;
    }
    tx.commit()?;
    Ok(())
}

/// `PRAGMA quick_check`: every page's structure (a truncated or overwritten file fails it).
/// It answers `ok`, or one row per problem found (the first few are reported).
fn quick_check(conn: &Connection) -> std::result::Result<(), Prepared> {
    let mut statement = conn.prepare("PRAGMA quick_check(10)")?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(Prepared::Corrupt(problems.join("; ")))
    }
}

/// The store thread: collects requests until one is awaited or the write-behind window of
/// the first ends (see the module documentation), then runs them ([`run_requests`]).
fn serve(
    mut conn: Connection,
    requests: &Receiver<Request>,
    commits: &AtomicU64,
    window_us: &AtomicU64,
    name: &str,
) {
    let mut queued: Vec<Request> = Vec::new();
    while let Ok(first) = requests.recv() {
        let mut awaited = first.awaited();
        queued.push(first);
        let window = Duration::from_micros(window_us.load(Ordering::Relaxed));
        let ends = Instant::now() + window;
        let mut closed = false;
        loop {
            loop {
                match requests.try_recv() {
                    Ok(request) => {
                        awaited |= request.awaited();
                        queued.push(request);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let now = Instant::now();
            if awaited || closed || now >= ends {
                break;
            }
            // Parked rather than waiting on the channel, so that writes nobody waits for
            // only queue during the window; an awaited request unparks (`SqliteStore::wake`).
            std::thread::park_timeout(ends - now);
        }
        run_requests(&mut conn, queued.drain(..), commits, name);
        if closed {
            return;
        }
    }
}

/// Runs `requests` in order, in transactions of at most [`MAX_BATCH`] writes, and answers
/// each transaction's writers after its commit.
fn run_requests(
    conn: &mut Connection,
    requests: impl Iterator<Item = Request>,
    commits: &AtomicU64,
    name: &str,
) {
    let mut writes: Vec<(Option<Completion>, Result<()>)> = Vec::new();
    let mut open = false;
    for request in requests {
        let (op, done) = match request {
            Request::Load(reply) => {
                // Reads see every write queued before them: commit those first.
                finish(&mut open, conn, &mut writes, commits, name);
                let _ = reply.send(load(conn, name));
                continue;
            }
            Request::Flush(reply) => {
                finish(&mut open, conn, &mut writes, commits, name);
                let _ = reply.send(());
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
        let outcome = write(conn, &op, name);
        writes.push((done, outcome));
        if writes.len() >= MAX_BATCH {
            finish(&mut open, conn, &mut writes, commits, name);
        }
    }
    finish(&mut open, conn, &mut writes, commits, name);
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

/// Runs one cached statement that takes no parameters (the savepoint commands).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// One write in its own savepoint: if it fails, it is undone and the others in the
/// transaction are kept.
fn write(conn: &Connection, op: &Write, name: &str) -> Result<()> {
    run(conn, "SAVEPOINT op").map_err(|e| sql_error(name, e))?;
    match apply(conn, op, name) {
        Ok(()) => run(conn, "RELEASE op").map_err(|e| sql_error(name, e)),
        Err(e) => {
            run(conn, "ROLLBACK TO op")
                .and_then(|()| run(conn, "RELEASE op"))
                .map_err(|e| sql_error(name, e))?;
            Err(e)
        }
    }
}

/// A `u64` as the signed integer SQLite keeps, or a clear refusal above `i64::MAX`.
fn int(value: u64, what: &str, name: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::InvalidArgument(format!(
            "store {name}: {what} {value} is above {}, the largest integer SQLite keeps; \
             not stored",
            i64::MAX
        ))
    })
}

/// Executes one cached statement with `params`.
fn exec(conn: &Connection, name: &str, sql: &str, params: impl rusqlite::Params) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(|e| sql_error(name, e))?;
    Ok(())
}

fn apply(conn: &Connection, op: &Write, name: &str) -> Result<()> {
    match op {
        Write::SaveRule(rule) => save_rule(conn, rule).map_err(|e| sql_error(name, e)),
        Write::DeleteRule {
            presentity,
            watcher,
        } => delete_rule(conn, presentity, watcher).map_err(|e| sql_error(name, e)),
        Write::SaveMessage(m) => save_message(conn, m, name),
        Write::DeleteMessage(id) => match i64::try_from(*id) {
            Ok(id) => exec(conn, name, "DELETE FROM messages WHERE id = ?1", [id]),
            // Never stored: deleting it is a no-op.
            Err(_) => Ok(()),
        },
        Write::SaveEndpoint(e) => exec(
            conn,
            name,
            "INSERT OR REPLACE INTO endpoints (user_key, endpoint, user_uri, contact, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                presentity_key(&e.user),
                e.endpoint,
                e.user.to_string(),
                e.contact,
                int(e.expires_at, "endpoint expiry", name)?,
            ],
        ),
        Write::DeleteEndpoint { user, endpoint } => exec(
            conn,
            name,
            "DELETE FROM endpoints WHERE user_key = ?1 AND endpoint = ?2",
            params![presentity_key(user), endpoint],
        ),
        Write::SavePublication {
            publication: p,
            previous_etag,
        } => {
            let expires_at = int(p.expires_at, "publication expiry", name)?;
            let seq = int(p.seq, "publication seq", name)?;
            if let Some(old) = previous_etag {
                exec(
                    conn,
                    name,
                    "DELETE FROM publications WHERE etag = ?1",
                    [old],
                )?;
            }
            exec(
                conn,
                name,
                "INSERT OR REPLACE INTO publications
                     (etag, presentity_key, presentity_uri, package, body, expires_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.etag,
                    presentity_key(&p.presentity),
                    p.presentity.to_string(),
                    p.package.as_str(),
                    p.body,
                    expires_at,
                    seq,
                ],
            )
        }
        Write::DeletePublication(etag) => exec(
            conn,
            name,
            "DELETE FROM publications WHERE etag = ?1",
            [etag],
        ),
        Write::SaveSubscription(s) => exec(
            conn,
            name,
            "INSERT OR REPLACE INTO subscriptions
                 (id, watcher, presentity, package, expires_at, filter, min_interval_ms,
                  action, target)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                int(s.id, "subscription id", name)?,
                s.watcher.to_string(),
                s.presentity.to_string(),
                s.package.as_str(),
                int(s.expires_at, "subscription expiry", name)?,
                s.filter,
                int(s.min_interval_ms, "subscription min_interval_ms", name)?,
                s.action.as_str(),
                s.target,
            ],
        ),
        Write::DeleteSubscription(id) => match i64::try_from(*id) {
            Ok(id) => exec(conn, name, "DELETE FROM subscriptions WHERE id = ?1", [id]),
            Err(_) => Ok(()),
        },
        Write::SaveCredential(c) => exec(
            conn,
            name,
            "INSERT OR REPLACE INTO credentials (user_key, user_uri, realm, ha1_md5, ha1_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                presentity_key(&c.user),
                c.user.to_string(),
                c.realm,
                c.ha1_md5,
                c.ha1_sha256,
            ],
        ),
        Write::DeleteCredential(user) => exec(
            conn,
            name,
            "DELETE FROM credentials WHERE user_key = ?1",
            [presentity_key(user)],
        ),
        Write::SaveList(list) => save_list(conn, list, name),
        Write::DeleteList(uri) => delete_list(conn, &presentity_key(uri), name),
        Write::SaveListDialog(d) => exec(
            conn,
            name,
            "INSERT OR REPLACE INTO list_dialogs (id, watcher, package, expires_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                int(d.id, "list dialog id", name)?,
                d.watcher.to_string(),
                d.package.as_str(),
                int(d.expires_at, "list dialog expiry", name)?,
                d.record,
            ],
        ),
        Write::DeleteListDialog(id) => match i64::try_from(*id) {
            Ok(id) => exec(conn, name, "DELETE FROM list_dialogs WHERE id = ?1", [id]),
            // Never stored: deleting it is a no-op.
            Err(_) => Ok(()),
        },
    }
}

fn delete_list(conn: &Connection, key: &str, name: &str) -> Result<()> {
    exec(
        conn,
        name,
        "DELETE FROM list_entries WHERE list_key = ?1",
        [key],
    )?;
    exec(conn, name, "DELETE FROM lists WHERE list_key = ?1", [key])
}

fn save_list(conn: &Connection, list: &ResourceList, name: &str) -> Result<()> {
    let key = list.key();
    delete_list(conn, &key, name)?;
    let packages: Vec<&str> = list.packages.iter().map(|p| p.as_str()).collect();
    exec(
        conn,
        name,
        "INSERT INTO lists (list_key, uri, display_name, packages) VALUES (?1, ?2, ?3, ?4)",
        params![
            key,
            list.uri.to_string(),
            list.display_name,
            packages.join(",")
        ],
    )?;
    for (position, entry) in list.entries.iter().enumerate() {
        let (kind, uri, display_name) = match entry {
            ListEntry::Resource(r) => ("resource", &r.uri, r.display_name.as_deref()),
            ListEntry::Reference(uri) => ("reference", uri, None),
        };
        exec(
            conn,
            name,
            "INSERT INTO list_entries (list_key, position, kind, uri, display_name)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                key,
                int(position as u64, "list entry position", name)?,
                kind,
                uri.to_string(),
                display_name,
            ],
        )?;
    }
    Ok(())
}

fn save_message(conn: &Connection, m: &StoredMessage, name: &str) -> Result<()> {
    exec(
        conn,
        name,
        "INSERT OR REPLACE INTO messages (id, sender, recipient, content_type, body, endpoint,
             in_reply_to, sent_at, expires_at, wire)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            int(m.id, "message id", name)?,
            m.sender.to_string(),
            m.recipient.to_string(),
            m.content_type,
            m.body,
            m.endpoint,
            m.in_reply_to,
            int(m.sent_at, "message sent_at", name)?,
            int(m.expires_at, "message expires_at", name)?,
            m.wire,
        ],
    )
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
             (presentity_key, watcher_kind, watcher_key, presentity_uri, watcher_value, action,
              target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        presentity_key(&rule.presentity),
        kind,
        key,
        rule.presentity.to_string(),
        value,
        rule.action.as_str(),
        rule.target.as_ref().map(Uri::to_string),
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

/// Everything stored, in one read transaction, in the orders documented on [`Snapshot`].
/// Text keys are compared bytewise (SQLite's `BINARY` collation), as Rust compares strings.
/// Publications with the same presentity key and seq are ordered by etag (as in
/// [`super::MemoryStore`]).
fn load(conn: &mut Connection, name: &str) -> Result<Snapshot> {
    let tx = conn.transaction().map_err(|e| sql_error(name, e))?;
    let snapshot = Snapshot {
        rules: load_table(
            &tx,
            name,
            "rules",
            "SELECT presentity_key, watcher_kind, watcher_key, presentity_uri, watcher_value,
                    action, target
             FROM rules ORDER BY presentity_key, watcher_kind = 'domain', watcher_key",
            3,
            |row| {
                let presentity = uri(row, 3)?;
                let watcher = match text(row, 1)?.as_str() {
                    "watcher" => WatcherMatch::Watcher(uri(row, 4)?),
                    "domain" => WatcherMatch::Domain(text(row, 4)?),
                    other => return Err(format!("unknown watcher kind '{other}'")),
                };
                let action = text(row, 5)?
                    .parse()
                    .map_err(|e: Error| format!("action: {e}"))?;
                let mut rule = AuthRule::new(presentity, watcher, action);
                rule.target = opt_uri(row, 6)?;
                rule.check().map_err(|e| e.to_string())?;
                Ok(rule)
            },
        )?,
        messages: load_table(
            &tx,
            name,
            "messages",
            "SELECT id, sender, recipient, content_type, body, endpoint, in_reply_to, sent_at,
                    expires_at, wire
             FROM messages ORDER BY id",
            1,
            |row| {
                Ok(StoredMessage {
                    id: uint(row, 0)?,
                    sender: uri(row, 1)?,
                    recipient: uri(row, 2)?,
                    content_type: text(row, 3)?,
                    body: bytes(row, 4)?,
                    endpoint: opt_text(row, 5)?,
                    in_reply_to: opt_text(row, 6)?,
                    sent_at: uint(row, 7)?,
                    expires_at: uint(row, 8)?,
                    wire: column(row, 9)?,
                })
            },
        )?,
        endpoints: load_table(
            &tx,
            name,
            "endpoints",
            "SELECT user_key, endpoint, user_uri, contact, expires_at
             FROM endpoints ORDER BY user_key, endpoint",
            2,
            |row| {
                Ok(EndpointRecord {
                    user: uri(row, 2)?,
                    endpoint: text(row, 1)?,
                    contact: opt_text(row, 3)?,
                    expires_at: uint(row, 4)?,
                })
            },
        )?,
        publications: load_table(
            &tx,
            name,
            "publications",
            "SELECT etag, presentity_uri, package, body, expires_at, seq
             FROM publications ORDER BY presentity_key, seq, etag",
            1,
            |row| {
                Ok(PublicationRecord {
                    etag: text(row, 0)?,
                    presentity: uri(row, 1)?,
                    package: package(row, 2)?,
                    body: text(row, 3)?,
                    expires_at: uint(row, 4)?,
                    seq: uint(row, 5)?,
                })
            },
        )?,
        subscriptions: load_table(
            &tx,
            name,
            "subscriptions",
            "SELECT id, watcher, presentity, package, expires_at, filter, min_interval_ms,
                    action, target
             FROM subscriptions ORDER BY id",
            1,
            |row| {
                Ok(SubscriptionRecord {
                    id: uint(row, 0)?,
                    watcher: uri(row, 1)?,
                    presentity: uri(row, 2)?,
                    package: package(row, 3)?,
                    expires_at: uint(row, 4)?,
                    filter: opt_text(row, 5)?,
                    min_interval_ms: uint(row, 6)?,
                    action: action(row, 7)?,
                    target: bytes(row, 8)?,
                })
            },
        )?,
        credentials: load_table(
            &tx,
            name,
            "credentials",
            "SELECT user_key, user_uri, realm, ha1_md5, ha1_sha256
             FROM credentials ORDER BY user_key",
            1,
            |row| {
                Ok(Credential {
                    user: uri(row, 1)?,
                    realm: text(row, 2)?,
                    ha1_md5: text(row, 3)?,
                    ha1_sha256: text(row, 4)?,
                })
            },
        )?,
        lists: load_lists(&tx, name)?,
        list_dialogs: load_table(
            &tx,
            name,
            "list_dialogs",
            "SELECT id, watcher, package, expires_at, record FROM list_dialogs ORDER BY id",
            1,
            |row| {
                Ok(ListDialogRecord {
                    id: uint(row, 0)?,
                    watcher: uri(row, 1)?,
                    package: package(row, 2)?,
                    expires_at: uint(row, 3)?,
                    record: bytes(row, 4)?,
                })
            },
        )?,
    };
    // Read only: ending the transaction either way keeps nothing.
    tx.commit().map_err(|e| sql_error(name, e))?;
    Ok(snapshot)
}

/// The lists by key, each with its entries in position order.
fn load_lists(conn: &Connection, name: &str) -> Result<Vec<ResourceList>> {
    let mut lists = load_table(
        conn,
        name,
        "lists",
        "SELECT list_key, uri, display_name, packages FROM lists ORDER BY list_key",
        1,
        |row| {
            let packages = text(row, 3)?
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse()
                        .map_err(|e: Error| format!("column packages: {e}"))
                })
                .collect::<std::result::Result<Vec<Package>, String>>()?;
            Ok(ResourceList {
                uri: uri(row, 1)?,
                display_name: opt_text(row, 2)?,
                packages,
                entries: Vec::new(),
            })
        },
    )?;
    let at: std::collections::HashMap<String, usize> = lists
        .iter()
        .enumerate()
        .map(|(i, l)| (l.key(), i))
        .collect();
    let entries = load_table(
        conn,
        name,
        "list_entries",
        "SELECT list_key, position, kind, uri, display_name FROM list_entries
         ORDER BY list_key, position",
        2,
        |row| {
            let key = text(row, 0)?;
            let index = *at
                .get(&key)
                .ok_or_else(|| format!("no list has the key '{key}'"))?;
            let entry = match text(row, 2)?.as_str() {
                "resource" => ListEntry::Resource(Resource {
                    uri: uri(row, 3)?,
                    display_name: opt_text(row, 4)?,
                }),
                "reference" => ListEntry::Reference(uri(row, 3)?),
                other => return Err(format!("unknown entry kind '{other}'")),
            };
            Ok((index, entry))
        },
    )?;
    for (index, entry) in entries {
        lists[index].entries.push(entry);
    }
    Ok(lists)
}

/// The rows of one query, each turned into an item by `parse`. A row whose values do not
/// parse back is [`Error::Malformed`] naming the table and the row (by its first `key`
/// columns, which the query selects first).
fn load_table<T>(
    conn: &Connection,
    name: &str,
    table: &str,
    sql: &str,
    key: usize,
    parse: impl Fn(&Row<'_>) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(|e| sql_error(name, e))?;
    let mut rows = statement.query([]).map_err(|e| sql_error(name, e))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sql_error(name, e))? {
        match parse(row) {
            Ok(item) => items.push(item),
            Err(what) => {
                return Err(Error::Malformed(format!(
                    "store {name}: table {table}, row {}: {what}",
                    describe(row, key)
                )))
            }
        }
    }
    Ok(items)
}

/// The first `key` columns of a row, as `column=value` (for error messages).
fn describe(row: &Row<'_>, key: usize) -> String {
    (0..key)
        .map(|i| {
            let column = row.as_ref().column_name(i).unwrap_or("?");
            let value = match row.get_ref(i) {
                Ok(ValueRef::Null) => "NULL".to_owned(),
                Ok(ValueRef::Integer(n)) => n.to_string(),
                Ok(ValueRef::Real(f)) => f.to_string(),
                Ok(ValueRef::Text(t)) => {
                    let t = String::from_utf8_lossy(t);
                    let short: String = t.chars().take(80).collect();
                    format!("'{short}'")
                }
                Ok(ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                Err(e) => format!("<{e}>"),
            };
            format!("{column}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column `i` of `row` as `T`, or what was wrong with it.
fn column<T: rusqlite::types::FromSql>(row: &Row<'_>, i: usize) -> std::result::Result<T, String> {
    row.get::<_, T>(i).map_err(|e| {
        let column = row.as_ref().column_name(i).unwrap_or("?");
        format!("column {column}: {e}")
    })
}

fn text(row: &Row<'_>, i: usize) -> std::result::Result<String, String> {
    column(row, i)
}

fn opt_text(row: &Row<'_>, i: usize) -> std::result::Result<Option<String>, String> {
    column(row, i)
}

fn bytes(row: &Row<'_>, i: usize) -> std::result::Result<Vec<u8>, String> {
    column(row, i)
}

/// A `u64` column: stored as a non-negative SQLite integer.
fn uint(row: &Row<'_>, i: usize) -> std::result::Result<u64, String> {
    let n: i64 = column(row, i)?;
    u64::try_from(n).map_err(|_| {
        let column = row.as_ref().column_name(i).unwrap_or("?");
        format!("column {column}: negative value {n}")
    })
}

fn uri(row: &Row<'_>, i: usize) -> std::result::Result<Uri, String> {
    let value = text(row, i)?;
    Uri::parse(&value).map_err(|e| {
        let column = row.as_ref().column_name(i).unwrap_or("?");
        format!("column {column}: {e}")
    })
}

fn opt_uri(row: &Row<'_>, i: usize) -> std::result::Result<Option<Uri>, String> {
    if opt_text(row, i)?.is_none() {
        return Ok(None);
    }
    uri(row, i).map(Some)
}

fn package(row: &Row<'_>, i: usize) -> std::result::Result<Package, String> {
    let value = text(row, i)?;
    value.parse().map_err(|e: Error| {
        let column = row.as_ref().column_name(i).unwrap_or("?");
        format!("column {column}: {e}")
    })
}

fn action(row: &Row<'_>, i: usize) -> std::result::Result<AuthAction, String> {
    let value = text(row, i)?;
    value.parse().map_err(|e: Error| {
        let column = row.as_ref().column_name(i).unwrap_or("?");
        format!("column {column}: {e}")
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredMessage;

    fn message(id: u64, sent_at: u64) -> StoredMessage {
        StoredMessage {
            id,
            sender: Uri::parse("sip:alice@x").unwrap(),
            recipient: Uri::parse("sip:bob@x").unwrap(),
            content_type: "text/plain".into(),
            body: b"hi".to_vec(),
            endpoint: None,
            in_reply_to: None,
            sent_at,
            expires_at: u64::try_from(i64::MAX).unwrap(),
            wire: None,
        }
    }

    #[test]
    fn u64_values_round_trip_up_to_i64_max_and_larger_ones_are_refused() {
        let store = SqliteStore::in_memory().unwrap();
        let max = u64::try_from(i64::MAX).unwrap();
        let kept = message(max, max);
        store.write(Write::SaveMessage(kept.clone())).unwrap();

        for (too_big, what) in [
            (message(max + 1, 1), "message id"),
            (message(1, u64::MAX), "message sent_at"),
        ] {
            match store.write(Write::SaveMessage(too_big)) {
                Err(Error::InvalidArgument(m)) => {
                    assert!(m.contains(what), "{m}");
                    assert!(m.contains("9223372036854775807"), "{m}");
                }
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        }
        // Deleting an id that cannot be stored is a no-op, not an error.
        store.write(Write::DeleteMessage(u64::MAX)).unwrap();
        // Nothing of the refused writes was kept; the good one was.
        assert_eq!(store.load().unwrap().messages, vec![kept]);
    }

    #[test]
    fn a_stored_value_that_does_not_parse_back_is_malformed_naming_table_and_row() {
        let conn = Connection::open_in_memory().unwrap();
        for step in MIGRATIONS {
            conn.execute_batch(step).unwrap();
        }
        conn.execute(
            "INSERT INTO publications VALUES ('tag-1', 'alice@x', 'sip:alice@x', 'weather', '',
                 1, 1)",
            [],
        )
        .unwrap();
        match load(&mut { conn }, "test.db") {
            Err(Error::Malformed(m)) => {
                assert!(m.contains("table publications"), "{m}");
                assert!(m.contains("etag='tag-1'"), "{m}");
                assert!(m.contains("weather"), "{m}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }

        let conn = Connection::open_in_memory().unwrap();
        for step in MIGRATIONS {
            conn.execute_batch(step).unwrap();
        }
        conn.execute(
            "INSERT INTO messages VALUES (7, 'not a uri', 'sip:bob@x', 'text/plain', x'00', NULL,
                 NULL, 1, 2, NULL)",
            [],
        )
        .unwrap();
        match load(&mut { conn }, "test.db") {
            Err(Error::Malformed(m)) => {
                assert!(m.contains("table messages"), "{m}");
                assert!(m.contains("id=7"), "{m}");
                assert!(m.contains("sender"), "{m}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }

        let conn = Connection::open_in_memory().unwrap();
        for step in MIGRATIONS {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO lists VALUES ('blf@x', 'sip:blf@x', NULL, 'presence,weather');",
        )
        .unwrap();
        match load(&mut { conn }, "test.db") {
            Err(Error::Malformed(m)) => {
                assert!(m.contains("table lists"), "{m}");
                assert!(m.contains("list_key='blf@x'"), "{m}");
                assert!(m.contains("weather"), "{m}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }

        let conn = Connection::open_in_memory().unwrap();
        for step in MIGRATIONS {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO list_dialogs VALUES (12, 'sip:bob@x', 'presence', -1, x'00');",
        )
        .unwrap();
        match load(&mut { conn }, "test.db") {
            Err(Error::Malformed(m)) => {
                assert!(m.contains("table list_dialogs"), "{m}");
                assert!(m.contains("id=12"), "{m}");
                assert!(m.contains("expires_at"), "{m}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn a_list_dialog_id_above_i64_max_is_refused_and_deleting_it_is_a_no_op() {
        let store = SqliteStore::in_memory().unwrap();
        let dialog = |id: u64| ListDialogRecord {
            id,
            watcher: Uri::parse("sip:bob@x").unwrap(),
            package: Package::Presence,
            expires_at: 1,
            record: vec![1, 2, 3],
        };
        let max = u64::try_from(i64::MAX).unwrap();
        store.write(Write::SaveListDialog(dialog(max))).unwrap();
        match store.write(Write::SaveListDialog(dialog(max + 1))) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("list dialog id"), "{m}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        store.write(Write::DeleteListDialog(u64::MAX)).unwrap();
        assert_eq!(store.load().unwrap().list_dialogs, vec![dialog(max)]);
    }
}
