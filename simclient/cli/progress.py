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
    diffs: int = 0      # AccountDiff events
    logs: int = 0       # Logs events
    actions: int = 0    # ActionResult events
    finished: bool = False
    failed: bool = False
    reconnecting: int = 0   # the reconnect attempt in progress (SessionStats.reconnecting_attempt), 0: connected

    @property
    def fraction(self) -> float:
        return self.done / max(1, self.total)

    @property
    def total(self) -> int:
        return self.end - self.start + 1

    @property
    def label(self) -> str:
        return f"{self.start}..{self.end}"


def _data_text(tracks: List[_Track]) -> str:
    """The data events delivered so far: "N txs", then each other kind that has any ("M diffs", "K logs",
    "A actions"), so a run without a transaction subscription does not look idle."""
    parts = [f"{sum(t.transactions for t in tracks)} txs"]
    for name in ("diffs", "logs", "actions"):
        n = sum(getattr(t, name) for t in tracks)
        if n:
            parts.append(f"{n} {name}")
    return ", ".join(parts)


class ProgressModel:
    """What the progress display shows, fed from any thread (``on_event`` runs on the drive's worker threads).

    Slots done come from slot *numbers* (skipped slots are never announced): ``slot - start + 1``, clamped to the
    inclusive total (the startup announcement of the start slot counts 0). Before a session's first slot, its
    server Status phase and the time spent in it are shown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tracks: Dict[str, _Track] = {}
        self.started = time.monotonic()
        self.phase = "starting"
        self.phase_since = self.started
        self.first_slot_at: Optional[float] = None
        self._stats: Dict[str, Any] = {}
        #: ``n`` of "reconnecting (attempt k/n)": the client's ``ClientConfig.reconnect_attempts``.
        self.reconnect_budget: Optional[int] = None
        # a parallel create still streaming: sub-sessions announced so far, the latest server status, the attempt
        self.created = 0
        self.create_status: Optional[str] = None
        self.create_attempt = 1

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            self.phase_since = time.monotonic()

    def on_session_created(self, info: Any) -> None:
        """``start_parallel``'s ``on_session_created`` (a :class:`simclient.SessionCreatedInfo`): "created k"."""
        with self._lock:
            if info.attempt != self.create_attempt:  # the create was sent again: its count starts over
                self.create_attempt = info.attempt
                self.create_status = None
            self.created = info.count

    def on_create_status(self, info: Any) -> None:
        """``start_parallel``'s ``on_status`` (a :class:`simclient.CreateStatus`): the latest startup status."""
        with self._lock:
            if info.attempt != self.create_attempt:
                self.create_attempt = info.attempt
            self.created = info.created
            self.create_status = info.status

    def add(self, session_id: str, start: int, end: int, stats: Any = None) -> None:
        """``stats``: the session's SessionStats, read at each snapshot (``reconnecting_attempt``)."""
        with self._lock:
            self.tracks.setdefault(session_id, _Track(session_id, start, end))
            if stats is not None:
                self._stats[session_id] = stats

    def on_event(self, session_id: str, event: ev.Event) -> None:
        kind = type(event)
        with self._lock:
            t = self.tracks.get(session_id)
            if t is None:
                return
            if kind is ev.Transaction:
                t.transactions += 1
            elif kind is ev.AccountDiff:
                t.diffs += 1
            elif kind is ev.Logs:
                t.logs += 1
            elif kind is ev.ActionResult:
                t.actions += 1
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

    def set_transactions(self, session_id: str, count: int) -> None:
        """A track's transaction count as reported from elsewhere (a scale-out worker's progress file)."""
        with self._lock:
            t = self.tracks.get(session_id)
            if t is not None:
                t.transactions = max(t.transactions, count)

    def fail(self, session_id: str) -> None:
        with self._lock:
            t = self.tracks.get(session_id)
            if t is not None:
                t.failed = True
                t.finished = True

    def snapshot(self) -> Tuple[List[_Track], Dict[str, Any]]:
        with self._lock:
            tracks = [_Track(**vars(t)) for t in sorted(self.tracks.values(), key=lambda t: (t.start, t.session_id))]
            for t in tracks:
                stats = self._stats.get(t.session_id)
                if stats is not None and not t.finished:
                    t.reconnecting = int(getattr(stats, "reconnecting_attempt", 0) or 0)
            info = {"phase": self.phase, "phase_since": self.phase_since, "started": self.started,
                    "first_slot_at": self.first_slot_at, "reconnect_budget": self.reconnect_budget,
                    "created": self.created, "create_status": self.create_status,
                    "create_attempt": self.create_attempt}
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


