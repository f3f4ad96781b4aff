//! MESSAGE (RFC 3428): a MESSAGE for a user of the owned domains becomes
//! [`crate::engine::Core::send_message`]; its answer waits for the engine's first delivery
//! outcome: `200` (a device took it: an application's endpoint, or a registered contact
//! that answered 2xx), `202` (stored for an offline user, or for one whose contacts did not
//! take it: see below), `404` (no such user), `413` (over the size limit), `403` (the
//! recipient blocks the sender), `480` (an is-composing indication for a user who cannot
//! take it now; or, with the reason phrase `Temporarily Unavailable (mailbox full)`, a
//! message for a user whose mailbox holds as many waiting messages as the engine keeps for
//! one user or from one sender: see [`crate::engine::StateLimits`]).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::auth::Authentication;
use crate::engine::{Delivery, DeliveryOutcome, EngineHandle, FailureReason, Message, MessageId};
use crate::error::Result;
use crate::log;
use crate::sip::dns::{Resolution, ResolveError, Resolver};
use crate::sip::live::Live;
use crate::sip::message::SipMessage;
use crate::sip::page::{message_request, read_message, remote_outcome};
use crate::sip::route::{NextHop, RouteTable, RouteTarget};
use crate::sip::stack::{lock, parse_location, Peer, Reply, Request, Stack, Waiting};
use crate::sip::transaction::ServerKey;

/// A MESSAGE whose answer waits for the engine's first delivery outcome.
struct PendingMessage {
    request: SipMessage,
    from: Peer,
    key: ServerKey,
}

/// The pager role: MESSAGE requests for the owned domains' users, messages relayed to
/// registered contacts, and messages sent on to other domains' next hops.
pub(crate) struct Pager {
    me: Weak<Pager>,
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    /// Taken before relaying (see [`super::registrar::Registrar`]): a REGISTER's answer
    /// goes before the messages it releases.
    gate: Arc<Mutex<()>>,
    routes: Live<RouteTable>,
    /// Next hops given by name (a route to a host, or `*=dns`), RFC 3263.
    resolver: Arc<Resolver>,
    pending: Mutex<HashMap<MessageId, PendingMessage>>,
}

/// The contact's answer to a relayed message goes back to the engine; a status is enough.
struct RelayWaiter {
    role: Weak<Pager>,
    message: Box<Message>,
}

impl Waiting for RelayWaiter {
    fn outcome(self: Box<Self>, status: u16, _: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.relay_outcome(&self.message, status);
        }
    }

    fn early(&self, _: u16) -> bool {
        true
    }
}

/// The other domain's answer to a message sent on is its sender's outcome; a `503` or no
/// answer from one of a name's targets sends it to the next one first (RFC 3263 §4.3).
struct RemoteWaiter {
    role: Weak<Pager>,
    engine: EngineHandle,
    delivery: Delivery,
    message: Box<Message>,
    /// The name's targets not tried yet, in order.
    rest: Vec<NextHop>,
    /// The target this one went to.
    hop: NextHop,
}

impl Waiting for RemoteWaiter {
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>) {
        if matches!(status, 408 | 503) && !self.rest.is_empty() {
            if let Some(role) = self.role.upgrade() {
                if status == 503 {
                    let retry_ms = response.and_then(SipMessage::retry_after).map(|s| s * 1000);
                    if let Some(ms) = retry_ms {
                        role.resolver.avoid(self.hop, ms);
                    }
                }
                return role.send_remote(&self.message, self.rest);
            }
        }
        report_remote(&self.engine, self.delivery, status);
    }
}

/// What a message sent to another domain is reported as (its outcome set from the answer).
fn delivery_of(message: &Message) -> Delivery {
    Delivery {
        message: message.id,
        sender: message.sender.clone(),
        recipient: message.recipient.clone(),
        outcome: DeliveryOutcome::Delivered,
    }
}

/// Tells the engine what the answer `status` (0: never sent, 408: timed out) to a message
/// sent to another domain means for its sender.
fn report_remote(engine: &EngineHandle, mut delivery: Delivery, status: u16) {
    delivery.outcome = remote_outcome(status);
    if let Ok(engine) = engine.get() {
        let _ = engine.report_delivery(delivery);
    }
}

