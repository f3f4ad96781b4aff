"""The README's example runs, so it never rots."""

import contextlib
import io
import re

from conftest import PACKAGE_ROOT


def test_readme_example_runs():
    text = (PACKAGE_ROOT / "README.md").read_text()
    [code] = re.findall(r"```python\n(.*?)```", text, re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert "['open'] [Activity(name='on-the-phone', text=None)]" in out.getvalue()
