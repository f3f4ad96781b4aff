//! Who may do what: the digest authentication (RFC 7616, 8760) and identity checks every
//! server role applies to the requests of the owned domains' users. Not a role: the roles
//! share one, made by the node.
#![forbid(unsafe_code)]

use std::sync::Arc;

use crate::engine::EngineHandle;
use crate::log;
use crate::model::key::presentity_key;
use crate::sip::digest::{DigestAuthenticator, Outcome};
use crate::sip::guard::GuardCounters;
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
        domains: Vec<String>,
        challenges: Challenges,
    ) -> Authentication {
        Authentication {
            stack,
            engine,
            digest,
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
        let mut refused = None;
        let mut stale = false;
        for value in request.message.headers("Authorization") {
            match self.digest.verify(method, value, lookup) {
                Outcome::Authenticated { user } => {
                    self.stack.vouch(&request.peer);
                    return Ok(Some(user));
                }
                Outcome::Stale => stale = true,
                Outcome::Rejected(why) | Outcome::Malformed(why) => refused = Some(why),
            }
        }
        if let (Some(why), false) = (&refused, stale) {
            log::info!("SIP: {method} from {} refused: {why}", request.peer.source);
            GuardCounters::count(&self.stack.guard().auth_failures);
            return Err(self.stack.reply(request, 403, "Forbidden"));
        }
        let realm = self.realm_for(request);
        let mut b = self.stack.reply(request, 401, "Unauthorized");
        let mut challenges = self.digest.challenge(&realm, stale);
        if !self.prefer_sha256 {
            challenges.reverse(); // MD5 first (see SipServerConfig::prefer_sha256)
        }
        for challenge in challenges {
            if !self.offer_sha256 && challenge.contains("algorithm=SHA-256") {
                continue;
            }
            let _ = b.header("WWW-Authenticate", &challenge);
        }
        Err(b)
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
