//! A shard's users: their logged-in endpoints and their mailboxes of instant messages
//! (RFC 3428 page mode), with durable storage for recipients who are offline.
//!
//! # Order and durability
//!
//! Each user has one mailbox, ordered by message id (the order messages were sent). A
//! message for a user with an endpoint online and an empty mailbox is delivered at once.
//! Otherwise it joins the mailbox: for an offline user it is written to the store, and its
//! sender is told `stored` only when the store reports the write durable (the store calls
//! back through the shard's own command channel, so the shard alone touches its state). The
//! mailbox drains from the front while the user is online and the front message is not
//! still being written; a message that arrives while earlier ones wait queues behind them,
//! so a user who logs in sees every message in the order sent, exactly once, and a sender
//! always learns `stored` before `delivered`.
//!
//! # Hand-over to a transport's devices
//!
//! An endpoint a transport logged in with a contact (a registered SIP device) is reached
//! through the transport, which tells whether the device took the message
//! ([`crate::engine::Core::report_handover`]). A message that reaches only such devices is
//! not `delivered` when handed over, but when one of them takes it: nothing acknowledged is
//! lost. When none takes it (each refused, or none answered within
//! [`crate::engine::EngineConfig::handover_timeout`]), it is stored as for an offline user
//! (its sender hears `stored`), the user is *held* (the mailbox waits for the user's next
//! login instead of draining into devices that do not answer), and it is handed over again
//! at that login. An is-composing indication that no device takes is dropped instead (it
//! fails as `offline`) and holds no one: many devices refuse its content type. One hand-over per user at a time keeps the order; a message that arrives
//! meanwhile waits in the mailbox. A message handed over from disk stays on disk until a
//! device takes it.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Command, Shard};
use crate::engine::authorization::{presentity_key, AuthAction};
use crate::engine::events::{Delivery, DeliveryOutcome, Event, FailureReason, Message, MessageId};
use crate::engine::timers::Timer;
use crate::error::{Error, Result};
use crate::log;
use crate::store::{EndpointRecord, StoredMessage, Write};
use crate::uri::Uri;

/// The content type of is-composing indications (RFC 3994): delivered like messages but
/// never stored for an offline recipient.
pub(crate) const IS_COMPOSING: &str = crate::doc::iscomposing::CONTENT_TYPE;

/// A message on its way, as the engine accepted it.
#[derive(Debug, Clone)]
pub(crate) struct Letter {
    pub(crate) id: u64,
    /// The recipient's key ([`presentity_key`]), computed once by the sender's thread.
    pub(crate) key: Box<str>,
    pub(crate) sender: Arc<Uri>,
    pub(crate) recipient: Arc<Uri>,
    pub(crate) content_type: Arc<str>,
    pub(crate) body: Arc<[u8]>,
    /// The endpoint the sender named, if any.
    pub(crate) endpoint: Option<Arc<str>>,
    pub(crate) in_reply_to: Option<Arc<str>>,
    /// Unix milliseconds.
    pub(crate) sent_at: u64,
    /// The message as the sender's transport received it (see [`Message::wire`]).
    pub(crate) wire: Option<Arc<[u8]>>,
}

impl Letter {
    /// The message as its recipient (or the transport taking it on) sees it; `endpoint` is
    /// the one the letter names, or empty.
    fn into_message(self) -> Message {
        Message {
            id: MessageId(self.id),
            sender: self.sender,
            recipient: self.recipient,
            content_type: self.content_type,
            body: self.body,
            endpoint: self.endpoint.unwrap_or_else(|| Arc::from("")),
            in_reply_to: self.in_reply_to,
            sent_at: self.sent_at,
            contact: None,
            wire: self.wire,
        }
    }

    fn record(&self, expires_at: u64) -> StoredMessage {
        StoredMessage {
            id: self.id,
            sender: (*self.sender).clone(),
            recipient: (*self.recipient).clone(),
            content_type: self.content_type.to_string(),
            body: self.body.to_vec(),
            endpoint: self.endpoint.as_deref().map(str::to_owned),
            in_reply_to: self.in_reply_to.as_deref().map(str::to_owned),
            sent_at: self.sent_at,
            expires_at,
            wire: self.wire.as_deref().map(<[u8]>::to_vec),
        }
    }

