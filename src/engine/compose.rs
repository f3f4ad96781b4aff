//! Composition: the live publications of one presentity merged, per package, into the one
//! document its watchers see (DESIGN §1 "composed state"), and the neutral document a
//! polite-blocked watcher sees instead.
//!
//! Every publication comes with its recency sequence (higher = newer). Wherever one value
//! must win, the newest publication that has it wins; publications with equal sequences keep
//! the order of the slice (the earlier one counts as newer). Composition never fails: the
//! inputs are documents that already parsed.
//!
//! # Presence (RFC 3863, RFC 4479)
//!
//! - `entity` is the presentity's canonical URI, whatever the publishers wrote.
//! - Tuples: every tuple of every publication, so each device's service shows at once.
//!   Order: publications newest first, each in its document order. PIDF gives tuple order no
//!   meaning, but naive clients show the first tuple, and the most recently changed device
//!   is the best guess of where the user is.
//! - Persons: those of the newest publication that has any ("person data most recent
//!   wins"); RFC 4479 has one person per presentity, so persons of different publications
//!   are not merged.
//! - Devices: every device of every publication.
//! - Ids: a composed document, like any PIDF document, uses each id once across tuples,
//!   persons and devices. An id belongs to the element of the newest publication that uses
//!   it; the same id in an older publication (two devices publishing tuple `sip`) is
//!   dropped. So a tuple id clash is won by the newest publication, and so is the
//!   (pathological) clash of a tuple id with a person or device id of another publication.
//! - Presence-level notes, extension elements and extension attributes: each taken whole
//!   from the newest publication that has some. They are not merged: two publishers' notes
//!   side by side would contradict each other.
//!
//! # Dialog (RFC 4235)
//!
//! A full document for the presentity, version 0 (the engine numbers the versions of each
//! watcher's notifications): the union of the dialogs by id, ordered like tuples, the newest
//! publication winning a clash; extension elements and attributes from the newest
//! publication that has some. Publications are taken as full states (the engine folds a
//! partial publication into its state before composing).
//!
//! # Message summary (RFC 3842)
//!
//! Two mailboxes (say, the PBX's voicemail and a fax server) publishing for one user light
//! one lamp: `Messages-Waiting` is yes if any says yes; the counts of each message class are
//! summed (saturating; urgent counts are summed when any publication gives them, a missing
//! one counting 0; an `Other` class is matched case-insensitively), in order of first
//! appearance, newest publication first; the account and the extra headers come from the
//! newest publication that has some; the message header blocks are all kept, newest first.
//!
//! # Watcher information
//!
//! `presence.winfo` is never published: the engine makes it. [`compose`] returns the empty
//! full document (see [`neutral`]) whatever it is given.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use crate::doc::dialog::DialogInfo;
use crate::doc::mwi::{MessageClass, MessageCount, MessageSummary};
use crate::doc::pidf::{Basic, Presence, Tuple};
use crate::doc::winfo::{WatcherList, Watcherinfo};
use crate::doc::DocState;
use crate::model::package::{Document, Package};
use crate::uri::Uri;

/// The id of the one tuple of the neutral presence document: a plain, constant id that says
/// nothing about the presentity or about the watcher being blocked.
pub const NEUTRAL_TUPLE_ID: &str = "t0";

