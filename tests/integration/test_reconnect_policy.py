"""The reconnect supervisor against the local simulator (issue 16, defects 1, 4 and 5).

A flapping link (the handshake is answered, then the connection closes at once) must spend the budget; a link that
drops often but makes progress between drops must never spend it; a create nobody answers is one attempt.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Dict

import pytest

from simclient import (
    Client,
    ConnectionLostError,
    CreateSession,
    SimclientError,
    SubscriptionError,
    Timeout,
)
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import drive, truth_signatures

BUDGET = 3
#: budget 3, and no uptime reset within a test: only new data can reset the budget
FLAP_CONFIG = dict(reconnect_attempts=BUDGET, reconnect_uptime_reset=60.0)


def _drive_in_thread(fn: Any, limit: float) -> Dict[str, Any]:
    """Run ``fn`` on a thread joined within ``limit`` s (a storm must not hang the suite); its outcome."""
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            box["error"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=run, name="test-driver")
    thread.start()
    thread.join(limit)
    box["elapsed"] = time.monotonic() - t0
    box["alive"] = thread.is_alive()
    return box


def _single(sim: LocalSimulator, subscribe: bool = False, slots: int = 50, **config: Any) -> Any:
    client = Client(sim.url, sim.api_key, fast_config(**{**FLAP_CONFIG, **config}))
    with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=slots - 1)) as session:
        if subscribe:
            session.subscribe_transactions(sim.program_ids)
        return drive(session, 1, timeout=10.0)


def test_flapping_control_spends_the_budget() -> None:
    faults = FaultPlan().flap_control()
    with LocalSimulator(port=0, faults=faults) as sim:
        box = _drive_in_thread(lambda: _single(sim), 15.0)
        assert not box["alive"], "the client kept reconnecting to a flapping control endpoint"
        err = box.get("error")
        assert isinstance(err, ConnectionLostError), box
        assert box["elapsed"] < 15.0
        assert sim.stats["control_connections"] <= 8, sim.stats["control_connections"]
        assert len(err.attempts) == BUDGET
        assert [n for n, _ in err.attempts] == [1, 2, 3]
        assert "re-established" in str(err) and "1011" in str(err)
        assert sim.stats["creates_received"] == 1


def test_flapping_parallel_control_spends_the_budget() -> None:
    faults = FaultPlan().flap_control()
    with LocalSimulator(port=0, faults=faults) as sim:
        def run() -> Any:
            client = Client(sim.url, sim.api_key, fast_config(**FLAP_CONFIG))
            with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=249)) as par:
                return par.drive(advance_count=1)

        box = _drive_in_thread(run, 15.0)
        assert not box["alive"]
        result = box.get("result")
        assert result is not None and result.failures, box
        assert all("ConnectionLostError" in f.reason for f in result.failures)
        assert sim.stats["control_connections"] <= 8, sim.stats["control_connections"]


def test_flapping_subscription_spends_the_budget() -> None:
    faults = FaultPlan().flap_subscriptions()
    with LocalSimulator(port=0, faults=faults) as sim:
        box = _drive_in_thread(lambda: _single(sim, subscribe=True), 15.0)
        assert not box["alive"]
        err = box.get("error")
        assert isinstance(err, SubscriptionError), box
        assert isinstance(err.__cause__, ConnectionLostError) and len(err.__cause__.attempts) == BUDGET
        assert sim.stats["subscription_connections"] <= 8, sim.stats["subscription_connections"]
        assert "incomplete" in str(err)


@pytest.mark.parametrize("kind", ["control", "subscriptions"])
def test_a_flap_that_stops_within_the_budget_is_survived(kind: str) -> None:
    faults = FaultPlan()
    with LocalSimulator(port=0, faults=faults) as sim:
        if kind == "control":
            faults.flap_control(times=BUDGET)  # the create flaps too: then BUDGET - 1 failed re-attaches
        else:
            faults.flap_subscriptions(times=BUDGET - 1)
        cap = _single(sim, subscribe=True)
        assert cap.completed is not None
        assert cap.signatures == truth_signatures(sim.chain, sim.first_slot, sim.first_slot + 49, sim.program_ids)


@pytest.mark.parametrize("advance", [1, 20])
def test_frequent_drops_with_progress_never_spend_the_budget(advance: int) -> None:
    """A drop every 100 frames, 1,000 slots: dozens of outages, each recovered with new data, budget 3."""
    slots = 1000
    faults = FaultPlan().drop_control_every(100)
    with LocalSimulator(port=0, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config(**FLAP_CONFIG))
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=slots - 1)) as session:
            session.subscribe_transactions(sim.program_ids)
            cap = drive(session, advance, timeout=20.0)
            reconnects = session.stats.control_reconnects
        assert cap.completed is not None
        assert reconnects > BUDGET * 3 and sim.stats["control_drops"] == reconnects
        slots_seen = [e.slot for e in cap.control if isinstance(e, ev.Slot)]
        assert slots_seen == sorted(set(slots_seen))  # no replay delivered twice
        end = sim.first_slot + slots - 1
        assert cap.signatures == truth_signatures(sim.chain, sim.first_slot, end, sim.program_ids)


def test_never_answered_create_is_one_attempt_with_a_clear_timeout() -> None:
    faults = FaultPlan().ignore_creates()
    with LocalSimulator(port=0, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config(create_timeout=1.0, keepalive_interval=0.2))
        t0 = time.monotonic()
        with pytest.raises(Timeout) as info:
            client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=10))
        elapsed = time.monotonic() - t0
        assert 1.0 <= elapsed < 2.5
        assert "did not answer the create" in str(info.value)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, SimclientError)
        assert sim.stats["creates_received"] == 1 and sim.stats["control_connections"] == 1
        assert sim.stats["pings_answered"] >= 3  # the wait kept the connection alive


def test_create_dropped_mid_handshake_is_retried() -> None:
    """Only a create whose connection dropped is sent again."""
    faults = FaultPlan().ignore_creates(1, drop=True)
    with LocalSimulator(port=0, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config(**FLAP_CONFIG))
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=10)) as session:
            completed = session.run(timeout=10.0)
        assert isinstance(completed, ev.Completed)
        assert sim.stats["creates_received"] == 2 and sim.stats["creates_ignored"] == 1


def test_subscription_never_acked_makes_send_continue_time_out() -> None:
    faults = FaultPlan()
    with LocalSimulator(port=0, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=10)) as session:
            faults.ignore_subscribes()
            session.subscribe_transactions(sim.program_ids)
            for event in session.events(timeout=5.0):
                if isinstance(event, ev.ReadyForContinue):
                    t0 = time.monotonic()
                    with pytest.raises(Timeout) as info:
                        session.send_continue(advance_count=1, timeout=0.5)
                    assert 0.5 <= time.monotonic() - t0 < 1.5
                    assert "subscription" in str(info.value)
                    break
        assert sim.stats["continues_received"] == 0


def test_reconnect_deadline_ends_the_outage() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = Client(f"ws://127.0.0.1:{port}/backtest", "k",
                    fast_config(reconnect_attempts=1000, reconnect_max_total=0.5, backoff_max=0.05))
    t0 = time.monotonic()
    with pytest.raises(ConnectionLostError) as info:
        client.start_session(CreateSession(start_slot=1, slot_count=10))
    assert time.monotonic() - t0 < 2.0
    assert "reconnect_max_total=0.5s" in str(info.value) and "could not be established" in str(info.value)
    assert 1 < len(info.value.attempts) < 1000


def test_flapping_subscriptions_of_a_parallel_run_each_spend_their_budget() -> None:
    faults = FaultPlan()
    with LocalSimulator(port=0, faults=faults) as sim:
        def run() -> Any:
            client = Client(sim.url, sim.api_key, fast_config(**FLAP_CONFIG))
            with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=299)) as par:
                faults.flap_subscriptions()
                par.subscribe_transactions(sim.program_ids)
                return par.drive(advance_count=1), len(par.sub_sessions)

        box = _drive_in_thread(run, 15.0)
        assert not box["alive"]
        result, n = box["result"]
        assert len(result.failures) == n and all("SubscriptionError" in f.reason for f in result.failures)
        assert sim.stats["subscription_connections"] <= BUDGET * n  # each: budget 3, no storm
