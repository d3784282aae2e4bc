"""``simclient run --subscriptions logs``: program logs in the run file (issue 13 item 2)."""
from __future__ import annotations

import json

from simclient import events as ev
from simclient.runwriter import StreamingRunRecorder

from .helpers import cli


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def test_logs_only_run_writes_a_record_per_transaction(sim, tmp_path):
    out = tmp_path / "run.json"
    start, end = sim.first_slot, sim.first_slot + 99
    programs = sim.program_ids[:3]
    r = cli(sim, "run", "--start-slot", str(start), "--end-slot", str(end), "--advance-count", "30",
            "--program-id", ",".join(programs), "--subscriptions", "logs", "-o", str(out), "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = _load(out)
    assert doc["metadata"]["complete"] is True and doc["metadata"]["subscriptions"] == ["logs"]
    # each transaction has one program: no signature twice; within a slot by signature (logs carry no position)
    truth = sorted(sim.chain.logs(start, end, programs), key=lambda t: (t["slot"], t["signature"]))
    assert [t["signature"] for t in doc["transactions"]] == [t["signature"] for t in truth]
    for rec, t in zip(doc["transactions"], truth):
        assert (rec["slot"], rec["logs"], rec["error"], rec["success"]) == (t["slot"], t["logs"], t["err"],
                                                                           t["err"] is None)
    assert doc["summary"]["total"] == len(truth) and doc["summary"]["failures"] == sum(
        t["err"] is not None for t in truth) > 0


def test_logs_beside_transactions_change_nothing(sim, tmp_path):
    start, end = sim.first_slot, sim.first_slot + 79
    docs = []
    for kinds in ("transactions", "transactions,logs"):
        out = tmp_path / f"{kinds}.json"
        r = cli(sim, "run", "--start-slot", str(start), "--end-slot", str(end), "--program-id",
                ",".join(sim.program_ids[:2]), "--subscriptions", kinds, "-o", str(out), "--progress", "none")
        assert r.returncode == 0, r.stderr
        docs.append(_load(out))
    assert docs[0]["transactions"] == docs[1]["transactions"] and docs[0]["transactions"]
    assert docs[0]["summary"] == docs[1]["summary"]


def test_logs_are_refused_with_workers(sim):
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "5", "--subscriptions", "logs",
            "--workers", "2", "--progress", "none")
    assert r.returncode == 2 and "logs is not supported with --workers" in r.stderr, r.stderr


def test_recorder_joins_logs_to_a_diff_only_record_and_ignores_a_repeat():
    rec = StreamingRunRecorder(10, 20, joins_diffs=True)
    rec.add_session("s", 10, 20)
    rec.add_event("s", ev.AccountDiff(slot=11, account="A", signature="sig", pre=None, post={"lamports": 1}))
    rec.add_event("s", ev.Logs(11, "sig", {"Custom": 1}, ("a", "b"), "P1"))
    rec.add_event("s", ev.Logs(11, "sig", None, ("other",), "P2"))  # the same transaction for another address
    rec.add_event("s", ev.Logs(12, "only", None, ("c",), "P1"))
    written = []
    rec.sink = type("S", (), {"add_transaction_record": lambda self, sid, r: written.append(r),
                              "add_session": lambda self, *a: None})()
    rec.end_session("s")
    assert [(r["signature"], r["success"], r["error"], r["logs"]) for r in written] == [
        ("sig", False, {"Custom": 1}, ["a", "b"]), ("only", True, None, ["c"])]
    assert written[0]["account_diffs"] == {"A": {"before": None, "after": {"lamports": 1}}}
    assert rec.total == 2 and rec.failures == 1 and rec.successes == 1
