//! The C ABI: every `extern "C"` item lives here and nowhere else, and this folder is the
//! only place in the crate with `unsafe` code. `build.rs` runs cbindgen over these files to
//! write `include/impp.h`; the doc comments here are the C API reference.
//!
//! Conventions (see STYLE.md, the header's opening comment in `cbindgen.toml`, and the
//! README's "C API conventions"; `tests/header_conventions.rs` checks them on the header):
//! functions are `impp_<object>_<verb>`; fallible functions return an [`impp_status`] and
//! write output parameters (always last) only on success; the detail of a failure is in the
//! thread-local [`impp_last_error`] message; no panic crosses the boundary; enum arguments
//! are typed with their enum in the header (see [`enum_arg`]); strings in are borrowed
//! NUL-terminated UTF-8; strings out are either borrowed from a handle (lifetime stated per
//! function) or owned and freed with [`impp_string_free`].

#![allow(non_camel_case_types)]

/// The types of enum arguments: in the header each is the enum of the same name; here each
/// is the `int` that a C enum is passed as.
///
/// cbindgen resolves a type by the last segment of its path, so a parameter declared as
/// `enum_arg::impp_auth_action` is written into the header as `enum impp_auth_action` (the
/// enum defined in `config.rs`). Rust, though, receives a plain `c_int`, and every function
/// checks it: a C caller may pass any integer in an enum (C allows it), and a value outside a
/// Rust `#[repr(C)]` enum would be undefined behaviour the moment it arrived, not an
/// `IMPP_ERR_INVALID_ARGUMENT`. A C enum whose values fit in an `int` is passed as an `int`
/// on every platform Rust supports (the tests below check the sizes); the library's
/// functions already return its enums as `#[repr(C)]` Rust enums on the same assumption.
///
/// This module sits in `mod.rs`, which `build.rs` does not give to cbindgen, so these
/// aliases never reach the header themselves (they would clash with the enums).
pub(crate) mod enum_arg {
    use std::ffi::c_int;

    pub(crate) type impp_auth_action = c_int;
    pub(crate) type impp_basic = c_int;
    pub(crate) type impp_capability = c_int;
    pub(crate) type impp_composing_state = c_int;
    pub(crate) type impp_delivery_outcome = c_int;
    pub(crate) type impp_dialog_direction = c_int;
    pub(crate) type impp_dialog_event = c_int;
    pub(crate) type impp_dialog_state = c_int;
    pub(crate) type impp_failure_reason = c_int;
    pub(crate) type impp_federation = c_int;
    pub(crate) type impp_log_level = c_int;
    pub(crate) type impp_migration = c_int;
    pub(crate) type impp_reason = c_int;
    pub(crate) type impp_sip_counter = c_int;
    pub(crate) type impp_stat = c_int;
    pub(crate) type impp_status = c_int;
    pub(crate) type impp_user_input = c_int;
}

mod account;
mod boundary;
mod config;
mod dialog;
mod engine;
mod event;
mod event_message;
mod filter;
mod iscomposing;
mod log;
mod message_options;
mod messaging;
mod mwi;
mod presence;
mod presence_caps;
mod presence_person;
mod resource_list;
mod rule_list;
mod sip;
mod status;
mod subscribe_options;
mod subscription_list;
mod winfo;

pub use account::*;
pub use config::*;
pub use dialog::*;
pub use engine::*;
pub use event::*;
pub use event_message::*;
pub use filter::*;
pub use iscomposing::*;
pub use log::*;
pub use message_options::*;
pub use messaging::*;
pub use mwi::*;
pub use presence::*;
pub use presence_caps::*;
pub use presence_person::*;
pub use resource_list::*;
pub use rule_list::*;
pub use sip::*;
pub use status::*;
pub use subscribe_options::*;
pub use subscription_list::*;
pub use winfo::*;

#[cfg(test)]
mod tests {
    /// Every enum taken through [`super::enum_arg`] is passed as an `int` (see there).
    #[test]
    fn enum_arguments_are_int_sized() {
        use std::ffi::c_int;
        use std::mem::{align_of, size_of};
        macro_rules! int_sized {
            ($($t:ty),*) => {$(
                assert_eq!(size_of::<$t>(), size_of::<c_int>(), stringify!($t));
                assert_eq!(align_of::<$t>(), align_of::<c_int>(), stringify!($t));
            )*};
        }
        int_sized!(
            super::impp_auth_action,
            super::impp_basic,
            super::impp_capability,
            super::impp_composing_state,
            super::impp_delivery_outcome,
            super::impp_dialog_direction,
            super::impp_dialog_event,
            super::impp_dialog_state,
            super::impp_failure_reason,
            super::impp_federation,
            super::impp_log_level,
            super::impp_reason,
            super::impp_sip_counter,
            super::impp_stat,
            super::impp_status,
            super::impp_user_input
        );
    }

    /// The committed header must equal what `build.rs` generates from this folder.
    /// Regenerate it with `IMPP_UPDATE_HEADER=1 cargo build`.
    #[test]
    fn committed_header_matches_generated() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/impp.h"));
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/impp.h"))
                .expect("include/impp.h is missing: run IMPP_UPDATE_HEADER=1 cargo build");
        assert!(
            committed == generated,
            "include/impp.h differs from the generated header: run IMPP_UPDATE_HEADER=1 cargo build and commit it"
        );
    }
}
