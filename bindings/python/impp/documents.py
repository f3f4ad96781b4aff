"""The documents of the other event packages: watcher information (``presence.winfo``),
dialog information (``dialog``, busy lamps), message summaries (``message-summary``,
voicemail lamps), and filter sets (RFC 4661, applied to presence documents); and the
is-composing indication (RFC 3994, typing indicators) sent along instant messages.

Each class owns one C handle, like :class:`impp.Presence`: use it as a context manager or
call :meth:`close` to free it early. Everything read from a handle is copied into plain
Python values at once, so nothing returned here borrows from it.
"""

from __future__ import annotations

import ctypes
from ctypes import c_bool, c_char_p, c_int, c_int64, c_size_t, c_uint32
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Type, TypeVar, Union

from . import _ffi
from ._ffi import body_bytes, check, decode, decode_required, encode, encode_optional, lib, owned_text
from .enums import (
    ComposingState,
    DialogDirection,
    DialogEvent,
    DialogState,
    DocState,
    WatcherEvent,
    WatcherStatus,
)
from .errors import InvalidArgument, NotFound
from .presence import Presence

__all__ = [
    "Watcherinfo",
    "WatcherList",
    "Watcher",
    "DialogInfo",
    "Dialog",
    "Identity",
    "MessageSummary",
    "MessageCounts",
    "FilterSet",
    "Filter",
    "IsComposing",
    "DialogRef",
]

_UINT32_MAX = 0xFFFFFFFF

#: A dialog of a :class:`DialogInfo`, named by its index or its id.
DialogRef = Union[int, str]


def _optional_seconds(value: int) -> Optional[int]:
    return None if value < 0 else value


def _count(value: int, what: str) -> int:
    """A uint32 count, refused (not wrapped by ctypes) when out of range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if not 0 <= value <= _UINT32_MAX:
        raise InvalidArgument(f"{what} must be between 0 and {_UINT32_MAX}, not {value}")
    return value


_H = TypeVar("_H", bound="_Handle")


class _Handle:
    """Lifetime of one owned C handle: close(), context manager, freed when collected."""

    __slots__ = ("_ptr", "__weakref__")
    _ptr: Any
    _FREE = ""  # name of the impp_*_free function
    _WHAT = "document"

    def __init__(self) -> None:  # pragma: no cover - subclasses create through _adopt
        self._ptr = None

    @classmethod
    def _adopt(cls: Type[_H], ptr: Any) -> _H:
        self = cls.__new__(cls)
        self._ptr = ptr
        return self

    def close(self) -> None:
        """Frees the handle; later use raises :class:`impp.InvalidArgument`. Closing twice is
        harmless."""
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            getattr(lib, self._FREE)(ptr)

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter exit the module globals may already be gone: never raise here.
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` freed the handle."""
        return not getattr(self, "_ptr", None)

    def _h(self) -> Any:
        ptr = getattr(self, "_ptr", None)
        if not ptr:
            raise InvalidArgument(f"the {self._WHAT} is closed")
        return ptr


def _parse(
    cls: Type[_H],
    fn: Callable[[bytes, int, Any], int],
    pointer_type: Callable[[], Any],
    data: Union[str, bytes],
    what: str,
) -> _H:
    raw = body_bytes(data, what)
    out = pointer_type()
    check(fn(raw, len(raw), ctypes.byref(out)))
    return cls._adopt(out)


# --- Watcher information ---


class Watcher(NamedTuple):
    """One watcher (subscription) of a watched resource."""

    #: The watcher's id in the document.
    id: str
    #: The watcher's URI.
    uri: str
    #: The subscription's status.
    status: WatcherStatus
    #: What last happened to it.
    event: WatcherEvent
    #: The watcher's display name, or None.
    display_name: Optional[str] = None
    #: Seconds the subscription has existed; None when the document does not say.
    duration: Optional[int] = None
    #: Seconds before it expires; None when the document does not say.
    expiration: Optional[int] = None


class WatcherList(NamedTuple):
    """The watchers of one resource in one event package."""

    #: The watched resource's URI.
    resource: str
    #: The event package (``"presence"``...).
    package: str
    #: Its watchers, in document order.
    watchers: List[Watcher]


