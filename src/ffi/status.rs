//! Status codes (the type, [`impp_status`], is defined beside the panic boundary that returns
//! it, and re-exported here), their names, the last error, versions and the library's own
//! string type.

use std::ffi::{c_char, CString};

pub use super::boundary::impp_status;
use super::boundary::{guard_value, last_error_ptr};
use super::enum_arg;

/// The major version of this library.
pub const IMPP_VERSION_MAJOR: u32 = 0;
/// The minor version of this library.
pub const IMPP_VERSION_MINOR: u32 = 1;
/// The patch version of this library.
pub const IMPP_VERSION_PATCH: u32 = 0;
/// The ABI version this header describes. Compare it with `impp_abi_version()` at run time:
/// a program built against one ABI version must not load a library of another.
pub const IMPP_ABI_VERSION: u32 = 3;

/// The static name of a status code, such as `"IMPP_ERR_MALFORMED"`; `"IMPP_UNKNOWN"` for a
/// value that is not a status. Never NULL; the string is static. Any thread.
#[no_mangle]
pub extern "C" fn impp_status_name(status: enum_arg::impp_status) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"IMPP_OK\0",
        -1 => b"IMPP_ERR_INVALID_ARGUMENT\0",
        -2 => b"IMPP_ERR_INVALID_URI\0",
        -3 => b"IMPP_ERR_MALFORMED\0",
        -4 => b"IMPP_ERR_TOO_LARGE\0",
        -5 => b"IMPP_ERR_UNSAFE_XML\0",
        -6 => b"IMPP_ERR_UNSUPPORTED\0",
        -7 => b"IMPP_ERR_NOT_FOUND\0",
        -8 => b"IMPP_ERR_INTERNAL\0",
        -9 => b"IMPP_ERR_UNKNOWN_ENTITY_TAG\0",
        -10 => b"IMPP_ERR_INTERVAL_TOO_BRIEF\0",
        -11 => b"IMPP_ERR_UNKNOWN_PACKAGE\0",
        -12 => b"IMPP_ERR_SHUTDOWN\0",
        -13 => b"IMPP_ERR_IN_CALLBACK\0",
        -14 => b"IMPP_ERR_FORBIDDEN\0",
        -15 => b"IMPP_ERR_STORAGE\0",
        -16 => b"IMPP_ERR_NETWORK\0",
        -17 => b"IMPP_ERR_LIMIT_REACHED\0",
        -18 => b"IMPP_ERR_MOVED\0",
        _ => b"IMPP_UNKNOWN\0",
    };
    name.as_ptr().cast()
}

/// The message of the last failed call on the calling thread, or NULL if the last fallible
/// call succeeded. Borrowed: valid until the next fallible `impp_` call on this thread.
/// Every fallible function clears it on entry.
#[no_mangle]
pub extern "C" fn impp_last_error() -> *const c_char {
    guard_value(std::ptr::null(), last_error_ptr)
}

/// The library version as `"major.minor.patch"`. Static string; any thread.
#[no_mangle]
pub extern "C" fn impp_version() -> *const c_char {
    static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();
    VERSION.as_ptr().cast()
}

/// The ABI version of the loaded library; compare with `IMPP_ABI_VERSION`. Any thread.
#[no_mangle]
pub extern "C" fn impp_abi_version() -> u32 {
    crate::ABI_VERSION
}

/// Frees a string the library returned as owned (`char *`). NULL is a no-op. Never pass a
/// string from elsewhere, and never free the library's strings with `free()`.
///
/// # Safety
/// `s` is NULL or a string returned as owned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: `s` came from `CString::into_raw` in this library (the contract above).
        drop(unsafe { CString::from_raw(s) });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn version_macros_match_the_crate() {
        assert_eq!(
            IMPP_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            IMPP_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            IMPP_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        assert_eq!(IMPP_ABI_VERSION, crate::ABI_VERSION);
    }

    #[test]
    fn every_error_has_a_distinct_named_status() {
        let errors = [
            Error::InvalidArgument(String::new()),
            Error::InvalidUri(String::new()),
            Error::Malformed(String::new()),
            Error::TooLarge(String::new()),
            Error::UnsafeXml(String::new()),
            Error::Unsupported(String::new()),
            Error::NotFound(String::new()),
            Error::Internal(String::new()),
            Error::UnknownEntityTag(String::new()),
            Error::IntervalTooBrief(String::new()),
            Error::UnknownPackage(String::new()),
            Error::Shutdown(String::new()),
            Error::InCallback(String::new()),
            Error::Forbidden(String::new()),
            Error::Storage(String::new()),
            Error::Network(String::new()),
            Error::LimitReached(String::new()),
            Error::Moved(String::new()),
        ];
        for e in &errors {
            let status = impp_status::from_error(e);
            assert_eq!(status as i32, e.code());
            // SAFETY: static NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(impp_status_name(e.code())) };
            assert_ne!(name.to_str().unwrap(), "IMPP_UNKNOWN");
        }
    }
}
