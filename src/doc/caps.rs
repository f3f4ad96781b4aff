//! Service and device capabilities (RFC 5196): which media, methods, event packages and
//! extensions a SIP user agent supports (`<caps:servcaps>` in a tuple) and whether a device
//! is fixed or mobile (`<caps:devcaps>` in a device).
//!
//! Most capabilities are either a boolean (`<caps:audio>true</caps:audio>`) or a pair of
//! lists, `<caps:supported>` and `<caps:notsupported>`, modelled by [`Supported`]. Lists whose
//! values RFC 5196 takes from open IANA registries (SIP methods, option tags, event packages)
//! keep the element names as strings, so a value registered after RFC 5196 is not refused;
//! the small closed sets (duplex, class, actor, mobility) are enums.
//!
//! # What is kept, what is refused
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - A child of `<caps:servcaps>` or `<caps:devcaps>` that RFC 5196 does not define (in any
//!   namespace), a repeat of a capability that may appear once (the first is read), and a
//!   capability in a shape RFC 5196 does not give it (a boolean holding elements, a list
//!   holding something other than `<caps:supported>` and `<caps:notsupported>`) are kept in
//!   `extensions`.
//! - A list item outside its closed set (`<caps:quarter/>` in `<caps:duplex>`), or in a shape
//!   its list does not give it (a method token with content, `<caps:x>` among `<caps:s>`
//!   schemes) is kept in the list's `supported_extensions` or `notsupported_extensions`.
//! - Values are errors: a boolean that is not one, an empty scheme, language or MIME type,
//!   a priority that is not an integer or misses its bounds.
//!
//! Elements and attributes of other namespaces are kept and written back as before.
#![forbid(unsafe_code)]

use crate::doc::token::token_enum;
use crate::doc::xml::{parse_bool, Node, XmlWriter};
use crate::doc::{ns, Attribute, Element, Note};
use crate::error::{Error, Result};

/// The document name used in error messages: capabilities live inside PIDF documents.
const DOC: &str = "pidf";

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::malformed(DOC, what)
}

/// What a user agent supports and explicitly does not support for one capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supported<T> {
    /// Values inside `<caps:supported>`.
    pub supported: Vec<T>,
    /// Values inside `<caps:notsupported>`.
    pub notsupported: Vec<T>,
    /// Elements inside `<caps:supported>` that are not values of this list (other
    /// namespaces, names outside a closed set), kept and written back.
    pub supported_extensions: Vec<Element>,
    /// Elements inside `<caps:notsupported>` that are not values of this list, kept and
    /// written back.
    pub notsupported_extensions: Vec<Element>,
}

impl<T> Default for Supported<T> {
    fn default() -> Self {
        Supported {
            supported: Vec::new(),
            notsupported: Vec::new(),
            supported_extensions: Vec::new(),
            notsupported_extensions: Vec::new(),
        }
    }
}

impl<T> Supported<T> {
    /// Lists with these supported values and nothing else.
    pub fn of(supported: Vec<T>) -> Self {
        Supported {
            supported,
            ..Supported::default()
        }
    }

    /// True when nothing at all is listed.
    pub fn is_empty(&self) -> bool {
        self.supported.is_empty()
            && self.notsupported.is_empty()
            && self.supported_extensions.is_empty()
            && self.notsupported_extensions.is_empty()
    }

    /// Reads `<caps:{name}>` whose `supported`/`notsupported` children hold caps elements
    /// that `item` turns into values (`None`: not a value of this list, kept as an
    /// extension of the list). `None` when the element has another shape (a child other than
    /// the two lists, text, attributes): the caller keeps it whole.
    fn read(
        node: Node<'_, '_>,
        item: impl Fn(Node<'_, '_>) -> Result<Option<T>>,
    ) -> Result<Option<Self>> {
        if node.has_attrs() || node.has_text() {
            return Ok(None);
        }
        let mut out = Supported::default();
        for list in node.children() {
            let (values, exts) = match (list.ns() == ns::CAPS, list.local()) {
                (true, "supported") => (&mut out.supported, &mut out.supported_extensions),
                (true, "notsupported") => (&mut out.notsupported, &mut out.notsupported_extensions),
                _ => return Ok(None),
            };
            if list.has_attrs() || list.has_text() {
                return Ok(None);
            }
            for child in list.children() {
                match (child.ns() == ns::CAPS)
                    .then(|| item(child))
                    .transpose()?
                    .flatten()
                {
                    Some(v) => values.push(v),
                    None => exts.push(child.to_element()),
                }
            }
        }
        Ok(Some(out))
    }

