//! URI parsing, canonical form and comparison through the public API.

use std::collections::HashSet;

use impp::uri::{Scheme, Uri, MAX_URI_LEN};
use impp::Error;

fn uri(s: &str) -> Uri {
    Uri::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn invalid(s: &str) -> String {
    match Uri::parse(s) {
        Err(Error::InvalidUri(msg)) => msg,
        other => panic!("{s:?} should be InvalidUri, got {other:?}"),
    }
}

/// Every URI must print as its canonical form, and that form must parse back to an equal URI
/// that prints the same.
fn assert_round_trip(u: &Uri) {
    let text = u.to_string();
    let again = Uri::parse(&text).unwrap_or_else(|e| panic!("canonical {text:?} re-parses: {e}"));
    assert_eq!(&again, u, "{text}");
    assert_eq!(again.to_string(), text);
    assert_eq!(u.canonical(), text);
}

#[test]
fn real_world_forms_parse_and_round_trip() {
    let cases = [
        // What phones put in From/To/Contact, without display names.
        ("sip:alice@example.test", "sip:alice@example.test"),
        ("sip:1001@192.168.1.20", "sip:1001@192.168.1.20"),
        ("sip:1001@192.168.1.20:5062", "sip:1001@192.168.1.20:5062"),
        (
            "sip:1001@10.0.0.5:5060;transport=udp",
            "sip:1001@10.0.0.5;transport=udp",
        ),
        (
            "sip:bob@pbx.example.test;transport=TCP",
            "sip:bob@pbx.example.test;transport=TCP",
        ),
        (
            "sip:+12125550100@gw.example.test;user=phone",
            "sip:+12125550100@gw.example.test;user=phone",
        ),
        ("sip:*97@192.168.1.1", "sip:*97@192.168.1.1"),
        ("sip:proxy.example.test;lr", "sip:proxy.example.test;lr"),
        ("sip:registrar.example.test", "sip:registrar.example.test"),
        ("sips:alice@example.test:5061", "sips:alice@example.test"),
        (
            "sips:alice@example.test:5060",
            "sips:alice@example.test:5060",
        ),
        ("SIP:Alice@EXAMPLE.Test", "sip:Alice@example.test"),
        ("Sips:bob@Host.Example.TEST", "sips:bob@host.example.test"),
        ("sip:alice@[::1]:5070", "sip:alice@[::1]:5070"),
        (
            "sip:alice@[2001:DB8:0:0:0:0:0:1]",
            "sip:alice@[2001:db8::1]",
        ),
        (
            "sip:[fe80::1]:5060;transport=tcp",
            "sip:[fe80::1];transport=tcp",
        ),
        (
            "sip:alice:secret@example.test;transport=tls",
            "sip:alice:secret@example.test;transport=tls",
        ),
        ("sip:%61lice@example.test", "sip:alice@example.test"),
        ("sip:a%2fb%3bc@example.test", "sip:a%2Fb%3Bc@example.test"),
        (
            "sip:alice;day=tuesday@example.test",
            "sip:alice;day=tuesday@example.test",
        ),
        (
            "sip:alice@example.test;Transport=tcp;LR",
            "sip:alice@example.test;transport=tcp;lr",
        ),
        (
            "sip:alice@example.test;maddr=[2001:db8::9]",
            "sip:alice@example.test;maddr=[2001:db8::9]",
        ),
        (
            "sip:alice@example.test?subject=project%20x&priority=urgent",
            "sip:alice@example.test?subject=project%20x&priority=urgent",
        ),
        ("sip:alice@example.test.", "sip:alice@example.test."),
        ("sip:alice@010.001.000.007", "sip:alice@10.1.0.7"),
        (
            "sip:alice@a-b.example-1.test",
            "sip:alice@a-b.example-1.test",
        ),
        (
            "sip:user_1.x~y!z@example.test",
            "sip:user_1.x~y!z@example.test",
        ),
        ("sip:alice@host", "sip:alice@host"),
        // pres: and im: (RFC 3859, 3860).
        ("pres:alice@example.test", "pres:alice@example.test"),
        ("PRES:Alice@Example.TEST", "pres:Alice@example.test"),
        ("im:bob@example.test", "im:bob@example.test"),
        (
            "im:first.last+tag@example.test?subject=hi",
            "im:first.last+tag@example.test?subject=hi",
        ),
        ("pres:%62ob@example.test", "pres:bob@example.test"),
        // tel: (RFC 3966).
        ("tel:+1-201-555-0123", "tel:+12015550123"),
        ("tel:+1.(201).555.0123;ext=1-2", "tel:+12015550123;ext=12"),
        (
            "tel:7042;phone-context=Example.COM",
            "tel:7042;phone-context=example.com",
        ),
        (
            "tel:863-1234;phone-context=+1-914-555",
            "tel:8631234;phone-context=+1914555",
        ),
        (
            "tel:*21%23;phone-context=example.test",
            "tel:*21%23;phone-context=example.test",
        ),
        (
            "tel:ab-cd;phone-context=example.test",
            "tel:ABCD;phone-context=example.test",
        ),
        (
            "TEL:+4930123456;Foo=bar;ISUB=12;ext=9",
            "tel:+4930123456;isub=12;ext=9;foo=bar",
        ),
    ];
    for (input, canonical) in cases {
        let u = uri(input);
        assert_eq!(u.to_string(), canonical, "{input}");
        assert_round_trip(&u);
    }
}

#[test]
fn accessors_give_the_parts() {
    let u = uri("SIPS:Bob:pw@Example.TEST:5071;Transport=TCP;lr?Subject=Hi&x=");
    assert_eq!(u.scheme(), Scheme::Sips);
    assert_eq!(u.scheme().as_str(), "sips");
    assert_eq!(u.user(), Some("Bob"));
    assert_eq!(u.password(), Some("pw"));
    assert_eq!(u.host(), "example.test");
    assert_eq!(u.port(), Some(5071));
    assert_eq!(u.port_or_default(), Some(5071));
    assert_eq!(
        u.params(),
        &[
            ("transport".to_string(), Some("TCP".to_string())),
            ("lr".to_string(), None)
        ]
    );
    assert_eq!(u.param("TRANSPORT"), Some("TCP"));
    assert_eq!(u.param("lr"), Some(""));
    assert_eq!(u.param("maddr"), None);
    assert_eq!(u.header("subject"), Some("Hi"));
    assert_eq!(u.header("x"), Some(""));
    assert_eq!(u.headers().len(), 2);

    let d = uri("sip:example.test:5060");
    assert_eq!(d.user(), None);
    assert_eq!(d.port(), None);
    assert_eq!(d.port_or_default(), Some(5060));
    assert_eq!(uri("sips:x@y").port_or_default(), Some(5061));

    let six = uri("sip:alice@[::1]:5070");
    assert_eq!(six.host(), "[::1]");
    assert_eq!(six.port(), Some(5070));

    let t = uri("tel:+1-201-555-0123;ext=42");
    assert_eq!(t.scheme(), Scheme::Tel);
    assert_eq!(t.user(), Some("+12015550123"));
    assert_eq!(t.host(), "");
    assert_eq!(t.port_or_default(), None);
    assert_eq!(t.param("ext"), Some("42"));

    let local = uri("tel:*21%23;phone-context=example.test");
    assert_eq!(local.user(), Some("*21#"));

    let p = uri("pres:alice@example.test");
    assert_eq!(
        (p.scheme(), p.user(), p.host()),
        (Scheme::Pres, Some("alice"), "example.test")
    );
    assert_eq!(Scheme::Im.to_string(), "im");
}

#[test]
fn from_str_and_try_from() {
    let a: Uri = "sip:alice@example.test".parse().unwrap();
    let b = Uri::try_from("sip:alice@EXAMPLE.test").unwrap();
    assert_eq!(a, b);
    assert!("nonsense".parse::<Uri>().is_err());
}

#[test]
fn equal_uris() {
    let pairs = [
        ("sip:alice@example.test", "SIP:alice@EXAMPLE.TEST"),
        ("sip:alice@example.test", "sip:alice@example.test:5060"),
        ("sips:alice@example.test", "sips:alice@example.test:5061"),
        ("sip:%61lice@example.test", "sip:alice@example.test"),
        ("sip:a%3bb@example.test", "sip:a%3Bb@example.test"),
        (
            "sip:alice@example.test;transport=tcp;lr",
            "sip:alice@example.test;lr;transport=tcp",
        ),
        (
            "sip:alice@example.test;transport=TCP",
            "sip:alice@example.test;TRANSPORT=tcp",
        ),
        (
            "sip:alice@example.test;foo=%61",
            "sip:alice@example.test;foo=a",
        ),
        (
            "sip:alice@example.test?a=1&b=2",
            "sip:alice@example.test?b=2&A=1",
        ),
        ("sip:alice@[::1]:5070", "sip:alice@[0:0:0:0:0:0:0:1]:5070"),
        ("sip:alice@[2001:DB8::1]", "sip:alice@[2001:db8::1]"),
        ("sip:alice@192.168.001.010", "sip:alice@192.168.1.10"),
        ("pres:alice@example.test", "pres:alice@Example.Test"),
        ("tel:+1-201-555-0123", "tel:+12015550123"),
        ("tel:+1(201)555.0123", "tel:+12015550123"),
        (
            "tel:7042;phone-context=example.com",
            "tel:7042;PHONE-CONTEXT=EXAMPLE.COM",
        ),
        (
            "tel:+12015550123;ext=1;isub=2",
            "tel:+12015550123;isub=2;ext=1",
        ),
        ("tel:ab;phone-context=x.test", "tel:AB;phone-context=x.test"),
    ];
    for (a, b) in pairs {
        let (ua, ub) = (uri(a), uri(b));
        assert_eq!(ua, ub, "{a} == {b}");
        let set: HashSet<Uri> = [ua.clone(), ub.clone()].into_iter().collect();
        assert_eq!(set.len(), 1, "{a} and {b} hash alike");
        assert_eq!(ua.aor(), ub.aor());
    }
}

#[test]
fn different_uris() {
    let pairs = [
        ("sip:alice@example.test", "sip:Alice@example.test"),
        ("sip:alice@example.test", "sips:alice@example.test"),
        ("sip:alice@example.test", "pres:alice@example.test"),
        ("sip:alice@example.test", "sip:alice@example.test:5070"),
        ("sip:alice@example.test:5061", "sip:alice@example.test"),
        ("sip:alice@example.test", "sip:alice@example.test.org"),
        ("sip:alice@example.test", "sip:alice:pw@example.test"),
        ("sip:alice:pw@example.test", "sip:alice:PW@example.test"),
        (
            "sip:alice@example.test",
            "sip:alice@example.test;transport=tcp",
        ),
        (
            "sip:alice@example.test;transport=tcp",
            "sip:alice@example.test;transport=udp",
        ),
        ("sip:alice@example.test;lr", "sip:alice@example.test;lr=on"),
        ("sip:alice@example.test", "sip:alice@example.test?subject=x"),
        ("sip:a%3Bb@example.test", "sip:a;b@example.test"),
        ("sip:example.test", "sip:alice@example.test"),
        ("tel:+12015550123", "tel:+12015550124"),
        (
            "tel:7042;phone-context=a.test",
            "tel:7042;phone-context=b.test",
        ),
        ("tel:+12015550123", "tel:+12015550123;ext=1"),
        ("tel:+12015550123", "sip:+12015550123@gw.test;user=phone"),
        ("pres:alice@example.test", "im:alice@example.test"),
    ];
    for (a, b) in pairs {
        assert_ne!(uri(a), uri(b), "{a} != {b}");
    }
}

#[test]
fn address_of_record_drops_port_params_headers() {
    let cases = [
        ("sip:alice@example.test", "sip:alice@example.test"),
        (
            "SIP:alice:pw@EXAMPLE.test:5070;transport=tcp?subject=x",
            "sip:alice@example.test",
        ),
        ("sips:bob@[2001:DB8::1]:5071;lr", "sips:bob@[2001:db8::1]"),
        ("sip:example.test;lr", "sip:example.test"),
        (
            "pres:alice@Example.test?subject=x",
            "pres:alice@example.test",
        ),
        ("im:alice@example.test", "im:alice@example.test"),
        ("tel:+1-201-555-0123;ext=7", "tel:+12015550123"),
        (
            "tel:70-42;ext=1;phone-context=Example.com",
            "tel:7042;phone-context=example.com",
        ),
        (
            "tel:*21#;phone-context=x.test",
            "tel:*21%23;phone-context=x.test",
        ),
    ];
    for (input, aor) in cases {
        assert_eq!(uri(input).aor(), aor, "{input}");
    }
    // The aor of a sip/pres/im/tel URI is itself a URI that parses.
    for (input, _) in cases {
        let aor = uri(input).aor();
        assert_eq!(uri(&aor).aor(), aor);
    }
}

#[test]
fn malformed_uris_are_invalid_uri_naming_the_problem() {
    // (input, a fragment the message must contain)
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("alice@example.test", "missing scheme"),
        ("<sip:alice@example.test>", "angle brackets"),
        ("http://example.test/", "unknown scheme \"http\""),
        ("mailto:alice@example.test", "unknown scheme \"mailto\""),
        ("sip:", "nothing after sip:"),
        ("sip:alice@", "missing host"),
        ("sip:alice@:5060", "missing host"),
        ("sip:;transport=tcp", "missing host"),
        ("sip:@example.test", "empty user"),
        ("sip::pw@example.test", "empty user"),
        ("sip:alice@example.test:99999", "bad port \"99999\""),
        ("sip:alice@example.test:0", "bad port \"0\""),
        ("sip:alice@example.test:", "empty port"),
        ("sip:alice@example.test:50x0", "bad port \"50x0\""),
        ("sip:alice@example.test:123456", "bad port"),
        ("sip:alice@[::1", "no ']'"),
        ("sip:alice@[::g]", "bad IPv6 address \"[::g]\""),
        ("sip:alice@[1:2:3:4:5:6:7:8:9]", "bad IPv6"),
        ("sip:alice@[::1]x", "after IPv6"),
        ("sip:alice@::1", "enclosed in brackets"),
        ("sip:alice@2001:db8::1", "enclosed in brackets"),
        ("sip:alice@256.1.1.1", "bad IPv4 address \"256.1.1.1\""),
        ("sip:alice@1.2.3", "bad IPv4"),
        ("sip:alice@exa_mple.test", "bad host name"),
        ("sip:alice@-example.test", "bad host name"),
        ("sip:alice@example..test", "bad host name"),
        ("sip:alice@example.test/path", "bad host name"),
        ("sip:ali ce@example.test", "whitespace"),
        (" sip:alice@example.test", "whitespace"),
        ("sip:alice@example.test ", "whitespace"),
        ("sip:alice@example.test\r\n", "whitespace"),
        ("sip:alice\0@example.test", "NUL"),
        ("sip:al\u{7f}ice@example.test", "control character"),
        ("sip:jörg@example.test", "non-ASCII"),
        ("sip:al%4ice@example.test", "bad percent-escape \"%4i\""),
        ("sip:alice%@example.test", "bad percent-escape \"%\""),
        ("sip:alice%zz@example.test", "bad percent-escape"),
        ("sip:a<b@example.test", "illegal character '<' in user part"),
        ("sip:a\"b@example.test", "illegal character"),
        ("sip:alice:p@ss@example.test", "illegal character '@'"),
        ("sip:alice@example.test;", "empty parameter name"),
        ("sip:alice@example.test;;lr", "empty parameter name"),
        (
            "sip:alice@example.test;transport=",
            "empty value of parameter \"transport\"",
        ),
        ("sip:alice@example.test;lr;LR", "duplicate parameter \"lr\""),
        ("sip:alice@example.test;a=b@c", "illegal character '@'"),
        ("sip:alice@example.test?", "has no '='"),
        ("sip:alice@example.test?subject", "has no '='"),
        ("sip:alice@example.test?=x", "empty header name"),
        ("sip:alice@example.test?a=1&&b=2", "has no '='"),
        ("sip:alice@example.test?a=<x>", "illegal character '<'"),
        ("pres:alice", "needs user@host"),
        ("pres:@example.test", "empty user"),
        ("pres:alice@example.test:5060", "no port"),
        ("pres:alice@example.test;x=y", "no parameters"),
        ("im:alice@", "missing host"),
        ("im:al<ice@example.test", "illegal character"),
        ("tel:", "nothing after tel:"),
        ("tel:;ext=1", "missing telephone number"),
        ("tel:+", "has no digits"),
        ("tel:+1-x01", "illegal character 'x'"),
        ("tel:7042", "needs a ;phone-context"),
        (
            "tel:+12015550123;phone-context=example.com",
            "takes no ;phone-context",
        ),
        ("tel:7042;phone-context=", "empty value"),
        ("tel:7042;phone-context=bad_domain", "bad phone-context"),
        ("tel:+12015550123;ext=abc", "illegal character 'a' in ext"),
        ("tel:+12015550123;ext", "needs a value"),
        ("tel:+12015550123;ext=1;ext=2", "duplicate parameter"),
        ("tel:+12015550123;foo_bar=1", "bad tel parameter name"),
        ("tel:+12015550123?x=y", "illegal character '?'"),
        ("tel:+12015550123@example.test", "illegal character '@'"),
        ("tel:12g4;phone-context=x.test", "illegal character 'g'"),
    ];
    for (input, fragment) in cases {
        let msg = invalid(input);
        assert!(
            msg.contains(fragment),
            "message for {input:?} should contain {fragment:?}: {msg}"
        );
    }
}

