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
from .config import ClientConfig
from .control import ControlConnection
from .session import SubSession
from .stats import ControlStats
from .subscriptions import ReconnectCoordinator

log = logging.getLogger("simclient.parallel")


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
    """A parallel backtest (``client.start_parallel``). Context manager; ``close()`` joins everything."""

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

    def subscribe_transactions(self, program_ids: Any) -> None:
        """Subscribe every sub-session to transactions of ``program_ids``."""
        for sub in self._subs:
            sub.subscribe_transactions(program_ids)

    def subscribe_account_diffs(self, program_ids: Any) -> None:
        for sub in self._subs:
            sub.subscribe_account_diffs(program_ids)

    def drive(self, on_event: Optional[Callable[[SubSession, ev.Event], Any]] = None,
              advance_count: Optional[int] = None, max_workers: Optional[int] = None) -> ParallelResult:
        """Drive every sub-session to completion on a thread pool (one worker per sub-session unless
        ``max_workers`` bounds it). ``on_event(sub, event)`` runs on worker threads. A failing sub-session is
        recorded as a :class:`Failure`; the others go on."""
        result = ParallelResult()
        lock = threading.Lock()

        def drive_one(sub: SubSession) -> None:
            try:
                handler = (lambda e: on_event(sub, e)) if on_event is not None else None
                completed = sub.run(advance_count=advance_count, on_event=handler)
                with lock:
                    result.completed[sub.session_id] = completed
            except BaseException as exc:  # noqa: BLE001 - recorded, the others go on
                log.warning("sub-session %s %s failed: %s", sub.session_id, sub._route.range, exc)
                with lock:
                    result.failures.append(Failure(sub._route.range, sub.session_id, error_chain(exc)))
                if isinstance(exc, KeyboardInterrupt):
                    raise

        workers = max(1, min(max_workers or len(self._subs), len(self._subs)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simclient-drive")
        try:
            pending = {pool.submit(drive_one, sub) for sub in self._subs}
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
        self._control.close(timeout=max(0.1, deadline - time.monotonic()))
        for sub in self._subs:
            sub.close()

    def __enter__(self) -> "ParallelRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParallelRun(control_session_id={self._control.control_session_id!r}, sub_sessions={len(self._subs)})"
