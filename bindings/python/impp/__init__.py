"""impp: Python bindings for libimpp, a presence and instant-messaging engine.

The library is loaded with ctypes when this package is imported (see ``impp._ffi`` for the
search order; ``IMPP_LIBRARY`` overrides it) and its ABI version is checked. Its log lines go
to the ``logging`` module under the ``impp`` logger (``impp.engine``, ``impp.engine.shard``...);
see :func:`set_log_level`.

    import impp

    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        sub = engine.subscribe("sip:bob@example.test", "sip:alice@example.test")
        doc = impp.Presence(
            entity="pres:alice@example.test",
            tuples=[impp.Tuple(id="phone", basic="open", contact="sip:alice@198.51.100.7")],
        )
        engine.publish("sip:alice@example.test", doc)
        for event in engine.events(timeout=0.5):
            if event.kind is impp.EventKind.NOTIFY:
                print(event.state, event.xml)

The protocol's enumerations are :mod:`enum` classes (``impp.EventKind``,
``impp.AuthAction``, ``impp.Basic``...); most are string enums equal to their tokens, so
``event.kind == "notify"`` holds too, and arguments take either. Every failure raises an
:class:`impp.Error` subclass; the package is typed (``py.typed``, checked with
``mypy --strict``).
"""

from . import _ffi
from ._ffi import ABI_VERSION, TRACE, library_path, set_log_level
from ._ffi import version as library_version
from .documents import (
    Dialog,
    DialogInfo,
    DialogRef,
    Filter,
    FilterSet,
    Identity,
    IsComposing,
    MessageCounts,
    MessageSummary,
    Watcher,
    Watcherinfo,
    WatcherList,
)
from .engine import (
    STATS,
    Config,
    Document,
    Engine,
    EventCallback,
    Publication,
    Rule,
    Subscription,
    SubscriptionEntry,
    SubscriptionInfo,
)
from .enums import (
    AuthAction,
    Basic,
    Capability,
    ComposingState,
    DeliveryOutcome,
    DialogDirection,
    DialogEvent,
    DialogState,
    DocState,
    EventKind,
    FailureReason,
    Federation,
    Migration,
    LogLevel,
    SubscriptionState,
    TerminationReason,
    UserInputState,
    WatcherEvent,
    WatcherStatus,
)
from .errors import (
    Error,
    Forbidden,
    InCallback,
    Internal,
    IntervalTooBrief,
    InvalidArgument,
    InvalidState,
    InvalidUri,
    LimitReached,
    Moved,
    Malformed,
    Network,
    NotFound,
    ParseError,
    Shutdown,
    Status,
    Storage,
    TooLarge,
    UnknownEntityTag,
    UnknownPackage,
    UnsafeXml,
    Unsupported,
)
from .events import Event, EventDocument
from .lists import EntryLike, ListEntry, ListRef, Resource, ResourceList
from .presence import Activity, Note, NoteLike, Presence, Tuple, TupleRef, UserInput
from .sip import (
    SIP_STATS,
    Account,
    AccountList,
    AuthLimits,
    ConnectionLimits,
    RateLimit,
    SipStack,
    TlsFiles,
    TlsPem,
)

#: The version of the loaded library (``impp_version()``), which is this package's: the
#: package is released with the library it wraps, and checks its ABI at import.
__version__: str = library_version()


def abi_version() -> int:
    """The ABI version of the loaded library (checked against :data:`ABI_VERSION` at
    import)."""
    return int(_ffi.lib.impp_abi_version())


__all__ = [
    "ABI_VERSION",
    "Account",
    "AccountList",
    "Activity",
    "AuthAction",
    "AuthLimits",
    "Basic",
    "Capability",
    "ComposingState",
    "Config",
    "ConnectionLimits",
    "DeliveryOutcome",
    "Dialog",
    "DialogDirection",
    "DialogEvent",
    "DialogInfo",
    "DialogRef",
    "DialogState",
    "DocState",
    "Document",
    "Engine",
    "EntryLike",
    "Error",
    "Event",
    "EventCallback",
    "EventDocument",
    "EventKind",
    "FailureReason",
    "Federation",
    "Migration",
    "Filter",
    "FilterSet",
    "Forbidden",
    "Identity",
    "InCallback",
    "Internal",
    "IntervalTooBrief",
    "InvalidArgument",
    "InvalidState",
    "InvalidUri",
    "IsComposing",
    "LimitReached",
    "Moved",
    "ListEntry",
    "ListRef",
    "LogLevel",
    "Malformed",
    "MessageCounts",
    "MessageSummary",
    "Network",
    "Note",
    "NoteLike",
    "NotFound",
    "ParseError",
    "Presence",
    "Publication",
    "RateLimit",
    "Resource",
    "ResourceList",
    "Rule",
    "STATS",
    "SIP_STATS",
    "Shutdown",
    "SipStack",
    "Status",
    "Storage",
    "Subscription",
    "SubscriptionEntry",
    "SubscriptionInfo",
    "SubscriptionState",
    "TRACE",
    "TerminationReason",
    "TlsFiles",
    "TlsPem",
    "TooLarge",
    "Tuple",
    "TupleRef",
    "UnknownEntityTag",
    "UnknownPackage",
    "UnsafeXml",
    "Unsupported",
    "UserInput",
    "UserInputState",
    "Watcher",
    "WatcherEvent",
    "WatcherList",
    "WatcherStatus",
    "Watcherinfo",
    "__version__",
    "abi_version",
    "library_path",
    "library_version",
    "set_log_level",
]
