//! A presentity's watcher log, for watcher information (RFC 3857/3858). Each change of one
//! of its (non-winfo) subscriptions gets a sequence number, so every winfo subscriber can be
//! sent exactly the changes since its last notification.
//!
//! The log holds no copy of its watchers: each subscription (and each member of a shared
//! subscription, [`super::member`]) keeps its own watcher status and last event, a full
//! document is made from the presentity's subscriptions and members, and only
//! the changes some winfo subscriber was not yet told are kept (none while nobody watches
//! the watchers).
#![forbid(unsafe_code)]

use super::subscription::Subscription;
use crate::doc::winfo::{Watcher, WatcherEvent, WatcherList, WatcherStatus, Watcherinfo};
use crate::doc::DocState;
use crate::model::id::SubscriptionId;
use crate::model::package::Package;
use crate::uri::Uri;

/// One watcher as a document shows it: a subscription or a member of a shared one.
pub(crate) struct WatcherRow<'a> {
    pub(crate) id: SubscriptionId,
    pub(crate) watcher: &'a Uri,
    pub(crate) package: Package,
    pub(crate) status: WatcherStatus,
    pub(crate) event: WatcherEvent,
    pub(crate) age_s: u64,
    /// Seconds left, for a subscription (a member has no expiry of its own).
    pub(crate) expires_in_s: Option<u64>,
}

impl<'a> WatcherRow<'a> {
    /// The row of subscription `sub` at `now`.
    pub(crate) fn of(sub: &'a Subscription, now: u64) -> WatcherRow<'a> {
        WatcherRow {
            id: sub.id,
            watcher: &sub.watcher,
            package: sub.package,
            status: sub.winfo_status(),
            event: sub.winfo_event(),
            age_s: sub.age_s(now),
            expires_in_s: Some(sub.expires_at.saturating_sub(now) / 1000),
        }
    }
}

/// The recent changes to the watchers of one presentity.
#[derive(Default)]
pub(crate) struct WatcherLog {
    /// (change number, subscription), the latest change of each subscription only.
    changes: Vec<(u64, SubscriptionId)>,
    seq: u64,
}

impl WatcherLog {
    /// Records a change of subscription or member `id` (whose watcher mark the caller set).
    /// The change is kept for partial documents when `watched` (someone watches the
    /// watchers).
    pub(crate) fn record(&mut self, id: SubscriptionId, watched: bool) {
        self.seq += 1;
        if let Some(i) = self.changes.iter().position(|c| c.1 == id) {
            self.changes.remove(i);
        }
        if watched {
            self.changes.push((self.seq, id));
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
    /// `watchers` are the presentity's (non-winfo) subscriptions and members, in
    /// subscription order.
    pub(crate) fn document(
        &self,
        resource: &Uri,
        version: u32,
        since: Option<u64>,
        watchers: &[WatcherRow<'_>],
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
                None => matches!(e.status, WatcherStatus::Pending | WatcherStatus::Active),
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
            let mut w = Watcher::new(e.id.to_string(), e.watcher.to_string(), e.status, e.event);
            w.duration_subscribed = Some(e.age_s);
            if matches!(e.status, WatcherStatus::Pending | WatcherStatus::Active) {
                w.expiration = e.expires_in_s;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::engine::events::SubscriptionState;
    use crate::engine::subscription::status_of_event;
    use crate::model::rule::AuthAction;

    fn sub(id: u64, watcher: &str, state: SubscriptionState) -> Subscription {
        Subscription::new(
            SubscriptionId(id),
            Arc::new(watcher.parse().expect("uri")),
            Arc::new("sip:alice@example.test".parse().expect("uri")),
            Package::Presence,
            state,
            AuthAction::Allow,
            600_000,
            0,
            None,
            Duration::ZERO,
            None,
        )
    }

    fn record(log: &mut WatcherLog, sub: &mut Subscription, event: WatcherEvent, watched: bool) {
        sub.set_winfo(status_of_event(sub.state, event), event);
        log.record(sub.id, watched);
    }

    fn rows<'a>(subs: &[&'a Subscription]) -> Vec<WatcherRow<'a>> {
        subs.iter().map(|s| WatcherRow::of(s, 1000)).collect()
    }

    fn uris(doc: &Watcherinfo) -> Vec<(String, WatcherStatus, WatcherEvent)> {
        doc.lists
            .iter()
            .flat_map(|l| &l.watchers)
            .map(|w| (w.uri.clone(), w.status, w.event))
            .collect()
    }

    #[test]
    fn full_from_the_subscriptions_partial_from_the_untold_changes() {
        let alice: Uri = "sip:alice@example.test".parse().expect("uri");
        let mut log = WatcherLog::default();
        let mut bob = sub(1, "sip:bob@example.test", SubscriptionState::Pending);
        let mut carol = sub(2, "sip:carol@example.test", SubscriptionState::Active);
        record(&mut log, &mut bob, WatcherEvent::Subscribe, false);
        record(&mut log, &mut carol, WatcherEvent::Subscribe, false);
        // Nobody watched the watchers: no change kept, yet the full document has both.
        assert!(log.changes.is_empty());
        let full = log.document(&alice, 0, None, &rows(&[&bob, &carol]));
        assert_eq!(full.state, DocState::Full);
        assert_eq!(
            uris(&full),
            vec![
                (
                    "sip:bob@example.test".to_string(),
                    WatcherStatus::Pending,
                    WatcherEvent::Subscribe
                ),
                (
                    "sip:carol@example.test".to_string(),
                    WatcherStatus::Active,
                    WatcherEvent::Subscribe
                ),
            ]
        );
        let seen = log.last_change();
        bob.state = SubscriptionState::Active;
        record(&mut log, &mut bob, WatcherEvent::Approved, true);
        let partial = log.document(&alice, 1, Some(seen), &rows(&[&bob, &carol]));
        assert_eq!(partial.state, DocState::Partial);
        assert_eq!(
            uris(&partial),
            vec![(
                "sip:bob@example.test".to_string(),
                WatcherStatus::Active,
                WatcherEvent::Approved
            )]
        );
        // A second change of the same subscription replaces the first.
        carol.state = SubscriptionState::Terminated(None);
        record(&mut log, &mut carol, WatcherEvent::Timeout, true);
        record(&mut log, &mut bob, WatcherEvent::Approved, true);
        assert_eq!(log.changes.len(), 2);
        let partial = log.document(&alice, 2, Some(seen), &rows(&[&bob, &carol]));
        assert_eq!(uris(&partial).len(), 2);
        let full = log.document(&alice, 2, None, &rows(&[&bob, &carol]));
        assert_eq!(uris(&full).len(), 1);
        log.trim(Some(log.last_change() - 1));
        assert_eq!(log.changes.len(), 1);
        log.forget(bob.id);
        assert!(log.changes.is_empty());
        // No watcher at all: one empty presence list.
        let empty = log.document(&alice, 3, None, &rows(&[]));
        assert_eq!(empty.lists.len(), 1);
        assert!(empty.lists[0].watchers.is_empty());
    }
}
