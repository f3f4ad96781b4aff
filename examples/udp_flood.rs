//! udp_flood: a UDP request flood from one address, and a probe that times another
//! address's requests meanwhile; for benches/network/run.sh.
//!
//! ```text
//! udp_flood flood --server ADDR:PORT --from IP [--rate R] [--seconds S] [--garbage-every N]
//! udp_flood probe --server ADDR:PORT --from IP [--rate R] [--seconds S] [--method REGISTER|PUBLISH]
//! ```
//!
//! * `flood` sends R datagrams a second (100,000) for S seconds (10) from one socket on IP
//!   (say 127.0.0.2), in batches with `sendmmsg`, every one a new OPTIONS transaction (its
//!   own branch and Call-ID) except every Nth (`--garbage-every`, 10; 0: none), which is
//!   bytes that are not SIP. It reads what comes back and prints what it offered and what was
//!   answered: `offered=... requests=... garbage=... answered_503=... answered_200=...
//!   answered_other=... send_errors=...`.
//! * `probe` sends R requests a second (50) for S seconds (10) from IP (say 127.0.0.1), each
//!   a new transaction: a REGISTER (or a PUBLISH) of one of 20 users in turn, retransmitted
//!   as RFC 3261 timer A says (500 ms, doubling) and given up after 8 s. It prints the times
//!   from the first send to the final answer: `sent=... answered=... ok=... refused_503=...
//!   lost=... retransmitted=... p50_ms=... p90_ms=... p99_ms=... max_ms=...`. imppd must run
//!   with `--open` (no digest challenge).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const DOMAIN: &str = "example.test";
const BATCH: usize = 64;

struct Options {
    server: SocketAddr,
    from: IpAddr,
    rate: f64,
    seconds: f64,
    garbage_every: u64,
    method: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: udp_flood flood --server ADDR:PORT --from IP [--rate R] [--seconds S] [--garbage-every N]\n\
         \x20      udp_flood probe --server ADDR:PORT --from IP [--rate R] [--seconds S] [--method REGISTER|PUBLISH]"
    );
    std::process::exit(2);
}

fn options(flood: bool, args: impl Iterator<Item = String>) -> Options {
    let mut o = Options {
        server: "127.0.0.1:5060".parse().unwrap(),
        from: "127.0.0.1".parse().unwrap(),
        rate: if flood { 100_000.0 } else { 50.0 },
        seconds: 10.0,
        garbage_every: 10,
        method: "REGISTER".into(),
    };
    let mut args = args;
    while let Some(name) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let bad = |what: &str| -> ! {
            eprintln!("udp_flood: {name} {value}: {what}");
            std::process::exit(2)
        };
        let number = || -> f64 {
            value
                .parse()
                .ok()
                .filter(|n: &f64| *n > 0.0)
                .unwrap_or_else(|| bad("not a positive number"))
        };
        match name.as_str() {
            "--server" => o.server = value.parse().unwrap_or_else(|_| bad("not ADDR:PORT")),
            "--from" => o.from = value.parse().unwrap_or_else(|_| bad("not an IP address")),
            "--rate" => o.rate = number(),
            "--seconds" => o.seconds = number(),
            "--garbage-every" => {
                o.garbage_every = value.parse().unwrap_or_else(|_| bad("not a count"))
            }
            "--method" => match value.as_str() {
                "REGISTER" | "PUBLISH" => o.method = value,
                _ => bad("REGISTER or PUBLISH"),
            },
            _ => usage(),
        }
    }
    o
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("flood") => flood(&options(true, args)),
        Some("probe") => probe(&options(false, args)),
        _ => usage(),
    }
}

fn bind(o: &Options) -> UdpSocket {
    let sock = UdpSocket::bind(SocketAddr::new(o.from, 0)).expect("bind the UDP socket");
    let s2 = socket2::SockRef::from(&sock);
    let _ = s2.set_send_buffer_size(4 << 20);
    let _ = s2.set_recv_buffer_size(4 << 20);
    sock
}

