//! Crash safety of the SQLite store under the engine: a child process sends messages to an
//! offline user as fast as it can and prints each message id once its `stored` outcome
//! arrives (the engine's acknowledgement that it is on disk); the parent kills it with
//! SIGKILL at a random moment, reopens the store, and checks that every acknowledged message
//! is there exactly once, with its body, and is delivered exactly once on login.
//!
//! The child is this test binary run again with `IMPP_CRASH_CHILD` naming the store file.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::engine::{AuthAction, DeliveryOutcome, Engine, EngineConfig, Event, OutgoingMessage};
use impp::store::{SqliteStore, Store};
use impp::uri::Uri;

const CHILD_ENV: &str = "IMPP_CRASH_CHILD";
const ROUNDS: usize = 5;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn body_of(n: u64) -> Vec<u8> {
    format!("message number {n} \u{2014} with bytes \0 and \u{fffd}").into_bytes()
}

fn open_engine(path: &Path) -> Engine {
    Engine::new(EngineConfig {
        workers: 2,
        default_policy: AuthAction::Allow,
        store: Arc::new(SqliteStore::open(path).unwrap()),
        // Thousands of messages from one sender wait for one recipient: durability is under
        // test here, not the mailbox bounds.
        state_limits: impp::engine::StateLimits::UNLIMITED,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The child: sends until killed. The body names the sender's own counter, printed with the
/// id, so the parent can check each stored body.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // not the child: nothing to do
    };
    let engine = Arc::new(open_engine(Path::new(&path)));
    let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender = {
        let (engine, in_flight) = (engine.clone(), in_flight.clone());
        std::thread::spawn(move || {
            let (alice, bob) = (uri("sip:alice@example.test"), uri("sip:bob@example.test"));
            let out = std::io::stdout();
            for n in 0u64.. {
                // Bounded in flight, so the child's memory stays small while the disk syncs.
                while in_flight.load(Ordering::Relaxed) > 20_000 {
                    std::thread::yield_now();
                }
                let id = engine
                    .send_message(OutgoingMessage::new(
                        alice.clone(),
                        bob.clone(),
                        "application/octet-stream",
                        body_of(n),
                    ))
                    .unwrap();
                in_flight.fetch_add(1, Ordering::Relaxed);
                writeln!(out.lock(), "sent {id} {n}").unwrap();
            }
        })
    };
    loop {
        let events = engine.next_events(1024, Some(Duration::from_millis(100)));
        let mut out = std::io::stdout().lock();
        for event in events {
            if let Event::Delivery(d) = event {
                assert_eq!(d.outcome, DeliveryOutcome::Stored);
                in_flight.fetch_sub(1, Ordering::Relaxed);
                writeln!(out, "acked {}", d.message).unwrap();
            }
        }
        out.flush().unwrap();
        if sender.is_finished() {
            break;
        }
    }
}

/// A pseudo-random number from the clock (no dependency needed for a kill delay).
fn jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005) >> 17) % max
}

fn temp_store(round: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("impp-crash-{}-{round}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("impp.db")
}

#[test]
fn every_acknowledged_message_survives_sigkill_exactly_once() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0usize;
    for round in 0..ROUNDS {
        let path = temp_store(round);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let first_ack = Arc::new(AtomicBool::new(false));
        let reader = {
            let (done, first_ack) = (done.clone(), first_ack.clone());
            std::thread::spawn(move || {
                let mut sent: HashMap<u64, u64> = HashMap::new();
                let mut acked: Vec<u64> = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut words = line.split(' ');
                    match (words.next(), words.next(), words.next()) {
                        (Some("sent"), Some(id), Some(n)) => {
                            sent.insert(id.parse().unwrap(), n.parse().unwrap());
                        }
                        (Some("acked"), Some(id), None) => {
                            acked.push(id.parse().unwrap());
                            first_ack.store(true, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                done.store(true, Ordering::Relaxed);
                (sent, acked)
            })
        };
        // Let it get going (the first acknowledgement: the store is open and syncing), then
        // kill it at a random point.
        let start = Instant::now();
        while !first_ack.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(jitter(500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (sent, acked) = reader.join().unwrap();
        assert!(done.load(Ordering::Relaxed));
        assert!(
            !acked.is_empty(),
            "round {round}: nothing was acknowledged in {:?}",
            start.elapsed()
        );
        total_acked += acked.len();

        // Every acknowledged message is in the store, once, with its body.
        let store = SqliteStore::open(&path).unwrap();
        let stored = store.load().unwrap().messages;
        let mut seen = HashSet::new();
        for m in &stored {
            assert!(seen.insert(m.id), "round {round}: message {} twice", m.id);
        }
        for id in &acked {
            let m = stored
                .iter()
                .find(|m| m.id == *id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged message {id} lost"));
            // The child prints "sent" after `send_message` returns, so a kill can fall
            // between the acknowledgement and that line: then the body names its number.
            let n = match sent.get(id) {
                Some(n) => *n,
                None => String::from_utf8_lossy(&m.body)
                    .split(' ')
                    .nth(2)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u64::MAX),
            };
            assert_eq!(m.body, body_of(n), "round {round}: body of {id}");
        }
        drop(store);

        // Reopened under an engine, they are delivered exactly once, in order, on login.
        let engine = open_engine(&path);
        engine
            .login(&uri("sip:bob@example.test"), "phone", None)
            .unwrap();
        engine.sync().unwrap();
        let mut delivered = Vec::new();
        while let Some(e) = engine.next_event(Some(Duration::ZERO)) {
            if let Event::Message(m) = e {
                delivered.push(m.id.0);
            }
        }
        let mut sorted = delivered.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, delivered, "round {round}: out of order or twice");
        assert_eq!(delivered.len(), stored.len());
        for id in &acked {
            assert!(delivered.contains(id), "round {round}: {id} not delivered");
        }
        drop(engine);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        eprintln!(
            "round {round}: {} sent, {} acknowledged, {} on disk, all delivered once",
            sent.len(),
            acked.len(),
            stored.len()
        );
    }
    eprintln!("{ROUNDS} rounds, {total_acked} acknowledged messages, none lost");
}
