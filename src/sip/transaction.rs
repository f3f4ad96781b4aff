//! Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2), as state machines with no I/O:
//! the caller feeds them what arrives and the clock, and they say what to send. INVITE is
//! out of scope (the server answers it `405`).
//!
//! # Server transactions
//!
//! Keyed by the top Via's branch, its sent-by and the method (§17.2.3; a CANCEL or ACK never
//! matches a non-INVITE transaction). A request that starts a transaction is handed to the
//! application; a retransmission of it is answered with the last response sent (or absorbed
//! while none was sent yet: the application is still working on it). After a final response
//! the transaction lingers in `Completed` for timer J (64·T1 over UDP, zero over TCP) to
//! absorb late retransmissions, then is forgotten.
//!
//! # Client transactions
//!
//! For the requests the server sends (NOTIFY, relayed MESSAGE). Over UDP the request is
//! retransmitted at timer E (T1, doubling up to T2; T2 from the first provisional response
//! on); timer F (64·T1) ends an unanswered transaction with a timeout. A final response
//! completes it; over UDP it lingers for timer K (T4) to absorb retransmitted responses.
//!
//! # Timers
//!
//! A busy server holds many transactions (every NOTIFY over UDP lingers for T4, every
//! answered request for 64·T1), and `tick` runs every few milliseconds, so it must not look
//! at all of them: server transactions wait in two queues in the order they fall due (their
//! delays are fixed, so arrival order is due order). So do client transactions for their
//! first timer over UDP (E, at T1) and, once completed, for timer K; only the timers of
//! transactions already retransmitted (their delays differ) and those over TCP wait in a heap
//! keyed by due time. An entry whose transaction went away or changed is skipped or put back
//! when it comes up. Every NOTIFY makes one client transaction, most are answered before
//! their first timer: they never touch the heap.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate; default 500 ms.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests; default 4 s.
    pub t2: Duration,
    /// How long a message may live in the network; default 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// Timer F and J over an unreliable transport: 64·T1.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// Identifies a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// The top Via's branch (with the RFC 3261 magic cookie `z9hG4bK`).
    pub branch: String,
    /// The top Via's sent-by (`host[:port]`, as written, lower-cased).
    pub sent_by: String,
    /// The request method (CSeq method), upper-case as received.
    pub method: String,
}

/// What to do with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A new transaction: hand the request to the application.
    New,
    /// A retransmission while the application works on it: nothing to do.
    Absorb,
    /// A retransmission of a request already answered: send this response again.
    Resend(Vec<u8>),
}

struct ServerTransaction {
    /// The last response sent, to answer retransmissions with.
    last_response: Option<Vec<u8>>,
    /// Clock time at which a completed transaction is forgotten.
    forget_at: Option<u64>,
    /// When it started; an unanswered transaction is dropped after timer F's span, so one the
    /// application never answers does not leak.
    started: u64,
}

/// The server transactions of one SIP stack.
#[derive(Default)]
pub struct ServerTransactions {
    timers: Timers,
    by_key: HashMap<Arc<ServerKey>, ServerTransaction>,
    /// Transactions by arrival, for dropping the ones never answered.
    arrived: VecDeque<(u64, Arc<ServerKey>)>,
    /// Completed transactions by the time they are forgotten.
    completed: VecDeque<(u64, Arc<ServerKey>)>,
}

impl ServerTransactions {
    /// An empty table with these timer values.
    pub fn new(timers: Timers) -> ServerTransactions {
        ServerTransactions {
            timers,
            by_key: HashMap::new(),
            arrived: VecDeque::new(),
            completed: VecDeque::new(),
        }
    }

