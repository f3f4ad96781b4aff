//! multipart/related and list NOTIFY bodies (RFC 2387, RFC 4662): the first line of the
//! input is the Content-Type header value, the rest the body. Any input either fails
//! cleanly or parses to a body that encodes and parses back unchanged; a list body that
//! parses either encodes and parses back unchanged, or is refused by the builder as an
//! invalid argument (a part no instance names, which a reader keeps).
#![no_main]

use impp::doc::Limits;
use impp::sip::list_body::ListBody;
use impp::sip::multipart::MultipartRelated;
use impp::Error;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(content_type) = std::str::from_utf8(&data[..nl]) else {
        return;
    };
    let body = &data[nl + 1..];
    let unlimited = Limits {
        max_bytes: usize::MAX,
        ..Limits::DEFAULT
    };
    if let Ok(m) = MultipartRelated::parse(content_type, body, &Limits::DEFAULT) {
        let (ct, bytes) = m
            .encode()
            .unwrap_or_else(|e| panic!("a parsed body does not encode: {e}\n{m:?}"));
        let again = MultipartRelated::parse(&ct, &bytes, &unlimited)
            .unwrap_or_else(|e| panic!("re-parse failed: {e}\n{m:?}"));
        assert_eq!(m, again, "round trip changed the body");
    }
    if let Ok(list) = ListBody::parse(content_type, body, &Limits::DEFAULT) {
        match list.encode() {
            Ok((ct, bytes)) => {
                let again = ListBody::parse(&ct, &bytes, &unlimited)
                    .unwrap_or_else(|e| panic!("re-parse failed: {e}\n{list:?}"));
                assert_eq!(list, again, "round trip changed the list body");
            }
            Err(Error::InvalidArgument(_)) => {}
            Err(e) => panic!("a parsed list body fails to encode with {e:?}"),
        }
    }
});
