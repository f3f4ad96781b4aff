//! Authorization rules as data (DESIGN §1 "authorization"): per-presentity rules that match
//! one watcher or a whole domain, each with an action. The engine decides with them
//! (`engine::authorization::RuleBook`); the stores keep them.
//!
//! # Identity
//!
//! A rule is named by its presentity's key ([`super::key::presentity_key`]) and its slot: the
//! watcher's key ([`watcher_key`]) for a [`WatcherMatch::Watcher`], the lower-cased domain
//! for a [`WatcherMatch::Domain`]. A presentity has at most one rule per slot.
//!
//! # Matching
//!
//! A [`WatcherMatch::Watcher`] covers a watcher with the same key (scheme, parameters and
//! headers ignored). A [`WatcherMatch::Domain`] covers a watcher whose URI host equals the
//! domain, compared case-insensitively; subdomains do not match (`example.com` does not
//! cover `sip:bob@lab.example.com`), and a `tel` watcher, which has no host, matches no
//! domain rule.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use super::key::watcher_key;
use crate::error::{Error, Result};
use crate::uri::Uri;

/// What happens to a watcher's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthAction {
    /// The subscription becomes active and sees the composed state.
    Allow,
    /// The subscription is rejected.
    Block,
    /// The subscription becomes active but sees only the neutral document
    /// (see `engine::compose::neutral`); the watcher cannot tell it from a real one.
    PoliteBlock,
    /// The subscription stays pending until the presentity decides.
    Confirm,
    /// The subscription is not served here: the watcher is sent to another presence agent,
    /// the rule's [`AuthRule::target`] (over SIP, `302 Moved Temporarily` with that
    /// `Contact`). Only a rule or an application's decision on one subscription
    /// ([`crate::engine::Core::redirect`]) carries a target, so it is no default policy.
    Redirect,
}

impl AuthAction {
    /// Every action, in a stable order.
    pub const ALL: [AuthAction; 5] = [
        AuthAction::Allow,
        AuthAction::Block,
        AuthAction::PoliteBlock,
        AuthAction::Confirm,
        AuthAction::Redirect,
    ];

    /// `"allow"`, `"block"`, `"polite-block"`, `"confirm"` or `"redirect"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthAction::Allow => "allow",
            AuthAction::Block => "block",
            AuthAction::PoliteBlock => "polite-block",
            AuthAction::Confirm => "confirm",
            AuthAction::Redirect => "redirect",
        }
    }
}

impl fmt::Display for AuthAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthAction {
    type Err = Error;
    /// Parses the names [`AuthAction::as_str`] writes, in any case.
    fn from_str(s: &str) -> Result<AuthAction> {
        AuthAction::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown authorization action '{s}' (expected allow, block, polite-block, confirm or redirect)"
                ))
            })
    }
}

/// Which watchers a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatcherMatch {
    /// One watcher, compared by [`watcher_key`] (scheme, parameters and headers ignored).
    Watcher(Uri),
    /// Every watcher whose URI host is this domain (case-insensitive, no subdomains).
    Domain(String),
}

impl WatcherMatch {
    /// Whether this match covers `watcher`.
    pub fn matches(&self, watcher: &Uri) -> bool {
        match self {
            WatcherMatch::Watcher(uri) => watcher_key(uri) == watcher_key(watcher),
            WatcherMatch::Domain(domain) => {
                !watcher.host().is_empty() && watcher.host().eq_ignore_ascii_case(domain)
            }
        }
    }

    /// The identity of the match: two matches with the same slot are the same rule of a
    /// presentity (saving one replaces the other), in the engine and in every store.
    pub(crate) fn slot(&self) -> RuleSlot {
        match self {
            WatcherMatch::Watcher(uri) => RuleSlot::Watcher(watcher_key(uri)),
            WatcherMatch::Domain(domain) => RuleSlot::Domain(domain.to_ascii_lowercase()),
        }
    }
}

