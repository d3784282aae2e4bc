"""The streamed run writer (issue 12): same file as the in-memory writer, partial files after SIGINT hold only
final records, the output path is checked before the run, the target's mode is kept."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import time

import pytest

from simclient import Client
from simclient import events as ev
from simclient.cli import ProgressModel, RunEngine, RunOptions
from simclient.local import LocalSimulator
from simclient.runfile import RunRecorder, write_run
from simclient.runwriter import JsonRunSink, StreamingRunRecorder

from .helpers import cli, popen_cli, wait_for_line


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def _without_timestamp(doc):
    doc = json.loads(json.dumps(doc))
    doc["metadata"].pop("timestamp", None)
    return doc


# ------------------------------------------------------------------------------------------ scripted events


def _tx(sig, slot, err=None):
    return ev.Transaction(slot=slot, signature=sig, value={
        "slot": slot, "transaction": {"signatures": [sig], "message": {"accountKeys": ["A", "P"],
                                                                       "instructions": [{"programIdIndex": 1}]}},
        "meta": {"err": err, "logMessages": [f"log {sig}"], "preBalances": [10, 1], "postBalances": [7, 1]}})


def _diff(sig, slot, account):
    return ev.AccountDiff(slot=slot, account=account, signature=sig, pre={"lamports": 1}, post={"lamports": 2})


SCRIPT = [  # (session, event, delivered_through after it)
    ("s1", _tx("a", 10), 9), ("s1", _diff("a", 10, "X"), 9), ("s1", _diff("b", 10, "Y"), 9),  # b: diff first
    ("s1", _tx("b", 10, {"InstructionError": [0, "Custom"]}), 9), ("s1", _diff(None, 10, "Z"), 9),
    ("s1", _diff("c", 11, "X"), 10),  # c: a diff without its transaction
    ("s2", _tx("d", 20), 19), ("s1", _tx("e", 11), 10), ("s2", _diff("d", 20, "W"), 20),
    ("s1", _tx("f", 12), 11),
]


def _feed(streamed, old, upto=len(SCRIPT), sessions=(("s2", (20, 29)), ("s1", (10, 19)))):
    for sid, rng in sessions:
        streamed.add_session(sid, *rng)
        old.add_session(sid, *rng)
    for sid, event, through in SCRIPT[:upto]:
        streamed.add_event(sid, event)
        old.add_event(event)
        streamed.advance(sid, through)


def test_streamed_file_equals_the_in_memory_writer_for_scripted_events(tmp_path):
    for parallel in (False, True):
        target = tmp_path / f"run-{parallel}.json"
        streamed = StreamingRunRecorder(10, 29, ["P"], {"k": 1}, JsonRunSink(str(target), parallel=parallel))
        old = RunRecorder(10, 29, ["P"], {"k": 1})
        # parallel: sessions announced out of range order; single mode streams the first session straight into the
        # file, so it must be the lowest range
        _feed(streamed, old, sessions=(("s2", (20, 29)), ("s1", (10, 19)))[::1 if parallel else -1])
        for sid in ("s1", "s2"):
            streamed.mark_completed(sid)
            old.mark_completed(sid)
        assert streamed.pending > 0           # the newest slots are still in the window
        streamed.finish(complete=True)
        got = _load(target)
        assert list(got)[-1] == "metadata"    # metadata last: only known at the end
        assert _without_timestamp(got) == _without_timestamp(old.document(complete=True))
        assert not [f for f in os.listdir(tmp_path) if f.startswith(".simclient-run-")]  # no spool left


def test_records_are_written_only_once_final_and_an_interrupt_drops_the_window(tmp_path):
    target = tmp_path / "run.json"
    sink = JsonRunSink(str(target), parallel=True)
    streamed = StreamingRunRecorder(10, 29, ["P"], None, sink)
    _feed(streamed, RunRecorder(10, 29), upto=6)  # up to c's diff: slot 10 is final, slot 11 not
    assert streamed.total == 2 and streamed.pending == 1
    streamed.finish(complete=False, interrupted=True)
    doc = _load(target)
    assert [t["signature"] for t in doc["transactions"]] == ["a", "b"]
    assert doc["transactions"][1]["account_diffs"] == {"Y": {"before": {"lamports": 1}, "after": {"lamports": 2}}}
    assert doc["summary"] == {"total": 2, "successes": 1, "failures": 1}
    assert doc["metadata"]["complete"] is False and doc["metadata"]["interrupted"] is True
    assert doc["unattributed_account_diffs"] == [{"slot": 10, "account": "Z", "before": {"lamports": 1},
                                                  "after": {"lamports": 2}}]


def test_an_event_for_a_written_slot_is_counted_not_duplicated(tmp_path):
    target = tmp_path / "run.json"
    streamed = StreamingRunRecorder(10, 19, ["P"], None, JsonRunSink(str(target)))
    streamed.add_session("s", 10, 19)
    streamed.add_event("s", _tx("a", 10))
    streamed.advance("s", 10)
    streamed.add_event("s", _diff("a", 10, "X"))  # a server breaking slot order
    streamed.finish(complete=True)
    doc = _load(target)
    assert [t["signature"] for t in doc["transactions"]] == ["a"]
    assert doc["metadata"]["late_events_dropped"] == 1
    assert doc["metadata"]["complete"] is False  # an event the stream delivered is not in the file


def test_abort_leaves_no_file(tmp_path):
    target = tmp_path / "run.json"
    streamed = StreamingRunRecorder(10, 19, [], None, JsonRunSink(str(target), parallel=True))
    streamed.add_session("s", 10, 19)
    streamed.add_event("s", _tx("a", 10))
    streamed.finish(complete=False, write=False)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------ real runs


class _Tee(StreamingRunRecorder):
    """Feeds today's in-memory RunRecorder the same events as the streamed writer."""

    def __init__(self, old, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.old = old

    def add_session(self, session_id, start_slot, end_slot):
        self.old.add_session(session_id, start_slot, end_slot)
        super().add_session(session_id, start_slot, end_slot)

    def add_event(self, session_id, event):
        self.old.add_event(event)
        super().add_event(session_id, event)

    def mark_completed(self, session_id):
        self.old.mark_completed(session_id)
        super().mark_completed(session_id)


@pytest.mark.parametrize("parallel", [False, True], ids=["single", "parallel"])
def test_streamed_file_equals_todays_writer_for_the_same_run(sim, tmp_path, parallel):
    start, end = sim.first_slot + 50, sim.first_slot + 349
    programs = sim.program_ids
    opts = RunOptions(start_slot=start, end_slot=end, parallel=parallel, program_ids=programs,
                      subscriptions=("transactions", "account-diff"))
    old = RunRecorder(start, end, programs, {"x": 1})
    streamed_path = tmp_path / "streamed.json"
    tee = _Tee(old, start, end, programs, {"x": 1}, JsonRunSink(str(streamed_path), parallel=parallel))
    engine = RunEngine(Client(sim.url, sim.api_key), opts, tee, ProgressModel())
    engine.start()
    assert engine.join(60)
    assert engine.error is None and not engine.failures
    tee.finish(complete=True)
    write_run(str(tmp_path / "old.json"), old.document(complete=True))
    new_doc, old_doc = _load(streamed_path), _load(tmp_path / "old.json")
    assert len(new_doc["transactions"]) > 500 and any(t["account_diffs"] for t in new_doc["transactions"])
    assert _without_timestamp(new_doc) == _without_timestamp(old_doc)   # dict equality: key order ignored
    assert len(new_doc["metadata"]["session_ids"]) == (1 if not parallel else len(sim.chain.bundles_covering(
        start, end)))


# ------------------------------------------------------------------------------------------ Ctrl-C at random points

_SLOTS = re.compile(r"\] (\d+)/(\d+) slots")


def _cli_args(sim, out, start, end, parallel):
    return ["run", "--start-slot", str(start), "--end-slot", str(end), "--program-id", ",".join(sim.program_ids),
            "--subscriptions", "transactions,account-diff", "-o", str(out), "--progress", "lines",
            "--progress-interval", "0.05"] + (["--parallel"] if parallel else [])


@pytest.mark.parametrize("parallel", [False, True], ids=["single", "parallel"])
def test_sigint_at_random_points_leaves_a_subset_of_the_full_run(tmp_path, parallel):
    rnd = random.Random(1200 + parallel)
    with LocalSimulator(port=0, slot_pace_ms=4) as sim:
        start, end = sim.first_slot, sim.first_slot + 799
        full_path = tmp_path / "full.json"
        r = cli(sim, *_cli_args(sim, full_path, start, end, parallel))
        assert r.returncode == 0, r.stderr
        full = {t["signature"]: t for t in _load(full_path)["transactions"]}
        for i in range(2):
            target = rnd.randrange(20, 700)           # interrupt once this many slots are done
            out = tmp_path / f"partial{i}.json"
            proc = popen_cli(sim, *_cli_args(sim, out, start, end, parallel))
            try:
                pattern = r"\] (\d+)/800 slots"
                reached = False
                deadline = time.monotonic() + 60
                while not reached and time.monotonic() < deadline:
                    m, lines = wait_for_line(proc, pattern, timeout=deadline - time.monotonic())
                    assert m, lines
                    reached = int(m.group(1)) >= target
                proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                proc.stderr.close()
            assert code == 130, (target, code)
            doc = _load(out)
            assert doc["metadata"]["complete"] is False
            sigs = [t["signature"] for t in doc["transactions"]]
            assert len(sigs) == len(set(sigs)), "duplicated records"
            assert len(sigs) < len(full)
            for t in doc["transactions"]:
                assert t == full[t["signature"]], f"record {t['signature']} differs from the full run's"
            assert doc["summary"]["total"] == len(sigs)


# ------------------------------------------------------------------------------------------ output path


@pytest.mark.parametrize("where", ["missing-dir", "directory", "read-only"])
def test_unusable_output_path_is_a_usage_error_before_any_session(sim, tmp_path, where):
    if where == "missing-dir":
        out = str(tmp_path / "nope" / "run.json")
    elif where == "directory":
        out = str(tmp_path)
    elif os.geteuid() == 0:   # root writes through permission bits: use a location nobody can create files in
        out = "/proc/simclient-run.json"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = str(ro / "run.json")
    started = time.monotonic()
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "50",
            "--program-id", sim.program_ids[0], "-o", out, "--progress", "none")
    took = time.monotonic() - started
    assert r.returncode == 2, r.stderr
    assert "--output-file" in r.stderr and "Traceback" not in r.stderr
    assert sim.stats["sessions_created"] == 0
    assert took < 5.0  # the process itself (interpreter start) included; the check itself is milliseconds


