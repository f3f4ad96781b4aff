//! MESSAGE (RFC 3428): a MESSAGE for a user of the owned domains becomes
//! [`crate::engine::Core::send_message`]; its answer waits for the engine's first delivery
//! outcome: `200` (handed to the user's endpoints: its registered contacts get the message
//! relayed as a MESSAGE each), `202` (stored for an offline user), `404` (no such user),
//! `413` (over the size limit), `403` (the recipient blocks the sender), `480` (an
//! is-composing indication for an offline user). The engine's message events for endpoints
//! that are registered SIP contacts are relayed here too.
#![forbid(unsafe_code)]

use super::{lock, parse_location, ClientContext, Inner, PendingMessage, Reply, Request};
use crate::engine::{Delivery, DeliveryOutcome, FailureReason, Message, OutgoingMessage};
use crate::error::Result;
use crate::log;

impl Inner {
    /// `Ok(None)`: the answer follows the engine's first outcome.
    pub(crate) fn message(&self, request: &Request) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine()?;
        let recipient = m.request_uri()?;
        let sender = m.from()?.uri()?;
        let user = match self.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.check_identity(request, &user, &sender) {
            return Ok(Some(answer));
        }
        let Some(content_type) = m.content_type()? else {
            return Ok(Some(self.reply(
                request,
                400,
                "Bad Request (MESSAGE without a body)",
            )));
        };
        if m.body().len() > engine.config().max_message_size {
            return Ok(Some(self.reply(request, 413, "Request Entity Too Large")));
        }
        let mut outgoing = OutgoingMessage::new(
            sender,
            recipient,
            m.header("Content-Type")
                .unwrap_or(&content_type.essence())
                .trim(),
            m.body(),
        );
        outgoing.in_reply_to = m.header("In-Reply-To").map(str::to_owned);
        // The pending entry exists before the engine's outcome can be handled: the event
        // callback waits for this lock.
        let mut pending = lock(&self.pending);
        let id = engine.send_message(outgoing)?;
        pending.insert(
            id,
            PendingMessage {
                request: m.clone(),
                from: request.peer,
                key: request.key.clone(),
            },
        );
        Ok(None)
    }

    /// The engine's outcome of a message: the answer to its MESSAGE, if it came over SIP and
    /// is not answered yet.
    pub(crate) fn delivery(&self, d: &Delivery) -> bool {
        let Some(p) = lock(&self.pending).remove(&d.message) else {
            return false;
        };
        let (status, reason) = match d.outcome {
            DeliveryOutcome::Delivered => (200, "OK"),
            DeliveryOutcome::Stored => (202, "Accepted (stored for an offline user)"),
            DeliveryOutcome::Failed(FailureReason::UnknownUser) => (404, "Not Found"),
            DeliveryOutcome::Failed(FailureReason::TooLarge) => (413, "Request Entity Too Large"),
            DeliveryOutcome::Failed(FailureReason::Rejected) => (403, "Forbidden"),
            DeliveryOutcome::Failed(FailureReason::Offline) => (480, "Temporarily Unavailable"),
            DeliveryOutcome::Failed(FailureReason::Expired) => (408, "Request Timeout"),
            DeliveryOutcome::Failed(FailureReason::Storage) => (500, "Server Internal Error"),
        };
        let request = Request {
            message: p.request,
            peer: p.from,
            key: p.key,
        };
        let answer = self.reply(&request, status, reason);
        self.answer(&request, answer);
        true
    }

    /// A message for one of a user's endpoints: relayed when the endpoint is a registered
    /// contact.
    pub(crate) fn relay(&self, message: &Message) -> bool {
        let endpoint = &*message.endpoint;
        if !(endpoint.starts_with("sip:") || endpoint.starts_with("sips:")) {
            return false;
        }
        let Ok(engine) = self.engine() else {
            return false;
        };
        drop(lock(&self.register_gate));
        let location = engine
            .endpoints(&message.recipient)
            .ok()
            .and_then(|eps| eps.into_iter().find(|e| e.endpoint == endpoint))
            .and_then(|e| e.contact)
            .and_then(|c| parse_location(&c));
        let Some((proto, dest)) = location else {
            log::debug!(
                "message {}: endpoint {endpoint} has no location",
                message.id
            );
            return true;
        };
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self.new_request("MESSAGE", endpoint, proto, dest)?;
            b.header(
                "From",
                &format!("<{}>;tag={}", message.sender, self.token()),
            )?;
            b.header("To", &format!("<{}>", message.recipient))?;
            b.header("Call-ID", &format!("{}@impp", self.token()))?;
            b.header("CSeq", "1 MESSAGE")?;
            if let Some(r) = &message.in_reply_to {
                b.header("In-Reply-To", r)?;
            }
            b.header("Server", &self.config.server_name)?;
            b.body(&message.content_type, &message.body)?;
            Ok((branch, b.build()))
        })();
        match built {
            Ok((branch, bytes)) => {
                self.send_request(branch, bytes, proto, dest, ClientContext::Relay(message.id))
            }
            Err(e) => log::warn!("message {}: cannot relay it to {endpoint}: {e}", message.id),
        }
        true
    }
}