    /// A request arrived at clock time `now` (ms).
    pub fn arrive(&mut self, key: ServerKey, now: u64) -> Arrival {
        match self.by_key.get(&key) {
            Some(t) => match &t.last_response {
                Some(response) => Arrival::Resend(response.clone()),
                None => Arrival::Absorb,
            },
            None => {
                let key = Arc::new(key);
                self.arrived.push_back((now, key.clone()));
                self.by_key.insert(
                    key,
                    ServerTransaction {
                        last_response: None,
                        forget_at: None,
                        started: now,
                    },
                );
                Arrival::New
            }
        }
    }

    /// The application sends `response` (status `status`) in the transaction; `reliable`
    /// when the request came over TCP. Returns false when the transaction is unknown (it was
    /// already forgotten): the response is still worth sending once.
    pub fn respond(
        &mut self,
        key: &ServerKey,
        status: u16,
        response: Vec<u8>,
        reliable: bool,
        now: u64,
    ) -> bool {
        let Some((k, t)) = self.by_key.get_key_value(key) else {
            return false;
        };
        if status >= 200 {
            if reliable {
                // Timer J is zero over a reliable transport.
                self.by_key.remove(key);
                self.pop_answered_arrivals();
                return true;
            }
            // Timer J runs from the first final response.
            if t.forget_at.is_none() {
                let at = now + Timers::ms(self.timers.timeout());
                self.completed.push_back((at, k.clone()));
                let t = self.by_key.get_mut(key).expect("looked up above");
                t.forget_at = Some(at);
            }
        }
        let t = self.by_key.get_mut(key).expect("looked up above");
        t.last_response = Some(response);
        if status >= 200 {
            self.pop_answered_arrivals();
        }
        true
    }

    /// Drops the answered transactions from the front of the arrivals: their entry there
    /// is done with (timer J runs in `completed`), so the keys of a burst of answered
    /// requests are not held until the next timer round.
    fn pop_answered_arrivals(&mut self) {
        while let Some((started, key)) = self.arrived.front() {
            let unanswered = self
                .by_key
                .get(&**key)
                .is_some_and(|t| t.forget_at.is_none() && t.started == *started);
            if unanswered {
                break;
            }
            self.arrived.pop_front();
        }
    }

    /// Forgets what is due at `now`.
    pub fn tick(&mut self, now: u64) {
        while let Some((at, key)) = self.completed.front() {
            if *at > now {
                break;
            }
            if self
                .by_key
                .get(&**key)
                .is_some_and(|t| t.forget_at.is_some_and(|f| f <= now))
            {
                self.by_key.remove(&**key);
            }
            self.completed.pop_front();
        }
        let stale = Timers::ms(self.timers.timeout()) * 2;
        // An answered transaction's entry here is done with at once (its Timer J runs in
        // `completed`): popped as soon as it reaches the front, not after `stale`, so the
        // keys of a burst of answered requests are not held for twice Timer J (about 160
        // bytes a request: after 10,000 SUBSCRIBEs, 1.6 MB for a minute).
        while let Some((started, key)) = self.arrived.front() {
            let unanswered = self
                .by_key
                .get(&**key)
                .is_some_and(|t| t.forget_at.is_none() && t.started == *started);
            if unanswered {
                if started + stale > now {
                    break;
                }
                self.by_key.remove(&**key);
            }
            self.arrived.pop_front();
        }
        let len = self.by_key.len();
        shrink_map(&mut self.by_key, len);
        shrink_deque(&mut self.arrived);
        shrink_deque(&mut self.completed);
    }

