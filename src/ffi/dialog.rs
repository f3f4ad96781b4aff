//! Dialog state documents (RFC 4235, the `dialog` package: busy-lamp fields) as an opaque
//! handle, to read what a PBX or phone reports and to build the document a phone publishes.
//!
//! Strings read from a handle are borrowed from it: they stay valid until the handle is next
//! modified (any `impp_dialog_info_` call taking a non-const handle) or freed. A handle may be
//! used from any thread, but by one thread at a time.

use std::ffi::{c_char, c_int};

use super::boundary::{
    document_arg, field_text, free_handle, guard, guard_value, handle, handle_mut, opt_str_arg,
    out_arg, str_arg, write_out, write_owned_text, StrCache,
};
use super::enum_arg;
use super::presence::as_invalid_argument;
use super::status::impp_status;
use super::winfo::{doc_state_to_c, impp_doc_state};
use crate::doc::dialog::{
    Dialog, DialogEvent, DialogInfo, DialogState, DialogStateValue, Direction, Identity,
    Participant,
};
use crate::doc::pidf::check_uri;
use crate::doc::Limits;
use crate::error::{Error, Result};

/// A dialog information document. Create it with `impp_dialog_info_new` or
/// `impp_dialog_info_parse` (or get one from an event with `impp_event_dialog_info`), free it
/// with `impp_dialog_info_free`.
pub struct impp_dialog_info {
    doc: DialogInfo,
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Entity,
    Id(usize),
    CallId(usize),
    LocalTag(usize),
    RemoteTag(usize),
    IdentityUri(Side, usize),
    IdentityDisplay(Side, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Local,
    Remote,
}

/// Which side of a dialog the observed entity is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_dialog_direction {
    /// The document does not say.
    IMPP_DIALOG_DIRECTION_NONE = 0,
    /// The entity sent the INVITE (an outgoing call).
    IMPP_DIALOG_DIRECTION_INITIATOR = 1,
    /// The entity received the INVITE (an incoming call).
    IMPP_DIALOG_DIRECTION_RECIPIENT = 2,
}

/// The state of a dialog (RFC 4235 section 3.7.1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_dialog_state {
    /// INVITE sent or received, no response yet.
    IMPP_DIALOG_STATE_TRYING = 1,
    /// A provisional response without a To tag.
    IMPP_DIALOG_STATE_PROCEEDING = 2,
    /// A provisional response with a To tag: ringing.
    IMPP_DIALOG_STATE_EARLY = 3,
    /// A 2xx was sent or received: the call is up.
    IMPP_DIALOG_STATE_CONFIRMED = 4,
    /// The dialog ended; the event and code say why.
    IMPP_DIALOG_STATE_TERMINATED = 5,
}

/// Why a dialog reached its state, mostly `terminated`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_dialog_event {
    /// The document gives no event.
    IMPP_DIALOG_EVENT_NONE = 0,
    /// The INVITE was cancelled.
    IMPP_DIALOG_EVENT_CANCELLED = 1,
    /// The INVITE got a non-2xx final response (see the code).
    IMPP_DIALOG_EVENT_REJECTED = 2,
    /// Another INVITE replaced this dialog.
    IMPP_DIALOG_EVENT_REPLACED = 3,
    /// The observed entity hung up.
    IMPP_DIALOG_EVENT_LOCAL_BYE = 4,
    /// The other party hung up.
    IMPP_DIALOG_EVENT_REMOTE_BYE = 5,
    /// A request in the dialog failed.
    IMPP_DIALOG_EVENT_ERROR = 6,
    /// The dialog timed out.
    IMPP_DIALOG_EVENT_TIMEOUT = 7,
}

const STATES: [DialogStateValue; 5] = [
    DialogStateValue::Trying,
    DialogStateValue::Proceeding,
    DialogStateValue::Early,
    DialogStateValue::Confirmed,
    DialogStateValue::Terminated,
];

