"""ParallelRun: one multiplexed control connection, N SubSessions, and ``drive()`` on a thread pool.

The Python counterpart of the official client's ``ManagedParallelSession`` (seed ``managed/parallel.rs``): the
control reader (:mod:`simclient.control`, ``parallel=True``) demultiplexes ``sessionEventV2`` into one queue per
sub-session; each :class:`SubSession` has its own subscriptions, and all of them share one
:class:`ReconnectCoordinator` so that only one subscription reconnects at a time.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import events as ev
from .builders import Continue
from .config import ClientConfig
from .control import ControlConnection
from .errors import SessionClosedError, Timeout
from .session import SubSession
from .stats import ControlStats
from .subscriptions import ReconnectCoordinator

log = logging.getLogger("simclient.parallel")

#: drive(consumers=K): how long a consumer that found nothing queued for any of its sub-sessions blocks on one of
#: them (in turn) before looking at all of them again. Bounds the extra latency of a sub-session whose events are
#: held inside its session rather than in its queue.
IDLE_WAIT = 0.002

#: drive() without ``on_event`` (nothing of the caller's runs on the consumer threads, so nothing can block them)
#: and without ``max_workers``/``consumers``: this many grouped consumers once there are more sub-sessions than that.
#: One thread per sub-session cost 12-28% more CPU per event at 32-128 sub-sessions than at one, grouped consumers
#: within 3-9% (docs/performance.md, replay figure C). Two, not more: with the interpreter lock only one runs at a
#: time, and each extra thread adds lock hand-offs (at 64 / 128 sub-sessions 4.86 / 4.87 us CPU per event with 2,
#: 5.02 / 5.18 with 4, 5.11 / 5.29 with 8; one thread alone scans 128 queues per round: 0.88x of N = 1 at 128).
DEFAULT_CONSUMERS = 2


@dataclass(frozen=True)
class Failure:
    """A sub-session that did not complete: its range, id, and the error chain on one line."""

    range: Optional[Tuple[int, int]]
    session_id: str
    reason: str


@dataclass
class ParallelResult:
    """What ``drive()`` returns: ``completed`` by session id, and ``failures``."""

    completed: Dict[str, ev.Completed] = field(default_factory=dict)
    failures: List[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _has_queued(sub: SubSession) -> bool:
    """Whether ``sub.next_event(0)`` may have something to return without waiting for the network: an item in its
    queue, or a completion drain at its end. (A queued marker counts too; ``next_event(0)`` then consumes it and
    raises Timeout, and the consumer moves on.)"""
    return not sub._route.sink.empty() or (sub._drain is not None and sub._drain_ready())


def error_chain(exc: BaseException) -> str:
    """``Type: message: cause: …`` on one line."""
    parts = []
    seen = set()
    cur: Optional[BaseException] = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).replace("\n", " ").strip()
        parts.append(f"{type(cur).__name__}: {text}" if text else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return " <- ".join(parts)


class ParallelRun:
    """A parallel backtest (``client.start_parallel``). Context manager; ``close()`` joins everything.

    Threads: each :class:`SubSession` has one consumer thread at a time (``drive`` keeps to that whatever its
    ``consumers``); ``close`` and the sub-sessions' ``send_continue*`` may be called from any thread."""

    def __init__(self, control: ControlConnection, config: ClientConfig):
        self._control = control
        self._config = config
        self._coordinator = ReconnectCoordinator()
        routes = sorted(control.routes.values(), key=lambda r: (r.range or (0, 0)))
        self._subs = [SubSession(control, r, config, self._coordinator) for r in routes]
        self._closed = False
        self._lock = threading.Lock()

    @property
    def control_session_id(self) -> str:
        assert self._control.control_session_id is not None
        return self._control.control_session_id

    @property
    def sub_sessions(self) -> List[SubSession]:
        """The sub-sessions, ordered by range."""
        return list(self._subs)

    @property
    def range(self) -> Tuple[int, int]:
        return (min(s.range[0] for s in self._subs), max(s.range[1] for s in self._subs))

    @property
    def reconnects(self) -> int:
        return self._control.stats.reconnects

    @property
    def control_stats(self) -> ControlStats:
        """Counters of the shared control connection (reconnects, discarded frames, the §3.5 form fallback)."""
        return self._control.stats

    def subscribe_transactions(self, program_ids: Any, compression: Optional[str] = None) -> None:
        """Subscribe every sub-session to transactions of ``program_ids`` (``compression``: as for
        :meth:`Session.subscribe_transactions`)."""
        for sub in self._subs:
            sub.subscribe_transactions(program_ids, compression=compression)

    def subscribe_account_diffs(self, program_ids: Any, compression: Optional[str] = None) -> None:
        for sub in self._subs:
            sub.subscribe_account_diffs(program_ids, compression=compression)

    def subscribe_logs(self, program_ids: Any, compression: Optional[str] = None) -> None:
        """Subscribe every sub-session to the logs of transactions mentioning ``program_ids``
        (:meth:`Session.subscribe_logs`)."""
        for sub in self._subs:
            sub.subscribe_logs(program_ids, compression=compression)

    def subscribe_actions(self, compression: Optional[str] = None) -> None:
        """Subscribe every sub-session to its scheduled actions' results (each gets the firings in its range)."""
        for sub in self._subs:
            sub.subscribe_actions(compression)

    def drive(self, on_event: Optional[Callable[[SubSession, ev.Event], Any]] = None,
              advance_count: Optional[int] = None, max_workers: Optional[int] = None,
              consumers: Optional[int] = None) -> ParallelResult:
        """Drive every sub-session to completion on a thread pool (one worker per sub-session unless
        ``max_workers`` bounds it). ``on_event(sub, event)`` runs on worker threads. A failing sub-session is
        recorded as a :class:`Failure`; the others go on.

        ``consumers=K`` (instead of ``max_workers``): K threads, each serving its share of the sub-sessions
        interleaved, taking whatever each has queued before blocking. At large fan-out that saves most of the
        per-event thread wake-ups (docs/performance.md, fan-out); the price is that an ``on_event`` that blocks
        holds up the sub-sessions sharing its thread, so keep the default when ``on_event`` does I/O. Without
        ``on_event``, ``max_workers`` and ``consumers``, drive() uses :data:`DEFAULT_CONSUMERS` grouped consumers
        when there are more sub-sessions than that (with ``on_event``: one thread per sub-session, as before)."""
        if consumers is not None:
            if max_workers is not None:
                raise ValueError("give max_workers or consumers, not both")
            if isinstance(consumers, bool) or not isinstance(consumers, int) or consumers < 1:
                raise ValueError(f"consumers must be a positive int, got {consumers!r}")
        elif on_event is None and max_workers is None and len(self._subs) > DEFAULT_CONSUMERS:
            consumers = DEFAULT_CONSUMERS
        result = ParallelResult()
        lock = threading.Lock()

        def failed(sub: SubSession, exc: BaseException) -> None:
            log.warning("sub-session %s %s failed: %s", sub.session_id, sub._route.range, exc)
            with lock:
                result.failures.append(Failure(sub._route.range, sub.session_id, error_chain(exc)))

        def drive_one(sub: SubSession) -> None:
            try:
                handler = (lambda e: on_event(sub, e)) if on_event is not None else None
                completed = sub.run(advance_count=advance_count, on_event=handler)
                with lock:
                    result.completed[sub.session_id] = completed
            except BaseException as exc:  # noqa: BLE001 - recorded, the others go on
                failed(sub, exc)
                if isinstance(exc, KeyboardInterrupt):
                    raise

        def drive_group(group: List[SubSession]) -> None:
            """What ``sub.run`` does, for several sub-sessions on one thread."""
            counts = {}
            for sub in group:
                start, end = sub._route.range or (0, 0)
                counts[sub] = advance_count if advance_count is not None else max(1, end - start + 1)
            active = list(group)

            def serve(sub: SubSession, timeout: Optional[float]) -> bool:
                """The next event of ``sub`` (waiting at most ``timeout``), then every other one it has queued by
                then, never waiting (one call per sub-session and turn, not per event); True once ``sub`` is
                finished (completed or failed)."""
                next_event, queued, count = sub.next_event, sub._route.sink.qsize, counts[sub]
                try:
                    while True:
                        event = next_event(timeout)
                        if event is None:
                            raise SessionClosedError(f"session {sub.session_id} ended without Completed")
                        if on_event is not None:
                            on_event(sub, event)
                        kind = type(event)
                        if kind is ev.ReadyForContinue or kind is ev.Paused:
                            sub.send_continue(Continue(advance_count=count))
                        elif kind is ev.Completed:
                            with lock:
                                result.completed[sub.session_id] = event  # type: ignore[assignment]
                            return True
                        # what is queued may be only a marker (a SlotMark, a barrier's pong): next_event(0) then
                        # consumes it and raises Timeout, and the thread moves on to its other sub-sessions
                        if not queued() and not (sub._drain is not None and sub._drain_ready()):  # _has_queued
                            return False
                        timeout = 0.0
                except Timeout:
                    if timeout is None:  # pragma: no cover - next_event(None) does not time out
                        raise
                    return False  # nothing more now (the barrier or drain in progress stays for the next turn)
                except BaseException as exc:  # noqa: BLE001 - recorded, the others go on
                    failed(sub, exc)
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    return True

            turn = 0
            while active:
                progressed = False
                for sub in list(active):
                    # never blocks: waiting on one sub-session for its next event would starve the others of this
                    # thread
                    if _has_queued(sub):
                        progressed = True
                        if serve(sub, 0.0):
                            active.remove(sub)
                if not progressed and active:
                    sub = active[turn % len(active)]
                    turn += 1
                    if serve(sub, IDLE_WAIT):
                        active.remove(sub)

        if consumers is None:
            tasks = [(drive_one, sub) for sub in self._subs]
            workers = max(1, min(max_workers or len(self._subs), len(self._subs)))
        else:
            workers = max(1, min(consumers, len(self._subs)))
            tasks = [(drive_group, self._subs[i::workers]) for i in range(workers)]  # type: ignore[misc]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simclient-drive")
        try:
            pending = {pool.submit(fn, arg) for fn, arg in tasks}
            while pending:  # short waits keep the caller's thread responsive to Ctrl-C
                _, pending = wait(pending, timeout=0.2)
        except BaseException:
            self.close()
            raise
        finally:
            pool.shutdown(wait=True)
        result.failures.sort(key=lambda f: (f.range or (0, 0)))
        return result

    def close(self) -> None:
        """Idempotent: stop every subscription, close the control connection, join every thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + self._config.close_timeout
        for sub in self._subs:
            sub._route.closed = True
        for sub in self._subs:
            for s in sub._subscriptions:
                s.stop()
        self._control.close(timeout=max(0.0, deadline - time.monotonic()))
        for sub in self._subs:
            sub._close_by(deadline)  # one close_timeout for the whole run, not one per sub-session

    def __enter__(self) -> "ParallelRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParallelRun(control_session_id={self._control.control_session_id!r}, sub_sessions={len(self._subs)})"
