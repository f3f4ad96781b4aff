//! Digest hardening at the wire (issue 15): a real server on 127.0.0.1 over UDP, raw clients
//! on several loopback addresses, and the engine's manual clock for nonce lifetimes and
//! throttle windows (nothing sleeps for a timer). Nonces bound to their realm and to the
//! client's address, and expiring; nonce counts never accepted twice; failed credentials
//! throttled per address, per user and per pair, without locking a user out where it has
//! authenticated before; the same answer for an unknown user as for a wrong password; no
//! password or digest response in the logs; each refusal counted in the guard stats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use impp::sip::digest::{expected_response, Algorithm};
use impp::sip::{AuthLimits, GuardStats, SipMessage};
use impp::store::Credential;

mod common;
use common::sip::{header_map, parse, token, Client, Server, DOMAIN};

/// The first MD5 challenge of a 401.
struct Challenge {
    realm: String,
    nonce: String,
    stale: bool,
}

fn challenge(r: &SipMessage) -> Challenge {
    assert_eq!(r.status(), Some(401), "{:?}", header_map(r));
    let value = r
        .headers("WWW-Authenticate")
        .find(|c| c.contains("algorithm=MD5"))
        .expect("an MD5 challenge")
        .to_string();
    let param = |name: &str| {
        let i = value.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        value[i..].split('"').next().unwrap().to_string()
    };
    Challenge {
        realm: param("realm"),
        nonce: param("nonce"),
        stale: value.contains("stale=true"),
    }
}

/// What a client answers: the Authorization header line and the response in it.
struct Answer {
    user: String,
    password: String,
    realm: String,
    nonce: String,
    nc: u32,
}

impl Answer {
    fn to(c: &Challenge, user: &str, password: &str) -> Answer {
        Answer {
            user: user.into(),
            password: password.into(),
            realm: c.realm.clone(),
            nonce: c.nonce.clone(),
            nc: 1,
        }
    }

    fn nc(mut self, nc: u32) -> Answer {
        self.nc = nc;
        self
    }

    /// The header line for REGISTER sip:example.test, and its response.
    fn line(&self) -> (String, String) {
        let uri = format!("sip:{DOMAIN}");
        let user: impp::uri::Uri = format!("sip:{}@{DOMAIN}", self.user).parse().unwrap();
        let ha1 = Credential::new(user, &self.realm, &self.password).ha1_md5;
        let nc = format!("{:08x}", self.nc);
        let cnonce = token();
        let response = expected_response(
            Algorithm::Md5,
            &ha1,
            "REGISTER",
            &uri,
            &self.nonce,
            Some(("auth", &nc, &cnonce)),
        );
        let line = format!(
            "Authorization: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"\r\n",
            self.user, self.realm, self.nonce
        );
        (line, response)
    }
}

/// A REGISTER of the client's user (To `to_host`), with `extra` header lines.
fn register_to(c: &Client, to_host: &str, extra: &str) -> Vec<u8> {
    c.request(
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        &format!("<sip:{}@{to_host}>", c.user),
        &token(),
        &format!("Expires: 600\r\n{extra}"),
        None,
    )
}

fn register(c: &Client, extra: &str) -> Vec<u8> {
    register_to(c, DOMAIN, extra)
}

/// Asks for a challenge (a REGISTER without credentials).
fn ask(c: &mut Client) -> Challenge {
    let r = c.transact(&register(c, ""));
    challenge(&r)
}

/// Sends one REGISTER with `answer`'s credentials; the answer to it.
fn send(c: &mut Client, answer: &Answer) -> SipMessage {
    let (line, _) = answer.line();
    c.transact(&register(c, &line))
}

/// Asks for a challenge and answers it with `password` as `user`; the final answer.
fn attempt(c: &mut Client, user: &str, password: &str) -> SipMessage {
    let ch = ask(c);
    send(c, &Answer::to(&ch, user, password))
}

fn status(r: &SipMessage) -> (u16, String) {
    (r.status().unwrap(), r.reason().unwrap_or("").to_string())
}

fn forbidden() -> (u16, String) {
    (403, "Forbidden".into())
}

fn throttled() -> (u16, String) {
    (403, "Forbidden (too many failed attempts)".into())
}

fn stats(s: &Server) -> GuardStats {
    s.server.guard_stats()
}

/// A server on a manual clock with `limits` for its authentication.
fn server(limits: AuthLimits) -> Server {
    Server::clocked(true, move |c| c.auth_limits = limits)
}

