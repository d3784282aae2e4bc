"""Discovery stepping (issue 13 item 4): ``advance_to_discovery`` pauses at exactly the batches the local
simulator's chain says match, under each reading of §5.5 the simulator can play, with control drops on."""
from __future__ import annotations

import threading
from typing import Any, List, Tuple

import pytest

from simclient import Client, CreateSession, DiscoveryStep, Timeout, program_executed
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import truth_signatures

SLOTS = 30


def truth_matches(chain: Any, pid: str, start: int, end: int) -> List[Tuple[int, int]]:
    """Every (slot, batch) whose transaction invokes ``pid``, in order (the ground truth of the pauses)."""
    out = []
    s, b = start, 0
    while True:
        found = chain.find_match([program_executed(pid)], s, b, end)
        if found is None:
            return out
        out.append((found[0], found[1]))
        s, b = found[0], found[1] + 1


def step_through(session: Any, sim: LocalSimulator, watch: str, settle: float = 1.0):
    """advance_to_discovery until Completed; returns pauses, the account read at each, all events on the way."""
    pauses, reads, seen = [], [], []
    while True:
        step = session.advance_to_discovery(timeout=30, settle=settle)
        assert isinstance(step, DiscoveryStep)
        seen.extend(step.events)
        if step.completed is not None:
            assert step.paused is None and step.batch is None and step.event is step.completed
            return pauses, reads, seen
        assert (step.paused.slot, step.paused.batch_index) == (step.batch.slot, step.batch.batch_index)
        assert step.event is step.paused and step.discovery is step.batch
        pauses.append((step.batch.slot, step.batch.batch_index))
        reads.append(session.rpc.get_account_info(watch))


def _check(sim: LocalSimulator, pid: str, start: int, end: int, pauses, reads, seen, watch: str) -> None:
    truth = truth_matches(sim.chain, pid, start, end)
    assert truth, "the range must hold matches for the test to mean anything"
    assert pauses == truth
    # at each pause the RPC shows the state before the batch (PROTOCOL §5.3)
    for (slot, batch), got in zip(pauses, reads):
        want = sim.chain.account_at(watch, slot, batch)
        assert got["data"] == want["data"] and got["lamports"] == want["lamports"]
    # nothing read on the way was dropped: the transactions of the whole range, in order
    assert [e.signature for e in seen if isinstance(e, ev.Transaction)] == truth_signatures(
        sim.chain, start, end, sim.program_ids)


@pytest.mark.parametrize("reading", ["before-idle", "after-idle", "reannounce"])
def test_single_session_pauses_at_exactly_the_matching_batches(reading: str) -> None:
    faults = FaultPlan(seed=5).drop_control_every(9).drop_subscriptions_every(40)
    with LocalSimulator(port=0, faults=faults) as sim:
        if reading == "after-idle":
            sim.discovery_after_idle_ms = 30.0
        elif reading == "reannounce":
            sim.discovery_reannounce_paused = True
        pid = sim.program_ids[2]
        watch = sim.chain.accounts_of(pid)[0]
        start = sim.first_slot + 10
        create = CreateSession(start_slot=start, slot_count=SLOTS - 1, discoveries=[program_executed(pid)])
        with Client(sim.url, sim.api_key, fast_config()).start_session(create) as session:
            session.subscribe_transactions(sim.program_ids)
            pauses, reads, seen = step_through(session, sim, watch)
        _check(sim, pid, start, start + SLOTS - 1, pauses, reads, seen, watch)
        assert sim.stats["control_drops"] >= 1 and sim.stats["subscription_drops"] >= 1


def test_sub_sessions_of_a_parallel_run_step_independently() -> None:
    with LocalSimulator(port=0, faults=FaultPlan(seed=2).drop_control_every(15)) as sim:
        pid = sim.program_ids[4]
        watch = sim.chain.accounts_of(pid)[1]
        start = sim.first_slot + 100 - SLOTS // 2  # two sub-sessions (bundles of 100 slots)
        create = CreateSession(start_slot=start, slot_count=SLOTS - 1, discoveries=[program_executed(pid)])
        with Client(sim.url, sim.api_key, fast_config()).start_parallel(create) as run:
            subs = run.sub_sessions
            assert len(subs) == 2
            results: dict = {}
            errors: list = []

            def drive(sub: Any) -> None:
                try:
                    sub.subscribe_transactions(sim.program_ids)
                    results[sub.session_id] = step_through(sub, sim, watch)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=drive, args=(s,), name=f"test-drive-{i}") for i, s in enumerate(subs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors, errors
            for sub in subs:
                lo, hi = sub.range
                _check(sim, pid, lo, hi, *results[sub.session_id], watch)
        assert sim.stats["control_drops"] >= 1


def test_events_read_by_the_caller_still_count_and_timeout_keeps_what_was_read() -> None:
    with LocalSimulator(port=0) as sim:
        pid = sim.program_ids[0]
        start = sim.first_slot
        create = CreateSession(start_slot=start, slot_count=9, discoveries=[program_executed(pid)])
        with Client(sim.url, sim.api_key, fast_config()).start_session(create) as session:
            # the caller reads the startup events itself (the first batch among them) ...
            first = None
            for event in session.events(timeout=10):
                if isinstance(event, ev.DiscoveryBatch):
                    first = event
                if isinstance(event, ev.ReadyForContinue):
                    break
            truth = truth_matches(sim.chain, pid, start, start + 9)
            assert first is not None and (first.slot, first.batch_index) == truth[0]
            # ... and the first call still pauses before that batch
            step = session.advance_to_discovery(timeout=10)
            assert (step.paused.slot, step.paused.batch_index) == truth[0]
            # a stalled server: the call times out, and the events it read are handed over by the next call
            sim.faults.stall(1.5, after_frames=3)
            with pytest.raises(Timeout, match="advance_to_discovery"):
                session.advance_to_discovery(timeout=0.3)
            step = session.advance_to_discovery(timeout=20)
            assert (step.paused.slot, step.paused.batch_index) == truth[1]
            assert any(isinstance(e, ev.Status) for e in step.events)  # statuses of the step, read before
            session.send_continue(advance_count=100)
            assert any(isinstance(e, ev.Completed) for e in session.events(timeout=20))
