//! Is-composing indications (RFC 3994, `application/im-iscomposing+xml`: typing
//! indicators) as an opaque handle, to read what a peer sends and to build what is sent.
//!
//! Strings read from a handle are borrowed from it: they stay valid until the handle is next
//! modified (any `impp_iscomposing_` call taking a non-const handle) or freed. A handle may
//! be used from any thread, but by one thread at a time.

use std::ffi::c_char;

use super::boundary::{
    document_arg, field_text, free_handle, guard, handle, handle_mut, opt_str_arg, out_arg,
    write_out, write_owned_text, StrCache,
};
use super::enum_arg;
use super::presence::as_invalid_argument;
use super::status::impp_status;
use crate::doc::iscomposing::{ComposingState, IsComposing};
use crate::doc::{Limits, Timestamp};
use crate::error::{Error, Result};

/// Whether the sender of an is-composing document is composing a message.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_composing_state {
    /// The user is writing (typing, recording...) a message.
    IMPP_COMPOSING_STATE_ACTIVE = 1,
    /// The user stopped writing without sending, or has not started.
    IMPP_COMPOSING_STATE_IDLE = 2,
}

/// An is-composing document. Create it with `impp_iscomposing_new` or
/// `impp_iscomposing_parse`, free it with `impp_iscomposing_free`.
pub struct impp_iscomposing {
    doc: IsComposing,
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    LastActive,
    ContentType,
}

impl impp_iscomposing {
    fn from_document(doc: IsComposing) -> *mut impp_iscomposing {
        Box::into_raw(Box::new(impp_iscomposing {
            doc,
            strings: StrCache::new(),
        }))
    }
}

fn state_to_c(s: ComposingState) -> impp_composing_state {
    match s {
        ComposingState::Active => impp_composing_state::IMPP_COMPOSING_STATE_ACTIVE,
        ComposingState::Idle => impp_composing_state::IMPP_COMPOSING_STATE_IDLE,
    }
}

fn state_from_c(value: enum_arg::impp_composing_state) -> Result<ComposingState> {
    match value {
        1 => Ok(ComposingState::Active),
        2 => Ok(ComposingState::Idle),
        other => Err(Error::InvalidArgument(format!(
            "state {other} is not an impp_composing_state value (1 or 2)"
        ))),
    }
}

/// A refresh interval from C: -1 for none, else 1 to `UINT32_MAX` seconds.
fn refresh_arg(value: i64) -> Result<Option<u32>> {
    if value == -1 {
        return Ok(None);
    }
    match u32::try_from(value) {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(Error::InvalidArgument(format!(
            "refresh {value} is neither -1 nor a number of seconds from 1 to 4294967295"
        ))),
    }
}

/// Creates an is-composing document in `state` (an `impp_composing_state` value) with
/// nothing else. On success `*out` owns a new handle, to be freed with
/// `impp_iscomposing_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL, `state` not an `impp_composing_state`).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_new(
    state: enum_arg::impp_composing_state,
    out: *mut *mut impp_iscomposing,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let doc = IsComposing {
            state: state_from_c(state)?,
            ..IsComposing::default()
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_iscomposing::from_document(doc)) };
        Ok(())
    })
}

/// Parses an is-composing document (`application/im-iscomposing+xml`) of `len` bytes
/// (UTF-8, need not be NUL-terminated) with the default limits (64 KiB, 32 levels).
///
/// `xml` is borrowed for the call. On success `*out` owns a new handle. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, not XML,
/// not an `isComposing` root in its namespace, `<state>` missing or neither `active` nor
/// `idle`, a `<lastactive>` that is not a date-time, a `<refresh>` that is not a positive
/// number of seconds), `IMPP_ERR_TOO_LARGE`, `IMPP_ERR_UNSAFE_XML` (DOCTYPE).
///
/// # Safety
/// `xml` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_parse(
    xml: *const c_char,
    len: usize,
    out: *mut *mut impp_iscomposing,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let text = unsafe { document_arg(xml, len, "isComposing", &Limits::DEFAULT) }?;
        let doc = IsComposing::parse(text)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_iscomposing::from_document(doc)) };
        Ok(())
    })
}

/// Frees an is-composing document and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `doc` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_free(doc: *mut impp_iscomposing) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(doc) }
}

