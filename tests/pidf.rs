//! PIDF with the data model, RPID and capabilities, through the public Rust API: documents as
//! devices send them, round trips, and malformed input.

use impp::doc::caps::{Duplex, ServiceCaps, Supported};
use impp::doc::datamodel::{Device, Person};
use impp::doc::pidf::{Basic, Contact, Presence, Priority, Tuple};
use impp::doc::rpid::{Activities, Activity, MoodValue, PlaceTypeValue, UserInputState};
use impp::doc::{ns, Limits, Note, Timestamp};
use impp::Error;

fn parse(xml: &str) -> Presence {
    Presence::parse(xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

fn round_trip(p: &Presence) {
    let xml = p.to_xml();
    let again = Presence::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(&again, p, "round trip changed the model:\n{xml}");
}

/// The RFC 3863 shape with the `impp:` prefix and no default namespace.
const IMPP_PREFIX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf"
     xmlns:local="urn:example:com:local" entity="pres:someone@example.com">
  <impp:tuple id="sg89ae">
    <impp:status>
      <impp:basic>open</impp:basic>
      <local:location>home</local:location>
    </impp:status>
    <impp:contact priority="0.8">tel:+09012345678</impp:contact>
    <impp:note xml:lang="en">Don't Disturb Please!</impp:note>
    <impp:note xml:lang="fr">Ne dérangez pas, s'il vous plaît</impp:note>
    <impp:timestamp>2001-10-27T16:49:29Z</impp:timestamp>
  </impp:tuple>
  <impp:note xml:lang="en">I'll be in Tokyo next week</impp:note>
</impp:presence>"#;

/// The same document with a default namespace.
const DEFAULT_NS: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"
     entity="pres:someone@example.com">
  <tuple id="sg89ae">
    <status><basic>open</basic><location xmlns="urn:example:com:local">home</location></status>
    <contact priority="0.80">tel:+09012345678</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne dérangez pas, s'il vous plaît</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <note xml:lang="en">I'll be in Tokyo next week</note>
</presence>"#;

/// A softphone on a call: data-model person with RPID, a device, service capabilities.
const SOFTPHONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    xmlns:c="urn:ietf:params:xml:ns:pidf:caps"
    xmlns:lt="urn:ietf:params:xml:ns:location-type"
    entity="sip:alice@example.test">
  <tuple id="t5b1e2">
    <status><basic>open</basic></status>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
    <rpid:class>softphone</rpid:class>
    <rpid:user-input idle-threshold="600" last-input="2026-11-24T14:40:00Z">idle</rpid:user-input>
    <c:servcaps>
      <c:audio>true</c:audio>
      <c:video>false</c:video>
      <c:text>true</c:text>
      <c:message>true</c:message>
      <c:type>text/plain</c:type>
      <c:duplex><c:supported><c:full/></c:supported></c:duplex>
    </c:servcaps>
    <contact priority="1">sip:alice@192.0.2.10:5062;transport=tcp</contact>
    <timestamp>2026-11-24T14:45:00Z</timestamp>
  </tuple>
  <dm:person id="p1">
    <rpid:activities from="2026-11-24T14:00:00Z" until="2026-11-24T15:00:00Z">
      <rpid:note>Weekly sync</rpid:note>
      <rpid:on-the-phone/>
      <rpid:meeting/>
    </rpid:activities>
    <rpid:mood><rpid:happy/></rpid:mood>
    <rpid:place-type><lt:office/></rpid:place-type>
    <rpid:privacy><rpid:text/></rpid:privacy>
    <rpid:sphere>work</rpid:sphere>
    <rpid:status-icon>http://example.test/icons/busy.png</rpid:status-icon>
    <rpid:time-offset description="Paris">60</rpid:time-offset>
    <dm:note xml:lang="en">In a meeting until 3</dm:note>
    <dm:timestamp>2026-11-24T14:45:00Z</dm:timestamp>
  </dm:person>
  <dm:device id="pc">
    <rpid:user-input>active</rpid:user-input>
    <c:devcaps><c:mobility><c:supported><c:fixed/></c:supported></c:mobility></c:devcaps>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
    <dm:note>Office PC</dm:note>
  </dm:device>
</presence>"#;

#[test]
fn prefixes_do_not_matter_namespaces_do() {
    let a = parse(IMPP_PREFIX);
    let b = parse(DEFAULT_NS);
    assert_eq!(a, b);
    assert_eq!(a.entity, "pres:someone@example.com");
    let t = &a.tuples[0];
    assert_eq!(t.id, "sg89ae");
    assert_eq!(t.status.basic, Some(Basic::Open));
    assert_eq!(t.status.extensions[0].namespace, "urn:example:com:local");
    assert_eq!(t.status.extensions[0].text, "home");
    let c = t.contact.as_ref().unwrap();
    assert_eq!(c.uri, "tel:+09012345678");
    assert_eq!(c.priority.unwrap().thousandths(), 800);
    assert_eq!(
        t.notes[1],
        Note::with_lang("Ne dérangez pas, s'il vous plaît", "fr")
    );
    assert_eq!(
        t.timestamp.as_ref().unwrap().as_str(),
        "2001-10-27T16:49:29Z"
    );
    assert_eq!(a.notes[0].text, "I'll be in Tokyo next week");
    round_trip(&a);
}

#[test]
fn softphone_document_with_every_extension() {
    let p = parse(SOFTPHONE);
    let t = &p.tuples[0];
    assert_eq!(
        t.device_ids,
        ["urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a"]
    );
    assert_eq!(t.class.as_deref(), Some("softphone"));
    let ui = t.user_input.as_ref().unwrap();
    assert_eq!(ui.state, UserInputState::Idle);
    assert_eq!(ui.idle_threshold, Some(600));
    assert_eq!(
        ui.last_input.as_ref().unwrap().as_str(),
        "2026-11-24T14:40:00Z"
    );
    let caps = t.service_caps.as_ref().unwrap();
    assert_eq!(
        (caps.audio, caps.video, caps.text, caps.message),
        (Some(true), Some(false), Some(true), Some(true))
    );
    assert_eq!(caps.types, ["text/plain"]);
    assert_eq!(caps.duplex.as_ref().unwrap().supported, [Duplex::Full]);
    assert_eq!(
        t.contact.as_ref().unwrap().priority.unwrap().thousandths(),
        1000
    );

    let person = &p.persons[0];
    assert_eq!(person.id, "p1");
    let acts = person.activities.as_ref().unwrap();
    assert_eq!(acts.values, [Activity::OnThePhone, Activity::Meeting]);
    assert_eq!(acts.notes[0].text, "Weekly sync");
    assert_eq!(
        acts.range.from.as_ref().unwrap().as_str(),
        "2026-11-24T14:00:00Z"
    );
    assert_eq!(person.mood.as_ref().unwrap().values, [MoodValue::Happy]);
    assert_eq!(
        person.place_type.as_ref().unwrap().values,
        [PlaceTypeValue::Location("office".into())]
    );
    assert!(person.privacy.is_some() && person.sphere.is_some());
    assert_eq!(
        person.status_icon.as_ref().unwrap().uri,
        "http://example.test/icons/busy.png"
    );
    assert_eq!(person.time_offset.as_ref().unwrap().minutes, 60);
    assert_eq!(
        person.notes[0],
        Note::with_lang("In a meeting until 3", "en")
    );
    assert!(person.timestamp.is_some());

    let device = &p.devices[0];
    assert_eq!(device.id, "pc");
    assert_eq!(
        device.user_input.as_ref().unwrap().state,
        UserInputState::Active
    );
    assert!(device.device_caps.as_ref().unwrap().mobility.is_some());
    assert_eq!(device.notes[0].text, "Office PC");
    round_trip(&p);
}

#[test]
fn unknown_extensions_and_attributes_survive() {
    let xml = r#"<pidf:presence xmlns:pidf="urn:ietf:params:xml:ns:pidf"
        xmlns:v="urn:example:vendor" xmlns:w="urn:example:other"
        entity="sip:bob@example.test" v:build="42">
      <pidf:tuple id="a" v:line="3">
        <pidf:status><pidf:basic>closed</pidf:basic></pidf:status>
        <v:line-key v:index="3" w:color="red">busy<w:sub>x</w:sub></v:line-key>
      </pidf:tuple>
      <v:presence-level>everything</v:presence-level>
      <w:empty/>
    </pidf:presence>"#;
    let p = parse(xml);
    assert_eq!(p.extension_attributes[0].name, "build");
    assert_eq!(p.extension_attributes[0].namespace, "urn:example:vendor");
    assert_eq!(p.tuples[0].extension_attributes[0].value, "3");
    let key = &p.tuples[0].extensions[0];
    assert_eq!(
        (key.namespace.as_str(), key.name.as_str()),
        ("urn:example:vendor", "line-key")
    );
    assert_eq!(key.attributes.len(), 2);
    assert_eq!(key.children[0].name, "sub");
    assert_eq!(p.extensions.len(), 2);
    round_trip(&p);
    // The written document names the vendor namespace and its elements.
    let out = p.to_xml();
    assert!(out.contains("urn:example:vendor") && out.contains("line-key"));
}

#[test]
fn whitespace_utf8_and_right_to_left_notes() {
    let xml = "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:\u{5d3}\u{5e0}\u{5d4}@example.test'>\n\
        \t<tuple   id = 'x' >\n  <status>\n   <basic>\n open \n</basic>\n </status>\n\
        <note xml:lang='ar'>\u{645}\u{634}\u{63a}\u{648}\u{644} \u{202b}busy\u{202c}</note>\n\
        <note xml:lang='ja'>\u{4f1a}\u{8b70}\u{4e2d}</note>\n\
        <note>  spaced   text  </note>\n</tuple>\n</presence>";
    let p = parse(xml);
    assert_eq!(p.entity, "pres:\u{5d3}\u{5e0}\u{5d4}@example.test");
    assert_eq!(p.tuples[0].status.basic, Some(Basic::Open));
    assert_eq!(p.tuples[0].notes[0].lang.as_deref(), Some("ar"));
    assert!(p.tuples[0].notes[0].text.contains('\u{202b}'));
    assert_eq!(p.tuples[0].notes[2].text, "  spaced   text  ");
    round_trip(&p);
}

#[test]
fn escaping_is_symmetric() {
    let mut p = Presence::new("pres:a@example.test");
    let mut t = Tuple::new("t&<1>\"'", Basic::Open);
    t.notes
        .push(Note::new("a < b && c > d \"quoted\" 'single' \r\n\ttab"));
    t.contact = Some(Contact {
        uri: "sip:a@b;x=\"y\"".into(),
        priority: None,
    });
    p.tuples.push(t);
    p.notes.push(Note::new("]]> & &amp; <![CDATA[ x ]]>"));
    round_trip(&p);
}

#[test]
fn built_documents_round_trip() {
    let mut p = Presence::new("sip:carol@example.test");
    let mut t = Tuple::new("im", Basic::Open);
    t.contact = Some(Contact {
        uri: "im:carol@example.test".into(),
        priority: Some(Priority::parse("0.125").unwrap()),
    });
    t.timestamp = Some(Timestamp::parse("2026-11-24T10:00:00Z").unwrap());
    t.service_caps = Some(ServiceCaps {
        message: Some(true),
        audio: Some(false),
        duplex: Some(Supported::of(vec![Duplex::Half])),
        ..ServiceCaps::default()
    });
    p.tuples.push(t);
    let mut person = Person::new("me");
    person.activities = Some(Activities::new(vec![
        Activity::Away,
        Activity::from_name("in-transit").unwrap(),
    ]));
    p.persons.push(person);
    p.devices.push(Device::new("d1", "mac:8c:85:90:00:00:01"));
    p.validate().unwrap();
    round_trip(&p);
    assert!(p.is_open());
    // Only the namespaces in use are declared.
    let xml = p.to_xml();
    assert!(xml.contains(ns::RPID) && xml.contains(ns::CAPS) && xml.contains(ns::DATA_MODEL));
    assert!(!Presence::new("pres:x@y").to_xml().contains(ns::RPID));
}

#[test]
fn priorities_parse_exactly() {
    for (text, t) in [
        ("0", 0),
        ("1", 1000),
        ("1.000", 1000),
        ("0.5", 500),
        (".25", 250),
        ("0.001", 1),
        ("0.8", 800),
    ] {
        assert_eq!(Priority::parse(text).unwrap().thousandths(), t, "{text}");
    }
    for bad in ["", "1.001", "2", "-0.5", "0.0001", "abc", "0.5.5", "1e-1"] {
        assert!(Priority::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Priority::parse("0.750").unwrap().to_string(), "0.75");
    for (t, text) in [
        (0, "0"),
        (1, "0.001"),
        (10, "0.01"),
        (500, "0.5"),
        (999, "0.999"),
        (1000, "1"),
    ] {
        assert_eq!(Priority::from_thousandths(t).unwrap().to_string(), text);
        assert_eq!(Priority::parse(text).unwrap().thousandths(), t);
    }
    assert!(Priority::from_thousandths(1001).is_err());
}

fn assert_malformed(xml: &str, needle: &str) {
    match Presence::parse(xml, &Limits::DEFAULT) {
        Err(Error::Malformed(m)) => assert!(m.contains(needle), "message {m:?} lacks {needle:?}"),
        other => panic!("expected Malformed for {xml}, got {other:?}"),
    }
}

const OPEN: &str = "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@example.test'>";

#[test]
fn malformed_documents_are_clear_errors() {
    assert_malformed("", "no root");
    assert_malformed(&IMPP_PREFIX[..IMPP_PREFIX.len() / 2], "");
    assert_malformed(&format!("{OPEN}<tuple id='t'><status>"), "truncated");
    assert_malformed(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf-wrong' entity='pres:a@b'/>",
        "namespace",
    );
    assert_malformed("<presence entity='pres:a@b'/>", "namespace");
    assert_malformed("<presence xmlns='urn:ietf:params:xml:ns:pidf'/>", "entity");
    assert_malformed(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='no scheme'/>",
        "entity",
    );
    assert_malformed(
        &format!("{OPEN}<tuple id='t'><status><basic>Open</basic></status></tuple></presence>"),
        "'Open'",
    );
    assert_malformed(
        &format!("{OPEN}<tuple id='t'><status><basic>busy</basic></status></tuple></presence>"),
        "busy",
    );
    assert_malformed(&format!("{OPEN}<tuple><status/></tuple></presence>"), "id");
    assert_malformed(
        &format!("{OPEN}<tuple id='t'></tuple></presence>"),
        "status",
    );
    assert_malformed(
        &format!("{OPEN}<tuple id='t'><status/></tuple><tuple id='t'><status/></tuple></presence>"),
        "'t' is used twice",
    );
    assert_malformed(
        &format!(
            "{OPEN}<tuple id='p'><status/></tuple><person xmlns='{}' id='p'/></presence>",
            ns::DATA_MODEL
        ),
        "twice",
    );
    assert_malformed(&format!("{OPEN}<tuple id='t'><status/><contact priority='7'>sip:a@b</contact></tuple></presence>"), "priority");
    assert_malformed(
        &format!("{OPEN}<tuple id='t'><status/><timestamp>noon</timestamp></tuple></presence>"),
        "noon",
    );
    assert_malformed(&format!("{OPEN}<x:tuple id='t'/></presence>"), "prefix 'x'");
    assert_malformed(
        &format!(
            "{OPEN}<person xmlns='{}' id=' '><note>blank id</note></person></presence>",
            ns::DATA_MODEL
        ),
        "empty id",
    );
    assert_malformed(
        &format!("{OPEN}<person xmlns='{}' id='p'><user-input xmlns='{}'>asleep</user-input></person></presence>", ns::DATA_MODEL, ns::RPID),
        "asleep",
    );
    assert_malformed(
        &format!("{OPEN}<tuple id='t'><status/><servcaps xmlns='{}'><audio>maybe</audio></servcaps></tuple></presence>", ns::CAPS),
        "maybe",
    );
}

/// Elements the schemas do not define, in their own namespaces, as devices send them: kept
/// where they appear, written back, and the rest of the document read as usual.
#[test]
fn elements_the_schemas_do_not_define_are_kept() {
    let xml = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="{dm}" xmlns:rpid="{rpid}"
            xmlns:lt="{lt}" entity="sip:6001@pbx.example.test">
          <tuple id="digium-presence">
            <status><digium_presence type="away" subtype="lunch">back at two</digium_presence></status>
          </tuple>
          <tuple id="t1">
            <status><basic>open</basic><basic>closed</basic></status>
            <bogus/>
            <contact>sip:6001@192.0.2.1</contact>
            <contact>sip:6001@192.0.2.2</contact>
            <note>ready<b>!</b></note>
            <timestamp>2026-11-24T14:45:00Z</timestamp>
          </tuple>
          <dm:person id="p1">
            <rpid:activities><rpid:on-the-phone/><rpid:partying/></rpid:activities>
            <rpid:place-type><rpid:office/></rpid:place-type>
            <rpid:mood>cheerful</rpid:mood>
            <dm:mood-hint>cheerful</dm:mood-hint>
            <dm:timestamp>2026-11-24T14:45:00Z</dm:timestamp>
            <dm:timestamp>2026-11-24T14:46:00Z</dm:timestamp>
          </dm:person>
          <lastseen>yesterday</lastseen>
        </presence>"#,
        dm = ns::DATA_MODEL,
        rpid = ns::RPID,
        lt = ns::LOCATION_TYPE,
    );
    let p = parse(&xml);
    let names = |es: &[impp::doc::Element]| es.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let digium = &p.tuples[0];
    assert_eq!(digium.status.basic, None);
    assert_eq!(digium.status.extensions[0].name, "digium_presence");
    assert_eq!(digium.status.extensions[0].namespace, ns::PIDF);
    assert_eq!(digium.status.extensions[0].text, "back at two");
    let t = &p.tuples[1];
    assert_eq!(t.status.basic, Some(Basic::Open));
    assert_eq!(names(&t.status.extensions), ["basic"]);
    assert_eq!(t.contact.as_ref().unwrap().uri, "sip:6001@192.0.2.1");
    assert!(t.notes.is_empty());
    assert_eq!(names(&t.extensions), ["bogus", "contact", "note"]);
    let person = &p.persons[0];
    let activities = person.activities.as_ref().unwrap();
    assert_eq!(activities.values, vec![Activity::OnThePhone]);
    assert_eq!(names(&activities.extensions), ["partying"]);
    let place = person.place_type.as_ref().unwrap();
    assert!(place.values.is_empty());
    assert_eq!(names(&place.extensions), ["office"]);
    assert_eq!(person.mood, None);
    assert_eq!(
        person.timestamp.as_ref().unwrap().as_str(),
        "2026-11-24T14:45:00Z"
    );
    assert_eq!(
        names(&person.extensions),
        ["mood", "mood-hint", "timestamp"]
    );
    assert_eq!(names(&p.extensions), ["lastseen"]);
    round_trip(&p);
    // Written back where they read back the same: the repeats after the first.
    let out = p.to_xml();
    let first = out.find("192.0.2.1").unwrap();
    assert!(out.find("192.0.2.2").unwrap() > first, "{out}");
    assert!(
        out.contains("<rpid:office/>") && out.contains("<rpid:partying/>"),
        "{out}"
    );
}

/// Asterisk's PIDF carries a data-model person without the id RFC 4479 requires: read with
/// an empty id, written back without one, and two of them do not clash.
#[test]
fn persons_without_id_are_read() {
    let xml = format!(
        "{OPEN}<tuple id='t'><status><basic>open</basic></status></tuple>\
         <person xmlns='{dm}'><activities xmlns='{rpid}'><on-the-phone/></activities></person>\
         <person xmlns='{dm}'/></presence>",
        dm = ns::DATA_MODEL,
        rpid = ns::RPID
    );
    let p = parse(&xml);
    assert_eq!(p.persons.len(), 2);
    assert_eq!(p.persons[0].id, "");
    assert_eq!(
        p.persons[0].activities.as_ref().unwrap().values,
        vec![Activity::OnThePhone]
    );
    assert!(p.validate().is_ok());
    round_trip(&p);
    assert!(!p.to_xml().contains("id=\"\""), "{}", p.to_xml());
}

#[test]
fn unsafe_and_oversized_documents_are_refused() {
    let bomb = format!(
        "<?xml version='1.0'?><!DOCTYPE p [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>{OPEN}<note>&b;</note></presence>"
    );
    assert!(matches!(
        Presence::parse(&bomb, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let xxe = format!(
        "<?xml version='1.0'?><!DOCTYPE p [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>{OPEN}<note>&x;</note></presence>"
    );
    assert!(matches!(
        Presence::parse(&xxe, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let undeclared = format!("{OPEN}<note>&nbsp;</note></presence>");
    assert!(matches!(
        Presence::parse(&undeclared, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));

    let mut big = String::from(OPEN);
    while big.len() <= 64 * 1024 {
        big.push_str("<note>padding padding padding padding</note>");
    }
    big.push_str("</presence>");
    assert!(matches!(
        Presence::parse(&big, &Limits::DEFAULT),
        Err(Error::TooLarge(_))
    ));
    let roomy = Limits {
        max_bytes: 1 << 20,
        ..Limits::DEFAULT
    };
    assert!(Presence::parse(&big, &roomy).is_ok());

    let deep = format!(
        "{OPEN}<tuple id='t'><status>{}{}</status></tuple></presence>",
        "<x:e xmlns:x='urn:x'>".repeat(40),
        "</x:e>".repeat(40)
    );
    assert!(matches!(
        Presence::parse(&deep, &Limits::DEFAULT),
        Err(Error::TooLarge(_))
    ));

    assert!(matches!(
        Presence::parse_bytes(b"<presence \xff/>", &Limits::DEFAULT),
        Err(Error::Malformed(_))
    ));
}
