//! The subscriptions to a shard's presentities (RFC 6665 event subscriptions, RFC 3856
//! presence, RFC 3857 watcher information): subscribe, refresh, unsubscribe and termination,
//! and the notifications that tell a watcher what it may see.
//!
//! # Rules
//!
//! - A subscription is decided when it is made: to watcher information only the presentity
//!   itself or a configured administrator may subscribe; any other package asks the rules
//!   ([`super::authorization`] holds the decisions given or changed later). A blocked
//!   subscription is told it was rejected and ends at once; one that waits for a decision is
//!   pending and is told no state.
//! - A fetch (expiry 0) gets one notification and ends at once (timeout). A subscription
//!   whose expiry runs out ends with timeout, or with giveup when it was still pending.
//! - A change of state (subscribe, decision, termination, renotify) always notifies. A change
//!   of what is watched notifies only when the subscription's filter's triggers say it is
//!   worth telling and its minimum interval has passed; changes held back by the interval go
//!   out as one notification of the latest state when it ends.
//! - A watcher's subscriptions share one copy of its URI, and the subscriptions to a
//!   presentity share the presentity's when they name it the same way.
//! - A remote watcher's subscription (one with a target) is soft state: written to the store
//!   behind ([`super::recovery`]), deleted when it ends.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{count_state, NewSubscription, Shard, LOG_TARGET};
use crate::doc::winfo::WatcherEvent;
use crate::engine::compose::neutral;
use crate::engine::events::{Event, Notification, SubscriptionState, TerminationReason};
use crate::engine::subscription::{Subscription, SubscriptionInfo, Throttle};
use crate::engine::timers::Timer;
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::{Document, Package};
use crate::model::rule::AuthAction;
use crate::uri::Uri;

