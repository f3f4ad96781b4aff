//! Message summaries (RFC 3842, the `message-summary` package: voicemail lamps) as an opaque
//! handle, to read what a voicemail server reports and to build the body it publishes.
//!
//! Strings read from a handle are borrowed from it: they stay valid until the handle is next
//! modified (any `impp_message_summary_` call taking a non-const handle) or freed. A handle
//! may be used from any thread, but by one thread at a time.

use std::ffi::c_char;

use super::boundary::{
    document_arg, free_handle, guard, guard_value, handle, handle_mut, opt_str_arg, out_arg,
    str_arg, write_out, write_owned_text, StrCache,
};
use super::presence::as_invalid_argument;
use super::status::impp_status;
use crate::doc::mwi::{MessageClass, MessageCount, MessageSummary};
use crate::doc::pidf::check_uri;
use crate::doc::Limits;
use crate::error::{Error, Result};

/// A message summary. Create it with `impp_message_summary_new` or
/// `impp_message_summary_parse` (or get one from an event with
/// `impp_event_message_summary`), free it with `impp_message_summary_free`.
pub struct impp_message_summary {
    doc: MessageSummary,
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Account,
    ClassName(usize),
}

impl impp_message_summary {
    /// A new owned handle for `doc`, for other parts of the C API.
    pub(super) fn from_document(doc: MessageSummary) -> *mut impp_message_summary {
        Box::into_raw(Box::new(impp_message_summary {
            doc,
            strings: StrCache::new(),
        }))
    }

    fn count(&self, index: usize) -> Result<&MessageCount> {
        self.doc.counts.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "class index {index} is out of range ({} classes)",
                self.doc.counts.len()
            ))
        })
    }

    /// The index of the count line of `class` (names compare without case).
    fn position(&self, class: &MessageClass) -> Option<usize> {
        self.doc
            .counts
            .iter()
            .position(|c| c.class.as_str().eq_ignore_ascii_case(class.as_str()))
    }
}

/// The class a C caller names: one of RFC 3458's (any case), or another name ending in
/// `-message` made of SIP token characters.
fn class_arg(name: &str) -> Result<MessageClass> {
    if let Some(known) = MessageClass::known(name) {
        return Ok(known);
    }
    let token = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    let suffix = "-message";
    let is_class = name.len() > suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes());
    if token && is_class {
        Ok(MessageClass::Other(name.to_owned()))
    } else {
        Err(Error::InvalidArgument(format!(
            "'{name}' is not a message class (voice-message, fax-message, pager-message, \
             multimedia-message, text-message, none, or another token ending in -message)"
        )))
    }
}

/// An optional urgent count from C: -1 for none, else 0 to `UINT32_MAX`.
fn urgent_arg(value: i64, what: &str) -> Result<Option<u32>> {
    if value == -1 {
        return Ok(None);
    }
    u32::try_from(value).map(Some).map_err(|_| {
        Error::InvalidArgument(format!(
            "{what} {value} is neither -1 nor a count from 0 to 4294967295"
        ))
    })
}

/// Creates a message summary with only the lamp state (`Messages-Waiting: yes` when
/// `messages_waiting`, else `no`). On success `*out` owns a new handle, to be freed with
/// `impp_message_summary_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_new(
    messages_waiting: bool,
    out: *mut *mut impp_message_summary,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let doc = MessageSummary::new(messages_waiting);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_message_summary::from_document(doc)) };
        Ok(())
    })
}

/// Parses a message summary body (`application/simple-message-summary`) of `len` bytes
/// (UTF-8, need not be NUL-terminated) with the default size limit (64 KiB).
///
/// `text` is borrowed for the call. On success `*out` owns a new handle. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, no or a
/// duplicate `Messages-Waiting` line, bad counts, a line that is not `Name: value`),
/// `IMPP_ERR_TOO_LARGE`.
///
/// # Safety
/// `text` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_parse(
    text: *const c_char,
    len: usize,
    out: *mut *mut impp_message_summary,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let text = unsafe { document_arg(text, len, "message-summary", &Limits::DEFAULT) }?;
        let doc = MessageSummary::parse(text, &Limits::DEFAULT)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_message_summary::from_document(doc)) };
        Ok(())
    })
}

/// Frees a message summary and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `summary` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_free(summary: *mut impp_message_summary) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(summary) }
}

/// Writes the body (CRLF line ends), ready for `impp_engine_publish` with the
/// `"message-summary"` package. On success `*out` is an owned string: free it with
/// `impp_string_free`. `*len_out`, if not NULL, receives its length in bytes (without the
/// NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`).
///
/// # Safety
/// `summary` is NULL or a live handle; `out` is NULL or writable; `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_to_text(
    summary: *const impp_message_summary,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let m = unsafe { handle(summary, "summary") }?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, m.doc.to_text(), "message summary") }
    })
}

/// Whether the lamp should be lit (`Messages-Waiting: yes`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `summary` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_messages_waiting(
    summary: *const impp_message_summary,
    out: *mut bool,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let m = unsafe { handle(summary, "summary") }?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, m.doc.messages_waiting) };
        Ok(())
    })
}

/// Sets whether the lamp should be lit.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `summary` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_set_messages_waiting(
    summary: *mut impp_message_summary,
    messages_waiting: bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { handle_mut(summary, "summary") }?;
        m.strings.clear();
        m.doc.messages_waiting = messages_waiting;
        Ok(())
    })
}

