"""The SIP stack over an engine: serves the engine's domains on the wire (registrar,
presence agent, IM relay), forwards requests for other domains to their routes, and
federates (one back-end subscription per remote presentity).

    with impp.Engine(domains=["example.test"]) as engine:
        engine.set_user_password("sip:alice@example.test", "secret")
        with impp.SipStack(engine, listen=["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]) as sip:
            print(sip.local_address("udp"))
            for event in engine.events(timeout=1.0):  # events the stack leaves to you
                print(event.kind)

While the stack runs, it takes the engine events that are its own to deliver
(notifications of watchers that subscribed over SIP, messages for registered SIP contacts);
the application keeps receiving every other event as before.

TLS listeners (``"tls:0.0.0.0:5061"``), routes and accounts take a certificate and key
(:class:`TlsFiles` or :class:`TlsPem`); :class:`ConnectionLimits`, :class:`RateLimit` and
:class:`AuthLimits` bound what strangers can make the stack do, and :meth:`SipStack.stats`
counts what it refused:

    tls = impp.TlsFiles("server.crt", "server.key", ca="ca.pem")
    with impp.SipStack(engine, listen=["tls:127.0.0.1:0"], tls=tls,
                       rate_limit=impp.RateLimit(50, burst=200),
                       auth_limits=impp.AuthLimits(max_failures=5)) as sip:
        print(sip.local_address("tls"), sip.stats()["rate_refused"])

Another domain's users are believed only from a peer that speaks for their domain (a
mutual-TLS certificate naming it, or an address listed in ``peers``) unless ``federation``
is :attr:`Federation.OPEN`; ``publishers`` lets a PBX or a voicemail account publish for
every user of the engine's domain:

    with impp.SipStack(engine, listen=["udp:0.0.0.0:5060"],
                       peers=["b.test=192.0.2.7"],
                       publishers=["192.0.2.20=example.test"]) as sip:
        print(sip.stats()["untrusted"])
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _ffi
from ._ffi import check, encode, encode_optional, lib, take_owned
from .enums import Federation, Migration
from .errors import InvalidArgument, Shutdown

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

__all__ = [
    "SIP_STATS",
    "Account",
    "AccountList",
    "AuthLimits",
    "ConnectionLimits",
    "RateLimit",
    "SipStack",
    "TlsFiles",
    "TlsPem",
]

#: impp_sip_counter counters, in C order: the keys of :meth:`SipStack.stats`. Every count is
#: since the stack started, but ``open_connections`` (connections open now).
SIP_STATS = (
    "auth_failures",
    "rate_refused",
    "rate_dropped",
    "queue_dropped",
    "auth_throttled",
    "nonce_replays",
    "open_connections",
    "connections_refused",
    "connections_timed_out",
    "untrusted",
    "relays_refused",
    "messages_held",
)

_Path = Union[str, "os.PathLike[str]"]


def _u32(value: Optional[int], what: str) -> Optional[int]:
    """An int the C API takes as a uint32 (None passed on); the library checks the range
    each setting allows."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(f"{what} must be from 0 to 4294967295, not {value!r}")
    return value


@dataclass(frozen=True)
class TlsFiles:
    """TLS for ``tls:`` listen addresses, routes and accounts, from PEM files: ``cert`` the
    certificate chain (the server's certificate first), ``key`` its private key, ``ca`` the
    certificates peers' certificates must chain to (None: the system's trust store). Read
    and checked when the stack is made: a file that cannot be read or does not hold what it
    should raises :class:`impp.InvalidArgument` naming it."""

    cert: _Path
    key: _Path
    ca: Optional[_Path] = None


