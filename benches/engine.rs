//! Engine throughput, latency and memory, through the public API only.
//!
//! Run: `cargo bench --bench engine` (about 2-3 minutes). `IMPP_BENCH_SCALE=0.1` shrinks the
//! populations and the measuring windows for a quick run. Every figure is a median (or a
//! percentile over all samples) because the machine this runs on may be shared and noisy;
//! figures meant to be compared are measured in alternating rounds of the same run.
//!
//! What is measured (each section prints how):
//! 1. setup: presentities x 50 watchers, default policy Allow, 2 workers, the default queue
//!    capacity (65536); one publication per presentity, so every watcher of a presentity is
//!    notified with the same `Arc<Document>`;
//! 2. and 3. notifications consumed per second by a polling consumer (`next_event`, one
//!    event per call), a batch-polling consumer (`next_events`, up to 256 per call; added
//!    with that API, the `next_event` figures are measured as before) and by the event
//!    callback, while publisher threads modify publications round-robin;
//! 4. publish-to-delivery latency at a moderate rate, the same three consumers;
//! 5. the floor: one-way hand-off latency of a bare channel between two threads;
//! 6. resident memory per subscription at 1,000,000 subscriptions (in a child process, so the
//!    heap is fresh).

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use impp::doc::pidf::{Basic, Presence, Tuple};
use impp::engine::{
    AuthAction, Document, Engine, EngineConfig, Event, Notification, Package, SubscribeRequest,
};
use impp::uri::Uri;

const WATCHERS: usize = 50;
/// Threads issuing the setup calls (each call is a round trip to a shard; several in flight
/// keep both shards busy).
const SETUP_THREADS: usize = 4;

fn scale() -> f64 {
    std::env::var("IMPP_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()).round() as usize).max(WATCHERS + 1)
}

/// A measuring window: 1 s at full scale, never below 200 ms.
fn window() -> Duration {
    Duration::from_secs_f64((1.0 * scale()).clamp(0.2, 1.0))
}

fn rounds(full: usize) -> usize {
    if scale() >= 1.0 {
        full
    } else {
        full.min(3)
    }
}

fn user(n: usize) -> String {
    format!("sip:u{n}@example.test")
}

fn uri(s: &str) -> Uri {
    s.parse().expect("benchmark URI parses")
}

/// Watcher `k` of presentity `i` among `population` users: every user watches 50 others and
/// is watched by 50.
fn watcher_of(i: usize, k: usize, population: usize) -> usize {
    (i + k + 1) % population
}

fn presence(entity: &str, tuple_id: String, open: bool) -> Document {
    let mut p = Presence::new(entity);
    p.tuples.push(Tuple::new(
        tuple_id,
        if open { Basic::Open } else { Basic::Closed },
    ));
    Document::Presence(p)
}

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        default_policy: AuthAction::Allow,
        // queue_capacity: the default, 65536.
        ..EngineConfig::default()
    }
}

fn vm_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Percentile `p` (0..=100) of sorted nanoseconds, in microseconds.
fn pct_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn percentiles(label: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    println!(
        "  {label:<44} n={:<8} p50 {:>7.1} us  p99 {:>7.1} us  p99.9 {:>8.1} us  max {:>8.1} us",
        samples.len(),
        pct_us(samples, 50.0),
        pct_us(samples, 99.0),
        pct_us(samples, 99.9),
        pct_us(samples, 100.0),
    );
}

/// Pops events until the engine is quiet: `sync` first, so everything produced is queued.
fn drain(engine: &Engine) -> u64 {
    engine.sync().expect("sync");
    let mut n = 0;
    while engine.next_event(Some(Duration::ZERO)).is_some() {
        n += 1;
    }
    n
}

