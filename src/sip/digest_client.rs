//! Client-side SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617): what
//! a user agent adds to a request a server challenged with `401` (`WWW-Authenticate`) or a
//! proxy with `407` (`Proxy-Authenticate`).
//!
//! A [`DigestClient`] holds one user's name and password and the last challenge it accepted.
//! [`DigestClient::on_challenge`] reads the challenges of a 401/407 and says whether the
//! request should be sent again; [`DigestClient::authorize`] gives the header to add to each
//! request from then on (so later requests to the same server carry credentials before being
//! asked, with a growing `nc`).
//!
//! # Decisions
//!
//! - **Which challenge**: SHA-256 is preferred over MD5 when both are offered (RFC 8760
//!   §2.4); a challenge naming another algorithm (`-sess`, SHA-512-256) or a `qop` without
//!   `auth` (auth-int only) is skipped.
//! - **qop**: `qop=auth` with a fresh `cnonce` and an `nc` that grows with every request under
//!   the same nonce; a challenge without `qop` is answered in the RFC 2069 form (no cnonce,
//!   no nc), as RFC 2617 allows.
//! - **Retries**: a request is sent again at most once per challenge. A second challenge
//!   after credentials were sent is a failure (wrong password) unless it says `stale=true`
//!   (the nonce expired: the same password is good, the new nonce is taken and the request
//!   retried).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::{expected_response, quote, Algorithm};

/// A challenge accepted, with the count of requests answered under its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Accepted {
    /// Whether it came in a 407 (Proxy-Authorization) rather than a 401 (Authorization).
    proxy: bool,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    /// Whether `qop=auth` is used (else the RFC 2069 form).
    qop: bool,
    /// The last `nc` sent under this nonce.
    nc: u32,
}

/// What [`DigestClient::on_challenge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Send the request again (with a new CSeq and branch) carrying [`DigestClient::authorize`].
    Again,
    /// Do not: the credentials were refused, or no challenge could be answered (the reason
    /// is for logs).
    GiveUp(String),
}

/// One user's digest credentials and the state of the last challenge answered. Its `Debug`
/// form hides the password.
pub struct DigestClient {
    username: String,
    password: String,
    accepted: Option<Accepted>,
    cnonces: AtomicU64,
    seed: u64,
}

impl std::fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    /// Credentials of `username` (the user part the server's directory knows) with `password`.
    pub fn new(username: &str, password: &str) -> DigestClient {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        DigestClient {
            username: username.to_owned(),
            password: password.to_owned(),
            accepted: None,
            cnonces: AtomicU64::new(1),
            seed,
        }
    }

    /// [`DigestClient::new`] whose client nonces come from `seed` (the SIP stack's share of
    /// the engine's randomness) rather than from the time.
    pub(crate) fn seeded(username: &str, password: &str, seed: u64) -> DigestClient {
        let mut client = DigestClient::new(username, password);
        client.seed = seed;
        client
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Reads the challenges of a `status` (401 or 407) answer, `challenges` being the values
    /// of its WWW-Authenticate (401) or Proxy-Authenticate (407) header fields, and
    /// `answered` whether the request it answers already carried credentials computed by
    /// this client. Changes nothing when it gives up.
    pub fn on_challenge<'a>(
        &mut self,
        status: u16,
        challenges: impl IntoIterator<Item = &'a str>,
        answered: bool,
    ) -> Retry {
        if status != 401 && status != 407 {
            return Retry::GiveUp(format!("{status} is not a challenge"));
        }
        let mut best: Option<(Accepted, bool)> = None;
        let mut why = String::from("no WWW-Authenticate / Proxy-Authenticate challenge");
        for value in challenges {
            match parse_challenge(value, status == 407) {
                Ok((candidate, stale)) => {
                    let better = match &best {
                        None => true,
                        Some((b, _)) => {
                            b.algorithm == Algorithm::Md5
                                && candidate.algorithm == Algorithm::Sha256
                        }
                    };
                    if better {
                        best = Some((candidate, stale));
                    }
                }
                Err(e) => why = e,
            }
        }
        let Some((accepted, stale)) = best else {
            return Retry::GiveUp(why);
        };
        if answered && !stale {
            return Retry::GiveUp(format!(
                "credentials of {:?} refused in realm {:?} (wrong password?)",
                self.username, accepted.realm
            ));
        }
        self.accepted = Some(accepted);
        Retry::Again
    }

    /// The header (name, value) to add to a request with `method` and Request-URI `uri`,
    /// once a challenge was accepted: `Authorization` (after a 401) or `Proxy-Authorization`
    /// (after a 407). Each call counts one more use of the nonce.
    pub fn authorize(&mut self, method: &str, uri: &str) -> Option<(&'static str, String)> {
        let a = self.accepted.as_mut()?;
        let ha1 = a
            .algorithm
            .hash(&[&self.username, &a.realm, &self.password]);
        let mut value = format!(
            "Digest username={}, realm={}, nonce={}, uri={}",
            quote(&self.username),
            quote(&a.realm),
            quote(&a.nonce),
            quote(uri)
        );
        let response = if a.qop {
            a.nc = a.nc.wrapping_add(1).max(1);
            let nc = format!("{:08x}", a.nc);
            let n = self.cnonces.fetch_add(1, Ordering::Relaxed);
            let cnonce = format!(
                "{:016x}",
                (n ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            );
            let r = expected_response(
                a.algorithm,
                &ha1,
                method,
                uri,
                &a.nonce,
                Some(("auth", &nc, &cnonce)),
            );
            value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
            r
        } else {
            expected_response(a.algorithm, &ha1, method, uri, &a.nonce, None)
        };
        value.push_str(&format!(
            ", response=\"{response}\", algorithm={}",
            a.algorithm
        ));
        if let Some(opaque) = &a.opaque {
            value.push_str(&format!(", opaque={}", quote(opaque)));
        }
        let name = if a.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        Some((name, value))
    }

    /// Forgets the accepted challenge (the next request goes without credentials).
    pub fn reset(&mut self) {
        self.accepted = None;
    }
}

