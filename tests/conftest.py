"""Shared fixtures: every test must leave no simclient thread and no socket behind."""
from __future__ import annotations

import signal
import threading

import psutil
import pytest

_WATCHED = ("simclient-",)


def pytest_configure(config: pytest.Config) -> None:
    """Tests send SIGINT to CLI and server subprocesses (Ctrl-C). A suite started as a background job of a
    non-interactive shell inherits SIGINT as ignored, and so would every subprocess: give them the default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
