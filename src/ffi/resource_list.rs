//! Resource lists (RFC 4826 lists served by an RFC 4662 list server): an `impp_resource_list`
//! is built with setters and given to `impp_engine_set_list`, which only reads it; lists
//! read back from an engine come as an `impp_resource_lists` snapshot (every list, taken in
//! one call) or as one `impp_resource_list` (`impp_engine_resource_list`, and the expansion
//! of a list, `impp_engine_expand_list`).
//!
//! Every string a list hands out is kept in it as a C string made when the value was set,
//! so reading a list takes no lock and changes nothing: a list may be read from several
//! threads at once (a snapshot's lists too), and a pointer read from it stays valid until
//! the value it came from is changed or the list (or its snapshot) is freed.

use std::ffi::{c_char, CString};

use super::boundary::{
    free_handle, guard, guard_value, handle, handle_mut, opt_str_arg, out_arg, str_arg, write_out,
};
use super::engine::{engine_ref, impp_engine, uri_arg};
use super::status::impp_status;
use crate::error::{Error, Result};
use crate::model::key::presentity_key;
use crate::model::list::{
    check_display_name, check_entry_count, check_package, ListEntry, Resource, ResourceList,
};
use crate::model::package::Package;
use crate::uri::Uri;

/// What an entry of a list is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_list_entry_kind {
    /// A resource: a URI the list's subscribers watch.
    IMPP_LIST_ENTRY_RESOURCE = 0,
    /// A reference to another list, by its URI: every resource of that list.
    IMPP_LIST_ENTRY_REFERENCE = 1,
}

/// A resource list: its URI, display name, packages and ordered entries. Made with
/// `impp_resource_list_new` and the `impp_resource_list_add_*`/`_set_*` setters, or handed
/// out by `impp_engine_resource_list`, `impp_engine_expand_list` and `impp_resource_list_copy`;
/// freed with `impp_resource_list_free`. Lists borrowed from an `impp_resource_lists` are
/// freed with it.
pub struct impp_resource_list {
    list: ResourceList,
    uri: CString,
    display_name: Option<CString>,
    /// Per entry: its URI and display name, as C strings.
    entries: Vec<(CString, Option<CString>)>,
}

fn c_text(value: &str, what: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL")))
}

impl impp_resource_list {
    /// The handle of a list, its strings made once.
    pub(super) fn from_list(list: ResourceList) -> Result<impp_resource_list> {
        let entries = list
            .entries
            .iter()
            .map(|e| {
                let name = match e {
                    ListEntry::Resource(r) => r.display_name.as_deref(),
                    ListEntry::Reference(_) => None,
                };
                Ok((
                    c_text(&e.uri().to_string(), "an entry's URI")?,
                    name.map(|n| c_text(n, "a display name")).transpose()?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(impp_resource_list {
            uri: c_text(&list.uri.to_string(), "the list's URI")?,
            display_name: list
                .display_name
                .as_deref()
                .map(|n| c_text(n, "the list's display name"))
                .transpose()?,
            entries,
            list,
        })
    }

    /// Appends an entry after the checks a list makes of its own entries (bound, no URI
    /// twice, not itself), so that a refused entry is refused here, at once.
    fn push(&mut self, entry: ListEntry, name: Option<CString>) -> Result<()> {
        let list = self.list.uri.to_string();
        check_entry_count(&list, self.list.entries.len() + 1)?;
        let key = presentity_key(entry.uri());
        if key == self.list.key() {
            return Err(Error::InvalidArgument(format!(
                "list {list} cannot name itself (a reference to itself would be a cycle)"
            )));
        }
        let reference = matches!(entry, ListEntry::Reference(_));
        let twice = self.list.entries.iter().any(|e| {
            matches!(e, ListEntry::Reference(_)) == reference && presentity_key(e.uri()) == key
        });
        if twice {
            return Err(Error::InvalidArgument(format!(
                "list {list} already has {} {}",
                if reference {
                    "a reference to"
                } else {
                    "the resource"
                },
                entry.uri()
            )));
        }
        let uri = c_text(&entry.uri().to_string(), "the URI")?;
        self.list.entries.push(entry);
        self.entries.push((uri, name));
        Ok(())
    }
}

/// Creates an empty list named `uri` (`"sip:sales-blf@example.test"`), serving `presence`
/// until packages are added, without a display name.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`.
///
/// # Safety
/// `uri` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_new(
    uri: *const c_char,
    out: *mut *mut impp_resource_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let uri = unsafe { uri_arg(uri, "uri") }?;
        let list = Box::new(impp_resource_list::from_list(ResourceList::new(uri))?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(list)) };
        Ok(())
    })
}

