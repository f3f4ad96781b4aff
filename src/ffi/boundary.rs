//! The panic boundary, the status it turns every outcome into ([`impp_status`], one code per
//! [`Error`] variant), the thread-local last error, and the checked conversions every
//! exported function uses for its arguments.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::fmt::Debug;
use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::doc::Limits;
use crate::error::{Error, Result};

/// The outcome of a fallible call. `IMPP_OK` is zero; errors are small negative numbers that
/// are never renumbered. The detail of the last failure on the calling thread is in
/// `impp_last_error()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_status {
    /// Success.
    IMPP_OK = 0,
    /// An argument was NULL, not valid UTF-8, or out of range.
    IMPP_ERR_INVALID_ARGUMENT = -1,
    /// A URI did not parse.
    IMPP_ERR_INVALID_URI = -2,
    /// A document is not well-formed or does not follow its schema.
    IMPP_ERR_MALFORMED = -3,
    /// A document exceeds the size or nesting limit.
    IMPP_ERR_TOO_LARGE = -4,
    /// A document uses a DOCTYPE, an entity declaration or an undeclared entity.
    IMPP_ERR_UNSAFE_XML = -5,
    /// Valid, but outside what the library implements (e.g. an XPath form).
    IMPP_ERR_UNSUPPORTED = -6,
    /// An index or item does not exist.
    IMPP_ERR_NOT_FOUND = -7,
    /// A bug inside the library (a panic was caught); the handle is still usable.
    IMPP_ERR_INTERNAL = -8,
    /// A publication's entity tag is unknown or expired.
    IMPP_ERR_UNKNOWN_ENTITY_TAG = -9,
    /// A requested expiry is shorter than the configured minimum.
    IMPP_ERR_INTERVAL_TOO_BRIEF = -10,
    /// An event package the engine does not serve.
    IMPP_ERR_UNKNOWN_PACKAGE = -11,
    /// The engine is shut down or shutting down.
    IMPP_ERR_SHUTDOWN = -12,
    /// The call is not allowed from inside an event callback (it would deadlock).
    IMPP_ERR_IN_CALLBACK = -13,
    /// The requester may not do this.
    IMPP_ERR_FORBIDDEN = -14,
    /// Durable storage failed (cannot open, read or write the store: I/O, disk full, locked).
    IMPP_ERR_STORAGE = -15,
    /// The network failed: a listen address cannot be bound (in use, or not an address of
    /// this host).
    IMPP_ERR_NETWORK = -16,
    /// A configured bound on the engine's state is reached (subscriptions per watcher or per
    /// presentity, endpoints per user); nothing changed. Room comes back as that state ends.
    IMPP_ERR_LIMIT_REACHED = -17,
    /// The subscription is not served here: the presentity's rules (or its decision on this
    /// watcher) send it to another presence agent, whose URI is the whole of
    /// `impp_last_error()`.
    IMPP_ERR_MOVED = -18,
}

impl impp_status {
    pub(crate) fn from_error(e: &Error) -> impp_status {
        match e {
            Error::InvalidArgument(_) => impp_status::IMPP_ERR_INVALID_ARGUMENT,
            Error::InvalidUri(_) => impp_status::IMPP_ERR_INVALID_URI,
            Error::Malformed(_) => impp_status::IMPP_ERR_MALFORMED,
            Error::TooLarge(_) => impp_status::IMPP_ERR_TOO_LARGE,
            Error::UnsafeXml(_) => impp_status::IMPP_ERR_UNSAFE_XML,
            Error::Unsupported(_) => impp_status::IMPP_ERR_UNSUPPORTED,
            Error::NotFound(_) => impp_status::IMPP_ERR_NOT_FOUND,
            Error::Internal(_) => impp_status::IMPP_ERR_INTERNAL,
            Error::UnknownEntityTag(_) => impp_status::IMPP_ERR_UNKNOWN_ENTITY_TAG,
            Error::IntervalTooBrief(_) => impp_status::IMPP_ERR_INTERVAL_TOO_BRIEF,
            Error::UnknownPackage(_) => impp_status::IMPP_ERR_UNKNOWN_PACKAGE,
            Error::Shutdown(_) => impp_status::IMPP_ERR_SHUTDOWN,
            Error::InCallback(_) => impp_status::IMPP_ERR_IN_CALLBACK,
            Error::Forbidden(_) => impp_status::IMPP_ERR_FORBIDDEN,
            Error::Storage(_) => impp_status::IMPP_ERR_STORAGE,
            Error::Network(_) => impp_status::IMPP_ERR_NETWORK,
            Error::LimitReached(_) => impp_status::IMPP_ERR_LIMIT_REACHED,
            Error::Moved(_) => impp_status::IMPP_ERR_MOVED,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

pub(crate) fn set_last_error(message: &str) {
    // Interior NULs cannot come from our messages, but never let that become a failure.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

pub(crate) fn clear_last_error() {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
}

/// Pointer to the current thread's last error message, or NULL.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Runs the body of a fallible exported function: clears the last error, contains any
/// panic, and turns the outcome into a status (recording the message on failure).
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> impp_status {
    clear_last_error();
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(Error::Internal(format!(
            "panic caught at the C boundary: {}",
            panic_message(&*payload)
        )))
    });
    match outcome {
        Ok(()) => impp_status::IMPP_OK,
        Err(e) => {
            set_last_error(&e.to_string());
            impp_status::from_error(&e)
        }
    }
}

/// Runs the body of an infallible exported function (a count, a free), containing any panic
/// and returning `fallback` if one happens.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Borrows a required `const char *` argument as UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::InvalidArgument(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "{name} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// Borrows an optional `const char *` argument (NULL means absent).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(ptr, name) }.map(Some)
    }
}

