//! An XCAP server (RFC 4825) for the presence authorization rules (RFC 5025), over the
//! engine: a user's client reads and changes its own `pres-rules` document, and each change
//! is the engine's rules at once (pending watchers decided under them, as
//! [`Engine::set_rule`] does), kept by the engine's store.
//!
//! HTTP itself is the embedder's: it parses a request into an [`XcapRequest`], calls
//! [`XcapServer::handle`] and writes the [`XcapResponse`] back (imppd does so on its HTTP
//! listener). What is served below the XCAP root:
//!
//! - `/xcap-caps/global/index` (`application/xcap-caps+xml`): the app usages and namespaces
//!   served, readable by anyone;
//! - `/pres-rules/users/<XUI>/index` (alias `pres-rules.xml`): the user's rules as an
//!   `application/auth-policy+xml` document, with GET, PUT and DELETE of the whole document
//!   and, after `/~~/`, of one element chosen by a node selector ([`selector`];
//!   `application/xcap-el+xml`). Only the user may touch it: digest authentication (RFC
//!   7616, the SIP server's [`DigestAuthenticator`] and the users' stored credentials, realm
//!   = the user's domain), `403` for another user's document.
//!
//! Every answer to a document carries its `ETag`; `If-Match` and `If-None-Match` are honoured
//! (`412`, and `304` for a GET). A change that makes the document not well-formed, not valid,
//! or not something the engine can enforce ([`pres_rules`]) is `409` with an
//! `application/xcap-error+xml` body and changes nothing.
//!
//! # The document
//!
//! The engine's rules are the truth. The document a client PUT is kept in memory and served
//! as written (its rule ids, its order) while the engine's rules of that user are still the
//! ones it maps to; otherwise (after a restart, or a change through `imppd ctl rules`) the
//! document is made from the engine's rules ([`pres_rules::from_engine`]). A user with no rule
//! and no document written has none (`404`).
//!
//! # The client
//!
//! [`client`] is the other side, for one use: a device serving its own address of record
//! (presence at the edge) reads its pres-rules document from its server's XCAP root, and
//! [`pres_rules::to_engine`] makes them its engine's rules.
#![forbid(unsafe_code)]

pub mod client;
pub mod pres_rules;
pub mod selector;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

use crate::doc::pres_rules::{write_ruleset, PresRules};
use crate::doc::{ns, Element, Limits};
use crate::engine::Engine;
use crate::model::key::presentity_key;
use crate::model::rule::{AuthAction, AuthRule, RuleSlot};
use crate::sip::digest::{DigestAuthenticator, Outcome};
use crate::uri::Uri;
use selector::{Selector, Step};

/// The namespace of XCAP error documents (RFC 4825 §11).
pub const XCAP_ERROR_NS: &str = "urn:ietf:params:xml:ns:xcap-error";
/// The namespace of the capabilities document (RFC 4825 §12).
pub const XCAP_CAPS_NS: &str = "urn:ietf:params:xml:ns:xcap-caps";
/// The largest document or element body taken.
pub const MAX_BODY: usize = 64 * 1024;

/// One HTTP request, as the embedder's HTTP layer read it.
#[derive(Debug, Clone)]
pub struct XcapRequest {
    /// `GET`, `PUT`, `DELETE`, `HEAD`.
    pub method: String,
    /// The path and query below the XCAP root (starting with `/`).
    pub target: String,
    /// Header fields (name, value) as received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Where the request came from (digest nonces are bound to it).
    pub client: IpAddr,
}

