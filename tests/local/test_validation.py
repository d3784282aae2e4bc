"""Auth, request validation (§5.6 error frames, socket left open) and continue-while-busy (§7.1)."""
from __future__ import annotations

import json

import pytest
import requests
import websocket

from .rawclient import control, create, recv_text, recv_until, send, slot_frames, until_method


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_control_requires_the_api_key(sim, key) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        control(sim, key=key)
    assert exc.value.status_code == 401
    assert requests.get(f"{sim.http_url}/backtest", timeout=5).status_code == 401
    assert sim.stats["control_connections"] == 0


def test_other_api_key_configured(make_sim) -> None:
    sim = make_sim(api_key="s3cret")
    with pytest.raises(websocket.WebSocketBadStatusException):
        control(sim)
    ws = control(sim, key="s3cret")
    ws.close()


def _error(ws) -> dict:
    msg = json.loads(recv_text(ws))
    assert msg["method"] == "error", msg
    return msg["params"]


def test_each_validation_error_leaves_the_socket_open(sim) -> None:
    first, last = sim.first_slot, sim.last_slot
    skipped = next(s for s in range(first, last) if not sim.chain.is_produced(s))
    cases = [
        ({"startSlot": first + 5, "endSlot": first + 4}, {"invalidRequest": {"error": f"endSlot < startSlot "
                                                                               f"({first + 4} < {first + 5})"}}),
        ({"endSlot": first}, {"invalidRequest": {"error": "missing field `startSlot`"}}),
        ({"startSlot": first}, {"invalidRequest": {"error": "missing field `endSlot`"}}),
        ({"startSlot": "x", "endSlot": first}, None),
        ({"startSlot": -1, "endSlot": first}, None),
        ({"startSlot": first, "endSlot": first + 1, "disconnectTimeoutSecs": 901},
         {"invalidRequest": {"error": "disconnectTimeoutSecs must be <= 900 (got 901)"}}),
        ({"startSlot": first, "endSlot": first + 1, "sendSummary": "yes"}, None),
        ({"startSlot": first, "endSlot": first + 1, "discoveries": [{"programExecutedd": "x"}]}, None),
        ({"startSlot": first - 10, "endSlot": first + 1},
         {"bundleNotFound": {"start_slot": first - 10, "end_slot": first + 1}}),
        ({"startSlot": last, "endSlot": last + 1}, {"bundleNotFound": {"start_slot": last, "end_slot": last + 1}}),
        ({"startSlot": skipped, "endSlot": skipped},
         {"noProducedBlocksInRange": {"start_slot": skipped, "end_slot": skipped}}),
    ]
    ws = control(sim)
    try:
        for params, expected in cases:
            send(ws, "createBacktestSession", params)
            err = _error(ws)
            if expected is None:
                assert list(err) == ["invalidRequest"] and isinstance(err["invalidRequest"]["error"], str)
            else:
                assert err == expected
        send(ws, "createBacktestSession", "not an object")
        assert "invalidRequest" in _error(ws)
        ws.send("this is not json")
        assert "invalidRequest" in _error(ws)
        ws.send(json.dumps({"method": "frobnicate", "params": {}}))
        assert _error(ws) == {"invalidRequest": {"error": "unknown variant `frobnicate`"}}
        ws.send(json.dumps({"params": {}}))
        assert _error(ws) == {"invalidRequest": {"error": "missing field `method`"}}
        send(ws, "continue", {})                    # no session yet
        assert "invalidRequest" in _error(ws)
        # the socket is still usable
        frames = create(ws, startSlot=first, endSlot=first + 3)
        assert frames[-1] == '{"method":"readyForContinue"}'
        send(ws, "continue", {"advanceCount": 0})
        assert _error(ws) == {"invalidRequest": {"error": "advanceCount must be >= 1"}}
        send(ws, "continue", {"transactions": ["***"]})
        assert "invalidTransactionEncoding" in _error(ws)
        send(ws, "continue", {"modifyAccountStates": {"nope": {"lamports": 1}}})
        assert "invalidAccountPubkey" in _error(ws)
        send(ws, "continue", {"advanceCount": 1})
        assert recv_until(ws, until_method("readyForContinue"))[-1] == '{"method":"readyForContinue"}'
    finally:
        ws.close()
    assert sim.stats["invalid_requests"] >= len(cases)


def test_lenient_request_forms(sim) -> None:
    """V1 create params with parallel=false, snake_case keys, PascalCase method names (PROTOCOL §12)."""
    ws = control(sim)
    try:
        ws.send(json.dumps({"method": "CreateBacktestSession",
                            "params": {"start_slot": sim.first_slot, "end_slot": sim.first_slot + 2,
                                       "parallel": False, "preloadPrograms": [], "agents": None}}))
        assert recv_until(ws, until_method("readyForContinue"))[-1] == '{"method":"readyForContinue"}'
        ws.send(json.dumps({"method": "continue", "params": {"advance_count": 3}}))
        assert json.loads(recv_until(ws, until_method("completed"))[-1])["method"] == "completed"
    finally:
        ws.close()


def test_continue_while_busy_is_refused_not_queued(make_sim) -> None:
    sim = make_sim(slot_pace_ms=20)
    start = sim.first_slot
    ws = control(sim)
    try:
        create(ws, startSlot=start, endSlot=start + 30, disconnectTimeoutSecs=60)
        send(ws, "continue", {"advanceCount": 6})
        first = json.loads(recv_text(ws))                 # the session is executing now
        assert first["params"] == {"status": "decodedTransactions"}
        send(ws, "continue", {"advanceCount": 6})
        got = [recv_text(ws)] + recv_until(ws, until_method("readyForContinue"))
        msgs = [json.loads(t) for t in got]
        errors = [m for m in msgs if m["method"] == "error"]
        assert [e["params"] for e in errors] == [{"invalidRequest": {"error": "continue while busy"}}]
        assert "seqId" in errors[0]                        # sequenced like any event
        seqs = [first["seqId"]] + [m["seqId"] for m in msgs]
        assert seqs == list(range(first["seqId"], first["seqId"] + len(seqs)))
        slots = [m["params"] for m in msgs if m["method"] == "slotNotification"]
        assert slots == [s for s in range(start, start + 6) if sim.chain.is_produced(s)]   # no double advance
        assert sum(1 for m in msgs if m["method"] == "readyForContinue") == 1
        # and it is idle now: the next continue advances from start + 6
        send(ws, "continue", {})
        got = recv_until(ws, until_method("readyForContinue"))
        assert ['{' + t.split(",", 1)[1] for t in got[:-1]] == slot_frames(sim.chain, start + 6, start + 6)
    finally:
        ws.close()
    assert sim.stats["continues_busy_rejected"] == 1


def test_continue_before_ready_is_busy(make_sim) -> None:
    sim = make_sim(create_delay_ms=300)
    ws = control(sim)
    try:
        send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 3})
        assert json.loads(recv_text(ws))["params"] == {"status": "bundleReady"}
        assert json.loads(recv_text(ws))["params"] == {"status": "startingRuntime"}
        send(ws, "continue", {})
        got = recv_until(ws, until_method("readyForContinue"))
        assert '{"method":"error","params":{"invalidRequest":{"error":"continue while busy"}}}' in got
    finally:
        ws.close()
