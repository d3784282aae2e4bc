"""Progress in Jupyter: ``auto`` picks tqdm.auto bars in a notebook kernel (stderr is no terminal there)."""
from __future__ import annotations

import io
import sys
import types

import pytest

from simclient.cli import LineRenderer, ProgressModel, TqdmRenderer, make_renderer


class ZMQInteractiveShell:  # the class name ipykernel's shell has
    pass


class TerminalInteractiveShell:
    pass


def _fake_ipython(monkeypatch, shell):
    mod = types.ModuleType("IPython")
    mod.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", mod)


def test_auto_uses_tqdm_auto_bars_in_a_notebook(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    _fake_ipython(monkeypatch, ZMQInteractiveShell())
    r = make_renderer("auto", ProgressModel(), io.StringIO())
    assert isinstance(r, TqdmRenderer)
    assert r._tqdm is tqdm_auto.tqdm


def test_auto_stays_lines_outside_a_notebook(monkeypatch):
    pytest.importorskip("tqdm")
    _fake_ipython(monkeypatch, TerminalInteractiveShell())   # IPython in a terminal, piped stderr
    assert isinstance(make_renderer("auto", ProgressModel(), io.StringIO()), LineRenderer)
    _fake_ipython(monkeypatch, None)                          # IPython imported, no shell running
    assert isinstance(make_renderer("auto", ProgressModel(), io.StringIO()), LineRenderer)
