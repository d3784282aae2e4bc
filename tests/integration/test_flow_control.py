"""Flow control end to end (issue 12): against the local simulator a small ``max_buffered_events`` splits one user
continue into several wire continues, delivers exactly the events of an unsplit run, and shows the user one step;
``ParallelRun.drive()`` uses it too."""
from __future__ import annotations

from collections import Counter

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.local import LocalSimulator
from simclient.testing import fast_config

SLOTS = 300


@pytest.fixture
def sim():
    with LocalSimulator(port=0) as s:
        yield s


def _single(sim, max_events):
    client = Client(sim.url, sim.api_key, fast_config(max_buffered_events=max_events))
    before = sim.stats["continues_received"]
    kinds: Counter = Counter()
    sigs = []
    with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=SLOTS - 1)) as s:
        s.subscribe_transactions(sim.program_ids)
        s.subscribe_account_diffs(sim.program_ids[:2])
        for event in s.events(timeout=30):
            kinds[type(event).__name__] += 1
            if type(event) is ev.Transaction:
                sigs.append(event.signature)
            if type(event) is ev.ReadyForContinue:
                s.send_continue(advance_count=SLOTS)
        stats = s.stats
    return kinds, sigs, stats, sim.stats["continues_received"] - before


def test_windows_deliver_the_same_events_and_one_step(sim):
    off_kinds, off_sigs, off_stats, off_continues = _single(sim, 0)
    on_kinds, on_sigs, on_stats, on_continues = _single(sim, 400)
    assert off_continues == 1 and off_stats.flow_windows == 0
    assert on_stats.flow_windows >= 3                     # ~20 events per slot, 200 per window
    assert on_continues == 1 + on_stats.flow_windows      # the extra windows went over the wire
    assert on_kinds == off_kinds and on_sigs == off_sigs  # nothing lost, nothing repeated, same order
    assert on_kinds["ReadyForContinue"] == 1              # the windows' ends are hidden


def test_parallel_drive_uses_flow_control(sim):
    client = Client(sim.url, sim.api_key, fast_config(max_buffered_events=400))
    seen: Counter = Counter()
    before = sim.stats["continues_received"]
    with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=SLOTS - 1)) as run:
        run.subscribe_transactions(sim.program_ids)
        result = run.drive(on_event=lambda sub, e: seen.update([type(e).__name__]))
        windows = sum(sub.stats.flow_windows for sub in run.sub_sessions)
        subs = len(run.sub_sessions)
    assert result.ok
    assert windows > 0
    assert sim.stats["continues_received"] - before == subs + windows
    truth = sim.chain.transactions(sim.first_slot, sim.first_slot + SLOTS - 1, sim.program_ids)
    assert seen["Transaction"] == len(truth)
    assert seen["ReadyForContinue"] == subs
