"""Subscriptions plus RPC reads at a paused point.

A discovery filter makes the server announce batches that invoke a program (``DiscoveryBatch``). We pause the session
immediately before the first one with ``send_continue_to(slot, batch_index)``, read chain state through the
session's JSON-RPC endpoint while it is paused, then continue to the end. Chain reads are valid from the first
``ReadyForContinue`` until the session completes.

Runs against the hosted simulator when ``SIMULATOR_URL`` (and ``SIMULATOR_API_KEY``) are set, else against a local
simulator started in-process. Optional: ``SIMULATOR_START_SLOT``, ``SIMULATOR_PROGRAM_IDS`` (the first one is the
discovery target).

    python examples/subscribe_and_rpc.py
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, List, Optional, Tuple

from simclient import Client, CreateSession, program_executed
from simclient import events as ev

SLOTS = 100
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"


@contextlib.contextmanager
def target() -> Iterator[Tuple[Client, int, List[str]]]:
    """(client, start slot, program ids): the hosted service if SIMULATOR_URL is set, else a local simulator."""
    env_programs = [p for p in os.environ.get("SIMULATOR_PROGRAM_IDS", "").split(",") if p]
    if os.environ.get("SIMULATOR_URL"):
        client = Client()
        start = int(os.environ.get("SIMULATOR_START_SLOT") or client.available_ranges()[0].bundle_start_slot)
        yield client, start, env_programs or [JUPITER_V6]
    else:
        from simclient.local import LocalSimulator

        with LocalSimulator(port=0) as sim:
            yield Client(sim.url, sim.api_key), sim.first_slot, env_programs or sim.program_ids


def main() -> None:
    with target() as (client, start, programs):
        program = programs[0]
        end = start + SLOTS - 1
        create = CreateSession(start_slot=start, end_slot=end, discoveries=[program_executed(program)])
        with client.start_session(create) as session:
            session.subscribe_transactions(programs)
            session.subscribe_account_diffs([program])
            target_batch: Optional[ev.DiscoveryBatch] = None
            paused = False
            last_written: Optional[ev.AccountDiff] = None
            transactions = 0
            for event in session.events():
                if isinstance(event, ev.DiscoveryBatch) and target_batch is None:
                    target_batch = event  # pause before it at the next ReadyForContinue
                elif isinstance(event, ev.ReadyForContinue):
                    # The session accepts a continue only when idle: ReadyForContinue (or Paused) says so.
                    if target_batch is not None and not paused:
                        session.send_continue_to(target_batch.slot, target_batch.batch_index)
                    else:
                        session.send_continue(advance_count=end - start + 1)
                elif isinstance(event, ev.Paused):
                    paused = True
                    rpc = session.rpc
                    # An account the program wrote earlier in this run, else the program account itself.
                    account = last_written.account if last_written is not None else program
                    state = rpc.get_account(account)  # getAccountInfo, decoded into AccountData (or None)
                    print(f"subscribe_and_rpc: paused before slot {event.slot} batch {event.batch_index} "
                          f"(a {program[:8]}… transaction); getSlot={rpc.get_slot()}")
                    print(f"  getBalance({account}) = {rpc.get_balance(account)} lamports")
                    if state is not None:
                        print(f"  getAccountInfo: owner {state.owner}, {len(state.data)} data bytes, "
                              f"executable {state.executable}")
                    if last_written is not None and last_written.post is not None:
                        print(f"  last account diff ({last_written.slot}) left {last_written.post['lamports']} "
                              f"lamports")
                    session.send_continue(advance_count=end - start + 1)
                elif isinstance(event, ev.AccountDiff):
                    last_written = event
                elif isinstance(event, ev.Transaction):
                    transactions += 1
                elif isinstance(event, ev.Completed):
                    print(f"subscribe_and_rpc: completed {start}..{end}: {transactions} transactions, "
                          f"paused once: {paused}")


if __name__ == "__main__":
    main()
