"""Benchmark: the cost of the step barrier (``ClientConfig.step_barrier``) per one-slot step.

Each variant drives the same number of one-slot steps (``send_continue(advance_count=1)`` on every
``ReadyForContinue``) against one simulator process, side by side in one worker, interleaved over repetitions:

* no subscription (the floor: one continue round trip on the control socket);
* one transaction subscription, barrier off (what the SDK did before: a step's notifications may come after it);
* one transaction subscription, barrier on (the default: a ping/pong on the subscription socket per step);
* a transaction and an account-diff subscription (two sockets), barrier on.

The figure to read is "barrier on - barrier off" per step: what in-order steps cost. It is about one loopback ping
round trip plus two thread hand-offs, and independent of the number of notifications per step.

    python benchmarks/bench_step_barrier.py [--steps 300] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, SIM_WHERE, SimProcess, emit, median, run_worker, save_result  # noqa: E402

VARIANTS = [
    ("none", "no subscription"),
    ("tx-off", "1 tx subscription, barrier off"),
    ("tx-on", "1 tx subscription, barrier on"),
    ("tx+diff-on", "tx + diff subscriptions, barrier on"),
]


def one_run(url: str, programs: List[str], variant: str, steps: int) -> Dict[str, float]:
    from simclient import Client, ClientConfig, CreateSession
    from simclient import events as ev

    config = ClientConfig(step_barrier=variant.endswith("-on"))
    client = Client(url, API_KEY, config)
    times: List[float] = []
    with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=steps)) as s:
        if variant != "none":
            s.subscribe_transactions(programs)
        if variant == "tx+diff-on":
            s.subscribe_account_diffs(programs[:1])
        sent_at: Optional[float] = None
        for e in s.events(timeout=60):
            if type(e) is ev.ReadyForContinue:
                now = time.perf_counter()
                if sent_at is not None:
                    times.append(now - sent_at)
                sent_at = time.perf_counter()
                s.send_continue(advance_count=1)
        held = s.stats.step_barrier_seconds / max(1, s.stats.step_barriers)
    return {"step": median(times), "held": held}


def worker(args: argparse.Namespace) -> None:
    programs = args.programs.split(",")
    out: Dict[str, Dict[str, List[float]]] = {v: {"step": [], "held": []} for v, _ in VARIANTS}
    for rep in range(args.reps):
        order = VARIANTS if rep % 2 == 0 else list(reversed(VARIANTS))
        for v, _ in order:
            r = one_run(args.url, programs, v, args.steps)
            out[v]["step"].append(r["step"])
            out[v]["held"].append(r["held"])
    emit(out)


def run(steps: int = 300, reps: int = 3) -> Dict[str, Any]:
    print(f"[step barrier] per-step time of one-slot steps ({steps} steps x {reps} runs per variant, medians)")
    print(f"    {SIM_WHERE}")
    with SimProcess(bundle_size=100, num_bundles=20) as sim:
        out = run_worker("bench_step_barrier.py", ["--url", sim.url, "--programs", ",".join(sim.program_ids),
                                                   "--steps", str(steps), "--reps", str(reps)])
    floor = median(out["none"]["step"])
    off = median(out["tx-off"]["step"])
    print(f"    {'variant':<38} {'ms/step':>8} {'/ no sub':>9} {'held ms':>8}")
    rows: Dict[str, Any] = {}
    for v, label in VARIANTS:
        step = median(out[v]["step"])
        held = median(out[v]["held"])
        print(f"    {label:<38} {step * 1e3:>8.3f} {step / floor:>8.2f}x {held * 1e3:>8.3f}")
        rows[v] = {"step_s": step, "ratio_vs_none": step / floor, "held_s": held}
    on = median(out["tx-on"]["step"])
    print(f"    barrier cost per step (tx on - tx off): {(on - off) * 1e3:+.3f} ms")
    rows["barrier_cost_s"] = on - off
    save_result("step_barrier", rows)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url")
    ap.add_argument("--programs", default="")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args.steps, args.reps)


if __name__ == "__main__":
    main()
