//! SUBSCRIBE and NOTIFY (RFC 6665, 3856, 3857): a SUBSCRIBE outside a dialog creates one and
//! a subscription in the engine whose target is that dialog (unless its Accept takes no type
//! of the package: `406`); the engine's notifications of
//! the subscription go out as NOTIFYs inside it (the first at once: full state, or none
//! while pending). A SUBSCRIBE inside the dialog refreshes (or with `Expires: 0` ends) it.
//! A new SUBSCRIBE from a watcher, or to a presentity, that has as many subscriptions as the
//! engine keeps ([`crate::engine::StateLimits`]) gets `403 Forbidden (too many
//! subscriptions)` and makes nothing: the bound holds until some of those subscriptions end,
//! so repeating the request at once would not help (RFC 3261 §21.4.4), and `503` would tell
//! the watcher this server is overloaded and send it to another one (RFC 3263 §4.3).
//!
//! # One NOTIFY in flight per dialog (RFC 6665 §4.2.2)
//!
//! A dialog never has two NOTIFYs outstanding: a notification that comes while one waits for
//! its answer is kept (merged with any other that came meanwhile: the latest state wins)
//! and sent when the answer comes. A slow watcher therefore costs one waiting notification
//! at most, and always ends on the true final state; a late NOTIFY can never overtake a
//! newer one. What each answer does:
//!
//! | answer | what follows |
//! | --- | --- |
//! | 2xx | the waiting notification, if any, goes out |
//! | 401, 407 (the watcher challenges its notifier) | as 2xx: this server has no credentials to offer, so the next state goes out when it comes |
//! | 481, no answer (timer F: 32 s over UDP), 408 | the subscription ends (the watcher forgot the dialog, or is gone) |
//! | another 4xx/5xx/6xx with `Retry-After: N` that ends before the subscription does | the dialog waits N seconds, then gets the current full state (what changed meanwhile merges into it) |
//! | another 4xx/5xx/6xx | the subscription ends (RFC 6665 §4.2.2: a notifier removes the subscription on a failure response) |
//!
//! # Watchers that move to the presentity's device
//!
//! With migration on (`super::handover`), a new presence SUBSCRIBE, once authenticated and
//! checked, is first offered to the node ([`Migrates::place`]): it may hand it to the
//! presentity's serving device (proxied: answered there, or given back to
//! [`Notifier::serve_here`] when the device does not take it) or redirect it (`302` with
//! the device's contact). A refresh of a subscription held here whose watcher would move
//! ([`Migrates::moves`]) is answered `200` and then ended with
//! `terminated;reason=deactivated`, so that the watcher subscribes again and moves: the
//! watchers move as they refresh, never all at once.
//!
//! # A presentity served here (presence at the edge)
//!
//! A device whose account serves its own address of record
//! ([`crate::engine::Core::serve_here`]) gets SUBSCRIBEs whose Request-URI is its contact
//! and whose To is the address of record; the To names the presentity. Such a SUBSCRIBE is
//! `480` until the engine has the presentity's rules, `403` for a watcher they do not allow
//! (pending, blocked and polite-blocked watchers stay with the server), and otherwise served
//! as any other: its own dialog, NOTIFYs through the route set, refreshes. It is not
//! challenged: the node believed it by where it came from.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, Weak};

use super::auth::Authentication;
use super::dialog_table::{is_dialog, notify_destination, restart_cseq, Dialogs};
use crate::doc::filter::FilterSet;
use crate::engine::EngineHandle;
use crate::engine::{Notification, SubscribeRequest, SubscriptionState};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::id_table::Keyed;
use crate::model::package::Package;
use crate::sip::dialog::{DialogId, DialogView, SubscriptionDialog};
use crate::sip::header::Contacts;
use crate::sip::stack::{lock, push_hex, Reply, Request, Stack, Waiting};
use crate::sip::transport::Proto;
use crate::sip::SipMessage;
use crate::uri::Uri;

/// Whether a SUBSCRIBE from a watcher (first) to a presentity of another domain (second)
/// is served here (federation), as the node decides it.
pub(crate) type RemotePresentities = Box<dyn Fn(&Uri, &Uri, Package) -> bool + Send + Sync>;

