"""EventQueue: a (sub-)session's queue, fed one item at a time or in batches, read by one consumer thread.

Why batches (issue 17, docs/performance.md "Batched hand-off"): on the transaction stream from the replay server
the subscription reader spent about 16 us of its ~23 us per notification in ``SimpleQueue.put`` and what follows it
while the consumer was waiting: every put wakes the consumer thread, and the two threads hand the GIL back and forth
once per event. With the reader's events handed over once per socket read (a list per ``put``), the consumer
wakes once per batch. The measured saving is in docs/performance.md.

Order is the queue's order: a batch's items come out one by one, in order, before anything put after the batch.
Producers: any thread (``put``, ``put_batch``). Consumer: exactly one thread at a time (``get``, ``qsize``,
``empty``), as for the SimpleQueue it wraps.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any, Deque, List, Optional


class _Batch(list):  # type: ignore[type-arg]
    """A list of queue items put at once (its own type: no queue item is ever a plain list of this class)."""

    __slots__ = ()


class EventQueue:
    """A ``queue.SimpleQueue`` whose producers may put a whole batch of items at once (see the module docstring).

    ``get`` returns single items, as ``SimpleQueue.get`` does, and raises :class:`queue.Empty` on a timeout;
    ``qsize`` counts items, not batches (flow control compares it with an event count)."""

    __slots__ = ("_q", "_batch", "_extra", "_lock")

    def __init__(self) -> None:
        self._q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()  # C-implemented: the cheapest put/get
        self._batch: Deque[Any] = deque()  # consumer side: the rest of the batch being served
        self._extra = 0  # items queued in batches beyond one per batch (for qsize)
        self._lock = threading.Lock()  # guards _extra (one acquire per batch, not per item)

    def put(self, item: Any) -> None:
        self._q.put(item)

    def put_batch(self, items: List[Any]) -> None:
        """Queue ``items`` (in order) as one hand-off; the caller must not use the list afterwards."""
        n = len(items)
        if n == 1:
            self._q.put(items[0])
        elif n:
            with self._lock:
                self._extra += n - 1
            self._q.put(_Batch(items))

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        batch = self._batch
        if batch:
            return batch.popleft()
        item = self._q.get(block, timeout)
        if type(item) is _Batch:
            with self._lock:
                self._extra -= len(item) - 1
            batch.extend(item)
            return batch.popleft()
        return item

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        return self._q.qsize() + self._extra + len(self._batch)

    def empty(self) -> bool:
        return not self._batch and self._q.empty()
