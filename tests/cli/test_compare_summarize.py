"""``simclient compare`` and ``summarize`` on files written by ``simclient run``."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from simclient.local import LocalSimulator

from .helpers import cli

SLOTS = "149"


def _run(sim, path, *extra):
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", SLOTS, "--program-id",
            ",".join(sim.program_ids), "--subscriptions", "transactions,account-diff", "-o", str(path),
            "--progress", "none", *extra)
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture
def run_file(sim, tmp_path):
    return _run(sim, tmp_path / "base.json")


def test_compare_run_with_itself_reports_no_differences(run_file):
    r = cli(None, "compare", str(run_file), str(run_file), "--exit-code")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no differences" in r.stdout
    j = json.loads(cli(None, "compare", str(run_file), str(run_file), "--json").stdout)
    assert j["differences"] is False and j["common"] > 0
    for section in ("regressions", "improvements", "balances"):
        r = cli(None, "compare", str(run_file), str(run_file), section, "--json", "--exit-code")
        assert r.returncode == 0
        assert json.loads(r.stdout) == {section: []}


def test_compare_two_seeds_reports_differences(tmp_path):
    with LocalSimulator(port=0, seed=0) as a:
        base = _run(a, tmp_path / "seed0.json")
    with LocalSimulator(port=0, seed=1) as b:
        exp = _run(b, tmp_path / "seed1.json")
    r = cli(None, "compare", str(base), str(exp), "--exit-code")
    assert r.returncode == 1
    assert "runs differ" in r.stdout
    j = json.loads(cli(None, "compare", str(base), str(exp), "--json").stdout)
    base_doc, exp_doc = (json.loads(p.read_text()) for p in (base, exp))
    base_sigs = {t["signature"] for t in base_doc["transactions"]}
    exp_sigs = {t["signature"] for t in exp_doc["transactions"]}
    assert set(j["only_in_baseline"]) == base_sigs - exp_sigs
    assert set(j["only_in_experiment"]) == exp_sigs - base_sigs
    assert j["differences"] is True


def test_compare_sections_find_regressions_improvements_and_balances(run_file, tmp_path):
    doc = json.loads(run_file.read_text())
    ok = next(t for t in doc["transactions"] if t["success"])
    bad = next(t for t in doc["transactions"] if not t["success"])
    ok.update(success=False, error={"InstructionError": [0, {"Custom": 1}]})
    bad.update(success=True, error=None)
    moved = next(t for t in doc["transactions"] if t["sol_changes"] and t is not ok and t is not bad)
    key = next(iter(moved["sol_changes"]))
    moved["sol_changes"][key] += 1
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps(doc))
    regressions = json.loads(cli(None, "compare", str(run_file), str(exp), "regressions", "--json").stdout)
    assert [x["signature"] for x in regressions["regressions"]] == [ok["signature"]]
    improvements = json.loads(cli(None, "compare", str(run_file), str(exp), "improvements", "--json").stdout)
    assert [x["signature"] for x in improvements["improvements"]] == [bad["signature"]]
    balances = json.loads(cli(None, "compare", str(run_file), str(exp), "balances", "--json").stdout)
    assert moved["signature"] in [x["signature"] for x in balances["balances"]]
    text = cli(None, "compare", str(run_file), str(exp), "regressions")
    assert "regressions (ok -> failed): 1" in text.stdout and ok["signature"] in text.stdout


def test_summarize_totals_match(sim, run_file):
    doc = json.loads(run_file.read_text())
    start, end = sim.first_slot, sim.first_slot + int(SLOTS)
    truth = sim.chain.transactions(start, end, sim.program_ids)
    r = cli(None, "summarize", str(run_file), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["total"], s["successes"], s["failures"]) == (
        len(truth), sum(t["meta"]["err"] is None for t in truth), sum(t["meta"]["err"] is not None for t in truth))
    assert s["file_summary"] == doc["summary"]
    assert s["complete"] is True and s["sessions"] == 1
    assert s["account_diffs"] == len(sim.chain.account_diffs(start, end, sim.program_ids))
    programs = Counter(t["transaction"]["message"]["accountKeys"][-1] for t in truth)
    assert dict(s["top_programs"]) == dict(programs)
    text = cli(None, "summarize", str(run_file))
    assert f"transactions: {len(truth)}" in text.stdout


def test_summarize_accounts(sim, run_file):
    start, end = sim.first_slot, sim.first_slot + int(SLOTS)
    account = sim.chain.accounts_of(sim.program_ids[0])[0]
    r = cli(None, "summarize", str(run_file), "--accounts", account, "--json")
    s = json.loads(r.stdout)
    a = s["accounts"][account]
    truth = sim.chain.transactions(start, end, sim.program_ids)
    # first the whole file: a failure below then says which transactions went missing or came twice
    assert s["complete"] is True, json.loads(run_file.read_text())["metadata"]
    got = Counter(t["signature"] for t in json.loads(run_file.read_text())["transactions"])
    want = Counter(t["transaction"]["signatures"][0] for t in truth)
    assert got == want, (f"missing {sorted(want - got)}, extra {sorted(got - want)}")
    sol = 0
    for t in truth:
        keys = t["transaction"]["message"]["accountKeys"]
        for k, pre, post in zip(keys, t["meta"]["preBalances"], t["meta"]["postBalances"]):
            if k == account:
                sol += post - pre
    diffs = [d for d in sim.chain.account_diffs(start, end, sim.program_ids) if d["account"] == account]
    assert diffs
    assert a["sol_change"] == sol
    assert a["writes"] == len(diffs)
    assert a["lamports_before"] == diffs[0]["pre"]["lamports"]
    assert a["lamports_after"] == diffs[-1]["post"]["lamports"]


def test_bad_files_are_one_line_errors(tmp_path):
    missing = cli(None, "summarize", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith("no such file")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    r = cli(None, "compare", str(junk), str(junk))
    assert r.returncode == 2 and "not JSON" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
