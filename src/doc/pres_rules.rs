//! Presence authorization rules (`application/auth-policy+xml`, RFC 5025 over the common
//! policy framework of RFC 4745): a `<ruleset>` of `<rule>`s, each with conditions (who and
//! when), actions (`<sub-handling>`: block, confirm, polite-block, allow) and
//! transformations (what of the presence document the watcher may see).
//!
//! This module is the document only; what the engine can enforce of it is decided by the
//! XCAP app usage (`crate::xcap::pres_rules`), which refuses the rest.
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept as [`Element`]s: elements of other namespaces inside `<conditions>`, `<actions>`
//!   and `<transformations>` (extensions RFC 4745 §9 allows), and the transformations of
//!   RFC 5025 §3.3 that are not modelled one by one (`provide-unknown-attribute`).
//! - Refused ([`Error::Malformed`]): a wrong root, a `<rule>` without `id` or with an `id`
//!   used before (RFC 4745 §7 makes ids unique), an `<one>` without `id`, an element of the
//!   common-policy namespace where the schema puts none, a `<sub-handling>` or a
//!   `provide-*` value outside the schema's tokens, `<validity>` without `<from>` and
//!   `<until>` pairs, and `<sphere>` without `value`: a rule read without them would grant or
//!   refuse other watchers than its author meant.
#![forbid(unsafe_code)]

use crate::doc::xml::XmlWriter;
use crate::doc::{ns, Element, Limits};
use crate::error::{Error, Result};

/// The name of this document in error messages.
const DOC: &str = "pres-rules";

/// What happens to a watcher's subscription (RFC 5025 §3.2.1), in increasing permission
/// (`Ord` follows the values 0, 10, 20, 30 the RFC gives them, so combining rules takes the
/// maximum, RFC 4745 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubHandling {
    /// Rejected.
    Block,
    /// Pending until the presentity decides.
    Confirm,
    /// Active, but sees a neutral document.
    PoliteBlock,
    /// Active, sees what the transformations give.
    Allow,
}

impl SubHandling {
    /// Every value, in permission order.
    pub const ALL: [SubHandling; 4] = [
        SubHandling::Block,
        SubHandling::Confirm,
        SubHandling::PoliteBlock,
        SubHandling::Allow,
    ];

    /// The token of the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            SubHandling::Block => "block",
            SubHandling::Confirm => "confirm",
            SubHandling::PoliteBlock => "polite-block",
            SubHandling::Allow => "allow",
        }
    }

    fn parse(text: &str) -> Result<SubHandling> {
        SubHandling::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim())
            .ok_or_else(|| {
                Error::malformed(
                    DOC,
                    format!(
                        "sub-handling '{}' is not block, confirm, polite-block or allow",
                        text.trim()
                    ),
                )
            })
    }
}

/// A whole pres-rules document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresRules {
    /// The rules in document order.
    pub rules: Vec<Rule>,
}

/// One `<rule>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// `id`, unique in the document.
    pub id: String,
    /// `<conditions>`; `None` when absent (the rule applies to every request).
    pub conditions: Option<Conditions>,
    /// `<actions>`.
    pub actions: Option<Actions>,
    /// `<transformations>`.
    pub transformations: Option<Transformations>,
}

/// `<conditions>`: all must hold for the rule to apply (RFC 4745 §10.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conditions {
    /// `<identity>`: one of its entries must name the watcher.
    pub identity: Option<Identity>,
    /// `<sphere value>`: the presentity's current sphere must be this one.
    pub sphere: Option<String>,
    /// `<validity>`: (`from`, `until`) date-time pairs, as written.
    pub validity: Option<Vec<(String, String)>>,
    /// Conditions of other namespaces.
    pub extensions: Vec<Element>,
}

/// `<identity>`: `<one>` and `<many>` entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `<one id>`: one watcher URI each.
    pub one: Vec<String>,
    /// `<many>`: a domain (or every authenticated identity), with exceptions.
    pub many: Vec<Many>,
}

/// `<many [domain]>` with its `<except>`s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Many {
    /// `domain`; `None`: every authenticated identity.
    pub domain: Option<String>,
    /// Exceptions.
    pub except: Vec<Except>,
}

