//! The body of a NOTIFY for a list subscription (RFC 4662 §5): a `multipart/related` whose
//! root is an RLMI document ([`Rlmi`]) and whose other parts hold the state of the
//! resource instances the RLMI names by `cid`.
//!
//! The list server builds it with [`ListBody::encode`]; the list client reads it with
//! [`ListBody::parse`] and finds each instance's state with [`ListBody::state_of`]. A
//! resource that is itself a list has its state in a part that is a `multipart/related` of
//! its own: [`ListBody::parse`] it again with that part's content type and body.
//!
//! Refused when reading ([`Error::Malformed`]), beyond what [`MultipartRelated::parse`] and
//! [`Rlmi::parse`] refuse: a `type` parameter other than `application/rlmi+xml`, a root that
//! is not UTF-8, and an instance whose `cid` names a part the body does not have (the
//! notification would claim a state it does not carry). A part no instance names is kept.
//!
//! Refused when building ([`Error::InvalidArgument`]): an RLMI document that
//! [`Rlmi::validate`] refuses, an instance `cid` without its part, a part without a
//! Content-ID or that no instance names (one part per instance state, nothing else), and
//! what [`MultipartRelated::encode`] refuses.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use super::multipart::{BodyPart, ContentIdStyle, MultipartRelated};
use crate::doc::rlmi::{Instance, Rlmi};
use crate::doc::Limits;
use crate::error::{Error, Result};

/// The name of this body in error messages.
const DOC: &str = "RLMI multipart/related";

/// The Content-Type of the RLMI part as [`ListBody::encode`] writes it.
pub(crate) const RLMI_PART_TYPE: &str = "application/rlmi+xml;charset=\"UTF-8\"";

/// A list notification: the RLMI document and the parts with the instances' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListBody {
    /// The root document.
    pub rlmi: Rlmi,
    /// The Content-ID of the RLMI part, without angle brackets (the `start` parameter);
    /// `None` for a body whose root is its first part without one.
    pub rlmi_id: Option<String>,
    /// The other parts, in body order: one per instance whose state the notification
    /// carries, each with the Content-ID the instance's `cid` names.
    pub parts: Vec<BodyPart>,
}

impl ListBody {
    /// A body of `rlmi` with the Content-ID `rlmi_id` and no instance parts yet.
    pub fn new(rlmi: Rlmi, rlmi_id: impl Into<String>) -> ListBody {
        ListBody {
            rlmi,
            rlmi_id: Some(rlmi_id.into()),
            parts: Vec::new(),
        }
    }

    /// The part whose Content-ID is `cid`.
    pub fn part(&self, cid: &str) -> Option<&BodyPart> {
        self.parts
            .iter()
            .find(|p| p.content_id.as_deref() == Some(cid))
    }

    /// The part that holds `instance`'s state in this notification, if it has one.
    pub fn state_of(&self, instance: &Instance) -> Option<&BodyPart> {
        self.part(instance.cid.as_deref()?)
    }

    /// Reads the body of a list NOTIFY whose Content-Type header value is `content_type`;
    /// `limits` bound the whole body and the RLMI document.
    pub fn parse(content_type: &str, body: &[u8], limits: &Limits) -> Result<ListBody> {
        let mut m = MultipartRelated::parse(content_type, body, limits)?;
        if !m.root_type.eq_ignore_ascii_case(Rlmi::CONTENT_TYPE) {
            return Err(Error::malformed(
                DOC,
                format!(
                    "the type parameter is {:?}, not {}",
                    m.root_type,
                    Rlmi::CONTENT_TYPE
                ),
            ));
        }
        let root_at = match &m.start {
            Some(id) => m
                .parts
                .iter()
                .position(|p| p.content_id.as_deref() == Some(id)),
            None => Some(0),
        }
        .expect("MultipartRelated::parse checked the root");
        let root = m.parts.remove(root_at);
        let text = std::str::from_utf8(&root.body)
            .map_err(|e| Error::malformed(DOC, format!("the RLMI part is not UTF-8 ({e})")))?;
        let rlmi = Rlmi::parse(text, limits)?;
        let list = ListBody {
            rlmi,
            rlmi_id: root.content_id,
            parts: m.parts,
        };
        for (resource, instance) in list.rlmi.instances() {
            if let Some(cid) = &instance.cid {
                if list.part(cid).is_none() {
                    return Err(Error::malformed(
                        DOC,
                        format!(
                            "instance '{}' of <resource uri=\"{}\"> names the part cid '{cid}', \
                             which the body does not have",
                            instance.id, resource.uri
                        ),
                    ));
                }
            }
        }
        Ok(list)
    }

