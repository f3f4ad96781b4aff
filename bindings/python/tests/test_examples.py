"""The Python examples in examples/ run, so they never rot: each is started as its own
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
        [sys.executable, str(REPO_ROOT / "examples" / name)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_presence_example():
    out = run_example("presence.py")
    assert "Parsed back: pres:alice@example.test has 2 tuples" in out, out
    assert "activities: on-the-phone" in out, out
    assert "Parsing a document without entity: Malformed" in out, out


def test_engine_example():
    out = run_example("engine.py")
    assert "authorization requested  sub=" in out, out
    assert "sip:bob@example.test sees phone=open" in out, out
    assert "publication expired      sip:alice@example.test" in out, out
    assert out.rstrip().endswith("active subscriptions: 1, publications: 0"), out
