//! The list server (RFC 4662): a SUBSCRIBE to a resource list of an owned domain
//! ([`crate::model::list`]) watches every resource of the list in one dialog, notified with
//! `multipart/related` bodies whose root is an RLMI document ([`crate::sip::list_body`]).
//!
//! # Who may subscribe
//!
//! Any authenticated user of an owned domain (its identity checked as for any SUBSCRIBE);
//! a watcher of another domain gets `403`. What each user then sees of each resource is
//! decided by that resource's own authorization rules, as if the user watched it alone.
//!
//! # Back subscriptions, inside the engine
//!
//! A list dialog is backed by one engine subscription per resource of the expanded list,
//! for the list's subscriber (no SIP to itself). Their target starts with [`LIST_TARGET`],
//! so their notifications come through the engine's port; the node gives them to this role
//! ([`ListServer::notification`]) instead of the notifier. The resource's state maps to its
//! RLMI instance: pending → `pending`, active → `active` with the document the engine
//! composed for the watcher (a polite block's neutral one too) in a part of its own,
//! terminated → `terminated` with the reason (a blocked subscriber: `rejected`). The back
//! subscriptions are made, refreshed and ended with the list dialog. A resource of another
//! domain is subscribed alike: its engine subscription is a local watcher of a remote
//! presentity, so federation's back-end role serves it through the shared back-end
//! subscription (module `crate::sip::agent::backend`), as for any local watcher. They are kept in the
//! store like any subscription with a target, but list dialogs are not restored after a
//! restart: the back subscriptions an earlier run left are ended at start
//! ([`ListServer::start`]), and the subscriber, whose next refresh gets `481`, subscribes
//! again.
//!
//! # NOTIFYs
//!
//! The first NOTIFY (sent once every resource's first state is known) and the one after
//! each refresh carry full state; the others only the resources that changed. The RLMI
//! `version` counts the NOTIFYs of the dialog from 0. Changes are collected over
//! [`crate::sip::SipServerConfig::list_batch_interval`] from the first change after a
//! NOTIFY (on the engine's clock, through the stack's alarm), and one NOTIFY is in flight
//! per dialog: what changes meanwhile merges (the latest state of each resource) into the
//! next one. A NOTIFY answered with a failure (any status but 2xx, 401, 407; or none) ends
//! the list dialog and its back subscriptions.
//!
//! # The list changing
//!
//! A list is expanded when subscribed and again at each refresh: resources added get back
//! subscriptions, removed ones lose theirs, and the refresh's full-state NOTIFY shows the
//! list as it is then. Between refreshes the dialog watches the resources it expanded to.
//! A resource whose back subscription ended (rejected, say) is subscribed again at the next
//! refresh, so a rule changed meanwhile counts.
//!
//! `Expires: 0` (an unsubscribe, or a fetch on the first SUBSCRIBE) ends the back
//! subscriptions and sends a final full-state NOTIFY, `terminated`; the dialog's expiry
//! does the same with `terminated;reason=timeout`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use super::auth::Authentication;
use super::dialog_table::notify_destination;
use crate::doc::resource_lists::DisplayName;
use crate::doc::rlmi::{Instance, InstanceState, Resource as RlmiResource, Rlmi};
use crate::engine::{Document, EngineHandle, Notification, SubscribeRequest, SubscriptionState};
use crate::error::{Error, Result};
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::Package;
use crate::sip::dialog::{DialogView, SubscriptionDialog};
use crate::sip::header::Contacts;
use crate::sip::list_body::ListBody;
use crate::sip::multipart::BodyPart;
use crate::sip::stack::{lock, push_hex, Reply, Request, Stack, Waiting};
use crate::sip::transport::Proto;
use crate::sip::SipMessage;
use crate::uri::Uri;

/// How long a full-state NOTIFY waits for resources that have not told their first state
/// yet (clock ms), when the batching interval is shorter: the full state goes out as soon as
/// every resource has told its state, and after this at the latest (a resource whose
/// subscription never reports must not hold the list back). Without it, a batching interval
/// of 0 would send every resource as pending and correct it at once in a partial NOTIFY.
const FIRST_STATE_WAIT_MS: u64 = 200;

