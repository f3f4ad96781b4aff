//! PIDF: any input either fails with an error or parses to a model that serializes to a
//! document parsing back to the same model.
#![no_main]

use impp::doc::pidf::Presence;
use impp::doc::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::DEFAULT;
    if let Ok(p) = Presence::parse_bytes(data, &limits) {
        let xml = p.to_xml();
        let unlimited = Limits { max_bytes: usize::MAX, ..limits };
        let again = Presence::parse(&xml, &unlimited)
            .unwrap_or_else(|e| panic!("written document does not parse: {e}\n{xml}"));
        assert_eq!(again, p, "round trip changed the model:\n{xml}");
    }
});
