//! The C ABI: every `extern "C"` item lives here and nowhere else, and this folder is the
//! only place in the crate with `unsafe` code. `build.rs` runs cbindgen over these files to
//! write `include/impp.h`; the doc comments here are the C API reference.
//!
//! Conventions (see STYLE.md): functions are `impp_<object>_<verb>`; fallible functions
//! return an [`impp_status`] and write output parameters (always last) only on success; the
//! detail of a failure is in the thread-local [`impp_last_error`] message; no panic crosses
//! the boundary; strings in are borrowed NUL-terminated UTF-8; strings out are either
//! borrowed from a handle (lifetime stated per function) or owned and freed with
//! [`impp_string_free`].

#![allow(non_camel_case_types)]

mod boundary;
mod config;
mod dialog;
mod engine;
mod event;
mod event_message;
mod filter;
mod iscomposing;
mod log;
mod messaging;
mod mwi;
mod presence;
mod presence_caps;
mod presence_person;
mod sip;
mod status;
mod winfo;

pub use config::*;
pub use dialog::*;
pub use engine::*;
pub use event::*;
pub use event_message::*;
pub use filter::*;
pub use iscomposing::*;
pub use log::*;
pub use messaging::*;
pub use mwi::*;
pub use presence::*;
pub use presence_caps::*;
pub use presence_person::*;
pub use sip::*;
pub use status::*;
pub use winfo::*;

#[cfg(test)]
mod tests {
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
