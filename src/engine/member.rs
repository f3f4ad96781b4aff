//! Members of a shared subscription: many watchers of one presentity's package served by
//! one subscription, each authorized on its own.
//!
//! A list server (RFC 4662) watches every resource of every list it serves for that list's
//! subscriber. With one engine subscription per (subscriber, resource), a thousand
//! busy-lamp panels of fifty keys are fifty thousand subscriptions, and a change of a key is
//! fifty notifications crossing from the shard to the transport, each for the same
//! document. A shared subscription turns that into one notification per change (the
//! *group*'s, carrying the composed document) and keeps, per watcher, only what the IMPP
//! model needs of it: who watches, what the presentity's rules or the presentity decided,
//! and its watcher-information mark. So a member is what a subscription would be without
//! an expiry timer, a filter or a target of its own:
//!
//! - it is authorized one by one by the presentity's rules and policy, may wait for the
//!   presentity's decision (pending, listed and decided like any subscription by its id),
//!   and is decided again when the rules change;
//! - it is listed in watcher information and in the operator's views of subscriptions;
//! - a change of its own state (decided, blocked) is one notification of the member
//!   ([`MEMBER_TARGET`]); a change of what the presentity shows is one notification of the
//!   group ([`GROUP_TARGET`]), for every member that sees the composed document;
//! - it has no expiry of its own: it lives while the list dialogs that hold it do (the list
//!   server joins and leaves for them; a member held by two dialogs of one watcher counts
//!   both), and it is not written to the store: the list server keeps its dialogs and joins
//!   again after a restart.
//!
//! Only resources of domains the engine owns are served this way. A watcher of another
//! domain's presentity needs a subscription of its own: the transport decides on it and
//! makes the back-end subscription in its name (see [`super::PortOptions`]).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::events::SubscriptionState;
use super::subscription::{status_of_event, SubscriptionInfo, WinfoMark};
use crate::doc::winfo::{WatcherEvent, WatcherStatus};
use crate::model::id::SubscriptionId;
use crate::model::package::Package;
use crate::model::rule::AuthAction;
use crate::uri::Uri;

/// How the target of a group's notifications starts: the presentity's document changed,
/// for every member allowed to see it.
pub(crate) const GROUP_TARGET: &[u8] = b"impp-group";

/// The target of a member's notifications (its own state changed) when it sees the
/// composed document, so that the group's notifications are for it too.
pub(crate) const MEMBER_TARGET: &[u8] = b"impp-member";

/// The target of a member's notifications when it does not see the composed document
/// (pending, polite-blocked: a neutral one, or ended): the group's are not for it.
pub(crate) const MEMBER_APART_TARGET: &[u8] = b"impp-member apart";

/// The most list dialogs one member counts (one watcher holding one resource in that many
/// lists at once); a join beyond it is refused.
pub(crate) const MAX_HOLDERS: u8 = u8::MAX;

/// One watcher of a shared subscription. Kept at 20 bytes with an alignment of 4: a list
/// server holds one per (subscriber, resource), fifty per busy-lamp phone. So the watcher
/// is its place in the shard's [`MemberWatchers`] (4 bytes, where an `Arc` took 8 and an
/// alignment of 8), and the id is kept as two halves (an alignment of 4, where a `u64`
/// padded the rest to 24).
///
/// Not 16: the id stays whole. It is the engine's, drawn from the counter every
/// subscription draws from (kept across restarts), so its upper half cannot be rebuilt
/// from anything the shard keeps: a member may live while billions of others are
/// numbered, and the application may still name it.
pub(crate) struct Member {
    /// The watcher's place in the shard's [`MemberWatchers`].
    pub(crate) watcher: u32,
    /// The id, low half first.
    id: [u32; 2],
    /// When it joined, in whole seconds of the shard clock (for watcher information).
    subscribed_s: u32,
    /// The list dialogs that hold it.
    pub(crate) holders: u8,
    pub(crate) action: AuthAction,
    pub(crate) state: SubscriptionState,
    winfo: WinfoMark,
}

impl Member {
    pub(crate) fn new(
        id: SubscriptionId,
        watcher: u32,
        action: AuthAction,
        state: SubscriptionState,
        now: u64,
    ) -> Member {
        Member {
            watcher,
            id: [id.0 as u32, (id.0 >> 32) as u32],
            subscribed_s: u32::try_from(now / 1000).unwrap_or(u32::MAX),
            holders: 1,
            action,
            state,
            winfo: WinfoMark::new(
                status_of_event(state, WatcherEvent::Subscribe),
                WatcherEvent::Subscribe,
            ),
        }
    }

    pub(crate) fn id(&self) -> SubscriptionId {
        SubscriptionId(u64::from(self.id[1]) << 32 | u64::from(self.id[0]))
    }

