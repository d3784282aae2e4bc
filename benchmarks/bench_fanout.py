"""Benchmark 2, fan-out: aggregate events/s at 1, 8, 32 and 64 sub-sessions multiplexed on one control socket.

The same total work each time: a 6,400-slot parallel run, split by the simulator into N sub-sessions of
6,400 / N slots (one simulator process per N, its bundle size set to 6,400 / N), control stream only, driven by
``ParallelRun.drive()`` (one continue per sub-session for its whole range, one worker thread per sub-session).
Aggregate events/s = events delivered by all sub-sessions / wall time of ``drive()``. Printed as a ratio to the
1-sub-session run (goal: 64 >= 0.8x of 1), median of interleaved repetitions.

    python benchmarks/bench_fanout.py [--reps 3] [--total-slots 6400]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, SIM_WHERE, SimProcess, emit, median, run_worker, save_result  # noqa: E402

FANOUTS = (1, 8, 32, 64)


def drive_once(url: str, total: int) -> Dict[str, Any]:
    from simclient import Client, ClientConfig, CreateSession

    client = Client(url, API_KEY, ClientConfig())
    with client.start_parallel(CreateSession(start_slot=FIRST_SLOT, slot_count=total - 1)) as run:
        n = len(run.sub_sessions)
        t0, c0 = time.perf_counter(), time.process_time()
        result = run.drive(advance_count=None)
        t1, c1 = time.perf_counter(), time.process_time()
        if not result.ok:
            raise RuntimeError(f"parallel run failed: {result.failures[:3]}")
        events = sum(s.stats.events_delivered for s in run.sub_sessions)
    return {"subs": n, "events": events, "wall": t1 - t0, "cpu": c1 - c0}


def worker(args: argparse.Namespace) -> None:
    urls = dict(zip(FANOUTS, args.urls.split(",")))
    for n in FANOUTS:  # warm-up
        drive_once(urls[n], args.total)
    runs: Dict[int, List[Dict[str, Any]]] = {n: [] for n in FANOUTS}
    for rep in range(args.reps):
        order = list(FANOUTS) if rep % 2 == 0 else list(reversed(FANOUTS))
        for n in order:
            runs[n].append(drive_once(urls[n], args.total))
    emit({"runs": {str(n): r for n, r in runs.items()}})


def run(reps: int = 3, total: int = 6400) -> Dict[str, Any]:
    print(f"[2] fan-out: aggregate events/s vs sub-sessions on one control socket, {total:,} slots in all, control "
          f"stream only (goal: 64 >= 0.8x of 1; median of {reps} interleaved runs)")
    print(f"    {SIM_WHERE}")
    with ExitStack() as stack:
        sims = {n: stack.enter_context(SimProcess(bundle_size=total // n, num_bundles=n)) for n in FANOUTS}
        out = run_worker("bench_fanout.py", ["--urls", ",".join(sims[n].url for n in FANOUTS),
                                             "--total", str(total), "--reps", str(reps)])
    rows = []
    base: Optional[float] = None
    print(f"    {'sub-sessions':>12} {'events':>7} {'events/s':>9} {'ratio to 1':>10} {'CPU us/ev':>10}")
    for n in FANOUTS:
        runs = out["runs"][str(n)]
        if runs[0]["subs"] != n:
            raise RuntimeError(f"expected {n} sub-sessions, got {runs[0]['subs']}")
        rate = median([r["events"] / r["wall"] for r in runs])
        cpu = median([r["cpu"] / r["events"] * 1e6 for r in runs])
        base = rate if base is None else base
        rows.append({"subs": n, "events": runs[0]["events"], "ev_per_s": rate, "ratio": rate / base,
                     "cpu_us_per_ev": cpu})
        goal = ("  ok" if rate / base >= 0.8 else "  BELOW GOAL") if n == 64 else ""
        print(f"    {n:>12} {runs[0]['events']:>7} {rate:>9.0f} {rate / base:>9.2f}x {cpu:>10.1f}{goal}")
    save_result("fanout", {"rows": rows})
    return {"rows": rows}


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--urls")
    ap.add_argument("--total", "--total-slots", type=int, default=6400)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args.reps, args.total)


if __name__ == "__main__":
    main()