class Watcherinfo(_Handle):
    """A watcher information document (``application/watcherinfo+xml``), read-only: get one
    with :meth:`parse` or from a ``presence.winfo`` notification (:meth:`Event.winfo`)."""

    __slots__ = ()
    _FREE = "impp_winfo_free"
    _WHAT = "watcherinfo document"

    def __init__(self) -> None:
        raise TypeError("a Watcherinfo comes from Watcherinfo.parse() or Event.winfo()")

    @classmethod
    def parse(cls, xml: Union[str, bytes]) -> Watcherinfo:
        """Parses a document. Raises :class:`impp.Malformed`, :class:`impp.TooLarge` or
        :class:`impp.UnsafeXml`."""
        return _parse(cls, lib.impp_winfo_parse, _ffi.WinfoP, xml, "xml")

    def to_xml(self) -> str:
        """The document as XML text."""
        return owned_text(lib.impp_winfo_to_xml, self._h())

    @property
    def version(self) -> int:
        """The document's version (RFC 3857: one more for each notification)."""
        out = c_uint32()
        check(lib.impp_winfo_version(self._h(), ctypes.byref(out)))
        return out.value

    @property
    def state(self) -> DocState:
        """Whether the document is complete or a change to the previous one."""
        out = c_int()
        check(lib.impp_winfo_state(self._h(), ctypes.byref(out)))
        return DocState._from_c(out.value)

    @property
    def lists(self) -> List[WatcherList]:
        """Every watcher list, in document order."""
        h = self._h()
        found = []
        for i in range(lib.impp_winfo_list_count(h)):
            resource, package = c_char_p(), c_char_p()
            check(lib.impp_winfo_list_resource(h, i, ctypes.byref(resource)))
            check(lib.impp_winfo_list_package(h, i, ctypes.byref(package)))
            watchers = [self._watcher(i, w) for w in range(lib.impp_winfo_watcher_count(h, i))]
            found.append(
                WatcherList(
                    decode_required(resource.value, "resource"),
                    decode_required(package.value, "package"),
                    watchers,
                )
            )
        return found

    @property
    def watchers(self) -> List[Watcher]:
        """The watchers of every list, in document order."""
        return [w for wl in self.lists for w in wl.watchers]

    def _watcher(self, i: int, w: int) -> Watcher:
        h = self._h()
        wid, uri, display = c_char_p(), c_char_p(), c_char_p()
        status, event = c_int(), c_int()
        duration, expiration = c_int64(), c_int64()
        check(lib.impp_winfo_watcher_id(h, i, w, ctypes.byref(wid)))
        check(lib.impp_winfo_watcher_uri(h, i, w, ctypes.byref(uri)))
        check(lib.impp_winfo_watcher_status(h, i, w, ctypes.byref(status)))
        check(lib.impp_winfo_watcher_event(h, i, w, ctypes.byref(event)))
        check(lib.impp_winfo_watcher_display_name(h, i, w, ctypes.byref(display)))
        check(lib.impp_winfo_watcher_duration_subscribed(h, i, w, ctypes.byref(duration)))
        check(lib.impp_winfo_watcher_expiration(h, i, w, ctypes.byref(expiration)))
        return Watcher(
            id=decode_required(wid.value, "watcher id"),
            uri=decode_required(uri.value, "watcher URI"),
            status=WatcherStatus._from_c(status.value),
            event=WatcherEvent._from_c(event.value),
            display_name=decode(display.value),
            duration=_optional_seconds(duration.value),
            expiration=_optional_seconds(expiration.value),
        )

    def __repr__(self) -> str:
        if self.closed:
            return "<impp.Watcherinfo closed>"
        return f"<impp.Watcherinfo version={self.version} {self.state} lists={len(self.lists)}>"


# --- Dialog information ---


class Identity(NamedTuple):
    """A party of a dialog: its URI and display name."""

    uri: str
    display: Optional[str] = None


class Dialog(NamedTuple):
    """A snapshot of one dialog; change the document through :class:`DialogInfo` methods."""

    #: The dialog's id in the document.
    id: str
    #: Where the dialog is.
    state: DialogState
    #: Why it got there, or None.
    event: Optional[DialogEvent] = None
    #: The SIP response code behind it, or None.
    code: Optional[int] = None
    #: Who started it, or None.
    direction: Optional[DialogDirection] = None
    call_id: Optional[str] = None
    local_tag: Optional[str] = None
    remote_tag: Optional[str] = None
    local_identity: Optional[Identity] = None
    remote_identity: Optional[Identity] = None


