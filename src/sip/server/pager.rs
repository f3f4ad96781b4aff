//! MESSAGE (RFC 3428): a MESSAGE for a user of the owned domains becomes
//! [`crate::engine::Core::send_message`]; its answer waits for the engine's first delivery
//! outcome: `200` (a device took it: an application's endpoint, or a registered contact
//! that answered 2xx), `202` (stored for an offline user, or for one whose contacts did not
//! take it: see below), `404` (no such user), `413` (over the size limit), `403` (the
//! recipient blocks the sender), `480` (an is-composing indication for a user who cannot
//! take it now).
//!
//! # Relaying to registered contacts: nothing acknowledged is lost
//!
//! A message for a registered contact (an engine message event with a contact) is relayed
//! as a proxy forwards a request (RFC 3261 §16.6): the sender's MESSAGE as it arrived, with
//! the contact as its Request-URI, this server's Via on top, Max-Forwards one lower, and the
//! credentials meant for this server and its Route entries removed. Body, Content-Encoding,
//! Subject, Date, Priority, display names, tags, Call-ID and CSeq reach the device as the
//! sender wrote them; a stored message keeps them (the engine stores the request's bytes
//! with it) for its later delivery. The contact's answer goes back to the engine
//! ([`crate::engine::Core::report_handover`]): the sender hears `200` only once a device
//! answered 2xx. When none does within the engine's hand-over bound (8 s by default, well
//! under the sender's own 32 s), the message is stored as for an offline user, the sender
//! hears `202`, and it is relayed again at the user's next registration. A message the
//! application sends (no request behind it) is relayed as a new MESSAGE.
#![forbid(unsafe_code)]

use super::{lock, parse_location, ClientContext, Inner, PendingMessage, Reply, Request};
use crate::engine::{Delivery, DeliveryOutcome, FailureReason, Message, OutgoingMessage};
use crate::error::Result;
use crate::log;
use crate::model::key::presentity_key;

impl Inner {
    /// `Ok(None)`: the answer follows the engine's first outcome.
    pub(crate) fn message(&self, request: &Request) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine()?;
        if let Some(account) = self.account_addressed(m) {
            return self.account_message(request, account).map(Some);
        }
        let recipient = m.request_uri()?;
        let sender = m.from()?.uri()?;
        let user = match self.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.check_identity(request, &user, &sender) {
            return Ok(Some(answer));
        }
        let mut outgoing = match self.read_message(request, sender, recipient, engine.config())? {
            Ok(outgoing) => outgoing,
            Err(answer) => return Ok(Some(answer)),
        };
        // Relayed as it was written (see the module documentation).
        outgoing.wire = Some(m.to_bytes().into());
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
            DeliveryOutcome::Failed(FailureReason::Unreachable) => (503, "Service Unavailable"),
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

    /// The account a MESSAGE is for, when its To names one of this stack's accounts (the
    /// account's registrar relays it to the contact the account registered): the user-agent
    /// role.
    fn account_addressed(&self, m: &crate::sip::SipMessage) -> Option<usize> {
        if self.config.accounts.is_empty() {
            return None;
        }
        let to = m.to().ok()?.uri().ok()?;
        let key = presentity_key(&to);
        self.config
            .accounts
            .iter()
            .position(|a| presentity_key(&a.aor) == key)
    }

    /// A MESSAGE for one of the accounts: handed to the application as an
    /// [`crate::engine::Event::Message`] (endpoint `sip`) and answered `200` (or `413` over
    /// the size limit). Not challenged: it comes from the account's own server.
    fn account_message(&self, request: &Request, account: usize) -> Result<Reply> {
        let engine = self.engine()?;
        let sender = request.message.from()?.uri()?;
        let aor = self.config.accounts[account].aor.clone();
        let mut incoming = match self.read_message(request, sender, aor, engine.config())? {
            Ok(incoming) => incoming,
            Err(answer) => return Ok(answer),
        };
        incoming.endpoint = Some("sip".into());
        engine.receive_message(incoming)?;
        Ok(self.reply(request, 200, "OK"))
    }