/// 3 failures in 60 s block an address or a pair for 300 s, a user for 60 s.
fn strict() -> AuthLimits {
    AuthLimits {
        max_failures: 3,
        failure_window: Duration::from_secs(60),
        block: Duration::from_secs(300),
        user_block: Duration::from_secs(60),
        ..AuthLimits::default()
    }
}

// ---- 1. nonces: realm, expiry, address -------------------------------------------------

#[test]
fn a_nonce_is_good_for_its_realm_only() {
    let s = Server::start_configured(true, |e| e.domains.push("other.test".into()), |_| {});
    let mut alice = Client::new(s.udp(), "alice");
    // A challenge for other.test (the realm of the To host), answered in realm example.test
    // with alice's right password: refused.
    let r = alice.transact(&register_to(&alice, "other.test", ""));
    let foreign = challenge(&r);
    assert_eq!(foreign.realm, "other.test");
    let mut answer = Answer::to(&foreign, "alice", "alice-pw");
    answer.realm = DOMAIN.into();
    assert_eq!(status(&send(&mut alice, &answer)), forbidden());
    assert_eq!(stats(&s).auth_failures, 1);
    // The same answer with a nonce of example.test goes through.
    let ch = ask(&mut alice);
    assert_eq!(ch.realm, DOMAIN);
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw"));
    assert_eq!(r.status(), Some(200));
}

#[test]
fn an_expired_nonce_is_stale_for_the_right_password_only() {
    let s = server(AuthLimits {
        nonce_lifetime: Duration::from_secs(30),
        ..AuthLimits::default()
    });
    let mut alice = Client::new(s.udp(), "alice");
    let ch = ask(&mut alice);
    assert_eq!(
        send(&mut alice, &Answer::to(&ch, "alice", "alice-pw")).status(),
        Some(200)
    );
    s.advance(Duration::from_secs(31));
    // A wrong password gets no hint that the nonce is merely old.
    let r = send(&mut alice, &Answer::to(&ch, "alice", "guess").nc(2));
    assert_eq!(status(&r), forbidden());
    // The right one is told to take a fresh nonce, which works.
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw").nc(3));
    let fresh = challenge(&r);
    assert!(fresh.stale);
    assert_ne!(fresh.nonce, ch.nonce);
    let r = send(&mut alice, &Answer::to(&fresh, "alice", "alice-pw"));
    assert_eq!(r.status(), Some(200));
    assert_eq!(stats(&s).auth_failures, 1);
}

#[test]
fn a_nonce_answered_from_another_address_is_challenged_again_unchecked() {
    let s = server(strict());
    let mut here = Client::bound(s.udp(), "alice", "127.0.0.1");
    let mut there = Client::bound(s.udp(), "alice", "127.0.0.2");
    let ch = ask(&mut here);
    // From elsewhere, right or wrong password: a fresh challenge, nothing counted against
    // the address the nonce went to (or the one it came from).
    for password in ["guess", "guess", "guess", "alice-pw"] {
        let r = send(&mut there, &Answer::to(&ch, "alice", password));
        assert!(challenge(&r).stale, "{password}");
    }
    assert_eq!(stats(&s).auth_failures, 0);
    let r = send(&mut here, &Answer::to(&ch, "alice", "alice-pw"));
    assert_eq!(r.status(), Some(200));
}

// ---- 2. nonce counts ---------------------------------------------------------------------

#[test]
fn a_nonce_count_is_accepted_once_and_must_rise_beyond_the_window() {
    let s = server(AuthLimits {
        nc_window: 2,
        ..AuthLimits::default()
    });
    let mut alice = Client::new(s.udp(), "alice");
    let ch = ask(&mut alice);
    let ok = |r: &SipMessage| assert_eq!(r.status(), Some(200), "{:?}", header_map(r));
    ok(&send(&mut alice, &Answer::to(&ch, "alice", "alice-pw")));
    // The same nc again, in a new transaction (a retransmission would be absorbed by the
    // server transaction): a replay, challenged afresh and counted.
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw"));
    assert!(challenge(&r).stale);
    assert_eq!(stats(&s).nonce_replays, 1);
    // Out of order within the window: each once.
    ok(&send(
        &mut alice,
        &Answer::to(&ch, "alice", "alice-pw").nc(4),
    ));
    ok(&send(
        &mut alice,
        &Answer::to(&ch, "alice", "alice-pw").nc(3),
    ));
    ok(&send(
        &mut alice,
        &Answer::to(&ch, "alice", "alice-pw").nc(2),
    ));
    for nc in [2, 3, 4] {
        let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw").nc(nc));
        assert!(challenge(&r).stale, "nc {nc} again");
    }
    // Below the window.
    ok(&send(
        &mut alice,
        &Answer::to(&ch, "alice", "alice-pw").nc(9),
    ));
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw").nc(6));
    assert!(challenge(&r).stale);
    let st = stats(&s);
    assert_eq!((st.nonce_replays, st.auth_failures), (5, 0));
}

