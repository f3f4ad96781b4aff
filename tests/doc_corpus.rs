//! The corpus in `tests/corpus/`: documents in the shapes that RFC examples, softphones
//! (Linphone, PJSIP's pjsua, baresip, eXosip, X-Lite/eyeBeam), PBXes and servers (Asterisk's
//! chan_sip and res_pjsip, Kamailio's presence and pua modules) and desk phones (Polycom,
//! Yealink, Grandstream) send, one file per document, written for this corpus.
//!
//! - Every document in `pidf/`, `dialog/`, `winfo/`, `mwi/` and `iscomposing/` parses with
//!   the codec of its folder, serializes, and parses back to an equal model; writing that
//!   model again gives the same text; and nothing the document carried is dropped (every
//!   element and attribute name comes back).
//! - The presence, dialog and message-summary documents are composed through
//!   [`impp::engine::compose::compose`], the engine's composition, alone and all together
//!   as publications of one presentity; what is composed keeps their extensions and
//!   round-trips too.
//! - Every XML document still round-trips with a vendor element inserted after any tag.
//! - The resource lists (`resource-lists/`, `rls-services/`) and RLMI documents (`rlmi/`)
//!   round-trip the same way and pass their codec's `validate`. The list notifications in
//!   `list-notify/` (a `Content-Type` line, an empty line, the `multipart/related` body) are
//!   read with CRLF and with LF line ends; every instance's state part is found and read by
//!   the codec of its type (a nested list again as a list notification); the body built
//!   again from the model reads back equal; and the partial notification folds into the
//!   full state of the same list.
//! - Every document under `refused/<codec>/` is refused with the error its name starts with
//!   (`malformed-`, `unsafe-`, `too-large-`), and every accepted document padded past the
//!   size limit is refused as too large.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use impp::doc::dialog::DialogInfo;
use impp::doc::iscomposing::IsComposing;
use impp::doc::mwi::MessageSummary;
use impp::doc::pidf::Presence;
use impp::doc::resource_lists::ResourceLists;
use impp::doc::rlmi::{InstanceState, Rlmi};
use impp::doc::rls_services::RlsServices;
use impp::doc::winfo::Watcherinfo;
use impp::doc::{ns, Element, Limits};
use impp::engine::compose::compose;
use impp::engine::{Document, Package};
use impp::sip::list_body::ListBody;
use impp::sip::multipart::MultipartRelated;
use impp::uri::Uri;
use impp::Error;

/// The documents of `tests/corpus/<dir>`, as (file name, text), sorted by name.
fn corpus(dir: &str) -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut docs: Vec<(String, String)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, text)
        })
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "tests/corpus/{dir} is empty");
    docs
}

/// Parses `text`, writes it, parses the result: the two models must be equal, and writing
/// the second gives the same text. Returns the model.
fn round_trip<T: PartialEq + Debug>(
    name: &str,
    text: &str,
    parse: impl Fn(&str) -> impp::Result<T>,
    write: impl Fn(&T) -> String,
) -> T {
    let model = parse(text).unwrap_or_else(|e| panic!("{name} is refused: {e}"));
    let written = write(&model);
    let again = parse(&written)
        .unwrap_or_else(|e| panic!("{name}: the written document is refused: {e}\n{written}"));
    assert_eq!(
        again, model,
        "{name}: the round trip changed the model\n{written}"
    );
    assert_eq!(write(&again), written, "{name}: writing is not stable");
    model
}

