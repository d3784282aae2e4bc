"""Program logs end to end (issue 13 item 2): ``subscribe_logs`` against the local simulator's chain.

Ground truth is ``sim.chain.logs(start, end, [address])``: every transaction of the range that mentions the address,
with its ``meta.logMessages`` and ``meta.err``. The SDK delivers each address's stream once per signature; a
transaction mentioning two subscribed addresses comes once for each (``Logs.program_id`` tells them apart).
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import drive_one_slot_steps

SLOTS = 300


def truth(sim: LocalSimulator, start: int, end: int, address: str) -> List[ev.Logs]:
    return [ev.Logs(slot=r["slot"], signature=r["signature"], err=r["err"], logs=tuple(r["logs"]),
                    program_id=address) for r in sim.chain.logs(start, end, [address])]


def addresses(sim: LocalSimulator) -> List[str]:
    """Two programs and an account of the first: the account's transactions mention two subscribed addresses."""
    return [sim.program_ids[0], sim.program_ids[1], sim.chain.accounts_of(sim.program_ids[0])[0]]


def run_logs(sim: LocalSimulator, watch: Sequence[str], advance_count: int = 10, config: Any = None,
             slots: int = SLOTS, transactions: bool = False) -> Tuple[List[Any], Any, CreateSession]:
    client = Client(sim.url, sim.api_key, config or fast_config())
    create = CreateSession(start_slot=sim.first_slot, slot_count=slots - 1)
    out: List[Any] = []
    with client.start_session(create) as session:
        session.subscribe_logs(watch)
        if transactions:
            session.subscribe_transactions(sim.program_ids)
        for event in session.events(timeout=15):
            out.append(event)
            if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
                session.send_continue(advance_count=advance_count)
        stats = session.stats
    return out, stats, create


def check(sim: LocalSimulator, events: List[Any], watch: Sequence[str], start: int, end: int) -> None:
    assert isinstance(events[-1], ev.Completed), "Completed must be last (the logs are drained before it)"
    logs = [e for e in events if isinstance(e, ev.Logs)]
    keys = [e.key for e in logs]
    assert len(set(keys)) == len(keys), "a (program, signature) delivered twice"
    for address in watch:
        mine = [e for e in logs if e.program_id == address]
        assert mine == truth(sim, start, end, address), address  # every one, in order, logs and err equal
        assert mine
    assert {e.program_id for e in logs} == set(watch)


def test_logs_match_the_chain(dialect_subset):
    with LocalSimulator(port=0, dialect=dialect_subset) as sim:
        watch = addresses(sim)
        events, stats, create = run_logs(sim, watch, advance_count=50,
                                         config=fast_config(keepalive_interval=2.0, keepalive_deadline=30.0))
        check(sim, events, watch, create.start_slot, create.resolved_end_slot)
        assert stats.reconnects == 0
        # a transaction mentioning two subscribed addresses (the program and its account) comes once for each
        per_sig = Counter(e.signature for e in events if isinstance(e, ev.Logs))
        both = {r["signature"] for r in sim.chain.logs(create.start_slot, create.resolved_end_slot, [watch[2]])}
        assert both and all(per_sig[s] == 2 for s in both)
        assert any(not e.success for e in events if isinstance(e, ev.Logs))


def test_logs_equal_the_transactions_logs():
    """The same transaction through both kinds: ``Logs.logs`` / ``err`` are ``Transaction.logs`` / ``error``."""
    with LocalSimulator(port=0) as sim:
        events, _, _ = run_logs(sim, sim.program_ids, slots=60, transactions=True)
    txs = {e.signature: e for e in events if isinstance(e, ev.Transaction)}
    logs = [e for e in events if isinstance(e, ev.Logs)]
    assert len(logs) == len(txs) > 0
    for e in logs:
        assert list(e.logs) == txs[e.signature].logs and e.err == txs[e.signature].error


def test_drops_on_both_planes_give_the_same_logs(dialect_subset):
    faults = FaultPlan(seed=3).drop_control_every(50).drop_subscriptions_every(60)
    with LocalSimulator(port=0, faults=faults, replay_window=1000, dialect=dialect_subset) as sim:
        watch = addresses(sim)
        events, stats, create = run_logs(sim, watch)
        assert sim.stats["control_drops"] > 0 and sim.stats["subscription_drops"] > 0
        check(sim, events, watch, create.start_slot, create.resolved_end_slot)
    assert stats.control_reconnects > 0 and stats.subscription_reconnects > 0
    assert stats.duplicates_dropped > 0  # the inclusive replays repeated logs, and none got through


