"""A parallel run: the server splits the range into sub-sessions; ``run.drive`` drives them all on a thread pool,
calling a handler that counts transactions per program.

Runs against the hosted simulator when ``SIMULATOR_URL`` (and ``SIMULATOR_API_KEY``) are set, else against a local
simulator started in-process. Optional: ``SIMULATOR_START_SLOT``, ``SIMULATOR_PROGRAM_IDS`` (comma-separated).

    python examples/parallel_run.py
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from typing import Iterator, List, Tuple

from simclient import Client, CreateSession, SubSession
from simclient import events as ev

SLOTS = 500
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


def invoked_programs(tx: ev.Transaction) -> List[str]:
    """Program ids of the transaction's top-level instructions."""
    message = tx.value["transaction"]["message"]
    keys = message["accountKeys"]
    return [keys[ix["programIdIndex"]] for ix in message["instructions"]]


def main() -> None:
    per_program: Counter = Counter()
    lock = threading.Lock()  # the handler runs on drive()'s worker threads

    def on_event(sub: SubSession, event: ev.Event) -> None:
        if isinstance(event, ev.Transaction):
            with lock:
                per_program.update(set(invoked_programs(event)))

    with target() as (client, start, programs):
        with client.start_parallel(CreateSession(start_slot=start, end_slot=start + SLOTS - 1)) as run:
            for sub in run.sub_sessions:
                sub.subscribe_transactions(programs)
            result = run.drive(on_event=on_event)
            ranges = [sub.range for sub in run.sub_sessions]
    print(f"parallel_run: {len(ranges)} sub-sessions covering {ranges[0][0]}..{ranges[-1][1]}, "
          f"{len(result.completed)} completed, {len(result.failures)} failed")
    for failure in result.failures:
        print(f"  failed {failure.range} {failure.session_id}: {failure.reason}")
    for program, count in per_program.most_common():
        print(f"  {count:>6}  {program}")
    if result.failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
