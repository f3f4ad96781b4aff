//! The engine: lifecycle, publications, subscriptions, authorization, events, stats.
//!
//! Threading contract (for every function here): an engine may be used from any number of
//! threads at once, and from inside its own event callback. The callback runs on the
//! engine's single dispatcher thread, one event at a time, in order. `impp_engine_free`
//! joins every engine thread; no callback runs after it returns; called from inside the
//! callback it returns `IMPP_ERR_IN_CALLBACK` and tears nothing down.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{
    bytes_arg, guard, guard_value, handle, opt_str_arg, out_arg, owned_c_string, str_arg, write_out,
};
use super::config::{auth_action_from_c, auth_action_to_c, impp_auth_action, impp_config};
use super::enum_arg;
use super::event::{impp_event, impp_subscription_state, state_to_c};
use super::presence::impp_presence;
use super::status::impp_status;
use super::subscribe_options::impp_subscribe_options;
use crate::doc::filter::FilterSet;
use crate::engine::{
    dispatcher, AuthRule, Document, Engine, ManualClock, Package, SubscribeRequest, SubscriptionId,
    TerminationReason, WatcherMatch,
};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The expiry argument that asks for the configured default: every expiry or interval
/// argument of this API (`expires`, `*_set_expires`, `*_min_interval_ms`) is a `uint32_t`
/// where 0 means the configured default. Ending something is never an expiry of 0: it has
/// its own function (`impp_engine_remove_publication`, `impp_engine_unsubscribe`,
/// `impp_engine_logout`).
pub const IMPP_EXPIRES_DEFAULT: u32 = 0;

/// A running engine. Create it with `impp_engine_new`, free it with `impp_engine_free`.
pub struct impp_engine {
    /// Shared with a SIP stack running over it (`impp_sip_start`).
    pub(super) engine: Arc<Engine>,
    manual_clock: Option<Arc<ManualClock>>,
}

/// A counter of `impp_engine_stat`.
///
/// Counters are read one at a time by this selector (there is no caller-allocated stats
/// struct), so new counters are appended as new values: existing values never change and the
/// ABI version stays the same. An older library answers 0 for a value it does not know.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_stat {
    /// Presentities with publications or subscribers.
    IMPP_STAT_PRESENTITIES = 0,
    /// Live publications.
    IMPP_STAT_PUBLICATIONS = 1,
    /// Subscriptions waiting for authorization.
    IMPP_STAT_SUBSCRIPTIONS_PENDING = 2,
    /// Active subscriptions.
    IMPP_STAT_SUBSCRIPTIONS_ACTIVE = 3,
    /// Events waiting to be delivered.
    IMPP_STAT_EVENTS_QUEUED = 4,
    /// Notifications produced.
    IMPP_STAT_NOTIFICATIONS_SENT = 5,
    /// Notifications merged into one still waiting (the consumer fell behind).
    IMPP_STAT_NOTIFICATIONS_MERGED = 6,
    /// Notifications held back by a minimum interval.
    IMPP_STAT_NOTIFICATIONS_THROTTLED = 7,
    /// Events queued beyond the bound because they could not merge.
    IMPP_STAT_EVENTS_OVERFLOWED = 8,
    /// Panics caught inside the event callback's Rust glue.
    IMPP_STAT_CALLBACK_PANICS = 9,
    /// Endpoints logged in.
    IMPP_STAT_ENDPOINTS = 10,
    /// Instant messages waiting for their recipient (stored, or queued behind stored ones).
    IMPP_STAT_MESSAGES_WAITING = 11,
    /// Instant messages delivered.
    IMPP_STAT_MESSAGES_DELIVERED = 12,
    /// Instant messages that failed.
    IMPP_STAT_MESSAGES_FAILED = 13,
    /// Instant messages refused because the recipient's mailbox was full (also counted in
    /// `IMPP_STAT_MESSAGES_FAILED`).
    IMPP_STAT_MESSAGES_REFUSED = 14,
    /// Subscriptions refused because their watcher or presentity had as many as allowed.
    IMPP_STAT_SUBSCRIPTIONS_REFUSED = 15,
    /// Logins (SIP registrations) refused because their user had as many endpoints as
    /// allowed.
    IMPP_STAT_ENDPOINTS_REFUSED = 16,
}