def test_output_path_check_is_fast_and_sessionless_in_process(tmp_path):
    from simclient.runfile import OutputPathError, check_output_path

    started = time.monotonic()
    for bad in (str(tmp_path / "nope" / "x.json"), str(tmp_path)):
        with pytest.raises(OutputPathError):
            check_output_path(bad)
    assert time.monotonic() - started < 1.0
    assert check_output_path(str(tmp_path / "ok.json")) == str(tmp_path)
    assert os.listdir(tmp_path) == []  # the probe file is gone


def test_an_existing_targets_mode_is_kept(sim, tmp_path):
    out = tmp_path / "run.json"
    out.write_text("{}")
    out.chmod(0o644)
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "20",
            "--program-id", sim.program_ids[0], "-o", str(out), "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert _load(out)["metadata"]["complete"] is True
    new = tmp_path / "new.json"
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "20",
            "--program-id", sim.program_ids[0], "-o", str(new), "--progress", "none")
    assert r.returncode == 0, r.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask   # like open(), not mkstemp's 0600


def test_stdout_output_is_the_same_json(sim, tmp_path):
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "30", "--parallel",
            "--program-id", ",".join(sim.program_ids), "--subscriptions", "transactions,account-diff",
            "-o", "-", "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metadata"]["complete"] is True and doc["summary"]["total"] == len(doc["transactions"]) > 0


