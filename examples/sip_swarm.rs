//! sip_swarm: a purpose-built SIP presence watcher load generator, for the saturation rows of
//! benches/sip/compare.sh, where one sipp process runs out of CPU before the server does.
//!
//! It does what benches/sip/watcher.xml does for N sipp calls, on one UDP socket with batched
//! system calls (recvmmsg/sendmmsg): watcher K (`sip:wK@DOMAIN`) SUBSCRIBEs to
//! `sip:user<K % PRES>@DOMAIN` at RATE per second, answers every NOTIFY with 200, and once
//! no NOTIFY has come for IDLE_MS (after every SUBSCRIBE is answered) un-SUBSCRIBEs all its
//! dialogs and exits. No authentication: the server runs open (imppd --open, Kamailio's
//! presence.cfg).
//!
//! ```text
//! cargo run --release --example sip_swarm -- --server 127.0.0.1:5070 --subs 10000 \
//!     --pres 100 --rate 5000 --idle-ms 20000 --csv-dir /tmp/swarm
//! ```
//!
//! With `--stats-file FILE` it also writes, every 100 ms, `epoch subscribed initial later
//! failed closed` (what examples/tls_swarm.rs `watch` writes: benches/network/run.sh puts UDP
//! watchers beside its TCP, TLS and WebSocket ones). Every 100 ms it writes cumulative counters to `<csv-dir>/swarm_counts.csv` and
//! `<csv-dir>/swarm_.csv`, in the layout benches/sip/sipbench.py reads from sipp's
//! `-trace_counts`/`-trace_stat` files: `Swarm_200_Recv` (SUBSCRIBE 200s),
//! `Initial_NOTIFY_Recv` (first NOTIFY of a dialog), `Later_NOTIFY_Recv` (each later NOTIFY,
//! once per CSeq), `Swarm_NOTIFY_Retrans` (a NOTIFY seen again), `FailedCall(C)`,
//! `SuccessfulCall(C)` (dialogs ended by the un-SUBSCRIBE), `Retransmissions(C)` (SUBSCRIBEs
//! sent again) and `FailedUnexpectedMessage(C)`; then `Awaiting_Answer` (NOTIFYs received
//! and not answered yet) and `Max_Unanswered_Per_Dialog` (the most NOTIFYs of one dialog
//! unanswered at once, so far).
//!
//! # Slow watchers: `--answer-delay-ms` and `--expect-file`
//!
//! With `--answer-delay-ms MS` every new NOTIFY is answered only MS after it came (a
//! retransmission of it meanwhile is absorbed, as a transaction layer would; one that comes
//! after the answer gets the answer again at once). The swarm counts, per dialog, the NOTIFYs
//! received and not answered yet: a server that keeps one NOTIFY in flight per dialog
//! (RFC 6665 §4.2.2) never has two of them (`Max_Unanswered_Per_Dialog` stays 1; each time a
//! NOTIFY of a new CSeq arrives while another of its dialog waits for its answer counts as an
//! overlap).
//!
//! With `--expect-file FILE`, the swarm reads each NOTIFY body's sequence number (the
//! `impp-seq:N` that examples/sip_publisher.rs puts in the PIDF note) and keeps the one of
//! the newest NOTIFY (highest CSeq) of each dialog. It goes idle only once FILE exists (the
//! publisher writes it when done: `P N` per presentity, its last state) and no NOTIFY came
//! for IDLE_MS; then, before un-SUBSCRIBing, it checks that every watcher's newest NOTIFY
//! carries its presentity's last sequence number, and prints (and writes to
//! `<csv-dir>/swarm_final.txt`, as `key=value` lines) how many do.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BATCH: usize = 64;
const BUF: usize = 8192;
/// SUBSCRIBE retransmission: first after 500 ms, doubling, at most this many sends in all.
const MAX_SENDS: u8 = 7;