/// Copies a list (one made with the setters, or one borrowed from a snapshot, to keep it
/// after the snapshot is freed). On success `*out` owns the copy.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `list` NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_copy(
    list: *const impp_resource_list,
    out: *mut *mut impp_resource_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let l = unsafe { handle(list, "list") }?;
        let copy = Box::new(impp_resource_list::from_list(l.list.clone())?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(copy)) };
        Ok(())
    })
}

/// Frees a list and the strings borrowed from it. NULL is a no-op. Never free a list
/// borrowed from an `impp_resource_lists` (the snapshot frees it).
///
/// # Safety
/// `list` is NULL or a list from `impp_resource_list_new`, `_copy`,
/// `impp_engine_resource_list` or `impp_engine_expand_list`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_free(list: *mut impp_resource_list) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(list) }
}

/// Runs `change` on the list behind `list` inside the panic boundary.
///
/// # Safety
/// `list` is NULL or a live list, used by no other thread during the call.
unsafe fn with_list(
    list: *mut impp_resource_list,
    change: impl FnOnce(&mut impp_resource_list) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let l = unsafe { handle_mut(list, "list") }?;
        change(l)
    })
}

/// A display name given from C: NULL for none, else 1 to 256 characters without control
/// characters.
///
/// # Safety
/// `name` NULL or NUL-terminated.
unsafe fn display_name_arg(name: *const c_char, what: &str) -> Result<Option<(String, CString)>> {
    // SAFETY: the contract above.
    let Some(text) = (unsafe { opt_str_arg(name, "display_name") })? else {
        return Ok(None);
    };
    check_display_name(text, what)?;
    Ok(Some((text.to_owned(), c_text(text, "display_name")?)))
}

/// Sets the list's display name (copied), or removes it with NULL. A name read before with
/// `impp_resource_list_display_name` is invalid afterwards.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL list, not UTF-8, empty, over 256 characters, a
/// control character). Nothing changes on error.
///
/// # Safety
/// `list` NULL or a live list made by this caller (not one borrowed from a snapshot);
/// `display_name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_set_display_name(
    list: *mut impp_resource_list,
    display_name: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_list(list, |l| {
            let name = display_name_arg(display_name, "the list's display name")?;
            let (text, c) = name.unzip();
            l.list.display_name = text;
            l.display_name = c;
            Ok(())
        })
    }
}

/// Appends a resource: `uri` (copied), shown as `display_name` (NULL: none).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL list or uri, not UTF-8, a bad display name, the
/// resource already in the list, the list's own URI, 500 entries already),
/// `IMPP_ERR_INVALID_URI`. Nothing changes on error.
///
/// # Safety
/// `list` NULL or a live list made by this caller; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_add_entry(
    list: *mut impp_resource_list,
    uri: *const c_char,
    display_name: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_list(list, |l| {
            let uri = uri_arg(uri, "uri")?;
            let what = format!("the display name of {uri}");
            let name = display_name_arg(display_name, &what)?;
            let (text, c) = name.unzip();
            l.push(
                ListEntry::Resource(Resource {
                    uri,
                    display_name: text,
                }),
                c,
            )
        })
    }
}

/// Appends a reference to the list named `list_uri` (copied): every resource of that list,
/// in its order. The list need not exist yet (it expands to nothing until it does); cycles
/// through references are refused by `impp_engine_set_list`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, already referenced, the list's own
/// URI, 500 entries already), `IMPP_ERR_INVALID_URI`. Nothing changes on error.
///
/// # Safety
/// `list` NULL or a live list made by this caller; `list_uri` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_add_reference(
    list: *mut impp_resource_list,
    list_uri: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_list(list, |l| {
            let uri: Uri = uri_arg(list_uri, "list_uri")?;
            l.push(ListEntry::Reference(uri), None)
        })
    }
}

/// Adds an event package the list serves: `"presence"` or `"dialog"`. A list serves
/// `presence` until a package is added; from the first one on it serves those added.
/// Adding one twice changes nothing.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, a package a list does not serve:
/// `presence.winfo`, `message-summary`), `IMPP_ERR_UNKNOWN_PACKAGE`. Nothing changes on
/// error.
///
/// # Safety
/// `list` NULL or a live list made by this caller; `event_package` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_add_package(
    list: *mut impp_resource_list,
    event_package: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_list(list, |l| {
            let package: Package = str_arg(event_package, "event_package")?.parse()?;
            check_package(package, &l.list.uri.to_string())?;
            if !l.list.packages.contains(&package) {
                l.list.packages.push(package);
                l.list.packages.sort();
            }
            Ok(())
        })
    }
}

