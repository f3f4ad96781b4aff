//! Restart: what the store kept, split among the shards that own it.
//!
//! An engine opened on a store that holds state takes it back: rules, endpoints,
//! publications and stored messages each go to the shard of their presentity or user (the
//! shard count may differ from the last run). Soft state whose time passed while the engine
//! was down expires at once, with the normal events (a publication's `PublicationExpired`,
//! an endpoint's `EndpointExpired`, a message's `Failed(Expired)` for its sender); messages
//! for users with an endpoint still logged in are delivered at once.
#![forbid(unsafe_code)]

use super::shard::shard_of;
use crate::model::key::presentity_key;
use crate::model::rule::AuthRule;
use crate::store::{
    EndpointRecord, PublicationRecord, Snapshot, Store, StoredMessage, SubscriptionRecord, Write,
};
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
    /// Subscriptions of remote watchers, their ids fitting the shard.
    pub(crate) subscriptions: Vec<SubscriptionRecord>,
}

/// Splits a snapshot among `workers` shards (orders within each kind are kept). A
/// subscription id names its shard (`id % workers`); one that does not fit the shard of its
/// presentity (the shard count changed) is given a new id, and its old row deleted (the
/// shard writes the new one). Returns the shares and the first subscription number
/// (`id / workers`) not used.
pub(crate) fn split(snapshot: Snapshot, workers: usize, store: &dyn Store) -> (Vec<Restored>, u64) {
    let k = workers as u64;
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
    let mut next = snapshot
        .subscriptions
        .iter()
        .map(|s| s.id / k + 1)
        .max()
        .unwrap_or(1);
    for mut sub in snapshot.subscriptions {
        let s = shard(&sub.presentity);
        if sub.id % k != s as u64 {
            let new_id = next * k + s as u64;
            next += 1;
            store.submit(Write::DeleteSubscription(sub.id), None);
            sub.id = new_id;
        }
        parts[s].subscriptions.push(sub);
    }
    (parts, next)
}