/// Borrows a `(pointer, length)` byte argument.
///
/// # Safety
/// `ptr` is NULL (only with `len == 0`) or points to `len` readable bytes valid for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8]> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::InvalidArgument(format!(
            "{name} is NULL with length {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "{name} length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` created by this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
}

/// Borrows a handle argument mutably.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` not used elsewhere during the call.
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: the caller's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
}

/// Checks an output pointer before any work is done, so a failure changes nothing.
pub(crate) fn out_arg<T>(ptr: *mut T, name: &str) -> Result<()> {
    if ptr.is_null() {
        return Err(Error::InvalidArgument(format!("{name} (output) is NULL")));
    }
    Ok(())
}

/// Writes an output parameter that [`out_arg`] checked.
///
/// # Safety
/// `ptr` is non-NULL, aligned and writable.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: the caller's contract.
    unsafe { ptr.write(value) }
}

/// Converts a Rust string into an owned C string for [`super::impp_string_free`].
pub(crate) fn owned_c_string(s: String, what: &str) -> Result<*mut c_char> {
    CString::new(s)
        .map(CString::into_raw)
        .map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL character")))
}

/// Hands `text` to the caller as an owned C string (`*out`, freed with `impp_string_free`)
/// and its length in bytes without the NUL (`*len_out`, when not NULL): how every
/// serialization function (`impp_*_to_xml`, `impp_message_summary_to_text`) answers.
///
/// # Safety
/// `out` is writable (checked non-NULL by the caller); `len_out` is NULL or writable.
pub(crate) unsafe fn write_owned_text(
    out: *mut *mut c_char,
    len_out: *mut usize,
    text: String,
    what: &str,
) -> Result<()> {
    let len = text.len();
    let c = owned_c_string(text, what)?;
    // SAFETY: the caller's contract.
    unsafe {
        write_out(out, c);
        if !len_out.is_null() {
            write_out(len_out, len);
        }
    }
    Ok(())
}

/// Frees a handle that this library created with `Box::into_raw`; NULL is a no-op. Every
/// `impp_*_free` of a plain handle is this.
///
/// # Safety
/// `ptr` is NULL or came from `Box::into_raw` in this library and was not freed yet.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(ptr) });
    })
}

/// NUL-terminated copies of the strings a handle has handed out, one per field key, so that
/// a borrowed pointer stays valid until the handle is next modified (which clears the cache)
/// or freed. A `CString`'s buffer does not move when the map grows, so pointers survive
/// later insertions.
pub(crate) struct StrCache<K>(RefCell<HashMap<K, CString>>);

impl<K: Copy + Eq + Hash + Debug> StrCache<K> {
    pub(crate) fn new() -> StrCache<K> {
        StrCache(RefCell::new(HashMap::new()))
    }

    /// A pointer to a NUL-terminated copy of `value`, kept under `key`.
    pub(crate) fn get(&self, key: K, value: &str) -> Result<*const c_char> {
        let mut strings = self.0.borrow_mut();
        if let Some(c) = strings.get(&key) {
            return Ok(c.as_ptr());
        }
        let c = CString::new(value)
            .map_err(|_| Error::InvalidArgument(format!("{key:?} contains a NUL character")))?;
        let ptr = c.as_ptr();
        strings.insert(key, c);
        Ok(ptr)
    }

    /// As [`StrCache::get`], NULL for `None`.
    pub(crate) fn get_opt(&self, key: K, value: Option<&str>) -> Result<*const c_char> {
        value.map_or(Ok(std::ptr::null()), |v| self.get(key, v))
    }

    /// Forgets every copy: call before modifying the document the strings came from.
    pub(crate) fn clear(&mut self) {
        self.0.get_mut().clear();
    }
}

/// The text of a document passed as `(pointer, length)`: the size limit is checked first,
/// then the bytes must be UTF-8 (`IMPP_ERR_MALFORMED` otherwise, as for any document fault).
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn document_arg<'a>(
    ptr: *const c_char,
    len: usize,
    doc: &str,
    limits: &Limits,
) -> Result<&'a str> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { bytes_arg(ptr.cast(), len, doc) }?;
    limits.check_size(doc, bytes.len())?;
    std::str::from_utf8(bytes).map_err(|e| {
        Error::Malformed(format!(
            "{doc}: document is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// A text value for a document field set from C: not empty, no surrounding blanks and no
/// control characters, so that it is written and read back unchanged.
pub(crate) fn field_text<'a>(value: &'a str, what: &str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} is empty")));
    }
    if value.trim() != value {
        return Err(Error::InvalidArgument(format!(
            "{what} '{value}' has leading or trailing whitespace"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} contains a control character"
        )));
    }
    Ok(value)
}