    /// Writes `<caps:{name}>` with its lists; `item` writes one value.
    fn write(&self, w: &mut XmlWriter<'_>, name: &str, item: impl Fn(&mut XmlWriter<'_>, &T)) {
        w.open(ns::CAPS, name);
        if self.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        let lists = [
            ("supported", &self.supported, &self.supported_extensions),
            (
                "notsupported",
                &self.notsupported,
                &self.notsupported_extensions,
            ),
        ];
        for (list, values, exts) in lists {
            if values.is_empty() && exts.is_empty() {
                continue;
            }
            w.open(ns::CAPS, list);
            w.close_start();
            for v in values {
                item(w, v);
            }
            w.elements(exts);
            w.end(ns::CAPS, list);
        }
        w.end(ns::CAPS, name);
    }
}

/// Reads a list item that is just a token element name, such as `<caps:INVITE/>`; `None`
/// for one with content.
fn token(node: Node<'_, '_>) -> Result<Option<String>> {
    Ok(node.is_empty_element().then(|| node.local().to_owned()))
}

/// Reads a list item from a closed set; `None` for a name outside it or one with content.
fn closed<T>(from_name: fn(&str) -> Option<T>) -> impl Fn(Node<'_, '_>) -> Result<Option<T>> {
    move |node| Ok(from_name(node.local()).filter(|_| node.is_empty_element()))
}

/// Reads a list item `<caps:{name}>text</caps:{name}>` (schemes use `s`, languages `l`);
/// `None` for another name or an item holding elements or attributes.
fn text_item(
    within: &'static str,
    name: &'static str,
) -> impl Fn(Node<'_, '_>) -> Result<Option<String>> {
    move |node| {
        if node.local() != name || !node.is_leaf(&[]) {
            return Ok(None);
        }
        let text = node.trimmed();
        if text.is_empty() {
            return Err(malformed(format!(
                "<caps:{name}> in <caps:{within}> is empty"
            )));
        }
        Ok(Some(text.to_owned()))
    }
}

fn write_token(w: &mut XmlWriter<'_>, name: &str) {
    w.empty(ns::CAPS, name);
}

fn write_description(w: &mut XmlWriter<'_>, note: &Note) {
    w.open(ns::CAPS, "description");
    w.attr_opt("xml:lang", note.lang.as_deref());
    w.close_start();
    w.text(&note.text);
    w.end(ns::CAPS, "description");
}

token_enum! {
    /// How media may flow (`<caps:duplex>`).
    pub enum Duplex("duplex") {
        /// Both directions at once.
        Full = "full",
        /// Both directions, one at a time (push-to-talk).
        Half = "half",
        /// Receive only.
        ReceiveOnly = "receive-only",
        /// Send only.
        SendOnly = "send-only",
    }
}

token_enum! {
    /// What the service is used for (`<caps:class>`).
    pub enum Class("class") {
        /// Business use.
        Business = "business",
        /// Personal use.
        Personal = "personal",
    }
}

token_enum! {
    /// Who answers (`<caps:actor>`).
    pub enum Actor("actor") {
        /// An attendant who may answer for the principal.
        Attendant = "attendant",
        /// An information service (automated or not).
        Information = "information",
        /// Someone who takes messages for the principal.
        MsgTaker = "msg-taker",
        /// The principal associated with the contact.
        Principal = "principal",
    }
}

token_enum! {
    /// Whether a device moves (`<caps:mobility>`).
    pub enum Mobility("mobility") {
        /// Always at the same place.
        Fixed = "fixed",
        /// Can move.
        Mobile = "mobile",
    }
}

