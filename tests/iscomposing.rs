//! Is-composing indications (RFC 3994) through the public API.

use impp::doc::iscomposing::{
    ComposingState, IsComposing, CONTENT_TYPE, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_REFRESH_SECS,
    MIN_REFRESH_SECS,
};
use impp::doc::{ns, Element, Limits, Timestamp};
use impp::Error;

fn parse(doc: &str) -> IsComposing {
    IsComposing::parse(doc).unwrap_or_else(|e| panic!("{doc:?} should parse: {e}"))
}

fn malformed(doc: &str) -> String {
    match IsComposing::parse(doc) {
        Err(Error::Malformed(msg)) => msg,
        other => panic!("{doc:?} should be Malformed, got {other:?}"),
    }
}

fn assert_round_trip(d: &IsComposing) {
    let xml = d.to_xml();
    let again = IsComposing::parse(&xml).unwrap_or_else(|e| panic!("{xml} should re-parse: {e}"));
    assert_eq!(&again, d, "{xml}");
    assert_eq!(again.to_xml(), xml);
}

fn wrap(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\">{body}</isComposing>"
    )
}

#[test]
fn constants() {
    assert_eq!(CONTENT_TYPE, "application/im-iscomposing+xml");
    assert_eq!(IsComposing::CONTENT_TYPE, CONTENT_TYPE);
    assert_eq!(ns::IM_ISCOMPOSING, "urn:ietf:params:xml:ns:im-iscomposing");
    assert_eq!(DEFAULT_IDLE_TIMEOUT_SECS, 15);
    assert_eq!(DEFAULT_REFRESH_SECS, 120);
    assert_eq!(MIN_REFRESH_SECS, 60);
    assert_eq!(ComposingState::NAMES, ["active", "idle"]);
}

#[test]
fn rfc_idle_example_with_schema_location() {
    let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>idle</state>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <contenttype>audio</contenttype>
</isComposing>
"#;
    let d = parse(doc);
    assert_eq!(d.state, ComposingState::Idle);
    assert!(!d.is_active());
    assert_eq!(
        d.last_active.as_ref().map(Timestamp::as_str),
        Some("2003-01-27T10:43:00Z")
    );
    assert_eq!(d.content_type.as_deref(), Some("audio"));
    assert_eq!(d.refresh, None);
    assert_eq!(d.active_expires_after(), None);
    assert!(d.extensions.is_empty());
    assert_eq!(d.extension_attributes.len(), 1);
    assert_eq!(d.extension_attributes[0].name, "schemaLocation");
    assert_eq!(
        d.extension_attributes[0].namespace,
        "http://www.w3.org/2001/XMLSchema-instance"
    );
    assert_round_trip(&d);
}

#[test]
fn rfc_active_example() {
    let d = parse(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
  <state>active</state>
  <contenttype>text/plain</contenttype>
  <refresh>90</refresh>
</isComposing>"#,
    );
    assert_eq!(d.state, ComposingState::Active);
    assert!(d.is_active());
    assert_eq!(d.content_type.as_deref(), Some("text/plain"));
    assert_eq!(d.refresh, Some(90));
    assert_eq!(d.active_expires_after(), Some(90));
    assert_round_trip(&d);
}

#[test]
fn prefixed_and_minimal_documents() {
    // A prefix instead of the default namespace, no XML declaration.
    let d = parse(
        "<ic:isComposing xmlns:ic='urn:ietf:params:xml:ns:im-iscomposing'>\
         <ic:state>active</ic:state></ic:isComposing>",
    );
    assert_eq!(d, IsComposing::active(None));
    assert_eq!(d.active_expires_after(), Some(DEFAULT_REFRESH_SECS));
    assert_round_trip(&d);

    // Whitespace around every value, CRLF line ends, elements out of schema order.
    let d = parse(&wrap(
        "\r\n  <refresh>\r\n 60 \r\n</refresh>\r\n  <state>\t active \n</state>\r\n\
         <lastactive> 2026-11-24T14:45:00.250+01:00 </lastactive>\r\n\
         <contenttype> text/html </contenttype>\r\n",
    ));
    assert_eq!(d.state, ComposingState::Active);
    assert_eq!(d.refresh, Some(60));
    assert_eq!(
        d.last_active.as_ref().map(Timestamp::as_str),
        Some("2026-11-24T14:45:00.250+01:00")
    );
    assert_eq!(d.content_type.as_deref(), Some("text/html"));
    assert_round_trip(&d);

    assert_eq!(parse(&wrap("<state>idle</state>")), IsComposing::idle());
}

#[test]
fn extensions_round_trip() {
    let d = parse(&wrap(
        "<state>active</state>\
         <x:typing-hint xmlns:x='urn:example:ext' level='2'>fast<x:sub/></x:typing-hint>\
         <refresh>120</refresh>",
    ));
    assert_eq!(d.refresh, Some(120));
    assert_eq!(d.extensions.len(), 1);
    let e: &Element = &d.extensions[0];
    assert_eq!(
        (e.namespace.as_str(), e.name.as_str()),
        ("urn:example:ext", "typing-hint")
    );
    assert_eq!(e.attribute("", "level"), Some("2"));
    assert_eq!(e.text, "fast");
    assert!(e.child("urn:example:ext", "sub").is_some());
    assert_round_trip(&d);
}