/// `<except id>` or `<except domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Except {
    /// One identity.
    Id(String),
    /// A domain.
    Domain(String),
}

/// `<actions>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actions {
    /// `<pr:sub-handling>`.
    pub sub_handling: Option<SubHandling>,
    /// Actions of other namespaces.
    pub extensions: Vec<Element>,
}

/// What `<provide-services>`, `<provide-persons>` or `<provide-devices>` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provide {
    /// `<all-services/>`, `<all-persons/>`, `<all-devices/>`.
    All,
    /// Selected ones (`<service-uri>`, `<class>`, `<occurrence-id>`, ...), kept as written.
    Some(Vec<Element>),
}

/// `<transformations>` (RFC 5025 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transformations {
    /// `<pr:provide-services>`.
    pub services: Option<Provide>,
    /// `<pr:provide-persons>`.
    pub persons: Option<Provide>,
    /// `<pr:provide-devices>`.
    pub devices: Option<Provide>,
    /// `<pr:provide-all-attributes/>`.
    pub all_attributes: bool,
    /// The one-value `provide-*` elements (`provide-activities` ... `provide-user-input`),
    /// as (local name, value) in document order: booleans, or for `provide-user-input` one
    /// of `false`, `bare`, `thresholds`, `full`.
    pub attributes: Vec<(String, String)>,
    /// `<pr:provide-unknown-attribute>` and transformations of other namespaces.
    pub extensions: Vec<Element>,
}

impl Transformations {
    /// Whether these transformations give the whole presence document: every service,
    /// person and device with every attribute, and no `provide-*` says `false`.
    pub fn provide_everything(&self) -> bool {
        self.services == Some(Provide::All)
            && self.persons == Some(Provide::All)
            && self.devices == Some(Provide::All)
            && self.all_attributes
            && self.attributes.iter().all(|(_, v)| v != "false")
            && self.extensions.is_empty()
    }

    /// Transformations that give everything.
    pub fn everything() -> Transformations {
        Transformations {
            services: Some(Provide::All),
            persons: Some(Provide::All),
            devices: Some(Provide::All),
            all_attributes: true,
            attributes: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

/// The boolean `provide-*` elements of RFC 5025 §3.3.
const BOOLEAN_PROVIDES: &[&str] = &[
    "provide-activities",
    "provide-class",
    "provide-deviceID",
    "provide-mood",
    "provide-place-is",
    "provide-place-type",
    "provide-privacy",
    "provide-relationship",
    "provide-status-icon",
    "provide-sphere",
    "provide-time-offset",
    "provide-note",
];

const USER_INPUT: &[&str] = &["false", "bare", "thresholds", "full"];

fn malformed(why: impl Into<String>) -> Error {
    Error::malformed(DOC, why.into())
}

/// Refuses text or attributes on an element that takes neither.
fn bare(e: &Element, what: &str) -> Result<()> {
    if !e.text.trim().is_empty() {
        return Err(malformed(format!("<{what}> takes no text")));
    }
    Ok(())
}

fn attr<'e>(e: &'e Element, name: &str) -> Option<&'e str> {
    e.attribute("", name)
}

fn required<'e>(e: &'e Element, name: &str) -> Result<&'e str> {
    attr(e, name).ok_or_else(|| malformed(format!("<{}> without '{name}'", e.name)))
}

impl PresRules {
    /// The MIME type of this document (RFC 4745 §14.1).
    pub const CONTENT_TYPE: &'static str = "application/auth-policy+xml";

