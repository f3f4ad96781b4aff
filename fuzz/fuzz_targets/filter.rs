//! Filter documents: parsing never panics, and whatever parses survives a round trip.
//! Content selection and triggers run on the filter document itself as a stand-in input.
#![no_main]

use impp::doc::filter::FilterSet;
use impp::doc::{Element, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = FilterSet::parse(text, &Limits::DEFAULT) else {
        return;
    };
    let xml = set.to_xml();
    let again = FilterSet::parse(&xml, &Limits::DEFAULT).expect("written filter set parses");
    assert_eq!(again, set, "round trip changed the model:\n{xml}");
    if let Ok(doc) = Element::parse(text, &Limits::DEFAULT) {
        for f in &set.filters {
            let _ = f.apply(&doc);
            let _ = f.should_notify(Some(&doc), &doc);
        }
        let _ = set.filter_for("sip:alice@example.test");
    }
});
