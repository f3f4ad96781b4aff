//! `multipart/related` bodies (RFC 2387 over the multipart syntax of RFC 2046 §5.1), the
//! shape of every NOTIFY of a list subscription (RFC 4662 §5): a root part, and parts that
//! the root references by Content-ID. [`super::list_body`] builds and reads the RFC 4662
//! body on top of this codec.
//!
//! ```text
//! Content-Type: multipart/related;type="application/rlmi+xml";start="<r@x>";boundary=b1
//!
//! --b1
//! Content-Transfer-Encoding: binary
//! Content-ID: <r@x>
//! Content-Type: application/rlmi+xml;charset="UTF-8"
//!
//! <list ...>...</list>
//! --b1
//! Content-ID: <p1@x>
//! Content-Type: application/pidf+xml
//!
//! <presence ...>...</presence>
//! --b1--
//! ```
//!
//! # Reading
//!
//! [`MultipartRelated::parse`] takes the Content-Type header value (parsed by
//! [`ContentType`], the SIP codec's own parser, so parameters are read one way everywhere)
//! and the body. It is strict where a reader could go wrong and clear about it
//! ([`Error::Malformed`] naming what is wrong and where):
//!
//! - the header must be `multipart/related` with a `boundary` (1 to 70 characters of the
//!   RFC 2046 `bchars`, not ending in a space) and a `type` (RFC 2387 makes it mandatory);
//!   `start`, when present, is a Content-ID in angle brackets;
//! - the body must contain the boundary, every line that starts with `--boundary` must be a
//!   delimiter (RFC 2046: the boundary never starts a line inside a part), and the body must
//!   end with the close delimiter `--boundary--`. A preamble before the first delimiter and
//!   an epilogue after the last are ignored, as RFC 2046 says. Lines may end in CRLF or LF;
//!   the line break before a delimiter belongs to the delimiter, not to the part;
//! - each part's headers are `Name: value` lines (names are tokens; a line starting with
//!   a space or tab continues the previous one), then an empty line, then the part's body.
//!   `Content-Type` is required and must parse; `Content-ID` is required on every part the
//!   root does not stand for, in angle brackets as RFC 2045 has it, or bare (an id alone, as
//!   belle-sip writes and Linphone reads it: see [`ContentIdStyle::Bare`]; an id cannot be
//!   mistaken for anything else, so reading both costs nothing and lets libimpp's list client
//!   read a server that speaks Linphone's dialect); `Content-Transfer-Encoding` is optional,
//!   and only the identity encodings `7bit`, `8bit` and `binary` are read (`base64` and
//!   others are [`Error::Unsupported`]: SIP carries bodies as they are). Each of the three
//!   may appear once; other headers are kept in order. Content-IDs are unique;
//! - the root is the part whose Content-ID is `start`, or the first part without `start`
//!   (RFC 2387 §3.2); it must exist, and its media type must be the `type` parameter.
//!
//! Bounds: the body is at most [`Limits::max_bytes`] ([`Error::TooLarge`] over it), with at
//! most [`MAX_PARTS`] parts of at most [`MAX_PART_HEADERS`] header lines each.
//!
//! # Writing
//!
//! [`MultipartRelated::new`] picks a boundary that starts no line of any part (derived
//! from the parts' bytes, so the same parts give the same body; a candidate that occurs is
//! skipped), and [`MultipartRelated::encode`] writes the Content-Type header value and the
//! body with CRLF line ends, checking first that every value can be written and read back
//! ([`Error::InvalidArgument`] otherwise). `parse(encode(m)) == m` for every `m` `encode`
//! accepts. [`MultipartRelated::encode_with`] writes the parts' Content-IDs in another
//! [`ContentIdStyle`] (Linphone's, for the list server).
#![forbid(unsafe_code)]

use std::collections::HashSet;

use super::header::ContentType;
use super::lex::{clip, is_token};
use crate::doc::Limits;
use crate::error::{Error, Result};

/// The name of this body in error messages.
const DOC: &str = "multipart/related";

/// Most parts one body may have: a list of a thousand resources, one instance each.
pub const MAX_PARTS: usize = 1024;

/// Most header lines one part may have (its three content headers and a few more).
pub const MAX_PART_HEADERS: usize = 32;

/// Longest boundary (RFC 2046 §5.1.1).
pub const MAX_BOUNDARY_LEN: usize = 70;

/// How [`MultipartRelated::encode_with`] writes each part's Content-ID header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentIdStyle {
    /// `Content-ID: <id>`, as RFC 2045 §7 and RFC 2392 have it.
    #[default]
    Standard,
    /// `Content-Id: id`, without the brackets: liblinphone 5.1 finds a list NOTIFY's parts
    /// only under a header spelled `Content-Id` (its lookup is case-sensitive) whose value is
    /// the RLMI `cid` as it is (RFC 4662 §5.2 gives the cid without brackets), and shows
    /// nothing of a part written the standard way. An interoperability exception, used by
    /// the list server for Linphone's subscribers only.
    Bare,
}

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyPart {
    /// Its Content-ID without the angle brackets, e.g. `bUZBsM@pres.example.test`; the RLMI
    /// `cid` attribute names a part by this value.
    pub content_id: Option<String>,
    /// Its Content-Type header value as written, e.g. `application/pidf+xml;charset="UTF-8"`.
    pub content_type: String,
    /// Its Content-Transfer-Encoding (`7bit`, `8bit` or `binary`), if it has one.
    pub transfer_encoding: Option<String>,
    /// Its other headers as (name, value), in order.
    pub other_headers: Vec<(String, String)>,
    /// Its body, as the bytes between its headers and the next delimiter.
    pub body: Vec<u8>,
}

