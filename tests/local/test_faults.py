"""FaultPlan: garbage, lost continues, stalls (no pong), injected slot failures; configuration API."""
from __future__ import annotations

import json
import time

import pytest
import websocket

from simclient.local import FaultPlan

from .rawclient import (control, create, data_ws, drain_subscription, recv_text, recv_until, rpc, send,
                        session_id_of, slot_frames, subscribe, until_method, without_ids)


def _run(sim, **params):
    ws = control(sim)
    try:
        frames = create(ws, **params)
        send(ws, "continue", {"advanceCount": params["endSlot"] - params["startSlot"] + 1})
        frames += recv_until(ws, until_method("completed"))
        return frames
    finally:
        ws.close()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("timeout", [0, 30])
def test_garbage_frames_are_extra_and_never_sequenced(make_sim, timeout) -> None:
    params = dict(startSlot=300_000_000, endSlot=300_000_015, disconnectTimeoutSecs=timeout)
    reference = _run(make_sim(), **params)
    sim = make_sim(faults=FaultPlan(seed=5).garbage_every(4))
    frames = _run(sim, **params)
    garbage = [f for f in frames if not _is_json(f)]
    assert len(garbage) == sim.stats["garbage_sent"] == len(reference) // 4
    assert without_ids([f for f in frames if _is_json(f)]) == without_ids(reference)
    assert all(frames[i] in garbage for i in range(3, len(frames), 5))     # before every 4th real frame


def test_lost_continue_drops_the_socket_without_acting(make_sim) -> None:
    sim = make_sim(faults=FaultPlan().lose_continue_every(2))
    start = sim.first_slot
    ws = control(sim)
    frames = create(ws, startSlot=start, endSlot=start + 9, disconnectTimeoutSecs=30)
    sid = session_id_of(frames)
    send(ws, "continue", {"advanceCount": 2})                  # 1st continue: acted upon
    frames += recv_until(ws, until_method("readyForContinue"))
    send(ws, "continueSessionV1", {"sessionId": sid, "request": {"advanceCount": 2}})   # 2nd: lost
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv()
    ws.close()
    cursor = json.loads(frames[-1])["seqId"]
    ws2 = control(sim)
    try:
        send(ws2, "attachBacktestSession", {"session_id": sid, "last_sequence": cursor})
        assert json.loads(recv_text(ws2))["method"] == "sessionAttached"
        send(ws2, "resumeAttachedSession")
        # nothing happened since the cursor: the very next frame is the resume ack
        assert json.loads(recv_text(ws2)) == {"seqId": cursor + 1, "method": "success"}
        send(ws2, "continue", {"advanceCount": 2})            # 3rd: acted upon
        got = recv_until(ws2, until_method("readyForContinue"))
        assert ['{' + t.split(",", 1)[1] for t in got[:-1]] == slot_frames(sim.chain, start + 2, start + 3)
    finally:
        ws2.close()
    assert sim.stats["continues_received"] == 3 and sim.stats["continues_lost"] == 1


def test_stall_answers_no_ping_and_does_not_advance(sim) -> None:
    ws = control(sim)
    try:
        create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 9)
        ws.ping(b"before")
        assert ws.recv_data_frame(True)[0] == websocket.ABNF.OPCODE_PONG
        t0 = time.monotonic()
        sim.faults.stall(1.0)
        ws.ping(b"during")
        send(ws, "continue", {"advanceCount": 10})
        ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_data_frame(True)                           # no pong, no progress
        ws.settimeout(5)
        opcode, frame = ws.recv_data_frame(True)               # the stall ends: progress and the late pong
        assert time.monotonic() - t0 >= 0.9
        texts = []
        while opcode != websocket.ABNF.OPCODE_PONG:
            texts.append(frame.data.decode())
            opcode, frame = ws.recv_data_frame(True)
        assert frame.data == b"during"
        if not any('"completed"' in t for t in texts):
            texts += recv_until(ws, until_method("completed"))
        assert texts[0] == '{"method":"status","params":{"status":"decodedTransactions"}}'
    finally:
        ws.close()
    assert sim.stats["pings_delayed"] == 1


def test_stall_after_frames(sim) -> None:
    sim.faults.stall(0.6, after_frames=3)
    ws = control(sim)
    try:
        send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 3})
        t0 = time.monotonic()
        recv_text(ws)
        recv_text(ws)
        assert time.monotonic() - t0 < 0.5
        recv_text(ws)                      # the third frame triggers the stall, and waits for it
        recv_text(ws)
        assert time.monotonic() - t0 >= 0.5
    finally:
        ws.close()


@pytest.mark.parametrize("variant, params", [
    ("advanceSlotFailed", lambda s: {"advanceSlotFailed": {"slot": s, "error": "injected fault"}}),
    ("noMoreBlocks", lambda s: "noMoreBlocks"),
    ("internal", lambda s: {"internal": {"error": f"injected fault at slot {s}"}}),
])
def test_fail_at_slot_is_terminal(make_sim, variant, params) -> None:
    sim = make_sim()
    chain = sim.chain
    start = sim.first_slot
    fail = next(s for s in range(start + 3, start + 20) if chain.is_produced(s))
    sim.faults.fail_at_slot(fail, variant)
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=start + 20, disconnectTimeoutSecs=10))
        sub = data_ws(sim, sid)
        subscribe(sub, "transactionSubscribe", [{}])
        send(ws, "continue", {"advanceCount": 21})
        got = recv_until(ws, until_method("error"))
        msgs = [json.loads(t) for t in got]
        assert msgs[-1]["params"] == params(fail)
        assert [m["params"] for m in msgs if m["method"] == "slotNotification"] == \
            [s for s in range(start, fail) if chain.is_produced(s)]
        out = drain_subscription(sub)
        sub.close()
        assert out["ends"] == [1] and out["close_code"] == 1000
        assert [n["params"]["result"]["value"] for n in out["notifications"]] == chain.transactions(start, fail - 1)
        assert rpc(sim, sid, "getSlot")["error"]["code"] == -32004
        send(ws, "continue", {})
        assert "invalidRequest" in json.loads(recv_text(ws))["params"]
    finally:
        ws.close()


def test_fault_plan_api() -> None:
    plan = FaultPlan(seed=3)
    assert plan.drop_control_every(5).garbage_every(2).lose_continue_every(0) is plan
    assert plan.active and "drop_control_every=5" in repr(plan)
    assert [plan.take_control_drop() for _ in range(10)] == [False] * 4 + [True] + [False] * 4 + [True]
    with pytest.raises(ValueError):
        plan.drop_subscriptions_every(-1)
    with pytest.raises(ValueError):
        plan.garbage_every(1.5)  # type: ignore[arg-type]
    plan.stall(100)
    assert plan.stall_remaining() > 99
    assert plan.clear() is plan and not plan.active and plan.stall_remaining() == 0
    assert not plan.take_control_drop()
    # the seed only picks garbage content: same seed, same garbage
    a, b = FaultPlan(seed=9).garbage_every(1), FaultPlan(seed=9).garbage_every(1)
    assert [a.on_control_frame() for _ in range(3)] == [b.on_control_frame() for _ in range(3)]


def test_faults_can_be_replaced_and_changed_while_running(sim) -> None:
    ws = control(sim)
    try:
        create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 20)
        sim.faults = FaultPlan().garbage_every(1)
        send(ws, "continue", {})
        assert not _is_json(recv_text(ws))
        sim.faults.clear()
        rest = recv_until(ws, until_method("readyForContinue"))
        assert all(_is_json(t) for t in rest[1:])
    finally:
        ws.close()
