//! Presentities of other domains served here (issue 19, presence at the edge): a device
//! whose account serves its own address of record is the presence agent for that one
//! presentity, although its domain belongs to another server.
//!
//! Without this notion the engine treats a presentity of a domain it does not own as
//! remote: its watchers are decided by the transport, which keeps one back-end subscription
//! at the presentity's own server ([`crate::engine::PortOptions::subscription_events`]).
//! That is right for a buddy, wrong for the device's own address of record, whose state is
//! composed here. A presentity marked served here is therefore
//!
//! - decided by this engine's rules alone, never handed to the transport (no back-end
//!   subscription is made for it);
//! - closed until its rules are known: the rules are the ones its own server keeps (the
//!   device learns them, over XCAP), so until they are loaded
//!   ([`crate::engine::Core::replace_served_rules`]) the state is [`Served::AwaitingRules`]
//!   and a transport refuses its watchers (`480`: the server keeps serving them);
//! - strict: a watcher no rule names is blocked, not left to the default policy. The
//!   server's defaults (same-domain allow, confirm for strangers) are not in the document
//!   the device learns, and a device that guessed them could show a watcher what its server
//!   would not; such a watcher stays with the server, where the presentity decides it. The
//!   presentity itself may always watch (its own uplink).
//!
//! One owner: the [`ServedHere`] table is made by the engine and shared, read-mostly, with
//! the shards (which read it when a subscription is made or re-decided) and read by the
//! transports through [`crate::engine::Core::served_here`].
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::RwLock;

use crate::model::key::presentity_key;
use crate::uri::Uri;

/// Where a presentity served here stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Marked, but its rules have not been loaded yet: its watchers are refused.
    AwaitingRules,
    /// Its rules are loaded: its watchers are decided by them.
    Ready,
}

/// The presentities served here, by presentity key.
#[derive(Debug, Default)]
pub(crate) struct ServedHere {
    table: RwLock<HashMap<String, Served>>,
}

impl ServedHere {
    /// Marks `presentity` served here (awaiting its rules, unless they were loaded already).
    pub(crate) fn mark(&self, presentity: &Uri) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table
            .entry(presentity_key(presentity))
            .or_insert(Served::AwaitingRules);
    }

    /// Records that `presentity`'s rules are loaded (it is marked too).
    pub(crate) fn ready(&self, presentity: &Uri) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table.insert(presentity_key(presentity), Served::Ready);
    }

    /// Where `presentity` stands; `None`: not served here.
    pub(crate) fn get(&self, presentity: &Uri) -> Option<Served> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        if table.is_empty() {
            return None;
        }
        table.get(&presentity_key(presentity)).copied()
    }

    /// Whether `presentity` is served here (whatever its rules).
    pub(crate) fn contains(&self, presentity: &Uri) -> bool {
        self.get(presentity).is_some()
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{
        AuthAction, AuthRule, Engine, EngineConfig, Served, SubscribeRequest, SubscriptionState,
        WatcherMatch,
    };
    use crate::model::package::Package;
    use crate::uri::Uri;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn a_presentity_served_here_is_decided_by_its_loaded_rules_alone() {
        let engine = Engine::new(EngineConfig {
            domains: vec!["device.test".into()],
            default_policy: AuthAction::Allow,
            workers: 1,
            ..EngineConfig::default()
        })
        .unwrap();
        let (alice, bob, carol) = (
            uri("sip:alice@b.test"),
            uri("sip:bob@b.test"),
            uri("sip:carol@b.test"),
        );
        assert_eq!(engine.served_here(&alice), None);
        assert!(engine.serve_here(&uri("sip:me@device.test")).is_err());
        assert!(engine.replace_served_rules(&alice, Vec::new()).is_err());
        engine.serve_here(&alice).unwrap();
        assert_eq!(engine.served_here(&alice), Some(Served::AwaitingRules));
        // Strict: the configured `allow` is not this presentity's default.
        assert_eq!(engine.decision(&alice, &bob).unwrap(), AuthAction::Block);
        assert_eq!(engine.decision(&alice, &alice).unwrap(), AuthAction::Allow);
        let allow_bob = AuthRule {
            presentity: alice.clone(),
            watcher: WatcherMatch::Watcher(bob.clone()),
            action: AuthAction::Allow,
            target: None,
        };
        let of_carol = AuthRule {
            presentity: carol.clone(),
            watcher: WatcherMatch::Watcher(bob.clone()),
            action: AuthAction::Allow,
            target: None,
        };
        assert!(engine.replace_served_rules(&alice, vec![of_carol]).is_err());
        engine
            .replace_served_rules(&alice, vec![allow_bob.clone()])
            .unwrap();
        assert_eq!(engine.served_here(&alice), Some(Served::Ready));
        assert_eq!(engine.decision(&alice, &bob).unwrap(), AuthAction::Allow);
        assert_eq!(engine.decision(&alice, &carol).unwrap(), AuthAction::Block);
        // An engine subscription follows the same rules.
        let id = engine
            .subscribe(SubscribeRequest::new(
                carol.clone(),
                alice.clone(),
                Package::Presence,
            ))
            .unwrap();
        // Blocked: ended at once (gone, or terminated).
        if let Ok(info) = engine.subscription(id) {
            assert!(info.state.is_terminated(), "{info:?}");
        }
        let id = engine
            .subscribe(SubscribeRequest::new(
                bob.clone(),
                alice.clone(),
                Package::Presence,
            ))
            .unwrap();
        assert_eq!(
            engine.subscription(id).unwrap().state,
            SubscriptionState::Active
        );
        // Replaced whole: bob's rule goes, and his subscription with it.
        engine.replace_served_rules(&alice, Vec::new()).unwrap();
        assert!(engine.rules(&alice).unwrap().is_empty());
        assert_eq!(engine.decision(&alice, &bob).unwrap(), AuthAction::Block);
    }
}
