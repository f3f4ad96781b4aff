//! Dialog state documents (`application/dialog-info+xml`, RFC 4235): busy-lamp fields.
//!
//! A phone or PBX that subscribes to the `dialog` package of an extension learns its calls:
//! one `<dialog>` per INVITE dialog with its state (trying, proceeding, early = ringing,
//! confirmed = talking, terminated), and optionally both participants' identities and
//! targets. An idle extension is a `full` document without dialogs. A `partial` document
//! carries only the dialogs that changed; [`DialogInfo::apply`] folds it into a full state.
//!
//! # What is kept, what is refused
//!
//! Phones and PBXes put more in a dialog document than RFC 4235 defines: shared-appearance
//! data (`<sa:appearance>`, and in older drafts `<exclusive>` in the dialog-info namespace
//! itself), media attributes under `<local>`, vendor elements. Names are kept, values are
//! checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept as [`Element`]s in the `extensions` of `<dialog-info>`, `<dialog>`, `<local>` or
//!   `<remote>`: elements the schema does not define there, in any namespace (the
//!   dialog-info one included); a repeat of an element that may appear once (the first is
//!   read); and an optional element in a shape the schema does not give it (an `<identity>`,
//!   `<duration>` or `<cseq>` holding elements or unknown attributes, a `<route-set>` with
//!   something other than `<hop>`s, a `<target>` with something other than `<param>`s).
//!   Attributes of `<dialog-info>` and `<dialog>` this module does not know are kept as
//!   [`Attribute`]s.
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace, a root without
//!   `version`, `state` or `entity`, a dialog without `id` or without a readable `<state>`
//!   (a lamp cannot show a dialog whose state it does not know), and values outside the
//!   schema: a state, event or direction that is not one of its tokens, numbers that are
//!   not numbers, a code outside 100..=699, a `<replaces>`, `<target>`, `<param>` or
//!   `<session-description>` without its required attributes.
//!
//! Extensions are written after the modelled children of their element.
#![forbid(unsafe_code)]

use std::str::FromStr;

use crate::doc::ns;
pub use crate::doc::token::DocState;
use crate::doc::token::{fold, token_enum, Fold};
use crate::doc::xml::{read_once, Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits};
use crate::error::{Error, Result};

/// The name of this document in error messages.
const DOC: &str = "dialog-info";

token_enum! {
    /// Which side of the dialog the observed entity is (`direction`).
    #[derive(Copy, Hash)]
    pub enum Direction("dialog direction") {
        /// It sent the INVITE (an outgoing call).
        Initiator = "initiator",
        /// It received the INVITE (an incoming call).
        Recipient = "recipient",
    }
}

token_enum! {
    /// The state of a dialog (RFC 4235 section 3.7.1).
    #[derive(Default)]
    #[derive(Copy, Hash)]
    pub enum DialogStateValue("dialog state") {
        /// INVITE sent or received, no response yet.
        #[default]
        Trying = "trying",
        /// A provisional response without a To tag (e.g. 100 Trying forwarded).
        Proceeding = "proceeding",
        /// A provisional response with a To tag: the call is ringing.
        Early = "early",
        /// A 2xx was sent or received: the call is up.
        Confirmed = "confirmed",
        /// The dialog ended; see the event and code for why.
        Terminated = "terminated",
    }
}

token_enum! {
    /// Why a dialog reached its state, mostly `terminated` (`<state event=...>`).
    #[derive(Copy, Hash)]
    pub enum DialogEvent("dialog state event") {
        /// The INVITE was cancelled.
        Cancelled = "cancelled",
        /// The INVITE got a non-2xx final response (see the code).
        Rejected = "rejected",
        /// Another INVITE replaced this dialog (RFC 3891).
        Replaced = "replaced",
        /// The observed entity hung up.
        LocalBye = "local-bye",
        /// The other party hung up.
        RemoteBye = "remote-bye",
        /// A request in the dialog failed (e.g. 481 or 408).
        Error = "error",
        /// The dialog timed out.
        Timeout = "timeout",
    }
}

/// A dialog's state with the reason for it (`<state>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogState {
    /// The state itself (element content).
    pub value: DialogStateValue,
    /// What caused it (`event`).
    pub event: Option<DialogEvent>,
    /// The SIP response code that caused it, 100 to 699 (`code`).
    pub code: Option<u16>,
}