    pub(crate) fn from_record(m: StoredMessage) -> Letter {
        Letter {
            id: m.id,
            key: presentity_key(&m.recipient).into(),
            sender: Arc::new(m.sender),
            recipient: Arc::new(m.recipient),
            content_type: m.content_type.into(),
            body: m.body.into(),
            endpoint: m.endpoint.map(Into::into),
            in_reply_to: m.in_reply_to.map(Into::into),
            sent_at: m.sent_at,
            wire: m.wire.map(Into::into),
        }
    }
}

/// Where a waiting message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Being written to the store; its sender has not been told `stored` yet.
    Writing,
    /// On disk; its sender was told `stored`.
    Stored,
    /// Not stored (the recipient was online when it came, but earlier messages waited).
    Transient,
}

struct Waiting {
    letter: Letter,
    durability: Durability,
}

/// A user's waiting messages by id (the order sent), and how many of them each sender
/// wrote (the bounds of [`crate::engine::StateLimits`] read both).
#[derive(Default)]
struct Mailbox {
    letters: BTreeMap<u64, Waiting>,
    /// By sender key; a sender with nothing waiting has no entry.
    senders: HashMap<String, u32>,
}

impl Mailbox {
    fn len(&self) -> usize {
        self.letters.len()
    }

    fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// The messages from `sender` (a key) waiting.
    fn of_sender(&self, sender: &str) -> u32 {
        self.senders.get(sender).copied().unwrap_or(0)
    }

    fn insert(&mut self, waiting: Waiting) {
        *self
            .senders
            .entry(presentity_key(&waiting.letter.sender))
            .or_default() += 1;
        if let Some(replaced) = self.letters.insert(waiting.letter.id, waiting) {
            self.uncount(&replaced);
        }
    }

    fn remove(&mut self, id: u64) -> Option<Waiting> {
        let waiting = self.letters.remove(&id)?;
        self.uncount(&waiting);
        Some(waiting)
    }

