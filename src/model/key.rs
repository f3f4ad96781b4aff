//! Canonical keys: the one notion of identity every layer uses to name a party.
//!
//! Presentities, watchers and users are compared by [`presentity_key`] (and its alias
//! [`watcher_key`]): the address of record ([`Uri::aor`]) without its scheme. So
//! `sip:bob@x;transport=tcp`, `sips:bob@x`, `pres:bob@x` and `im:bob@x` are all the same
//! party `bob@x`: the scheme says how to reach someone, not who they are. The user part stays
//! case-sensitive and the host is lower-case, as in the canonical [`Uri`]. A `tel` URI is keyed
//! by its number (`+12125550100`, or `7042;phone-context=example.com` for a local number).
//!
//! The engine shards presentities by this key, the stores key users, endpoints and rules by
//! it, and the SIP layer compares identities with it.
#![forbid(unsafe_code)]

use crate::uri::{Scheme, Uri};

/// The key that names a presentity (the engine shards presentities by it): `user@host` for
/// `sip`, `sips`, `pres` and `im` (host lower-case, user part as written; `host` alone for a
/// URI without a user), the number for `tel` (with its `;phone-context=` when local).
/// Built from [`Uri::aor`], so parameters, headers, port and password never count.
pub fn presentity_key(uri: &Uri) -> String {
    debug_assert!(uri.scheme() != Scheme::Tel || uri.host().is_empty());
    // One allocation of the right size in the common case (keys are made on hot paths).
    let mut key = String::with_capacity(uri.user().map_or(0, |u| u.len() + 1) + uri.host().len());
    uri.push_aor_body(&mut key);
    key
}

/// The key that names a watcher; the same notion of identity as [`presentity_key`], so a
/// presentity watching itself is recognised whatever schemes the two URIs use.
pub fn watcher_key(uri: &Uri) -> String {
    presentity_key(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    #[test]
    fn keys_ignore_scheme_and_parameters() {
        assert_eq!(
            presentity_key(&uri("pres:alice@Example.TEST")),
            "alice@example.test"
        );
        assert_eq!(
            presentity_key(&uri("sip:alice@example.test:5060;transport=tcp?subject=x")),
            "alice@example.test"
        );
        assert_eq!(
            presentity_key(&uri("sips:alice@example.test")),
            "alice@example.test"
        );
        assert_eq!(
            presentity_key(&uri("im:alice@example.test")),
            "alice@example.test"
        );
        assert_ne!(
            presentity_key(&uri("sip:Alice@example.test")),
            "alice@example.test"
        );
        assert_eq!(presentity_key(&uri("sip:example.test")), "example.test");
        // The address of record has no port.
        assert_eq!(presentity_key(&uri("sip:a@x:5070")), "a@x");
        assert_eq!(presentity_key(&uri("tel:+1-212-555-0100")), "+12125550100");
        assert_eq!(
            presentity_key(&uri("tel:7042;phone-context=Example.COM")),
            "7042;phone-context=example.com"
        );
        assert_eq!(
            watcher_key(&uri("sip:bob@x;transport=tcp")),
            watcher_key(&uri("pres:bob@x"))
        );
    }
}
