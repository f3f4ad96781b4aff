//! A strict, single-pass XML 1.0 + Namespaces 1.0 tokenizer for [`super::xml::Tree::parse`].
//!
//! It exists because presence documents are small and many: a general XML library spends
//! most of its time on generality (encodings, buffered readers, namespace maps), while a
//! presence server needs one pass over a UTF-8 string that checks well-formedness, resolves
//! every name to an interned namespace index and borrows everything it can from the input.
//!
//! What it refuses, and how:
//! - not well-formed input (names, quoting, nesting, references, characters that are not XML
//!   characters, misplaced declarations, truncation): [`Error::Malformed`] naming what and the
//!   byte offset;
//! - `<!DOCTYPE` and references to entities other than the five predefined ones:
//!   [`Error::UnsafeXml`], so no entity is ever declared, let alone expanded;
//! - namespace declarations that XML Namespaces 1.0 forbids, undeclared prefixes, and
//!   namespace URIs that could not be written back unchanged (`<`, `>`, control characters).
//!
//! Comments and processing instructions are checked and skipped; CDATA sections are text.
//! Line ends are normalised to LF in text, and attribute values are normalised as CDATA-type
//! attributes (XML 1.0 §3.3.3: each tab, LF, CR or CRLF becomes one space).
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::Display;

use crate::error::{Error, Result};

/// The namespace of `xml:lang` and friends, bound to the `xml` prefix by definition. It lives
/// here, with the tokenizer that binds the prefix, so that the tree (`doc::xml`, built on the
/// tokenizer) imports it and the tokenizer imports nothing from the tree.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Namespaces seen in nearly every document, interned without allocating; index 0 is "no
/// namespace" and index 1 is the XML namespace (the `xml` prefix).
pub(super) const PRESEEDED: &[&str] = &[
    "",
    XML_NS,
    crate::doc::ns::PIDF,
    crate::doc::ns::DATA_MODEL,
    crate::doc::ns::RPID,
    crate::doc::ns::CAPS,
    crate::doc::ns::WATCHERINFO,
    crate::doc::ns::FILTER,
    crate::doc::ns::DIALOG_INFO,
    crate::doc::ns::LOCATION_TYPE,
];

/// The namespace of `xmlns` itself, which no prefix may be bound to.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Most distinct namespaces one document may use (indices are `u16`, the limit is lower).
const MAX_NAMESPACES: usize = 256;

/// An attribute of a start tag, its name resolved (namespace declarations are not reported).
pub(super) struct Attr<'a> {
    /// Index into the namespace table (0: no namespace).
    pub(super) ns: u16,
    /// Length of the prefix in the qualified name (0: none); used while the tag is read.
    plen: u16,
    /// Byte offset of the qualified name; used for error messages.
    at: u32,
    /// Local name.
    pub(super) local: &'a str,
    /// Value, references expanded and whitespace normalised.
    pub(super) value: Cow<'a, str>,
}

/// What [`Lexer::next`] found.
pub(super) enum Event<'a> {
    /// A start tag (`empty` for `<x/>`, which has no matching [`Event::End`]); its attributes
    /// were appended to the vector passed to [`Lexer::next`].
    Start {
        ns: u16,
        local: &'a str,
        empty: bool,
    },
    /// The end tag of the innermost open element.
    End,
    /// Character data inside the root element (a run of text or one CDATA section).
    Text(Cow<'a, str>),
    /// End of a complete document.
    Eof,
}

// Byte classes, one table lookup per byte in every scanning loop.
/// An XML character on its own (not a C0 control other than tab, LF, CR; 0xEF needs a look).
const CHAR: u8 = 1;
/// Plain character data: no markup, reference, `]`, CR or 0xEF to look at.
const TEXT: u8 = 2;
/// Plain attribute value: as TEXT, but also not a quote, tab or LF (`]` is fine).
const ATTR: u8 = 4;
/// ASCII NameStartChar except `:`.
const NSTART: u8 = 8;
/// ASCII NameChar except `:`.
const NCHAR: u8 = 16;
/// XML whitespace.
const WS: u8 = 32;
/// `:`, for the fast scan of a qualified name.
const COLON: u8 = 64;

const fn byte_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let control = b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
        let mut c = 0;
        if !control && b != 0xEF {
            c |= CHAR;
            if !matches!(b, b'<' | b'&' | b']' | b'\r') {
                c |= TEXT;
            }
            if !matches!(b, b'<' | b'&' | b'"' | b'\'' | b'\t' | b'\n' | b'\r') {
                c |= ATTR;
            }
        }
        if b.is_ascii_alphabetic() || b == b'_' {
            c |= NSTART | NCHAR;
        }
        if b.is_ascii_digit() || b == b'-' || b == b'.' {
            c |= NCHAR;
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            c |= WS;
        }
        if b == b':' {
            c |= COLON;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = byte_classes();

#[inline(always)]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of the byte) the bytes of `x` below `n` (n <= 0x80). The lowest flag is
/// exact; above a flagged byte, the borrow may flag bytes that are not below `n`.
#[inline(always)]
fn below_flags(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO * n as u64) & !x & HI
}