/// Writes the document as XML, ready to send as the body of a MESSAGE with the content
/// type `application/im-iscomposing+xml`. On success `*out` is an owned string: free it with
/// `impp_string_free`. `*len_out`, if not NULL, receives its length in bytes (without the
/// NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable; `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_to_xml(
    doc: *const impp_iscomposing,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, d.doc.to_xml(), "document") }
    })
}

/// Whether the sender is composing (`<state>`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_state(
    doc: *const impp_iscomposing,
    out: *mut impp_composing_state,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, state_to_c(d.doc.state)) };
        Ok(())
    })
}

/// Sets the state (an `impp_composing_state` value).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not an `impp_composing_state`). Nothing
/// changes on error.
///
/// # Safety
/// `doc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_set_state(
    doc: *mut impp_iscomposing,
    state: enum_arg::impp_composing_state,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(doc, "doc") }?;
        let state = state_from_c(state)?;
        d.strings.clear();
        d.doc.state = state;
        Ok(())
    })
}

/// When the user last composed (`<lastactive>`), an `xs:dateTime` as written such as
/// `2026-11-24T14:45:00Z`, borrowed from the handle, or NULL when the document has none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_last_active(
    doc: *const impp_iscomposing,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        let ts = d.doc.last_active.as_ref().map(Timestamp::as_str);
        let s = d.strings.get_opt(Field::LastActive, ts)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// Sets (or, with NULL, removes) when the user last composed, an `xs:dateTime` such as
/// `2026-11-24T14:45:00Z`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, not UTF-8, not a date-time). Nothing
/// changes on error.
///
/// # Safety
/// `doc` is NULL or a live handle; `timestamp` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_set_last_active(
    doc: *mut impp_iscomposing,
    timestamp: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(doc, "doc") }?;
        // SAFETY: the caller's contract.
        let ts = unsafe { opt_str_arg(timestamp, "timestamp") }?
            .map(Timestamp::parse)
            .transpose()
            .map_err(as_invalid_argument)?;
        d.strings.clear();
        d.doc.last_active = ts;
        Ok(())
    })
}

/// What is being composed (`<contenttype>`), such as `text/plain` or `audio`, borrowed
/// from the handle, or NULL when the document does not say.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_content_type(
    doc: *const impp_iscomposing,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        let s = d
            .strings
            .get_opt(Field::ContentType, d.doc.content_type.as_deref())?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// Sets (or, with NULL, removes) what is being composed, such as `text/plain`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, not UTF-8, empty, surrounding blanks,
/// control characters). Nothing changes on error.
///
/// # Safety
/// `doc` is NULL or a live handle; `content_type` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_set_content_type(
    doc: *mut impp_iscomposing,
    content_type: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(doc, "doc") }?;
        // SAFETY: the caller's contract.
        let ct = unsafe { opt_str_arg(content_type, "content_type") }?
            .map(|v| field_text(v, "content_type"))
            .transpose()?;
        d.strings.clear();
        d.doc.content_type = ct.map(str::to_owned);
        Ok(())
    })
}

/// The refresh interval in seconds (`<refresh>`, 1 or more), or -1 when the document has
/// none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_refresh(
    doc: *const impp_iscomposing,
    out: *mut i64,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, d.doc.refresh.map_or(-1, i64::from)) };
        Ok(())
    })
}

/// Sets the refresh interval: 1 to `UINT32_MAX` seconds, or -1 for none (RFC 3994 suggests
/// 120 and at least 60; it only means something in the active state).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0, out of range). Nothing changes on error.
///
/// # Safety
/// `doc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_set_refresh(
    doc: *mut impp_iscomposing,
    refresh: i64,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(doc, "doc") }?;
        let refresh = refresh_arg(refresh)?;
        d.strings.clear();
        d.doc.refresh = refresh;
        Ok(())
    })
}

/// For an active document, the seconds after which a receiver that got no refresh treats
/// the sender as idle: the refresh interval, or 120 when the document has none. -1 for an
/// idle document.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `doc` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_iscomposing_active_expires_after(
    doc: *const impp_iscomposing,
    out: *mut i64,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(doc, "doc") }?;
        let secs = d.doc.active_expires_after().map_or(-1, i64::from);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, secs) };
        Ok(())
    })
}
