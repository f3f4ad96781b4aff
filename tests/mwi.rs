//! Message summaries (RFC 3842) through the public API.

use impp::doc::mwi::{MessageClass, MessageCount, MessageHeaders, MessageSummary, CONTENT_TYPE};
use impp::doc::Limits;
use impp::Error;

fn parse(body: &str) -> MessageSummary {
    MessageSummary::parse(body, &Limits::DEFAULT)
        .unwrap_or_else(|e| panic!("{body:?} should parse: {e}"))
}

fn malformed(body: &str) -> String {
    match MessageSummary::parse(body, &Limits::DEFAULT) {
        Err(Error::Malformed(msg)) => msg,
        other => panic!("{body:?} should be Malformed, got {other:?}"),
    }
}

fn assert_round_trip(m: &MessageSummary) {
    let text = m.to_text();
    assert!(text.ends_with("\r\n"), "{text:?}");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "CRLF only: {text:?}"
    );
    let again = MessageSummary::parse(&text, &Limits::DEFAULT)
        .unwrap_or_else(|e| panic!("{text:?} should re-parse: {e}"));
    assert_eq!(&again, m, "{text}");
    assert_eq!(again.to_text(), text);
}

#[test]
fn content_type() {
    assert_eq!(CONTENT_TYPE, "application/simple-message-summary");
}

#[test]
fn asterisk_style_body() {
    let body = "Messages-Waiting: yes\r\n\
                Message-Account: sip:*97@192.168.1.1\r\n\
                Voice-Message: 3/1 (0/0)\r\n";
    let m = parse(body);
    assert!(m.messages_waiting);
    assert_eq!(m.account.as_deref(), Some("sip:*97@192.168.1.1"));
    assert_eq!(
        m.counts,
        [MessageCount::new(MessageClass::Voice, 3, 1).with_urgent(0, 0)]
    );
    assert!(m.extra_headers.is_empty());
    assert!(m.message_headers.is_empty());
    assert_eq!(m.to_text(), body);
    assert_round_trip(&m);
}

#[test]
fn no_messages_body() {
    let m = parse("Messages-Waiting: no\r\nMessage-Account: sip:1000@10.0.0.1\r\nVoice-Message: 0/0 (0/0)\r\n\r\n");
    assert!(!m.messages_waiting);
    assert_eq!(
        m.count(&MessageClass::Voice).map(|c| (c.new, c.old)),
        Some((0, 0))
    );
    assert_round_trip(&m);
}

#[test]
fn minimal_body_and_builder() {
    let m = parse("Messages-Waiting: no");
    assert_eq!(m, MessageSummary::new(false));
    assert_eq!(
        MessageSummary::new(true).to_text(),
        "Messages-Waiting: yes\r\n"
    );
    assert_round_trip(&MessageSummary::new(true));
}

#[test]
fn kamailio_style_lf_only_with_odd_spacing_and_case() {
    // As relayed by a proxy or produced by a script: LF line ends, odd case and spacing,
    // header order not the RFC one.
    let body = "voice-message:2/8(0/2)\n\
                MESSAGES-WAITING :   YES  \n\
                message-account:\tsip:alice@vm.example.test \n\
                fax-message: 1 / 0\n";
    let m = parse(body);
    assert!(m.messages_waiting);
    assert_eq!(m.account.as_deref(), Some("sip:alice@vm.example.test"));
    assert_eq!(
        m.counts,
        [
            MessageCount::new(MessageClass::Voice, 2, 8).with_urgent(0, 2),
            MessageCount::new(MessageClass::Fax, 1, 0),
        ]
    );
    assert_eq!(
        m.to_text(),
        "Messages-Waiting: yes\r\n\
         Message-Account: sip:alice@vm.example.test\r\n\
         Voice-Message: 2/8 (0/2)\r\n\
         Fax-Message: 1/0\r\n"
    );
    assert_round_trip(&m);
}

#[test]
fn rfc_3842_style_body_with_message_headers() {
    let body = "Messages-Waiting: yes\r\n\
                Message-Account: sip:alice@vmail.example.test\r\n\
                Voice-Message: 4/8 (1/2)\r\n\
                \r\n\
                To: <alice@example.test>\r\n\
                From: <bob@example.test>\r\n\
                Subject: carpool tomorrow?\r\n\
                Date: Sun, 09 May 2004 10:31:51 -0500\r\n\
                Priority: normal\r\n\
                Message-ID: 13784434989@vmail.example.test\r\n\
                Message-Context: voice-message\r\n\
                \r\n\
                From: <carol@example.test>\r\n\
                Subject: lunch\r\n";
    let m = parse(body);
    assert_eq!(m.message_headers.len(), 2);
    let first = &m.message_headers[0];
    assert_eq!(first.get("subject"), Some("carpool tomorrow?"));
    assert_eq!(first.get("Date"), Some("Sun, 09 May 2004 10:31:51 -0500"));
    assert_eq!(first.get("message-context"), Some("voice-message"));
    assert_eq!(first.headers.len(), 7);
    assert_eq!(
        m.message_headers[1].get("From"),
        Some("<carol@example.test>")
    );
    assert_eq!(m.to_text(), body);
    assert_round_trip(&m);
}