const EVENTS: [DialogEvent; 7] = [
    DialogEvent::Cancelled,
    DialogEvent::Rejected,
    DialogEvent::Replaced,
    DialogEvent::LocalBye,
    DialogEvent::RemoteBye,
    DialogEvent::Error,
    DialogEvent::Timeout,
];

fn direction_to_c(d: Option<Direction>) -> impp_dialog_direction {
    match d {
        None => impp_dialog_direction::IMPP_DIALOG_DIRECTION_NONE,
        Some(Direction::Initiator) => impp_dialog_direction::IMPP_DIALOG_DIRECTION_INITIATOR,
        Some(Direction::Recipient) => impp_dialog_direction::IMPP_DIALOG_DIRECTION_RECIPIENT,
    }
}

fn direction_from_c(value: enum_arg::impp_dialog_direction) -> Result<Option<Direction>> {
    match value {
        0 => Ok(None),
        1 => Ok(Some(Direction::Initiator)),
        2 => Ok(Some(Direction::Recipient)),
        other => Err(Error::InvalidArgument(format!(
            "direction {other} is not an impp_dialog_direction value (0 to 2)"
        ))),
    }
}

fn state_to_c(s: DialogStateValue) -> impp_dialog_state {
    match s {
        DialogStateValue::Trying => impp_dialog_state::IMPP_DIALOG_STATE_TRYING,
        DialogStateValue::Proceeding => impp_dialog_state::IMPP_DIALOG_STATE_PROCEEDING,
        DialogStateValue::Early => impp_dialog_state::IMPP_DIALOG_STATE_EARLY,
        DialogStateValue::Confirmed => impp_dialog_state::IMPP_DIALOG_STATE_CONFIRMED,
        DialogStateValue::Terminated => impp_dialog_state::IMPP_DIALOG_STATE_TERMINATED,
    }
}

fn state_from_c(value: enum_arg::impp_dialog_state) -> Result<DialogStateValue> {
    usize::try_from(value)
        .ok()
        .and_then(|v| v.checked_sub(1))
        .and_then(|i| STATES.get(i).copied())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "state {value} is not an impp_dialog_state value (1 to 5)"
            ))
        })
}

fn event_to_c(e: Option<DialogEvent>) -> impp_dialog_event {
    match e {
        None => impp_dialog_event::IMPP_DIALOG_EVENT_NONE,
        Some(DialogEvent::Cancelled) => impp_dialog_event::IMPP_DIALOG_EVENT_CANCELLED,
        Some(DialogEvent::Rejected) => impp_dialog_event::IMPP_DIALOG_EVENT_REJECTED,
        Some(DialogEvent::Replaced) => impp_dialog_event::IMPP_DIALOG_EVENT_REPLACED,
        Some(DialogEvent::LocalBye) => impp_dialog_event::IMPP_DIALOG_EVENT_LOCAL_BYE,
        Some(DialogEvent::RemoteBye) => impp_dialog_event::IMPP_DIALOG_EVENT_REMOTE_BYE,
        Some(DialogEvent::Error) => impp_dialog_event::IMPP_DIALOG_EVENT_ERROR,
        Some(DialogEvent::Timeout) => impp_dialog_event::IMPP_DIALOG_EVENT_TIMEOUT,
    }
}

fn event_from_c(value: enum_arg::impp_dialog_event) -> Result<Option<DialogEvent>> {
    if value == 0 {
        return Ok(None);
    }
    usize::try_from(value)
        .ok()
        .and_then(|v| EVENTS.get(v - 1).copied())
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "event {value} is not an impp_dialog_event value (0 to 7)"
            ))
        })
}

impl impp_dialog_info {
    /// A new owned handle for `doc`, for other parts of the C API.
    pub(super) fn from_document(doc: DialogInfo) -> *mut impp_dialog_info {
        Box::into_raw(Box::new(impp_dialog_info {
            doc,
            strings: StrCache::new(),
        }))
    }