def _phase_text(info: Dict[str, Any], now: float) -> str:
    """Before any session exists: ``"creating parallel sessions for 39s: created 3 sub-sessions, bundleReady"``
    (the count and the status while a parallel create streams, when the engine reports them)."""
    text = f"{info['phase']} for {_fmt_secs(now - info['phase_since'])}"
    created = info.get("created") or 0
    parts = [f"created {created} sub-session" + ("" if created == 1 else "s")] if created else []
    if info.get("create_status"):
        parts.append(str(info["create_status"]))
    if (info.get("create_attempt") or 1) > 1:
        parts.append(f"attempt {info['create_attempt']}")
    return text + (": " + ", ".join(parts) if parts else "")


def _waiting_text(t: _Track, now: float) -> str:
    status = t.status or "starting"
    spent = now - t.status_since
    hint = next((h for after, h in _HINTS if spent >= after), "")
    return f"{status} for {_fmt_secs(spent)}" + (f", step {t.steps}" if t.steps else "") + \
        (f" ({hint})" if hint else "")


#: No rate or ETA until this long after the first slot: over a shorter interval the figure is noise (the first
#: frame used to show hundreds of thousands of slots/s and an ETA of 0).
MIN_RATE_INTERVAL = 1.0


def _rate_text(done: int, total: int, since: float, final: bool = False) -> str:
    """``"123 slots/s, ETA 4.0s"``, or "" before a measurable interval."""
    if since < MIN_RATE_INTERVAL or done <= 0:
        return ""
    rate = done / since
    text = f"{rate:.0f} slots/s"
    if done < total and not final:
        text += f", ETA {_fmt_secs((total - done) / rate)}"
    return text


def _reconnecting_text(attempt: int, budget: Optional[int]) -> str:
    if not attempt:
        return ""
    return f"reconnecting (attempt {attempt}/{budget})" if budget else f"reconnecting (attempt {attempt})"


class _Renderer:
    """Base: a thread that refreshes the display every ``interval`` seconds; ``message`` prints above it."""

    interval = 0.25

    def __init__(self, model: ProgressModel, stream: TextIO):
        self.model = model
        self.stream = stream
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._out_lock = threading.Lock()
        self.interrupted = False

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
        """``final`` False (interrupted): no last frame, the display is left as it stands."""
        self.interrupted = not final
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
            text = _phase_text(info, now)
        elif info["first_slot_at"] is None:
            first = tracks[0]
            text = f"waiting: {_waiting_text(first, now)} (session …{first.session_id[-8:]}" + \
                   (f", {len(tracks)} sessions)" if len(tracks) > 1 else ")")
        else:
            total = sum(t.total for t in tracks)
            done = sum(t.done for t in tracks)
            finished = sum(t.finished for t in tracks)
            failed = sum(t.failed for t in tracks)
            since = now - info["first_slot_at"]
            text = f"{done}/{total} slots ({100.0 * done / max(1, total):.1f}%)"
            rate = _rate_text(done, total, since, final)
            if rate:
                text += " " + rate.replace(", ", " ")
            text += f" | {_data_text(tracks)}"
            if len(tracks) > 1:
                text += f" | {finished}/{len(tracks)} sessions done" + (f", {failed} failed" if failed else "")
            waiting = [t for t in tracks if t.first_slot_at is None and not t.finished]
            if waiting and not final:
                text += f" | {len(waiting)} waiting ({_waiting_text(waiting[0], now)})"
            reconnecting = [t for t in tracks if t.reconnecting]
            if reconnecting and not final:
                text += f" | {len(reconnecting)} " + _reconnecting_text(reconnecting[0].reconnecting,
                                                                        info.get("reconnect_budget"))
        self.message(f"simclient: [{_fmt_secs(elapsed):>6}] {text}")


