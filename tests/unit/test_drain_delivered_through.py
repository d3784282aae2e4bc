"""``delivered_through`` while a session drains the notifications that trail its ``Completed`` (session.py,
``_start_drain``): the control socket and the data plane are separate sockets (PROTOCOL §9), so the session's queue
may hold a subscription's SlotMark, then ``Completed``, then that subscription's notifications of the marked slot.

Seen once in a loaded full-suite run (tests/cli/test_compare_summarize.py::test_summarize_accounts): the drain read
every subscription's end of stream before it served the trailing notifications, ``delivered_through`` jumped to the
range's end after the first of them, the streamed run writer finalised the last slot and dropped the rest as "late":
the run file missed transactions and the summarised ``sol_change`` was off by one transaction's lamports."""
from __future__ import annotations

import queue
from typing import Any, Optional, Tuple

from simclient import events as ev
from simclient.control import Route
from simclient.runwriter import StreamingRunRecorder
from simclient.session import _BaseSession
from simclient.subscriptions import EndOfStream, SlotMark
from simclient.testing import fast_config


class FakeSub:
    """What the consumer needs of a Subscription (identity, request_barrier, reconnecting)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reconnecting = False
        self.has_been_up = True

    def request_barrier(self) -> Optional[int]:  # pragma: no cover - no step end in these scripts
        return None


def tx(slot: int, sig: str) -> ev.Transaction:
    return ev.Transaction(slot=slot, signature=sig, value={"meta": {"err": None}})


def diff(slot: int, sig: str) -> ev.AccountDiff:
    return ev.AccountDiff(slot=slot, signature=sig, account="acc-" + sig, pre={"lamports": 1},
                          post={"lamports": 2})


def session(*subs: FakeSub) -> Tuple[_BaseSession, "queue.SimpleQueue[Any]"]:
    route = Route("sess-1", "http://x/backtest/sess-1", None)
    route.range = (70, 200)
    s = _BaseSession(None, route, fast_config())  # type: ignore[arg-type]
    s._subscriptions = list(subs)  # type: ignore[arg-type]
    return s, route.sink


def script(s: _BaseSession, sink: "queue.SimpleQueue[Any]", a: FakeSub, b: FakeSub) -> None:
    """a (transactions) and b (diffs) were at slot 80; a's mark for 81 was queued just before Completed, a's
    notifications of 81 and both ends of stream after it (a lagging data plane)."""
    for item in (SlotMark(a, 80), tx(80, "w"), SlotMark(b, 80), diff(80, "w")):
        sink.put(item)
    assert [s.next_event(1.0), s.next_event(1.0)] == [tx(80, "w"), diff(80, "w")]
    assert s.delivered_through == 79
    for item in (SlotMark(a, 81), ev.Completed(), tx(81, "x"), tx(81, "y"), EndOfStream(a),
                 SlotMark(b, 81), diff(81, "x"), EndOfStream(b)):
        sink.put(item)  # type: ignore[arg-type]


def test_drained_notifications_hold_delivered_through_back_until_their_markers_are_served():
    a, b = FakeSub("transaction"), FakeSub("accountDiff")
    s, sink = session(a, b)
    script(s, sink, a, b)
    assert s.next_event(1.0) == tx(81, "x")
    assert s.delivered_through == 79  # b is still at 80; nothing of 80 or 81 is final (was: 200)
    assert s.next_event(1.0) == tx(81, "y")
    assert s.delivered_through == 79
    assert s.next_event(1.0) == diff(81, "x")
    assert s.delivered_through == 80  # a ended, b is at 81: slot 81 may still get b's notifications
    assert s.next_event(1.0) == ev.Completed()
    assert s.delivered_through == 200  # every subscription ended
    assert s.next_event(1.0) is None


def test_streamed_writer_keeps_every_drained_notification():
    """The run engine's loop (simclient/cli/engine.py ``_run_single``) over that queue: nothing is late, every
    transaction is in the file with its diff."""
    a, b = FakeSub("transaction"), FakeSub("accountDiff")
    s, sink = session(a, b)
    rec = StreamingRunRecorder(70, 200)
    rec.add_session("sess-1", 70, 200)
    written = []
    rec._write = lambda sid, record: written.append(record)  # type: ignore[method-assign]

    def feed(event: ev.Event) -> None:
        rec.add_event("sess-1", event)
        rec.advance("sess-1", s.delivered_through)

    sink.put(SlotMark(a, 80))
    sink.put(tx(80, "w"))  # type: ignore[arg-type]
    feed(s.next_event(1.0))  # type: ignore[arg-type]
    for item in (SlotMark(b, 80), diff(80, "w"), SlotMark(a, 81), ev.Completed(), tx(81, "x"), tx(81, "y"),
                 EndOfStream(a), SlotMark(b, 81), diff(81, "x"), diff(81, "y"), EndOfStream(b)):
        sink.put(item)  # type: ignore[arg-type]
    for event in s.events(1.0):
        feed(event)
        if type(event) is ev.Completed:
            rec.end_session("sess-1")
    rec.finish(complete=True)
    assert rec.late_events == 0
    assert [(r["slot"], r["signature"], sorted(r["account_diffs"])) for r in written] == [
        (80, "w", ["acc-w"]), (81, "x", ["acc-x"]), (81, "y", ["acc-y"])]


def test_events_serves_the_drain_itself_with_the_same_events_and_marks():
    """``events()`` serves the drain's common case (a queued notification, a SlotMark) itself, without a
    ``next_event`` per event: the same events, the same ``delivered_through`` after each, the same end."""
    runs = []
    for use_events in (False, True):
        a, b = FakeSub("transaction"), FakeSub("accountDiff")
        s, sink = session(a, b)
        script(s, sink, a, b)
        calls = []
        serve = s._serve_drain

        def counted(timeout: Optional[float], serve: Any = serve, calls: Any = calls) -> Any:
            calls.append(timeout)
            return serve(timeout)
        s._serve_drain = counted  # type: ignore[method-assign]
        source = s.events(1.0) if use_events else iter(lambda s=s: s.next_event(1.0), None)
        runs.append(([(event, s.delivered_through) for event in source], len(calls)))
    (plain, plain_calls), (fast, fast_calls) = runs
    assert fast == plain
    assert [through for _, through in fast] == [79, 79, 80, 200]
    assert plain_calls == 5 and fast_calls == 3  # events() took the notification after the first itself
