//! A presentity's watcher log, for watcher information (RFC 3857/3858). Each change of one
//! of its (non-winfo) subscriptions gets a sequence number, so every winfo subscriber can be
//! sent exactly the changes since its last notification.
//!
//! The log holds no copy of its watchers: each subscription keeps its own watcher status
//! and last event, a full document is made from the presentity's subscriptions, and only
//! the changes some winfo subscriber was not yet told are kept (none while nobody watches
//! the watchers).
#![forbid(unsafe_code)]

use super::events::{SubscriptionId, SubscriptionState};
use super::package::Package;
use super::subscription::Subscription;
use crate::doc::winfo::{Watcher, WatcherEvent, WatcherList, WatcherStatus, Watcherinfo};
use crate::doc::DocState;
use crate::uri::Uri;

/// The recent changes to the watchers of one presentity.
#[derive(Default)]
pub(crate) struct WatcherLog {
    /// (change number, subscription), the latest change of each subscription only.
    changes: Vec<(u64, SubscriptionId)>,
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

/// The watcher status of a subscription in `state` after `event`.
pub(crate) fn status_of_event(state: SubscriptionState, event: WatcherEvent) -> WatcherStatus {
    status_of(state, event)
}

impl WatcherLog {
    /// Records `event` for subscription `sub` (its current state gives the status). The
    /// change is kept for partial documents when `watched` (someone watches the watchers).
    pub(crate) fn record(&mut self, sub: &mut Subscription, event: WatcherEvent, watched: bool) {
        self.seq += 1;
        sub.winfo_status = status_of(sub.state, event);
        sub.winfo_event = event;
        if let Some(i) = self.changes.iter().position(|c| c.1 == sub.id) {
            self.changes.remove(i);
        }
        if watched {
            self.changes.push((self.seq, sub.id));
        }
    }

    /// Drops an ended subscription from the log (after its last change was told).
    pub(crate) fn forget(&mut self, id: SubscriptionId) {
        self.changes.retain(|c| c.1 != id);
    }

    /// Forgets the changes up to change number `told` (every winfo subscriber was told
    /// them); all of them when `None` (nobody needs them).
    pub(crate) fn trim(&mut self, told: Option<u64>) {
        match told {
            Some(seen) => self.changes.retain(|c| c.0 > seen),
            None => self.changes.clear(),
        }
    }

    /// The latest change number.
    pub(crate) fn last_change(&self) -> u64 {
        self.seq
    }

    /// The watcher-info document for `resource`: every current watcher (`since` = None, a
    /// full document) or the watchers changed after change number `since` (partial).
    /// `watchers` are the presentity's (non-winfo) subscriptions, in subscription order.
    pub(crate) fn document(
        &self,
        resource: &Uri,
        version: u32,
        since: Option<u64>,
        now: u64,
        watchers: &[&Subscription],
    ) -> Watcherinfo {
        let mut changed: Vec<SubscriptionId> = match since {
            Some(seen) => self
                .changes
                .iter()
                .filter(|c| c.0 > seen)
                .map(|c| c.1)
                .collect(),
            None => Vec::new(),
        };
        changed.sort_unstable();
        let mut lists: Vec<WatcherList> = Vec::new();
        for e in watchers {
            let include = match since {
                None => matches!(
                    e.winfo_status,
                    WatcherStatus::Pending | WatcherStatus::Active
                ),
                Some(_) => changed.binary_search(&e.id).is_ok(),
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
            let mut w = Watcher::new(
                e.id.to_string(),
                e.watcher.to_string(),
                e.winfo_status,
                e.winfo_event,
            );
            w.duration_subscribed = Some(now.saturating_sub(e.first_subscribed) / 1000);
            if matches!(
                e.winfo_status,
                WatcherStatus::Pending | WatcherStatus::Active
            ) {
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