/// The list's URI, borrowed from the list until it is freed; NULL for NULL.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_uri(list: *const impp_resource_list) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        unsafe { list.as_ref() }.map_or(std::ptr::null(), |l| l.uri.as_ptr())
    })
}

/// The list's display name, borrowed from the list until the name is set again or the list
/// is freed; NULL when it has none, or for NULL.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_display_name(
    list: *const impp_resource_list,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        unsafe { list.as_ref() }
            .and_then(|l| l.display_name.as_ref())
            .map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// How many packages the list serves (at least 1: `presence` when none was added); 0 for
/// NULL.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_package_count(
    list: *const impp_resource_list,
) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { list.as_ref() }.map_or(0, |l| l.list.served_packages().len())
    })
}

/// Package `index` the list serves (`"presence"` or `"dialog"`, in that order): a static
/// string, valid for the life of the program.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_package(
    list: *const impp_resource_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let l = unsafe { handle(list, "list") }?;
        let packages = l.list.served_packages();
        let package = packages.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "package index {index} is out of range ({} packages)",
                packages.len()
            ))
        })?;
        let name: &'static std::ffi::CStr = match package {
            Package::Presence => c"presence",
            Package::Dialog => c"dialog",
            Package::PresenceWinfo => c"presence.winfo",
            Package::MessageSummary => c"message-summary",
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, name.as_ptr()) };
        Ok(())
    })
}

/// The number of entries of the list; 0 for NULL.
///
/// # Safety
/// `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_entry_count(list: *const impp_resource_list) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { list.as_ref() }.map_or(0, |l| l.entries.len())
    })
}

/// Reads entry `index` of a list inside the panic boundary.
///
/// # Safety
/// `list` is NULL or a live list; `out` NULL or writable.
unsafe fn read_entry<T>(
    list: *const impp_resource_list,
    index: usize,
    out: *mut T,
    field: impl FnOnce(&ListEntry, &(CString, Option<CString>)) -> T,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let l = unsafe { handle(list, "list") }?;
        let (entry, c) = l
            .list
            .entries
            .get(index)
            .zip(l.entries.get(index))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "entry index {index} is out of range ({} entries)",
                    l.entries.len()
                ))
            })?;
        // SAFETY: checked non-NULL above; writable by the contract.
        unsafe { write_out(out, field(entry, c)) };
        Ok(())
    })
}

/// Whether entry `index` is a resource or a reference to another list.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_entry_kind(
    list: *const impp_resource_list,
    index: usize,
    out: *mut impp_list_entry_kind,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_entry(list, index, out, |e, _| match e {
            ListEntry::Resource(_) => impp_list_entry_kind::IMPP_LIST_ENTRY_RESOURCE,
            ListEntry::Reference(_) => impp_list_entry_kind::IMPP_LIST_ENTRY_REFERENCE,
        })
    }
}

/// The URI of entry `index`: the resource's, or the referenced list's. Borrowed from the list
/// until it is freed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_entry_uri(
    list: *const impp_resource_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { read_entry(list, index, out, |_, (uri, _)| uri.as_ptr()) }
}

/// The display name of entry `index`, or NULL when it has none (a reference never has one).
/// Borrowed from the list until it is freed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `list` NULL or a live list; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_list_entry_display_name(
    list: *const impp_resource_list,
    index: usize,
    out: *mut *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        read_entry(list, index, out, |_, (_, name)| {
            name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr())
        })
    }
}

/// A copy of every list of an engine as they were when `impp_engine_resource_lists` took
/// it, by list key; later changes do not show in it. Its lists are borrowed from it
/// (`impp_resource_lists_item`). Free it with `impp_resource_lists_free`.
pub struct impp_resource_lists {
    lists: Vec<impp_resource_list>,
}

/// Takes a snapshot of every list of the engine (the same lists always come in the same
/// order). On success `*out` owns a new snapshot (possibly empty), to be freed with
/// `impp_resource_lists_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_resource_lists(
    engine: *const impp_engine,
    out: *mut *mut impp_resource_lists,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        e.engine.check_open()?;
        let lists = e
            .engine
            .lists()
            .into_iter()
            .map(impp_resource_list::from_list)
            .collect::<Result<Vec<_>>>()?;
        let snapshot = Box::new(impp_resource_lists { lists });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(snapshot)) };
        Ok(())
    })
}