class DialogInfo(_Handle):
    """A dialog information document (``application/dialog-info+xml``).
    ``DialogInfo(entity)`` creates an idle one (version 0, full, no dialogs);
    :meth:`parse` reads one. Publish it with ``engine.publish(presentity, info)``."""

    __slots__ = ()
    _FREE = "impp_dialog_info_free"
    _WHAT = "dialog-info document"
    PACKAGE = "dialog"

    def __init__(self, entity: str) -> None:
        self._ptr = None
        out = _ffi.DialogInfoP()
        check(lib.impp_dialog_info_new(encode(entity, "entity"), ctypes.byref(out)))
        self._ptr = out

    @classmethod
    def parse(cls, xml: Union[str, bytes]) -> DialogInfo:
        """Parses a document. Raises :class:`impp.Malformed`, :class:`impp.TooLarge` or
        :class:`impp.UnsafeXml`."""
        return _parse(cls, lib.impp_dialog_info_parse, _ffi.DialogInfoP, xml, "xml")

    def to_xml(self) -> str:
        """The document as XML text."""
        return owned_text(lib.impp_dialog_info_to_xml, self._h())

    def __bytes__(self) -> bytes:
        return self.to_xml().encode("utf-8")

    @property
    def version(self) -> int:
        """The document's version."""
        out = c_uint32()
        check(lib.impp_dialog_info_version(self._h(), ctypes.byref(out)))
        return out.value

    @property
    def state(self) -> DocState:
        """Whether the document is complete or a change to the previous one."""
        out = c_int()
        check(lib.impp_dialog_info_state(self._h(), ctypes.byref(out)))
        return DocState._from_c(out.value)

    @property
    def entity(self) -> str:
        """The URI whose dialogs the document describes."""
        out = c_char_p()
        check(lib.impp_dialog_info_entity(self._h(), ctypes.byref(out)))
        return decode_required(out.value, "entity")

    def __len__(self) -> int:
        """The number of dialogs."""
        return int(lib.impp_dialog_info_dialog_count(self._h()))

    def _index(self, ref: DialogRef) -> int:
        """A dialog index from an index or a dialog id."""
        if isinstance(ref, bool):
            raise TypeError("a dialog is named by its index (int) or id (str)")
        if isinstance(ref, int):
            return ref
        if isinstance(ref, str):
            for i in range(len(self)):
                if self._borrowed(lib.impp_dialog_info_dialog_id, i) == ref:
                    return i
            raise NotFound(f"no dialog with id {ref!r} in the document")
        raise TypeError(f"a dialog is named by its index (int) or id (str), not {ref!r}")

    def _borrowed(self, fn: Callable[[Any, int, Any], int], i: int) -> Optional[str]:
        out = c_char_p()
        check(fn(self._h(), i, ctypes.byref(out)))
        return decode(out.value)

    def _identity(self, fn: Callable[[Any, int, Any, Any], int], i: int) -> Optional[Identity]:
        uri, display = c_char_p(), c_char_p()
        check(fn(self._h(), i, ctypes.byref(uri), ctypes.byref(display)))
        if uri.value is None:
            return None
        return Identity(uri.value.decode("utf-8"), decode(display.value))

    def dialog(self, ref: DialogRef) -> Dialog:
        """A snapshot of one dialog, by index or id."""
        i = self._index(ref)
        h = self._h()
        state, event, code, direction = c_int(), c_int(), c_int(), c_int()
        check(
            lib.impp_dialog_info_dialog_state(
                h, i, ctypes.byref(state), ctypes.byref(event), ctypes.byref(code)
            )
        )
        check(lib.impp_dialog_info_dialog_direction(h, i, ctypes.byref(direction)))
        return Dialog(
            id=self._borrowed(lib.impp_dialog_info_dialog_id, i) or "",
            state=DialogState._from_c(state.value),
            event=DialogEvent._from_c_optional(event.value),
            code=None if code.value < 0 else code.value,
            direction=DialogDirection._from_c_optional(direction.value),
            call_id=self._borrowed(lib.impp_dialog_info_dialog_call_id, i),
            local_tag=self._borrowed(lib.impp_dialog_info_dialog_local_tag, i),
            remote_tag=self._borrowed(lib.impp_dialog_info_dialog_remote_tag, i),
            local_identity=self._identity(lib.impp_dialog_info_dialog_local_identity, i),
            remote_identity=self._identity(lib.impp_dialog_info_dialog_remote_identity, i),
        )

    @property
    def dialogs(self) -> List[Dialog]:
        """Snapshots of every dialog, in document order."""
        return [self.dialog(i) for i in range(len(self))]

    def add_dialog(
        self,
        id: str,
        state: Union[DialogState, str] = DialogState.TRYING,
        direction: Union[DialogDirection, str, None] = None,
        call_id: Optional[str] = None,
        remote: Optional[str] = None,
        remote_display: Optional[str] = None,
    ) -> int:
        """Appends a dialog and returns its index. The optional fields are set after it is
        added; if one is refused, the dialog is removed again and the error raised."""
        index = c_size_t()
        check(
            lib.impp_dialog_info_add_dialog(
                self._h(),
                encode(id, "id"),
                DialogState._parse(state, "state")._c,
                ctypes.byref(index),
            )
        )
        try:
            if direction is not None:
                self.set_direction(index.value, direction)
            if call_id is not None:
                self.set_call_id(index.value, call_id)
            if remote is not None:
                self.set_remote_identity(index.value, remote, remote_display)
        except BaseException:
            lib.impp_dialog_info_remove_dialog(self._h(), index.value)
            raise
        return index.value

    def remove_dialog(self, dialog: DialogRef) -> None:
        """Removes a dialog (by index or id); the later ones move up by one."""
        check(lib.impp_dialog_info_remove_dialog(self._h(), self._index(dialog)))

    def set_state(
        self,
        dialog: DialogRef,
        state: Union[DialogState, str],
        event: Union[DialogEvent, str, None] = None,
        code: Optional[int] = None,
    ) -> None:
        """Sets a dialog's state, why it got there (``"rejected"``, ``"remote-bye"``, ... or
        None) and the SIP response code behind it (100 to 699, or None)."""
        check(
            lib.impp_dialog_info_dialog_set_state(
                self._h(),
                self._index(dialog),
                DialogState._parse(state, "state")._c,
                DialogEvent._parse_optional(event, "event"),
                -1 if code is None else int(code),
            )
        )

    def set_direction(
        self, dialog: DialogRef, direction: Union[DialogDirection, str, None]
    ) -> None:
        """Sets who started the dialog: ``"initiator"`` (the entity called),
        ``"recipient"`` (it was called) or None."""
        check(
            lib.impp_dialog_info_dialog_set_direction(
                self._h(),
                self._index(dialog),
                DialogDirection._parse_optional(direction, "direction"),
            )
        )

    def set_call_id(self, dialog: DialogRef, call_id: Optional[str]) -> None:
        """Sets (None: removes) the SIP Call-ID."""
        check(
            lib.impp_dialog_info_dialog_set_call_id(
                self._h(), self._index(dialog), encode_optional(call_id, "call_id")
            )
        )

    def set_local_tag(self, dialog: DialogRef, tag: Optional[str]) -> None:
        """Sets (None: removes) the local tag of the SIP dialog."""
        check(
            lib.impp_dialog_info_dialog_set_local_tag(
                self._h(), self._index(dialog), encode_optional(tag, "tag")
            )
        )

    def set_remote_tag(self, dialog: DialogRef, tag: Optional[str]) -> None:
        """Sets (None: removes) the remote tag of the SIP dialog."""
        check(
            lib.impp_dialog_info_dialog_set_remote_tag(
                self._h(), self._index(dialog), encode_optional(tag, "tag")
            )
        )

    def set_remote_identity(
        self, dialog: DialogRef, uri: Optional[str], display: Optional[str] = None
    ) -> None:
        """Sets (``uri`` None: removes) the other party's URI and display name."""
        check(
            lib.impp_dialog_info_dialog_set_remote_identity(
                self._h(),
                self._index(dialog),
                encode_optional(uri, "uri"),
                encode_optional(display, "display"),
            )
        )

    def __repr__(self) -> str:
        if self.closed:
            return "<impp.DialogInfo closed>"
        return f"<impp.DialogInfo {self.entity} dialogs={len(self)}>"


