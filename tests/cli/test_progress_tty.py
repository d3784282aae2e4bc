"""The progress bars as a user sees them: the CLI on a pseudo-terminal of a given size, read through a small VT100
screen (tests/cli/ptyterm.py). Each test ends the run with ^C typed on the terminal."""
from __future__ import annotations

import re
from typing import List

import pytest

from simclient.local import LocalSimulator

from .ptyterm import PtyCli

pytest.importorskip("tqdm")

PACE_MS = 40          # per slot and sub-session: at most 25 slots/s each, so a 100-slot sub-session runs ~4 s
SUB_BAR = re.compile(r"^\d{9}\.\.\d{9}: +\d+%\|")
RATE = re.compile(r"(\d+(?:\.\d+)?) ?slots?/s")


def _run_args(sim: LocalSimulator, slots: int, parallel: bool) -> List[str]:
    return ["--url", sim.url, "--api-key", sim.api_key, "run", "--start-slot", str(sim.first_slot), "--slot-count",
            str(slots - 1), "--program-id", sim.program_ids[0], "--progress", "bars"] + \
        (["--parallel"] if parallel else [])


def _sub_bars(term: PtyCli) -> List[str]:
    return [line for line in term.screen.text() if SUB_BAR.match(line)]


def _stop(term: PtyCli) -> int:
    term.type_ctrl_c()
    return term.finish()


def test_bars_use_the_terminal_height():
    """20 sub-sessions on a 40-line terminal: a bar for each (the old renderer capped them at 16 and then showed
    only the total)."""
    with LocalSimulator(port=0, slot_pace_ms=PACE_MS) as sim:
        term = PtyCli(_run_args(sim, 2000, parallel=True), rows=40, cols=120)
        try:
            assert term.wait_for(lambda t: len(_sub_bars(t)) == 20, timeout=30), "\n".join(term.screen.text())
        finally:
            assert _stop(term) == 130


def test_more_sub_sessions_than_lines_show_the_slowest_and_a_summary():
    with LocalSimulator(port=0, slot_pace_ms=PACE_MS) as sim:
        term = PtyCli(_run_args(sim, 2000, parallel=True), rows=12, cols=120)   # 9 lines for sub-sessions
        try:
            assert term.wait_for(lambda t: len(_sub_bars(t)) == 8 and any("more sub-sessions" in line
                                                                          for line in t.screen.text()),
                                 timeout=30), "\n".join(term.screen.text())
            summary = [line for line in term.screen.text() if "more sub-sessions" in line]
            assert summary and "12 more sub-sessions" in summary[-1]
        finally:
            assert _stop(term) == 130


def test_no_absurd_rate_before_a_measurable_interval():
    """Every rate shown is near what the simulator can deliver (25 slots/s per sub-session here; the bound allows
    for a backlog delivered at once on a busy machine); the first frame used to show tens of thousands of
    slots/s."""
    with LocalSimulator(port=0, slot_pace_ms=PACE_MS) as sim:
        term = PtyCli(_run_args(sim, 400, parallel=True), rows=30, cols=140)   # 4 sub-sessions
        try:
            assert term.wait_for(lambda t: len(RATE.findall(t.raw)) >= 10, timeout=30), term.raw[-2000:]
        finally:
            _stop(term)
    frames = re.split(r"[\r\n]", term.raw)
    for frame in frames:
        m = RATE.search(frame)
        if m is None:
            continue
        limit = 4 * 1000 / PACE_MS if frame.lstrip().startswith("total") else 1000 / PACE_MS
        assert float(m.group(1)) <= 4 * limit, frame


def test_a_reconnect_shows_on_the_bar():
    """The server goes away mid-run: the bar says it is reconnecting, with the attempt count, instead of showing a
    falling rate for two minutes."""
    sim = LocalSimulator(port=0, slot_pace_ms=PACE_MS).start()
    try:
        term = PtyCli(_run_args(sim, 1000, parallel=False), rows=20, cols=140)
        try:
            assert term.wait_for(lambda t: re.search(r"\d+/1000 slots", t.raw) is not None, timeout=30), term.raw
            sim.stop()
            assert term.wait_for(lambda t: re.search(r"reconnecting \(attempt \d+/10\)", t.raw) is not None,
                                 timeout=15), "\n".join(term.screen.text())
        finally:
            _stop(term)
    finally:
        sim.stop()


def test_ctrl_c_leaves_one_bar_on_screen():
    """The echoed ^C must not push the last redraw onto a second line (a full-width bar wrapped)."""
    with LocalSimulator(port=0, slot_pace_ms=PACE_MS) as sim:
        term = PtyCli(_run_args(sim, 1000, parallel=False), rows=20, cols=100)
        try:
            assert term.wait_for(lambda t: re.search(r"[1-9]\d*/1000 slots", t.raw) is not None, timeout=30)
        finally:
            code = _stop(term)
    assert code == 130
    screen = term.screen.text()
    bars = [line for line in screen if "/1000 slots" in line]
    assert len(bars) == 1, "\n".join(screen)
    assert any(line.startswith("simclient: interrupted") for line in screen), "\n".join(screen)