@dataclass(frozen=True)
class TlsPem:
    """As :class:`TlsFiles`, from PEM text in memory (``str`` or ``bytes``). The key is not
    shown by ``repr``."""

    cert: Union[str, bytes]
    key: Union[str, bytes]
    ca: Optional[Union[str, bytes]] = None

    def __repr__(self) -> str:
        return f"TlsPem(cert={self.cert!r}, key='<hidden>', ca={self.ca!r})"


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on TCP and TLS connections; None keeps the default. ``max_total``: open at
    once (default 4096); ``max_per_address``: inbound from one IP address (default 64);
    ``idle_timeout_ms``: a connection with no traffic this long closes (default 180000;
    100 to 86400000); ``tls_handshake_timeout_ms``: a TLS handshake must end this long after
    the connection opened (default 10000; 100 to 600000); ``unvouched_timeout_ms``: an
    inbound connection no request authenticated on closes this long after it opened
    (default 32000; 100 to 86400000)."""

    max_total: Optional[int] = None
    max_per_address: Optional[int] = None
    idle_timeout_ms: Optional[int] = None
    tls_handshake_timeout_ms: Optional[int] = None
    unvouched_timeout_ms: Optional[int] = None


@dataclass(frozen=True)
class RateLimit:
    """Messages each source address may send: ``per_second`` on average, in bursts of up to
    ``burst`` (at least ``per_second``; None: five times ``per_second``). Beyond that as
    many again are answered ``503`` and the rest dropped unread. ``RateLimit(0)`` turns the
    limit off. The stack's default is ``RateLimit(200, burst=1000)``."""

    per_second: int
    burst: Optional[int] = None


@dataclass(frozen=True)
class AuthLimits:
    """How digest authentication limits replays and guessing; None keeps the default.
    ``nonce_lifetime_ms``: how long a nonce is good for (default 300000; 1000 to 86400000).
    ``nc_window``: how far below the highest nonce count an unused one is accepted (default
    32; 0 to 64). ``max_failures``: failed credentials from one address, for one user or for
    one (user, address) pair within ``failure_window_ms`` that start a block (default 10; 0:
    no throttle). ``failure_window_ms``: default 60000, 1000 to 86400000. ``block_ms``: how
    long an address or pair that failed too often is refused (default 300000; 1000 to
    86400000). ``proxies``: IP addresses of front proxies (a Kamailio dispatching to this
    stack), whose requests' failures count against the client address in their Via and
    which are not rate limited (default: none)."""

    nonce_lifetime_ms: Optional[int] = None
    nc_window: Optional[int] = None
    max_failures: Optional[int] = None
    failure_window_ms: Optional[int] = None
    block_ms: Optional[int] = None
    proxies: Tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountList:
    """A resource list (RFC 4662) at an account's server, declared with the account
    (``Account(..., lists=[...])``): the stack subscribes to it when it starts and keeps it
    until it closes, and each resource's state reaches the engine's watchers of that
    resource (``engine.subscribe(me, "sip:alice@b.test")``) as ordinary notifications.
    ``package`` is ``"presence"`` or ``"dialog"``."""

    uri: str
    package: str = "presence"


ListLike = Union[str, AccountList]


@dataclass(frozen=True)
class Account:
    """An account of the user-agent role: the stack registers ``aor`` at ``registrar``
    (``"udp:192.0.2.7:5060"``) with digest credentials ``username`` (None: the user part of
    ``aor``) and ``password``, publishes ``aor``'s presence as composed in the engine,
    subscribes to buddies for the application (a subscription whose watcher is ``aor`` to a
    presentity of another domain goes out through the account), sends ``aor``'s messages to
    other domains through it, and gives the application the messages relayed to it.
    ``outbound_proxy`` (None: the registrar) takes the requests other than REGISTER;
    ``expires`` is the registration and publication expiry asked for. ``lists``: resource
    lists at the account's server the stack subscribes to while it runs, each an
    :class:`AccountList` or a list URI (for ``presence``); a list of one of the engine's
    own domains raises :class:`impp.InvalidArgument` when the stack starts, a bad URI or
    package before.

    ``serve=True`` makes the stack the presence agent of ``aor`` (README, "Presence at the
    edge"): its REGISTER offers it (the feature tag ``events="presence"`` with RFC 5626's
    ``+sip.instance`` and ``reg-id``, ``Supported: outbound``), and the SUBSCRIBEs for ``aor``
    that reach it are served from the engine, authorized by the rules read from the XCAP
    root ``xcap`` (``"http://192.0.2.7:8080/xcap-root"``): ``480`` until they are read,
    ``403`` for a watcher they do not allow. Over TCP or TLS its flow to the registrar is
    kept alive with a ping every ``keepalive`` seconds (0: none)."""

    aor: str
    password: str
    registrar: str
    username: Optional[str] = None
    outbound_proxy: Optional[str] = None
    expires: int = 3600
    lists: Sequence[ListLike] = ()
    serve: bool = False
    keepalive: int = 30
    xcap: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.lists, str):
            raise TypeError("lists must be a sequence of list URIs or impp.AccountList, "
                            "not one str")
        lists = tuple(AccountList(x) if isinstance(x, str) else x for x in self.lists)
        for x in lists:
            if not isinstance(x, AccountList):
                raise TypeError(f"lists must hold str or impp.AccountList, not {x!r}")
        object.__setattr__(self, "lists", lists)

    def __repr__(self) -> str:
        return (f"Account(aor={self.aor!r}, username={self.username!r}, password='<hidden>', "
                f"registrar={self.registrar!r}, outbound_proxy={self.outbound_proxy!r}, "
                f"expires={self.expires}, lists={self.lists!r}, serve={self.serve!r}, "
                f"keepalive={self.keepalive}, xcap={self.xcap!r})")


