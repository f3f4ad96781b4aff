"""The library's enumerations as Python enums.

Most are string enums (:class:`str` subclasses, like Python 3.11's ``enum.StrEnum``): a
member's value is the token the protocols and documents use (``"open"``,
``"polite-block"``, ``"watcher-pending"``), so a member compares equal to that string, prints
as it (``str()``, f-strings) and serializes as it (``json``). Each member also knows the
number of its C enum value; a test checks those numbers against ``include/impp.h``.

Where the package takes one of these as an argument it also takes the token
(``engine.authorize(sub, "allow")``); a token it does not know raises
:class:`impp.InvalidArgument`.

:class:`Status` and :class:`LogLevel` are integer enums: a status is a C status code, a log
level a :mod:`logging` level.
"""

from __future__ import annotations

import enum
import logging
from typing import Dict, Optional, Type, TypeVar, Union

from .errors import InvalidArgument, Status, Unsupported

__all__ = [
    "AuthAction",
    "Basic",
    "Capability",
    "ComposingState",
    "DeliveryOutcome",
    "DialogDirection",
    "DialogEvent",
    "DialogState",
    "DocState",
    "EventKind",
    "FailureReason",
    "Federation",
    "LogLevel",
    "Status",
    "SubscriptionState",
    "TerminationReason",
    "UserInputState",
    "WatcherEvent",
    "WatcherStatus",
]

_E = TypeVar("_E", bound="_CEnum")


