//! Typing indicators: the is-composing status document (`application/im-iscomposing+xml`,
//! RFC 3994) that an IM client sends in a MESSAGE (or MSRP SEND) to say its user is, or has
//! stopped, writing a reply.
//!
//! ```xml
//! <isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
//!   <state>active</state>
//!   <contenttype>text/plain</contenttype>
//!   <refresh>90</refresh>
//! </isComposing>
//! ```
//!
//! # How the indication is used
//!
//! The composer has two states. It goes *active* when its user starts typing (or recording)
//! and sends an `active` document. While the user goes on composing it repeats `active`
//! before the refresh interval it announced in `<refresh>` runs out (the RFC's suggested
//! interval is [`DEFAULT_REFRESH_SECS`], and it should not be shorter than
//! [`MIN_REFRESH_SECS`]). When the user has not typed for the idle timeout
//! ([`DEFAULT_IDLE_TIMEOUT_SECS`] by default) the composer goes *idle* and sends an `idle`
//! document, usually with `<lastactive>` saying when the user last typed. Sending the message
//! itself also ends the active state, without an `idle` document.
//!
//! The receiver shows "is typing" on `active` and clears it on `idle`, when a message from
//! that sender arrives, or when the active state expires: after the `<refresh>` seconds of
//! the last `active` document, or [`DEFAULT_REFRESH_SECS`] when it had none
//! ([`IsComposing::active_expires_after`] gives this figure).
//!
//! # The codec
//!
//! The root is `<isComposing>` in the namespace [`ns::IM_ISCOMPOSING`](crate::doc::ns),
//! matched by namespace, never by prefix. `<state>` is required and must be `active` or
//! `idle` (surrounding whitespace ignored; anything else is [`Error::Malformed`]: the schema
//! types it as a string, but the RFC defines only these two states). `<lastactive>` must be
//! an `xs:dateTime`; `<refresh>` an `xs:positiveInteger` that fits in a `u32`, so `0` is
//! refused. Each of the four may appear at most once: the document is these four values, and
//! two of one contradict each other, so a repeat is refused (unlike the other codecs, which
//! read the first and keep the repeat). Names are kept, values are checked (the rule of every
//! codec, see [`crate::doc`]): elements the schema does not define, in any namespace (the
//! is-composing one included), and a `<lastactive>`, `<contenttype>` or `<refresh>` holding
//! elements or attributes are kept as [`Element`]s, attributes of the root (such as
//! `xsi:schemaLocation`) as [`Attribute`]s, both written back. A `<refresh>` in an `idle`
//! document is kept as written, although it means nothing there.
//!
//! [`IsComposing::to_xml`] writes the elements in schema order (state, lastactive,
//! contenttype, refresh, extensions); `parse(to_xml(d)) == d` for every parsed `d`, and for
//! every built `d` whose content type has no surrounding whitespace and whose refresh is not
//! 0.
#![forbid(unsafe_code)]

use crate::doc::ns;
use crate::doc::token::token_enum;
use crate::doc::xml::{Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits, Timestamp};
use crate::error::{Error, Result};

/// The MIME type of an is-composing document.
pub const CONTENT_TYPE: &str = "application/im-iscomposing+xml";

/// How long (seconds) a composer waits without input before it goes idle, unless configured
/// otherwise (RFC 3994 section 3.2).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 15;

/// The refresh interval (seconds) a composer uses for `active` by default, and how long a
/// receiver keeps an `active` state without `<refresh>` before treating it as expired.
pub const DEFAULT_REFRESH_SECS: u32 = 120;

/// The shortest refresh interval (seconds) a composer should announce.
pub const MIN_REFRESH_SECS: u32 = 60;

/// The name of this document in error messages.
const DOC: &str = "isComposing";

const NS: &str = ns::IM_ISCOMPOSING;

token_enum! {
    /// Whether the sender is composing (`<state>`).
    #[derive(Copy, Hash, Default)]
    pub enum ComposingState("composing state") {
        /// The user is writing (typing, recording...) a message.
        Active = "active",
        /// The user stopped writing without sending, or has not started.
        #[default]
        Idle = "idle",
    }
}

/// An is-composing document (`<isComposing>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsComposing {
    /// Active or idle (`<state>`, required).
    pub state: ComposingState,
    /// When the user last composed (`<lastactive>`), mostly sent with `idle`.
    pub last_active: Option<Timestamp>,
    /// What is being composed (`<contenttype>`): a MIME type such as `text/plain`, or a
    /// top-level type such as `audio`; trimmed.
    pub content_type: Option<String>,
    /// Seconds until the sender refreshes an `active` state (`<refresh>`, at least 1);
    /// the receiver treats the state as expired when that time passes without a refresh.
    pub refresh: Option<u32>,
    /// Elements this module does not read (other namespaces, names RFC 3994 does not define,
    /// optional elements in another shape), kept and written back last.
    pub extensions: Vec<Element>,
    /// Attributes of the root this module does not model (e.g. `xsi:schemaLocation`).
    pub extension_attributes: Vec<Attribute>,
}