    /// The earliest clock time at which [`ServerTransactions::tick`] may have work: the
    /// first completed transaction's timer J, and the first arrival's staleness.
    pub fn next_deadline(&self) -> Option<u64> {
        let stale = Timers::ms(self.timers.timeout()) * 2;
        // (Answered arrivals leave the front when they are answered.)
        let arrived = self.arrived.front().map(|(started, _)| started + stale);
        [self.completed.front().map(|(at, _)| *at), arrived]
            .into_iter()
            .flatten()
            .min()
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Below this many slots a table is not worth shrinking. Low: a transaction is a few hundred
/// bytes (a client one keeps its request for retransmission), so 1,024 idle slots were
/// 200 KB held for good.
const SHRINK_FLOOR: usize = 64;

/// Gives back most of a table's room once a burst has passed (a table keeps the size of its
/// busiest moment otherwise: after 10,000 SUBSCRIBEs in two seconds, room for 16,384
/// transactions for good, more than the subscriptions themselves need).
fn shrink_map<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
    len: usize,
) {
    if map.capacity() > SHRINK_FLOOR && len < map.capacity() / 4 {
        map.shrink_to(len * 2);
    }
}

fn shrink_deque<T>(queue: &mut VecDeque<T>) {
    if queue.capacity() > SHRINK_FLOOR && queue.len() < queue.capacity() / 4 {
        queue.shrink_to(queue.len() * 2);
    }
}

/// Where a client transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Trying,
    Proceeding,
    Completed,
}

struct ClientTransaction<T> {
    state: ClientState,
    request: Vec<u8>,
    dest: SocketAddr,
    /// Next retransmission (timer E), clock ms; `None` over TCP and once completed.
    retransmit_at: Option<u64>,
    interval: u64,
    /// Timer F until completed, then timer K.
    deadline: u64,
    /// The application's own data about the request (e.g. which subscription it notifies),
    /// given back with the outcome.
    context: Option<T>,
}

impl<T> ClientTransaction<T> {
    /// When its next timer falls due.
    fn next_due(&self) -> u64 {
        self.retransmit_at
            .map_or(self.deadline, |r| r.min(self.deadline))
    }
}

/// What the client side asks the caller to do or learn.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAction<T> {
    /// Send these bytes again to `dest` (timer E).
    Retransmit {
        /// Where.
        dest: SocketAddr,
        /// The request.
        request: Vec<u8>,
    },
    /// No final response came in time (timer F): the request failed.
    TimedOut(T),
}

/// A client transaction's place in the timer heap: when it is next due. Entries compare by
/// time alone, reversed (the heap's top is the earliest); which of two entries due at the
/// same millisecond comes first does not matter, so branches are never compared.
struct Due {
    at: u64,
    branch: Arc<str>,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

/// Hashes the branches of the client table: FxHash (rustc's multiply-and-rotate over 8-byte
/// words), several times cheaper than the default SipHash, which the table is looked up with
/// four times per NOTIFY. SipHash's guard against keys chosen to collide is not needed here:
/// the keys are this server's own branches; what peers send only looks them up.
#[derive(Default, Clone, Copy)]
struct BranchHasher(u64);

impl BranchHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for BranchHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest; the table picks buckets by them.
        self.0.rotate_left(26)
    }
}

/// The client transactions of one SIP stack, keyed by the branch they were sent with. `T` is
/// what the application wants back with the outcome.
pub struct ClientTransactions<T> {
    timers: Timers,
    by_branch: HashMap<Arc<str>, ClientTransaction<T>, BuildHasherDefault<BranchHasher>>,
    /// Transactions over UDP until their first timer E (T1 after the start), in start order.
    starting: VecDeque<(u64, Arc<str>)>,
    /// The other timers of transactions not completed: when each was next due when its entry
    /// was made.
    due: BinaryHeap<Due>,
    /// The completed ones (over UDP), in the order timer K ends them.
    lingering: VecDeque<(u64, Arc<str>)>,
    /// Whether a transaction answered over UDP stays `Completed` for timer K (RFC 3261
    /// §17.1.2.2) rather than ending at its final response (see
    /// [`ClientTransactions::without_timer_k`]).
    timer_k: bool,
}

impl<T> ClientTransactions<T> {
    /// An empty table with these timer values.
    pub fn new(timers: Timers) -> ClientTransactions<T> {
        ClientTransactions {
            timers,
            by_branch: HashMap::default(),
            starting: VecDeque::new(),
            due: BinaryHeap::new(),
            lingering: VecDeque::new(),
            timer_k: true,
        }
    }

