"""The README examples run, so they never rot: the package's (bindings/python/README.md)
and the repository's Python quick start (README.md)."""

import contextlib
import io
import os
import re

from conftest import PACKAGE_ROOT, REPO_ROOT


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def run_python_block(path, index=0):
    code = python_blocks(path)[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(path.name), "exec"), {})
    return out.getvalue()


def test_readme_example_runs():
    out = run_python_block(PACKAGE_ROOT / "README.md")
    assert "[<Basic.OPEN: 'open'>] [Activity(name='on-the-phone', text=None)]" in out, out
    assert "True" in out, out


def test_repository_readme_quick_start_runs():
    out = run_python_block(REPO_ROOT / "README.md")
    assert "bob sees phone open" in out, out
    assert out.rstrip().endswith("is active"), out


def test_repository_readme_offline_message_example_runs(tmp_path):
    """The instant-message example: stored by one engine, delivered by the next on login."""
    assert len(python_blocks(REPO_ROOT / "README.md")) == 3
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example writes im.db where it runs
    try:
        out = run_python_block(REPO_ROOT / "README.md", 1)
    finally:
        os.chdir(cwd)
    assert out.splitlines() == ["message b'lunch?'", "delivery delivered"], out


def test_repository_readme_sip_stack_example_runs():
    """The SIP stack example: serves a domain on a free loopback port."""
    out = run_python_block(REPO_ROOT / "README.md", 2)
    assert out.startswith("serving example.test on udp:127.0.0.1:"), out
