"""Benchmark 3, resume latency: time from a forced control drop to the next delivered event.

The simulator runs with ``--drop-control-every N`` (it aborts the control TCP connection instead of sending every
N-th live sequenced frame) and ``--slot-pace-ms`` (so the stream is paced and the consumer never lags behind: the
next event after a drop is the replay of the dropped frame). Latency = from the moment the client sees the
connection break to the moment the next control event comes out of ``session.events()`` (SDK) or the next
replayed frame has been read and parsed (reference).

The reference is a bare websocket-client loop that on a drop reconnects at once, sends
``attachBacktestSession{session_id, last_sequence}`` and reads up to the first replayed frame: the floor for any
client (TCP connect + WebSocket upgrade + attach round trip). The SDK figure (ratio SDK / reference) adds its
reconnect policy, handshake checks, cursor dedup and the queue. Measured for a single session and for a parallel
run of 8 sub-sessions (``attachParallelControlSessionV2``). Goal: SDK median <= 0.5 s on loopback.

    python benchmarks/bench_resume.py [--drops 15]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    API_KEY, FIRST_SLOT, SIM_WHERE, SimProcess, emit, median, percentile, run_worker, save_result,
)

DROP_EVERY = 150     # live sequenced control frames between drops
PACE_MS = 1.0        # simulator sleep per produced slot


class _Marks(logging.Handler):
    """Times (time.time()) at which the control reader logged a lost connection and a re-attach."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lost: List[float] = []
        self.attached: List[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()  # (Handler.handle holds the handler's lock)
        if msg.startswith("control connection lost") or msg.startswith("control: "):
            self.lost.append(record.created)
        elif "re-attached" in msg:
            self.attached.append(record.created)


def sdk_latencies(url: str, parallel: bool, slots: int) -> Dict[str, Any]:
    from simclient import Client, ClientConfig, CreateSession
    from simclient import events as ev

    marks = _Marks()
    logger = logging.getLogger("simclient.control")
    logger.addHandler(marks)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # The policy reconnects at once only after a connection that stayed up reconnect_uptime_reset (a real outage);
    # any other reconnect first waits backoff_initial (0.5 s), so that a flapping server cannot cause a storm.
    # Drops here come after a few ms (parallel: 8 streams fill 150 frames fast) to ~60 ms of uptime: model each as a
    # real outage (uptime reset 1 ms), and measure the resume itself.
    client = Client(url, API_KEY, ClientConfig(reconnect_uptime_reset=0.001))
    delivered: List[float] = []
    lock = threading.Lock()
    try:
        if parallel:
            with client.start_parallel(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1)) as run:
                def on_event(sub: Any, e: Any) -> None:
                    t = time.time()
                    with lock:
                        delivered.append(t)

                result = run.drive(on_event=on_event, advance_count=None)
                if not result.ok:
                    raise RuntimeError(f"parallel run failed: {result.failures[:2]}")
                reconnects = run.reconnects
        else:
            with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1)) as s:
                for e in s.events(timeout=60):
                    delivered.append(time.time())
                    if type(e) is ev.ReadyForContinue:
                        s.send_continue(advance_count=slots)
                reconnects = s.stats.control_reconnects
    finally:
        logger.removeHandler(marks)
    lat = []
    for t_lost in marks.lost:
        after = [t for t in marks.attached if t >= t_lost]
        if not after:
            continue
        nxt = [t for t in delivered if t >= after[0]]
        if nxt:
            lat.append(nxt[0] - t_lost)
    return {"latencies": lat, "reconnects": reconnects}


