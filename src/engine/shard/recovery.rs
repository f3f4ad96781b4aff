//! A shard takes back its share of the store at start-up (see [`crate::engine::restore`]),
//! and keeps its publications in the store as they change.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::Arc;

use std::time::Duration;

use super::messaging::{Durability, Letter};
use super::publications::Publication;
use super::{shard_of_etag, Shard};
use crate::doc::filter::FilterSet;
use crate::doc::winfo::WatcherEvent;
use crate::engine::events::{Event, SubscriptionState};
use crate::engine::restore::Restored;
use crate::engine::subscription::{Remote, Subscription};
use crate::engine::timers::Timer;
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::package::Package;
use crate::model::rule::AuthAction;
use crate::store::{PublicationRecord, SubscriptionRecord, Write};

impl Shard {
    /// Takes back what the store kept for this shard. Events it causes (expiries of what
    /// ran out while the engine was down, deliveries to endpoints still logged in) are
    /// queued when the shard's thread starts.
    pub(crate) fn restore(&mut self, restored: Restored) {
        for p in restored.publications {
            self.restore_publication(p);
        }
        for e in restored.endpoints {
            let expires_at = self.clock_time_of(e.expires_at);
            self.restore_endpoint(
                Arc::new(e.user),
                e.endpoint.into(),
                e.contact.map(Into::into),
                expires_at,
            );
        }
        for m in restored.messages {
            self.store_letter(Letter::from_record(m), Durability::Stored);
        }
        // Identical targets are kept once: the back subscriptions of one list dialog all carry
        // its record (see `crate::sip::server::list_server`), which they shared in one
        // allocation before the restart.
        let mut targets: HashSet<Arc<[u8]>> = HashSet::new();
        let restored: Vec<SubscriptionId> = restored
            .subscriptions
            .into_iter()
            .filter_map(|s| self.restore_subscription(s, &mut targets))
            .collect();
        // Every watcher is told the current state again, once all of them are back (a
        // watcher-information subscriber's full document lists the others).
        for id in restored {
            self.notify(id, true);
        }
    }

    /// Re-creates a remote watcher's subscription (its id already fits this shard).
    fn restore_subscription(
        &mut self,
        r: SubscriptionRecord,
        targets: &mut HashSet<Arc<[u8]>>,
    ) -> Option<SubscriptionId> {
        let id = SubscriptionId(r.id);
        let state = match r.action {
            AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
            AuthAction::Confirm => SubscriptionState::Pending,
            // A redirected subscription is never made; a record saying so is dropped as a
            // blocked one is.
            AuthAction::Block | AuthAction::Redirect => {
                self.config
                    .store
                    .submit(Write::DeleteSubscription(r.id), None);
                return None;
            }
        };
        let filter = match r
            .filter
            .as_deref()
            .map(|x| FilterSet::parse(x, &self.config.limits))
        {
            Some(Ok(set)) => set.filter_for(&r.presentity.to_string()).cloned(),
            Some(Err(e)) => {
                log::warn!("stored filter of subscription {id} cannot be read back ({e}); the watcher gets unfiltered state");
                None
            }
            None => None,
        };
        let presentity = Arc::new(r.presentity);
        let known = &self.presentity_entry(&presentity).uri;
        let presentity = if known.to_string() == presentity.to_string() {
            known.clone()
        } else {
            presentity
        };
        let watcher = self.intern_watcher(Arc::new(r.watcher));
        let expires_at = self.clock_time_of(r.expires_at);
        let now = self.now();
        let sub = Subscription::new(
            id,
            watcher.clone(),
            presentity.clone(),
            r.package,
            state,
            r.action,
            expires_at,
            now,
            filter,
            Duration::from_millis(r.min_interval_ms),
            Some(Remote {
                target: match targets.get(r.target.as_slice()) {
                    Some(same) => same.clone(),
                    None => {
                        let target: Arc<[u8]> = r.target.into();
                        targets.insert(target.clone());
                        target
                    }
                },
                filter: r.filter,
            }),
        );
        self.presentity_entry(&presentity)
            .channels
            .entry(r.package)
            .or_default()
            .subscribers
            .push(id);
        self.count_state(r.package, None, Some(state));
        // Taken back whatever the bounds say now: it was accepted before the restart.
        self.tally.add(&crate::model::key::presentity_key(&watcher));
        self.subscriptions.insert(id, sub);
        self.timers.schedule(expires_at, Timer::Subscription(id));
        if r.package != Package::PresenceWinfo {
            self.log_watcher(id, WatcherEvent::Subscribe);
        }
        if state == SubscriptionState::Pending {
            if r.package != Package::PresenceWinfo && self.transport_decides(&presentity, &watcher)
            {
                self.port.transport_asks(id);
            }
            self.outbox.push(Event::AuthorizationRequested {
                subscription: id,
                watcher,
                presentity,
                package: r.package,
            });
        }
        self.persist_subscription(id);
        Some(id)
    }

