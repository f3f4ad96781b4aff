//! The watcher URIs of a shard: one copy of each, shared by the watcher's subscriptions and
//! members (a watcher usually watches many presentities; equal URIs are one watcher), and
//! for the watchers of members a place, a number that names the URI.
//!
//! A member keeps its watcher as a place (4 bytes) instead of an `Arc` (8, and an alignment
//! of 8): a list server holds a member per subscriber and resource, and 16-byte members are
//! issue 16's (see [`crate::engine::member::Member`]). So the table that shares the URIs is
//! the one that numbers them, and a list phone's watcher costs each shard one entry (16
//! bytes) and one place (8), where a second table would cost two entries.
//!
//! # Rules
//!
//! - A place does not move while a member names it: places are counted per member, and the
//!   last member's leave frees its place for the next new watcher of a member.
//! - An entry nobody else holds any more (no subscription, no member) is swept out now and
//!   then, when the table has doubled since the last sweep.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;

use super::Shard;
use crate::uri::Uri;

/// An entry's place when no member names it.
const NO_PLACE: u32 = u32::MAX;

#[derive(Default)]
pub(super) struct WatcherUris {
    /// Each URI's (place or [`NO_PLACE`], members naming it). Keyed by URI equality, as a
    /// join finds its member.
    entries: HashMap<Arc<Uri>, (u32, u32)>,
    /// The URI at each place; `None` for a free one.
    places: Vec<Option<Arc<Uri>>>,
    /// Free places, reused before the table of places grows.
    free: Vec<u32>,
    /// The number of entries after the last sweep.
    swept: usize,
}

impl WatcherUris {
    /// The shared copy of `watcher` when one written the same way is known (else `watcher`
    /// becomes the shared copy).
    fn intern(&mut self, watcher: Arc<Uri>) -> Arc<Uri> {
        if self.entries.len() > 2 * self.swept + 1024 {
            // A member's URI is also in `places`: it is never swept.
            self.entries.retain(|uri, _| Arc::strong_count(uri) > 1);
            self.swept = self.entries.len();
        }
        if let Some((known, _)) = self.entries.get_key_value(&*watcher) {
            return known.clone();
        }
        self.entries.insert(watcher.clone(), (NO_PLACE, 0));
        watcher
    }

    /// Counts one more member of `watcher` (interned) and returns its place; `None` when
    /// every place of a `u32` is taken (billions of watchers on one shard).
    pub(super) fn hold(&mut self, watcher: &Arc<Uri>) -> Option<u32> {
        let (place, members) = self.entries.entry(watcher.clone()).or_insert((NO_PLACE, 0));
        if *place == NO_PLACE {
            let free = match self.free.pop() {
                Some(free) => free,
                None => {
                    let free = u32::try_from(self.places.len())
                        .ok()
                        .filter(|p| *p != NO_PLACE)?;
                    self.places.push(None);
                    free
                }
            };
            self.places[free as usize] = Some(watcher.clone());
            *place = free;
        }
        *members += 1;
        Some(*place)
    }

    /// Forgets one member of the watcher at `place`; the last one frees the place.
    pub(super) fn release(&mut self, place: u32) {
        let watcher = self.uri(place).clone();
        let (at, members) = self
            .entries
            .get_mut(&*watcher)
            .expect("a held place has its entry");
        *members -= 1;
        if *members == 0 {
            *at = NO_PLACE;
            self.places[place as usize] = None;
            self.free.push(place);
        }
    }

    /// `watcher`'s place, if a member names it.
    pub(super) fn place(&self, watcher: &Uri) -> Option<u32> {
        self.entries
            .get(watcher)
            .map(|&(place, _)| place)
            .filter(|p| *p != NO_PLACE)
    }

    /// The watcher at `place` (one a live member names).
    pub(super) fn uri(&self, place: u32) -> &Arc<Uri> {
        self.places[place as usize]
            .as_ref()
            .expect("a member's watcher place is held")
    }
}

impl Shard {
    /// The shard's shared copy of `watcher` (see [`WatcherUris`]).
    pub(super) fn intern_watcher(&mut self, watcher: Arc<Uri>) -> Arc<Uri> {
        self.watcher_uris.intern(watcher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Arc<Uri> {
        Arc::new(Uri::parse(text).unwrap())
    }

    #[test]
    fn a_watcher_keeps_its_place_while_a_member_names_it() {
        let mut table = WatcherUris::default();
        let alice = table.intern(uri("sip:alice@example.com"));
        let bob = table.intern(uri("sip:bob@example.com"));
        assert!(Arc::ptr_eq(
            &table.intern(uri("sip:alice@example.com")),
            &alice
        ));
        assert_eq!(table.place(&alice), None, "no member yet");
        let a = table.hold(&alice).unwrap();
        let b = table.hold(&bob).unwrap();
        assert_ne!(a, b);
        assert_eq!(table.hold(&alice), Some(a));
        table.release(a);
        assert_eq!(table.place(&alice), Some(a), "one member of alice is left");
        assert!(Arc::ptr_eq(table.uri(a), &alice));
        table.release(a);
        assert_eq!(table.place(&alice), None);
        assert!(Arc::ptr_eq(table.uri(b), &bob), "bob did not move");
        let carol = table.intern(uri("sip:carol@example.com"));
        assert_eq!(table.hold(&carol), Some(a), "a freed place is reused");
    }

    #[test]
    fn a_members_watcher_is_not_swept() {
        let mut table = WatcherUris::default();
        let alice = table.intern(uri("sip:alice@example.com"));
        let a = table.hold(&alice).unwrap();
        drop(alice);
        for i in 0..3000 {
            table.intern(uri(&format!("sip:w{i}@example.com")));
        }
        assert!(table.entries.len() < 3000, "swept");
        assert_eq!(table.place(&uri("sip:alice@example.com")), Some(a));
    }
}
