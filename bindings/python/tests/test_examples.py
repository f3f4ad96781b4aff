"""The Python examples in examples/python/ run, so they never rot: each is started as its own
program (as a newcomer would run it) with the library this test session loaded."""

import os
import subprocess
import sys

import impp
from conftest import PACKAGE_ROOT, REPO_ROOT


def run_example(name):
    env = dict(os.environ)
    env["IMPP_LIBRARY"] = str(impp.library_path)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "python" / name)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_every_example_is_tested():
    names = sorted(p.name for p in (REPO_ROOT / "examples" / "python").glob("*.py"))
    assert names == ["asyncio_watcher.py", "presence.py", "presence_bot.py"]


def test_presence_example():
    out = run_example("presence.py")
    assert f"impp {impp.__version__}" in out, out
    assert "Parsed back: pres:alice@example.test has 2 tuples" in out, out
    assert "notes=['call me']" in out, out
    assert "activities: on-the-phone" in out, out
    assert "Refused: Malformed:" in out, out
    assert "Refused: UnsafeXml:" in out, out


def test_presence_bot_example():
    out = run_example("presence_bot.py")
    assert "sip:bob@example.test asks to watch: allowed" in out, out
    assert "of sip:mallory@spam.test: terminated (rejected)" in out, out
    assert "sip:carol@example.test is told: closed ['busy with a ticket']" in out, out
    assert "The bot signs off:\n  sip:carol@example.test is told: nothing\n" in out, out
    assert out.rstrip().endswith("active subscriptions: 1, publications: 0"), out


def test_asyncio_watcher_example():
    out = run_example("asyncio_watcher.py")
    lines = out.splitlines()
    assert "sip:alice@example.test: open (at my desk)" in lines, out
    assert "sip:carol@example.test: open (working from home)" in lines, out
    assert "sip:alice@example.test: closed (lunch)" in lines, out
    assert lines.index("sip:carol@example.test: open (working from home)") < (
        len(lines) - 1 - lines[::-1].index("sip:carol@example.test: offline")
    ), out
    assert lines[-1] == "quiet for half a second: done", out
