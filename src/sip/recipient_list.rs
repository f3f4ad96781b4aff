//! The recipient list of a SUBSCRIBE (RFC 5367, subscriptions to request-contained resource
//! lists): the resources a subscriber names in the request itself, for the list server to
//! watch as an ad-hoc list of that dialog. Linphone sends its friend list this way.
//!
//! ```text
//! SUBSCRIBE sip:alice-buddies@example.test SIP/2.0
//! Event: presence
//! Supported: eventlist
//! Require: recipient-list-subscribe
//! Content-Type: application/resource-lists+xml
//! Content-Disposition: recipient-list
//! Content-Encoding: deflate
//!
//! <resource-lists ...><list><entry uri="sip:bob@example.test"/>...</list></resource-lists>
//! ```
//!
//! What is read, strictly ([`Error`] saying what was wrong; the caller answers `400` and
//! changes nothing):
//!
//! - `Content-Type` must be `application/resource-lists+xml`, and `Content-Disposition`,
//!   when present, `recipient-list` (RFC 5367 §4);
//! - `Content-Encoding` (RFC 3261 §20.12) may be `identity`, `deflate` (a zlib stream, as
//!   belle-sip writes it, or a raw deflate stream) or `gzip` (`x-gzip` too); any other is
//!   refused. The inflated body is capped at [`Limits::DEFAULT`]'s size (64 KiB, what a plain
//!   body may be): a small body that inflates past it (a "bomb") is refused before it is all
//!   inflated;
//! - the document goes through the strict resource-lists codec
//!   ([`crate::doc::resource_lists`]); its `<entry>`s, nested `<list>`s flattened in document
//!   order, are the resources, each once (the first, with its display name). `<entry-ref>`
//!   and `<external>` point at documents elsewhere, which this server does not fetch: they
//!   are refused rather than silently dropped. Bounds as for stored lists
//!   ([`crate::model::list`]): at most [`MAX_RESOURCES`] entries, display names checked,
//!   every URI must parse.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::Read;

use crate::doc::resource_lists::{List, ListItem, ResourceLists};
use crate::doc::Limits;
use crate::error::{Error, Result};
use crate::model::key::presentity_key;
use crate::model::list::{check_display_name, Resource, MAX_RESOURCES};
use crate::sip::SipMessage;
use crate::uri::Uri;

/// The option tag of RFC 5367 for subscriptions.
pub const RECIPIENT_LIST_SUBSCRIBE: &str = "recipient-list-subscribe";

/// The media type of the body.
const RESOURCE_LISTS: &str = "application/resource-lists+xml";

/// Whether `m` requires RFC 5367 (its Require headers name `recipient-list-subscribe`).
pub fn required(m: &SipMessage) -> bool {
    m.headers("Require")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(RECIPIENT_LIST_SUBSCRIBE))
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("recipient list: {what}"))
}

/// The resources of the recipient list `m` carries, in document order, each once.
pub fn resources(m: &SipMessage) -> Result<Vec<Resource>> {
    let body = m.body();
    if body.is_empty() {
        return Err(bad(
            "the SUBSCRIBE requires recipient-list-subscribe but has no body",
        ));
    }
    let content_type = m
        .content_type()?
        .ok_or_else(|| bad("a body without Content-Type"))?;
    if !content_type.essence().eq_ignore_ascii_case(RESOURCE_LISTS) {
        return Err(bad(format!(
            "the body is {}, not {RESOURCE_LISTS}",
            content_type.essence()
        )));
    }
    if let Some(disposition) = m.header("Content-Disposition") {
        let kind = disposition.split(';').next().unwrap_or_default().trim();
        if !kind.eq_ignore_ascii_case("recipient-list") {
            return Err(bad(format!(
                "Content-Disposition {kind:?} (a recipient list is 'recipient-list')"
            )));
        }
    }
    let limits = Limits::DEFAULT;
    let inflated;
    let bytes = match m.header("Content-Encoding") {
        None => body,
        Some(codings) => {
            let codings: Vec<&str> = codings.split(',').map(str::trim).collect();
            match codings.as_slice() {
                [c] if c.eq_ignore_ascii_case("identity") => body,
                [c] => {
                    inflated = inflate(c, body, limits.max_bytes)?;
                    &inflated
                }
                _ => {
                    return Err(Error::Unsupported(format!(
                        "recipient list: the Content-Encoding {codings:?} (one of deflate, gzip \
                         or identity is read)"
                    )))
                }
            }
        }
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("the body is not UTF-8"))?;
    let doc = ResourceLists::parse(text, &limits).map_err(bad)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut entries = 0usize;
    for list in &doc.lists {
        flatten(list, &mut out, &mut seen, &mut entries)?;
    }
    if out.is_empty() {
        return Err(bad("the list names no resource"));
    }
    Ok(out)
}

