"""The engine: publications, subscriptions, authorization, and event delivery by polling, by
callback, or through asyncio.

Durations are in seconds (expiries as whole seconds, like SIP; timeouts and notification
intervals as floats), except :meth:`Engine.advance_clock`, which takes milliseconds like the C
call it wraps.
"""

import asyncio
import atexit
import ctypes
import math
import threading
import time
import weakref
from contextlib import contextmanager
from ctypes import c_bool, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Union

from . import _ffi
from ._ffi import body_bytes, check, encode, encode_optional, lib
from .errors import NotFound, Shutdown
from .documents import DialogInfo, MessageSummary
from .events import STATES, Event
from .presence import Presence

__all__ = ["Config", "Engine", "Rule", "SubscriptionState", "ACTIONS", "STATS"]

#: impp_auth_action values by name.
ACTIONS = {"allow": 1, "block": 2, "polite_block": 3, "confirm": 4}
_ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
_REASONS = {
    "deactivated": 1,
    "probation": 2,
    "rejected": 3,
    "timeout": 4,
    "giveup": 5,
    "noresource": 6,
}
#: impp_stat counters, in C order: the keys of Engine.stats().
STATS = (
    "presentities",
    "publications",
    "subscriptions_pending",
    "subscriptions_active",
    "events_queued",
    "notifications_sent",
    "notifications_merged",
    "notifications_throttled",
    "events_overflowed",
    "callback_panics",
)

# Blocking waits are cut into slices so that Ctrl-C is seen and close() from another thread
# never waits long for a poller to come back out of the library.
_SLICE_MS = 200


def _action(action: Union[str, int]) -> int:
    if isinstance(action, str):
        value = ACTIONS.get(action.replace("-", "_"))
        if value is not None:
            return value
    elif isinstance(action, int) and not isinstance(action, bool) and action in _ACTION_NAMES:
        return action
    raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")


def _reason(reason: Union[str, int]) -> int:
    if isinstance(reason, str) and reason in _REASONS:
        return _REASONS[reason]
    if isinstance(reason, int) and not isinstance(reason, bool) and 1 <= reason <= 6:
        return reason
    raise ValueError(f"reason must be one of {', '.join(_REASONS)}, not {reason!r}")


def _seconds_to_ms(value: float, what: str) -> int:
    if value < 0:
        raise ValueError(f"{what} must not be negative: {value!r}")
    return int(round(value * 1000))


class Rule(NamedTuple):
    """An authorization rule: for one ``watcher`` URI or a whole ``domain`` (the other is
    None), what to do (``"allow"``, ``"block"``, ``"polite_block"``, ``"confirm"``)."""

    watcher: Optional[str]
    domain: Optional[str]
    action: str


class SubscriptionState(NamedTuple):
    state: Optional[str]  # "pending", "active", "terminated"
    expires_in: int  # seconds left
    authorization: Optional[str]  # what authorization decided (an action name)


