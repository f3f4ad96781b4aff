//! Event notification filters (RFC 4661) through the public API: documents as subscribers
//! send them, content selection, triggers, choosing a filter, and bad input.

use impp::doc::filter::{Filter, FilterSet, NsBinding, Selection, SelectionKind, XPath};
use impp::doc::{ns, Element, Limits};
use impp::Error;

fn parse(doc: &str) -> FilterSet {
    FilterSet::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
}

fn round_trip(set: &FilterSet) {
    let xml = set.to_xml();
    let again = FilterSet::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(&again, set, "{xml}");
}

/// A filter set with a single filter holding `body`.
fn one_filter(body: &str) -> Filter {
    let doc = format!(
        r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">
             <ns-bindings>
               <ns-binding prefix="p" urn="urn:ietf:params:xml:ns:pidf"/>
               <ns-binding prefix="r" urn="urn:ietf:params:xml:ns:pidf:rpid"/>
             </ns-bindings>
             <filter id="f1">{body}</filter>
           </filter-set>"#
    );
    let set = parse(&doc);
    round_trip(&set);
    set.filters.into_iter().next().unwrap()
}

fn include(exprs: &[&str]) -> Filter {
    let body: String = exprs
        .iter()
        .map(|e| format!("<include>{e}</include>"))
        .collect();
    one_filter(&format!("<what>{body}</what>"))
}

const PRESENCE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
          xmlns:caps="urn:ietf:params:xml:ns:pidf:caps"
          entity="pres:alice@example.test">
  <tuple id="desk">
    <status><basic>open</basic></status>
    <caps:servcaps><caps:audio>true</caps:audio><caps:video>false</caps:video></caps:servcaps>
    <contact priority="0.8">sip:alice@example.test</contact>
    <note>desk phone</note>
  </tuple>
  <tuple id="chat">
    <status><basic>closed</basic></status>
    <caps:servcaps><caps:audio>false</caps:audio></caps:servcaps>
    <contact>im:alice@example.test</contact>
  </tuple>
  <dm:person id="me">
    <rpid:activities><rpid:busy/></rpid:activities>
    <rpid:mood><rpid:happy/></rpid:mood>
    <dm:note>in a meeting</dm:note>
  </dm:person>
  <note>composed</note>
</presence>"#;

fn presence() -> Element {
    Element::parse(PRESENCE, &Limits::DEFAULT).unwrap()
}

/// `name#id` (or `name`) of every child, in order.
fn kids(e: &Element) -> Vec<String> {
    e.children
        .iter()
        .map(|c| match c.attribute("", "id") {
            Some(id) => format!("{}#{id}", c.name),
            None => c.name.clone(),
        })
        .collect()
}

fn find<'e>(e: &'e Element, ns: &str, name: &str, id: &str) -> &'e Element {
    e.children
        .iter()
        .find(|c| c.namespace == ns && c.name == name && c.attribute("", "id") == Some(id))
        .unwrap_or_else(|| panic!("no {name}#{id} in {:?}", kids(e)))
}

// ---------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------

#[test]
fn parses_a_subscriber_document() {
    // The shape of RFC 4661's first example: one filter for one presentity, selecting the
    // SIP contacts and firing when a basic status goes from open to closed.
    let set = parse(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <ns-bindings>
    <ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/>
  </ns-bindings>
  <filter id="sip-only" uri="sip:bob@example.test">
    <what>
      <include type="xpath">
        /pidf:presence/pidf:tuple[starts-with(pidf:contact,'sip:')]
      </include>
    </what>
    <trigger>
      <changed from="open" to="closed">/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed>
    </trigger>
  </filter>
</filter-set>"#,
    );
    assert_eq!(set.package.as_deref(), Some("presence"));
    assert_eq!(
        set.ns_bindings,
        [NsBinding {
            prefix: "pidf".into(),
            urn: ns::PIDF.into()
        }]
    );
    let f = &set.filters[0];
    assert_eq!(f.id, "sip-only");
    assert_eq!(f.uri.as_deref(), Some("sip:bob@example.test"));
    assert_eq!(f.domain, None);
    assert!(!f.remove);
    assert!(f.enabled);
    let what = f.what.as_ref().unwrap();
    assert_eq!(what.includes.len(), 1);
    assert_eq!(what.includes[0].kind, SelectionKind::XPath);
    assert_eq!(
        what.includes[0].expression,
        "/pidf:presence/pidf:tuple[starts-with(pidf:contact,'sip:')]"
    );
    assert!(what.excludes.is_empty());
    let c = &f.triggers[0].changed[0];
    assert_eq!(c.from.as_deref(), Some("open"));
    assert_eq!(c.to.as_deref(), Some("closed"));
    assert_eq!(c.by, None);
    assert_eq!(
        c.expression.expression,
        "/pidf:presence/pidf:tuple/pidf:status/pidf:basic"
    );
    round_trip(&set);
}

