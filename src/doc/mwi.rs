//! Message summaries: the body of the `message-summary` event package (RFC 3842) that lights
//! the voicemail lamp on a phone.
//!
//! The body is text, not XML: header-like lines, then optionally a blank line and blocks of
//! message headers describing individual messages, one block per message, blocks separated by
//! blank lines:
//!
//! ```text
//! Messages-Waiting: yes
//! Message-Account: sip:alice@vmail.example.test
//! Voice-Message: 2/8 (0/2)
//!
//! From: <sip:bob@example.test>
//! Subject: call me
//! ```
//!
//! Parsing is tolerant where devices differ and strict where a lamp could go wrong: header
//! names match case-insensitively, LF-only line ends and extra blanks are accepted, a line
//! starting with a space or tab continues the previous one (SIP folding), and the summary
//! headers may come in any order; but `Messages-Waiting` must be present exactly once with
//! `yes` or `no`, counts must be `new/old` with an optional `(urgent-new/urgent-old)`, each
//! fitting in a `u32`, and every line must be `Name: value`. Errors are
//! [`Error::Malformed`] naming the line; a body over [`Limits::max_bytes`] is
//! [`Error::TooLarge`].
//!
//! A summary line is a line whose name is one of the RFC 3458 message-context classes
//! (`voice-message`, `fax-message`, `pager-message`, `multimedia-message`, `text-message`,
//! `none`; any case), or any other name ending in `-message` whose value has the count
//! syntax (a future class, kept as [`MessageClass::Other`]). Every other line of the first
//! part is kept in [`MessageSummary::extra_headers`] and written back.
//!
//! [`MessageSummary::to_text`] writes CRLF line ends in a fixed order: `Messages-Waiting`,
//! `Message-Account`, the counts, the extra headers, then the message blocks.
//! `parse(to_text(m)) == m` for every parsed `m`, and for every built `m` that follows the
//! field documentation (names are tokens, values hold no line breaks and no leading or
//! trailing blanks, message blocks are not empty, `Other` names end in `-message`), given a
//! size limit that fits the written text (CRLF and `Name: value` spacing can make it longer
//! than the input was).
#![forbid(unsafe_code)]

use std::fmt;

use crate::doc::Limits;
use crate::error::{Error, Result};

/// The MIME type of a message summary body.
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// The name used in error messages and size checks.
const DOC: &str = "message-summary";

/// The kind of message a count is about (the message-context class of RFC 3458 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `Voice-Message`: voicemail.
    Voice,
    /// `Fax-Message`.
    Fax,
    /// `Pager-Message`.
    Pager,
    /// `Multimedia-Message`.
    Multimedia,
    /// `Text-Message`.
    Text,
    /// `None`: messages without a context class.
    None,
    /// Another class, named as written (a token ending in `-message`, e.g. `Video-Message`).
    Other(String),
}

impl MessageClass {
    /// The line name this class is written with (`Voice-Message`, ..., `None`, or the
    /// `Other` name as written).
    pub fn as_str(&self) -> &str {
        match self {
            MessageClass::Voice => "Voice-Message",
            MessageClass::Fax => "Fax-Message",
            MessageClass::Pager => "Pager-Message",
            MessageClass::Multimedia => "Multimedia-Message",
            MessageClass::Text => "Text-Message",
            MessageClass::None => "None",
            MessageClass::Other(name) => name,
        }
    }

    /// The class of a known line name (any case); `None` (the Rust one) for other names.
    pub fn known(name: &str) -> Option<MessageClass> {
        [
            MessageClass::Voice,
            MessageClass::Fax,
            MessageClass::Pager,
            MessageClass::Multimedia,
            MessageClass::Text,
            MessageClass::None,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for MessageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One summary line: `Voice-Message: 2/8 (0/2)` is 2 new and 8 old messages, of which 0 new
/// and 2 old are urgent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    /// Which kind of message is counted.
    pub class: MessageClass,
    /// New (unheard, unread) messages.
    pub new: u32,
    /// Old (already heard or read) messages.
    pub old: u32,
    /// Urgent messages among the new ones, when the server says. Parsing sets both urgent
    /// counts or neither; when writing, one set alone is written with the other as 0.
    pub urgent_new: Option<u32>,
    /// Urgent messages among the old ones, when the server says.
    pub urgent_old: Option<u32>,
}

impl MessageCount {
    /// A count without urgent figures.
    pub fn new(class: MessageClass, new: u32, old: u32) -> MessageCount {
        MessageCount {
            class,
            new,
            old,
            urgent_new: None,
            urgent_old: None,
        }
    }

    /// The same count with urgent figures.
    pub fn with_urgent(mut self, urgent_new: u32, urgent_old: u32) -> MessageCount {
        self.urgent_new = Some(urgent_new);
        self.urgent_old = Some(urgent_old);
        self
    }
}

/// The headers of one message, from the optional part after the summary (RFC 3842 §5.2),
/// e.g. `From`, `Subject`, `Date`, `Priority`, `Message-ID`, `Message-Context`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageHeaders {
    /// `(name, value)` in written order, names as written, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl MessageHeaders {
    /// The value of the first header with this name (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// A message summary (RFC 3842 `application/simple-message-summary`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageSummary {
    /// `Messages-Waiting`: whether the lamp should be lit.
    pub messages_waiting: bool,
    /// `Message-Account`: the URI of the mailbox the summary is about, as written.
    pub account: Option<String>,
    /// The summary lines, in written order, at most one per class.
    pub counts: Vec<MessageCount>,
    /// Other lines of the summary part, `(name, value)` in written order, kept so they are
    /// written back.
    pub extra_headers: Vec<(String, String)>,
    /// One block per described message, in written order.
    pub message_headers: Vec<MessageHeaders>,
}

impl MessageSummary {
    /// An empty summary: the lamp lit or not, nothing else.
    pub fn new(messages_waiting: bool) -> MessageSummary {
        MessageSummary {
            messages_waiting,
            ..MessageSummary::default()
        }
    }

