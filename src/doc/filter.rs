//! Event notification filters (RFC 4661, `application/simple-filter+xml`, functional
//! description in RFC 4660): what a watcher wants to be told (content selection) and when
//! (triggers).
//!
//! A [`FilterSet`] is what a subscriber sends in the body of a SUBSCRIBE. Each [`Filter`]
//! applies to one resource (`uri`), to every resource of a domain (`domain`), or, with
//! neither, to every resource of the subscription ([`FilterSet::filter_for`] picks one).
//! [`Filter::apply`] narrows a document to what the filter selects, and
//! [`Filter::should_notify`] tells whether a change from one document to the next is one the
//! watcher asked to hear about.
//!
//! # The XPath subset
//!
//! Expressions are compiled once, when the filter is parsed or built. Accepted:
//!
//! - absolute location paths only: `/pidf:presence/pidf:tuple`; a `//` separator (the
//!   descendant-or-self axis) anywhere between steps, including first: `//rpid:activities`;
//! - name tests `prefix:name`, `prefix:*`, `*`, and `name` (an unprefixed name means *no
//!   namespace*, as in XPath 1.0);
//! - a final attribute step `@name`, `@prefix:name`, `@prefix:*` or `@*`;
//! - predicates on any element step, several per step (`[a][b]`, all must hold), each one
//!   condition or several joined by `and`. A condition is one of
//!   - `path="v"` or `path='v'`: some node the relative path selects has this value,
//!   - `starts-with(path, "v")`: the first node the path selects has a value starting so,
//!   - `path`: the relative path selects something,
//!
//!   where the relative path is `@attr`, `.`, or child name tests joined by `/`, optionally
//!   ending in `/@attr` (`pidf:status/pidf:basic`, `caps:servcaps/caps:audio`). The value of
//!   an attribute is its value; the value of an element is its own character content with
//!   surrounding whitespace removed (not XPath's concatenation of every descendant's text).
//!
//! Prefixes resolve through the filter set's `<ns-binding>`s; a prefix not bound there falls
//! back to the conventional `pidf`, `dm`, `rpid` and `caps` ([`ns::PIDF`], [`ns::DATA_MODEL`],
//! [`ns::RPID`], [`ns::CAPS`]) and the predefined `xml`. Any other prefix is
//! [`Error::Malformed`]. Everything else XPath has is refused with [`Error::Unsupported`]
//! naming the expression and the construct: relative paths, axes (`child::`), `.` and `..` as
//! steps, positional or numeric predicates (`[1]`), functions other than `starts-with`, node
//! type tests (`text()`), `or`, `|`, comparisons other than `=`, arithmetic, variables, and
//! nested predicates.
//!
//! An `<include>`/`<exclude>` of `type="namespace"` holds a namespace URI instead and selects
//! every element in that namespace.
//!
//! # Content selection and triggers
//!
//! See [`Filter::apply`] and [`Filter::should_notify`] for the exact rules; they work on any
//! document as an [`Element`] tree. [`Filter::apply_to_presence`] and
//! [`Filter::should_notify_presence`] do the same for a PIDF [`Presence`], keeping the
//! `<status>` of every tuple that remains (PIDF requires it).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use crate::doc::pidf::Presence;
use crate::doc::xml::{parse_bool, Node, Tree, XmlWriter};
use crate::doc::xpath::{Hit, Located, Path};
use crate::doc::{ns, Element, Limits};
use crate::error::{Error, Result};
use crate::uri::Uri;

const DOC: &str = "filter";

/// The MIME type of a filter document.
pub const CONTENT_TYPE: &str = "application/simple-filter+xml";

/// A filter document: `<filter-set>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterSet {
    /// The event package the filters are meant for (`package` attribute), e.g. `presence`.
    pub package: Option<String>,
    /// Prefix bindings used by every XPath expression of the set (`<ns-bindings>`).
    pub ns_bindings: Vec<NsBinding>,
    /// The filters, in document order.
    pub filters: Vec<Filter>,
    /// Elements of other namespaces under `<filter-set>`, kept and written back.
    pub extensions: Vec<Element>,
}

