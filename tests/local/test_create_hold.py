"""FaultPlan.hold_parallel_create: validation, a release before the hold point, clear()."""
from __future__ import annotations

import pytest

from simclient import Client, CreateSession
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config


def test_after_sessions_is_checked() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="after_sessions"):
            FaultPlan().hold_parallel_create(bad)  # type: ignore[arg-type]


def test_a_release_before_the_hold_point_and_clear_both_let_the_create_through() -> None:
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        create = CreateSession(start_slot=sim.first_slot, slot_count=2 * sim.bundle_size - 1)
        for undo in (sim.faults.release_parallel_create, sim.faults.clear):
            sim.faults.hold_parallel_create(after_sessions=2)
            undo()
            with client.start_parallel(create) as run:
                assert len(run.sub_sessions) == 2
            assert not sim.faults.parallel_create_held
