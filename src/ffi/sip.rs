//! The SIP stack over an engine (DESIGN §5): the server role for the engine's domains
//! (registrar, presence agent, IM relay), forwarding to next hops for other domains, and
//! federation (one back-end subscription per remote presentity). Configure it with an
//! `impp_sip_config`, start it over a running engine with `impp_sip_start`, stop it with
//! `impp_sip_free`.
//!
//! While it runs, the stack takes the engine events that are its own to deliver
//! (notifications of watchers that subscribed over SIP, messages for registered SIP
//! contacts); every other event still reaches the application through its callback or
//! `impp_engine_next_event`, as without the stack.
//!
//! What protects a stack exposed to strangers is set on the configuration too: TLS
//! (`impp_sip_config_set_tls_files`), bounds on connections, a rate per source address and
//! the digest throttle; so is whom it believes for other domains' users (trusted peers,
//! `impp_sip_config_add_peer`; `impp_sip_config_set_federation`) and which telephony systems
//! publish for its own (`impp_sip_config_add_publisher`). `impp_sip_stat` reads what a
//! running stack refused (`impp_sip_counter`).
//!
//! Threading contract: a configuration is used by one thread at a time; a running stack may be
//! used from any thread. `impp_sip_free` joins the stack's threads: called from inside the
//! engine's event callback it returns `IMPP_ERR_IN_CALLBACK` and stops nothing, as
//! `impp_engine_free` does. Free the stack before the engine (freeing the engine first is
//! safe, but the stack then answers every request `503`).

use std::ffi::c_char;
use std::path::Path;
use std::time::Duration;

use super::account::impp_account;
use super::boundary::{
    free_handle, guard, guard_value, handle, handle_mut, out_arg, str_arg, write_out,
};
use super::engine::{engine_ref, impp_engine, package_arg, uri_arg};
use super::enum_arg;
use super::status::impp_status;
use crate::engine::dispatcher;
use crate::error::{Error, Result};
use crate::sip::digest::MAX_NC_WINDOW;
use crate::sip::rate::RateLimit;
use crate::sip::route::{NextHop, Route};
use crate::sip::tls::{TlsConfig, TrustAnchors};
use crate::sip::transport::{ListenAddr, Proto};
use crate::sip::{
    AuthLimits, ConnectionLimits, Federation, SipServer, SipServerConfig, TrustedPeer,
    TrustedPublisher,
};

/// How a SIP stack is set up. Create with `impp_sip_config_new`; `impp_sip_start` consumes it.
pub struct impp_sip_config {
    config: SipServerConfig,
}

/// A running SIP stack. Stop and free it with `impp_sip_free`.
pub struct impp_sip {
    server: SipServer,
}

/// A new configuration: no listen address yet (add at least one), digest authentication on,
/// federation on, no routes, T1 500 ms, 2 worker threads; other domains' users believed
/// from trusted peers only (`IMPP_FEDERATION_TRUSTED`), with no peer or publisher listed.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (`out` NULL).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_new(out: *mut *mut impp_sip_config) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        let config = Box::new(impp_sip_config {
            config: SipServerConfig::new(Vec::new()),
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(config)) };
        Ok(())
    })
}

/// Frees a configuration that was not given to `impp_sip_start`. NULL is a no-op.
///
/// # Safety
/// `config` is NULL or a configuration from `impp_sip_config_new`, not yet freed or consumed.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_free(config: *mut impp_sip_config) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(config) }
}

/// Runs `change` on the configuration behind `config` inside the panic boundary.
///
/// # Safety
/// `config` is NULL or a live configuration from `impp_sip_config_new`, used by no other
/// thread during the call.
unsafe fn with_config(
    config: *mut impp_sip_config,
    change: impl FnOnce(&mut SipServerConfig) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let c = unsafe { handle_mut(config, "config") }?;
        change(&mut c.config)
    })
}

/// Adds a listen address: `"udp:127.0.0.1:5060"`, `"tcp:[::1]:5060"`, `"tls:0.0.0.0:5061"`,
/// or a WebSocket one for browsers (RFC 7118): `"ws:127.0.0.1:8080"`, `"wss:0.0.0.0:8443"`
/// (port 0: any free port, see `impp_sip_local_address`). Any number of addresses of each
/// transport, IPv4 and IPv6. A TLS or WSS address needs a certificate and key
/// (`impp_sip_config_set_tls_files` or `_set_tls_pem`) by `impp_sip_start`; which pages may
/// connect over WebSocket: `impp_sip_config_add_ws_origin`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `udp|tcp|tls|ws|wss:ADDR:PORT`). Nothing
/// changes on error.
///
/// # Safety
/// `config` NULL or live; `address` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_listen(
    config: *mut impp_sip_config,
    address: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(address, "address") };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.listen.push(ListenAddr::parse(text?)?);
            Ok(())
        })
    }
}

/// Whether REGISTER, PUBLISH, SUBSCRIBE and MESSAGE from users of the engine's domains must
/// carry digest credentials of a user in the engine's directory
/// (`impp_engine_set_user_password`). Default: yes. Off only for test rigs.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_authenticate(
    config: *mut impp_sip_config,
    on: bool,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.authenticate = on;
            Ok(())
        })
    }
}

/// Whether challenges offer SHA-256 next to MD5 (RFC 8760). Default: yes. Some deployed
/// clients (baresip) fail on a challenge they do not know: turn it off for them.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_offer_sha256(
    config: *mut impp_sip_config,
    on: bool,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.offer_sha256 = on;
            Ok(())
        })
    }
}

/// Whether a SUBSCRIBE from a user of the engine's domains to a presentity of another domain
/// is served here with one back-end subscription per remote presentity shared by all local
/// watchers (federation), rather than forwarded. Default: yes.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_federate(
    config: *mut impp_sip_config,
    on: bool,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.federate = on;
            Ok(())
        })
    }
}