    /// The message a MESSAGE request carries, from `sender` to `recipient` (its content type
    /// as written, its body, In-Reply-To), or the answer refusing it: `400` without a body,
    /// `413` over the size limit.
    fn read_message(
        &self,
        request: &Request,
        sender: crate::uri::Uri,
        recipient: crate::uri::Uri,
        config: &crate::engine::EngineConfig,
    ) -> Result<std::result::Result<OutgoingMessage, Reply>> {
        let m = &request.message;
        let Some(content_type) = m.content_type()? else {
            return Ok(Err(self.reply(
                request,
                400,
                "Bad Request (MESSAGE without a body)",
            )));
        };
        if m.body().len() > config.max_message_size {
            return Ok(Err(self.reply(request, 413, "Request Entity Too Large")));
        }
        let mut message = OutgoingMessage::new(
            sender,
            recipient,
            m.header("Content-Type")
                .unwrap_or(&content_type.essence())
                .trim(),
            m.body(),
        );
        message.in_reply_to = m.header("In-Reply-To").map(str::to_owned);
        Ok(Ok(message))
    }

    /// A MESSAGE request carrying `message` to `uri` at `dest`: its branch and bytes.
    /// `identify` names this server's own header (`Server` when relaying for the recipient's
    /// registrar, `User-Agent` when sending on for the sender).
    fn message_request(
        &self,
        message: &Message,
        uri: &str,
        proto: crate::sip::transport::Proto,
        dest: std::net::SocketAddr,
        identify: &str,
    ) -> Result<(String, Vec<u8>)> {
        let (mut b, branch) = self.new_request("MESSAGE", uri, proto, dest)?;
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
        b.header(identify, &self.config.server_name)?;
        b.body(&message.content_type, &message.body)?;
        Ok((branch, b.build()))
    }

    /// A message for a user of another domain (the engine's [`Event::RemoteMessage`]): sent
    /// as a MESSAGE through the sender's account when the sender is one (with its
    /// credentials), else to the next hop of the recipient's domain; its answer becomes the
    /// sender's delivery outcome (see [`remote_outcome`]).
    ///
    /// [`Event::RemoteMessage`]: crate::engine::Event::RemoteMessage
    pub(crate) fn remote_message(&self, message: &Message) {
        let sender = presentity_key(&message.sender);
        if let Some(account) = self
            .config
            .accounts
            .iter()
            .position(|a| presentity_key(&a.aor) == sender)
        {
            let delivery = Delivery {
                message: message.id,
                sender: message.sender.clone(),
                recipient: message.recipient.clone(),
                outcome: DeliveryOutcome::Delivered,
            };
            let mut extra = Vec::new();
            if let Some(r) = &message.in_reply_to {
                extra.push(("In-Reply-To".to_string(), r.to_string()));
            }
            let request = crate::sip::agent::account::AccountRequest {
                account,
                method: "MESSAGE".into(),
                request_uri: message.recipient.to_string(),
                to: format!("<{}>", message.recipient),
                extra,
                body: Some((message.content_type.to_string(), message.body.to_vec())),
            };
            let sent = self.send_account_request(
                request,
                Box::new(move |inner: &Inner, status, _| inner.report_remote(delivery, status)),
            );
            if let Err(e) = sent {
                log::warn!(
                    "message {}: cannot send it through its account: {e}",
                    message.id
                );
                self.report(message, 0);
            }
            return;
        }
        let Some(hop) = self.config.routes.lookup(message.recipient.host()) else {
            log::info!(
                "message {}: no route to {}",
                message.id,
                message.recipient.host()
            );
            // As without routes: a domain nobody here serves has no such user.
            return self.report(message, 404);
        };
        let uri = message.recipient.to_string();
        let built = self.message_request(message, &uri, hop.proto, hop.addr, "User-Agent");
        match built {
            Ok((branch, bytes)) => self.send_request(
                branch,
                bytes,
                hop.proto,
                hop.addr,
                ClientContext::Remote(Box::new(Delivery {
                    message: message.id,
                    sender: message.sender.clone(),
                    recipient: message.recipient.clone(),
                    outcome: DeliveryOutcome::Delivered,
                })),
            ),
            Err(e) => {
                log::warn!("message {}: cannot send it on: {e}", message.id);
                self.report(message, 0);
            }
        }
    }

    fn report(&self, message: &Message, status: u16) {
        self.report_remote(
            Delivery {
                message: message.id,
                sender: message.sender.clone(),
                recipient: message.recipient.clone(),
                outcome: DeliveryOutcome::Delivered,
            },
            status,
        );
    }

    /// Tells the engine what the answer `status` (0: never sent, 408: timed out) to a remote
    /// message means for its sender.
    pub(crate) fn report_remote(&self, mut delivery: Delivery, status: u16) {
        delivery.outcome = remote_outcome(status);
        if let Ok(engine) = self.engine() {
            let _ = engine.report_delivery(delivery);
        }
    }

