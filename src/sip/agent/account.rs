//! Accounts of the user-agent role: an address of record at another server (its registrar),
//! with the credentials and the transport addresses to reach it. For each account the
//! server
//!
//! - registers (REGISTER with our listen address as Contact), refreshes the registration at
//!   a random point between 60% and 85% of the granted expiry, retries with back-off after a
//!   failure, and un-registers when it stops;
//! - publishes the account's own presence as the local engine composes it (uplink PUBLISH):
//!   an internal engine subscription (watcher and presentity the address of record, marked
//!   by its target so the server's tap takes its notifications) gives each new document,
//!   sent with `SIP-If-Match` of the last `SIP-ETag`; a body-less PUBLISH refreshes it before
//!   it expires; `412` (the registrar forgot the tag) re-publishes in full; `Expires: 0`
//!   withdraws it when the server stops;
//! - subscribes to its buddies: an engine subscription whose watcher is the address of record
//!   goes out through the account's outbound proxy (else its registrar) with its credentials,
//!   as a back-end subscription (module `backend`);
//! - subscribes to the resource lists it declares ([`Account::lists`], RFC 4662) as soon as
//!   the server starts, and keeps them until it stops (module `backend` too): declared with
//!   the account, they are made again at every start, as the registration is.
//!
//! Every request of an account answers a `401`/`407` challenge once per challenge
//! ([`crate::sip::digest_client`]); later requests carry credentials before being asked.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, Weak};

use super::hops::Hops;
use super::{backoff, refresh_at, AgentCounters};
use crate::engine::{Notification, SubscribeRequest};
use crate::error::Result;
use crate::log;
use crate::model::id::SubscriptionId;
use crate::model::key::presentity_key;
use crate::model::package::Package;
use crate::model::rule::AuthAction;
use crate::sip::builder::MessageBuilder;
use crate::sip::digest_client::{DigestClient, Retry};
use crate::sip::header::Contacts;
use crate::sip::message::SipMessage;
use crate::sip::route::{NextHop, RouteTarget};
use crate::sip::stack::{lock, Reply, Request, Stack, Waiting};
use crate::uri::Uri;

/// The target marking the internal subscription of an account's uplink publication.
pub(crate) const UPLINK_TARGET: &[u8] = b"impp-uplink ";

/// An account the server registers, publishes and subscribes for, as a user agent of
/// another domain's server (the registrar). Its `Debug` form hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The address of record (`sip:alice@b.test`): the REGISTER's To, the identity of the
    /// account's publications and subscriptions.
    pub aor: Uri,
    /// The digest user name.
    pub username: String,
    /// The digest password (kept in memory only).
    pub password: String,
    /// The registrar: a transport address, or a host name resolved by RFC 3263 (NAPTR, SRV,
    /// A/AAAA; fewer lookups when a transport or port is given) when the server starts and
    /// again as its records' TTL ends.
    pub registrar: RouteTarget,
    /// Where the account's other requests go, if not to the registrar (an address or a
    /// name, as the registrar).
    pub outbound_proxy: Option<RouteTarget>,
    /// Registration and publication expiry asked for, in seconds. Default 3600.
    pub expires: u32,
    /// The resource lists at the account's server the server subscribes to while it runs
    /// (each resource's state mirrored into the engine; see `SipServer::subscribe_list`).
    /// Default none. Add with [`Account::add_list`], which checks the package.
    pub lists: Vec<ListSubscription>,
    /// Whether this device is the presence agent for its own address of record (issue 19,
    /// presence at the edge; module `sip::agent::edge`): its REGISTER offers it (the RFC 3840
    /// feature tag `events="presence"`, with RFC 5626 `+sip.instance`, `reg-id=1` and
    /// `Supported: outbound`), and the SUBSCRIBEs for the address of record that reach it
    /// are served from the local engine, by the rules fetched from [`Account::xcap`].
    /// Default off.
    pub serve: bool,
    /// Seconds between the keep-alive pings (CRLF CRLF, RFC 5626 §4.4.1) a serving account
    /// sends on its flow to the registrar over TCP or TLS; a ping not answered by the next
    /// one, or the flow closing, registers again at once on a new connection. `0`: no
    /// pings. Default 30. (Over UDP there are none: see the README.)
    pub keepalive: u32,
    /// The XCAP root (RFC 4825; `http://` or `https://`) where a serving account reads its
    /// rules (`pres-rules/users/<AOR>/index`, with the account's digest credentials) at
    /// every registration and refresh. Default none: a serving account without it never
    /// has rules, and refuses every watcher with `480` (its server keeps them).
    pub xcap: Option<String>,
}

/// A resource list at an account's server (RFC 4662) and the event package it is watched
/// for, declared with the account so that every start subscribes to it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSubscription {
    /// The list's URI (`sip:buddies@b.test`), of a domain the engine does not own.
    pub uri: Uri,
    /// `presence` or `dialog` (the packages lists serve), or `message-summary`: a package
    /// whose documents can be mirrored.
    pub package: Package,
}

impl ListSubscription {
    /// The list `uri` watched for `package`; refused (`InvalidArgument`) for a package
    /// without documents to mirror (`presence.winfo`: watcher information is made by an
    /// engine, never published).
    pub fn new(uri: Uri, package: Package) -> Result<ListSubscription> {
        check_list_package(package)?;
        Ok(ListSubscription { uri, package })
    }
}