#[test]
fn every_class_and_unknown_headers_are_kept() {
    let body = "Messages-Waiting: yes\r\n\
                Voice-Message: 1/2\r\n\
                Fax-Message: 3/4 (1/1)\r\n\
                Pager-Message: 0/1\r\n\
                Multimedia-Message: 5/6\r\n\
                Text-Message: 7/8\r\n\
                None: 9/10\r\n\
                Video-Message: 2/0 (1/0)\r\n\
                X-Vendor-Mailbox: 42\r\n\
                Last-Message: yesterday\r\n\
                X-Empty:\r\n";
    let m = parse(body);
    let classes: Vec<&MessageClass> = m.counts.iter().map(|c| &c.class).collect();
    assert_eq!(
        classes,
        [
            &MessageClass::Voice,
            &MessageClass::Fax,
            &MessageClass::Pager,
            &MessageClass::Multimedia,
            &MessageClass::Text,
            &MessageClass::None,
            &MessageClass::Other("Video-Message".into()),
        ]
    );
    assert_eq!(m.count(&MessageClass::Fax).unwrap().urgent_new, Some(1));
    assert_eq!(m.count(&MessageClass::Text).unwrap().urgent_old, None);
    assert_eq!(
        m.extra_headers,
        [
            ("X-Vendor-Mailbox".to_string(), "42".to_string()),
            ("Last-Message".to_string(), "yesterday".to_string()),
            ("X-Empty".to_string(), String::new()),
        ]
    );
    assert_eq!(m.extra_header("x-vendor-mailbox"), Some("42"));
    assert_eq!(m.to_text(), body);
    assert_round_trip(&m);
    assert_eq!(
        MessageClass::known("TEXT-message"),
        Some(MessageClass::Text)
    );
    assert_eq!(MessageClass::known("video-message"), None);
    assert_eq!(MessageClass::Pager.to_string(), "Pager-Message");
}

#[test]
fn tolerated_variations() {
    // Folded value, leading blank lines, trailing blank lines, whitespace-only separators,
    // several blank lines between message blocks, maximal counts.
    let body = "\r\n\nMessages-Waiting: yes\r\n\
                X-Note: first part\r\n \tsecond part\r\n\
                Voice-Message: 4294967295/0\r\n\
                \x20\t\r\n\
                Subject: a\r\n\
                \r\n\r\n\
                Subject: b\r\n\r\n\r\n";
    let m = parse(body);
    assert_eq!(m.extra_header("X-Note"), Some("first part second part"));
    assert_eq!(m.count(&MessageClass::Voice).unwrap().new, u32::MAX);
    assert_eq!(m.message_headers.len(), 2);
    assert_eq!(m.message_headers[1].get("subject"), Some("b"));
    assert_round_trip(&m);
}

#[test]
fn built_summaries_round_trip() {
    let mut m = MessageSummary::new(true);
    m.account = Some("sip:alice@example.test".into());
    m.counts
        .push(MessageCount::new(MessageClass::Voice, 1, 2).with_urgent(1, 0));
    m.counts.push(MessageCount::new(
        MessageClass::Other("Video-Message".into()),
        3,
        4,
    ));
    m.extra_headers.push(("X-Foo".into(), "bar baz".into()));
    m.message_headers.push(MessageHeaders {
        headers: vec![("From".into(), "<sip:bob@example.test>".into())],
    });
    assert_round_trip(&m);

    // Only one urgent figure: written with the other as zero.
    let mut lone = MessageSummary::new(true);
    let mut c = MessageCount::new(MessageClass::Voice, 1, 0);
    c.urgent_new = Some(1);
    lone.counts.push(c);
    assert!(lone.to_text().contains("Voice-Message: 1/0 (1/0)\r\n"));

    // A line break in a value cannot inject a line.
    let mut evil = MessageSummary::new(false);
    evil.extra_headers
        .push(("X-A".into(), "x\r\nMessages-Waiting: yes".into()));
    let reparsed = MessageSummary::parse(&evil.to_text(), &Limits::DEFAULT).unwrap();
    assert!(!reparsed.messages_waiting);
    assert_eq!(reparsed.extra_headers.len(), 1);

    // Empty message blocks are not written (they would be invisible).
    let mut empty_block = MessageSummary::new(false);
    empty_block.message_headers.push(MessageHeaders::default());
    assert_eq!(empty_block.to_text(), "Messages-Waiting: no\r\n");
}