#[test]
fn a_strict_window_wants_a_rising_count() {
    let s = server(AuthLimits {
        nc_window: 0,
        ..AuthLimits::default()
    });
    let mut alice = Client::new(s.udp(), "alice");
    let ch = ask(&mut alice);
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw").nc(3));
    assert_eq!(r.status(), Some(200));
    let r = send(&mut alice, &Answer::to(&ch, "alice", "alice-pw").nc(2));
    assert!(challenge(&r).stale);
    assert_eq!(stats(&s).nonce_replays, 1);
}

// ---- 3. the throttle ---------------------------------------------------------------------

#[test]
fn an_address_that_fails_too_often_is_refused_unchecked_for_a_while() {
    let s = server(strict());
    let mut guesser = Client::bound(s.udp(), "alice", "127.0.0.3");
    for _ in 0..3 {
        assert_eq!(
            status(&attempt(&mut guesser, "alice", "guess")),
            forbidden()
        );
    }
    // Now even the right password is not checked; the answer says when to come back.
    let r = attempt(&mut guesser, "alice", "alice-pw");
    assert_eq!(status(&r), throttled());
    assert_eq!(header_map(&r)["retry-after"], "300");
    // Whatever user it claims.
    let mut other = Client::bound(s.udp(), "bob", "127.0.0.3");
    assert_eq!(status(&attempt(&mut other, "bob", "bob-pw")), throttled());
    let st = stats(&s);
    assert_eq!((st.auth_failures, st.auth_throttled), (3, 2));
    // Another address is not concerned.
    let mut bob = Client::bound(s.udp(), "bob", "127.0.0.4");
    assert_eq!(attempt(&mut bob, "bob", "bob-pw").status(), Some(200));
    // Once the block is over, credentials are checked again.
    s.advance(Duration::from_secs(200));
    let r = attempt(&mut guesser, "alice", "alice-pw");
    assert_eq!(header_map(&r)["retry-after"], "100");
    s.advance(Duration::from_secs(100));
    assert_eq!(
        attempt(&mut guesser, "alice", "alice-pw").status(),
        Some(200)
    );
}

#[test]
fn failures_spread_over_the_window_do_not_block() {
    let s = server(strict());
    let mut alice = Client::bound(s.udp(), "alice", "127.0.0.5");
    for _ in 0..4 {
        assert_eq!(status(&attempt(&mut alice, "alice", "guess")), forbidden());
        assert_eq!(status(&attempt(&mut alice, "alice", "guess")), forbidden());
        s.advance(Duration::from_secs(61));
    }
    assert_eq!(attempt(&mut alice, "alice", "alice-pw").status(), Some(200));
    assert_eq!(stats(&s).auth_throttled, 0);
}

#[test]
fn strangers_cannot_lock_a_user_out_where_it_has_authenticated() {
    let s = server(strict());
    // alice at home.
    let mut home = Client::bound(s.udp(), "alice", "127.0.0.10");
    assert_eq!(attempt(&mut home, "alice", "alice-pw").status(), Some(200));
    // Strangers on three addresses fail once each in alice's name (no address reaches its
    // own limit), which blocks alice's user name briefly...
    for ip in ["127.0.0.11", "127.0.0.12", "127.0.0.13"] {
        let mut stranger = Client::bound(s.udp(), "alice", ip);
        assert_eq!(
            status(&attempt(&mut stranger, "alice", "guess")),
            forbidden()
        );
    }
    let mut elsewhere = Client::bound(s.udp(), "alice", "127.0.0.14");
    let r = attempt(&mut elsewhere, "alice", "alice-pw");
    assert_eq!(status(&r), throttled());
    assert_eq!(header_map(&r)["retry-after"], "60");
    // ... but not at home, nor for other users.
    assert_eq!(attempt(&mut home, "alice", "alice-pw").status(), Some(200));
    let mut bob = Client::bound(s.udp(), "bob", "127.0.0.14");
    assert_eq!(attempt(&mut bob, "bob", "bob-pw").status(), Some(200));
    // The user block is short.
    s.advance(Duration::from_secs(60));
    assert_eq!(
        attempt(&mut elsewhere, "alice", "alice-pw").status(),
        Some(200)
    );
}

