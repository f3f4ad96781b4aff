//! The resolver: the one place SIP roles ask for a destination's next hops.
//!
//! A cached destination is answered in place, on the caller's thread (a lock, a hash
//! lookup, the SRV order drawn: well under a microsecond). Any other is queued for the
//! resolver thread, and the caller's continuation runs there when the answer is in: the
//! SIP I/O thread and the workers never wait for the network. Requests waiting for one name
//! share its lookups; the queue of waiting requests is bounded, and a request beyond the
//! bound is refused at once ([`ResolveError::QueueFull`]) rather than held.
//!
//! A cached answer whose TTL ran out is still handed out for a while ([`ResolverConfig::
//! stale`], RFC 8767 "serve stale") while the resolver thread refreshes it, first in line:
//! a name in use never waits behind names that are slow to resolve, and keeps working when
//! the DNS server is briefly away.
//!
//! Next hops that answered `503` with `Retry-After` are avoided for that long (RFC 3263
//! §4.3): left out of the hops handed out, unless every hop is avoided.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::cache::Cache;
use super::destination::Destination;
use super::procedure::{resolve, Answer, ResolveError};
use super::wire::Wire;
use crate::engine::Clock;
use crate::sip::route::NextHop;
use crate::sip::stack::lock;

/// How the resolver is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The DNS server asked (recursive). `None`: the first `nameserver` of
    /// `/etc/resolv.conf` ([`ResolverConfig::system_server`]); without one, every lookup
    /// fails with a clear error.
    pub server: Option<SocketAddr>,
    /// How long one try waits for its answer. Default 2 s.
    pub timeout: Duration,
    /// Tries over UDP of one query. Default 2.
    pub tries: u32,
    /// Requests waiting for names being resolved, at most. Default 1024.
    pub queue: usize,
    /// Answers kept, at most. Default 10,000.
    pub cache_size: usize,
    /// Seconds a negative answer is kept when the server sends no SOA. Default 30.
    pub negative_ttl: u32,
    /// The most a negative answer is kept, whatever its SOA says. Default 300 s.
    pub max_negative_ttl: u32,
    /// The most any answer is kept. Default one day.
    pub max_ttl: u32,
    /// How long an expired answer is still handed out while it is refreshed (RFC 8767).
    /// Default 60 s.
    pub stale: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            server: None,
            timeout: Duration::from_secs(2),
            tries: 2,
            queue: 1024,
            cache_size: 10_000,
            negative_ttl: 30,
            max_negative_ttl: 300,
            max_ttl: 86_400,
            stale: Duration::from_secs(60),
        }
    }
}

impl ResolverConfig {
    /// The first `nameserver` of `/etc/resolv.conf`, on port 53.
    pub fn system_server() -> Option<SocketAddr> {
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.split('%').next()?.parse().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
    }
}

/// Counts about the resolver (for operators and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Destinations answered from the cache.
    pub cache_hits: u64,
    /// Destinations resolved on the resolver thread (each a NAPTR/SRV/A walk), counted once
    /// the answer is in the cache.
    pub resolutions: u64,
    /// Resolutions that failed (the DNS server failed or did not answer).
    pub failures: u64,
    /// Requests refused because the queue was full.
    pub queue_full: u64,
    /// Requests waiting now.
    pub waiting: u64,
    /// Expired answers handed out while they were refreshed.
    pub stale_hits: u64,
}

/// What a request waiting for a name is continued with.
pub type Continuation = Box<dyn FnOnce(Result<Vec<NextHop>, ResolveError>) + Send>;

/// The outcome of [`Resolver::resolve`].
#[derive(Debug)]
pub enum Resolution {
    /// Answered in place (a numeric host, a cached answer, or a refusal): the continuation
    /// was not kept and will not run.
    Ready(Result<Vec<NextHop>, ResolveError>),
    /// Queued: the continuation runs on the resolver thread when the answer is in.
    Pending,
}

/// The waiting requests, by destination, and the order destinations are resolved in.
#[derive(Default)]
struct Queue {
    order: VecDeque<Destination>,
    waiting: HashMap<Destination, Vec<Continuation>>,
    count: usize,
    stopped: bool,
}

struct Shared {
    config: ResolverConfig,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Fn() -> u64 + Send + Sync>,
    cache: Mutex<Cache>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Hops avoided until a clock time (ms); `avoiding` spares the lock while it is empty.
    avoid: Mutex<HashMap<NextHop, u64>>,
    avoiding: AtomicBool,
    hits: AtomicU64,
    stale_hits: AtomicU64,
    resolutions: AtomicU64,
    failures: AtomicU64,
    queue_full: AtomicU64,
}

