//! A parsed SIP message: the start line, an index of header fields over the stored text, and
//! the body. Typed header values are parsed by the accessors, on demand.
//!
//! Three levels of checking:
//! - [`SipMessage::parse_lenient`] checks only the framing: the start line, that every header
//!   line is `name: value` (folded continuation lines are unfolded), the limits, and UTF-8 in
//!   the header section. A message that passes can be inspected, and a request can be answered
//!   with `400 Bad Request` if [`SipMessage::can_answer_bad_request`] says so.
//! - [`SipMessage::check_essentials`] adds what every message needs to be dispatched, at
//!   little cost: Content-Length agrees with the body, Via is present, From, To, Call-ID and
//!   CSeq are present once, CSeq is well-formed and its method is the request's, and a body
//!   has a Content-Type. [`SipMessage::parse`] is these two.
//! - [`SipMessage::check`] also parses the top Via, From, To, Call-ID, Max-Forwards and
//!   Content-Type, so that their accessors cannot fail afterwards.
//!
//! Lines must end in CRLF; a bare CR or LF, and any control character other than HTAB in the
//! header section, is an error. CRLFs before the start line are skipped (RFC 3261 §7.5).
#![forbid(unsafe_code)]

use std::fmt;

use super::header::{
    check_call_id, tokens, Accept, AuthValue, CSeq, Contacts, ContentType, Event, NameAddr,
    SubscriptionState, Via,
};
use super::lex::{clip, is_token, is_token_byte, is_ws, number, plain_prefix, split_list};
use super::name::{classify, Known};
use super::{SipLimits, Transport};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// A byte range in the header text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn get(self, s: &str) -> &str {
        &s[self.start as usize..self.end as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartLine {
    Request { method: Span, uri: Span },
    Response { code: u16, reason: Span },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    known: Known,
    name: Span,
    value: Span,
}

/// A SIP request or response.
#[derive(Clone, PartialEq, Eq)]
pub struct SipMessage {
    /// The start line and the header fields, each line ending in CRLF, folds replaced by
    /// spaces; the empty line is not included.
    head: Box<str>,
    body: Box<[u8]>,
    start: StartLine,
    fields: Vec<Field>,
    /// A framing problem [`SipMessage::check`] reports (Content-Length against the body).
    problem: Option<String>,
}

fn malformed(what: impl fmt::Display) -> Error {
    Error::Malformed(format!("SIP message: {what}"))
}

fn too_large(what: impl fmt::Display) -> Error {
    Error::TooLarge(format!("SIP message: {what}"))
}

impl SipMessage {
    /// Parses one message and makes the checks every message needs before it can be
    /// dispatched: [`SipMessage::parse_lenient`] then [`SipMessage::check_essentials`]. The
    /// syntax of From, To, Via and the other typed headers is checked by their accessors (or
    /// all at once by [`SipMessage::check`]).
    pub fn parse(bytes: &[u8], limits: &SipLimits, transport: Transport) -> Result<SipMessage> {
        let m = SipMessage::parse_lenient(bytes, limits, transport)?;
        m.check_essentials()?;
        Ok(m)
    }

    /// Parses the framing of one message only (see the module documentation).
    pub fn parse_lenient(
        bytes: &[u8],
        limits: &SipLimits,
        transport: Transport,
    ) -> Result<SipMessage> {
        if bytes.len() > limits.max_message_size || bytes.len() > u32::MAX as usize {
            return Err(too_large(format!(
                "{} bytes exceed the limit of {}",
                bytes.len(),
                limits.max_message_size
            )));
        }
        let mut base = 0;
        while bytes[base..].starts_with(b"\r\n") {
            base += 2;
        }
        let input = &bytes[base..];
        if input.is_empty() {
            return Err(malformed("empty message"));
        }

        // One pass over the header section: find line ends, refuse control characters.
        let mut fields: Vec<Field> = Vec::with_capacity(16);
        let mut folds: Vec<usize> = Vec::new();
        let mut start_line_end = None;
        let mut line_start = 0usize;
        let mut i = 0usize;
        let head_end;
        loop {
            // Find the CRLF ending the line that starts at `line_start`.
            let line_end = loop {
                i += plain_prefix(&input[i..]);
                let Some(&b) = input.get(i) else {
                    return Err(malformed(if start_line_end.is_none() {
                        "the start line is not terminated by CRLF".to_string()
                    } else {
                        "the header section is not terminated by an empty line".to_string()
                    }));
                };
                if b == b'\t' {
                    i += 1;
                    continue;
                }
                if b == b'\r' {
                    if input.get(i + 1) == Some(&b'\n') {
                        break i;
                    }
                    if i + 1 == input.len() {
                        return Err(malformed("the header section ends with CR"));
                    }
                    return Err(malformed(format!("bare CR at byte {}", base + i)));
                }
                if b == b'\n' {
                    return Err(malformed(format!("bare LF at byte {}", base + i)));
                }
                return Err(malformed(format!(
                    "control character 0x{b:02x} at byte {} in the {}",
                    base + i,
                    if start_line_end.is_none() {
                        "start line"
                    } else {
                        "header section"
                    }
                )));
            };
            if line_end - line_start > limits.max_line_length {
                return Err(too_large(format!(
                    "a line of {} bytes exceeds the limit of {}",
                    line_end - line_start,
                    limits.max_line_length
                )));
            }
            i = line_end + 2;
            if start_line_end.is_none() {
                start_line_end = Some(line_end);
            } else if line_end == line_start {
                head_end = line_end + 2;
                break;
            } else if is_ws(input[line_start]) {
                let Some(last) = fields.last_mut() else {
                    return Err(malformed(
                        "a continuation line (starting with whitespace) before the first header",
                    ));
                };
                folds.push(line_start - 2);
                last.value.end = line_end as u32;
                if (last.value.end - last.name.start) as usize > limits.max_line_length {
                    return Err(too_large(format!(
                        "a folded header of {} bytes exceeds the line limit of {}",
                        last.value.end - last.name.start,
                        limits.max_line_length
                    )));
                }
            } else {
                if fields.len() == limits.max_headers {
                    return Err(too_large(format!(
                        "more than {} header fields",
                        limits.max_headers
                    )));
                }
                let line = &input[line_start..line_end];
                let name_end = line
                    .iter()
                    .position(|&b| !is_token_byte(b))
                    .unwrap_or(line.len());
                let mut colon = name_end;
                while colon < line.len() && is_ws(line[colon]) {
                    colon += 1;
                }
                if line.get(colon) != Some(&b':') {
                    return Err(malformed(if line.contains(&b':') {
                        format!(
                            "invalid header name {:?}",
                            clip(
                                String::from_utf8_lossy(line)
                                    .split(':')
                                    .next()
                                    .unwrap_or("")
                            )
                        )
                    } else {
                        format!(
                            "header line without a colon: {:?}",
                            clip(&String::from_utf8_lossy(line))
                        )
                    }));
                }
                if name_end == 0 {
                    return Err(malformed("a header line with an empty name"));
                }
                let name = &line[..name_end];
                // `name` is ASCII: token bytes only.
                let known = classify(std::str::from_utf8(name).unwrap_or(""));
                fields.push(Field {
                    known,
                    name: Span {
                        start: line_start as u32,
                        end: (line_start + name_end) as u32,
                    },
                    value: Span {
                        start: (line_start + colon + 1) as u32,
                        end: line_end as u32,
                    },
                });
            }
            line_start = i;
        }

        let mut head_bytes = input[..head_end - 2].to_vec();
        for f in folds {
            head_bytes[f] = b' ';
            head_bytes[f + 1] = b' ';
        }
        let head = match String::from_utf8(head_bytes) {
            Ok(s) => s.into_boxed_str(),
            Err(e) => {
                return Err(malformed(format!(
                    "the header section is not valid UTF-8 (at byte {})",
                    base + e.utf8_error().valid_up_to()
                )))
            }
        };
        // Trim the whitespace around values (folds are spaces now).
        for f in &mut fields {
            let b = head.as_bytes();
            while f.value.start < f.value.end && is_ws(b[f.value.start as usize]) {
                f.value.start += 1;
            }
            while f.value.end > f.value.start && is_ws(b[f.value.end as usize - 1]) {
                f.value.end -= 1;
            }
        }
        let start = parse_start_line(&head[..start_line_end.unwrap_or(0)])?;

        // The body, by Content-Length.
        let available = input.len() - head_end;
        let mut problem = None;
        let mut declared = None;
        for f in fields.iter().filter(|f| f.known == Known::ContentLength) {
            let v = f.value.get(&head);
            match number(v, "Content-Length", false) {
                Ok(n) if declared.unwrap_or(n) == n => declared = Some(n),
                Ok(_) => {
                    problem.get_or_insert_with(|| "conflicting Content-Length headers".into());
                }
                Err(e) => {
                    problem.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let body_len = match (declared, transport) {
            (Some(n), _) if n as usize > available => {
                problem.get_or_insert_with(|| {
                    format!("Content-Length {n} but only {available} bytes of body")
                });
                available
            }
            (Some(n), Transport::Stream) if (n as usize) < available => {
                problem.get_or_insert_with(|| {
                    format!(
                        "{} bytes after the Content-Length {n} body",
                        available - n as usize
                    )
                });
                n as usize
            }
            (Some(n), _) => n as usize,
            (None, Transport::Stream) => {
                problem.get_or_insert_with(|| {
                    "missing Content-Length (mandatory on stream transports)".into()
                });
                available
            }
            (None, Transport::Datagram) => available,
        };
        let body = input[head_end..head_end + body_len].into();
        Ok(SipMessage {
            head,
            body,
            start,
            fields,
            problem,
        })
    }

    /// A response's status code and the first entry of its first Via header field, read in
    /// place, without parsing the message: all a server needs to complete its own client
    /// transaction from the answer (one per NOTIFY it sends), at a fraction of the cost of
    /// [`SipMessage::parse_lenient`] (no copy, no allocation, nothing read past the Via line).
    /// `None` for a request, and whenever what comes before that entry is not as plain as
    /// most messages have it (a line that does not end in CRLF, a fold of the Via line, a
    /// control character or non-UTF-8 bytes in it, no Via at all): the caller then parses
    /// the message whole, which decides. Nothing else in the message is looked at.
    pub fn peek_response(bytes: &[u8]) -> Option<(u16, &str)> {
        /// The end of the line starting at `from`: where its CRLF starts.
        fn line_end(input: &[u8], from: usize) -> Option<usize> {
            let at = from
                + input
                    .get(from..)?
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')?;
            (input.get(at..at + 2) == Some(b"\r\n")).then_some(at)
        }
        let mut base = 0;
        while bytes[base..].starts_with(b"\r\n") {
            base += 2;
        }
        let input = &bytes[base..];
        let end = line_end(input, 0)?;
        let status = &input[..end];
        if status.len() < 12
            || !status[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
            || status[11] != b' '
            || !status[8..11].iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let code = status[8..11]
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return None;
        }
        let mut at = end + 2;
        loop {
            let end = line_end(input, at)?;
            let line = &input[at..end];
            at = end + 2;
            // The empty line (no Via) or another header's fold: nothing to read here.
            if is_ws(*line.first()?) {
                continue;
            }
            let name_end = line.iter().position(|&b| !is_token_byte(b))?;
            let mut colon = name_end;
            while colon < line.len() && is_ws(line[colon]) {
                colon += 1;
            }
            if name_end == 0 || line.get(colon) != Some(&b':') {
                return None;
            }
            // `name` is ASCII: token bytes only.
            let name = std::str::from_utf8(&line[..name_end]).ok()?;
            if classify(name) != Known::Via {
                continue;
            }
            let value = &line[colon + 1..];
            if input.get(at).is_some_and(|&b| is_ws(b))
                || value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
            {
                return None;
            }
            let value = std::str::from_utf8(value).ok()?;
            let top = split_list(value, "Via").next()?.ok()?;
            return Some((code, top));
        }
    }

    /// The checks [`SipMessage::parse`] makes (see the module documentation): Content-Length
    /// agrees with the body; Via is present; From, To, Call-ID and CSeq are present once; CSeq
    /// is well-formed and names the request's method; a body has a Content-Type header.
    pub fn check_essentials(&self) -> Result<()> {
        if let Some(p) = &self.problem {
            return Err(malformed(p));
        }
        if !self.fields.iter().any(|f| f.known == Known::Via) {
            return Err(malformed("missing Via header"));
        }
        self.required(Known::From)?;
        self.required(Known::To)?;
        self.required(Known::CallId)?;
        let cseq = self.cseq()?;
        if let Some(method) = self.method() {
            if cseq.method != method {
                return Err(Error::Malformed(format!(
                    "CSeq header: method {:?} differs from the request method {method:?}",
                    cseq.method
                )));
            }
        }
        if !self.body.is_empty() && self.single(Known::ContentType)?.is_none() {
            return Err(malformed(format!(
                "a body of {} bytes without Content-Type",
                self.body.len()
            )));
        }
        Ok(())
    }

    /// [`SipMessage::check_essentials`], and the syntax of the top Via, From, To, Call-ID,
    /// Max-Forwards and Content-Type: after it succeeds, their accessors succeed too.
    pub fn check(&self) -> Result<()> {
        self.check_essentials()?;
        self.top_via()?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        self.max_forwards()?;
        self.content_type()?;
        Ok(())
    }

    /// Whether this is a request that can be answered with `400 Bad Request`
    /// ([`super::bad_request`]): not an ACK, and with a well-formed top Via, From, To,
    /// Call-ID and CSeq.
    pub fn can_answer_bad_request(&self) -> bool {
        self.method().is_some_and(|m| m != "ACK")
            && self.top_via().is_ok()
            && self.from().is_ok()
            && self.to().is_ok()
            && self.call_id().is_ok()
            && self.cseq().is_ok()
    }

    // ---- start line ----

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request (case-sensitive, as written).
    pub fn method(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method, .. } => Some(method.get(&self.head)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request, as written.
    pub fn request_uri_text(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri.get(&self.head)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, parsed with [`Uri::parse`]; a response is an
    /// [`Error::InvalidArgument`].
    pub fn request_uri(&self) -> Result<Uri> {
        match self.request_uri_text() {
            Some(u) => Uri::parse(u),
            None => Err(Error::InvalidArgument(
                "a response has no Request-URI".into(),
            )),
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason.get(&self.head)),
            StartLine::Request { .. } => None,
        }
    }

    // ---- headers, untyped ----

    fn known(&self, known: Known) -> impl Iterator<Item = &str> + '_ {
        self.fields
            .iter()
            .filter(move |f| f.known == known)
            .map(|f| f.value.get(&self.head))
    }

    /// The value of a header that must appear at most once.
    fn single(&self, known: Known) -> Result<Option<&str>> {
        let mut it = self.known(known);
        let first = it.next();
        if first.is_some() && it.next().is_some() {
            return Err(malformed(format!(
                "more than one {} header",
                known.name().unwrap_or("")
            )));
        }
        Ok(first)
    }

    fn required(&self, known: Known) -> Result<&str> {
        self.single(known)?
            .ok_or_else(|| malformed(format!("missing {} header", known.name().unwrap_or(""))))
    }

    /// The value of the first `name` header (any case; compact forms match their full names).
    pub fn header<'a>(&'a self, name: &str) -> Option<&'a str> {
        let known = classify(name);
        self.fields
            .iter()
            .find(|f| {
                f.known == known
                    && (known != Known::Other || f.name.get(&self.head).eq_ignore_ascii_case(name))
            })
            .map(|f| f.value.get(&self.head))
    }

    /// The values of every `name` header, one per header line, in order. A comma-separated
    /// value is returned whole; see [`SipMessage::header_values`].
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let known = classify(name);
        self.fields
            .iter()
            .filter(move |f| {
                f.known == known
                    && (known != Known::Other || f.name.get(&self.head).eq_ignore_ascii_case(name))
            })
            .map(|f| f.value.get(&self.head))
    }

    /// The elements of every `name` header, with comma-separated values split (commas inside
    /// quoted strings and `<...>` do not split). Only meaningful for list headers: Via,
    /// Contact, Route, Allow, Supported, Accept, Require, ...
    pub fn header_values<'a>(&'a self, name: &'a str) -> Result<Vec<&'a str>> {
        let what = classify(name).name().unwrap_or("list");
        let mut out = Vec::new();
        for v in self.headers(name) {
            for item in split_list(v, what) {
                out.push(item?);
            }
        }
        Ok(out)
    }

    /// Every header field as `(name as written, value)`, in order.
    pub fn all_headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields
            .iter()
            .map(|f| (f.name.get(&self.head), f.value.get(&self.head)))
    }

    /// The number of header fields (lines).
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// The message as bytes: its start line and header fields as received (folded lines
    /// unfolded), the empty line, the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 2 + self.body.len());
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The body (possibly binary).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    // ---- headers, typed ----

    fn name_addrs(&self, known: Known, what: &'static str) -> Result<Vec<NameAddr<'_>>> {
        let mut out = Vec::new();
        for v in self.known(known) {
            for item in split_list(v, what) {
                out.push(NameAddr::parse(item?, what)?);
            }
        }
        Ok(out)
    }

    /// Every Via value, top first, whether in repeated headers or comma-separated.
    pub fn via(&self) -> Result<Vec<Via<'_>>> {
        let mut out = Vec::new();
        for v in self.known(Known::Via) {
            for item in split_list(v, "Via") {
                out.push(Via::parse(item?)?);
            }
        }
        if out.is_empty() {
            return Err(malformed("missing Via header"));
        }
        Ok(out)
    }

    /// The top Via value (only it is parsed).
    pub fn top_via(&self) -> Result<Via<'_>> {
        let first = self
            .known(Known::Via)
            .next()
            .ok_or_else(|| malformed("missing Via header"))?;
        match split_list(first, "Via").next() {
            Some(item) => Via::parse(item?),
            None => Err(Error::Malformed("Via header: empty value".into())),
        }
    }

    /// From (required, once).
    pub fn from(&self) -> Result<NameAddr<'_>> {
        NameAddr::parse(self.required(Known::From)?, "From")
    }

    /// To (required, once).
    pub fn to(&self) -> Result<NameAddr<'_>> {
        NameAddr::parse(self.required(Known::To)?, "To")
    }

    /// Call-ID (required, once).
    pub fn call_id(&self) -> Result<&str> {
        check_call_id(self.required(Known::CallId)?)
    }

    /// CSeq (required, once).
    pub fn cseq(&self) -> Result<CSeq<'_>> {
        CSeq::parse(self.required(Known::CSeq)?)
    }

    /// Contact: `*`, or every contact in order (an empty list without Contact).
    pub fn contact(&self) -> Result<Contacts<'_>> {
        let mut list = Vec::new();
        let mut wildcard = false;
        for v in self.known(Known::Contact) {
            for item in split_list(v, "Contact") {
                let item = item?;
                if item == "*" {
                    wildcard = true;
                } else {
                    list.push(NameAddr::parse(item, "Contact")?);
                }
            }
        }
        match (wildcard, list.is_empty()) {
            (false, _) => Ok(Contacts::List(list)),
            (true, true) if self.known(Known::Contact).count() == 1 => Ok(Contacts::Wildcard),
            (true, _) => Err(Error::Malformed(
                "Contact header: * combined with other contacts".into(),
            )),
        }
    }

    /// Expires (delta-seconds; values over 2^32-1 saturate).
    pub fn expires(&self) -> Result<Option<u32>> {
        self.single(Known::Expires)?
            .map(|v| number(v, "Expires header", true))
            .transpose()
    }

    /// Retry-After in seconds (RFC 3261 §20.33: `delta-seconds [comment] *(;param)`), at most
    /// a day; `None` without one or when it starts with no number. What a refused NOTIFY's
    /// dialog waits, and how long a server that answered `503` is left out (RFC 3263 §4.3).
    pub fn retry_after(&self) -> Option<u64> {
        let digits = self
            .header("Retry-After")?
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?;
        Some(digits.parse::<u64>().ok()?.min(86_400))
    }

    /// Min-Expires (in 423 responses).
    pub fn min_expires(&self) -> Result<Option<u32>> {
        self.single(Known::MinExpires)?
            .map(|v| number(v, "Min-Expires header", true))
            .transpose()
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Result<Option<u32>> {
        self.single(Known::MaxForwards)?
            .map(|v| number(v, "Max-Forwards header", false))
            .transpose()
    }

    /// Content-Length as declared, if present and a number.
    pub fn content_length(&self) -> Option<u32> {
        self.known(Known::ContentLength)
            .next()
            .and_then(|v| number(v, "Content-Length", false).ok())
    }

    /// Event (RFC 6665).
    pub fn event(&self) -> Result<Option<Event<'_>>> {
        self.single(Known::Event)?.map(Event::parse).transpose()
    }

    /// Subscription-State (RFC 6665).
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState<'_>>> {
        self.single(Known::SubscriptionState)?
            .map(SubscriptionState::parse)
            .transpose()
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<ContentType<'_>>> {
        self.single(Known::ContentType)?
            .map(ContentType::parse)
            .transpose()
    }

    /// Accept, over every Accept header; `None` without one. An empty Accept is present and
    /// takes nothing.
    pub fn accept(&self) -> Result<Option<Accept<'_>>> {
        if self.headers("Accept").next().is_none() {
            return Ok(None);
        }
        Accept::parse(self.headers("Accept")).map(Some)
    }

    /// Record-Route, in order.
    pub fn record_route(&self) -> Result<Vec<NameAddr<'_>>> {
        self.name_addrs(Known::RecordRoute, "Record-Route")
    }

    /// Route, in order.
    pub fn route(&self) -> Result<Vec<NameAddr<'_>>> {
        self.name_addrs(Known::Route, "Route")
    }

    /// Allow: the methods.
    pub fn allow(&self) -> Result<Vec<&str>> {
        tokens(self.known(Known::Allow), "Allow")
    }

    /// Supported: the option tags.
    pub fn supported(&self) -> Result<Vec<&str>> {
        tokens(self.known(Known::Supported), "Supported")
    }

    /// Allow-Events: the event packages.
    pub fn allow_events(&self) -> Result<Vec<&str>> {
        tokens(self.known(Known::AllowEvents), "Allow-Events")
    }

    fn auth(&self, known: Known, what: &'static str) -> Result<Vec<AuthValue<'_>>> {
        self.known(known)
            .map(|v| AuthValue::parse(v, what))
            .collect()
    }

    /// Authorization credentials, one per header.
    pub fn authorization(&self) -> Result<Vec<AuthValue<'_>>> {
        self.auth(Known::Authorization, "Authorization")
    }

    /// Proxy-Authorization credentials, one per header.
    pub fn proxy_authorization(&self) -> Result<Vec<AuthValue<'_>>> {
        self.auth(Known::ProxyAuthorization, "Proxy-Authorization")
    }

    /// WWW-Authenticate challenges, one per header.
    pub fn www_authenticate(&self) -> Result<Vec<AuthValue<'_>>> {
        self.auth(Known::WwwAuthenticate, "WWW-Authenticate")
    }

    /// Proxy-Authenticate challenges, one per header.
    pub fn proxy_authenticate(&self) -> Result<Vec<AuthValue<'_>>> {
        self.auth(Known::ProxyAuthenticate, "Proxy-Authenticate")
    }
}

