//! Typed header values, parsed on demand from the text of a [`super::SipMessage`] and
//! borrowing from it.
//!
//! | type | headers | grammar |
//! | --- | --- | --- |
//! | [`NameAddr`] | From, To, Contact, Route, Record-Route | RFC 3261 §20.10, §25.1 |
//! | [`Via`] | Via | §20.42 (with `rport`, RFC 3581) |
//! | [`CSeq`] | CSeq | §20.16 |
//! | [`Event`] | Event | RFC 6665 §8.2.1 |
//! | [`SubscriptionState`] | Subscription-State | RFC 6665 §8.2.3 |
//! | [`ContentType`] | Content-Type | §20.15 |
//! | [`Accept`], [`MediaRange`] | Accept | §20.1 (RFC 2616 §14.1) |
//! | [`Contacts`] | Contact, including `*` | §20.10 |
//! | [`AuthValue`] | Authorization, WWW-Authenticate and the Proxy- forms | §20.7, §20.44 |
//!
//! URIs are kept as text; [`NameAddr::uri`] parses one with [`Uri::parse`] when asked.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

use super::lex::{clip, is_token, is_ws, number, split_list, Cursor};
pub use super::lex::{Param, Params};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// `name-addr` or `addr-spec`, with header parameters: the value of From, To, one Contact,
/// one Route or one Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    display_name: Option<Cow<'a, str>>,
    uri: &'a str,
    params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one element; `what` is the header name for error messages.
    pub fn parse(value: &'a str, what: &'static str) -> Result<NameAddr<'a>> {
        let mut c = Cursor::new(value, what);
        c.skip_ws();
        let display_name;
        let uri;
        if c.peek() == Some(b'"') {
            display_name = Some(c.quoted()?);
            c.skip_ws();
            if c.peek() != Some(b'<') {
                return Err(c.err("a quoted display name must be followed by <URI>"));
            }
            uri = angle_uri(&mut c)?;
        } else if let Some(lt) = c.rest().find('<') {
            // An unquoted display name: tokens separated by whitespace. UTF-8 is tolerated, as
            // many clients send unquoted non-ASCII names.
            let name = c.rest()[..lt].trim_matches(|ch| ch == ' ' || ch == '\t');
            if name
                .bytes()
                .any(|b| matches!(b, b'"' | b';' | b',' | b'>' | b'\\' | b'@'))
            {
                return Err(c.err(format!("invalid unquoted display name {name:?}")));
            }
            display_name = (!name.is_empty()).then_some(Cow::Borrowed(name));
            let skip = lt;
            let mut rest = Cursor::new(&c.rest()[skip..], what);
            let u = angle_uri(&mut rest)?;
            let params = rest.params()?;
            return Ok(NameAddr {
                display_name,
                uri: u,
                params,
            });
        } else {
            // addr-spec: parameters after the URI belong to the header, not the URI.
            display_name = None;
            let u = c.take_while(|b| b != b';' && !is_ws(b));
            if u.is_empty() {
                return Err(c.err("missing URI"));
            }
            check_uri_text(u, &c)?;
            uri = u;
        }
        let params = c.params()?;
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    /// The display name, unquoted and unescaped.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The URI as written.
    pub fn uri_text(&self) -> &'a str {
        self.uri
    }

    /// The URI, parsed (errors are [`Error::InvalidUri`]).
    pub fn uri(&self) -> Result<Uri> {
        Uri::parse(self.uri)
    }

    /// The header parameters (after `>`, or after an addr-spec).
    pub fn params(&self) -> &Params<'a> {
        &self.params
    }

    /// The `tag` parameter (From and To).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

/// Reads `<URI>` at the cursor (which is at `<`).
fn angle_uri<'a>(c: &mut Cursor<'a>) -> Result<&'a str> {
    if !c.eat(b'<') {
        return Err(c.err("expected <"));
    }
    let u = c.take_while(|b| b != b'>');
    if !c.eat(b'>') {
        return Err(c.err("missing >"));
    }
    if u.is_empty() {
        return Err(c.err("empty <>"));
    }
    check_uri_text(u, c)?;
    Ok(u)
}

