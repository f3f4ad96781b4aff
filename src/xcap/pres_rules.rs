//! The `pres-rules` app usage (RFC 5025 §9): a user's pres-rules document is the engine's
//! authorization rules of that user, read and written through
//! [`crate::doc::pres_rules`].
//!
//! # What the engine enforces, and so what a document may say
//!
//! The engine keeps, per presentity, one action per watcher and one per domain, and decides
//! a watcher by its own rule first, then its domain's, then the server's default policy
//! (`engine::authorization`). A document is taken when each of its rules has:
//!
//! - conditions with an `<identity>` of `<one id="URI">` and `<many domain="D">` entries,
//!   `<except id="URI">` inside a `<many>` only for a watcher some rule names with `<one>`
//!   (or whom another `<many>` of the same domain covers);
//! - a `<sub-handling>` action;
//! - no transformations, or transformations that give everything (`<provide-services>
//!   <all-services/>`, the same for persons and devices, `<provide-all-attributes/>`): the
//!   engine gives an allowed watcher the whole document.
//!
//! Rules combine as RFC 4745 §10.2 says, the most permissive matching rule wins (block <
//! confirm < polite-block < allow): a watcher named by `<one>` gets the highest of its own
//! rules and of the `<many>` entries of its domain that do not except it, and that is the
//! engine rule written for it. Refused, with a reason naming the rule (the XCAP server
//! answers `409` with `<constraint-failure>`): rules without conditions or without identity
//! (they would cover every watcher: the server's `--policy` decides those), `<many>` without
//! a domain, `<except domain>`, `<sphere>`, `<validity>`, conditions or actions of other
//! namespaces, selective transformations, a rule without `<sub-handling>`.
//!
//! The document read back ([`from_engine`]) has one rule per action (`allow`,
//! `polite-block`, `confirm`, `block`); a watcher whose own rule is less permissive than its
//! domain's is excepted from the domain's entry.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::doc::pres_rules::{Actions, Conditions, Transformations};
use crate::doc::pres_rules::{Except, Identity, Many, PresRules, Rule, SubHandling};
use crate::model::key::watcher_key;
use crate::model::rule::{AuthAction, AuthRule, WatcherMatch};
use crate::uri::Uri;

/// The engine's action for a sub-handling value, and back.
pub fn action(s: SubHandling) -> AuthAction {
    match s {
        SubHandling::Block => AuthAction::Block,
        SubHandling::Confirm => AuthAction::Confirm,
        SubHandling::PoliteBlock => AuthAction::PoliteBlock,
        SubHandling::Allow => AuthAction::Allow,
    }
}

/// The sub-handling value of an engine action; none for a redirect (RFC 5025 has no action
/// that sends a watcher elsewhere).
pub fn sub_handling(a: AuthAction) -> Option<SubHandling> {
    match a {
        AuthAction::Block => Some(SubHandling::Block),
        AuthAction::Confirm => Some(SubHandling::Confirm),
        AuthAction::PoliteBlock => Some(SubHandling::PoliteBlock),
        AuthAction::Allow => Some(SubHandling::Allow),
        AuthAction::Redirect => None,
    }
}

/// One `<many domain>` entry of the document.
struct DomainEntry {
    domain: String,
    excepted: Vec<String>,
    grant: SubHandling,
}