def _sip_config(
    listen: Iterable[str],
    *,
    authenticate: bool = True,
    routes: Iterable[str] = (),
    accounts: Iterable[Account] = (),
    federate: bool = True,
    offer_sha256: bool = True,
    t1_ms: Optional[int] = None,
    workers: Optional[int] = None,
    tls: Union[TlsFiles, TlsPem, None] = None,
    connection_limits: Optional[ConnectionLimits] = None,
    rate_limit: Optional[RateLimit] = None,
    auth_limits: Optional[AuthLimits] = None,
    peers: Iterable[str] = (),
    federation: Union[Federation, str] = Federation.TRUSTED,
    publishers: Iterable[str] = (),
    list_batch_interval_ms: Optional[int] = None,
    ws_origins: Iterable[str] = (),
    migration: Union[Migration, str] = Migration.OFF,
    flow_timeout_ms: Optional[int] = None,
) -> Any:
    """A new configuration handle made of :class:`SipStack`'s arguments (its owner frees
    or consumes it); a bad value raises and leaves nothing to free."""
    config = _ffi.SipConfigP()
    check(lib.impp_sip_config_new(ctypes.byref(config)))
    try:
        if isinstance(listen, str):
            raise TypeError("listen must be a list of addresses, not one str")
        addresses = list(listen)
        if not addresses:
            raise InvalidArgument("listen must be a non-empty list of addresses")
        for address in addresses:
            check(lib.impp_sip_config_add_listen(config, encode(address, "listen")))
        for route in routes:
            check(lib.impp_sip_config_add_route(config, encode(route, "route")))
        for a in accounts:
            if not isinstance(a, Account):
                raise TypeError(f"accounts must be impp.Account, not {type(a).__name__}")
            if isinstance(a.expires, bool) or not 0 <= a.expires <= 0xFFFFFFFF:
                raise InvalidArgument(f"expires must be seconds >= 0, not {a.expires!r}")
            account = _ffi.AccountP()
            check(lib.impp_account_new(
                encode(a.aor, "aor"),
                encode(a.password, "password"),
                encode(a.registrar, "registrar"),
                ctypes.byref(account),
            ))
            try:
                if a.username is not None:
                    check(lib.impp_account_set_username(
                        account, encode(a.username, "username")))
                if a.outbound_proxy is not None:
                    check(lib.impp_account_set_outbound_proxy(
                        account, encode(a.outbound_proxy, "outbound_proxy")))
                check(lib.impp_account_set_expires(account, a.expires))
                check(lib.impp_account_set_serve(account, bool(a.serve)))
                check(lib.impp_account_set_keepalive(account, a.keepalive))
                if a.xcap is not None:
                    check(lib.impp_account_set_xcap(account, encode(a.xcap, "xcap")))
                for x in a.lists:
                    assert isinstance(x, AccountList)  # made so by Account
                    check(lib.impp_account_add_list(
                        account, encode(x.uri, "list uri"), encode(x.package, "package")))
                check(lib.impp_sip_config_add_account(config, account))
            finally:
                lib.impp_account_free(account)
        check(lib.impp_sip_config_set_authenticate(config, bool(authenticate)))
        check(lib.impp_sip_config_set_federate(config, bool(federate)))
        check(lib.impp_sip_config_set_offer_sha256(config, bool(offer_sha256)))
        if t1_ms is not None:
            check(lib.impp_sip_config_set_t1_ms(config, int(t1_ms)))
        if workers is not None:
            check(lib.impp_sip_config_set_workers(config, int(workers)))
        batch = _u32(list_batch_interval_ms, "list_batch_interval_ms")
        if batch is not None:
            check(lib.impp_sip_config_set_list_batch_interval_ms(config, batch))
        _set_tls(config, tls)
        _set_connection_limits(config, connection_limits)
        _set_rate_limit(config, rate_limit)
        _set_auth_limits(config, auth_limits)
        _set_trust(config, peers, federation, publishers)
        if isinstance(ws_origins, str):
            raise TypeError("ws_origins must be a list of origins, not one str")
        for origin in ws_origins:
            check(lib.impp_sip_config_add_ws_origin(config, encode(origin, "ws_origin")))
        check(lib.impp_sip_config_set_migration(
            config, Migration._parse(migration, "migration")._c))
        flow_timeout = _u32(flow_timeout_ms, "flow_timeout_ms")
        if flow_timeout is not None:
            check(lib.impp_sip_config_set_flow_timeout_ms(config, flow_timeout))
    except BaseException:
        lib.impp_sip_config_free(config)
        raise
    return config


