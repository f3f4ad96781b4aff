//! PIDF presence documents (RFC 3863) with the extensions phones and clients send: the data
//! model's person and device elements (RFC 4479, in [`super::datamodel`]), RPID (RFC 4480, in
//! [`super::rpid`]) and service capabilities (RFC 5196, in [`super::caps`]).
//!
//! Parsing resolves namespaces, so `<presence xmlns="urn:ietf:params:xml:ns:pidf">`,
//! `<impp:presence xmlns:impp="...">` and any other prefix read the same. Elements and
//! attributes from namespaces this module does not model are kept in `extensions` and
//! `extension_attributes` and written back, so parse → serialize → parse gives an equal model.
//!
//! # What is kept, what is refused
//!
//! Phones and clients send PIDF that RFC 3863 never defined: Asterisk's
//! `<tuple id="digium-presence"><status><digium_presence type="away"/></status></tuple>` (an
//! unknown element in the PIDF namespace), eyeBeam's `<pp:person>`, the pre-RFC RPID forms.
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept in the `extensions` of `<presence>`, `<tuple>` or `<status>`: elements the schema
//!   does not define there, in any namespace, the PIDF one included; a repeat of a child
//!   that may appear once (a second `<status>`, `<basic>`, `<contact>` or `<timestamp>`; the
//!   first is read); a known optional element in a shape the schema does not give it
//!   (`<contact>`, `<basic>`, `<timestamp>` or a note holding elements or unknown
//!   attributes; an RPID or caps element its reader does not take, see
//!   [`super::rpid`] and [`super::caps`]).
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace, a `<presence>`
//!   without a URI-shaped `entity`, a tuple without an `id` or without `<status>`, an id
//!   used twice across tuples, persons and devices (a person or device may have none, see
//!   [`super::datamodel`]), and values outside their types: a
//!   `<basic>` other than `open` or `closed`, a contact that is not a URI or a priority
//!   outside 0..1, a timestamp that is not a date-time, and the RPID and caps values their
//!   modules check. What these carry is what a watcher acts on; reading the document without
//!   it would tell the watcher something the publisher did not say.
//!
//! Extensions of a tuple are written after `<status>` and the RPID and caps children, where
//! RFC 3863 puts them, unless one of them is in the PIDF namespace: then all of them are
//! written after the tuple's last child (see `xml::any_in`).
#![forbid(unsafe_code)]

use super::caps::ServiceCaps;
use super::datamodel::{Device, Person};
use super::ns;
use super::rpid::{parse_class, write_class, Relationship, ServiceClass, StatusIcon, UserInput};
use super::xml::{any_in, read_once, trim, Attribute, Element, Limits, Node, Tree, XmlWriter};
use super::xml_lexer::{has_below, has_byte};
use super::{push_default, push_small, Note, Timestamp};
use crate::error::{Error, Result};

const DOC: &str = "pidf";

/// The MIME type of a PIDF document.
pub const CONTENT_TYPE: &str = "application/pidf+xml";

/// The prefixes written for the namespaces PIDF documents commonly carry.
pub(crate) const PREFIXES: &[(&str, &str)] = &[
    (ns::DATA_MODEL, "dm"),
    (ns::RPID, "rpid"),
    (ns::CAPS, "caps"),
    (ns::LOCATION_TYPE, "lt"),
];

/// A presence document: one presentity's tuples (services), persons and devices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// The presentity this document describes (`entity` attribute), e.g. `pres:alice@example.test`.
    pub entity: String,
    /// Services, in document order; ids are unique within the document.
    pub tuples: Vec<Tuple>,
    /// Presence-level notes.
    pub notes: Vec<Note>,
    /// Data-model persons (RFC 4479), usually one, carrying RPID person data.
    pub persons: Vec<Person>,
    /// Data-model devices (RFC 4479).
    pub devices: Vec<Device>,
    /// Other child elements of `<presence>`, kept as read.
    pub extensions: Vec<Element>,
    /// Other attributes of `<presence>`, kept as read.
    pub extension_attributes: Vec<Attribute>,
}