/// The mailbox the summary is about (`Message-Account`), borrowed from the handle, or NULL
/// when the body does not say.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `summary` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_account(
    summary: *const impp_message_summary,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let m = unsafe { handle(summary, "summary") }?;
        let s = m
            .strings
            .get_opt(Field::Account, m.doc.account.as_deref())?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// Sets (or, with NULL, removes) the mailbox URI (`Message-Account`), such as
/// `sip:alice@vmail.example.test`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, not UTF-8, not URI-shaped). Nothing
/// changes on error.
///
/// # Safety
/// `summary` is NULL or a live handle; `account` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_set_account(
    summary: *mut impp_message_summary,
    account: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { handle_mut(summary, "summary") }?;
        // SAFETY: the caller's contract.
        let account = unsafe { opt_str_arg(account, "account") }?;
        if let Some(a) = account {
            check_uri(a, "account").map_err(as_invalid_argument)?;
        }
        m.strings.clear();
        m.doc.account = account.map(str::to_owned);
        Ok(())
    })
}

/// The number of message classes with a count line; 0 for NULL.
///
/// # Safety
/// `summary` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_class_count(
    summary: *const impp_message_summary,
) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { summary.as_ref() }.map_or(0, |m| m.doc.counts.len())
    })
}

/// The name of class `index`, in lower case: `"voice-message"`, `"fax-message"`,
/// `"pager-message"`, `"multimedia-message"`, `"text-message"`, `"none"`, or another class's
/// name (ending in `-message`). Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `summary` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_class_name(
    summary: *const impp_message_summary,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let m = unsafe { handle(summary, "summary") }?;
        let name = m.count(index)?.class.as_str().to_ascii_lowercase();
        let s = m.strings.get(Field::ClassName(index), &name)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// The counts of class `index`: `*new_out` and `*old_out` the new and old messages;
/// `*urgent_new_out` and `*urgent_old_out` (each may be NULL) the urgent ones among them, or
/// -1 when the body does not give urgent counts.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, `new_out` or `old_out`),
/// `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `summary` is NULL or a live handle; each output NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_class_counts(
    summary: *const impp_message_summary,
    index: usize,
    new_out: *mut u32,
    old_out: *mut u32,
    urgent_new_out: *mut i64,
    urgent_old_out: *mut i64,
) -> impp_status {
    guard(|| {
        out_arg(new_out, "new_out")?;
        out_arg(old_out, "old_out")?;
        // SAFETY: the caller's contract.
        let m = unsafe { handle(summary, "summary") }?;
        let c = m.count(index)?;
        // SAFETY: checked non-NULL above; the urgent outputs may be NULL.
        unsafe {
            write_out(new_out, c.new);
            write_out(old_out, c.old);
            if !urgent_new_out.is_null() {
                write_out(urgent_new_out, c.urgent_new.map_or(-1, i64::from));
            }
            if !urgent_old_out.is_null() {
                write_out(urgent_old_out, c.urgent_old.map_or(-1, i64::from));
            }
        }
        Ok(())
    })
}

/// Sets the new and old counts of a class named as `impp_message_summary_class_name` gives
/// it (any case): the class's line is replaced, without urgent counts, or appended. On
/// success `*index_out` (if not NULL) receives the class's index.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, not a class name). Nothing changes
/// on error.
///
/// # Safety
/// `summary` is NULL or a live handle; `class_name` NULL or a NUL-terminated string;
/// `index_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_set_count(
    summary: *mut impp_message_summary,
    class_name: *const c_char,
    new_messages: u32,
    old_messages: u32,
    index_out: *mut usize,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { handle_mut(summary, "summary") }?;
        // SAFETY: the caller's contract.
        let class = class_arg(unsafe { str_arg(class_name, "class_name") }?)?;
        let known = m.position(&class);
        m.strings.clear();
        let count = MessageCount::new(class, new_messages, old_messages);
        let index = match known {
            Some(i) => {
                m.doc.counts[i] = count;
                i
            }
            None => {
                m.doc.counts.push(count);
                m.doc.counts.len() - 1
            }
        };
        if !index_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(index_out, index) };
        }
        Ok(())
    })
}

/// Sets the urgent counts of a class that has a count line: each from 0 to `UINT32_MAX`, or
/// -1 for none (with one given alone, the other is written as 0).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not a class name, a count out of range),
/// `IMPP_ERR_NOT_FOUND` (the class has no count line). Nothing changes on error.
///
/// # Safety
/// `summary` is NULL or a live handle; `class_name` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_message_summary_set_urgent(
    summary: *mut impp_message_summary,
    class_name: *const c_char,
    urgent_new: i64,
    urgent_old: i64,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { handle_mut(summary, "summary") }?;
        // SAFETY: the caller's contract.
        let class = class_arg(unsafe { str_arg(class_name, "class_name") }?)?;
        let urgent_new = urgent_arg(urgent_new, "urgent_new")?;
        let urgent_old = urgent_arg(urgent_old, "urgent_old")?;
        let index = m.position(&class).ok_or_else(|| {
            Error::NotFound(format!("the summary has no {} line", class.as_str()))
        })?;
        m.strings.clear();
        let c = &mut m.doc.counts[index];
        c.urgent_new = urgent_new;
        c.urgent_old = urgent_old;
        Ok(())
    })
}
