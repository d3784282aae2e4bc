"""A key the server echoes never survives in a repr (issue 16 defect 7, second half).

The server (or a proxy in front of it) may echo ``X-API-Key`` anywhere in a frame: an error's fields, a status text,
an unknown method. The README promises that no ``repr()``/``str()`` of an event, an exception, its ``error`` or a
session contains it, so the control connection scrubs every payload before it is decoded. These tests inject such
frames with the simulator's raw hooks and look at every object the user can reach.
"""
from __future__ import annotations

import json
import logging
from typing import Any, List

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.errors import InvalidRequestError, SessionError
from simclient.local import LocalSimulator
from simclient.testing import fast_config

pytest.importorskip("aiohttp")

SECRET = "sk-live-echo-7d41b9e2c0aa-DO-NOT-SHOW"
QUOTED = 'sk-"quoted"/key\\7d41'  # a key that JSON spells differently from its raw bytes


def _texts(*objs: Any) -> str:
    out: List[str] = []
    for obj in objs:
        out += [repr(obj), str(obj)]
        for attr in ("error", "fields", "status", "args"):
            if hasattr(obj, attr):
                out += [repr(getattr(obj, attr)), str(getattr(obj, attr))]
        err = getattr(obj, "error", None)
        if err is not None and hasattr(err, "fields"):
            out += [repr(err.fields), str(err.fields), repr(getattr(err, "message", ""))]
    return "\n".join(out)


def _frame(method: str, params: Any) -> str:
    return json.dumps({"method": method, "params": params})


@pytest.mark.parametrize("key", [SECRET, QUOTED], ids=["plain", "json-escaped"])
def test_key_echoed_in_status_error_and_fields_is_in_no_repr(caplog, key) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    seen: List[Any] = []
    with LocalSimulator(port=0, api_key=key) as sim:
        client = Client(sim.url, key, fast_config())
        with pytest.raises(SessionError) as info:
            with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=99)) as session:
                idle = 0
                for event in session.events(timeout=10):
                    seen.append(event)
                    seen.append(session)  # its repr after each event
                    if isinstance(event, ev.ReadyForContinue):
                        if idle == 1:
                            for text in (_frame("status", {"status": f"warming up for {key}"}),
                                         _frame("error", {"internal": {"error": f"backend saw key {key}"}}),
                                         _frame("x-" + key, {"k": key})):
                                assert sim.inject_control_frame(session.session_id, text)
                        if idle == 2:
                            assert sim.inject_control_frame(session.session_id, _frame(
                                "error", {"simulationError": {"error": "bad", "apiKey": key, "nested": [key]}}))
                        idle += 1
                        session.send_continue(advance_count=10)
    statuses = [e for e in seen if isinstance(e, ev.Status) and "warming up" in e.status]
    errors = [e for e in seen if isinstance(e, ev.ServerError)]
    assert statuses and errors, "the echoed frames were delivered as events (so the test looked at them)"
    assert statuses[0].status == "warming up for ***"
    assert errors[0].error.fields == {"error": "backend saw key ***"}
    exc = info.value
    assert exc.error.variant == "SimulationError" and exc.error.fields["api_key"] == "***"
    assert exc.error.fields["nested"] == ["***"]
    text = _texts(exc, *seen) + repr(client) + str(client)
    assert key not in text
    assert key not in "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)


def test_key_echoed_during_the_create_is_in_no_repr() -> None:
    with LocalSimulator(port=0, api_key=SECRET) as sim:
        sim.faults.inject_control(_frame("error", {"invalidRequest": {"error": f"key {SECRET} may not create"}}))
        with pytest.raises(InvalidRequestError) as info:
            Client(sim.url, SECRET, fast_config()).start_session(CreateSession(start_slot=sim.first_slot,
                                                                              slot_count=9))
    assert "***" in str(info.value)
    assert SECRET not in _texts(info.value)
