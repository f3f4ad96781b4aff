//! Members of a shared subscription ([`crate::engine::member`]) on a shard: joining and
//! leaving, their authorization (given, changed by the rules or by the presentity), their
//! notifications, and the group's.
//!
//! # Rules
//!
//! - A watcher joins a presentity's package once however many list dialogs hold it: the
//!   second join counts a holder and tells the member's state again (for the new dialog);
//!   a leave forgets a holder, and the last one removes the member.
//! - A join is decided as a subscription is ([`super::subscriptions`]): a redirect is
//!   refused with [`Error::Moved`], the per-presentity and per-watcher bounds count members
//!   like subscriptions, and the rules or policy give allow, polite-block, confirm (pending,
//!   the application is asked) or block.
//! - A blocked member stays, terminated (`rejected`), until its holders leave: the rules or
//!   the presentity may allow it later, which a lone subscription could not wait for (its
//!   watcher would have to subscribe again). A member told `deactivated` (redirected) is
//!   decided again when a holder joins again.
//! - Each change of a member's state is one notification of the member, with the document
//!   it may see; each change of the presentity's document is one notification of the group
//!   (its id), carrying the composed document for the members that see it.
//! - A member keeps its watcher and its id as numbers its shard gives when it joins and
//!   takes back when it leaves (a place in [`super::watcher_uris`], a
//!   [`crate::engine::member::Number`]): a join or leave finds its member by comparing
//!   watcher places, and a member stays 16 bytes (a list server holds one per subscriber
//!   and resource).
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::subscriptions::unknown_subscription;
use super::{count_state, Shard, LOG_TARGET};
use crate::doc::winfo::WatcherEvent;
use crate::engine::compose::neutral;
use crate::engine::events::{Event, Notification, SubscriptionState, TerminationReason};
use crate::engine::member::{
    Group, Member, GROUP_TARGET, MAX_HOLDERS, MEMBER_APART_TARGET, MEMBER_TARGET,
};
use crate::engine::subscription::SubscriptionInfo;
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::{Document, Package};
use crate::model::rule::AuthAction;
use crate::model::snug::{push_snug, trim_snug};
use crate::uri::Uri;

/// Where a member is: its presentity's key, the package and its index in the group.
type At = (String, Package, usize);

/// The state a decision gives a member.
fn state_of(action: AuthAction) -> SubscriptionState {
    match action {
        AuthAction::Allow | AuthAction::PoliteBlock => SubscriptionState::Active,
        AuthAction::Confirm => SubscriptionState::Pending,
        AuthAction::Block => SubscriptionState::Terminated(Some(TerminationReason::Rejected)),
        AuthAction::Redirect => SubscriptionState::Terminated(Some(TerminationReason::Deactivated)),
    }
}

