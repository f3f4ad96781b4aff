//! libimpp: a presence and instant-messaging engine.
//!
//! This crate is the Rust API; `src/ffi` wraps it as the C ABI declared in `include/impp.h`.
//! Everything outside `ffi` is safe Rust.
//!
//! The modules are layers, listed from the top; each imports only the ones below it:
//!
//! | module | what |
//! | --- | --- |
//! | `ffi` | the C ABI (hidden from these docs; the header is its reference) |
//! | [`sip`] | SIP SIMPLE: codec, transports, transactions, the server and agent roles |
//! | [`engine`] | the threaded core: shards, publications, subscriptions, authorization, events |
//! | [`store`] | durable state behind one trait: SQLite or in memory |
//! | [`model`] | the vocabulary every layer shares: keys, rules, packages, ids |
//! | [`doc`] | the documents (PIDF, watcher info, filters, dialog, MWI, ...) and their codecs |
//! | [`uri`] | URIs: parse, canonical form, comparison |
//! | [`error`], [`log`] | the error type every layer returns; the library's log lines |
//!
//! ```
//! use impp::doc::pidf::{Basic, Presence, Tuple};
//! use impp::doc::Limits;
//!
//! let xml = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@example.test">
//!   <tuple id="phone"><status><basic>open</basic></status></tuple></presence>"#;
//! let mut doc = Presence::parse(xml, &Limits::DEFAULT)?;
//! assert!(doc.is_open());
//!
//! doc.tuples.push(Tuple::new("desk", Basic::Closed));
//! let again = Presence::parse(&doc.to_xml(), &Limits::DEFAULT)?;
//! assert_eq!(again, doc);
//! # Ok::<(), impp::Error>(())
//! ```

pub mod doc;
pub mod engine;
pub mod error;
pub mod log;
pub mod model;
pub mod sip;
pub mod store;
pub mod uri;
pub mod xcap;

#[doc(hidden)]
pub mod ffi;

pub use error::{Error, Result};

/// The library version, as `major.minor.patch`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI version: bumped whenever a change breaks binary compatibility of the C API.
pub const ABI_VERSION: u32 = 3;
