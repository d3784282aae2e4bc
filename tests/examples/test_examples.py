"""Every example runs to completion: against a LocalSimulator in the test process (SIMULATOR_URL set, as for the
hosted service), and with no SIMULATOR_URL (the example starts its own local simulator)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Dict, Iterator, Optional

import pytest

from simclient.local import LocalSimulator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    env.update(extra)
    return env


def _run(script: str, env: Dict[str, str], args: Optional[list] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *(args or [])], capture_output=True,
                          text=True, timeout=120, env=env, cwd=REPO)


@pytest.fixture
def sim() -> Iterator[LocalSimulator]:
    with LocalSimulator(port=0) as s:
        yield s


@pytest.fixture
def sim_env(sim) -> Dict[str, str]:
    return _env(SIMULATOR_URL=sim.url, SIMULATOR_API_KEY=sim.api_key,
                SIMULATOR_PROGRAM_IDS=",".join(sim.program_ids))


def _truth_count(sim, start, end, programs=None):
    return len(sim.chain.transactions(start, end, programs or sim.program_ids))


def test_single_session_against_simulator_url(sim, sim_env):
    r = _run("single_session.py", sim_env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"replayed (\d+)\.\.(\d+): (\d+) slots announced, (\d+) transactions", r.stdout)
    assert m, r.stdout
    start, end, _, txs = map(int, m.groups())
    assert start == sim.first_slot
    assert txs == _truth_count(sim, start, end)
    assert sim.stats["sessions_created"] == 1


def test_parallel_run_against_simulator_url(sim, sim_env):
    r = _run("parallel_run.py", sim_env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"(\d+) sub-sessions covering (\d+)\.\.(\d+), (\d+) completed, 0 failed", r.stdout)
    assert m, r.stdout
    n, lo, hi, done = map(int, m.groups())
    assert n == done == len(sim.chain.bundles_covering(lo, hi))
    counts = {pid: int(c) for c, pid in re.findall(r"^\s+(\d+)\s+(\S+)$", r.stdout, re.M)}
    truth = sim.chain.transactions(lo, hi, sim.program_ids)
    for pid in sim.program_ids:
        assert counts.get(pid, 0) == sum(t["transaction"]["message"]["accountKeys"][-1] == pid for t in truth)


def test_subscribe_and_rpc_against_simulator_url(sim, sim_env):
    r = _run("subscribe_and_rpc.py", sim_env)
    assert r.returncode == 0, r.stderr
    assert re.search(r"paused before slot \d+ batch \d+", r.stdout), r.stdout
    assert "getBalance(" in r.stdout and "getSlot=" in r.stdout
    m = re.search(r"completed (\d+)\.\.(\d+): (\d+) transactions, paused once: True", r.stdout)
    assert m, r.stdout
    start, end, txs = map(int, m.groups())
    assert txs == _truth_count(sim, start, end)


def test_discovery_stepping_against_simulator_url(sim, sim_env):
    program = sim.program_ids[3]
    watch = sim.chain.accounts_of(program)[2]
    r = _run("discovery_stepping.py", {**sim_env, "SIMULATOR_PROGRAM_IDS": program, "SIMULATOR_WATCH_ACCOUNT": watch})
    assert r.returncode == 0, r.stderr
    m = re.search(r"completed (\d+)\.\.(\d+): paused (\d+) times", r.stdout)
    assert m, r.stdout
    start, end, count = map(int, m.groups())
    pauses = [(int(s), int(b), int(lam)) for s, b, lam in
              re.findall(r"before slot (\d+) batch (\d+) .*: (\d+) lamports", r.stdout)]
    truth = []  # every batch of the range that invokes the program (the chain's ground truth)
    slot, batch = start, 0
    while True:
        found = sim.chain.find_match([{"programExecuted": program}], slot, batch, end)
        if found is None:
            break
        truth.append(found[:2])
        slot, batch = found[0], found[1] + 1
    assert count == len(truth) > 0
    assert [(s, b) for s, b, _ in pauses] == truth
    for s, b, lamports in pauses:  # the RPC read at each pause: the state right before that batch
        assert lamports == sim.chain.account_at(watch, s, b)["lamports"]


@pytest.mark.parametrize("script", ["single_session.py", "parallel_run.py", "subscribe_and_rpc.py",
                                    "discovery_stepping.py"])
def test_examples_start_their_own_local_simulator(script):
    r = _run(script, _env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(script[:-3]), r.stdout


def test_user_facing_example_test_passes():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(EXAMPLES, "test_my_strategy.py")], capture_output=True, text=True,
                       timeout=120, env=_env(), cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout


def test_demo_small(tmp_path):
    out = tmp_path / "demo.json"
    r = subprocess.run([sys.executable, "-m", "simclient.demo", "--slots", "300", "--output-file", str(out),
                        "--progress", "lines", "--progress-interval", "0.5"], capture_output=True, text=True,
                       timeout=120, env=_env(), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "simclient demo complete" in r.stdout
    for label in ("sub-sessions    3 (3 completed, 0 failed)", "transactions", "success rate", "top programs",
                  "reconnects", "elapsed", "account diffs"):
        assert label in r.stdout
    doc = json.loads(out.read_text())
    assert doc["metadata"]["complete"] is True and doc["metadata"]["demo"] is True
    chain = LocalSimulator(port=0).chain   # same seed: the ground truth, without serving
    assert doc["summary"]["total"] == len(chain.transactions(chain.first_slot, chain.first_slot + 299))


def test_scale_out_example_default_local(tmp_path):
    out = tmp_path / "run.json"
    r = _run("scale_out.py", _env(), ["--slots", "200", "--slice-slots", "50", "-o", str(out)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(", ok") == 4
    with LocalSimulator(port=0) as s:  # the same default chain: the merged file has every transaction
        truth = [t["transaction"]["signatures"][0]
                 for t in s.chain.transactions(s.first_slot, s.first_slot + 199, s.program_ids)]
    import json

    assert [t["signature"] for t in json.loads(out.read_text())["transactions"]] == truth
