//! The library's log lines, delivered to the application.
//!
//! Without a callback, error and warning lines go to standard error. With one, every line up
//! to the maximum level goes to it, on whichever library thread logged it.

use std::borrow::Cow;
use std::ffi::{c_char, c_void, CString};

use super::boundary::guard;
use super::engine::impp_free_callback;
use super::enum_arg;
use super::status::impp_status;
use crate::error::{Error, Result};
use crate::log::{self, Level};

/// The level of a log line, and the maximum level given to `impp_log_set_callback` and
/// `impp_log_set_level`: lines finer than the maximum are dropped before they are formatted.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_log_level {
    /// Something failed that the application should know about (a panicking callback).
    IMPP_LOG_ERROR = 1,
    /// Something unexpected that the library worked around (a filter that cannot apply).
    IMPP_LOG_WARN = 2,
    /// Lifecycle: engines starting and stopping.
    IMPP_LOG_INFO = 3,
    /// Decisions and soft-state changes: authorization, expiries.
    IMPP_LOG_DEBUG = 4,
    /// Per-notification detail (many lines).
    IMPP_LOG_TRACE = 5,
}

/// The log callback: one line at `level` from `target` (the library module that logged it,
/// such as `"impp::engine::shard"`); `message` is the text without a line break. Both strings are UTF-8, borrowed for the call only (copy what you keep).
/// It is called on any library thread, possibly from several threads at once: make it
/// thread-safe. It may call library functions; lines logged from inside it are dropped.
pub type impp_log_callback = Option<
    unsafe extern "C" fn(
        level: enum_arg::impp_log_level,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// Owns the log callback's `user_data` and frees it exactly once, when the last reference
/// to the installed sink is dropped.
struct LogUserData {
    data: *mut c_void,
    free: impp_free_callback,
}

// SAFETY: `impp_log_set_callback` documents that the callback is called on any library
// thread, concurrently, and that `free_user_data` runs on any library thread; the
// application makes them fit for that. The library never touches the pointer itself.
unsafe impl Send for LogUserData {}
// SAFETY: as above: concurrent calls are part of the documented contract.
unsafe impl Sync for LogUserData {}

impl Drop for LogUserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the application gave this function for this pointer; called once.
            unsafe { free(self.data) };
        }
    }
}

fn level_arg(level: enum_arg::impp_log_level, name: &str) -> Result<Level> {
    Level::from_number(i64::from(level)).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name} {level} is not a log level (IMPP_LOG_ERROR 1 ... IMPP_LOG_TRACE 5)"
        ))
    })
}

/// A string for C: without interior NULs (replaced, never an error).
fn c_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\\0"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Sends the library's log lines to `callback(level, target, message, user_data)` for every
/// line at `max_level` or more important; NULL `callback` goes back to the default (error
/// and warning lines on standard error; `max_level` still applies).
///
/// Threads: the callback runs on whichever library thread logged the line (engine shard
/// threads, dispatcher threads, or the thread calling into the library), possibly on several
/// threads at once, so it must be thread-safe; it must not block for long (it delays that
/// thread's work). It may call any library function, this one included. Do not hold a lock
/// the callback takes while calling `impp_engine_free` (it joins threads that may be
/// logging).
///
/// Ownership: the previous callback's `user_data` is freed (its `free_user_data`, if not
/// NULL, runs) exactly once, after its last call has returned: at once on this thread when
/// no call is in progress, else on the thread whose call finishes last. The new `user_data`
/// is freed the same way when it is replaced in turn, and at once if this call fails or
/// `callback` is NULL. The setting is process-wide and is never reset by the library, so
/// `user_data` still set at exit is never freed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`max_level` out of range; nothing changes).
///
/// # Safety
/// `callback` and `free_user_data` are NULL or functions valid until `free_user_data` has
/// run (or forever without one); `user_data` is whatever they expect.
#[no_mangle]
pub unsafe extern "C" fn impp_log_set_callback(
    callback: impp_log_callback,
    user_data: *mut c_void,
    free_user_data: impp_free_callback,
    max_level: enum_arg::impp_log_level,
) -> impp_status {
    let owner = LogUserData {
        data: user_data,
        free: free_user_data,
    };
    guard(move || {
        let level = level_arg(max_level, "max_level")?;
        let Some(callback) = callback else {
            drop(owner);
            log::set_sink(None);
            log::set_max_level(level);
            return Ok(());
        };
        let sink: log::Sink = Box::new(move |level: Level, message: &str, target: &str| {
            let owner = &owner;
            // Interior NULs were replaced, so these cannot fail.
            let (Ok(target), Ok(message)) = (
                CString::new(c_text(target).into_owned()),
                CString::new(c_text(message).into_owned()),
            ) else {
                return;
            };
            // SAFETY: the application's function with its own user data; the strings live
            // for the call.
            unsafe {
                callback(
                    level as enum_arg::impp_log_level,
                    target.as_ptr(),
                    message.as_ptr(),
                    owner.data,
                )
            };
        });
        log::set_max_level(level);
        log::set_sink(Some(sink));
        Ok(())
    })
}

/// Sets the maximum level of the lines that reach the log callback or the default (standard
/// error, which shows error and warning lines only). The default is `IMPP_LOG_WARN`.
/// Process-wide; any thread; cheap.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`max_level` out of range; nothing changes).
#[no_mangle]
pub extern "C" fn impp_log_set_level(max_level: enum_arg::impp_log_level) -> impp_status {
    guard(|| {
        log::set_max_level(level_arg(max_level, "max_level")?);
        Ok(())
    })
}
