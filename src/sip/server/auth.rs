//! Who may do what: the digest authentication (RFC 7616, 8760) and identity checks every
//! server role applies to the requests of the owned domains' users. Not a role: the roles
//! share one, made by the node.
//!
//! | credentials | answer | counted in [`GuardStats`] |
//! | --- | --- | --- |
//! | none | `401` with fresh challenges (nonces bound to the client's address) | |
//! | good | the request goes on | |
//! | good, but the nonce expired, was issued to another address, or its `nc` was used | `401 ... stale=true` | `nonce_replays` for a used `nc` |
//! | wrong password, unknown user, foreign nonce, malformed | `403 Forbidden`, the same whoever the user | `auth_failures` |
//! | from an address, for a user or a pair that failed too often ([`super::throttle`]) | `403 Forbidden (too many failed attempts)` with `Retry-After`, nothing checked | `auth_throttled` |
//!
//! A throttled client gets a `403` because that is what the guess itself would have got and
//! what makes phones stop retrying; SIP has no `429`, and a `503` would tell a client (RFC
//! 3263) or a proxy in front that the whole server is down. `Retry-After` says when checking
//! starts again. A used `nc` comes only from whoever computed the response (a nonce is
//! bound to the address it was sent to), so it is challenged afresh rather than treated as
//! a guess: a client that lost count recovers, a replayer learns nothing.
//!
//! Nothing here logs a header value: the reasons logged name the user and what was wrong,
//! never the response, a password or an HA1.
//!
//! [`GuardStats`]: crate::sip::GuardStats
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::EngineHandle;
use crate::log;
use crate::model::key::presentity_key;
use crate::sip::digest::{parse_authorization, DigestAuthenticator, Outcome};
use crate::sip::guard::GuardCounters;
use crate::sip::server::throttle::{Claimed, Throttle};
use crate::sip::stack::{Reply, Request, Stack};
use crate::uri::Uri;

/// Whether and how requests are challenged (see the node's configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Challenges {
    /// Whether requests must carry credentials at all.
    pub(crate) enabled: bool,
    /// Whether the SHA-256 challenge comes before the MD5 one.
    pub(crate) prefer_sha256: bool,
    /// Whether a SHA-256 challenge is offered at all.
    pub(crate) offer_sha256: bool,
}

/// The server roles' authentication: see the module documentation.
pub(crate) struct Authentication {
    stack: Arc<Stack>,
    engine: EngineHandle,
    digest: DigestAuthenticator,
    throttle: Throttle,
    /// Whether requests must carry credentials at all.
    enabled: bool,
    prefer_sha256: bool,
    offer_sha256: bool,
    /// The owned domains, the realms of their users.
    domains: Vec<String>,
}

impl Authentication {
    /// Checks for the users of `domains` (realms), as `config` says.
    pub(crate) fn new(
        stack: Arc<Stack>,
        engine: EngineHandle,
        digest: DigestAuthenticator,
        throttle: Throttle,
        domains: Vec<String>,
        challenges: Challenges,
    ) -> Authentication {
        Authentication {
            stack,
            engine,
            digest,
            throttle,
            enabled: challenges.enabled,
            prefer_sha256: challenges.prefer_sha256,
            offer_sha256: challenges.offer_sha256,
            domains,
        }
    }