/// The event callback: `event` is borrowed for the call only (do not free it; copy what you
/// keep). Runs on the engine's dispatcher thread.
pub type impp_event_callback =
    Option<unsafe extern "C" fn(event: *const impp_event, user_data: *mut c_void)>;

/// Frees the `user_data` of a callback; runs exactly once, after the callback's last call.
pub type impp_free_callback = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Borrows the engine behind `engine` (`IMPP_ERR_INVALID_ARGUMENT` for NULL).
///
/// # Safety
/// `engine` is NULL or a live engine from `impp_engine_new`, not freed during `'a`.
pub(super) unsafe fn engine_ref<'a>(engine: *const impp_engine) -> Result<&'a impp_engine> {
    // SAFETY: the contract above.
    unsafe { handle(engine, "engine") }
}

/// Parses a required URI argument (`IMPP_ERR_INVALID_ARGUMENT` for NULL or non-UTF-8,
/// `IMPP_ERR_INVALID_URI` for a bad URI).
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string, readable for the call.
pub(super) unsafe fn uri_arg(ptr: *const c_char, name: &str) -> Result<Uri> {
    // SAFETY: the contract above.
    let text = unsafe { str_arg(ptr, name) }?;
    Uri::parse(text)
}

/// Parses a required event package name (`"presence"`...).
///
/// # Safety
/// As [`uri_arg`].
pub(super) unsafe fn package_arg(ptr: *const c_char) -> Result<Package> {
    // SAFETY: the contract above.
    let text = unsafe { str_arg(ptr, "event_package") }?;
    text.parse()
}

/// Borrows a document body given as `(ptr, len)`, which must be UTF-8.
///
/// # Safety
/// `ptr` is NULL (only with `len` 0) or points to `len` bytes readable for `'a`.
unsafe fn body_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str> {
    // SAFETY: the contract above.
    let bytes = unsafe { bytes_arg(ptr.cast(), len, "body") }?;
    std::str::from_utf8(bytes)
        .map_err(|e| Error::Malformed(format!("body is not UTF-8 (at byte {})", e.valid_up_to())))
}

/// Hands `value` to the caller as an owned C string in `*out`.
///
/// # Safety
/// `out` is non-NULL (checked with `out_arg`), aligned and writable.
unsafe fn write_owned(out: *mut *mut c_char, value: String, what: &str) -> Result<()> {
    let c = owned_c_string(value, what)?;
    // SAFETY: the contract above.
    unsafe { write_out(out, c) };
    Ok(())
}

/// Starts an engine from `config`, which is consumed (freed) whether or not this succeeds.
/// On success `*out` owns the engine.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, inconsistent options), `IMPP_ERR_INTERNAL`
/// (threads could not start).
///
/// # Safety
/// `config` is NULL or a configuration from `impp_config_new` not yet freed or consumed;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_new(
    config: *mut impp_config,
    out: *mut *mut impp_engine,
) -> impp_status {
    guard(|| {
        if config.is_null() {
            return Err(Error::InvalidArgument("config is NULL".into()));
        }
        // SAFETY: non-NULL and owned by us from here on (the contract above).
        let config = unsafe { Box::from_raw(config) };
        out_arg(out, "out")?;
        let engine = Engine::new(config.config)?;
        let handle = Box::new(impp_engine {
            engine: Arc::new(engine),
            manual_clock: config.manual_clock,
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(handle)) };
        Ok(())
    })
}

