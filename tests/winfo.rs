//! Watcher information documents (RFC 3858) as presence servers send them: parsing, round
//! trips, folding partial notifications, and refusing what the schema does not allow.

use std::str::FromStr;

use impp::doc::winfo::{DocState, Watcher, WatcherEvent, WatcherList, WatcherStatus, Watcherinfo};
use impp::doc::{Attribute, Element, Limits};
use impp::Error;

fn parse(doc: &str) -> Watcherinfo {
    Watcherinfo::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
}

/// Parses, serializes and parses again; both models must be equal.
fn round_trip(doc: &Watcherinfo) {
    let xml = doc.to_xml();
    let again = Watcherinfo::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(&again, doc, "{xml}");
}

fn malformed(doc: &str) -> String {
    match Watcherinfo::parse(doc, &Limits::DEFAULT) {
        Err(Error::Malformed(m)) => m,
        other => panic!("expected Malformed for {doc:?}, got {other:?}"),
    }
}

/// A full document in the shape of the RFC 3858 example: one presentity, one watcher
/// already approved, one waiting for a decision.
const RFC_STYLE_FULL: &str = r#"<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
  <watcher-list resource="sip:carol@example.test" package="presence">
    <watcher status="active" id="w-81a3" event="approved" duration-subscribed="509"
             expiration="3091">sip:dave@example.test</watcher>
    <watcher status="pending" id="w-81a4" event="subscribe" display-name="Erin Lund"
             xml:lang="sv">sip:erin@example.test</watcher>
  </watcher-list>
</watcherinfo>
"#;

/// What Kamailio's presence module sends to a winfo subscriber: no indentation, prefix
/// free, and a watcher id derived from the subscription.
const KAMAILIO_FULL: &str = "<?xml version=\"1.0\"?>\n<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"3\" state=\"full\"><watcher-list resource=\"sip:alice@example.test\" package=\"presence\"><watcher id=\"a1c0de.5f\" event=\"subscribe\" status=\"pending\">sip:bob@example.test</watcher><watcher id=\"a1c0de.60\" event=\"approved\" status=\"active\">sip:carol@example.test</watcher></watcher-list></watcherinfo>\n";

const KAMAILIO_PARTIAL: &str = "<?xml version=\"1.0\"?>\n<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"4\" state=\"partial\"><watcher-list resource=\"sip:alice@example.test\" package=\"presence\"><watcher id=\"a1c0de.5f\" event=\"approved\" status=\"active\">sip:bob@example.test</watcher></watcher-list></watcherinfo>\n";

#[test]
fn parses_a_full_document() {
    let doc = parse(RFC_STYLE_FULL);
    assert_eq!(doc.version, 0);
    assert_eq!(doc.state, DocState::Full);
    assert_eq!(doc.lists.len(), 1);
    let list = &doc.lists[0];
    assert_eq!(list.resource, "sip:carol@example.test");
    assert_eq!(list.package, "presence");
    assert_eq!(list.watchers.len(), 2);

    let dave = &list.watchers[0];
    assert_eq!(dave.id, "w-81a3");
    assert_eq!(dave.uri, "sip:dave@example.test");
    assert_eq!(dave.status, WatcherStatus::Active);
    assert_eq!(dave.event, WatcherEvent::Approved);
    assert_eq!(dave.duration_subscribed, Some(509));
    assert_eq!(dave.expiration, Some(3091));
    assert_eq!(dave.display_name, None);
    assert!(dave.extension_attributes.is_empty());

    let erin = &list.watchers[1];
    assert_eq!(erin.status, WatcherStatus::Pending);
    assert_eq!(erin.event, WatcherEvent::Subscribe);
    assert_eq!(erin.display_name.as_deref(), Some("Erin Lund"));
    assert_eq!(erin.lang.as_deref(), Some("sv"));
    assert_eq!(erin.duration_subscribed, None);
    assert!(
        erin.extension_attributes.is_empty(),
        "xml:lang is modelled, not kept twice"
    );

    assert_eq!(doc.list("sip:carol@example.test", "presence"), Some(list));
    assert_eq!(doc.list("sip:carol@example.test", "dialog"), None);
    round_trip(&doc);
}

