"""Per-session HTTP JSON-RPC (§9.6) and GET /available-ranges (§1.3), with requests only."""
from __future__ import annotations

import base64
import json

import pytest
import requests

from .rawclient import control, create, recv_text, recv_until, rpc, send, session_id_of, until_method


@pytest.fixture
def running(sim):
    """A session that executed its first 8 slots (idle, not completed)."""
    start = sim.first_slot
    ws = control(sim)
    sid = session_id_of(create(ws, startSlot=start, endSlot=start + 30))
    send(ws, "continue", {"advanceCount": 8})
    recv_until(ws, until_method("readyForContinue"))
    yield sim, ws, sid
    ws.close()


def test_available_ranges(sim) -> None:
    r = requests.get(f"{sim.http_url}/available-ranges", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert len(body) == 20 and body[1]["bundleStartSlot"] == sim.first_slot + 10
    truth = sim.chain.available_ranges()[0]
    assert body[0] == {"bundleStartSlot": truth["bundle_start_slot"], "bundleStartSlotUtc": truth["bundle_start_slot_utc"],
                       "maxBundleEndSlot": truth["max_bundle_end_slot"],
                       "maxBundleEndSlotUtc": truth["max_bundle_end_slot_utc"], "maxBundleSize": sim.bundle_size,
                       "kind": "blocks", "scope": "global"}


def test_available_ranges_in_the_snake_case_dialect(sim) -> None:
    sim.dialect = "nested-snake"
    body = requests.get(f"{sim.http_url}/available-ranges", timeout=5).json()
    assert body[0] == {k: v for k, v in sim.chain.available_ranges()[0].items() if not k.startswith("snapshot")}


def test_health_and_ready_and_draining_refuses_creates(sim) -> None:
    r = requests.get(f"{sim.http_url}/health", timeout=5)
    assert (r.status_code, r.text) == (200, "ok")
    assert requests.get(f"{sim.http_url}/ready", timeout=5).status_code == 200
    sim.draining = True
    assert requests.get(f"{sim.http_url}/ready", timeout=5).status_code == 503
    ws = control(sim)
    try:
        send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 5})
        reply = json.loads(recv_text(ws))
        assert reply["method"] == "error" and "draining" in reply["params"]["invalidRequest"]["error"]
        assert sim.stats["creates_refused_draining"] == 1 and sim.stats["sessions_created"] == 0
    finally:
        ws.close()
    sim.draining = False
    assert requests.get(f"{sim.http_url}/ready", timeout=5).status_code == 200


def test_read_methods(running) -> None:
    sim, _ws, sid = running
    chain = sim.chain
    start = sim.first_slot
    last = max(s for s in range(start, start + 8) if chain.is_produced(s))
    ctx = {"slot": last, "apiVersion": "2.0.0"}
    assert rpc(sim, sid, "getSlot") == {"status": 200, "jsonrpc": "2.0", "id": 1, "result": last}
    acct = chain.accounts_of(sim.program_ids[0])[1]
    info = rpc(sim, sid, "getAccountInfo", [acct, {"encoding": "base64"}])
    assert info["result"] == {"context": ctx, "value": chain.account_at(acct, start + 8)}
    assert rpc(sim, sid, "getBalance", [acct])["result"] == {
        "context": ctx, "value": chain.account_at(acct, start + 8)["lamports"]}
    unknown = "11111111111111111111111111111112"
    multi = rpc(sim, sid, "getMultipleAccounts", [[acct, unknown], {"encoding": "base64"}])["result"]
    assert multi["value"] == [chain.account_at(acct, start + 8), None]
    b58 = rpc(sim, sid, "getAccountInfo", [acct, {"encoding": "base58"}])["result"]["value"]
    assert b58["data"][1] == "base58"
    prog = rpc(sim, sid, "getAccountInfo", [sim.program_ids[0]])["result"]["value"]
    assert prog["executable"] is True
    bh = rpc(sim, sid, "getLatestBlockhash")["result"]
    assert bh == {"context": ctx, "value": {"blockhash": chain.blockhash(last), "lastValidBlockHeight": last + 150}}
    executed = chain.transactions(start, start + 7)[-1]
    sig = executed["transaction"]["signatures"][0]
    assert rpc(sim, sid, "getTransaction", [sig, {"encoding": "json", "maxSupportedTransactionVersion": 0}])[
        "result"] == executed
    future = chain.transactions(start + 9, start + 20)[0]["transaction"]["signatures"][0]
    assert rpc(sim, sid, "getTransaction", [future])["result"] is None
    statuses = rpc(sim, sid, "getSignatureStatuses", [[sig, future]])["result"]["value"]
    assert statuses[0]["slot"] == executed["slot"] and statuses[1] is None
    pa = rpc(sim, sid, "getProgramAccounts", [sim.program_ids[0], {"encoding": "base64"}])["result"]
    assert sorted(a["pubkey"] for a in pa) == sorted(chain.accounts_of(sim.program_ids[0]))