/// The document watchers of `presentity` see for `package`, composed from its live
/// `publications` (`(recency sequence, document)`, higher sequence = newer; any order).
///
/// A publication of another package is a caller bug: it trips a debug assertion and is
/// otherwise ignored. No publications give the empty document of the package (a presence
/// document without tuples, an empty dialog-info, `Messages-Waiting: no`).
pub fn compose(package: Package, presentity: &Uri, publications: &[(u64, &Document)]) -> Document {
    debug_assert!(
        publications.iter().all(|(_, d)| d.package() == package),
        "compose({package}) given a publication of another package"
    );
    match package {
        Package::Presence => {
            let pubs = newest_first(publications, |d| match d {
                Document::Presence(p) => Some(p),
                _ => None,
            });
            Document::Presence(compose_presence(presentity, &pubs))
        }
        Package::Dialog => {
            let pubs = newest_first(publications, |d| match d {
                Document::Dialog(p) => Some(p),
                _ => None,
            });
            Document::Dialog(compose_dialog(presentity, &pubs))
        }
        Package::MessageSummary => {
            let pubs = newest_first(publications, |d| match d {
                Document::MessageSummary(p) => Some(p),
                _ => None,
            });
            Document::MessageSummary(compose_summary(&pubs))
        }
        Package::PresenceWinfo => Document::Winfo(empty_winfo(presentity)),
    }
}

/// What a polite-blocked watcher of `presentity` sees for `package` (RFC 5025's
/// polite-block): a document that names the presentity and reveals nothing else.
///
/// - presence: one tuple ([`NEUTRAL_TUPLE_ID`]) with basic status `closed`, and nothing
///   else: no notes, person, device, contact, timestamp or extension;
/// - dialog: a full dialog-info without dialogs (an idle line), version 0;
/// - message-summary: `Messages-Waiting: no`, without account or counts;
/// - presence.winfo: a full watcherinfo, version 0, with the presentity's `presence`
///   watcher list and no watcher.
pub fn neutral(package: Package, presentity: &Uri) -> Document {
    match package {
        Package::Presence => {
            let mut p = Presence::new(presentity.to_string());
            p.tuples.push(Tuple::new(NEUTRAL_TUPLE_ID, Basic::Closed));
            Document::Presence(p)
        }
        Package::Dialog => Document::Dialog(empty_dialog(presentity)),
        Package::MessageSummary => Document::MessageSummary(MessageSummary::new(false)),
        Package::PresenceWinfo => Document::Winfo(empty_winfo(presentity)),
    }
}