impl BodyPart {
    /// A part with a Content-ID and a Content-Type, sent `binary`.
    pub fn new(
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> BodyPart {
        BodyPart {
            content_id: Some(content_id.into()),
            content_type: content_type.into(),
            transfer_encoding: Some("binary".to_owned()),
            other_headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Whether this part's media type is `essence` (`type/subtype`, ignoring case and
    /// parameters).
    pub fn is(&self, essence: &str) -> bool {
        media_essence(&self.content_type).is_some_and(|e| e.eq_ignore_ascii_case(essence))
    }
}

/// A `multipart/related` body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipartRelated {
    /// The media type of the root part (the `type` parameter), e.g. `application/rlmi+xml`.
    pub root_type: String,
    /// The Content-ID of the root part, without angle brackets (the `start` parameter);
    /// `None`: the root is the first part.
    pub start: Option<String>,
    /// The boundary (the `boundary` parameter).
    pub boundary: String,
    /// The parts, in body order.
    pub parts: Vec<BodyPart>,
}

impl MultipartRelated {
    /// The media type of this body.
    pub const MEDIA_TYPE: &'static str = "multipart/related";

    /// A body of `parts` whose root has the media type `root_type` and the Content-ID
    /// `start` (or is the first part), with a boundary that starts no line of any part.
    pub fn new(
        root_type: impl Into<String>,
        start: Option<String>,
        parts: Vec<BodyPart>,
    ) -> MultipartRelated {
        MultipartRelated {
            root_type: root_type.into(),
            start,
            boundary: pick_boundary(&parts),
            parts,
        }
    }

    /// The root part: the one whose Content-ID is `start`, or the first.
    pub fn root(&self) -> Option<&BodyPart> {
        match &self.start {
            Some(id) => self.part(id),
            None => self.parts.first(),
        }
    }

    /// The part whose Content-ID (without angle brackets) is `content_id`.
    pub fn part(&self, content_id: &str) -> Option<&BodyPart> {
        self.parts
            .iter()
            .find(|p| p.content_id.as_deref() == Some(content_id))
    }

    /// Parses a body whose Content-Type header value is `content_type`, under `limits`.
    pub fn parse(content_type: &str, body: &[u8], limits: &Limits) -> Result<MultipartRelated> {
        let ct = ContentType::parse(content_type)?;
        if !ct.is("multipart", "related") {
            return Err(malformed(format!(
                "the Content-Type is {}, not multipart/related",
                ct.essence()
            )));
        }
        let boundary = ct
            .params()
            .value("boundary")
            .ok_or_else(|| malformed("the Content-Type has no boundary parameter"))?;
        check_boundary(boundary).map_err(malformed)?;
        let root_type = ct
            .params()
            .value("type")
            .ok_or_else(|| {
                malformed("the Content-Type has no type parameter (RFC 2387 requires it)")
            })?
            .trim();
        let start = match ct.params().value("start") {
            None => None,
            Some(s) => Some(
                bracketed(s)
                    .ok_or_else(|| {
                        malformed(format!(
                            "the start parameter {:?} is not a Content-ID in angle brackets",
                            clip(s)
                        ))
                    })?
                    .to_owned(),
            ),
        };
        limits.check_size(DOC, body.len())?;

        let mut parts = Vec::new();
        let mut ids = HashSet::new();
        for (n, raw) in split(body, boundary)?.into_iter().enumerate() {
            if n == MAX_PARTS {
                return Err(Error::TooLarge(format!(
                    "{DOC}: more than {MAX_PARTS} parts"
                )));
            }
            let part = parse_part(raw, n + 1)?;
            if let Some(id) = &part.content_id {
                if !ids.insert(id.clone()) {
                    return Err(malformed(format!(
                        "two parts have the Content-ID <{id}> (part {} is the second)",
                        n + 1
                    )));
                }
            }
            parts.push(part);
        }
        let doc = MultipartRelated {
            root_type: root_type.to_owned(),
            start,
            boundary: boundary.to_owned(),
            parts,
        };
        let root = doc.root().ok_or_else(|| match &doc.start {
            Some(id) => malformed(format!("the start part <{id}> is missing")),
            None => malformed("the body has no parts"),
        })?;
        if !root.is(&doc.root_type) {
            return Err(malformed(format!(
                "the root part is {:?}, but the type parameter says {:?}",
                clip(&root.content_type),
                clip(&doc.root_type)
            )));
        }
        for (n, p) in doc.parts.iter().enumerate() {
            if p.content_id.is_none() && !std::ptr::eq(p, root) {
                return Err(malformed(format!(
                    "part {} has no Content-ID (only the root may lack one)",
                    n + 1
                )));
            }
        }
        Ok(doc)
    }

    /// The Content-Type header value and the body, with CRLF line ends. Refuses
    /// ([`Error::InvalidArgument`]) what would not parse back as written: a boundary that
    /// is not one or that starts a line of a part, a Content-ID that is not a plain `id`
    /// (no spaces, `<`, `>`, `"`, `\` or control characters) or repeats, a content type
    /// that does not parse, a header value with a line break, a root that is missing or
    /// not of `root_type`, more than [`MAX_PARTS`] parts.
    pub fn encode(&self) -> Result<(String, Vec<u8>)> {
        self.encode_with(ContentIdStyle::Standard)
    }

    /// [`MultipartRelated::encode`], the parts' Content-IDs written in `style` (the `start`
    /// parameter keeps its brackets: RFC 2387 requires them, and Linphone reads it so).
    pub fn encode_with(&self, style: ContentIdStyle) -> Result<(String, Vec<u8>)> {
        check_boundary(&self.boundary).map_err(invalid)?;
        if !is_media_type(&self.root_type) {
            return Err(invalid(format!(
                "the root type {:?} is not a media type",
                clip(&self.root_type)
            )));
        }
        if self.parts.is_empty() || self.parts.len() > MAX_PARTS {
            return Err(invalid(format!(
                "a body has 1 to {MAX_PARTS} parts, not {}",
                self.parts.len()
            )));
        }
        let mut header = format!("{};type=\"{}\"", Self::MEDIA_TYPE, self.root_type);
        if let Some(start) = &self.start {
            check_id(start)?;
            header.push_str(&format!(";start=\"<{start}>\""));
        }
        // A boundary that is a token goes out bare (RFC 2045 allows both): belle-sip, the
        // stack of Linphone 5.1, looks for the quotes as part of the delimiter, fails to
        // split a quoted one, and linphonec then crashes on the NOTIFY.
        if is_token(&self.boundary) {
            header.push_str(&format!(";boundary={}", self.boundary));
        } else {
            header.push_str(&format!(";boundary=\"{}\"", self.boundary));
        }

        let mut ids = HashSet::new();
        let mut out = Vec::new();
        for (n, p) in self.parts.iter().enumerate() {
            let head = part_head(p, style).map_err(|e| invalid(format!("part {}: {e}", n + 1)))?;
            if let Some(id) = &p.content_id {
                if !ids.insert(id.as_str()) {
                    return Err(invalid(format!("two parts have the Content-ID <{id}>")));
                }
            }
            if starts_a_line(&head, &self.boundary) || starts_a_line(&p.body, &self.boundary) {
                return Err(invalid(format!(
                    "the boundary {:?} starts a line of part {}",
                    self.boundary,
                    n + 1
                )));
            }
            if n > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&head);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&p.body);
        }
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");

        let root = self.root().ok_or_else(|| {
            invalid(format!(
                "no part has the start Content-ID <{}>",
                self.start.as_deref().unwrap_or_default()
            ))
        })?;
        if !root.is(&self.root_type) {
            return Err(invalid(format!(
                "the root part is {:?}, not of the root type {:?}",
                clip(&root.content_type),
                clip(&self.root_type)
            )));
        }
        for (n, p) in self.parts.iter().enumerate() {
            if p.content_id.is_none() && !std::ptr::eq(p, root) {
                return Err(invalid(format!(
                    "part {} has no Content-ID (only the root may lack one)",
                    n + 1
                )));
            }
        }
        Ok((header, out))
    }
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("{DOC}: {what}"))
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{DOC}: {what}"))
}

