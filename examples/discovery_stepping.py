"""Discovery stepping: pause before every transaction of one program and read an account at each pause.

``CreateSession(discoveries=[program_executed(program)])`` makes the server announce each upcoming batch that
invokes the program; ``session.advance_to_discovery()`` runs the session to immediately before the next one and
returns the ``Paused`` event together with that batch (or ``Completed`` once none is left). While paused, the
session's JSON-RPC shows the chain state *before* the batch, so this is where a strategy inspects (or overrides)
state right before a competitor's transaction.

Runs against the hosted simulator when ``SIMULATOR_URL`` (and ``SIMULATOR_API_KEY``) are set, else against a local
simulator started in-process. Optional: ``SIMULATOR_START_SLOT``, ``SIMULATOR_PROGRAM_IDS`` (the first one is the
program stepped through), ``SIMULATOR_WATCH_ACCOUNT`` (the account read at each pause; default: an account of the
program on the local simulator, the program account itself elsewhere).

    python examples/discovery_stepping.py
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, List, Optional, Tuple

from simclient import Client, CreateSession, program_executed

SLOTS = 20
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"


@contextlib.contextmanager
def target() -> Iterator[Tuple[Client, int, List[str], Optional[str]]]:
    """(client, start slot, program ids, account to watch): hosted if SIMULATOR_URL is set, else local."""
    env_programs = [p for p in os.environ.get("SIMULATOR_PROGRAM_IDS", "").split(",") if p]
    watch = os.environ.get("SIMULATOR_WATCH_ACCOUNT") or None
    if os.environ.get("SIMULATOR_URL"):
        client = Client()
        start = int(os.environ.get("SIMULATOR_START_SLOT") or client.available_ranges()[0].bundle_start_slot)
        yield client, start, env_programs or [JUPITER_V6], watch
    else:
        from simclient.local import LocalSimulator

        with LocalSimulator(port=0) as sim:
            programs = env_programs or sim.program_ids
            yield Client(sim.url, sim.api_key), sim.first_slot, programs, watch or sim.chain.accounts_of(
                programs[0])[0]


def main() -> None:
    with target() as (client, start, programs, watch):
        program = programs[0]
        account = watch or program
        end = start + SLOTS - 1
        create = CreateSession(start_slot=start, end_slot=end, discoveries=[program_executed(program)])
        pauses = 0
        print(f"discovery_stepping: {start}..{end}, pausing before every {program} batch, reading {account}")
        with client.start_session(create) as session:
            while True:
                step = session.advance_to_discovery(timeout=600)
                if step.completed is not None:
                    break
                pauses += 1
                paused, batch = step.paused, step.batch
                assert paused is not None and batch is not None
                info = session.rpc.get_account(account)  # the state right before the batch
                balance = "absent" if info is None else f"{info.lamports} lamports, {len(info.data)} bytes"
                print(f"  pause {pauses}: before slot {paused.slot} batch {paused.batch_index} "
                      f"({len(batch.transactions)} tx) -- {account[:8]}…: {balance}")
        print(f"discovery_stepping: completed {start}..{end}: paused {pauses} times")


if __name__ == "__main__":
    main()