/// One authorization rule of one presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRule {
    /// Whose presence the rule protects.
    pub presentity: Uri,
    /// Which watchers it applies to.
    pub watcher: WatcherMatch,
    /// What happens to them.
    pub action: AuthAction,
    /// Where a [`AuthAction::Redirect`] sends them (the other presence agent's URI); `None`
    /// for every other action ([`AuthRule::check`]).
    pub target: Option<Uri>,
}

impl AuthRule {
    /// A rule with no target (every action but [`AuthAction::Redirect`]).
    pub fn new(presentity: Uri, watcher: WatcherMatch, action: AuthAction) -> AuthRule {
        AuthRule {
            presentity,
            watcher,
            action,
            target: None,
        }
    }

    /// A rule sending the watchers it covers to `target`.
    pub fn redirect(presentity: Uri, watcher: WatcherMatch, target: Uri) -> AuthRule {
        AuthRule {
            presentity,
            watcher,
            action: AuthAction::Redirect,
            target: Some(target),
        }
    }

    /// Refuses a rule whose target does not go with its action: a redirect needs one, no
    /// other action takes one.
    pub fn check(&self) -> Result<()> {
        match (self.action, &self.target) {
            (AuthAction::Redirect, None) => Err(Error::InvalidArgument(format!(
                "the redirect rule of {} needs a target (the presence agent to send watchers to)",
                self.presentity
            ))),
            (AuthAction::Redirect, Some(_)) | (_, None) => Ok(()),
            (action, Some(target)) => Err(Error::InvalidArgument(format!(
                "a rule that says {action} takes no target (got {target}): only redirect does"
            ))),
        }
    }
}

/// Where a rule lives among one presentity's rules: its identity within the presentity
/// ([`WatcherMatch::slot`]). Watcher slots order before domain slots, each by key, which is
/// the order rules are listed and loaded in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RuleSlot {
    /// A rule for one watcher, by [`watcher_key`].
    Watcher(String),
    /// A rule for a domain, lower-cased.
    Domain(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    #[test]
    fn action_names_round_trip() {
        for a in AuthAction::ALL {
            assert_eq!(a.as_str().parse::<AuthAction>().unwrap(), a);
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(
            "Polite-Block".parse::<AuthAction>().unwrap(),
            AuthAction::PoliteBlock
        );
        let err = "deny".parse::<AuthAction>().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("'deny'")));
    }

    #[test]
    fn a_redirect_and_only_a_redirect_has_a_target() {
        let (p, w) = (uri("sip:a@x"), WatcherMatch::Domain("y".into()));
        AuthRule::redirect(p.clone(), w.clone(), uri("sip:a@pa.x"))
            .check()
            .unwrap();
        AuthRule::new(p.clone(), w.clone(), AuthAction::Allow)
            .check()
            .unwrap();
        let no_target = AuthRule::new(p.clone(), w.clone(), AuthAction::Redirect);
        assert!(
            matches!(no_target.check(), Err(Error::InvalidArgument(m)) if m.contains("needs a target"))
        );
        let mut stray = AuthRule::new(p, w, AuthAction::Block);
        stray.target = Some(uri("sip:a@pa.x"));
        assert!(
            matches!(stray.check(), Err(Error::InvalidArgument(m)) if m.contains("takes no target"))
        );
    }

    #[test]
    fn slots_name_a_rule_by_key() {
        let w = |s: &str| WatcherMatch::Watcher(uri(s)).slot();
        let d = |s: &str| WatcherMatch::Domain(s.to_owned()).slot();
        assert_eq!(w("sip:bob@x"), w("sips:bob@X;transport=tcp"));
        assert_ne!(w("sip:bob@x"), w("sip:Bob@x"));
        assert_eq!(d("Corp.Test"), d("corp.test"));
        // A watcher rule and a domain rule never share a slot, and watchers list first.
        assert_ne!(w("sip:x"), d("x"));
        assert!(w("sip:zed@x") < d("a"));
    }
}
