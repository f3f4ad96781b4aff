//! Durable state (DESIGN §4) behind one trait, [`Store`].
//!
//! Presence itself is soft state; what must survive a restart is kept through a `Store`:
//! authorization rules, resource lists, stored instant messages (for recipients who were offline),
//! endpoints (logged-in devices, SIP registrations), publications not yet expired,
//! subscriptions whose watcher is remote, the list server's dialogs, and user credentials for
//! digest authentication.
//!
//! Every change is one [`Write`], given to [`Store::submit`]. Writes are applied in the
//! order they were submitted; each may carry a [`Completion`] that is called once the write
//! is durable (for a persistent store: on disk) or failed. The engine waits for the
//! completion where it acknowledges durability (a stored message's `stored` outcome, a rule
//! change, a resource list, a credential) and writes the rest behind (publications, subscriptions,
//! list dialogs and endpoints are soft state: a crash may lose their last changes — for
//! [`SqliteStore`], those of its write-behind window, 100 ms by default — never an
//! acknowledged message or rule). [`Store::load`] returns everything at start-up.
//!
//! Contract for every implementation:
//!
//! - a completion called with `Ok` means the write is durable;
//! - writes are applied in submission order, and a read ([`Store::load`]) sees every write
//!   submitted before it;
//! - `Save*` replaces the item with the same identity, never duplicates it;
//! - `Delete*` of an item that is not stored is `Ok` (deleting is idempotent);
//! - [`Store::load`] returns every stored item in a deterministic order (documented on each
//!   field of [`Snapshot`]);
//! - methods take `&self` and may be called from any thread (`Send + Sync`); a completion may
//!   run on the store's own thread or in the caller, so it must not block.
//!
//! [`SqliteStore`] is the default durable store: one SQLite file in WAL mode, with group
//! commit. [`MemoryStore`] keeps everything in memory, for tests and embedders that want no
//! persistence.
#![forbid(unsafe_code)]

pub mod memory;
pub mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::error::{Error, Result};
use crate::model::list::ResourceList;
use crate::model::package::Package;
use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
use crate::uri::Uri;

/// An instant message kept for a recipient who had no endpoint online. Identity: `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message id the sender was given; also the delivery order (ids grow).
    pub id: u64,
    /// Who sent it.
    pub sender: Uri,
    /// Who it is for.
    pub recipient: Uri,
    /// Its MIME type, as given.
    pub content_type: String,
    /// Its body: bytes, not assumed text.
    pub body: Vec<u8>,
    /// The recipient's endpoint it was addressed to, if one was named.
    pub endpoint: Option<String>,
    /// The message this one answers (an application's reference), if any.
    pub in_reply_to: Option<String>,
    /// When it was sent, in Unix milliseconds.
    pub sent_at: u64,
    /// When it expires undelivered, in Unix milliseconds.
    pub expires_at: u64,
    /// The message as the sender's transport received it (SIP: the MESSAGE request's
    /// bytes), so that it is relayed later as it was written; opaque to the store.
    pub wire: Option<Vec<u8>>,
}

/// A logged-in device of a user (a local login or a SIP registration). Identity: `user`
/// (by [`crate::model::key::presentity_key`]) and `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// The user (address of record).
    pub user: Uri,
    /// The endpoint's id, unique among the user's endpoints.
    pub endpoint: String,
    /// Where the endpoint is reached (a SIP contact URI), if the login named one.
    pub contact: Option<String>,
    /// When the login ends unless refreshed, in Unix milliseconds.
    pub expires_at: u64,
}

/// A publication not yet expired. Identity: `etag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationRecord {
    /// Its current entity tag.
    pub etag: String,
    /// Whose presence it is.
    pub presentity: Uri,
    /// The package of its document.
    pub package: Package,
    /// The document, serialized.
    pub body: String,
    /// When it expires unless refreshed, in Unix milliseconds.
    pub expires_at: u64,
    /// Recency among the presentity's publications (higher is newer; composition uses it).
    pub seq: u64,
}

/// A subscription whose watcher is remote (a SIP dialog), kept so its notifications still
/// reach the watcher after a restart. Identity: `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The subscription id.
    pub id: u64,
    /// Who watches.
    pub watcher: Uri,
    /// Who is watched.
    pub presentity: Uri,
    /// The event package.
    pub package: Package,
    /// When it expires unless refreshed, in Unix milliseconds.
    pub expires_at: u64,
    /// The filter document (RFC 4661), serialized, if the watcher gave one.
    pub filter: Option<String>,
    /// Minimum time between notifications, in milliseconds.
    pub min_interval_ms: u64,
    /// What authorization decided for it (`allow`, `polite-block` or `confirm`: pending).
    pub action: AuthAction,
    /// Where notifications go: the remote target's own serialization (the SIP dialog),
    /// opaque to the store.
    pub target: Vec<u8>,
}