/// The engine rules of `presentity` that `doc` means, or why the engine cannot enforce it.
pub fn to_engine(presentity: &Uri, doc: &PresRules) -> Result<Vec<AuthRule>, String> {
    // Watchers named by <one>: key -> (URI as first written, highest grant).
    let mut named: BTreeMap<String, (Uri, SubHandling)> = BTreeMap::new();
    let mut entries: Vec<DomainEntry> = Vec::new();
    for rule in &doc.rules {
        let id = &rule.id;
        let refuse = |why: &str| format!("rule '{id}': {why}");
        let Some(conditions) = &rule.conditions else {
            return Err(refuse(
                "no conditions (a rule for every watcher): the server's default policy decides those",
            ));
        };
        if conditions.sphere.is_some() {
            return Err(refuse("<sphere> conditions are not supported"));
        }
        if conditions.validity.is_some() {
            return Err(refuse("<validity> conditions are not supported"));
        }
        if let Some(e) = conditions.extensions.first() {
            return Err(refuse(&format!(
                "the condition <{}> of '{}' is not supported",
                e.name, e.namespace
            )));
        }
        let Some(identity) = &conditions.identity else {
            return Err(refuse(
                "no <identity> (a rule for every watcher): the server's default policy decides those",
            ));
        };
        let grant = match &rule.actions {
            Some(Actions {
                sub_handling: Some(s),
                extensions,
            }) if extensions.is_empty() => *s,
            Some(Actions { extensions, .. }) if !extensions.is_empty() => {
                return Err(refuse(&format!(
                    "the action <{}> of '{}' is not supported",
                    extensions[0].name, extensions[0].namespace
                )))
            }
            _ => return Err(refuse("no <sub-handling> action")),
        };
        if let Some(t) = &rule.transformations {
            if !t.provide_everything() {
                return Err(refuse(
                    "selective transformations are not supported: an allowed watcher sees the \
                     whole document (give all services, persons, devices and attributes, or no \
                     <transformations>)",
                ));
            }
        }
        for one in &identity.one {
            let uri = Uri::parse(one).map_err(|e| refuse(&format!("<one id='{one}'>: {e}")))?;
            let entry = named.entry(watcher_key(&uri)).or_insert((uri, grant));
            entry.1 = entry.1.max(grant);
        }
        for many in &identity.many {
            let Some(domain) = &many.domain else {
                return Err(refuse(
                    "<many> without a domain (every authenticated watcher) is not supported",
                ));
            };
            if domain.is_empty() {
                return Err(refuse("<many domain=''>"));
            }
            let mut excepted = Vec::new();
            for x in &many.except {
                match x {
                    Except::Id(id) => {
                        let uri = Uri::parse(id)
                            .map_err(|e| refuse(&format!("<except id='{id}'>: {e}")))?;
                        excepted.push(watcher_key(&uri));
                    }
                    Except::Domain(d) => {
                        return Err(refuse(&format!(
                            "<except domain='{d}'> is not supported (domains do not nest here)"
                        )))
                    }
                }
            }
            entries.push(DomainEntry {
                domain: domain.to_ascii_lowercase(),
                excepted,
                grant,
            });
        }
    }
    // The most permissive entry of a domain covering a watcher with key `key` and host.
    let cover = |host: &str, key: &str| {
        entries
            .iter()
            .filter(|e| e.domain.eq_ignore_ascii_case(host) && !e.excepted.iter().any(|k| k == key))
            .map(|e| e.grant)
            .max()
    };
    let mut domains: BTreeMap<&str, SubHandling> = BTreeMap::new();
    for e in &entries {
        let g = domains.entry(&e.domain).or_insert(e.grant);
        *g = (*g).max(e.grant);
    }
    let mut out = Vec::new();
    for (key, (uri, own)) in &named {
        let grant = cover(uri.host(), key).map_or(*own, |c| c.max(*own));
        out.push(AuthRule::new(
            presentity.clone(),
            WatcherMatch::Watcher(uri.clone()),
            action(grant),
        ));
    }
    // An excepted watcher no <one> names: its grant is what the domain's other entries
    // give; when none does, only the default policy could decide it, and a domain rule would.
    for e in &entries {
        for key in &e.excepted {
            if named.contains_key(key) {
                continue;
            }
            let host = key.rsplit_once('@').map_or("", |(_, h)| h);
            if !host.eq_ignore_ascii_case(&e.domain) {
                continue; // Excepting a watcher of another domain changes nothing.
            }
            match cover(host, key) {
                Some(g) if Some(&g) == domains.get(e.domain.as_str()) => {}
                Some(g) => {
                    let uri = Uri::parse(&format!("sip:{key}"))
                        .map_err(|err| format!("<except id> '{key}': {err}"))?;
                    if !out.iter().any(|r: &AuthRule| r.watcher.matches(&uri)) {
                        out.push(AuthRule::new(
                            presentity.clone(),
                            WatcherMatch::Watcher(uri),
                            action(g),
                        ));
                    }
                }
                None => {
                    return Err(format!(
                        "<except id> of sip:{key} from domain '{}': no rule names that watcher \
                         itself, and the engine would give it the domain's rule (add a <one> \
                         rule for it)",
                        e.domain
                    ))
                }
            }
        }
    }
    for (domain, grant) in domains {
        out.push(AuthRule::new(
            presentity.clone(),
            WatcherMatch::Domain(domain.to_owned()),
            action(grant),
        ));
    }
    Ok(out)
}

