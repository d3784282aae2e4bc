"""In-order steps (issue 16 defect 3): a step's notifications are delivered before the event that ended the step.

The measure: drive one-slot steps with a transaction subscription and count the transactions delivered after the
``ReadyForContinue`` that ended their slot. ``FaultPlan.delay_subscriptions_ms`` makes the data plane lag the
control plane, so without the step barrier the race is reliably visible.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from simclient import Client, CreateSession, SubscriptionError
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import drive_one_slot_steps, truth_signatures

STEPS = 300


def drive_steps(sim: LocalSimulator, barrier: bool, steps: int = STEPS, diffs: bool = False,
                on_step: Optional[Any] = None) -> Dict[str, Any]:
    """``steps`` one-slot continues; returns the late count, every signature and the session's stats."""
    client = Client(sim.url, sim.api_key, fast_config(step_barrier=barrier))
    create = CreateSession(start_slot=sim.first_slot, slot_count=steps - 1)
    with client.start_session(create) as session:
        session.subscribe_transactions(sim.program_ids)
        if diffs:
            session.subscribe_account_diffs(sim.program_ids[:1])
        late, transactions = drive_one_slot_steps(session, ev.Transaction, on_step)
        stats = session.stats
    truth = truth_signatures(sim.chain, create.start_slot, create.resolved_end_slot, sim.program_ids)
    return {"late": late, "signatures": [t.signature for t in transactions], "truth": truth, "stats": stats}


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_no_transaction_after_the_step_that_contained_it(delay_ms):
    with LocalSimulator(port=0, faults=FaultPlan().delay_subscriptions_ms(delay_ms)) as sim:
        out = drive_steps(sim, barrier=True)
    assert out["late"] == 0
    assert out["signatures"] == out["truth"] and len(out["truth"]) > STEPS  # every one, in order
    # one per ReadyForContinue after each continue but the last, and the first one too when the subscription was
    # already up when it was read (a subscription not up yet owes nothing: no slot has run)
    assert STEPS - 1 <= out["stats"].step_barriers <= STEPS


def test_without_the_barrier_the_delayed_data_plane_arrives_late():
    """The control for the test above: with the knob off the same run delivers transactions late."""
    with LocalSimulator(port=0, faults=FaultPlan().delay_subscriptions_ms(5)) as sim:
        out = drive_steps(sim, barrier=False)
    assert out["late"] > len(out["truth"]) // 4, out["late"]
    assert sorted(out["signatures"]) == sorted(out["truth"])  # nothing lost, only late
    assert out["stats"].step_barriers == 0


def test_barrier_holds_across_subscription_drops():
    """A subscription that reconnects while a step ends passes the barrier only after the replay from its cursor."""
    faults = FaultPlan().delay_subscriptions_ms(2).drop_subscriptions_every(37)
    with LocalSimulator(port=0, replay_window=1000, faults=faults) as sim:
        out = drive_steps(sim, barrier=True, steps=150, diffs=True)
        drops = sim.stats["subscription_drops"]
    assert drops >= 3
    assert out["stats"].subscription_reconnects >= 3
    assert out["late"] == 0
    assert out["signatures"] == out["truth"]


def test_barrier_on_paused():
    """``Paused`` (continue_to) is a step end too."""
    with LocalSimulator(port=0, faults=FaultPlan().delay_subscriptions_ms(5)) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        start = sim.first_slot
        late = 0
        with client.start_session(CreateSession(start_slot=start, slot_count=40)) as session:
            session.subscribe_transactions(sim.program_ids)
            target = start
            paused_at: Optional[int] = None
            for event in session.events(timeout=15):
                if isinstance(event, ev.Transaction) and paused_at is not None and event.slot < paused_at:
                    late += 1
                elif isinstance(event, (ev.ReadyForContinue, ev.Paused)):
                    if isinstance(event, ev.Paused):
                        paused_at = event.slot
                    target += 2
                    if target <= start + 40:
                        session.send_continue_to(target)
                    else:
                        session.send_continue(advance_count=100)
            assert session.stats.step_barriers >= 15
    assert late == 0


def test_failed_subscription_releases_the_held_event():
    """A subscription that fails (replay window exceeded) while step ends are held does not hang the consumer: the
    error surfaces (the exact order against a held event is covered by tests/unit/test_step_barrier.py)."""
    faults = FaultPlan().delay_subscriptions_ms(2).drop_subscriptions_every(5)
    with LocalSimulator(port=0, replay_window=1, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config(backoff_initial=0.2))
        got = []
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=200)) as session:
            session.subscribe_transactions(sim.program_ids)
            with pytest.raises(SubscriptionError):
                for event in session.events(timeout=15):
                    got.append(type(event))
                    if isinstance(event, ev.ReadyForContinue):
                        session.send_continue(advance_count=20)
    assert ev.ReadyForContinue in got
    assert session.stats.step_barriers >= 1


def test_no_late_transaction_under_load():
    """Four sessions stepping at once on one simulator (threads and GIL contended), barrier on: still in order."""
    import threading

    results: list = []
    errors: list = []
    with LocalSimulator(port=0) as sim:
        def one() -> None:
            try:
                results.append(drive_steps(sim, barrier=True, steps=150, diffs=True))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=one, name=f"test-load-{i}") for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(results) == 4
    for out in results:
        assert out["late"] == 0
        assert out["signatures"] == out["truth"]