fn check_uri_text(u: &str, c: &Cursor<'_>) -> Result<()> {
    if u.bytes().any(|b| is_ws(b) || b == b'<' || b == b'"') {
        return Err(c.err(format!("URI {:?} contains a space, < or a quote", clip(u))));
    }
    if !u.contains(':') {
        return Err(c.err(format!("URI {:?} has no scheme", clip(u))));
    }
    Ok(())
}

/// One Via value: `SIP/2.0/transport host[:port];params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    transport: &'a str,
    host: &'a str,
    port: Option<u16>,
    params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via element.
    pub fn parse(value: &'a str) -> Result<Via<'a>> {
        let mut c = Cursor::new(value, "Via");
        c.skip_ws();
        let protocol = c.token("the protocol name")?;
        if !protocol.eq_ignore_ascii_case("SIP") {
            return Err(c.err(format!("protocol {protocol:?} is not SIP")));
        }
        if !c.eat_sep(b'/') {
            return Err(c.err("expected / after SIP"));
        }
        let version = c.token("the protocol version")?;
        if version != "2.0" {
            return Err(c.err(format!("unsupported version {version:?}")));
        }
        if !c.eat_sep(b'/') {
            return Err(c.err("expected / after the version"));
        }
        let transport = c.token("the transport")?;
        if !c.skip_ws() {
            return Err(c.err("expected a space before sent-by"));
        }
        let start = c.pos();
        let host = if c.peek() == Some(b'[') {
            c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(c.err("unterminated IPv6 reference"));
            }
            let h = c.since(start);
            if h[1..h.len() - 1].parse::<Ipv6Addr>().is_err() {
                return Err(c.err(format!("invalid IPv6 reference {h:?}")));
            }
            h
        } else {
            let h = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if h.is_empty() {
                return Err(c.err("missing host in sent-by"));
            }
            h
        };
        let port = if c.eat_sep(b':') {
            let digits = c.take_while(|b| b.is_ascii_digit());
            match digits.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return Err(c.err(format!("invalid port {digits:?}"))),
            }
        } else {
            None
        };
        let params = c.params()?;
        if let Some(r) = params.value("received") {
            if r.parse::<IpAddr>().is_err() {
                return Err(c.err(format!("received={r:?} is not an IP address")));
            }
        }
        match params.get("rport") {
            Some(Some(p)) if p.parse::<u16>().is_err() => {
                return Err(c.err(format!("rport={p:?} is not a port number")));
            }
            _ => {}
        }
        if params.get("branch") == Some(None) {
            return Err(c.err("branch without a value"));
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// The transport as written (`UDP`, `TCP`, `TLS`, `WS`, ...).
    pub fn transport(&self) -> &'a str {
        self.transport
    }

    /// The host of sent-by; an IPv6 address keeps its brackets.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The port of sent-by, if given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The `received` parameter (an IP address).
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `None` without `rport`, `Some(None)` for a bare `rport` (a request for it, RFC 3581),
    /// `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// All parameters.
    pub fn params(&self) -> &Params<'a> {
        &self.params
    }
}

/// `CSeq: number method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (below 2^31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    pub fn parse(value: &'a str) -> Result<CSeq<'a>> {
        let mut c = Cursor::new(value, "CSeq");
        c.skip_ws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(c.err("the sequence number is missing or not a number"));
        }
        let seq = match digits.parse::<u32>() {
            Ok(n) if n < 1 << 31 => n,
            _ => return Err(c.err(format!("sequence number {digits} is not below 2^31"))),
        };
        if c.at_end() {
            return Err(c.err("missing the method"));
        }
        if !c.skip_ws() {
            return Err(c.err("expected a space after the sequence number"));
        }
        let method = c.token("the method")?;
        c.expect_end()?;
        Ok(CSeq { seq, method })
    }
}

