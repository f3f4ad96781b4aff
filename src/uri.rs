//! URIs that name presentities and users: parsing, canonical form and comparison.
//!
//! Five schemes are accepted:
//!
//! | scheme | form | RFC |
//! | --- | --- | --- |
//! | `sip`, `sips` | `sip:user:password@host:port;param=value?header=value` | 3261 §19.1 |
//! | `pres` | `pres:user@host?header=value` | 3859, 3861 |
//! | `im` | `im:user@host?header=value` | 3860, 3861 |
//! | `tel` | `tel:+1-212-555-0100;ext=12` or `tel:7042;phone-context=example.com` | 3966 |
//!
//! A [`Uri`] is stored in canonical form, which is also what [`Display`](std::fmt::Display)
//! writes, so `Uri::parse(&uri.to_string())` gives back an equal URI:
//!
//! - the scheme and the host are lower-cased; an IPv4 address loses leading zeros and an IPv6
//!   reference is written in its RFC 5952 form (`[2001:db8::1]`);
//! - the default port (5060 for `sip`, 5061 for `sips`) is dropped;
//! - the user part (and password) is kept as written, except that percent-escapes of the
//!   characters that are unreserved in every URI grammar (`A-Z a-z 0-9 - . _ ~`) are decoded
//!   and the hex digits of the other escapes are upper-cased: `sip:%61lice@x` is
//!   `sip:alice@x`, `%3b` is `%3B`;
//! - parameter names are lower-cased; parameter and header values get the escape
//!   normalization above;
//! - for `tel`, the visual separators `- . ( )` are removed from the number, from `ext` and
//!   from a global `phone-context`, a domain `phone-context` is lower-cased, hex digits of
//!   a local number are upper-cased, and the parameters are put in the RFC 3966 order
//!   (`isub`, `ext`, `phone-context`, then the others by name).
//!
//! Comparison ([`PartialEq`], [`Eq`], [`Hash`]) follows RFC 3261 §19.1.4 where it keeps
//! equality an equivalence relation: the user part and password compare case-sensitively,
//! everything else case-insensitively (parameter and header values included); the order of
//! parameters and of headers does not matter; escaped and unescaped unreserved characters
//! are the same. Unlike RFC 3261 (and as DESIGN §1 asks), an explicit default port equals no
//! port. Also unlike it, every parameter is significant: RFC 3261 ignores a parameter
//! present on one side only, which makes equality non-transitive and unusable as a map key.
//!
//! Anything malformed is an [`Error::InvalidUri`] whose message names the problem and quotes
//! the offending value.
#![forbid(unsafe_code)]

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest URI accepted, in bytes. Real URIs are far shorter; the bound keeps a hostile
/// peer from making every comparison and hash expensive.
pub const MAX_URI_LEN: usize = 2048;

/// A URI scheme this library understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `sip:` (RFC 3261).
    Sip,
    /// `sips:`, SIP over TLS (RFC 3261).
    Sips,
    /// `pres:`, the abstract presence URI (RFC 3859).
    Pres,
    /// `im:`, the abstract instant-messaging URI (RFC 3860).
    Im,
    /// `tel:`, a telephone number (RFC 3966).
    Tel,
}