    /// Writes a remote watcher's subscription (behind: subscriptions are soft state).
    pub(super) fn persist_subscription(&mut self, id: SubscriptionId) {
        if !self.soft_state {
            return;
        }
        let Some(sub) = self.subscriptions.get(&id) else {
            return;
        };
        let Some(target) = sub.target() else {
            return;
        };
        if sub.state.is_terminated() {
            return;
        }
        let record = SubscriptionRecord {
            id: id.0,
            watcher: (*sub.watcher).clone(),
            presentity: (*sub.presentity).clone(),
            package: sub.package,
            expires_at: self.config.clock.unix_ms() + sub.expires_at.saturating_sub(self.now()),
            filter: sub.filter_text().map(str::to_owned),
            min_interval_ms: sub.min_interval_ms(),
            action: sub.action,
            target: target.to_vec(),
        };
        self.config
            .store
            .submit(Write::SaveSubscription(record), None);
    }

    /// Every subscription of a remote watcher.
    pub(super) fn remote_subscriptions(&self) -> Vec<crate::engine::SubscriptionInfo> {
        let now = self.now();
        let mut all: Vec<_> = self
            .subscriptions
            .values()
            .filter(|s| s.target().is_some())
            .map(|s| s.info(now))
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    fn restore_publication(&mut self, record: PublicationRecord) {
        let document = match record.package.parse(&record.body, &self.config.limits) {
            Ok(document) => document,
            Err(e) => {
                log::error!(
                    "stored publication {} of {} cannot be read back ({e}); dropped",
                    record.etag,
                    record.presentity
                );
                self.config
                    .store
                    .submit(Write::DeletePublication(record.etag), None);
                return;
            }
        };
        // A tag names the shard that issued it; with another shard count it would route
        // elsewhere, so the publication gets a new one (its publisher's next refresh fails
        // as an unknown tag and publishes afresh, RFC 3903 §4.1).
        let etag = if shard_of_etag(&record.etag) == Some(self.index)
            && !self.etags.contains_key(&record.etag)
        {
            record.etag.clone()
        } else {
            self.new_etag()
        };
        let presentity = Arc::new(record.presentity);
        let expires_at = self.clock_time_of(record.expires_at);
        self.next_seq = self.next_seq.max(record.seq);
        self.add_publication(
            &presentity,
            record.package,
            Publication {
                etag: etag.clone(),
                document,
                expires_at,
                seq: record.seq,
                automatic: false,
            },
        );
        if etag != record.etag {
            self.persist_publication(&etag, Some(record.etag));
        }
    }

    /// Writes the publication with tag `etag` (behind: publications are soft state), and
    /// deletes its previous tag's row.
    pub(super) fn persist_publication(&mut self, etag: &str, previous_etag: Option<String>) {
        if !self.soft_state {
            return;
        }
        let Ok((key, package, index)) = self.find_publication(etag) else {
            return;
        };
        let presentity = self.presentities[&key].uri.clone();
        let now = self.now();
        let unix_now = self.config.clock.unix_ms();
        let p = self.publication_mut(&key, package, index);
        if p.automatic {
            return;
        }
        let record = PublicationRecord {
            etag: p.etag.clone(),
            presentity: (*presentity).clone(),
            package,
            body: p.document.to_body(),
            expires_at: unix_now + p.expires_at.saturating_sub(now),
            seq: p.seq,
        };
        self.config.store.submit(
            Write::SavePublication {
                publication: record,
                previous_etag,
            },
            None,
        );
    }

    /// Deletes a withdrawn publication's row.
    pub(super) fn forget_publication(&self, etag: &str, automatic: bool) {
        if !automatic && self.soft_state {
            self.config
                .store
                .submit(Write::DeletePublication(etag.to_owned()), None);
        }
    }
}