/// Flags the bytes of `x` equal to `c`, exact up to and including the lowest flag.
#[inline(always)]
fn byte_flags(x: u64, c: u8) -> u64 {
    below_flags(x ^ (LO * c as u64), 1)
}

/// Whether some byte of `x` is below `n` (n <= 0x80); exact as a yes/no answer.
#[inline(always)]
pub(super) fn has_below(x: u64, n: u8) -> bool {
    below_flags(x, n) != 0
}

/// Whether some byte of `x` equals `c`.
#[inline(always)]
pub(super) fn has_byte(x: u64, c: u8) -> bool {
    byte_flags(x, c) != 0
}

/// End of the run of bytes of class `mask` (TEXT or ATTR) starting at `i`: eight bytes at a
/// time while eight remain, with a test that flags every byte that needs a look (and some
/// that do not, such as a space or LF): the lowest flag (exact, see [`below_flags`]) is where
/// the next look is. The last few bytes of the document go one by one.
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize, mask: u8) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let flags = if mask == TEXT {
            below_flags(x, 0x20)
                | byte_flags(x, b'<')
                | byte_flags(x, b'&')
                | byte_flags(x, b']')
                | byte_flags(x, 0xEF)
        } else {
            // Controls, then space to '\'' (both quotes and '&'), then '<' and 0xEF.
            below_flags(x, 0x20)
                | below_flags(x ^ (LO * 0x20), 8)
                | byte_flags(x, b'<')
                | byte_flags(x, 0xEF)
        };
        if flags == 0 {
            i += 8;
            continue;
        }
        i += (flags.trailing_zeros() / 8) as usize;
        if class(b[i]) & mask == 0 {
            return i;
        }
        i += 1;
    }
    while i < b.len() && class(b[i]) & mask != 0 {
        i += 1;
    }
    i
}

/// Whether `a` and `b` are the same bytes; inline, for the short names compared on every
/// end tag and prefix lookup: eight bytes at a time (the last word overlapping the one
/// before), four for names of four to seven bytes, one by one below that.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word8(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    }
    fn word4(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word8(a, i) != word8(b, i) {
                return false;
            }
            i += 8;
        }
        return word8(a, n - 8) == word8(b, n - 8);
    }
    if n >= 4 {
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// End of the run of ASCII NameChars (without `:`) starting at `i`.
/// Eight bytes at a time while eight remain (one bounds check per eight bytes).
#[inline(always)]
fn name_run(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        for (k, &c) in chunk.iter().enumerate() {
            if class(c) & NCHAR == 0 {
                return i + k;
            }
        }
        i += 8;
    }
    while i < b.len() && class(b[i]) & NCHAR != 0 {
        i += 1;
    }
    i
}

