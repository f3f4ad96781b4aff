//! A presentity's publications (RFC 3903) on its shard: publish, refresh, modify and remove
//! by entity tag, their expiry, and the composition of a package's live publications that
//! the package's watchers are told of.
//!
//! # Rules
//!
//! - Every successful publish, refresh or modification gets a new entity tag (RFC 3903). A
//!   tag starts with the number of the shard that issued it ([`super::shard_of_etag`] routes
//!   later requests by it), goes on with a counter that keeps it unique within the shard, and
//!   ends with a random part that keeps it from being guessed.
//! - A publication expires at the deadline its last publish or refresh granted; an expiry
//!   timer of a tag that was refreshed (retagged) or removed since does nothing. A refresh
//!   with expiry 0 removes the publication.
//! - A modification must keep the publication's package, and makes it the newest for
//!   composition.
//! - After every change the package's live publications are composed once, and the one
//!   composition is shared by every watcher notified of it. A presentity's own publications
//!   hide its automatic ones (the endpoints' tuples, [`super::endpoint_tuples`]).
//! - Publications are soft state: each change is written to the store behind
//!   ([`super::recovery`]); automatic ones are never stored.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Shard, LOG_TARGET};
use crate::engine::compose::compose;
use crate::engine::events::Event;
use crate::engine::timers::Timer;
use crate::error::{Error, Result};
use crate::log;
use crate::model::key::presentity_key;
use crate::model::package::{Document, Package};
use crate::uri::Uri;

pub(super) struct Publication {
    pub(super) etag: String,
    pub(super) document: Document,
    pub(super) expires_at: u64,
    /// Recency: higher is newer (for composition).
    pub(super) seq: u64,
    /// Made by the engine for a logged-in endpoint (`endpoint_presence`): composed only when
    /// the presentity has no publication of its own, never stored, no timer of its own (it
    /// lives as long as the endpoint's login).
    pub(super) automatic: bool,
}

/// The documents to compose: the presentity's own publications, or (when it has none) the
/// automatic ones.
fn composable(publications: &[Publication]) -> Vec<(u64, &Document)> {
    let own = publications.iter().any(|p| !p.automatic);
    publications
        .iter()
        .filter(|p| !own || !p.automatic)
        .map(|p| (p.seq, &p.document))
        .collect()
}

impl Shard {
    pub(super) fn new_etag(&mut self) -> String {
        self.next_etag += 1;
        // The shard prefix routes later requests; the counter keeps tags unique within the
        // shard; the random part keeps them from being guessed.
        format!(
            "{:x}-{:x}{:08x}",
            self.index,
            self.next_etag,
            self.random.next_u64() as u32
        )
    }

    pub(super) fn publish(
        &mut self,
        presentity: Arc<Uri>,
        package: Package,
        document: Document,
        expires: u32,
    ) -> Result<String> {
        if !package.is_publishable() || document.package() != package {
            return Err(Error::InvalidArgument(format!(
                "a {} document cannot be published as {package}",
                document.package()
            )));
        }
        if expires == 0 {
            return Err(Error::InvalidArgument(
                "a new publication needs an expiry above 0 (0 removes a publication)".into(),
            ));
        }
        let expires = self
            .config
            .publication_expiry
            .grant(Some(expires), "publication")?;
        let etag = self.new_etag();
        let now = self.now();
        self.next_seq += 1;
        let seq = self.next_seq;
        let expires_at = now + u64::from(expires) * 1000;
        let key = self.add_publication(
            &presentity,
            package,
            Publication {
                etag: etag.clone(),
                document,
                expires_at,
                seq,
                automatic: false,
            },
        );
        self.persist_publication(&etag, None);
        self.recompose_and_notify(&key, package);
        Ok(etag)
    }

    /// Adds a publication to its presentity's channel, indexes its tag and (unless it is
    /// automatic: it lives as long as its endpoint) schedules its expiry; returns the
    /// presentity key. Composition and notification are the caller's.
    pub(super) fn add_publication(
        &mut self,
        presentity: &Arc<Uri>,
        package: Package,
        publication: Publication,
    ) -> String {
        let key = presentity_key(presentity);
        let (etag, expires_at, automatic) = (
            publication.etag.clone(),
            publication.expires_at,
            publication.automatic,
        );
        self.presentity_entry(presentity)
            .channels
            .entry(package)
            .or_default()
            .publications
            .push(publication);
        self.etags.insert(etag.clone(), (key.clone(), package));
        if !automatic {
            self.timers.schedule(expires_at, Timer::Publication(etag));
        }
        self.counters.publications.fetch_add(1, Ordering::Relaxed);
        key
    }

    /// Finds a live publication by entity tag: (presentity key, package, index).
    pub(super) fn find_publication(&self, etag: &str) -> Result<(String, Package, usize)> {
        let unknown = || {
            Error::UnknownEntityTag(format!(
                "no live publication has entity tag '{etag}' (it expired, was removed, or never existed)"
            ))
        };
        let (key, package) = self.etags.get(etag).ok_or_else(unknown)?;
        let index = self
            .presentities
            .get(key)
            .and_then(|p| p.channels.get(package))
            .and_then(|c| c.publications.iter().position(|p| p.etag == etag))
            .ok_or_else(unknown)?;
        Ok((key.clone(), *package, index))
    }

