"""Bad-input hooks: raw frame injection (control and data plane), RPC faults, mismatched parallel ranges."""
from __future__ import annotations

import json
import threading

import pytest
import requests
import websocket

from simclient.local import FaultPlan

from .rawclient import control, create, data_ws, drain_subscription, recv_text, recv_until, send, \
    session_id_of, subscribe, until_method


def _post(sim, sid, method="getSlot", rid=7):
    return requests.post(f"{sim.http_url}/backtest/{sid}",
                         json={"jsonrpc": "2.0", "id": rid, "method": method}, timeout=5)


def test_inject_control_frame_now_on_the_live_socket(sim) -> None:
    ws = control(sim)
    try:
        frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5, disconnectTimeoutSecs=30)
        sid = session_id_of(frames)
        sent_before = sim.stats["frames_sent"]
        assert sim.inject_control_frame(sid, "not json {") is True
        assert recv_text(ws) == "not json {"
        assert sim.inject_control_frame(sid, b"\xff\xfe binary") is True
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and data == b"\xff\xfe binary"
        assert sim.stats["injected_control_frames"] == 2
        assert sim.stats["frames_sent"] == sent_before          # injected frames are extra frames
        # never sequenced, never replayed: the session's stream goes on with the next seqId
        last_seq = json.loads(frames[-1])["seqId"]
        send(ws, "continue", {})
        nxt = json.loads(recv_text(ws))
        assert nxt["seqId"] == last_seq + 1
        assert all("not json" not in t for t in sim.session(sid).buffer)
    finally:
        ws.close()
    with pytest.raises(KeyError):
        sim.inject_control_frame("no-such-session", "x")
    with pytest.raises(TypeError):
        sim.inject_control_frame(sid, 42)  # type: ignore[arg-type]


def test_inject_control_frame_without_a_socket_returns_false(sim) -> None:
    ws = control(sim)
    frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5, disconnectTimeoutSecs=0)
    sid = session_id_of(frames)
    ws.close()
    # without a disconnect timeout the server tears the session down once it notices the close
    assert sim.session(sid).ended.wait(5)
    assert sim.inject_control_frame(sid, "x") is False


def test_fault_plan_inject_control_counts_frames(make_sim) -> None:
    sim = make_sim(faults=FaultPlan().inject_control('{"method":"bogus"}', after_frames=3))
    ws = control(sim)
    try:
        frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5)
        assert frames[3] == '{"method":"bogus"}'
        assert [json.loads(t)["method"] for t in frames[:3]] == ["status", "status", "sessionCreated"]
        assert sim.stats["injected_control_frames"] == 1 and not sim.faults.active
    finally:
        ws.close()


def test_fault_plan_inject_control_filters_by_session(make_sim) -> None:
    sim = make_sim()
    ws1, ws2 = control(sim), control(sim)
    try:
        sid1 = session_id_of(create(ws1, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        create(ws2, startSlot=sim.first_slot, endSlot=sim.first_slot + 5)
        sim.faults.inject_control("only-for-1", session_id=sid1)
        send(ws2, "continue", {})
        assert "only-for-1" not in recv_until(ws2, until_method("readyForContinue"))
        assert sim.faults.pending_injections == 1
        send(ws1, "continue", {})
        assert recv_text(ws1) == "only-for-1"
        assert sim.faults.pending_injections == 0
    finally:
        ws1.close()
        ws2.close()


def test_subscription_injection_now_and_counted(make_sim) -> None:
    sim = make_sim()
    ws = control(sim)
    sub = None
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 9))
        sub = data_ws(sim, sid)
        ack = subscribe(sub, "transactionSubscribe", [{"programs": sim.program_ids}])
        assert isinstance(ack["result"], int)
        assert sim.inject_subscription_frame(sid, "garbage on the data plane") == 1
        assert recv_text(sub) == "garbage on the data plane"
        sim.faults.inject_subscription('{"x":1}', after_notifications=1, session_id=sid)
        send(ws, "continue", {"advanceCount": 10})
        recv_until(ws, until_method("completed"))
        texts = []
        while True:
            text = recv_text(sub)
            texts.append(text)
            if '"subscriptionComplete"' in text:
                break
        assert texts[1] == '{"x":1}' and '"transactionNotification"' in texts[0]
        assert sim.stats["injected_subscription_frames"] == 2
    finally:
        ws.close()
        if sub is not None:
            sub.shutdown()