# --- Message summaries ---


class MessageCounts(NamedTuple):
    """The counts of one message class; the urgent ones are None when not given."""

    new: int
    old: int
    urgent_new: Optional[int] = None
    urgent_old: Optional[int] = None


class MessageSummary(_Handle):
    """A message summary (``application/simple-message-summary``), the body that lights a
    voicemail lamp. ``MessageSummary(waiting)`` creates one with only the lamp state;
    :meth:`parse` reads one. Publish it with ``engine.publish(presentity, summary)``."""

    __slots__ = ()
    _FREE = "impp_message_summary_free"
    _WHAT = "message summary"
    PACKAGE = "message-summary"

    def __init__(self, messages_waiting: bool = False) -> None:
        self._ptr = None
        out = _ffi.MessageSummaryP()
        check(lib.impp_message_summary_new(bool(messages_waiting), ctypes.byref(out)))
        self._ptr = out

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> MessageSummary:
        """Parses a body. Raises :class:`impp.Malformed` or :class:`impp.TooLarge`."""
        return _parse(cls, lib.impp_message_summary_parse, _ffi.MessageSummaryP, text, "text")

    def to_text(self) -> str:
        """The body, with CRLF line ends."""
        return owned_text(lib.impp_message_summary_to_text, self._h())

    def __bytes__(self) -> bytes:
        return self.to_text().encode("utf-8")

    @property
    def messages_waiting(self) -> bool:
        """Whether the lamp should be lit (``Messages-Waiting: yes``)."""
        out = c_bool()
        check(lib.impp_message_summary_messages_waiting(self._h(), ctypes.byref(out)))
        return out.value

    @messages_waiting.setter
    def messages_waiting(self, value: bool) -> None:
        check(lib.impp_message_summary_set_messages_waiting(self._h(), bool(value)))

    @property
    def account(self) -> Optional[str]:
        """The mailbox URI (``Message-Account``), or None."""
        out = c_char_p()
        check(lib.impp_message_summary_account(self._h(), ctypes.byref(out)))
        return decode(out.value)

    @account.setter
    def account(self, uri: Optional[str]) -> None:
        check(lib.impp_message_summary_set_account(self._h(), encode_optional(uri, "account")))

    @property
    def counts(self) -> Dict[str, MessageCounts]:
        """Class name (lower case: ``"voice-message"``, ``"fax-message"``, ...) -> counts,
        in body order."""
        h = self._h()
        found: Dict[str, MessageCounts] = {}
        for i in range(lib.impp_message_summary_class_count(h)):
            name = c_char_p()
            check(lib.impp_message_summary_class_name(h, i, ctypes.byref(name)))
            new, old = c_uint32(), c_uint32()
            urgent_new, urgent_old = c_int64(), c_int64()
            check(
                lib.impp_message_summary_class_counts(
                    h,
                    i,
                    ctypes.byref(new),
                    ctypes.byref(old),
                    ctypes.byref(urgent_new),
                    ctypes.byref(urgent_old),
                )
            )
            found[decode_required(name.value, "message class")] = MessageCounts(
                new.value,
                old.value,
                _optional_seconds(urgent_new.value),
                _optional_seconds(urgent_old.value),
            )
        return found

    def set_count(self, message_class: str, new: int, old: int = 0) -> int:
        """Sets the new and old counts of a class (any case, e.g. ``"voice-message"``),
        replacing its line (without urgent counts) or appending one; returns its index."""
        index = c_size_t()
        check(
            lib.impp_message_summary_set_count(
                self._h(),
                encode(message_class, "message_class"),
                _count(new, "new"),
                _count(old, "old"),
                ctypes.byref(index),
            )
        )
        return index.value

    def set_urgent(
        self, message_class: str, urgent_new: Optional[int], urgent_old: Optional[int] = None
    ) -> None:
        """Sets the urgent counts of a class that has a count line (None: not given).
        Raises :class:`impp.NotFound` when the class has no line."""
        check(
            lib.impp_message_summary_set_urgent(
                self._h(),
                encode(message_class, "message_class"),
                -1 if urgent_new is None else _count(urgent_new, "urgent_new"),
                -1 if urgent_old is None else _count(urgent_old, "urgent_old"),
            )
        )

    def __repr__(self) -> str:
        if self.closed:
            return "<impp.MessageSummary closed>"
        return f"<impp.MessageSummary waiting={self.messages_waiting} counts={self.counts}>"