class Config:
    """Engine options. Keyword arguments call the setters of the same name:

    ``workers``, ``domains`` (list), ``publication_expiry`` / ``subscription_expiry``
    (``(min, default, max)`` seconds), ``queue_capacity``, ``default_policy`` (an action
    name), ``min_notify_interval`` (seconds), ``winfo_admins`` (list of URIs),
    ``document_limits`` (``(max_bytes, max_depth)``), ``manual_clock`` (bool).

    An :class:`Engine` consumes its Config; one Config makes one engine.
    """

    def __init__(self, **options) -> None:
        self._ptr = None
        out = _ffi.ConfigP()
        check(lib.impp_config_new(ctypes.byref(out)))
        self._ptr = out
        try:
            self.update(**options)
        except BaseException:
            self.close()
            raise

    def update(self, **options) -> "Config":
        for name, value in options.items():
            setter = _CONFIG_OPTIONS.get(name)
            if setter is None:
                raise TypeError(
                    f"unknown engine option {name!r} (one of {', '.join(_CONFIG_OPTIONS)})"
                )
            setter(self, value)
        return self

    @staticmethod
    def default_workers() -> int:
        return lib.impp_config_default_workers()

    def _h(self):
        if not self._ptr:
            raise ValueError("the configuration is closed or was given to an engine")
        return self._ptr

    def set_workers(self, workers: int) -> "Config":
        check(lib.impp_config_set_workers(self._h(), workers))
        return self

    def add_domain(self, domain: str) -> "Config":
        check(lib.impp_config_add_domain(self._h(), encode(domain, "domain")))
        return self

    def set_publication_expiry(self, min: int, default: int, max: int) -> "Config":
        check(lib.impp_config_set_publication_expiry(self._h(), min, default, max))
        return self

    def set_subscription_expiry(self, min: int, default: int, max: int) -> "Config":
        check(lib.impp_config_set_subscription_expiry(self._h(), min, default, max))
        return self

    def set_queue_capacity(self, capacity: int) -> "Config":
        check(lib.impp_config_set_queue_capacity(self._h(), capacity))
        return self

    def set_default_policy(self, action: Union[str, int]) -> "Config":
        check(lib.impp_config_set_default_policy(self._h(), _action(action)))
        return self

    def set_min_notify_interval(self, seconds: float) -> "Config":
        ms = _seconds_to_ms(seconds, "min_notify_interval")
        check(lib.impp_config_set_min_notify_interval_ms(self._h(), ms))
        return self

    def add_winfo_admin(self, uri: str) -> "Config":
        check(lib.impp_config_add_winfo_admin(self._h(), encode(uri, "uri")))
        return self

    def set_document_limits(self, max_bytes: int, max_depth: int) -> "Config":
        check(lib.impp_config_set_document_limits(self._h(), max_bytes, max_depth))
        return self

    def use_manual_clock(self) -> "Config":
        check(lib.impp_config_use_manual_clock(self._h()))
        return self

    def _take(self):
        """Hands the handle over to impp_engine_new (which consumes it)."""
        ptr, self._ptr = self._h(), None
        return ptr

    def close(self) -> None:
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            lib.impp_config_free(ptr)

    def __enter__(self) -> "Config":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _many(setter):
    def apply(config: Config, values) -> None:
        for value in [values] if isinstance(values, (str, bytes)) else values:
            setter(config, value)

    return apply


def _flag(setter):
    def apply(config: Config, value) -> None:
        if value:
            setter(config)

    return apply


_CONFIG_OPTIONS: Dict[str, Callable[[Config, object], None]] = {
    "workers": Config.set_workers,
    "domains": _many(Config.add_domain),
    "publication_expiry": lambda c, v: c.set_publication_expiry(*v),
    "subscription_expiry": lambda c, v: c.set_subscription_expiry(*v),
    "queue_capacity": Config.set_queue_capacity,
    "default_policy": Config.set_default_policy,
    "min_notify_interval": Config.set_min_notify_interval,
    "winfo_admins": _many(Config.add_winfo_admin),
    "document_limits": lambda c, v: c.set_document_limits(*v),
    "manual_clock": _flag(Config.use_manual_clock),
}


# Engines still open, closed at interpreter exit: a dispatcher thread must not call into a
# Python that is finalizing. Weak, so this never keeps an engine alive.
_live: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for engine in list(_live):
        try:
            engine.close()
        except Exception:
            pass


class _Deliver:
    """The registry entry of one on_event() callback: copies the borrowed C event into an
    Event during the call, then calls the user's function. Holds the engine weakly, so a
    callback registration alone never keeps an engine alive."""

    __slots__ = ("engine", "callback")

    def __init__(self, engine: "Engine", callback: Callable[[Event], None]) -> None:
        self.engine = weakref.ref(engine)
        self.callback = callback

    def __call__(self, event_ptr) -> None:
        event = Event._copy(event_ptr)
        engine = self.engine()
        if engine is not None:
            engine._dispatch_thread = threading.get_ident()
        try:
            self.callback(event)
        finally:
            if engine is not None:
                engine._dispatch_thread = None