impl Scheme {
    /// The scheme name in lower case, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Pres => "pres",
            Scheme::Im => "im",
            Scheme::Tel => "tel",
        }
    }

    /// The port implied when a URI of this scheme names none (only `sip` and `sips` have one).
    pub fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Sip => Some(5060),
            Scheme::Sips => Some(5061),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Scheme> {
        [
            Scheme::Sip,
            Scheme::Sips,
            Scheme::Pres,
            Scheme::Im,
            Scheme::Tel,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed URI in canonical form (see the module documentation).
///
/// Fields by scheme:
///
/// - `sip`/`sips`: every field may be set; `user` is absent in `sip:example.com`.
/// - `pres`/`im`: `user` and `host` (the mailbox), optional `headers`; never a password,
///   port or parameter.
/// - `tel`: the telephone number is the `user` (separators removed, `+` kept for a global
///   number), `host` is empty, the tel parameters (`isub`, `ext`, `phone-context`, ...) are
///   the `params`; never a password, port or header.
#[derive(Clone)]
pub struct Uri {
    /// The user part immediately followed by the host, in one exactly sized allocation: a
    /// watcher URI is kept for as long as its subscription lives, so every byte counts.
    text: Box<str>,
    /// What few URIs have, boxed apart so that the common URI pays one pointer for it.
    rare: Option<Box<Rare>>,
    /// How many bytes of `text` are the user part; [`NO_USER`] when there is none (and the
    /// whole of `text` is the host). `MAX_URI_LEN` keeps a real length far below it.
    user_len: u16,
    port: Option<u16>,
    scheme: Scheme,
}

/// `Uri::user_len` of a URI without a user part (`sip:example.com`).
const NO_USER: u16 = u16::MAX;

/// The parts of a URI that most URIs lack. A URI without any of them has no `Rare` at all:
/// an empty one would be an allocation that holds nothing. (Equality and hashing go through
/// the accessors, so they would not notice one either way.)
#[derive(Clone)]
struct Rare {
    password: Option<Box<str>>,
    params: Box<[(String, Option<String>)]>,
    headers: Box<[(String, String)]>,
}

/// Everything a parser found, before it is packed into a [`Uri`].
struct Parts {
    scheme: Scheme,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
    headers: Vec<(String, String)>,
}

/// Drops the spare capacity the parser's buffers were grown with.
fn exact(mut s: String) -> String {
    s.shrink_to_fit();
    s
}

impl Uri {
    /// Parses `input` (a bare URI, without `<>` or a display name) into canonical form.
    pub fn parse(input: &str) -> Result<Uri> {
        check_characters(input)?;
        let colon = input.find(':').ok_or_else(|| {
            if input.starts_with('<') {
                bad(input, "angle brackets (name-addr) are not part of a URI")
            } else {
                bad(
                    input,
                    "missing scheme (expected sip:, sips:, pres:, im: or tel:)",
                )
            }
        })?;
        let name = &input[..colon];
        let scheme = Scheme::from_name(name).ok_or_else(|| {
            if name.starts_with('<') {
                bad(input, "angle brackets (name-addr) are not part of a URI")
            } else {
                bad(input, format!("unknown scheme {name:?}"))
            }
        })?;
        let rest = &input[colon + 1..];
        if rest.is_empty() {
            return Err(bad(input, format!("nothing after {scheme}:")));
        }
        let p = Parser { input };
        let uri = match scheme {
            Scheme::Sip | Scheme::Sips => p.sip(scheme, rest),
            Scheme::Pres | Scheme::Im => p.mailbox(scheme, rest),
            Scheme::Tel => p.tel(rest),
        }?;
        // The canonical form is at most three times longer than the input (a tel `#` becomes
        // `%23`); it must itself be a URI this function accepts.
        if input.len() > MAX_URI_LEN / 3 {
            let len = uri.to_string().len();
            if len > MAX_URI_LEN {
                return Err(bad(
                    input,
                    format!("canonical form of {len} bytes exceeds the limit of {MAX_URI_LEN}"),
                ));
            }
        }
        Ok(uri)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The user part (escape-normalized), or the number of a `tel` URI.
    pub fn user(&self) -> Option<&str> {
        match self.user_len {
            NO_USER => None,
            len => Some(&self.text[..usize::from(len)]),
        }
    }

    /// The password of a `sip`/`sips` URI (`sip:alice:secret@host`). RFC 3261 discourages
    /// it; it is kept so that nothing the peer wrote is lost.
    pub fn password(&self) -> Option<&str> {
        self.rare.as_ref()?.password.as_deref()
    }

    /// The host in lower case; an IPv6 reference keeps its brackets (`[::1]`). Empty for `tel`.
    pub fn host(&self) -> &str {
        match self.user_len {
            NO_USER => &self.text,
            len => &self.text[usize::from(len)..],
        }
    }

    /// The explicit port, or `None` when none was written or it was the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port to use: the explicit one, else the scheme's default (`None` for pres/im/tel).
    pub fn port_or_default(&self) -> Option<u16> {
        self.port.or(self.scheme.default_port())
    }

    /// The parameters in canonical order, names lower-cased; `None` for a flag like `;lr`.
    pub fn params(&self) -> &[(String, Option<String>)] {
        self.rare.as_ref().map_or(&[], |r| &r.params)
    }

    /// The value of a parameter (name matched case-insensitively); `Some("")` for a flag.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The headers (`?name=value&...`) in written order, names as written.
    pub fn headers(&self) -> &[(String, String)] {
        self.rare.as_ref().map_or(&[], |r| &r.headers)
    }

    /// The value of the first header with this name (matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The canonical text of this URI (the same as `to_string()`).
    pub fn canonical(&self) -> String {
        self.to_string()
    }

    /// The address-of-record: the key that names a presentity.
    ///
    /// `scheme:user@host` (or `scheme:host` without a user), with no password, port,
    /// parameters or headers. For `tel` it is `tel:number`, plus `;phone-context=...` for a
    /// local number, which means nothing without its context. Schemes are not merged:
    /// `sip:a@x` and `sips:a@x` are different records.
    pub fn aor(&self) -> String {
        let mut out = format!("{}:", self.scheme);
        self.push_aor_body(&mut out);
        out
    }

    /// Appends the address of record without its scheme (what [`Uri::aor`] writes after
    /// `scheme:`), for keys built without a second allocation.
    pub(crate) fn push_aor_body(&self, out: &mut String) {
        if self.scheme == Scheme::Tel {
            let number = self.user().unwrap_or_default();
            write_tel_number(out, number);
            if !number.starts_with('+') {
                if let Some(ctx) = self.param("phone-context") {
                    out.push_str(";phone-context=");
                    out.push_str(ctx);
                }
            }
            return;
        }
        if let Some(user) = self.user() {
            out.push_str(user);
            out.push('@');
        }
        out.push_str(self.host());
    }
}

/// Above this many parameters, equality sorts instead of searching pairwise, so that a
/// hostile URI full of parameters costs n log n rather than n² per comparison.
const PAIRWISE_PARAMS: usize = 16;

/// Equality of parameter lists as RFC 3261 §19.1.4 sees them (values case-insensitive,
/// order ignored), without allocating. Names are lower-case and unique within a list (the
/// parser rejects duplicates), so equal lengths plus a match in `b` for every entry of `a`
/// is a one-to-one match.
fn same_params(a: &[(String, Option<String>)], b: &[(String, Option<String>)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > PAIRWISE_PARAMS {
        return folded_params(a) == folded_params(b);
    }
    a.iter().all(|(name, value)| {
        b.iter().any(|(n, v)| {
            n == name
                && match (value, v) {
                    (None, None) => true,
                    (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                    _ => false,
                }
        })
    })
}

/// The parameters as compared and hashed: values lower-cased, sorted by name.
fn folded_params(params: &[(String, Option<String>)]) -> Vec<(String, Option<String>)> {
    let mut folded: Vec<(String, Option<String>)> = params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_ref().map(|v| v.to_ascii_lowercase())))
        .collect();
    folded.sort();
    folded
}

/// Whether `params` already is its folded form, so that it can be hashed as it stands.
fn params_folded(params: &[(String, Option<String>)]) -> bool {
    params.windows(2).all(|w| w[0].0 < w[1].0)
        && params
            .iter()
            .all(|(_, v)| !v.as_deref().is_some_and(has_upper))
}

/// The headers as compared and hashed: names and values lower-cased, sorted. Header names
/// may repeat, so unlike parameters they cannot be matched pairwise by name.
fn folded_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut folded: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_ascii_lowercase()))
        .collect();
    folded.sort();
    folded
}