/// The head with the values of the credential header fields (Authorization,
/// Proxy-Authorization) replaced, so that a message's `Debug` form never shows a digest
/// response (or Basic credentials) wherever it is printed.
fn redacted_head(head: &str) -> std::borrow::Cow<'_, str> {
    let secret = |line: &str| {
        line.split_once(':').is_some_and(|(name, _)| {
            let name = name.trim_end_matches([' ', '\t']);
            name.eq_ignore_ascii_case("Authorization")
                || name.eq_ignore_ascii_case("Proxy-Authorization")
        })
    };
    if !head.split("\r\n").any(secret) {
        return std::borrow::Cow::Borrowed(head);
    }
    let lines: Vec<std::borrow::Cow<'_, str>> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, _)) if secret(line) => format!("{name}: <hidden>").into(),
            _ => line.into(),
        })
        .collect();
    std::borrow::Cow::Owned(lines.join("\r\n"))
}

impl fmt::Debug for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipMessage")
            .field("head", &redacted_head(&self.head))
            .field("body_len", &self.body.len())
            .field("problem", &self.problem)
            .finish()
    }
}

/// `Method SP Request-URI SP SIP/2.0` or `SIP/2.0 SP code SP reason`.
fn parse_start_line(line: &str) -> Result<StartLine> {
    let span = |start: usize, end: usize| Span {
        start: start as u32,
        end: end as u32,
    };
    // The end of the word starting at `from` (the next space, or the end of the line).
    let word_end = |from: usize| line[from..].find(' ').map_or(line.len(), |i| from + i);
    let after = |end: usize| (end + 1).min(line.len());
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let version_end = word_end(0);
        check_version(&line[..version_end])?;
        let code_start = after(version_end);
        let code_end = word_end(code_start);
        let code = &line[code_start..code_end];
        let n = match code.parse::<u16>() {
            Ok(n) if code.len() == 3 && (100..=699).contains(&n) => n,
            _ => {
                return Err(malformed(format!(
                    "status code {:?} is not a number from 100 to 699",
                    clip(code)
                )))
            }
        };
        return Ok(StartLine::Response {
            code: n,
            reason: span(after(code_end), line.len()),
        });
    }
    let method_end = word_end(0);
    let method = &line[..method_end];
    if !is_token(method) {
        return Err(malformed(format!(
            "request method {:?} is not a token",
            clip(method)
        )));
    }
    let uri_start = after(method_end);
    let uri_end = word_end(uri_start);
    if uri_end == line.len() {
        return Err(malformed(format!(
            "request line {:?} is not \"method Request-URI SIP/2.0\"",
            clip(line)
        )));
    }
    let uri = &line[uri_start..uri_end];
    if uri.is_empty() || uri.contains('\t') || !uri.contains(':') {
        return Err(malformed(format!(
            "Request-URI {:?} is not a URI",
            clip(uri)
        )));
    }
    check_version(&line[uri_end + 1..])?;
    Ok(StartLine::Request {
        method: span(0, method_end),
        uri: span(uri_start, uri_end),
    })
}

fn check_version(v: &str) -> Result<()> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else {
        Err(malformed(format!(
            "unsupported protocol version {:?} (expected SIP/2.0)",
            clip(v)
        )))
    }
}