#[test]
fn parses_kamailio_full_and_partial_documents() {
    let full = parse(KAMAILIO_FULL);
    assert_eq!(full.version, 3);
    assert_eq!(full.lists[0].watchers.len(), 2);
    round_trip(&full);

    let partial = parse(KAMAILIO_PARTIAL);
    assert_eq!(partial.state, DocState::Partial);
    assert_eq!(partial.version, 4);
    let changed = &partial.lists[0].watchers;
    assert_eq!(
        changed.len(),
        1,
        "a partial document lists only the changed watcher"
    );
    assert_eq!(changed[0].status, WatcherStatus::Active);
    round_trip(&partial);
}

#[test]
fn prefixes_do_not_matter_only_namespaces() {
    let prefixed = r#"<wi:watcherinfo xmlns:wi="urn:ietf:params:xml:ns:watcherinfo" version="3" state="full"><wi:watcher-list resource="sip:alice@example.test" package="presence"><wi:watcher id="a1c0de.5f" event="subscribe" status="pending">sip:bob@example.test</wi:watcher><wi:watcher id="a1c0de.60" event="approved" status="active">sip:carol@example.test</wi:watcher></wi:watcher-list></wi:watcherinfo>"#;
    assert_eq!(parse(prefixed), parse(KAMAILIO_FULL));
}

#[test]
fn several_lists_and_packages() {
    let doc = parse(
        r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="12" state="full">
             <watcher-list resource="sip:alice@example.test" package="presence">
               <watcher id="1" status="active" event="approved">sip:bob@example.test</watcher>
               <watcher id="2" status="terminated" event="rejected">sip:mallory@example.test</watcher>
             </watcher-list>
             <watcher-list resource="sip:alice@example.test" package="dialog">
               <watcher id="3" status="waiting" event="giveup">sip:bob@example.test</watcher>
             </watcher-list>
             <watcher-list resource="sip:alice@example.test" package="message-summary"/>
             <watcher-list resource="sip:sales@example.test" package="presence">
               <watcher id="4" status="terminated" event="timeout">sip:carol@example.test</watcher>
               <watcher id="5" status="terminated" event="noresource">sip:dan@example.test</watcher>
               <watcher id="6" status="terminated" event="probation" expiration="600">sip:eve@example.test</watcher>
               <watcher id="7" status="terminated" event="deactivated">sip:fay@example.test</watcher>
             </watcher-list>
           </watcherinfo>"#,
    );
    assert_eq!(doc.lists.len(), 4);
    let packages: Vec<&str> = doc.lists.iter().map(|l| l.package.as_str()).collect();
    assert_eq!(
        packages,
        ["presence", "dialog", "message-summary", "presence"]
    );
    assert!(doc
        .list("sip:alice@example.test", "message-summary")
        .unwrap()
        .watchers
        .is_empty());
    let events: Vec<WatcherEvent> = doc.lists[3].watchers.iter().map(|w| w.event).collect();
    assert_eq!(
        events,
        [
            WatcherEvent::Timeout,
            WatcherEvent::Noresource,
            WatcherEvent::Probation,
            WatcherEvent::Deactivated
        ]
    );
    assert_eq!(doc.lists[1].watchers[0].status, WatcherStatus::Waiting);
    round_trip(&doc);
}

