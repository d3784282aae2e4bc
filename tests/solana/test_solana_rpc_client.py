"""A real ``solana.rpc.api.Client`` against a local simulator session: every response parses into solders objects
whose values equal the synthetic chain's state at the session's slot."""
from __future__ import annotations

import base64
from typing import Any

import pytest

pytest.importorskip("solders", reason="needs the 'solana' extra (solders): pip install 'simclient[solana]'")
solana_api = pytest.importorskip("solana.rpc.api", reason="needs the 'solana' extra with solana-py < 0.40 "
                                                          "(the sync Client): pip install 'simclient[solana]'")

from solana.exceptions import SolanaRpcException  # noqa: E402
from solana.rpc.core import RPCException  # noqa: E402
try:  # solana-py 0.39+ (the solana.rpc.types NamedTuples are deprecated there)
    from solana.rpc.models import DataSliceOpts, MemcmpOpts, TxOpts
except ImportError:  # older solana-py
    from solana.rpc.types import DataSliceOpts, MemcmpOpts, TxOpts  # type: ignore[assignment]
from solders.account import Account  # noqa: E402
from solders.hash import Hash  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import MessageV0  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.signature import Signature  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402
from solders.transaction import VersionedTransaction  # noqa: E402
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError  # noqa: E402

from simclient import Continue  # noqa: E402
from simclient.errors import RpcError  # noqa: E402
from simclient.local.chain import BPF_LOADER, RENT_EPOCH  # noqa: E402
from simclient.protocol import AccountData  # noqa: E402

# solana-py 0.39 deprecates its sync Client (removed in 0.40); the warning is expected here.
pytestmark = [pytest.mark.solana, pytest.mark.filterwarnings("ignore:Client is deprecated")]


def pk(address: str) -> Pubkey:
    return Pubkey.from_string(address)


def all_accounts(sim: Any) -> list:
    return [a for p in sim.program_ids for a in sim.chain.accounts_of(p)]


def state_after(sim: Any, address: str, slot: int) -> Any:
    """Ground truth: the UiAccount of ``address`` once ``slot`` has executed (= before ``slot + 1``)."""
    return sim.chain.account_at(address, slot + 1)


def assert_account(got: Account, ui: dict) -> None:
    assert isinstance(got, Account)
    assert got.lamports == ui["lamports"]
    assert bytes(got.data) == base64.b64decode(ui["data"][0])
    assert str(got.owner) == ui["owner"]
    assert got.executable == ui["executable"]
    assert got.rent_epoch == ui["rentEpoch"]
    assert AccountData.from_solders(got) == AccountData.from_ui_account(dict(ui, space=None))


def test_session_solana_client_is_bound_to_the_session_endpoint(advanced: Any) -> None:
    sc = advanced.session.solana_client()
    assert isinstance(sc, solana_api.Client)
    assert sc._provider.endpoint_uri == advanced.session.rpc_endpoint
    # (not is_connected(): before solana-py 0.36 it GETs <endpoint>/health, which a session endpoint does not serve)
    assert sc.get_slot().value == advanced.last_slot


def test_get_slot_is_the_last_executed_slot(advanced: Any) -> None:
    slot = advanced.session.solana_client().get_slot().value
    assert slot == advanced.last_slot == advanced.sim_session.current_slot
    assert advanced.sim.first_slot < slot < advanced.sim.first_slot + advanced.advance_count