/// The entries of `list` and its nested lists, appended to `out` (see the module doc).
fn flatten(
    list: &List,
    out: &mut Vec<Resource>,
    seen: &mut HashSet<String>,
    entries: &mut usize,
) -> Result<()> {
    for item in &list.items {
        match item {
            ListItem::List(nested) => flatten(nested, out, seen, entries)?,
            ListItem::Entry(e) => {
                *entries += 1;
                if *entries > MAX_RESOURCES {
                    return Err(Error::TooLarge(format!(
                        "recipient list: more than {MAX_RESOURCES} entries (the most a list \
                         watches)"
                    )));
                }
                let uri = Uri::parse(e.uri.trim())
                    .map_err(|err| bad(format!("entry {}: {err}", *entries)))?;
                let name = e
                    .display_name
                    .as_ref()
                    .map(|n| n.text.trim().to_string())
                    .filter(|n| !n.is_empty());
                if let Some(name) = &name {
                    check_display_name(name, &format!("the display name of {uri}")).map_err(bad)?;
                }
                if seen.insert(presentity_key(&uri)) {
                    out.push(Resource {
                        uri,
                        display_name: name,
                    });
                }
            }
            ListItem::EntryRef(_) => {
                return Err(Error::Unsupported(
                    "recipient list: <entry-ref> (entries elsewhere are not fetched; name each \
                     resource in an <entry>)"
                        .into(),
                ))
            }
            ListItem::External(_) => {
                return Err(Error::Unsupported(
                    "recipient list: <external> (lists elsewhere are not fetched; name each \
                     resource in an <entry>)"
                        .into(),
                ))
            }
        }
    }
    Ok(())
}

/// `body` decoded from the content coding `coding`, at most `cap` bytes of it.
fn inflate(coding: &str, body: &[u8], cap: usize) -> Result<Vec<u8>> {
    use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};
    let reader: Box<dyn Read + '_> = if coding.eq_ignore_ascii_case("deflate") {
        // RFC 9110 §8.4.1.2 makes "deflate" a zlib stream; some writers send raw deflate.
        // A zlib header is two bytes: method 8 in the low nibble, a multiple of 31 together.
        let zlib = body.len() >= 2
            && body[0] & 0x0f == 8
            && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
        if zlib {
            Box::new(ZlibDecoder::new(body))
        } else {
            Box::new(DeflateDecoder::new(body))
        }
    } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
        Box::new(GzDecoder::new(body))
    } else {
        return Err(Error::Unsupported(format!(
            "recipient list: the Content-Encoding {coding:?} (deflate, gzip or identity is read)"
        )));
    };
    let mut out = Vec::new();
    // One byte past the cap tells "too large" from "exactly the cap".
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("the {coding} body does not inflate: {e}")))?;
    if out.len() > cap {
        return Err(Error::TooLarge(format!(
            "recipient list: the {coding} body inflates past {cap} bytes"
        )));
    }
    Ok(out)
}