/// One challenge (`Digest realm=..., nonce=..., ...`) and whether it says `stale=true`; or why
/// it cannot be answered.
fn parse_challenge(value: &str, proxy: bool) -> std::result::Result<(Accepted, bool), String> {
    let params = parse_params(value)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let realm = get("realm").ok_or("challenge without realm")?.to_owned();
    let nonce = get("nonce").ok_or("challenge without nonce")?.to_owned();
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
        Some(a) => return Err(format!("algorithm {a:?} not supported")),
    };
    let qop = match get("qop") {
        None => false,
        Some(list)
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
        {
            true
        }
        Some(list) => return Err(format!("qop {list:?} offers no 'auth'")),
    };
    let stale = get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
    Ok((
        Accepted {
            proxy,
            realm,
            nonce,
            opaque: get("opaque").map(str::to_owned),
            algorithm,
            qop,
            nc: 0,
        },
        stale,
    ))
}

/// The `Digest` scheme's parameters: names in lower case, quoted values unescaped.
fn parse_params(value: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let value = value.trim_start();
    let (scheme, mut rest) = value.split_at(value.find([' ', '\t']).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(format!("scheme {scheme:?} is not Digest"));
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n', ',']);
        if rest.is_empty() {
            return Ok(params);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("parameter without a value in {value:?}"))?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let v = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    c => out.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated value of {name}"))?;
            rest = &quoted[end..];
            out
        } else {
            let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            let v = rest[..end].to_owned();
            rest = &rest[end..];
            v
        };
        params.push((name, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{DigestAuthenticator, Outcome};
    use crate::store::Credential;
    use crate::uri::Uri;
    use std::sync::atomic::AtomicU64 as Clock;
    use std::sync::Arc;

    const REALM: &str = "b.test";

    fn lookup(password: &'static str) -> impl Fn(&str, &str) -> Option<Credential> {
        move |user: &str, realm: &str| {
            let uri = Uri::parse(&format!("sip:{user}@{realm}")).ok()?;
            Some(Credential::new(uri, realm, password))
        }
    }

    fn authenticated(o: &Outcome) -> bool {
        matches!(o, Outcome::Authenticated { .. })
    }

    #[test]
    fn answers_sha256_and_md5_with_a_growing_nc() {
        let server = DigestAuthenticator::new([REALM]).unwrap();
        for (which, offered) in [
            ("SHA-256 preferred", server.challenge(REALM, false)),
            ("MD5 alone", vec![server.challenge(REALM, false)[1].clone()]),
        ] {
            let mut client = DigestClient::new("alice", "secret");
            assert!(client.authorize("SUBSCRIBE", "sip:x").is_none());
            let retry = client.on_challenge(401, offered.iter().map(String::as_str), false);
            assert_eq!(retry, Retry::Again, "{which}");
            for n in 1..=3 {
                let (name, value) = client.authorize("SUBSCRIBE", "sip:bob@b.test").unwrap();
                assert_eq!(name, "Authorization");
                assert!(value.contains(&format!("nc={n:08x}")), "{value}");
                let want = if which.starts_with("SHA") {
                    "algorithm=SHA-256"
                } else {
                    "algorithm=MD5"
                };
                assert!(value.contains(want), "{which}: {value}");
                let o = server.verify("SUBSCRIBE", &value, lookup("secret"));
                assert!(authenticated(&o), "{which} #{n}: {o:?}");
            }
        }
    }

    #[test]
    fn proxy_challenge_gives_proxy_authorization() {
        let server = DigestAuthenticator::new([REALM]).unwrap();
        let mut client = DigestClient::new("alice", "secret");
        let c = server.challenge(REALM, false);
        assert_eq!(
            client.on_challenge(407, c.iter().map(String::as_str), false),
            Retry::Again
        );
        let (name, value) = client.authorize("PUBLISH", "sip:alice@b.test").unwrap();
        assert_eq!(name, "Proxy-Authorization");
        assert!(authenticated(&server.verify(
            "PUBLISH",
            &value,
            lookup("secret")
        )));
    }

    #[test]
    fn wrong_password_is_retried_once_then_given_up() {
        let server = DigestAuthenticator::new([REALM]).unwrap();
        let mut client = DigestClient::new("alice", "wrong");
        let c = server.challenge(REALM, false);
        assert_eq!(
            client.on_challenge(401, c.iter().map(String::as_str), false),
            Retry::Again
        );
        let (_, value) = client.authorize("REGISTER", "sip:b.test").unwrap();
        assert!(matches!(
            server.verify("REGISTER", &value, lookup("secret")),
            Outcome::Rejected(_)
        ));
        // The server challenges again (not stale): the client does not loop.
        let c = server.challenge(REALM, false);
        assert!(matches!(
            client.on_challenge(401, c.iter().map(String::as_str), true),
            Retry::GiveUp(_)
        ));
    }

    #[test]
    fn stale_nonce_is_retried_with_the_new_one() {
        let now = Arc::new(Clock::new(1_000_000));
        let clock = now.clone();
        let server = DigestAuthenticator::new([REALM])
            .unwrap()
            .with_nonce_lifetime(std::time::Duration::from_secs(10))
            .with_clock(move || clock.load(Ordering::SeqCst));
        let mut client = DigestClient::new("alice", "secret");
        let c = server.challenge(REALM, false);
        client.on_challenge(401, c.iter().map(String::as_str), false);
        let (_, value) = client.authorize("REGISTER", "sip:b.test").unwrap();
        assert!(authenticated(&server.verify(
            "REGISTER",
            &value,
            lookup("secret")
        )));
        now.fetch_add(60_000, Ordering::SeqCst);
        let (_, value) = client.authorize("REGISTER", "sip:b.test").unwrap();
        assert_eq!(
            server.verify("REGISTER", &value, lookup("secret")),
            Outcome::Stale
        );
        // Answered already, but stale: not a failure.
        let c = server.challenge(REALM, true);
        assert_eq!(
            client.on_challenge(401, c.iter().map(String::as_str), true),
            Retry::Again
        );
        let (_, value) = client.authorize("REGISTER", "sip:b.test").unwrap();
        assert!(value.contains("nc=00000001"), "{value}");
        assert!(authenticated(&server.verify(
            "REGISTER",
            &value,
            lookup("secret")
        )));
    }

    #[test]
    fn challenge_without_qop_is_answered_in_the_rfc2069_form() {
        let server = DigestAuthenticator::new([REALM])
            .unwrap()
            .accept_rfc2069(true);
        let md5 = server.challenge(REALM, false)[1].replace(", qop=\"auth\"", "");
        let mut client = DigestClient::new("alice", "secret");
        assert_eq!(
            client.on_challenge(401, [md5.as_str()], false),
            Retry::Again
        );
        let (_, value) = client.authorize("REGISTER", "sip:b.test").unwrap();
        assert!(
            !value.contains("qop") && !value.contains("cnonce"),
            "{value}"
        );
        assert!(authenticated(&server.verify(
            "REGISTER",
            &value,
            lookup("secret")
        )));
    }

    #[test]
    fn unanswerable_challenges_are_refused_without_state_change() {
        let mut client = DigestClient::new("alice", "secret");
        for bad in [
            "Basic realm=\"x\"",
            "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256",
            "Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"x\", nonce=\"n",
        ] {
            assert!(
                matches!(client.on_challenge(401, [bad], false), Retry::GiveUp(_)),
                "{bad}"
            );
            assert!(client.authorize("REGISTER", "sip:x").is_none());
        }
        assert!(matches!(
            client.on_challenge(403, ["Digest realm=\"x\", nonce=\"n\""], false),
            Retry::GiveUp(_)
        ));
    }
}