#[test]
fn parses_several_filters_prefixes_and_extensions() {
    // The filter document itself uses a prefix; the expressions use other prefixes bound
    // to the same namespaces as the conventional ones, and one unusual binding.
    let set = parse(
        r#"<sf:filter-set xmlns:sf="urn:ietf:params:xml:ns:simple-filter"
                          xmlns:x="urn:example:ext">
  <sf:ns-bindings>
    <sf:ns-binding prefix="pr" urn="urn:ietf:params:xml:ns:pidf"/>
    <sf:ns-binding prefix="act" urn="urn:ietf:params:xml:ns:pidf:rpid"/>
    <sf:ns-binding prefix="e" urn="urn:example:ext"/>
  </sf:ns-bindings>
  <sf:filter id="a" domain="example.test" enabled="false">
    <sf:what>
      <sf:include type="namespace">urn:ietf:params:xml:ns:pidf:rpid</sf:include>
      <sf:exclude>//act:mood</sf:exclude>
      <x:max-rate>2</x:max-rate>
    </sf:what>
  </sf:filter>
  <sf:filter id="b">
    <sf:trigger>
      <sf:added>/pr:presence/pr:tuple</sf:added>
      <sf:removed>/pr:presence/pr:tuple</sf:removed>
    </sf:trigger>
    <sf:trigger>
      <sf:changed by="2.5">/pr:presence/e:level</sf:changed>
    </sf:trigger>
  </sf:filter>
  <sf:filter id="c" remove="1"/>
  <x:note lang="en">kept</x:note>
</sf:filter-set>"#,
    );
    assert_eq!(set.ns_bindings.len(), 3);
    assert_eq!(set.filters.len(), 3);
    let a = &set.filters[0];
    assert_eq!(a.domain.as_deref(), Some("example.test"));
    assert!(!a.enabled);
    let what = a.what.as_ref().unwrap();
    assert_eq!(what.includes[0], Selection::namespace(ns::RPID));
    assert_eq!(
        what.excludes[0],
        Selection::xpath("//act:mood", &set.ns_bindings).unwrap()
    );
    assert_eq!(what.extensions[0].name, "max-rate");
    let b = &set.filters[1];
    assert_eq!(b.triggers.len(), 2);
    assert_eq!(b.triggers[0].added[0].expression, "/pr:presence/pr:tuple");
    assert_eq!(b.triggers[1].changed[0].by.as_deref(), Some("2.5"));
    assert!(set.filters[2].remove);
    assert_eq!(set.extensions[0].namespace, "urn:example:ext");
    round_trip(&set);
}

