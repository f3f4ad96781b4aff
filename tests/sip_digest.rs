//! Server-side SIP digest authentication (`impp::sip::digest`): RFC 7616 example vectors,
//! round trips with clients written here (independently of the module's own hashing),
//! failures, nonce expiry, replay protection and header parsing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use impp::engine::ManualClock;
use impp::sip::digest::{
    expected_response, parse_authorization, Algorithm, DigestAuthenticator, Outcome,
};
use impp::store::Credential;
use impp::uri::Uri;
use md5::Digest as _;

const REALM: &str = "example.test";
const START_MS: u64 = 1_700_000_000_000;

fn md5_hex(s: &str) -> String {
    hex(&md5::Md5::digest(s.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn alice_uri() -> Uri {
    Uri::parse("sip:alice@example.test").unwrap()
}

fn alice() -> Credential {
    Credential::new(alice_uri(), REALM, "wonderland")
}

fn lookup(username: &str, realm: &str) -> Option<Credential> {
    (username == "alice" && realm == REALM).then(alice)
}

/// An authenticator on a clock the test moves, and the clock.
fn server() -> (DigestAuthenticator, Arc<AtomicU64>) {
    let clock = Arc::new(AtomicU64::new(START_MS));
    let c = clock.clone();
    let auth = DigestAuthenticator::new([REALM])
        .unwrap()
        .with_clock(move || c.load(Ordering::SeqCst));
    (auth, clock)
}

/// The parameters of a challenge value, as a client reads them (minimal: no escapes).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let rest = challenge.strip_prefix("Digest ").unwrap();
    for part in rest.split(", ") {
        let (n, v) = part.split_once('=').unwrap();
        if n.eq_ignore_ascii_case(name) {
            return Some(v.trim_matches('"').to_owned());
        }
    }
    None
}

/// A client answering `challenge` for REGISTER sip:example.test.
struct Client<'a> {
    challenge: &'a str,
    username: &'a str,
    password: &'a str,
    nc: u32,
    cnonce: &'a str,
    method: &'a str,
    uri: &'a str,
    send_algorithm: bool,
}

impl<'a> Client<'a> {
    fn new(challenge: &'a str) -> Client<'a> {
        Client {
            challenge,
            username: "alice",
            password: "wonderland",
            nc: 1,
            cnonce: "0a4f113b",
            method: "REGISTER",
            uri: "sip:example.test",
            send_algorithm: true,
        }
    }

    fn authorization(&self) -> String {
        let algorithm = challenge_param(self.challenge, "algorithm").unwrap();
        let h = if algorithm == "SHA-256" {
            sha256_hex
        } else {
            md5_hex
        };
        let realm = challenge_param(self.challenge, "realm").unwrap();
        let nonce = challenge_param(self.challenge, "nonce").unwrap();
        let opaque = challenge_param(self.challenge, "opaque").unwrap();
        let ha1 = h(&format!("{}:{realm}:{}", self.username, self.password));
        let ha2 = h(&format!("{}:{}", self.method, self.uri));
        let nc = format!("{:08x}", self.nc);
        let response = h(&format!("{ha1}:{nonce}:{nc}:{}:auth:{ha2}", self.cnonce));
        let alg = if self.send_algorithm {
            format!(", algorithm={algorithm}")
        } else {
            String::new()
        };
        format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", \
             response=\"{response}\", cnonce=\"{}\", nc={nc}, qop=auth, opaque=\"{opaque}\"{alg}",
            self.username, self.uri, self.cnonce
        )
    }
}

fn sha256_challenge(auth: &DigestAuthenticator) -> String {
    auth.challenge(REALM, false).remove(0)
}

fn md5_challenge(auth: &DigestAuthenticator) -> String {
    auth.challenge(REALM, false).remove(1)
}

fn is_rejected(o: &Outcome, needle: &str) -> bool {
    matches!(o, Outcome::Rejected(why) if why.contains(needle))
}

fn is_replayed(o: &Outcome, needle: &str) -> bool {
    matches!(o, Outcome::Replayed(why) if why.contains(needle))
}

// ---- RFC 7616 §3.9.1 ------------------------------------------------------------------

// Expected values computed with Python's hashlib while writing this test.
const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn rfc_credential() -> Credential {
    Credential::new(
        Uri::parse("sip:Mufasa@example.org").unwrap(),
        "http-auth@example.org",
        "Circle of Life",
    )
}

#[test]
fn rfc7616_md5_example() {
    let c = rfc_credential();
    assert_eq!(c.ha1_md5, "3d78807defe7de2157e2b0b6573a855f");
    let r = expected_response(
        Algorithm::Md5,
        &c.ha1_md5,
        "GET",
        "/dir/index.html",
        RFC_NONCE,
        Some(("auth", "00000001", RFC_CNONCE)),
    );
    assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn rfc7616_sha256_example() {
    let c = rfc_credential();
    assert_eq!(
        c.ha1_sha256,
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    );
    let r = expected_response(
        Algorithm::Sha256,
        &c.ha1_sha256,
        "GET",
        "/dir/index.html",
        RFC_NONCE,
        Some(("auth", "00000001", RFC_CNONCE)),
    );
    assert_eq!(
        r,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc7616_example_header_parses() {
    let value = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaqgQqBo1kDNvWpGC73pAqNHhXh1vLsWePeAzgh""#;
    let r = parse_authorization(value).unwrap();
    assert_eq!(r.username, "Mufasa");
    assert_eq!(r.realm, "http-auth@example.org");
    assert_eq!(r.uri, "/dir/index.html");
    assert_eq!(r.algorithm.as_deref(), Some("SHA-256"));
    assert_eq!(r.nonce, RFC_NONCE);
    assert_eq!(r.nc.as_deref(), Some("00000001"));
    assert_eq!(r.cnonce.as_deref(), Some(RFC_CNONCE));
    assert_eq!(r.qop.as_deref(), Some("auth"));
    assert_eq!(
        r.opaque.as_deref(),
        Some("FQhe/qaqgQqBo1kDNvWpGC73pAqNHhXh1vLsWePeAzgh")
    );
    // Not our nonce: a genuine server refuses it.
    let auth = DigestAuthenticator::new(["http-auth@example.org"]).unwrap();
    let o = auth.verify("GET", value, |_, _| Some(rfc_credential()));
    assert!(is_rejected(&o, "nonce not issued"), "{o:?}");
}

// ---- challenges -------------------------------------------------------------------------

#[test]
fn challenge_offers_sha256_then_md5() {
    let (auth, _) = server();
    let c = auth.challenge(REALM, false);
    assert_eq!(c.len(), 2);
    assert_eq!(challenge_param(&c[0], "algorithm").unwrap(), "SHA-256");
    assert_eq!(challenge_param(&c[1], "algorithm").unwrap(), "MD5");
    for v in &c {
        assert!(v.starts_with("Digest "), "{v}");
        assert_eq!(challenge_param(v, "realm").unwrap(), REALM);
        assert_eq!(challenge_param(v, "qop").unwrap(), "auth");
        assert!(v.contains("qop=\"auth\""), "{v}");
        assert!(challenge_param(v, "nonce").is_some());
        assert!(challenge_param(v, "opaque").is_some());
        assert!(challenge_param(v, "stale").is_none());
    }
    let stale = auth.challenge(REALM, true);
    assert!(stale.iter().all(|v| v.contains("stale=true")));
    // Fresh nonces each time.
    assert_ne!(
        challenge_param(&c[0], "nonce"),
        challenge_param(&auth.challenge(REALM, false)[0], "nonce")
    );
}

#[test]
fn md5_can_be_switched_off() {
    let auth = DigestAuthenticator::new([REALM]).unwrap().with_md5(false);
    let c = auth.challenge(REALM, false);
    assert_eq!(c.len(), 1);
    assert_eq!(challenge_param(&c[0], "algorithm").unwrap(), "SHA-256");
    // An MD5 answer (to a nonce of this authenticator) is refused.
    let fake = c[0].replace("algorithm=SHA-256", "algorithm=MD5");
    let o = auth.verify("REGISTER", &Client::new(&fake).authorization(), lookup);
    assert!(is_rejected(&o, "MD5 not offered"), "{o:?}");
}

// ---- round trips ------------------------------------------------------------------------

#[test]
fn sha256_client_round_trip() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let o = auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn md5_client_round_trip() {
    let (auth, _) = server();
    let ch = md5_challenge(&auth);
    let o = auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn baresip_style_md5_only_client() {
    // An MD5-only client: picks the MD5 challenge, sends no algorithm parameter (MD5 is the
    // default), no spaces after commas, quoted qop, upper-case hex in the response.
    let (auth, _) = server();
    let ch = md5_challenge(&auth);
    let nonce = challenge_param(&ch, "nonce").unwrap();
    let opaque = challenge_param(&ch, "opaque").unwrap();
    let ha1 = md5_hex("alice:example.test:wonderland");
    let ha2 = md5_hex("SUBSCRIBE:sip:bob@example.test");
    let response = md5_hex(&format!(
        "{ha1}:{nonce}:00000001:5f2d7c09a1b3e4f6:auth:{ha2}"
    ));
    let value = format!(
        "Digest username=\"alice\",realm=\"example.test\",nonce=\"{nonce}\",\
         uri=\"sip:bob@example.test\",response=\"{}\",cnonce=\"5f2d7c09a1b3e4f6\",\
         qop=\"auth\",nc=00000001,opaque=\"{opaque}\"",
        response.to_ascii_uppercase()
    );
    let o = auth.verify("SUBSCRIBE", &value, lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn authenticated_identity_is_the_credential_uri() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let bob = Uri::parse("sip:bob@example.test").unwrap();
    let mut c = Client::new(&ch);
    c.username = "bob";
    c.password = "builder";
    c.method = "PUBLISH";
    let b = bob.clone();
    let o = auth.verify("PUBLISH", &c.authorization(), |u, r| {
        (u == "bob").then(|| Credential::new(b, r, "builder"))
    });
    assert_eq!(o, Outcome::Authenticated { user: bob });
}

#[test]
fn engine_clock_and_shared_secret() {
    let clock = ManualClock::new();
    let secret = b"a secret shared by two processes";
    let a = DigestAuthenticator::new([REALM])
        .unwrap()
        .with_secret(secret)
        .unwrap()
        .with_engine_clock(clock.clone());
    let b = DigestAuthenticator::new([REALM])
        .unwrap()
        .with_secret(secret)
        .unwrap()
        .with_engine_clock(clock.clone());
    let ch = sha256_challenge(&a);
    let o = b.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
    clock.advance(Duration::from_secs(301));
    let mut c = Client::new(&ch);
    c.nc = 2;
    assert_eq!(
        b.verify("REGISTER", &c.authorization(), lookup),
        Outcome::Stale
    );
}

// ---- failures ---------------------------------------------------------------------------

#[test]
fn wrong_password_is_rejected_without_revealing_it() {
    let (auth, _) = server();
    for ch in auth.challenge(REALM, false) {
        let mut c = Client::new(&ch);
        c.password = "looking-glass";
        let o = auth.verify("REGISTER", &c.authorization(), lookup);
        assert!(is_rejected(&o, "wrong"), "{o:?}");
        let Outcome::Rejected(why) = o else {
            unreachable!()
        };
        assert!(!why.contains("looking-glass") && !why.contains("wonderland"));
    }
}

#[test]
fn unknown_user_is_rejected() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let mut c = Client::new(&ch);
    c.username = "mallory";
    let o = auth.verify("REGISTER", &c.authorization(), lookup);
    assert!(is_rejected(&o, "unknown user \"mallory\""), "{o:?}");
}

#[test]
fn credential_of_another_user_is_rejected() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let mut c = Client::new(&ch);
    c.username = "mallory";
    // A lookup that wrongly returns alice's credential must not authenticate mallory as
    // alice.
    let o = auth.verify("REGISTER", &c.authorization(), |_, _| Some(alice()));
    assert!(is_rejected(&o, "another user"), "{o:?}");
}

#[test]
fn tampered_nonce_is_rejected() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let nonce = challenge_param(&ch, "nonce").unwrap();
    // Change one hex digit: of the issue time (its last), of the realm MAC (its last, at
    // byte 8 + 12 + 16 of the nonce) and of the client MAC (the nonce's last).
    let flip = |i: usize| {
        let mut b = nonce.clone().into_bytes();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    assert_eq!(nonce.len(), 88);
    let (early, realm_mac, client_mac) = (flip(15), flip(71), flip(87));
    for bad in [early, realm_mac, "abc".to_owned(), format!("{nonce}00")] {
        // The client computes a correct response over the tampered nonce.
        let forged = ch.replace(&nonce, &bad);
        let o = auth.verify("REGISTER", &Client::new(&forged).authorization(), lookup);
        assert!(is_rejected(&o, "nonce not issued"), "{bad}: {o:?}");
    }
    // A genuine nonce of another client address: challenged again, the response unchecked.
    let forged = ch.replace(&nonce, &client_mac);
    let mut c = Client::new(&forged);
    c.password = "guess";
    let o = auth.verify("REGISTER", &c.authorization(), lookup);
    assert_eq!(o, Outcome::Stale);
}

#[test]
fn nonce_of_another_realm_is_rejected() {
    let auth = DigestAuthenticator::new([REALM, "other.test"]).unwrap();
    let ch = auth.challenge("other.test", false).remove(0);
    let moved = ch.replace("realm=\"other.test\"", "realm=\"example.test\"");
    let o = auth.verify("REGISTER", &Client::new(&moved).authorization(), lookup);
    assert!(is_rejected(&o, "nonce not issued"), "{o:?}");
}

#[test]
fn realm_not_served_is_rejected() {
    let (auth, _) = server();
    let ch = auth.challenge("elsewhere.test", false).remove(0);
    let o = auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert!(is_rejected(&o, "not served"), "{o:?}");
}

#[test]
fn opaque_must_come_back_unchanged_if_sent() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let opaque = challenge_param(&ch, "opaque").unwrap();
    let value = Client::new(&ch).authorization();
    let changed = value.replace(&opaque, "00000000");
    let o = auth.verify("REGISTER", &changed, lookup);
    assert!(is_rejected(&o, "opaque"), "{o:?}");
    let omitted = value.replace(&format!(", opaque=\"{opaque}\""), "");
    assert!(!omitted.contains("opaque"));
    let o = auth.verify("REGISTER", &omitted, lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn wrong_method_or_uri_is_rejected() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let value = Client::new(&ch).authorization();
    let o = auth.verify("INVITE", &value, lookup);
    assert!(is_rejected(&o, "wrong"), "{o:?}");
    let other_uri = value.replace("uri=\"sip:example.test\"", "uri=\"sip:x.test\"");
    let o = auth.verify("REGISTER", &other_uri, lookup);
    assert!(is_rejected(&o, "wrong"), "{o:?}");
}

// ---- expiry -----------------------------------------------------------------------------

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let (auth, clock) = server();
    let ch = sha256_challenge(&auth);
    clock.fetch_add(299_000, Ordering::SeqCst);
    let o = auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });

    clock.fetch_add(2_000, Ordering::SeqCst);
    let mut c = Client::new(&ch);
    c.nc = 2;
    assert_eq!(
        auth.verify("REGISTER", &c.authorization(), lookup),
        Outcome::Stale
    );
    c.password = "guess";
    let o = auth.verify("REGISTER", &c.authorization(), lookup);
    assert!(is_rejected(&o, "wrong"), "{o:?}");

    // A fresh challenge (stale=true) works.
    let again = auth.challenge(REALM, true).remove(0);
    let o = auth.verify("REGISTER", &Client::new(&again).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn nonce_lifetime_is_configurable() {
    let (auth, clock) = server();
    let auth = auth.with_nonce_lifetime(Duration::from_secs(10));
    let ch = md5_challenge(&auth);
    clock.fetch_add(10_001, Ordering::SeqCst);
    assert_eq!(
        auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup),
        Outcome::Stale
    );
}

#[test]
fn nonce_from_the_future_is_rejected() {
    let (auth, clock) = server();
    clock.fetch_add(3_600_000, Ordering::SeqCst);
    let ch = sha256_challenge(&auth);
    clock.store(START_MS, Ordering::SeqCst);
    let o = auth.verify("REGISTER", &Client::new(&ch).authorization(), lookup);
    assert!(is_rejected(&o, "future"), "{o:?}");
}

// ---- replay -----------------------------------------------------------------------------

#[test]
fn replayed_nc_is_rejected() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let value = Client::new(&ch).authorization();
    assert!(matches!(
        auth.verify("REGISTER", &value, lookup),
        Outcome::Authenticated { .. }
    ));
    let o = auth.verify("REGISTER", &value, lookup);
    assert!(is_replayed(&o, "replayed nc 00000001"), "{o:?}");
}

#[test]
fn increasing_nc_is_accepted_and_lower_refused() {
    let (auth, _) = server();
    let auth = auth.with_nc_window(0);
    let ch = md5_challenge(&auth);
    for nc in [1, 2, 3, 7] {
        let mut c = Client::new(&ch);
        c.nc = nc;
        c.cnonce = if nc % 2 == 0 { "even" } else { "odd" };
        let o = auth.verify("REGISTER", &c.authorization(), lookup);
        assert_eq!(o, Outcome::Authenticated { user: alice_uri() }, "nc {nc}");
    }
    for nc in [5, 7] {
        let mut c = Client::new(&ch);
        c.nc = nc;
        let o = auth.verify("REGISTER", &c.authorization(), lookup);
        assert!(is_replayed(&o, "highest seen 00000007"), "nc {nc}: {o:?}");
    }
    // Another nonce has its own count.
    let other = md5_challenge(&auth);
    let o = auth.verify("REGISTER", &Client::new(&other).authorization(), lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn nc_out_of_order_within_the_window_is_accepted_once() {
    let (auth, _) = server();
    let auth = auth.with_nc_window(4);
    let ch = md5_challenge(&auth);
    let verify = |nc: u32| {
        let mut c = Client::new(&ch);
        c.nc = nc;
        auth.verify("REGISTER", &c.authorization(), lookup)
    };
    let ok = Outcome::Authenticated { user: alice_uri() };
    // A burst verified out of order (several workers, or the network).
    for nc in [2, 1, 5, 3, 4] {
        assert_eq!(verify(nc), ok, "nc {nc}");
    }
    for nc in [1, 2, 3, 4, 5] {
        assert!(is_replayed(&verify(nc), "replayed"), "nc {nc} again");
    }
    assert_eq!(verify(10), ok);
    assert_eq!(verify(6), ok, "10 - 4: the window's edge");
    assert!(is_replayed(&verify(5), "highest seen 0000000a"), "below it");
}

#[test]
fn failed_attempt_does_not_consume_nc() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let mut c = Client::new(&ch);
    c.password = "guess";
    assert!(is_rejected(
        &auth.verify("REGISTER", &c.authorization(), lookup),
        "wrong"
    ));
    c.password = "wonderland";
    assert!(matches!(
        auth.verify("REGISTER", &c.authorization(), lookup),
        Outcome::Authenticated { .. }
    ));
}

// ---- RFC 2069, algorithms, qop ----------------------------------------------------------

fn rfc2069_value(ch: &str) -> String {
    let nonce = challenge_param(ch, "nonce").unwrap();
    let ha1 = md5_hex("alice:example.test:wonderland");
    let ha2 = md5_hex("REGISTER:sip:example.test");
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Digest username=\"alice\", realm=\"example.test\", nonce=\"{nonce}\", \
         uri=\"sip:example.test\", response=\"{response}\""
    )
}

#[test]
fn rfc2069_response_refused_by_default() {
    let (auth, _) = server();
    let ch = md5_challenge(&auth);
    let o = auth.verify("REGISTER", &rfc2069_value(&ch), lookup);
    assert!(is_rejected(&o, "without qop"), "{o:?}");
}

#[test]
fn rfc2069_response_accepted_once_when_enabled() {
    let (auth, _) = server();
    let auth = auth.accept_rfc2069(true);
    let ch = md5_challenge(&auth);
    let value = rfc2069_value(&ch);
    assert_eq!(
        auth.verify("REGISTER", &value, lookup),
        Outcome::Authenticated { user: alice_uri() }
    );
    let o = auth.verify("REGISTER", &value, lookup);
    assert!(is_replayed(&o, "already used"), "{o:?}");
}

#[test]
fn sess_and_unknown_algorithms_are_refused_clearly() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let value = Client::new(&ch).authorization();
    for (alg, why) in [
        ("SHA-256-sess", "-sess"),
        ("MD5-sess", "-sess"),
        ("SHA-512-256", "not supported"),
    ] {
        let v = value.replace("algorithm=SHA-256", &format!("algorithm={alg}"));
        let o = auth.verify("REGISTER", &v, lookup);
        assert!(is_rejected(&o, why), "{alg}: {o:?}");
    }
}

