"""The run engine behind ``simclient run`` and ``simclient.demo``: create the session(s), subscribe, drive to the
end on a worker thread, stream records into the run file (:mod:`simclient.runwriter`), handle Ctrl-C, report."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from .. import events as ev
from .._version import __version__
from ..runwriter import JsonRunSink, RunSink, StreamingRunRecorder
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConnectError, _one_line, \
    connection_reason, probe_reason
from .progress import NullRenderer, ProgressModel, _RendererLogHandler, make_renderer

log = logging.getLogger("simclient.cli")

#: After Ctrl-C: how long the run may take to close before the file is written and the process exits anyway.
INTERRUPT_CLOSE_BUDGET = 1.0

# ============================================================================================ the run engine


@dataclass
class RunOptions:
    start_slot: int
    end_slot: int
    parallel: bool = False
    program_ids: List[str] = field(default_factory=list)
    subscriptions: Tuple[str, ...] = ("transactions",)
    advance_count: Optional[int] = None
    #: ``--program-id ID --program-so FILE``: account overrides (``simclient.modify_program``) sent with the create
    #: as ``account_overrides={start_slot: ...}``, so the program runs the new code from the first slot on, in a
    #: single session and in every sub-session of a parallel run alike.
    program_overrides: Optional[Dict[str, Any]] = None


@dataclass
class RunOutcome:
    doc: Dict[str, Any]             # {"metadata", "summary"}: the records are in the file, not in memory
    exit_code: int
    interrupted: bool = False
    failures: List[Tuple[Optional[Tuple[int, int]], str, str]] = field(default_factory=list)  # (range, id, reason)
    error: Optional[str] = None
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)  # for -v tracebacks
    elapsed: float = 0.0
    sub_sessions: int = 0
    control_reconnects: int = 0
    subscription_reconnects: int = 0
    slots_announced: int = 0
    written: Optional[str] = None
    closed_cleanly: bool = True     # False: an interrupted run was still closing when the file was written
    programs: Counter[str] = field(default_factory=Counter)   # top-level program id -> transactions written
    account_diffs: int = 0          # account diffs in the written records


class RunEngine:
    """Creates the session (or parallel run), subscribes, drives it to the end on its own thread, and feeds a
    :class:`StreamingRunRecorder` and a :class:`ProgressModel`. :meth:`cancel` (from any thread) closes what is
    open. After each event the session's ``delivered_through`` tells the recorder which slots are final."""

    def __init__(self, client: Any, opts: RunOptions, recorder: StreamingRunRecorder, model: ProgressModel,
                 on_failure: Optional[Callable[[str], None]] = None):
        self.client = client
        self.opts = opts
        self.recorder = recorder
        self.model = model
        self.on_failure = on_failure
        self.done = threading.Event()
        self.created = False
        self.cancelled = False
        self.error: Optional[BaseException] = None
        self.failures: List[Tuple[Optional[Tuple[int, int]], str, str]] = []
        self.sub_sessions = 0
        self.control_reconnects = 0
        self.subscription_reconnects = 0
        self._lock = threading.Lock()
        self._open: Any = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="simclient-cli-run", daemon=True)
        self._thread.start()

    def join(self, timeout: Optional[float] = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            target = self._open
        if target is not None:
            try:
                target.close()
            except Exception:  # noqa: BLE001 - closing on the way out
                log.debug("close after cancel failed", exc_info=True)

    def _adopt(self, obj: Any) -> bool:
        """Remember what to close on cancel; False (and close it) if cancel already happened."""
        with self._lock:
            if not self.cancelled:
                self._open = obj
                return True
        obj.close()
        return False

    def _main(self) -> None:
        try:
            self._preflight()
            if self.opts.parallel:
                self._run_parallel()
            else:
                self._run_single()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            if not self.cancelled:
                self.error = exc
                log.debug("run failed", exc_info=True)
        finally:
            self.done.set()

    def _preflight(self) -> None:
        """Fail fast (exit 2) when nothing answers at the URL: session creation itself retries for minutes."""
        from ..errors import HttpStatusError

        self.model.set_phase(f"connecting to {self.client.url}")
        try:
            self.client.available_ranges()
        except HttpStatusError as exc:
            if exc.status == 0:
                reason = probe_reason(exc.url) or connection_reason(exc.body)
                raise ConnectError(f"cannot reach the simulator at {self.client.http_base} ({reason})") from None
            log.info("available-ranges check: %s (going on)", exc)
        except Exception as exc:  # noqa: BLE001 - only a reachability check
            log.info("available-ranges check: %s (going on)", exc)

    def _subscribe(self, target: Any) -> None:
        ids = self.opts.program_ids
        if "transactions" in self.opts.subscriptions:
            target.subscribe_transactions(ids)
        if "account-diff" in self.opts.subscriptions:
            target.subscribe_account_diffs(ids)
        if "logs" in self.opts.subscriptions:
            target.subscribe_logs(ids)

    def _create_request(self) -> Any:
        from ..builders import CreateSession

        overrides = self.opts.program_overrides
        return CreateSession(start_slot=self.opts.start_slot, end_slot=self.opts.end_slot,
                             account_overrides={self.opts.start_slot: overrides} if overrides else None)

    def _run_single(self) -> None:
        self.model.set_phase("creating session")
        session = self.client.start_session(self._create_request())
        self.created = True
        if not self._adopt(session):
            return
        try:
            self.sub_sessions = 1
            sid = session.session_id
            start, end = session.range
            self.recorder.add_session(sid, start, end)
            self.model.add(sid, start, end, session.stats)
            self._subscribe(session)
            advance = self.opts.advance_count or (end - start + 1)
            recorder = self.recorder
            through = start - 1
            try:
                for event in session.events():
                    self.model.on_event(sid, event)
                    recorder.add_event(sid, event)
                    now = session.delivered_through
                    if now != through:
                        through = now
                        recorder.advance(sid, now)
                    kind = type(event)
                    if kind is ev.ReadyForContinue or kind is ev.Paused:
                        session.send_continue(advance_count=advance)
                    elif kind is ev.Completed:
                        recorder.mark_completed(sid)
                        recorder.end_session(sid)
            except BaseException as exc:  # noqa: BLE001
                if self.cancelled:
                    return
                from ..parallel import error_chain

                reason = error_chain(exc)
                self.failures.append(((start, end), sid, reason))
                recorder.add_failure(sid, (start, end), reason)
                recorder.end_session(sid)
                self.model.fail(sid)
        finally:
            session.close()
            self.control_reconnects = session.stats.control_reconnects
            self.subscription_reconnects = session.stats.subscription_reconnects

    def _run_parallel(self) -> None:
        self.model.set_phase("creating parallel sessions")
        model = self.model  # "created k sub-sessions" and the server's status while the create streams
        run = self.client.start_parallel(self._create_request(), on_session_created=model.on_session_created,
                                         on_status=model.on_create_status)
        self.created = True
        if not self._adopt(run):
            return
        try:
            subs = run.sub_sessions
            self.sub_sessions = len(subs)
            for sub in subs:
                self.recorder.add_session(sub.session_id, *sub.range)
                self.model.add(sub.session_id, sub.range[0], sub.range[1], sub.stats)
            for sub in subs:
                self._subscribe(sub)

            model, recorder = self.model, self.recorder
            throughs: Dict[str, int] = {}

            def on_event(sub: Any, event: ev.Event) -> None:
                sid = sub.session_id
                model.on_event(sid, event)
                recorder.add_event(sid, event)
                now = sub.delivered_through
                if throughs.get(sid) != now:
                    throughs[sid] = now
                    recorder.advance(sid, now)
                if type(event) is ev.Completed:
                    recorder.mark_completed(sid)
                    recorder.end_session(sid)

            result = run.drive(on_event=on_event, advance_count=self.opts.advance_count)
            if self.cancelled:
                return
            seen = set()
            for f in result.failures:
                key = (f.range, f.reason)
                if key in seen:
                    continue
                seen.add(key)
                self.failures.append((f.range, f.session_id, f.reason))
                self.recorder.add_failure(f.session_id, f.range, f.reason)
                self.recorder.end_session(f.session_id)
                self.model.fail(f.session_id)
        finally:
            run.close()
            self.control_reconnects = run.reconnects
            self.subscription_reconnects = sum(s.stats.subscription_reconnects for s in run.sub_sessions)


class _Interrupt:
    """SIGINT / SIGTERM: the first sets a flag the main loop polls; a second one exits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            os._exit(EXIT_INTERRUPTED)
        self.signum = signum
        self.event.set()

    @property
    def exit_code(self) -> int:
        return 128 + signal.SIGTERM if self.signum == signal.SIGTERM else EXIT_INTERRUPTED


def execute_run(client: Any, opts: RunOptions, output_file: Optional[str] = None, progress: str = "auto",
                progress_interval: Optional[float] = None, stream: TextIO = sys.stderr,
                extra_metadata: Optional[Dict[str, Any]] = None, sink: Optional[RunSink] = None) -> RunOutcome:
    """Run ``opts`` with progress and Ctrl-C handling, stream ``output_file`` (``-``: stdout), return the outcome.

    Used by ``simclient run`` and ``simclient.demo``. On SIGINT/SIGTERM the run is closed (at most
    ``INTERRUPT_CLOSE_BUDGET`` seconds), what was final is written with ``"complete": false``, and the outcome
    says ``interrupted``; the caller exits 130. ``sink`` replaces the JSON sink of ``output_file`` (another
    format, or a test's tee). An unusable ``output_file`` raises :class:`simclient.runfile.OutputPathError` before
    anything is connected.
    """
    if sink is None and output_file:
        if output_file.lower().endswith(".parquet"):  # tables instead of JSON (issue 14), streamed the same way
            from ..results.sinks import ParquetSpoolSink

            sink = ParquetSpoolSink(output_file, parallel=opts.parallel)
        else:
            sink = JsonRunSink(output_file, parallel=opts.parallel)
    recorder = StreamingRunRecorder(
        opts.start_slot, opts.end_slot, opts.program_ids,
        {"subscriptions": list(opts.subscriptions), "parallel": opts.parallel,
         "url": client.url, "client": f"simclient-python/{__version__}", **(extra_metadata or {})}, sink,
        joins_diffs="account-diff" in opts.subscriptions or "logs" in opts.subscriptions)
    model = ProgressModel()
    model.reconnect_budget = getattr(getattr(client, "config", None), "reconnect_attempts", None)
    renderer = make_renderer(progress, model, stream, progress_interval)
    engine = RunEngine(client, opts, recorder, model)
    interrupt = _Interrupt()
    log_handler: Optional[logging.Handler] = None
    root = logging.getLogger()
    if root.handlers and not isinstance(renderer, NullRenderer):  # -v: log lines go through the renderer
        log_handler = _RendererLogHandler(renderer)
        log_handler.setFormatter(root.handlers[0].formatter)
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(log_handler)
    started = time.monotonic()
    interrupt.install()
    renderer.start()
    engine.start()
    try:
        while not engine.done.wait(0.05):
            if interrupt.event.is_set():
                break
        interrupted = interrupt.event.is_set() and not engine.done.is_set()
        if interrupted:
            closer = threading.Thread(target=engine.cancel, name="simclient-cli-cancel", daemon=True)
            closer.start()
            engine.done.wait(INTERRUPT_CLOSE_BUDGET)  # the closer keeps going in the background if slower
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        renderer.stop(final=not interrupt.event.is_set())
        if log_handler is not None:
            root.removeHandler(log_handler)
            fallback = logging.StreamHandler(sys.stderr)
            fallback.setFormatter(log_handler.formatter)
            root.addHandler(fallback)
    elapsed = time.monotonic() - started
    tracks, _ = model.snapshot()
    outcome = RunOutcome(doc={}, exit_code=EXIT_OK, interrupted=interrupted, failures=list(engine.failures),
                         elapsed=elapsed, sub_sessions=engine.sub_sessions,
                         control_reconnects=engine.control_reconnects,
                         subscription_reconnects=engine.subscription_reconnects,
                         slots_announced=sum(t.slots_seen for t in tracks))
    complete = not interrupted and engine.error is None and not engine.failures and engine.created
    extra: Dict[str, Any] = {}
    if interrupted:
        outcome.exit_code = interrupt.exit_code
    elif engine.error is not None:
        outcome.error = _one_line(engine.error)
        outcome.exception = engine.error
        outcome.exit_code = EXIT_USAGE if (not engine.created or isinstance(engine.error, ConnectError)) \
            else EXIT_FAILED
        extra["error"] = outcome.error
    elif engine.failures:
        outcome.exit_code = EXIT_FAILED
    extra["elapsed_seconds"] = round(elapsed, 3)
    if interrupted and not engine.done.is_set():
        extra["closed_cleanly"] = False
        outcome.closed_cleanly = False
    write = bool(engine.created or interrupted)
    try:
        metadata, summary = recorder.finish(complete, interrupted, extra, write=write)
    finally:
        interrupt.restore()
    outcome.doc = {"metadata": metadata, "summary": summary}
    late = metadata.get("late_events_dropped")
    if complete and late and outcome.exit_code == EXIT_OK:
        # the stream delivered events the file could not take (their slot was already written): a backtest file
        # that silently lacks data must not look like a success to a script checking the exit status
        outcome.exit_code = EXIT_FAILED
        outcome.error = (f"{late} event(s) arrived after their slot was written and are missing from the file "
                         '("complete": false, "late_events_dropped" in its metadata)')
    outcome.programs = Counter(recorder.programs)
    outcome.account_diffs = recorder.attributed_diffs
    if output_file and write:
        outcome.written = output_file
    return outcome


def finish_interrupted(outcome: RunOutcome) -> None:
    """After Ctrl-C, if the run is still closing (a slow or dead server), exit now: the file is written, and
    waiting for worker threads at interpreter exit could exceed the 2-second promise."""
    if outcome.interrupted and not outcome.closed_cleanly:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(outcome.exit_code)


def report_run(outcome: RunOutcome, output_file: Optional[str], out: TextIO = sys.stderr) -> None:
    """The lines printed after a run: result, file, failures (each once)."""
    s = outcome.doc.get("summary", {})
    meta = outcome.doc.get("metadata", {})
    if outcome.error and not outcome.written:
        print(f"simclient: error: {outcome.error}", file=out)
        return
    if outcome.written and outcome.written != "-":
        where: Optional[str] = f"wrote {outcome.written}"
    elif not output_file:
        where = "no --output-file: nothing saved"
    else:
        where = None
    head = "interrupted" if outcome.interrupted else ("failed" if outcome.exit_code else "done")
    print(f"simclient: {head}: {s.get('total', 0)} transactions ({s.get('successes', 0)} ok, "
          f"{s.get('failures', 0)} failed) in {outcome.elapsed:.1f}s"
          + (f", {outcome.sub_sessions} sub-sessions" if outcome.sub_sessions > 1 else "")
          + (f"; {where}" if where else "")
          + ("" if meta.get("complete") else ' (partial: "complete": false)'), file=out)
    if outcome.error:
        print(f"simclient: error: {outcome.error}", file=out)
    if outcome.failures:
        print(f"simclient: {len(outcome.failures)} of {max(outcome.sub_sessions, 1)} session(s) failed:", file=out)
        for rng, sid, reason in outcome.failures:
            where_ = f"{rng[0]}..{rng[1]}" if rng else "unknown range"
            print(f"  {where_} (session {sid}): {reason}", file=out)