/// Adds a route: `"b.example=udp:192.0.2.7:5060"` sends requests for `b.example` there;
/// `"*=tcp:..."` is the default route for every domain without its own. A later route for
/// the same domain replaces an earlier one. A next hop may be a host name instead
/// (`"b.example=sip.b.example"`, `"b.example=tcp:sip.b.example"`,
/// `"b.example=sip.b.example:5070"`), resolved by RFC 3263 (NAPTR, SRV, A/AAAA) with the DNS
/// server of `/etc/resolv.conf`, and `"*=dns"` resolves each request's own domain; a request
/// waiting for DNS waits on the resolver's thread, never on the caller's. A `tls:` next hop
/// needs a certificate and key (`impp_sip_config_set_tls_files`), and its certificate must
/// name the domain and chain to the trust anchors.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `DOMAIN=udp|tcp|tls:ADDR:PORT`,
/// `DOMAIN=[udp:|tcp:|tls:]HOST[:PORT]` or `DOMAIN=dns`). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `route` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_route(
    config: *mut impp_sip_config,
    route: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(route, "route") };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.routes.add(Route::parse(text?)?);
            Ok(())
        })
    }
}

/// Adds an account (the user-agent role), described by `account` (see `impp_account_new`),
/// which the call copies: it stays the caller's, to reuse or free. The stack registers the
/// account's AOR (`sip:alice@b.example`) at its registrar; publishes the AOR's presence as
/// composed in the engine (publish it there as for any presentity); subscribes to buddies for
/// the application (an `impp_engine_subscribe` whose watcher is the AOR and whose presentity
/// is of another domain goes out through the account); sends the AOR's messages to other
/// domains through it, and hands MESSAGEs relayed to its contact to the application as
/// `IMPP_EVENT_MESSAGE`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, an AOR without a user part and no user name
/// set). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `account` NULL or a live account not modified during the call.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_account(
    config: *mut impp_sip_config,
    account: *const impp_account,
) -> impp_status {
    // SAFETY: the caller's contract (`config` and `account`).
    unsafe {
        with_config(config, |c| {
            let account = handle(account, "account")?;
            c.accounts.push(account.to_account()?);
            Ok(())
        })
    }
}

/// The transaction timer T1 in milliseconds (RFC 3261: 500; retransmissions start at T1 and
/// a transaction gives up after 64·T1). 1 to 60,000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (out of range).
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_t1_ms(
    config: *mut impp_sip_config,
    t1_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.timers.t1 = ms_in_range("T1", t1_ms, 1, 60_000)?;
            Ok(())
        })
    }
}

/// Threads handling requests (1 to 64; default 2).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (out of range).
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_workers(
    config: *mut impp_sip_config,
    workers: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            if !(1..=64).contains(&workers) {
                return Err(Error::InvalidArgument(format!(
                    "{workers} workers is out of range (1 to 64)"
                )));
            }
            c.workers = workers as usize;
            Ok(())
        })
    }
}

/// How long the list server (RFC 4662) collects changes of a list's resources before it
/// sends one partial-state NOTIFY, in milliseconds (default 1,000); 0: a NOTIFY for each
/// change as it comes (still one in flight per list dialog). 0 to 60,000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_list_batch_interval_ms(
    config: *mut impp_sip_config,
    interval_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.list_batch_interval = ms_in_range("the list batch interval", interval_ms, 0, 60_000)?;
            Ok(())
        })
    }
}

/// `ms` as a duration, if it is within `min..=max` milliseconds; else an
/// `IMPP_ERR_INVALID_ARGUMENT` naming `what` and the range.
fn ms_in_range(what: &str, ms: u32, min: u32, max: u32) -> Result<Duration> {
    if !(min..=max).contains(&ms) {
        return Err(Error::InvalidArgument(format!(
            "{what} of {ms} ms is out of range ({min} to {max})"
        )));
    }
    Ok(Duration::from_millis(u64::from(ms)))
}

/// `max` as a count, if it is at least 1.
fn at_least_one(what: &str, max: u32) -> Result<usize> {
    if max == 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be at least 1 (UINT32_MAX for no practical bound), not 0"
        )));
    }
    usize::try_from(max).map_err(|_| Error::InvalidArgument(format!("{what} {max} is too large")))
}

/// One day in milliseconds: the longest timeout or block these setters take.
const DAY_MS: u32 = 86_400_000;

/// Sets the TLS certificate, key and trust anchors from PEM files, for TLS listen addresses
/// and for outgoing TLS (routes and accounts with `tls:` next hops): `cert_path` the
/// certificate chain (the server's certificate first), `key_path` its private key (PKCS#8,
/// PKCS#1 or SEC1), `ca_path` the certificates peers' certificates must chain to, or NULL
/// for the system's trust store. The files are read and checked during the call (the key
/// must fit the certificate); a later call replaces the earlier setting.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL `config`, `cert_path` or `key_path`; a file that
/// cannot be read, holds no PEM certificate or key, or a key that does not fit the
/// certificate: `impp_last_error` names the file and why). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; each path NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_tls_files(
    config: *mut impp_sip_config,
    cert_path: *const c_char,
    key_path: *const c_char,
    ca_path: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract (each pointer NULL or NUL-terminated).
    let (cert, key) = unsafe {
        (
            str_arg(cert_path, "cert_path"),
            str_arg(key_path, "key_path"),
        )
    };
    let ca = if ca_path.is_null() {
        None
    } else {
        // SAFETY: forwarded contract.
        Some(unsafe { str_arg(ca_path, "ca_path") })
    };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            let ca = ca.transpose()?;
            let tls =
                TlsConfig::from_pem_files(Path::new(cert?), Path::new(key?), ca.map(Path::new))?;
            c.tls = Some(tls);
            Ok(())
        })
    }
}

/// As `impp_sip_config_set_tls_files`, from PEM text in memory: `cert_pem` the certificate
/// chain, `key_pem` its private key, `ca_pem` the trust anchors (one or more CERTIFICATE
/// blocks) or NULL for the system's. The library keeps what it needs: the strings may be
/// freed (and the key's wiped) after the call.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL `config`, `cert_pem` or `key_pem`; text that
/// holds no PEM certificate or key; a key that does not fit the certificate). Nothing changes
/// on error.
///
/// # Safety
/// `config` NULL or live; each string NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_tls_pem(
    config: *mut impp_sip_config,
    cert_pem: *const c_char,
    key_pem: *const c_char,
    ca_pem: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract (each pointer NULL or NUL-terminated).
    let (cert, key) = unsafe { (str_arg(cert_pem, "cert_pem"), str_arg(key_pem, "key_pem")) };
    let ca = if ca_pem.is_null() {
        None
    } else {
        // SAFETY: forwarded contract.
        Some(unsafe { str_arg(ca_pem, "ca_pem") })
    };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            let anchors = match ca.transpose()? {
                Some(pem) => TrustAnchors::Pem(pem.as_bytes()),
                None => TrustAnchors::System,
            };
            let tls = TlsConfig::from_pem(cert?.as_bytes(), key?.as_bytes(), anchors)?;
            c.tls = Some(tls);
            Ok(())
        })
    }
}