/// See the module documentation.
pub struct Resolver {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Resolver {
    /// Starts the resolver thread. `clock` times the cache; `random` gives the SRV draws and
    /// query ids.
    pub fn start(
        config: ResolverConfig,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> crate::error::Result<Resolver> {
        let shared = Arc::new(Shared {
            cache: Mutex::new(Cache::new(config.cache_size)),
            config,
            clock,
            random,
            queue: Mutex::default(),
            wake: Condvar::new(),
            avoid: Mutex::default(),
            avoiding: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            stale_hits: AtomicU64::new(0),
            resolutions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("impp-dns".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                crate::error::Error::Internal(format!("cannot start the DNS thread: {e}"))
            })?;
        Ok(Resolver {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The next hops of `dest`: in place when it is numeric or cached, else
    /// [`Resolution::Pending`] and `then` runs on the resolver thread with them.
    pub fn resolve(&self, dest: &Destination, then: Continuation) -> Resolution {
        if let Some(hop) = dest.numeric() {
            return Resolution::Ready(Ok(vec![hop]));
        }
        if let Some(hops) = self.cached(dest) {
            return Resolution::Ready(hops);
        }
        let s = &self.shared;
        let mut q = lock(&s.queue);
        if q.stopped {
            return Resolution::Ready(Err(ResolveError::Stopped));
        }
        if q.count >= s.config.queue {
            s.queue_full.fetch_add(1, Ordering::Relaxed);
            return Resolution::Ready(Err(ResolveError::QueueFull));
        }
        q.count += 1;
        let first = !q.waiting.contains_key(dest);
        q.waiting.entry(dest.clone()).or_default().push(then);
        if first {
            q.order.push_back(dest.clone());
            s.wake.notify_one();
        }
        Resolution::Pending
    }

    /// The next hops of `dest` if its answer is cached and valid (or it is numeric), in a
    /// fresh SRV order; `None` otherwise (nothing is queued).
    pub fn cached(&self, dest: &Destination) -> Option<Result<Vec<NextHop>, ResolveError>> {
        if let Some(hop) = dest.numeric() {
            return Some(Ok(vec![hop]));
        }
        let (answer, now) = self.lookup(dest)?;
        Some(self.shared.hops(dest, &answer, now))
    }

    /// The IP addresses of `dest`'s targets if its answer is cached, as [`Resolver::cached`]
    /// finds it, every one of them: none is left out after a failure (who a server is does
    /// not change with how it answers); `None` otherwise (nothing is queued).
    pub fn cached_addresses(
        &self,
        dest: &Destination,
    ) -> Option<Result<Vec<std::net::IpAddr>, ResolveError>> {
        if let Some(hop) = dest.numeric() {
            return Some(Ok(vec![hop.addr.ip()]));
        }
        let (answer, _) = self.lookup(dest)?;
        if answer.is_empty() {
            return Some(Err(ResolveError::NotFound(dest.to_string())));
        }
        let mut ips: Vec<std::net::IpAddr> = answer
            .hops(&mut || (self.shared.random)())
            .iter()
            .map(|h| h.addr.ip())
            .collect();
        ips.sort();
        ips.dedup();
        Some(Ok(ips))
    }

    /// The next hops of `dest`, waiting at most `wait` for the resolver: for a thread that
    /// may wait (a server starting, a reload), never the I/O thread or a worker. `Err`: why
    /// there are none, in words.
    pub fn resolve_wait(&self, dest: &Destination, wait: Duration) -> Result<Vec<NextHop>, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let then = Box::new(move |found| {
            let _ = tx.send(found);
        });
        let found = match self.resolve(dest, then) {
            Resolution::Ready(found) => found,
            Resolution::Pending => rx
                .recv_timeout(wait)
                .map_err(|_| format!("no answer from the DNS in {} ms", wait.as_millis()))?,
        };
        match found {
            Ok(hops) if hops.is_empty() => Err("no address".to_string()),
            Ok(hops) => Ok(hops),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `dest`'s cached answer, valid or expired but still served (then refreshed first in
    /// line), and the clock time; counted as a hit.
    fn lookup(&self, dest: &Destination) -> Option<(Arc<Answer>, u64)> {
        let s = &self.shared;
        let now = s.clock.now_ms();
        let stale_ms = s.config.stale.as_millis() as u64;
        let (answer, expired) = {
            let cache = lock(&s.cache);
            let (answer, expired) = cache.get_stale(dest, now, stale_ms)?;
            (answer.clone(), expired)
        };
        if expired {
            s.stale_hits.fetch_add(1, Ordering::Relaxed);
            s.refresh(dest);
        } else {
            s.hits.fetch_add(1, Ordering::Relaxed);
        }
        Some((answer, now))
    }

    /// Leaves `hop` out of the hops handed out for `ms` (clock ms): it answered `503` with
    /// `Retry-After` (RFC 3263 §4.3).
    pub fn avoid(&self, hop: NextHop, ms: u64) {
        let s = &self.shared;
        let now = s.clock.now_ms();
        let mut avoid = lock(&s.avoid);
        avoid.retain(|_, until| *until > now);
        // Bounded like the cache: a flood of 503s cannot grow it without end.
        if avoid.len() < s.config.cache_size {
            avoid.insert(hop, now.saturating_add(ms));
        }
        s.avoiding.store(!avoid.is_empty(), Ordering::Release);
    }

    /// Counts so far.
    pub fn stats(&self) -> ResolverStats {
        let s = &self.shared;
        ResolverStats {
            cache_hits: s.hits.load(Ordering::Relaxed),
            resolutions: s.resolutions.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            queue_full: s.queue_full.load(Ordering::Relaxed),
            waiting: lock(&s.queue).count as u64,
            stale_hits: s.stale_hits.load(Ordering::Relaxed),
        }
    }

    /// Stops the resolver thread (after the lookup in progress); requests still waiting
    /// are continued with [`ResolveError::Stopped`].
    pub fn stop(&self) {
        lock(&self.shared.queue).stopped = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Queues `dest` first in line to be resolved again, unless it already is queued.
    fn refresh(&self, dest: &Destination) {
        let mut q = lock(&self.queue);
        if q.stopped || q.waiting.contains_key(dest) {
            return;
        }
        q.waiting.insert(dest.clone(), Vec::new());
        q.order.push_front(dest.clone());
        self.wake.notify_one();
    }

    /// The hops of a cached or fresh `answer`, avoided ones left out unless all are.
    fn hops(
        &self,
        dest: &Destination,
        answer: &Answer,
        now: u64,
    ) -> Result<Vec<NextHop>, ResolveError> {
        if answer.is_empty() {
            return Err(ResolveError::NotFound(dest.to_string()));
        }
        let mut hops = answer.hops(&mut || (self.random)());
        if self.avoiding.load(Ordering::Acquire) {
            let avoid = lock(&self.avoid);
            let usable = |h: &NextHop| !avoid.get(h).is_some_and(|until| *until > now);
            if hops.iter().any(usable) {
                hops.retain(usable);
            }
        }
        Ok(hops)
    }

    /// The resolver thread: one destination at a time, its waiters continued in turn.
    fn run(self: Arc<Self>) {
        let random = self.random.clone();
        let server = self.config.server.or_else(ResolverConfig::system_server);
        let mut wire = server.map(|server| Wire {
            server,
            timeout: self.config.timeout,
            tries: self.config.tries,
            negative_ttl: self.config.negative_ttl,
            max_negative_ttl: self.config.max_negative_ttl,
            random: Box::new(move || random()),
        });
        loop {
            let dest = {
                let mut q = lock(&self.queue);
                loop {
                    if q.stopped {
                        let waiting: Vec<Continuation> =
                            q.waiting.drain().flat_map(|(_, w)| w).collect();
                        q.order.clear();
                        q.count = 0;
                        drop(q);
                        for then in waiting {
                            then(Err(ResolveError::Stopped));
                        }
                        return;
                    }
                    if let Some(d) = q.order.pop_front() {
                        break d;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = match wire.as_mut() {
                Some(wire) => resolve(&dest, wire),
                None => Err(ResolveError::Failed(
                    "no DNS server (none given, none in /etc/resolv.conf)".into(),
                )),
            };
            let now = self.clock.now_ms();
            let answer = match result {
                Ok(answer) => {
                    let ttl = answer.ttl().min(self.config.max_ttl);
                    let answer = Arc::new(answer);
                    lock(&self.cache).insert(
                        dest.clone(),
                        answer.clone(),
                        now,
                        u64::from(ttl) * 1000,
                    );
                    self.resolutions.fetch_add(1, Ordering::Relaxed);
                    Ok(answer)
                }
                Err(e) => {
                    // A failed refresh leaves the stale answer in place until its time is up.
                    crate::log::info!("SIP: resolving {dest}: {e}");
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            };
            let waiting = {
                let mut q = lock(&self.queue);
                let w = q.waiting.remove(&dest).unwrap_or_default();
                q.count -= w.len();
                w
            };
            for then in waiting {
                then(match &answer {
                    Ok(a) => self.hops(&dest, a, now),
                    Err(e) => Err(e.clone()),
                });
            }
        }
    }
}
