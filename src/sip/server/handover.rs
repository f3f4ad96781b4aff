//! The hand-over table (issue 19, "presence at the edge"): the subscription dialogs this
//! server handed to a device that serves its own address of record's watchers, what it
//! learned of each from the requests it relayed, and taking them back when the device goes.
//!
//! # Why a table at all
//!
//! A watcher handed over by proxy (the server forwards its SUBSCRIBE to the device's
//! contact, record-routed) has its dialog with the device; the server sits on its route and
//! sees every request of it, but holds no subscription for it. When the device dies the
//! watcher would learn only at its next refresh (up to an hour later), and until then see
//! a frozen state. Knowing the dialogs lets the server end them at once as the device's side
//! would: a `NOTIFY` with `Subscription-State: terminated;reason=deactivated` (RFC 6665
//! §4.1.3: subscribe again at once), From the device's tag, CSeq above the highest the
//! device used, to the watcher's Contact along its route set. The watcher's new SUBSCRIBE
//! then finds no serving contact and is served by the server, with the composed state.
//!
//! # What each entry learns, and from what
//!
//! | seen | learned |
//! | --- | --- |
//! | the hand-over starts (the SUBSCRIBE is proxied) | a pending entry: the watcher's side (Call-ID, tag, Contact, route set) and the device; the device's in-dialog requests are let through from now (its NOTIFY may overtake its `200` between two workers) |
//! | the device's `2xx` | the device's tag and the granted expiry: the dialog is handed over |
//! | a non-2xx, or no answer | the entry goes: the server serves the watcher itself |
//! | a NOTIFY from the device | its CSeq; `terminated` ends the entry |
//! | a refresh from the watcher | the new expiry; `Expires: 0` lets the entry end with the device's final NOTIFY, or shortly after |
//! | a relayed request to the device failing (408, 503, no answer) | the device is gone (or overloaded): every dialog of it is taken back, and it is handed no more watchers until it registers again |
//! | `481` from the device | it forgot that dialog: that one is taken back |
//! | `481` or no answer from the watcher | the watcher is gone: the entry goes |
//! | expiry without refresh | the entry goes (the watcher's subscription expired too) |
//!
//! The table is bounded ([`MAX_HANDED`]): a server whose table is full serves the next
//! watchers itself, as it would without migration.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::dialog_table::notify_destination;
use crate::log;
use crate::model::key::presentity_key;
use crate::sip::dialog::{DialogView, SubscriptionDialog};
use crate::sip::proxy::HandedDialogs;
use crate::sip::route::NextHop;
use crate::sip::stack::{lock, Peer, Stack, Waiting};
use crate::sip::SipMessage;
use crate::uri::Uri;

/// Dialogs handed over (or being handed over) at most.
pub(crate) const MAX_HANDED: usize = 65_536;

/// How long an entry outlives its expiry after an un-SUBSCRIBE or without a refresh: the
/// device's final NOTIFY comes within it.
const GRACE_MS: u64 = 32_000;

/// How the server hands watchers over to a device that offers to serve them
/// ([`crate::sip::SipServerConfig::migration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Migration {
    /// Never: the server serves every watcher (the default).
    #[default]
    Off,
    /// The server proxies the SUBSCRIBE to the device, record-routed, and takes the watcher
    /// back when the device goes.
    Proxy,
    /// The server answers `302 Moved Temporarily` with the device's contact.
    Redirect,
}

impl Migration {
    /// `off`, `proxy` or `redirect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Migration::Off => "off",
            Migration::Proxy => "proxy",
            Migration::Redirect => "redirect",
        }
    }
}

impl std::str::FromStr for Migration {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Migration> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Migration::Off),
            "proxy" => Ok(Migration::Proxy),
            "redirect" => Ok(Migration::Redirect),
            other => Err(crate::error::Error::InvalidArgument(format!(
                "migration '{other}': off, proxy or redirect"
            ))),
        }
    }
}

/// Counts of the hand-over table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoverStats {
    /// Dialogs handed over to devices now.
    pub handed_over: u64,
    /// Watchers handed over since start (by proxy, confirmed by the device's `2xx`).
    pub hand_overs: u64,
    /// Watchers redirected to a device (`302`) since start.
    pub redirects: u64,
    /// Dialogs taken back from devices since start (a `terminated;reason=deactivated`
    /// NOTIFY sent to the watcher).
    pub take_backs: u64,
}

/// The device a dialog was handed to: its address of record's key and contact URI.
type Device = (String, String);

