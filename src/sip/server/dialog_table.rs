//! The notifier's table of subscription dialogs: what it keeps of each (the parts that
//! change: CSeqs, expiry, whether a NOTIFY is in flight), what waits to be told next, and
//! the Retry-After waits. The dialog itself is the engine subscription's target. Also where
//! a dialog's NOTIFYs go ([`notify_destination`]), which the list server's dialogs share.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use crate::engine::Notification;
use crate::model::id::SubscriptionId;
use crate::model::id_table::{IdTable, Keyed};
use std::net::SocketAddr;

use crate::sip::dialog::{ip_address_of, DialogId, DialogView, SubscriptionDialog};
use crate::sip::stack::contact_address;
use crate::sip::transport::Proto;

/// What the server keeps of a subscription dialog: the parts that change. The dialog itself
/// is the engine subscription's target (its serialized [`SubscriptionDialog`]), which each
/// notification carries, so the server holds no copy of it.
pub(crate) struct DialogState {
    /// The subscription.
    id: SubscriptionId,
    /// The CSeq of the next NOTIFY (never 0, which lets `Option<DialogState>` be as small
    /// as the state itself in the table).
    next_cseq: std::num::NonZeroU32,
    /// The CSeq of the last SUBSCRIBE received.
    pub(crate) remote_cseq: u32,
    /// When the subscription ends (clock seconds: the clock's milliseconds / 1000, rounded
    /// down, so a NOTIFY's `expires` never promises more than the engine's subscription
    /// has left; 32 bits keep the state in 24 bytes).
    expires_at_s: u32,
    /// Whether a NOTIFY of this dialog waits for its answer (RFC 6665 §4.2.2: one at a
    /// time; what changes meanwhile waits in [`Dialogs::deferred`]).
    pub(crate) in_flight: bool,
}

impl Keyed for DialogState {
    fn id(&self) -> SubscriptionId {
        self.id
    }
}

impl DialogState {
    /// Sets the subscription's end `granted_s` seconds after `now_ms` (clock time).
    pub(crate) fn expire_after(&mut self, now_ms: u64, granted_s: u32) {
        self.expires_at_s = expiry_seconds(now_ms, u64::from(granted_s) * 1000);
    }

    /// Whole seconds left at `now_ms`.
    pub(crate) fn remaining_s(&self, now_ms: u64) -> u64 {
        (u64::from(self.expires_at_s) * 1000).saturating_sub(now_ms) / 1000
    }

    /// The CSeq for the next NOTIFY (and counts it).
    pub(crate) fn take_cseq(&mut self) -> u32 {
        let cseq = self.next_cseq.get();
        self.next_cseq =
            std::num::NonZeroU32::new(cseq.wrapping_add(1)).unwrap_or(std::num::NonZeroU32::MIN);
        cseq
    }
}

/// The subscription a local tag names (see `Notifier::tag_naming`).
fn subscription_in_tag(tag: &str) -> Option<SubscriptionId> {
    let (_, id) = tag.rsplit_once('.')?;
    u64::from_str_radix(id, 16).ok().map(SubscriptionId)
}

/// Whether `target` (a subscription's serialized dialog) is the dialog `id`.
pub(crate) fn is_dialog(target: &[u8], id: &DialogId) -> bool {
    DialogId::from_bytes(target).is_ok_and(|known| known == *id)
}

/// The clock second (rounded down) `life_ms` after `now_ms`. Down, not up: a watcher
/// may schedule its refresh from the `expires` of each NOTIFY (libre, baresip's stack,
/// refreshes at 90% of it), and a second too many sends that refresh after the
/// subscription ended here when the expiry is short.
fn expiry_seconds(now_ms: u64, life_ms: u64) -> u32 {
    ((now_ms + life_ms) / 1000).min(u64::from(u32::MAX)) as u32
}

/// The server's subscription dialogs, by subscription: 24 bytes each in a dense table.
/// A dialog's local tag names its subscription, so a request inside a dialog finds it
/// through the same table, and checks it against the subscription's target.
#[derive(Default)]
pub(crate) struct Dialogs {
    pub(crate) by_subscription: IdTable<DialogState>,
    /// The notification each dialog with a NOTIFY in flight is told next: what changed
    /// meanwhile, merged (the latest state wins), so a slow watcher costs one waiting
    /// notification at most.
    deferred: HashMap<SubscriptionId, Notification>,
    /// Dialogs whose last NOTIFY was refused with a Retry-After: when to try again (clock
    /// ms), earliest first.
    pub(crate) retries: std::collections::BinaryHeap<std::cmp::Reverse<(u64, SubscriptionId)>>,
    /// Dialogs whose local tag does not name their subscription (made before tags did, and
    /// restored from the store), by a keyed hash of the dialog id (the key is random per
    /// process, so ids cannot be made to collide on purpose).
    untagged: HashMap<u64, SubscriptionId>,
    hasher: std::collections::hash_map::RandomState,
}

