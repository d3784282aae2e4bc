"""Raw throughput of the local simulator: one 10,000-slot single session driven by a bare websocket-client loop.

No SDK involved: create, one ``continue`` with ``advanceCount`` 10000, read frames until ``completed``.
Prints slots/s, frames/s and the elapsed time. Target: < 10 s on a 2-core machine.

    python benchmarks/bench_local_raw.py [--slots 10000] [--subscribe]
"""
from __future__ import annotations

import argparse
import json
import time

import websocket

from simclient.local import LocalSimulator


def run(slots: int, subscribe: bool, sequenced: bool) -> dict:
    with LocalSimulator(port=0, bundle_size=1000, num_bundles=max(1, (slots + 999) // 1000)) as sim:
        first = sim.chain.first_slot
        end = first + slots - 1
        ws = websocket.create_connection(sim.url, header=["X-API-Key: local-dev-key"], timeout=60)
        t0 = time.perf_counter()
        params = {"startSlot": first, "endSlot": end}
        if sequenced:
            params["disconnectTimeoutSecs"] = 60
        ws.send(json.dumps({"method": "createBacktestSession", "params": params}))
        frames = 0
        session_id = None
        while True:
            msg = json.loads(ws.recv())
            frames += 1
            if msg["method"] == "sessionCreated":
                session_id = msg["params"]["session_id"]
            if msg["method"] == "readyForContinue":
                break
        sub = None
        if subscribe:
            sub = websocket.create_connection(f"{sim.url}/{session_id}", timeout=60, skip_utf8_validation=True)
            sub.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "transactionSubscribe",
                                 "params": [{"programs": sim.program_ids}, {}]}))
            sub.recv()
        t1 = time.perf_counter()
        ws.send(json.dumps({"method": "continue", "params": {"advanceCount": slots}}))
        notifications = 0
        if sub is not None:
            # drain the data plane first (the server awaits its writes), then the control stream
            import threading

            def drain() -> None:
                nonlocal notifications
                while True:
                    text = sub.recv()
                    if not text or '"result":null' in text or '"subscriptionComplete"' in text:
                        return
                    notifications += 1

            th = threading.Thread(target=drain)
            th.start()
        last_slot = None
        while True:
            text = ws.recv()
            frames += 1
            if text.startswith('{"method":"slotNotification"') or '"slotNotification"' in text[:40]:
                last_slot = json.loads(text)["params"]
            if '"completed"' in text[:60]:
                break
        if sub is not None:
            th.join()
            sub.close()
        t2 = time.perf_counter()
        ws.close()
    return {"slots": slots, "frames": frames, "notifications": notifications, "last_slot": last_slot,
            "create_s": t1 - t0, "run_s": t2 - t1, "elapsed_s": t2 - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slots", type=int, default=10_000)
    ap.add_argument("--subscribe", action="store_true", help="also stream every transaction over a subscription")
    ap.add_argument("--sequenced", action="store_true", help="create with disconnectTimeoutSecs (seqId frames)")
    args = ap.parse_args()
    r = run(args.slots, args.subscribe, args.sequenced)
    print(f"slots={r['slots']} frames={r['frames']} notifications={r['notifications']}")
    print(f"elapsed={r['elapsed_s']:.2f}s (create {r['create_s']:.3f}s, run {r['run_s']:.2f}s)")
    print(f"slots/s={r['slots'] / r['elapsed_s']:.0f} frames/s={r['frames'] / r['elapsed_s']:.0f}"
          + (f" notifications/s={r['notifications'] / r['elapsed_s']:.0f}" if r["notifications"] else ""))


if __name__ == "__main__":
    main()