/// `Event: package[.template];id=...;params` (RFC 6665).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    package: &'a str,
    params: Params<'a>,
}

impl<'a> Event<'a> {
    pub fn parse(value: &'a str) -> Result<Event<'a>> {
        let mut c = Cursor::new(value, "Event");
        c.skip_ws();
        let package = c.token("the event package")?;
        let params = c.params()?;
        Ok(Event { package, params })
    }

    /// The event type as written (`presence`, `presence.winfo`, ...).
    pub fn package(&self) -> &'a str {
        self.package
    }

    /// The `id` parameter.
    pub fn id(&self) -> Option<&str> {
        self.params.value("id")
    }

    pub fn params(&self) -> &Params<'a> {
        &self.params
    }
}

/// `Subscription-State: state;expires=..;reason=..;retry-after=..` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    state: &'a str,
    expires: Option<u32>,
    retry_after: Option<u32>,
    params: Params<'a>,
}

impl<'a> SubscriptionState<'a> {
    pub fn parse(value: &'a str) -> Result<SubscriptionState<'a>> {
        let mut c = Cursor::new(value, "Subscription-State");
        c.skip_ws();
        let state = c.token("the subscription state")?;
        let params = c.params()?;
        let num = |name: &str| -> Result<Option<u32>> {
            match params.get(name) {
                None => Ok(None),
                Some(None) => Err(c.err(format!("{name} without a value"))),
                Some(Some(v)) => number(v, &format!("Subscription-State {name}"), true).map(Some),
            }
        };
        let expires = num("expires")?;
        let retry_after = num("retry-after")?;
        Ok(SubscriptionState {
            state,
            expires,
            retry_after,
            params,
        })
    }

    /// `active`, `pending`, `terminated` or an extension, as written.
    pub fn state(&self) -> &'a str {
        self.state
    }

    pub fn expires(&self) -> Option<u32> {
        self.expires
    }

    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    pub fn reason(&self) -> Option<&str> {
        self.params.value("reason")
    }

    pub fn params(&self) -> &Params<'a> {
        &self.params
    }
}

/// `Content-Type: type/subtype;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType<'a> {
    media_type: &'a str,
    subtype: &'a str,
    params: Params<'a>,
}

impl<'a> ContentType<'a> {
    pub fn parse(value: &'a str) -> Result<ContentType<'a>> {
        let mut c = Cursor::new(value, "Content-Type");
        c.skip_ws();
        let media_type = c.token("the media type")?;
        if !c.eat_sep(b'/') {
            return Err(c.err("expected / after the media type"));
        }
        let subtype = c.token("the media subtype")?;
        let params = c.params()?;
        Ok(ContentType {
            media_type,
            subtype,
            params,
        })
    }

    pub fn media_type(&self) -> &'a str {
        self.media_type
    }

    pub fn subtype(&self) -> &'a str {
        self.subtype
    }

    /// Whether this is `media_type/subtype`, ignoring case and parameters.
    pub fn is(&self, media_type: &str, subtype: &str) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type)
            && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// `type/subtype` lower-cased, without parameters.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.media_type, self.subtype).to_ascii_lowercase()
    }

    pub fn params(&self) -> &Params<'a> {
        &self.params
    }
}

/// `Accept`: the media ranges a user agent takes, over every Accept header of a message, in
/// order. Present but empty, it takes nothing (RFC 3261 §20.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept<'a> {
    ranges: Vec<MediaRange<'a>>,
}