#[test]
fn built_documents_serialize_and_round_trip() {
    let active = IsComposing::active(Some(90));
    let xml = active.to_xml();
    assert!(xml.contains("<state>active</state>"), "{xml}");
    assert!(xml.contains("<refresh>90</refresh>"), "{xml}");
    assert!(
        xml.contains("xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\""),
        "{xml}"
    );
    assert_round_trip(&active);

    let mut idle = IsComposing::idle();
    idle.last_active = Some(Timestamp::parse("2026-11-24T14:45:00Z").unwrap());
    idle.content_type = Some("text/plain & <more>".into());
    let xml = idle.to_xml();
    assert!(xml.contains("&amp; &lt;more&gt;"), "{xml}");
    let order: Vec<usize> = ["<state>", "<lastactive>", "<contenttype>"]
        .iter()
        .map(|t| xml.find(t).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{xml}");
    assert_round_trip(&idle);
}

#[test]
fn refresh_in_idle_document_is_kept() {
    let d = parse(&wrap("<state>idle</state><refresh>60</refresh>"));
    assert_eq!(d.refresh, Some(60));
    assert_eq!(d.active_expires_after(), None);
    assert_round_trip(&d);
}

#[test]
fn missing_or_bad_state() {
    assert!(malformed(&wrap("<contenttype>text/plain</contenttype>")).contains("<state>"));
    assert!(malformed(&wrap("")).contains("required <state>"));
    let msg = malformed(&wrap("<state>typing</state>"));
    assert!(
        msg.contains("'active' or 'idle'") && msg.contains("typing"),
        "{msg}"
    );
    assert!(malformed(&wrap("<state>Active</state>")).contains("Active"));
    assert!(malformed(&wrap("<state></state>")).contains("<state>"));
    assert!(malformed(&wrap("<state><b/>active</state>")).contains("text, not elements"));
    assert!(malformed(&wrap("<state>idle</state><state>idle</state>")).contains("more than one"));
}

#[test]
fn bad_refresh() {
    for bad in [
        "0",
        "-1",
        "1.5",
        "ten",
        "",
        "4294967296",
        "99999999999999999999",
    ] {
        let msg = malformed(&wrap(&format!(
            "<state>active</state><refresh>{bad}</refresh>"
        )));
        assert!(msg.contains("<refresh>"), "{bad}: {msg}");
    }
    assert!(malformed(&wrap(
        "<state>active</state><refresh>60</refresh><refresh>60</refresh>"
    ))
    .contains("more than one <refresh>"));
}

#[test]
fn bad_timestamp() {
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-24 14:45:00Z",
        "",
    ] {
        let msg = malformed(&wrap(&format!(
            "<state>idle</state><lastactive>{bad}</lastactive>"
        )));
        assert!(msg.contains("<lastactive>"), "{bad}: {msg}");
    }
}

#[test]
fn wrong_namespace_or_root() {
    let msg = malformed(
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-composing'><state>idle</state></isComposing>",
    );
    assert!(msg.contains("namespace"), "{msg}");
    malformed("<isComposing><state>idle</state></isComposing>");
    malformed(
        "<iscomposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'><state>idle</state></iscomposing>",
    );
    // Children in no namespace are extensions, not the schema's elements: state is missing.
    assert!(malformed(
        "<ic:isComposing xmlns:ic='urn:ietf:params:xml:ns:im-iscomposing'><state>idle</state></ic:isComposing>"
    )
    .contains("required <state>"));
    malformed("not xml at all");
    malformed("");
}

#[test]
fn unknown_elements_of_the_namespace_are_kept_repeats_refused() {
    // An element the schema does not define, and an optional one holding an element, are
    // kept and written back; the values of the others are read.
    let d = IsComposing::parse(&wrap(
        "<state>active</state><typing/><refresh><in>60</in></refresh><contenttype>text/plain</contenttype>",
    ))
    .unwrap();
    assert_eq!(d.state, ComposingState::Active);
    assert_eq!(
        (d.refresh, d.content_type.as_deref()),
        (None, Some("text/plain"))
    );
    let names: Vec<&str> = d.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["typing", "refresh"]);
    let again = IsComposing::parse(&d.to_xml()).unwrap();
    assert_eq!(again, d);
    // Two of one element contradict each other, kept or not: refused.
    for twice in [
        "<state>idle</state><state>active</state>",
        "<state>idle</state><refresh><in>60</in></refresh><refresh>60</refresh>",
    ] {
        assert!(malformed(&wrap(twice)).contains("more than one"), "{twice}");
    }
}

#[test]
fn refuses_doctype_and_oversized_documents() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE isComposing [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>&b;</state></isComposing>"#;
    assert!(matches!(IsComposing::parse(bomb), Err(Error::UnsafeXml(_))));

    let padding = " ".repeat(Limits::DEFAULT.max_bytes);
    let big = wrap(&format!("<state>idle</state>{padding}"));
    assert!(matches!(IsComposing::parse(&big), Err(Error::TooLarge(_))));

    let small = Limits {
        max_bytes: 64,
        ..Limits::DEFAULT
    };
    let doc = wrap("<state>idle</state>");
    assert!(matches!(
        IsComposing::parse_with_limits(&doc, &small),
        Err(Error::TooLarge(_))
    ));
    let shallow = Limits {
        max_depth: 2,
        ..Limits::DEFAULT
    };
    let deep = wrap("<state>idle</state><x:a xmlns:x='urn:x'><x:b/></x:a>");
    assert!(matches!(
        IsComposing::parse_with_limits(&deep, &shallow),
        Err(Error::TooLarge(_))
    ));
    assert!(IsComposing::parse_with_limits(&doc, &Limits::DEFAULT).is_ok());
}