def test_write_methods_and_overrides(running) -> None:
    sim, ws, sid = running
    chain = sim.chain
    raw = b"\x01" + bytes(range(64)) + b"rest of a transaction"
    sig = rpc(sim, sid, "sendTransaction", [base64.b64encode(raw).decode(), {"encoding": "base64"}])["result"]
    from simclient._base58 import b58encode
    assert sig == b58encode(raw[1:65])
    assert sim.session(sid).received_transactions == [raw]
    sim_res = rpc(sim, sid, "simulateTransaction", [base64.b64encode(raw).decode(), {"encoding": "base64"}])
    assert sim_res["result"]["value"] == {"err": None, "logs": [], "accounts": None, "unitsConsumed": 0,
                                          "returnData": None}
    acct = chain.accounts_of(sim.program_ids[2])[0]
    override = {"data": {"data": base64.b64encode(b"hello").decode(), "encoding": "base64"}, "executable": False,
                "lamports": 777, "owner": sim.program_ids[2], "space": 5}
    assert rpc(sim, sid, "modifyAccounts", [{acct: override}])["result"] is None
    value = rpc(sim, sid, "getAccountInfo", [acct, {"encoding": "base64"}])["result"]["value"]
    assert value["lamports"] == 777 and value["data"] == [base64.b64encode(b"hello").decode(), "base64"]
    # the override holds until the chain itself next writes the account
    nxt = next(d for d in chain.account_diffs(sim.first_slot + 8, sim.last_slot) if d["account"] == acct)
    wslot = nxt["context"]["slot"]
    send(ws, "continue", {"advanceCount": wslot - (sim.first_slot + 8)})
    recv_until(ws, until_method("readyForContinue"))
    assert rpc(sim, sid, "getBalance", [acct])["result"]["value"] == 777
    send(ws, "continue", {"advanceCount": 1})
    recv_until(ws, until_method("readyForContinue"))
    assert rpc(sim, sid, "getBalance", [acct])["result"]["value"] == chain.account_at(acct, wslot + 1)["lamports"]


def test_errors(running) -> None:
    sim, ws, sid = running
    assert rpc(sim, sid, "getFoo")["error"]["code"] == -32601
    assert rpc(sim, sid, "getAccountInfo", ["not-a-key"])["error"]["code"] == -32602
    assert rpc(sim, sid, "getAccountInfo", [])["error"]["code"] == -32602
    assert rpc(sim, sid, "modifyAccounts", [{"x": {}}])["error"]["code"] == -32602
    assert rpc(sim, sid, "getTransaction", ["abc", {"encoding": "base64"}])["error"]["code"] == -32602
    r = requests.post(f"{sim.http_url}/backtest/{sid}", data=b"{nope", timeout=5)
    assert r.json()["error"]["code"] == -32700
    batch = requests.post(f"{sim.http_url}/backtest/{sid}", timeout=5,
                          json=[{"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                                {"jsonrpc": "2.0", "id": 2, "method": "nope"}]).json()
    assert [b["id"] for b in batch] == [1, 2] and "result" in batch[0] and batch[1]["error"]["code"] == -32601
    r = requests.post(f"{sim.http_url}/backtest/unknown", json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                      timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == -32001
    # completion: the endpoint stops serving
    send(ws, "continue", {"advanceCount": 100})
    recv_until(ws, until_method("completed"))
    done = rpc(sim, sid, "getSlot")
    assert done["error"]["code"] == -32004 and "session completed" in done["error"]["message"]


def test_solders_parses_rpc_responses(running) -> None:
    responses = pytest.importorskip("solders.rpc.responses")
    sim, _ws, sid = running
    acct = sim.chain.accounts_of(sim.program_ids[0])[1]
    r = requests.post(f"{sim.http_url}/backtest/{sid}", timeout=5, json={
        "jsonrpc": "2.0", "id": 1, "method": "getAccountInfo", "params": [acct, {"encoding": "base64"}]})
    parsed = responses.GetAccountInfoResp.from_json(r.text)
    assert parsed.value.lamports == sim.chain.account_at(acct, sim.first_slot + 8)["lamports"]
    r = requests.post(f"{sim.http_url}/backtest/{sid}", timeout=5, json={
        "jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash"})
    assert str(responses.GetLatestBlockhashResp.from_json(r.text).value.blockhash) == json.loads(r.text)[
        "result"]["value"]["blockhash"]
