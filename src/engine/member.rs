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

use std::sync::Arc;
use std::time::Duration;

use super::events::{SubscriptionState, TerminationReason};
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

/// One watcher of a shared subscription. Kept at 16 bytes with an alignment of 4: a list
/// server holds one per (subscriber, resource), fifty per busy-lamp phone (issue 16). So a
/// member holds numbers where a subscription holds values, and its shard turns them back:
/// its watcher is a place in the shard's table of watcher URIs (4 bytes, where an `Arc`
/// took 8 and an alignment of 8; see `shard::watcher_uris`), its id is the lower half of
/// its number and a place among the upper halves in use ([`MemberNames`]), and its
/// decision and state share one byte.
pub(crate) struct Member {
    /// The watcher's place in the shard's table of watcher URIs.
    pub(crate) watcher: u32,
    /// The lower half of its number (see [`MemberNames`]).
    number_low: u32,
    /// When it joined, in whole seconds of the shard clock (for watcher information).
    subscribed_s: u32,
    /// The list dialogs that hold it.
    pub(crate) holders: u8,
    /// Its decision and state ([`pack`]).
    decided: u8,
    winfo: WinfoMark,
    /// The place of the upper half of its number in the shard's [`MemberNames`].
    number_high: u8,
}

/// The decisions and states a member may have, by the index [`pack`] gives them.
const ACTIONS: [AuthAction; 5] = [
    AuthAction::Allow,
    AuthAction::Block,
    AuthAction::PoliteBlock,
    AuthAction::Confirm,
    AuthAction::Redirect,
];

/// Likewise the states.
const STATES: [SubscriptionState; 9] = [
    SubscriptionState::Active,
    SubscriptionState::Pending,
    SubscriptionState::Terminated(None),
    SubscriptionState::Terminated(Some(TerminationReason::Deactivated)),
    SubscriptionState::Terminated(Some(TerminationReason::Probation)),
    SubscriptionState::Terminated(Some(TerminationReason::Rejected)),
    SubscriptionState::Terminated(Some(TerminationReason::Timeout)),
    SubscriptionState::Terminated(Some(TerminationReason::Giveup)),
    SubscriptionState::Terminated(Some(TerminationReason::Noresource)),
];

/// A decision and a state in one byte: the state's index times eight plus the decision's.
fn pack(action: AuthAction, state: SubscriptionState) -> u8 {
    let a = ACTIONS.iter().position(|x| *x == action).unwrap_or(0);
    let s = STATES.iter().position(|x| *x == state).unwrap_or(0);
    (s << 3 | a) as u8
}

impl Member {
    /// A member numbered `number` (what [`MemberNames::name`] gave) of the watcher at
    /// place `watcher`.
    pub(crate) fn new(
        number: Number,
        watcher: u32,
        action: AuthAction,
        state: SubscriptionState,
        now: u64,
    ) -> Member {
        Member {
            watcher,
            number_low: number.low,
            subscribed_s: u32::try_from(now / 1000).unwrap_or(u32::MAX),
            holders: 1,
            decided: pack(action, state),
            winfo: WinfoMark::new(
                status_of_event(state, WatcherEvent::Subscribe),
                WatcherEvent::Subscribe,
            ),
            number_high: number.high,
        }
    }

    /// What the presentity's rules, its policy or the presentity decided.
    pub(crate) fn action(&self) -> AuthAction {
        ACTIONS[usize::from(self.decided & 7)]
    }

    pub(crate) fn state(&self) -> SubscriptionState {
        STATES[usize::from(self.decided >> 3)]
    }

    pub(crate) fn set_action(&mut self, action: AuthAction) {
        self.decided = pack(action, self.state());
    }

    pub(crate) fn set_state(&mut self, state: SubscriptionState) {
        self.decided = pack(self.action(), state);
    }

    /// How long ago it joined, in whole seconds.
    pub(crate) fn age_s(&self, now: u64) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.subscribed_s))
    }

    /// Records the watcher status an event gave it.
    pub(crate) fn set_winfo(&mut self, event: WatcherEvent) {
        self.winfo = WinfoMark::new(status_of_event(self.state(), event), event);
    }

    pub(crate) fn winfo_status(&self) -> WatcherStatus {
        self.winfo.status()
    }

    pub(crate) fn winfo_event(&self) -> WatcherEvent {
        self.winfo.event()
    }

    /// A snapshot, as the operator's views show subscriptions: no expiry of its own
    /// (`expires_in` zero) and the member target. `id` and `watcher` are its own, as its
    /// shard names them.
    pub(crate) fn info(
        &self,
        id: SubscriptionId,
        watcher: &Uri,
        presentity: &Uri,
        package: Package,
    ) -> SubscriptionInfo {
        SubscriptionInfo {
            id,
            watcher: watcher.clone(),
            presentity: presentity.clone(),
            package,
            state: self.state(),
            authorization: self.action(),
            expires_in: Duration::ZERO,
            target: Some(Arc::from(MEMBER_TARGET)),
        }
    }
}

/// What a member keeps of its id: the lower half of its number and the place of the upper
/// half in its shard's [`MemberNames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Number {
    low: u32,
    high: u8,
}

