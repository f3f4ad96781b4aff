//! Presence documents (PIDF with the data model, RPID and capabilities) as an opaque handle.
//!
//! Strings read from a handle are borrowed from it: they stay valid until the handle is next
//! modified (any `impp_presence_` call taking a non-const handle) or freed. A handle may be
//! used from any thread, but by one thread at a time.

use std::ffi::c_char;

use super::boundary::{
    bytes_arg, free_handle, guard, guard_value, handle, handle_mut, opt_str_arg, out_arg, str_arg,
    write_out, write_owned_text, StrCache,
};
use super::enum_arg;
use super::status::impp_status;
use crate::doc::pidf::{check_uri, Basic, Contact, Presence, Priority, Tuple};
use crate::doc::{Limits, Note, Timestamp};
use crate::error::{Error, Result};

/// A presence document (RFC 3863 PIDF with RFC 4479/4480/5196 extensions). Create it with
/// `impp_presence_new` or `impp_presence_parse`, free it with `impp_presence_free`.
pub struct impp_presence {
    pub(super) doc: Presence,
    /// NUL-terminated copies of the strings handed out, by field, so a pointer stays valid
    /// until the next modification of the handle.
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Field {
    Entity,
    TupleId(usize),
    ContactUri(usize),
    TupleTimestamp(usize),
    TupleNote(usize, usize),
    TupleNoteLang(usize, usize),
    Note(usize),
    NoteLang(usize),
    ActivityName(usize),
    ActivityText(usize),
    MoodName(usize),
    PersonNote(usize),
    PersonNoteLang(usize),
    LastInput,
    MediaType(usize, usize),
}

/// The basic status of a tuple.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_basic {
    /// The tuple's status has no `<basic>` element.
    IMPP_BASIC_UNSET = 0,
    /// `open`: ready to communicate.
    IMPP_BASIC_OPEN = 1,
    /// `closed`: not ready.
    IMPP_BASIC_CLOSED = 2,
}

fn basic_from_c(value: enum_arg::impp_basic) -> Result<Option<Basic>> {
    match value {
        0 => Ok(None),
        1 => Ok(Some(Basic::Open)),
        2 => Ok(Some(Basic::Closed)),
        other => Err(Error::InvalidArgument(format!(
            "basic {other} is not an impp_basic value (0, 1 or 2)"
        ))),
    }
}

fn basic_to_c(b: Option<Basic>) -> impp_basic {
    match b {
        None => impp_basic::IMPP_BASIC_UNSET,
        Some(Basic::Open) => impp_basic::IMPP_BASIC_OPEN,
        Some(Basic::Closed) => impp_basic::IMPP_BASIC_CLOSED,
    }
}

impl impp_presence {
    /// A new owned handle for `doc`, for other parts of the C API.
    pub(super) fn from_document(doc: Presence) -> *mut impp_presence {
        impp_presence::new(doc)
    }

    fn new(doc: Presence) -> *mut impp_presence {
        Box::into_raw(Box::new(impp_presence {
            doc,
            strings: StrCache::new(),
        }))
    }

    /// A pointer to a NUL-terminated copy of `value`, kept in the handle.
    pub(super) fn borrow_str(&self, field: Field, value: &str) -> Result<*const c_char> {
        self.strings.get(field, value)
    }

    pub(super) fn borrow_opt(&self, field: Field, value: Option<&str>) -> Result<*const c_char> {
        self.strings.get_opt(field, value)
    }

    /// The document for modification; every borrowed string becomes invalid.
    pub(super) fn edit(&mut self) -> &mut Presence {
        self.strings.clear();
        &mut self.doc
    }

    pub(super) fn tuple(&self, index: usize) -> Result<&Tuple> {
        self.doc
            .tuples
            .get(index)
            .ok_or_else(|| tuple_missing(index, self.doc.tuples.len()))
    }
}

fn tuple_missing(index: usize, count: usize) -> Error {
    Error::NotFound(format!(
        "tuple index {index} is out of range ({count} tuples)"
    ))
}

pub(super) fn tuple_mut(doc: &mut Presence, index: usize) -> Result<&mut Tuple> {
    let count = doc.tuples.len();
    doc.tuples
        .get_mut(index)
        .ok_or_else(|| tuple_missing(index, count))
}

