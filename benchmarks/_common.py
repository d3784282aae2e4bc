"""Shared plumbing of the benchmarks: a local simulator in its own process, client workers in their own processes.

Every benchmark measures the SDK side by side with a reference in the same run, against the same simulator, and
prints ratios. The simulator runs as ``python -m simclient.local`` in a subprocess so that it does not compete with
the client for the GIL; each client measurement runs in a worker subprocess (``python <bench>.py --worker ...``)
so that ``SIMCLIENT_JSON`` can pick the JSON backend at import and RSS figures are the client's alone.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
API_KEY = "local-dev-key"
FIRST_SLOT = 300_000_000
SIM_WHERE = "simulator: separate process (python -m simclient.local on loopback); client: separate process"


def _die_with_parent() -> None:
    """In the simulator child (Linux): get SIGTERM when the benchmark process dies, so none is left behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


class SimProcess:
    """``python -m simclient.local --port 0 ...`` in a subprocess; ``url`` is parsed from its banner."""

    def __init__(self, bundle_size: int = 100, num_bundles: int = 100, seed: int = 0, extra: Sequence[str] = ()):
        self.bundle_size = bundle_size
        self.num_bundles = num_bundles
        self.seed = seed
        self.extra = list(extra)
        self.url = ""
        self.proc: Optional[subprocess.Popen] = None
        self._log = tempfile.TemporaryFile(mode="w+")

    def __enter__(self) -> "SimProcess":
        cmd = [sys.executable, "-m", "simclient.local", "--port", "0", "--seed", str(self.seed),
               "--bundle-size", str(self.bundle_size), "--num-bundles", str(self.num_bundles),
               "--first-slot", str(FIRST_SLOT), *self.extra]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
        env.pop("SIMCLIENT_JSON", None)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log, cwd=REPO, env=env,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self._log.seek(0)
            for line in self._log.read().splitlines():
                if "local simulator on ws://" in line:
                    self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        self._log.seek(0)
        raise RuntimeError(f"local simulator did not start: {self._log.read()[-2000:]}")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    @property
    def program_ids(self) -> List[str]:
        from simclient.local.chain import SyntheticChain

        chain = SyntheticChain(seed=self.seed, first_slot=FIRST_SLOT, bundle_size=self.bundle_size,
                               num_bundles=self.num_bundles)
        return list(chain.program_ids)


def run_worker(script: str, args: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 240) -> Any:
    """Run ``python <script> --worker <args>`` and return the JSON object its last stdout line holds."""
    full_env = dict(os.environ)
    full_env.pop("SIMCLIENT_JSON", None)
    full_env.update(env or {})
    # SIMCLIENT_BENCH_CLIENT_PATH: a directory holding another simclient/ package to measure as the client (e.g. an
    # older commit's, from `git archive`); the simulator is always this tree's.
    client = full_env.get("SIMCLIENT_BENCH_CLIENT_PATH", "")
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (client, REPO, full_env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, os.path.join(HERE, script), "--worker", *args], env=full_env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{script} worker failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def emit(result: Any) -> None:
    """Worker side: print the result as the last stdout line."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def save_result(name: str, result: Dict[str, Any]) -> None:
    """Add ``result`` under ``name`` to the JSON file named by ``SIMCLIENT_BENCH_OUT`` (set by run_all --json)."""
    path = os.environ.get("SIMCLIENT_BENCH_OUT")
    if not path:
        return
    data: Dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[name] = result
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
