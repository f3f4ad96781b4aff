//! An account of the SIP user-agent role, given to `impp_sip_config_add_account`: the
//! required fields at creation, one setter per optional field, so that fields added later
//! (TLS, ...) are new functions rather than a changed signature.

use std::ffi::{c_char, CString};

use super::boundary::{
    free_handle, guard, guard_value, handle_mut, opt_str_arg, out_arg, str_arg, write_out,
};
use super::status::impp_status;
use crate::error::{Error, Result};
use crate::model::package::Package;
use crate::sip::agent::{Account, ListSubscription};
use crate::sip::route::RouteTarget;
use crate::uri::Uri;

/// An account being described. Create with `impp_account_new`, complete with the
/// `impp_account_set_*` setters, add to a SIP configuration with
/// `impp_sip_config_add_account` (which copies it) and free with `impp_account_free`.
pub struct impp_account {
    aor: Uri,
    aor_text: CString,
    /// The user part of the AOR: the digest user name when none is set.
    aor_user: Option<CString>,
    password: String,
    registrar: RouteTarget,
    registrar_text: CString,
    username: Option<CString>,
    outbound_proxy: Option<(RouteTarget, CString)>,
    /// Seconds; 0 is the default (3600).
    expires: u32,
    /// The declared lists, with their URIs as given.
    lists: Vec<(ListSubscription, CString)>,
    /// Whether the account serves its own address of record.
    serve: bool,
    /// Keep-alive seconds of a serving account (30 unless set).
    keepalive: u32,
    /// The XCAP root, as given.
    xcap: Option<CString>,
}

impl impp_account {
    /// The account the SIP layer runs.
    pub(super) fn to_account(&self) -> Result<Account> {
        let username = self
            .username
            .as_ref()
            .or(self.aor_user.as_ref())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no user part: give a username (impp_account_set_username)",
                    self.aor
                ))
            })?
            .to_str()
            .map_err(|_| Error::Internal("account user name is not UTF-8".into()))?;
        let mut account = Account::new(
            self.aor.clone(),
            username,
            &self.password,
            self.registrar.clone(),
        );
        account.outbound_proxy = self.outbound_proxy.as_ref().map(|(t, _)| t.clone());
        if self.expires != 0 {
            account.expires = self.expires;
        }
        account.lists = self.lists.iter().map(|(l, _)| l.clone()).collect();
        account.serve = self.serve;
        account.keepalive = self.keepalive;
        account.xcap = self
            .xcap
            .as_ref()
            .map(|x| x.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| Error::Internal("XCAP root is not UTF-8".into()))?;
        Ok(account)
    }
}

fn c_string(value: &str, what: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::InvalidArgument(format!("{what} contains a NUL")))
}

/// Creates an account: the stack will register `aor` (`sip:alice@b.example`) at `registrar`
/// (a next hop, `"udp:192.0.2.7:5060"`, `"tcp:[2001:db8::7]:5060"` or `"tls:..."`, or a host
/// name resolved by RFC 3263, `"sip.b.example"`, `"tcp:sip.b.example"`,
/// `"sip.b.example:5080"`, when the stack starts (which fails if it does not resolve) and
/// again as its records expire, failing over to the next SRV target on `503` or no answer:
/// TLS needs `impp_sip_config_set_tls_files`, and the peer's certificate must name the domain
/// each request is for, RFC 5922) with digest
/// credentials whose user name is the user part of `aor` (see `impp_account_set_username`)
/// and whose password is `password`; no outbound proxy; the default expiry (3600 s). The
/// strings are copied.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, a registrar neither
/// `udp|tcp|tls:ADDR:PORT` nor `[udp|tcp|tls:]HOST[:PORT]` with a dotted host),
/// `IMPP_ERR_INVALID_URI` (`aor`).
///
/// # Safety
/// Strings NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_account_new(
    aor: *const c_char,
    password: *const c_char,
    registrar: *const c_char,
    out: *mut *mut impp_account,
) -> impp_status {
    guard(|| {
        out_arg(out, "out")?;
        // SAFETY: the caller's contract (each string NULL or NUL-terminated).
        let (aor_text, password, registrar_text) = unsafe {
            (
                str_arg(aor, "aor")?,
                str_arg(password, "password")?,
                str_arg(registrar, "registrar")?,
            )
        };
        let aor = Uri::parse(aor_text)?;
        let registrar = RouteTarget::parse_server(registrar_text)?;
        let account = Box::new(impp_account {
            aor_user: aor.user().map(|u| c_string(u, "aor")).transpose()?,
            aor,
            aor_text: c_string(aor_text, "aor")?,
            password: password.to_owned(),
            registrar,
            registrar_text: c_string(registrar_text, "registrar")?,
            username: None,
            outbound_proxy: None,
            expires: 0,
            lists: Vec::new(),
            serve: false,
            keepalive: 30,
            xcap: None,
        });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, Box::into_raw(account)) };
        Ok(())
    })
}

