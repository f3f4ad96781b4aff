//! Event notification filters (RFC 4661, `application/simple-filter+xml`) as an opaque,
//! read-only handle: parse what a watcher sent, see which filters it holds, and apply it to
//! a presence document.
//!
//! Strings read from a handle are borrowed from it and stay valid until it is freed (nothing
//! modifies a filter set handle). A handle may be used from any thread, but by one thread at
//! a time.

use std::ffi::c_char;

use super::boundary::{
    document_arg, free_handle, guard, guard_value, handle, out_arg, str_arg, write_out,
    write_owned_text, StrCache,
};
use super::presence::impp_presence;
use super::status::impp_status;
use crate::doc::filter::{Filter, FilterSet};
use crate::doc::Limits;
use crate::error::{Error, Result};

/// A filter document (`<filter-set>`). Create it with `impp_filter_set_parse`, free it with
/// `impp_filter_set_free`.
pub struct impp_filter_set {
    doc: FilterSet,
    strings: StrCache<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Id(usize),
    Uri(usize),
    Domain(usize),
}

impl impp_filter_set {
    fn filter(&self, index: usize) -> Result<&Filter> {
        self.doc.filters.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "filter index {index} is out of range ({} filters)",
                self.doc.filters.len()
            ))
        })
    }
}

/// Parses a filter document of `len` bytes (UTF-8, need not be NUL-terminated) with the
/// default limits (64 KiB, depth 32). Every XPath expression is compiled here, so applying
/// the set later cannot fail on one.
///
/// `xml` is borrowed for the call. On success `*out` owns a new handle, to be freed with
/// `impp_filter_set_free`. Any thread.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_MALFORMED` (not UTF-8, not
/// well-formed, not a filter set, an expression with an unbound prefix),
/// `IMPP_ERR_UNSUPPORTED` (an XPath expression outside the subset the library implements:
/// relative paths, axes, positional predicates, functions other than `starts-with`, ...),
/// `IMPP_ERR_TOO_LARGE`, `IMPP_ERR_UNSAFE_XML` (DOCTYPE or entity references).
///
/// # Safety
/// `xml` points to `len` readable bytes (or is NULL); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_parse(
    xml: *const c_char,
    len: usize,
    out: *mut *mut impp_filter_set,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let text = unsafe { document_arg(xml, len, "filter", &Limits::DEFAULT) }?;
        let doc = FilterSet::parse(text, &Limits::DEFAULT)?;
        let set = Box::new(impp_filter_set {
            doc,
            strings: StrCache::new(),
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(set)) };
        Ok(())
    })
}

/// Frees a filter set and every string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `set` is NULL or a handle from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_free(set: *mut impp_filter_set) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(set) }
}

/// Serializes the filter set as XML. On success `*out` is an owned string: free it with
/// `impp_string_free`. `*len_out`, if not NULL, receives its length in bytes (without the
/// NUL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle or `out`).
///
/// # Safety
/// `set` is NULL or a live handle; `out` is NULL or writable; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_to_xml(
    set: *const impp_filter_set,
    out: *mut *mut c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let f = unsafe { handle(set, "set") }?;
        // SAFETY: `out` checked non-NULL above; `len_out` may be NULL.
        unsafe { write_owned_text(out, len_out, f.doc.to_xml(), "document") }
    })
}

/// The number of filters, in document order; 0 for NULL.
///
/// # Safety
/// `set` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_filter_count(set: *const impp_filter_set) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { set.as_ref() }.map_or(0, |f| f.doc.filters.len())
    })
}

/// Reads one string field of filter `index`.
///
/// # Safety
/// `set` is NULL or a live handle; `out` is NULL or writable.
unsafe fn filter_str(
    set: *const impp_filter_set,
    index: usize,
    out: *mut *const c_char,
    field: Field,
    get: impl FnOnce(&Filter) -> Option<&str>,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let f = unsafe { handle(set, "set") }?;
        let s = f.strings.get_opt(field, get(f.filter(index)?))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// The id of filter `index` (a later filter document changes or removes it by this id).
/// Borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `set` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_filter_id(
    set: *const impp_filter_set,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { filter_str(set, index, out, Field::Id(index), |f| Some(&f.id)) }
}

/// The one resource filter `index` applies to, borrowed from the handle, or NULL when it
/// names none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `set` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_filter_uri(
    set: *const impp_filter_set,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe { filter_str(set, index, out, Field::Uri(index), |f| f.uri.as_deref()) }
}

/// The domain whose resources filter `index` applies to, borrowed from the handle, or NULL
/// when it names none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `set` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_filter_domain(
    set: *const impp_filter_set,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        filter_str(set, index, out, Field::Domain(index), |f| {
            f.domain.as_deref()
        })
    }
}

/// What a watcher of `resource` (a URI such as `sip:alice@example.test`) may see of `doc`
/// under this filter set, as a new presence handle in `*out` (free it with
/// `impp_presence_free`); `doc` is only read.
///
/// The filter is chosen as the engine does: among enabled filters, the first naming the same
/// resource, else the first for the resource's domain, else the first naming neither. If no
/// filter applies, or the chosen one selects no content, `*out` is a copy of `doc`. Every
/// tuple kept keeps its `<status>` (PIDF requires it).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, `resource` not UTF-8), `IMPP_ERR_MALFORMED`
/// (what the filter leaves is not a valid presence document, e.g. it removed a tuple's id).
///
/// # Safety
/// `set` NULL or a live filter set; `resource` NULL or a NUL-terminated string; `doc` NULL or
/// a live presence handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_filter_set_apply(
    set: *const impp_filter_set,
    resource: *const c_char,
    doc: *const impp_presence,
    out: *mut *mut impp_presence,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let f = unsafe { handle(set, "set") }?;
        // SAFETY: the caller's contract.
        let resource = unsafe { str_arg(resource, "resource") }?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(doc, "doc") }?;
        let filtered = match f.doc.filter_for(resource) {
            Some(filter) => filter.apply_to_presence(&p.doc)?,
            None => p.doc.clone(),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, impp_presence::from_document(filtered)) };
        Ok(())
    })
}
