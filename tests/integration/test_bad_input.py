"""Bad input, end to end (issue 7): the SDK against the local simulator sending frames no real server should send.

Every test asserts a typed outcome (an exception of a documented type, or a skip that is logged with its
:class:`ProtocolError` and counted in ``stats``) and that nothing already received is lost: the session's event
stream still equals a fault-free reference run (control events, transaction signatures, diff keys), or, after a
terminal error, is a gap-free prefix of it.

Bad frames are injected with the simulator's raw hooks: ``sim.inject_control_frame`` / ``inject_subscription_frame``
while the session is idle (right after the test read ``ReadyForContinue``, before its next continue), which gives
the frame a deterministic place in the stream, or ``sim.faults.inject_control`` at a counted point (the create
handshake). RPC faults come from ``sim.faults.rpc_*``.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from simclient import Client, Continue, CreateSession
from simclient import events as ev
from simclient.errors import (
    AuthenticationError,
    ConnectionLostError,
    HttpStatusError,
    InvalidRequestError,
    ProtocolError,
    RpcError,
    ServerTooOldError,
    SessionError,
    SimclientError,
)
from simclient.local import FaultPlan, LocalSimulator
from simclient.testing import fast_config

from simhelpers import Captured, truth_signatures

SLOTS = 200          # slot_count 199: slots first_slot .. first_slot + 199
ADVANCE = 25         # 8 continues; idle points 0..7
PARALLEL_SLOTS = 300  # three bundles of 100
INJECT_AT = 2        # the idle point (0 = the first ReadyForContinue) at which bad input is injected


# ================================================================================================ helpers

def _create(sim: LocalSimulator, slots: int = SLOTS) -> CreateSession:
    return CreateSession(start_slot=sim.first_slot, slot_count=slots - 1)


def _client(sim: LocalSimulator, **config: Any) -> Client:
    return Client(sim.url, sim.api_key, fast_config(**{"keepalive_deadline": 10.0, **config}))


def drive_injecting(session: Any, cap: Captured, on_idle: Optional[Callable[[int], None]] = None,
                    advance: int = ADVANCE, timeout: float = 10.0) -> Captured:
    """Drive to completion; ``on_idle(k)`` runs at the k-th ReadyForContinue/Paused, before the next continue."""
    idle = 0
    for event in session.events(timeout=timeout):
        cap.add(event)
        if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
            if on_idle is not None:
                on_idle(idle)
            idle += 1
            session.send_continue(advance_count=advance)
    return cap


def run_single(sim: LocalSimulator, on_idle: Optional[Callable[[Any, int], None]] = None,
               cap: Optional[Captured] = None, **config: Any) -> Tuple[Captured, Any]:
    """One session with transaction and account-diff subscriptions; ``on_idle(session, k)``."""
    cap = cap if cap is not None else Captured()
    with _client(sim, **config).start_session(_create(sim)) as session:
        session.subscribe_transactions(sim.program_ids)
        session.subscribe_account_diffs(sim.program_ids[:1])
        drive_injecting(session, cap, (lambda k: on_idle(session, k)) if on_idle else None)
        stats = session.stats
    return cap, stats


def run_parallel(sim: LocalSimulator, on_idle: Optional[Callable[[Any, int], None]] = None
                 ) -> Tuple[Dict[Tuple[int, int], Captured], Any, Dict[Tuple[int, int], Any], Any]:
    """A parallel run (3 sub-sessions, transactions); ``on_idle(sub, k)`` at each sub-session's k-th idle point.
    Returns (captures by range, ParallelResult, stats by range, control stats)."""
    caps: Dict[Tuple[int, int], Captured] = {}
    idles: Dict[str, int] = {}
    lock = threading.Lock()

    def on_event(sub: Any, event: Any) -> None:
        with lock:
            caps.setdefault(sub.range, Captured()).add(event)
        if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
            with lock:
                k = idles.get(sub.session_id, 0)
                idles[sub.session_id] = k + 1
            if on_idle is not None:
                on_idle(sub, k)

    with _client(sim).start_parallel(_create(sim, PARALLEL_SLOTS)) as run:
        run.subscribe_transactions(sim.program_ids)
        result = run.drive(on_event=on_event, advance_count=ADVANCE)
        stats = {sub.range: sub.stats for sub in run.sub_sessions}
        control_stats = run._control.stats
    return caps, result, stats, control_stats


def assert_same_stream(cap: Captured, ref: Captured) -> None:
    assert cap.completed is not None and cap.all[-1] is cap.completed, "the run must end with Completed"
    assert cap.control == ref.control
    assert cap.signatures == ref.signatures
    assert len(set(cap.signatures)) == len(cap.signatures)
    assert cap.diff_keys() == ref.diff_keys() and len(cap.diffs) == len(ref.diffs)


def assert_prefix(cap: Captured, ref: Captured) -> None:
    """A run cut short by a terminal error delivered a gap-free, duplicate-free prefix of the reference."""
    assert cap.completed is None
    assert cap.control == ref.control[:len(cap.control)]
    assert cap.signatures == ref.signatures[:len(cap.signatures)]
    keys = cap.diff_keys()
    assert len(set(keys)) == len(keys) and set(keys) <= set(ref.diff_keys())
    if keys:  # every diff of the slots before the last one delivered
        last = max(k[0] for k in keys)
        assert [k for k in ref.diff_keys() if k[0] < last] == [k for k in keys if k[0] < last]


def discard_records(caplog: Any, logger: str) -> List[logging.LogRecord]:
    """Records of skipped frames that carry the typed ProtocolError they were skipped for."""
    return [r for r in caplog.records if r.name == logger and "undecodable" in r.msg
            and r.args and isinstance(r.args[0], ProtocolError)]


def _at(k: int, action: Callable[[Any], None]) -> Callable[[Any, int], None]:
    def on_idle(session: Any, idle: int) -> None:
        if idle == k:
            action(session)
    return on_idle


@pytest.fixture(scope="module")
def reference() -> Dict[str, Any]:
    """Fault-free runs of the same seed and ranges (session ids differ; nothing else does)."""
    with LocalSimulator(port=0) as sim:
        single, _ = run_single(sim)
        rpc_slots: List[int] = []

        def read_slot(session: Any, k: int) -> None:
            rpc_slots.append(session.rpc.get_slot())

        run_single(sim, read_slot)
        par, result, _, _ = run_parallel(sim)
        assert result.failures == [] and len(par) == 3
        start, end = sim.first_slot, sim.first_slot + SLOTS - 1
        assert single.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
    return {"single": single, "parallel": par, "rpc_slots": rpc_slots}


@pytest.fixture
def sim():
    with LocalSimulator(port=0) as s:
        yield s


# ======================================================================== control frames: undecodable → skipped

UNDECODABLE = [
    pytest.param("<<garbage>> not json {", id="not-json"),
    pytest.param(b"\xff\xfe\x00\x80 binary garbage", id="binary-not-utf8"),
    pytest.param("", id="empty"),
    pytest.param('{"method": "status", "params": {"status": "x"}', id="truncated-json"),
    pytest.param("[1, 2, 3]", id="json-array"),
    pytest.param('"readyForContinue"', id="json-string"),
    pytest.param("null", id="json-null"),
    pytest.param("42", id="json-number"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="deeply-nested"),
    pytest.param('{"params": {"status": "decodedTransactions"}}', id="missing-method"),
    pytest.param('{"method": 7}', id="method-not-a-string"),
    pytest.param('{"method": "slotNotification", "params": "300000005"}', id="string-slot"),
    pytest.param('{"method": "slotNotification", "params": -1}', id="negative-slot"),
    pytest.param('{"method": "slotNotification", "params": 18446744073709551616}', id="slot-beyond-u64"),
    pytest.param('{"method": "slotNotification"}', id="slot-missing-params"),
    pytest.param('{"method": "status", "params": {"status": 5}}', id="status-not-a-string"),
    pytest.param('{"method": "paused", "params": {"batchIndex": 1}}', id="paused-without-slot"),
    pytest.param('{"method": "discoveryBatch", "params": {"slot": 300000001}}', id="discovery-without-batch"),
    pytest.param('{"method": "completed", "params": {"summary": {"correctSimulation": "many"}}}',
                 id="completed-bad-summary"),
    pytest.param('{"method": "completed", "params": [1]}', id="completed-params-array"),
    pytest.param('{"method": "error", "params": 42}', id="error-params-number"),
    pytest.param('{"method": "sessionCreated", "params": {"session_id": 5}}', id="session-created-bad-id"),
    pytest.param('{"method": "sessionEventV2", "params": {"session_id": "x", "event": {"method": '
                 '"readyForContinue"}}}', id="session-event-without-seq-id"),
    pytest.param('{"method": "sessionEventV2", "params": {"session_id": "x", "seq_id": 1, "event": "ready"}}',
                 id="session-event-not-an-object"),
    pytest.param('{"seqId": "9", "method": "readyForContinue"}', id="seq-id-string"),
    pytest.param('{"seqId": -3, "method": "readyForContinue"}', id="seq-id-negative"),
]


@pytest.mark.parametrize("bad", UNDECODABLE)
def test_undecodable_control_frame_is_skipped_without_loss(sim, reference, caplog, bad) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.control")
    written: List[bool] = []
    cap, stats = run_single(sim, _at(INJECT_AT, lambda s: written.append(sim.inject_control_frame(s.session_id, bad))))
    assert written == [True]
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 1
    assert stats.replays_dropped == 0 and stats.reconnects == 0
    assert len(discard_records(caplog, "simclient.control")) == 1


def test_undecodable_frames_during_create_are_skipped(sim, reference, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.control")
    for text in ("not json", "[]", '{"method": 1}', '{"method": "status", "params": {"status": null}}'):
        sim.faults.inject_control(text)              # all before the first frame of the create handshake
    sim.faults.inject_control("{{{", after_frames=1)  # between status startingRuntime and sessionCreated
    cap, stats = run_single(sim)
    assert sim.stats["injected_control_frames"] == 5 and sim.faults.pending_injections == 0
    assert_same_stream(cap, reference["single"])
    assert len(discard_records(caplog, "simclient.control")) == 5


# ================================================================================= unknown methods (L6) → skipped

@pytest.mark.parametrize("frame", [
    pytest.param('{"method": "quantumFlux", "params": {"level": 11}}', id="with-params"),
    pytest.param('{"method": "quantumFlux"}', id="unit"),
    pytest.param('{"method": "quantumFlux", "params": null, "extraTopLevel": [1]}', id="extra-fields"),
    pytest.param('{"method": "sessionsCreated", "params": {"session_ids": ["a"]}}', id="removed-0.13-method"),
])
def test_unknown_control_method_is_logged_and_skipped(sim, reference, caplog, frame) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient.control")
    cap, stats = run_single(sim, _at(INJECT_AT, lambda s: sim.inject_control_frame(s.session_id, frame)))
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 0  # decodable: skipped as unknown, not as garbage
    method = json.loads(frame)["method"]
    assert any(r.name == "simclient.control" and "unknown" in r.getMessage() and method in r.getMessage()
               for r in caplog.records)


def test_unknown_status_is_passed_through_in_place(sim, reference) -> None:
    frame = '{"method": "status", "params": {"status": "warpDriveEngaged"}}'
    cap, _ = run_single(sim, _at(INJECT_AT, lambda s: sim.inject_control_frame(s.session_id, frame)))
    ref = reference["single"]
    readies = [i for i, e in enumerate(ref.control) if isinstance(e, ev.ReadyForContinue)]
    at = readies[INJECT_AT] + 1
    assert cap.control == ref.control[:at] + [ev.Status("warpDriveEngaged")] + ref.control[at:]
    assert cap.signatures == ref.signatures


@pytest.mark.parametrize("frame", [
    pytest.param('{"method": "sessionEventV2", "params": {"session_id": "sub-x", "seq_id": 1, '
                 '"event": {"method": "readyForContinue"}}}', id="sessionEventV2"),
    pytest.param('{"method": "sessionCreated", "params": {"session_id": "other", "rpc_endpoint": "/backtest/other"}}',
                 id="sessionCreated-again"),
    pytest.param('{"method": "sessionAttached", "params": {"session_id": "other", "rpc_endpoint": "/backtest/other"}}',
                 id="sessionAttached-unasked"),
    pytest.param('{"method": "sessionsCreatedV2", "params": {"control_session_id": "c", "session_ids": ["a"], '
                 '"start_slots": [1], "end_slots": [2]}}', id="sessionsCreatedV2"),
    pytest.param('{"method": "parallelSessionAttachedV2", "params": {"control_session_id": "c"}}',
                 id="parallelSessionAttachedV2"),
])
def test_message_of_the_other_mode_on_a_single_session_is_skipped(sim, reference, caplog, frame) -> None:
    """Well-formed, but meaningless on a single session's control socket: logged and skipped like an unknown
    method (L6), never delivered as an event and never fatal."""
    caplog.set_level(logging.DEBUG, logger="simclient.control")
    cap, stats = run_single(sim, _at(INJECT_AT, lambda s: sim.inject_control_frame(s.session_id, frame)))
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 0
    method = json.loads(frame)["method"]
    assert any(r.name == "simclient.control" and "unexpected control message" in r.getMessage()
               and method.lower() in r.getMessage().lower() for r in caplog.records)


def test_replayed_session_created_after_an_early_drop_is_skipped(reference) -> None:
    """Real-world path of the same bad input: the simulator sequences sessionCreated (§2.1), so a drop right after
    it (the first live sequenced frame, slotNotification(start), is dropped once) replays sessionCreated after
    the re-attach. It must be skipped, not queued as an event."""
    with LocalSimulator(port=0, faults=FaultPlan().drop_control_every(1, times=1)) as faulty:
        cap, stats = run_single(faulty)
        assert faulty.stats["control_drops"] == 1
    assert_same_stream(cap, reference["single"])
    assert stats.control_reconnects == 1


# ======================================================================== seqId going backwards → dropped replay

def test_seq_id_going_backwards_is_dropped_as_a_replay(sim, reference) -> None:
    def inject(session: Any) -> None:
        server = sim.session(session.session_id)
        # the real last frame again (a sequenced readyForContinue: delivering it would double-advance the session),
        # an older one, and a made-up one far behind
        for text in (server.buffer[-1], server.buffer[-3], '{"seqId": 1, "method": "status", "params": '
                                                           '{"status": "replayedFromLongAgo"}}'):
            assert sim.inject_control_frame(session.session_id, text)

    cap, stats = run_single(sim, _at(INJECT_AT, inject))
    assert_same_stream(cap, reference["single"])
    assert stats.replays_dropped == 3
    assert stats.frames_discarded == 0
    assert sim.stats["continues_busy_rejected"] == 0   # the replayed readyForContinue did not trigger a continue


def test_parallel_seq_id_going_backwards_is_dropped_as_a_replay(sim, reference) -> None:
    target: List[Any] = []

    def inject(sub: Any, k: int) -> None:
        if k == INJECT_AT and not target:
            target.append(sub.range)
            server = sim.session(sub.session_id)
            for text in (server.buffer[-1], server.buffer[0]):   # sessionEventV2 with seq_id = last, and = 1
                assert sim.inject_control_frame(sub.session_id, text)

    caps, result, stats, _ = run_parallel(sim, inject)
    assert result.failures == []
    for rng, ref in reference["parallel"].items():
        assert_same_stream(caps[rng], ref)
        assert stats[rng].replays_dropped == (2 if rng == target[0] else 0)
    assert sim.stats["continues_busy_rejected"] == 0


# ====================================================================== error of an unknown variant → terminal

@pytest.mark.parametrize("params, fields", [
    pytest.param({"quantumFlux": {"error": "flux capacitor overload", "slot": 7}},
                 {"error": "flux capacitor overload", "slot": 7}, id="externally-tagged"),
    pytest.param("quantumFlux", {}, id="bare-string"),
    pytest.param({"code": "quantumFlux", "detail": "x"}, {"detail": "x"}, id="code-object"),
])
def test_error_of_unknown_variant_is_terminal(sim, reference, params, fields) -> None:
    frame = json.dumps({"method": "error", "params": params})
    cap = Captured()
    with pytest.raises(SessionError) as info:
        run_single(sim, _at(INJECT_AT, lambda s: sim.inject_control_frame(s.session_id, frame)), cap=cap)
    assert not isinstance(info.value, InvalidRequestError)
    assert info.value.error.variant == "QuantumFlux"
    assert info.value.error.fields == fields
    assert info.value.error.terminal
    assert_prefix(cap, reference["single"])
    # everything up to the idle point of the error arrived, in order
    readies = [e for e in cap.control if isinstance(e, ev.ReadyForContinue)]
    assert len(readies) == INJECT_AT + 1
    assert cap.signatures, "transactions delivered before the error"


def test_error_of_unknown_variant_after_the_error_the_session_refuses_to_continue(sim) -> None:
    with _client(sim).start_session(_create(sim)) as session:
        first = session.next_event(timeout=5)
        while not isinstance(first, ev.ReadyForContinue):
            first = session.next_event(timeout=5)
        sim.inject_control_frame(session.session_id, '{"method": "error", "params": "quantumFlux"}')
        with pytest.raises(SessionError):
            session.next_event(timeout=5)
        assert session.next_event(timeout=1) is None
        with pytest.raises(SessionError) as info:   # the cause again, not a bare "closed"
            session.send_continue(advance_count=1)
        assert info.value.error.variant == "QuantumFlux"


def test_error_of_unknown_variant_during_create_fails_start_session(sim) -> None:
    sim.faults.inject_control('{"method": "error", "params": {"quantumFlux": {"error": "no"}}}', after_frames=1)
    with pytest.raises(SessionError) as info:
        _client(sim).start_session(_create(sim))
    assert info.value.error.variant == "QuantumFlux"


def test_error_of_unknown_variant_during_parallel_create_fails_start_parallel(sim) -> None:
    sim.faults.inject_control('{"method": "error", "params": "quantumFlux"}', after_frames=2)
    with pytest.raises(SessionError) as info:
        _client(sim).start_parallel(_create(sim, PARALLEL_SLOTS))
    assert info.value.error.variant == "QuantumFlux"


def test_parallel_sub_session_error_of_unknown_variant_fails_only_that_sub_session(sim, reference) -> None:
    target: List[Any] = []

    def inject(sub: Any, k: int) -> None:
        if k == INJECT_AT and not target:
            target.append(sub.range)
            frame = json.dumps({"method": "sessionEventV2", "params": {
                "session_id": sub.session_id, "seq_id": 10_000,
                "event": {"method": "error", "params": {"quantumFlux": {"error": "boom"}}}}})
            assert sim.inject_control_frame(sub.session_id, frame)

    caps, result, _, _ = run_parallel(sim, inject)
    assert [f.range for f in result.failures] == target
    assert "SessionError" in result.failures[0].reason and "QuantumFlux" in result.failures[0].reason
    assert len(result.completed) == 2
    for rng, ref in reference["parallel"].items():
        if rng == target[0]:
            assert_prefix(caps[rng], ref)
        else:
            assert_same_stream(caps[rng], ref)


def test_parallel_top_level_error_of_unknown_variant_fails_the_run(sim, reference) -> None:
    done: List[bool] = []

    def inject(sub: Any, k: int) -> None:
        if k == INJECT_AT and not done:
            done.append(True)
            assert sim.inject_control_frame(sub.session_id, '{"method": "error", "params": "quantumFlux"}')

    caps, result, _, _ = run_parallel(sim, inject)
    assert result.failures, "a control-level terminal error fails the run"
    for failure in result.failures:
        assert "QuantumFlux" in failure.reason
    for rng, ref in reference["parallel"].items():
        if caps[rng].completed is None:
            assert_prefix(caps[rng], ref)
        else:
            assert_same_stream(caps[rng], ref)


# ====================================================================== parallel: garbage, unknowns, mismatches

PARALLEL_SKIPPED = [
    "not json at all",
    "[]",
    '{"method": "sessionEventV2", "params": {"session_id": "%(sid)s", "event": {"method": "readyForContinue"}}}',
    '{"method": "sessionEventV2", "params": {"session_id": "%(sid)s", "seq_id": "7", "event": '
    '{"method": "readyForContinue"}}}',
    '{"method": "sessionEventV2", "params": {"session_id": "%(sid)s", "seq_id": 9999, "event": [1]}}',
    '{"method": "sessionEventV2", "params": {"session_id": 12, "seq_id": 9999, "event": {"method": "success"}}}',
]
PARALLEL_UNKNOWN = [
    '{"method": "quantumFlux", "params": {"session_id": "%(sid)s"}}',
    '{"method": "sessionEventV2", "params": {"session_id": "never-issued", "seq_id": 1, "event": '
    '{"method": "readyForContinue"}}}',
    '{"method": "sessionCreated", "params": {"session_id": "late", "rpc_endpoint": "/backtest/late"}}',
]


def test_parallel_bad_frames_are_skipped_without_loss(sim, reference, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient.control")
    done: List[bool] = []

    def inject(sub: Any, k: int) -> None:
        if k == INJECT_AT and not done:
            done.append(True)
            for text in PARALLEL_SKIPPED + PARALLEL_UNKNOWN:
                assert sim.inject_control_frame(sub.session_id, text % {"sid": sub.session_id})

    caps, result, stats, control_stats = run_parallel(sim, inject)
    assert result.failures == []
    for rng, ref in reference["parallel"].items():
        assert_same_stream(caps[rng], ref)
        assert stats[rng].replays_dropped == 0
    assert control_stats.frames_discarded == len(PARALLEL_SKIPPED)
    assert len(discard_records(caplog, "simclient.control")) == len(PARALLEL_SKIPPED)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "quantumFlux" in text and "never-issued" in text


@pytest.mark.parametrize("knob", ["mismatched_parallel_ranges", "omit_parallel_ranges"])
def test_sessions_created_v2_with_mismatched_arrays_is_server_too_old(sim, knob) -> None:
    setattr(sim, knob, True)
    with pytest.raises(ServerTooOldError, match="too old") as info:
        _client(sim).start_parallel(_create(sim, PARALLEL_SLOTS))
    assert "session_ids=3" in str(info.value)


def test_sessions_created_v2_with_mismatched_arrays_from_a_raw_frame(sim) -> None:
    # more ids than ranges, as the very first frame of the create
    params = {"control_session_id": "c", "session_ids": ["a", "b"], "start_slots": [1, 2], "end_slots": [2]}
    sim.faults.inject_control(json.dumps({"method": "sessionsCreatedV2", "params": params}))
    with pytest.raises(ServerTooOldError, match="end_slots=1"):
        _client(sim).start_parallel(_create(sim, PARALLEL_SLOTS))


# ===================================================================================== subscription frames

def _sub_ids(sim: LocalSimulator, session_id: str) -> Dict[str, int]:
    return {s.kind: s.id for s in sim.session(session_id).subs}


@pytest.mark.parametrize("bad", [
    pytest.param("not json {", id="not-json"),
    pytest.param("[1, 2]", id="json-array"),
    pytest.param('{"jsonrpc": "2.0", "method": "transactionNotification", "params": {"subscription": "1", '
                 '"result": {}}}', id="subscription-id-string"),
    pytest.param('{"jsonrpc": "2.0", "method": "transactionNotification", "params": {"result": {}}}',
                 id="subscription-id-missing"),
    pytest.param('{"jsonrpc": "2.0", "id": 1, "error": {"code": "E1", "message": "m"}}', id="error-code-string"),
])
def test_undecodable_subscription_frame_is_skipped_without_loss(sim, reference, caplog, bad) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.subscriptions")
    sent: List[int] = []
    cap, stats = run_single(sim, _at(INJECT_AT, lambda s: sent.append(sim.inject_subscription_frame(s.session_id, bad))))
    assert sent == [2]   # the transaction socket and the account-diff socket
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 2
    assert stats.subscription_reconnects == 0
    assert len(discard_records(caplog, "simclient.subscriptions")) == 2


def test_malformed_notification_for_a_live_subscription_is_skipped(sim, reference, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.subscriptions")

    def inject(session: Any) -> None:
        ids = _sub_ids(sim, session.session_id)
        for result in ({"context": {"slot": 1}, "value": "not a transaction"}, {"slot": "x"}, 17):
            frame = json.dumps({"jsonrpc": "2.0", "method": "transactionNotification",
                                "params": {"subscription": ids["transaction"], "result": result}})
            assert sim.inject_subscription_frame(session.session_id, frame) == 2

    cap, stats = run_single(sim, _at(INJECT_AT, inject))
    assert_same_stream(cap, reference["single"])
    # the transaction worker discards 3 undecodable payloads; the diff worker ignores the 3 (unknown id there)
    assert stats.frames_discarded == 3
    assert sum("undecodable" in r.getMessage() for r in caplog.records) == 3


def test_notification_for_unknown_subscription_id_is_logged_and_skipped(sim, reference, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.subscriptions")
    value = reference["single"].transactions[0].value   # a real payload: delivering it would duplicate data
    frames = [json.dumps({"jsonrpc": "2.0", "method": "transactionNotification",
                          "params": {"subscription": 987654, "result": {"context": {"slot": value["slot"]},
                                                                        "value": value}}}),
              json.dumps({"jsonrpc": "2.0", "method": "accountDiffNotification",
                          "params": {"subscription": 987654, "result": None}})]   # an unknown id's end of stream

    def inject(session: Any) -> None:
        for frame in frames:
            assert sim.inject_subscription_frame(session.session_id, frame) == 2

    cap, stats = run_single(sim, _at(INJECT_AT, inject))
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 0 and stats.duplicates_dropped == 0
    unknown = [r for r in caplog.records if "unknown subscription id" in r.getMessage()]
    assert len(unknown) == 4 and all("987654" in r.getMessage() for r in unknown)


def test_bad_subscription_frames_mid_slot_are_skipped(sim, reference, caplog) -> None:
    """Injected between two notifications of one slot (a counted point), not at an idle point."""
    caplog.set_level(logging.WARNING, logger="simclient.subscriptions")

    def arm(session: Any) -> None:
        sim.faults.inject_subscription("garbage {", after_notifications=5, session_id=session.session_id)
        sim.faults.inject_subscription('{"jsonrpc": "2.0", "method": "transactionNotification", '
                                       '"params": {"subscription": 4242, "result": {}}}', after_notifications=40,
                                       session_id=session.session_id)

    cap, stats = run_single(sim, _at(0, arm))
    assert sim.stats["injected_subscription_frames"] == 2 and sim.faults.pending_injections == 0
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 1
    assert any("unknown subscription id 4242" in r.getMessage() for r in caplog.records)


def test_unsolicited_subscription_error_and_unknown_method_are_skipped(sim, reference, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="simclient.subscriptions")

    def inject(session: Any) -> None:
        for frame in ('{"jsonrpc": "2.0", "id": 99, "error": {"code": -32000, "message": "spurious"}}',
                      '{"jsonrpc": "2.0", "method": "quantumFluxEvent", "params": [1]}',
                      '{"jsonrpc": "2.0", "id": 98, "result": true}'):
            assert sim.inject_subscription_frame(session.session_id, frame) == 2

    cap, stats = run_single(sim, _at(INJECT_AT, inject))
    assert_same_stream(cap, reference["single"])
    assert stats.frames_discarded == 0 and stats.subscription_reconnects == 0
    assert sum("spurious" in r.getMessage() for r in caplog.records) == 2


# ============================================================================================= HTTP JSON-RPC

def _rpc_run(sim: LocalSimulator, reference: Dict[str, Any], arm: Callable[[], None],
             expect: Callable[[Any], None], calls: int = 1) -> None:
    """At the idle point INJECT_AT: arm the fault, make ``calls`` failing RPC calls (checked by ``expect``), then
    the same call succeeds with the fault-free value; the run goes on unchanged."""
    slots: List[int] = []
    outcomes: List[BaseException] = []

    def on_idle(session: Any, k: int) -> None:
        if k == INJECT_AT:
            arm()
            for _ in range(calls):
                with pytest.raises(SimclientError) as info:
                    session.rpc.get_slot()
                outcomes.append(info.value)
            assert sim.faults.pending_rpc_faults == 0
        slots.append(session.rpc.get_slot())

    cap, _ = run_single(sim, on_idle)
    assert len(outcomes) == calls
    for exc in outcomes:
        expect(exc)
    assert slots == reference["rpc_slots"]
    assert_same_stream(cap, reference["single"])


def test_rpc_non_json_is_a_protocol_error(sim, reference) -> None:
    def expect(exc: BaseException) -> None:
        assert type(exc) is ProtocolError
        assert "not JSON" in str(exc) and exc.raw is not None and exc.raw.startswith("<html>")

    _rpc_run(sim, reference, lambda: sim.faults.rpc_non_json(), expect)


def test_rpc_non_json_with_error_status_is_an_http_status_error(sim, reference) -> None:
    def expect(exc: BaseException) -> None:
        assert type(exc) is HttpStatusError and exc.status == 502
        assert exc.body.startswith("<html>") and "/backtest/" in exc.url

    _rpc_run(sim, reference, lambda: sim.faults.rpc_non_json(status=502), expect)


def test_rpc_http_500_is_an_http_status_error(sim, reference) -> None:
    def expect(exc: BaseException) -> None:
        assert type(exc) is HttpStatusError and exc.status == 500
        assert "injected internal server error" in exc.body and "HTTP 500" in str(exc)

    _rpc_run(sim, reference, lambda: sim.faults.rpc_http_error(status=500, n=3), expect, calls=3)


def test_rpc_http_500_with_json_rpc_body_is_an_rpc_error(sim, reference) -> None:
    body = '{"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error"}}'

    def expect(exc: BaseException) -> None:
        assert type(exc) is RpcError and exc.code == -32603 and exc.message == "Internal error"

    _rpc_run(sim, reference, lambda: sim.faults.rpc_reply(body, status=500), expect)


def test_json_rpc_error_carries_code_and_message(sim, reference) -> None:
    def expect(exc: BaseException) -> None:
        assert type(exc) is RpcError
        assert (exc.code, exc.message, exc.data, exc.method) == (-32005, "Node is behind by 42 slots",
                                                                 {"numSlotsBehind": 42}, "getSlot")
        assert "-32005" in str(exc) and "Node is behind" in str(exc)

    _rpc_run(sim, reference,
             lambda: sim.faults.rpc_error(-32005, "Node is behind by 42 slots", n=2, data={"numSlotsBehind": 42}),
             expect, calls=2)


@pytest.mark.parametrize("body, kind", [
    pytest.param('{"jsonrpc": "2.0", "id": 1}', ProtocolError, id="neither-result-nor-error"),
    pytest.param("[1, 2]", ProtocolError, id="json-array"),
    pytest.param('"ok"', ProtocolError, id="json-string"),
    pytest.param('{"jsonrpc": "2.0", "id": 1, "error": "boom"}', ProtocolError, id="error-not-an-object"),
    pytest.param('{"jsonrpc": "2.0", "id": 1, "error": {"code": "E1", "message": "m"}}', RpcError,
                 id="error-code-not-an-int"),
])
def test_malformed_json_rpc_reply_is_typed(sim, reference, body, kind) -> None:
    def expect(exc: BaseException) -> None:
        assert type(exc) is kind

    _rpc_run(sim, reference, lambda: sim.faults.rpc_reply(body), expect)


# ========================================================================================= builders, end to end

def test_out_of_range_builder_values_raise_before_sending(sim, reference) -> None:
    """Bad values are refused by the builders with ValueError naming the field; nothing reaches the server."""
    errors: List[str] = []

    def on_idle(session: Any, k: int) -> None:
        if k != INJECT_AT:
            return
        received = sim.stats["continues_received"]
        for call in (lambda: session.send_continue_to(-1),
                     lambda: session.send_continue_to(sim.first_slot, batch_index=-1),
                     lambda: session.send_continue_to(True),
                     lambda: session.send_continue(advance_count=0),
                     lambda: session.send_continue(advance_count=2 ** 64),
                     lambda: session.send_continue(Continue(advance_count=1), advance_count=2),
                     lambda: Continue(advance_count=1).push_transaction("not base64 !"),
                     lambda: Continue(advance_count=1).modify_account("not-a-pubkey", None)):
            with pytest.raises(ValueError) as info:
                call()
            errors.append(str(info.value))
        assert sim.stats["continues_received"] == received

    cap, _ = run_single(sim, on_idle)
    assert_same_stream(cap, reference["single"])
    assert len(errors) == 8 and all(errors)
    for kwargs in (dict(start_slot=-1, slot_count=1), dict(start_slot=5, end_slot=4),
                   dict(start_slot=1, slot_count=2 ** 64), dict(start_slot=1, slot_count=1, disconnect_timeout_secs=901),
                   dict(start_slot=1, slot_count=1, capacity_wait_timeout_secs=2 ** 16),
                   dict(start_slot=1, slot_count=1, extra_compute_units=2 ** 32),
                   dict(start_slot=1, slot_count=1, signer_filter=["nope"])):
        with pytest.raises(ValueError):
            CreateSession(**kwargs)


def test_range_the_server_does_not_have_is_a_typed_session_error(sim) -> None:
    with pytest.raises(SessionError) as info:
        _client(sim).start_session(CreateSession(start_slot=sim.last_slot + 1, slot_count=10))
    assert info.value.error.variant == "BundleNotFound"
    assert info.value.error.fields == {"start_slot": sim.last_slot + 1, "end_slot": sim.last_slot + 11}


# ====================================================================================== the API key never shows

SECRET = "sk-live-4f9c2a7e0b1d-DO-NOT-LOG"


def _all_text(caplog: Any) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    out = []
    for record in caplog.records:
        out.append(formatter.format(record))   # includes the formatted traceback of exc_info
        out.append(repr(record.args))
    return "\n".join(out)


def _exception_text(exc: BaseException) -> str:
    parts = []
    seen = set()
    cur: Optional[BaseException] = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur), repr(getattr(cur, "attempts", ""))]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def test_api_key_never_logged_during_failing_auth(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    with LocalSimulator(port=0, api_key="the-right-key") as sim:
        client = Client(sim.url, SECRET, fast_config())
        caught = []
        for start in (client.start_session, client.start_parallel):
            with pytest.raises(AuthenticationError) as info:
                start(_create(sim))
            assert info.value.status == 401
            caught.append(info.value)
        assert sim.stats["auth_rejected"] == 2
    assert caplog.records, "DEBUG logging was on"
    assert SECRET not in _all_text(caplog)
    for exc in caught:
        assert SECRET not in _exception_text(exc)
    assert SECRET not in repr(client) and SECRET not in str(client)


def test_api_key_never_logged_during_a_run_with_faults(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    caught: List[BaseException] = []
    with LocalSimulator(port=0, api_key=SECRET, replay_window=1000) as sim:
        sim.faults.drop_control_every(60).garbage_every(25).fail_at_slot(sim.first_slot + 150, "quantumFlux")
        client = Client(sim.url, SECRET, fast_config())

        def on_idle(session: Any, k: int) -> None:
            if k == 1:
                sim.faults.rpc_http_error().rpc_error(-32000, "nope").rpc_non_json()
                for _ in range(3):
                    try:
                        session.rpc.get_slot()
                    except SimclientError as exc:
                        caught.append(exc)

        with pytest.raises(SessionError) as info:
            run_single(sim, on_idle)
        assert info.value.error.variant == "QuantumFlux"
        caught.append(info.value)
        assert sim.stats["control_drops"] > 0 and sim.stats["garbage_sent"] > 0
        # the server goes away for good: the reconnect budget is spent (its history is in the message)
        with pytest.raises(ConnectionLostError) as lost:
            with Client(sim.url, SECRET, fast_config(reconnect_attempts=2)).start_session(_create(sim)) as session:
                for event in session.events(timeout=10):
                    if isinstance(event, ev.ReadyForContinue):
                        sim.stop()
                        session.send_continue(advance_count=1)
        caught.append(lost.value)
    assert len(caught) == 5
    assert SECRET not in _all_text(caplog)
    for exc in caught:
        assert SECRET not in _exception_text(exc)
    assert SECRET not in repr(client)


def test_api_key_echoed_by_the_server_is_redacted(caplog) -> None:
    """A server (or proxy) that echoes the key back in a frame must not make the SDK log it or raise it."""
    caplog.set_level(logging.DEBUG, logger="simclient")
    with LocalSimulator(port=0, api_key=SECRET) as sim:

        def on_idle(session: Any, k: int) -> None:
            if k == 1:
                sim.inject_control_frame(session.session_id, f"<<proxy: bad key {SECRET}>>")
                sim.inject_control_frame(session.session_id, json.dumps({"method": f"x-{SECRET}"}))
            if k == 2:
                sim.inject_control_frame(session.session_id, json.dumps(
                    {"method": "error", "params": {"invalidRequest": {"error": f"key {SECRET} may not replay this"}}}))

        with pytest.raises(InvalidRequestError) as info:
            run_single(sim, on_idle)
    assert SECRET not in _all_text(caplog)
    assert SECRET not in _exception_text(info.value)


def test_api_key_echoed_in_a_parallel_control_error_is_redacted(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    echo = json.dumps({"method": "error", "params": {"quantumFlux": {"error": f"key {SECRET} revoked"}}})
    done: List[bool] = []
    with LocalSimulator(port=0, api_key=SECRET) as sim:
        def inject(sub: Any, k: int) -> None:
            if k == 1 and not done:
                done.append(True)
                assert sim.inject_control_frame(sub.session_id, echo)

        _, result, _, _ = run_parallel(sim, inject)
    assert result.failures and all("QuantumFlux" in f.reason for f in result.failures)
    assert all(SECRET not in f.reason for f in result.failures)
    assert SECRET not in _all_text(caplog)
