"""Makes the package importable from the source tree, so `python3 -m pytest
bindings/python/tests` works from the repository root after `cargo build` without
installing anything but pytest."""

import sys
import threading
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parents[1]
if str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))

import impp  # noqa: E402  (after the path fix)

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


@pytest.fixture
def engine():
    """An engine on a manual clock whose default policy asks the presentity."""
    with impp.Engine(manual_clock=True, workers=2, domains=["example.test"]) as e:
        yield e


def drain(engine, timeout=0):
    """Every event queued so far: after engine.sync() every earlier call has queued its
    events, so there is nothing to wait for."""
    engine.sync()
    return list(engine.events(timeout=timeout))


class Collector:
    """Thread-safe list of events filled by a callback, with a bounded wait."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.events), timeout)
        assert ok, f"timed out; got {self.events}"
        return list(self.events)
