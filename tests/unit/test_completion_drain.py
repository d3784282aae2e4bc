"""The completion drain and the reconnect coordinator (issue 16 defect 8: CompletionDrainStalled in the long chaos
set). Cause found: the end of stream was never lost — every resubscribe to a completed session got its replay and
end of stream within milliseconds — but the resubscribe waited up to 9.7 s for the shared ReconnectCoordinator
(waits up to 16 s overall, a semaphore that let some waiters lose again and again), longer than the drain's 8 s."""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, List, Optional

import pytest

from simclient import CompletionDrainStalled, Timeout
from simclient import events as ev
from simclient import protocol as wire
from simclient import subscriptions as subs_mod
from simclient.control import Route
from simclient.session import _BaseSession
from simclient.stats import SessionStats
from simclient.subscriptions import EndOfStream, ReconnectCoordinator, SlotMark, Subscription
from simclient.testing import fast_config
from simclient.transport import OPCODE_TEXT

from scripted_ws import Script


class FakeSub:
    def __init__(self) -> None:
        self.kind = "transaction"
        self.reconnecting = False

    def request_barrier(self) -> Optional[int]:
        return None


def session(*subs: FakeSub, drain: float = 0.3) -> Any:
    route = Route("s1", "http://127.0.0.1:1/backtest/s1", None)
    s = _BaseSession(None, route, fast_config(completion_drain_timeout=drain))  # type: ignore[arg-type]
    s._subscriptions = list(subs)  # type: ignore[arg-type]
    return s, route.sink


def test_a_connected_subscription_without_end_of_stream_stalls_the_drain():
    sub = FakeSub()
    s, sink = session(sub)
    tx = ev.Transaction(slot=1, signature="a", value={})
    sink.put(ev.Completed())
    sink.put(tx)
    t0 = time.monotonic()
    assert s.next_event(5) == tx  # what arrived is delivered first
    with pytest.raises(CompletionDrainStalled, match="while connected"):
        s.next_event(5)
    assert 0.25 <= time.monotonic() - t0 < 3


def test_time_spent_reconnecting_does_not_count_against_the_drain():
    sub = FakeSub()
    s, sink = session(sub, drain=0.3)
    sub.reconnecting = True
    sink.put(ev.Completed())
    done: List[Any] = []
    reader = threading.Thread(target=lambda: done.append(s.next_event(5)), name="test-drain-reader")
    reader.start()
    reader.join(1.2)  # four drain timeouts: a reconnecting subscription keeps the drain waiting
    assert reader.is_alive() and not done
    sub.reconnecting = False
    sink.put(ev.Transaction(slot=1, signature="tail", value={}))  # the tail from the resubscribe, then its end
    sink.put(EndOfStream(sub))  # type: ignore[arg-type]
    reader.join(5)
    assert done == [ev.Transaction(slot=1, signature="tail", value={})]
    assert s.next_event(1) == ev.Completed()


def test_the_drain_delivers_each_trailing_event_as_it_arrives():
    """Streamed, not collected first (issue 17: holding the whole tail of a fast control stream made the garbage
    collector the client's main cost): a trailing notification comes out at once, not at the subscription's end."""
    sub = FakeSub()
    s, sink = session(sub, drain=30)
    sink.put(ev.Completed())
    sink.put(ev.Transaction(slot=1, signature="a", value={}))
    t0 = time.monotonic()
    assert s.next_event(5) == ev.Transaction(slot=1, signature="a", value={})
    assert time.monotonic() - t0 < 2  # collected first, it would wait for the end of stream (30 s here)
    with pytest.raises(Timeout):  # the caller's timeout holds during the drain too; the drain goes on after it
        s.next_event(0.05)
    with pytest.raises(Timeout):
        s.next_event(0)
    sink.put(ev.Transaction(slot=2, signature="b", value={}))
    sink.put(EndOfStream(sub))  # type: ignore[arg-type]
    assert s.next_event(0) == ev.Transaction(slot=2, signature="b", value={})  # 0: a look without waiting
    assert s.next_event(5) == ev.Completed()
    assert s.next_event(5) is None


def test_the_call_that_reads_completed_keeps_its_timeout():
    # drive()'s grouped consumers look with next_event(0): reading Completed must not make that call wait for the
    # trailing notifications (the consumer's other sub-sessions would starve meanwhile)
    sub = FakeSub()
    s, sink = session(sub, drain=30)
    sink.put(ev.Completed())
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        s.next_event(0)
    assert time.monotonic() - t0 < 1
    sink.put(EndOfStream(sub))  # type: ignore[arg-type]
    assert s.next_event(0) == ev.Completed()