/// Runs `change` on the connection limits of `config`.
///
/// # Safety
/// As for `with_config`.
unsafe fn with_connections(
    config: *mut impp_sip_config,
    change: impl FnOnce(&mut ConnectionLimits) -> Result<()>,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { with_config(config, |c| change(&mut c.connections)) }
}

/// TCP and TLS connections open at once, inbound and outbound (default 4096); beyond it new
/// inbound connections are refused. At least 1.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_max_connections(
    config: *mut impp_sip_config,
    max: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_connections(config, |l| {
            l.max_total = at_least_one("max_connections", max)?;
            Ok(())
        })
    }
}

/// Inbound TCP and TLS connections from one IP address open at once (default 64), so that
/// one address cannot take them all; one more is refused (counted as
/// `IMPP_SIP_STAT_CONNECTIONS_REFUSED`). At least 1.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, 0). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_max_connections_per_address(
    config: *mut impp_sip_config,
    max: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_connections(config, |l| {
            l.max_per_address = at_least_one("max_connections_per_address", max)?;
            Ok(())
        })
    }
}

/// A TCP or TLS connection with nothing read or written for this long is closed, in
/// milliseconds (default 180,000). 100 to 86,400,000 (a day).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_idle_timeout_ms(
    config: *mut impp_sip_config,
    timeout_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_connections(config, |l| {
            l.idle_timeout = ms_in_range("the idle timeout", timeout_ms, 100, DAY_MS)?;
            Ok(())
        })
    }
}

/// A TLS handshake must end this long after the connection opened, in milliseconds
/// (default 10,000); else the connection is closed (counted as
/// `IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT`). 100 to 600,000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_tls_handshake_timeout_ms(
    config: *mut impp_sip_config,
    timeout_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_connections(config, |l| {
            l.handshake_timeout =
                ms_in_range("the TLS handshake timeout", timeout_ms, 100, 600_000)?;
            Ok(())
        })
    }
}

/// An inbound TCP or TLS connection on which no request authenticated (nor a trusted peer
/// spoke) is closed this long after it opened, in milliseconds (default 32,000; counted as
/// `IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT`). 100 to 86,400,000 (a day).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_unvouched_timeout_ms(
    config: *mut impp_sip_config,
    timeout_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_connections(config, |l| {
            l.unvouched_timeout = ms_in_range("the unvouched timeout", timeout_ms, 100, DAY_MS)?;
            Ok(())
        })
    }
}

/// Messages each source address may send: `per_second` on average, in bursts of up to
/// `burst` (at least `per_second`). Beyond that as many again are answered `503` with
/// Retry-After (`IMPP_SIP_STAT_RATE_REFUSED`) and the rest dropped unread
/// (`IMPP_SIP_STAT_RATE_DROPPED`). `per_second` 0 turns the limit off (`burst` is then
/// ignored). Default: 200 a second, bursts of 1000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, `burst` below a non-zero `per_second`).
/// Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_rate_limit(
    config: *mut impp_sip_config,
    per_second: u32,
    burst: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.rate_limit = if per_second == 0 {
                RateLimit::OFF
            } else if burst < per_second {
                return Err(Error::InvalidArgument(format!(
                    "a burst of {burst} is below the rate of {per_second} a second"
                )));
            } else {
                RateLimit { per_second, burst }
            };
            Ok(())
        })
    }
}

/// Runs `change` on the digest limits of `config`.
///
/// # Safety
/// As for `with_config`.
unsafe fn with_auth_limits(
    config: *mut impp_sip_config,
    change: impl FnOnce(&mut AuthLimits) -> Result<()>,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe { with_config(config, |c| change(&mut c.auth_limits)) }
}

/// How long a digest nonce is good for, in milliseconds (default 300,000); a client
/// answering an older one is challenged again with `stale=true`. 1,000 to 86,400,000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_nonce_lifetime_ms(
    config: *mut impp_sip_config,
    lifetime_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            l.nonce_lifetime = ms_in_range("the nonce lifetime", lifetime_ms, 1_000, DAY_MS)?;
            Ok(())
        })
    }
}

/// How far below the highest nonce count (`nc`) seen under a nonce an unused one is still
/// accepted, for requests verified out of order (default 32); 0: `nc` must rise with every
/// request. 0 to 64. A reused `nc` is always challenged again
/// (`IMPP_SIP_STAT_NONCE_REPLAYS`).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, above 64). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_nc_window(
    config: *mut impp_sip_config,
    window: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            if window > MAX_NC_WINDOW {
                return Err(Error::InvalidArgument(format!(
                    "an nc window of {window} is out of range (0 to {MAX_NC_WINDOW})"
                )));
            }
            l.nc_window = window;
            Ok(())
        })
    }
}

/// Failed digest credentials from one source address, for one user, or for one (user,
/// address) pair within the failure window (`impp_sip_config_set_auth_failure_window_ms`)
/// that start a block (`impp_sip_config_set_auth_block_ms`): meanwhile the credentials it
/// covers are refused unchecked with `403` and Retry-After
/// (`IMPP_SIP_STAT_AUTH_THROTTLED`). Default 10; 0 turns the throttle off.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_max_auth_failures(
    config: *mut impp_sip_config,
    max: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            l.max_failures = max;
            Ok(())
        })
    }
}

/// The window failed credentials are counted in, in milliseconds (default 60,000).
/// 1,000 to 86,400,000.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_auth_failure_window_ms(
    config: *mut impp_sip_config,
    window_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            l.failure_window = ms_in_range("the failure window", window_ms, 1_000, DAY_MS)?;
            Ok(())
        })
    }
}

/// How long a source address, or a (user, address) pair, that failed too often is refused,
/// in milliseconds (default 300,000). 1,000 to 86,400,000. (A user alone is refused only
/// briefly, and never from an address it authenticated from lately: see the README's
/// "Digest hardening".)
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, out of range). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_auth_block_ms(
    config: *mut impp_sip_config,
    block_ms: u32,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            l.block = ms_in_range("the block", block_ms, 1_000, DAY_MS)?;
            Ok(())
        })
    }
}

