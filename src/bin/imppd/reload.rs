//! Live reconfiguration: what `kill -HUP` and `imppd ctl reload` both do, in one place.
//!
//! The command line imppd started with is read again, with the config file it names (so
//! the file's changes count and the flags still win over it, as at start), and everything
//! that can change while imppd serves is applied: routes, trusted peers and publishers,
//! the federation mode, the policy for watchers no rule names, the `--max-*` state limits,
//! the rate limit, the TLS certificate and key (new handshakes get the new certificate, on
//! the SIP listeners and HTTPS alike; open connections keep theirs) and the log level; then the users, rules and lists are
//! read again from the database. Subscriptions, registrations, dialogs and connections
//! are not touched.
//!
//! What cannot change without a restart (listen addresses, the database, the domains, the
//! HTTP listener, the control socket, the TLS trust anchors, the accounts, the subscription
//! expiry bounds, connection limits, ...) is named in the answer as needing a restart and
//! left as it runs. A file that does not read (a bad line, an unreadable certificate, a
//! peer of an owned domain) changes nothing: the answer says why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use impp::engine::{Engine, RuntimeSettings};
use impp::log::{self, Level};
use impp::sip::SipServer;
use serde_json::{json, Value};

use super::{lists, rules, Options};

/// What imppd runs with now, among the options that are imppd's own (the SIP server keeps
/// its own configuration and compares it itself).
struct Running {
    settings: RuntimeSettings,
    policy_text: String,
    /// The log level the configuration (file and command line) gave when it was last read:
    /// a reload sets the level only when this changes, so `imppd ctl log-level` holds
    /// until the configuration says something new.
    configured_log_level: Level,
    domains: Vec<String>,
    db: PathBuf,
    http: Option<std::net::SocketAddr>,
    https: Option<std::net::SocketAddr>,
    ctl_socket: Option<String>,
    tls_ca: Option<PathBuf>,
    workers: Option<usize>,
    subscription_expiry: Option<impp::engine::ExpiryBounds>,
    write_behind: Option<std::time::Duration>,
}

impl Running {
    fn of(options: &Options) -> Running {
        Running {
            settings: options.runtime_settings(),
            policy_text: super::policy_text(options),
            configured_log_level: options.log_level,
            domains: options.domains.clone(),
            db: options.db.clone(),
            http: options.http,
            https: options.https,
            ctl_socket: options.ctl_socket.clone(),
            tls_ca: options.tls_ca.clone(),
            workers: options.workers,
            subscription_expiry: options.subscription_expiry,
            write_behind: options.write_behind,
        }
    }
}

/// The one reload of a running imppd; shared by the signal loop and the control socket.
pub struct Reloader {
    /// The command line imppd started with (after `imppd`).
    args: Vec<String>,
    engine: Arc<Engine>,
    server: Arc<Mutex<SipServer>>,
    running: Mutex<Running>,
}

/// What a reload did: a sentence for people and the same for scripts.
pub struct Report {
    pub message: String,
    pub result: Value,
}

impl Reloader {
    pub fn new(
        args: &[String],
        options: &Options,
        engine: Arc<Engine>,
        server: Arc<Mutex<SipServer>>,
    ) -> Reloader {
        Reloader {
            args: args.to_vec(),
            engine,
            server,
            running: Mutex::new(Running::of(options)),
        }
    }

    /// The policy text for `imppd ctl status` (as running now).
    pub fn policy(&self) -> String {
        lock(&self.running).policy_text.clone()
    }

    /// Sets the log level at once (`imppd ctl log-level`); it holds until a reload finds
    /// another level in the configuration than the last one read.
    pub fn set_log_level(&self, level: Level) {
        let _running = lock(&self.running);
        log::set_max_level(level);
    }

    /// Reads the configuration again and applies it (see the module documentation).
    /// `Err`: nothing changed, and why.
    pub fn reload(&self) -> Result<Report, String> {
        // One reload at a time (SIGHUP and ctl may meet).
        let mut running = lock(&self.running);
        let (options, _) = super::parse_options(&self.args)?;
        let options = options.for_serving()?;
        let sip = options.sip_config()?;
        let reconfigured = super::lock(&self.server)
            .reconfigure(sip)
            .map_err(|e| e.to_string())?;
        let mut changed: Vec<String> = reconfigured.changed.iter().map(|s| s.to_string()).collect();
        let mut needs_restart: Vec<String> = reconfigured
            .needs_restart
            .iter()
            .map(|s| s.to_string())
            .collect();
        let settings = options.runtime_settings();
        if settings != running.settings {
            self.engine
                .set_runtime_settings(settings)
                .map_err(|e| format!("the policy and limits could not change: {e}"))?;
            if settings.default_policy != running.settings.default_policy
                || settings.same_domain_policy != running.settings.same_domain_policy
            {
                changed.push("policy".into());
            }
            if settings.state_limits != running.settings.state_limits {
                changed.push("state limits".into());
            }
            running.settings = settings;
            running.policy_text = super::policy_text(&options);
        }
        if options.log_level != running.configured_log_level {
            log::set_max_level(options.log_level);
            running.configured_log_level = options.log_level;
            changed.push("log level".into());
        }
        let next = Running::of(&options);
        for (name, differs) in [
            ("domains", next.domains != running.domains),
            ("db", next.db != running.db),
            ("http", next.http != running.http),
            ("https", next.https != running.https),
            ("ctl-socket", next.ctl_socket != running.ctl_socket),
            ("tls-ca", next.tls_ca != running.tls_ca),
            ("workers", next.workers != running.workers),
            ("write-behind", next.write_behind != running.write_behind),
            (
                "subscription-expiry",
                next.subscription_expiry != running.subscription_expiry,
            ),
        ] {
            if differs {
                needs_restart.push(name.into());
            }
        }
        // The database's users, rules and lists, as before a config file was read.
        let db = (!options.memory_only()).then_some(&running.db);
        let counts = |r: Result<(usize, usize), String>| match r {
            Ok((c, d)) => json!({"changed": c, "removed": d}),
            Err(e) => json!({"error": e}),
        };
        let (users, rules, lists) = match db {
            Some(db) => (
                counts(super::reload_users(db, &self.engine)),
                counts(rules::reload(db, &self.engine)),
                counts(lists::reload(db, &self.engine)),
            ),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let said = |v: &Value| match (v.get("changed"), v.get("removed"), v.get("error")) {
            (Some(c), Some(d), _) => format!("{c} added or changed, {d} removed"),
            (_, _, Some(e)) => format!("not read ({})", e.as_str().unwrap_or("")),
            _ => "none (memory only)".into(),
        };
        let or_none = |items: &[String]| {
            if items.is_empty() {
                "nothing".to_string()
            } else {
                items.join(", ")
            }
        };
        let message = format!(
            "reloaded: changed {}; needs restart {}; users {}; rules {}; lists {}",
            or_none(&changed),
            or_none(&needs_restart),
            said(&users),
            said(&rules),
            said(&lists),
        );
        Ok(Report {
            message,
            result: json!({
                "changed": changed,
                "needs_restart": needs_restart,
                "users": users,
                "rules": rules,
                "lists": lists,
            }),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
