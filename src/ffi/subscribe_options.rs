//! The options of `impp_engine_subscribe`: one setter per optional field, so that fields
//! added later (lists, TLS...) are new functions rather than a changed signature. A call
//! borrows the options for its duration only; the same options may serve many calls.

use std::ffi::{c_char, CString};

use super::boundary::{bytes_arg, free_handle, guard, guard_value, handle_mut, out_arg, write_out};
use super::status::impp_status;
use crate::error::{Error, Result};

/// The optional fields of a subscription. Create with `impp_subscribe_options_new`, fill with
/// the `impp_subscribe_options_set_*` setters, pass to `impp_engine_subscribe` (which only
/// reads them) and free with `impp_subscribe_options_free`.
#[derive(Debug, Default)]
pub struct impp_subscribe_options {
    /// Seconds; 0 is the configured default.
    pub(super) expires: u32,
    /// Fetch the state once and end (RFC 6665 §4.4.3), whatever `expires` says.
    pub(super) fetch: bool,
    /// The RFC 4661 filter document, checked for UTF-8 here and parsed by the subscribe
    /// call (against the engine's document limits).
    pub(super) filter: Option<CString>,
    /// Milliseconds; 0 is the engine's default.
    pub(super) min_interval_ms: u32,
}

/// Creates subscription options with every default: the configured expiry, no filter, the
/// engine's minimum notification interval, a lasting subscription (not a fetch). Passing
/// these to `impp_engine_subscribe` is the same as passing NULL.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_new(
    out: *mut *mut impp_subscribe_options,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let options = Box::<impp_subscribe_options>::default();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(options)) };
        Ok(())
    })
}

/// Frees subscription options. NULL is a no-op. The calls that used them kept nothing of
/// them, so this may follow any call at once.
///
/// # Safety
/// `options` is NULL or options from `impp_subscribe_options_new` not yet freed, used by no
/// call in progress.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_free(options: *mut impp_subscribe_options) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(options) }
}

/// Runs `change` on the options behind `options` inside the panic boundary.
///
/// # Safety
/// `options` is NULL or live options, used by no other thread during the call.
unsafe fn with_options(
    options: *mut impp_subscribe_options,
    change: impl FnOnce(&mut impp_subscribe_options) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let o = unsafe { handle_mut(options, "options") }?;
        change(o)
    })
}

/// Sets the requested expiry in seconds: 0 (`IMPP_EXPIRES_DEFAULT`, the default) is the
/// engine's configured default; longer than the configured maximum is shortened, shorter
/// than the minimum makes `impp_engine_subscribe` fail with `IMPP_ERR_INTERVAL_TOO_BRIEF`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL). Any thread; one at a time per options.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_set_expires(
    options: *mut impp_subscribe_options,
    expires: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_options(options, |o| {
            o.expires = expires;
            Ok(())
        })
    }
}

/// Sets whether the subscription only fetches the current state: the watcher gets one
/// notification and the subscription ends at once (RFC 6665 §4.4.3, a SUBSCRIBE with
/// `Expires: 0`); the expiry is then ignored. Default: no. This is how to fetch: an expiry
/// of 0 means the default, as everywhere in this API.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_set_fetch(
    options: *mut impp_subscribe_options,
    fetch: bool,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_options(options, |o| {
            o.fetch = fetch;
            Ok(())
        })
    }
}

/// Sets the RFC 4661 filter document, `len` bytes at `xml` (copied); NULL with `len` 0
/// removes it (the default: no filter). The document is parsed by `impp_engine_subscribe`,
/// against the engine's document limits, which reports a bad one (`IMPP_ERR_MALFORMED`,
/// `IMPP_ERR_UNSUPPORTED`...); here it is only checked to be text.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL options, `xml` NULL with a length),
/// `IMPP_ERR_MALFORMED` (not UTF-8, or a NUL byte). Nothing changes on error.
///
/// # Safety
/// `options` is NULL or live options; `xml` NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_set_filter(
    options: *mut impp_subscribe_options,
    xml: *const c_char,
    len: usize,
) -> impp_status {
    // SAFETY: the caller's contract (`options`, and `len` bytes at `xml`).
    unsafe {
        with_options(options, |o| {
            let bytes = bytes_arg(xml.cast(), len, "xml")?;
            if xml.is_null() {
                o.filter = None;
                return Ok(());
            }
            let text = std::str::from_utf8(bytes).map_err(|e| {
                Error::Malformed(format!(
                    "filter: document is not UTF-8 (at byte {})",
                    e.valid_up_to()
                ))
            })?;
            let text = CString::new(text)
                .map_err(|_| Error::Malformed("filter: document contains a NUL byte".into()))?;
            o.filter = Some(text);
            Ok(())
        })
    }
}

/// Sets the minimum time between two notifications of the subscription, in milliseconds
/// (RFC 6446): changes inside it merge into one notification. 0 (the default) is the
/// engine's configured default (`impp_config_set_min_notify_interval_ms`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_set_min_interval_ms(
    options: *mut impp_subscribe_options,
    min_interval_ms: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_options(options, |o| {
            o.min_interval_ms = min_interval_ms;
            Ok(())
        })
    }
}

/// The expiry set, in seconds (0: the configured default); 0 for NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_expires(
    options: *const impp_subscribe_options,
) -> u32 {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { options.as_ref() }.map_or(0, |o| o.expires))
}

/// Whether the options ask for a fetch; false for NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_fetch(
    options: *const impp_subscribe_options,
) -> bool {
    // SAFETY: the caller's contract.
    guard_value(false, || {
        unsafe { options.as_ref() }.is_some_and(|o| o.fetch)
    })
}

/// The filter document set (NUL-terminated), borrowed from the options until the filter is
/// next set or the options are freed; NULL when there is none, or for NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_filter(
    options: *const impp_subscribe_options,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        unsafe { options.as_ref() }
            .and_then(|o| o.filter.as_ref())
            .map_or(std::ptr::null(), |f| f.as_ptr())
    })
}

/// The minimum notification interval set, in milliseconds (0: the engine's default); 0 for
/// NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_subscribe_options_min_interval_ms(
    options: *const impp_subscribe_options,
) -> u32 {
    // SAFETY: the caller's contract.
    guard_value(0, || {
        unsafe { options.as_ref() }.map_or(0, |o| o.min_interval_ms)
    })
}