    /// How long ago it joined, in whole seconds.
    pub(crate) fn age_s(&self, now: u64) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.subscribed_s))
    }

    /// Records the watcher status an event gave it.
    pub(crate) fn set_winfo(&mut self, event: WatcherEvent) {
        self.winfo = WinfoMark::new(status_of_event(self.state, event), event);
    }

    pub(crate) fn winfo_status(&self) -> WatcherStatus {
        self.winfo.status()
    }

    pub(crate) fn winfo_event(&self) -> WatcherEvent {
        self.winfo.event()
    }

    /// A snapshot, as the operator's views show subscriptions: no expiry of its own
    /// (`expires_in` zero) and the member target. `watcher` is the member's (from the
    /// shard's [`MemberWatchers`]).
    pub(crate) fn info(
        &self,
        watcher: &Uri,
        presentity: &Uri,
        package: Package,
    ) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id(),
            watcher: watcher.clone(),
            presentity: presentity.clone(),
            package,
            state: self.state,
            authorization: self.action,
            expires_in: Duration::ZERO,
            target: Some(Arc::from(MEMBER_TARGET)),
        }
    }
}

/// The watchers of a shard's members, each once, at a place that does not move while a
/// member names it: members hold places, not URIs (see [`Member`]). A place is counted per
/// member and freed (for the next new watcher) when its last member goes, so the table
/// holds only the watchers of live members. One entry per watcher and shard, where the
/// members are one per watcher and resource.
#[derive(Default)]
pub(crate) struct MemberWatchers {
    /// The URI at each place; `None` for a free one.
    uris: Vec<Option<Arc<Uri>>>,
    /// Each URI's (place, members naming it). Keyed by URI equality, as a join finds its
    /// member: equal URIs are one watcher.
    places: HashMap<Arc<Uri>, (u32, u32)>,
    /// Free places, reused before the table grows.
    free: Vec<u32>,
}

impl MemberWatchers {
    /// `watcher`'s place, if a member names it.
    pub(crate) fn place(&self, watcher: &Uri) -> Option<u32> {
        self.places.get(watcher).map(|&(place, _)| place)
    }

    /// The watcher at `place` (one a live member names).
    pub(crate) fn uri(&self, place: u32) -> &Arc<Uri> {
        self.uris[place as usize]
            .as_ref()
            .expect("a member's watcher place is held")
    }

    /// Counts one more member of `watcher` and returns its place; `None` when the table
    /// has every place of a `u32` (billions of watchers on one shard).
    pub(crate) fn hold(&mut self, watcher: Arc<Uri>) -> Option<u32> {
        if let Some((place, members)) = self.places.get_mut(&*watcher) {
            *members += 1;
            return Some(*place);
        }
        let place = match self.free.pop() {
            Some(place) => place,
            None => {
                let place = u32::try_from(self.uris.len()).ok()?;
                self.uris.push(None);
                place
            }
        };
        self.uris[place as usize] = Some(watcher.clone());
        self.places.insert(watcher, (place, 1));
        Some(place)
    }

    /// Forgets one member of the watcher at `place`; the last one frees the place.
    pub(crate) fn release(&mut self, place: u32) {
        let watcher = self.uri(place).clone();
        let entry = self
            .places
            .get_mut(&*watcher)
            .expect("a held place is in the table");
        entry.1 -= 1;
        if entry.1 == 0 {
            self.places.remove(&*watcher);
            self.uris[place as usize] = None;
            self.free.push(place);
        }
    }

    /// How many watchers have a place (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.places.len()
    }
}

/// The shared subscription of one presentity's package: its id (its notifications carry
/// it) and its members, in the order they joined.
pub(crate) struct Group {
    pub(crate) id: SubscriptionId,
    pub(crate) members: Vec<Member>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_20_bytes_aligned_on_4() {
        // A list server holds one per (subscriber, resource): a byte here is fifty per
        // busy-lamp phone (issue 16).
        assert_eq!(std::mem::size_of::<Member>(), 20);
        assert_eq!(std::mem::align_of::<Member>(), 4);
    }

    #[test]
    fn a_member_keeps_its_whole_id() {
        for id in [0, 7, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX] {
            let m = Member::new(
                SubscriptionId(id),
                0,
                AuthAction::Allow,
                SubscriptionState::Active,
                0,
            );
            assert_eq!(m.id(), SubscriptionId(id));
        }
    }

    #[test]
    fn a_watcher_keeps_its_place_while_a_member_names_it() {
        let alice = Arc::new(Uri::parse("sip:alice@example.com").unwrap());
        let bob = Arc::new(Uri::parse("sip:bob@example.com").unwrap());
        let mut table = MemberWatchers::default();
        let a = table.hold(alice.clone()).unwrap();
        let b = table.hold(bob.clone()).unwrap();
        assert_ne!(a, b);
        assert_eq!(table.hold(alice.clone()), Some(a));
        assert_eq!(table.place(&alice), Some(a));
        table.release(a);
        assert_eq!(table.place(&alice), Some(a), "one member of alice is left");
        assert_eq!(**table.uri(a), *alice);
        table.release(a);
        assert_eq!(table.place(&alice), None);
        assert_eq!(**table.uri(b), *bob, "bob did not move");
        let carol = Arc::new(Uri::parse("sip:carol@example.com").unwrap());
        assert_eq!(table.hold(carol).unwrap(), a, "a freed place is reused");
        assert_eq!(table.len(), 2);
    }
}