impl Shard {
    pub(super) fn subscribe(&mut self, request: NewSubscription) -> Result<(SubscriptionId, u32)> {
        let NewSubscription {
            id,
            watcher,
            presentity,
            package,
            expires,
            filter,
            min_interval,
            remote,
        } = request;
        let key = presentity_key(&presentity);
        let fetch = expires == 0;
        let expires = if fetch {
            0
        } else {
            self.config
                .subscription_expiry
                .grant(Some(expires), "subscription")?
        };
        let action = if package == Package::PresenceWinfo {
            let own = presentity_key(&watcher) == key;
            let admin = self
                .config
                .winfo_admins
                .iter()
                .any(|a| presentity_key(a) == presentity_key(&watcher));
            if !own && !admin {
                return Err(Error::Forbidden(format!(
                    "{watcher} may not watch the watchers of {presentity} (only the presentity itself or a configured administrator may)"
                )));
            }
            AuthAction::Allow
        } else {
            if let Some(target) = self.redirection(&presentity, &watcher) {
                log::debug!(
                    target: LOG_TARGET,
                    "subscription {id}: {watcher} to {presentity} ({package}) redirected to {target}"
                );
                return Err(Error::Moved(target.to_string()));
            }
            if self.transport_decides(&presentity, &watcher) {
                self.first_or_pending(&presentity, &watcher, package)
            } else {
                let default = self.default_policy(&presentity, &watcher);
                self.rules.decide(&presentity, &watcher, default)
            }
        };
        // The bounds come before anything changes; past this point nothing fails.
        let watcher_key = presentity_key(&watcher);
        if fetch {
            self.tally.add(&watcher_key);
        } else {
            self.check_subscription_room(&key, &watcher_key, &watcher, &presentity)?;
        }
        log::debug!(
            target: LOG_TARGET,
            "subscription {id}: {watcher} to {presentity} ({package}) authorized: {action}"
        );
        let now = self.now();
        let expires_at = now + u64::from(expires) * 1000;
        let state = match action {
            AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
            AuthAction::Confirm => SubscriptionState::Pending,
            AuthAction::Block => SubscriptionState::Terminated(Some(TerminationReason::Rejected)),
            AuthAction::Redirect => unreachable!("a redirect is answered above"),
        };
        // The watchers of a presentity share its URI when they name it the same way: one
        // allocation per presentity instead of one per subscription.
        let known = &self.presentity_entry(&presentity).uri;
        let presentity = if known.to_string() == presentity.to_string() {
            known.clone()
        } else {
            presentity
        };
        // Likewise a watcher's subscriptions share its URI.
        let watcher = self.intern_watcher(watcher);
        let sub = Subscription::new(
            id,
            watcher.clone(),
            presentity.clone(),
            package,
            state,
            action,
            expires_at,
            now,
            filter,
            min_interval,
            remote,
        );
        self.presentity_entry(&presentity)
            .channels
            .entry(package)
            .or_default()
            .subscribers
            .push(id);
        self.count_state(package, None, Some(state));
        self.subscriptions.insert(id, sub);
        if !fetch {
            self.timers.schedule(expires_at, Timer::Subscription(id));
        }
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: id,
            watcher: watcher.clone(),
            presentity: presentity.clone(),
            package,
            state,
        });
        if package != Package::PresenceWinfo {
            let event = if action == AuthAction::Block {
                WatcherEvent::Rejected
            } else {
                WatcherEvent::Subscribe
            };
            self.log_watcher(id, event);
        }
        if action == AuthAction::Confirm {
            if package != Package::PresenceWinfo && self.transport_decides(&presentity, &watcher) {
                self.port.transport_asks(id);
            }
            self.outbox.push(Event::AuthorizationRequested {
                subscription: id,
                watcher,
                presentity,
                package,
            });
        }
        self.notify(id, true);
        if state.is_terminated() {
            self.drop_subscription(id);
        } else if fetch {
            self.terminate(id, Some(TerminationReason::Timeout));
        } else {
            self.persist_subscription(id);
        }
        Ok((id, if fetch { 0 } else { expires }))
    }

    /// Refuses a subscription past [`crate::engine::StateLimits`]'s bounds (counted);
    /// otherwise counts it in the watcher's tally.
    pub(super) fn check_subscription_room(
        &mut self,
        key: &str,
        watcher_key: &str,
        watcher: &Uri,
        presentity: &Uri,
    ) -> Result<()> {
        let limits = self.config.state_limits;
        let watchers = self.presentities.get(key).map_or(0, |p| {
            p.channels.values().map(|c| c.subscribers.len()).sum()
        }) + self.member_count(key);
        let refusal = if watchers >= limits.max_subscriptions_per_presentity as usize {
            format!(
                "{presentity} has {watchers} subscriptions, the most this server keeps for one presentity"
            )
        } else if !self
            .tally
            .try_add(watcher_key, limits.max_subscriptions_per_watcher)
        {
            format!(
                "{watcher} has {} subscriptions, the most this server keeps for one watcher",
                limits.max_subscriptions_per_watcher
            )
        } else {
            return Ok(());
        };
        self.counters
            .subscriptions_refused
            .fetch_add(1, Ordering::Relaxed);
        log::debug!(target: LOG_TARGET, "subscription of {watcher} to {presentity} refused: {refusal}");
        Err(Error::LimitReached(refusal))
    }

    pub(super) fn refresh_subscription(&mut self, id: SubscriptionId, expires: u32) -> Result<u32> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        if expires == 0 {
            return self.unsubscribe(id).map(|()| 0);
        }
        let expires = self
            .config
            .subscription_expiry
            .grant(Some(expires), "subscription")?;
        let expires_at = self.now() + u64::from(expires) * 1000;
        let sub = self.subscriptions.get_mut(&id).expect("checked above");
        sub.expires_at = expires_at;
        self.timers.schedule(expires_at, Timer::Subscription(id));
        self.persist_subscription(id);
        Ok(expires)
    }

    pub(super) fn unsubscribe(&mut self, id: SubscriptionId) -> Result<()> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        self.terminate(id, None);
        Ok(())
    }

    /// Ends subscription `id` from the notifier's side, for `reason`.
    pub(super) fn end_subscription(
        &mut self,
        id: SubscriptionId,
        reason: TerminationReason,
    ) -> Result<()> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        self.terminate(id, Some(reason));
        Ok(())
    }

    /// Tells subscription `id`'s watcher the full current state again.
    pub(super) fn renotify(&mut self, id: SubscriptionId) -> Result<()> {
        if !self.subscriptions.contains_key(&id) {
            return Err(unknown_subscription(id));
        }
        self.notify(id, true);
        Ok(())
    }

    /// A snapshot of subscription `id`.
    pub(super) fn subscription_info(&self, id: SubscriptionId) -> Result<SubscriptionInfo> {
        let now = self.now();
        match self.subscriptions.get(&id) {
            Some(s) => Ok(s.info(now)),
            None => self.member_info(id),
        }
    }

    /// Snapshots of the live subscriptions, all or those of the presentity with key
    /// `presentity`, by id (for an operator's view: a scan, not a hot path).
    pub(super) fn list_subscriptions(&self, presentity: Option<&str>) -> Vec<SubscriptionInfo> {
        let now = self.now();
        let mut all: Vec<_> = self
            .subscriptions
            .values()
            .filter(|s| match presentity {
                Some(key) => super::presentity_key(&s.presentity) == key,
                None => true,
            })
            .map(|s| s.info(now))
            .collect();
        all.extend(self.member_infos(presentity));
        all.sort_by_key(|s| s.id);
        all
    }

    /// Ends a subscription: final notification, watcher-info entry, removal.
    pub(super) fn terminate(&mut self, id: SubscriptionId, reason: Option<TerminationReason>) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        let old = sub.state;
        let state = SubscriptionState::Terminated(reason);
        sub.state = state;
        count_state(&self.counters, sub.package, Some(old), Some(state));
        let (watcher, presentity, package) =
            (sub.watcher.clone(), sub.presentity.clone(), sub.package);
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: id,
            watcher,
            presentity,
            package,
            state,
        });
        if package != Package::PresenceWinfo {
            let event = match reason {
                Some(TerminationReason::Deactivated) => WatcherEvent::Deactivated,
                Some(TerminationReason::Probation) => WatcherEvent::Probation,
                Some(TerminationReason::Rejected) => WatcherEvent::Rejected,
                Some(TerminationReason::Giveup) => WatcherEvent::Giveup,
                Some(TerminationReason::Noresource) => WatcherEvent::Noresource,
                Some(TerminationReason::Timeout) | None => WatcherEvent::Timeout,
            };
            self.log_watcher(id, event);
        }
        self.notify(id, true);
        self.drop_subscription(id);
    }

    fn drop_subscription(&mut self, id: SubscriptionId) {
        let Some(sub) = self.subscriptions.remove(&id) else {
            return;
        };
        if sub.target().is_some() && self.soft_state {
            self.config
                .store
                .submit(crate::store::Write::DeleteSubscription(id.0), None);
        }
        self.count_state(sub.package, Some(sub.state), None);
        self.tally.remove(&presentity_key(&sub.watcher));
        let key = presentity_key(&sub.presentity);
        if let Some(p) = self.presentities.get_mut(&key) {
            if let Some(c) = p.channels.get_mut(&sub.package) {
                c.subscribers.retain(|s| *s != id);
            }
            if sub.package != Package::PresenceWinfo {
                p.watchers.forget(id);
            }
        }
        self.collect_if_idle(&key);
    }

    /// Queues a notification for subscription `id` with what its watcher may see now.
    /// `full` forces one (state changes); otherwise filters' triggers and the minimum
    /// interval may hold it back.
    pub(super) fn notify(&mut self, id: SubscriptionId, full: bool) {
        self.notify_with(id, full, None);
    }

    /// [`Shard::notify`], given the channel's current composition when the caller has it in
    /// hand (a publication changed): one notification per watcher then costs no presentity
    /// key (an allocated string) and no presentity or channel lookup.
    pub(super) fn notify_with(
        &mut self,
        id: SubscriptionId,
        full: bool,
        composed: Option<&Arc<Document>>,
    ) {
        let Some(sub) = self.subscriptions.get(&id) else {
            return;
        };
        let (package, state, action) = (sub.package, sub.state, sub.action);
        if !full && state == SubscriptionState::Pending {
            // A pending watcher sees no state, so a change of state has nothing to tell it.
            return;
        }
        let document: Option<Arc<Document>> = match state {
            SubscriptionState::Active => Some(match (package, action) {
                (Package::PresenceWinfo, _) => {
                    let key = presentity_key(&sub.presentity);
                    self.watcher_info(&key, id, full)
                }
                (_, AuthAction::PoliteBlock) => Arc::new(neutral(package, &sub.presentity)),
                _ => match composed {
                    Some(document) => document.clone(),
                    None => {
                        let key = presentity_key(&sub.presentity);
                        self.composed(&key, package)
                    }
                },
            }),
            _ => None,
        };
        // One lookup for the common case; the fields used below are disjoint from
        // `subscriptions`, so they are borrowed alongside it.
        let sub = self.subscriptions.get_mut(&id).expect("looked up above");
        // Only a subscription with a minimum interval reads the clock (a clock read per
        // notification showed in profiles).
        let now = if sub.uses_clock() {
            self.config.clock.now_ms()
        } else {
            0
        };
        let Some(document) = sub.shape(document, full) else {
            return; // a filter's trigger says this change is not worth telling
        };
        if !full && !state.is_terminated() {
            match sub.throttle(now) {
                Throttle::Send => {}
                Throttle::HoldUntil(at) => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    self.timers.schedule(at, Timer::Throttle(id));
                    return;
                }
                Throttle::Held => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        sub.notified(now);
        let (watcher, presentity) = (sub.watcher.clone(), sub.presentity.clone());
        let target = sub.target().cloned();
        let full_state = match (&document, package, full) {
            (Some(_), Package::PresenceWinfo, false) => {
                let version = sub.winfo_version().saturating_sub(1);
                let key = presentity_key(&presentity);
                Some(self.watcher_info_full(&key, version))
            }
            _ => None,
        };
        self.notified += 1;
        log::trace!(
            target: LOG_TARGET,
            "subscription {id}: notification queued ({state:?})"
        );
        self.outbox.push(Event::Notification(Notification {
            subscription: id,
            watcher,
            presentity,
            package,
            state,
            document,
            full_state,
            target,
        }));
    }

    /// A subscription's expiry timer, set for `deadline`: the subscription ends unless it
    /// was refreshed or ended since.
    pub(super) fn subscription_timer(&mut self, id: SubscriptionId, deadline: u64) {
        if self
            .subscriptions
            .get(&id)
            .is_some_and(|s| s.expires_at == deadline)
        {
            let pending = self.subscriptions[&id].state == SubscriptionState::Pending;
            // A watcher still waiting for a decision when its subscription runs
            // out gave up on it (RFC 3857 "giveup").
            let reason = if pending {
                TerminationReason::Giveup
            } else {
                TerminationReason::Timeout
            };
            let sub = &self.subscriptions[&id];
            log::debug!(
                target: LOG_TARGET,
                "subscription {id}: {} to {} ({}) expired ({})",
                sub.watcher,
                sub.presentity,
                sub.package,
                if pending {
                    "still pending: giveup"
                } else {
                    "timeout"
                }
            );
            self.terminate(id, Some(reason));
        }
    }

    /// The end of a subscription's minimum interval, set for `deadline`, while changes are
    /// held back.
    pub(super) fn throttle_timer(&mut self, id: SubscriptionId, deadline: u64) {
        if self
            .subscriptions
            .get(&id)
            .is_some_and(|s| s.held_until() == Some(deadline))
        {
            // The held changes go out as one notification of the latest state;
            // forced, because the filter's triggers already passed them.
            self.notify(id, true);
        }
    }
}

pub(super) fn unknown_subscription(id: SubscriptionId) -> Error {
    Error::NotFound(format!("no subscription {id} (it ended or never existed)"))
}