/// A clip of an error's message fit for a reason phrase: printable ASCII, at most 160
/// characters.
pub(crate) fn reason_text(e: &Error) -> String {
    let text = e.to_string();
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(160)
        .collect();
    if text.chars().count() > 160 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{SipLimits, Transport};
    use std::io::Write;

    const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<resource-lists \
        xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list><entry uri=\"sip:bob@a.test\">\
        <display-name>Bob</display-name></entry><list name=\"x\"><entry \
        uri=\"sip:carol@a.test\"/><entry uri=\"sip:bob@a.test\"/></list></list></resource-lists>";

    fn subscribe(headers: &str, body: &[u8]) -> SipMessage {
        let mut m = format!(
            "SUBSCRIBE sip:l@a.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:alice@a.test>;tag=1\r\nTo: <sip:l@a.test>\r\nCall-ID: c\r\n\
             CSeq: 1 SUBSCRIBE\r\nRequire: recipient-list-subscribe\r\n{headers}\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        SipMessage::parse(&m, &SipLimits::default(), Transport::Datagram).unwrap()
    }

    const PLAIN: &str =
        "Content-Type: application/resource-lists+xml\r\nContent-Disposition: recipient-list\r\n";

    fn uris(r: &[Resource]) -> Vec<String> {
        r.iter().map(|r| r.uri.to_string()).collect()
    }

    #[test]
    fn entries_flattened_each_once() {
        let m = subscribe(PLAIN, DOC.as_bytes());
        assert!(required(&m));
        let r = resources(&m).unwrap();
        assert_eq!(uris(&r), ["sip:bob@a.test", "sip:carol@a.test"]);
        assert_eq!(r[0].display_name.as_deref(), Some("Bob"));
    }

    #[test]
    fn deflate_zlib_raw_and_gzip_are_read() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(DOC.as_bytes()).unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(DOC.as_bytes()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(DOC.as_bytes()).unwrap();
        for (coding, body) in [
            ("deflate", z.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
            ("gzip", gz.finish().unwrap()),
        ] {
            let m = subscribe(&format!("{PLAIN}Content-Encoding: {coding}\r\n"), &body);
            assert_eq!(resources(&m).unwrap().len(), 2, "{coding}");
        }
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let refused =
            |headers: &str, body: &[u8]| resources(&subscribe(headers, body)).unwrap_err();
        assert!(refused(PLAIN, b"").to_string().contains("no body"));
        let e = refused(PLAIN, b"<resource-lists");
        assert!(matches!(e, Error::Malformed(_)), "{e}");
        let e = refused(&format!("{PLAIN}Content-Encoding: br\r\n"), DOC.as_bytes());
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let e = refused(
            &format!("{PLAIN}Content-Encoding: deflate\r\n"),
            b"not deflate",
        );
        assert!(e.to_string().contains("does not inflate"), "{e}");
        let e = refused("Content-Type: application/xml\r\n", DOC.as_bytes());
        assert!(
            e.to_string().contains("not application/resource-lists+xml"),
            "{e}"
        );
        let e = refused(
            "Content-Type: application/resource-lists+xml\r\nContent-Disposition: render\r\n",
            DOC.as_bytes(),
        );
        assert!(e.to_string().contains("Content-Disposition"), "{e}");
        // A bomb: a megabyte of spaces deflates to about a kilobyte.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![b' '; 1 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 4096);
        let e = refused(&format!("{PLAIN}Content-Encoding: deflate\r\n"), &bomb);
        assert!(matches!(e, Error::TooLarge(_)), "{e}");
        // Over the bound of entries.
        let mut many =
            String::from("<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>");
        for n in 0..=MAX_RESOURCES {
            many.push_str(&format!("<entry uri=\"sip:u{n}@a.test\"/>"));
        }
        many.push_str("</list></resource-lists>");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(many.as_bytes()).unwrap();
        let e = refused(
            &format!("{PLAIN}Content-Encoding: deflate\r\n"),
            &z.finish().unwrap(),
        );
        assert!(matches!(e, Error::TooLarge(_)), "{e}");
        let e = refused(
            PLAIN,
            b"<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>\
              <entry-ref ref=\"x/y\"/></list></resource-lists>",
        );
        assert!(e.to_string().contains("entry-ref"), "{e}");
        let e = refused(
            PLAIN,
            b"<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list>\
              </list></resource-lists>",
        );
        assert!(e.to_string().contains("no resource"), "{e}");
    }

    #[test]
    fn reasons_are_one_printable_line() {
        let e = Error::Malformed("a\r\nb\u{e9}".repeat(100));
        let r = reason_text(&e);
        assert!(r.len() <= 170 && r.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }
}