impl XcapRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcapResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Header fields besides `Content-Length` (the HTTP layer writes that).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl XcapResponse {
    fn new(status: u16, reason: &'static str) -> XcapResponse {
        XcapResponse {
            status,
            reason,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn text(status: u16, reason: &'static str, text: &str) -> XcapResponse {
        XcapResponse::new(status, reason)
            .with_body("text/plain; charset=utf-8", format!("{text}\n"))
    }

    fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> XcapResponse {
        self.headers
            .push(("Content-Type".into(), content_type.to_owned()));
        self.body = body.into();
        self
    }

    fn with_etag(mut self, etag: &str) -> XcapResponse {
        self.headers.push(("ETag".into(), etag.to_owned()));
        self
    }

    /// The value of a header field of the answer.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The XCAP error conditions used (RFC 4825 §11.2): the element name of the error document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conflict {
    NotWellFormed,
    NotUtf8,
    SchemaValidationError,
    ConstraintFailure,
    NoParent,
    CannotInsert,
    CannotDelete,
}

impl Conflict {
    fn name(self) -> &'static str {
        match self {
            Conflict::NotWellFormed => "not-well-formed",
            Conflict::NotUtf8 => "not-utf-8",
            Conflict::SchemaValidationError => "schema-validation-error",
            Conflict::ConstraintFailure => "constraint-failure",
            Conflict::NoParent => "no-parent",
            Conflict::CannotInsert => "cannot-insert",
            Conflict::CannotDelete => "cannot-delete",
        }
    }
}

/// A `409` with its `application/xcap-error+xml` body; `phrase` says what was wrong.
fn conflict(which: Conflict, phrase: &str) -> XcapResponse {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-error xmlns=\"{XCAP_ERROR_NS}\"><{}",
        which.name()
    );
    body.push_str(" phrase=\"");
    crate::doc::xml::escape_into(&mut body, phrase, true);
    body.push_str("\"/></xcap-error>\n");
    XcapResponse::new(409, "Conflict").with_body("application/xcap-error+xml", body)
}

/// A document the server keeps: the element tree served, and the engine rules it maps to.
struct Written {
    root: Element,
    rules: BTreeMap<RuleSlot, AuthAction>,
}

/// The XCAP server of one engine. `Send + Sync`: share one between the HTTP threads.
pub struct XcapServer {
    engine: Arc<Engine>,
    digest: DigestAuthenticator,
    /// Documents written by clients, by presentity key; the lock also serializes changes
    /// (a read-modify-write of one document never interleaves with another).
    written: Mutex<HashMap<String, Written>>,
}

const PRES_RULES: &str = "pres-rules";
const XCAP_CAPS: &str = "xcap-caps";
const EL_TYPE: &str = "application/xcap-el+xml";

impl XcapServer {
    /// A server for `engine`'s users, with a digest realm for each domain it owns. Fails
    /// when the engine owns no domain (there would be no realm).
    pub fn new(engine: Arc<Engine>) -> crate::error::Result<XcapServer> {
        let clock = engine.config().clock.clone();
        let digest =
            DigestAuthenticator::new(engine.config().domains.clone())?.with_engine_clock(clock);
        Ok(XcapServer {
            engine,
            digest,
            written: Mutex::new(HashMap::new()),
        })
    }

