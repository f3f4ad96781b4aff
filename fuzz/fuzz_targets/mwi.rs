//! Any UTF-8 input either fails to parse as a message summary or parses to a summary whose
//! text form parses back to an equal summary with the same text.
#![no_main]

use impp::doc::mwi::MessageSummary;
use impp::doc::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(summary) = MessageSummary::parse(text, &Limits::DEFAULT) else {
        return;
    };
    let written = summary.to_text();
    // CRLF line ends and "Name: value" spacing may make the written form longer than the
    // input, so the size limit is not what this target checks.
    let unlimited = Limits {
        max_bytes: usize::MAX,
        ..Limits::DEFAULT
    };
    let again = MessageSummary::parse(&written, &unlimited).expect("written form re-parses");
    assert_eq!(again, summary);
    assert_eq!(again.to_text(), written);
});
