//! Resource lists (`application/resource-lists+xml`, RFC 4826 §3): buddy lists and
//! busy-lamp panels.
//!
//! A `<resource-lists>` document holds named `<list>`s. A list holds, in an order that
//! matters (it is the order of a phone's keys), `<entry>`s (one URI each, the resources a
//! list subscription watches), `<entry-ref>`s (a reference to an entry of another list,
//! usually an XCAP URI), `<external>`s (a reference to a whole list elsewhere) and nested
//! `<list>`s; each of these may carry a `<display-name>`. [`List::entries`] walks the
//! entries of a list and of the lists nested in it, in document order. Resolving
//! `<entry-ref>` and `<external>` (fetching what they point to) is the list server's job,
//! not the codec's.
//!
//! # What is kept, what is refused
//!
//! RFC 4826 lets every element carry elements and attributes of other namespaces, and says a
//! reader ignores what it does not understand. This codec keeps them rather than dropping
//! them: a list server that stores a client's list and gives it back (XCAP) must not lose the
//! client's own data. Names are kept, values are checked (the rule of every codec, see
//! [`crate::doc`]):
//!
//! - Kept as [`Element`]s in the `extensions` of the nearest enclosing model, and written
//!   back after its modelled children: elements the schema does not define where they
//!   appear, in any namespace (the resource-lists one included); a repeat of
//!   `<display-name>` (the first is read); and a `<display-name>` holding elements or
//!   attributes other than `xml:lang`. Attributes this module does not know are kept as
//!   [`Attribute`]s.
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace; an `<entry>` without
//!   a `uri` or an `<entry-ref>` without a `ref` (or with an empty one): an item without
//!   what identifies it; and the uniqueness rules of RFC 4826 §3.4, among the children of
//!   one parent: two `<list>`s with the same `name`, two `<entry>`s with the same `uri`
//!   (compared by the rules of the URI's scheme for `sip`, `sips`, `pres`, `im` and `tel`,
//!   as [`Uri`] compares them, and as written otherwise), two `<entry-ref>`s with the same
//!   `ref`, two `<external>`s with the same `anchor`.
//!
//! The schema makes a list's `name` and an external's `anchor` optional; so does this model.
//! An `<external>` without an anchor points nowhere; a list server skips it.
//!
//! `parse(to_xml(d)) == d` for every parsed `d`, and for every built `d` that
//! [`ResourceLists::validate`] accepts and whose URIs have no surrounding whitespace.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use crate::doc::ns;
use crate::doc::xml::{read_once, Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The name of this document in error messages.
const DOC: &str = "resource-lists";

/// A human-readable name with its language (`<display-name>`; RLMI's `<name>` has the same
/// shape and uses this type too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayName {
    /// The name, as written.
    pub text: String,
    /// The `xml:lang` language tag, if any.
    pub lang: Option<String>,
}

impl DisplayName {
    /// A display name without a language tag.
    pub fn new(text: impl Into<String>) -> DisplayName {
        DisplayName {
            text: text.into(),
            lang: None,
        }
    }

    /// A display name with a language tag.
    pub fn with_lang(text: impl Into<String>, lang: impl Into<String>) -> DisplayName {
        DisplayName {
            text: text.into(),
            lang: Some(lang.into()),
        }
    }

