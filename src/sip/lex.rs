//! Lexical pieces of the SIP grammar (RFC 3261 §25.1) shared by the header parsers: tokens,
//! quoted strings, parameters (and the [`Params`] they parse into) and comma-separated lists.
//!
//! Header values reach these functions already unfolded (a folded line break is two spaces),
//! trimmed, free of control characters other than HTAB, and valid UTF-8.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::Display;

use crate::error::{Error, Result};

/// One `;name[=value]` parameter; a quoted value is unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as written.
    pub name: &'a str,
    /// The value, if there was an `=`.
    pub value: Option<Cow<'a, str>>,
}

/// The parameters of a header value, in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'a>(Vec<Param<'a>>);

impl<'a> Params<'a> {
    pub(crate) fn from_vec(v: Vec<Param<'a>>) -> Self {
        Params(v)
    }

    /// `None` if absent, `Some(None)` if present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of `name`, if present with a value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// Whether `name` is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All parameters in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Param<'a>> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A byte class as a lookup table: ASCII alphanumerics plus `extra`.
const fn class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

static TOKEN: [bool; 256] = class(b"-.!%*_+`'~");
static VALUE: [bool; 256] = class(b"-.!%*_+`'~[]:");
static WORD: [bool; 256] = class(b"-.!%*_+`'~()<>:\\\"/[]?{}");

/// `token` characters: alphanumerics and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Characters of an unquoted parameter value: a token, or a host with an IPv6 reference.
#[inline]
fn is_value_byte(b: u8) -> bool {
    VALUE[b as usize]
}

/// Characters of a Call-ID `word` (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_word_byte(b: u8) -> bool {
    WORD[b as usize]
}

