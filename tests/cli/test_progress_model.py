"""The progress renderers without a terminal: which sub-sessions get a bar, rates, the reconnect hint."""
from __future__ import annotations

import io
import re

import pytest

from simclient import events as ev
from simclient.cli import LineRenderer, ProgressModel, TqdmRenderer
from simclient.stats import SessionStats


def _model(n: int, stats: "list | None" = None) -> ProgressModel:
    model = ProgressModel()
    for i in range(n):
        model.add(f"session-{i:08d}", 100 * i, 100 * i + 99, stats[i] if stats else None)
    return model


def test_too_many_sub_sessions_show_the_slowest_and_summarise_the_rest():
    pytest.importorskip("tqdm")
    from tqdm import tqdm

    model, out = _model(6), io.StringIO()
    for i, done in enumerate([90, 10, 50, 99, 5, 70]):   # slowest: #4 (5), #1 (10), #2 (50)
        model.on_event(f"session-{i:08d}", ev.Slot(100 * i + done - 1))
    r = TqdmRenderer(model, out, tqdm, max_bars=4)       # 3 bars + the summary line
    r.render()
    shown = set(re.findall(r"(\d+)\.\.(\d+): ", out.getvalue()))
    r.close()
    assert shown == {("400", "499"), ("100", "199"), ("200", "299")}
    assert "… 3 more sub-sessions (not the slowest): 3 running, 0 done" in out.getvalue()


def test_no_rate_in_the_first_second_after_the_first_slot():
    model, out = _model(1), io.StringIO()
    model.on_event("session-00000000", ev.Slot(50))
    LineRenderer(model, out, interval=60).render()
    assert "51/100 slots" in out.getvalue() and "slots/s" not in out.getvalue() and "ETA" not in out.getvalue()


def test_reconnecting_attempt_comes_from_the_session_stats():
    stats = [SessionStats(), SessionStats()]
    model, out = _model(2, stats), io.StringIO()
    model.reconnect_budget = 10
    for i in range(2):
        model.on_event(f"session-{i:08d}", ev.Slot(100 * i + 10))
    stats[1].reconnecting_attempt = 3
    r = LineRenderer(model, out, interval=60)
    r.render()
    assert "| 1 reconnecting (attempt 3/10)" in out.getvalue()
    stats[1].reconnecting_attempt = 0
    r.render()
    assert "reconnecting" not in out.getvalue().splitlines()[-1]


def test_a_streaming_parallel_create_shows_the_count_and_the_latest_status():
    from simclient import CreateStatus, SessionCreatedInfo

    model, out = ProgressModel(), io.StringIO()
    model.set_phase("creating parallel sessions")
    r = LineRenderer(model, out, interval=60)
    r.render()
    assert re.search(r"creating parallel sessions for [\d.]+s$", out.getvalue().splitlines()[-1])
    model.on_create_status(CreateStatus("preparingBundle", None, 0))
    model.on_session_created(SessionCreatedInfo("backtest_a", "/a", None, 1))
    r.render()
    assert out.getvalue().splitlines()[-1].endswith(": created 1 sub-session, preparingBundle")
    model.on_create_status(CreateStatus("bundleReady", "backtest_a", 1))
    for k in (2, 3):
        model.on_session_created(SessionCreatedInfo(f"backtest_{k}", f"/{k}", None, k))
    r.render()
    assert out.getvalue().splitlines()[-1].endswith(": created 3 sub-sessions, bundleReady")
    model.on_session_created(SessionCreatedInfo("backtest_z", "/z", None, 1, attempt=2))  # the create re-sent
    r.render()
    assert out.getvalue().splitlines()[-1].endswith(": created 1 sub-session, attempt 2")


def test_the_create_progress_on_a_terminal_bar():
    pytest.importorskip("tqdm")
    from tqdm import tqdm

    from simclient import CreateStatus, SessionCreatedInfo

    model, out = ProgressModel(), io.StringIO()
    model.set_phase("creating parallel sessions")
    for k in (1, 2):
        model.on_session_created(SessionCreatedInfo(f"backtest_{k}", f"/{k}", None, k))
    model.on_create_status(CreateStatus("bundleReady", "backtest_2", 2))
    r = TqdmRenderer(model, out, tqdm, max_bars=4)
    r.render()
    r.close()
    assert "creating parallel sessions for" in out.getvalue()
    assert "created 2 sub-sessions, bundleReady" in out.getvalue()


def test_every_data_event_kind_is_counted_not_only_transactions():
    """A logs-only or diffs-only run must not look idle: each data kind that arrived is shown beside the txs."""
    model, out = _model(1), io.StringIO()
    sid = "session-00000000"
    model.on_event(sid, ev.Slot(10))
    for i in range(3):
        model.on_event(sid, ev.AccountDiff(slot=10, account="A", signature=f"s{i}", pre=None, post=None))
    for i in range(2):
        model.on_event(sid, ev.Logs(slot=10, signature=f"s{i}", err=None, logs=[], program_id="P"))
    LineRenderer(model, out, interval=60).render()
    line = out.getvalue().splitlines()[-1]
    assert "| 0 txs, 3 diffs, 2 logs" in line and "actions" not in line
    model.on_event(sid, ev.Transaction(slot=11, signature="t", value={}))
    LineRenderer(model, out, interval=60).render()
    assert "| 1 txs, 3 diffs, 2 logs" in out.getvalue().splitlines()[-1]