struct Options {
    server: SocketAddr,
    subs: usize,
    pres: usize,
    rate: f64,
    expires: u32,
    idle_ms: u64,
    max_s: u64,
    domain: String,
    port: u16,
    csv_dir: Option<std::path::PathBuf>,
    /// `--stats-file`: every 100 ms a line `epoch subscribed initial later failed closed`, as
    /// examples/tls_swarm.rs `watch` writes (benches/network reads it).
    stats_file: Option<std::path::PathBuf>,
    /// Answer each NOTIFY this long after it came (0: at once).
    answer_delay: Duration,
    /// The publisher's final states (`P N` lines), to check the watchers against.
    expect_file: Option<std::path::PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: sip_swarm --server ADDR:PORT [--subs N] [--pres P] [--rate R] [--expires S]\n\
         \x20      [--idle-ms MS] [--max-s S] [--domain D] [--port PORT] [--csv-dir DIR]\n\
         \x20      [--answer-delay-ms MS] [--expect-file FILE] [--stats-file FILE]"
    );
    std::process::exit(2);
}

fn options() -> Options {
    let mut o = Options {
        server: "127.0.0.1:5060".parse().unwrap(),
        subs: 1000,
        pres: 100,
        rate: 1000.0,
        expires: 600,
        idle_ms: 10_000,
        max_s: 600,
        domain: "example.test".into(),
        port: 0,
        csv_dir: None,
        stats_file: None,
        answer_delay: Duration::ZERO,
        expect_file: None,
    };
    let mut server = false;
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let bad = |what: &str| -> ! {
            eprintln!("sip_swarm: {name} {value}: {what}");
            std::process::exit(2)
        };
        match name.as_str() {
            "--server" => {
                o.server = value.parse().unwrap_or_else(|_| bad("not ADDR:PORT"));
                server = true;
            }
            "--subs" => o.subs = value.parse().unwrap_or_else(|_| bad("not a count")),
            "--pres" => o.pres = value.parse().unwrap_or_else(|_| bad("not a count")),
            "--rate" => o.rate = value.parse().unwrap_or_else(|_| bad("not a rate")),
            "--expires" => o.expires = value.parse().unwrap_or_else(|_| bad("not seconds")),
            "--idle-ms" => o.idle_ms = value.parse().unwrap_or_else(|_| bad("not ms")),
            "--max-s" => o.max_s = value.parse().unwrap_or_else(|_| bad("not seconds")),
            "--domain" => o.domain = value,
            "--port" => o.port = value.parse().unwrap_or_else(|_| bad("not a port")),
            "--csv-dir" => o.csv_dir = Some(value.into()),
            "--stats-file" => o.stats_file = Some(value.into()),
            "--answer-delay-ms" => {
                o.answer_delay =
                    Duration::from_millis(value.parse().unwrap_or_else(|_| bad("not ms")))
            }
            "--expect-file" => o.expect_file = Some(value.into()),
            _ => usage(),
        }
    }
    if !server || o.pres == 0 || o.subs < o.pres || o.rate <= 0.0 {
        eprintln!("sip_swarm: need --server, --subs >= --pres >= 1 and --rate > 0");
        std::process::exit(2);
    }
    o
}

/// One watcher's subscription dialog.
#[derive(Default)]
struct Dialog {
    /// The server's tag (from the 200 or from the first NOTIFY's From).
    remote_tag: Option<String>,
    /// The server's Contact, the Request-URI of the un-SUBSCRIBE.
    target: Option<String>,
    answered: bool,
    notified: bool,
    /// Highest NOTIFY CSeq seen, and which of the 64 below it were seen too: a server with
    /// several workers may deliver NOTIFYs out of order, and a late one is not a repeat.
    last_notify_cseq: u32,
    seen: u64,
    /// CSeq of the outstanding SUBSCRIBE, when it waits for its answer.
    pending: Option<u32>,
    sends: u8,
    next_retry: Option<Instant>,
    unsubscribed: bool,
    ended: bool,
    failed: bool,
    /// CSeqs of the NOTIFYs received and not answered yet (answers held back by
    /// `--answer-delay-ms`); a server keeping one NOTIFY in flight per dialog never makes
    /// this longer than 1.
    awaiting: Vec<u32>,
    /// The CSeq of the newest NOTIFY, and the `impp-seq:` number its body carried.
    newest_cseq: u32,
    newest_seq: Option<u64>,
}

