//! Who may watch a shard's presentities (DESIGN §1 "authorization"): the rules about a
//! presentity's watchers (set, remove, list; [`crate::engine::authorization::RuleBook`]
//! evaluates them), the decisions they give, and the decisions an application gives on
//! pending watchers.
//!
//! # Rules
//!
//! - A decision can be given later and changed later: a rule that is set or removed is
//!   applied at once to the presentity's existing subscriptions, and an application may
//!   decide any subscription at any time.
//! - Approve (allow) moves a subscription to active with a full notification; polite-block
//!   makes it active with a neutral document; block (or revoke) ends it as rejected;
//!   confirm moves it back to pending, where the watcher sees nothing more and the
//!   application is asked again.
//! - A pending subscription stays pending until someone decides: a rule that still says
//!   confirm does not ask again.
//! - A rule is written to the store before it takes effect: when the store refuses, nothing
//!   changes.
//! - Watcher-information subscriptions need no authorization (who may make them is decided
//!   when they are made, [`super::subscriptions`]).
//!
//! # Redirect
//!
//! A redirect is not a state a subscription can be in: it says the subscription is served
//! by another presence agent. A new subscription a redirect rule covers is not made (the
//! caller gets [`Error::Moved`] with the rule's target). A live one that a new redirect
//! rule covers, or that the application redirects ([`Shard::redirect`]), ends with reason
//! `deactivated`, so its watcher subscribes again at once and meets the redirect then. The
//! application's decision is about one subscription, not a rule: the shard remembers it
//! for the watcher's next subscription to that presentity only, for
//! [`REDIRECT_MEMORY_MS`], and for at most [`REDIRECT_MEMORY_ENTRIES`] watchers.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::subscriptions::unknown_subscription;
use super::{count_state, Shard, LOG_TARGET};
use crate::doc::winfo::WatcherEvent;
use crate::engine::events::{Event, SubscriptionState, TerminationReason};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::Package;
use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
use crate::uri::Uri;

/// How long an application's redirect of one subscription waits for the watcher's next
/// subscription (a watcher told `deactivated` subscribes again at once).
pub const REDIRECT_MEMORY_MS: u64 = 64_000;

/// How many redirected watchers a shard remembers at once; past it, the oldest decision is
/// forgotten (that watcher's next subscription is decided by the rules again).
pub const REDIRECT_MEMORY_ENTRIES: usize = 4096;

/// The application's redirects waiting for their watchers' next subscription, by
/// (presentity key, watcher key): the target and when the memory ends.
#[derive(Debug, Default)]
pub(crate) struct Redirected {
    by_pair: HashMap<(String, String), (Uri, u64)>,
}

impl Redirected {
    pub(super) fn remember(&mut self, presentity: &Uri, watcher: &Uri, target: Uri, now: u64) {
        self.by_pair.retain(|_, (_, until)| *until > now);
        if self.by_pair.len() >= REDIRECT_MEMORY_ENTRIES {
            let oldest = self
                .by_pair
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_pair.remove(&k);
            }
        }
        let key = (presentity_key(presentity), presentity_key(watcher));
        self.by_pair.insert(key, (target, now + REDIRECT_MEMORY_MS));
    }

    /// Whether a target waits for `watcher`'s subscription to `presentity`.
    fn waits(&self, presentity: &Uri, watcher: &Uri, now: u64) -> bool {
        !self.by_pair.is_empty()
            && self
                .by_pair
                .get(&(presentity_key(presentity), presentity_key(watcher)))
                .is_some_and(|(_, until)| *until > now)
    }

    /// The target waiting for `watcher`'s subscription to `presentity`, taken out.
    fn take(&mut self, presentity: &Uri, watcher: &Uri, now: u64) -> Option<Uri> {
        if self.by_pair.is_empty() {
            return None;
        }
        let key = (presentity_key(presentity), presentity_key(watcher));
        let (target, until) = self.by_pair.remove(&key)?;
        (until > now).then_some(target)
    }
}

