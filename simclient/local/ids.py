"""Session ids in the hosted service's form (PROTOCOL §4 notes): ``backtest_<uuid v7>`` and ``parallel_<uuid v7>``.

UUID v7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by creation time and never repeat
across restarts of the simulator. Determinism belongs to the chain, not to the ids: a stale client must never
re-attach to a new session that happens to reuse the previous run's id.
"""
from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7", "new_session_id", "PREFIXES"]

#: Id prefix per kind (``session``: a single session or a parallel sub-session; ``control``: a parallel batch).
PREFIXES = {"session": "backtest_", "control": "parallel_"}

_lock = threading.Lock()
_last = [0, 0]  # [unix ms, 12-bit sequence]: ids made within one millisecond still increase


def uuid7() -> uuid.UUID:
    """A fresh UUID version 7 (monotonic within this process)."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            seq = _last[1] + 1
            if seq > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, seq = ms + 1, 0
        else:
            seq = int.from_bytes(os.urandom(2), "big") & 0x7FF  # random start, room to count up
        _last[0], _last[1] = ms, seq
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_session_id(kind: str) -> str:
    """``backtest_<uuid7>`` for ``kind="session"``, ``parallel_<uuid7>`` for ``kind="control"``."""
    return PREFIXES[kind] + str(uuid7())
