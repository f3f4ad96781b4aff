"""Engine events, copied out of the C event into plain Python values.

A C event handed to a callback lives for the call only, and one returned by polling is freed
right after it is read, so an :class:`Event` never points into the library.
"""

import ctypes
from ctypes import c_int, c_size_t, c_void_p
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from .documents import DialogInfo, MessageSummary, Watcherinfo
    from .presence import Presence

from ._ffi import check, decode, lib

__all__ = ["Event", "KINDS", "OLD_KINDS", "STATES", "REASONS", "OUTCOMES", "FAILURE_REASONS"]

#: impp_event_type values (what ``impp_event_kind`` returns): the names ``Event.kind`` takes.
KINDS = {
    1: "notify",
    2: "watcher-pending",
    3: "subscription-state",
    4: "publication-expired",
    5: "message",
    6: "delivery",
    7: "endpoint-expired",
}
#: The names earlier versions of this package used, mapped to the current ones.
OLD_KINDS = {
    "notification": "notify",
    "authorization_requested": "watcher-pending",
    "subscription_state": "subscription-state",
    "publication_expired": "publication-expired",
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
#: impp_delivery_outcome values (NONE is None).
OUTCOMES = {0: None, 1: "delivered", 2: "stored", 3: "failed"}
#: impp_failure_reason values (NONE is None): the ``reason`` of a failed delivery.
FAILURE_REASONS = {
    0: None,
    1: "unknown-user",
    2: "too-large",
    3: "expired",
    4: "rejected",
    5: "offline",
    6: "storage",
    7: "unreachable",
}


@dataclass(frozen=True)
class Event:
    """One event of an engine.

    ``kind`` is ``"notify"`` (a notification), ``"watcher-pending"`` (a watcher waits for
    authorization), ``"subscription-state"`` or ``"publication-expired"``.
    ``subscription_id`` is the subscription id (None for a publication expiry). ``state`` is
    ``"pending"``, ``"active"``, ``"terminated"`` or None; ``reason`` an RFC 6665 reason
    (``"rejected"``, ``"timeout"``, ...) or None. ``etag`` is set for a publication expiry.
    ``xml`` is the notification's document as text, when the watcher may see one, and
    ``document`` that text parsed for the package (a :class:`impp.Presence`,
    :class:`impp.Watcherinfo`, :class:`impp.DialogInfo` or :class:`impp.MessageSummary`),
    or None.

    Instant messages (see :meth:`impp.Engine.send_message`):

    - ``"message"``: a message for one endpoint of its recipient. ``message_id`` (the
      decimal string :meth:`~impp.Engine.send_message` returned), ``sender``, ``recipient``,
      ``content_type``, ``body`` (bytes, exactly as sent), ``endpoint`` (the endpoint this
      copy is for), ``in_reply_to`` (or None) and ``sent_at`` (Unix time in milliseconds,
      an int).
    - ``"delivery"``: what became of a sent message, for its sender. ``message_id``,
      ``sender``, ``recipient``, ``outcome`` (``"delivered"``, ``"stored"`` or
      ``"failed"``) and ``reason`` (None, or for ``"failed"`` one of ``"unknown-user"``,
      ``"too-large"``, ``"expired"``, ``"rejected"``, ``"offline"``, ``"storage"``, ``"unreachable"``).
    - ``"endpoint-expired"``: an endpoint's login ran out. ``user`` and ``endpoint``.

    ``subscription`` is the older name of ``subscription_id``; ``body`` is the message
    body for a message event and the older name of ``xml`` for the others.
    """

    kind: str
    subscription_id: Optional[int]
    watcher: Optional[str]
    presentity: Optional[str]
    package: Optional[str]
    state: Optional[str] = None
    reason: Optional[str] = None
    etag: Optional[str] = None
    xml: Optional[str] = None
    message_id: Optional[str] = None
    sender: Optional[str] = None
    recipient: Optional[str] = None
    content_type: Optional[str] = None
    message_body: Optional[bytes] = None
    endpoint: Optional[str] = None
    in_reply_to: Optional[str] = None
    sent_at: Optional[int] = None
    outcome: Optional[str] = None
    user: Optional[str] = None

    @property
    def subscription(self) -> Optional[int]:
        """Alias of :attr:`subscription_id`."""
        return self.subscription_id

    @property
    def body(self) -> Union[bytes, str, None]:
        """A message event's body (bytes); for other events the alias of :attr:`xml`."""
        if self.kind == "message":
            return self.message_body
        return self.xml

    def is_kind(self, kind: str) -> bool:
        """Whether the event is of ``kind``, current or old name (``"notification"``...)."""
        return self.kind == OLD_KINDS.get(kind, kind)

    @cached_property
    def document(self) -> Any:
        """The document parsed for the event's package (parsed once, then kept), or None
        when the event carries none or the package has no document type here."""
        for parse in (self.presence, self.winfo, self.dialog_info, self.message_summary):
            doc = parse()
            if doc is not None:
                return doc
        return None

    def presence(self) -> Optional["Presence"]:
        """The body parsed as a :class:`impp.Presence` (a new handle the caller owns), or
        None when the event carries no presence document."""
        if self.xml is None or self.package != "presence":
            return None
        from .presence import Presence

        return Presence.parse(self.xml)

    def winfo(self) -> Optional["Watcherinfo"]:
        """The body parsed as a :class:`impp.Watcherinfo` (a new handle the caller owns), or
        None when the event carries no watcherinfo document (``presence.winfo`` package)."""
        if self.xml is None or self.package != "presence.winfo":
            return None
        from .documents import Watcherinfo

        return Watcherinfo.parse(self.xml)

    def dialog_info(self) -> Optional["DialogInfo"]:
        """The body parsed as a :class:`impp.DialogInfo` (a new handle the caller owns), or
        None when the event carries no dialog-info document (``dialog`` package)."""
        if self.xml is None or self.package != "dialog":
            return None
        from .documents import DialogInfo

        return DialogInfo.parse(self.xml)

    def message_summary(self) -> Optional["MessageSummary"]:
        """The body parsed as a :class:`impp.MessageSummary` (a new handle the caller owns),
        or None when the event carries no message summary (``message-summary`` package)."""
        if self.xml is None or self.package != "message-summary":
            return None
        from .documents import MessageSummary

        return MessageSummary.parse(self.xml)

    @classmethod
    def _copy(cls, event: Any) -> "Event":
        """Reads every field of a live C event (borrowed or owned) into a new Event."""
        kind = lib.impp_event_kind(event)
        reason = c_int()
        state = lib.impp_event_state(event, ctypes.byref(reason))
        body = None
        if lib.impp_event_has_document(event):
            ptr, length = c_void_p(), c_size_t()
            check(lib.impp_event_body(event, ctypes.byref(ptr), ctypes.byref(length)))
            body = ctypes.string_at(ptr.value, length.value).decode("utf-8") if ptr.value else ""
        subscription = lib.impp_event_subscription(event)
        name = KINDS.get(kind, f"unknown({kind})")
        if name in ("message", "delivery", "endpoint-expired"):
            return cls._copy_message(event, name)
        return cls(
            kind=KINDS.get(kind, f"unknown({kind})"),
            subscription_id=subscription or None,
            watcher=decode(lib.impp_event_watcher(event)),
            presentity=decode(lib.impp_event_presentity(event)),
            package=decode(lib.impp_event_package(event)),
            state=STATES.get(state),
            reason=REASONS.get(reason.value),
            etag=decode(lib.impp_event_etag(event)),
            xml=body,
        )

    @classmethod
    def _copy_message(cls, event: Any, kind: str) -> "Event":
        """Reads a message, delivery or endpoint expiry event."""
        message_id = lib.impp_event_message_id(event)
        presentity = decode(lib.impp_event_presentity(event))
        body = None
        if kind == "message":
            ptr, length = c_void_p(), c_size_t()
            check(lib.impp_event_message_body(event, ctypes.byref(ptr), ctypes.byref(length)))
            body = ctypes.string_at(ptr.value, length.value) if length.value else b""
        outcome = OUTCOMES.get(lib.impp_event_delivery_outcome(event))
        return cls(
            kind=kind,
            subscription_id=None,
            watcher=None,
            presentity=presentity,
            package=None,
            reason=FAILURE_REASONS.get(lib.impp_event_failure_reason(event)),
            message_id=str(message_id) if message_id else None,
            sender=decode(lib.impp_event_sender(event)),
            recipient=decode(lib.impp_event_recipient(event)),
            content_type=decode(lib.impp_event_content_type(event)),
            message_body=body,
            endpoint=decode(lib.impp_event_endpoint(event)),
            in_reply_to=decode(lib.impp_event_in_reply_to(event)),
            sent_at=lib.impp_event_sent_at(event) if kind == "message" else None,
            outcome=outcome,
            user=presentity if kind == "endpoint-expired" else None,
        )
