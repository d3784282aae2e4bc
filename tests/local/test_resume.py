"""Sequencing and resume (§2.1, §7): replay after the cursor, none before; teardown without a timeout."""
from __future__ import annotations

import json
import socket
import time
from typing import Dict, List

import websocket

from simclient.local import FaultPlan

from .rawclient import control, create, recv_text, recv_until, send, session_id_of, until_method, without_ids


def _reference_stream(make_sim, start: int, end: int) -> List[str]:
    """The full sequenced stream of a fault-free run (create, one continue over the range)."""
    sim = make_sim()
    ws = control(sim)
    try:
        frames = create(ws, startSlot=start, endSlot=end, disconnectTimeoutSecs=30)
        send(ws, "continue", {"advanceCount": end - start + 1})
        frames += recv_until(ws, until_method("completed"))
        return frames
    finally:
        ws.close()


def _abort(ws: websocket.WebSocket) -> None:
    """Kill the client side without a close handshake."""
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()


def test_attach_replays_exactly_the_frames_after_the_cursor(make_sim) -> None:
    sim = make_sim()
    start, end = sim.first_slot, sim.first_slot + 25
    reference = _reference_stream(make_sim, start, end)
    ws = control(sim)
    frames = create(ws, startSlot=start, endSlot=end, disconnectTimeoutSecs=30)
    sid = session_id_of(frames)
    send(ws, "continue", {"advanceCount": end - start + 1})
    for _ in range(7):
        frames.append(recv_text(ws))
    cursor = json.loads(frames[-1])["seqId"]
    _abort(ws)
    ws2 = control(sim)
    try:
        send(ws2, "attachBacktestSession", {"session_id": sid, "last_sequence": cursor})
        attached = recv_text(ws2)
        assert attached == ('{"method":"sessionAttached","params":{"session_id":"%s","rpc_endpoint":"/backtest/%s",'
                            '"task_id":"%s"}}' % (sid, sid, sim.session(sid).task_id))
        rest = recv_until(ws2, until_method("completed"))
        assert json.loads(rest[0])["seqId"] == cursor + 1          # none at or before the cursor
        assert without_ids(frames + rest) == without_ids(reference)  # nothing lost, nothing duplicated
        send(ws2, "resumeAttachedSession")
        assert json.loads(recv_text(ws2)) == {"seqId": len(reference) + 1, "method": "success"}
    finally:
        ws2.close()
    assert sim.stats["sessions_attached"] == 1


def test_attach_without_cursor_replays_everything_and_camel_case_keys(sim) -> None:
    ws = control(sim)
    frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 3, disconnectTimeoutSecs=30)
    sid = session_id_of(frames)
    ws.close()
    ws2 = control(sim)
    try:
        send(ws2, "attachBacktestSession", {"sessionId": sid, "lastSequence": None})
        assert json.loads(recv_text(ws2))["method"] == "sessionAttached"
        assert [recv_text(ws2) for _ in frames] == frames
        send(ws2, "continue", {"advanceCount": 4})
        assert json.loads(recv_until(ws2, until_method("completed"))[0])["seqId"] == len(frames) + 1
    finally:
        ws2.close()


def test_resume_through_forced_drops(make_sim) -> None:
    """drop_control_every: the unsent frame stays in the buffer; reattaching from the cursor loses nothing."""
    start = 300_000_000
    end = start + 40
    reference = _reference_stream(make_sim, start, end)
    # a slot pace keeps the session executing while the client reconnects, so several live drops happen
    sim = make_sim(faults=FaultPlan(seed=1).drop_control_every(9), slot_pace_ms=5)
    got: Dict[int, str] = {}
    ws = control(sim)
    frames: List[str] = []
    try:
        send(ws, "createBacktestSession", {"startSlot": start, "endSlot": end, "disconnectTimeoutSecs": 30})
        sid = None
        sent_continue = False
        drops = 0
        while True:
            try:
                text = recv_text(ws)
            except (websocket.WebSocketConnectionClosedException, ConnectionError, AssertionError):
                drops += 1
                assert drops < 50
                ws.close()
                ws = control(sim)
                cursor = max(got) if got else 0
                send(ws, "attachBacktestSession", {"session_id": sid, "last_sequence": cursor})
                assert json.loads(recv_text(ws))["method"] == "sessionAttached"
                continue
            msg = json.loads(text)
            seq = msg["seqId"]
            assert seq not in got and seq == (max(got) if got else 0) + 1, "gap or duplicate"
            got[seq] = text
            frames.append(text)
            if msg["method"] == "sessionCreated":
                sid = msg["params"]["session_id"]
            if msg["method"] == "readyForContinue" and not sent_continue:
                send(ws, "continue", {"advanceCount": end - start + 1})
                sent_continue = True
            if msg["method"] == "completed":
                break
    finally:
        ws.close()
    assert without_ids(frames) == without_ids(reference)
    assert sim.stats["control_drops"] == drops >= 2


