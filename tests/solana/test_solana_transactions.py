"""solders transactions and accounts handed to ``Continue`` arrive at the simulator byte-identical / as given."""
from __future__ import annotations

import base64
from typing import Any

import pytest

pytest.importorskip("solders", reason="needs the 'solana' extra (solders): pip install 'simclient[solana]'")

from solders.account import Account  # noqa: E402
from solders.hash import Hash  # noqa: E402
from solders.instruction import AccountMeta, Instruction  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import Message, MessageV0  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402
from solders.transaction import Transaction, VersionedTransaction  # noqa: E402

from simclient import Continue  # noqa: E402
from simclient.protocol import AccountData  # noqa: E402

pytestmark = pytest.mark.solana

FAKE_BLOCKHASH = Hash.from_string("4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM")


def versioned_transfer(payer: Keypair, lamports: int = 1_000) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=lamports))
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], FAKE_BLOCKHASH), [payer])


def legacy_transfer(payer: Keypair) -> Transaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=7))
    return Transaction([payer], Message([ix], payer.pubkey()), FAKE_BLOCKHASH)


def test_versioned_transaction_arrives_byte_identical(fresh: Any) -> None:
    tx = versioned_transfer(Keypair())
    fresh.advance(Continue(advance_count=2).push_transaction(tx))
    received = fresh.sim_session.continue_transactions
    assert received == [bytes(tx)]
    assert VersionedTransaction.from_bytes(received[0]) == tx
    assert received[0][0] == 1 and received[0][65] == 0x80   # one signature, then a v0 message prefix


def test_every_accepted_form_arrives_in_order(fresh: Any) -> None:
    payer = Keypair()
    v0, legacy, as_bytes, as_b64 = (versioned_transfer(payer, 1), legacy_transfer(payer),
                                    versioned_transfer(payer, 2), versioned_transfer(payer, 3))
    cont = (Continue(advance_count=1).push_transaction(v0).push_transaction(legacy)
            .push_transaction(bytes(as_bytes)).push_transaction(base64.b64encode(bytes(as_b64)).decode()))
    fresh.advance(cont)
    assert fresh.sim_session.continue_transactions == [bytes(v0), bytes(legacy), bytes(as_bytes), bytes(as_b64)]
    # a legacy Transaction's bytes are those of the VersionedTransaction wrapping its message (§3.2)
    assert bytes(legacy) == bytes(VersionedTransaction.from_legacy(legacy))
    # the constructor accepts the same forms
    assert Continue(transactions=[v0, bytes(v0)]).transactions == [base64.b64encode(bytes(v0)).decode()] * 2


def test_an_unsigned_multi_instruction_v0_transaction_is_forwarded_untouched(fresh: Any) -> None:
    """Signature verification is disabled on the simulator (§9.6): a default (zero) signature is forwarded as is."""
    payer, program = Keypair(), Pubkey.new_unique()
    ixs = [Instruction(program, bytes([i]) * 9, [AccountMeta(payer.pubkey(), True, True)]) for i in range(3)]
    msg = MessageV0.try_compile(payer.pubkey(), ixs, [], FAKE_BLOCKHASH)
    tx = VersionedTransaction.populate(msg, [payer.sign_message(b"not the message")])
    fresh.advance(Continue().push_transaction(tx))
    assert fresh.sim_session.continue_transactions == [bytes(tx)]


@pytest.mark.parametrize("bad", [Keypair(), Pubkey.new_unique(), FAKE_BLOCKHASH,
                                 MessageV0.try_compile(Pubkey.new_unique(), [], [], FAKE_BLOCKHASH)],
                         ids=["Keypair", "Pubkey", "Hash", "MessageV0"])
def test_other_solders_objects_are_not_transactions(bad: Any) -> None:
    """bytes() of a Keypair is its secret key: it must never be serialised as a "transaction"."""
    with pytest.raises(ValueError, match="must be a solders Transaction/VersionedTransaction"):
        Continue().push_transaction(bad)


def test_modify_account_with_solders_account_and_pubkey_is_served_back(fresh: Any) -> None:
    sim, first = fresh.sim, fresh.sim.first_slot
    # an account the chain does not write in the one slot we execute, so the override is what is served after it
    unwritten = [a for a in sim.chain.accounts_of(sim.program_ids[0])
                 if sim.chain.last_write_position(a, first + 1) == sim.chain.last_write_position(a, first)]
    target = Pubkey.from_string(unwritten[0])
    new = Pubkey.new_unique()
    override = Account(lamports=4242, data=b"\x01\x02\x03override", owner=Pubkey.from_string(sim.program_ids[0]))
    ours = AccountData(lamports=77, data=b"\xff" * 5, owner=str(Pubkey.new_unique()), executable=True)
    fresh.advance(Continue().modify_account(target, override).modify_account(str(new), ours))
    applied = fresh.sim_session.modifications[-1]
    assert applied[str(target)]["lamports"] == 4242 and applied[str(new)]["executable"] is True
    # read back through the session's RPC (its own client, no solana-py needed)
    got = AccountData.from_ui_account(fresh.session.rpc.get_account_info(str(new)))
    assert (got.lamports, got.data, got.owner, got.executable) == (ours.lamports, ours.data, ours.owner, True)
    # the target is served as the override until the chain writes it again
    ui = fresh.session.rpc.get_account_info(str(target))
    assert AccountData.from_ui_account(ui).to_solders() == override


def test_modify_account_rejects_other_solders_objects() -> None:
    with pytest.raises(ValueError, match="AccountData or a solders Account"):
        Continue().modify_account(Pubkey.new_unique(), Pubkey.new_unique())
    with pytest.raises(ValueError, match="base58 public key"):
        Continue().modify_account("not-a-key", Account(1, b"", Pubkey.default()))


def test_a_single_transaction_is_not_a_sequence() -> None:
    with pytest.raises(ValueError, match="sequence of transactions, not a single one"):
        Continue(transactions=versioned_transfer(Keypair()))  # type: ignore[arg-type]
