//! The options of `impp_engine_send_message`: one setter per optional field, so that fields
//! added later are new functions rather than a changed signature. A call borrows the options
//! for its duration only; the same options may serve many calls.

use std::ffi::{c_char, CString};

use super::boundary::{
    free_handle, guard, guard_value, handle_mut, opt_str_arg, out_arg, write_out,
};
use super::status::impp_status;
use crate::error::{Error, Result};

/// The optional fields of an instant message. Create with `impp_message_options_new`, fill
/// with the `impp_message_options_set_*` setters, pass to `impp_engine_send_message` (which
/// only reads them) and free with `impp_message_options_free`.
#[derive(Debug, Default)]
pub struct impp_message_options {
    pub(super) endpoint: Option<CString>,
    pub(super) in_reply_to: Option<CString>,
}

/// Creates message options with every default: no endpoint (every endpoint of the recipient
/// gets the message), no in-reply-to. Passing these to `impp_engine_send_message` is the same
/// as passing NULL.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_new(
    out: *mut *mut impp_message_options,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let options = Box::<impp_message_options>::default();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(options)) };
        Ok(())
    })
}

/// Frees message options. NULL is a no-op. The calls that used them kept nothing of them.
///
/// # Safety
/// `options` is NULL or options from `impp_message_options_new` not yet freed, used by no
/// call in progress.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_free(options: *mut impp_message_options) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(options) }
}

/// Runs `change` on the options behind `options` inside the panic boundary.
///
/// # Safety
/// `options` is NULL or live options, used by no other thread during the call.
unsafe fn with_options(
    options: *mut impp_message_options,
    change: impl FnOnce(&mut impp_message_options) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let o = unsafe { handle_mut(options, "options") }?;
        change(o)
    })
}

/// Sets the one endpoint of the recipient to deliver to while it is online (an endpoint id
/// as given to `impp_engine_login`: 1 to 256 characters, no control characters); NULL (the
/// default) removes it: every endpoint gets the message.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL options, not UTF-8, not an endpoint id).
/// Nothing changes on error.
///
/// # Safety
/// `options` is NULL or live options; `endpoint` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_set_endpoint(
    options: *mut impp_message_options,
    endpoint: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`options` and `endpoint`).
    unsafe {
        with_options(options, |o| {
            let endpoint = opt_str_arg(endpoint, "endpoint")?;
            if let Some(id) = endpoint {
                crate::engine::check_endpoint_id(id)?;
            }
            o.endpoint = endpoint
                .map(CString::new)
                .transpose()
                .map_err(|_| Error::InvalidArgument("endpoint contains a NUL character".into()))?;
            Ok(())
        })
    }
}

/// Sets the in-reply-to value handed to the recipient as is (any UTF-8 text, such as the id
/// of the message answered); NULL (the default) removes it.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL options, not UTF-8). Nothing changes on error.
///
/// # Safety
/// `options` is NULL or live options; `in_reply_to` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_set_in_reply_to(
    options: *mut impp_message_options,
    in_reply_to: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`options` and `in_reply_to`).
    unsafe {
        with_options(options, |o| {
            let value = opt_str_arg(in_reply_to, "in_reply_to")?;
            o.in_reply_to = value.map(CString::new).transpose().map_err(|_| {
                Error::InvalidArgument("in_reply_to contains a NUL character".into())
            })?;
            Ok(())
        })
    }
}

/// The endpoint set, borrowed from the options until it is next set or the options are
/// freed; NULL when none is set, or for NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_endpoint(
    options: *const impp_message_options,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        unsafe { options.as_ref() }
            .and_then(|o| o.endpoint.as_ref())
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The in-reply-to value set, borrowed from the options until it is next set or the options
/// are freed; NULL when none is set, or for NULL.
///
/// # Safety
/// `options` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn impp_message_options_in_reply_to(
    options: *const impp_message_options,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        unsafe { options.as_ref() }
            .and_then(|o| o.in_reply_to.as_ref())
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}
