"""Handlers for the scale-out tests: module level, so worker processes can import them by reference."""
from __future__ import annotations

import os
import signal
from typing import Any, Dict

from simclient import events as ev


class CountByKind:
    """Counts events by type name; ``result()`` comes back in SliceResult.value."""

    def __init__(self, sl: Any) -> None:
        self.slice = sl
        self.counts: Dict[str, int] = {}

    def __call__(self, event: Any) -> None:
        name = type(event).__name__
        self.counts[name] = self.counts.get(name, 0) + 1

    def result(self) -> Dict[str, int]:
        return dict(self.counts)


class KillOnce:
    """Kills its own worker process (SIGKILL) at the 5th transaction of slice ``KILL_SLICE``, the first time only:
    a marker file (path in ``SIMCLIENT_TEST_KILL_MARKER``) records that the kill happened."""

    KILL_SLICE = 1

    def __init__(self, sl: Any) -> None:
        self.slice = sl
        self.seen = 0
        self.marker = os.environ["SIMCLIENT_TEST_KILL_MARKER"]

    def __call__(self, event: Any) -> None:
        if type(event) is not ev.Transaction or self.slice.index != self.KILL_SLICE:
            return
        self.seen += 1
        if self.seen == 5 and not os.path.exists(self.marker):
            with open(self.marker, "w") as fh:
                fh.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
