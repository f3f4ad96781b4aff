"""The package is typed: ``mypy --strict`` passes over it and over the examples, and over a
client that uses the public API, where a misuse is reported (so the hints are precise, not
``Any``).

Needs mypy (``pip install mypy``). Without it these tests are skipped, unless
``IMPP_REQUIRE_MYPY=1`` (``cargo test --test python`` sets it, so CI cannot skip them).
"""

import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys

import pytest

import impp

from conftest import PACKAGE_ROOT, REPO_ROOT

# A client of the public API as a typed application would write it. Lines that end with
# "# error" must be reported by mypy, and only they.
CLIENT = '''
import asyncio
from typing import List, Optional

import impp


def describe(engine: impp.Engine) -> List[str]:
    lines: List[str] = []
    for event in engine.events(timeout=0):
        kind: impp.EventKind = event.kind
        state: Optional[impp.SubscriptionState] = event.state
        if kind is impp.EventKind.NOTIFY and isinstance(event.document, impp.Presence):
            basics: List[Optional[impp.Basic]] = [t.basic for t in event.document.tuples]
            lines.append(f"{event.presentity}: {basics} {state}")
        elif kind is impp.EventKind.MESSAGE:
            body: Optional[bytes] = event.body
            lines.append(repr(body))
        elif kind is impp.EventKind.DELIVERY:
            outcome: Optional[impp.DeliveryOutcome] = event.outcome
            lines.append(str(outcome))
    return lines


def decide(engine: impp.Engine, sub: impp.Subscription) -> None:
    engine.authorize(sub, impp.AuthAction.ALLOW)
    engine.authorize(sub.id, "polite-block")
    engine.set_rule("sip:a@example.test", "example.test", impp.AuthAction.BLOCK)
    rules: List[impp.Rule] = engine.rules("sip:a@example.test")
    action: impp.AuthAction = rules[0].action
    info: impp.SubscriptionInfo = sub.info()
    left: int = info.expires_in
    engine.authorize(sub, 3)  # error


def lists(engine: impp.Engine) -> List[str]:
    engine.set_list(
        "sip:blf@example.test",
        ["sip:a@example.test", impp.Resource("sip:b@example.test", "B"),
         impp.ListRef("sip:other@example.test")],
        packages=["dialog"],
    )
    engine.set_list(impp.ResourceList("sip:other@example.test", (impp.Resource("sip:c@x"),)))
    found: Optional[impp.ResourceList] = engine.resource_list("sip:blf@example.test")
    names: List[Optional[str]] = [r.display_name for r in engine.expand_list("sip:blf@x")]
    removed: bool = engine.remove_list("sip:other@example.test")
    engine.set_list("sip:blf@example.test", [3])  # error
    return [l.uri for l in engine.lists()]


async def wait(engine: impp.Engine) -> Optional[impp.Event]:
    async for event in engine.aevents(timeout=0.1):
        return event
    return await engine.wait_event(timeout=0.1)


def build() -> impp.Presence:
    doc = impp.Presence(
        "pres:a@example.test",
        tuples=[impp.Tuple(id="t", basic=impp.Basic.OPEN, capabilities={"audio": True})],
    )
    doc.set_capability("t", impp.Capability.VIDEO, False)
    caps: Optional[bool] = doc.capability("t", "audio")
    doc.add_tuple("u", "closed")
    version: str = impp.__version__
    try:
        impp.Presence.parse("<presence/>")
    except impp.ParseError as e:
        status: Optional[int] = e.status
    summary = impp.MessageSummary(True)
    waiting: bool = summary.messages_waiting
    composing = impp.IsComposing(impp.ComposingState.ACTIVE, refresh=60)
    composing_state: impp.ComposingState = composing.state
    level: int = impp.set_log_level(impp.LogLevel.DEBUG)
    doc.entity.upper()
    doc.tuples[0].basic.upper()  # error
    return doc


def serve(engine: impp.Engine) -> int:
    with impp.SipStack(
        engine, listen=["tls:127.0.0.1:0"],
        tls=impp.TlsFiles("server.crt", "server.key", ca=None),
        connection_limits=impp.ConnectionLimits(max_per_address=8, idle_timeout_ms=60_000),
        rate_limit=impp.RateLimit(50, burst=200),
        auth_limits=impp.AuthLimits(max_failures=5, block_ms=600_000),
        peers=["b.test=192.0.2.7"], federation=impp.Federation.OPEN,
        publishers=["192.0.2.20=example.test"],
    ) as sip:
        refused: int = sip.stats()["rate_refused"]
        impp.SipStack(engine, listen=["udp:127.0.0.1:0"], rate_limit=(50, 200))  # error
        impp.SipStack(engine, listen=["udp:127.0.0.1:0"], federation="open")
        impp.SipStack(engine, listen=["udp:127.0.0.1:0"], federation=2)  # error
        return refused
'''