/// Where a new presence SUBSCRIBE is served (see "Watchers that move" in the module
/// documentation).
pub(crate) enum Placement {
    /// Here, as without migration.
    Here,
    /// Taken: handed to the device (answered by it, or given back to
    /// [`Notifier::serve_here`]).
    Taken,
    /// `302` to this contact.
    Redirect(String),
}

/// The node's migration decisions, as the notifier asks for them.
pub(crate) trait Migrates: Send + Sync {
    /// Where the authenticated, checked SUBSCRIBE `request` of `watcher` for presence of
    /// `presentity` (an owned one) is served.
    fn place(&self, request: &Request, presentity: &Uri, watcher: &Uri) -> Placement;

    /// Whether a presence subscription of `watcher` to `presentity` held here moves at its
    /// refresh.
    fn moves(&self, presentity: &Uri, watcher: &Uri) -> bool;
}

/// The notifier role: the subscription dialogs of remote watchers and their NOTIFYs.
pub(crate) struct Notifier {
    me: Weak<Notifier>,
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    dialogs: Mutex<Dialogs>,
    /// The last document serialized for a NOTIFY, and its body (see `Notifier::body_of`).
    #[allow(clippy::type_complexity)]
    last_body: Mutex<Option<(std::sync::Weak<crate::model::package::Document>, Arc<[u8]>)>>,
    federates: RemotePresentities,
    migrates: Box<dyn Migrates>,
    /// NOTIFYs claimed by an answer to the one before, for the timer thread to send.
    ready: Mutex<Vec<(Notification, Claim)>>,
}

/// What a NOTIFY takes from its dialog's state: its CSeq and the subscription's seconds
/// left.
struct Claim {
    cseq: u32,
    remaining: u64,
}

/// Claims the dialog of `n` (in flight, which the caller set or found set) for its NOTIFY:
/// the next CSeq and the time left; a final notification ends the dialog.
fn claim(dialogs: &mut Dialogs, n: &Notification, now: u64) -> Claim {
    let Some(state) = dialogs.by_subscription.get_mut(&n.subscription) else {
        return Claim {
            cseq: 1,
            remaining: 0,
        };
    };
    let claim = Claim {
        cseq: state.take_cseq(),
        remaining: state.remaining_s(now),
    };
    if n.state.is_terminated() {
        dialogs.remove(n.subscription);
    }
    claim
}

/// A NOTIFY's answer goes back to the notifier; a 2xx needs no more than its status.
struct NotifyWaiter {
    role: Weak<Notifier>,
    id: SubscriptionId,
}

