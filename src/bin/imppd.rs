//! `imppd`: a presence and instant-messaging server for one or more SIP domains, over
//! libimpp's engine and SIP server, with its state in one SQLite file.
//!
//! ```text
//! imppd --domain example.test [--listen udp:127.0.0.1:5060]... [--db ./imppd.db]
//!       [--open] [--sha256] [--policy allow|confirm|polite-block|block]
//!       [--log-level info] [--workers N] [--config FILE]
//!       [--route DOMAIN=udp|tcp|tls:ADDR:PORT|HOST|dns]... [--route *=...] [--no-federate]
//!       [--dns-server ADDR:PORT]
//!       [--max-offline-messages-per-user N] [--max-offline-messages-per-sender N]
//!       [--max-subscriptions-per-watcher N] [--max-subscriptions-per-presentity N]
//!       [--max-endpoints-per-user N]
//!       [--peer DOMAIN=ADDR[/PREFIX]|HOST]... [--federation trusted|open]
//!       [--publisher ADDR[/PREFIX]=DOMAIN|ACCOUNT=DOMAIN]...
//!       [--http ADDR:PORT] [--https ADDR:PORT] [--migrate off|proxy|redirect]
//!       [--subscription-expiry MIN/DEFAULT/MAX]
//! imppd user add sip:alice@example.test --password PW [--db ./imppd.db]
//! imppd user del sip:alice@example.test [--db ./imppd.db]
//! imppd user list [--db ./imppd.db]
//! imppd rule add sip:alice@example.test other.test|sip:bob@other.test ACTION [--db ./imppd.db]
//! imppd rule del sip:alice@example.test other.test|sip:bob@other.test [--db ./imppd.db]
//! imppd rule list [sip:alice@example.test] [--db ./imppd.db]
//! imppd list add sip:sales-blf@example.test --entry sip:alice@example.test
//!       [--entry 'Bob <sip:bob@example.test>']... [--ref LIST-URI]...
//!       [--package presence|dialog]... [--name TEXT] [--db ./imppd.db]
//! imppd list del sip:sales-blf@example.test [--db ./imppd.db]
//! imppd list show [sip:sales-blf@example.test] [--db ./imppd.db]
//! imppd list import FILE.xml [--domain example.test] [--db ./imppd.db]
//! imppd ctl [--db ./imppd.db | --socket PATH] [--json] COMMAND [ARGS...]
//! ```
//!
//! Authorization is closed by default: a watcher no rule names may watch a presentity of its
//! own domain (its URI host is the presentity's) and waits, pending, for a decision
//! otherwise. `--policy` gives one action for every watcher no rule names instead
//! (`--policy allow` is the open server). `imppd rule` keeps per-presentity rules, for one
//! watcher or a whole domain (ACTION: allow, block, polite-block or confirm), which win over
//! both.
//!
//! `imppd list` keeps resource lists (RFC 4826): a URI standing for its entries, resources
//! and references to other lists, checked before anything is written (at most 500 entries,
//! no resource twice, no cycle through references, at most 8 levels of nesting and 1000
//! resources once references are expanded). The list server that serves them is to come.
//!
//! A config file holds the same options, one `name = value` per line (`#` starts a comment;
//! `domain` and `listen` may repeat); flags given on the command line come after it and win
//! (repeatable ones add; `route` may repeat too, `federate = no` is `--no-federate`).
//!
//! Requests for domains imppd does not own go to the next hop `--route` names for their
//! domain (`*=` is the default route), with imppd as a proxy on the path (Via, Record-Route
//! on SUBSCRIBE); without a route they are refused as before. A SUBSCRIBE from one of
//! imppd's users to a presentity of another domain is served with one shared back-end
//! subscription per presentity (federation) unless `--no-federate` is given, in which case
//! it is forwarded like any other request.
//!
//! The `--max-*` options bound the state strangers can make imppd keep (defaults 1000, 100,
//! 1000, 10000, 10; see [`impp::engine::StateLimits`]): messages waiting for one offline
//! user, and from one sender for one user (past either: `480 Temporarily Unavailable
//! (mailbox full)`); subscriptions of one watcher and to one presentity (past either: `403
//! Forbidden (too many subscriptions)`); registered contacts of one user (past it: `403
//! Forbidden (too many registrations)`).
//! Trust between domains (DESIGN §5a): a request whose From names a domain imppd does not
//! own is believed only from a peer that speaks for that domain: a mutual-TLS peer whose
//! certificate names it, or an address `--peer DOMAIN=ADDR[/PREFIX]` lists for it (or
//! `--peer DOMAIN=HOST`: the A/AAAA addresses of HOST, resolved at start and then with their
//! TTL; a HOST that does not resolve stops the start); anything
//! else is `403` with the reason (`--federation open` believes any SUBSCRIBE or MESSAGE
//! from anyone, as before). Only imppd's own users (answering `407` with
//! Proxy-Authorization) and trusted peers are relayed to other domains. `--publisher`
//! lets a PBX (by address) or a privileged account publish `presence`, `dialog` and
//! `message-summary` state for every user of an owned domain.
//!
//! `--migrate proxy` hands the watchers of a user whose registered device offers to serve
//! them (`events="presence"` in its Contact) over to the device, record-routed, as they
//! subscribe or refresh, and takes them back when the device goes (`--migrate redirect`:
//! a `302` to the device instead); only watchers the user's rules allow move. See the
//! README, "Presence at the edge".
//!
//! SIGTERM and SIGINT stop the server cleanly: subscriptions stay in
//! the store, and after a restart every remote watcher is notified again in its dialog.
//! SIGUSR1 prints the live heap (bytes allocated and not freed) on stderr, after a line of
//! the network guards' counters (requests refused and dropped over the per-address rate,
//! dropped for a full worker queue; connections open, refused and timed out); SIGHUP, like
//! `imppd ctl reload`, reads the command line and its config file again and applies what can
//! change while imppd serves (routes, trust, policy, limits, the TLS certificate, the log
//! level; see `imppd/reload.rs`), then reloads the users, the rules and the lists from the
//! database (after `imppd user`, `imppd rule` or `imppd list` ran beside the server), logging
//! what changed and what needs a restart.

