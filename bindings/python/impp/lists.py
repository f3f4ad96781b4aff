"""Resource lists (RFC 4826, served by an RFC 4662 list server): a URI that stands for
several resources, so that one subscription to it watches them all (a desk phone's busy-lamp
panel, a team's buddy list).

A :class:`ResourceList` is plain data; :meth:`impp.Engine.set_list` checks it (the library's
rules: at most 500 entries, no resource or reference twice, no list reaching itself through
references, at most 8 levels of nesting and 1000 resources once references are expanded)
and keeps it, :meth:`impp.Engine.lists` and :meth:`impp.Engine.resource_list` read lists
back, :meth:`impp.Engine.expand_list` gives a list's resources with references followed.

    engine.set_list(
        "sip:sales-blf@example.test",
        [impp.Resource("sip:alice@example.test", "Alice"), "sip:bob@example.test",
         impp.ListRef("sip:support-blf@example.test")],
        packages=["presence", "dialog"],
        display_name="Sales",
    )
"""

from __future__ import annotations

import ctypes
from typing import Any, Iterable, List, NamedTuple, Optional, Tuple, Union

from . import _ffi
from ._ffi import check, decode, decode_required, encode, encode_optional, lib

__all__ = ["EntryLike", "ListEntry", "ListRef", "Resource", "ResourceList"]


class Resource(NamedTuple):
    """A resource of a list: a URI the list's subscribers watch, and how the list names it
    (a key's label), if it does."""

    uri: str
    display_name: Optional[str] = None


class ListRef(NamedTuple):
    """A reference to another list, by its URI: every resource of that list, in its order.
    The list need not exist yet (it expands to nothing until it does)."""

    uri: str


#: An entry of a list.
ListEntry = Union[Resource, ListRef]
#: What a list's entries may be given as: a :class:`Resource`, a :class:`ListRef`, or a
#: URI (a resource without a display name).
EntryLike = Union[str, Resource, ListRef]


class ResourceList(NamedTuple):
    """A resource list: its URI, its entries in order, the event packages it serves
    (``"presence"`` and/or ``"dialog"``) and its display name."""

    uri: str
    entries: Tuple[ListEntry, ...] = ()
    packages: Tuple[str, ...] = ("presence",)
    display_name: Optional[str] = None


def _entry(entry: EntryLike) -> ListEntry:
    if isinstance(entry, (Resource, ListRef)):
        return entry
    if isinstance(entry, str):
        return Resource(entry)
    raise TypeError(f"a list entry is a URI, an impp.Resource or an impp.ListRef, not {entry!r}")


def make(
    uri: str,
    entries: Iterable[EntryLike] = (),
    packages: Optional[Iterable[str]] = None,
    display_name: Optional[str] = None,
) -> ResourceList:
    """A :class:`ResourceList` from loose arguments (entries as :data:`EntryLike`)."""
    if isinstance(packages, str):
        raise TypeError("packages is a list of package names, such as ['presence', 'dialog']")
    return ResourceList(
        uri,
        tuple(_entry(e) for e in entries),
        tuple(packages) if packages is not None else ("presence",),
        display_name,
    )


def build(resource_list: ResourceList) -> Any:
    """A new C list holding ``resource_list`` (the caller frees it with
    ``impp_resource_list_free``); a refused value raises, with nothing left allocated."""
    out = _ffi.ResourceListP()
    check(lib.impp_resource_list_new(encode(resource_list.uri, "uri"), ctypes.byref(out)))
    try:
        if resource_list.display_name is not None:
            check(
                lib.impp_resource_list_set_display_name(
                    out, encode(resource_list.display_name, "display_name")
                )
            )
        for package in resource_list.packages:
            check(lib.impp_resource_list_add_package(out, encode(package, "package")))
        for entry in resource_list.entries:
            if isinstance(entry, ListRef):
                check(lib.impp_resource_list_add_reference(out, encode(entry.uri, "list uri")))
            elif isinstance(entry, Resource):
                check(
                    lib.impp_resource_list_add_entry(
                        out,
                        encode(entry.uri, "uri"),
                        encode_optional(entry.display_name, "display_name"),
                    )
                )
            else:
                raise TypeError(f"a list entry is an impp.Resource or an impp.ListRef, not {entry!r}")
    except BaseException:
        lib.impp_resource_list_free(out)
        raise
    return out


def read(handle: Any) -> ResourceList:
    """The :class:`ResourceList` a C list holds (the handle stays the caller's)."""
    packages = []
    for i in range(lib.impp_resource_list_package_count(handle)):
        name = ctypes.c_char_p()
        check(lib.impp_resource_list_package(handle, i, ctypes.byref(name)))
        packages.append(decode_required(name.value, "package"))
    entries: List[ListEntry] = []
    for i in range(lib.impp_resource_list_entry_count(handle)):
        kind, uri, display_name = ctypes.c_int(), ctypes.c_char_p(), ctypes.c_char_p()
        check(lib.impp_resource_list_entry_kind(handle, i, ctypes.byref(kind)))
        check(lib.impp_resource_list_entry_uri(handle, i, ctypes.byref(uri)))
        check(lib.impp_resource_list_entry_display_name(handle, i, ctypes.byref(display_name)))
        if kind.value == _ffi.LIST_ENTRY_REFERENCE:
            entries.append(ListRef(decode_required(uri.value, "entry uri")))
        else:
            entries.append(
                Resource(decode_required(uri.value, "entry uri"), decode(display_name.value))
            )
    return ResourceList(
        decode_required(lib.impp_resource_list_uri(handle), "list uri"),
        tuple(entries),
        tuple(packages),
        decode(lib.impp_resource_list_display_name(handle)),
    )


def read_owned(handle: Any) -> ResourceList:
    """As :func:`read`, then frees the handle."""
    try:
        return read(handle)
    finally:
        lib.impp_resource_list_free(handle)