def test_get_balance_equals_chain_state_for_every_account(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    changed = 0
    for address in all_accounts(sim):
        resp = sc.get_balance(pk(address))
        assert resp.context.slot == slot
        assert resp.value == state_after(sim, address, slot)["lamports"]
        changed += resp.value != sim.chain.account_at(address, sim.first_slot)["lamports"]
    assert changed > 0, "no account changed in the first slots: the comparison would be vacuous"
    assert sc.get_balance(Pubkey.new_unique()).value == 0


def test_get_account_info_equals_chain_state(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    for address in all_accounts(sim):
        resp = sc.get_account_info(pk(address))
        assert resp.context.slot == slot
        assert_account(resp.value, state_after(sim, address, slot))
    program = sc.get_account_info(pk(sim.program_ids[0])).value
    assert program.executable and str(program.owner) == BPF_LOADER and program.rent_epoch == RENT_EPOCH
    assert sc.get_account_info(Pubkey.new_unique()).value is None


def test_get_account_info_encodings_and_data_slice(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    address = sim.chain.accounts_of(sim.program_ids[1])[3]
    raw = base64.b64decode(state_after(sim, address, slot)["data"][0])
    sliced = sc.get_account_info(pk(address), data_slice=DataSliceOpts(offset=2, length=5)).value
    assert bytes(sliced.data) == raw[2:7]
    assert bytes(sc.get_account_info(pk(address), encoding="base58").value.data) == raw
    parsed = sc.get_account_info_json_parsed(pk(address)).value   # not parseable: falls back to binary, as Solana
    assert bytes(parsed.data) == raw


def test_get_multiple_accounts_equals_chain_state(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    addresses = all_accounts(sim)[::3] + [sim.program_ids[2]]
    missing = Pubkey.new_unique()
    resp = sc.get_multiple_accounts([pk(a) for a in addresses] + [missing])
    assert resp.context.slot == slot
    assert len(resp.value) == len(addresses) + 1 and resp.value[-1] is None
    for address, got in zip(addresses, resp.value):
        assert_account(got, state_after(sim, address, slot))


def test_get_latest_blockhash(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    resp = sc.get_latest_blockhash()
    assert resp.context.slot == slot
    assert resp.value.blockhash == Hash.from_string(sim.chain.blockhash(slot))
    assert isinstance(resp.value.last_valid_block_height, int)
    assert resp.value.last_valid_block_height == advanced.session.rpc.get_latest_blockhash()["lastValidBlockHeight"]


def test_get_transaction_equals_chain_transactions(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    truth = sim.chain.transactions(sim.first_slot, slot)
    assert any(t["meta"]["err"] for t in truth) and any(t["meta"]["err"] is None for t in truth)
    for t in truth:
        sig = Signature.from_string(t["transaction"]["signatures"][0])
        resp = sc.get_transaction(sig, max_supported_transaction_version=0)
        got = resp.value
        assert got.slot == t["slot"] and got.block_time == t["blockTime"]
        assert got.transaction.version == 0
        meta = got.transaction.meta
        assert meta.fee == t["meta"]["fee"]
        assert meta.pre_balances == t["meta"]["preBalances"] and meta.post_balances == t["meta"]["postBalances"]
        assert meta.log_messages == t["meta"]["logMessages"]
        assert meta.compute_units_consumed == t["meta"]["computeUnitsConsumed"]
        ui_tx = got.transaction.transaction
        assert ui_tx.signatures == [sig]
        assert [str(k) for k in ui_tx.message.account_keys] == t["transaction"]["message"]["accountKeys"]
        assert str(ui_tx.message.recent_blockhash) == t["transaction"]["message"]["recentBlockhash"]
        if t["meta"]["err"] is None:
            assert meta.err is None
        else:
            index, detail = t["meta"]["err"]["InstructionError"]
            assert meta.err == TransactionErrorInstructionError(index, InstructionErrorCustom(detail["Custom"]))
    # Executed later (or never): null.
    later = sim.chain.transactions(slot + 1, slot + 10)
    assert later, "the chain has transactions after the current slot"
    assert sc.get_transaction(Signature.from_string(later[0]["transaction"]["signatures"][0])).value is None
    assert sc.get_transaction(Signature.default()).value is None


def test_get_signature_statuses(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    truth = sim.chain.transactions(sim.first_slot, slot)[:5]
    sigs = [Signature.from_string(t["transaction"]["signatures"][0]) for t in truth] + [Signature.default()]
    resp = sc.get_signature_statuses(sigs)
    assert resp.context.slot == slot
    assert resp.value[-1] is None
    for t, status in zip(truth, resp.value):
        assert status.slot == t["slot"]
        assert (status.err is None) == (t["meta"]["err"] is None)


def test_get_program_accounts_with_filters(advanced: Any) -> None:
    sim, sc, slot = advanced.sim, advanced.session.solana_client(), advanced.last_slot
    program = sim.program_ids[0]
    truth = {a: base64.b64decode(state_after(sim, a, slot)["data"][0]) for a in sim.chain.accounts_of(program)}
    every = sc.get_program_accounts(pk(program)).value
    assert {str(k.pubkey): bytes(k.account.data) for k in every} == truth
    size = sorted(len(d) for d in truth.values())[0]
    sized = sc.get_program_accounts(pk(program), filters=[size]).value
    assert sorted(str(k.pubkey) for k in sized) == sorted(a for a, d in truth.items() if len(d) == size)
    assert 0 < len(sized) < len(truth), "the dataSize filter must select a proper subset"
    target, data = sorted(truth.items())[0]
    from simclient._base58 import b58encode

    matched = sc.get_program_accounts(pk(program), filters=[MemcmpOpts(offset=3, bytes=b58encode(data[3:9]))]).value
    assert [str(k.pubkey) for k in matched] == [a for a, d in sorted(truth.items()) if d[3:9] == data[3:9]]
    assert target in [str(k.pubkey) for k in matched] and len(matched) < len(truth)
    b64 = MemcmpOpts(offset=3, bytes=base64.b64encode(data[3:9]).decode())
    raw = advanced.session.rpc.call("getProgramAccounts", [program, {"encoding": "base64", "filters": [
        {"memcmp": {"offset": 3, "bytes": b64.bytes, "encoding": "base64"}}, {"dataSize": len(data)}]}])
    assert [k["pubkey"] for k in raw] == [str(k.pubkey) for k in matched if len(truth[str(k.pubkey)]) == len(data)]
    with pytest.raises(RpcError, match="unsupported filter"):   # refused, never silently ignored
        advanced.session.rpc.call("getProgramAccounts", [program, {"filters": [{"tokenAccountState": None}]}])


def test_fee_simulate_and_send_transaction(advanced: Any) -> None:
    sc = advanced.session.solana_client()
    payer = Keypair()
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1))
    tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.new_unique()), [payer])
    assert sc.get_fee_for_message(tx.message).value == 5000
    assert sc.simulate_transaction(tx).value.err is None
    sent = sc.send_raw_transaction(bytes(tx), opts=TxOpts(skip_preflight=True))
    assert sent.value == tx.signatures[0]
    assert advanced.sim_session.rpc_transactions[-1] == bytes(tx)


def rpc_error(call: Any) -> Any:
    """The solders error object of a failed call: solana-py raises RPCException(error) (older releases with older
    solders return the error object instead)."""
    try:
        got = call()
    except RPCException as exc:
        got = exc.args[0]
    assert type(got).__module__ == "solders.rpc.errors", f"expected a JSON-RPC error, got {got!r}"
    return got


def test_json_rpc_errors_parse_as_solders_errors(advanced: Any) -> None:
    sim, session = advanced.sim, advanced.session
    sc = session.solana_client()
    sig = Signature.from_string(sim.chain.transactions(sim.first_slot, advanced.last_slot)[0]["transaction"]
                                ["signatures"][0])
    assert "`json` encoding only" in rpc_error(lambda: sc.get_transaction(sig, encoding="base64")).message
    assert "Method not found" in rpc_error(sc.get_epoch_info).message
    advanced.advance(Continue(advance_count=100))   # to the end of the range: the endpoint stops serving
    assert any(e.__class__.__name__ == "Completed" for e in advanced.events)
    assert "session completed" in rpc_error(lambda: sc.get_balance(Pubkey.new_unique())).message
    unknown = solana_api.Client(session.rpc_endpoint.rsplit("/", 1)[0] + "/no-such-session")
    with pytest.raises(SolanaRpcException):   # HTTP 404
        unknown.get_slot()
    unknown._provider.session.close()   # solana-py's own Client has no close(); its socket would wait for the GC
