"""Engine events, copied out of the C event into plain Python values.

A C event handed to a callback lives for the call only, and one returned by polling is freed
right after it is read, so an :class:`Event` never points into the library.
"""

import ctypes
from ctypes import c_int, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Optional

from ._ffi import check, decode, lib

__all__ = ["Event", "KINDS", "STATES", "REASONS"]

#: impp_event_kind values.
KINDS = {
    1: "notification",
    2: "authorization_requested",
    3: "subscription_state",
    4: "publication_expired",
}
#: impp_subscription_state values (NONE is None).
STATES = {0: None, 1: "pending", 2: "active", 3: "terminated"}
#: impp_reason values (NONE is None).
REASONS = {
    0: None,
    1: "deactivated",
    2: "probation",
    3: "rejected",
    4: "timeout",
    5: "giveup",
    6: "noresource",
}


@dataclass(frozen=True)
class Event:
    """One event of an engine.

    ``kind`` is ``"notification"``, ``"authorization_requested"``, ``"subscription_state"``
    or ``"publication_expired"``. ``subscription`` is the subscription id (None for a
    publication expiry). ``state`` is ``"pending"``, ``"active"``, ``"terminated"`` or None;
    ``reason`` an RFC 6665 reason (``"rejected"``, ``"timeout"``, ...) or None. ``etag`` is
    set for a publication expiry; ``body`` is the notification's document as text, when the
    watcher may see one.
    """

    kind: str
    subscription: Optional[int]
    watcher: Optional[str]
    presentity: Optional[str]
    package: Optional[str]
    state: Optional[str] = None
    reason: Optional[str] = None
    etag: Optional[str] = None
    body: Optional[str] = None

    def presence(self):
        """The body parsed as a :class:`impp.Presence` (a new handle the caller owns), or
        None when the event carries no presence document."""
        if self.body is None or self.package != "presence":
            return None
        from .presence import Presence

        return Presence.parse(self.body)

    def winfo(self):
        """The body parsed as a :class:`impp.Watcherinfo` (a new handle the caller owns), or
        None when the event carries no watcherinfo document (``presence.winfo`` package)."""
        if self.body is None or self.package != "presence.winfo":
            return None
        from .documents import Watcherinfo

        return Watcherinfo.parse(self.body)

    def dialog_info(self):
        """The body parsed as a :class:`impp.DialogInfo` (a new handle the caller owns), or
        None when the event carries no dialog-info document (``dialog`` package)."""
        if self.body is None or self.package != "dialog":
            return None
        from .documents import DialogInfo

        return DialogInfo.parse(self.body)

    def message_summary(self):
        """The body parsed as a :class:`impp.MessageSummary` (a new handle the caller owns),
        or None when the event carries no message summary (``message-summary`` package)."""
        if self.body is None or self.package != "message-summary":
            return None
        from .documents import MessageSummary

        return MessageSummary.parse(self.body)

    @classmethod
    def _copy(cls, event) -> "Event":
        """Reads every field of a live C event (borrowed or owned) into a new Event."""
        kind = lib.impp_event_get_kind(event)
        reason = c_int()
        state = lib.impp_event_state(event, ctypes.byref(reason))
        body = None
        if lib.impp_event_has_document(event):
            ptr, length = c_void_p(), c_size_t()
            check(lib.impp_event_body(event, ctypes.byref(ptr), ctypes.byref(length)))
            body = ctypes.string_at(ptr.value, length.value).decode("utf-8") if ptr.value else ""
        subscription = lib.impp_event_subscription(event)
        return cls(
            kind=KINDS.get(kind, f"unknown({kind})"),
            subscription=subscription or None,
            watcher=decode(lib.impp_event_watcher(event)),
            presentity=decode(lib.impp_event_presentity(event)),
            package=decode(lib.impp_event_package(event)),
            state=STATES.get(state),
            reason=REASONS.get(reason.value),
            etag=decode(lib.impp_event_etag(event)),
            body=body,
        )
