//! Endpoints and instant messages (RFC 3428 page mode): logging endpoints in and out, and
//! sending messages. What becomes of a message arrives as events: `IMPP_EVENT_MESSAGE` for
//! each endpoint of the recipient it reaches, `IMPP_EVENT_DELIVERY` for its sender (read them
//! with the accessors of `event_message.rs`).
//!
//! Threading contract: as for every engine function (any thread, also inside the callback).

use std::ffi::{c_char, CString};

use super::boundary::{bytes_arg, guard, opt_str_arg, out_arg, str_arg, write_out};
use super::engine::{engine_ref, impp_engine, uri_arg, IMPP_EXPIRES_DEFAULT};
use super::message_options::impp_message_options;
use super::status::impp_status;
use crate::engine::OutgoingMessage;
use crate::error::{Error, Result};

/// A text field of message options as an owned string (checked as UTF-8 when it was set).
fn option_text(value: Option<&CString>) -> Result<Option<String>> {
    value
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::Internal("a message option is no longer UTF-8".into()))
        })
        .transpose()
}

/// Logs endpoint `endpoint` (an id of 1 to 256 characters, no control characters, e.g. a SIP
/// instance id or `"phone"`) of `user` in, or refreshes its login. `expires` in seconds: 0
/// (`IMPP_EXPIRES_DEFAULT`) is the configured default, longer than the maximum is shortened.
/// Logging out is `impp_engine_logout`. On success `*granted_out` (if not NULL) is the
/// granted expiry in seconds. Messages stored for the user are delivered to the endpoint, in
/// the order sent, as `IMPP_EVENT_MESSAGE` events; their senders get `IMPP_EVENT_DELIVERY`
/// events.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad endpoint id),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_INTERVAL_TOO_BRIEF` (below the minimum: SIP 423),
/// `IMPP_ERR_FORBIDDEN` (a user outside the engine's domains), `IMPP_ERR_LIMIT_REACHED` (a
/// new endpoint of a user who has `impp_config_set_max_endpoints_per_user` of them),
/// `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `granted_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_login(
    engine: *const impp_engine,
    user: *const c_char,
    endpoint: *const c_char,
    expires: u32,
    granted_out: *mut u32,
) -> impp_status {
    // SAFETY: forwarded contract (no contact).
    unsafe {
        impp_engine_login_at(
            engine,
            user,
            endpoint,
            std::ptr::null(),
            expires,
            granted_out,
        )
    }
}

/// `impp_engine_login` with the address the endpoint is reached at (`contact`, e.g. a SIP
/// contact URI; NULL: none), kept with the login.
///
/// Errors: as `impp_engine_login`.
///
/// # Safety
/// As `impp_engine_login`; `contact` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_login_at(
    engine: *const impp_engine,
    user: *const c_char,
    endpoint: *const c_char,
    contact: *const c_char,
    expires: u32,
    granted_out: *mut u32,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let user = unsafe { uri_arg(user, "user") }?;
        // SAFETY: the caller's contract.
        let endpoint = unsafe { str_arg(endpoint, "endpoint") }?;
        // SAFETY: the caller's contract.
        let contact = unsafe { opt_str_arg(contact, "contact") }?;
        let expires = (expires != IMPP_EXPIRES_DEFAULT).then_some(expires);
        let granted = e.engine.login_at(&user, endpoint, contact, expires)?;
        if !granted_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(granted_out, granted) };
        }
        Ok(())
    })
}

/// Logs an endpoint of `user` out; `*was_logged_in_out` (if not NULL) says whether it was
/// logged in (logging out an endpoint that is not is not an error).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_INVALID_URI`, `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `was_logged_in_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_logout(
    engine: *const impp_engine,
    user: *const c_char,
    endpoint: *const c_char,
    was_logged_in_out: *mut bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let user = unsafe { uri_arg(user, "user") }?;
        // SAFETY: the caller's contract.
        let endpoint = unsafe { str_arg(endpoint, "endpoint") }?;
        let was = e.engine.logout(&user, endpoint)?;
        if !was_logged_in_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(was_logged_in_out, was) };
        }
        Ok(())
    })
}