fn has_upper(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
}

impl PartialEq for Uri {
    fn eq(&self, other: &Uri) -> bool {
        // `text` and `user_len` together are exactly the user part and the host.
        self.scheme == other.scheme
            && self.port == other.port
            && self.user_len == other.user_len
            && self.text == other.text
            && self.password() == other.password()
            && same_params(self.params(), other.params())
            && (self.headers().is_empty() && other.headers().is_empty()
                || folded_headers(self.headers()) == folded_headers(other.headers()))
    }
}

impl Eq for Uri {}

impl Hash for Uri {
    /// Feeds the hasher what equality looks at, in the folded form; when that form is what
    /// is stored (always without parameters or headers), straight from the URI.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.scheme.hash(state);
        self.user().hash(state);
        self.password().hash(state);
        self.host().hash(state);
        self.port.hash(state);
        let params = self.params();
        if params_folded(params) {
            params.hash(state);
        } else {
            folded_params(params).hash(state);
        }
        let headers = self.headers();
        if headers.is_empty() {
            headers.hash(state);
        } else {
            folded_headers(headers).hash(state);
        }
    }
}

impl fmt::Debug for Uri {
    /// The same fields as before the packed layout, so logs and test failures read alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uri")
            .field("scheme", &self.scheme)
            .field("user", &self.user())
            .field("password", &self.password())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("params", &self.params())
            .field("headers", &self.headers())
            .finish()
    }
}

impl FromStr for Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Uri> {
        Uri::parse(s)
    }
}

impl TryFrom<&str> for Uri {
    type Error = Error;
    fn try_from(s: &str) -> Result<Uri> {
        Uri::parse(s)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(64);
        out.push_str(self.scheme.as_str());
        out.push(':');
        if self.scheme == Scheme::Tel {
            write_tel_number(&mut out, self.user().unwrap_or_default());
        } else {
            if let Some(user) = self.user() {
                out.push_str(user);
                if let Some(pw) = self.password() {
                    out.push(':');
                    out.push_str(pw);
                }
                out.push('@');
            }
            out.push_str(self.host());
            if let Some(port) = self.port {
                out.push(':');
                out.push_str(&port.to_string());
            }
        }
        for (name, value) in self.params() {
            out.push(';');
            out.push_str(name);
            if let Some(v) = value {
                out.push('=');
                out.push_str(v);
            }
        }
        for (i, (name, value)) in self.headers().iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        f.write_str(&out)
    }
}

/// A tel number is stored with a literal `#`; in URI text it is escaped.
fn write_tel_number(out: &mut String, number: &str) {
    for c in number.chars() {
        if c == '#' {
            out.push_str("%23");
        } else {
            out.push(c);
        }
    }
}

/// Quotes a value for an error message, cut short if long.
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", s.len())
    }
}

fn bad(input: &str, what: impl fmt::Display) -> Error {
    Error::InvalidUri(format!("{what} in {}", shown(input)))
}

