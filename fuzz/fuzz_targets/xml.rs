//! The XML layer on its own: any input either fails cleanly or parses to an element tree
//! that survives `Element::to_xml` and a second parse unchanged.
#![no_main]

use impp::doc::{Element, Limits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tree) = Element::parse(input, &Limits::DEFAULT) else {
        return;
    };
    let xml = tree.to_xml();
    let again = Element::parse(
        &xml,
        &Limits {
            max_bytes: usize::MAX,
            ..Limits::DEFAULT
        },
    )
    .unwrap_or_else(|e| panic!("re-parse failed: {e}\ninput: {input}\noutput: {xml}"));
    assert_eq!(
        tree, again,
        "round trip changed the tree\ninput: {input}\noutput: {xml}"
    );
});
