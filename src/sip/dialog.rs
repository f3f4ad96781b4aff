//! The notifier's side of a subscription dialog (RFC 6665 §4.1.2, RFC 3261 §12): what the
//! server needs to send NOTIFYs to a remote watcher inside the dialog its SUBSCRIBE created,
//! and to recognise the watcher's in-dialog refreshes. It is also what the engine keeps in
//! the store as the subscription's target ([`SubscriptionDialog::to_bytes`]), so the
//! dialog survives a restart.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

pub use super::transport::Proto;
use crate::error::{Error, Result};

/// A subscription dialog as the notifier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDialog {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The notifier's tag (the To tag of the SUBSCRIBE's answer, the From tag of NOTIFYs).
    pub local_tag: String,
    /// The watcher's tag (the SUBSCRIBE's From tag).
    pub remote_tag: String,
    /// The notifier's URI (the SUBSCRIBE's To URI: the presentity).
    pub local_uri: String,
    /// The watcher's URI (the SUBSCRIBE's From URI).
    pub remote_uri: String,
    /// Where NOTIFYs go: the SUBSCRIBE's Contact URI.
    pub remote_target: String,
    /// The route set: the SUBSCRIBE's Record-Route values, in order (RFC 3261 §12.1.1).
    pub route_set: Vec<String>,
    /// The CSeq of the last NOTIFY sent.
    pub local_cseq: u32,
    /// The CSeq of the last SUBSCRIBE received.
    pub remote_cseq: u32,
    /// The Event header of the subscription (package and `id` parameter), as NOTIFYs repeat it.
    pub event: String,
    /// The transport the SUBSCRIBE came over.
    pub proto: Proto,
    /// The address the SUBSCRIBE came from (where NOTIFYs go when the remote target's host is
    /// not an IP address this server can reach without DNS, and for a watcher behind NAT).
    pub peer: SocketAddr,
}

