"""The synthetic chain: determinism, shape, and account-state consistency (ground truth for everything else)."""
from __future__ import annotations

import base64
import json

import pytest

from simclient.local import SyntheticChain
from simclient._base58 import b58decode, b58encode
from simclient.local.chain import ACCOUNTS_PER_PROGRAM, MAX_TXS_PER_SLOT

FIRST = 300_000_000


def test_base58_round_trip_and_known_values() -> None:
    assert b58encode(bytes(32)) == "11111111111111111111111111111111"
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58decode("StV1DL6CwTryKyV") == b"hello world"
    for raw in (b"", b"\0", b"\0\0\x01", bytes(range(64))):
        assert b58decode(b58encode(raw)) == raw
    with pytest.raises(ValueError):
        b58decode("0OIl")


def test_same_seed_same_chain_and_program_ids_are_seed_independent() -> None:
    a, b, c = SyntheticChain(7), SyntheticChain(7), SyntheticChain(8)
    assert json.dumps(a.transactions(FIRST, FIRST + 40)) == json.dumps(b.transactions(FIRST, FIRST + 40))
    assert json.dumps(a.account_diffs(FIRST, FIRST + 40)) == json.dumps(b.account_diffs(FIRST, FIRST + 40))
    assert a.transactions(FIRST, FIRST + 40) != c.transactions(FIRST, FIRST + 40)
    assert a.program_ids == c.program_ids and len(a.program_ids) == 5
    for pid in a.program_ids:
        assert len(b58decode(pid)) == 32
        assert len(a.accounts_of(pid)) == ACCOUNTS_PER_PROGRAM


def test_layout_skips_and_ranges() -> None:
    chain = SyntheticChain(0, FIRST, bundle_size=100, num_bundles=100)
    assert chain.last_slot == FIRST + 9_999
    produced = chain.produced_slots(FIRST, chain.last_slot)
    assert 0.03 < 1 - len(produced) / 10_000 < 0.07          # about 5 % skipped
    assert not chain.is_produced(FIRST - 1) and not chain.is_produced(chain.last_slot + 1)
    ranges = chain.available_ranges()
    assert len(ranges) == 100
    assert ranges[0] == {"bundle_start_slot": FIRST, "bundle_start_slot_utc": "2026-01-15T12:00:00Z",
                         "max_bundle_end_slot": FIRST + 99, "max_bundle_end_slot_utc": "2026-01-15T12:00:39Z",
                         "max_bundle_size": 100, "kind": "blocks", "scope": "global",
                         "snapshot_slot": None, "snapshot_slot_utc": None}
    assert [r["bundle_start_slot"] for r in ranges] == list(range(FIRST, FIRST + 10_000, 100))
    skipped = next(s for s in range(FIRST, FIRST + 1000) if not chain.is_produced(s))
    assert chain.block(skipped) is None and chain.transactions(skipped, skipped) == []


def test_transaction_shape() -> None:
    chain = SyntheticChain(0)
    txs = chain.transactions(FIRST, FIRST + 199)
    assert txs
    counts = [chain.tx_count(s) for s in range(FIRST, FIRST + 200)]
    assert max(counts) <= MAX_TXS_PER_SLOT and min(counts) >= 0
    failures = 0
    for tx in txs:
        assert list(tx) == ["slot", "blockTime", "version", "transaction", "meta"]
        assert tx["version"] == 0
        msg = tx["transaction"]["message"]
        (sig,) = tx["transaction"]["signatures"]
        assert len(b58decode(sig)) == 64
        assert chain.locate_signature(sig) is not None
        keys = msg["accountKeys"]
        pid = keys[-1]
        assert pid in chain.program_ids
        assert 3 <= len(keys) <= 5
        assert msg["header"] == {"numRequiredSignatures": 1, "numReadonlySignedAccounts": 0,
                                 "numReadonlyUnsignedAccounts": 1}
        assert msg["addressTableLookups"] == []
        (ix,) = msg["instructions"]
        assert ix["programIdIndex"] == len(keys) - 1 and ix["stackHeight"] is None
        assert set(keys[1:-1]) <= set(chain.accounts_of(pid))
        meta = tx["meta"]
        assert len(meta["preBalances"]) == len(meta["postBalances"]) == len(keys)
        assert meta["postBalances"][0] == meta["preBalances"][0] - meta["fee"]
        assert meta["logMessages"][0] == f"Program {pid} invoke [1]"
        for k in ("innerInstructions", "preTokenBalances", "postTokenBalances", "rewards"):
            assert meta[k] == []
        assert meta["loadedAddresses"] == {"writable": [], "readonly": []}
        if meta["err"] is None:
            assert meta["status"] == {"Ok": None}
            assert meta["logMessages"][-1] == f"Program {pid} success"
        else:
            failures += 1
            assert meta["status"] == {"Err": meta["err"]}
            assert "InstructionError" in meta["err"]
            assert meta["preBalances"][1:] == meta["postBalances"][1:]
    assert 0.04 < failures / len(txs) < 0.2
    assert chain.locate_signature(b58encode(bytes(64))) is None


def test_account_state_is_consistent_and_start_independent() -> None:
    chain = SyntheticChain(3)
    diffs = chain.account_diffs(FIRST + 50, FIRST + 400)
    assert diffs
    last = {}
    for d in diffs:
        assert set(d) == {"context", "account", "signature", "pre", "post"}
        acct = d["account"]
        expected_pre = last.get(acct) or chain.account_at(acct, d["context"]["slot"])
        if acct in last:
            assert d["pre"] == last[acct]
        else:
            assert d["pre"] == expected_pre
        post = d["post"]
        assert set(post) == {"lamports", "data", "owner", "executable", "rentEpoch", "space"}
        assert post["data"][1] == "base64" and len(base64.b64decode(post["data"][0])) == post["space"]
        last[acct] = post
    fresh = SyntheticChain(3)      # no cache: state computed from scratch, starting anywhere
    for acct, post in last.items():
        assert fresh.account_at(acct, FIRST + 401) == post
    # diffs of a sub-range agree with the full range
    assert chain.account_diffs(FIRST + 200, FIRST + 210) == [
        d for d in diffs if FIRST + 200 <= d["context"]["slot"] <= FIRST + 210]


def test_filters() -> None:
    chain = SyntheticChain(0)
    pid = chain.program_ids[2]
    txs = chain.transactions(FIRST, FIRST + 99, [pid])
    assert txs and all(t["transaction"]["message"]["accountKeys"][-1] == pid for t in txs)
    diffs = chain.account_diffs(FIRST, FIRST + 99, [pid])
    assert diffs and all(d["post"]["owner"] == pid for d in diffs)
    acct = chain.accounts_of(pid)[0]
    assert chain.account_diffs(FIRST, FIRST + 99, accounts=[acct]) == [d for d in diffs if d["account"] == acct]


def test_solders_can_parse_transactions() -> None:
    solders = pytest.importorskip("solders.rpc.responses")
    chain = SyntheticChain(0)
    for tx in chain.transactions(FIRST, FIRST + 20)[:30]:
        resp = json.dumps({"jsonrpc": "2.0", "id": 1, "result": tx})
        parsed = solders.GetTransactionResp.from_json(resp)
        assert str(parsed.value.transaction.transaction.signatures[0]) == tx["transaction"]["signatures"][0]
