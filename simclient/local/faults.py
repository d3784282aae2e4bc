"""FaultPlan: deterministic fault injection for the local simulator.

Every fault is counter based ("every n-th ..."), so a given client behaviour always meets the faults at the same
points; the seed only chooses the content of garbage frames. A plan is thread-safe: tests may reconfigure it from
their own thread while the simulator runs. Each configuring method returns the plan, so calls chain::

    FaultPlan(seed=1).drop_control_every(25).garbage_every(7)

Counting rules (chosen so that progress is always possible):

* ``drop_control_every(n)``: counts *live sequenced* control frames only (frames of a session created with
  ``disconnectTimeoutSecs > 0``, single ``seqId`` frames or parallel ``sessionEventV2`` frames) emitted after the
  create completed (after a single session's ``sessionCreated``, after ``sessionsCreatedV2`` in parallel mode): a
  drop during create makes a client retry the create, which could otherwise loop forever. Attach replies and
  replayed frames are not counted either, so a reattach always gets its replay through. The n-th frame is kept in
  the replay buffer but not sent; the TCP connection is aborted instead.
* ``drop_subscriptions_every(n)``: counts live data-plane notifications (not replayed ones); the n-th is not sent and
  its subscription socket is aborted. It stays in the retained window, so a ``replayFromSlot`` resubscribe gets it.
* ``garbage_every(n)``: counts every control frame sent (live or replayed); before the n-th, a non-JSON text frame is
  sent. Garbage is never sequenced.
* ``lose_continue_every(n)``: counts received continue requests of any form (``continue``, ``continueTo``,
  ``continueSessionV1``, ``continueToSessionV1``); the n-th is not acted upon and the control socket is aborted.
* ``stall(seconds, after_frames=0)``: the server sends nothing on any socket, answers no pings and sessions do not
  advance, for ``seconds``. It starts immediately, or after ``after_frames`` more control frames have been sent.
* ``fail_at_slot(slot, variant)``: a session reaching ``slot`` emits a terminal ``error`` of that ``BacktestError``
  variant instead of executing it.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Any, Dict, Optional

__all__ = ["FaultPlan"]

_SLOT_VARIANTS = {"advanceSlotFailed", "finalizeSlotFailed", "initializingSysvarsFailed", "invalidBlockhashFormat"}
_ERROR_VARIANTS = {"internal", "clerkError", "simulationError", "invalidRequest"}


def error_params(variant: str, slot: int) -> Any:
    """The ``error`` params (PROTOCOL §5.6, external tagging) of an injected fault at ``slot``."""
    if variant in _SLOT_VARIANTS:
        return {variant: {"slot": slot, "error": "injected fault"}}
    if variant in _ERROR_VARIANTS:
        return {variant: {"error": f"injected fault at slot {slot}"}}
    if variant == "sessionOwnershipBusy":
        return {variant: {"reason": "injected fault"}}
    return variant  # unit variants, e.g. "noMoreBlocks"


class FaultPlan:
    """A thread-safe, deterministic set of faults (see the module docstring for the exact counting rules)."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._drop_control = 0
        self._drop_subs = 0
        self._garbage = 0
        self._lose_continue = 0
        self._fail_slots: Dict[int, str] = {}
        self._stall_until = 0.0
        self._stall_pending: Optional[tuple] = None  # (frames_left, seconds)
        self._n_control_seq = 0
        self._n_notifications = 0
        self._n_frames = 0
        self._n_continues = 0

    def __repr__(self) -> str:
        with self._lock:
            parts = [f"seed={self.seed}"]
            for name, v in (("drop_control_every", self._drop_control), ("drop_subscriptions_every", self._drop_subs),
                            ("garbage_every", self._garbage), ("lose_continue_every", self._lose_continue)):
                if v:
                    parts.append(f"{name}={v}")
            if self._fail_slots:
                parts.append(f"fail_at_slot={self._fail_slots}")
            return f"FaultPlan({', '.join(parts)})"

    @staticmethod
    def _check_n(n: Optional[int]) -> int:
        if n is None:
            return 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("n must be a non-negative int (0 or None disables the fault)")
        return n

    # ------------------------------------------------------------------ configuration (any thread)
    def drop_control_every(self, n: Optional[int]) -> "FaultPlan":
        """Abort the control connection instead of sending every n-th live sequenced control frame."""
        n = self._check_n(n)
        with self._lock:
            self._drop_control, self._n_control_seq = n, 0
        return self

    def drop_subscriptions_every(self, n: Optional[int]) -> "FaultPlan":
        """Abort a subscription socket instead of sending every n-th live notification."""
        n = self._check_n(n)
        with self._lock:
            self._drop_subs, self._n_notifications = n, 0
        return self

    def garbage_every(self, n: Optional[int]) -> "FaultPlan":
        """Send a non-JSON text frame before every n-th control frame."""
        n = self._check_n(n)
        with self._lock:
            self._garbage, self._n_frames = n, 0
        return self

    def lose_continue_every(self, n: Optional[int]) -> "FaultPlan":
        """On every n-th continue request received, drop the control socket without acting on it."""
        n = self._check_n(n)
        with self._lock:
            self._lose_continue, self._n_continues = n, 0
        return self

    def stall(self, seconds: float, after_frames: int = 0) -> "FaultPlan":
        """Stall the whole server for ``seconds`` (now, or after ``after_frames`` more control frames)."""
        if seconds < 0 or after_frames < 0:
            raise ValueError("seconds and after_frames must be >= 0")
        with self._lock:
            if after_frames:
                self._stall_pending = (after_frames, float(seconds))
            else:
                self._stall_pending = None
                self._stall_until = time.monotonic() + seconds
        return self

    def fail_at_slot(self, slot: int, variant: str = "advanceSlotFailed") -> "FaultPlan":
        """Make any session reaching ``slot`` fail with a terminal ``error`` of BacktestError ``variant``."""
        with self._lock:
            self._fail_slots[int(slot)] = variant
        return self

    def clear(self) -> "FaultPlan":
        """Remove every fault (including a running stall) and reset the counters."""
        with self._lock:
            self._drop_control = self._drop_subs = self._garbage = self._lose_continue = 0
            self._n_control_seq = self._n_notifications = self._n_frames = self._n_continues = 0
            self._fail_slots.clear()
            self._stall_until = 0.0
            self._stall_pending = None
        return self

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._drop_control or self._drop_subs or self._garbage or self._lose_continue
                        or self._fail_slots or self._stall_pending or self._stall_until > time.monotonic())

    # ------------------------------------------------------------------ hooks (simulator loop thread)
    def stall_remaining(self) -> float:
        with self._lock:
            return max(0.0, self._stall_until - time.monotonic())

    def on_control_frame(self) -> Optional[str]:
        """Called before each control frame is sent; returns a garbage text to send first, or None."""
        with self._lock:
            if self._stall_pending is not None:
                left, secs = self._stall_pending
                left -= 1
                if left <= 0:
                    self._stall_pending = None
                    self._stall_until = time.monotonic() + secs
                else:
                    self._stall_pending = (left, secs)
            if not self._garbage:
                return None
            self._n_frames += 1
            if self._n_frames % self._garbage:
                return None
            return f"<<simclient-local garbage #{self._n_frames} {self._rng.getrandbits(32):08x}>> not json {{"

    def take_control_drop(self) -> bool:
        """Called for each live sequenced control frame: True means abort the connection instead of sending."""
        with self._lock:
            if not self._drop_control:
                return False
            self._n_control_seq += 1
            return self._n_control_seq % self._drop_control == 0

    def take_subscription_drop(self) -> bool:
        with self._lock:
            if not self._drop_subs:
                return False
            self._n_notifications += 1
            return self._n_notifications % self._drop_subs == 0

    def take_lost_continue(self) -> bool:
        with self._lock:
            if not self._lose_continue:
                return False
            self._n_continues += 1
            return self._n_continues % self._lose_continue == 0

    def failure_at(self, slot: int) -> Optional[str]:
        with self._lock:
            return self._fail_slots.get(slot)

    @property
    def has_slot_failures(self) -> bool:
        with self._lock:
            return bool(self._fail_slots)
