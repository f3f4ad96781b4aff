//! sip_publisher: a PUBLISH storm with numbered states, for benches/sip/slow_watchers.sh.
//!
//! Presentity P (`sip:user<P>@DOMAIN`, P < PRES) publishes its presence over UDP, the
//! presentities in turn at RATE PUBLISH/s in all, for DURATION seconds: first a PUBLISH with
//! a body, then modify PUBLISHes (SIP-If-Match with the last SIP-ETag), each with a new body.
//! Every body carries the presentity's sequence number in its PIDF note
//! (`<note>impp-seq:N</note>`, N = 1, 2, 3, ... per presentity), so that a watcher can tell
//! which state its last NOTIFY carried. The publications are never removed.
//!
//! A presentity sends its next PUBLISH only once the last one is answered (the next needs
//! its SIP-ETag); a turn that comes while it still waits is skipped and counted. PUBLISHes
//! are retransmitted over UDP (500 ms, doubling up to 4 s) and fail after 32 s; a failure
//! (412 included) makes the next one an initial PUBLISH again.
//!
//! `--event dialog` publishes dialog state instead (`Event: dialog`, an RFC 4235
//! `application/dialog-info+xml` body): each state is one dialog, alternately `early`
//! (ringing) and `confirmed` (busy), whose `call-id` carries the sequence number
//! (`impp-seq:N`), for the busy-lamp list figures of benches/rls/run.sh.
//!
//! Once the time is up it waits for the last answers and writes FINAL_FILE: one line
//! `P N` per presentity, N the sequence number of its last PUBLISH answered 2xx, i.e. the
//! state its watchers must end on (`sip_swarm --expect-file`). The file appears whole (it is
//! written beside and renamed).
//!
//! ```text
//! cargo run --release --example sip_publisher -- --server 127.0.0.1:5070 --pres 100 \
//!     --rate 400 --duration-s 30 --final-file /tmp/final.txt
//! ```

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Options {
    server: SocketAddr,
    pres: usize,
    rate: f64,
    duration_s: f64,
    expires: u32,
    domain: String,
    port: u16,
    final_file: Option<std::path::PathBuf>,
    /// `presence` (PIDF bodies) or `dialog` (dialog-info bodies).
    event: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: sip_publisher --server ADDR:PORT [--pres P] [--rate R] [--duration-s S]\n\
         \x20      [--expires S] [--domain D] [--port PORT] [--final-file FILE]\n\
         \x20      [--event presence|dialog]"
    );
    std::process::exit(2);
}

fn options() -> Options {
    let mut o = Options {
        server: "127.0.0.1:5060".parse().unwrap(),
        pres: 100,
        rate: 400.0,
        duration_s: 30.0,
        expires: 3600,
        domain: "example.test".into(),
        port: 0,
        final_file: None,
        event: "presence".into(),
    };
    let mut server = false;
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let bad = |what: &str| -> ! {
            eprintln!("sip_publisher: {name} {value}: {what}");
            std::process::exit(2)
        };
        match name.as_str() {
            "--server" => {
                o.server = value.parse().unwrap_or_else(|_| bad("not ADDR:PORT"));
                server = true;
            }
            "--pres" => o.pres = value.parse().unwrap_or_else(|_| bad("not a count")),
            "--rate" => o.rate = value.parse().unwrap_or_else(|_| bad("not a rate")),
            "--duration-s" => o.duration_s = value.parse().unwrap_or_else(|_| bad("not seconds")),
            "--expires" => o.expires = value.parse().unwrap_or_else(|_| bad("not seconds")),
            "--domain" => o.domain = value,
            "--port" => o.port = value.parse().unwrap_or_else(|_| bad("not a port")),
            "--final-file" => o.final_file = Some(value.into()),
            "--event" => match value.as_str() {
                "presence" | "dialog" => o.event = value,
                _ => bad("presence or dialog"),
            },
            _ => usage(),
        }
    }
    if !server || o.pres == 0 || o.rate <= 0.0 || o.duration_s <= 0.0 {
        eprintln!("sip_publisher: need --server, --pres >= 1, --rate > 0 and --duration-s > 0");
        std::process::exit(2);
    }
    o
}

