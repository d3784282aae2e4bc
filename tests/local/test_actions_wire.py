"""The simulator's scheduled actions on the raw wire (no SDK): create refusals, the three accepted
``actionSubscribe`` param forms, replayFromSlot replaying the results as sent, and end of stream."""
from __future__ import annotations

import base64
import json

from simclient.local.actions import expected_action_results

from .rawclient import control, create, data_ws, drain_subscription, recv_until, send, session_id_of, subscribe, \
    until_method

TX = base64.b64encode(b"\x01" + b"\x09" * 64 + b"raw-wire").decode()


def _actions(start: int):
    return [{"anchor": {"afterEverySlot": {"everyNSlots": 2}}, "kind": "send", "transactions": [TX],
             "returnAccounts": [], "label": "every"},
            {"anchor": {"beforeSlot": {"slots": [start + 3]}}, "kind": "simulate", "transactions": [TX]}]


def test_action_subscribe_forms_and_replay(sim) -> None:
    start, end = sim.first_slot, sim.first_slot + 12
    params = {"startSlot": start, "endSlot": end, "actions": _actions(start)}
    truth = expected_action_results(sim.chain, params)
    assert truth
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, **params))
        live = data_ws(sim, sid)
        assert subscribe(live, "actionSubscribe", [{}, {}], rid=1)["result"] == 1
        send(ws, "continue", {"advanceCount": 6})
        recv_until(ws, until_method("readyForContinue"))
        late = [data_ws(sim, sid) for _ in range(3)]
        first_slot = truth[0]["slot"]
        # the replay starts at the cursor slot, inclusive; ``params: [config]`` and no params are accepted too
        assert subscribe(late[0], "actionSubscribe", [{}, {"replayFromSlot": first_slot}])["result"] == 2
        assert subscribe(late[1], "actionSubscribe", [{"replayFromSlot": first_slot}])["result"] == 3
        late[2].send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "actionSubscribe"}))
        assert json.loads(late[2].recv())["result"] == 4
        send(ws, "continue", {"advanceCount": 100})
        recv_until(ws, until_method("completed"))
        outs = [drain_subscription(s) for s in [live] + late]
    finally:
        ws.close()
    results = [[n["params"]["result"] for n in out["notifications"]] for out in outs]
    assert all(n["method"] == "actionNotification" for out in outs for n in out["notifications"])
    assert results[0] == truth and results[1] == truth and results[2] == truth
    run_first = start + 5  # the first continue ran start .. start + 5
    assert results[3] == [r for r in truth if r["slot"] > run_first]  # no replay asked: only what came after
    assert [out["ends"] for out in outs] == [[1], [2], [3], [4]] and all(o["close_code"] == 1000 for o in outs)


def test_create_refuses_send_with_replay_account_state_and_bad_actions(sim) -> None:
    start = sim.first_slot
    for bad in ({"replayAccountState": True, "actions": _actions(start)},
                {"actions": [{"anchor": {"afterSlot": {"slots": [start, start + 1]}}, "transactions": [TX]}]},
                {"actions": [{"anchor": {"afterEverySlot": {"everyNSlots": 0}}, "transactions": [TX]}]}):
        ws = control(sim)
        try:
            frames = create(ws, startSlot=start, endSlot=start + 5, **bad)
        finally:
            ws.close()
        err = json.loads(frames[-1])
        assert err["method"] == "error" and "invalidRequest" in err["params"], frames