/// One `<ns-binding>`: a prefix the XPath expressions use, and its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsBinding {
    /// The prefix as written in expressions (`pidf`).
    pub prefix: String,
    /// The namespace URI it stands for.
    pub urn: String,
}

/// One `<filter>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Identifies the filter within the subscription, so a later document can change or
    /// remove it.
    pub id: String,
    /// The one resource this filter applies to, if any. Never set together with `domain`.
    pub uri: Option<String>,
    /// The domain whose resources this filter applies to, if any.
    pub domain: Option<String>,
    /// `remove="true"`: this entry asks to remove the earlier filter with the same id.
    /// Default false.
    pub remove: bool,
    /// `enabled="false"` keeps a filter installed but inactive. Default true.
    pub enabled: bool,
    /// Content selection; `None` delivers the whole document.
    pub what: Option<What>,
    /// When to notify; empty means on every change.
    pub triggers: Vec<Trigger>,
    /// Elements of other namespaces under `<filter>`, kept and written back.
    pub extensions: Vec<Element>,
}

/// `<what>`: the parts of the document to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct What {
    /// `<include>`s: what is delivered. With none, the whole document is.
    pub includes: Vec<Selection>,
    /// `<exclude>`s: removed from what the includes selected.
    pub excludes: Vec<Selection>,
    /// Elements of other namespaces under `<what>` (e.g. rate control), kept and written back.
    pub extensions: Vec<Element>,
}

/// How an `<include>` or `<exclude>` names what it selects (`type` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionKind {
    /// An XPath expression in the supported subset (the default).
    XPath,
    /// A namespace URI: every element in that namespace.
    Namespace,
}

/// One `<include>` or `<exclude>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// How `expression` is to be read.
    pub kind: SelectionKind,
    /// The expression or namespace URI as written (surrounding whitespace removed).
    /// Build a selection with [`Selection::xpath`] or [`Selection::namespace`]: editing this
    /// field does not recompile it.
    pub expression: String,
    compiled: Option<Path>,
}

/// An XPath expression of a trigger, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XPath {
    /// The expression as written (surrounding whitespace removed). Build with
    /// [`XPath::compile`]: editing this field does not recompile it.
    pub expression: String,
    compiled: Path,
}

/// `<trigger>`: a change that makes a notification worth sending. Every condition of one
/// trigger must hold; any one trigger of a filter suffices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trigger {
    /// `<changed>`: a selected node's value changed.
    pub changed: Vec<Changed>,
    /// `<added>`: a node is selected in the new document that was not in the old one.
    pub added: Vec<XPath>,
    /// `<removed>`: a node selected in the old document is not in the new one.
    pub removed: Vec<XPath>,
    /// Elements of other namespaces under `<trigger>`, kept and written back (not evaluated).
    pub extensions: Vec<Element>,
}

/// `<changed>`: the value of a selected element or attribute changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// What to watch.
    pub expression: XPath,
    /// Only a change away from this value counts.
    pub from: Option<String>,
    /// Only a change to this value counts.
    pub to: Option<String>,
    /// Only a numeric change of at least this much counts (a decimal number, as written).
    pub by: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------------------

/// Conventional prefixes usable without an `<ns-binding>`.
const CONVENTIONAL: &[(&str, &str)] = &[
    ("pidf", ns::PIDF),
    ("dm", ns::DATA_MODEL),
    ("rpid", ns::RPID),
    ("caps", ns::CAPS),
];

fn compile(expression: &str, bindings: &[NsBinding]) -> Result<Path> {
    let resolve = |prefix: &str| -> Option<String> {
        bindings
            .iter()
            .find(|b| b.prefix == prefix)
            .map(|b| b.urn.clone())
            .or_else(|| {
                CONVENTIONAL
                    .iter()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, n)| (*n).to_owned())
            })
    };
    Path::compile(expression, &resolve)
}

