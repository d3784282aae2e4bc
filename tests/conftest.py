"""Shared fixtures: every test must leave no simclient thread and no socket behind."""
from __future__ import annotations

import threading

import psutil
import pytest

_WATCHED = ("simclient-",)


def _ours() -> set:
    return {t for t in threading.enumerate() if t.name.startswith(_WATCHED) and t.is_alive()}


def _sockets() -> set:
    proc = psutil.Process()
    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections(kind="inet")
    return {(c.fd, c.laddr, c.raddr) for c in conns if c.status != psutil.CONN_TIME_WAIT}


@pytest.fixture(autouse=True)
def no_leaked_threads_or_sockets():
    before = _ours()
    sockets_before = _sockets()
    yield
    leaked = []
    for t in _ours() - before:
        t.join(timeout=3.0)  # joined, not slept: a thread that ends releases us at once
        if t.is_alive():
            leaked.append(t.name)
    assert not leaked, f"threads still alive after the test: {leaked}"
    open_now = _sockets() - sockets_before
    assert not open_now, f"sockets still open after the test: {sorted(open_now, key=str)[:5]}"