/// Shuts the engine down and frees it: refuses new calls, lets calls in progress finish,
/// joins every engine thread, discards undelivered events, then frees the callback's
/// `user_data` (once). No callback runs after it returns. NULL is a no-op (`IMPP_OK`).
///
/// Errors: `IMPP_ERR_IN_CALLBACK` when called from inside the event callback: nothing is torn
/// down, the engine keeps working; free it from another thread (or after the callback).
///
/// # Safety
/// `engine` is NULL or a live engine not yet freed; no other thread may use it after this
/// call has started (except from inside its callback, which the engine waits for).
#[no_mangle]
pub unsafe extern "C" fn impp_engine_free(engine: *mut impp_engine) -> impp_status {
    if engine.is_null() {
        return impp_status::IMPP_OK;
    }
    guard(|| {
        if dispatcher::in_dispatcher_thread() {
            return Err(Error::InCallback(
                "impp_engine_free was called from inside the engine's event callback".into(),
            ));
        }
        // SAFETY: non-NULL and live (the contract above).
        let e = unsafe { &*engine };
        e.engine.shutdown()?;
        // SAFETY: created by Box::into_raw in `impp_engine_new`; every engine thread has
        // stopped, so nothing else refers to it.
        drop(unsafe { Box::from_raw(engine) });
        Ok(())
    })
}

/// Publishes a document for `presentity` in `event_package` (`"presence"`, `"dialog"`,
/// `"message-summary"`), given as `len` bytes of text (PIDF or dialog-info XML, or
/// message-summary text). `expires` in seconds (0, `IMPP_EXPIRES_DEFAULT`: the configured
/// default; longer than the configured maximum is shortened). On success `*etag_out` is the
/// publication's entity tag, owned: free it with `impp_string_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_INVALID_URI`, `IMPP_ERR_UNKNOWN_PACKAGE`,
/// `IMPP_ERR_MALFORMED`/`IMPP_ERR_TOO_LARGE`/`IMPP_ERR_UNSAFE_XML` (the body),
/// `IMPP_ERR_INTERVAL_TOO_BRIEF`, `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `body` points to `len` bytes;
/// `etag_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_publish(
    engine: *const impp_engine,
    presentity: *const c_char,
    event_package: *const c_char,
    body: *const c_char,
    len: usize,
    expires: u32,
    etag_out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        out_arg(etag_out, "etag_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let presentity = unsafe { uri_arg(presentity, "presentity") }?;
        // SAFETY: the caller's contract.
        let package = unsafe { package_arg(event_package) }?;
        // SAFETY: the caller's contract.
        let body = unsafe { body_arg(body, len) }?;
        let expires = (expires != 0).then_some(expires);
        let etag = e.engine.publish_body(&presentity, package, body, expires)?;
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_owned(etag_out, etag, "etag") }
    })
}

/// Publishes a presence document handle for `presentity` (the handle is only read).
/// Otherwise as `impp_engine_publish`.
///
/// # Safety
/// As `impp_engine_publish`; `document` NULL or a live presence handle.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_publish_presence(
    engine: *const impp_engine,
    presentity: *const c_char,
    document: *const impp_presence,
    expires: u32,
    etag_out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        out_arg(etag_out, "etag_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let presentity = unsafe { uri_arg(presentity, "presentity") }?;
        // SAFETY: the caller's contract.
        let doc = unsafe { handle(document, "document") }?;
        doc.doc
            .validate()
            .map_err(|m| Error::InvalidArgument(m.to_string()))?;
        let expires = (expires != 0).then_some(expires);
        let etag = e
            .engine
            .publish(&presentity, Document::Presence(doc.doc.clone()), expires)?;
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_owned(etag_out, etag, "etag") }
    })
}

/// Extends a publication by `expires` seconds (0, `IMPP_EXPIRES_DEFAULT`: the configured
/// default; longer than the maximum is shortened); `*new_etag_out` (owned) replaces the old
/// tag, which stops working. To withdraw a publication, call
/// `impp_engine_remove_publication`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_UNKNOWN_ENTITY_TAG` (unknown or expired:
/// SIP 412), `IMPP_ERR_INTERVAL_TOO_BRIEF`, `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; `etag` NULL or NUL-terminated; `new_etag_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_refresh_publication(
    engine: *const impp_engine,
    etag: *const c_char,
    expires: u32,
    new_etag_out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        out_arg(new_etag_out, "new_etag_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let etag = unsafe { str_arg(etag, "etag") }?;
        let expires = match expires {
            IMPP_EXPIRES_DEFAULT => e.engine.config().publication_expiry.default,
            seconds => seconds,
        };
        let new = e.engine.refresh_publication(etag, expires)?;
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_owned(new_etag_out, new, "etag") }
    })
}

