"""The local simulator's ``logsSubscribe`` (§9.2.2): filters, payloads against the chain, replay, refusals."""
from __future__ import annotations

import json

import pytest

from .rawclient import control, create, data_ws, drain_subscription, recv_until, send, session_id_of, subscribe, \
    until_method


def _results(notes):
    return [{"slot": n["params"]["result"]["context"]["slot"], **n["params"]["result"]["value"]} for n in notes]


def test_filters_match_the_chain(sim) -> None:
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 30
    prog = sim.program_ids[0]
    acct = chain.accounts_of(sim.program_ids[1])[0]
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        sub = data_ws(sim, sid)
        ids = [subscribe(sub, "logsSubscribe", params, rid=i)["result"] for i, params in enumerate([
            [{"mentions": [prog]}, {"commitment": "confirmed"}],
            [{"mentions": [acct]}],        # an account: the transactions listing it
            ["all"],
            ["allWithVotes", {}],
        ], start=1)]
        assert ids == [1, 2, 3, 4]
        send(ws, "continue", {"advanceCount": end - start + 1})
        recv_until(ws, until_method("completed"))
        out = drain_subscription(sub)
        sub.close()
        assert sorted(out["ends"]) == ids and out["close_code"] == 1000
        by_sub = {i: [n for n in out["notifications"] if n["params"]["subscription"] == i] for i in ids}
        assert all(n["method"] == "logsNotification" for n in out["notifications"])
        assert _results(by_sub[1]) == chain.logs(start, end, [prog]) and by_sub[1]
        assert _results(by_sub[2]) == chain.logs(start, end, [acct]) and by_sub[2]
        assert len(by_sub[2]) < len(chain.logs(start, end, [sim.program_ids[1]]))  # only those listing acct
        assert _results(by_sub[3]) == _results(by_sub[4]) == chain.logs(start, end)
        # the logs and err are the transaction's own (meta.logMessages / meta.err)
        txs = {t["transaction"]["signatures"][0]: t for t in chain.transactions(start, end)}
        for r in _results(by_sub[3]):
            assert r["logs"] == txs[r["signature"]]["meta"]["logMessages"]
            assert r["err"] == txs[r["signature"]]["meta"]["err"]
        assert any(r["err"] is not None for r in _results(by_sub[3]))
    finally:
        ws.close()


def test_replay_from_slot_serves_logs(make_sim) -> None:
    sim = make_sim(replay_window=100)
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 30
    prog = sim.program_ids[2]
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        send(ws, "continue", {"advanceCount": 20})
        recv_until(ws, until_method("readyForContinue"))
        replay_from = next(s for s in range(start + 5, start + 20) if chain.logs(s, s, [prog]))
        sub = data_ws(sim, sid)
        subscribe(sub, "logsSubscribe", [{"mentions": [prog]}, {"replayFromSlot": replay_from}])
        send(ws, "continue", {"advanceCount": 100})
        recv_until(ws, until_method("completed"))
        out = drain_subscription(sub)
        sub.close()
        assert _results(out["notifications"]) == chain.logs(replay_from, end, [prog])
        assert out["notifications"][0]["params"]["result"]["context"]["slot"] == replay_from  # inclusive
    finally:
        ws.close()


@pytest.mark.parametrize("filt, needle", [
    ({"mentions": []}, "exactly one address, got 0"),
    ({"mentions": ["11111111111111111111111111111111", "Vote111111111111111111111111111111111111111"]},
     "exactly one address, got 2"),
    ({"mentions": "11111111111111111111111111111111"}, "must be an array"),
    ({"mentions": ["not-base58!"]}, "not a base58 address"),
    ({"mention": ["11111111111111111111111111111111"]}, "unknown logs filter field(s) mention"),
    ({}, "missing field `mentions`"),
    ("everything", "got the string 'everything'"),
    (7, "got int"),
])
def test_bad_filters_are_refused_naming_the_problem(sim, filt, needle) -> None:
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        sub = data_ws(sim, sid)
        reply = subscribe(sub, "logsSubscribe", [filt, {"commitment": "confirmed"}], rid=9)
        assert reply["id"] == 9 and reply["error"]["code"] == -32602, reply
        assert needle in reply["error"]["message"]
        ok = subscribe(sub, "logsSubscribe", ["all"], rid=10)  # the socket stays usable
        assert isinstance(ok["result"], int)
        unsub = subscribe(sub, "logsUnsubscribe", [ok["result"]], rid=11)
        assert unsub == {"jsonrpc": "2.0", "id": 11, "result": True}
        sub.close()
    finally:
        ws.close()


def test_no_filter_is_refused(sim) -> None:
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        sub = data_ws(sim, sid)
        sub.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe"}))
        reply = json.loads(sub.recv())
        assert reply["error"]["code"] == -32602 and "mentions" in reply["error"]["message"]
        sub.close()
    finally:
        ws.close()
