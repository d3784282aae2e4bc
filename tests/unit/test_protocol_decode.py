"""Decoding of control frames (PROTOCOL.md §2, §2.1, §4, §4.1, §5, §8, §10.1, §12 L1–L6).

Every JSON example of PROTOCOL.md is decoded and compared field by field with the typed value it stands for;
malformed frames must raise ``ProtocolError`` and nothing else (also under a hypothesis fuzz).
"""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simclient import events as ev
from simclient import protocol
from simclient.errors import ProtocolError
from simclient.protocol import (
    AvailableRange,
    BacktestError,
    ParallelSessionAttachedV2,
    SessionAttached,
    SessionCreated,
    SessionEventV2,
    SessionsCreatedV2,
    Success,
    Unknown,
)

pytestmark = pytest.mark.usefixtures("json_backend")

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"

SUMMARY_812 = ev.SessionSummary(correct_simulation=812, incorrect_simulation=3, execution_errors=2, balance_diff=1,
                                log_diff=4, unsanitizable=0, reroute_stats=None, extra={})

# (id, frame text exactly as PROTOCOL.md shows it, expected message, expected top-level seqId)
SPEC_EXAMPLES = [
    # §2 envelope table
    ("s2-unit", '{"method":"readyForContinue"}', ev.ReadyForContinue(), None),
    ("s2-newtype", '{"method":"slotNotification","params":123}', ev.Slot(123), None),
    # §2.1 SequencedResponse
    ("s2.1-seqId", '{"seqId":123,"method":"status","params":{"status":"decodedTransactions"}}',
     ev.Status("decodedTransactions"), 123),
    # §4 table
    ("s4-sessionCreated-task-null",
     '{"method":"sessionCreated","params":{"session_id":"abc","rpc_endpoint":"/backtest/abc","task_id":null}}',
     SessionCreated(session_id="abc", rpc_endpoint="/backtest/abc", task_id=None), None),
    ("s4-sessionAttached",
     '{"method":"sessionAttached","params":{"session_id":"abc","rpc_endpoint":"/backtest/abc","task_id":"t-7"}}',
     SessionAttached(session_id="abc", rpc_endpoint="/backtest/abc", task_id="t-7"), None),
    ("s4-parallelSessionAttachedV2",
     '{"method":"parallelSessionAttachedV2","params":{"control_session_id":"ctl-9","session_ids":["s-A","s-B"],'
     '"task_ids":["t1",null]}}',
     ParallelSessionAttachedV2(control_session_id="ctl-9", session_ids=("s-A", "s-B"), task_ids=("t1", None)), None),
    ("s4-slotNotification", '{"method":"slotNotification","params":123456}', ev.Slot(123456), None),
    ("s4-completed-null-summary", '{"method":"completed","params":{"summary":null}}', ev.Completed(None), None),
    ("s4-error", '{"method":"error","params":{"sessionNotFound":{"session_id":"abc"}}}',
     ev.ServerError(BacktestError("SessionNotFound", {"session_id": "abc"})), None),
    # §4 single-session examples
    ("s4-ex-sessionCreated",
     '{"method":"sessionCreated","params":{"session_id":"6f0c…","rpc_endpoint":"/backtest/6f0c…"}}',
     SessionCreated(session_id="6f0c…", rpc_endpoint="/backtest/6f0c…", task_id=None), None),
    ("s4-ex-status", '{"method":"status","params":{"status":"startingRuntime"}}', ev.Status("startingRuntime"), None),
    ("s4-ex-slot", '{"method":"slotNotification","params":400000000}', ev.Slot(400000000), None),
    ("s4-ex-ready", '{"method":"readyForContinue"}', ev.ReadyForContinue(), None),
    ("s4-ex-completed",
     '{"method":"completed","params":{"summary":{"correctSimulation":812,"incorrectSimulation":3,'
     '"executionErrors":2,"balanceDiff":1,"logDiff":4,"unsanitizable":0,"rerouteStats":null}}}',
     ev.Completed(SUMMARY_812), None),
    ("s4-ex-success", '{"method":"success"}', Success(), None),
    # §4.1 SessionEventKind example
    ("s4.1-sessionEventV2",
     '{"method":"sessionEventV2","params":{"session_id":"sub-1","seq_id":5,'
     '"event":{"method":"slotNotification","params":400010001}}}',
     SessionEventV2(session_id="sub-1", seq_id=5, event=ev.Slot(400010001)), None),
    # §5.3 PausedEvent
    ("s5.3-paused", '{"method":"paused","params":{"slot":417811172,"batchIndex":3}}',
     ev.Paused(slot=417811172, batch_index=3), None),
    # §5.5 DiscoveryBatchEvent
    ("s5.5-discoveryBatch",
     '{"method":"discoveryBatch","params":{"slot":417811172,"batchIndex":3,"matched":[{"programExecuted":"JUP6…"}],'
     '"transactions":[{"data":"<b64>","encoding":"base64"}],"transactionIndices":[57]}}',
     ev.DiscoveryBatch(slot=417811172, batch_index=3, matched=({"programExecuted": "JUP6…"},),
                       transactions=({"data": "<b64>", "encoding": "base64"},), transaction_indices=(57,)), None),
    # §5.6 BacktestError examples
    ("s5.6-invalidRequest", '{"method":"error","params":{"invalidRequest":{"error":"endSlot < startSlot"}}}',
     ev.ServerError(BacktestError("InvalidRequest", {"error": "endSlot < startSlot"})), None),
    ("s5.6-noMoreBlocks", '{"method":"error","params":"noMoreBlocks"}',
     ev.ServerError(BacktestError("NoMoreBlocks", {})), None),
    # §8 parallel example (server → client frames)
    ("s8-sessionCreated-A",
     '{"method":"sessionCreated","params":{"session_id":"s-A","rpc_endpoint":"/backtest/s-A","task_id":"t1"}}',
     SessionCreated(session_id="s-A", rpc_endpoint="/backtest/s-A", task_id="t1"), None),
    ("s8-sessionEventV2-status",
     '{"method":"sessionEventV2","params":{"session_id":"s-A","seq_id":1,'
     '"event":{"method":"status","params":{"status":"startingRuntime"}}}}',
     SessionEventV2(session_id="s-A", seq_id=1, event=ev.Status("startingRuntime")), None),
    ("s8-sessionCreated-B",
     '{"method":"sessionCreated","params":{"session_id":"s-B","rpc_endpoint":"/backtest/s-B","task_id":"t2"}}',
     SessionCreated(session_id="s-B", rpc_endpoint="/backtest/s-B", task_id="t2"), None),
    ("s8-sessionsCreatedV2",
     '{"method":"sessionsCreatedV2","params":{"control_session_id":"ctl-9","session_ids":["s-A","s-B"],'
     '"task_ids":["t1","t2"],"start_slots":[400000000,400050000],"end_slots":[400049999,400099999]}}',
     SessionsCreatedV2(control_session_id="ctl-9", session_ids=("s-A", "s-B"), task_ids=("t1", "t2"),
                       start_slots=(400000000, 400050000), end_slots=(400049999, 400099999)), None),
    ("s8-sessionEventV2-ready",
     '{"method":"sessionEventV2","params":{"session_id":"s-B","seq_id":1,"event":{"method":"readyForContinue"}}}',
     SessionEventV2(session_id="s-B", seq_id=1, event=ev.ReadyForContinue()), None),
]