/// Frees a snapshot of lists and every list and string borrowed from it. NULL is a no-op.
///
/// # Safety
/// `lists` is NULL or a snapshot from `impp_engine_resource_lists` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_lists_free(lists: *mut impp_resource_lists) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(lists) }
}

/// The number of lists in the snapshot; 0 for NULL.
///
/// # Safety
/// `lists` NULL or a live snapshot.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_lists_count(lists: *const impp_resource_lists) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { lists.as_ref() }.map_or(0, |l| l.lists.len())
    })
}

/// List `index` of the snapshot, borrowed from it until `impp_resource_lists_free` (read it
/// with the `impp_resource_list_*` getters; do not change or free it: copy it with
/// `impp_resource_list_copy` to keep or change it).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `lists` NULL or a live snapshot; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_resource_lists_item(
    lists: *const impp_resource_lists,
    index: usize,
    out: *mut *const impp_resource_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let l = unsafe { handle(lists, "lists") }?;
        let list = l.lists.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "list index {index} is out of range ({} lists)",
                l.lists.len()
            ))
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, list as *const impp_resource_list) };
        Ok(())
    })
}

/// Adds a list to the engine, or replaces the list with its URI; returns once it is
/// durable. `list` is only read (it may be freed or reused at once). The engine checks it
/// against its other lists: at most 500 entries, at most 8 levels of nesting through
/// references and 1000 resources once references are expanded (from this list or any list
/// that reaches it), and no cycle (a list reaching itself through references); references
/// to lists that do not exist yet are allowed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a rule broken: the message says which),
/// `IMPP_ERR_FORBIDDEN` (the list's URI is not of a domain the engine owns),
/// `IMPP_ERR_STORAGE`, `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; `list` NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_set_list(
    engine: *const impp_engine,
    list: *const impp_resource_list,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (e, l) = unsafe { (engine_ref(engine)?, handle(list, "list")?) };
        e.engine.set_list(l.list.clone())
    })
}

/// Removes the list named `uri`; `*removed_out` (if not NULL) says whether there was one.
/// Returns once the removal is durable. Lists referencing it keep the reference, which
/// expands to nothing until a list of that URI is set again.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`,
/// `IMPP_ERR_STORAGE`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `uri` NULL or NUL-terminated; `removed_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_remove_list(
    engine: *const impp_engine,
    uri: *const c_char,
    removed_out: *mut bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (e, uri) = unsafe { (engine_ref(engine)?, uri_arg(uri, "uri")?) };
        let removed = e.engine.remove_list(&uri)?;
        if !removed_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(removed_out, removed) };
        }
        Ok(())
    })
}

/// A copy of the list named `uri` (by key: scheme and parameters do not count). On success
/// `*out` owns it (free it with `impp_resource_list_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`,
/// `IMPP_ERR_NOT_FOUND` (no such list), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `uri` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_resource_list(
    engine: *const impp_engine,
    uri: *const c_char,
    out: *mut *mut impp_resource_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let (e, uri) = unsafe { (engine_ref(engine)?, uri_arg(uri, "uri")?) };
        e.engine.check_open()?;
        let list = e
            .engine
            .list(&uri)
            .ok_or_else(|| Error::NotFound(format!("there is no list {uri}")))?;
        let list = Box::new(impp_resource_list::from_list(list)?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(list)) };
        Ok(())
    })
}

/// The resources of the list named `uri`, as a list of the same URI, display name and
/// packages whose entries are resources only: its own, and each reference replaced by the
/// resources of the list it names, in order, each resource once (the first met, with its
/// display name), references to missing lists skipped. On success `*out` owns it (free it
/// with `impp_resource_list_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8), `IMPP_ERR_INVALID_URI`,
/// `IMPP_ERR_NOT_FOUND` (no such list), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `uri` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_expand_list(
    engine: *const impp_engine,
    uri: *const c_char,
    out: *mut *mut impp_resource_list,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let (e, uri) = unsafe { (engine_ref(engine)?, uri_arg(uri, "uri")?) };
        e.engine.check_open()?;
        let list = e
            .engine
            .list(&uri)
            .ok_or_else(|| Error::NotFound(format!("there is no list {uri}")))?;
        let resources = e.engine.expand_list(&uri)?;
        let expanded = ResourceList {
            entries: resources.into_iter().map(ListEntry::Resource).collect(),
            ..list
        };
        let expanded = Box::new(impp_resource_list::from_list(expanded)?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(expanded)) };
        Ok(())
    })
}