def _mypy_or_skip():
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("IMPP_REQUIRE_MYPY"):
            pytest.fail("mypy is required (IMPP_REQUIRE_MYPY is set): python3 -m pip install mypy")
        pytest.skip("mypy is not installed (python3 -m pip install mypy)")


# mypy's cache goes to the Cargo target directory (ignored by git), as the library does.
CACHE = REPO_ROOT / "target" / "mypy-cache"


def _run_mypy(*paths):
    cache = CACHE
    env = dict(os.environ, MYPYPATH=str(PACKAGE_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
         "--no-error-summary", "--hide-error-context", *map(str, paths)],
        cwd=str(PACKAGE_ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_mypy_strict_passes_on_the_package_and_catches_misuse():
    _mypy_or_skip()
    # At a fixed path: mypy replays the errors of an unchanged cached module with the path
    # it had when they were found.
    client = CACHE / "client" / "impp_typing_client.py"
    client.parent.mkdir(parents=True, exist_ok=True)
    client.write_text(CLIENT)
    examples = sorted((REPO_ROOT / "examples" / "python").glob("*.py"))
    assert examples
    run = _run_mypy(PACKAGE_ROOT / "impp", *examples, client)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    # Not one error in the package itself, nor in the examples.
    assert not [line for line in lines if not line.startswith(str(client))], run.stdout + run.stderr
    # In the client, exactly the lines marked "# error".
    expected = {
        i + 1 for i, line in enumerate(CLIENT.splitlines()) if line.endswith("# error")
    }
    reported = {
        int(m.group(1)) for m in (re.match(rf"{re.escape(str(client))}:(\d+): error", line)
                                  for line in lines) if m
    }
    assert reported == expected, run.stdout + run.stderr


def test_py_typed_ships_with_the_package():
    assert (PACKAGE_ROOT / "impp" / "py.typed").is_file()
    pyproject = (PACKAGE_ROOT / "pyproject.toml").read_text()
    assert re.search(r'impp = \[[^\]]*"py\.typed"', pyproject)


def _public_members():
    for name in impp.__all__:
        obj = getattr(impp, name)
        yield name, obj
        if inspect.isclass(obj) and obj.__module__.startswith("impp"):
            for attr, value in vars(obj).items():
                if attr.startswith("_") or not (
                    inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod))
                ):
                    continue
                yield f"{name}.{attr}", value


def test_every_public_name_has_a_docstring():
    missing = []
    for name, obj in _public_members():
        if getattr(obj, "__module__", None) == "typing" or not (
            inspect.isclass(obj)
            or inspect.isfunction(obj)
            or isinstance(obj, (property, classmethod, staticmethod))
        ):
            continue  # constants and type aliases are documented by comments in their modules
        target = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
        target = target.fget if isinstance(target, property) else target
        if not (inspect.getdoc(target) or "").strip():
            missing.append(name)
    assert not missing, f"no docstring: {missing}"


def test_every_public_function_is_annotated():
    unannotated = []
    for name, obj in _public_members():
        target = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
        target = target.fget if isinstance(target, property) else target
        if not inspect.isfunction(target):
            continue
        hints = target.__annotations__
        params = [
            p for p in inspect.signature(target).parameters.values()
            if p.name not in ("self", "cls")
        ]
        if "return" not in hints or any(p.name not in hints for p in params):
            unannotated.append(name)
    assert not unannotated, f"missing annotations: {unannotated}"