_SPEC = {e[0]: e[1] for e in SPEC_EXAMPLES}


@pytest.mark.parametrize("text,expected,seq", [e[1:] for e in SPEC_EXAMPLES], ids=[e[0] for e in SPEC_EXAMPLES])
def test_every_spec_example_decodes_to_its_typed_value(text, expected, seq, assert_fields):
    frame = protocol.decode_response(text)
    assert isinstance(frame, protocol.Frame)
    assert frame.seq_id == seq
    assert_fields(frame.message, expected)


def test_bytes_frames_decode_like_text(assert_fields):
    text = '{"seqId":9,"method":"slotNotification","params":400000000}'
    frame = protocol.decode_response(text.encode())
    assert frame.seq_id == 9
    assert_fields(frame.message, ev.Slot(400000000))


def test_summary_fields_are_named_counters():
    s = protocol.decode_response(_SPEC["s4-ex-completed"]).message.summary
    assert (s.correct_simulation, s.incorrect_simulation, s.execution_errors, s.balance_diff, s.log_diff,
            s.unsanitizable) == (812, 3, 2, 1, 4, 0)
    assert s.reroute_stats is None
    assert s.extra == {}


def test_session_attached_is_not_session_created():
    created = protocol.decode_response(_SPEC["s4-sessionCreated-task-null"]).message
    attached = protocol.decode_response(_SPEC["s4-sessionCreated-task-null"].replace("sessionCreated", "sessionAttached")).message
    assert type(created) is SessionCreated
    assert type(attached) is SessionAttached


# ----------------------------------------------------------------------------- sessionEventV2: every kind

_EVENT_KINDS = [
    ("readyForContinue", {"method": "readyForContinue"}, ev.ReadyForContinue()),
    ("readyForContinue-null", {"method": "readyForContinue", "params": None}, ev.ReadyForContinue()),
    ("slotNotification", {"method": "slotNotification", "params": 400010001}, ev.Slot(400010001)),
    ("paused", {"method": "paused", "params": {"slot": 417811172, "batchIndex": 3}}, ev.Paused(417811172, 3)),
    ("paused-no-batch", {"method": "paused", "params": {"slot": 417811172}}, ev.Paused(417811172, None)),
    ("discoveryBatch",
     {"method": "discoveryBatch", "params": {"slot": 5, "batchIndex": 0, "matched": [{"programExecuted": JUP}],
                                             "transactions": [], "transactionIndices": [1, 2]}},
     ev.DiscoveryBatch(5, 0, ({"programExecuted": JUP},), (), (1, 2))),
    ("error", {"method": "error", "params": {"advanceSlotFailed": {"slot": 7, "error": "boom"}}},
     ev.ServerError(BacktestError("AdvanceSlotFailed", {"slot": 7, "error": "boom"}))),
    ("error-bare", {"method": "error", "params": "sessionOwnerMismatch"},
     ev.ServerError(BacktestError("SessionOwnerMismatch"))),
    ("success", {"method": "success"}, Success()),
    ("success-null", {"method": "success", "params": None}, Success()),
    ("completed", {"method": "completed", "params": {"summary": {"correctSimulation": 812, "incorrectSimulation": 3,
                                                                 "executionErrors": 2, "balanceDiff": 1,
                                                                 "logDiff": 4, "unsanitizable": 0}}},
     ev.Completed(SUMMARY_812)),
    ("completed-no-summary", {"method": "completed", "params": {}}, ev.Completed(None)),
    ("status", {"method": "status", "params": {"status": "executedBlockTransactions"}},
     ev.Status("executedBlockTransactions")),
]