    /// The Content-Type header value and the body of the NOTIFY, the RLMI part first
    /// (`Content-Transfer-Encoding: binary`, `charset="UTF-8"`), then the parts in order,
    /// under a boundary that starts no line of any part.
    pub fn encode(&self) -> Result<(String, Vec<u8>)> {
        self.encode_with(ContentIdStyle::Standard)
    }

    /// [`ListBody::encode`] with the parts' Content-IDs written in `style` (Linphone's
    /// dialect: [`ContentIdStyle::Bare`]).
    pub fn encode_with(&self, style: ContentIdStyle) -> Result<(String, Vec<u8>)> {
        let invalid = |what: String| Error::InvalidArgument(format!("{DOC}: {what}"));
        self.rlmi
            .validate()
            .map_err(|e| invalid(format!("the RLMI document: {e}")))?;
        let mut named = HashSet::new();
        for (resource, instance) in self.rlmi.instances() {
            if let Some(cid) = &instance.cid {
                if self.part(cid).is_none() {
                    return Err(invalid(format!(
                        "instance '{}' of resource {} names the part cid '{cid}', but no part \
                         has that Content-ID",
                        instance.id, resource.uri
                    )));
                }
                named.insert(cid.as_str());
            }
        }
        for (n, p) in self.parts.iter().enumerate() {
            match &p.content_id {
                None => return Err(invalid(format!("part {} has no Content-ID", n + 1))),
                Some(id) if !named.contains(id.as_str()) => {
                    return Err(invalid(format!(
                        "no instance names the part with the Content-ID <{id}>"
                    )))
                }
                Some(_) => {}
            }
        }
        let mut parts = Vec::with_capacity(self.parts.len() + 1);
        parts.push(BodyPart {
            content_id: self.rlmi_id.clone(),
            content_type: RLMI_PART_TYPE.to_owned(),
            transfer_encoding: Some("binary".to_owned()),
            other_headers: Vec::new(),
            body: self.rlmi.to_xml().into_bytes(),
        });
        parts.extend(self.parts.iter().cloned());
        MultipartRelated::new(Rlmi::CONTENT_TYPE, self.rlmi_id.clone(), parts).encode_with(style)
    }
}

/// One instance's state, already written, for [`write_trusted`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrittenPart<'a> {
    /// Its Content-ID, without angle brackets (the RLMI `cid`).
    pub content_id: &'a str,
    /// Its Content-Type header value.
    pub content_type: &'a str,
    /// Its body.
    pub body: &'a [u8],
}

/// The Content-Type header value and the body of a list NOTIFY written straight from
/// `rlmi` (an RLMI document, e.g. from [`crate::doc::rlmi::RlmiWriter`]), its Content-ID
/// `rlmi_id` and `parts`, under `boundary`: the bytes [`ListBody::encode_with`] writes for
/// the same body and boundary, without its checks and copies. For a server writing what it
/// built itself, every NOTIFY: the caller vouches that `boundary` is a token that starts no
/// line of the RLMI document or of any part (see [`starts_a_line`]), that the ids are
/// unique ids ([`ListBody::encode_with`] says what one is) named by the RLMI document, and
/// that the content types parse; anything else writes a body no reader takes.
/// The bytes of a part besides its boundary, Content-ID and Content-Type values and body:
/// `\r\n--`, `\r\nContent-Transfer-Encoding: binary\r\n`, `Content-ID: <`, `>\r\n`,
/// `Content-Type: `, `\r\n\r\n` (rounded up).
const PART_OVERHEAD: usize = 96;

