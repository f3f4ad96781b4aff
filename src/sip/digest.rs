//! Server-side SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).
//!
//! A [`DigestAuthenticator`] issues challenges (the values of `WWW-Authenticate` or
//! `Proxy-Authenticate` header fields) and checks credentials (the value of an
//! `Authorization` or `Proxy-Authorization` header field) against stored
//! [`Credential`]s. It works on header *values* only: finding the header fields in a SIP
//! message, and sending the 401/407, is the caller's business.
//!
//! # Decisions
//!
//! - **Algorithms.** `SHA-256` and `MD5` are offered, SHA-256 first (RFC 8760 §2.4); MD5 can
//!   be switched off with [`DigestAuthenticator::with_md5`]. The `-sess` variants and
//!   `SHA-512-256` are refused with a reason naming the algorithm: a [`Credential`] only
//!   holds `H(username:realm:password)` for MD5 and SHA-256.
//! - **qop.** Challenges carry `qop="auth"` (RFC 3261 §22.4 requires servers to send it).
//!   `auth-int` is refused. A response without `qop` (the RFC 2069 form, which has no `nc`
//!   and so no replay protection within the nonce's lifetime) is refused by default;
//!   [`DigestAuthenticator::accept_rfc2069`] accepts it, and then each nonce can be used
//!   without `qop` only once.
//! - **Nonces** are self-validating, so no table is needed to know a nonce is genuine: a
//!   nonce is lower-case hex of 44 bytes, `issued-at (u64 Unix ms, big-endian) ‖ 12 random
//!   bytes ‖ the first 16 bytes of HMAC-SHA-256(key, label ‖ issued-at ‖ random ‖ realm) ‖
//!   the first 8 bytes of HMAC-SHA-256(key, label' ‖ issued-at ‖ random ‖ client)`.
//!   The first HMAC binds the nonce to its realm: a nonce of another realm, or one this key
//!   never issued, is refused. The second binds it to the client's address
//!   ([`DigestAuthenticator::challenge_for`]; an IPv6 address by its /64, see
//!   [`address_key`]): a genuine nonce answered from another address is answered
//!   [`Outcome::Stale`] *without checking the response*, so the client (which moved, or sits
//!   behind a NAT that changed its address) gets a fresh nonce for where it is now. That is
//!   what makes a failure attributable to an address: whoever sends a response for a nonce
//!   bound to an address received the challenge there, so a sender forging another's source
//!   address over UDP never gets a guess checked in that address's name (the server's
//!   failure throttle relies on it), and a sniffed Authorization cannot be replayed from
//!   elsewhere. The key is random per authenticator unless set with
//!   [`DigestAuthenticator::with_secret`] (so processes, or a restarted process, can accept
//!   each other's nonces). A genuine nonce older than the lifetime (default 300 s) gives
//!   [`Outcome::Stale`] — but only when the response is otherwise correct, so that
//!   `stale=true` never tells a client with a wrong password to just retry (RFC 7616 §3.3).
//! - **Replay.** For each nonce the highest `nc` seen is kept, with a bitmap of which of the
//!   [`DigestAuthenticator::with_nc_window`] values below it (default
//!   [`DEFAULT_NC_WINDOW`]) were used, until the nonce expires. An `nc` used before, or below
//!   the window, is a replay ([`Outcome::Replayed`]); an unused one inside the window is
//!   accepted once. The window is for order, not retransmissions (a retransmitted request is
//!   absorbed by the server transaction before it is authenticated): a client that sends a
//!   burst (a phone subscribing to a panel of buddies) may see its requests verified out of
//!   order, by the network or by the server's several worker threads. The table holds at
//!   most [`DigestAuthenticator::with_max_tracked_nonces`] nonces; when it is full the oldest
//!   is forgotten and every nonce issued no later than it is from then on answered as stale
//!   (the client gets a fresh nonce), so a forgotten nonce can never be replayed.
//! - **Unknown users** take the same path as wrong passwords, down to computing a response
//!   to compare (with a placeholder HA1), and get the same [`Outcome::Rejected`].
//! - **opaque** is a per-realm value derived from the key. A client that sends it back must
//!   send it unchanged; one that omits it is accepted (it carries no security here).
//! - The digest `uri` is not compared with the Request-URI: [`parse_authorization`] exposes
//!   it for a caller that wants to.
//!
//! HMAC-SHA-256 (RFC 2104) is implemented here over the `sha2` crate; no other dependency.
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::Digest as _;

use crate::engine::Clock;
use crate::error::{Error, Result};
use crate::store::Credential;
use crate::uri::Uri;

/// How long a nonce is good for unless configured otherwise.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// How many nonces' highest `nc` are remembered at most, unless configured otherwise.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;

/// How far below the highest `nc` seen an unused `nc` is still accepted, unless configured
/// otherwise (see the module notes on replay).
pub const DEFAULT_NC_WINDOW: u32 = 32;

/// The widest `nc` window (the bitmap's width).
pub const MAX_NC_WINDOW: u32 = 64;

/// How far in the future a nonce's issue time may be (clock skew between processes that
/// share a key) before the nonce is refused.
const FUTURE_TOLERANCE_MS: u64 = 60_000;

const NONCE_RANDOM_LEN: usize = 12;
const NONCE_MAC_LEN: usize = 16;
const NONCE_CLIENT_MAC_LEN: usize = 8;
const NONCE_LEN: usize = 8 + NONCE_RANDOM_LEN + NONCE_MAC_LEN + NONCE_CLIENT_MAC_LEN;
const NONCE_LABEL: &[u8] = b"impp sip digest nonce\0";
const NONCE_CLIENT_LABEL: &[u8] = b"impp sip digest nonce client\0";
const OPAQUE_LABEL: &[u8] = b"impp sip digest opaque\0";