#[path = "imppd/control.rs"]
mod control;
#[path = "imppd/ctl.rs"]
mod ctl;
#[path = "imppd/heap.rs"]
mod heap;
#[path = "imppd/http.rs"]
mod http;
#[path = "imppd/list_import.rs"]
mod list_import;
#[path = "imppd/lists.rs"]
mod lists;
#[path = "imppd/network.rs"]
mod network;
#[path = "imppd/reload.rs"]
mod reload;
#[path = "imppd/rules.rs"]
mod rules;

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use impp::engine::{AuthAction, Engine, EngineConfig};
use impp::log::{self, Level};
use impp::sip::transport::{ListenAddr, Proto};
use impp::sip::{SipServer, SipServerConfig};
use impp::store::{Credential, SqliteStore, Store, Write};
use impp::uri::Uri;

const USAGE: &str = "usage:
  imppd --domain DOMAIN [--domain DOMAIN]... [--listen udp|tcp|tls|ws|wss:ADDR:PORT]... [--db FILE]
        [--open] [--sha256] [--policy allow|confirm|polite-block|block]
        [--log-level LEVEL] [--workers N] [--config FILE]
        [--route DOMAIN=udp|tcp|tls:ADDR:PORT|[udp:|tcp:|tls:]HOST[:PORT]|dns]...
        [--route *=...] [--no-federate] [--dns-server ADDR:PORT]
        [--account AOR,password=PW,registrar=udp|tcp|tls:ADDR:PORT|[udp:|tcp:|tls:]HOST[:PORT]
                   [,username=U][,proxy=HOP|HOST][,expires=S]
                   [,list=[presence:|dialog:]LIST-URI]...
                   [,serve=yes|no][,keepalive=S][,xcap=http[s]://HOST:PORT/ROOT]]...
        [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]
        [--http ADDR:PORT] [--https ADDR:PORT]
        [--rate-limit N[/BURST]] [--max-connections N] [--max-connections-per-address N]
        [--unauthenticated-timeout S] [--tls-handshake-timeout S] [--idle-timeout S]
        [--flow-timeout S]
        [--auth-proxy ADDR]... [--ws-origin ORIGIN]... [--web-root DIR]
        [--max-offline-messages-per-user N] [--max-offline-messages-per-sender N]
        [--max-subscriptions-per-watcher N] [--max-subscriptions-per-presentity N]
        [--max-endpoints-per-user N]
        [--peer DOMAIN=ADDR[/PREFIX]|HOST]... [--federation trusted|open]
        [--publisher ADDR[/PREFIX]=DOMAIN|ACCOUNT=DOMAIN]... [--migrate off|proxy|redirect]
        [--subscription-expiry MIN/DEFAULT/MAX]
  imppd user add URI --password PASSWORD [--db FILE]
  imppd user del URI [--db FILE]
  imppd user list [--db FILE]
  imppd rule add PRESENTITY WATCHER|DOMAIN allow|block|polite-block|confirm|redirect TARGET [--db FILE]
  imppd rule del PRESENTITY WATCHER|DOMAIN [--db FILE]
  imppd rule list [PRESENTITY] [--db FILE]
  imppd list add URI --entry URI|'NAME <URI>' [--entry ...]... [--ref LIST-URI]...
        [--package presence|dialog]... [--name TEXT] [--domain DOMAIN]... [--db FILE]
  imppd list del URI [--db FILE]
  imppd list show [URI] [--db FILE]
  imppd list import FILE.xml [--domain DOMAIN]... [--db FILE]
  imppd ctl [--db FILE | --socket PATH] [--json] COMMAND [ARGS...]   (a running imppd;
        the server's socket: --ctl-socket PATH|none, default FILE.ctl beside --db)
defaults: --listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060 --db ./imppd.db
          (--db none: memory only, nothing kept across restarts, no users: use with --open)
          --log-level info; without --policy a watcher no rule names is allowed to watch
          a presentity of its own domain and pending (confirm) otherwise, with --policy it
          gets that action whatever its domain (--policy allow: open to everyone); rules
          (imppd rule; a bare DOMAIN covers every watcher of it) win over both;
          lists (imppd list) hold at most 500 entries, expand to at most 1000 resources
          through at most 8 levels of references, and never reach themselves;
          digest authentication on (--open: off), challenging with MD5 alone, which every
          deployed phone understands (libre-based clients such as baresip fail when any
          other algorithm is offered); --sha256 offers SHA-256 too (RFC 8760), after MD5;
          --route sends requests for another domain to that next hop (imppd proxies them;
          *= is the default route; no route: refused); a HOST is resolved by RFC 3263
          (NAPTR, SRV, A/AAAA; a transport skips NAPTR, a port SRV), dns resolves each
          request's own domain (*=dns: any domain through its own records), with
          fail-over to the next SRV target on timeout or 503; --dns-server ADDR:PORT
          (default: the first nameserver of /etc/resolv.conf);
          --no-federate forwards a user's SUBSCRIBE to another domain instead of serving it
          with one shared back-end subscription per remote presentity; --account makes
          imppd a user agent of another server too: it registers AOR there, publishes AOR's
          presence, subscribes to AOR's buddies and carries AOR's messages through it;
          each list= is a resource list at that server (RFC 4662) imppd subscribes to
          while it runs (every start), so that its resources' states reach local
          watchers (presence unless dialog: comes first); serve=yes makes imppd the
          presence agent of AOR (its REGISTER carries the events=presence tag; SUBSCRIBEs for
          AOR that reach it are served by the rules read from xcap=URL, 480 until then),
          pinging its TCP/TLS flow every keepalive=S seconds (default 30);
          --tls-cert/--tls-key (PEM) are needed for tls: listeners, routes and accounts;
          peers' certificates must chain to --tls-ca (default: the system's trust
          anchors), and the certificate of a server imppd connects to must name the
          domain it is reached for; a request from a user of another domain is believed
          only from a trusted peer: a TLS peer whose certificate names that domain, or an
          address --peer lists for it (a HOST: its A/AAAA addresses, followed with their
          TTL) (else 403; --federation open: from anyone, for
          SUBSCRIBE and MESSAGE), and only imppd's users (407 challenge) and trusted
          peers are relayed; --publisher lets a PBX address or an account of an owned
          domain publish presence, dialog and message-summary state for that domain's users;

          state kept per user, watcher and presentity is bounded (N >= 1; past a bound the
          request is refused and nothing is kept): --max-offline-messages-per-user 1000
          and --max-offline-messages-per-sender 100 (messages waiting for one user, and
          from one sender for one user: 480), --max-subscriptions-per-watcher 1000 and
          --max-subscriptions-per-presentity 10000 (403), --max-endpoints-per-user 10
          (registered contacts of one user: 403);
          the network is bounded too: --rate-limit 200/1000 (requests a second from one
          address, and its bursts; past them 503 with Retry-After, then dropped unread;
          0: off), --max-connections 4096 and --max-connections-per-address 64 (TCP and
          TLS), --unauthenticated-timeout 32 (a connection no request authenticated on
          closes), --tls-handshake-timeout 10, --idle-timeout 180 (seconds);
          --auth-proxy ADDR: a front proxy whose requests count against the client
          address in its Via for the digest throttle, and are not rate limited;
          ws: and wss: listeners take SIP over WebSocket (RFC 7118) from browsers: a page
          may connect only from imppd's own host and port or an origin --ws-origin lists
          (https://phone.example.test; * for any; clients that are not browsers send no
          origin); wss: needs --tls-cert/--tls-key; --web-root DIR: those listeners
          answer plain HTTP GETs with the files of DIR (examples/web: the web buddy
          list, same origin as its WebSocket);
          --http ADDR:PORT: plain HTTP with GET /health (200 ok; 503 once stopping) and
          GET /metrics (Prometheus text format 0.0.4, imppd_* names; see the README), and
          XCAP (RFC 4825) at /xcap-root: each user's pres-rules document (RFC 5025), with
          digest authentication; --https ADDR:PORT: the same over TLS (needs
          --tls-cert/--tls-key);
          SIGHUP or imppd ctl reload: the command line and --config file read again; routes,
          peers, policy, limits, the TLS certificate and the log level change at once,
          what needs a restart is named (a bad file changes nothing);
          --write-behind 100: how long (ms, 0 to 10000; 0: none) the database collects
          soft state (publications, subscriptions, registrations, list dialogs) into one
          commit; a crash may lose that much of it, never a stored message or rule;
          --list-batch-interval 1000: how long (ms, 0 to 60000; 0: none) changes of a
          resource list's resources are collected into one partial NOTIFY (RFC 4662);
          --migrate off: proxy hands the allowed watchers of a user whose registered
          device offers to serve them (Contact events=\"presence\") to that device as they
          subscribe or refresh, record-routed, and takes them back when it goes
          (un-REGISTER, expiry, its TCP/TLS connection closing, a relayed request failing);
          redirect answers their SUBSCRIBEs 302 with the device's contact (changed by reload);
          --flow-timeout 0: with S, such a device's TCP/TLS flow silent S seconds (no
          keep-alive) counts as dead and its watchers come back (set it above the devices'
          keepalive; changed by reload);
          --subscription-expiry 60/3600/86400: the seconds a SUBSCRIBE may ask for (shorter:
          423 with Min-Expires), gets when it names none, and gets at most (a longer one is
          granted this, and the watcher refreshes by it; needs a restart)";

#[derive(Debug)]
struct Options {
    domains: Vec<String>,
    listen: Vec<ListenAddr>,
    db: PathBuf,
    open: bool,
    sha256: bool,
    /// `None`: closed (same domain allow, others confirm).
    policy: Option<AuthAction>,
    log_level: Level,
    workers: Option<usize>,
    routes: Vec<impp::sip::route::Route>,
    federate: bool,
    accounts: Vec<impp::sip::agent::Account>,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    state_limits: impp::engine::StateLimits,
    network: network::NetworkOptions,
    /// `--peer`, `--federation`, `--publisher`.
    peers: Vec<impp::sip::TrustedPeer>,
    federation: impp::sip::Federation,
    publishers: Vec<impp::sip::TrustedPublisher>,
    /// `--migrate off|proxy|redirect`.
    migration: impp::sip::Migration,
    /// `--subscription-expiry MIN/DEFAULT/MAX` (`None`: the engine's defaults).
    subscription_expiry: Option<impp::engine::ExpiryBounds>,
    /// `--http ADDR:PORT`: the `/health` and `/metrics` listener (see `http.rs`).
    http: Option<SocketAddr>,
    /// `--https ADDR:PORT`: the same listener over TLS.
    https: Option<SocketAddr>,
    /// `--ctl-socket PATH|none` (`None`: beside the database).
    ctl_socket: Option<String>,
    /// `--write-behind MS` (`None`: the store's default window).
    write_behind: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            domains: Vec::new(),
            listen: Vec::new(),
            db: PathBuf::from("imppd.db"),
            open: false,
            sha256: false,
            policy: None,
            log_level: Level::Info,
            workers: None,
            routes: Vec::new(),
            federate: true,
            accounts: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            state_limits: impp::engine::StateLimits::default(),
            network: network::NetworkOptions::default(),
            peers: Vec::new(),
            federation: impp::sip::Federation::Trusted,
            publishers: Vec::new(),
            migration: impp::sip::Migration::Off,
            subscription_expiry: None,
            http: None,
            https: None,
            ctl_socket: None,
            write_behind: None,
        }
    }
}