/// Runs `work(i)` for i in 0..count on `SETUP_THREADS` threads while another thread drains
/// the events it causes (so the queue stays short); returns the events drained, with
/// `inspect` called on each.
fn with_drain(
    engine: &Engine,
    count: usize,
    work: impl Fn(usize) + Sync,
    mut inspect: impl FnMut(&Event) + Send,
) -> u64 {
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let drainer = s.spawn(|| {
            let mut n = 0u64;
            loop {
                match engine.next_event(Some(Duration::from_millis(20))) {
                    Some(e) => {
                        inspect(&e);
                        n += 1;
                    }
                    None if done.load(Ordering::Acquire) => {
                        while let Some(e) = engine.next_event(Some(Duration::ZERO)) {
                            inspect(&e);
                            n += 1;
                        }
                        return n;
                    }
                    None => {}
                }
            }
        });
        thread::scope(|w| {
            for t in 0..SETUP_THREADS {
                let work = &work;
                w.spawn(move || {
                    for i in (t..count).step_by(SETUP_THREADS) {
                        work(i);
                    }
                });
            }
        });
        engine.sync().expect("sync");
        done.store(true, Ordering::Release);
        drainer.join().expect("drain thread")
    })
}

fn subscribe_all(engine: &Engine, presentities: usize, inspect: impl FnMut(&Event) + Send) -> u64 {
    with_drain(
        engine,
        presentities,
        |i| {
            for k in 0..WATCHERS {
                engine
                    .subscribe(SubscribeRequest::new(
                        uri(&user(watcher_of(i, k, presentities))),
                        uri(&user(i)),
                        Package::Presence,
                    ))
                    .expect("subscribe");
            }
        },
        inspect,
    )
}

// ------------------------------------------------------------------------------------------
// 1. Setup
// ------------------------------------------------------------------------------------------

struct World {
    engine: Engine,
    presentities: Vec<Uri>,
    entities: Vec<String>,
    /// Current entity tag of each presentity's publication.
    etags: Vec<Mutex<String>>,
}

fn setup(presentities: usize) -> World {
    println!(
        "1. setup: {presentities} presentities x {WATCHERS} watchers = {} subscriptions; \
         EngineConfig {{ workers: 2, default_policy: Allow, queue_capacity: default 65536 }}",
        presentities * WATCHERS
    );
    let engine = Engine::new(config()).expect("engine");
    let start = Instant::now();
    let events = subscribe_all(&engine, presentities, |_| {});
    let subscribed = start.elapsed();
    let stats = engine.stats();
    println!(
        "   subscribed in {:.2} s ({:.0} subscribe calls/s from {SETUP_THREADS} threads); \
         {events} setup events drained; active {}",
        subscribed.as_secs_f64(),
        (presentities * WATCHERS) as f64 / subscribed.as_secs_f64(),
        stats.subscriptions_active
    );
    assert_eq!(stats.subscriptions_active, (presentities * WATCHERS) as u64);

    let entities: Vec<String> = (0..presentities).map(user).collect();
    let uris: Vec<Uri> = entities.iter().map(|e| uri(e)).collect();
    let etags: Vec<Mutex<String>> = (0..presentities)
        .map(|_| Mutex::new(String::new()))
        .collect();
    // Every watcher of a presentity must get the same document: count distinct documents.
    let mut documents: HashSet<usize> = HashSet::new();
    let mut notified = 0u64;
    let start = Instant::now();
    let events = with_drain(
        &engine,
        presentities,
        |i| {
            let etag = engine
                .publish(
                    &uris[i],
                    presence(&entities[i], "t0".into(), true),
                    Some(86400),
                )
                .expect("publish");
            *etags[i].lock().unwrap() = etag;
        },
        |e| {
            if let Event::Notification(Notification {
                document: Some(d), ..
            }) = e
            {
                notified += 1;
                documents.insert(Arc::as_ptr(d) as usize);
            }
        },
    );
    println!(
        "   published once per presentity in {:.2} s: {events} events drained, {notified} \
         notifications sharing {} distinct Arc<Document> ({:.0} watchers per document)",
        start.elapsed().as_secs_f64(),
        documents.len(),
        notified as f64 / documents.len().max(1) as f64
    );
    World {
        engine,
        presentities: uris,
        entities,
        etags,
    }
}