#[test]
fn malformed_bodies_name_the_problem() {
    // (body, a fragment the message must contain)
    let cases: &[(&str, &str)] = &[
        ("", "Messages-Waiting is required"),
        ("\r\n\r\n", "Messages-Waiting is required"),
        ("Voice-Message: 1/0\r\n", "Messages-Waiting line is missing"),
        (
            "Message-Account: sip:a@b\r\n\r\nMessages-Waiting: yes\r\n",
            "missing",
        ),
        (
            "Messages-Waiting: yes please\r\n",
            "yes or no, not \"yes please\"",
        ),
        ("Messages-Waiting: true\r\n", "not \"true\""),
        ("Messages-Waiting:\r\n", "not \"\""),
        (
            "Messages-Waiting: yes\r\nMessages-Waiting: no\r\n",
            "duplicate Messages-Waiting",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 3/x\r\n",
            "count \"x\" is not a number",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 3/x\r\n",
            "line 2 \"Voice-Message: 3/x\"",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 3\r\n",
            "counts must be new/old",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message:\r\n",
            "counts must be new/old",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: -1/0\r\n",
            "not a number",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: +1/0\r\n",
            "not a number",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 1/2/3\r\n",
            "not a number",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 4294967296/0\r\n",
            "out of range",
        ),
        (
            "Messages-Waiting: yes\r\nFax-Message: 1/0 (99999999999/0)\r\n",
            "out of range",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 1/0 (0/0\r\n",
            "closing ')'",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 1/0 (0/0) extra\r\n",
            "closing ')'",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 1/0 (x/0)\r\n",
            "not a number",
        ),
        (
            "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nvoice-message: 2/0\r\n",
            "duplicate Voice-Message",
        ),
        (
            "Messages-Waiting: yes\r\nMessage-Account:\r\n",
            "Message-Account is empty",
        ),
        (
            "Messages-Waiting: yes\r\nMessage-Account: a\r\nMessage-Account: b\r\n",
            "duplicate Message-Account",
        ),
        (
            "Messages-Waiting: yes\r\nthis is not a header\r\n",
            "line 2 \"this is not a header\": expected 'Name: value'",
        ),
        ("Messages-Waiting: yes\r\n: value\r\n", "bad header name"),
        (
            "Messages-Waiting: yes\r\nBad Name: value\r\n",
            "bad header name \"Bad Name\"",
        ),
        ("Messages-Waiting: yes\r\n\r\nSubject hello\r\n", "line 3"),
        (" Messages-Waiting: yes\r\n", "continuation line"),
        (
            "Messages-Waiting: yes\r\n\r\n continued\r\n",
            "continuation line",
        ),
        ("Messages-Waiting: yes\0\r\n", "control character U+0000"),
        (
            "Messages-Waiting: yes\rVoice-Message: 1/0\r\n",
            "control character U+000D",
        ),
        (
            "Messages-Waiting: yes\r\nX: \x1b[31m\r\n",
            "control character U+001B",
        ),
    ];
    for (body, fragment) in cases {
        let msg = malformed(body);
        assert!(msg.starts_with("message-summary: "), "{msg}");
        assert!(
            msg.contains(fragment),
            "message for {body:?} should contain {fragment:?}: {msg}"
        );
    }
}

#[test]
fn oversized_bodies_are_too_large() {
    let small = Limits {
        max_bytes: 64,
        ..Limits::DEFAULT
    };
    let body = format!("Messages-Waiting: yes\r\nX-Pad: {}\r\n", "a".repeat(100));
    match MessageSummary::parse(&body, &small) {
        Err(Error::TooLarge(msg)) => assert!(msg.contains("message-summary"), "{msg}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(MessageSummary::parse(&body, &Limits::DEFAULT).is_ok());
    let huge = "Messages-Waiting: yes\r\n".to_string() + &"X: y\r\n".repeat(20_000);
    assert!(matches!(
        MessageSummary::parse(&huge, &Limits::DEFAULT),
        Err(Error::TooLarge(_))
    ));
}

/// A small deterministic stand-in for the fuzz target.
#[test]
fn mutated_bodies_either_fail_cleanly_or_round_trip() {
    let seeds = [
        "Messages-Waiting: yes\r\nMessage-Account: sip:a@b\r\nVoice-Message: 4/8 (1/2)\r\n\r\nSubject: x\r\n",
        "messages-waiting: no\nfax-message: 0/0\nVideo-Message: 1/1\nX-A: b\n continued\n",
    ];
    let alphabet = b"aY09:/() \t\r\n-";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
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
        match MessageSummary::parse(&text, &Limits::DEFAULT) {
            Ok(m) => assert_round_trip(&m),
            Err(Error::Malformed(msg)) => assert!(!msg.is_empty()),
            Err(other) => panic!("{text:?} gave {other:?}"),
        }
    }
}