/// Adds a front proxy (an IP address, `"192.0.2.1"` or `"2001:db8::1"`): a server such as
/// Kamailio that dispatches its clients' requests to this stack. Failed credentials in its
/// requests count against the client's address as the proxy wrote it in its Via (its
/// `received`, else its host), not against the proxy, and it is exempt from the rate limit
/// (it carries many clients' requests). Default: none.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not an IP address). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `address` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_auth_proxy(
    config: *mut impp_sip_config,
    address: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(address, "address") };
    // SAFETY: forwarded contract.
    unsafe {
        with_auth_limits(config, |l| {
            let text = text?;
            let ip = text
                .trim()
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("'{text}' is not an IP address")))?;
            l.proxies.push(ip);
            Ok(())
        })
    }
}

/// Whom a stack believes a request claiming an identity of a domain the engine does not own
/// (its From) from: the argument of `impp_sip_config_set_federation`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_federation {
    /// Only from a peer that speaks for that domain: a mutual-TLS peer whose certificate
    /// names it, or an address listed for it with `impp_sip_config_add_peer`. Anyone else's
    /// SUBSCRIBE or MESSAGE "from" a user of the domain is refused `403` and counted as
    /// `IMPP_SIP_STAT_UNTRUSTED`. The default.
    IMPP_FEDERATION_TRUSTED = 1,
    /// From anyone, as SIP servers without peering did: any SUBSCRIBE or MESSAGE "from" any
    /// other domain's user is believed. Relaying to other domains stays for trusted peers,
    /// and other domains' users still never REGISTER or PUBLISH.
    IMPP_FEDERATION_OPEN = 2,
}

fn federation_from_c(value: std::ffi::c_int) -> Result<Federation> {
    Ok(match value {
        1 => Federation::Trusted,
        2 => Federation::Open,
        other => {
            return Err(Error::InvalidArgument(format!(
                "{other} is not an impp_federation value (1..2)"
            )))
        }
    })
}

/// Adds a peer trusted by its address to speak for the users of another domain:
/// `"b.test=192.0.2.7"`, `"b.test=192.0.2.0/24"` or `"b.test=2001:db8::/64"`
/// (`DOMAIN=ADDR[/PREFIX]`; imppd `--peer`), or by a host name, `"b.test=sip.b.test"`
/// (`DOMAIN=HOST`: its A/AAAA addresses, resolved when the stack starts, where a name that
/// does not resolve fails `impp_sip_start`, then followed with their TTL). A request whose
/// From names `b.test` is believed when it comes from that address or block (a mutual-TLS
/// peer whose certificate names the domain is believed without one). Repeatable: a domain
/// may have several addresses, an address speak for several domains. Peers by address are
/// also exempt from the rate limit. Default:
/// none. The domain must not be one of the engine's (whose users authenticate):
/// `impp_sip_start` refuses that with `IMPP_ERR_INVALID_ARGUMENT`, as the configuration
/// does not know the engine's domains before it.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, not `DOMAIN=ADDR[/PREFIX]` nor
/// `DOMAIN=HOST`: no `=`, an empty domain or one with `*` or a space, neither an IP address
/// nor a host name with a dot, a prefix over 32 for IPv4 or 128 for IPv6; `impp_last_error`
/// says which). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `peer` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_peer(
    config: *mut impp_sip_config,
    peer: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(peer, "peer") };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.peers.push(TrustedPeer::parse(text?)?);
            Ok(())
        })
    }
}

/// Adds a web origin whose pages may open WebSockets to the stack's `ws:` and `wss:`
/// listeners (RFC 7118; imppd `--ws-origin`): `"https://phone.example.test"` (scheme, host
/// and port as a browser sends them in `Origin`), or `"*"` for any page. Pages served from
/// the stack's own host and port are always allowed, and clients that are not browsers send
/// no origin. Repeatable. Default: none besides the stack's own.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, not an `http`/`https` origin
/// without a path, nor `*`). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `origin` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_ws_origin(
    config: *mut impp_sip_config,
    origin: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(origin, "origin") };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.ws_origins
                .push(crate::sip::transport::websocket::parse_origin(text?)?);
            Ok(())
        })
    }
}

/// Whom requests claiming an identity of another domain are believed from (see
/// `impp_federation`; imppd `--federation`): `IMPP_FEDERATION_TRUSTED` (the default) or
/// `IMPP_FEDERATION_OPEN`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a value outside `impp_federation`). Nothing
/// changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_federation(
    config: *mut impp_sip_config,
    federation: enum_arg::impp_federation,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.federation = federation_from_c(federation)?;
            Ok(())
        })
    }
}

/// How a stack hands the watchers of a presentity whose registered device offers to serve
/// them (its REGISTER Contact carries `events="presence"`, RFC 3840) to that device: the
/// argument of `impp_sip_config_set_migration`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_migration {
    /// Never: the stack serves every watcher. The default.
    IMPP_MIGRATION_OFF = 1,
    /// The SUBSCRIBE of a watcher the presentity's rules allow is proxied to the device,
    /// record-routed (a device that does not take it with a 2xx leaves the watcher to the
    /// stack); watchers subscribed at the stack move at their next refresh; when the device
    /// goes (un-REGISTER, expiry, its TCP/TLS connection closing, a relayed request
    /// failing) its watchers get `terminated;reason=deactivated` and come back.
    IMPP_MIGRATION_PROXY = 2,
    /// Such a SUBSCRIBE is answered `302 Moved Temporarily` with the device's contact.
    IMPP_MIGRATION_REDIRECT = 3,
}

fn migration_from_c(value: std::ffi::c_int) -> Result<crate::sip::Migration> {
    use crate::sip::Migration;
    Ok(match value {
        1 => Migration::Off,
        2 => Migration::Proxy,
        3 => Migration::Redirect,
        other => {
            return Err(Error::InvalidArgument(format!(
                "{other} is not an impp_migration value (1..3)"
            )))
        }
    })
}

/// How watchers are handed to a presentity's own device (see `impp_migration`; imppd
/// `--migrate`): `IMPP_MIGRATION_OFF` (the default), `IMPP_MIGRATION_PROXY` or
/// `IMPP_MIGRATION_REDIRECT`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, a value outside `impp_migration`). Nothing
/// changes on error.
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_migration(
    config: *mut impp_sip_config,
    migration: enum_arg::impp_migration,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.migration = migration_from_c(migration)?;
            Ok(())
        })
    }
}

