//! Accounts of the user-agent role: an address of record at another server, with the
//! credentials and the transport addresses to reach it.
#![forbid(unsafe_code)]

use crate::engine::authorization::presentity_key;
use crate::sip::digest_client::DigestClient;
use crate::sip::route::NextHop;
use crate::sip::server::Inner;
use crate::uri::Uri;

/// An account the server registers, publishes and subscribes for, as a user agent of
/// another domain's server (the registrar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The address of record (`sip:alice@b.test`): the REGISTER's To, the identity of the
    /// account's publications and subscriptions.
    pub aor: Uri,
    /// The digest user name.
    pub username: String,
    /// The digest password (kept in memory only).
    pub password: String,
    /// The registrar's transport address.
    pub registrar: NextHop,
    /// Where the account's other requests go, if not to the registrar.
    pub outbound_proxy: Option<NextHop>,
    /// Registration and publication expiry asked for, in seconds. Default 3600.
    pub expires: u32,
}

impl Account {
    /// An account of `aor` with credentials `username`/`password` at `registrar`, no outbound
    /// proxy, 3600 s expiry.
    pub fn new(aor: Uri, username: &str, password: &str, registrar: NextHop) -> Account {
        Account {
            aor,
            username: username.to_owned(),
            password: password.to_owned(),
            registrar,
            outbound_proxy: None,
            expires: 3600,
        }
    }

    /// Where the account's requests other than REGISTER go.
    pub fn next_hop(&self) -> NextHop {
        self.outbound_proxy.unwrap_or(self.registrar)
    }
}

impl Inner {
    /// The account whose address of record is `watcher`, and where its requests go.
    pub(crate) fn account_route(&self, watcher: &Uri) -> Option<(usize, NextHop)> {
        let key = presentity_key(watcher);
        self.config
            .accounts
            .iter()
            .position(|a| presentity_key(&a.aor) == key)
            .map(|i| (i, self.config.accounts[i].next_hop()))
    }

    /// Fresh digest state for account `i`.
    pub(crate) fn account_digest(&self, i: usize) -> Option<DigestClient> {
        self.config
            .accounts
            .get(i)
            .map(|a| DigestClient::new(&a.username, &a.password))
    }
}