    fn dialog(&self, index: usize) -> Result<&Dialog> {
        self.doc
            .dialogs
            .get(index)
            .ok_or_else(|| dialog_missing(index, self.doc.dialogs.len()))
    }

    /// The dialog at `index` for modification; every borrowed string becomes invalid. Check
    /// every argument first: then a failed call changes nothing.
    fn edit_dialog(&mut self, index: usize) -> Result<&mut Dialog> {
        let count = self.doc.dialogs.len();
        let dialog = self
            .doc
            .dialogs
            .get_mut(index)
            .ok_or_else(|| dialog_missing(index, count))?;
        self.strings.clear();
        Ok(dialog)
    }
}

fn dialog_missing(index: usize, count: usize) -> Error {
    Error::NotFound(format!(
        "dialog index {index} is out of range ({count} dialogs)"
    ))
}

/// Runs a getter that writes one value: checks `out`, borrows the handle, writes on success.
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
unsafe fn read<T>(
    info: *const impp_dialog_info,
    out: *mut T,
    get: impl FnOnce(&impp_dialog_info) -> Result<T>,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let d = unsafe { handle(info, "info") }?;
        let value = get(d)?;
        // SAFETY: checked non-NULL above; writable by the contract above.
        unsafe { write_out(out, value) };
        Ok(())
    })
}

/// Creates a dialog-info document for `entity` (the observed URI, such as
/// `sip:201@pbx.example.test`): version 0, state full, no dialogs (an idle lamp).
///
/// `entity` is borrowed for the call. On success `*out` owns a new handle, to be freed with
/// `impp_dialog_info_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, not URI-shaped).
///
/// # Safety
/// `entity` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_new(
    entity: *const c_char,
    out: *mut *mut impp_dialog_info,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let entity = unsafe { str_arg(entity, "entity") }?;
        check_uri(entity, "entity").map_err(as_invalid_argument)?;
        let doc = DialogInfo {
            entity: entity.to_owned(),
            ..DialogInfo::default()
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_dialog_info::from_document(doc)) };
        Ok(())
    })
}

/// Parses a dialog-info document (`application/dialog-info+xml`) of `len` bytes (UTF-8, need
/// not be NUL-terminated) with the default limits (64 KiB, depth 32).
///
/// `xml` is borrowed for the call. On success `*out` owns a new handle. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, not
/// well-formed, not dialog-info, values outside the schema, a dialog without state),
/// `IMPP_ERR_TOO_LARGE`, `IMPP_ERR_UNSAFE_XML` (DOCTYPE or entity references).
///
/// # Safety
/// `xml` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_parse(
    xml: *const c_char,
    len: usize,
    out: *mut *mut impp_dialog_info,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let text = unsafe { document_arg(xml, len, "dialog-info", &Limits::DEFAULT) }?;
        let doc = DialogInfo::parse(text, &Limits::DEFAULT)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_dialog_info::from_document(doc)) };
        Ok(())
    })
}

/// Frees a dialog-info handle and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `info` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_free(info: *mut impp_dialog_info) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(info) }
}

/// Serializes the document as dialog-info XML, ready for `impp_engine_publish` with the
/// `"dialog"` package. On success `*out` is an owned string: free it with
/// `impp_string_free`. `*len_out`, if not NULL, receives its length in bytes (without the
/// NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_to_xml(
    info: *const impp_dialog_info,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(info, "info") }?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, d.doc.to_xml(), "document") }
    })
}

/// The document's version (it counts the notifications of one subscription from 0).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_version(
    info: *const impp_dialog_info,
    out: *mut u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { read(info, out, |d| Ok(d.doc.version)) }
}

/// Whether the document lists every dialog (`IMPP_DOC_STATE_FULL`) or only those that
/// changed (`IMPP_DOC_STATE_PARTIAL`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_state(
    info: *const impp_dialog_info,
    out: *mut impp_doc_state,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { read(info, out, |d| Ok(doc_state_to_c(d.doc.state))) }
}