@pytest.mark.parametrize("event,expected", [k[1:] for k in _EVENT_KINDS], ids=[k[0] for k in _EVENT_KINDS])
def test_session_event_v2_carries_every_event_kind(event, expected, assert_fields):
    text = json.dumps({"method": "sessionEventV2", "params": {"session_id": "sub-1", "seq_id": 42, "event": event}})
    frame = protocol.decode_response(text)
    assert frame.seq_id is None  # the per-sub-session cursor lives inside params, not at the top level
    assert_fields(frame.message, SessionEventV2(session_id="sub-1", seq_id=42, event=expected))


def test_session_event_v2_with_unknown_or_non_event_method_is_unknown_inside():
    for method in ("somethingNew", "sessionCreated", "sessionEventV2"):
        event = {"method": method, "params": {"x": 1}}
        text = json.dumps({"method": "sessionEventV2", "params": {"session_id": "s", "seq_id": 1, "event": event}})
        msg = protocol.decode_response(text).message
        assert msg == SessionEventV2("s", 1, Unknown(method, {"x": 1})), method


# ----------------------------------------------------------------------------------- seqId wrapper (§2.1)


@pytest.mark.parametrize("seq_key", ["seqId", "seq_id"])
@pytest.mark.parametrize("seq", [0, 1, 123, 2**64 - 1])
def test_seq_id_is_popped_from_the_top_level(seq_key, seq):
    frame = protocol.decode_response(json.dumps({seq_key: seq, "method": "slotNotification", "params": 77}))
    assert frame.seq_id == seq
    assert frame.message == ev.Slot(77)


def test_seq_id_absent_or_null_means_unwrapped():
    assert protocol.decode_response('{"method":"success"}').seq_id is None
    assert protocol.decode_response('{"seqId":null,"method":"success"}').seq_id is None


def test_wrapped_and_bare_frames_decode_to_the_same_message():
    bare = protocol.decode_response('{"method":"paused","params":{"slot":9,"batchIndex":2}}')
    wrapped = protocol.decode_response('{"seqId":4,"method":"paused","params":{"slot":9,"batchIndex":2}}')
    assert bare.message == wrapped.message == ev.Paused(9, 2)
    assert (bare.seq_id, wrapped.seq_id) == (None, 4)


# ---------------------------------------------------------------------------------- params: null (§2)


@pytest.mark.parametrize("method,expected", [
    ("readyForContinue", ev.ReadyForContinue()),
    ("success", Success()),
    ("completed", ev.Completed(None)),
])
def test_params_null_equals_absent_for_unit_variants(method, expected):
    absent = protocol.decode_response(json.dumps({"method": method})).message
    null = protocol.decode_response(json.dumps({"method": method, "params": None})).message
    assert absent == null == expected


# ------------------------------------------------------------------------------------- casings (L1, L2)

_CASINGS = [
    ("sessionCreated-camel",
     {"method": "sessionCreated", "params": {"sessionId": "x", "rpcEndpoint": "/backtest/x", "taskId": "t"}},
     SessionCreated("x", "/backtest/x", "t")),
    ("sessionAttached-camel",
     {"method": "sessionAttached", "params": {"sessionId": "x", "rpcEndpoint": "http://h/backtest/x"}},
     SessionAttached("x", "http://h/backtest/x", None)),
    ("sessionsCreatedV2-camel",
     {"method": "sessionsCreatedV2", "params": {"controlSessionId": "c", "sessionIds": ["a"], "taskIds": ["t"],
                                                "startSlots": [10], "endSlots": [20]}},
     SessionsCreatedV2("c", ("a",), ("t",), (10,), (20,))),
    ("parallelSessionAttachedV2-camel",
     {"method": "parallelSessionAttachedV2", "params": {"controlSessionId": "c", "sessionIds": ["a", "b"]}},
     ParallelSessionAttachedV2("c", ("a", "b"), ())),
    ("sessionEventV2-camel",
     {"method": "sessionEventV2", "params": {"sessionId": "s", "seqId": 3, "event": {"method": "readyForContinue"}}},
     SessionEventV2("s", 3, ev.ReadyForContinue())),
    ("paused-snake", {"method": "paused", "params": {"slot": 1, "batch_index": 4}}, ev.Paused(1, 4)),
    ("discoveryBatch-snake",
     {"method": "discoveryBatch", "params": {"slot": 1, "batch_index": 4, "matched": [{"programExecuted": JUP}],
                                             "transactions": [], "transaction_indices": [8]}},
     ev.DiscoveryBatch(1, 4, ({"programExecuted": JUP},), (), (8,))),
    ("summary-snake",
     {"method": "completed", "params": {"summary": {"correct_simulation": 812, "incorrect_simulation": 3,
                                                    "execution_errors": 2, "balance_diff": 1, "log_diff": 4,
                                                    "unsanitizable": 0, "reroute_stats": None}}},
     ev.Completed(SUMMARY_812)),
]