impl XPath {
    /// Compiles `expression`, resolving prefixes through `ns_bindings` (then the
    /// conventional ones). Errors: [`Error::Unsupported`] outside the subset,
    /// [`Error::Malformed`] for an undeclared prefix or broken syntax.
    pub fn compile(expression: &str, ns_bindings: &[NsBinding]) -> Result<XPath> {
        let expression = expression.trim();
        Ok(XPath {
            compiled: compile(expression, ns_bindings)?,
            expression: expression.to_owned(),
        })
    }

    fn select<'d>(&self, doc: &'d Element) -> Vec<Located<'d>> {
        self.compiled.select(doc)
    }
}

impl Selection {
    /// An XPath selection, compiled with `ns_bindings` (see [`XPath::compile`]).
    pub fn xpath(expression: &str, ns_bindings: &[NsBinding]) -> Result<Selection> {
        let x = XPath::compile(expression, ns_bindings)?;
        Ok(Selection {
            kind: SelectionKind::XPath,
            expression: x.expression,
            compiled: Some(x.compiled),
        })
    }

    /// A selection of every element in the namespace `urn`.
    pub fn namespace(urn: &str) -> Selection {
        Selection {
            kind: SelectionKind::Namespace,
            expression: urn.trim().to_owned(),
            compiled: None,
        }
    }

    /// The elements and attributes this selection picks from `doc`, in document order.
    fn select<'d>(&self, doc: &'d Element) -> Vec<Located<'d>> {
        match &self.compiled {
            Some(path) => path.select(doc),
            None => {
                let mut out = Vec::new();
                in_namespace(doc, &self.expression, &mut Vec::new(), &mut out);
                out
            }
        }
    }
}

fn in_namespace<'d>(e: &'d Element, ns: &str, path: &mut Vec<usize>, out: &mut Vec<Located<'d>>) {
    if e.namespace == ns {
        out.push(Located {
            path: path.clone(),
            hit: Hit {
                element: e,
                attribute: None,
            },
        });
    }
    for (i, c) in e.children.iter().enumerate() {
        path.push(i);
        in_namespace(c, ns, path, out);
        path.pop();
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

impl FilterSet {
    /// Parses a filter document under `limits`, compiling every expression.
    ///
    /// Errors: [`Error::Malformed`] for a document that does not follow RFC 4661 (wrong root
    /// or namespace, a filter without `id`, two filters with one id, `uri` and `domain`
    /// together, a boolean that is not one, an unknown element of the filter namespace, an
    /// empty expression, an undeclared prefix); [`Error::Unsupported`] for an XPath outside
    /// the subset; [`Error::UnsafeXml`] and [`Error::TooLarge`] from the XML layer.
    pub fn parse(input: &str, limits: &Limits) -> Result<FilterSet> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::FILTER, "filter-set")?;
        let mut set = FilterSet {
            package: root.attr("package").map(str::to_owned),
            ..FilterSet::default()
        };
        let mut seen_bindings = false;
        let mut filter_nodes = Vec::new();
        for child in root.children() {
            if child.ns() != ns::FILTER {
                set.extensions.push(child.to_element());
                continue;
            }
            match child.local() {
                "ns-bindings" => {
                    if seen_bindings {
                        return Err(Error::malformed(DOC, "more than one <ns-bindings>"));
                    }
                    seen_bindings = true;
                    set.ns_bindings = parse_bindings(child)?;
                }
                "filter" => filter_nodes.push(child),
                other => return Err(unknown(other, "filter-set")),
            }
        }
        let mut ids = BTreeSet::new();
        for node in filter_nodes {
            let filter = parse_filter(node, &set.ns_bindings)?;
            if !ids.insert(filter.id.clone()) {
                return Err(Error::malformed(
                    DOC,
                    format!("two filters have the id '{}'", filter.id),
                ));
            }
            set.filters.push(filter);
        }
        Ok(set)
    }
}

