//! The control socket of a running imppd (what `imppd ctl` talks to): a Unix domain socket,
//! by default the database's path with `.ctl` added, mode 0600 so that only imppd's own user
//! may connect (a connection is trusted with everything: users, passwords, decisions).
//!
//! One request per connection: a line holding one JSON object, `{"cmd":"pending",
//! "args":["sip:alice@example.test"]}`, and one JSON line back: `{"ok":true,"result":...}`
//! (with `"columns"`, the order a person wants the result's fields in, and `"message"` for a
//! change), or `{"ok":false,"error":"...","usage":true|false}` (`usage`: the request itself
//! was wrong; nothing changed). Served on a thread of its own, one connection at a time, with
//! a bounded request size and read/write timeouts, so a stuck client delays the next by at
//! most a few seconds and never touches the SIP I/O thread. Every operation goes through the
//! engine's API, as an embedder's would.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use impp::engine::{AuthAction, AuthRule, Engine, SubscriptionId};
use impp::sip::SipServer;
use impp::uri::Uri;
use serde_json::{json, Value};

use super::reload::Reloader;
use super::rules;

/// The option that names the socket (`--ctl-socket PATH|none`), for the option parser.
pub const NAMES: [&str; 1] = ["ctl-socket"];

/// The longest request line read; longer is refused unread.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the idle control thread looks for a connection (and for the stop flag).
const POLL: Duration = Duration::from_millis(100);

/// The socket's path for `--ctl-socket` (`None`: not given) and `--db`: `None` when there is
/// to be no socket (`--ctl-socket none`, or `--db none` without `--ctl-socket`).
pub fn socket_path(option: Option<&str>, db: &Path) -> Option<PathBuf> {
    match option {
        Some("none") => None,
        Some(path) => Some(PathBuf::from(path)),
        None if db.as_os_str() == "none" => None,
        None => Some(default_path(db)),
    }
}

/// `imppd.db` → `imppd.db.ctl`, beside the database.
pub fn default_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".ctl");
    PathBuf::from(name)
}

/// What the control thread answers from besides the engine.
pub struct Context {
    pub engine: Arc<Engine>,
    /// The database (`None`: memory only), for `reload`.
    pub db: Option<PathBuf>,
    pub domains: Vec<String>,
    pub listening: Vec<String>,
    /// For the SIP counters of `stats`.
    pub server: Arc<Mutex<SipServer>>,
    /// `reload` and `log-level`, as SIGHUP reloads.
    pub reloader: Arc<Reloader>,
}