    /// Gives the publication a new entity tag (RFC 3903: every successful refresh or
    /// modification gets a new one) and returns it.
    fn retag(&mut self, key: &str, package: Package, index: usize) -> String {
        let etag = self.new_etag();
        let publication = self.publication_mut(key, package, index);
        let old = std::mem::replace(&mut publication.etag, etag.clone());
        let expires_at = publication.expires_at;
        self.etags.remove(&old);
        self.etags.insert(etag.clone(), (key.to_owned(), package));
        self.timers
            .schedule(expires_at, Timer::Publication(etag.clone()));
        self.persist_publication(&etag, Some(old));
        etag
    }

    pub(super) fn publication_mut(
        &mut self,
        key: &str,
        package: Package,
        index: usize,
    ) -> &mut Publication {
        &mut self
            .presentities
            .get_mut(key)
            .and_then(|p| p.channels.get_mut(&package))
            .expect("publication located before")
            .publications[index]
    }

    pub(super) fn refresh_publication(&mut self, etag: &str, expires: u32) -> Result<String> {
        let (key, package, index) = self.find_publication(etag)?;
        if expires == 0 {
            self.withdraw(&key, package, index);
            self.recompose_and_notify(&key, package);
            return Ok(String::new());
        }
        let expires = self
            .config
            .publication_expiry
            .grant(Some(expires), "publication")?;
        let expires_at = self.now() + u64::from(expires) * 1000;
        self.publication_mut(&key, package, index).expires_at = expires_at;
        Ok(self.retag(&key, package, index))
    }

    /// Replaces the document; with `expires`, also grants a new expiry (checked before
    /// anything changes, so a refused one leaves the publication as it was).
    pub(super) fn modify_publication(
        &mut self,
        etag: &str,
        document: Document,
        expires: Option<u32>,
    ) -> Result<String> {
        let (key, package, index) = self.find_publication(etag)?;
        if document.package() != package {
            return Err(Error::InvalidArgument(format!(
                "publication '{etag}' is {package}; a {} document cannot replace it",
                document.package()
            )));
        }
        let expires_at = match expires {
            Some(expires) => {
                let granted = self
                    .config
                    .publication_expiry
                    .grant(Some(expires), "publication")?;
                Some(self.now() + u64::from(granted) * 1000)
            }
            None => None,
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        let publication = self.publication_mut(&key, package, index);
        publication.document = document;
        publication.seq = seq;
        if let Some(at) = expires_at {
            publication.expires_at = at;
        }
        let new_tag = self.retag(&key, package, index);
        self.recompose_and_notify(&key, package);
        Ok(new_tag)
    }

    pub(super) fn remove_publication(&mut self, etag: &str) -> Result<()> {
        let (key, package, index) = self.find_publication(etag)?;
        self.withdraw(&key, package, index);
        self.recompose_and_notify(&key, package);
        Ok(())
    }

    fn withdraw(&mut self, key: &str, package: Package, index: usize) -> Publication {
        let channel = self
            .presentities
            .get_mut(key)
            .and_then(|p| p.channels.get_mut(&package))
            .expect("publication located before");
        let publication = channel.publications.remove(index);
        self.etags.remove(&publication.etag);
        self.forget_publication(&publication.etag, publication.automatic);
        self.counters.publications.fetch_sub(1, Ordering::Relaxed);
        publication
    }

    /// Composes the package's live publications and tells every subscriber.
    pub(super) fn recompose_and_notify(&mut self, key: &str, package: Package) {
        let Some(p) = self.presentities.get_mut(key) else {
            return;
        };
        let uri = p.uri.clone();
        let channel = p.channels.entry(package).or_default();
        let docs = composable(&channel.publications);
        let composed = Arc::new(compose(package, &uri, &docs));
        channel.composed = Some(composed.clone());
        let subscribers = channel.subscribers.clone();
        for id in subscribers {
            self.notify_with(id, false, Some(&composed));
        }
        self.notify_group(key, package, &composed);
        self.collect_if_idle(key);
    }

    pub(super) fn composed(&mut self, key: &str, package: Package) -> Arc<Document> {
        let p = self
            .presentities
            .get_mut(key)
            .expect("presentity of a subscription");
        let uri = p.uri.clone();
        let channel = p.channels.entry(package).or_default();
        if channel.composed.is_none() {
            let docs = composable(&channel.publications);
            channel.composed = Some(Arc::new(compose(package, &uri, &docs)));
        }
        channel.composed.clone().expect("composed above")
    }

    /// A publication's expiry timer, set for `deadline`: the publication is withdrawn and
    /// its watchers told, unless it was refreshed or removed since.
    pub(super) fn publication_timer(&mut self, etag: &str, deadline: u64) {
        let Ok((key, package, index)) = self.find_publication(etag) else {
            return; // refreshed (new tag) or removed since
        };
        let expires_at = self.publication_mut(&key, package, index).expires_at;
        if expires_at != deadline {
            return;
        }
        let publication = self.withdraw(&key, package, index);
        let presentity = self.presentities[&key].uri.clone();
        log::debug!(
            target: LOG_TARGET,
            "publication {} of {presentity} ({package}) expired",
            publication.etag
        );
        self.outbox.push(Event::PublicationExpired {
            presentity,
            package,
            etag: publication.etag,
        });
        self.recompose_and_notify(&key, package);
    }
}