#[test]
fn the_pair_limits_guessing_from_a_known_address_and_a_success_resets_it() {
    let s = server(strict());
    // alice and a stranger behind one address (a NAT).
    let mut nat = Client::bound(s.udp(), "alice", "127.0.0.20");
    assert_eq!(attempt(&mut nat, "alice", "alice-pw").status(), Some(200));
    for _ in 0..2 {
        assert_eq!(status(&attempt(&mut nat, "alice", "guess")), forbidden());
    }
    assert_eq!(attempt(&mut nat, "alice", "alice-pw").status(), Some(200));
    // The success started the pair's count again; the address's count goes on.
    assert_eq!(status(&attempt(&mut nat, "alice", "guess")), forbidden());
    let mut carol = Client::bound(s.udp(), "carol", "127.0.0.20");
    assert_eq!(
        status(&attempt(&mut carol, "carol", "carol-pw")),
        throttled()
    );
    // alice is known there: not blocked with the address, only once her pair fails 3 times.
    assert_eq!(attempt(&mut nat, "alice", "alice-pw").status(), Some(200));
    for _ in 0..3 {
        assert_eq!(status(&attempt(&mut nat, "alice", "guess")), forbidden());
    }
    assert_eq!(status(&attempt(&mut nat, "alice", "alice-pw")), throttled());
}

#[test]
fn requests_without_credentials_are_still_challenged_from_a_blocked_address() {
    let s = server(strict());
    let mut c = Client::bound(s.udp(), "alice", "127.0.0.30");
    for _ in 0..3 {
        attempt(&mut c, "alice", "guess");
    }
    let r = c.transact(&register(&c, ""));
    assert_eq!(r.status(), Some(401));
    // An unparsable Authorization counts against the address.
    let mut d = Client::bound(s.udp(), "alice", "127.0.0.31");
    for _ in 0..3 {
        let r = d.transact(&register(&d, "Authorization: Digest username\r\n"));
        assert_eq!(status(&r), forbidden());
    }
    let r = attempt(&mut d, "alice", "alice-pw");
    assert_eq!(status(&r), throttled());
}

#[test]
fn behind_a_listed_front_proxy_the_client_address_counts() {
    let s = server(AuthLimits {
        proxies: vec!["127.0.0.40".parse().unwrap()],
        ..strict()
    });
    // The "proxy" sends requests with the client's Via below its own.
    let mut proxy = Client::bound(s.udp(), "alice", "127.0.0.40");
    let via = |client: &str| {
        format!(
            "Via: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK{};received={client};rport=5060\r\n",
            token()
        )
    };
    let ask_via = |p: &mut Client, client: &str| {
        let r = p.transact(&register(p, &via(client)));
        challenge(&r)
    };
    let send_via = |p: &mut Client, client: &str, a: &Answer| {
        let (line, _) = a.line();
        p.transact(&register(p, &format!("{}{line}", via(client))))
    };
    for _ in 0..3 {
        let ch = ask_via(&mut proxy, "203.0.113.7");
        let r = send_via(&mut proxy, "203.0.113.7", &Answer::to(&ch, "bob", "guess"));
        assert_eq!(status(&r), forbidden());
    }
    let ch = ask_via(&mut proxy, "203.0.113.7");
    let r = send_via(
        &mut proxy,
        "203.0.113.7",
        &Answer::to(&ch, "alice", "alice-pw"),
    );
    assert_eq!(status(&r), throttled());
    // Another client through the same proxy is not blocked; the nonce of one client is
    // not good for another.
    let r = send_via(
        &mut proxy,
        "203.0.113.8",
        &Answer::to(&ch, "alice", "alice-pw"),
    );
    assert!(challenge(&r).stale);
    let ch = ask_via(&mut proxy, "203.0.113.8");
    let r = send_via(
        &mut proxy,
        "203.0.113.8",
        &Answer::to(&ch, "alice", "alice-pw"),
    );
    assert_eq!(r.status(), Some(200));
}

// ---- 4. no user enumeration --------------------------------------------------------------

/// The parts of an answer that do not echo the request: status, reason, and every header
/// field but Via, From, To, Call-ID and CSeq, by name and value.
fn shape(r: &SipMessage) -> (u16, String, Vec<(String, String)>) {
    let mut fields: Vec<(String, String)> = r
        .all_headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .filter(|(n, _)| !["via", "from", "to", "call-id", "cseq"].contains(&n.as_str()))
        .collect();
    fields.sort();
    (r.status().unwrap(), r.reason().unwrap().to_string(), fields)
}

