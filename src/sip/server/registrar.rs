//! REGISTER (RFC 3261 §10): a registrar for the owned domains. Each contact is an endpoint
//! of the user in the engine ([`crate::engine::Core::login_at`]): its id is the contact URI,
//! its location the address the REGISTER came from (so requests reach a client behind NAT
//! over the path it opened). Registering brings the user online, so messages stored for it
//! are relayed to the new contact at once.
#![forbid(unsafe_code)]

use super::{location, Inner, Reply, Request};
use crate::engine::EndpointInfo;
use crate::error::{Error, Result};
use crate::sip::header::Contacts;

/// Default registration expiry when the request names none (RFC 3261 §10.2.1.1).
const DEFAULT_EXPIRES: u32 = 3600;

impl Inner {
    pub(crate) fn register(&self, request: &Request) -> Result<Reply> {
        let m = &request.message;
        let aor = m.to()?.uri()?;
        let engine = self.engine()?;
        if !engine.config().owns(&aor) {
            return Ok(self.reply(request, 404, "Not Found (not a domain of this registrar)"));
        }
        let user = match self.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(answer),
        };
        if let Err(answer) = self.check_identity(request, &user, &aor) {
            return Ok(answer);
        }
        let header_expires = m.expires()?;
        match m.contact()? {
            Contacts::Wildcard => {
                if header_expires != Some(0) {
                    return Ok(self.reply(
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
                            return self.too_brief(request, engine.config().endpoint_expiry.min)
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let mut answer = self.reply(request, 200, "OK");
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
        if let Some(addr) = contact.and_then(super::contact_address) {
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