/// A digest algorithm this module computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; kept for clients that know nothing else).
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The name as written in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm an `algorithm=` value names (case-insensitive), or why it is refused.
    fn from_param(value: &str) -> std::result::Result<Algorithm, String> {
        if value.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if value.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else if value.len() > 5 && value[value.len() - 5..].eq_ignore_ascii_case("-sess") {
            Err(format!(
                "algorithm {value} refused: session (-sess) variants are not supported"
            ))
        } else {
            Err(format!("algorithm {value:?} is not supported"))
        }
    }

    /// Lower-case hex of the hash of `parts` joined with `:`.
    pub(crate) fn hash(self, parts: &[&str]) -> String {
        fn run<D: md5::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run(md5::Md5::new(), parts),
            Algorithm::Sha256 => run(sha2::Sha256::new(), parts),
        }
    }

    /// The stored HA1 of `credential` for this algorithm.
    fn ha1(self, credential: &Credential) -> &str {
        match self {
            Algorithm::Md5 => &credential.ha1_md5,
            Algorithm::Sha256 => &credential.ha1_sha256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `response` a client computes (RFC 7616 §3.4.1): with `qop` `Some((qop, nc, cnonce))`,
/// `H(HA1:nonce:nc:cnonce:qop:HA2)`; without, the RFC 2069 form `H(HA1:nonce:HA2)`; where
/// `HA2 = H(method:uri)` and `ha1` is `H(username:realm:password)` in lower-case hex (as a
/// [`Credential`] stores it). Lower-case hex.
pub fn expected_response(
    algorithm: Algorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha2 = algorithm.hash(&[method, uri]);
    match qop {
        Some((qop, nc, cnonce)) => algorithm.hash(&[ha1, nonce, nc, cnonce, qop, &ha2]),
        None => algorithm.hash(&[ha1, nonce, &ha2]),
    }
}

/// What [`DigestAuthenticator::verify`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The credentials are correct; the request is from `user` (the stored credential's
    /// URI), and may act only as that identity.
    Authenticated {
        /// Who authenticated.
        user: Uri,
    },
    /// The response is correct but its nonce has expired (or was forgotten), or the nonce
    /// is genuine but was issued to another client address (then the response was not
    /// checked): challenge again with `stale = true`, and the client retries without asking
    /// its user.
    Stale,
    /// The response is correct, but its `nc` was used before under this nonce (or is below
    /// the window), or a nonce answered without `qop` is used again. The reason is for logs.
    Replayed(String),
    /// The credentials are well-formed but not accepted (wrong password, unknown user,
    /// realm not served, forged nonce, unsupported algorithm or qop). The
    /// reason is for logs; it never contains a password or HA1.
    Rejected(String),
    /// The header value does not follow the grammar, or lacks a required parameter.
    Malformed(String),
}

/// The parameters of a `Digest` Authorization value, unescaped. Unknown parameters are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestResponse {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as the server issued it.
    pub nonce: String,
    /// `uri`: the digest-uri (normally the Request-URI).
    pub uri: String,
    /// `response`: hex of the digest.
    pub response: String,
    /// `algorithm`, if given (absent means MD5).
    pub algorithm: Option<String>,
    /// `cnonce`, if given.
    pub cnonce: Option<String>,
    /// `nc`, if given (eight hex digits, checked).
    pub nc: Option<String>,
    /// `qop`, if given.
    pub qop: Option<String>,
    /// `opaque`, if given.
    pub opaque: Option<String>,
    /// `userhash=true` was given (RFC 7616 §3.4.4).
    pub userhash: bool,
}

/// Parses the value of an Authorization or Proxy-Authorization header field that carries
/// `Digest` credentials (RFC 7616 §3.4 grammar: the scheme, case-insensitive, then
/// comma-separated `name=value` parameters whose names are case-insensitive and whose values
/// are tokens or quoted strings).
pub fn parse_authorization(value: &str) -> Result<DigestResponse> {
    parse(value).map_err(|why| Error::Malformed(format!("digest credentials: {why}")))
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\n'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The scheme must be `Digest`; the parameters, names in lower case, values unescaped.
fn parse_params(value: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_tchar(b[i]) {
        i += 1;
    }
    let scheme = &value[start..i];
    if scheme.is_empty() {
        return Err("no authentication scheme".into());
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(format!("scheme {scheme:?} is not Digest"));
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err("the scheme must be followed by a space".into());
    }

    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        // Separators: white space and (possibly empty) list elements.
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(format!("expected a parameter name at byte {i}"));
        }
        let name = value[name_start..i].to_ascii_lowercase();
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return Err(format!("parameter {name} has no value"));
        }
        i += 1;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut out = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quoted value of {name}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = b.get(i + 1) else {
                            return Err(format!("unterminated quoted value of {name}"));
                        };
                        out.push(c);
                        i += 2;
                    }
                    Some(&c) if c < 0x20 && c != b'\t' || c == 0x7f => {
                        return Err(format!("control character in the value of {name}"));
                    }
                    Some(&c) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            // Only ASCII bytes were escaped, so the bytes are still UTF-8.
            String::from_utf8(out).map_err(|_| format!("value of {name} is not UTF-8"))?
        } else {
            let v_start = i;
            while i < b.len() && !is_ws(b[i]) && b[i] != b',' && b[i] != b'"' && b[i] >= 0x20 {
                i += 1;
            }
            if i == v_start {
                return Err(format!("parameter {name} has an empty value"));
            }
            value[v_start..i].to_owned()
        };
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            return Err(format!("expected a comma after parameter {name}"));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(format!("parameter {name} given twice"));
        }
        params.push((name, val));
    }
    Ok(params)
}

