"""Resource hygiene: many consecutive sessions leave no threads, descriptors or memory behind."""
from __future__ import annotations

import gc
import threading

import psutil

from simclient import Client, CreateSession
from simclient.local import LocalSimulator
from simclient.testing import fast_config

from simhelpers import drive_quietly


def _snapshot():
    gc.collect()
    proc = psutil.Process()
    return threading.active_count(), proc.num_fds(), proc.memory_info().rss


def test_200_consecutive_sessions_do_not_grow_threads_fds_or_rss():
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())

        def one(i: int) -> None:
            start = sim.first_slot + (i % 50) * 20
            with client.start_session(CreateSession(start_slot=start, slot_count=9)) as session:
                session.subscribe_transactions(sim.program_ids[:1])
                drive_quietly(session, 10)

        for i in range(20):  # warm-up: caches, lazily created pools
            one(i)
        threads0, fds0, rss0 = _snapshot()
        for i in range(180):
            one(i)
        threads1, fds1, rss1 = _snapshot()
    assert threads1 == threads0
    assert fds1 <= fds0 + 2
    assert rss1 - rss0 < 25 * 1024 * 1024, f"RSS grew by {(rss1 - rss0) / 1e6:.1f} MB over 180 sessions"