/// One priority range a service accepts or refuses (`<caps:priority>` list item; RFC 5196
/// uses the priority values of RFC 3841 call preferences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// `<caps:equals value="n"/>`.
    Equals(i64),
    /// `<caps:higherthan minvalue="n"/>` (the schema misspells it `higherhan`; both are read).
    HigherThan(i64),
    /// `<caps:lowerthan maxvalue="n"/>`.
    LowerThan(i64),
    /// `<caps:range minvalue="a" maxvalue="b"/>`, both ends included.
    Range {
        /// Lowest priority in the range.
        min: i64,
        /// Highest priority in the range.
        max: i64,
    },
}

impl Priority {
    /// Reads one priority item; `None` for an unknown name or an item in another shape.
    fn read(node: Node<'_, '_>) -> Result<Option<Priority>> {
        let attrs: &[&str] = match node.local() {
            "equals" => &["value"],
            "higherthan" | "higherhan" => &["minvalue"],
            "lowerthan" => &["maxvalue"],
            "range" => &["minvalue", "maxvalue"],
            _ => return Ok(None),
        };
        if !node.is_leaf(attrs) || node.has_text() {
            return Ok(None);
        }
        let number = |name: &str| -> Result<i64> {
            let v = node.attr(name).ok_or_else(|| {
                malformed(format!(
                    "<caps:{}> lacks the required attribute '{name}'",
                    node.local()
                ))
            })?;
            v.trim().parse::<i64>().map_err(|_| {
                malformed(format!(
                    "<caps:{}> attribute '{name}' must be an integer, not '{v}'",
                    node.local()
                ))
            })
        };
        Ok(Some(match node.local() {
            "equals" => Priority::Equals(number("value")?),
            "higherthan" | "higherhan" => Priority::HigherThan(number("minvalue")?),
            "lowerthan" => Priority::LowerThan(number("maxvalue")?),
            "range" => {
                let (min, max) = (number("minvalue")?, number("maxvalue")?);
                if min > max {
                    return Err(malformed(format!(
                        "<caps:range> has minvalue {min} above maxvalue {max}"
                    )));
                }
                Priority::Range { min, max }
            }
            _ => return Ok(None),
        }))
    }

    fn write(&self, w: &mut XmlWriter<'_>) {
        match *self {
            Priority::Equals(v) => {
                w.open(ns::CAPS, "equals");
                w.attr("value", &v.to_string());
            }
            Priority::HigherThan(v) => {
                w.open(ns::CAPS, "higherthan");
                w.attr("minvalue", &v.to_string());
            }
            Priority::LowerThan(v) => {
                w.open(ns::CAPS, "lowerthan");
                w.attr("maxvalue", &v.to_string());
            }
            Priority::Range { min, max } => {
                w.open(ns::CAPS, "range");
                w.attr("minvalue", &min.to_string());
                w.attr("maxvalue", &max.to_string());
            }
        }
        w.close_empty();
    }
}