    /// Checks the request's digest credentials; `Ok(None)` when authentication is off,
    /// `Ok(Some(user))` when they are good, `Err(answer)` (a challenge or a refusal)
    /// otherwise.
    pub(crate) fn authenticate(
        &self,
        request: &Request,
    ) -> std::result::Result<Option<Uri>, Reply> {
        if !self.enabled {
            self.stack.vouch(&request.peer);
            return Ok(None);
        }
        let method = request.key.method.as_str();
        let engine = match self.engine.get() {
            Ok(e) => e,
            Err(e) => return Err(self.stack.error_reply(request, &e)),
        };
        // A SUBSCRIBE from a user of another domain (federation) cannot be checked here: the
        // directory holds only this server's users. It may only watch (never act for a local
        // identity), and the presentity's rules decide what it sees. A MESSAGE from another
        // domain likewise (relayed by that domain's server, as a Kamailio with a route to us
        // does): it is delivered as from its foreign sender, whom the recipient may block.
        if (method == "SUBSCRIBE" || method == "MESSAGE")
            && request
                .message
                .from()
                .and_then(|f| f.uri())
                .is_ok_and(|u| !engine.config().owns(&u))
        {
            return Ok(None);
        }
        let lookup = |username: &str, realm: &str| {
            Uri::parse(&format!("sip:{username}@{realm}"))
                .ok()
                .and_then(|u| engine.user(&u))
        };
        let client = self
            .throttle
            .client_address(request.peer.source.ip(), &request.message);
        let now = self.stack.now();
        let guard = self.stack.guard();
        let mut refused = None;
        let mut stale = false;
        for value in request.message.headers("Authorization") {
            // Who the credentials claim to be, unchecked: what the throttle counts.
            let claimed: Option<Claimed> = parse_authorization(value)
                .ok()
                .map(|r| (r.username, r.realm));
            if let Some(wait_ms) = self.throttle.check(claimed.as_ref(), client, now) {
                log::debug!("SIP: {method} from {client} refused unchecked: too many failures");
                GuardCounters::count(&guard.auth_throttled);
                return Err(self.throttled(request, wait_ms));
            }
            match self.digest.verify_from(method, value, client, lookup) {
                Outcome::Authenticated { user } => {
                    self.stack.vouch(&request.peer);
                    if let Some(claimed) = &claimed {
                        self.throttle.succeeded(claimed, client, now);
                    }
                    return Ok(Some(user));
                }
                Outcome::Stale => stale = true,
                Outcome::Replayed(why) => {
                    log::info!("SIP: {method} from {client} challenged again: {why}");
                    GuardCounters::count(&guard.nonce_replays);
                    stale = true;
                }
                Outcome::Rejected(why) | Outcome::Malformed(why) => {
                    self.throttle.failed(claimed.as_ref(), client, now);
                    GuardCounters::count(&guard.auth_failures);
                    refused = Some(why);
                }
            }
        }
        if let (Some(why), false) = (&refused, stale) {
            log::info!("SIP: {method} from {client} refused: {why}");
            return Err(self.stack.reply(request, 403, "Forbidden"));
        }
        Err(self.challenge(request, client, stale))
    }

    /// `401` with a challenge per algorithm offered, bound to `client`.
    fn challenge(&self, request: &Request, client: IpAddr, stale: bool) -> Reply {
        let realm = self.realm_for(request);
        let mut b = self.stack.reply(request, 401, "Unauthorized");
        let mut challenges = self.digest.challenge_for(&realm, stale, client);
        if !self.prefer_sha256 {
            challenges.reverse(); // MD5 first (see SipServerConfig::prefer_sha256)
        }
        for challenge in challenges {
            if !self.offer_sha256 && challenge.contains("algorithm=SHA-256") {
                continue;
            }
            let _ = b.header("WWW-Authenticate", &challenge);
        }
        b
    }

    /// The refusal of a throttled request: checking starts again in `wait_ms`.
    fn throttled(&self, request: &Request, wait_ms: u64) -> Reply {
        let mut b = self
            .stack
            .reply(request, 403, "Forbidden (too many failed attempts)");
        let _ = b.header("Retry-After", &wait_ms.div_ceil(1000).max(1).to_string());
        b
    }

    fn realm_for(&self, request: &Request) -> String {
        let host = request
            .message
            .to()
            .ok()
            .and_then(|t| t.uri().ok())
            .map(|u| u.host().to_string())
            .unwrap_or_default();
        self.domains
            .iter()
            .find(|d| d.eq_ignore_ascii_case(&host))
            .or_else(|| self.domains.first())
            .cloned()
            .unwrap_or_else(|| "impp".to_string())
    }

    /// Checks that the authenticated user (if any) is `identity`; the answer refusing it
    /// otherwise.
    pub(crate) fn check_identity(
        &self,
        request: &Request,
        user: &Option<Uri>,
        identity: &Uri,
    ) -> std::result::Result<(), Reply> {
        match user {
            Some(u) if presentity_key(u) != presentity_key(identity) => {
                log::info!("SIP: {u} may not act as {identity}");
                Err(self
                    .stack
                    .reply(request, 403, "Forbidden (not your identity)"))
            }
            _ => Ok(()),
        }
    }
}