/// Replaces a publication's document (`len` bytes of `event_package` text); `*new_etag_out`
/// (owned) replaces the old tag.
///
/// Errors: as `impp_engine_publish`, plus `IMPP_ERR_UNKNOWN_ENTITY_TAG`.
///
/// # Safety
/// As `impp_engine_publish`.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_modify_publication(
    engine: *const impp_engine,
    etag: *const c_char,
    event_package: *const c_char,
    body: *const c_char,
    len: usize,
    new_etag_out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        out_arg(new_etag_out, "new_etag_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let etag = unsafe { str_arg(etag, "etag") }?;
        // SAFETY: the caller's contract.
        let package = unsafe { package_arg(event_package) }?;
        // SAFETY: the caller's contract.
        let body = unsafe { body_arg(body, len) }?;
        let document = package.parse(body, &e.engine.config().limits)?;
        let new = e.engine.modify_publication(etag, document)?;
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_owned(new_etag_out, new, "etag") }
    })
}

/// Withdraws a publication.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_UNKNOWN_ENTITY_TAG`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `etag` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_remove_publication(
    engine: *const impp_engine,
    etag: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let etag = unsafe { str_arg(etag, "etag") }?;
        e.engine.remove_publication(etag)
    })
}

/// Subscribes `watcher` to `presentity` in `event_package`, with `options` (NULL: every
/// default; see `impp_subscribe_options_new`), which the call only reads: they stay the
/// caller's, to reuse or free. On success `*id_out` is the subscription id. The first
/// notification arrives as an event.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_INVALID_URI`, `IMPP_ERR_UNKNOWN_PACKAGE`,
/// `IMPP_ERR_MALFORMED`/`IMPP_ERR_TOO_LARGE`/`IMPP_ERR_UNSAFE_XML`/`IMPP_ERR_UNSUPPORTED`
/// (the options' filter), `IMPP_ERR_INTERVAL_TOO_BRIEF` (the options' expiry: SIP 423),
/// `IMPP_ERR_FORBIDDEN` (another presentity's watcher information), `IMPP_ERR_LIMIT_REACHED`
/// (the watcher or the presentity has as many subscriptions as
/// `impp_config_set_max_subscriptions_per_watcher` or `_per_presentity` allow),
/// `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `options` NULL or live options not
/// modified during the call; `id_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_subscribe(
    engine: *const impp_engine,
    watcher: *const c_char,
    presentity: *const c_char,
    event_package: *const c_char,
    options: *const impp_subscribe_options,
    id_out: *mut u64,
) -> impp_status {
    guard(|| {
        out_arg(id_out, "id_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract (the three strings NULL or NUL-terminated).
        let (watcher, presentity, package) = unsafe {
            (
                uri_arg(watcher, "watcher")?,
                uri_arg(presentity, "presentity")?,
                package_arg(event_package)?,
            )
        };
        let defaults = impp_subscribe_options::default();
        // SAFETY: the caller's contract (NULL or live options).
        let options = unsafe { options.as_ref() }.unwrap_or(&defaults);
        let mut request = SubscribeRequest::new(watcher, presentity, package);
        request.expires = match (options.fetch, options.expires) {
            (true, _) => Some(0),
            (false, IMPP_EXPIRES_DEFAULT) => None,
            (false, seconds) => Some(seconds),
        };
        if let Some(filter) = &options.filter {
            let text = filter.to_str().map_err(|_| {
                Error::Internal("a filter checked as UTF-8 is no longer UTF-8".into())
            })?;
            request.filter = Some(FilterSet::parse(text, &e.engine.config().limits)?);
        }
        request.min_interval = match options.min_interval_ms {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        };
        let id = e.engine.subscribe(request)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(id_out, id.0) };
        Ok(())
    })
}

/// Extends a subscription by `expires` seconds (0, `IMPP_EXPIRES_DEFAULT`: the configured
/// default; longer than the maximum is shortened). To end it, call `impp_engine_unsubscribe`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_NOT_FOUND` (SIP 481),
/// `IMPP_ERR_INTERVAL_TOO_BRIEF`, `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_refresh_subscription(
    engine: *const impp_engine,
    id: u64,
    expires: u32,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let expires = match expires {
            IMPP_EXPIRES_DEFAULT => e.engine.config().subscription_expiry.default,
            seconds => seconds,
        };
        e.engine
            .refresh_subscription(SubscriptionId(id), expires)
            .map(|_| ())
    })
}

