"""Exceptions: one class per libimpp status code, all rooted at :class:`impp.Error`.

The status numbers are the library's (they are never renumbered); the message is the text of
``impp_last_error()``, read on the failing thread right after the failing call.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Type

__all__ = [
    "Status",
    "Error",
    "InvalidArgument",
    "InvalidUri",
    "ParseError",
    "Malformed",
    "TooLarge",
    "UnsafeXml",
    "Unsupported",
    "NotFound",
    "Internal",
    "UnknownEntityTag",
    "IntervalTooBrief",
    "UnknownPackage",
    "Shutdown",
    "InCallback",
    "Forbidden",
    "Storage",
    "Network",
    "LimitReached",
    "Moved",
    "InvalidState",
    "error_for_status",
]


class Status(enum.IntEnum):
    """The library's status codes (``impp_status``): 0 is success, errors are small negative
    numbers that are never renumbered. Each error has its exception class
    (:class:`impp.Error` subclasses)."""

    OK = 0
    INVALID_ARGUMENT = -1
    INVALID_URI = -2
    MALFORMED = -3
    TOO_LARGE = -4
    UNSAFE_XML = -5
    UNSUPPORTED = -6
    NOT_FOUND = -7
    INTERNAL = -8
    UNKNOWN_ENTITY_TAG = -9
    INTERVAL_TOO_BRIEF = -10
    UNKNOWN_PACKAGE = -11
    SHUTDOWN = -12
    IN_CALLBACK = -13
    FORBIDDEN = -14
    STORAGE = -15
    NETWORK = -16
    LIMIT_REACHED = -17
    MOVED = -18


class Error(Exception):
    """A libimpp call failed. ``status`` is the C status code, ``message`` the library's text."""

    #: The C status code (``impp_status``) this class stands for: a :class:`Status`, or a
    #: plain int for a code this package does not know; ``None`` on the base class and on
    #: :class:`InvalidState` (raised by this package, not by the library).
    status: Optional[int] = None
    #: The C name of the status code, e.g. ``"IMPP_ERR_MALFORMED"``.
    status_name: str = "IMPP_ERR"

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            # Only differs from the class attribute for a code this package does not know.
            self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


# InvalidArgument is also a ValueError and NotFound also a LookupError, so code written
# against the built-in exceptions catches them as a Python programmer would expect.
class InvalidArgument(Error, ValueError):
    """An argument was NULL, not valid UTF-8, or out of range."""

    status = Status.INVALID_ARGUMENT
    status_name = "IMPP_ERR_INVALID_ARGUMENT"


class InvalidUri(Error, ValueError):
    """A URI did not parse."""

    status = Status.INVALID_URI
    status_name = "IMPP_ERR_INVALID_URI"


class ParseError(Error, ValueError):
    """The family of document failures: a document that is malformed (:class:`Malformed`),
    unsafe (:class:`UnsafeXml`) or too large (:class:`TooLarge`). Catch this one to handle
    any bad input; the subclasses say which status the library returned."""

    status_name = "IMPP_ERR_PARSE"


class Malformed(ParseError):
    """A document is not well-formed or does not follow its schema."""

    status = Status.MALFORMED
    status_name = "IMPP_ERR_MALFORMED"


class TooLarge(ParseError):
    """A document exceeds the size or nesting limit."""

    status = Status.TOO_LARGE
    status_name = "IMPP_ERR_TOO_LARGE"


class UnsafeXml(ParseError):
    """A document uses a DOCTYPE, an entity declaration or an undeclared entity."""

    status = Status.UNSAFE_XML
    status_name = "IMPP_ERR_UNSAFE_XML"


class Unsupported(Error, NotImplementedError):
    """Valid, but outside what the library (or this package) implements. Also a
    :class:`NotImplementedError`."""

    status = Status.UNSUPPORTED
    status_name = "IMPP_ERR_UNSUPPORTED"


class NotFound(Error, LookupError):
    """An index, id or item does not exist."""

    status = Status.NOT_FOUND
    status_name = "IMPP_ERR_NOT_FOUND"


class Internal(Error):
    """A bug inside the library (a panic was caught); the handle is still usable."""

    status = Status.INTERNAL
    status_name = "IMPP_ERR_INTERNAL"


class UnknownEntityTag(Error):
    """A publication's entity tag is unknown or expired (SIP 412)."""

    status = Status.UNKNOWN_ENTITY_TAG
    status_name = "IMPP_ERR_UNKNOWN_ENTITY_TAG"


class IntervalTooBrief(Error):
    """A requested expiry is shorter than the configured minimum (SIP 423)."""

    status = Status.INTERVAL_TOO_BRIEF
    status_name = "IMPP_ERR_INTERVAL_TOO_BRIEF"


class UnknownPackage(Error):
    """An event package the engine does not serve."""

    status = Status.UNKNOWN_PACKAGE
    status_name = "IMPP_ERR_UNKNOWN_PACKAGE"


class Shutdown(Error):
    """The engine is closed or shutting down."""

    status = Status.SHUTDOWN
    status_name = "IMPP_ERR_SHUTDOWN"


class InCallback(Error):
    """The call is not allowed from inside an event callback (it would deadlock)."""

    status = Status.IN_CALLBACK
    status_name = "IMPP_ERR_IN_CALLBACK"


class Forbidden(Error):
    """The requester may not do this."""

    status = Status.FORBIDDEN
    status_name = "IMPP_ERR_FORBIDDEN"


class Storage(Error):
    """Durable storage failed: the store cannot be opened, read or written."""

    status = Status.STORAGE
    status_name = "IMPP_ERR_STORAGE"


class Network(Error):
    """The network failed: a listen address cannot be bound (in use, or not an address of
    this host)."""

    status = Status.NETWORK
    status_name = "IMPP_ERR_NETWORK"


class LimitReached(Error):
    """A configured bound on the engine's state is reached (subscriptions per watcher or per
    presentity, endpoints per user); nothing changed. Room comes back as that state ends."""

    status = Status.LIMIT_REACHED
    status_name = "IMPP_ERR_LIMIT_REACHED"


class Moved(Error):
    """The subscription is not served here: the presentity's rules, or its decision on this
    watcher, send it to another presence agent. ``message`` is that agent's URI."""

    status = Status.MOVED
    status_name = "IMPP_ERR_MOVED"


class InvalidState(Error, RuntimeError):
    """The object is not in a state where the call makes sense: polling an engine whose
    events go to an :meth:`~impp.Engine.on_event` callback, a second coroutine awaiting the
    same engine's events. Raised by this package, not by the library, so it has no status
    code. Also a :class:`RuntimeError`."""

    status_name = "IMPP_ERR"


_BY_STATUS: Dict[int, Type[Error]] = {}
for _cls in (
    InvalidArgument,
    InvalidUri,
    Malformed,
    TooLarge,
    UnsafeXml,
    Unsupported,
    NotFound,
    Internal,
    UnknownEntityTag,
    IntervalTooBrief,
    UnknownPackage,
    Shutdown,
    InCallback,
    Forbidden,
    Storage,
    Network,
    LimitReached,
    Moved,
):
    assert _cls.status is not None
    _BY_STATUS[_cls.status] = _cls
del _cls


def error_for_status(status: int, message: Optional[str] = None) -> Error:
    """The exception for a non-zero status code (the base class for a code this package
    does not know, e.g. from a newer library of the same ABI)."""
    cls = _BY_STATUS.get(status, Error)
    if cls is not Error:
        status = Status(status)
    if not message:
        message = f"{cls.status_name if cls is not Error else 'unknown status'} ({status})"
    return cls(message, status)
