//! Dialog state documents (RFC 4235) as phones and PBXs send them for busy-lamp fields:
//! parsing, round trips, folding partial notifications, and refusing what the schema does
//! not allow.

use impp::doc::dialog::{
    Dialog, DialogEvent, DialogInfo, DialogState, DialogStateValue, Direction, DocState, Identity,
    Participant, Replaces, SessionDescription, Target,
};
use impp::doc::{Attribute, Element, Limits};
use impp::Error;

fn parse(doc: &str) -> DialogInfo {
    DialogInfo::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
}

/// Serializes and parses again; the model must come back equal.
fn round_trip(doc: &DialogInfo) {
    let xml = doc.to_xml();
    let again = DialogInfo::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(&again, doc, "{xml}");
}

fn malformed(doc: &str) -> String {
    match DialogInfo::parse(doc, &Limits::DEFAULT) {
        Err(Error::Malformed(m)) => m,
        other => panic!("expected Malformed for {doc:?}, got {other:?}"),
    }
}

fn with_dialog(dialog: &str) -> String {
    format!(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:201@pbx.example.test">{dialog}</dialog-info>"#
    )
}

/// An idle extension: a full document without dialogs, as a PBX sends it.
const IDLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:201@pbx.example.test"/>
"#;

/// A ringing incoming call, in the shape Asterisk's BLF notifications take.
const RINGING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:201@pbx.example.test">
 <dialog id="201" direction="recipient">
  <state>early</state>
  <remote>
   <identity display="Front Desk">sip:100@pbx.example.test</identity>
   <target uri="sip:100@pbx.example.test"/>
  </remote>
  <local>
   <identity display="Room 201">sip:201@pbx.example.test</identity>
   <target uri="sip:201@pbx.example.test"/>
  </local>
 </dialog>
</dialog-info>
"#;

/// A confirmed call with everything a phone may report about it.
const CONFIRMED: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="7" state="full"
             entity="sip:alice@example.test">
  <dialog id="zxcvbnm3" call-id="a84b4c76e66710@pc33.example.test"
          local-tag="1928301774" remote-tag="456887766" direction="initiator">
    <state event="replaced">confirmed</state>
    <duration>274</duration>
    <replaces call-id="hh76a@pc33.example.test" local-tag="6549" remote-tag="6a7b"/>
    <referred-by display="Operator">sip:operator@example.test</referred-by>
    <route-set>
      <hop>sip:proxy1.example.test;lr</hop>
      <hop>sip:proxy2.example.test;lr</hop>
    </route-set>
    <local>
      <identity display="Alice">sip:alice@example.test</identity>
      <target uri="sip:alice@pc33.example.test">
        <param pname="+sip.rendering" pval="yes"/>
        <param pname="x-line-id" pval="0"/>
        <param pname="+sip.instance" pval="&lt;urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF&gt;"/>
      </target>
      <session-description type="application/sdp">v=0
o=alice 2890844526 2890844526 IN IP4 pc33.example.test
s=-
</session-description>
      <cseq>2</cseq>
    </local>
    <remote>
      <identity display="Bob &amp; Co">sip:bob@example.test</identity>
      <target uri="sip:bob@192.0.2.4"/>
      <cseq>1</cseq>
    </remote>
  </dialog>
</dialog-info>
"#;

/// The end of a call attempt: the callee was busy.
const TERMINATED: &str = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="partial" entity="sip:201@pbx.example.test"><dialog id="201" call-id="c1" local-tag="lt" direction="initiator"><state event="rejected" code="486">terminated</state></dialog></dialog-info>"#;

#[test]
fn idle_extension_has_no_dialogs() {
    let doc = parse(IDLE);
    assert_eq!(doc.version, 0);
    assert_eq!(doc.state, DocState::Full);
    assert_eq!(doc.entity, "sip:201@pbx.example.test");
    assert!(doc.dialogs.is_empty());
    assert!(doc.extensions.is_empty());
    round_trip(&doc);
    assert!(
        doc.to_xml().trim_end().ends_with("/>"),
        "an idle document stays empty"
    );
}

