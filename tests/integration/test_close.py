"""close() is prompt when the user leaves the loop early (issue 16, item 9).

It used to take the whole close_timeout (10 s): the local simulator executed a step without ever yielding its event
loop, so it read the close request only after the step; a real server reads it at once. The test would fail with
that simulator.
"""
from __future__ import annotations

import threading
import time

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.local import LocalSimulator
from simclient.testing import fast_config


def test_break_out_of_events_mid_step_closes_promptly_and_ends_the_session() -> None:
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config(close_timeout=10.0))
        seen = 0
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=1999)) as session:
            session.subscribe_transactions(sim.program_ids)
            sid = session.session_id
            for event in session.events(timeout=10.0):
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=2000)  # one long step: the server keeps writing
                seen += 1
                if seen == 300:
                    t0 = time.monotonic()
                    break
        elapsed = time.monotonic() - t0
        assert elapsed <= 1.0, f"close after a break took {elapsed:.2f}s"
        # the close request was written before the socket closed: the server ends the session
        deadline = time.monotonic() + 5.0
        while sim.session(sid).state != "closed" and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert sim.session(sid).state == "closed"
        assert sim.session(sid).pos[0] < sim.first_slot + 1999  # it really was left mid-run


def test_closing_a_parallel_run_mid_run_closes_every_sub_session_on_the_server() -> None:
    # closeSessionV1 goes out for every unfinished sub-session; close() returns only once each was acknowledged, so
    # no request is lost to the socket's teardown and no sub-session is left running for its disconnect timeout.
    with LocalSimulator(port=0, bundle_size=100) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(CreateSession(start_slot=sim.first_slot, slot_count=799)) as run:
            assert len(run.sub_sessions) == 8
            first = run.sub_sessions[0]
            first.send_continue(advance_count=1)
        # checked at once: the server acted on every close before close() returned
        assert sorted(s.state for s in sim.sessions()) == ["closed"] * 8
