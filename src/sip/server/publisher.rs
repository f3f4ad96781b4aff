//! PUBLISH (RFC 3903): an initial publication carries a body; `SIP-If-Match` names an
//! existing one to refresh (no body: the document is kept), modify (a body) or remove
//! (`Expires: 0`). Every success carries a `SIP-ETag` (RFC 3903): a new one, or for a
//! removal the one removed, with `Expires: 0`; an unknown or expired tag is
//! `412 Conditional Request Failed`, a body of a type the package does not take `415` (with
//! `Accept`), a document of its type that does not parse or validate `400`, an expiry below
//! the minimum `423` with `Min-Expires`. Only the presentity itself publishes, or a
//! telephony system trusted to publish for the users of its domain (`super::trust`);
//! anyone else is `403`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::auth::Authentication;
use crate::engine::{Core, EngineHandle, PublicationChange};
use crate::error::Result;
use crate::model::package::Package;
use crate::sip::stack::{Reply, Request, Stack};

/// The publisher role (the event state compositor's front: publications go to the engine).
pub(crate) struct Publisher {
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
}

impl Publisher {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
    ) -> Publisher {
        Publisher {
            stack,
            engine,
            auth,
        }
    }

    /// Handles and answers a PUBLISH: checked here, then answered from the engine's shard
    /// once the publication is made, so the worker neither waits for the shard nor is woken
    /// again to send the answer.
    pub(crate) fn handle(&self, request: &Request) {
        match self.check(request) {
            Ok(Checked::Change {
                engine,
                change,
                granted,
            }) => {
                let (stack, request) = (self.stack.clone(), request.clone());
                engine.publication_then(change, move |result| {
                    let answer = result.and_then(|tag| {
                        let mut answer = stack.reply(&request, 200, "OK");
                        answer.header("SIP-ETag", &tag)?;
                        answer.header("Expires", &granted.to_string())?;
                        Ok(Some(answer))
                    });
                    stack.finish(&request, answer);
                });
            }
            Ok(Checked::Answer(answer)) => self.stack.finish(request, Ok(Some(answer))),
            Err(e) => self.stack.finish(request, Err(e)),
        }
    }

    /// Everything a PUBLISH is checked for before the engine sees it.
    fn check(&self, request: &Request) -> Result<Checked> {
        let answer = |reply: Reply| Ok(Checked::Answer(reply));
        let m = &request.message;
        let engine = self.engine.get()?;
        let presentity = m.request_uri()?;
        if !engine.config().owns(&presentity) {
            return answer(self.stack.reply(request, 404, "Not Found"));
        }
        let Some(event) = m.event()? else {
            return answer(super::bad_event(&self.stack, request, "no Event header"));
        };
        let Ok(package) = event.package().parse::<Package>() else {
            return answer(super::bad_event(&self.stack, request, event.package()));
        };
        if !package.is_publishable() {
            return answer(super::bad_event(&self.stack, request, event.package()));
        }
        // A user publishes for itself; a telephony system listed as a publisher of the
        // presentity's domain, for any of its users (see `super::trust`): a PBX by its
        // address, without digest, or a privileged account by its credentials.
        if !self
            .auth
            .trust()
            .publishes_from(&request.peer, &presentity, package)
        {
            let user = match self.auth.authenticate(request) {
                Ok(user) => user,
                Err(refused) => return answer(refused),
            };
            let delegated = user
                .as_ref()
                .is_some_and(|u| self.auth.trust().publishes_as(u, &presentity, package));
            if !delegated {
                if let Err(refused) = self.auth.check_identity(request, &user, &presentity) {
                    return answer(refused);
                }
            }
        }
        let expires = m.expires()?;
        let body = m.body();
        let document = if body.is_empty() {
            None
        } else {
            let ct = m.content_type()?;
            let expected = package.content_type();
            if !ct.is_some_and(|ct| ct.essence().eq_ignore_ascii_case(expected)) {
                let mut refused = self.stack.reply(request, 415, "Unsupported Media Type");
                refused.header("Accept", expected)?;
                return answer(refused);
            }
            let Ok(text) = std::str::from_utf8(body) else {
                return answer(
                    self.stack
                        .reply(request, 400, "Bad Request (body is not UTF-8)"),
                );
            };
            match package.parse(text, &engine.config().limits) {
                Ok(doc) => Some(doc),
                // The type is the package's, the document does not follow it (such as
                // baresip's `<basic>unknown</basic>`: PIDF allows only open and closed):
                // 400, not 415, which would tell the client to send another type.
                Err(e) => {
                    return answer(self.stack.reply(
                        request,
                        400,
                        &format!("Bad Request ({})", crate::sip::stack::short(&e.to_string())),
                    ))
                }
            }
        };
        let if_match = m.header("SIP-If-Match").map(str::trim).map(str::to_owned);
        let removing = expires == Some(0);
        let granted = if removing {
            0
        } else {
            match engine
                .config()
                .publication_expiry
                .grant(expires, "publication")
            {
                Ok(granted) => granted,
                Err(_) => {
                    return self
                        .stack
                        .too_brief(request, engine.config().publication_expiry.min)
                        .map(Checked::Answer)
                }
            }
        };
        let change = match (if_match, document) {
            (None, None) => {
                return answer(self.stack.reply(
                    request,
                    400,
                    "Bad Request (an initial PUBLISH needs a body)",
                ))
            }
            (None, Some(_)) if removing => {
                return answer(self.stack.reply(
                    request,
                    400,
                    "Bad Request (Expires: 0 without SIP-If-Match)",
                ))
            }
            (None, Some(document)) => PublicationChange::Publish {
                presentity,
                document,
                expires: Some(granted),
            },
            (Some(etag), _) if removing => PublicationChange::Remove { etag },
            (Some(etag), None) => PublicationChange::Refresh {
                etag,
                expires: granted,
            },
            // A modification is a refresh too (RFC 3903 §4.4): one step in the engine.
            (Some(etag), Some(document)) => PublicationChange::Modify {
                etag,
                document,
                expires: granted,
            },
        };
        Ok(Checked::Change {
            engine,
            change,
            granted,
        })
    }
}

/// What [`Publisher::check`] found.
enum Checked {
    /// The PUBLISH is answered without the engine.
    Answer(Reply),
    /// The change to make, and the expiry granted (in the answer).
    Change {
        engine: Arc<Core>,
        change: PublicationChange,
        granted: u32,
    },
}
