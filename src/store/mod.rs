//! Durable state (DESIGN §4) behind one trait, [`Store`].
//!
//! Presence itself is soft state; what must survive a restart is kept through a `Store`:
//! for now the authorization rules. Publications not yet expired, subscriptions of remote
//! watchers, stored instant messages and registrations come later, each as its own group of
//! methods of the same shape (`save_*` that inserts or replaces by the item's identity,
//! `delete_*` by identity, `load_*` that returns everything at start-up), so a store stays
//! one object with one transaction scope per call.
//!
//! Contract for every implementation:
//!
//! - a call that returned `Ok` is durable (for a persistent store: on disk);
//! - `save_*` replaces the item with the same identity, never duplicates it;
//! - `delete_*` of an item that is not stored is `Ok` (deleting is idempotent);
//! - `load_*` returns every stored item in a deterministic order;
//! - methods take `&self` and may be called from any thread (`Send + Sync`).
//!
//! [`SqliteStore`] is the default durable store: one SQLite file in WAL mode, with group
//! commit. [`MemoryStore`] keeps everything in memory, for tests and embedders that want no
//! persistence.
#![forbid(unsafe_code)]

pub mod memory;
pub mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::engine::authorization::{AuthRule, WatcherMatch};
use crate::error::Result;
use crate::uri::Uri;

/// Where the engine keeps what must survive a restart.
pub trait Store: Send + Sync {
    /// Stores `rule`, replacing the stored rule of the same presentity for the same watcher
    /// or domain (identity as [`crate::engine::authorization::RuleBook::set`] defines it).
    fn save_rule(&self, rule: &AuthRule) -> Result<()>;

    /// Deletes the rule of `presentity` for `watcher`, if stored (identity as
    /// [`crate::engine::authorization::RuleBook::remove`] defines it).
    fn delete_rule(&self, presentity: &Uri, watcher: &WatcherMatch) -> Result<()>;

    /// Every stored rule.
    fn load_rules(&self) -> Result<Vec<AuthRule>>;
}
