"""pytest plugin (registered through the ``pytest11`` entry point): offline fixtures for users' own tests.

    def test_my_strategy(local_simulator, local_client):
        with local_client.start_session(CreateSession(start_slot=local_simulator.first_slot, slot_count=50)) as s:
            completed = s.run()

``local_simulator`` is a :class:`simclient.local.LocalSimulator` on a free loopback port (needs the ``local``
extra); ``local_client`` is a :class:`simclient.Client` pointed at it with test-friendly timeouts.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

#: Timeouts suited to a loopback simulator: failures surface in about a second instead of minutes.
FAST_CONFIG_OVERRIDES = dict(
    connect_timeout=5.0, create_timeout=30.0, handshake_timeout=10.0, keepalive_interval=0.25,
    keepalive_deadline=1.5, backoff_initial=0.01, backoff_max=0.2, reconnect_attempts=30,
    reconnect_uptime_reset=2.0, completion_drain_timeout=8.0, eos_silence=3.0,
    close_timeout=3.0, rpc_timeout=10.0,
)


def fast_config(**changes: Any) -> Any:
    from simclient import ClientConfig

    return ClientConfig(**{**FAST_CONFIG_OVERRIDES, **changes})


@pytest.fixture
def local_simulator() -> Iterator[Any]:
    """A fresh local simulator (seed 0, bundles of 100 slots) for one test."""
    try:
        from simclient.local import LocalSimulator
    except ImportError as exc:  # pragma: no cover - depends on extras
        pytest.skip(f"the local simulator needs the 'local' extra (pip install 'simclient[local]'): {exc}")
    with LocalSimulator(port=0) as sim:
        yield sim


@pytest.fixture
def local_client(local_simulator: Any) -> Any:
    """A :class:`simclient.Client` bound to ``local_simulator`` with fast timeouts."""
    from simclient import Client

    return Client(local_simulator.url, local_simulator.api_key, fast_config())