#[test]
fn extensions_are_kept_and_written_back() {
    let src = r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo"
                   xmlns:x="urn:example:winfo-ext" version="1" state="full" x:origin="ps1">
      <watcher-list resource="sip:alice@example.test" package="presence" x:shard="2">
        <watcher id="1" status="active" event="approved" x:device="desk"
                 x:note="a &amp; b">sip:bob@example.test</watcher>
        <x:policy mode="confirm"><x:rule>domain</x:rule></x:policy>
      </watcher-list>
      <x:server>imppd</x:server>
    </watcherinfo>"#;
    let doc = parse(src);
    assert_eq!(doc.extension_attributes.len(), 1);
    assert_eq!(
        doc.extension_attributes[0].namespace,
        "urn:example:winfo-ext"
    );
    assert_eq!(doc.extensions.len(), 1);
    assert_eq!(doc.extensions[0].name, "server");
    assert_eq!(doc.extensions[0].text, "imppd");
    let list = &doc.lists[0];
    assert_eq!(list.extension_attributes[0].name, "shard");
    assert_eq!(list.extensions[0].name, "policy");
    assert_eq!(list.extensions[0].children[0].text, "domain");
    let w = &list.watchers[0];
    assert_eq!(w.extension_attributes.len(), 2);
    assert_eq!(w.extension_attributes[1].value, "a & b");
    round_trip(&doc);
}