/// Ends a subscription; its watcher gets a final `terminated` notification.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_NOT_FOUND`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_unsubscribe(
    engine: *const impp_engine,
    id: u64,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        e.engine.unsubscribe(SubscriptionId(id))
    })
}

/// Ends a subscription from the notifier's side with `reason` (an `impp_reason` other than
/// `IMPP_REASON_NONE`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_NOT_FOUND`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_terminate_subscription(
    engine: *const impp_engine,
    id: u64,
    reason: enum_arg::impp_reason,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let reason = match reason {
            1 => TerminationReason::Deactivated,
            2 => TerminationReason::Probation,
            3 => TerminationReason::Rejected,
            4 => TerminationReason::Timeout,
            5 => TerminationReason::Giveup,
            6 => TerminationReason::Noresource,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{other} is not a termination reason (impp_reason 1..6)"
                )))
            }
        };
        e.engine.terminate_subscription(SubscriptionId(id), reason)
    })
}

/// The state of a live subscription: `*state_out`, and if not NULL `*expires_in_out`
/// (seconds left) and `*authorization_out` (what authorization decided).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_NOT_FOUND` (ended or never existed),
/// `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; the outputs NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_subscription_state(
    engine: *const impp_engine,
    id: u64,
    state_out: *mut impp_subscription_state,
    expires_in_out: *mut u32,
    authorization_out: *mut impp_auth_action,
) -> impp_status {
    guard(|| {
        out_arg(state_out, "state_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let info = e.engine.subscription(SubscriptionId(id))?;
        // SAFETY: `state_out` checked; the others may be NULL.
        unsafe {
            write_out(state_out, state_to_c(info.state).0);
            if !expires_in_out.is_null() {
                write_out(
                    expires_in_out,
                    info.expires_in.as_secs().min(u64::from(u32::MAX)) as u32,
                );
            }
            if !authorization_out.is_null() {
                write_out(authorization_out, auth_action_to_c(info.authorization));
            }
        }
        Ok(())
    })
}

/// Decides one subscription (an `impp_auth_action`): allow approves (pending → active with a
/// full notification), polite-block shows the neutral document, block ends it as rejected
/// (also when it was active: revocation), confirm puts it back to pending.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT`, `IMPP_ERR_NOT_FOUND`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_authorize(
    engine: *const impp_engine,
    id: u64,
    action: enum_arg::impp_auth_action,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        e.engine
            .authorize(SubscriptionId(id), auth_action_from_c(action)?)
    })
}

/// What a rule applies to: exactly one of a watcher URI and a domain.
///
/// # Safety
/// `watcher` and `domain` are each NULL or a NUL-terminated string, readable for the call.
unsafe fn watcher_match(watcher: *const c_char, domain: *const c_char) -> Result<WatcherMatch> {
    // SAFETY: the contract above.
    let (watcher, domain) = unsafe {
        (
            opt_str_arg(watcher, "watcher")?,
            opt_str_arg(domain, "domain")?,
        )
    };
    match (watcher, domain) {
        (Some(w), None) => Ok(WatcherMatch::Watcher(Uri::parse(w)?)),
        (None, Some(d)) if !d.is_empty() && !d.contains(char::is_whitespace) => {
            Ok(WatcherMatch::Domain(d.to_owned()))
        }
        (None, Some(d)) => Err(Error::InvalidArgument(format!("'{d}' is not a domain"))),
        _ => Err(Error::InvalidArgument(
            "give exactly one of watcher (a URI) and domain".into(),
        )),
    }
}