impl IsComposing {
    /// The MIME type of this document (same as [`CONTENT_TYPE`]).
    pub const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    /// An `active` document announcing `refresh` seconds until the next refresh (`None`:
    /// no `<refresh>`, so the receiver assumes [`DEFAULT_REFRESH_SECS`]). A refresh of 0 is
    /// not valid in a document: pass `None` or a positive number.
    pub fn active(refresh: Option<u32>) -> IsComposing {
        IsComposing {
            state: ComposingState::Active,
            refresh,
            ..IsComposing::default()
        }
    }

    /// An `idle` document with nothing else (add `last_active` when known).
    pub fn idle() -> IsComposing {
        IsComposing::default()
    }

    /// Whether the state is `active`.
    pub fn is_active(&self) -> bool {
        self.state == ComposingState::Active
    }

    /// For an `active` document, the seconds after which a receiver that got no refresh
    /// treats the sender as idle: `refresh`, or [`DEFAULT_REFRESH_SECS`] when absent.
    /// `None` for an `idle` document.
    pub fn active_expires_after(&self) -> Option<u32> {
        self.is_active()
            .then(|| self.refresh.unwrap_or(DEFAULT_REFRESH_SECS))
    }

    /// Parses an is-composing document under the default [`Limits`].
    pub fn parse(input: &str) -> Result<IsComposing> {
        IsComposing::parse_with_limits(input, &Limits::DEFAULT)
    }

    /// Parses an is-composing document under `limits`.
    pub fn parse_with_limits(input: &str, limits: &Limits) -> Result<IsComposing> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, NS, "isComposing")?;
        let mut doc = IsComposing {
            extension_attributes: root.other_attrs(&[]),
            ..IsComposing::default()
        };
        let mut state = None;
        // Which of state, lastactive, contenttype and refresh were seen, read or kept.
        let mut seen = [false; 4];
        for child in root.children() {
            let name = child.local();
            let which = match (child.ns() == NS, name) {
                (true, "state") => 0,
                (true, "lastactive") => 1,
                (true, "contenttype") => 2,
                (true, "refresh") => 3,
                _ => {
                    doc.extensions.push(child.to_element());
                    continue;
                }
            };
            if std::mem::replace(&mut seen[which], true) {
                return Err(Error::malformed(DOC, format!("more than one <{name}>")));
            }
            if which == 0 {
                let text = simple_text(child)?;
                state = Some(ComposingState::from_name(text).ok_or_else(|| {
                    Error::malformed(
                        DOC,
                        format!("<state> must be 'active' or 'idle', not '{text}'"),
                    )
                })?);
                continue;
            }
            // An optional element holding elements or attributes is kept, not read.
            if !child.is_leaf(&[]) {
                doc.extensions.push(child.to_element());
                continue;
            }
            let text = child.trimmed();
            match which {
                1 => {
                    doc.last_active = Some(Timestamp::parse(text).map_err(|_| {
                        Error::malformed(
                            DOC,
                            format!("<lastactive> '{text}' is not a date-time (expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm])"),
                        )
                    })?)
                }
                2 => doc.content_type = Some(text.to_owned()),
                _ => doc.refresh = Some(parse_refresh(text)?),
            }
        }
        doc.state = state
            .ok_or_else(|| Error::malformed(DOC, "<isComposing> lacks the required <state>"))?;
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self` (see the
    /// module documentation for the conditions on built documents).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(NS, &[]);
        w.leaf(NS, "state", self.state.as_str());
        if let Some(ts) = &self.last_active {
            w.leaf(NS, "lastactive", ts.as_str());
        }
        if let Some(ct) = &self.content_type {
            w.leaf(NS, "contenttype", ct);
        }
        if let Some(refresh) = self.refresh {
            w.leaf(NS, "refresh", &refresh.to_string());
        }
        w.elements(&self.extensions);
        w.finish("isComposing", |w| {
            w.ext_attrs(&self.extension_attributes);
        })
    }
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

/// Parses `<refresh>`: an `xs:positiveInteger` (optional `+`, decimal digits, not zero)
/// that fits in a `u32`.
fn parse_refresh(text: &str) -> Result<u32> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::malformed(
            DOC,
            format!("<refresh> must be a positive number of seconds, not '{text}'"),
        ));
    }
    match digits.parse::<u32>() {
        Ok(0) => Err(Error::malformed(
            DOC,
            "<refresh> must be at least 1 second, not 0",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(Error::malformed(
            DOC,
            format!("<refresh> '{text}' is out of range (at most {})", u32::MAX),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_syntax() {
        assert_eq!(parse_refresh("60").unwrap(), 60);
        assert_eq!(parse_refresh("+90").unwrap(), 90);
        assert_eq!(parse_refresh("007").unwrap(), 7);
        assert_eq!(parse_refresh("4294967295").unwrap(), u32::MAX);
        for bad in ["", "0", "000", "-5", "1.5", "4294967296", "+", "ten"] {
            assert!(parse_refresh(bad).is_err(), "{bad:?}");
        }
    }
}