class TqdmRenderer(_Renderer):
    """tqdm bars on a terminal: a total, then one bar per sub-session as far as the terminal height allows; with
    more sub-sessions than lines, the slowest ones and a summary line for the rest.

    Rates and ETAs are computed here from the first slot (none before :data:`MIN_RATE_INTERVAL`), not by tqdm, so a
    bar can be handed to another sub-session without a bogus rate. Bars stay a few columns short of the terminal
    width: a ``^C`` echoed after a full-width line would wrap, and the last redraw would then print the bar twice.
    """

    interval = 0.25
    #: Columns left free at the right edge (room for the terminal's "^C" echo).
    margin = 3

    def __init__(self, model: ProgressModel, stream: TextIO, tqdm_cls: Any, max_bars: Optional[int] = None):
        super().__init__(model, stream)
        self._tqdm = tqdm_cls
        rows, _ = _terminal_size(stream)
        #: Lines for sub-sessions below the total (bars, plus the summary line when they do not all fit): the
        #: terminal height less the total bar, the cursor line and one spare.
        self.max_bars = max_bars if max_bars is not None else max(0, rows - 3)
        self._total: Any = None
        self._slots: List[Any] = []                  # bars at positions 1..n
        self._slot_keys: List[Optional[str]] = []    # what each shows: a session id, "summary" or None (blank)
        self._closed = False
        self._fmt_text = "{desc}"
        self._fmt_run = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} slots{postfix}"

    def _ncols(self) -> int:
        _, cols = _terminal_size(self.stream)
        return max(30, cols - self.margin)

    def _bar(self, position: int) -> Any:
        # Only the total bar stays on screen at the end; per-sub-session bars are cleared when closed.
        return self._tqdm(total=None, desc="", position=position, file=self.stream, leave=position == 0,
                          unit="slot", dynamic_ncols=False, ncols=self._ncols(), bar_format=self._fmt_text,
                          mininterval=0, miniters=1)

    def _pick(self, tracks: List[_Track]) -> Tuple[List[_Track], List[_Track]]:
        """(shown, hidden): every sub-session when they fit, else the slowest unfinished ones (in range order)."""
        if len(tracks) <= 1:
            return [], []
        if len(tracks) <= self.max_bars:
            return tracks, []
        room = max(0, self.max_bars - 1)   # one line for the summary
        slowest = sorted(tracks, key=lambda t: (t.finished, t.fraction, t.start))[:room]
        keep = {t.session_id for t in slowest}
        return [t for t in tracks if t.session_id in keep], [t for t in tracks if t.session_id not in keep]

    def render(self, final: bool = False) -> None:
        if self._closed:
            return
        tracks, info = self.model.snapshot()
        now = time.monotonic()
        ncols = self._ncols()
        budget = info.get("reconnect_budget")
        with self._tqdm.get_lock():
            if self._total is None:
                self._total = self._bar(0)
            self._total.ncols = ncols
            if not tracks:
                self._text(self._total, f"simclient: {_phase_text(info, now)}", ncols)
                return
            shown, hidden = self._pick(tracks)
            lines = len(shown) + (1 if hidden and self.max_bars > 0 else 0)
            while len(self._slots) < lines:
                self._slots.append(self._bar(len(self._slots) + 1))
                self._slot_keys.append(None)
            for i, t in enumerate(shown):
                self._draw_track(i, t, now, final, ncols, budget)
            if lines > len(shown):
                self._draw_text(len(shown), "summary", "  " + _hidden_summary(hidden), ncols)
            for i in range(lines, len(self._slots)):
                self._draw_text(i, None, "", ncols)
            self._draw_total(tracks, info, now, final, ncols, budget)

    def _draw_track(self, i: int, t: _Track, now: float, final: bool, ncols: int, budget: Optional[int]) -> None:
        bar = self._slots[i]
        bar.ncols = ncols
        reconnecting = _reconnecting_text(t.reconnecting, budget)
        if t.first_slot_at is None and not t.finished:
            self._slot_keys[i] = t.session_id + "/waiting"
            self._text(bar, f"{t.label} …{t.session_id[-6:]} " + (reconnecting or _waiting_text(t, now)), ncols)
            return
        if self._slot_keys[i] != t.session_id:
            self._slot_keys[i] = t.session_id
            bar.bar_format = self._fmt_run
            bar.reset(total=t.total)
        state = "failed" if t.failed else ("done" if t.finished else reconnecting)
        rate = "" if t.finished else _rate_text(t.done, t.total, now - (t.first_slot_at or now), final)
        self._show(bar, t.label, t.done, t.total, ", ".join(x for x in (rate, state, _data_text([t])) if x))

    def _draw_text(self, i: int, key: Optional[str], text: str, ncols: int) -> None:
        bar = self._slots[i]
        bar.ncols = ncols
        self._slot_keys[i] = key
        self._text(bar, text, ncols)

    def _draw_total(self, tracks: List[_Track], info: Dict[str, Any], now: float, final: bool, ncols: int,
                    budget: Optional[int]) -> None:
        total = sum(t.total for t in tracks)
        done = sum(t.done for t in tracks)
        finished = sum(t.finished for t in tracks)
        failed = sum(t.failed for t in tracks)
        waiting = [t for t in tracks if t.first_slot_at is None and not t.finished]
        reconnecting = [t for t in tracks if t.reconnecting]
        many = len(tracks) > 1
        label = "total" if many else tracks[0].label
        if info["first_slot_at"] is None:
            if reconnecting and not many:
                what = _reconnecting_text(reconnecting[0].reconnecting, budget)
            else:
                what = _waiting_text(waiting[0], now) if waiting else "starting"
            self._text(self._total, f"{label}: {what}" +
                       (f" (session …{tracks[0].session_id[-8:]})" if not many else
                        f" ({len(waiting)} of {len(tracks)} sessions starting)"), ncols)
            return
        if self._total.bar_format != self._fmt_run:
            self._total.bar_format = self._fmt_run
            self._total.reset(total=total)
        if self._total.total != total:
            self._total.total = total
        parts = [_rate_text(done, total, now - info["first_slot_at"], final), _data_text(tracks)]
        if many:
            parts.append(f"{finished}/{len(tracks)} done")
        if failed:
            parts.append(f"{failed} failed")
        if reconnecting:
            parts.append(_reconnecting_text(reconnecting[0].reconnecting, budget) if not many else
                         f"{len(reconnecting)} reconnecting")
        self._show(self._total, label, done, total, ", ".join(p for p in parts if p))

    @staticmethod
    def _show(bar: Any, label: str, done: int, total: int, postfix: str) -> None:
        bar.set_description_str(label, refresh=False)
        bar.n = min(done, total)
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def _text(self, bar: Any, text: str, ncols: int) -> None:
        if bar.bar_format != self._fmt_text:
            bar.bar_format = self._fmt_text
        bar.set_description_str(text[:ncols], refresh=False)
        bar.refresh()

    def message(self, text: str) -> None:
        self._tqdm.write(text, file=self.stream)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._tqdm.get_lock():
            for bar in reversed(self._slots):
                bar.close()
            if self._total is not None:
                if self.interrupted:  # the cursor is on the total's line: clear the "^C" echo, then one redraw
                    self.stream.write("\r\x1b[K")
                self._total.close()


def _terminal_size(stream: TextIO) -> Tuple[int, int]:
    """(rows, columns) of the terminal behind ``stream`` (24 x 100 when it has none)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.lines or 24, size.columns or 100
    except (AttributeError, ValueError, OSError):
        size = shutil.get_terminal_size((100, 24))
        return size.lines, size.columns


def _hidden_summary(hidden: List[_Track]) -> str:
    done = sum(t.finished and not t.failed for t in hidden)
    failed = sum(t.failed for t in hidden)
    waiting = sum(t.first_slot_at is None and not t.finished for t in hidden)
    running = len(hidden) - done - failed - waiting
    reconnecting = sum(bool(t.reconnecting) for t in hidden)
    parts = [f"{running} running", f"{done} done"] + ([f"{waiting} starting"] if waiting else []) + \
        ([f"{failed} failed"] if failed else []) + ([f"{reconnecting} reconnecting"] if reconnecting else [])
    return f"… {len(hidden)} more sub-sessions (not the slowest): " + ", ".join(parts)


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


