"""examples/scheduled_actions.py runs to completion and reports as many results as the simulator's anchors fire."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from simclient import program_executed
from simclient.local import LocalSimulator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "examples", "scheduled_actions.py")


def test_scheduled_actions_example_against_simulator_url():
    with LocalSimulator(port=0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
        env.update(SIMULATOR_URL=sim.url, SIMULATOR_API_KEY=sim.api_key,
                   SIMULATOR_PROGRAM_IDS=",".join(sim.program_ids),
                   SIMULATOR_RETURN_ACCOUNT=sim.chain.accounts_of(sim.program_ids[0])[0])
        r = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
        assert r.returncode == 0, r.stderr
        m = re.search(r"(\d+) results \((\d+) probe, (\d+) after-match, 0 failed\) over (\d+)\.\.(\d+)", r.stdout)
        assert m, r.stdout
        total, probes, matches, start, end = map(int, m.groups())
        chain = sim.chain
        assert probes == sum(1 for s in chain.produced_slots(start, end) if (s - start) % 10 == 0)
        truth_matches, s, b = 0, start, 0
        while True:
            found = chain.find_match([program_executed(sim.program_ids[0])], s, b, end)
            if found is None:
                break
            truth_matches += 1
            s, b = found[0], found[1] + 1
        assert matches == truth_matches > 0 and total == probes + matches
        assert r.stdout.count("lamports") == probes


def test_scheduled_actions_example_starts_its_own_simulator():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    r = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert re.search(r"scheduled_actions: [1-9]\d* results", r.stdout), r.stdout
