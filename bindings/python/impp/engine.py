"""The engine: publications, subscriptions, authorization, and event delivery by polling, by
callback, or through asyncio.

Durations are in seconds (expiries as whole seconds, like SIP; timeouts and notification
intervals as floats), except :meth:`Engine.advance_clock`, which takes milliseconds like the C
call it wraps.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import math
import operator
import queue
import threading
import time
import weakref
from contextlib import contextmanager
from ctypes import c_bool, c_int, c_uint32, c_uint64, c_void_p
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from . import _ffi
from ._ffi import body_bytes, check, encode, encode_optional, lib
from .documents import DialogInfo, MessageSummary
from .enums import AuthAction, SubscriptionState, TerminationReason
from .errors import InvalidArgument, InvalidState, NotFound, Shutdown, Unsupported
from .events import Event
from .lists import EntryLike, Resource, ResourceList
from .lists import build as _build_list
from .lists import make as _make_list
from .lists import read as _read_list
from .lists import read_owned as _read_owned_list
from .presence import Presence

if TYPE_CHECKING:  # pragma: no cover
    from .sip import SipStack

__all__ = [
    "Config",
    "Document",
    "Engine",
    "EventCallback",
    "Publication",
    "Rule",
    "Subscription",
    "SubscriptionEntry",
    "SubscriptionInfo",
    "STATS",
]

#: What :meth:`Engine.publish` takes: a document as text or bytes, or a document object.
Document = Union[str, bytes, Presence, DialogInfo, MessageSummary]
#: A function events are delivered to (:meth:`Engine.on_event`, ``subscribe(on_event=...)``).
EventCallback = Callable[[Event], None]

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
    "endpoints",
    "messages_waiting",
    "messages_delivered",
    "messages_failed",
    "messages_refused",
    "subscriptions_refused",
    "endpoints_refused",
)

# Blocking waits are cut into slices so that Ctrl-C is seen and close() from another thread
# never waits long for a poller to come back out of the library.
_SLICE_MS = 200


def _action(action: Union[AuthAction, str]) -> int:
    """The C value of an action given as a member or its token."""
    return AuthAction._parse(action, "action")._c


def _id(subscription: Union[int, Subscription]) -> int:
    """A subscription id from an int or a :class:`Subscription`."""
    if isinstance(subscription, bool):
        raise TypeError("a subscription is named by its id (int) or a Subscription")
    return operator.index(subscription)


def _etag(publication: Union[str, Publication]) -> str:
    return publication.etag if isinstance(publication, Publication) else publication


def _seconds_to_ms(value: float, what: str) -> int:
    if value < 0:
        raise InvalidArgument(f"{what} must not be negative: {value!r}")
    return int(round(value * 1000))


def _expires(value: Optional[int], what: str, ending: str) -> int:
    """An expiry as the C API takes it (a uint32, 0 for the configured default) from None (the
    default) or seconds from 1. 0 is refused rather than read as the default: it used to end
    the thing, which is ``ending`` now."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be None or seconds (int), not {value!r}")
    if value == 0:
        raise InvalidArgument(f"{what} 0 is not an expiry: use None for the default, {ending} to end")
    if not 1 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(f"{what} must be None or seconds from 1 to 4294967295, not {value!r}")
    return value


class Rule(NamedTuple):
    """An authorization rule of a presentity: for one ``watcher`` URI or a whole ``domain``
    (the other is None), what to do."""

    watcher: Optional[str]
    domain: Optional[str]
    action: AuthAction
    #: Where a ``REDIRECT`` sends the watchers (another presence agent's URI); else None.
    target: Optional[str] = None


class SubscriptionEntry(NamedTuple):
    """One subscription of a snapshot (:meth:`Engine.subscriptions`): its id (what
    :meth:`Engine.authorize` takes), who watches whom in which package, its state, what
    authorization decided, and the seconds it had left when the snapshot was taken."""

    id: int
    watcher: str
    presentity: str
    package: str
    state: SubscriptionState
    authorization: AuthAction
    expires_in: int


class SubscriptionInfo(NamedTuple):
    """The engine's view of one subscription (:meth:`Engine.subscription_state`)."""

    #: Where the subscription is (None: not said).
    state: Optional[SubscriptionState]
    #: Seconds left before it expires.
    expires_in: int
    #: What authorization decided for the watcher, or None.
    authorization: Optional[AuthAction]