impl DialogState {
    /// A state without event or code.
    pub fn new(value: DialogStateValue) -> DialogState {
        DialogState {
            value,
            event: None,
            code: None,
        }
    }
}

/// A URI with an optional display name (`<identity>`, `<referred-by>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The URI (element content, whitespace trimmed).
    pub uri: String,
    /// The display name (`display`).
    pub display: Option<String>,
}

impl Identity {
    /// An identity without display name.
    pub fn new(uri: impl Into<String>) -> Identity {
        Identity {
            uri: uri.into(),
            display: None,
        }
    }
}

/// Where a participant can be reached (`<target>`): its Contact URI and feature parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The remote target URI (`uri`).
    pub uri: String,
    /// Contact parameters as (`pname`, `pval`) pairs, in document order (`<param>`).
    pub params: Vec<(String, String)>,
}

/// A session description of a participant (`<session-description>`), e.g. its SDP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// The MIME type of the description, e.g. `application/sdp` (`type`).
    pub content_type: String,
    /// The description, as written (not trimmed).
    pub text: String,
}

/// One side of a dialog (`<local>` or `<remote>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Participant {
    /// Its address of record and display name (`<identity>`).
    pub identity: Option<Identity>,
    /// Its remote target (`<target>`).
    pub target: Option<Target>,
    /// Its session description (`<session-description>`).
    pub session_description: Option<SessionDescription>,
    /// Its most recent CSeq number in the dialog (`<cseq>`).
    pub cseq: Option<u32>,
    /// Elements this module does not read (other namespaces, names RFC 4235 does not define
    /// here, repeats, other shapes), kept and written back last.
    pub extensions: Vec<Element>,
}

/// The dialog that a dialog replaced (`<replaces>`, RFC 3891).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replaces {
    /// Call-ID of the replaced dialog (`call-id`).
    pub call_id: String,
    /// Local tag of the replaced dialog (`local-tag`).
    pub local_tag: String,
    /// Remote tag of the replaced dialog (`remote-tag`).
    pub remote_tag: String,
}

/// One INVITE dialog of the entity (`<dialog>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dialog {
    /// Identifies the dialog within the subscription, stable across versions (`id`).
    pub id: String,
    /// SIP Call-ID (`call-id`).
    pub call_id: Option<String>,
    /// The entity's tag (`local-tag`).
    pub local_tag: Option<String>,
    /// The other party's tag (`remote-tag`).
    pub remote_tag: Option<String>,
    /// Whether the entity called or was called (`direction`).
    pub direction: Option<Direction>,
    /// The dialog's state (`<state>`, required).
    pub state: DialogState,
    /// Seconds since the dialog was created (`<duration>`).
    pub duration: Option<u64>,
    /// The dialog this one replaced (`<replaces>`).
    pub replaces: Option<Replaces>,
    /// Who referred the entity into this dialog (`<referred-by>`).
    pub referred_by: Option<Identity>,
    /// The dialog's route set, one URI per hop (`<route-set><hop>`); empty when absent.
    pub route_set: Vec<String>,
    /// The entity's side (`<local>`).
    pub local: Option<Participant>,
    /// The other party's side (`<remote>`).
    pub remote: Option<Participant>,
    /// Elements this module does not read (other namespaces, names RFC 4235 does not define
    /// here, repeats, other shapes), kept and written back last.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Dialog {
    /// A dialog with an id and a state, nothing else.
    pub fn new(id: impl Into<String>, state: DialogStateValue) -> Dialog {
        Dialog {
            id: id.into(),
            state: DialogState::new(state),
            ..Dialog::default()
        }
    }
}

