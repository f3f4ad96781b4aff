//! Header names: case-insensitive matching, the compact forms of RFC 3261 §7.3.3 and
//! RFC 6665, and the canonical spelling of the headers this codec knows.
#![forbid(unsafe_code)]

/// The headers the codec looks up often, so a lookup compares one byte instead of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Known {
    Other,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    Contact,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Event,
    Expires,
    From,
    MaxForwards,
    MinExpires,
    ProxyAuthenticate,
    ProxyAuthorization,
    RecordRoute,
    Route,
    Subject,
    SubscriptionState,
    Supported,
    To,
    Via,
    WwwAuthenticate,
}

impl Known {
    /// The canonical spelling (`None` for [`Known::Other`]).
    pub(crate) fn name(self) -> Option<&'static str> {
        Some(match self {
            Known::Other => return None,
            Known::Allow => "Allow",
            Known::AllowEvents => "Allow-Events",
            Known::Authorization => "Authorization",
            Known::CallId => "Call-ID",
            Known::Contact => "Contact",
            Known::ContentEncoding => "Content-Encoding",
            Known::ContentLength => "Content-Length",
            Known::ContentType => "Content-Type",
            Known::CSeq => "CSeq",
            Known::Event => "Event",
            Known::Expires => "Expires",
            Known::From => "From",
            Known::MaxForwards => "Max-Forwards",
            Known::MinExpires => "Min-Expires",
            Known::ProxyAuthenticate => "Proxy-Authenticate",
            Known::ProxyAuthorization => "Proxy-Authorization",
            Known::RecordRoute => "Record-Route",
            Known::Route => "Route",
            Known::Subject => "Subject",
            Known::SubscriptionState => "Subscription-State",
            Known::Supported => "Supported",
            Known::To => "To",
            Known::Via => "Via",
            Known::WwwAuthenticate => "WWW-Authenticate",
        })
    }
}

/// Classifies a header name as written (any case, compact or full).
pub(crate) fn classify(name: &str) -> Known {
    const LONGEST: usize = 19;
    let n = name.len();
    if n == 1 {
        return compact(name.as_bytes()[0]);
    }
    if n > LONGEST {
        return Known::Other;
    }
    // Lower-case by setting bit 5: exact for letters, harmless for `-` and digits; `_`
    // becomes DEL, which no known name contains.
    let mut buf = [0u8; LONGEST];
    for (d, s) in buf.iter_mut().zip(name.bytes()) {
        *d = s | 0x20;
    }
    let lower = &buf[..n];
    let candidates: &[(Known, &[u8])] = match n {
        2 => &[(Known::To, b"to")],
        3 => &[(Known::Via, b"via")],
        4 => &[(Known::From, b"from"), (Known::CSeq, b"cseq")],
        5 => &[
            (Known::Event, b"event"),
            (Known::Route, b"route"),
            (Known::Allow, b"allow"),
        ],
        7 => &[
            (Known::CallId, b"call-id"),
            (Known::Contact, b"contact"),
            (Known::Expires, b"expires"),
            (Known::Subject, b"subject"),
        ],
        9 => &[(Known::Supported, b"supported")],
        11 => &[(Known::MinExpires, b"min-expires")],
        12 => &[
            (Known::ContentType, b"content-type"),
            (Known::MaxForwards, b"max-forwards"),
            (Known::AllowEvents, b"allow-events"),
            (Known::RecordRoute, b"record-route"),
        ],
        13 => &[(Known::Authorization, b"authorization")],
        14 => &[(Known::ContentLength, b"content-length")],
        16 => &[
            (Known::ContentEncoding, b"content-encoding"),
            (Known::WwwAuthenticate, b"www-authenticate"),
        ],
        18 => &[
            (Known::SubscriptionState, b"subscription-state"),
            (Known::ProxyAuthenticate, b"proxy-authenticate"),
        ],
        19 => &[(Known::ProxyAuthorization, b"proxy-authorization")],
        _ => return Known::Other,
    };
    candidates
        .iter()
        .find(|(_, c)| *c == lower)
        .map_or(Known::Other, |&(k, _)| k)
}

fn compact(letter: u8) -> Known {
    match letter.to_ascii_lowercase() {
        b'i' => Known::CallId,
        b'f' => Known::From,
        b't' => Known::To,
        b'v' => Known::Via,
        b'm' => Known::Contact,
        b'l' => Known::ContentLength,
        b'c' => Known::ContentType,
        b'e' => Known::ContentEncoding,
        b'k' => Known::Supported,
        b'o' => Known::Event,
        b'u' => Known::AllowEvents,
        b's' => Known::Subject,
        _ => Known::Other,
    }
}

/// The full name for a compact form (`"v"` → `"Via"`, either case); `None` for anything else.
pub fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() == 1 {
        compact(name.as_bytes()[0]).name()
    } else {
        None
    }
}

/// The canonical spelling of a header name: compact forms expanded and known headers spelled
/// as RFC 3261 does (`"call-id"` → `"Call-ID"`); other names are returned as given.
pub fn canonical_name(name: &str) -> &str {
    classify(name).name().unwrap_or(name)
}

/// Whether two header names name the same header (case-insensitive, compact forms expanded).
pub fn same_header(a: &str, b: &str) -> bool {
    canonical_name(a).eq_ignore_ascii_case(canonical_name(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Known; 24] = [
        Known::Allow,
        Known::AllowEvents,
        Known::Authorization,
        Known::CallId,
        Known::Contact,
        Known::ContentEncoding,
        Known::ContentLength,
        Known::ContentType,
        Known::CSeq,
        Known::Event,
        Known::Expires,
        Known::From,
        Known::MaxForwards,
        Known::MinExpires,
        Known::ProxyAuthenticate,
        Known::ProxyAuthorization,
        Known::RecordRoute,
        Known::Route,
        Known::Subject,
        Known::SubscriptionState,
        Known::Supported,
        Known::To,
        Known::Via,
        Known::WwwAuthenticate,
    ];

    #[test]
    fn compact_forms_and_case() {
        for (short, full) in [
            ("i", "Call-ID"),
            ("F", "From"),
            ("t", "To"),
            ("v", "Via"),
            ("m", "Contact"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("e", "Content-Encoding"),
            ("k", "Supported"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("s", "Subject"),
        ] {
            assert_eq!(expand_compact(short), Some(full));
            assert_eq!(canonical_name(short), full);
            assert!(same_header(short, &full.to_ascii_uppercase()));
        }
        assert_eq!(expand_compact("x"), None);
        assert_eq!(canonical_name("call-id"), "Call-ID");
        assert_eq!(canonical_name("X-Custom"), "X-Custom");
        assert!(same_header("x-custom", "X-CUSTOM"));
        assert!(!same_header("Via", "To"));
        // Every known name classifies as itself in any case; near misses do not.
        for k in ALL {
            let name = k.name().unwrap();
            assert_eq!(classify(name), k);
            assert_eq!(classify(&name.to_ascii_uppercase()), k);
            assert_eq!(classify(&name.to_ascii_lowercase()), k);
        }
        assert_eq!(classify("Call_ID"), Known::Other);
        assert_eq!(classify("Call-IE"), Known::Other);
        assert_eq!(classify("Record-Routes"), Known::Other);
    }
}