def test_attach_unknown_session(sim) -> None:
    ws = control(sim)
    try:
        send(ws, "attachBacktestSession", {"session_id": "no-such-session", "last_sequence": 3})
        assert recv_text(ws) == '{"method":"error","params":{"sessionNotFound":{"session_id":"no-such-session"}}}'
        send(ws, "attachParallelControlSessionV2", {"control_session_id": "nope", "last_sequences": {}})
        assert recv_text(ws) == '{"method":"error","params":{"sessionNotFound":{"session_id":"nope"}}}'
    finally:
        ws.close()


def test_drop_without_disconnect_timeout_tears_the_session_down(sim) -> None:
    ws = control(sim)
    sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
    ws.close()      # close handshake: the server has seen the close when this returns
    ws2 = control(sim)
    try:
        send(ws2, "attachBacktestSession", {"session_id": sid, "last_sequence": 0})
        assert json.loads(recv_text(ws2))["params"] == {"sessionNotFound": {"session_id": sid}}
    finally:
        ws2.close()
    assert sim.session(sid).state == "closed"


def test_disconnect_timeout_expires(sim) -> None:
    ws = control(sim)
    sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5, disconnectTimeoutSecs=1))
    ws.close()
    ws2 = control(sim, timeout=5)
    try:      # still attachable inside the window
        send(ws2, "attachBacktestSession", {"session_id": sid, "last_sequence": 100})
        assert json.loads(recv_text(ws2))["method"] == "sessionAttached"
    finally:
        ws2.close()
    t0 = time.monotonic()
    assert sim.session(sid).ended.wait(5.0)      # the server's own expiry timer, ~1 s after the drop
    assert time.monotonic() - t0 > 0.5
    ws3 = control(sim)
    try:
        send(ws3, "attachBacktestSession", {"session_id": sid, "last_sequence": 100})
        assert json.loads(recv_text(ws3))["params"] == {"sessionNotFound": {"session_id": sid}}
    finally:
        ws3.close()


def test_attach_takes_over_a_live_connection(sim) -> None:
    ws = control(sim)
    frames = create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5, disconnectTimeoutSecs=30)
    sid = session_id_of(frames)
    ws2 = control(sim)
    try:
        send(ws2, "attachBacktestSession", {"session_id": sid, "last_sequence": len(frames)})
        assert json.loads(recv_text(ws2))["method"] == "sessionAttached"
        send(ws2, "continue", {"advanceCount": 6})
        assert json.loads(recv_until(ws2, until_method("completed"))[-1])["method"] == "completed"
        ws.settimeout(2)
        try:
            leftover = ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            leftover = ""
        assert leftover == ""
    finally:
        ws.close()
        ws2.close()


def test_drop_every_frame_still_makes_progress(make_sim) -> None:
    """drop_control_every(1): create frames up to sessionCreated are exempt, replays are never dropped."""
    sim = make_sim(faults=FaultPlan().drop_control_every(1))
    start, end = sim.first_slot, sim.first_slot + 8
    ws = control(sim)
    send(ws, "createBacktestSession", {"startSlot": start, "endSlot": end, "disconnectTimeoutSecs": 30})
    got: List[dict] = [json.loads(recv_text(ws)) for _ in range(3)]
    assert [m["method"] for m in got] == ["status", "status", "sessionCreated"]
    sid = got[2]["params"]["session_id"]
    continued = False
    for _ in range(50):
        try:
            while True:
                m = json.loads(recv_text(ws))
                got.append(m)
                if m["method"] == "readyForContinue" and not continued:
                    send(ws, "continue", {"advanceCount": 9})
                    continued = True
                if m["method"] == "completed":
                    break
            break
        except (websocket.WebSocketConnectionClosedException, ConnectionError, AssertionError):
            ws.close()
            ws = control(sim)
            send(ws, "attachBacktestSession", {"session_id": sid, "last_sequence": got[-1]["seqId"]})
            assert json.loads(recv_text(ws))["method"] == "sessionAttached"
    ws.close()
    assert got[-1]["method"] == "completed"
    assert [m["seqId"] for m in got] == list(range(1, len(got) + 1))
