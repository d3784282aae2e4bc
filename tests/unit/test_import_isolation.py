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


HEAVY = ("pandas", "pyarrow", "matplotlib", "numpy", "ijson")


@pytest.mark.parametrize("module", ["simclient", "simclient.results", "simclient.plot", "simclient.cli"])
def test_import_pulls_in_no_data_or_plot_library(module):
    """The `data` / `plot` extras are imported only when tables are converted or a plot is drawn (issue 14)."""
    proc = _run(f"import {module}, sys; bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}); "
                "assert not bad, bad")
    assert proc.returncode == 0, proc.stderr


def test_the_heavy_library_check_can_fail():
    pytest.importorskip("pyarrow")
    proc = _run(f"import pyarrow, simclient, sys; assert not [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]")
    assert proc.returncode != 0 and "AssertionError" in proc.stderr


@pytest.mark.parametrize("module", ["simclient", "simclient.cli", "simclient.local"])
def test_import_pulls_in_no_zstandard(module):
    """zstd on the data plane (the `zstd` extra) is imported only when a subscription asks for compression."""
    proc = _run(f"import {module}, sys; assert 'zstandard' not in sys.modules")
    assert proc.returncode == 0, proc.stderr


def test_a_zstd_config_alone_imports_no_zstandard():
    proc = _run("import simclient, sys; simclient.ClientConfig(compression='zstd'); "
                "assert 'zstandard' not in sys.modules")
    assert proc.returncode == 0, proc.stderr


def test_the_zstandard_check_can_fail():
    pytest.importorskip("zstandard")
    proc = _run("import simclient, sys; from simclient.compression import require_zstd; require_zstd(); "
                "assert 'zstandard' not in sys.modules")
    assert proc.returncode != 0 and "AssertionError" in proc.stderr


def test_core_install_has_only_the_three_runtime_dependencies():
    """`pip install simclient` alone: websocket-client, requests, tenacity; pandas/pyarrow/matplotlib in extras."""
    import configparser
    import os
    import re

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(__file__), "..", "..", "setup.cfg"))
    names = lambda text: {re.split(r"[<>=!~\[; ]", line.strip())[0].lower()  # noqa: E731
                          for line in text.splitlines() if line.strip()}
    assert names(cfg["options"]["install_requires"]) == {"websocket-client", "requests", "tenacity"}
    extras = cfg["options.extras_require"]
    assert {"pyarrow", "pandas"} <= names(extras["data"]) and "matplotlib" in names(extras["plot"])
    assert {"pyarrow", "pandas", "matplotlib"} <= names(extras["dev"])   # CI (.[dev,local,cli]) runs those tests
    assert names(extras["zstd"]) == {"zstandard"} and "zstandard" in names(extras["dev"])