impl SubscriptionDialog {
    /// The dialog's identity: Call-ID, local tag, remote tag.
    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// The CSeq for the next NOTIFY (and records it).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        self.local_cseq
    }

    /// Serializes the dialog compactly (the engine keeps these bytes for every remote
    /// subscription, in memory and in the store, so size matters): the marker byte 0x02, the
    /// transport (`u`/`t`), the two CSeqs (4 bytes each, big-endian), then the texts each
    /// preceded by its length (2 bytes, big-endian): Call-ID, local tag, remote tag, local
    /// URI, remote URI, remote target, Event, peer address, then the routes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let peer = self.peer.to_string();
        let texts = [
            self.call_id.as_str(),
            &self.local_tag,
            &self.remote_tag,
            &self.local_uri,
            &self.remote_uri,
            &self.remote_target,
            &self.event,
            &peer,
        ];
        let all = || {
            texts
                .into_iter()
                .chain(self.route_set.iter().map(String::as_str))
        };
        // Exactly sized: the engine keeps the bytes as they are.
        let mut out = Vec::with_capacity(10 + all().map(|t| 2 + t.len()).sum::<usize>());
        out.push(COMPACT);
        out.push(if self.proto == Proto::Tcp { b't' } else { b'u' });
        out.extend_from_slice(&self.local_cseq.to_be_bytes());
        out.extend_from_slice(&self.remote_cseq.to_be_bytes());
        for text in all() {
            // A parsed request's lines are at most 8 KiB (SipLimits), far below 64 KiB; a
            // longer text is cut at a character boundary rather than written wrong.
            let mut end = text.len().min(usize::from(u16::MAX));
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            out.extend_from_slice(&(end as u16).to_be_bytes());
            out.extend_from_slice(&text.as_bytes()[..end]);
        }
        out
    }

    /// Reads what [`SubscriptionDialog::to_bytes`] wrote, or the text form (`impp-dialog 1`)
    /// earlier versions stored.
    pub fn from_bytes(bytes: &[u8]) -> Result<SubscriptionDialog> {
        if bytes.first() == Some(&COMPACT) {
            return Self::from_compact(bytes);
        }
        Self::from_text(bytes)
    }

    fn from_compact(bytes: &[u8]) -> Result<SubscriptionDialog> {
        let bad = |what: &str| Error::Malformed(format!("stored subscription dialog: {what}"));
        if bytes.len() < 10 {
            return Err(bad("truncated"));
        }
        let proto = match bytes[1] {
            b'u' => Proto::Udp,
            b't' => Proto::Tcp,
            _ => return Err(bad("unknown transport")),
        };
        let cseq = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let (local_cseq, remote_cseq) = (cseq(2), cseq(6));
        let mut rest = &bytes[10..];
        let mut texts: Vec<String> = Vec::with_capacity(8);
        while !rest.is_empty() {
            if rest.len() < 2 {
                return Err(bad("truncated"));
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let text = rest.get(2..2 + len).ok_or_else(|| bad("truncated"))?;
            texts.push(
                std::str::from_utf8(text)
                    .map_err(|_| bad("not UTF-8"))?
                    .to_owned(),
            );
            rest = &rest[2 + len..];
        }
        if texts.len() < 8 {
            return Err(bad("fields missing"));
        }
        let route_set = texts.split_off(8);
        let mut t = texts.into_iter();
        let mut next = || t.next().expect("8 texts");
        let d = SubscriptionDialog {
            call_id: next(),
            local_tag: next(),
            remote_tag: next(),
            local_uri: next(),
            remote_uri: next(),
            remote_target: next(),
            event: next(),
            peer: next()
                .parse()
                .map_err(|_| bad("the peer is not an address"))?,
            route_set,
            local_cseq,
            remote_cseq,
            proto,
        };
        d.check()?;
        Ok(d)
    }

    /// Serializes the dialog in the text form of version 1: a versioned list of `name=value`
    /// lines, values percent-escaped where they hold `%`, CR or LF. Still read; kept for
    /// tests of that path.
    #[cfg(test)]
    fn to_text(&self) -> Vec<u8> {
        let mut out = String::from("impp-dialog 1\n");
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push('=');
            for c in value.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    '\n' => out.push_str("%0A"),
                    '\r' => out.push_str("%0D"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        };
        field("call-id", &self.call_id);
        field("local-tag", &self.local_tag);
        field("remote-tag", &self.remote_tag);
        field("local-uri", &self.local_uri);
        field("remote-uri", &self.remote_uri);
        field("remote-target", &self.remote_target);
        for route in &self.route_set {
            field("route", route);
        }
        field("local-cseq", &self.local_cseq.to_string());
        field("remote-cseq", &self.remote_cseq.to_string());
        field("event", &self.event);
        field(
            "proto",
            if self.proto == Proto::Tcp {
                "tcp"
            } else {
                "udp"
            },
        );
        field("peer", &self.peer.to_string());
        out.into_bytes()
    }

    fn from_text(bytes: &[u8]) -> Result<SubscriptionDialog> {
        let bad = |what: &str| Error::Malformed(format!("stored subscription dialog: {what}"));
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some("impp-dialog 1") {
            return Err(bad("unknown format (expected 'impp-dialog 1')"));
        }
        let mut d = SubscriptionDialog {
            call_id: String::new(),
            local_tag: String::new(),
            remote_tag: String::new(),
            local_uri: String::new(),
            remote_uri: String::new(),
            remote_target: String::new(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 0,
            event: String::new(),
            proto: Proto::Udp,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut peer = None;
        for line in lines {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad(&format!("line '{line}' has no '='")))?;
            let value = unescape(value).ok_or_else(|| bad(&format!("bad escape in {name}")))?;
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad(&format!("{name} '{v}' is not a number")))
            };
            match name {
                "call-id" => d.call_id = value,
                "local-tag" => d.local_tag = value,
                "remote-tag" => d.remote_tag = value,
                "local-uri" => d.local_uri = value,
                "remote-uri" => d.remote_uri = value,
                "remote-target" => d.remote_target = value,
                "route" => d.route_set.push(value),
                "local-cseq" => d.local_cseq = number(&value)?,
                "remote-cseq" => d.remote_cseq = number(&value)?,
                "event" => d.event = value,
                "proto" => {
                    d.proto = match value.as_str() {
                        "udp" => Proto::Udp,
                        "tcp" => Proto::Tcp,
                        other => return Err(bad(&format!("unknown transport '{other}'"))),
                    }
                }
                "peer" => {
                    peer = Some(
                        value
                            .parse()
                            .map_err(|_| bad(&format!("peer '{value}' is not an address")))?,
                    )
                }
                _ => {} // a later version's field: ignored
            }
        }
        d.peer = peer.ok_or_else(|| bad("no peer"))?;
        d.check()?;
        Ok(d)
    }

    /// What every stored dialog must have.
    fn check(&self) -> Result<()> {
        let d = self;
        for (what, v) in [
            ("call-id", &d.call_id),
            ("local-tag", &d.local_tag),
            ("remote-tag", &d.remote_tag),
            ("remote-target", &d.remote_target),
            ("event", &d.event),
        ] {
            if v.is_empty() {
                return Err(Error::Malformed(format!(
                    "stored subscription dialog: no {what}"
                )));
            }
        }
        Ok(())
    }
}