pub(super) fn make_note(text: &str, lang: Option<&str>) -> Result<Note> {
    if let Some(l) = lang {
        if l.is_empty() || l.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-')) {
            return Err(Error::InvalidArgument(format!(
                "'{l}' is not a language tag"
            )));
        }
    }
    Ok(Note {
        text: text.to_owned(),
        lang: lang.map(str::to_owned),
    })
}

pub(super) fn as_invalid_argument(e: Error) -> Error {
    match e {
        Error::Malformed(m) => Error::InvalidArgument(m),
        other => other,
    }
}

/// Creates an empty presence document for `entity` (a URI such as `pres:alice@example.test`).
///
/// `entity` is borrowed for the call. On success `*out` owns a new handle, to be freed with
/// `impp_presence_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, not URI-shaped).
///
/// # Safety
/// `entity` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_new(
    entity: *const c_char,
    out: *mut *mut impp_presence,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let entity = unsafe { str_arg(entity, "entity") }?;
        check_uri(entity, "entity").map_err(as_invalid_argument)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_presence::new(Presence::new(entity))) };
        Ok(())
    })
}

/// Parses a PIDF document of `len` bytes (UTF-8, need not be NUL-terminated) with the default
/// limits (64 KiB, depth 32).
///
/// `xml` is borrowed for the call. On success `*out` owns a new handle. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, not
/// well-formed, not PIDF, bad values, duplicate ids), `IMPP_ERR_TOO_LARGE`,
/// `IMPP_ERR_UNSAFE_XML` (DOCTYPE or entity references).
///
/// # Safety
/// `xml` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_parse(
    xml: *const c_char,
    len: usize,
    out: *mut *mut impp_presence,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        impp_presence_parse_limited(
            xml,
            len,
            Limits::DEFAULT.max_bytes,
            Limits::DEFAULT.max_depth as u32,
            out,
        )
    }
}

/// Like `impp_presence_parse`, with explicit limits: documents over `max_bytes` bytes or with
/// elements nested deeper than `max_depth` are refused with `IMPP_ERR_TOO_LARGE`.
///
/// # Safety
/// As `impp_presence_parse`.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_parse_limited(
    xml: *const c_char,
    len: usize,
    max_bytes: usize,
    max_depth: u32,
    out: *mut *mut impp_presence,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        if max_depth == 0 {
            return Err(Error::InvalidArgument(
                "max_depth must be at least 1".into(),
            ));
        }
        // SAFETY: the caller's contract.
        let bytes = unsafe { bytes_arg(xml.cast(), len, "xml") }?;
        let limits = Limits {
            max_bytes,
            max_depth: max_depth as usize,
        };
        let doc = Presence::parse_bytes(bytes, &limits)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_presence::new(doc)) };
        Ok(())
    })
}

/// Frees a presence document and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `presence` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_free(presence: *mut impp_presence) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(presence) }
}

/// Copies a presence document. On success `*out` owns a new, independent handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `presence` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_clone(
    presence: *const impp_presence,
    out: *mut *mut impp_presence,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_presence::new(p.doc.clone())) };
        Ok(())
    })
}

/// Serializes the document as PIDF (UTF-8 with an XML declaration). On success `*out` is an
/// owned string: free it with `impp_string_free`. `*len_out`, if not NULL, receives its length
/// in bytes (without the NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`; a tuple without id).
///
/// # Safety
/// `presence` is NULL or a live handle; `out` is NULL or writable; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_to_xml(
    presence: *const impp_presence,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        p.doc.validate().map_err(as_invalid_argument)?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, p.doc.to_xml(), "document") }
    })
}

/// The entity (presentity URI) of the document. Borrowed from the handle.
///
/// # Safety
/// `presence` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_entity(
    presence: *const impp_presence,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let s = p.borrow_str(Field::Entity, &p.doc.entity)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// The number of tuples; 0 for NULL. Any thread.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_count(presence: *const impp_presence) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }.map_or(0, |p| p.doc.tuples.len())
    })
}

