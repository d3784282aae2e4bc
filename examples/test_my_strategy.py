"""Testing your own strategy offline with simclient's pytest fixtures.

simclient installs a pytest plugin (entry point ``pytest11``), so these fixtures need no import or conftest:

* ``local_simulator``: a fresh :class:`simclient.local.LocalSimulator` on a free loopback port (``local`` extra);
  ``local_simulator.chain`` is the ground truth of what it serves.
* ``local_client``: a :class:`simclient.Client` pointed at it, with timeouts suited to a loopback server.

Run it with ``python -m pytest examples/test_my_strategy.py``.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Dict

from simclient import CreateSession
from simclient import events as ev


class FailureCounter:
    """A toy "strategy": counts failed transactions per program, from Transaction events.

    Thread-safe, because ``ParallelRun.drive`` calls handlers from its worker threads."""

    def __init__(self) -> None:
        self.failures: Dict[str, int] = Counter()
        self.seen = 0
        self._lock = threading.Lock()

    def on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.Transaction):
            return
        message = event.value["transaction"]["message"]
        with self._lock:
            self.seen += 1
            if not event.success:
                for ix in message["instructions"]:
                    self.failures[message["accountKeys"][ix["programIdIndex"]]] += 1


def test_strategy_sees_every_transaction(local_simulator, local_client):
    sim = local_simulator
    start, end = sim.first_slot, sim.first_slot + 149
    strategy = FailureCounter()
    with local_client.start_session(CreateSession(start_slot=start, end_slot=end)) as session:
        session.subscribe_transactions(sim.program_ids)
        completed = session.run(advance_count=25, on_event=strategy.on_event)

    assert isinstance(completed, ev.Completed)
    truth = sim.chain.transactions(start, end, sim.program_ids)   # what the simulator served
    assert strategy.seen == len(truth)
    expected_failures = sum(1 for tx in truth if tx["meta"]["err"] is not None)
    assert sum(strategy.failures.values()) == expected_failures


def test_strategy_over_a_parallel_run(local_simulator, local_client):
    sim = local_simulator
    strategy = FailureCounter()
    with local_client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299)) as run:
        run.subscribe_transactions(sim.program_ids)
        result = run.drive(on_event=lambda sub, event: strategy.on_event(event))
        (lo, _), (_, hi) = run.sub_sessions[0].range, run.sub_sessions[-1].range
    assert not result.failures
    assert strategy.seen == len(sim.chain.transactions(lo, hi, sim.program_ids))