#[test]
fn an_unknown_user_is_answered_exactly_like_a_wrong_password() {
    let s = server(strict());
    let mut alice = Client::bound(s.udp(), "alice", "127.0.0.50");
    let mut nobody = Client::bound(s.udp(), "mallory", "127.0.0.51");
    let wrong = attempt(&mut alice, "alice", "guess");
    let unknown = attempt(&mut nobody, "mallory", "guess");
    assert_eq!(shape(&wrong), shape(&unknown));
    assert_eq!(status(&wrong), forbidden());
    // The To header differs only by the user and the tag.
    let to = |r: &SipMessage| {
        header_map(r)["to"]
            .split(";tag=")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        to(&wrong).replace("alice", "X"),
        to(&unknown).replace("mallory", "X")
    );
    // Throttled alike after as many failures.
    for _ in 0..2 {
        attempt(&mut alice, "alice", "guess");
        attempt(&mut nobody, "mallory", "guess");
    }
    let a = attempt(&mut alice, "alice", "guess");
    let n = attempt(&mut nobody, "mallory", "guess");
    assert_eq!(status(&a), throttled());
    assert_eq!(shape(&a), shape(&n));
}

// ---- 5. no secrets in the logs -----------------------------------------------------------

#[test]
fn passwords_and_responses_never_reach_the_logs() {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    impp::log::set_max_level(impp::log::Level::Trace);
    impp::log::set_sink(Some(Box::new(move |level, message, target| {
        sink.lock()
            .unwrap()
            .push(format!("{level} {target}: {message}"));
    })));

    let s = server(strict());
    let mut alice = Client::bound(s.udp(), "alice", "127.0.0.60");
    let mut secrets = vec!["alice-pw".to_string(), "guess-pw".to_string()];
    let ha1 = |pw: &str| {
        let c = Credential::new(format!("sip:alice@{DOMAIN}").parse().unwrap(), DOMAIN, pw);
        [c.ha1_md5, c.ha1_sha256]
    };
    secrets.extend(ha1("alice-pw"));
    secrets.extend(ha1("guess-pw"));
    let mut exchange = |password: &str, want: u16| {
        let ch = ask(&mut alice);
        let answer = Answer::to(&ch, "alice", password);
        let (line, response) = answer.line();
        let r = alice.transact(&register(&alice, &line));
        assert_eq!(r.status(), Some(want));
        // A message's Debug form hides its credentials too.
        let sent = parse(&register(&alice, &line));
        let debug = format!("{sent:?}");
        assert!(debug.contains("Authorization: <hidden>"), "{debug}");
        assert!(!debug.contains(&response), "{debug}");
        response
    };
    secrets.push(exchange("guess-pw", 403));
    secrets.push(exchange("alice-pw", 200));
    // Replayed and throttled requests too.
    let ch = ask(&mut alice);
    let (line, response) = Answer::to(&ch, "alice", "alice-pw").line();
    secrets.push(response);
    for want in [200, 401] {
        assert_eq!(
            alice.transact(&register(&alice, &line)).status(),
            Some(want)
        );
    }
    let mut guesser = Client::bound(s.udp(), "alice", "127.0.0.61");
    for _ in 0..4 {
        let ch = ask(&mut guesser);
        let (line, response) = Answer::to(&ch, "alice", "guess-pw").line();
        secrets.push(response);
        guesser.transact(&register(&guesser, &line));
    }
    // Debug forms of what holds a secret.
    let debug = format!(
        "{:?} {:?} {:?}",
        Credential::new(
            format!("sip:alice@{DOMAIN}").parse().unwrap(),
            DOMAIN,
            "alice-pw"
        ),
        impp::sip::digest_client::DigestClient::new("alice", "alice-pw"),
        impp::sip::agent::Account::new(
            format!("sip:alice@{DOMAIN}").parse().unwrap(),
            "alice",
            "alice-pw",
            impp::sip::route::NextHop::parse("udp:127.0.0.1:5060").unwrap(),
        ),
    );
    impp::log::set_sink(None);
    impp::log::set_max_level(impp::log::Level::Warn);
    drop(s);

    let lines = lines.lock().unwrap();
    let text = lines.join("\n");
    // The exchanges were logged (so the test looked at something).
    assert!(
        text.contains("refused: user \"alice\": wrong MD5 response"),
        "{text}"
    );
    assert!(text.contains("challenged again"), "{text}");
    assert!(text.contains("refused for 60 s from addresses"), "{text}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} logged:\n{text}");
        assert!(!debug.contains(secret.as_str()), "{secret} in {debug}");
    }
}
