"""Discovery stepping: pause a session immediately before each batch its discovery filters match.

``session.advance_to_discovery()`` (the Rust raw session's ``advance_to_discovery``) turns the server's
``discoveryBatch`` announcements (PROTOCOL §5.5) into ``continueTo`` targets (§3.3). What it relies on, and the
readings it also works under:

* **Which batches count.** §5.5: "after every continue/continueTo the server emits the next discoveryBatch ahead of
  the next match". So the batches that matter at an idle point are those read since the last continue-type request
  went out (the session tracks them: every ``DiscoveryBatch`` returned by ``next_event``, also to your own
  ``events()`` loop, and every request sent by ``send_continue*``); when paused at ``(s, b)`` only batches after
  ``(s, b)`` are targets. The earliest one is the target. Batches announced beyond the target are kept across the
  ``continueTo`` (they cannot have run once paused before it), for a server that announces several at once.
* **When they arrive.** The lifecycle (§6) puts them before ``readyForContinue``; the table of §4 calls them a
  background scan. A server may therefore announce a batch *after* the idle marker: when idle with nothing to
  target, the call waits ``settle`` seconds (default :data:`DISCOVERY_SETTLE`) for a late batch before it concludes
  that no match is left and runs the rest of the range to ``Completed``. That wait happens once per session on a
  server that announces before the idle marker (at the end, when no match is left). A batch that arrives after the
  settle window, while the rest of the range runs, cannot be paused at any more: it is returned in ``events`` and
  logged as a warning.
* **The batch paused before, announced again.** When paused before ``(s, b)`` a server may announce ``(s, b)``
  itself as "the next match" (it has not executed yet). A pause that was already returned is not returned again:
  the call steps over it with ``continueTo(s, b + 1)`` (that pause is an event on the way) and goes on.
* **Nothing is dropped.** Every event read on the way (statuses, slots, transactions, account diffs, non-terminal
  errors, other discovery batches, the idle markers of intermediate steps) is in :attr:`DiscoveryStep.events`, in
  order. A call that times out keeps what it read for the next call's ``events``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

from . import events as ev
from .errors import SessionClosedError, Timeout

if TYPE_CHECKING:  # pragma: no cover
    from .session import _BaseSession

log = logging.getLogger("simclient.discovery")

__all__ = ["DiscoveryStep", "DiscoveryPause", "DiscoveryCompleted", "DISCOVERY_SETTLE"]

#: Seconds an idle session with no batch to target waits for a late ``discoveryBatch`` (background-scan reading).
DISCOVERY_SETTLE = 1.0


class DiscoveryStep:
    """What :meth:`Session.advance_to_discovery` returns: a :class:`DiscoveryPause` (an ``events.Paused``: stopped
    immediately before ``batch``; RPC reads show the state before it) or a :class:`DiscoveryCompleted` (an
    ``events.Completed``: no batch was left). So ``isinstance(step, ev.Paused)`` / ``ev.Completed`` work as
    DESIGN.md promises, and both carry the same attributes: ``paused``, ``batch`` (alias ``discovery``),
    ``completed``, ``is_completed``, ``event`` and ``events`` (every other event read during the call, in order).
    Rust: ``DiscoveryStepResult::{Paused(DiscoveryPause{discovery, paused}), Completed}``. Compare positions, not
    objects: a ``DiscoveryPause`` is not ``==`` a plain ``Paused`` (dataclass equality includes the class)."""

    __slots__ = ()

    @property
    def discovery(self) -> Optional[ev.DiscoveryBatch]:
        """The batch paused before (the Rust ``DiscoveryPause.discovery``); None once completed."""
        return getattr(self, "batch", None)

    @property
    def event(self) -> ev.Event:
        """The step itself, as the event it is (``Paused`` or ``Completed``)."""
        assert isinstance(self, ev.Event)
        return self


@dataclass(frozen=True)
class DiscoveryPause(ev.Paused, DiscoveryStep):
    """Paused immediately before ``batch`` (``slot``/``batch_index`` as the server's ``paused`` said)."""

    batch: Optional[ev.DiscoveryBatch] = None
    events: Tuple[ev.Event, ...] = field(default=(), compare=False, repr=False)

    @property
    def paused(self) -> ev.Paused:
        return self

    @property
    def completed(self) -> None:
        return None

    @property
    def is_completed(self) -> bool:
        return False


@dataclass(frozen=True)
class DiscoveryCompleted(ev.Completed, DiscoveryStep):
    """No batch was left: the session ran to the end of its range (``summary`` as in ``Completed``)."""

    events: Tuple[ev.Event, ...] = field(default=(), compare=False, repr=False)

    @property
    def paused(self) -> None:
        return None

    @property
    def batch(self) -> None:
        return None

    @property
    def completed(self) -> ev.Completed:
        return self

    @property
    def is_completed(self) -> bool:
        return True


def _paused(paused: ev.Paused, batch: ev.DiscoveryBatch, seen: List[ev.Event]) -> DiscoveryPause:
    return DiscoveryPause(slot=paused.slot, batch_index=paused.batch_index, batch=batch, events=tuple(seen))


def _completed(completed: ev.Completed, seen: List[ev.Event]) -> DiscoveryCompleted:
    return DiscoveryCompleted(summary=completed.summary, events=tuple(seen))


def _key(batch: ev.DiscoveryBatch) -> Tuple[int, int]:
    return (batch.slot, batch.batch_index)


def _pause_position(paused: ev.Paused, asked: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    index = paused.batch_index
    if index is None:  # optional on the wire (§5.3): the one our continueTo asked for, when it was this slot's
        index = asked[1] if asked is not None and asked[0] == paused.slot else 0
    return (paused.slot, index)


def advance_to_discovery(session: "_BaseSession", timeout: Optional[float] = None,
                         settle: Optional[float] = None, extra: Optional[Mapping[str, Any]] = None) -> DiscoveryStep:
    """The algorithm behind :meth:`Session.advance_to_discovery` (see the module docstring)."""
    settle = DISCOVERY_SETTLE if settle is None else settle
    if isinstance(settle, bool) or not isinstance(settle, (int, float)) or settle < 0:
        raise ValueError(f"settle must be a non-negative number of seconds, got {settle!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, got {timeout!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: List[ev.Event] = session._disc_carry
    session._disc_carry = []
    idle_read: Optional[ev.Event] = None  # the idle marker read in this call, not yet put into ``seen``
    finishing = False  # no batch left: the rest of the range was sent

    def left(limit: Optional[float] = None) -> Optional[float]:
        ends = [t for t in (deadline, limit) if t is not None]
        return None if not ends else max(0.0, min(ends) - time.monotonic())

    idle_at = 0  # where ``idle_read`` belongs in ``seen`` (events may be read after it while idle)

    def consumed_idle() -> None:
        nonlocal idle_read
        if idle_read is not None:
            seen.insert(idle_at, idle_read)
            idle_read = None

    def read(limit: Optional[float] = None) -> ev.Event:
        event = session.next_event(left(limit))
        if event is None:
            raise SessionClosedError(f"session {session.session_id} has no more events (it completed, failed or "
                                     "was closed before)")
        return event

    try:
        while True:
            idle = session._disc_idle
            if idle is None:  # starting or executing: read on
                event = read()
                kind = type(event)
                if kind is ev.Completed:
                    return _completed(event, seen)  # type: ignore[arg-type]
                if kind is ev.ReadyForContinue or kind is ev.Paused:
                    consumed_idle()
                    idle_read, idle_at = event, len(seen)
                    continue
                if kind is ev.DiscoveryBatch and finishing:
                    log.warning("session %s: discoveryBatch at %s arrived more than %.1fs after the idle marker, "
                                "while the rest of the range runs: not paused at (raise settle=)",
                                session.session_id, _key(event), settle)  # type: ignore[arg-type]
                seen.append(event)
                continue
            target = session._disc_target
            fresh = sorted({_key(b): b for b in session._disc_fresh}.items())
            if type(idle) is ev.Paused:
                position = _pause_position(idle, session._disc_asked)
                again = next((b for k, b in fresh if k == position), None)  # announced after the pause's request
                here = target if target is not None and _key(target) == position else again
                if here is not None and position != session._disc_returned:
                    session._disc_returned = position
                    return _paused(idle, here, seen)
                after = [b for k, b in fresh if k > position]
            else:
                position, again, after = None, None, [b for _k, b in fresh]
            if after:
                consumed_idle()
                session.send_continue_to(after[0].slot, after[0].batch_index, extra, timeout=left())
                session._disc_target = after[0]
                session._disc_asked = _key(after[0])
                # batches beyond the target cannot have run once paused before it: kept, for a server that
                # announces several at once and does not repeat them (a repeat is merged by position)
                session._disc_fresh.extend(after[1:])
                continue
            if again is not None:  # the pause already returned, announced again: step over its batch
                assert position is not None
                consumed_idle()
                session.send_continue_to(position[0], position[1] + 1, extra, timeout=left())
                session._disc_asked = (position[0], position[1] + 1)
                continue
            # idle and nothing to target: wait for a late batch, then run the rest of the range
            known = len(session._disc_fresh)
            settle_end = time.monotonic() + settle
            while len(session._disc_fresh) == known and time.monotonic() < settle_end:
                try:
                    event = read(settle_end)
                except Timeout:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    break
                seen.append(event)
                if type(event) is ev.Completed:  # pragma: no cover - an idle session does not complete
                    seen.pop()
                    consumed_idle()
                    return _completed(event, seen)
            if len(session._disc_fresh) != known:
                continue
            consumed_idle()
            start, end = session._route.range or (0, 0)
            finishing = True
            session.send_continue(advance_count=max(1, end - start + 1), timeout=left())
    except Timeout as exc:
        consumed_idle()
        session._disc_carry = seen
        raise Timeout(f"advance_to_discovery: {exc} (the events read so far are kept for the next call)") from None