/// Appends a tuple with this id and basic status (an `impp_basic` value). On success `*index_out`
/// (if not NULL) receives the new tuple's index.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, empty id, an id already used in the document,
/// a basic value outside `impp_basic`). Nothing changes on error.
///
/// # Safety
/// `presence` is NULL or a live handle; `id` NULL or a NUL-terminated string; `index_out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_tuple(
    presence: *mut impp_presence,
    id: *const c_char,
    basic: enum_arg::impp_basic,
    index_out: *mut usize,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let id = unsafe { str_arg(id, "id") }?;
        let basic = basic_from_c(basic)?;
        if id.trim().is_empty() {
            return Err(Error::InvalidArgument("tuple id is empty".into()));
        }
        let d = &p.doc;
        if d.tuples.iter().any(|t| t.id == id)
            || d.persons.iter().any(|x| x.id == id)
            || d.devices.iter().any(|x| x.id == id)
        {
            return Err(Error::InvalidArgument(format!(
                "id '{id}' is already used in this document"
            )));
        }
        let doc = p.edit();
        let mut tuple = Tuple::new(id, Basic::Open);
        tuple.status.basic = basic;
        doc.tuples.push(tuple);
        if !index_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(index_out, doc.tuples.len() - 1) };
        }
        Ok(())
    })
}

/// Removes the tuple at `index`; later tuples move down by one.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_remove_tuple(
    presence: *mut impp_presence,
    index: usize,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        p.tuple(index)?;
        p.edit().tuples.remove(index);
        Ok(())
    })
}

/// The id of the tuple at `index`. Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `presence` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_id(
    presence: *const impp_presence,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let s = p.borrow_str(Field::TupleId(index), &p.tuple(index)?.id)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// The basic status of the tuple at `index`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `presence` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_basic(
    presence: *const impp_presence,
    index: usize,
    out: *mut impp_basic,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let b = basic_to_c(p.tuple(index)?.status.basic);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, b) };
        Ok(())
    })
}

/// Sets the basic status (an `impp_basic` value) of the tuple at `index`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad value), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_set_basic(
    presence: *mut impp_presence,
    index: usize,
    basic: enum_arg::impp_basic,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        let basic = basic_from_c(basic)?;
        p.tuple(index)?;
        tuple_mut(p.edit(), index)?.status.basic = basic;
        Ok(())
    })
}

/// Sets (or, with `uri` NULL, removes) the contact of the tuple at `index`. `priority` is
/// between 0 and 1 (kept to thousandths); a negative value means "no priority".
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, `uri` not URI-shaped or not UTF-8,
/// priority above 1 or NaN), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `uri` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_set_contact(
    presence: *mut impp_presence,
    index: usize,
    uri: *const c_char,
    priority: f64,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let uri = unsafe { opt_str_arg(uri, "uri") }?;
        let contact = match uri {
            None => None,
            Some(uri) => {
                check_uri(uri, "contact").map_err(as_invalid_argument)?;
                let priority = if priority < 0.0 {
                    None
                } else {
                    Some(Priority::from_f64(priority)?)
                };
                Some(Contact {
                    uri: uri.to_owned(),
                    priority,
                })
            }
        };
        p.tuple(index)?;
        tuple_mut(p.edit(), index)?.contact = contact;
        Ok(())
    })
}

/// The contact of the tuple at `index`: `*uri_out` is borrowed from the handle, or NULL when
/// the tuple has no contact; `*priority_out` (if not NULL) is the priority, or -1 when absent.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `uri_out` NULL or writable; `priority_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_contact(
    presence: *const impp_presence,
    index: usize,
    uri_out: *mut *const c_char,
    priority_out: *mut f64,
) -> impp_status {
    guard(|| {
        out_arg(uri_out, "uri_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let contact = p.tuple(index)?.contact.as_ref();
        let uri = p.borrow_opt(Field::ContactUri(index), contact.map(|c| c.uri.as_str()))?;
        let prio = contact
            .and_then(|c| c.priority)
            .map_or(-1.0, Priority::as_f64);
        // SAFETY: checked non-NULL above; `priority_out` may be NULL.
        unsafe {
            write_out(uri_out, uri);
            if !priority_out.is_null() {
                write_out(priority_out, prio);
            }
        }
        Ok(())
    })
}

/// Sets (or, with NULL, removes) the timestamp of the tuple at `index`, an `xs:dateTime` such
/// as `2026-11-24T14:45:00Z`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, not a date-time), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `timestamp` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_set_timestamp(
    presence: *mut impp_presence,
    index: usize,
    timestamp: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let ts = unsafe { opt_str_arg(timestamp, "timestamp") }?
            .map(Timestamp::parse)
            .transpose()
            .map_err(as_invalid_argument)?;
        p.tuple(index)?;
        tuple_mut(p.edit(), index)?.timestamp = ts;
        Ok(())
    })
}