/// How long the TCP or TLS flow of a device serving its own watchers may stay silent (no
/// RFC 5626 keep-alive) before its watchers are taken back (imppd `--flow-timeout`), in
/// milliseconds; 0 (the default): never, only the flow's close, the binding's end or a
/// failed request tell. Set it above the devices' keep-alive interval.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `config` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_set_flow_timeout_ms(
    config: *mut impp_sip_config,
    timeout_ms: u64,
) -> impp_status {
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.flow_timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
            Ok(())
        })
    }
}

/// Adds a telephony system that may PUBLISH `presence`, `dialog` and `message-summary` state
/// for every user of one of the engine's domains (busy lamps, message-waiting lamps), which
/// otherwise only each user may (imppd `--publisher`): a PBX by its address,
/// `"192.0.2.20=example.test"` or `"192.0.2.0/24=example.test"` (`ADDR[/PREFIX]=DOMAIN`;
/// no credentials are asked of it), or an account of an owned domain authenticated by
/// digest, `"sip:voicemail@example.test=example.test"` (`ACCOUNT_URI=DOMAIN`). Repeatable.
/// Default: none. The domain, and an account's domain, must be the engine's:
/// `impp_sip_start` refuses another with `IMPP_ERR_INVALID_ARGUMENT`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, neither form: no `=`, an empty
/// domain or one with `*` or a space, a bad address or prefix, a URI without a user part;
/// `impp_last_error` says which). Nothing changes on error.
///
/// # Safety
/// `config` NULL or live; `publisher` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_config_add_publisher(
    config: *mut impp_sip_config,
    publisher: *const c_char,
) -> impp_status {
    // SAFETY: forwarded contract.
    let text = unsafe { str_arg(publisher, "publisher") };
    // SAFETY: forwarded contract.
    unsafe {
        with_config(config, |c| {
            c.publishers.push(TrustedPublisher::parse(text?)?);
            Ok(())
        })
    }
}

/// Starts a SIP stack over `engine` (the engine's configured domains are the ones it serves),
/// consuming `config` whether or not this succeeds. On success `*out` owns the stack.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, no listen address, bad settings; a peer
/// (`impp_sip_config_add_peer`) for one of the engine's domains, a publisher
/// (`impp_sip_config_add_publisher`) for a domain, or an account of a domain, that is not
/// the engine's, a list an account declares (`impp_account_add_list`) of one of the
/// engine's domains: `impp_last_error` names it), `IMPP_ERR_NETWORK` (an address cannot be
/// bound: in use, or not local), `IMPP_ERR_STORAGE` (the engine's store cannot be read),
/// `IMPP_ERR_SHUTDOWN` (the engine was shut down).
///
/// # Safety
/// `engine` NULL or live; `config` NULL or a configuration not yet freed or consumed; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_start(
    engine: *const impp_engine,
    config: *mut impp_sip_config,
    out: *mut *mut impp_sip,
) -> impp_status {
    guard(|| {
        if config.is_null() {
            return Err(Error::InvalidArgument("config is NULL".into()));
        }
        // SAFETY: non-NULL and owned by us from here on (the contract above).
        let config = unsafe { Box::from_raw(config) };
        // SAFETY: forwarded contract.
        let e = unsafe { engine_ref(engine) }?;
        out_arg(out, "out")?;
        if config.config.listen.is_empty() {
            return Err(Error::InvalidArgument(
                "no listen address: add one with impp_sip_config_add_listen".into(),
            ));
        }
        let server = SipServer::start(e.engine.clone(), config.config)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(Box::new(impp_sip { server }))) };
        Ok(())
    })
}

/// Applies `config` to the running stack as far as it can change without a restart
/// (consuming `config` whether or not this succeeds): the routes, whom it trusts (peers,
/// federation, publishers), the rate limit, the migration mode and the TLS certificate and
/// key (presented from the next handshake on). Dialogs, registrations, transactions and
/// connections carry on. Every other setting that differs from what the stack runs with
/// (listen addresses, accounts, ...) is not applied. If not NULL, `*changed_out` gets what
/// changed and `*needs_restart_out` what was not applied, each a comma-separated list of
/// names (`"routes, peers"`; `""` for none), owned: free them with `impp_string_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL `sip` or `config`; a configuration that would
/// not start a stack, such as a peer of one of the engine's domains or TLS hops without a
/// certificate: nothing changes, and the outputs are untouched), `IMPP_ERR_SHUTDOWN`.
///
/// # Safety
/// `sip` NULL or live; `config` NULL or a configuration not yet freed or consumed;
/// `changed_out` and `needs_restart_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_reconfigure(
    sip: *const impp_sip,
    config: *mut impp_sip_config,
    changed_out: *mut *mut c_char,
    needs_restart_out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        if config.is_null() {
            return Err(Error::InvalidArgument("config is NULL".into()));
        }
        // SAFETY: non-NULL and owned by us from here on (the contract above).
        let config = unsafe { Box::from_raw(config) };
        // SAFETY: forwarded contract.
        let s = unsafe { handle(sip, "sip") }?;
        let done = s.server.reconfigure(config.config)?;
        let changed = super::boundary::owned_c_string(done.changed.join(", "), "changed")?;
        let restart =
            super::boundary::owned_c_string(done.needs_restart.join(", "), "needs_restart")?;
        for (out, text) in [(changed_out, changed), (needs_restart_out, restart)] {
            if out.is_null() {
                // SAFETY: made by owned_c_string just above and handed to nobody.
                unsafe { super::status::impp_string_free(text) };
            } else {
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { write_out(out, text) };
            }
        }
        Ok(())
    })
}

/// The first bound address of transport `proto` (`"udp"`, `"tcp"`, `"tls"`, `"ws"` or
/// `"wss"`), as
/// `"udp:127.0.0.1:5060"` (a port 0 given at configuration is resolved here). On success
/// `*out` is owned: free it with `impp_string_free`.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, unknown transport), `IMPP_ERR_NOT_FOUND` (no
/// address of that transport).
///
/// # Safety
/// `sip` NULL or live; `proto` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_local_address(
    sip: *const impp_sip,
    proto: *const c_char,
    out: *mut *mut c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let s = unsafe { handle(sip, "sip") }?;
        // SAFETY: forwarded contract.
        let proto = unsafe { str_arg(proto, "proto") }?;
        let proto = Proto::from_param(proto).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown transport '{proto}' (udp, tcp, tls, ws or wss)"
            ))
        })?;
        out_arg(out, "out")?;
        let addr = s
            .server
            .local_addrs()
            .iter()
            .find(|l| l.proto == proto)
            .ok_or_else(|| Error::NotFound(format!("no {} address", proto.as_str())))?;
        let text = NextHop {
            proto,
            addr: addr.addr,
        }
        .to_string();
        let c = super::boundary::owned_c_string(text, "address")?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// Subscribes account `account_index` (its index among the accounts added with
