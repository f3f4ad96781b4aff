"""impp: Python bindings for libimpp, a presence and instant-messaging engine.

The library is loaded with ctypes when this package is imported (see ``impp._ffi`` for the
search order; ``IMPP_LIBRARY`` overrides it) and its ABI version is checked. Its log lines go
to the ``logging`` module under the ``impp`` logger (``impp.engine``, ``impp.engine.shard``...);
see :func:`set_log_level`.

    import impp

    with impp.Engine(default_policy="allow", manual_clock=True) as engine:
        sub = engine.subscribe("sip:bob@example.test", "sip:alice@example.test")
        doc = impp.Presence("pres:alice@example.test")
        doc.add_tuple("phone", "open", contact="sip:alice@198.51.100.7")
        engine.publish("sip:alice@example.test", doc)
        for event in engine.events(timeout=0.5):
            print(event.kind, event.state, event.body)
"""

from ._ffi import ABI_VERSION, TRACE, library_path, set_log_level
from ._ffi import version as library_version
from .engine import ACTIONS, STATS, Config, Engine, Rule, SubscriptionState
from .errors import (
    Error,
    Forbidden,
    InCallback,
    Internal,
    IntervalTooBrief,
    InvalidArgument,
    InvalidUri,
    Malformed,
    NotFound,
    Shutdown,
    TooLarge,
    UnknownEntityTag,
    UnknownPackage,
    UnsafeXml,
    Unsupported,
)
from .documents import (
    Dialog,
    DialogInfo,
    Filter,
    FilterSet,
    Identity,
    MessageCounts,
    MessageSummary,
    Watcher,
    Watcherinfo,
    WatcherList,
)
from .events import Event
from .presence import CAPABILITIES, Activity, Note, Presence, Tuple, UserInput

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION",
    "ACTIONS",
    "CAPABILITIES",
    "STATS",
    "Activity",
    "Config",
    "Dialog",
    "DialogInfo",
    "Engine",
    "Error",
    "Event",
    "Filter",
    "FilterSet",
    "Identity",
    "Forbidden",
    "InCallback",
    "Internal",
    "IntervalTooBrief",
    "InvalidArgument",
    "InvalidUri",
    "Malformed",
    "MessageCounts",
    "MessageSummary",
    "Note",
    "NotFound",
    "Presence",
    "Rule",
    "Shutdown",
    "SubscriptionState",
    "TRACE",
    "TooLarge",
    "Tuple",
    "UnknownEntityTag",
    "UnknownPackage",
    "UnsafeXml",
    "Unsupported",
    "UserInput",
    "Watcher",
    "WatcherList",
    "Watcherinfo",
    "library_path",
    "library_version",
    "set_log_level",
]
