"""Transport faults end to end: a server that stops reading its sockets (issue 16 defects 2 and 5).

``FaultPlan.stop_reading`` / ``LocalSimulator.stop_reading`` pause the server's TCP reads, so a large write from the
client fills its send buffer and blocks until the server reads again (or the send timeout passes). Each payload is
far larger than the loopback buffers can hold, so the fault is really felt; the tests check that too.
"""
from __future__ import annotations

import random
import time
from typing import Any, Dict, Iterator

import pytest

from simclient import Client, Continue, CreateSession
from simclient import events as ev
from simclient._base58 import b58encode
from simclient.errors import Timeout
from simclient.local import LocalSimulator
from simclient.protocol import AccountData
from simclient.testing import fast_config

pytest.importorskip("aiohttp")

MIB = 1024 * 1024


def _accounts(total_bytes: int, seed: int = 7) -> Dict[str, AccountData]:
    """Account overrides of about ``total_bytes`` of (incompressible) data, 1 MiB each."""
    rng = random.Random(seed)
    out: Dict[str, AccountData] = {}
    for _ in range(max(1, total_bytes // MIB)):
        out[b58encode(rng.randbytes(32))] = AccountData(lamports=1, data=rng.randbytes(MIB))
    return out


@pytest.fixture
def sim() -> Iterator[LocalSimulator]:
    with LocalSimulator() as s:
        yield s


def _client(sim: LocalSimulator, **config: Any) -> Client:
    # a server that does not read answers no pings either: the dead-connection deadline must outlast the fault
    return Client(sim.url, sim.api_key, fast_config(**{"keepalive_deadline": 10.0, **config}))


def test_large_continue_to_a_server_not_reading_for_2s_goes_through_on_the_first_connection(sim) -> None:
    cont = Continue(advance_count=5)
    for addr, acct in _accounts(10 * MIB).items():
        cont.modify_account(addr, acct)
    create = CreateSession(start_slot=sim.first_slot, slot_count=9)
    with _client(sim).start_session(create) as session:
        events = session.events(timeout=20)
        assert isinstance(next(e for e in events if isinstance(e, (ev.ReadyForContinue, ev.Paused))),
                          ev.ReadyForContinue)
        assert sim.stop_reading(2.0) == 1  # the control socket, paused now
        started = time.monotonic()
        session.send_continue(cont)
        sent_after = time.monotonic() - started
        kinds = []
        for event in events:
            kinds.append(type(event))
            if isinstance(event, ev.ReadyForContinue):
                session.send_continue(advance_count=5)
        assert kinds[-1] is ev.Completed
        assert session.stats.control_reconnects == 0
        assert session._control.stats.reconnects == 0
    assert sim.stats["control_connections"] == 1
    # the fault was real: the write could only finish once the server read again
    assert sent_after >= 1.0, f"the continue was written in {sent_after:.2f}s: the server never stopped reading"


def test_large_create_to_a_server_that_stops_reading_fails_within_the_send_timeout(sim) -> None:
    sim.faults.stop_reading(30.0)  # every control socket accepted from now on
    create = CreateSession(start_slot=sim.first_slot, slot_count=9,
                           account_overrides={sim.first_slot: _accounts(10 * MIB)})
    client = _client(sim, send_timeout=1.0, create_timeout=60.0)
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        client.start_session(create)
    elapsed = time.monotonic() - started
    assert isinstance(info.value, TimeoutError)
    assert "not reading" in str(info.value) and "send_timeout" in str(info.value)
    assert elapsed < 1.0 + 4.0, f"took {elapsed:.1f}s"
    assert sim.stats["control_connections"] == 1  # one attempt: the connection was up, the server did not read
    assert sim.stats["read_stops"] == 1
    sim.faults.clear()
