"""Fixtures for the local simulator's conformance tests (raw websocket-client + requests, no SDK)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List

import pytest

from simclient.local import LocalSimulator
from simclient.local.server import THREAD_NAME


def _sim_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


@pytest.fixture
def make_sim() -> Iterator[Callable[..., LocalSimulator]]:
    """Factory for started simulators (small bundles by default); stops them all and checks no thread is left."""
    before = set(threading.enumerate())
    sims: List[LocalSimulator] = []

    def make(**kwargs: Any) -> LocalSimulator:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("bundle_size", 10)
        kwargs.setdefault("num_bundles", 20)
        sim = LocalSimulator(**kwargs)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()
    assert not _sim_threads(), "simulator thread still alive after stop()"
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    for t in leftover:
        t.join(2.0)
    assert not [t for t in leftover if t.is_alive()], f"threads left behind: {leftover}"


@pytest.fixture
def sim(make_sim: Callable[..., LocalSimulator]) -> LocalSimulator:
    return make_sim()
