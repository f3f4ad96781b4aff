"""The README examples run, so they never rot: the package's (bindings/python/README.md)
and the repository's Python quick start (README.md)."""

import contextlib
import io
import re

from conftest import PACKAGE_ROOT, REPO_ROOT


def run_python_block(path):
    text = path.read_text()
    [code] = re.findall(r"```python\n(.*?)```", text, re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(path.name), "exec"), {})
    return out.getvalue()


def test_readme_example_runs():
    out = run_python_block(PACKAGE_ROOT / "README.md")
    assert "['open'] [Activity(name='on-the-phone', text=None)]" in out, out
    assert "True" in out, out


def test_repository_readme_quick_start_runs():
    out = run_python_block(REPO_ROOT / "README.md")
    assert "bob sees [('phone', 'open')]" in out, out
    assert out.rstrip().endswith("is active"), out
