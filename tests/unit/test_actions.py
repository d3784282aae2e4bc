"""Scheduled actions without a simulator: builders and their validation, the wire encoding (PROTOCOL §3.1.1), the
``actionSubscribe`` kind (§9.2.1), the ActionResult converter in every casing, the worker's dedup across a replay
(scripted socket), the step barrier with action results, and the local simulator's parsing of what we send."""
from __future__ import annotations

import base64
import json
import queue
import threading
from typing import Any

import pytest

from simclient import (
    AccountData,
    CreateSession,
    ScheduledAction,
    after_every_slot,
    after_match,
    after_slot,
    before_every_slot,
    before_match,
    before_slot,
    oracle_update,
    program_executed,
)
from simclient import events as ev
from simclient import kinds, protocol
from simclient.control import Route
from simclient.errors import ProtocolError
from simclient.session import _BaseSession
from simclient.stats import SessionStats
from simclient.subscriptions import BarrierPassed, SlotMark, Subscription
from simclient.testing import fast_config

from scripted_ws import FakeSubscription, Script

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
SYSTEM = "11111111111111111111111111111111"
TX = b"\x01" + b"\x07" * 64 + b"message-bytes"
TX_B64 = base64.b64encode(TX).decode()


def action(**kw: Any) -> ScheduledAction:
    kw.setdefault("anchor", after_slot([10]))
    kw.setdefault("transactions", [TX])
    return ScheduledAction(**kw)


# ------------------------------------------------------------------------------------------ builders + wire


@pytest.mark.parametrize("anchor, wire", [
    (before_slot([5, 7]), {"beforeSlot": {"slots": [5, 7]}}),
    (after_slot([5, 7]), {"afterSlot": {"slots": [5, 7]}}),
    (before_every_slot(3), {"beforeEverySlot": {"everyNSlots": 3}}),
    (after_every_slot(1), {"afterEverySlot": {"everyNSlots": 1}}),
    (before_match(program_executed(JUP)), {"beforeMatch": {"filter": {"programExecuted": JUP}}}),
    (after_match(JUP), {"afterMatch": {"filter": {"programExecuted": JUP}}}),
    (after_match(oracle_update([JUP], [TOKEN])),
     {"afterMatch": {"filter": {"oracleUpdate": {"programs": [JUP], "accounts": [TOKEN]}}}}),
])
def test_every_anchor_encodes_externally_tagged_camel_case(anchor, wire):
    n = len(anchor.slots) or 1
    a = ScheduledAction(anchor, transactions=[TX] * n)
    assert protocol.encode_scheduled_action(a)["anchor"] == wire


def test_full_action_wire_shape():
    a = ScheduledAction(after_slot([400000010]), transactions=[TX], kind="send", label="probe", return_accounts=[TOKEN],
                        account_overrides={TOKEN: AccountData(lamports=7, data=b"ab", owner=SYSTEM)},
                        feeds_reroute=True)
    create = CreateSession(start_slot=400000000, slot_count=20, actions=[a])
    params = protocol.encode_create(create)["params"]
    assert params["actions"] == [{
        "anchor": {"afterSlot": {"slots": [400000010]}}, "kind": "send", "transactions": [TX_B64],
        "accountOverrides": {TOKEN: {"data": {"data": "YWI=", "encoding": "base64"}, "executable": False,
                                     "lamports": 7, "owner": SYSTEM, "space": 2}},
        "feedsReroute": True, "returnAccounts": [TOKEN], "label": "probe"}]
    assert "replayAccountState" not in params
    json.dumps(params)  # plain JSON all the way down


def test_defaults_and_transaction_forms():
    a = ScheduledAction(before_every_slot(2), transactions=[TX, TX_B64, bytearray(TX)])
    assert a.kind == "simulate" and a.label is None and a.feeds_reroute is False
    assert a.transactions == (TX_B64,) * 3
    wire = protocol.encode_scheduled_action(a)
    assert wire["accountOverrides"] == {} and wire["returnAccounts"] == [] and wire["label"] is None
    hash(a)  # frozen and hashable (the override mapping is left out of the hash)


