//! The proxy role (RFC 3261 §16; DESIGN §5, "forwarder for namespace division"): requests
//! for domains the engine does not own go to the next hop configured for their domain
//! ([`RouteTable`]), and their answers come back along the Via path.
//!
//! # Which requests are forwarded
//!
//! Decided by [`Forwarder::forward`], in this order:
//!
//! 1. INVITE, ACK and CANCEL are never forwarded (the server has non-INVITE transactions only).
//! 2. Loose routing (§16.4): while the top Route entry is us (one of our listen addresses, or
//!    an owned domain), it is removed. If Route entries remain, the request goes to the next
//!    one (its address; else the route of its domain; else its host resolved by DNS).
//!    Otherwise it is handled by its Request-URI, below.
//! 3. Local: the Request-URI host is an owned domain, or one of our own listen addresses (an
//!    in-dialog request to our Contact). The existing handlers serve it.
//! 4. A SUBSCRIBE creating a dialog (no To tag) from a user of an owned domain to a
//!    presentity elsewhere while `federate` is on is left to the existing path, which serves
//!    it with one shared back-end subscription (federation), whether the presentity's
//!    domain is routed to an address, a name or `dns` (the back-end subscriptions resolve
//!    names as this role does). (Its refreshes are addressed to our Contact: rule 3.)
//! 5. Inside a dialog (To tag) whose route we recorded (a Route of ours was removed), a
//!    Request-URI (the other party's Contact) is the next hop itself: its address, or its
//!    host resolved by DNS.
//!    Outside a dialog it is not: naming us in a Route does not make us an open relay (and
//!    inside one, who may be relayed is decided below).
//! 6. Otherwise the Request-URI's domain is looked up in the route table (its own route, else
//!    the default one; a route to `dns` resolves the Request-URI itself, a route to a host
//!    name that host). Without a route the request is left to the existing path, which
//!    refuses it as before (`404` for SUBSCRIBE, the engine's answer for MESSAGE).
//!
//! # What a forwarded request goes through
//!
//! * `Max-Forwards: 0` is answered `483 Too Many Hops`; the value is decremented (a missing
//!   one counts as 70).
//! * Loop detection (§16.3 step 4): the branch of our Via is a hash of what identifies the
//!   request (Request-URI, From and To tags, Call-ID, CSeq, the remaining Route) and of our own
//!   address; a request that comes back unchanged already carries our Via with that branch,
//!   and is answered `482 Loop Detected` instead of going round until Max-Forwards runs out.
//! * Who is relayed at all (DESIGN §5a; nobody else is, `403` saying why):
//!   - a user of an owned domain, authenticated as a proxy authenticates when
//!     `authenticate` is on (`407` with `Proxy-Authenticate`; a user may only send as
//!     itself); its Proxy-Authorization headers for our realms are ours and are not passed
//!     on, its Authorization headers are for whoever asks downstream;
//!   - a user of another domain from a peer that speaks for that domain (mutual TLS, a
//!     listed address: `super::trust`), whatever the federation mode: open federation
//!     believes strangers, it does not relay for them;
//!   - anyone inside a dialog we record-routed: our Record-Route entry carries a seal
//!     (`dlg=`, a keyed hash of the Call-ID and the dialog creator's tag under a key drawn
//!     when the server starts), and a Route entry of ours with the seal of the request's
//!     dialog lets the remote party's in-dialog requests (the NOTIFYs) through. Dialogs
//!     record-routed before a restart lose the seal: their strangers' requests are refused
//!     until the subscriber subscribes again.
//! * The received request's top Via gets `received`/`rport` (RFC 3581), our Via goes on
//!   top, and a dialog-creating SUBSCRIBE gets our Record-Route `<sip:ADDR;transport=..;lr>`
//!   (two of them when the two sides use different transports or addresses, RFC 5658), so the
//!   NOTIFYs, refreshes and the final un-SUBSCRIBE of the dialog pass through us too.
//!
//! # Why transaction-stateful
//!
//! Each forwarded request is a client transaction of the server's own
//! [`ClientTransactions`](crate::sip::transaction::ClientTransactions), tied to the server
//! transaction it came in. The server transaction already absorbs the retransmissions from
//! upstream and repeats our final answer to them; the client transaction retransmits
//! downstream over UDP on its own timers. Above all, a next hop that never answers (nothing
//! listening, a lost route) ends with timer F, and we can answer `408 Request Timeout`
//! upstream; a stateless proxy would leave the sender waiting for its own timeout with no
//! clue where the request was lost. The cost is one table entry per request in flight.
//!
//! # Responses
//!
//! A response whose top Via branch is one of our forwarded requests has that Via removed and
//! goes to where the request came from: over the same connection for TCP, else by the RFC
//! 3581 / §18.2.2 rule ([`response_destination`]). `100 Trying` stops at us (it is hop by
//! hop); other provisional responses and the final one are passed on; the final one is
//! recorded in the server transaction to answer retransmissions.
//!
//! # Transport
//!
//! A request over 1300 bytes whose hop is UDP goes over TCP to the same address (RFC 3261
//! §18.1.1, RFC 3428 §6), and over UDP after all when that connection cannot be made. A
//! request the transport cannot send at all (a TCP hop refusing the connection) is answered
//! `503` at once; one that is sent but never answered, `408` after timer F.
//!
//! # Next hops by name (RFC 3263)
//!
//! A route target that names a host, the `dns` route target (the Request-URI's own host),
//! a Route entry or an in-dialog Request-URI with a host name is resolved by
//! [`crate::sip::dns`]: NAPTR, SRV, A/AAAA, into an ordered list of hops. A cached name is
//! answered in place; any other request waits in the resolver's bounded queue (never on a
//! worker or the I/O thread) and goes on from the resolver thread. A name without records
//! is answered `404`, a failing DNS server or a full queue `503`. The request goes to the
//! first hop; on a timeout (timer F), on a hop that cannot be reached, or on a `503` from
//! it, to the next hop, as a new client transaction (RFC 3263 §4.3); a `503` with
//! `Retry-After` also keeps that hop out of the answers for that long. Only when every hop
//! failed is the sender answered (the last hop's `503` passed on, or our `408`/`503`).
//!
//! # Hand-over to a device (presence at the edge)
//!
//! [`Forwarder::hand_over`] forwards a watcher's SUBSCRIBE for a presentity of an owned
//! domain to the presentity's own device (a registered contact that serves its watchers,
//! over the flow its REGISTER came on), retargeted to the contact and record-routed as
//! above, so every later request of the dialog passes here too. Unlike a forwarded
//! request, its failure is not the watcher's: on any non-2xx final answer, on none within
//! [`HAND_OVER_WAIT`] T1s, or on a transport error, the answer is not passed on and the
//! caller serves the watcher itself. The dialogs so made are relayed as any record-routed
//! dialog, and what passes is told to the hand-over table
//! ([`HandedDialogs`](crate::sip::proxy::HandedDialogs)): their requests to the device go
//! over its flow, and need none of the proxy's credentials.
//!
//! Not done: INVITE, CANCEL.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use std::sync::{Arc, Mutex, Weak};