/// One presentity's publication.
#[derive(Default)]
struct Presentity {
    etag: Option<String>,
    /// The last sequence number sent, and the last one answered 2xx.
    sent_seq: u64,
    acked_seq: u64,
    cseq: u32,
    /// The PUBLISH waiting for its answer: CSeq, its sequence number, its bytes, sends so
    /// far, next retransmission, give up at.
    pending: Option<Pending>,
}

struct Pending {
    cseq: u32,
    seq: u64,
    bytes: Vec<u8>,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

#[derive(Default)]
struct Counters {
    sent: u64,
    ok: u64,
    failed: u64,
    retrans: u64,
    skipped: u64,
    unexpected: u64,
}

fn header<'a>(msg: &'a str, long: &str, short: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case(long)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short)))
            .then(|| value.trim())
        })
}

fn main() {
    let o = options();
    let sock = UdpSocket::bind(("127.0.0.1", o.port)).expect("bind the UDP socket");
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let tag = format!("{:x}", std::process::id());
    let mut pres: Vec<Presentity> = (0..o.pres).map(|_| Presentity::default()).collect();
    let mut c = Counters::default();
    let call_id = |p: usize| format!("pub{p}.{tag}@{}", local.ip());
    eprintln!(
        "sip_publisher: {} presentities from {local} to {}, {}/s for {} s",
        o.pres, o.server, o.rate, o.duration_s
    );
    let start = Instant::now();
    let stop_sending = start + Duration::from_secs_f64(o.duration_s);
    let mut slot: u64 = 0;
    let mut buf = vec![0u8; 65536];
    let mut last_report = start;
    loop {
        let now = Instant::now();
        // The turns due by now.
        if now < stop_sending {
            let due = ((now - start).as_secs_f64() * o.rate) as u64;
            while slot <= due {
                let p = (slot % o.pres as u64) as usize;
                slot += 1;
                let st = &mut pres[p];
                if st.pending.is_some() {
                    c.skipped += 1;
                    continue;
                }
                st.sent_seq += 1;
                st.cseq += 1;
                let seq = st.sent_seq;
                let domain = &o.domain;
                let (content_type, body) = if o.event == "dialog" {
                    let state = if seq % 2 == 1 { "early" } else { "confirmed" };
                    (
                        "application/dialog-info+xml",
                        format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
                             <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{seq}\" \
                             state=\"full\" entity=\"sip:user{p}@{domain}\">\r\n \
                             <dialog id=\"bench{p}\" call-id=\"impp-seq:{seq}\" direction=\"recipient\">\
                             <state>{state}</state></dialog>\r\n</dialog-info>\r\n"
                        ),
                    )
                } else {
                    (
                        "application/pidf+xml",
                        format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
                             <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:user{p}@{domain}\">\r\n \
                             <tuple id=\"bench{p}\"><status><basic>open</basic></status>\
                             <note>impp-seq:{seq}</note></tuple>\r\n</presence>\r\n"
                        ),
                    )
                };
                let if_match = match &st.etag {
                    Some(etag) => format!("SIP-If-Match: {etag}\r\n"),
                    None => String::new(),
                };
                let msg = format!(
                    "PUBLISH sip:user{p}@{domain} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {local};branch=z9hG4bK-pub{tag}-{p}-{cseq};rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:user{p}@{domain}>;tag=pb{p}\r\n\
                     To: <sip:user{p}@{domain}>\r\n\
                     Call-ID: {cid}\r\n\
                     CSeq: {cseq} PUBLISH\r\n\
                     Event: {event}\r\n\
                     Expires: {expires}\r\n\
                     {if_match}\
                     Content-Type: {content_type}\r\n\
                     Content-Length: {len}\r\n\r\n{body}",
                    cseq = st.cseq,
                    cid = call_id(p),
                    expires = o.expires,
                    event = o.event,
                    len = body.len(),
                );
                let bytes = msg.into_bytes();
                let _ = sock.send_to(&bytes, o.server);
                c.sent += 1;
                st.pending = Some(Pending {
                    cseq: st.cseq,
                    seq,
                    bytes,
                    interval: Duration::from_millis(500),
                    next: now + Duration::from_millis(500),
                    give_up: now + Duration::from_secs(32),
                });
            }
        }
        // Retransmissions and timeouts.
        for st in pres.iter_mut() {
            let Some(pd) = &mut st.pending else { continue };
            if now >= pd.give_up {
                st.pending = None;
                st.etag = None;
                c.failed += 1;
                continue;
            }
            if now >= pd.next {
                let _ = sock.send_to(&pd.bytes, o.server);
                c.retrans += 1;
                pd.interval = (pd.interval * 2).min(Duration::from_secs(4));
                pd.next = now + pd.interval;
            }
        }
        // Answers.
        while let Ok((n, _from)) = sock.recv_from(&mut buf) {
            let Ok(msg) = std::str::from_utf8(&buf[..n]) else {
                c.unexpected += 1;
                continue;
            };
            let Some(status) = msg.strip_prefix("SIP/2.0 ") else {
                c.unexpected += 1;
                continue;
            };
            let code: u16 = status.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
            let p = header(msg, "Call-ID", "i")
                .and_then(|cid| cid.strip_prefix("pub"))
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(p, _)| p.parse::<usize>().ok())
                .filter(|p| *p < pres.len());
            let cseq: Option<u32> =
                header(msg, "CSeq", "").and_then(|v| v.split_whitespace().next()?.parse().ok());
            let (Some(p), Some(cseq)) = (p, cseq) else {
                c.unexpected += 1;
                continue;
            };
            let st = &mut pres[p];
            if code < 200 || st.pending.as_ref().map(|pd| pd.cseq) != Some(cseq) {
                continue; // provisional, or a late answer
            }
            let pd = st.pending.take().unwrap();
            if (200..300).contains(&code) {
                st.acked_seq = pd.seq;
                st.etag = header(msg, "SIP-ETag", "").map(str::to_owned);
                c.ok += 1;
            } else {
                st.etag = None;
                c.failed += 1;
            }
        }
        if now - last_report >= Duration::from_secs(5) {
            last_report = now;
            eprintln!(
                "sip_publisher: {:.0} s: {} sent, {} ok, {} failed, {} retransmitted, {} turns skipped",
                (now - start).as_secs_f64(),
                c.sent,
                c.ok,
                c.failed,
                c.retrans,
                c.skipped
            );
        }
        if now >= stop_sending && pres.iter().all(|st| st.pending.is_none()) {
            break;
        }
    }
    let took = start.elapsed().as_secs_f64();
    if let Some(path) = &o.final_file {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).expect("create the final-state file");
        for (p, st) in pres.iter().enumerate() {
            writeln!(f, "{p} {}", st.acked_seq).expect("write the final-state file");
        }
        drop(f);
        std::fs::rename(&tmp, path).expect("rename the final-state file");
    }
    println!(
        "sip_publisher: {} PUBLISH sent in {:.1} s ({:.0}/s), {} answered 2xx, {} failed, \
         {} retransmissions, {} turns skipped (the last PUBLISH still unanswered), {} unexpected",
        c.sent,
        took,
        c.sent as f64 / o.duration_s,
        c.ok,
        c.failed,
        c.retrans,
        c.skipped,
        c.unexpected
    );
    // The same, for scripts (benches/sip/sipbench.py).
    println!(
        "sip_publisher: summary sent={} ok={} failed={} retrans={} skipped={} unexpected={} \
         seconds={took:.3}",
        c.sent, c.ok, c.failed, c.retrans, c.skipped, c.unexpected
    );
}
