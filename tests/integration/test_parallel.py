"""Parallel runs over one multiplexed control socket (issue 5)."""
from __future__ import annotations

import threading
from typing import Dict, List

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.errors import ServerTooOldError
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import Captured, truth_signatures

BUNDLES = 8


def run_parallel(sim, bundles=BUNDLES, advance_count=20, max_workers=None, diffs=False, consumers=None):
    client = Client(sim.url, sim.api_key, fast_config())
    create = CreateSession(start_slot=sim.first_slot, slot_count=bundles * sim.bundle_size - 1)
    caps: Dict[str, Captured] = {}
    lock = threading.Lock()

    def on_event(sub, event):
        with lock:
            caps.setdefault(sub.session_id, Captured()).add(event)

    with client.start_parallel(create) as run:
        ranges = {s.session_id: s.range for s in run.sub_sessions}
        for sub in run.sub_sessions:
            sub.subscribe_transactions(sim.program_ids)
            if diffs:
                sub.subscribe_account_diffs(sim.program_ids)
        result = run.drive(on_event=on_event, advance_count=advance_count, max_workers=max_workers,
                           consumers=consumers)
        reconnects = run.reconnects
    return result, caps, ranges, reconnects


def by_range(caps, ranges) -> List[Captured]:
    return [caps[sid] for sid, _ in sorted(ranges.items(), key=lambda kv: kv[1])]


def check_against_truth(sim, result, caps, ranges):
    assert result.failures == []
    assert len(result.completed) == len(ranges)
    union: List[str] = []
    for sid, (start, end) in sorted(ranges.items(), key=lambda kv: kv[1]):
        cap = caps[sid]
        assert cap.completed is not None and cap.all[-1] == cap.completed
        slots = [e.slot for e in cap.control if isinstance(e, ev.Slot)]
        assert slots and all(start <= s <= end for s in slots), f"{sid} slot outside {start}..{end}"
        assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
        union.extend(cap.signatures)
    lo = min(r[0] for r in ranges.values())
    hi = max(r[1] for r in ranges.values())
    assert sorted(union) == sorted(truth_signatures(sim.chain, lo, hi, sim.program_ids))
    assert len(set(union)) == len(union)


def test_parallel_run_matches_ground_truth(dialect_subset):
    with LocalSimulator(port=0, dialect=dialect_subset) as sim:
        result, caps, ranges, _ = run_parallel(sim)
        assert len(ranges) == BUNDLES
        check_against_truth(sim, result, caps, ranges)
        # contiguous, server-authoritative bundle ranges
        spans = sorted(ranges.values())
        assert spans[0][0] == sim.first_slot
        assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))


@pytest.fixture(scope="module")
def baseline():
    """The fault-free run the fault tests compare with (the same under every dialect: computed once)."""
    with LocalSimulator(port=0) as sim:
        _, caps, ranges, _ = run_parallel(sim)
    return caps, ranges


@pytest.mark.parametrize("faults", [
    pytest.param(lambda: FaultPlan(seed=1).drop_control_every(40), id="control-drops"),
    pytest.param(lambda: FaultPlan(seed=2).lose_continue_every(5), id="lost-continues"),
])
def test_parallel_faults_give_identical_results(faults, dialect_subset, baseline):
    base_caps, base_ranges = baseline
    with LocalSimulator(port=0, faults=faults(), replay_window=1000, dialect=dialect_subset) as sim:
        result, caps, ranges, reconnects = run_parallel(sim)
        check_against_truth(sim, result, caps, ranges)
        assert sim.stats["control_drops"] + sim.stats["continues_lost"] > 0
    assert reconnects > 0
    assert sorted(ranges.values()) == sorted(base_ranges.values())
    for mine, theirs in zip(by_range(caps, ranges), by_range(base_caps, base_ranges)):
        assert mine.control_signature() == theirs.control_signature()
        assert mine.signatures == theirs.signatures


def test_events_before_sessions_created_reach_their_sub_session():
    with LocalSimulator(port=0) as sim:
        sim.early_session_events = True
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299)) as run:
            for sub in run.sub_sessions:
                first = sub.next_event(timeout=5)
                assert first == ev.Status("bundleReady")
            result = run.drive(advance_count=100)
        assert result.failures == [] and len(result.completed) == 3