use sha2::Digest as _;

use super::auth::Authentication;
use crate::log;
use crate::sip::dns::{Destination, Resolution, ResolveError, Resolver};
use crate::sip::guard::GuardCounters;
use crate::sip::header::NameAddr;
use crate::sip::live::Live;
use crate::sip::message::SipMessage;
use crate::sip::proxy::{forwarded, relayed, retargeted, Checked, HandedDialogs};
use crate::sip::route::{NextHop, RouteTable, RouteTarget};
use crate::sip::stack::{
    contact_address, lock, uri_transport, Peer, Reply, Request, Stack, Waiting,
};
use crate::sip::transaction::ServerKey;
use crate::sip::transport::{must_use_stream, response_destination, Proto, SendFailure};
use crate::uri::Uri;

/// The Max-Forwards a request without one is taken to carry (RFC 3261 §8.1.1.6).
const DEFAULT_MAX_FORWARDS: u32 = 70;

/// How long a device has to answer a hand-over, in T1s (2 s by default): beyond, the server
/// serves the watcher, whose own transaction would otherwise run out first.
const HAND_OVER_WAIT: u64 = 4;

/// What becomes of a hand-over ([`Forwarder::hand_over`]): called once with the watcher's
/// request and the device's final answer (`None`: none, or a transport error). A 2xx has
/// been passed on to the watcher; anything else has not, and the callee answers.
pub(crate) type HandOverDone = Box<dyn FnOnce(Request, Option<SipMessage>) + Send>;

/// A request being forwarded, checked and admitted: what is needed to send it (again, to
/// the next hop after a failure) and to answer it.
struct Attempt {
    message: SipMessage,
    peer: Peer,
    key: ServerKey,
    /// The branch of our Via (see "Loop detection"); later tries add `.N`.
    branch: String,
    /// Route entries (ours) removed.
    popped: usize,
    /// The Max-Forwards it goes on with.
    max_forwards: u32,
    /// Which credentials were ours (taken out of what is passed on).
    checked: Kept,
    /// A dialog-creating SUBSCRIBE (gets our Record-Route).
    dialog_creating: bool,
    /// A `sips:` Request-URI: TLS hops only.
    secure: bool,
    /// Hops tried before this one.
    tries: usize,
    /// The Request-URI it goes on with, when not its own (a hand-over's: the device's
    /// contact).
    retarget: Option<String>,
    /// A hand-over's continuation (see the module documentation).
    hand_over: Option<HandOverDone>,
    /// An in-dialog request of a dialog handed to a device (its outcome is told).
    handed: bool,
}

/// [`Checked`] without the borrow, kept while the request waits for DNS or a hop.
#[derive(Clone, Copy)]
enum Kept {
    Nothing,
    Authorization,
    ProxyAuthorization,
}

/// The request a forwarded one came from, to pass its answers back.
pub(crate) struct Upstream {
    attempt: Attempt,
    /// Where it went, and the hops left to try after it (RFC 3263 §4.3).
    hop: NextHop,
    rest: VecDeque<NextHop>,
    /// The UDP form of a request sent over TCP because of its size, and where: tried when
    /// the TCP connection cannot be made (RFC 3261 §18.1.1).
    udp_fallback: Option<(Vec<u8>, SocketAddr)>,
}