# --- Filter sets ---


class Filter(NamedTuple):
    """One filter of a set: its id and the resource or domain it applies to (or neither)."""

    #: The filter's id.
    id: str
    #: The resource it applies to, or None.
    uri: Optional[str] = None
    #: The domain it applies to, or None.
    domain: Optional[str] = None


class FilterSet(_Handle):
    """A filter document (RFC 4661 ``<filter-set>``). Every XPath expression is compiled by
    :meth:`parse`, so :meth:`apply` cannot fail on one."""

    __slots__ = ()
    _FREE = "impp_filter_set_free"
    _WHAT = "filter set"

    def __init__(self) -> None:
        raise TypeError("a FilterSet comes from FilterSet.parse()")

    @classmethod
    def parse(cls, xml: Union[str, bytes]) -> FilterSet:
        """Parses a filter document. Raises :class:`impp.Malformed`,
        :class:`impp.Unsupported` (XPath outside the implemented subset),
        :class:`impp.TooLarge` or :class:`impp.UnsafeXml`."""
        return _parse(cls, lib.impp_filter_set_parse, _ffi.FilterSetP, xml, "xml")

    def to_xml(self) -> str:
        """The filter document as XML text."""
        return owned_text(lib.impp_filter_set_to_xml, self._h())

    def __len__(self) -> int:
        """The number of filters."""
        return int(lib.impp_filter_set_filter_count(self._h()))

    @property
    def filters(self) -> List[Filter]:
        """Every filter of the set, in document order."""
        h = self._h()
        found = []
        for i in range(lib.impp_filter_set_filter_count(h)):
            fid, uri, domain = c_char_p(), c_char_p(), c_char_p()
            check(lib.impp_filter_set_filter_id(h, i, ctypes.byref(fid)))
            check(lib.impp_filter_set_filter_uri(h, i, ctypes.byref(uri)))
            check(lib.impp_filter_set_filter_domain(h, i, ctypes.byref(domain)))
            found.append(
                Filter(
                    decode_required(fid.value, "filter id"),
                    decode(uri.value),
                    decode(domain.value),
                )
            )
        return found

    def apply(self, resource: str, presence: Presence) -> Presence:
        """What a watcher of ``resource`` may see of ``presence`` under this set, as a new
        :class:`impp.Presence` (the input is only read). The filter is chosen as the engine
        chooses it; when none applies the result is a copy."""
        if not isinstance(presence, Presence):
            raise TypeError(f"presence must be an impp.Presence, not {type(presence).__name__}")
        out = _ffi.PresenceP()
        check(
            lib.impp_filter_set_apply(
                self._h(), encode(resource, "resource"), presence._h(), ctypes.byref(out)
            )
        )
        return Presence._adopt(out)

    def __repr__(self) -> str:
        if self.closed:
            return "<impp.FilterSet closed>"
        return f"<impp.FilterSet filters={[f.id for f in self.filters]}>"


