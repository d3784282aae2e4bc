"""Progress of a parallel create while it is still streaming (``client.start_parallel(create, on_session_created=,
on_status=)``; the Rust client's ``create_sessions_with_progress``).

A parallel create can take minutes: the server prepares each bundle, then streams one ``sessionCreated`` per
sub-session, and only then the terminal ``sessionsCreatedV2`` (PROTOCOL.md §8). Without these callbacks a caller sees
nothing until ``start_parallel`` returns.

* ``on_session_created(SessionCreatedInfo)``: once per streamed ``sessionCreated``, in arrival order.
* ``on_status(CreateStatus)``: once per server ``status`` read during the create (``bundleReady``,
  ``startingRuntime``, ...): a sub-session's (``sessionEventV2``) or a top-level one. The sub-sessions' statuses are
  also delivered as :class:`~simclient.events.Status` events of their sub-session, as before.

Both run on the control connection's reader thread, before ``start_parallel`` returns; they must return quickly
(the connection is not read meanwhile) and must not call into the run (it does not exist yet). An exception raised
by a callback does not stop the reader: it is logged (``simclient.create_progress``), no callback is called again,
the create is read to its end so that every sub-session it made can be closed, and then ``start_parallel`` closes
the run and raises that exception. A failing create raises its own error instead (the callback's is logged).

``sessionCreated`` carries no range (PROTOCOL §4): the ranges are the server's ``sessionsCreatedV2`` split, on the
returned run's sub-sessions. A sub-session announced but then not listed by ``sessionsCreatedV2`` (a creation that
failed, PROTOCOL §8 step 3) is not part of the run, so the last ``count`` can exceed the run's sub-sessions; one
listed but never announced gets no callback. When a connection drops mid-create the client sends the create again (the server tears
the half-made run down): ``attempt`` then grows and ``count`` starts again from 1.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Set

__all__ = ["SessionCreatedInfo", "CreateStatus", "CreateProgress"]

log = logging.getLogger("simclient.create_progress")


@dataclass(frozen=True)
class SessionCreatedInfo:
    """One streamed ``sessionCreated`` of a parallel create.

    Attributes:
        session_id: the new sub-session's id.
        rpc_endpoint: its per-session endpoint (resolved against the client's URL).
        task_id: the server's opaque task id, when it sent one.
        count: sub-sessions announced so far in this attempt, this one included (1, 2, ...).
        attempt: the create attempt (1; more after a dropped connection made the client send the create again).
        elapsed: seconds since the create was first sent.
    """

    session_id: str
    rpc_endpoint: str
    task_id: Optional[str]
    count: int
    attempt: int = 1
    elapsed: float = 0.0


@dataclass(frozen=True)
class CreateStatus:
    """A server ``status`` read during a parallel create.

    Attributes:
        status: the ``BacktestStatus`` string as the server sent it (unknown values pass through).
        session_id: the sub-session it concerns; None for a top-level ``status`` of the control session.
        created: sub-sessions announced so far in this attempt (a status may come before its ``sessionCreated``).
        attempt: as in :class:`SessionCreatedInfo`.
        elapsed: seconds since the create was first sent.
    """

    status: str
    session_id: Optional[str]
    created: int
    attempt: int = 1
    elapsed: float = 0.0


OnSessionCreated = Callable[[SessionCreatedInfo], object]
OnStatus = Callable[[CreateStatus], object]


class CreateProgress:
    """The callbacks of one create, called by the control reader (see the module docstring)."""

    def __init__(self, on_session_created: Optional[OnSessionCreated] = None, on_status: Optional[OnStatus] = None,
                 clock: Callable[[], float] = time.monotonic):
        for name, cb in (("on_session_created", on_session_created), ("on_status", on_status)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable, got {type(cb).__name__}")
        self._on_created = on_session_created
        self._on_status = on_status
        self._clock = clock
        self._started: Optional[float] = None
        self._ids: Set[str] = set()
        self.attempt = 0
        #: the first exception a callback raised (then no callback is called again)
        self.error: Optional[BaseException] = None

    @property
    def created(self) -> int:
        """Sub-sessions announced in the current attempt."""
        return len(self._ids)

    def new_attempt(self) -> None:
        """The create is (re)sent."""
        if self._started is None:
            self._started = self._clock()
        self.attempt += 1
        self._ids = set()

    def _elapsed(self) -> float:
        return 0.0 if self._started is None else max(0.0, self._clock() - self._started)

    def session_created(self, session_id: str, rpc_endpoint: str, task_id: Optional[str]) -> None:
        if session_id in self._ids:
            return  # the same announcement twice: one sub-session
        self._ids.add(session_id)
        if self._on_created is not None and self.error is None:
            self._call(self._on_created, SessionCreatedInfo(session_id, rpc_endpoint, task_id, len(self._ids),
                                                            max(1, self.attempt), self._elapsed()))

    def status(self, status: str, session_id: Optional[str]) -> None:
        if self._on_status is not None and self.error is None:
            self._call(self._on_status, CreateStatus(status, session_id, len(self._ids), max(1, self.attempt),
                                                     self._elapsed()))

    def _call(self, callback: Callable[[Any], object], info: Any) -> None:
        try:
            callback(info)
        except BaseException as exc:  # noqa: BLE001 - re-raised by start_parallel, never kills the reader
            self.error = exc
            log.error("create progress callback %r raised %s: %s; no further callbacks, the run is closed once "
                      "the create is complete and start_parallel raises it", getattr(callback, "__name__", callback),
                      type(exc).__name__, exc, exc_info=(type(exc), exc, exc.__traceback__))