#[test]
fn auth_int_and_userhash_are_refused() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let value = Client::new(&ch).authorization();
    let o = auth.verify(
        "REGISTER",
        &value.replace("qop=auth", "qop=auth-int"),
        lookup,
    );
    assert!(is_rejected(&o, "auth-int"), "{o:?}");
    let o = auth.verify("REGISTER", &format!("{value}, userhash=true"), lookup);
    assert!(is_rejected(&o, "userhash"), "{o:?}");
}

// ---- parsing ----------------------------------------------------------------------------

#[test]
fn parsing_tolerates_spaces_case_and_quoted_commas() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let nonce = challenge_param(&ch, "nonce").unwrap();
    // A digest-uri with a comma and a quoted username with an escaped character are hashed
    // as their unescaped values.
    let uri = "sip:alice@example.test;x=\"a,b\"";
    let ha1 = sha256_hex("alice:example.test:wonderland");
    let ha2 = sha256_hex(&format!("REGISTER:{uri}"));
    let response = sha256_hex(&format!("{ha1}:{nonce}:0000000a:c,n:auth:{ha2}"));
    let escaped_uri = uri.replace('"', "\\\"");
    let value = format!(
        "  DIGEST   USERNAME = \"al\\ice\" ,Realm=example.test,\t nonce=\"{nonce}\" , , \
         URI=\"{escaped_uri}\", Response={response}, CNonce=\"c,n\", NC=0000000A, \
         QOP=\"auth\", Algorithm=\"sha-256\", future-param=\"x, y\"  "
    );
    let parsed = parse_authorization(&value).unwrap();
    assert_eq!(parsed.username, "alice");
    assert_eq!(parsed.uri, uri);
    assert_eq!(parsed.cnonce.as_deref(), Some("c,n"));
    // nc is hashed as sent (upper case here).
    let response_upper = sha256_hex(&format!("{ha1}:{nonce}:0000000A:c,n:auth:{ha2}"));
    let value = value.replace(&response, &response_upper);
    let o = auth.verify("REGISTER", &value, lookup);
    assert_eq!(o, Outcome::Authenticated { user: alice_uri() });
}