/// How the target of a back subscription starts (then the list dialog's id, in hex).
pub(crate) const LIST_TARGET: &[u8] = b"impp-list ";

/// The option tag of RFC 4662.
const EVENTLIST: &str = "eventlist";

/// Where a local tag's list dialog id starts: after `.l` (a notifier's tag has hex digits
/// only after its dot, so the two never take each other's dialogs).
const TAG_MARK: &str = ".l";

/// The list server role.
pub(crate) struct ListServer {
    me: Weak<ListServer>,
    stack: Arc<Stack>,
    engine: EngineHandle,
    auth: Arc<Authentication>,
    /// How long changes are collected before a partial NOTIFY (clock ms).
    batch_ms: u64,
    table: Mutex<Table>,
}

/// The list dialogs and which back subscription belongs to which.
#[derive(Default)]
struct Table {
    dialogs: HashMap<u64, ListDialog>,
    by_back: HashMap<SubscriptionId, u64>,
    next_id: u64,
}

/// One list subscription.
struct ListDialog {
    dialog: SubscriptionDialog,
    /// The list's URI as the subscriber wrote it (the RLMI `uri`).
    list_text: String,
    list_uri: Uri,
    list_name: Option<String>,
    watcher: Uri,
    package: Package,
    resources: Vec<Entry>,
    /// The RLMI version of the next NOTIFY.
    version: u32,
    next_cseq: u32,
    /// When it ends (clock ms).
    expires_at: u64,
    /// A NOTIFY waits for its answer.
    in_flight: bool,
    /// The next NOTIFY carries full state.
    full: bool,
    /// When the next NOTIFY is due (clock ms); `None`: nothing to tell.
    due: Option<u64>,
    /// The dialog ends with its next NOTIFY, with this Subscription-State reason.
    ending: Option<Option<&'static str>>,
}

/// One resource of a list dialog, and what its back subscription last told.
struct Entry {
    uri: Uri,
    key: String,
    name: Option<String>,
    /// The RLMI instance id (stable while the back subscription lives).
    instance: String,
    back: Option<SubscriptionId>,
    state: InstanceState,
    reason: Option<String>,
    document: Option<Arc<Document>>,
    /// Its first state is known.
    reported: bool,
    /// Changed since the last NOTIFY.
    changed: bool,
}

/// A NOTIFY built under the lock, sent after it.
struct Prepared {
    id: u64,
    dialog: SubscriptionDialog,
    cseq: u32,
    state: String,
    content_type: String,
    body: Vec<u8>,
}

/// A NOTIFY's answer goes back to the list server.
struct NotifyWaiter {
    role: Weak<ListServer>,
    id: u64,
}

impl Waiting for NotifyWaiter {
    fn outcome(self: Box<Self>, status: u16, _response: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.notify_outcome(self.id, status);
        }
    }

    fn early(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// The list dialog a local tag names.
fn dialog_in_tag(tag: &str) -> Option<u64> {
    let at = tag.rfind(TAG_MARK)?;
    u64::from_str_radix(&tag[at + TAG_MARK.len()..], 16).ok()
}

/// Whether a request's Supported headers (or their compact form `k`) name `eventlist`.
fn supports_eventlist(m: &SipMessage) -> bool {
    m.headers("Supported")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(EVENTLIST))
}

