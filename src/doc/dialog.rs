//! Dialog state documents (`application/dialog-info+xml`, RFC 4235): busy-lamp fields.
//!
//! A phone or PBX that subscribes to the `dialog` package of an extension learns its calls:
//! one `<dialog>` per INVITE dialog with its state (trying, proceeding, early = ringing,
//! confirmed = talking, terminated), and optionally both participants' identities and
//! targets. An idle extension is a `full` document without dialogs. A `partial` document
//! carries only the dialogs that changed; [`DialogInfo::apply`] folds it into a full state.
//!
//! The codec is strict where the schema is closed (unknown elements in the dialog-info
//! namespace, enumeration values outside the schema, missing required attributes, numbers
//! that are not numbers) and keeps what the schema leaves open: elements of other
//! namespaces under `<dialog-info>`, `<dialog>`, `<local>` and `<remote>` (vendor lamps such
//! as shared-appearance data) are kept as [`Element`]s, and attributes of `<dialog-info>`
//! and `<dialog>` this module does not know are kept as [`Attribute`]s.
#![forbid(unsafe_code)]

use std::str::FromStr;

use crate::doc::ns;
pub use crate::doc::token::DocState;
use crate::doc::token::{fold, token_enum, Fold};
use crate::doc::xml::{Node, Tree, XmlWriter};
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
    /// Elements of other namespaces, kept and written back last.
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
    /// Elements of other namespaces, kept and written back last.
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
    /// Elements of other namespaces, kept and written back after the dialogs.
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
            } else if child.ns() == ns::DIALOG_INFO {
                return Err(unexpected(child, "dialog-info"));
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
    let mut route_set = None;
    for child in node.children() {
        if child.ns() != ns::DIALOG_INFO {
            dialog.extensions.push(child.to_element());
            continue;
        }
        let once = |seen: bool| -> Result<()> {
            if seen {
                return Err(Error::malformed(
                    DOC,
                    format!("<dialog id=\"{id}\"> has more than one <{}>", child.local()),
                ));
            }
            Ok(())
        };
        match child.local() {
            "state" => {
                once(state.is_some())?;
                state = Some(parse_state(child)?);
            }
            "duration" => {
                once(dialog.duration.is_some())?;
                dialog.duration = Some(parse_uint(simple_text(child)?, "<duration>")?);
            }
            "replaces" => {
                once(dialog.replaces.is_some())?;
                dialog.replaces = Some(Replaces {
                    call_id: child.required_attr(DOC, "call-id")?.to_owned(),
                    local_tag: child.required_attr(DOC, "local-tag")?.to_owned(),
                    remote_tag: child.required_attr(DOC, "remote-tag")?.to_owned(),
                });
            }
            "referred-by" => {
                once(dialog.referred_by.is_some())?;
                dialog.referred_by = Some(parse_identity(child)?);
            }
            "route-set" => {
                once(route_set.is_some())?;
                route_set = Some(parse_route_set(child)?);
            }
            "local" => {
                once(dialog.local.is_some())?;
                dialog.local = Some(parse_participant(child)?);
            }
            "remote" => {
                once(dialog.remote.is_some())?;
                dialog.remote = Some(parse_participant(child)?);
            }
            _ => return Err(unexpected(child, "dialog")),
        }
    }
    dialog.state = state.ok_or_else(|| {
        Error::malformed(
            DOC,
            format!("<dialog id=\"{id}\"> lacks the required <state>"),
        )
    })?;
    dialog.route_set = route_set.unwrap_or_default();
    dialog.id = id;
    Ok(dialog)
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

fn parse_identity(node: Node<'_, '_>) -> Result<Identity> {
    Ok(Identity {
        uri: simple_text(node)?.to_owned(),
        display: node.attr("display").map(str::to_owned),
    })
}

fn parse_route_set(node: Node<'_, '_>) -> Result<Vec<String>> {
    node.children()
        .map(|hop| {
            if hop.is(ns::DIALOG_INFO, "hop") {
                Ok(simple_text(hop)?.to_owned())
            } else {
                Err(unexpected(hop, "route-set"))
            }
        })
        .collect()
}

fn parse_participant(node: Node<'_, '_>) -> Result<Participant> {
    let side = node.local();
    let mut p = Participant::default();
    for child in node.children() {
        if child.ns() != ns::DIALOG_INFO {
            p.extensions.push(child.to_element());
            continue;
        }
        let once = |seen: bool| -> Result<()> {
            if seen {
                return Err(Error::malformed(
                    DOC,
                    format!("<{side}> has more than one <{}>", child.local()),
                ));
            }
            Ok(())
        };
        match child.local() {
            "identity" => {
                once(p.identity.is_some())?;
                p.identity = Some(parse_identity(child)?);
            }
            "target" => {
                once(p.target.is_some())?;
                p.target = Some(parse_target(child)?);
            }
            "session-description" => {
                once(p.session_description.is_some())?;
                if child.has_children() {
                    return Err(Error::malformed(
                        DOC,
                        "<session-description> must hold text, not elements",
                    ));
                }
                p.session_description = Some(SessionDescription {
                    content_type: child.required_attr(DOC, "type")?.trim().to_owned(),
                    text: child.text().to_owned(),
                });
            }
            "cseq" => {
                once(p.cseq.is_some())?;
                p.cseq = Some(parse_uint(simple_text(child)?, "<cseq>")?);
            }
            _ => return Err(unexpected(child, side)),
        }
    }
    Ok(p)
}

fn parse_target(node: Node<'_, '_>) -> Result<Target> {
    let mut target = Target {
        uri: node.required_attr(DOC, "uri")?.trim().to_owned(),
        params: Vec::new(),
    };
    for param in node.children() {
        if !param.is(ns::DIALOG_INFO, "param") {
            return Err(unexpected(param, "target"));
        }
        target.params.push((
            param.required_attr(DOC, "pname")?.to_owned(),
            param.required_attr(DOC, "pval")?.to_owned(),
        ));
    }
    Ok(target)
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

fn unexpected(node: Node<'_, '_>, parent: &str) -> Error {
    Error::malformed(DOC, format!("unexpected <{}> in <{parent}>", node.local()))
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