/// How many times each element name and each attribute name, with its namespace, occurs in
/// an XML document.
fn names(xml: &str) -> BTreeMap<String, usize> {
    fn walk(e: &Element, out: &mut BTreeMap<String, usize>) {
        *out.entry(format!("<{{{}}}{}>", e.namespace, e.name))
            .or_default() += 1;
        for a in &e.attributes {
            *out.entry(format!("@{{{}}}{}", a.namespace, a.name))
                .or_default() += 1;
        }
        for c in &e.children {
            walk(c, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Element::parse(xml, &Limits::DEFAULT).unwrap(), &mut out);
    out
}

/// Nothing the document carried is dropped: the written document has the same element and
/// attribute names, as many times (values may be written in a canonical form). An empty
/// `<route-set/>` says nothing and is the one exception; the corpus has none.
fn nothing_dropped(name: &str, input: &str, written: &str) {
    assert_eq!(
        names(input),
        names(written),
        "{name}: elements or attributes were dropped or added\n{written}"
    );
}

fn limits() -> Limits {
    Limits::DEFAULT
}

fn presentity() -> Uri {
    "sip:corpus@example.test".parse().unwrap()
}

fn presence(name: &str, text: &str) -> Presence {
    let p = round_trip(
        name,
        text,
        |t| Presence::parse(t, &limits()),
        Presence::to_xml,
    );
    nothing_dropped(name, text, &p.to_xml());
    p
}

fn dialog(name: &str, text: &str) -> DialogInfo {
    let d = round_trip(
        name,
        text,
        |t| DialogInfo::parse(t, &limits()),
        DialogInfo::to_xml,
    );
    nothing_dropped(name, text, &d.to_xml());
    d
}

#[test]
fn presence_documents_round_trip_and_compose() {
    let docs = corpus("pidf");
    let mut publications = Vec::new();
    for (name, text) in &docs {
        let p = presence(name, text);
        // Composed alone, a publication keeps its tuples, persons, devices and extensions;
        // the entity becomes the presentity's.
        let doc = Document::Presence(p.clone());
        let Document::Presence(composed) = compose(Package::Presence, &presentity(), &[(1, &doc)])
        else {
            panic!("{name}: composition gave another package");
        };
        assert_eq!(composed.entity, presentity().to_string());
        assert_eq!(composed.tuples, p.tuples, "{name}");
        assert_eq!(composed.persons, p.persons, "{name}");
        assert_eq!(composed.devices, p.devices, "{name}");
        assert_eq!(composed.extensions, p.extensions, "{name}");
        round_trip(
            name,
            &composed.to_xml(),
            |t| Presence::parse(t, &limits()),
            Presence::to_xml,
        );
        publications.push(doc);
    }
    assert!(docs.len() >= 20, "only {} presence documents", docs.len());

    // All of them as publications of one presentity, the last one the newest.
    let pubs: Vec<(u64, &Document)> = publications
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u64, d))
        .collect();
    let Document::Presence(all) = compose(Package::Presence, &presentity(), &pubs) else {
        panic!("composition gave another package");
    };
    let mut ids: Vec<&str> = publications
        .iter()
        .flat_map(|d| match d {
            Document::Presence(p) => p.tuples.iter().map(|t| t.id.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(all.tuples.len(), ids.len(), "one tuple per id");
    round_trip(
        "the composed presence",
        &all.to_xml(),
        |t| Presence::parse(t, &limits()),
        Presence::to_xml,
    );
}

#[test]
fn dialog_documents_round_trip_and_compose() {
    let docs = corpus("dialog");
    let mut publications = Vec::new();
    for (name, text) in &docs {
        let d = dialog(name, text);
        let doc = Document::Dialog(d.clone());
        let Document::Dialog(composed) = compose(Package::Dialog, &presentity(), &[(1, &doc)])
        else {
            panic!("{name}: composition gave another package");
        };
        assert_eq!(composed.dialogs, d.dialogs, "{name}");
        assert_eq!(composed.extensions, d.extensions, "{name}");
        round_trip(
            name,
            &composed.to_xml(),
            |t| DialogInfo::parse(t, &limits()),
            DialogInfo::to_xml,
        );
        publications.push(doc);
    }
    assert!(docs.len() >= 10, "only {} dialog documents", docs.len());
    let pubs: Vec<(u64, &Document)> = publications
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u64, d))
        .collect();
    let all = compose(Package::Dialog, &presentity(), &pubs);
    round_trip(
        "the composed dialog-info",
        &all.to_body(),
        |t| DialogInfo::parse(t, &limits()),
        DialogInfo::to_xml,
    );
}

#[test]
fn watcherinfo_documents_round_trip() {
    for (name, text) in &corpus("winfo") {
        let w = round_trip(
            name,
            text,
            |t| Watcherinfo::parse(t, &limits()),
            Watcherinfo::to_xml,
        );
        nothing_dropped(name, text, &w.to_xml());
    }
}

#[test]
fn iscomposing_documents_round_trip() {
    for (name, text) in &corpus("iscomposing") {
        let d = round_trip(name, text, IsComposing::parse, IsComposing::to_xml);
        nothing_dropped(name, text, &d.to_xml());
    }
}

#[test]
fn message_summaries_round_trip_and_compose() {
    let docs = corpus("mwi");
    let mut publications = Vec::new();
    for (name, text) in &docs {
        let m = round_trip(
            name,
            text,
            |t| MessageSummary::parse(t, &limits()),
            MessageSummary::to_text,
        );
        // Every line comes back (names compared without case, as the codec reads them).
        let header_names = |t: &str| {
            let mut v: Vec<String> = t
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(n, _)| n.trim().to_ascii_lowercase())
                .collect();
            v.sort();
            v
        };
        assert_eq!(header_names(text), header_names(&m.to_text()), "{name}");
        publications.push(Document::MessageSummary(m));
    }
    let pubs: Vec<(u64, &Document)> = publications
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u64, d))
        .collect();
    let all = compose(Package::MessageSummary, &presentity(), &pubs);
    let Document::MessageSummary(summary) = &all else {
        panic!("composition gave another package");
    };
    assert!(summary.messages_waiting);
    round_trip(
        "the composed summary",
        &all.to_body(),
        |t| MessageSummary::parse(t, &limits()),
        MessageSummary::to_text,
    );
}