/// The first byte of the compact form (text forms start with `i`).
const COMPACT: u8 = 0x02;

fn unescape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "0A" => '\n',
            "0D" => '\r',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Identifies a dialog (RFC 3261 §12): Call-ID and the two tags, seen from this side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// This side's tag.
    pub local_tag: String,
    /// The other side's tag.
    pub remote_tag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> SubscriptionDialog {
        SubscriptionDialog {
            call_id: "a84b4c76e66710@pc33.example.test".into(),
            local_tag: "ffd2".into(),
            remote_tag: "12013223".into(),
            local_uri: "sip:alice@example.test".into(),
            remote_uri: "sip:bob@example.test".into(),
            remote_target: "sip:bob@192.0.2.4:5062;transport=tcp".into(),
            route_set: vec![
                "<sip:p1.example.test;lr>".into(),
                "<sip:p2.example.test;lr>".into(),
            ],
            local_cseq: 7,
            remote_cseq: 3,
            event: "presence;id=4%\nx".into(),
            proto: Proto::Tcp,
            peer: "[2001:db8::1]:5062".parse().unwrap(),
        }
    }

    #[test]
    fn round_trips_through_bytes() {
        let d = dialog();
        let back = SubscriptionDialog::from_bytes(&d.to_bytes()).unwrap();
        assert_eq!(back, d);
        let mut d2 = d.clone();
        d2.route_set.clear();
        assert_eq!(SubscriptionDialog::from_bytes(&d2.to_bytes()).unwrap(), d2);
        // What earlier versions stored is still read.
        assert_eq!(SubscriptionDialog::from_bytes(&d.to_text()).unwrap(), d);
        // The compact form is what the engine keeps per remote subscription.
        assert!(d2.to_bytes().len() < d2.to_text().len() * 3 / 4);
    }

    #[test]
    fn bad_bytes_are_malformed_never_a_panic() {
        let good = dialog().to_bytes();
        let text = dialog().to_text();
        for bad in [
            &b""[..],
            b"impp-dialog 2\n",
            b"impp-dialog 1\ncall-id=x\n",
            b"\xff\xfe",
            b"impp-dialog 1\nlocal-cseq=seven\n",
            b"impp-dialog 1\nevent=%ZZ\n",
            b"\x02u\0\0\0\x01\0\0\0\x01",
            b"\x02x\0\0\0\x01\0\0\0\x01\0\x01a",
            b"\x02u\0\0\0\x01\0\0\0\x01\0\x09a",
            b"\x02u\0\0\0\x01\0\0\0\x01\0\x01\xff",
        ] {
            assert!(matches!(
                SubscriptionDialog::from_bytes(bad),
                Err(Error::Malformed(_))
            ));
        }
        // A cut inside a field is an error; one between routes reads fewer routes.
        for cut in 0..good.len() {
            if let Ok(d) = SubscriptionDialog::from_bytes(&good[..cut]) {
                assert!(d.route_set.len() < 2);
                assert_eq!(d.call_id, dialog().call_id);
            }
        }
        for cut in 0..text.len() {
            let _ = SubscriptionDialog::from_bytes(&text[..cut]);
        }
    }

    #[test]
    fn cseq_grows() {
        let mut d = dialog();
        assert_eq!(d.next_cseq(), 8);
        assert_eq!(d.next_cseq(), 9);
        assert_eq!(d.local_cseq, 9);
    }
}