impl Dialogs {
    fn key(&self, id: &DialogId) -> u64 {
        use std::hash::BuildHasher;
        self.hasher
            .hash_one((&id.call_id, &id.local_tag, &id.remote_tag))
    }

    /// Adds the dialog of subscription `id`, which ends at `expires_at` (clock ms).
    pub(crate) fn insert(
        &mut self,
        id: SubscriptionId,
        dialog: &SubscriptionDialog,
        expires_at: u64,
    ) {
        if subscription_in_tag(&dialog.local_tag) != Some(id) {
            let key = self.key(&dialog.id());
            self.untagged.insert(key, id);
        }
        self.by_subscription.insert(
            id,
            DialogState {
                id,
                next_cseq: std::num::NonZeroU32::new(dialog.local_cseq.wrapping_add(1))
                    .unwrap_or(std::num::NonZeroU32::MIN),
                remote_cseq: dialog.remote_cseq,
                expires_at_s: expiry_seconds(expires_at, 0),
                in_flight: false,
            },
        );
    }

    /// The notification waiting for subscription `id`, taken out. The map gives its room
    /// back as it empties after a storm (a map keeps the room of its largest size).
    pub(crate) fn take_deferred(&mut self, id: SubscriptionId) -> Option<Notification> {
        if self.deferred.is_empty() {
            return None; // (no hashing while watchers keep up)
        }
        let taken = self.deferred.remove(&id);
        let (len, room) = (self.deferred.len(), self.deferred.capacity());
        if room > 64 && len < room / 4 {
            self.deferred.shrink_to(len * 2);
        }
        taken
    }

    /// Keeps `n` for when the NOTIFY in flight is answered, merged into what waits already.
    pub(crate) fn defer(&mut self, n: Notification) {
        match self.deferred.entry(n.subscription) {
            std::collections::hash_map::Entry::Occupied(mut waiting) => waiting.get_mut().merge(n),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(n);
            }
        }
    }

    /// The subscription whose dialog `dialog` may be: the caller checks it against the
    /// subscription's target ([`is_dialog`]).
    pub(crate) fn candidate(&self, dialog: &DialogId) -> Option<SubscriptionId> {
        if let Some(sub) =
            subscription_in_tag(&dialog.local_tag).filter(|s| self.by_subscription.contains_key(s))
        {
            return Some(sub);
        }
        if self.untagged.is_empty() {
            return None;
        }
        self.untagged.get(&self.key(dialog)).copied()
    }

    pub(crate) fn remove(&mut self, id: SubscriptionId) -> Option<DialogState> {
        let state = self.by_subscription.remove(&id)?;
        self.take_deferred(id);
        if !self.untagged.is_empty() {
            self.untagged.retain(|_, sub| *sub != id);
        }
        Some(state)
    }
}

/// Where a dialog's NOTIFYs go (RFC 3261 §12.2.1.1, §8.1.2): to the first entry of the route
/// set when there is one (a proxy that record-routed the SUBSCRIBE; its `transport`
/// parameter says how), else to the watcher's Contact over the SUBSCRIBE's transport. Over
/// TCP, and whenever an address needs DNS, to where the SUBSCRIBE came from (the connection
/// it came over is reused).
pub(crate) fn notify_destination(d: &DialogView<'_>) -> (Proto, SocketAddr) {
    if let Some(first) = d.routes().next() {
        let uri =
            crate::uri::Uri::parse(first.trim().trim_start_matches('<').trim_end_matches('>'));
        if let Ok(uri) = uri {
            let proto = crate::sip::stack::uri_transport(&uri);
            if let Some(addr) = contact_address(&uri) {
                return (proto, addr);
            }
        }
        return (d.proto, d.peer);
    }
    if d.proto.is_stream() {
        return (d.proto, d.peer);
    }
    let contact = ip_address_of(d.remote_target).or_else(|| {
        crate::uri::Uri::parse(d.remote_target)
            .ok()
            .and_then(|u| contact_address(&u))
    });
    (Proto::Udp, contact.unwrap_or(d.peer))
}

