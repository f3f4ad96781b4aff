//! Accessors of message (`IMPP_EVENT_MESSAGE`), delivery (`IMPP_EVENT_DELIVERY`) and endpoint
//! expiry (`IMPP_EVENT_ENDPOINT_EXPIRED`) events. Like every event accessor: NULL or a zero
//! value for an event of another kind (or NULL), and strings borrowed from the event, valid
//! until it is freed (or the callback it was handed to returns).

use std::ffi::c_char;

use super::boundary::{guard, guard_value, handle, out_arg, write_out};
use super::enum_arg;
use super::event::{event_ref, impp_event};
use super::status::impp_status;
use crate::engine::{DeliveryOutcome, Event, FailureReason};
use crate::error::Error;

/// What became of a sent message (`impp_event_delivery_outcome`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_delivery_outcome {
    /// Not a delivery event.
    IMPP_DELIVERY_NONE = 0,
    /// Given to the recipient's endpoints.
    IMPP_DELIVERY_DELIVERED = 1,
    /// Kept on disk for an offline recipient; delivered or failed (expired) follows.
    IMPP_DELIVERY_STORED = 2,
    /// Not delivered, and never will be; see `impp_event_failure_reason`.
    IMPP_DELIVERY_FAILED = 3,
}

/// Why a message could not be delivered (`impp_event_failure_reason`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_failure_reason {
    /// Not a failed delivery.
    IMPP_FAILURE_NONE = 0,
    /// The recipient is not a user of this engine (a domain it does not own, or not in its
    /// user directory when it has one).
    IMPP_FAILURE_UNKNOWN_USER = 1,
    /// The body is larger than the configured maximum (`impp_config_set_max_message_size`).
    IMPP_FAILURE_TOO_LARGE = 2,
    /// Stored for an offline recipient who did not log in before it expired.
    IMPP_FAILURE_EXPIRED = 3,
    /// The recipient's rules block the sender.
    IMPP_FAILURE_REJECTED = 4,
    /// The recipient is offline and the message is of a kind never stored
    /// (`application/im-iscomposing+xml`).
    IMPP_FAILURE_OFFLINE = 5,
    /// The recipient is offline and the store could not keep the message.
    IMPP_FAILURE_STORAGE = 6,
    /// The recipient's domain could not be reached (its next hop did not answer, or
    /// answered with a server error).
    IMPP_FAILURE_UNREACHABLE = 7,
    /// The recipient cannot take it now and its mailbox is full: as many waiting messages as
    /// are kept for one user, or from this sender for one user
    /// (`impp_config_set_max_offline_messages_per_user`, `_per_sender`). Nothing was stored.
    IMPP_FAILURE_MAILBOX_FULL = 8,
}

fn reason_to_c(reason: FailureReason) -> impp_failure_reason {
    match reason {
        FailureReason::UnknownUser => impp_failure_reason::IMPP_FAILURE_UNKNOWN_USER,
        FailureReason::TooLarge => impp_failure_reason::IMPP_FAILURE_TOO_LARGE,
        FailureReason::Expired => impp_failure_reason::IMPP_FAILURE_EXPIRED,
        FailureReason::Rejected => impp_failure_reason::IMPP_FAILURE_REJECTED,
        FailureReason::Offline => impp_failure_reason::IMPP_FAILURE_OFFLINE,
        FailureReason::Storage => impp_failure_reason::IMPP_FAILURE_STORAGE,
        FailureReason::Unreachable => impp_failure_reason::IMPP_FAILURE_UNREACHABLE,
        FailureReason::MailboxFull => impp_failure_reason::IMPP_FAILURE_MAILBOX_FULL,
    }
}

/// The event, when `event` is not NULL.
///
/// # Safety
/// `event` is NULL or a live event.
unsafe fn event_of<'a>(event: *const impp_event) -> Option<&'a impp_event> {
    // SAFETY: forwarded contract.
    unsafe { event_ref(event) }
}

/// A borrowed string of the event, kept in its cache under `key`; NULL when `value` gives
/// none (or the text holds a NUL, which cannot be handed out as a C string).
fn cached(
    e: &impp_event,
    key: &'static str,
    value: impl FnOnce(&Event) -> Option<String>,
) -> *const c_char {
    match value(&e.event) {
        Some(text) => e.strings.get(key, &text).unwrap_or(std::ptr::null()),
        None => std::ptr::null(),
    }
}

