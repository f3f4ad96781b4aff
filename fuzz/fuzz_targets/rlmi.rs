//! RLMI codec (RFC 4662): any input either fails cleanly or parses to a model that passes
//! `validate` and survives serialize-and-parse unchanged.
#![no_main]

use impp::doc::rlmi::Rlmi;
use impp::doc::Limits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = Rlmi::parse(input, &Limits::DEFAULT) else {
        return;
    };
    doc.validate()
        .unwrap_or_else(|e| panic!("a parsed model fails validate: {e}\ninput: {input}"));
    let xml = doc.to_xml();
    let again = Rlmi::parse(
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