    /// Parses a pres-rules document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<PresRules> {
        limits.check_size(DOC, input.len())?;
        PresRules::from_element(&Element::parse(input, limits)?)
    }

    /// Reads a `<ruleset>` element tree (what an XCAP server edits) as rules.
    pub fn from_element(root: &Element) -> Result<PresRules> {
        if root.namespace != ns::COMMON_POLICY || root.name != "ruleset" {
            return Err(malformed(format!(
                "the root is <{}> in namespace '{}', not <ruleset> of {}",
                root.name,
                root.namespace,
                ns::COMMON_POLICY
            )));
        }
        bare(root, "ruleset")?;
        let mut doc = PresRules::default();
        for child in &root.children {
            if child.namespace != ns::COMMON_POLICY || child.name != "rule" {
                return Err(malformed(format!(
                    "<ruleset> holds <{}> of '{}': only <rule>",
                    child.name, child.namespace
                )));
            }
            let rule = parse_rule(child)?;
            if doc.rules.iter().any(|r| r.id == rule.id) {
                return Err(malformed(format!("rule id '{}' is used twice", rule.id)));
            }
            doc.rules.push(rule);
        }
        Ok(doc)
    }

    /// The rule with this `id`.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// This document as an element tree; [`PresRules::from_element`] reads it back equal.
    pub fn to_element(&self) -> Element {
        let mut root = el(ns::COMMON_POLICY, "ruleset");
        for rule in &self.rules {
            root.children.push(rule_element(rule));
        }
        root
    }

    /// Serializes this document; parsing the result gives a model equal to `self`.
    pub fn to_xml(&self) -> String {
        write_ruleset(&self.to_element())
    }
}

/// Writes a `<ruleset>` element tree with the common-policy namespace as the default and
/// `pr` for pres-rules (the prefixes clients write themselves).
pub fn write_ruleset(root: &Element) -> String {
    let mut w = XmlWriter::new(ns::COMMON_POLICY, &[(ns::PRES_RULES, "pr")]);
    w.text(&root.text);
    for c in &root.children {
        w.element(c);
    }
    w.finish(&root.name, |w| w.ext_attrs(&root.attributes))
}

fn parse_rule(e: &Element) -> Result<Rule> {
    bare(e, "rule")?;
    let id = required(e, "id")?;
    if id.is_empty() {
        return Err(malformed("a rule with an empty id"));
    }
    let mut rule = Rule {
        id: id.to_owned(),
        ..Rule::default()
    };
    for child in &e.children {
        let cp = child.namespace == ns::COMMON_POLICY;
        match child.name.as_str() {
            "conditions" if cp && rule.conditions.is_none() => {
                rule.conditions = Some(parse_conditions(child)?)
            }
            "actions" if cp && rule.actions.is_none() => rule.actions = Some(parse_actions(child)?),
            "transformations" if cp && rule.transformations.is_none() => {
                rule.transformations = Some(parse_transformations(child)?)
            }
            _ => {
                return Err(malformed(format!(
                "rule '{id}' holds <{}> of '{}' (once each: conditions, actions, transformations)",
                child.name, child.namespace
            )))
            }
        }
    }
    Ok(rule)
}

fn parse_conditions(e: &Element) -> Result<Conditions> {
    bare(e, "conditions")?;
    let mut c = Conditions::default();
    for child in &e.children {
        if child.namespace != ns::COMMON_POLICY {
            c.extensions.push(child.clone());
            continue;
        }
        match child.name.as_str() {
            "identity" if c.identity.is_none() => c.identity = Some(parse_identity(child)?),
            "sphere" if c.sphere.is_none() => {
                bare(child, "sphere")?;
                c.sphere = Some(required(child, "value")?.to_owned());
            }
            "validity" if c.validity.is_none() => c.validity = Some(parse_validity(child)?),
            other => {
                return Err(malformed(format!(
                    "<conditions> holds <{other}> (once each: identity, sphere, validity)"
                )))
            }
        }
    }
    Ok(c)
}

