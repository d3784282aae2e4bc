"""``import simclient`` must not pull in the local simulator's server library (issue 2, "Done when")."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_simclient_imports_no_server_library():
    proc = _run("import simclient, sys; assert not any(m.startswith('aiohttp') for m in sys.modules), "
                "sorted(m for m in sys.modules if m.startswith('aiohttp'))")
    assert proc.returncode == 0, proc.stderr


def test_the_check_itself_can_fail():
    """Guard against a vacuous check: importing aiohttp explicitly is detected by the same assertion."""
    pytest.importorskip("aiohttp")
    proc = _run("import aiohttp, simclient, sys; assert not any(m.startswith('aiohttp') for m in sys.modules)")
    assert proc.returncode != 0
    assert "AssertionError" in proc.stderr