impl<'a> Accept<'a> {
    /// The ranges of `values`, one value per Accept header line, each a comma-separated list.
    pub fn parse(values: impl IntoIterator<Item = &'a str>) -> Result<Accept<'a>> {
        let mut ranges = Vec::new();
        for value in values {
            for item in split_list(value, "Accept") {
                ranges.push(MediaRange::parse(item?)?);
            }
        }
        Ok(Accept { ranges })
    }

    pub fn ranges(&self) -> &[MediaRange<'a>] {
        &self.ranges
    }

    /// Whether a body of `content_type` (`type/subtype`; parameters and case do not count)
    /// is acceptable. The most specific ranges that match it decide (`type/subtype` before
    /// `type/*` before `*/*`, RFC 2616 §14.1), so `application/*;q=0, application/pidf+xml`
    /// takes PIDF and `application/pidf+xml;q=0, */*` does not; `q=0` is "not at all". A
    /// type no range matches is not acceptable.
    pub fn accepts(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let (media_type, subtype) = essence.split_once('/').unwrap_or((essence, ""));
        let matching = || {
            self.ranges.iter().filter_map(|r| {
                r.specificity(media_type, subtype)
                    .map(|rank| (rank, r.quality))
            })
        };
        let Some(most) = matching().map(|(rank, _)| rank).max() else {
            return false;
        };
        matching().any(|(rank, q)| rank == most && q > 0)
    }
}

/// One element of Accept: `type/subtype`, `type/*` or `*/*`, with parameters, of which `q`
/// (0 to 1 with up to three decimals; 1 when absent) says how much it is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange<'a> {
    media_type: &'a str,
    subtype: &'a str,
    quality: u16,
    params: Params<'a>,
}

impl<'a> MediaRange<'a> {
    pub fn parse(value: &'a str) -> Result<MediaRange<'a>> {
        let mut c = Cursor::new(value, "Accept");
        c.skip_ws();
        let media_type = c.token("the media type")?;
        if !c.eat_sep(b'/') {
            return Err(c.err("expected / after the media type"));
        }
        let subtype = c.token("the media subtype")?;
        if media_type == "*" && subtype != "*" {
            return Err(c.err(format!("*/{subtype} is not a media range")));
        }
        let params = c.params()?;
        let quality = match params.get("q") {
            None => 1000,
            Some(q) => q
                .and_then(qvalue)
                .ok_or_else(|| c.err(format!("q={:?} is not a q-value", q.unwrap_or(""))))?,
        };
        Ok(MediaRange {
            media_type,
            subtype,
            quality,
            params,
        })
    }

    /// The type, `*` in `*/*`.
    pub fn media_type(&self) -> &'a str {
        self.media_type
    }

    /// The subtype, `*` in `type/*` and `*/*`.
    pub fn subtype(&self) -> &'a str {
        self.subtype
    }

    /// The q-value in thousandths: 1000 when absent, 0 for "not acceptable".
    pub fn quality(&self) -> u16 {
        self.quality
    }

    pub fn params(&self) -> &Params<'a> {
        &self.params
    }

    /// How closely this range names `media_type/subtype`: 2 exactly, 1 as `type/*`, 0 as
    /// `*/*`; `None` if it does not match.
    fn specificity(&self, media_type: &str, subtype: &str) -> Option<u8> {
        if self.media_type == "*" {
            return Some(0);
        }
        if !self.media_type.eq_ignore_ascii_case(media_type) {
            return None;
        }
        if self.subtype == "*" {
            return Some(1);
        }
        self.subtype.eq_ignore_ascii_case(subtype).then_some(2)
    }
}

/// `qvalue` (RFC 3261 §25.1): `0[.ddd]` or `1[.000]`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The Contact header(s) of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *` (REGISTER removing every binding).
    Wildcard,
    /// The contacts in order (empty if there is no Contact header).
    List(Vec<NameAddr<'a>>),
}

/// A challenge or credentials: `scheme name=value, name="value", ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthValue<'a> {
    scheme: &'a str,
    params: Params<'a>,
}

impl<'a> AuthValue<'a> {
    /// Parses one value; `what` is the header name for error messages.
    pub fn parse(value: &'a str, what: &'static str) -> Result<AuthValue<'a>> {
        let mut c = Cursor::new(value, what);
        c.skip_ws();
        let scheme = c.token("the authentication scheme")?;
        if !c.at_end() && !c.skip_ws() {
            return Err(c.err("expected a space after the scheme"));
        }
        let params = c.auth_params()?;
        Ok(AuthValue { scheme, params })
    }

    /// `Digest`, as written.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// A parameter (`realm`, `nonce`, `response`, ...), unquoted.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.value(name)
    }

    pub fn params(&self) -> &Params<'a> {
        &self.params
    }
}