/// The forwarded requests in flight, by the branch of our Via.
pub(crate) type Forwards = HashMap<String, Upstream>;

/// Where a request goes.
enum Target {
    /// Served here.
    Local,
    /// Forwarded to this hop, with this many Route entries (ours) removed first, and whether
    /// one of them carried the seal of the request's dialog.
    Hop(Next, usize, bool),
}

/// Where a forwarded request goes: an address, or a name to resolve.
enum Next {
    Addr(NextHop),
    Name(Destination),
}

/// The forwarder role: see the module documentation.
pub(crate) struct Forwarder {
    me: Weak<Forwarder>,
    stack: Arc<Stack>,
    auth: Arc<Authentication>,
    routes: Live<RouteTable>,
    federate: bool,
    authenticate: bool,
    /// The owned domains.
    domains: Vec<String>,
    forwards: Mutex<Forwards>,
    /// The key of the seals of our Record-Route entries.
    seal_key: [u8; 32],
    /// Next hops by name (RFC 3263).
    resolver: Arc<Resolver>,
    /// The dialogs handed to devices.
    handed: Arc<dyn HandedDialogs>,
    /// When each hand-over in flight gives up (clock ms), by branch.
    hand_over_deadlines: Mutex<Vec<(u64, String)>>,
}

/// What the forwarder is set up with (see the node's configuration).
pub(crate) struct ForwarderConfig {
    /// Next hops of the other domains (replaced on a reload).
    pub(crate) routes: Live<RouteTable>,
    /// Whether a SUBSCRIBE to another domain is served by federation rather than forwarded.
    pub(crate) federate: bool,
    /// Whether requests of the owned domains' users are authenticated before forwarding.
    pub(crate) authenticate: bool,
    /// Resolves next hops given by name.
    pub(crate) resolver: Arc<Resolver>,
    /// The dialogs handed to devices serving their own watchers.
    pub(crate) handed: Arc<dyn HandedDialogs>,
}

/// A forwarded request's fate when no answer is passed on: a timeout (408) or nothing
/// sent (503) is answered upstream. Never taken early: the answers are passed on whole.
struct ForwardWaiter {
    role: Weak<Forwarder>,
    branch: String,
}

impl Waiting for ForwardWaiter {
    fn outcome(self: Box<Self>, status: u16, _: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.forward_failed(&self.branch, status);
        }
    }
}

impl Forwarder {
    pub(crate) fn new(
        stack: Arc<Stack>,
        auth: Arc<Authentication>,
        domains: Vec<String>,
        config: ForwarderConfig,
    ) -> Arc<Forwarder> {
        let mut seal_key = [0u8; 32];
        for chunk in seal_key.chunks_mut(8) {
            chunk.copy_from_slice(&stack.random_u64().to_le_bytes());
        }
        Arc::new_cyclic(|me| Forwarder {
            me: me.clone(),
            seal_key,
            stack,
            auth,
            routes: config.routes,
            federate: config.federate,
            authenticate: config.authenticate,
            domains,
            forwards: Mutex::new(HashMap::new()),
            resolver: config.resolver,
            handed: config.handed,
            hand_over_deadlines: Mutex::default(),
        })
    }

    /// Whether the request sent with Via branch `branch` was forwarded here (its answers are
    /// passed on whole, after the full check).
    pub(crate) fn passes_on(&self, branch: &str) -> bool {
        lock(&self.forwards).contains_key(branch)
    }

    fn waiter(&self, branch: String) -> Box<ForwardWaiter> {
        Box::new(ForwardWaiter {
            role: self.me.clone(),
            branch,
        })
    }