@pytest.mark.parametrize("obj,expected", [c[1:] for c in _CASINGS], ids=[c[0] for c in _CASINGS])
def test_both_casings_are_accepted(obj, expected, assert_fields):
    assert_fields(protocol.decode_response(json.dumps(obj)).message, expected)


def test_sessions_created_v2_without_ranges_leaves_them_none():
    """§10: the caller must see that the ranges are missing (server too old) rather than get guessed ones."""
    msg = protocol.decode_response(
        '{"method":"sessionsCreatedV2","params":{"control_session_id":"c","session_ids":["a","b"]}}').message
    assert msg == SessionsCreatedV2("c", ("a", "b"), (), None, None)


# ---------------------------------------------------------------------------------------- L6: unknowns


def test_unknown_method_decodes_to_unknown_with_its_params():
    frame = protocol.decode_response('{"seqId":3,"method":"brandNewThing","params":{"a":[1,2]}}')
    assert frame.message == Unknown("brandNewThing", {"a": [1, 2]})
    assert frame.seq_id == 3
    assert protocol.decode_response('{"method":"brandNewThing"}').message == Unknown("brandNewThing", None)


@pytest.mark.parametrize("status", ["preparingBundle", "programAccountsLoaded", "someFutureStatus"])
def test_status_strings_pass_through_unchanged(status):
    assert protocol.decode_response(json.dumps({"method": "status", "params": {"status": status}})).message \
        == ev.Status(status)


def test_unknown_fields_are_ignored_and_unknown_summary_counters_kept_in_extra():
    msg = protocol.decode_response(
        '{"method":"sessionCreated","params":{"session_id":"a","rpc_endpoint":"/backtest/a","shiny":true}}').message
    assert msg == SessionCreated("a", "/backtest/a", None)
    done = protocol.decode_response(
        '{"method":"completed","params":{"summary":{"correctSimulation":1,"newCounter":9}}}').message
    assert done.summary.correct_simulation == 1
    assert done.summary.incorrect_simulation == 0
    assert done.summary.extra == {"newCounter": 9}


# ---------------------------------------------------------------------------- BacktestError (L4, §10.1)

_ERROR_FORMS = [
    ("tagged-camel", {"invalidRequest": {"error": "bad"}}, "InvalidRequest", {"error": "bad"}),
    ("tagged-pascal", {"InvalidRequest": {"error": "bad"}}, "InvalidRequest", {"error": "bad"}),
    ("tagged-snake", {"invalid_request": {"error": "bad"}}, "InvalidRequest", {"error": "bad"}),
    ("tagged-screaming", {"INVALID_REQUEST": {"error": "bad"}}, "InvalidRequest", {"error": "bad"}),
    ("tagged-camel-fields", {"bundleNotFound": {"startSlot": 1, "endSlot": 2}}, "BundleNotFound",
     {"start_slot": 1, "end_slot": 2}),
    ("tagged-snake-fields", {"noProducedBlocksInRange": {"start_slot": 1, "end_slot": 2}},
     "NoProducedBlocksInRange", {"start_slot": 1, "end_slot": 2}),
    ("tagged-null-content", {"sessionOwnerMismatch": None}, "SessionOwnerMismatch", {}),
    ("tagged-newtype-content", {"internal": "db down"}, "Internal", {"error": "db down"}),
    ("bare-camel", "noMoreBlocks", "NoMoreBlocks", {}),
    ("bare-pascal", "NoMoreBlocks", "NoMoreBlocks", {}),
    ("bare-snake", "no_more_blocks", "NoMoreBlocks", {}),
    ("code", {"code": "sessionNotFound", "session_id": "abc"}, "SessionNotFound", {"session_id": "abc"}),
    ("code-camel-fields", {"code": "sessionNotFound", "sessionId": "abc"}, "SessionNotFound",
     {"session_id": "abc"}),
    ("type", {"type": "SessionOwnershipBusy", "reason": "deploy"}, "SessionOwnershipBusy", {"reason": "deploy"}),
    ("type-snake", {"type": "clerk_error", "error": "x"}, "ClerkError", {"error": "x"}),
    ("unknown-variant", {"quantumFluxError": {"detail": 1}}, "QuantumFluxError", {"detail": 1}),
]


@pytest.mark.parametrize("params,variant,fields", [e[1:] for e in _ERROR_FORMS], ids=[e[0] for e in _ERROR_FORMS])
def test_error_params_normalise_to_pascal_variant_and_fields(params, variant, fields, assert_fields):
    direct = protocol.decode_error(params)
    assert_fields(direct, BacktestError(variant, fields))
    framed = protocol.decode_response(json.dumps({"method": "error", "params": params})).message
    assert_fields(framed, ev.ServerError(BacktestError(variant, fields)))


_TERMINAL = sorted(protocol.TERMINAL_VARIANTS)