#[test]
fn builds_and_round_trips_a_model() {
    let mut bob = Watcher::new(
        "s<1>",
        "sip:bob@example.test;transport=tcp",
        WatcherStatus::Pending,
        WatcherEvent::Subscribe,
    );
    bob.display_name = Some("Bob \"the builder\" & co\n".into());
    bob.lang = Some("en-GB".into());
    bob.duration_subscribed = Some(u64::MAX);
    bob.expiration = Some(0);
    bob.extension_attributes.push(Attribute {
        namespace: "urn:example:a".into(),
        name: "flag".into(),
        value: "yes".into(),
    });
    let mut list = WatcherList::new("sip:alice@example.test", "presence");
    list.watchers.push(bob);
    list.extensions.push(Element {
        namespace: "urn:example:b".into(),
        name: "hint".into(),
        text: "<ok>".into(),
        ..Element::default()
    });
    let doc = Watcherinfo {
        version: u32::MAX,
        state: DocState::Partial,
        lists: vec![list, WatcherList::new("sip:alice@example.test", "dialog")],
        ..Watcherinfo::default()
    };
    let xml = doc.to_xml();
    assert!(xml.starts_with("<?xml"));
    assert!(
        xml.contains(r#"xmlns="urn:ietf:params:xml:ns:watcherinfo""#),
        "{xml}"
    );
    assert!(xml.contains(r#"state="partial""#), "{xml}");
    round_trip(&doc);
    round_trip(&Watcherinfo::default());
}

#[test]
fn partial_documents_fold_into_the_full_state() {
    let mut state = parse(KAMAILIO_FULL);
    // Version 4: bob gets approved.
    assert!(state.apply(&parse(KAMAILIO_PARTIAL)).unwrap());
    assert_eq!(state.version, 4);
    assert_eq!(state.state, DocState::Full);
    let list = state.list("sip:alice@example.test", "presence").unwrap();
    assert_eq!(list.watchers.len(), 2);
    assert_eq!(list.watchers[0].status, WatcherStatus::Active);
    assert_eq!(list.watchers[0].event, WatcherEvent::Approved);

    // The same notification again, or an older one, changes nothing.
    let before = state.clone();
    assert!(!state.apply(&parse(KAMAILIO_PARTIAL)).unwrap());
    assert!(!state.apply(&parse(KAMAILIO_FULL)).unwrap());
    assert_eq!(state, before);

    // Version 5: carol's subscription times out, dan subscribes, and a new list appears.
    let v5 = parse(
        r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="5" state="partial">
             <watcher-list resource="sip:alice@example.test" package="presence">
               <watcher id="a1c0de.60" event="timeout" status="terminated">sip:carol@example.test</watcher>
               <watcher id="a1c0de.61" event="subscribe" status="pending">sip:dan@example.test</watcher>
             </watcher-list>
             <watcher-list resource="sip:alice@example.test" package="dialog">
               <watcher id="d1" event="subscribe" status="active">sip:dan@example.test</watcher>
             </watcher-list>
           </watcherinfo>"#,
    );
    assert!(state.apply(&v5).unwrap());
    let ids: Vec<&str> = state.lists[0]
        .watchers
        .iter()
        .map(|w| w.id.as_str())
        .collect();
    assert_eq!(ids, ["a1c0de.5f", "a1c0de.61"]);
    assert_eq!(
        state
            .list("sip:alice@example.test", "dialog")
            .unwrap()
            .watchers
            .len(),
        1
    );

    // Version 7 after 5: a notification was lost; the caller must fetch the full state.
    let mut v7 = v5.clone();
    v7.version = 7;
    let err = state.apply(&v7).unwrap_err();
    assert!(
        matches!(err, Error::Malformed(ref m) if m.contains("full state")),
        "{err}"
    );

    // A full document replaces everything.
    let mut full = parse(RFC_STYLE_FULL);
    full.version = 9;
    assert!(state.apply(&full).unwrap());
    assert_eq!(state, full);
}

#[test]
fn enum_names_are_the_schema_tokens() {
    for s in WatcherStatus::ALL {
        assert_eq!(WatcherStatus::from_str(s.as_str()).unwrap(), *s);
        assert_eq!(s.to_string(), s.as_str());
    }
    for e in WatcherEvent::ALL {
        assert_eq!(e.as_str().parse::<WatcherEvent>().unwrap(), *e);
    }
    for d in DocState::ALL {
        assert_eq!(d.as_str().parse::<DocState>().unwrap(), *d);
    }
    assert_eq!(WatcherStatus::ALL.len(), 4);
    assert_eq!(WatcherEvent::ALL.len(), 8);
    assert_eq!(WatcherEvent::Noresource.as_str(), "noresource");
    assert_eq!(WatcherEvent::Giveup.as_str(), "giveup");
    assert!(
        "Active".parse::<WatcherStatus>().is_err(),
        "tokens are case-sensitive"
    );
    assert!("".parse::<WatcherEvent>().is_err());
    assert_eq!(DocState::default(), DocState::Full);
}

fn with_watcher(attrs: &str, content: &str) -> String {
    format!(
        r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full"><watcher-list resource="sip:a@example.test" package="presence"><watcher {attrs}>{content}</watcher></watcher-list></watcherinfo>"#
    )
}

#[test]
fn refuses_values_outside_the_schema() {
    let m = malformed(&with_watcher(
        r#"id="1" status="sleeping" event="subscribe""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("sleeping") && m.contains("status"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="1" status="active" event="wave""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("wave") && m.contains("event"), "{m}");
    let m = malformed(&with_watcher(
        r#"status="active" event="approved""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("'id'"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="1" event="approved""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("'status'"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="1" status="active""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("'event'"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="1" status="active" event="approved" expiration="soon""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("expiration") && m.contains("soon"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="1" status="active" event="approved" duration-subscribed="-5""#,
        "sip:b@example.test",
    ));
    assert!(m.contains("duration-subscribed"), "{m}");
    let m = malformed(&with_watcher(
        r#"id="9" status="active" event="approved""#,
        "  ",
    ));
    assert!(m.contains("no watcher URI"), "{m}");
}

#[test]
fn keeps_elements_the_schema_does_not_define() {
    let ns = r#"xmlns="urn:ietf:params:xml:ns:watcherinfo""#;
    // Elements of the watcherinfo namespace where the schema has none, and a watcher that
    // holds an element instead of its URI, are kept and written back.
    let doc = parse(&format!(
        r#"<watcherinfo {ns} version="1" state="full"><watchers/>
        <watcher id="1" status="active" event="approved">sip:b@example.test</watcher>
        <watcher-list resource="sip:a@example.test" package="presence">
          <watcher id="9" status="active" event="approved"><uri>sip:b@example.test</uri></watcher>
          <watcher id="10" status="pending" event="subscribe">sip:c@example.test</watcher>
          <summary count="2"/>
        </watcher-list></watcherinfo>"#
    ));
    let names = |es: &[Element]| es.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&doc.extensions), ["watchers", "watcher"]);
    let list = &doc.lists[0];
    assert_eq!(list.watchers.len(), 1);
    assert_eq!(list.watchers[0].id, "10");
    assert_eq!(names(&list.extensions), ["watcher", "summary"]);
    assert_eq!(list.extensions[0].children[0].text, "sip:b@example.test");
    round_trip(&doc);
    // A kept watcher's values are not read, but those of a watcher in its shape are.
    let m = malformed(&with_watcher(
        r#"id="9" status="active" event="approved""#,
        "  ",
    ));
    assert!(m.contains("no watcher URI"), "{m}");
}

#[test]
fn refuses_bad_roots_and_lists() {
    let ns = r#"xmlns="urn:ietf:params:xml:ns:watcherinfo""#;
    let m = malformed(&format!(r#"<watcherinfo {ns} state="full"/>"#));
    assert!(m.contains("'version'"), "{m}");
    for bad in ["x1", "1.0", "-1", "+1", "", "4294967296"] {
        let m = malformed(&format!(
            r#"<watcherinfo {ns} version="{bad}" state="full"/>"#
        ));
        assert!(m.contains("version"), "{bad:?}: {m}");
    }
    let m = malformed(&format!(r#"<watcherinfo {ns} version="1"/>"#));
    assert!(m.contains("'state'"), "{m}");
    let m = malformed(&format!(r#"<watcherinfo {ns} version="1" state="delta"/>"#));
    assert!(m.contains("delta"), "{m}");
    let m = malformed(&format!(
        r#"<watcherinfo {ns} version="1" state="full"><watcher-list package="presence"/></watcherinfo>"#
    ));
    assert!(m.contains("'resource'"), "{m}");
    let m = malformed(&format!(
        r#"<watcherinfo {ns} version="1" state="full"><watcher-list resource="sip:a@example.test"/></watcherinfo>"#
    ));
    assert!(m.contains("'package'"), "{m}");
    // Wrong namespace, or none at all.
    let m =
        malformed(r#"<watcherinfo xmlns="urn:ietf:params:xml:ns:pidf" version="1" state="full"/>"#);
    assert!(m.contains("namespace"), "{m}");
    malformed(r#"<watcherinfo version="1" state="full"/>"#);
    malformed(r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@example.test"/>"#);
    // Not XML, or cut short.
    let truncated = &KAMAILIO_FULL[..KAMAILIO_FULL.len() / 2];
    malformed(truncated);
    malformed("");
    malformed("watcherinfo");
}

#[test]
fn refuses_unsafe_and_oversized_documents() {
    let doctype = r#"<?xml version="1.0"?><!DOCTYPE watcherinfo [<!ENTITY b "bob">]><watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full"><watcher-list resource="sip:a@example.test" package="presence"><watcher id="1" status="active" event="approved">sip:&b;@example.test</watcher></watcher-list></watcherinfo>"#;
    assert!(matches!(
        Watcherinfo::parse(doctype, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let entity = with_watcher(
        r#"id="1" status="active" event="approved""#,
        "sip:&b;@example.test",
    );
    assert!(matches!(
        Watcherinfo::parse(&entity, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let small = Limits {
        max_bytes: 100,
        max_depth: 32,
    };
    assert!(matches!(
        Watcherinfo::parse(KAMAILIO_FULL, &small),
        Err(Error::TooLarge(_))
    ));
}

#[test]
fn content_type_is_registered_name() {
    assert_eq!(Watcherinfo::CONTENT_TYPE, "application/watcherinfo+xml");
}
