"""The set-up a new user runs (issue 18): the Makefile's venv and install steps (dry runs: ``make -n`` executes
nothing), the supported Python versions as stated in setup.cfg and the README, and CI calling the README's
commands."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from typing import List, Optional

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(target: str, venv: str, virtual_env: Optional[str]) -> List[str]:
    # (under `make test BASE_PYTHON=... VENV=...` those variables reach us through the environment: drop them)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "BASE_PYTHON", "VENV",
                        "PYTHON")}
    if virtual_env is not None:
        env["VIRTUAL_ENV"] = virtual_env
    r = subprocess.run(["make", "-n", "-C", REPO, target, f"VENV={venv}", "BASE_PYTHON=python3"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    return [line.strip() for line in r.stdout.splitlines() if line.strip() and not line.startswith("make")]


@needs_make
def test_outside_a_venv_make_creates_a_project_venv_and_installs_only_there(tmp_path) -> None:
    venv = str(tmp_path / ".venv")
    demo = _dry_run("demo", venv, None)
    assert any(line.startswith(f"python3 -m venv {venv}") for line in demo), demo
    installs = [line for line in demo if " pip install" in line]
    assert installs == [f'{venv}/bin/python -m pip install -q -e ".[local,cli]"'], demo   # no test tools
    assert demo[-1] == f"{venv}/bin/python -m simclient.demo --output-file demo-run.json"
    test = _dry_run("test", venv, None)
    assert [line for line in test if " pip install" in line] == \
        [f'{venv}/bin/python -m pip install -q -e ".[dev,local,cli]"']
    assert test[-1] == f"{venv}/bin/python -m pytest -q"
    for line in demo + test:   # nothing ever goes through the system interpreter's pip
        assert not re.match(r"^python3? -m pip", line), line


@needs_make
def test_inside_an_active_venv_make_uses_it(tmp_path) -> None:
    active = str(tmp_path / "myenv")
    os.makedirs(os.path.join(active, "bin"))
    open(os.path.join(active, "bin", "python"), "w").close()   # (make -n only checks that it exists)
    demo = _dry_run("demo", str(tmp_path / ".venv"), active)
    assert not any(" -m venv " in line for line in demo), demo
    assert f'{active}/bin/python -m pip install -q -e ".[local,cli]"' in demo
    assert demo[-1].startswith(f"{active}/bin/python -m simclient.demo")


def test_supported_python_versions_are_stated_and_agree() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    requires = cfg["options"]["python_requires"].strip()
    oldest = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert oldest, requires
    minors = sorted(int(m) for m in re.findall(r"Programming Language :: Python :: 3\.(\d+)",
                                               cfg["metadata"]["classifiers"]))
    assert minors and minors[0] == int(oldest.group(1)) and minors == list(range(minors[0], minors[-1] + 1))
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert f"Python 3.{minors[0]} to 3.{minors[-1]}" in readme
    assert "python3-venv" in readme   # what Debian's externally managed python3 needs for the venv


def test_ci_runs_the_readme_commands_and_the_oldest_python() -> None:
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        script = f.read()
    commands = [line.strip() for line in script.splitlines() if line.strip().startswith("make ")]
    assert commands[:3] == ["make lint", "make test", "make demo"]
    assert any("python3.9" in line or "$py39" in line for line in commands[3:]), commands
    assert "pip install" not in script   # the Makefile installs, into a venv
