"""Parallel mode (§8): split on bundles, interleaved sessionEventV2, V1 routing, reattach with last_sequences."""
from __future__ import annotations

import json
import socket
from collections import defaultdict
from typing import Any, Dict, List

from .rawclient import control, recv_text, recv_until, send, slot_frames, until_method


def _create_parallel(ws, start: int, end: int, **extra: Any) -> List[dict]:
    send(ws, "createBacktestSession", {"startSlot": start, "endSlot": end, "parallel": True, **extra})
    return [json.loads(t) for t in recv_until(ws, until_method("sessionsCreatedV2", "error"))]


def _events(msgs: List[dict]) -> Dict[str, List[dict]]:
    out: Dict[str, List[dict]] = defaultdict(list)
    for m in msgs:
        if m["method"] == "sessionEventV2":
            out[m["params"]["session_id"]].append(m["params"])
    return out


def test_parallel_run_over_five_bundles(sim) -> None:
    first = sim.first_slot
    start, end = first + 13, first + 57                   # mid-bundle on both ends: 5 covering bundles
    bundles = [(first + 10 * i, first + 10 * i + 9) for i in range(1, 6)]
    ws = control(sim)
    try:
        msgs = _create_parallel(ws, start, end, disconnectTimeoutSecs=60)
        created = [m for m in msgs if m["method"] == "sessionCreated"]
        final = msgs[-1]
        assert final["method"] == "sessionsCreatedV2"
        assert "seqId" not in final and all("seqId" not in m for m in created)
        ids = [m["params"]["session_id"] for m in created]
        assert len(ids) == 5 and len(set(ids)) == 5
        p = final["params"]
        assert list(p) == ["control_session_id", "session_ids", "task_ids", "start_slots", "end_slots"]
        assert p["session_ids"] == ids
        assert p["task_ids"] == [m["params"]["task_id"] for m in created]
        assert p["start_slots"] == [b[0] for b in bundles] and p["end_slots"] == [b[1] for b in bundles]
        for m in created:
            sid = m["params"]["session_id"]
            assert m["params"]["rpc_endpoint"] == f"/backtest/{sid}"
        # events are interleaved before the terminal message; each sub-session starts right after its creation
        assert any(m["method"] == "sessionEventV2" for m in msgs[:-1])
        for i, m in enumerate(msgs):
            if m["method"] == "sessionCreated":
                nxt = msgs[i + 1]
                assert nxt["method"] == "sessionEventV2"
                assert nxt["params"] == {"session_id": m["params"]["session_id"], "seq_id": 1,
                                         "event": {"method": "status", "params": {"status": "bundleReady"}}}
        # drive every sub-session with a different (lenient) V1 form
        forms = [
            lambda sid: {"sessionId": sid, "request": {"advanceCount": 10, "transactions": [],
                                                       "modifyAccountStates": {}}},
            lambda sid: {"session_id": sid, "request": {"advanceCount": 10}},
            lambda sid: {"sessionId": sid, "params": {"advanceCount": 10}},
            lambda sid: {"sessionId": sid, "advanceCount": 10},
            lambda sid: {"session_id": sid, "advance_count": 10},
        ]
        for sid, form in zip(ids, forms):
            send(ws, "continueSessionV1", form(sid))
        later = [json.loads(t) for t in recv_until_all_completed(ws, len(ids))]
        events = _events(msgs + later)
        for sid, (b0, b1) in zip(ids, bundles):
            evs = events[sid]
            assert [e["seq_id"] for e in evs] == list(range(1, len(evs) + 1))
            kinds = [json.dumps(e["event"], separators=(",", ":")) for e in evs]
            assert kinds == ['{"method":"status","params":{"status":"bundleReady"}}',
                             '{"method":"status","params":{"status":"startingRuntime"}}',
                             '{"method":"slotNotification","params":%d}' % b0,
                             '{"method":"readyForContinue"}'] + slot_frames(sim.chain, b0, b1) + [
                '{"method":"completed","params":{"summary":null}}']
        send(ws, "closeSessionV1", {"sessionId": ids[0]})
        m = json.loads(recv_text(ws))
        assert m["params"]["session_id"] == ids[0] and m["params"]["event"] == {"method": "success"}
        send(ws, "closeBacktestSession")
        assert recv_text(ws) == '{"method":"success"}'
    finally:
        ws.close()


def recv_until_all_completed(ws, n: int) -> List[str]:
    done = set()
    out = []
    while len(done) < n:
        t = recv_text(ws)
        out.append(t)
        m = json.loads(t)
        if m["method"] == "sessionEventV2" and m["params"]["event"]["method"] == "completed":
            done.add(m["params"]["session_id"])
    return out