    /// A message for a registered contact (the engine's message event with a contact):
    /// relayed to it; its answer goes back to the engine (see the module documentation).
    pub(crate) fn relay(&self, message: &Message) {
        let Some((proto, dest)) = message.contact.as_deref().and_then(parse_location) else {
            log::debug!(
                "message {}: endpoint {} has no location",
                message.id,
                message.endpoint
            );
            return self.handed_over(message, false);
        };
        // A REGISTER that brought the user online is answered before its messages leave.
        drop(lock(&self.register_gate));
        let uri = &*message.endpoint;
        let built = match &message.wire {
            Some(wire) => self.retarget(wire, uri, proto, dest),
            None => self.message_request(message, uri, proto, dest, "User-Agent"),
        };
        match built {
            Ok((branch, bytes)) => self.send_request(
                branch,
                bytes,
                proto,
                dest,
                ClientContext::Relay(Box::new(message.clone())),
            ),
            Err(e) => {
                log::warn!("message {}: cannot relay it to {uri}: {e}", message.id);
                self.handed_over(message, false);
            }
        }
    }

    /// The sender's MESSAGE `wire` as this server forwards it to the contact `uri` at `dest`
    /// (RFC 3261 §16.6): its branch and bytes.
    fn retarget(
        &self,
        wire: &[u8],
        uri: &str,
        proto: crate::sip::transport::Proto,
        dest: std::net::SocketAddr,
    ) -> Result<(String, Vec<u8>)> {
        let m = crate::sip::SipMessage::parse(
            wire,
            &self.config.limits,
            crate::sip::Transport::Datagram,
        )?;
        let max_forwards = m.max_forwards()?.unwrap_or(70);
        if max_forwards == 0 {
            return Err(crate::error::Error::InvalidArgument(
                "Max-Forwards is 0".into(),
            ));
        }
        let branch = self.branch();
        let our_via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            proto.as_str(),
            self.local_for(proto, dest)
        );
        // Every Route entry was for this server or its proxies: the request now goes to
        // the contact itself.
        let routes = m.header_values("Route")?.len();
        let bytes = crate::sip::proxy::retargeted(
            &m,
            uri,
            None,
            &our_via,
            &[],
            routes,
            max_forwards - 1,
            true,
        )?;
        Ok((branch, bytes))
    }

    /// What the contact answered a relayed message (`status` 408: no answer).
    pub(crate) fn relay_outcome(&self, message: &Message, status: u16) {
        if status >= 300 {
            log::debug!(
                "message {}: {} answered {status}",
                message.id,
                message.endpoint
            );
        }
        self.handed_over(message, (200..300).contains(&status));
    }

    fn handed_over(&self, message: &Message, taken: bool) {
        if let Ok(engine) = self.engine() {
            let _ = engine.report_handover(message, taken);
        }
    }
}

/// What the answer to a MESSAGE sent to another domain means for its sender (RFC 3428 §7):
/// `200` delivered; `202` accepted by the other domain for later delivery (stored there:
/// its later outcome is not reported back across domains); 404/604 unknown user; 413/513 too
/// large; 403/603 rejected; 480 offline; anything else, a timeout (408) or nothing sent (0):
/// unreachable.
pub(crate) fn remote_outcome(status: u16) -> DeliveryOutcome {
    match status {
        202 => DeliveryOutcome::Stored,
        200..=299 => DeliveryOutcome::Delivered,
        404 | 604 => DeliveryOutcome::Failed(FailureReason::UnknownUser),
        413 | 513 => DeliveryOutcome::Failed(FailureReason::TooLarge),
        403 | 603 => DeliveryOutcome::Failed(FailureReason::Rejected),
        480 => DeliveryOutcome::Failed(FailureReason::Offline),
        _ => DeliveryOutcome::Failed(FailureReason::Unreachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_other_domains_become_outcomes() {
        assert_eq!(remote_outcome(200), DeliveryOutcome::Delivered);
        assert_eq!(remote_outcome(202), DeliveryOutcome::Stored);
        assert_eq!(
            remote_outcome(404),
            DeliveryOutcome::Failed(FailureReason::UnknownUser)
        );
        assert_eq!(
            remote_outcome(408),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
        assert_eq!(
            remote_outcome(0),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
        assert_eq!(
            remote_outcome(503),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
    }
}