@pytest.mark.parametrize("make, field", [
    (lambda: action(anchor=after_slot([1, 2])), "transactions"),             # 2 slots, 1 transaction
    (lambda: action(anchor=before_slot([1]), transactions=[TX, TX]), "transactions"),
    (lambda: after_slot([]), "slots"),
    (lambda: after_slot([-1]), "slots"),
    (lambda: after_slot(5), "slots"),
    (lambda: before_every_slot(0), "before_every_slot.n"),
    (lambda: after_every_slot(-3), "after_every_slot.n"),
    (lambda: after_every_slot(True), "after_every_slot.n"),
    (lambda: before_match("not-a-key"), "before_match.filter"),
    (lambda: after_match({"programExecuted": "bad"}), "after_match.filter"),
    (lambda: after_match({"somethingElse": JUP}), "after_match.filter"),
    (lambda: action(transactions=[]), "transactions"),
    (lambda: action(transactions=TX), "transactions"),
    (lambda: action(transactions=[b""]), "transactions[0]"),
    (lambda: action(transactions=["***"]), "transactions[0]"),
    (lambda: action(transactions=[42]), "transactions[0]"),
    (lambda: action(kind="commit"), "kind"),
    (lambda: action(label=5), "label"),
    (lambda: action(return_accounts=["nope"]), "return_accounts"),
    (lambda: action(return_accounts=TOKEN), "return_accounts"),
    (lambda: action(account_overrides={"bad": AccountData(1)}), "account_overrides"),
    (lambda: action(account_overrides={TOKEN: {"lamports": 1}}), "account_overrides"),
    (lambda: action(feeds_reroute="yes"), "feeds_reroute"),
    (lambda: action(anchor={"afterSlot": {"slots": [1]}}), "anchor"),
])
def test_bad_actions_raise_value_error_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_create_session_validates_actions():
    ok = action()
    assert CreateSession(start_slot=1, slot_count=1, actions=[ok]).actions == (ok,)
    assert CreateSession(start_slot=1, slot_count=1, actions=ok).actions == (ok,)
    with pytest.raises(ValueError, match=r"actions\[1\]"):
        CreateSession(start_slot=1, slot_count=1, actions=[ok, 5])
    with pytest.raises(ValueError, match="actions"):
        CreateSession(start_slot=1, slot_count=1, actions="x")


def test_send_is_refused_with_replay_account_state():
    send = action(kind="send")
    with pytest.raises(ValueError, match=r"actions\[0\].*replay_account_state"):
        CreateSession(start_slot=1, slot_count=1, actions=[send], replay_account_state=True)
    with pytest.raises(ValueError, match="replay_account_state"):
        CreateSession(start_slot=1, slot_count=1, actions=[{"kind": "send"}], replay_account_state=True)
    sim = CreateSession(start_slot=1, slot_count=1, actions=[action()], replay_account_state=True)
    assert protocol.encode_create(sim)["params"]["replayAccountState"] is True
    assert CreateSession(start_slot=1, slot_count=1, actions=[send]).actions == (send,)
    with pytest.raises(ValueError, match="replay_account_state"):
        CreateSession(start_slot=1, slot_count=1, replay_account_state=1)


def test_action_transactions_encoding_default_is_plain_base64():
    assert protocol.ACTION_TRANSACTIONS_ENCODING == "base64"
    assert protocol.encode_action_transactions([TX_B64]) == [TX_B64]
    with pytest.raises(ValueError, match="encoding"):
        protocol.encode_action_transactions([TX_B64], "gzip")


def test_action_transactions_zstd_form_round_trips():
    zstandard = pytest.importorskip("zstandard")
    (blob,) = protocol.encode_action_transactions([TX_B64], "zstd")
    raw = base64.b64decode(blob)
    assert raw[:4] == b"\x28\xb5\x2f\xfd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == TX


