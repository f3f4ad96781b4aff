//! Watcher information documents (RFC 3858, the `presence.winfo` package) as an opaque,
//! read-only handle: the engine writes these documents, a presentity reads them to learn who
//! watches it.
//!
//! Strings read from a handle are borrowed from it and stay valid until it is freed (nothing
//! modifies a watcherinfo handle). A handle may be used from any thread, but by one thread at
//! a time.

use std::ffi::c_char;

use super::boundary::{
    document_arg, free_handle, guard, guard_value, handle, out_arg, write_out, write_owned_text,
    StrCache,
};
use super::status::impp_status;
use crate::doc::winfo::{Watcher, WatcherEvent, WatcherList, WatcherStatus, Watcherinfo};
use crate::doc::{DocState, Limits};
use crate::error::{Error, Result};

/// A watcher information document. Create it with `impp_winfo_parse` (or get one from an
/// event with `impp_event_winfo`), free it with `impp_winfo_free`.
pub struct impp_winfo {
    doc: Watcherinfo,
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Resource(usize),
    Package(usize),
    WatcherId(usize, usize),
    WatcherUri(usize, usize),
    DisplayName(usize, usize),
}

/// Whether a watcherinfo or dialog-info document carries the whole state or only changes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_doc_state {
    /// `full`: the whole state.
    IMPP_DOC_STATE_FULL = 1,
    /// `partial`: only what changed since the previous version.
    IMPP_DOC_STATE_PARTIAL = 2,
}

pub(super) fn doc_state_to_c(state: DocState) -> impp_doc_state {
    match state {
        DocState::Full => impp_doc_state::IMPP_DOC_STATE_FULL,
        DocState::Partial => impp_doc_state::IMPP_DOC_STATE_PARTIAL,
    }
}

/// The state of one watcher's subscription (RFC 3857).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_watcher_status {
    /// Waiting for the presentity to authorize it.
    IMPP_WATCHER_STATUS_PENDING = 1,
    /// Authorized and receiving notifications.
    IMPP_WATCHER_STATUS_ACTIVE = 2,
    /// Was pending, then expired or was withdrawn.
    IMPP_WATCHER_STATUS_WAITING = 3,
    /// Ended; the event says why.
    IMPP_WATCHER_STATUS_TERMINATED = 4,
}

/// What moved a watcher into its current status (RFC 3857).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_watcher_event {
    /// A SUBSCRIBE created the subscription.
    IMPP_WATCHER_EVENT_SUBSCRIBE = 1,
    /// The presentity authorized it.
    IMPP_WATCHER_EVENT_APPROVED = 2,
    /// Deactivated; the watcher may subscribe again.
    IMPP_WATCHER_EVENT_DEACTIVATED = 3,
    /// Deactivated; the watcher should wait before subscribing again.
    IMPP_WATCHER_EVENT_PROBATION = 4,
    /// The presentity refused it.
    IMPP_WATCHER_EVENT_REJECTED = 5,
    /// It expired without a refresh.
    IMPP_WATCHER_EVENT_TIMEOUT = 6,
    /// It waited too long for an authorization decision.
    IMPP_WATCHER_EVENT_GIVEUP = 7,
    /// The watched resource no longer exists.
    IMPP_WATCHER_EVENT_NORESOURCE = 8,
}

fn status_to_c(status: WatcherStatus) -> impp_watcher_status {
    match status {
        WatcherStatus::Pending => impp_watcher_status::IMPP_WATCHER_STATUS_PENDING,
        WatcherStatus::Active => impp_watcher_status::IMPP_WATCHER_STATUS_ACTIVE,
        WatcherStatus::Waiting => impp_watcher_status::IMPP_WATCHER_STATUS_WAITING,
        WatcherStatus::Terminated => impp_watcher_status::IMPP_WATCHER_STATUS_TERMINATED,
    }
}

fn event_to_c(event: WatcherEvent) -> impp_watcher_event {
    match event {
        WatcherEvent::Subscribe => impp_watcher_event::IMPP_WATCHER_EVENT_SUBSCRIBE,
        WatcherEvent::Approved => impp_watcher_event::IMPP_WATCHER_EVENT_APPROVED,
        WatcherEvent::Deactivated => impp_watcher_event::IMPP_WATCHER_EVENT_DEACTIVATED,
        WatcherEvent::Probation => impp_watcher_event::IMPP_WATCHER_EVENT_PROBATION,
        WatcherEvent::Rejected => impp_watcher_event::IMPP_WATCHER_EVENT_REJECTED,
        WatcherEvent::Timeout => impp_watcher_event::IMPP_WATCHER_EVENT_TIMEOUT,
        WatcherEvent::Giveup => impp_watcher_event::IMPP_WATCHER_EVENT_GIVEUP,
        WatcherEvent::Noresource => impp_watcher_event::IMPP_WATCHER_EVENT_NORESOURCE,
    }
}

impl impp_winfo {
    /// A new owned handle for `doc`, for other parts of the C API.
    pub(super) fn from_document(doc: Watcherinfo) -> *mut impp_winfo {
        Box::into_raw(Box::new(impp_winfo {
            doc,
            strings: StrCache::new(),
        }))
    }

    fn list(&self, list: usize) -> Result<&WatcherList> {
        self.doc.lists.get(list).ok_or_else(|| {
            Error::NotFound(format!(
                "watcher list index {list} is out of range ({} lists)",
                self.doc.lists.len()
            ))
        })
    }

    fn watcher(&self, list: usize, watcher: usize) -> Result<&Watcher> {
        let l = self.list(list)?;
        l.watchers.get(watcher).ok_or_else(|| {
            Error::NotFound(format!(
                "watcher index {watcher} is out of range (list {list} has {} watchers)",
                l.watchers.len()
            ))
        })
    }
}