fn unknown(local: &str, parent: &str) -> Error {
    Error::malformed(DOC, format!("unknown element <{local}> in <{parent}>"))
}

fn parse_bindings(node: Node<'_, '_>) -> Result<Vec<NsBinding>> {
    let mut out: Vec<NsBinding> = Vec::new();
    for b in node.children() {
        if b.ns() != ns::FILTER {
            continue;
        }
        if b.local() != "ns-binding" {
            return Err(unknown(b.local(), "ns-bindings"));
        }
        let prefix = b.required_attr(DOC, "prefix")?.trim();
        let urn = b.required_attr(DOC, "urn")?.trim();
        let valid = !prefix.is_empty()
            && prefix
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
            && prefix
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(Error::malformed(
                DOC,
                format!("<ns-binding> prefix '{prefix}' is not a valid prefix"),
            ));
        }
        if urn.is_empty() {
            return Err(Error::malformed(
                DOC,
                format!("<ns-binding> for '{prefix}' has an empty urn"),
            ));
        }
        if out.iter().any(|o| o.prefix == prefix) {
            return Err(Error::malformed(
                DOC,
                format!("prefix '{prefix}' is bound twice"),
            ));
        }
        out.push(NsBinding {
            prefix: prefix.to_owned(),
            urn: urn.to_owned(),
        });
    }
    Ok(out)
}

fn parse_filter(node: Node<'_, '_>, bindings: &[NsBinding]) -> Result<Filter> {
    let id = node.required_attr(DOC, "id")?.trim();
    if id.is_empty() {
        return Err(Error::malformed(DOC, "<filter> has an empty id"));
    }
    let uri = node.attr("uri").map(|s| s.trim().to_owned());
    let domain = node.attr("domain").map(|s| s.trim().to_owned());
    if uri.is_some() && domain.is_some() {
        return Err(Error::malformed(
            DOC,
            format!("filter '{id}' has both a uri and a domain"),
        ));
    }
    let flag = |name: &str, default: bool| -> Result<bool> {
        match node.attr(name) {
            Some(v) => parse_bool(DOC, &format!("filter '{id}' attribute '{name}'"), v),
            None => Ok(default),
        }
    };
    let mut filter = Filter {
        id: id.to_owned(),
        uri,
        domain,
        remove: flag("remove", false)?,
        enabled: flag("enabled", true)?,
        what: None,
        triggers: Vec::new(),
        extensions: Vec::new(),
    };
    for child in node.children() {
        if child.ns() != ns::FILTER {
            filter.extensions.push(child.to_element());
            continue;
        }
        match child.local() {
            "what" => {
                if filter.what.is_some() {
                    return Err(Error::malformed(
                        DOC,
                        format!("filter '{id}' has more than one <what>"),
                    ));
                }
                filter.what = Some(parse_what(child, bindings)?);
            }
            "trigger" => filter.triggers.push(parse_trigger(child, bindings)?),
            other => return Err(unknown(other, "filter")),
        }
    }
    Ok(filter)
}

fn expression_text<'t>(node: Node<'t, '_>) -> Result<&'t str> {
    let text = node.trimmed();
    if text.is_empty() {
        return Err(Error::malformed(
            DOC,
            format!("<{}> has no expression", node.local()),
        ));
    }
    Ok(text)
}

fn parse_what(node: Node<'_, '_>, bindings: &[NsBinding]) -> Result<What> {
    let mut what = What::default();
    for child in node.children() {
        if child.ns() != ns::FILTER {
            what.extensions.push(child.to_element());
            continue;
        }
        let list = match child.local() {
            "include" => &mut what.includes,
            "exclude" => &mut what.excludes,
            other => return Err(unknown(other, "what")),
        };
        let text = expression_text(child)?;
        let selection = match child.attr("type").map(str::trim) {
            None | Some("xpath") => Selection::xpath(text, bindings)?,
            Some("namespace") => Selection::namespace(text),
            Some(other) => {
                return Err(Error::malformed(
                    DOC,
                    format!(
                        "<{}> type '{other}' is neither 'xpath' nor 'namespace'",
                        child.local()
                    ),
                ))
            }
        };
        list.push(selection);
    }
    Ok(what)
}

fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn parse_trigger(node: Node<'_, '_>, bindings: &[NsBinding]) -> Result<Trigger> {
    let mut trigger = Trigger::default();
    for child in node.children() {
        if child.ns() != ns::FILTER {
            trigger.extensions.push(child.to_element());
            continue;
        }
        let expression = XPath::compile(expression_text(child)?, bindings)?;
        match child.local() {
            "changed" => {
                let by = child.attr("by").map(|s| s.trim().to_owned());
                if let Some(b) = &by {
                    if !is_decimal(b) {
                        return Err(Error::malformed(
                            DOC,
                            format!("<changed> by='{b}' is not a decimal number"),
                        ));
                    }
                }
                trigger.changed.push(Changed {
                    expression,
                    from: child.attr("from").map(str::to_owned),
                    to: child.attr("to").map(str::to_owned),
                    by,
                });
            }
            "added" => trigger.added.push(expression),
            "removed" => trigger.removed.push(expression),
            other => return Err(unknown(other, "trigger")),
        }
    }
    Ok(trigger)
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

impl FilterSet {
    /// Serializes the set as an `application/simple-filter+xml` document that parses back
    /// to an equal model.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::FILTER, &[]);
        if !self.ns_bindings.is_empty() {
            w.open(ns::FILTER, "ns-bindings");
            w.close_start();
            for b in &self.ns_bindings {
                w.open(ns::FILTER, "ns-binding");
                w.attr("prefix", &b.prefix);
                w.attr("urn", &b.urn);
                w.close_empty();
            }
            w.end(ns::FILTER, "ns-bindings");
        }
        for f in &self.filters {
            write_filter(&mut w, f);
        }
        w.elements(&self.extensions);
        w.finish("filter-set", |w| {
            w.attr_opt("package", self.package.as_deref())
        })
    }
}

fn write_filter(w: &mut XmlWriter<'_>, f: &Filter) {
    w.open(ns::FILTER, "filter");
    w.attr("id", &f.id);
    w.attr_opt("uri", f.uri.as_deref());
    w.attr_opt("domain", f.domain.as_deref());
    if f.remove {
        w.attr("remove", "true");
    }
    if !f.enabled {
        w.attr("enabled", "false");
    }
    if f.what.is_none() && f.triggers.is_empty() && f.extensions.is_empty() {
        w.close_empty();
        return;
    }
    w.close_start();
    if let Some(what) = &f.what {
        w.open(ns::FILTER, "what");
        w.close_start();
        for (name, list) in [("include", &what.includes), ("exclude", &what.excludes)] {
            for s in list {
                w.open(ns::FILTER, name);
                if s.kind == SelectionKind::Namespace {
                    w.attr("type", "namespace");
                }
                w.close_start();
                w.text(&s.expression);
                w.end(ns::FILTER, name);
            }
        }
        w.elements(&what.extensions);
        w.end(ns::FILTER, "what");
    }
    for t in &f.triggers {
        w.open(ns::FILTER, "trigger");
        w.close_start();
        for c in &t.changed {
            w.open(ns::FILTER, "changed");
            w.attr_opt("from", c.from.as_deref());
            w.attr_opt("to", c.to.as_deref());
            w.attr_opt("by", c.by.as_deref());
            w.close_start();
            w.text(&c.expression.expression);
            w.end(ns::FILTER, "changed");
        }
        for a in &t.added {
            w.leaf(ns::FILTER, "added", &a.expression);
        }
        for r in &t.removed {
            w.leaf(ns::FILTER, "removed", &r.expression);
        }
        w.elements(&t.extensions);
        w.end(ns::FILTER, "trigger");
    }
    w.elements(&f.extensions);
    w.end(ns::FILTER, "filter");
}