// ------------------------------------------------------------------------------------------
// 2./3. Throughput
// ------------------------------------------------------------------------------------------

/// Changes a batch-publishing thread gives `modify_publications` per call.
const PUBLISH_BATCH: usize = 64;

/// Modifies publications round-robin over its share of the presentities until `stop`: one
/// `modify_publication` per change, or (`batch`) `PUBLISH_BATCH` changes per
/// `modify_publications` call.
fn publisher(
    world: &World,
    me: usize,
    of: usize,
    batch: bool,
    stop: &AtomicBool,
    published: &AtomicU64,
) {
    if batch {
        return batch_publisher(world, me, of, stop, published);
    }
    let n = world.presentities.len();
    let mut open = false;
    let mut i = me;
    while !stop.load(Ordering::Relaxed) {
        open = !open;
        let doc = presence(&world.entities[i], "x".into(), open);
        let mut etag = world.etags[i].lock().unwrap();
        *etag = world
            .engine
            .modify_publication(&etag, doc)
            .expect("modify publication");
        drop(etag);
        published.fetch_add(1, Ordering::Relaxed);
        i += of;
        if i >= n {
            i = me;
        }
    }
}

fn batch_publisher(world: &World, me: usize, of: usize, stop: &AtomicBool, published: &AtomicU64) {
    let n = world.presentities.len();
    let mut open = false;
    let mut i = me;
    while !stop.load(Ordering::Relaxed) {
        open = !open;
        let mut picked = Vec::with_capacity(PUBLISH_BATCH);
        let mut changes = Vec::with_capacity(PUBLISH_BATCH);
        for _ in 0..PUBLISH_BATCH {
            let etag = world.etags[i].lock().unwrap().clone();
            changes.push((etag, presence(&world.entities[i], "x".into(), open)));
            picked.push(i);
            i += of;
            if i >= n {
                i = me;
            }
        }
        let results = world.engine.modify_publications(changes);
        for (i, result) in picked.into_iter().zip(results) {
            *world.etags[i].lock().unwrap() = result.expect("modify publication");
        }
        published.fetch_add(PUBLISH_BATCH as u64, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Poll,
    PollBatch,
    Callback,
}

/// Events a batch-polling consumer takes per `next_events` call at most.
const POLL_BATCH: usize = 256;
const MODES: [Mode; 3] = [Mode::Poll, Mode::PollBatch, Mode::Callback];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Poll => "polling (next_event)",
            Mode::PollBatch => "polling (next_events, 256)",
            Mode::Callback => "callback (set_event_callback)",
        }
    }
}

/// A consumer that counts notifications into `count` (single writer: load + store, no
/// locked instruction) until stopped.
struct Consumer<'s> {
    mode: Mode,
    stop: Arc<AtomicBool>,
    poller: Option<thread::ScopedJoinHandle<'s, ()>>,
}

fn start_consumer<'s>(
    s: &'s thread::Scope<'s, '_>,
    engine: &'s Engine,
    mode: Mode,
    count: Arc<AtomicU64>,
) -> Consumer<'s> {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = match mode {
        Mode::Poll => {
            let stop = stop.clone();
            Some(s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Event::Notification(_)) =
                        engine.next_event(Some(Duration::from_millis(50)))
                    {
                        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    }
                }
            }))
        }
        Mode::PollBatch => {
            let stop = stop.clone();
            Some(s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let batch = engine.next_events(POLL_BATCH, Some(Duration::from_millis(50)));
                    let notes = batch
                        .iter()
                        .filter(|e| matches!(e, Event::Notification(_)))
                        .count() as u64;
                    count.store(count.load(Ordering::Relaxed) + notes, Ordering::Relaxed);
                }
            }))
        }
        Mode::Callback => {
            engine
                .set_event_callback(Some(Box::new(move |e: &Event| {
                    if let Event::Notification(_) = e {
                        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    }
                })))
                .expect("set callback");
            None
        }
    };
    Consumer { mode, stop, poller }
}