def test_terminal_table_covers_section_10_1():
    assert set(_TERMINAL) == {
        "SessionNotFound", "SessionOwnerMismatch", "SessionNameTaken", "InvalidRequest", "InvalidTransactionEncoding",
        "InvalidTransactionFormat", "InvalidAccountEncoding", "InvalidAccountOwner", "InvalidAccountPubkey",
        "InvalidBlockhashFormat", "BundleNotFound", "NoProducedBlocksInRange", "NoMoreBlocks", "AdvanceSlotFailed",
        "FinalizeSlotFailed", "InitializingSysvarsFailed", "SimulationError"}


@pytest.mark.parametrize("variant", _TERMINAL)
def test_terminal_variants_are_terminal_in_every_wire_form(variant):
    camel = variant[:1].lower() + variant[1:]
    for params in (camel, {camel: {"error": "x"}}, {"code": variant}):
        err = protocol.decode_error(params)
        assert err.variant == variant
        assert err.terminal is True, params


@pytest.mark.parametrize("params", ["sessionOwnershipBusy", {"sessionOwnershipBusy": {"reason": "handoff"}},
                                    {"clerkError": {"error": "x"}}, {"internal": {"error": "x"}}, "Internal",
                                    {"SESSION_OWNERSHIP_BUSY": {"reason": "deploy"}}])
def test_transient_and_retry_once_variants_are_not_terminal(params):
    assert protocol.decode_error(params).terminal is False


@pytest.mark.parametrize("params", ["somethingUnheardOf", {"mysteryFailure": {"a": 1}}, {"code": "newCode"}])
def test_unknown_variants_are_terminal(params):
    assert protocol.decode_error(params).terminal is True


@pytest.mark.parametrize("text", ["continue while busy", "Continue While Busy: slot 9 executing"])
def test_continue_while_busy_is_the_one_non_terminal_invalid_request(text):
    err = protocol.decode_error({"invalidRequest": {"error": text}})
    assert err.variant == "InvalidRequest"
    assert protocol.is_continue_busy(err) is True
    assert err.terminal is False


def test_other_invalid_requests_stay_terminal():
    err = protocol.decode_error({"invalidRequest": {"error": "endSlot < startSlot"}})
    assert protocol.is_continue_busy(err) is False
    assert err.terminal is True
    # the phrase only counts on InvalidRequest
    internal = protocol.decode_error({"simulationError": {"error": "continue while busy"}})
    assert protocol.is_continue_busy(internal) is False
    assert internal.terminal is True


def test_error_message_names_variant_and_detail():
    assert str(protocol.decode_error({"invalidRequest": {"error": "endSlot < startSlot"}})) \
        == "InvalidRequest: endSlot < startSlot"
    assert str(protocol.decode_error("noMoreBlocks")) == "NoMoreBlocks"
    assert str(protocol.decode_error({"sessionOwnershipBusy": {"reason": "deploy"}})) == "SessionOwnershipBusy: deploy"


def test_bundle_ready_is_a_known_startup_status_and_unknown_ones_pass_through():
    status = protocol.decode_response('{"method":"status","params":{"status":"bundleReady"}}').message
    assert status == ev.Status("bundleReady") and status.known
    assert ev.STARTUP_STATUSES.index("bundleReady") == ev.STARTUP_STATUSES.index("startingRuntime") - 1
    other = protocol.decode_response('{"method":"status","params":{"status":"warmingCaches"}}').message
    assert other == ev.Status("warmingCaches") and not other.known


# -------------------------------------------------------------------------------------- §1.3 ranges


def test_available_ranges_example_decodes():
    body = json.loads('[{"bundle_start_slot":400000000,"bundle_start_slot_utc":"2026-01-15T12:00:00Z",'
                      '"max_bundle_end_slot":400049999,"max_bundle_end_slot_utc":"2026-01-15T17:30:00Z",'
                      '"max_bundle_size":50000,"kind":null,"scope":null}]')
    assert protocol.decode_available_ranges(body) == [AvailableRange(
        bundle_start_slot=400000000, bundle_start_slot_utc="2026-01-15T12:00:00Z", max_bundle_end_slot=400049999,
        max_bundle_end_slot_utc="2026-01-15T17:30:00Z", max_bundle_size=50000, kind=None, scope=None)]


def test_available_ranges_camel_case_of_the_docs_listing_decodes_with_snapshot_fields():
    body = json.loads('[{"bundleStartSlot":400000000,"bundleStartSlotUtc":"2026-01-15T12:00:00Z",'
                      '"maxBundleEndSlot":400049999,"maxBundleEndSlotUtc":"2026-01-15T17:30:00Z",'
                      '"maxBundleSize":50000,"kind":"blocks","scope":"global",'
                      '"snapshotSlot":399999999,"snapshotSlotUtc":"2026-01-15T11:59:59Z","newKey":1}]')
    assert protocol.decode_available_ranges(body) == [AvailableRange(
        bundle_start_slot=400000000, bundle_start_slot_utc="2026-01-15T12:00:00Z", max_bundle_end_slot=400049999,
        max_bundle_end_slot_utc="2026-01-15T17:30:00Z", max_bundle_size=50000, kind="blocks", scope="global",
        snapshot_slot=399999999, snapshot_slot_utc="2026-01-15T11:59:59Z")]