/// The capabilities of a service (`<caps:servcaps>`, a child of a PIDF tuple). Every field
/// is optional: absent means the document says nothing about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceCaps {
    /// Who answers: principal, attendant, message taker, information service.
    pub actor: Option<Supported<Actor>>,
    /// Supports application media sessions.
    pub application: Option<bool>,
    /// Supports audio.
    pub audio: Option<bool>,
    /// Is an automaton (answering machine, IVR) rather than a human.
    pub automata: Option<bool>,
    /// Business or personal use.
    pub class: Option<Supported<Class>>,
    /// Supports control media sessions.
    pub control: Option<bool>,
    /// Supports data media sessions.
    pub data: Option<bool>,
    /// Human-readable descriptions (`<caps:description xml:lang>`), one per language.
    pub descriptions: Vec<Note>,
    /// Full, half, send-only, receive-only.
    pub duplex: Option<Supported<Duplex>>,
    /// Event packages (`<caps:event-packages>`), by name (`"presence"`, `"dialog"`).
    pub event_packages: Option<Supported<String>>,
    /// SIP extensions, i.e. option tags (`<caps:extensions>`), by name (`"gruu"`, `"timer"`).
    pub sip_extensions: Option<Supported<String>>,
    /// Is a conference focus.
    pub isfocus: Option<bool>,
    /// Supports page-mode messages (MESSAGE).
    pub message: Option<bool>,
    /// SIP methods (`<caps:methods>`), by name as written (`"INVITE"`).
    pub methods: Option<Supported<String>>,
    /// Languages (`<caps:languages>` with `<caps:l>` items), as language tags.
    pub languages: Option<Supported<String>>,
    /// Call priorities accepted or refused.
    pub priority: Option<Supported<Priority>>,
    /// URI schemes (`<caps:schemes>` with `<caps:s>` items), such as `"sip"` or `"tel"`.
    pub schemes: Option<Supported<String>>,
    /// Supports text media (real-time text).
    pub text: Option<bool>,
    /// MIME types supported (`<caps:type>`, repeatable), such as `"text/plain"`.
    pub types: Vec<String>,
    /// Supports video.
    pub video: Option<bool>,
    /// Child elements this module does not read (other namespaces, names RFC 5196 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes of `<caps:servcaps>` (the schema allows any), kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl ServiceCaps {
    /// Reads `<caps:servcaps>`; `None` when it holds text (its content is elements only):
    /// the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = ServiceCaps {
            extension_attributes: node.other_attrs(&[]),
            ..ServiceCaps::default()
        };
        for child in node.children() {
            if child.ns() != ns::CAPS || !out.read_child(child)? {
                out.extensions.push(child.to_element());
            }
        }
        Ok(Some(out))
    }

    /// Reads one caps child into its field; `false` when it is to be kept as an extension
    /// (an unknown name, a repeat, another shape).
    fn read_child(&mut self, child: Node<'_, '_>) -> Result<bool> {
        /// Reads a boolean capability unless one was read before.
        fn flag(slot: &mut Option<bool>, child: Node<'_, '_>) -> Result<bool> {
            if slot.is_some() || !child.is_leaf(&[]) {
                return Ok(false);
            }
            let what = format!("<caps:{}>", child.local());
            *slot = Some(parse_bool(DOC, &what, child.text())?);
            Ok(true)
        }
        /// Reads a list capability unless one was read before.
        fn list<T>(
            slot: &mut Option<Supported<T>>,
            child: Node<'_, '_>,
            item: impl Fn(Node<'_, '_>) -> Result<Option<T>>,
        ) -> Result<bool> {
            if slot.is_some() {
                return Ok(false);
            }
            *slot = Supported::read(child, item)?;
            Ok(slot.is_some())
        }
        Ok(match child.local() {
            "actor" => list(&mut self.actor, child, closed(Actor::from_name))?,
            "application" => flag(&mut self.application, child)?,
            "audio" => flag(&mut self.audio, child)?,
            "automata" => flag(&mut self.automata, child)?,
            "class" => list(&mut self.class, child, closed(Class::from_name))?,
            "control" => flag(&mut self.control, child)?,
            "data" => flag(&mut self.data, child)?,
            "description" => match Note::read(child) {
                Some(d) => {
                    self.descriptions.push(d);
                    true
                }
                None => false,
            },
            "duplex" => list(&mut self.duplex, child, closed(Duplex::from_name))?,
            "event-packages" => list(&mut self.event_packages, child, token)?,
            "extensions" => list(&mut self.sip_extensions, child, token)?,
            "isfocus" => flag(&mut self.isfocus, child)?,
            "message" => flag(&mut self.message, child)?,
            "methods" => list(&mut self.methods, child, token)?,
            "languages" => list(&mut self.languages, child, text_item("languages", "l"))?,
            "priority" => list(&mut self.priority, child, Priority::read)?,
            "schemes" => list(&mut self.schemes, child, text_item("schemes", "s"))?,
            "text" => flag(&mut self.text, child)?,
            "type" => {
                if !child.is_leaf(&[]) {
                    return Ok(false);
                }
                let t = child.trimmed();
                if t.is_empty() {
                    return Err(malformed("<caps:type> is empty (expected a MIME type)"));
                }
                self.types.push(t.to_owned());
                true
            }
            "video" => flag(&mut self.video, child)?,
            _ => false,
        })
    }

    /// Writes the element in the order of the RFC 5196 schema.
    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        fn flag(w: &mut XmlWriter<'_>, name: &str, value: Option<bool>) {
            if let Some(v) = value {
                w.leaf(ns::CAPS, name, if v { "true" } else { "false" });
            }
        }
        fn tokens(w: &mut XmlWriter<'_>, name: &str, value: &Option<Supported<String>>) {
            if let Some(s) = value {
                s.write(w, name, |w, t| write_token(w, t));
            }
        }
        fn texts(w: &mut XmlWriter<'_>, name: &str, item: &str, value: &Option<Supported<String>>) {
            if let Some(s) = value {
                s.write(w, name, |w, t| w.leaf(ns::CAPS, item, t));
            }
        }

        w.open(ns::CAPS, "servcaps");
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        if let Some(s) = &self.actor {
            s.write(w, "actor", |w, v| write_token(w, v.as_str()));
        }
        flag(w, "application", self.application);
        flag(w, "audio", self.audio);
        flag(w, "automata", self.automata);
        if let Some(s) = &self.class {
            s.write(w, "class", |w, v| write_token(w, v.as_str()));
        }
        flag(w, "control", self.control);
        flag(w, "data", self.data);
        for d in &self.descriptions {
            write_description(w, d);
        }
        if let Some(s) = &self.duplex {
            s.write(w, "duplex", |w, v| write_token(w, v.as_str()));
        }
        tokens(w, "event-packages", &self.event_packages);
        tokens(w, "extensions", &self.sip_extensions);
        flag(w, "isfocus", self.isfocus);
        flag(w, "message", self.message);
        tokens(w, "methods", &self.methods);
        texts(w, "languages", "l", &self.languages);
        if let Some(s) = &self.priority {
            s.write(w, "priority", |w, p| p.write(w));
        }
        texts(w, "schemes", "s", &self.schemes);
        flag(w, "text", self.text);
        for t in &self.types {
            w.leaf(ns::CAPS, "type", t);
        }
        flag(w, "video", self.video);
        w.elements(&self.extensions);
        w.end(ns::CAPS, "servcaps");
    }
}