/// The listening socket and its thread; dropping it stops the thread and removes the socket.
pub struct Control {
    path: PathBuf,
    /// The socket file's inode, so that only our own socket is removed at exit.
    inode: Option<u64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Control {
    /// Listens on `path` (mode 0600) and serves it on a thread of its own. A socket left at
    /// `path` by an imppd that is gone is replaced; one that answers is another imppd's, and
    /// an error, as is a file there that is no socket.
    pub fn start(path: &Path, context: Context) -> Result<Control, String> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "control socket {}: a file that is not a socket is there",
                    path.display()
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "control socket {}: another imppd answers on it (--ctl-socket chooses another)",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|e| {
                format!(
                    "control socket {}: stale, cannot remove: {e}",
                    path.display()
                )
            })?;
        }
        let listener =
            listen_private(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        let inode = std::fs::symlink_metadata(path).map(|m| m.ino()).ok();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("imppd-ctl".into())
            .spawn(move || {
                // Polled rather than blocked in accept(), so that stopping never depends on
                // reaching the socket through its path (which an operator may have removed).
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if conn.set_nonblocking(false).is_ok() {
                                serve_one(conn, &context, started);
                            }
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })
            .map_err(|e| format!("control thread: {e}"))?;
        Ok(Control {
            path: path.to_owned(),
            inode,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let ours = std::fs::symlink_metadata(&self.path).map(|m| Some(m.ino()) == self.inode);
        if ours.unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `path` so that nobody but this user ever reaches the listener: bound under a
/// temporary name beside it, made 0600, emptied of any connection that came before the
/// mode changed, then renamed into place (std has no umask; this needs no unsafe code).
fn listen_private(path: &Path) -> std::io::Result<UnixListener> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{}.tmp", std::process::id()));
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    let result = (|| {
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        while listener.accept().is_ok() {}
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(listener)
}

/// Reads one request, answers it, closes.
fn serve_one(conn: UnixStream, context: &Context, started: Instant) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut line = String::new();
    let mut reader = BufReader::new((&conn).take(MAX_REQUEST + 1));
    let answer = match reader.read_line(&mut line) {
        Ok(_) if line.len() as u64 > MAX_REQUEST => {
            refusal(true, format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(_) => match parse_request(&line) {
            Ok((cmd, args)) => match run(context, started, &cmd, &args) {
                Ok(answer) => answer,
                Err(Failure { usage, message }) => refusal(usage, message),
            },
            Err(message) => refusal(true, message),
        },
        Err(e) => refusal(true, format!("cannot read the request: {e}")),
    };
    let mut text = answer.to_string();
    text.push('\n');
    let _ = (&conn).write_all(text.as_bytes());
}

fn parse_request(line: &str) -> Result<(String, Vec<String>), String> {
    let value: Value =
        serde_json::from_str(line.trim_end()).map_err(|e| format!("request is not JSON: {e}"))?;
    let cmd = value
        .get("cmd")
        .and_then(Value::as_str)
        .ok_or("request has no \"cmd\" string")?
        .to_owned();
    let args = match value.get("args") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("\"args\" holds something other than strings")?,
        Some(_) => return Err("\"args\" is not an array".into()),
    };
    Ok((cmd, args))
}

fn refusal(usage: bool, message: String) -> Value {
    json!({"ok": false, "usage": usage, "error": message})
}

/// Why a command did nothing: `usage` when the request was wrong (a bad command, argument,
/// or one naming nothing that exists), otherwise the engine or store failed.
struct Failure {
    usage: bool,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        usage: true,
        message: message.into(),
    }
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure {
        usage: false,
        message: e.to_string(),
    }
}

/// The commands `imppd ctl` lists in its usage.
pub const COMMANDS: &str = "status | stats | pending [PRESENTITY] | \
decide SUBSCRIPTION-ID allow|block|polite-block|redirect TARGET | users list | users add URI PASSWORD | \
users del URI | users passwd URI PASSWORD | rules list [PRESENTITY] | \
rules add PRESENTITY WATCHER|DOMAIN allow|block|polite-block|confirm | \
rules del PRESENTITY WATCHER|DOMAIN | subscriptions PRESENTITY | registrations USER | \
publish PRESENTITY open|closed [NOTE] | lists | log-level error|warn|info|debug|trace | reload";

/// The publication `publish` made for each presentity (by presentity key): its entity tag,
/// so that the next `publish` replaces it rather than adding a second one.
static PUBLISHED: Mutex<Option<std::collections::HashMap<String, String>>> = Mutex::new(None);

/// `publish PRESENTITY open|closed [NOTE]`: the presentity's presence as this imppd composes
/// it, from one publication of its own (one tuple `imppd-ctl`, the note as a presence note),
/// replaced by the next `publish`, for an hour. What an operator, or a test, sets for a user
/// with no phone of its own; on a device (an account with `serve=yes`) it is the account's
/// presence, published uplink and served to its watchers.
fn publish(engine: &Engine, args: &[String]) -> Result<Value, Failure> {
    use impp::doc::pidf::{Basic, Presence, Tuple};
    if args.len() < 2 {
        return Err(usage("publish: expected PRESENTITY open|closed [NOTE]"));
    }
    let presentity = uri(&args[0], "presentity")?;
    let basic = match args[1].as_str() {
        "open" => Basic::Open,
        "closed" => Basic::Closed,
        other => return Err(usage(format!("publish: '{other}' is not open or closed"))),
    };
    let mut doc = Presence::new(presentity.to_string());
    doc.tuples.push(Tuple::new("imppd-ctl", basic));
    let note = args[2..].join(" ");
    if !note.is_empty() {
        doc.notes.push(impp::doc::Note::new(note.as_str()));
    }
    let key = impp::model::key::presentity_key(&presentity);
    let mut published = PUBLISHED.lock().unwrap_or_else(|e| e.into_inner());
    let table = published.get_or_insert_with(Default::default);
    let modified = table
        .get(&key)
        .and_then(|etag| engine.modify_publication(etag, doc.clone().into()).ok());
    let etag = match modified {
        Some(etag) => etag,
        None => engine
            .publish(&presentity, doc.into(), Some(3600))
            .map_err(failed)?,
    };
    table.insert(key, etag.clone());
    Ok(done(
        format!("published {} for {presentity}", args[1]),
        json!({"etag": etag}),
    ))
}

/// A table: rows of objects, and the order of their fields for people.
fn table(columns: &[&str], rows: Vec<Value>) -> Value {
    json!({"ok": true, "columns": columns, "result": rows})
}

/// A change done, said in a sentence, with what it did for scripts.
fn done(message: String, result: Value) -> Value {
    json!({"ok": true, "message": message, "result": result})
}

fn uri(text: &str, what: &str) -> Result<Uri, Failure> {
    Uri::parse(text).map_err(|e| usage(format!("{what} '{text}': {e}")))
}

fn run(context: &Context, started: Instant, cmd: &str, args: &[String]) -> Result<Value, Failure> {
    let engine = &context.engine;
    let n = |count: usize, form: &str| -> Result<(), Failure> {
        if args.len() == count {
            Ok(())
        } else {
            Err(usage(format!("{cmd}: expected {form}")))
        }
    };
    let arg = |i: usize| args[i].as_str();
    match cmd {
        "status" => {
            n(0, "no arguments")?;
            let stats = engine.stats();
            let fields = [
                ("version", json!(env!("CARGO_PKG_VERSION"))),
                ("pid", json!(std::process::id())),
                ("uptime_s", json!(started.elapsed().as_secs())),
                ("domains", json!(context.domains.join(" "))),
                ("listening", json!(context.listening.join(" "))),
                (
                    "db",
                    json!(context
                        .db
                        .as_ref()
                        .map_or("none (memory only)".into(), |d| d.display().to_string())),
                ),
                ("policy", json!(context.reloader.policy())),
                ("log_level", json!(impp::log::max_level().as_str())),
                ("users", json!(engine.users().len())),
                ("registrations", json!(stats.endpoints)),
                ("subscriptions_active", json!(stats.subscriptions_active)),
                ("subscriptions_pending", json!(stats.subscriptions_pending)),
            ];
            Ok(record(&fields))
        }
        "stats" => {
            n(0, "no arguments")?;
            let s = engine.stats();
            let fields = [
                ("presentities", json!(s.presentities)),
                ("publications", json!(s.publications)),
                ("subscriptions_pending", json!(s.subscriptions_pending)),
                ("subscriptions_active", json!(s.subscriptions_active)),
                ("subscriptions_refused", json!(s.subscriptions_refused)),
                ("notifications_sent", json!(s.notifications_sent)),
                ("notifications_merged", json!(s.notifications_merged)),
                ("notifications_throttled", json!(s.notifications_throttled)),
                ("endpoints", json!(s.endpoints)),
                ("endpoints_refused", json!(s.endpoints_refused)),
                ("messages_waiting", json!(s.messages_waiting)),
                ("messages_delivered", json!(s.messages_delivered)),
                ("messages_failed", json!(s.messages_failed)),
                ("messages_refused", json!(s.messages_refused)),
                ("events_queued", json!(s.events_queued)),
                ("events_overflowed", json!(s.events_overflowed)),
                ("heap_live_bytes", json!(super::heap::live_bytes())),
            ];
            let mut fields = fields.to_vec();
            fields.extend(sip_stats(&context.server));
            Ok(record(&fields))
        }
        "pending" | "subscriptions" => {
            let presentity = match (cmd, args.len()) {
                ("pending", 0) => None,
                (_, 1) => Some(uri(arg(0), "presentity")?),
                ("pending", _) => return Err(usage("pending: expected [PRESENTITY]")),
                _ => return Err(usage("subscriptions: expected PRESENTITY")),
            };
            let subs = engine.subscriptions(presentity.as_ref()).map_err(failed)?;
            let rows = subs
                .into_iter()
                .filter(|s| cmd == "subscriptions" || s.state.as_str() == "pending")
                .map(|s| {
                    json!({
                        "id": s.id.0,
                        "watcher": s.watcher.to_string(),
                        "presentity": s.presentity.to_string(),
                        "package": s.package.to_string(),
                        "state": s.state.as_str(),
                        "authorization": s.authorization.to_string(),
                        "expires_in_s": s.expires_in.as_secs(),
                    })
                })
                .collect();
            Ok(table(
                &[
                    "id",
                    "watcher",
                    "presentity",
                    "package",
                    "state",
                    "authorization",
                    "expires_in_s",
                ],
                rows,
            ))
        }
        "decide" => {
            let form =
                "SUBSCRIPTION-ID allow|block|polite-block, or SUBSCRIPTION-ID redirect TARGET";
            if args.len() == 3 && arg(1) == "redirect" {
                n(3, form)?;
            } else {
                n(2, form)?;
            }
            let id = arg(0)
                .parse::<u64>()
                .map(SubscriptionId)
                .map_err(|_| usage(format!("decide: '{}' is not a subscription id", arg(0))))?;
            let action = match arg(1) {
                "allow" => AuthAction::Allow,
                "block" => AuthAction::Block,
                "polite-block" => AuthAction::PoliteBlock,
                "redirect" if args.len() == 3 => AuthAction::Redirect,
                other => {
                    return Err(usage(format!(
                        "decide: '{other}' is not allow, block, polite-block or redirect TARGET"
                    )))
                }
            };
            let target = if action == AuthAction::Redirect {
                Some(uri(arg(2), "target")?)
            } else {
                None
            };
            let sub = engine
                .subscription(id)
                .map_err(|e| usage(format!("decide: {e}")))?;
            // The subscription may end (expire, be withdrawn) between the look-up and the
            // decision: nothing was decided, as for an id that never existed.
            let decided = match target.clone() {
                Some(target) => engine.redirect(id, target),
                None => engine.authorize(id, action),
            };
            decided.map_err(|e| match e {
                impp::Error::NotFound(_) => usage(format!(
                    "decide: subscription {id} of {} to {} ended before the decision; \
                     nothing decided",
                    sub.watcher, sub.presentity
                )),
                e => failed(e),
            })?;
            let to = target
                .as_ref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default();
            Ok(done(
                format!(
                    "{action}{to}: subscription {id} of {} to {} ({})",
                    sub.watcher, sub.presentity, sub.package
                ),
                json!({"id": id.0, "action": action.to_string(), "target": target.map(|t| t.to_string())}),
            ))
        }
        "users" => users(engine, args),
        "rules" => rules_command(engine, args),
        "publish" => publish(engine, args),
        "registrations" => {
            n(1, "USER")?;
            let user = uri(arg(0), "user")?;
            let rows = engine
                .endpoints(&user)
                .map_err(failed)?
                .into_iter()
                .map(|e| {
                    json!({
                        "endpoint": e.endpoint,
                        "contact": e.contact,
                        "expires_in_s": e.expires_in,
                    })
                })
                .collect();
            Ok(table(&["endpoint", "contact", "expires_in_s"], rows))
        }
        "lists" => {
            n(0, "no arguments")?;
            let rows = engine
                .lists()
                .into_iter()
                .map(|l| {
                    json!({
                        "uri": l.uri.to_string(),
                        "name": l.display_name,
                        "packages": l.packages.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
                        "entries": l.entries.len(),
                    })
                })
                .collect();
            Ok(table(&["uri", "name", "packages", "entries"], rows))
        }
        "reload" => {
            n(0, "no arguments")?;
            let report = context.reloader.reload().map_err(|e| Failure {
                usage: false,
                message: format!("reload refused, nothing changed: {e}"),
            })?;
            Ok(done(report.message, report.result))
        }
        "log-level" => {
            n(1, "error|warn|info|debug|trace")?;
            let level = super::parse_level(arg(0)).map_err(usage)?;
            let before = impp::log::max_level();
            context.reloader.set_log_level(level);
            Ok(done(
                format!("log level {} (was {})", level.as_str(), before.as_str()),
                json!({"log_level": level.as_str(), "was": before.as_str()}),
            ))
        }
        other => Err(usage(format!(
            "unknown command '{other}'; commands: {COMMANDS}"
        ))),
    }
}

/// The SIP server's counters for `stats`: final answers sent by class (all methods),
/// requests sent and how they ended, what the guards refused, and the connections.
fn sip_stats(server: &Mutex<SipServer>) -> Vec<(&'static str, Value)> {
    use impp::sip::traffic::CLASSES;
    let (w, g, t, h) = {
        let server = server.lock().unwrap_or_else(|p| p.into_inner());
        (
            server.traffic_stats(),
            server.guard_stats(),
            server.transport_stats(),
            server.handover_stats(),
        )
    };
    const ANSWERED: [&str; 5] = [
        "sip_answers_2xx",
        "sip_answers_3xx",
        "sip_answers_4xx",
        "sip_answers_5xx",
        "sip_answers_6xx",
    ];
    let mut fields: Vec<(&'static str, Value)> = (0..CLASSES.len())
        .map(|c| {
            (
                ANSWERED[c],
                json!(w.answered.iter().map(|m| m[c]).sum::<u64>()),
            )
        })
        .collect();
    fields.extend([
        ("sip_requests_sent", json!(w.sent.iter().sum::<u64>())),
        (
            "sip_requests_answered",
            json!(w.sent_answered.iter().sum::<u64>()),
        ),
        ("sip_requests_timed_out", json!(w.sent_timed_out)),
        ("sip_rate_refused", json!(g.rate_refused)),
        ("sip_rate_dropped", json!(g.rate_dropped)),
        ("sip_queue_dropped", json!(g.queue_dropped)),
        ("sip_messages_held", json!(t.messages_held)),
        ("sip_auth_failures", json!(g.auth_failures)),
        ("sip_untrusted", json!(g.untrusted)),
        ("connections_open", json!(t.open_connections)),
        ("connections_refused", json!(t.connections_refused)),
        ("connections_timed_out", json!(t.connections_timed_out)),
        ("handed_over_dialogs", json!(h.handed_over)),
        ("hand_overs", json!(h.hand_overs)),
        ("hand_over_redirects", json!(h.redirects)),
        ("take_backs", json!(h.take_backs)),
    ]);
    fields
}

/// One object whose fields people read in the order given.
fn record(fields: &[(&str, Value)]) -> Value {
    let columns: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    let object: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"ok": true, "columns": columns, "result": object})
}

fn users(engine: &Engine, args: &[String]) -> Result<Value, Failure> {
    let sub = args.first().map(String::as_str);
    let expect = |count: usize, form: &str| -> Result<(), Failure> {
        if args.len() == count {
            Ok(())
        } else {
            Err(usage(format!(
                "users {}: expected {form}",
                sub.unwrap_or("")
            )))
        }
    };
    match sub {
        Some("list") => {
            expect(1, "no more arguments")?;
            let rows = engine
                .users()
                .into_iter()
                .map(|c| json!({"user": c.user.to_string(), "realm": c.realm}))
                .collect();
            Ok(table(&["user", "realm"], rows))
        }
        Some(verb @ ("add" | "passwd")) => {
            expect(3, "URI PASSWORD")?;
            let user = uri(&args[1], "user")?;
            if user.user().is_none() {
                return Err(usage(format!("{user} has no user part (user@domain)")));
            }
            let exists = engine.user(&user).is_some();
            if verb == "passwd" && !exists {
                return Err(usage(format!(
                    "users passwd: no user {user}; nothing changed"
                )));
            }
            if args[2].is_empty() {
                return Err(usage("the password is empty"));
            }
            engine.set_user_password(&user, &args[2]).map_err(failed)?;
            let what = match (verb, exists) {
                ("passwd", _) => "password changed for",
                (_, true) => "replaced",
                _ => "added",
            };
            Ok(done(
                format!("{what} {user} (realm {})", user.host()),
                json!({"user": user.to_string(), "realm": user.host()}),
            ))
        }
        Some("del") => {
            expect(2, "URI")?;
            let user = uri(&args[1], "user")?;
            if engine.user(&user).is_none() {
                return Err(usage(format!("users del: no user {user}; nothing deleted")));
            }
            engine.remove_user(&user).map_err(failed)?;
            Ok(done(
                format!("deleted {user}"),
                json!({"user": user.to_string()}),
            ))
        }
        _ => Err(usage(
            "users: list, add URI PASSWORD, del URI or passwd URI PASSWORD",
        )),
    }
}

fn rule_row(rule: &AuthRule) -> Value {
    json!({
        "presentity": rule.presentity.to_string(),
        "watcher": rules::watcher_text(&rule.watcher),
        "action": rule.action.to_string(),
        "target": rule.target.as_ref().map(Uri::to_string),
    })
}

fn rules_command(engine: &Engine, args: &[String]) -> Result<Value, Failure> {
    let sub = args.first().map(String::as_str);
    match (sub, args.len()) {
        (Some("list"), 1 | 2) => {
            let list = match args.get(1) {
                Some(p) => engine.rules(&uri(p, "presentity")?),
                None => engine.all_rules(),
            }
            .map_err(failed)?;
            Ok(table(
                &["presentity", "watcher", "action", "target"],
                list.iter().map(rule_row).collect(),
            ))
        }
        (Some("add"), 4 | 5) => {
            let rule = rules::parse_rule(&args[1..]).map_err(usage)?;
            engine.set_rule(rule.clone()).map_err(failed)?;
            Ok(done(
                format!("rule set: {}", rules::rule_text(&rule)),
                rule_row(&rule),
            ))
        }
        (Some("del"), 3) => {
            let presentity = rules::parse_presentity(&args[1]).map_err(usage)?;
            let watcher = rules::parse_watcher(&args[2]).map_err(usage)?;
            if !engine.remove_rule(&presentity, &watcher).map_err(failed)? {
                return Err(usage(format!(
                    "{presentity} has no rule for {}: nothing deleted",
                    rules::watcher_text(&watcher)
                )));
            }
            Ok(done(
                format!("rule deleted: {presentity} {}", rules::watcher_text(&watcher)),
                json!({"presentity": presentity.to_string(), "watcher": rules::watcher_text(&watcher)}),
            ))
        }
        _ => Err(usage(
            "rules: list [PRESENTITY], add PRESENTITY WATCHER|DOMAIN ACTION [TARGET] or del PRESENTITY WATCHER|DOMAIN",
        )),
    }
}