/// A dialog of the list server (RFC 4662: one watcher's subscription to a resource list),
/// kept so that the watcher is still notified in its dialog after a restart. Identity: `id`.
///
/// The list server's dialogs have a table of their own rather than riding on its back
/// subscriptions' targets: a list's resources are watched through engine subscriptions
/// shared by every watcher of a resource, which are not stored one per dialog, so nothing
/// else would keep the dialog. The store knows only what it needs to keep and expire the
/// row (who, which package, until when); the rest is the list server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDialogRecord {
    /// The list server's id of the dialog (unique among its dialogs).
    pub id: u64,
    /// Who subscribed to the list.
    pub watcher: Uri,
    /// The event package the list was subscribed for.
    pub package: Package,
    /// When the dialog ends unless refreshed, in Unix milliseconds.
    pub expires_at: u64,
    /// The list server's own serialization of the dialog (the list's URI, its flags, the SIP
    /// dialog), opaque to the store.
    pub record: Vec<u8>,
}

/// A user's credentials for digest authentication: the password is never kept, only the
/// digests `H(user:realm:password)` (RFC 7616 "HA1") for each algorithm. Identity: `user`
/// (by [`crate::model::key::presentity_key`]). Its `Debug` form hides the HA1 values (each is
/// as good as the password for this realm).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user (address of record).
    pub user: Uri,
    /// The digest realm the HA1 values were computed for.
    pub realm: String,
    /// HA1 with MD5, lower-case hex.
    pub ha1_md5: String,
    /// HA1 with SHA-256, lower-case hex.
    pub ha1_sha256: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("realm", &self.realm)
            .field("ha1_md5", &"<hidden>")
            .field("ha1_sha256", &"<hidden>")
            .finish()
    }
}

impl Credential {
    /// The credentials of `user` in `realm` for `password`: HA1 = `H(username:realm:password)`
    /// (RFC 7616 §3.4.2) with MD5 and with SHA-256, as lower-case hex. The username is the
    /// user part of the URI ([`Uri::user`]; the number of a `tel` URI), or empty for a URI
    /// without one. The password itself is not kept.
    pub fn new(user: Uri, realm: &str, password: &str) -> Credential {
        use md5::Digest as _;
        let username = user.user().unwrap_or("");
        let secret = format!("{username}:{realm}:{password}");
        let ha1_md5 = hex(&md5::Md5::digest(secret.as_bytes()));
        let ha1_sha256 = hex(&sha2::Sha256::digest(secret.as_bytes()));
        Credential {
            user,
            realm: realm.to_owned(),
            ha1_md5,
            ha1_sha256,
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Adds or replaces a rule (identity as [`crate::model::rule`] defines it).
    SaveRule(AuthRule),
    /// Deletes the rule of a presentity for a watcher or domain.
    DeleteRule {
        /// The presentity.
        presentity: Uri,
        /// The watcher or domain the rule matches.
        watcher: WatcherMatch,
    },
    /// Adds or replaces a stored message.
    SaveMessage(StoredMessage),
    /// Deletes a stored message (delivered or expired).
    DeleteMessage(u64),
    /// Adds or replaces an endpoint.
    SaveEndpoint(EndpointRecord),
    /// Deletes an endpoint (logged out or expired).
    DeleteEndpoint {
        /// The user.
        user: Uri,
        /// The endpoint's id.
        endpoint: String,
    },
    /// Adds or replaces a publication; `previous_etag`, when given, is deleted in the same
    /// write (a refresh or modify gives the publication a new tag).
    SavePublication {
        /// The publication as it is now.
        publication: PublicationRecord,
        /// The tag it had before, if it changed.
        previous_etag: Option<String>,
    },
    /// Deletes a publication (removed or expired).
    DeletePublication(String),
    /// Adds or replaces a subscription of a remote watcher.
    SaveSubscription(SubscriptionRecord),
    /// Deletes a subscription (ended).
    DeleteSubscription(u64),
    /// Adds or replaces a user's credentials.
    SaveCredential(Credential),
    /// Deletes a user's credentials.
    DeleteCredential(Uri),
    /// Adds or replaces a resource list (identity: [`ResourceList::key`]), entries and all.
    /// The store keeps it as given: checking it is the engine's (`model::list`).
    SaveList(ResourceList),
    /// Deletes a resource list, by the key of its URI.
    DeleteList(Uri),
    /// Adds or replaces a dialog of the list server (identity: its `id`).
    SaveListDialog(ListDialogRecord),
    /// Deletes a dialog of the list server (ended or expired), by its id.
    DeleteListDialog(u64),
}

/// Called once a write is durable (`Ok`) or has failed.
pub type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// Everything a store holds, as [`Store::load`] returns it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Rules by presentity key, then watcher rules by watcher key, then domain rules by domain
    /// (the order of their identity, [`crate::model::rule`]; the engine lists them alike).
    pub rules: Vec<AuthRule>,
    /// Stored messages by id (the order they were sent).
    pub messages: Vec<StoredMessage>,
    /// Endpoints by user key, then endpoint id.
    pub endpoints: Vec<EndpointRecord>,
    /// Publications by presentity key, then `seq`.
    pub publications: Vec<PublicationRecord>,
    /// Subscriptions by id.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// Credentials by user key.
    pub credentials: Vec<Credential>,
    /// Resource lists by list key ([`ResourceList::key`]), each with its entries in order.
    pub lists: Vec<ResourceList>,
    /// The list server's dialogs by id.
    pub list_dialogs: Vec<ListDialogRecord>,
}

/// Where the engine keeps what must survive a restart.
pub trait Store: Send + Sync {
    /// Queues `write`; `done`, if given, is called once it is durable or has failed. Writes
    /// are applied in submission order.
    fn submit(&self, write: Write, done: Option<Completion>);