def raw_latencies(url: str, slots: int) -> Dict[str, Any]:
    """A bare websocket-client single-session loop with the minimal reconnect: connect, attach, read."""
    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire

    def connect() -> Any:
        ws = websocket.create_connection(url, header=[f"X-API-Key: {API_KEY}"], timeout=30,
                                         skip_utf8_validation=True, enable_multithread=False)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ws

    ws = connect()
    ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1))))
    session_id = None
    last_seq = 0
    lost_at: Optional[float] = None
    lat: List[float] = []
    continued = False
    while True:
        try:
            msg = json.loads(ws.recv())
        except (OSError, websocket.WebSocketException):
            lost_at = time.time()
            ws.shutdown()
            ws = connect()
            ws.send(json.dumps(wire.encode_attach(session_id, last_seq)))
            continue
        seq = msg.get("seqId")
        if seq is not None:
            if seq <= last_seq:
                continue
            last_seq = seq
            if lost_at is not None:
                lat.append(time.time() - lost_at)
                lost_at = None
        method = msg.get("method")
        if method == "sessionCreated":
            session_id = msg["params"]["session_id"]
        elif method == "sessionAttached":
            ws.send(json.dumps(wire.encode_resume()))
        elif method == "readyForContinue" and not continued:
            continued = True
            ws.send(json.dumps(wire.encode_continue(Continue(advance_count=slots))))
        elif method == "completed":
            break
    ws.send(json.dumps(wire.encode_close()))
    ws.close()
    return {"latencies": lat, "reconnects": len(lat)}


def worker(args: argparse.Namespace) -> None:
    out: Dict[str, Any] = {}
    reps = ["raw", "sdk-single", "sdk-parallel"]
    for name in reps:
        out[name] = {"latencies": [], "reconnects": 0}
    for rep in range(args.reps):
        for name in (reps if rep % 2 == 0 else list(reversed(reps))):
            if name == "raw":
                r = raw_latencies(args.url, args.slots)
            elif name == "sdk-single":
                r = sdk_latencies(args.url, False, args.slots)
            else:
                r = sdk_latencies(args.urls_parallel, True, args.slots)
            out[name]["latencies"] += r["latencies"]
            out[name]["reconnects"] += r["reconnects"]
    emit(out)


def run(slots: int = 1600, reps: int = 2) -> Dict[str, Any]:
    print(f"[3] resume latency: forced control drop -> next delivered event (goal: SDK median <= 0.5 s; drop every "
          f"{DROP_EVERY} frames, {PACE_MS:g} ms/slot pace, {slots:,}-slot sessions x {reps})")
    print(f"    {SIM_WHERE}")
    extra = ["--drop-control-every", str(DROP_EVERY), "--slot-pace-ms", str(PACE_MS)]
    with SimProcess(bundle_size=100, num_bundles=100, extra=extra) as sim, \
            SimProcess(bundle_size=slots // 8, num_bundles=8, extra=extra) as psim:
        out = run_worker("bench_resume.py", ["--url", sim.url, "--urls-parallel", psim.url, "--slots", str(slots),
                                             "--reps", str(reps)])
    ref = out["raw"]["latencies"]
    ref_med, ref_p90 = median(ref), percentile(ref, 90)
    print(f"    {'client':<40} {'drops':>5} {'median ms':>9} {'p90 ms':>7} {'median / ref':>12}")
    print(f"    {'reference: raw reconnect + attach':<40} {len(ref):>5} {ref_med * 1e3:>9.1f} {ref_p90 * 1e3:>7.1f} "
          f"{1.0:>11.2f}x")
    rows = {"reference": {"n": len(ref), "median": ref_med, "p90": ref_p90}}
    for name, label in (("sdk-single", "SDK single session"), ("sdk-parallel", "SDK parallel run, 8 sub-sessions")):
        lat = out[name]["latencies"]
        med, p90 = median(lat), percentile(lat, 90)
        ok = "ok" if med <= 0.5 else "ABOVE GOAL"
        print(f"    {label:<40} {len(lat):>5} {med * 1e3:>9.1f} {p90 * 1e3:>7.1f} {med / ref_med:>11.2f}x  {ok}")
        rows[name] = {"n": len(lat), "median": med, "p90": p90, "ratio": med / ref_med,
                      "reconnects": out[name]["reconnects"]}
    save_result("resume", rows)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url")
    ap.add_argument("--urls-parallel")
    ap.add_argument("--slots", type=int, default=1600)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args.slots, args.reps)


if __name__ == "__main__":
    main()
