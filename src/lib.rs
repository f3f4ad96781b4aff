//! libimpp: a presence and instant-messaging engine.
//!
//! This crate is the Rust API; `src/ffi` wraps it as the C ABI declared in `include/impp.h`.
//! Everything outside `ffi` is safe Rust.

pub mod doc;
pub mod error;
pub mod uri;

#[doc(hidden)]
pub mod ffi;

pub use error::{Error, Result};

/// The library version, as `major.minor.patch`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI version: bumped whenever a change breaks binary compatibility of the C API.
pub const ABI_VERSION: u32 = 1;
