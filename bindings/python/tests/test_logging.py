"""The library's log lines in Python's logging: logger names, levels, and a trampoline that
never lets anything reach C."""

import logging
import subprocess
import sys
import threading

import pytest

import impp
from impp import _ffi

from conftest import ALICE, BOB, PACKAGE_ROOT, drain

DESK_OPEN = (
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>open</basic></status></tuple></presence>"
)
# Its result cannot be PIDF (a tuple without its id): the engine warns and sends the
# unfiltered document.
BAD_FILTER = (
    "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'><filter id='f1'>"
    "<what><exclude>/pidf:presence/pidf:tuple/@id</exclude></what></filter></filter-set>"
)


@pytest.fixture
def library_level():
    """Puts the library's level back after the test (it is process-wide)."""
    previous = impp.set_log_level()
    yield
    impp.set_log_level(previous)


def impp_records(caplog, level=None):
    return [
        r
        for r in caplog.records
        if r.name.startswith("impp.") and (level is None or r.levelno == level)
    ]


def test_engine_lifecycle_lines_are_info_records_of_impp_engine(caplog, library_level):
    caplog.set_level(logging.INFO, logger="impp")
    impp.set_log_level()  # follow the logger's new level
    with impp.Engine(workers=3, queue_capacity=100):
        pass
    messages = [(r.name, r.levelno, r.getMessage()) for r in impp_records(caplog)]
    assert (
        "impp.engine",
        logging.INFO,
        "engine started: 3 workers, event queue capacity 100",
    ) in messages
    assert any(m.startswith("engine stopped") for _, _, m in messages)


def test_debug_lines_follow_the_level(caplog, library_level, engine):
    caplog.set_level(logging.DEBUG, logger="impp")
    impp.set_log_level(logging.INFO)
    engine.subscribe(BOB, ALICE)
    drain(engine)
    assert not impp_records(caplog, logging.DEBUG), "the library drops what it was not asked for"

    impp.set_log_level("debug")
    etag = engine.publish(ALICE, DESK_OPEN, expires=60)
    engine.authorize(engine.subscribe("sip:carol@example.test", ALICE), "allow")
    engine.advance_clock(61_000)
    drain(engine)
    debug = [r.getMessage() for r in impp_records(caplog, logging.DEBUG)]
    assert any("authorization decided: allow (was confirm)" in m for m in debug), debug
    assert any(f"publication {etag} of {ALICE} (presence) expired" in m for m in debug), debug
    assert {r.name for r in impp_records(caplog, logging.DEBUG)} == {"impp.engine.shard"}


def test_a_filter_that_cannot_apply_is_a_warning_from_a_shard_thread(caplog, library_level):
    caplog.set_level(logging.WARNING, logger="impp")
    impp.set_log_level()
    threads = set()

    class Threads(logging.Handler):
        def emit(self, record):
            threads.add(record.threadName)

    handler = Threads()
    logging.getLogger("impp").addHandler(handler)
    try:
        with impp.Engine(manual_clock=True, default_policy="allow") as engine:
            engine.publish(ALICE, DESK_OPEN)
            engine.subscribe(BOB, ALICE, filter=BAD_FILTER)
            drain(engine)
    finally:
        logging.getLogger("impp").removeHandler(handler)
    warnings = impp_records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].name == "impp.engine.subscription"
    assert "filter cannot be applied" in warnings[0].getMessage()
    assert threading.current_thread().name not in threads, "logged on the library's thread"


def test_levels_by_name_and_bad_levels(library_level):
    assert impp.set_log_level("trace") == logging.getLogger("impp").getEffectiveLevel()
    assert impp.set_log_level(logging.ERROR) == impp.TRACE
    assert impp.set_log_level("warning") == logging.ERROR
    with pytest.raises(ValueError, match="unknown log level"):
        impp.set_log_level("loud")
    with pytest.raises(TypeError):
        impp.set_log_level(2.5)
    assert [_ffi._library_level(v) for v in (0, 5, 10, 20, 30, 40, 50)] == [5, 5, 4, 3, 2, 1, 1]


def test_the_trampoline_never_raises(monkeypatch, library_level):
    def broken(target):
        raise RuntimeError("a bug in the glue")

    monkeypatch.setattr(_ffi, "_logger_for", broken)
    # Called directly: returns quietly whatever goes wrong.
    assert _ffi._on_log(2, b"impp::x", b"text", None) is None
    assert _ffi._on_log(99, None, b"\xff\xfe not utf-8", None) is None
    monkeypatch.undo()
    # A handler that raises is logging's business (handleError), not the library's.
    impp.set_log_level("info")

    class Raising(logging.Handler):
        def emit(self, record):
            raise KeyboardInterrupt("must not reach C")

    handler = Raising()
    logging.getLogger("impp").addHandler(handler)
    try:
        with impp.Engine(workers=1):
            pass
    finally:
        logging.getLogger("impp").removeHandler(handler)


def test_logger_names_come_from_the_target():
    assert _ffi._logger_for(b"impp::engine::shard").name == "impp.engine.shard"
    assert _ffi._logger_for(b"impp").name == "impp"
    assert _ffi._logger_for(b"other::thing").name == "impp.other.thing"
    assert _ffi._logger_for(None).name == "impp"


def test_the_level_at_import_follows_the_impp_logger():
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s');"
        "import impp; impp.Engine(workers=2).close()"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=str(PACKAGE_ROOT), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "impp.engine engine started: 2 workers" in run.stderr
    assert "impp.engine engine stopped" in run.stderr