def test_continue_to_session_v1_and_plain_continue_refused(sim) -> None:
    first = sim.first_slot
    ws = control(sim)
    try:
        msgs = _create_parallel(ws, first, first + 19)
        ids = msgs[-1]["params"]["session_ids"]
        send(ws, "continue", {"advanceCount": 1})
        err = json.loads(recv_text(ws))
        assert err["method"] == "error" and "invalidRequest" in err["params"]
        target = next(s for s in range(first + 10, first + 20) if sim.chain.tx_count(s) > 1)
        send(ws, "continueToSessionV1", {"sessionId": ids[1], "request": {"slot": target, "batchIndex": 1}})
        got = [json.loads(t) for t in recv_until(ws, lambda m: m.get("method") == "sessionEventV2"
                                                 and m["params"]["event"]["method"] == "paused")]
        assert got[-1]["params"]["event"] == {"method": "paused", "params": {"slot": target, "batchIndex": 1}}
        send(ws, "continueSessionV1", {"sessionId": "unknown", "request": {}})
        assert json.loads(recv_text(ws))["params"] == {"sessionNotFound": {"session_id": "unknown"}}
    finally:
        ws.close()


def test_knobs_create_delay_omit_ranges_and_early_events(make_sim) -> None:
    sim = make_sim(create_delay_ms=30)
    sim.omit_parallel_ranges = True
    sim.early_session_events = True
    first = sim.first_slot
    ws = control(sim)
    try:
        msgs = _create_parallel(ws, first, first + 29)
        assert list(msgs[-1]["params"]) == ["control_session_id", "session_ids", "task_ids"]
        for i, m in enumerate(msgs):
            if m["method"] == "sessionCreated":    # its first event came just before it
                prev = msgs[i - 1]
                assert prev["method"] == "sessionEventV2"
                assert prev["params"]["session_id"] == m["params"]["session_id"]
                assert prev["params"]["seq_id"] == 1
    finally:
        ws.close()


def test_reattach_parallel_control_replays_after_each_cursor(make_sim) -> None:
    sim = make_sim()
    first = sim.first_slot
    ws = control(sim)
    msgs = _create_parallel(ws, first, first + 29, disconnectTimeoutSecs=60)
    p = msgs[-1]["params"]
    ids, cid = p["session_ids"], p["control_session_id"]
    for sid in ids:
        send(ws, "continueSessionV1", {"sessionId": sid, "request": {"advanceCount": 4}})
    later = [json.loads(t) for t in recv_until(ws, lambda m: m.get("method") == "sessionEventV2"
                                               and m["params"]["session_id"] == ids[0]
                                               and m["params"]["event"]["method"] == "readyForContinue")]
    seen = _events(msgs + later)
    ws.sock.shutdown(socket.SHUT_RDWR)
    ws.sock.close()
    cursors = {ids[0]: seen[ids[0]][-1]["seq_id"], ids[1]: 2}     # ids[2] missing: full history
    ws2 = control(sim)
    try:
        send(ws2, "attachParallelControlSessionV2", {"control_session_id": cid, "last_sequences": cursors})
        reply = json.loads(recv_text(ws2))
        assert reply == {"method": "parallelSessionAttachedV2",
                         "params": {"control_session_id": cid, "session_ids": ids, "task_ids": p["task_ids"]}}
        # every sub-session eventually reaches readyForContinue after its 4 slots; collect the replay + live
        got = []
        ready = {ids[0]}                         # its cursor is already at its post-continue readyForContinue
        while len(ready) < 3:
            m = json.loads(recv_text(ws2))
            got.append(m)
            ev = m["params"]
            if ev["event"]["method"] == "readyForContinue" and ev["seq_id"] > 3:
                ready.add(ev["session_id"])
        evs = _events(got)
        assert evs[ids[0]] == []                 # nothing after its cursor
        assert evs[ids[1]][0]["seq_id"] == 3
        assert evs[ids[2]][0]["seq_id"] == 1
        for sid in ids[1:]:
            assert [e["seq_id"] for e in evs[sid]] == list(range(evs[sid][0]["seq_id"],
                                                                 evs[sid][0]["seq_id"] + len(evs[sid])))
    finally:
        ws2.close()
    assert sim.stats["parallel_attached"] == 1


def test_parallel_drop_without_timeout_tears_everything_down(sim) -> None:
    ws = control(sim)
    msgs = _create_parallel(ws, sim.first_slot, sim.first_slot + 19)
    ids = msgs[-1]["params"]["session_ids"]
    ws.close()
    for sid in ids:
        assert sim.session(sid).ended.wait(2.0)
