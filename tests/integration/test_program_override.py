"""Program overrides (issue 13 item 3): the override built by ``modify_program`` is what the session's RPC serves.

Ground truth: the local simulator's chain (``sim.chain.programdata_address`` / ``program_elf``) for the accounts
before the override; after it, ``getAccountInfo`` of the ProgramData account must return the new header + ELF.
"""
from __future__ import annotations

import pytest

from simclient import Client, Continue, CreateSession, modify_program
from simclient import events as ev
from simclient.local import FaultPlan, LocalSimulator
from simclient.programs import BPF_LOADER_UPGRADEABLE, PROGRAMDATA_METADATA_SIZE, parse_upgradeable_state
from simclient.testing import fast_config

ELF = b"\x7fELF" + bytes(range(256)) * 3


def _finish(session) -> None:
    """From an idle session: run the rest of the range and read up to Completed."""
    session.send_continue(advance_count=1000)
    assert any(isinstance(e, ev.Completed) for e in session.events(timeout=20))


def _programdata(session, pid):
    info = parse_upgradeable_state(session.rpc.get_account(pid).data)
    acct = session.rpc.get_account(info["programdata_address"])
    return info["programdata_address"], acct, parse_upgradeable_state(acct.data)


def test_override_through_a_continue_is_visible_through_rpc_and_keeps_the_program_shape() -> None:
    with LocalSimulator(port=0, faults=FaultPlan(seed=3).drop_control_every(4)) as sim:
        pid = sim.program_ids[0]
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=20)) as session:
            events = session.events(timeout=20)
            next(e for e in events if isinstance(e, ev.ReadyForContinue))
            pda, before, header = _programdata(session, pid)
            assert pda == sim.chain.programdata_address(pid)  # ground truth of the chain's program
            assert header["elf"] == sim.chain.program_elf(pid)
            overrides = session.modify_program(pid, ELF)
            assert set(overrides) == {pid, pda}
            session.send_continue(Continue(advance_count=5, modify_account_states=overrides))
            next(e for e in events if isinstance(e, ev.ReadyForContinue))
            got_pda, after, new = _programdata(session, pid)
            assert got_pda == pda
            assert after.data == overrides[pda].data and new["elf"] == ELF
            # session.modify_program kept the existing authority and deployment slot
            assert (new["upgrade_authority"], new["slot"]) == (header["upgrade_authority"], header["slot"])
            assert after.owner == BPF_LOADER_UPGRADEABLE and not after.executable
            assert after.lamports == session.rpc.call("getMinimumBalanceForRentExemption",
                                                      [PROGRAMDATA_METADATA_SIZE + len(ELF)])
            program = session.rpc.get_account(pid)
            assert program.executable and program.owner == BPF_LOADER_UPGRADEABLE
            _finish(session)
            assert sim.stats["control_drops"] >= 1  # the continue carrying the override survived drops


def test_override_at_create_applies_from_its_slot() -> None:
    with LocalSimulator(port=0) as sim:
        pid = sim.program_ids[1]
        later = sim.first_slot + 3
        create = CreateSession(start_slot=sim.first_slot, slot_count=10,
                               account_overrides={later: modify_program(pid, ELF, slot=later - 1)})
        pda = sim.chain.programdata_address(pid)
        with Client(sim.url, sim.api_key, fast_config()).start_session(create) as session:
            events = session.events(timeout=20)
            next(e for e in events if isinstance(e, ev.ReadyForContinue))
            assert session.rpc.get_account(pda).data[PROGRAMDATA_METADATA_SIZE:] == sim.chain.program_elf(pid)
            session.send_continue(advance_count=3)  # runs first_slot .. later - 1
            next(e for e in events if isinstance(e, ev.ReadyForContinue))
            assert session.rpc.get_account(pda).data[PROGRAMDATA_METADATA_SIZE:] == sim.chain.program_elf(pid)
            session.send_continue(advance_count=1)  # runs `later`: the override is applied as it starts
            next(e for e in events if isinstance(e, ev.ReadyForContinue))
            header = parse_upgradeable_state(session.rpc.get_account(pda).data)
            assert header["elf"] == ELF and header["slot"] == later - 1
            _finish(session)


def test_session_modify_program_of_an_unknown_program_uses_the_derived_layout() -> None:
    new_program = "Prog1111111111111111111111111111111111111111"[:43]
    with LocalSimulator(port=0) as sim:
        with Client(sim.url, sim.api_key, fast_config()).start_session(
                CreateSession(start_slot=sim.first_slot, slot_count=2)) as session:
            next(e for e in session.events(timeout=20) if isinstance(e, ev.ReadyForContinue))
            overrides = session.modify_program(new_program, ELF)
            assert overrides == modify_program(new_program, ELF)
            # also through the RPC's modifyAccounts (PROTOCOL §9.6): visible at once
            session.rpc.modify_accounts(overrides)
            pda = parse_upgradeable_state(session.rpc.get_account(new_program).data)["programdata_address"]
            assert parse_upgradeable_state(session.rpc.get_account(pda).data)["elf"] == ELF
            # an account that is not an upgradeable program cannot be replaced: said, not guessed
            pool = sim.chain.accounts_of(sim.program_ids[0])[0]
            with pytest.raises(ValueError, match="not the upgradeable loader"):
                session.modify_program(pool, ELF)
            _finish(session)
