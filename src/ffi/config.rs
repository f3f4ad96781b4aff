//! The engine configuration builder: one setter per option, so new options never change an
//! existing function's signature. `impp_engine_new` consumes it.

use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{free_handle, guard, guard_value, handle_mut, out_arg, str_arg, write_out};
use super::enum_arg;
use super::status::impp_status;
use crate::engine::{AuthAction, EngineConfig, ExpiryBounds, ManualClock, StateLimits};
use crate::error::{Error, Result};
use crate::store::SqliteStore;
use crate::uri::Uri;

/// How a watcher no rule mentions is treated, or what a rule does.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_auth_action {
    /// The watcher may watch.
    IMPP_AUTH_ALLOW = 1,
    /// The watcher is refused: told terminated/rejected, never sees a document.
    IMPP_AUTH_BLOCK = 2,
    /// The watcher is told active but only ever sees a neutral, closed document.
    IMPP_AUTH_POLITE_BLOCK = 3,
    /// The subscription stays pending until the presentity decides (`impp_engine_authorize`).
    IMPP_AUTH_CONFIRM = 4,
    /// The watcher is sent to another presence agent (SIP: `302 Moved Temporarily`): only a
    /// rule with a target (`impp_engine_set_redirect_rule`) or a decision on one subscription
    /// (`impp_engine_redirect`) says it; it is no policy, and `impp_engine_authorize` and
    /// `impp_engine_set_rule` refuse it (they have no target to give).
    IMPP_AUTH_REDIRECT = 5,
}

pub(super) fn auth_action_from_c(value: c_int) -> Result<AuthAction> {
    Ok(match value {
        1 => AuthAction::Allow,
        2 => AuthAction::Block,
        3 => AuthAction::PoliteBlock,
        4 => AuthAction::Confirm,
        5 => AuthAction::Redirect,
        other => {
            return Err(Error::InvalidArgument(format!(
                "{other} is not an impp_auth_action value (1..5)"
            )))
        }
    })
}

pub(super) fn auth_action_to_c(action: AuthAction) -> impp_auth_action {
    match action {
        AuthAction::Allow => impp_auth_action::IMPP_AUTH_ALLOW,
        AuthAction::Block => impp_auth_action::IMPP_AUTH_BLOCK,
        AuthAction::PoliteBlock => impp_auth_action::IMPP_AUTH_POLITE_BLOCK,
        AuthAction::Confirm => impp_auth_action::IMPP_AUTH_CONFIRM,
        AuthAction::Redirect => impp_auth_action::IMPP_AUTH_REDIRECT,
    }
}

/// An engine configuration being built. Create it with `impp_config_new`; pass it to
/// `impp_engine_new` (which consumes it) or free it with `impp_config_free`.
pub struct impp_config {
    pub(super) config: EngineConfig,
    pub(super) manual_clock: Option<Arc<ManualClock>>,
}

/// Creates a configuration with every default: workers = number of cores; publication,
/// subscription and endpoint expiry default 3600 s, minimum 60 s, maximum 86400 s; messages
/// up to 64 KiB, stored for 7 days; no endpoint presence; queue capacity 65536;
/// default policy confirm; no minimum notification interval; documents up to 64 KiB and 32
/// levels; at most 1000 messages waiting per user and 100 of them per sender, 1000
/// subscriptions per watcher, 10000 per presentity and 10 endpoints per user; the system
/// clock; an in-memory store.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_config_new(out: *mut *mut impp_config) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let config = Box::new(impp_config {
            config: EngineConfig::default(),
            manual_clock: None,
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(config)) };
        Ok(())
    })
}

/// Frees a configuration that was not given to `impp_engine_new`. NULL is a no-op.
///
/// # Safety
/// `config` is NULL or a configuration from `impp_config_new` not yet freed or consumed.
#[no_mangle]
pub unsafe extern "C" fn impp_config_free(config: *mut impp_config) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(config) }
}