/// Whether a list's resources can be mirrored for `package` (the engine keeps publications
/// of every package but watcher information, which it makes itself).
pub(crate) fn check_list_package(package: Package) -> Result<()> {
    if package.is_publishable() {
        Ok(())
    } else {
        Err(crate::error::Error::InvalidArgument(format!(
            "package {package} cannot be mirrored from a list (watcher information is never published)"
        )))
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("aor", &self.aor.to_string())
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("registrar", &self.registrar)
            .field("outbound_proxy", &self.outbound_proxy)
            .field("expires", &self.expires)
            .field("lists", &self.lists)
            .field("serve", &self.serve)
            .field("keepalive", &self.keepalive)
            .field("xcap", &self.xcap)
            .finish()
    }
}

impl Account {
    /// An account of `aor` with credentials `username`/`password` at `registrar`, no outbound
    /// proxy, 3600 s expiry.
    pub fn new(
        aor: Uri,
        username: &str,
        password: &str,
        registrar: impl Into<RouteTarget>,
    ) -> Account {
        Account {
            aor,
            username: username.to_owned(),
            password: password.to_owned(),
            registrar: registrar.into(),
            outbound_proxy: None,
            expires: 3600,
            lists: Vec::new(),
            serve: false,
            keepalive: 30,
            xcap: None,
        }
    }

    /// Declares the list `uri` for `package` (see [`Account::lists`]); the same list and
    /// package again changes nothing. Refused (`InvalidArgument`, nothing changed) for a
    /// package without documents. (Whether the list is of a domain the engine owns is only
    /// known when the server starts, which refuses it then.)
    pub fn add_list(&mut self, uri: Uri, package: Package) -> Result<()> {
        let list = ListSubscription::new(uri, package)?;
        let key = presentity_key(&list.uri);
        if !self
            .lists
            .iter()
            .any(|l| l.package == package && presentity_key(&l.uri) == key)
        {
            self.lists.push(list);
        }
        Ok(())
    }

    /// Where the account's requests other than REGISTER go (as configured: a name is
    /// resolved by the server).
    pub fn server(&self) -> &RouteTarget {
        self.outbound_proxy.as_ref().unwrap_or(&self.registrar)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do (not registered / nothing published).
    Idle,
    /// A request is due at this clock time.
    Due(u64),
    /// A request is on its way.
    Sent,
    /// Done; refreshed at this clock time.
    Active(u64),
}

/// What a one-shot request of an account does with its final answer (`None`: no answer in
/// time, status 408).
pub(crate) type Done = Box<dyn FnOnce(u16, Option<&SipMessage>) + Send>;

/// A one-shot request of an account (such as a MESSAGE), for
/// [`Accounts::send_account_request`].
#[derive(Debug, Clone)]
pub(crate) struct AccountRequest {
    /// Which account (index in `SipServerConfig::accounts`).
    pub(crate) account: usize,
    /// The method.
    pub(crate) method: String,
    /// The Request-URI.
    pub(crate) request_uri: String,
    /// The To header's value.
    pub(crate) to: String,
    /// More header fields (name, value).
    pub(crate) extra: Vec<(String, String)>,
    /// The body: (content type, bytes).
    pub(crate) body: Option<(String, Vec<u8>)>,
}

/// A one-shot request kept until its final answer, so that it can be sent again with
/// credentials.
struct OneShot {
    request: AccountRequest,
    done: Option<Done>,
    challenged: bool,
}

/// One account's state.
pub(crate) struct AccountState {
    /// Shared by the account's REGISTER, PUBLISH and one-shot requests (one realm).
    digest: DigestClient,
    reg_call_id: String,
    reg_tag: String,
    reg_cseq: u32,
    reg_phase: Phase,
    reg_failures: u32,
    reg_expires: u32,
    /// Whether the last REGISTER's 403 made us drop our credentials once already.
    reg_reset: bool,
    /// The internal subscription giving the account's composed presence.
    uplink: Option<SubscriptionId>,
    /// When the internal subscription is to be made or refreshed (clock ms).
    uplink_due: u64,
    /// The latest document to publish (`None`: nothing to publish).
    body: Option<Arc<[u8]>>,
    /// Whether `body` changed since the last PUBLISH was sent.
    dirty: bool,
    etag: Option<String>,
    pub_phase: Phase,
    pub_failures: u32,
    pub_expires: u32,
    pub_reset: bool,
    pub_tag: String,
    /// A serving account's flow keep-alive (see [`super::edge`]).
    flow: super::edge::Flow,
    /// A serving account's rules fetching (see [`super::edge`]).
    rules: super::edge::Rules,
}

/// The accounts role: registration, uplink publication and one-shot requests of each
/// account, as a user agent of the account's registrar.
pub(crate) struct Accounts {
    me: Weak<Accounts>,
    stack: Arc<Stack>,
    engine: crate::engine::EngineHandle,
    accounts: Arc<[Account]>,
    /// Where each account's requests go now.
    hops: Arc<Hops>,
    state: Mutex<AccountsState>,
    counters: Arc<AgentCounters>,
    /// For `https://` XCAP roots: the SIP server's TLS client side (its trust anchors).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The outcome of an account's request goes back to the role.
struct AccountWaiter {
    role: Weak<Accounts>,
    account: usize,
    purpose: Purpose,
    with_auth: bool,
}

impl Waiting for AccountWaiter {
    fn outcome(self: Box<Self>, status: u16, response: Option<&SipMessage>) {
        if let Some(role) = self.role.upgrade() {
            role.counters.answered();
            role.response(self.account, self.purpose, self.with_auth, status, response);
        }
    }
}

/// The accounts' state and their one-shot requests.
#[derive(Default)]
struct AccountsState {
    states: Vec<AccountState>,
    /// Set when the server stops: nothing is started again.
    stopped: bool,
    one_shots: std::collections::HashMap<u64, OneShot>,
    next_id: u64,
}

/// Which of an account's requests an answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Register,
    Publish,
    /// Ending the registration or publication: the answer is not waited for.
    Final,
    OneShot(u64),
}

impl Accounts {
    /// The role for `accounts`, not started ([`Accounts::start`]).
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: crate::engine::EngineHandle,
        accounts: Arc<[Account]>,
        hops: Arc<Hops>,
        counters: Arc<AgentCounters>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Arc<Accounts> {
        Arc::new_cyclic(|me| Accounts {
            me: me.clone(),
            stack,
            engine,
            accounts,
            hops,
            state: Mutex::new(AccountsState::default()),
            counters,
            tls,
        })
    }

