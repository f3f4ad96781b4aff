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
    /// subscription, in memory and in the store, so size matters): the marker byte 0x03, a
    /// flags byte (1: TCP; 2 and 4: the local and the remote URI are left out, see
    /// [`SubscriptionDialog::to_bytes_beside`]; 8: the peer is the remote target's address;
    /// bits 4-6: the Event is the `n`th of `presence`, `presence.winfo`, `dialog`,
    /// `message-summary`, 0: written; 128: with 1, TLS; without 1, a WebSocket, followed by a
    /// byte `w` (WS) or `s` (WSS)), the two CSeqs as LEB128 varints, the peer address in
    /// binary unless left out (`4` or `6`, the address's bytes, the port in 2 bytes
    /// big-endian), then the texts each preceded by its length as a varint: Call-ID, local
    /// tag, remote tag, local URI, remote URI, remote target, Event, then the routes; what
    /// is left out has an empty text.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_beside("", "")
    }

    /// [`SubscriptionDialog::to_bytes`], leaving out the local URI when it is `presentity`
    /// and the remote URI when it is `watcher`: the engine keeps the subscription's
    /// presentity and watcher anyway (in canonical form, which is how a SUBSCRIBE usually
    /// writes them), so the dialog need not repeat them. Read such bytes with
    /// [`SubscriptionDialog::from_bytes_beside`] and the same two texts.
    pub fn to_bytes_beside(&self, presentity: &str, watcher: &str) -> Vec<u8> {
        let elide_local = !presentity.is_empty() && self.local_uri == presentity;
        let elide_remote = !watcher.is_empty() && self.remote_uri == watcher;
        let elide_peer = ip_address_of(&self.remote_target) == Some(self.peer);
        let event_code = KNOWN_EVENTS
            .iter()
            .position(|e| *e == self.event)
            .map_or(0, |i| i as u8 + 1);
        let texts = [
            self.call_id.as_str(),
            &self.local_tag,
            &self.remote_tag,
            if elide_local { "" } else { &self.local_uri },
            if elide_remote { "" } else { &self.remote_uri },
            &self.remote_target,
            if event_code > 0 { "" } else { &self.event },
        ];
        let all = || {
            texts
                .into_iter()
                .chain(self.route_set.iter().map(String::as_str))
        };
        // Exactly sized: the engine keeps the bytes as they are.
        let size = 2
            + usize::from(self.proto.is_websocket())
            + varint_len(self.local_cseq as usize)
            + varint_len(self.remote_cseq as usize)
            + match (elide_peer, self.peer.is_ipv4()) {
                (true, _) => 0,
                (false, true) => 7,
                (false, false) => 19,
            }
            + all().map(|t| varint_len(t.len()) + t.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(COMPACT);
        let mut flags = 0;
        match self.proto {
            Proto::Udp => {}
            Proto::Tcp => flags |= FLAG_TCP,
            Proto::Tls => flags |= FLAG_TCP | FLAG_TLS,
            Proto::Ws | Proto::Wss => flags |= FLAG_TLS,
        }
        if elide_local {
            flags |= FLAG_LOCAL_URI_IS_PRESENTITY;
        }
        if elide_remote {
            flags |= FLAG_REMOTE_URI_IS_WATCHER;
        }
        if elide_peer {
            flags |= FLAG_PEER_IS_TARGET;
        }
        flags |= event_code << EVENT_SHIFT;
        out.push(flags);
        match self.proto {
            Proto::Ws => out.push(b'w'),
            Proto::Wss => out.push(b's'),
            _ => {}
        }
        push_varint(&mut out, self.local_cseq as usize);
        push_varint(&mut out, self.remote_cseq as usize);
        if !elide_peer {
            match self.peer.ip() {
                std::net::IpAddr::V4(ip) => {
                    out.push(b'4');
                    out.extend_from_slice(&ip.octets());
                }
                std::net::IpAddr::V6(ip) => {
                    out.push(b'6');
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&self.peer.port().to_be_bytes());
        }
        for text in all() {
            push_varint(&mut out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        debug_assert_eq!(out.len(), size);
        out
    }

    /// Reads what [`SubscriptionDialog::to_bytes`] wrote, or what earlier versions stored
    /// (the compact form with fixed-size fields, marker 0x02, or the text form
    /// `impp-dialog 1`). Bytes that leave the subscription's URIs out are malformed here:
    /// read them with [`SubscriptionDialog::from_bytes_beside`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SubscriptionDialog> {
        Self::from_bytes_beside(bytes, "", "")
    }

    /// Reads what [`SubscriptionDialog::to_bytes_beside`] wrote with the same `presentity`
    /// and `watcher` texts (and anything [`SubscriptionDialog::from_bytes`] reads).
    pub fn from_bytes_beside(
        bytes: &[u8],
        presentity: &str,
        watcher: &str,
    ) -> Result<SubscriptionDialog> {
        match bytes.first() {
            Some(&COMPACT) => Self::from_compact(bytes, presentity, watcher),
            Some(&COMPACT_V2) => Self::from_compact_v2(bytes),
            _ => Self::from_text(bytes),
        }
    }

    fn from_compact(bytes: &[u8], presentity: &str, watcher: &str) -> Result<SubscriptionDialog> {
        let bad = |what: &str| Error::Malformed(format!("stored subscription dialog: {what}"));
        let v = DialogView::read(bytes).map_err(bad)?;
        let beside = |written: Option<&str>, given: &str, what: &str| match written {
            Some(uri) => Ok(uri.to_owned()),
            None if given.is_empty() => Err(bad(&format!(
                "its {what} is the subscription's (read it beside the subscription)"
            ))),
            None => Ok(given.to_owned()),
        };
        let d = SubscriptionDialog {
            call_id: v.call_id.to_owned(),
            local_tag: v.local_tag.to_owned(),
            remote_tag: v.remote_tag.to_owned(),
            local_uri: beside(v.local_uri, presentity, "local URI")?,
            remote_uri: beside(v.remote_uri, watcher, "remote URI")?,
            remote_target: v.remote_target.to_owned(),
            route_set: v.routes().map(str::to_owned).collect(),
            local_cseq: v.local_cseq,
            remote_cseq: v.remote_cseq,
            event: v.event.to_owned(),
            proto: v.proto,
            peer: v.peer,
        };
        d.check()?;
        Ok(d)
    }

    /// The compact form before varints and the binary peer (marker 0x02): the transport, the
    /// two CSeqs (4 bytes each, big-endian), then texts each preceded by a 2-byte length:
    /// Call-ID, local tag, remote tag, local URI, remote URI, remote target, Event, the peer
    /// address as text, then the routes.
    fn from_compact_v2(bytes: &[u8]) -> Result<SubscriptionDialog> {
        let bad = |what: &str| Error::Malformed(format!("stored subscription dialog: {what}"));
        if bytes.len() < 10 {
            return Err(bad("truncated"));
        }
        let proto = match bytes[1] {
            b'u' => Proto::Udp,
            b't' => Proto::Tcp,
            b's' => Proto::Tls,
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

    /// Serializes the dialog in the compact form of marker 0x02 (still read; kept for tests
    /// of that path).
    #[cfg(test)]
    fn to_compact_v2(&self) -> Vec<u8> {
        let peer = self.peer.to_string();
        let mut out = vec![
            COMPACT_V2,
            match self.proto {
                Proto::Udp => b'u',
                Proto::Tcp => b't',
                Proto::Tls => b's',
                Proto::Ws | Proto::Wss => unreachable!("the v2 form had no WebSocket"),
            },
        ];
        out.extend_from_slice(&self.local_cseq.to_be_bytes());
        out.extend_from_slice(&self.remote_cseq.to_be_bytes());
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
        for text in texts
            .into_iter()
            .chain(self.route_set.iter().map(String::as_str))
        {
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
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
        field("proto", self.proto.param());
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
                    d.proto = Proto::from_param(&value)
                        .filter(|_| value == value.to_ascii_lowercase())
                        .ok_or_else(|| bad(&format!("unknown transport '{value}'")))?
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
const COMPACT: u8 = 0x03;
const COMPACT_V2: u8 = 0x02;

/// The compact form's flags.
const FLAG_TCP: u8 = 1;
const FLAG_LOCAL_URI_IS_PRESENTITY: u8 = 2;
const FLAG_REMOTE_URI_IS_WATCHER: u8 = 4;
const FLAG_PEER_IS_TARGET: u8 = 8;
/// With `FLAG_TCP`: the stream is TLS; without: a WebSocket (a byte after the flags says
/// which).
const FLAG_TLS: u8 = 0x80;
const EVENT_SHIFT: u8 = 4;
const EVENT_MASK: u8 = 0x70;

/// Event header values the compact form writes as a code (the packages' plain names).
const KNOWN_EVENTS: [&str; 4] = ["presence", "presence.winfo", "dialog", "message-summary"];

/// A binary peer address: `4` or `6`, the address's bytes, the port (2 bytes, big-endian).
fn read_peer(r: &mut Reader<'_>) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = match r.take(1)?[0] {
        b'4' => <[u8; 4]>::try_from(r.take(4)?).ok()?.into(),
        b'6' => <[u8; 16]>::try_from(r.take(16)?).ok()?.into(),
        _ => return None,
    };
    let port = r.take(2)?;
    Some(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])))
}

/// The address of `sip:[user@]IP[:port][;params]` read without a full URI parse (this runs
/// for every NOTIFY); `None` for anything else (the caller then parses the URI properly).
pub(crate) fn ip_address_of(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let host_port = &rest[..end];
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']')?;
            (ip, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5060,
    };
    Some(SocketAddr::new(ip, port))
}

/// Bytes of `value` as an LEB128 varint.
fn varint_len(mut value: usize) -> usize {
    let mut n = 1;
    while value >= 0x80 {
        value >>= 7;
        n += 1;
    }
    n
}

/// Appends `value` as an LEB128 varint (7 bits a byte, low first, high bit: more follow).
fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the compact form front to back; `None` when the bytes run out.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.rest.get(..n)?, self.rest.get(n..)?);
        self.rest = tail;
        Some(head)
    }

    /// A text: its length as a varint, then its bytes (UTF-8).
    fn text(&mut self) -> std::result::Result<&'a str, &'static str> {
        let bytes = self
            .varint()
            .and_then(|len| self.take(len))
            .ok_or("truncated")?;
        std::str::from_utf8(bytes).map_err(|_| "not UTF-8")
    }

    /// A varint of at most 5 bytes (enough for 32 bits; longer is malformed).
    fn varint(&mut self) -> Option<usize> {
        let mut value = 0usize;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

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

/// A dialog read in place from the compact form (marker 0x03): every text borrowed from
/// the bytes, nothing copied. A server reads one for every NOTIFY it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DialogView<'a> {
    pub(crate) call_id: &'a str,
    pub(crate) local_tag: &'a str,
    pub(crate) remote_tag: &'a str,
    /// `None`: left out, it is the subscription's presentity.
    pub(crate) local_uri: Option<&'a str>,
    /// `None`: left out, it is the subscription's watcher.
    pub(crate) remote_uri: Option<&'a str>,
    pub(crate) remote_target: &'a str,
    pub(crate) event: &'a str,
    /// The route set, each a varint length and the text, to the end of the bytes.
    routes: &'a [u8],
    pub(crate) local_cseq: u32,
    pub(crate) remote_cseq: u32,
    pub(crate) proto: Proto,
    pub(crate) peer: SocketAddr,
}