class _CEnum(str, enum.Enum):
    """A string enum whose members also carry the number of their C enum value. Members are
    declared as ``NAME = ("token", number)``."""

    _value_: str
    #: The C enum value (``impp_basic`` etc.).
    _c: int

    def __new__(cls, token: str, number: int) -> _CEnum:
        member = str.__new__(cls, token)
        member._value_ = token
        member._c = number
        return member

    # The token, not "Basic.OPEN": what print() and f-strings show (as enum.StrEnum does).
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def _from_c(cls: Type[_E], number: int) -> _E:
        """The member of a C value the library returned; :class:`impp.Unsupported` for a
        value this package does not know (never from a library of the same ABI)."""
        by_c = _BY_C.get(cls)
        if by_c is None:
            by_c = _BY_C[cls] = {m._c: m for m in cls}
        member = by_c.get(number)
        if member is None:
            raise Unsupported(f"{cls.__name__}: C value {number} is unknown to this package")
        return member  # type: ignore[return-value]

    @classmethod
    def _from_c_optional(cls: Type[_E], number: int) -> Optional[_E]:
        """As :meth:`_from_c`, with 0 (the C enum's NONE/UNSET value) as None."""
        return None if number == 0 else cls._from_c(number)

    @classmethod
    def _parse(cls: Type[_E], value: Union[_E, str], what: str) -> _E:
        """A member from a member or its token; :class:`impp.InvalidArgument` for any other
        string, :class:`TypeError` for any other type."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.value == value:
                    return member
            tokens = ", ".join(repr(m.value) for m in cls)
            raise InvalidArgument(f"{what} must be one of {tokens}, not {value!r}")
        raise TypeError(f"{what} must be an impp.{cls.__name__} or str, not {value!r}")

    @classmethod
    def _parse_optional(cls: Type[_E], value: Union[_E, str, None], what: str) -> int:
        """The C value of a member, token or None (0, the C enum's NONE/UNSET value)."""
        return 0 if value is None else cls._parse(value, what)._c


_BY_C: Dict[type, Dict[int, _CEnum]] = {}


class EventKind(_CEnum):
    """What an :class:`impp.Event` reports (``impp_event_type``)."""

    #: A notification to a watcher: its subscription's state and, when it may see one, the
    #: document (``IMPP_EVENT_NOTIFICATION``).
    NOTIFY = ("notify", 1)
    #: A watcher waits for the presentity's decision (``IMPP_EVENT_AUTHORIZATION_REQUESTED``):
    #: answer with :meth:`impp.Engine.authorize`.
    WATCHER_PENDING = ("watcher-pending", 2)
    #: A subscription changed state, for the presentity's side.
    SUBSCRIPTION_STATE = ("subscription-state", 3)
    #: A publication ran out without a refresh.
    PUBLICATION_EXPIRED = ("publication-expired", 4)
    #: An instant message for one endpoint of its recipient.
    MESSAGE = ("message", 5)
    #: What became of a sent message, for its sender.
    DELIVERY = ("delivery", 6)
    #: An endpoint's login ran out.
    ENDPOINT_EXPIRED = ("endpoint-expired", 7)


class AuthAction(_CEnum):
    """What a presentity decides for a watcher (``impp_auth_action``, RFC 5025
    sub-handling)."""

    #: The watcher sees the presentity's documents.
    ALLOW = ("allow", 1)
    #: The subscription is rejected.
    BLOCK = ("block", 2)
    #: The watcher is told it is active but sees nothing the presentity publishes.
    POLITE_BLOCK = ("polite-block", 3)
    #: The watcher waits (pending) until the presentity decides.
    CONFIRM = ("confirm", 4)
    #: The watcher is sent to another presence agent (SIP ``302``): only a rule with a target
    #: (:meth:`impp.Engine.set_redirect_rule`) or :meth:`impp.Engine.redirect` says it.
    REDIRECT = ("redirect", 5)


class SubscriptionState(_CEnum):
    """The state of a subscription (``impp_subscription_state``, RFC 6665)."""

    PENDING = ("pending", 1)
    ACTIVE = ("active", 2)
    TERMINATED = ("terminated", 3)


class TerminationReason(_CEnum):
    """Why a subscription ended (``impp_reason``, the RFC 6665 ``reason`` parameter)."""

    DEACTIVATED = ("deactivated", 1)
    PROBATION = ("probation", 2)
    REJECTED = ("rejected", 3)
    TIMEOUT = ("timeout", 4)
    GIVEUP = ("giveup", 5)
    NORESOURCE = ("noresource", 6)


class DeliveryOutcome(_CEnum):
    """What became of a sent instant message (``impp_delivery_outcome``)."""

    #: An endpoint of the recipient took it.
    DELIVERED = ("delivered", 1)
    #: The recipient is offline: kept until it logs in (then ``DELIVERED``) or it expires.
    STORED = ("stored", 2)
    #: It will not be delivered; the event's ``reason`` says why.
    FAILED = ("failed", 3)


class FailureReason(_CEnum):
    """Why a message failed (``impp_failure_reason``)."""

    UNKNOWN_USER = ("unknown-user", 1)
    TOO_LARGE = ("too-large", 2)
    EXPIRED = ("expired", 3)
    REJECTED = ("rejected", 4)
    OFFLINE = ("offline", 5)
    STORAGE = ("storage", 6)
    UNREACHABLE = ("unreachable", 7)
    MAILBOX_FULL = ("mailbox-full", 8)


class Basic(_CEnum):
    """A PIDF tuple's basic status (``impp_basic``); a tuple without one has None."""

    OPEN = ("open", 1)
    CLOSED = ("closed", 2)


class UserInputState(_CEnum):
    """RPID user input (``impp_user_input``): whether the person uses the device."""

    ACTIVE = ("active", 1)
    IDLE = ("idle", 2)


class Capability(_CEnum):
    """An RFC 5196 yes/no service capability of a tuple (``impp_capability``)."""

    AUDIO = ("audio", 0)
    VIDEO = ("video", 1)
    TEXT = ("text", 2)
    MESSAGE = ("message", 3)
    APPLICATION = ("application", 4)
    CONTROL = ("control", 5)
    DATA = ("data", 6)
    AUTOMATA = ("automata", 7)
    ISFOCUS = ("isfocus", 8)


class ComposingState(_CEnum):
    """An is-composing indication's state (``impp_composing_state``, RFC 3994)."""

    ACTIVE = ("active", 1)
    IDLE = ("idle", 2)


class DocState(_CEnum):
    """Whether a watcherinfo or dialog-info document is complete or a change
    (``impp_doc_state``)."""

    FULL = ("full", 1)
    PARTIAL = ("partial", 2)


class WatcherStatus(_CEnum):
    """A watcher's status in a watcherinfo document (``impp_watcher_status``, RFC 3857)."""

    PENDING = ("pending", 1)
    ACTIVE = ("active", 2)
    WAITING = ("waiting", 3)
    TERMINATED = ("terminated", 4)


class WatcherEvent(_CEnum):
    """What last happened to a watcher (``impp_watcher_event``, RFC 3857)."""

    SUBSCRIBE = ("subscribe", 1)
    APPROVED = ("approved", 2)
    DEACTIVATED = ("deactivated", 3)
    PROBATION = ("probation", 4)
    REJECTED = ("rejected", 5)
    TIMEOUT = ("timeout", 6)
    GIVEUP = ("giveup", 7)
    NORESOURCE = ("noresource", 8)


class DialogState(_CEnum):
    """A dialog's state in a dialog-info document (``impp_dialog_state``, RFC 4235)."""

    TRYING = ("trying", 1)
    PROCEEDING = ("proceeding", 2)
    EARLY = ("early", 3)
    CONFIRMED = ("confirmed", 4)
    TERMINATED = ("terminated", 5)


class DialogEvent(_CEnum):
    """Why a dialog reached its state (``impp_dialog_event``, RFC 4235)."""

    CANCELLED = ("cancelled", 1)
    REJECTED = ("rejected", 2)
    REPLACED = ("replaced", 3)
    LOCAL_BYE = ("local-bye", 4)
    REMOTE_BYE = ("remote-bye", 5)
    ERROR = ("error", 6)
    TIMEOUT = ("timeout", 7)


class DialogDirection(_CEnum):
    """Who started a dialog (``impp_dialog_direction``, RFC 4235)."""

    #: The entity called.
    INITIATOR = ("initiator", 1)
    #: The entity was called.
    RECIPIENT = ("recipient", 2)


class Federation(_CEnum):
    """Whom a :class:`impp.SipStack` believes a request claiming an identity of a domain the
    engine does not own from (``impp_federation``; imppd ``--federation``)."""

    #: Only from a peer that speaks for that domain: a mutual-TLS peer whose certificate
    #: names it, or an address listed in ``SipStack(peers=...)``. Anyone else's SUBSCRIBE or
    #: MESSAGE "from" a user of the domain is refused ``403`` (counted as ``untrusted``).
    #: The default.
    TRUSTED = ("trusted", 1)
    #: From anyone, as SIP servers without peering did. Relaying to other domains stays for
    #: trusted peers, and other domains' users still never REGISTER or PUBLISH.
    OPEN = ("open", 2)


class Migration(_CEnum):
    """How a :class:`impp.SipStack` hands the watchers of a presentity whose registered
    device offers to serve them (``events="presence"`` in its Contact, RFC 3840) to that
    device (``impp_migration``; imppd ``--migrate``)."""

    #: Never: the stack serves every watcher. The default.
    OFF = ("off", 1)
    #: The SUBSCRIBE of an allowed watcher is proxied to the device, record-routed; watchers
    #: subscribed at the stack move at their next refresh, and come back (terminated;
    #: reason=deactivated) when the device goes.
    PROXY = ("proxy", 2)
    #: Such a SUBSCRIBE is answered ``302 Moved Temporarily`` with the device's contact.
    REDIRECT = ("redirect", 3)


class LogLevel(enum.IntEnum):
    """The levels of the library's log lines, as :mod:`logging` levels (what
    :func:`impp.set_log_level` takes). ``TRACE`` (5) has no :mod:`logging` name: the
    per-notification lines."""

    TRACE = 5
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR
