"""Exceptions: one class per libimpp status code, all rooted at :class:`impp.Error`.

The status numbers are the library's (they are never renumbered); the message is the text of
``impp_last_error()``, read on the failing thread right after the failing call.
"""

from typing import Dict, Optional, Type

__all__ = [
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
    "error_for_status",
]


class Error(Exception):
    """A libimpp call failed. ``status`` is the C status code, ``message`` the library's text."""

    #: The C status code (``impp_status``) this class stands for; ``None`` on the base class.
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

    status = -1
    status_name = "IMPP_ERR_INVALID_ARGUMENT"


class InvalidUri(Error, ValueError):
    """A URI did not parse."""

    status = -2
    status_name = "IMPP_ERR_INVALID_URI"


class ParseError(Error, ValueError):
    """The family of document failures: a document that is malformed (:class:`Malformed`),
    unsafe (:class:`UnsafeXml`) or too large (:class:`TooLarge`). Catch this one to handle
    any bad input; the subclasses say which status the library returned."""

    status_name = "IMPP_ERR_PARSE"


class Malformed(ParseError):
    """A document is not well-formed or does not follow its schema."""

    status = -3
    status_name = "IMPP_ERR_MALFORMED"


class TooLarge(ParseError):
    """A document exceeds the size or nesting limit."""

    status = -4
    status_name = "IMPP_ERR_TOO_LARGE"


class UnsafeXml(ParseError):
    """A document uses a DOCTYPE, an entity declaration or an undeclared entity."""

    status = -5
    status_name = "IMPP_ERR_UNSAFE_XML"


class Unsupported(Error, NotImplementedError):
    """Valid, but outside what the library (or this package) implements. Also a
    :class:`NotImplementedError`."""

    status = -6
    status_name = "IMPP_ERR_UNSUPPORTED"


class NotFound(Error, LookupError):
    """An index, id or item does not exist."""

    status = -7
    status_name = "IMPP_ERR_NOT_FOUND"


class Internal(Error):
    """A bug inside the library (a panic was caught); the handle is still usable."""

    status = -8
    status_name = "IMPP_ERR_INTERNAL"


class UnknownEntityTag(Error):
    """A publication's entity tag is unknown or expired (SIP 412)."""

    status = -9
    status_name = "IMPP_ERR_UNKNOWN_ENTITY_TAG"


class IntervalTooBrief(Error):
    """A requested expiry is shorter than the configured minimum (SIP 423)."""

    status = -10
    status_name = "IMPP_ERR_INTERVAL_TOO_BRIEF"


class UnknownPackage(Error):
    """An event package the engine does not serve."""

    status = -11
    status_name = "IMPP_ERR_UNKNOWN_PACKAGE"


class Shutdown(Error):
    """The engine is closed or shutting down."""

    status = -12
    status_name = "IMPP_ERR_SHUTDOWN"


class InCallback(Error):
    """The call is not allowed from inside an event callback (it would deadlock)."""

    status = -13
    status_name = "IMPP_ERR_IN_CALLBACK"


class Forbidden(Error):
    """The requester may not do this."""

    status = -14
    status_name = "IMPP_ERR_FORBIDDEN"


class Storage(Error):
    """Durable storage failed: the store cannot be opened, read or written."""

    status = -15
    status_name = "IMPP_ERR_STORAGE"


class Network(Error):
    """The network failed: a listen address cannot be bound (in use, or not an address of
    this host)."""

    status = -16
    status_name = "IMPP_ERR_NETWORK"


_BY_STATUS: Dict[int, Type[Error]] = {
    cls.status: cls  # type: ignore[misc]
    for cls in (
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
    )
}


def error_for_status(status: int, message: Optional[str] = None) -> Error:
    """The exception for a non-zero status code (the base class for a code this package
    does not know, e.g. from a newer library of the same ABI)."""
    cls = _BY_STATUS.get(status, Error)
    if not message:
        message = f"{cls.status_name if cls is not Error else 'unknown status'} ({status})"
    return cls(message, status)
