//! Engine configuration: every option with a documented default.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, SystemClock};
use super::limits::StateLimits;
use crate::doc::Limits;
use crate::error::{Error, Result};
use crate::model::rule::AuthAction;
use crate::store::{MemoryStore, Store};
use crate::uri::Uri;

/// Accepted expiries of a kind of soft state, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryBounds {
    /// Used when the requester names none.
    pub default: u32,
    /// Shorter requests are refused as too brief (SIP: 423 with Min-Expires).
    pub min: u32,
    /// Longer requests are shortened to this.
    pub max: u32,
}

impl ExpiryBounds {
    /// The expiry granted for `requested` seconds (`None`: the default).
    pub fn grant(&self, requested: Option<u32>, what: &str) -> Result<u32> {
        let asked = requested.unwrap_or(self.default);
        if asked < self.min {
            return Err(Error::IntervalTooBrief(format!(
                "{what} expiry of {asked} s is below the minimum of {} s",
                self.min
            )));
        }
        Ok(asked.min(self.max))
    }
}

/// How an [`super::Engine`] is set up. Build it with [`EngineConfig::default`] and adjust
/// fields; `Engine::new` checks it.
#[derive(Clone)]
pub struct EngineConfig {
    /// Domains this engine owns (empty: every domain is local).
    pub domains: Vec<String>,
    /// Worker (shard) threads; presentities are spread over them by a hash of their URI.
    /// Default: the number of cores.
    pub workers: usize,
    /// Expiry bounds of publications. Default 3600 s, min 60 s, max 86400 s.
    pub publication_expiry: ExpiryBounds,
    /// Expiry bounds of subscriptions. Default 3600 s, min 60 s, max 86400 s.
    pub subscription_expiry: ExpiryBounds,
    /// Events the queue holds before notifications start merging. Default 65536.
    pub queue_capacity: usize,
    /// What happens to a watcher no rule mentions. Default: `Confirm` (the presentity
    /// decides, RFC 3856 §6).
    pub default_policy: AuthAction,
    /// What happens instead to a watcher no rule mentions whose URI host is the presentity's
    /// own (compared case-insensitively, no subdomains; a `tel` URI has no host and is never
    /// of a domain). `None`: [`EngineConfig::default_policy`] for every watcher. Rules win
    /// over both ([`crate::engine::authorization`]). Default: `None`.
    pub same_domain_policy: Option<AuthAction>,
    /// Minimum time between two notifications of one subscription (RFC 6446); changes
    /// inside it merge into one notification. Default: none.
    pub min_notify_interval: Duration,
    /// Who may watch any presentity's watchers (besides the presentity itself).
    pub winfo_admins: Vec<Uri>,
    /// Limits applied to documents given as text.
    pub limits: Limits,
    /// Expiry bounds of endpoint logins. Default 3600 s, min 60 s, max 86400 s.
    pub endpoint_expiry: ExpiryBounds,
    /// Largest instant message body in bytes; larger ones fail as `too-large`.
    /// Default 65536.
    pub max_message_size: usize,
    /// How long a message stored for an offline recipient is kept before it fails as
    /// `expired`. Default 7 days.
    pub message_expiry: Duration,
    /// How long a message handed to a transport's devices (registered SIP contacts) waits
    /// for one of them to take it; then it is stored as for an offline user (its sender
    /// hears `stored`) and handed over again at the user's next login. Well under a SIP
    /// sender's own 32 s transaction timeout, so the sender hears the outcome. Default 8 s.
    pub handover_timeout: Duration,
    /// Whether a logged-in endpoint of a user who publishes no presence makes the user
    /// appear `open` (one minimal tuple per endpoint, withdrawn at logout). Default: no.
    pub endpoint_presence: bool,
    /// Bounds on the state one user, watcher or presentity makes the engine keep (stored
    /// messages, subscriptions, endpoints); see [`StateLimits`] for each default.
    pub state_limits: StateLimits,
    /// The clock. Default: the system's monotonic clock.
    pub clock: Arc<dyn Clock>,
    /// The seed of the engine's one random generator (entity tags, and the SIP stack's tags,
    /// branches and jitter, which it draws from the engine). Default `None`: seeded from the
    /// operating system's per-process random keys. A fixed seed makes runs repeatable (tests).
    pub random_seed: Option<u64>,
    /// Durable state. Default: in memory, without soft state ([`MemoryStore::volatile`]);
    /// give an [`crate::store::SqliteStore`] to keep state across restarts.
    pub store: Arc<dyn Store>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let bounds = ExpiryBounds {
            default: 3600,
            min: 60,
            max: 86400,
        };
        EngineConfig {
            domains: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            publication_expiry: bounds,
            subscription_expiry: bounds,
            endpoint_expiry: bounds,
            max_message_size: 65536,
            message_expiry: Duration::from_secs(7 * 24 * 3600),
            handover_timeout: Duration::from_secs(8),
            endpoint_presence: false,
            queue_capacity: 65536,
            default_policy: AuthAction::Confirm,
            same_domain_policy: None,
            min_notify_interval: Duration::ZERO,
            winfo_admins: Vec::new(),
            limits: Limits::DEFAULT,
            state_limits: StateLimits::default(),
            clock: Arc::new(SystemClock::new()),
            random_seed: None,
            store: Arc::new(MemoryStore::volatile()),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("domains", &self.domains)
            .field("workers", &self.workers)
            .field("publication_expiry", &self.publication_expiry)
            .field("subscription_expiry", &self.subscription_expiry)
            .field("endpoint_expiry", &self.endpoint_expiry)
            .field("max_message_size", &self.max_message_size)
            .field("message_expiry", &self.message_expiry)
            .field("endpoint_presence", &self.endpoint_presence)
            .field("queue_capacity", &self.queue_capacity)
            .field("default_policy", &self.default_policy)
            .field("same_domain_policy", &self.same_domain_policy)
            .field("min_notify_interval", &self.min_notify_interval)
            .field("state_limits", &self.state_limits)
            .finish_non_exhaustive()
    }
}

