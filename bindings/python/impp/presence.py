"""Presence documents (PIDF with the RPID, data-model and capability extensions).

A :class:`Presence` owns one ``impp_presence`` handle. Everything read from it is copied
into Python objects at once, so nothing returned here borrows from the handle.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_double, c_int, c_size_t
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Union

from . import _ffi
from ._ffi import check, decode, decode_required, encode, encode_optional, lib
from .enums import Basic, Capability, UserInputState
from .errors import InvalidArgument, NotFound

__all__ = ["Presence", "Tuple", "Note", "Activity", "UserInput", "NoteLike", "TupleRef"]

_TRISTATE = {1: True, 0: False, -1: None}

#: A tuple of a :class:`Presence`, named by its index or its id.
TupleRef = Union[int, str]


class Note(NamedTuple):
    """A PIDF note: free text, optionally with its language tag (``"fr"``)."""

    text: str
    lang: Optional[str] = None


class Activity(NamedTuple):
    """An RPID activity: ``name`` is the RFC 4480 name (``"on-the-phone"``...), or
    ``"other"`` with the free text in ``text``."""

    name: str
    text: Optional[str] = None


class UserInput(NamedTuple):
    """RPID user input: whether the person uses the device (None: the document does not
    say), and when they last did (an ``xs:dateTime`` as written, or None)."""

    state: Optional[UserInputState]
    last_input: Optional[str] = None


#: A note given as its text alone or as a :class:`Note`.
NoteLike = Union[Note, str]


def _note(value: NoteLike) -> Note:
    if isinstance(value, Note):
        return value
    if isinstance(value, str):
        return Note(value)
    raise TypeError(f"a note is a str or an impp.Note, not {value!r}")


@dataclass(frozen=True, init=False)
class Tuple:
    """One tuple: a snapshot read from a :class:`Presence` (``doc.tuples``), or a
    description to build one from (``Presence(entity, tuples=[Tuple(...)])``). ``basic``
    and the keys of ``capabilities`` may be given as their tokens (``"open"``,
    ``"audio"``); ``notes`` as plain strings. Change an existing document through
    :class:`Presence` methods."""

    #: The tuple id, unique in its document.
    id: str
    #: The basic status, or None when the tuple states none.
    basic: Optional[Basic]
    #: The contact URI, or None.
    contact: Optional[str]
    #: The contact's priority between 0 and 1, or None.
    priority: Optional[float]
    #: An ``xs:dateTime`` such as ``2026-11-24T14:45:00Z``, or None.
    timestamp: Optional[str]
    #: The tuple's notes, in document order.
    notes: List[Note]
    #: The RFC 5196 capabilities the tuple states, supported (True) or not (False).
    capabilities: Dict[Capability, bool]
    #: The MIME types the tuple lists (RFC 5196 ``<type>``).
    media_types: List[str]

    def __init__(
        self,
        id: str,
        basic: Union[Basic, str, None] = None,
        contact: Optional[str] = None,
        priority: Optional[float] = None,
        timestamp: Optional[str] = None,
        notes: Iterable[NoteLike] = (),
        capabilities: Union[Mapping[Capability, bool], Mapping[str, bool]] = {},
        media_types: Iterable[str] = (),
    ) -> None:
        """Raises :class:`impp.InvalidArgument` for a ``basic`` or capability token that is
        not one."""
        init = object.__setattr__  # frozen
        init(self, "id", id)
        init(self, "basic", None if basic is None else Basic._parse(basic, "basic"))
        init(self, "contact", contact)
        init(self, "priority", priority)
        init(self, "timestamp", timestamp)
        init(self, "notes", [_note(n) for n in notes])
        init(
            self,
            "capabilities",
            {Capability._parse(c, "capability"): bool(v) for c, v in capabilities.items()},
        )
        init(self, "media_types", list(media_types))


class Presence:
    """A presence document (PIDF, ``application/pidf+xml``).

    ``Presence(entity, tuples=[Tuple(...)], notes=[...])`` builds one (both lists
    optional; notes are strings or :class:`Note` values); ``Presence.from_xml`` (alias
    ``parse``) reads PIDF. Use it as a context manager or call :meth:`close` to free it
    early."""

    __slots__ = ("_ptr", "__weakref__")
    _ptr: Any

    def __init__(
        self,
        entity: str,
        tuples: Optional[Iterable[Tuple]] = None,
        notes: Optional[Iterable[NoteLike]] = None,
    ) -> None:
        self._ptr = None
        out = _ffi.PresenceP()
        check(lib.impp_presence_new(encode(entity, "entity"), ctypes.byref(out)))
        self._ptr = out
        try:
            for t in tuples or ():
                self._add(t)
            for n in notes or ():
                note = _note(n)
                self.add_note(note.text, note.lang)
        except BaseException:
            self.close()
            raise

    def _add(self, t: Tuple) -> int:
        if not isinstance(t, Tuple):
            raise TypeError(f"tuples must be impp.Tuple values, not {t!r}")
        i = self.add_tuple(t.id, t.basic, contact=t.contact, priority=t.priority)
        if t.contact is None and t.priority is not None:
            raise InvalidArgument(f"tuple {t.id!r}: a priority needs a contact")
        if t.timestamp is not None:
            self.set_timestamp(i, t.timestamp)
        for note in t.notes:
            self.add_note(note.text, note.lang, tuple=i)
        for cap, supported in t.capabilities.items():
            self.set_capability(i, cap, supported)
        for mime in t.media_types:
            self.add_media_type(i, mime)
        return i

    @classmethod
    def _adopt(cls, ptr: Any) -> Presence:
        self = cls.__new__(cls)
        self._ptr = ptr
        return self

    @classmethod
    def parse(
        cls,
        xml: Union[str, bytes],
        max_bytes: Optional[int] = None,
        max_depth: Optional[int] = None,
    ) -> Presence:
        """Parses a PIDF document (``max_bytes``/``max_depth``: tighter limits than the
        library's defaults). Raises :class:`impp.ParseError`: precisely
        :class:`impp.Malformed`, :class:`impp.TooLarge` or :class:`impp.UnsafeXml`
        (DOCTYPE, entities)."""
        data = _ffi.body_bytes(xml, "xml")
        out = _ffi.PresenceP()
        if max_bytes is None and max_depth is None:
            check(lib.impp_presence_parse(data, len(data), ctypes.byref(out)))
        else:
            check(
                lib.impp_presence_parse_limited(
                    data,
                    len(data),
                    64 * 1024 if max_bytes is None else max_bytes,
                    32 if max_depth is None else max_depth,
                    ctypes.byref(out),
                )
            )
        return cls._adopt(out)

    @classmethod
    def from_xml(
        cls,
        xml: Union[str, bytes],
        max_bytes: Optional[int] = None,
        max_depth: Optional[int] = None,
    ) -> Presence:
        """Same as :meth:`parse`: a document from PIDF text or bytes; raises
        :class:`impp.ParseError`."""
        return cls.parse(xml, max_bytes, max_depth)

    # --- lifetime ---

    def close(self) -> None:
        """Frees the handle; later use raises :class:`impp.InvalidArgument`. Closing twice is
        harmless."""
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            lib.impp_presence_free(ptr)

    def __enter__(self) -> Presence:
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
        return not self._ptr

    def _h(self) -> Any:
        if not self._ptr:
            raise InvalidArgument("the presence document is closed")
        return self._ptr

    def clone(self) -> Presence:
        """An independent copy."""
        out = _ffi.PresenceP()
        check(lib.impp_presence_clone(self._h(), ctypes.byref(out)))
        return Presence._adopt(out)

    def copy(self) -> Presence:
        """Same as :meth:`clone`."""
        return self.clone()

    def __copy__(self) -> Presence:
        return self.clone()

    # --- document ---

    @property
    def entity(self) -> str:
        """The presentity's URI (``pres:alice@example.test``)."""
        out = c_char_p()
        check(lib.impp_presence_entity(self._h(), ctypes.byref(out)))
        return decode_required(out.value, "entity")

    def to_xml(self) -> str:
        """The document as PIDF text (with an XML declaration)."""
        return _ffi.owned_text(lib.impp_presence_to_xml, self._h())

    def __bytes__(self) -> bytes:
        return self.to_xml().encode("utf-8")

    def __repr__(self) -> str:
        if not self._ptr:
            return "<impp.Presence closed>"
        return f"<impp.Presence {self.entity} tuples={len(self)}>"

    # --- tuples ---

    def __len__(self) -> int:
        """The number of tuples."""
        return int(lib.impp_presence_tuple_count(self._h()))

    def _index(self, ref: TupleRef) -> int:
        """A tuple index from an index or a tuple id."""
        if isinstance(ref, bool):
            raise TypeError("a tuple is named by its index (int) or id (str)")
        if isinstance(ref, int):
            return ref
        if isinstance(ref, str):
            for i in range(len(self)):
                if self._tuple_id(i) == ref:
                    return i
            raise NotFound(f"no tuple with id {ref!r} in the document")
        raise TypeError(f"a tuple is named by its index (int) or id (str), not {ref!r}")

    def _tuple_id(self, index: int) -> str:
        out = c_char_p()
        check(lib.impp_presence_tuple_id(self._h(), index, ctypes.byref(out)))
        return decode_required(out.value, "tuple id")

    def add_tuple(
        self,
        id: str,
        basic: Union[Basic, str, None] = None,
        contact: Optional[str] = None,
        priority: Optional[float] = None,
    ) -> int:
        """Appends a tuple and returns its index. With a contact, the tuple is only added if
        the contact is valid too."""
        index = c_size_t()
        check(
            lib.impp_presence_add_tuple(
                self._h(),
                encode(id, "id"),
                Basic._parse_optional(basic, "basic"),
                ctypes.byref(index),
            )
        )
        if contact is not None:
            try:
                self.set_contact(index.value, contact, priority)
            except BaseException:
                lib.impp_presence_remove_tuple(self._h(), index.value)
                raise
        return index.value

    def remove_tuple(self, tuple: TupleRef) -> None:
        """Removes a tuple (by index or id); the later ones move up by one."""
        check(lib.impp_presence_remove_tuple(self._h(), self._index(tuple)))

    def set_basic(self, tuple: TupleRef, basic: Union[Basic, str, None]) -> None:
        """Sets a tuple's basic status (None removes it)."""
        value = Basic._parse_optional(basic, "basic")
        check(lib.impp_presence_tuple_set_basic(self._h(), self._index(tuple), value))

    def set_contact(
        self, tuple: TupleRef, uri: Optional[str], priority: Optional[float] = None
    ) -> None:
        """Sets the contact (None removes it); priority between 0 and 1, None for none."""
        check(
            lib.impp_presence_tuple_set_contact(
                self._h(),
                self._index(tuple),
                encode_optional(uri, "uri"),
                -1.0 if priority is None else float(priority),
            )
        )

    def set_timestamp(self, tuple: TupleRef, timestamp: Optional[str]) -> None:
        """Sets (None: removes) an ``xs:dateTime`` such as ``2026-11-24T14:45:00Z``."""
        check(
            lib.impp_presence_tuple_set_timestamp(
                self._h(), self._index(tuple), encode_optional(timestamp, "timestamp")
            )
        )

    def tuple(self, tuple: TupleRef) -> Tuple:
        """A snapshot of one tuple, by index or id."""
        return self._read_tuple(self._index(tuple))

    @property
    def tuples(self) -> List[Tuple]:
        """Snapshots of every tuple, in document order."""
        return [self._read_tuple(i) for i in range(len(self))]

    def _read_tuple(self, i: int) -> Tuple:
        h = self._h()
        basic = c_int()
        check(lib.impp_presence_tuple_basic(h, i, ctypes.byref(basic)))
        uri = c_char_p()
        prio = c_double()
        check(lib.impp_presence_tuple_contact(h, i, ctypes.byref(uri), ctypes.byref(prio)))
        stamp = c_char_p()
        check(lib.impp_presence_tuple_timestamp(h, i, ctypes.byref(stamp)))
        notes = []
        for n in range(lib.impp_presence_tuple_note_count(h, i)):
            text, lang = c_char_p(), c_char_p()
            check(lib.impp_presence_tuple_note(h, i, n, ctypes.byref(text), ctypes.byref(lang)))
            notes.append(Note(decode_required(text.value, "note"), decode(lang.value)))
        caps = {}
        for cap in Capability:
            said = c_int()
            check(lib.impp_presence_tuple_capability(h, i, cap._c, ctypes.byref(said)))
            if said.value in (0, 1):
                caps[cap] = bool(said.value)
        media = []
        for m in range(lib.impp_presence_tuple_media_type_count(h, i)):
            out = c_char_p()
            check(lib.impp_presence_tuple_media_type(h, i, m, ctypes.byref(out)))
            media.append(decode_required(out.value, "media type"))
        return Tuple(
            id=self._tuple_id(i),
            basic=Basic._from_c_optional(basic.value),
            contact=decode(uri.value),
            priority=None if prio.value < 0 else prio.value,
            timestamp=decode(stamp.value),
            notes=notes,
            capabilities=caps,
            media_types=media,
        )

    # --- notes ---

    def add_note(
        self, text: str, lang: Optional[str] = None, tuple: Optional[TupleRef] = None
    ) -> None:
        """Adds a presence-level note, or with ``tuple`` a note of that tuple."""
        t, l = encode(text, "text"), encode_optional(lang, "lang")
        if tuple is None:
            check(lib.impp_presence_add_note(self._h(), t, l))
        else:
            check(lib.impp_presence_tuple_add_note(self._h(), self._index(tuple), t, l))

    @property
    def notes(self) -> List[Note]:
        """Presence-level notes."""
        h = self._h()
        notes = []
        for n in range(lib.impp_presence_note_count(h)):
            text, lang = c_char_p(), c_char_p()
            check(lib.impp_presence_note(h, n, ctypes.byref(text), ctypes.byref(lang)))
            notes.append(Note(decode_required(text.value, "note"), decode(lang.value)))
        return notes

    def add_person_note(self, text: str, lang: Optional[str] = None) -> None:
        """Adds a note of the person (RPID ``<dm:person>``), not of a tuple."""
        check(
            lib.impp_presence_add_person_note(
                self._h(), encode(text, "text"), encode_optional(lang, "lang")
            )
        )

    @property
    def person_notes(self) -> List[Note]:
        """The person's notes (see :meth:`add_person_note`)."""
        h = self._h()
        notes = []
        for n in range(lib.impp_presence_person_note_count(h)):
            text, lang = c_char_p(), c_char_p()
            check(lib.impp_presence_person_note(h, n, ctypes.byref(text), ctypes.byref(lang)))
            notes.append(Note(decode_required(text.value, "note"), decode(lang.value)))
        return notes

    # --- person: activities, moods, user input ---

    def add_activity(self, name: str) -> None:
        """Adds an RFC 4480 activity (``"away"``, ``"busy"``, ``"on-the-phone"``, ...)."""
        check(lib.impp_presence_add_activity(self._h(), encode(name, "activity")))

    def add_other_activity(self, text: str) -> None:
        """Adds a free-text activity (RPID ``<other>``)."""
        check(lib.impp_presence_add_other_activity(self._h(), encode(text, "text")))

    def clear_activities(self) -> None:
        """Removes every activity."""
        check(lib.impp_presence_clear_activities(self._h()))

    @property
    def activities(self) -> List[Activity]:
        """The person's RPID activities, in document order."""
        h = self._h()
        found = []
        for i in range(lib.impp_presence_activity_count(h)):
            name, text = c_char_p(), c_char_p()
            check(lib.impp_presence_activity(h, i, ctypes.byref(name), ctypes.byref(text)))
            found.append(Activity(decode_required(name.value, "activity"), decode(text.value)))
        return found

    def add_mood(self, name: str) -> None:
        """Adds an RFC 4480 mood (``"happy"``, ``"stressed"``, ...)."""
        check(lib.impp_presence_add_mood(self._h(), encode(name, "mood")))

    @property
    def moods(self) -> List[str]:
        """The person's RPID moods, in document order."""
        h = self._h()
        found = []
        for i in range(lib.impp_presence_mood_count(h)):
            name = c_char_p()
            check(lib.impp_presence_mood(h, i, ctypes.byref(name)))
            found.append(decode_required(name.value, "mood"))
        return found

    @property
    def user_input(self) -> UserInput:
        """The person's RPID user input."""
        state = c_int()
        last = c_char_p()
        check(lib.impp_presence_user_input(self._h(), ctypes.byref(state), ctypes.byref(last)))
        return UserInput(UserInputState._from_c_optional(state.value), decode(last.value))

    def set_user_input(
        self, state: Union[UserInputState, str, None], last_input: Optional[str] = None
    ) -> None:
        """Sets the person's user input (``state`` None removes it) and when it was last
        active (an ``xs:dateTime``, or None)."""
        value = UserInputState._parse_optional(state, "user input")
        check(
            lib.impp_presence_set_user_input(
                self._h(), value, encode_optional(last_input, "last_input")
            )
        )

    # --- service capabilities (RFC 5196) ---

    def set_capability(
        self, tuple: TupleRef, cap: Union[Capability, str], supported: Optional[bool]
    ) -> None:
        """Declares a capability supported (True), not supported (False), or removes it
        (None)."""
        value = -1 if supported is None else int(bool(supported))
        check(
            lib.impp_presence_tuple_set_capability(
                self._h(), self._index(tuple), Capability._parse(cap, "capability")._c, value
            )
        )

    def capability(self, tuple: TupleRef, cap: Union[Capability, str]) -> Optional[bool]:
        """Whether a tuple states the capability supported (True) or not (False); None when
        it does not say."""
        out = c_int()
        check(
            lib.impp_presence_tuple_capability(
                self._h(),
                self._index(tuple),
                Capability._parse(cap, "capability")._c,
                ctypes.byref(out),
            )
        )
        return _TRISTATE[out.value]

    def add_media_type(self, tuple: TupleRef, mime: str) -> None:
        """Lists a MIME type the tuple's contact handles (RFC 5196 ``<type>``)."""
        check(
            lib.impp_presence_tuple_add_media_type(
                self._h(), self._index(tuple), encode(mime, "mime")
            )
        )

    def add_duplex(self, tuple: TupleRef, mode: str, supported: bool = True) -> None:
        """Declares a duplex mode (``full``, ``half``, ``receive-only``, ``send-only``)."""
        check(
            lib.impp_presence_tuple_add_duplex(
                self._h(), self._index(tuple), encode(mode, "mode"), bool(supported)
            )
        )

    def duplex(self, tuple: TupleRef, mode: str) -> Optional[bool]:
        """Whether a tuple states the duplex mode supported (True) or not (False); None when
        it does not say."""
        out = c_int()
        check(
            lib.impp_presence_tuple_duplex(
                self._h(), self._index(tuple), encode(mode, "mode"), ctypes.byref(out)
            )
        )
        return _TRISTATE[out.value]
