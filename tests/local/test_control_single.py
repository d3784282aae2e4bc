"""Single-session control protocol, asserted frame by frame with a raw websocket-client connection."""
from __future__ import annotations

import json

from .rawclient import (control, create, recv_text, recv_until, send, session_id_of, slot_frames,
                        until_method)


def test_single_session_exact_frames(sim) -> None:
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 6
    ws = control(sim)
    try:
        frames = create(ws, startSlot=start, endSlot=end, sendSummary=True)
        sid = session_id_of(frames)
        assert frames == [
            '{"method":"status","params":{"status":"bundleReady"}}',
            '{"method":"status","params":{"status":"startingRuntime"}}',
            '{"method":"sessionCreated","params":{"session_id":"%s","rpc_endpoint":"/backtest/%s","task_id":"%s"}}'
            % (sid, sid, sim.session(sid).task_id),
            '{"method":"slotNotification","params":%d}' % start,
            '{"method":"readyForContinue"}',
        ]
        send(ws, "continue", {"advanceCount": 3, "transactions": [], "modifyAccountStates": {}})
        got = recv_until(ws, until_method("readyForContinue", "completed"))
        assert got == slot_frames(chain, start, start + 2) + ['{"method":"readyForContinue"}']
        send(ws, "continue", {"advanceCount": 100})          # clamped to endSlot
        got = recv_until(ws, until_method("readyForContinue", "completed"))
        ntx = sum(chain.tx_count(s) for s in range(start, end + 1))
        assert got == slot_frames(chain, start + 3, end) + [
            '{"method":"completed","params":{"summary":{"correctSimulation":%d,"incorrectSimulation":0,'
            '"executionErrors":0,"balanceDiff":0,"logDiff":0,"unsanitizable":0,"rerouteStats":null}}}' % ntx]
        send(ws, "closeBacktestSession")
        assert recv_text(ws) == '{"method":"success"}'
    finally:
        ws.close()
    assert sim.stats["sessions_completed"] == 1


def test_default_advance_count_is_one_and_summary_null(sim) -> None:
    start = sim.first_slot + 20
    ws = control(sim)
    try:
        create(ws, startSlot=start, endSlot=start + 1)
        for s in (start, start + 1):
            send(ws, "continue", {})
            got = recv_until(ws, until_method("readyForContinue", "completed"))
            assert got[:-1] == slot_frames(sim.chain, s, s)
        assert got[-1] == '{"method":"completed","params":{"summary":null}}'
    finally:
        ws.close()


def test_sequenced_session_numbers_every_frame(sim) -> None:
    start = sim.first_slot
    ws = control(sim)
    try:
        frames = create(ws, startSlot=start, endSlot=start + 3, disconnectTimeoutSecs=30)
        send(ws, "continue", {"advanceCount": 4})
        frames += recv_until(ws, until_method("completed"))
        send(ws, "resumeAttachedSession")     # acknowledged with success, sequenced like any event
        frames.append(recv_text(ws))
        msgs = [json.loads(f) for f in frames]
        assert [m["seqId"] for m in msgs] == list(range(1, len(msgs) + 1))
        assert frames[0].startswith('{"seqId":1,"method":"status"')
        assert msgs[-1] == {"seqId": len(msgs), "method": "success"}
        bare = ['{' + f.split(",", 1)[1] for f in frames[5:-2]]
        assert bare == slot_frames(sim.chain, start, start + 3)
    finally:
        ws.close()


def test_continue_to_pauses_before_the_batch(sim) -> None:
    chain = sim.chain
    start = sim.first_slot
    target = next(s for s in range(start + 2, start + 50) if chain.tx_count(s) >= 3)
    ws = control(sim)
    try:
        create(ws, startSlot=start, endSlot=start + 60)
        send(ws, "continueTo", {"slot": target, "batchIndex": 2})
        got = recv_until(ws, until_method("paused", "error"))
        assert got[-1] == '{"method":"paused","params":{"slot":%d,"batchIndex":2}}' % target
        expected = slot_frames(chain, start, target - 1) + [
            '{"method":"status","params":{"status":"decodedTransactions"}}',
            '{"method":"status","params":{"status":"readyToExecuteUserTransactions"}}']
        assert got[:-1] == expected
        # the rest of the paused slot, then the next one
        send(ws, "continue", {"advanceCount": 2})
        got = recv_until(ws, until_method("readyForContinue"))
        nxt = target + 1
        assert got == ['{"method":"status","params":{"status":"executedBlockTransactions"}}',
                       '{"method":"slotNotification","params":%d}' % target] + slot_frames(chain, nxt, nxt) + [
            '{"method":"readyForContinue"}']
        # a target behind the position is refused, session stays usable
        send(ws, "continueTo", {"slot": start, "batchIndex": 0})
        err = json.loads(recv_text(ws))
        assert err["method"] == "error" and "invalidRequest" in err["params"]
        send(ws, "continue", {})
        assert recv_until(ws, until_method("readyForContinue"))[-1] == '{"method":"readyForContinue"}'
    finally:
        ws.close()


