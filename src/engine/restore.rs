//! Restart: what the store kept, split among the shards that own it.
//!
//! An engine opened on a store that holds state takes it back: rules, endpoints,
//! publications and stored messages each go to the shard of their presentity or user (the
//! shard count may differ from the last run). Soft state whose time passed while the engine
//! was down expires at once, with the normal events (a publication's `PublicationExpired`,
//! an endpoint's `EndpointExpired`, a message's `Failed(Expired)` for its sender); messages
//! for users with an endpoint still logged in are delivered at once.
#![forbid(unsafe_code)]

use super::authorization::{presentity_key, AuthRule};
use super::shard::shard_of;
use crate::store::{EndpointRecord, PublicationRecord, Snapshot, StoredMessage};
use crate::uri::Uri;

/// One shard's share of a [`Snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) rules: Vec<AuthRule>,
    /// In id order.
    pub(crate) messages: Vec<StoredMessage>,
    pub(crate) endpoints: Vec<EndpointRecord>,
    /// In presentity, then recency order.
    pub(crate) publications: Vec<PublicationRecord>,
}

/// Splits a snapshot among `workers` shards (orders within each kind are kept).
pub(crate) fn split(snapshot: Snapshot, workers: usize) -> Vec<Restored> {
    let mut parts: Vec<Restored> = (0..workers).map(|_| Restored::default()).collect();
    let shard = |uri: &Uri| shard_of(&presentity_key(uri), workers);
    for rule in snapshot.rules {
        let s = shard(&rule.presentity);
        parts[s].rules.push(rule);
    }
    for m in snapshot.messages {
        let s = shard(&m.recipient);
        parts[s].messages.push(m);
    }
    for e in snapshot.endpoints {
        let s = shard(&e.user);
        parts[s].endpoints.push(e);
    }
    for p in snapshot.publications {
        let s = shard(&p.presentity);
        parts[s].publications.push(p);
    }
    parts
}
