//! Resource list meta-information (`application/rlmi+xml`, RFC 4662 §5): the root part of
//! every NOTIFY of a list subscription.
//!
//! A list server notifies a list subscriber with a `multipart/related` body (its codec is
//! [`crate::sip::multipart`]) whose root is this document: the list's URI, a `version` that
//! counts the notifications of the subscription, `fullState` (the whole list, or only the
//! resources that changed), optional `<name>`s, and one `<resource>` per resource with its
//! `<name>`s and `<instance>`s. An instance is one back-end subscription to the resource,
//! with its subscription state (`active`, `pending`, `terminated` with a `reason`) and, when
//! its state is in this notification, the `cid` (Content-ID) of the body part that holds it.
//! A list client folds the partial notifications into the full state with [`Rlmi::apply`].
//!
//! # What is kept, what is refused
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept as [`Element`]s in the `extensions` of `<list>`, `<resource>` and `<instance>`
//!   (whose content the schema leaves open): elements the schema does not define there, in
//!   any namespace, and a `<name>` holding elements or attributes other than `xml:lang`.
//!   Attributes this module does not know are kept as [`Attribute`]s.
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace; a `<list>` without
//!   `uri`, `version` (an `xs:unsignedInt`) or `fullState` (an `xs:boolean`); a resource
//!   without `uri`; an instance without `id` or `state`, or with a state other than
//!   `active`, `pending` or `terminated`; and what would make the document ambiguous to a
//!   list client: two resources with the same URI (compared as [`Uri`] compares them where
//!   it knows the scheme), two instances of one resource with the same `id`, two instances
//!   naming the same `cid` (each names the body part of its own state).
//!
//! `parse(to_xml(d)) == d` for every parsed `d`, and for every built `d` that
//! [`Rlmi::validate`] accepts and whose URIs have no surrounding whitespace.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use crate::doc::ns;
use crate::doc::resource_lists::DisplayName;
use crate::doc::token::{fold, token_enum, DocState, Fold};
use crate::doc::xml::{parse_bool, Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The name of this document in error messages.
const DOC: &str = "rlmi";

token_enum! {
    /// The state of the subscription an instance stands for (RFC 4662 §5.2, the values of
    /// RFC 6665's Subscription-State).
    #[derive(Copy, Hash)]
    pub enum InstanceState("instance state") {
        /// Subscribed and authorized: the instance's state is known.
        Active = "active",
        /// Subscribed, waiting for authorization.
        Pending = "pending",
        /// Ended; `reason` says why (e.g. `rejected`, `noresource`, `timeout`).
        Terminated = "terminated",
    }
}

/// One subscription to a resource (`<instance>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Identifies the instance within its resource, stable across notifications (`id`).
    pub id: String,
    /// Its subscription state (`state`).
    pub state: InstanceState,
    /// Why it ended, for a terminated one (`reason`), e.g. `rejected`.
    pub reason: Option<String>,
    /// The Content-ID (without `<>`) of the body part that holds its state in this
    /// notification (`cid`); `None` when the notification carries none.
    pub cid: Option<String>,
    /// The instance's content (the schema allows any element) and elements this module does
    /// not read, kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Instance {
    /// An instance with an id and a state, nothing else.
    pub fn new(id: impl Into<String>, state: InstanceState) -> Instance {
        Instance {
            id: id.into(),
            state,
            reason: None,
            cid: None,
            extensions: Vec::new(),
            extension_attributes: Vec::new(),
        }
    }

    /// An active instance whose state is in the body part `cid`.
    pub fn active(id: impl Into<String>, cid: impl Into<String>) -> Instance {
        Instance {
            cid: Some(cid.into()),
            ..Instance::new(id, InstanceState::Active)
        }
    }

    /// A terminated instance, with the reason.
    pub fn terminated(id: impl Into<String>, reason: impl Into<String>) -> Instance {
        Instance {
            reason: Some(reason.into()),
            ..Instance::new(id, InstanceState::Terminated)
        }
    }
}

/// One resource of the list (`<resource>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    /// The resource, e.g. `sip:bob@example.test` (`uri`).
    pub uri: String,
    /// Its names, one per language (`<name>`).
    pub names: Vec<DisplayName>,
    /// Its subscriptions (`<instance>`); none while the list server has not subscribed.
    pub instances: Vec<Instance>,
    /// Elements this module does not read, kept and written back after the instances.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Resource {
    /// A resource without names or instances.
    pub fn new(uri: impl Into<String>) -> Resource {
        Resource {
            uri: uri.into(),
            ..Resource::default()
        }
    }

    /// The instance with this `id`.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }
}