def test_discovery_batches_feed_continue_to(sim) -> None:
    chain = sim.chain
    pid = sim.program_ids[1]
    start, end = sim.first_slot, sim.first_slot + 40
    expected = [(t["slot"], chain.locate_signature(t["transaction"]["signatures"][0])[1])
                for t in chain.transactions(start, end, [pid])]
    ws = control(sim)
    seen = []
    try:
        frames = create(ws, startSlot=start, endSlot=end, discoveries=[{"programExecuted": pid}])
        msgs = [json.loads(f) for f in frames]
        assert [m["method"] for m in msgs] == ["status", "status", "sessionCreated", "slotNotification",
                                               "discoveryBatch", "readyForContinue"]
        while True:
            disc = [m for m in msgs if m["method"] == "discoveryBatch"]
            if not disc:
                break
            (d,) = disc
            p = d["params"]
            assert list(p) == ["slot", "batchIndex", "matched", "transactions", "transactionIndices"]
            assert p["matched"] == [{"programExecuted": pid}]
            assert p["transactionIndices"] == [p["batchIndex"]]
            assert p["transactions"][0]["encoding"] == "base64"
            seen.append((p["slot"], p["batchIndex"]))
            send(ws, "continueTo", {"slot": p["slot"], "batchIndex": p["batchIndex"]})
            got = recv_until(ws, until_method("paused", "readyForContinue", "error"))
            msgs = [json.loads(f) for f in got]
            assert msgs[-1] == {"method": "paused", "params": {"slot": p["slot"], "batchIndex": p["batchIndex"]}}
        assert seen == expected
    finally:
        ws.close()


def test_close_removes_the_session(sim) -> None:
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        send(ws, "closeBacktestSession")
        assert recv_text(ws) == '{"method":"success"}'
        send(ws, "continue", {})
        err = json.loads(recv_text(ws))
        assert err["method"] == "error" and "invalidRequest" in err["params"]
    finally:
        ws.close()
    assert sim.session(sid).state == "closed"


def test_user_transactions_and_modifications_are_recorded(sim) -> None:
    import base64
    start = sim.first_slot
    acct = sim.chain.accounts_of(sim.program_ids[0])[0]
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=start + 5))
        tx = b"\x01" + bytes(range(64)) + b"message"
        send(ws, "continue", {"advanceCount": 2, "transactions": [base64.b64encode(tx).decode()],
                              "modifyAccountStates": {acct: {"data": {"data": "AQID", "encoding": "base64"},
                                                             "executable": False, "lamports": 42,
                                                             "owner": sim.program_ids[0], "space": 3}}})
        got = recv_until(ws, until_method("readyForContinue"))
        expected = slot_frames(sim.chain, start, start + 1, modified=True)
        first_slot_end = expected.index('{"method":"status","params":{"status":"executedBlockTransactions"}}')
        expected.insert(first_slot_end + 1, '{"method":"status","params":{"status":"executedUserTransactions"}}')
        assert got == expected + ['{"method":"readyForContinue"}']
        assert sim.session(sid).received_transactions == [tx]
        assert sim.session(sid).modifications[0][acct]["lamports"] == 42
    finally:
        ws.close()


def test_oracle_update_discovery_filter(sim) -> None:
    chain = sim.chain
    pid = sim.program_ids[2]
    acct = chain.accounts_of(pid)[3]
    start, end = sim.first_slot, sim.first_slot + 60
    first_write = next(d for d in chain.account_diffs(start, end, accounts=[acct]))
    slot, index = chain.locate_signature(first_write["signature"])
    ws = control(sim)
    try:
        frames = create(ws, startSlot=start, endSlot=end,
                        discoveries=[{"oracleUpdate": {"programs": [pid], "accounts": [acct]}}])
        disc = [json.loads(f) for f in frames if '"discoveryBatch"' in f]
        assert disc[0]["params"]["slot"] == slot and disc[0]["params"]["batchIndex"] == index
        assert disc[0]["params"]["matched"] == [{"oracleUpdate": {"programs": [pid], "accounts": [acct]}}]
    finally:
        ws.close()


def test_rpc_reads_while_paused_show_state_through_batch_minus_one(sim) -> None:
    from .rawclient import rpc
    chain = sim.chain
    start = sim.first_slot
    slot = next(s for s in range(start + 1, start + 60) if chain.tx_count(s) >= 4)
    blk = chain.block(slot)
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=start + 60))
        send(ws, "continueTo", {"slot": slot, "batchIndex": 3})
        recv_until(ws, until_method("paused"))
        assert rpc(sim, sid, "getTransaction", [blk.txs[2].signature])["result"] == blk.txs[2].value
        assert rpc(sim, sid, "getTransaction", [blk.txs[3].signature])["result"] is None
        for tx in blk.txs[:4]:
            for addr in tx.value["transaction"]["message"]["accountKeys"][1:-1]:
                got = rpc(sim, sid, "getAccountInfo", [addr, {"encoding": "base64"}])["result"]["value"]
                assert got == chain.account_at(addr, slot, 3)
    finally:
        ws.close()
