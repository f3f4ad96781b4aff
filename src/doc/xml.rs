//! Safe, namespace-resolved XML for every document codec.
//!
//! Reading: [`Tree::parse`] turns a document into a flat, borrowed tree (one allocation for
//! nodes, one for attributes; text borrowed from the input wherever possible) with every
//! element and attribute name resolved to its namespace URI, so a codec matches
//! `(namespace, local name)` and never a prefix. It refuses, before building anything, what a
//! presence document never needs and an attacker loves: DOCTYPE (and with it every entity
//! declaration), references to entities other than the five predefined ones, documents over
//! the size limit and nesting over the depth limit.
//!
//! Writing: [`XmlWriter`] builds a document with conventional prefixes for the namespaces the
//! codec knows, declares on the root only the ones it used, and writes extension
//! [`Element`]s (kept from parsing) back with their own namespace declarations.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::Write as _;

pub use super::xml_lexer::XML_NS;
use super::xml_lexer::{Attr, Event, Lexer, PRESEEDED};
use crate::error::{Error, Result};

/// Safety limits applied to every document before and while it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting (the root is depth 1).
    pub max_depth: usize,
}

impl Limits {
    /// 64 KiB and 32 levels: far above what any device sends, far below what hurts.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 64 * 1024,
        max_depth: 32,
    };

    pub(crate) fn check_size(&self, doc: &str, len: usize) -> Result<()> {
        if len > self.max_bytes {
            return Err(Error::TooLarge(format!(
                "{doc} document of {len} bytes exceeds the limit of {} bytes",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// An attribute of an extension element, kept so it can be written back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    /// Namespace URI; empty for an unqualified attribute.
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Value, unescaped.
    pub value: String,
}

/// An element this library does not model, kept whole (namespaces resolved) so that parse,
/// serialize, parse gives an equal model. Mixed content is kept as one text followed by the
/// child elements; whitespace-only text between child elements is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI; empty for an element in no namespace.
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Attributes other than namespace declarations.
    pub attributes: Vec<Attribute>,
    /// Character content, unescaped.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// Parses a whole document into an owned element tree.
    pub fn parse(input: &str, limits: &Limits) -> Result<Element> {
        Ok(Tree::parse("xml", input, limits)?.root().to_element())
    }

    /// Serializes this element as a standalone document.
    pub fn to_xml(&self) -> String {
        // An empty main namespace makes the root declare its own namespace.
        let mut w = XmlWriter::new("", &[]);
        w.out.push_str(XML_DECL);
        w.element(self);
        w.out
    }

    /// The first child with this namespace and local name.
    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    /// The value of the attribute with this namespace and local name.
    pub fn attribute(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace == namespace && a.name == name)
            .map(|a| a.value.as_str())
    }
}

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Stores what `read` makes of `node` in `slot`, unless the slot is already filled (`node`
/// repeats an element that may appear once: the first is read) or `read` does not take the
/// element's shape (`None`). Returns whether it was stored; when not, the caller keeps
/// `node` as an extension.
pub(crate) fn read_once<T>(
    slot: &mut Option<T>,
    node: Node<'_, '_>,
    read: impl FnOnce(Node<'_, '_>) -> Result<Option<T>>,
) -> Result<bool> {
    if slot.is_some() {
        return Ok(false);
    }
    *slot = read(node)?;
    Ok(slot.is_some())
}

/// Whether any of the kept `extensions` is in namespace `ns`.
///
/// An element whose schema puts extensions before some of its own children (a PIDF tuple's
/// `contact`, `note` and `timestamp`; a data-model person's or device's `note` and
/// `timestamp`) writes its extensions there, unless one of them is in the element's own
/// namespace: such an element (an unknown name, or a repeat of a child that may appear once)
/// fits no place in the schema, and written before the children it could be taken for, it
/// would read back as one of them. Then every extension is written after the modelled
/// children, in order, and a repeat reads back as the repeat it was.
pub(crate) fn any_in(extensions: &[Element], ns: &str) -> bool {
    extensions.iter().any(|e| e.namespace == ns)
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

const NONE: u32 = u32::MAX;

struct NodeData<'a> {
    ns: u16,
    local: &'a str,
    attrs: (u32, u32),
    text: Cow<'a, str>,
    first_child: u32,
    next_sibling: u32,
    /// Used while parsing: the parent and the last child so far.
    parent: u32,
    last_child: u32,
}

/// A parsed document: a flat arena of elements borrowing from the input.
pub(crate) struct Tree<'a> {
    nodes: Vec<NodeData<'a>>,
    attrs: Vec<Attr<'a>>,
    /// Namespaces beyond the preseeded ones (index `PRESEEDED.len() + i`).
    extra_ns: Vec<Cow<'a, str>>,
}

/// String equality for the short names of attributes, without a call to `memcmp`.
#[inline]
fn short_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// `text.trim()`, without the look at both ends when they are printable ASCII (no other byte
/// starts or ends a whitespace character there).
pub(crate) fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(&first), Some(&last)) if is_graphic(first) && is_graphic(last) => text,
        _ => text.trim(),
    }
}

