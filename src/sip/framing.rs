//! Cutting a stream (TCP, TLS) into SIP messages and keep-alives.
//!
//! A [`Framer`] looks at the front of a buffer that accumulates stream data and says whether
//! a whole [`Frame`] is there: a message (header section plus Content-Length bytes of body,
//! RFC 3261 §18.3), or a keep-alive (RFC 5626 §4.4.1): a *ping* is CRLF CRLF, a *pong* is one
//! CRLF. The caller removes [`Frame::len`] bytes from the front and asks again.
//!
//! A ping split across reads so that only its first CRLF has arrived is reported as a pong
//! (there is no way to know more is coming); a server answering pings should count
//! consecutive keep-alive CRLFs rather than rely on seeing both in one read.
//!
//! The framer remembers how far it has scanned, so feeding a message byte by byte costs
//! linear time; give it the same buffer (grown at the end) until it returns a frame.
//! Garbage (a control character, a bare LF, a first line that is not a SIP start line), a
//! missing Content-Length, and anything over the [`SipLimits`] are errors: the stream cannot
//! be resynchronised and should be closed.
#![forbid(unsafe_code)]

use super::lex::{clip, is_token_byte, is_ws, number};
use super::name::{classify, Known};
use super::SipLimits;
use crate::error::{Error, Result};

/// What is complete at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// CRLF CRLF: a keep-alive ping (4 bytes); answer with a pong (CRLF).
    Ping,
    /// CRLF: a keep-alive pong (2 bytes).
    Pong,
    /// A message of this many bytes; hand them to [`super::SipMessage::parse`] with
    /// [`super::Transport::Stream`].
    Message(usize),
}

impl Frame {
    /// How many bytes the frame takes at the front of the buffer.
    pub fn len(&self) -> usize {
        match *self {
            Frame::Ping => 4,
            Frame::Pong => 2,
            Frame::Message(n) => n,
        }
    }

    /// Never true: every frame takes at least two bytes.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Incremental framer for one stream (see the module documentation).
#[derive(Debug, Clone)]
pub struct Framer {
    limits: SipLimits,
    /// Where the line being scanned starts, and how far it has been scanned.
    line_start: usize,
    pos: usize,
    /// Once the header section is complete: the whole message's length.
    total: Option<usize>,
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("SIP stream: {what}"))
}

fn too_large(what: impl std::fmt::Display) -> Error {
    Error::TooLarge(format!("SIP stream: {what}"))
}

/// Frames the front of `buf` without keeping state (rescans from the start on every call).
pub fn frame(buf: &[u8], limits: &SipLimits) -> Result<Option<Frame>> {
    Framer::new(*limits).next_frame(buf)
}

impl Framer {
    pub fn new(limits: SipLimits) -> Framer {
        Framer {
            limits,
            line_start: 0,
            pos: 0,
            total: None,
        }
    }

    /// Forgets a partly scanned message (for a buffer that was cleared).
    pub fn reset(&mut self) {
        self.line_start = 0;
        self.pos = 0;
        self.total = None;
    }

    /// `Ok(Some(frame))` when a whole frame is at the front of `buf`, `Ok(None)` when more
    /// data is needed.
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Option<Frame>> {
        let found = self.scan(buf);
        if !matches!(found, Ok(None)) {
            self.reset();
        }
        found
    }

    fn scan(&mut self, buf: &[u8]) -> Result<Option<Frame>> {
        if let Some(total) = self.total {
            return Ok((buf.len() >= total).then_some(Frame::Message(total)));
        }
        if self.pos == 0 {
            match buf {
                [] | [b'\r'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Some(Frame::Ping)),
                [b'\r', b'\n', b'\r', ..] => {
                    return Err(malformed("CR CR LF CR not followed by LF"));
                }
                [b'\r', b'\n', ..] => return Ok(Some(Frame::Pong)),
                [b'\r', ..] | [b'\n', ..] => return Err(malformed("bare CR or LF")),
                [b, ..] if !is_token_byte(*b) => {
                    return Err(malformed(format!(
                        "byte 0x{b:02x} cannot start a SIP message"
                    )));
                }
                _ => {}
            }
        }
        let limits = &self.limits;
        let mut i = self.pos;
        let mut line_start = self.line_start;
        let head_len = loop {
            let Some(&b) = buf.get(i) else {
                self.pos = i;
                self.line_start = line_start;
                return Ok(None);
            };
            if i >= limits.max_message_size {
                return Err(too_large(format!(
                    "no end of headers within the message limit of {} bytes",
                    limits.max_message_size
                )));
            }
            if i - line_start > limits.max_line_length {
                return Err(too_large(format!(
                    "a line exceeds the limit of {} bytes",
                    limits.max_line_length
                )));
            }
            i += 1;
            match b {
                b'\n' => {
                    if i < 2 || buf[i - 2] != b'\r' {
                        return Err(malformed(format!("bare LF at byte {}", i - 1)));
                    }
                    let line = &buf[line_start..i - 2];
                    if line.is_empty() {
                        break i;
                    }
                    if line_start == 0 && !is_start_line(line) {
                        return Err(malformed(format!(
                            "{:?} is not a SIP start line",
                            clip(&String::from_utf8_lossy(line))
                        )));
                    }
                    line_start = i;
                }
                0 => return Err(malformed(format!("NUL byte at byte {}", i - 1))),
                _ => {}
            }
        };
        let length = content_length(&buf[..head_len])?;
        let total = head_len + length;
        if total > limits.max_message_size {
            return Err(too_large(format!(
                "a message of {total} bytes exceeds the limit of {}",
                limits.max_message_size
            )));
        }
        if buf.len() >= total {
            return Ok(Some(Frame::Message(total)));
        }
        self.total = Some(total);
        Ok(None)
    }
}

/// `... SIP/2.0` (a request line) or `SIP/2.0 ...` (a status line), case-insensitively.
fn is_start_line(line: &[u8]) -> bool {
    const V: &[u8] = b"SIP/2.0";
    (line.len() > V.len() && line[..V.len()].eq_ignore_ascii_case(V) && line[V.len()] == b' ')
        || (line.len() > V.len()
            && line[line.len() - V.len()..].eq_ignore_ascii_case(V)
            && line[line.len() - V.len() - 1] == b' ')
}

/// The Content-Length of a complete header section (which ends in CRLF CRLF).
fn content_length(head: &[u8]) -> Result<usize> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<u32> = None;
    let mut lines = text.split("\r\n").skip(1).peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if classify(name.trim_end_matches([' ', '\t'])) != Known::ContentLength {
            continue;
        }
        let mut value = value.to_string();
        while let Some(next) = lines.next_if(|l| l.bytes().next().is_some_and(is_ws)) {
            value.push(' ');
            value.push_str(next);
        }
        let n = number(
            value.trim_matches([' ', '\t']),
            "SIP stream: Content-Length",
            false,
        )?;
        if found.is_some_and(|f| f != n) {
            return Err(malformed("conflicting Content-Length headers"));
        }
        found = Some(n);
    }
    found
        .map(|n| n as usize)
        .ok_or_else(|| malformed("missing Content-Length (mandatory on stream transports)"))
}