#[test]
fn error_messages_quote_the_input() {
    let msg = invalid("sip:alice@example.test:99999");
    assert!(msg.contains("\"sip:alice@example.test:99999\""), "{msg}");
    let err = Uri::parse("http://x").unwrap_err();
    assert_eq!(err.code(), -2);
    assert!(err.to_string().starts_with("invalid URI: "), "{err}");
}

#[test]
fn length_limit() {
    let host = "a".repeat(MAX_URI_LEN - "sip:x@".len());
    let at_limit = format!("sip:x@{host}");
    assert_eq!(at_limit.len(), MAX_URI_LEN);
    assert!(Uri::parse(&at_limit).is_ok());
    let over = format!("{at_limit}a");
    let msg = invalid(&over);
    assert!(msg.contains("2049 bytes") && msg.contains("2048"), "{msg}");
    // The message does not echo the whole input back.
    assert!(msg.len() < 300, "{msg}");
    // A tel `#` is written `%23`: an input under the limit whose canonical form is over it
    // is refused, so that every accepted URI's canonical form is accepted too.
    let hashes = format!("tel:{};phone-context=x.test", "#".repeat(1000));
    assert!(invalid(&hashes).contains("canonical form"));
    let some = format!("tel:{};phone-context=x.test", "#".repeat(600));
    assert_round_trip(&uri(&some));
    let huge = "sip:".to_string() + &"a".repeat(1 << 20);
    assert!(invalid(&huge).contains("exceeds the limit"));
}

