//! PIDF parse and serialize throughput for a typical ~600-byte document (a phone with one
//! service, a contact, a note and RPID person data), with namespaces resolved.
//!
//! Run: `cargo bench --bench pidf`. Prints the median over several timed batches, so one
//! noisy batch on a shared machine does not decide the figure.

use std::hint::black_box;
use std::time::Instant;

use impp::doc::pidf::Presence;
use impp::doc::Limits;

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.test">
<tuple id="t5b1e2">
<status><basic>open</basic></status>
<dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
<contact priority="0.8">sip:alice@192.0.2.10:5062;transport=tcp</contact>
<note xml:lang="en">On the phone</note>
<timestamp>2026-11-24T14:45:00Z</timestamp>
</tuple>
<dm:person id="p1">
<rpid:activities><rpid:on-the-phone/></rpid:activities>
<dm:note>In a call</dm:note>
</dm:person>
</presence>"#;

const BATCHES: usize = 15;

fn median_ns_per_op(mut op: impl FnMut()) -> f64 {
    let per_batch = per_batch();
    for _ in 0..per_batch {
        op(); // warm up caches and the allocator
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

/// Operations per batch; `IMPP_BENCH_BATCH` lowers it for instruction counting under valgrind.
fn per_batch() -> usize {
    std::env::var("IMPP_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn report(what: &str, ns: f64) {
    println!("{what:<28} {ns:>9.0} ns/document  {:>12.0} documents/s", 1e9 / ns);
}

fn main() {
    let limits = Limits::DEFAULT;
    let doc = Presence::parse(DOC, &limits).expect("benchmark document parses");
    let written = doc.to_xml();
    println!(
        "PIDF benchmark: {}-byte document ({} bytes as written back); median of {BATCHES} batches of {}",
        DOC.len(),
        written.len(),
        per_batch()
    );
    let parse = median_ns_per_op(|| {
        black_box(Presence::parse(black_box(DOC), &limits).unwrap());
    });
    report("parse (namespaces resolved)", parse);
    let serialize = median_ns_per_op(|| {
        black_box(black_box(&doc).to_xml());
    });
    report("serialize", serialize);
    let round = median_ns_per_op(|| {
        let p = Presence::parse(black_box(&written), &limits).unwrap();
        black_box(p.to_xml());
    });
    report("parse + serialize", round);
    println!(
        "target: parse <= 1000 ns/document -> {}",
        if parse <= 1000.0 { "met" } else { "MISSED" }
    );
}