/// `impp_sip_config_add_account`, from 0) to the resource list `list_uri` at the account's
/// server (RFC 4662), for `event_package` (`"presence"`, `"dialog"`), through the
/// account's proxy and with its credentials, refreshed until `impp_sip_unsubscribe_list`
/// or `impp_sip_free`. Each resource's state is mirrored into the engine as that resource's
/// publication, so the application (and every watcher of the engine) watches the resources
/// one by one with `impp_engine_subscribe` and gets ordinary `IMPP_EVENT_NOTIFICATION`s:
/// full state replaces every resource's state, partial state those it lists, and a
/// resource that is pending or terminated has none. Subscribing again to the same list is
/// a no-op. A list subscription made here is not made again at the next start: declare it
/// with `impp_account_add_list` for that.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, no account `account_index`, a
/// list of one of the engine's own domains, a package without documents to mirror:
/// `presence.winfo`), `IMPP_ERR_INVALID_URI` (`list_uri`),
/// `IMPP_ERR_UNKNOWN_PACKAGE`, `IMPP_ERR_SHUTDOWN` (the engine was shut down). Nothing
/// changes on error.
///
/// # Safety
/// `sip` NULL or live; `list_uri` and `event_package` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_subscribe_list(
    sip: *const impp_sip,
    account_index: usize,
    list_uri: *const c_char,
    event_package: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, list, package) = unsafe {
            (
                handle(sip, "sip")?,
                uri_arg(list_uri, "list_uri")?,
                package_arg(event_package)?,
            )
        };
        s.server.subscribe_list(account_index, &list, package)
    })
}

/// Ends account `account_index`'s subscription to the list `list_uri` for `event_package`
/// (made by `impp_sip_subscribe_list`, or declared with `impp_account_add_list`: until the
/// next start): the dialog ends and the mirrored resource states are removed (watchers are
/// notified that they are gone). `*ended_out` (if not NULL) says whether there was one.
///
/// Errors: as `impp_sip_subscribe_list`. Nothing changes on error.
///
/// # Safety
/// `sip` NULL or live; `list_uri` and `event_package` NULL or NUL-terminated; `ended_out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_unsubscribe_list(
    sip: *const impp_sip,
    account_index: usize,
    list_uri: *const c_char,
    event_package: *const c_char,
    ended_out: *mut bool,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let (s, list, package) = unsafe {
            (
                handle(sip, "sip")?,
                uri_arg(list_uri, "list_uri")?,
                package_arg(event_package)?,
            )
        };
        let ended = s.server.unsubscribe_list(account_index, &list, package)?;
        if !ended_out.is_null() {
            // SAFETY: non-NULL, the caller's contract.
            unsafe { write_out(ended_out, ended) };
        }
        Ok(())
    })
}

/// A counter of `impp_sip_stat`. (The type is not named `impp_sip_stat`: C has one namespace
/// for functions and types.)
///
/// As for `impp_stat`, counters are read one at a time by this selector, so new counters
/// are appended as new values: existing values never change and the ABI version stays the
/// same. An older library answers 0 for a value it does not know. Every counter counts
/// since the stack started, except `IMPP_SIP_STAT_OPEN_CONNECTIONS` (a level).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_sip_counter {
    /// Digest credentials refused (wrong password, unknown user, foreign nonce).
    IMPP_SIP_STAT_AUTH_FAILURES = 0,
    /// Requests answered `503` for coming from an address over its rate limit.
    IMPP_SIP_STAT_RATE_REFUSED = 1,
    /// Messages dropped unread from an address far over its rate limit.
    IMPP_SIP_STAT_RATE_DROPPED = 2,
    /// UDP messages dropped because the workers' queue was full (their clients retransmit;
    /// TCP, TLS and WebSocket ones are held instead: `IMPP_SIP_STAT_MESSAGES_HELD`).
    IMPP_SIP_STAT_QUEUE_DROPPED = 3,
    /// Credentials refused unchecked: their address, user or pair had failed too often.
    IMPP_SIP_STAT_AUTH_THROTTLED = 4,
    /// Correct digest responses refused for reusing a nonce count (challenged again).
    IMPP_SIP_STAT_NONCE_REPLAYS = 5,
    /// TCP and TLS connections open now.
    IMPP_SIP_STAT_OPEN_CONNECTIONS = 6,
    /// Inbound connections refused because their address had as many open as allowed
    /// (`impp_sip_config_set_max_connections_per_address`).
    IMPP_SIP_STAT_CONNECTIONS_REFUSED = 7,
    /// Connections closed for a TLS handshake or an authenticated request that did not come
    /// in time (`impp_sip_config_set_tls_handshake_timeout_ms`, `_set_unvouched_timeout_ms`).
    IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT = 8,
    /// Requests refused `403` for the identity they claim: another domain's user from a peer
    /// that does not speak for that domain, or asking what such a user may not; an
    /// authenticated user acting as someone else; a MESSAGE for an account not from the
    /// account's server.
    IMPP_SIP_STAT_UNTRUSTED = 9,
    /// Requests for other domains the stack would not relay: not from one of its users, a
    /// trusted peer or a dialog it record-routed.
    IMPP_SIP_STAT_RELAYS_REFUSED = 10,
    /// Messages over TCP, TLS or WebSocket the workers' queue had no room for when they
    /// came: each was held on its connection, which was read no further until the queue
    /// took it (nothing is lost; over UDP such a message is dropped and counted in
    /// `IMPP_SIP_STAT_QUEUE_DROPPED`).
    IMPP_SIP_STAT_MESSAGES_HELD = 11,
}

/// Reads one counter of a running server.
type ReadCounter = fn(&SipServer) -> u64;