/// Checks what no scheme allows: emptiness, excess length, NUL, whitespace, control and
/// non-ASCII characters (which must be percent-encoded).
fn check_characters(input: &str) -> Result<()> {
    if input.is_empty() {
        return Err(Error::InvalidUri("empty URI".into()));
    }
    if input.len() > MAX_URI_LEN {
        return Err(Error::InvalidUri(format!(
            "URI of {} bytes exceeds the limit of {MAX_URI_LEN} bytes: {}",
            input.len(),
            shown(input)
        )));
    }
    for (at, c) in input.char_indices() {
        let what = match c {
            '\0' => "NUL byte",
            c if c.is_whitespace() => "whitespace",
            c if c.is_control() => "control character",
            c if !c.is_ascii() => "non-ASCII character (percent-encode it)",
            _ => continue,
        };
        return Err(bad(
            input,
            format!("{what} {:?} (U+{:04X}) at byte {at}", c, u32::from(c)),
        ));
    }
    Ok(())
}

/// Unreserved in RFC 3986 and RFC 3261 alike: an escape of one of these means the character.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3261 `unreserved` (alphanum / mark).
fn is_sip_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn sip_user_char(b: u8) -> bool {
    is_sip_unreserved(b) || b"&=+$,;?/".contains(&b)
}

fn sip_password_char(b: u8) -> bool {
    is_sip_unreserved(b) || b"&=+$,".contains(&b)
}

fn sip_param_char(b: u8) -> bool {
    is_sip_unreserved(b) || b"[]/:&+$".contains(&b)
}

fn header_char(b: u8) -> bool {
    is_sip_unreserved(b) || b"[]/?:+$".contains(&b)
}

/// A mailbox local part in a pres:/im: URI: RFC 3986 unreserved and sub-delimiters except
/// `;` (these schemes have no parameters); anything else must be percent-encoded.
fn mailbox_user_char(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,=".contains(&b)
}

/// `pname` of a tel parameter.
fn tel_pname_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn is_visual_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Decodes the `%XX` escapes of a URI component or a URL path (RFC 3986 §2.1): `None` for a
/// broken escape (`%` not followed by two hex digits) or a result that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digits = bytes.get(i + 1..i + 3)?;
            out.push(hex(digits[0])? * 16 + hex(digits[1])?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

struct Parser<'i> {
    input: &'i str,
}

