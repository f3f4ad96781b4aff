//! Presence at the edge, the device's half (issue 19): an account with
//! [`super::Account::serve`] on is the presence agent for its own address of record. Its
//! server hands watchers over to it (proxying their SUBSCRIBEs to the device's contact, or
//! redirecting them there with `302`), and takes them back when the device goes away.
//!
//! # Advertising: a feature tag, not `Allow-Events`
//!
//! The REGISTER's Contact carries `events="presence"`, the RFC 3840 `sip.events` feature tag
//! ("this UA can be the notifier for these packages"), with RFC 5626's `+sip.instance` and
//! `reg-id=1`, and the request says `Supported: outbound`. A feature tag is a parameter of
//! the binding: the registrar stores it with the contact and can read it at any later
//! SUBSCRIBE. `Allow-Events` is a header of one request and says nothing the registrar
//! keeps. The instance URN is derived from the address of record and the user name (a
//! hash), so a device keeps it across restarts, as RFC 5626 §4.1 asks, without storing it.
//!
//! # The flow and its keep-alives (RFC 5626 §4.4.1)
//!
//! Over TCP or TLS, a registered serving account sends CRLF CRLF on its flow every
//! [`super::Account::keepalive`] seconds; the server answers each with CRLF. A ping not
//! answered by the time the next one is due, or the flow closing (the transport tells of
//! the connections it opened, [`crate::sip::transport::FlowEvent`]), is a dead flow: the
//! account registers again at once on a new connection (a connection still open but not
//! answering is closed first). Over UDP there are no keep-alives: the server learns of a
//! dead device only when a request to it fails.
//!
//! # Rules: fetched over XCAP
//!
//! The device authorizes by the rules its server keeps for the address of record, read from
//! the server's XCAP interface ([`crate::xcap::client`]) at every successful REGISTER
//! (initial and refreshes), with `If-None-Match`. Each fetch runs on a short-lived thread of
//! its own (an HTTP exchange must not hold the I/O or timer thread), at most one per account
//! at a time, and again after a failure (2 s, doubling up to 5 minutes, while registered);
//! what it brings replaces the presentity's rules in the engine
//! ([`crate::engine::Core::replace_served_rules`]). Until the first fetch succeeds, the
//! engine says [`crate::engine::Served::AwaitingRules`] and the notifier answers `480`.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use super::Account;
use crate::engine::EngineHandle;
use crate::log;
use crate::uri::Uri;
use crate::xcap::client::{Fetched, XcapClient};

