//! SIP parse throughput: a ~1 KB NOTIFY carrying PIDF, and a 200 OK to a SUBSCRIBE; plain
//! parse (framing, header index and the mandatory-header check), and parse plus what a server
//! reads from every request (Call-ID, CSeq, top Via branch, From tag, To tag, Event).
//!
//! Run: `cargo bench --bench sip_parse`. Prints the median over several timed batches.

use std::hint::black_box;
use std::time::Instant;

use impp::sip::{SipLimits, SipMessage, Transport};

const PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:bob@example.test">
<tuple id="a8098a.b7eeb"><status><basic>open</basic></status>
<contact priority="0.8">sip:bob@203.0.113.5:5060;transport=tcp</contact>
<timestamp>2026-11-24T14:45:00Z</timestamp></tuple>
<dm:person id="p1"><rpid:activities><rpid:on-the-phone/></rpid:activities><dm:note>In a call</dm:note></dm:person>
</presence>"#;

const NOTIFY_HEAD: &str = "NOTIFY sip:alice@198.51.100.7:49152;transport=TCP;ob SIP/2.0\r
Via: SIP/2.0/TCP pa.example.test:5060;branch=z9hG4bK.3f1e0c9a2b7d41e8;rport\r
Max-Forwards: 70\r
From: <sip:bob@example.test>;tag=ad8a2b1f\r
To: \"Alice\" <sip:alice@example.test>;tag=9fxced76sl\r
Call-ID: 2d6a7fb3-8b1c-4d0b-a7e3-0b9d5c1e4f60\r
CSeq: 3 NOTIFY\r
Contact: <sip:pa.example.test;transport=tcp>\r
Event: presence;id=watch-17\r
Subscription-State: active;expires=599\r
User-Agent: imppd/0.1.0\r
Content-Type: application/pidf+xml\r
";

const OK: &str = "SIP/2.0 200 OK\r
Via: SIP/2.0/TCP 198.51.100.7:49152;branch=z9hG4bKPjb0c6ae3a0a8b4d0b;alias;received=198.51.100.7;rport=49152\r
From: <sip:alice@example.test>;tag=9fxced76sl\r
To: <sip:bob@example.test>;tag=ad8a2b1f\r
Call-ID: 2d6a7fb3-8b1c-4d0b-a7e3-0b9d5c1e4f60\r
CSeq: 17741 SUBSCRIBE\r
Contact: <sip:pa.example.test;transport=tcp>\r
Expires: 600\r
Content-Length: 0\r
\r
";

const BATCHES: usize = 15;

fn per_batch() -> usize {
    std::env::var("IMPP_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn median_ns_per_op(mut op: impl FnMut()) -> f64 {
    let per_batch = per_batch();
    for _ in 0..per_batch {
        op();
    }
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[BATCHES / 2]
}

fn report(what: &str, ns: f64) {
    println!(
        "{what:<44} {ns:>7.0} ns/message  {:>10.0} messages/s",
        1e9 / ns
    );
}

/// What a server reads from every request before dispatching it.
fn server_fields(m: &SipMessage) -> usize {
    let via = m.top_via().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let event = m.event().unwrap();
    m.call_id().unwrap().len()
        + m.cseq().unwrap().seq as usize
        + via.branch().map_or(0, str::len)
        + from.tag().map_or(0, str::len)
        + to.tag().map_or(0, str::len)
        + event.map_or(0, |e| e.package().len())
}

fn main() {
    let limits = SipLimits::DEFAULT;
    let notify = format!("{NOTIFY_HEAD}Content-Length: {}\r\n\r\n{PIDF}", PIDF.len()).into_bytes();
    let ok = OK.as_bytes();
    SipMessage::parse(&notify, &limits, Transport::Stream).expect("NOTIFY parses");
    SipMessage::parse(ok, &limits, Transport::Stream).expect("200 parses");
    println!(
        "SIP parse benchmark: NOTIFY of {} bytes ({} of PIDF), 200 OK of {} bytes; median of {BATCHES} batches of {}",
        notify.len(),
        PIDF.len(),
        ok.len(),
        per_batch()
    );
    let n = median_ns_per_op(|| {
        black_box(SipMessage::parse(black_box(&notify), &limits, Transport::Stream).unwrap());
    });
    report("NOTIFY: parse", n);
    let nf = median_ns_per_op(|| {
        let m = SipMessage::parse(black_box(&notify), &limits, Transport::Stream).unwrap();
        black_box(server_fields(&m));
    });
    report("NOTIFY: parse + Call-ID/CSeq/branch/tags/Event", nf);
    let o = median_ns_per_op(|| {
        black_box(SipMessage::parse(black_box(ok), &limits, Transport::Stream).unwrap());
    });
    report("200 OK: parse", o);
    let of = median_ns_per_op(|| {
        let m = SipMessage::parse(black_box(ok), &limits, Transport::Stream).unwrap();
        black_box(server_fields(&m));
    });
    report("200 OK: parse + Call-ID/CSeq/branch/tags/Event", of);
    let lenient = median_ns_per_op(|| {
        black_box(
            SipMessage::parse_lenient(black_box(&notify), &limits, Transport::Stream).unwrap(),
        );
    });
    report("NOTIFY: parse_lenient (framing only)", lenient);
    println!(
        "target: NOTIFY parse <= 1000 ns -> {}",
        if n <= 1000.0 { "met" } else { "MISSED" }
    );
}