/// One service of the presentity (`<tuple>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuple {
    /// The tuple id, unique within the document.
    pub id: String,
    /// The status; `basic` is what most watchers look at.
    pub status: Status,
    /// Where to reach this service, with its priority.
    pub contact: Option<Contact>,
    /// Notes about this service.
    pub notes: Vec<Note>,
    /// When this tuple last changed.
    pub timestamp: Option<Timestamp>,
    /// Devices this service runs on (`dm:deviceID`, RFC 4479).
    pub device_ids: Vec<String>,
    /// RPID `class` of the service.
    pub class: Option<String>,
    /// RPID relationship of the service to the presentity (self, family, assistant, ...).
    pub relationship: Option<Relationship>,
    /// RPID service class (electronic, postal, in-person, ...).
    pub service_class: Option<ServiceClass>,
    /// RPID user input (idle/active) for this service.
    pub user_input: Option<UserInput>,
    /// RPID status icon for this service.
    pub status_icon: Option<StatusIcon>,
    /// Service capabilities (RFC 5196 `servcaps`).
    pub service_caps: Option<ServiceCaps>,
    /// Other child elements (other namespaces, names RFC 3863 does not define, repeats,
    /// other shapes), kept as read. Written where RFC 3863 puts extensions, or after the
    /// tuple's last child when one is in the PIDF namespace.
    pub extensions: Vec<Element>,
    /// Other attributes of `<tuple>`, kept as read.
    pub extension_attributes: Vec<Attribute>,
}

/// The `<status>` of a tuple.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `open` (willing to communicate) or `closed`; absent when the publisher does not say.
    pub basic: Option<Basic>,
    /// Other status elements (extensions such as Asterisk's `<digium_presence>`, a second
    /// `<basic>`), kept as read.
    pub extensions: Vec<Element>,
}

/// The basic status of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basic {
    /// Ready to accept communication.
    Open,
    /// Not ready.
    Closed,
}

impl Basic {
    /// `"open"` or `"closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

impl std::str::FromStr for Basic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Basic> {
        match s {
            "open" => Ok(Basic::Open),
            "closed" => Ok(Basic::Closed),
            other => Err(Error::malformed(
                DOC,
                format!("basic status must be 'open' or 'closed', not '{other}'"),
            )),
        }
    }
}

/// A contact address with an optional priority.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// The contact URI, as written.
    pub uri: String,
    /// Relative priority among the presentity's contacts.
    pub priority: Option<Priority>,
}

/// A contact priority between 0 and 1 in steps of 0.001, kept exactly (as thousandths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u16);

impl Priority {
    /// From thousandths (0..=1000).
    pub fn from_thousandths(t: u16) -> Result<Priority> {
        if t > 1000 {
            return Err(Error::InvalidArgument(format!(
                "priority {t}/1000 is above 1"
            )));
        }
        Ok(Priority(t))
    }

    /// From a value between 0 and 1, rounded to thousandths.
    pub fn from_f64(v: f64) -> Result<Priority> {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::InvalidArgument(format!(
                "priority {v} is outside 0..1"
            )));
        }
        Ok(Priority((v * 1000.0).round() as u16))
    }

    /// The value in thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// The value as a number between 0 and 1.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Parses an `xs:decimal` between 0 and 1 with at most three significant decimals.
    pub fn parse(text: &str) -> Result<Priority> {
        let bad = || {
            Error::malformed(
                DOC,
                format!("contact priority '{text}' is not a decimal between 0 and 1"),
            )
        };
        let t = trim(text);
        let t = t.strip_prefix('+').unwrap_or(t);
        let (int, frac) = match t.bytes().position(|b| b == b'.') {
            Some(dot) => (&t[..dot], &t[dot + 1..]),
            None => (t, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        if int.len() > 1 || frac.len() > 3 {
            return Err(bad());
        }
        let whole: u16 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut thousandths: u16 = 0;
        for (i, d) in frac.bytes().enumerate() {
            thousandths += u16::from(d - b'0') * [100, 10, 1][i];
        }
        let v = whole * 1000 + thousandths;
        if v > 1000 {
            return Err(bad());
        }
        Ok(Priority(v))
    }
}

impl Priority {
    /// The decimal text, written into `buf`: "1", "0", or "0." followed by the thousandths
    /// without trailing zeros.
    fn text(self, buf: &mut [u8; 5]) -> &str {
        if self.0 >= 1000 {
            return "1";
        }
        let digits = [
            b'0' + (self.0 / 100) as u8,
            b'0' + (self.0 / 10 % 10) as u8,
            b'0' + (self.0 % 10) as u8,
        ];
        let used = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        if used == 0 {
            return "0";
        }
        buf[0] = b'0';
        buf[1] = b'.';
        buf[2..2 + used].copy_from_slice(&digits[..used]);
        std::str::from_utf8(&buf[..2 + used]).unwrap_or("0")
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text(&mut [0; 5]))
    }
}

