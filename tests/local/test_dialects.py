"""Dialects (simclient.local.dialect): each reading of the open points, seen from a raw client (no SDK)."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest

from simclient.local import DIALECTS, Dialect, FaultPlan

from .rawclient import (control, create, data_ws, drain_subscription, recv_text, recv_until, send, session_id_of,
                        subscribe, until_method)

TX = "AQ" + "A" * 86 + "=="  # base64 of a 1-signature blob (content does not matter to the simulator)


def _parallel(sim, ws) -> List[Tuple[str, int, int]]:
    send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 19, "parallel": True})
    msgs = [json.loads(t) for t in recv_until(ws, until_method("sessionsCreatedV2"))]
    p = msgs[-1]["params"]
    return list(zip(p["session_ids"], p["start_slots"], p["end_slots"]))


def _answer(ws) -> Dict[str, Any]:
    """The next frame that is not a sub-session's status/slot progress: an error, or the sub-session's idle event."""
    while True:
        m = json.loads(recv_text(ws))
        if m["method"] == "error":
            return m
        if m["method"] == "sessionEventV2" and m["params"]["event"]["method"] in ("readyForContinue", "completed",
                                                                                    "error", "paused"):
            return m


SUPERSET = lambda sid: {"session_id": sid, "sessionId": sid,  # noqa: E731
                        "request": {"advanceCount": 3, "transactions": [TX]}, "advanceCount": 3, "transactions": [TX]}
NESTED_SNAKE = lambda sid: {"session_id": sid, "request": {"advanceCount": 3, "transactions": [TX]}}  # noqa: E731
NESTED_CAMEL = lambda sid: {"sessionId": sid, "request": {"advanceCount": 3, "transactions": [TX]}}  # noqa: E731
FLAT_SNAKE = lambda sid: {"session_id": sid, "advanceCount": 3, "transactions": [TX]}  # noqa: E731


@pytest.mark.parametrize("dialect, form, outcome", [
    # the superset form is read as meant everywhere but under a serde alias
    *[(d, SUPERSET, "ran") for d in DIALECTS if d != "strict"],
    ("strict", SUPERSET, "duplicate field `session_id`"),
    ("strict", NESTED_SNAKE, "ran"), ("strict", NESTED_CAMEL, "ran"),
    ("nested-snake", NESTED_SNAKE, "ran"), ("nested-snake", NESTED_CAMEL, "missing field `session_id`"),
    ("nested-snake", FLAT_SNAKE, "missing field `request`"),
    ("nested-camel", NESTED_SNAKE, "missing field `sessionId`"),
    # a flattening server ignores a nested request: a default continue, one slot and no transactions (silent)
    ("flattened-snake", NESTED_SNAKE, "default"), ("flattened-snake", FLAT_SNAKE, "ran"),
    ("flattened-camel", NESTED_CAMEL, "default"), ("flattened-camel", FLAT_SNAKE, "missing field `sessionId`"),
    ("evidenced", NESTED_CAMEL, "ran"), ("evidenced", FLAT_SNAKE, "ran"),
])
def test_v1_readings(make_sim, dialect, form, outcome) -> None:
    sim = make_sim(dialect=dialect)
    ws = control(sim)
    try:
        (sid, start, _end), *_ = _parallel(sim, ws)
        send(ws, "continueSessionV1", form(sid))
        answer = _answer(ws)
        server = sim.session(sid)
        if outcome in ("ran", "default"):
            assert answer["params"]["event"]["method"] == "readyForContinue", answer
            assert server.continues_started == 1
            ran_to = server.pos[0] - 1
            if outcome == "ran":
                assert ran_to == start + 2 and len(server.continue_transactions) == 1
            else:
                assert ran_to == start and server.continue_transactions == []
        else:
            assert answer == {"method": "error", "params": {"invalidRequest": {"error": answer["params"][
                "invalidRequest"]["error"]}}}
            assert outcome in answer["params"]["invalidRequest"]["error"]
            assert server.continues_started == 0
    finally:
        ws.close()


def test_strict_counts_rejections_and_close_v1_follows_the_dialect(make_sim) -> None:
    sim = make_sim(dialect="strict")
    ws = control(sim)
    try:
        (sid, _s, _e), *_ = _parallel(sim, ws)
        send(ws, "closeSessionV1", {"session_id": sid, "sessionId": sid})
        assert "duplicate field" in json.loads(recv_text(ws))["params"]["invalidRequest"]["error"]
        assert sim.stats["duplicate_field_rejections"] == 1
        send(ws, "closeSessionV1", {"sessionId": sid})  # one casing: read through the alias
        while True:
            m = json.loads(recv_text(ws))
            if m["method"] == "sessionEventV2" and m["params"]["event"] == {"method": "success"}:
                break
        # the success is written before the teardown runs; a request read after it is handled after it (a repeated
        # close is answered with success again), so its answer is the barrier
        send(ws, "closeSessionV1", {"sessionId": sid})
        while True:
            m = json.loads(recv_text(ws))
            if m["method"] == "sessionEventV2" and m["params"]["event"] == {"method": "success"}:
                break
        assert sim.session(sid).state == "closed"
    finally:
        ws.close()


@pytest.mark.parametrize("dialect, marker", [("evidenced", "subscriptionComplete"), ("nested-snake", "null")])
def test_end_of_stream_per_dialect(make_sim, dialect, marker) -> None:
    sim = make_sim(dialect=dialect)
    ws = control(sim)
    sub = None
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 4))
        sub = data_ws(sim, sid)
        ack = subscribe(sub, "transactionSubscribe", [{"programs": sim.program_ids}])
        send(ws, "continue", {"advanceCount": 5})
        recv_until(ws, until_method("completed"))
        texts = []
        while True:
            text = recv_text(sub)
            texts.append(json.loads(text))
            if "subscriptionComplete" in text or '"result":null' in text:
                break
        end = texts[-1]
        if marker == "null":
            assert end["method"] == "transactionNotification" and end["params"] == {"subscription": ack["result"],
                                                                                     "result": None}
        else:
            assert end == {"jsonrpc": "2.0", "method": "subscriptionComplete", "params": {"subscription": ack["result"]}}
        assert drain_subscription(sub)["close_code"] == 1000
        sub = None
    finally:
        ws.close()
        if sub is not None:
            sub.close()


def test_early_complete_fault_answers_only_before_the_first_continue(make_sim) -> None:
    sim = make_sim(faults=FaultPlan().early_complete_subscribes(5))
    ws = control(sim)
    subs = []
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 4))
        subs.append(data_ws(sim, sid))
        ack = subscribe(subs[0], "transactionSubscribe", [{"programs": sim.program_ids}])
        assert json.loads(recv_text(subs[0])) == {"jsonrpc": "2.0", "method": "subscriptionComplete",
                                                  "params": {"subscription": ack["result"]}}
        assert sim.session(sid).subs == []  # not kept: zero results
        send(ws, "continue", {"advanceCount": 1})
        recv_until(ws, until_method("readyForContinue"))
        subs.append(data_ws(sim, sid))
        subscribe(subs[1], "transactionSubscribe", [{"programs": sim.program_ids}])
        assert len(sim.session(sid).subs) == 1  # after a continue: a normal subscription
        assert sim.stats["early_completes_sent"] == 1
    finally:
        ws.close()
        for s in subs:
            s.close()


def test_defer_cleanup_is_accepted_and_ignored(make_sim) -> None:
    sim = make_sim()
    ws = control(sim)
    try:
        frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 2, deferCleanup=True)
        assert session_id_of(frames).startswith("backtest_")
    finally:
        ws.close()


def test_dialect_is_settable_while_running_and_validated(make_sim) -> None:
    sim = make_sim()
    assert sim.dialect is DIALECTS["evidenced"]
    sim.dialect = "strict"
    assert sim.dialect.aliases and "strict" in repr(sim)
    sim.dialect = Dialect(name="mine", v1_params="flattened", eos="null")
    assert sim.dialect.v1_params == "flattened"
    with pytest.raises(ValueError, match="unknown dialect"):
        sim.dialect = "nope"
    with pytest.raises(ValueError, match="v1_params"):
        Dialect(v1_params="sideways")
