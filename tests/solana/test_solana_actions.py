"""solders transactions, pubkeys and accounts in a ScheduledAction reach the simulator as given."""
from __future__ import annotations

import pytest

pytest.importorskip("solders", reason="needs the 'solana' extra (solders): pip install 'simclient[solana]'")

from solders.account import Account  # noqa: E402
from solders.hash import Hash  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import Message, MessageV0  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402
from solders.transaction import Transaction, VersionedTransaction  # noqa: E402

from simclient import Client, CreateSession, ScheduledAction, after_slot  # noqa: E402
from simclient import events as ev  # noqa: E402
from simclient.local import LocalSimulator  # noqa: E402
from simclient.testing import fast_config  # noqa: E402

pytestmark = pytest.mark.solana

BLOCKHASH = Hash.from_string("4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM")


def test_solders_values_in_an_action_arrive_as_given():
    payer = Keypair()
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=5))
    v0 = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], BLOCKHASH), [payer])
    legacy = Transaction([payer], Message([ix], payer.pubkey()), BLOCKHASH)
    watched = Pubkey.new_unique()
    override = Account(lamports=123, data=b"xyz", owner=Pubkey.default(), executable=False)
    with LocalSimulator(port=0) as sim:
        start = sim.first_slot
        s1, s2 = sim.chain.produced_slots(start, start + 10)[:2]
        action = ScheduledAction(after_slot([s1, s2]), [v0, legacy], return_accounts=[watched],
                                 account_overrides={watched: override})
        client = Client(sim.url, sim.api_key, fast_config())
        results = []
        with client.start_session(CreateSession(start_slot=start, slot_count=10, actions=[action])) as session:
            session.subscribe_actions()
            parsed = sim.session(session.session_id).request.actions[0]
            for event in session.events(timeout=15):
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=20)
                elif isinstance(event, ev.ActionResult):
                    results.append(event)
    assert parsed.transactions == [bytes(v0), bytes(legacy)]
    assert parsed.return_accounts == [str(watched)]
    assert [r.slot for r in results] == [s1, s2]
    assert results[0].accounts[0].data == b"xyz"  # the override, seen by the action
    with pytest.raises(ValueError, match=r"transactions\[0\]"):
        ScheduledAction(after_slot([s1]), [payer])  # a Keypair's bytes are its secret: never sent
