//! `endpoint_presence`: a logged-in endpoint of a user who publishes nothing makes the user
//! appear `open`, with one minimal tuple per endpoint (its contact, when the login named
//! one). The tuples are publications the engine makes itself ("automatic"): composed only
//! while the user has no publication of its own, never stored (they are rebuilt from the
//! stored endpoints), and withdrawn when the endpoint logs out or its login expires.
#![forbid(unsafe_code)]

use super::publications::Publication;
use super::Shard;
use crate::doc::pidf::{Basic, Contact, Presence, Tuple};
use crate::error::Result;
use crate::model::package::{Document, Package};

impl Shard {
    /// Publishes (or extends) the automatic tuple of endpoint `endpoint` of user `key`.
    pub(super) fn endpoint_presence(&mut self, key: &str, endpoint: &str) {
        if !self.config.endpoint_presence {
            return;
        }
        let Some(user) = self.users.get(key) else {
            return;
        };
        let Some(e) = user.endpoints.iter().find(|e| &*e.id == endpoint) else {
            return;
        };
        let (uri, expires_at, contact, etag) = (
            user.uri.clone(),
            e.expires_at,
            e.contact.clone(),
            e.etag.clone(),
        );
        if let Some(etag) = etag {
            if let Ok((key, package, index)) = self.find_publication(&etag) {
                self.publication_mut(&key, package, index).expires_at = expires_at;
                return;
            }
        }
        let mut document = Presence::new(uri.to_string());
        let mut tuple = Tuple::new(tuple_id(endpoint), Basic::Open);
        if let Some(contact) = contact.as_deref() {
            tuple.contact = Some(Contact {
                uri: contact.to_owned(),
                priority: None,
            });
        }
        document.tuples.push(tuple);
        let etag = self.new_etag();
        self.next_seq += 1;
        let seq = self.next_seq;
        self.add_publication(
            &uri,
            Package::Presence,
            Publication {
                etag: etag.clone(),
                document: Document::Presence(document),
                expires_at,
                seq,
                automatic: true,
            },
        );
        if let Some(e) = self
            .users
            .get_mut(key)
            .and_then(|u| u.endpoints.iter_mut().find(|e| &*e.id == endpoint))
        {
            e.etag = Some(etag);
        }
        self.recompose_and_notify(key, Package::Presence);
    }

    /// Withdraws an endpoint's automatic tuple.
    pub(super) fn withdraw_endpoint_tuple(&mut self, etag: &str) -> Result<()> {
        self.remove_publication(etag)
    }
}

/// A tuple id (an XML ID) for an endpoint id: `ep-` and the id with every character an XML
/// name may not hold replaced by `_`.
fn tuple_id(endpoint: &str) -> String {
    let mut id = String::with_capacity(endpoint.len() + 3);
    id.push_str("ep-");
    id.extend(endpoint.chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '_'
        }
    }));
    id
}