/// Frees an account. NULL is a no-op. A configuration it was added to keeps its own copy.
///
/// # Safety
/// `account` is NULL or an account from `impp_account_new` not yet freed, used by no call in
/// progress.
#[no_mangle]
pub unsafe extern "C" fn impp_account_free(account: *mut impp_account) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(account) }
}

/// Runs `change` on the account behind `account` inside the panic boundary.
///
/// # Safety
/// `account` is NULL or a live account, used by no other thread during the call.
unsafe fn with_account(
    account: *mut impp_account,
    change: impl FnOnce(&mut impp_account) -> Result<()>,
) -> impp_status {
    guard(|| {
        // SAFETY: the contract above.
        let a = unsafe { handle_mut(account, "account") }?;
        change(a)
    })
}

/// Sets the digest user name; NULL (the default) is the user part of the AOR, which an AOR
/// without one (`sip:b.example`) cannot go without: `impp_sip_config_add_account` refuses
/// it.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL account, not UTF-8, empty). Nothing changes on
/// error.
///
/// # Safety
/// `account` NULL or live; `username` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_username(
    account: *mut impp_account,
    username: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`account` and `username`).
    unsafe {
        with_account(account, |a| {
            let username = opt_str_arg(username, "username")?;
            if username.is_some_and(str::is_empty) {
                return Err(Error::InvalidArgument("username is empty".into()));
            }
            a.username = username.map(|u| c_string(u, "username")).transpose()?;
            Ok(())
        })
    }
}

/// Sets where the account's requests other than REGISTER go (a next hop as for the
/// registrar); NULL (the default) is the registrar.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL account, not UTF-8, neither
/// `udp|tcp|tls:ADDR:PORT` nor a host name as for the registrar). Nothing changes on error.
///
/// # Safety
/// `account` NULL or live; `outbound_proxy` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_outbound_proxy(
    account: *mut impp_account,
    outbound_proxy: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`account` and `outbound_proxy`).
    unsafe {
        with_account(account, |a| {
            let proxy = opt_str_arg(outbound_proxy, "outbound_proxy")?;
            a.outbound_proxy = proxy
                .map(|p| {
                    Ok((
                        RouteTarget::parse_server(p)?,
                        c_string(p, "outbound_proxy")?,
                    ))
                })
                .transpose()?;
            Ok(())
        })
    }
}

/// Sets the registration and publication expiry the account asks for, in seconds; 0
/// (`IMPP_EXPIRES_DEFAULT`, the default) is 3600.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_expires(
    account: *mut impp_account,
    expires: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_account(account, |a| {
            a.expires = expires;
            Ok(())
        })
    }
}

/// Makes the account the presence agent of its own address of record (`serve` true) or not
/// (false, the default). A serving account's REGISTER offers it (the RFC 3840 feature tag
/// `events="presence"`, with RFC 5626 `+sip.instance`, `reg-id=1` and `Supported:
/// outbound`); the SUBSCRIBEs for its address of record that reach the stack (proxied by its
/// server or sent after a `302`) are served from the local engine, which authorizes them by
/// the rules read from the XCAP root (`impp_account_set_xcap`), `480` until it has them and
/// `403` for a watcher they do not allow; over TCP or TLS its flow is kept alive
/// (`impp_account_set_keepalive`). See the README, "Presence at the edge".
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_serve(
    account: *mut impp_account,
    serve: bool,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_account(account, |a| {
            a.serve = serve;
            Ok(())
        })
    }
}

/// Sets the seconds between the keep-alive pings (CRLF CRLF, RFC 5626 §4.4.1) a serving
/// account sends on its TCP or TLS flow to the registrar (default 30; 0: none). A ping not
/// answered by the next one, or the flow closing, registers again at once. No pings over
/// UDP.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_keepalive(
    account: *mut impp_account,
    seconds: u32,
) -> impp_status {
    // SAFETY: the caller's contract.
    unsafe {
        with_account(account, |a| {
            a.keepalive = seconds;
            Ok(())
        })
    }
}

/// Sets the XCAP root (RFC 4825; `"http://192.0.2.7:8080/xcap-root"` or `https://...`, which
/// needs `impp_sip_config_set_tls_files` for its trust anchors) where a serving account reads
/// its rules, at each registration and refresh, with its digest credentials; NULL removes it
/// (the default: a serving account without one has no rules and refuses every watcher with
/// `480`). The string is copied.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL account, not UTF-8, not an http:// or https://
/// URL). Nothing changes on error.
///
/// # Safety
/// `account` NULL or live; `xcap` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_account_set_xcap(
    account: *mut impp_account,
    xcap: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`account` and `xcap`).
    unsafe {
        with_account(account, |a| {
            let root = opt_str_arg(xcap, "xcap")?;
            a.xcap = root
                .map(|r| {
                    crate::xcap::client::XcapRoot::parse(r)?;
                    c_string(r, "xcap")
                })
                .transpose()?;
            Ok(())
        })
    }
}

/// Whether the account serves its own address of record; false for NULL.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_serve(account: *const impp_account) -> bool {
    // SAFETY: the caller's contract.
    guard_value(false, || {
        unsafe { account.as_ref() }.is_some_and(|a| a.serve)
    })
}