    fn engine(&self) -> Result<Arc<crate::engine::Core>> {
        self.engine.get()
    }

    /// Sends a request of an account in a new client transaction (counted until answered).
    fn send_request(
        &self,
        branch: String,
        bytes: Vec<u8>,
        hop: NextHop,
        account: usize,
        purpose: Purpose,
        with_auth: bool,
    ) {
        self.counters.sent();
        let waiter = Box::new(AccountWaiter {
            role: self.me.clone(),
            account,
            purpose,
            with_auth,
        });
        self.stack
            .send_request(branch, bytes, hop.proto, hop.addr, waiter);
    }

    /// Starts the accounts: registration and uplink publication of each.
    pub(crate) fn start(&self) {
        let now = self.stack.now();
        let mut states = Vec::new();
        for a in self.accounts.iter() {
            states.push(AccountState {
                digest: DigestClient::seeded(&a.username, &a.password, self.stack.random_u64()),
                reg_call_id: format!("{}@impp", self.stack.token()),
                reg_tag: self.stack.token(),
                reg_cseq: 0,
                reg_phase: Phase::Due(now),
                reg_failures: 0,
                reg_expires: a.expires,
                reg_reset: false,
                uplink: None,
                uplink_due: now,
                body: None,
                dirty: false,
                etag: None,
                pub_phase: Phase::Idle,
                pub_failures: 0,
                pub_expires: a.expires,
                pub_reset: false,
                pub_tag: self.stack.token(),
                flow: super::edge::Flow::default(),
                rules: self.rules_client(a),
            });
        }
        lock(&self.state).states = states;
        let Ok(engine) = self.engine() else { return };
        for a in self.accounts.iter().filter(|a| a.serve) {
            // The engine decides the address of record's watchers by its own (fetched)
            // rules, never through a back-end subscription.
            if let Err(e) = engine.serve_here(&a.aor) {
                log::warn!("account {}: cannot serve its presence here: {e}", a.aor);
            }
        }
        // Internal subscriptions kept in the store by an earlier run are replaced.
        for sub in engine.remote_subscriptions().unwrap_or_default() {
            if sub.target.is_some_and(|t| t.starts_with(UPLINK_TARGET)) {
                let _ = engine.unsubscribe(sub.id);
            }
        }
        // The internal subscriptions are made by the timer thread (`accounts_tick`).
    }

    /// Makes (or refreshes) account `i`'s internal subscription. Called with the accounts'
    /// lock held: the subscription's first notifications, handled on the events thread,
    /// wait for it, so they find the subscription's id known.
    fn follow_own_presence(&self, s: &mut AccountState, i: usize, now: u64) {
        let Ok(engine) = self.engine() else { return };
        let max = engine.config().subscription_expiry.max;
        // Refreshed at half its life.
        s.uplink_due = now + u64::from(max) * 500;
        if let Some(id) = s.uplink {
            if engine.refresh_subscription(id, max).is_ok() {
                return;
            }
        }
        let a = &self.accounts[i];
        let mut request = SubscribeRequest::new(a.aor.clone(), a.aor.clone(), Package::Presence);
        let mut target = UPLINK_TARGET.to_vec();
        target.extend_from_slice(a.aor.to_string().as_bytes());
        request.target = Some(target.into());
        request.expires = Some(max);
        match engine.subscribe(request) {
            Ok(id) => {
                s.uplink = Some(id);
                // The account's own presence: nobody else decides.
                let _ = engine.authorize(id, AuthAction::Allow);
            }
            Err(e) => {
                log::warn!("account {}: cannot follow its presence: {e}", a.aor);
                s.uplink_due = now + 60_000;
            }
        }
    }

    /// A notification of an internal subscription (`false`: not one).
    pub(crate) fn uplink_notification(&self, n: &Notification) -> bool {
        let mut accounts = lock(&self.state);
        let Some(i) = accounts
            .states
            .iter()
            .position(|s| s.uplink == Some(n.subscription))
        else {
            return false;
        };
        let body: Option<Arc<[u8]>> = n.document.as_ref().map(|d| d.to_body().into_bytes().into());
        if n.state.is_terminated() {
            accounts.states[i].uplink = None;
            return true;
        }
        let s = &mut accounts.states[i];
        if s.body == body {
            return true;
        }
        s.body = body;
        s.dirty = true;
        if s.pub_phase != Phase::Sent {
            s.pub_phase = Phase::Due(0);
            self.send_publish(&mut accounts, i);
        }
        true
    }

