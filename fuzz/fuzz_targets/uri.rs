//! Any UTF-8 input either fails to parse as a URI or parses to a URI whose canonical text
//! parses back to an equal URI with the same canonical text.
#![no_main]

use impp::uri::Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(text) else {
        return;
    };
    let canonical = uri.to_string();
    let again = Uri::parse(&canonical).expect("canonical form re-parses");
    assert_eq!(again, uri);
    assert_eq!(again.to_string(), canonical);
    // The address-of-record is itself a URI.
    Uri::parse(&uri.aor()).expect("address-of-record parses");
});
