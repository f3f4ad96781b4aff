//! Is-composing codec: any input either fails cleanly or parses to a model that survives
//! serialize-and-parse unchanged.
#![no_main]

use impp::doc::iscomposing::IsComposing;
use impp::doc::Limits;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = IsComposing::parse(input) else {
        return;
    };
    let xml = doc.to_xml();
    let again = IsComposing::parse_with_limits(
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
    assert_eq!(again.to_xml(), xml, "serialization is not stable\ninput: {input}");
});