/// Runs `change` on the configuration behind `config` inside the panic boundary.
///
/// # Safety
/// `config` is NULL or a live configuration from `impp_config_new`, used by no other thread
/// during the call (what every setter documents).
unsafe fn with_config(
    config: *mut impp_config,
    change: impl FnOnce(&mut impp_config) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let c = unsafe { handle_mut(config, "config") }?;
        change(c)
    })
}

/// Sets the number of worker (shard) threads, 1 to 256.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Any thread; one at a time per
/// configuration.
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_workers(
    config: *mut impp_config,
    workers: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if workers == 0 || workers > 256 {
                return Err(Error::InvalidArgument(format!(
                    "workers must be between 1 and 256, not {workers}"
                )));
            }
            c.config.workers = workers as usize;
            Ok(())
        })
    }
}

/// Adds a domain the engine owns (e.g. `"example.test"`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, empty or containing spaces).
///
/// # Safety
/// `config` is NULL or a live configuration; `domain` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_config_add_domain(
    config: *mut impp_config,
    domain: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`config` and `domain`).
    unsafe {
        with_config(config, |c| {
            let domain = str_arg(domain, "domain")?;
            if domain.is_empty() || domain.chars().any(|ch| ch.is_whitespace() || ch == '@') {
                return Err(Error::InvalidArgument(format!(
                    "'{domain}' is not a domain"
                )));
            }
            c.config.domains.push(domain.to_ascii_lowercase());
            Ok(())
        })
    }
}

/// Expiry bounds as the `impp_config_set_*_expiry` setters take them. The default cannot be
/// 0: an expiry of 0 (`IMPP_EXPIRES_DEFAULT`) is how a call asks for the default.
fn bounds(min: u32, default: u32, max: u32) -> Result<ExpiryBounds> {
    if !(min <= default && default <= max) || default == 0 {
        return Err(Error::InvalidArgument(format!(
            "expiry bounds must satisfy 0 < default and min <= default <= max (got {min}, {default}, {max})"
        )));
    }
    Ok(ExpiryBounds { default, min, max })
}

/// Sets the publication expiry bounds in seconds: shorter requests fail with
/// `IMPP_ERR_INTERVAL_TOO_BRIEF`, longer ones are shortened to `max`, and a request of 0
/// (`IMPP_EXPIRES_DEFAULT`) gets `default_expiry`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `min <= default <= max`, `default` 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_publication_expiry(
    config: *mut impp_config,
    min: u32,
    default_expiry: u32,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.publication_expiry = bounds(min, default_expiry, max)?;
            Ok(())
        })
    }
}

/// Sets the subscription expiry bounds in seconds (as for publications).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `min <= default <= max`, `default` 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_subscription_expiry(
    config: *mut impp_config,
    min: u32,
    default_expiry: u32,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.subscription_expiry = bounds(min, default_expiry, max)?;
            Ok(())
        })
    }
}

/// Sets the endpoint login expiry bounds in seconds (as for publications; default 3600,
/// minimum 60, maximum 86400): shorter logins fail with `IMPP_ERR_INTERVAL_TOO_BRIEF`,
/// longer ones are shortened to `max`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `min <= default <= max`, `default` 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_endpoint_expiry(
    config: *mut impp_config,
    min: u32,
    default_expiry: u32,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.endpoint_expiry = bounds(min, default_expiry, max)?;
            Ok(())
        })
    }
}

/// Sets the largest instant message body in bytes (default 65536); a larger message fails
/// with an `IMPP_FAILURE_TOO_LARGE` delivery event.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_message_size(
    config: *mut impp_config,
    max_bytes: usize,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if max_bytes == 0 {
                return Err(Error::InvalidArgument(
                    "the maximum message size must be above 0".into(),
                ));
            }
            c.config.max_message_size = max_bytes;
            Ok(())
        })
    }
}

/// Sets how long a message stored for an offline recipient is kept, in seconds (default 7
/// days); then it fails with an `IMPP_FAILURE_EXPIRED` delivery event.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_message_expiry(
    config: *mut impp_config,
    seconds: u64,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if seconds == 0 {
                return Err(Error::InvalidArgument(
                    "the message expiry must be above 0".into(),
                ));
            }
            c.config.message_expiry = Duration::from_secs(seconds);
            Ok(())
        })
    }
}