def test_missing_range_arrays_fail_loudly():
    with LocalSimulator(port=0) as sim:
        sim.omit_parallel_ranges = True
        client = Client(sim.url, sim.api_key, fast_config())
        with pytest.raises(ServerTooOldError, match="too old"):
            client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299))


def test_terminal_error_is_a_failure_others_complete():
    with LocalSimulator(port=0, faults=FaultPlan().fail_at_slot(300_000_150, "advanceSlotFailed")) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=399)) as run:
            result = run.drive(advance_count=25)
    assert len(result.completed) == 3
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert failure.range == (300_000_100, 300_000_199)
    assert "AdvanceSlotFailed" in failure.reason and "\n" not in failure.reason


def test_32_sub_sessions_one_control_socket_bounded_threads():
    baseline = {t for t in threading.enumerate() if t.is_alive()}
    with LocalSimulator(port=0, create_delay_ms=100) as sim:
        base_count = threading.active_count()
        # not a reconnect test: a generous keepalive keeps "one control socket" true on a loaded CI machine
        client = Client(sim.url, sim.api_key, fast_config(keepalive_interval=2.0, keepalive_deadline=30.0))
        peak = [0]
        max_workers = 8

        def on_event(sub, event):
            peak[0] = max(peak[0], threading.active_count())

        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=32 * 100 - 1)) as run:
            assert len(run.sub_sessions) == 32
            for sub in run.sub_sessions:
                sub.subscribe_transactions(sim.program_ids)
            result = run.drive(on_event=on_event, advance_count=100, max_workers=max_workers)
        assert result.failures == [] and len(result.completed) == 32
        assert sim.stats["control_connections"] == 1
        limit = base_count + 2 + 32 * (1 + 1) + max_workers
        assert peak[0] <= limit
    leftover = [t.name for t in threading.enumerate() if t not in baseline and t.is_alive()]
    for t in [t for t in threading.enumerate() if t not in baseline]:
        t.join(3)
    leftover = [t.name for t in threading.enumerate() if t not in baseline and t.is_alive()]
    assert leftover == []


def test_grouped_consumers_match_ground_truth():
    # drive(consumers=K): K threads serve the sub-sessions interleaved; same events, same order per sub-session
    with LocalSimulator(port=0) as sim:
        result, caps, ranges, _ = run_parallel(sim, consumers=3, diffs=True)
        assert len(ranges) == BUNDLES
        check_against_truth(sim, result, caps, ranges)


def test_grouped_consumers_use_k_threads():
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        seen = set()
        lock = threading.Lock()

        def on_event(sub, event):
            with lock:
                seen.add(threading.current_thread().name)

        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=BUNDLES * 100 - 1)) as run:
            result = run.drive(on_event=on_event, advance_count=50, consumers=2)
        assert result.failures == [] and len(result.completed) == BUNDLES
        assert len(seen) == 2 and all(name.startswith("simclient-drive") for name in seen)


def test_grouped_consumers_isolate_a_failing_sub_session():
    with LocalSimulator(port=0, faults=FaultPlan().fail_at_slot(300_000_150, "advanceSlotFailed")) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=399)) as run:
            result = run.drive(advance_count=25, consumers=2)  # the failing one shares its thread with another
    assert len(result.completed) == 3
    assert [f.range for f in result.failures] == [(300_000_100, 300_000_199)]


def test_consumers_and_max_workers_are_exclusive():
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299)) as run:
            with pytest.raises(ValueError, match="not both"):
                run.drive(max_workers=2, consumers=2)
            with pytest.raises(ValueError, match="positive int"):
                run.drive(consumers=0)


def test_drop_during_parallel_create_retries_the_create():
    # The server goes silent after the first sessionCreated for longer than the keepalive deadline: the client
    # declares the link dead mid-create and must create again (the request is kept until sessionsCreatedV2).
    with LocalSimulator(port=0, faults=FaultPlan().stall(2.5, after_frames=1)) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299)) as run:
            assert len(run.sub_sessions) == 3
            result = run.drive(advance_count=100)
        assert result.failures == [] and len(result.completed) == 3
        assert sim.stats["control_connections"] >= 2
        assert sim.stats["parallel_sessions_created"] >= 2