/// Adds or replaces the rule of `presentity` for one watcher URI (`watcher`, with `domain`
/// NULL) or a whole domain (`domain`, with `watcher` NULL). Existing subscriptions follow it.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (both or neither of watcher/domain, bad action),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_set_rule(
    engine: *const impp_engine,
    presentity: *const c_char,
    watcher: *const c_char,
    domain: *const c_char,
    action: enum_arg::impp_auth_action,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract (the three strings NULL or NUL-terminated).
        let (presentity, watcher) = unsafe {
            (
                uri_arg(presentity, "presentity")?,
                watcher_match(watcher, domain)?,
            )
        };
        let rule = AuthRule::new(presentity, watcher, auth_action_from_c(action)?);
        e.engine.set_rule(rule)
    })
}

/// Adds or replaces the rule of `presentity` for one watcher URI or a whole domain (as
/// `impp_engine_set_rule`) with a redirect: the watchers it covers are sent to `target`,
/// another presence agent's URI (SIP: `302 Moved Temporarily` with `Contact: <target>`; an
/// engine subscription fails with `IMPP_ERR_MOVED`, `impp_last_error()` the target). Live
/// subscriptions it covers end with reason deactivated, so their watchers subscribe again
/// and are sent on.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (both or neither of watcher/domain),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_SHUTDOWN`, `IMPP_ERR_STORAGE`.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_set_redirect_rule(
    engine: *const impp_engine,
    presentity: *const c_char,
    watcher: *const c_char,
    domain: *const c_char,
    target: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract (the four strings NULL or NUL-terminated).
        let (presentity, watcher, target) = unsafe {
            (
                uri_arg(presentity, "presentity")?,
                watcher_match(watcher, domain)?,
                uri_arg(target, "target")?,
            )
        };
        e.engine
            .set_rule(AuthRule::redirect(presentity, watcher, target))
    })
}

/// Sends one subscription's watcher to another presence agent, `target` (a URI): the
/// subscription ends with reason deactivated (a SIP watcher subscribes again at once) and the
/// watcher's next subscription to this presentity, within 64 s, is sent to `target` (SIP:
/// `302`; the engine: `IMPP_ERR_MOVED`). A decision on this subscription only; a rule
/// (`impp_engine_set_redirect_rule`) sends every later one.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a watcher-information subscription),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_NOT_FOUND`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `target` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_redirect(
    engine: *const impp_engine,
    id: u64,
    target: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let target = unsafe { uri_arg(target, "target") }?;
        e.engine.redirect(SubscriptionId(id), target)
    })
}

/// Removes a rule (arguments as `impp_engine_set_rule`); `*removed_out` (if not NULL) says
/// whether there was one.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `removed_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_remove_rule(
    engine: *const impp_engine,
    presentity: *const c_char,
    watcher: *const c_char,
    domain: *const c_char,
    removed_out: *mut bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract (the three strings NULL or NUL-terminated).
        let (presentity, watcher) = unsafe {
            (
                uri_arg(presentity, "presentity")?,
                watcher_match(watcher, domain)?,
            )
        };
        let removed = e.engine.remove_rule(&presentity, &watcher)?;
        if !removed_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(removed_out, removed) };
        }
        Ok(())
    })
}

/// Waits up to `timeout_ms` milliseconds (-1: forever, 0: don't wait) for the next event. On
/// success `*event_out` is an owned event (free it with `impp_event_free`), or NULL when none
/// came in time. Don't poll while a callback is set (the dispatcher consumes the events;
/// polling then returns NULL at once).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, timeout below -1).
///
/// # Safety
/// `engine` NULL or live; `event_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_next_event(
    engine: *const impp_engine,
    timeout_ms: i32,
    event_out: *mut *mut impp_event,
) -> impp_status {
    guard(|| {
        out_arg(event_out, "event_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let timeout = match timeout_ms {
            -1 => None,
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "timeout_ms {other} is out of range (-1 or >= 0)"
                )))
            }
        };
        let event = e
            .engine
            .next_event(timeout)
            .map_or(std::ptr::null_mut(), |ev| {
                Box::into_raw(Box::new(impp_event::new(ev)))
            });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(event_out, event) };
        Ok(())
    })
}

/// A file descriptor that is readable while events wait, for select/poll/epoll/asyncio
/// loops. Never read or close it; call `impp_engine_next_event`. -1 for NULL.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_event_fd(engine: *const impp_engine) -> c_int {
    guard_value(-1, || {
        // SAFETY: the caller's contract.
        unsafe { engine.as_ref() }.map_or(-1, |e| e.engine.event_fd())
    })
}

