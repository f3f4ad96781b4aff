//! REGISTER (RFC 3261 §10): a registrar for the owned domains. Each contact is an endpoint
//! of the user in the engine ([`crate::engine::Core::login_at`]): its id is the contact URI,
//! its location the address the REGISTER came from (so requests reach a client behind NAT
//! over the path it opened). Registering brings the user online, so messages stored for it
//! are relayed to the new contact at once.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use super::auth::Authentication;
use crate::engine::EndpointInfo;
use crate::engine::EngineHandle;
use crate::error::{Error, Result};
use crate::sip::header::Contacts;
use crate::sip::stack::{location, lock, Reply, Request, Stack};

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
                for contact in contacts {
                    let here = contact_location(request, contact.uri().ok().as_ref());
                    let expires = match contact.params().value("expires") {
                        Some(v) => v.parse::<u32>().unwrap_or(DEFAULT_EXPIRES),
                        None => header_expires.unwrap_or(DEFAULT_EXPIRES),
                    };
                    let uri = contact.uri_text();
                    if expires == 0 {
                        engine.logout(&aor, uri)?;
                        continue;
                    }
                    match engine.login_at(&aor, uri, Some(&here), Some(expires)) {
                        Ok(_) => {}
                        Err(Error::IntervalTooBrief(_)) => {
                            return self
                                .stack
                                .too_brief(request, engine.config().endpoint_expiry.min)
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