/// Sets the bound `--max-...` names to `value` (at least 1).
fn set_state_limit(
    limits: &mut impp::engine::StateLimits,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let field = match name {
        "max-offline-messages-per-user" => &mut limits.max_offline_messages_per_user,
        "max-offline-messages-per-sender" => &mut limits.max_offline_messages_per_sender,
        "max-subscriptions-per-watcher" => &mut limits.max_subscriptions_per_watcher,
        "max-subscriptions-per-presentity" => &mut limits.max_subscriptions_per_presentity,
        "max-endpoints-per-user" => &mut limits.max_endpoints_per_user,
        other => return Err(format!("unknown option --{other}")),
    };
    *field =
        value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            format!("--{name} needs a number from 1 to 4294967295, not '{value}'")
        })?;
    Ok(())
}

/// `AOR,password=PW,registrar=HOP[,username=U][,proxy=HOP][,expires=S][,list=[PACKAGE:]URI]...
/// [,serve=yes|no][,keepalive=S][,xcap=URL]`: `serve=yes` makes the account the presence agent
/// of its address of record (README, "Presence at the edge").
fn parse_account(text: &str) -> Result<impp::sip::agent::Account, String> {
    use impp::sip::route::RouteTarget;
    let bad = |why: String| format!("--account {}: {why}", text.split(',').next().unwrap_or(""));
    let mut parts = text.split(',');
    let aor = Uri::parse(parts.next().unwrap_or("").trim()).map_err(|e| bad(e.to_string()))?;
    let (mut password, mut registrar, mut username, mut proxy, mut expires) =
        (None, None, None, None, None);
    let mut lists = Vec::new();
    let (mut serve, mut keepalive, mut xcap) = (false, None, None);
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("'{part}' is not name=value")))?;
        let hop = |v: &str| RouteTarget::parse_server(v).map_err(|e| bad(e.to_string()));
        match key.trim() {
            "password" => password = Some(value.to_string()),
            "registrar" => registrar = Some(hop(value)?),
            "username" => username = Some(value.to_string()),
            "proxy" => proxy = Some(hop(value)?),
            "list" => lists.push(parse_account_list(value).map_err(bad)?),
            "serve" => {
                serve = match value.trim() {
                    "yes" | "on" | "true" => true,
                    "no" | "off" | "false" => false,
                    other => return Err(bad(format!("serve '{other}': yes or no"))),
                }
            }
            "keepalive" => {
                keepalive = Some(
                    value
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| bad(format!("keepalive '{value}' is not seconds")))?,
                )
            }
            "xcap" => {
                impp::xcap::client::XcapRoot::parse(value.trim())
                    .map_err(|e| bad(e.to_string()))?;
                xcap = Some(value.trim().to_string());
            }
            "expires" => {
                expires = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|e| *e > 0)
                        .ok_or_else(|| bad(format!("expires '{value}' is not seconds > 0")))?,
                )
            }
            other => return Err(bad(format!("unknown setting '{other}'"))),
        }
    }
    let username = match username {
        Some(u) => u,
        None => aor
            .user()
            .ok_or_else(|| bad("no user part: give username=".into()))?
            .to_string(),
    };
    let mut account = impp::sip::agent::Account::new(
        aor,
        &username,
        &password.ok_or_else(|| bad("password= is needed".into()))?,
        registrar.ok_or_else(|| bad("registrar= is needed".into()))?,
    );
    account.outbound_proxy = proxy;
    account.serve = serve;
    if let Some(k) = keepalive {
        account.keepalive = k;
    }
    account.xcap = xcap;
    if let Some(e) = expires {
        account.expires = e;
    }
    for (uri, package) in lists {
        account
            .add_list(uri, package)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(account)
}