/// Sets whether a logged-in endpoint of a user who publishes no presence makes the user
/// appear open to watchers (one minimal tuple per endpoint, withdrawn at logout). Default:
/// no.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_endpoint_presence(
    config: *mut impp_config,
    enabled: bool,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.endpoint_presence = enabled;
            Ok(())
        })
    }
}

/// Sets how many events the queue holds before notifications of one subscription start
/// merging (the latest state wins); events that cannot merge are never dropped.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_queue_capacity(
    config: *mut impp_config,
    capacity: usize,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if capacity == 0 {
                return Err(Error::InvalidArgument(
                    "queue capacity must be at least 1".into(),
                ));
            }
            c.config.queue_capacity = capacity;
            Ok(())
        })
    }
}

/// Sets what happens to watchers no rule mentions (an `impp_auth_action` value).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad value).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_default_policy(
    config: *mut impp_config,
    action: enum_arg::impp_auth_action,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.default_policy = auth_action_from_c(action)?;
            Ok(())
        })
    }
}

/// Sets what happens instead of the default policy to watchers no rule mentions whose URI
/// host is the presentity's own (compared case-insensitively; subdomains and `tel` URIs,
/// which have no host, are not of the domain). Rules still win over it. Unset (the
/// default), every watcher no rule mentions gets the default policy;
/// `impp_config_clear_same_domain_policy` unsets it again. A "closed" server: default
/// policy `IMPP_AUTH_CONFIRM`, same-domain policy `IMPP_AUTH_ALLOW`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad value).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_same_domain_policy(
    config: *mut impp_config,
    action: enum_arg::impp_auth_action,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.same_domain_policy = Some(auth_action_from_c(action)?);
            Ok(())
        })
    }
}

/// Unsets the same-domain policy (`impp_config_set_same_domain_policy`): every watcher no
/// rule mentions gets the default policy again. A function of its own rather than an
/// `impp_auth_action` value, because every other taker of that enum needs a real action.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_clear_same_domain_policy(
    config: *mut impp_config,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.same_domain_policy = None;
            Ok(())
        })
    }
}

/// Sets the default minimum time between two notifications of one subscription, in
/// milliseconds (0: none). Changes inside it merge into one notification.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_min_notify_interval_ms(
    config: *mut impp_config,
    interval_ms: u64,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            c.config.min_notify_interval = Duration::from_millis(interval_ms);
            Ok(())
        })
    }
}

/// Adds a URI allowed to watch every presentity's watchers (`presence.winfo`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`.
///
/// # Safety
/// `config` is NULL or a live configuration; `uri` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_config_add_winfo_admin(
    config: *mut impp_config,
    uri: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`config` and `uri`).
    unsafe {
        with_config(config, |c| {
            let uri = Uri::parse(str_arg(uri, "uri")?)?;
            c.config.winfo_admins.push(uri);
            Ok(())
        })
    }
}

/// Sets one bound of the engine's state to `max` (at least 1; `UINT32_MAX`: no bound).
///
/// # Safety
/// `config` is NULL or a live configuration.
unsafe fn set_state_limit(
    config: *mut impp_config,
    max: u32,
    name: &str,
    field: impl FnOnce(&mut StateLimits) -> &mut u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if max == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be at least 1 (UINT32_MAX for no bound), not 0"
                )));
            }
            *field(&mut c.config.state_limits) = max;
            Ok(())
        })
    }
}

/// Sets how many instant messages may wait for one recipient (stored while it is offline,
/// or queued behind those); default 1000. One more fails with an `IMPP_FAILURE_MAILBOX_FULL`
/// delivery event and is not stored. `UINT32_MAX`: no bound.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_offline_messages_per_user(
    config: *mut impp_config,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        set_state_limit(config, max, "max_offline_messages_per_user", |l| {
            &mut l.max_offline_messages_per_user
        })
    }
}