    /// A request of an account: start line, Via, Max-Forwards, User-Agent.
    fn account_builder(
        &self,
        method: &str,
        request_uri: &str,
        hop: NextHop,
    ) -> Result<(MessageBuilder, String)> {
        let (mut b, branch) = self
            .stack
            .new_request(method, request_uri, hop.proto, hop.addr)?;
        b.header("User-Agent", &self.stack.config().server_name)?;
        Ok((b, branch))
    }

    fn send_register(&self, accounts: &mut AccountsState, i: usize, expires: u32) {
        let a = &self.accounts[i];
        let hop = self.hops.registrar(i);
        let s = &mut accounts.states[i];
        s.reg_cseq += 1;
        let uri = format!("sip:{}", a.aor.host());
        let authorization = s.digest.authorize("REGISTER", &uri);
        let with_auth = authorization.is_some();
        let local = self.stack.local_for(hop.proto, hop.addr);
        let mut contact = if hop.proto.is_stream() {
            format!(
                "<sip:{}@{local};transport={}>",
                a.username,
                hop.proto.param()
            )
        } else {
            format!("<sip:{}@{local}>", a.username)
        };
        if a.serve {
            contact.push_str(&super::edge::contact_params(a));
        }
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self.account_builder("REGISTER", &uri, hop)?;
            b.header("From", &format!("<{}>;tag={}", a.aor, s.reg_tag))?;
            b.header("To", &format!("<{}>", a.aor))?;
            b.header("Call-ID", &s.reg_call_id)?;
            b.header("CSeq", &format!("{} REGISTER", s.reg_cseq))?;
            b.header("Contact", &contact)?;
            b.header("Expires", &expires.to_string())?;
            if a.serve {
                b.header("Supported", "outbound")?;
            }
            if let Some((name, value)) = &authorization {
                b.header(name, value)?;
            }
            Ok((branch, b.build()))
        })();
        // A new REGISTER: the flow is kept alive again once it is answered.
        s.flow.stop();
        let purpose = if expires == 0 {
            Purpose::Final
        } else {
            s.reg_phase = Phase::Sent;
            Purpose::Register
        };
        match built {
            Ok((branch, bytes)) => self.send_request(branch, bytes, hop, i, purpose, with_auth),
            Err(e) => {
                log::warn!("account {}: cannot build its REGISTER: {e}", a.aor);
                s.reg_phase = Phase::Idle;
            }
        }
    }

    /// Sends the account's PUBLISH: the latest document (with `SIP-If-Match` when one is
    /// published), a body-less refresh, or a removal when there is no document any more.
    fn send_publish(&self, accounts: &mut AccountsState, i: usize) {
        let a = &self.accounts[i];
        let hop = self.hops.next_hop(i);
        let s = &mut accounts.states[i];
        let body = if s.dirty { s.body.clone() } else { None };
        let removing = s.dirty && s.body.is_none();
        if removing && s.etag.is_none() {
            s.dirty = false;
            s.pub_phase = Phase::Idle;
            return;
        }
        if body.is_none() && !removing && s.etag.is_none() {
            // A refresh of nothing: publish in full instead.
            if s.body.is_none() {
                s.pub_phase = Phase::Idle;
                return;
            }
            s.dirty = true;
            return self.send_publish(accounts, i);
        }
        let s = &mut accounts.states[i];
        let expires = if removing { 0 } else { s.pub_expires };
        let uri = a.aor.to_string();
        let authorization = s.digest.authorize("PUBLISH", &uri);
        let with_auth = authorization.is_some();
        let built = (|| -> Result<(String, Vec<u8>)> {
            let (mut b, branch) = self.account_builder("PUBLISH", &uri, hop)?;
            b.header("From", &format!("<{}>;tag={}", a.aor, s.pub_tag))?;
            b.header("To", &format!("<{}>", a.aor))?;
            b.header("Call-ID", &format!("{}@impp", self.stack.token()))?;
            b.header("CSeq", "1 PUBLISH")?;
            b.header("Event", Package::Presence.as_str())?;
            b.header("Expires", &expires.to_string())?;
            if let Some(etag) = &s.etag {
                b.header("SIP-If-Match", etag)?;
            }
            if let Some((name, value)) = &authorization {
                b.header(name, value)?;
            }
            if let Some(body) = &body {
                b.body(Package::Presence.content_type(), body)?;
            }
            Ok((branch, b.build()))
        })();
        s.dirty = false;
        s.pub_phase = Phase::Sent;
        match built {
            Ok((branch, bytes)) => {
                self.send_request(branch, bytes, hop, i, Purpose::Publish, with_auth)
            }
            Err(e) => {
                log::warn!("account {}: cannot build its PUBLISH: {e}", a.aor);
                s.pub_phase = Phase::Idle;
            }
        }
    }

    /// Sends a one-shot request of an account (such as a MESSAGE) to its outbound proxy
    /// (else its registrar), From its address of record with a fresh tag and Call-ID. A
    /// `401`/`407` is answered once per challenge with the
    /// account's credentials; the final answer (or 408 without one after a timeout) goes to
    /// `done`. Errors: no such account, or a request that cannot be built.
    pub(crate) fn send_account_request(&self, request: AccountRequest, done: Done) -> Result<()> {
        if request.account >= self.accounts.len() {
            return Err(crate::error::Error::InvalidArgument(format!(
                "no account {}",
                request.account
            )));
        }
        let mut accounts = lock(&self.state);
        accounts.next_id += 1;
        let id = accounts.next_id;
        accounts.one_shots.insert(
            id,
            OneShot {
                request,
                done: Some(done),
                challenged: false,
            },
        );
        let sent = self.send_one_shot(&mut accounts, id);
        if sent.is_err() {
            accounts.one_shots.remove(&id);
        }
        sent
    }

    fn send_one_shot(&self, accounts: &mut AccountsState, id: u64) -> Result<()> {
        let AccountsState {
            states, one_shots, ..
        } = accounts;
        let Some(r) = one_shots.get(&id).map(|o| &o.request) else {
            return Ok(());
        };
        let a = &self.accounts[r.account];
        let hop = self.hops.next_hop(r.account);
        let s = &mut states[r.account];
        let authorization = s.digest.authorize(&r.method, &r.request_uri);
        let with_auth = authorization.is_some();
        let (mut b, branch) = self.account_builder(&r.method, &r.request_uri, hop)?;
        b.header("From", &format!("<{}>;tag={}", a.aor, self.stack.token()))?;
        b.header("To", &r.to)?;
        b.header("Call-ID", &format!("{}@impp", self.stack.token()))?;
        b.header("CSeq", &format!("1 {}", r.method))?;
        for (name, value) in &r.extra {
            b.header(name, value)?;
        }
        if let Some((name, value)) = &authorization {
            b.header(name, value)?;
        }
        if let Some((ct, body)) = &r.body {
            b.body(ct, body)?;
        }
        let account = r.account;
        self.send_request(
            branch,
            b.build(),
            hop,
            account,
            Purpose::OneShot(id),
            with_auth,
        );
        Ok(())
    }

    /// The final answer to a request of account `i`.
    fn response(
        &self,
        i: usize,
        purpose: Purpose,
        with_auth: bool,
        status: u16,
        response: Option<&SipMessage>,
    ) {
        let mut accounts = lock(&self.state);
        if i >= accounts.states.len() {
            return;
        }
        let now = self.stack.now();
        let aor = &self.accounts[i].aor;
        // A challenge: answered once per challenge, for whichever request it was.
        let challenge = matches!(status, 401 | 407);
        let again = if challenge {
            let name = if status == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            let values = response.map(|r| r.headers(name).collect::<Vec<_>>());
            let retry = accounts.states[i].digest.on_challenge(
                status,
                values.unwrap_or_default(),
                with_auth,
            );
            match retry {
                Retry::Again => true,
                Retry::GiveUp(why) => {
                    log::warn!("account {aor}: {why}");
                    false
                }
            }
        } else {
            false
        };
        match purpose {
            Purpose::Final => {}
            Purpose::OneShot(id) => {
                if again {
                    if let Some(r) = accounts.one_shots.get_mut(&id) {
                        if !r.challenged || with_auth {
                            r.challenged = true;
                            match self.send_one_shot(&mut accounts, id) {
                                Ok(()) => return,
                                // Not sent again: the challenge is the final answer.
                                Err(e) => log::warn!("account {aor}: cannot send again: {e}"),
                            }
                        }
                    }
                }
                self.hops.answered(self.hops.next_hop(i), status, response);
                let Some(mut r) = accounts.one_shots.remove(&id) else {
                    return;
                };
                drop(accounts);
                if let Some(done) = r.done.take() {
                    done(status, response);
                }
            }
            Purpose::Register => {
                let s = &mut accounts.states[i];
                let expires = s.reg_expires;
                match status {
                    200..=299 => {
                        let granted = response
                            .and_then(|r| granted_contact_expires(r, &self.accounts[i]))
                            .unwrap_or(s.reg_expires);
                        s.reg_failures = 0;
                        s.reg_reset = false;
                        s.reg_phase = Phase::Active(refresh_at(&self.stack, now, granted));
                        log::debug!("account {aor}: registered for {granted} s");
                        let a = &self.accounts[i];
                        if a.serve {
                            let stream = self.hops.registrar(i).proto.is_stream();
                            // RFC 5626 §4.4.1: the registrar may ask for keep-alives at
                            // least every N seconds.
                            let flow_timer = response
                                .and_then(|r| r.header("Flow-Timer"))
                                .and_then(|v| v.trim().parse::<u32>().ok());
                            s.flow.registered(now, a.keepalive, flow_timer, stream);
                            if let Some(at) = s.flow.ping_at {
                                // The timer thread sleeps until its earliest deadline.
                                self.stack.alarm().at(at);
                            }
                            s.rules.reset_retries();
                            s.rules.fetch(self.engine.clone(), a.aor.clone());
                        }
                    }
                    _ if again => self.send_register(&mut accounts, i, expires),
                    403 if with_auth && !s.reg_reset => {
                        // The registrar no longer knows our nonce (it restarted): start over
                        // without credentials, once.
                        s.reg_reset = true;
                        s.digest.reset();
                        self.send_register(&mut accounts, i, expires);
                    }
                    423 => {
                        let min = response.and_then(|r| r.min_expires().ok().flatten());
                        s.reg_expires = min.unwrap_or(s.reg_expires).max(s.reg_expires);
                        s.reg_failures += 1;
                        s.reg_phase = Phase::Due(now);
                    }
                    _ => {
                        if matches!(status, 408 | 503) {
                            // The next try goes to the registrar's next target, if it has
                            // one (RFC 3263 §4.3).
                            let retry =
                                response.and_then(SipMessage::retry_after).map(|s| s * 1000);
                            self.hops.unreachable(self.hops.registrar(i), retry);
                        }
                        s.reg_failures += 1;
                        s.reg_phase = Phase::Due(now + backoff(&self.stack, s.reg_failures));
                        log::info!("account {aor}: REGISTER answered {status}; retry later");
                    }
                }
            }
            Purpose::Publish => {
                let stopped = accounts.stopped;
                let s = &mut accounts.states[i];
                match status {
                    200..=299 => {
                        s.etag = response
                            .and_then(|r| r.header("SIP-ETag"))
                            .map(|t| t.trim().to_owned())
                            .filter(|t| !t.is_empty());
                        let granted = response
                            .and_then(|r| r.expires().ok().flatten())
                            .unwrap_or(s.pub_expires);
                        s.pub_failures = 0;
                        s.pub_reset = false;
                        if stopped {
                            // The answer to a PUBLISH that was on its way when the account
                            // stopped: the withdrawal sent then named the tag before it, so
                            // this publication is withdrawn now, by its own tag.
                            if granted > 0 && s.etag.is_some() {
                                s.body = None;
                                s.dirty = true;
                                self.send_publish(&mut accounts, i);
                            }
                            accounts.states[i].pub_phase = Phase::Idle;
                            return;
                        }
                        s.pub_phase = if s.dirty {
                            Phase::Due(now)
                        } else if s.etag.is_some() && granted > 0 {
                            Phase::Active(refresh_at(&self.stack, now, granted))
                        } else {
                            Phase::Idle
                        };
                        if s.dirty {
                            self.send_publish(&mut accounts, i);
                        }
                    }
                    _ if again => {
                        // The same content again (the body is still the latest).
                        s.dirty = s.dirty || s.body.is_some() || s.etag.is_some();
                        self.send_publish(&mut accounts, i);
                    }
                    412 => {
                        // The registrar forgot our tag: publish the whole document again.
                        log::debug!("account {aor}: entity tag refused; publishing in full");
                        s.etag = None;
                        s.dirty = s.body.is_some();
                        self.send_publish(&mut accounts, i);
                    }
                    403 if with_auth && !s.pub_reset => {
                        s.pub_reset = true;
                        s.digest.reset();
                        s.dirty = s.body.is_some();
                        self.send_publish(&mut accounts, i);
                    }
                    _ => {
                        // The retry goes to the next target, as REGISTER's (RFC 3263 §4.3).
                        self.hops.answered(self.hops.next_hop(i), status, response);
                        s.pub_failures += 1;
                        s.dirty = s.body.is_some();
                        if status != 423 {
                            s.etag = None;
                        } else if let Some(min) =
                            response.and_then(|r| r.min_expires().ok().flatten())
                        {
                            s.pub_expires = s.pub_expires.max(min);
                        }
                        s.pub_phase = Phase::Due(now + backoff(&self.stack, s.pub_failures));
                        log::info!("account {aor}: PUBLISH answered {status}; retry later");
                    }
                }
            }
        }
    }

    /// Runs the accounts' due requests.
    pub(crate) fn tick(&self, now: u64) {
        let mut accounts = lock(&self.state);
        if accounts.stopped {
            return;
        }
        for i in 0..accounts.states.len() {
            if accounts.states[i].uplink_due <= now {
                self.follow_own_presence(&mut accounts.states[i], i, now);
            }
            let s = &mut accounts.states[i];
            if s.rules.retry_due(now) && matches!(s.reg_phase, Phase::Active(_)) {
                s.rules
                    .fetch(self.engine.clone(), self.accounts[i].aor.clone());
            }
            match accounts.states[i].flow.due(now) {
                super::edge::Due::Nothing => {}
                super::edge::Due::Ping => {
                    let hop = self.hops.registrar(i);
                    self.stack
                        .send(hop.proto, hop.addr, None, b"\r\n\r\n".to_vec());
                }
                super::edge::Due::Dead => {
                    log::info!(
                        "account {}: keep-alive unanswered; registering again",
                        self.accounts[i].aor
                    );
                    // On a new connection: the REGISTER below follows the close.
                    let hop = self.hops.registrar(i);
                    self.stack.close_flow(hop.proto, hop.addr);
                    accounts.states[i].reg_phase = Phase::Due(now);
                }
            }
            let s = &accounts.states[i];
            if matches!(s.reg_phase, Phase::Due(at) | Phase::Active(at) if at <= now) {
                let e = s.reg_expires;
                self.send_register(&mut accounts, i, e);
            }
            let s = &mut accounts.states[i];
            if matches!(s.pub_phase, Phase::Due(at) | Phase::Active(at) if at <= now) {
                if matches!(s.pub_phase, Phase::Due(_)) {
                    s.dirty = s.dirty || s.body.is_some();
                }
                self.send_publish(&mut accounts, i);
            }
        }
    }

    /// The earliest clock time [`Accounts::tick`] has work.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let accounts = lock(&self.state);
        if accounts.stopped {
            return None;
        }
        let at = |phase: Phase| match phase {
            Phase::Due(at) | Phase::Active(at) => Some(at),
            Phase::Idle | Phase::Sent => None,
        };
        accounts
            .states
            .iter()
            .flat_map(|s| {
                [
                    Some(s.uplink_due),
                    at(s.reg_phase),
                    at(s.pub_phase),
                    s.flow.ping_at,
                    s.rules.retry_at,
                ]
            })
            .flatten()
            .min()
    }

    /// Ends every account's publication and registration, and its internal subscription.
    pub(crate) fn stop(&self) {
        let mut accounts = lock(&self.state);
        accounts.stopped = true;
        let mut uplinks = Vec::new();
        for i in 0..accounts.states.len() {
            let s = &mut accounts.states[i];
            uplinks.extend(s.uplink.take());
            if s.etag.is_some() {
                s.body = None;
                s.dirty = true;
                self.send_publish(&mut accounts, i);
            }
            let s = &mut accounts.states[i];
            s.pub_phase = Phase::Idle;
            s.flow.stop();
            if s.reg_phase != Phase::Idle {
                self.send_register(&mut accounts, i, 0);
                accounts.states[i].reg_phase = Phase::Idle;
            }
        }
        drop(accounts);
        if let Ok(engine) = self.engine() {
            for id in uplinks {
                let _ = engine.unsubscribe(id);
            }
        }
    }

    /// The account a MESSAGE is for, when its To names one of the accounts (the account's
    /// registrar relays it to the contact the account registered).
    pub(crate) fn addressed(&self, m: &SipMessage) -> Option<usize> {
        if self.accounts.is_empty() {
            return None;
        }
        let to = m.to().ok()?.uri().ok()?;
        let key = presentity_key(&to);
        self.accounts
            .iter()
            .position(|a| presentity_key(&a.aor) == key)
    }

    /// The domain of account `account`'s address of record.
    pub(crate) fn domain(&self, account: usize) -> String {
        self.accounts[account].aor.host().to_ascii_lowercase()
    }

    /// Whether `peer` is the server of account `account`: its registrar's or outbound
    /// proxy's address (any port: a server's connections and UDP sockets differ).
    pub(crate) fn is_server_of(&self, peer: &crate::sip::stack::Peer, account: usize) -> bool {
        let ip = peer.source.ip().to_canonical();
        self.hops
            .known(account)
            .iter()
            .any(|hop| hop.addr.ip().to_canonical() == ip)
    }

    /// A MESSAGE for account `account`: handed to the application as an
    /// [`crate::engine::Event::Message`] (endpoint `sip`) and answered `200` (or `413` over
    /// the size limit). Not challenged: it comes from the account's own server (the node
    /// checked, see [`Accounts::is_server_of`]).
    pub(crate) fn message(&self, request: &Request, account: usize) -> Result<Reply> {
        let engine = self.engine()?;
        let sender = request.message.from()?.uri()?;
        let aor = self.accounts[account].aor.clone();
        let read =
            crate::sip::page::read_message(&self.stack, request, sender, aor, engine.config())?;
        let mut incoming = match read {
            Ok(incoming) => incoming,
            Err(answer) => return Ok(answer),
        };
        incoming.endpoint = Some("sip".into());
        engine.receive_message(incoming)?;
        Ok(self.stack.reply(request, 200, "OK"))
    }

    /// A message for a user of another domain whose sender is one of the accounts: sent as
    /// a MESSAGE through the account's proxy with its credentials; its answer becomes the
    /// sender's delivery outcome. `false`: the sender is no account.
    pub(crate) fn send_message(&self, message: &crate::engine::Message) -> bool {
        let sender = presentity_key(&message.sender);
        let Some(account) = self
            .accounts
            .iter()
            .position(|a| presentity_key(&a.aor) == sender)
        else {
            return false;
        };
        let delivery = crate::engine::Delivery {
            message: message.id,
            sender: message.sender.clone(),
            recipient: message.recipient.clone(),
            outcome: crate::engine::DeliveryOutcome::Delivered,
        };
        let mut extra = Vec::new();
        if let Some(r) = &message.in_reply_to {
            extra.push(("In-Reply-To".to_string(), r.to_string()));
        }
        let request = AccountRequest {
            account,
            method: "MESSAGE".into(),
            request_uri: message.recipient.to_string(),
            to: format!("<{}>", message.recipient),
            extra,
            body: Some((message.content_type.to_string(), message.body.to_vec())),
        };
        let engine = self.engine.clone();
        let report = move |delivery: crate::engine::Delivery, status: u16| {
            let mut delivery = delivery;
            delivery.outcome = crate::sip::page::remote_outcome(status);
            if let Ok(engine) = engine.get() {
                let _ = engine.report_delivery(delivery);
            }
        };
        let failed = (delivery.clone(), report.clone());
        let sent =
            self.send_account_request(request, Box::new(move |status, _| report(delivery, status)));
        if let Err(e) = sent {
            log::warn!(
                "message {}: cannot send it through its account: {e}",
                message.id
            );
            (failed.1)(failed.0, 0);
        }
        true
    }

    /// The rules fetching of account `a` (a client when it serves and has an XCAP root).
    fn rules_client(&self, a: &Account) -> super::edge::Rules {
        let mut rules = super::edge::Rules::default();
        let (true, Some(url)) = (a.serve, a.xcap.as_deref()) else {
            return rules;
        };
        match crate::xcap::client::XcapRoot::parse(url) {
            Ok(root) => {
                let digest =
                    DigestClient::seeded(&a.username, &a.password, self.stack.random_u64());
                let client = crate::xcap::client::XcapClient::new(root, digest, self.tls.clone());
                rules.client = Some(Arc::new(Mutex::new(client)));
            }
            Err(e) => log::warn!("account {}: {e}; it will have no rules", a.aor),
        }
        rules
    }

    /// A flow event of the transport (on the timer thread): a pong keeps a serving
    /// account's flow alive; the flow closing while registered registers again at once.
    pub(crate) fn flow_event(&self, event: crate::sip::transport::FlowEvent) {
        use crate::sip::transport::FlowEvent;
        let (FlowEvent::Pong { proto, peer } | FlowEvent::Closed { proto, peer }) = event;
        let mut accounts = lock(&self.state);
        if accounts.stopped {
            return;
        }
        for i in 0..accounts.states.len() {
            let hop = self.hops.registrar(i);
            if !self.accounts[i].serve || hop.proto != proto || hop.addr != peer {
                continue;
            }
            let s = &mut accounts.states[i];
            match event {
                FlowEvent::Pong { .. } => s.flow.awaiting_pong = false,
                FlowEvent::Closed { .. } => {
                    if matches!(s.reg_phase, Phase::Active(_)) {
                        log::info!(
                            "account {}: its flow closed; registering again",
                            self.accounts[i].aor
                        );
                        let e = s.reg_expires;
                        self.send_register(&mut accounts, i, e);
                    }
                }
            }
        }
    }

    /// The serving account a SUBSCRIBE is for: its To names the account's address of
    /// record (its Request-URI is the device's contact, see [`super::edge`]).
    pub(crate) fn serving(&self, m: &SipMessage) -> Option<usize> {
        if !self.accounts.iter().any(|a| a.serve) {
            return None;
        }
        let to = m.to().ok()?.uri().ok()?;
        let key = presentity_key(&to);
        self.accounts
            .iter()
            .position(|a| a.serve && presentity_key(&a.aor) == key)
    }

    /// Whether account `i` is registered now (for tests and status displays).
    pub(crate) fn registered(&self, i: usize) -> bool {
        lock(&self.state)
            .states
            .get(i)
            .is_some_and(|s| matches!(s.reg_phase, Phase::Active(_)))
    }
}