class SipStack:
    """``SipStack(engine, listen=[...], authenticate=True, routes=(), accounts=(),
    federate=True, offer_sha256=True, t1_ms=None, workers=None, tls=None,
    connection_limits=None, rate_limit=None, auth_limits=None, peers=(),
    federation=Federation.TRUSTED, publishers=(), list_batch_interval_ms=None,
    ws_origins=(), migration=Migration.OFF, flow_timeout_ms=None)``.

    ``listen``: addresses as ``"udp:127.0.0.1:5060"`` / ``"tcp:[::1]:5060"`` /
    ``"tls:0.0.0.0:5061"``, or for browsers (SIP over WebSocket, RFC 7118)
    ``"ws:127.0.0.1:8080"`` / ``"wss:0.0.0.0:8443"`` (port 0: any free port, see
    :meth:`local_address`).
    ``authenticate``: digest authentication of the users of the engine's domains (their
    passwords set with :meth:`impp.Engine.set_user_password`). ``routes``:
    ``"b.example=udp:192.0.2.7:5060"`` next hops for other domains, ``"*=..."`` the default.
    ``federate``: serve a SUBSCRIBE of a local user to another domain here, with one shared
    back-end subscription, rather than forward it. ``accounts``: :class:`Account` s of the
    user-agent role. ``tls``: a :class:`TlsFiles` or :class:`TlsPem`, needed by ``tls:``
    addresses. ``connection_limits``, ``rate_limit``, ``auth_limits``: a
    :class:`ConnectionLimits`, :class:`RateLimit`, :class:`AuthLimits` (None: the defaults).
    ``peers``: ``"b.test=192.0.2.7"`` or ``"b.test=192.0.2.0/24"`` (``DOMAIN=ADDR[/PREFIX]``),
    or ``"b.test=sip.b.test"`` (``DOMAIN=HOST``: its A/AAAA addresses, followed with their TTL),
    addresses trusted to speak for the users of another domain. ``federation``: whom such
    users are believed from, a :class:`impp.Federation` or its token (``"trusted"``: peers
    only, the default; ``"open"``: anyone). ``publishers``: ``"192.0.2.20=example.test"`` (a
    PBX by address) or ``"sip:voicemail@example.test=example.test"`` (an account), telephony
    systems that may publish presence, dialog and message-summary state for every user of
    one of the engine's domains. A peer for one of the engine's domains, or a publisher for
    a domain not the engine's, raises :class:`impp.InvalidArgument` when the stack starts.
    ``list_batch_interval_ms``: how long the list server (RFC 4662) collects changes of a
    list's resources before one partial-state NOTIFY (default 1000; 0: none; 0 to 60000).
    ``ws_origins``: web origins (``"https://phone.example.test"``, or ``"*"``) whose pages
    may open WebSockets besides pages of the stack's own host and port. ``migration``: a
    :class:`impp.Migration` or its token (``"off"``, ``"proxy"``, ``"redirect"``): whether
    the watchers of a presentity whose device offers to serve them are handed to it (see the
    README, "Presence at the edge"). A bad value raises :class:`impp.InvalidArgument` and no stack starts. Close the stack
    before the engine (closing the engine closes it first).
    ``flow_timeout_ms``: how long the TCP/TLS flow of a device serving its own watchers may
    stay silent (no keep-alive) before its watchers are taken back (None or 0: never).
    """

    def __init__(
        self,
        engine: Engine,
        listen: Iterable[str],
        *,
        authenticate: bool = True,
        routes: Iterable[str] = (),
        accounts: Iterable[Account] = (),
        federate: bool = True,
        offer_sha256: bool = True,
        t1_ms: Optional[int] = None,
        workers: Optional[int] = None,
        tls: Union[TlsFiles, TlsPem, None] = None,
        connection_limits: Optional[ConnectionLimits] = None,
        rate_limit: Optional[RateLimit] = None,
        auth_limits: Optional[AuthLimits] = None,
        peers: Iterable[str] = (),
        federation: Union[Federation, str] = Federation.TRUSTED,
        publishers: Iterable[str] = (),
        list_batch_interval_ms: Optional[int] = None,
        ws_origins: Iterable[str] = (),
        migration: Union[Migration, str] = Migration.OFF,
        flow_timeout_ms: Optional[int] = None,
    ) -> None:
        self._ptr: Any = None
        self._lock = threading.Lock()
        config = _sip_config(
            listen,
            authenticate=authenticate,
            routes=routes,
            accounts=accounts,
            federate=federate,
            offer_sha256=offer_sha256,
            t1_ms=t1_ms,
            workers=workers,
            tls=tls,
            connection_limits=connection_limits,
            rate_limit=rate_limit,
            auth_limits=auth_limits,
            peers=peers,
            federation=federation,
            publishers=publishers,
            list_batch_interval_ms=list_batch_interval_ms,
            ws_origins=ws_origins,
            migration=migration,
            flow_timeout_ms=flow_timeout_ms,
        )
        out = _ffi.SipP()
        with engine._use() as h:
            # Consumes the configuration, whether or not it succeeds.
            check(lib.impp_sip_start(h, config, ctypes.byref(out)))
        self._ptr = out
        self._engine = engine
        engine._stacks.add(self)

    def reconfigure(self, listen: Iterable[str], **options: Any) -> Tuple[List[str], List[str]]:
        """Applies a new configuration (the constructor's arguments but the engine) to the
        running stack as far as it can change without a restart: routes, peers,
        federation, publishers, rate limit, migration, TLS certificate. Dialogs,
        registrations and connections carry on. Returns what changed and what differs but
        takes a restart (not applied), as lists of names. A configuration that would not
        start a stack raises :class:`impp.InvalidArgument` and changes nothing."""
        config = _sip_config(listen, **options)
        changed, restart = ctypes.c_void_p(), ctypes.c_void_p()
        with self._lock:
            if not self._ptr:
                lib.impp_sip_config_free(config)
                raise Shutdown("the SIP stack is closed")
            # Consumes the configuration, whether or not it succeeds.
            check(lib.impp_sip_reconfigure(
                self._ptr, config, ctypes.byref(changed), ctypes.byref(restart)))

        def names(out: Any) -> List[str]:
            text = take_owned(out) or ""
            return [n for n in text.split(", ") if n]

        return names(changed), names(restart)

    def local_address(self, proto: str = "udp") -> str:
        """The first bound address of ``proto`` (``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"``
        or ``"wss"``), such as ``"udp:127.0.0.1:5060"``, with a port 0 resolved."""
        with self._lock:
            if not self._ptr:
                raise Shutdown("the SIP stack is closed")
            out = ctypes.c_void_p()
            check(lib.impp_sip_local_address(self._ptr, encode(proto, "proto"), ctypes.byref(out)))
        return take_owned(out) or ""

    def subscribe_list(self, account: int, uri: str, package: str = "presence") -> None:
        """Subscribes account number ``account`` (its index in ``accounts``) to the resource
        list ``uri`` at its server (RFC 4662) for ``package`` (``"presence"``,
        ``"dialog"``), until :meth:`unsubscribe_list` or :meth:`close`; each resource's
        state reaches the engine's watchers of that resource as ordinary notifications.
        Again for the same list: nothing changes. Not made again by the next stack: declare
        it in :attr:`Account.lists` for that. Raises :class:`impp.InvalidArgument` (no such
        account, a list of one of the engine's own domains, ``"presence.winfo"``),
        :class:`impp.InvalidUri`, :class:`impp.UnknownPackage`; nothing changes then."""
        index = _index(account)
        with self._lock:
            if not self._ptr:
                raise Shutdown("the SIP stack is closed")
            check(lib.impp_sip_subscribe_list(
                self._ptr, index, encode(uri, "uri"), encode(package, "package")))

    def unsubscribe_list(self, account: int, uri: str, package: str = "presence") -> bool:
        """Ends what :meth:`subscribe_list` (or a declared list, until the next stack)
        started: the mirrored resource states go, and watchers are told. Returns whether
        there was such a subscription. Raises as :meth:`subscribe_list`."""
        index = _index(account)
        ended = ctypes.c_bool()
        with self._lock:
            if not self._ptr:
                raise Shutdown("the SIP stack is closed")
            check(lib.impp_sip_unsubscribe_list(
                self._ptr, index, encode(uri, "uri"), encode(package, "package"),
                ctypes.byref(ended)))
        return ended.value

    def stats(self) -> Dict[str, int]:
        """The stack's counters, by the names of :data:`SIP_STATS`: what it refused to
        protect its users (``auth_failures``, ``rate_refused``, ``rate_dropped``,
        ``queue_dropped``, ``auth_throttled``, ``nonce_replays``, ``untrusted``,
        ``relays_refused``), its TCP and TLS connections (``open_connections``,
        ``connections_refused``, ``connections_timed_out``), and the stream messages held
        on their connection while the workers' queue was full (``messages_held``)."""
        with self._lock:
            if not self._ptr:
                raise Shutdown("the SIP stack is closed")
            return {name: int(lib.impp_sip_stat(self._ptr, i)) for i, name in enumerate(SIP_STATS)}

    def close(self) -> None:
        """Stops the stack (its sockets and threads). The engine keeps running. Idempotent.
        From inside an engine's event callback it raises :class:`impp.InCallback` and the
        stack keeps running (close it from another thread), as :meth:`Engine.close` does."""
        with self._lock:
            if not self._ptr:
                return
            check(lib.impp_sip_free(self._ptr))
            self._ptr = None
        self._engine._stacks.discard(self)

    def __enter__(self) -> SipStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _index(account: int) -> int:
    """An account index as the C API takes it (a size_t)."""
    if isinstance(account, bool) or not isinstance(account, int):
        raise TypeError(f"account must be an int (an index of accounts), not {account!r}")
    if not 0 <= account < 2**63:
        raise InvalidArgument(f"no account {account}")
    return account


