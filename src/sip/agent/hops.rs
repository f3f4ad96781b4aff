//! Where the agent roles' requests go: each account's registrar and outbound proxy, and the
//! route of another domain (for federation's back-end subscriptions); any of them may be a
//! host name resolved by RFC 3263 (NAPTR, SRV, A/AAAA, through the server's resolver,
//! [`crate::sip::dns`]), or, for a route, `dns` (the domain's own records).
//!
//! # An account's servers
//!
//! A name is resolved once when the server starts, on the thread that starts it (never the
//! I/O thread), so that every role that sends for an account (its REGISTER and PUBLISH, its
//! one-shot requests, the back-end and list subscriptions made through it) has an address
//! from the first moment; a name that does not resolve then is an error of the start. From
//! then on each use takes the resolver's cached answer (an expired one is used while it is
//! refreshed, RFC 8767): the server used last while the answer still lists it, else the
//! answer's first target in SRV order; an answer gone from the cache is looked up in the
//! background while the last address found is used. A target that answered `503` or did
//! not answer is left out for a while ([`Hops::unreachable`]), so the next request goes
//! to the next SRV target (RFC 3263 §4.3).
//!
//! # Another domain's route
//!
//! A route is looked up for each request that needs it ([`Hops::domain`]): an
//! address as configured; a name (or `dns`: the domain itself) as the resolver answers it
//! now, which is in place for a cached name (an expired one while it is refreshed) and
//! otherwise later, on the resolver thread, so that a caller on the I/O thread, a worker or
//! the event thread never waits. Nothing sticks: the caller keeps the targets for the
//! request it sends (the first, then the next on failure), and a dialog keeps the one it
//! was made through; a new dialog looks the name up again, so it follows the records once
//! their TTL ends. Targets that failed are left out with [`Hops::unreachable`] as for
//! an account.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Account;
use crate::error::{Error, Result};
use crate::sip::dns::resolver::Continuation;
use crate::sip::dns::{Destination, Resolution, Resolver};
use crate::sip::live::Live;
use crate::sip::message::SipMessage;
use crate::sip::route::{NextHop, RouteTable, RouteTarget};
use crate::sip::stack::lock;

/// The index of the registrar in an account's servers.
const REGISTRAR: usize = 0;
/// The index of the outbound proxy.
const PROXY: usize = 1;

/// How long a target that answered `503` without `Retry-After`, or did not answer, is left
/// out of its name's answers.
const UNREACHABLE_MS: u64 = 30_000;

/// The accounts' servers and their current addresses, and the other domains' routes.
pub(crate) struct Hops {
    resolver: Arc<Resolver>,
    /// The routes to other domains (replaced on a reload).
    routes: Live<RouteTable>,
    /// Per account: the registrar and the outbound proxy, as configured.
    servers: Vec<[Option<RouteTarget>; 2]>,
    /// Per account: their latest addresses (a name's first target as last resolved).
    current: Arc<Mutex<Vec<[Option<NextHop>; 2]>>>,
}

impl Hops {
    /// The servers of `accounts`, every name resolved now, waiting at most `wait` for each,
    /// and `routes` (looked up when used).
    /// Errors: a name that does not resolve (`Network`), saying which account and server.
    pub(crate) fn resolve(
        resolver: Arc<Resolver>,
        accounts: &[Account],
        routes: Live<RouteTable>,
        wait: Duration,
    ) -> Result<Hops> {
        let servers: Vec<[Option<RouteTarget>; 2]> = accounts
            .iter()
            .map(|a| [Some(a.registrar.clone()), a.outbound_proxy.clone()])
            .collect();
        let mut current = Vec::with_capacity(servers.len());
        for (a, targets) in accounts.iter().zip(&servers) {
            let mut hops = [None, None];
            for (which, target) in targets.iter().enumerate() {
                hops[which] = match target {
                    None => None,
                    Some(RouteTarget::Hop(hop)) => Some(*hop),
                    Some(RouteTarget::Name(dest)) => {
                        Some(first_hop(&resolver, dest, wait).map_err(|why| {
                            let what = if which == REGISTRAR {
                                "registrar"
                            } else {
                                "outbound proxy"
                            };
                            Error::Network(format!(
                                "account {}: its {what} {}: {why}",
                                a.aor, dest.host
                            ))
                        })?)
                    }
                    Some(RouteTarget::Dns) => {
                        return Err(Error::InvalidArgument(format!(
                            "account {}: a server is an address or a host name, not `dns`",
                            a.aor
                        )))
                    }
                };
            }
            current.push(hops);
        }
        Ok(Hops {
            resolver,
            routes,
            servers,
            current: Arc::new(Mutex::new(current)),
        })
    }