def test_available_ranges_pass_unknown_kind_and_scope_through():
    [r] = protocol.decode_available_ranges([{"bundleStartSlot": 1, "kind": "account_state", "scope": "team"}])
    assert (r.kind, r.scope, r.snapshot_slot) == ("account_state", "team", None)
    [r] = protocol.decode_available_ranges([{"bundle_start_slot": 1, "kind": "user", "snapshot_slot": 0}])
    assert (r.kind, r.snapshot_slot) == ("user", 0)


@pytest.mark.parametrize("body", [{}, None, [{"bundle_start_slot": "1"}], [{}], [5]])
def test_malformed_available_ranges_raise_protocol_error(body):
    with pytest.raises(ProtocolError):
        protocol.decode_available_ranges(body)


# ---------------------------------------------------------------------------------- malformed frames

_SE = '{{"method":"sessionEventV2","params":{{"session_id":"s","seq_id":1,"event":{}}}}}'
MALFORMED = [
    # not JSON / not an object
    ("empty", ""),
    ("garbage", "hello world"),
    ("truncated", '{"method":"readyForContinue"'),
    ("single-quotes", "{'method':'success'}"),
    ("nan-literal", '{"method":"slotNotification","params":NaN}'),
    ("invalid-utf8", b'{"method":"\xff"}'),
    ("array", '[{"method":"success"}]'),
    ("empty-array", "[]"),
    ("string", '"readyForContinue"'),
    ("number", "123"),
    ("null", "null"),
    ("bool", "true"),
    # method
    ("no-method", "{}"),
    ("params-only", '{"params":123}'),
    ("method-number", '{"method":5}'),
    ("method-null", '{"method":null}'),
    ("method-list", '{"method":["success"]}'),
    ("method-object", '{"method":{"name":"success"}}'),
    # seqId
    ("seq-bool", '{"seqId":true,"method":"success"}'),
    ("seq-string", '{"seqId":"1","method":"success"}'),
    ("seq-negative", '{"seqId":-1,"method":"success"}'),
    ("seq-float", '{"seqId":1.5,"method":"success"}'),
    ("seq-over-u64", '{"seqId":18446744073709551616,"method":"success"}'),
    # slotNotification
    ("slot-string", '{"method":"slotNotification","params":"123"}'),
    ("slot-negative", '{"method":"slotNotification","params":-5}'),
    ("slot-float", '{"method":"slotNotification","params":1.5}'),
    ("slot-bool", '{"method":"slotNotification","params":true}'),
    ("slot-null", '{"method":"slotNotification","params":null}'),
    ("slot-absent", '{"method":"slotNotification"}'),
    ("slot-list", '{"method":"slotNotification","params":[1]}'),
    ("slot-over-u64", '{"method":"slotNotification","params":18446744073709551616}'),
    ("slot-object-string", '{"method":"slotNotification","params":{"slot":"1"}}'),
    # sessionCreated / sessionAttached
    ("created-no-session-id", '{"method":"sessionCreated","params":{"rpc_endpoint":"/backtest/x"}}'),
    ("created-no-rpc", '{"method":"sessionCreated","params":{"session_id":"x"}}'),
    ("created-id-int", '{"method":"sessionCreated","params":{"session_id":5,"rpc_endpoint":"/backtest/x"}}'),
    ("created-task-int",
     '{"method":"sessionCreated","params":{"session_id":"x","rpc_endpoint":"/backtest/x","task_id":3}}'),
    ("created-params-null", '{"method":"sessionCreated","params":null}'),
    ("created-params-list", '{"method":"sessionCreated","params":["x","/backtest/x"]}'),
    ("attached-no-session-id", '{"method":"sessionAttached","params":{"rpc_endpoint":"/backtest/x"}}'),
    # sessionsCreatedV2 / parallelSessionAttachedV2
    ("v2-no-control-id", '{"method":"sessionsCreatedV2","params":{"session_ids":["a"]}}'),
    ("v2-no-session-ids", '{"method":"sessionsCreatedV2","params":{"control_session_id":"c"}}'),
    ("v2-ids-string", '{"method":"sessionsCreatedV2","params":{"control_session_id":"c","session_ids":"a"}}'),
    ("v2-id-int", '{"method":"sessionsCreatedV2","params":{"control_session_id":"c","session_ids":[1]}}'),
    ("v2-start-string",
     '{"method":"sessionsCreatedV2","params":{"control_session_id":"c","session_ids":["a"],"start_slots":["1"]}}'),
    ("v2-end-negative",
     '{"method":"sessionsCreatedV2","params":{"control_session_id":"c","session_ids":["a"],"end_slots":[-1]}}'),
    ("pattached-no-control", '{"method":"parallelSessionAttachedV2","params":{"session_ids":["a"]}}'),
    ("pattached-params-null", '{"method":"parallelSessionAttachedV2","params":null}'),
    # sessionEventV2
    ("event-string", _SE.format('"readyForContinue"')),
    ("event-null", _SE.format("null")),
    ("event-list", _SE.format('[{"method":"success"}]')),
    ("event-no-method", _SE.format('{"params":5}')),
    ("event-bad-slot", _SE.format('{"method":"slotNotification","params":"5"}')),
    ("event-paused-no-slot", _SE.format('{"method":"paused","params":{"batchIndex":1}}')),
    ("event-absent", '{"method":"sessionEventV2","params":{"session_id":"s","seq_id":1}}'),
    ("event-no-seq", '{"method":"sessionEventV2","params":{"session_id":"s","event":{"method":"success"}}}'),
    ("event-seq-negative",
     '{"method":"sessionEventV2","params":{"session_id":"s","seq_id":-2,"event":{"method":"success"}}}'),
    ("event-seq-bool",
     '{"method":"sessionEventV2","params":{"session_id":"s","seq_id":true,"event":{"method":"success"}}}'),
    ("event-no-session", '{"method":"sessionEventV2","params":{"seq_id":1,"event":{"method":"success"}}}'),
    ("event-params-string", '{"method":"sessionEventV2","params":"x"}'),
    # paused / discoveryBatch
    ("paused-no-slot", '{"method":"paused","params":{"batchIndex":3}}'),
    ("paused-params-null", '{"method":"paused","params":null}'),
    ("paused-params-int", '{"method":"paused","params":417811172}'),
    ("paused-batch-string", '{"method":"paused","params":{"slot":1,"batchIndex":"3"}}'),
    ("paused-slot-negative", '{"method":"paused","params":{"slot":-1}}'),
    ("discovery-no-batch", '{"method":"discoveryBatch","params":{"slot":1,"matched":[]}}'),
    ("discovery-no-slot", '{"method":"discoveryBatch","params":{"batchIndex":1}}'),
    ("discovery-matched-object", '{"method":"discoveryBatch","params":{"slot":1,"batchIndex":1,"matched":{"programExecuted":"x"}}}'),
    ("discovery-indices-string",
     '{"method":"discoveryBatch","params":{"slot":1,"batchIndex":1,"transactionIndices":["1"]}}'),
    # status / completed
    ("status-int", '{"method":"status","params":{"status":5}}'),
    ("status-missing", '{"method":"status","params":{}}'),
    ("status-null", '{"method":"status","params":null}'),
    ("completed-list", '{"method":"completed","params":[]}'),
    ("completed-summary-string", '{"method":"completed","params":{"summary":"all good"}}'),
    ("completed-counter-negative", '{"method":"completed","params":{"summary":{"correctSimulation":-1}}}'),
    ("completed-counter-string", '{"method":"completed","params":{"summary":{"logDiff":"4"}}}'),
    # error
    ("error-null", '{"method":"error","params":null}'),
    ("error-absent", '{"method":"error"}'),
    ("error-empty-object", '{"method":"error","params":{}}'),
    ("error-empty-string", '{"method":"error","params":""}'),
    ("error-number", '{"method":"error","params":500}'),
    ("error-list", '{"method":"error","params":["invalidRequest"]}'),
    ("error-two-keys", '{"method":"error","params":{"invalidRequest":{},"internal":{}}}'),
]