fn parse_identity(e: &Element) -> Result<Identity> {
    bare(e, "identity")?;
    let mut identity = Identity::default();
    for child in &e.children {
        if child.namespace != ns::COMMON_POLICY {
            return Err(malformed(format!(
                "<identity> holds <{}> of '{}': only <one> and <many>",
                child.name, child.namespace
            )));
        }
        match child.name.as_str() {
            "one" => {
                bare(child, "one")?;
                identity.one.push(required(child, "id")?.to_owned());
            }
            "many" => {
                bare(child, "many")?;
                let mut many = Many {
                    domain: attr(child, "domain").map(str::to_owned),
                    except: Vec::new(),
                };
                for x in &child.children {
                    if x.namespace != ns::COMMON_POLICY || x.name != "except" {
                        return Err(malformed(format!(
                            "<many> holds <{}>: only <except>",
                            x.name
                        )));
                    }
                    bare(x, "except")?;
                    many.except.push(match (attr(x, "id"), attr(x, "domain")) {
                        (Some(id), None) => Except::Id(id.to_owned()),
                        (None, Some(d)) => Except::Domain(d.to_owned()),
                        _ => return Err(malformed("<except> needs either 'id' or 'domain'")),
                    });
                }
                identity.many.push(many);
            }
            other => {
                return Err(malformed(format!(
                    "<identity> holds <{other}>: only <one> and <many>"
                )))
            }
        }
    }
    if identity.one.is_empty() && identity.many.is_empty() {
        return Err(malformed("an empty <identity> (it needs <one> or <many>)"));
    }
    Ok(identity)
}

fn parse_validity(e: &Element) -> Result<Vec<(String, String)>> {
    bare(e, "validity")?;
    let mut pairs = Vec::new();
    let mut from: Option<String> = None;
    for child in &e.children {
        let text = child.text.trim().to_owned();
        match (
            child.name.as_str(),
            child.namespace == ns::COMMON_POLICY,
            &from,
        ) {
            ("from", true, None) if !text.is_empty() => from = Some(text),
            ("until", true, Some(_)) if !text.is_empty() => {
                pairs.push((from.take().unwrap_or_default(), text))
            }
            _ => {
                return Err(malformed(
                    "<validity> holds <from> and <until> pairs, each with a date-time",
                ))
            }
        }
    }
    if from.is_some() || pairs.is_empty() {
        return Err(malformed(
            "<validity> holds <from> and <until> pairs, each with a date-time",
        ));
    }
    Ok(pairs)
}

fn parse_actions(e: &Element) -> Result<Actions> {
    bare(e, "actions")?;
    let mut a = Actions::default();
    for child in &e.children {
        if child.namespace == ns::PRES_RULES && child.name == "sub-handling" {
            if a.sub_handling.is_some() {
                return Err(malformed("<sub-handling> given twice"));
            }
            if !child.children.is_empty() {
                return Err(malformed("<sub-handling> holds a token, not elements"));
            }
            a.sub_handling = Some(SubHandling::parse(&child.text)?);
        } else if child.namespace == ns::COMMON_POLICY {
            return Err(malformed(format!(
                "<actions> holds <{}> of the common-policy namespace, which defines no action",
                child.name
            )));
        } else {
            a.extensions.push(child.clone());
        }
    }
    Ok(a)
}

fn parse_provide(e: &Element, all: &str) -> Result<Provide> {
    bare(e, &e.name)?;
    let alls = e
        .children
        .iter()
        .filter(|c| c.namespace == ns::PRES_RULES && c.name == all)
        .count();
    match (alls, e.children.len()) {
        (1, 1) => Ok(Provide::All),
        (0, n) if n > 0 => Ok(Provide::Some(e.children.clone())),
        _ => Err(malformed(format!(
            "<{}> holds either <{all}/> alone or a selection",
            e.name
        ))),
    }
}