/// A resource list meta-information document (`<list>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rlmi {
    /// The list's URI: what the subscriber subscribed to (`uri`).
    pub uri: String,
    /// Counts the notifications of one subscription, starting at 0 (`version`).
    pub version: u32,
    /// Whether every resource is listed (`true`) or only those that changed (`fullState`).
    pub full_state: bool,
    /// The optional `cid` attribute of the list, written back as it came.
    pub cid: Option<String>,
    /// The list's names, one per language (`<name>`).
    pub names: Vec<DisplayName>,
    /// The resources: all of them in full state, the changed ones in partial state.
    pub resources: Vec<Resource>,
    /// Elements this module does not read, kept and written back after the resources.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Rlmi {
    /// The MIME type of this document.
    pub const CONTENT_TYPE: &'static str = "application/rlmi+xml";

    /// An empty full-state document for the list `uri` at `version`.
    pub fn new(uri: impl Into<String>, version: u32) -> Rlmi {
        Rlmi {
            uri: uri.into(),
            version,
            full_state: true,
            ..Rlmi::default()
        }
    }

    /// Parses an RLMI document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<Rlmi> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::RLMI, "list")?;
        let uri = required_uri(root)?;
        let mut doc = Rlmi {
            version: parse_version(root.required_attr(DOC, "version")?)?,
            full_state: parse_bool(
                DOC,
                "<list> fullState",
                root.required_attr(DOC, "fullState")?,
            )?,
            cid: root.attr("cid").map(str::to_owned),
            extension_attributes: root.other_attrs(&["uri", "version", "fullState", "cid"]),
            uri,
            ..Rlmi::default()
        };
        for child in root.children() {
            let read = if child.is(ns::RLMI, "resource") {
                doc.resources.push(parse_resource(child)?);
                true
            } else {
                read_name(&mut doc.names, child)
            };
            if !read {
                doc.extensions.push(child.to_element());
            }
        }
        check_unique(&doc.resources)?;
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self` (see the
    /// module documentation for built models).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::RLMI, &[]);
        for name in &self.names {
            name.write(&mut w, ns::RLMI, "name");
        }
        for r in &self.resources {
            write_resource(&mut w, r);
        }
        w.elements(&self.extensions);
        w.finish("list", |w| {
            w.attr("uri", &self.uri);
            w.attr("version", &self.version.to_string());
            w.attr("fullState", if self.full_state { "true" } else { "false" });
            w.attr_opt("cid", self.cid.as_deref());
            w.ext_attrs(&self.extension_attributes);
        })
    }

    /// The resource whose URI is `uri` (compared as the uniqueness rule compares them).
    pub fn resource(&self, uri: &str) -> Option<&Resource> {
        let key = uri_key(uri.trim());
        self.resources.iter().find(|r| uri_key(&r.uri) == key)
    }

    /// Every instance with the resource it belongs to, in document order.
    pub fn instances(&self) -> impl Iterator<Item = (&Resource, &Instance)> {
        self.resources
            .iter()
            .flat_map(|r| r.instances.iter().map(move |i| (r, i)))
    }

    /// Checks a built document as parsing checks a received one: URIs and ids present and
    /// not empty, resource URIs, instance ids (per resource) and cids unique.
    pub fn validate(&self) -> Result<()> {
        non_empty(&self.uri, "the <list> 'uri'")?;
        for r in &self.resources {
            non_empty(&r.uri, "a <resource> 'uri'")?;
            for i in &r.instances {
                non_empty(&i.id, "an <instance> 'id'")?;
            }
        }
        check_unique(&self.resources)
    }

    /// Folds the next notification of the same subscription into this state, which starts
    /// as the first document the subscription delivered.
    ///
    /// A full-state update replaces everything. A partial one updates, per resource (by
    /// URI), the instances whose `id` it names, adds new instances and resources, and drops
    /// instances whose state became `terminated` (the update itself still tells the caller
    /// why); the names of a resource or of the list are replaced when the update carries
    /// some, and so are the extension elements. A resource stays on the list without
    /// instances: only a full-state notification changes who is on the list.
    ///
    /// Returns `Ok(true)` when applied and `Ok(false)` when `update` is not newer than this
    /// state (a stale or repeated notification, ignored). A partial update that skips a
    /// version cannot be applied: the error tells the caller to fetch the full state (by
    /// refreshing the subscription).
    pub fn apply(&mut self, update: &Rlmi) -> Result<bool> {
        let state = if update.full_state {
            DocState::Full
        } else {
            DocState::Partial
        };
        match fold(DOC, self.version, update.version, state)? {
            Fold::Stale => return Ok(false),
            Fold::Replace => {
                *self = update.clone();
                return Ok(true);
            }
            Fold::Merge => {}
        }
        for changed in &update.resources {
            let key = uri_key(&changed.uri);
            let resource = match self.resources.iter().position(|r| uri_key(&r.uri) == key) {
                Some(i) => &mut self.resources[i],
                None => {
                    self.resources.push(Resource {
                        extension_attributes: changed.extension_attributes.clone(),
                        ..Resource::new(&changed.uri)
                    });
                    self.resources.last_mut().expect("just pushed")
                }
            };
            for inst in &changed.instances {
                let known = resource.instances.iter().position(|i| i.id == inst.id);
                match (known, inst.state) {
                    (Some(i), InstanceState::Terminated) => {
                        resource.instances.remove(i);
                    }
                    (None, InstanceState::Terminated) => {}
                    (Some(i), _) => resource.instances[i] = inst.clone(),
                    (None, _) => resource.instances.push(inst.clone()),
                }
            }
            if !changed.names.is_empty() {
                resource.names = changed.names.clone();
            }
            if !changed.extensions.is_empty() {
                resource.extensions = changed.extensions.clone();
            }
        }
        if !update.names.is_empty() {
            self.names = update.names.clone();
        }
        if !update.extensions.is_empty() {
            self.extensions = update.extensions.clone();
        }
        self.version = update.version;
        self.full_state = true;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

fn parse_resource(node: Node<'_, '_>) -> Result<Resource> {
    let mut r = Resource {
        uri: required_uri(node)?,
        extension_attributes: node.other_attrs(&["uri"]),
        ..Resource::default()
    };
    for child in node.children() {
        let read = if child.is(ns::RLMI, "instance") {
            r.instances.push(parse_instance(child)?);
            true
        } else {
            read_name(&mut r.names, child)
        };
        if !read {
            r.extensions.push(child.to_element());
        }
    }
    Ok(r)
}

fn parse_instance(node: Node<'_, '_>) -> Result<Instance> {
    let id = node.required_attr(DOC, "id")?;
    non_empty(id, "an <instance> 'id'")?;
    Ok(Instance {
        id: id.to_owned(),
        state: node.required_attr(DOC, "state")?.trim().parse()?,
        reason: node.attr("reason").map(|r| r.trim().to_owned()),
        cid: node.attr("cid").map(|c| c.trim().to_owned()),
        extensions: node.children().map(|c| c.to_element()).collect(),
        extension_attributes: node.other_attrs(&["id", "state", "reason", "cid"]),
    })
}

/// Reads a `<name>` into `names`; `false` when `node` is not one in the shape of one.
fn read_name(names: &mut Vec<DisplayName>, node: Node<'_, '_>) -> bool {
    if !node.is(ns::RLMI, "name") {
        return false;
    }
    match DisplayName::read(node) {
        Some(n) => {
            names.push(n);
            true
        }
        None => false,
    }
}

fn required_uri(node: Node<'_, '_>) -> Result<String> {
    let uri = node.required_attr(DOC, "uri")?.trim();
    non_empty(uri, &format!("the <{}> 'uri'", node.local()))?;
    Ok(uri.to_owned())
}

fn non_empty(value: &str, what: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::malformed(DOC, format!("{what} is empty")));
    }
    Ok(())
}

/// Parses the `xs:unsignedInt` version: decimal digits only.
fn parse_version(text: &str) -> Result<u32> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::malformed(
            DOC,
            format!("<list> version must be an unsigned integer, not '{text}'"),
        ));
    }
    digits.parse().map_err(|_| {
        Error::malformed(
            DOC,
            format!(
                "<list> version '{text}' is out of range (at most {})",
                u32::MAX
            ),
        )
    })
}

/// Resource URIs compare by the rules of their scheme where [`Uri`] knows it.
fn uri_key(uri: &str) -> String {
    Uri::parse(uri).map_or_else(|_| uri.to_owned(), |u| u.to_string())
}

fn check_unique(resources: &[Resource]) -> Result<()> {
    let mut uris = HashSet::new();
    let mut cids = HashSet::new();
    for r in resources {
        if !uris.insert(uri_key(&r.uri)) {
            return Err(Error::malformed(
                DOC,
                format!("two <resource>s have the URI '{}'", r.uri),
            ));
        }
        let mut ids = HashSet::new();
        for i in &r.instances {
            if !ids.insert(i.id.as_str()) {
                return Err(Error::malformed(
                    DOC,
                    format!(
                        "<resource uri=\"{}\"> has two <instance>s with the id '{}'",
                        r.uri, i.id
                    ),
                ));
            }
            if let Some(cid) = &i.cid {
                if !cids.insert(cid.as_str()) {
                    return Err(Error::malformed(
                        DOC,
                        format!("two <instance>s name the body part cid '{cid}'"),
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

const NS: &str = ns::RLMI;

/// About what a resource of one instance takes in an RLMI document: its URI, instance id,
/// state and Content-ID, and the markup around them.
const RESOURCE_BYTES: usize = 200;

/// Writes an RLMI document resource by resource, each with one instance, without building an
/// [`Rlmi`] first: what a list server does for every NOTIFY, where a model per resource (its
/// strings and vectors) cost about as much as the rest of the NOTIFY. The output is what
/// [`Rlmi::to_xml`] writes for the same document. Nothing is checked: the caller writes what
/// it built itself (unique resource URIs, instance ids and cids), where [`Rlmi::validate`]
/// would only find its own bugs.
pub struct RlmiWriter {
    w: XmlWriter<'static>,
}

impl RlmiWriter {
    /// A document with no resources yet.
    pub fn new() -> RlmiWriter {
        RlmiWriter {
            w: XmlWriter::new(ns::RLMI, &[]),
        }
    }

    /// A document with room for about `resources` resources of one instance each (a list
    /// server's NOTIFY knows how many it writes: the buffer is not grown step by step).
    pub fn with_room_for(resources: usize) -> RlmiWriter {
        let mut writer = RlmiWriter::new();
        writer.w.reserve(resources * RESOURCE_BYTES);
        writer
    }

    /// Adds a name of the list (`<name>`, no language), before any resource.
    pub fn list_name(&mut self, name: &str) {
        self.w.leaf(NS, "name", name);
    }

    /// Adds a resource with its optional name and its one instance.
    #[allow(clippy::too_many_arguments)]
    pub fn resource(
        &mut self,
        uri: &str,
        name: Option<&str>,
        instance_id: &str,
        state: InstanceState,
        reason: Option<&str>,
        cid: Option<&str>,
    ) {
        let w = &mut self.w;
        w.open(NS, "resource");
        w.attr("uri", uri);
        w.close_start();
        if let Some(name) = name {
            w.leaf(NS, "name", name);
        }
        w.open(NS, "instance");
        w.attr("id", instance_id);
        w.attr("state", state.as_str());
        w.attr_opt("reason", reason);
        w.attr_opt("cid", cid);
        w.close_empty();
        w.end(NS, "resource");
    }

    /// The document of list `uri` at `version`, full or partial state.
    pub fn finish(self, uri: &str, version: u32, full_state: bool) -> String {
        self.w.finish("list", |w| {
            w.attr("uri", uri);
            w.attr("version", &version.to_string());
            w.attr("fullState", if full_state { "true" } else { "false" });
        })
    }
}

impl Default for RlmiWriter {
    fn default() -> RlmiWriter {
        RlmiWriter::new()
    }
}

fn write_resource(w: &mut XmlWriter<'_>, r: &Resource) {
    w.open(NS, "resource");
    w.attr("uri", &r.uri);
    w.ext_attrs(&r.extension_attributes);
    if r.names.is_empty() && r.instances.is_empty() && r.extensions.is_empty() {
        w.close_empty();
        return;
    }
    w.close_start();
    for name in &r.names {
        name.write(w, NS, "name");
    }
    for i in &r.instances {
        w.open(NS, "instance");
        w.attr("id", &i.id);
        w.attr("state", i.state.as_str());
        w.attr_opt("reason", i.reason.as_deref());
        w.attr_opt("cid", i.cid.as_deref());
        w.ext_attrs(&i.extension_attributes);
        if i.extensions.is_empty() {
            w.close_empty();
        } else {
            w.close_start();
            w.elements(&i.extensions);
            w.end(NS, "instance");
        }
    }
    w.elements(&r.extensions);
    w.end(NS, "resource");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streaming_writer_writes_what_to_xml_writes() {
        let mut doc = Rlmi::new("sip:blf&co@example.test", 7);
        doc.full_state = false;
        doc.names.push(DisplayName::new("Desk <1>"));
        let mut bob = Resource::new("sip:bob@example.test");
        bob.names.push(DisplayName::new("Bob \"B\""));
        bob.instances.push(Instance::active("1a", "c1@x"));
        let mut carol = Resource::new("sip:carol@example.test");
        carol.instances.push(Instance::terminated("2", "rejected"));
        let mut dave = Resource::new("sip:dave@example.test");
        dave.instances
            .push(Instance::new("3", InstanceState::Pending));
        doc.resources = vec![bob, carol, dave];
        let mut w = RlmiWriter::new();
        w.list_name("Desk <1>");
        w.resource(
            "sip:bob@example.test",
            Some("Bob \"B\""),
            "1a",
            InstanceState::Active,
            None,
            Some("c1@x"),
        );
        w.resource(
            "sip:carol@example.test",
            None,
            "2",
            InstanceState::Terminated,
            Some("rejected"),
            None,
        );
        w.resource(
            "sip:dave@example.test",
            None,
            "3",
            InstanceState::Pending,
            None,
            None,
        );
        let written = w.finish("sip:blf&co@example.test", 7, false);
        assert_eq!(written, doc.to_xml());
        assert_eq!(parse(&written), doc);
    }

    fn parse(doc: &str) -> Rlmi {
        Rlmi::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
    }

    fn round_trip(doc: &Rlmi) {
        let xml = doc.to_xml();
        let again = Rlmi::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(&again, doc, "{xml}");
        assert_eq!(again.to_xml(), xml, "writing is stable");
    }

    fn malformed(doc: &str) -> String {
        match Rlmi::parse(doc, &Limits::DEFAULT) {
            Err(Error::Malformed(m)) => m,
            other => panic!("expected Malformed for {doc:?}, got {other:?}"),
        }
    }

    fn with_resources(body: &str) -> String {
        format!(
            r#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@example.test" version="1" fullState="false">{body}</list>"#
        )
    }

    /// The shape of the RFC 4662 §5 example: names in two languages, active, pending and
    /// name-only resources.
    const FULL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:adam-friends@pres.example.test"
      version="1" fullState="true">
  <name xml:lang="en">Buddy List at TEST</name>
  <name xml:lang="de">Liste der Freunde an TEST</name>
  <resource uri="sip:bob@example.test">
    <name>Bob Smith</name>
    <instance id="juwigmtboe" state="active" cid="bUZBsM@pres.example.test"/>
  </resource>
  <resource uri="sip:dave@example.test">
    <name>Dave Jones</name>
    <instance id="hqzsuxtfyq" state="active" cid="ZvSvkz@pres.example.test"/>
  </resource>
  <resource uri="sip:ed@example.net">
    <name>Ed at NET</name>
    <instance id="1" state="pending"/>
  </resource>
  <resource uri="sip:adam-friends@example.org">
    <name xml:lang="en">My Friends at ORG</name>
    <name xml:lang="de">Meine Freunde an ORG</name>
  </resource>
</list>
"#;

    #[test]
    fn parses_a_full_state_document() {
        let doc = parse(FULL);
        assert_eq!(doc.uri, "sip:adam-friends@pres.example.test");
        assert_eq!(doc.version, 1);
        assert!(doc.full_state);
        assert_eq!(
            doc.names,
            [
                DisplayName::with_lang("Buddy List at TEST", "en"),
                DisplayName::with_lang("Liste der Freunde an TEST", "de")
            ]
        );
        assert_eq!(doc.resources.len(), 4);
        let bob = doc.resource("sip:bob@EXAMPLE.test").unwrap();
        assert_eq!(bob.names, [DisplayName::new("Bob Smith")]);
        let i = bob.instance("juwigmtboe").unwrap();
        assert_eq!(i.state, InstanceState::Active);
        assert_eq!(i.cid.as_deref(), Some("bUZBsM@pres.example.test"));
        let ed = doc.resource("sip:ed@example.net").unwrap();
        assert_eq!(ed.instances[0].state, InstanceState::Pending);
        assert_eq!(ed.instances[0].cid, None);
        assert!(doc.resources[3].instances.is_empty());
        let cids: Vec<&str> = doc
            .instances()
            .filter_map(|(_, i)| i.cid.as_deref())
            .collect();
        assert_eq!(
            cids,
            ["bUZBsM@pres.example.test", "ZvSvkz@pres.example.test"]
        );
        round_trip(&doc);
        doc.validate().unwrap();
    }

    #[test]
    fn builds_and_round_trips() {
        let mut doc = Rlmi::new("sip:blf@example.test", u32::MAX);
        doc.full_state = false;
        doc.cid = Some("root@example.test".into());
        doc.names.push(DisplayName::new("Panel & <keys>"));
        let mut r = Resource::new("sip:201@example.test");
        r.names.push(DisplayName::with_lang("Room 201", "en"));
        r.instances
            .push(Instance::active("a\"1", "c1@example.test"));
        r.instances.push(Instance::terminated("a2", "noresource"));
        r.instances
            .push(Instance::new("a3", InstanceState::Pending));
        doc.resources.push(r);
        doc.resources.push(Resource::new("tel:+1-555-0100"));
        doc.validate().unwrap();
        let xml = doc.to_xml();
        assert!(xml.contains(r#"fullState="false""#), "{xml}");
        assert!(xml.contains(r#"version="4294967295""#), "{xml}");
        round_trip(&doc);
        round_trip(&Rlmi::new("sip:l@example.test", 0));
    }

    #[test]
    fn booleans_take_every_schema_spelling() {
        for (text, value) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            let doc = parse(&format!(
                r#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@example.test" version="0" fullState=" {text} "/>"#
            ));
            assert_eq!(doc.full_state, value, "{text}");
        }
    }

    #[test]
    fn extensions_are_kept() {
        let doc = parse(&with_resources(
            r#"<name x:k="1" xmlns:x="urn:example:x">odd</name>
               <resource uri="sip:a@example.test" x:r="2" xmlns:x="urn:example:x">
                 <x:hint/>
                 <instance id="1" state="active" cid="c" x:i="3"><x:any>content</x:any></instance>
               </resource>
               <summary/>"#,
        ));
        let names: Vec<&str> = doc.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["name", "summary"]);
        assert!(doc.names.is_empty());
        let r = &doc.resources[0];
        assert_eq!(r.extension_attributes[0].value, "2");
        assert_eq!(r.extensions[0].name, "hint");
        assert_eq!(r.instances[0].extensions[0].text, "content");
        assert_eq!(r.instances[0].extension_attributes[0].value, "3");
        round_trip(&doc);
    }

    #[test]
    fn refuses_missing_and_bad_root_attributes() {
        let ns = r#"xmlns="urn:ietf:params:xml:ns:rlmi""#;
        let m = malformed(&format!(r#"<list {ns} version="1" fullState="true"/>"#));
        assert!(m.contains("'uri'"), "{m}");
        let m = malformed(&format!(
            r#"<list {ns} uri=" " version="1" fullState="true"/>"#
        ));
        assert!(m.contains("empty"), "{m}");
        let m = malformed(&format!(r#"<list {ns} uri="sip:l@x" fullState="true"/>"#));
        assert!(m.contains("'version'"), "{m}");
        for bad in ["x", "-1", "+1", "1.0", "", "4294967296", "0x10"] {
            let m = malformed(&format!(
                r#"<list {ns} uri="sip:l@x" version="{bad}" fullState="true"/>"#
            ));
            assert!(m.contains("version"), "{bad:?}: {m}");
        }
        let m = malformed(&format!(r#"<list {ns} uri="sip:l@x" version="1"/>"#));
        assert!(m.contains("'fullState'"), "{m}");
        let m = malformed(&format!(
            r#"<list {ns} uri="sip:l@x" version="1" fullState="yes"/>"#
        ));
        assert!(m.contains("fullState") && m.contains("yes"), "{m}");
        let m = malformed(
            r#"<list xmlns="urn:ietf:params:xml:ns:resource-lists" uri="sip:l@x" version="1" fullState="true"/>"#,
        );
        assert!(m.contains("namespace"), "{m}");
        let m = malformed(&format!(r#"<resource {ns} uri="sip:l@x"/>"#));
        assert!(m.contains("expected <list>"), "{m}");
        malformed(&FULL[..FULL.len() / 2]);
    }

    #[test]
    fn refuses_bad_resources_and_instances() {
        let m = malformed(&with_resources("<resource/>"));
        assert!(m.contains("<resource>") && m.contains("'uri'"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance state="active"/></resource>"#,
        ));
        assert!(m.contains("'id'"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="" state="active"/></resource>"#,
        ));
        assert!(m.contains("'id' is empty"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="1"/></resource>"#,
        ));
        assert!(m.contains("'state'"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="1" state="open"/></resource>"#,
        ));
        assert!(m.contains("instance state 'open'"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"/><resource uri="sip:a@x:5060"/>"#,
        ));
        assert!(m.contains("two <resource>s"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="1" state="active"/><instance id="1" state="pending"/></resource>"#,
        ));
        assert!(m.contains("two <instance>s with the id '1'"), "{m}");
        let m = malformed(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="1" state="active" cid="c"/></resource>
               <resource uri="sip:b@x"><instance id="1" state="active" cid="c"/></resource>"#,
        ));
        assert!(m.contains("cid 'c'"), "{m}");
        // The same instance id under two resources is fine.
        parse(&with_resources(
            r#"<resource uri="sip:a@x"><instance id="1" state="active"/></resource>
               <resource uri="sip:b@x"><instance id="1" state="active"/></resource>"#,
        ));
    }

    #[test]
    fn partial_notifications_fold_into_the_full_state() {
        let mut state = parse(FULL);
        // Version 2: bob's instance goes away, ed is authorized, a new resource appears.
        let v2 = parse(
            r#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:adam-friends@pres.example.test" version="2" fullState="false">
                 <resource uri="sip:bob@example.test">
                   <instance id="juwigmtboe" state="terminated" reason="timeout"/>
                 </resource>
                 <resource uri="sip:ed@example.net">
                   <name>Ed</name>
                   <instance id="1" state="active" cid="e1@pres.example.test"/>
                 </resource>
                 <resource uri="sip:fay@example.test">
                   <instance id="f" state="active" cid="f1@pres.example.test"/>
                 </resource>
               </list>"#,
        );
        assert!(state.apply(&v2).unwrap());
        assert_eq!(state.version, 2);
        assert!(state.full_state);
        assert!(state
            .resource("sip:bob@example.test")
            .unwrap()
            .instances
            .is_empty());
        let ed = state.resource("sip:ed@example.net").unwrap();
        assert_eq!(ed.names, [DisplayName::new("Ed")]);
        assert_eq!(ed.instances[0].state, InstanceState::Active);
        assert_eq!(state.resources.len(), 5);
        assert_eq!(state.names.len(), 2, "the list's names stay");

        let before = state.clone();
        assert!(!state.apply(&v2).unwrap(), "a repeat is stale");
        assert_eq!(state, before);

        let mut v4 = v2.clone();
        v4.version = 4;
        let err = state.apply(&v4).unwrap_err();
        assert!(
            matches!(err, Error::Malformed(ref m) if m.contains("full state")),
            "{err}"
        );

        let mut full = parse(FULL);
        full.version = 9;
        assert!(state.apply(&full).unwrap());
        assert_eq!(state, full);
    }

    #[test]
    fn state_tokens() {
        for s in InstanceState::ALL {
            assert_eq!(s.as_str().parse::<InstanceState>().unwrap(), *s);
        }
        assert_eq!(InstanceState::NAMES, ["active", "pending", "terminated"]);
        assert!("Active".parse::<InstanceState>().is_err());
        assert_eq!(Rlmi::CONTENT_TYPE, "application/rlmi+xml");
    }

    /// A small deterministic stand-in for the `rlmi` fuzz target.
    #[test]
    fn mutated_documents_fail_cleanly_or_round_trip() {
        let alphabet = b"<>/=\"' :xa1-";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut ok = 0;
        for _ in 0..5_000 {
            let mut bytes = FULL.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(bytes.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(3) {
                    0 if at < bytes.len() => bytes[at] = c,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, c),
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            match Rlmi::parse(&text, &Limits::DEFAULT) {
                Ok(doc) => {
                    ok += 1;
                    doc.validate().unwrap();
                    round_trip(&doc);
                }
                Err(Error::Malformed(m) | Error::UnsafeXml(m)) => assert!(!m.is_empty()),
                Err(other) => panic!("{text:?} gave {other:?}"),
            }
        }
        assert!(ok > 500, "{ok}");
    }
}