/// The observed entity's URI. Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_entity(
    info: *const impp_dialog_info,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { read(info, out, |d| d.strings.get(Field::Entity, &d.doc.entity)) }
}

/// The number of dialogs; 0 for NULL.
///
/// # Safety
/// `info` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_count(info: *const impp_dialog_info) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { info.as_ref() }.map_or(0, |d| d.doc.dialogs.len())
    })
}

/// The id of the dialog at `index` (stable across versions). Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_id(
    info: *const impp_dialog_info,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(info, out, |d| {
            d.strings.get(Field::Id(index), &d.dialog(index)?.id)
        })
    }
}

/// The SIP Call-ID of the dialog at `index`, borrowed from the handle, or NULL if the
/// document gives none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_call_id(
    info: *const impp_dialog_info,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(info, out, |d| {
            let v = d.dialog(index)?.call_id.as_deref();
            d.strings.get_opt(Field::CallId(index), v)
        })
    }
}

/// The entity's tag of the dialog at `index`, borrowed from the handle, or NULL if none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_local_tag(
    info: *const impp_dialog_info,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(info, out, |d| {
            let v = d.dialog(index)?.local_tag.as_deref();
            d.strings.get_opt(Field::LocalTag(index), v)
        })
    }
}

/// The other party's tag of the dialog at `index`, borrowed from the handle, or NULL if none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_remote_tag(
    info: *const impp_dialog_info,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(info, out, |d| {
            let v = d.dialog(index)?.remote_tag.as_deref();
            d.strings.get_opt(Field::RemoteTag(index), v)
        })
    }
}

/// Whether the entity called or was called in the dialog at `index`;
/// `IMPP_DIALOG_DIRECTION_NONE` when the document does not say.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_direction(
    info: *const impp_dialog_info,
    index: usize,
    out: *mut impp_dialog_direction,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        read(info, out, |d| {
            Ok(direction_to_c(d.dialog(index)?.direction))
        })
    }
}

/// The state of the dialog at `index`: `*state_out` its value; `*event_out` (if not NULL)
/// why it got there (`IMPP_DIALOG_EVENT_NONE` when the document does not say); `*code_out`
/// (if not NULL) the SIP response code that caused it, or -1 when none is given.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `state_out`), `IMPP_ERR_NOT_FOUND`
/// (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle; each output is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_state(
    info: *const impp_dialog_info,
    index: usize,
    state_out: *mut impp_dialog_state,
    event_out: *mut impp_dialog_event,
    code_out: *mut c_int,
) -> impp_status {
    guard(|| {
        out_arg(state_out, "state_out")?;
        // SAFETY: the caller's contract.
        let d = unsafe { handle(info, "info") }?;
        let s = &d.dialog(index)?.state;
        // SAFETY: checked non-NULL above; the others may be NULL.
        unsafe {
            write_out(state_out, state_to_c(s.value));
            if !event_out.is_null() {
                write_out(event_out, event_to_c(s.event));
            }
            if !code_out.is_null() {
                write_out(code_out, s.code.map_or(-1, c_int::from));
            }
        }
        Ok(())
    })
}

/// Reads the identity of one side of a dialog.
///
/// # Safety
/// As the public identity getters.
unsafe fn identity(
    info: *const impp_dialog_info,
    index: usize,
    side: Side,
    uri_out: *mut *const c_char,
    display_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(uri_out, "uri_out")?;
        // SAFETY: the contract above.
        let d = unsafe { handle(info, "info") }?;
        let dialog = d.dialog(index)?;
        let participant = match side {
            Side::Local => &dialog.local,
            Side::Remote => &dialog.remote,
        };
        let id = participant.as_ref().and_then(|p| p.identity.as_ref());
        let uri = d
            .strings
            .get_opt(Field::IdentityUri(side, index), id.map(|i| i.uri.as_str()))?;
        let display = d.strings.get_opt(
            Field::IdentityDisplay(side, index),
            id.and_then(|i| i.display.as_deref()),
        )?;
        // SAFETY: checked non-NULL above; `display_out` may be NULL.
        unsafe {
            write_out(uri_out, uri);
            if !display_out.is_null() {
                write_out(display_out, display);
            }
        }
        Ok(())
    })
}

