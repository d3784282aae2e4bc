"""The streamed run writer: ``simclient run`` writes the run file while the run goes on, in bounded memory.

:class:`StreamingRunRecorder` takes the same events as :class:`simclient.runfile.RunRecorder` and produces the same
records (same join of account diffs to transactions by signature, same order: by slot, then transactions by
arrival, then diff-only records by first diff arrival), but keeps only a window in memory: a record is final, and
handed to the :class:`RunSink`, once its slot can no longer receive anything, i.e. once every subscription of its
(sub-)session has moved past the slot (``Session.delivered_through``) or the (sub-)session ended.

:class:`JsonRunSink` writes the ``sim run`` JSON shape. The top-level keys come as ``transactions``,
``unattributed_account_diffs`` (only when there are some), ``summary``, ``metadata``: ``metadata`` is last because
only then is it known; a JSON reader cannot tell the difference. A single session streams straight into a temp file
in the target's directory; a parallel run keeps one spool file per sub-session there and concatenates them in range
order at the end (disk to disk). :meth:`JsonRunSink.finish` closes the document and renames it over the target,
with the target's mode kept, so a reader never sees half a file, also after Ctrl-C.

After Ctrl-C (``finish(..., interrupted=True)``) the records still in the window are dropped, not written: they may
lack diffs that had not arrived yet, and a partial file only holds records equal to the full run's.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections import Counter
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from . import events as ev
from .runfile import _RunBook, _SessionInfo, check_output_path, run_metadata, target_mode, transaction_record

try:  # Protocol is 3.8+; keep the import cheap and optional for type checkers only
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment]

log = logging.getLogger("simclient.runwriter")

__all__ = ["RunSink", "JsonRunSink", "StreamingRunRecorder"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_SPOOL_BUFFER = 64 << 10


class RunSink(Protocol):
    """Where the streamed writer puts finished records. Plug in another format (e.g. a Parquet sink for
    ``simclient export``, issue 14) by implementing these five methods.

    Calls are made under the recorder's lock, so a sink need not be thread-safe. For one ``session_id`` records
    come in their final order; records of different (sub-)sessions interleave, and the sink orders the sessions by
    range (their ranges are disjoint) when it writes the result. :meth:`finish` or :meth:`abort` is the last call.
    """

    def add_session(self, session_id: str, start_slot: int, end_slot: int) -> None:
        """A (sub-)session whose records will follow."""

    def add_transaction_record(self, session_id: str, record: Dict[str, Any]) -> None:
        """One final ``transactions[]`` entry (the sink may keep a reference only until it returns)."""

    def add_unattributed_diff(self, entry: Dict[str, Any]) -> None:
        """An account diff without a signature (``unattributed_account_diffs[]``), in arrival order."""

    def finish(self, metadata: Dict[str, Any], summary: Dict[str, int]) -> None:
        """Close the output: everything added so far plus ``summary`` and ``metadata``."""

    def abort(self) -> None:
        """Nothing is to be written: remove temp files."""


class JsonRunSink:
    """Writes the run JSON (see the module docstring). ``path`` ``"-"``: stdout, spooled in a temp directory.

    ``parallel`` False: the first session is streamed straight into the file (no copy at the end); sessions added
    after it must have later ranges. True: every session has its own spool, put in range order at the end.

    The constructor checks the output location (:func:`simclient.runfile.check_output_path`) and creates the temp
    file, so an unusable path fails before the run starts."""

    def __init__(self, path: str, parallel: bool = False, buffer_size: int = 1 << 20):
        self.path = path
        self.parallel = parallel
        self._buffer = buffer_size
        directory = check_output_path(path)
        self._tmpdir: Optional[str] = None
        if path == "-":
            self._tmpdir = directory = tempfile.mkdtemp(prefix="simclient-run-")
        self._dir = directory
        self._mode = 0 if path == "-" else target_mode(path)
        self._main, self._main_path = self._open(".json.tmp")
        self._main.write('{"transactions":[')
        self._sessions: Dict[str, Tuple[int, int]] = {}
        self._spools: Dict[str, Tuple[IO[str], str]] = {}
        self._counts: Dict[str, int] = {}
        self._direct: Optional[str] = None  # the session written straight into the main file (single mode)
        self._unattributed: Optional[Tuple[IO[str], str]] = None
        self._unattributed_count = 0
        self._done = False

    def _open(self, suffix: str, buffering: int = 0) -> Tuple[IO[str], str]:
        fd, name = tempfile.mkstemp(prefix=".simclient-run-", suffix=suffix, dir=self._dir)
        return os.fdopen(fd, "w+", encoding="utf-8", buffering=buffering or self._buffer), name

    def add_session(self, session_id: str, start_slot: int, end_slot: int) -> None:
        if session_id in self._sessions:
            return
        self._sessions[session_id] = (start_slot, end_slot)
        self._counts[session_id] = 0
        if not self.parallel and self._direct is None:
            self._direct = session_id
            self._spools[session_id] = (self._main, self._main_path)
        else:
            # a parallel run may have hundreds of sub-sessions: small buffers (1 MiB each would add up)
            self._spools[session_id] = self._open(".spool", _SPOOL_BUFFER)

    def add_transaction_record(self, session_id: str, record: Dict[str, Any]) -> None:
        fh = self._spools[session_id][0]
        if self._counts[session_id]:
            fh.write(",")
        fh.write(_dumps(record))
        self._counts[session_id] += 1

    def add_unattributed_diff(self, entry: Dict[str, Any]) -> None:
        if self._unattributed is None:
            self._unattributed = self._open(".spool")
        fh = self._unattributed[0]
        if self._unattributed_count:
            fh.write(",")
        fh.write(_dumps(entry))
        self._unattributed_count += 1

    def finish(self, metadata: Dict[str, Any], summary: Dict[str, int]) -> None:
        out = self._main
        try:
            written = self._counts.get(self._direct, 0) if self._direct else 0
            order = sorted((s for s in self._sessions if s != self._direct), key=lambda s: (self._sessions[s], s))
            for sid in order:  # parallel: spools in range order, disk to disk
                fh, _ = self._spools[sid]
                if not self._counts[sid]:
                    continue
                if written:
                    out.write(",")
                fh.flush()
                fh.seek(0)
                shutil.copyfileobj(fh, out, 1 << 20)
                written += self._counts[sid]
            out.write("]")
            if self._unattributed is not None:
                fh = self._unattributed[0]
                out.write(',"unattributed_account_diffs":[')
                fh.flush()
                fh.seek(0)
                shutil.copyfileobj(fh, out, 1 << 20)
                out.write("]")
            out.write(',"summary":' + _dumps(summary) + ',"metadata":' + _dumps(metadata) + "}\n")
            out.flush()
            if self.path == "-":
                out.seek(0)
                shutil.copyfileobj(out, sys.stdout, 1 << 20)
                sys.stdout.flush()
            else:
                os.chmod(self._main_path, self._mode)
                os.replace(self._main_path, self.path)
        finally:
            self._cleanup(keep_main=self.path != "-")

    def abort(self) -> None:
        self._cleanup(keep_main=False)

    def _cleanup(self, keep_main: bool) -> None:
        if self._done:
            return
        self._done = True
        files = [v for k, v in self._spools.items() if k != self._direct]
        if self._unattributed is not None:
            files.append(self._unattributed)
        files.append((self._main, self._main_path))
        for fh, name in files:
            try:
                fh.close()
            except OSError:
                pass
            if keep_main and name == self._main_path:
                continue
            try:
                os.unlink(name)
            except OSError:
                pass
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


class _Window:
    """The records of one (sub-)session that are not final yet."""

    __slots__ = ("records", "order", "by_slot", "through", "ended")

    def __init__(self, start_slot: int) -> None:
        self.records: Dict[str, Dict[str, Any]] = {}
        self.order: Dict[str, Tuple[int, int]] = {}
        self.by_slot: Dict[int, List[str]] = {}
        self.through = start_slot - 1  # everything at or below this slot was handed to the sink
        self.ended = False


class StreamingRunRecorder(_RunBook):
    """Joins Transaction / AccountDiff events per (sub-)session and streams final records to ``sink``.

    Thread-safe (``ParallelRun.drive`` feeds it from worker threads). The caller tells it how far each session's
    stream is final with :meth:`advance` (``Session.delivered_through``) and when a session ended with
    :meth:`end_session`; :meth:`finish` writes the rest. ``sink`` None: count only (``simclient run`` without
    ``-o``). ``joins_diffs`` False: nothing can be joined to a transaction, so its record is written on arrival."""

    def __init__(self, start_slot: int, end_slot: int, program_ids: Sequence[str] = (),
                 extra_metadata: Optional[Dict[str, Any]] = None, sink: Optional[RunSink] = None,
                 joins_diffs: bool = True):
        super().__init__(start_slot, end_slot, program_ids, extra_metadata)
        self.joins_diffs = joins_diffs  # False (no diff subscription): a transaction's record is final at once
        self.sink = sink
        self._windows: Dict[str, _Window] = {}
        self._arrivals = 0
        self._closed = False
        self.total = self.successes = self.failures = 0
        self.diff_count = 0           # account diffs received
        self.attributed_diffs = 0     # account diffs in written records
        self.programs: Counter[str] = Counter()
        self.late_events = 0          # events for a slot already written (a server breaking slot order)
        self.pending_dropped = 0      # records still in a window at an interrupt

    # --------------------------------------------------------------------------- sessions
    def add_session(self, session_id: str, start_slot: int, end_slot: int) -> None:
        with self._lock:
            if session_id in self._sessions:
                return
            self._sessions[session_id] = _SessionInfo(session_id, start_slot, end_slot)
            self._windows[session_id] = _Window(start_slot)
            if self.sink is not None:
                self.sink.add_session(session_id, start_slot, end_slot)

    # --------------------------------------------------------------------------- events
    def add_event(self, session_id: str, event: ev.Event) -> None:
        """Record a Transaction, AccountDiff or Logs of ``session_id`` (other events are ignored)."""
        kind = type(event)
        if kind is ev.Transaction:
            self.add_transaction(session_id, event)  # type: ignore[arg-type]
        elif kind is ev.AccountDiff:
            self.add_account_diff(session_id, event)  # type: ignore[arg-type]
        elif kind is ev.Logs:
            self.add_logs(session_id, event)  # type: ignore[arg-type]

    def _late(self, session_id: str, event: Any) -> None:
        self.late_events += 1
        if self.late_events == 1:
            log.warning("session %s: %s for slot %s arrived after that slot was written; dropped (the server broke "
                        "slot order)", session_id, type(event).__name__, event.slot)

    def add_transaction(self, session_id: str, event: ev.Transaction) -> None:
        record = transaction_record(event.value, event.slot, event.signature)
        with self._lock:
            w = self._windows.get(session_id)
            if w is None or self._closed:
                return
            if record["slot"] <= w.through or w.ended:
                self._late(session_id, event)
                return
            self._arrivals += 1
            sig = event.signature
            if not self.joins_diffs:
                self._write(session_id, record)
                return
            existing = w.records.get(sig)
            if existing is not None:  # a diff arrived first (or a repeat): keep its diffs
                record["account_diffs"] = existing["account_diffs"]
            if existing is None or existing["slot"] != record["slot"]:
                w.by_slot.setdefault(record["slot"], []).append(sig)
            w.records[sig] = record
            w.order[sig] = (0, self._arrivals)

    def add_account_diff(self, session_id: str, event: ev.AccountDiff) -> None:
        entry = {"before": event.pre, "after": event.post}
        with self._lock:
            w = self._windows.get(session_id)
            if w is None or self._closed:
                return
            self.diff_count += 1
            if event.signature is None:
                if self.sink is not None:
                    self.sink.add_unattributed_diff({"slot": event.slot, "account": event.account, **entry})
                return
            if event.slot <= w.through or w.ended:
                self._late(session_id, event)
                return
            self._arrivals += 1
            record = w.records.get(event.signature)
            if record is None:
                w.order[event.signature] = (1, self._arrivals)
                record = {"slot": event.slot, "signature": event.signature, "success": None, "error": None,
                          "logs": [], "sol_changes": {}, "token_changes": {}, "account_diffs": {}, "programs": []}
                w.records[event.signature] = record
                w.by_slot.setdefault(event.slot, []).append(event.signature)
            record["account_diffs"][event.account] = entry

    def add_logs(self, session_id: str, event: ev.Logs) -> None:
        """A ``logsSubscribe`` event: fills ``success`` / ``error`` / ``logs`` of a record that has none yet (a
        diff-only one), or makes a record of its own (a transaction not subscribed to, ordered last in its slot, by
        signature); a record built from the
        transaction already carries the same logs. Needs the join (``joins_diffs`` True): a second Logs of the same
        transaction (it mentions two subscribed programs) finds the record."""
        with self._lock:
            w = self._windows.get(session_id)
            if w is None or self._closed:
                return
            if event.slot <= w.through or w.ended:
                self._late(session_id, event)
                return
            record = w.records.get(event.signature)
            if record is None:
                # a logs notification has no position in its block and the streams of different addresses
                # interleave: such records come last in their slot, by signature, so that a run file is reproducible
                w.order[event.signature] = (2, event.signature)  # type: ignore[assignment]
                record = {"slot": event.slot, "signature": event.signature, "success": None, "error": None,
                          "logs": [], "sol_changes": {}, "token_changes": {}, "account_diffs": {}, "programs": []}
                w.records[event.signature] = record
                w.by_slot.setdefault(event.slot, []).append(event.signature)
            if record["success"] is None:
                record["success"] = event.err is None
                record["error"] = event.err
                record["logs"] = list(event.logs)

    # --------------------------------------------------------------------------- finalising
    def advance(self, session_id: str, through: int) -> None:
        """Every record of ``session_id`` at a slot <= ``through`` is final: write them."""
        with self._lock:
            w = self._windows.get(session_id)
            if w is None or self._closed or through <= w.through:
                return
            self._flush(session_id, w, through)

    def end_session(self, session_id: str) -> None:
        """``session_id`` ended (completed or failed): write all it has."""
        with self._lock:
            w = self._windows.get(session_id)
            if w is None or self._closed:
                return
            self._flush(session_id, w, None)
            w.ended = True

    def _write(self, session_id: str, record: Dict[str, Any]) -> None:
        self.total += 1
        if record["success"] is True:
            self.successes += 1
        elif record["success"] is False:
            self.failures += 1
        self.attributed_diffs += len(record["account_diffs"])
        for p in record["programs"]:
            self.programs[p] += 1
        if self.sink is not None:
            self.sink.add_transaction_record(session_id, record)

    def _flush(self, session_id: str, w: _Window, through: Optional[int]) -> None:
        slots = sorted(s for s in w.by_slot if through is None or s <= through)
        records, order = w.records, w.order
        for slot in slots:
            sigs = [s for s in dict.fromkeys(w.by_slot.pop(slot)) if s in records and records[s]["slot"] == slot]
            sigs.sort(key=order.__getitem__)
            for sig in sigs:
                del order[sig]
                self._write(session_id, records.pop(sig))
        if through is not None:
            w.through = max(w.through, through)
        elif slots:
            w.through = max(w.through, slots[-1])

    @property
    def pending(self) -> int:
        """Records held in the windows (not final yet)."""
        with self._lock:
            return sum(len(w.records) for w in self._windows.values())

    @property
    def summary(self) -> Dict[str, int]:
        return {"total": self.total, "successes": self.successes, "failures": self.failures}

    def finish(self, complete: bool, interrupted: bool = False, extra: Optional[Dict[str, Any]] = None,
               write: bool = True) -> Tuple[Dict[str, Any], Dict[str, int]]:
        """Close the recorder: write what is final (after an interrupt) or everything (otherwise), hand the sink
        ``summary`` and ``metadata`` (``write`` False: abort the sink instead). Events after this are ignored."""
        with self._lock:
            self._closed = True
            for sid, w in self._windows.items():
                if interrupted:
                    self.pending_dropped += len(w.records)
                    w.records.clear()
                    w.order.clear()
                    w.by_slot.clear()
                else:
                    self._flush(sid, w, None)
            sessions = sorted(self._sessions.values(), key=lambda s: (s.start_slot, s.session_id))
            extra_meta = dict(self.extra_metadata)
            extra_meta.update(extra or {})
            if self.late_events:  # the file lacks events the stream delivered: never call it complete
                extra_meta["late_events_dropped"] = self.late_events
            metadata = run_metadata(self.start_slot, self.end_slot, self.program_ids, sessions, self._failures,
                                    complete and not self.late_events, interrupted, extra_meta)
            summary = self.summary
            if self.sink is not None:
                if write:
                    self.sink.finish(metadata, summary)
                else:
                    self.sink.abort()
        return metadata, summary