/// `type/subtype` of a Content-Type value, if it parses.
fn media_essence(content_type: &str) -> Option<String> {
    ContentType::parse(content_type).ok().map(|c| c.essence())
}

/// Whether `s` is `type/subtype` and nothing else.
fn is_media_type(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(t, st)| is_token(t) && is_token(st))
}

/// RFC 2046 §5.1.1: 1 to 70 `bchars`, the last not a space.
fn check_boundary(b: &str) -> std::result::Result<(), String> {
    let bchar = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
    if b.is_empty() || b.len() > MAX_BOUNDARY_LEN {
        return Err(format!(
            "the boundary {:?} is not 1 to {MAX_BOUNDARY_LEN} characters long",
            clip(b)
        ));
    }
    if let Some(c) = b.bytes().find(|&c| !bchar(c)) {
        return Err(format!(
            "the boundary {:?} has the character {:?}, which RFC 2046 does not allow",
            clip(b),
            char::from(c)
        ));
    }
    if b.ends_with(' ') {
        return Err(format!("the boundary {b:?} ends with a space"));
    }
    Ok(())
}

/// The id inside `<...>`, if `s` is one (surrounding blanks allowed).
fn bracketed(s: &str) -> Option<&str> {
    let id = s.trim().strip_prefix('<')?.strip_suffix('>')?;
    is_id(id).then_some(id)
}

