"""The ctypes declarations against include/impp.h, the ABI check and the library search."""

import ctypes
import ctypes.util
import os
import re
import subprocess
import sys

import pytest

import impp
from impp import _ffi

from conftest import PACKAGE_ROOT, REPO_ROOT

HEADER = REPO_ROOT / "include" / "impp.h"
PACKAGE_DIR = PACKAGE_ROOT / "impp"


def header_functions():
    """name -> (return type, [parameter types]) for every function the header declares."""
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    found = {}
    pattern = re.compile(r"^[ \t]*(?!typedef)([A-Za-z_][\w \t*]*?)\b(impp_\w+)\s*\(([^;{]*?)\)\s*;", re.M)
    for m in pattern.finditer(text):
        ret, name, params = m.group(1).strip(), m.group(2), m.group(3).strip()
        if params in ("", "void"):
            types = []
        else:
            # Drop the parameter name: the last identifier of each declaration.
            types = [re.sub(r"\s*\b\w+$", "", p.strip()) for p in params.split(",")]
        found[name] = (ret, [" ".join(t.split()) for t in types])
    return found


_SCALARS = {
    "int": ("i", 4),
    "int32_t": ("i", 4),
    "int64_t": ("i", 8),
    "uint32_t": ("u", 4),
    "uint64_t": ("u", 8),
    "size_t": ("u", ctypes.sizeof(ctypes.c_size_t)),
    "double": ("f", 8),
    "bool": ("b", 1),
}


def c_kind(ctype):
    """A C type reduced to what the call ABI cares about: pointer, or scalar class+size."""
    ctype = ctype.replace("const ", "").strip()
    if "*" in ctype or ctype in ("impp_event_callback", "impp_free_callback", "impp_log_callback"):
        return ("p",)
    if ctype == "void":
        return None
    if ctype.startswith("enum "):
        return ("i", 4)
    return _SCALARS[ctype]


def ctypes_kind(t):
    if t is None:
        return None
    if t in (ctypes.c_char_p, ctypes.c_void_p) or issubclass(
        t, (ctypes._Pointer, ctypes._CFuncPtr)
    ):
        return ("p",)
    if t is ctypes.c_bool:
        return ("b", 1)
    if t is ctypes.c_double:
        return ("f", 8)
    signed = t(-1).value == -1
    return ("i" if signed else "u", ctypes.sizeof(t))


def used_functions():
    """Every lib.impp_* the package's sources call."""
    names = set()
    for source in PACKAGE_DIR.glob("*.py"):
        names.update(re.findall(r"\blib\.(impp_\w+)", source.read_text()))
    return names


def test_the_header_parses():
    functions = header_functions()
    assert len(functions) > 80
    assert functions["impp_engine_subscribe"][1][4] == "const struct impp_subscribe_options *"
    assert functions["impp_engine_login"][1][3] == "uint32_t"
    assert functions["impp_abi_version"] == ("uint32_t", [])


def test_every_used_function_is_declared_with_argtypes_and_restype():
    used = used_functions()
    assert "impp_engine_publish" in used and "impp_presence_parse" in used
    missing = used - set(_ffi.PROTOTYPES)
    assert not missing, f"called without a prototype: {sorted(missing)}"
    for name in used:
        fn = getattr(_ffi.lib, name)
        restype, argtypes = _ffi.PROTOTYPES[name]
        assert fn.argtypes is not None and list(fn.argtypes) == argtypes, name
        assert fn.restype is restype, name


def test_prototypes_match_the_header():
    header = header_functions()
    for name, (restype, argtypes) in _ffi.PROTOTYPES.items():
        assert name in header, f"{name} is not in include/impp.h"
        ret, params = header[name]
        assert len(argtypes) == len(params), f"{name}: {len(argtypes)} args, header has {len(params)}"
        assert ctypes_kind(restype) == c_kind(ret), f"{name}: return {restype} vs {ret}"
        for i, (mine, theirs) in enumerate(zip(argtypes, params)):
            assert ctypes_kind(mine) == c_kind(theirs), f"{name} arg {i}: {mine} vs {theirs}"
            # Owned strings coming out must stay raw pointers, or they would leak.
            if theirs == "char **":
                assert mine == ctypes.POINTER(ctypes.c_void_p), f"{name} arg {i}"


