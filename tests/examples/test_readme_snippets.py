"""Every README snippet marked ``<!-- check: NAME -->`` (the line right before a ```python block) runs to
completion in a fresh interpreter: the README's examples cannot rot. Each snippet is self-contained (it starts its
own ``LocalSimulator``)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MARKED = re.compile(r"^<!-- check: ([\w.-]+) -->\n```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_snippets() -> List[Tuple[str, str]]:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        return [(m.group(1), m.group(2)) for m in _MARKED.finditer(f.read())]


def test_marked_snippets_are_found():
    names = [name for name, _ in readme_snippets()]
    assert len(names) == len(set(names)), f"duplicate snippet names: {names}"


@pytest.mark.parametrize("name,code", readme_snippets() or [("none", "")], ids=lambda v: v if "\n" not in v else "")
def test_readme_snippet_runs(name: str, code: str):
    if name == "none":
        pytest.skip("no checked snippet in README.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert r.returncode == 0, f"README snippet {name!r} failed:\n{r.stdout}\n{r.stderr}"