/// A Content-ID without its brackets: printable ASCII without spaces, `<`, `>`, `"`, `\`.
fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !matches!(b, b'<' | b'>' | b'"' | b'\\'))
}

fn check_id(id: &str) -> Result<()> {
    if is_id(id) {
        Ok(())
    } else {
        Err(invalid(format!(
            "the Content-ID {:?} is not an id (printable, no spaces, <, >, \" or \\)",
            clip(id)
        )))
    }
}

/// Whether a line of `text` (the first, or one after a LF) starts with `--boundary`.
pub(crate) fn starts_a_line(text: &[u8], boundary: &str) -> bool {
    let dash = [b"--", boundary.as_bytes()].concat();
    text.starts_with(&dash)
        || text
            .windows(dash.len() + 1)
            .any(|w| w[0] == b'\n' && w[1..] == dash[..])
}

/// The raw parts of `body`: the bytes between each delimiter line and the line break that
/// precedes the next delimiter.
fn split<'b>(body: &'b [u8], boundary: &str) -> Result<Vec<&'b [u8]>> {
    let dash = [b"--", boundary.as_bytes()].concat();
    // Every position where a line starts with `--boundary`.
    let mut at = Vec::new();
    if body.starts_with(&dash) {
        at.push(0);
    }
    let mut i = 0;
    while let Some(k) = find(&body[i..], b'\n') {
        let line = i + k + 1;
        if body[line..].starts_with(&dash) {
            at.push(line);
        }
        i = line;
    }
    if at.is_empty() {
        return Err(malformed(format!(
            "the boundary {boundary:?} does not occur in the body"
        )));
    }
    let mut parts = Vec::new();
    for (n, &start) in at.iter().enumerate() {
        let after = start + dash.len();
        let rest = &body[after..];
        let (close, rest) = match rest.strip_prefix(b"--") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        // Transport padding, then the end of the line (or, after the close delimiter, of
        // the body).
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let eol = match &rest[pad..] {
            [] if close => 0,
            [b'\n', ..] => 1,
            [b'\r', b'\n', ..] => 2,
            _ => {
                let line = &body[start..body.len().min(start + 80)];
                let line = line
                    .split(|&b| b == b'\r' || b == b'\n')
                    .next()
                    .unwrap_or(line);
                return Err(malformed(format!(
                    "the line {:?} starts with the boundary but is not a delimiter (a part \
                     must not contain a line starting with --{boundary})",
                    String::from_utf8_lossy(line)
                )));
            }
        };
        if close {
            if parts.is_empty() {
                return Err(malformed(
                    "the body has no parts before its close delimiter",
                ));
            }
            return Ok(parts);
        }
        let content = after + pad + eol;
        let Some(&next) = at.get(n + 1) else {
            return Err(malformed(format!(
                "the body ends without the close delimiter --{boundary}--"
            )));
        };
        // The line break before the next delimiter belongs to it.
        let mut end = next.saturating_sub(1);
        if end > 0 && body[end - 1] == b'\r' {
            end -= 1;
        }
        parts.push(&body[content.min(end)..end]);
    }
    unreachable!("the loop returns at the last delimiter")
}

fn find(hay: &[u8], b: u8) -> Option<usize> {
    hay.iter().position(|&x| x == b)
}

/// Reads one raw part (headers, empty line, body); `n` counts from 1 for messages.
fn parse_part(raw: &[u8], n: usize) -> Result<BodyPart> {
    let where_ = |what: String| malformed(format!("part {n}: {what}"));
    // The headers end at the first empty line; without one the part is headers only.
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else if raw.starts_with(b"\n") {
        (&raw[..0], &raw[1..])
    } else {
        let mut split_at = None;
        let mut i = 0;
        while let Some(k) = find(&raw[i..], b'\n') {
            let next = i + k + 1;
            let line_end = match raw.get(next) {
                Some(b'\n') => Some(next + 1),
                Some(b'\r') if raw.get(next + 1) == Some(&b'\n') => Some(next + 2),
                _ => None,
            };
            if let Some(body_start) = line_end {
                split_at = Some((next, body_start));
                break;
            }
            i = next;
        }
        match split_at {
            Some((h, b)) => (&raw[..h], &raw[b..]),
            None => (raw, &raw[raw.len()..]),
        }
    };
    let head =
        std::str::from_utf8(head).map_err(|_| where_("its headers are not UTF-8".to_owned()))?;

    // Unfold: a line starting with a space or tab continues the previous one.
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match lines.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(line.trim_start_matches([' ', '\t']));
                }
                None => {
                    return Err(where_(format!(
                        "the header block starts with a continuation line {:?}",
                        clip(line)
                    )))
                }
            }
        } else {
            if lines.len() == MAX_PART_HEADERS {
                return Err(Error::TooLarge(format!(
                    "{DOC}: part {n} has more than {MAX_PART_HEADERS} header lines"
                )));
            }
            lines.push(line.to_owned());
        }
    }

    let mut part = BodyPart {
        body: body.to_vec(),
        ..BodyPart::default()
    };
    let mut content_type = None;
    for line in &lines {
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(where_(format!(
                "the header line {:?} has a control character",
                clip(line)
            )));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            where_(format!(
                "the header line {:?} is not 'Name: value'",
                clip(line)
            ))
        })?;
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(where_(format!(
                "the header name {:?} is not a token",
                clip(name)
            )));
        }
        let value = value.trim_matches([' ', '\t']);
        let once = |slot: &Option<String>| {
            if slot.is_some() {
                Err(where_(format!("it has two {name} headers")))
            } else {
                Ok(())
            }
        };
        if name.eq_ignore_ascii_case("Content-Type") {
            once(&content_type)?;
            ContentType::parse(value).map_err(|e| where_(e.to_string()))?;
            content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("Content-ID") {
            once(&part.content_id)?;
            let id = bracketed(value)
                .or_else(|| is_id(value).then_some(value))
                .ok_or_else(|| {
                    where_(format!(
                        "the Content-ID {:?} is not an id (in angle brackets, or bare)",
                        clip(value)
                    ))
                })?;
            part.content_id = Some(id.to_owned());
        } else if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
            once(&part.transfer_encoding)?;
            if !is_token(value) {
                return Err(where_(format!(
                    "the Content-Transfer-Encoding {:?} is not a token",
                    clip(value)
                )));
            }
            if !["7bit", "8bit", "binary"]
                .iter()
                .any(|e| e.eq_ignore_ascii_case(value))
            {
                return Err(Error::Unsupported(format!(
                    "{DOC}: part {n}: the Content-Transfer-Encoding {value} (only 7bit, 8bit \
                     and binary bodies are read)"
                )));
            }
            part.transfer_encoding = Some(value.to_owned());
        } else {
            part.other_headers.push((name.to_owned(), value.to_owned()));
        }
    }
    part.content_type =
        content_type.ok_or_else(|| where_("it has no Content-Type header".to_owned()))?;
    Ok(part)
}

