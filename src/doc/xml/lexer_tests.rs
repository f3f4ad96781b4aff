//! The tokenizer's tests ([`super::super::xml_lexer`]), read through the tree it feeds: names,
//! declarations, references, namespaces, limits, and the differential test against quick-xml.
//! They live under `xml` so that the tokenizer never imports the tree built on it.

use super::{Attribute, Element, Limits, XML_NS};
use crate::error::Error;

fn ok(doc: &str) -> Element {
    Element::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{doc:?}: {e}"))
}

fn malformed(doc: &str, needle: &str) {
    match Element::parse(doc, &Limits::DEFAULT) {
        Err(Error::Malformed(m)) => {
            assert!(m.contains(needle), "{doc:?}: {m:?} lacks {needle:?}")
        }
        other => panic!("{doc:?}: expected Malformed, got {other:?}"),
    }
}

fn refused(doc: &str) {
    assert!(
        matches!(
            Element::parse(doc, &Limits::DEFAULT),
            Err(Error::UnsafeXml(_))
        ),
        "{doc:?}"
    );
}

#[test]
fn xml_declaration() {
    ok(r#"<?xml version="1.0" encoding="UTF-8"?><a/>"#);
    ok("<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n<a/>");
    ok("<?xml version=\"1.0\"?><a/>");
    ok("\u{FEFF}<?xml version=\"1.0\"?><a/>");
    malformed("<?xml version='1.1'?><a/>", "version '1.1'");
    // Declared Latin-1 or ASCII, written in ASCII (as Asterisk does): the same text.
    ok("<?xml version='1.0' encoding='ISO-8859-1'?><a>b</a>");
    ok("<?xml version='1.0' encoding='us-ascii'?><a/>");
    malformed(
        "<?xml version='1.0' encoding='ISO-8859-1'?><a>\u{e9}</a>",
        "ASCII text",
    );
    malformed("<?xml version='1.0' encoding='UTF-16'?><a/>", "UTF-8 only");
    malformed("<?xml encoding='UTF-8' version='1.0'?><a/>", "encoding");
    malformed("<?xml?><a/>", "version");
    malformed(" <?xml version='1.0'?><a/>", "very start");
    malformed("<a/><?xml version='1.0'?>", "very start");
    malformed("<a><?XmL x?></a>", "reserved");
    malformed("<?xml version='1.0'", "truncated");
}

#[test]
fn names() {
    let e = ok("<é.x-1 _a='1' b:c='2' xmlns:b='urn:b'><ｘ/></é.x-1>");
    assert_eq!(e.name, "é.x-1");
    assert_eq!(e.children[0].name, "ｘ");
    malformed("<v:h:x xmlns:v='urn:v'/>", "more than one colon");
    malformed("<a xml\"lang='x'/>", "expected '='");
    malformed("<:a/>", "expected an element name");
    malformed("<a:/>", "lacks a local part");
    malformed("<a b:='1'/>", "lacks a local part");
    malformed("<1a/>", "expected an element name");
    malformed("<a -b='1'/>", "expected an attribute name");
    malformed("<\u{B7}b/>", "expected an element name");
    malformed("<a b:1='1' xmlns:b='urn:b'/>", "lacks a local part");
    ok("<a\u{B7}b\u{300}/>");
}

#[test]
fn tags_and_attributes() {
    malformed("<a></b>", "does not match <a>");
    malformed("<a><b></a></b>", "does not match <b>");
    malformed("<a></a >x", "outside the root");
    ok("<a></a \n>");
    malformed("<a b='1'c='2'/>", "expected whitespace");
    malformed("<a b=1/>", "not quoted");
    malformed("<a b='<'/>", "'<' is not allowed");
    malformed("<a b='1' b='2'/>", "'b' repeated");
    malformed(
        "<a p:b='1' q:b='2' xmlns:p='urn:x' xmlns:q='urn:x'/>",
        "repeated",
    );
    malformed("<a xmlns:p='urn:x' xmlns:p='urn:y'/>", "'xmlns:p' repeated");
    malformed("<a b='1' / >", "expected '/>'");
    malformed("<a b='1'", "truncated");
    malformed("<a b='1", "truncated");
    malformed("<a b", "truncated");
    let e = ok("<a b=\"it's\" c='say \"x\"' d='1\t2\n3\r\n4\r5' e='&#9;&#10;&#13;'/>");
    assert_eq!(e.attribute("", "b"), Some("it's"));
    assert_eq!(e.attribute("", "c"), Some("say \"x\""));
    assert_eq!(e.attribute("", "d"), Some("1 2 3 4 5"));
    assert_eq!(e.attribute("", "e"), Some("\t\n\r"));
    malformed("<a b='\u{1}'/>", "U+0001");
}

#[test]
fn roots_and_text() {
    malformed("", "no root");
    malformed("<?xml version='1.0'?> <!-- c -->", "no root");
    malformed("<a/><b/>", "more than one root");
    malformed("x<a/>", "outside the root");
    malformed("<a/>&#32;", "outside the root");
    malformed("<![CDATA[x]]><a/>", "CDATA outside");
    ok(" \r\n\t<a/>\n<!-- after --> <?pi after?>\n");
    malformed("<a>x]]>y</a>", "']]>'");
    assert_eq!(ok("<a>]] ]>]</a>").text, "]] ]>]");
    assert_eq!(ok("<a>1\r\n2\r3\n</a>").text, "1\n2\n3\n");
    assert_eq!(
        ok("<a><![CDATA[<&>]]]]>&gt;<![CDATA[\r\n]]></a>").text,
        "<&>]]>\n"
    );
    malformed("<a>\u{0}</a>", "U+0000");
    malformed("<a>\u{1b}</a>", "U+001B");
    malformed("<a>\u{FFFE}</a>", "U+FFFE");
    malformed("<a b='\u{FFFF}'/>", "U+FFFF");
    assert_eq!(
        ok("<a>\u{FFFD}\u{EFFF}\u{85}</a>").text,
        "\u{FFFD}\u{EFFF}\u{85}"
    );
    malformed("<a><b>", "<b> is not closed");
    malformed("<a>text", "<a> is not closed");
    malformed("</a>", "end tag outside");
}

#[test]
fn comments_and_pis() {
    assert_eq!(ok("<a>x<!-- <b> & -->y<!---->z</a>").text, "xyz");
    malformed("<a><!-- a -- b --></a>", "'--'");
    malformed("<a><!-- a ---></a>", "'--'");
    malformed("<a><!-- a", "truncated");
    malformed("<a><!-- \u{7} --></a>", "U+0007");
    ok("<a><?target some data?><?t?></a>");
    malformed("<a><?t:x data?></a>", "cannot contain ':'");
    malformed("<a><?t data\u{1}?></a>", "U+0001");
    malformed("<a><? t?></a>", "target");
    malformed("<a><?t", "truncated");
    malformed("<a><!ELEMENT a ANY></a>", "'<!'");
    malformed("<a><![CDATA[x</a>", "truncated");
}

#[test]
fn references() {
    let e = ok("<a b='&lt;&gt;&amp;&quot;&apos;&#65;&#x42;'>&#x1F600;&#9;&#xD7FF;</a>");
    assert_eq!(e.attribute("", "b"), Some("<>&\"'AB"));
    assert_eq!(e.text, "\u{1F600}\t\u{D7FF}");
    for bad in [
        "&#0;",
        "&#x0;",
        "&#xD800;",
        "&#x110000;",
        "&#1;",
        "&#xFFFE;",
        "&#99999999999;",
    ] {
        malformed(&format!("<a>{bad}</a>"), "not an XML character");
    }
    for bad in [
        "&#;", "&#x;", "&#X41;", "&#65", "&#a;", "& ;", "&", "&lt", "&1;",
    ] {
        malformed(&format!("<a>{bad}</a>"), "reference");
    }
    refused("<a>&nbsp;</a>");
    refused("<a b='&ext;'/>");
    refused("<!DOCTYPE a><a/>");
    refused("<a><!DOCTYPE a></a>");
    malformed("<!doctype a><a/>", "'<!'");
}

#[test]
fn namespaces() {
    let e = ok(
        "<p:a xmlns:p='urn:p' xmlns='urn:d' k='1' p:k='2' xml:lang='en'><b xmlns=''/><c/></p:a>",
    );
    assert_eq!(e.namespace, "urn:p");
    assert_eq!(e.attribute("", "k"), Some("1"));
    assert_eq!(e.attribute("urn:p", "k"), Some("2"));
    assert_eq!(e.attribute(XML_NS, "lang"), Some("en"));
    assert_eq!(e.children[0].namespace, "");
    assert_eq!(e.children[1].namespace, "urn:d");
    // Scope ends with the element.
    malformed(
        "<a><b xmlns:p='urn:p'/><p:c/></a>",
        "prefix 'p' is not declared",
    );
    malformed("<a p:b='1'/>", "prefix 'p' is not declared");
    ok(&format!("<a xmlns:xml='{XML_NS}'/>"));
    malformed("<a xmlns:xml='urn:x'/>", "'xml'");
    malformed(&format!("<a xmlns:x='{XML_NS}'/>"), "'xml'");
    malformed(&format!("<a xmlns='{XML_NS}'/>"), "'xml'");
    malformed("<a xmlns:xmlns='urn:x'/>", "'xmlns'");
    malformed(
        "<a xmlns:x='http://www.w3.org/2000/xmlns/'/>",
        "cannot be bound",
    );
    malformed("<a xmlns:p=''/>", "cannot be undeclared");
    malformed("<xmlns:a/>", "prefix 'xmlns' is not declared");
    for uri in [
        "urn:x>",
        "urn:&lt;x",
        "urn:&#10;",
        "urn:&#9;x",
        "urn:&#x7F;&#1;",
    ] {
        let doc = format!("<a xmlns:sa='{uri}'/>");
        assert!(
            matches!(
                Element::parse(&doc, &Limits::DEFAULT),
                Err(Error::Malformed(_))
            ),
            "{doc}"
        );
    }
    // The same name through two prefixes is one attribute, twice.
    malformed(
        "<a xmlns:p='urn:x' xmlns:q='urn:x' p:k='1' q:k='2'/>",
        "repeated",
    );
}

#[test]
fn limits_apply() {
    let limits = Limits {
        max_bytes: 1000,
        max_depth: 3,
    };
    assert!(Element::parse("<a><b><c/></b></a>", &limits).is_ok());
    assert!(matches!(
        Element::parse("<a><b><c><d/></c></b></a>", &limits),
        Err(Error::TooLarge(_))
    ));
    let many: String = (0..300).map(|i| format!("<e xmlns='urn:{i}'/>")).collect();
    let doc = format!("<a>{many}</a>");
    let big = Limits {
        max_bytes: 1 << 20,
        max_depth: 8,
    };
    assert!(matches!(
        Element::parse(&doc, &big),
        Err(Error::TooLarge(_))
    ));
}

/// quick-xml's reading of `input` as an [`Element`], `None` where it refuses it. quick-xml
/// checks less (names, characters, comments, namespace rules), so only its refusals and
/// its content are compared, not its acceptance.
fn oracle(input: &str) -> Option<Element> {
    use quick_xml::events::Event as Q;
    use quick_xml::name::ResolveResult as R;
    fn unescape(raw: &str, attr: bool) -> Option<String> {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(c) = rest.chars().next() {
            if c == '&' {
                let semi = rest.find(';')?;
                let name = &rest[1..semi];
                out.push(match name {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => {
                        let v = match name.strip_prefix("#x") {
                            Some(h) => u32::from_str_radix(h, 16).ok()?,
                            None => name.strip_prefix('#')?.parse().ok()?,
                        };
                        char::from_u32(v)?
                    }
                });
                rest = &rest[semi + 1..];
                continue;
            }
            rest = &rest[c.len_utf8()..];
            if c == '\r' && rest.starts_with('\n') {
                rest = &rest[1..];
            }
            out.push(match c {
                '\t' | '\n' | '\r' if attr => ' ',
                '\r' => '\n',
                c => c,
            });
        }
        Some(out)
    }
    fn finish(mut e: Element) -> Element {
        if !e.children.is_empty() && e.text.trim().is_empty() {
            e.text.clear();
        }
        e
    }
    let mut r = quick_xml::NsReader::from_str(input);
    r.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let (res, ev) = r.read_resolved_event().ok()?;
        let ns = match res {
            R::Bound(n) => unescape(n.0, true)?,
            R::Unbound => String::new(),
            R::Unknown(_) => return None,
        };
        match ev {
            Q::Start(ref t) | Q::Empty(ref t) => {
                if root.is_some() {
                    return None;
                }
                let mut e = Element {
                    namespace: ns,
                    name: t.local_name().into_inner().to_owned(),
                    ..Element::default()
                };
                for a in t.attributes() {
                    let a = a.ok()?;
                    if a.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (res, local) = r.resolver().resolve_attribute(a.key);
                    let namespace = match res {
                        R::Bound(n) => unescape(n.0, true)?,
                        R::Unbound => String::new(),
                        R::Unknown(p) if p == "xml" => XML_NS.to_owned(),
                        R::Unknown(_) => return None,
                    };
                    let name = local.into_inner().to_owned();
                    let value = unescape(&a.value, true)?;
                    if e.attributes
                        .iter()
                        .any(|x| x.namespace == namespace && x.name == name)
                    {
                        return None;
                    }
                    e.attributes.push(Attribute {
                        namespace,
                        name,
                        value,
                    });
                }
                if matches!(ev, Q::Empty(_)) {
                    match stack.last_mut() {
                        Some(p) => p.children.push(finish(e)),
                        None => root = Some(finish(e)),
                    }
                } else {
                    stack.push(e);
                }
            }
            Q::End(_) => {
                let e = finish(stack.pop()?);
                match stack.last_mut() {
                    Some(p) => p.children.push(e),
                    None => root = Some(e),
                }
            }
            Q::Text(t) => {
                let raw: &str = &t;
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&unescape(raw, false)?),
                    None if raw.trim().is_empty() => {}
                    None => return None,
                }
            }
            Q::CData(t) => {
                let raw: &str = &t;
                stack
                    .last_mut()?
                    .text
                    .push_str(&raw.replace("\r\n", "\n").replace('\r', "\n"));
            }
            Q::GeneralRef(g) => {
                let raw = format!("&{};", &*g);
                stack.last_mut()?.text.push_str(&unescape(&raw, false)?);
            }
            Q::DocType(_) => return None,
            Q::Decl(_) | Q::Comment(_) | Q::PI(_) => {}
            Q::Eof => break,
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

/// Refusals quick-xml does not make: the stricter rules of this lexer.
const STRICTER: &[&str] = &[
    "name",
    "colon",
    "local part",
    "character",
    "U+",
    "'--'",
    "']]>'",
    "whitespace",
    "'xml'",
    "'xmlns'",
    "undeclared",
    "reference",
    "version",
    "declaration",
    "PI",
    "processing instruction",
    "'<!'",
    "outside the root",
    "not quoted",
    "'<' is not",
    "more than one root",
    "expected '='",
    "'/>'",
    "cannot",
    "truncated",
    "repeated",
    "refused",
    "not declared",
    "does not match",
    "not closed",
    "encoding",
];

#[test]
fn agrees_with_quick_xml() {
    let seeds = [
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:a@b">
<tuple id="t1"><status><basic>open</basic></status><note xml:lang="en">On &amp; off&#x21;</note></tuple>
<dm:person id="p"><dm:note>x</dm:note></dm:person>
</presence>"#,
        "<a xmlns:p='urn:p' p:k='v' k='w'><p:b>t<!-- c --><![CDATA[<x>]]>u</p:b><c/>\r\n</a>",
        "<r xmlns='urn:r'><e xmlns=''>1</e><e a='&lt;&#65;' b=\"'\">2<f/>3</e><?pi x?></r>",
        "<x:a xmlns:x='urn:x' xmlns:y='urn:y' y:a='1' x:a='2'><y:b/><x:c>\t</x:c></x:a>",
    ];
    let alphabet: Vec<char> = "<>/&;:'\"=! ?-[]x#\n\r\tab1é".chars().collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut both, mut stricter, mut total) = (0, 0, 0);
    for round in 0..800 {
        let seed = seeds[round % seeds.len()];
        let mut doc: Vec<char> = seed.chars().collect();
        for _ in 0..=rand(3) {
            let at = rand(doc.len());
            match rand(4) {
                0 => {
                    doc.remove(at);
                }
                1 => doc.insert(at, alphabet[rand(alphabet.len())]),
                2 => doc[at] = alphabet[rand(alphabet.len())],
                _ => {
                    let end = (at + 1 + rand(8)).min(doc.len());
                    let piece: Vec<char> = doc[at..end].to_vec();
                    let to = rand(doc.len());
                    doc.splice(to..to, piece);
                }
            }
        }
        let doc: String = if round < seeds.len() {
            seed.to_owned()
        } else {
            doc.into_iter().collect()
        };
        total += 1;
        let ours = Element::parse(&doc, &Limits::DEFAULT);
        match (ours, oracle(&doc)) {
            (Ok(e), Some(o)) => {
                assert_eq!(e, o, "content differs for {doc:?}");
                both += 1;
            }
            (Ok(e), None) => panic!("accepted what quick-xml refuses: {doc:?} -> {e:?}"),
            (Err(err), Some(_)) => {
                let m = err.to_string();
                assert!(
                    STRICTER.iter().any(|s| m.contains(s)),
                    "refused {doc:?}: {m}"
                );
                stricter += 1;
            }
            (Err(_), None) => {}
        }
    }
    assert!(
        both > 50,
        "only {both} of {total} documents accepted by both"
    );
    assert!(
        stricter < total / 2,
        "{stricter} of {total} refused only here"
    );
}