class Config:
    """Engine options. Keyword arguments call the setters of the same name:

    ``workers``, ``domains`` (list), ``publication_expiry`` / ``subscription_expiry``
    (``(min, default, max)`` seconds), ``queue_capacity``, ``default_policy`` (an
    :class:`impp.AuthAction` or its token), ``same_domain_policy`` (the same, or None:
    see :meth:`set_same_domain_policy`), ``store`` (a path), ``min_notify_interval``
    (seconds), ``winfo_admins`` (list of URIs),
    ``document_limits`` (``(max_bytes, max_depth)``), ``manual_clock`` (bool),
    ``endpoint_expiry`` (``(min, default, max)`` seconds), ``max_message_size`` (bytes),
    ``message_expiry`` (seconds a message stored for an offline recipient is kept),
    ``endpoint_presence`` (bool: a logged-in endpoint makes a user who publishes nothing
    appear open), and the bounds on the state one user, watcher or presentity makes the
    engine keep (each at least 1; ``0xFFFFFFFF``: none): ``max_offline_messages_per_user``
    (default 1000) and ``max_offline_messages_per_sender`` (per recipient, default 100;
    past either a message fails as ``mailbox-full``), ``max_subscriptions_per_watcher``
    (default 1000), ``max_subscriptions_per_presentity`` (default 10000) and
    ``max_endpoints_per_user`` (default 10; past these :class:`impp.LimitReached`).

    An :class:`Engine` consumes its Config; one Config makes one engine.
    """

    def __init__(self, **options: Any) -> None:
        self._ptr: Any = None
        out = _ffi.ConfigP()
        check(lib.impp_config_new(ctypes.byref(out)))
        self._ptr = out
        try:
            self.update(**options)
        except BaseException:
            self.close()
            raise

    def update(self, **options: Any) -> Config:
        """Applies options as the constructor does; :class:`TypeError` for an unknown
        one."""
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
        """The number of shard workers an engine gets when the configuration says none."""
        return int(lib.impp_config_default_workers())

    def _h(self) -> Any:
        if not self._ptr:
            raise InvalidArgument("the configuration is closed or was given to an engine")
        return self._ptr

    def set_workers(self, workers: int) -> Config:
        """The number of shard threads (1 or more)."""
        check(lib.impp_config_set_workers(self._h(), workers))
        return self

    def add_domain(self, domain: str) -> Config:
        """Adds a domain the engine serves (its users' presentities and messages)."""
        check(lib.impp_config_add_domain(self._h(), encode(domain, "domain")))
        return self

    def set_publication_expiry(self, min: int, default: int, max: int) -> Config:
        """Publication expiries in seconds: the shortest accepted, the default, the
        longest granted."""
        check(lib.impp_config_set_publication_expiry(self._h(), min, default, max))
        return self

    def set_subscription_expiry(self, min: int, default: int, max: int) -> Config:
        """Subscription expiries in seconds: the shortest accepted, the default, the
        longest granted."""
        check(lib.impp_config_set_subscription_expiry(self._h(), min, default, max))
        return self

    def set_queue_capacity(self, capacity: int) -> Config:
        """How many events wait for the application before the oldest are dropped."""
        check(lib.impp_config_set_queue_capacity(self._h(), capacity))
        return self

    def set_default_policy(self, action: Union[AuthAction, str]) -> Config:
        """What happens to a watcher no rule covers (default: ``CONFIRM``, ask the
        presentity)."""
        check(lib.impp_config_set_default_policy(self._h(), _action(action)))
        return self

    def set_same_domain_policy(self, action: Optional[Union[AuthAction, str]]) -> Config:
        """What happens instead of the default policy to a watcher no rule covers whose URI
        host is the presentity's own (case-insensitive; subdomains and ``tel:`` URIs are
        not of the domain). ``None`` unsets it: the default policy for every watcher (the
        default). Rules win over both."""
        if action is None:
            check(lib.impp_config_clear_same_domain_policy(self._h()))
        else:
            check(lib.impp_config_set_same_domain_policy(self._h(), _action(action)))
        return self

    def set_min_notify_interval(self, seconds: float) -> Config:
        """The default minimum time between two notifications of one subscription."""
        ms = _seconds_to_ms(seconds, "min_notify_interval")
        check(lib.impp_config_set_min_notify_interval_ms(self._h(), ms))
        return self

    def add_winfo_admin(self, uri: str) -> Config:
        """Lets ``uri`` watch the watcher information of every presentity."""
        check(lib.impp_config_add_winfo_admin(self._h(), encode(uri, "uri")))
        return self

    def set_document_limits(self, max_bytes: int, max_depth: int) -> Config:
        """The largest document (bytes) and deepest nesting the engine accepts."""
        check(lib.impp_config_set_document_limits(self._h(), max_bytes, max_depth))
        return self

    def set_store_path(self, path: Union[str, os.PathLike[str]]) -> Config:
        """Keeps durable state (authorization rules, for now) in the SQLite file at ``path``
        (created if missing; opened at once, so a bad path fails here)."""
        check(lib.impp_config_set_store_path(self._h(), encode(os.fspath(path), "store")))
        return self

    def set_endpoint_expiry(self, min: int, default: int, max: int) -> Config:
        """Login expiries in seconds: the shortest accepted, the default, the longest
        granted."""
        check(lib.impp_config_set_endpoint_expiry(self._h(), min, default, max))
        return self

    def set_max_message_size(self, max_bytes: int) -> Config:
        """The largest instant message body accepted, in bytes."""
        if max_bytes < 0:
            raise InvalidArgument(f"max_message_size must not be negative: {max_bytes!r}")
        check(lib.impp_config_set_max_message_size(self._h(), max_bytes))
        return self

    def set_message_expiry(self, seconds: int) -> Config:
        """How long a message stored for an offline recipient is kept, in seconds."""
        if seconds < 0:
            raise InvalidArgument(f"message_expiry must not be negative: {seconds!r}")
        check(lib.impp_config_set_message_expiry(self._h(), int(seconds)))
        return self

    def set_endpoint_presence(self, enabled: bool = True) -> Config:
        """Whether a logged-in endpoint makes a user who publishes nothing appear open."""
        check(lib.impp_config_set_endpoint_presence(self._h(), bool(enabled)))
        return self

    def _limit(self, setter: Any, name: str, value: int) -> Config:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {value!r}")
        if not 1 <= value <= 0xFFFFFFFF:
            raise InvalidArgument(f"{name} must be from 1 to 4294967295, not {value!r}")
        check(setter(self._h(), value))
        return self

    def set_max_offline_messages_per_user(self, max: int) -> Config:
        """How many messages may wait for one recipient (default 1000); more fail as
        ``mailbox-full``."""
        return self._limit(
            lib.impp_config_set_max_offline_messages_per_user, "max_offline_messages_per_user", max
        )

    def set_max_offline_messages_per_sender(self, max: int) -> Config:
        """How many messages from one sender may wait for one recipient (default 100); more
        from that sender fail as ``mailbox-full``."""
        return self._limit(
            lib.impp_config_set_max_offline_messages_per_sender,
            "max_offline_messages_per_sender",
            max,
        )

    def set_max_subscriptions_per_watcher(self, max: int) -> Config:
        """How many live subscriptions one watcher may hold (default 1000); more raise
        :class:`impp.LimitReached`."""
        return self._limit(
            lib.impp_config_set_max_subscriptions_per_watcher, "max_subscriptions_per_watcher", max
        )

    def set_max_subscriptions_per_presentity(self, max: int) -> Config:
        """How many live subscriptions one presentity may have (default 10000); more raise
        :class:`impp.LimitReached`."""
        return self._limit(
            lib.impp_config_set_max_subscriptions_per_presentity,
            "max_subscriptions_per_presentity",
            max,
        )

    def set_max_endpoints_per_user(self, max: int) -> Config:
        """How many endpoints one user may have logged in (default 10); one more raises
        :class:`impp.LimitReached`."""
        return self._limit(lib.impp_config_set_max_endpoints_per_user, "max_endpoints_per_user", max)

    def use_manual_clock(self) -> Config:
        """Time moves only by :meth:`Engine.advance_clock` (for tests and simulations)."""
        check(lib.impp_config_use_manual_clock(self._h()))
        return self

    def _take(self) -> Any:
        """Hands the handle over to impp_engine_new (which consumes it)."""
        ptr, self._ptr = self._h(), None
        return ptr

    def close(self) -> None:
        """Frees the configuration unless an engine took it. Idempotent."""
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            lib.impp_config_free(ptr)

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _many(setter: Callable[[Config, str], object]) -> Callable[[Config, Any], None]:
    def apply(config: Config, values: Union[str, Iterable[str]]) -> None:
        for value in [values] if isinstance(values, str) else values:
            setter(config, value)

    return apply