/// An account's `list=[PACKAGE:]URI`: a resource list at the account's server, for
/// `presence` unless a package (`dialog:sip:blf@b.test`) comes first. No URI scheme is a
/// package name, so the prefix cannot be mistaken for one.
fn parse_account_list(value: &str) -> Result<(Uri, impp::engine::Package), String> {
    let value = value.trim();
    let (package, uri) = match value.split_once(':') {
        Some((prefix, rest)) => match prefix.parse::<impp::engine::Package>() {
            Ok(package) => (package, rest),
            Err(_) => (impp::engine::Package::Presence, value),
        },
        None => (impp::engine::Package::Presence, value),
    };
    let uri = Uri::parse(uri).map_err(|e| format!("list={value}: {e}"))?;
    Ok((uri, package))
}

/// `--subscription-expiry MIN/DEFAULT/MAX`, in seconds: `0 < DEFAULT` and
/// `MIN <= DEFAULT <= MAX`, as the engine checks them.
fn parse_expiry_bounds(value: &str) -> Result<impp::engine::ExpiryBounds, String> {
    let bad = || {
        format!(
            "--subscription-expiry {value}: expected MIN/DEFAULT/MAX seconds with \
             0 < DEFAULT and MIN <= DEFAULT <= MAX"
        )
    };
    let numbers: Vec<u32> = value
        .split('/')
        .map(|n| n.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [min, default, max] = numbers[..] else {
        return Err(bad());
    };
    if default == 0 || min > default || default > max {
        return Err(bad());
    }
    Ok(impp::engine::ExpiryBounds { default, min, max })
}

/// `error`, `warn`, `info`, `debug` or `trace`.
fn parse_level(text: &str) -> Result<Level, String> {
    Ok(match text {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        other => {
            return Err(format!(
                "log-level {other}: error, warn, info, debug or trace"
            ))
        }
    })
}

fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    ListenAddr::parse(text).map_err(|e| format!("--listen: {e}"))
}

