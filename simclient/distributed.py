"""Fan a long backtest out over an executor: slices of the slot range, each run in a worker, gathered in one result.

One simclient process drives one control socket and shares one interpreter lock with every event handler. When
the handler is real Python work, or the range is longer than one create covers, split the range into
:class:`Slice` s and let an engine the user already runs schedule them::

    from concurrent.futures import ProcessPoolExecutor
    from simclient.distributed import plan_slices, run_distributed

    slices = plan_slices(start, end, slice_slots=5_000)
    with ProcessPoolExecutor(2) as pool:
        result = run_distributed(pool, slices, url=url, api_key=key, transaction_programs=[prog],
                                 output_dir="runs/", handler_factory=MyStrategy)
    result.merge_run_files("run.json")          # one `sim run`-shaped file, in slot order, streamed

Any object with the ``concurrent.futures`` ``submit() -> Future`` interface works: ``ProcessPoolExecutor``
on one machine, ``dask.distributed.Client`` across machines (nothing here imports Dask). Each slice is its own
session (``parallel=False``) or parallel run (``parallel=True``) in its worker, with the user's handler running
there. A slice that fails (its session failed, or its worker died) is recorded as that slice's failure; the
others are unaffected, and :func:`retry_failed` re-runs just the failed ones.

What crosses the process boundary is a :class:`SliceJob` (picklable: plain data plus the handler factory, which
must be importable by the worker, i.e. defined at module level). The API key travels inside it to the worker and
is never part of its ``repr``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import events as ev
from .config import ClientConfig

log = logging.getLogger("simclient.distributed")

__all__ = ["Slice", "SliceJob", "SliceResult", "DistributedResult", "plan_slices", "run_slice", "run_distributed",
           "retry_failed", "merge_run_files"]

#: ``handler_factory(slice)`` is called once in the worker; the returned callable sees every event of the slice.
#: If it has a ``result()`` method, its return value (picklable) comes back as :attr:`SliceResult.value`.
HandlerFactory = Callable[["Slice"], Callable[[ev.Event], Any]]


@dataclass(frozen=True)
class Slice:
    """Slots ``start_slot..end_slot`` (inclusive), the ``index``-th slice of a plan (slot order)."""

    index: int
    start_slot: int
    end_slot: int

    @property
    def slots(self) -> int:
        return self.end_slot - self.start_slot + 1


def plan_slices(start_slot: int, end_slot: int, *, slice_slots: Optional[int] = None,
                boundaries: Iterable[Any] = ()) -> List[Slice]:
    """Cut ``start_slot..end_slot`` into slices.

    ``boundaries``: ranges the server serves in one piece (``client.available_ranges()``, or ``(start, end)``
    tuples such as bundle boundaries); a slice never spans two of them, and slots outside every given range are
    left out. ``slice_slots`` then caps each slice's length. With neither, the whole range is one slice.
    """
    if end_slot < start_slot:
        raise ValueError(f"end_slot ({end_slot}) is before start_slot ({start_slot})")
    if slice_slots is not None and slice_slots < 1:
        raise ValueError(f"slice_slots must be >= 1, got {slice_slots}")
    pieces: List[Tuple[int, int]] = []
    given = [_as_range(b) for b in boundaries]
    if given:
        for lo, hi in sorted(given):
            lo, hi = max(lo, start_slot), min(hi, end_slot)
            if lo <= hi and (not pieces or lo > pieces[-1][1]):
                pieces.append((lo, hi))
            elif lo <= hi and hi > pieces[-1][1]:  # overlapping ranges: keep the part not covered yet
                pieces.append((pieces[-1][1] + 1, hi))
    else:
        pieces.append((start_slot, end_slot))
    out: List[Slice] = []
    for lo, hi in pieces:
        step = slice_slots or (hi - lo + 1)
        for s in range(lo, hi + 1, step):
            out.append(Slice(len(out), s, min(hi, s + step - 1)))
    if not out:
        raise ValueError(f"no slot of {start_slot}..{end_slot} lies inside the given boundaries")
    return out


def _as_range(b: Any) -> Tuple[int, int]:
    if isinstance(b, (tuple, list)) and len(b) == 2:
        return int(b[0]), int(b[1])
    start = getattr(b, "bundle_start_slot", None)
    end = getattr(b, "bundle_end_slot", None)
    if start is None or end is None:
        raise TypeError(f"a boundary must be (start, end) or an AvailableRange, got {b!r}")
    return int(start), int(end)


@dataclass(frozen=True)
class SliceJob:
    """Everything a worker needs to run one slice. Picklable; the key is kept out of ``repr``."""

    slice: Slice
    url: Optional[str] = None
    api_key: Optional[str] = field(default=None, repr=False)
    parallel: bool = False
    transaction_programs: Tuple[str, ...] = ()
    account_diff_programs: Tuple[str, ...] = ()
    advance_count: Optional[int] = None
    output_dir: Optional[str] = None
    handler_factory: Optional[HandlerFactory] = None
    config: Optional[ClientConfig] = None
    create_options: Dict[str, Any] = field(default_factory=dict)  # other CreateSession keyword arguments
    #: 0 for the first run, +1 per retry. Part of the job's identity, so an executor that caches results by
    #: argument (Dask's ``pure`` submit) runs a retry instead of answering with the failed attempt.
    attempt: int = 0
    #: When set, the worker keeps ``{"slot": last slot seen, "transactions": n}`` in this file (replaced about
    #: twice a second), for a progress display on the same machine (the CLI's ``--workers``).
    progress_file: Optional[str] = None

    @property
    def run_file(self) -> Optional[str]:
        if self.output_dir is None:
            return None
        return os.path.join(self.output_dir, f"slice-{self.slice.index:05d}-{self.slice.start_slot}"
                                             f"-{self.slice.end_slot}.json")


@dataclass
class SliceResult:
    """What one slice's worker returned (or what its failure was)."""

    slice: Slice
    ok: bool
    run_file: Optional[str] = None
    transactions: int = 0
    account_diffs: int = 0
    sessions: int = 0
    failures: List[str] = field(default_factory=list)  # one line per failed (sub-)session, or the worker's error
    value: Any = None
    elapsed: float = 0.0