impl ListServer {
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        auth: Arc<Authentication>,
        batch: std::time::Duration,
    ) -> Arc<ListServer> {
        Arc::new_cyclic(|me| ListServer {
            me: me.clone(),
            stack,
            engine,
            auth,
            batch_ms: batch.as_millis() as u64,
            table: Mutex::new(Table::default()),
        })
    }

    /// Ends the back subscriptions an earlier run left in the store (list dialogs are not
    /// restored). Their final notifications, if they come here, find no dialog.
    pub(crate) fn start(&self) {
        let Ok(engine) = self.engine.get() else {
            return;
        };
        for sub in engine.remote_subscriptions().unwrap_or_default() {
            if sub.target.is_some_and(|t| t.starts_with(LIST_TARGET)) {
                let _ = engine.unsubscribe(sub.id);
            }
        }
    }

    /// Takes a SUBSCRIBE if it is this role's (to a list of an owned domain, or inside a
    /// list dialog) and answers it; `false`: not a list's, for the notifier.
    pub(crate) fn handle(&self, request: &Request) -> bool {
        let m = &request.message;
        let Ok(engine) = self.engine.get() else {
            return false;
        };
        let Ok(to) = m.to() else { return false };
        if let Some(tag) = to.tag() {
            // A tag of this role's form naming a dialog it has; anything else is the
            // notifier's.
            let Some(id) = dialog_in_tag(tag) else {
                return false;
            };
            if !lock(&self.table).dialogs.contains_key(&id) {
                return false;
            }
            let answer = self.resubscribe(request, id, tag.to_string());
            self.stack.finish(request, answer);
            return true;
        }
        let Ok(uri) = m.request_uri() else {
            return false;
        };
        if !engine.config().owns(&uri) {
            return false;
        }
        let Some(list) = engine.list(&uri) else {
            return false;
        };
        let answer = self.subscribe(request, &engine, list);
        self.stack.finish(request, answer);
        true
    }

    /// A new list subscription; `Ok(None)`: answered already.
    fn subscribe(
        &self,
        request: &Request,
        engine: &crate::engine::Core,
        list: crate::model::list::ResourceList,
    ) -> Result<Option<Reply>> {
        let m = &request.message;
        let packages = if list.packages.is_empty() {
            vec![Package::Presence]
        } else {
            list.packages.clone()
        };
        let Some(event) = m.event()? else {
            return Ok(Some(super::bad_event(
                &self.stack,
                request,
                "no Event header",
            )));
        };
        let package = match event.package().parse::<Package>() {
            Ok(p) if packages.contains(&p) => p,
            _ => {
                let mut answer = self.stack.reply(request, 489, "Bad Event");
                let served: Vec<&str> = packages.iter().map(|p| p.as_str()).collect();
                answer.header("Allow-Events", &served.join(", "))?;
                return Ok(Some(answer));
            }
        };
        if !supports_eventlist(m) {
            let mut answer = self.stack.reply(request, 421, "Extension Required");
            answer.header("Require", EVENTLIST)?;
            return Ok(Some(answer));
        }
        if let Some(accept) = m.accept()? {
            if !accept.accepts("multipart/related") {
                let mut answer = self.stack.reply(request, 406, "Not Acceptable");
                answer.header(
                    "Accept",
                    &format!(
                        "multipart/related, {}, {}",
                        Rlmi::CONTENT_TYPE,
                        package.content_type()
                    ),
                )?;
                return Ok(Some(answer));
            }
        }
        let from = m.from()?;
        let watcher = from.uri()?;
        let Some(remote_tag) = from.tag().map(str::to_owned) else {
            return Ok(Some(self.stack.reply(
                request,
                400,
                "Bad Request (From without a tag)",
            )));
        };
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &watcher) {
            return Ok(Some(answer));
        }
        if !engine.config().owns(&watcher) {
            return Ok(Some(self.stack.reply(
                request,
                403,
                "Forbidden (lists are for users of this server)",
            )));
        }
        let remote_target = match m.contact()? {
            Contacts::List(l) if !l.is_empty() => l[0].uri_text().to_string(),
            _ => {
                return Ok(Some(self.stack.reply(
                    request,
                    400,
                    "Bad Request (SUBSCRIBE without Contact)",
                )))
            }
        };
        let bounds = engine.config().subscription_expiry;
        let asked = m.expires()?;
        let granted = match asked {
            Some(0) => 0,
            Some(e) if e < bounds.min => {
                return self.stack.too_brief(request, bounds.min).map(Some);
            }
            other => other.unwrap_or(bounds.default).min(bounds.max),
        };
        let resources = engine.expand_list(&list.uri)?;
        let to = m.to()?;
        let now = self.stack.now();
        let mut table = lock(&self.table);
        table.next_id += 1;
        let id = table.next_id;
        let mut local_tag = String::with_capacity(24);
        push_hex(&mut local_tag, u64::from(self.stack.random_u32()), 8);
        local_tag.push_str(TAG_MARK);
        push_hex(&mut local_tag, id, 1);
        let dialog = SubscriptionDialog {
            call_id: m.call_id()?.to_string(),
            local_tag: local_tag.clone(),
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
        let mut d = ListDialog {
            dialog,
            list_text: m.request_uri_text().unwrap_or_default().to_string(),
            list_uri: list.uri.clone(),
            list_name: list.display_name.clone(),
            watcher,
            package,
            resources: Vec::with_capacity(resources.len()),
            version: 0,
            next_cseq: 1,
            expires_at: now + u64::from(granted) * 1000,
            in_flight: false,
            full: true,
            due: Some(now + self.batch_ms.max(FIRST_STATE_WAIT_MS)),
            ending: (granted == 0).then_some(Some("timeout")),
        };
        // Under the table's lock: the back subscriptions' first notifications (on the
        // events thread) wait for it, so they find their dialog.
        let back_expires = granted.max(bounds.min);
        for r in resources {
            let entry = self.back_subscription(engine, &mut table, id, &d, r, back_expires);
            d.resources.push(entry);
        }
        let all_reported = d.resources.iter().all(|e| e.reported);
        if all_reported {
            d.due = Some(now);
        }
        let due = d.due;
        table.dialogs.insert(id, d);
        let mut answer = self
            .stack
            .reply_tagged(request, 200, "OK", Some(&local_tag));
        answer.header("Expires", &granted.to_string())?;
        answer.header("Require", EVENTLIST)?;
        answer.header(
            "Contact",
            &self
                .stack
                .contact_for(request.peer.proto, request.peer.source),
        )?;
        self.stack.answer(request, answer);
        drop(table);
        log::debug!(
            "list dialog {id}: {} watches {}",
            request.peer.source,
            list.uri
        );
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        Ok(None)
    }

    /// The back subscription of `resource` for list dialog `id` (made with the table's lock
    /// held), as an entry; one the engine refuses is a terminated instance.
    fn back_subscription(
        &self,
        engine: &crate::engine::Core,
        table: &mut Table,
        id: u64,
        d: &ListDialog,
        resource: crate::model::list::Resource,
        expires: u32,
    ) -> Entry {
        let mut entry = Entry {
            key: presentity_key(&resource.uri),
            uri: resource.uri,
            name: resource.display_name,
            instance: self.stack.token(),
            back: None,
            state: InstanceState::Pending,
            reason: None,
            document: None,
            reported: false,
            changed: true,
        };
        let mut request = SubscribeRequest::new(d.watcher.clone(), entry.uri.clone(), d.package);
        let mut target = LIST_TARGET.to_vec();
        target.extend_from_slice(format!("{id:x}").as_bytes());
        request.target = Some(target.into());
        request.expires = Some(expires);
        // The list server batches; the engine need not hold notifications back.
        request.min_interval = Some(std::time::Duration::ZERO);
        match engine.subscribe(request) {
            Ok(sub) => {
                entry.back = Some(sub);
                table.by_back.insert(sub, id);
            }
            Err(e) => {
                log::debug!("list dialog {id}: no subscription to {}: {e}", entry.uri);
                entry.state = InstanceState::Terminated;
                entry.reason = Some(
                    match e {
                        Error::Forbidden(_) | Error::LimitReached(_) => "rejected",
                        _ => "noresource",
                    }
                    .to_string(),
                );
                entry.reported = true;
            }
        }
        entry
    }

    /// A SUBSCRIBE inside list dialog `id`: a refresh (the list expanded again, full state
    /// follows) or, with `Expires: 0`, the end.
    fn resubscribe(&self, request: &Request, id: u64, local_tag: String) -> Result<Option<Reply>> {
        let m = &request.message;
        let engine = self.engine.get()?;
        let call_id = m.call_id()?.to_string();
        let remote_tag = m.from()?.tag().unwrap_or_default().to_string();
        let gone = || {
            Ok(Some(self.stack.reply(
                request,
                481,
                "Subscription Does Not Exist",
            )))
        };
        {
            let table = lock(&self.table);
            let Some(d) = table.dialogs.get(&id) else {
                return gone();
            };
            if d.dialog.call_id != call_id
                || d.dialog.local_tag != local_tag
                || d.dialog.remote_tag != remote_tag
            {
                return gone();
            }
        }
        let user = match self.auth.authenticate(request) {
            Ok(user) => user,
            Err(answer) => return Ok(Some(answer)),
        };
        if let Err(answer) = self.auth.check_identity(request, &user, &m.from()?.uri()?) {
            return Ok(Some(answer));
        }
        let bounds = engine.config().subscription_expiry;
        let expires = m.expires()?.unwrap_or(bounds.default);
        if expires != 0 && expires < bounds.min {
            return self.stack.too_brief(request, bounds.min).map(Some);
        }
        let granted = expires.min(bounds.max);
        let cseq = m.cseq()?.seq;
        let now = self.stack.now();
        let mut table = lock(&self.table);
        let Some(mut d) = table.dialogs.remove(&id) else {
            return gone();
        };
        if cseq <= d.dialog.remote_cseq {
            table.dialogs.insert(id, d);
            return Ok(Some(self.stack.reply(
                request,
                500,
                "Server Internal Error (CSeq out of order)",
            )));
        }
        d.dialog.remote_cseq = cseq;
        let mut ended = Vec::new();
        if granted == 0 {
            for e in &mut d.resources {
                if let Some(back) = e.back.take() {
                    table.by_back.remove(&back);
                    ended.push(back);
                }
            }
            d.ending = Some(None);
        } else {
            d.expires_at = now + u64::from(granted) * 1000;
            // The list as it is now: resources kept are refreshed (or subscribed again when
            // their subscription ended), new ones subscribed, removed ones ended.
            let resources = engine.expand_list(&d.list_uri).unwrap_or_default();
            let mut old: HashMap<String, Entry> = std::mem::take(&mut d.resources)
                .into_iter()
                .map(|e| (e.key.clone(), e))
                .collect();
            for r in resources {
                let kept = old.remove(&presentity_key(&r.uri)).filter(|e| {
                    e.back
                        .is_some_and(|b| engine.refresh_subscription(b, granted).is_ok())
                });
                let entry = match kept {
                    Some(mut e) => {
                        e.name = r.display_name;
                        e
                    }
                    None => self.back_subscription(&engine, &mut table, id, &d, r, granted),
                };
                d.resources.push(entry);
            }
            for (_, e) in old {
                if let Some(back) = e.back {
                    table.by_back.remove(&back);
                    ended.push(back);
                }
            }
        }
        d.full = true;
        d.due = Some(if d.resources.iter().all(|e| e.reported) || granted == 0 {
            now
        } else {
            now + self.batch_ms.max(FIRST_STATE_WAIT_MS)
        });
        let due = d.due;
        table.dialogs.insert(id, d);
        let mut answer = self.stack.reply(request, 200, "OK");
        answer.header("Expires", &granted.to_string())?;
        answer.header("Require", EVENTLIST)?;
        self.stack.answer(request, answer);
        drop(table);
        for back in ended {
            let _ = engine.unsubscribe(back);
        }
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        Ok(None)
    }

    /// A notification of the engine: `true` when it is one of a back subscription (kept
    /// for the list dialog's next NOTIFY), `false` when it is not this role's.
    pub(crate) fn notification(&self, n: &Notification) -> bool {
        if !n
            .target
            .as_deref()
            .is_some_and(|t| t.starts_with(LIST_TARGET))
        {
            return false;
        }
        let now = self.stack.now();
        let mut table = lock(&self.table);
        let Some(&id) = table.by_back.get(&n.subscription) else {
            return true; // a back subscription of a dialog that ended
        };
        if n.state.is_terminated() {
            table.by_back.remove(&n.subscription);
        }
        let Some(d) = table.dialogs.get_mut(&id) else {
            return true;
        };
        let Some(e) = d
            .resources
            .iter_mut()
            .find(|e| e.back == Some(n.subscription))
        else {
            return true;
        };
        let (state, reason, document) = match n.state {
            SubscriptionState::Active => (InstanceState::Active, None, n.document.clone()),
            SubscriptionState::Pending => (InstanceState::Pending, None, None),
            SubscriptionState::Terminated(reason) => {
                e.back = None;
                let reason = reason.map(|r| r.as_str().to_string());
                (InstanceState::Terminated, reason, None)
            }
        };
        // The same state told again (a resource's first state can be notified twice, say)
        // is nothing to tell the subscriber: no partial NOTIFY for it.
        let unchanged = e.reported
            && e.state == state
            && e.reason == reason
            && e.document.as_deref() == document.as_deref();
        e.state = state;
        e.reason = reason;
        e.document = document;
        if unchanged {
            return true;
        }
        e.reported = true;
        e.changed = true;
        let waiting_first = d.version == 0 || d.full;
        let all_reported = d.resources.iter().all(|e| e.reported);
        let due = if waiting_first && all_reported {
            Some(now)
        } else {
            Some(d.due.unwrap_or(now + self.batch_ms))
        };
        d.due = due;
        drop(table);
        if let Some(at) = due {
            self.stack.alarm().at(at);
        }
        true
    }

    /// On the timer thread, at `now`: ends the dialogs that expired, and sends the NOTIFYs
    /// that are due.
    pub(crate) fn tick(&self, now: u64) {
        let mut ready = Vec::new();
        let mut ended = Vec::new();
        {
            let mut table = lock(&self.table);
            let Table {
                dialogs, by_back, ..
            } = &mut *table;
            let mut finished = Vec::new();
            for (&id, d) in dialogs.iter_mut() {
                if d.ending.is_none() && d.expires_at <= now {
                    d.ending = Some(Some("timeout"));
                    d.full = true;
                    d.due = Some(now);
                }
                if d.in_flight || !d.due.is_some_and(|at| at <= now) {
                    continue;
                }
                if d.ending.is_some() {
                    for e in &mut d.resources {
                        if let Some(back) = e.back.take() {
                            by_back.remove(&back);
                            ended.push(back);
                        }
                    }
                }
                if let Some(p) = self.prepare(id, d, now) {
                    ready.push(p);
                }
                if d.ending.is_some() {
                    finished.push(id);
                }
            }
            for id in finished {
                dialogs.remove(&id);
            }
        }
        if !ended.is_empty() {
            if let Ok(engine) = self.engine.get() {
                for back in ended {
                    let _ = engine.unsubscribe(back);
                }
            }
        }
        for p in ready {
            self.send(p);
        }
    }

    /// The earliest clock time [`ListServer::tick`] has work.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let table = lock(&self.table);
        table
            .dialogs
            .values()
            .flat_map(|d| {
                let due = if d.in_flight { None } else { d.due };
                [due, d.ending.is_none().then_some(d.expires_at)]
            })
            .flatten()
            .min()
    }

    /// The NOTIFY of dialog `d` for what is due: full or partial state, the version counted,
    /// the dialog marked in flight; `None` when there is nothing to tell.
    fn prepare(&self, id: u64, d: &mut ListDialog, now: u64) -> Option<Prepared> {
        d.due = None;
        let full = d.full || d.version == 0 || d.ending.is_some();
        if !full && !d.resources.iter().any(|e| e.changed) {
            return None;
        }
        let mut rlmi = Rlmi::new(d.list_text.clone(), d.version);
        rlmi.full_state = full;
        if let Some(name) = &d.list_name {
            rlmi.names.push(DisplayName::new(name.clone()));
        }
        let host = d.list_uri.host().to_string();
        let rlmi_cid = format!("{}@{host}", self.stack.token());
        let mut parts = Vec::new();
        for e in d.resources.iter_mut().filter(|e| full || e.changed) {
            e.changed = false;
            let mut resource = RlmiResource::new(e.uri.to_string());
            if let Some(name) = &e.name {
                resource.names.push(DisplayName::new(name.clone()));
            }
            let mut instance = Instance::new(e.instance.clone(), e.state);
            instance.reason = e.reason.clone();
            if let (InstanceState::Active, Some(doc)) = (e.state, &e.document) {
                let cid = format!("{}@{host}", self.stack.token());
                parts.push(BodyPart::new(
                    cid.clone(),
                    d.package.content_type(),
                    doc.to_body().into_bytes(),
                ));
                instance.cid = Some(cid);
            }
            resource.instances.push(instance);
            rlmi.resources.push(resource);
        }
        let mut body = ListBody::new(rlmi, rlmi_cid);
        body.parts = parts;
        let (content_type, bytes) = match body.encode() {
            Ok(encoded) => encoded,
            Err(e) => {
                log::warn!("list dialog {id}: cannot build its NOTIFY: {e}");
                return None;
            }
        };
        d.version = d.version.wrapping_add(1);
        d.full = false;
        d.in_flight = true;
        let cseq = d.next_cseq;
        d.next_cseq = d.next_cseq.wrapping_add(1).max(1);
        let state = match d.ending {
            Some(Some(reason)) => format!("terminated;reason={reason}"),
            Some(None) => "terminated".to_string(),
            None => format!("active;expires={}", d.expires_at.saturating_sub(now) / 1000),
        };
        Some(Prepared {
            id,
            dialog: d.dialog.clone(),
            cseq,
            state,
            content_type,
            body: bytes,
        })
    }

    fn send(&self, p: Prepared) {
        let bytes = p.dialog.to_bytes();
        let d = match DialogView::read(&bytes) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("list dialog {}: its dialog: {e}", p.id);
                return self.notify_outcome(p.id, 500);
            }
        };
        let (proto, dest): (Proto, SocketAddr) = notify_destination(&d);
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self
                .stack
                .new_request("NOTIFY", d.remote_target, proto, dest)?;
            for route in d.routes() {
                b.header("Route", route)?;
            }
            let local_uri = d.local_uri.unwrap_or(&p.dialog.local_uri);
            let remote_uri = d.remote_uri.unwrap_or(&p.dialog.remote_uri);
            b.header_parts("From", &["<", local_uri, ">;tag=", d.local_tag])?;
            b.header_parts("To", &["<", remote_uri, ">;tag=", d.remote_tag])?;
            b.header("Call-ID", d.call_id)?;
            b.header("CSeq", &format!("{} NOTIFY", p.cseq))?;
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
            b.header("Subscription-State", &p.state)?;
            b.header("Require", EVENTLIST)?;
            b.header("User-Agent", &self.stack.config().server_name)?;
            b.body(&p.content_type, &p.body)?;
            Ok((branch, b.build()))
        })();
        match built {
            Ok((branch, bytes)) => {
                let waiter = Box::new(NotifyWaiter {
                    role: self.me.clone(),
                    id: p.id,
                });
                self.stack.send_request(branch, bytes, proto, dest, waiter);
            }
            Err(e) => {
                log::warn!("list dialog {}: cannot build its NOTIFY: {e}", p.id);
                self.notify_outcome(p.id, 500);
            }
        }
    }

    /// What the subscriber answered a NOTIFY of list dialog `id` (408: no answer).
    fn notify_outcome(&self, id: u64, status: u16) {
        let mut table = lock(&self.table);
        if (200..300).contains(&status) || matches!(status, 401 | 407) {
            let Some(d) = table.dialogs.get_mut(&id) else {
                return;
            };
            d.in_flight = false;
            if d.due.is_some() {
                drop(table);
                // Sent from the timer thread (not the I/O thread that took the answer).
                self.stack.alarm().ring();
            }
            return;
        }
        log::debug!("list dialog {id}: NOTIFY answered {status}; ending it");
        let Some(d) = table.dialogs.remove(&id) else {
            return;
        };
        let backs: Vec<SubscriptionId> = d.resources.iter().filter_map(|e| e.back).collect();
        for b in &backs {
            table.by_back.remove(b);
        }
        drop(table);
        if let Ok(engine) = self.engine.get() {
            for b in backs {
                let _ = engine.unsubscribe(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_tags_are_told_apart_from_the_notifiers() {
        assert_eq!(dialog_in_tag("0badf00d.l2a"), Some(0x2a));
        assert_eq!(dialog_in_tag("0badf00d.2a"), None);
        assert_eq!(dialog_in_tag("1f3a9c0de"), None);
        assert_eq!(dialog_in_tag("x.lzz"), None);
    }
}