/// Sets how many instant messages from one sender may wait for one recipient; default 100.
/// One more from that sender fails with `IMPP_FAILURE_MAILBOX_FULL` while other senders
/// may still write, so one stranger cannot fill a user's mailbox. `UINT32_MAX`: no bound.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_offline_messages_per_sender(
    config: *mut impp_config,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        set_state_limit(config, max, "max_offline_messages_per_sender", |l| {
            &mut l.max_offline_messages_per_sender
        })
    }
}

/// Sets how many live subscriptions one watcher may hold, over every presentity and
/// package; default 1000. One more fails with `IMPP_ERR_LIMIT_REACHED` (a fetch, expiry 0,
/// is never refused). `UINT32_MAX`: no bound.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_subscriptions_per_watcher(
    config: *mut impp_config,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        set_state_limit(config, max, "max_subscriptions_per_watcher", |l| {
            &mut l.max_subscriptions_per_watcher
        })
    }
}

/// Sets how many live subscriptions one presentity may have, over every package; default
/// 10000. One more fails with `IMPP_ERR_LIMIT_REACHED` (a fetch is never refused).
/// `UINT32_MAX`: no bound.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_subscriptions_per_presentity(
    config: *mut impp_config,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        set_state_limit(config, max, "max_subscriptions_per_presentity", |l| {
            &mut l.max_subscriptions_per_presentity
        })
    }
}

/// Sets how many endpoints (logins, registered SIP contacts) one user may have; default 10.
/// Logging in one more fails with `IMPP_ERR_LIMIT_REACHED`; refreshing one that is logged
/// in always works. `UINT32_MAX`: no bound.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_max_endpoints_per_user(
    config: *mut impp_config,
    max: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        set_state_limit(config, max, "max_endpoints_per_user", |l| {
            &mut l.max_endpoints_per_user
        })
    }
}

/// Sets the limits applied to documents given as text: size in bytes and nesting depth.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_document_limits(
    config: *mut impp_config,
    max_bytes: usize,
    max_depth: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            if max_bytes == 0 || max_depth == 0 {
                return Err(Error::InvalidArgument(
                    "document limits must be above 0".into(),
                ));
            }
            c.config.limits.max_bytes = max_bytes;
            c.config.limits.max_depth = max_depth as usize;
            Ok(())
        })
    }
}

/// Keeps the engine's durable state (authorization rules) in the SQLite file at `path`,
/// created if missing; without this call the state is kept in memory and lost with the
/// engine. The file is opened here, at once, so a bad path is reported by this call; it stays
/// open until the configuration is freed, or the engine that consumed it is freed. Calling
/// this again closes the previous file and opens the new one. Rules already in the file are
/// loaded by `impp_engine_new`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, empty), `IMPP_ERR_MALFORMED` (the
/// file is not an SQLite database, or is corrupt), `IMPP_ERR_UNSUPPORTED` (written by a newer
/// libimpp), `IMPP_ERR_STORAGE` (cannot create or open the file, I/O error; the message
/// says why). On error the configuration is unchanged.
///
/// # Safety
/// `config` is NULL or a live configuration; `path` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_config_set_store_path(
    config: *mut impp_config,
    path: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`config` and `path`).
    unsafe {
        with_config(config, |c| {
            let path = str_arg(path, "path")?;
            if path.is_empty() {
                return Err(Error::InvalidArgument("path is empty".into()));
            }
            c.config.store = Arc::new(SqliteStore::open(path)?);
            Ok(())
        })
    }
}

/// Makes the engine use a manual clock that only moves with `impp_engine_advance_clock`:
/// for tests that drive expiry and throttling without sleeping.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn impp_config_use_manual_clock(config: *mut impp_config) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_config(config, |c| {
            let clock = ManualClock::new();
            c.config.clock = clock.clone();
            c.manual_clock = Some(clock);
            Ok(())
        })
    }
}

/// The workers a new configuration gets by default (the number of cores). Any thread.
#[no_mangle]
pub extern "C" fn impp_config_default_workers() -> u32 {
    guard_value(2, || EngineConfig::default().workers as u32)
}