/// The entity's own identity in the dialog at `index` (`<local><identity>`): `*uri_out` is
/// its URI, NULL when the document gives no identity; `*display_out` (if not NULL) its
/// display name, NULL when none. Both borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `uri_out`), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `info` is NULL or a live handle; `uri_out` and `display_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_local_identity(
    info: *const impp_dialog_info,
    index: usize,
    uri_out: *mut *const c_char,
    display_out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { identity(info, index, Side::Local, uri_out, display_out) }
}

/// The other party's identity in the dialog at `index` (`<remote><identity>`), as
/// `impp_dialog_info_dialog_local_identity`.
///
/// # Safety
/// `info` is NULL or a live handle; `uri_out` and `display_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_remote_identity(
    info: *const impp_dialog_info,
    index: usize,
    uri_out: *mut *const c_char,
    display_out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { identity(info, index, Side::Remote, uri_out, display_out) }
}

/// Appends a dialog with this id and state (an `impp_dialog_state` value). On success
/// `*index_out` (if not NULL) receives its index.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, an empty id or one with surrounding
/// blanks or control characters, an id already in the document, a state outside
/// `impp_dialog_state`). Nothing changes on error.
///
/// # Safety
/// `info` is NULL or a live handle; `id` NULL or a NUL-terminated string; `index_out` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_add_dialog(
    info: *mut impp_dialog_info,
    id: *const c_char,
    state: enum_arg::impp_dialog_state,
    index_out: *mut usize,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        // SAFETY: the caller's contract.
        let id = field_text(unsafe { str_arg(id, "id") }?, "dialog id")?;
        let state = state_from_c(state)?;
        if d.doc.dialog(id).is_some() {
            return Err(Error::InvalidArgument(format!(
                "dialog id '{id}' is already used in this document"
            )));
        }
        d.strings.clear();
        d.doc.dialogs.push(Dialog::new(id, state));
        if !index_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(index_out, d.doc.dialogs.len() - 1) };
        }
        Ok(())
    })
}

/// Removes the dialog at `index`; later dialogs move down by one.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `info` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_remove_dialog(
    info: *mut impp_dialog_info,
    index: usize,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        d.dialog(index)?;
        d.strings.clear();
        d.doc.dialogs.remove(index);
        Ok(())
    })
}

/// Sets the state of the dialog at `index`: `state` an `impp_dialog_state` value, `event` an
/// `impp_dialog_event` value (`IMPP_DIALOG_EVENT_NONE` for none), `code` a SIP response code
/// from 100 to 699, or -1 for none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a value outside its range),
/// `IMPP_ERR_NOT_FOUND`. Nothing changes on error.
///
/// # Safety
/// `info` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_state(
    info: *mut impp_dialog_info,
    index: usize,
    state: enum_arg::impp_dialog_state,
    event: enum_arg::impp_dialog_event,
    code: c_int,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        let value = state_from_c(state)?;
        let event = event_from_c(event)?;
        let code = match code {
            -1 => None,
            100..=699 => u16::try_from(code).ok(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "code {other} is not a SIP response code (100 to 699) or -1"
                )))
            }
        };
        d.edit_dialog(index)?.state = DialogState { value, event, code };
        Ok(())
    })
}

/// Checks an optional text argument of a setter (NULL removes the value).
///
/// # Safety
/// `value` is NULL or a NUL-terminated string.
unsafe fn opt_field(value: *const c_char, what: &str) -> Result<Option<String>> {
    // SAFETY: the contract above.
    unsafe { opt_str_arg(value, what) }?
        .map(|v| field_text(v, what).map(str::to_owned))
        .transpose()
}