fn parse_transformations(e: &Element) -> Result<Transformations> {
    bare(e, "transformations")?;
    let mut t = Transformations::default();
    for child in &e.children {
        if child.namespace == ns::COMMON_POLICY {
            return Err(malformed(format!(
                "<transformations> holds <{}> of the common-policy namespace, which defines none",
                child.name
            )));
        }
        if child.namespace != ns::PRES_RULES {
            t.extensions.push(child.clone());
            continue;
        }
        let name = child.name.as_str();
        let once = |slot: &Option<Provide>| {
            if slot.is_some() {
                Err(malformed(format!("<{name}> given twice")))
            } else {
                Ok(())
            }
        };
        match name {
            "provide-services" => {
                once(&t.services)?;
                t.services = Some(parse_provide(child, "all-services")?);
            }
            "provide-persons" => {
                once(&t.persons)?;
                t.persons = Some(parse_provide(child, "all-persons")?);
            }
            "provide-devices" => {
                once(&t.devices)?;
                t.devices = Some(parse_provide(child, "all-devices")?);
            }
            "provide-all-attributes" => {
                if t.all_attributes || !child.children.is_empty() {
                    return Err(malformed(
                        "<provide-all-attributes/> is empty and given once",
                    ));
                }
                bare(child, name)?;
                t.all_attributes = true;
            }
            "provide-unknown-attribute" => t.extensions.push(child.clone()),
            _ if BOOLEAN_PROVIDES.contains(&name) || name == "provide-user-input" => {
                if !child.children.is_empty() {
                    return Err(malformed(format!("<{name}> holds a value, not elements")));
                }
                let value = child.text.trim();
                let ok = if name == "provide-user-input" {
                    USER_INPUT.contains(&value)
                } else {
                    value == "true" || value == "false"
                };
                if !ok {
                    return Err(malformed(format!("<{name}> of '{value}'")));
                }
                if t.attributes.iter().any(|(n, _)| n == name) {
                    return Err(malformed(format!("<{name}> given twice")));
                }
                t.attributes.push((name.to_owned(), value.to_owned()));
            }
            other => {
                return Err(malformed(format!(
                    "<transformations> holds <{other}>, which RFC 5025 does not define"
                )))
            }
        }
    }
    Ok(t)
}

fn el(namespace: &str, name: &str) -> Element {
    Element {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ..Element::default()
    }
}

fn with_attr(mut e: Element, name: &str, value: &str) -> Element {
    e.attributes.push(crate::doc::Attribute {
        namespace: String::new(),
        name: name.to_owned(),
        value: value.to_owned(),
    });
    e
}

fn with_text(mut e: Element, text: &str) -> Element {
    e.text = text.to_owned();
    e
}

