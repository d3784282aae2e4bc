"""One backtest session, driven by hand with ``for event in session.events()``.

Runs against the hosted simulator when ``SIMULATOR_URL`` (and ``SIMULATOR_API_KEY``) are set, else against a local
simulator started in-process. Optional: ``SIMULATOR_START_SLOT``, ``SIMULATOR_PROGRAM_IDS`` (comma-separated).

    python examples/single_session.py
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, List, Tuple

from simclient import Client, CreateSession
from simclient import events as ev

SLOTS = 200          # slots to replay (inclusive range: start .. start + SLOTS - 1)
ADVANCE = 50         # slots per continue
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"


@contextlib.contextmanager
def target() -> Iterator[Tuple[Client, int, List[str]]]:
    """(client, start slot, program ids): the hosted service if SIMULATOR_URL is set, else a local simulator."""
    env_programs = [p for p in os.environ.get("SIMULATOR_PROGRAM_IDS", "").split(",") if p]
    if os.environ.get("SIMULATOR_URL"):
        client = Client()  # SIMULATOR_URL / SIMULATOR_API_KEY
        start = int(os.environ.get("SIMULATOR_START_SLOT") or client.available_ranges()[0].bundle_start_slot)
        yield client, start, env_programs or [JUPITER_V6]
    else:
        from simclient.local import LocalSimulator

        with LocalSimulator(port=0) as sim:
            yield Client(sim.url, sim.api_key), sim.first_slot, env_programs or sim.program_ids


def main() -> None:
    with target() as (client, start, programs):
        create = CreateSession(start_slot=start, end_slot=start + SLOTS - 1)
        with client.start_session(create) as session:
            session.subscribe_transactions(programs)
            slots = transactions = failed = 0
            for event in session.events():
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=ADVANCE)
                elif isinstance(event, ev.Slot):
                    slots += 1
                elif isinstance(event, ev.Transaction):
                    transactions += 1
                    failed += not event.success
                elif isinstance(event, ev.Completed):
                    print(f"single_session: session {session.session_id} replayed {start}..{start + SLOTS - 1}: "
                          f"{slots} slots announced, {transactions} transactions ({failed} failed), "
                          f"{session.stats.reconnects} reconnects")


if __name__ == "__main__":
    main()
