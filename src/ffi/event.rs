//! Events as an opaque handle with typed accessors. An event handed to the callback is
//! borrowed for the call only; one returned by `impp_engine_next_event` is owned and freed
//! with `impp_event_free`. Strings read from an event live as long as the event.

use std::cell::OnceCell;
use std::ffi::{c_char, CString};

use super::boundary::{free_handle, guard, guard_value, handle, out_arg, write_out, StrCache};
use super::dialog::impp_dialog_info;
use super::mwi::impp_message_summary;
use super::presence::impp_presence;
use super::status::impp_status;
use super::winfo::impp_winfo;
use crate::engine::{Document, Event, SubscriptionState, TerminationReason};
use crate::error::Error;

/// What an event is about, as `impp_event_kind` returns it. (The type is not named
/// `impp_event_kind`: C has one namespace for functions and types.)
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_event_type {
    /// Not an event: what `impp_event_kind(NULL)` returns. No event has this kind.
    IMPP_EVENT_INVALID = 0,
    /// A watcher's notification: state, and the document when the watcher may see it.
    IMPP_EVENT_NOTIFICATION = 1,
    /// A subscription waits for the presentity's decision (`impp_engine_authorize`).
    IMPP_EVENT_AUTHORIZATION_REQUESTED = 2,
    /// A subscription changed state (created, authorized, terminated).
    IMPP_EVENT_SUBSCRIPTION_STATE = 3,
    /// A publication was not refreshed in time and was withdrawn.
    IMPP_EVENT_PUBLICATION_EXPIRED = 4,
    /// An instant message for one of the recipient's endpoints.
    IMPP_EVENT_MESSAGE = 5,
    /// What became of a sent message (for its sender).
    IMPP_EVENT_DELIVERY = 6,
    /// An endpoint's login was not refreshed in time and ended.
    IMPP_EVENT_ENDPOINT_EXPIRED = 7,
}

/// The state of a subscription.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_subscription_state {
    /// Not applicable (the event has no subscription state).
    IMPP_SUBSCRIPTION_NONE = 0,
    /// Waiting for authorization; no document.
    IMPP_SUBSCRIPTION_PENDING = 1,
    /// Authorized.
    IMPP_SUBSCRIPTION_ACTIVE = 2,
    /// Ended; see the reason.
    IMPP_SUBSCRIPTION_TERMINATED = 3,
}

/// Why a subscription ended (RFC 6665).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_reason {
    /// No reason (not terminated, or ended by the watcher).
    IMPP_REASON_NONE = 0,
    /// Ended by the notifier; subscribe again at once if wanted.
    IMPP_REASON_DEACTIVATED = 1,
    /// Ended by the notifier; wait before subscribing again.
    IMPP_REASON_PROBATION = 2,
    /// Authorization refused or revoked.
    IMPP_REASON_REJECTED = 3,
    /// Not refreshed in time.
    IMPP_REASON_TIMEOUT = 4,
    /// The presentity did not decide in time.
    IMPP_REASON_GIVEUP = 5,
    /// The presentity no longer exists.
    IMPP_REASON_NORESOURCE = 6,
}

pub(super) fn state_to_c(state: SubscriptionState) -> (impp_subscription_state, impp_reason) {
    match state {
        SubscriptionState::Pending => (
            impp_subscription_state::IMPP_SUBSCRIPTION_PENDING,
            impp_reason::IMPP_REASON_NONE,
        ),
        SubscriptionState::Active => (
            impp_subscription_state::IMPP_SUBSCRIPTION_ACTIVE,
            impp_reason::IMPP_REASON_NONE,
        ),
        SubscriptionState::Terminated(reason) => (
            impp_subscription_state::IMPP_SUBSCRIPTION_TERMINATED,
            match reason {
                None => impp_reason::IMPP_REASON_NONE,
                Some(TerminationReason::Deactivated) => impp_reason::IMPP_REASON_DEACTIVATED,
                Some(TerminationReason::Probation) => impp_reason::IMPP_REASON_PROBATION,
                Some(TerminationReason::Rejected) => impp_reason::IMPP_REASON_REJECTED,
                Some(TerminationReason::Timeout) => impp_reason::IMPP_REASON_TIMEOUT,
                Some(TerminationReason::Giveup) => impp_reason::IMPP_REASON_GIVEUP,
                Some(TerminationReason::Noresource) => impp_reason::IMPP_REASON_NORESOURCE,
            },
        ),
    }
}