def test_parallel_run_subscribes_every_sub_session():
    with LocalSimulator(port=0, faults=FaultPlan(seed=4).drop_subscriptions_every(80), replay_window=1000) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        create = CreateSession(start_slot=sim.first_slot, slot_count=4 * sim.bundle_size - 1)
        watch = addresses(sim)
        got: Dict[str, List[Any]] = {}
        lock = threading.Lock()

        def on_event(sub: Any, event: Any) -> None:
            with lock:
                got.setdefault(sub.session_id, []).append(event)

        with client.start_parallel(create) as run:
            ranges = {s.session_id: s.range for s in run.sub_sessions}
            run.subscribe_logs(watch)
            result = run.drive(on_event=on_event, advance_count=25)
        assert sim.stats["subscription_drops"] > 0
    assert result.failures == [] and len(result.completed) == len(ranges) == 4
    for sid, (start, end) in ranges.items():
        check(sim, got[sid], watch, start, end)


def drive_steps(sim: LocalSimulator, barrier: bool, steps: int) -> Dict[str, Any]:
    """One-slot continues; counts the Logs delivered after the ReadyForContinue that ended their slot."""
    client = Client(sim.url, sim.api_key, fast_config(step_barrier=barrier))
    create = CreateSession(start_slot=sim.first_slot, slot_count=steps - 1)
    with client.start_session(create) as session:
        session.subscribe_logs(sim.program_ids[:2])
        late, delivered = drive_one_slot_steps(session, ev.Logs)
    expected = sum(len(truth(sim, create.start_slot, create.resolved_end_slot, p)) for p in sim.program_ids[:2])
    return {"late": late, "delivered": delivered, "expected": expected}


def test_a_steps_logs_arrive_before_its_ready_for_continue():
    with LocalSimulator(port=0, faults=FaultPlan().delay_subscriptions_ms(5).drop_subscriptions_every(97),
                        replay_window=1000) as sim:
        out = drive_steps(sim, barrier=True, steps=150)
        assert sim.stats["subscription_drops"] > 0
    assert out["late"] == 0
    assert len(out["delivered"]) == out["expected"] > 100


def test_without_the_barrier_delayed_logs_arrive_late():
    """The control for the test above: it can fail."""
    with LocalSimulator(port=0, faults=FaultPlan().delay_subscriptions_ms(5)) as sim:
        out = drive_steps(sim, barrier=False, steps=100)
    assert out["late"] > 0
    assert len(out["delivered"]) == out["expected"]


def test_subscribe_logs_one_socket_per_address_and_bad_input():
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=3)) as session:
            with pytest.raises(ValueError, match="program_ids"):
                session.subscribe_logs([])
            with pytest.raises(ValueError, match="'nope' is not a base58 address"):
                session.subscribe_logs([sim.program_ids[0], "nope"])
            p = sim.program_ids[0]
            session.subscribe_logs([p, p, sim.program_ids[1]])  # a repeat is one subscription
            names = sorted(t.name for t in session._threads())
            assert len(names) == 2 and all("-logs-" in n for n in names)
            session.run()
        assert sim.stats["subscriptions"] == 2


def test_early_subscription_complete_is_survived():
    """A logs subscribe made before the data plane is up is answered with an immediate subscriptionComplete
    (§9.5): the worker re-subscribes and nothing is lost."""
    with LocalSimulator(port=0, faults=FaultPlan().early_complete_subscribes(2)) as sim:
        watch = sim.program_ids[:2]
        events, stats, create = run_logs(sim, watch, advance_count=200, slots=150)
        assert sim.stats["early_completes_sent"] == 2
        check(sim, events, watch, create.start_slot, create.resolved_end_slot)
    assert stats.subscription_reconnects >= 2


def test_replay_window_exceeded_fails_the_logs_subscription_loudly():
    from simclient import SubscriptionError

    with LocalSimulator(port=0, replay_window=1, faults=FaultPlan().drop_subscriptions_every(30)) as sim:
        with pytest.raises(SubscriptionError, match="cannot resume from slot"):
            run_logs(sim, sim.program_ids[:1], advance_count=50, slots=400)