    /// Answers one request.
    pub fn handle(&self, request: &XcapRequest) -> XcapResponse {
        let (path, query) = match request.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (request.target.as_str(), None),
        };
        // The default namespace of node selectors is the app usage's.
        let default_ns = if path.starts_with("/xcap-caps/") {
            XCAP_CAPS_NS
        } else {
            ns::COMMON_POLICY
        };
        let sel = match selector::parse(path, query, default_ns) {
            Ok(s) => s,
            Err(why) => return XcapResponse::text(404, "Not Found", &why),
        };
        let head = request.method == "HEAD";
        let method = if head { "GET" } else { request.method.as_str() };
        let mut answer = match (sel.auid.as_str(), &sel.xui) {
            (XCAP_CAPS, None) if sel.document == "index" => {
                if method != "GET" {
                    return not_allowed("GET, HEAD");
                }
                let root = Element::parse(&caps(), &Limits::DEFAULT).expect("our own document");
                self.get(
                    request,
                    &root,
                    &sel.steps,
                    "application/xcap-caps+xml",
                    &caps(),
                )
            }
            (PRES_RULES, Some(xui)) if ["index", "pres-rules.xml"].contains(&&*sel.document) => {
                self.user_document(request, method, xui, &sel)
            }
            _ => XcapResponse::text(
                404,
                "Not Found",
                "no such document (served: xcap-caps/global/index, pres-rules/users/XUI/index)",
            ),
        };
        if head {
            answer.body.clear();
        }
        answer
    }

    fn user_document(
        &self,
        request: &XcapRequest,
        method: &str,
        xui: &str,
        sel: &Selector,
    ) -> XcapResponse {
        let owner = match Uri::parse(xui) {
            Ok(u) if self.engine.config().owns(&u) && !u.host().is_empty() => u,
            _ => return XcapResponse::text(404, "Not Found", "no such user"),
        };
        if let Some(denied) = self.authenticate(request, &owner) {
            return denied;
        }
        let key = presentity_key(&owner);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let current = match self.current(&mut written, &owner, &key) {
            Ok(c) => c,
            Err(e) => return XcapResponse::text(500, "Internal Server Error", &e),
        };
        let etag = current.as_ref().map(|root| etag(&write_ruleset(root)));
        if let Some(refused) = preconditions(request, method, etag.as_deref()) {
            return refused;
        }
        match method {
            "GET" => match &current {
                Some(root) => self.get(
                    request,
                    root,
                    &sel.steps,
                    PresRules::CONTENT_TYPE,
                    &write_ruleset(root),
                ),
                None => XcapResponse::text(404, "Not Found", "no pres-rules document"),
            },
            "PUT" if sel.steps.is_empty() => {
                if !content_type_is(request, PresRules::CONTENT_TYPE) {
                    return unsupported(PresRules::CONTENT_TYPE);
                }
                let root = match parse_body(&request.body, "") {
                    Ok(root) => root,
                    Err(refused) => return refused,
                };
                let created = current.is_none();
                self.commit(&mut written, &owner, &key, root, created)
            }
            "PUT" => {
                let Some(mut root) = current else {
                    return XcapResponse::text(404, "Not Found", "no pres-rules document");
                };
                if !content_type_is(request, EL_TYPE) {
                    return unsupported(EL_TYPE);
                }
                let element = match parse_body(&request.body, "wrap") {
                    Ok(e) => e,
                    Err(refused) => return refused,
                };
                let created = match put_element(&mut root, &sel.steps, element) {
                    Ok(created) => created,
                    Err(refused) => return refused,
                };
                self.commit(&mut written, &owner, &key, root, created)
            }
            "DELETE" => {
                let Some(mut root) = current else {
                    return XcapResponse::text(404, "Not Found", "no pres-rules document");
                };
                if sel.steps.is_empty() {
                    return self.delete_document(&mut written, &owner, &key);
                }
                let Some(path) = selector::select(&root, &sel.steps) else {
                    return XcapResponse::text(
                        404,
                        "Not Found",
                        "the node selector selects nothing",
                    );
                };
                let Some((&last, parent)) = path.split_last() else {
                    return conflict(
                        Conflict::CannotDelete,
                        "the root element goes with the document (DELETE the document)",
                    );
                };
                selector::at_mut(&mut root, parent).children.remove(last);
                if selector::select(&root, &sel.steps).is_some() {
                    return conflict(
                        Conflict::CannotDelete,
                        "after the deletion the node selector would select another element",
                    );
                }
                self.commit(&mut written, &owner, &key, root, false)
            }
            _ => not_allowed("GET, HEAD, PUT, DELETE"),
        }
    }

    /// Checks the request's digest credentials against `owner`'s: `None` when they are the
    /// owner's, else the answer (`401` with a challenge, or `403`).
    fn authenticate(&self, request: &XcapRequest, owner: &Uri) -> Option<XcapResponse> {
        let realm = owner.host();
        let challenge = |stale: bool| {
            let mut r = XcapResponse::text(401, "Unauthorized", "digest credentials needed");
            for value in self.digest.challenge_for(realm, stale, request.client) {
                r.headers.push(("WWW-Authenticate".into(), value));
            }
            Some(r)
        };
        let Some(value) = request.header("Authorization") else {
            return challenge(false);
        };
        let lookup = |username: &str, realm: &str| {
            Uri::parse(&format!("sip:{username}@{realm}"))
                .ok()
                .and_then(|u| self.engine.user(&u))
        };
        match self
            .digest
            .verify_from(&request.method, value, request.client, lookup)
        {
            Outcome::Authenticated { user } if presentity_key(&user) == presentity_key(owner) => {
                None
            }
            Outcome::Authenticated { user } => Some(XcapResponse::text(
                403,
                "Forbidden",
                &format!("{user} may not touch the documents of another user"),
            )),
            Outcome::Stale | Outcome::Replayed(_) => challenge(true),
            Outcome::Rejected(why) | Outcome::Malformed(why) => {
                crate::log::info!(
                    "XCAP: {} from {} refused: {why}",
                    request.method,
                    request.client
                );
                challenge(false)
            }
        }
    }

    /// The document of `owner` now: the one written, while the engine's rules are still
    /// the ones it maps to; else the one made from the engine's rules; `None` for no rule.
    fn current(
        &self,
        written: &mut HashMap<String, Written>,
        owner: &Uri,
        key: &str,
    ) -> Result<Option<Element>, String> {
        let rules = self.document_rules(owner).map_err(|e| e.to_string())?;
        let slots = slots(&rules);
        if let Some(w) = written.get(key) {
            if w.rules == slots {
                return Ok(Some(w.root.clone()));
            }
            written.remove(key);
        }
        if rules.is_empty() {
            return Ok(None);
        }
        Ok(Some(pres_rules::from_engine(&rules).to_element()))
    }

    /// Validates `root` as `owner`'s new document and makes its rules the engine's.
    fn commit(
        &self,
        written: &mut HashMap<String, Written>,
        owner: &Uri,
        key: &str,
        root: Element,
        created: bool,
    ) -> XcapResponse {
        let text = write_ruleset(&root);
        if text.len() > MAX_BODY {
            return conflict(
                Conflict::ConstraintFailure,
                "the document would be too large",
            );
        }
        let doc = match PresRules::from_element(&root) {
            Ok(d) => d,
            Err(e) => return conflict(Conflict::SchemaValidationError, &e.to_string()),
        };
        let rules = match pres_rules::to_engine(owner, &doc) {
            Ok(r) => r,
            Err(why) => return conflict(Conflict::ConstraintFailure, &why),
        };
        if let Err(e) = self.apply(owner, &rules) {
            return XcapResponse::text(500, "Internal Server Error", &e.to_string());
        }
        written.insert(
            key.to_owned(),
            Written {
                root,
                rules: slots(&rules),
            },
        );
        let (status, reason) = if created {
            (201, "Created")
        } else {
            (200, "OK")
        };
        XcapResponse::new(status, reason).with_etag(&etag(&text))
    }

    /// The engine rules of `owner` a pres-rules document speaks of: all but redirects,
    /// which RFC 5025 has no action for (they are the server's, set through its own
    /// interfaces, and a document written here leaves them alone).
    fn document_rules(&self, owner: &Uri) -> crate::error::Result<Vec<AuthRule>> {
        let mut rules = self.engine.rules(owner)?;
        rules.retain(|r| r.action != AuthAction::Redirect);
        Ok(rules)
    }

    /// Makes `rules` the engine's rules of `owner`: what is new or changed is set, what is
    /// gone is removed.
    fn apply(&self, owner: &Uri, rules: &[AuthRule]) -> crate::error::Result<()> {
        let before = self.document_rules(owner)?;
        let old = slots(&before);
        for rule in rules {
            if old.get(&rule.watcher.slot()) != Some(&rule.action) {
                self.engine.set_rule(rule.clone())?;
            }
        }
        let new = slots(rules);
        for rule in &before {
            if !new.contains_key(&rule.watcher.slot()) {
                self.engine.remove_rule(owner, &rule.watcher)?;
            }
        }
        Ok(())
    }

    fn delete_document(
        &self,
        written: &mut HashMap<String, Written>,
        owner: &Uri,
        key: &str,
    ) -> XcapResponse {
        if let Err(e) = self.apply(owner, &[]) {
            return XcapResponse::text(500, "Internal Server Error", &e.to_string());
        }
        written.remove(key);
        XcapResponse::new(200, "OK")
    }

    /// A GET of a document (`text`) or of the element the steps select in it.
    fn get(
        &self,
        request: &XcapRequest,
        root: &Element,
        steps: &[Step],
        content_type: &str,
        text: &str,
    ) -> XcapResponse {
        let tag = etag(text);
        if request
            .header("If-None-Match")
            .is_some_and(|v| matches_etag(v, Some(&tag)))
        {
            return XcapResponse::new(304, "Not Modified").with_etag(&tag);
        }
        if steps.is_empty() {
            return XcapResponse::new(200, "OK")
                .with_body(content_type, text.to_owned())
                .with_etag(&tag);
        }
        match selector::select(root, steps) {
            Some(path) => {
                let e = selector::at(root, &path);
                let xml = e.to_xml();
                // The element alone, without the XML declaration: a fragment (RFC 4825 §8.3).
                let fragment = xml
                    .split_once("?>\n")
                    .map_or(xml.as_str(), |(_, rest)| rest)
                    .to_owned();
                XcapResponse::new(200, "OK")
                    .with_body(EL_TYPE, fragment)
                    .with_etag(&tag)
            }
            None => XcapResponse::text(404, "Not Found", "the node selector selects nothing"),
        }
    }
}

