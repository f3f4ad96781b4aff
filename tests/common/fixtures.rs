//! Small helpers the SIP tests share: URIs, a PIDF document, waiting for a condition, an
//! engine for one domain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use impp::engine::{AuthAction, Engine, EngineConfig};
use impp::store::MemoryStore;
use impp::uri::Uri;

pub fn uri(text: &str) -> Uri {
    text.parse().unwrap()
}

/// A one-tuple PIDF document of `entity`, open, with `note`.
pub fn pidf(entity: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\"><tuple id=\"t1\"><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
    )
}

/// Polls `check` every 20 ms for up to `secs` seconds; panics naming `what` if it never holds.
pub fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// An engine owning `domain`, allowing every watcher, memory only.
pub fn engine(domain: &str) -> Arc<Engine> {
    engine_with(domain, |_| {})
}

/// Like [`engine`], with its configuration changed by `tweak` first (a manual clock, say).
pub fn engine_with(domain: &str, tweak: impl FnOnce(&mut EngineConfig)) -> Arc<Engine> {
    let mut config = EngineConfig {
        domains: vec![domain.into()],
        default_policy: AuthAction::Allow,
        workers: 2,
        store: Arc::new(MemoryStore::new()),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    Arc::new(Engine::new(config).unwrap())
}