/// Checks a Call-ID: `word [ "@" word ]` (RFC 3261 §25.1).
pub(crate) fn check_call_id(value: &str) -> Result<&str> {
    let word = |w: &str| !w.is_empty() && w.bytes().all(super::lex::is_word_byte);
    let ok = match value.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(value),
    };
    if ok {
        Ok(value)
    } else {
        Err(Error::Malformed(format!(
            "Call-ID header: {:?} is not word[@word]",
            clip(value)
        )))
    }
}

/// A list of tokens (Allow, Supported, ...); an empty value is an empty list.
pub(crate) fn tokens<'a>(
    values: impl Iterator<Item = &'a str>,
    what: &'static str,
) -> Result<Vec<&'a str>> {
    let mut out = Vec::new();
    for v in values {
        for item in super::lex::split_list(v, what) {
            let item = item?;
            if !is_token(item) {
                return Err(Error::Malformed(format!(
                    "{what} header: {:?} is not a token",
                    clip(item)
                )));
            }
            out.push(item);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""Smith, \"J\"" <sip:j@example.test;transport=tcp>;tag=ab12"#,
            "From",
        )
        .unwrap();
        assert_eq!(n.display_name(), Some(r#"Smith, "J""#));
        assert_eq!(n.uri_text(), "sip:j@example.test;transport=tcp");
        assert_eq!(n.tag(), Some("ab12"));
        assert_eq!(n.uri().unwrap().host(), "example.test");

        let n = NameAddr::parse("Bob Jones <sip:bob@[2001:db8::9]:5070>", "To").unwrap();
        assert_eq!(n.display_name(), Some("Bob Jones"));
        assert_eq!(n.uri().unwrap().port(), Some(5070));

        let n = NameAddr::parse("sip:carol@example.test;tag=x;expires=60", "To").unwrap();
        assert_eq!(n.display_name(), None);
        assert_eq!(n.uri_text(), "sip:carol@example.test");
        assert_eq!(n.params().value("expires"), Some("60"));

        for bad in [
            "",
            "<sip:a@b",
            "\"x\" sip:a@b",
            "<>",
            "<nouri>",
            "sip:a@b junk",
            "a\"b <sip:a@b>",
        ] {
            assert!(NameAddr::parse(bad, "To").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn via_forms() {
        let v = Via::parse(
            "SIP / 2.0 / UDP [2001:db8::1]:5062;branch=z9hG4bK1;rport=5062;received=2001:db8::99",
        )
        .unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.host(), "[2001:db8::1]");
        assert_eq!(v.port(), Some(5062));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(Some(5062)));
        assert_eq!(v.received(), Some("2001:db8::99"));
        let v = Via::parse("SIP/2.0/TCP pc33.example.test;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.port(), None);
        for bad in [
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP [zz]",
            "SIP/2.0/UDP h:0",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP h;received=nope",
            "SIP/2.0/UDP h;rport=x",
            "SIP/2.0/UDP h;branch",
            "HTTP/2.0/UDP h",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn small_headers() {
        assert_eq!(
            CSeq::parse("  4711   SUBSCRIBE").unwrap(),
            CSeq {
                seq: 4711,
                method: "SUBSCRIBE"
            }
        );
        for bad in [
            "",
            "x NOTIFY",
            "1",
            "1NOTIFY",
            "2147483648 NOTIFY",
            "1 NO TIFY",
        ] {
            assert!(CSeq::parse(bad).is_err(), "{bad:?}");
        }
        let e = Event::parse("presence;id=7").unwrap();
        assert_eq!((e.package(), e.id()), ("presence", Some("7")));
        let s = SubscriptionState::parse("terminated;reason=timeout;retry-after=30").unwrap();
        assert_eq!(s.state(), "terminated");
        assert_eq!(s.reason(), Some("timeout"));
        assert_eq!(s.retry_after(), Some(30));
        assert!(SubscriptionState::parse("active;expires=soon").is_err());
        let t = ContentType::parse("Application/PIDF+XML; charset=UTF-8").unwrap();
        assert!(t.is("application", "pidf+xml"));
        assert_eq!(t.essence(), "application/pidf+xml");
        assert!(ContentType::parse("text").is_err());
        let a = AuthValue::parse(
            r#"Digest username="alice", realm="example.test", nonce="a,b", qop=auth, nc=00000001"#,
            "Authorization",
        )
        .unwrap();
        assert_eq!(a.scheme(), "Digest");
        assert_eq!(a.param("nonce"), Some("a,b"));
        assert_eq!(a.param("QOP"), Some("auth"));
        assert!(AuthValue::parse("Digest realm", "Authorization").is_err());
        assert!(check_call_id("a84b4c76e66710@pc33.example.test").is_ok());
        assert!(check_call_id("a b").is_err());
        assert!(check_call_id("@x").is_err());
    }

    fn accepts(values: &[&str], content_type: &str) -> bool {
        Accept::parse(values.iter().copied())
            .unwrap()
            .accepts(content_type)
    }

    #[test]
    fn accept_matches_media_ranges_with_wildcards_and_q_values() {
        const PIDF: &str = "application/pidf+xml";
        assert!(accepts(&["application/pidf+xml"], PIDF));
        assert!(accepts(&["Application/PIDF+XML;charset=utf-8"], PIDF));
        assert!(accepts(&["application/*"], PIDF));
        assert!(accepts(&["*/*"], "application/pidf+xml; charset=UTF-8"));
        // An RLS watcher (RFC 4662) lists PIDF among its types, in one header or several.
        assert!(accepts(
            &["multipart/related, application/rlmi+xml, application/pidf+xml"],
            PIDF
        ));
        assert!(accepts(
            &[
                "multipart/related",
                "application/rlmi+xml",
                "application/pidf+xml"
            ],
            PIDF
        ));
        assert!(!accepts(&["text/plain"], PIDF));
        assert!(!accepts(&["application/xpidf+xml, text/*"], PIDF));
        assert!(!accepts(&["application/pidf+xml;q=0"], PIDF));
        assert!(!accepts(&["application/pidf+xml;q=0.000"], PIDF));
        assert!(accepts(&["application/pidf+xml;q=0.001"], PIDF));
        assert!(accepts(&["application/pidf+xml;q=1.0"], PIDF));
        // The most specific matching range decides.
        assert!(!accepts(&["application/pidf+xml;q=0, */*"], PIDF));
        assert!(!accepts(&["application/pidf+xml;q=0, application/*"], PIDF));
        assert!(accepts(&["application/*;q=0, application/pidf+xml"], PIDF));
        assert!(accepts(&["*/*;q=0, application/*;q=0.5"], PIDF));
        assert!(!accepts(&["*/*;q=0"], PIDF));
        // Present but empty: nothing is acceptable.
        assert!(!accepts(&[""], PIDF));
        assert!(!accepts(&[], PIDF));

        let r = MediaRange::parse("text/*; q=0.25 ;level=1").unwrap();
        assert_eq!(
            (r.media_type(), r.subtype(), r.quality()),
            ("text", "*", 250)
        );
        assert_eq!(r.params().value("level"), Some("1"));
        for bad in [
            "text",
            "text/",
            "*/plain",
            "text/plain;q=2",
            "text/plain;q=1.5",
            "text/plain;q=0.1234",
            "text/plain;q=.5",
            "text/plain;q",
            "text/plain junk",
        ] {
            assert!(MediaRange::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Accept::parse(["text/plain,,text/html"]).is_err());
    }
}
