"""ParallelRun.drive(consumers=K): the interleaving scheduler, against scripted sub-sessions (no network).

A scripted sub-session makes its next step's events available only when the consumer sends it a continue, the way
a server answers; ``next_event(None)`` with nothing available would block forever in real life, so the script
fails the test instead.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from types import SimpleNamespace
from typing import Any, List

import pytest

from simclient import events as ev
from simclient.errors import SessionError, Timeout
from simclient.parallel import ParallelRun


class ScriptedSub:
    def __init__(self, session_id: str, steps: List[List[Any]], held: bool = False):
        self.session_id = session_id
        self._route = SimpleNamespace(range=(1, 10), sink=queue.SimpleQueue())
        self._drain = None
        self._steps = deque(steps)
        self._avail: deque = deque()
        self.held = held  # events held inside the session: its queue stays empty (as a step barrier may do)
        self.continues: List[int] = []
        self.blocked_forever = False
        self._release()

    def _release(self) -> None:
        if self._steps:
            for item in self._steps.popleft():
                self._avail.append(item)
                if not self.held:
                    self._route.sink.put(item)

    def next_event(self, timeout: Any = None) -> Any:
        if not self._avail:
            if timeout is None:
                self.blocked_forever = True
                raise AssertionError(f"{self.session_id}: next_event(None) with nothing to come")
            raise Timeout("nothing yet")
        item = self._avail.popleft()
        if not self.held:
            self._route.sink.get_nowait()
        if isinstance(item, BaseException):
            raise item
        return item

    def send_continue(self, cont: Any) -> None:
        self.continues.append(cont.advance_count)
        self._release()


def _run(subs: List[ScriptedSub]) -> ParallelRun:
    run = object.__new__(ParallelRun)
    run._subs = subs
    run._closed = False
    run._lock = threading.Lock()
    return run


READY, DONE = ev.ReadyForContinue(), ev.Completed()


def test_one_consumer_drives_several_sub_sessions_in_step():
    a = ScriptedSub("a", [[READY], [ev.Slot(1), READY], [ev.Slot(2), DONE]])
    b = ScriptedSub("b", [[READY], [ev.Slot(5), DONE]])
    seen: List[Any] = []
    result = _run([a, b]).drive(on_event=lambda sub, e: seen.append((sub.session_id, e)), advance_count=5,
                                consumers=1)
    assert result.ok and set(result.completed) == {"a", "b"}
    assert a.continues == [5, 5] and b.continues == [5]
    assert [e for sid, e in seen if sid == "a"] == [READY, ev.Slot(1), READY, ev.Slot(2), DONE]
    assert [e for sid, e in seen if sid == "b"] == [READY, ev.Slot(5), DONE]
    assert not a.blocked_forever and not b.blocked_forever


def test_events_held_inside_a_session_are_still_served():
    # the queue never shows them: only the idle path's timed next_event reaches them
    held = ScriptedSub("held", [[READY], [ev.Slot(1), DONE]], held=True)
    plain = ScriptedSub("plain", [[READY], [DONE]])
    result = _run([held, plain]).drive(consumers=1)
    assert result.ok and set(result.completed) == {"held", "plain"}
    assert held.continues == [10]  # default advance: the rest of the range (1..10)


def test_a_failing_sub_session_is_recorded_and_its_sibling_completes():
    bad = ScriptedSub("bad", [[READY], [SessionError("advance failed")]])
    good = ScriptedSub("good", [[READY], [ev.Slot(3), READY], [DONE]])
    result = _run([bad, good]).drive(advance_count=1, consumers=1)
    assert set(result.completed) == {"good"}
    assert [f.session_id for f in result.failures] == ["bad"]
    assert "advance failed" in result.failures[0].reason


@pytest.mark.parametrize("k", [1, 2, 5])
def test_every_sub_session_is_served_whatever_the_number_of_consumers(k):
    subs = [ScriptedSub(f"s{i}", [[READY], [ev.Slot(i), DONE]]) for i in range(5)]
    result = _run(subs).drive(consumers=k)
    assert result.ok and len(result.completed) == 5


def test_drive_without_on_event_groups_many_sub_sessions_on_default_consumers():
    # nothing of the caller's runs on the threads, so grouping cannot hold a sub-session up: DEFAULT_CONSUMERS
    # threads instead of one per sub-session (the wake-ups per event at large fan-out, docs/performance.md)
    from simclient.parallel import DEFAULT_CONSUMERS

    threads = set()

    class Counting(ScriptedSub):
        def next_event(self, timeout: Any = None) -> Any:
            threads.add(threading.current_thread().name)
            return super().next_event(timeout)

    subs = [Counting(f"s{i}", [[READY], [ev.Slot(i), DONE]]) for i in range(3 * DEFAULT_CONSUMERS)]
    result = _run(subs).drive()
    assert result.ok and len(result.completed) == len(subs)
    assert 1 <= len(threads) <= DEFAULT_CONSUMERS  # (the pool reuses a thread whose group finished)