// ---------------------------------------------------------------------------------------
// Choosing a filter
// ---------------------------------------------------------------------------------------

impl FilterSet {
    /// The filter that applies to the resource `resource` (a URI such as
    /// `sip:alice@example.test`). Only filters that are enabled and not removals count.
    /// The rule, in order: the first whose `uri` names the same presentity (equal
    /// address-of-record, [`Uri::aor`]: scheme and host without case, port, parameters and
    /// headers ignored; exact text when either does not parse); else the first whose
    /// `domain` equals the resource's host (without case); else the first with neither `uri`
    /// nor `domain`; else none.
    pub fn filter_for(&self, resource: &str) -> Option<&Filter> {
        let active = || self.filters.iter().filter(|f| f.enabled && !f.remove);
        let parsed = Uri::parse(resource.trim()).ok();
        let same = |uri: &str| match (&parsed, Uri::parse(uri.trim())) {
            (Some(r), Ok(u)) => r.aor() == u.aor(),
            _ => uri.trim() == resource.trim(),
        };
        active()
            .find(|f| f.uri.as_deref().is_some_and(same))
            .or_else(|| {
                active().find(|f| match (f.domain.as_deref(), &parsed) {
                    (Some(d), Some(r)) => d.trim().eq_ignore_ascii_case(r.host()),
                    _ => false,
                })
            })
            .or_else(|| active().find(|f| f.uri.is_none() && f.domain.is_none()))
    }
}

// ---------------------------------------------------------------------------------------
// Content selection
// ---------------------------------------------------------------------------------------

/// Positions selected in one document: whole elements, elements kept for their attributes
/// only, and single attributes.
#[derive(Default)]
struct Marks {
    whole: BTreeSet<Vec<usize>>,
    attrs: BTreeSet<(Vec<usize>, usize)>,
}

impl Marks {
    fn add(&mut self, hits: Vec<Located<'_>>) {
        for l in hits {
            match l.hit.attribute {
                None => self.whole.insert(l.path),
                Some(i) => self.attrs.insert((l.path, i)),
            };
        }
    }
}

impl Filter {
    /// The part of `doc` this filter lets through.
    ///
    /// Without `<what>`, or with a `<what>` that has no `<include>`, the whole document is
    /// selected. Otherwise the result holds the root element, every element an include
    /// selects with its whole subtree, and the ancestors of selected nodes; an ancestor keeps
    /// its attributes but only the children that lead to selected nodes (and no text). An
    /// include selecting an attribute keeps its element as such an ancestor. Then every
    /// element or attribute an exclude selects is removed (an exclude of the root element
    /// removes everything but the bare root). Includes and excludes are evaluated on `doc`
    /// itself; document order is kept.
    pub fn apply(&self, doc: &Element) -> Element {
        let Some(what) = &self.what else {
            return doc.clone();
        };
        let mut include = Marks::default();
        if what.includes.is_empty() {
            include.whole.insert(Vec::new());
        }
        for s in &what.includes {
            include.add(s.select(doc));
        }
        let mut exclude = Marks::default();
        for s in &what.excludes {
            exclude.add(s.select(doc));
        }
        if exclude.whole.contains(&Vec::<usize>::new()) {
            return Element {
                namespace: doc.namespace.clone(),
                name: doc.name.clone(),
                ..Element::default()
            };
        }
        // Every ancestor of a selected node (the node itself for an attribute).
        let mut lead: BTreeSet<Vec<usize>> = BTreeSet::new();
        let selected = include
            .whole
            .iter()
            .chain(include.attrs.iter().map(|(p, _)| p));
        for p in selected {
            for n in 0..=p.len() {
                lead.insert(p[..n].to_vec());
            }
        }
        let mut path = Vec::new();
        prune(doc, &mut path, false, &include, &lead, &exclude)
    }
}