fn rule_element(rule: &Rule) -> Element {
    let mut r = with_attr(el(ns::COMMON_POLICY, "rule"), "id", &rule.id);
    if let Some(c) = &rule.conditions {
        let mut ce = el(ns::COMMON_POLICY, "conditions");
        if let Some(identity) = &c.identity {
            let mut ie = el(ns::COMMON_POLICY, "identity");
            for one in &identity.one {
                ie.children
                    .push(with_attr(el(ns::COMMON_POLICY, "one"), "id", one));
            }
            for many in &identity.many {
                let mut me = el(ns::COMMON_POLICY, "many");
                if let Some(d) = &many.domain {
                    me = with_attr(me, "domain", d);
                }
                for x in &many.except {
                    let (name, value) = match x {
                        Except::Id(v) => ("id", v),
                        Except::Domain(v) => ("domain", v),
                    };
                    me.children
                        .push(with_attr(el(ns::COMMON_POLICY, "except"), name, value));
                }
                ie.children.push(me);
            }
            ce.children.push(ie);
        }
        if let Some(sphere) = &c.sphere {
            ce.children
                .push(with_attr(el(ns::COMMON_POLICY, "sphere"), "value", sphere));
        }
        if let Some(validity) = &c.validity {
            let mut ve = el(ns::COMMON_POLICY, "validity");
            for (from, until) in validity {
                ve.children
                    .push(with_text(el(ns::COMMON_POLICY, "from"), from));
                ve.children
                    .push(with_text(el(ns::COMMON_POLICY, "until"), until));
            }
            ce.children.push(ve);
        }
        ce.children.extend(c.extensions.iter().cloned());
        r.children.push(ce);
    }
    if let Some(a) = &rule.actions {
        let mut ae = el(ns::COMMON_POLICY, "actions");
        if let Some(s) = a.sub_handling {
            ae.children
                .push(with_text(el(ns::PRES_RULES, "sub-handling"), s.as_str()));
        }
        ae.children.extend(a.extensions.iter().cloned());
        r.children.push(ae);
    }
    if let Some(t) = &rule.transformations {
        let mut te = el(ns::COMMON_POLICY, "transformations");
        for (slot, name, all) in [
            (&t.services, "provide-services", "all-services"),
            (&t.persons, "provide-persons", "all-persons"),
            (&t.devices, "provide-devices", "all-devices"),
        ] {
            match slot {
                None => {}
                Some(Provide::All) => {
                    let mut p = el(ns::PRES_RULES, name);
                    p.children.push(el(ns::PRES_RULES, all));
                    te.children.push(p);
                }
                Some(Provide::Some(selection)) => {
                    let mut p = el(ns::PRES_RULES, name);
                    p.children = selection.clone();
                    te.children.push(p);
                }
            }
        }
        for (name, value) in &t.attributes {
            te.children.push(with_text(el(ns::PRES_RULES, name), value));
        }
        if t.all_attributes {
            te.children
                .push(el(ns::PRES_RULES, "provide-all-attributes"));
        }
        te.children.extend(t.extensions.iter().cloned());
        r.children.push(te);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const CP: &str = "urn:ietf:params:xml:ns:common-policy";

    fn parse(s: &str) -> Result<PresRules> {
        PresRules::parse(s, &Limits::DEFAULT)
    }

    /// A document as RFC 5025 §7 shows it, with an identity, a domain with an exception, a
    /// sphere, a validity and selective transformations.
    const EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
  xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
  xmlns:cr="urn:ietf:params:xml:ns:common-policy">
 <cr:rule id="a">
  <cr:conditions>
   <cr:identity>
    <cr:one id="sip:user@example.com"/>
    <cr:many domain="example.org"><cr:except id="sip:eve@example.org"/></cr:many>
   </cr:identity>
   <cr:sphere value="work"/>
   <cr:validity><cr:from>2026-01-01T00:00:00Z</cr:from><cr:until>2027-01-01T00:00:00Z</cr:until></cr:validity>
  </cr:conditions>
  <cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>
  <cr:transformations>
   <pr:provide-services><pr:service-uri-scheme>sip</pr:service-uri-scheme></pr:provide-services>
   <pr:provide-persons><pr:all-persons/></pr:provide-persons>
   <pr:provide-activities>true</pr:provide-activities>
   <pr:provide-user-input>bare</pr:provide-user-input>
   <pr:provide-unknown-attribute ns="urn:x" name="y">true</pr:provide-unknown-attribute>
  </cr:transformations>
 </cr:rule>
 <cr:rule id="b"/>
</cr:ruleset>"#;

    #[test]
    fn the_rfc_example_parses_and_round_trips() {
        let doc = parse(EXAMPLE).unwrap();
        assert_eq!(doc.rules.len(), 2);
        let a = doc.rule("a").unwrap();
        let c = a.conditions.as_ref().unwrap();
        let identity = c.identity.as_ref().unwrap();
        assert_eq!(identity.one, ["sip:user@example.com"]);
        assert_eq!(identity.many[0].domain.as_deref(), Some("example.org"));
        assert_eq!(
            identity.many[0].except,
            [Except::Id("sip:eve@example.org".into())]
        );
        assert_eq!(c.sphere.as_deref(), Some("work"));
        assert_eq!(c.validity.as_ref().unwrap().len(), 1);
        assert_eq!(
            a.actions.as_ref().unwrap().sub_handling,
            Some(SubHandling::Allow)
        );
        let t = a.transformations.as_ref().unwrap();
        assert!(matches!(t.services, Some(Provide::Some(ref s)) if s.len() == 1));
        assert_eq!(t.persons, Some(Provide::All));
        assert_eq!(t.devices, None);
        assert_eq!(
            t.attributes[1],
            ("provide-user-input".into(), "bare".into())
        );
        assert_eq!(t.extensions.len(), 1);
        assert!(!t.provide_everything());
        assert_eq!(
            doc.rule("b").unwrap(),
            &Rule {
                id: "b".into(),
                ..Rule::default()
            }
        );

        let xml = doc.to_xml();
        assert!(
            xml.contains("<ruleset xmlns=\"urn:ietf:params:xml:ns:common-policy\" xmlns:pr="),
            "{xml}"
        );
        assert!(
            xml.contains("<pr:sub-handling>allow</pr:sub-handling>"),
            "{xml}"
        );
        assert_eq!(parse(&xml).unwrap(), doc, "{xml}");
    }

    #[test]
    fn everything_is_everything() {
        assert!(Transformations::everything().provide_everything());
        let mut t = Transformations::everything();
        t.attributes.push(("provide-note".into(), "false".into()));
        assert!(!t.provide_everything());
        let doc = PresRules {
            rules: vec![Rule {
                id: "x".into(),
                transformations: Some(Transformations::everything()),
                ..Rule::default()
            }],
        };
        assert_eq!(parse(&doc.to_xml()).unwrap(), doc);
    }

    #[test]
    fn sub_handling_orders_by_permission() {
        assert!(SubHandling::Block < SubHandling::Confirm);
        assert!(SubHandling::Confirm < SubHandling::PoliteBlock);
        assert!(SubHandling::PoliteBlock < SubHandling::Allow);
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        let wrap = |body: &str| {
            format!(
                "<ruleset xmlns='{CP}' xmlns:pr='urn:ietf:params:xml:ns:pres-rules'>{body}</ruleset>"
            )
        };
        for (body, why) in [
            ("<rule/>", "without 'id'"),
            ("<rule id='a'/><rule id='a'/>", "used twice"),
            ("<rule id=''/>", "empty id"),
            ("<rules/>", "only <rule>"),
            ("<rule id='a'><conditions><identity/></conditions></rule>", "empty <identity>"),
            ("<rule id='a'><conditions><identity><one/></identity></conditions></rule>", "without 'id'"),
            ("<rule id='a'><conditions><identity><two id='x'/></identity></conditions></rule>", "<two>"),
            ("<rule id='a'><conditions><identity><many><except/></many></identity></conditions></rule>", "either 'id' or 'domain'"),
            ("<rule id='a'><conditions><sphere/></conditions></rule>", "without 'value'"),
            ("<rule id='a'><conditions><validity><from>x</from></validity></conditions></rule>", "pairs"),
            ("<rule id='a'><conditions><color/></conditions></rule>", "<color>"),
            ("<rule id='a'><actions><pr:sub-handling>maybe</pr:sub-handling></actions></rule>", "'maybe'"),
            ("<rule id='a'><actions><pr:sub-handling>allow</pr:sub-handling><pr:sub-handling>block</pr:sub-handling></actions></rule>", "twice"),
            ("<rule id='a'><actions><go/></actions></rule>", "defines no action"),
            ("<rule id='a'><transformations><pr:provide-mood>perhaps</pr:provide-mood></transformations></rule>", "'perhaps'"),
            ("<rule id='a'><transformations><pr:provide-services><pr:all-services/><pr:class>x</pr:class></pr:provide-services></transformations></rule>", "alone"),
            ("<rule id='a'><transformations><pr:provide-everything/></transformations></rule>", "does not define"),
            ("<rule id='a'><actions/><actions/></rule>", "once each"),
        ] {
            let err = parse(&wrap(body)).unwrap_err();
            assert!(
                matches!(err, Error::Malformed(ref m) if m.contains(why)),
                "{body}: {err}"
            );
        }
        assert!(parse("<ruleset/>").is_err());
        assert!(parse("<ruleset xmlns='urn:x'/>").is_err());
        assert!(parse(&wrap("<rule id='a'>")).is_err());
        // An empty ruleset is a document (no rules).
        assert_eq!(parse(&wrap("")).unwrap(), PresRules::default());
    }

    #[test]
    fn extensions_are_kept() {
        let doc = parse(&format!(
            "<ruleset xmlns='{CP}'><rule id='a'><conditions><x:c xmlns:x='urn:x'/></conditions>\
             <actions><y xmlns='urn:y'>1</y></actions></rule></ruleset>"
        ))
        .unwrap();
        let rule = &doc.rules[0];
        assert_eq!(rule.conditions.as_ref().unwrap().extensions[0].name, "c");
        assert_eq!(rule.actions.as_ref().unwrap().extensions[0].text, "1");
        assert_eq!(parse(&doc.to_xml()).unwrap(), doc);
    }
}