    /// Forwards `request` if it is not for us (see the module documentation); true when it
    /// was taken care of (forwarded or answered), false when the local handlers serve it.
    pub(crate) fn forward(&self, request: &Request) -> bool {
        let m = &request.message;
        if matches!(request.key.method.as_str(), "INVITE" | "ACK" | "CANCEL") {
            return false;
        }
        let target = match self.target(m) {
            Ok(t) => t,
            Err(e) => {
                log::debug!("SIP: cannot route a {}: {e}", request.key.method);
                return false;
            }
        };
        let (mut hop, popped, sealed) = match target {
            Target::Local => return false,
            Target::Hop(hop, popped, sealed) => (hop, popped, sealed),
        };
        // A dialog handed to a device: its requests go over the device's flow (or the
        // watcher's connection), and are relayed on the seal alone.
        let in_dialog = m.to().is_ok_and(|t| t.tag().is_some());
        let handed = if sealed && in_dialog {
            self.handed.relaying(m)
        } else {
            None
        };
        if let Some(Some(flow)) = handed {
            hop = Next::Addr(flow);
        }
        // A sips: Request-URI goes on over TLS only (RFC 5630 §4.1).
        let secure = m
            .request_uri()
            .is_ok_and(|u| u.scheme() == crate::uri::Scheme::Sips);
        if let Next::Addr(hop) = &hop {
            if secure && !hop.proto.is_tls() {
                self.answer_no_tls(request);
                return true;
            }
        }
        // Validation before anything costly (§16.3): hops, then loops.
        let max_forwards = match m.max_forwards() {
            Ok(v) => v.unwrap_or(DEFAULT_MAX_FORWARDS),
            Err(_) => DEFAULT_MAX_FORWARDS,
        };
        if max_forwards == 0 {
            let answer = self.stack.reply(request, 483, "Too Many Hops");
            self.stack.answer(request, answer);
            return true;
        }
        let branch = self.forward_branch(m, popped);
        if m.via()
            .map(|vias| {
                vias.iter()
                    .any(|v| v.branch().is_some_and(|b| ours(b, &branch)))
            })
            .unwrap_or(false)
        {
            log::info!(
                "SIP: {} for {} came back to us: loop",
                request.key.method,
                m.request_uri_text().unwrap_or("")
            );
            let answer = self.stack.reply(request, 482, "Loop Detected");
            self.stack.answer(request, answer);
            return true;
        }
        let admitted = if handed.is_some() {
            Ok(Checked::Nothing)
        } else {
            self.admit(request, sealed)
        };
        let checked = match admitted {
            Ok(checked) => match checked {
                Checked::Nothing => Kept::Nothing,
                Checked::Authorization => Kept::Authorization,
                Checked::ProxyAuthorization { .. } => Kept::ProxyAuthorization,
            },
            Err(answer) => {
                self.stack.answer(request, answer);
                return true;
            }
        };
        let attempt = Attempt {
            message: m.clone(),
            peer: request.peer.clone(),
            key: request.key.clone(),
            branch,
            popped,
            max_forwards: max_forwards - 1,
            checked,
            dialog_creating: request.key.method == "SUBSCRIBE"
                && m.to().map(|t| t.tag().is_none()).unwrap_or(false),
            secure,
            tries: 0,
            retarget: None,
            hand_over: None,
            handed: handed.is_some(),
        };
        match hop {
            Next::Addr(hop) => self.send_to(attempt, VecDeque::from([hop])),
            Next::Name(dest) => self.resolve_and_send(attempt, &dest),
        }
        true
    }

    /// Hands the watcher's dialog-creating SUBSCRIBE `request` (authenticated here) over to
    /// the device whose contact is `contact`, over its flow `hop`, record-routed; `done`
    /// learns what became of it (see the module documentation).
    pub(crate) fn hand_over(
        &self,
        request: &Request,
        contact: &str,
        hop: NextHop,
        done: HandOverDone,
    ) {
        let m = &request.message;
        let max_forwards = match m.max_forwards() {
            Ok(v) => v.unwrap_or(DEFAULT_MAX_FORWARDS),
            Err(_) => DEFAULT_MAX_FORWARDS,
        };
        if max_forwards == 0 {
            return done(clone_request(request), None);
        }
        let attempt = Attempt {
            message: m.clone(),
            peer: request.peer.clone(),
            key: request.key.clone(),
            branch: self.forward_branch(m, 0),
            popped: 0,
            max_forwards: max_forwards - 1,
            // The watcher's credentials answered our challenge: they stop here.
            checked: Kept::Authorization,
            dialog_creating: true,
            secure: false,
            tries: 0,
            retarget: Some(contact.to_string()),
            hand_over: Some(done),
            handed: false,
        };
        let deadline =
            self.stack.now() + HAND_OVER_WAIT * self.stack.config().timers.t1.as_millis() as u64;
        lock(&self.hand_over_deadlines).push((deadline, attempt.branch.clone()));
        self.stack.alarm().at(deadline);
        self.send_to(attempt, VecDeque::from([hop]));
    }

    /// Gives up the hand-overs whose device did not answer by `now` (clock ms): the caller
    /// serves their watchers.
    pub(crate) fn tick(&self, now: u64) {
        let due: Vec<String> = {
            let mut deadlines = lock(&self.hand_over_deadlines);
            let (due, later): (Vec<_>, Vec<_>) =
                deadlines.drain(..).partition(|(at, _)| *at <= now);
            *deadlines = later;
            due.into_iter().map(|(_, branch)| branch).collect()
        };
        for branch in due {
            let up = lock(&self.forwards).remove(&branch);
            if let Some(up) = up {
                log::info!(
                    "SIP: no answer to a hand-over from {}; serving the watcher here",
                    up.hop
                );
                // Its client transaction ends without telling anyone.
                self.stack.complete(&branch, 408, true);
                self.hand_over_failed(up.attempt, None);
            }
        }
    }