fn parse(value: &str) -> std::result::Result<DigestResponse, String> {
    let params = parse_params(value)?;
    let mut r = DigestResponse::default();
    let mut have = [false; 5];
    for (name, val) in params {
        match name.as_str() {
            "username" => (r.username, have[0]) = (val, true),
            "realm" => (r.realm, have[1]) = (val, true),
            "nonce" => (r.nonce, have[2]) = (val, true),
            "uri" => (r.uri, have[3]) = (val, true),
            "response" => (r.response, have[4]) = (val, true),
            "algorithm" => r.algorithm = Some(val),
            "cnonce" => r.cnonce = Some(val),
            "nc" => r.nc = Some(val),
            "qop" => r.qop = Some(val),
            "opaque" => r.opaque = Some(val),
            "userhash" => r.userhash = val.eq_ignore_ascii_case("true"),
            "username*" => {
                return Err("username* (RFC 8187 encoding) is not supported".into());
            }
            _ => {}
        }
    }
    for (ok, name) in have
        .iter()
        .zip(["username", "realm", "nonce", "uri", "response"])
    {
        if !ok {
            return Err(format!("missing parameter {name}"));
        }
    }
    match (&r.qop, &r.nc, &r.cnonce) {
        (Some(_), Some(_), Some(_)) | (None, None, None) => {}
        (Some(_), _, _) => return Err("qop without nc and cnonce".into()),
        (None, _, _) => return Err("nc or cnonce without qop".into()),
    }
    if let Some(nc) = &r.nc {
        if nc.len() != 8 || !nc.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("nc {nc:?} is not eight hex digits"));
        }
    }
    if r.response.is_empty() || !r.response.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("response is not hex".into());
    }
    Ok(r)
}

/// Writes `s` as a quoted-string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of hex text (either case), or `None`.
fn unhex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Equality whose time depends only on the lengths, not on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104) of the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = sha2::Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// 32 unpredictable bytes: the operating system's random device where there is one, mixed
/// with std's randomly keyed hasher and the time.
fn entropy() -> [u8; 32] {
    use std::io::Read as _;
    let mut h = sha2::Sha256::new();
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut buf).is_ok() {
            h.update(buf);
        }
    }
    for i in 0..4u64 {
        let mut s = RandomState::new().build_hasher();
        s.write_u64(i);
        h.update(s.finish().to_le_bytes());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize().into()
}

fn system_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A nonce's identity: when it was issued and its random part.
type NonceId = (u64, [u8; NONCE_RANDOM_LEN]);

/// What is remembered of one nonce's counts: the highest `nc` and which of the
/// [`MAX_NC_WINDOW`] values below it were used (bit `i`: `highest - 1 - i`).
#[derive(Debug, Clone, Copy)]
struct Seen {
    highest: u32,
    below: u64,
}

impl Seen {
    /// Takes `nc` if it is new and not below `window`; `false` for a replay.
    fn take(&mut self, nc: u32, window: u32) -> bool {
        if nc > self.highest {
            let shift = nc - self.highest;
            // The old highest moves to bit `shift - 1`; what falls off the end is forgotten.
            self.below = self.below.checked_shl(shift).unwrap_or(0)
                | 1u64.checked_shl(shift - 1).unwrap_or(0);
            self.highest = nc;
            return true;
        }
        let distance = self.highest - nc;
        if distance == 0 || distance > window.min(MAX_NC_WINDOW) {
            return false;
        }
        let bit = 1u64 << (distance - 1);
        if self.below & bit != 0 {
            return false;
        }
        self.below |= bit;
        true
    }
}

/// The counts seen per nonce, bounded.
#[derive(Debug, Default)]
struct NonceCounts {
    seen: HashMap<NonceId, Seen>,
    by_age: BTreeSet<NonceId>,
    /// Every nonce issued at or before this time that is not in `seen` has been
    /// forgotten (evicted when the table was full) and is treated as stale.
    forgotten_up_to: Option<u64>,
}

enum Count {
    Accepted,
    Replayed { highest: u32 },
    Forgotten,
}

/// The limits [`NonceCounts::record`] works within.
#[derive(Debug, Clone, Copy)]
struct CountLimits {
    lifetime_ms: u64,
    max_tracked: usize,
    window: u32,
}

impl NonceCounts {
    fn record(&mut self, id: NonceId, nc: u32, now: u64, limits: CountLimits) -> Count {
        // Forget nonces that have expired: they are answered as stale before getting here.
        while let Some(&oldest) = self.by_age.first() {
            if oldest.0.saturating_add(limits.lifetime_ms) >= now {
                break;
            }
            self.by_age.pop_first();
            self.seen.remove(&oldest);
        }
        if let Some(s) = self.seen.get_mut(&id) {
            return if s.take(nc, limits.window) {
                Count::Accepted
            } else {
                Count::Replayed { highest: s.highest }
            };
        }
        if self.forgotten_up_to.is_some_and(|f| id.0 <= f) {
            return Count::Forgotten;
        }
        while self.seen.len() >= limits.max_tracked.max(1) {
            let Some(oldest) = self.by_age.pop_first() else {
                break;
            };
            self.seen.remove(&oldest);
            self.forgotten_up_to = Some(self.forgotten_up_to.map_or(oldest.0, |f| f.max(oldest.0)));
        }
        if self.forgotten_up_to.is_some_and(|f| id.0 <= f) {
            return Count::Forgotten;
        }
        self.seen.insert(
            id,
            Seen {
                highest: nc,
                below: 0,
            },
        );
        self.by_age.insert(id);
        Count::Accepted
    }

