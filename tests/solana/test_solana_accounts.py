"""AccountData ↔ solders Account, and the typed event accessors (solders objects when installed, else strings)."""
from __future__ import annotations

import base64
import sys
from typing import Any

import pytest

pytest.importorskip("solders", reason="needs the 'solana' extra (solders): pip install 'simclient[solana]'")

from solders.account import Account  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.signature import Signature  # noqa: E402

from simclient import Continue  # noqa: E402
from simclient import events as ev  # noqa: E402
from simclient.protocol import AccountData, encode_account_data  # noqa: E402

pytestmark = pytest.mark.solana

OWNER = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuWvf9ss623VQ5DA")
SIG = str(Signature.new_unique())


@pytest.mark.parametrize("account", [
    Account(lamports=0, data=b"", owner=Pubkey.default()),
    Account(lamports=2_039_280, data=bytes(range(165)), owner=OWNER),
    Account(lamports=2**64 - 1, data=b"\x00" * 10_240, owner=Pubkey.new_unique(), executable=True),
], ids=["empty", "token-account", "max-lamports-executable"])
def test_solders_account_round_trips(account: Account) -> None:
    data = AccountData.from_solders(account)
    assert (data.lamports, data.data, data.owner, data.executable) == (
        account.lamports, bytes(account.data), str(account.owner), account.executable)
    assert data.to_solders() == account                       # rent_epoch 0 == solders' default
    assert AccountData.from_solders(data.to_solders()) == data
    wire = encode_account_data(data)                          # §5.1 on the wire, space = len(data)
    assert wire["space"] == len(account.data) and base64.b64decode(wire["data"]["data"]) == bytes(account.data)
    assert AccountData.from_wire(wire).to_solders() == account


def test_rent_epoch_is_not_carried() -> None:
    """§5.1 AccountData has no rentEpoch: an RPC-fetched Account (rent_epoch u64::MAX) comes back with 0."""
    fetched = Account(lamports=5, data=b"ab", owner=OWNER, rent_epoch=2**64 - 1)
    back = AccountData.from_solders(fetched).to_solders()
    assert back.rent_epoch == 0 and (back.lamports, back.data, back.owner) == (5, b"ab", OWNER)


def test_from_solders_rejects_other_objects() -> None:
    with pytest.raises(ValueError, match="expected a solders Account"):
        AccountData.from_solders(OWNER)
    with pytest.raises(ValueError):
        AccountData(lamports=1, owner="not base58 !").to_solders()


def test_typed_accessors_are_solders_objects() -> None:
    tx = ev.Transaction(slot=1, signature=SIG, value={})
    assert tx.signature_obj == Signature.from_string(SIG)
    diff = ev.AccountDiff(slot=1, account=str(OWNER), signature=SIG)
    assert diff.account_pubkey == OWNER and isinstance(diff.account_pubkey, Pubkey)


def test_typed_accessors_fall_back_to_strings_without_solders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "solders.signature", None)   # makes `from solders.signature import` fail
    monkeypatch.setitem(sys.modules, "solders.pubkey", None)
    assert ev.Transaction(slot=1, signature=SIG, value={}).signature_obj == SIG
    assert ev.AccountDiff(slot=1, account=str(OWNER), signature=None).account_pubkey == str(OWNER)


def test_pre_post_account_decode_and_clear_errors() -> None:
    ui = {"lamports": 9, "data": [base64.b64encode(b"xyz").decode(), "base64"], "owner": str(OWNER),
          "executable": False, "rentEpoch": 2**64 - 1, "space": 3}
    diff = ev.AccountDiff(slot=1, account=str(OWNER), signature=SIG, pre=None, post=ui)
    assert diff.pre_account() is None
    assert diff.post_account().to_solders() == Account(9, b"xyz", OWNER)
    zstd = ev.AccountDiff(1, str(OWNER), SIG, post=dict(ui, data=["KLUv/SAA", "base64+zstd"]))
    with pytest.raises(ValueError, match="unknown account data encoding 'base64\\+zstd'"):
        zstd.post_account()
    parsed = ev.AccountDiff(1, str(OWNER), SIG, post=dict(ui, data={"program": "spl-token", "parsed": {}, "space": 3}))
    with pytest.raises(ValueError, match="jsonParsed"):
        parsed.post_account()


def test_streamed_diffs_decode_to_the_chain_state_and_match_rpc(sim: Any, start_session: Any) -> None:
    """Real events from the local simulator: typed accessors, decoded accounts, and solders agreeing on them."""
    program = sim.program_ids[0]

    def subscribe(session: Any) -> None:
        session.subscribe_transactions([program])
        session.subscribe_account_diffs([program])

    adv = start_session(subscribe=subscribe)
    adv.advance(Continue(advance_count=10))
    truth = sim.chain.account_diffs(sim.first_slot, adv.last_slot, [program])
    diffs = adv.collect(ev.AccountDiff, len(truth))
    txs = adv.collect(ev.Transaction, len(sim.chain.transactions(sim.first_slot, adv.last_slot, [program])))
    assert diffs and txs
    assert [(d.slot, d.account, d.signature) for d in diffs] == [
        (t["context"]["slot"], t["account"], t["signature"]) for t in truth]
    for d, t in zip(diffs, truth):
        assert isinstance(d.account_pubkey, Pubkey) and str(d.account_pubkey) == d.account
        assert d.pre_account() == AccountData.from_ui_account(t["pre"])
        assert d.post_account() == AccountData.from_ui_account(t["post"])
    assert all(isinstance(t.signature_obj, Signature) and str(t.signature_obj) == t.signature for t in txs)
    # The last diff of an account is what the session's RPC serves now, through solders too.
    last = {d.account: d for d in diffs}
    for address, d in last.items():
        served = AccountData.from_ui_account(adv.session.rpc.get_account_info(address))
        assert served == d.post_account()
        assert served.to_solders() == d.post_account().to_solders()