    /// Where account `i`'s REGISTER goes now.
    pub(crate) fn registrar(&self, i: usize) -> NextHop {
        self.hop(i, REGISTRAR)
    }

    /// Where account `i`'s other requests go now: its outbound proxy, else its registrar.
    pub(crate) fn next_hop(&self, i: usize) -> NextHop {
        if self.servers[i][PROXY].is_some() {
            self.hop(i, PROXY)
        } else {
            self.hop(i, REGISTRAR)
        }
    }

    /// The addresses account `i`'s servers had last (to recognize requests they send).
    pub(crate) fn known(&self, i: usize) -> Vec<NextHop> {
        lock(&self.current)[i].iter().flatten().copied().collect()
    }

    /// `hop`, a server that answered `503` (with `Retry-After`: `retry_ms`) or did not
    /// answer, is left out of the names' answers for that long (30 s without one), so the
    /// next request goes to the next target. Nothing when no server or route is a name
    /// (there is no other).
    pub(crate) fn unreachable(&self, hop: NextHop, retry_ms: Option<u64>) {
        let named = self
            .servers
            .iter()
            .flatten()
            .flatten()
            .any(|t| matches!(t, RouteTarget::Name(_)));
        if named || self.routes.get().needs_dns() {
            self.resolver.avoid(hop, retry_ms.unwrap_or(UNREACHABLE_MS));
        }
    }

    /// `hop` answered a request with `status` (`response`; 408: no answer, 503 also: it could
    /// not be sent): a `503` or no answer leaves it out as [`Hops::unreachable`] does
    /// (for the `Retry-After` of a `503` that has one); any other answer changes nothing.
    /// Whether it was left out.
    pub(crate) fn answered(
        &self,
        hop: NextHop,
        status: u16,
        response: Option<&SipMessage>,
    ) -> bool {
        if !matches!(status, 408 | 503) {
            return false;
        }
        let retry_ms = response
            .and_then(SipMessage::retry_after)
            .map(|s| s.saturating_mul(1000));
        self.unreachable(hop, retry_ms);
        true
    }

    /// Whether requests for `domain` have a route (its own, else the default one).
    pub(crate) fn routed(&self, domain: &str) -> bool {
        self.routes.get().target(domain).is_some()
    }

    /// Where a new request for `domain` goes, by its route: `None` without one; else its
    /// targets in the order to try them (an address alone; a name's as resolved, in place
    /// when cached) or [`Resolution::Pending`], and then `then` runs with them on the
    /// resolver thread.
    pub(crate) fn domain(&self, domain: &str, then: Continuation) -> Option<Resolution> {
        let routes = self.routes.get();
        let target = routes.target(domain)?;
        Some(match target.destination(domain) {
            None => Resolution::Ready(Ok(target.hop().into_iter().collect())),
            Some(dest) => self.resolver.resolve(&dest, then),
        })
    }

    /// The address of server `which` of account `i` now.
    fn hop(&self, i: usize, which: usize) -> NextHop {
        let last = lock(&self.current)[i][which];
        let Some(RouteTarget::Name(dest)) = &self.servers[i][which] else {
            return last.expect("an address, or a name resolved at start");
        };
        match self.resolver.cached(dest) {
            // The same server while the name still leads to it (SRV weights would otherwise
            // move an account between equal servers at every request); the first target
            // once it does not (gone from the records, or left out after a 503).
            Some(Ok(hops)) if last.is_some_and(|l| hops.contains(&l)) => last.expect("checked"),
            Some(Ok(hops)) if !hops.is_empty() => {
                lock(&self.current)[i][which] = Some(hops[0]);
                hops[0]
            }
            // Gone from the cache (or failing): looked up again in the background; the last
            // address meanwhile.
            Some(_) | None => {
                let current = self.current.clone();
                let then = Box::new(move |found: std::result::Result<Vec<NextHop>, _>| {
                    if let Some(&hop) = found.ok().as_ref().and_then(|h| h.first()) {
                        lock(&current)[i][which] = Some(hop);
                    }
                });
                if let Resolution::Ready(Ok(hops)) = self.resolver.resolve(dest, then) {
                    if let Some(&hop) = hops.first() {
                        lock(&self.current)[i][which] = Some(hop);
                        return hop;
                    }
                }
                last.expect("resolved at start")
            }
        }
    }
}

/// The first target of `dest`, waiting at most `wait` for the resolver.
fn first_hop(
    resolver: &Resolver,
    dest: &Destination,
    wait: Duration,
) -> std::result::Result<NextHop, String> {
    resolver.resolve_wait(dest, wait).map(|hops| hops[0])
}
