//! Service capabilities of a tuple (RFC 5196 `caps:servcaps`): media booleans, MIME types
//! and duplex modes.

use std::ffi::{c_char, c_int};

use super::boundary::{guard, guard_value, handle, handle_mut, out_arg, str_arg, write_out};
use super::enum_arg;
use super::presence::{impp_presence, tuple_mut, Field};
use super::status::impp_status;
use crate::doc::caps::{Duplex, ServiceCaps, Supported};
use crate::error::{Error, Result};

/// A yes/no capability of a service (RFC 5196).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_capability {
    /// Audio sessions.
    IMPP_CAP_AUDIO = 0,
    /// Video sessions.
    IMPP_CAP_VIDEO = 1,
    /// Real-time text sessions.
    IMPP_CAP_TEXT = 2,
    /// Page-mode instant messages (SIP MESSAGE).
    IMPP_CAP_MESSAGE = 3,
    /// Application sessions.
    IMPP_CAP_APPLICATION = 4,
    /// Control sessions.
    IMPP_CAP_CONTROL = 5,
    /// Data sessions.
    IMPP_CAP_DATA = 6,
    /// The service is an automaton (IVR, answering machine).
    IMPP_CAP_AUTOMATA = 7,
    /// The service is a conference focus.
    IMPP_CAP_ISFOCUS = 8,
}

fn flag(caps: &mut ServiceCaps, cap: enum_arg::impp_capability) -> Result<&mut Option<bool>> {
    Ok(match cap {
        0 => &mut caps.audio,
        1 => &mut caps.video,
        2 => &mut caps.text,
        3 => &mut caps.message,
        4 => &mut caps.application,
        5 => &mut caps.control,
        6 => &mut caps.data,
        7 => &mut caps.automata,
        8 => &mut caps.isfocus,
        other => {
            return Err(Error::InvalidArgument(format!(
                "capability {other} is not an impp_capability value (0..8)"
            )))
        }
    })
}

/// Declares whether the tuple at `index` supports a capability (`cap`, an `impp_capability`):
/// `value` 1 = supported, 0 = not supported, -1 = say nothing (removes the element).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad `cap` or `value`), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_set_capability(
    presence: *mut impp_presence,
    index: usize,
    cap: enum_arg::impp_capability,
    value: c_int,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        let value = match value {
            1 => Some(true),
            0 => Some(false),
            -1 => None,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "capability value {other} must be 1, 0 or -1"
                )))
            }
        };
        flag(&mut ServiceCaps::default(), cap)?;
        p.tuple(index)?;
        let tuple = tuple_mut(p.edit(), index)?;
        *flag(
            tuple.service_caps.get_or_insert_with(ServiceCaps::default),
            cap,
        )? = value;
        if tuple.service_caps.as_ref() == Some(&ServiceCaps::default()) {
            tuple.service_caps = None;
        }
        Ok(())
    })
}

/// Whether the tuple at `index` supports `cap`: `*out` is 1 (yes), 0 (no) or -1 (not said).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, bad `cap`), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_capability(
    presence: *const impp_presence,
    index: usize,
    cap: enum_arg::impp_capability,
    out: *mut c_int,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let mut caps = p.tuple(index)?.service_caps.clone().unwrap_or_default();
        let value = match *flag(&mut caps, cap)? {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, value) };
        Ok(())
    })
}

fn check_mime(mime: &str) -> Result<()> {
    let ok = mime.split_once('/').is_some_and(|(t, s)| {
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        token(t) && token(s)
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "'{mime}' is not a MIME type (type/subtype)"
        )))
    }
}

/// Adds a MIME type the tuple's service supports (`caps:type`, e.g. `"text/plain"`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `type/subtype`), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `mime` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_add_media_type(
    presence: *mut impp_presence,
    index: usize,
    mime: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let mime = unsafe { str_arg(mime, "mime") }?;
        check_mime(mime)?;
        p.tuple(index)?;
        let tuple = tuple_mut(p.edit(), index)?;
        tuple
            .service_caps
            .get_or_insert_with(ServiceCaps::default)
            .types
            .push(mime.to_owned());
        Ok(())
    })
}

/// The number of MIME types of the tuple at `index`; 0 for NULL or out of range.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_media_type_count(
    presence: *const impp_presence,
    index: usize,
) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }
            .and_then(|p| p.doc.tuples.get(index))
            .and_then(|t| t.service_caps.as_ref())
            .map_or(0, |c| c.types.len())
    })
}

/// MIME type `type_index` of the tuple at `index`, borrowed from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_media_type(
    presence: *const impp_presence,
    index: usize,
    type_index: usize,
    out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let types = p
            .tuple(index)?
            .service_caps
            .as_ref()
            .map_or(&[][..], |c| &c.types[..]);
        let mime = types.get(type_index).ok_or_else(|| {
            Error::NotFound(format!(
                "media type index {type_index} is out of range ({} types)",
                types.len()
            ))
        })?;
        let s = p.borrow_str(Field::MediaType(index, type_index), mime)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, s) };
        Ok(())
    })
}

/// Declares a duplex mode (`"full"`, `"half"`, `"receive-only"`, `"send-only"`) as supported
/// (`supported` true) or not supported by the tuple's service.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, unknown mode), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `mode` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_add_duplex(
    presence: *mut impp_presence,
    index: usize,
    mode: *const c_char,
    supported: bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let mode = unsafe { str_arg(mode, "mode") }?;
        let duplex = Duplex::from_name(mode).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "'{mode}' is not a duplex mode ({})",
                Duplex::NAMES.join(", ")
            ))
        })?;
        p.tuple(index)?;
        let tuple = tuple_mut(p.edit(), index)?;
        let list = tuple
            .service_caps
            .get_or_insert_with(ServiceCaps::default)
            .duplex
            .get_or_insert_with(Supported::default);
        list.supported.retain(|d| *d != duplex);
        list.notsupported.retain(|d| *d != duplex);
        if supported {
            list.supported.push(duplex);
        } else {
            list.notsupported.push(duplex);
        }
        Ok(())
    })
}

/// Whether the tuple's service supports a duplex mode: `*out` is 1 (listed as supported), 0
/// (listed as not supported) or -1 (not said).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, unknown mode), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `mode` NULL or a NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_tuple_duplex(
    presence: *const impp_presence,
    index: usize,
    mode: *const c_char,
    out: *mut c_int,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let mode = unsafe { str_arg(mode, "mode") }?;
        let duplex = Duplex::from_name(mode)
            .ok_or_else(|| Error::InvalidArgument(format!("'{mode}' is not a duplex mode")))?;
        let list = p
            .tuple(index)?
            .service_caps
            .as_ref()
            .and_then(|c| c.duplex.as_ref());
        let value = match list {
            Some(l) if l.supported.contains(&duplex) => 1,
            Some(l) if l.notsupported.contains(&duplex) => 0,
            _ => -1,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, value) };
        Ok(())
    })
}