@dataclass
class DistributedResult:
    """All slices' results in slot order. ``ok`` when every slice completed."""

    slices: List[SliceResult]
    jobs: List[SliceJob] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.slices)

    @property
    def failed(self) -> List[SliceResult]:
        return [r for r in self.slices if not r.ok]

    @property
    def run_files(self) -> List[str]:
        return [r.run_file for r in self.slices if r.run_file is not None]

    def merge_run_files(self, path: str) -> str:
        """Concatenate the slices' run files into one ``sim run``-shaped file (see :func:`merge_run_files`)."""
        missing = [r.slice for r in self.slices if r.run_file is None]
        if missing:
            raise ValueError(f"slices without a run file (run with output_dir=...): {missing}")
        return merge_run_files(self.run_files, path)


# ------------------------------------------------------------------------------------------ the worker side


def run_slice(job: SliceJob) -> SliceResult:
    """Run one slice to the end in this process; write its run file when ``job.output_dir`` is set.

    Session failures are recorded in the result, not raised (the executor's own errors — a killed worker — are
    what the caller sees as an exception)."""
    from .builders import CreateSession
    from .client import Client
    from .parallel import error_chain
    from .runfile import RunRecorder, write_run

    started = time.monotonic()
    sl = job.slice
    programs = sorted(set(job.transaction_programs) | set(job.account_diff_programs))
    recorder = RunRecorder(sl.start_slot, sl.end_slot, programs,
                           {"slice": sl.index, "parallel": job.parallel,
                            "subscriptions": (["transactions"] if job.transaction_programs else [])
                            + (["account-diff"] if job.account_diff_programs else [])})
    handler = job.handler_factory(sl) if job.handler_factory is not None else None
    failures: List[str] = []
    client = Client(job.url, job.api_key, job.config)
    create = CreateSession(start_slot=sl.start_slot, end_slot=sl.end_slot, **job.create_options)

    progress = _ProgressWriter(job.progress_file)

    def on_event(event: ev.Event) -> None:
        recorder.add_event(event)
        progress.on_event(event)
        if handler is not None:
            handler(event)

    def subscribe(target: Any) -> None:
        if job.transaction_programs:
            target.subscribe_transactions(list(job.transaction_programs))
        if job.account_diff_programs:
            target.subscribe_account_diffs(list(job.account_diff_programs))

    sessions = 0
    try:
        if job.parallel:
            with client.start_parallel(create) as run:
                for sub in run.sub_sessions:
                    recorder.add_session(sub.session_id, *sub.range)
                    subscribe(sub)
                sessions = len(run.sub_sessions)
                res = run.drive(on_event=lambda sub, e: on_event(e), advance_count=job.advance_count)
                for sid in res.completed:
                    recorder.mark_completed(sid)
                for f in res.failures:
                    recorder.add_failure(f.session_id, f.range, f.reason)
                    failures.append(f"{f.session_id}: {f.reason}")
        else:
            with client.start_session(create) as session:
                sessions = 1
                recorder.add_session(session.session_id, *session.range)
                subscribe(session)
                try:
                    session.run(advance_count=job.advance_count, on_event=on_event)
                    recorder.mark_completed(session.session_id)
                except Exception as exc:  # noqa: BLE001 - recorded as this slice's failure
                    reason = error_chain(exc)
                    recorder.add_failure(session.session_id, session.range, reason)
                    failures.append(f"{session.session_id}: {reason}")
    except Exception as exc:  # noqa: BLE001 - the create itself failed
        from .parallel import error_chain as chain

        failures.append(chain(exc))
    progress.write(force=True)
    doc = recorder.document(complete=not failures)
    if job.run_file is not None:
        os.makedirs(os.path.dirname(job.run_file) or ".", exist_ok=True)
        write_run(job.run_file, doc)
    value = None
    result_fn = getattr(handler, "result", None)
    if callable(result_fn):
        value = result_fn()
    return SliceResult(slice=sl, ok=not failures, run_file=job.run_file, transactions=doc["summary"]["total"],
                       account_diffs=recorder.diff_count, sessions=sessions, failures=failures, value=value,
                       elapsed=time.monotonic() - started)


