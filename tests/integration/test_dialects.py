"""Every reading of the protocol's open points (issue 11): the SDK against each simulator dialect.

Done-when of the issue: with control and subscription drops on, a single session and a parallel run with
subscriptions, each (sub-)session driven with ONE continue for its whole range that pushes one user transaction,
complete with transactions equal to the ground truth; each needed exactly one continue (the server acted on one),
and every pushed transaction was executed (recorded by the simulator). The strict (serde alias) dialect costs one
switch to the minimal ``*SessionV1`` form per control connection, counted, and nothing else.
"""
from __future__ import annotations

import logging
import threading
from typing import Dict, List

import pytest

from simclient import Client, Continue, CreateSession
from simclient import events as ev
from simclient.local import DIALECTS, FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import Captured, truth_diff_keys, truth_signatures

ALL = list(DIALECTS)


def user_tx(n: int) -> bytes:
    """A bincode-shaped user transaction (one signature): unique per n."""
    return b"\x01" + bytes([n % 256]) * 64 + b"user-transaction-%d" % n


def drive_one_continue(session, tx: bytes, timeout: float = 20.0):
    """Drive ``session`` with exactly one continue over its whole range, pushing ``tx``."""
    cap = Captured()
    start, end = session.range
    sent = 0
    for event in session.events(timeout=timeout):
        cap.add(event)
        if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
            assert sent == 0, "a second continue was asked for"
            session.send_continue(Continue(advance_count=end - start + 1).push_transaction(tx))
            sent += 1
    return cap, sent


def drop_faults(seed: int) -> FaultPlan:
    return FaultPlan(seed=seed).drop_control_every(25).drop_subscriptions_every(70)


@pytest.mark.parametrize("dialect", ALL)
def test_single_session_one_continue_under_drops(dialect):
    # Wide replay window: an in-process simulator can run far ahead of the data plane (they share the GIL).
    with LocalSimulator(port=0, dialect=dialect, faults=drop_faults(11), replay_window=1000) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        create = CreateSession(start_slot=sim.first_slot, slot_count=199)
        tx = user_tx(1)
        with client.start_session(create) as session:
            session.subscribe_transactions(sim.program_ids)
            session.subscribe_account_diffs(sim.program_ids[:2])
            cap, sent = drive_one_continue(session, tx)
            stats = session.stats
            sid = session.session_id
        start, end = create.start_slot, create.resolved_end_slot
        assert cap.completed is not None and cap.all[-1] == cap.completed
        assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
        assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids[:2])
        server = sim.session(sid)
        assert sent == 1 and server.continues_started == 1
        assert server.continue_transactions == [tx]
        assert ev.Status("executedUserTransactions") in cap.control
        assert sim.stats["control_drops"] > 0 and sim.stats["subscription_drops"] > 0
        assert stats.control_reconnects > 0 and stats.subscription_reconnects > 0


def run_parallel_one_continue(sim, bundles: int = 4, diffs: bool = True, config=None):
    client = Client(sim.url, sim.api_key, config or fast_config())
    create = CreateSession(start_slot=sim.first_slot, slot_count=bundles * sim.bundle_size - 1)
    caps: Dict[str, Captured] = {}
    sent: Dict[str, int] = {}
    txs: Dict[str, bytes] = {}
    errors: List[BaseException] = []
    with client.start_parallel(create) as run:
        subs = run.sub_sessions
        for i, sub in enumerate(subs):
            sub.subscribe_transactions(sim.program_ids)
            if diffs:
                sub.subscribe_account_diffs(sim.program_ids[:1])
            txs[sub.session_id] = user_tx(100 + i)

        def work(sub):
            try:
                caps[sub.session_id], sent[sub.session_id] = drive_one_continue(sub, txs[sub.session_id])
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in subs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ranges = {s.session_id: s.range for s in subs}
        control_stats = run.control_stats
    assert errors == []
    return caps, sent, txs, ranges, control_stats


def check_parallel(sim, caps, sent, txs, ranges, diffs=True):
    assert len(caps) == len(ranges)
    for sid, (start, end) in ranges.items():
        cap = caps[sid]
        assert cap.completed is not None and cap.all[-1] == cap.completed
        assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
        if diffs:
            assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids[:1])
        server = sim.session(sid)
        assert sent[sid] == 1 and server.continues_started == 1, sid
        assert server.continue_transactions == [txs[sid]], "the pushed transaction was not executed exactly once"
        assert ev.Status("executedUserTransactions") in cap.control


@pytest.mark.parametrize("dialect", ALL)
def test_parallel_one_continue_per_sub_session_under_drops(dialect):
    with LocalSimulator(port=0, dialect=dialect, faults=drop_faults(12), replay_window=1000) as sim:
        caps, sent, txs, ranges, control_stats = run_parallel_one_continue(sim)
        check_parallel(sim, caps, sent, txs, ranges)
        assert sim.stats["control_drops"] > 0 and sim.stats["subscription_drops"] > 0
        assert control_stats.reconnects > 0
        strict = DIALECTS[dialect].aliases
        assert control_stats.v1_minimal_fallbacks == (1 if strict else 0)
        if strict:  # every refused superset request was sent again once, in the minimal form; nothing else
            assert 1 <= control_stats.v1_minimal_resends <= sim.stats["duplicate_field_rejections"]
        else:
            assert control_stats.v1_minimal_resends == 0 == sim.stats["duplicate_field_rejections"]