#[test]
fn missing_fields_are_malformed() {
    let (auth, _) = server();
    let ch = sha256_challenge(&auth);
    let value = Client::new(&ch).authorization();
    for (name, needle) in [
        ("username", "missing parameter username"),
        ("realm", "missing parameter realm"),
        ("nonce", "missing parameter nonce"),
        ("uri", "missing parameter uri"),
        ("response", "missing parameter response"),
        ("cnonce", "without nc and cnonce"),
        ("nc", "without nc and cnonce"),
    ] {
        let v: Vec<&str> = value
            .split(", ")
            .filter(|p| {
                !p.starts_with(&format!("{name}=")) && !p.starts_with(&format!("Digest {name}="))
            })
            .collect();
        let mut v = v.join(", ");
        if name == "username" {
            v = format!("Digest {v}");
        }
        let o = auth.verify("REGISTER", &v, lookup);
        assert!(
            matches!(&o, Outcome::Malformed(why) if why.contains(needle)),
            "{name}: {v}: {o:?}"
        );
    }
}

#[test]
fn bad_syntax_is_malformed() {
    let (auth, _) = server();
    for value in [
        "",
        "Digest",
        "Basic YWxpY2U6c2VjcmV0",
        "Digestusername=\"alice\"",
        "Digest username=\"alice",
        "Digest username=alice realm=x",
        "Digest username=, realm=x",
        "Digest =x",
        "Digest username=\"a\", username=\"b\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"xyz\"",
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", qop=auth, nc=1, cnonce=c",
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", nc=00000001, cnonce=c",
        "Digest username*=UTF-8''a, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
    ] {
        let o = auth.verify("REGISTER", value, lookup);
        assert!(matches!(o, Outcome::Malformed(_)), "{value:?}: {o:?}");
        assert!(parse_authorization(value).is_err(), "{value:?}");
    }
}

#[test]
fn authenticator_is_shareable_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<DigestAuthenticator>();
    let (auth, _) = server();
    let auth = Arc::new(auth);
    let ch = sha256_challenge(&auth);
    let handles: Vec<_> = (1..=8u32)
        .map(|nc| {
            let (auth, ch) = (auth.clone(), ch.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(&ch);
                c.nc = nc;
                auth.verify("REGISTER", &c.authorization(), lookup)
            })
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|o| matches!(o, Outcome::Authenticated { .. }))
        .count();
    // Out-of-order arrivals are refused (nc must grow), but at least the first is accepted.
    assert!(accepted >= 1);
}