impl Waiting for NotifyWaiter {
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.notify_outcome(self.id, status, response);
        }
    }

    fn early(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

impl Notifier {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        federates: RemotePresentities,
        migrates: Box<dyn Migrates>,
    ) -> Arc<Notifier> {
        Arc::new_cyclic(|me| Notifier {
            me: me.clone(),
            stack,
            engine,
            auth,
            dialogs: Mutex::new(Dialogs::default()),
            last_body: Mutex::new(None),
            federates,
            migrates,
            ready: Mutex::new(Vec::new()),
        })
    }

    fn engine(&self) -> Result<Arc<crate::engine::Core>> {
        self.engine.get()
    }

    /// Handles a SUBSCRIBE; it is answered here (before the first NOTIFY leaves).
    pub(crate) fn handle(&self, request: &Request) {
        let answer = self.subscribe(request, false);
        self.stack.finish(request, answer);
    }

    /// Serves here a SUBSCRIBE that was authenticated and offered to a device that did not
    /// take it ([`Placement::Taken`]).
    pub(crate) fn serve_here(&self, request: &Request) {
        let answer = self.subscribe(request, true);
        self.stack.finish(request, answer);
    }

    /// A local tag for the dialog of subscription `id`: random hex, a dot, the id in hex
    /// (see [`Dialogs`]).
    fn tag_naming(&self, id: SubscriptionId) -> String {
        let mut tag = String::with_capacity(24);
        push_hex(&mut tag, u64::from(self.stack.random_u32()), 8);
        tag.push('.');
        push_hex(&mut tag, id.0, 1);
        tag
    }

    /// The dialog of a subscription restored from the store (`target` its stored dialog):
    /// known again, so its NOTIFYs go out; whether it is one of this role's.
    pub(crate) fn restore(&self, sub: &crate::engine::SubscriptionInfo, target: &[u8]) -> bool {
        let (presentity, watcher) = (sub.presentity.to_string(), sub.watcher.to_string());
        match SubscriptionDialog::from_bytes_beside(target, &presentity, &watcher) {
            Ok(mut dialog) => {
                // The NOTIFYs sent before the restart are not counted in the store; the
                // next CSeq must still be higher than theirs (RFC 3261 §12.2.1.1).
                dialog.local_cseq = dialog.local_cseq.max(restart_cseq(self.stack.unix_ms()));
                let expires_at = self.stack.now() + sub.expires_in.as_millis() as u64;
                lock(&self.dialogs).insert(sub.id, &dialog, expires_at);
                true
            }
            Err(e) => {
                log::warn!("subscription {}: stored dialog unreadable: {e}", sub.id);
                false
            }
        }
    }

    /// The subscriptions whose dialogs are known (restored ones, at start).
    pub(crate) fn dialogs_known(&self) -> Vec<SubscriptionId> {
        lock(&self.dialogs)
            .by_subscription
            .values()
            .map(|d| d.id())
            .collect()
    }

    /// `Ok(None)`: answered here already (the answer must precede the first NOTIFY).
    /// `here`: authenticated already, and not to be placed elsewhere.
    fn subscribe(&self, request: &Request, here: bool) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine()?;
        let Some(event) = m.event()? else {
            return Ok(Some(super::bad_event(
                &self.stack,
                request,
                "no Event header",
            )));
        };
        let Ok(package) = event.package().parse::<Package>() else {
            return Ok(Some(super::bad_event(
                &self.stack,
                request,
                event.package(),
            )));
        };
        let to = m.to()?;
        if let Some(local_tag) = to.tag() {
            return self.resubscribe(request, local_tag.to_string());
        }
        // A watcher whose Accept takes no type of the package (an empty Accept takes none)
        // could not read a single NOTIFY: 406 naming the type (RFC 6665, RFC 3261 §21.4.7),
        // and nothing is made. Without Accept the package's own type is assumed.
        if let Some(accept) = m.accept()? {
            if !accept.accepts(package.content_type()) {
                let mut answer = self.stack.reply(request, 406, "Not Acceptable");
                answer.header("Accept", package.content_type())?;
                return Ok(Some(answer));
            }
        }
        let mut presentity = m.request_uri()?;
        let from = m.from()?;
        let watcher = from.uri()?;
        // A presentity served here although of another domain (a device's own address of
        // record, `crate::engine::served`) is named by the To: the Request-URI is the
        // device's contact. Only what its learned rules allow is served here; anything else
        // is refused, and its server keeps the watcher.
        let to_uri = to.uri().ok();
        let served = to_uri.as_ref().and_then(|u| engine.served_here(u));
        if let (Some(state), Some(to_uri)) = (served, to_uri) {
            if package != Package::Presence {
                return Ok(Some(super::bad_event(
                    &self.stack,
                    request,
                    event.package(),
                )));
            }
            if state == crate::engine::Served::AwaitingRules {
                return Ok(Some(self.stack.reply(
                    request,
                    480,
                    "Temporarily Unavailable (no rules yet)",
                )));
            }
            if engine.decision(&to_uri, &watcher)? != crate::engine::AuthAction::Allow {
                return Ok(Some(self.stack.reply(
                    request,
                    403,
                    "Forbidden (not allowed here)",
                )));
            }
            presentity = to_uri;
        } else if !engine.config().owns(&presentity)
            && !(self.federates)(&watcher, &presentity, package)
        {
            // A presentity of another domain is served through one back-end subscription
            // shared by the local watchers (federation, see `crate::sip::agent`).
            return Ok(Some(self.stack.reply(request, 404, "Not Found")));
        }
        let Some(remote_tag) = from.tag().map(str::to_owned) else {
            return Ok(Some(self.stack.reply(
                request,
                400,
                "Bad Request (From without a tag)",
            )));
        };
        if !here {
            // The node believed a watcher of a presentity served here by where it came from
            // (see `SipServer`'s dispatch): there is nobody here to challenge it.
            let user = match served {
                Some(_) => None,
                None => match self.auth.authenticate(request) {
                    Ok(user) => user,
                    Err(answer) => return Ok(Some(answer)),
                },
            };
            if let Err(answer) = self.auth.check_identity(request, &user, &watcher) {
                return Ok(Some(answer));
            }
        }
        let remote_target = match m.contact()? {
            Contacts::List(list) if !list.is_empty() => list[0].uri_text().to_string(),
            _ => {
                return Ok(Some(self.stack.reply(
                    request,
                    400,
                    "Bad Request (SUBSCRIBE without Contact)",
                )))
            }
        };
        let expires = m.expires()?;
        if let Some(e) = expires {
            if e != 0 && e < engine.config().subscription_expiry.min {
                return self
                    .stack
                    .too_brief(request, engine.config().subscription_expiry.min)
                    .map(Some);
            }
        }
        if !here && package == Package::Presence && engine.config().owns(&presentity) {
            match self.migrates.place(request, &presentity, &watcher) {
                Placement::Here => {}
                Placement::Taken => return Ok(None),
                Placement::Redirect(contact) => {
                    let mut answer = self.stack.reply(request, 302, "Moved Temporarily");
                    answer.header("Contact", &format!("<{contact}>"))?;
                    return Ok(Some(answer));
                }
            }
        }
        let filter = if m.body().is_empty() {
            None
        } else {
            let ct = m.content_type()?;
            if !ct.is_some_and(|ct| {
                ct.essence()
                    .eq_ignore_ascii_case(crate::doc::filter::CONTENT_TYPE)
            }) {
                let mut answer = self.stack.reply(request, 415, "Unsupported Media Type");
                answer.header("Accept", crate::doc::filter::CONTENT_TYPE)?;
                return Ok(Some(answer));
            }
            let text = std::str::from_utf8(m.body())
                .map_err(|_| Error::Malformed("filter body is not UTF-8".into()))?;
            Some(FilterSet::parse(text, &engine.config().limits)?)
        };
        let mut dialog = SubscriptionDialog {
            call_id: m.call_id()?.to_string(),
            // Set below, once the subscription's id is known (the tag names it).
            local_tag: String::new(),
            remote_tag,
            local_uri: to.uri_text().to_string(),
            remote_uri: from.uri_text().to_string(),
            remote_target,
            route_set: m
                .record_route()?
                .iter()
                .map(|r| format!("<{}>", r.uri_text()))
                .collect(),
            local_cseq: 0,
            remote_cseq: m.cseq()?.seq,
            event: m
                .header("Event")
                .unwrap_or(package.as_str())
                .trim()
                .to_string(),
            proto: request.peer.proto,
            peer: request.peer.source,
        };
        // The dialog's bytes leave out what the engine keeps anyway.
        let (presentity_text, watcher_text) = (presentity.to_string(), watcher.to_string());
        let mut subscribe = SubscribeRequest::new(watcher, presentity, package);
        subscribe.expires = expires;
        subscribe.filter = filter;
        // The dialog is known before the engine's first notification can be handled: the
        // event callback waits for this lock.
        let mut dialogs = lock(&self.dialogs);
        let made = engine.subscribe_naming(subscribe, |id| {
            dialog.local_tag = self.tag_naming(id);
            let bytes: std::sync::Arc<[u8]> = dialog
                .to_bytes_beside(&presentity_text, &watcher_text)
                .into();
            Some(bytes)
        });
        let crate::engine::Subscribed {
            id,
            expires: granted,
        } = match made {
            Ok(made) => made,
            Err(Error::IntervalTooBrief(_)) => {
                drop(dialogs);
                return self
                    .stack
                    .too_brief(request, engine.config().subscription_expiry.min)
                    .map(Some);
            }
            Err(Error::LimitReached(_)) => {
                drop(dialogs);
                return Ok(Some(self.stack.reply(
                    request,
                    403,
                    "Forbidden (too many subscriptions)",
                )));
            }
            // The presentity's rules (or its decision on this watcher) send the watcher to
            // another presence agent (RFC 3261 §21.3.3; RFC 6665 §4.1.2.4: a SUBSCRIBE may be
            // redirected like any request). Nothing was made here.
            Err(Error::Moved(target)) => {
                drop(dialogs);
                let mut answer = self.stack.reply(request, 302, "Moved Temporarily");
                answer.header("Contact", &format!("<{target}>"))?;
                return Ok(Some(answer));
            }
            Err(e) => return Err(e),
        };
        let local_tag = dialog.local_tag.clone();
        dialogs.insert(id, &dialog, self.stack.now() + u64::from(granted) * 1000);
        // Answer (202 would be the RFC 3265 habit; RFC 6665 answers 200) before the NOTIFY
        // leaves: the lock is held until the answer is queued.
        let mut answer = self
            .stack
            .reply_tagged(request, 200, "OK", Some(&local_tag));
        answer.header("Expires", &granted.to_string())?;
        answer.header(
            "Contact",
            &self
                .stack
                .contact_for(request.peer.proto, request.peer.source),
        )?;
        self.stack.answer(request, answer);
        drop(dialogs);
        // The answer is sent; the caller must not answer again.
        Ok(None)
    }

    fn resubscribe(&self, request: &Request, local_tag: String) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine()?;
        let id = DialogId {
            call_id: m.call_id()?.to_string(),
            local_tag,
            remote_tag: m.from()?.tag().unwrap_or_default().to_string(),
        };
        let candidate = lock(&self.dialogs).candidate(&id);
        // The dialog is the subscription's target: a tag naming a subscription is not enough.
        let info = candidate
            .and_then(|sub| engine.subscription(sub).ok())
            .filter(|info| info.target.as_ref().is_some_and(|t| is_dialog(t, &id)));
        let Some((sub, info)) = candidate.zip(info) else {
            return Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )));
        };
        // A refresh for a presentity served here: believed by the node, as its SUBSCRIBE was.
        let served = m
            .to()?
            .uri()
            .ok()
            .is_some_and(|u| engine.served_here(&u).is_some());
        let user = if served {
            None
        } else {
            match self.auth.authenticate(request) {
                Ok(user) => user,
                Err(answer) => return Ok(Some(answer)),
            }
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &m.from()?.uri()?) {
            return Ok(Some(answer));
        }
        let cseq = m.cseq()?.seq;
        {
            let mut dialogs = lock(&self.dialogs);
            let Some(state) = dialogs.by_subscription.get_mut(&sub) else {
                return Ok(Some(self.stack.reply(
                    request,
                    481,
                    "Subscription Does Not Exist",
                )));
            };
            if cseq <= state.remote_cseq {
                return Ok(Some(self.stack.reply(
                    request,
                    500,
                    "Server Internal Error (CSeq out of order)",
                )));
            }
            state.remote_cseq = cseq;
        }
        let bounds = engine.config().subscription_expiry;
        let expires = m.expires()?.unwrap_or(bounds.default);
        if expires == 0 {
            // The answer goes first, then the final NOTIFY the engine sends.
            let mut answer = self.stack.reply(request, 200, "OK");
            answer.header("Expires", "0")?;
            self.stack.answer(request, answer);
            engine.unsubscribe(sub)?;
            return Ok(None);
        }
        if expires < bounds.min {
            return self.stack.too_brief(request, bounds.min).map(Some);
        }
        let granted = engine.refresh_subscription(sub, expires)?;
        if let Some(state) = lock(&self.dialogs).by_subscription.get_mut(&sub) {
            state.expire_after(self.stack.now(), granted);
        }
        let mut answer = self.stack.reply(request, 200, "OK");
        answer.header("Expires", &granted.to_string())?;
        self.stack.answer(request, answer);
        if info.package == Package::Presence && self.migrates.moves(&info.presentity, &info.watcher)
        {
            // The watcher subscribes again at once, and is handed to the device.
            log::info!(
                "subscription {sub}: {} moves to the device of {}",
                info.watcher,
                info.presentity
            );
            engine.terminate_subscription(sub, crate::engine::TerminationReason::Deactivated)?;
            return Ok(None);
        }
        // RFC 6665 §4.2.1.2: a refresh is followed by a NOTIFY with the current state.
        engine.renotify(sub)?;
        Ok(None)
    }

    /// An engine notification: a NOTIFY if the subscription is one of a SIP dialog.
    pub(crate) fn notification(&self, n: &Notification) -> bool {
        if n.target.is_none() {
            return false;
        }
        // Under the lock only what changes (the CSeq, the dialog's end); the NOTIFY is built
        // after, so requests inside other dialogs are not kept waiting.
        let claim = {
            let mut dialogs = lock(&self.dialogs);
            let Some(state) = dialogs.by_subscription.get_mut(&n.subscription) else {
                return false;
            };
            if state.in_flight {
                // The answer to the one in flight sends it (merged with what else comes).
                dialogs.defer(n.clone());
                return true;
            }
            state.in_flight = true;
            claim(&mut dialogs, n, self.stack.now())
        };
        self.send_notify(n, claim);
        true
    }

    /// Sends the NOTIFY of `n`, whose dialog was claimed (see [`claim`]).
    fn send_notify(&self, n: &Notification, Claim { cseq, remaining }: Claim) {
        let Some(target) = n.target.as_deref() else {
            return;
        };
        // Read in place; a dialog an earlier version stored (a restored subscription's) is
        // first read whole and written in today's form, for each of its NOTIFYs.
        let rewritten: Vec<u8>;
        let d = match DialogView::read(target) {
            Ok(d) => d,
            Err(_) => match SubscriptionDialog::from_bytes(target) {
                Ok(old) => {
                    rewritten = old.to_bytes();
                    match DialogView::read(&rewritten) {
                        Ok(d) => d,
                        Err(e) => {
                            log::warn!("subscription {}: its dialog: {e}", n.subscription);
                            self.notify_outcome(n.subscription, 500, None);
                            return;
                        }
                    }
                }
                Err(e) => {
                    log::warn!(
                        "subscription {}: its dialog is unreadable: {e}",
                        n.subscription
                    );
                    self.notify_outcome(n.subscription, 500, None);
                    return;
                }
            },
        };
        let (presentity_text, watcher_text);
        let local_uri = match d.local_uri {
            Some(uri) => uri,
            None => {
                presentity_text = n.presentity.to_string();
                &presentity_text
            }
        };
        let remote_uri = match d.remote_uri {
            Some(uri) => uri,
            None => {
                watcher_text = n.watcher.to_string();
                &watcher_text
            }
        };
        let (proto, dest) = notify_destination(&d);
        let mut cseq_text = Decimal::default();
        let mut remaining_text = Decimal::default();
        let sub_state: [&str; 2] = match n.state {
            SubscriptionState::Active => ["active;expires=", remaining_text.of(remaining)],
            SubscriptionState::Pending => ["pending;expires=", remaining_text.of(remaining)],
            SubscriptionState::Terminated(Some(r)) => ["terminated;reason=", r.as_str()],
            SubscriptionState::Terminated(None) => ["terminated", ""],
        };
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self
                .stack
                .new_request("NOTIFY", d.remote_target, proto, dest)?;
            for route in d.routes() {
                b.header("Route", route)?;
            }
            b.header_parts("From", &["<", local_uri, ">;tag=", d.local_tag])?;
            b.header_parts("To", &["<", remote_uri, ">;tag=", d.remote_tag])?;
            b.header("Call-ID", d.call_id)?;
            b.header_parts("CSeq", &[cseq_text.of(u64::from(cseq)), " NOTIFY"])?;
            let local = self.stack.local_for(proto, dest);
            let contact_end = match proto {
                Proto::Udp => ">",
                Proto::Tcp => ";transport=tcp>",
                Proto::Tls => ";transport=tls>",
                Proto::Ws => ";transport=ws>",
                Proto::Wss => ";transport=wss>",
            };
            b.header_parts("Contact", &["<sip:", &local, contact_end])?;
            b.header("Event", d.event)?;
            b.header_parts("Subscription-State", &sub_state)?;
            b.header("User-Agent", &self.stack.config().server_name)?;
            if let Some(doc) = &n.document {
                b.body(n.package.content_type(), &self.body_of(doc))?;
            }
            Ok((branch, b.build()))
        })();
        match built {
            Ok((branch, bytes)) => {
                let waiter = Box::new(NotifyWaiter {
                    role: self.me.clone(),
                    id: n.subscription,
                });
                self.stack.send_request(branch, bytes, proto, dest, waiter);
            }
            Err(e) => {
                log::warn!(
                    "subscription {}: cannot build its NOTIFY: {e}",
                    n.subscription
                );
                self.notify_outcome(n.subscription, 500, None);
            }
        }
    }

    /// The serialized document. The watchers of one publication are notified one after the
    /// other with the same shared document, so the last one serialized is kept: a fan-out to
    /// a hundred watchers serializes once.
    fn body_of(&self, doc: &std::sync::Arc<crate::engine::Document>) -> std::sync::Arc<[u8]> {
        let mut last = lock(&self.last_body);
        if let Some((weak, body)) = &*last {
            if weak
                .upgrade()
                .is_some_and(|d| std::sync::Arc::ptr_eq(&d, doc))
            {
                return body.clone();
            }
        }
        let body: std::sync::Arc<[u8]> = doc.to_body().into_bytes().into();
        *last = Some((std::sync::Arc::downgrade(doc), body.clone()));
        body
    }

    /// What the watcher answered a NOTIFY (408: no answer; `response` when there was
    /// one): see the module documentation for what each answer does.
    pub(crate) fn notify_outcome(
        &self,
        id: SubscriptionId,
        status: u16,
        response: Option<&SipMessage>,
    ) {
        if (200..300).contains(&status) || matches!(status, 401 | 407) {
            // What waited goes next, claimed under the same lock (so nothing newer can go
            // out before it); it is sent from the timer thread, which keeps the building of
            // NOTIFYs off the transport's I/O thread (where 2xx answers are taken).
            let next = {
                let mut dialogs = lock(&self.dialogs);
                if !dialogs.by_subscription.contains_key(&id) {
                    return;
                }
                match dialogs.take_deferred(id) {
                    Some(n) => {
                        let claim = claim(&mut dialogs, &n, self.stack.now());
                        Some((n, claim))
                    }
                    None => {
                        if let Some(state) = dialogs.by_subscription.get_mut(&id) {
                            state.in_flight = false;
                        }
                        None
                    }
                }
            };
            if let Some(next) = next {
                lock(&self.ready).push(next);
                self.stack.alarm().ring();
            }
            return;
        }
        let retry_after = response.and_then(SipMessage::retry_after);
        if let Some(wait) = retry_after.filter(|_| !matches!(status, 408 | 481)) {
            let now = self.stack.now();
            let mut dialogs = lock(&self.dialogs);
            let fits = dialogs
                .by_subscription
                .get(&id)
                .is_some_and(|state| state.remaining_s(now) > wait);
            if fits {
                log::debug!("subscription {id}: NOTIFY answered {status}; again in {wait} s");
                dialogs
                    .retries
                    .push(std::cmp::Reverse((now + wait * 1000, id)));
                drop(dialogs);
                self.stack.alarm().at(now + wait * 1000);
                return;
            }
        }
        // 481 (the watcher forgot the dialog), a timeout, or any other failure: the
        // subscription ends; its dialog goes first, so no final NOTIFY is sent into it.
        log::debug!("subscription {id}: NOTIFY answered {status}; ending it");
        let had = lock(&self.dialogs).remove(id).is_some();
        if had {
            if let Ok(engine) = self.engine() {
                let _ = engine.unsubscribe(id);
            }
        }
    }

    /// On the timer thread, at `now`: the NOTIFYs made ready by answers, then the dialogs
    /// whose Retry-After ran out: what waited (as full state: the watcher missed the refused
    /// one), or the current state.
    pub(crate) fn tick(&self, now: u64) {
        let ready = std::mem::take(&mut *lock(&self.ready));
        for (n, claim) in ready {
            self.send_notify(&n, claim);
        }
        loop {
            let (id, waiting) = {
                let mut dialogs = lock(&self.dialogs);
                match dialogs.retries.peek() {
                    Some(std::cmp::Reverse((at, _))) if *at <= now => {}
                    _ => return,
                }
                let std::cmp::Reverse((_, id)) = dialogs.retries.pop().expect("peeked");
                if !dialogs.by_subscription.contains_key(&id) {
                    continue;
                }
                match dialogs.take_deferred(id) {
                    Some(mut n) => {
                        if let Some(full) = n.full_state.clone() {
                            n.document = Some(full);
                        }
                        // Still in flight: claimed for this one.
                        let claim = claim(&mut dialogs, &n, now);
                        (id, Some((n, claim)))
                    }
                    None => {
                        if let Some(state) = dialogs.by_subscription.get_mut(&id) {
                            state.in_flight = false;
                        }
                        (id, None)
                    }
                }
            };
            match waiting {
                Some((n, claim)) => self.send_notify(&n, claim),
                None => {
                    // The current state, from the engine (it comes back as a notification).
                    if let Ok(engine) = self.engine() {
                        let _ = engine.renotify(id);
                    }
                }
            }
        }
    }

    /// The earliest clock time [`Notifier::tick`] has work: now when NOTIFYs are ready,
    /// else the earliest Retry-After deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if !lock(&self.ready).is_empty() {
            return Some(0);
        }
        lock(&self.dialogs)
            .retries
            .peek()
            .map(|std::cmp::Reverse((at, _))| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::dialog::ip_address_of;
    use std::net::SocketAddr;

    fn destination_of(d: &SubscriptionDialog) -> (Proto, SocketAddr) {
        let bytes = d.to_bytes();
        notify_destination(&DialogView::read(&bytes).unwrap())
    }

    fn dialog(proto: Proto, routes: &[&str]) -> SubscriptionDialog {
        SubscriptionDialog {
            call_id: "c".into(),
            local_tag: "l".into(),
            remote_tag: "r".into(),
            local_uri: "sip:alice@a.test".into(),
            remote_uri: "sip:bob@b.test".into(),
            remote_target: "sip:bob@192.0.2.4:5062".into(),
            route_set: routes.iter().map(|r| r.to_string()).collect(),
            local_cseq: 1,
            remote_cseq: 1,
            event: "presence".into(),
            proto,
            peer: "192.0.2.9:40000".parse().unwrap(),
        }
    }

    #[test]
    fn ip_contacts_are_read_without_a_full_parse() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            ip_address_of("sip:bob@192.0.2.4:5062"),
            Some(addr("192.0.2.4:5062"))
        );
        assert_eq!(
            ip_address_of("sip:192.0.2.4;transport=udp"),
            Some(addr("192.0.2.4:5060"))
        );
        assert_eq!(
            ip_address_of("sip:bob@[2001:db8::1]:5070;ob"),
            Some(addr("[2001:db8::1]:5070"))
        );
        assert_eq!(
            ip_address_of("sip:bob@[2001:db8::1]"),
            Some(addr("[2001:db8::1]:5060"))
        );
        for other in [
            "sip:bob@host.test",
            "sips:bob@192.0.2.4",
            "sip:bob@192.0.2.4:x",
            "tel:+1",
        ] {
            assert_eq!(ip_address_of(other), None, "{other}");
        }
    }

    #[test]
    fn notifies_follow_the_route_set_then_the_contact() {
        let to = |p, a: &str| (p, a.parse::<SocketAddr>().unwrap());
        assert_eq!(
            destination_of(&dialog(Proto::Udp, &[])),
            to(Proto::Udp, "192.0.2.4:5062")
        );
        assert_eq!(
            destination_of(&dialog(Proto::Tcp, &[])),
            to(Proto::Tcp, "192.0.2.9:40000")
        );
        assert_eq!(
            destination_of(&dialog(
                Proto::Udp,
                &[
                    "<sip:198.51.100.1:5070;transport=tcp;lr>",
                    "<sip:p2.test;lr>"
                ]
            )),
            to(Proto::Tcp, "198.51.100.1:5070")
        );
        assert_eq!(
            destination_of(&dialog(Proto::Tcp, &["<sip:198.51.100.1;lr>"])),
            to(Proto::Udp, "198.51.100.1:5060")
        );
        // A proxy named by a host name: back where the SUBSCRIBE came from.
        assert_eq!(
            destination_of(&dialog(Proto::Udp, &["<sip:proxy.test;lr>"])),
            to(Proto::Udp, "192.0.2.9:40000")
        );
    }
}

/// A number written in decimal on the stack (no `format!` for the numbers of every NOTIFY).
#[derive(Default)]
struct Decimal {
    digits: [u8; 20],
}

impl Decimal {
    fn of(&mut self, mut value: u64) -> &str {
        let mut at = self.digits.len();
        loop {
            at -= 1;
            self.digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.digits[at..]).expect("ASCII digits")
    }
}