#[test]
fn resource_lists_round_trip() {
    let docs = corpus("resource-lists");
    for (name, text) in &docs {
        let d = round_trip(
            name,
            text,
            |t| ResourceLists::parse(t, &limits()),
            ResourceLists::to_xml,
        );
        nothing_dropped(name, text, &d.to_xml());
        d.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The busy-lamp panel keeps its 50 keys in order.
    let (_, blf) = docs
        .iter()
        .find(|(n, _)| n.contains("blf-50"))
        .expect("the 50-key BLF list");
    let blf = ResourceLists::parse(blf, &limits()).unwrap();
    let keys: Vec<String> = blf.lists[0]
        .entries()
        .iter()
        .map(|e| e.uri.clone())
        .collect();
    let expected: Vec<String> = (201..251)
        .map(|n| format!("sip:{n}@pbx.example.test"))
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn rls_services_round_trip() {
    for (name, text) in &corpus("rls-services") {
        let d = round_trip(
            name,
            text,
            |t| RlsServices::parse(t, &limits()),
            RlsServices::to_xml,
        );
        nothing_dropped(name, text, &d.to_xml());
        d.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!d.services.is_empty(), "{name}");
    }
}

#[test]
fn rlmi_documents_round_trip() {
    for (name, text) in &corpus("rlmi") {
        let d = round_trip(name, text, |t| Rlmi::parse(t, &limits()), Rlmi::to_xml);
        nothing_dropped(name, text, &d.to_xml());
        d.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A list notification file: the Content-Type header value and the body (LF line ends, as
/// stored).
fn notification(name: &str, text: &str) -> (String, Vec<u8>) {
    let (header, body) = text
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("{name}: no empty line after the Content-Type"));
    let value = header
        .strip_prefix("Content-Type:")
        .unwrap_or_else(|| panic!("{name}: the first line is not a Content-Type"));
    (value.trim().to_owned(), body.as_bytes().to_vec())
}

fn crlf(body: &[u8]) -> Vec<u8> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Reads a list notification, checks every part an instance names against the codec of its
/// type (nested lists recursively), rebuilds it, and returns it.
fn read_list_notification(name: &str, content_type: &str, body: &[u8]) -> ListBody {
    let list = ListBody::parse(content_type, body, &limits())
        .unwrap_or_else(|e| panic!("{name} is refused: {e}"));
    // The RLMI root round-trips and keeps every name it carried.
    let m = MultipartRelated::parse(content_type, body, &limits()).unwrap();
    let root = std::str::from_utf8(&m.root().unwrap().body).unwrap();
    let rlmi = round_trip(name, root, |t| Rlmi::parse(t, &limits()), Rlmi::to_xml);
    nothing_dropped(name, root, &rlmi.to_xml());
    assert_eq!(rlmi, list.rlmi);
    for (resource, instance) in list.rlmi.instances() {
        let Some(part) = list.state_of(instance) else {
            assert!(instance.cid.is_none(), "{name}: {}", resource.uri);
            continue;
        };
        let what = format!("{name}, the part of {}", resource.uri);
        if part.is("multipart/related") {
            read_list_notification(&what, &part.content_type, &part.body);
            continue;
        }
        let text = std::str::from_utf8(&part.body).unwrap();
        if part.is(impp::doc::pidf::CONTENT_TYPE) {
            let p = round_trip(
                &what,
                text,
                |t| Presence::parse(t, &limits()),
                Presence::to_xml,
            );
            assert_eq!(p.entity, resource.uri, "{what}");
        } else if part.is(DialogInfo::CONTENT_TYPE) {
            let d = round_trip(
                &what,
                text,
                |t| DialogInfo::parse(t, &limits()),
                DialogInfo::to_xml,
            );
            assert_eq!(d.entity, resource.uri, "{what}");
        } else {
            panic!("{what}: no codec for {}", part.content_type);
        }
    }
    // Built again (another boundary, CRLF line ends), it reads back the same.
    let (ct, bytes) = list
        .encode()
        .unwrap_or_else(|e| panic!("{name}: the model does not build: {e}"));
    let again = ListBody::parse(&ct, &bytes, &limits())
        .unwrap_or_else(|e| panic!("{name}: the built body is refused: {e}"));
    assert_eq!(again, list, "{name}: the rebuilt body differs");
    list
}

#[test]
fn list_notifications_read_and_rebuild() {
    let docs = corpus("list-notify");
    let mut lists = BTreeMap::new();
    for (name, text) in &docs {
        let (ct, body) = notification(name, text);
        let list = read_list_notification(name, &ct, &body);
        let wire = read_list_notification(name, &ct, &crlf(&body));
        // CRLF and LF read the same, the parts' own line ends aside.
        assert_eq!(wire.rlmi, list.rlmi, "{name}");
        assert_eq!(wire.rlmi_id, list.rlmi_id, "{name}");
        assert_eq!(wire.parts.len(), list.parts.len(), "{name}");
        for (w, l) in wire.parts.iter().zip(&list.parts) {
            assert_eq!(
                (&w.content_id, &w.content_type, &w.body),
                (&l.content_id, &l.content_type, &crlf(&l.body)),
                "{name}"
            );
        }
        assert_eq!(
            list.rlmi.full_state,
            name.contains("full-state"),
            "{name}: the name says which state it carries"
        );
        lists.insert(name.clone(), list);
    }
    assert!(docs.len() >= 4, "only {} list notifications", docs.len());

    // Kamailio's partial notification folds into its full state: Ben's presence changes,
    // Chloe is authorized; the others stay as they were.
    let mut state = lists["kamailio-rls-presence-full-state.txt"].rlmi.clone();
    let partial = &lists["kamailio-rls-presence-partial-state.txt"].rlmi;
    assert!(state.apply(partial).unwrap());
    assert_eq!(state.version, 1);
    assert_eq!(state.resources.len(), 4);
    let chloe = state.resource("sip:203@pbx.example.test").unwrap();
    assert_eq!(chloe.instances[0].state, InstanceState::Active);
    let ana = state.resource("sip:201@pbx.example.test").unwrap();
    assert_eq!(
        ana.instances[0].cid.as_deref(),
        Some("Hk2sL9aQ@rls.example.test")
    );
}

/// Real devices put vendor elements anywhere. Inserted after any tag of any corpus
/// document, an element of another namespace or an undefined one of the document's own is
/// kept and written back; the document is refused only where a required value can no
/// longer be read (a dialog's or is-composing `<state>` holding an element).
#[test]
fn vendor_elements_anywhere_are_kept() {
    type Check = fn(&str) -> Option<String>;
    fn pidf(t: &str) -> Option<String> {
        Presence::parse(t, &limits()).ok().map(|p| {
            round_trip(
                "pidf",
                t,
                |x| Presence::parse(x, &limits()),
                Presence::to_xml,
            );
            p.to_xml()
        })
    }
    fn dialog(t: &str) -> Option<String> {
        DialogInfo::parse(t, &limits()).ok().map(|d| {
            round_trip(
                "dialog",
                t,
                |x| DialogInfo::parse(x, &limits()),
                DialogInfo::to_xml,
            );
            d.to_xml()
        })
    }
    fn winfo(t: &str) -> Option<String> {
        Watcherinfo::parse(t, &limits()).ok().map(|w| {
            round_trip(
                "winfo",
                t,
                |x| Watcherinfo::parse(x, &limits()),
                Watcherinfo::to_xml,
            );
            w.to_xml()
        })
    }
    fn iscomposing(t: &str) -> Option<String> {
        IsComposing::parse(t).ok().map(|d| {
            round_trip("iscomposing", t, IsComposing::parse, IsComposing::to_xml);
            d.to_xml()
        })
    }
    fn resource_lists(t: &str) -> Option<String> {
        ResourceLists::parse(t, &limits()).ok().map(|d| {
            round_trip(
                "resource-lists",
                t,
                |x| ResourceLists::parse(x, &limits()),
                ResourceLists::to_xml,
            );
            d.to_xml()
        })
    }
    fn rls_services(t: &str) -> Option<String> {
        RlsServices::parse(t, &limits()).ok().map(|d| {
            round_trip(
                "rls-services",
                t,
                |x| RlsServices::parse(x, &limits()),
                RlsServices::to_xml,
            );
            d.to_xml()
        })
    }
    fn rlmi(t: &str) -> Option<String> {
        Rlmi::parse(t, &limits()).ok().map(|d| {
            round_trip("rlmi", t, |x| Rlmi::parse(x, &limits()), Rlmi::to_xml);
            d.to_xml()
        })
    }
    let codecs: [(&str, &str, Check); 7] = [
        ("pidf", ns::PIDF, pidf),
        ("dialog", ns::DIALOG_INFO, dialog),
        ("winfo", ns::WATCHERINFO, winfo),
        ("iscomposing", ns::IM_ISCOMPOSING, iscomposing),
        ("resource-lists", ns::RESOURCE_LISTS, resource_lists),
        ("rls-services", ns::RLS_SERVICES, rls_services),
        ("rlmi", ns::RLMI, rlmi),
    ];
    let (mut tried, mut kept) = (0, 0);
    for (dir, own_ns, check) in codecs {
        for (name, text) in corpus(dir) {
            // After every '>' from the XML declaration to the one that closes the root.
            let root = text.find("?>").map_or(0, |i| i + 2);
            let root_end = text.rfind('>').expect("a root element");
            let places: Vec<usize> = text[root..root_end]
                .match_indices('>')
                .map(|(i, _)| root + i + 1)
                .collect();
            for at in places {
                for insert in [
                    r#"<v:hint xmlns:v="urn:example:corpus" v:n="1">kept</v:hint>"#.to_owned(),
                    format!(r#"<o:undefined xmlns:o="{own_ns}">kept</o:undefined>"#),
                ] {
                    let mut doc = text.clone();
                    doc.insert_str(at, &insert);
                    tried += 1;
                    if let Some(written) = check(&doc) {
                        kept += 1;
                        assert!(
                            written.contains(">kept<"),
                            "{name}: the element inserted at byte {at} was dropped\n{written}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        kept * 20 >= tried * 19,
        "only {kept} of {tried} documents with a vendor element are read"
    );
}

#[test]
fn refused_documents_stay_refused() {
    type Parse = fn(&str) -> impp::Result<()>;
    let codecs: [(&str, Parse); 8] = [
        ("pidf", |t| Presence::parse(t, &limits()).map(drop)),
        ("dialog", |t| DialogInfo::parse(t, &limits()).map(drop)),
        ("winfo", |t| Watcherinfo::parse(t, &limits()).map(drop)),
        ("iscomposing", |t| IsComposing::parse(t).map(drop)),
        ("resource-lists", |t| {
            ResourceLists::parse(t, &limits()).map(drop)
        }),
        ("rls-services", |t| {
            RlsServices::parse(t, &limits()).map(drop)
        }),
        ("rlmi", |t| Rlmi::parse(t, &limits()).map(drop)),
        ("list-notify", |t| {
            let (ct, body) = notification("refused", t);
            ListBody::parse(&ct, &body, &limits()).map(drop)
        }),
    ];
    let mut count = 0;
    for (dir, parse) in codecs {
        for (name, text) in corpus(&format!("refused/{dir}")) {
            let result = parse(&text);
            let expected = match name.split('-').next() {
                Some("malformed") => matches!(result, Err(Error::Malformed(_))),
                Some("unsafe") => matches!(result, Err(Error::UnsafeXml(_))),
                Some("too") => matches!(result, Err(Error::TooLarge(_))),
                _ => panic!("refused/{dir}/{name}: the name must start with malformed-, unsafe- or too-large-"),
            };
            assert!(expected, "refused/{dir}/{name}: got {result:?}");
            count += 1;
        }
    }
    assert!(count >= 25, "only {count} refused documents");
}

#[test]
fn documents_over_the_size_limit_are_refused() {
    let padding = " ".repeat(Limits::DEFAULT.max_bytes);
    for (dir, package) in [
        ("pidf", Package::Presence),
        ("dialog", Package::Dialog),
        ("winfo", Package::PresenceWinfo),
        ("mwi", Package::MessageSummary),
    ] {
        for (name, text) in corpus(dir) {
            let big = format!("{text}{padding}");
            assert!(
                matches!(package.parse(&big, &limits()), Err(Error::TooLarge(_))),
                "{dir}/{name} padded past the limit"
            );
        }
    }
    type Parse = fn(&str) -> impp::Result<()>;
    let codecs: [(&str, Parse); 4] = [
        ("resource-lists", |t| {
            ResourceLists::parse(t, &limits()).map(drop)
        }),
        ("rls-services", |t| {
            RlsServices::parse(t, &limits()).map(drop)
        }),
        ("rlmi", |t| Rlmi::parse(t, &limits()).map(drop)),
        // The padding lands in the epilogue, after the close delimiter.
        ("list-notify", |t| {
            let (ct, body) = notification("padded", t);
            ListBody::parse(&ct, &body, &limits()).map(drop)
        }),
    ];
    for (dir, parse) in codecs {
        for (name, text) in corpus(dir) {
            let big = format!("{text}{padding}");
            assert!(
                matches!(parse(&big), Err(Error::TooLarge(_))),
                "{dir}/{name} padded past the limit"
            );
        }
    }
}