def test_zstandard_is_not_imported_by_the_default_encoding():
    import subprocess
    import sys

    code = ("import sys, simclient; from simclient import protocol as p; "
            "p.encode_action_transactions(['AQ==']); assert 'zstandard' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ the kind (§9.2.1)


def test_action_kind_is_keyless_with_an_empty_filter():
    spec = kinds.kind(kinds.ACTIONS)
    assert spec.name == "action" and spec.needs_programs is False and spec.key_attr == "key"
    assert [f for f, _label in spec.requests([])] == [{}]
    assert protocol.encode_subscribe(3, "action", {}, 400000005) == {
        "jsonrpc": "2.0", "id": 3, "method": "actionSubscribe", "params": [{}, {"replayFromSlot": 400000005}]}


# ------------------------------------------------------------------------------------------ converter

UI = {"lamports": 42, "data": [base64.b64encode(b"hi").decode(), "base64"], "owner": SYSTEM, "executable": False,
      "rentEpoch": 0, "space": 2}
CAMEL = {"context": {"slot": 400000010}, "slot": 400000010, "batchIndex": 3, "actionIndex": 1, "label": "probe",
         "committed": True, "err": None, "logs": ["Program log: hi"], "unitsConsumed": 1234, "fee": 5000,
         "returnData": {"programId": SYSTEM, "data": ["AQ==", "base64"]}, "accounts": [UI, None],
         "matched": {"data": base64.b64encode(b"txwithmeta").decode(), "encoding": "base64"}}
SNAKE = {{"batchIndex": "batch_index", "actionIndex": "action_index", "unitsConsumed": "units_consumed",
          "returnData": "return_data"}.get(k, k): v for k, v in CAMEL.items()}
EXPECTED = ev.ActionResult(slot=400000010, action_index=1, batch_index=3, label="probe", committed=True, err=None,
                           logs=("Program log: hi",), units_consumed=1234, fee=5000,
                           return_data={"programId": SYSTEM, "data": ["AQ==", "base64"]},
                           accounts=(AccountData(lamports=42, data=b"hi", owner=SYSTEM, space=2), None),
                           matched=CAMEL["matched"])


@pytest.mark.parametrize("result", [CAMEL, SNAKE, {"context": {"slot": 400000010}, "value": CAMEL}],
                         ids=["camel", "snake", "context-value"])
def test_converter_reads_every_casing(result):
    got = protocol.action_result_from_result(result)
    assert got == EXPECTED
    assert got.key == (400000010, 1, 3)
    assert got.matched_bytes() == b"txwithmeta"
    assert got.accounts[0].data == b"hi"


def test_converter_slot_from_context_and_optional_fields_absent():
    got = protocol.action_result_from_result({"context": {"slot": 9}, "action_index": 0, "logs": []})
    assert got == ev.ActionResult(slot=9, action_index=0)
    assert got.batch_index is None and got.fee is None and got.accounts == () and got.success
    assert got.key == (9, 0, None)


def test_converter_reads_the_older_transaction_outcomes_err():
    err = {"InstructionError": [1, {"Custom": 1}]}
    old = {"slot": 5, "action_index": 2, "committed": False,
           "transaction_outcomes": [{"err": None}, {"err": err}]}
    got = protocol.action_result_from_result(old)
    assert got.err == err and not got.success
    camel_old = {"slot": 5, "actionIndex": 2, "transactionOutcomes": [{"err": err}]}
    assert protocol.action_result_from_result(camel_old).err == err
    assert protocol.action_result_from_result({"slot": 5, "action_index": 2,
                                               "transaction_outcomes": [{"err": None}]}).err is None


@pytest.mark.parametrize("result", [
    None, [], {"slot": 5}, {"slot": -1, "action_index": 0}, {"slot": 5, "action_index": "x"},
    {"slot": 5, "action_index": 0, "committed": "yes"}, {"slot": 5, "action_index": 0, "logs": [3]},
    {"slot": 5, "action_index": 0, "accounts": [{"lamports": 1}]}, {"slot": 5, "action_index": 0, "accounts": 4},
])
def test_bad_action_results_raise_protocol_error(result):
    with pytest.raises(ProtocolError):
        protocol.action_result_from_result(result)


# ------------------------------------------------------------------------------------------ worker: dedup


def action_note(slot: int, action_index: int, batch: Any = None, sub_id: int = 41) -> str:
    return protocol.dumps({"jsonrpc": "2.0", "method": "actionNotification", "params": {
        "subscription": sub_id, "result": {"context": {"slot": slot}, "slot": slot, "actionIndex": action_index,
                                           "batchIndex": batch, "committed": False, "logs": []}}})


def test_worker_resumes_from_the_last_slot_and_drops_replayed_results():
    script = Script()
    script.replay = [action_note(7, 0), action_note(7, 1, 2)]  # the cursor's slot again, on the resubscribe
    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    sub = Subscription(kinds.ACTIONS, [], "http://127.0.0.1:1/backtest/s1", sink,
                       fast_config(keepalive_interval=0.05, keepalive_deadline=0.3, backoff_initial=0.0),
                       threading.Event(), 5, "s1", SessionStats(),
                       connection_factory=lambda url, key, timeout: script.open(url, key, timeout))
    sub.start()
    try:
        first = script.wait_conns(1)
        assert first.sent[0]["method"] == "actionSubscribe" and first.sent[0]["params"][0] == {}
        for text in (action_note(6, 0), action_note(7, 0), action_note(7, 1, 2)):
            first.frames.put((1, text))
        first.frames.put("die")
        second = script.wait_conns(2)
        assert second.sent[0]["params"] == [{}, {"replayFromSlot": 7}]
        second.frames.put((1, action_note(7, 1, 3)))   # same action, another batch: a new result
        second.frames.put((1, action_note(8, 0)))
        got = []
        while len(got) < 5:
            item = sink.get(timeout=5)
            if isinstance(item, ev.ActionResult):
                got.append(item.key)
            else:
                assert isinstance(item, SlotMark)
        assert got == [(6, 0, None), (7, 0, None), (7, 1, 2), (7, 1, 3), (8, 0, None)]
        assert sub.stats.duplicates_dropped == 2
    finally:
        sub.stop()
        sub.join(2.0)
    assert not sub.thread.is_alive()


# ------------------------------------------------------------------------------------------ consumer: barrier


def test_an_action_result_read_behind_the_step_end_is_delivered_before_it():
    sub = FakeSubscription("action")
    route = Route("sess-1", "http://x/backtest/sess-1", None)
    s = _BaseSession(None, route, fast_config())  # type: ignore[arg-type]
    s._subscriptions = [sub]  # type: ignore[list-item]
    result = ev.ActionResult(slot=1, action_index=0)
    status = ev.Status("decodedTransactions")
    for item in (ev.ReadyForContinue(), status, result, BarrierPassed(sub, 1)):  # type: ignore[arg-type]
        route.sink.put(item)
    assert [s.next_event(1.0) for _ in range(3)] == [result, ev.ReadyForContinue(), status]


# ------------------------------------------------------------------------------------------ local parsing


def _local_parse(actions: Any, replay: bool = False) -> Any:
    from simclient.local import wire as local_wire

    return local_wire.parse_create({"startSlot": 1, "endSlot": 2, "actions": actions,
                                    "replayAccountState": replay})


def test_local_simulator_parses_what_the_sdk_sends():
    a = ScheduledAction(before_slot([1, 2]), transactions=[TX, TX + b"x"], kind="send", label="l", return_accounts=[TOKEN],
                        account_overrides={TOKEN: AccountData(lamports=3)})
    req = _local_parse([protocol.encode_scheduled_action(a)])
    (p,) = req.actions
    assert (p.anchor, p.slots, p.kind, p.label, p.return_accounts) == ("beforeSlot", [1, 2], "send", "l", [TOKEN])
    assert p.transactions == [TX, TX + b"x"] and p.overrides[TOKEN]["lamports"] == 3


def test_local_simulator_also_reads_zstd_transactions_and_other_casings():
    pytest.importorskip("zstandard")
    (blob,) = protocol.encode_action_transactions([TX_B64], "zstd")
    req = _local_parse([{"anchor": {"after_every_slot": {"every_n_slots": 4}}, "kind": "Simulate",
                         "transactions": [blob]},
                        {"anchor": {"type": "beforeMatch", "filter": {"programExecuted": JUP}},
                         "transactions": [TX_B64]}])
    assert [(p.anchor, p.every, p.kind, p.transactions) for p in req.actions] == [
        ("afterEverySlot", 4, "simulate", [TX]), ("beforeMatch", 0, "simulate", [TX])]


@pytest.mark.parametrize("actions, replay", [
    ([{"anchor": {"afterSlot": {"slots": [1, 2]}}, "transactions": [TX_B64]}], False),
    ([{"anchor": {"afterEverySlot": {"everyNSlots": 0}}, "transactions": [TX_B64]}], False),
    ([{"anchor": {"sometimes": {}}, "transactions": [TX_B64]}], False),
    ([{"anchor": {"afterSlot": {"slots": [1]}}, "transactions": []}], False),
    ([{"anchor": {"afterSlot": {"slots": [1]}}, "transactions": ["***"]}], False),
    ([{"anchor": {"afterSlot": {"slots": [1]}}, "kind": "send", "transactions": [TX_B64]}], True),
])
def test_local_simulator_refuses_bad_actions(actions, replay):
    from simclient.local import wire as local_wire

    with pytest.raises(local_wire.RequestError):
        _local_parse(actions, replay)


# ------------------------------------------------------------------------------------------ run files


def test_run_recorders_take_action_results():
    from simclient.runfile import RunRecorder
    from simclient.runwriter import StreamingRunRecorder

    late = protocol.action_result_from_result(dict(CAMEL, slot=400000011))
    rec = RunRecorder(400000000, 400000020)
    rec.add_event(late)
    rec.add_event(EXPECTED)
    doc = rec.document(complete=True)
    json.dumps(doc)
    assert [a["slot"] for a in doc["actions"]] == [400000010, 400000011]
    first = doc["actions"][0]
    assert (first["action_index"], first["label"], first["committed"], first["units_consumed"]) == (1, "probe", True,
                                                                                                    1234)
    assert first["accounts"][0]["lamports"] == 42 and first["accounts"][1] is None
    assert "actions" not in RunRecorder(1, 2).document(complete=True)
    streamed = StreamingRunRecorder(400000000, 400000020)
    streamed.add_session("s", 400000000, 400000020)
    streamed.add_event("s", EXPECTED)  # ignored by the streamed writer, without error
    assert streamed.total == 0


def test_anchor_accepts_its_wire_name_and_refuses_unknown_variants():
    from simclient import ActionAnchor

    assert ActionAnchor("afterEverySlot", every_n_slots=2) == after_every_slot(2)
    assert ActionAnchor.before_match(JUP) == before_match(program_executed(JUP))
    with pytest.raises(ValueError, match="variant"):
        ActionAnchor("sometimes")


def test_field_order_follows_the_design_contract():
    # DESIGN.md: ScheduledAction(anchor, kind="simulate", transactions=(), ...); ActionResult(slot, batch_index,
    # action_index, ...): positional construction and ``match`` patterns depend on it
    a = ScheduledAction(after_slot([7]), "send", [TX])
    assert a.kind == "send" and a.transactions == (TX_B64,)
    with pytest.raises(ValueError, match=r"kind must be one of .*transactions=\[\.\.\.\]"):
        ScheduledAction(after_slot([7]), [TX])  # the transactions where kind goes
    import dataclasses

    assert [f.name for f in dataclasses.fields(ev.ActionResult)][:3] == ["slot", "batch_index", "action_index"]
    assert ev.ActionResult(5, 2, 1).key == (5, 1, 2)
