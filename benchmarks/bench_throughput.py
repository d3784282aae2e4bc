"""Benchmark 1, delivery throughput: events/s through ``session.events()`` vs a raw ``websocket-client`` loop.

Both sides read the same frames from the same simulator process: the same ``createBacktestSession`` request, the
same ``continue``, the same (deterministic) stream, one after the other, repeated and interleaved. The raw loop is
``ws.recv()`` + ``json.loads`` on the control socket (plus a thread doing the same on the subscription socket); the
SDK does create, subscribe, cursor, decode into typed events, queue, and iterate. Timed window: from sending the
``continue`` to ``completed`` (and the subscription's end-of-stream) having been consumed.

Two streams: a control-only stream of a 10,000-slot session, and a 2,000-slot session with a transaction
subscription. Each with the SDK on stdlib ``json`` (``SIMCLIENT_JSON=json``) and on ``orjson``.

Printed per row: raw and SDK events/s (wall clock) and their ratio (goal >= 1.0), and the client process's CPU time
per event, raw / SDK (CPU ratio; 1.0 = the SDK costs no more CPU per event than the raw loop). Ratios are medians
over repetitions of adjacent (raw, SDK) pairs. On the control stream the client is the bottleneck, so the wall
ratio measures the SDK's per-event cost; on the transaction stream the simulator (which awaits every notification
write) sets the pace and both sides mostly wait for it, so the wall ratio is near 1.0 and the CPU ratio shows the
difference. On a 2-core machine client and simulator share the CPUs, so client CPU also slows the simulator.

    python benchmarks/bench_throughput.py [--reps 5] [--tx-reps 3] [--control-slots 10000] [--tx-slots 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, SIM_WHERE, SimProcess, emit, median, run_worker, save_result  # noqa: E402


# ---------------------------------------------------------------------------------------------- worker side

def raw_run(url: str, slots: int, program_ids: List[str], loads: Callable[[Any], Any]) -> Dict[str, Any]:
    """The reference: websocket-client recv + loads of every frame, nothing else."""
    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire

    ws = websocket.create_connection(url, header=[f"X-API-Key: {API_KEY}"], timeout=60,
                                     skip_utf8_validation=True, enable_multithread=False)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1))))
    session_id = None
    while True:
        msg = loads(ws.recv())
        if msg.get("method") == "sessionCreated":
            session_id = msg["params"]["session_id"]
        elif msg.get("method") == "readyForContinue":
            break
    sub = None
    notes = [0]
    if program_ids:
        sub = websocket.create_connection(f"{url}/{session_id}", timeout=60, skip_utf8_validation=True,
                                          enable_multithread=False)
        sub.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sub.send(json.dumps(wire.encode_subscribe(1, "transaction", wire.transaction_filter(program_ids))))
        loads(sub.recv())  # the ack

        def drain() -> None:
            n = 0
            while True:
                msg = loads(sub.recv())
                if msg.get("params", {}).get("result") is None:  # end-of-stream marker
                    notes[0] = n
                    return
                n += 1

        th = threading.Thread(target=drain)
    t0, c0 = time.perf_counter(), time.process_time()
    if sub is not None:
        th.start()
    ws.send(json.dumps(wire.encode_continue(Continue(advance_count=slots))))
    frames = 0
    while True:
        msg = loads(ws.recv())
        frames += 1
        if msg.get("method") == "completed":
            break
    if sub is not None:
        th.join()
    t1, c1 = time.perf_counter(), time.process_time()
    events = frames + notes[0]
    ws.send(json.dumps(wire.encode_close()))
    ws.close()
    if sub is not None:
        sub.close()
    return {"events": events, "wall": t1 - t0, "cpu": c1 - c0}


def sdk_run(url: str, slots: int, program_ids: List[str]) -> Dict[str, Any]:
    from simclient import Client, ClientConfig, CreateSession
    from simclient import events as ev

    client = Client(url, API_KEY, ClientConfig())
    with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1)) as s:
        if program_ids:
            s.subscribe_transactions(program_ids)
        it = s.events(timeout=60)
        for e in it:
            if type(e) is ev.ReadyForContinue:
                break
        s._wait_subscriptions_up()  # both sides start timing with the subscription up
        t0, c0 = time.perf_counter(), time.process_time()
        s.send_continue(advance_count=slots)
        events = 0
        last = None
        for item in it:
            events += 1
            last = item
        t1, c1 = time.perf_counter(), time.process_time()
        if type(last) is not ev.Completed:  # pragma: no cover
            raise RuntimeError(f"stream ended with {last!r}")
    return {"events": events, "wall": t1 - t0, "cpu": c1 - c0}


def worker(args: argparse.Namespace) -> None:
    from simclient import protocol as wire

    loads_variants: Dict[str, Callable[[Any], Any]] = {"json": json.loads}
    if args.raw_orjson:
        import orjson

        loads_variants["orjson"] = orjson.loads
    program_ids = args.programs.split(",") if args.programs else []
    # warm-up (imports, first connections, the simulator's caches)
    raw_run(args.url, 200, program_ids, json.loads)
    sdk_run(args.url, 200, program_ids)
    runs: Dict[str, List[Dict[str, Any]]] = {"sdk": []}
    for rep in range(args.reps):
        order = ["raw-" + v for v in loads_variants] + ["sdk"]
        if rep % 2:
            order.reverse()
        for name in order:
            if name == "sdk":
                r = sdk_run(args.url, args.slots, program_ids)
            else:
                r = raw_run(args.url, args.slots, program_ids, loads_variants[name[4:]])
            runs.setdefault(name, []).append(r)
    emit({"backend": wire.JSON_BACKEND, "runs": runs})


# ---------------------------------------------------------------------------------------------- orchestrator

def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"events": runs[0]["events"], "ev_per_s": median([r["events"] / r["wall"] for r in runs]),
            "cpu_us_per_ev": median([r["cpu"] / r["events"] * 1e6 for r in runs]),
            "per_rep": [(r["events"] / r["wall"], r["cpu"] / r["events"] * 1e6) for r in runs]}


def paired(sdk: Dict[str, Any], ref: Dict[str, Any]) -> Tuple[float, float]:
    """Median over repetitions of SDK/reference (wall) and reference/SDK (CPU per event), each repetition's runs
    being adjacent in time (the machine's speed drifts; adjacent runs see the same conditions)."""
    wall = [s[0] / r[0] for s, r in zip(sdk["per_rep"], ref["per_rep"])]
    cpu = [r[1] / s[1] for s, r in zip(sdk["per_rep"], ref["per_rep"])]
    return median(wall), median(cpu)


def measure(sim: SimProcess, slots: int, program_ids: List[str], reps: int) -> List[Dict[str, Any]]:
    rows = []
    for backend, raw_orjson in (("json", False), ("orjson", True)):
        out = run_worker("bench_throughput.py",
                         ["--url", sim.url, "--slots", str(slots), "--reps", str(reps),
                          "--programs", ",".join(program_ids)] + (["--raw-orjson"] if raw_orjson else []),
                         env={"SIMCLIENT_JSON": "json"} if backend == "json" else None)
        if out["backend"] != backend:
            raise RuntimeError(f"asked for the {backend} backend, the SDK used {out['backend']}")
        summary = {name: summarise(r) for name, r in out["runs"].items()}
        rows.append({"backend": backend, **summary})
    return rows


def print_rows(title: str, rows: List[Dict[str, Any]]) -> None:
    print(f"  {title}")
    print(f"    {'SDK json backend':<17} {'reference':<22} {'events':>7} {'ref ev/s':>9} {'SDK ev/s':>9} "
          f"{'ratio':>6}   {'CPU us/ev ref/SDK':>17} {'CPU ratio':>9}")
    for row in rows:
        sdk = row["sdk"]
        for ref_name in [k for k in list(row) if k.startswith("raw-")]:
            ref = row[ref_name]
            ratio, cpu_ratio = paired(sdk, ref)
            row.setdefault("ratios", {})[ref_name] = {"wall": ratio, "cpu": cpu_ratio}
            ok = "ok" if ratio >= 1.0 else "BELOW GOAL"
            label = f"raw recv+{ref_name[4:]}.loads"
            print(f"    {row['backend']:<17} {label:<22} {sdk['events']:>7} {ref['ev_per_s']:>9.0f} "
                  f"{sdk['ev_per_s']:>9.0f} {ratio:>5.2f}x   "
                  f"{ref['cpu_us_per_ev']:>7.1f} / {sdk['cpu_us_per_ev']:<7.1f} {cpu_ratio:>8.2f}x  {ok}")
            if ref["events"] != sdk["events"]:
                print(f"    !! event counts differ: raw {ref['events']} vs SDK {sdk['events']}")


def run(reps: int = 5, control_slots: int = 10_000, tx_slots: int = 2_000, tx_reps: int = 3) -> Dict[str, Any]:
    print(f"[1] delivery throughput: session.events() vs raw websocket-client recv + json.loads "
          f"(goal ratio >= 1.0; median of {reps} (control) / {tx_reps} (transactions) interleaved pairs)")
    print(f"    {SIM_WHERE}")
    result: Dict[str, Any] = {}
    with SimProcess(bundle_size=100, num_bundles=max(100, (control_slots + 99) // 100)) as sim:
        rows = measure(sim, control_slots, [], reps)
        print_rows(f"control stream only, one {control_slots:,}-slot session:", rows)
        result["control"] = rows
        rows = measure(sim, tx_slots, sim.program_ids, tx_reps)
        print_rows(f"control + transaction subscription, one {tx_slots:,}-slot session:", rows)
        result["transactions"] = rows
    print("    (ratio: SDK events/s / reference events/s, wall clock; CPU ratio: reference CPU per event / SDK CPU "
          "per event, whole client process)")
    save_result("throughput", result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url")
    ap.add_argument("--slots", type=int, default=10_000)
    ap.add_argument("--programs", default="")
    ap.add_argument("--raw-orjson", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tx-reps", type=int, default=3)
    ap.add_argument("--control-slots", type=int, default=10_000)
    ap.add_argument("--tx-slots", type=int, default=2_000)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args.reps, args.control_slots, args.tx_slots, args.tx_reps)


if __name__ == "__main__":
    main()
