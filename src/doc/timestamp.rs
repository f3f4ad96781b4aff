//! `xs:dateTime` values as presence documents carry them (RFC 3339 profile).
#![forbid(unsafe_code)]

use super::xml::Node;
use crate::error::{Error, Result};

/// A validated `xs:dateTime` such as `2026-11-24T14:45:00Z` or `2026-11-24T15:45:00.250+01:00`.
///
/// The text is kept as written, so a document round-trips byte for byte; validation checks the
/// shape and the ranges of every field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(String);

impl Timestamp {
    /// Validates `text` as an `xs:dateTime`.
    pub fn parse(text: &str) -> Result<Timestamp> {
        let text = text.trim();
        if valid(text.as_bytes()) {
            Ok(Timestamp(text.to_owned()))
        } else {
            Err(Error::Malformed(format!(
                "'{text}' is not a date-time (expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm])"
            )))
        }
    }

    /// Reads an element whose content is a date-time (`<timestamp>`, `<dm:timestamp>`),
    /// naming the element and the document `doc` in the error.
    pub(crate) fn from_node(doc: &str, node: Node<'_, '_>) -> Result<Timestamp> {
        Timestamp::parse(node.text())
            .map_err(|e| Error::malformed(doc, format!("<{}>: {}", node.local(), e)))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Timestamp::parse(s)
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn valid(b: &[u8]) -> bool {
    let check = || -> Option<()> {
        let year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&month) || day == 0 || day > days[month as usize - 1] {
            return None;
        }
        if hour > 24 || minute > 59 || second > 60 || (hour == 24 && (minute, second) != (0, 0)) {
            return None;
        }
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        match b.get(i) {
            None => Some(()),
            Some(b'Z' | b'z') if i + 1 == b.len() => Some(()),
            Some(b'+' | b'-') if i + 6 == b.len() => {
                let (oh, om) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
                (b[i + 3] == b':' && oh <= 14 && om <= 59).then_some(())
            }
            _ => None,
        }
    };
    b.len() >= 19 && check().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_devices_send() {
        for ok in [
            "2026-11-24T14:45:00Z",
            "2026-11-24T14:45:00.123Z",
            "2026-11-24T14:45:00+01:00",
            "2024-02-29T00:00:00-08:00",
            "2026-11-24T14:45:00",
        ] {
            assert_eq!(Timestamp::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-24 14:45:00Z",
            "2026-11-24T14:45:00.Z",
            "2026-11-24T14:45:00+1:00",
            "2026-11-24T25:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
    }
}