/// Runs a getter that writes one value: checks `out`, borrows the handle, writes on success.
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
unsafe fn read<T>(
    winfo: *const impp_winfo,
    out: *mut T,
    get: impl FnOnce(&impp_winfo) -> Result<T>,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let w = unsafe { handle(winfo, "winfo") }?;
        let value = get(w)?;
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(out, value) };
        Ok(())
    })
}

/// Parses a watcherinfo document (`application/watcherinfo+xml`) of `len` bytes (UTF-8, need
/// not be NUL-terminated) with the default limits (64 KiB, depth 32).
///
/// `xml` is borrowed for the call. On success `*out` owns a new handle, to be freed with
/// `impp_winfo_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, not
/// well-formed, not watcherinfo, a status or event outside the schema, a missing attribute),
/// `IMPP_ERR_TOO_LARGE`, `IMPP_ERR_UNSAFE_XML` (DOCTYPE or entity references).
///
/// # Safety
/// `xml` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_parse(
    xml: *const c_char,
    len: usize,
    out: *mut *mut impp_winfo,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let text = unsafe { document_arg(xml, len, "watcherinfo", &Limits::DEFAULT) }?;
        let doc = Watcherinfo::parse(text, &Limits::DEFAULT)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_winfo::from_document(doc)) };
        Ok(())
    })
}

/// Frees a watcherinfo handle and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `winfo` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_free(winfo: *mut impp_winfo) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(winfo) }
}

/// Serializes the document as watcherinfo XML. On success `*out` is an owned string: free it
/// with `impp_string_free`. `*len_out`, if not NULL, receives its length in bytes (without
/// the NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_to_xml(
    winfo: *const impp_winfo,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let w = unsafe { handle(winfo, "winfo") }?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, w.doc.to_xml(), "document") }
    })
}

/// The document's version: it counts the notifications of one subscription from 0.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_version(
    winfo: *const impp_winfo,
    out: *mut u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { read(winfo, out, |w| Ok(w.doc.version)) }
}

/// Whether the document lists every watcher (`IMPP_DOC_STATE_FULL`) or only those that
/// changed since the previous version (`IMPP_DOC_STATE_PARTIAL`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_state(
    winfo: *const impp_winfo,
    out: *mut impp_doc_state,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { read(winfo, out, |w| Ok(doc_state_to_c(w.doc.state))) }
}

/// The number of watcher lists (one per watched resource and event package); 0 for NULL.
///
/// # Safety
/// `winfo` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_list_count(winfo: *const impp_winfo) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { winfo.as_ref() }.map_or(0, |w| w.doc.lists.len())
    })
}

/// The watched resource of list `list` (a URI such as `sip:alice@example.test`). Borrowed
/// from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_list_resource(
    winfo: *const impp_winfo,
    list: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            w.strings
                .get(Field::Resource(list), &w.list(list)?.resource)
        })
    }
}

/// The event package list `list` is about (`"presence"`, ...). Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_list_package(
    winfo: *const impp_winfo,
    list: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            w.strings.get(Field::Package(list), &w.list(list)?.package)
        })
    }
}

/// The number of watchers in list `list`; 0 for NULL or an index out of range.
///
/// # Safety
/// `winfo` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_count(winfo: *const impp_winfo, list: usize) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { winfo.as_ref() }
            .and_then(|w| w.doc.lists.get(list))
            .map_or(0, |l| l.watchers.len())
    })
}

/// The id of watcher `watcher` of list `list`: it names the subscription, stable across
/// versions. Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_id(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            let id = &w.watcher(list, watcher)?.id;
            w.strings.get(Field::WatcherId(list, watcher), id)
        })
    }
}

/// The URI of watcher `watcher` of list `list`. Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_uri(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            let uri = &w.watcher(list, watcher)?.uri;
            w.strings.get(Field::WatcherUri(list, watcher), uri)
        })
    }
}

/// The subscription state of watcher `watcher` of list `list`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_status(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut impp_watcher_status,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            Ok(status_to_c(w.watcher(list, watcher)?.status))
        })
    }
}

/// What moved watcher `watcher` of list `list` into its status.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_event(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut impp_watcher_event,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            Ok(event_to_c(w.watcher(list, watcher)?.event))
        })
    }
}

/// The display name of watcher `watcher` of list `list`, borrowed from the handle, or NULL
/// when the document gives none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_display_name(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            let name = w.watcher(list, watcher)?.display_name.as_deref();
            w.strings.get_opt(Field::DisplayName(list, watcher), name)
        })
    }
}

/// Seconds, as an unsigned count in the document, shown to C as signed: -1 when absent,
/// saturated at `INT64_MAX`.
fn seconds_to_c(value: Option<u64>) -> i64 {
    value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// How many seconds the subscription of watcher `watcher` of list `list` has existed, or -1
/// when the document does not say. Values beyond `INT64_MAX` read as `INT64_MAX`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_duration_subscribed(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut i64,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            Ok(seconds_to_c(w.watcher(list, watcher)?.duration_subscribed))
        })
    }
}

/// How many seconds remain before the subscription of watcher `watcher` of list `list`
/// expires, or -1 when the document does not say. Values beyond `INT64_MAX` read as
/// `INT64_MAX`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (an index out of range).
///
/// # Safety
/// `winfo` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_winfo_watcher_expiration(
    winfo: *const impp_winfo,
    list: usize,
    watcher: usize,
    out: *mut i64,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(winfo, out, |w| {
            Ok(seconds_to_c(w.watcher(list, watcher)?.expiration))
        })
    }
}