class _ProgressWriter:
    """Worker side of the file-based progress channel (see :attr:`SliceJob.progress_file`)."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.slot: Optional[int] = None
        self.transactions = 0
        self._next = 0.0

    def on_event(self, event: ev.Event) -> None:
        if self.path is None:
            return
        kind = type(event)
        if kind is ev.Transaction:
            self.transactions += 1
        elif kind is ev.Slot:
            self.slot = event.slot  # type: ignore[attr-defined]
            self.write()

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.path is None or (not force and now < self._next):
            return
        self._next = now + 0.5
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"slot": self.slot, "transactions": self.transactions}, fh)
            os.replace(tmp, self.path)
        except OSError:  # progress is best effort; the run is not
            log.debug("could not write progress file %s", self.path, exc_info=True)


def read_progress(path: str) -> Optional[Dict[str, Any]]:
    """The last progress a worker wrote to ``path`` (None before the first write)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ the caller side


def run_distributed(executor: Any, slices: Sequence[Slice], *, url: Optional[str] = None,
                    api_key: Optional[str] = None, parallel: bool = False,
                    transaction_programs: Sequence[str] = (), account_diff_programs: Sequence[str] = (),
                    advance_count: Optional[int] = None, output_dir: Optional[str] = None,
                    handler_factory: Optional[HandlerFactory] = None, config: Optional[ClientConfig] = None,
                    create_options: Optional[Dict[str, Any]] = None,
                    on_slice_done: Optional[Callable[[SliceResult], Any]] = None,
                    progress_dir: Optional[str] = None) -> DistributedResult:
    """Run every slice on ``executor`` (anything with ``submit(fn, arg) -> Future``); return when all are done.

    ``url``/``api_key`` default like :class:`simclient.Client` (``SIMULATOR_URL``/``SIMULATOR_API_KEY``), resolved
    here so that workers on other machines need no environment of their own. ``on_slice_done`` is called in this
    process as each slice finishes; with ``progress_dir`` each worker also keeps a progress file there
    (``slice-<index>.progress``, read with :func:`read_progress`)."""
    jobs = [SliceJob(slice=s, url=url or os.environ.get("SIMULATOR_URL"),
                     api_key=api_key if api_key is not None else os.environ.get("SIMULATOR_API_KEY"),
                     parallel=parallel, transaction_programs=tuple(str(p) for p in transaction_programs),
                     account_diff_programs=tuple(str(p) for p in account_diff_programs),
                     advance_count=advance_count, output_dir=None if output_dir is None else os.path.abspath(output_dir),
                     handler_factory=handler_factory, config=config, create_options=dict(create_options or {}),
                     progress_file=None if progress_dir is None else
                     os.path.join(os.path.abspath(progress_dir), f"slice-{s.index}.progress"))
            for s in slices]
    return _submit_all(executor, jobs, on_slice_done)


def retry_failed(executor: Any, result: DistributedResult,
                 on_slice_done: Optional[Callable[[SliceResult], Any]] = None) -> DistributedResult:
    """Run the failed slices of ``result`` again (same jobs); the completed ones are kept as they are."""
    failed = {r.slice.index for r in result.failed}
    jobs = [replace(j, attempt=j.attempt + 1) if j.slice.index in failed else j for j in result.jobs]
    again = _submit_all(executor, [j for j in jobs if j.slice.index in failed], on_slice_done)
    by_index = {r.slice.index: r for r in result.slices}
    by_index.update({r.slice.index: r for r in again.slices})
    return DistributedResult(slices=[by_index[i] for i in sorted(by_index)], jobs=jobs)