#[derive(Default)]
struct Counters {
    ok_200: u64,
    initial: u64,
    later: u64,
    notify_retrans: u64,
    failed: u64,
    successful: u64,
    retrans: u64,
    unexpected: u64,
    /// NOTIFYs received and not answered yet, over all dialogs.
    awaiting: u64,
    /// The most NOTIFYs of one dialog unanswered at once.
    max_unanswered: u64,
    /// NOTIFYs of a new CSeq that came while another of their dialog waited for its answer.
    overlaps: u64,
}

struct Swarm {
    o: Options,
    sock: UdpSocket,
    local: SocketAddrV4,
    tag: String,
    dialogs: Vec<Dialog>,
    c: Counters,
    out: Vec<(SocketAddr, Vec<u8>)>,
    last_notify: Instant,
    /// Answers held back (`--answer-delay-ms`), in the order they fall due: when, the
    /// watcher, the NOTIFY's CSeq, where to and the bytes.
    delayed: VecDeque<(Instant, usize, u32, SocketAddr, Vec<u8>)>,
}

fn header<'a>(msg: &'a str, long: &str, short: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(short))
                .then(|| value.trim())
        })
}

fn tag_of(value: &str) -> Option<String> {
    let at = value.find(";tag=")?;
    let rest = &value[at + 5..];
    let end = rest.find([';', '>', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The `impp-seq:N` number of a NOTIFY body (examples/sip_publisher.rs puts it in the note).
fn seq_of(body: &str) -> Option<u64> {
    let at = body.find("impp-seq:")? + "impp-seq:".len();
    let digits: &str = body[at..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

fn uri_of(value: &str) -> Option<String> {
    let start = value.find('<')? + 1;
    let end = value[start..].find('>')? + start;
    Some(value[start..end].to_string())
}

impl Swarm {
    fn call_id(&self, k: usize) -> String {
        format!("sw{k}.{}@{}", self.tag, self.local.ip())
    }

    /// The watcher index of a Call-ID of ours.
    fn watcher(&self, call_id: &str) -> Option<usize> {
        let rest = call_id.strip_prefix("sw")?;
        let (k, rest) = rest.split_once('.')?;
        let (tag, _) = rest.split_once('@')?;
        if tag != self.tag {
            return None;
        }
        k.parse().ok().filter(|k| *k < self.dialogs.len())
    }

    /// A SUBSCRIBE for watcher k; a retransmission is the same text (same branch).
    fn subscribe(&mut self, k: usize, cseq: u32, expires: u32) {
        let d = &self.dialogs[k];
        let (local, domain) = (self.local, &self.o.domain);
        let p = k % self.o.pres;
        let (uri, to) = match (&d.target, &d.remote_tag) {
            (Some(target), Some(tag)) if expires == 0 => {
                (target.clone(), format!("<sip:user{p}@{domain}>;tag={tag}"))
            }
            _ => (
                format!("sip:user{p}@{domain}"),
                format!("<sip:user{p}@{domain}>"),
            ),
        };
        let msg = format!(
            "SUBSCRIBE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}-{k}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:w{k}@{domain}>;tag=w{k}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:w{k}@{local}>\r\n\
             Event: presence\r\n\
             Accept: application/pidf+xml\r\n\
             Expires: {expires}\r\n\
             Content-Length: 0\r\n\r\n",
            tag = self.tag,
            call_id = self.call_id(k),
        );
        self.out.push((self.o.server, msg.into_bytes()));
    }

    fn send_subscribe(&mut self, k: usize, cseq: u32, expires: u32, now: Instant) {
        self.subscribe(k, cseq, expires);
        let d = &mut self.dialogs[k];
        d.sends += 1;
        d.pending = Some(cseq);
        d.next_retry = Some(now + Duration::from_millis(500 << (d.sends - 1).min(3)));
    }

    fn handle(&mut self, data: &[u8], from: SocketAddr) {
        let Ok(msg) = std::str::from_utf8(data) else {
            self.c.unexpected += 1;
            return;
        };
        let k = header(msg, "Call-ID", "i").and_then(|c| self.watcher(c));
        let Some(k) = k else {
            self.c.unexpected += 1;
            return;
        };
        let cseq: u32 = header(msg, "CSeq", "")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        if let Some(status) = msg.strip_prefix("SIP/2.0 ") {
            let code: u16 = status.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let d = &mut self.dialogs[k];
            if d.pending != Some(cseq) || code < 200 {
                return; // a late or provisional answer
            }
            d.pending = None;
            d.next_retry = None;
            if !(200..300).contains(&code) {
                if !d.failed {
                    d.failed = true;
                    self.c.failed += 1;
                }
                return;
            }
            if d.unsubscribed {
                if !d.ended {
                    d.ended = true;
                    self.c.successful += 1;
                }
                return;
            }
            if !d.answered {
                d.answered = true;
                self.c.ok_200 += 1;
            }
            if let Some(to) = header(msg, "To", "t") {
                d.remote_tag = d.remote_tag.take().or_else(|| tag_of(to));
            }
            if let Some(contact) = header(msg, "Contact", "m") {
                d.target = uri_of(contact);
            }
            return;
        }
        if !msg.starts_with("NOTIFY ") {
            self.c.unexpected += 1;
            return;
        }
        self.last_notify = Instant::now();
        let d = &mut self.dialogs[k];
        if d.remote_tag.is_none() {
            d.remote_tag = header(msg, "From", "f").and_then(tag_of);
        }
        if d.target.is_none() {
            d.target = header(msg, "Contact", "m").and_then(uri_of);
        }
        let mut new = true;
        if !d.notified {
            d.notified = true;
            d.last_notify_cseq = cseq;
            d.seen = 1;
            self.c.initial += 1;
        } else if cseq > d.last_notify_cseq {
            let shift = cseq - d.last_notify_cseq;
            d.seen = if shift >= 64 { 0 } else { d.seen << shift } | 1;
            d.last_notify_cseq = cseq;
            self.c.later += 1;
        } else {
            let back = d.last_notify_cseq - cseq;
            if back < 64 && d.seen & (1 << back) == 0 {
                d.seen |= 1 << back;
                self.c.later += 1;
            } else {
                self.c.notify_retrans += 1;
                new = false;
            }
        }
        if new && cseq >= d.newest_cseq {
            d.newest_cseq = cseq;
            d.newest_seq = msg
                .split_once("\r\n\r\n")
                .and_then(|(_, body)| seq_of(body));
        }
        let delay = self.o.answer_delay;
        if !delay.is_zero() {
            if d.awaiting.contains(&cseq) {
                return; // a retransmission while its answer is held back: absorbed
            }
            if new {
                if !d.awaiting.is_empty() {
                    self.c.overlaps += 1;
                }
                d.awaiting.push(cseq);
                self.c.awaiting += 1;
                self.c.max_unanswered = self.c.max_unanswered.max(d.awaiting.len() as u64);
            }
        }
        let terminated =
            header(msg, "Subscription-State", "").is_some_and(|s| s.starts_with("terminated"));
        if terminated && d.unsubscribed && !d.ended {
            d.ended = true;
            self.c.successful += 1;
        }
        // 200 OK with the request's Vias, From, To, Call-ID and CSeq.
        let mut reply = String::with_capacity(512);
        reply.push_str("SIP/2.0 200 OK\r\n");
        for line in msg.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").trim();
            if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                reply.push_str(line);
                reply.push_str("\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        if !delay.is_zero() && self.dialogs[k].awaiting.contains(&cseq) {
            self.delayed
                .push_back((Instant::now() + delay, k, cseq, from, reply.into_bytes()));
            return;
        }
        self.out.push((from, reply.into_bytes()));
    }

    /// The held-back answers due by `now` go out.
    fn release(&mut self, now: Instant) {
        while self.delayed.front().is_some_and(|(at, ..)| *at <= now) {
            let (_, k, cseq, to, bytes) = self.delayed.pop_front().expect("looked at");
            let d = &mut self.dialogs[k];
            if let Some(i) = d.awaiting.iter().position(|c| *c == cseq) {
                d.awaiting.swap_remove(i);
                self.c.awaiting -= 1;
            }
            self.out.push((to, bytes));
        }
    }

    /// Every watcher's newest NOTIFY against its presentity's final state (`P N` lines).
    fn check_final(&self, expect: &str) -> Vec<(&'static str, u64)> {
        let mut last = vec![None; self.o.pres];
        for line in expect.lines() {
            let mut it = line.split_whitespace();
            if let (Some(p), Some(n)) = (it.next(), it.next()) {
                if let (Ok(p), Ok(n)) = (p.parse::<usize>(), n.parse::<u64>()) {
                    if p < last.len() {
                        last[p] = Some(n);
                    }
                }
            }
        }
        let (mut on, mut behind, mut ahead, mut no_seq, mut not_subscribed) = (0, 0, 0, 0, 0);
        let mut shown = 0;
        for (k, d) in self.dialogs.iter().enumerate() {
            if !d.notified || d.failed {
                not_subscribed += 1;
                continue;
            }
            let want = last[k % self.o.pres];
            match (d.newest_seq, want) {
                (Some(got), Some(want)) if got == want => on += 1,
                (got, want) => {
                    match (got, want) {
                        (None, _) => no_seq += 1,
                        (Some(g), Some(w)) if g > w => ahead += 1,
                        _ => behind += 1,
                    }
                    if shown < 5 {
                        shown += 1;
                        eprintln!(
                            "sip_swarm: watcher {k} (user{}): newest NOTIFY CSeq {} carries {got:?}, \
                             the last published is {want:?}",
                            k % self.o.pres,
                            d.newest_cseq
                        );
                    }
                }
            }
        }
        vec![
            ("watchers", self.dialogs.len() as u64),
            ("on_final_state", on),
            ("behind", behind),
            ("ahead", ahead),
            ("without_sequence", no_seq),
            ("not_subscribed", not_subscribed),
            ("max_unanswered_per_dialog", self.c.max_unanswered),
            ("overlaps", self.c.overlaps),
        ]
    }

    fn flush(&mut self) {
        let fd = self.sock.as_raw_fd();
        while !self.out.is_empty() {
            let n = self.out.len().min(BATCH);
            let mut addrs: Vec<libc::sockaddr_in> = Vec::with_capacity(n);
            let mut iovs: Vec<libc::iovec> = Vec::with_capacity(n);
            for (addr, bytes) in &self.out[..n] {
                let SocketAddr::V4(a) = addr else {
                    panic!("IPv4 only")
                };
                addrs.push(libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                });
                iovs.push(libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                });
            }
            let mut msgs: Vec<libc::mmsghdr> = (0..n)
                .map(|i| {
                    // SAFETY: an all-zero msghdr is valid; the pointers set below point into
                    // `addrs` and `iovs`, which outlive the sendmmsg call.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
                    m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                    m.msg_hdr.msg_iov = &mut iovs[i];
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            // SAFETY: `msgs` holds n initialised headers whose buffers stay alive meanwhile.
            let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
            if sent <= 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Send buffer full or another transient error: drop the first datagram like
                // the network would; retransmissions recover it.
                self.out.remove(0);
                continue;
            }
            self.out.drain(..sent as usize);
        }
    }

    /// Receives one batch (waits up to the socket timeout for the first datagram).
    fn receive(&mut self, bufs: &mut [[u8; BUF]]) -> usize {
        let fd = self.sock.as_raw_fd();
        let mut addrs: Vec<libc::sockaddr_in> = vec![
            // SAFETY: sockaddr_in is plain data; all zero is valid.
            unsafe { std::mem::zeroed() };
            BATCH
        ];
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: BUF,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
            .map(|i| {
                // SAFETY: as in flush; the pointers stay valid during recvmmsg.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = &mut iovs[i];
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: BATCH headers, each pointing at a BUF-byte buffer and an address slot.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        for i in 0..n {
            let a = &addrs[i];
            let from = SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            ));
            let len = msgs[i].msg_len as usize;
            let data = bufs[i][..len].to_vec();
            self.handle(&data, from);
        }
        n
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Csv(Vec<std::fs::File>, Option<std::fs::File>);

impl Csv {
    fn open(dir: Option<&std::path::Path>, stats: Option<&std::path::Path>) -> Csv {
        let stats = stats.map(|p| std::fs::File::create(p).expect("create the stats file"));
        let Some(dir) = dir else {
            return Csv(Vec::new(), stats);
        };
        std::fs::create_dir_all(dir).expect("create the csv directory");
        let files = ["swarm_counts.csv", "swarm_.csv"]
            .iter()
            .map(|name| std::fs::File::create(dir.join(name)).expect("create a csv file"))
            .collect();
        let mut csv = Csv(files, stats);
        csv.line(
            "CurrentTime;Swarm_200_Recv;Initial_NOTIFY_Recv;Later_NOTIFY_Recv;\
             Swarm_NOTIFY_Retrans;FailedCall(C);SuccessfulCall(C);Retransmissions(C);\
             FailedUnexpectedMessage(C);Awaiting_Answer;Max_Unanswered_Per_Dialog",
        );
        csv
    }

    fn line(&mut self, text: &str) {
        for f in &mut self.0 {
            let _ = writeln!(f, "{text}");
            let _ = f.flush();
        }
    }

    fn sample(&mut self, c: &Counters) {
        if let Some(f) = &mut self.1 {
            let _ = writeln!(
                f,
                "{:.3} {} {} {} {} 0",
                epoch(),
                c.ok_200,
                c.initial,
                c.later,
                c.failed
            );
            let _ = f.flush();
        }
        // sipp's time cell: date, time and epoch separated by tabs (sipbench.py reads the last).
        self.line(&format!(
            "-\t-\t{:.6};{};{};{};{};{};{};{};{};{};{}",
            epoch(),
            c.ok_200,
            c.initial,
            c.later,
            c.notify_retrans,
            c.failed,
            c.successful,
            c.retrans,
            c.unexpected,
            c.awaiting,
            c.max_unanswered
        ));
    }
}

fn main() {
    let o = options();
    let sock = UdpSocket::bind(("127.0.0.1", o.port)).expect("bind the UDP socket");
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    // A large receive buffer: NOTIFY bursts of a PUBLISH storm arrive faster than one loop.
    let s2 = socket2::SockRef::from(&sock);
    let _ = s2.set_recv_buffer_size(8 << 20);
    let _ = s2.set_send_buffer_size(8 << 20);
    let SocketAddr::V4(local) = sock.local_addr().unwrap() else {
        panic!("IPv4 only")
    };
    let mut csv = Csv::open(o.csv_dir.as_deref(), o.stats_file.as_deref());
    let subs = o.subs;
    let mut sw = Swarm {
        dialogs: (0..subs).map(|_| Dialog::default()).collect(),
        tag: format!("{:x}", std::process::id()),
        o,
        sock,
        local,
        c: Counters::default(),
        out: Vec::new(),
        last_notify: Instant::now(),
        delayed: VecDeque::new(),
    };
    eprintln!(
        "sip_swarm: {} watchers from {local} to {} at {}/s",
        subs, sw.o.server, sw.o.rate
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(sw.o.max_s);
    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut next_new = 0usize;
    let mut next_sample = start;
    // Dialogs waiting for an answer, checked for retransmission in order.
    let mut waiting: VecDeque<usize> = VecDeque::new();
    let mut unsub_from: Option<Instant> = None;
    let mut next_unsub = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            eprintln!("sip_swarm: time limit reached");
            break;
        }
        // New SUBSCRIBEs due by now at the offered rate.
        let due = ((now - start).as_secs_f64() * sw.o.rate) as usize;
        while next_new < subs.min(due + 1) {
            sw.send_subscribe(next_new, 1, sw.o.expires, now);
            waiting.push_back(next_new);
            next_new += 1;
        }
        // Retransmissions of unanswered SUBSCRIBEs.
        for _ in 0..waiting.len() {
            let k = waiting.pop_front().unwrap();
            let d = &sw.dialogs[k];
            let Some(cseq) = d.pending else { continue };
            if d.next_retry.is_some_and(|t| t > now) {
                waiting.push_back(k);
                continue;
            }
            if d.sends >= MAX_SENDS {
                let d = &mut sw.dialogs[k];
                d.pending = None;
                if !d.failed {
                    d.failed = true;
                    sw.c.failed += 1;
                }
                continue;
            }
            let expires = if sw.dialogs[k].unsubscribed {
                0
            } else {
                sw.o.expires
            };
            sw.c.retrans += 1;
            sw.send_subscribe(k, cseq, expires, now);
            waiting.push_back(k);
        }
        // Idle: every SUBSCRIBE answered and no NOTIFY for idle_ms; un-SUBSCRIBE at the rate.
        let settled = next_new == subs && waiting.is_empty() && sw.delayed.is_empty();
        // With --expect-file, not before the publisher is done (the file exists).
        let idle = unsub_from.is_none()
            && settled
            && now.duration_since(sw.last_notify) >= Duration::from_millis(sw.o.idle_ms);
        let expected = match &sw.o.expect_file {
            _ if !idle => None,
            None => Some(String::new()),
            Some(path) => std::fs::read_to_string(path).ok(),
        };
        if idle && expected.is_some() {
            if sw.o.expect_file.is_some() {
                let figures = sw.check_final(expected.as_deref().unwrap_or(""));
                let line = figures
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                println!("sip_swarm: final state: {line}");
                if let Some(dir) = &sw.o.csv_dir {
                    let text: String = figures.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    let _ = std::fs::write(dir.join("swarm_final.txt"), text);
                }
            }
            eprintln!("sip_swarm: idle; un-SUBSCRIBE");
            unsub_from = Some(now);
        }
        if let Some(t0) = unsub_from {
            let due = ((now - t0).as_secs_f64() * sw.o.rate) as usize;
            while next_unsub < subs.min(due + 1) {
                let k = next_unsub;
                next_unsub += 1;
                let d = &mut sw.dialogs[k];
                if !d.answered || d.failed || d.target.is_none() {
                    continue;
                }
                d.unsubscribed = true;
                d.sends = 0;
                sw.send_subscribe(k, 2, 0, now);
                waiting.push_back(k);
            }
            let open = sw
                .dialogs
                .iter()
                .any(|d| d.unsubscribed && !d.ended && !d.failed);
            if next_unsub == subs && (!open || now - t0 > Duration::from_secs(30)) {
                break;
            }
        }
        sw.release(now);
        sw.flush();
        sw.receive(&mut bufs);
        sw.release(Instant::now());
        sw.flush();
        if now >= next_sample {
            csv.sample(&sw.c);
            next_sample = now + Duration::from_millis(100);
        }
    }
    // Answer what is still in flight for a moment (final NOTIFYs), then the last sample.
    let end = Instant::now() + sw.o.answer_delay + Duration::from_millis(500);
    while Instant::now() < end {
        sw.receive(&mut bufs);
        sw.release(Instant::now());
        sw.flush();
    }
    csv.sample(&sw.c);
    let c = &sw.c;
    println!(
        "sip_swarm: {} SUBSCRIBE 200s, {} initial NOTIFYs, {} later NOTIFYs, {} NOTIFY \
         retransmissions, {} failed, {} ended, {} SUBSCRIBE retransmissions, {} unexpected, \
         at most {} NOTIFYs of one dialog unanswered at once ({} overlaps)",
        c.ok_200,
        c.initial,
        c.later,
        c.notify_retrans,
        c.failed,
        c.successful,
        c.retrans,
        c.unexpected,
        c.max_unanswered,
        c.overlaps
    );
}