def _set_tls(config: Any, tls: Union[TlsFiles, TlsPem, None]) -> None:
    if tls is None:
        return
    if isinstance(tls, TlsFiles):
        check(lib.impp_sip_config_set_tls_files(
            config,
            encode(os.fspath(tls.cert), "tls.cert"),
            encode(os.fspath(tls.key), "tls.key"),
            None if tls.ca is None else encode(os.fspath(tls.ca), "tls.ca"),
        ))
    elif isinstance(tls, TlsPem):
        check(lib.impp_sip_config_set_tls_pem(
            config,
            encode(tls.cert, "tls.cert"),
            encode(tls.key, "tls.key"),
            encode_optional(tls.ca, "tls.ca"),
        ))
    else:
        raise TypeError(f"tls must be impp.TlsFiles or impp.TlsPem, not {type(tls).__name__}")


def _set_connection_limits(config: Any, limits: Optional[ConnectionLimits]) -> None:
    if limits is None:
        return
    if not isinstance(limits, ConnectionLimits):
        raise TypeError(f"connection_limits must be impp.ConnectionLimits, not {limits!r}")
    for value, setter, what in (
        (limits.max_total, lib.impp_sip_config_set_max_connections, "max_total"),
        (limits.max_per_address, lib.impp_sip_config_set_max_connections_per_address,
         "max_per_address"),
        (limits.idle_timeout_ms, lib.impp_sip_config_set_idle_timeout_ms, "idle_timeout_ms"),
        (limits.tls_handshake_timeout_ms, lib.impp_sip_config_set_tls_handshake_timeout_ms,
         "tls_handshake_timeout_ms"),
        (limits.unvouched_timeout_ms, lib.impp_sip_config_set_unvouched_timeout_ms,
         "unvouched_timeout_ms"),
    ):
        checked = _u32(value, what)
        if checked is not None:
            check(setter(config, checked))