class Engine:
    """A running presence engine.

    ``Engine(config)`` or ``Engine(**options)`` (the options of :class:`Config`). Events are
    read with :meth:`next_event` / :meth:`events`, with asyncio (:meth:`wait_event`,
    :meth:`aevents`), or pushed to a callback set with :meth:`on_event` on the engine's
    dispatcher thread. Close it with :meth:`close` or a ``with`` block: that joins every
    engine thread, and no callback runs afterwards.
    """

    def __init__(self, config: Optional[Config] = None, **options) -> None:
        self._ptr = None
        self._cond = threading.Condition()
        self._busy = 0
        self._closing = False
        self._has_callback = False
        self._dispatch_thread: Optional[int] = None
        self._async_waiting = False
        if config is None:
            config = Config(**options)
        elif options:
            config.update(**options)
        out = _ffi.EngineP()
        check(lib.impp_engine_new(config._take(), ctypes.byref(out)))
        self._ptr = out
        _live.add(self)

    # --- lifetime ---

    @contextmanager
    def _use(self):
        """The handle, kept valid for the duration of one call: close() waits for calls in
        progress on other threads, and refuses new ones once it has started."""
        with self._cond:
            if not self._ptr or self._closing:
                raise Shutdown("the engine is closed", -12)
            self._busy += 1
        try:
            yield self._ptr
        finally:
            with self._cond:
                self._busy -= 1
                if self._busy == 0:
                    self._cond.notify_all()

    def close(self) -> None:
        """Shuts the engine down: joins its threads, drops undelivered events, releases the
        callback. Idempotent. From inside this engine's own callback it raises
        :class:`impp.InCallback` and changes nothing (close it from another thread)."""
        if getattr(self, "_ptr", None) is None:
            return
        if self._dispatch_thread == threading.get_ident():
            # Inside our own callback: the library refuses (it cannot join the thread it
            # runs on). Ask it anyway, so the error and its message are the library's.
            with self._use() as h:
                check(lib.impp_engine_free(h))
            self._ptr = None  # only if a future library accepts it: the handle is gone
            return
        with self._cond:
            if self._ptr is None or self._closing:
                return
            self._closing = True
            while self._busy:
                self._cond.wait()
            ptr = self._ptr
        try:
            check(lib.impp_engine_free(ptr))
        except BaseException:
            with self._cond:
                self._closing = False
            raise
        with self._cond:
            self._ptr = None
            self._closing = False
            self._has_callback = False

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            ptr = getattr(self, "_ptr", None)
            if not ptr:
                return
            self._ptr = None
            if self._dispatch_thread == threading.get_ident():
                # Collected on its own dispatcher thread: the free must happen elsewhere.
                threading.Thread(target=lib.impp_engine_free, args=(ptr,), daemon=True).start()
            else:
                lib.impp_engine_free(ptr)
        except Exception:
            pass

    # --- publications ---

    def publish(
        self,
        presentity: str,
        body: Union[str, bytes, Presence, DialogInfo, MessageSummary],
        package: Optional[str] = None,
        expires: Optional[int] = None,
    ) -> str:
        """Publishes a document (text, bytes, a :class:`Presence`, a :class:`DialogInfo` or a
        :class:`MessageSummary`) and returns its entity tag. ``package`` defaults to the
        document's own (``"presence"`` for text). ``expires`` in seconds (None: the
        configured default)."""
        exp = 0 if expires is None else expires
        out = c_void_p()
        if isinstance(body, (DialogInfo, MessageSummary)):
            if package is not None and package != body.PACKAGE:
                raise ValueError(
                    f"a {type(body).__name__} is published in {body.PACKAGE!r}, not {package!r}"
                )
            package = body.PACKAGE
            body = bytes(body)
        if package is None:
            package = "presence"
        if isinstance(body, Presence):
            if package != "presence":
                raise ValueError(f"a Presence document is published in 'presence', not {package!r}")
            doc = body._h()
            with self._use() as h:
                check(
                    lib.impp_engine_publish_presence(
                        h, encode(presentity, "presentity"), doc, exp, ctypes.byref(out)
                    )
                )
        else:
            data = body_bytes(body, "body")
            with self._use() as h:
                check(
                    lib.impp_engine_publish(
                        h,
                        encode(presentity, "presentity"),
                        encode(package, "package"),
                        data,
                        len(data),
                        exp,
                        ctypes.byref(out),
                    )
                )
        return _ffi.take_owned(out) or ""

    def refresh_publication(self, etag: str, expires: int) -> str:
        """Extends a publication by ``expires`` seconds (0 removes it); returns the new tag,
        which replaces the old one."""
        out = c_void_p()
        with self._use() as h:
            check(
                lib.impp_engine_refresh_publication(
                    h, encode(etag, "etag"), expires, ctypes.byref(out)
                )
            )
        return _ffi.take_owned(out) or ""

    def modify_publication(
        self,
        etag: str,
        body: Union[str, bytes, Presence, DialogInfo, MessageSummary],
        package: Optional[str] = None,
    ) -> str:
        """Replaces a publication's document; returns the new entity tag. ``package``
        defaults to the document's own (``"presence"`` for text)."""
        if isinstance(body, (DialogInfo, MessageSummary)):
            package = body.PACKAGE if package is None else package
            body = bytes(body)
        if package is None:
            package = "presence"
        data = body_bytes(body.to_xml() if isinstance(body, Presence) else body, "body")
        out = c_void_p()
        with self._use() as h:
            check(
                lib.impp_engine_modify_publication(
                    h,
                    encode(etag, "etag"),
                    encode(package, "package"),
                    data,
                    len(data),
                    ctypes.byref(out),
                )
            )
        return _ffi.take_owned(out) or ""

    def remove_publication(self, etag: str) -> None:
        with self._use() as h:
            check(lib.impp_engine_remove_publication(h, encode(etag, "etag")))

    # --- subscriptions ---

    def subscribe(
        self,
        watcher: str,
        presentity: str,
        package: str = "presence",
        expires: Optional[int] = None,
        filter: Optional[Union[str, bytes]] = None,
        min_interval: Optional[float] = None,
    ) -> int:
        """Subscribes ``watcher`` to ``presentity`` and returns the subscription id.
        ``expires`` in seconds (None: the default; 0: fetch once), ``filter`` an RFC 4661
        filter document, ``min_interval`` the minimum seconds between notifications (None:
        the engine default). The first notification arrives as an event."""
        filt = None if filter is None else body_bytes(filter, "filter")
        out = c_uint64()
        with self._use() as h:
            check(
                lib.impp_engine_subscribe(
                    h,
                    encode(watcher, "watcher"),
                    encode(presentity, "presentity"),
                    encode(package, "package"),
                    -1 if expires is None else expires,
                    filt,
                    0 if filt is None else len(filt),
                    -1 if min_interval is None else _seconds_to_ms(min_interval, "min_interval"),
                    ctypes.byref(out),
                )
            )
        return out.value

    def refresh_subscription(self, id: int, expires: int) -> None:
        """Extends a subscription by ``expires`` seconds (0 ends it)."""
        with self._use() as h:
            check(lib.impp_engine_refresh_subscription(h, id, expires))

    def unsubscribe(self, id: int) -> None:
        """Ends a subscription; its watcher gets a final ``terminated`` notification."""
        with self._use() as h:
            check(lib.impp_engine_unsubscribe(h, id))

    def terminate_subscription(self, id: int, reason: Union[str, int] = "deactivated") -> None:
        """Ends a subscription from the notifier's side with an RFC 6665 reason."""
        with self._use() as h:
            check(lib.impp_engine_terminate_subscription(h, id, _reason(reason)))

    def subscription_state(self, id: int) -> SubscriptionState:
        state, expires, auth = c_int(), c_uint32(), c_int()
        with self._use() as h:
            check(
                lib.impp_engine_subscription_state(
                    h, id, ctypes.byref(state), ctypes.byref(expires), ctypes.byref(auth)
                )
            )
        return SubscriptionState(
            STATES.get(state.value), expires.value, _ACTION_NAMES.get(auth.value)
        )

    # --- authorization ---

    def authorize(self, id: int, action: Union[str, int]) -> None:
        """Decides one subscription: ``"allow"``, ``"block"``, ``"polite_block"`` or
        ``"confirm"`` (back to pending)."""
        with self._use() as h:
            check(lib.impp_engine_authorize(h, id, _action(action)))

    def set_rule(
        self,
        presentity: str,
        action: Union[str, int],
        watcher: Optional[str] = None,
        domain: Optional[str] = None,
    ) -> None:
        """Adds or replaces the rule for one ``watcher`` or a whole ``domain`` (exactly one
        of them)."""
        with self._use() as h:
            check(
                lib.impp_engine_set_rule(
                    h,
                    encode(presentity, "presentity"),
                    encode_optional(watcher, "watcher"),
                    encode_optional(domain, "domain"),
                    _action(action),
                )
            )

    def remove_rule(
        self, presentity: str, watcher: Optional[str] = None, domain: Optional[str] = None
    ) -> bool:
        """Removes a rule; returns whether there was one."""
        removed = c_bool()
        with self._use() as h:
            check(
                lib.impp_engine_remove_rule(
                    h,
                    encode(presentity, "presentity"),
                    encode_optional(watcher, "watcher"),
                    encode_optional(domain, "domain"),
                    ctypes.byref(removed),
                )
            )
        return removed.value

    def rules(self, presentity: str) -> List[Rule]:
        pres = encode(presentity, "presentity")
        found = []
        with self._use() as h:
            count = c_size_t()
            check(lib.impp_engine_rule_count(h, pres, ctypes.byref(count)))
            for i in range(count.value):
                watcher, domain, action = c_void_p(), c_void_p(), c_int()
                status = lib.impp_engine_rule(
                    h, pres, i, ctypes.byref(watcher), ctypes.byref(domain), ctypes.byref(action)
                )
                try:
                    check(status)
                except NotFound:
                    break  # rules removed by another thread meanwhile
                found.append(
                    Rule(
                        _ffi.take_owned(watcher),
                        _ffi.take_owned(domain),
                        _ACTION_NAMES.get(action.value, str(action.value)),
                    )
                )
        return found

    # --- events: polling ---

    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (None: until one comes); None
        if none came in time. Not available while a callback is set."""
        if self._has_callback:
            raise RuntimeError("events go to the on_event() callback; polling is off")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if deadline is None:
                wait_ms = _SLICE_MS
            else:
                left = deadline - time.monotonic()
                wait_ms = min(_SLICE_MS, max(0, math.ceil(left * 1000)))
            out = _ffi.EventP()
            with self._use() as h:
                check(lib.impp_engine_next_event(h, wait_ms, ctypes.byref(out)))
                if out:
                    try:
                        return Event._copy(out)
                    finally:
                        lib.impp_event_free(out)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterates over events until none comes within ``timeout`` seconds (None: until
        the engine is closed)."""
        while True:
            try:
                event = self.next_event(timeout)
            except Shutdown:
                return
            if event is None:
                return
            yield event

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    # --- events: asyncio ---

    def fileno(self) -> int:
        """A descriptor readable while events wait (for select/poll/asyncio). Never read or
        close it; call :meth:`next_event`."""
        with self._use() as h:
            return lib.impp_engine_event_fd(h)

    async def wait_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """Awaits the next event (None after ``timeout`` seconds without one), with the
        engine's descriptor registered in the running loop (``loop.add_reader``). One waiter
        per engine at a time."""
        event = self.next_event(0)
        if event is not None:
            return event
        if self._async_waiting:
            raise RuntimeError("another coroutine is already waiting for this engine's events")
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        future = loop.create_future()

        def ready() -> None:
            # Runs on the loop thread, like the cancellation, so once the future is done no
            # event is taken and lost.
            if future.done():
                return
            try:
                got = self.next_event(0)
            except BaseException as e:
                future.set_exception(e)
                return
            if got is not None:
                future.set_result(got)

        self._async_waiting = True
        loop.add_reader(fd, ready)
        try:
            if timeout is None:
                return await future
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                return None
        finally:
            self._async_waiting = False
            # Also after close(): the selector forgets a descriptor that is already closed.
            loop.remove_reader(fd)

    async def aevents(self, timeout: Optional[float] = None):
        """``async for event in engine.aevents()``: like :meth:`events`, without blocking
        the loop."""
        while True:
            try:
                event = await self.wait_event(timeout)
            except Shutdown:
                return
            if event is None:
                return
            yield event

    # --- events: callback ---

    def on_event(self, callback: Optional[Callable[[Event], None]]):
        """Delivers every event to ``callback(event)`` on the engine's dispatcher thread, in
        order (None: back to polling). The callback may call the engine, but not close it.
        Exceptions it raises are logged (logger ``"impp"``) and delivery continues. Usable
        as a decorator; returns the callback."""
        if callback is None:
            with self._use() as h:
                check(
                    lib.impp_engine_set_event_callback(
                        h, _ffi.NO_EVENT_CALLBACK, None, _ffi.NO_FREE_CALLBACK
                    )
                )
            self._has_callback = False
            return None
        if not callable(callback):
            raise TypeError(f"the callback must be callable, not {callback!r}")
        key = _ffi.register(_Deliver(self, callback))
        try:
            with self._use() as h:
                status = lib.impp_engine_set_event_callback(
                    h, _ffi.TRAMPOLINE, key, _ffi.FREE_THUNK
                )
        except Shutdown:
            _ffi._on_free(key)  # the library never saw it
            raise
        check(status)  # on failure the library already ran the free thunk
        self._has_callback = True
        return callback

    # --- introspection and tests ---

    def stats(self) -> Dict[str, int]:
        with self._use() as h:
            return {name: lib.impp_engine_stat(h, i) for i, name in enumerate(STATS)}

    def advance_clock(self, ms: int) -> None:
        """Moves the manual clock (``manual_clock=True``) forward by ``ms`` milliseconds and
        waits until what became due has run and queued its events."""
        with self._use() as h:
            check(lib.impp_engine_advance_clock(h, ms))

    def sync(self) -> None:
        """Waits until every earlier call has been handled and its events queued."""
        with self._use() as h:
            check(lib.impp_engine_sync(h))