/// Owns a C callback's `user_data` and frees it exactly once, when the callback is dropped
/// (on the dispatcher thread after its last call, or at once if it was never installed).
struct UserData {
    data: *mut c_void,
    free: impp_free_callback,
}

// SAFETY: the C API documents that user_data is used only from the dispatcher thread (and
// freed there, or on the thread that failed to install it); the library never touches it.
unsafe impl Send for UserData {}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the application gave this function for this pointer; called once.
            unsafe { free(self.data) };
        }
    }
}

/// Sets the event callback (NULL `callback`: back to polling). `callback(event, user_data)`
/// runs on the engine's dispatcher thread for every event, in order; it may call any engine
/// function (but `impp_engine_free` fails there with `IMPP_ERR_IN_CALLBACK`). The event is
/// borrowed for the call. `free_user_data` (may be NULL) runs exactly once for `user_data`,
/// after the callback's last call: when it is replaced, or when the engine is freed (or at
/// once if this call fails). Callable from inside the callback.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL engine), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `callback` and `free_user_data` NULL or valid functions for as long
/// as the engine may call them; `user_data` whatever they expect.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_set_event_callback(
    engine: *const impp_engine,
    callback: impp_event_callback,
    user_data: *mut c_void,
    free_user_data: impp_free_callback,
) -> impp_status {
    let owner = UserData {
        data: user_data,
        free: free_user_data,
    };
    guard(move || {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let Some(callback) = callback else {
            drop(owner);
            return e.engine.set_event_callback(None);
        };
        let boxed: crate::engine::EventCallback = Box::new(move |event| {
            let owner = &owner;
            let ev = impp_event::new(event.clone());
            // SAFETY: the application's function, with its own user data; the event lives
            // for the call.
            unsafe { callback(&ev, owner.data) };
        });
        e.engine.set_event_callback(Some(boxed))
    })
}

/// Reads one counter (an `impp_stat` value); 0 for NULL or an unknown counter. Cheap; any
/// thread.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_stat(
    engine: *const impp_engine,
    which: enum_arg::impp_stat,
) -> u64 {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { engine.as_ref() }) else {
            return 0;
        };
        let s = e.engine.stats();
        match which {
            0 => s.presentities,
            1 => s.publications,
            2 => s.subscriptions_pending,
            3 => s.subscriptions_active,
            4 => s.events_queued,
            5 => s.notifications_sent,
            6 => s.notifications_merged,
            7 => s.notifications_throttled,
            8 => s.events_overflowed,
            9 => s.callback_panics,
            10 => s.endpoints,
            11 => s.messages_waiting,
            12 => s.messages_delivered,
            13 => s.messages_failed,
            14 => s.messages_refused,
            15 => s.subscriptions_refused,
            16 => s.endpoints_refused,
            _ => 0,
        }
    })
}

/// Moves the manual clock forward by `ms` milliseconds and waits until every shard has run
/// what became due (expiries, throttles) and queued its events. Only for engines configured
/// with `impp_config_use_manual_clock`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, no manual clock), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_advance_clock(
    engine: *const impp_engine,
    ms: u64,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let clock = e.manual_clock.as_ref().ok_or_else(|| {
            Error::InvalidArgument("the engine was not configured with a manual clock".into())
        })?;
        clock.advance(Duration::from_millis(ms));
        e.engine.sync()
    })
}

/// Waits until every shard has handled every earlier call and queued its events (a barrier,
/// mostly for tests).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_sync(engine: *const impp_engine) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        e.engine.sync()
    })
}

/// The C names of the `impp_reason` values, for messages. Static; any thread.
#[no_mangle]
pub extern "C" fn impp_reason_name(reason: enum_arg::impp_reason) -> *const c_char {
    let name: &'static [u8] = match reason {
        0 => b"none\0",
        1 => b"deactivated\0",
        2 => b"probation\0",
        3 => b"rejected\0",
        4 => b"timeout\0",
        5 => b"giveup\0",
        6 => b"noresource\0",
        _ => b"unknown\0",
    };
    name.as_ptr().cast()
}
