"""Scheduled actions: run a transaction of yours at fixed points of a replay and read the results.

Two actions: a ``simulate`` probe after every 10th slot that reports an account's state, and a ``simulate`` right
after every batch that invokes the watched program. Their results arrive on one keyless stream
(``session.subscribe_actions()``) as ``ActionResult`` events, told apart by ``label``.

Runs against the hosted simulator when ``SIMULATOR_URL`` (and ``SIMULATOR_API_KEY``) are set, else against a local
simulator started in-process. For the hosted service set ``SIMULATOR_ACTION_TX`` to a base64 bincode transaction
of yours (signatures are not verified, PROTOCOL §9.6) and optionally ``SIMULATOR_RETURN_ACCOUNT``; also
``SIMULATOR_START_SLOT``, ``SIMULATOR_PROGRAM_IDS`` (the first one is watched).

    python examples/scheduled_actions.py
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, List, Optional, Tuple

from simclient import Client, CreateSession, ScheduledAction, after_every_slot, after_match, program_executed
from simclient import events as ev

SLOTS = 100
ADVANCE = 25
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
#: Stand-in transaction bytes (shortvec 1, one signature, a message): enough for the local simulator.
PLACEHOLDER_TX = bytes([1]) + bytes(64) + b"example-message"


@contextlib.contextmanager
def target() -> Iterator[Tuple[Client, int, List[str], Optional[str]]]:
    """(client, start slot, program ids, account to report): hosted if SIMULATOR_URL is set, else local."""
    env_programs = [p for p in os.environ.get("SIMULATOR_PROGRAM_IDS", "").split(",") if p]
    account = os.environ.get("SIMULATOR_RETURN_ACCOUNT") or None
    if os.environ.get("SIMULATOR_URL"):
        client = Client()  # SIMULATOR_URL / SIMULATOR_API_KEY
        start = int(os.environ.get("SIMULATOR_START_SLOT") or client.available_ranges()[0].bundle_start_slot)
        yield client, start, env_programs or [JUPITER_V6], account
    else:
        from simclient.local import LocalSimulator

        with LocalSimulator(port=0) as sim:
            programs = env_programs or sim.program_ids
            yield (Client(sim.url, sim.api_key), sim.first_slot, programs,
                   account or (sim.chain.accounts_of(programs[0]) or [None])[0])


def main() -> None:
    tx = os.environ.get("SIMULATOR_ACTION_TX") or PLACEHOLDER_TX
    with target() as (client, start, programs, account):
        actions = [
            ScheduledAction(after_every_slot(10), [tx], kind="simulate", label="probe",
                            return_accounts=[account] if account else []),
            ScheduledAction(after_match(program_executed(programs[0])), [tx], kind="simulate", label="after-match"),
        ]
        create = CreateSession(start_slot=start, end_slot=start + SLOTS - 1, actions=actions)
        with client.start_session(create) as session:
            session.subscribe_actions()
            results: List[ev.ActionResult] = []
            for event in session.events():
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=ADVANCE)
                elif isinstance(event, ev.ActionResult):
                    results.append(event)
                    if event.label == "probe" and event.accounts and event.accounts[0] is not None:
                        print(f"  slot {event.slot}: {account} holds {event.accounts[0].lamports} lamports "
                              f"(probe used {event.units_consumed} CU, err={event.err})")
        probes = sum(r.label == "probe" for r in results)
        failed = sum(r.err is not None for r in results)
        print(f"scheduled_actions: {len(results)} results ({probes} probe, {len(results) - probes} after-match, "
              f"{failed} failed) over {start}..{start + SLOTS - 1}")


if __name__ == "__main__":
    main()