/// The RFC 5626 instance URN of `account`: a name-based UUID (version 5 layout) over a
/// SHA-256 of the address of record and user name, the same at every start.
pub(crate) fn instance_urn(account: &Account) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"impp-instance\0");
    h.update(crate::model::key::presentity_key(&account.aor).as_bytes());
    h.update(b"\0");
    h.update(account.username.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The Contact header parameters of a serving account's REGISTER (after the `<URI>`).
pub(crate) fn contact_params(account: &Account) -> String {
    format!(
        ";+sip.instance=\"<{}>\";reg-id=1;events=\"presence\"",
        instance_urn(account)
    )
}

/// Checks the serving accounts before a server starts: an address of record of a domain the
/// engine owns is served by the engine anyway (as any owned presentity, by its own rules and
/// policy), so `serve` on it is a mistake; an XCAP root must be an http(s) URL.
pub(crate) fn check_serving(
    accounts: &[Account],
    config: &crate::engine::EngineConfig,
) -> crate::error::Result<()> {
    for a in accounts.iter().filter(|a| a.serve) {
        let bad = |why: String| {
            crate::error::Error::InvalidArgument(format!("account {} (serve): {why}", a.aor))
        };
        if config.owns(&a.aor) {
            return Err(bad(
                "the engine owns its domain, so it is served here already (give the engine its own domain)"
                    .into(),
            ));
        }
        if let Some(url) = &a.xcap {
            crate::xcap::client::XcapRoot::parse(url).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(())
}

/// The keep-alive state of a serving account's flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flow {
    /// When the next ping is due (clock ms); `None`: no flow is kept alive.
    pub(crate) ping_at: Option<u64>,
    /// Whether the last ping still waits for its pong.
    pub(crate) awaiting_pong: bool,
    /// Seconds between pings: the account's `keepalive`, or the registrar's `Flow-Timer`
    /// when that is shorter.
    pub(crate) interval_s: u32,
}

impl Flow {
    /// A registration took on a flow (`stream`: TCP or TLS) at `now`: pings every
    /// `keepalive` seconds from now on, or every `flow_timer` seconds when the registrar's
    /// 2xx asked for that and it is shorter (RFC 5626 §4.4.1: "at least as often"); none
    /// over UDP, or with neither.
    pub(crate) fn registered(
        &mut self,
        now: u64,
        keepalive: u32,
        flow_timer: Option<u32>,
        stream: bool,
    ) {
        self.awaiting_pong = false;
        let interval = match (keepalive, flow_timer.filter(|t| *t > 0)) {
            (0, timer) => timer.unwrap_or(0),
            (k, Some(t)) => k.min(t),
            (k, None) => k,
        };
        self.interval_s = interval;
        self.ping_at = (stream && interval > 0).then(|| now + u64::from(interval) * 1000);
    }

    /// No flow is kept alive any more (unregistered, or registering again).
    pub(crate) fn stop(&mut self) {
        *self = Flow::default();
    }
}

/// What a ping deadline asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet.
    Nothing,
    /// Send a ping now.
    Ping,
    /// The last ping went unanswered: the flow is dead.
    Dead,
}

impl Flow {
    /// At `now`: whether to ping, or whether the flow is dead (then it stops).
    pub(crate) fn due(&mut self, now: u64) -> Due {
        match self.ping_at {
            Some(at) if at <= now => {
                if self.awaiting_pong {
                    self.stop();
                    Due::Dead
                } else {
                    self.awaiting_pong = true;
                    self.ping_at = Some(now + u64::from(self.interval_s.max(1)) * 1000);
                    Due::Ping
                }
            }
            _ => Due::Nothing,
        }
    }
}

/// A serving account's rules fetching: the client, the entity tag of the document loaded
/// last, and whether a fetch is running.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    pub(crate) client: Option<Arc<Mutex<XcapClient>>>,
    pub(crate) etag: Arc<Mutex<Option<String>>>,
    pub(crate) running: Arc<std::sync::atomic::AtomicBool>,
    /// Set by a fetch that failed, for the timer thread to plan another.
    pub(crate) failed: Arc<std::sync::atomic::AtomicBool>,
    /// When the next fetch after a failure is due (clock ms), and the failures in a row.
    pub(crate) retry_at: Option<u64>,
    pub(crate) failures: u32,
}

impl Rules {
    /// Starts a fetch of `aor`'s rules on a thread of its own, unless one is running (or
    /// there is no XCAP root); what it finds goes into the engine.
    pub(crate) fn fetch(&self, engine: EngineHandle, aor: Uri) {
        use std::sync::atomic::Ordering;
        let Some(client) = self.client.clone() else {
            return;
        };
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (etag, running, failed) =
            (self.etag.clone(), self.running.clone(), self.failed.clone());
        let spawned = std::thread::Builder::new()
            .name("impp-xcap-fetch".into())
            .spawn(move || {
                let known = lock(&etag).clone();
                let fetched = lock(&client).fetch_pres_rules(&aor, known.as_deref());
                match load(&engine, &aor, fetched) {
                    Ok(Some(tag)) => *lock(&etag) = tag,
                    Ok(None) => {}
                    Err(e) => {
                        log::warn!("account {aor}: rules not loaded: {e}");
                        failed.store(true, Ordering::Release);
                    }
                }
                running.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a rules fetch: {e}");
            self.running.store(false, Ordering::Release);
        }
    }
}

impl Rules {
    /// On the timer thread, at `now`: plans a new fetch after a failed one (the first after
    /// 2 s, doubling up to 5 minutes), and says whether one is due now. A fetch that
    /// succeeds ends the series; so does the next registration's own fetch.
    pub(crate) fn retry_due(&mut self, now: u64) -> bool {
        use std::sync::atomic::Ordering;
        if self.failed.swap(false, Ordering::AcqRel) {
            self.failures += 1;
            let wait = (2000u64 << self.failures.saturating_sub(1).min(8)).min(300_000);
            self.retry_at = Some(now + wait);
        }
        match self.retry_at {
            Some(at) if at <= now => {
                self.retry_at = None;
                true
            }
            _ => false,
        }
    }