impl Options {
    /// Applies one option; `value` is `None` for a flag without a value.
    fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        fn flag(name: &str, v: Option<&str>) -> Result<bool, String> {
            match v {
                None | Some("true") | Some("yes") | Some("1") => Ok(true),
                Some("false") | Some("no") | Some("0") => Ok(false),
                Some(v) => Err(format!("{name} = {v}: expected true or false")),
            }
        }
        fn need<'v>(name: &str, v: Option<&'v str>) -> Result<&'v str, String> {
            v.ok_or_else(|| format!("--{name} needs a value"))
        }
        match name {
            "domain" => self.domains.push(need(name, value)?.to_ascii_lowercase()),
            "listen" => self.listen.push(parse_listen(need(name, value)?)?),
            "db" => self.db = PathBuf::from(need(name, value)?),
            "ctl-socket" => self.ctl_socket = Some(need(name, value)?.to_owned()),
            "write-behind" => {
                let v = need(name, value)?;
                let ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_WRITE_BEHIND_MS)
                    .ok_or_else(|| {
                        format!(
                            "--write-behind needs milliseconds (0 to {MAX_WRITE_BEHIND_MS}), not '{v}'"
                        )
                    })?;
                self.write_behind = Some(std::time::Duration::from_millis(ms));
            }
            "open" => self.open = flag(name, value)?,
            "sha256" => self.sha256 = flag(name, value)?,
            "policy" => {
                self.policy = Some(
                    need(name, value)?
                        .parse()
                        .map_err(|e: impp::Error| format!("--policy: {e}"))?,
                )
            }
            "log-level" => {
                self.log_level = parse_level(need(name, value)?).map_err(|e| format!("--{e}"))?
            }
            "route" => self.routes.push(
                impp::sip::route::Route::parse(need(name, value)?)
                    .map_err(|e| format!("--route: {e}"))?,
            ),
            "account" => self.accounts.push(parse_account(need(name, value)?)?),
            "tls-cert" => self.tls_cert = Some(PathBuf::from(need(name, value)?)),
            "tls-key" => self.tls_key = Some(PathBuf::from(need(name, value)?)),
            "tls-ca" => self.tls_ca = Some(PathBuf::from(need(name, value)?)),
            "peer" => self.peers.push(
                impp::sip::TrustedPeer::parse(need(name, value)?)
                    .map_err(|e| format!("--peer: {e}"))?,
            ),
            "federation" => {
                self.federation = need(name, value)?
                    .parse()
                    .map_err(|e: impp::Error| format!("--federation: {e}"))?
            }
            "migrate" => {
                self.migration = need(name, value)?
                    .parse()
                    .map_err(|e: impp::Error| format!("--migrate: {e}"))?
            }
            "subscription-expiry" => {
                self.subscription_expiry = Some(parse_expiry_bounds(need(name, value)?)?)
            }
            "publisher" => self.publishers.push(
                impp::sip::TrustedPublisher::parse(need(name, value)?)
                    .map_err(|e| format!("--publisher: {e}"))?,
            ),
            "http" => {
                let v = need(name, value)?;
                self.http = Some(v.parse().map_err(|_| {
                    format!("--http {v}: expected ADDR:PORT (plain HTTP; [::1]:PORT for IPv6)")
                })?)
            }
            "https" => {
                let v = need(name, value)?;
                self.https = Some(v.parse().map_err(|_| {
                    format!("--https {v}: expected ADDR:PORT ([::1]:PORT for IPv6)")
                })?)
            }
            "federate" => self.federate = flag(name, value)?,
            "no-federate" => self.federate = !flag(name, value)?,
            "workers" => {
                self.workers = Some(
                    need(name, value)?
                        .parse()
                        .map_err(|_| "--workers needs a number".to_string())?,
                )
            }
            name if network::NAMES.contains(&name) => {
                return self
                    .network
                    .set(name, need(name, value)?)
                    .expect("one of network::NAMES")
            }
            limit if limit.starts_with("max-") => {
                set_state_limit(&mut self.state_limits, limit, need(name, value)?)?
            }
            other => return Err(format!("unknown option --{other}")),
        }
        Ok(())
    }

    fn load_config(&mut self, path: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("config {path}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = match line.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (line, None),
            };
            self.set(name, value)
                .map_err(|e| format!("config {path} line {}: {e}", n + 1))?;
        }
        Ok(())
    }
}

