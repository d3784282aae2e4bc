"""Managed single session against the local simulator (issue 4)."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from simclient import (
    AuthenticationError,
    Client,
    ConnectionLostError,
    CreateSession,
    SessionClosedError,
    SessionError,
    SubscriptionError,
)
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import assert_per_program_order, drive, truth_diff_keys, truth_signatures

SLOTS = 500


@pytest.fixture
def sim():
    with LocalSimulator(port=0) as s:
        yield s


def run_once(sim, advance_count=10, config=None, slots=SLOTS, diffs=True):
    client = Client(sim.url, sim.api_key, config or fast_config())
    create = CreateSession(start_slot=sim.first_slot, slot_count=slots - 1)
    with client.start_session(create) as session:
        session.subscribe_transactions(sim.program_ids)
        if diffs:
            session.subscribe_account_diffs(sim.program_ids)
        cap = drive(session, advance_count)
        stats = session.stats
    return cap, stats, create


@pytest.fixture(scope="module")
def baseline():
    """The fault-free run the drop tests compare with (the same under every dialect: computed once)."""
    with LocalSimulator(port=0) as s:
        return run_once(s)[0]


def test_full_run_matches_ground_truth(dialect):
    with LocalSimulator(port=0, dialect=dialect) as sim:
        check_full_run(sim)


def check_full_run(sim):
    # not a reconnect test: a generous keepalive keeps "no reconnect" true on a loaded CI machine (it runs 6 times)
    cap, stats, create = run_once(sim, advance_count=50,
                                  config=fast_config(keepalive_interval=2.0, keepalive_deadline=30.0))
    start, end = create.start_slot, create.resolved_end_slot
    assert cap.completed is not None
    assert cap.all[-1] == cap.completed, "Completed must be the last event"
    assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
    assert len(set(cap.signatures)) == len(cap.signatures)
    assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids)
    truth_values = sim.chain.transactions(start, end, sim.program_ids)
    assert [t.value for t in cap.transactions] == truth_values
    slots = [e.slot for e in cap.control if isinstance(e, ev.Slot)]
    assert slots[0] == start and all(start <= s <= end for s in slots)
    assert stats.reconnects == 0 and stats.events_delivered == len(cap.all)


def test_drops_yield_identical_events(baseline, dialect_subset):
    # An in-process simulator can run far ahead of the data plane (they share the GIL): a wide replay window keeps
    # this test about drops, not about lag (the window itself is tested below).
    faults = FaultPlan(seed=3).drop_control_every(50).drop_subscriptions_every(100)
    with LocalSimulator(port=0, faults=faults, replay_window=1000, dialect=dialect_subset) as faulty:
        cap, stats, _ = run_once(faulty)
        assert faulty.stats["control_drops"] > 0 and faulty.stats["subscription_drops"] > 0
    assert cap.control_signature() == baseline.control_signature()
    assert cap.signatures == baseline.signatures
    assert cap.diff_keys() == baseline.diff_keys()
    assert len(cap.diffs) == len(baseline.diffs)
    assert_per_program_order(cap)
    assert stats.reconnects > 0
    assert stats.control_reconnects > 0 and stats.subscription_reconnects > 0


def test_lost_continues_are_resent_exactly_once(sim):
    baseline, _, _ = run_once(sim, diffs=False)
    with LocalSimulator(port=0, faults=FaultPlan().lose_continue_every(3), replay_window=1000) as faulty:
        cap, stats, _ = run_once(faulty, diffs=False)
        assert faulty.stats["continues_lost"] > 0
        # never advanced twice: every continue the server acted on was answered
        assert faulty.stats["continues_busy_rejected"] <= stats.continues_resent
    assert cap.control_signature() == baseline.control_signature()
    assert cap.signatures == baseline.signatures
    assert stats.continues_resent >= 1


def test_replay_window_exceeded_raises_subscription_error():
    faults = FaultPlan().drop_subscriptions_every(30)
    # A window of 1 slot: a resubscribe after a drop needs slots the server no longer retains.
    with LocalSimulator(port=0, replay_window=1, faults=faults) as small:
        client = Client(small.url, small.api_key, fast_config())
        with client.start_session(CreateSession(start_slot=small.first_slot, slot_count=400)) as session:
            session.subscribe_transactions(small.program_ids)
            with pytest.raises(SubscriptionError, match="incomplete"):
                drive(session, advance_count=400)


def test_bad_api_key_fails_fast_without_retry(sim):
    client = Client(sim.url, "wrong-key", fast_config())
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=10))
    assert time.monotonic() - t0 < 1.0
    assert info.value.status == 401
    assert sim.stats["auth_rejected"] == 1  # one attempt, no reconnects
    assert "wrong-key" not in str(info.value)


def test_server_not_listening_spends_budget():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = Client(f"ws://127.0.0.1:{port}/backtest", "k", fast_config(reconnect_attempts=3))
    with pytest.raises(ConnectionLostError) as info:
        client.start_session(CreateSession(start_slot=1, slot_count=10))
    assert len(info.value.attempts) == 3


def test_terminal_error_mid_run_raises_session_error():
    faults = FaultPlan().fail_at_slot(300_000_120, "advanceSlotFailed")
    with LocalSimulator(port=0, faults=faults) as s:
        client = Client(s.url, s.api_key, fast_config())
        with client.start_session(CreateSession(start_slot=s.first_slot, slot_count=300)) as session:
            seen = []
            with pytest.raises(SessionError) as info:
                for event in session.events(timeout=10):
                    seen.append(event)
                    if isinstance(event, ev.ReadyForContinue):
                        session.send_continue(advance_count=50)
    assert info.value.error.variant == "AdvanceSlotFailed"
    assert info.value.error.fields["slot"] == 300_000_120
    assert any(isinstance(e, ev.Slot) and e.slot > s.first_slot for e in seen)


def test_garbage_frames_are_skipped_without_loss(sim, caplog):
    baseline, _, _ = run_once(sim, diffs=False)
    with LocalSimulator(port=0, faults=FaultPlan(seed=5).garbage_every(7)) as faulty:
        with caplog.at_level(logging.WARNING, logger="simclient.control"):
            cap, stats, _ = run_once(faulty, diffs=False)
        assert faulty.stats["garbage_sent"] > 0
    assert stats.frames_discarded == faulty.stats["garbage_sent"]
    assert cap.control_signature() == baseline.control_signature()
    assert cap.signatures == baseline.signatures
    assert any("undecodable" in r.getMessage() for r in caplog.records)


def test_close_from_another_thread_ends_iteration(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="simclient")
    secret = "local-dev-key"
    with LocalSimulator(port=0, api_key=secret, slot_pace_ms=20) as slow:
        client = Client(slow.url, secret, fast_config())
        session = client.start_session(CreateSession(start_slot=slow.first_slot, slot_count=5000))
        session.subscribe_transactions(slow.program_ids)
        got_slot = threading.Event()
        outcome = []

        def consume():
            try:
                for event in session.events(timeout=10):
                    if isinstance(event, ev.ReadyForContinue):
                        session.send_continue(advance_count=5000)
                    if isinstance(event, ev.Slot) and event.slot > slow.first_slot:
                        got_slot.set()
                outcome.append("ended")
            except SessionClosedError as exc:
                outcome.append(exc)

        t = threading.Thread(target=consume)
        t.start()
        assert got_slot.wait(10)
        t0 = time.monotonic()
        session.close()
        t.join(2)
        assert not t.is_alive()
        assert time.monotonic() - t0 < 2.0
        assert isinstance(outcome[0], SessionClosedError)
        alive = [th.name for th in threading.enumerate() if th.name.startswith("simclient-") and
                 th.name != "simclient-local-sim" and th.is_alive()]
        assert alive == []
        session.close()  # idempotent
    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in repr(client)


def test_no_disconnect_timeout_means_no_resume():
    s = LocalSimulator(port=0, slot_pace_ms=5).start()
    try:
        client = Client(s.url, s.api_key, fast_config())
        create = CreateSession(start_slot=s.first_slot, slot_count=2000, disconnect_timeout_secs=0)
        with client.start_session(create) as session:
            with pytest.raises(ConnectionLostError, match="cannot resume"):
                for event in session.events(timeout=10):
                    if isinstance(event, ev.ReadyForContinue):
                        session.send_continue(advance_count=2000)
                    elif isinstance(event, ev.Slot) and event.slot > s.first_slot:
                        s.stop()  # the server goes away mid-run
    finally:
        s.stop()


def test_keyboard_interrupt_in_user_loop_leaves_no_thread(sim):
    client = Client(sim.url, sim.api_key, fast_config())
    with pytest.raises(KeyboardInterrupt):
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=300)) as session:
            session.subscribe_transactions(sim.program_ids)
            session.subscribe_account_diffs(sim.program_ids[:1])
            for event in session.events(timeout=10):
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=300)
                if isinstance(event, ev.Transaction):
                    raise KeyboardInterrupt
    alive = [t.name for t in threading.enumerate()
             if t.name.startswith("simclient-") and t.name != "simclient-local-sim" and t.is_alive()]
    assert alive == []
