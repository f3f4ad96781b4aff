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
            print(event.kind, event.state, event.xml)
"""

from . import _ffi
from ._ffi import ABI_VERSION, TRACE, library_path, set_log_level
from ._ffi import version as library_version
from .engine import (
    ACTIONS,
    STATS,
    Config,
    Engine,
    Publication,
    Rule,
    Subscription,
    SubscriptionState,
)
from .errors import (
    Error,
    Forbidden,
    Storage,
    Network,
    InCallback,
    Internal,
    IntervalTooBrief,
    InvalidArgument,
    InvalidUri,
    Malformed,
    NotFound,
    ParseError,
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
    IsComposing,
    MessageCounts,
    MessageSummary,
    Watcher,
    Watcherinfo,
    WatcherList,
)
from .events import Event
from .sip import Account, SipStack
from .presence import CAPABILITIES, Activity, Note, Presence, Tuple, UserInput

__version__ = "0.1.0"


def abi_version() -> int:
    """The ABI version of the loaded library (checked against :data:`ABI_VERSION` at
    import)."""
    return int(_ffi.lib.impp_abi_version())


__all__ = [
    "ABI_VERSION",
    "ACTIONS",
    "Account",
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
    "Storage",
    "Network",
    "InCallback",
    "Internal",
    "IntervalTooBrief",
    "InvalidArgument",
    "InvalidUri",
    "IsComposing",
    "Malformed",
    "MessageCounts",
    "MessageSummary",
    "Note",
    "NotFound",
    "ParseError",
    "Presence",
    "Publication",
    "Rule",
    "Shutdown",
    "SipStack",
    "Subscription",
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
    "__version__",
    "abi_version",
    "library_path",
    "library_version",
    "set_log_level",
]