# --- Is-composing indications ---


class IsComposing(_Handle):
    """An is-composing indication (``application/im-iscomposing+xml``, RFC 3994): whether
    the peer is writing a message. ``IsComposing("active", refresh=90)`` builds one;
    :meth:`parse` reads one. Send it as the body of an instant message with
    :attr:`CONTENT_TYPE`.

    A composer sends ``active`` when its user starts typing and repeats it before
    ``refresh`` seconds pass (:attr:`DEFAULT_REFRESH` when not given); it sends ``idle``,
    usually with ``last_active``, after :attr:`DEFAULT_IDLE_TIMEOUT` seconds without input.
    A receiver treats ``active`` as expired after :attr:`active_expires_after` seconds
    without a refresh."""

    __slots__ = ()
    _FREE = "impp_iscomposing_free"
    _WHAT = "is-composing document"
    CONTENT_TYPE = "application/im-iscomposing+xml"
    #: Seconds without input before a composer goes idle (RFC 3994 default).
    DEFAULT_IDLE_TIMEOUT = 15
    #: Refresh interval of an active state, in seconds, when the document gives none.
    DEFAULT_REFRESH = 120

    def __init__(
        self,
        state: Union[ComposingState, str] = ComposingState.IDLE,
        *,
        refresh: Optional[int] = None,
        content_type: Optional[str] = None,
        last_active: Optional[str] = None,
    ) -> None:
        self._ptr = None
        out = _ffi.IsComposingP()
        check(lib.impp_iscomposing_new(ComposingState._parse(state, "state")._c, ctypes.byref(out)))
        self._ptr = out
        if refresh is not None:
            self.refresh = refresh
        if content_type is not None:
            self.content_type = content_type
        if last_active is not None:
            self.last_active = last_active

    @classmethod
    def parse(cls, xml: Union[str, bytes]) -> IsComposing:
        """Parses a document. Raises :class:`impp.Malformed`, :class:`impp.TooLarge` or
        :class:`impp.UnsafeXml`."""
        return _parse(cls, lib.impp_iscomposing_parse, _ffi.IsComposingP, xml, "xml")

    def to_xml(self) -> str:
        """The document as XML text."""
        return owned_text(lib.impp_iscomposing_to_xml, self._h())

    def __bytes__(self) -> bytes:
        return self.to_xml().encode("utf-8")

    @property
    def state(self) -> ComposingState:
        """Whether the peer is composing (a member or its token when set)."""
        out = c_int()
        check(lib.impp_iscomposing_state(self._h(), ctypes.byref(out)))
        return ComposingState._from_c(out.value)

    @state.setter
    def state(self, value: Union[ComposingState, str]) -> None:
        state = ComposingState._parse(value, "state")
        check(lib.impp_iscomposing_set_state(self._h(), state._c))

    @property
    def active(self) -> bool:
        """Whether the state is ``ACTIVE``."""
        return self.state is ComposingState.ACTIVE

    @property
    def last_active(self) -> Optional[str]:
        """When the user last composed (an ``xs:dateTime`` as written), or None."""
        out = c_char_p()
        check(lib.impp_iscomposing_last_active(self._h(), ctypes.byref(out)))
        return decode(out.value)

    @last_active.setter
    def last_active(self, value: Optional[str]) -> None:
        check(
            lib.impp_iscomposing_set_last_active(
                self._h(), encode_optional(value, "last_active")
            )
        )

    @property
    def content_type(self) -> Optional[str]:
        """What is being composed (``"text/plain"``, ``"audio"``...), or None."""
        out = c_char_p()
        check(lib.impp_iscomposing_content_type(self._h(), ctypes.byref(out)))
        return decode(out.value)

    @content_type.setter
    def content_type(self, value: Optional[str]) -> None:
        check(
            lib.impp_iscomposing_set_content_type(
                self._h(), encode_optional(value, "content_type")
            )
        )

    @property
    def refresh(self) -> Optional[int]:
        """The announced refresh interval in seconds (1 or more), or None."""
        out = c_int64()
        check(lib.impp_iscomposing_refresh(self._h(), ctypes.byref(out)))
        return _optional_seconds(out.value)

    @refresh.setter
    def refresh(self, value: Optional[int]) -> None:
        if value is not None:
            _count(value, "refresh")
        check(lib.impp_iscomposing_set_refresh(self._h(), -1 if value is None else value))

    @property
    def active_expires_after(self) -> Optional[int]:
        """For an active document, the seconds after which a receiver without a refresh
        treats the sender as idle (``refresh``, or 120); None when idle."""
        out = c_int64()
        check(lib.impp_iscomposing_active_expires_after(self._h(), ctypes.byref(out)))
        return _optional_seconds(out.value)

    def __repr__(self) -> str:
        if self.closed:
            return "<impp.IsComposing closed>"
        parts = [f"state={str(self.state)!r}"]
        for name in ("refresh", "content_type", "last_active"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"<impp.IsComposing {' '.join(parts)}>"
