//! A presentity's watcher log: who subscribes to it and what happened to each subscription,
//! for watcher information (RFC 3857/3858). Each change gets a sequence number, so every
//! winfo subscriber can be sent exactly the changes since its last notification.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::events::{SubscriptionId, SubscriptionState};
use super::package::Package;
use super::subscription::Subscription;
use crate::doc::winfo::{Watcher, WatcherEvent, WatcherList, WatcherStatus, Watcherinfo};
use crate::doc::DocState;
use crate::uri::Uri;

struct Entry {
    id: SubscriptionId,
    watcher: Arc<Uri>,
    package: Package,
    status: WatcherStatus,
    event: WatcherEvent,
    first_subscribed: u64,
    expires_at: u64,
    changed: u64,
}

/// The watchers of one presentity, current and just ended.
#[derive(Default)]
pub(crate) struct WatcherLog {
    entries: Vec<Entry>,
    seq: u64,
}

fn status_of(state: SubscriptionState, event: WatcherEvent) -> WatcherStatus {
    match state {
        SubscriptionState::Pending => WatcherStatus::Pending,
        SubscriptionState::Active => WatcherStatus::Active,
        // RFC 3857 §3.9: a pending subscription that times out waits for the presentity.
        SubscriptionState::Terminated(_) if event == WatcherEvent::Giveup => WatcherStatus::Waiting,
        SubscriptionState::Terminated(_) => WatcherStatus::Terminated,
    }
}

impl WatcherLog {
    /// Records `event` for subscription `sub` (its current state gives the status).
    pub(crate) fn record(&mut self, sub: &Subscription, event: WatcherEvent, _now: u64) {
        self.seq += 1;
        let status = status_of(sub.state, event);
        match self.entries.iter_mut().find(|e| e.id == sub.id) {
            Some(e) => {
                e.status = status;
                e.event = event;
                e.expires_at = sub.expires_at;
                e.changed = self.seq;
            }
            None => self.entries.push(Entry {
                id: sub.id,
                watcher: sub.watcher.clone(),
                package: sub.package,
                status,
                event,
                first_subscribed: sub.first_subscribed,
                expires_at: sub.expires_at,
                changed: self.seq,
            }),
        }
    }

    /// Drops an ended subscription from the log (after its last change was told).
    pub(crate) fn forget(&mut self, id: SubscriptionId) {
        self.entries.retain(|e| e.id != id);
    }

    /// The latest change number.
    pub(crate) fn last_change(&self) -> u64 {
        self.seq
    }

    /// The watcher-info document for `resource`: every current watcher (`since` = None, a
    /// full document) or the watchers changed after change number `since` (partial).
    pub(crate) fn document(
        &self,
        resource: &Uri,
        version: u32,
        since: Option<u64>,
        now: u64,
    ) -> Watcherinfo {
        let mut lists: Vec<WatcherList> = Vec::new();
        for e in &self.entries {
            let include = match since {
                None => matches!(e.status, WatcherStatus::Pending | WatcherStatus::Active),
                Some(seen) => e.changed > seen,
            };
            if !include {
                continue;
            }
            let package = e.package.as_str();
            let list = match lists.iter_mut().position(|l| l.package == package) {
                Some(i) => &mut lists[i],
                None => {
                    lists.push(WatcherList::new(resource.to_string(), package));
                    lists.last_mut().expect("pushed")
                }
            };
            let mut w = Watcher::new(e.id.to_string(), e.watcher.to_string(), e.status, e.event);
            w.duration_subscribed = Some(now.saturating_sub(e.first_subscribed) / 1000);
            if matches!(e.status, WatcherStatus::Pending | WatcherStatus::Active) {
                w.expiration = Some(e.expires_at.saturating_sub(now) / 1000);
            }
            list.watchers.push(w);
        }
        if since.is_none() && lists.is_empty() {
            lists.push(WatcherList::new(
                resource.to_string(),
                Package::Presence.as_str(),
            ));
        }
        Watcherinfo {
            version,
            state: if since.is_none() {
                DocState::Full
            } else {
                DocState::Partial
            },
            lists,
            ..Watcherinfo::default()
        }
    }
}