impl Shard {
    /// The live subscription `id` an application may decide: any but a watcher-information
    /// one, which needs no authorization (who may make it is decided when it is made).
    fn decidable(&self, id: SubscriptionId) -> Result<&crate::engine::subscription::Subscription> {
        let sub = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| unknown_subscription(id))?;
        if sub.package == Package::PresenceWinfo {
            return Err(Error::InvalidArgument(format!(
                "subscription {id} watches watcher information, which needs no authorization"
            )));
        }
        Ok(sub)
    }

    pub(super) fn authorize(&mut self, id: SubscriptionId, action: AuthAction) -> Result<()> {
        if action != AuthAction::Redirect && !self.subscriptions.contains_key(&id) {
            return self.authorize_member(id, action);
        }
        self.decidable(id)?;
        if action == AuthAction::Redirect {
            return Err(Error::InvalidArgument(format!(
                "a redirect of subscription {id} needs the presence agent to send it to (redirect, not authorize)"
            )));
        }
        self.apply_decision(id, action);
        Ok(())
    }

    /// The application sends one subscription elsewhere (see "Redirect").
    pub(super) fn redirect(&mut self, id: SubscriptionId, target: Uri) -> Result<()> {
        if !self.subscriptions.contains_key(&id) {
            return self.redirect_member(id, target);
        }
        let sub = self.decidable(id)?;
        let (presentity, watcher) = (sub.presentity.clone(), sub.watcher.clone());
        let now = self.now();
        self.redirected.remember(&presentity, &watcher, target, now);
        log::debug!(target: LOG_TARGET, "subscription {id}: redirected");
        self.terminate(id, Some(TerminationReason::Deactivated));
        Ok(())
    }

    /// Where a new subscription of `watcher` to `presentity` is sent instead of being made
    /// here, if anywhere: the application's redirect waiting for it, else a redirect rule.
    pub(super) fn redirection(&mut self, presentity: &Uri, watcher: &Uri) -> Option<Uri> {
        let now = self.now();
        self.redirected
            .take(presentity, watcher, now)
            .or_else(|| self.rules.redirect_target(presentity, watcher).cloned())
    }

    /// Whether the transport decides on `watcher` of `presentity` rather than this engine's
    /// rules and default ([`crate::engine::PortOptions::subscription_events`]): a presentity
    /// of a domain the engine does not own, a transport that keeps back-end subscriptions,
    /// and no rule that restricts the watcher (block, polite-block, confirm). Its requests
    /// for a decision go to the transport alone.
    pub(super) fn transport_decides(&self, presentity: &Uri, watcher: &Uri) -> bool {
        self.port.decides_remote_watchers()
            && !self.config.owns(presentity)
            && !self.served.contains(presentity)
            && presentity_key(presentity) != presentity_key(watcher)
            && matches!(
                self.rules.ruled(presentity, watcher),
                None | Some(AuthAction::Allow)
            )
    }

    /// The action for a watcher no rule names: the configured policy, or `block` for a
    /// presentity served here (its rules are its server's, learned whole; see
    /// [`crate::engine::served`]).
    pub(super) fn default_policy(&self, presentity: &Uri, watcher: &Uri) -> AuthAction {
        if self.served.contains(presentity) {
            AuthAction::Block
        } else {
            self.config.policy_for(presentity, watcher)
        }
    }

    /// For a new subscription the transport decides on ([`Shard::transport_decides`]):
    /// `Allow` when `presentity` has no state for `package` here and no other watcher (there
    /// is nothing to show, and the transport's subscription is made in this watcher's name),
    /// else `Confirm` (pending until the transport says).
    pub(super) fn first_or_pending(
        &self,
        presentity: &Uri,
        watcher: &Uri,
        package: Package,
    ) -> AuthAction {
        let wkey = presentity_key(watcher);
        let channel = self
            .presentities
            .get(&presentity_key(presentity))
            .and_then(|p| p.channels.get(&package));
        let shared = channel.is_some_and(|c| {
            !c.publications.is_empty()
                || c.subscribers.iter().any(|id| {
                    self.subscriptions
                        .get(id)
                        .is_some_and(|s| presentity_key(&s.watcher) != wkey)
                })
        });
        if shared {
            AuthAction::Confirm
        } else {
            AuthAction::Allow
        }
    }

    /// Moves a subscription to what `action` says: approve (pending → active with a full
    /// notification), polite-block (active, neutral document), block/revoke (terminated,
    /// rejected), confirm (back to pending: the watcher sees nothing more).
    fn apply_decision(&mut self, id: SubscriptionId, action: AuthAction) {
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return;
        };
        if sub.action == action && sub.state != SubscriptionState::Pending {
            return;
        }
        log::debug!(
            target: LOG_TARGET,
            "subscription {id}: authorization decided: {action} (was {})",
            sub.action
        );
        let old_state = sub.state;
        sub.action = action;
        let state = match action {
            AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
            AuthAction::Confirm => SubscriptionState::Pending,
            AuthAction::Block => {
                self.terminate(id, Some(TerminationReason::Rejected));
                return;
            }
            // A rule now sends this watcher elsewhere: it subscribes again and meets it.
            AuthAction::Redirect => {
                self.terminate(id, Some(TerminationReason::Deactivated));
                return;
            }
        };
        if state == old_state && action == AuthAction::Confirm {
            return;
        }
        sub.state = state;
        count_state(&self.counters, sub.package, Some(old_state), Some(state));
        let (watcher, presentity, package) =
            (sub.watcher.clone(), sub.presentity.clone(), sub.package);
        self.persist_subscription(id);
        if old_state != state {
            self.outbox.push(Event::SubscriptionStateChanged {
                subscription: id,
                watcher,
                presentity,
                package,
                state,
            });
            match state {
                SubscriptionState::Active => self.log_watcher(id, WatcherEvent::Approved),
                SubscriptionState::Pending => {
                    // Back to waiting for a decision: ask again.
                    let sub = &self.subscriptions[&id];
                    if self.transport_decides(&sub.presentity, &sub.watcher) {
                        self.port.transport_asks(id);
                    }
                    self.outbox.push(Event::AuthorizationRequested {
                        subscription: id,
                        watcher: sub.watcher.clone(),
                        presentity: sub.presentity.clone(),
                        package: sub.package,
                    });
                }
                SubscriptionState::Terminated(_) => {}
            }
        }
        self.notify(id, true);
    }

    pub(super) fn set_rule(&mut self, rule: AuthRule) -> Result<()> {
        self.config.store.save_rule(&rule)?;
        let presentity = rule.presentity.clone();
        self.rules.set(rule);
        self.reevaluate(&presentity);
        Ok(())
    }

    pub(super) fn remove_rule(&mut self, presentity: &Uri, watcher: &WatcherMatch) -> Result<bool> {
        self.config.store.delete_rule(presentity, watcher)?;
        let removed = self.rules.remove(presentity, watcher);
        if removed {
            self.reevaluate(presentity);
        }
        Ok(removed)
    }

    /// The rules about `presentity`'s watchers.
    /// What a new subscription (not to watcher information) of `watcher` to `presentity`
    /// would be decided now: the rules, else the policy; `Confirm` while the transport
    /// would decide it ([`Shard::transport_decides`]).
    pub(super) fn decision(&self, presentity: &Uri, watcher: &Uri) -> AuthAction {
        // The application's redirect waiting for this watcher's next subscription wins, as
        // it does when the subscription is made.
        if self.redirected.waits(presentity, watcher, self.now()) {
            return AuthAction::Redirect;
        }
        if self.transport_decides(presentity, watcher) {
            return AuthAction::Confirm;
        }
        let default = self.default_policy(presentity, watcher);
        self.rules.decide(presentity, watcher, default)
    }

    pub(super) fn list_rules(&self, presentity: &Uri) -> Vec<AuthRule> {
        self.rules.rules_for(presentity)
    }

    /// Applies changed rules to the presentity's existing subscriptions: a decision can be
    /// given later and changed later.
    fn reevaluate(&mut self, presentity: &Uri) {
        let key = presentity_key(presentity);
        let ids: Vec<SubscriptionId> = self
            .presentities
            .get(&key)
            .map(|p| {
                p.channels
                    .iter()
                    .filter(|(package, _)| **package != Package::PresenceWinfo)
                    .flat_map(|(_, c)| c.subscribers.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let Some(sub) = self.subscriptions.get(&id) else {
                continue;
            };
            if self.transport_decides(&sub.presentity, &sub.watcher) {
                // The transport decided for the presentity's domain (or is deciding): a rule
                // that no longer restricts leaves its decision alone; one that was waiting
                // for the application's word now waits for the transport's.
                if sub.state == SubscriptionState::Pending {
                    let (watcher, presentity, package) =
                        (sub.watcher.clone(), sub.presentity.clone(), sub.package);
                    self.port.transport_asks(id);
                    self.outbox.push(Event::AuthorizationRequested {
                        subscription: id,
                        watcher,
                        presentity,
                        package,
                    });
                }
                continue;
            }
            let default = self.default_policy(&sub.presentity, &sub.watcher);
            let action = self.rules.decide(&sub.presentity, &sub.watcher, default);
            // A pending subscription stays pending until someone decides; a rule that
            // still says confirm does not re-ask.
            if action != sub.action {
                self.apply_decision(id, action);
            }
        }
        self.reevaluate_members(&key);
    }
}