/// Whether `b` is ASCII and neither whitespace nor a control character.
fn is_graphic(b: u8) -> bool {
    b > b' ' && b < 0x7f
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn append<'a>(text: &mut Cow<'a, str>, more: Cow<'a, str>) {
    if text.is_empty() {
        *text = more;
    } else {
        text.to_mut().push_str(&more);
    }
}

impl<'a> Tree<'a> {
    /// Parses `input` (the document named `doc` in error messages) under `limits`.
    pub(crate) fn parse(doc: &str, input: &'a str, limits: &Limits) -> Result<Tree<'a>> {
        limits.check_size(doc, input.len())?;
        let mut lexer = Lexer::new(doc, input);
        let mut nodes: Vec<NodeData<'a>> = Vec::with_capacity(input.len() / 40 + 4);
        let mut attrs: Vec<Attr<'a>> = Vec::with_capacity(input.len() / 64 + 2);
        // The innermost open element and the number of open elements.
        let mut open = NONE;
        let mut depth = 0;
        loop {
            let first_attr = attrs.len() as u32;
            match lexer.next(&mut attrs)? {
                Event::Start { ns, local, empty } => {
                    if depth >= limits.max_depth {
                        return Err(Error::TooLarge(format!(
                            "{doc}: elements nested deeper than {} levels",
                            limits.max_depth
                        )));
                    }
                    let idx = nodes.len() as u32;
                    nodes.push(NodeData {
                        ns,
                        local,
                        attrs: (first_attr, attrs.len() as u32),
                        text: Cow::Borrowed(""),
                        first_child: NONE,
                        next_sibling: NONE,
                        parent: open,
                        last_child: NONE,
                    });
                    if open != NONE {
                        let last = std::mem::replace(&mut nodes[open as usize].last_child, idx);
                        if last == NONE {
                            nodes[open as usize].first_child = idx;
                        } else {
                            nodes[last as usize].next_sibling = idx;
                        }
                    }
                    if !empty {
                        open = idx;
                        depth += 1;
                    }
                }
                Event::End => {
                    open = nodes[open as usize].parent;
                    depth -= 1;
                }
                Event::Text(t) => {
                    if open != NONE {
                        let node = &mut nodes[open as usize];
                        // Whitespace between child elements (indentation) is not content:
                        // concatenating it would allocate for every indented element.
                        let indentation =
                            node.first_child != NONE && is_blank(&node.text) && is_blank(&t);
                        if !indentation {
                            append(&mut node.text, t);
                        }
                    }
                }
                Event::Eof => break,
            }
        }
        Ok(Tree {
            nodes,
            attrs,
            extra_ns: lexer.into_extra_namespaces(),
        })
    }

    /// The namespace URI with index `i`.
    fn namespace(&self, i: u16) -> &str {
        let i = i as usize;
        match PRESEEDED.get(i) {
            Some(n) => n,
            None => &self.extra_ns[i - PRESEEDED.len()],
        }
    }

    /// The root element.
    pub(crate) fn root(&self) -> Node<'_, 'a> {
        Node { tree: self, idx: 0 }
    }
}

/// One element of a parsed [`Tree`].
#[derive(Clone, Copy)]
pub(crate) struct Node<'t, 'a> {
    tree: &'t Tree<'a>,
    idx: u32,
}

impl<'t, 'a> Node<'t, 'a> {
    fn data(&self) -> &'t NodeData<'a> {
        &self.tree.nodes[self.idx as usize]
    }