/// One event. See the module notes for its lifetime.
pub struct impp_event {
    pub(super) event: Event,
    /// The strings of message, delivery and endpoint events (see `event_message.rs`).
    pub(super) strings: StrCache<&'static str>,
    watcher: OnceCell<CString>,
    presentity: OnceCell<CString>,
    package: OnceCell<CString>,
    etag: OnceCell<CString>,
    body: OnceCell<CString>,
}

impl impp_event {
    pub(super) fn new(event: Event) -> impp_event {
        impp_event {
            event,
            strings: StrCache::new(),
            watcher: OnceCell::new(),
            presentity: OnceCell::new(),
            package: OnceCell::new(),
            etag: OnceCell::new(),
            body: OnceCell::new(),
        }
    }
}

fn cached(cell: &OnceCell<CString>, make: impl FnOnce() -> Option<String>) -> *const c_char {
    match cell.get() {
        Some(c) => c.as_ptr(),
        None => match make() {
            // URIs and documents never contain NUL; an empty string is the safe fallback.
            Some(s) => cell
                .get_or_init(|| CString::new(s).unwrap_or_default())
                .as_ptr(),
            None => std::ptr::null(),
        },
    }
}

/// The event behind `event`, or `None` for NULL.
///
/// # Safety
/// `event` is NULL or a live event, not freed during `'a`.
pub(super) unsafe fn event_ref<'a>(event: *const impp_event) -> Option<&'a impp_event> {
    // SAFETY: the contract above.
    unsafe { event.as_ref() }
}

/// Frees an event returned by `impp_engine_next_event`. NULL is a no-op. Never free the event
/// passed to a callback.
///
/// # Safety
/// `event` is NULL or an owned event not yet freed.
#[no_mangle]
pub unsafe extern "C" fn impp_event_free(event: *mut impp_event) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(event) }
}

/// The kind of the event; `IMPP_EVENT_INVALID` (0, which no event has) for NULL, so that a
/// NULL event never reads as a real kind.
///
/// Like every event accessor it returns its value directly, with a documented value for
/// NULL, rather than a status and an output parameter: on a live event it cannot fail, and
/// `switch (impp_event_kind(ev))` stays one line in a callback.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_kind(event: *const impp_event) -> impp_event_type {
    guard_value(impp_event_type::IMPP_EVENT_INVALID, || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_ref(event) }) else {
            return impp_event_type::IMPP_EVENT_INVALID;
        };
        // Exhaustive: a new kind of engine event must be given its C value here.
        match &e.event {
            Event::Notification(_) => impp_event_type::IMPP_EVENT_NOTIFICATION,
            Event::AuthorizationRequested { .. } => {
                impp_event_type::IMPP_EVENT_AUTHORIZATION_REQUESTED
            }
            Event::SubscriptionStateChanged { .. } => {
                impp_event_type::IMPP_EVENT_SUBSCRIPTION_STATE
            }
            Event::PublicationExpired { .. } => impp_event_type::IMPP_EVENT_PUBLICATION_EXPIRED,
            Event::Message(_) | Event::RemoteMessage(_) => impp_event_type::IMPP_EVENT_MESSAGE,
            Event::Delivery(_) => impp_event_type::IMPP_EVENT_DELIVERY,
            Event::EndpointExpired { .. } => impp_event_type::IMPP_EVENT_ENDPOINT_EXPIRED,
        }
    })
}