fn prune(
    e: &Element,
    path: &mut Vec<usize>,
    inside: bool,
    include: &Marks,
    lead: &BTreeSet<Vec<usize>>,
    exclude: &Marks,
) -> Element {
    let whole = inside || include.whole.contains(path.as_slice());
    let attributes = e
        .attributes
        .iter()
        .enumerate()
        .filter(|(i, _)| !exclude.attrs.contains(&(path.clone(), *i)))
        .map(|(_, a)| a.clone())
        .collect();
    let mut children = Vec::new();
    for (i, c) in e.children.iter().enumerate() {
        path.push(i);
        if !exclude.whole.contains(path.as_slice()) && (whole || lead.contains(path.as_slice())) {
            children.push(prune(c, path, whole, include, lead, exclude));
        }
        path.pop();
    }
    Element {
        namespace: e.namespace.clone(),
        name: e.name.clone(),
        attributes,
        text: if whole { e.text.clone() } else { String::new() },
        children,
    }
}

// ---------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------

/// How one element is told apart from its siblings when two documents are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Identity {
    /// By its `id` attribute.
    Id(String),
    /// By its position among the siblings of the same name that have no `id`.
    Position(usize),
}

type Key = (Vec<(String, String, Identity)>, Option<(String, String)>);

/// The identity of every element along `path`, from the root down.
fn key_of(doc: &Element, l: &Located<'_>) -> Key {
    let mut steps = Vec::with_capacity(l.path.len() + 1);
    let id = |e: &Element, pos: usize| match e.attribute("", "id") {
        Some(v) => Identity::Id(v.to_owned()),
        None => Identity::Position(pos),
    };
    steps.push((doc.namespace.clone(), doc.name.clone(), id(doc, 0)));
    let mut e = doc;
    for &i in &l.path {
        let child = &e.children[i];
        let pos = e.children[..i]
            .iter()
            .filter(|s| {
                s.namespace == child.namespace
                    && s.name == child.name
                    && s.attribute("", "id").is_none()
            })
            .count();
        steps.push((child.namespace.clone(), child.name.clone(), id(child, pos)));
        e = child;
    }
    let attr = l.hit.attribute.map(|i| {
        let a = &l.hit.element.attributes[i];
        (a.namespace.clone(), a.name.clone())
    });
    (steps, attr)
}

fn keyed<'d>(x: &XPath, doc: &'d Element) -> BTreeMap<Key, Hit<'d>> {
    x.select(doc)
        .into_iter()
        .map(|l| (key_of(doc, &l), l.hit))
        .collect()
}

/// Whether two elements differ, ignoring whitespace around character content.
fn differs(a: &Element, b: &Element) -> bool {
    a.namespace != b.namespace
        || a.name != b.name
        || a.attributes != b.attributes
        || a.text.trim() != b.text.trim()
        || a.children.len() != b.children.len()
        || a.children
            .iter()
            .zip(&b.children)
            .any(|(x, y)| differs(x, y))
}

impl Changed {
    fn fires(&self, old: &Element, new: &Element) -> bool {
        let before = keyed(&self.expression, old);
        let after = keyed(&self.expression, new);
        before.iter().any(|(key, o)| {
            let Some(n) = after.get(key) else {
                return false;
            };
            let changed = match (o.attribute, n.attribute) {
                (None, None) => differs(o.element, n.element),
                _ => o.value() != n.value(),
            };
            changed
                && self.from.as_deref().map_or(true, |f| o.value() == f.trim())
                && self.to.as_deref().map_or(true, |t| n.value() == t.trim())
                && self.by.as_deref().map_or(true, |by| {
                    match (
                        by.parse::<f64>(),
                        o.value().parse::<f64>(),
                        n.value().parse::<f64>(),
                    ) {
                        (Ok(by), Ok(a), Ok(b)) => (b - a).abs() >= by.abs(),
                        _ => false,
                    }
                })
        })
    }
}