/// The status code of a response datagram.
fn status(data: &[u8]) -> Option<u16> {
    let rest = data.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

// ---- flood ----

/// Digits patched into each datagram to make it a new transaction.
const DIGITS: usize = 12;

/// An OPTIONS whose branch and Call-ID end in the same `DIGITS`-digit counter; the offsets
/// of the two counters.
fn options_template(local: SocketAddr, server: SocketAddr) -> (Vec<u8>, [usize; 2]) {
    let zeros = "0".repeat(DIGITS);
    let text = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-fl{zeros};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:flood@{DOMAIN}>;tag=fl\r\n\
         To: <sip:{DOMAIN}>\r\n\
         Call-ID: fl{zeros}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:flood@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip()
    );
    let _ = server;
    let first = text.find(&format!("fl{zeros}")).expect("branch") + 2;
    let second = text.rfind(&format!("fl{zeros}")).expect("call-id") + 2;
    (text.into_bytes(), [first, second])
}

fn patch(buf: &mut [u8], at: &[usize; 2], mut n: u64) {
    let mut digits = [b'0'; DIGITS];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &a in at {
        buf[a..a + DIGITS].copy_from_slice(&digits);
    }
}

fn sockaddr(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

#[derive(Default)]
struct Answers {
    by_code: HashMap<u16, u64>,
    other: u64,
}

impl Answers {
    /// Reads every datagram waiting (non-blocking), in batches.
    fn drain(&mut self, sock: &UdpSocket, bufs: &mut [[u8; 2048]]) {
        let fd = sock.as_raw_fd();
        loop {
            let mut iovs: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .map(|iov| {
                    // SAFETY: an all-zero mmsghdr is valid; its iovec points into `bufs`,
                    // which outlives the call.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_iov = iov;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: `msgs` holds bufs.len() headers whose buffers stay alive meanwhile.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    msgs.len() as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                return;
            }
            for (m, buf) in msgs.iter().zip(bufs.iter()).take(n as usize) {
                match status(&buf[..m.msg_len as usize]) {
                    Some(code) => *self.by_code.entry(code).or_insert(0) += 1,
                    None => self.other += 1,
                }
            }
        }
    }

    fn count(&self, code: u16) -> u64 {
        self.by_code.get(&code).copied().unwrap_or(0)
    }
}

fn flood(o: &Options) {
    let sock = bind(o);
    let local = sock.local_addr().unwrap();
    let (template, at) = options_template(local, o.server);
    let garbage: &[u8] = b"\x00\x01\x02 this is not SIP at all \xff\xfe";
    let mut slots: Vec<Vec<u8>> = vec![template; BATCH];
    let dest = sockaddr(o.server);
    let fd = sock.as_raw_fd();
    let mut answers = Answers::default();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let (mut sent, mut requests, mut garbage_sent, mut send_errors) = (0u64, 0u64, 0u64, 0u64);
    eprintln!(
        "udp_flood: flooding {} from {local} at {}/s for {} s",
        o.server, o.rate, o.seconds
    );
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.seconds);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = ((now - start).as_secs_f64() * o.rate) as u64;
        if sent >= due {
            answers.drain(&sock, &mut bufs);
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let n = ((due - sent) as usize).min(BATCH);
        let mut kinds = Vec::with_capacity(n);
        for (i, slot) in slots.iter_mut().enumerate().take(n) {
            let k = sent + i as u64 + 1;
            let is_garbage = o.garbage_every > 0 && k % o.garbage_every == 0;
            if !is_garbage {
                patch(slot, &at, k);
            }
            kinds.push(is_garbage);
        }
        let mut iovs: Vec<libc::iovec> = (0..n)
            .map(|i| {
                let bytes: &[u8] = if kinds[i] { garbage } else { &slots[i] };
                libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                }
            })
            .collect();
        let mut addr = dest;
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: an all-zero mmsghdr is valid; the pointers set point at `addr` and
                // into `slots`/`garbage`, which outlive the sendmmsg call.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = &mut addr as *mut _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` holds n initialised headers whose buffers stay alive meanwhile.
        let done = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
        let done = if done <= 0 {
            // A full send buffer: count the first as lost, as the network would.
            send_errors += 1;
            1
        } else {
            done as usize
        };
        for &g in &kinds[..done] {
            if g {
                garbage_sent += 1;
            } else {
                requests += 1;
            }
        }
        sent += done as u64;
        if sent % (BATCH as u64 * 16) < BATCH as u64 {
            answers.drain(&sock, &mut bufs);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Late answers.
    let settle = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < settle {
        answers.drain(&sock, &mut bufs);
        std::thread::sleep(Duration::from_millis(10));
    }
    let answered: u64 = answers.by_code.values().sum();
    let mut others: Vec<_> = answers
        .by_code
        .iter()
        .filter(|(c, _)| **c != 503 && **c != 200)
        .collect();
    others.sort();
    println!(
        "udp_flood: offered={sent} seconds={elapsed:.3} rate={:.0} requests={requests} \
         garbage={garbage_sent} answered={answered} answered_503={} answered_200={} \
         answered_other={} unanswered_requests={} send_errors={send_errors} other_codes={:?}",
        sent as f64 / elapsed,
        answers.count(503),
        answers.count(200),
        answered - answers.count(503) - answers.count(200) + answers.other,
        requests.saturating_sub(answered),
        others
    );
}

// ---- probe ----

struct Pending {
    first: Instant,
    next_retry: Instant,
    interval: Duration,
    bytes: Vec<u8>,
}

fn probe_request(o: &Options, local: SocketAddr, n: u64) -> Vec<u8> {
    let user = n % 20;
    let common = format!(
        "Via: SIP/2.0/UDP {local};branch=z9hG4bK-pr{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe{user}@{DOMAIN}>;tag=pr{user}\r\n\
         To: <sip:probe{user}@{DOMAIN}>\r\n\
         Call-ID: probe{user}@{ip}\r\n\
         CSeq: {n} {m}\r\n",
        ip = local.ip(),
        m = o.method
    );
    if o.method == "REGISTER" {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n{common}\
             Contact: <sip:probe{user}@{local}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    } else {
        let body = format!(
            "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
             entity=\"sip:probe{user}@{DOMAIN}\"><tuple id=\"t\"><status><basic>open</basic>\
             </status><note>{n}</note></tuple></presence>"
        );
        format!(
            "PUBLISH sip:probe{user}@{DOMAIN} SIP/2.0\r\n{common}\
             Event: presence\r\nExpires: 600\r\nContent-Type: application/pidf+xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// The CSeq number of a response.
fn cseq_of(data: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(data).ok()?;
    text.split("\r\n").find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("CSeq")
            .then(|| value.split_whitespace().next()?.parse().ok())?
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn probe(o: &Options) {
    let sock = bind(o);
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut times: Vec<f64> = Vec::new();
    let (mut sent, mut ok, mut refused, mut other, mut lost, mut retrans) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.seconds);
    let give_up = Duration::from_secs(8);
    eprintln!(
        "udp_flood: probing {} from {local} with {} {}/s for {} s",
        o.server, o.method, o.rate, o.seconds
    );
    loop {
        let now = Instant::now();
        if now >= end && pending.is_empty() {
            break;
        }
        if now < end {
            let due = ((now - start).as_secs_f64() * o.rate) as u64 + 1;
            while sent < due {
                sent += 1;
                let bytes = probe_request(o, local, sent);
                let _ = sock.send_to(&bytes, o.server);
                pending.insert(
                    sent,
                    Pending {
                        first: now,
                        next_retry: now + Duration::from_millis(500),
                        interval: Duration::from_millis(500),
                        bytes,
                    },
                );
            }
        }
        let mut gone = Vec::new();
        for (&n, p) in pending.iter_mut() {
            if now - p.first > give_up {
                gone.push(n);
            } else if now >= p.next_retry {
                let _ = sock.send_to(&p.bytes, o.server);
                retrans += 1;
                p.interval = (p.interval * 2).min(Duration::from_secs(4));
                p.next_retry = now + p.interval;
            }
        }
        for n in gone {
            pending.remove(&n);
            lost += 1;
        }
        while let Ok((len, _)) = sock.recv_from(&mut buf) {
            let data = &buf[..len];
            let (Some(code), Some(n)) = (status(data), cseq_of(data)) else {
                continue;
            };
            if code < 200 {
                continue;
            }
            let Some(p) = pending.remove(&n) else {
                continue;
            };
            times.push(p.first.elapsed().as_secs_f64() * 1000.0);
            match code {
                200..=299 => ok += 1,
                503 => refused += 1,
                _ => other += 1,
            }
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "udp_flood: probe sent={sent} answered={} ok={ok} refused_503={refused} other={other} \
         lost={lost} retransmitted={retrans} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} \
         max_ms={:.3} method={}",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.90),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(f64::NAN),
        o.method
    );
}