/// Where `impp_sip_stat` reads each counter, in the order of `impp_sip_counter`: a counter
/// added to `SipServer::guard_stats` or `transport_stats` is one value appended to the enum
/// and one line here (the tests below fail on a field of either without its counter).
const SIP_COUNTERS: &[(impp_sip_counter, ReadCounter)] = {
    use impp_sip_counter::*;
    &[
        (IMPP_SIP_STAT_AUTH_FAILURES, |s| {
            s.guard_stats().auth_failures
        }),
        (IMPP_SIP_STAT_RATE_REFUSED, |s| s.guard_stats().rate_refused),
        (IMPP_SIP_STAT_RATE_DROPPED, |s| s.guard_stats().rate_dropped),
        (IMPP_SIP_STAT_QUEUE_DROPPED, |s| {
            s.guard_stats().queue_dropped
        }),
        (IMPP_SIP_STAT_AUTH_THROTTLED, |s| {
            s.guard_stats().auth_throttled
        }),
        (IMPP_SIP_STAT_NONCE_REPLAYS, |s| {
            s.guard_stats().nonce_replays
        }),
        (IMPP_SIP_STAT_OPEN_CONNECTIONS, |s| {
            s.transport_stats().open_connections as u64
        }),
        (IMPP_SIP_STAT_CONNECTIONS_REFUSED, |s| {
            s.transport_stats().connections_refused
        }),
        (IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT, |s| {
            s.transport_stats().connections_timed_out
        }),
        (IMPP_SIP_STAT_UNTRUSTED, |s| s.guard_stats().untrusted),
        (IMPP_SIP_STAT_RELAYS_REFUSED, |s| {
            s.guard_stats().relays_refused
        }),
        (IMPP_SIP_STAT_MESSAGES_HELD, |s| {
            s.transport_stats().messages_held
        }),
    ]
};

/// One counter of the running stack (see `impp_sip_counter`): what it refused to protect its
/// users, and its TCP and TLS connections. Cheap, and callable from any thread at any time.
///
/// Returns 0 for NULL `sip` and for a value outside `impp_sip_counter` (a counter of a newer
/// library).
///
/// # Safety
/// `sip` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_sip_stat(
    sip: *const impp_sip,
    which: enum_arg::impp_sip_counter,
) -> u64 {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        let Some(s) = (unsafe { sip.as_ref() }) else {
            return 0;
        };
        usize::try_from(which)
            .ok()
            .and_then(|i| SIP_COUNTERS.get(i))
            .map_or(0, |(_, read)| read(&s.server))
    })
}