def test_a_run_whose_file_lost_late_events_exits_failed(tmp_path, monkeypatch):
    # a backtest file that lacks events the stream delivered must not look like a success to a script
    import io

    from simclient import Client
    from simclient.cli import engine
    from simclient.cli.common import EXIT_FAILED
    from simclient.local import LocalSimulator
    from simclient.testing import fast_config

    class LateRecorder(engine.StreamingRunRecorder):
        def advance(self, session_id, through):  # type: ignore[override]
            super().advance(session_id, through)
            if self.total and not self.late_events:  # one event for a slot already written (a broken slot order)
                self.add_event(session_id, _diff("late", self.start_slot, "X"))

    monkeypatch.setattr(engine, "StreamingRunRecorder", LateRecorder)
    with LocalSimulator(port=0) as sim:
        opts = engine.RunOptions(sim.first_slot, sim.first_slot + 99, program_ids=list(sim.program_ids))
        out = engine.execute_run(Client(sim.url, sim.api_key, fast_config()), opts, str(tmp_path / "run.json"),
                                 progress="none", stream=io.StringIO())
    assert out.exit_code == EXIT_FAILED and "missing from the file" in (out.error or "")
    doc = _load(tmp_path / "run.json")
    assert doc["metadata"]["complete"] is False and doc["metadata"]["late_events_dropped"] == 1