/// The message id of a message or delivery event (as `impp_engine_send_message` gave it);
/// 0 for other events and NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_message_id(event: *const impp_event) -> u64 {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        match unsafe { event_of(event) }.map(|e| &e.event) {
            Some(Event::Message(m)) => m.id.0,
            Some(Event::Delivery(d)) => d.message.0,
            _ => 0,
        }
    })
}

/// The sender's URI of a message or delivery event; NULL otherwise. Borrowed from the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_sender(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_of(event) }) else {
            return std::ptr::null();
        };
        cached(e, "sender", |ev| match ev {
            Event::Message(m) => Some(m.sender.to_string()),
            Event::Delivery(d) => Some(d.sender.to_string()),
            _ => None,
        })
    })
}

/// The recipient's URI of a message or delivery event; NULL otherwise. Borrowed from the
/// event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_recipient(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_of(event) }) else {
            return std::ptr::null();
        };
        cached(e, "recipient", |ev| match ev {
            Event::Message(m) => Some(m.recipient.to_string()),
            Event::Delivery(d) => Some(d.recipient.to_string()),
            _ => None,
        })
    })
}

/// The endpoint id of a message event (the endpoint this copy is for) or an endpoint expiry;
/// NULL otherwise. Borrowed from the event. (The endpoint's user is `impp_event_presentity`.)
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_endpoint(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_of(event) }) else {
            return std::ptr::null();
        };
        cached(e, "endpoint", |ev| match ev {
            Event::Message(m) => Some(m.endpoint.to_string()),
            Event::EndpointExpired { endpoint, .. } => Some(endpoint.to_string()),
            _ => None,
        })
    })
}

/// The MIME type of a message event, as the sender gave it; NULL otherwise. Borrowed from
/// the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_content_type(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_of(event) }) else {
            return std::ptr::null();
        };
        cached(e, "content_type", |ev| match ev {
            Event::Message(m) => Some(m.content_type.to_string()),
            _ => None,
        })
    })
}

/// The body of a message event: `*body_out` points to `*len_out` bytes (any content, NUL
/// bytes included, not NUL-terminated) borrowed from the event. `len_out` may be NULL only
/// if the length is not wanted.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL event or `body_out`), `IMPP_ERR_NOT_FOUND` (not
/// a message event). The outputs are written only on success.
///
/// # Safety
/// `event` is NULL or a live event; `body_out` and `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_message_body(
    event: *const impp_event,
    body_out: *mut *const u8,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(body_out, "body_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { handle(event, "event") }?;
        let Event::Message(m) = &e.event else {
            return Err(Error::NotFound("the event is not a message".into()));
        };
        // SAFETY: `body_out` checked non-NULL; `len_out` may be NULL.
        unsafe {
            write_out(body_out, m.body.as_ptr());
            if !len_out.is_null() {
                write_out(len_out, m.body.len());
            }
        }
        Ok(())
    })
}

/// The reference a message event's sender gave (`in_reply_to` of `impp_engine_send_message`);
/// NULL when there is none or for other events. Borrowed from the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_in_reply_to(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_of(event) }) else {
            return std::ptr::null();
        };
        cached(e, "in_reply_to", |ev| match ev {
            Event::Message(m) => m.in_reply_to.as_deref().map(str::to_owned),
            _ => None,
        })
    })
}

/// When a message event's message was sent, in Unix milliseconds (wall-clock time; the
/// manual clock's when configured); 0 for other events and NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_sent_at(event: *const impp_event) -> u64 {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        match unsafe { event_of(event) }.map(|e| &e.event) {
            Some(Event::Message(m)) => m.sent_at,
            _ => 0,
        }
    })
}

/// The outcome a delivery event reports; `IMPP_DELIVERY_NONE` for other events and NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_delivery_outcome(
    event: *const impp_event,
) -> impp_delivery_outcome {
    guard_value(impp_delivery_outcome::IMPP_DELIVERY_NONE, || {
        // SAFETY: the caller's contract.
        match unsafe { event_of(event) }.map(|e| &e.event) {
            Some(Event::Delivery(d)) => match d.outcome {
                DeliveryOutcome::Delivered => impp_delivery_outcome::IMPP_DELIVERY_DELIVERED,
                DeliveryOutcome::Stored => impp_delivery_outcome::IMPP_DELIVERY_STORED,
                DeliveryOutcome::Failed(_) => impp_delivery_outcome::IMPP_DELIVERY_FAILED,
            },
            _ => impp_delivery_outcome::IMPP_DELIVERY_NONE,
        }
    })
}

