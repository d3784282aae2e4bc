"""Encoding of requests (PROTOCOL.md §3, §8, §9.1, §9.2): every request is compared, as a whole dict and key by key,
with the JSON that PROTOCOL.md shows."""
from __future__ import annotations

import base64
import json

import pytest

from simclient import protocol
from simclient.builders import Continue, CreateSession, oracle_update, program_executed
from simclient.protocol import AccountData

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
ADDR = "SysvarC1ock11111111111111111111111111111111"
TX_B64 = base64.b64encode(b"\x01" + b"\x07" * 64 + b"message-bytes").decode()


def assert_wire(actual, expected_json: str) -> None:
    """``actual`` equals the spec's JSON text as a whole dict and key by key, and survives ``protocol.dumps``."""
    expected = json.loads(expected_json)
    _same(actual, expected, "request")
    assert actual == expected
    assert json.loads(protocol.dumps(actual)) == expected


def _same(actual, expected, path):
    assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for key in expected:
            _same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _same(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# ------------------------------------------------------------------------------------- §3.1 create

SPEC_CREATE = (
    '{"method":"createBacktestSession","params":{"startSlot":400000000,"endSlot":400001000,'
    '"signerFilter":[],"sendSummary":true,"disconnectTimeoutSecs":900,"capacityWaitTimeoutSecs":900,'
    '"discoveries":[{"programExecuted":"JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"}]}}'
)


def _spec_create(**overrides):
    kwargs = dict(start_slot=400000000, end_slot=400001000, send_summary=True, disconnect_timeout_secs=900,
                  capacity_wait_timeout_secs=900, discoveries=(program_executed(JUP),))
    kwargs.update(overrides)
    return CreateSession(**kwargs)


def test_create_matches_the_spec_example():
    assert_wire(protocol.encode_create(_spec_create()), SPEC_CREATE)


def test_create_accepts_a_plain_program_id_as_discovery():
    assert_wire(protocol.encode_create(_spec_create(discoveries=(JUP,))), SPEC_CREATE)


def test_create_parallel_puts_the_flag_beside_the_params():
    expected = json.loads(SPEC_CREATE)
    expected["params"]["parallel"] = True
    assert_wire(protocol.encode_create(_spec_create(), parallel=True), json.dumps(expected))


def test_create_single_session_omits_parallel():
    assert "parallel" not in protocol.encode_create(_spec_create(), parallel=False)["params"]
    assert "parallel" not in protocol.encode_create(_spec_create())["params"]


def test_create_section_8_parallel_example():
    """§8 shows only the non-default keys; ``signerFilter: []`` and ``sendSummary: false`` are the defaults the
    encoder always spells out (absent and default are equivalent, §3.1)."""
    create = CreateSession(start_slot=400000000, end_slot=400099999, disconnect_timeout_secs=900)
    spec = json.loads('{"method":"createBacktestSession","params":{"startSlot":400000000,"endSlot":400099999,'
                      '"parallel":true,"disconnectTimeoutSecs":900}}')
    spec["params"].update({"signerFilter": [], "sendSummary": False})
    assert_wire(protocol.encode_create(create, parallel=True), json.dumps(spec))


def test_create_minimal_defaults():
    assert_wire(protocol.encode_create(CreateSession(start_slot=5, end_slot=6)),
                '{"method":"createBacktestSession","params":{"startSlot":5,"endSlot":6,"signerFilter":[],'
                '"sendSummary":false,"disconnectTimeoutSecs":900}}')


def test_create_zero_disconnect_timeout_is_sent():
    params = protocol.encode_create(CreateSession(start_slot=5, end_slot=6, disconnect_timeout_secs=0))["params"]
    assert params["disconnectTimeoutSecs"] == 0


@pytest.mark.parametrize("start,count", [(400000000, 1000), (0, 0), (10, 1), (400000000, 99999)])
def test_slot_count_becomes_inclusive_end_slot(start, count):
    create = CreateSession(start_slot=start, slot_count=count)
    params = protocol.encode_create(create)["params"]
    assert params["startSlot"] == start
    assert params["endSlot"] == start + count
    assert "slotCount" not in params and "slot_count" not in params
    assert create.total_slots == count + 1


def test_slot_count_and_end_slot_encode_identically():
    by_count = protocol.encode_create(_spec_create(end_slot=None, slot_count=1000))
    assert_wire(by_count, SPEC_CREATE)


def test_create_optional_fields_in_camel_case():
    create = CreateSession(start_slot=1, end_slot=2, signer_filter=[TOKEN, JUP], extra_compute_units=50_000,
                           discoveries=(oracle_update([JUP], [TOKEN]),), actions=({"kind": "opaque"},),
                           capacity_wait_timeout_secs=0, extra={"replayAccountState": True})
    assert_wire(protocol.encode_create(create), json.dumps({
        "method": "createBacktestSession",
        "params": {"startSlot": 1, "endSlot": 2, "signerFilter": [TOKEN, JUP], "sendSummary": False,
                   "disconnectTimeoutSecs": 900, "capacityWaitTimeoutSecs": 0, "extraComputeUnits": 50000,
                   "discoveries": [{"oracleUpdate": {"programs": [JUP], "accounts": [TOKEN]}}],
                   "actions": [{"kind": "opaque"}], "replayAccountState": True}}))


# ----------------------------------------------------------------------------------- §3.2 continue


def test_continue_defaults():
    assert_wire(protocol.encode_continue(Continue()),
                '{"method":"continue","params":{"advanceCount":1,"transactions":[],"modifyAccountStates":{}}}')


def test_continue_matches_the_spec_example_shape():
    data = bytes(range(80))
    cont = Continue(advance_count=1, transactions=[TX_B64],
                    modify_account_states={ADDR: AccountData(lamports=33594, data=data, owner=SYSTEM)})
    expected = {"method": "continue", "params": {
        "advanceCount": 1, "transactions": [TX_B64],
        "modifyAccountStates": {ADDR: {"data": {"data": base64.b64encode(data).decode(), "encoding": "base64"},
                                       "executable": False, "lamports": 33594,
                                       "owner": "11111111111111111111111111111111", "space": 80}}}}
    assert_wire(protocol.encode_continue(cont), json.dumps(expected))


def test_continue_builder_helpers_encode_bytes_and_accounts():
    raw = b"\x01" + b"\x09" * 64 + b"msg"
    cont = (Continue(advance_count=7).push_transaction(raw).push_transaction(TX_B64)
            .modify_account(TOKEN, AccountData(lamports=1, data=b"\x00\x01", owner=JUP, executable=True, space=165)))
    assert_wire(protocol.encode_continue(cont), json.dumps({"method": "continue", "params": {
        "advanceCount": 7, "transactions": [base64.b64encode(raw).decode(), TX_B64],
        "modifyAccountStates": {TOKEN: {"data": {"data": "AAE=", "encoding": "base64"}, "executable": True,
                                        "lamports": 1, "owner": JUP, "space": 165}}}}))


def test_account_data_space_defaults_to_data_length():
    assert protocol.encode_account_data(AccountData(lamports=0, data=b"abc"))["space"] == 3
    assert protocol.encode_account_data(AccountData(lamports=0))["space"] == 0
    assert protocol.encode_account_data(AccountData(lamports=0))["data"] == {"data": "", "encoding": "base64"}


def test_account_data_wire_round_trip():
    acct = AccountData(lamports=1_000_000, data=b"\x05" * 165, owner=TOKEN, executable=False)
    wire = protocol.encode_account_data(acct)
    assert wire == {"data": {"data": base64.b64encode(b"\x05" * 165).decode(), "encoding": "base64"},
                    "executable": False, "lamports": 1000000, "owner": TOKEN, "space": 165}
    assert AccountData.from_wire(wire) == AccountData(lamports=1_000_000, data=b"\x05" * 165, owner=TOKEN,
                                                      executable=False, space=165)


# --------------------------------------------------------------------------- §3.3–§3.8 other requests


def test_continue_to():
    assert_wire(protocol.encode_continue_to(417811172, 3),
                '{"method":"continueTo","params":{"slot":417811172,"batchIndex":3}}')


def test_close_has_no_params_key():
    assert_wire(protocol.encode_close(), '{"method":"closeBacktestSession"}')


def test_attach_with_last_sequence():
    assert_wire(protocol.encode_attach("<id>", 42),
                '{"method":"attachBacktestSession","params":{"session_id":"<id>","last_sequence":42}}')


def test_attach_without_last_sequence_omits_it():
    assert_wire(protocol.encode_attach("<id>", None), '{"method":"attachBacktestSession","params":{"session_id":"<id>"}}')


def test_attach_with_last_sequence_zero_keeps_it():
    assert protocol.encode_attach("s", 0)["params"] == {"session_id": "s", "last_sequence": 0}


def test_resume():
    assert_wire(protocol.encode_resume(), '{"method":"resumeAttachedSession"}')


def test_attach_parallel():
    assert_wire(protocol.encode_attach_parallel("<ctl-id>", {"<sub-id-1>": 17, "<sub-id-2>": 9}),
                '{"method":"attachParallelControlSessionV2","params":{"control_session_id":"<ctl-id>",'
                '"last_sequences":{"<sub-id-1>":17,"<sub-id-2>":9}}}')


def test_attach_parallel_with_no_cursors_sends_empty_map():
    assert_wire(protocol.encode_attach_parallel("c", {}),
                '{"method":"attachParallelControlSessionV2","params":{"control_session_id":"c","last_sequences":{}}}')


def test_continue_v1_superset_form_of_section_3_5():
    assert_wire(protocol.encode_continue_v1("<sub-id>", Continue()),
                '{"method":"continueSessionV1","params":{"session_id":"<sub-id>","sessionId":"<sub-id>",'
                '"request":{"advanceCount":1,"transactions":[],"modifyAccountStates":{}},'
                '"advanceCount":1,"transactions":[],"modifyAccountStates":{}}}')


def test_continue_v1_section_8_example():
    assert_wire(protocol.encode_continue_v1("backtest_01b", Continue(advance_count=50000)),
                '{"method":"continueSessionV1","params":{"session_id":"backtest_01b","sessionId":"backtest_01b",'
                '"request":{"advanceCount":50000,"transactions":[],"modifyAccountStates":{}},'
                '"advanceCount":50000,"transactions":[],"modifyAccountStates":{}}}')


def test_continue_v1_nests_and_flattens_the_full_continue_params():
    cont = Continue(advance_count=3, transactions=[TX_B64]).modify_account(ADDR, AccountData(lamports=5))
    inner = protocol.encode_continue(cont)["params"]
    assert protocol.encode_continue_v1("s", cont) == {
        "method": "continueSessionV1",
        "params": {"session_id": "s", "sessionId": "s", "request": inner, **inner}}


def test_continue_to_v1():
    assert_wire(protocol.encode_continue_to_v1("<sub-id>", 417811172, 3),
                '{"method":"continueToSessionV1","params":{"session_id":"<sub-id>","sessionId":"<sub-id>",'
                '"request":{"slot":417811172,"batchIndex":3},"slot":417811172,"batchIndex":3}}')


def test_continue_to_extra_fields_pass_through_in_every_form():
    assert protocol.encode_continue_to(5, 1, {"after": True})["params"] == {"slot": 5, "batchIndex": 1, "after": True}
    v1 = protocol.encode_continue_to_v1("s", 5, 1, {"after": True})["params"]
    assert v1["request"] == {"slot": 5, "batchIndex": 1, "after": True} and v1["after"] is True
    assert protocol.minimal_v1(protocol.encode_continue_to_v1("s", 5, 1, {"after": True}))["params"] == {
        "session_id": "s", "request": {"slot": 5, "batchIndex": 1, "after": True}}


def test_close_v1():
    assert_wire(protocol.encode_close_v1("<sub-id>"),
                '{"method":"closeSessionV1","params":{"session_id":"<sub-id>","sessionId":"<sub-id>"}}')


def test_minimal_form_is_snake_id_plus_nested_request():
    assert protocol.minimal_v1(protocol.encode_continue_v1("s", Continue(advance_count=7))) == {
        "method": "continueSessionV1",
        "params": {"session_id": "s", "request": {"advanceCount": 7, "transactions": [], "modifyAccountStates": {}}}}
    assert protocol.minimal_v1(protocol.encode_close_v1("s")) == {"method": "closeSessionV1",
                                                                  "params": {"session_id": "s"}}


def _dup(text="duplicate field `session_id`"):
    return protocol.BacktestError("InvalidRequest", {"error": text})


def test_v1_form_superset_until_duplicate_field_then_minimal_for_good():
    form = protocol.V1Form()
    req = protocol.encode_continue_v1("a", Continue())
    assert form.shape(req, gen=1) is req
    assert form.shape(protocol.encode_continue_v1("b", Continue()), gen=1)["params"]["sessionId"] == "b"
    assert form.shape(protocol.encode_continue(Continue()), gen=1)["method"] == "continue"  # not V1: untouched
    assert form.on_error(_dup(), gen=1) is True  # the switch
    assert form.fallbacks == 1 and form.minimal
    assert form.on_error(_dup(), gen=1) is False  # the echo answering the second superset request
    assert form.on_error(_dup(), gen=1) is None  # one more: the minimal form was refused too
    assert form.shape(req, gen=1) == protocol.minimal_v1(req)
    assert form.shape(req, gen=2) == protocol.minimal_v1(req)  # kept across reconnects
    assert form.fallbacks == 1


def test_v1_form_ignores_other_errors_and_errors_without_a_superset_request():
    form = protocol.V1Form()
    assert form.on_error(_dup(), gen=1) is None  # nothing V1 sent: not ours
    form.shape(protocol.encode_close_v1("a"), gen=1)
    assert form.on_error(protocol.BacktestError("InvalidRequest", {"error": "continue while busy"}), gen=1) is None
    assert form.on_error(protocol.BacktestError("SessionNotFound", {"session_id": "a"}), gen=1) is None
    assert form.on_error(_dup(), gen=2) is None  # sent on another socket: never answered here
    assert not form.minimal


def test_is_duplicate_field():
    assert protocol.is_duplicate_field(_dup("Duplicate field `sessionId` at line 1 column 80"))
    assert not protocol.is_duplicate_field(protocol.BacktestError("Internal", {"error": "duplicate field"}))


# ------------------------------------------------------------------------------- §9 subscriptions


def test_transaction_subscribe_matches_section_9_1():
    req = protocol.encode_subscribe(1, "transaction", protocol.transaction_filter(["<programId>", "..."]),
                                    replay_from_slot=400000123, compression="zstd")
    assert_wire(req, '{"jsonrpc":"2.0","id":1,"method":"transactionSubscribe",'
                     '"params":[{"programs":["<programId>", "..."]},{"commitment":"confirmed","encoding":"json",'
                     '"maxSupportedTransactionVersion":0,"replayFromSlot":400000123,"compression":"zstd"}]}')


def test_transaction_subscribe_without_replay_or_compression():
    req = protocol.encode_subscribe(3, "transaction", protocol.transaction_filter([JUP]))
    assert_wire(req, json.dumps({"jsonrpc": "2.0", "id": 3, "method": "transactionSubscribe", "params": [
        {"programs": [JUP]}, {"commitment": "confirmed", "encoding": "json", "maxSupportedTransactionVersion": 0}]}))


def test_account_diff_subscribe_matches_section_9_2():
    req = protocol.encode_subscribe(2, "accountDiff", protocol.account_diff_filter(JUP), replay_from_slot=400000124)
    assert_wire(req, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "accountDiffSubscribe", "params": [
        {"address": JUP, "address_type": "program"}, {"replayFromSlot": 400000124}]}))