/// How many bytes at the start of `s` are neither control characters (below 0x20) nor DEL;
/// eight bytes at a time.
#[inline]
pub(crate) fn plain_prefix(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A byte below 0x20 (exact as an existence test: no borrow occurs without one).
        let below = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        // A byte equal to 0x7f.
        let x = w ^ (ONES * 0x7f);
        let del = x.wrapping_sub(ONES) & !x & HIGH;
        if below | del != 0 {
            break;
        }
        i += 8;
    }
    while i < s.len() && s[i] >= 0x20 && s[i] != 0x7f {
        i += 1;
    }
    i
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// At most 120 bytes of `s` (cut at a character boundary), for error messages.
pub(crate) fn clip(s: &str) -> &str {
    if s.len() <= 120 {
        return s;
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A position in one header value, with the header's name for error messages.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str, what: &'static str) -> Self {
        Cursor { s, pos: 0, what }
    }

    pub(crate) fn err(&self, problem: impl Display) -> Error {
        Error::Malformed(format!(
            "{} header: {problem} in {:?}",
            self.what,
            clip(self.s)
        ))
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The text from `start` (an earlier [`Cursor::pos`]) to the cursor.
    pub(crate) fn since(&self, start: usize) -> &'a str {
        &self.s[start..self.pos]
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `SWS b SWS` if `b` follows optional whitespace; otherwise consumes nothing.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let start = self.pos;
        self.skip_ws();
        if self.eat(b) {
            self.skip_ws();
            true
        } else {
            self.pos = start;
            false
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// A non-empty token; `what` names it in the error.
    pub(crate) fn token(&mut self, what: &str) -> Result<&'a str> {
        let t = self.take_while(is_token_byte);
        if t.is_empty() {
            return Err(match self.peek() {
                None => self.err(format!("missing {what}")),
                Some(_) => self.err(format!("expected {what} at {:?}", clip(self.rest()))),
            });
        }
        Ok(t)
    }

    /// A quoted string starting at the cursor (which must be at `"`), escapes resolved; the
    /// text is borrowed unless it contains an escape.
    pub(crate) fn quoted(&mut self) -> Result<Cow<'a, str>> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let bytes = self.s.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            match bytes.get(i) {
                None => return Err(self.err("unterminated quoted string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    match bytes.get(i + 1) {
                        Some(b) if b.is_ascii() => {}
                        _ => return Err(self.err("backslash at the end of a quoted string")),
                    }
                    escaped = true;
                    i += 2;
                }
                Some(_) => i += 1,
            }
        }
        let inner = &self.s[start..i];
        self.pos = i + 1;
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        Ok(Cow::Owned(out))
    }

    /// A parameter value: a quoted string or a token/host.
    fn param_value(&mut self, name: &str) -> Result<Cow<'a, str>> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let v = self.take_while(is_value_byte);
        if v.is_empty() {
            return Err(self.err(format!("parameter {name:?} has an empty value")));
        }
        Ok(Cow::Borrowed(v))
    }

    /// `*( SEMI name [ EQUAL value ] )` up to the end of the value.
    pub(crate) fn params(&mut self) -> Result<Params<'a>> {
        let mut list = Vec::new();
        loop {
            self.skip_ws();
            if self.at_end() {
                break;
            }
            if !self.eat(b';') {
                return Err(self.err(format!("unexpected {:?}", clip(self.rest()))));
            }
            self.skip_ws();
            let name = self.token("a parameter name")?;
            let value = if self.eat_sep(b'=') {
                Some(self.param_value(name)?)
            } else {
                None
            };
            list.push(Param { name, value });
        }
        Ok(Params::from_vec(list))
    }

    /// `name EQUAL value *( COMMA name EQUAL value )`: the parameters of a challenge or of
    /// credentials (RFC 3261 §25.1, `auth-param`).
    pub(crate) fn auth_params(&mut self) -> Result<Params<'a>> {
        let mut list = Vec::new();
        self.skip_ws();
        if self.at_end() {
            return Ok(Params::from_vec(list));
        }
        loop {
            self.skip_ws();
            let name = self.token("a parameter name")?;
            if !self.eat_sep(b'=') {
                return Err(self.err(format!("parameter {name:?} has no value")));
            }
            let value = self.param_value(name)?;
            list.push(Param {
                name,
                value: Some(value),
            });
            self.skip_ws();
            if self.at_end() {
                break;
            }
            if !self.eat(b',') {
                return Err(self.err(format!("unexpected {:?}", clip(self.rest()))));
            }
        }
        Ok(Params::from_vec(list))
    }

    pub(crate) fn expect_end(&mut self) -> Result<()> {
        self.skip_ws();
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err(format!("unexpected {:?}", clip(self.rest()))))
        }
    }
}

/// Splits a list header value at the commas that are outside quoted strings and `<...>`;
/// each element is trimmed. An empty value yields nothing; an empty element is an error.
pub(crate) struct ListSplit<'a> {
    rest: &'a str,
    what: &'static str,
    done: bool,
}

