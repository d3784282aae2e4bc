"""Flow control (issue 12): a user's continue is sent in windows, the windows' ReadyForContinue is hidden, and the
next window waits until the queue has drained to low-water. Scripted: a Session on a fake control connection whose
queue the test fills."""
from __future__ import annotations

import pytest

from simclient import ClientConfig
from simclient import events as ev
from simclient import protocol as wire
from simclient.builders import Continue
from simclient.control import Route
from simclient.flow import FlowControl
from simclient.session import Session


class FakeControl:
    def __init__(self):
        from simclient.control import SingleMode

        self.sent = []
        self.thread = None
        self.mode = SingleMode(self)  # type: ignore[arg-type]  # encodes the continues, as the real control does

    def send_continue(self, route, request):
        self.sent.append(request)

    def close(self, timeout=None):
        pass


def _session(max_events=100, low=0):
    route = Route("sess-1", "http://127.0.0.1:1/rpc", None)
    route.range = (1000, 1999)
    control = FakeControl()
    return Session(control, route, ClientConfig(max_buffered_events=max_events, buffered_events_low_water=low)), \
        control, route


def _advance(n):
    return wire.encode_continue(Continue(advance_count=n))


def test_a_large_continue_goes_out_in_windows_and_the_consumer_sees_one_step():
    s, control, route = _session(max_events=100)       # target 50 events per window, first window 1 slot
    s.send_continue(advance_count=10)
    assert control.sent == [_advance(1)]
    for slot in range(5):                             # window 1: 5 events, then its end
        route.sink.put(ev.Slot(1000 + slot))
    route.sink.put(ev.ReadyForContinue())
    got = [s.next_event(timeout=1) for _ in range(5)]
    assert got == [ev.Slot(1000 + i) for i in range(5)]
    route.sink.put(ev.Slot(1001))
    assert s.next_event(timeout=1) == ev.Slot(1001)   # the window's ReadyForContinue was skipped...
    # ...and the next window went out, sized from 5 events/slot (50/5 = 10) but grown at most 4x: 4 slots
    assert control.sent == [_advance(1), _advance(4)]
    assert s.stats.flow_windows == 1
    for _ in range(4):                                # window 2 (4 slots, 4 events): its end is hidden too
        route.sink.put(ev.Status("executedBlockTransactions"))
    route.sink.put(ev.ReadyForContinue())
    for _ in range(4):
        assert type(s.next_event(timeout=1)) is ev.Status
    route.sink.put(ev.Slot(1999))                     # window 3: the 5 slots left (1 event/slot allows 50)
    route.sink.put(ev.ReadyForContinue())             # the user's step ends: this one is delivered
    assert s.next_event(timeout=1) == ev.Slot(1999)
    assert control.sent == [_advance(1), _advance(4), _advance(5)]
    assert s.next_event(timeout=1) == ev.ReadyForContinue()
    assert s.stats.events_delivered == 5 + 1 + 4 + 1 + 1 and s.stats.flow_windows == 2


def test_the_next_window_waits_until_the_queue_drained_to_low_water():
    s, control, route = _session(max_events=100, low=10)  # target 90 events/window, first window 1 slot
    s.send_continue(advance_count=50)
    route.sink.put(ev.Slot(1000))
    route.sink.put(ev.ReadyForContinue())
    for i in range(15):                                   # late data-plane events behind the window's end
        route.sink.put(ev.Status(f"late{i}"))
    assert s.next_event(timeout=1) == ev.Slot(1000)
    assert s.next_event(timeout=1) == ev.Status("late0")  # RFC hidden; 14 queued > 10: no continue yet
    assert control.sent == [_advance(1)]
    assert s.stats.flow_waits == 1
    for i in range(1, 4):
        assert s.next_event(timeout=1) == ev.Status(f"late{i}")
        assert len(control.sent) == 1                     # 13, 12, 11 queued
    assert s.next_event(timeout=1) == ev.Status("late4")  # 11 queued before this get... still above
    assert s.next_event(timeout=1) == ev.Status("late5")  # 10 queued when checked: the window went out first
    assert control.sent == [_advance(1), _advance(4)]
    assert s.stats.flow_waits == 1 and s.stats.flow_windows == 1


def test_plain_continues_only_and_zero_turns_it_off():
    s, control, _ = _session(max_events=100)
    s.send_continue(Continue(advance_count=10, transactions=[]).push_transaction(b"\x01" * 10))
    assert len(control.sent) == 1 and control.sent[0] == wire.encode_continue(
        Continue(advance_count=10).push_transaction(b"\x01" * 10))
    s2, control2, _ = _session(max_events=0)
    s2.send_continue(advance_count=10_000)
    assert control2.sent == [_advance(10_000)]


def test_window_sizing():
    f = FlowControl(5000)
    assert f.low_water == 2500
    first = f.split(Continue(advance_count=10_000), delivered=0)
    assert first.advance_count == 50 and f.remaining == 9950
    f.on_ready(delivered=50 * 25)                      # 25 events per slot: 2500 / 25 = 100 slots
    assert f.window == 100
    assert f.next_window(queued=3000, delivered=1250) is None and f.waits == 1
    assert f.next_window(queued=2500, delivered=1250).advance_count == 100
    f.on_ready(delivered=1250)                         # a quiet window: grows at most 4x
    assert f.window == 400
    with pytest.raises(ValueError):
        ClientConfig(max_buffered_events=10, buffered_events_low_water=10)