/// The document that says what `rules` (one presentity's) do; redirects are left out (see
/// [`sub_handling`]).
pub fn from_engine(rules: &[AuthRule]) -> PresRules {
    let mut doc = PresRules::default();
    for grant in SubHandling::ALL.into_iter().rev() {
        let mut identity = Identity::default();
        for r in rules
            .iter()
            .filter(|r| sub_handling(r.action) == Some(grant))
        {
            match &r.watcher {
                WatcherMatch::Watcher(uri) => identity.one.push(uri.to_string()),
                WatcherMatch::Domain(domain) => {
                    let except = rules
                        .iter()
                        .filter_map(|w| match &w.watcher {
                            WatcherMatch::Watcher(uri)
                                if uri.host().eq_ignore_ascii_case(domain)
                                    && sub_handling(w.action).is_some_and(|s| s < grant) =>
                            {
                                Some(Except::Id(uri.to_string()))
                            }
                            _ => None,
                        })
                        .collect();
                    identity.many.push(Many {
                        domain: Some(domain.clone()),
                        except,
                    });
                }
            }
        }
        if identity.one.is_empty() && identity.many.is_empty() {
            continue;
        }
        doc.rules.push(Rule {
            id: grant.as_str().to_owned(),
            conditions: Some(Conditions {
                identity: Some(identity),
                ..Conditions::default()
            }),
            actions: Some(Actions {
                sub_handling: Some(grant),
                extensions: Vec::new(),
            }),
            transformations: (grant == SubHandling::Allow).then(Transformations::everything),
        });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Limits;

    const ALICE: &str = "sip:alice@example.test";

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    fn doc(rules: &str) -> PresRules {
        PresRules::parse(
            &format!(
                "<ruleset xmlns='urn:ietf:params:xml:ns:common-policy' \
                 xmlns:pr='urn:ietf:params:xml:ns:pres-rules'>{rules}</ruleset>"
            ),
            &Limits::DEFAULT,
        )
        .unwrap()
    }

    fn rule(id: &str, identity: &str, action: &str) -> String {
        format!(
            "<rule id='{id}'><conditions><identity>{identity}</identity></conditions>\
             <actions><pr:sub-handling>{action}</pr:sub-handling></actions></rule>"
        )
    }

    fn rules(d: &PresRules) -> Vec<(String, AuthAction)> {
        to_engine(&uri(ALICE), d)
            .unwrap()
            .into_iter()
            .map(|r| {
                let who = match r.watcher {
                    WatcherMatch::Watcher(u) => watcher_key(&u),
                    WatcherMatch::Domain(d) => format!("*@{d}"),
                };
                (who, r.action)
            })
            .collect()
    }

    #[test]
    fn ones_and_domains_map_to_engine_rules_combined_by_permission() {
        let d = doc(&[
            rule(
                "a",
                "<one id='sip:bob@x.test'/><many domain='Corp.test'/>",
                "allow",
            ),
            rule(
                "b",
                "<one id='sip:bob@x.test'/><one id='sip:eve@corp.test'/>",
                "block",
            ),
            rule("c", "<one id='pres:carol@x.test'/>", "polite-block"),
        ]
        .concat());
        assert_eq!(
            rules(&d),
            [
                ("bob@x.test".into(), AuthAction::Allow),
                ("carol@x.test".into(), AuthAction::PoliteBlock),
                // Eve's own block is beaten by her domain's allow (RFC 4745 §10.2).
                ("eve@corp.test".into(), AuthAction::Allow),
                ("*@corp.test".into(), AuthAction::Allow),
            ]
        );
    }

    #[test]
    fn an_exception_keeps_a_watcher_to_its_own_rule() {
        let d = doc(&[
            rule(
                "a",
                "<many domain='corp.test'><except id='sip:eve@corp.test'/></many>",
                "allow",
            ),
            rule("b", "<one id='sip:eve@corp.test'/>", "block"),
        ]
        .concat());
        let mapped = rules(&d);
        assert_eq!(
            mapped,
            [
                ("eve@corp.test".into(), AuthAction::Block),
                ("*@corp.test".into(), AuthAction::Allow),
            ]
        );
        // Read back, the same rules give the same document's meaning.
        let engine = to_engine(&uri(ALICE), &d).unwrap();
        let back = from_engine(&engine);
        assert_eq!(to_engine(&uri(ALICE), &back).unwrap(), engine);
        let many = &back.rule("allow").unwrap().conditions.as_ref().unwrap();
        assert_eq!(
            many.identity.as_ref().unwrap().many[0].except,
            [Except::Id("sip:eve@corp.test".into())]
        );
        // An exception nobody else decides is refused.
        let d = doc(&rule(
            "a",
            "<many domain='corp.test'><except id='sip:eve@corp.test'/></many>",
            "allow",
        ));
        let err = to_engine(&uri(ALICE), &d).unwrap_err();
        assert!(err.contains("no rule names that watcher"), "{err}");
    }

    #[test]
    fn what_the_engine_cannot_enforce_is_refused() {
        for (body, why) in [
            ("<rule id='a'><actions><pr:sub-handling>allow</pr:sub-handling></actions></rule>".to_owned(), "no conditions"),
            ("<rule id='a'><conditions/><actions><pr:sub-handling>allow</pr:sub-handling></actions></rule>".to_owned(), "no <identity>"),
            ("<rule id='a'><conditions><identity><one id='sip:b@x'/></identity><sphere value='work'/></conditions></rule>".to_owned(), "<sphere>"),
            ("<rule id='a'><conditions><identity><one id='sip:b@x'/></identity><validity><from>a</from><until>b</until></validity></conditions></rule>".to_owned(), "<validity>"),
            (rule("a", "<one id='sip:b@x'/>", "allow").replace("</actions>", "<x xmlns='urn:x'/></actions>"), "the action <x>"),
            ("<rule id='a'><conditions><identity><one id='sip:b@x'/></identity></conditions></rule>".to_owned(), "no <sub-handling>"),
            (rule("a", "<many/>", "allow"), "without a domain"),
            (rule("a", "<many domain='x'><except domain='y'/></many>", "allow"), "<except domain='y'>"),
            (rule("a", "<one id='not a uri'/>", "allow"), "<one id='not a uri'>"),
            (rule("a", "<one id='sip:b@x'/>", "allow").replace("</rule>", "<transformations><pr:provide-persons><pr:all-persons/></pr:provide-persons></transformations></rule>"), "selective"),
        ] {
            let err = to_engine(&uri(ALICE), &doc(&body)).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
        // Everything given is the same as no transformations.
        let everything = "<transformations><pr:provide-services><pr:all-services/></pr:provide-services>\
            <pr:provide-persons><pr:all-persons/></pr:provide-persons><pr:provide-devices><pr:all-devices/>\
            </pr:provide-devices><pr:provide-all-attributes/></transformations>";
        let d = doc(&rule("a", "<one id='sip:b@x'/>", "allow")
            .replace("</rule>", &format!("{everything}</rule>")));
        assert_eq!(rules(&d), [("b@x".into(), AuthAction::Allow)]);
    }

    #[test]
    fn engine_rules_read_back_as_one_rule_per_action() {
        let p = uri(ALICE);
        let engine = vec![
            AuthRule::new(
                p.clone(),
                WatcherMatch::Watcher(uri("sip:bob@x")),
                AuthAction::Allow,
            ),
            AuthRule::new(
                p.clone(),
                WatcherMatch::Watcher(uri("sip:eve@x")),
                AuthAction::Confirm,
            ),
            AuthRule::new(
                p.clone(),
                WatcherMatch::Domain("x".into()),
                AuthAction::PoliteBlock,
            ),
        ];
        let d = from_engine(&engine);
        let ids: Vec<&str> = d.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["allow", "polite-block", "confirm"]);
        assert!(d.rules[0]
            .transformations
            .as_ref()
            .unwrap()
            .provide_everything());
        let mut back = to_engine(&p, &d).unwrap();
        back.sort_by_key(|r| r.watcher.slot());
        assert_eq!(back, engine);
        assert_eq!(from_engine(&[]), PresRules::default());
    }
}