/// One dialog handed (or being handed) to a device.
struct Handed {
    /// The device's side of the dialog: local = the device (its tag once it answered),
    /// remote = the watcher. `local_cseq`: the highest CSeq the device used.
    dialog: SubscriptionDialog,
    /// The device's address of record.
    aor: Uri,
    device: Device,
    /// The device's flow.
    flow: NextHop,
    /// Confirmed by the device's 2xx.
    confirmed: bool,
    /// When the entry goes unless refreshed (clock ms).
    expires_at: u64,
}

/// Told of a device that failed a relayed request (its address of record and contact).
pub(crate) type DeviceFailed = Box<dyn Fn(&Uri, &str) + Send + Sync>;

/// The hand-over table: see the module documentation.
pub(crate) struct Handover {
    stack: Arc<Stack>,
    device_failed: DeviceFailed,
    /// By Call-ID and the watcher's tag.
    dialogs: Mutex<HashMap<(String, String), Handed>>,
    hand_overs: AtomicU64,
    redirects: AtomicU64,
    take_backs: AtomicU64,
    /// No entry expires before this (clock ms; `u64::MAX`: none): the timer thread's turns
    /// look at the table only from then on (an expiry only moves later, but for new
    /// entries, which lower it).
    next_expiry: AtomicU64,
}

/// A take-back NOTIFY's answer changes nothing: the dialog is gone either way.
struct Forget;

impl Waiting for Forget {
    fn outcome(self: Box<Self>, _: u16, _: Option<&SipMessage>) {}

    fn early(&self, _: u16) -> bool {
        true
    }
}

impl Handover {
    pub(crate) fn new(stack: Arc<Stack>, device_failed: DeviceFailed) -> Handover {
        Handover {
            stack,
            device_failed,
            dialogs: Mutex::default(),
            hand_overs: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            take_backs: AtomicU64::new(0),
            next_expiry: AtomicU64::new(u64::MAX),
        }
    }

    /// The counts now.
    pub(crate) fn stats(&self) -> HandoverStats {
        HandoverStats {
            handed_over: lock(&self.dialogs).values().filter(|h| h.confirmed).count() as u64,
            hand_overs: self.hand_overs.load(Ordering::Relaxed),
            redirects: self.redirects.load(Ordering::Relaxed),
            take_backs: self.take_backs.load(Ordering::Relaxed),
        }
    }

    /// Counts a watcher redirected to a device.
    pub(crate) fn redirected(&self) {
        self.redirects.fetch_add(1, Ordering::Relaxed);
    }

    /// A hand-over starts: the watcher's SUBSCRIBE `m` (as received from `peer`) goes to
    /// the device `contact` of `aor` over `flow`. False (nothing kept) when the table is
    /// full or the SUBSCRIBE lacks what a dialog needs: the server serves it itself.
    pub(crate) fn start(
        &self,
        m: &SipMessage,
        peer: &Peer,
        aor: &Uri,
        contact: &str,
        flow: NextHop,
    ) -> bool {
        let Some(dialog) = watcher_side(m, peer) else {
            return false;
        };
        let mut dialogs = lock(&self.dialogs);
        if dialogs.len() >= MAX_HANDED {
            log::info!("hand-over table full ({MAX_HANDED}): the server serves the watcher");
            return false;
        }
        let key = (dialog.call_id.clone(), dialog.remote_tag.clone());
        if dialogs.contains_key(&key) {
            return false;
        }
        let expires_at = self.stack.now() + GRACE_MS;
        // Under the table's lock, as the timer thread's recomputation.
        self.next_expiry.fetch_min(expires_at, Ordering::AcqRel);
        self.stack.alarm().at(expires_at);
        dialogs.insert(
            key,
            Handed {
                dialog,
                aor: aor.clone(),
                device: (presentity_key(aor), contact.to_string()),
                flow,
                confirmed: false,
                expires_at,
            },
        );
        true
    }