/// The flags of `imppd list add`, passed on to it with the positional arguments, in order.
const LIST_FLAGS: [&str; 4] = ["entry", "ref", "package", "name"];

/// Parses `--name value` / `--flag` arguments (a config file first, wherever it is given).
fn parse_options(args: &[String]) -> Result<(Options, Vec<String>), String> {
    let mut options = Options::default();
    let mut positional = Vec::new();
    let mut i = 0;
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    while i < args.len() {
        let arg = &args[i];
        if let Some(name) = arg.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            const WITH_VALUE: [&str; 21] = [
                "write-behind",
                "migrate",
                "subscription-expiry",
                "http",
                "https",
                "tls-cert",
                "tls-key",
                "tls-ca",
                "domain",
                "listen",
                "db",
                "policy",
                "log-level",
                "workers",
                "config",
                "password",
                "route",
                "account",
                "peer",
                "federation",
                "publisher",
            ];
            if !WITH_VALUE.contains(&name.as_str())
                && !LIST_FLAGS.contains(&name.as_str())
                && !network::NAMES.contains(&name.as_str())
                && !control::NAMES.contains(&name.as_str())
                && !name.starts_with("max-")
                && !matches!(name.as_str(), "open" | "sha256" | "no-federate" | "help")
            {
                return Err(format!("unknown option --{name}"));
            }
            let takes_value = !matches!(name.as_str(), "open" | "sha256" | "no-federate" | "help");
            let value = if inline.is_some() || !takes_value {
                inline
            } else {
                i += 1;
                Some(
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| format!("--{name} needs a value"))?,
                )
            };
            if LIST_FLAGS.contains(&name.as_str()) {
                // `imppd list add`'s entries, in the order given.
                positional.push(format!("--{name}={}", value.unwrap_or_default()));
            } else {
                pairs.push((name, value));
            }
        } else {
            positional.push(arg.clone());
        }
        i += 1;
    }
    if let Some((_, Some(path))) = pairs.iter().find(|(n, _)| n == "config") {
        options.load_config(path)?;
    }
    for (name, value) in &pairs {
        match name.as_str() {
            "config" | "password" => {}
            "help" => return Err(String::new()),
            _ => options.set(name, value.as_deref())?,
        }
    }
    if let Some((_, Some(pw))) = pairs.iter().find(|(n, _)| n == "password") {
        positional.push(format!("--password={pw}"));
    }
    Ok((options, positional))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ctl") {
        return ctl::main(&args[1..]);
    }
    let (options, positional) = match parse_options(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("imppd: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    log::set_max_level(options.log_level);
    // Every enabled line to standard error, with its level and where it comes from.
    // (A closed standard error must not stop the server: write errors are ignored.)
    log::set_sink(Some(Box::new(|level, message, target| {
        let _ = writeln!(std::io::stderr(), "imppd [{level}] {target}: {message}");
    })));
    let result = match positional.first().map(String::as_str) {
        Some("user") => user_command(&options, &positional[1..]),
        Some("rule") if options.memory_only() => {
            Err("--db none keeps no rules: give a database file".into())
        }
        Some("rule") => rules::command(&options.db, &positional[1..]),
        Some("list") if options.memory_only() => {
            Err("--db none keeps no lists: give a database file".into())
        }
        Some("list") => lists::command(&options.db, &options.domains, &positional[1..]),
        Some(other) => Err(format!("unknown command '{other}'")),
        None => serve(options, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imppd: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Options {
    /// `--db none`.
    fn memory_only(&self) -> bool {
        self.db.as_os_str() == "none"
    }
}

/// The longest `--write-behind`, in milliseconds: soft state a crash may lose stays short.
const MAX_WRITE_BEHIND_MS: u64 = 10_000;

fn open_store(options: &Options) -> Result<Arc<SqliteStore>, String> {
    let store = SqliteStore::open(&options.db).map_err(|e| e.to_string())?;
    if let Some(window) = options.write_behind {
        store.set_write_behind(window);
    }
    Ok(Arc::new(store))
}

/// Makes the engine's user directory what the database holds now (after `imppd user add` or
/// `user del` ran beside the server): read through a second connection (the file is in WAL
/// mode, so this reader does not block the server's writer). Returns how many users were
/// added or changed, and how many removed.
fn reload_users(db: &std::path::Path, engine: &Engine) -> Result<(usize, usize), String> {
    if db.as_os_str() == "none" {
        return Err("memory only (--db none): there is no database to read".into());
    }
    let stored = SqliteStore::open(db)
        .and_then(|s| s.load())
        .map_err(|e| e.to_string())?
        .credentials;
    let current = engine.users();
    let (mut added, mut removed) = (0, 0);
    for c in &stored {
        if !current.contains(c) {
            engine.set_user(c.clone()).map_err(|e| e.to_string())?;
            added += 1;
        }
    }
    for c in &current {
        if !stored.iter().any(|s| s.user == c.user)
            && engine.remove_user(&c.user).map_err(|e| e.to_string())?
        {
            removed += 1;
        }
    }
    Ok((added, removed))
}

fn user_command(options: &Options, args: &[String]) -> Result<(), String> {
    if options.memory_only() {
        return Err("--db none keeps no users: give a database file".into());
    }
    let store = open_store(options)?;
    match args.first().map(String::as_str) {
        Some("add") => {
            let uri = args.get(1).ok_or("user add needs a URI")?;
            let user = Uri::parse(uri).map_err(|e| e.to_string())?;
            if user.user().is_none() {
                return Err(format!("{uri} has no user part (user@domain)"));
            }
            let password = args
                .iter()
                .find_map(|a| a.strip_prefix("--password="))
                .ok_or("user add needs --password")?;
            let realm = user.host().to_string();
            store
                .write(Write::SaveCredential(Credential::new(
                    user.clone(),
                    &realm,
                    password,
                )))
                .map_err(|e| e.to_string())?;
            println!("added {user} (realm {realm})");
            Ok(())
        }
        Some("del") => {
            let uri = args.get(1).ok_or("user del needs a URI")?;
            let user = Uri::parse(uri).map_err(|e| e.to_string())?;
            store
                .write(Write::DeleteCredential(user.clone()))
                .map_err(|e| e.to_string())?;
            println!("deleted {user}");
            Ok(())
        }
        Some("list") => {
            for c in store.load().map_err(|e| e.to_string())?.credentials {
                println!("{} (realm {})", c.user, c.realm);
            }
            Ok(())
        }
        _ => Err("user: add, del or list".into()),
    }
}

/// The policy for watchers no rule names, as `imppd ctl status` and the start say it.
fn policy_text(options: &Options) -> String {
    options
        .policy
        .map_or("same domain allow, others confirm".into(), |p| {
            p.to_string()
        })
}

/// `a, b, c`, or `none`.
fn list_or_none<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The TLS settings, when a certificate is given (both files or neither).
fn tls_config(options: &Options) -> Result<Option<impp::sip::tls::TlsConfig>, String> {
    match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => {
            impp::sip::tls::TlsConfig::from_pem_files(cert, key, options.tls_ca.as_deref())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        (None, None) => Ok(None),
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

impl Options {
    /// The options of a server (`imppd` without a command) made whole: a domain is needed,
    /// and the default listeners stand in for none.
    fn for_serving(mut self) -> Result<Options, String> {
        if self.domains.is_empty() {
            return Err("at least one --domain is needed".into());
        }
        if self.listen.is_empty() {
            let local: SocketAddr = "127.0.0.1:5060".parse().expect("an address");
            self.listen = vec![ListenAddr::udp(local), ListenAddr::tcp(local)];
        }
        Ok(self)
    }

    /// The engine settings a reload may change: closed unless --policy says otherwise (the
    /// presentity's own domain may watch, others wait for a decision).
    fn runtime_settings(&self) -> impp::engine::RuntimeSettings {
        impp::engine::RuntimeSettings {
            default_policy: self.policy.unwrap_or(AuthAction::Confirm),
            same_domain_policy: self.policy.is_none().then_some(AuthAction::Allow),
            state_limits: self.state_limits,
        }
    }

    /// The SIP server's configuration (at start, and again at each reload); reads the TLS
    /// files.
    fn sip_config(&self) -> Result<SipServerConfig, String> {
        let mut sip = SipServerConfig::new(self.listen.clone());
        sip.authenticate = !self.open;
        sip.offer_sha256 = self.sha256;
        sip.routes = impp::sip::route::RouteTable::new(self.routes.clone());
        sip.federate = self.federate;
        sip.accounts = self.accounts.clone();
        sip.tls = tls_config(self)?;
        self.network.apply(&mut sip);
        sip.peers = self.peers.clone();
        sip.federation = self.federation;
        sip.publishers = self.publishers.clone();
        sip.migration = self.migration;
        Ok(sip)
    }
}

fn serve(options: Options, args: &[String]) -> Result<(), String> {
    let options = options.for_serving()?;
    // `--db none`: memory only (nothing outlives the process; no users, so with --open), the
    // counterpart of a memory-only Kamailio presence server.
    let store: Arc<dyn Store> = if options.memory_only() {
        Arc::new(impp::store::MemoryStore::volatile())
    } else {
        open_store(&options)?
    };
    let settings = options.runtime_settings();
    let mut config = EngineConfig {
        domains: options.domains.clone(),
        default_policy: settings.default_policy,
        same_domain_policy: settings.same_domain_policy,
        state_limits: settings.state_limits,
        store,
        ..EngineConfig::default()
    };
    if let Some(w) = options.workers {
        config.workers = w;
    }
    if let Some(bounds) = options.subscription_expiry {
        config.subscription_expiry = bounds;
    }
    let engine = Arc::new(Engine::new(config).map_err(|e| e.to_string())?);
    let sip = options.sip_config()?;
    // imppd has no application of its own: what the SIP server leaves to the application
    // (subscription state changes, deliveries, expiries) is let go, so the event queue
    // never fills.
    engine
        .set_event_callback(Some(Box::new(|_event| {})))
        .map_err(|e| e.to_string())?;
    let network_summary = options.network.summary(&sip);
    // The SIP server's own TLS identity: a reload that renews the certificate renews it for
    // HTTPS too.
    let sip_tls = sip.tls.clone();
    let server = Arc::new(std::sync::Mutex::new(
        SipServer::start(engine.clone(), sip).map_err(|e| e.to_string())?,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let sources = http::Sources {
        engine: engine.clone(),
        server: server.clone(),
        stopping: stop.clone(),
        xcap: Some(Arc::new(
            impp::xcap::XcapServer::new(engine.clone()).map_err(|e| e.to_string())?,
        )),
    };
    let http = match options.http {
        Some(addr) => Some(http::HttpListener::start(addr, sources.clone(), None)?),
        None => None,
    };
    let https = match options.https {
        Some(addr) => {
            let tls = sip_tls
                .ok_or("--https needs --tls-cert and --tls-key (the certificate it presents)")?;
            Some(http::HttpListener::start(
                addr,
                sources,
                Some(tls.server_config()),
            )?)
        }
        None => None,
    };
    let mut addrs: Vec<String> = lock(&server)
        .local_addrs()
        .iter()
        .map(|l| format!("{}:{}", l.proto.as_str(), l.addr))
        .collect();
    addrs.extend(http.as_ref().map(|h| format!("http:{}", h.local_addr())));
    addrs.extend(https.as_ref().map(|h| format!("https:{}", h.local_addr())));
    let reloader = Arc::new(reload::Reloader::new(
        args,
        &options,
        engine.clone(),
        server.clone(),
    ));
    // The control socket (`imppd ctl`), up before `imppd ready` so that it answers then.
    let control = match control::socket_path(options.ctl_socket.as_deref(), &options.db) {
        Some(path) => {
            let context = control::Context {
                engine: engine.clone(),
                db: (!options.memory_only()).then(|| options.db.clone()),
                domains: options.domains.clone(),
                listening: addrs.clone(),
                server: server.clone(),
                reloader: reloader.clone(),
            };
            match control::Control::start(&path, context) {
                Ok(control) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "imppd control: {}",
                        control.path().display()
                    );
                    Some(control)
                }
                // Named with --ctl-socket: the operator asked for it, so no start without it.
                Err(e) if options.ctl_socket.is_some() => return Err(e),
                // The default beside the database (a path too long for a socket, a second
                // imppd on one database): serve SIP anyway, without `imppd ctl`.
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "imppd: no control socket: {e}");
                    None
                }
            }
        }
        None => None,
    };
    let _ = writeln!(
        std::io::stderr(),
        "imppd trust: federation {}, peers {}, publishers {}, migration {}",
        options.federation,
        list_or_none(&options.peers),
        list_or_none(&options.publishers),
        options.migration.as_str()
    );

    let _ = writeln!(
        std::io::stderr(),
        "imppd ready: domains {} on {} (db {}, authentication {}, routes {}, federation {}, policy {}, {})",
        options.domains.join(", "),
        addrs.join(" "),
        options.db.display(),
        if options.open { "off" } else { "on" },
        if options.routes.is_empty() {
            "none".to_string()
        } else {
            options
                .routes
                .iter()
                .map(|r| format!("{}={}", r.domain.as_deref().unwrap_or("*"), r.target))
                .collect::<Vec<_>>()
                .join(" ")
        },
        if options.federate { "on" } else { "off" },
        policy_text(&options),
        network_summary
    );

    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }
    let report = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, report.clone())
        .map_err(|e| format!("cannot handle SIGUSR1: {e}"))?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed) {
            let _ = match reloader.reload() {
                Ok(report) => writeln!(std::io::stderr(), "imppd: {}", report.message),
                Err(e) => writeln!(
                    std::io::stderr(),
                    "imppd: reload refused, nothing changed: {e}"
                ),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
        if report.swap(false, Ordering::Relaxed) {
            let (g, t) = {
                let server = lock(&server);
                (server.guard_stats(), server.transport_stats())
            };
            let _ = writeln!(
                std::io::stderr(),
                "imppd: guard rate_refused={} rate_dropped={} queue_dropped={} \
                 messages_held={} auth_failures={} auth_throttled={} untrusted={}; \
                 connections open={} refused={} timed_out={}",
                g.rate_refused,
                g.rate_dropped,
                g.queue_dropped,
                t.messages_held,
                g.auth_failures,
                g.auth_throttled,
                g.untrusted,
                t.open_connections,
                t.connections_refused,
                t.connections_timed_out
            );
            let _ = writeln!(
                std::io::stderr(),
                "imppd: heap {} bytes live",
                heap::live_bytes()
            );
        }
    }
    let _ = writeln!(std::io::stderr(), "imppd: stopping");
    drop(control);
    for listener in [http, https].into_iter().flatten() {
        listener.stop();
    }
    lock(&server).stop();
    drop(server);
    engine.shutdown().map_err(|e| e.to_string())?;
    let _ = Proto::Udp;
    Ok(())
}

/// The SIP server, shared with the HTTP listener's scrapes (a poisoned lock still holds it).
fn lock(server: &std::sync::Mutex<SipServer>) -> std::sync::MutexGuard<'_, SipServer> {
    server
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
