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

/// One watcher of a shared subscription. Kept at 24 bytes: a list server holds one per
/// (subscriber, resource).
pub(crate) struct Member {
    pub(crate) watcher: Arc<Uri>,
    pub(crate) id: SubscriptionId,
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
        watcher: Arc<Uri>,
        action: AuthAction,
        state: SubscriptionState,
        now: u64,
    ) -> Member {
        Member {
            watcher,
            id,
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
    /// (`expires_in` zero) and the member target.
    pub(crate) fn info(&self, presentity: &Uri, package: Package) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id,
            watcher: (*self.watcher).clone(),
            presentity: presentity.clone(),
            package,
            state: self.state,
            authorization: self.action,
            expires_in: Duration::ZERO,
            target: Some(Arc::from(MEMBER_TARGET)),
        }
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
    fn a_member_is_24_bytes() {
        assert!(
            std::mem::size_of::<Member>() <= 24,
            "{}",
            std::mem::size_of::<Member>()
        );
    }
}