impl Shard {
    /// `watcher` joins the shared subscription of `presentity`'s `package`: `member` names
    /// it if it is new, `group` the group if that is new too.
    pub(super) fn join(
        &mut self,
        package: Package,
        watcher: Arc<Uri>,
        presentity: Arc<Uri>,
        member: SubscriptionId,
        group: SubscriptionId,
    ) -> Result<()> {
        if package == Package::PresenceWinfo {
            return Err(Error::InvalidArgument(
                "watcher information is not shared between watchers".into(),
            ));
        }
        let key = presentity_key(&presentity);
        if let Some(at) = self.member_of(&key, package, &watcher) {
            let m = self.member_mut(&at);
            if m.holders == MAX_HOLDERS {
                return Err(Error::LimitReached(format!(
                    "{watcher} holds {presentity} in {MAX_HOLDERS} lists already"
                )));
            }
            m.holders += 1;
            if m.state() == SubscriptionState::Terminated(Some(TerminationReason::Deactivated)) {
                // Redirected: decided again (a redirect waiting for it is refused below).
                let decided = self.decide_join(&presentity, &watcher)?;
                self.apply_member_decision(&at, decided, true);
            } else {
                self.notify_member(&at);
            }
            return Ok(());
        }
        let action = self.decide_join(&presentity, &watcher)?;
        let watcher_key = presentity_key(&watcher);
        self.check_subscription_room(&key, &watcher_key, &watcher, &presentity)?;
        let now = self.now();
        let state = state_of(action);
        // Shared with the watcher's subscriptions; the member names it by its place.
        let watcher = self.intern_watcher(watcher);
        let number = self.member_names.name(member);
        let place = number.and_then(|_| self.watcher_uris.hold(&watcher));
        let (Some(number), Some(place)) = (number, place) else {
            if let Some(number) = number {
                self.member_names.release(number);
            }
            self.tally.remove(&watcher_key);
            return Err(Error::LimitReached(format!(
                "{watcher} cannot join {presentity}: this shard cannot name member {member}"
            )));
        };
        log::debug!(
            target: LOG_TARGET,
            "member {member}: {watcher} joins {presentity} ({package}): {action}"
        );
        let uri = self.presentity_entry(&presentity).uri.clone();
        let channel = self
            .presentity_entry(&presentity)
            .channels
            .entry(package)
            .or_default();
        let group = channel.group.get_or_insert_with(|| {
            Box::new(Group {
                id: group,
                members: Vec::new(),
            })
        });
        push_snug(
            &mut group.members,
            Member::new(number, place, action, state, now),
        );
        let at = (key, package, group.members.len() - 1);
        self.count_state(package, None, Some(state));
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: member,
            watcher: watcher.clone(),
            presentity: uri.clone(),
            package,
            state,
        });
        let event = if action == AuthAction::Block {
            WatcherEvent::Rejected
        } else {
            WatcherEvent::Subscribe
        };
        self.log_member(&at, event);
        if action == AuthAction::Confirm {
            self.outbox.push(Event::AuthorizationRequested {
                subscription: member,
                watcher,
                presentity: uri,
                package,
            });
        }
        self.notify_member(&at);
        Ok(())
    }

    /// What a joining watcher is decided: a redirect is refused, as a new subscription's is.
    fn decide_join(&mut self, presentity: &Uri, watcher: &Uri) -> Result<AuthAction> {
        if let Some(target) = self.redirection(presentity, watcher) {
            return Err(Error::Moved(target.to_string()));
        }
        let default = self.default_policy(presentity, watcher);
        Ok(self.rules.decide(presentity, watcher, default))
    }

    /// `watcher` leaves the shared subscription of `presentity`'s `package` (one holder;
    /// the last one removes it). Nothing is told the member: its list dialog is ending.
    pub(super) fn leave(&mut self, package: Package, watcher: &Uri, presentity: &Uri) {
        let key = presentity_key(presentity);
        let Some(at) = self.member_of(&key, package, watcher) else {
            return;
        };
        let m = self.member_mut(&at);
        m.holders -= 1;
        if m.holders > 0 {
            return;
        }
        let old = m.state();
        m.set_state(SubscriptionState::Terminated(Some(
            TerminationReason::Timeout,
        )));
        let (id, watcher) = self.names_of(&at);
        if !old.is_terminated() {
            self.log_member(&at, WatcherEvent::Timeout);
        }
        self.count_state(package, Some(old), None);
        self.tally.remove(&presentity_key(&watcher));
        let p = self.presentities.get_mut(&key).expect("member located");
        if let Some(c) = p.channels.get_mut(&package) {
            if let Some(g) = &mut c.group {
                let gone = g.members.remove(at.2);
                trim_snug(&mut g.members);
                // Gone from the group: its numbers are free.
                self.member_names.release(gone.number());
                self.watcher_uris.release(gone.watcher);
                if g.members.is_empty() {
                    c.group = None;
                }
            }
        }
        p.watchers.forget(id);
        self.outbox.push(Event::SubscriptionStateChanged {
            subscription: id,
            watcher,
            presentity: p.uri.clone(),
            package,
            state: SubscriptionState::Terminated(Some(TerminationReason::Timeout)),
        });
        self.collect_if_idle(&key);
    }

    /// The member of `watcher` in the group of `key`'s `package`.
    fn member_of(&self, key: &str, package: Package, watcher: &Uri) -> Option<At> {
        let group = self
            .presentities
            .get(key)?
            .channels
            .get(&package)?
            .group
            .as_ref()?;
        // URI equality (RFC 3261 §19.1.4) once, in the shard's table of members' watchers;
        // then a comparison of places per member: a popular presentity has thousands, and
        // each join and leave looks.
        let place = self.watcher_uris.place(watcher)?;
        let at = group.members.iter().position(|m| m.watcher == place)?;
        Some((key.to_string(), package, at))
    }

    /// Member `id`, wherever it is (a scan: for an application's decision, not a hot path).
    fn find_member(&self, id: SubscriptionId) -> Option<At> {
        let number = self.member_names.number_of(id)?;
        self.presentities.iter().find_map(|(key, p)| {
            p.channels.iter().find_map(|(&package, c)| {
                let at = c
                    .group
                    .as_ref()?
                    .members
                    .iter()
                    .position(|m| m.is(number))?;
                Some((key.clone(), package, at))
            })
        })
    }

    /// The id and watcher of the member at `at`, from the numbers it keeps.
    fn names_of(&self, at: &At) -> (SubscriptionId, Arc<Uri>) {
        let m = self.member(at);
        let watcher = self.watcher_uris.uri(m.watcher).clone();
        (self.member_names.id(m), watcher)
    }

    fn member(&self, at: &At) -> &Member {
        &self.presentities[&at.0].channels[&at.1]
            .group
            .as_ref()
            .expect("member located")
            .members[at.2]
    }

    fn member_mut(&mut self, at: &At) -> &mut Member {
        &mut self
            .presentities
            .get_mut(&at.0)
            .and_then(|p| p.channels.get_mut(&at.1))
            .and_then(|c| c.group.as_mut())
            .expect("member located")
            .members[at.2]
    }

    /// Logs a watcher event of the member at `at` (watcher information).
    fn log_member(&mut self, at: &At, event: WatcherEvent) {
        self.member_mut(at).set_winfo(event);
        let id = self.member_names.id(self.member(at));
        self.record_watcher_change(&at.0.clone(), id);
    }

    /// Tells the member at `at` its state, with the document it may see.
    fn notify_member(&mut self, at: &At) {
        let m = self.member(at);
        let (state, action) = (m.state(), m.action());
        let (id, watcher) = self.names_of(at);
        let presentity = self.presentities[&at.0].uri.clone();
        let follows = state == SubscriptionState::Active && action != AuthAction::PoliteBlock;
        let document: Option<Arc<Document>> = match (state, action) {
            (SubscriptionState::Active, AuthAction::PoliteBlock) => {
                Some(Arc::new(neutral(at.1, &presentity)))
            }
            (SubscriptionState::Active, _) => Some(self.composed(&at.0, at.1)),
            _ => None,
        };
        self.notified += 1;
        self.outbox.push(Event::Notification(Notification {
            subscription: id,
            watcher,
            presentity,
            package: at.1,
            state,
            document,
            full_state: None,
            target: Some(Arc::from(if follows {
                MEMBER_TARGET
            } else {
                MEMBER_APART_TARGET
            })),
        }));
    }

    /// Tells the group of `key`'s `package`, if it has one, the presentity's new document
    /// (for the members that see the composed one).
    pub(super) fn notify_group(&mut self, key: &str, package: Package, composed: &Arc<Document>) {
        let Some(p) = self.presentities.get(key) else {
            return;
        };
        let Some(group) = p.channels.get(&package).and_then(|c| c.group.as_ref()) else {
            return;
        };
        if !group.members.iter().any(|m| {
            m.state() == SubscriptionState::Active && m.action() != AuthAction::PoliteBlock
        }) {
            return;
        }
        self.notified += 1;
        self.outbox.push(Event::Notification(Notification {
            subscription: group.id,
            watcher: p.uri.clone(),
            presentity: p.uri.clone(),
            package,
            state: SubscriptionState::Active,
            document: Some(composed.clone()),
            full_state: None,
            target: Some(Arc::from(GROUP_TARGET)),
        }));
    }

    /// The application decides member `id` (see [`Shard::authorize`]); `NotFound` when
    /// there is no such member.
    pub(super) fn authorize_member(
        &mut self,
        id: SubscriptionId,
        action: AuthAction,
    ) -> Result<()> {
        let at = self
            .find_member(id)
            .ok_or_else(|| unknown_subscription(id))?;
        self.apply_member_decision(&at, action, false);
        Ok(())
    }

    /// The application sends member `id`'s watcher to another presence agent: remembered
    /// for its next join, and the member is told `deactivated`.
    pub(super) fn redirect_member(&mut self, id: SubscriptionId, target: Uri) -> Result<()> {
        let at = self
            .find_member(id)
            .ok_or_else(|| unknown_subscription(id))?;
        let watcher = self.names_of(&at).1;
        let presentity = self.presentities[&at.0].uri.clone();
        let now = self.now();
        self.redirected.remember(&presentity, &watcher, target, now);
        self.apply_member_decision(&at, AuthAction::Redirect, false);
        Ok(())
    }

    /// Moves the member at `at` to what `action` says, telling it (and watcher information)
    /// when its state changes; `tell` tells it even when nothing changed (a new holder).
    fn apply_member_decision(&mut self, at: &At, action: AuthAction, tell: bool) {
        let m = self.member_mut(at);
        let old = m.state();
        let state = state_of(action);
        if m.action() == action && old == state {
            if tell {
                self.notify_member(at);
            }
            return;
        }
        let was = m.action();
        m.set_action(action);
        m.set_state(state);
        let (id, watcher) = self.names_of(at);
        log::debug!(
            target: LOG_TARGET,
            "member {id}: authorization decided: {action} (was {was})"
        );
        count_state(&self.counters, at.1, Some(old), Some(state));
        let presentity = self.presentities[&at.0].uri.clone();
        if old != state {
            self.outbox.push(Event::SubscriptionStateChanged {
                subscription: id,
                watcher: watcher.clone(),
                presentity: presentity.clone(),
                package: at.1,
                state,
            });
            let event = match state {
                SubscriptionState::Active => Some(WatcherEvent::Approved),
                SubscriptionState::Pending => Some(WatcherEvent::Subscribe),
                SubscriptionState::Terminated(Some(TerminationReason::Rejected)) => {
                    Some(WatcherEvent::Rejected)
                }
                SubscriptionState::Terminated(_) => Some(WatcherEvent::Deactivated),
            };
            if let Some(event) = event {
                self.log_member(at, event);
            }
            if state == SubscriptionState::Pending {
                self.outbox.push(Event::AuthorizationRequested {
                    subscription: id,
                    watcher,
                    presentity,
                    package: at.1,
                });
            }
        }
        self.notify_member(at);
    }

    /// Applies changed rules to the members of `key`'s groups (see [`Shard::reevaluate`]):
    /// a pending member stays pending until someone decides, and one the application
    /// redirected waits for its next join.
    pub(super) fn reevaluate_members(&mut self, key: &str) {
        let Some(p) = self.presentities.get(key) else {
            return;
        };
        let presentity = p.uri.clone();
        let members: Vec<At> = p
            .channels
            .iter()
            .filter_map(|(&package, c)| Some((package, c.group.as_ref()?)))
            .flat_map(|(package, g)| (0..g.members.len()).map(move |i| (package, i)))
            .map(|(package, i)| (key.to_string(), package, i))
            .collect();
        for at in members {
            let m = self.member(&at);
            if m.state() == SubscriptionState::Terminated(Some(TerminationReason::Deactivated)) {
                continue;
            }
            let watcher = self.names_of(&at).1;
            let default = self.default_policy(&presentity, &watcher);
            let action = self.rules.decide(&presentity, &watcher, default);
            let m = self.member(&at);
            let still_pending =
                action == AuthAction::Confirm && m.state() == SubscriptionState::Pending;
            if action != m.action() && !still_pending {
                self.apply_member_decision(&at, action, false);
            }
        }
    }

    /// Member `id` as the operator's views show it.
    pub(super) fn member_info(&self, id: SubscriptionId) -> Result<SubscriptionInfo> {
        let at = self
            .find_member(id)
            .ok_or_else(|| unknown_subscription(id))?;
        let m = self.member(&at);
        let (id, watcher) = self.names_of(&at);
        Ok(m.info(id, &watcher, &self.presentities[&at.0].uri, at.1))
    }

    /// Every member, or those of the presentity with key `presentity`.
    pub(super) fn member_infos(&self, presentity: Option<&str>) -> Vec<SubscriptionInfo> {
        let presentities: Vec<&super::Presentity> = match presentity {
            Some(key) => self.presentities.get(key).into_iter().collect(),
            None => self.presentities.values().collect(),
        };
        let (names, watchers) = (&self.member_names, &self.watcher_uris);
        presentities
            .into_iter()
            .flat_map(|p| {
                p.channels.iter().flat_map(move |(&package, c)| {
                    c.group
                        .iter()
                        .flat_map(|g| g.members.iter())
                        .map(move |m| m.info(names.id(m), watchers.uri(m.watcher), &p.uri, package))
                })
            })
            .collect()
    }

    /// How many members the groups of `key` have (they count against the per-presentity
    /// bound as subscriptions do).
    pub(super) fn member_count(&self, key: &str) -> usize {
        self.presentities.get(key).map_or(0, |p| {
            p.channels
                .values()
                .filter_map(|c| c.group.as_ref())
                .map(|g| g.members.len())
                .sum()
        })
    }
}