def test_delivered_through_never_runs_ahead_of_what_the_drain_has_returned():
    """SlotMark and EndOfStream read during the drain count in stream order (the streamed run writer would take
    the rest of the tail as late otherwise)."""
    sub = FakeSub()
    s, sink = session(sub, drain=30)
    s._route.range = (1, 10)
    for item in (ev.Completed(), SlotMark(sub, 5), ev.Transaction(slot=5, signature="a", value={}),  # type: ignore[arg-type]
                 SlotMark(sub, 6), ev.Transaction(slot=6, signature="b", value={}), EndOfStream(sub)):  # type: ignore[arg-type]
        sink.put(item)
    assert s.next_event(5).slot == 5  # type: ignore[union-attr]
    assert s.delivered_through == 4
    assert s.next_event(5).slot == 6  # type: ignore[union-attr]
    assert s.delivered_through == 5
    assert s.next_event(5) == ev.Completed()
    assert s.delivered_through == 10


# ------------------------------------------------------------------------------------------- ReconnectCoordinator

def test_coordinator_hands_turns_out_first_come_first_served():
    coord = ReconnectCoordinator()
    stop = threading.Event()
    assert coord.acquire(stop) is True
    order: List[int] = []
    started: List[threading.Event] = []
    threads = []
    for i in range(5):
        ready = threading.Event()
        started.append(ready)

        def one(i: int = i, ready: threading.Event = ready) -> None:
            ready.set()
            assert coord.acquire(stop) is True
            order.append(i)
            coord.release()

        t = threading.Thread(target=one, name=f"test-coord-{i}")
        threads.append(t)
        t.start()
        ready.wait(2)
        deadline = time.monotonic() + 2
        while len(coord._waiting) < i + 1 and time.monotonic() < deadline:  # queued in start order
            time.sleep(0.001)
    coord.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert coord.acquire(stop) is True  # free again
    coord.release()


def test_coordinator_wait_ends_on_stop_or_skip_holding_nothing():
    coord = ReconnectCoordinator()
    never = threading.Event()
    assert coord.acquire(never) is True
    stop, skip = threading.Event(), threading.Event()
    out: List[Any] = []
    t1 = threading.Thread(target=lambda: out.append(("stop", coord.acquire(stop))), name="test-coord-stop")
    t2 = threading.Thread(target=lambda: out.append(("skip", coord.acquire(never, skip))), name="test-coord-skip")
    t1.start()
    t2.start()
    stop.set()
    skip.set()
    t1.join(2)
    t2.join(2)
    assert sorted(out) == [("skip", None), ("stop", False)]
    assert not coord._waiting
    coord.release()
    assert coord.acquire(never) is True  # nobody else holds it


# ------------------------------------------------------------------- a completed session skips the coordinator

def test_a_completed_sessions_subscription_reconnects_without_waiting_for_a_turn() -> None:
    script = Script()
    coord = ReconnectCoordinator()
    assert coord.acquire(threading.Event()) is True  # a sibling holds the turn for as long as the test runs
    completed = threading.Event()
    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    sub = Subscription(subs_mod.TRANSACTIONS, ["P"], "http://127.0.0.1:1/backtest/s1", sink,
                       fast_config(backoff_initial=0.0), completed, 100, "s1", SessionStats(), coord,
                       connection_factory=lambda url, key, timeout: script.open(url, key, timeout))
    sub.start()
    try:
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        completed.set()  # the session completed; then its subscription socket drops before the end of stream
        first.frames.put("die")
        second = script.wait_conns(2)  # reconnected although the coordinator is held
        second.frames.put((OPCODE_TEXT, wire.dumps({"jsonrpc": "2.0", "method": "transactionNotification",
                                                    "params": {"subscription": 41, "result": None}})))
        item = sink.get(timeout=5)
        assert isinstance(item, EndOfStream)
    finally:
        sub.stop()
        sub.join(2)
        coord.release()
    assert not sub.thread.is_alive()


def test_the_callers_time_between_two_calls_is_not_drain_idle_time(monkeypatch):
    """The idle clock counts only time spent waiting for the queue: a consumer that takes longer than the drain
    timeout over one event (a slow handler) must not find the drain stalled at its next call."""
    import simclient.session as session_mod

    clock = [1000.0]
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: clock[0])
    sub = FakeSub()
    s, sink = session(sub, drain=5)
    sink.put(ev.Completed())
    first = ev.Transaction(slot=1, signature="a", value={})
    sink.put(first)
    assert s.next_event(1) == first
    clock[0] += 60  # the caller spent a minute on that event
    sink.put(SlotMark(sub, 2))  # type: ignore[arg-type]  # a marker first: the drain's full path runs
    second = ev.Transaction(slot=2, signature="b", value={})
    sink.put(second)
    assert s.next_event(1) == second
    clock[0] += 60
    sink.put(EndOfStream(sub))  # type: ignore[arg-type]
    assert s.next_event(1) == ev.Completed()