    /// Reads a name element: text with an optional `xml:lang`; `None` in another shape
    /// (child elements, other attributes), which the caller keeps whole as an extension.
    pub(crate) fn read(node: Node<'_, '_>) -> Option<DisplayName> {
        node.is_leaf(&["xml:lang"]).then(|| DisplayName {
            text: node.text().to_owned(),
            lang: node.xml_attr("lang").map(str::to_owned),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>, ns: &str, local: &str) {
        w.open(ns, local);
        w.attr_opt("xml:lang", self.lang.as_deref());
        w.close_start();
        w.text(&self.text);
        w.end(ns, local);
    }
}

/// One resource of a list (`<entry>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The resource, e.g. `sip:bob@example.test` (`uri`, required).
    pub uri: String,
    /// How to show it (`<display-name>`).
    pub display_name: Option<DisplayName>,
    /// Elements this module does not read, kept and written back after the display name.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Entry {
    /// An entry for `uri` without a display name.
    pub fn new(uri: impl Into<String>) -> Entry {
        Entry {
            uri: uri.into(),
            ..Entry::default()
        }
    }

    /// An entry for `uri` shown as `display_name`.
    pub fn named(uri: impl Into<String>, display_name: impl Into<String>) -> Entry {
        Entry {
            uri: uri.into(),
            display_name: Some(DisplayName::new(display_name)),
            ..Entry::default()
        }
    }
}

/// A reference to an entry of another list (`<entry-ref>`), usually a relative XCAP URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryRef {
    /// The referenced entry (`ref`, required).
    pub reference: String,
    /// How to show it, overriding the referenced entry's own (`<display-name>`).
    pub display_name: Option<DisplayName>,
    /// Elements this module does not read, kept and written back after the display name.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl EntryRef {
    /// A reference without a display name.
    pub fn new(reference: impl Into<String>) -> EntryRef {
        EntryRef {
            reference: reference.into(),
            ..EntryRef::default()
        }
    }
}

/// A reference to a whole list elsewhere (`<external>`), usually an absolute XCAP URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct External {
    /// The referenced list (`anchor`; optional in the schema).
    pub anchor: Option<String>,
    /// How to show it (`<display-name>`).
    pub display_name: Option<DisplayName>,
    /// Elements this module does not read, kept and written back after the display name.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl External {
    /// A reference to the list at `anchor`.
    pub fn new(anchor: impl Into<String>) -> External {
        External {
            anchor: Some(anchor.into()),
            ..External::default()
        }
    }
}

/// One member of a list, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    /// A nested list (`<list>`).
    List(List),
    /// A resource (`<entry>`).
    Entry(Entry),
    /// A reference to an entry elsewhere (`<entry-ref>`).
    EntryRef(EntryRef),
    /// A reference to a list elsewhere (`<external>`).
    External(External),
}