def _flag(setter: Callable[[Config], object]) -> Callable[[Config, Any], None]:
    def apply(config: Config, value: object) -> None:
        if value:
            setter(config)

    return apply


_CONFIG_OPTIONS: Dict[str, Callable[[Config, Any], object]] = {
    "workers": Config.set_workers,
    "domains": _many(Config.add_domain),
    "publication_expiry": lambda c, v: c.set_publication_expiry(*v),
    "subscription_expiry": lambda c, v: c.set_subscription_expiry(*v),
    "queue_capacity": Config.set_queue_capacity,
    "default_policy": Config.set_default_policy,
    "same_domain_policy": Config.set_same_domain_policy,
    "min_notify_interval": Config.set_min_notify_interval,
    "winfo_admins": _many(Config.add_winfo_admin),
    "document_limits": lambda c, v: c.set_document_limits(*v),
    "manual_clock": _flag(Config.use_manual_clock),
    "store": Config.set_store_path,
    "endpoint_expiry": lambda c, v: c.set_endpoint_expiry(*v),
    "max_message_size": Config.set_max_message_size,
    "message_expiry": Config.set_message_expiry,
    "endpoint_presence": Config.set_endpoint_presence,
    "max_offline_messages_per_user": Config.set_max_offline_messages_per_user,
    "max_offline_messages_per_sender": Config.set_max_offline_messages_per_sender,
    "max_subscriptions_per_watcher": Config.set_max_subscriptions_per_watcher,
    "max_subscriptions_per_presentity": Config.set_max_subscriptions_per_presentity,
    "max_endpoints_per_user": Config.set_max_endpoints_per_user,
}


class Publication:
    """A document published with :meth:`Engine.publish`. ``etag`` is its current entity
    tag: :meth:`refresh` and :meth:`modify` replace it. ``str(publication)`` is the tag, so
    code that kept the tag string keeps working."""

    __slots__ = ("engine", "presentity", "package", "etag")

    def __init__(self, engine: Engine, presentity: str, package: str, etag: str) -> None:
        self.engine = engine
        self.presentity = presentity
        self.package = package
        self.etag = etag

    def refresh(self, expires: int) -> str:
        """Extends the publication by ``expires`` seconds (None: the configured default;
        :meth:`remove` withdraws it); returns the new entity tag (also in ``etag``)."""
        self.etag = self.engine.refresh_publication(self.etag, expires)
        return self.etag

    def modify(self, document: Document) -> str:
        """Replaces the published document; returns the new entity tag (also in ``etag``)."""
        package = None if isinstance(document, (DialogInfo, MessageSummary)) else self.package
        self.etag = self.engine.modify_publication(self.etag, document, package)
        return self.etag

    def remove(self) -> None:
        """Withdraws the publication."""
        self.engine.remove_publication(self.etag)

    def __str__(self) -> str:
        return self.etag

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Publication):
            return self.etag == other.etag
        if isinstance(other, str):
            return self.etag == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.etag)

    def __repr__(self) -> str:
        return f"<impp.Publication {self.presentity} {self.package} etag={self.etag!r}>"


class Subscription:
    """A subscription made with :meth:`Engine.subscribe`. ``id`` is its engine id;
    ``int(subscription)`` is the same, so a Subscription goes wherever an id does
    (``engine.authorize(sub, "allow")``). :attr:`state` asks the engine."""

    __slots__ = ("engine", "id", "watcher", "presentity", "package")

    def __init__(
        self, engine: Engine, id: int, watcher: str, presentity: str, package: str
    ) -> None:
        self.engine = engine
        self.id = id
        self.watcher = watcher
        self.presentity = presentity
        self.package = package

    @property
    def state(self) -> Optional[SubscriptionState]:
        """Where the subscription is; ``TERMINATED`` too once the engine has forgotten
        it."""
        try:
            return self.engine.subscription_state(self.id).state
        except NotFound:
            return SubscriptionState.TERMINATED

    def info(self) -> SubscriptionInfo:
        """The engine's full view: state, seconds left, authorization."""
        return self.engine.subscription_state(self.id)

    def refresh(self, expires: int) -> None:
        """Extends the subscription by ``expires`` seconds (None: the configured default;
        :meth:`unsubscribe` ends it)."""
        self.engine.refresh_subscription(self.id, expires)

    def unsubscribe(self) -> None:
        """Ends the subscription; the watcher gets a final ``terminated`` notification."""
        self.engine.unsubscribe(self.id)

    def __int__(self) -> int:
        return self.id

    def __index__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Subscription):
            return self.id == other.id and self.engine is other.engine
        if isinstance(other, int) and not isinstance(other, bool):
            return self.id == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"<impp.Subscription {self.id} {self.watcher} -> {self.presentity}"
            f" ({self.package})>"
        )