    /// The device answered the hand-over of `m` (the watcher's SUBSCRIBE) with `response`:
    /// a 2xx confirms it, anything else ends the entry (the server serves the watcher).
    pub(crate) fn answered(&self, m: &SipMessage, response: Option<&SipMessage>) {
        let Some(key) = key_of(m) else { return };
        let mut dialogs = lock(&self.dialogs);
        let ok = response.filter(|r| r.status().is_some_and(|s| (200..300).contains(&s)));
        let Some(response) = ok else {
            dialogs.remove(&key);
            return;
        };
        let Some(handed) = dialogs.get_mut(&key) else {
            return;
        };
        let Some(tag) = response.to().ok().and_then(|t| t.tag().map(str::to_owned)) else {
            // A 2xx without a To tag makes no dialog the watcher can use.
            dialogs.remove(&key);
            return;
        };
        let expires = response
            .expires()
            .ok()
            .flatten()
            .or_else(|| m.expires().ok().flatten())
            .unwrap_or(3600);
        handed.dialog.local_tag = tag;
        handed.confirmed = true;
        handed.expires_at = self.stack.now() + u64::from(expires) * 1000 + GRACE_MS;
        self.hand_overs.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "{}: watcher {} handed over to {}",
            handed.device.0,
            handed.dialog.remote_uri,
            handed.device.1
        );
    }

    /// Takes back every dialog handed to the device `contact` of `aor` (its binding or flow
    /// ended, or it stopped answering): each watcher gets `terminated;reason=deactivated`.
    pub(crate) fn take_back(&self, aor: &Uri, contact: &str) {
        let device = (presentity_key(aor), contact.to_string());
        let taken: Vec<Handed> = {
            let mut dialogs = lock(&self.dialogs);
            let keys: Vec<(String, String)> = dialogs
                .iter()
                .filter(|(_, h)| h.device == device)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| dialogs.remove(k)).collect()
        };
        if !taken.is_empty() {
            log::info!(
                "{}: taking {} watcher(s) back from {contact}",
                device.0,
                taken.len()
            );
        }
        for handed in taken {
            self.deactivate(handed);
        }
    }

    /// Takes back the one dialog with this key.
    fn take_back_one(&self, key: &(String, String)) {
        let handed = lock(&self.dialogs).remove(key);
        if let Some(handed) = handed {
            self.deactivate(handed);
        }
    }

    /// Sends the watcher of `handed` its final NOTIFY, as the device's side of the dialog.
    fn deactivate(&self, handed: Handed) {
        if !handed.confirmed {
            // The watcher has no dialog with the device yet: the pending hand-over's own
            // failure brings it to the server.
            return;
        }
        let d = &handed.dialog;
        let bytes = d.to_bytes();
        let Ok(view) = DialogView::read(&bytes) else {
            return;
        };
        let (proto, dest) = notify_destination(&view);
        let built = (|| -> crate::error::Result<(String, Vec<u8>)> {
            let (mut b, branch) =
                self.stack
                    .new_request("NOTIFY", &d.remote_target, proto, dest)?;
            for route in &d.route_set {
                b.header("Route", route)?;
            }
            b.header("From", &format!("<{}>;tag={}", d.local_uri, d.local_tag))?;
            b.header("To", &format!("<{}>;tag={}", d.remote_uri, d.remote_tag))?;
            b.header("Call-ID", &d.call_id)?;
            b.header(
                "CSeq",
                &format!("{} NOTIFY", d.local_cseq.saturating_add(1)),
            )?;
            b.header("Contact", &self.stack.contact_for(proto, dest))?;
            b.header("Event", &d.event)?;
            b.header("Subscription-State", "terminated;reason=deactivated")?;
            b.header("User-Agent", &self.stack.config().server_name)?;
            Ok((branch, b.build()))
        })();
        match built {
            Ok((branch, bytes)) => {
                self.take_backs.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "{}: watcher {} taken back from {} (deactivated)",
                    handed.device.0,
                    d.remote_uri,
                    handed.device.1
                );
                self.stack
                    .send_request(branch, bytes, proto, dest, Box::new(Forget));
            }
            Err(e) => log::warn!("cannot build a take-back NOTIFY: {e}"),
        }
    }

    /// Ends the entries past their expiry at `now` (clock ms).
    pub(crate) fn tick(&self, now: u64) {
        if now < self.next_expiry.load(Ordering::Acquire) {
            return;
        }
        let mut dialogs = lock(&self.dialogs);
        dialogs.retain(|_, h| h.expires_at > now);
        let next = dialogs.values().map(|h| h.expires_at).min();
        self.next_expiry
            .store(next.unwrap_or(u64::MAX), Ordering::Release);
    }

    /// When [`Handover::tick`] has work next.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let next = self.next_expiry.load(Ordering::Acquire);
        (next != u64::MAX).then_some(next)
    }

    /// The entry of the in-dialog request `m`, and whether `m` goes toward the device (it
    /// comes from the watcher).
    fn find(
        dialogs: &HashMap<(String, String), Handed>,
        m: &SipMessage,
    ) -> Option<((String, String), bool)> {
        let call_id = m.call_id().ok()?.to_string();
        let from_tag = m.from().ok()?.tag().map(str::to_owned);
        let to_tag = m.to().ok()?.tag().map(str::to_owned);
        if let Some(tag) = from_tag {
            let key = (call_id.clone(), tag);
            if dialogs.contains_key(&key) {
                return Some((key, true));
            }
        }
        let key = (call_id, to_tag?);
        dialogs.contains_key(&key).then_some((key, false))
    }
}