#[test]
fn builds_and_writes_a_filter_set() {
    let bindings = vec![NsBinding {
        prefix: "p".into(),
        urn: ns::PIDF.into(),
    }];
    let set = FilterSet {
        package: None,
        filters: vec![Filter {
            id: "x & <y>".into(),
            uri: Some("sip:carol@example.test".into()),
            domain: None,
            remove: false,
            enabled: true,
            what: Some(impp::doc::filter::What {
                includes: vec![
                    Selection::xpath(r#"/p:presence/p:tuple[@id="a&b"]"#, &bindings).unwrap(),
                ],
                excludes: vec![],
                extensions: vec![],
            }),
            triggers: vec![impp::doc::filter::Trigger {
                changed: vec![impp::doc::filter::Changed {
                    expression: XPath::compile("/p:presence/p:tuple/p:status/p:basic", &bindings)
                        .unwrap(),
                    from: None,
                    to: Some("open".into()),
                    by: None,
                }],
                ..Default::default()
            }],
            extensions: vec![],
        }],
        ns_bindings: bindings,
        extensions: vec![],
    };
    let xml = set.to_xml();
    assert!(
        xml.contains(r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">"#),
        "{xml}"
    );
    assert!(xml.contains("a&amp;b"), "{xml}");
    round_trip(&set);
    assert_eq!(
        impp::doc::filter::CONTENT_TYPE,
        "application/simple-filter+xml"
    );
}

// ---------------------------------------------------------------------------------------
// Content selection
// ---------------------------------------------------------------------------------------

#[test]
fn no_what_delivers_everything() {
    let f = one_filter("<trigger><added>/p:presence/p:tuple</added></trigger>");
    assert_eq!(f.apply(&presence()), presence());
}

#[test]
fn selects_tuples_by_contact_scheme() {
    let f = include(&["/pidf:presence/pidf:tuple[starts-with(pidf:contact,'sip:')]"]);
    let doc = presence();
    let out = f.apply(&doc);
    assert_eq!(out.name, "presence");
    assert_eq!(out.attributes, doc.attributes);
    assert_eq!(kids(&out), ["tuple#desk"]);
    // The selected tuple comes whole.
    assert_eq!(out.children[0], *find(&doc, ns::PIDF, "tuple", "desk"));
}

#[test]
fn selects_tuples_by_service() {
    let doc = presence();
    let audio = include(&["/pidf:presence/pidf:tuple[caps:servcaps/caps:audio=\"true\"]"]);
    assert_eq!(kids(&audio.apply(&doc)), ["tuple#desk"]);
    let closed = include(&["/p:presence/p:tuple[p:status/p:basic='closed']"]);
    assert_eq!(kids(&closed.apply(&doc)), ["tuple#chat"]);
    let by_id = include(&["/pidf:presence/pidf:tuple[@id=\"chat\"]"]);
    let out = by_id.apply(&doc);
    assert_eq!(
        out.children,
        [find(&doc, ns::PIDF, "tuple", "chat").clone()]
    );
    let both = include(&["/p:presence/p:tuple[@id='chat' and p:contact]"]);
    assert_eq!(kids(&both.apply(&doc)), ["tuple#chat"]);
    let none = include(&["/p:presence/p:tuple[@id='nope']"]);
    let bare = none.apply(&doc);
    assert!(bare.children.is_empty());
    assert_eq!(bare.attributes, doc.attributes);
}

#[test]
fn selects_person_elements_with_their_ancestors() {
    let doc = presence();
    let person = find(&doc, ns::DATA_MODEL, "person", "me");
    for expr in [
        "/pidf:presence/dm:person/rpid:activities",
        "//rpid:activities",
        "//r:activities",
    ] {
        let out = include(&[expr]).apply(&doc);
        assert_eq!(kids(&out), ["person#me"], "{expr}");
        let p = &out.children[0];
        // The ancestor keeps its attributes but only the path to what was selected.
        assert_eq!(p.attributes, person.attributes);
        assert_eq!(kids(p), ["activities"]);
        assert_eq!(p.children[0], person.children[0]);
        assert_eq!(kids(&p.children[0]), ["busy"]);
    }
}

#[test]
fn selects_a_whole_namespace() {
    let f = one_filter(
        r#"<what><include type="namespace">urn:ietf:params:xml:ns:pidf:rpid</include></what>"#,
    );
    let out = f.apply(&presence());
    assert_eq!(kids(&out), ["person#me"]);
    assert_eq!(kids(&out.children[0]), ["activities", "mood"]);
}

#[test]
fn includes_merge_in_document_order_and_excludes_remove() {
    let f = one_filter(
        "<what>
           <include>/p:presence/p:note</include>
           <include>/p:presence/p:tuple</include>
           <exclude>//p:note</exclude>
           <exclude>/p:presence/p:tuple/p:contact/@priority</exclude>
           <exclude>/p:presence/p:tuple[@id='chat']/p:contact</exclude>
         </what>",
    );
    let doc = presence();
    let out = f.apply(&doc);
    assert_eq!(kids(&out), ["tuple#desk", "tuple#chat"]);
    assert_eq!(kids(&out.children[0]), ["status", "servcaps", "contact"]);
    assert!(out.children[0].children[2].attributes.is_empty());
    assert_eq!(out.children[0].children[2].text, "sip:alice@example.test");
    assert_eq!(kids(&out.children[1]), ["status", "servcaps"]);
}

#[test]
fn what_with_only_excludes_starts_from_everything() {
    let f = one_filter("<what><exclude>/p:presence/dm:person</exclude></what>");
    let out = f.apply(&presence());
    assert_eq!(kids(&out), ["tuple#desk", "tuple#chat", "note"]);
}

// ---------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------

fn with_basic(desk: &str, chat: &str) -> Element {
    let doc = PRESENCE
        .replacen("<basic>open</basic>", &format!("<basic>{desk}</basic>"), 1)
        .replacen(
            "<basic>closed</basic>",
            &format!("<basic>{chat}</basic>"),
            1,
        );
    Element::parse(&doc, &Limits::DEFAULT).unwrap()
}

const BASIC: &str = "/p:presence/p:tuple/p:status/p:basic";

#[test]
fn changed_from_to() {
    let f = one_filter(&format!(
        r#"<trigger><changed from="open" to="closed">{BASIC}</changed></trigger>"#
    ));
    let open = with_basic("open", "closed");
    let closed = with_basic("closed", "closed");
    assert!(
        f.should_notify(Some(&open), &closed),
        "open to closed fires"
    );
    assert!(
        !f.should_notify(Some(&closed), &open),
        "closed to open does not"
    );
    assert!(!f.should_notify(Some(&open), &open), "no change");
    assert!(
        f.should_notify(None, &open),
        "the first document always goes out"
    );

    // An unrelated change (the note) fires nothing.
    let noted = Element::parse(&PRESENCE.replace("desk phone", "moved"), &Limits::DEFAULT).unwrap();
    assert!(!f.should_notify(Some(&presence()), &noted));
}

#[test]
fn changed_without_values_and_tuples_correlated_by_id() {
    let f = one_filter(&format!("<trigger><changed>{BASIC}</changed></trigger>"));
    let a = with_basic("open", "closed");
    assert!(f.should_notify(Some(&a), &with_basic("open", "open")));
    assert!(!f.should_notify(Some(&a), &a.clone()));
    // Swapping the tuples' order changes no tuple's status.
    let mut swapped = a.clone();
    swapped.children.swap(0, 1);
    assert!(!f.should_notify(Some(&a), &swapped));
    // Only 'to' given.
    let to_open = one_filter(&format!(
        r#"<trigger><changed to="open">{BASIC}</changed></trigger>"#
    ));
    assert!(to_open.should_notify(Some(&a), &with_basic("open", "open")));
    assert!(!to_open.should_notify(Some(&a), &with_basic("closed", "closed")));
}

#[test]
fn changed_by_a_numeric_amount() {
    let f = one_filter(
        r#"<trigger><changed by="0.5">/p:presence/p:tuple/p:contact/@priority</changed></trigger>"#,
    );
    let doc = |p: &str| Element::parse(&PRESENCE.replace("0.8", p), &Limits::DEFAULT).unwrap();
    assert!(!f.should_notify(Some(&doc("0.8")), &doc("1.0")));
    assert!(f.should_notify(Some(&doc("0.8")), &doc("0.2")));
    assert!(!f.should_notify(Some(&doc("0.8")), &doc("high")));
}

#[test]
fn added_and_removed_tuples() {
    let added = one_filter("<trigger><added>/p:presence/p:tuple</added></trigger>");
    let removed = one_filter("<trigger><removed>/p:presence/p:tuple</removed></trigger>");
    let full = presence();
    let mut fewer = full.clone();
    fewer.children.remove(1);
    assert!(added.should_notify(Some(&fewer), &full));
    assert!(!added.should_notify(Some(&full), &fewer));
    assert!(removed.should_notify(Some(&full), &fewer));
    assert!(!removed.should_notify(Some(&fewer), &full));
    assert!(!added.should_notify(Some(&full), &full));

    // A tuple that stops matching a predicate counts as removed from the selection.
    let open_gone = one_filter(
        "<trigger><removed>/p:presence/p:tuple[p:status/p:basic='open']</removed></trigger>",
    );
    assert!(open_gone.should_notify(
        Some(&with_basic("open", "closed")),
        &with_basic("closed", "closed")
    ));
}

#[test]
fn triggers_combine() {
    // Within a trigger every condition must hold; any trigger suffices.
    let and = one_filter(&format!(
        "<trigger><changed>{BASIC}</changed><removed>/p:presence/p:note</removed></trigger>"
    ));
    let or = one_filter(&format!(
        "<trigger><changed>{BASIC}</changed></trigger><trigger><removed>/p:presence/p:note</removed></trigger>"
    ));
    let old = with_basic("open", "closed");
    let status_only = with_basic("closed", "closed");
    assert!(!and.should_notify(Some(&old), &status_only));
    assert!(or.should_notify(Some(&old), &status_only));
    let mut both = status_only.clone();
    both.children
        .retain(|c| !(c.name == "note" && c.namespace == ns::PIDF));
    assert!(and.should_notify(Some(&old), &both));
    let none = one_filter("<what><include>/p:presence</include></what>");
    assert!(
        none.should_notify(Some(&old), &old),
        "no trigger: every change"
    );
}

// ---------------------------------------------------------------------------------------
// Choosing a filter
// ---------------------------------------------------------------------------------------

#[test]
fn filter_for_prefers_uri_then_domain_then_default() {
    let set = parse(
        r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">
             <filter id="any"><what><include>/pidf:presence</include></what></filter>
             <filter id="dom" domain="Example.Test"><what><include>/pidf:presence</include></what></filter>
             <filter id="off" uri="sip:dave@example.test" enabled="false"/>
             <filter id="gone" uri="sip:erin@example.test" remove="true"/>
             <filter id="bob" uri="sip:bob@example.test"><what><include>/pidf:presence</include></what></filter>
           </filter-set>"#,
    );
    let id = |r: &str| set.filter_for(r).map(|f| f.id.as_str());
    assert_eq!(id("sip:bob@example.test"), Some("bob"));
    assert_eq!(id("SIP:bob@EXAMPLE.test"), Some("bob"));
    assert_eq!(id("sip:carol@example.test"), Some("dom"));
    assert_eq!(id("sip:dave@example.test"), Some("dom"));
    assert_eq!(id("sip:erin@example.test:5060;transport=tcp"), Some("dom"));
    assert_eq!(id("pres:frank@elsewhere.test"), Some("any"));
    let only_uri = parse(
        r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">
             <filter id="bob" uri="sip:bob@example.test"/>
           </filter-set>"#,
    );
    assert!(only_uri.filter_for("sip:carol@example.test").is_none());
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

fn malformed(doc: &str) {
    match FilterSet::parse(doc, &Limits::DEFAULT) {
        Err(Error::Malformed(m)) => assert!(m.starts_with("filter"), "{m}"),
        other => panic!("expected Malformed for {doc}, got {other:?}"),
    }
}

fn wrap(filters: &str) -> String {
    format!(r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter">{filters}</filter-set>"#)
}

#[test]
fn malformed_documents() {
    malformed(&wrap(
        "<filter><what><include>/pidf:presence</include></what></filter>",
    ));
    malformed(&wrap(r#"<filter id=""/>"#));
    malformed(&wrap(r#"<filter id="a" remove="yes"/>"#));
    malformed(&wrap(r#"<filter id="a" enabled="maybe"/>"#));
    malformed(&wrap(r#"<filter id="a"/><filter id="a"/>"#));
    malformed(&wrap(r#"<filter id="a" uri="sip:a@b" domain="b"/>"#));
    malformed(&wrap(
        r#"<filter id="a"><what><include type="regex">.*</include></what></filter>"#,
    ));
    malformed(&wrap(
        r#"<filter id="a"><what><include>  </include></what></filter>"#,
    ));
    malformed(&wrap(r#"<filter id="a"><what/><what/></filter>"#));
    malformed(&wrap(r#"<filter id="a"><when/></filter>"#));
    malformed(&wrap(
        r#"<filter id="a"><trigger><changed by="lots">/pidf:presence</changed></trigger></filter>"#,
    ));
    malformed(&wrap(
        r#"<ns-bindings><ns-binding prefix="p"/></ns-bindings>"#,
    ));
    malformed(&wrap(
        r#"<ns-bindings><ns-binding prefix="a:b" urn="urn:x"/></ns-bindings>"#,
    ));
    malformed(&wrap(
        r#"<ns-bindings><ns-binding prefix="p" urn="urn:x"/><ns-binding prefix="p" urn="urn:y"/></ns-bindings>"#,
    ));
    // An undeclared prefix in an expression.
    malformed(&wrap(
        r#"<filter id="a"><what><include>/q:presence</include></what></filter>"#,
    ));
    // Wrong namespace or root.
    malformed(r#"<filter-set xmlns="urn:ietf:params:xml:ns:pidf"/>"#);
    malformed(r#"<filter-set/>"#);
    malformed(r#"<filters xmlns="urn:ietf:params:xml:ns:simple-filter"/>"#);
    malformed("<filter-set xmlns=\"urn:ietf:params:xml:ns:simple-filter\">");
    // DOCTYPE is refused as unsafe.
    let doctype = r#"<?xml version="1.0"?><!DOCTYPE f [<!ENTITY e "x">]><filter-set xmlns="urn:ietf:params:xml:ns:simple-filter"/>"#;
    assert!(matches!(
        FilterSet::parse(doctype, &Limits::DEFAULT),
        Err(Error::UnsafeXml(_))
    ));
    let big = wrap(&r#"<filter id="x"/>"#.repeat(10));
    let tiny = Limits {
        max_bytes: 64,
        max_depth: 8,
    };
    assert!(matches!(
        FilterSet::parse(&big, &tiny),
        Err(Error::TooLarge(_))
    ));
}

#[test]
fn unsupported_xpath_forms() {
    let cases = [
        ("pidf:presence/pidf:tuple", "relative"),
        ("/pidf:presence/pidf:tuple[1]", "positional"),
        ("/pidf:presence/pidf:tuple[last()]", "last()"),
        ("/pidf:presence/pidf:tuple/..", ".."),
        ("/pidf:presence/child::pidf:tuple", "child::"),
        ("/pidf:presence/pidf:tuple | /pidf:presence/pidf:note", "|"),
        (
            "/pidf:presence/pidf:tuple[contains(pidf:contact, 'sip')]",
            "contains()",
        ),
        ("/pidf:presence/pidf:tuple[not(pidf:note)]", "not()"),
        ("/pidf:presence/pidf:tuple[@id='a' or @id='b']", "or"),
        (
            "/pidf:presence/pidf:tuple[pidf:contact/@priority > '0.5']",
            ">",
        ),
        ("/pidf:presence/pidf:tuple[pidf:contact != 'x']", "!="),
        (
            "/pidf:presence/pidf:tuple/pidf:status/pidf:basic/text()",
            "text()",
        ),
        (
            "/pidf:presence/pidf:tuple[pidf:status[pidf:basic]]",
            "nested",
        ),
        ("/pidf:presence/pidf:tuple[@priority = 1]", "numeric"),
        ("/pidf:presence/pidf:tuple[@priority = '1' + '1']", "+"),
        ("/pidf:presence/pidf:tuple[$wanted]", "$"),
    ];
    for (expr, construct) in cases {
        let doc = wrap(&format!(
            r#"<filter id="a"><what><include>{}</include></what></filter>"#,
            expr.replace('<', "&lt;").replace('>', "&gt;")
        ));
        match FilterSet::parse(&doc, &Limits::DEFAULT) {
            Err(Error::Unsupported(m)) => {
                assert!(m.contains(expr), "message names the expression: {m}");
                assert!(m.contains(construct), "message names '{construct}': {m}");
            }
            other => panic!("expected Unsupported for {expr}, got {other:?}"),
        }
        assert!(
            matches!(XPath::compile(expr, &[]), Err(Error::Unsupported(_))),
            "{expr}"
        );
    }
    // Trigger expressions go through the same compiler.
    let doc =
        wrap(r#"<filter id="a"><trigger><changed>//pidf:tuple[2]</changed></trigger></filter>"#);
    assert!(matches!(
        FilterSet::parse(&doc, &Limits::DEFAULT),
        Err(Error::Unsupported(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Presence documents
// ---------------------------------------------------------------------------------------

use impp::doc::pidf::{Basic, Presence};

fn pidf(doc: &str) -> Presence {
    Presence::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn apply_to_presence_selects_tuples() {
    let p = pidf(PRESENCE);
    let f = include(&["/pidf:presence/pidf:tuple[starts-with(pidf:contact,'sip:')]"]);
    let out = f.apply_to_presence(&p).unwrap();
    assert_eq!(out.entity, p.entity);
    assert_eq!(out.tuples, [p.tuple("desk").unwrap().clone()]);
    assert!(out.persons.is_empty());
    assert!(out.notes.is_empty());

    let person = include(&["//rpid:activities"])
        .apply_to_presence(&p)
        .unwrap();
    assert!(person.tuples.is_empty());
    assert_eq!(person.persons.len(), 1);
    assert_eq!(person.persons[0].id, "me");

    assert_eq!(
        one_filter("<trigger><added>//p:tuple</added></trigger>")
            .apply_to_presence(&p)
            .unwrap(),
        p
    );
}

#[test]
fn apply_to_presence_keeps_every_tuple_status() {
    let p = pidf(PRESENCE);
    // Contacts only: each tuple is an ancestor, and keeps its status too.
    let contacts = include(&["/p:presence/p:tuple/p:contact"])
        .apply_to_presence(&p)
        .unwrap();
    assert_eq!(contacts.tuples.len(), 2);
    for (t, orig) in contacts.tuples.iter().zip(&p.tuples) {
        assert_eq!(t.status, orig.status);
        assert_eq!(t.contact, orig.contact);
        assert!(t.notes.is_empty() && t.service_caps.is_none());
    }
    // Even an explicit exclude of the status gives it back.
    let f = one_filter(
        "<what><include>/p:presence/p:tuple</include><exclude>//p:status</exclude></what>",
    );
    let out = f.apply_to_presence(&p).unwrap();
    assert_eq!(out.tuples[0].status.basic, Some(Basic::Open));
    assert_eq!(out.tuples[1].status.basic, Some(Basic::Closed));
    // A result that cannot be PIDF is an error, not a panic.
    let no_id = one_filter("<what><exclude>/p:presence/p:tuple/@id</exclude></what>");
    assert!(matches!(
        no_id.apply_to_presence(&p),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn should_notify_presence_follows_basic_status() {
    let f = one_filter(&format!(
        r#"<trigger><changed from="open" to="closed">{BASIC}</changed></trigger>"#
    ));
    let open = pidf(PRESENCE);
    let mut closed = open.clone();
    closed.tuples[0].status.basic = Some(Basic::Closed);
    assert!(f.should_notify_presence(Some(&open), &closed));
    assert!(!f.should_notify_presence(Some(&closed), &open));
    assert!(f.should_notify_presence(None, &open));
    let mut renamed = open.clone();
    renamed.tuples[0].notes.clear();
    assert!(!f.should_notify_presence(Some(&open), &renamed));
}