    /// A table whose transactions end at their final response over UDP too, as over TCP:
    /// a retransmitted final response then finds no transaction and is dropped by the
    /// caller, which is all the `Completed` state would do with it. What it saves is the
    /// state of every transaction answered in the last T4 (5 s): under a storm of NOTIFYs,
    /// which are answered at once, that was most of a SIP server's heap (about 200 bytes a
    /// NOTIFY: tens of MB at 40,000 NOTIFYs a second).
    pub fn without_timer_k(mut self) -> ClientTransactions<T> {
        self.timer_k = false;
        self
    }

    /// Starts a transaction for `request` (the caller sends it once now) with the Via branch
    /// `branch`; `reliable` over TCP (no retransmissions).
    pub fn start(
        &mut self,
        branch: String,
        request: Vec<u8>,
        dest: SocketAddr,
        reliable: bool,
        context: T,
        now: u64,
    ) {
        let t1 = Timers::ms(self.timers.t1);
        let branch: Arc<str> = branch.into();
        let t = ClientTransaction {
            state: ClientState::Trying,
            request: if reliable { Vec::new() } else { request },
            dest,
            retransmit_at: (!reliable).then_some(now + t1),
            interval: t1,
            deadline: now + Timers::ms(self.timers.timeout()),
            context: Some(context),
        };
        if reliable {
            self.due.push(Due {
                at: t.next_due(),
                branch: branch.clone(),
            });
        } else {
            self.starting.push_back((t.next_due(), branch.clone()));
        }
        // A branch used again replaces the older transaction; its timer entries then serve
        // the new one (an extra early look is harmless).
        self.by_branch.insert(branch, t);
    }

    /// The context of the transaction of `branch`, while it waits for its final response.
    pub fn pending(&self, branch: &str) -> Option<&T> {
        self.by_branch
            .get(branch)
            .filter(|t| t.state != ClientState::Completed)
            .and_then(|t| t.context.as_ref())
    }

    /// A response with `status` arrived for the transaction of `branch`, sent over a
    /// `reliable` transport or not. A final response gives back the application's context,
    /// once (a retransmitted final is absorbed).
    pub fn respond(&mut self, branch: &str, status: u16, reliable: bool, now: u64) -> Option<T> {
        let (key, _) = self.by_branch.get_key_value(branch)?;
        let key = key.clone();
        let t = self.by_branch.get_mut(branch)?;
        if t.state == ClientState::Completed {
            return None;
        }
        if status < 200 {
            t.state = ClientState::Proceeding;
            // Retransmissions slow down to T2 once the peer said it is working on it.
            t.interval = Timers::ms(self.timers.t2);
            return None;
        }
        let context = t.context.take();
        if reliable || !self.timer_k {
            // Timer K is zero over a reliable transport (and in a table without it).
            self.by_branch.remove(branch);
        } else {
            t.state = ClientState::Completed;
            t.retransmit_at = None;
            t.request = Vec::new();
            t.deadline = now + Timers::ms(self.timers.t4);
            self.lingering.push_back((t.deadline, key));
        }
        context
    }

