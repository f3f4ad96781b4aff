//! REGISTER (RFC 3261 §10): a registrar for the owned domains. Each contact is an endpoint
//! of the user in the engine ([`crate::engine::Core::login_at`]): its id is the contact URI,
//! its location the address the REGISTER came from (so requests reach a client behind NAT
//! over the path it opened). Registering brings the user online, so messages stored for it
//! are relayed to the new contact at once. A REGISTER that would give the user more
//! endpoints than the engine keeps gets `403 Forbidden (too many registrations)` and changes
//! nothing (see [`too_many_registrations`]).
//!
//! # Contacts that serve their own watchers
//!
//! A contact whose `events` feature tag (RFC 3840 §9: the packages this UA can be the
//! notifier for, a quoted comma-separated list) names `presence` offers to be its address
//! of record's presence agent (see `super::handover`). The tag belongs to the binding, so it
//! is kept here with the contact, in memory only ([`ServingContact`]): it is as soft as the
//! flow it came over, and a device registers again after a restart. The serving contact
//! ends, and whoever holds its watchers is told ([`ServingEnded`]), when its binding ends
//! (un-REGISTER, a refresh without the tag, expiry) or its flow closes: the TCP or TLS
//! connection the REGISTER came on (RFC 5626 §4.4: the device's CRLF keep-alives keep a
//! live flow open, so a close is its death), as every contact registered over a WebSocket
//! ends with its connection. A serving contact over UDP has no flow to watch: only its
//! expiry, or a request to it that fails, tells of its death.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::auth::Authentication;
use crate::engine::EndpointInfo;
use crate::engine::EngineHandle;
use crate::error::{Error, Result};
use crate::log;
use crate::model::key::presentity_key;
use crate::sip::header::Contacts;
use crate::sip::stack::{location, lock, Reply, Request, Stack};
use crate::uri::Uri;

/// Default registration expiry when the request names none (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

/// A registered contact that offers to be its address of record's presence agent (see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServingContact {
    /// The address of record.
    pub(crate) aor: Uri,
    /// The contact URI as registered.
    pub(crate) contact: String,
    /// Its flow: where requests for it go (the connection the REGISTER came on over TCP).
    pub(crate) location: String,
    /// When the binding expires unless refreshed (clock ms).
    pub(crate) expires_at: u64,
    /// When it was registered (clock ms): what its flow's silence counts from until the
    /// first keep-alive (see [`Registrar::set_flow_timeout`]).
    pub(crate) registered_at: u64,
}

/// Told of a serving contact that ended (its binding or its flow), on the thread that
/// learned it (a worker or the timer thread).
pub(crate) type ServingEnded = Box<dyn Fn(&ServingContact) + Send + Sync>;

/// The registrar role.
pub(crate) struct Registrar {
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    /// Held while a REGISTER is handled and answered; the pager takes it before it relays,
    /// so a client gets its REGISTER's answer before the messages that waited for it.
    gate: Arc<Mutex<()>>,
    /// The contacts registered over each WebSocket connection, and the serving contacts
    /// registered over each TCP or TLS connection (by its location, see
    /// [`contact_location`]): they end when it closes ([`Registrar::flow_closed`]).
    over_flows: Mutex<HashMap<String, Vec<(Uri, String)>>>,
    /// The serving contacts, by their address of record's key (at most the engine's
    /// endpoints per user each).
    serving: Mutex<HashMap<String, Vec<ServingContact>>>,
    /// Told of each serving contact that ends.
    serving_ended: ServingEnded,
    /// No serving contact expires before this (clock ms; `u64::MAX`: none), so that the
    /// timer thread's turns look at the table only when one may have.
    next_expiry: AtomicU64,
    /// When a keep-alive (CRLF CRLF, RFC 5626 §4.4.1) last came over each connection a
    /// serving contact registered over, by location (clock ms).
    pinged: Mutex<HashMap<String, u64>>,
    /// How long a serving contact's TCP or TLS flow may stay silent (no keep-alive since the
    /// last, or since its REGISTER) before it counts as dead (ms; 0: never, only its close
    /// or its binding's end tells).
    flow_timeout_ms: AtomicU64,
}