/// The subscription the event is about; 0 for a publication expiry or NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_subscription(event: *const impp_event) -> u64 {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { event_ref(event) }
            .and_then(|e| e.event.subscription())
            .map_or(0, |id| id.0)
    })
}

/// The watcher's URI, or NULL for a publication expiry. Borrowed from the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_watcher(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_ref(event) }) else {
            return std::ptr::null();
        };
        cached(&e.watcher, || match &e.event {
            Event::Notification(n) => Some(n.watcher.to_string()),
            Event::AuthorizationRequested { watcher, .. }
            | Event::SubscriptionStateChanged { watcher, .. } => Some(watcher.to_string()),
            Event::PublicationExpired { .. }
            | Event::Message(_)
            | Event::RemoteMessage(_)
            | Event::Delivery(_)
            | Event::EndpointExpired { .. } => None,
        })
    })
}

/// The presentity's URI (for message and delivery events the recipient, for an endpoint
/// event its user). Borrowed from the event; NULL only for NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_presentity(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_ref(event) }) else {
            return std::ptr::null();
        };
        cached(&e.presentity, || {
            Some(match &e.event {
                Event::Notification(n) => n.presentity.to_string(),
                Event::AuthorizationRequested { presentity, .. }
                | Event::SubscriptionStateChanged { presentity, .. }
                | Event::PublicationExpired { presentity, .. } => presentity.to_string(),
                // The user the event is about: the recipient, or the endpoint's user.
                Event::Message(m) | Event::RemoteMessage(m) => m.recipient.to_string(),
                Event::Delivery(d) => d.recipient.to_string(),
                Event::EndpointExpired { user, .. } => user.to_string(),
            })
        })
    })
}

/// The event package (`"presence"`, `"presence.winfo"`, `"dialog"`, `"message-summary"`).
/// Borrowed from the event; NULL for NULL and for message, delivery and endpoint events.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_package(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_ref(event) }) else {
            return std::ptr::null();
        };
        cached(&e.package, || {
            match &e.event {
                Event::Notification(n) => Some(n.package),
                Event::AuthorizationRequested { package, .. }
                | Event::SubscriptionStateChanged { package, .. }
                | Event::PublicationExpired { package, .. } => Some(*package),
                Event::Message(_)
                | Event::RemoteMessage(_)
                | Event::Delivery(_)
                | Event::EndpointExpired { .. } => None,
            }
            .map(|p| p.as_str().to_owned())
        })
    })
}

/// The subscription state carried by a notification or state change
/// (`IMPP_SUBSCRIPTION_NONE` otherwise); `*reason_out` (if not NULL) gets the reason.
///
/// # Safety
/// `event` is NULL or a live event; `reason_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_state(
    event: *const impp_event,
    reason_out: *mut impp_reason,
) -> impp_subscription_state {
    guard_value(impp_subscription_state::IMPP_SUBSCRIPTION_NONE, || {
        // SAFETY: the caller's contract.
        let state = match unsafe { event_ref(event) }.map(|e| &e.event) {
            Some(Event::Notification(n)) => Some(n.state),
            Some(Event::SubscriptionStateChanged { state, .. }) => Some(*state),
            _ => None,
        };
        let (state, reason) = state.map_or(
            (
                impp_subscription_state::IMPP_SUBSCRIPTION_NONE,
                impp_reason::IMPP_REASON_NONE,
            ),
            state_to_c,
        );
        if !reason_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(reason_out, reason) };
        }
        state
    })
}

/// The entity tag of an expired publication; NULL for other events. Borrowed from the event.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_etag(event: *const impp_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some(e) = (unsafe { event_ref(event) }) else {
            return std::ptr::null();
        };
        cached(&e.etag, || match &e.event {
            Event::PublicationExpired { etag, .. } => Some(etag.clone()),
            _ => None,
        })
    })
}

fn document(e: &impp_event) -> Option<&Document> {
    match &e.event {
        Event::Notification(n) => n.document.as_deref(),
        _ => None,
    }
}

