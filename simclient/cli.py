"""``simclient``: the command line (the Python counterpart of the Rust ``sim`` CLI).

    simclient ranges [--after DATE] [--before DATE] [--json]
    simclient run --start-slot S (--end-slot E | --slot-count N) [--parallel] [--program-id ID ...]
                  [--subscriptions transactions,account-diff] [--advance-count K] [--output-file run.json] [--local]
    simclient compare BASELINE EXPERIMENT [regressions|improvements|balances]
    simclient summarize FILE [--accounts A,B]
    simclient serve [--port 8900] [--api-key KEY] [--seed N] [--bundle-size N]

Global options: ``--url`` (env ``SIMULATOR_URL``), ``--api-key`` (env ``SIMULATOR_API_KEY``; never printed or
logged), ``-v``/``-vv`` (logging to stderr).

Exit codes: 0 success; 1 a session or sub-session failed (each failure is listed once, at the end); 2 usage,
connection or authentication error; 130 interrupted (Ctrl-C: the run is closed and what was captured is written
with ``"complete": false``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from . import events as ev
from ._version import __version__
from .runfile import (
    SECTIONS,
    RunFileError,
    RunRecorder,
    compare_runs,
    load_run,
    render_comparison,
    render_summary,
    summarize_run,
    write_run,
)

log = logging.getLogger("simclient.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SUBSCRIPTION_KINDS = ("transactions", "account-diff")
#: After Ctrl-C: how long the run may take to close before the file is written and the process exits anyway.
INTERRUPT_CLOSE_BUDGET = 1.0
#: Status hints shown while the server is still starting (RUST_CLIENT.md §5).
_HINTS = ((180.0, "a cold start can take minutes"), (30.0, "the server prepares the bundle first"))


class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class ConnectError(Exception):
    """The simulator could not be reached or refused us (exit 2)."""


# ============================================================================================ progress model


@dataclass
class _Track:
    session_id: str
    start: int
    end: int
    done: int = 0
    status: Optional[str] = None
    status_since: float = field(default_factory=time.monotonic)
    steps: int = 0
    first_slot_at: Optional[float] = None
    slots_seen: int = 0
    transactions: int = 0
    finished: bool = False
    failed: bool = False

    @property
    def total(self) -> int:
        return self.end - self.start + 1

    @property
    def label(self) -> str:
        return f"{self.start}..{self.end}"


class ProgressModel:
    """What the progress display shows, fed from any thread (``on_event`` runs on the drive's worker threads).

    Slots done come from slot *numbers* (skipped slots are never announced): ``slot - start + 1``, clamped to the
    inclusive total (the startup announcement of the start slot counts 0). Before a session's first slot, its server Status phase and the time spent in it are shown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tracks: Dict[str, _Track] = {}
        self.started = time.monotonic()
        self.phase = "starting"
        self.phase_since = self.started
        self.first_slot_at: Optional[float] = None

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            self.phase_since = time.monotonic()

    def add(self, session_id: str, start: int, end: int) -> None:
        with self._lock:
            self.tracks.setdefault(session_id, _Track(session_id, start, end))

    def on_event(self, session_id: str, event: ev.Event) -> None:
        kind = type(event)
        with self._lock:
            t = self.tracks.get(session_id)
            if t is None:
                return
            if kind is ev.Transaction:
                t.transactions += 1
            elif kind is ev.Slot:
                now = time.monotonic()
                if t.first_slot_at is None:
                    t.first_slot_at = now
                if self.first_slot_at is None:
                    self.first_slot_at = now
                slot = event.slot  # type: ignore[attr-defined]
                first = t.slots_seen == 0
                t.slots_seen += 1
                # The startup announcement of the start slot means "current", not "done": it counts 0. Every
                # later notification follows the slot's execution.
                if not (first and slot == t.start):
                    t.done = max(t.done, min(t.total, slot - t.start + 1))
            elif kind is ev.Status:
                status = event.status  # type: ignore[attr-defined]
                t.steps += 1
                if status != t.status:
                    t.status = status
                    t.status_since = time.monotonic()
            elif kind is ev.Completed:
                t.done = t.total
                t.finished = True

    def fail(self, session_id: str) -> None:
        with self._lock:
            t = self.tracks.get(session_id)
            if t is not None:
                t.failed = True
                t.finished = True

    def snapshot(self) -> Tuple[List[_Track], Dict[str, Any]]:
        with self._lock:
            tracks = [_Track(**vars(t)) for t in sorted(self.tracks.values(), key=lambda t: (t.start, t.session_id))]
            info = {"phase": self.phase, "phase_since": self.phase_since, "started": self.started,
                    "first_slot_at": self.first_slot_at}
        return tracks, info


def _fmt_secs(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _waiting_text(t: _Track, now: float) -> str:
    status = t.status or "starting"
    spent = now - t.status_since
    hint = next((h for after, h in _HINTS if spent >= after), "")
    return f"{status} for {_fmt_secs(spent)}" + (f", step {t.steps}" if t.steps else "") + \
        (f" ({hint})" if hint else "")


class _Renderer:
    """Base: a thread that refreshes the display every ``interval`` seconds; ``message`` prints above it."""

    interval = 0.25

    def __init__(self, model: ProgressModel, stream: TextIO):
        self.model = model
        self.stream = stream
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._out_lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="simclient-cli-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.render()
            except Exception:  # pragma: no cover - a display bug must never kill a run
                log.debug("progress render failed", exc_info=True)

    def stop(self, final: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if final:
            try:
                self.render(final=True)
            except Exception:  # pragma: no cover
                log.debug("progress render failed", exc_info=True)
        self.close()

    def render(self, final: bool = False) -> None:
        raise NotImplementedError

    def message(self, text: str) -> None:
        with self._out_lock:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class NullRenderer(_Renderer):
    def start(self) -> None:
        pass

    def render(self, final: bool = False) -> None:
        pass


class LineRenderer(_Renderer):
    """Plain whole lines every few seconds (stderr is not a terminal, or tqdm is not installed)."""

    def __init__(self, model: ProgressModel, stream: TextIO, interval: float = 5.0):
        super().__init__(model, stream)
        self.interval = interval

    def render(self, final: bool = False) -> None:
        tracks, info = self.model.snapshot()
        if final and not tracks:
            return
        now = time.monotonic()
        elapsed = now - info["started"]
        if not tracks:
            text = f"{info['phase']} for {_fmt_secs(now - info['phase_since'])}"
        elif info["first_slot_at"] is None:
            first = tracks[0]
            text = f"waiting: {_waiting_text(first, now)} (session …{first.session_id[-8:]}" + \
                   (f", {len(tracks)} sessions)" if len(tracks) > 1 else ")")
        else:
            total = sum(t.total for t in tracks)
            done = sum(t.done for t in tracks)
            txs = sum(t.transactions for t in tracks)
            finished = sum(t.finished for t in tracks)
            failed = sum(t.failed for t in tracks)
            since = now - info["first_slot_at"]
            text = f"{done}/{total} slots ({100.0 * done / max(1, total):.1f}%)"
            if since >= 0.25 and done:
                rate = done / since
                text += f" {rate:.0f} slots/s"
                if done < total and not final:
                    text += f" ETA {_fmt_secs((total - done) / rate)}"
            text += f" | {txs} txs"
            if len(tracks) > 1:
                text += f" | {finished}/{len(tracks)} sessions done" + (f", {failed} failed" if failed else "")
            waiting = [t for t in tracks if t.first_slot_at is None and not t.finished]
            if waiting and not final:
                text += f" | {len(waiting)} waiting ({_waiting_text(waiting[0], now)})"
        self.message(f"simclient: [{_fmt_secs(elapsed):>6}] {text}")


class TqdmRenderer(_Renderer):
    """tqdm bars on a terminal: one per sub-session (when they fit) plus a total."""

    interval = 0.25

    def __init__(self, model: ProgressModel, stream: TextIO, tqdm_cls: Any, max_bars: Optional[int] = None):
        super().__init__(model, stream)
        self._tqdm = tqdm_cls
        try:
            rows = os.get_terminal_size(stream.fileno()).lines or 24
        except (AttributeError, ValueError, OSError):
            rows = shutil.get_terminal_size((100, 24)).lines
        self.max_bars = max_bars if max_bars is not None else max(0, min(16, rows - 4))
        self._total: Any = None
        self._bars: Dict[str, Any] = {}
        self._started: Dict[str, bool] = {}
        self._total_started = False
        self._closed = False
        self._fmt_wait = "{desc}"
        self._fmt_run = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} slots [{elapsed}<{remaining}, " \
                        "{rate_fmt}]{postfix}"

    def _bar(self, desc: str, position: int) -> Any:
        # Only the total bar stays on screen at the end; per-sub-session bars are cleared when closed.
        return self._tqdm(total=None, desc=desc, position=position, file=self.stream, leave=position == 0,
                          unit="slot",
                          dynamic_ncols=True, bar_format=self._fmt_wait, mininterval=0, miniters=1)

    def render(self, final: bool = False) -> None:
        if self._closed:
            return
        tracks, info = self.model.snapshot()
        now = time.monotonic()
        with self._tqdm.get_lock():
            if self._total is None:
                self._total = self._bar("simclient", 0)
            if not tracks:
                self._total.set_description_str(f"simclient: {info['phase']} for "
                                                f"{_fmt_secs(now - info['phase_since'])}", refresh=False)
                self._total.refresh()
                return
            per_sub = len(tracks) > 1 and len(tracks) <= self.max_bars
            if per_sub:
                for i, t in enumerate(tracks):
                    bar = self._bars.get(t.session_id)
                    if bar is None:
                        bar = self._bars[t.session_id] = self._bar(t.label, i + 1)
                    desc = f"{t.label} …{t.session_id[-6:]} {_waiting_text(t, now)}"
                    self._update(bar, t.session_id, t.label, t.total, t.done, t.first_slot_at is not None,
                                 desc,
                                 "failed" if t.failed else ("done" if t.finished else f"{t.transactions} txs"))
            total = sum(t.total for t in tracks)
            done = sum(t.done for t in tracks)
            finished = sum(t.finished for t in tracks)
            failed = sum(t.failed for t in tracks)
            txs = sum(t.transactions for t in tracks)
            waiting = [t for t in tracks if t.first_slot_at is None and not t.finished]
            label = "total" if len(tracks) > 1 else tracks[0].label
            postfix = f"{txs} txs" + (f", {finished}/{len(tracks)} done" if len(tracks) > 1 else "") + \
                (f", {failed} failed" if failed else "")
            self._update(self._total, "*", label, total, done, info["first_slot_at"] is not None,
                         f"{label}: " + (_waiting_text(waiting[0], now) if waiting else "starting") +
                         (f" (session …{tracks[0].session_id[-8:]})" if len(tracks) == 1 else
                          f" ({len(waiting)} of {len(tracks)} sessions starting)"), postfix)

    def _update(self, bar: Any, key: str, label: str, total: int, done: int, running: bool,
                waiting_desc: str, postfix: str) -> None:
        if not running:
            bar.set_description_str(waiting_desc, refresh=False)
            bar.refresh()
            return
        if not self._started.get(key):
            self._started[key] = True
            bar.bar_format = self._fmt_run
            bar.set_description_str(label, refresh=False)
            bar.reset(total=total)  # rate and ETA are measured from the first slot
        if done > bar.n:
            bar.update(done - bar.n)
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def message(self, text: str) -> None:
        self._tqdm.write(text, file=self.stream)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._tqdm.get_lock():
            for bar in reversed(list(self._bars.values())):
                bar.close()
            if self._total is not None:
                self._total.close()


def _terminal_columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def make_renderer(mode: str, model: ProgressModel, stream: TextIO = sys.stderr,
                  interval: Optional[float] = None) -> _Renderer:
    """``mode``: ``auto`` (bars on a terminal, else lines), ``bars``, ``lines`` or ``none``."""
    if mode == "none":
        return NullRenderer(model, stream)
    if mode in ("auto", "bars"):
        is_tty = hasattr(stream, "isatty") and stream.isatty() and _terminal_columns(stream) > 0
        if mode == "bars" or is_tty:
            try:
                from tqdm import tqdm  # the `cli` extra; optional
            except ImportError:
                log.debug("tqdm not installed: plain progress lines")
            else:
                return TqdmRenderer(model, stream, tqdm)
    return LineRenderer(model, stream, interval if interval is not None else 5.0)


class _RendererLogHandler(logging.Handler):
    """Routes log records through the renderer, so bars are not torn by log lines."""

    def __init__(self, renderer: _Renderer):
        super().__init__()
        self.renderer = renderer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.renderer.message(self.format(record))
        except Exception:  # pragma: no cover
            self.handleError(record)


# ============================================================================================ the run engine


@dataclass
class RunOptions:
    start_slot: int
    end_slot: int
    parallel: bool = False
    program_ids: List[str] = field(default_factory=list)
    subscriptions: Tuple[str, ...] = ("transactions",)
    advance_count: Optional[int] = None


@dataclass
class RunOutcome:
    doc: Dict[str, Any]
    exit_code: int
    interrupted: bool = False
    failures: List[Tuple[Optional[Tuple[int, int]], str, str]] = field(default_factory=list)  # (range, id, reason)
    error: Optional[str] = None
    elapsed: float = 0.0
    sub_sessions: int = 0
    control_reconnects: int = 0
    subscription_reconnects: int = 0
    slots_announced: int = 0
    written: Optional[str] = None
    closed_cleanly: bool = True     # False: an interrupted run was still closing when the file was written


class RunEngine:
    """Creates the session (or parallel run), subscribes, drives it to the end on its own thread, and feeds a
    :class:`RunRecorder` and a :class:`ProgressModel`. :meth:`cancel` (from any thread) closes what is open."""

    def __init__(self, client: Any, opts: RunOptions, recorder: RunRecorder, model: ProgressModel,
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
        from .errors import HttpStatusError

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

    def _create_request(self) -> Any:
        from .builders import CreateSession

        return CreateSession(start_slot=self.opts.start_slot, end_slot=self.opts.end_slot)

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
            self.model.add(sid, start, end)
            self._subscribe(session)
            advance = self.opts.advance_count or (end - start + 1)
            try:
                for event in session.events():
                    self.model.on_event(sid, event)
                    self.recorder.add_event(event)
                    kind = type(event)
                    if kind is ev.ReadyForContinue or kind is ev.Paused:
                        session.send_continue(advance_count=advance)
                    elif kind is ev.Completed:
                        self.recorder.mark_completed(sid)
            except BaseException as exc:  # noqa: BLE001
                if self.cancelled:
                    return
                from .parallel import error_chain

                reason = error_chain(exc)
                self.failures.append(((start, end), sid, reason))
                self.recorder.add_failure(sid, (start, end), reason)
                self.model.fail(sid)
        finally:
            session.close()
            self.control_reconnects = session.stats.control_reconnects
            self.subscription_reconnects = session.stats.subscription_reconnects

    def _run_parallel(self) -> None:
        self.model.set_phase("creating parallel sessions")
        run = self.client.start_parallel(self._create_request())
        self.created = True
        if not self._adopt(run):
            return
        try:
            subs = run.sub_sessions
            self.sub_sessions = len(subs)
            for sub in subs:
                self.recorder.add_session(sub.session_id, *sub.range)
                self.model.add(sub.session_id, *sub.range)
            for sub in subs:
                self._subscribe(sub)

            model, recorder = self.model, self.recorder

            def on_event(sub: Any, event: ev.Event) -> None:
                model.on_event(sub.session_id, event)
                recorder.add_event(event)
                if type(event) is ev.Completed:
                    recorder.mark_completed(sub.session_id)

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
                extra_metadata: Optional[Dict[str, Any]] = None) -> RunOutcome:
    """Run ``opts`` with progress and Ctrl-C handling, write ``output_file`` (``-``: stdout), return the outcome.

    Used by ``simclient run`` and ``simclient.demo``. On SIGINT/SIGTERM the run is closed (at most
    ``INTERRUPT_CLOSE_BUDGET`` seconds), what was captured is written with ``"complete": false``, and the outcome
    says ``interrupted``; the caller exits 130.
    """
    recorder = RunRecorder(opts.start_slot, opts.end_slot, opts.program_ids,
                           {"subscriptions": list(opts.subscriptions), "parallel": opts.parallel,
                            "url": client.url, "client": f"simclient-python/{__version__}", **(extra_metadata or {})})
    model = ProgressModel()
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
    outcome.doc = recorder.document(complete=complete, interrupted=interrupted)
    if interrupted:
        outcome.exit_code = interrupt.exit_code
    elif engine.error is not None:
        outcome.error = _one_line(engine.error)
        outcome.exit_code = EXIT_USAGE if (not engine.created or isinstance(engine.error, ConnectError)) \
            else EXIT_FAILED
        outcome.doc["metadata"]["error"] = outcome.error
    elif engine.failures:
        outcome.exit_code = EXIT_FAILED
    outcome.doc["metadata"]["elapsed_seconds"] = round(elapsed, 3)
    if interrupted and not engine.done.is_set():
        outcome.doc["metadata"]["closed_cleanly"] = False
        outcome.closed_cleanly = False
    if output_file and (engine.created or interrupted):
        if output_file == "-":
            json.dump(outcome.doc, sys.stdout)
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            write_run(output_file, outcome.doc)
        outcome.written = output_file
    interrupt.restore()
    return outcome


def probe_reason(url: str, timeout: float = 5.0) -> Optional[str]:
    """Why ``url`` cannot be reached (None if it answers at all). The SDK's HttpStatusError keeps only the
    first 200 characters of the error, which often cuts off the actual reason."""
    import requests

    try:
        requests.get(url, timeout=timeout).close()
    except requests.RequestException as exc:
        return connection_reason(str(exc))
    return None


def connection_reason(text: str) -> str:
    """A short reason from a requests/urllib3 connection error text."""
    low = text.lower()
    for needle, reason in (("refused", "connection refused"), ("name or service not known", "unknown host"),
                           ("nodename nor servname", "unknown host"), ("failed to resolve", "unknown host"),
                           ("timed out", "timed out"), ("certificate", "TLS certificate error"),
                           ("ssl", "TLS error"), ("reset by peer", "connection reset")):
        if needle in low:
            return reason
    return text if len(text) <= 120 else text[:117] + "..."


def _one_line(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip()
    from .errors import SimclientError

    from .errors import HttpStatusError

    if isinstance(exc, HttpStatusError) and exc.status == 0:
        return f"cannot reach {exc.url} ({probe_reason(exc.url) or connection_reason(exc.body)})"
    if isinstance(exc, (ConnectError, UsageError, SimclientError, RunFileError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ============================================================================================ commands


def _client(args: argparse.Namespace, url: Optional[str] = None, api_key: Optional[str] = None) -> Any:
    from . import Client

    return Client(url or args.url, api_key if api_key is not None else args.api_key)


def _parse_date(text: str) -> _dt.datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 time)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when


def _range_times(r: Any) -> Tuple[Optional[_dt.datetime], Optional[_dt.datetime]]:
    out = []
    for v in (r.bundle_start_slot_utc, r.max_bundle_end_slot_utc):
        try:
            out.append(_parse_date(v) if v else None)
        except argparse.ArgumentTypeError:
            out.append(None)
    return out[0], out[1]


def cmd_ranges(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    ranges = _client(args).available_ranges()
    picked = []
    for r in ranges:
        start, end = _range_times(r)
        if args.after is not None and (start is None or start < args.after):
            continue
        if args.before is not None and (end is None or end > args.before):
            continue
        if args.min_size is not None and (r.max_bundle_size or 0) < args.min_size:
            continue
        picked.append(r)
    if args.json:
        print(json.dumps([asdict(r) for r in picked], indent=2))
        return EXIT_OK
    header = ("START SLOT", "END SLOT", "SIZE", "START (UTC)", "END (UTC)", "KIND", "SCOPE")
    rows = [(str(r.bundle_start_slot), "" if r.max_bundle_end_slot is None else str(r.max_bundle_end_slot),
             "" if r.max_bundle_size is None else str(r.max_bundle_size), r.bundle_start_slot_utc or "",
             r.max_bundle_end_slot_utc or "", r.kind or "blocks", r.scope or "") for r in picked]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"{len(picked)} range(s)" + (f" of {len(ranges)}" if len(picked) != len(ranges) else ""))
    return EXIT_OK


def _parse_subscriptions(text: str) -> Tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    kinds = []
    for part in text.split(","):
        k = part.strip().lower().replace("_", "-")
        if k in ("transaction", "txs", "tx"):
            k = "transactions"
        if k in ("account-diffs", "accountdiff", "diffs"):
            k = "account-diff"
        if k not in SUBSCRIPTION_KINDS:
            raise argparse.ArgumentTypeError(
                f"unknown subscription {part.strip()!r} (choose from {', '.join(SUBSCRIPTION_KINDS)}, or none)")
        if k not in kinds:
            kinds.append(k)
    return tuple(kinds)


def cmd_run(args: argparse.Namespace) -> int:
    sim = None
    outcome: Optional[RunOutcome] = None
    if args.local:
        try:
            from .local import LocalSimulator
        except ImportError as exc:
            raise UsageError(f"--local needs the 'local' extra (pip install 'simclient[local]'): {exc}") from None
        sim = LocalSimulator(port=0, seed=args.local_seed, slot_pace_ms=args.local_slot_pace_ms).start()
    try:
        start = args.start_slot
        if start is None:
            if sim is None:
                raise UsageError("--start-slot is required (see `simclient ranges`)")
            start = sim.first_slot
        if args.end_slot is not None and args.slot_count is not None:
            raise UsageError("give either --end-slot or --slot-count, not both")
        if args.end_slot is None and args.slot_count is None:
            raise UsageError("give --end-slot E or --slot-count N")
        end = args.end_slot if args.end_slot is not None else start + args.slot_count
        if end < start:
            raise UsageError(f"--end-slot ({end}) must be >= --start-slot ({start})")
        program_ids = [p for arg in (args.program_id or []) for p in arg.split(",") if p.strip()]
        if not program_ids and sim is not None:
            program_ids = sim.program_ids
        from ._base58 import is_pubkey

        bad = [p for p in program_ids if not is_pubkey(p)]
        if bad:
            raise UsageError(f"--program-id {bad[0]!r} is not a base58 public key")
        if args.subscriptions and not program_ids:
            raise UsageError("--subscriptions needs at least one --program-id (or --subscriptions none)")
        if args.advance_count is not None and args.advance_count < 1:
            raise UsageError("--advance-count must be >= 1")
        opts = RunOptions(start_slot=start, end_slot=end, parallel=args.parallel, program_ids=program_ids,
                          subscriptions=args.subscriptions, advance_count=args.advance_count)
        client = _client(args, sim.url if sim else None, sim.api_key if sim else None)
        extra = {"local_seed": args.local_seed} if sim is not None else {}
        outcome = execute_run(client, opts, args.output_file, args.progress, args.progress_interval, sys.stderr,
                              extra)
    finally:
        if sim is not None:
            sim.stop(timeout=0.5 if outcome is not None and outcome.interrupted else 2.0)
    report_run(outcome, args.output_file)
    finish_interrupted(outcome)
    return outcome.exit_code


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


def cmd_compare(args: argparse.Namespace) -> int:
    base = load_run(args.baseline)
    exp = load_run(args.experiment)
    cmp = compare_runs(base, exp)
    if args.json:
        print(json.dumps(cmp.as_dict(args.section), indent=2))
    else:
        print(f"baseline:   {args.baseline} ({len(base['transactions'])} transactions)")
        print(f"experiment: {args.experiment} ({len(exp['transactions'])} transactions)")
        print(render_comparison(cmp, args.section, args.limit))
    if args.exit_code:
        relevant = cmp.has_differences if args.section is None else bool(
            {"regressions": cmp.regressions, "improvements": cmp.improvements, "balances": cmp.balances}
            [args.section])
        return EXIT_FAILED if relevant else EXIT_OK
    return EXIT_OK


def cmd_summarize(args: argparse.Namespace) -> int:
    doc = load_run(args.file)
    accounts = [a.strip() for a in (args.accounts or "").split(",") if a.strip()]
    s = summarize_run(doc, accounts)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"file:         {args.file}")
        print(render_summary(s, _program_names()))
    return EXIT_OK


def _program_names() -> Dict[str, str]:
    """Names of the local simulator's synthetic programs (for nicer summaries); empty without the extra."""
    try:
        from .local.chain import PROGRAM_IDS, PROGRAM_NAMES
    except Exception:  # noqa: BLE001 - optional
        return {}
    return {pid: name for pid, name in zip(PROGRAM_IDS, PROGRAM_NAMES)}


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .local import DIALECTS, serve
    except ImportError as exc:
        raise UsageError(f"serve needs the 'local' extra (pip install 'simclient[local]'): {exc}") from None
    if args.dialect not in DIALECTS:
        raise UsageError(f"unknown --dialect {args.dialect!r}; known: {', '.join(DIALECTS)}")
    key = args.serve_api_key or args.api_key or os.environ.get("SIMULATOR_API_KEY") or "local-dev-key"
    if not args.verbose:  # the one "listening on ..." line
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    serve(port=args.port, api_key=key, seed=args.seed, bundle_size=args.bundle_size, host=args.host,
          num_bundles=args.num_bundles, first_slot=args.first_slot, slot_pace_ms=args.slot_pace_ms,
          dialect=args.dialect)
    return EXIT_OK


# ============================================================================================ parser / main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simclient", description="Backtests on the Termina simulator (or the local one) from the shell.",
        epilog="Exit codes: 0 ok, 1 a session failed, 2 usage/connection error, 130 interrupted.")
    p.add_argument("--version", action="version", version=f"simclient {__version__}")
    p.add_argument("--url", default=os.environ.get("SIMULATOR_URL"),
                   help="simulator URL or bare host (env SIMULATOR_URL; default ws://127.0.0.1:8900/backtest)")
    p.add_argument("--api-key", default=None,
                   help="API key (env SIMULATOR_API_KEY; default local-dev-key). Never printed.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("ranges", help="list the available slot ranges")
    r.add_argument("--after", type=_parse_date, metavar="DATE", help="only ranges starting at or after DATE")
    r.add_argument("--before", type=_parse_date, metavar="DATE", help="only ranges ending at or before DATE")
    r.add_argument("--min-size", type=int, metavar="SLOTS", help="only bundles of at least SLOTS slots")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.set_defaults(func=cmd_ranges)

    run = sub.add_parser("run", help="run a backtest and write the `sim run` JSON")
    run.add_argument("--start-slot", type=int, metavar="S", help="first slot (inclusive)")
    g = run.add_mutually_exclusive_group()
    g.add_argument("--end-slot", type=int, metavar="E", help="last slot (inclusive)")
    g.add_argument("--slot-count", type=int, metavar="N", help="replay slots S..S+N (N+1 slots, like the Rust CLI)")
    run.add_argument("--parallel", action="store_true", help="let the server split the range into sub-sessions")
    run.add_argument("--program-id", action="append", metavar="ID",
                     help="program whose transactions / account diffs to capture (repeatable, or comma-separated)")
    run.add_argument("--subscriptions", type=_parse_subscriptions, default=("transactions",),
                     metavar="KINDS", help="comma-separated: transactions, account-diff, or none "
                                           "(default: transactions)")
    run.add_argument("--advance-count", type=int, metavar="K",
                     help="slots per continue (default: the whole range in one continue)")
    run.add_argument("--output-file", "-o", metavar="FILE", help="write the run JSON here (- for stdout)")
    run.add_argument("--local", action="store_true",
                     help="start an in-process local simulator and run against it (default program ids: its own)")
    run.add_argument("--local-seed", type=int, default=0, metavar="N", help="--local: chain seed (default 0)")
    run.add_argument("--local-slot-pace-ms", type=float, default=0, metavar="MS", help=argparse.SUPPRESS)
    run.add_argument("--progress", choices=("auto", "bars", "lines", "none"), default="auto",
                     help="progress display on stderr (default auto: bars on a terminal, else lines)")
    run.add_argument("--progress-interval", type=float, default=None, metavar="SECONDS",
                     help="seconds between progress lines when not on a terminal (default 5)")
    run.set_defaults(func=cmd_run)

    c = sub.add_parser("compare", help="compare two run files by signature")
    c.add_argument("baseline", metavar="BASELINE")
    c.add_argument("experiment", metavar="EXPERIMENT")
    c.add_argument("section", nargs="?", choices=SECTIONS, help="only this section")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--limit", type=int, default=20, help="rows per list in text output (default 20)")
    c.add_argument("--exit-code", action="store_true", help="exit 1 when the runs differ (like git diff)")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("summarize", help="totals of a run file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--accounts", metavar="A,B", help="also per-account totals for these accounts")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_summarize)

    sv = sub.add_parser("serve", help="serve the local simulator in the foreground (needs the `local` extra)")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8900, help="TCP port (default 8900)")
    sv.add_argument("--api-key", dest="serve_api_key", default=None, metavar="KEY",
                    help="the key clients must send (default: --api-key, SIMULATOR_API_KEY, else local-dev-key)")
    sv.add_argument("--seed", type=int, default=0, help="synthetic chain seed (default 0)")
    sv.add_argument("--bundle-size", type=int, default=100, help="slots per bundle (default 100)")
    sv.add_argument("--num-bundles", type=int, default=100, help="number of bundles (default 100)")
    sv.add_argument("--first-slot", type=int, default=300_000_000, help="first slot (default 300000000)")
    sv.add_argument("--slot-pace-ms", type=float, default=0, help="sleep per executed slot (default 0)")
    sv.add_argument("--dialect", default="evidenced", metavar="NAME",
                    help="reading of the protocol's open points: evidenced (default), nested-snake, nested-camel, "
                         "flattened-snake, flattened-camel, strict (see docs/protocol.md)")
    sv.set_defaults(func=cmd_serve)
    return p


def _setup_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    logging.basicConfig(level=logging.INFO if verbose == 1 else logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose)
    from .errors import AuthenticationError, ConnectionLostError, HttpStatusError, SimclientError

    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("simclient: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, RunFileError, ConnectError, AuthenticationError, ConnectionLostError, HttpStatusError,
            ValueError) as exc:
        _print_error(exc, args.verbose)
        return EXIT_USAGE
    except (SimclientError, OSError) as exc:
        _print_error(exc, args.verbose)
        return EXIT_FAILED
    except BrokenPipeError:  # pragma: no cover - `simclient ranges | head`
        return EXIT_OK


def _print_error(exc: BaseException, verbose: int) -> None:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"simclient: error: {_one_line(exc)}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