/// Stops the stack (closes its sockets, joins its threads) and frees it. The engine keeps
/// running: subscriptions of SIP watchers stay in it, with their dialogs (kept in the store
/// when it keeps soft state), and are notified again by the next stack started over it.
/// NULL is a no-op (`IMPP_OK`).
///
/// Errors: `IMPP_ERR_IN_CALLBACK` when called from inside an engine's event callback: as with
/// `impp_engine_free`, nothing is torn down from the dispatcher thread (stopping waits up to
/// a second for the accounts' last requests and joins the stack's threads, holding up every
/// event behind it). Nothing is stopped and the stack keeps working; free it from another
/// thread, or after the callback.
///
/// # Safety
/// `sip` is NULL or a stack from `impp_sip_start` not yet freed; no other thread may use it
/// after this call has started. Not called from inside the log callback (which may run on
/// one of the stack's own threads, which this call joins).
#[no_mangle]
pub unsafe extern "C" fn impp_sip_free(sip: *mut impp_sip) -> impp_status {
    if sip.is_null() {
        return impp_status::IMPP_OK;
    }
    guard(|| {
        if dispatcher::in_dispatcher_thread() {
            return Err(Error::InCallback(
                "impp_sip_free was called from inside an engine's event callback".into(),
            ));
        }
        // SAFETY: created by Box::into_raw in `impp_sip_start` and not freed (the contract
        // above); dropping the stack stops it and joins its threads.
        drop(unsafe { Box::from_raw(sip) });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack on an address another socket holds fails as a network error.
    #[test]
    fn a_transport_that_cannot_start_is_a_network_error() {
        let holder = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = holder.local_addr().expect("local_addr");
        let engine = std::sync::Arc::new(
            crate::engine::Engine::new(crate::engine::EngineConfig::default()).expect("engine"),
        );
        let mut config = SipServerConfig::new(Vec::new());
        config.listen.push(ListenAddr::from(
            NextHop::parse(&format!("udp:{addr}")).expect("hop"),
        ));
        let err = SipServer::start(engine.clone(), config)
            .err()
            .expect("the address is in use");
        assert!(
            matches!(&err, Error::Network(m) if m.contains("in use")),
            "{err:?}"
        );
        assert_eq!(impp_status::from_error(&err), impp_status::IMPP_ERR_NETWORK);
        engine.shutdown().expect("shutdown");
    }

    /// The field names of a struct, from its derived `Debug` form.
    fn fields(debug: &str) -> Vec<String> {
        let inside = debug
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map_or("", |(inside, _)| inside);
        inside
            .split(',')
            .filter_map(|f| f.split_once(':'))
            .map(|(name, _)| name.trim().to_owned())
            .collect()
    }

    /// `impp_sip_stat` reads the counters by their value as an index: the table is in the
    /// enum's order, from 0, without gaps.
    #[test]
    fn the_counter_table_is_in_enum_order() {
        for (i, (counter, _)) in SIP_COUNTERS.iter().enumerate() {
            assert_eq!(*counter as usize, i, "{counter:?} is out of place");
        }
    }

    /// Every field of `GuardStats` and `TransportStats` has its counter, named after it: a
    /// field added to either fails here until it is given a value of `impp_sip_counter` and
    /// a line of `SIP_COUNTERS` (then Python's `SIP_STATS`, which its tests check against
    /// the header).
    #[test]
    fn every_guard_and_transport_field_has_a_counter() {
        let names: Vec<String> = SIP_COUNTERS.iter().map(|(c, _)| format!("{c:?}")).collect();
        let guard = fields(&format!("{:?}", crate::sip::GuardStats::default()));
        let transport = fields(&format!(
            "{:?}",
            crate::sip::transport::TransportStats::default()
        ));
        assert!(
            guard.len() >= 6 && transport.len() >= 3,
            "{guard:?} {transport:?}"
        );
        for field in guard.iter().chain(&transport) {
            let wanted = format!("IMPP_SIP_STAT_{}", field.to_ascii_uppercase());
            assert!(
                names.contains(&wanted),
                "no {wanted} for the field `{field}`: append it to impp_sip_counter and SIP_COUNTERS"
            );
        }
        assert_eq!(names.len(), guard.len() + transport.len(), "{names:?}");
    }

    /// Bad values of the setters are refused and change nothing.
    #[test]
    fn setters_refuse_bad_values_and_change_nothing() {
        let mut config: *mut impp_sip_config = std::ptr::null_mut();
        // SAFETY: a valid out pointer; the configuration is freed at the end.
        unsafe {
            assert_eq!(impp_sip_config_new(&mut config), impp_status::IMPP_OK);
            let before = format!("{:?}", (*config).config);
            let bad = [
                impp_sip_config_set_max_connections(config, 0),
                impp_sip_config_set_max_connections_per_address(config, 0),
                impp_sip_config_set_idle_timeout_ms(config, 99),
                impp_sip_config_set_tls_handshake_timeout_ms(config, 600_001),
                impp_sip_config_set_unvouched_timeout_ms(config, 0),
                impp_sip_config_set_rate_limit(config, 10, 9),
                impp_sip_config_set_nonce_lifetime_ms(config, 999),
                impp_sip_config_set_nc_window(config, 65),
                impp_sip_config_set_auth_failure_window_ms(config, DAY_MS + 1),
                impp_sip_config_set_auth_block_ms(config, 0),
                impp_sip_config_set_list_batch_interval_ms(config, 60_001),
                impp_sip_config_set_tls_files(
                    config,
                    c"/nonexistent/impp.crt".as_ptr(),
                    c"/nonexistent/impp.key".as_ptr(),
                    std::ptr::null(),
                ),
                impp_sip_config_set_tls_pem(
                    config,
                    c"not PEM".as_ptr(),
                    c"not PEM".as_ptr(),
                    std::ptr::null(),
                ),
                impp_sip_config_set_tls_pem(
                    config,
                    std::ptr::null(),
                    c"x".as_ptr(),
                    std::ptr::null(),
                ),
                impp_sip_config_add_auth_proxy(config, c"proxy.example".as_ptr()),
                impp_sip_config_add_auth_proxy(config, std::ptr::null()),
                impp_sip_config_add_peer(config, c"b.test".as_ptr()),
                impp_sip_config_add_peer(config, c"b.test=b_example".as_ptr()),
                impp_sip_config_add_peer(config, c"b.test=192.0.2.0/33".as_ptr()),
                impp_sip_config_add_peer(config, c"*=192.0.2.1".as_ptr()),
                impp_sip_config_add_peer(config, std::ptr::null()),
                impp_sip_config_set_federation(config, 0),
                impp_sip_config_set_federation(config, 3),
                impp_sip_config_add_publisher(config, c"192.0.2.20".as_ptr()),
                impp_sip_config_add_publisher(config, c"192.0.2.0/40=example.test".as_ptr()),
                impp_sip_config_add_publisher(config, c"sip:example.test=example.test".as_ptr()),
                impp_sip_config_add_publisher(config, c"192.0.2.20=".as_ptr()),
                impp_sip_config_add_publisher(config, std::ptr::null()),
            ];
            assert!(
                bad.iter()
                    .all(|s| *s == impp_status::IMPP_ERR_INVALID_ARGUMENT),
                "{bad:?}"
            );
            assert_eq!(format!("{:?}", (*config).config), before);

            assert_eq!(
                impp_sip_config_set_rate_limit(config, 0, 0),
                impp_status::IMPP_OK
            );
            assert_eq!((*config).config.rate_limit, RateLimit::OFF);
            assert_eq!(
                impp_sip_config_set_rate_limit(config, 5, 5),
                impp_status::IMPP_OK
            );
            assert_eq!(
                impp_sip_config_set_nc_window(config, 0),
                impp_status::IMPP_OK
            );
            assert_eq!(
                impp_sip_config_add_auth_proxy(config, c" 2001:db8::1".as_ptr()),
                impp_status::IMPP_OK
            );
            assert_eq!(
                (*config).config.auth_limits.proxies,
                ["2001:db8::1".parse::<std::net::IpAddr>().unwrap()]
            );
            assert_eq!(
                impp_sip_config_set_auth_block_ms(config, 1_500),
                impp_status::IMPP_OK
            );
            assert_eq!(
                impp_sip_config_set_max_connections(config, u32::MAX),
                impp_status::IMPP_OK
            );
            assert_eq!(
                impp_sip_config_set_list_batch_interval_ms(config, 0),
                impp_status::IMPP_OK
            );
            assert_eq!((*config).config.list_batch_interval, Duration::ZERO);
            let c = &(*config).config;
            assert_eq!(
                c.rate_limit,
                RateLimit {
                    per_second: 5,
                    burst: 5
                }
            );
            assert_eq!(
                (c.auth_limits.nc_window, c.auth_limits.block),
                (0, Duration::from_millis(1_500))
            );
            assert_eq!(c.connections.max_total, u32::MAX as usize);

            for (peer, publisher) in [
                (
                    c" B.test = 192.0.2.0/24".as_ptr(),
                    c"192.0.2.20=Example.test".as_ptr(),
                ),
                (
                    c"b.test=2001:db8::/64".as_ptr(),
                    c"sip:voicemail@example.test=example.test".as_ptr(),
                ),
            ] {
                assert_eq!(impp_sip_config_add_peer(config, peer), impp_status::IMPP_OK);
                assert_eq!(
                    impp_sip_config_add_publisher(config, publisher),
                    impp_status::IMPP_OK
                );
            }
            assert_eq!(
                impp_sip_config_set_federation(config, impp_federation::IMPP_FEDERATION_OPEN as _),
                impp_status::IMPP_OK
            );
            let c = &(*config).config;
            let peers: Vec<String> = c.peers.iter().map(ToString::to_string).collect();
            assert_eq!(peers, ["b.test=192.0.2.0/24", "b.test=2001:db8::/64"]);
            let publishers: Vec<String> = c.publishers.iter().map(ToString::to_string).collect();
            assert_eq!(
                publishers,
                [
                    "192.0.2.20/32=example.test",
                    "sip:voicemail@example.test=example.test"
                ]
            );
            assert_eq!(c.federation, Federation::Open);
            assert_eq!(
                impp_sip_config_set_federation(
                    config,
                    impp_federation::IMPP_FEDERATION_TRUSTED as _
                ),
                impp_status::IMPP_OK
            );
            assert_eq!((*config).config.federation, Federation::Trusted);
            impp_sip_config_free(config);
        }
        assert_eq!(unsafe { impp_sip_stat(std::ptr::null(), 0) }, 0);
    }
}
