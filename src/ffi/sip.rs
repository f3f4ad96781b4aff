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
//! Threading contract: a configuration is used by one thread at a time; a running stack may be
//! used from any thread. `impp_sip_free` joins the stack's threads: called from inside the
//! engine's event callback it returns `IMPP_ERR_IN_CALLBACK` and stops nothing, as
//! `impp_engine_free` does. Free the stack before the engine (freeing the engine first is
//! safe, but the stack then answers every request `503`).

use std::ffi::c_char;
use std::time::Duration;

use super::account::impp_account;
use super::boundary::{free_handle, guard, handle, handle_mut, out_arg, str_arg, write_out};
use super::engine::{engine_ref, impp_engine};
use super::status::impp_status;
use crate::engine::dispatcher;
use crate::error::{Error, Result};
use crate::sip::route::{NextHop, Route};
use crate::sip::transport::{ListenAddr, Proto};
use crate::sip::{SipServer, SipServerConfig};

/// How a SIP stack is set up. Create with `impp_sip_config_new`; `impp_sip_start` consumes it.
pub struct impp_sip_config {
    config: SipServerConfig,
}

/// A running SIP stack. Stop and free it with `impp_sip_free`.
pub struct impp_sip {
    server: SipServer,
}

/// A new configuration: no listen address yet (add at least one), digest authentication on,
/// federation on, no routes, T1 500 ms, 2 worker threads.
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

/// Adds a listen address: `"udp:127.0.0.1:5060"`, `"tcp:[::1]:5060"` (port 0: any free port,
/// see `impp_sip_local_address`). Any number of UDP and TCP addresses, IPv4 and IPv6.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `udp|tcp:ADDR:PORT`). Nothing changes on
/// error.
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
            c.listen.push(ListenAddr::from(NextHop::parse(text?)?));
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
/// the same domain replaces an earlier one. No DNS: next hops are IP addresses.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not `DOMAIN=udp|tcp:ADDR:PORT`). Nothing changes
/// on error.
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
            if !(1..=60_000).contains(&t1_ms) {
                return Err(Error::InvalidArgument(format!(
                    "T1 of {t1_ms} ms is out of range (1 to 60000)"
                )));
            }
            c.timers.t1 = Duration::from_millis(u64::from(t1_ms));
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

/// Starts a SIP stack over `engine` (the engine's configured domains are the ones it serves),
/// consuming `config` whether or not this succeeds. On success `*out` owns the stack.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, no listen address, bad settings),
/// `IMPP_ERR_NETWORK` (an address cannot be bound: in use, or not local),
/// `IMPP_ERR_STORAGE` (the engine's store cannot be read), `IMPP_ERR_SHUTDOWN` (the engine
/// was shut down).
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

/// The first bound address of transport `proto` (`"udp"` or `"tcp"`), as
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
            Error::InvalidArgument(format!("unknown transport '{proto}' (udp, tcp or tls)"))
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
}