def _set_rate_limit(config: Any, limit: Optional[RateLimit]) -> None:
    if limit is None:
        return
    if not isinstance(limit, RateLimit):
        raise TypeError(f"rate_limit must be impp.RateLimit, not {limit!r}")
    per_second = _u32(limit.per_second, "per_second")
    if per_second is None:
        raise TypeError("per_second must be an int, not None")
    burst = _u32(limit.burst, "burst")
    if burst is None:
        burst = min(per_second * 5, 0xFFFFFFFF)
    check(lib.impp_sip_config_set_rate_limit(config, per_second, burst))


def _set_auth_limits(config: Any, limits: Optional[AuthLimits]) -> None:
    if limits is None:
        return
    if not isinstance(limits, AuthLimits):
        raise TypeError(f"auth_limits must be impp.AuthLimits, not {limits!r}")
    for value, setter, what in (
        (limits.nonce_lifetime_ms, lib.impp_sip_config_set_nonce_lifetime_ms,
         "nonce_lifetime_ms"),
        (limits.nc_window, lib.impp_sip_config_set_nc_window, "nc_window"),
        (limits.max_failures, lib.impp_sip_config_set_max_auth_failures, "max_failures"),
        (limits.failure_window_ms, lib.impp_sip_config_set_auth_failure_window_ms,
         "failure_window_ms"),
        (limits.block_ms, lib.impp_sip_config_set_auth_block_ms, "block_ms"),
    ):
        checked = _u32(value, what)
        if checked is not None:
            check(setter(config, checked))
    if isinstance(limits.proxies, str):
        raise TypeError("proxies must be a sequence of addresses, not one str")
    for proxy in limits.proxies:
        check(lib.impp_sip_config_add_auth_proxy(config, encode(proxy, "proxy")))


def _set_trust(config: Any, peers: Iterable[str], federation: Union[Federation, str],
               publishers: Iterable[str]) -> None:
    if isinstance(peers, str):
        raise TypeError("peers must be a list of DOMAIN=ADDR[/PREFIX], not one str")
    if isinstance(publishers, str):
        raise TypeError("publishers must be a list of ADDR[/PREFIX]=DOMAIN or "
                        "ACCOUNT=DOMAIN, not one str")
    for peer in peers:
        check(lib.impp_sip_config_add_peer(config, encode(peer, "peer")))
    check(lib.impp_sip_config_set_federation(
        config, Federation._parse(federation, "federation")._c))
    for publisher in publishers:
        check(lib.impp_sip_config_add_publisher(config, encode(publisher, "publisher")))
