//! Watcher information documents (`application/watcherinfo+xml`, RFC 3858).
//!
//! A presentity that subscribes to `presence.winfo` (RFC 3857) learns who watches it: one
//! `<watcher-list>` per watched resource and event package, one `<watcher>` per subscription
//! with its status (pending, active, ...) and the event that caused it (subscribe, approved,
//! timeout, ...). A `full` document lists every watcher; a `partial` one only those that
//! changed since the previous version, and [`Watcherinfo::apply`] folds it into a full state.
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept as [`Element`]s in the `extensions` of `<watcherinfo>` and `<watcher-list>`:
//!   elements the schema does not define there, in any namespace (the watcherinfo one
//!   included), and a `<watcher>` holding elements (it holds a URI). Attributes this module
//!   does not know are kept as [`Attribute`]s. A document passes through unchanged in
//!   meaning.
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace, missing required
//!   attributes (`version`, `state`, `resource`, `package`, and a watcher's `id`, `status`
//!   and `event`), a watcher without a URI, a status or event outside the schema's tokens,
//!   and counters that are not numbers: a watcher list read without them would misreport
//!   who watches.
#![forbid(unsafe_code)]

use std::str::FromStr;

use crate::doc::ns;
pub use crate::doc::token::DocState;
use crate::doc::token::{fold, token_enum, Fold};
use crate::doc::xml::{Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits, XML_NS};
use crate::error::{Error, Result};

/// The name of this document in error messages.
const DOC: &str = "watcherinfo";

token_enum! {
    /// The state of one watcher's subscription (RFC 3857 section 3.9).
    #[derive(Copy, Hash)]
    pub enum WatcherStatus("watcher status") {
        /// Waiting for the presentity to authorize it.
        Pending = "pending",
        /// Authorized and receiving notifications.
        Active = "active",
        /// Was pending, then expired or was withdrawn; kept to tell the presentity it asked.
        Waiting = "waiting",
        /// Ended; see the event for why.
        Terminated = "terminated",
    }
}

token_enum! {
    /// What moved a watcher into its current status (RFC 3857 section 3.9).
    #[derive(Copy, Hash)]
    pub enum WatcherEvent("watcher event") {
        /// A SUBSCRIBE created the subscription.
        Subscribe = "subscribe",
        /// The presentity authorized it.
        Approved = "approved",
        /// The subscription was deactivated; the watcher may subscribe again.
        Deactivated = "deactivated",
        /// Deactivated; the watcher should wait before subscribing again.
        Probation = "probation",
        /// The presentity refused it.
        Rejected = "rejected",
        /// It expired without a refresh.
        Timeout = "timeout",
        /// It waited too long for an authorization decision.
        Giveup = "giveup",
        /// The watched resource no longer exists.
        Noresource = "noresource",
    }
}

/// One subscription to the watched resource (`<watcher>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// Identifies this subscription within its list, stable across versions (`id`).
    pub id: String,
    /// The subscription's state (`status`).
    pub status: WatcherStatus,
    /// What put it in that state (`event`).
    pub event: WatcherEvent,
    /// The watcher's URI: the element content, whitespace trimmed.
    pub uri: String,
    /// A human-readable name of the watcher (`display-name`).
    pub display_name: Option<String>,
    /// The language of `display_name` (`xml:lang`).
    pub lang: Option<String>,
    /// Seconds the subscription has existed (`duration-subscribed`).
    pub duration_subscribed: Option<u64>,
    /// Seconds until the subscription expires (`expiration`).
    pub expiration: Option<u64>,
    /// Attributes this module does not model, written back as they came.
    pub extension_attributes: Vec<Attribute>,
}

impl Watcher {
    /// A watcher with the required fields and nothing else.
    pub fn new(
        id: impl Into<String>,
        uri: impl Into<String>,
        status: WatcherStatus,
        event: WatcherEvent,
    ) -> Watcher {
        Watcher {
            id: id.into(),
            status,
            event,
            uri: uri.into(),
            display_name: None,
            lang: None,
            duration_subscribed: None,
            expiration: None,
            extension_attributes: Vec::new(),
        }
    }
}