def test_every_document_function_of_the_header_is_declared():
    # A function added to the header for these handles must get a prototype here too (the
    # test above then checks it against its declaration).
    prefixes = (
        "impp_winfo_",
        "impp_dialog_info_",
        "impp_message_summary_",
        "impp_filter_set_",
        "impp_iscomposing_",
        "impp_presence_",
        "impp_event_",
        "impp_resource_list",
    )
    wanted = {name for name in header_functions() if name.startswith(prefixes)}
    assert {"impp_event_winfo", "impp_filter_set_apply", "impp_winfo_parse"} <= wanted
    missing = wanted - set(_ffi.PROTOTYPES)
    assert not missing, f"declared in include/impp.h but not in _ffi.PROTOTYPES: {sorted(missing)}"


def test_abi_version_matches_the_header():
    define = re.search(r"#define IMPP_ABI_VERSION (\d+)", HEADER.read_text())
    assert int(define.group(1)) == impp.ABI_VERSION == _ffi.lib.impp_abi_version()


def test_status_codes_match_the_header():
    codes = dict(re.findall(r"(IMPP_(?:OK|ERR_\w+)) = (-?\d+)", HEADER.read_text()))
    classes = [getattr(impp, n) for n in impp.__all__]
    errors = [
        c for c in classes
        if isinstance(c, type) and issubclass(c, impp.Error) and c.status is not None
    ]
    assert len(errors) == len(codes) - 1 == 18
    for cls in errors:
        assert int(codes[cls.status_name]) == cls.status
        assert _ffi.status_name(cls.status) == cls.status_name
        assert isinstance(cls.status, impp.Status) and cls.status.name == cls.status_name[9:]
    # Every code of the header is a member of impp.Status, by the same name.
    assert {f"IMPP_{'ERR_' if s else ''}{s.name}": str(int(s)) for s in impp.Status} == codes
    # The classes without a status: the families and the package's own InvalidState.
    assert {
        c for c in classes
        if isinstance(c, type) and issubclass(c, impp.Error) and c.status is None
    } == {impp.Error, impp.ParseError, impp.InvalidState}


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", impp.library_version())


def _import_with(env_updates):
    env = dict(os.environ, **env_updates)
    return subprocess.run(
        [sys.executable, "-c", "import impp; print(impp.library_path)"],
        cwd=str(PACKAGE_ROOT),
        env=env,
        capture_output=True,
        text=True,
    )


def test_impp_library_overrides_the_search():
    good = _import_with({"IMPP_LIBRARY": str(impp.library_path)})
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == str(impp.library_path)


def test_a_wrong_impp_library_is_a_clear_import_error(tmp_path):
    missing = tmp_path / "nowhere" / "libimpp.so"
    bad = _import_with({"IMPP_LIBRARY": str(missing)})
    assert bad.returncode != 0
    assert "ImportError" in bad.stderr and str(missing) in bad.stderr
    assert "IMPP_LIBRARY" in bad.stderr


def test_a_library_with_another_abi_is_refused(monkeypatch):
    monkeypatch.setenv("IMPP_LIBRARY", str(impp.library_path))
    monkeypatch.setattr(_ffi, "ABI_VERSION", impp.ABI_VERSION + 1)
    wanted = rf"ABI version {impp.ABI_VERSION}, this package needs {impp.ABI_VERSION + 1}"
    with pytest.raises(ImportError, match=wanted):
        _ffi._load()


def test_something_that_is_not_libimpp_is_refused(monkeypatch):
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to load")
    monkeypatch.setenv("IMPP_LIBRARY", libc)
    with pytest.raises(ImportError, match="not libimpp"):
        _ffi._load()


def test_the_build_tree_search_finds_this_checkout():
    # The search walks up from the package to the Cargo workspace root.
    found = _ffi._build_tree_candidates(PACKAGE_DIR)
    if "IMPP_LIBRARY" not in os.environ:
        assert impp.library_path in found or impp.library_path == PACKAGE_DIR / _ffi.LIBRARY_NAME
