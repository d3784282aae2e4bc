"""Stale-session checks of the control reader (issue 16 defect 6), on ``ControlConnection._deliver`` directly: what
counts as a replay going backwards past the cursor after an attach, and slot events outside the range."""
from __future__ import annotations

from typing import Any, List

import pytest

from simclient import CreateSession, ProtocolError
from simclient import events as ev
from simclient.control import ControlConnection, Route
from simclient.testing import fast_config


def control(parallel: bool) -> ControlConnection:
    return ControlConnection("ws://127.0.0.1:1/backtest", None, fast_config(),
                             CreateSession(start_slot=100, end_slot=199), parallel=parallel)


def route(cursor: Any = None) -> Route:
    r = Route("s1", "http://127.0.0.1:1/backtest/s1", None)
    r.range = (100, 199)
    r.last_seq = cursor
    r.attach_cursor = cursor
    return r


def drained(r: Route) -> List[Any]:
    out = []
    while not r.sink.empty():
        out.append(r.sink.get())
    return out


def test_first_frame_after_attach_above_the_cursor_is_delivered():
    c, r = control(True), route(cursor=10)
    c._deliver(r, 11, ev.Slot(150))
    assert drained(r) == [ev.Slot(150)] and not r.failed and r.attach_cursor is None


def test_first_frame_at_the_cursor_is_an_inclusive_replay_dropped_as_usual():
    c, r = control(True), route(cursor=10)
    c._deliver(r, 10, ev.Slot(150))
    c._deliver(r, 11, ev.Slot(151))
    assert drained(r) == [ev.Slot(151)] and r.stats.replays_dropped == 1 and not r.failed


def test_later_frames_below_the_cursor_are_ordinary_duplicates():
    c, r = control(True), route(cursor=10)
    c._deliver(r, 11, ev.Slot(150))
    c._deliver(r, 4, ev.Slot(120))
    c._deliver(r, 11, ev.Slot(150))
    assert drained(r) == [ev.Slot(150)] and r.stats.replays_dropped == 2 and not r.failed


def test_first_frame_below_the_cursor_fails_that_sub_session_and_nothing_of_it_is_delivered():
    c, r = control(True), route(cursor=10)
    c._deliver(r, 3, ev.Slot(150))
    c._deliver(r, 11, ev.Slot(151))
    items = drained(r)
    assert len(items) == 1 and isinstance(items[0], ProtocolError)
    assert "seqId 10" in str(items[0]) and "seqId 3" in str(items[0])
    assert r.failed and r.error is items[0]


def test_single_session_below_the_cursor_raises_out_of_the_reader():
    c, r = control(False), route(cursor=10)
    with pytest.raises(ProtocolError, match="before the cursor"):
        c._deliver(r, 9, ev.Status("decodedTransactions"))
    assert drained(r) == []


def test_no_cursor_sent_means_no_resume_point_to_check():
    c, r = control(True), route(cursor=None)
    c._deliver(r, 1, ev.Slot(100))
    assert drained(r) == [ev.Slot(100)]


@pytest.mark.parametrize("event", [ev.Slot(99), ev.Slot(200), ev.Paused(slot=250, batch_index=0)])
def test_slot_events_outside_the_range_fail_the_sub_session(event):
    c, r = control(True), route()
    c._deliver(r, 1, ev.Slot(100))
    c._deliver(r, 2, event)
    c._deliver(r, 3, ev.Slot(101))
    items = drained(r)
    assert items[0] == ev.Slot(100) and isinstance(items[1], ProtocolError) and len(items) == 2
    assert "outside the session's range [100, 199]" in str(items[1])


def test_slot_events_at_the_range_ends_are_delivered():
    c, r = control(True), route()
    events = [ev.Slot(100), ev.Slot(199), ev.Paused(slot=199, batch_index=3),
              ev.DiscoveryBatch(slot=250, batch_index=0)]  # a discovery announces an upcoming match: not checked
    for seq, e in enumerate(events, start=1):
        c._deliver(r, seq, e)
    assert len(drained(r)) == 4 and not r.failed


def test_subscription_notification_outside_the_range_is_a_protocol_error():
    import queue
    import threading

    from simclient import protocol as wire
    from simclient.stats import SessionStats
    from simclient.subscriptions import TRANSACTIONS, Subscription

    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    sub = Subscription(TRANSACTIONS, ["P"], "http://127.0.0.1:1/backtest/s1", sink, fast_config(), threading.Event(),
                       100, "s1", SessionStats(), slot_range=(100, 199))

    def note(slot: int) -> Any:
        return wire.decode_subscription_frame(wire.dumps({"jsonrpc": "2.0", "method": "transactionNotification",
                                                          "params": {"subscription": 7, "result": {"slot": slot,
                                                                     "transaction": {"signatures": [f"s{slot}"]}}}}))

    sub._on_notification(note(199), {7: "programs"}, set())
    with pytest.raises(ProtocolError, match="slot 250, outside the session's range"):
        sub._on_notification(note(250), {7: "programs"}, set())
    from simclient.subscriptions import SlotMark

    items = []
    while not sink.empty():
        items.append(sink.get_nowait())
    assert [e.slot for e in items if not isinstance(e, SlotMark)] == [199]