impl Trigger {
    fn fires(&self, old: &Element, new: &Element) -> bool {
        self.changed.iter().all(|c| c.fires(old, new))
            && self.added.iter().all(|x| {
                let before = keyed(x, old);
                keyed(x, new).keys().any(|k| !before.contains_key(k))
            })
            && self.removed.iter().all(|x| {
                let after = keyed(x, new);
                keyed(x, old).keys().any(|k| !after.contains_key(k))
            })
    }
}

impl Filter {
    /// Whether the change from `old` (the document the watcher was last told about, if
    /// any) to `new` is one this filter asks to be notified of.
    ///
    /// With no trigger, or no `old` document, always. Otherwise when any trigger fires; a
    /// trigger fires when all its conditions hold (a trigger holding only extension
    /// elements, which are not evaluated, always fires):
    ///
    /// - `<changed>`: nodes the expression selects are correlated between `old` and `new` by
    ///   their path from the root, an element with an `id` attribute identified by that id
    ///   and any other by its name and position among same-named siblings without id. The
    ///   condition holds when a correlated node differs (an element's text, attributes or
    ///   children, whitespace around text ignored; an attribute's value) and its old value
    ///   equals `from`, its new value equals `to`, and both values are numbers at least `by`
    ///   apart, for each of those attributes that is given. A node present on one side only
    ///   is not a change: that is what `<added>` and `<removed>` are for.
    /// - `<added>`: a node is selected in `new` with no correlated node selected in `old`.
    /// - `<removed>`: a node is selected in `old` with no correlated node selected in `new`.
    pub fn should_notify(&self, old: Option<&Element>, new: &Element) -> bool {
        let Some(old) = old else {
            return true;
        };
        self.triggers.is_empty() || self.triggers.iter().any(|t| t.fires(old, new))
    }
}

// ---------------------------------------------------------------------------------------
// Presence documents
// ---------------------------------------------------------------------------------------

/// Limits for documents this library wrote itself: size is no concern, depth stays bounded.
const OWN_DOCUMENT: Limits = Limits {
    max_bytes: usize::MAX,
    max_depth: 256,
};

fn presence_element(p: &Presence) -> Result<Element> {
    Element::parse(&p.to_xml(), &OWN_DOCUMENT)
}

impl Filter {
    /// [`Filter::apply`] on a PIDF document, through its XML form.
    ///
    /// PIDF requires every tuple to have a `<status>`, so every tuple the result keeps,
    /// whether selected whole or kept as the ancestor of a selected node, keeps its whole
    /// `<status>` from `p`, even where an exclude removed it or the selection did not reach
    /// it. Errors: [`Error::Malformed`] when what remains is not a valid PIDF document for
    /// another reason (say, an exclude removed a tuple's `id` or left an RPID element
    /// without its required content).
    pub fn apply_to_presence(&self, p: &Presence) -> Result<Presence> {
        if self.what.is_none() {
            return Ok(p.clone());
        }
        let doc = presence_element(p)?;
        let mut out = self.apply(&doc);
        for tuple in out
            .children
            .iter_mut()
            .filter(|c| c.namespace == ns::PIDF && c.name == "tuple")
        {
            if tuple.child(ns::PIDF, "status").is_some() {
                continue;
            }
            let id = tuple.attribute("", "id");
            let original = doc.children.iter().find(|c| {
                c.namespace == ns::PIDF && c.name == "tuple" && c.attribute("", "id") == id
            });
            if let Some(status) = original.and_then(|t| t.child(ns::PIDF, "status")) {
                tuple.children.insert(0, status.clone());
            }
        }
        Presence::parse(&out.to_xml(), &OWN_DOCUMENT)
    }

    /// [`Filter::should_notify`] on PIDF documents, through their XML form. Should a
    /// document fail to convert (which a valid model does not), the answer is to notify.
    pub fn should_notify_presence(&self, old: Option<&Presence>, new: &Presence) -> bool {
        if old.is_none() || self.triggers.is_empty() {
            return true;
        }
        match (old.map(presence_element).transpose(), presence_element(new)) {
            (Ok(old), Ok(new)) => self.should_notify(old.as_ref(), &new),
            _ => true,
        }
    }
}