/// The timestamp of the tuple at `index`, borrowed from the handle, or NULL if it has none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_timestamp(
    presence: *const impp_presence,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let ts = p.tuple(index)?.timestamp.as_ref().map(Timestamp::as_str);
        let s = p.borrow_opt(Field::TupleTimestamp(index), ts)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// Adds a note to the tuple at `index` (`lang`, an `xml:lang` tag such as `"en"`, may be NULL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, bad language tag), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `text` and `lang` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_add_note(
    presence: *mut impp_presence,
    index: usize,
    text: *const c_char,
    lang: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let note = make_note(unsafe { str_arg(text, "text") }?, unsafe {
            opt_str_arg(lang, "lang")
        }?)?;
        p.tuple(index)?;
        tuple_mut(p.edit(), index)?.notes.push(note);
        Ok(())
    })
}

/// The number of notes of the tuple at `index`; 0 for NULL or an index out of range.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_note_count(
    presence: *const impp_presence,
    index: usize,
) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }
            .and_then(|p| p.doc.tuples.get(index))
            .map_or(0, |t| t.notes.len())
    })
}

/// Note `note` of the tuple at `index`: `*text_out` and `*lang_out` (NULL when the note has no
/// language; `lang_out` itself may be NULL) are borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `text_out` NULL or writable; `lang_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_note(
    presence: *const impp_presence,
    index: usize,
    note: usize,
    text_out: *mut *const c_char,
    lang_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(text_out, "text_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let notes = &p.tuple(index)?.notes;
        let n = notes.get(note).ok_or_else(|| {
            Error::NotFound(format!(
                "note index {note} is out of range ({} notes)",
                notes.len()
            ))
        })?;
        let text = p.borrow_str(Field::TupleNote(index, note), &n.text)?;
        let lang = p.borrow_opt(Field::TupleNoteLang(index, note), n.lang.as_deref())?;
        // SAFETY: checked non-NULL above; `lang_out` may be NULL.
        unsafe {
            write_out(text_out, text);
            if !lang_out.is_null() {
                write_out(lang_out, lang);
            }
        }
        Ok(())
    })
}

/// Adds a presence-level note (`lang` may be NULL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, bad language tag).
///
/// # Safety
/// `presence` is NULL or a live handle; `text` and `lang` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_note(
    presence: *mut impp_presence,
    text: *const c_char,
    lang: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let note = make_note(unsafe { str_arg(text, "text") }?, unsafe {
            opt_str_arg(lang, "lang")
        }?)?;
        p.edit().notes.push(note);
        Ok(())
    })
}

/// The number of presence-level notes; 0 for NULL.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_note_count(presence: *const impp_presence) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }.map_or(0, |p| p.doc.notes.len())
    })
}

/// Presence-level note `note`: text and language (NULL when none; `lang_out` may be NULL),
/// borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `text_out` NULL or writable; `lang_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_note(
    presence: *const impp_presence,
    note: usize,
    text_out: *mut *const c_char,
    lang_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(text_out, "text_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let n = p.doc.notes.get(note).ok_or_else(|| {
            Error::NotFound(format!(
                "note index {note} is out of range ({} notes)",
                p.doc.notes.len()
            ))
        })?;
        let text = p.borrow_str(Field::Note(note), &n.text)?;
        let lang = p.borrow_opt(Field::NoteLang(note), n.lang.as_deref())?;
        // SAFETY: checked non-NULL above; `lang_out` may be NULL.
        unsafe {
            write_out(text_out, text);
            if !lang_out.is_null() {
                write_out(lang_out, lang);
            }
        }
        Ok(())
    })
}