/// The watchers of one resource for one event package (`<watcher-list>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatcherList {
    /// The watched resource, e.g. `sip:alice@example.test` (`resource`).
    pub resource: String,
    /// The event package watched, e.g. `presence` (`package`).
    pub package: String,
    /// The watchers: all of them in a full document, the changed ones in a partial one.
    pub watchers: Vec<Watcher>,
    /// Elements this module does not read (other namespaces, names RFC 3858 does not define
    /// here, watchers holding elements), kept and written back after the watchers.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl WatcherList {
    /// An empty list for `resource` and `package`.
    pub fn new(resource: impl Into<String>, package: impl Into<String>) -> WatcherList {
        WatcherList {
            resource: resource.into(),
            package: package.into(),
            ..WatcherList::default()
        }
    }
}

/// A watcher information document (`<watcherinfo>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watcherinfo {
    /// Counts the notifications of one subscription, starting at 0 (`version`).
    pub version: u32,
    /// Whole state or changes only (`state`).
    pub state: DocState,
    /// One entry per (resource, package) pair.
    pub lists: Vec<WatcherList>,
    /// Elements this module does not read (other namespaces, names RFC 3858 does not define
    /// here), kept and written back after the lists.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Watcherinfo {
    /// The MIME type of this document.
    pub const CONTENT_TYPE: &'static str = "application/watcherinfo+xml";

    /// Parses a watcherinfo document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<Watcherinfo> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::WATCHERINFO, "watcherinfo")?;
        let mut doc = Watcherinfo {
            version: parse_uint(root.required_attr(DOC, "version")?, "<watcherinfo> version")?,
            state: root.required_attr(DOC, "state")?.trim().parse()?,
            lists: Vec::new(),
            extensions: Vec::new(),
            extension_attributes: root.other_attrs(&["version", "state"]),
        };
        for child in root.children() {
            if child.is(ns::WATCHERINFO, "watcher-list") {
                doc.lists.push(parse_list(child)?);
            } else {
                doc.extensions.push(child.to_element());
            }
        }
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self`.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::WATCHERINFO, &[]);
        for list in &self.lists {
            write_list(&mut w, list);
        }
        w.elements(&self.extensions);
        w.finish("watcherinfo", |w| {
            w.attr("version", &self.version.to_string());
            w.attr("state", self.state.as_str());
            w.ext_attrs(&self.extension_attributes);
        })
    }

    /// The list for `resource` and `package`, if the document has one.
    pub fn list(&self, resource: &str, package: &str) -> Option<&WatcherList> {
        self.lists
            .iter()
            .find(|l| l.resource == resource && l.package == package)
    }

    /// Folds the next notification of the same subscription into this state, which starts
    /// as the first document the subscription delivered.
    ///
    /// A `full` update replaces everything. A `partial` one updates, per (resource,
    /// package) list, the watchers whose `id` it names, adds new ones and new lists, and
    /// drops watchers whose status became `terminated` (the update itself still tells the
    /// caller that they ended). Extension elements of a partial update replace those of the
    /// list or document they belong to when it carries any.
    ///
    /// Returns `Ok(true)` when applied and `Ok(false)` when `update` is not newer than this
    /// state (a stale or repeated notification, ignored). A partial update that skips a
    /// version cannot be applied: the error tells the caller to fetch the full state (by
    /// refreshing the subscription).
    pub fn apply(&mut self, update: &Watcherinfo) -> Result<bool> {
        match fold(DOC, self.version, update.version, update.state)? {
            Fold::Stale => return Ok(false),
            Fold::Replace => {
                *self = update.clone();
                return Ok(true);
            }
            Fold::Merge => {}
        }
        for changed in &update.lists {
            let list = match self
                .lists
                .iter_mut()
                .position(|l| l.resource == changed.resource && l.package == changed.package)
            {
                Some(i) => &mut self.lists[i],
                None => {
                    self.lists
                        .push(WatcherList::new(&changed.resource, &changed.package));
                    self.lists.last_mut().expect("just pushed")
                }
            };
            for w in &changed.watchers {
                let known = list.watchers.iter().position(|old| old.id == w.id);
                match (known, w.status) {
                    (Some(i), WatcherStatus::Terminated) => {
                        list.watchers.remove(i);
                    }
                    (None, WatcherStatus::Terminated) => {}
                    (Some(i), _) => list.watchers[i] = w.clone(),
                    (None, _) => list.watchers.push(w.clone()),
                }
            }
            if !changed.extensions.is_empty() {
                list.extensions = changed.extensions.clone();
            }
            if !changed.extension_attributes.is_empty() {
                list.extension_attributes = changed.extension_attributes.clone();
            }
        }
        if !update.extensions.is_empty() {
            self.extensions = update.extensions.clone();
        }
        self.version = update.version;
        self.state = DocState::Full;
        Ok(true)
    }
}

fn parse_list(node: Node<'_, '_>) -> Result<WatcherList> {
    let mut list = WatcherList {
        resource: node.required_attr(DOC, "resource")?.trim().to_owned(),
        package: node.required_attr(DOC, "package")?.trim().to_owned(),
        watchers: Vec::new(),
        extensions: Vec::new(),
        extension_attributes: node.other_attrs(&["resource", "package"]),
    };
    for child in node.children() {
        let watcher = if child.is(ns::WATCHERINFO, "watcher") {
            parse_watcher(child)?
        } else {
            None
        };
        match watcher {
            Some(w) => list.watchers.push(w),
            None => list.extensions.push(child.to_element()),
        }
    }
    Ok(list)
}

/// Reads `<watcher>`; `None` when it holds elements (it holds a URI): the list keeps it.
fn parse_watcher(node: Node<'_, '_>) -> Result<Option<Watcher>> {
    if node.has_children() {
        return Ok(None);
    }
    let id = node.required_attr(DOC, "id")?.to_owned();
    let uri = node.trimmed();
    if uri.is_empty() {
        return Err(Error::malformed(
            DOC,
            format!("<watcher id=\"{id}\"> has no watcher URI"),
        ));
    }
    let optional_uint = |name: &str| -> Result<Option<u64>> {
        node.attr(name)
            .map(|v| parse_uint(v, &format!("<watcher> {name}")))
            .transpose()
    };
    Ok(Some(Watcher {
        status: node.required_attr(DOC, "status")?.trim().parse()?,
        event: node.required_attr(DOC, "event")?.trim().parse()?,
        uri: uri.to_owned(),
        display_name: node.attr("display-name").map(str::to_owned),
        lang: node.attr_ns(XML_NS, "lang").map(str::to_owned),
        duration_subscribed: optional_uint("duration-subscribed")?,
        expiration: optional_uint("expiration")?,
        extension_attributes: node.other_attrs(&[
            "id",
            "status",
            "event",
            "display-name",
            "duration-subscribed",
            "expiration",
            "xml:lang",
        ]),
        id,
    }))
}

fn write_list(w: &mut XmlWriter<'_>, list: &WatcherList) {
    w.open(ns::WATCHERINFO, "watcher-list");
    w.attr("resource", &list.resource);
    w.attr("package", &list.package);
    w.ext_attrs(&list.extension_attributes);
    if list.watchers.is_empty() && list.extensions.is_empty() {
        w.close_empty();
        return;
    }
    w.close_start();
    for watcher in &list.watchers {
        write_watcher(w, watcher);
    }
    w.elements(&list.extensions);
    w.end(ns::WATCHERINFO, "watcher-list");
}

fn write_watcher(w: &mut XmlWriter<'_>, watcher: &Watcher) {
    w.open(ns::WATCHERINFO, "watcher");
    w.attr("id", &watcher.id);
    w.attr("status", watcher.status.as_str());
    w.attr("event", watcher.event.as_str());
    w.attr_opt("display-name", watcher.display_name.as_deref());
    w.attr_opt("xml:lang", watcher.lang.as_deref());
    if let Some(d) = watcher.duration_subscribed {
        w.attr("duration-subscribed", &d.to_string());
    }
    if let Some(e) = watcher.expiration {
        w.attr("expiration", &e.to_string());
    }
    w.ext_attrs(&watcher.extension_attributes);
    w.close_start();
    w.text(&watcher.uri);
    w.end(ns::WATCHERINFO, "watcher");
}

/// Parses an `xs:nonNegativeInteger`/`xs:unsignedLong` value: decimal digits only.
fn parse_uint<T: FromStr>(text: &str, what: &str) -> Result<T> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::malformed(
            DOC,
            format!("{what} must be an unsigned integer, not '{text}'"),
        ));
    }
    digits
        .parse()
        .map_err(|_| Error::malformed(DOC, format!("{what} '{text}' is out of range")))
}