impl Presence {
    /// An empty document for `entity`.
    pub fn new(entity: impl Into<String>) -> Presence {
        Presence {
            entity: entity.into(),
            ..Presence::default()
        }
    }

    /// Parses a PIDF document.
    pub fn parse(input: &str, limits: &Limits) -> Result<Presence> {
        let tree = Tree::parse(DOC, input, limits)?;
        Presence::from_root(tree.root())
    }

    /// Parses a PIDF document given as bytes, which must be UTF-8.
    pub fn parse_bytes(input: &[u8], limits: &Limits) -> Result<Presence> {
        limits.check_size(DOC, input.len())?;
        let text = std::str::from_utf8(input).map_err(|e| {
            Error::malformed(
                DOC,
                format!("document is not UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        Presence::parse(text, limits)
    }

    fn from_root(root: Node<'_, '_>) -> Result<Presence> {
        root.expect(DOC, ns::PIDF, "presence")?;
        let entity = root.required_attr(DOC, "entity")?;
        check_uri(entity, "entity")?;
        let mut p = Presence {
            entity: entity.to_owned(),
            extension_attributes: root.other_attrs(&["entity"]),
            ..Presence::default()
        };
        for child in root.children() {
            match (child.ns(), child.local()) {
                // Read in place: a tuple is a large value, not worth moving twice.
                (ns::PIDF, "tuple") => push_default(&mut p.tuples).read(child)?,
                (ns::DATA_MODEL, "person") => push_default(&mut p.persons).read(child)?,
                (ns::DATA_MODEL, "device") => p.devices.push(Device::from_node(child)?),
                (ns::PIDF, "note") => match Note::read(child) {
                    Some(n) => push_small(&mut p.notes, n),
                    None => p.extensions.push(child.to_element()),
                },
                _ => p.extensions.push(child.to_element()),
            }
        }
        p.check_ids()?;
        Ok(p)
    }

    /// Checks what the model requires beyond its types: tuple ids present, ids unique across
    /// tuples, persons and devices (RFC 4479 §4.4; a person or device without one clashes
    /// with nothing), a URI-shaped entity.
    pub fn validate(&self) -> Result<()> {
        check_uri(&self.entity, "entity")?;
        for t in &self.tuples {
            if t.id.is_empty() {
                return Err(Error::malformed(DOC, "a tuple has an empty id"));
            }
        }
        self.check_ids()
    }

    fn check_ids(&self) -> Result<()> {
        // A person or device without an id (empty) clashes with nothing.
        let ids = self
            .tuples
            .iter()
            .map(|t| ("tuple", t.id.as_str()))
            .chain(self.persons.iter().map(|p| ("person", p.id.as_str())))
            .chain(self.devices.iter().map(|d| ("device", d.id.as_str())))
            .filter(|(_, id)| !id.is_empty());
        let twice = |kind: &str, id: &str| {
            Error::malformed(
                DOC,
                format!("{kind} id '{id}' is used twice in one document"),
            )
        };
        // Documents usually have a handful of ids: those are checked without allocating.
        const FEW: usize = 8;
        if self.tuples.len() + self.persons.len() + self.devices.len() <= FEW {
            let mut seen = [""; FEW];
            for (k, (kind, id)) in ids.enumerate() {
                if seen[..k].contains(&id) {
                    return Err(twice(kind, id));
                }
                seen[k] = id;
            }
            return Ok(());
        }
        let mut seen: Vec<&str> = Vec::with_capacity(self.tuples.len() + 2);
        for (kind, id) in ids {
            if seen.contains(&id) {
                return Err(twice(kind, id));
            }
            seen.push(id);
        }
        Ok(())
    }

    /// Serializes the document (UTF-8, with an XML declaration).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::PIDF, PREFIXES);
        for t in &self.tuples {
            t.write(&mut w);
        }
        for n in &self.notes {
            n.write(&mut w, ns::PIDF);
        }
        for p in &self.persons {
            p.write(&mut w);
        }
        for d in &self.devices {
            d.write(&mut w);
        }
        w.elements(&self.extensions);
        w.finish("presence", |w| {
            w.attr("entity", &self.entity);
            w.ext_attrs(&self.extension_attributes);
        })
    }

    /// The tuple with this id.
    pub fn tuple(&self, id: &str) -> Option<&Tuple> {
        self.tuples.iter().find(|t| t.id == id)
    }

    /// Whether any tuple is open: the presentity is reachable somehow.
    pub fn is_open(&self) -> bool {
        self.tuples
            .iter()
            .any(|t| t.status.basic == Some(Basic::Open))
    }
}

impl Tuple {
    /// A tuple with an id and a basic status.
    pub fn new(id: impl Into<String>, basic: Basic) -> Tuple {
        Tuple {
            id: id.into(),
            status: Status {
                basic: Some(basic),
                extensions: Vec::new(),
            },
            ..Tuple::default()
        }
    }

    /// Reads `<tuple>` into `self`, a default tuple.
    fn read(&mut self, node: Node<'_, '_>) -> Result<()> {
        let id = node.required_attr(DOC, "id")?;
        if trim(id).is_empty() {
            return Err(Error::malformed(DOC, "a tuple has an empty id"));
        }
        let t = self;
        t.id = id.to_owned();
        t.extension_attributes = node.other_attrs(&["id"]);
        let mut status = None;
        for child in node.children() {
            if !t.read_child(child, &mut status)? {
                push_small(&mut t.extensions, child.to_element());
            }
        }
        t.status =
            status.ok_or_else(|| Error::malformed(DOC, format!("tuple '{id}' has no <status>")))?;
        Ok(())
    }

    /// Reads one child of `<tuple>` into its field; `false` when it is to be kept as an
    /// extension (an unknown element, a repeat, another shape).
    fn read_child(&mut self, child: Node<'_, '_>, status: &mut Option<Status>) -> Result<bool> {
        let t = self;
        Ok(match (child.ns(), child.local()) {
            (ns::PIDF, "status") => read_once(status, child, |c| Status::from_node(c).map(Some))?,
            (ns::PIDF, "contact") => read_once(&mut t.contact, child, |c| {
                if !c.is_leaf(&["priority"]) {
                    return Ok(None);
                }
                let uri = c.trimmed();
                check_uri(uri, "contact")?;
                let priority = c.attr("priority").map(Priority::parse).transpose()?;
                Ok(Some(Contact {
                    uri: uri.to_owned(),
                    priority,
                }))
            })?,
            (ns::PIDF, "note") => match Note::read(child) {
                Some(n) => {
                    push_small(&mut t.notes, n);
                    true
                }
                None => false,
            },
            (ns::PIDF, "timestamp") => read_once(&mut t.timestamp, child, |c| {
                c.is_leaf(&[])
                    .then(|| Timestamp::from_node(DOC, c))
                    .transpose()
            })?,
            (ns::DATA_MODEL, "deviceID") if child.is_leaf(&[]) => {
                push_small(&mut t.device_ids, child.trimmed().to_owned());
                true
            }
            (ns::RPID, "class") => read_once(&mut t.class, child, parse_class)?,
            (ns::RPID, "relationship") => {
                read_once(&mut t.relationship, child, Relationship::from_node)?
            }
            (ns::RPID, "service-class") => {
                read_once(&mut t.service_class, child, ServiceClass::from_node)?
            }
            (ns::RPID, "user-input") => read_once(&mut t.user_input, child, UserInput::from_node)?,
            (ns::RPID, "status-icon") => {
                read_once(&mut t.status_icon, child, StatusIcon::from_node)?
            }
            (ns::CAPS, "servcaps") => {
                read_once(&mut t.service_caps, child, ServiceCaps::from_node)?
            }
            _ => false,
        })
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::PIDF, "tuple");
        w.attr("id", &self.id);
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        w.open(ns::PIDF, "status");
        w.close_start();
        if let Some(b) = self.status.basic {
            w.leaf(ns::PIDF, "basic", b.as_str());
        }
        w.elements(&self.status.extensions);
        w.end(ns::PIDF, "status");
        for d in &self.device_ids {
            w.leaf(ns::DATA_MODEL, "deviceID", d);
        }
        if let Some(c) = &self.class {
            write_class(w, c);
        }
        if let Some(r) = &self.relationship {
            r.write(w);
        }
        if let Some(s) = &self.service_class {
            s.write(w);
        }
        if let Some(u) = &self.user_input {
            u.write(w);
        }
        if let Some(s) = &self.status_icon {
            s.write(w);
        }
        if let Some(c) = &self.service_caps {
            c.write(w);
        }
        let late = any_in(&self.extensions, ns::PIDF);
        if !late {
            w.elements(&self.extensions);
        }
        if let Some(c) = &self.contact {
            w.open(ns::PIDF, "contact");
            if let Some(p) = c.priority {
                w.attr("priority", p.text(&mut [0; 5]));
            }
            w.close_start();
            w.text(&c.uri);
            w.end(ns::PIDF, "contact");
        }
        for n in &self.notes {
            n.write(w, ns::PIDF);
        }
        if let Some(ts) = &self.timestamp {
            w.leaf(ns::PIDF, "timestamp", ts.as_str());
        }
        if late {
            w.elements(&self.extensions);
        }
        w.end(ns::PIDF, "tuple");
    }
}

impl Status {
    fn from_node(node: Node<'_, '_>) -> Result<Status> {
        let mut s = Status::default();
        for child in node.children() {
            // A second <basic>, or one holding elements, is kept like an unknown element.
            if child.is(ns::PIDF, "basic") && s.basic.is_none() && child.is_leaf(&[]) {
                s.basic = Some(child.trimmed().parse()?);
            } else {
                s.extensions.push(child.to_element());
            }
        }
        Ok(s)
    }
}

/// Accepts anything shaped like an absolute URI (`scheme:rest`): PIDF allows any scheme.
/// ASCII whitespace and control characters are refused; other non-ASCII text is allowed
/// (internationalized identifiers).
pub(crate) fn check_uri(uri: &str, what: &str) -> Result<()> {
    let bad = |why: &str| Error::malformed(DOC, format!("{what} '{uri}' is not a URI: {why}"));
    let bytes = uri.as_bytes();
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| bad("no scheme"))?;
    let (scheme, rest) = (&bytes[..colon], &bytes[colon + 1..]);
    if !scheme.first().is_some_and(u8::is_ascii_alphabetic)
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err(bad("bad scheme"));
    }
    if rest.is_empty() {
        return Err(bad("nothing after the scheme"));
    }
    if has_space_or_control(rest) {
        return Err(bad("contains whitespace or control characters"));
    }
    Ok(())
}

