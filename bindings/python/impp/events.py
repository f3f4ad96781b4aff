"""Engine events, copied out of the C event into plain Python values.

A C event handed to a callback lives for the call only, and one returned by polling is freed
right after it is read, so an :class:`Event` never points into the library.
"""

from __future__ import annotations

import ctypes
from ctypes import c_int, c_size_t, c_void_p
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from .documents import DialogInfo, MessageSummary, Watcherinfo
    from .presence import Presence

from ._ffi import check, decode, lib
from .enums import DeliveryOutcome, EventKind, FailureReason, SubscriptionState, TerminationReason

__all__ = ["Event", "EventDocument"]

#: What :attr:`Event.document` holds: the notification's body parsed for its package.
EventDocument = Union["Presence", "Watcherinfo", "DialogInfo", "MessageSummary"]

_MESSAGE_KINDS = (EventKind.MESSAGE, EventKind.DELIVERY, EventKind.ENDPOINT_EXPIRED)


@dataclass(frozen=True)
class Event:
    """One event of an engine, copied out of the library (it never points into it).

    ``kind`` (an :class:`impp.EventKind`, equal to its token) says which fields are set.

    Subscriptions and publications:

    - ``NOTIFY`` (``"notify"``): a notification to ``watcher`` about ``presentity`` in
      ``package`` for ``subscription_id``, with the subscription's ``state`` and, once it is
      terminated, a ``reason``. ``xml`` is the document as text when the watcher may see
      one, and ``document`` that text parsed for the package, or None.
    - ``WATCHER_PENDING`` (``"watcher-pending"``): ``watcher`` waits for the presentity's
      decision on ``subscription_id`` (:meth:`impp.Engine.authorize`).
    - ``SUBSCRIPTION_STATE`` (``"subscription-state"``): ``subscription_id`` changed
      ``state`` (and ``reason``), for the presentity's side.
    - ``PUBLICATION_EXPIRED`` (``"publication-expired"``): the publication of
      ``presentity`` with entity tag ``etag`` ran out.

    Instant messages (see :meth:`impp.Engine.send_message`):

    - ``MESSAGE`` (``"message"``): a message for one endpoint of its recipient.
      ``message_id`` (the decimal string :meth:`~impp.Engine.send_message` returned),
      ``sender``, ``recipient``, ``content_type``, ``body`` (bytes, exactly as sent),
      ``endpoint`` (the endpoint this copy is for), ``in_reply_to`` (or None) and
      ``sent_at`` (Unix time in milliseconds).
    - ``DELIVERY`` (``"delivery"``): what became of a sent message, for its sender.
      ``message_id``, ``sender``, ``recipient``, ``outcome`` (an
      :class:`impp.DeliveryOutcome`) and, for ``FAILED``, ``reason`` (an
      :class:`impp.FailureReason`).
    - ``ENDPOINT_EXPIRED`` (``"endpoint-expired"``): an endpoint's login ran out. ``user``
      and ``endpoint``.
    """

    #: What the event reports.
    kind: EventKind
    #: The subscription's engine id (None for events of no subscription).
    subscription_id: Optional[int]
    #: The watcher's URI (subscription events).
    watcher: Optional[str]
    #: The presentity's URI (also the recipient user of a message event).
    presentity: Optional[str]
    #: The event package (``"presence"``, ``"dialog"``...; subscription events).
    package: Optional[str]
    #: The subscription's state after the event (subscription events), or None.
    state: Optional[SubscriptionState] = None
    #: Why a subscription ended (an :class:`impp.TerminationReason`), or why a message failed
    #: (an :class:`impp.FailureReason`, for a ``DELIVERY`` event); None otherwise.
    reason: Union[TerminationReason, FailureReason, None] = None
    #: The expired publication's entity tag (``PUBLICATION_EXPIRED``).
    etag: Optional[str] = None
    #: The notification's document as text, when the watcher may see one.
    xml: Optional[str] = None
    #: The message id, a decimal string (message events).
    message_id: Optional[str] = None
    #: The message's sender URI (message events).
    sender: Optional[str] = None
    #: The message's recipient URI (message events).
    recipient: Optional[str] = None
    #: The message's MIME type (``MESSAGE``).
    content_type: Optional[str] = None
    #: The message body, exactly as sent (``MESSAGE``).
    body: Optional[bytes] = None
    #: The endpoint id (``MESSAGE``, ``ENDPOINT_EXPIRED``).
    endpoint: Optional[str] = None
    #: The message id this one answers, as given by the sender (``MESSAGE``).
    in_reply_to: Optional[str] = None
    #: When the message was sent, Unix time in milliseconds (``MESSAGE``).
    sent_at: Optional[int] = None
    #: What became of the message (``DELIVERY``).
    outcome: Optional[DeliveryOutcome] = None
    #: The user whose endpoint expired (``ENDPOINT_EXPIRED``).
    user: Optional[str] = None

    @cached_property
    def document(self) -> Optional[EventDocument]:
        """The document parsed for the event's package (parsed once, then kept), or None
        when the event carries none or the package has no document type here."""
        # Not `a() or b()`: an empty Presence or DialogInfo is falsy (len() is 0).
        parsers = (self.presence, self.winfo, self.dialog_info, self.message_summary)
        for parse in parsers:
            doc: Optional[EventDocument] = parse()
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
    def _copy(cls, event: Any) -> Event:
        """Reads every field of a live C event (borrowed or owned) into a new Event."""
        kind = EventKind._from_c(lib.impp_event_kind(event))
        if kind in _MESSAGE_KINDS:
            return cls._copy_message(event, kind)
        reason = c_int()
        state = lib.impp_event_state(event, ctypes.byref(reason))
        body = None
        if lib.impp_event_has_document(event):
            ptr, length = c_void_p(), c_size_t()
            check(lib.impp_event_body(event, ctypes.byref(ptr), ctypes.byref(length)))
            body = ctypes.string_at(ptr.value, length.value).decode("utf-8") if ptr.value else ""
        subscription = lib.impp_event_subscription(event)
        return cls(
            kind=kind,
            subscription_id=subscription or None,
            watcher=decode(lib.impp_event_watcher(event)),
            presentity=decode(lib.impp_event_presentity(event)),
            package=decode(lib.impp_event_package(event)),
            state=SubscriptionState._from_c_optional(state),
            reason=TerminationReason._from_c_optional(reason.value),
            etag=decode(lib.impp_event_etag(event)),
            xml=body,
        )

    @classmethod
    def _copy_message(cls, event: Any, kind: EventKind) -> Event:
        """Reads a message, delivery or endpoint expiry event."""
        message_id = lib.impp_event_message_id(event)
        presentity = decode(lib.impp_event_presentity(event))
        body = None
        if kind is EventKind.MESSAGE:
            ptr, length = c_void_p(), c_size_t()
            check(lib.impp_event_message_body(event, ctypes.byref(ptr), ctypes.byref(length)))
            body = ctypes.string_at(ptr.value or 0, length.value) if length.value else b""
        return cls(
            kind=kind,
            subscription_id=None,
            watcher=None,
            presentity=presentity,
            package=None,
            reason=FailureReason._from_c_optional(lib.impp_event_failure_reason(event)),
            message_id=str(message_id) if message_id else None,
            sender=decode(lib.impp_event_sender(event)),
            recipient=decode(lib.impp_event_recipient(event)),
            content_type=decode(lib.impp_event_content_type(event)),
            body=body,
            endpoint=decode(lib.impp_event_endpoint(event)),
            in_reply_to=decode(lib.impp_event_in_reply_to(event)),
            sent_at=lib.impp_event_sent_at(event) if kind is EventKind.MESSAGE else None,
            outcome=DeliveryOutcome._from_c_optional(lib.impp_event_delivery_outcome(event)),
            user=presentity if kind is EventKind.ENDPOINT_EXPIRED else None,
        )