    /// How many nonces are tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The address a client is known by, for binding nonces to it and for counting its
/// failures: an IPv4 address (an IPv4-mapped IPv6 address as the IPv4 one), or the /64 of an
/// IPv6 address (one host's privacy addresses share it, and a host that holds a /64 could
/// otherwise take a fresh address for each request).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The bytes a nonce's client MAC covers for `client` (see [`address_key`]).
fn client_tag(client: Option<IpAddr>) -> Vec<u8> {
    match client.map(address_key) {
        None => vec![0],
        Some(IpAddr::V4(a)) => [&[4u8][..], &a.octets()].concat(),
        Some(IpAddr::V6(a)) => [&[6u8][..], &a.octets()[..8]].concat(),
    }
}

/// Why a nonce is not accepted as it stands.
enum NonceProblem {
    /// Not issued by this key for this realm (forged, another realm, another server).
    Foreign,
    /// Genuine, but issued to another client address.
    Moved,
}

type UnixMs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Issues digest challenges and verifies digest credentials for one or more realms.
///
/// `Send + Sync`: share one (`Arc`) between the threads that handle requests.
pub struct DigestAuthenticator {
    realms: Vec<String>,
    key: Vec<u8>,
    seed: [u8; 32],
    counter: AtomicU64,
    lifetime_ms: u64,
    max_tracked: usize,
    nc_window: u32,
    rfc2069: bool,
    md5: bool,
    clock: UnixMs,
    counts: Mutex<NonceCounts>,
}

impl fmt::Debug for DigestAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuthenticator")
            .field("realms", &self.realms)
            .field("lifetime_ms", &self.lifetime_ms)
            .field("max_tracked", &self.max_tracked)
            .field("nc_window", &self.nc_window)
            .field("rfc2069", &self.rfc2069)
            .field("md5", &self.md5)
            .finish_non_exhaustive()
    }
}