# Engines still open, closed at interpreter exit: a dispatcher thread must not call into a
# Python that is finalizing. Weak, so this never keeps an engine alive.
_live: weakref.WeakSet[Engine] = weakref.WeakSet()


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

    def __init__(self, engine: Engine) -> None:
        self.engine = weakref.ref(engine)
        self.callback = None

    def __call__(self, event_ptr: Any) -> None:
        event = Event._copy(event_ptr)
        engine = self.engine()
        if engine is None:
            return
        engine._dispatch_thread = threading.get_ident()
        try:
            engine._route(event)
        finally:
            engine._dispatch_thread = None


class _AsyncWaiter:
    """One coroutine awaiting :meth:`Engine.wait_event`: its future, completed on the loop's
    thread by :meth:`poke`.

    Two things wake it, never a timer: the engine's descriptor (``loop.add_reader``) while
    the application polls, and :meth:`wake` (``loop.call_soon_threadsafe``) from the
    dispatcher thread when it queues an event for polling (per-subscription callbacks hold
    the C callback) or from any thread when the engine switches between the two, or
    closes. The descriptor is watched only while polling: in callback mode it is readable
    while the dispatcher lags behind, and watching it then would spin the loop."""

    __slots__ = ("engine", "loop", "future", "fd", "reading")

    def __init__(
        self, engine: Engine, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Event]
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.future = future
        self.fd = engine.fileno()
        self.reading = False

    def poke(self) -> None:
        """On the loop thread: watches the descriptor as the engine's mode asks, and
        completes the future with an event if one waits (or with the error that polling
        raises). Running on the loop thread, like a cancellation, so once the future is done
        no event is taken and lost."""
        if self.future.done():
            return
        want = not self.engine._has_callback and not self.engine.closed
        if want != self.reading:
            if want:
                self.loop.add_reader(self.fd, self.poke)
            else:
                self.loop.remove_reader(self.fd)
            self.reading = want
        try:
            got = self.engine.next_event(0)
        except BaseException as e:
            self.future.set_exception(e)
            return
        if got is not None:
            self.future.set_result(got)

    def wake(self) -> None:
        """From any thread: :meth:`poke` soon, on the loop thread."""
        try:
            self.loop.call_soon_threadsafe(self.poke)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    def stop(self) -> None:
        """On the loop thread: stops watching the descriptor (also after the engine closed:
        the selector forgets a descriptor that is already closed)."""
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False