def test_strict_dialect_falls_back_once_per_connection_and_logs_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="simclient.control")
    with LocalSimulator(port=0, dialect="strict") as sim:
        # not a keepalive test: a generous deadline keeps "one control connection" true on a loaded machine
        calm = fast_config(keepalive_interval=2.0, keepalive_deadline=30.0)
        caps, sent, txs, ranges, control_stats = run_parallel_one_continue(sim, bundles=3, diffs=False, config=calm)
        check_parallel(sim, caps, sent, txs, ranges, diffs=False)
        # no drops: each superset continue written before the switch was refused and re-sent once, minimal; the
        # ones written after it went out minimal at once
        assert control_stats.v1_minimal_fallbacks == 1
        assert 1 <= control_stats.v1_minimal_resends == sim.stats["duplicate_field_rejections"] <= len(ranges)
        assert sim.stats["control_connections"] == 1
    switch = [r for r in caplog.records if "minimal form" in r.getMessage()]
    assert len(switch) == 1 and switch[0].levelno == logging.DEBUG


def test_a_flattening_server_runs_the_pushed_transaction():
    """The silent failure the superset form exists for: a server that flattens the V1 params ignores a nested
    ``request`` and would run a default continue (one slot, no transactions)."""
    with LocalSimulator(port=0, dialect="flattened-camel") as sim:
        caps, sent, txs, ranges, control_stats = run_parallel_one_continue(sim, bundles=2, diffs=False)
        check_parallel(sim, caps, sent, txs, ranges, diffs=False)
        assert control_stats.v1_minimal_fallbacks == 0


@pytest.mark.parametrize("dialect", ["evidenced", "nested-snake"])
def test_early_subscription_complete_is_survived_with_nothing_lost(dialect):
    # Every subscribe made before the first continue is answered with an immediate subscriptionComplete.
    faults = FaultPlan().early_complete_subscribes(3)
    with LocalSimulator(port=0, dialect=dialect, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        create = CreateSession(start_slot=sim.first_slot, slot_count=149)
        with client.start_session(create) as session:
            session.subscribe_transactions(sim.program_ids)
            session.subscribe_account_diffs(sim.program_ids[:1])
            cap, sent = drive_one_continue(session, user_tx(3))
            stats = session.stats
        start, end = create.start_slot, create.resolved_end_slot
        # the session's first three subscribes: both sockets' first one, and one of them a second time
        assert sim.stats["early_completes_sent"] == 3
        assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
        assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids[:1])
        assert stats.subscription_reconnects >= 3 and sent == 1  # more only if a loaded machine misses a keepalive


def test_early_subscription_complete_in_a_parallel_run():
    faults = FaultPlan().early_complete_subscribes(1)
    with LocalSimulator(port=0, faults=faults) as sim:
        caps, sent, txs, ranges, _ = run_parallel_one_continue(sim, bundles=3, diffs=False)
        check_parallel(sim, caps, sent, txs, ranges, diffs=False)
        assert sim.stats["early_completes_sent"] == len(ranges)


def test_early_complete_budget_is_the_reconnect_budget():
    from simclient import SubscriptionError

    faults = FaultPlan().early_complete_subscribes(100)
    with LocalSimulator(port=0, faults=faults) as sim:
        client = Client(sim.url, sim.api_key, fast_config(reconnect_attempts=3))
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=20)) as session:
            session.subscribe_transactions(sim.program_ids)
            with pytest.raises(SubscriptionError, match="subscriptionComplete"):
                drive_one_continue(session, user_tx(4))
        # each early complete is a failed attempt of the subscription's ReconnectSupervisor: three subscribes in all
        assert sim.stats["early_completes_sent"] == 3


@pytest.mark.parametrize("dialect", ["evidenced", "flattened-snake", "strict"])
def test_continue_to_with_extra_fields_pauses_in_parallel_and_single(dialect):
    """``extra`` continueTo fields go through every V1 form; a server ignores those it does not know (§3.3)."""
    with LocalSimulator(port=0, dialect=dialect) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        target = sim.first_slot + 5
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=9)) as session:
            for event in session.events(timeout=10):
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue_to(target, 1, extra={"after": False})
                if isinstance(event, ev.Paused):
                    assert (event.slot, event.batch_index) == (target, 1)
                    break
            with pytest.raises(ValueError, match="slot"):
                session.send_continue_to(target + 1, extra={"batchIndex": 2})
            with pytest.raises(TypeError):
                session.send_continue_to(target + 1, extra=["after"])  # type: ignore[arg-type]
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=sim.bundle_size - 1)) as run:
            [sub] = run.sub_sessions
            for event in sub.events(timeout=10):
                if isinstance(event, ev.ReadyForContinue):
                    sub.send_continue_to(target, 1, extra={"after": False})
                if isinstance(event, ev.Paused):
                    assert (event.slot, event.batch_index) == (target, 1)
                    break
            assert run.control_stats.v1_minimal_fallbacks == (1 if dialect == "strict" else 0)
