//! Building messages: requests, responses to a request (RFC 3261 §8.2.6), and the
//! `400 Bad Request` for a request that failed [`SipMessage::check`].
//!
//! Header names and values are checked as they are added (a name is a token; a value has no
//! CR, LF or other control character), so what [`MessageBuilder::build`] writes parses back.
//! Content-Length is always computed, never taken from the caller.
#![forbid(unsafe_code)]

use super::lex::{clip, is_token};
use super::name::{classify, Known};
use super::SipMessage;
use crate::error::{Error, Result};

/// A request or response under construction. The start line and the headers are written
/// into one buffer as they come (a server builds one message per NOTIFY: no allocation per
/// header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuilder {
    /// The start line and the headers, each line with its CRLF.
    head: Vec<u8>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("SIP builder: {what}"))
}

/// Whether `s` can be written on a SIP line: no control character other than HTAB.
fn is_line_text(s: &str) -> bool {
    !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

impl MessageBuilder {
    /// A request `method request_uri SIP/2.0`.
    pub fn request(method: &str, request_uri: &str) -> Result<MessageBuilder> {
        if !is_token(method) {
            return Err(invalid(format!("method {:?} is not a token", clip(method))));
        }
        if request_uri.is_empty()
            || !request_uri.contains(':')
            || request_uri
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>')
        {
            return Err(invalid(format!(
                "Request-URI {:?} is not a URI",
                clip(request_uri)
            )));
        }
        Ok(MessageBuilder::with_start(&[
            method,
            " ",
            request_uri,
            " SIP/2.0",
        ]))
    }

    /// A response `SIP/2.0 status reason`, without headers.
    pub fn response(status: u16, reason: &str) -> Result<MessageBuilder> {
        if !(100..=699).contains(&status) {
            return Err(invalid(format!("status {status} is not from 100 to 699")));
        }
        if !is_line_text(reason) {
            return Err(invalid(format!(
                "reason phrase {:?} contains a control character",
                clip(reason)
            )));
        }
        Ok(MessageBuilder::with_start(&[
            "SIP/2.0 ",
            &status.to_string(),
            " ",
            reason,
        ]))
    }

    /// A response to `request` as RFC 3261 §8.2.6.2 says: its Via headers in order, From,
    /// To (with `to_tag` added when the request's To has no tag), Call-ID and CSeq, copied.
    pub fn response_to(
        request: &SipMessage,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Result<MessageBuilder> {
        if !request.is_request() {
            return Err(invalid("response_to needs a request, not a response"));
        }
        let mut b = MessageBuilder::response(status, reason)?;
        request.top_via()?;
        let to = request.to()?;
        request.from()?;
        request.call_id()?;
        request.cseq()?;
        for via in request.headers("Via") {
            b.push("Via", via);
        }
        b.push("From", request.header("From").unwrap_or_default());
        let to_value = request.header("To").unwrap_or_default();
        match to_tag {
            Some(tag) if to.tag().is_none() => {
                if !is_token(tag) {
                    return Err(invalid(format!("To tag {:?} is not a token", clip(tag))));
                }
                b.push("To", &format!("{to_value};tag={tag}"));
            }
            _ => b.push("To", to_value),
        }
        b.push("Call-ID", request.header("Call-ID").unwrap_or_default());
        b.push("CSeq", request.header("CSeq").unwrap_or_default());
        Ok(b)
    }

    fn with_start(start: &[&str]) -> MessageBuilder {
        let mut head = Vec::with_capacity(512);
        for part in start {
            head.extend_from_slice(part.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        MessageBuilder {
            head,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, value: &str) {
        self.head.reserve(name.len() + value.len() + 4);
        self.head.extend_from_slice(name.as_bytes());
        self.head.extend_from_slice(b": ");
        self.head.extend_from_slice(value.as_bytes());
        self.head.extend_from_slice(b"\r\n");
    }

    /// Appends a header. Content-Length is refused (it is computed); so is Content-Type
    /// (given with [`MessageBuilder::body`]).
    pub fn header(&mut self, name: &str, value: &str) -> Result<&mut MessageBuilder> {
        Self::check_name(name)?;
        if !is_line_text(value) {
            return Err(invalid(format!(
                "value of {name} contains a control character: {:?}",
                clip(value)
            )));
        }
        self.push(name, value.trim_matches(|c| c == ' ' || c == '\t'));
        Ok(self)
    }

    /// Appends a header whose value is `parts` written one after the other, as they are (no
    /// trimming): what [`MessageBuilder::header`] does with `parts.concat()`, without making
    /// that string (a server writes several such headers into every NOTIFY).
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) -> Result<&mut MessageBuilder> {
        Self::check_name(name)?;
        if let Some(bad) = parts.iter().find(|p| !is_line_text(p)) {
            return Err(invalid(format!(
                "value of {name} contains a control character: {:?}",
                clip(bad)
            )));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.head.reserve(name.len() + len + 4);
        self.head.extend_from_slice(name.as_bytes());
        self.head.extend_from_slice(b": ");
        for part in parts {
            self.head.extend_from_slice(part.as_bytes());
        }
        self.head.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// A header name must be a token, and neither Content-Length nor Content-Type.
    fn check_name(name: &str) -> Result<()> {
        if !is_token(name) {
            return Err(invalid(format!(
                "header name {:?} is not a token",
                clip(name)
            )));
        }
        // Only names starting with c or l can be Content-Length or Content-Type (or their
        // compact forms): the others skip the lookup.
        if name.as_bytes()[0].eq_ignore_ascii_case(&b'c')
            || name.as_bytes()[0].eq_ignore_ascii_case(&b'l')
        {
            match classify(name) {
                Known::ContentLength => {
                    return Err(invalid("Content-Length is computed from the body"));
                }
                Known::ContentType => {
                    return Err(invalid("Content-Type is set together with the body"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sets the body and its Content-Type (`type/subtype[;params]`).
    pub fn body(&mut self, content_type: &str, body: &[u8]) -> Result<&mut MessageBuilder> {
        if !is_line_text(content_type) {
            return Err(invalid(format!(
                "Content-Type {:?} contains a control character",
                clip(content_type)
            )));
        }
        super::header::ContentType::parse(content_type)
            .map_err(|e| invalid(format!("Content-Type: {e}")))?;
        self.content_type = Some(content_type.trim().to_string());
        self.body = body.to_vec();
        Ok(self)
    }

    /// [`MessageBuilder::body`] for a body the caller has no more use for: taken, not
    /// copied (a list NOTIFY's body is kilobytes).
    pub fn body_owned(&mut self, content_type: &str, body: Vec<u8>) -> Result<&mut MessageBuilder> {
        self.body(content_type, &[])?;
        self.body = body;
        Ok(self)
    }

    /// The message as bytes: start line, headers in the order added, Content-Type if there is
    /// a body, Content-Length, the empty line and the body.
    pub fn build(&self) -> Vec<u8> {
        let ct_len = self.content_type.as_ref().map_or(0, |c| c.len() + 16);
        let mut out = Vec::with_capacity(self.head.len() + ct_len + 40 + self.body.len());
        out.extend_from_slice(&self.head);
        if let Some(ct) = &self.content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ct.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// The longest reason phrase [`bad_request`] writes, in bytes.
const MAX_REASON: usize = 200;

/// The `400 Bad Request` answering `request`, whose reason phrase names `problem` (the error
/// [`SipMessage::check`] returned). Refused unless [`SipMessage::can_answer_bad_request`].
pub fn bad_request(request: &SipMessage, problem: &Error, to_tag: Option<&str>) -> Result<Vec<u8>> {
    if !request.can_answer_bad_request() {
        return Err(invalid(
            "the request lacks a well-formed Via, From, To, Call-ID or CSeq (or is an ACK)",
        ));
    }
    let text = match problem {
        Error::Malformed(m) | Error::TooLarge(m) => m.as_str(),
        _ => "",
    };
    let text = text.strip_prefix("SIP message: ").unwrap_or(text);
    let mut reason = String::from("Bad Request");
    if !text.is_empty() {
        reason.push_str(" - ");
        for c in text.chars() {
            if reason.len() + c.len_utf8() > MAX_REASON {
                break;
            }
            reason.push(if c.is_control() { ' ' } else { c });
        }
    }
    Ok(MessageBuilder::response_to(request, 400, &reason, to_tag)?.build())
}