/// A list of resources (`<list>`), top-level or nested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    /// The list's name, unique among its sibling lists (`name`).
    pub name: Option<String>,
    /// How to show it (`<display-name>`).
    pub display_name: Option<DisplayName>,
    /// The members, in document order.
    pub items: Vec<ListItem>,
    /// Elements this module does not read, kept and written back after the items.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl List {
    /// An empty list called `name`.
    pub fn new(name: impl Into<String>) -> List {
        List {
            name: Some(name.into()),
            ..List::default()
        }
    }

    /// Every entry of this list and of the lists nested in it, depth first, in document
    /// order (entry references and externals are not resolved).
    pub fn entries(&self) -> Vec<&Entry> {
        fn walk<'a>(list: &'a List, out: &mut Vec<&'a Entry>) {
            for item in &list.items {
                match item {
                    ListItem::Entry(e) => out.push(e),
                    ListItem::List(l) => walk(l, out),
                    ListItem::EntryRef(_) | ListItem::External(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// The nested list called `name` among this list's direct members.
    pub fn list(&self, name: &str) -> Option<&List> {
        self.items.iter().find_map(|i| match i {
            ListItem::List(l) if l.name.as_deref() == Some(name) => Some(l),
            _ => None,
        })
    }

    /// Checks what parsing checks: identifying attributes present and not empty, names and
    /// URIs unique among siblings, in this list and every list nested in it.
    pub fn validate(&self) -> Result<()> {
        for item in &self.items {
            match item {
                ListItem::List(l) => l.validate()?,
                ListItem::Entry(e) => {
                    non_empty(&e.uri, "<entry>", "uri")?;
                }
                ListItem::EntryRef(r) => {
                    non_empty(&r.reference, "<entry-ref>", "ref")?;
                }
                ListItem::External(_) => {}
            }
        }
        check_siblings(&self.items, &describe(self))
    }
}

/// A resource lists document (`<resource-lists>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceLists {
    /// The lists, names unique among them.
    pub lists: Vec<List>,
    /// Elements this module does not read, kept and written back after the lists.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl ResourceLists {
    /// The MIME type of this document.
    pub const CONTENT_TYPE: &'static str = "application/resource-lists+xml";

    /// Parses a resource-lists document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<ResourceLists> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::RESOURCE_LISTS, "resource-lists")?;
        let mut doc = ResourceLists {
            extension_attributes: root.other_attrs(&[]),
            ..ResourceLists::default()
        };
        for child in root.children() {
            if child.is(ns::RESOURCE_LISTS, "list") {
                doc.lists.push(parse_list(child)?);
            } else {
                doc.extensions.push(child.to_element());
            }
        }
        let mut names = HashSet::new();
        for list in &doc.lists {
            unique_name(&mut names, list, "<resource-lists>")?;
        }
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self` (see the
    /// module documentation for built models).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::RESOURCE_LISTS, &[]);
        for list in &self.lists {
            write_list(&mut w, list, ns::RESOURCE_LISTS);
        }
        w.elements(&self.extensions);
        w.finish("resource-lists", |w| {
            w.ext_attrs(&self.extension_attributes)
        })
    }

    /// The top-level list called `name`.
    pub fn list(&self, name: &str) -> Option<&List> {
        self.lists.iter().find(|l| l.name.as_deref() == Some(name))
    }

    /// Checks a built document as parsing checks a received one (see [`List::validate`]).
    pub fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        for list in &self.lists {
            list.validate()?;
            unique_name(&mut names, list, "<resource-lists>")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// Reads a `<list>` (of this namespace or, inline in a service, of rls-services): its
/// children are in the resource-lists namespace either way.
pub(crate) fn parse_list(node: Node<'_, '_>) -> Result<List> {
    let mut list = List {
        name: node.attr("name").map(str::to_owned),
        extension_attributes: node.other_attrs(&["name"]),
        ..List::default()
    };
    for child in node.children() {
        let read = child.ns() == ns::RESOURCE_LISTS
            && match child.local() {
                "display-name" => {
                    read_once(&mut list.display_name, child, |c| Ok(DisplayName::read(c)))?
                }
                "list" => {
                    list.items.push(ListItem::List(parse_list(child)?));
                    true
                }
                "entry" => {
                    let uri = required_uri(child, "uri")?;
                    let (display_name, extensions) = parse_item_children(child)?;
                    list.items.push(ListItem::Entry(Entry {
                        uri,
                        display_name,
                        extensions,
                        extension_attributes: child.other_attrs(&["uri"]),
                    }));
                    true
                }
                "entry-ref" => {
                    let reference = required_uri(child, "ref")?;
                    let (display_name, extensions) = parse_item_children(child)?;
                    list.items.push(ListItem::EntryRef(EntryRef {
                        reference,
                        display_name,
                        extensions,
                        extension_attributes: child.other_attrs(&["ref"]),
                    }));
                    true
                }
                "external" => {
                    let (display_name, extensions) = parse_item_children(child)?;
                    list.items.push(ListItem::External(External {
                        anchor: child.attr("anchor").map(|a| a.trim().to_owned()),
                        display_name,
                        extensions,
                        extension_attributes: child.other_attrs(&["anchor"]),
                    }));
                    true
                }
                _ => false,
            };
        if !read {
            list.extensions.push(child.to_element());
        }
    }
    check_siblings(&list.items, &describe(&list))?;
    Ok(list)
}

/// The display name and the kept elements of an entry, entry-ref or external.
fn parse_item_children(node: Node<'_, '_>) -> Result<(Option<DisplayName>, Vec<Element>)> {
    let mut display_name = None;
    let mut extensions = Vec::new();
    for child in node.children() {
        let read = child.is(ns::RESOURCE_LISTS, "display-name")
            && read_once(&mut display_name, child, |c| Ok(DisplayName::read(c)))?;
        if !read {
            extensions.push(child.to_element());
        }
    }
    Ok((display_name, extensions))
}

/// A required URI attribute, whitespace trimmed (`xs:anyURI` collapses it), not empty.
fn required_uri(node: Node<'_, '_>, name: &str) -> Result<String> {
    let value = node.required_attr(DOC, name)?.trim();
    non_empty(value, &format!("<{}>", node.local()), name)?;
    Ok(value.to_owned())
}

fn non_empty(value: &str, element: &str, name: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::malformed(
            DOC,
            format!("{element} has an empty '{name}'"),
        ));
    }
    Ok(())
}

/// `<list name="...">` or `<list>`, for error messages.
fn describe(list: &List) -> String {
    match &list.name {
        Some(n) => format!("<list name=\"{n}\">"),
        None => "<list>".to_owned(),
    }
}

/// How two URIs are compared for uniqueness: by the rules of their scheme where [`Uri`]
/// knows it, as written otherwise.
fn uri_key(uri: &str) -> String {
    Uri::parse(uri).map_or_else(|_| uri.to_owned(), |u| u.to_string())
}

fn unique_name<'a>(names: &mut HashSet<&'a str>, list: &'a List, parent: &str) -> Result<()> {
    if let Some(n) = &list.name {
        if !names.insert(n) {
            return Err(Error::malformed(
                DOC,
                format!("{parent} has two <list>s named '{n}' (names are unique among siblings)"),
            ));
        }
    }
    Ok(())
}

/// The uniqueness rules of RFC 4826 §3.4 among the members of one list.
fn check_siblings(items: &[ListItem], parent: &str) -> Result<()> {
    let mut names = HashSet::new();
    let mut uris = HashSet::new();
    let mut refs = HashSet::new();
    let mut anchors = HashSet::new();
    let twice = |what: &str, value: &str| {
        Err(Error::malformed(
            DOC,
            format!("{parent} has two {what} '{value}' (each is unique among siblings)"),
        ))
    };
    for item in items {
        match item {
            ListItem::List(l) => unique_name(&mut names, l, parent)?,
            ListItem::Entry(e) => {
                if !uris.insert(uri_key(&e.uri)) {
                    return twice("<entry>s with the URI", &e.uri);
                }
            }
            ListItem::EntryRef(r) => {
                if !refs.insert(r.reference.as_str()) {
                    return twice("<entry-ref>s with the ref", &r.reference);
                }
            }
            ListItem::External(x) => {
                if let Some(a) = &x.anchor {
                    if !anchors.insert(a.as_str()) {
                        return twice("<external>s with the anchor", a);
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

const NS: &str = ns::RESOURCE_LISTS;

/// Writes `list` as a `<list>` in namespace `list_ns` (its children are always in the
/// resource-lists namespace).
pub(crate) fn write_list(w: &mut XmlWriter<'_>, list: &List, list_ns: &str) {
    w.open(list_ns, "list");
    w.attr_opt("name", list.name.as_deref());
    w.ext_attrs(&list.extension_attributes);
    if list.display_name.is_none() && list.items.is_empty() && list.extensions.is_empty() {
        w.close_empty();
        return;
    }
    w.close_start();
    if let Some(d) = &list.display_name {
        d.write(w, NS, "display-name");
    }
    for item in &list.items {
        match item {
            ListItem::List(l) => write_list(w, l, NS),
            ListItem::Entry(e) => write_item(
                w,
                "entry",
                Some(("uri", &e.uri)),
                &e.extension_attributes,
                e.display_name.as_ref(),
                &e.extensions,
            ),
            ListItem::EntryRef(r) => write_item(
                w,
                "entry-ref",
                Some(("ref", &r.reference)),
                &r.extension_attributes,
                r.display_name.as_ref(),
                &r.extensions,
            ),
            ListItem::External(x) => write_item(
                w,
                "external",
                x.anchor.as_deref().map(|a| ("anchor", a)),
                &x.extension_attributes,
                x.display_name.as_ref(),
                &x.extensions,
            ),
        }
    }
    w.elements(&list.extensions);
    w.end(list_ns, "list");
}

fn write_item(
    w: &mut XmlWriter<'_>,
    local: &str,
    attr: Option<(&str, &str)>,
    extension_attributes: &[Attribute],
    display_name: Option<&DisplayName>,
    extensions: &[Element],
) {
    w.open(NS, local);
    if let Some((name, value)) = attr {
        w.attr(name, value);
    }
    w.ext_attrs(extension_attributes);
    if display_name.is_none() && extensions.is_empty() {
        w.close_empty();
        return;
    }
    w.close_start();
    if let Some(d) = display_name {
        d.write(w, NS, "display-name");
    }
    w.elements(extensions);
    w.end(NS, local);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(doc: &str) -> ResourceLists {
        ResourceLists::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
    }

    fn round_trip(doc: &ResourceLists) {
        let xml = doc.to_xml();
        let again =
            ResourceLists::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(&again, doc, "{xml}");
        assert_eq!(again.to_xml(), xml, "writing is stable");
    }

    fn malformed(doc: &str) -> String {
        match ResourceLists::parse(doc, &Limits::DEFAULT) {
            Err(Error::Malformed(m)) => m,
            other => panic!("expected Malformed for {doc:?}, got {other:?}"),
        }
    }

    fn in_list(body: &str) -> String {
        format!(
            r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="l">{body}</list></resource-lists>"#
        )
    }

    /// The shape of the RFC 4826 §3.3 example: a nested list, an external and an entry-ref.
    const BUDDIES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <list name="friends">
    <entry uri="sip:bill@example.test">
      <display-name>Bill Doe</display-name>
    </entry>
    <entry-ref ref="resource-lists/users/sip:bill@example.test/index/~~/resource-lists/list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.test%22%5d"/>
    <list name="close-friends">
      <display-name>Close Friends</display-name>
      <entry uri="sip:joe@example.test">
        <display-name>Joe Smith</display-name>
      </entry>
      <entry uri="sip:nancy@example.test">
        <display-name xml:lang="en">Nancy Gross</display-name>
      </entry>
      <external anchor="http://xcap.example.test/resource-lists/users/sip:a@example.test/index/~~/resource-lists/list%5b@name=%22mkting%22%5d">
        <display-name>Marketing</display-name>
      </external>
    </list>
  </list>
</resource-lists>
"#;

    #[test]
    fn parses_nested_lists_in_order() {
        let doc = parse(BUDDIES);
        assert_eq!(doc.lists.len(), 1);
        let friends = doc.list("friends").unwrap();
        assert_eq!(friends.items.len(), 3);
        let ListItem::Entry(bill) = &friends.items[0] else {
            panic!("{:?}", friends.items[0]);
        };
        assert_eq!(bill.uri, "sip:bill@example.test");
        assert_eq!(bill.display_name, Some(DisplayName::new("Bill Doe")));
        assert!(
            matches!(&friends.items[1], ListItem::EntryRef(r) if r.reference.starts_with("resource-lists/users/"))
        );
        let close = friends.list("close-friends").unwrap();
        assert_eq!(
            close.display_name.as_ref().map(|d| d.text.as_str()),
            Some("Close Friends")
        );
        let ListItem::Entry(nancy) = &close.items[1] else {
            panic!()
        };
        assert_eq!(
            nancy.display_name,
            Some(DisplayName::with_lang("Nancy Gross", "en"))
        );
        let ListItem::External(x) = &close.items[2] else {
            panic!()
        };
        assert!(x.anchor.as_deref().unwrap().starts_with("http://xcap."));
        let uris: Vec<&str> = friends.entries().iter().map(|e| e.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "sip:bill@example.test",
                "sip:joe@example.test",
                "sip:nancy@example.test"
            ]
        );
        assert!(
            doc.extension_attributes.is_empty(),
            "namespace declarations are not attributes"
        );
        round_trip(&doc);
        doc.validate().unwrap();
    }

    #[test]
    fn prefixes_do_not_matter() {
        let prefixed = r#"<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists"><rl:list name="l"><rl:entry uri="sip:a@example.test"><rl:display-name>A</rl:display-name></rl:entry></rl:list></rl:resource-lists>"#;
        let plain =
            in_list(r#"<entry uri="sip:a@example.test"><display-name>A</display-name></entry>"#);
        assert_eq!(parse(prefixed), parse(&plain));
    }

    #[test]
    fn builds_and_round_trips() {
        let mut list = List::new("blf & co");
        list.display_name = Some(DisplayName::with_lang("Panel <1>", "en-GB"));
        list.items.push(ListItem::Entry(Entry::named(
            "sip:201@pbx.example.test",
            "Room \"201\"",
        )));
        list.items
            .push(ListItem::EntryRef(EntryRef::new("lists/x/entry%5b1%5d")));
        list.items.push(ListItem::External(External::new(
            "http://xcap.example.test/l",
        )));
        list.items.push(ListItem::External(External::default()));
        let mut inner = List::default();
        inner
            .items
            .push(ListItem::Entry(Entry::new("tel:+1-555-0100")));
        list.items.push(ListItem::List(inner));
        list.items.push(ListItem::List(List::new("empty")));
        let doc = ResourceLists {
            lists: vec![list, List::new("second")],
            ..ResourceLists::default()
        };
        doc.validate().unwrap();
        let xml = doc.to_xml();
        assert!(xml.contains(r#"<list name="blf &amp; co">"#), "{xml}");
        round_trip(&doc);
        round_trip(&ResourceLists::default());
    }

    #[test]
    fn extensions_are_kept_and_written_back() {
        let doc = parse(
            r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:y="urn:example:yealink" y:version="3">
              <list name="blf" y:account="1">
                <display-name>BLF</display-name>
                <display-name>again</display-name>
                <entry uri="sip:201@example.test" y:line="1">
                  <display-name y:style="bold">Reception</display-name>
                  <y:key type="blf" index="1"/>
                </entry>
                <y:page number="1"/>
                <entry-ref ref="a"><y:note>n</y:note></entry-ref>
                <external><display-name>x</display-name><display-name>y</display-name></external>
                <group/>
              </list>
              <y:profile>office</y:profile>
            </resource-lists>"#,
        );
        assert_eq!(doc.extension_attributes.len(), 1);
        assert_eq!(doc.extensions[0].name, "profile");
        let list = &doc.lists[0];
        assert_eq!(list.extension_attributes[0].name, "account");
        let names: Vec<&str> = list.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["display-name", "page", "group"]);
        let ListItem::Entry(e) = &list.items[0] else {
            panic!()
        };
        assert_eq!(
            e.display_name, None,
            "a display name with a vendor attribute is kept whole"
        );
        assert_eq!(e.extensions.len(), 2);
        assert_eq!(e.extension_attributes[0].value, "1");
        let ListItem::External(x) = &list.items[2] else {
            panic!()
        };
        assert_eq!(x.anchor, None);
        assert_eq!(x.display_name, Some(DisplayName::new("x")));
        assert_eq!(x.extensions[0].text, "y");
        round_trip(&doc);
    }

    #[test]
    fn refuses_missing_identifiers() {
        let m = malformed(&in_list("<entry/>"));
        assert!(m.contains("<entry>") && m.contains("'uri'"), "{m}");
        let m = malformed(&in_list(r#"<entry uri="  "/>"#));
        assert!(m.contains("empty 'uri'"), "{m}");
        let m = malformed(&in_list("<entry-ref/>"));
        assert!(m.contains("<entry-ref>") && m.contains("'ref'"), "{m}");
        let m = malformed(&in_list(r#"<entry-ref ref=""/>"#));
        assert!(m.contains("empty 'ref'"), "{m}");
        let m = malformed(&in_list("<list><list><entry/></list></list>"));
        assert!(m.contains("'uri'"), "nested lists are checked too: {m}");
        // An entry in another namespace is an extension: nothing is required of it.
        let doc = parse(&in_list(r#"<x:entry xmlns:x="urn:example:x"/>"#));
        assert_eq!(doc.lists[0].extensions.len(), 1);
    }

    #[test]
    fn refuses_duplicates_among_siblings() {
        let root = r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="a"/><list name="a"/></resource-lists>"#;
        let m = malformed(root);
        assert!(m.contains("two <list>s named 'a'"), "{m}");
        let m = malformed(&in_list(r#"<list name="x"/><list name="x"/>"#));
        assert!(m.contains("<list name=\"l\">") && m.contains("'x'"), "{m}");
        let m = malformed(&in_list(
            r#"<entry uri="sip:bob@example.test"/><entry uri="sip:bob@EXAMPLE.test:5060"/>"#,
        ));
        assert!(m.contains("two <entry>s") && m.contains("EXAMPLE"), "{m}");
        let m = malformed(&in_list(
            r#"<entry uri="mailto:x"/><entry uri="mailto:x"/>"#,
        ));
        assert!(m.contains("mailto:x"), "{m}");
        let m = malformed(&in_list(r#"<entry-ref ref="r"/><entry-ref ref="r"/>"#));
        assert!(m.contains("<entry-ref>s"), "{m}");
        let m = malformed(&in_list(r#"<external anchor="h"/><external anchor="h"/>"#));
        assert!(m.contains("<external>s"), "{m}");
        // The same values in different parents, or across kinds, are fine; so are
        // unnamed lists and externals without anchors; user parts compare case-sensitively.
        let doc = parse(&in_list(
            r#"<entry uri="sip:bob@example.test"/><entry uri="sip:BOB@example.test"/>
               <entry-ref ref="sip:bob@example.test"/>
               <list><entry uri="sip:bob@example.test"/></list><list/>
               <external/><external/>
               <list name="x"><list name="x"/></list>"#,
        ));
        assert_eq!(doc.lists[0].items.len(), 8);
        // A built model is checked the same way.
        let mut list = List::new("l");
        list.items
            .push(ListItem::Entry(Entry::new("sip:a@example.test")));
        list.items
            .push(ListItem::Entry(Entry::new("sip:a@example.test")));
        assert!(matches!(list.validate(), Err(Error::Malformed(_))));
        let doc = ResourceLists {
            lists: vec![List::new("a"), List::new("a")],
            ..ResourceLists::default()
        };
        assert!(matches!(doc.validate(), Err(Error::Malformed(_))));
        let mut empty = List::new("e");
        empty.items.push(ListItem::EntryRef(EntryRef::new(" ")));
        assert!(matches!(empty.validate(), Err(Error::Malformed(_))));
    }

    #[test]
    fn refuses_wrong_roots() {
        let m = malformed(r#"<resource-lists xmlns="urn:ietf:params:xml:ns:rls-services"/>"#);
        assert!(m.contains("namespace"), "{m}");
        let m = malformed(r#"<resource-lists/>"#);
        assert!(m.contains("namespace"), "{m}");
        let m = malformed(r#"<list xmlns="urn:ietf:params:xml:ns:resource-lists"/>"#);
        assert!(m.contains("<resource-lists>"), "{m}");
        malformed("");
        malformed(&BUDDIES[..BUDDIES.len() / 2]);
        let deep = in_list(&("<list>".repeat(40) + &"</list>".repeat(40)));
        assert!(matches!(
            ResourceLists::parse(&deep, &Limits::DEFAULT),
            Err(Error::TooLarge(_))
        ));
        let doctype = r#"<!DOCTYPE r [<!ENTITY a "b">]><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>"#;
        assert!(matches!(
            ResourceLists::parse(doctype, &Limits::DEFAULT),
            Err(Error::UnsafeXml(_))
        ));
    }

    /// A small deterministic stand-in for the `resource_lists` fuzz target.
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
            let mut bytes = BUDDIES.as_bytes().to_vec();
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
            match ResourceLists::parse(&text, &Limits::DEFAULT) {
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