    /// When [`Forwarder::tick`] has work next.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        lock(&self.hand_over_deadlines)
            .iter()
            .map(|(at, _)| *at)
            .min()
    }

    /// The hand-over `attempt` ends without its answer passed on (`response`: the device's
    /// refusal; `None`: no answer, or a transport error): its continuation serves the
    /// watcher.
    fn hand_over_failed(&self, mut attempt: Attempt, response: Option<SipMessage>) {
        let Some(done) = attempt.hand_over.take() else {
            return;
        };
        self.forget_deadline(&attempt.branch);
        done(
            Request {
                message: attempt.message,
                peer: attempt.peer,
                key: attempt.key,
            },
            response,
        );
    }

    fn forget_deadline(&self, branch: &str) {
        lock(&self.hand_over_deadlines).retain(|(_, b)| b != branch);
    }

    /// Sends `attempt` to the hops of `dest`: at once when they are cached, else from the
    /// resolver thread when they are in.
    fn resolve_and_send(&self, attempt: Attempt, dest: &Destination) {
        // Shared with the continuation, which is dropped unrun when the answer is in place.
        let parked = Arc::new(Mutex::new(Some(attempt)));
        let (role, in_queue) = (self.me.clone(), parked.clone());
        let dest_text = dest.to_string();
        let then = Box::new(move |hops: Result<Vec<NextHop>, ResolveError>| {
            let (Some(role), Some(attempt)) = (role.upgrade(), lock(&in_queue).take()) else {
                return;
            };
            role.hops_resolved(attempt, &dest_text, hops);
        });
        if let Resolution::Ready(hops) = self.resolver.resolve(dest, then) {
            if let Some(attempt) = lock(&parked).take() {
                self.hops_resolved(attempt, &dest.to_string(), hops);
            }
        }
    }

    /// Goes on with `attempt` once its destination is resolved.
    fn hops_resolved(
        &self,
        attempt: Attempt,
        dest: &str,
        hops: Result<Vec<NextHop>, ResolveError>,
    ) {
        match hops {
            Ok(hops) => self.send_to(attempt, hops.into()),
            Err(e) => {
                log::info!(
                    "SIP: cannot forward a {} for {}: {e}",
                    attempt.key.method,
                    attempt.message.request_uri_text().unwrap_or("")
                );
                let (status, reason) = match e {
                    ResolveError::NotFound(_) => {
                        (404, format!("Not Found (no DNS records for {dest})"))
                    }
                    e => (503, format!("Service Unavailable ({e})")),
                };
                self.answer_attempt(attempt, status, &reason);
            }
        }
    }

    /// Answers the request of `attempt` ourselves.
    fn answer_attempt(&self, attempt: Attempt, status: u16, reason: &str) {
        let request = Request {
            message: attempt.message,
            peer: attempt.peer,
            key: attempt.key,
        };
        let answer = self
            .stack
            .reply(&request, status, &crate::sip::stack::short(reason));
        self.stack.answer(&request, answer);
    }

    /// `480` to a `sips:` request without a TLS hop.
    fn answer_no_tls(&self, request: &Request) {
        let answer = self.stack.reply(
            request,
            480,
            "Temporarily Unavailable (no TLS route for a sips: URI)",
        );
        self.stack.answer(request, answer);
    }

    /// Sends `attempt` to the first of `hops`, keeping the others for fail-over.
    fn send_to(&self, attempt: Attempt, mut hops: VecDeque<NextHop>) {
        if attempt.secure {
            hops.retain(|h| h.proto.is_tls());
        }
        let Some(hop) = hops.pop_front() else {
            let (status, reason) = if attempt.secure {
                (
                    480,
                    "Temporarily Unavailable (no TLS route for a sips: URI)",
                )
            } else {
                (503, "Service Unavailable (no next hop)")
            };
            self.answer_attempt(attempt, status, reason);
            return;
        };
        let m = &attempt.message;
        let branch = if attempt.tries == 0 {
            attempt.branch.clone()
        } else {
            format!("{}.{}", attempt.branch, attempt.tries)
        };
        let record_route = if attempt.dialog_creating {
            self.record_route(m, attempt.peer.clone(), hop)
        } else {
            Vec::new()
        };
        let build = |proto: Proto| {
            let our_via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                proto.as_str(),
                self.stack.local_for(proto, hop.addr)
            );
            let checked = match attempt.checked {
                Kept::Nothing => Checked::Nothing,
                Kept::Authorization => Checked::Authorization,
                Kept::ProxyAuthorization => Checked::ProxyAuthorization {
                    realms: self.auth.realms(),
                },
            };
            match attempt.retarget.as_deref() {
                Some(uri) => retargeted(
                    m,
                    uri,
                    Some(attempt.peer.source),
                    &our_via,
                    &record_route,
                    attempt.popped,
                    attempt.max_forwards,
                    checked,
                ),
                None => forwarded(
                    m,
                    attempt.peer.source,
                    &our_via,
                    &record_route,
                    attempt.popped,
                    attempt.max_forwards,
                    checked,
                ),
            }
        };
        let mut bytes = match build(hop.proto) {
            Ok(b) => b,
            Err(e) => {
                log::debug!("SIP: cannot forward a {}: {e}", attempt.key.method);
                self.answer_attempt(attempt, 500, "Server Internal Error (cannot forward)");
                return;
            }
        };
        // Too large for UDP without congestion control: TCP to the same address, with the
        // UDP form kept in case nothing listens there on TCP.
        let mut sent_hop = hop;
        let mut udp_fallback = None;
        if hop.proto == Proto::Udp && must_use_stream(bytes.len(), None) {
            if let Ok(tcp) = build(Proto::Tcp) {
                udp_fallback = Some((std::mem::replace(&mut bytes, tcp), hop.addr));
                sent_hop.proto = Proto::Tcp;
            }
        }
        log::debug!(
            "SIP: forwarding {} for {} to {sent_hop}",
            attempt.key.method,
            m.request_uri_text().unwrap_or("")
        );
        lock(&self.forwards).insert(
            branch.clone(),
            Upstream {
                attempt,
                hop,
                rest: hops,
                udp_fallback,
            },
        );
        let waiter = self.waiter(branch.clone());
        self.stack
            .send_request(branch, bytes, sent_hop.proto, sent_hop.addr, waiter);
    }

    /// A response to one of our forwarded requests is passed upstream; false when the
    /// response is not for a forwarded request.
    pub(crate) fn forward_response(&self, message: &SipMessage) -> bool {
        let Ok(via) = message.top_via() else {
            return false;
        };
        let Some(branch) = via.branch() else {
            return false;
        };
        let status = message.status().unwrap_or(0);
        let reliable = !via.transport().eq_ignore_ascii_case("UDP");
        let mut forwards = lock(&self.forwards);
        if !forwards.contains_key(branch) {
            return false;
        }
        // The client transaction stops retransmitting (and absorbs a repeated final).
        self.stack.complete(branch, status, reliable);
        if status == 100 {
            return true;
        }
        // A 503 from a hop with others behind it: the next one (RFC 3263 §4.3).
        if status == 503 {
            if let Some(retry) = message.retry_after() {
                if let Some(up) = forwards.get(branch) {
                    self.resolver.avoid(up.hop, retry * 1000);
                }
            }
            if forwards.get(branch).is_some_and(|up| !up.rest.is_empty()) {
                let up = forwards.remove(branch).expect("checked");
                drop(forwards);
                self.next_hop(up, "503");
                return true;
            }
        }
        let upstream = if status >= 200 {
            forwards.remove(branch)
        } else {
            None
        };
        // A hand-over the device refused: not the watcher's answer.
        let refused = upstream
            .as_ref()
            .is_some_and(|u| u.attempt.hand_over.is_some() && !(200..300).contains(&status));
        if refused {
            drop(forwards);
            let up = upstream.expect("checked");
            self.hand_over_failed(up.attempt, Some(message.clone()));
            return true;
        }
        let up = match &upstream {
            Some(u) => u,
            None => match forwards.get(branch) {
                Some(u) => u,
                None => return true,
            },
        };
        let bytes = match relayed(message) {
            Ok(b) => b,
            Err(e) => {
                log::debug!("SIP: cannot pass a {status} on: {e}");
                return true;
            }
        };
        let up = &up.attempt;
        self.stack
            .record_answer(&up.key, status, bytes.clone(), up.peer.reliable());
        let dest = up.message.top_via().map_or(up.peer.source, |v| {
            response_destination(up.peer.proto, v.port(), v.rport().is_some(), up.peer.source)
        });
        let (proto, connection) = (up.peer.proto, up.peer.connection);
        drop(forwards);
        // A hand-over the device took is known as such before the watcher hears of it.
        let upstream = match upstream {
            Some(mut up) if up.attempt.hand_over.is_some() => {
                let done = up.attempt.hand_over.take().expect("checked");
                self.forget_deadline(&up.attempt.branch);
                done(clone_request_of(&up.attempt), Some(message.clone()));
                None
            }
            other => other,
        };
        self.stack.send(proto, dest, connection, bytes);
        if let Some(up) = upstream.filter(|up| up.attempt.handed) {
            self.handed.relayed(&up.attempt.message, status);
        }
        true
    }

    /// The request of `up` failed at its hop (`why`): it goes to the next one.
    fn next_hop(&self, up: Upstream, why: &str) {
        let mut attempt = up.attempt;
        log::info!(
            "SIP: {} for {} failed at {} ({why}); trying {}",
            attempt.key.method,
            attempt.message.request_uri_text().unwrap_or(""),
            up.hop,
            up.rest.front().map_or(String::new(), ToString::to_string)
        );
        attempt.tries += 1;
        self.send_to(attempt, up.rest);
    }

    /// A forwarded request got no final answer in time (`status` 408) or could not be sent
    /// (503): the next hop is tried, else the sender learns.
    pub(crate) fn forward_failed(&self, branch: &str, status: u16) {
        let Some(up) = lock(&self.forwards).remove(branch) else {
            return;
        };
        if !up.rest.is_empty() {
            self.next_hop(
                up,
                if status == 408 {
                    "timeout"
                } else {
                    "unreachable"
                },
            );
            return;
        }
        let up = up.attempt;
        if up.hand_over.is_some() {
            self.hand_over_failed(up, None);
            return;
        }
        if up.handed {
            self.handed.relayed(&up.message, status);
        }
        log::info!(
            "SIP: the next hop did not answer a {} for {}",
            up.key.method,
            up.message.request_uri_text().unwrap_or("")
        );
        let request = Request {
            message: up.message,
            peer: up.peer,
            key: up.key,
        };
        let answer = if status == 408 {
            self.stack.reply(
                &request,
                408,
                "Request Timeout (no answer from the next hop)",
            )
        } else {
            self.stack.reply(
                &request,
                503,
                "Service Unavailable (the next hop is unreachable)",
            )
        };
        self.stack.answer(&request, answer);
    }

    /// The transport could not send a message: when it is one of our forwarded requests, it
    /// is sent over UDP if it went over TCP only because of its size, else the sender is
    /// answered `503` at once rather than after timer F; `true` when it was. Runs on the
    /// transport's I/O thread: it only takes short locks and queues.
    pub(crate) fn forward_unsent(&self, failure: &SendFailure) -> bool {
        let Ok(m) = SipMessage::parse_lenient(
            &failure.data,
            self.stack.limits(),
            crate::sip::Transport::Stream,
        ) else {
            return false;
        };
        if !m.is_request() {
            return false;
        }
        let Some(branch) = m.top_via().ok().and_then(|v| v.branch().map(str::to_owned)) else {
            return false;
        };
        let fallback = {
            let mut forwards = lock(&self.forwards);
            let Some(up) = forwards.get_mut(&branch) else {
                return false;
            };
            // What follows a hand-over's failure, or a handed-over dialog's, works with the
            // engine and sends requests: not on the I/O thread, but as any unsent request's
            // outcome, from the timer thread.
            let handed = up.attempt.hand_over.is_some() || up.attempt.handed;
            if handed && up.udp_fallback.is_none() {
                return false;
            }
            up.udp_fallback.take()
        };
        match fallback {
            Some((bytes, dest)) => {
                log::debug!("SIP: no TCP at {dest}; forwarding over UDP after all");
                let waiter = self.waiter(branch.clone());
                self.stack
                    .send_request(branch, bytes, Proto::Udp, dest, waiter);
            }
            None => self.forward_failed(&branch, 503),
        }
        true
    }

    /// Where `m` goes (rules 2 to 6 of the module documentation).
    fn target(&self, m: &SipMessage) -> crate::error::Result<Target> {
        let routes = m.header_values("Route")?;
        let mut popped = 0;
        while let Some(top) = routes.get(popped) {
            if !self.is_us(&NameAddr::parse(top, "Route")?.uri()?) {
                break;
            }
            popped += 1;
        }
        let sealed = popped > 0 && self.sealed(m, &routes[..popped]);
        if popped > 0 {
            if let Some(next) = routes.get(popped) {
                let uri = NameAddr::parse(next, "Route")?.uri()?;
                return Ok(Target::Hop(
                    hop_of(&uri, &self.routes.get()),
                    popped,
                    sealed,
                ));
            }
        }
        let uri = m.request_uri()?;
        if self.owned_host(uri.host()) || self.is_us(&uri) {
            return Ok(Target::Local);
        }
        let in_dialog = m.to()?.tag().is_some();
        if m.method() == Some("SUBSCRIBE") && self.federate && !in_dialog {
            let from_owned = m.from()?.uri().is_ok_and(|u| self.owned_host(u.host()));
            if from_owned {
                return Ok(Target::Local);
            }
        }
        // Only inside a dialog: otherwise anyone naming us in a Route could use us to send
        // requests to any address.
        if popped > 0 && in_dialog {
            return Ok(Target::Hop(
                match contact_address(&uri) {
                    Some(addr) => Next::Addr(NextHop {
                        proto: uri_transport(&uri),
                        addr,
                    }),
                    None => Next::Name(Destination::from_uri(&uri)),
                },
                popped,
                sealed,
            ));
        }
        Ok(match self.routes.get().target(uri.host()) {
            Some(RouteTarget::Hop(hop)) => Target::Hop(Next::Addr(*hop), popped, sealed),
            Some(RouteTarget::Name(dest)) => Target::Hop(Next::Name(dest.clone()), popped, sealed),
            Some(RouteTarget::Dns) => {
                Target::Hop(Next::Name(Destination::from_uri(&uri)), popped, sealed)
            }
            None => Target::Local,
        })
    }

    /// Whether `request` is relayed (see "Who is relayed" in the module documentation); `Ok`
    /// with the credentials we checked (taken out of what is passed on), else the answer
    /// refusing it. `sealed`: a Route entry of ours carried the seal of its dialog.
    fn admit(&self, request: &Request, sealed: bool) -> Result<Checked<'_>, Reply> {
        let m = &request.message;
        let from = m.from().and_then(|f| f.uri()).ok();
        if let Some(sender) = from.as_ref().filter(|u| self.owned_host(u.host())) {
            if !self.authenticate {
                return Ok(Checked::Nothing);
            }
            let user = self.auth.authenticate_proxied(request)?;
            self.auth.check_identity(request, &user, sender)?;
            return Ok(Checked::ProxyAuthorization {
                realms: self.auth.realms(),
            });
        }
        if sealed {
            return Ok(Checked::Nothing);
        }
        let why = match &from {
            Some(sender) => match self.auth.trust().speaks_for(&request.peer, sender.host()) {
                Ok(()) => return Ok(Checked::Nothing),
                Err(why) => why,
            },
            None => "no sender to vouch for".to_string(),
        };
        log::info!(
            "SIP: not relaying a {} from {} for {}: {why}",
            request.key.method,
            request.peer.source,
            m.request_uri_text().unwrap_or("")
        );
        GuardCounters::count(&self.stack.guard().relays_refused);
        Err(self
            .stack
            .reply(request, 403, &format!("Forbidden (not relayed: {why})")))
    }

    /// The seal of the dialog with `call_id` created by the party whose tag is `tag`: 16 hex
    /// digits of SHA-256 over the key, the Call-ID and the tag (a prefix MAC: the truncated
    /// hash does not give away the state a length extension would need).
    fn seal(&self, call_id: &str, tag: &str) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.seal_key);
        h.update(call_id.as_bytes());
        h.update([0u8]);
        h.update(tag.as_bytes());
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether one of `ours` (the Route entries of ours the request carried) has the seal of
    /// its dialog: made with its From tag (a request of the dialog's creator) or its To tag
    /// (one of the other party).
    fn sealed(&self, m: &SipMessage, ours: &[&str]) -> bool {
        let (Ok(call_id), Ok(from), Ok(to)) = (m.call_id(), m.from(), m.to()) else {
            return false;
        };
        let expected: Vec<String> = [from.tag(), to.tag()]
            .into_iter()
            .flatten()
            .map(|tag| self.seal(call_id, tag))
            .collect();
        ours.iter().any(|entry| {
            let Some(seal) = NameAddr::parse(entry, "Route")
                .ok()
                .and_then(|n| n.uri().ok())
                .and_then(|u| u.param("dlg").map(str::to_owned))
            else {
                return false;
            };
            expected.iter().any(|e| {
                e.len() == seal.len()
                    && e.bytes()
                        .zip(seal.bytes())
                        .fold(0, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
        })
    }

    /// Whether `host` is one of the engine's domains (an engine without domains owns all).
    fn owned_host(&self, host: &str) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Whether `uri` names this server: an owned domain (Route entries such as
    /// `<sip:a.test;lr>`), or one of our listen addresses. A wildcard listen address matches
    /// loopback and wildcard hosts only: other interface addresses are not enumerated.
    fn is_us(&self, uri: &Uri) -> bool {
        if uri.user().is_none() && self.owned_host(uri.host()) && !self.domains.is_empty() {
            return true;
        }
        let Some(addr) = contact_address(uri) else {
            return false;
        };
        self.stack.local_addrs().iter().any(|l| {
            l.addr.port() == addr.port()
                && (l.addr.ip() == addr.ip()
                    || (l.addr.ip().is_unspecified()
                        && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
        })
    }

    /// Our Record-Route entries for a dialog-creating request `m` from `peer` going to
    /// `hop`: the one facing the next hop on top, and one facing the sender under it when the
    /// two differ (RFC 5658 double record-routing), so each side reaches us on its own
    /// transport. Each carries the dialog's seal (see [`Forwarder::admit`]).
    fn record_route(&self, m: &SipMessage, peer: Peer, hop: NextHop) -> Vec<String> {
        let seal = match (m.call_id(), m.from()) {
            (Ok(call_id), Ok(from)) => self.seal(call_id, from.tag().unwrap_or_default()),
            _ => String::new(),
        };
        let entry = |proto: Proto, dest: SocketAddr| {
            format!(
                "<sip:{};transport={};lr;dlg={seal}>",
                self.stack.local_for(proto, dest),
                proto.as_str().to_ascii_lowercase()
            )
        };
        let outer = entry(hop.proto, hop.addr);
        let inner = entry(peer.proto, peer.source);
        if outer == inner {
            vec![outer]
        } else {
            vec![outer, inner]
        }
    }

    /// The branch of our Via for `m` (see "Loop detection" in the module documentation).
    fn forward_branch(&self, m: &SipMessage, popped: usize) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for l in self.stack.local_addrs() {
            l.addr.hash(&mut h);
        }
        m.request_uri_text().hash(&mut h);
        m.from()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .hash(&mut h);
        m.to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .hash(&mut h);
        m.call_id().ok().hash(&mut h);
        m.header("CSeq").hash(&mut h);
        if let Ok(routes) = m.header_values("Route") {
            routes.get(popped).hash(&mut h);
        }
        format!("z9hG4bKfw{:016x}", h.finish())
    }
}

/// The request of `attempt`, copied (for a hand-over's continuation).
fn clone_request_of(attempt: &Attempt) -> Request {
    Request {
        message: attempt.message.clone(),
        peer: attempt.peer.clone(),
        key: attempt.key.clone(),
    }
}

/// A copy of `request` (a hand-over's watcher's request, for the one who serves it after).
fn clone_request(request: &Request) -> Request {
    Request {
        message: request.message.clone(),
        peer: request.peer.clone(),
        key: request.key.clone(),
    }
}

/// The hop a Route entry names: its address when it is an IP address, else the route of its
/// domain when there is one, else its host resolved (RFC 3263).
fn hop_of(uri: &Uri, routes: &RouteTable) -> Next {
    if let Some(addr) = contact_address(uri) {
        return Next::Addr(NextHop {
            proto: uri_transport(uri),
            addr,
        });
    }
    match routes.target(uri.host()) {
        Some(RouteTarget::Hop(hop)) => Next::Addr(*hop),
        Some(RouteTarget::Name(dest)) => Next::Name(dest.clone()),
        _ => Next::Name(Destination::from_uri(uri)),
    }
}

/// Whether a Via branch is one of ours for the request whose first branch is `base` (a
/// later try adds `.N`).
fn ours(branch: &str, base: &str) -> bool {
    branch
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}
