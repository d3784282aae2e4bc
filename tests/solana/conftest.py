"""Fixtures for the solders / solana-py interop tests: a local simulator and a session advanced a few slots.

The test modules skip themselves (``pytest.importorskip``) when the ``solana`` extra is absent; this file imports
neither solders nor solana so that it loads either way.

This directory has no ``__init__.py`` on purpose: as a package named ``solana`` (rootdir-relative import) it would
shadow the real ``solana`` distribution for every test. Module names are therefore prefixed ``test_solana_``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, List

import pytest

from simclient import Client, Continue, CreateSession
from simclient import events as ev
from simclient.testing import fast_config

ADVANCE = 20


@dataclass
class Advanced:
    """A session paused after ``ADVANCE`` slots, with the events it delivered so far."""

    sim: Any
    session: Any
    events: List[Any] = field(default_factory=list)
    advance_count: int = ADVANCE

    @property
    def sim_session(self) -> Any:
        return self.sim.session(self.session.session_id)

    @property
    def last_slot(self) -> int:
        """The last slot announced (executed) so far."""
        return [e.slot for e in self.events if isinstance(e, ev.Slot)][-1]

    def advance(self, cont: Any = None, **kwargs: Any) -> List[Any]:
        """Send one continue and collect the events up to the next ReadyForContinue (or Completed)."""
        self.session.send_continue(cont, **kwargs)
        return self.wait_ready()

    def collect(self, kind: Any, count: int) -> List[Any]:
        """Read events until ``count`` of type ``kind`` were delivered in total. Data-plane events travel on their
        own sockets, so they may trail the control socket's ReadyForContinue: wait for them by count."""
        while sum(isinstance(e, kind) for e in self.events) < count:
            e = self.session.next_event(timeout=10)
            assert e is not None, "the session ended early"
            self.events.append(e)
        return [e for e in self.events if isinstance(e, kind)]

    def wait_ready(self) -> List[Any]:
        got = []
        for e in self.session.events(timeout=10):
            got.append(e)
            if isinstance(e, (ev.ReadyForContinue, ev.Completed)):
                break
        self.events.extend(got)
        return got


@pytest.fixture
def sim() -> Iterator[Any]:
    local = pytest.importorskip("simclient.local", reason="the local simulator needs the 'local' extra (aiohttp)")
    with local.LocalSimulator(port=0) as simulator:
        yield simulator


def start(sim: Any, slot_count: int = 50, subscribe: Any = None) -> Advanced:
    session = Client(sim.url, sim.api_key, fast_config()).start_session(
        CreateSession(start_slot=sim.first_slot, slot_count=slot_count))
    adv = Advanced(sim, session)
    try:
        if subscribe is not None:
            subscribe(session)
        adv.wait_ready()
    except BaseException:
        session.close()
        raise
    return adv


@pytest.fixture
def start_session(sim: Any) -> Iterator[Any]:
    """``start_session(subscribe=None, slot_count=50)`` → :class:`Advanced` at its first ReadyForContinue; every
    session it started is closed at teardown. ``subscribe(session)`` runs before the first continue."""
    started: List[Advanced] = []

    def make(subscribe: Any = None, slot_count: int = 50) -> Advanced:
        adv = start(sim, slot_count=slot_count, subscribe=subscribe)
        started.append(adv)
        return adv

    try:
        yield make
    finally:
        for adv in started:
            adv.session.close()


@pytest.fixture
def fresh(sim: Any) -> Iterator[Advanced]:
    """A session at its first ReadyForContinue (nothing executed yet)."""
    adv = start(sim)
    try:
        yield adv
    finally:
        adv.session.close()


@pytest.fixture
def advanced(fresh: Advanced) -> Advanced:
    """The same session after ``send_continue(advance_count=ADVANCE)``."""
    fresh.advance(Continue(advance_count=ADVANCE))
    return fresh
