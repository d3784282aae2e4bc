"""Progress display of ``simclient run``: a thread-safe model fed by events, and renderers (tqdm bars on a
terminal, plain lines otherwise, or nothing)."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO, Tuple

from .. import events as ev

log = logging.getLogger("simclient.cli")

#: Status hints shown while the server is still starting (RUST_CLIENT.md §5).
_HINTS = ((180.0, "a cold start can take minutes"), (30.0, "the server prepares the bundle first"))

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


def _in_notebook() -> bool:
    """Running in a Jupyter kernel (stderr is not a terminal there, but tqdm.auto draws widget bars)."""
    ipython = sys.modules.get("IPython")  # only if the user's process already imported it
    get = getattr(ipython, "get_ipython", None)
    try:
        shell = get() if callable(get) else None
    except Exception:  # noqa: BLE001 - a broken IPython is not our business
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_renderer(mode: str, model: ProgressModel, stream: TextIO = sys.stderr,
                  interval: Optional[float] = None) -> _Renderer:
    """``mode``: ``auto`` (bars on a terminal or in Jupyter, else lines), ``bars``, ``lines`` or ``none``."""
    if mode == "none":
        return NullRenderer(model, stream)
    if mode in ("auto", "bars"):
        is_tty = hasattr(stream, "isatty") and stream.isatty() and _terminal_columns(stream) > 0
        if mode == "bars" or is_tty or _in_notebook():
            try:
                from tqdm.auto import tqdm  # the `cli` extra; optional. auto: widget bars in Jupyter
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


