//! Snapshots of a presentity's authorization rules. A list read from a live engine is copied
//! whole, in one call, into a handle: reading it by index cannot race with rules changed
//! meanwhile by other threads (or by the engine's own callback), and its strings are borrowed
//! from it rather than handed out one owned copy at a time.

use std::ffi::{c_char, CString};

use super::boundary::{free_handle, guard, guard_value, handle, out_arg, write_out};
use super::config::{auth_action_to_c, impp_auth_action};
use super::engine::{engine_ref, impp_engine, uri_arg};
use super::status::impp_status;
use crate::engine::{AuthAction, AuthRule, WatcherMatch};
use crate::error::{Error, Result};

/// A copy of a presentity's rules as they were when `impp_engine_rules` took it; later
/// changes to the rules do not show in it. Free it with `impp_rule_list_free`.
pub struct impp_rule_list {
    rules: Vec<RuleEntry>,
}

struct RuleEntry {
    watcher: Option<CString>,
    domain: Option<CString>,
    action: AuthAction,
    target: Option<CString>,
}

impl RuleEntry {
    fn new(rule: AuthRule) -> Result<RuleEntry> {
        let text = |s: String, what: &str| {
            CString::new(s).map_err(|_| Error::Internal(format!("a rule's {what} contains a NUL")))
        };
        let (watcher, domain) = match rule.watcher {
            WatcherMatch::Watcher(uri) => (Some(text(uri.to_string(), "watcher")?), None),
            WatcherMatch::Domain(domain) => (None, Some(text(domain, "domain")?)),
        };
        let target = rule
            .target
            .map(|t| text(t.to_string(), "target"))
            .transpose()?;
        Ok(RuleEntry {
            watcher,
            domain,
            action: rule.action,
            target,
        })
    }
}

/// Takes a snapshot of the rules of `presentity` (in a stable order: the same rules always
/// come in the same order). On success `*out` owns a new list (possibly empty), to be freed
/// with `impp_rule_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`,
/// `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `presentity` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_rules(
    engine: *const impp_engine,
    presentity: *const c_char,
    out: *mut *mut impp_rule_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let presentity = unsafe { uri_arg(presentity, "presentity") }?;
        let rules = e
            .engine
            .rules(&presentity)?
            .into_iter()
            .map(RuleEntry::new)
            .collect::<Result<Vec<_>>>()?;
        let list = Box::new(impp_rule_list { rules });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(list)) };
        Ok(())
    })
}

/// Frees a rule list and the strings borrowed from it. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list from `impp_engine_rules` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_free(list: *mut impp_rule_list) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(list) }
}

/// The number of rules in the list; 0 for NULL.
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_count(list: *const impp_rule_list) -> usize {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { list.as_ref() }.map_or(0, |l| l.rules.len()))
}

/// Reads rule `index` of a list inside the panic boundary.
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
unsafe fn read_rule<T>(
    list: *const impp_rule_list,
    index: usize,
    out: *mut T,
    field: impl FnOnce(&RuleEntry) -> T,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let l = unsafe { handle(list, "list") }?;
        let rule = l.rules.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "rule index {index} is out of range ({} rules)",
                l.rules.len()
            ))
        })?;
        // SAFETY: checked non-NULL above; writable by the contract.
        unsafe { write_out(out, field(rule)) };
        Ok(())
    })
}

/// The watcher URI rule `index` applies to, or NULL for a rule of a whole domain (see
/// `impp_rule_list_domain`). Borrowed from the list until `impp_rule_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_watcher(
    list: *const impp_rule_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_rule(list, index, out, |r| {
            r.watcher.as_ref().map_or(std::ptr::null(), |w| w.as_ptr())
        })
    }
}

/// The domain rule `index` applies to, or NULL for a rule of one watcher (see
/// `impp_rule_list_watcher`). Borrowed from the list until `impp_rule_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_domain(
    list: *const impp_rule_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_rule(list, index, out, |r| {
            r.domain.as_ref().map_or(std::ptr::null(), |d| d.as_ptr())
        })
    }
}

/// What rule `index` does.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_action(
    list: *const impp_rule_list,
    index: usize,
    out: *mut impp_auth_action,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read_rule(list, index, out, |r| auth_action_to_c(r.action)) }
}

/// Where rule `index` sends the watchers it covers (a URI) when it is a redirect
/// (`IMPP_AUTH_REDIRECT`), else NULL. Borrowed from the list until `impp_rule_list_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_rule_list_target(
    list: *const impp_rule_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_rule(list, index, out, |r| {
            r.target.as_ref().map_or(std::ptr::null(), |t| t.as_ptr())
        })
    }
}