/// The CSeq a dialog restored after a restart continues from: seconds since 2023-11-14
/// (Unix 1,700,000,000), below 2^31. Higher than any count of NOTIFYs a dialog sent before,
/// unless it sent more than one a second on average since that date; and it grows with each
/// restart.
pub(crate) fn restart_cseq(unix_ms: u64) -> u32 {
    let seconds = (unix_ms / 1000).saturating_sub(1_700_000_000);
    seconds.min((1 << 31) - (1 << 24)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::Proto;

    fn dialog(call_id: &str, local_tag: &str) -> SubscriptionDialog {
        SubscriptionDialog {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: "r1".into(),
            local_uri: "sip:alice@a.test".into(),
            remote_uri: "sip:bob@a.test".into(),
            remote_target: "sip:bob@192.0.2.4:5062".into(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 1,
            event: "presence".into(),
            proto: Proto::Udp,
            peer: "192.0.2.4:5062".parse().unwrap(),
        }
    }

    #[test]
    fn a_dialog_is_found_through_the_subscription_its_tag_names() {
        let mut dialogs = Dialogs::default();
        let d = dialog("c1", "0badf00d.2a");
        dialogs.insert(SubscriptionId(0x2a), &d, 0);
        assert!(dialogs.untagged.is_empty());
        assert_eq!(dialogs.candidate(&d.id()), Some(SubscriptionId(0x2a)));
        assert_eq!(dialogs.candidate(&dialog("c1", "0badf00d.2b").id()), None);
        // A tag naming the subscription is not enough: Call-ID and tags must all match
        // the subscription's target.
        let target = d.to_bytes_beside("sip:alice@a.test", "sip:bob@a.test");
        assert!(is_dialog(&target, &d.id()));
        for other in [dialog("c2", "0badf00d.2a"), dialog("c1", "0badf00e.2a")] {
            assert!(!is_dialog(&target, &other.id()), "{:?}", other.id());
        }
        let mut spoof = d.id();
        spoof.remote_tag = "r2".into();
        assert!(!is_dialog(&target, &spoof));
        assert!(dialogs.remove(SubscriptionId(0x2a)).is_some());
        assert_eq!(dialogs.candidate(&d.id()), None);
    }

    #[test]
    fn dialogs_with_tags_of_earlier_versions_are_found_by_their_id() {
        let mut dialogs = Dialogs::default();
        // Tags made before they named the subscription (a restored dialog), or naming
        // another one.
        let old = dialog("c1", "1f3a9c0de");
        let odd = dialog("c2", "0badf00d.99");
        dialogs.insert(SubscriptionId(7), &old, 0);
        dialogs.insert(SubscriptionId(8), &odd, 0);
        assert_eq!(dialogs.untagged.len(), 2);
        assert_eq!(dialogs.candidate(&old.id()), Some(SubscriptionId(7)));
        assert_eq!(dialogs.candidate(&odd.id()), Some(SubscriptionId(8)));
        assert_eq!(dialogs.candidate(&dialog("c3", "1f3a9c0de").id()), None);
        dialogs.remove(SubscriptionId(7));
        dialogs.remove(SubscriptionId(8));
        assert!(dialogs.untagged.is_empty());
        assert_eq!(dialogs.candidate(&old.id()), None);
    }

    #[test]
    fn the_time_left_never_exceeds_the_subscriptions() {
        let mut dialogs = Dialogs::default();
        // The engine's subscription ends at 12.7 s (clock ms 12_700).
        dialogs.insert(SubscriptionId(1), &dialog("c1", "0badf00d.1"), 12_700);
        let state = dialogs.by_subscription.get_mut(&SubscriptionId(1)).unwrap();
        // 3.5 s left at 9.2 s: under two seconds short (2), never more (4: a watcher
        // refreshing at 90% of it would come 0.1 s after the end).
        assert_eq!(state.remaining_s(9_200), 2);
        assert_eq!(state.remaining_s(12_600), 0);
        // Granted 10 s at 2.3 s: 9 s left a few milliseconds later.
        state.expire_after(2_300, 10);
        assert_eq!(state.remaining_s(2_305), 9);
        assert_eq!(state.remaining_s(12_300), 0);
    }

    #[test]
    fn dialog_state_is_small_and_counts_its_cseqs() {
        assert_eq!(
            std::mem::size_of::<Option<DialogState>>(),
            std::mem::size_of::<DialogState>()
        );
        assert!(std::mem::size_of::<DialogState>() <= 24);
        let mut dialogs = Dialogs::default();
        let mut d = dialog("c1", "0badf00d.1");
        d.local_cseq = 41;
        dialogs.insert(SubscriptionId(1), &d, 0);
        let state = dialogs.by_subscription.get_mut(&SubscriptionId(1)).unwrap();
        assert_eq!(state.take_cseq(), 42);
        assert_eq!(state.take_cseq(), 43);
        // Past the largest CSeq it starts again at 1, never 0.
        d.local_cseq = u32::MAX - 1;
        dialogs.insert(SubscriptionId(1), &d, 0);
        let state = dialogs.by_subscription.get_mut(&SubscriptionId(1)).unwrap();
        assert_eq!(state.take_cseq(), u32::MAX);
        assert_eq!(state.take_cseq(), 1);
    }
}

#[cfg(test)]
mod restart_tests {
    use super::restart_cseq;

    #[test]
    fn restored_dialogs_continue_with_a_higher_cseq() {
        // 2026-11-24: about 95 million seconds since the base.
        let now = restart_cseq(1_795_500_000_000);
        assert!(now > 90_000_000 && now < 1 << 31);
        assert!(restart_cseq(1_795_500_060_000) > now);
        assert_eq!(restart_cseq(0), 0);
        assert!(restart_cseq(u64::MAX) < 1 << 31);
    }
}