/// The capabilities of a device (`<caps:devcaps>`, a child of a data-model device).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceCaps {
    /// Human-readable descriptions (`<caps:description xml:lang>`), one per language.
    pub descriptions: Vec<Note>,
    /// Fixed or mobile.
    pub mobility: Option<Supported<Mobility>>,
    /// Child elements this module does not read (other namespaces, names RFC 5196 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes of `<caps:devcaps>` (the schema allows any), kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl DeviceCaps {
    /// Reads `<caps:devcaps>`; `None` when it holds text: the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = DeviceCaps {
            extension_attributes: node.other_attrs(&[]),
            ..DeviceCaps::default()
        };
        for child in node.children() {
            let read = match (child.ns(), child.local()) {
                (ns::CAPS, "description") => Note::read(child).map(|d| out.descriptions.push(d)),
                (ns::CAPS, "mobility") if out.mobility.is_none() => {
                    out.mobility = Supported::read(child, closed(Mobility::from_name))?;
                    out.mobility.as_ref().map(|_| ())
                }
                _ => None,
            };
            if read.is_none() {
                out.extensions.push(child.to_element());
            }
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::CAPS, "devcaps");
        w.ext_attrs(&self.extension_attributes);
        if self.descriptions.is_empty() && self.mobility.is_none() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for d in &self.descriptions {
            write_description(w, d);
        }
        if let Some(m) = &self.mobility {
            m.write(w, "mobility", |w, v| write_token(w, v.as_str()));
        }
        w.elements(&self.extensions);
        w.end(ns::CAPS, "devcaps");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::xml::Tree;
    use crate::doc::Limits;

    const KNOWN: &[(&str, &str)] = &[
        (ns::RPID, "rpid"),
        (ns::CAPS, "caps"),
        (ns::LOCATION_TYPE, "lt"),
    ];

    fn wrap(fragment: &str) -> String {
        format!(
            r#"<presence xmlns="{}" xmlns:caps="{}" xmlns:ext="urn:example:ext">{fragment}</presence>"#,
            ns::PIDF,
            ns::CAPS
        )
    }

    fn servcaps(fragment: &str) -> Result<ServiceCaps> {
        let doc = wrap(fragment);
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT)?;
        ServiceCaps::from_node(tree.root().children().next().unwrap())
            .map(|c| c.expect("servcaps read"))
    }

    fn devcaps(fragment: &str) -> Result<DeviceCaps> {
        let doc = wrap(fragment);
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT)?;
        DeviceCaps::from_node(tree.root().children().next().unwrap())
            .map(|c| c.expect("devcaps read"))
    }

    fn names(extensions: &[Element]) -> Vec<&str> {
        extensions.iter().map(|e| e.name.as_str()).collect()
    }

    fn write_doc(put: impl FnOnce(&mut XmlWriter<'_>)) -> String {
        let mut w = XmlWriter::new(ns::PIDF, KNOWN);
        put(&mut w);
        w.finish("presence", |_| {})
    }

    fn reparse_servcaps(c: &ServiceCaps) -> ServiceCaps {
        let doc = write_doc(|w| c.write(w));
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT).unwrap();
        ServiceCaps::from_node(tree.root().children().next().unwrap())
            .unwrap()
            .unwrap()
    }

    const PHONE: &str = r#"<caps:servcaps ext:profile="desk">
        <caps:audio>true</caps:audio>
        <caps:video>false</caps:video>
        <caps:message>1</caps:message>
        <caps:isfocus>0</caps:isfocus>
        <caps:automata>false</caps:automata>
        <caps:description xml:lang="en">Desk phone</caps:description>
        <caps:description xml:lang="fr">Poste fixe</caps:description>
        <caps:duplex>
          <caps:supported><caps:full/></caps:supported>
          <caps:notsupported><caps:half/><caps:send-only/></caps:notsupported>
        </caps:duplex>
        <caps:methods>
          <caps:supported><caps:INVITE/><caps:BYE/><caps:MESSAGE/><caps:SUBSCRIBE/></caps:supported>
          <caps:notsupported><caps:PRACK/></caps:notsupported>
        </caps:methods>
        <caps:extensions><caps:supported><caps:gruu/><caps:timer/></caps:supported></caps:extensions>
        <caps:event-packages>
          <caps:supported><caps:presence/><caps:dialog/><ext:as-feature-event/></caps:supported>
        </caps:event-packages>
        <caps:schemes><caps:supported><caps:s>sip</caps:s><caps:s>tel</caps:s></caps:supported></caps:schemes>
        <caps:languages><caps:supported><caps:l>en</caps:l></caps:supported>
          <caps:notsupported><caps:l>de</caps:l></caps:notsupported></caps:languages>
        <caps:priority>
          <caps:supported><caps:equals value="5"/><caps:range minvalue="1" maxvalue="3"/></caps:supported>
          <caps:notsupported><caps:higherhan minvalue="10"/><caps:lowerthan maxvalue="-1"/></caps:notsupported>
        </caps:priority>
        <caps:class><caps:supported><caps:business/></caps:supported></caps:class>
        <caps:actor><caps:supported><caps:principal/><caps:msg-taker/></caps:supported></caps:actor>
        <caps:type>text/plain</caps:type>
        <caps:type>message/cpim</caps:type>
        <ext:codecs>opus g722</ext:codecs>
      </caps:servcaps>"#;

    #[test]
    fn servcaps_model() {
        let c = servcaps(PHONE).unwrap();
        assert_eq!(c.audio, Some(true));
        assert_eq!(c.video, Some(false));
        assert_eq!(c.message, Some(true));
        assert_eq!(c.isfocus, Some(false));
        assert_eq!(c.automata, Some(false));
        assert_eq!(c.application, None);
        assert_eq!(
            c.descriptions,
            vec![
                Note::with_lang("Desk phone", "en"),
                Note::with_lang("Poste fixe", "fr")
            ]
        );
        let duplex = c.duplex.as_ref().unwrap();
        assert_eq!(duplex.supported, vec![Duplex::Full]);
        assert_eq!(duplex.notsupported, vec![Duplex::Half, Duplex::SendOnly]);
        let methods = c.methods.as_ref().unwrap();
        assert_eq!(methods.supported, ["INVITE", "BYE", "MESSAGE", "SUBSCRIBE"]);
        assert_eq!(methods.notsupported, ["PRACK"]);
        assert_eq!(
            c.sip_extensions.as_ref().unwrap().supported,
            ["gruu", "timer"]
        );
        let events = c.event_packages.as_ref().unwrap();
        assert_eq!(events.supported, ["presence", "dialog"]);
        assert_eq!(events.supported_extensions[0].name, "as-feature-event");
        assert_eq!(c.schemes.as_ref().unwrap().supported, ["sip", "tel"]);
        assert_eq!(c.languages.as_ref().unwrap().notsupported, ["de"]);
        let prio = c.priority.as_ref().unwrap();
        assert_eq!(
            prio.supported,
            vec![Priority::Equals(5), Priority::Range { min: 1, max: 3 }]
        );
        assert_eq!(
            prio.notsupported,
            vec![Priority::HigherThan(10), Priority::LowerThan(-1)]
        );
        assert_eq!(c.class.as_ref().unwrap().supported, vec![Class::Business]);
        assert_eq!(
            c.actor.as_ref().unwrap().supported,
            vec![Actor::Principal, Actor::MsgTaker]
        );
        assert_eq!(c.types, ["text/plain", "message/cpim"]);
        assert_eq!(c.extensions.len(), 1);
        assert_eq!(c.extensions[0].text, "opus g722");
        assert_eq!(c.extension_attributes.len(), 1);
    }

    #[test]
    fn servcaps_round_trip() {
        let c = servcaps(PHONE).unwrap();
        assert_eq!(reparse_servcaps(&c), c);
        let empty = ServiceCaps::default();
        assert_eq!(reparse_servcaps(&empty), empty);
        let built = ServiceCaps {
            audio: Some(true),
            text: Some(true),
            data: Some(false),
            control: Some(true),
            application: Some(true),
            duplex: Some(Supported::of(vec![Duplex::ReceiveOnly])),
            methods: Some(Supported::default()),
            ..ServiceCaps::default()
        };
        assert_eq!(reparse_servcaps(&built), built);
    }

    #[test]
    fn unknown_and_repeated_caps_are_kept() {
        let c = servcaps(
            "<caps:servcaps><caps:hologram>true</caps:hologram>\
             <caps:audio>true</caps:audio><caps:audio>false</caps:audio>\
             <caps:video><ext:x/></caps:video>\
             <caps:duplex><caps:full/></caps:duplex>\
             <caps:duplex><caps:supported><caps:quarter/><caps:half/></caps:supported></caps:duplex>\
             <caps:methods><caps:supported><caps:INVITE>now</caps:INVITE><caps:BYE/></caps:supported></caps:methods>\
             <caps:schemes><caps:supported><caps:x>sip</caps:x><caps:s>tel</caps:s></caps:supported></caps:schemes>\
             <caps:priority><caps:supported><caps:above minvalue='1'/></caps:supported></caps:priority>\
             </caps:servcaps>",
        )
        .unwrap();
        assert_eq!(c.audio, Some(true));
        assert_eq!(c.video, None);
        let duplex = c.duplex.as_ref().unwrap();
        assert_eq!(duplex.supported, vec![Duplex::Half]);
        assert_eq!(names(&duplex.supported_extensions), ["quarter"]);
        let methods = c.methods.as_ref().unwrap();
        assert_eq!(methods.supported, ["BYE"]);
        assert_eq!(names(&methods.supported_extensions), ["INVITE"]);
        assert_eq!(c.schemes.as_ref().unwrap().supported, ["tel"]);
        assert_eq!(
            names(&c.priority.as_ref().unwrap().supported_extensions),
            ["above"]
        );
        // The hologram, the second audio, the video with an element, the duplex without lists.
        assert_eq!(
            names(&c.extensions),
            ["hologram", "audio", "video", "duplex"]
        );
        assert_eq!(reparse_servcaps(&c), c);

        let d = devcaps(
            "<caps:devcaps><caps:mobility><caps:supported><caps:flying/></caps:supported></caps:mobility>\
             <caps:audio>true</caps:audio></caps:devcaps>",
        )
        .unwrap();
        let m = d.mobility.as_ref().unwrap();
        assert_eq!(names(&m.supported_extensions), ["flying"]);
        assert_eq!(names(&d.extensions), ["audio"]);
    }

    #[test]
    fn servcaps_errors() {
        for (bad, needle) in [
            ("<caps:servcaps><caps:audio>maybe</caps:audio></caps:servcaps>", "maybe"),
            (
                r#"<caps:servcaps><caps:priority><caps:supported><caps:equals value="high"/></caps:supported></caps:priority></caps:servcaps>"#,
                "high",
            ),
            (
                r#"<caps:servcaps><caps:priority><caps:supported><caps:range minvalue="5" maxvalue="1"/></caps:supported></caps:priority></caps:servcaps>"#,
                "range",
            ),
            (
                r#"<caps:servcaps><caps:priority><caps:supported><caps:equals/></caps:supported></caps:priority></caps:servcaps>"#,
                "value",
            ),
            (
                "<caps:servcaps><caps:schemes><caps:supported><caps:s> </caps:s></caps:supported></caps:schemes></caps:servcaps>",
                "empty",
            ),
            ("<caps:servcaps><caps:type> </caps:type></caps:servcaps>", "type"),
        ] {
            let err = servcaps(bad).unwrap_err();
            assert!(matches!(&err, Error::Malformed(m) if m.contains(needle)), "{bad}: {err}");
        }
    }

    #[test]
    fn devcaps_model_and_round_trip() {
        let d = devcaps(
            r#"<caps:devcaps>
                 <caps:description xml:lang="en">Car kit</caps:description>
                 <caps:mobility>
                   <caps:supported><caps:mobile/></caps:supported>
                   <caps:notsupported><caps:fixed/></caps:notsupported>
                 </caps:mobility>
                 <ext:battery>low</ext:battery>
               </caps:devcaps>"#,
        )
        .unwrap();
        assert_eq!(d.descriptions, vec![Note::with_lang("Car kit", "en")]);
        let m = d.mobility.as_ref().unwrap();
        assert_eq!(m.supported, vec![Mobility::Mobile]);
        assert_eq!(m.notsupported, vec![Mobility::Fixed]);
        assert_eq!(d.extensions.len(), 1);

        let doc = write_doc(|w| d.write(w));
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT).unwrap();
        let again = DeviceCaps::from_node(tree.root().children().next().unwrap()).unwrap();
        assert_eq!(again.as_ref(), Some(&d), "{doc}");

        let empty = devcaps("<caps:devcaps/>").unwrap();
        assert_eq!(empty, DeviceCaps::default());
        assert!(write_doc(|w| empty.write(w)).contains("<caps:devcaps/>"));
    }

    #[test]
    fn token_names() {
        for name in Duplex::NAMES {
            assert_eq!(Duplex::from_name(name).unwrap().as_str(), *name);
        }
        assert_eq!(Duplex::from_name("receive-only"), Some(Duplex::ReceiveOnly));
        assert_eq!(Actor::from_name("msg-taker"), Some(Actor::MsgTaker));
        assert_eq!(Mobility::NAMES, ["fixed", "mobile"]);
        assert_eq!(Class::NAMES, ["business", "personal"]);
    }
}