/// The upper halves of the numbers of a shard's members, which turn a member's [`Number`]
/// back into its id (see [`Member`]).
///
/// A member's id is the engine's, drawn by `Core::join` from the counter every
/// subscription draws from (kept across restarts) and routed by its remainder: `id` is
/// `number × workers + shard`. The shard is known, so a member keeps its number, and of
/// the number only the lower half and the place of the upper half in a short table of the
/// upper halves its live members have, each counted. The numbers grow with time, so that
/// table holds one or two entries; it would need 256 (and refuse a join) only if a member
/// lived while a trillion (2^40) more subscriptions and members were numbered.
pub(crate) struct MemberNames {
    /// (upper half, members having it); a free entry has none.
    highs: Vec<(u32, u32)>,
    shard: u64,
    workers: u64,
}

impl MemberNames {
    /// The names of shard `shard` of `workers`.
    pub(crate) fn new(shard: usize, workers: usize) -> MemberNames {
        MemberNames {
            highs: Vec::new(),
            shard: shard as u64,
            workers: workers.max(1) as u64,
        }
    }

    /// The number of a new member `id` (counted until [`MemberNames::release`]); `None`
    /// when its upper half finds no place (see above) or its id is not this shard's.
    pub(crate) fn name(&mut self, id: SubscriptionId) -> Option<Number> {
        if id.0 % self.workers != self.shard {
            return None;
        }
        let number = id.0 / self.workers;
        let high = (number >> 32) as u32;
        let at = match self.highs.iter().position(|h| h.1 > 0 && h.0 == high) {
            Some(at) => at,
            None => match self.highs.iter().position(|h| h.1 == 0) {
                Some(at) => at,
                None if self.highs.len() <= usize::from(u8::MAX) => {
                    self.highs.push((high, 0));
                    self.highs.len() - 1
                }
                None => return None,
            },
        };
        self.highs[at] = (high, self.highs[at].1 + 1);
        Some(Number {
            low: number as u32,
            high: at as u8,
        })
    }

    /// Forgets `number` (its member is gone, or was never made).
    pub(crate) fn release(&mut self, number: Number) {
        self.highs[usize::from(number.high)].1 -= 1;
    }

    /// Member `m`'s id.
    pub(crate) fn id(&self, m: &Member) -> SubscriptionId {
        let high = self.highs[usize::from(m.number_high)].0;
        let number = u64::from(high) << 32 | u64::from(m.number_low);
        SubscriptionId(number * self.workers + self.shard)
    }

    /// What a member with id `id` keeps of it (lower half, place of the upper half), if a
    /// live member's number has that upper half: to find it without rebuilding every id.
    pub(crate) fn number_of(&self, id: SubscriptionId) -> Option<Number> {
        if id.0 % self.workers != self.shard {
            return None;
        }
        let number = id.0 / self.workers;
        let high = (number >> 32) as u32;
        let at = self.highs.iter().position(|h| h.1 > 0 && h.0 == high)?;
        Some(Number {
            low: number as u32,
            high: at as u8,
        })
    }
}

impl Member {
    pub(crate) fn number(&self) -> Number {
        Number {
            low: self.number_low,
            high: self.number_high,
        }
    }

    /// Whether it has `number` (what [`MemberNames::number_of`] gave).
    pub(crate) fn is(&self, number: Number) -> bool {
        self.number() == number
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
    fn a_member_is_16_bytes_aligned_on_4() {
        // A list server holds one per (subscriber, resource): a byte here is fifty per
        // busy-lamp phone (issue 16).
        assert_eq!(std::mem::size_of::<Member>(), 16);
        assert_eq!(std::mem::align_of::<Member>(), 4);
    }

    #[test]
    fn a_member_keeps_its_whole_id() {
        let (shard, workers) = (3u64, 4u64);
        let mut names = MemberNames::new(shard as usize, workers as usize);
        let numbers = [
            0,
            7,
            u64::from(u32::MAX),
            1 << 32,
            (5 << 32) + 9,
            u64::MAX / 8,
        ];
        let members: Vec<Member> = numbers
            .iter()
            .map(|n| {
                let number = names.name(SubscriptionId(n * workers + shard)).unwrap();
                Member::new(number, 0, AuthAction::Allow, SubscriptionState::Active, 0)
            })
            .collect();
        assert_eq!(names.highs.len(), 4, "upper halves 0, 1, 5 and 2^29 - 1");
        for (n, m) in numbers.iter().zip(&members) {
            let id = SubscriptionId(n * workers + shard);
            assert_eq!(names.id(m), id);
            assert!(m.is(names.number_of(id).unwrap()));
        }
        assert_eq!(names.name(SubscriptionId(8)), None, "another shard's id");
        for m in &members {
            names.release(m.number());
        }
        assert_eq!(names.number_of(SubscriptionId(3)), None);
        let number = names.name(SubscriptionId((9 << 32) * workers + shard));
        assert_eq!(
            number.map(|n| n.high),
            Some(0),
            "a free upper half is reused"
        );
    }

    #[test]
    fn a_decision_and_a_state_share_a_byte() {
        let mut m = Member::new(
            MemberNames::new(0, 1).name(SubscriptionId(0)).unwrap(),
            0,
            AuthAction::Confirm,
            SubscriptionState::Pending,
            0,
        );
        for action in ACTIONS {
            for state in STATES {
                m.set_action(action);
                m.set_state(state);
                assert_eq!((m.action(), m.state()), (action, state));
            }
        }
    }
}