/// The keep-alive seconds (30 unless set); 0 for NULL.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_keepalive(account: *const impp_account) -> u32 {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { account.as_ref() }.map_or(0, |a| a.keepalive))
}

/// The XCAP root set, as given; NULL when none is set, or for NULL. Borrowed from the
/// account until the root is next set or the account is freed.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_xcap(account: *const impp_account) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| a.xcap.as_ref()) }
}

/// Borrows a string field of a live account, or gives NULL.
///
/// # Safety
/// `account` is NULL or a live account.
unsafe fn text_of(
    account: *const impp_account,
    field: impl FnOnce(&impp_account) -> Option<&CString>,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the contract above.
        unsafe { account.as_ref() }
            .and_then(field)
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The AOR, as given, borrowed from the account until it is freed; NULL for NULL.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_aor(account: *const impp_account) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| Some(&a.aor_text)) }
}

/// The registrar, as given, borrowed from the account until it is freed; NULL for NULL.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_registrar(account: *const impp_account) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| Some(&a.registrar_text)) }
}

/// The digest user name the account will use: the one set, else the user part of the AOR;
/// NULL when there is neither, or for NULL. Borrowed from the account until the user name is
/// next set or the account is freed.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_username(account: *const impp_account) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| a.username.as_ref().or(a.aor_user.as_ref())) }
}

/// The outbound proxy set, as given; NULL when none is set (requests go to the registrar),
/// or for NULL. Borrowed from the account until the proxy is next set or the account is
/// freed.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_outbound_proxy(
    account: *const impp_account,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| a.outbound_proxy.as_ref().map(|(_, text)| text)) }
}

/// The expiry set, in seconds (0: the default, 3600); 0 for NULL. (The password has no
/// getter: it is only kept to answer digest challenges.)
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_expires(account: *const impp_account) -> u32 {
    // SAFETY: the caller's contract.
    guard_value(0, || unsafe { account.as_ref() }.map_or(0, |a| a.expires))
}

/// Declares a resource list (RFC 4662) at the account's server that the stack subscribes
/// to for as long as it runs: from `impp_sip_start` on (every start, so a restarted
/// program that declares it again is subscribed again) until `impp_sip_free`. Each
/// resource's state is mirrored into the engine as that resource's publication, so the
/// application watches the resources one by one (`impp_engine_subscribe` to
/// `sip:alice@b.example`) and gets ordinary notifications. `event_package` is
/// `"presence"` or `"dialog"` (or `"message-summary"`). Declaring the same list (by URI key) and package again
/// changes nothing. A list of one of the engine's own domains is refused by
/// `impp_sip_start` (the configuration does not know the engine's domains before).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, a package without documents to
/// mirror: `presence.winfo`), `IMPP_ERR_INVALID_URI` (`list_uri`),
/// `IMPP_ERR_UNKNOWN_PACKAGE`. Nothing changes on error.
///
/// # Safety
/// `account` NULL or live; `list_uri` and `event_package` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn impp_account_add_list(
    account: *mut impp_account,
    list_uri: *const c_char,
    event_package: *const c_char,
) -> impp_status {
    // SAFETY: the caller's contract (`account`, `list_uri`, `event_package`).
    unsafe {
        with_account(account, |a| {
            let text = str_arg(list_uri, "list_uri")?;
            let package: Package = str_arg(event_package, "event_package")?.parse()?;
            let uri = Uri::parse(text)?;
            let list = ListSubscription::new(uri, package)?;
            let key = crate::model::key::presentity_key(&list.uri);
            let known = a.lists.iter().any(|(l, _)| {
                l.package == package && crate::model::key::presentity_key(&l.uri) == key
            });
            if !known {
                let text = c_string(text, "list_uri")?;
                a.lists.push((list, text));
            }
            Ok(())
        })
    }
}

/// How many lists the account declares (`impp_account_add_list`); 0 for NULL.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_list_count(account: *const impp_account) -> usize {
    // SAFETY: the caller's contract.
    guard_value(0, || {
        unsafe { account.as_ref() }.map_or(0, |a| a.lists.len())
    })
}

/// The URI of declared list `index` (in the order added), as given, borrowed from the
/// account until it is freed; NULL for NULL or an index out of range.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_list_uri(
    account: *const impp_account,
    index: usize,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { text_of(account, |a| a.lists.get(index).map(|(_, text)| text)) }
}

/// The event package of declared list `index` (`"presence"`, `"dialog"`...), a static
/// string; NULL for NULL or an index out of range.
///
/// # Safety
/// `account` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn impp_account_list_package(
    account: *const impp_account,
    index: usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller's contract.
        let Some((list, _)) = unsafe { account.as_ref() }.and_then(|a| a.lists.get(index)) else {
            return std::ptr::null();
        };
        let name: &'static std::ffi::CStr = match list.package {
            Package::Presence => c"presence",
            Package::Dialog => c"dialog",
            Package::PresenceWinfo => c"presence.winfo",
            Package::MessageSummary => c"message-summary",
        };
        name.as_ptr()
    })
}