#[test]
fn ringing_call_is_an_early_dialog() {
    let doc = parse(RINGING);
    let d = &doc.dialogs[0];
    assert_eq!(d.id, "201");
    assert_eq!(d.direction, Some(Direction::Recipient));
    assert_eq!(d.state, DialogState::new(DialogStateValue::Early));
    assert_eq!(d.call_id, None);
    let remote = d.remote.as_ref().unwrap();
    assert_eq!(
        remote.identity,
        Some(Identity {
            uri: "sip:100@pbx.example.test".into(),
            display: Some("Front Desk".into())
        })
    );
    assert_eq!(
        remote.target.as_ref().unwrap().uri,
        "sip:100@pbx.example.test"
    );
    assert!(remote.target.as_ref().unwrap().params.is_empty());
    assert_eq!(
        d.local
            .as_ref()
            .unwrap()
            .identity
            .as_ref()
            .unwrap()
            .display
            .as_deref(),
        Some("Room 201")
    );
    assert_eq!(doc.dialog("201"), Some(d));
    assert_eq!(doc.dialog("202"), None);
    round_trip(&doc);
}

#[test]
fn confirmed_call_with_identities_and_target_params() {
    let doc = parse(CONFIRMED);
    assert_eq!(doc.version, 7);
    let d = &doc.dialogs[0];
    assert_eq!(
        d.call_id.as_deref(),
        Some("a84b4c76e66710@pc33.example.test")
    );
    assert_eq!(d.local_tag.as_deref(), Some("1928301774"));
    assert_eq!(d.remote_tag.as_deref(), Some("456887766"));
    assert_eq!(d.direction, Some(Direction::Initiator));
    assert_eq!(d.state.value, DialogStateValue::Confirmed);
    assert_eq!(d.state.event, Some(DialogEvent::Replaced));
    assert_eq!(d.state.code, None);
    assert_eq!(d.duration, Some(274));
    assert_eq!(
        d.replaces,
        Some(Replaces {
            call_id: "hh76a@pc33.example.test".into(),
            local_tag: "6549".into(),
            remote_tag: "6a7b".into(),
        })
    );
    assert_eq!(
        d.referred_by.as_ref().unwrap().uri,
        "sip:operator@example.test"
    );
    assert_eq!(
        d.route_set,
        ["sip:proxy1.example.test;lr", "sip:proxy2.example.test;lr"]
    );

    let local = d.local.as_ref().unwrap();
    assert_eq!(
        local.identity.as_ref().unwrap().display.as_deref(),
        Some("Alice")
    );
    let target = local.target.as_ref().unwrap();
    assert_eq!(target.uri, "sip:alice@pc33.example.test");
    assert_eq!(target.params.len(), 3);
    assert_eq!(
        target.params[0],
        ("+sip.rendering".to_owned(), "yes".to_owned())
    );
    assert_eq!(
        target.params[2].1,
        "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
    );
    let sdp = local.session_description.as_ref().unwrap();
    assert_eq!(sdp.content_type, "application/sdp");
    assert!(sdp.text.starts_with("v=0\no=alice"), "{:?}", sdp.text);
    assert_eq!(local.cseq, Some(2));

    let remote = d.remote.as_ref().unwrap();
    assert_eq!(
        remote.identity.as_ref().unwrap().display.as_deref(),
        Some("Bob & Co")
    );
    assert_eq!(remote.cseq, Some(1));
    assert!(remote.session_description.is_none());
    round_trip(&doc);
}

#[test]
fn terminated_call_carries_event_and_code() {
    let doc = parse(TERMINATED);
    assert_eq!(doc.state, DocState::Partial);
    let state = &doc.dialogs[0].state;
    assert_eq!(state.value, DialogStateValue::Terminated);
    assert_eq!(state.event, Some(DialogEvent::Rejected));
    assert_eq!(state.code, Some(486));
    round_trip(&doc);
    for (event, variant) in [
        ("cancelled", DialogEvent::Cancelled),
        ("local-bye", DialogEvent::LocalBye),
        ("remote-bye", DialogEvent::RemoteBye),
        ("error", DialogEvent::Error),
        ("timeout", DialogEvent::Timeout),
    ] {
        let doc = parse(&with_dialog(&format!(
            r#"<dialog id="x"><state event="{event}">terminated</state></dialog>"#
        )));
        assert_eq!(doc.dialogs[0].state.event, Some(variant));
    }
}