/// NameStartChar of XML 1.0 (fifth edition) without `:`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '_'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// NameChar of XML 1.0 (fifth edition) without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Whether `v` is a Char of XML 1.0.
fn is_xml_char(v: u32) -> bool {
    matches!(v, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Replaces CRLF and lone CR by LF.
fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// The tokenizer and namespace resolver over one document.
pub(super) struct Lexer<'a, 'd> {
    doc: &'d str,
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Where an XML declaration may start (0, or 3 after a byte order mark).
    decl_at: usize,
    /// Namespaces beyond [`PRESEEDED`]; index `PRESEEDED.len() + i`.
    extra_ns: Vec<Cow<'a, str>>,
    /// Open elements, each followed by the namespace bindings it declares.
    scope: Vec<Scope<'a>>,
    /// Index in `scope` of the innermost open element (`NO_ELEMENT` if none).
    top: u32,
    /// Number of open elements.
    depth: u32,
    seen_root: bool,
    /// The default namespace in scope (what `resolve("")` gives).
    default_ns: u16,
    /// The last prefix resolved and its namespace, while no binding was added or removed.
    last_prefix: &'a str,
    last_ns: u16,
}

/// An open element (`ns == OPEN`, `name` its qualified name, `prev` the enclosing element's
/// index in the scope, `outer_default` the default namespace outside it) or a prefix binding
/// (`name` the prefix, "" for the default namespace).
struct Scope<'a> {
    name: &'a str,
    ns: u16,
    outer_default: u16,
    prev: u32,
}

const OPEN: u16 = u16::MAX;
const NO_ELEMENT: u32 = u32::MAX;

/// The XML declaration almost every document starts with, recognised in one comparison.
const USUAL_DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

impl<'a, 'd> Lexer<'a, 'd> {
    /// A lexer over `src`, the document named `doc` in error messages.
    pub(super) fn new(doc: &'d str, src: &'a str) -> Self {
        let decl_at = if src.starts_with('\u{FEFF}') { 3 } else { 0 };
        Lexer {
            doc,
            src,
            b: src.as_bytes(),
            pos: decl_at,
            decl_at,
            extra_ns: Vec::new(),
            scope: Vec::with_capacity(24),
            top: NO_ELEMENT,
            depth: 0,
            seen_root: false,
            default_ns: 0,
            last_prefix: "",
            last_ns: 0,
        }
    }

    /// The namespaces the document declared beyond [`PRESEEDED`], in index order.
    pub(super) fn into_extra_namespaces(self) -> Vec<Cow<'a, str>> {
        self.extra_ns
    }

    fn err(&self, at: usize, what: impl Display) -> Error {
        Error::malformed(self.doc, format_args!("{what} at byte {at}"))
    }

    fn truncated(&self, inside: impl Display) -> Error {
        Error::malformed(
            self.doc,
            format_args!(
                "document truncated inside {inside} (at byte {})",
                self.b.len()
            ),
        )
    }

    /// Error for a byte that failed its class check: a control character or U+FFFE/U+FFFF.
    fn bad_char(&self, i: usize) -> Error {
        match self.src.get(i..).and_then(|s| s.chars().next()) {
            Some(c) => self.err(
                i,
                format_args!("character U+{:04X} is not allowed in XML", c as u32),
            ),
            None => self.err(i, "invalid character"),
        }
    }

    /// Checks the byte at `i` that is 0xEF: the lead byte of U+FFFE and U+FFFF.
    #[inline]
    fn check_ef(&self, i: usize) -> Result<()> {
        if self.b.get(i + 1) == Some(&0xBF) && matches!(self.b.get(i + 2), Some(0xBE | 0xBF)) {
            return Err(self.bad_char(i));
        }
        Ok(())
    }

    /// Checks that `start..end` holds only XML characters.
    fn check_chars(&self, start: usize, end: usize) -> Result<()> {
        for i in start..end {
            let b = self.b[i];
            if class(b) & CHAR == 0 {
                if b == 0xEF {
                    self.check_ef(i)?;
                } else {
                    return Err(self.bad_char(i));
                }
            }
        }
        Ok(())
    }

    /// Skips whitespace; returns whether there was any.
    #[inline]
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.b.len() && class(self.b[self.pos]) & WS != 0 {
            self.pos += 1;
        }
        self.pos != start
    }

    fn char_at(&self, i: usize) -> char {
        self.src[i..].chars().next().unwrap_or('\0')
    }

    /// End of the NCName starting at `i`, or `None` if no NameStartChar is there.
    #[inline]
    fn ncname_end(&self, mut i: usize) -> Option<usize> {
        let b = self.b;
        match b.get(i) {
            Some(&c) if class(c) & NSTART != 0 => i += 1,
            Some(&c) if c >= 0x80 => {
                let ch = self.char_at(i);
                if !is_name_start(ch) {
                    return None;
                }
                i += ch.len_utf8();
            }
            _ => return None,
        }
        loop {
            while i < b.len() && class(b[i]) & NCHAR != 0 {
                i += 1;
            }
            if i < b.len() && b[i] >= 0x80 {
                let ch = self.char_at(i);
                if is_name_char(ch) {
                    i += ch.len_utf8();
                    continue;
                }
            }
            return Some(i);
        }
    }

    /// Reads a qualified name at `pos`: returns (prefix length, or 0, and the whole name).
    #[inline(always)]
    fn qname(&mut self, what: &str) -> Result<(usize, &'a str)> {
        let b = self.b;
        let start = self.pos;
        // ASCII fast path: NCName, optionally `:` and another NCName, followed by an ASCII
        // byte that is not `:`; everything else (non-ASCII names, errors) goes the slow way.
        if start < b.len() && class(b[start]) & NSTART != 0 {
            let mut i = name_run(b, start + 1);
            let mut plen = 0;
            if i < b.len() && b[i] == b':' {
                plen = i - start;
                i += 1;
                if i == b.len() || class(b[i]) & NSTART == 0 {
                    return self.qname_slow(what);
                }
                i = name_run(b, i + 1);
            }
            if i == b.len() || (b[i] < 0x80 && b[i] != b':') {
                self.pos = i;
                return Ok((plen, &self.src[start..i]));
            }
        }
        self.qname_slow(what)
    }

    /// [`Lexer::qname`] for names with non-ASCII characters, and the errors.
    #[cold]
    fn qname_slow(&mut self, what: &str) -> Result<(usize, &'a str)> {
        let start = self.pos;
        let Some(end) = self.ncname_end(start) else {
            return Err(match self.b.get(start) {
                None => self.truncated(format_args!("{what} name")),
                Some(_) => self.err(
                    start,
                    format_args!("expected {what} name, found '{}'", self.char_at(start)),
                ),
            });
        };
        let mut plen = 0;
        let mut end = end;
        if self.b.get(end) == Some(&b':') {
            plen = end - start;
            end = match self.ncname_end(end + 1) {
                Some(e) => e,
                None => {
                    return Err(self.err(
                        end,
                        format_args!(
                            "{what} name '{}:' lacks a local part",
                            &self.src[start..end]
                        ),
                    ))
                }
            };
            if self.b.get(end) == Some(&b':') {
                return Err(self.err(
                    start,
                    format_args!(
                        "{what} name '{}:' has more than one colon",
                        &self.src[start..end]
                    ),
                ));
            }
        }
        self.pos = end;
        Ok((plen, &self.src[start..end]))
    }

    /// Expands the reference at `amp` (`&...;`): returns the character and the index after `;`.
    fn reference(&self, amp: usize) -> Result<(char, usize)> {
        let b = self.b;
        let mut i = amp + 1;
        if b.get(i) == Some(&b'#') {
            i += 1;
            let hex = b.get(i) == Some(&b'x');
            if hex {
                i += 1;
            }
            let digits = i;
            let mut v: u32 = 0;
            while let Some(&d) = b.get(i) {
                let dv = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' if hex => d - b'a' + 10,
                    b'A'..=b'F' if hex => d - b'A' + 10,
                    _ => break,
                };
                v = v
                    .saturating_mul(if hex { 16 } else { 10 })
                    .saturating_add(dv.into());
                i += 1;
            }
            if i == digits || b.get(i) != Some(&b';') {
                return Err(self.err(amp, "malformed character reference"));
            }
            return match char::from_u32(v).filter(|_| is_xml_char(v)) {
                Some(c) => Ok((c, i + 1)),
                None => Err(self.err(
                    amp,
                    format_args!(
                        "character reference '{}' is not an XML character",
                        &self.src[amp..=i]
                    ),
                )),
            };
        }
        match self.ncname_end(i) {
            Some(end) if b.get(end) == Some(&b';') => {
                let name = &self.src[i..end];
                match predefined_entity(name) {
                    Some(c) => Ok((c, end + 1)),
                    None => Err(Error::UnsafeXml(format!(
                        "{}: reference to undeclared entity '&{name};' at byte {amp} (only the \
                         predefined entities are expanded)",
                        self.doc
                    ))),
                }
            }
            _ => Err(self.err(amp, "'&' is not the start of a reference (write '&amp;')")),
        }
    }

    /// The next event.
    #[inline(always)]
    pub(super) fn next(&mut self, attrs: &mut Vec<Attr<'a>>) -> Result<Event<'a>> {
        loop {
            if self.depth == 0 {
                self.skip_ws();
                match self.b.get(self.pos) {
                    None if self.seen_root => return Ok(Event::Eof),
                    None => return Err(Error::malformed(self.doc, "no root element")),
                    Some(b'<') => {}
                    Some(_) => return Err(self.err(self.pos, "text outside the root element")),
                }
            } else {
                match self.b.get(self.pos) {
                    Some(b'<') => {}
                    Some(_) => {
                        // Indentation (spaces, tabs, LFs up to the next tag) is the most
                        // common text of all: taken here without the general text scan.
                        let (b, start) = (self.b, self.pos);
                        let mut i = start;
                        while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\t') {
                            i += 1;
                        }
                        if i > start && b.get(i) == Some(&b'<') {
                            self.pos = i;
                            return Ok(Event::Text(Cow::Borrowed(&self.src[start..i])));
                        }
                        return self.text().map(Event::Text);
                    }
                    None => {
                        let name = self.scope[self.top as usize].name;
                        return Err(Error::malformed(
                            self.doc,
                            format_args!("document truncated: <{name}> is not closed"),
                        ));
                    }
                }
            }
            match self.b.get(self.pos + 1) {
                Some(b'/') => return self.end_tag(),
                Some(b'?') => self.pi()?,
                Some(b'!') => {
                    if let Some(text) = self.bang()? {
                        return Ok(Event::Text(text));
                    }
                }
                _ => return self.start_tag(attrs),
            }
        }
    }

    /// Character data up to the next `<` (or the end), references expanded, CR normalised.
    #[inline(always)]
    fn text(&mut self) -> Result<Cow<'a, str>> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            i = plain_end(b, i, TEXT);
            match b.get(i) {
                None | Some(b'<') => break,
                Some(b']') => {
                    if b.get(i + 1) == Some(&b']') && b.get(i + 2) == Some(&b'>') {
                        return Err(self.err(i, "']]>' is not allowed in text"));
                    }
                    i += 1;
                }
                Some(0xEF) => {
                    self.check_ef(i)?;
                    i += 1;
                }
                Some(b'&') => {
                    let s = out.get_or_insert_with(|| String::with_capacity(i - start + 16));
                    s.push_str(&self.src[run..i]);
                    let (c, next) = self.reference(i)?;
                    s.push(c);
                    i = next;
                    run = i;
                }
                Some(b'\r') => {
                    let s = out.get_or_insert_with(|| String::with_capacity(i - start + 16));
                    s.push_str(&self.src[run..i]);
                    s.push('\n');
                    i += 1;
                    if b.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                    run = i;
                }
                Some(_) => return Err(self.bad_char(i)),
            }
        }
        self.pos = i;
        Ok(match out {
            None => Cow::Borrowed(&self.src[start..i]),
            Some(mut s) => {
                s.push_str(&self.src[run..i]);
                Cow::Owned(s)
            }
        })
    }

    /// A quoted attribute value at `pos`, references expanded and whitespace normalised.
    #[inline(always)]
    fn attr_value(&mut self) -> Result<Cow<'a, str>> {
        let b = self.b;
        let quote = match b.get(self.pos) {
            Some(&q @ (b'"' | b'\'')) => q,
            Some(_) => return Err(self.err(self.pos, "attribute value is not quoted")),
            None => return Err(self.truncated("a start tag")),
        };
        let start = self.pos + 1;
        let mut i = start;
        let mut out: Option<String> = None;
        let mut run = start;
        loop {
            i = plain_end(b, i, ATTR);
            let Some(&c) = b.get(i) else {
                return Err(self.truncated("an attribute value"));
            };
            match c {
                _ if c == quote => break,
                b'"' | b'\'' => i += 1,
                0xEF => {
                    self.check_ef(i)?;
                    i += 1;
                }
                b'<' => return Err(self.err(i, "'<' is not allowed in an attribute value")),
                b'&' => {
                    let s = out.get_or_insert_with(|| String::with_capacity(i - start + 16));
                    s.push_str(&self.src[run..i]);
                    let (c, next) = self.reference(i)?;
                    s.push(c);
                    i = next;
                    run = i;
                }
                b'\t' | b'\n' | b'\r' => {
                    let s = out.get_or_insert_with(|| String::with_capacity(i - start + 16));
                    s.push_str(&self.src[run..i]);
                    s.push(' ');
                    i += 1;
                    if c == b'\r' && b.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                    run = i;
                }
                _ => return Err(self.bad_char(i)),
            }
        }
        self.pos = i + 1;
        Ok(match out {
            None => Cow::Borrowed(&self.src[start..i]),
            Some(mut s) => {
                s.push_str(&self.src[run..i]);
                Cow::Owned(s)
            }
        })
    }

    /// The namespace index of `prefix` ("" for the default namespace of an element).
    #[inline(always)]
    fn resolve(&mut self, prefix: &'a str, at: usize) -> Result<u16> {
        if prefix.is_empty() {
            return Ok(self.default_ns);
        }
        if same_bytes(self.last_prefix.as_bytes(), prefix.as_bytes()) {
            return Ok(self.last_ns);
        }
        // `xml` is bound to the XML namespace (index 1) and can be bound to nothing else.
        if prefix == "xml" {
            return Ok(1);
        }
        self.resolve_prefix(prefix, at)
    }

    /// [`Lexer::resolve`] for a prefix other than the last one: a look through the scope.
    fn resolve_prefix(&mut self, prefix: &'a str, at: usize) -> Result<u16> {
        let ns = match self
            .scope
            .iter()
            .rev()
            .find(|s| s.ns != OPEN && same_bytes(s.name.as_bytes(), prefix.as_bytes()))
        {
            Some(s) => s.ns,
            None if prefix == "xml" => 1,
            None => return Err(self.err(at, format_args!("prefix '{prefix}' is not declared"))),
        };
        self.last_prefix = prefix;
        self.last_ns = ns;
        Ok(ns)
    }

    /// Records `xmlns:prefix="uri"` (`prefix` "" for `xmlns="uri"`) for the element being read,
    /// whose bindings start at `mark` in the scope.
    fn declare(
        &mut self,
        prefix: &'a str,
        uri: Cow<'a, str>,
        mark: usize,
        at: usize,
    ) -> Result<()> {
        if self.scope[mark..].iter().any(|s| s.name == prefix) {
            return Err(self.err(
                at,
                format_args!("attribute '{}' repeated", self.qname_at(at)),
            ));
        }
        let ns = match PRESEEDED.iter().position(|n| **n == *uri) {
            Some(i) => i as u16,
            None => match self.extra_ns.iter().position(|n| *n == uri) {
                Some(i) => (PRESEEDED.len() + i) as u16,
                None => self.new_namespace(uri, at)?,
            },
        };
        if (prefix == "xml") != (ns == 1) {
            return Err(self.err(
                at,
                format_args!(
                    "the prefix 'xml' is bound to '{XML_NS}' only, and no other prefix is"
                ),
            ));
        }
        if ns == 0 && !prefix.is_empty() {
            return Err(self.err(
                at,
                format_args!(
                    "xmlns:{prefix}=\"\": a prefix cannot be undeclared in XML Namespaces 1.0"
                ),
            ));
        }
        if prefix == "xmlns" {
            return Err(self.err(at, "the prefix 'xmlns' cannot be declared"));
        }
        self.scope.push(Scope {
            name: prefix,
            ns,
            outer_default: 0,
            prev: 0,
        });
        if prefix.is_empty() {
            self.default_ns = ns;
        } else {
            self.last_prefix = "";
        }
        Ok(())
    }

    /// Interns a namespace name not seen before, refusing those that could not be written
    /// back unchanged or that XML Namespaces 1.0 reserves.
    #[cold]
    fn new_namespace(&mut self, uri: Cow<'a, str>, at: usize) -> Result<u16> {
        if let Some(&c) = uri
            .as_bytes()
            .iter()
            .find(|&&c| c < b' ' || c == b'<' || c == b'>')
        {
            return Err(self.err(
                at,
                format_args!("namespace name contains U+{c:04X}, which is refused"),
            ));
        }
        if uri == XMLNS_NS {
            return Err(self.err(at, format_args!("'{XMLNS_NS}' cannot be bound to a prefix")));
        }
        if PRESEEDED.len() + self.extra_ns.len() >= MAX_NAMESPACES {
            return Err(Error::TooLarge(format!(
                "{}: more than {MAX_NAMESPACES} namespaces",
                self.doc
            )));
        }
        self.extra_ns.push(uri);
        Ok((PRESEEDED.len() + self.extra_ns.len() - 1) as u16)
    }

    /// The qualified name that starts at `at` (for messages).
    fn qname_at(&self, at: usize) -> &'a str {
        let mut end = at;
        while end < self.b.len()
            && !matches!(self.b[end], b'=' | b'>' | b'/')
            && class(self.b[end]) & WS == 0
        {
            end += 1;
        }
        &self.src[at..end]
    }

    /// A start tag at `pos` (`<` then a name).
    #[inline(always)]
    fn start_tag(&mut self, attrs: &mut Vec<Attr<'a>>) -> Result<Event<'a>> {
        let lt = self.pos;
        if self.depth == 0 {
            if self.seen_root {
                return Err(self.err(lt, "more than one root element"));
            }
            self.seen_root = true;
        }
        self.pos += 1;
        let (eplen, qname) = self.qname("an element")?;
        self.scope.push(Scope {
            name: qname,
            ns: OPEN,
            outer_default: self.default_ns,
            prev: self.top,
        });
        let mark = self.scope.len();
        let first = attrs.len();
        let empty = loop {
            let ws = self.skip_ws();
            match self.b.get(self.pos) {
                Some(b'>') => {
                    self.pos += 1;
                    break false;
                }
                Some(b'/') => {
                    if self.b.get(self.pos + 1) == Some(&b'>') {
                        self.pos += 2;
                        break true;
                    }
                    return Err(self.err(self.pos, format_args!("expected '/>' in <{qname}>")));
                }
                Some(_) if !ws => {
                    return Err(self.err(
                        self.pos,
                        format_args!("expected whitespace, '>' or '/>' in <{qname}>"),
                    ))
                }
                Some(_) => {}
                None => return Err(self.truncated(format_args!("the start tag <{qname}>"))),
            }
            let at = self.pos;
            let (plen, aname) = self.qname("an attribute")?;
            // Usually `name="value"`: whitespace around '=' is looked for only when needed.
            if self.b.get(self.pos) != Some(&b'=') {
                self.skip_ws();
            }
            if self.b.get(self.pos) != Some(&b'=') {
                if self.pos == self.b.len() {
                    return Err(self.truncated(format_args!("the start tag <{qname}>")));
                }
                return Err(self.err(
                    self.pos,
                    format_args!("expected '=' after the attribute name '{aname}'"),
                ));
            }
            self.pos += 1;
            if !matches!(self.b.get(self.pos), Some(b'"' | b'\'')) {
                self.skip_ws();
            }
            let value = self.attr_value()?;
            if plen == 0 && aname == "xmlns" {
                self.declare("", value, mark, at)?;
            } else if plen == 5 && aname.starts_with("xmlns") {
                self.declare(&aname[6..], value, mark, at)?;
            } else {
                attrs.push(Attr {
                    ns: 0,
                    plen: plen as u16,
                    at: at as u32,
                    local: if plen == 0 { aname } else { &aname[plen + 1..] },
                    value,
                });
            }
        };
        let ns = self.resolve(&qname[..eplen], lt + 1)?;
        for k in first..attrs.len() {
            let (plen, at) = (attrs[k].plen as usize, attrs[k].at as usize);
            if plen != 0 {
                let src = self.src;
                attrs[k].ns = self.resolve(&src[at..at + plen], at)?;
            }
            let (ns, local) = (attrs[k].ns, attrs[k].local);
            if attrs[first..k]
                .iter()
                .any(|a| a.ns == ns && a.local == local)
            {
                return Err(self.err(
                    at,
                    format_args!("attribute '{}' repeated", self.qname_at(at)),
                ));
            }
        }
        if empty {
            self.default_ns = self.scope[mark - 1].outer_default;
            if self.scope.len() > mark {
                self.last_prefix = "";
            }
            self.scope.truncate(mark - 1);
        } else {
            self.top = (mark - 1) as u32;
            self.depth += 1;
        }
        let local = if eplen == 0 {
            qname
        } else {
            &qname[eplen + 1..]
        };
        Ok(Event::Start { ns, local, empty })
    }

    /// An end tag at `pos` (`</`).
    #[inline(always)]
    fn end_tag(&mut self) -> Result<Event<'a>> {
        let lt = self.pos;
        self.pos += 2;
        if self.depth == 0 {
            return Err(self.err(lt, "end tag outside the root element"));
        }
        let top = self.top as usize;
        let (open, prev) = (self.scope[top].name, self.scope[top].prev);
        let rest = &self.b[self.pos..];
        let same = rest.len() > open.len()
            && same_bytes(&rest[..open.len()], open.as_bytes())
            && (rest[open.len()] == b'>' || class(rest[open.len()]) & WS != 0);
        if !same {
            let (_, name) = self.qname("an end tag")?;
            return Err(self.err(
                lt,
                format_args!("end tag </{name}> does not match <{open}>"),
            ));
        }
        self.pos += open.len();
        self.skip_ws();
        match self.b.get(self.pos) {
            Some(b'>') => self.pos += 1,
            Some(_) => {
                return Err(self.err(self.pos, format_args!("expected '>' to end </{open}>")))
            }
            None => return Err(self.truncated(format_args!("the end tag </{open}>"))),
        }
        self.default_ns = self.scope[top].outer_default;
        if self.scope.len() > top + 1 {
            self.last_prefix = "";
        }
        self.scope.truncate(top);
        self.top = prev;
        self.depth -= 1;
        Ok(Event::End)
    }

    /// A processing instruction (or the XML declaration) at `pos` (`<?`): checked, skipped.
    fn pi(&mut self) -> Result<()> {
        let lt = self.pos;
        if lt == self.decl_at && self.b[lt..].starts_with(USUAL_DECL) {
            self.pos = lt + USUAL_DECL.len();
            return Ok(());
        }
        self.pos += 2;
        let Some(end) = self.ncname_end(self.pos) else {
            return Err(self.err(self.pos, "expected a processing instruction target"));
        };
        let target = &self.src[self.pos..end];
        if self.b.get(end) == Some(&b':') {
            return Err(self.err(end, "a processing instruction target cannot contain ':'"));
        }
        self.pos = end;
        if target.eq_ignore_ascii_case("xml") {
            if lt == self.decl_at && target == "xml" {
                if self.b[lt..].starts_with(USUAL_DECL) {
                    self.pos = lt + USUAL_DECL.len();
                    return Ok(());
                }
                return self.xml_decl();
            }
            return Err(self.err(
                lt,
                format_args!(
                    "'<?{target}' is reserved: the XML declaration is only allowed at the very start"
                ),
            ));
        }
        if !self.skip_ws() && !self.b[self.pos..].starts_with(b"?>") {
            return match self.b.get(self.pos) {
                None => Err(self.truncated("a processing instruction")),
                Some(_) => Err(self.err(self.pos, "expected whitespace after the PI target")),
            };
        }
        let Some(close) = find(self.b, self.pos, b"?>") else {
            return Err(self.truncated("a processing instruction"));
        };
        self.check_chars(self.pos, close)?;
        self.pos = close + 2;
        Ok(())
    }

    /// The XML declaration, `pos` just after `<?xml`.
    fn xml_decl(&mut self) -> Result<()> {
        // 0: nothing yet, 1: version, 2: encoding, 3: standalone.
        let mut seen = 0;
        loop {
            let ws = self.skip_ws();
            let rest = &self.b[self.pos..];
            if rest.starts_with(b"?>") {
                self.pos += 2;
                break;
            }
            if rest.is_empty() {
                return Err(self.truncated("the XML declaration"));
            }
            if !ws {
                return Err(self.err(self.pos, "expected whitespace in the XML declaration"));
            }
            let start = self.pos;
            while self.pos < self.b.len() && self.b[self.pos].is_ascii_lowercase() {
                self.pos += 1;
            }
            let name = &self.src[start..self.pos];
            self.skip_ws();
            if self.b.get(self.pos) != Some(&b'=') {
                return Err(self.err(self.pos, "expected '=' in the XML declaration"));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = match self.b.get(self.pos) {
                Some(&q @ (b'"' | b'\'')) => q,
                Some(_) => return Err(self.err(self.pos, "unquoted value in the XML declaration")),
                None => return Err(self.truncated("the XML declaration")),
            };
            let vstart = self.pos + 1;
            let Some(vlen) = self.b[vstart..].iter().position(|&c| c == quote) else {
                return Err(self.truncated("the XML declaration"));
            };
            let value = &self.src[vstart..vstart + vlen];
            self.pos = vstart + vlen + 1;
            match (name, seen) {
                ("version", 0) => {
                    if value != "1.0" {
                        return Err(self.err(
                            vstart,
                            format_args!("XML version '{value}' is not supported (1.0 only)"),
                        ));
                    }
                    seen = 1;
                }
                ("encoding", 1) => {
                    // Asterisk (chan_sip, and res_pjsip for eyeBeam) declares ISO-8859-1 on
                    // documents it writes in ASCII: ASCII reads the same in all three, so such
                    // a document is accepted. With other bytes it would read differently.
                    let ascii_alias = ["iso-8859-1", "latin1", "us-ascii", "ascii"]
                        .iter()
                        .any(|a| value.eq_ignore_ascii_case(a));
                    let readable =
                        value.eq_ignore_ascii_case("utf-8") || (ascii_alias && self.b.is_ascii());
                    if !readable {
                        let why = if ascii_alias {
                            "UTF-8, or ASCII text under this declaration"
                        } else {
                            "UTF-8 only"
                        };
                        return Err(self.err(
                            vstart,
                            format_args!("encoding '{value}' is not supported ({why})"),
                        ));
                    }
                    seen = 2;
                }
                ("standalone", 1 | 2) => {
                    if value != "yes" && value != "no" {
                        return Err(self.err(vstart, "standalone must be 'yes' or 'no'"));
                    }
                    seen = 3;
                }
                _ => {
                    return Err(self.err(
                        start,
                        format_args!("unexpected '{name}' in the XML declaration"),
                    ))
                }
            }
        }
        if seen == 0 {
            return Err(self.err(self.decl_at, "the XML declaration lacks the version"));
        }
        Ok(())
    }

    /// Markup starting `<!` at `pos`: a comment (skipped, `None`), a CDATA section (its text)
    /// or a refused declaration.
    fn bang(&mut self) -> Result<Option<Cow<'a, str>>> {
        let lt = self.pos;
        let rest = &self.b[lt..];
        if rest.starts_with(b"<!--") {
            let start = lt + 4;
            let Some(dashes) = find(self.b, start, b"--") else {
                return Err(self.truncated("a comment"));
            };
            match self.b.get(dashes + 2) {
                Some(b'>') => {}
                Some(_) => return Err(self.err(dashes, "'--' is not allowed inside a comment")),
                None => return Err(self.truncated("a comment")),
            }
            self.check_chars(start, dashes)?;
            self.pos = dashes + 3;
            return Ok(None);
        }
        if rest.starts_with(b"<![CDATA[") {
            if self.depth == 0 {
                return Err(self.err(lt, "CDATA outside the root element"));
            }
            let start = lt + 9;
            let Some(end) = find(self.b, start, b"]]>") else {
                return Err(self.truncated("a CDATA section"));
            };
            self.check_chars(start, end)?;
            self.pos = end + 3;
            let text = &self.src[start..end];
            return Ok(Some(if text.contains('\r') {
                Cow::Owned(normalize_newlines(text))
            } else {
                Cow::Borrowed(text)
            }));
        }
        if rest.starts_with(b"<!DOCTYPE") {
            return Err(Error::UnsafeXml(format!(
                "{}: DOCTYPE declarations (and the entities they declare) are not accepted \
                 (at byte {lt})",
                self.doc
            )));
        }
        Err(self.err(lt, "'<!' starts neither a comment nor a CDATA section"))
    }
}