    /// Everything stored, seeing every write submitted before the call.
    fn load(&self) -> Result<Snapshot>;

    /// Whether this store wants soft state (publications, endpoints, subscriptions of
    /// remote watchers, the list server's dialogs). A store that answers no is given none of it, and the engine saves
    /// the work of serializing every change (the default store of an engine, a
    /// [`MemoryStore::volatile`], keeps nothing across engines anyway).
    fn keeps_soft_state(&self) -> bool {
        true
    }

    /// Waits until every write submitted before the call is applied and its completion has
    /// returned. (The default reads everything; stores override it with a cheap barrier.)
    fn flush(&self) -> Result<()> {
        self.load().map(drop)
    }

    /// Submits `write` and waits until it is durable.
    fn write(&self, write: Write) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(
            write,
            Some(Box::new(move |result| {
                let _ = tx.send(result);
            })),
        );
        rx.recv()
            .map_err(|_| Error::Storage("the store stopped before answering".into()))?
    }

    /// Stores `rule` and waits until it is durable (see [`Write::SaveRule`]).
    fn save_rule(&self, rule: &AuthRule) -> Result<()> {
        self.write(Write::SaveRule(rule.clone()))
    }

    /// Deletes the rule of `presentity` for `watcher`, if stored, and waits until the
    /// deletion is durable.
    fn delete_rule(&self, presentity: &Uri, watcher: &WatcherMatch) -> Result<()> {
        self.write(Write::DeleteRule {
            presentity: presentity.clone(),
            watcher: watcher.clone(),
        })
    }

    /// Every stored rule (see [`Snapshot::rules`]).
    fn load_rules(&self) -> Result<Vec<AuthRule>> {
        Ok(self.load()?.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ha1_matches_rfc_7616_example() {
        // RFC 7616 §3.9.1: user "Mufasa", realm "http-auth@example.org", password
        // "Circle of Life". Expected values computed with Python's hashlib:
        // hashlib.md5(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest(), and the
        // same with sha256.
        let user = Uri::parse("sip:Mufasa@example.org").unwrap();
        let c = Credential::new(user.clone(), "http-auth@example.org", "Circle of Life");
        assert_eq!(c.user, user);
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.ha1_md5, "3d78807defe7de2157e2b0b6573a855f");
        assert_eq!(
            c.ha1_sha256,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn credential_depends_on_user_realm_and_password() {
        let user = Uri::parse("sip:Mufasa@example.org").unwrap();
        let base = Credential::new(user.clone(), "r", "p");
        let other_user = Credential::new(Uri::parse("sip:mufasa@example.org").unwrap(), "r", "p");
        assert_ne!(base.ha1_md5, other_user.ha1_md5);
        assert_ne!(
            base.ha1_md5,
            Credential::new(user.clone(), "r2", "p").ha1_md5
        );
        assert_ne!(base.ha1_sha256, Credential::new(user, "r", "p2").ha1_sha256);
        assert_eq!(base.ha1_md5.len(), 32);
        assert_eq!(base.ha1_sha256.len(), 64);
    }
}