/// The documents of one kind, newest first (stable: equal sequences keep slice order).
fn newest_first<'a, T>(
    publications: &[(u64, &'a Document)],
    pick: impl Fn(&'a Document) -> Option<&'a T>,
) -> Vec<&'a T> {
    let mut found: Vec<(u64, &'a T)> = publications
        .iter()
        .filter_map(|&(seq, doc)| pick(doc).map(|t| (seq, t)))
        .collect();
    found.sort_by_key(|&(seq, _)| std::cmp::Reverse(seq));
    found.into_iter().map(|(_, t)| t).collect()
}

/// The first non-empty list among `docs` (newest first), cloned; empty when none has one.
fn newest_nonempty<T, U: Clone>(docs: &[&T], field: impl Fn(&T) -> &Vec<U>) -> Vec<U> {
    docs.iter()
        .map(|d| field(d))
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_default()
}

fn compose_presence(presentity: &Uri, pubs: &[&Presence]) -> Presence {
    let mut out = Presence::new(presentity.to_string());
    let person_source = pubs.iter().position(|p| !p.persons.is_empty());
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, p) in pubs.iter().enumerate() {
        for t in &p.tuples {
            if ids.insert(&t.id) {
                out.tuples.push(t.clone());
            }
        }
        if person_source == Some(i) {
            for person in &p.persons {
                if ids.insert(&person.id) {
                    out.persons.push(person.clone());
                }
            }
        }
        for d in &p.devices {
            if ids.insert(&d.id) {
                out.devices.push(d.clone());
            }
        }
    }
    out.notes = newest_nonempty(pubs, |p| &p.notes);
    out.extensions = newest_nonempty(pubs, |p| &p.extensions);
    out.extension_attributes = newest_nonempty(pubs, |p| &p.extension_attributes);
    out
}

fn empty_dialog(presentity: &Uri) -> DialogInfo {
    DialogInfo {
        version: 0,
        state: DocState::Full,
        entity: presentity.to_string(),
        ..DialogInfo::default()
    }
}

fn compose_dialog(presentity: &Uri, pubs: &[&DialogInfo]) -> DialogInfo {
    let mut out = empty_dialog(presentity);
    let mut ids: HashSet<&str> = HashSet::new();
    for d in pubs.iter().flat_map(|p| &p.dialogs) {
        if ids.insert(&d.id) {
            out.dialogs.push(d.clone());
        }
    }
    out.extensions = newest_nonempty(pubs, |p| &p.extensions);
    out.extension_attributes = newest_nonempty(pubs, |p| &p.extension_attributes);
    out
}

fn same_class(a: &MessageClass, b: &MessageClass) -> bool {
    match (a, b) {
        (MessageClass::Other(x), MessageClass::Other(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn add_urgent(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (None, None) => None,
        _ => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

fn compose_summary(pubs: &[&MessageSummary]) -> MessageSummary {
    let mut out = MessageSummary::new(pubs.iter().any(|m| m.messages_waiting));
    out.account = pubs.iter().find_map(|m| m.account.clone());
    for c in pubs.iter().flat_map(|m| &m.counts) {
        match out
            .counts
            .iter_mut()
            .find(|o| same_class(&o.class, &c.class))
        {
            Some(o) => {
                *o = MessageCount {
                    class: o.class.clone(),
                    new: o.new.saturating_add(c.new),
                    old: o.old.saturating_add(c.old),
                    urgent_new: add_urgent(o.urgent_new, c.urgent_new),
                    urgent_old: add_urgent(o.urgent_old, c.urgent_old),
                }
            }
            None => out.counts.push(c.clone()),
        }
    }
    out.extra_headers = newest_nonempty(pubs, |m| &m.extra_headers);
    out.message_headers = pubs
        .iter()
        .flat_map(|m| m.message_headers.iter().cloned())
        .collect();
    out
}

fn empty_winfo(presentity: &Uri) -> Watcherinfo {
    Watcherinfo {
        version: 0,
        state: DocState::Full,
        lists: vec![WatcherList::new(
            presentity.to_string(),
            Package::Presence.as_str(),
        )],
        ..Watcherinfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::datamodel::{Device, Person};
    use crate::doc::dialog::{Dialog, DialogStateValue};
    use crate::doc::mwi::MessageHeaders;
    use crate::doc::rpid::Activity;
    use crate::doc::{Limits, Note};

    fn alice() -> Uri {
        Uri::parse("sip:alice@example.test").unwrap()
    }

    fn pidf(body: &str) -> Document {
        let xml = format!(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"
                xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
                xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
                entity="pres:alice@example.test">{body}</presence>"#
        );
        Package::Presence.parse(&xml, &Limits::DEFAULT).unwrap()
    }

    fn presence(doc: Document) -> Presence {
        match doc {
            Document::Presence(p) => p,
            other => panic!("not presence: {other:?}"),
        }
    }

    fn tuple(id: &str, basic: &str, note: &str) -> String {
        format!(
            r#"<tuple id="{id}"><status><basic>{basic}</basic></status><note>{note}</note></tuple>"#
        )
    }

    fn ids(p: &Presence) -> Vec<&str> {
        p.tuples.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn three_devices_compose_into_three_tuples_and_the_person() {
        let phone = pidf(&tuple("phone", "open", "desk phone"));
        let desk = pidf(&tuple("desk", "closed", "workstation"));
        let laptop = pidf(&format!(
            r#"{}<dm:person id="alice"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>
               <dm:device id="lap"><dm:deviceID>urn:uuid:0001</dm:deviceID></dm:device>"#,
            tuple("laptop", "open", "laptop")
        ));
        let composed = compose(
            Package::Presence,
            &alice(),
            &[(1, &phone), (3, &laptop), (2, &desk)],
        );
        let p = presence(composed.clone());
        assert_eq!(p.entity, "sip:alice@example.test");
        assert_eq!(ids(&p), ["laptop", "desk", "phone"]);
        assert_eq!(p.tuple("phone").unwrap().status.basic, Some(Basic::Open));
        assert_eq!(p.tuple("desk").unwrap().status.basic, Some(Basic::Closed));
        assert!(p.is_open());
        assert_eq!(p.persons.len(), 1);
        assert_eq!(p.persons[0].id, "alice");
        let activities = p.persons[0].activities.as_ref().unwrap();
        assert_eq!(activities.values, [Activity::OnThePhone]);
        assert_eq!(p.devices.len(), 1);
        p.validate().unwrap();
        // What watchers receive parses back to the same document.
        assert_eq!(
            Package::Presence
                .parse(&composed.to_body(), &Limits::DEFAULT)
                .unwrap(),
            composed
        );
    }

    #[test]
    fn tuple_id_clash_newest_publication_wins() {
        let old = pidf(&format!(
            "{}{}",
            tuple("sip", "closed", "old"),
            tuple("old-only", "open", "x")
        ));
        let new = pidf(&tuple("sip", "open", "new"));
        for pubs in [[(5, &old), (9, &new)], [(9, &new), (5, &old)]] {
            let p = presence(compose(Package::Presence, &alice(), &pubs));
            assert_eq!(ids(&p), ["sip", "old-only"]);
            let sip = p.tuple("sip").unwrap();
            assert_eq!(sip.status.basic, Some(Basic::Open));
            assert_eq!(sip.notes, [Note::new("new")]);
        }
    }

    #[test]
    fn equal_sequences_keep_slice_order() {
        let a = pidf(&tuple("t", "open", "a"));
        let b = pidf(&tuple("t", "closed", "b"));
        let p = presence(compose(Package::Presence, &alice(), &[(1, &a), (1, &b)]));
        assert_eq!(p.tuples[0].notes, [Note::new("a")]);
    }

    #[test]
    fn person_comes_from_the_newest_publication_with_one() {
        let person = |id: &str, note: &str| {
            format!(r#"<dm:person id="{id}"><dm:note>{note}</dm:note></dm:person>"#)
        };
        let oldest = pidf(&format!(
            "{}{}",
            tuple("a", "open", "a"),
            person("p1", "old")
        ));
        let middle = pidf(&format!(
            "{}{}",
            tuple("b", "open", "b"),
            person("p2", "mid")
        ));
        let newest = pidf(&tuple("c", "closed", "c"));
        let p = presence(compose(
            Package::Presence,
            &alice(),
            &[(1, &oldest), (3, &newest), (2, &middle)],
        ));
        assert_eq!(p.persons.len(), 1);
        assert_eq!(p.persons[0].id, "p2");
        assert_eq!(p.persons[0].notes, [Note::new("mid")]);
        assert_eq!(ids(&p), ["c", "b", "a"]);
    }

    #[test]
    fn devices_notes_and_cross_kind_ids() {
        let mut old = Presence::new("sip:alice@example.test");
        old.tuples.push(Tuple::new("x", Basic::Open));
        old.devices.push(Device::new("d1", "urn:uuid:old"));
        old.devices.push(Device::new("d2", "urn:uuid:two"));
        old.notes.push(Note::new("old note"));
        let mut new = Presence::new("sip:alice@example.test");
        new.devices.push(Device::new("d1", "urn:uuid:new"));
        // A person id that an older publication uses for a tuple: the newest owns the id.
        new.persons.push(Person::new("x"));
        let (old, new) = (Document::Presence(old), Document::Presence(new));
        let p = presence(compose(
            Package::Presence,
            &alice(),
            &[(1, &old), (2, &new)],
        ));
        assert_eq!(p.devices.len(), 2);
        assert_eq!(p.devices[0].device_id.as_deref(), Some("urn:uuid:new"));
        assert_eq!(p.devices[1].id, "d2");
        assert_eq!(p.notes, [Note::new("old note")]);
        assert_eq!(p.persons, [Person::new("x")]);
        assert!(p.tuples.is_empty());
        p.validate().unwrap();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "another package")]
    fn another_packages_publication_is_a_bug() {
        let mwi = Document::MessageSummary(MessageSummary::new(true));
        compose(Package::Presence, &alice(), &[(1, &mwi)]);
    }

    #[test]
    fn no_publications_give_empty_documents() {
        let p = presence(compose(Package::Presence, &alice(), &[]));
        assert_eq!(p, Presence::new("sip:alice@example.test"));
        let Document::MessageSummary(m) = compose(Package::MessageSummary, &alice(), &[]) else {
            panic!()
        };
        assert_eq!(m, MessageSummary::new(false));
    }

    fn dialog_doc(entity: &str, dialogs: &[(&str, DialogStateValue)]) -> Document {
        Document::Dialog(DialogInfo {
            version: 7,
            state: DocState::Full,
            entity: entity.to_owned(),
            dialogs: dialogs.iter().map(|(id, s)| Dialog::new(*id, *s)).collect(),
            ..DialogInfo::default()
        })
    }

    #[test]
    fn dialogs_are_unioned_by_id() {
        use DialogStateValue::*;
        let phone = dialog_doc("sip:201@pbx", &[("a", Confirmed), ("b", Early)]);
        let softphone = dialog_doc("sip:201@pbx;x=y", &[("b", Terminated), ("c", Trying)]);
        let Document::Dialog(d) =
            compose(Package::Dialog, &alice(), &[(10, &phone), (11, &softphone)])
        else {
            panic!()
        };
        assert_eq!(d.version, 0);
        assert_eq!(d.state, DocState::Full);
        assert_eq!(d.entity, "sip:alice@example.test");
        let got: Vec<_> = d
            .dialogs
            .iter()
            .map(|x| (x.id.as_str(), x.state.value))
            .collect();
        assert_eq!(got, [("b", Terminated), ("c", Trying), ("a", Confirmed)]);
        let body = Document::Dialog(d.clone()).to_body();
        assert_eq!(DialogInfo::parse(&body, &Limits::DEFAULT).unwrap(), d);
    }

    #[test]
    fn message_summaries_are_summed() {
        let voicemail = Package::MessageSummary
            .parse(
                "Messages-Waiting: yes\r\nMessage-Account: sip:vm@pbx\r\n\
                 Voice-Message: 2/8 (1/0)\r\nVideo-Message: 1/0\r\n\r\nSubject: call me\r\n",
                &Limits::DEFAULT,
            )
            .unwrap();
        let second = Package::MessageSummary
            .parse(
                "Messages-Waiting: no\r\nVoice-Message: 0/3\r\nFax-Message: 1/1\r\n\
                 video-message: 2/2\r\n",
                &Limits::DEFAULT,
            )
            .unwrap();
        let Document::MessageSummary(m) = compose(
            Package::MessageSummary,
            &alice(),
            &[(2, &second), (1, &voicemail)],
        ) else {
            panic!()
        };
        assert!(m.messages_waiting);
        assert_eq!(m.account.as_deref(), Some("sip:vm@pbx"));
        assert_eq!(
            m.counts,
            [
                MessageCount::new(MessageClass::Voice, 2, 11).with_urgent(1, 0),
                MessageCount::new(MessageClass::Fax, 1, 1),
                MessageCount::new(MessageClass::Other("video-message".into()), 3, 2),
            ]
        );
        assert_eq!(
            m.message_headers,
            [MessageHeaders {
                headers: vec![("Subject".into(), "call me".into())]
            }]
        );
        let none = Package::MessageSummary
            .parse("Messages-Waiting: no\r\n", &Limits::DEFAULT)
            .unwrap();
        let Document::MessageSummary(m) =
            compose(Package::MessageSummary, &alice(), &[(1, &none), (2, &none)])
        else {
            panic!()
        };
        assert!(!m.messages_waiting);
        assert!(m.counts.is_empty());
    }

    #[test]
    fn counts_saturate() {
        let big = Document::MessageSummary(MessageSummary {
            counts: vec![MessageCount::new(MessageClass::Voice, u32::MAX, 1)],
            ..MessageSummary::new(true)
        });
        let Document::MessageSummary(m) =
            compose(Package::MessageSummary, &alice(), &[(1, &big), (2, &big)])
        else {
            panic!()
        };
        assert_eq!(m.counts[0].new, u32::MAX);
        assert_eq!(m.counts[0].old, 2);
        assert_eq!(m.counts[0].urgent_new, None);
    }

    #[test]
    fn winfo_is_not_composed() {
        let Document::Winfo(w) = compose(Package::PresenceWinfo, &alice(), &[]) else {
            panic!()
        };
        assert_eq!(w.state, DocState::Full);
        assert_eq!(w.lists.len(), 1);
        assert!(w.lists[0].watchers.is_empty());
        assert_eq!(
            Document::Winfo(w.clone()),
            neutral(Package::PresenceWinfo, &alice())
        );
    }

    /// A presentity whose real state is rich in every package.
    fn rich_state() -> Vec<(Package, Document)> {
        let presence = pidf(&format!(
            r#"{}<note>SECRET-NOTE</note>
               <dm:person id="SECRET-PERSON"><rpid:activities><rpid:on-the-phone/></rpid:activities>
                 <dm:note>SECRET-PERSON-NOTE</dm:note></dm:person>
               <dm:device id="SECRET-DEVICE"><dm:deviceID>urn:uuid:SECRET</dm:deviceID></dm:device>
               <x:secret xmlns:x="urn:example:SECRET">SECRET-EXT</x:secret>"#,
            r#"<tuple id="SECRET-TUPLE"><status><basic>open</basic></status>
                 <contact priority="0.8">sip:SECRET-CONTACT@example.test</contact></tuple>"#
        ));
        let dialog = dialog_doc(
            "sip:alice@example.test",
            &[("SECRET-DIALOG", DialogStateValue::Confirmed)],
        );
        let mwi = Package::MessageSummary
            .parse(
                "Messages-Waiting: yes\r\nMessage-Account: sip:SECRET@vm\r\nVoice-Message: 4/2\r\n",
                &Limits::DEFAULT,
            )
            .unwrap();
        vec![
            (Package::Presence, presence),
            (Package::Dialog, dialog),
            (Package::MessageSummary, mwi),
        ]
    }

    #[test]
    fn neutral_documents_reveal_nothing() {
        let uri = alice();
        for (package, real) in rich_state() {
            let composed = compose(package, &uri, &[(1, &real)]);
            assert!(composed.to_body().contains("SECRET"), "{package}");
            let neutral = neutral(package, &uri);
            assert_eq!(neutral.package(), package);
            let body = neutral.to_body();
            for leak in [
                "SECRET",
                "on-the-phone",
                "open",
                "yes",
                "person",
                "device",
                "note",
            ] {
                assert!(
                    !body.contains(leak),
                    "{package} neutral shows {leak}: {body}"
                );
            }
            // It parses as a document of its package.
            assert_eq!(package.parse(&body, &Limits::DEFAULT).unwrap(), neutral);
        }

        let Document::Presence(p) = neutral(Package::Presence, &uri) else {
            panic!()
        };
        let mut expected = Presence::new("sip:alice@example.test");
        expected
            .tuples
            .push(Tuple::new(NEUTRAL_TUPLE_ID, Basic::Closed));
        assert_eq!(p, expected);
        assert!(!p.is_open());

        let Document::Dialog(d) = neutral(Package::Dialog, &uri) else {
            panic!()
        };
        assert!(d.dialogs.is_empty() && d.extensions.is_empty());
        assert_eq!((d.version, d.state), (0, DocState::Full));
        assert_eq!(d.entity, "sip:alice@example.test");

        let Document::MessageSummary(m) = neutral(Package::MessageSummary, &uri) else {
            panic!()
        };
        assert_eq!(m.to_text(), "Messages-Waiting: no\r\n");
    }
}
