//! Snapshots of the subscriptions of a presentity (or of every presentity), for an
//! operator's view: who watches, in which state, decided how, for how long still. Copied
//! whole in one call, as `impp_rule_list` is, so reading by index never races with
//! subscriptions that change meanwhile; strings are borrowed from the snapshot.

use std::ffi::{c_char, CString};

use super::boundary::{free_handle, guard, guard_value, handle, out_arg, write_out};
use super::config::{auth_action_to_c, impp_auth_action};
use super::engine::{engine_ref, impp_engine, uri_arg};
use super::event::{impp_subscription_state, state_to_c};
use super::status::impp_status;
use crate::engine::{AuthAction, SubscriptionInfo, SubscriptionState};
use crate::error::{Error, Result};

/// A copy of subscriptions as they were when `impp_engine_subscriptions` took it; later
/// changes do not show in it. Free it with `impp_subscription_list_free`.
pub struct impp_subscription_list {
    items: Vec<Entry>,
}

struct Entry {
    id: u64,
    watcher: CString,
    presentity: CString,
    package: CString,
    state: SubscriptionState,
    authorization: AuthAction,
    expires_in: u32,
}

impl Entry {
    fn new(s: SubscriptionInfo) -> Result<Entry> {
        let text = |s: String, what: &str| {
            CString::new(s)
                .map_err(|_| Error::Internal(format!("a subscription's {what} contains a NUL")))
        };
        Ok(Entry {
            id: s.id.0,
            watcher: text(s.watcher.to_string(), "watcher")?,
            presentity: text(s.presentity.to_string(), "presentity")?,
            package: text(s.package.to_string(), "package")?,
            state: s.state,
            authorization: s.authorization,
            expires_in: u32::try_from(s.expires_in.as_secs()).unwrap_or(u32::MAX),
        })
    }
}

/// Takes a snapshot of the subscriptions to `presentity` (NULL: to every presentity), in
/// every package and state (pending ones included: their ids are what
/// `impp_engine_authorize` decides), in a stable order. On success `*out` owns a new list
/// (possibly empty), to be freed with `impp_subscription_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL engine or `out`, not UTF-8),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `presentity` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_subscriptions(
    engine: *const impp_engine,
    presentity: *const c_char,
    out: *mut *mut impp_subscription_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        let presentity = if presentity.is_null() {
            None
        } else {
            // SAFETY: the caller's contract.
            Some(unsafe { uri_arg(presentity, "presentity") }?)
        };
        let mut subs = e.engine.subscriptions(presentity.as_ref())?;
        subs.sort_by_key(|s| s.id.0);
        let items = subs
            .into_iter()
            .map(Entry::new)
            .collect::<Result<Vec<_>>>()?;
        let list = Box::new(impp_subscription_list { items });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(list)) };
        Ok(())
    })
}

/// Frees a subscription list and the strings borrowed from it. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list from `impp_engine_subscriptions` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_free(list: *mut impp_subscription_list) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(list) }
}

/// The number of subscriptions in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_count(
    list: *const impp_subscription_list,
) -> usize {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { list.as_ref() }.map_or(0, |l| l.items.len()))
}

/// Reads one field of subscription `index` inside the panic boundary.
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
unsafe fn read<T>(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut T,
    field: impl FnOnce(&Entry) -> T,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let l = unsafe { handle(list, "list") }?;
        let item = l.items.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "subscription index {index} is out of range ({} subscriptions)",
                l.items.len()
            ))
        })?;
        // SAFETY: checked non-NULL above; writable by the contract.
        unsafe { write_out(out, field(item)) };
        Ok(())
    })
}

/// The id of subscription `index` (what `impp_engine_authorize` takes).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_id(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut u64,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| s.id) }
}

/// The watcher's URI of subscription `index`, borrowed from the list until
/// `impp_subscription_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_watcher(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| s.watcher.as_ptr()) }
}

/// The presentity's URI of subscription `index`, borrowed from the list until
/// `impp_subscription_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_presentity(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| s.presentity.as_ptr()) }
}

/// The event package of subscription `index` (`"presence"`, `"presence.winfo"`,
/// `"dialog"`, `"message-summary"`), borrowed from the list until
/// `impp_subscription_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_package(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| s.package.as_ptr()) }
}

/// The state of subscription `index`: pending or active (terminated only for one that was
/// ending as the snapshot was taken).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_state(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut impp_subscription_state,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| state_to_c(s.state).0) }
}

/// What authorization decided for subscription `index` (confirm: still pending).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_authorization(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut impp_auth_action,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| auth_action_to_c(s.authorization)) }
}

/// Seconds subscription `index` had left, when the snapshot was taken, before it expires
/// unless refreshed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscription_list_expires_in(
    list: *const impp_subscription_list,
    index: usize,
    out: *mut u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read(list, index, out, |s| s.expires_in) }
}
