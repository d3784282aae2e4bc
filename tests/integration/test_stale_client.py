"""A stale client (issue 16 defect 6): re-attaching to a restarted server whose new session reuses the old id must
fail loudly and deliver nothing of the other client's session, and the other client must finish unharmed."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from simclient import Client, CreateSession, ProtocolError
from simclient import events as ev
from simclient.local import LocalSimulator
from simclient.testing import fast_config
from simclient.transport import Connection

from simhelpers import drive, truth_signatures


@pytest.fixture
def hold_reconnects(monkeypatch: pytest.MonkeyPatch):
    """While set, connections opened by an existing session's threads wait (a create's thread is let through), so
    the restarted simulator has its new session before the stale client comes back: no race on who is first."""
    hold = threading.Event()
    released = threading.Event()
    original = Connection.open

    def gated_open(cls: Any, url: str, api_key: Any = None, timeout: float = 30.0, **kwargs: Any) -> Connection:
        if hold.is_set() and threading.current_thread().name != "simclient-control-new":
            released.wait(10.0)
        return original(url, api_key, timeout, **kwargs)

    monkeypatch.setattr(Connection, "open", classmethod(gated_open))
    yield hold, released
    released.set()


def slot_of(event: Any) -> Any:
    return getattr(event, "slot", None)


def test_stale_client_fails_loudly_and_delivers_nothing_outside_its_range(hold_reconnects):
    hold, released = hold_reconnects
    sim_a = LocalSimulator(port=0).start()
    port = sim_a.port
    sim_b = None
    try:
        first = sim_a.first_slot
        own = (first, first + 49)
        c1 = Client(sim_a.url, sim_a.api_key, fast_config(backoff_max=0.05))
        with c1.start_session(CreateSession(start_slot=own[0], end_slot=own[1])) as stale:
            stale.subscribe_transactions(sim_a.program_ids)
            events = stale.events(timeout=15)
            steps = 0
            for event in events:
                if isinstance(event, ev.ReadyForContinue):
                    if steps == 10:
                        break
                    steps += 1
                    stale.send_continue(advance_count=1)
            cursor = stale._route.last_seq
            assert cursor is not None and cursor > 20
            # the server restarts on the same port; the client's threads now wait to reconnect
            hold.set()
            sim_a.stop()
            sim_b = LocalSimulator(port=port).start()
            sim_b.session_ids = [stale.session_id]  # the restarted server reuses the id (ids from a counter)
            c2 = Client(sim_b.url, sim_b.api_key, fast_config())
            other_range = (first + 100, first + 149)
            with c2.start_session(CreateSession(start_slot=other_range[0], end_slot=other_range[1])) as owner:
                assert owner.session_id == stale.session_id
                owner.subscribe_transactions(sim_b.program_ids)
                released.set()  # the stale client re-attaches to the other client's session
                after: List[Any] = []
                with pytest.raises(ProtocolError, match="not the session this client created"):
                    for event in stale.events(timeout=15):
                        after.append(event)
                assert all(slot_of(e) is None or own[0] <= slot_of(e) <= own[1] for e in after), after
                assert not any(isinstance(e, ev.Transaction) and e.slot > own[1] for e in after)
                # the owner is taken over at most once or twice and still gets exactly its own stream
                cap = drive(owner, advance_count=5)
                assert cap.completed is not None
                assert cap.signatures == truth_signatures(sim_b.chain, other_range[0], other_range[1],
                                                          sim_b.program_ids)
                assert all(other_range[0] <= e.slot <= other_range[1] for e in cap.control if isinstance(e, ev.Slot))
    finally:
        released.set()
        sim_a.stop()
        if sim_b is not None:
            sim_b.stop()