    /// Namespace URI ("" for none).
    pub(crate) fn ns(&self) -> &'t str {
        self.tree.namespace(self.data().ns)
    }

    /// Local name.
    pub(crate) fn local(&self) -> &'a str {
        self.data().local
    }

    /// Whether this element is `{ns}local`.
    pub(crate) fn is(&self, ns: &str, local: &str) -> bool {
        self.data().local == local && self.ns() == ns
    }

    /// Errors unless this element is `{ns}local`.
    pub(crate) fn expect(&self, doc: &str, ns: &str, local: &str) -> Result<()> {
        if self.is(ns, local) {
            return Ok(());
        }
        let found_ns = self.ns();
        Err(Error::malformed(
            doc,
            if self.local() == local {
                format!("<{local}> is in namespace '{found_ns}', expected '{ns}'",)
            } else {
                format!(
                    "expected <{local}> in namespace '{ns}', found <{}> in '{found_ns}'",
                    self.local()
                )
            },
        ))
    }

    /// Direct character content, untrimmed.
    pub(crate) fn text(&self) -> &'t str {
        &self.data().text
    }

    /// Direct character content with surrounding whitespace removed.
    pub(crate) fn trimmed(&self) -> &'t str {
        trim(&self.data().text)
    }

    /// Whether this element has attributes (namespace declarations aside).
    pub(crate) fn has_attrs(&self) -> bool {
        let (a, b) = self.data().attrs;
        a != b
    }

    /// Whether this element has character content other than whitespace.
    pub(crate) fn has_text(&self) -> bool {
        !self.trimmed().is_empty()
    }

    /// Whether every attribute of this element is one of `known`: unqualified names, or
    /// `"xml:lang"` and the like for the XML namespace.
    pub(crate) fn attrs_within(&self, known: &[&str]) -> bool {
        self.raw_attrs().iter().all(|a| match a.ns {
            // No namespace (index 0) and the XML namespace (index 1): see PRESEEDED.
            0 => known.iter().any(|k| short_eq(k, a.local)),
            1 => known
                .iter()
                .any(|k| k.strip_prefix("xml:") == Some(a.local)),
            _ => false,
        })
    }

    /// Whether this element has the shape of a schema leaf with the attributes `known`: no
    /// child elements and no other attributes. Its text is for the caller to check.
    pub(crate) fn is_leaf(&self, known: &[&str]) -> bool {
        !self.has_children() && (!self.has_attrs() || self.attrs_within(known))
    }

    /// Whether this element is empty: no child elements, attributes or text (the shape of
    /// the token elements such as `<rpid:busy/>`).
    pub(crate) fn is_empty_element(&self) -> bool {
        !self.has_children() && !self.has_attrs() && !self.has_text()
    }

    /// Attributes of this element (namespace declarations excluded).
    pub(crate) fn attrs(&self) -> impl Iterator<Item = (&'t str, &'a str, &'t str)> + 't {
        let (a, b) = self.data().attrs;
        let tree = self.tree;
        tree.attrs[a as usize..b as usize]
            .iter()
            .map(move |at| (tree.namespace(at.ns), at.local, &*at.value))
    }

    /// The raw attributes of this element.
    fn raw_attrs(&self) -> &'t [Attr<'a>] {
        let (a, b) = self.data().attrs;
        &self.tree.attrs[a as usize..b as usize]
    }

    /// The attribute with namespace index `ns` and local name `name`.
    #[inline]
    fn attr_at(&self, ns: u16, name: &str) -> Option<&'t str> {
        self.raw_attrs()
            .iter()
            .find(|a| a.ns == ns && short_eq(a.local, name))
            .map(|a| &*a.value)
    }

    /// The attribute `{XML_NS}name` (`xml:name`).
    pub(crate) fn xml_attr(&self, name: &str) -> Option<&'t str> {
        self.attr_at(1, name)
    }

    /// The unqualified attribute `name`.
    pub(crate) fn attr(&self, name: &str) -> Option<&'t str> {
        self.attr_at(0, name)
    }

    /// The attribute `{ns}name`.
    pub(crate) fn attr_ns(&self, ns: &str, name: &str) -> Option<&'t str> {
        // The namespaces with fixed indices need no string comparison per attribute.
        if ns.is_empty() {
            return self.attr_at(0, name);
        }
        if ns == XML_NS {
            return self.attr_at(1, name);
        }
        self.attrs()
            .find(|(n, l, _)| *l == name && *n == ns)
            .map(|(_, _, v)| v)
    }

    /// A required unqualified attribute, or an error naming it.
    pub(crate) fn required_attr(&self, doc: &str, name: &str) -> Result<&'t str> {
        self.attr(name).ok_or_else(|| {
            Error::malformed(
                doc,
                format!("<{}> lacks the required attribute '{name}'", self.local()),
            )
        })
    }

    /// Attributes other than those whose unqualified names are in `known`, kept for writing
    /// back (`xml:lang` and other qualified attributes are always kept unless listed as
    /// `"xml:lang"`).
    pub(crate) fn other_attrs(&self, known: &[&str]) -> Vec<Attribute> {
        let mut kept = Vec::new();
        for a in self.raw_attrs() {
            let keep = match a.ns {
                // No namespace (index 0) and the XML namespace (index 1): see PRESEEDED.
                0 => !known.iter().any(|k| short_eq(k, a.local)),
                1 => !known
                    .iter()
                    .any(|k| k.strip_prefix("xml:") == Some(a.local)),
                _ => true,
            };
            if keep {
                kept.push(Attribute {
                    namespace: self.tree.namespace(a.ns).to_owned(),
                    name: a.local.to_owned(),
                    value: String::from(&*a.value),
                });
            }
        }
        kept
    }

    /// Child elements in document order.
    pub(crate) fn children(&self) -> Children<'t, 'a> {
        Children {
            tree: self.tree,
            next: self.data().first_child,
        }
    }

    /// Whether this element has child elements.
    pub(crate) fn has_children(&self) -> bool {
        self.data().first_child != NONE
    }

    /// An owned copy of this element and everything under it.
    pub(crate) fn to_element(self) -> Element {
        let children: Vec<Element> = self.children().map(|c| c.to_element()).collect();
        let text = if !children.is_empty() && self.text().trim().is_empty() {
            String::new()
        } else {
            self.text().to_owned()
        };
        Element {
            namespace: self.ns().to_owned(),
            name: self.local().to_owned(),
            attributes: self.other_attrs(&[]),
            text,
            children,
        }
    }
}