/// Why the message of a failed delivery event failed; `IMPP_FAILURE_NONE` for any other
/// event (delivered, stored, other kinds) and NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_failure_reason(
    event: *const impp_event,
) -> impp_failure_reason {
    guard_value(impp_failure_reason::IMPP_FAILURE_NONE, || {
        // SAFETY: the caller's contract.
        match unsafe { event_of(event) }.map(|e| &e.event) {
            Some(Event::Delivery(d)) => d
                .outcome
                .reason()
                .map_or(impp_failure_reason::IMPP_FAILURE_NONE, reason_to_c),
            _ => impp_failure_reason::IMPP_FAILURE_NONE,
        }
    })
}

/// The name of an `impp_delivery_outcome` value: `"delivered"`, `"stored"`, `"failed"`
/// (the names of the Rust and Python APIs), `"none"` for `IMPP_DELIVERY_NONE`, `"unknown"`
/// for any other number. Static; any thread.
#[no_mangle]
pub extern "C" fn impp_delivery_outcome_name(
    outcome: enum_arg::impp_delivery_outcome,
) -> *const c_char {
    let name: &'static [u8] = match outcome {
        0 => b"none\0",
        1 => b"delivered\0",
        2 => b"stored\0",
        3 => b"failed\0",
        _ => b"unknown\0",
    };
    name.as_ptr().cast()
}

/// The name of an `impp_failure_reason` value: `"unknown-user"`, `"too-large"`,
/// `"expired"`, `"rejected"`, `"offline"`, `"storage"`, `"unreachable"` (the names of the Rust and Python
/// APIs), `"none"` for `IMPP_FAILURE_NONE`, `"unknown"` for any other number. Static; any
/// thread.
#[no_mangle]
pub extern "C" fn impp_failure_reason_name(reason: enum_arg::impp_failure_reason) -> *const c_char {
    let name: &'static [u8] = match reason {
        0 => b"none\0",
        1 => b"unknown-user\0",
        2 => b"too-large\0",
        3 => b"expired\0",
        4 => b"rejected\0",
        5 => b"offline\0",
        6 => b"storage\0",
        7 => b"unreachable\0",
        8 => b"mailbox-full\0",
        _ => b"unknown\0",
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use std::ffi::{c_int, CStr};

    use super::*;

    /// # Safety
    /// `ptr` is a static NUL-terminated string (what the `_name` functions return).
    unsafe fn name(ptr: *const c_char) -> &'static str {
        // SAFETY: the contract above.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap()
    }

    #[test]
    fn names_are_the_rust_names() {
        for reason in [
            FailureReason::UnknownUser,
            FailureReason::TooLarge,
            FailureReason::Expired,
            FailureReason::Rejected,
            FailureReason::Offline,
            FailureReason::Storage,
            FailureReason::Unreachable,
            FailureReason::MailboxFull,
        ] {
            // SAFETY: a name function's static string.
            let got = unsafe { name(impp_failure_reason_name(reason_to_c(reason) as c_int)) };
            assert_eq!(got, reason.as_str());
        }
        for (outcome, c) in [
            (
                DeliveryOutcome::Delivered,
                impp_delivery_outcome::IMPP_DELIVERY_DELIVERED,
            ),
            (
                DeliveryOutcome::Stored,
                impp_delivery_outcome::IMPP_DELIVERY_STORED,
            ),
            (
                DeliveryOutcome::Failed(FailureReason::Expired),
                impp_delivery_outcome::IMPP_DELIVERY_FAILED,
            ),
        ] {
            // SAFETY: a name function's static string.
            let got = unsafe { name(impp_delivery_outcome_name(c as c_int)) };
            assert_eq!(got, outcome.as_str());
        }
        // SAFETY: the name functions' static strings.
        unsafe {
            assert_eq!(name(impp_failure_reason_name(0)), "none");
            assert_eq!(name(impp_delivery_outcome_name(42)), "unknown");
        }
    }
}