/// Sets (or, with NULL, removes) the SIP Call-ID of the dialog at `index`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle; a value that is not UTF-8, empty, or has
/// surrounding blanks or control characters), `IMPP_ERR_NOT_FOUND`. Nothing changes on error.
///
/// # Safety
/// `info` is NULL or a live handle; `call_id` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_call_id(
    info: *mut impp_dialog_info,
    index: usize,
    call_id: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        // SAFETY: the caller's contract.
        let v = unsafe { opt_field(call_id, "call_id") }?;
        d.edit_dialog(index)?.call_id = v;
        Ok(())
    })
}

/// Sets (or, with NULL, removes) the entity's tag of the dialog at `index`. Errors as
/// `impp_dialog_info_dialog_set_call_id`.
///
/// # Safety
/// `info` is NULL or a live handle; `tag` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_local_tag(
    info: *mut impp_dialog_info,
    index: usize,
    tag: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        // SAFETY: the caller's contract.
        let v = unsafe { opt_field(tag, "tag") }?;
        d.edit_dialog(index)?.local_tag = v;
        Ok(())
    })
}

/// Sets (or, with NULL, removes) the other party's tag of the dialog at `index`. Errors as
/// `impp_dialog_info_dialog_set_call_id`.
///
/// # Safety
/// `info` is NULL or a live handle; `tag` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_remote_tag(
    info: *mut impp_dialog_info,
    index: usize,
    tag: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        // SAFETY: the caller's contract.
        let v = unsafe { opt_field(tag, "tag") }?;
        d.edit_dialog(index)?.remote_tag = v;
        Ok(())
    })
}

/// Sets the direction of the dialog at `index` (an `impp_dialog_direction` value;
/// `IMPP_DIALOG_DIRECTION_NONE` removes it).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a value outside the enum),
/// `IMPP_ERR_NOT_FOUND`. Nothing changes on error.
///
/// # Safety
/// `info` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_direction(
    info: *mut impp_dialog_info,
    index: usize,
    direction: enum_arg::impp_dialog_direction,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        let v = direction_from_c(direction)?;
        d.edit_dialog(index)?.direction = v;
        Ok(())
    })
}

/// Sets (or, with `uri` NULL, removes) the other party's identity in the dialog at `index`:
/// its URI and an optional display name (`display` may be NULL). Other `<remote>` data the
/// dialog has (target, session description) is kept.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, `uri` not URI-shaped, `display` empty or
/// with surrounding blanks or control characters, either not UTF-8), `IMPP_ERR_NOT_FOUND`.
/// Nothing changes on error.
///
/// # Safety
/// `info` is NULL or a live handle; `uri` and `display` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn impp_dialog_info_dialog_set_remote_identity(
    info: *mut impp_dialog_info,
    index: usize,
    uri: *const c_char,
    display: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { handle_mut(info, "info") }?;
        // SAFETY: the caller's contract.
        let uri = unsafe { opt_str_arg(uri, "uri") }?;
        // SAFETY: the caller's contract.
        let display = unsafe { opt_field(display, "display") }?;
        let identity = match uri {
            None => None,
            Some(uri) => {
                check_uri(uri, "remote identity").map_err(as_invalid_argument)?;
                Some(Identity {
                    uri: uri.to_owned(),
                    display,
                })
            }
        };
        let dialog = d.edit_dialog(index)?;
        match identity {
            Some(id) => {
                dialog
                    .remote
                    .get_or_insert_with(Participant::default)
                    .identity = Some(id);
            }
            None => {
                if let Some(p) = dialog.remote.as_mut() {
                    p.identity = None;
                    if *p == Participant::default() {
                        dialog.remote = None;
                    }
                }
            }
        }
        Ok(())
    })
}