impl Pager {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        gate: Arc<Mutex<()>>,
        routes: Live<RouteTable>,
        resolver: Arc<Resolver>,
    ) -> Arc<Pager> {
        Arc::new_cyclic(|me| Pager {
            me: me.clone(),
            stack,
            engine,
            auth,
            gate,
            routes,
            resolver,
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn engine(&self) -> Result<Arc<crate::engine::Core>> {
        self.engine.get()
    }

    /// Handles a MESSAGE for a user of the owned domains; its answer follows the engine's
    /// first outcome.
    pub(crate) fn handle(&self, request: &Request) {
        let answer = self.message(request);
        self.stack.finish(request, answer);
    }

    /// `Ok(None)`: the answer follows the engine's first outcome.
    fn message(&self, request: &Request) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine()?;
        let recipient = m.request_uri()?;
        let sender = m.from()?.uri()?;
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &sender) {
            return Ok(Some(answer));
        }
        let read = read_message(&self.stack, request, sender, recipient, engine.config())?;
        let mut outgoing = match read {
            Ok(outgoing) => outgoing,
            Err(answer) => return Ok(Some(answer)),
        };
        // Relayed as it was written (see the module documentation).
        outgoing.wire = Some(m.to_bytes().into());
        // The pending entry exists before the engine's outcome can be handled: the events
        // thread waits for this lock.
        let mut pending = lock(&self.pending);
        let id = engine.send_message(outgoing)?;
        pending.insert(
            id,
            PendingMessage {
                request: m.clone(),
                from: request.peer.clone(),
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
            // The user is known but cannot take the message now, and no more are kept for
            // it (RFC 3261 §21.4.18); not 486, which says a device was reached and is busy.
            DeliveryOutcome::Failed(FailureReason::MailboxFull) => {
                (480, "Temporarily Unavailable (mailbox full)")
            }
            DeliveryOutcome::Failed(FailureReason::Expired) => (408, "Request Timeout"),
            DeliveryOutcome::Failed(FailureReason::Storage) => (500, "Server Internal Error"),
            DeliveryOutcome::Failed(FailureReason::Unreachable) => (503, "Service Unavailable"),
        };
        let request = Request {
            message: p.request,
            peer: p.from,
            key: p.key,
        };
        let answer = self.stack.reply(&request, status, reason);
        self.stack.answer(&request, answer);
        true
    }

    /// A message for a user of another domain (the engine's [`Event::RemoteMessage`]) whose
    /// sender is no account: sent as a MESSAGE to the next hop of the recipient's domain;
    /// its answer becomes the sender's delivery outcome (see [`remote_outcome`]).
    ///
    /// [`Event::RemoteMessage`]: crate::engine::Event::RemoteMessage
    /// A route that names a host (or `*=dns`) is resolved first (RFC 3263), without
    /// blocking: a name not in the cache is sent once the resolver has it.
    pub(crate) fn remote_message(&self, message: &Message) {
        let host = message.recipient.host();
        let routes = self.routes.get();
        let dest = match routes.target(host) {
            None => {
                log::info!("message {}: no route to {host}", message.id);
                // As without routes: a domain nobody here serves has no such user.
                return report_remote(&self.engine, delivery_of(message), 404);
            }
            Some(RouteTarget::Hop(hop)) => return self.send_remote(message, vec![*hop]),
            Some(target) => target.destination(host).expect("a name to resolve"),
        };
        let role = self.me.clone();
        let waiting = Box::new(message.clone());
        let then = Box::new(
            move |found: std::result::Result<Vec<NextHop>, ResolveError>| {
                if let Some(role) = role.upgrade() {
                    role.resolved(&waiting, found);
                }
            },
        );
        if let Resolution::Ready(found) = self.resolver.resolve(&dest, then) {
            self.resolved(message, found);
        }
    }

    /// A remote message's next hops are known (or cannot be).
    fn resolved(&self, message: &Message, found: std::result::Result<Vec<NextHop>, ResolveError>) {
        match found {
            Ok(hops) if !hops.is_empty() => self.send_remote(message, hops),
            Ok(_) | Err(ResolveError::NotFound(_)) => {
                log::info!(
                    "message {}: no address for {}",
                    message.id,
                    message.recipient.host()
                );
                report_remote(&self.engine, delivery_of(message), 404);
            }
            Err(e) => {
                log::info!("message {}: {e}", message.id);
                report_remote(&self.engine, delivery_of(message), 503);
            }
        }
    }

    /// Sends a remote message to the first of `hops`, the others kept for fail-over.
    fn send_remote(&self, message: &Message, mut hops: Vec<NextHop>) {
        let delivery = delivery_of(message);
        let hop = hops.remove(0);
        let uri = message.recipient.to_string();
        match message_request(&self.stack, message, &uri, hop.proto, hop.addr) {
            Ok((branch, bytes)) => {
                let waiter = Box::new(RemoteWaiter {
                    role: self.me.clone(),
                    engine: self.engine.clone(),
                    delivery,
                    message: Box::new(message.clone()),
                    rest: hops,
                    hop,
                });
                self.stack
                    .send_request(branch, bytes, hop.proto, hop.addr, waiter)
            }
            Err(e) => {
                log::warn!("message {}: cannot send it on: {e}", message.id);
                report_remote(&self.engine, delivery, 0);
            }
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
        drop(lock(&self.gate));
        let uri = &*message.endpoint;
        let built = match &message.wire {
            Some(wire) => self.retarget(wire, uri, proto, dest),
            None => message_request(&self.stack, message, uri, proto, dest),
        };
        match built {
            Ok((branch, bytes)) => {
                let waiter = Box::new(RelayWaiter {
                    role: self.me.clone(),
                    message: Box::new(message.clone()),
                });
                self.stack.send_request(branch, bytes, proto, dest, waiter)
            }
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
            self.stack.limits(),
            crate::sip::Transport::Datagram,
        )?;
        let max_forwards = m.max_forwards()?.unwrap_or(70);
        if max_forwards == 0 {
            return Err(crate::error::Error::InvalidArgument(
                "Max-Forwards is 0".into(),
            ));
        }
        let branch = self.stack.branch();
        let our_via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            proto.as_str(),
            self.stack.local_for(proto, dest)
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
            crate::sip::proxy::Checked::Authorization,
        )?;
        Ok((branch, bytes))
    }

    /// What the contact answered a relayed message (`status` 408: no answer).
    fn relay_outcome(&self, message: &Message, status: u16) {
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
