"""``simclient run`` as a subprocess against a LocalSimulator in the test process: output vs ground truth."""
from __future__ import annotations

import json

from .helpers import cli, signatures, truth_signatures


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def test_parallel_run_transactions_equal_ground_truth(sim, tmp_path):
    out = tmp_path / "run.json"
    programs = sim.program_ids[:2]
    start = sim.first_slot + 150          # mid-bundle: the server anchors to the covering bundles
    r = cli(sim, "run", "--start-slot", str(start), "--slot-count", "249", "--parallel",
            "--program-id", programs[0], "--program-id", programs[1], "--subscriptions", "transactions",
            "--output-file", str(out), "--progress", "lines")
    assert r.returncode == 0, r.stderr
    doc = _load(out)
    meta = doc["metadata"]
    assert meta["complete"] is True and meta["interrupted"] is False
    assert meta["start_slot"] == start and meta["end_slot"] == start + 249
    assert meta["program_ids"] == programs
    sessions = meta["sessions"]
    assert [s["session_id"] for s in sessions] == meta["session_ids"]
    assert all(s["completed"] for s in sessions)
    covering = sim.chain.bundles_covering(start, start + 249)
    assert [(s["start_slot"], s["end_slot"]) for s in sessions] == covering
    lo, hi = covering[0][0], covering[-1][1]
    assert signatures(doc) == truth_signatures(sim.chain, lo, hi, programs)
    truth = sim.chain.transactions(lo, hi, programs)
    assert doc["summary"] == {"total": len(truth),
                              "successes": sum(t["meta"]["err"] is None for t in truth),
                              "failures": sum(t["meta"]["err"] is not None for t in truth)}
    # the per-transaction shape of `sim run`
    for rec, tx in zip(doc["transactions"], truth):
        keys = tx["transaction"]["message"]["accountKeys"]
        deltas = {k: b - a for k, a, b in zip(keys, tx["meta"]["preBalances"], tx["meta"]["postBalances"]) if b != a}
        assert rec["slot"] == tx["slot"]
        assert rec["success"] is (tx["meta"]["err"] is None)
        assert rec["error"] == tx["meta"]["err"]
        assert rec["logs"] == tx["meta"]["logMessages"]
        assert rec["sol_changes"] == deltas
        assert rec["token_changes"] == {}
        assert rec["account_diffs"] == {}
    assert "sub-sessions" in r.stderr and "wrote" in r.stderr


def test_single_run_joins_account_diffs_by_signature(sim, tmp_path):
    out = tmp_path / "run.json"
    start, end = sim.first_slot, sim.first_slot + 119
    r = cli(sim, "run", "--start-slot", str(start), "--end-slot", str(end), "--advance-count", "40",
            "--program-id", ",".join(sim.program_ids[1:4]),
            "--subscriptions", "transactions,account-diff", "--output-file", str(out), "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = _load(out)
    assert doc["metadata"]["complete"] is True
    assert len(doc["metadata"]["session_ids"]) == 1
    programs = doc["metadata"]["program_ids"]
    assert programs == sim.program_ids[1:4]
    assert signatures(doc) == truth_signatures(sim.chain, start, end, programs)
    by_sig = {t["signature"]: t for t in doc["transactions"]}
    truth_diffs = sim.chain.account_diffs(start, end, programs)
    assert truth_diffs
    for d in truth_diffs:
        assert by_sig[d["signature"]]["account_diffs"][d["account"]] == {"before": d["pre"], "after": d["post"]}
    assert sum(len(t["account_diffs"]) for t in doc["transactions"]) == len(truth_diffs)
    assert "unattributed_account_diffs" not in doc


def test_run_needs_program_ids_for_subscriptions(sim, tmp_path):
    # (a local simulator offers its program ids, so `run` would learn them: a server without that endpoint)
    r = cli(None, "--url", "ws://127.0.0.1:9/backtest", "run", "--start-slot", str(sim.first_slot), "--slot-count",
            "5")
    assert r.returncode == 2
    assert "--program-id" in r.stderr
    assert "Traceback" not in r.stderr


def test_control_only_run_without_output_file(sim):
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "20", "--subscriptions", "none",
            "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert "no --output-file" in r.stderr


def test_output_to_stdout(sim):
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "30", "--program-id",
            sim.program_ids[0], "-o", "-", "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert signatures(doc) == truth_signatures(sim.chain, sim.first_slot, sim.first_slot + 30, sim.program_ids[:1])


def test_parallel_failure_listed_once_and_exit_1(sim, tmp_path):
    out = tmp_path / "run.json"
    bad_slot = sim.first_slot + 150
    sim.faults.fail_at_slot(bad_slot)
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "299", "--parallel",
            "--program-id", sim.program_ids[0], "--output-file", str(out), "--progress", "none")
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("  ")]
    assert len(lines) == 1, r.stderr
    assert f"{sim.first_slot + 100}..{sim.first_slot + 199}" in lines[0]
    assert "1 of 3 session(s) failed" in r.stderr
    doc = _load(out)
    assert doc["metadata"]["complete"] is False
    assert len(doc["metadata"]["failures"]) == 1
    failed = [s for s in doc["metadata"]["sessions"] if not s["completed"]]
    assert [(s["start_slot"], s["end_slot"]) for s in failed] == [(sim.first_slot + 100, sim.first_slot + 199)]


def test_local_flag_runs_in_process_simulator(tmp_path):
    out = tmp_path / "run.json"
    r = cli(None, "run", "--local", "--slot-count", "99", "--parallel", "--subscriptions",
            "transactions,account-diff", "-o", str(out), "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = _load(out)
    from simclient.local import LocalSimulator

    chain = LocalSimulator(port=0).chain  # not started: the chain alone is the ground truth
    assert doc["metadata"]["program_ids"] == chain.program_ids
    assert signatures(doc) == truth_signatures(chain, chain.first_slot, chain.first_slot + 99, chain.program_ids)
