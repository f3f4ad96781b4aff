//! Instant messages: how many per second the engine sends and delivers in process, stores
//! for offline recipients (durably, with group commit), and drains on login; with the SQLite
//! store in a file and with the in-memory store, measured in alternating rounds of one run.
//!
//! Run: `cargo bench --bench im` (about a minute). `IMPP_BENCH_SCALE=0.1` shrinks it.
//!
//! Setup: 2 workers, 1,000 recipients (one endpoint each when online), 100-byte text bodies,
//! `SENDERS` threads calling `send_message` while one thread consumes events in batches
//! (`next_events`). A message counts when the consumer has its outcome: `delivered` (online)
//! or `stored` (offline: on disk for SQLite, which the outcome promises); on login, when its
//! `Message` event arrived. Figures are medians over the rounds.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use impp::engine::{
    AuthAction, DeliveryOutcome, Engine, EngineConfig, Event, OutgoingMessage, StateLimits,
};
use impp::store::{MemoryStore, SqliteStore, Store};
use impp::uri::Uri;

const RECIPIENTS: usize = 1_000;
const SENDERS: usize = 2;

fn scale() -> f64 {
    std::env::var("IMPP_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn recipient(i: usize) -> Uri {
    format!("sip:user{i}@example.test").parse().unwrap()
}

fn engine(store: Arc<dyn Store>) -> Engine {
    Engine::new(EngineConfig {
        workers: 2,
        default_policy: AuthAction::Allow,
        queue_capacity: 1 << 20,
        // Throughput, not the bounds: above scale 1 a mailbox holds more than the default
        // 100 messages from one sender.
        state_limits: StateLimits::UNLIMITED,
        store,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Sends `total` messages from `SENDERS` threads, round-robin over the recipients, and
/// consumes events until `expected` events of the kind `counts` accepts arrived. Returns
/// messages per second.
fn run(engine: &Arc<Engine>, total: usize, counts: fn(&Event) -> bool) -> f64 {
    // An application that sends a lot builds its URIs, content type and body once and
    // shares them (the message's fields are `Arc`s).
    let body: Arc<[u8]> = Arc::from(vec![b'x'; 100]);
    let content_type: Arc<str> = Arc::from("text/plain");
    let start = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let (engine, body, content_type) = (engine.clone(), body.clone(), content_type.clone());
            thread::spawn(move || {
                let from: Arc<Uri> =
                    Arc::new(format!("sip:sender{t}@example.test").parse().unwrap());
                let to: Vec<Arc<Uri>> = (0..RECIPIENTS).map(|i| Arc::new(recipient(i))).collect();
                for i in (t..total).step_by(SENDERS) {
                    engine
                        .send_message(OutgoingMessage {
                            sender: from.clone(),
                            recipient: to[i % RECIPIENTS].clone(),
                            content_type: content_type.clone(),
                            body: body.clone(),
                            endpoint: None,
                            in_reply_to: None,
                            wire: None,
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let seen = consume(engine, total, counts);
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(seen, total);
    total as f64 / start.elapsed().as_secs_f64()
}

fn consume(engine: &Engine, expected: usize, counts: fn(&Event) -> bool) -> usize {
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < expected && Instant::now() < deadline {
        for e in engine.next_events(4096, Some(Duration::from_millis(100))) {
            if counts(&e) {
                seen += 1;
            }
        }
    }
    seen
}

fn is_delivered(e: &Event) -> bool {
    matches!(e, Event::Delivery(d) if d.outcome == DeliveryOutcome::Delivered)
}

fn is_stored(e: &Event) -> bool {
    matches!(e, Event::Delivery(d) if d.outcome == DeliveryOutcome::Stored)
}

fn is_message(e: &Event) -> bool {
    matches!(e, Event::Message(_))
}

struct Figures {
    online: Vec<f64>,
    stored: Vec<f64>,
    drained: Vec<f64>,
    commits: Vec<f64>,
}

fn round(store_kind: &str, dir: &std::path::Path, figures: &mut Figures, round: usize) {
    let messages = ((200_000.0 * scale()) as usize).max(RECIPIENTS);
    let (store, sqlite): (Arc<dyn Store>, Option<Arc<SqliteStore>>) = match store_kind {
        "sqlite" => {
            let path = dir.join(format!("im-{round}.db"));
            let s = Arc::new(SqliteStore::open(&path).unwrap());
            (s.clone(), Some(s))
        }
        _ => (Arc::new(MemoryStore::new()), None),
    };
    let engine = Arc::new(engine(store));

    // Offline: stored.
    let before = sqlite.as_ref().map_or(0, |s| s.commits());
    figures.stored.push(run(&engine, messages, is_stored));
    if let Some(s) = &sqlite {
        figures
            .commits
            .push(messages as f64 / (s.commits() - before).max(1) as f64);
    }
    // Login drain: every recipient logs in; every stored message arrives.
    let start = Instant::now();
    for i in 0..RECIPIENTS {
        engine.login(&recipient(i), "phone", None).unwrap();
    }
    assert_eq!(consume(&engine, messages, is_message), messages);
    figures
        .drained
        .push(messages as f64 / start.elapsed().as_secs_f64());
    // Online: delivered at once (the drain left the mailboxes empty).
    let online = messages * 2;
    // Skip the delivery outcomes of the drain still queued behind the messages.
    engine.sync().unwrap();
    while !engine.next_events(4096, Some(Duration::ZERO)).is_empty() {}
    figures.online.push(run(&engine, online, is_delivered));
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let rounds = if scale() >= 1.0 { 5 } else { 3 };
    let dir = std::env::temp_dir().join(format!("impp-bench-im-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "instant-message benchmark: scale {} (IMPP_BENCH_SCALE), {} cores, {SENDERS} sender threads, {RECIPIENTS} recipients, {rounds} rounds",
        scale(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut sqlite = Figures {
        online: vec![],
        stored: vec![],
        drained: vec![],
        commits: vec![],
    };
    let mut memory = Figures {
        online: vec![],
        stored: vec![],
        drained: vec![],
        commits: vec![],
    };
    for r in 0..rounds {
        round("sqlite", &dir, &mut sqlite, r);
        round("memory", &dir, &mut memory, r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "{:<44} {:>14} {:>14}",
        "messages per second (median)", "SQLite file", "in memory"
    );
    for (what, a, b) in [
        (
            "sent and delivered online",
            &mut sqlite.online,
            &mut memory.online,
        ),
        (
            "stored for offline recipients (durable)",
            &mut sqlite.stored,
            &mut memory.stored,
        ),
        (
            "delivered on login (drain)",
            &mut sqlite.drained,
            &mut memory.drained,
        ),
    ] {
        println!("{what:<44} {:>14.0} {:>14.0}", median(a), median(b));
    }
    println!(
        "messages per SQLite commit while storing (group commit): {:.0}",
        median(&mut sqlite.commits)
    );
    println!("targets: >= 50,000 durable stored/s; >= 1,000,000 delivered online/s");
}