/// Sends an instant message from `sender` to `recipient`: `content_type` is its MIME type
/// (`type/subtype`, parameters allowed, e.g. `"text/plain;charset=utf-8"`), `body` points to
/// `body_len` bytes of any content (NUL bytes included; NULL only with `body_len` 0).
/// `options` (NULL: every default; see `impp_message_options_new`: the endpoint to deliver
/// to, in-reply-to) are only read by the call: they stay the caller's, to reuse or free. On
/// success `*id_out` is the message id (never 0), at once; what becomes of the message
/// arrives as `IMPP_EVENT_DELIVERY` events for the sender: delivered, or stored (the
/// recipient is offline) then delivered or failed, or failed with a reason (a body above the
/// configured maximum is `IMPP_FAILURE_TOO_LARGE`, not an error here).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a malformed content type, `body` NULL with a
/// length), `IMPP_ERR_INVALID_URI`, `IMPP_ERR_SHUTDOWN`. On error nothing is sent and no
/// event follows.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `body` NULL or `body_len` readable
/// bytes; `options` NULL or live options not modified during the call; `id_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_send_message(
    engine: *const impp_engine,
    sender: *const c_char,
    recipient: *const c_char,
    content_type: *const c_char,
    body: *const u8,
    body_len: usize,
    options: *const impp_message_options,
    id_out: *mut u64,
) -> impp_status {
    guard(|| {
        out_arg(id_out, "id_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let sender = unsafe { uri_arg(sender, "sender") }?;
        // SAFETY: the caller's contract.
        let recipient = unsafe { uri_arg(recipient, "recipient") }?;
        // SAFETY: the caller's contract.
        let content_type = unsafe { str_arg(content_type, "content_type") }?;
        // SAFETY: the caller's contract.
        let body = unsafe { bytes_arg(body, body_len, "body") }?;
        let mut message = OutgoingMessage::new(sender, recipient, content_type, body);
        // SAFETY: the caller's contract (NULL or live options).
        if let Some(options) = unsafe { options.as_ref() } {
            message.endpoint = option_text(options.endpoint.as_ref())?;
            message.in_reply_to = option_text(options.in_reply_to.as_ref())?;
        }
        let id = e.engine.send_message(message)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(id_out, id.0) };
        Ok(())
    })
}

/// Adds `user` (`user@domain`) to the engine's user directory with `password`, or changes its
/// password. Only the digests H(user:realm:password) are kept (MD5 and SHA-256, realm = the
/// user's domain), in the store; the call returns once they are durable. While the directory
/// has users, messages to anyone else fail as `IMPP_FAILURE_UNKNOWN_USER`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a URI without a user part),
/// `IMPP_ERR_INVALID_URI`, `IMPP_ERR_STORAGE`, `IMPP_ERR_SHUTDOWN`. Nothing changes on error.
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_set_user_password(
    engine: *const impp_engine,
    user: *const c_char,
    password: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let user = unsafe { uri_arg(user, "user") }?;
        // SAFETY: the caller's contract.
        let password = unsafe { str_arg(password, "password") }?;
        e.engine.set_user_password(&user, password)
    })
}

/// Removes `user` from the user directory; `*was_user_out` (if not NULL) says whether it was
/// there (removing an unknown user is not an error).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_INVALID_URI`, `IMPP_ERR_STORAGE`,
/// `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `engine` NULL or live; `user` NULL or NUL-terminated; `was_user_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_remove_user(
    engine: *const impp_engine,
    user: *const c_char,
    was_user_out: *mut bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let user = unsafe { uri_arg(user, "user") }?;
        let was = e.engine.remove_user(&user)?;
        if !was_user_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(was_user_out, was) };
        }
        Ok(())
    })
}

/// Whether `user` is in the user directory: on success `*has_user_out` is true or false.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_INVALID_URI` (`user` is not a URI).
///
/// # Safety
/// `engine` NULL or live; `user` NULL or NUL-terminated; `has_user_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_engine_has_user(
    engine: *const impp_engine,
    user: *const c_char,
    has_user_out: *mut bool,
) -> impp_status {
    guard(|| {
        out_arg(has_user_out, "has_user_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { engine_ref(engine) }?;
        // SAFETY: the caller's contract.
        let user = unsafe { uri_arg(user, "user") }?;
        let has = e.engine.user(&user).is_some();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(has_user_out, has) };
        Ok(())
    })
}