impl Registrar {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        gate: Arc<Mutex<()>>,
        serving_ended: ServingEnded,
    ) -> Registrar {
        Registrar {
            stack,
            engine,
            auth,
            gate,
            over_flows: Mutex::default(),
            serving: Mutex::default(),
            pinged: Mutex::default(),
            flow_timeout_ms: AtomicU64::new(0),
            serving_ended,
            next_expiry: AtomicU64::new(u64::MAX),
        }
    }

    /// The serving contact of `aor` registered last (see the module documentation), if any.
    pub(crate) fn serving(&self, aor: &Uri) -> Option<ServingContact> {
        let now = self.stack.now();
        lock(&self.serving)
            .get(&presentity_key(aor))
            .and_then(|list| list.iter().rev().find(|c| c.expires_at > now).cloned())
    }

    /// Sets how long a serving contact's TCP or TLS flow may stay silent before its watchers
    /// are taken back (`None`: until it closes or its binding ends). A device sends its
    /// keep-alives more often than this (its `keepalive`), else it loses its watchers.
    pub(crate) fn set_flow_timeout(&self, timeout: Option<std::time::Duration>) {
        let ms = timeout.map_or(0, |t| t.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
        self.flow_timeout_ms.store(ms, Ordering::Release);
        // Deadlines may be nearer now.
        self.next_expiry.store(0, Ordering::Release);
        self.stack.alarm().at(self.stack.now());
    }

    /// A keep-alive came over the connection at `location` (on the I/O thread): a serving
    /// contact's flow over it lives on.
    pub(crate) fn pinged(&self, location: String) {
        if self.flow_timeout_ms.load(Ordering::Acquire) != 0 {
            lock(&self.pinged).insert(location, self.stack.now());
        }
    }

    /// When a serving contact's flow counts as dead unless a keep-alive comes (clock ms),
    /// if silence counts at all (a flow timeout set, a stream transport).
    fn silent_at(&self, c: &ServingContact, pinged: &HashMap<String, u64>) -> Option<u64> {
        let timeout = self.flow_timeout_ms.load(Ordering::Acquire);
        let stream = crate::sip::stack::parse_location(&c.location)
            .is_some_and(|(proto, _)| proto.is_stream());
        if timeout == 0 || !stream {
            return None;
        }
        let alive = pinged
            .get(&c.location)
            .copied()
            .unwrap_or(0)
            .max(c.registered_at);
        Some(alive.saturating_add(timeout))
    }

    /// Keeps `contact` of `aor` as serving (or refreshes it).
    fn keep_serving(&self, contact: ServingContact) {
        // The timer thread ends it at its expiry (or its flow's silence), also when it
        // sleeps now.
        let silent = self.silent_at(&contact, &HashMap::new());
        let due = silent.map_or(contact.expires_at, |s| s.min(contact.expires_at));
        self.stack.alarm().at(due);
        let mut serving = lock(&self.serving);
        self.next_expiry.fetch_min(due, Ordering::AcqRel);
        let list = serving.entry(presentity_key(&contact.aor)).or_default();
        list.retain(|c| c.contact != contact.contact);
        list.push(contact);
    }

    /// Stops handing watchers to the serving contact `contact` of `aor` (it failed a
    /// request: gone, or overloaded) until it registers again; its binding stays.
    pub(crate) fn stop_serving(&self, aor: &Uri, contact: &str) {
        self.end_serving(aor, contact);
    }

    /// Ends the serving contact `contact` of `aor`, if it is one, and tells of it.
    fn end_serving(&self, aor: &Uri, contact: &str) {
        let ended = {
            let mut serving = lock(&self.serving);
            let key = presentity_key(aor);
            let Some(list) = serving.get_mut(&key) else {
                return;
            };
            let Some(at) = list.iter().position(|c| c.contact == contact) else {
                return;
            };
            let ended = list.remove(at);
            if list.is_empty() {
                serving.remove(&key);
            }
            ended
        };
        log::debug!("{aor}: {contact} no longer serves its watchers");
        (self.serving_ended)(&ended);
    }

    /// Ends the serving contacts whose bindings expired by `now` (clock ms).
    pub(crate) fn tick(&self, now: u64) {
        if now < self.next_expiry.load(Ordering::Acquire) {
            return;
        }
        // (address of record, contact, whether its binding expired: else its flow fell
        // silent).
        let ended: Vec<(Uri, String, bool)> = {
            let serving = lock(&self.serving);
            let pinged = lock(&self.pinged);
            let all = || serving.values().flatten();
            // A contact's deadline: its binding's end, or its flow's silence if nearer.
            let due = |c: &ServingContact| {
                self.silent_at(c, &pinged)
                    .map_or(c.expires_at, |s| s.min(c.expires_at))
            };
            let next = all().map(due).filter(|at| *at > now).min();
            self.next_expiry
                .store(next.unwrap_or(u64::MAX), Ordering::Release);
            all()
                .filter(|c| due(c) <= now)
                .map(|c| (c.aor.clone(), c.contact.clone(), c.expires_at <= now))
                .collect()
        };
        for (aor, contact, expired) in ended {
            if !expired {
                log::info!("{aor}: {contact} sent no keep-alive in time: its flow counts as dead");
            }
            self.end_serving(&aor, &contact);
        }
    }

    /// When [`Registrar::tick`] has work next.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let next = self.next_expiry.load(Ordering::Acquire);
        (next != u64::MAX).then_some(next)
    }

    /// Ends the registrations made over the connection at `location` that closed: every one
    /// over a WebSocket (RFC 7118 §5: the client cannot be reached another way), the serving
    /// ones over TCP or TLS (RFC 5626: the flow of a device that serves its watchers). The
    /// user is offline at once if it has no other contact, and messages for it are stored.
    pub(crate) fn flow_closed(&self, location: &str) {
        lock(&self.pinged).remove(location);
        let Some(contacts) = lock(&self.over_flows).remove(location) else {
            return;
        };
        let Ok(engine) = self.engine.get() else {
            return;
        };
        for (aor, contact) in contacts {
            // A contact registered again over another connection since is not this one's.
            let here = engine.endpoints(&aor).ok().and_then(|endpoints| {
                endpoints
                    .into_iter()
                    .find(|e| e.endpoint == contact)
                    .and_then(|e| e.contact)
            });
            if here.as_deref() == Some(location) {
                log::debug!("{aor}: {contact} gone with its connection");
                let _ = engine.logout(&aor, &contact);
                self.end_serving(&aor, &contact);
            }
        }
    }

    /// Handles and answers a REGISTER.
    pub(crate) fn handle(&self, request: &Request) {
        // Messages waiting for the user are relayed as soon as it is online; the gate
        // keeps them behind the REGISTER's answer.
        let _gate = lock(&self.gate);
        let answer = self.register(request).map(Some);
        self.stack.finish(request, answer);
    }

    fn register(&self, request: &Request) -> Result<Reply> {
        // Whether a contact serving its watchers registered over a TCP or TLS flow (it is
        // told how often to keep the flow alive).
        let mut serving_flow = false;
        let m = &request.message;
        let aor = m.to()?.uri()?;
        let engine = self.engine.get()?;
        if !engine.config().owns(&aor) {
            return Ok(self.stack.reply(
                request,
                404,
                "Not Found (not a domain of this registrar)",
            ));
        }
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(answer),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &aor) {
            return Ok(answer);
        }
        let header_expires = m.expires()?;
        match m.contact()? {
            Contacts::Wildcard => {
                if header_expires != Some(0) {
                    return Ok(self.stack.reply(
                        request,
                        400,
                        "Bad Request (Contact * needs Expires: 0)",
                    ));
                }
                for endpoint in engine.endpoints(&aor)? {
                    if is_contact(&endpoint) {
                        engine.logout(&aor, &endpoint.endpoint)?;
                        self.end_serving(&aor, &endpoint.endpoint);
                    }
                }
            }
            Contacts::List(contacts) => {
                let expires_of = |contact: &crate::sip::header::NameAddr| match contact
                    .params()
                    .value("expires")
                {
                    Some(v) => v.parse::<u32>().unwrap_or(DEFAULT_EXPIRES),
                    None => header_expires.unwrap_or(DEFAULT_EXPIRES),
                };
                let (removed, added): (Vec<_>, Vec<_>) =
                    contacts.iter().partition(|c| expires_of(c) == 0);
                let max = engine.config().state_limits.max_endpoints_per_user;
                if too_many(&engine.endpoints(&aor)?, &removed, &added, max) {
                    engine.count_endpoint_refusal(&aor);
                    return Ok(too_many_registrations(&self.stack, request));
                }
                // Removals first, so that the bound counts what the request leaves.
                for contact in removed {
                    engine.logout(&aor, contact.uri_text())?;
                    self.end_serving(&aor, contact.uri_text());
                }
                for contact in added {
                    let here = contact_location(request, contact.uri().ok().as_ref());
                    let uri = contact.uri_text();
                    let serves = offers_presence(contact);
                    serving_flow |= serves && request.peer.proto.is_stream();
                    match engine.login_at(&aor, uri, Some(&here), Some(expires_of(contact))) {
                        Ok(granted) => {
                            if serves {
                                self.keep_serving(ServingContact {
                                    aor: aor.clone(),
                                    contact: uri.to_string(),
                                    location: here.clone(),
                                    expires_at: self.stack.now() + u64::from(granted) * 1000,
                                    registered_at: self.stack.now(),
                                });
                            } else {
                                self.end_serving(&aor, uri);
                            }
                            let proto = request.peer.proto;
                            if proto.is_websocket() || (serves && proto.is_stream()) {
                                let mut table = lock(&self.over_flows);
                                let list = table.entry(here).or_default();
                                if !list.iter().any(|(a, c)| a == &aor && c == uri) {
                                    list.push((aor.clone(), uri.to_string()));
                                }
                            }
                        }
                        Err(Error::IntervalTooBrief(_)) => {
                            return self
                                .stack
                                .too_brief(request, engine.config().endpoint_expiry.min)
                        }
                        // Another REGISTER of the user's took the room meanwhile.
                        Err(Error::LimitReached(_)) => {
                            return Ok(too_many_registrations(&self.stack, request))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let mut answer = self.stack.reply(request, 200, "OK");
        // RFC 5626 §4.4.1: keep-alives at least every N seconds; half the flow timeout, so
        // one lost ping does not count the flow as dead.
        let timeout_s = self.flow_timeout_ms.load(Ordering::Acquire) / 1000;
        if serving_flow && timeout_s > 0 {
            answer.header("Flow-Timer", &(timeout_s / 2).max(1).to_string())?;
        }
        for endpoint in engine.endpoints(&aor)? {
            if is_contact(&endpoint) {
                answer.header(
                    "Contact",
                    &format!("<{}>;expires={}", endpoint.endpoint, endpoint.expires_in),
                )?;
            }
        }
        Ok(answer)
    }
}

/// Whether a REGISTER that removes `removed` and adds or refreshes `added` would leave the
/// user more than `max` endpoints (only when it adds one: a refresh or removal never fails).
fn too_many(
    endpoints: &[EndpointInfo],
    removed: &[&crate::sip::header::NameAddr],
    added: &[&crate::sip::header::NameAddr],
    max: u32,
) -> bool {
    let known = |uri: &str| endpoints.iter().any(|e| e.endpoint == uri);
    let distinct = |contacts: &[&crate::sip::header::NameAddr], known_ones: bool| {
        let mut uris: Vec<&str> = contacts
            .iter()
            .map(|c| c.uri_text())
            .filter(|uri| known(uri) == known_ones)
            .collect();
        uris.sort_unstable();
        uris.dedup();
        uris.len()
    };
    let (new, gone) = (distinct(added, false), distinct(removed, true));
    new > 0 && endpoints.len() - gone + new > max as usize
}

/// The answer to a REGISTER that would give its user more endpoints than the engine keeps
/// ([`crate::engine::StateLimits::max_endpoints_per_user`]): `403` with the reason, nothing
/// registered. Not `503` (which some registrars send): it would tell the phone this server
/// is overloaded and send it to another one (RFC 3263 §4.3), while the bound holds until
/// one of the user's registrations ends, so repeating the request would not help
/// (RFC 3261 §21.4.4).
fn too_many_registrations(stack: &Stack, request: &Request) -> Reply {
    stack.reply(request, 403, "Forbidden (too many registrations)")
}

/// Where requests for a contact go: over UDP the Contact's own address when it is an IP
/// address (RFC 3261 §10.3; no DNS here), else the address the REGISTER came from; over TCP
/// the connection the REGISTER came on (a client behind NAT can be reached on no other).
fn contact_location(request: &Request, contact: Option<&crate::uri::Uri>) -> String {
    let peer = &request.peer;
    if peer.proto == crate::sip::transport::Proto::Udp {
        if let Some(addr) = contact.and_then(crate::sip::stack::contact_address) {
            return location(peer.proto, addr);
        }
    }
    location(peer.proto, peer.source)
}

/// Whether a REGISTER's contact offers to be its address of record's presence agent: its
/// `events` feature tag (RFC 3840 §9, also written `+sip.events`), a quoted comma-separated
/// list of event packages, names `presence`.
pub(crate) fn offers_presence(contact: &crate::sip::header::NameAddr) -> bool {
    let params = contact.params();
    params
        .value("events")
        .or_else(|| params.value("+sip.events"))
        .is_some_and(|v| {
            v.trim_matches('"')
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("presence"))
        })
}

/// Whether an endpoint is a registered SIP contact (its id a SIP URI) rather than a login
/// through the API.
pub(crate) fn is_contact(endpoint: &EndpointInfo) -> bool {
    let id = endpoint.endpoint.as_str();
    id.starts_with("sip:") || id.starts_with("sips:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::NameAddr;

    #[test]
    fn a_contact_offers_presence_by_its_events_feature_tag() {
        let offers = |text: &str| offers_presence(&NameAddr::parse(text, "Contact").unwrap());
        assert!(offers(
            r#"<sip:a@192.0.2.1;transport=tcp>;events="presence";+sip.instance="<urn:uuid:1>";reg-id=1"#
        ));
        assert!(offers(r#"<sip:a@192.0.2.1>;events="dialog,Presence""#));
        assert!(offers(r#"<sip:a@192.0.2.1>;+sip.events="presence""#));
        assert!(!offers(
            r#"<sip:a@192.0.2.1>;events="presence.winfo,dialog""#
        ));
        assert!(!offers("<sip:a@192.0.2.1>;expires=60"));
    }
}
