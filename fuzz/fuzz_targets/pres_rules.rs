//! Presence authorization rules codec (RFC 5025): any input either fails cleanly or parses to a model that
//! survives serialize-and-parse unchanged.
#![no_main]

use impp::doc::pres_rules::PresRules;
use impp::doc::Limits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = PresRules::parse(input, &Limits::DEFAULT) else {
        return;
    };
    let xml = doc.to_xml();
    let again = PresRules::parse(
        &xml,
        &Limits {
            max_bytes: usize::MAX,
            ..Limits::DEFAULT
        },
    )
    .unwrap_or_else(|e| panic!("re-parse failed: {e}\ninput: {input}\noutput: {xml}"));
    assert_eq!(
        doc, again,
        "round trip changed the model\ninput: {input}\noutput: {xml}"
    );
});
