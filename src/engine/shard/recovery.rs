//! A shard takes back its share of the store at start-up (see [`crate::engine::restore`]),
//! and keeps its publications in the store as they change.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::messaging::{Durability, Letter};
use super::{shard_of_etag, Publication, Shard};
use crate::engine::authorization::presentity_key;
use crate::engine::restore::Restored;
use crate::engine::timers::Timer;
use crate::log;
use crate::store::{PublicationRecord, Write};

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
        let key = presentity_key(&presentity);
        let expires_at = self.clock_time_of(record.expires_at);
        self.next_seq = self.next_seq.max(record.seq);
        self.presentity_entry(&presentity)
            .channels
            .entry(record.package)
            .or_default()
            .publications
            .push(Publication {
                etag: etag.clone(),
                document,
                expires_at,
                seq: record.seq,
                automatic: false,
            });
        self.etags.insert(etag.clone(), (key, record.package));
        self.timers
            .schedule(expires_at, Timer::Publication(etag.clone()));
        self.counters.publications.fetch_add(1, Ordering::Relaxed);
        if etag != record.etag {
            self.persist_publication(&etag, Some(record.etag));
        }
    }

    /// Writes the publication with tag `etag` (behind: publications are soft state), and
    /// deletes its previous tag's row.
    pub(super) fn persist_publication(&mut self, etag: &str, previous_etag: Option<String>) {
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
        if !automatic {
            self.config
                .store
                .submit(Write::DeletePublication(etag.to_owned()), None);
        }
    }
}
