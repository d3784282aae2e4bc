"""Shared fixtures: every test must leave no simclient thread behind."""
from __future__ import annotations

import threading

import pytest

from simclient.testing import fast_config  # noqa: F401  (re-exported for tests)

_WATCHED = ("simclient-",)


def _ours() -> set:
    return {t for t in threading.enumerate() if t.name.startswith(_WATCHED) and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = _ours()
    yield
    leaked = []
    for t in _ours() - before:
        t.join(timeout=3.0)  # joined, not slept: a thread that ends releases us at once
        if t.is_alive():
            leaked.append(t.name)
    assert not leaked, f"threads still alive after the test: {leaked}"