/// Refuses a redirect as a policy: a redirect needs a target, which only a rule or a
/// decision on one subscription gives.
pub(crate) fn check_policies(default: AuthAction, same_domain: Option<AuthAction>) -> Result<()> {
    if default == AuthAction::Redirect || same_domain == Some(AuthAction::Redirect) {
        return Err(Error::InvalidArgument(
            "redirect is no policy (it needs a target: give it with a rule)".into(),
        ));
    }
    Ok(())
}

impl EngineConfig {
    /// Checks the options together.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 || self.workers > 256 {
            return Err(Error::InvalidArgument(format!(
                "workers must be between 1 and 256, not {}",
                self.workers
            )));
        }
        if self.queue_capacity == 0 {
            return Err(Error::InvalidArgument(
                "queue_capacity must be at least 1".into(),
            ));
        }
        for (what, b) in [
            ("publication", self.publication_expiry),
            ("subscription", self.subscription_expiry),
            ("endpoint", self.endpoint_expiry),
        ] {
            if b.min > b.max || b.default < b.min || b.default > b.max {
                return Err(Error::InvalidArgument(format!(
                    "{what} expiry bounds must satisfy min <= default <= max (got {} <= {} <= {})",
                    b.min, b.default, b.max
                )));
            }
        }
        if self.message_expiry.is_zero() {
            return Err(Error::InvalidArgument(
                "message_expiry must be above zero".into(),
            ));
        }
        self.state_limits.validate()?;
        check_policies(self.default_policy, self.same_domain_policy)?;
        Ok(())
    }

    /// What happens to `watcher` asking to watch `presentity` when no rule mentions it:
    /// [`EngineConfig::same_domain_policy`] when set and the two share a host, else
    /// [`EngineConfig::default_policy`].
    pub fn policy_for(&self, presentity: &Uri, watcher: &Uri) -> AuthAction {
        match self.same_domain_policy {
            Some(action)
                if !watcher.host().is_empty()
                    && watcher.host().eq_ignore_ascii_case(presentity.host()) =>
            {
                action
            }
            _ => self.default_policy,
        }
    }

    /// Whether the engine owns `uri`'s domain (every domain when none is configured).
    pub fn owns(&self, uri: &Uri) -> bool {
        self.domains.is_empty()
            || self
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(uri.host()))
    }
}

/// The part of an [`EngineConfig`] that [`crate::engine::Core::set_runtime_settings`]
/// replaces while the engine runs (an operator's reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// As [`EngineConfig::default_policy`].
    pub default_policy: AuthAction,
    /// As [`EngineConfig::same_domain_policy`].
    pub same_domain_policy: Option<AuthAction>,
    /// As [`EngineConfig::state_limits`].
    pub state_limits: StateLimits,
}

impl RuntimeSettings {
    /// The settings `config` starts with.
    pub fn of(config: &EngineConfig) -> RuntimeSettings {
        RuntimeSettings {
            default_policy: config.default_policy,
            same_domain_policy: config.same_domain_policy,
            state_limits: config.state_limits,
        }
    }
}