def _submit_all(executor: Any, jobs: List[SliceJob],
                on_slice_done: Optional[Callable[[SliceResult], Any]]) -> DistributedResult:
    futures = [(job, executor.submit(run_slice, job)) for job in jobs]
    results: List[SliceResult] = []
    for job, fut in futures:
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker (BrokenProcessPool, dask KilledWorker), ...
            log.warning("slice %d (%d..%d) failed in its worker: %s", job.slice.index, job.slice.start_slot,
                        job.slice.end_slot, exc)
            res = SliceResult(slice=job.slice, ok=False, run_file=None,
                              failures=[f"worker failed: {type(exc).__name__}: {exc}"])
        results.append(res)
        if on_slice_done is not None:
            on_slice_done(res)
    results.sort(key=lambda r: r.slice.index)
    return DistributedResult(slices=results, jobs=sorted(jobs, key=lambda j: j.slice.index))


# ------------------------------------------------------------------------------------------ merging run files


def merge_run_files(paths: Sequence[str], out_path: str) -> str:
    """Concatenate run files (in the order given: slot order) into one ``sim run``-shaped file at ``out_path``.

    Streamed: one input file is in memory at a time (a slice's worth), the output is written as it goes into a
    temp file beside ``out_path`` and renamed. ``metadata`` comes last (only then is it known): start/end are the
    outer bounds, ``complete`` is true only when every input was complete, sessions and failures are
    concatenated, ``slices`` lists each input's range."""
    if not paths:
        raise ValueError("merge_run_files: no run files given")
    from .runfile import atomic_text_file

    summary = {"total": 0, "successes": 0, "failures": 0}
    meta: Dict[str, Any] = {}
    unattributed: List[Any] = []
    with atomic_text_file(out_path, prefix=".simclient-merge-") as out:
        out.write('{"transactions":[')
        first = True
        for p in paths:
            with open(p, encoding="utf-8") as fh:
                doc = json.load(fh)
            for record in doc.get("transactions", []):
                if not first:
                    out.write(",")
                out.write(json.dumps(record, separators=(",", ":")))
                first = False
            for k in summary:
                summary[k] += int(doc.get("summary", {}).get(k, 0))
            unattributed.extend(doc.get("unattributed_account_diffs", []))
            _merge_metadata(meta, doc.get("metadata", {}), p)
        out.write('],"summary":')
        out.write(json.dumps(summary))
        if unattributed:
            out.write(',"unattributed_account_diffs":')
            out.write(json.dumps(unattributed, separators=(",", ":")))
        out.write(',"metadata":')
        out.write(json.dumps(meta, separators=(",", ":")))
        out.write("}")
    return out_path


def _merge_metadata(meta: Dict[str, Any], part: Dict[str, Any], path: str) -> None:
    if not meta:
        meta.update({k: v for k, v in part.items() if k not in ("slice",)})
        meta["complete"] = bool(part.get("complete"))
        meta["session_ids"] = list(part.get("session_ids", []))
        meta["sessions"] = list(part.get("sessions", []))
        meta["failures"] = list(part.get("failures", []))
        meta["slices"] = []
    else:
        starts = [x for x in (meta.get("start_slot"), part.get("start_slot")) if x is not None]
        ends = [x for x in (meta.get("end_slot"), part.get("end_slot")) if x is not None]
        meta["start_slot"] = min(starts) if starts else None
        meta["end_slot"] = max(ends) if ends else None
        meta["complete"] = bool(meta["complete"]) and bool(part.get("complete"))
        meta["session_ids"].extend(part.get("session_ids", []))
        meta["sessions"].extend(part.get("sessions", []))
        meta["failures"].extend(part.get("failures", []))
        meta["interrupted"] = bool(meta.get("interrupted")) or bool(part.get("interrupted"))
    meta["slices"].append({"start_slot": part.get("start_slot"), "end_slot": part.get("end_slot"),
                           "complete": bool(part.get("complete")), "file": os.path.basename(path)})


def jobs_with(result: DistributedResult, **changes: Any) -> List[SliceJob]:
    """The jobs of ``result`` with fields replaced (e.g. a new ``url``), for a retry elsewhere."""
    return [replace(j, **changes) for j in result.jobs]