@pytest.mark.parametrize("raw", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_frames_raise_protocol_error(raw):
    with pytest.raises(ProtocolError) as info:
        protocol.decode_response(raw)
    assert type(info.value) is ProtocolError
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    assert info.value.raw == text[:200]


@pytest.mark.parametrize("raw", [
    "x" * 1_000_000,
    "{" * 100_000,
    '{"method":"slotNotification","params":"' + "9" * 50_000 + '"}',
    b"\x00" * 10_000,
])
def test_huge_bad_frames_keep_at_most_200_chars_of_raw(raw):
    with pytest.raises(ProtocolError) as info:
        protocol.decode_response(raw)
    assert info.value.raw is not None
    assert 0 < len(info.value.raw) <= 200
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("depth", [2_000, 200_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_protocol_error_not_a_recursion_error(opener, depth):
    raw = opener * depth
    with pytest.raises(ProtocolError):
        protocol.decode_response(raw)
    with pytest.raises(ProtocolError):
        protocol.decode_subscription_frame(raw)


# ------------------------------------------------------------------------------------------ fuzzing

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_METHODS = sorted(protocol._DECODERS) + ["brandNew", "transactionNotification"]
_KEYS = ["session_id", "sessionId", "rpc_endpoint", "seq_id", "seqId", "event", "slot", "batchIndex", "status",
         "summary", "control_session_id", "session_ids", "start_slots", "end_slots", "code", "type", "error",
         "invalidRequest", "method", "params", "subscription", "result", "jsonrpc", "id", "value", "context"]
_params = _json_values | st.dictionaries(st.sampled_from(_KEYS), _json_values, max_size=6)
_frames = st.fixed_dictionaries(
    {"method": st.sampled_from(_METHODS)},
    optional={"params": _params, "seqId": _json_values, "id": _json_values, "result": _params, "error": _params})
_nested = st.builds(
    lambda frame, sid, seq: {"method": "sessionEventV2", "params": {"session_id": sid, "seq_id": seq, "event": frame}},
    _frames | _json_values, st.text(max_size=5) | st.integers(), st.integers(min_value=-3, max_value=2**65))

_FUZZ = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_protocol_error(decode, raw) -> None:
    try:
        decode(raw)
    except ProtocolError as exc:
        assert exc.raw is None or len(exc.raw) <= 200
    # any other exception type propagates and fails the test


@_FUZZ
@given(raw=st.text(max_size=300) | st.binary(max_size=300))
def test_fuzz_random_text_only_raises_protocol_error(raw):
    _only_protocol_error(protocol.decode_response, raw)
    _only_protocol_error(protocol.decode_subscription_frame, raw)


@_FUZZ
@given(value=_json_values)
def test_fuzz_random_json_values_only_raise_protocol_error(value):
    raw = json.dumps(value)
    _only_protocol_error(protocol.decode_response, raw)
    _only_protocol_error(protocol.decode_subscription_frame, raw)


@_FUZZ
@given(obj=_frames | _nested)
def test_fuzz_frame_shaped_json_only_raises_protocol_error(obj):
    raw = json.dumps(obj)
    _only_protocol_error(protocol.decode_response, raw)
    _only_protocol_error(protocol.decode_subscription_frame, raw)


# --- the inline fast path of the two per-slot frames (status, slotNotification with a seqId) -------------------

def _general(text: str) -> object:
    """What decode_response's general path makes of ``text``: (message, seq_id), or the ProtocolError class."""
    obj = json.loads(text)
    try:
        seq = obj["seqId"] if "seqId" in obj else obj.get("seq_id")
        seq_id = None if seq is None else protocol._u64(seq, "seqId")
        return protocol._decode_message(obj), seq_id
    except protocol._Bad:
        return ProtocolError


@pytest.mark.parametrize("text", [
    '{"seqId":5,"method":"status","params":{"status":"decodedTransactions"}}',
    '{"seqId":0,"method":"status","params":{"status":"somethingNew","extra":1}}',
    '{"seqId":18446744073709551615,"method":"status","params":{"status":"bundleReady"}}',
    '{"seqId":7,"method":"slotNotification","params":300000001}',
    '{"seqId":7,"method":"slotNotification","params":0}',
    '{"seqId":7,"method":"slotNotification","params":18446744073709551615}',
    # every one below leaves the fast path, and must come out as the general path decides
    '{"seqId":7,"method":"slotNotification","params":18446744073709551616}',
    '{"seqId":7,"method":"slotNotification","params":-1}',
    '{"seqId":7,"method":"slotNotification","params":true}',
    '{"seqId":7,"method":"slotNotification","params":"5"}',
    '{"seqId":7,"method":"slotNotification","params":{"slot":5}}',
    '{"seqId":7,"method":"slotNotification"}',
    '{"seqId":5,"method":"status","params":{"status":5}}',
    '{"seqId":5,"method":"status","params":{}}',
    '{"seqId":5,"method":"status","params":"startingRuntime"}',
    '{"seqId":5,"method":"status"}',
    '{"seqId":-1,"method":"status","params":{"status":"bundleReady"}}',
    '{"seqId":true,"method":"slotNotification","params":5}',
    '{"seqId":18446744073709551616,"method":"slotNotification","params":5}',
    '{"seqId":null,"seq_id":9,"method":"slotNotification","params":5}',
    '{"seq_id":9,"method":"status","params":{"status":"bundleReady"}}',
])
def test_per_slot_frames_decode_as_the_general_path_does(text, assert_fields):
    expected = _general(text)
    if expected is ProtocolError:
        with pytest.raises(ProtocolError):
            protocol.decode_response(text)
        return
    frame = protocol.decode_response(text.encode())
    message, seq = expected
    assert frame.seq_id == seq
    assert_fields(frame.message, message)
    assert frame.message == message and hash(frame.message) == hash(message)


def test_the_fast_slot_event_is_the_constructed_one():
    slot = protocol.decode_response(b'{"seqId":1,"method":"slotNotification","params":42}').message
    assert type(slot) is ev.Slot and slot == ev.Slot(42) and repr(slot) == "Slot(slot=42)"
    assert vars(slot) == vars(ev.Slot(42))
    with pytest.raises(dataclasses.FrozenInstanceError):
        slot.slot = 1  # type: ignore[misc]  # still frozen


# --- the stdlib backend decodes bytes as json.loads(bytes) does ---------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"a":1}', b'{"s":"caf\xc3\xa9"}', b'[1,2]', b'{ }', b'7', b'  {"a": [true, null]}  ',
    b'\xef\xbb\xbf{"bom":1}',  # UTF-8 BOM: json.loads reads it as utf-8-sig
    '{"u16":1}'.encode("utf-16-le"), '{"u16":1}'.encode("utf-16-be"), '{"u16":1}'.encode("utf-16"),
    '{"u32":1}'.encode("utf-32"),
    b'{"s":"\xed\xa0\x80"}',  # an encoded surrogate: json.loads decodes with surrogatepass
    b'{"s":"\xff"}', b'{"a":1', b'{"a":1}x', b'', b'{', b'1e999', b'{"a":NaN}',
    # str frames (and whitespace around, extra data, a BOM): json.loads(str)'s results and errors
    '{"a":[1,{"b":null}]}', ' {"a":1}', '{"a":1} \n', '{"a":1} {"b":2}', '', '   ', '\ufeff{"a":1}', '"x"',
    '{"a":"\x01"}', '{"a":1,}', '[' * 5000 + ']' * 5000, '{"k":"caf\u00e9 \ud83d"}',
])
def test_stdlib_loads_of_bytes_matches_json_loads(raw, monkeypatch):
    monkeypatch.setattr(protocol, "_orjson", None)
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)) as info:
            protocol.loads(raw)
        assert str(info.value) == str(exc)
        return
    got = protocol.loads(raw)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
