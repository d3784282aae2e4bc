"""Data-plane subscriptions (§9): ground-truth payloads, replayFromSlot, the replay window, end of stream."""
from __future__ import annotations

import json

import pytest
import websocket

from simclient.local import FaultPlan

from .rawclient import (control, create, data_ws, drain_subscription, recv_text, recv_until, send, session_id_of,
                        subscribe, until_method)


def _values(notes):
    return [n["params"]["result"]["value"] for n in notes]


def test_transaction_and_diff_subscriptions_match_the_chain(sim) -> None:
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 30
    progs = sim.program_ids[:2]
    acct = chain.accounts_of(sim.program_ids[3])[2]
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        sub = data_ws(sim, sid)
        tx_ack = subscribe(sub, "transactionSubscribe", [{"programs": progs}, {"commitment": "confirmed",
                                                                                "encoding": "json"}], rid=7)
        assert tx_ack == {"jsonrpc": "2.0", "id": 7, "result": 1}
        diff_ack = subscribe(sub, "accountDiffSubscribe", [{"address": progs[0], "address_type": "program"}, {}])
        acct_ack = subscribe(sub, "accountDiffSubscribe", [{"address": acct, "address_type": "account"}])
        all_ack = subscribe(sub, "transactionSubscribe", [])           # no filter: every program
        assert [diff_ack["result"], acct_ack["result"], all_ack["result"]] == [2, 3, 4]
        send(ws, "continue", {"advanceCount": end - start + 1})
        assert json.loads(recv_until(ws, until_method("completed"))[-1])["method"] == "completed"
        out = drain_subscription(sub)
        sub.close()
        assert out["close_code"] == 1000
        assert sorted(out["ends"]) == [1, 2, 3, 4]
        by_sub = {1: [], 2: [], 3: [], 4: []}
        for n in out["notifications"]:
            by_sub[n["params"]["subscription"]].append(n)
        assert _values(by_sub[1]) == chain.transactions(start, end, progs)
        assert _values(by_sub[4]) == chain.transactions(start, end)
        for n in by_sub[1]:
            assert n["method"] == "transactionNotification"
            assert n["params"]["result"]["context"] == {"slot": n["params"]["result"]["value"]["slot"]}
        assert [n["params"]["result"] for n in by_sub[2]] == chain.account_diffs(start, end, [progs[0]])
        assert [n["params"]["result"] for n in by_sub[3]] == chain.account_diffs(start, end, accounts=[acct])
        assert all(n["method"] == "accountDiffNotification" for n in by_sub[2] + by_sub[3])
    finally:
        ws.close()


def test_notifications_are_written_before_the_slot_notification(sim) -> None:
    """Per slot, the data plane is flushed before the control stream moves on (§11.3)."""
    chain = sim.chain
    start = sim.first_slot
    slot = next(s for s in range(start + 1, start + 40) if chain.tx_count(s) > 0)
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=start + 40))
        sub = data_ws(sim, sid)
        subscribe(sub, "transactionSubscribe", [{}])
        send(ws, "continue", {"advanceCount": slot - start + 1})
        recv_until(ws, until_method("readyForContinue"))
        sub.settimeout(0.5)
        got = []
        while len(got) < len(chain.transactions(start, slot)):
            got.append(json.loads(sub.recv()))
        with pytest.raises(websocket.WebSocketTimeoutException):
            sub.recv()                                  # nothing beyond what was executed
        assert [g["params"]["result"]["value"] for g in got] == chain.transactions(start, slot)
        sub.close()
    finally:
        ws.close()


def test_replay_from_slot_is_inclusive_then_live(make_sim) -> None:
    sim = make_sim(replay_window=100)
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 40
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        send(ws, "continue", {"advanceCount": 20})
        recv_until(ws, until_method("readyForContinue"))
        replay_from = next(s for s in range(start + 10, start + 20) if chain.tx_count(s) > 0)
        sub = data_ws(sim, sid)
        ack = subscribe(sub, "transactionSubscribe", [{"programs": sim.program_ids},
                                                      {"replayFromSlot": replay_from}])
        assert isinstance(ack["result"], int)
        send(ws, "continue", {"advanceCount": 100})
        recv_until(ws, until_method("completed"))
        out = drain_subscription(sub)
        sub.close()
        vals = _values(out["notifications"])
        assert vals == chain.transactions(replay_from, end)
        assert vals[0]["slot"] == replay_from                    # inclusive
        # no replayFromSlot: live only
        sub2 = data_ws(sim, sid)
        ack2 = subscribe(sub2, "transactionSubscribe", [{}])     # after completion: no replay, just the end
        out2 = drain_subscription(sub2)
        sub2.close()
        assert out2["notifications"] == [] and out2["ends"] == [ack2["result"]] and out2["close_code"] == 1000
    finally:
        ws.close()