impl HandedDialogs for Handover {
    fn relaying(&self, m: &SipMessage) -> Option<Option<NextHop>> {
        let now = self.stack.now();
        let mut dialogs = lock(&self.dialogs);
        let (key, to_device) = Self::find(&dialogs, m)?;
        let handed = dialogs.get_mut(&key)?;
        if to_device {
            if m.method() == Some("SUBSCRIBE") {
                if let Ok(Some(expires)) = m.expires() {
                    handed.expires_at = now + u64::from(expires) * 1000 + GRACE_MS;
                }
            }
            return Some(Some(handed.flow));
        }
        // A watcher over a connection is reached over it, whatever its Contact says (behind
        // NAT, or a WebSocket client, it can be reached no other way).
        let watcher_flow = handed.dialog.proto.is_stream().then_some(NextHop {
            proto: handed.dialog.proto,
            addr: handed.dialog.peer,
        });
        if m.method() == Some("NOTIFY") {
            if let Ok(cseq) = m.cseq() {
                handed.dialog.local_cseq = handed.dialog.local_cseq.max(cseq.seq);
            }
            let ended = m
                .subscription_state()
                .ok()
                .flatten()
                .is_some_and(|s| s.state().eq_ignore_ascii_case("terminated"));
            if ended {
                dialogs.remove(&key);
            }
        }
        Some(watcher_flow)
    }

    fn relayed(&self, m: &SipMessage, status: u16) {
        let (key, to_device, device) = {
            let dialogs = lock(&self.dialogs);
            let Some((key, to_device)) = Self::find(&dialogs, m) else {
                return;
            };
            let device = dialogs
                .get(&key)
                .map(|h| (h.aor.clone(), h.device.1.clone()));
            (key, to_device, device)
        };
        match (to_device, status) {
            (true, 408 | 503) => {
                if let Some((aor, contact)) = device {
                    log::info!("{aor}: {contact} failed a relayed request ({status})");
                    self.take_back(&aor, &contact);
                    // Its watchers' new SUBSCRIBEs stay on the server.
                    (self.device_failed)(&aor, &contact);
                }
            }
            (true, 481) => self.take_back_one(&key),
            (false, 408 | 481) => {
                lock(&self.dialogs).remove(&key);
            }
            _ => {}
        }
    }
}

/// The device's side of the dialog a watcher's SUBSCRIBE `m` (from `peer`) creates, before
/// the device answered: the watcher's tag, URI, Contact and route set.
fn watcher_side(m: &SipMessage, peer: &Peer) -> Option<SubscriptionDialog> {
    let from = m.from().ok()?;
    let to = m.to().ok()?;
    let remote_target = match m.contact().ok()? {
        crate::sip::header::Contacts::List(list) if !list.is_empty() => {
            list[0].uri_text().to_string()
        }
        _ => return None,
    };
    Some(SubscriptionDialog {
        call_id: m.call_id().ok()?.to_string(),
        local_tag: String::new(),
        remote_tag: from.tag()?.to_string(),
        local_uri: to.uri_text().to_string(),
        remote_uri: from.uri_text().to_string(),
        remote_target,
        route_set: m
            .record_route()
            .ok()?
            .iter()
            .map(|r| format!("<{}>", r.uri_text()))
            .collect(),
        local_cseq: 0,
        remote_cseq: m.cseq().ok()?.seq,
        event: m.header("Event").unwrap_or("presence").trim().to_string(),
        proto: peer.proto,
        peer: peer.source,
    })
}

/// The table's key of the watcher's SUBSCRIBE `m`: its Call-ID and From tag.
fn key_of(m: &SipMessage) -> Option<(String, String)> {
    Some((
        m.call_id().ok()?.to_string(),
        m.from().ok()?.tag()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_modes_parse_and_print() {
        for mode in [Migration::Off, Migration::Proxy, Migration::Redirect] {
            assert_eq!(mode.as_str().parse::<Migration>().unwrap(), mode);
        }
        assert_eq!(" PROXY ".parse::<Migration>().unwrap(), Migration::Proxy);
        let e = "sideways".parse::<Migration>().unwrap_err().to_string();
        assert!(e.contains("sideways") && e.contains("redirect"), "{e}");
        assert_eq!(Migration::default(), Migration::Off);
    }
}