/// Iterator over the child elements of a [`Node`].
pub(crate) struct Children<'t, 'a> {
    tree: &'t Tree<'a>,
    next: u32,
}

impl<'t, 'a> Iterator for Children<'t, 'a> {
    type Item = Node<'t, 'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NONE {
            return None;
        }
        let node = Node {
            tree: self.tree,
            idx: self.next,
        };
        self.next = self.tree.nodes[self.next as usize].next_sibling;
        Some(node)
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Builds a document. Elements of the main namespace are written unprefixed; elements of a
/// known namespace with its conventional prefix (declared on the root only when used);
/// extension elements with a default-namespace declaration of their own.
pub(crate) struct XmlWriter<'k> {
    out: String,
    main_ns: &'k str,
    known: &'k [(&'static str, &'static str)],
    used: u64,
    default_ns: Vec<String>,
}

impl<'k> XmlWriter<'k> {
    /// Room for `additional` more bytes of body, taken at once (a writer that knows about
    /// how much it writes does not grow its buffer step by step).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }

    /// A writer whose main namespace is `main_ns`, with `known` as (namespace, prefix) pairs.
    pub(crate) fn new(main_ns: &'k str, known: &'k [(&'static str, &'static str)]) -> Self {
        XmlWriter {
            out: String::with_capacity(512),
            main_ns,
            known,
            used: 0,
            default_ns: Vec::new(),
        }
    }

