//! SIP messages: any input either fails to parse or parses to a message on which every
//! accessor returns (no panic); `parse` accepts exactly what `parse_lenient` plus
//! `check_essentials` accepts; a fully checked request's 200 response, built from it, parses back with the
//! same Via, From, Call-ID and CSeq. The stream framer never panics and, when it finds a
//! message, says a length within the input. `peek_response`, where it answers on a message
//! that parses, reads the status and top Via the parse reads.
#![no_main]

use impp::sip::framing::{frame, Frame};
use impp::sip::{bad_request, MessageBuilder, SipLimits, SipMessage, Transport};
use libfuzzer_sys::fuzz_target;

fn touch(m: &SipMessage) {
    let _ = (m.is_request(), m.method(), m.request_uri_text(), m.request_uri());
    let _ = (m.status(), m.reason(), m.body(), m.content_length());
    let _ = (m.via(), m.top_via(), m.from(), m.to(), m.call_id(), m.cseq());
    let _ = (m.contact(), m.expires(), m.min_expires(), m.max_forwards());
    let _ = (m.event(), m.subscription_state(), m.content_type());
    let _ = (m.record_route(), m.route(), m.allow(), m.supported(), m.allow_events());
    let _ = (m.authorization(), m.proxy_authorization());
    let _ = (m.www_authenticate(), m.proxy_authenticate());
    let _ = (m.header("Subject"), m.headers("v").count(), m.header_values("Accept"));
    for (name, _) in m.all_headers() {
        let _ = m.header(name);
    }
    if let Ok(f) = m.from() {
        let _ = (f.uri(), f.tag(), f.display_name());
    }
    if let Ok(Some(t)) = m.content_type() {
        let _ = t.essence();
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = SipLimits::DEFAULT;
    if let Ok(Some(f)) = frame(data, &limits) {
        assert!(f.len() <= data.len());
        if let Frame::Message(n) = f {
            let _ = SipMessage::parse(&data[..n], &limits, Transport::Stream);
        }
    }
    let peeked = SipMessage::peek_response(data);
    let Ok(m) = SipMessage::parse_lenient(data, &limits, Transport::Datagram) else {
        return;
    };
    touch(&m);
    // What the in-place look at a response reads is what the parse reads.
    if let Some((status, top)) = peeked {
        assert_eq!(Some(status), m.status());
        let peeked = impp::sip::header::Via::parse(top).ok();
        let full = m.top_via().ok();
        assert_eq!(peeked.as_ref().map(|v| v.branch()), full.as_ref().map(|v| v.branch()));
        assert_eq!(peeked.map(|v| v.transport()), full.map(|v| v.transport()));
    }
    assert_eq!(
        SipMessage::parse(data, &limits, Transport::Datagram).is_ok(),
        m.check_essentials().is_ok()
    );
    match m.check() {
        Err(e) => {
            if m.can_answer_bad_request() {
                let out = bad_request(&m, &e, Some("fz")).expect("400 builds");
                let r = SipMessage::parse(&out, &limits, Transport::Stream)
                    .unwrap_or_else(|e| panic!("400 does not parse: {e}"));
                assert_eq!(r.status(), Some(400));
            }
        }
        Ok(()) if m.is_request() => {
            let b = MessageBuilder::response_to(&m, 200, "OK", Some("fz")).expect("200 builds");
            let out = b.build();
            let r = SipMessage::parse(&out, &limits, Transport::Stream)
                .unwrap_or_else(|e| panic!("200 does not parse: {e}"));
            touch(&r);
            assert_eq!(r.via().ok(), m.via().ok());
            assert_eq!(r.from().unwrap(), m.from().unwrap());
            assert_eq!(r.call_id().unwrap(), m.call_id().unwrap());
            assert_eq!(r.cseq().unwrap(), m.cseq().unwrap());
            assert_eq!(r.to().unwrap().uri_text(), m.to().unwrap().uri_text());
        }
        Ok(()) => {}
    }
});