    /// A fetch that was not retried any more: its series ends (a registration fetches anew).
    pub(crate) fn reset_retries(&mut self) {
        self.retry_at = None;
        self.failures = 0;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Loads what a fetch found into the engine; the entity tag to keep (`None`: unchanged).
fn load(
    engine: &EngineHandle,
    aor: &Uri,
    fetched: crate::error::Result<Fetched>,
) -> crate::error::Result<Option<Option<String>>> {
    let engine = engine.get()?;
    match fetched? {
        Fetched::NotModified => Ok(None),
        Fetched::Missing => {
            // No document: the server keeps no rule for the address of record, so no
            // watcher is allowed here (the server's defaults decide them, at the server).
            engine.replace_served_rules(aor, Vec::new())?;
            log::info!("account {aor}: no rules at the server; serving no watcher");
            Ok(Some(None))
        }
        Fetched::Document { body, etag } => {
            let text = std::str::from_utf8(&body).map_err(|_| {
                crate::error::Error::Malformed("the pres-rules document is not UTF-8".into())
            })?;
            let doc = crate::doc::pres_rules::PresRules::parse(text, &crate::doc::Limits::DEFAULT)?;
            let rules = crate::xcap::pres_rules::to_engine(aor, &doc)
                .map_err(crate::error::Error::Unsupported)?;
            let n = rules.len();
            engine.replace_served_rules(aor, rules)?;
            log::info!("account {aor}: {n} rules loaded from the server");
            Ok(Some(etag))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_stable_and_a_uuid() {
        let a = Account::new(
            "sip:alice@b.test".parse().unwrap(),
            "alice",
            "pw",
            crate::sip::route::NextHop {
                proto: crate::sip::transport::Proto::Tcp,
                addr: "127.0.0.1:5060".parse().unwrap(),
            },
        );
        let urn = instance_urn(&a);
        assert_eq!(urn, instance_urn(&a.clone()));
        assert_eq!(urn.len(), "urn:uuid:".len() + 36);
        assert_eq!(&urn[9 + 14..9 + 15], "5");
        let mut b = a.clone();
        b.aor = "sip:bob@b.test".parse().unwrap();
        assert_ne!(urn, instance_urn(&b));
        assert!(contact_params(&a).ends_with(";reg-id=1;events=\"presence\""));
    }

    #[test]
    fn a_failed_fetch_is_tried_again_later_and_later() {
        use std::sync::atomic::Ordering;
        let mut r = Rules::default();
        assert!(!r.retry_due(0));
        r.failed.store(true, Ordering::Release);
        assert!(!r.retry_due(1000));
        assert_eq!(r.retry_at, Some(3000));
        assert!(r.retry_due(3000));
        assert_eq!(r.retry_at, None);
        r.failed.store(true, Ordering::Release);
        assert!(!r.retry_due(4000));
        assert_eq!(r.retry_at, Some(8000));
        for _ in 0..20 {
            r.failed.store(true, Ordering::Release);
            let _ = r.retry_due(0);
        }
        assert_eq!(r.retry_at, Some(300_000));
        r.reset_retries();
        assert_eq!((r.retry_at, r.failures), (None, 0));
    }

    #[test]
    fn a_ping_unanswered_by_the_next_one_is_a_dead_flow() {
        let mut f = Flow::default();
        assert_eq!(f.due(0), Due::Nothing);
        f.registered(1000, 2, None, false);
        assert_eq!(f.ping_at, None, "no pings over UDP");
        f.registered(1000, 2, None, true);
        assert_eq!(f.due(2999), Due::Nothing);
        assert_eq!(f.due(3000), Due::Ping);
        f.awaiting_pong = false; // the pong came
        assert_eq!(f.due(5000), Due::Ping);
        assert_eq!(f.due(7000), Due::Dead);
        assert_eq!(f.ping_at, None);
    }

    #[test]
    fn the_registrars_flow_timer_shortens_the_interval_never_lengthens_it() {
        let mut f = Flow::default();
        f.registered(0, 30, Some(5), true);
        assert_eq!((f.interval_s, f.ping_at), (5, Some(5000)));
        assert_eq!(f.due(5000), Due::Ping);
        assert_eq!(f.ping_at, Some(10_000));
        f.registered(0, 2, Some(5), true);
        assert_eq!(f.interval_s, 2);
        // Without a keepalive of its own, the account pings as the registrar asks.
        f.registered(0, 0, Some(7), true);
        assert_eq!(f.interval_s, 7);
        f.registered(0, 0, None, true);
        assert_eq!(f.ping_at, None);
        f.registered(0, 30, Some(0), true);
        assert_eq!(f.interval_s, 30);
    }
}