def test_replay_window_exceeded(make_sim) -> None:
    sim = make_sim(replay_window=5)
    chain = sim.chain
    start = sim.first_slot
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=start + 40))
        send(ws, "continue", {"advanceCount": 20})
        recv_until(ws, until_method("readyForContinue"))
        produced = [s for s in range(start, start + 20) if chain.is_produced(s)]
        oldest = produced[-5]
        sub = data_ws(sim, sid)
        err = subscribe(sub, "transactionSubscribe", [{}, {"replayFromSlot": start}], rid=3)
        assert err == {"jsonrpc": "2.0", "id": 3,
                       "error": {"code": -32016, "message": f"replay window exceeded: oldest retained slot {oldest}"}}
        err = subscribe(sub, "accountDiffSubscribe", [{"address": sim.program_ids[0], "address_type": "program"},
                                                      {"replayFromSlot": produced[-6]}], rid=4)
        assert err["error"]["code"] == -32016
        ok = subscribe(sub, "transactionSubscribe", [{}, {"replayFromSlot": oldest}], rid=5)
        assert ok["result"] == 1
        expected = chain.transactions(oldest, start + 19)
        got = [json.loads(recv_text(sub))["params"]["result"]["value"] for _ in expected]
        assert got == expected
        sub.close()
    finally:
        ws.close()


def test_subscribe_after_completion_gets_replay_then_end(sim) -> None:
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 12
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        send(ws, "continue", {"advanceCount": 13})
        recv_until(ws, until_method("completed"))
        sub = data_ws(sim, sid)
        ack = subscribe(sub, "accountDiffSubscribe", [{"address": sim.program_ids[4], "address_type": "program"},
                                                      {"replayFromSlot": start}])
        assert ack["result"] == 1
        out = drain_subscription(sub)
        sub.close()
        assert [n["params"]["result"] for n in out["notifications"]] == chain.account_diffs(
            start, end, [sim.program_ids[4]])
        assert out["ends"] == [1] and out["close_code"] == 1000
    finally:
        ws.close()


def test_unsubscribe_errors_and_unknown_session(sim) -> None:
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        sub = data_ws(sim, sid)
        assert subscribe(sub, "transactionSubscribe", [{}])["result"] == 1
        assert subscribe(sub, "transactionUnsubscribe", [1], rid=2) == {"jsonrpc": "2.0", "id": 2, "result": True}
        assert subscribe(sub, "transactionUnsubscribe", [1], rid=3)["error"]["code"] == -32602
        assert subscribe(sub, "slotsUpdatesSubscribe", [], rid=4)["error"]["code"] == -32601
        assert subscribe(sub, "accountDiffSubscribe", [{"address_type": "program"}], rid=5)["error"]["code"] == -32602
        sub.send("garbage")
        assert json.loads(recv_text(sub))["error"]["code"] == -32700
        sub.close()
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        data_ws(sim, "no-such-session")
    assert exc.value.status_code == 404


def test_dropped_subscription_resumes_with_replay(make_sim) -> None:
    sim = make_sim(faults=FaultPlan().drop_subscriptions_every(15), slot_pace_ms=5)
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 30
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        seen = {}
        last_slot = None
        drops = 0
        continued = False
        for _ in range(100):
            sub = data_ws(sim, sid)
            cfg = {"replayFromSlot": last_slot} if last_slot is not None else {}
            assert isinstance(subscribe(sub, "transactionSubscribe", [{}, cfg])["result"], int)
            if not continued:
                send(ws, "continue", {"advanceCount": end - start + 1})
                continued = True
            try:
                while True:
                    opcode, frame = sub.recv_data_frame(True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        sub.shutdown()
                        break
                    msg = json.loads(frame.data)
                    if msg["method"] == "subscriptionComplete" or msg["params"]["result"] is None:
                        continue
                    v = msg["params"]["result"]["value"]
                    seen.setdefault(v["transaction"]["signatures"][0], v)    # dedup by signature
                    last_slot = v["slot"]
                done = True
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                drops += 1
                done = False
            sub.close()
            if done:
                break
        recv_until(ws, until_method("completed"))
        assert list(seen.values()) == chain.transactions(start, end)
        assert drops == sim.stats["subscription_drops"] >= 2
    finally:
        ws.close()


def test_replay_to_live_seam_is_exact(make_sim) -> None:
    """Subscribing with replayFromSlot while the session executes: retained notifications, then live ones, with no
    duplicate and no gap at the seam."""
    sim = make_sim(slot_pace_ms=4)
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 40
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        send(ws, "continue", {"advanceCount": 41})
        recv_until(ws, lambda m: m.get("method") == "slotNotification" and m["params"] >= start + 10)
        sub = data_ws(sim, sid)
        sub.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "transactionSubscribe",
                             "params": [{}, {"replayFromSlot": start}]}))
        sub.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "accountDiffSubscribe",
                             "params": [{"address": sim.program_ids[0], "address_type": "program"},
                                        {"replayFromSlot": start + 3}]}))
        out = drain_subscription(sub)
        assert [a["result"] for a in out["acks"]] == [1, 2]
        sub.close()
        recv_until(ws, until_method("completed"))
        txs = [n["params"]["result"]["value"] for n in out["notifications"] if n["params"]["subscription"] == 1]
        diffs = [n["params"]["result"] for n in out["notifications"] if n["params"]["subscription"] == 2]
        assert txs == chain.transactions(start, end)
        assert diffs == chain.account_diffs(start + 3, end, [sim.program_ids[0]])
    finally:
        ws.close()