impl Consumer<'_> {
    fn stop(self, engine: &Engine) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.poller {
            p.join().expect("poller");
        }
        if self.mode == Mode::Callback {
            engine.set_event_callback(None).expect("remove callback");
        }
    }
}

fn throughput(world: &World, publishers: usize, batch: bool) {
    let engine = &world.engine;
    let rounds = rounds(5);
    let win = window();
    let how = if batch {
        format!("in batches of {PUBLISH_BATCH} (modify_publications: one round trip per shard per batch)")
    } else {
        "(each a round trip to its shard)".to_string()
    };
    println!(
        "2./3. throughput: {publishers} publisher thread(s) modify publications round-robin \
         {how}, 50 notifications each; consumers alternate \
         polling one by one / polling in batches / callback, {rounds} rounds of ({:.1} s settle + {:.1} s window) each; \
         figure = notifications consumed / s, median of the windows",
        win.as_secs_f64() * 0.3,
        win.as_secs_f64()
    );
    let stop = AtomicBool::new(false);
    let published = AtomicU64::new(0);
    let mut results: Vec<(Mode, f64, f64, f64, f64)> = Vec::new();
    thread::scope(|s| {
        for me in 0..publishers {
            let (stop, published) = (&stop, &published);
            s.spawn(move || publisher(world, me, publishers, batch, stop, published));
        }
        for _ in 0..rounds {
            for mode in MODES {
                let count = Arc::new(AtomicU64::new(0));
                let consumer = start_consumer(s, engine, mode, count.clone());
                thread::sleep(win.mul_f64(0.3));
                let (c0, p0, s0, t0) = (
                    count.load(Ordering::Relaxed),
                    published.load(Ordering::Relaxed),
                    engine.stats(),
                    Instant::now(),
                );
                thread::sleep(win);
                let (c1, p1, s1, t1) = (
                    count.load(Ordering::Relaxed),
                    published.load(Ordering::Relaxed),
                    engine.stats(),
                    Instant::now(),
                );
                consumer.stop(engine);
                let secs = (t1 - t0).as_secs_f64();
                results.push((
                    mode,
                    (c1 - c0) as f64 / secs,
                    (p1 - p0) as f64 / secs,
                    (s1.notifications_sent - s0.notifications_sent) as f64 / secs,
                    (s1.notifications_merged - s0.notifications_merged) as f64 / secs,
                ));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    drain(engine);
    for mode in MODES {
        let pick = |f: fn(&(Mode, f64, f64, f64, f64)) -> f64| {
            let mut v: Vec<f64> = results.iter().filter(|r| r.0 == mode).map(f).collect();
            median(&mut v)
        };
        let windows: Vec<String> = results
            .iter()
            .filter(|r| r.0 == mode)
            .map(|r| format!("{:.2}", r.1 / 1e6))
            .collect();
        println!(
            "  {:<30} {:>6.2} M notifications/s consumed (windows: {} M)  [publishes {:.0}/s, \
             produced {:.2} M/s, merged at the bound {:.2} M/s]",
            mode.name(),
            pick(|r| r.1) / 1e6,
            windows.join(" "),
            pick(|r| r.2),
            pick(|r| r.3) / 1e6,
            pick(|r| r.4) / 1e6,
        );
    }
}

// ------------------------------------------------------------------------------------------
// 4./5. Latency and the floor
// ------------------------------------------------------------------------------------------

/// Publish instants, by sequence number (encoded in the tuple id as `s<seq>`), in ns since
/// `base`.
struct Stamps {
    base: Instant,
    at: Vec<AtomicU64>,
}

fn seq_of(n: &Notification) -> Option<usize> {
    match n.document.as_deref() {
        Some(Document::Presence(p)) => p.tuples.first()?.id.strip_prefix('s')?.parse().ok(),
        _ => None,
    }
}

/// Latency samples: every notification, and the first watcher of each publish.
#[derive(Default)]
struct Samples {
    all: Vec<u64>,
    first: Vec<u64>,
    /// The publisher's `modify_publication` call (a round trip to the shard).
    call: Vec<u64>,
    last_seq: usize,
}

impl Samples {
    fn record(&mut self, stamps: &Stamps, n: &Notification) {
        let now = stamps.base.elapsed().as_nanos() as u64;
        let Some(seq) = seq_of(n) else { return };
        let published = stamps.at[seq].load(Ordering::Relaxed);
        let latency = now.saturating_sub(published);
        self.all.push(latency);
        if seq != self.last_seq {
            self.first.push(latency);
            self.last_seq = seq;
        }
    }
}

/// Publishes at `rate` per second for `span`, while a consumer in `mode` records latencies.
fn latency_window(
    world: &World,
    mode: Mode,
    rate: f64,
    span: Duration,
    stamps: &Arc<Stamps>,
    next_seq: &mut usize,
    into: &mut Samples,
) {
    let engine = &world.engine;
    let samples = Arc::new(Mutex::new(Samples::default()));
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let poller = match mode {
            Mode::Poll => {
                let (samples, stamps, stop) = (samples.clone(), stamps.clone(), &stop);
                Some(s.spawn(move || {
                    let mut local = Samples::default();
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(Event::Notification(n)) =
                            engine.next_event(Some(Duration::from_millis(50)))
                        {
                            local.record(&stamps, &n);
                        }
                    }
                    *samples.lock().unwrap() = local;
                }))
            }
            Mode::PollBatch => {
                let (samples, stamps, stop) = (samples.clone(), stamps.clone(), &stop);
                Some(s.spawn(move || {
                    let mut local = Samples::default();
                    while !stop.load(Ordering::Relaxed) {
                        for e in engine.next_events(POLL_BATCH, Some(Duration::from_millis(50))) {
                            if let Event::Notification(n) = e {
                                local.record(&stamps, &n);
                            }
                        }
                    }
                    *samples.lock().unwrap() = local;
                }))
            }
            Mode::Callback => {
                let (samples, stamps) = (samples.clone(), stamps.clone());
                engine
                    .set_event_callback(Some(Box::new(move |e: &Event| {
                        if let Event::Notification(n) = e {
                            samples.lock().unwrap().record(&stamps, n);
                        }
                    })))
                    .expect("set callback");
                None
            }
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let count = (span.as_secs_f64() * rate) as usize;
        let n = world.presentities.len();
        for j in 0..count {
            let due = start + interval * j as u32;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            let seq = *next_seq;
            *next_seq += 1;
            // Spread over the presentities (both shards), never the same one twice in a row.
            let i = (j * 7919) % n;
            let doc = presence(&world.entities[i], format!("s{seq}"), j % 2 == 0);
            let mut etag = world.etags[i].lock().unwrap();
            let called = stamps.base.elapsed().as_nanos() as u64;
            stamps.at[seq].store(called, Ordering::Relaxed);
            *etag = engine.modify_publication(&etag, doc).expect("modify");
            into.call
                .push((stamps.base.elapsed().as_nanos() as u64).saturating_sub(called));
        }
        engine.sync().expect("sync");
        thread::sleep(Duration::from_millis(20));
        match poller {
            Some(p) => {
                stop.store(true, Ordering::Relaxed);
                p.join().expect("poller");
            }
            None => engine.set_event_callback(None).expect("remove callback"),
        }
    });
    drain(engine);
    let got = std::mem::take(&mut *samples.lock().unwrap());
    into.all.extend(got.all);
    into.first.extend(got.first);
}

/// One-way latency of a bare channel: the sender stamps and sends, the receiver (blocked in
/// `recv`) measures on wake-up and answers, so pings never queue. `pace`: wait between pings
/// (the receiver is parked when the ping comes, as the engine's consumer is), or none
/// (back-to-back: the receiver may still be spinning).
fn floor_crossbeam(count: usize, pace: Option<Duration>, into: &mut Vec<u64>) {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<Instant>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<()>(1);
    let receiver = thread::spawn(move || {
        let mut out = Vec::with_capacity(count);
        while let Ok(sent) = ping_rx.recv() {
            out.push(sent.elapsed().as_nanos() as u64);
            let _ = pong_tx.send(());
        }
        out
    });
    for _ in 0..count {
        if let Some(p) = pace {
            thread::sleep(p);
        }
        ping_tx.send(Instant::now()).unwrap();
        pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    into.extend(receiver.join().unwrap());
}

fn floor_mpsc(count: usize, pace: Duration, into: &mut Vec<u64>) {
    let (ping_tx, ping_rx) = std::sync::mpsc::channel::<Instant>();
    let (pong_tx, pong_rx) = std::sync::mpsc::channel::<()>();
    let receiver = thread::spawn(move || {
        let mut out = Vec::with_capacity(count);
        while let Ok(sent) = ping_rx.recv() {
            out.push(sent.elapsed().as_nanos() as u64);
            let _ = pong_tx.send(());
        }
        out
    });
    for _ in 0..count {
        thread::sleep(pace);
        ping_tx.send(Instant::now()).unwrap();
        pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    into.extend(receiver.join().unwrap());
}

fn latency(world: &World) {
    let rate = 2000.0;
    let rounds = rounds(3);
    let span = window();
    let pace = Duration::from_secs_f64(1.0 / rate);
    println!(
        "4./5. latency: modify_publication at {rate:.0}/s spread over the presentities \
         ({:.0}k notifications/s, far below capacity); publish instant stamped just before the \
         call, sequence number in the tuple id, delivery = when the consumer sees the \
         notification. {rounds} rounds, each: engine polling {:.1} s, engine batch polling \
         (next_events) {:.1} s, engine callback {:.1} s, bare channels (pinged every {:.0} us, like the publishes) - all in this run",
        rate * WATCHERS as f64 / 1000.0,
        span.as_secs_f64(),
        span.as_secs_f64(),
        span.as_secs_f64(),
        pace.as_secs_f64() * 1e6
    );
    let total = rounds * 3 * (span.as_secs_f64() * rate) as usize + 16;
    let stamps = Arc::new(Stamps {
        base: Instant::now(),
        at: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let mut next_seq = 1;
    let mut poll = Samples::default();
    let mut batch = Samples::default();
    let mut callback = Samples::default();
    let (mut cb_paced, mut cb_tight, mut mpsc_paced) = (Vec::new(), Vec::new(), Vec::new());
    let pings = (span.as_secs_f64() * rate) as usize;
    for _ in 0..rounds {
        latency_window(
            world,
            Mode::Poll,
            rate,
            span,
            &stamps,
            &mut next_seq,
            &mut poll,
        );
        latency_window(
            world,
            Mode::PollBatch,
            rate,
            span,
            &stamps,
            &mut next_seq,
            &mut batch,
        );
        latency_window(
            world,
            Mode::Callback,
            rate,
            span,
            &stamps,
            &mut next_seq,
            &mut callback,
        );
        floor_crossbeam(pings, Some(pace), &mut cb_paced);
        floor_mpsc(pings / 2, pace, &mut mpsc_paced);
        floor_crossbeam(pings * 10, None, &mut cb_tight);
    }
    percentiles("engine, polling: every watcher", &mut poll.all);
    percentiles(
        "engine, polling: first watcher of each publish",
        &mut poll.first,
    );
    percentiles("engine, polling: the publish call itself", &mut poll.call);
    percentiles("engine, batch polling: every watcher", &mut batch.all);
    percentiles(
        "engine, batch polling: first watcher of each publish",
        &mut batch.first,
    );
    percentiles("engine, callback: every watcher", &mut callback.all);
    percentiles(
        "engine, callback: first watcher of each publish",
        &mut callback.first,
    );
    percentiles(
        "engine, callback: the publish call itself",
        &mut callback.call,
    );
    percentiles("floor: crossbeam bounded(1), paced", &mut cb_paced);
    percentiles("floor: std mpsc, paced", &mut mpsc_paced);
    percentiles("floor: crossbeam bounded(1), back-to-back", &mut cb_tight);
}

// ------------------------------------------------------------------------------------------
// 6. Memory (child processes)
// ------------------------------------------------------------------------------------------

fn memory_subscriptions() {
    let presentities = scaled(20_000);
    let n = presentities * WATCHERS;
    let engine = Engine::new(config()).expect("engine");
    engine.sync().expect("sync");
    let before = vm_rss_bytes();
    let start = Instant::now();
    // URIs are parsed inside the measured region (the engine keeps what it is given).
    let events = subscribe_all(&engine, presentities, |_| {});
    let after = vm_rss_bytes();
    let stats = engine.stats();
    assert_eq!(stats.subscriptions_active, n as u64);
    println!(
        "  {n} subscriptions ({presentities} presentities x {WATCHERS}, no publication) made in \
         {:.1} s, {events} events drained concurrently: VmRSS {:.1} MB -> {:.1} MB = {:.0} \
         bytes/subscription",
        start.elapsed().as_secs_f64(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after - before) as f64 / n as f64
    );
}

fn memory_uris() {
    let n = scaled(20_000) * WATCHERS;
    let before = vm_rss_bytes();
    let uris: Vec<Arc<Uri>> = (0..n)
        .map(|i| Arc::new(uri(&user(i % scaled(20_000)))))
        .collect();
    let after = vm_rss_bytes();
    println!(
        "  for comparison, {n} x Arc<Uri> of 'sip:uNNNNN@example.test' (+8-byte pointer each): \
         {:.0} bytes each",
        (after - before) as f64 / n as f64
    );
    drop(uris);
}

fn memory() {
    println!(
        "6. memory: VmRSS (/proc/self/status) before and after, in a fresh child process; \
         engine as in 1"
    );
    for part in ["memory-subscriptions", "memory-uris"] {
        let out = Command::new(std::env::current_exe().expect("current exe"))
            .env("IMPP_BENCH_PART", part)
            .output()
            .expect("child process");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!(
                "  child {part} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    println!(
        "  sizes: Uri {} B, Arc<Uri> heap block {} B, Event {} B, Notification {} B, \
         Document {} B",
        std::mem::size_of::<Uri>(),
        std::mem::size_of::<Uri>() + 16,
        std::mem::size_of::<Event>(),
        std::mem::size_of::<Notification>(),
        std::mem::size_of::<Document>()
    );
}

fn main() {
    match std::env::var("IMPP_BENCH_PART").as_deref() {
        Ok("memory-subscriptions") => return memory_subscriptions(),
        Ok("memory-uris") => return memory_uris(),
        _ => {}
    }
    let start = Instant::now();
    println!(
        "engine benchmark: scale {} (IMPP_BENCH_SCALE), {} cores available",
        scale(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    // IMPP_BENCH_ONLY=throughput,latency,memory picks sections (for profiling).
    let only = std::env::var("IMPP_BENCH_ONLY").unwrap_or_default();
    let run = |what: &str| only.is_empty() || only.split(',').any(|w| w == what);
    if run("throughput") || run("latency") {
        let world = setup(scaled(10_000));
        if run("throughput") {
            // IMPP_BENCH_PUBLISHERS=1,2,8: publisher thread counts to measure with (one call
            // per change); IMPP_BENCH_BATCH_PUBLISHERS=2: the same with batched changes.
            let publishers = std::env::var("IMPP_BENCH_PUBLISHERS").unwrap_or("1,8".into());
            for p in publishers.split(',').filter_map(|p| p.trim().parse().ok()) {
                throughput(&world, p, false);
            }
            let batched = std::env::var("IMPP_BENCH_BATCH_PUBLISHERS").unwrap_or("2".into());
            for p in batched.split(',').filter_map(|p| p.trim().parse().ok()) {
                throughput(&world, p, true);
            }
        }
        if run("latency") {
            latency(&world);
        }
    }
    if run("memory") {
        memory();
    }
    println!("total {:.0} s", start.elapsed().as_secs_f64());
}
