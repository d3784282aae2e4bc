"""Scale-out: a handler that spends ~0.5 ms of Python CPU per transaction, one process vs two worker processes.

    python benchmarks/bench_distributed.py [--slots 600] [--reps 3]

The same range is run (a) as one slice in one worker process and (b) as slices on a ``ProcessPoolExecutor`` of
two processes, alternating, against one local simulator in its own process. The handler is what sets the pace
here (it needs ~0.5 ms per transaction; the simulator serves tens of thousands of transactions per second), and the
benchmark prints the CPU each side used to show it. The figure is aggregate transactions/s, (b)/(a).
On a 2-core machine the simulator shares the cores with the two workers, so the ceiling is below 2x.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import FIRST_SLOT, SimProcess  # noqa: E402

HANDLER_SECONDS = 0.0005


class BusyHandler:
    """~0.5 ms of pure-Python CPU per transaction (strategy logic stand-in)."""

    def __init__(self, sl: Any) -> None:
        self.n = 0

    def __call__(self, event: Any) -> None:
        if type(event).__name__ != "Transaction":
            return
        self.n += 1
        end = time.thread_time() + HANDLER_SECONDS
        x = 0
        while time.thread_time() < end:
            x += 1

    def result(self) -> int:
        return self.n


def _one(url: str, programs: List[str], slots: int, workers: int, out: str) -> Dict[str, float]:
    from simclient.distributed import plan_slices, run_distributed

    slices = plan_slices(FIRST_SLOT, FIRST_SLOT + slots - 1, slice_slots=max(1, slots // (workers * 2)))
    if workers == 1:
        slices = plan_slices(FIRST_SLOT, FIRST_SLOT + slots - 1)
    t0 = time.monotonic()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # warm the workers (interpreter start and imports are not the figure)
        list(pool.map(_noop, range(workers)))
        t0 = time.monotonic()
        res = run_distributed(pool, slices, url=url, api_key="local-dev-key", transaction_programs=programs,
                              handler_factory=BusyHandler, output_dir=out)
    elapsed = time.monotonic() - t0
    if not res.ok:
        raise RuntimeError(f"run failed: {[r.failures for r in res.failed]}")
    txs = sum(r.value for r in res.slices)
    return {"tx": txs, "seconds": elapsed, "tx_per_s": txs / elapsed}


def _noop(i: int) -> int:
    import simclient  # noqa: F401 - import cost paid before timing
    import simclient.distributed  # noqa: F401

    return i


def run(slots: int = 600, reps: int = 3) -> Dict[str, Any]:
    from simclient.local.chain import PROGRAM_IDS

    programs = list(PROGRAM_IDS)
    ratios: List[float] = []
    one: List[float] = []
    two: List[float] = []
    with SimProcess(bundle_size=100, num_bundles=max(10, slots // 100 + 2)) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            a = _one(sim.url, programs, slots, 1, os.path.join(tmp, f"a{i}"))
            b = _one(sim.url, programs, slots, 2, os.path.join(tmp, f"b{i}"))
            if a["tx"] != b["tx"]:
                raise RuntimeError(f"different transaction counts: {a['tx']} vs {b['tx']}")
            one.append(a["tx_per_s"])
            two.append(b["tx_per_s"])
            ratios.append(b["tx_per_s"] / a["tx_per_s"])
            print(f"  rep {i + 1}: 1 process {a['tx_per_s']:,.0f} tx/s ({a['seconds']:.2f}s), "
                  f"2 processes {b['tx_per_s']:,.0f} tx/s ({b['seconds']:.2f}s): {ratios[-1]:.2f}x", flush=True)
    med = statistics.median(ratios)
    print(f"scale-out, {int(a['tx'])} transactions over {slots} slots, handler {HANDLER_SECONDS * 1e3:.1f} ms CPU "
          f"per transaction (the handler sets the pace: {HANDLER_SECONDS * a['tx']:.2f}s of handler CPU per run): "
          f"1 process median {statistics.median(one):,.0f} tx/s, 2 processes {statistics.median(two):,.0f} tx/s, "
          f"ratio median {med:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x; target >= 1.5x)")
    return {"ratio_median": med, "ratios": ratios, "one": one, "two": two}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slots", type=int, default=600)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    run(a.slots, a.reps)