impl<'a> DialogView<'a> {
    /// Reads the compact form; the error says what is wrong (older forms are not read here:
    /// [`SubscriptionDialog::from_bytes`] reads them).
    pub(crate) fn read(bytes: &'a [u8]) -> std::result::Result<DialogView<'a>, &'static str> {
        if bytes.first() != Some(&COMPACT) {
            return Err("not the compact form");
        }
        let mut r = Reader { rest: &bytes[1..] };
        let flags = r.take(1).ok_or("truncated")?[0];
        let proto = match (flags & FLAG_TCP != 0, flags & FLAG_TLS != 0) {
            (false, false) => Proto::Udp,
            (true, false) => Proto::Tcp,
            (true, true) => Proto::Tls,
            // The TLS flag alone: a WebSocket, which the next byte says.
            (false, true) => match r.take(1).ok_or("truncated")?[0] {
                b'w' => Proto::Ws,
                b's' => Proto::Wss,
                _ => return Err("unknown WebSocket transport"),
            },
        };
        let event = match usize::from((flags & EVENT_MASK) >> EVENT_SHIFT) {
            0 => None,
            n => Some(*KNOWN_EVENTS.get(n - 1).ok_or("unknown event code")?),
        };
        let cseq = |r: &mut Reader| {
            r.varint()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or("bad CSeq")
        };
        let local_cseq = cseq(&mut r)?;
        let remote_cseq = cseq(&mut r)?;
        let peer = if flags & FLAG_PEER_IS_TARGET != 0 {
            None
        } else {
            Some(read_peer(&mut r).ok_or("truncated peer address")?)
        };
        let mut texts = [""; 7];
        for text in &mut texts {
            *text = r.text()?;
        }
        let routes = r.rest;
        // The routes must be whole texts too.
        let mut check = Reader { rest: routes };
        while !check.rest.is_empty() {
            check.text()?;
        }
        let [call_id, local_tag, remote_tag, local_uri, remote_uri, remote_target, written_event] =
            texts;
        // What is left out has an empty place.
        let left_out =
            |flag: u8, text: &'a str| -> std::result::Result<Option<&'a str>, &'static str> {
                match (flags & flag != 0, text.is_empty()) {
                    (false, _) => Ok(Some(text)),
                    (true, true) => Ok(None),
                    (true, false) => Err("a field both left out and written"),
                }
            };
        let local_uri = left_out(FLAG_LOCAL_URI_IS_PRESENTITY, local_uri)?;
        let remote_uri = left_out(FLAG_REMOTE_URI_IS_WATCHER, remote_uri)?;
        let event = match event {
            Some(_) if !written_event.is_empty() => {
                return Err("a field both left out and written")
            }
            Some(code) => code,
            None => written_event,
        };
        let peer = match peer {
            Some(peer) => peer,
            None => ip_address_of(remote_target)
                .ok_or("the peer is the remote target's, which has no address")?,
        };
        Ok(DialogView {
            call_id,
            local_tag,
            remote_tag,
            local_uri,
            remote_uri,
            remote_target,
            event,
            routes,
            local_cseq,
            remote_cseq,
            proto,
            peer,
        })
    }

    /// The route set, in order.
    pub(crate) fn routes(&self) -> impl Iterator<Item = &'a str> {
        let mut r = Reader { rest: self.routes };
        std::iter::from_fn(move || {
            if r.rest.is_empty() {
                None
            } else {
                r.text().ok()
            }
        })
    }
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

