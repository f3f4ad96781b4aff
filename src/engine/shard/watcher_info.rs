//! Watcher information (RFC 3857/3858) of a shard's presentities: every change of a
//! (non-winfo) subscription is logged with its presentity, and the presentity's
//! `presence.winfo` subscribers are notified of it.
//!
//! # Rules
//!
//! - A winfo subscriber gets a full document the first time and whenever its notification
//!   is forced (its own state changes, a renotify, the end of a held minimum interval),
//!   otherwise the changes since its last notification; its documents carry consecutive
//!   versions (0, 1, ...).
//! - A partial document goes out with the full state at the same moment, which replaces it
//!   when the notification is merged into one still waiting (see
//!   [`crate::engine::Notification::merge`]).
//! - Changes every winfo subscriber was told are trimmed from the log; while nobody watches
//!   the watchers, none are kept.
//! - A full document lists the presentity's subscriptions in subscription order within a
//!   package, packages in the order of their first subscription.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::watcher_uris::WatcherUris;
use super::{Presentity, Shard};
use crate::doc::winfo::WatcherEvent;
use crate::engine::member::MemberNames;
use crate::engine::subscription::{status_of_event, Subscriptions};
use crate::engine::watchers::WatcherRow;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::{Document, Package};

impl Shard {
    /// Records a watcher event of a (non-winfo) subscription and tells the presentity's
    /// watcher-info subscribers.
    pub(super) fn log_watcher(&mut self, id: SubscriptionId, event: WatcherEvent) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        sub.set_winfo(status_of_event(sub.state, event), event);
        let key = presentity_key(&sub.presentity);
        self.record_watcher_change(&key, id);
    }

    /// Logs a change of watcher `id` (a subscription or a member, whose mark is set) of
    /// the presentity with key `key`, and tells its watcher-info subscribers.
    pub(super) fn record_watcher_change(&mut self, key: &str, id: SubscriptionId) {
        let Some(p) = self.presentities.get_mut(key) else {
            return;
        };
        let winfo_subscribers = p
            .channels
            .get(&Package::PresenceWinfo)
            .map(|c| c.subscribers.clone())
            .unwrap_or_default();
        p.watchers.record(id, !winfo_subscribers.is_empty());
        for w in &winfo_subscribers {
            self.notify(*w, false);
        }
        // Changes every winfo subscriber was told are needed no more (one that was told
        // nothing yet gets a full document first).
        let told = winfo_subscribers
            .iter()
            .filter_map(|w| self.subscriptions.get(w))
            .filter(|s| s.winfo_version() > 0)
            .map(|s| s.winfo_seen())
            .min();
        if let Some(p) = self.presentities.get_mut(key) {
            p.watchers.trim(told);
        }
    }

    /// The watcher-info document for winfo subscription `id`: full the first time (or when
    /// `full`), otherwise the changes since its last notification. Advances the
    /// subscription's version and what it has been told.
    pub(super) fn watcher_info(
        &mut self,
        key: &str,
        id: SubscriptionId,
        full: bool,
    ) -> Arc<Document> {
        let now = self.now();
        let sub = self.subscriptions.get(&id).expect("winfo subscription");
        let p = self
            .presentities
            .get(key)
            .expect("presentity of a subscription");
        let first = sub.winfo_version() == 0;
        let since = (!full && !first).then_some(sub.winfo_seen());
        let watchers = watchers_of(
            &self.subscriptions,
            (&self.member_names, &self.watcher_uris),
            p,
            now,
        );
        let doc = p
            .watchers
            .document(&p.uri, sub.winfo_version(), since, &watchers);
        let last = p.watchers.last_change();
        self.subscriptions
            .get_mut(&id)
            .expect("winfo subscription")
            .winfo_advance(last);
        Arc::new(Document::Winfo(doc))
    }

    /// The full watcher-info document at `version`, without side effects.
    pub(super) fn watcher_info_full(&self, key: &str, version: u32) -> Arc<Document> {
        let p = &self.presentities[key];
        let watchers = watchers_of(
            &self.subscriptions,
            (&self.member_names, &self.watcher_uris),
            p,
            self.now(),
        );
        Arc::new(Document::Winfo(
            p.watchers.document(&p.uri, version, None, &watchers),
        ))
    }
}

/// The (non-winfo) subscriptions and members of `p` at `now` (the members' ids and watchers
/// from their numbers), in subscription order within
/// a package, packages in the order of their first subscription.
fn watchers_of<'a>(
    subscriptions: &'a Subscriptions,
    (names, watchers): (&'a MemberNames, &'a WatcherUris),
    p: &'a Presentity,
    now: u64,
) -> Vec<WatcherRow<'a>> {
    let mut channels: Vec<Vec<WatcherRow<'a>>> = p
        .channels
        .iter()
        .filter(|(package, _)| **package != Package::PresenceWinfo)
        .map(|(&package, c)| {
            let mut rows: Vec<WatcherRow<'a>> = c
                .subscribers
                .iter()
                .filter_map(|id| subscriptions.get(id))
                .map(|s| WatcherRow::of(s, now))
                .collect();
            if let Some(group) = &c.group {
                rows.extend(group.members.iter().map(|m| WatcherRow {
                    id: names.id(m),
                    watcher: watchers.uri(m.watcher),
                    package,
                    status: m.winfo_status(),
                    event: m.winfo_event(),
                    age_s: m.age_s(now),
                    expires_in_s: None,
                }));
                rows.sort_by_key(|r| r.id);
            }
            rows
        })
        .filter(|rows| !rows.is_empty())
        .collect();
    channels.sort_by_key(|rows| rows[0].id);
    channels.into_iter().flatten().collect()
}