    fn current_default(&self) -> &str {
        self.default_ns
            .last()
            .map(|s| s.as_str())
            .unwrap_or(self.main_ns)
    }

    /// The prefix for `ns` if it is a known one, marking it used.
    fn known_prefix(&mut self, ns: &str) -> Option<&'static str> {
        let i = self.known.iter().position(|(n, _)| *n == ns)?;
        self.used |= 1 << i;
        Some(self.known[i].1)
    }

    fn qualified(&mut self, ns: &str) -> (Option<&'static str>, bool) {
        if ns == self.current_default() {
            return (None, false);
        }
        // The XML namespace is bound to `xml` in every document and may not be declared as
        // a default namespace: an element in it (`<xml:x>`, odd but well-formed) keeps the
        // prefix.
        if ns == XML_NS {
            return (Some("xml"), false);
        }
        match self.known_prefix(ns) {
            Some(p) => (Some(p), false),
            None => (None, true),
        }
    }

    /// Writes `<prefix:local` for an element of a codec (no new default namespace).
    pub(crate) fn open(&mut self, ns: &str, local: &str) {
        self.out.push('<');
        if ns != self.current_default() {
            if let Some(p) = self.known_prefix(ns) {
                self.out.push_str(p);
                self.out.push(':');
            }
        }
        self.out.push_str(local);
    }

    /// Writes ` name="value"` (escaped).
    pub(crate) fn attr(&mut self, name: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value, true);
        self.out.push('"');
    }

    /// Writes an optional attribute.
    pub(crate) fn attr_opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }

    /// Writes kept extension attributes, declaring prefixes for unknown namespaces.
    pub(crate) fn ext_attrs(&mut self, attrs: &[Attribute]) {
        for (i, a) in attrs.iter().enumerate() {
            self.out.push(' ');
            if a.namespace.is_empty() {
            } else if a.namespace == XML_NS {
                self.out.push_str("xml:");
            } else if let Some(p) = self.known_prefix(&a.namespace) {
                self.out.push_str(p);
                self.out.push(':');
            } else {
                let _ = write!(self.out, "xmlns:a{i}=\"");
                escape_into(&mut self.out, &a.namespace, true);
                let _ = write!(self.out, "\" a{i}:");
            }
            self.out.push_str(&a.name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, &a.value, true);
            self.out.push('"');
        }
    }

    /// Ends a start tag with `>`.
    pub(crate) fn close_start(&mut self) {
        self.out.push('>');
    }

    /// Ends a start tag as an empty element `/>`.
    pub(crate) fn close_empty(&mut self) {
        self.out.push_str("/>");
    }

    /// Writes escaped character content.
    pub(crate) fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text, false);
    }

    /// Writes `</prefix:local>`.
    pub(crate) fn end(&mut self, ns: &str, local: &str) {
        self.out.push_str("</");
        if ns != self.current_default() {
            if let Some(p) = self.known_prefix(ns) {
                self.out.push_str(p);
                self.out.push(':');
            }
        }
        self.out.push_str(local);
        self.out.push('>');
    }

    /// Writes `<local>text</local>`.
    pub(crate) fn leaf(&mut self, ns: &str, local: &str, text: &str) {
        self.open(ns, local);
        self.close_start();
        self.text(text);
        self.end(ns, local);
    }

    /// Writes `<local/>`.
    pub(crate) fn empty(&mut self, ns: &str, local: &str) {
        self.open(ns, local);
        self.close_empty();
    }

    /// Writes a kept extension element and everything under it.
    pub(crate) fn element(&mut self, e: &Element) {
        let (prefix, declare) = self.qualified(&e.namespace);
        self.out.push('<');
        if let Some(p) = prefix {
            self.out.push_str(p);
            self.out.push(':');
        }
        self.out.push_str(&e.name);
        if declare {
            self.out.push_str(" xmlns=\"");
            escape_into(&mut self.out, &e.namespace, true);
            self.out.push('"');
            self.default_ns.push(e.namespace.clone());
        }
        self.ext_attrs(&e.attributes);
        if e.text.is_empty() && e.children.is_empty() {
            self.out.push_str("/>");
        } else {
            self.out.push('>');
            self.text(&e.text);
            for c in &e.children {
                self.element(c);
            }
            self.out.push_str("</");
            if let Some(p) = prefix {
                self.out.push_str(p);
                self.out.push(':');
            }
            self.out.push_str(&e.name);
            self.out.push('>');
        }
        if declare {
            self.default_ns.pop();
        }
    }

    /// Writes every kept extension element.
    pub(crate) fn elements(&mut self, es: &[Element]) {
        for e in es {
            self.element(e);
        }
    }

    /// Wraps what was written in the root element `local` (main namespace), declaring the
    /// main namespace and every known namespace that was used. `root_attrs` writes the root's
    /// attributes (with [`XmlWriter::attr`] and friends).
    pub(crate) fn finish(mut self, local: &str, root_attrs: impl FnOnce(&mut Self)) -> String {
        let body = std::mem::take(&mut self.out);
        root_attrs(&mut self);
        let attrs = std::mem::take(&mut self.out);
        let mut doc = String::with_capacity(body.len() + attrs.len() + 256);
        doc.push_str(XML_DECL);
        doc.push('<');
        doc.push_str(local);
        doc.push_str(" xmlns=\"");
        escape_into(&mut doc, self.main_ns, true);
        doc.push('"');
        for (i, (ns, p)) in self.known.iter().enumerate() {
            if self.used & (1 << i) != 0 {
                doc.push_str(" xmlns:");
                doc.push_str(p);
                doc.push_str("=\"");
                doc.push_str(ns);
                doc.push('"');
            }
        }
        doc.push_str(&attrs);
        if body.is_empty() {
            doc.push_str("/>");
        } else {
            doc.push('>');
            doc.push_str(&body);
            doc.push_str("</");
            doc.push_str(local);
            doc.push('>');
        }
        doc
    }
}