/// The expiry the registrar granted our contact: the `expires` parameter of our Contact in
/// its answer (matched by user part), else its Expires header.
fn granted_contact_expires(r: &SipMessage, account: &Account) -> Option<u32> {
    if let Ok(Contacts::List(list)) = r.contact() {
        for c in list {
            let ours = c
                .uri()
                .ok()
                .and_then(|u| u.user().map(|x| x == account.username))
                .unwrap_or(false);
            if ours {
                if let Some(e) = c.params().value("expires").and_then(|v| v.parse().ok()) {
                    return Some(e);
                }
            }
        }
    }
    r.expires().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::sip::node::{SipServer, SipServerConfig};
    use crate::sip::transport::{ListenAddr, Proto};
    use crate::store::Credential;

    #[test]
    fn a_one_shot_request_answers_the_challenge_once() {
        let b = std::sync::Arc::new(
            Engine::new(EngineConfig {
                domains: vec!["b.test".into()],
                workers: 1,
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        for user in ["alice", "bob"] {
            let uri: Uri = format!("sip:{user}@b.test").parse().unwrap();
            b.set_user(Credential::new(uri, "b.test", &format!("{user}-pw")))
                .unwrap();
        }
        let local = ListenAddr::udp("127.0.0.1:0".parse().unwrap());
        let b_server = SipServer::start(b.clone(), SipServerConfig::new(vec![local])).unwrap();
        let registrar = NextHop {
            proto: Proto::Udp,
            addr: b_server.local_addrs()[0].addr,
        };
        let c = std::sync::Arc::new(
            Engine::new(EngineConfig {
                domains: vec!["client.test".into()],
                workers: 1,
                ..EngineConfig::default()
            })
            .unwrap(),
        );
        let mut config = SipServerConfig::new(vec![local]);
        let aor: Uri = "sip:alice@b.test".parse().unwrap();
        config.accounts = vec![
            Account::new(aor.clone(), "alice", "alice-pw", registrar),
            Account::new(aor, "alice", "wrong", registrar),
        ];
        assert!(!format!("{:?}", config.accounts[0]).contains("alice-pw"));
        let client = SipServer::start(c, config).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for account in [0, 1] {
            let tx = tx.clone();
            let request = AccountRequest {
                account,
                method: "MESSAGE".into(),
                request_uri: "sip:bob@b.test".into(),
                to: "<sip:bob@b.test>".into(),
                extra: Vec::new(),
                body: Some(("text/plain".into(), b"hello".to_vec())),
            };
            client
                .accounts()
                .send_account_request(
                    request,
                    Box::new(move |status, _| {
                        let _ = tx.send((account, status));
                    }),
                )
                .unwrap();
        }
        let mut answers: Vec<(usize, u16)> = (0..2)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap())
            .collect();
        answers.sort();
        // Stored for bob (offline): 202. The wrong password is refused, not retried forever.
        assert_eq!(answers[0], (0, 202));
        assert_eq!(answers[1].0, 1);
        assert!(matches!(answers[1].1, 401 | 403), "{answers:?}");
        let bad = AccountRequest {
            account: 7,
            method: "MESSAGE".into(),
            request_uri: "sip:bob@b.test".into(),
            to: "<sip:bob@b.test>".into(),
            extra: Vec::new(),
            body: None,
        };
        assert!(client
            .accounts()
            .send_account_request(bad, Box::new(|_, _| {}))
            .is_err());
    }
}