impl Parser<'_> {
    fn err(&self, what: impl fmt::Display) -> Error {
        bad(self.input, what)
    }

    /// Checks the characters of one component and normalizes its percent-escapes.
    fn escaped(&self, part: &str, what: &str, allowed: fn(u8) -> bool) -> Result<String> {
        let b = part.as_bytes();
        let mut out = String::with_capacity(part.len());
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'%' {
                let digits = b.get(i + 1..i + 3);
                let value = digits.and_then(|d| Some(hex(d[0])? * 16 + hex(d[1])?));
                let Some(value) = value else {
                    let end = (i + 3).min(b.len());
                    return Err(self.err(format!(
                        "bad percent-escape {:?} in {what} {}",
                        &part[i..end],
                        shown(part)
                    )));
                };
                if is_unreserved(value) {
                    out.push(char::from(value));
                } else {
                    out.push_str(&format!("%{value:02X}"));
                }
                i += 3;
            } else if allowed(c) {
                out.push(char::from(c));
                i += 1;
            } else {
                return Err(self.err(format!(
                    "illegal character {:?} in {what} {}",
                    char::from(c),
                    shown(part)
                )));
            }
        }
        Ok(out)
    }

    /// Packs what the scheme parsers found into a [`Uri`]: the one place a `Uri` is made, so
    /// that every URI has the same compact, exactly sized layout.
    fn finish(&self, parts: Parts) -> Result<Uri> {
        let Parts {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        } = parts;
        let user_len = match &user {
            None => NO_USER,
            // Cannot happen for an input within MAX_URI_LEN (the user part never grows),
            // but a length that does not fit must not pass for "no user".
            Some(u) => u16::try_from(u.len())
                .ok()
                .filter(|&len| len != NO_USER)
                .ok_or_else(|| self.err(format!("user part of {} bytes is too long", u.len())))?,
        };
        let user = user.unwrap_or_default();
        let mut text = String::with_capacity(user.len() + host.len());
        text.push_str(&user);
        text.push_str(&host);
        let rare = if password.is_none() && params.is_empty() && headers.is_empty() {
            None
        } else {
            Some(Box::new(Rare {
                password: password.map(String::into_boxed_str),
                params: params
                    .into_iter()
                    .map(|(n, v)| (exact(n), v.map(exact)))
                    .collect(),
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (exact(n), exact(v)))
                    .collect(),
            }))
        };
        Ok(Uri {
            text: text.into_boxed_str(),
            rare,
            user_len,
            port,
            scheme,
        })
    }

    fn sip(&self, scheme: Scheme, rest: &str) -> Result<Uri> {
        let (user, password, after) = match rest.find('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match userinfo.find(':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(self.err("empty user part before '@'"));
                }
                let user = self.escaped(user, "user part", sip_user_char)?;
                let password = password
                    .map(|p| self.escaped(p, "password", sip_password_char))
                    .transpose()?;
                (Some(user), password, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        if after.contains('@') {
            return Err(self.err("illegal character '@' after the user part (escape it as %40)"));
        }
        let end = after.find([';', '?']).unwrap_or(after.len());
        let (host, port) = self.hostport(&after[..end])?;
        let port = port.filter(|&p| Some(p) != scheme.default_port());
        let after = &after[end..];
        let (params, headers) = match after.find('?') {
            Some(q) => (&after[..q], Some(&after[q + 1..])),
            None => (after, None),
        };
        let params = self.sip_params(params)?;
        let headers = headers
            .map(|h| self.headers(h))
            .transpose()?
            .unwrap_or_default();
        self.finish(Parts {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// `host[:port]`, host being a hostname, an IPv4 address or a bracketed IPv6 reference.
    fn hostport(&self, s: &str) -> Result<(String, Option<u16>)> {
        if s.is_empty() {
            return Err(self.err("missing host"));
        }
        let (host, port) = if s.starts_with('[') {
            let close = s
                .find(']')
                .ok_or_else(|| self.err(format!("bad IPv6 reference {} (no ']')", shown(s))))?;
            let (host, tail) = s.split_at(close + 1);
            match tail.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if tail.is_empty() => (host, None),
                None => {
                    return Err(self.err(format!("unexpected {} after IPv6 reference", shown(tail))))
                }
            }
        } else {
            match s.find(':') {
                Some(c) if s[c + 1..].contains(':') => {
                    return Err(self.err(format!(
                        "bad host {}: an IPv6 address must be enclosed in brackets",
                        shown(s)
                    )))
                }
                Some(c) => (&s[..c], Some(&s[c + 1..])),
                None => (s, None),
            }
        };
        let host = self.host(host)?;
        let port = port.map(|p| self.port(p)).transpose()?;
        Ok((host, port))
    }

    fn port(&self, p: &str) -> Result<u16> {
        if p.is_empty() {
            return Err(self.err("empty port after ':'"));
        }
        let value = if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u32>().ok()
        } else {
            None
        };
        match value {
            Some(v @ 1..=65535) => Ok(v as u16),
            _ => Err(self.err(format!("bad port {} (expected 1 to 65535)", shown(p)))),
        }
    }

    fn host(&self, h: &str) -> Result<String> {
        if h.is_empty() {
            return Err(self.err("missing host"));
        }
        if let Some(inner) = h.strip_prefix('[') {
            let inner = inner.strip_suffix(']').unwrap_or(inner);
            return match inner.parse::<Ipv6Addr>() {
                Ok(addr) => Ok(format!("[{addr}]")),
                Err(_) => Err(self.err(format!("bad IPv6 address {}", shown(h)))),
            };
        }
        let lower = h.to_ascii_lowercase();
        let labels: Vec<&str> = lower
            .strip_suffix('.')
            .unwrap_or(&lower)
            .split('.')
            .collect();
        let last = labels.last().copied().unwrap_or_default();
        if last.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            return self.ipv4(h, &labels);
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(self.err(format!("bad host name {}", shown(h))));
            }
        }
        Ok(lower)
    }

    /// Dotted-quad IPv4; leading zeros are dropped in canonical form.
    fn ipv4(&self, h: &str, parts: &[&str]) -> Result<String> {
        let octets: Option<Vec<u8>> = parts
            .iter()
            .map(|p| {
                if (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse::<u8>().ok()
                } else {
                    None
                }
            })
            .collect();
        match octets {
            Some(o) if o.len() == 4 && !h.ends_with('.') => {
                Ok(format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]))
            }
            _ => Err(self.err(format!("bad IPv4 address {}", shown(h)))),
        }
    }

    fn sip_params(&self, s: &str) -> Result<Vec<(String, Option<String>)>> {
        let mut params: Vec<(String, Option<String>)> = Vec::new();
        let Some(s) = s.strip_prefix(';') else {
            return Ok(params);
        };
        for p in s.split(';') {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() {
                return Err(self.err(format!("empty parameter name in {}", shown(p))));
            }
            let name = self.escaped(name, "parameter name", sip_param_char)?;
            let name = name.to_ascii_lowercase();
            let value = match value {
                Some("") => {
                    return Err(self.err(format!("empty value of parameter {}", shown(&name))))
                }
                Some(v) => Some(self.escaped(v, "parameter value", sip_param_char)?),
                None => None,
            };
            self.push_unique(&mut params, name, value)?;
        }
        Ok(params)
    }

    fn push_unique(
        &self,
        params: &mut Vec<(String, Option<String>)>,
        name: String,
        value: Option<String>,
    ) -> Result<()> {
        if params.iter().any(|(n, _)| *n == name) {
            return Err(self.err(format!("duplicate parameter {}", shown(&name))));
        }
        params.push((name, value));
        Ok(())
    }

    fn headers(&self, s: &str) -> Result<Vec<(String, String)>> {
        let mut headers = Vec::new();
        for h in s.split('&') {
            let Some((name, value)) = h.split_once('=') else {
                return Err(self.err(format!("header {} has no '='", shown(h))));
            };
            if name.is_empty() {
                return Err(self.err(format!("empty header name in {}", shown(h))));
            }
            let name = self.escaped(name, "header name", header_char)?;
            let value = self.escaped(value, "header value", header_char)?;
            headers.push((name, value));
        }
        Ok(headers)
    }

    /// `pres:` and `im:`: a mailbox `user@host` and optional headers (RFC 3859, 3860, 3861).
    fn mailbox(&self, scheme: Scheme, rest: &str) -> Result<Uri> {
        let (mailbox, headers) = match rest.find('?') {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        if mailbox.contains(';') {
            return Err(self.err(format!("{scheme}: URIs take no parameters")));
        }
        let Some((user, host)) = mailbox.split_once('@') else {
            return Err(self.err(format!("{scheme}: URI needs user@host, no '@' found")));
        };
        if user.is_empty() {
            return Err(self.err("empty user part before '@'"));
        }
        let user = self.escaped(user, "user part", mailbox_user_char)?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(self.err(format!("{scheme}: URIs take no port")));
        }
        if host.starts_with('[') && !host.ends_with(']') {
            return Err(self.err(format!(
                "{scheme}: URIs take no port, or bad IPv6 reference"
            )));
        }
        let host = self.host(host)?;
        let headers = headers
            .map(|h| self.headers(h))
            .transpose()?
            .unwrap_or_default();
        self.finish(Parts {
            scheme,
            user: Some(user),
            password: None,
            host,
            port: None,
            params: Vec::new(),
            headers,
        })
    }

    /// `tel:` per RFC 3966: a global (`+...`) or local number and parameters.
    fn tel(&self, rest: &str) -> Result<Uri> {
        if let Some(c) = rest.find(['?', '@']) {
            let c = char::from(rest.as_bytes()[c]);
            return Err(self.err(format!("illegal character {c:?} in tel: URI")));
        }
        let mut parts = rest.split(';');
        let raw = parts.next().unwrap_or_default();
        let number = self.tel_number(raw)?;
        let mut params: Vec<(String, Option<String>)> = Vec::new();
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || !name.bytes().all(tel_pname_char) {
                return Err(self.err(format!("bad tel parameter name {}", shown(name))));
            }
            let name = name.to_ascii_lowercase();
            let value = match (name.as_str(), value) {
                (_, Some("")) => {
                    return Err(self.err(format!("empty value of parameter {}", shown(&name))))
                }
                ("ext" | "phone-context" | "isub", None) => {
                    return Err(self.err(format!("parameter {} needs a value", shown(&name))))
                }
                ("ext", Some(v)) => Some(self.phone_digits(v, "ext value")?),
                ("phone-context", Some(v)) if v.starts_with('+') => {
                    Some(format!("+{}", self.phone_digits(&v[1..], "phone-context")?))
                }
                ("phone-context", Some(v)) => Some(self.host(v).map_err(|_| {
                    self.err(format!(
                        "bad phone-context {} (domain or +digits)",
                        shown(v)
                    ))
                })?),
                (_, Some(v)) => {
                    Some(self.escaped(v, "parameter value", |b| sip_param_char(b) || b == b'=')?)
                }
                (_, None) => None,
            };
            self.push_unique(&mut params, name, value)?;
        }
        let global = number.starts_with('+');
        let has_context = params.iter().any(|(n, _)| n == "phone-context");
        if !global && !has_context {
            return Err(self.err(format!(
                "local number {} needs a ;phone-context parameter",
                shown(raw)
            )));
        }
        if global && has_context {
            return Err(self.err(format!(
                "global number {} takes no ;phone-context parameter",
                shown(raw)
            )));
        }
        let rank = |n: &str| match n {
            "isub" => 0,
            "ext" => 1,
            "phone-context" => 2,
            _ => 3,
        };
        params.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        self.finish(Parts {
            scheme: Scheme::Tel,
            user: Some(number),
            password: None,
            host: String::new(),
            port: None,
            params,
            headers: Vec::new(),
        })
    }

    /// The number without visual separators: `+` and digits (global) or hex digits, `*`,
    /// `#` (local; hex upper-cased, `#` may come as `%23`).
    fn tel_number(&self, raw: &str) -> Result<String> {
        if raw.is_empty() {
            return Err(self.err("missing telephone number"));
        }
        if let Some(digits) = raw.strip_prefix('+') {
            let number = self.phone_digits(digits, "global number")?;
            return Ok(format!("+{number}"));
        }
        let unescaped = raw.replace("%23", "#");
        let mut out = String::with_capacity(raw.len());
        for b in unescaped.bytes() {
            if b.is_ascii_hexdigit() || b == b'*' || b == b'#' {
                out.push(char::from(b.to_ascii_uppercase()));
            } else if !is_visual_separator(b) {
                return Err(self.err(format!(
                    "illegal character {:?} in telephone number {}",
                    char::from(b),
                    shown(raw)
                )));
            }
        }
        if out.is_empty() {
            return Err(self.err(format!("telephone number {} has no digits", shown(raw))));
        }
        Ok(out)
    }

    /// `1*phonedigit` with at least one digit; separators dropped.
    fn phone_digits(&self, s: &str, what: &str) -> Result<String> {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_digit() {
                out.push(char::from(b));
            } else if !is_visual_separator(b) {
                return Err(self.err(format!(
                    "illegal character {:?} in {what} {}",
                    char::from(b),
                    shown(s)
                )));
            }
        }
        if out.is_empty() {
            return Err(self.err(format!("{what} {} has no digits", shown(s))));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_takes_two_hex_digits_and_utf8_only() {
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%C3%A9t%c3%a9").as_deref(), Some("été"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%4", "%zz", "%+f", "%-1", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn escapes_are_normalized() {
        let p = Parser { input: "x" };
        assert_eq!(
            p.escaped("%61b%3bc%7e", "t", sip_user_char).unwrap(),
            "ab%3Bc~"
        );
        assert!(p.escaped("%4", "t", sip_user_char).is_err());
        assert!(p.escaped("%zz", "t", sip_user_char).is_err());
        assert!(p.escaped("a b", "t", sip_user_char).is_err());
    }

    #[test]
    fn ipv4_leading_zeros_dropped() {
        let p = Parser { input: "x" };
        assert_eq!(p.host("010.000.001.009").unwrap(), "10.0.1.9");
        assert!(p.host("1.2.3").is_err());
        assert!(p.host("1.2.3.256").is_err());
        assert!(p.host("1.2.3.4.").is_err());
    }

    /// The layout that keeps a watcher URI small (see `Uri`): the bound is what the
    /// per-subscription memory budget was planned with.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn uri_struct_is_compact() {
        assert!(
            std::mem::size_of::<Uri>() <= 40,
            "size_of::<Uri>() = {}",
            std::mem::size_of::<Uri>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Uri>>(),
            std::mem::size_of::<Uri>()
        );
    }

    #[test]
    fn common_uri_is_one_exact_allocation() {
        let u = Uri::parse("sip:%77%31234@Example.TEST").unwrap();
        assert_eq!(&*u.text, "w1234example.test");
        assert!(u.rare.is_none());
        assert_eq!((u.user(), u.host()), (Some("w1234"), "example.test"));
        let bare = Uri::parse("sip:Example.TEST").unwrap();
        assert_eq!((bare.user(), bare.host()), (None, "example.test"));
        assert!(bare.rare.is_none());
        // An empty tel host: the number is the whole text.
        let tel = Uri::parse("tel:+1-212-555-0100").unwrap();
        assert_eq!((tel.user(), tel.host()), (Some("+12125550100"), ""));
    }

    #[test]
    fn rare_parts_keep_no_spare_capacity() {
        // Escapes shrink while parsing, so the parser's buffers were grown longer than this.
        let u = Uri::parse("sip:a:%70%77@x;%6Ea%6De=%76%61l?%68=%69%6A").unwrap();
        let rare = u.rare.as_ref().unwrap();
        assert_eq!(rare.password.as_deref(), Some("pw"));
        let (name, value) = &rare.params[0];
        assert_eq!((name.as_str(), value.as_deref()), ("name", Some("val")));
        assert_eq!(
            (name.capacity(), value.as_ref().unwrap().capacity()),
            (4, 3)
        );
        let (name, value) = &rare.headers[0];
        assert_eq!((name.as_str(), value.as_str()), ("h", "ij"));
        assert_eq!((name.capacity(), value.capacity()), (1, 2));
    }

    #[test]
    fn rare_parts_round_trip_and_compare() {
        let u =
            Uri::parse("SIP:Bob:Secret@Example.TEST:5070;Transport=TCP;lr?Subject=Hi&b=2").unwrap();
        let text = u.to_string();
        assert_eq!(
            text,
            "sip:Bob:Secret@example.test:5070;transport=TCP;lr?Subject=Hi&b=2"
        );
        let again = Uri::parse(&text).unwrap();
        assert_eq!(again, u);
        assert_eq!(again.to_string(), text);
        assert_eq!(again.password(), Some("Secret"));
        // The password is case-sensitive; parameter order and value case are not.
        assert_ne!(
            u,
            Uri::parse("sip:Bob:secret@example.test:5070;transport=TCP;lr?Subject=Hi&b=2").unwrap()
        );
        assert_eq!(
            u,
            Uri::parse("sip:Bob:Secret@example.test:5070;lr;transport=tcp?b=2&subject=hi").unwrap()
        );
    }

    /// What `PartialEq` and `Hash` compared before the packed layout: every part, with the
    /// case-insensitive ones folded and parameters and headers sorted. The new ones must give
    /// the same answers and feed a hasher the same values, so maps keyed by URIs see no change.
    #[derive(PartialEq, Eq, Hash)]
    struct ReferenceKey<'a> {
        scheme: Scheme,
        user: Option<&'a str>,
        password: Option<&'a str>,
        host: &'a str,
        port: Option<u16>,
        params: Vec<(String, Option<String>)>,
        headers: Vec<(String, String)>,
    }

    fn reference_key(u: &Uri) -> ReferenceKey<'_> {
        let mut params: Vec<(String, Option<String>)> = u
            .params()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_ref().map(|v| v.to_ascii_lowercase())))
            .collect();
        params.sort();
        let mut headers: Vec<(String, String)> = u
            .headers()
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_ascii_lowercase()))
            .collect();
        headers.sort();
        ReferenceKey {
            scheme: u.scheme(),
            user: u.user(),
            password: u.password(),
            host: u.host(),
            port: u.port(),
            params,
            headers,
        }
    }

    fn hash_of(h: &impl Hash) -> u64 {
        use std::collections::hash_map::DefaultHasher;
        let mut state = DefaultHasher::new();
        h.hash(&mut state);
        state.finish()
    }

    #[test]
    fn equality_and_hash_match_the_reference() {
        let many: String = (0..PAIRWISE_PARAMS + 4)
            .map(|i| format!(";p{i:02}=V{i}"))
            .collect();
        let many_reordered: String = (0..PAIRWISE_PARAMS + 4)
            .rev()
            .map(|i| format!(";p{i:02}=v{i}"))
            .collect();
        let texts = [
            "sip:alice@example.test".to_string(),
            "sip:Alice@example.test".to_string(),
            "sip:alice@example.test:5060".to_string(),
            "sip:alice@example.test:5070".to_string(),
            "sips:alice@example.test".to_string(),
            "sip:example.test".to_string(),
            // The same text split differently between user and host.
            "sip:a@bc.test".to_string(),
            "sip:ab@c.test".to_string(),
            "sip:alice:pw@example.test".to_string(),
            "sip:alice:PW@example.test".to_string(),
            "sip:alice@example.test;transport=tcp".to_string(),
            "sip:alice@example.test;transport=TCP".to_string(),
            "sip:alice@example.test;transport=udp".to_string(),
            "sip:alice@example.test;transport".to_string(),
            "sip:alice@example.test;lr;transport=tcp".to_string(),
            "sip:alice@example.test;transport=tcp;lr".to_string(),
            "sip:alice@example.test;transport=tcp;maddr=x".to_string(),
            "sip:alice@example.test;maddr=x;transport=tcp".to_string(),
            "sip:alice@example.test?a=1&b=2".to_string(),
            "sip:alice@example.test?B=2&a=1".to_string(),
            "sip:alice@example.test?a=1&a=1".to_string(),
            "sip:alice@example.test?a=1".to_string(),
            format!("sip:alice@example.test{many}"),
            format!("sip:alice@example.test{many_reordered}"),
            format!("sip:alice@example.test{many};x"),
            "pres:alice@example.test".to_string(),
            "im:alice@example.test".to_string(),
            "pres:alice@example.test?subject=Hi".to_string(),
            "tel:+1-212-555-0100".to_string(),
            "tel:+1-212-555-0100;ext=12".to_string(),
            "tel:+1-212-555-0100;foo=Bar;ext=12".to_string(),
            "tel:+1-212-555-0100;ext=12;foo=bar".to_string(),
            "tel:7042;phone-context=example.com".to_string(),
        ];
        let uris: Vec<Uri> = texts.iter().map(|t| Uri::parse(t).unwrap()).collect();
        let mut equal_pairs = 0;
        for a in &uris {
            assert_eq!(hash_of(a), hash_of(&reference_key(a)), "{a}");
            for b in &uris {
                let expected = reference_key(a) == reference_key(b);
                assert_eq!(a == b, expected, "{a} == {b}");
                if a != b {
                    continue;
                }
                assert_eq!(hash_of(a), hash_of(b), "{a} and {b}");
                equal_pairs += 1;
            }
        }
        // The list holds several pairs of different texts for one URI, beyond each with itself.
        assert!(equal_pairs > uris.len() + 8, "{equal_pairs}");
    }

    #[test]
    fn debug_names_the_parts() {
        let u = Uri::parse("sip:alice@example.test;lr").unwrap();
        assert_eq!(
            format!("{u:?}"),
            "Uri { scheme: Sip, user: Some(\"alice\"), password: None, \
             host: \"example.test\", port: None, params: [(\"lr\", None)], headers: [] }"
        );
    }

    #[test]
    fn shown_truncates() {
        let long = "a".repeat(500);
        assert!(shown(&long).len() < 120);
        assert_eq!(shown("ab"), "\"ab\"");
    }
}