pub(crate) fn write_trusted(
    rlmi: &str,
    rlmi_id: &str,
    parts: &[WrittenPart<'_>],
    boundary: &str,
    style: ContentIdStyle,
) -> (String, Vec<u8>) {
    let header = format!(
        "{};type=\"{}\";start=\"<{rlmi_id}>\";boundary={boundary}",
        MultipartRelated::MEDIA_TYPE,
        Rlmi::CONTENT_TYPE
    );
    let size = rlmi.len()
        + parts
            .iter()
            .map(|p| p.body.len() + p.content_type.len() + p.content_id.len())
            .sum::<usize>()
        // Each part's delimiter line and header lines (and the RLMI part's); the last
        // delimiter: sized at once, no growing (a NOTIFY of a busy panel is kilobytes).
        + (parts.len() + 1) * (PART_OVERHEAD + boundary.len())
        + rlmi_id.len()
        + RLMI_PART_TYPE.len()
        + boundary.len()
        + 8;
    let mut out = Vec::with_capacity(size);
    let mut part = |n: usize, id: &str, content_type: &str, body: &[u8]| {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Transfer-Encoding: binary\r\n");
        match style {
            ContentIdStyle::Standard => {
                out.extend_from_slice(b"Content-ID: <");
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(b">\r\n");
            }
            ContentIdStyle::Bare => {
                out.extend_from_slice(b"Content-Id: ");
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    };
    part(0, rlmi_id, RLMI_PART_TYPE, rlmi.as_bytes());
    for (n, p) in parts.iter().enumerate() {
        part(n + 1, p.content_id, p.content_type, p.body);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    (header, out)
}

/// Whether a line of `text` starts with `--boundary` (so `boundary` cannot delimit a body
/// that holds `text`).
pub(crate) fn starts_a_line(text: &[u8], boundary: &str) -> bool {
    super::multipart::starts_a_line(text, boundary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::resource_lists::DisplayName;
    use crate::doc::rlmi::{InstanceState, Resource};

    const PIDF: &str = "application/pidf+xml;charset=\"UTF-8\"";

    fn pidf(entity: &str, basic: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\r\n  <tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple>\r\n</presence>\r\n"
        )
        .into_bytes()
    }

    /// What a list server sends first: full state, two active resources, one pending.
    fn full_state() -> ListBody {
        let mut rlmi = Rlmi::new("sip:buddies@example.test", 0);
        rlmi.names.push(DisplayName::new("Buddies"));
        let mut bob = Resource::new("sip:bob@example.test");
        bob.instances
            .push(Instance::active("i1", "bob1@rls.example.test"));
        let mut carol = Resource::new("sip:carol@example.test");
        carol
            .instances
            .push(Instance::active("i2", "carol1@rls.example.test"));
        let mut dave = Resource::new("sip:dave@example.test");
        dave.instances
            .push(Instance::new("i3", InstanceState::Pending));
        rlmi.resources = vec![bob, carol, dave];
        let mut body = ListBody::new(rlmi, "rlmi0@rls.example.test");
        body.parts.push(BodyPart::new(
            "bob1@rls.example.test",
            PIDF,
            pidf("sip:bob@example.test", "open"),
        ));
        body.parts.push(BodyPart::new(
            "carol1@rls.example.test",
            PIDF,
            pidf("sip:carol@example.test", "closed"),
        ));
        body
    }

    #[test]
    fn the_trusted_writer_writes_what_encode_writes() {
        let body = full_state();
        for style in [ContentIdStyle::Standard, ContentIdStyle::Bare] {
            let (ct, bytes) = body.encode_with(style).unwrap();
            let boundary = ct.rsplit("boundary=").next().unwrap();
            let parts: Vec<WrittenPart<'_>> = body
                .parts
                .iter()
                .map(|p| WrittenPart {
                    content_id: p.content_id.as_deref().unwrap(),
                    content_type: &p.content_type,
                    body: &p.body,
                })
                .collect();
            let rlmi = body.rlmi.to_xml();
            let (ct2, bytes2) = write_trusted(
                &rlmi,
                body.rlmi_id.as_deref().unwrap(),
                &parts,
                boundary,
                style,
            );
            assert_eq!(ct2, ct);
            assert_eq!(
                String::from_utf8_lossy(&bytes2),
                String::from_utf8_lossy(&bytes)
            );
        }
        assert!(starts_a_line(b"x\r\n--b1 y", "b1"));
        assert!(!starts_a_line(b"x --b1", "b1"));
    }

    #[test]
    fn builds_and_reads_back() {
        let body = full_state();
        let (ct, bytes) = body.encode().unwrap();
        assert!(ct.starts_with(
            "multipart/related;type=\"application/rlmi+xml\";start=\"<rlmi0@rls.example.test>\";boundary="
        ));
        let back = ListBody::parse(&ct, &bytes, &Limits::DEFAULT).unwrap();
        assert_eq!(back, body);
        let bob = back.rlmi.resource("sip:bob@example.test").unwrap();
        let state = back.state_of(&bob.instances[0]).unwrap();
        assert!(state.is("application/pidf+xml"));
        assert!(String::from_utf8_lossy(&state.body).contains("<basic>open</basic>"));
        let dave = back.rlmi.resource("sip:dave@example.test").unwrap();
        assert!(back.state_of(&dave.instances[0]).is_none());
    }

    #[test]
    fn a_nested_list_is_a_multipart_part_read_again() {
        let inner = full_state();
        let (inner_ct, inner_bytes) = inner.encode().unwrap();
        let mut rlmi = Rlmi::new("sip:all@example.test", 3);
        let mut sub = Resource::new("sip:buddies@example.test");
        sub.instances
            .push(Instance::active("n1", "nested@rls.example.test"));
        rlmi.resources.push(sub);
        let mut outer = ListBody::new(rlmi, "outer@rls.example.test");
        outer.parts.push(BodyPart::new(
            "nested@rls.example.test",
            inner_ct,
            inner_bytes,
        ));
        let (ct, bytes) = outer.encode().unwrap();
        let back = ListBody::parse(&ct, &bytes, &Limits::DEFAULT).unwrap();
        let part = back.state_of(&back.rlmi.resources[0].instances[0]).unwrap();
        let nested = ListBody::parse(&part.content_type, &part.body, &Limits::DEFAULT).unwrap();
        assert_eq!(nested, inner);
    }

    #[test]
    fn refuses_what_a_list_client_cannot_use() {
        let (ct, bytes) = full_state().encode().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // An instance names a part that is not there.
        let gone = text.replace("Content-ID: <carol1@rls.example.test>", "Content-ID: <x@y>");
        match ListBody::parse(&ct, gone.as_bytes(), &Limits::DEFAULT) {
            Err(Error::Malformed(m)) => {
                assert!(
                    m.contains("carol1@rls.example.test") && m.contains("does not have"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Another root type.
        let pidf_root = ct.replace(
            "type=\"application/rlmi+xml\"",
            "type=\"application/pidf+xml\"",
        );
        assert!(matches!(
            ListBody::parse(&pidf_root, &bytes, &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("root part")
        ));
        // A wrong boundary, a missing start part.
        let wrong = ct.replace("boundary=impp-", "boundary=other-");
        assert!(matches!(
            ListBody::parse(&wrong, &bytes, &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("does not occur")
        ));
        let no_start = text.replace("<rlmi0@rls.example.test>", "<moved@rls.example.test>");
        assert!(matches!(
            ListBody::parse(&ct, no_start.as_bytes(), &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("start part <rlmi0@rls.example.test> is missing")
        ));
        // A root that is not RLMI, or not UTF-8.
        let bad_root = text.replace("fullState=\"true\"", "fullState=\"maybe\"");
        assert!(matches!(
            ListBody::parse(&ct, bad_root.as_bytes(), &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("fullState")
        ));
        let mut latin1 = bytes.clone();
        let at = text.find("Buddies").unwrap();
        latin1[at] = 0xc4;
        assert!(matches!(
            ListBody::parse(&ct, &latin1, &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("UTF-8")
        ));
        // A type parameter that is not RLMI, with a root of that type.
        let plain = "multipart/related;type=\"text/plain\";boundary=b";
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n";
        assert!(matches!(
            ListBody::parse(plain, body.as_bytes(), &Limits::DEFAULT),
            Err(Error::Malformed(m)) if m.contains("not application/rlmi+xml")
        ));
    }

    #[test]
    fn encode_refuses_parts_and_cids_that_do_not_match() {
        let mut missing = full_state();
        missing.parts.pop();
        assert!(
            matches!(missing.encode(), Err(Error::InvalidArgument(m)) if m.contains("carol1@rls.example.test"))
        );
        let mut extra = full_state();
        extra
            .parts
            .push(BodyPart::new("stray@rls.example.test", PIDF, "x"));
        assert!(matches!(extra.encode(), Err(Error::InvalidArgument(m)) if m.contains("stray")));
        let mut anonymous = full_state();
        anonymous.parts.push(BodyPart {
            content_id: None,
            ..BodyPart::new("x", PIDF, "x")
        });
        assert!(
            matches!(anonymous.encode(), Err(Error::InvalidArgument(m)) if m.contains("no Content-ID"))
        );
        let mut dup = full_state();
        dup.rlmi.resources[1].uri = "sip:bob@example.test".into();
        assert!(
            matches!(dup.encode(), Err(Error::InvalidArgument(m)) if m.contains("two <resource>s"))
        );
        let mut clash = full_state();
        clash.rlmi_id = Some("bob1@rls.example.test".into());
        assert!(
            matches!(clash.encode(), Err(Error::InvalidArgument(m)) if m.contains("two parts"))
        );
    }

    /// A small deterministic stand-in for the `multipart` fuzz target: mutated bodies and
    /// headers either fail cleanly or encode and read back unchanged.
    #[test]
    fn mutated_bodies_fail_cleanly_or_round_trip() {
        let (ct, body) = full_state().encode().unwrap();
        let alphabet = b"-<>:;\"= \t\r\nabZ@/";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let unlimited = Limits {
            max_bytes: usize::MAX,
            ..Limits::DEFAULT
        };
        let (mut parsed, mut listed) = (0, 0);
        for round in 0..3_000 {
            let mut ct = ct.clone().into_bytes();
            let mut bytes = body.clone();
            let target = if round % 4 == 0 { &mut ct } else { &mut bytes };
            for _ in 0..1 + next(3) {
                let at = next(target.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(3) {
                    0 if at < target.len() => target[at] = c,
                    1 if at < target.len() => {
                        target.remove(at);
                    }
                    _ => target.insert(at, c),
                }
            }
            let Ok(ct) = String::from_utf8(ct) else {
                continue;
            };
            if let Ok(m) = MultipartRelated::parse(&ct, &bytes, &Limits::DEFAULT) {
                parsed += 1;
                let (ct2, bytes2) = m.encode().unwrap();
                assert_eq!(
                    MultipartRelated::parse(&ct2, &bytes2, &unlimited).unwrap(),
                    m
                );
            }
            match ListBody::parse(&ct, &bytes, &Limits::DEFAULT) {
                Ok(list) => {
                    listed += 1;
                    if let Ok((ct2, bytes2)) = list.encode() {
                        assert_eq!(ListBody::parse(&ct2, &bytes2, &unlimited).unwrap(), list);
                    }
                }
                Err(Error::Malformed(m)) => assert!(!m.is_empty()),
                Err(Error::Unsupported(_) | Error::TooLarge(_) | Error::UnsafeXml(_)) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(parsed > 300 && listed > 300, "{parsed} {listed}");
    }
}