def test_replay_from_slot_zero_is_sent():
    req = protocol.encode_subscribe(2, "accountDiff", protocol.account_diff_filter(JUP), replay_from_slot=0)
    assert req["params"][1] == {"replayFromSlot": 0}


def test_account_diff_subscribe_fresh_has_empty_config():
    req = protocol.encode_subscribe(9, "accountDiff", protocol.account_diff_filter(JUP))
    assert req["params"] == [{"address": JUP, "address_type": "program"}, {}]


# ----------------------------------------------------------------------------------------- dumps

ALL_REQUESTS = [
    protocol.encode_create(_spec_create(), parallel=True),
    protocol.encode_continue(Continue(transactions=[TX_B64]).modify_account(ADDR, AccountData(lamports=1,
                                                                                              data=b"\xff" * 9))),
    protocol.encode_continue_to(1, 0),
    protocol.encode_close(),
    protocol.encode_attach("é-unicode-✓", 7),
    protocol.encode_resume(),
    protocol.encode_attach_parallel("c", {"a": 1}),
    protocol.encode_continue_v1("a", Continue()),
    protocol.encode_continue_to_v1("a", 1, 2),
    protocol.encode_close_v1("a"),
    protocol.encode_subscribe(1, "transaction", protocol.transaction_filter([JUP]), 5, "zstd"),
    protocol.encode_subscribe(2, "accountDiff", protocol.account_diff_filter(JUP), 2**63),
]


@pytest.mark.usefixtures("json_backend")
@pytest.mark.parametrize("request_obj", ALL_REQUESTS, ids=[r["method"] for r in ALL_REQUESTS])
def test_dumps_round_trips_through_json_loads(request_obj):
    text = protocol.dumps(request_obj)
    assert isinstance(text, str)
    assert json.loads(text) == request_obj
    assert protocol.loads(text) == request_obj
    assert "\n" not in text