    /// Runs the timers due at `now`: retransmissions to send, transactions that timed out.
    pub fn tick(&mut self, now: u64) -> Vec<ClientAction<T>> {
        let mut actions = Vec::new();
        while let Some((at, _)) = self.starting.front() {
            if *at > now {
                break;
            }
            let (_, branch) = self.starting.pop_front().expect("looked at");
            self.fire(branch, now, &mut actions);
        }
        while let Some(Due { at, .. }) = self.due.peek() {
            if *at > now {
                break;
            }
            let Due { branch, .. } = self.due.pop().expect("peeked");
            self.fire(branch, now, &mut actions);
        }
        while let Some((at, _)) = self.lingering.front() {
            if *at > now {
                break;
            }
            let (_, branch) = self.lingering.pop_front().expect("looked at");
            // Unless the branch now names a newer transaction (its deadline is later).
            if let Entry::Occupied(t) = self.by_branch.entry(branch) {
                if t.get().state == ClientState::Completed && t.get().deadline <= now {
                    t.remove();
                }
            }
        }
        shrink_deque(&mut self.starting);
        shrink_deque(&mut self.lingering);
        let len = self.by_branch.len();
        shrink_map(&mut self.by_branch, len);
        if self.due.capacity() > SHRINK_FLOOR && self.due.len() < self.due.capacity() / 4 {
            self.due.shrink_to(self.due.len() * 2);
        }
        actions
    }

    /// A timer of the transaction of `branch` fell due (E or F; K is run apart): the
    /// retransmission or timeout it calls for goes to `actions`, and its next timer to the
    /// heap.
    fn fire(&mut self, branch: Arc<str>, now: u64, actions: &mut Vec<ClientAction<T>>) {
        let Some(t) = self.by_branch.get_mut(&*branch) else {
            return; // answered over TCP, or replaced and gone
        };
        if t.state == ClientState::Completed {
            return; // timer K is run from `lingering`
        }
        if now >= t.deadline {
            if let Some(context) = t.context.take() {
                actions.push(ClientAction::TimedOut(context));
            }
            self.by_branch.remove(&*branch);
            return;
        }
        if let Some(at) = t.retransmit_at {
            if now >= at {
                actions.push(ClientAction::Retransmit {
                    dest: t.dest,
                    request: t.request.clone(),
                });
                let t2 = Timers::ms(self.timers.t2);
                t.interval = match t.state {
                    ClientState::Trying => (t.interval * 2).min(t2),
                    _ => t2,
                };
                t.retransmit_at = Some(now + t.interval);
            }
        }
        self.due.push(Due {
            at: t.next_due(),
            branch,
        });
    }