#[test]
fn uris_are_usable_as_map_keys() {
    let mut set = HashSet::new();
    for s in [
        "sip:alice@example.test",
        "SIP:alice@Example.Test:5060",
        "sip:%61lice@example.test",
        "sip:bob@example.test",
        "tel:+1-201-555-0123",
        "tel:+12015550123",
    ] {
        set.insert(uri(s));
    }
    assert_eq!(set.len(), 3);
}

/// A small deterministic stand-in for the fuzz target: mutate real URIs and check that
/// whatever parses re-parses from its canonical text to an equal URI.
#[test]
fn mutated_inputs_either_fail_cleanly_or_round_trip() {
    let seeds = [
        "sip:alice:pw@[2001:db8::1]:5070;transport=tcp;lr?subject=a%20b&x=",
        "sips:%61lice@Example.TEST:5061;maddr=10.0.0.1",
        "pres:alice@example.test?subject=hi",
        "im:a.b+c@example.test",
        "tel:+1-(201)-555.0123;isub=1;ext=2-3;foo=bar",
        "tel:*21%23;phone-context=+1-914",
        "tel:ab-cd;phone-context=Example.com",
    ];
    let alphabet = b"aZ09:;@?&=%[]+-.()#*~!$,/<> \"";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..20_000 {
        let mut bytes = seeds[next(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len() + 1);
            let c = alphabet[next(alphabet.len())];
            match next(3) {
                0 if at < bytes.len() => bytes[at] = c,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, c),
            }
        }
        let text = String::from_utf8(bytes).unwrap();
        match Uri::parse(&text) {
            Ok(u) => assert_round_trip(&u),
            Err(Error::InvalidUri(msg)) => assert!(!msg.is_empty()),
            Err(other) => panic!("{text:?} gave {other:?}"),
        }
    }
}