/// The (slot, action) pairs of one presentity's rules: what two rule sets are compared by.
fn slots(rules: &[AuthRule]) -> BTreeMap<RuleSlot, AuthAction> {
    rules.iter().map(|r| (r.watcher.slot(), r.action)).collect()
}

/// An entity tag: a strong one, the first 16 bytes of SHA-256 of the document text.
fn etag(text: &str) -> String {
    let hash = sha2::Sha256::digest(text.as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-Match`/`If-None-Match` value (`*` or a list of tags) matches `current`.
fn matches_etag(value: &str, current: Option<&str>) -> bool {
    let Some(current) = current else { return false };
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t.strip_prefix("W/") == Some(current))
}

/// `412` when `If-Match` or (for a change) `If-None-Match` says no.
fn preconditions(
    request: &XcapRequest,
    method: &str,
    current: Option<&str>,
) -> Option<XcapResponse> {
    if let Some(v) = request.header("If-Match") {
        if !matches_etag(v, current) {
            return Some(XcapResponse::text(
                412,
                "Precondition Failed",
                "If-Match: the document has changed",
            ));
        }
    }
    if method != "GET" {
        if let Some(v) = request.header("If-None-Match") {
            if matches_etag(v, current) {
                return Some(XcapResponse::text(
                    412,
                    "Precondition Failed",
                    "If-None-Match: the document exists in that version",
                ));
            }
        }
    }
    None
}

fn content_type_is(request: &XcapRequest, expected: &str) -> bool {
    request.header("Content-Type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
    })
}

fn unsupported(expected: &str) -> XcapResponse {
    XcapResponse::text(
        415,
        "Unsupported Media Type",
        &format!("the body must be {expected}"),
    )
}

fn not_allowed(allow: &str) -> XcapResponse {
    let mut r = XcapResponse::text(405, "Method Not Allowed", &format!("{allow} only"));
    r.headers.push(("Allow".into(), allow.to_owned()));
    r
}

/// Reads a body as UTF-8 XML: a whole document, or (with `wrap`) an element whose prefixes
/// are those of the pres-rules document (the default namespace common policy, `pr` pres-rules,
/// RFC 4825 §8.2.3: an element body takes the namespaces of where it goes).
fn parse_body(body: &[u8], wrap: &str) -> Result<Element, XcapResponse> {
    if body.len() > MAX_BODY {
        return Err(XcapResponse::text(
            413,
            "Content Too Large",
            "body too large",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| conflict(Conflict::NotUtf8, &format!("the body is not UTF-8: {e}")))?;
    if wrap.is_empty() {
        return Element::parse(text, &Limits::DEFAULT)
            .map_err(|e| conflict(Conflict::NotWellFormed, &e.to_string()));
    }
    let fragment = text.trim_start();
    let fragment = match fragment.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, r)| r),
        None => fragment,
    };
    let wrapped = format!(
        "<{wrap} xmlns=\"{}\" xmlns:pr=\"{}\" xmlns:cp=\"{}\">{fragment}</{wrap}>",
        ns::COMMON_POLICY,
        ns::PRES_RULES,
        ns::COMMON_POLICY
    );
    let mut outer = Element::parse(&wrapped, &Limits::DEFAULT)
        .map_err(|e| conflict(Conflict::NotWellFormed, &e.to_string()))?;
    if outer.children.len() != 1 || !outer.text.trim().is_empty() {
        return Err(conflict(
            Conflict::NotWellFormed,
            "an element body is one element",
        ));
    }
    Ok(outer.children.remove(0))
}

/// Puts `element` where the steps point (RFC 4825 §8.2.3): it replaces the element they
/// select, or becomes a new child of the element their parent steps select. Returns whether
/// it was created.
fn put_element(root: &mut Element, steps: &[Step], element: Element) -> Result<bool, XcapResponse> {
    let Some((last, parents)) = steps.split_last() else {
        return Err(conflict(Conflict::CannotInsert, "no node selector"));
    };
    if !last.accepts(&element) {
        return Err(conflict(
            Conflict::CannotInsert,
            "the element's name or attribute is not the one the node selector asks for",
        ));
    }
    if let Some(path) = selector::select(root, steps) {
        if path.is_empty() {
            *root = element;
        } else {
            *selector::at_mut(root, &path) = element;
        }
        return Ok(false);
    }
    if parents.is_empty() {
        return Err(conflict(
            Conflict::CannotInsert,
            "the root element is not that one",
        ));
    }
    let Some(parent) = selector::select(root, parents) else {
        return Err(conflict(
            Conflict::NoParent,
            "the node selector's parent selects nothing",
        ));
    };
    let parent_element = selector::at_mut(root, &parent);
    let Some(index) = selector::insertion_index(parent_element, last) else {
        return Err(conflict(
            Conflict::CannotInsert,
            "there are not enough siblings for that position",
        ));
    };
    parent_element.children.insert(index, element);
    let mut expected = parent;
    expected.push(index);
    if selector::select(root, steps) != Some(expected) {
        return Err(conflict(
            Conflict::CannotInsert,
            "once inserted, the node selector would not select the element",
        ));
    }
    Ok(true)
}

/// The capabilities document (RFC 4825 §12.2).
fn caps() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-caps xmlns=\"{XCAP_CAPS_NS}\">\
         <auids><auid>{XCAP_CAPS}</auid><auid>{PRES_RULES}</auid></auids>\
         <namespaces><namespace>{XCAP_CAPS_NS}</namespace><namespace>{}</namespace>\
         <namespace>{}</namespace><namespace>{XCAP_ERROR_NS}</namespace></namespaces>\
         </xcap-caps>\n",
        ns::COMMON_POLICY,
        ns::PRES_RULES
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::sip::digest::{expected_response, Algorithm};
    use crate::store::{Credential, MemoryStore};

    const DOC: &str = "/pres-rules/users/sip:alice@example.test/index";
    const CLIENT: [u8; 4] = [127, 0, 0, 1];

    fn server() -> XcapServer {
        let engine = Engine::new(EngineConfig {
            domains: vec!["example.test".into()],
            store: Arc::new(MemoryStore::new()),
            ..EngineConfig::default()
        })
        .unwrap();
        for user in ["alice", "bob"] {
            let uri = Uri::parse(&format!("sip:{user}@example.test")).unwrap();
            engine
                .set_user(Credential::new(uri, "example.test", &format!("{user}-pw")))
                .unwrap();
        }
        XcapServer::new(Arc::new(engine)).unwrap()
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> XcapRequest {
        XcapRequest {
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            client: CLIENT.into(),
        }
    }

    /// Sends a request as `user`: once without credentials, then answering the SHA-256
    /// challenge as a client would.
    fn send(
        xcap: &XcapServer,
        user: &str,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> XcapResponse {
        let first = xcap.handle(&request(method, target, headers, body));
        if first.status != 401 {
            return first;
        }
        let challenge = first.header("WWW-Authenticate").unwrap();
        assert!(challenge.contains("algorithm=SHA-256"), "{challenge}");
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let credential = Credential::new(
            Uri::parse(&format!("sip:{user}@example.test")).unwrap(),
            "example.test",
            &format!("{user}-pw"),
        );
        let response = expected_response(
            Algorithm::Sha256,
            &credential.ha1_sha256,
            method,
            target,
            &nonce,
            Some(("auth", "00000001", "c0ffee")),
        );
        let authorization = format!(
            "Digest username=\"{user}\", realm=\"example.test\", nonce=\"{}\", uri=\"{target}\", \
             response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
            nonce
        );
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("Authorization", &authorization));
        xcap.handle(&request(method, target, &all, body))
    }

    fn ruleset(rules: &str) -> String {
        format!(
            "<ruleset xmlns='urn:ietf:params:xml:ns:common-policy' \
             xmlns:pr='urn:ietf:params:xml:ns:pres-rules'>{rules}</ruleset>"
        )
    }

    const ALLOW_BOB: &str = "<rule id='a'><conditions><identity><one id='sip:bob@example.test'/>\
        </identity></conditions><actions><pr:sub-handling>allow</pr:sub-handling></actions></rule>";

    const POLICY: (&str, &str) = ("Content-Type", "application/auth-policy+xml");
    const ELEMENT: (&str, &str) = ("Content-Type", "application/xcap-el+xml");

    #[test]
    fn a_document_is_written_read_and_matched_by_its_etag() {
        let xcap = server();
        assert_eq!(send(&xcap, "alice", "GET", DOC, &[], "").status, 404);
        let put = send(&xcap, "alice", "PUT", DOC, &[POLICY], &ruleset(ALLOW_BOB));
        assert_eq!(put.status, 201, "{put:?}");
        let etag = put.header("ETag").unwrap().to_owned();
        let got = send(&xcap, "alice", "GET", DOC, &[], "");
        assert_eq!(got.header("ETag"), Some(etag.as_str()));
        assert!(String::from_utf8_lossy(&got.body).contains("<rule id=\"a\">"));
        let rules = xcap
            .engine
            .rules(&Uri::parse("sip:alice@example.test").unwrap())
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].action, AuthAction::Allow);
        // Conditional reads and writes.
        let same = send(&xcap, "alice", "GET", DOC, &[("If-None-Match", &etag)], "");
        assert_eq!(same.status, 304);
        let head = send(&xcap, "alice", "HEAD", DOC, &[], "");
        assert_eq!((head.status, head.body.len()), (200, 0));
        let stale = send(
            &xcap,
            "alice",
            "PUT",
            DOC,
            &[POLICY, ("If-Match", "\"old\"")],
            &ruleset(""),
        );
        assert_eq!(stale.status, 412);
        let fresh = send(
            &xcap,
            "alice",
            "PUT",
            DOC,
            &[POLICY, ("If-Match", &etag)],
            &ruleset(""),
        );
        assert_eq!(fresh.status, 200);
        assert!(xcap
            .engine
            .rules(&Uri::parse("sip:alice@example.test").unwrap())
            .unwrap()
            .is_empty());
        // An empty document written is a document (until the server restarts).
        assert_eq!(send(&xcap, "alice", "GET", DOC, &[], "").status, 200);
        assert_eq!(send(&xcap, "alice", "DELETE", DOC, &[], "").status, 200);
        assert_eq!(send(&xcap, "alice", "GET", DOC, &[], "").status, 404);
    }

    #[test]
    fn refusals_say_why_and_change_nothing() {
        let xcap = server();
        send(&xcap, "alice", "PUT", DOC, &[POLICY], &ruleset(ALLOW_BOB));
        let before = send(&xcap, "alice", "GET", DOC, &[], "");
        let conflict = |r: &XcapResponse, what: &str| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(r.status, 409, "{body}");
            assert_eq!(r.header("Content-Type"), Some("application/xcap-error+xml"));
            assert!(body.contains(what), "{what}: {body}");
        };
        conflict(
            &send(&xcap, "alice", "PUT", DOC, &[POLICY], "<ruleset"),
            "<not-well-formed",
        );
        // A body that is not UTF-8 (read below the credentials, which come first).
        let latin1 = parse_body(&[0x3c, 0xe9, 0x3e], "").unwrap_err();
        conflict(&latin1, "<not-utf-8");
        conflict(
            &send(&xcap, "alice", "PUT", DOC, &[POLICY], &ruleset("<rule/>")),
            "<schema-validation-error",
        );
        conflict(
            &send(
                &xcap,
                "alice",
                "PUT",
                DOC,
                &[POLICY],
                &ruleset("<rule id='x'/>"),
            ),
            "<constraint-failure phrase=\"rule 'x': no conditions",
        );
        // Elements: no parent, a name other than the selector's, an element that is not one.
        conflict(
            &send(&xcap, "alice", "PUT", &format!("{DOC}/~~/ruleset/rule[@id='zz']/actions/pr:x?xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"), &[ELEMENT], "<pr:x/>"),
            "<no-parent",
        );
        conflict(
            &send(
                &xcap,
                "alice",
                "PUT",
                &format!("{DOC}/~~/ruleset/rule[@id='b']"),
                &[ELEMENT],
                "<rule id='c'/>",
            ),
            "<cannot-insert",
        );
        conflict(
            &send(
                &xcap,
                "alice",
                "PUT",
                &format!("{DOC}/~~/ruleset/rule[@id='b']"),
                &[ELEMENT],
                "<rule id='b'/><rule id='b'/>",
            ),
            "<not-well-formed",
        );
        conflict(
            &send(
                &xcap,
                "alice",
                "DELETE",
                &format!("{DOC}/~~/ruleset"),
                &[],
                "",
            ),
            "<cannot-delete",
        );
        assert_eq!(
            send(
                &xcap,
                "alice",
                "PUT",
                DOC,
                &[("Content-Type", "text/xml")],
                &ruleset("")
            )
            .status,
            415
        );
        assert_eq!(send(&xcap, "alice", "POST", DOC, &[], "").status, 405);
        assert_eq!(send(&xcap, "bob", "GET", DOC, &[], "").status, 403);
        assert_eq!(
            xcap.handle(&request(
                "GET",
                "/pres-rules/users/sip:zed@other.test/index",
                &[],
                ""
            ))
            .status,
            404
        );
        assert_eq!(send(&xcap, "alice", "GET", DOC, &[], "").body, before.body);
    }

    #[test]
    fn elements_are_replaced_inserted_and_read_by_selector() {
        let xcap = server();
        send(&xcap, "alice", "PUT", DOC, &[POLICY], &ruleset(ALLOW_BOB));
        let handling = format!(
            "{DOC}/~~/ruleset/rule%5B@id=%22a%22%5D/actions/pr:sub-handling?xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"
        );
        let got = send(&xcap, "alice", "GET", &handling, &[], "");
        assert_eq!(got.status, 200);
        assert_eq!(got.header("Content-Type"), Some("application/xcap-el+xml"));
        assert!(String::from_utf8_lossy(&got.body).contains(">allow</"));
        let replaced = send(
            &xcap,
            "alice",
            "PUT",
            &handling,
            &[ELEMENT],
            "<pr:sub-handling>polite-block</pr:sub-handling>",
        );
        assert_eq!(
            replaced.status,
            200,
            "{}",
            String::from_utf8_lossy(&replaced.body)
        );
        let alice = Uri::parse("sip:alice@example.test").unwrap();
        assert_eq!(
            xcap.engine.rules(&alice).unwrap()[0].action,
            AuthAction::PoliteBlock
        );
        // A second rule, first by position.
        let second = "<rule id='d'><conditions><identity><many domain='x.test'/></identity>\
                      </conditions><actions><pr:sub-handling>block</pr:sub-handling></actions></rule>";
        let put = send(
            &xcap,
            "alice",
            "PUT",
            &format!("{DOC}/~~/ruleset/rule[1]"),
            &[ELEMENT],
            second,
        );
        assert_eq!(put.status, 200, "replaces the first rule");
        assert_eq!(xcap.engine.rules(&alice).unwrap().len(), 1);
        let put = send(
            &xcap,
            "alice",
            "PUT",
            &format!("{DOC}/~~/ruleset/rule[2]"),
            &[ELEMENT],
            ALLOW_BOB,
        );
        assert_eq!(put.status, 201);
        assert_eq!(xcap.engine.rules(&alice).unwrap().len(), 2);
        let caps = xcap.handle(&request(
            "GET",
            "/xcap-caps/global/index/~~/xcap-caps/auids/auid[2]",
            &[],
            "",
        ));
        assert_eq!(
            String::from_utf8_lossy(&caps.body),
            "<auid xmlns=\"urn:ietf:params:xml:ns:xcap-caps\">pres-rules</auid>"
        );
    }
}