    /// The count line of a class, if present.
    pub fn count(&self, class: &MessageClass) -> Option<&MessageCount> {
        self.counts.iter().find(|c| c.class == *class)
    }

    /// The value of the first extra header with this name (case-insensitive).
    pub fn extra_header(&self, name: &str) -> Option<&str> {
        find(&self.extra_headers, name)
    }

    /// Parses a message summary body.
    pub fn parse(input: &str, limits: &Limits) -> Result<MessageSummary> {
        limits.check_size(DOC, input.len())?;
        let lines = logical_lines(input)?;
        let mut blocks = lines.split(|l| l.text.is_empty()).filter(|b| !b.is_empty());
        let Some(summary) = blocks.next() else {
            return Err(Error::malformed(
                DOC,
                "empty body (Messages-Waiting is required)",
            ));
        };

        let mut waiting = None;
        let mut out = MessageSummary::default();
        for line in summary {
            let (name, value) = line.header()?;
            if name.eq_ignore_ascii_case("Messages-Waiting") {
                if waiting.is_some() {
                    return Err(line.error("duplicate Messages-Waiting line"));
                }
                waiting = Some(match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => {
                        return Err(line
                            .error(format!("Messages-Waiting must be yes or no, not {value:?}")))
                    }
                });
            } else if name.eq_ignore_ascii_case("Message-Account") {
                if out.account.is_some() {
                    return Err(line.error("duplicate Message-Account line"));
                }
                if value.is_empty() {
                    return Err(line.error("Message-Account is empty"));
                }
                out.account = Some(value.to_owned());
            } else if let Some(class) = MessageClass::known(name) {
                let figures = counts(value).map_err(|what| line.error(what))?;
                out.push_count(line, class, figures)?;
            } else {
                // A future class only if it looks like one; otherwise an unknown header.
                let future = ends_with_ignore_case(name, "-message")
                    .then(|| counts(value).ok())
                    .flatten();
                match future {
                    Some(figures) => {
                        let class = MessageClass::Other(name.to_owned());
                        out.push_count(line, class, figures)?;
                    }
                    None => out.extra_headers.push((name.to_owned(), value.to_owned())),
                }
            }
        }
        out.messages_waiting =
            waiting.ok_or_else(|| Error::malformed(DOC, "the Messages-Waiting line is missing"))?;

        for block in blocks {
            let mut headers = Vec::with_capacity(block.len());
            for line in block {
                let (name, value) = line.header()?;
                headers.push((name.to_owned(), value.to_owned()));
            }
            out.message_headers.push(MessageHeaders { headers });
        }
        Ok(out)
    }

    fn push_count(&mut self, line: &Line, class: MessageClass, figures: Figures) -> Result<()> {
        let Figures { new, old, urgent } = figures;
        if self
            .counts
            .iter()
            .any(|c| c.class.as_str().eq_ignore_ascii_case(class.as_str()))
        {
            return Err(line.error(format!("duplicate {class} line")));
        }
        self.counts.push(MessageCount {
            class,
            new,
            old,
            urgent_new: urgent.map(|u| u.0),
            urgent_old: urgent.map(|u| u.1),
        });
        Ok(())
    }

    /// Writes the body with CRLF line ends (see the module documentation for the order).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(128);
        let waiting = if self.messages_waiting { "yes" } else { "no" };
        line(&mut out, "Messages-Waiting", waiting);
        if let Some(account) = &self.account {
            line(&mut out, "Message-Account", account);
        }
        for c in &self.counts {
            let mut value = format!("{}/{}", c.new, c.old);
            if c.urgent_new.is_some() || c.urgent_old.is_some() {
                let (un, uo) = (c.urgent_new.unwrap_or(0), c.urgent_old.unwrap_or(0));
                value.push_str(&format!(" ({un}/{uo})"));
            }
            line(&mut out, c.class.as_str(), &value);
        }
        for (name, value) in &self.extra_headers {
            line(&mut out, name, value);
        }
        for block in self
            .message_headers
            .iter()
            .filter(|b| !b.headers.is_empty())
        {
            out.push_str("\r\n");
            for (name, value) in &block.headers {
                line(&mut out, name, value);
            }
        }
        out
    }
}