#[test]
fn several_dialogs_and_every_state() {
    let dialogs: String = ["trying", "proceeding", "early", "confirmed", "terminated"]
        .iter()
        .enumerate()
        .map(|(i, s)| format!(r#"<dialog id="d{i}"><state> {s} </state></dialog>"#))
        .collect();
    let doc = parse(&with_dialog(&dialogs));
    let states: Vec<DialogStateValue> = doc.dialogs.iter().map(|d| d.state.value).collect();
    assert_eq!(states, DialogStateValue::ALL);
    round_trip(&doc);
}

#[test]
fn vendor_extensions_are_kept() {
    // Shared line appearances (Polycom, BroadWorks) add their own namespace inside dialogs.
    let src = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
        xmlns:sa="urn:ietf:params:xml:ns:sa-dialog-info" xmlns:v="urn:example:vendor"
        version="3" state="full" entity="sip:line1@example.test" v:build="7.1">
      <dialog id="a1" direction="recipient" v:slot="2">
        <sa:exclusive>false</sa:exclusive>
        <state>confirmed</state>
        <local><identity>sip:line1@example.test</identity><v:hold since="12"/></local>
        <sa:appearance>1</sa:appearance>
      </dialog>
      <v:summary calls="1"/>
    </dialog-info>"#;
    let doc = parse(src);
    assert_eq!(doc.extension_attributes[0].name, "build");
    assert_eq!(doc.extensions[0].name, "summary");
    let d = &doc.dialogs[0];
    assert_eq!(d.extension_attributes.len(), 1);
    let names: Vec<&str> = d.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["exclusive", "appearance"]);
    assert_eq!(
        d.extensions[1].namespace,
        "urn:ietf:params:xml:ns:sa-dialog-info"
    );
    assert_eq!(
        d.local.as_ref().unwrap().extensions[0].attributes[0].value,
        "12"
    );
    round_trip(&doc);
}

#[test]
fn builds_and_round_trips_a_model() {
    let mut call = Dialog::new("id<&>\"", DialogStateValue::Terminated);
    call.state.event = Some(DialogEvent::LocalBye);
    call.state.code = Some(699);
    call.call_id = Some("c@h".into());
    call.remote_tag = Some("rt".into());
    call.direction = Some(Direction::Recipient);
    call.duration = Some(u64::MAX);
    call.route_set = vec!["<sip:p1;lr>".into()];
    call.referred_by = Some(Identity::new("sip:r@example.test"));
    call.local = Some(Participant::default());
    call.remote = Some(Participant {
        identity: Some(Identity {
            uri: "tel:+15551234".into(),
            display: Some(" spaced \t".into()),
        }),
        target: Some(Target {
            uri: "sip:b@192.0.2.9:5070;transport=tcp".into(),
            params: vec![("a".into(), "".into()), ("a".into(), "dup".into())],
        }),
        session_description: Some(SessionDescription {
            content_type: "application/sdp".into(),
            text: "  v=0\r\nm=audio 49170 RTP/AVP 0\n".into(),
        }),
        cseq: Some(u32::MAX),
        extensions: vec![Element {
            namespace: "urn:example:x".into(),
            name: "x".into(),
            ..Element::default()
        }],
    });
    call.extension_attributes.push(Attribute {
        namespace: "urn:example:x".into(),
        name: "k".into(),
        value: "v".into(),
    });
    let doc = DialogInfo {
        version: 42,
        state: DocState::Partial,
        entity: "sip:201@pbx.example.test".into(),
        dialogs: vec![call, Dialog::new("second", DialogStateValue::Trying)],
        ..DialogInfo::default()
    };
    let xml = doc.to_xml();
    assert!(
        xml.contains(r#"xmlns="urn:ietf:params:xml:ns:dialog-info""#),
        "{xml}"
    );
    round_trip(&doc);
    round_trip(&DialogInfo::default());
}

#[test]
fn partial_documents_fold_into_the_full_state() {
    let mut lamps = parse(RINGING);
    assert_eq!(lamps.version, 1);
    // Version 2: the call is answered, a second one starts ringing.
    let v2 = parse(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="partial" entity="sip:201@pbx.example.test">
             <dialog id="201" direction="recipient"><state>confirmed</state></dialog>
             <dialog id="202" direction="recipient"><state>early</state></dialog>
           </dialog-info>"#,
    );
    assert!(lamps.apply(&v2).unwrap());
    assert_eq!(lamps.state, DocState::Full);
    assert_eq!(
        lamps.dialog("201").unwrap().state.value,
        DialogStateValue::Confirmed
    );
    assert_eq!(
        lamps.dialog("202").unwrap().state.value,
        DialogStateValue::Early
    );
    // Repeated or old notifications are ignored.
    let before = lamps.clone();
    assert!(!lamps.apply(&v2).unwrap());
    assert!(!lamps.apply(&parse(RINGING)).unwrap());
    assert_eq!(lamps, before);
    // Version 3: 201 hangs up and drops off the lamp.
    let mut v3 = parse(TERMINATED);
    v3.version = 3;
    assert!(lamps.apply(&v3).unwrap());
    let ids: Vec<&str> = lamps.dialogs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["202"]);
    // A gap in versions needs the full state again.
    let mut v5 = v3.clone();
    v5.version = 5;
    assert!(matches!(lamps.apply(&v5), Err(Error::Malformed(m)) if m.contains("full state")));
    // A full document replaces everything.
    let mut idle = parse(IDLE);
    idle.version = 9;
    assert!(lamps.apply(&idle).unwrap());
    assert_eq!(lamps, idle);
}

#[test]
fn enum_names_are_the_schema_tokens() {
    for v in DialogStateValue::ALL {
        assert_eq!(v.as_str().parse::<DialogStateValue>().unwrap(), *v);
    }
    for e in DialogEvent::ALL {
        assert_eq!(e.as_str().parse::<DialogEvent>().unwrap(), *e);
        assert_eq!(e.to_string(), e.as_str());
    }
    for d in Direction::ALL {
        assert_eq!(d.as_str().parse::<Direction>().unwrap(), *d);
    }
    for s in DocState::ALL {
        assert_eq!(s.as_str().parse::<DocState>().unwrap(), *s);
    }
    assert_eq!(DialogEvent::LocalBye.as_str(), "local-bye");
    assert_eq!(DialogEvent::RemoteBye.as_str(), "remote-bye");
    assert!("Confirmed".parse::<DialogStateValue>().is_err());
}

#[test]
fn refuses_values_outside_the_schema() {
    let m = malformed(&with_dialog(
        r#"<dialog id="1"><state>ringing</state></dialog>"#,
    ));
    assert!(m.contains("ringing") && m.contains("state"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="1"><state code="busy">terminated</state></dialog>"#,
    ));
    assert!(m.contains("code") && m.contains("busy"), "{m}");
    for code in ["99", "700", "0", "65536", "-486", "4 86"] {
        let m = malformed(&with_dialog(&format!(
            r#"<dialog id="1"><state code="{code}">terminated</state></dialog>"#
        )));
        assert!(m.contains("code"), "{code}: {m}");
    }
    let m = malformed(&with_dialog(
        r#"<dialog id="1"><state event="hangup">terminated</state></dialog>"#,
    ));
    assert!(m.contains("hangup"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="1" direction="outbound"><state>trying</state></dialog>"#,
    ));
    assert!(m.contains("outbound"), "{m}");
    let m = malformed(&with_dialog(r#"<dialog><state>trying</state></dialog>"#));
    assert!(m.contains("'id'"), "{m}");
    let m = malformed(&with_dialog(r#"<dialog id="7"/>"#));
    assert!(m.contains("<state>"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><duration>1m</duration></dialog>"#,
    ));
    assert!(m.contains("duration"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><replaces call-id="c" local-tag="l"/></dialog>"#,
    ));
    assert!(m.contains("'remote-tag'"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><local><target><param pname="p" pval="v"/></target></local></dialog>"#,
    ));
    assert!(m.contains("'uri'"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><local><target uri="sip:a@b"><param pname="p"/></target></local></dialog>"#,
    ));
    assert!(m.contains("'pval'"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><remote><session-description>v=0</session-description></remote></dialog>"#,
    ));
    assert!(m.contains("'type'"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><remote><cseq>one</cseq></remote></dialog>"#,
    ));
    assert!(m.contains("cseq"), "{m}");
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state><b>early</b></state></dialog>"#,
    ));
    assert!(m.contains("not elements"), "{m}");
    // A value is checked in a known element of the standard shape, next to kept ones.
    let m = malformed(&with_dialog(
        r#"<dialog id="7"><state>early</state><exclusive>no</exclusive><duration>1m</duration></dialog>"#,
    ));
    assert!(m.contains("duration"), "{m}");
}

#[test]
fn keeps_elements_the_schema_does_not_define_and_repeats() {
    let doc = parse(&with_dialog(
        r#"<exclusive>false</exclusive>
        <dialog id="7"><state>early</state><state>confirmed</state><ringing/>
          <duration><approx>60</approx></duration>
          <route-set><via>x</via></route-set>
          <route-set><hop>sip:p1.example.test;lr</hop></route-set>
          <remote><identity>sip:a@b</identity><identity>sip:c@d</identity>
            <target uri="sip:a@192.0.2.7"><x/></target>
            <mediaAttributes><mediaType>audio</mediaType></mediaAttributes></remote>
        </dialog>"#,
    ));
    let names = |es: &[Element]| es.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&doc.extensions), ["exclusive"]);
    let d = &doc.dialogs[0];
    assert_eq!(d.state.value, DialogStateValue::Early);
    assert_eq!(d.duration, None);
    assert_eq!(d.route_set, ["sip:p1.example.test;lr"]);
    assert_eq!(
        names(&d.extensions),
        ["state", "ringing", "duration", "route-set"]
    );
    assert_eq!(d.extensions[0].text, "confirmed");
    let remote = d.remote.as_ref().unwrap();
    assert_eq!(remote.identity.as_ref().unwrap().uri, "sip:a@b");
    assert_eq!(remote.target, None);
    assert_eq!(
        names(&remote.extensions),
        ["identity", "target", "mediaAttributes"]
    );
    round_trip(&doc);
    // Everything kept is written back.
    let xml = doc.to_xml();
    for kept in [
        "<exclusive>false</exclusive>",
        "<ringing/>",
        "<via>x</via>",
        "<x/>",
    ] {
        assert!(xml.contains(kept), "{kept} lost:\n{xml}");
    }
}

#[test]
fn refuses_bad_roots() {
    let ns = r#"xmlns="urn:ietf:params:xml:ns:dialog-info""#;
    let m = malformed(&format!(
        r#"<dialog-info {ns} state="full" entity="sip:a@b"/>"#
    ));
    assert!(m.contains("'version'"), "{m}");
    for bad in ["one", "1e3", "-1", "4294967296", " "] {
        let m = malformed(&format!(
            r#"<dialog-info {ns} version="{bad}" state="full" entity="sip:a@b"/>"#
        ));
        assert!(m.contains("version"), "{bad:?}: {m}");
    }
    let m = malformed(&format!(r#"<dialog-info {ns} version="1" state="full"/>"#));
    assert!(m.contains("'entity'"), "{m}");
    let m = malformed(&format!(
        r#"<dialog-info {ns} version="1" state="some" entity="sip:a@b"/>"#
    ));
    assert!(m.contains("some"), "{m}");
    let m = malformed(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full" entity="sip:a@b"/>"#,
    );
    assert!(m.contains("namespace"), "{m}");
    malformed(r#"<dialog-info version="1" state="full" entity="sip:a@b"/>"#);
    malformed(&CONFIRMED[..CONFIRMED.len() - 40]);
    malformed(&RINGING[..120]);
    malformed("<dialog-info");
}

#[test]
fn refuses_doctype_entity_bombs_and_oversized_documents() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE dialog-info [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:&c;@example.test"/>"#;
    assert!(matches!(
        DialogInfo::parse(bomb, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let undeclared = with_dialog(r#"<dialog id="1"><state>&c;</state></dialog>"#);
    assert!(matches!(
        DialogInfo::parse(&undeclared, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let small = Limits {
        max_bytes: 256,
        max_depth: 32,
    };
    assert!(matches!(
        DialogInfo::parse(CONFIRMED, &small),
        Err(Error::TooLarge(_))
    ));
    let shallow = Limits {
        max_bytes: 64 * 1024,
        max_depth: 3,
    };
    assert!(matches!(
        DialogInfo::parse(RINGING, &shallow),
        Err(Error::TooLarge(_))
    ));
}

#[test]
fn content_type_is_registered_name() {
    assert_eq!(DialogInfo::CONTENT_TYPE, "application/dialog-info+xml");
}