def test_rpc_faults_answer_the_next_n_requests_in_order(make_sim) -> None:
    sim = make_sim()
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        sim.faults.rpc_http_error(n=2).rpc_non_json(status=502).rpc_error(-32005, "node is behind", data={"n": 1})
        sim.faults.rpc_reply('[1, 2]')
        assert sim.faults.pending_rpc_faults == 5
        for _ in range(2):
            r = _post(sim, sid)
            assert r.status_code == 500 and "injected" in r.text and r.headers["Content-Type"].startswith("text/plain")
        r = _post(sim, sid)
        assert r.status_code == 502 and r.text.startswith("<html>")
        r = _post(sim, sid, rid=42)
        assert r.status_code == 200
        assert r.json() == {"jsonrpc": "2.0", "id": 42,
                            "error": {"code": -32005, "message": "node is behind", "data": {"n": 1}}}
        assert _post(sim, sid).json() == [1, 2]
        r = _post(sim, sid)
        assert r.status_code == 200 and isinstance(r.json()["result"], int)   # served again
        assert sim.stats["rpc_faults"] == 5 and not sim.faults.active
    finally:
        ws.close()


def test_injection_api_is_thread_safe_and_cleared() -> None:
    plan = FaultPlan()
    threads = [threading.Thread(target=lambda: [plan.inject_control("x") for _ in range(100)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plan.pending_injections == 400
    assert len(plan.take_control_injections(None)) == 400
    plan.inject_subscription("y", after_notifications=1).rpc_error(1, "m", n=3)
    assert "injections_pending=1" in repr(plan) and "rpc_faults_pending=3" in repr(plan)
    assert plan.take_subscription_injections("s") == [] and plan.take_subscription_injections("s") == ["y"]
    plan.inject_control("z", session_id="a")
    assert plan.take_control_injections(None) == [] and plan.take_control_injections({"b"}) == []
    assert plan.clear().pending_injections == 0 and plan.pending_rpc_faults == 0 and not plan.active
    with pytest.raises(ValueError):
        plan.inject_control("x", after_frames=-1)
    with pytest.raises(TypeError):
        plan.inject_subscription(None)  # type: ignore[arg-type]


def test_mismatched_parallel_ranges(make_sim) -> None:
    sim = make_sim()
    sim.mismatched_parallel_ranges = True
    ws = control(sim)
    try:
        send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 29,
                                           "parallel": True})
        created = json.loads(recv_until(ws, until_method("sessionsCreatedV2"))[-1])["params"]
        assert len(created["session_ids"]) == len(created["start_slots"]) == 3
        assert len(created["end_slots"]) == 2
    finally:
        ws.close()


def test_injected_end_of_stream_for_an_unknown_subscription_id_is_sent_as_is(make_sim) -> None:
    sim = make_sim()
    ws = control(sim)
    sub = None
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 3))
        sub = data_ws(sim, sid)
        subscribe(sub, "transactionSubscribe", [{"programs": sim.program_ids}])
        bogus = {"jsonrpc": "2.0", "method": "transactionNotification",
                 "params": {"subscription": 999, "result": None}}
        assert sim.inject_subscription_frame(sid, json.dumps(bogus)) == 1
        send(ws, "continue", {"advanceCount": 4})
        recv_until(ws, until_method("completed"))
        out = drain_subscription(sub)
        assert 999 in out["ends"] and out["close_code"] == 1000
        sub = None
    finally:
        ws.close()
        if sub is not None:
            sub.shutdown()


def test_drop_control_every_with_times_stops_after_that_many_drops() -> None:
    plan = FaultPlan().drop_control_every(2, times=2)
    assert [plan.take_control_drop() for _ in range(8)] == [False, True, False, True] + [False] * 4
    assert not plan.active
    once = FaultPlan().drop_control_every(1, times=1)
    assert [once.take_control_drop() for _ in range(3)] == [True, False, False]
