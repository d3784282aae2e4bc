"""Benchmark 2, fan-out: aggregate events/s at 1, 8, 32 and 64 sub-sessions multiplexed on one control socket.

The same total work each time: a 6,400-slot parallel run, split by the simulator into N sub-sessions of
6,400 / N slots (one simulator process per N, its bundle size set to 6,400 / N), control stream only, driven by
``ParallelRun.drive()`` (one continue per sub-session for its whole range, one worker thread per sub-session).
Aggregate events/s = events delivered by all sub-sessions / wall time of ``drive()``. Printed as a ratio to the
1-sub-session run (goal: 64 >= 0.8x of 1), median of interleaved repetitions. Side by side, the same for a bare
websocket-client loop (recv + json.loads of every frame on the one control socket, a ``continueSessionV1`` per
sub-session): its own ratio shows how much the simulator slows down with more sub-sessions.

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


def raw_once(url: str, total: int) -> Dict[str, Any]:
    """The reference: bare websocket-client on one control socket, recv + json.loads of every frame, one
    ``continueSessionV1`` per sub-session (for its whole range) at its first ``readyForContinue``."""
    import json
    import socket

    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire

    ws = websocket.create_connection(url, header=[f"X-API-Key: {API_KEY}"], timeout=60, skip_utf8_validation=True,
                                     enable_multithread=False)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=total - 1), parallel=True)))
    t0 = c0 = 0.0
    ranges: Dict[str, int] = {}
    ready: List[str] = []
    started: set = set()
    events = done = 0
    n = -1
    while done != n:
        msg = json.loads(ws.recv())
        method = msg.get("method")
        if method == "sessionEventV2":
            events += 1
            p = msg["params"]
            inner = p["event"].get("method")
            if inner == "readyForContinue" and p["session_id"] not in started:
                ready.append(p["session_id"])
            elif inner == "completed":
                done += 1
        elif method == "sessionsCreatedV2":
            p = msg["params"]
            n = len(p["session_ids"])
            ranges = {sid: e - s + 1 for sid, s, e in zip(p["session_ids"], p["start_slots"], p["end_slots"])}
            t0, c0 = time.perf_counter(), time.process_time()
            events = 0
        if ranges:
            for sid in ready:
                if sid not in started:
                    started.add(sid)
                    ws.send(json.dumps(wire.encode_continue_v1(sid, Continue(advance_count=ranges[sid]))))
            ready.clear()
    t1, c1 = time.perf_counter(), time.process_time()
    ws.close()
    return {"subs": n, "events": events, "wall": t1 - t0, "cpu": c1 - c0}


def worker(args: argparse.Namespace) -> None:
    urls = dict(zip(FANOUTS, args.urls.split(",")))
    for n in FANOUTS:  # warm-up
        drive_once(urls[n], args.total)
        raw_once(urls[n], args.total)
    runs: Dict[str, List[Dict[str, Any]]] = {}
    for rep in range(args.reps):
        order = list(FANOUTS) if rep % 2 == 0 else list(reversed(FANOUTS))
        for n in order:
            for kind in (("sdk", "raw") if rep % 2 == 0 else ("raw", "sdk")):
                fn = drive_once if kind == "sdk" else raw_once
                runs.setdefault(f"{kind}-{n}", []).append(fn(urls[n], args.total))
    emit({"runs": runs})


def run(reps: int = 3, total: int = 6400) -> Dict[str, Any]:
    print(f"[2] fan-out: aggregate events/s vs sub-sessions on one control socket, {total:,} slots in all, control "
          f"stream only (goal: 64 >= 0.8x of 1; median of {reps} interleaved runs)")
    print(f"    {SIM_WHERE}")
    with ExitStack() as stack:
        sims = {n: stack.enter_context(SimProcess(bundle_size=total // n, num_bundles=n)) for n in FANOUTS}
        out = run_worker("bench_fanout.py", ["--urls", ",".join(sims[n].url for n in FANOUTS),
                                             "--total", str(total), "--reps", str(reps)])
    rows = []
    base: Dict[str, float] = {}
    print(f"    {'sub-sessions':>12} {'events':>7} {'SDK ev/s':>9} {'SDK ratio to 1':>14} {'ref ev/s':>9} "
          f"{'ref ratio to 1':>14} {'SDK/ref':>7} {'SDK CPU us/ev':>13}")
    for n in FANOUTS:
        row: Dict[str, Any] = {"subs": n}
        for kind in ("sdk", "raw"):
            runs = out["runs"][f"{kind}-{n}"]
            if runs[0]["subs"] != n:
                raise RuntimeError(f"expected {n} sub-sessions, got {runs[0]['subs']}")
            rate = median([r["events"] / r["wall"] for r in runs])
            base.setdefault(kind, rate)
            row[kind] = {"events": runs[0]["events"], "ev_per_s": rate, "ratio": rate / base[kind],
                         "cpu_us_per_ev": median([r["cpu"] / r["events"] * 1e6 for r in runs])}
        rows.append(row)
        sdk, raw = row["sdk"], row["raw"]
        goal = ("  ok" if sdk["ratio"] >= 0.8 else "  BELOW GOAL") if n == 64 else ""
        print(f"    {n:>12} {sdk['events']:>7} {sdk['ev_per_s']:>9.0f} {sdk['ratio']:>13.2f}x {raw['ev_per_s']:>9.0f} "
              f"{raw['ratio']:>13.2f}x {sdk['ev_per_s'] / raw['ev_per_s']:>6.2f}x {sdk['cpu_us_per_ev']:>13.1f}{goal}")
    print("    (ref: bare websocket-client recv + json.loads on the same control socket, same simulator; its ratio "
          "shows how much of the fan-out cost is the simulator's)")
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