    fn uncount(&mut self, gone: &Waiting) {
        let sender = presentity_key(&gone.letter.sender);
        if let Some(n) = self.senders.get_mut(&sender) {
            *n -= 1;
            if *n == 0 {
                self.senders.remove(&sender);
            }
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Waiting> {
        self.letters.get_mut(&id)
    }

    /// The first message (the oldest), if any.
    fn first(&self) -> Option<&Waiting> {
        self.letters.first_key_value().map(|(_, w)| w)
    }

    /// The ids of the messages not stored (waiting in memory only).
    fn transient(&self) -> Vec<u64> {
        self.letters
            .iter()
            .filter(|(_, w)| w.durability == Durability::Transient)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A message handed to a transport's devices, waiting for one of them to take it.
pub(crate) struct Handover {
    letter: Letter,
    /// Devices that have not answered yet.
    outstanding: u32,
    /// Whether the letter is on disk (handed over from the mailbox): it is deleted only
    /// once a device took it.
    stored: bool,
}

/// A logged-in device.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) id: Arc<str>,
    pub(crate) contact: Option<Arc<str>>,
    /// Clock milliseconds.
    pub(crate) expires_at: u64,
    /// Entity tag of the minimal tuple published for it (`endpoint_presence`).
    pub(crate) etag: Option<String>,
}

/// A user with endpoints online or messages waiting.
pub(crate) struct User {
    pub(super) uri: Arc<Uri>,
    pub(super) endpoints: Vec<Endpoint>,
    mailbox: Mailbox,
    /// The message handed to the transport's devices and not decided yet: the mailbox
    /// waits behind it.
    handing: Option<u64>,
    /// The devices did not take the last message handed to them: until the next login,
    /// the user is treated as offline.
    held: bool,
}

impl User {
    fn new(uri: Arc<Uri>) -> User {
        User {
            uri,
            endpoints: Vec::new(),
            mailbox: Mailbox::default(),
            handing: None,
            held: false,
        }
    }

    fn is_idle(&self) -> bool {
        self.endpoints.is_empty() && self.mailbox.is_empty() && self.handing.is_none()
    }

    /// Whether a message can be handed over now: an endpoint is online, the devices are
    /// not held, no hand-over is undecided.
    fn reachable(&self) -> bool {
        !self.endpoints.is_empty() && !self.held
    }
}

/// What an endpoint's login looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint's id.
    pub endpoint: String,
    /// Where it is reached, if its login said.
    pub contact: Option<String>,
    /// Seconds until the login ends unless refreshed.
    pub expires_in: u32,
}

impl Shard {
    fn user_entry(&mut self, uri: &Arc<Uri>) -> &mut User {
        self.user_entry_by_key(&presentity_key(uri), uri)
    }

    fn user_entry_by_key(&mut self, key: &str, uri: &Arc<Uri>) -> &mut User {
        if !self.users.contains_key(key) {
            self.users.insert(key.to_owned(), User::new(uri.clone()));
        }
        self.users.get_mut(key).expect("inserted above")
    }

    fn collect_user_if_idle(&mut self, key: &str) {
        if self.users.get(key).is_some_and(User::is_idle) {
            self.users.remove(key);
        }
    }

    /// The clock time of a Unix time (the past maps to now).
    pub(crate) fn clock_time_of(&self, unix_ms: u64) -> u64 {
        self.now() + unix_ms.saturating_sub(self.config.clock.unix_ms())
    }

    /// A message from another domain, for a local user of the transport: handed to the
    /// application as it is (no mailbox: the transport answered for it already).
    pub(super) fn receive_message(&mut self, letter: Letter) {
        self.counters.delivered.fetch_add(1, RELAXED);
        self.outbox
            .push(Event::Message(Box::new(letter.into_message())));
    }

    /// A transport's outcome of a remote message, for its sender.
    pub(super) fn report_delivery(&mut self, delivery: Delivery) {
        match delivery.outcome {
            DeliveryOutcome::Delivered => self.counters.delivered.fetch_add(1, RELAXED),
            DeliveryOutcome::Failed(_) => self.counters.failed.fetch_add(1, RELAXED),
            DeliveryOutcome::Stored => 0,
        };
        self.outbox.push(Event::Delivery(delivery));
    }

    fn tell_sender(&mut self, letter: &Letter, outcome: DeliveryOutcome) {
        match outcome {
            DeliveryOutcome::Delivered => self.counters.delivered.fetch_add(1, RELAXED),
            DeliveryOutcome::Failed(_) => self.counters.failed.fetch_add(1, RELAXED),
            DeliveryOutcome::Stored => 0,
        };
        self.outbox.push(Event::Delivery(Delivery {
            message: MessageId(letter.id),
            sender: letter.sender.clone(),
            recipient: letter.recipient.clone(),
            outcome,
        }));
    }

    fn fail(&mut self, letter: &Letter, reason: FailureReason) {
        log::debug!(
            "message {} from {} to {} failed: {}",
            letter.id,
            letter.sender,
            letter.recipient,
            reason.as_str()
        );
        self.tell_sender(letter, DeliveryOutcome::Failed(reason));
    }

    /// Whether `uri` is a user of this engine.
    fn is_known_user(&self, uri: &Uri) -> bool {
        self.config.owns(uri) && (self.directory.is_empty() || self.directory.contains(uri))
    }

    // ----------------------------------------------------------------------------------
    // Messages
    // ----------------------------------------------------------------------------------

    pub(super) fn send_message(&mut self, letter: Letter) {
        if letter.body.len() > self.config.max_message_size {
            return self.fail(&letter, FailureReason::TooLarge);
        }
        if !self.config.owns(&letter.recipient) && self.port.remote_messages() {
            return self
                .outbox
                .push(Event::RemoteMessage(Box::new(letter.into_message())));
        }
        if !self.is_known_user(&letter.recipient) {
            return self.fail(&letter, FailureReason::UnknownUser);
        }
        // Only the recipient's explicit rules matter here: the default policy is about who
        // may see presence, not who may write.
        let decision = if self.rules.has_rules(&letter.key) {
            self.rules
                .decide(&letter.recipient, &letter.sender, AuthAction::Allow)
        } else {
            AuthAction::Allow
        };
        match decision {
            AuthAction::Block => return self.fail(&letter, FailureReason::Rejected),
            // Polite blocking hides the block: the sender is told what an accepted message
            // gets, and the message goes nowhere.
            AuthAction::PoliteBlock => {
                return self.tell_sender(&letter, DeliveryOutcome::Delivered);
            }
            // A redirect sends the watcher's subscriptions to another presence agent; what it
            // writes is still the recipient's here.
            AuthAction::Allow | AuthAction::Confirm | AuthAction::Redirect => {}
        }
        let (online, empty) = self.users.get(&*letter.key).map_or((false, true), |u| {
            (u.reachable(), u.mailbox.is_empty() && u.handing.is_none())
        });
        if online && empty {
            self.hand_over(&letter, false);
            return;
        }
        if online {
            if !self.mailbox_has_room(&letter) {
                return self.fail(&letter, FailureReason::MailboxFull);
            }
            let key = letter.key.clone();
            let user = self.users.get_mut(&*key).expect("online above");
            user.mailbox.insert(Waiting {
                letter,
                durability: Durability::Transient,
            });
            return self.drain(&key);
        }
        if letter.content_type.eq_ignore_ascii_case(IS_COMPOSING) {
            return self.fail(&letter, FailureReason::Offline);
        }
        if !self.mailbox_has_room(&letter) {
            return self.fail(&letter, FailureReason::MailboxFull);
        }
        self.store_letter(letter, Durability::Writing);
    }

    /// Whether the recipient's mailbox may take one more letter under the bounds of
    /// [`crate::engine::StateLimits`] (a refusal is counted and logged).
    fn mailbox_has_room(&self, letter: &Letter) -> bool {
        let Some(mailbox) = self.users.get(&*letter.key).map(|u| &u.mailbox) else {
            return true;
        };
        let limits = self.config.state_limits;
        let refusal = if mailbox.len() >= limits.max_offline_messages_per_user as usize {
            "the most this server keeps for one user"
        } else if mailbox.of_sender(&presentity_key(&letter.sender))
            >= limits.max_offline_messages_per_sender
        {
            "the most this server keeps from one sender for one user"
        } else {
            return true;
        };
        self.counters.messages_refused.fetch_add(1, RELAXED);
        log::debug!(
            "message {} from {} to {} refused: its mailbox holds {}",
            letter.id,
            letter.sender,
            letter.recipient,
            refusal
        );
        false
    }

    /// Puts a letter in its (offline) recipient's mailbox and, for a new one, writes it.
    pub(crate) fn store_letter(&mut self, letter: Letter, durability: Durability) {
        let key = letter.key.to_string();
        let expires_at_unix = letter.sent_at + self.config.message_expiry.as_millis() as u64;
        let deadline = self.clock_time_of(expires_at_unix);
        if durability == Durability::Writing {
            let me = self.me.clone();
            let id = letter.id;
            self.config.store.submit(
                Write::SaveMessage(letter.record(expires_at_unix)),
                Some(Box::new(move |result| {
                    // Refused only after the shard stopped: the message is on disk and is
                    // delivered after a restart.
                    let _ = me.send(Command::MessageStored { id, result });
                })),
            );
        }
        self.timers.schedule(deadline, Timer::Message(letter.id));
        self.waiting.insert(letter.id, key.clone());
        self.counters.waiting.fetch_add(1, RELAXED);
        let recipient = letter.recipient.clone();
        self.user_entry_by_key(&key, &recipient)
            .mailbox
            .insert(Waiting { letter, durability });
        if durability == Durability::Stored {
            self.drain(&key);
        }
    }

    /// The store's answer to a message write.
    pub(super) fn message_stored(&mut self, id: u64, result: Result<()>) {
        let Some(key) = self.waiting.get(&id).cloned() else {
            return; // expired while it was being written
        };
        let Some(user) = self.users.get_mut(&key) else {
            return;
        };
        let online = user.reachable();
        let Some(waiting) = user.mailbox.get_mut(id) else {
            return;
        };
        match result {
            Ok(()) => {
                waiting.durability = Durability::Stored;
                let letter = waiting.letter.clone();
                self.tell_sender(&letter, DeliveryOutcome::Stored);
            }
            Err(e) if online => {
                // The recipient came online meanwhile: it does not need the disk.
                log::warn!("message {id} could not be stored ({e}); delivering it now");
                waiting.durability = Durability::Transient;
            }
            Err(e) => {
                log::error!("message {id} could not be stored: {e}");
                let letter = user.mailbox.remove(id).expect("found above").letter;
                self.waiting.remove(&id);
                self.counters.waiting.fetch_sub(1, RELAXED);
                self.fail(&letter, FailureReason::Storage);
                return self.collect_user_if_idle(&key);
            }
        }
        self.drain(&key);
    }

    /// Delivers waiting messages from the front of the user's mailbox while the user is
    /// online and the front one is not still being written.
    fn drain(&mut self, key: &str) {
        loop {
            let Some(user) = self.users.get_mut(key) else {
                return;
            };
            if !user.reachable() || user.handing.is_some() {
                return;
            }
            let Some(first) = user.mailbox.first() else {
                return self.collect_user_if_idle(key);
            };
            if first.durability == Durability::Writing {
                return;
            }
            let id = first.letter.id;
            let waiting = user.mailbox.remove(id).expect("the first one");
            let stored = waiting.durability == Durability::Stored;
            if !self.hand_over(&waiting.letter, stored) {
                // Still on disk and still expiring, until a device takes it.
                return;
            }
            if stored {
                self.config
                    .store
                    .submit(Write::DeleteMessage(waiting.letter.id), None);
            }
            if self.waiting.remove(&waiting.letter.id).is_some() {
                self.counters.waiting.fetch_sub(1, RELAXED);
            }
        }
    }

    /// Gives a letter to its recipient's endpoints (the one it names, if online; else every
    /// one). Whether it is done (the sender was told `delivered`); `false`: only devices of
    /// the transport got it, and the sender is told when one takes it (see the module
    /// documentation). `stored`: the letter is on disk.
    fn hand_over(&mut self, letter: &Letter, stored: bool) -> bool {
        let through_port = self.port.is_open();
        let user = &self.users[&*letter.key];
        let named = letter
            .endpoint
            .as_deref()
            .filter(|name| user.endpoints.iter().any(|e| &*e.id == *name));
        let (mut local, mut devices) = (false, 0u32);
        for endpoint in &user.endpoints {
            if named.is_some_and(|name| name != &*endpoint.id) {
                continue;
            }
            let contact = endpoint.contact.clone().filter(|_| through_port);
            match contact {
                Some(_) => devices += 1,
                None => local = true,
            }
            self.outbox.push(Event::Message(Box::new(Message {
                id: MessageId(letter.id),
                sender: letter.sender.clone(),
                recipient: user.uri.clone(),
                content_type: letter.content_type.clone(),
                body: letter.body.clone(),
                endpoint: endpoint.id.clone(),
                in_reply_to: letter.in_reply_to.clone(),
                sent_at: letter.sent_at,
                contact,
                wire: letter.wire.clone(),
            })));
        }
        if local || devices == 0 {
            self.tell_sender(letter, DeliveryOutcome::Delivered);
            return true;
        }
        let key = letter.key.to_string();
        if let Some(user) = self.users.get_mut(&key) {
            user.handing = Some(letter.id);
        }
        let deadline = self.now() + self.config.handover_timeout.as_millis() as u64;
        self.timers.schedule(deadline, Timer::Handover(letter.id));
        self.handovers.insert(
            letter.id,
            Handover {
                letter: letter.clone(),
                outstanding: devices,
                stored,
            },
        );
        false
    }

    /// A transport's word on a message it relayed to `endpoint`: taken (a device answered
    /// 2xx) or not.
    pub(super) fn report_handover(&mut self, id: u64, endpoint: &str, taken: bool) {
        let Some(handover) = self.handovers.get_mut(&id) else {
            return; // decided already (another device, or the deadline)
        };
        if !taken {
            log::debug!("message {id}: endpoint {endpoint} did not take it");
            handover.outstanding = handover.outstanding.saturating_sub(1);
            if handover.outstanding == 0 {
                self.handover_failed(id);
            }
            return;
        }
        let handover = self.handovers.remove(&id).expect("found above");
        let key = handover.letter.key.to_string();
        if handover.stored {
            self.config.store.submit(Write::DeleteMessage(id), None);
            if self.waiting.remove(&id).is_some() {
                self.counters.waiting.fetch_sub(1, RELAXED);
            }
        }
        if let Some(user) = self.users.get_mut(&key) {
            user.handing = None;
        }
        self.tell_sender(&handover.letter, DeliveryOutcome::Delivered);
        self.drain(&key);
    }

    /// No device took the message in time.
    pub(super) fn handover_timer(&mut self, id: u64) {
        if self.handovers.contains_key(&id) {
            log::debug!("message {id}: no device took it in time");
            self.handover_failed(id);
        }
    }

    /// No device took a message: it is stored (or stays stored) for the user's next login,
    /// and so is everything queued behind it; the user is held until then.
    fn handover_failed(&mut self, id: u64) {
        let Some(handover) = self.handovers.remove(&id) else {
            return;
        };
        let letter = handover.letter;
        let key = letter.key.to_string();
        if letter.content_type.eq_ignore_ascii_case(IS_COMPOSING) {
            // A device that turns an is-composing indication down (baresip answers 415: it
            // takes text/plain alone) is no sign that the user is unreachable: holding the
            // user here would store the next real message instead of delivering it. The
            // indication is dropped (its sender hears `offline`) and the queue goes on.
            if let Some(user) = self.users.get_mut(&key) {
                user.handing = None;
            }
            self.fail(&letter, FailureReason::Offline);
            self.drain(&key);
            return self.collect_user_if_idle(&key);
        }
        let mut behind = Vec::new();
        if let Some(user) = self.users.get_mut(&key) {
            user.handing = None;
            user.held = true;
            // What waited in memory behind it goes to disk now: the user is unreachable.
            for id in user.mailbox.transient() {
                if let Some(w) = user.mailbox.remove(id) {
                    behind.push(w.letter);
                }
            }
        }
        let expires_at_unix = letter.sent_at + self.config.message_expiry.as_millis() as u64;
        if handover.stored {
            if self.config.clock.unix_ms() >= expires_at_unix {
                if self.waiting.remove(&id).is_some() {
                    self.counters.waiting.fetch_sub(1, RELAXED);
                }
                self.config.store.submit(Write::DeleteMessage(id), None);
                self.fail(&letter, FailureReason::Expired);
            } else {
                let recipient = letter.recipient.clone();
                self.user_entry_by_key(&key, &recipient)
                    .mailbox
                    .insert(Waiting {
                        letter,
                        durability: Durability::Stored,
                    });
            }
        } else {
            self.store_or_fail(letter);
        }
        for letter in behind {
            self.store_or_fail(letter);
        }
        self.collect_user_if_idle(&key);
    }

    /// Stores a letter for a user who cannot take it now; an is-composing indication, which
    /// is never stored, fails as `offline`.
    fn store_or_fail(&mut self, letter: Letter) {
        if letter.content_type.eq_ignore_ascii_case(IS_COMPOSING) {
            return self.fail(&letter, FailureReason::Offline);
        }
        self.store_letter(letter, Durability::Writing);
    }

    /// A stored message's time ran out.
    pub(super) fn message_expired(&mut self, id: u64) {
        if self.handovers.contains_key(&id) {
            return; // handed over from disk: its outcome decides (see `handover_failed`)
        }
        let Some(key) = self.waiting.remove(&id) else {
            return; // delivered before
        };
        self.counters.waiting.fetch_sub(1, RELAXED);
        let Some(waiting) = self.users.get_mut(&key).and_then(|u| u.mailbox.remove(id)) else {
            return;
        };
        if waiting.durability != Durability::Transient {
            self.config.store.submit(Write::DeleteMessage(id), None);
        }
        self.fail(&waiting.letter, FailureReason::Expired);
        // A message still being written expired before its sender heard `stored`: the
        // store's late answer finds nothing (see `message_stored`).
        self.drain(&key);
        self.collect_user_if_idle(&key);
    }

    // ----------------------------------------------------------------------------------
    // Endpoints
    // ----------------------------------------------------------------------------------

    /// Logs an endpoint in (or refreshes its login); returns the granted expiry in seconds.
    /// `expires` 0 logs it out.
    pub(super) fn login(
        &mut self,
        user: Arc<Uri>,
        endpoint: Arc<str>,
        contact: Option<Arc<str>>,
        expires: u32,
    ) -> Result<u32> {
        if expires == 0 {
            self.logout(&user, &endpoint, false);
            return Ok(0);
        }
        if !self.config.owns(&user) {
            return Err(Error::Forbidden(format!(
                "{user} is not in a domain this engine owns"
            )));
        }
        let granted = self.config.endpoint_expiry.grant(Some(expires), "login")?;
        self.check_endpoint_room(&user, &endpoint)?;
        let expires_at = self.now() + u64::from(granted) * 1000;
        self.restore_endpoint(user.clone(), endpoint.clone(), contact.clone(), expires_at);
        if self.soft_state {
            self.config.store.submit(
                Write::SaveEndpoint(EndpointRecord {
                    user: (*user).clone(),
                    endpoint: endpoint.to_string(),
                    contact: contact.as_deref().map(str::to_owned),
                    expires_at: self.config.clock.unix_ms() + u64::from(granted) * 1000,
                }),
                None,
            );
        }
        self.drain(&presentity_key(&user));
        Ok(granted)
    }

    /// Refuses a new endpoint of a user who has as many as
    /// [`crate::engine::StateLimits::max_endpoints_per_user`] (counted); a refresh of one
    /// logged in passes.
    fn check_endpoint_room(&self, user: &Uri, endpoint: &str) -> Result<()> {
        let max = self.config.state_limits.max_endpoints_per_user;
        let Some(entry) = self.users.get(&presentity_key(user)) else {
            return Ok(());
        };
        if entry.endpoints.len() < max as usize
            || entry.endpoints.iter().any(|e| &*e.id == endpoint)
        {
            return Ok(());
        }
        self.counters.endpoints_refused.fetch_add(1, RELAXED);
        log::debug!("login of endpoint {endpoint} of {user} refused: {max} endpoints already");
        Err(Error::LimitReached(format!(
            "{user} has {max} endpoints logged in, the most this server keeps for one user"
        )))
    }

    /// Puts an endpoint online until `expires_at` (clock time) without writing it.
    pub(crate) fn restore_endpoint(
        &mut self,
        user: Arc<Uri>,
        endpoint: Arc<str>,
        contact: Option<Arc<str>>,
        expires_at: u64,
    ) {
        let key = presentity_key(&user);
        let entry = self.user_entry(&user);
        // A login is the moment to try devices that did not take a message before.
        entry.held = false;
        match entry.endpoints.iter_mut().find(|e| e.id == endpoint) {
            Some(e) => {
                e.expires_at = expires_at;
                if contact.is_some() {
                    e.contact = contact;
                }
            }
            None => {
                entry.endpoints.push(Endpoint {
                    id: endpoint.clone(),
                    contact,
                    expires_at,
                    etag: None,
                });
                self.counters.endpoints.fetch_add(1, RELAXED);
            }
        }
        self.timers.schedule(
            expires_at,
            Timer::Endpoint(key.clone(), endpoint.to_string()),
        );
        self.endpoint_presence(&key, &endpoint);
        self.drain(&key);
    }

    /// Logs an endpoint out; returns whether it was logged in.
    pub(super) fn logout(&mut self, user: &Uri, endpoint: &str, expired: bool) -> bool {
        let key = presentity_key(user);
        let Some(entry) = self.users.get_mut(&key) else {
            return false;
        };
        let Some(index) = entry.endpoints.iter().position(|e| &*e.id == endpoint) else {
            return false;
        };
        let gone = entry.endpoints.remove(index);
        let uri = entry.uri.clone();
        self.counters.endpoints.fetch_sub(1, RELAXED);
        if self.soft_state {
            self.config.store.submit(
                Write::DeleteEndpoint {
                    user: user.clone(),
                    endpoint: endpoint.to_owned(),
                },
                None,
            );
        }
        if let Some(etag) = gone.etag {
            let _ = self.withdraw_endpoint_tuple(&etag);
        }
        if expired {
            log::debug!("endpoint {endpoint} of {uri} expired");
            self.outbox.push(Event::EndpointExpired {
                user: uri,
                endpoint: gone.id,
            });
        }
        self.collect_user_if_idle(&key);
        true
    }

    /// An endpoint timer came due at `deadline`.
    pub(super) fn endpoint_timer(&mut self, key: &str, endpoint: &str, deadline: u64) {
        let due = self.users.get(key).and_then(|u| {
            u.endpoints
                .iter()
                .find(|e| &*e.id == endpoint && e.expires_at == deadline)
                .map(|_| u.uri.clone())
        });
        if let Some(uri) = due {
            self.logout(&uri, endpoint, true);
        }
    }

    /// The endpoints of a user.
    pub(super) fn endpoints(&self, user: &Uri) -> Vec<EndpointInfo> {
        let now = self.now();
        self.users
            .get(&presentity_key(user))
            .map(|u| {
                u.endpoints
                    .iter()
                    .map(|e| EndpointInfo {
                        endpoint: e.id.to_string(),
                        contact: e.contact.as_deref().map(str::to_owned),
                        // Rounded up: a login granted 600 s ago a moment ago has 600 s left.
                        expires_in: e.expires_at.saturating_sub(now).div_ceil(1000) as u32,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