/// Whether `bytes` has a byte up to `b' '` or DEL; eight bytes at a time.
fn has_space_or_control(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if has_below(x, b' ' + 1) || has_byte(x, 0x7f) {
            return true;
        }
    }
    let rest = chunks.remainder();
    if bytes.len() >= 8 && !rest.is_empty() {
        // The last eight bytes as one word, overlapping the chunk before.
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[bytes.len() - 8..]);
        let x = u64::from_le_bytes(word);
        return has_below(x, b' ' + 1) || has_byte(x, 0x7f);
    }
    rest.iter().any(|&b| b <= b' ' || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_check_sees_every_byte() {
        for len in 0..20 {
            let ok = format!("sip:{}", "a".repeat(len + 1));
            assert!(check_uri(&ok, "contact").is_ok(), "{ok}");
            for at in 4..ok.len() {
                for c in [' ', '\t', '\u{7f}', '\u{1}'] {
                    let mut bad = ok.clone();
                    bad.replace_range(at..=at, &c.to_string());
                    assert!(check_uri(&bad, "contact").is_err(), "{bad:?}");
                }
            }
        }
        assert!(check_uri("sip:caf\u{e9}@example.test", "contact").is_ok());
    }

    #[test]
    fn priority_text_round_trips() {
        for t in 0..=1000 {
            let p = Priority::from_thousandths(t).unwrap();
            let text = p.to_string();
            assert_eq!(Priority::parse(&text).unwrap(), p, "{text}");
            assert!(!text.ends_with('0') || text == "0", "{text}");
        }
        let shown: Vec<String> = [0, 1, 10, 100, 120, 999, 1000]
            .iter()
            .map(|&t| Priority::from_thousandths(t).unwrap().to_string())
            .collect();
        assert_eq!(shown, ["0", "0.001", "0.01", "0.1", "0.12", "0.999", "1"]);
    }

    #[test]
    fn repeated_ids_are_found_in_small_and_large_documents() {
        for n in [2, 8, 9, 30] {
            let mut p = Presence::new("pres:a@example.test");
            for i in 0..n {
                p.tuples.push(Tuple::new(format!("t{i}"), Basic::Open));
            }
            assert!(p.validate().is_ok(), "{n}");
            p.persons.push(Person::new(format!("t{}", n - 1)));
            let e = p.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!("person id 't{}' is used twice", n - 1)),
                "{e}"
            );
        }
    }
}