impl DialogId {
    /// The id of a dialog serialized by [`SubscriptionDialog::to_bytes`] or
    /// [`SubscriptionDialog::to_bytes_beside`] (no need to know the subscription's URIs).
    pub fn from_bytes(bytes: &[u8]) -> Result<DialogId> {
        if bytes.first() != Some(&COMPACT) {
            return SubscriptionDialog::from_bytes(bytes).map(|d| d.id());
        }
        let v = DialogView::read(bytes)
            .map_err(|e| Error::Malformed(format!("stored subscription dialog: {e}")))?;
        Ok(DialogId {
            call_id: v.call_id.to_owned(),
            local_tag: v.local_tag.to_owned(),
            remote_tag: v.remote_tag.to_owned(),
        })
    }
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
        assert_eq!(
            SubscriptionDialog::from_bytes(&d.to_compact_v2()).unwrap(),
            d
        );
        assert!(d.to_bytes().len() + 10 < d.to_compact_v2().len());
        // The subscription's own URIs can be left out, and are read back beside it.
        let (pres, watcher) = (d.local_uri.as_str(), d.remote_uri.as_str());
        let beside = d.to_bytes_beside(pres, watcher);
        assert_eq!(
            beside.len() + pres.len() + watcher.len(),
            d.to_bytes().len()
        );
        assert_eq!(
            SubscriptionDialog::from_bytes_beside(&beside, pres, watcher).unwrap(),
            d
        );
        assert!(matches!(
            SubscriptionDialog::from_bytes(&beside),
            Err(Error::Malformed(_))
        ));
        assert_eq!(DialogId::from_bytes(&beside).unwrap(), d.id());
        // Only what is equal is left out.
        let other = d.to_bytes_beside("sip:carol@example.test", watcher);
        assert_eq!(other.len() + watcher.len(), d.to_bytes().len());
        assert_eq!(
            SubscriptionDialog::from_bytes_beside(&other, "sip:carol@example.test", watcher)
                .unwrap(),
            d
        );
        // A plain package name is a code, and a peer that is the remote target's address
        // is not written twice.
        let mut plain = d.clone();
        plain.event = "presence".into();
        plain.peer = "192.0.2.4:5062".parse().unwrap();
        let short = plain.to_bytes();
        assert_eq!(SubscriptionDialog::from_bytes(&short).unwrap(), plain);
        assert_eq!(short.len() + d.event.len() + 19, d.to_bytes().len());
        assert_eq!(DialogId::from_bytes(&short).unwrap(), plain.id());
        for event in KNOWN_EVENTS {
            plain.event = event.into();
            assert_eq!(
                SubscriptionDialog::from_bytes(&plain.to_bytes()).unwrap(),
                plain
            );
        }
        // Large CSeqs and long texts take longer varints.
        let mut d3 = d.clone();
        d3.local_cseq = u32::MAX;
        d3.remote_cseq = 0x8000;
        d3.call_id = "c".repeat(300);
        d3.peer = "192.0.2.1:5060".parse().unwrap();
        assert_eq!(SubscriptionDialog::from_bytes(&d3.to_bytes()).unwrap(), d3);
        // The compact form is what the engine keeps per remote subscription.
        assert!(d2.to_bytes().len() < d2.to_text().len() * 3 / 4);
    }

    #[test]
    fn every_transport_round_trips_through_the_compact_form() {
        for proto in [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Ws, Proto::Wss] {
            let mut d = dialog();
            d.proto = proto;
            let bytes = d.to_bytes();
            assert_eq!(DialogView::read(&bytes).unwrap().proto, proto);
            assert_eq!(SubscriptionDialog::from_bytes(&bytes).unwrap(), d);
            if proto.is_websocket() {
                // A WebSocket's byte is checked.
                let mut bad = bytes.clone();
                bad[2] = b'x';
                assert!(DialogView::read(&bad).is_err());
            }
        }
    }

    #[test]
    fn a_view_reads_in_place_what_the_owned_form_reads() {
        let d = dialog();
        let bytes = d.to_bytes();
        let v = DialogView::read(&bytes).unwrap();
        assert_eq!(
            (
                v.call_id,
                v.local_tag,
                v.remote_tag,
                v.remote_target,
                v.event
            ),
            (
                d.call_id.as_str(),
                d.local_tag.as_str(),
                d.remote_tag.as_str(),
                d.remote_target.as_str(),
                d.event.as_str()
            )
        );
        assert_eq!(v.local_uri, Some(d.local_uri.as_str()));
        assert_eq!(v.routes().collect::<Vec<_>>(), d.route_set);
        assert_eq!(
            (v.local_cseq, v.remote_cseq, v.proto, v.peer),
            (7, 3, d.proto, d.peer)
        );
        // Left-out URIs are None: the reader takes the subscription's.
        let beside = d.to_bytes_beside(&d.local_uri, &d.remote_uri);
        let v = DialogView::read(&beside).unwrap();
        assert_eq!((v.local_uri, v.remote_uri), (None, None));
        // Older forms are not read in place.
        assert!(DialogView::read(&d.to_compact_v2()).is_err());
        assert!(DialogView::read(&d.to_text()).is_err());
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
            b"\x03\0",
            b"\x03\x08\x01\x01",
            b"\x03\0\x01\x01",
            b"\x03\0\x01\x01\x35\x7f\0\0\x01\x13\xc4",
            b"\x03\0\x01\x01\x34\x7f\0\0",
            b"\x03\0\xff\xff\xff\xff\xff\x01",
            b"\x03\0\x01\x01\x34\x7f\0\0\x01\x13\xc4\x05ab",
            b"\x03\0\x01\x01\x34\x7f\0\0\x01\x13\xc4\x01\xff",
            b"\x03\x02\x01\x01\x34\x7f\0\0\x01\x13\xc4\x01c\x01l\x01r\x01u\0\x01t\x01e",
            // An event code out of range; an event both coded and written; a peer left out
            // though the remote target has no address.
            b"\x03\x50\x01\x01\x34\x7f\0\0\x01\x13\xc4\x01c\x01l\x01r\x01u\x01v\x01t\0",
            b"\x03\x10\x01\x01\x34\x7f\0\0\x01\x13\xc4\x01c\x01l\x01r\x01u\x01v\x01t\x01e",
            b"\x03\x08\x01\x01\x01c\x01l\x01r\x01u\x01v\x01t\x01e",
            b"\x03\x80\x01\x01\x34\x7f\0\0\x01\x13\xc4\x01c\x01l\x01r\x01u\x01v\x01t\x01e",
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
        let v2 = dialog().to_compact_v2();
        for cut in 0..v2.len() {
            let _ = SubscriptionDialog::from_bytes(&v2[..cut]);
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
