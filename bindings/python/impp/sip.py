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
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional

from . import _ffi
from ._ffi import check, encode, lib, take_owned
from .errors import InvalidArgument, Shutdown

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

__all__ = ["Account", "SipStack"]


@dataclass(frozen=True)
class Account:
    """An account of the user-agent role: the stack registers ``aor`` at ``registrar``
    (``"udp:192.0.2.7:5060"``) with digest credentials ``username`` (None: the user part of
    ``aor``) and ``password``, publishes ``aor``'s presence as composed in the engine,
    subscribes to buddies for the application (a subscription whose watcher is ``aor`` to a
    presentity of another domain goes out through the account), sends ``aor``'s messages to
    other domains through it, and gives the application the messages relayed to it.
    ``outbound_proxy`` (None: the registrar) takes the requests other than REGISTER;
    ``expires`` is the registration and publication expiry asked for."""

    aor: str
    password: str
    registrar: str
    username: Optional[str] = None
    outbound_proxy: Optional[str] = None
    expires: int = 3600

    def __repr__(self) -> str:
        return (f"Account(aor={self.aor!r}, username={self.username!r}, password='<hidden>', "
                f"registrar={self.registrar!r}, outbound_proxy={self.outbound_proxy!r}, "
                f"expires={self.expires})")


class SipStack:
    """``SipStack(engine, listen=[...], authenticate=True, routes=(), accounts=(),
    federate=True, offer_sha256=True, t1_ms=None, workers=None)``.

    ``listen``: addresses as ``"udp:127.0.0.1:5060"`` / ``"tcp:[::1]:5060"`` (port 0: any
    free port, see :meth:`local_address`). ``authenticate``: digest authentication of the
    users of the engine's domains (their passwords set with
    :meth:`impp.Engine.set_user_password`). ``routes``: ``"b.example=udp:192.0.2.7:5060"``
    next hops for other domains, ``"*=..."`` the default. ``federate``: serve a SUBSCRIBE of a
    local user to another domain here, with one shared back-end subscription, rather than
    forward it. ``accounts``: :class:`Account` s of the user-agent role. Close the stack
    before the engine (closing the engine closes it first).
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
    ) -> None:
        self._ptr: Any = None
        self._lock = threading.Lock()
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
        except BaseException:
            lib.impp_sip_config_free(config)
            raise
        out = _ffi.SipP()
        with engine._use() as h:
            # Consumes the configuration, whether or not it succeeds.
            check(lib.impp_sip_start(h, config, ctypes.byref(out)))
        self._ptr = out
        self._engine = engine
        engine._stacks.add(self)

    def local_address(self, proto: str = "udp") -> str:
        """The first bound address of ``proto`` (``"udp"`` or ``"tcp"``), such as
        ``"udp:127.0.0.1:5060"``, with a port 0 resolved."""
        with self._lock:
            if not self._ptr:
                raise Shutdown("the SIP stack is closed")
            out = ctypes.c_void_p()
            check(lib.impp_sip_local_address(self._ptr, encode(proto, "proto"), ctypes.byref(out)))
        return take_owned(out) or ""

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
