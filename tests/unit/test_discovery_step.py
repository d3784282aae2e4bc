"""advance_to_discovery as a state machine: the session's queue scripted by a fake control connection that answers
each continue-type request, under each reading of PROTOCOL §5.5 (no sockets, no simulator)."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

import pytest

from simclient import DiscoveryStep, Timeout
from simclient import events as ev
from simclient import protocol as wire
from simclient.control import Route
from simclient.session import _BaseSession
from simclient.testing import fast_config

RFC = ev.ReadyForContinue()
START, END = 100, 120


def batch(slot: int, index: int) -> ev.DiscoveryBatch:
    return ev.DiscoveryBatch(slot=slot, batch_index=index, matched=({"programExecuted": "P"},))


class FakeMode:
    def encode_continue(self, session_id: str, cont: Any) -> Dict[str, Any]:
        return wire.encode_continue(cont)

    def encode_continue_to(self, session_id: str, slot: int, batch_index: int, extra: Any = None) -> Dict[str, Any]:
        return wire.encode_continue_to(slot, batch_index, extra)


class FakeControl:
    """Records every request; ``answer(request)`` returns the items the server queues in reply."""

    def __init__(self, answer: Callable[[Dict[str, Any]], List[Any]]):
        self.mode = FakeMode()
        self.connection_factory = None
        self.sent: List[Dict[str, Any]] = []
        self.answer = answer
        self.route: Optional[Route] = None

    def send_continue(self, route: Route, request: Dict[str, Any]) -> None:
        self.sent.append(request)
        for item in self.answer(request):
            route.sink.put(item)


def session(answer: Callable[[Dict[str, Any]], List[Any]], startup: List[Any]) -> _BaseSession:
    route = Route("sess-1", "http://x/backtest/sess-1", None)
    route.range = (START, END)
    control = FakeControl(answer)
    s = _BaseSession(control, route, fast_config())  # type: ignore[arg-type]
    for item in startup:
        route.sink.put(item)
    return s


def targets(s: _BaseSession) -> List[Any]:
    out = []
    for req in s._control.sent:  # type: ignore[attr-defined]
        p = req["params"]
        out.append((p["slot"], p["batchIndex"]) if req["method"] == "continueTo" else ("continue", p["advanceCount"]))
    return out


def server(matches: List[Any], reannounce: bool = False, late: bool = False, paused_index: bool = True):
    """A server over ``matches`` ((slot, batch) in order): continueTo pauses there and announces the next match
    (or, ``reannounce``, the one paused before); a continue runs to the end."""

    def announce(after: Any) -> List[Any]:
        nxt = [m for m in matches if (m >= after if reannounce else m > after)]
        return [batch(*nxt[0])] if nxt else []

    def answer(req: Dict[str, Any]) -> List[Any]:
        p = req["params"]
        if req["method"] == "continueTo":
            pos = (p["slot"], p["batchIndex"])
            paused = ev.Paused(pos[0], pos[1] if paused_index else None)
            disc = announce(pos)
            return [ev.Status("decodedTransactions"), ev.Slot(pos[0] - 1)] + (
                [paused] + disc if late else disc + [paused])
        return [ev.Slot(END), ev.Completed()]

    return answer


MATCHES = [(101, 3), (101, 4), (105, 0), (119, 7)]


@pytest.mark.parametrize("reading", ["before-idle", "late", "reannounce", "no-batch-index", "reannounce-no-index"])
def test_pauses_at_every_match_then_completes(reading: str) -> None:
    kw = {"late": reading == "late", "reannounce": reading.startswith("reannounce"),
          "paused_index": "no-" not in reading}
    first = [batch(*MATCHES[0])]
    startup = [ev.Status("startingRuntime"), ev.Slot(START)] + ([RFC] + first if kw["late"] else first + [RFC])
    s = session(server(MATCHES, **kw), startup)
    pauses = []
    while True:
        step = s.advance_to_discovery(timeout=5, settle=0.2)
        assert isinstance(step, DiscoveryStep)
        if step.completed is not None:
            assert isinstance(step, ev.Completed) and not isinstance(step, ev.Paused) and step.is_completed
            break
        assert isinstance(step, ev.Paused) and step.paused is step and step.discovery is step.batch
        assert (step.batch.slot, step.batch.batch_index) == (step.paused.slot, step.paused.batch_index or
                                                             step.batch.batch_index)
        pauses.append((step.batch.slot, step.batch.batch_index))
    assert pauses == MATCHES
    sent = targets(s)
    assert sent[-1] == ("continue", END - START + 1)  # no batch left: the rest of the range
    if reading.startswith("reannounce"):  # each re-announced pause was stepped over with continueTo(s, b + 1)
        assert (101, 5) in sent and (105, 1) in sent
    else:
        assert sent == MATCHES + [("continue", END - START + 1)]


@pytest.mark.parametrize("late", [False, True])
def test_nothing_read_on_the_way_is_dropped_and_order_is_kept(late: bool) -> None:
    first = [RFC, batch(*MATCHES[0])] if late else [batch(*MATCHES[0]), RFC]
    startup = [ev.Status("startingRuntime"), ev.Slot(START)] + first
    s = session(server(MATCHES, late=late), startup)
    step = s.advance_to_discovery(timeout=5, settle=0.5)
    assert step.events == (ev.Status("startingRuntime"), ev.Slot(START), *first,
                           ev.Status("decodedTransactions"), ev.Slot(100)) + (() if late else (batch(*MATCHES[1]),))
    if late:  # the next batch follows the Paused: read by the next call
        step = s.advance_to_discovery(timeout=5, settle=0.5)
        assert step.events[0] == batch(*MATCHES[1])


def test_several_batches_announced_at_once_and_never_repeated() -> None:
    def answer(req: Dict[str, Any]) -> List[Any]:
        p = req["params"]
        if req["method"] == "continueTo":
            return [ev.Paused(p["slot"], p["batchIndex"])]  # announces nothing more
        return [ev.Completed()]

    startup = [batch(105, 0), batch(101, 3), batch(119, 7), RFC]  # out of order
    s = session(answer, startup)
    got = []
    while True:
        step = s.advance_to_discovery(timeout=5, settle=0.05)
        if step.completed:
            break
        got.append((step.paused.slot, step.paused.batch_index))
    assert got == [(101, 3), (105, 0), (119, 7)]


def test_batches_of_a_step_run_by_a_plain_continue_do_not_count() -> None:
    def answer(req: Dict[str, Any]) -> List[Any]:
        return [ev.Slot(110), RFC] if req["params"].get("advanceCount") == 10 else [ev.Completed()]

    s = session(answer, [batch(101, 3), RFC])
    assert s.next_event(1) == batch(101, 3) and s.next_event(1) == RFC
    s.send_continue(advance_count=10)  # the caller ran past the batch itself
    step = s.advance_to_discovery(timeout=5, settle=0.05)
    assert step.completed is not None
    assert targets(s) == [("continue", 10), ("continue", END - START + 1)]  # no continueTo to (101, 3)


def test_a_settle_window_without_a_batch_runs_the_rest_and_timeout_keeps_events() -> None:
    s = session(lambda req: [], [ev.Status("startingRuntime"), RFC])
    started = time.monotonic()
    with pytest.raises(Timeout, match="advance_to_discovery"):
        s.advance_to_discovery(timeout=0.5, settle=0.1)  # settle passes, continue sent, no answer
    assert 0.4 <= time.monotonic() - started < 2.0
    assert targets(s) == [("continue", END - START + 1)]
    s._route.sink.put(ev.Completed())
    step = s.advance_to_discovery(timeout=1)
    assert isinstance(step, ev.Completed) and step.completed is step and step.summary is None
    assert step.events == (ev.Status("startingRuntime"), RFC)  # read by the call that timed out


def test_bad_arguments() -> None:
    s = session(lambda req: [], [])
    with pytest.raises(ValueError, match="settle"):
        s.advance_to_discovery(settle=-1)
    with pytest.raises(ValueError, match="timeout"):
        s.advance_to_discovery(timeout="soon")  # type: ignore[arg-type]
