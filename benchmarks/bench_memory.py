"""Benchmark 4, memory: client RSS per sub-session at 64 sub-sessions, each with a transaction subscription.

SDK: RSS (psutil) of the client process before ``start_parallel`` and after it returned and every sub-session's
transaction subscription is up; the difference / 64 is the cost of one sub-session (its queue, route, reader thread
and socket of its subscription, shared control connection amortised). Also after ``drive()`` ran the whole
6,400 slots (before close).

Reference, in its own process: the same shape with bare websocket-client, i.e. one control socket that creates the
parallel run, then per sub-session one subscription socket, subscribed, with one thread blocked in
``recv()`` + ``json.loads`` and one ``queue.Queue``. Ratio = SDK bytes per sub-session / reference bytes per
sub-session. The simulator runs in its own process, so none of its memory is counted.

    python benchmarks/bench_memory.py [--subs 64]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, SIM_WHERE, SimProcess, emit, run_worker, save_result  # noqa: E402


def rss() -> int:
    import psutil

    gc.collect()
    time.sleep(0.05)
    return psutil.Process().memory_info().rss


def sdk_worker(url: str, subs: int, programs: List[str]) -> Dict[str, Any]:
    from simclient import Client, ClientConfig, CreateSession

    client = Client(url, API_KEY, ClientConfig())
    with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=9)) as s:  # warm-up
        s.subscribe_transactions(programs)
        s.run()
    before = rss()
    with client.start_parallel(CreateSession(start_slot=FIRST_SLOT, slot_count=subs * 100 - 1)) as run:
        run.subscribe_transactions(programs)
        for sub in run.sub_sessions:
            sub._wait_subscriptions_up()
        after = rss()
        threads = threading.active_count()
        result = run.drive(advance_count=None)
        if not result.ok:
            raise RuntimeError(f"parallel run failed: {result.failures[:2]}")
        after_drive = rss()
        n = len(run.sub_sessions)
    return {"subs": n, "before": before, "after": after, "after_drive": after_drive, "threads": threads}


def raw_worker(url: str, subs: int, programs: List[str]) -> Dict[str, Any]:
    import websocket

    from simclient import CreateSession
    from simclient import protocol as wire

    def connect(u: str, header: Optional[List[str]] = None) -> Any:
        ws = websocket.create_connection(u, header=header or [], timeout=30, skip_utf8_validation=True,
                                         enable_multithread=False)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ws

    def reader(ws: Any, q: "queue.Queue[Any]") -> None:
        try:
            while True:
                msg = json.loads(ws.recv())
                q.put(msg)
                if msg.get("method") == "subscriptionComplete" or msg.get("params", {}).get("result", 0) is None:
                    return
        except (OSError, websocket.WebSocketException, ValueError):
            return

    warm = connect(url, [f"X-API-Key: {API_KEY}"])
    warm.close()
    before = rss()
    control = connect(url, [f"X-API-Key: {API_KEY}"])
    control.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=subs * 100 - 1),
                                               parallel=True)))
    ids: List[str] = []
    while not ids:
        msg = json.loads(control.recv())
        if msg.get("method") == "sessionsCreatedV2":
            ids = msg["params"]["session_ids"]
    conns, threads = [], []
    for sid in ids:
        ws = connect(f"{url}/{sid}")
        ws.send(json.dumps(wire.encode_subscribe(1, "transaction", wire.transaction_filter(programs))))
        json.loads(ws.recv())
        th = threading.Thread(target=reader, args=(ws, queue.Queue()), daemon=True)
        th.start()
        conns.append(ws)
        threads.append(th)
    after = rss()
    for ws in conns:
        ws.shutdown()
    control.close()
    return {"subs": len(ids), "before": before, "after": after}


def worker(args: argparse.Namespace) -> None:
    programs = args.programs.split(",")
    emit(sdk_worker(args.url, args.subs, programs) if args.kind == "sdk" else raw_worker(args.url, args.subs, programs))


def run(subs: int = 64) -> Dict[str, Any]:
    print(f"[4] memory: client RSS per sub-session at {subs} sub-sessions with a transaction subscription each "
          f"(psutil; ratio to a bare websocket-client design with the same sockets and threads)")
    print(f"    {SIM_WHERE}")
    with SimProcess(bundle_size=100, num_bundles=max(100, subs)) as sim:
        programs = ",".join(sim.program_ids)
        raw = run_worker("bench_memory.py", ["--kind", "raw", "--url", sim.url, "--subs", str(subs),
                                             "--programs", programs])
        sdk = run_worker("bench_memory.py", ["--kind", "sdk", "--url", sim.url, "--subs", str(subs),
                                             "--programs", programs])
    if sdk["subs"] != subs or raw["subs"] != subs:
        raise RuntimeError(f"expected {subs} sub-sessions, got SDK {sdk['subs']}, reference {raw['subs']}")
    ref = (raw["after"] - raw["before"]) / subs
    per = (sdk["after"] - sdk["before"]) / subs
    per_drive = (sdk["after_drive"] - sdk["before"]) / subs
    print(f"    {'':<44} {'KiB per sub-session':>19} {'ratio to ref':>12}")
    print(f"    {'reference: socket + thread + queue each':<44} {ref / 1024:>19.0f} {1.0:>11.2f}x")
    print(f"    {'SDK, after start_parallel + subscriptions':<44} {per / 1024:>19.0f} {per / ref:>11.2f}x")
    print(f"    {'SDK, after drive() of all slots':<44} {per_drive / 1024:>19.0f} {per_drive / ref:>11.2f}x")
    print(f"    (SDK client process: {sdk['before'] / 2**20:.0f} MiB before, {sdk['after'] / 2**20:.0f} MiB with "
          f"{subs} sub-sessions up, {sdk['threads']} threads)")
    result = {"subs": subs, "ref_per_sub": ref, "sdk_per_sub": per, "sdk_per_sub_after_drive": per_drive,
              "ratio": per / ref, "ratio_after_drive": per_drive / ref, "sdk_before": sdk["before"],
              "sdk_after": sdk["after"], "threads": sdk["threads"]}
    save_result("memory", result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", choices=("sdk", "raw"))
    ap.add_argument("--url")
    ap.add_argument("--programs")
    ap.add_argument("--subs", type=int, default=64)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args.subs)


if __name__ == "__main__":
    main()