/// Whether the event carries a document (a notification the watcher may see content of);
/// false for NULL.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn impp_event_has_document(event: *const impp_event) -> bool {
    guard_value(false, || {
        // SAFETY: the caller's contract.
        unsafe { event_ref(event) }.and_then(document).is_some()
    })
}

/// The notification's document serialized in its package's format (PIDF, watcherinfo,
/// dialog-info XML, or message-summary text): `*body_out` is borrowed from the event,
/// `*len_out` (if not NULL) its length in bytes.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (no document: pending,
/// terminated, or not a notification).
///
/// # Safety
/// `event` is NULL or a live event; `body_out` NULL or writable; `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_body(
    event: *const impp_event,
    body_out: *mut *const c_char,
    len_out: *mut usize,
) -> impp_status {
    guard(|| {
        out_arg(body_out, "body_out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { handle(event, "event") }?;
        let doc =
            document(e).ok_or_else(|| Error::NotFound("the event carries no document".into()))?;
        let ptr = cached(&e.body, || Some(doc.to_body()));
        let len = e.body.get().map_or(0, |c| c.as_bytes().len());
        // SAFETY: checked non-NULL above; `len_out` may be NULL.
        unsafe {
            write_out(body_out, ptr);
            if !len_out.is_null() {
                write_out(len_out, len);
            }
        }
        Ok(())
    })
}

/// The notification's presence document as a new, owned handle (free it with
/// `impp_presence_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (no presence document).
///
/// # Safety
/// `event` is NULL or a live event; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_presence(
    event: *const impp_event,
    out: *mut *mut impp_presence,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let e = unsafe { handle(event, "event") }?;
        match document(e) {
            Some(Document::Presence(p)) => {
                // SAFETY: checked non-NULL above.
                unsafe { write_out(out, impp_presence::from_document(p.clone())) };
                Ok(())
            }
            _ => Err(Error::NotFound(
                "the event carries no presence document".into(),
            )),
        }
    })
}

/// Writes a new owned handle for the notification's document when it belongs to the package
/// `make` accepts, else fails with `IMPP_ERR_NOT_FOUND` naming `what`.
///
/// # Safety
/// `event` is NULL or a live event; `out` NULL or writable.
unsafe fn document_handle<T>(
    event: *const impp_event,
    out: *mut *mut T,
    what: &str,
    make: impl FnOnce(&Document) -> Option<*mut T>,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the contract above.
        let e = unsafe { handle(event, "event") }?;
        let h = document(e)
            .and_then(make)
            .ok_or_else(|| Error::NotFound(format!("the event carries no {what}")))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, h) };
        Ok(())
    })
}

/// The notification's watcher information document (`presence.winfo` package) as a new,
/// owned handle (free it with `impp_winfo_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (no watcherinfo document).
///
/// # Safety
/// `event` is NULL or a live event; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_winfo(
    event: *const impp_event,
    out: *mut *mut impp_winfo,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        document_handle(event, out, "watcherinfo document", |d| match d {
            Document::Winfo(w) => Some(impp_winfo::from_document(w.clone())),
            _ => None,
        })
    }
}

/// The notification's dialog-info document (`dialog` package) as a new, owned handle (free
/// it with `impp_dialog_info_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (no dialog-info document).
///
/// # Safety
/// `event` is NULL or a live event; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_dialog_info(
    event: *const impp_event,
    out: *mut *mut impp_dialog_info,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        document_handle(event, out, "dialog-info document", |d| match d {
            Document::Dialog(x) => Some(impp_dialog_info::from_document(x.clone())),
            _ => None,
        })
    }
}

/// The notification's message summary (`message-summary` package) as a new, owned handle
/// (free it with `impp_message_summary_free`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (no message summary).
///
/// # Safety
/// `event` is NULL or a live event; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_event_message_summary(
    event: *const impp_event,
    out: *mut *mut impp_message_summary,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        document_handle(event, out, "message summary", |d| match d {
            Document::MessageSummary(m) => Some(impp_message_summary::from_document(m.clone())),
            _ => None,
        })
    }
}