impl fmt::Display for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() > suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Writes `name: value` and CRLF; a line break inside a value becomes a space so that the
/// output stays one line per header whatever the model holds.
fn line(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    if !value.is_empty() {
        out.push(' ');
        out.extend(
            value
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        );
    }
    out.push_str("\r\n");
}

/// A logical line: continuation lines joined, line ends removed. An empty `text` is a
/// separator between parts.
struct Line {
    number: usize,
    text: String,
}

impl Line {
    fn error(&self, what: impl fmt::Display) -> Error {
        Error::malformed(
            DOC,
            format!("line {} {}: {what}", self.number, shown(&self.text)),
        )
    }

    /// Splits `Name: value`; the name must be a token, the value is trimmed.
    fn header(&self) -> Result<(&str, &str)> {
        let Some((name, value)) = self.text.split_once(':') else {
            return Err(self.error("expected 'Name: value'"));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(self.error(format!("bad header name {}", shown(name))));
        }
        Ok((name, value.trim_matches([' ', '\t'])))
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

/// Splits the body into logical lines: CRLF or LF ends, whitespace-only lines are blank,
/// a line starting with a space or tab continues the previous one. Control characters other
/// than tab are refused.
fn logical_lines(input: &str) -> Result<Vec<Line>> {
    let mut lines: Vec<Line> = Vec::new();
    for (i, raw) in input.split('\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\t') {
            let at = Line {
                number,
                text: raw.to_owned(),
            };
            return Err(at.error(format!("control character U+{:04X}", u32::from(c))));
        }
        let blank = raw.trim_matches([' ', '\t']).is_empty();
        if blank {
            lines.push(Line {
                number,
                text: String::new(),
            });
        } else if raw.starts_with([' ', '\t']) {
            match lines.last_mut() {
                Some(prev) if !prev.text.is_empty() => {
                    prev.text.push(' ');
                    prev.text.push_str(raw.trim_matches([' ', '\t']));
                }
                _ => {
                    let at = Line {
                        number,
                        text: raw.to_owned(),
                    };
                    return Err(at.error("continuation line without a header to continue"));
                }
            }
        } else {
            lines.push(Line {
                number,
                text: raw.to_owned(),
            });
        }
    }
    Ok(lines)
}

/// The figures of one summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    new: u32,
    old: u32,
    urgent: Option<(u32, u32)>,
}

/// Parses `new/old` with an optional `(urgent-new/urgent-old)`, blanks allowed around every
/// token. The error says what is wrong.
fn counts(value: &str) -> Result<Figures, String> {
    let (main, urgent) = match value.find('(') {
        Some(open) => (&value[..open], Some(&value[open + 1..])),
        None => (value, None),
    };
    let (new, old) = pair(main)?;
    let urgent = match urgent {
        Some(rest) => {
            let Some(inner) = rest.trim_end_matches([' ', '\t']).strip_suffix(')') else {
                return Err(format!("urgent counts {:?} lack a closing ')'", rest));
            };
            Some(pair(inner)?)
        }
        None => None,
    };
    Ok(Figures { new, old, urgent })
}

fn pair(text: &str) -> Result<(u32, u32), String> {
    let Some((a, b)) = text.split_once('/') else {
        return Err(format!(
            "counts must be new/old with optional (urgent-new/urgent-old), not {:?}",
            text.trim()
        ));
    };
    Ok((number(a)?, number(b)?))
}

fn number(text: &str) -> Result<u32, String> {
    let t = text.trim_matches([' ', '\t']);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("count {t:?} is not a number"));
    }
    t.parse::<u32>()
        .map_err(|_| format!("count {t} is out of range (at most {})", u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_syntax() {
        let plain = Figures {
            new: 2,
            old: 8,
            urgent: None,
        };
        assert_eq!(counts("2/8"), Ok(plain));
        let urgent = Figures {
            urgent: Some((0, 2)),
            ..plain
        };
        assert_eq!(counts(" 2 / 8 ( 0 / 2 ) "), Ok(urgent));
        assert!(counts("2/8 (0/2").is_err());
        assert!(counts("2").is_err());
        assert!(counts("2/-1").is_err());
        assert!(counts("4294967296/0").unwrap_err().contains("out of range"));
        assert!(counts("2/8 (0/2) x").is_err());
    }

    #[test]
    fn folding_joins_lines() {
        let lines = logical_lines("A: b\r\n  c\r\n\r\nD: e").unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["A: b c", "", "D: e"]);
        assert!(logical_lines(" x").is_err());
    }
}
