//! REGISTER (RFC 3261 §10): a registrar for the owned domains. Each contact is an endpoint
//! of the user in the engine ([`crate::engine::Core::login_at`]): its id is the contact URI,
//! its location the address the REGISTER came from (so requests reach a client behind NAT
//! over the path it opened). Registering brings the user online, so messages stored for it
//! are relayed to the new contact at once. A REGISTER that would give the user more
//! endpoints than the engine keeps gets `403 Forbidden (too many registrations)` and changes
//! nothing (see [`too_many_registrations`]).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::auth::Authentication;
use crate::engine::EndpointInfo;
use crate::engine::EngineHandle;
use crate::error::{Error, Result};
use crate::log;
use crate::sip::header::Contacts;
use crate::sip::stack::{location, lock, Reply, Request, Stack};
use crate::uri::Uri;

/// Default registration expiry when the request names none (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

/// The registrar role.
pub(crate) struct Registrar {
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    /// Held while a REGISTER is handled and answered; the pager takes it before it relays,
    /// so a client gets its REGISTER's answer before the messages that waited for it.
    gate: Arc<Mutex<()>>,
    /// The contacts registered over each WebSocket connection (by its location, see
    /// [`contact_location`]): they end when it closes ([`Registrar::websocket_closed`]).
    over_websockets: Mutex<HashMap<String, Vec<(Uri, String)>>>,
}

impl Registrar {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        gate: Arc<Mutex<()>>,
    ) -> Registrar {
        Registrar {
            stack,
            engine,
            auth,
            gate,
            over_websockets: Mutex::default(),
        }
    }

    /// Ends the registrations made over the WebSocket connection at `location` that closed
    /// (RFC 7118 §5: the client cannot be reached another way): the user is offline at once
    /// if it has no other contact, and messages for it are stored.
    pub(crate) fn websocket_closed(&self, location: &str) {
        let Some(contacts) = lock(&self.over_websockets).remove(location) else {
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
                log::debug!("{aor}: {contact} gone with its WebSocket");
                let _ = engine.logout(&aor, &contact);
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
                }
                for contact in added {
                    let here = contact_location(request, contact.uri().ok().as_ref());
                    let uri = contact.uri_text();
                    match engine.login_at(&aor, uri, Some(&here), Some(expires_of(contact))) {
                        Ok(_) if request.peer.proto.is_websocket() => {
                            let mut table = lock(&self.over_websockets);
                            let list = table.entry(here).or_default();
                            if !list.iter().any(|(a, c)| a == &aor && c == uri) {
                                list.push((aor.clone(), uri.to_string()));
                            }
                        }
                        Ok(_) => {}
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

/// Whether an endpoint is a registered SIP contact (its id a SIP URI) rather than a login
/// through the API.
pub(crate) fn is_contact(endpoint: &EndpointInfo) -> bool {
    let id = endpoint.endpoint.as_str();
    id.starts_with("sip:") || id.starts_with("sips:")
}