class Engine:
    """A running presence engine.

    ``Engine(domains=[...], store=None, workers=None, **options)`` (the options of
    :class:`Config`), or ``Engine(config)``. ``store=None`` keeps everything in memory; a path
    keeps durable state in that SQLite file (created if missing). ``workers=None`` is the
    library's default.

    Events are read with :meth:`next_event` / :meth:`events`, with asyncio
    (:meth:`wait_event`, :meth:`aevents`), or pushed to a callback set with
    :meth:`on_event` (or per subscription, ``subscribe(..., on_event=...)``) on the engine's
    dispatcher thread. Close it with :meth:`close` or a ``with`` block: that joins every
    engine thread, and no callback runs afterwards.
    """

    def __init__(
        self,
        config: Optional[Config] = None,
        *,
        domains: Optional[List[str]] = None,
        store: Union[str, os.PathLike[str], None] = None,
        workers: Optional[int] = None,
        **options: Any,
    ) -> None:
        self._ptr: Any = None
        self._cond = threading.Condition()
        self._busy = 0
        self._closing = False
        self._has_callback = False
        self._callback: Optional[EventCallback] = None
        self._sub_callbacks: Dict[int, EventCallback] = {}
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._routing_lock = threading.Lock()
        self._dispatch_thread: Optional[int] = None
        # The coroutine awaiting wait_event(), woken from the dispatcher thread.
        self._waiter: Optional[_AsyncWaiter] = None
        # SIP stacks running over this engine (closed before it).
        self._stacks: weakref.WeakSet[SipStack] = weakref.WeakSet()
        if store is not None:
            options["store"] = store
        if domains is not None:
            options["domains"] = domains
        if workers is not None:
            options["workers"] = workers
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
    def _use(self) -> Iterator[Any]:
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
        for stack in list(self._stacks):
            stack.close()
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
            self._callback = None
            self._sub_callbacks.clear()
        self._wake_waiter()  # it gets Shutdown

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has shut the engine down."""
        return self._ptr is None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
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
        document: Optional[Document] = None,
        expires: Optional[int] = 3600,
        package: Optional[str] = None,
        *,
        body: Optional[Document] = None,
    ) -> Publication:
        """Publishes a document (text, bytes, a :class:`Presence`, a :class:`DialogInfo` or a
        :class:`MessageSummary`) and returns its :class:`Publication` (``str()`` of it is
        the entity tag). ``expires`` in seconds (None: the configured default; the
        configured maximum caps it). ``package`` defaults to the document's own
        (``"presence"`` for text). ``body`` is the older name of ``document``."""
        if (document is None) == (body is None):
            raise TypeError("publish() takes one document")
        body = document if document is not None else body
        assert body is not None
        exp = 0 if expires is None else expires
        out = c_void_p()
        if isinstance(body, (DialogInfo, MessageSummary)):
            if package is not None and package != body.PACKAGE:
                raise InvalidArgument(
                    f"a {type(body).__name__} is published in {body.PACKAGE!r}, not {package!r}"
                )
            package = body.PACKAGE
            body = bytes(body)
        if package is None:
            package = "presence"
        if isinstance(body, Presence):
            if package != "presence":
                raise InvalidArgument(f"a Presence document is published in 'presence', not {package!r}")
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
        return Publication(self, presentity, package, _ffi.take_owned(out) or "")

    def refresh_publication(self, etag: Union[str, Publication], expires: int) -> str:
        """Extends a publication by ``expires`` seconds (None: the configured default);
        returns the new tag, which replaces the old one. Withdraw a publication with
        :meth:`remove_publication`."""
        exp = _expires(expires, "expires", "remove_publication()")
        out = c_void_p()
        with self._use() as h:
            check(
                lib.impp_engine_refresh_publication(
                    h, encode(_etag(etag), "etag"), exp, ctypes.byref(out)
                )
            )
        return _ffi.take_owned(out) or ""

    def modify_publication(
        self,
        etag: Union[str, Publication],
        body: Document,
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
                    encode(_etag(etag), "etag"),
                    encode(package, "package"),
                    data,
                    len(data),
                    ctypes.byref(out),
                )
            )
        return _ffi.take_owned(out) or ""

    def remove_publication(self, etag: Union[str, Publication]) -> None:
        """Withdraws a publication."""
        with self._use() as h:
            check(lib.impp_engine_remove_publication(h, encode(_etag(etag), "etag")))

    # --- subscriptions ---

    def subscribe(
        self,
        watcher: str,
        presentity: str,
        package: str = "presence",
        expires: Optional[int] = 3600,
        filter: Optional[Union[str, bytes]] = None,
        min_interval: Optional[float] = None,
        on_event: Optional[EventCallback] = None,
    ) -> Subscription:
        """Subscribes ``watcher`` to ``presentity`` and returns the :class:`Subscription`
        (``int()`` of it is the id). ``expires`` in seconds (None: the configured default;
        0: fetch the state once, then the subscription ends; the configured maximum caps
        it), ``filter`` an RFC 4661 filter document, ``min_interval`` the minimum seconds
        between notifications (None or 0: the engine default). The first notification
        arrives as an event.

        With ``on_event``, this subscription's events go to ``on_event(event)`` on the
        engine's dispatcher thread instead of the engine-wide delivery (the engine then
        runs in callback mode; other events still reach :meth:`events` or the
        :meth:`on_event` callback)."""
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {on_event!r}")
        filt = None if filter is None else body_bytes(filter, "filter")
        fetch = expires == 0 and not isinstance(expires, bool)
        exp = 0 if fetch else _expires(expires, "expires", "unsubscribe()")
        interval = 0 if min_interval is None else _seconds_to_ms(min_interval, "min_interval")
        if interval > 0xFFFFFFFF:
            raise InvalidArgument(f"min_interval must be below 4294967.296 s, not {min_interval!r}")
        out = c_uint64()
        if on_event is not None:
            self._install_dispatcher()
        options = _ffi.SubscribeOptionsP()
        check(lib.impp_subscribe_options_new(ctypes.byref(options)))
        try:
            check(lib.impp_subscribe_options_set_expires(options, exp))
            check(lib.impp_subscribe_options_set_fetch(options, fetch))
            if filt is not None:
                check(lib.impp_subscribe_options_set_filter(options, filt, len(filt)))
            check(lib.impp_subscribe_options_set_min_interval_ms(options, interval))
            # The lock keeps the dispatcher from routing this subscription's first events
            # before its callback is registered.
            with self._routing_lock, self._use() as h:
                check(
                    lib.impp_engine_subscribe(
                        h,
                        encode(watcher, "watcher"),
                        encode(presentity, "presentity"),
                        encode(package, "package"),
                        options,
                        ctypes.byref(out),
                    )
                )
                if on_event is not None:
                    self._sub_callbacks[out.value] = on_event
        finally:
            lib.impp_subscribe_options_free(options)
        return Subscription(self, out.value, watcher, presentity, package)

    def refresh_subscription(self, id: Union[int, Subscription], expires: int) -> None:
        """Extends a subscription by ``expires`` seconds (None: the configured default). End
        a subscription with :meth:`unsubscribe`."""
        exp = _expires(expires, "expires", "unsubscribe()")
        with self._use() as h:
            check(lib.impp_engine_refresh_subscription(h, _id(id), exp))

    def unsubscribe(self, id: Union[int, Subscription]) -> None:
        """Ends a subscription; its watcher gets a final ``terminated`` notification."""
        with self._use() as h:
            check(lib.impp_engine_unsubscribe(h, _id(id)))

    def terminate_subscription(
        self,
        id: Union[int, Subscription],
        reason: Union[TerminationReason, str] = TerminationReason.DEACTIVATED,
    ) -> None:
        """Ends a subscription from the notifier's side with an RFC 6665 reason."""
        value = TerminationReason._parse(reason, "reason")._c
        with self._use() as h:
            check(lib.impp_engine_terminate_subscription(h, _id(id), value))

    def subscription_state(self, id: Union[int, Subscription]) -> SubscriptionInfo:
        """The engine's view of a subscription; :class:`impp.NotFound` once it is gone."""
        state, expires, auth = c_int(), c_uint32(), c_int()
        with self._use() as h:
            check(
                lib.impp_engine_subscription_state(
                    h, _id(id), ctypes.byref(state), ctypes.byref(expires), ctypes.byref(auth)
                )
            )
        return SubscriptionInfo(
            SubscriptionState._from_c_optional(state.value),
            expires.value,
            AuthAction._from_c_optional(auth.value),
        )

    def subscriptions(self, presentity: Optional[str] = None) -> List[SubscriptionEntry]:
        """The subscriptions to ``presentity`` (None: to every presentity), in every package
        and state, read as one snapshot in a stable order (pending ones are the watchers
        waiting for :meth:`authorize`)."""
        pres = encode_optional(presentity, "presentity")
        snapshot = _ffi.SubscriptionListP()
        with self._use() as h:
            check(lib.impp_engine_subscriptions(h, pres, ctypes.byref(snapshot)))
        found = []
        try:
            for i in range(lib.impp_subscription_list_count(snapshot)):
                sid, expires = c_uint64(), c_uint32()
                watcher, pres_uri, package = (ctypes.c_char_p() for _ in range(3))
                state, auth = c_int(), c_int()
                check(lib.impp_subscription_list_id(snapshot, i, ctypes.byref(sid)))
                check(lib.impp_subscription_list_watcher(snapshot, i, ctypes.byref(watcher)))
                check(lib.impp_subscription_list_presentity(snapshot, i, ctypes.byref(pres_uri)))
                check(lib.impp_subscription_list_package(snapshot, i, ctypes.byref(package)))
                check(lib.impp_subscription_list_state(snapshot, i, ctypes.byref(state)))
                check(lib.impp_subscription_list_authorization(snapshot, i, ctypes.byref(auth)))
                check(lib.impp_subscription_list_expires_in(snapshot, i, ctypes.byref(expires)))
                found.append(
                    SubscriptionEntry(
                        sid.value,
                        (watcher.value or b"").decode(),
                        (pres_uri.value or b"").decode(),
                        (package.value or b"").decode(),
                        SubscriptionState._from_c(state.value),
                        AuthAction._from_c(auth.value),
                        expires.value,
                    )
                )
        finally:
            lib.impp_subscription_list_free(snapshot)
        return found

    # --- authorization ---

    def authorize(
        self, subscription_id: Union[int, Subscription], action: Union[AuthAction, str]
    ) -> None:
        """Decides one (pending) subscription: ``ALLOW``, ``BLOCK``, ``POLITE_BLOCK`` or
        ``CONFIRM`` (back to pending), as members or tokens (``"polite-block"``)."""
        value = _action(action)
        with self._use() as h:
            check(lib.impp_engine_authorize(h, _id(subscription_id), value))

    def set_rule(
        self, presentity: str, watcher_or_domain: str, action: Union[AuthAction, str]
    ) -> None:
        """Adds or replaces the rule of ``presentity`` for one watcher
        (``"sip:bob@example.test"``: a URI has a scheme ``:``) or a whole domain
        (``"example.test"``): what happens to its subscriptions (an
        :class:`impp.AuthAction` or its token)."""
        if not isinstance(watcher_or_domain, str):
            raise TypeError(f"watcher_or_domain must be str, not {watcher_or_domain!r}")
        watcher, domain = (
            (watcher_or_domain, None) if ":" in watcher_or_domain else (None, watcher_or_domain)
        )
        value = _action(action)
        with self._use() as h:
            check(
                lib.impp_engine_set_rule(
                    h,
                    encode(presentity, "presentity"),
                    encode_optional(watcher, "watcher"),
                    encode_optional(domain, "domain"),
                    value,
                )
            )

    def set_redirect_rule(self, presentity: str, watcher_or_domain: str, target: str) -> None:
        """Adds or replaces the rule of ``presentity`` for one watcher or a whole domain (as
        :meth:`set_rule`) with a redirect: the watchers it covers are sent to ``target``,
        another presence agent's URI (SIP ``302``; an engine subscription raises
        :class:`impp.Moved`). Live subscriptions it covers end deactivated."""
        if not isinstance(watcher_or_domain, str):
            raise TypeError(f"watcher_or_domain must be str, not {watcher_or_domain!r}")
        watcher, domain = (
            (watcher_or_domain, None) if ":" in watcher_or_domain else (None, watcher_or_domain)
        )
        with self._use() as h:
            check(
                lib.impp_engine_set_redirect_rule(
                    h,
                    encode(presentity, "presentity"),
                    encode_optional(watcher, "watcher"),
                    encode_optional(domain, "domain"),
                    encode(target, "target"),
                )
            )

    def redirect(self, subscription_id: Union[int, Subscription], target: str) -> None:
        """Sends one subscription's watcher to another presence agent, ``target``: the
        subscription ends deactivated, and the watcher's next subscription to this presentity
        (within 64 s) is sent to ``target``. A decision on this subscription only."""
        with self._use() as h:
            check(lib.impp_engine_redirect(h, _id(subscription_id), encode(target, "target")))

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
        """The authorization rules of ``presentity``, read as one snapshot."""
        pres = encode(presentity, "presentity")
        snapshot = _ffi.RuleListP()
        with self._use() as h:
            check(lib.impp_engine_rules(h, pres, ctypes.byref(snapshot)))
        found = []
        try:
            for i in range(lib.impp_rule_list_count(snapshot)):
                watcher, domain, action = ctypes.c_char_p(), ctypes.c_char_p(), c_int()
                target = ctypes.c_char_p()
                check(lib.impp_rule_list_watcher(snapshot, i, ctypes.byref(watcher)))
                check(lib.impp_rule_list_domain(snapshot, i, ctypes.byref(domain)))
                check(lib.impp_rule_list_action(snapshot, i, ctypes.byref(action)))
                check(lib.impp_rule_list_target(snapshot, i, ctypes.byref(target)))
                found.append(
                    Rule(
                        None if watcher.value is None else watcher.value.decode(),
                        None if domain.value is None else domain.value.decode(),
                        AuthAction._from_c(action.value),
                        None if target.value is None else target.value.decode(),
                    )
                )
        finally:
            lib.impp_rule_list_free(snapshot)
        return found

    # --- resource lists ---

    def set_list(
        self,
        uri: Union[str, ResourceList],
        entries: Iterable[EntryLike] = (),
        *,
        packages: Optional[Iterable[str]] = None,
        display_name: Optional[str] = None,
    ) -> None:
        """Adds a resource list, or replaces the list with its URI; returns once it is
        durable. Either a :class:`impp.ResourceList`, or its URI with its ``entries`` (in
        order: URIs or :class:`impp.Resource` for resources, :class:`impp.ListRef` for
        references to other lists, which need not exist yet), the ``packages`` it serves
        (``"presence"``, ``"dialog"``; default presence) and a ``display_name``.

        Raises :class:`impp.InvalidArgument` when the list breaks a rule (at most 500
        entries, no resource or reference twice, no cycle through references, at most 8
        levels of nesting and 1000 resources expanded, from it or any list that reaches
        it; the message says which), :class:`impp.Forbidden` for a list of a domain the
        engine does not own, :class:`impp.InvalidUri`, :class:`impp.UnknownPackage`.
        Nothing changes then."""
        if isinstance(uri, ResourceList):
            if entries or packages is not None or display_name is not None:
                raise TypeError("give a ResourceList alone, or a URI with its entries")
            resource_list = uri
        else:
            resource_list = _make_list(uri, entries, packages, display_name)
        handle = _build_list(resource_list)
        try:
            with self._use() as h:
                check(lib.impp_engine_set_list(h, handle))
        finally:
            lib.impp_resource_list_free(handle)

    def remove_list(self, uri: str) -> bool:
        """Removes the list named ``uri``; returns whether there was one. Lists that
        reference it keep the reference, which expands to nothing until it is set again."""
        removed = c_bool()
        with self._use() as h:
            check(lib.impp_engine_remove_list(h, encode(uri, "uri"), ctypes.byref(removed)))
        return removed.value

    def resource_list(self, uri: str) -> Optional[ResourceList]:
        """The list named ``uri`` (by key: ``pres:`` and ``sip:`` name the same one), or
        None."""
        out = _ffi.ResourceListP()
        with self._use() as h:
            status = lib.impp_engine_resource_list(h, encode(uri, "uri"), ctypes.byref(out))
        if status == NotFound.status:
            return None
        check(status)
        return _read_owned_list(out)

    def lists(self) -> List[ResourceList]:
        """Every resource list, by key, read as one snapshot."""
        snapshot = _ffi.ResourceListsP()
        with self._use() as h:
            check(lib.impp_engine_resource_lists(h, ctypes.byref(snapshot)))
        try:
            found = []
            for i in range(lib.impp_resource_lists_count(snapshot)):
                item = _ffi.ResourceListP()
                check(lib.impp_resource_lists_item(snapshot, i, ctypes.byref(item)))
                found.append(_read_list(item))
            return found
        finally:
            lib.impp_resource_lists_free(snapshot)

    def expand_list(self, uri: str) -> List[Resource]:
        """The resources of the list named ``uri``: its entries, each reference replaced by
        the resources of the list it names, in order, each resource once (the first met,
        with its display name), references to missing lists skipped. Raises
        :class:`impp.NotFound` when there is no such list."""
        out = _ffi.ResourceListP()
        with self._use() as h:
            check(lib.impp_engine_expand_list(h, encode(uri, "uri"), ctypes.byref(out)))
        expanded = _read_owned_list(out)
        return [e for e in expanded.entries if isinstance(e, Resource)]

    # --- endpoints and instant messages ---

    def login(
        self,
        user: str,
        endpoint: str,
        expires: Optional[int] = 3600,
        contact: Optional[str] = None,
    ) -> int:
        """Logs endpoint ``endpoint`` (an id such as ``"phone"``) of ``user`` in, or
        refreshes its login; returns the granted expiry in seconds. ``expires`` None is the
        configured default, longer than the maximum is shortened, below the minimum raises
        :class:`impp.IntervalTooBrief`; log out with :meth:`logout`. ``contact`` is the
        address the endpoint is reached at, kept with the login. Messages stored for the
        user arrive as ``"message"`` events, in the order sent."""
        exp = _expires(expires, "expires", "logout()")
        granted = c_uint32()
        with self._use() as h:
            check(
                lib.impp_engine_login_at(
                    h,
                    encode(user, "user"),
                    encode(endpoint, "endpoint"),
                    encode_optional(contact, "contact"),
                    exp,
                    ctypes.byref(granted),
                )
            )
        return granted.value

    def logout(self, user: str, endpoint: str) -> bool:
        """Logs an endpoint out; returns whether it was logged in."""
        was = c_bool()
        with self._use() as h:
            check(
                lib.impp_engine_logout(
                    h, encode(user, "user"), encode(endpoint, "endpoint"), ctypes.byref(was)
                )
            )
        return was.value

    def set_user_password(self, user: str, password: str) -> None:
        """Adds ``user`` (``user@domain``) to the user directory, or changes its password.
        Only digests of the password are kept (in the store, durably when this returns).
        While the directory has users, messages to anyone else fail as ``unknown-user``."""
        with self._use() as h:
            check(
                lib.impp_engine_set_user_password(
                    h, encode(user, "user"), encode(password, "password")
                )
            )

    def remove_user(self, user: str) -> bool:
        """Removes ``user`` from the user directory; returns whether it was there."""
        was = c_bool()
        with self._use() as h:
            check(lib.impp_engine_remove_user(h, encode(user, "user"), ctypes.byref(was)))
        return was.value

    def has_user(self, user: str) -> bool:
        """Whether ``user`` is in the user directory; :class:`impp.InvalidUri` when ``user``
        is not a URI."""
        has = c_bool()
        with self._use() as h:
            check(lib.impp_engine_has_user(h, encode(user, "user"), ctypes.byref(has)))
        return has.value

    def send_message(
        self,
        sender: str,
        recipient: str,
        body: Union[bytes, str],
        content_type: str = "text/plain",
        endpoint: Optional[str] = None,
        in_reply_to: Optional[str] = None,
    ) -> str:
        """Sends an instant message; returns its id (a decimal string) at once. ``body``
        is bytes, kept exactly, or a str, sent as UTF-8. ``content_type`` is a MIME type
        (``type/subtype``, parameters allowed). ``endpoint`` names one endpoint of the
        recipient to deliver to while it is online; ``in_reply_to`` is handed over as is.

        What becomes of the message arrives as ``"delivery"`` events for the sender, with
        the same ``message_id``: ``"delivered"``; or ``"stored"`` (the recipient is
        offline) and later ``"delivered"`` or ``"failed"``; or ``"failed"`` with a
        ``reason``. Arguments that are no message at all (a malformed content type, an
        empty endpoint) raise :class:`impp.InvalidArgument` and send nothing."""
        data = body_bytes(body, "body")
        out = c_uint64()
        options = _ffi.MessageOptionsP()  # NULL: every default
        try:
            if endpoint is not None or in_reply_to is not None:
                check(lib.impp_message_options_new(ctypes.byref(options)))
                check(
                    lib.impp_message_options_set_endpoint(
                        options, encode_optional(endpoint, "endpoint")
                    )
                )
                check(
                    lib.impp_message_options_set_in_reply_to(
                        options, encode_optional(in_reply_to, "in_reply_to")
                    )
                )
            with self._use() as h:
                check(
                    lib.impp_engine_send_message(
                        h,
                        encode(sender, "sender"),
                        encode(recipient, "recipient"),
                        encode(content_type, "content_type"),
                        data,
                        len(data),
                        options,
                        ctypes.byref(out),
                    )
                )
        finally:
            lib.impp_message_options_free(options)
        return str(out.value)

    # --- events: polling ---

    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (None: until one comes); None
        if none came in time. Not available while a callback is set."""
        if self._callback is not None:
            raise InvalidState("events go to the on_event() callback; polling is off")
        if self._has_callback:
            return self._next_routed(timeout)
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

    def _next_routed(self, timeout: Optional[float]) -> Optional[Event]:
        """next_event() while per-subscription callbacks hold the C callback: the events
        they do not take wait in a Python queue."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if deadline is None:
                wait = _SLICE_MS / 1000
            else:
                wait = min(_SLICE_MS / 1000, max(0.0, deadline - time.monotonic()))
            with self._use():
                pass  # raises Shutdown once the engine is closed
            try:
                return self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                pass
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
        close it; call :meth:`next_event`. It stays quiet while callbacks take the events
        (:meth:`on_event`, ``subscribe(on_event=...)``): :meth:`wait_event` then waits on
        the dispatcher thread instead."""
        with self._use() as h:
            return int(lib.impp_engine_event_fd(h))

    async def wait_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """Awaits the next event (None after ``timeout`` seconds without one) without
        blocking the loop and without polling: the loop wakes on the engine's descriptor
        (``loop.add_reader``) while the application polls, and from the dispatcher thread
        (``loop.call_soon_threadsafe``) while per-subscription callbacks take the events and
        leave the others here. One waiting coroutine per engine at a time (a second raises
        :class:`impp.InvalidState`); after :meth:`close` it raises :class:`impp.Shutdown`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Event] = loop.create_future()
        with self._routing_lock:
            if self._waiter is not None:
                raise InvalidState("another coroutine is already waiting for this engine's events")
            waiter = self._waiter = _AsyncWaiter(self, loop, future)
        try:
            waiter.poke()  # takes an event that already waits, starts watching the descriptor
            if timeout is None:
                return await future
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                return None
        finally:
            with self._routing_lock:
                self._waiter = None
            waiter.stop()

    def _wake_waiter(self) -> None:
        """Any thread: lets the coroutine in :meth:`wait_event` look again (an event was
        queued for polling, the delivery mode changed, the engine closed)."""
        with self._routing_lock:
            waiter = self._waiter
        if waiter is not None:
            waiter.wake()

    async def aevents(self, timeout: Optional[float] = None) -> AsyncIterator[Event]:
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

    def on_event(self, callback: Optional[EventCallback]) -> Optional[EventCallback]:
        """Delivers every event to ``callback(event)`` on the engine's dispatcher thread, in
        order (None: back to polling), except those of subscriptions that have their own
        callback (``subscribe(..., on_event=...)``). The callback may call the engine, but
        not close it. Exceptions it raises are logged (logger ``"impp"``) and delivery
        continues. Usable as a decorator; returns the callback."""
        if callback is None:
            self._callback = None
            if self._sub_callbacks:
                return None  # the dispatcher stays: it serves the subscriptions' callbacks
            with self._use() as h:
                check(
                    lib.impp_engine_set_event_callback(
                        h, _ffi.NO_EVENT_CALLBACK, None, _ffi.NO_FREE_CALLBACK
                    )
                )
            self._has_callback = False
            self._wake_waiter()  # back to the descriptor
            return None
        if not callable(callback):
            raise TypeError(f"the callback must be callable, not {callback!r}")
        self._callback = callback
        try:
            self._install_dispatcher()
        except BaseException:
            self._callback = None
            raise
        self._wake_waiter()  # polling is off: it gets InvalidState
        return callback

    def _route(self, event: Event) -> None:
        """On the dispatcher thread: one event to its subscription's callback, else the
        engine's callback, else the polling queue."""
        sid = event.subscription_id
        with self._routing_lock:
            target = self._sub_callbacks.get(sid) if sid is not None else None
        if target is None:
            target = self._callback
        if target is None:
            self._queue.put(event)
            # After the put: a coroutine that starts waiting later finds the event itself.
            self._wake_waiter()
            return
        target(event)

    def _install_dispatcher(self) -> None:
        """Points the C callback at this engine's router (once)."""
        if self._has_callback:
            return
        key = _ffi.register(_Deliver(self))
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
        self._wake_waiter()  # the descriptor goes quiet: the dispatcher thread wakes it

    # --- introspection and tests ---

    def stats(self) -> Dict[str, int]:
        """The engine's counters, by the names of :data:`STATS`."""
        with self._use() as h:
            return {name: int(lib.impp_engine_stat(h, i)) for i, name in enumerate(STATS)}

    def advance_clock(self, ms: int) -> None:
        """Moves the manual clock (``manual_clock=True``) forward by ``ms`` milliseconds and
        waits until what became due has run and queued its events."""
        with self._use() as h:
            check(lib.impp_engine_advance_clock(h, ms))

    def sync(self) -> None:
        """Waits until every earlier call has been handled and its events queued."""
        with self._use() as h:
            check(lib.impp_engine_sync(h))
