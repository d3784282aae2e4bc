"""Flow control: a bound on the events buffered per (sub-)session (``ClientConfig.max_buffered_events``).

The server pushes a step's events as fast as it runs the slots; a consumer slower than that used to grow the
session's queue without limit. Here a large ``continue`` (``advance_count`` N) is split into *windows* of W slots:
the session sends ``Continue(W)``, and when the consumer reaches that window's ``ReadyForContinue`` it sends the
next window, once the queue holds at most ``buffered_events_low_water`` items. W is sized from the events per slot
of the previous window so that one window brings about ``max_buffered_events - low_water`` events. The server is
simply never asked for more than the consumer can hold: nothing is dropped, the control and subscription sockets
keep being read (keepalive, resume work as before), and a slow consumer makes the run slower, not bigger.

What the consumer sees: one user continue may become several wire continues, but the windows' intermediate
``ReadyForContinue`` events are hidden, so ``for event in session.events()`` sees one step per ``send_continue``
(as before); ``session.stats.flow_windows`` counts the extra wire continues, ``flow_waits`` the times the next window
waited for the queue to drain. Only plain continues are split (no ``transactions``/``modify_account_states``: those
go out unchanged); ``send_continue_to`` is never split. ``max_buffered_events=0`` turns this off.

A window boundary costs one continue round trip with the server idle; at the default bound that is a few dozen
windows per 5,000 busy slots (measured in docs/performance.md).
"""
from __future__ import annotations

from typing import Optional

from .builders import Continue

__all__ = ["FlowControl"]

#: first window (slots) before anything is known about the stream's density: target events / this
_FIRST_WINDOW_EVENTS_PER_SLOT = 50
#: a quiet window must not let the next one grow without bound
_MAX_GROWTH = 4


class FlowControl:
    """Per-(sub-)session window state; used by the session's consumer thread only."""

    __slots__ = ("max_events", "low_water", "remaining", "window", "started_at", "waiting", "held", "windows",
                 "waits")

    def __init__(self, max_events: int, low_water: int = 0):
        self.max_events = int(max_events)
        self.low_water = int(low_water) if low_water else self.max_events // 2
        self.remaining = 0      # slots of the user's advance not yet sent
        self.window = 0         # slots of the window in flight
        self.started_at = 0     # events delivered when that window was sent
        self.waiting = False    # a window ended; the next waits for the queue to drain to low-water
        self.held = False       # ... and was found above low-water at least once (counted in ``waits``)
        self.windows = 0        # wire continues beyond the user's own
        self.waits = 0

    @property
    def _target(self) -> int:
        return max(1, self.max_events - self.low_water)

    def split(self, cont: Continue, delivered: int) -> Continue:
        """The continue to send for the user's ``cont``: its first window, or ``cont`` itself."""
        self.remaining = 0
        self.waiting = False
        if not self.max_events or cont.transactions or cont.modify_account_states:
            return cont
        first = self.window or max(1, self._target // _FIRST_WINDOW_EVENTS_PER_SLOT)
        if cont.advance_count <= first:
            return cont
        self.remaining = cont.advance_count - first
        self.window = first
        self.started_at = delivered
        return Continue(advance_count=first)

    def reset(self) -> None:
        self.remaining = 0
        self.waiting = False

    def on_ready(self, delivered: int) -> None:
        """A window's ReadyForContinue was read (``remaining`` > 0): size the next window; it is now due."""
        per_slot = (delivered - self.started_at) / max(1, self.window)
        size = int(self._target / per_slot) if per_slot > 0 else self.remaining
        self.window = max(1, min(size, self.window * _MAX_GROWTH, self.remaining))
        self.waiting = True

    def next_window(self, queued: int, delivered: int) -> Optional[Continue]:
        """The next window's continue when the queue (``queued`` items) is at or below low-water, else None."""
        if queued > self.low_water:
            if not self.held:
                self.held = True
                self.waits += 1
            return None
        self.waiting = self.held = False
        size = min(self.window, self.remaining)
        self.remaining -= size
        self.started_at = delivered
        self.windows += 1
        return Continue(advance_count=size)
