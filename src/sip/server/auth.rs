//! Who may do what: the digest authentication (RFC 7616, 8760) and identity checks every
//! server role applies to the requests of the owned domains' users, as a registrar (`401`,
//! `WWW-Authenticate`) or as a proxy (`407`, `Proxy-Authenticate`, for what the forwarder
//! relays); requests claiming another domain's identity go to [`super::trust`]. Not a
//! role: the roles share one, made by the node.
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

use super::trust::Trust;

/// Who asks for credentials: the server for itself (RFC 3261 §22.2) or as a proxy (§22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    Server,
    Proxy,
}

impl Asker {
    /// The header the credentials come in.
    fn credentials(self) -> &'static str {
        match self {
            Asker::Server => "Authorization",
            Asker::Proxy => "Proxy-Authorization",
        }
    }

    /// The challenge's status, reason phrase and header.
    fn challenge(self) -> (u16, &'static str, &'static str) {
        match self {
            Asker::Server => (401, "Unauthorized", "WWW-Authenticate"),
            Asker::Proxy => (407, "Proxy Authentication Required", "Proxy-Authenticate"),
        }
    }
}

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
    /// Who speaks for other domains' users (and for the owned ones' besides themselves).
    trust: Arc<Trust>,
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
        trust: Arc<Trust>,
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
            trust,
        }
    }

    /// The realms credentials are asked for.
    pub(crate) fn realms(&self) -> &[String] {
        self.digest.realms()
    }

    /// The trust decisions between domains.
    pub(crate) fn trust(&self) -> &Trust {
        &self.trust
    }

    /// A `403` whose reason phrase says `why`, counted as a refused identity.
    pub(crate) fn untrusted(&self, request: &Request, why: &str) -> Reply {
        log::info!(
            "SIP: {} from {} refused: {why}",
            request.key.method,
            request.peer.source
        );
        GuardCounters::count(&self.stack.guard().untrusted);
        self.stack
            .reply(request, 403, &format!("Forbidden ({why})"))
    }

    /// Checks who the request comes from. A From of another domain cannot be checked with
    /// digest (the directory holds only this server's users): it is believed only from a
    /// peer that speaks for that domain, and only for what such a user may ask (see
    /// [`super::trust`]); `Ok(None)` then, else a `403` saying why. Otherwise the request's
    /// digest credentials: `Ok(None)` when authentication is off, `Ok(Some(user))` when they
    /// are good, `Err(answer)` (a challenge or a refusal) otherwise.
    pub(crate) fn authenticate(
        &self,
        request: &Request,
    ) -> std::result::Result<Option<Uri>, Reply> {
        if let Some(domain) = self.trust.foreign_domain(&request.message) {
            return match self.trust.foreign_request(request, &domain) {
                Ok(()) => {
                    self.stack.vouch(&request.peer);
                    Ok(None)
                }
                Err(why) => Err(self.untrusted(request, &why)),
            };
        }
        self.digest(request, Asker::Server)
    }

    /// [`Authentication::authenticate`] as a proxy, for a request of an owned domain's user
    /// that the forwarder relays: `407` and `Proxy-Authenticate`, credentials in
    /// `Proxy-Authorization` (RFC 3261 §22.3).
    pub(crate) fn authenticate_proxied(
        &self,
        request: &Request,
    ) -> std::result::Result<Option<Uri>, Reply> {
        self.digest(request, Asker::Proxy)
    }

    fn digest(&self, request: &Request, asker: Asker) -> std::result::Result<Option<Uri>, Reply> {
        if !self.enabled {
            self.stack.vouch(&request.peer);
            return Ok(None);
        }
        let method = request.key.method.as_str();
        let engine = match self.engine.get() {
            Ok(e) => e,
            Err(e) => return Err(self.stack.error_reply(request, &e)),
        };
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
        for value in request.message.headers(asker.credentials()) {
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
        Err(self.challenge(request, client, stale, asker))
    }

    /// `401` (or a proxy's `407`) with a challenge per algorithm offered, bound to `client`.
    fn challenge(&self, request: &Request, client: IpAddr, stale: bool, asker: Asker) -> Reply {
        let realm = self.realm_for(request, asker);
        let (status, reason, header) = asker.challenge();
        let mut b = self.stack.reply(request, status, reason);
        let mut challenges = self.digest.challenge_for(&realm, stale, client);
        if !self.prefer_sha256 {
            challenges.reverse(); // MD5 first (see SipServerConfig::prefer_sha256)
        }
        for challenge in challenges {
            if !self.offer_sha256 && challenge.contains("algorithm=SHA-256") {
                continue;
            }
            let _ = b.header(header, &challenge);
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

    /// The realm of the user asked: the To's domain (a registrar's), or for a proxy the
    /// From's (the user's own domain; the To is another).
    fn realm_for(&self, request: &Request, asker: Asker) -> String {
        let party = match asker {
            Asker::Server => request.message.to(),
            Asker::Proxy => request.message.from(),
        };
        let host = party
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
                GuardCounters::count(&self.stack.guard().untrusted);
                Err(self
                    .stack
                    .reply(request, 403, "Forbidden (not your identity)"))
            }
            _ => Ok(()),
        }
    }
}