impl DigestAuthenticator {
    /// An authenticator for `realms` (compared exactly, case-sensitively), with a random key,
    /// the default nonce lifetime, `nc` window and table size, MD5 offered, RFC 2069 responses refused, and
    /// the system clock. Fails if there is no realm, or a realm is empty or contains a control
    /// character.
    pub fn new<I, S>(realms: I) -> Result<DigestAuthenticator>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let realms: Vec<String> = realms.into_iter().map(Into::into).collect();
        if realms.is_empty() {
            return Err(Error::InvalidArgument(
                "digest authenticator: no realm".into(),
            ));
        }
        for r in &realms {
            if r.is_empty() || r.chars().any(char::is_control) {
                return Err(Error::InvalidArgument(format!(
                    "digest authenticator: invalid realm {r:?}"
                )));
            }
        }
        Ok(DigestAuthenticator {
            realms,
            key: entropy().to_vec(),
            seed: entropy(),
            counter: AtomicU64::new(0),
            lifetime_ms: DEFAULT_NONCE_LIFETIME.as_millis() as u64,
            max_tracked: DEFAULT_MAX_TRACKED_NONCES,
            nc_window: DEFAULT_NC_WINDOW,
            rfc2069: false,
            md5: true,
            clock: Arc::new(system_unix_ms),
            counts: Mutex::new(NonceCounts::default()),
        })
    }

    /// Uses `secret` as the nonce key, so that authenticators given the same secret (other
    /// processes, or this one after a restart) accept each other's nonces. At least 16 bytes.
    /// (Replay protection stays per authenticator.)
    pub fn with_secret(mut self, secret: &[u8]) -> Result<DigestAuthenticator> {
        if secret.len() < 16 {
            return Err(Error::InvalidArgument(format!(
                "digest authenticator: secret of {} bytes is shorter than 16",
                secret.len()
            )));
        }
        self.key = secret.to_vec();
        Ok(self)
    }

    /// How long a nonce is accepted after it was issued (rounded down to milliseconds; at
    /// least 1 ms).
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> DigestAuthenticator {
        self.lifetime_ms = (lifetime.as_millis() as u64).max(1);
        self
    }

    /// How many nonces' highest `nc` are remembered at most (at least 1).
    pub fn with_max_tracked_nonces(mut self, max: usize) -> DigestAuthenticator {
        self.max_tracked = max.max(1);
        self
    }

    /// How far below the highest `nc` seen under a nonce an unused `nc` is still accepted
    /// (at most [`MAX_NC_WINDOW`]; 0: `nc` must rise with every request).
    pub fn with_nc_window(mut self, window: u32) -> DigestAuthenticator {
        self.nc_window = window.min(MAX_NC_WINDOW);
        self
    }

    /// Whether responses without `qop` (RFC 2069) are accepted; each nonce then serves one
    /// such request only. Off by default.
    pub fn accept_rfc2069(mut self, accept: bool) -> DigestAuthenticator {
        self.rfc2069 = accept;
        self
    }

    /// Whether MD5 is offered and accepted (default yes; SHA-256 always is).
    pub fn with_md5(mut self, md5: bool) -> DigestAuthenticator {
        self.md5 = md5;
        self
    }

    /// Reads the time (Unix milliseconds) from `unix_ms` instead of the system clock.
    pub fn with_clock<F>(mut self, unix_ms: F) -> DigestAuthenticator
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        self.clock = Arc::new(unix_ms);
        self
    }

    /// Reads the time from the engine's clock ([`Clock::unix_ms`]).
    pub fn with_engine_clock(self, clock: Arc<dyn Clock>) -> DigestAuthenticator {
        self.with_clock(move || clock.unix_ms())
    }

    /// The realms served.
    pub fn realms(&self) -> &[String] {
        &self.realms
    }

    /// The values of the `WWW-Authenticate` (or `Proxy-Authenticate`) header fields for a
    /// challenge in `realm`: SHA-256 first, then MD5 (unless switched off), sharing one fresh
    /// nonce; `stale` adds `stale=true`. A realm not served is still challenged, but
    /// [`verify`](Self::verify) will reject the answer. The nonce is bound to no address:
    /// it is answered through [`verify`](Self::verify); a server that knows where requests
    /// come from uses [`challenge_for`](Self::challenge_for).
    pub fn challenge(&self, realm: &str, stale: bool) -> Vec<String> {
        self.challenge_bound(realm, stale, None)
    }

    /// [`challenge`](Self::challenge) with a nonce bound to the address of the client it is
    /// sent to: answered from another address ([`verify_from`](Self::verify_from)), the
    /// nonce gets [`Outcome::Stale`] and the response is not checked (see the module notes).
    pub fn challenge_for(&self, realm: &str, stale: bool, client: IpAddr) -> Vec<String> {
        self.challenge_bound(realm, stale, Some(client))
    }

    fn challenge_bound(&self, realm: &str, stale: bool, client: Option<IpAddr>) -> Vec<String> {
        let nonce = self.make_nonce(realm, client);
        let opaque = self.opaque(realm);
        let realm = quote(realm);
        let stale = if stale { ", stale=true" } else { "" };
        let mut algorithms = vec![Algorithm::Sha256];
        if self.md5 {
            algorithms.push(Algorithm::Md5);
        }
        algorithms
            .into_iter()
            .map(|a| {
                format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", opaque=\"{opaque}\", \
                     algorithm={a}, qop=\"auth\"{stale}"
                )
            })
            .collect()
    }

    /// Verifies the value of an `Authorization` (or `Proxy-Authorization`) header field of a
    /// request with `method`, answering a nonce of [`challenge`](Self::challenge).
    /// `lookup(username, realm)` finds the stored credential; it is called only for
    /// well-formed credentials with a genuine nonce of a served realm.
    pub fn verify<F>(&self, method: &str, authorization: &str, lookup: F) -> Outcome
    where
        F: FnOnce(&str, &str) -> Option<Credential>,
    {
        self.verify_bound(method, authorization, None, lookup)
    }

    /// [`verify`](Self::verify) for a request from `client`, answering a nonce of
    /// [`challenge_for`](Self::challenge_for).
    pub fn verify_from<F>(
        &self,
        method: &str,
        authorization: &str,
        client: IpAddr,
        lookup: F,
    ) -> Outcome
    where
        F: FnOnce(&str, &str) -> Option<Credential>,
    {
        self.verify_bound(method, authorization, Some(client), lookup)
    }

    fn verify_bound<F>(
        &self,
        method: &str,
        authorization: &str,
        client: Option<IpAddr>,
        lookup: F,
    ) -> Outcome
    where
        F: FnOnce(&str, &str) -> Option<Credential>,
    {
        let r = match parse(authorization) {
            Ok(r) => r,
            Err(why) => return Outcome::Malformed(why),
        };
        let user = &r.username;
        if !self.realms.contains(&r.realm) {
            return Outcome::Rejected(format!("user {user:?}: realm {:?} not served", r.realm));
        }
        let algorithm = match r
            .algorithm
            .as_deref()
            .map_or(Ok(Algorithm::Md5), Algorithm::from_param)
        {
            Ok(Algorithm::Md5) if !self.md5 => {
                return Outcome::Rejected(format!("user {user:?}: algorithm MD5 not offered"))
            }
            Ok(a) => a,
            Err(why) => return Outcome::Rejected(format!("user {user:?}: {why}")),
        };
        if r.userhash {
            return Outcome::Rejected(format!("user {user:?}: userhash not supported"));
        }
        // The parser checked that qop, nc and cnonce come together.
        let nc = match (&r.qop, &r.nc) {
            (Some(qop), _) if !qop.eq_ignore_ascii_case("auth") => {
                return Outcome::Rejected(format!("user {user:?}: qop {qop:?} not offered"))
            }
            // Eight hex digits, checked by the parser.
            (Some(_), Some(nc)) => u32::from_str_radix(nc, 16).unwrap_or(u32::MAX),
            _ if self.rfc2069 => u32::MAX,
            _ => {
                return Outcome::Rejected(format!(
                    "user {user:?}: response without qop (RFC 2069) not accepted"
                ))
            }
        };
        let id = match self.open_nonce(&r.realm, &r.nonce, client) {
            Ok(id) => id,
            Err(NonceProblem::Foreign) => {
                return Outcome::Rejected(format!(
                    "user {user:?}: nonce not issued by this server for realm {:?}",
                    r.realm
                ))
            }
            // Not checked: see the module notes.
            Err(NonceProblem::Moved) => return Outcome::Stale,
        };
        let now = (self.clock)();
        if id.0 > now.saturating_add(FUTURE_TOLERANCE_MS) {
            return Outcome::Rejected(format!("user {user:?}: nonce issued in the future"));
        }
        if let Some(opaque) = &r.opaque {
            if !ct_eq(opaque.as_bytes(), self.opaque(&r.realm).as_bytes()) {
                return Outcome::Rejected(format!("user {user:?}: opaque does not match"));
            }
        }
        let qop = match (&r.qop, &r.nc, &r.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) => {
                Some((qop.as_str(), nc.as_str(), cnonce.as_str()))
            }
            _ => None,
        };
        // Whatever the credential found (or not), a response is computed and compared, so
        // that an unknown user costs the same as a wrong password.
        let found = match lookup(&r.username, &r.realm) {
            None => Err(format!("unknown user {user:?} in realm {:?}", r.realm)),
            Some(c) if c.realm != r.realm || c.user.user().unwrap_or("") != r.username => Err(
                format!("user {user:?}: the credential found is for another user or realm"),
            ),
            Some(c) if algorithm.ha1(&c).is_empty() => {
                Err(format!("user {user:?}: no {algorithm} credential stored"))
            }
            Some(c) => Ok(c),
        };
        let placeholder;
        let ha1 = match &found {
            Ok(c) => algorithm.ha1(c),
            Err(_) => {
                placeholder = algorithm.hash(&[&r.username, &r.realm, ""]);
                &placeholder
            }
        };
        let expected = expected_response(algorithm, ha1, method, &r.uri, &r.nonce, qop);
        let given = r.response.to_ascii_lowercase();
        let matches = ct_eq(given.as_bytes(), expected.as_bytes());
        let credential = match found {
            Ok(c) => c,
            Err(why) => return Outcome::Rejected(why),
        };
        if !matches {
            return Outcome::Rejected(format!(
                "user {user:?}: wrong {algorithm} response (wrong password?)"
            ));
        }
        if now > id.0.saturating_add(self.lifetime_ms) {
            return Outcome::Stale;
        }
        let limits = CountLimits {
            lifetime_ms: self.lifetime_ms,
            max_tracked: self.max_tracked,
            window: self.nc_window,
        };
        let recorded = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(id, nc, now, limits);
        match recorded {
            Count::Accepted => Outcome::Authenticated {
                user: credential.user,
            },
            Count::Forgotten => Outcome::Stale,
            Count::Replayed { highest } if r.qop.is_none() || highest == u32::MAX => {
                Outcome::Replayed(format!("user {user:?}: nonce already used"))
            }
            Count::Replayed { highest } => Outcome::Replayed(format!(
                "user {user:?}: replayed nc {nc:08x} (highest seen {highest:08x})"
            )),
        }
    }

    /// A fresh nonce for `realm`, bound to `client`.
    fn make_nonce(&self, realm: &str, client: Option<IpAddr>) -> String {
        let issued = (self.clock)().to_be_bytes();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = sha2::Sha256::new();
        h.update(self.seed);
        h.update(n.to_be_bytes());
        let random = h.finalize();
        let random = &random[..NONCE_RANDOM_LEN];
        let mac = hmac_sha256(&self.key, &[NONCE_LABEL, &issued, random, realm.as_bytes()]);
        let tag = client_tag(client);
        let client_mac = hmac_sha256(&self.key, &[NONCE_CLIENT_LABEL, &issued, random, &tag]);
        let mut bytes = Vec::with_capacity(NONCE_LEN);
        bytes.extend_from_slice(&issued);
        bytes.extend_from_slice(random);
        bytes.extend_from_slice(&mac[..NONCE_MAC_LEN]);
        bytes.extend_from_slice(&client_mac[..NONCE_CLIENT_MAC_LEN]);
        hex(&bytes)
    }

    /// The identity of `nonce` if this authenticator's key issued it for `realm` and
    /// `client`.
    fn open_nonce(
        &self,
        realm: &str,
        nonce: &str,
        client: Option<IpAddr>,
    ) -> std::result::Result<NonceId, NonceProblem> {
        let bytes = unhex(nonce).ok_or(NonceProblem::Foreign)?;
        if bytes.len() != NONCE_LEN {
            return Err(NonceProblem::Foreign);
        }
        let (issued, rest) = bytes.split_at(8);
        let (random, rest) = rest.split_at(NONCE_RANDOM_LEN);
        let (mac, client_mac) = rest.split_at(NONCE_MAC_LEN);
        let expected = hmac_sha256(&self.key, &[NONCE_LABEL, issued, random, realm.as_bytes()]);
        if !ct_eq(mac, &expected[..NONCE_MAC_LEN]) {
            return Err(NonceProblem::Foreign);
        }
        let tag = client_tag(client);
        let expected = hmac_sha256(&self.key, &[NONCE_CLIENT_LABEL, issued, random, &tag]);
        if !ct_eq(client_mac, &expected[..NONCE_CLIENT_MAC_LEN]) {
            return Err(NonceProblem::Moved);
        }
        let issued: [u8; 8] = issued.try_into().map_err(|_| NonceProblem::Foreign)?;
        let random = random.try_into().map_err(|_| NonceProblem::Foreign)?;
        Ok((u64::from_be_bytes(issued), random))
    }

    /// The `opaque` value of `realm`.
    fn opaque(&self, realm: &str) -> String {
        hex(&hmac_sha256(&self.key, &[OPAQUE_LABEL, realm.as_bytes()])[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Credential {
        Credential::new(
            Uri::parse("sip:alice@example.test").unwrap(),
            "example.test",
            "secret",
        )
    }

    /// A client's Authorization value answering `challenge`.
    fn answer(challenge: &str, password: &str, nc: u32, alg: Option<&str>) -> String {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let a = match alg {
            Some("SHA-256") => Algorithm::Sha256,
            _ => Algorithm::Md5,
        };
        let ha1 = a.hash(&["alice", "example.test", password]);
        let ha2 = a.hash(&["REGISTER", "sip:example.test"]);
        let nc = format!("{nc:08x}");
        let resp = a.hash(&[&ha1, nonce, &nc, "xyz", "auth", &ha2]);
        let alg = alg.map_or(String::new(), |a| format!(", algorithm={a}"));
        format!(
            "Digest username=\"alice\", realm=\"example.test\", nonce=\"{nonce}\", \
             uri=\"sip:example.test\", response=\"{resp}\", cnonce=\"xyz\", nc={nc}, qop=auth{alg}"
        )
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya ", b"want for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hex_round_trips_and_ct_eq() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex("0001ABff").unwrap(), b);
        assert!(unhex("abc").is_none() && unhex("zz").is_none());
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }

    #[test]
    fn nonce_is_bound_to_realm_and_key() {
        let a = DigestAuthenticator::new(["example.test", "other.test"]).unwrap();
        let n = a.make_nonce("example.test", None);
        assert_eq!(n.len(), NONCE_LEN * 2);
        assert!(a.open_nonce("example.test", &n, None).is_ok());
        assert!(matches!(
            a.open_nonce("other.test", &n, None),
            Err(NonceProblem::Foreign)
        ));
        let b = DigestAuthenticator::new(["example.test"]).unwrap();
        assert!(matches!(
            b.open_nonce("example.test", &n, None),
            Err(NonceProblem::Foreign)
        ));
        assert_ne!(n, a.make_nonce("example.test", None));
        // One flipped bit anywhere makes it foreign, or moved when it is in the client MAC.
        let mut bytes = unhex(&n).unwrap();
        bytes[NONCE_LEN - 1] ^= 1;
        assert!(matches!(
            a.open_nonce("example.test", &hex(&bytes), None),
            Err(NonceProblem::Moved)
        ));
        bytes[NONCE_LEN - NONCE_CLIENT_MAC_LEN - 1] ^= 1;
        assert!(matches!(
            a.open_nonce("example.test", &hex(&bytes), None),
            Err(NonceProblem::Foreign)
        ));
    }

    #[test]
    fn shared_secret_is_shared() {
        let secret = [7u8; 32];
        let a = DigestAuthenticator::new(["example.test"])
            .unwrap()
            .with_secret(&secret)
            .unwrap();
        let b = DigestAuthenticator::new(["example.test"])
            .unwrap()
            .with_secret(&secret)
            .unwrap();
        let n = a.make_nonce("example.test", None);
        assert!(b.open_nonce("example.test", &n, None).is_ok());
        assert_eq!(a.opaque("example.test"), b.opaque("example.test"));
        assert!(DigestAuthenticator::new(["x"])
            .unwrap()
            .with_secret(b"short")
            .is_err());
    }

    #[test]
    fn constructor_checks_realms() {
        assert!(DigestAuthenticator::new(Vec::<String>::new()).is_err());
        assert!(DigestAuthenticator::new([""]).is_err());
        assert!(DigestAuthenticator::new(["a\r\nb"]).is_err());
    }

    #[test]
    fn challenge_quotes_realm() {
        let a = DigestAuthenticator::new(["say \"hi\""]).unwrap();
        let c = a.challenge("say \"hi\"", false);
        assert!(
            c[0].starts_with("Digest realm=\"say \\\"hi\\\"\""),
            "{}",
            c[0]
        );
        let p = parse_params(&c[0]).unwrap();
        assert_eq!(p[0], ("realm".to_owned(), "say \"hi\"".to_owned()));
    }

    #[test]
    fn table_full_forgets_oldest_and_marks_it_stale() {
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let c = clock.clone();
        let a = DigestAuthenticator::new(["example.test"])
            .unwrap()
            .with_max_tracked_nonces(2)
            .with_clock(move || c.load(Ordering::Relaxed));
        let lookup = |_: &str, _: &str| Some(alice());
        let mut chals = Vec::new();
        for _ in 0..3 {
            chals.push(a.challenge("example.test", false).remove(1));
            clock.fetch_add(1, Ordering::Relaxed);
        }
        for ch in &chals {
            let v = answer(ch, "secret", 1, None);
            assert!(matches!(
                a.verify("REGISTER", &v, lookup),
                Outcome::Authenticated { .. }
            ));
        }
        assert_eq!(a.counts.lock().unwrap().len(), 2);
        // The first nonce was forgotten: its next use is stale, never a replay.
        let v = answer(&chals[0], "secret", 1, None);
        assert_eq!(a.verify("REGISTER", &v, lookup), Outcome::Stale);
        let v = answer(&chals[0], "secret", 2, None);
        assert_eq!(a.verify("REGISTER", &v, lookup), Outcome::Stale);
        // The newest is still tracked.
        let v = answer(&chals[2], "secret", 1, None);
        assert!(matches!(
            a.verify("REGISTER", &v, lookup),
            Outcome::Replayed(_)
        ));
    }

    #[test]
    fn expired_entries_leave_the_table() {
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let c = clock.clone();
        let a = DigestAuthenticator::new(["example.test"])
            .unwrap()
            .with_nonce_lifetime(Duration::from_secs(10))
            .with_clock(move || c.load(Ordering::Relaxed));
        let lookup = |_: &str, _: &str| Some(alice());
        let ch = a.challenge("example.test", false).remove(0);
        let v = answer(&ch, "secret", 1, Some("SHA-256"));
        assert!(matches!(
            a.verify("REGISTER", &v, lookup),
            Outcome::Authenticated { .. }
        ));
        clock.fetch_add(11_000, Ordering::Relaxed);
        let ch = a.challenge("example.test", false).remove(0);
        let v = answer(&ch, "secret", 1, Some("SHA-256"));
        assert!(matches!(
            a.verify("REGISTER", &v, lookup),
            Outcome::Authenticated { .. }
        ));
        assert_eq!(a.counts.lock().unwrap().len(), 1);
    }

    #[test]
    fn nonce_is_bound_to_the_client_address() {
        let a = DigestAuthenticator::new(["example.test"]).unwrap();
        let lookup = |_: &str, _: &str| Some(alice());
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        let there: IpAddr = "192.0.2.2".parse().unwrap();
        let ch = a.challenge_for("example.test", false, here).remove(1);
        // From elsewhere: stale, even with a wrong password (it is not checked), and the
        // nonce's count is not taken.
        for password in ["secret", "guess"] {
            let v = answer(&ch, password, 1, None);
            assert_eq!(a.verify_from("REGISTER", &v, there, lookup), Outcome::Stale);
            assert_eq!(a.verify("REGISTER", &v, lookup), Outcome::Stale);
        }
        let v = answer(&ch, "secret", 1, None);
        assert!(matches!(
            a.verify_from("REGISTER", &v, here, lookup),
            Outcome::Authenticated { .. }
        ));
        // An unbound nonce is not good from an address either.
        let ch = a.challenge("example.test", false).remove(1);
        let v = answer(&ch, "secret", 1, None);
        assert_eq!(a.verify_from("REGISTER", &v, here, lookup), Outcome::Stale);
        // IPv6 by its /64; an IPv4-mapped address as the IPv4 one.
        let v6a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        let ch = a.challenge_for("example.test", false, v6a).remove(1);
        let v = answer(&ch, "secret", 1, None);
        assert_eq!(a.verify_from("REGISTER", &v, v6c, lookup), Outcome::Stale);
        assert!(matches!(
            a.verify_from("REGISTER", &v, v6b, lookup),
            Outcome::Authenticated { .. }
        ));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), here);
        let ch = a.challenge_for("example.test", false, mapped).remove(1);
        let v = answer(&ch, "secret", 1, None);
        assert!(matches!(
            a.verify_from("REGISTER", &v, here, lookup),
            Outcome::Authenticated { .. }
        ));
    }

    #[test]
    fn nc_window_takes_each_value_once() {
        let mut s = Seen {
            highest: 10,
            below: 0,
        };
        assert!(!s.take(10, 4), "the highest again");
        assert!(s.take(8, 4) && !s.take(8, 4), "inside the window, once");
        assert!(s.take(6, 4) && !s.take(5, 4), "the window's edge");
        assert!(s.take(12, 4) && s.take(11, 4) && s.take(9, 4));
        assert!(
            !s.take(10, 4) && !s.take(8, 4) && !s.take(11, 4),
            "shifted with it"
        );
        assert!(!s.take(7, 4), "fell out");
        // A jump past the whole bitmap forgets it; the old highest is below the window.
        assert!(s.take(12 + 100, 64) && !s.take(12, 64) && s.take(111, 64));
        // Strict (no window).
        let mut s = Seen {
            highest: 1,
            below: 0,
        };
        assert!(s.take(2, 0) && !s.take(1, 0) && !s.take(2, 0) && s.take(3, 0));
        // The widest window reaches 64 below, not 65.
        let mut s = Seen {
            highest: 100,
            below: 0,
        };
        assert!(s.take(36, 64) && !s.take(35, 64) && s.take(99, 64));
        assert!(s.take(u32::MAX, 64) && !s.take(u32::MAX, 64));
    }

    #[test]
    fn unknown_user_and_wrong_password_are_refused_alike() {
        let a = DigestAuthenticator::new(["example.test"]).unwrap();
        let ch = a.challenge("example.test", false).remove(1);
        let v = answer(&ch, "guess", 1, None);
        let wrong = a.verify("REGISTER", &v, |_: &str, _: &str| Some(alice()));
        let unknown = a.verify("REGISTER", &v, |_: &str, _: &str| None);
        assert!(matches!(wrong, Outcome::Rejected(_)), "{wrong:?}");
        assert!(matches!(unknown, Outcome::Rejected(_)), "{unknown:?}");
        // A response computed with the placeholder HA1 of an unknown user is no key.
        let placeholder = Algorithm::Md5.hash(&["alice", "example.test", ""]);
        let nonce = ch
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let resp = expected_response(
            Algorithm::Md5,
            &placeholder,
            "REGISTER",
            "sip:example.test",
            nonce,
            Some(("auth", "00000001", "xyz")),
        );
        let v = format!(
            "Digest username=\"alice\", realm=\"example.test\", nonce=\"{nonce}\", \
             uri=\"sip:example.test\", response=\"{resp}\", cnonce=\"xyz\", nc=00000001, qop=auth"
        );
        assert!(matches!(
            a.verify("REGISTER", &v, |_: &str, _: &str| None),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn parse_reports_what_is_wrong() {
        assert!(parse("").unwrap_err().contains("no authentication scheme"));
        assert!(parse("Basic abc=").unwrap_err().contains("not Digest"));
        assert!(parse("Digest username=\"a")
            .unwrap_err()
            .contains("unterminated"));
        assert!(parse("Digest username").unwrap_err().contains("no value"));
        assert!(parse("Digest username=a b").unwrap_err().contains("comma"));
        assert!(parse("Digest username=a, username=b")
            .unwrap_err()
            .contains("twice"));
        assert!(parse("Digest username=a")
            .unwrap_err()
            .contains("missing parameter realm"));
    }
}