/// Bytes that character content escapes (bit 0) and that attribute values escape (bit 1).
const ESCAPED: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'&' as usize] = 3;
    t[b'<' as usize] = 3;
    t[b'>' as usize] = 3;
    t[b'\r' as usize] = 3;
    t[b'"' as usize] = 2;
    t[b'\n' as usize] = 2;
    t[b'\t' as usize] = 2;
    t
};

/// Escapes `text` for XML character content or (with `attr`) a double-quoted attribute value:
/// runs that need no escaping are copied whole.
pub(crate) fn escape_into(out: &mut String, text: &str, attr: bool) {
    let bytes = text.as_bytes();
    let which = if attr { 2 } else { 1 };
    let mut last = 0;
    let mut i = 0;
    while let Some(k) = bytes[i..]
        .iter()
        .position(|&b| ESCAPED[b as usize] & which != 0)
    {
        let at = i + k;
        let rep = match bytes[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\r' => "&#13;",
            b'\n' => "&#10;",
            _ => "&#9;",
        };
        out.push_str(&text[last..at]);
        out.push_str(rep);
        i = at + 1;
        last = i;
    }
    out.push_str(&text[last..]);
}

/// Parses an `xs:boolean` ("true", "false", "1", "0").
pub(crate) fn parse_bool(doc: &str, what: &str, text: &str) -> Result<bool> {
    match text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(Error::malformed(
            doc,
            format!("{what} must be true or false, not '{other}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_not_prefixes() {
        let a = r#"<a:x xmlns:a="urn:t"><a:y k="1">hi</a:y></a:x>"#;
        let b = r#"<x xmlns="urn:t"><y k="1">hi</y></x>"#;
        let ea = Element::parse(a, &Limits::DEFAULT).unwrap();
        let eb = Element::parse(b, &Limits::DEFAULT).unwrap();
        assert_eq!(ea, eb);
        assert_eq!(ea.children[0].text, "hi");
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><x>&a;</x>"#;
        assert!(matches!(
            Element::parse(bomb, &Limits::DEFAULT),
            Err(Error::UnsafeXml(_))
        ));
        let undeclared = r#"<x>&a;</x>"#;
        assert!(matches!(
            Element::parse(undeclared, &Limits::DEFAULT),
            Err(Error::UnsafeXml(_))
        ));
        let ok = r#"<x a="&lt;&#65;">&amp;&#x263A;</x>"#;
        let e = Element::parse(ok, &Limits::DEFAULT).unwrap();
        assert_eq!(e.text, "&\u{263A}");
        assert_eq!(e.attributes[0].value, "<A");
    }

    #[test]
    fn limits_size_and_depth() {
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(matches!(
            Element::parse(&deep, &Limits::DEFAULT),
            Err(Error::TooLarge(_))
        ));
        let small = Limits {
            max_bytes: 10,
            max_depth: 4,
        };
        assert!(matches!(
            Element::parse("<a>0123456789</a>", &small),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<p:a/>",
            "<a x='1' x='2'/>",
        ] {
            assert!(
                matches!(
                    Element::parse(bad, &Limits::DEFAULT),
                    Err(Error::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn escapes_what_each_context_needs() {
        let raw = "a&b<c>d\"e\rf\ng\th'\u{e9}";
        let mut text = String::new();
        escape_into(&mut text, raw, false);
        assert_eq!(text, "a&amp;b&lt;c&gt;d\"e&#13;f\ng\th'\u{e9}");
        let mut attr = String::new();
        escape_into(&mut attr, raw, true);
        assert_eq!(attr, "a&amp;b&lt;c&gt;d&quot;e&#13;f&#10;g&#9;h'\u{e9}");
        let mut plain = String::from(">");
        escape_into(&mut plain, "plain", true);
        assert_eq!(plain, ">plain");
    }

    #[test]
    fn extension_round_trip_keeps_namespaces() {
        let src = r#"<r xmlns="urn:r" xmlns:o="urn:o"><o:e o:k="v" xml:lang="fr">t<x/></o:e><n xmlns=""/></r>"#;
        let e = Element::parse(src, &Limits::DEFAULT).unwrap();
        let again = Element::parse(&e.to_xml(), &Limits::DEFAULT).unwrap();
        assert_eq!(e, again);
        assert_eq!(again.children[1].namespace, "");
        assert_eq!(again.children[0].attribute(XML_NS, "lang"), Some("fr"));
    }

    #[test]
    fn an_element_in_the_xml_namespace_keeps_its_prefix() {
        // Found by fuzzing the rls-services codec: written with a default-namespace
        // declaration of the XML namespace, it did not parse back.
        let src = r#"<r xmlns="urn:r"><xml:e xml:lang="en" k="v"><c/></xml:e></r>"#;
        let e = Element::parse(src, &Limits::DEFAULT).unwrap();
        assert_eq!(e.children[0].namespace, XML_NS);
        let xml = e.to_xml();
        assert!(xml.contains("<xml:e "), "{xml}");
        assert_eq!(Element::parse(&xml, &Limits::DEFAULT).unwrap(), e);
    }
}

#[cfg(test)]
mod lexer_tests;