pub(crate) fn split_list<'a>(value: &'a str, what: &'static str) -> ListSplit<'a> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    ListSplit {
        rest: value,
        what,
        done: value.is_empty(),
    }
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = Result<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.rest.as_bytes();
        // Fast path: no quote or angle bracket before the next comma (or the end).
        let special = bytes
            .iter()
            .position(|&b| b == b',' || b == b'"' || b == b'<');
        let mut in_quote = false;
        let mut in_angle = false;
        let mut i = match special {
            Some(at) if bytes[at] != b',' => at,
            _ => bytes.len(),
        };
        let mut end = special.filter(|&at| bytes[at] == b',');
        while end.is_none() && i < bytes.len() {
            let b = bytes[i];
            if in_quote {
                match b {
                    b'\\' => i += 1,
                    b'"' => in_quote = false,
                    _ => {}
                }
            } else if in_angle {
                if b == b'>' {
                    in_angle = false;
                }
            } else {
                match b {
                    b'"' => in_quote = true,
                    b'<' => in_angle = true,
                    b',' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        let fail = |problem: &str| {
            Some(Err(Error::Malformed(format!(
                "{} header: {problem} in {:?}",
                self.what,
                clip(self.rest)
            ))))
        };
        if in_quote {
            self.done = true;
            return fail("unterminated quoted string");
        }
        if in_angle {
            self.done = true;
            return fail("unterminated <");
        }
        let (item, rest) = match end {
            Some(e) => (&self.rest[..e], &self.rest[e + 1..]),
            None => {
                self.done = true;
                (self.rest, "")
            }
        };
        let item = item.trim_matches(|c| c == ' ' || c == '\t');
        if item.is_empty() {
            self.done = true;
            return fail("empty list element");
        }
        self.rest = rest;
        Some(Ok(item))
    }
}

/// `1*DIGIT` as a `u32`; `what` names the value in errors. With `saturate`, values over
/// 2^32-1 become 2^32-1 (RFC 3261 §10.2.1.1 for delta-seconds); otherwise they are an error.
pub(crate) fn number(s: &str, what: &str, saturate: bool) -> Result<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Malformed(format!(
            "{what}: {:?} is not a decimal number",
            clip(s)
        )));
    }
    match s.parse::<u32>() {
        Ok(n) => Ok(n),
        Err(_) if saturate => Ok(u32::MAX),
        Err(_) => Err(Error::Malformed(format!(
            "{what}: {:?} is too large",
            clip(s)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(v: &str) -> Result<Vec<&str>> {
        split_list(v, "Test").collect()
    }

    #[test]
    fn lists_split_outside_quotes_and_angles() {
        assert_eq!(
            split(r#""Smith, J \"Jr\"" <sip:a@b;x=1,2>, sip:c@d ,<sip:e@f>"#).unwrap(),
            vec![
                r#""Smith, J \"Jr\"" <sip:a@b;x=1,2>"#,
                "sip:c@d",
                "<sip:e@f>"
            ]
        );
        assert!(split("").unwrap().is_empty());
        assert!(split("a,,b").is_err());
        assert!(split("a,").is_err());
        assert!(split("\"open").is_err());
        assert!(split("<sip:a").is_err());
    }

    #[test]
    fn quoted_strings_unescape() {
        let mut c = Cursor::new(r#""a\"b\\c" rest"#, "Test");
        assert_eq!(c.quoted().unwrap(), r#"a"b\c"#);
        assert_eq!(c.rest(), " rest");
        let mut c = Cursor::new(r#""plain""#, "Test");
        assert!(matches!(c.quoted().unwrap(), Cow::Borrowed("plain")));
        assert!(Cursor::new("\"open", "Test").quoted().is_err());
        assert!(Cursor::new("\"open\\", "Test").quoted().is_err());
    }

    #[test]
    fn params_and_numbers() {
        let mut c = Cursor::new(" ; a = 1 ;b; c=\"x;y\";d=[2001:db8::1]", "Test");
        let p = c.params().unwrap();
        assert_eq!(p.get("A"), Some(Some("1")));
        assert_eq!(p.get("b"), Some(None));
        assert_eq!(p.value("c"), Some("x;y"));
        assert_eq!(p.value("d"), Some("[2001:db8::1]"));
        assert!(Cursor::new(";a=", "Test").params().is_err());
        assert!(Cursor::new("x", "Test").params().is_err());
        assert_eq!(number("42", "n", false).unwrap(), 42);
        assert!(number("4x", "n", false).is_err());
        assert!(number("99999999999", "n", false).is_err());
        assert_eq!(number("99999999999", "n", true).unwrap(), u32::MAX);
    }

    #[test]
    fn plain_prefix_stops_at_control_bytes() {
        for len in 0..40 {
            for bad in [0u8, b'\t', b'\r', 0x1f, 0x7f] {
                for at in 0..=len {
                    let mut v: Vec<u8> =
                        (0..len).map(|i| [b'a', 0x80, 0xff, 0x20][i % 4]).collect();
                    if at < len {
                        v[at] = bad;
                    }
                    assert_eq!(plain_prefix(&v), at, "{v:?}");
                }
            }
        }
        assert!(is_word_byte(b'"') && is_word_byte(b'\\') && !is_word_byte(b'@'));
        assert!(is_token_byte(b'~') && !is_token_byte(b':') && is_value_byte(b':'));
    }
}