/// The header block of a part as `encode` writes it (each line with its CRLF), or what is
/// wrong with it.
fn part_head(p: &BodyPart, style: ContentIdStyle) -> std::result::Result<Vec<u8>, String> {
    let line_text = |s: &str| !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
    let mut head = String::new();
    if let Some(te) = &p.transfer_encoding {
        if !["7bit", "8bit", "binary"]
            .iter()
            .any(|e| e.eq_ignore_ascii_case(te))
        {
            return Err(format!(
                "the Content-Transfer-Encoding {:?} is not 7bit, 8bit or binary",
                clip(te)
            ));
        }
        head.push_str(&format!("Content-Transfer-Encoding: {te}\r\n"));
    }
    if let Some(id) = &p.content_id {
        if !is_id(id) {
            return Err(format!(
                "the Content-ID {:?} is not an id (printable, no spaces, <, >, \" or \\)",
                clip(id)
            ));
        }
        match style {
            ContentIdStyle::Standard => head.push_str(&format!("Content-ID: <{id}>\r\n")),
            ContentIdStyle::Bare => head.push_str(&format!("Content-Id: {id}\r\n")),
        }
    }
    let ct = p.content_type.trim_matches([' ', '\t']);
    if ct != p.content_type || !line_text(ct) || ContentType::parse(ct).is_err() {
        return Err(format!(
            "the Content-Type {:?} does not parse as written",
            clip(&p.content_type)
        ));
    }
    head.push_str(&format!("Content-Type: {ct}\r\n"));
    for (name, value) in &p.other_headers {
        let known = ["Content-Type", "Content-ID", "Content-Transfer-Encoding"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name));
        if !is_token(name) || known {
            return Err(format!(
                "{:?} is not the name of another header",
                clip(name)
            ));
        }
        if !line_text(value) || value.trim_matches([' ', '\t']) != value {
            return Err(format!(
                "the value {:?} of {name} has a line break, a control character or \
                 surrounding blanks",
                clip(value)
            ));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    Ok(head.into_bytes())
}

/// A boundary that starts no line of any part: `impp-` and 16 hex digits of a hash of the
/// parts' bytes, the hash taken again with a counter until a candidate fits (each part can
/// rule out only as many candidates as it has lines, so this ends).
fn pick_boundary(parts: &[BodyPart]) -> String {
    // FNV-1a, 64 bits: stable across runs and platforms (std's hasher is not).
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for &b in bytes {
            seed = (seed ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    for p in parts {
        mix(p.content_id.as_deref().unwrap_or_default().as_bytes());
        mix(p.content_type.as_bytes());
        mix(&p.body);
        mix(&[0xff]);
    }
    let mut counter: u64 = 0;
    loop {
        let mut h = seed;
        for b in counter.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        let candidate = format!("impp-{h:016x}");
        let dash = format!("--{candidate}");
        let clash = parts.iter().any(|p| {
            starts_a_line(&p.body, &candidate)
                || p.other_headers.iter().any(|(n, _)| n.starts_with(&dash))
        });
        if !clash {
            return candidate;
        }
        counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str =
        r#"multipart/related;type="application/rlmi+xml";start="<root@x>";boundary="b1""#;

    fn parse(ct: &str, body: &str) -> Result<MultipartRelated> {
        MultipartRelated::parse(ct, body.as_bytes(), &Limits::DEFAULT)
    }

    fn malformed(ct: &str, body: &str) -> String {
        match parse(ct, body) {
            Err(Error::Malformed(m)) => m,
            other => panic!("expected Malformed for {body:?}, got {other:?}"),
        }
    }

    fn two_parts(sep: &str) -> String {
        [
            "preamble, ignored",
            "--b1",
            "Content-Transfer-Encoding: binary",
            "Content-ID: <root@x>",
            "Content-Type: application/rlmi+xml;",
            "  charset=\"UTF-8\"",
            "",
            "<list/>",
            "--b1 \t",
            "content-id:<p1@x>",
            "CONTENT-TYPE: application/pidf+xml",
            "X-Note: kept",
            "",
            "line one",
            "line two with --b1 inside",
            "",
            "--b1--",
            "epilogue, ignored",
            "--b1",
        ]
        .join(sep)
    }

    #[test]
    fn parses_parts_with_crlf_or_lf() {
        for sep in ["\r\n", "\n"] {
            let m = parse(CT, &two_parts(sep)).unwrap();
            assert_eq!(m.root_type, "application/rlmi+xml");
            assert_eq!(m.start.as_deref(), Some("root@x"));
            assert_eq!(m.boundary, "b1");
            assert_eq!(m.parts.len(), 2);
            let root = m.root().unwrap();
            assert_eq!(root.content_type, "application/rlmi+xml; charset=\"UTF-8\"");
            assert_eq!(root.transfer_encoding.as_deref(), Some("binary"));
            assert_eq!(root.body, b"<list/>");
            let p1 = m.part("p1@x").unwrap();
            assert!(p1.is("application/PIDF+xml"));
            assert_eq!(p1.other_headers, [("X-Note".to_owned(), "kept".to_owned())]);
            let body = format!("line one{sep}line two with --b1 inside{sep}");
            assert_eq!(
                p1.body,
                body.as_bytes(),
                "the last line break belongs to the delimiter"
            );
            // Written again with CRLF, it reads back the same.
            let (ct, bytes) = m.encode().unwrap();
            let again = MultipartRelated::parse(&ct, &bytes, &Limits::DEFAULT).unwrap();
            assert_eq!(again, m);
        }
    }

    #[test]
    fn linphones_bare_content_ids_are_written_on_request_and_read_either_way() {
        let m = parse(CT, &two_parts("\r\n")).unwrap();
        let (ct, standard) = m.encode().unwrap();
        let (bare_ct, bare) = m.encode_with(ContentIdStyle::Bare).unwrap();
        assert_eq!(ct, bare_ct, "the start parameter keeps its brackets");
        let text = String::from_utf8(bare.clone()).unwrap();
        assert!(text.contains("\r\nContent-Id: root@x\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Id: p1@x\r\n"), "{text}");
        assert!(!text.contains("Content-ID"), "{text}");
        assert!(String::from_utf8(standard)
            .unwrap()
            .contains("\r\nContent-ID: <p1@x>\r\n"));
        // Both read back as the same body.
        assert_eq!(
            MultipartRelated::parse(&ct, &bare, &Limits::DEFAULT).unwrap(),
            m
        );
    }

    #[test]
    fn the_root_without_start_is_the_first_part() {
        let ct = r#"multipart/related; boundary=simple; type="application/rlmi+xml""#;
        let body = "--simple\r\nContent-Type: application/rlmi+xml\r\n\r\n<list/>\r\n--simple\r\nContent-ID: <a>\r\nContent-Type: text/plain\r\n\r\n\r\n--simple--";
        let m = parse(ct, body).unwrap();
        assert_eq!(m.start, None);
        assert_eq!(m.root().unwrap().content_id, None);
        assert_eq!(m.part("a").unwrap().body, b"");
        // A part with headers only (no empty line) has an empty body too.
        let body = "--simple\r\nContent-Type: application/rlmi+xml\r\n--simple--\r\n";
        assert_eq!(parse(ct, body).unwrap().parts[0].body, b"");
    }

    #[test]
    fn refuses_bad_content_types() {
        let body = two_parts("\r\n");
        let m = malformed("multipart/mixed;boundary=b1;type=\"a/b\"", &body);
        assert!(m.contains("multipart/mixed"), "{m}");
        let m = malformed(r#"multipart/related;type="application/rlmi+xml""#, &body);
        assert!(m.contains("no boundary"), "{m}");
        let m = malformed(r#"multipart/related;boundary=b1"#, &body);
        assert!(m.contains("no type parameter"), "{m}");
        let m = malformed(
            r#"multipart/related;type="application/rlmi+xml";start="root@x";boundary=b1"#,
            &body,
        );
        assert!(m.contains("angle brackets"), "{m}");
        let long = "x".repeat(71);
        let m = malformed(
            &format!("multipart/related;type=\"a/b\";boundary={long}"),
            &body,
        );
        assert!(m.contains("1 to 70"), "{m}");
        let m = malformed("multipart/related;type=\"a/b\";boundary=\"a b \"", &body);
        assert!(m.contains("ends with a space"), "{m}");
        let m = malformed("multipart/related;type=\"a/b\";boundary=\"a{b\"", &body);
        assert!(m.contains("'{'"), "{m}");
        let m = malformed("multipart", &body);
        assert!(m.contains("Content-Type"), "{m}");
    }

    #[test]
    fn refuses_bad_delimiters() {
        let wrong = CT.replace("b1", "b2");
        let m = malformed(&wrong, &two_parts("\r\n"));
        assert!(m.contains("does not occur"), "{m}");
        let m = malformed(
            CT,
            "--b1\r\nContent-ID: <root@x>\r\nContent-Type: application/rlmi+xml\r\n\r\n<list/>\r\n",
        );
        assert!(m.contains("close delimiter"), "{m}");
        let m = malformed(CT, "--b1\r\nContent-ID: <root@x>\r\nContent-Type: application/rlmi+xml\r\n\r\n--b1x\r\n--b1--");
        assert!(m.contains("not a delimiter") && m.contains("--b1x"), "{m}");
        let m = malformed(CT, "--b1--\r\n");
        assert!(m.contains("no parts"), "{m}");
        let m = malformed(CT, "--b1 x\r\n");
        assert!(m.contains("not a delimiter"), "{m}");
    }

    #[test]
    fn refuses_bad_parts() {
        let part = |headers: &str| {
            format!("--b1\r\nContent-ID: <root@x>\r\nContent-Type: application/rlmi+xml\r\n\r\n<list/>\r\n--b1\r\n{headers}\r\n\r\nbody\r\n--b1--\r\n")
        };
        let m = malformed(CT, &part("Content-ID: <p@x>"));
        assert!(m.contains("part 2") && m.contains("no Content-Type"), "{m}");
        let m = malformed(CT, &part("Content-Type: text/plain"));
        assert!(m.contains("part 2 has no Content-ID"), "{m}");
        let m = malformed(CT, &part("Content-ID: <p@x\r\nContent-Type: text/plain"));
        assert!(m.contains("angle brackets"), "{m}");
        let m = malformed(CT, &part("Content-ID: p x\r\nContent-Type: text/plain"));
        assert!(m.contains("not an id"), "{m}");
        let m = malformed(
            CT,
            &part("Content-ID: <root@x>\r\nContent-Type: text/plain"),
        );
        assert!(m.contains("two parts have the Content-ID <root@x>"), "{m}");
        let m = malformed(CT, &part("Content-ID: <p@x>\r\nContent-Type: text"));
        assert!(m.contains("part 2") && m.contains("Content-Type"), "{m}");
        let m = malformed(
            CT,
            &part("Content-ID: <p@x>\r\nContent-Type: a/b\r\nContent-Type: a/b"),
        );
        assert!(m.contains("two Content-Type headers"), "{m}");
        let m = malformed(
            CT,
            &part("Content-ID: <p@x>\r\nContent-Type: a/b\r\nno colon here"),
        );
        assert!(m.contains("not 'Name: value'"), "{m}");
        let m = malformed(
            CT,
            &part("Content-ID: <p@x>\r\nContent-Type: a/b\r\nBad Name: x"),
        );
        assert!(m.contains("not a token"), "{m}");
        let m = malformed(
            CT,
            &part(" folded: x\r\nContent-ID: <p@x>\r\nContent-Type: a/b"),
        );
        assert!(m.contains("continuation"), "{m}");
        let m = malformed(
            CT,
            &part("Content-ID: <p@x>\r\nContent-Type: a/b\r\nContent-Transfer-Encoding: 8 bit"),
        );
        assert!(m.contains("not a token"), "{m}");
        assert!(matches!(
            parse(CT, &part("Content-ID: <p@x>\r\nContent-Type: a/b\r\nContent-Transfer-Encoding: base64")),
            Err(Error::Unsupported(m)) if m.contains("base64")
        ));
        let mut headers = String::from("Content-ID: <p@x>\r\nContent-Type: a/b");
        for i in 0..MAX_PART_HEADERS {
            headers.push_str(&format!("\r\nX-{i}: y"));
        }
        assert!(matches!(
            parse(CT, &part(&headers)),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn refuses_a_missing_or_mistyped_root() {
        let body = "--b1\r\nContent-ID: <other@x>\r\nContent-Type: application/rlmi+xml\r\n\r\n<list/>\r\n--b1--\r\n";
        let m = malformed(CT, body);
        assert!(m.contains("start part <root@x> is missing"), "{m}");
        let body = "--b1\r\nContent-ID: <root@x>\r\nContent-Type: application/pidf+xml\r\n\r\n<p/>\r\n--b1--\r\n";
        let m = malformed(CT, body);
        assert!(m.contains("root part") && m.contains("pidf"), "{m}");
    }

    #[test]
    fn bounds_size_and_parts() {
        let body = two_parts("\r\n");
        let small = Limits {
            max_bytes: 50,
            ..Limits::DEFAULT
        };
        assert!(matches!(
            MultipartRelated::parse(CT, body.as_bytes(), &small),
            Err(Error::TooLarge(_))
        ));
        let ct = r#"multipart/related;type="text/plain";boundary=b"#;
        let mut many = String::new();
        for i in 0..=MAX_PARTS {
            many.push_str(&format!(
                "--b\r\nContent-ID: <{i}>\r\nContent-Type: text/plain\r\n\r\n\r\n"
            ));
        }
        many.push_str("--b--");
        assert!(matches!(parse(ct, &many), Err(Error::TooLarge(m)) if m.contains("parts")));
    }

    #[test]
    fn builds_with_a_boundary_that_no_part_contains() {
        let parts = vec![
            BodyPart::new("r@x", "application/rlmi+xml", &b"<list/>"[..]),
            BodyPart::new("p@x", "text/plain", &b"--impp-\r\nbinary \x00\xff"[..]),
        ];
        let m = MultipartRelated::new("application/rlmi+xml", Some("r@x".into()), parts.clone());
        assert!(m.boundary.starts_with("impp-") && m.boundary.len() == 21);
        assert_eq!(
            MultipartRelated::new("application/rlmi+xml", Some("r@x".into()), parts.clone()),
            m,
            "the same parts give the same body"
        );
        let (ct, body) = m.encode().unwrap();
        assert!(
            ct.starts_with(
                "multipart/related;type=\"application/rlmi+xml\";start=\"<r@x>\";boundary=impp-"
            ),
            "{ct}"
        );
        assert!(body.starts_with(b"--impp-"));
        assert!(body.ends_with(b"--\r\n"));
        assert_eq!(
            MultipartRelated::parse(&ct, &body, &Limits::DEFAULT).unwrap(),
            m
        );

        // A part that contains the first candidate as a line makes the builder pick another.
        let first = m.boundary.clone();
        let mut clash = parts.clone();
        clash[1].body = format!("x\n--{first}\n").into_bytes();
        let m2 = MultipartRelated::new("application/rlmi+xml", Some("r@x".into()), clash.clone());
        assert!(!starts_a_line(&clash[1].body, &m2.boundary));
        let (ct, body) = m2.encode().unwrap();
        assert_eq!(
            MultipartRelated::parse(&ct, &body, &Limits::DEFAULT).unwrap(),
            m2
        );
        // A header name may start with "--" (it is a token): only one that starts with
        // the candidate rules it out (found by fuzzing: any "--" name looped forever).
        let mut dashed = parts.clone();
        dashed[1].other_headers.push(("--x".into(), "y".into()));
        let m3 = MultipartRelated::new("application/rlmi+xml", Some("r@x".into()), dashed);
        let (ct, body) = m3.encode().unwrap();
        assert_eq!(
            MultipartRelated::parse(&ct, &body, &Limits::DEFAULT).unwrap(),
            m3
        );
        // A boundary set by hand that a part contains is refused.
        let mut bad = m2.clone();
        bad.boundary = first.clone();
        bad.parts[1].body = format!("--{first}").into_bytes();
        assert!(
            matches!(bad.encode(), Err(Error::InvalidArgument(m)) if m.contains("starts a line"))
        );
    }

    #[test]
    fn encode_refuses_what_would_not_read_back() {
        let good = MultipartRelated::new(
            "text/plain",
            Some("a".into()),
            vec![
                BodyPart::new("a", "text/plain", "x"),
                BodyPart::new("b", "text/plain", "y"),
            ],
        );
        good.encode().unwrap();
        let refused = |f: &dyn Fn(&mut MultipartRelated)| {
            let mut m = good.clone();
            f(&mut m);
            match m.encode() {
                Err(Error::InvalidArgument(msg)) => msg,
                other => panic!("{m:?} gave {other:?}"),
            }
        };
        assert!(refused(&|m| m.parts[1].content_id = Some("a".into())).contains("two parts"));
        assert!(refused(&|m| m.parts[1].content_id = Some("a b".into())).contains("not an id"));
        assert!(refused(&|m| m.parts[1].content_id = None).contains("no Content-ID"));
        assert!(refused(&|m| m.start = Some("zz".into())).contains("<zz>"));
        assert!(refused(&|m| m.start = Some("<a>".into())).contains("not an id"));
        assert!(refused(&|m| m.root_type = "text/html".into()).contains("root part"));
        assert!(refused(&|m| m.root_type = "text".into()).contains("media type"));
        assert!(refused(&|m| m.boundary = "a\"b".into()).contains("boundary"));
        assert!(
            refused(&|m| m.parts[0].content_type = "text/plain\r\nX: y".into())
                .contains("Content-Type")
        );
        assert!(
            refused(&|m| m.parts[0].content_type = " text/plain".into()).contains("Content-Type")
        );
        assert!(
            refused(&|m| m.parts[0].transfer_encoding = Some("base64".into())).contains("base64")
        );
        assert!(refused(&|m| m.parts[0]
            .other_headers
            .push(("Content-ID".into(), "<x>".into())))
        .contains("another header"));
        assert!(
            refused(&|m| m.parts[0].other_headers.push(("X".into(), "a\nb".into())))
                .contains("line break")
        );
        assert!(refused(&|m| m.parts.clear()).contains("parts"));
    }
}