#[cfg(test)]
mod tests {
    use super::{class, plain_end, same_bytes, ATTR, TEXT};

    #[test]
    fn word_helpers_agree_with_byte_loops() {
        for n in 0..24usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
            for at in 0..n {
                let mut b = a.clone();
                b[at] = b'-';
                assert!(!same_bytes(&a, &b), "{n} {at}");
            }
        }
        let mut state: u32 = 7;
        let pieces: &[u8] = b"ab \t\n\r<&]\"'=\xEF\x01x";
        for _ in 0..3000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (state >> 16) as usize % 40;
            // One special byte in `every` on average: short and long plain runs.
            let every = 2 + (state >> 8) as usize % 16;
            let doc: Vec<u8> = (0..len)
                .map(|k| {
                    let r = state.rotate_left(k as u32 * 5) as usize;
                    if r % every == 0 {
                        pieces[(r >> 3) % pieces.len()]
                    } else {
                        b'a'
                    }
                })
                .collect();
            for mask in [TEXT, ATTR] {
                for start in 0..doc.len() {
                    let mut end = start;
                    while end < doc.len() && class(doc[end]) & mask != 0 {
                        end += 1;
                    }
                    assert_eq!(plain_end(&doc, start, mask), end, "{doc:?} {start}");
                }
            }
        }
    }
}
