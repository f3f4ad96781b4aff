//! The vocabulary every layer shares: the names that the engine, the store, the SIP layer and
//! the C API all speak, kept below the engine so that `store` and `sip` never reach into
//! engine internals (DESIGN §2). Everything here is plain data and pure functions: no
//! threads, no I/O, no state beyond the values themselves.
//!
//! | module | what |
//! | --- | --- |
//! | [`key`] | canonical keys: [`presentity_key`] (and [`watcher_key`]) name a party whatever URI scheme reaches it |
//! | [`rule`] | authorization rules as data: [`AuthAction`], [`WatcherMatch`], [`AuthRule`], and when a match covers a watcher |
//! | [`list`] | resource lists as data: [`ResourceList`], its entries, the bounds and rules between lists ([`list::ListTable`]), and their expansion |
//! | [`package`] | event packages ([`Package`]: names, content types) and their documents ([`Document`]) |
//! | [`id`] | ids that cross layers: [`SubscriptionId`] |
//! | `id_table` | a dense table of values by subscription id (the engine's subscriptions, a SIP server's dialogs) |
//!
//! The engine re-exports these names where they always were (`engine::AuthRule`,
//! `engine::Package`, `engine::authorization::presentity_key`, ...); the engine's own
//! evaluation of rules, `engine::authorization::RuleBook`, stays in the engine.
#![forbid(unsafe_code)]

pub mod id;
pub(crate) mod id_table;
pub mod key;
pub mod list;
pub mod package;
pub mod rule;
pub(crate) mod snug;

pub use id::SubscriptionId;
pub use key::{presentity_key, watcher_key};
pub use list::{ListEntry, Resource, ResourceList};
pub use package::{Document, Package};
pub use rule::{AuthAction, AuthRule, WatcherMatch};