    /// The earliest clock time at which [`ClientTransactions::tick`] may have work.
    pub fn next_deadline(&self) -> Option<u64> {
        [
            self.starting.front().map(|(at, _)| *at),
            self.due.peek().map(|d| d.at),
            self.lingering.front().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by_branch.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_branch.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(branch: &str) -> ServerKey {
        ServerKey {
            branch: branch.into(),
            sent_by: "192.0.2.1:5060".into(),
            method: "PUBLISH".into(),
        }
    }

    #[test]
    fn server_absorbs_then_resends_then_forgets() {
        let mut s = ServerTransactions::new(Timers::default());
        assert_eq!(s.arrive(key("z9hG4bK1"), 0), Arrival::New);
        assert_eq!(s.arrive(key("z9hG4bK1"), 10), Arrival::Absorb);
        assert!(s.respond(&key("z9hG4bK1"), 100, b"100".to_vec(), false, 20));
        assert_eq!(
            s.arrive(key("z9hG4bK1"), 30),
            Arrival::Resend(b"100".to_vec())
        );
        assert!(s.respond(&key("z9hG4bK1"), 200, b"200".to_vec(), false, 40));
        assert_eq!(
            s.arrive(key("z9hG4bK1"), 50),
            Arrival::Resend(b"200".to_vec())
        );
        // Another method with the same branch is another transaction.
        let mut other = key("z9hG4bK1");
        other.method = "SUBSCRIBE".into();
        assert_eq!(s.arrive(other, 60), Arrival::New);
        s.tick(40 + 32_000 - 1);
        assert_eq!(
            s.arrive(key("z9hG4bK1"), 40 + 32_000 - 1),
            Arrival::Resend(b"200".to_vec())
        );
        s.tick(40 + 32_000);
        assert_eq!(s.arrive(key("z9hG4bK1"), 40 + 32_000), Arrival::New);
    }

    #[test]
    fn server_over_tcp_forgets_at_the_final_response_and_drops_the_unanswered() {
        let mut s = ServerTransactions::new(Timers::default());
        assert_eq!(s.arrive(key("a"), 0), Arrival::New);
        assert!(s.respond(&key("a"), 202, b"202".to_vec(), true, 1));
        assert!(s.is_empty());
        assert!(!s.respond(&key("a"), 200, b"200".to_vec(), true, 2));
        assert_eq!(s.arrive(key("b"), 0), Arrival::New);
        s.tick(64_000);
        assert!(s.is_empty(), "an unanswered transaction does not leak");
    }

    #[test]
    fn answered_requests_are_not_held_past_timer_j() {
        let mut s = ServerTransactions::new(Timers::default());
        for n in 0..100u64 {
            let k = key(&format!("z9hG4bK{n}"));
            assert_eq!(s.arrive(k.clone(), n), Arrival::New);
            assert!(s.respond(&k, 200, b"200".to_vec(), false, n));
        }
        // One left unanswered, behind the others.
        assert_eq!(s.arrive(key("late"), 200), Arrival::New);
        s.tick(300);
        assert_eq!(
            s.arrived.len(),
            1,
            "answered ones leave the arrival queue at once"
        );
        s.tick(99 + 32_000);
        assert_eq!(s.len(), 1, "Timer J ended the answered ones");
        assert_eq!(s.completed.len(), 0);
        s.tick(200 + 64_000);
        assert!(s.is_empty() && s.arrived.is_empty());
    }

    #[test]
    fn client_retransmits_at_timer_e_and_times_out_at_timer_f() {
        let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut c = ClientTransactions::new(Timers::default());
        c.start("b1".into(), b"NOTIFY".to_vec(), dest, false, 7u32, 0);
        let mut sent_at = Vec::new();
        let mut timed_out = None;
        for now in (0..=40_000).step_by(50) {
            for action in c.tick(now) {
                match action {
                    ClientAction::Retransmit { request, .. } => {
                        assert_eq!(request, b"NOTIFY");
                        sent_at.push(now);
                    }
                    ClientAction::TimedOut(ctx) => timed_out = Some((now, ctx)),
                }
            }
        }
        // 500, 1500, 3500, 7500, then every 4 s until 32 s.
        assert_eq!(&sent_at[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(sent_at.windows(2).skip(3).all(|w| w[1] - w[0] == 4000));
        assert_eq!(timed_out, Some((32_000, 7)));
        assert!(c.is_empty());
    }

    #[test]
    fn client_final_response_gives_the_context_once() {
        let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut c = ClientTransactions::new(Timers::default());
        c.start("b1".into(), b"MESSAGE".to_vec(), dest, false, "ctx", 0);
        assert_eq!(c.respond("b1", 100, false, 100), None);
        // Proceeding: retransmissions every T2.
        assert!(c.tick(499).is_empty());
        assert_eq!(c.tick(500).len(), 1);
        assert!(c.tick(4499).is_empty());
        assert_eq!(c.tick(4500).len(), 1);
        assert_eq!(c.respond("b1", 200, false, 5000), Some("ctx"));
        assert_eq!(
            c.respond("b1", 200, false, 5001),
            None,
            "retransmitted final absorbed"
        );
        assert!(c.tick(9999).is_empty());
        assert_eq!(c.len(), 1);
        assert!(c.tick(10_000).is_empty(), "timer K ends it silently");
        assert!(c.is_empty());
        // Over TCP: no retransmission, gone at the final response.
        c.start("b2".into(), b"MESSAGE".to_vec(), dest, true, "tcp", 0);
        assert!(c.tick(10_000).is_empty());
        assert_eq!(c.respond("b2", 481, true, 10_001), Some("tcp"));
        assert!(c.is_empty());
        assert_eq!(c.respond("unknown", 200, false, 0), None);
    }

    #[test]
    fn without_timer_k_a_transaction_ends_at_its_final_response() {
        let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut c = ClientTransactions::new(Timers::default()).without_timer_k();
        c.start("b1".into(), b"NOTIFY".to_vec(), dest, false, "ctx", 0);
        assert_eq!(c.respond("b1", 200, false, 10), Some("ctx"));
        assert!(c.is_empty());
        assert_eq!(
            c.respond("b1", 200, false, 11),
            None,
            "a repeat finds nothing"
        );
        assert!(c.tick(500).is_empty(), "nothing to retransmit");
        assert!(c.tick(40_000).is_empty());
    }

    #[test]
    fn timer_k_of_a_branch_used_again_spares_the_newer_transaction() {
        let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut c = ClientTransactions::new(Timers::default());
        c.start("b".into(), b"NOTIFY".to_vec(), dest, false, 1, 0);
        assert_eq!(c.respond("b", 200, false, 10), Some(1));
        assert_eq!(
            c.next_deadline(),
            Some(500),
            "timer E's entry is still queued"
        );
        assert!(
            c.tick(500).is_empty(),
            "a completed transaction is not retransmitted"
        );
        assert_eq!(c.next_deadline(), Some(5010), "timer K");
        // The branch names a new transaction before the old one's timer K runs out.
        c.start("b".into(), b"NOTIFY".to_vec(), dest, false, 2, 1000);
        assert!(c
            .tick(5010)
            .iter()
            .all(|a| matches!(a, ClientAction::Retransmit { .. })));
        assert_eq!(c.len(), 1, "the new transaction stays");
        assert_eq!(c.respond("b", 200, false, 5020), Some(2));
        assert!(c.tick(10_019).is_empty());
        assert_eq!(c.len(), 1);
        assert!(c.tick(10_020).is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn timers_forget_exactly_what_is_due_among_many() {
        let timers = Timers::default();
        let mut server = ServerTransactions::new(timers);
        let mut client: ClientTransactions<u32> = ClientTransactions::new(timers);
        let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        for n in 0..1000u32 {
            let now = u64::from(n);
            assert_eq!(
                server.arrive(key(&format!("z9hG4bK{n}")), now),
                Arrival::New
            );
            if n % 2 == 0 {
                server.respond(&key(&format!("z9hG4bK{n}")), 200, b"x".to_vec(), false, now);
                // A final response sent again does not restart timer J.
                server.respond(
                    &key(&format!("z9hG4bK{n}")),
                    200,
                    b"x".to_vec(),
                    false,
                    now + 1,
                );
            }
            client.start(format!("c{n}"), b"NOTIFY".to_vec(), dest, false, n, now);
            if n % 2 == 0 {
                assert_eq!(client.respond(&format!("c{n}"), 200, false, now), Some(n));
            }
        }
        // Timer J (32 s) has run out for the answered ones that came first; the unanswered
        // ones live twice as long.
        server.tick(32_000 + 499);
        assert_eq!(server.len(), 1000 - 250);
        server.tick(64_000 + 999);
        assert!(server.is_empty());
        // Timer K (5 s) for the answered, timer F (32 s) for the rest, which were
        // retransmitted meanwhile and then time out once each.
        let mut retransmits = 0;
        let mut timed_out = Vec::new();
        for now in (0..40_000).step_by(100) {
            for action in client.tick(now) {
                match action {
                    ClientAction::Retransmit { .. } => retransmits += 1,
                    ClientAction::TimedOut(n) => timed_out.push(n),
                }
            }
            if now == 6_000 {
                assert_eq!(client.len(), 500);
            }
        }
        assert!(client.is_empty());
        timed_out.sort_unstable();
        assert_eq!(
            timed_out,
            (0..1000).filter(|n| n % 2 == 1).collect::<Vec<_>>()
        );
        assert!(retransmits >= 500 * 5);
        assert_eq!(client.next_deadline(), None);
    }
}