/// A dialog information document (`<dialog-info>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogInfo {
    /// Counts the notifications of one subscription, starting at 0 (`version`).
    pub version: u32,
    /// Every dialog or changes only (`state`).
    pub state: DocState,
    /// The observed entity, e.g. `sip:201@pbx.example.test` (`entity`).
    pub entity: String,
    /// The dialogs: all current ones in a full document, the changed ones in a partial one.
    pub dialogs: Vec<Dialog>,
    /// Elements this module does not read (other namespaces, names RFC 4235 does not define
    /// here), kept and written back after the dialogs.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl DialogInfo {
    /// The MIME type of this document.
    pub const CONTENT_TYPE: &'static str = "application/dialog-info+xml";

    /// Parses a dialog-info document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<DialogInfo> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::DIALOG_INFO, "dialog-info")?;
        let mut doc = DialogInfo {
            version: parse_uint(root.required_attr(DOC, "version")?, "<dialog-info> version")?,
            state: root.required_attr(DOC, "state")?.trim().parse()?,
            entity: root.required_attr(DOC, "entity")?.trim().to_owned(),
            dialogs: Vec::new(),
            extensions: Vec::new(),
            extension_attributes: root.other_attrs(&["version", "state", "entity"]),
        };
        for child in root.children() {
            if child.is(ns::DIALOG_INFO, "dialog") {
                doc.dialogs.push(parse_dialog(child)?);
            } else {
                doc.extensions.push(child.to_element());
            }
        }
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self`.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::DIALOG_INFO, &[]);
        for dialog in &self.dialogs {
            write_dialog(&mut w, dialog);
        }
        w.elements(&self.extensions);
        w.finish("dialog-info", |w| {
            w.attr("version", &self.version.to_string());
            w.attr("state", self.state.as_str());
            w.attr("entity", &self.entity);
            w.ext_attrs(&self.extension_attributes);
        })
    }

    /// The dialog with this `id`, if the document has it.
    pub fn dialog(&self, id: &str) -> Option<&Dialog> {
        self.dialogs.iter().find(|d| d.id == id)
    }

    /// Folds the next notification of the same subscription into this state, which starts
    /// as the first document the subscription delivered.
    ///
    /// A `full` update replaces everything. A `partial` one replaces the dialogs whose `id`
    /// it names, adds new ones, and drops those whose state became `terminated` (the update
    /// itself still tells the caller that they ended). Extension elements of a partial
    /// update replace those of the document when it carries any.
    ///
    /// Returns `Ok(true)` when applied and `Ok(false)` when `update` is not newer than this
    /// state (a stale or repeated notification, ignored). A partial update that skips a
    /// version cannot be applied: the error tells the caller to fetch the full state (by
    /// refreshing the subscription).
    pub fn apply(&mut self, update: &DialogInfo) -> Result<bool> {
        match fold(DOC, self.version, update.version, update.state)? {
            Fold::Stale => return Ok(false),
            Fold::Replace => {
                *self = update.clone();
                return Ok(true);
            }
            Fold::Merge => {}
        }
        for d in &update.dialogs {
            let known = self.dialogs.iter().position(|old| old.id == d.id);
            match (known, d.state.value) {
                (Some(i), DialogStateValue::Terminated) => {
                    self.dialogs.remove(i);
                }
                (None, DialogStateValue::Terminated) => {}
                (Some(i), _) => self.dialogs[i] = d.clone(),
                (None, _) => self.dialogs.push(d.clone()),
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

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

fn parse_dialog(node: Node<'_, '_>) -> Result<Dialog> {
    let id = node.required_attr(DOC, "id")?.to_owned();
    let mut dialog = Dialog {
        call_id: node.attr("call-id").map(str::to_owned),
        local_tag: node.attr("local-tag").map(str::to_owned),
        remote_tag: node.attr("remote-tag").map(str::to_owned),
        direction: node
            .attr("direction")
            .map(|d| d.trim().parse())
            .transpose()?,
        extension_attributes: node.other_attrs(&[
            "id",
            "call-id",
            "local-tag",
            "remote-tag",
            "direction",
        ]),
        ..Dialog::default()
    };
    let mut state = None;
    for child in node.children() {
        if child.ns() != ns::DIALOG_INFO || !read_dialog_child(&mut dialog, &mut state, child)? {
            dialog.extensions.push(child.to_element());
        }
    }
    dialog.state = state.ok_or_else(|| {
        Error::malformed(
            DOC,
            format!("<dialog id=\"{id}\"> lacks the required <state>"),
        )
    })?;
    dialog.id = id;
    Ok(dialog)
}

/// Reads one dialog-info child of `<dialog>`; `false` when it is kept as an extension.
fn read_dialog_child(
    dialog: &mut Dialog,
    state: &mut Option<DialogState>,
    child: Node<'_, '_>,
) -> Result<bool> {
    Ok(match child.local() {
        // Required: a state in a shape other than text is an error, not an extension.
        "state" => read_once(state, child, |c| parse_state(c).map(Some))?,
        "duration" => read_once(&mut dialog.duration, child, |c| {
            c.is_leaf(&[])
                .then(|| parse_uint(c.text(), "<duration>"))
                .transpose()
        })?,
        "replaces" => read_once(&mut dialog.replaces, child, |c| {
            if !c.is_leaf(&["call-id", "local-tag", "remote-tag"]) || c.has_text() {
                return Ok(None);
            }
            Ok(Some(Replaces {
                call_id: c.required_attr(DOC, "call-id")?.to_owned(),
                local_tag: c.required_attr(DOC, "local-tag")?.to_owned(),
                remote_tag: c.required_attr(DOC, "remote-tag")?.to_owned(),
            }))
        })?,
        "referred-by" => read_once(&mut dialog.referred_by, child, |c| Ok(parse_identity(c)))?,
        // An empty route set is no route set: a later one may still be read.
        "route-set" if dialog.route_set.is_empty() => match parse_route_set(child) {
            Some(hops) => {
                dialog.route_set = hops;
                true
            }
            None => false,
        },
        "local" => read_once(&mut dialog.local, child, parse_participant)?,
        "remote" => read_once(&mut dialog.remote, child, parse_participant)?,
        _ => false,
    })
}

fn parse_state(node: Node<'_, '_>) -> Result<DialogState> {
    let code = match node.attr("code") {
        None => None,
        Some(text) => {
            let code: u16 = parse_uint(text, "<state> code")?;
            if !(100..=699).contains(&code) {
                return Err(Error::malformed(
                    DOC,
                    format!("<state> code {code} is not a SIP response code (100 to 699)"),
                ));
            }
            Some(code)
        }
    };
    Ok(DialogState {
        value: simple_text(node)?.parse()?,
        event: node.attr("event").map(|e| e.trim().parse()).transpose()?,
        code,
    })
}

/// Reads `<identity>` or `<referred-by>`; `None` when it holds elements or attributes other
/// than `display`.
fn parse_identity(node: Node<'_, '_>) -> Option<Identity> {
    node.is_leaf(&["display"]).then(|| Identity {
        uri: node.trimmed().to_owned(),
        display: node.attr("display").map(str::to_owned),
    })
}

/// Reads `<route-set>`; `None` when it holds anything but plain `<hop>`s.
fn parse_route_set(node: Node<'_, '_>) -> Option<Vec<String>> {
    if node.has_attrs() || node.has_text() {
        return None;
    }
    node.children()
        .map(|hop| {
            (hop.is(ns::DIALOG_INFO, "hop") && hop.is_leaf(&[])).then(|| hop.trimmed().to_owned())
        })
        .collect()
}

/// Reads `<local>` or `<remote>`; `None` when it has attributes or text (the schema gives it
/// neither): the dialog keeps it whole.
fn parse_participant(node: Node<'_, '_>) -> Result<Option<Participant>> {
    if node.has_attrs() || node.has_text() {
        return Ok(None);
    }
    let mut p = Participant::default();
    for child in node.children() {
        let read = child.ns() == ns::DIALOG_INFO
            && match child.local() {
                "identity" => read_once(&mut p.identity, child, |c| Ok(parse_identity(c)))?,
                "target" => read_once(&mut p.target, child, parse_target)?,
                "session-description" => read_once(&mut p.session_description, child, |c| {
                    if !c.is_leaf(&["type"]) {
                        return Ok(None);
                    }
                    Ok(Some(SessionDescription {
                        content_type: c.required_attr(DOC, "type")?.trim().to_owned(),
                        text: c.text().to_owned(),
                    }))
                })?,
                "cseq" => read_once(&mut p.cseq, child, |c| {
                    c.is_leaf(&[])
                        .then(|| parse_uint(c.text(), "<cseq>"))
                        .transpose()
                })?,
                _ => false,
            };
        if !read {
            p.extensions.push(child.to_element());
        }
    }
    Ok(Some(p))
}

/// Reads `<target>`; `None` when it holds anything but `<param>`s with `pname` and `pval`,
/// or attributes other than `uri`: the participant keeps it whole.
fn parse_target(node: Node<'_, '_>) -> Result<Option<Target>> {
    let plain_params = node
        .children()
        .all(|p| p.is(ns::DIALOG_INFO, "param") && p.is_leaf(&["pname", "pval"]) && !p.has_text());
    if !plain_params || !node.attrs_within(&["uri"]) || node.has_text() {
        return Ok(None);
    }
    let mut target = Target {
        uri: node.required_attr(DOC, "uri")?.trim().to_owned(),
        params: Vec::new(),
    };
    for param in node.children() {
        target.params.push((
            param.required_attr(DOC, "pname")?.to_owned(),
            param.required_attr(DOC, "pval")?.to_owned(),
        ));
    }
    Ok(Some(target))
}

/// The trimmed text of an element whose schema type is simple content.
fn simple_text<'t>(node: Node<'t, '_>) -> Result<&'t str> {
    if node.has_children() {
        return Err(Error::malformed(
            DOC,
            format!("<{}> must hold text, not elements", node.local()),
        ));
    }
    Ok(node.trimmed())
}

/// Parses an `xs:nonNegativeInteger` value: decimal digits only.
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

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

const NS: &str = ns::DIALOG_INFO;

fn write_dialog(w: &mut XmlWriter<'_>, d: &Dialog) {
    w.open(NS, "dialog");
    w.attr("id", &d.id);
    w.attr_opt("call-id", d.call_id.as_deref());
    w.attr_opt("local-tag", d.local_tag.as_deref());
    w.attr_opt("remote-tag", d.remote_tag.as_deref());
    w.attr_opt("direction", d.direction.map(|x| x.as_str()));
    w.ext_attrs(&d.extension_attributes);
    w.close_start();

    w.open(NS, "state");
    w.attr_opt("event", d.state.event.map(|e| e.as_str()));
    if let Some(code) = d.state.code {
        w.attr("code", &code.to_string());
    }
    w.close_start();
    w.text(d.state.value.as_str());
    w.end(NS, "state");

    if let Some(duration) = d.duration {
        w.leaf(NS, "duration", &duration.to_string());
    }
    if let Some(r) = &d.replaces {
        w.open(NS, "replaces");
        w.attr("call-id", &r.call_id);
        w.attr("local-tag", &r.local_tag);
        w.attr("remote-tag", &r.remote_tag);
        w.close_empty();
    }
    if let Some(by) = &d.referred_by {
        write_identity(w, "referred-by", by);
    }
    if !d.route_set.is_empty() {
        w.open(NS, "route-set");
        w.close_start();
        for hop in &d.route_set {
            w.leaf(NS, "hop", hop);
        }
        w.end(NS, "route-set");
    }
    if let Some(p) = &d.local {
        write_participant(w, "local", p);
    }
    if let Some(p) = &d.remote {
        write_participant(w, "remote", p);
    }
    w.elements(&d.extensions);
    w.end(NS, "dialog");
}

fn write_identity(w: &mut XmlWriter<'_>, local: &str, id: &Identity) {
    w.open(NS, local);
    w.attr_opt("display", id.display.as_deref());
    w.close_start();
    w.text(&id.uri);
    w.end(NS, local);
}

fn write_participant(w: &mut XmlWriter<'_>, local: &str, p: &Participant) {
    let is_empty = p.identity.is_none()
        && p.target.is_none()
        && p.session_description.is_none()
        && p.cseq.is_none()
        && p.extensions.is_empty();
    if is_empty {
        w.empty(NS, local);
        return;
    }
    w.open(NS, local);
    w.close_start();
    if let Some(id) = &p.identity {
        write_identity(w, "identity", id);
    }
    if let Some(t) = &p.target {
        w.open(NS, "target");
        w.attr("uri", &t.uri);
        if t.params.is_empty() {
            w.close_empty();
        } else {
            w.close_start();
            for (name, value) in &t.params {
                w.open(NS, "param");
                w.attr("pname", name);
                w.attr("pval", value);
                w.close_empty();
            }
            w.end(NS, "target");
        }
    }
    if let Some(sd) = &p.session_description {
        w.open(NS, "session-description");
        w.attr("type", &sd.content_type);
        w.close_start();
        w.text(&sd.text);
        w.end(NS, "session-description");
    }
    if let Some(cseq) = p.cseq {
        w.leaf(NS, "cseq", &cseq.to_string());
    }
    w.elements(&p.extensions);
    w.end(NS, local);
}
