"""Hot-path cost per frame, deterministic: frames captured from the local simulator, replayed from memory.

No network and no threads, so the figures do not depend on the machine's load the way the wall-clock benchmarks do:
this is what the profile-driven changes to the hot path were measured with (docs/performance.md). Each SDK stage is
printed beside the bare equivalent that the raw-loop reference of bench_throughput.py runs for the same frames:

* transport: ``Connection.recv`` vs websocket-client's own ``WebSocket.recv`` over the same in-memory socket;
* transport over a real socket (a local socketpair, ``recv(0.5)`` as the control reader polls): frames written in
  ~60 KiB bursts, and one frame per write (every read then waits for readability: the worst case);
* control pipeline: ``_decode`` + ``_route_single`` (cursor, §7.1 bookkeeping, queue) + ``session.next_event`` vs
  ``json.loads``;
* subscription pipeline: ``decode_subscription_frame`` + ``_on_notification`` (dedup, queue) + ``next_event`` vs
  ``json.loads``.

Not part of ``make bench``. To compare two trees: ``SIMCLIENT_BENCH_CLIENT_PATH=/path/to/old python
benchmarks/bench_hotpath.py`` (the variable is put first on sys.path here).

    python benchmarks/bench_hotpath.py [--best-of 5]
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List

_CLIENT = os.environ.get("SIMCLIENT_BENCH_CLIENT_PATH")
if _CLIENT:
    sys.path.insert(0, _CLIENT)
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, SimProcess  # noqa: E402


def capture(slots: int = 2000) -> Dict[str, List[bytes]]:
    """The control frames and transaction notifications of one session, as the simulator sends them."""
    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire

    with SimProcess() as sim:
        ws = websocket.create_connection(sim.url, header=[f"X-API-Key: {API_KEY}"], timeout=60,
                                         skip_utf8_validation=True)
        ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1))))
        control: List[bytes] = []
        while True:
            text = ws.recv()
            msg = json.loads(text)
            if msg["method"] == "sessionCreated":
                sid = msg["params"]["session_id"]
            if msg["method"] == "readyForContinue":
                break
        sub = websocket.create_connection(f"{sim.url}/{sid}", timeout=60, skip_utf8_validation=True)
        sub.send(json.dumps(wire.encode_subscribe(1, "transaction", wire.transaction_filter(sim.program_ids))))
        sub.recv()
        notes: List[bytes] = []

        def drain() -> None:
            while True:
                text = sub.recv()
                if '"subscriptionComplete"' in text or json.loads(text)["params"].get("result") is None:
                    return
                notes.append(text.encode())

        th = threading.Thread(target=drain)
        th.start()
        ws.send(json.dumps(wire.encode_continue(Continue(advance_count=slots))))
        while True:
            text = ws.recv()
            if '"completed"' in text[:80]:
                break
            control.append(text.encode())
        th.join()
        sub.close()
        ws.close()
    # status and slot frames, renumbered so that five copies form one gap-free sequenced stream
    base = [json.loads(c) for c in control]
    base = [m for m in base if m["method"] in ("status", "slotNotification")]
    frames = []
    for i, m in enumerate(base * 5):
        m = dict(m, seqId=i + 1)
        frames.append(json.dumps(m, separators=(",", ":")).encode())
    return {"control": frames, "sub": notes}


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + struct.pack("!H", n) + payload
    return bytes([0x81, 127]) + struct.pack("!Q", n) + payload


class MemSock:
    """A socket that hands out an in-memory byte stream (as much as asked for, like a full kernel buffer)."""

    def __init__(self, blob: bytes):
        self.blob = memoryview(blob)
        self.pos = 0
        self.timeout = None

    def gettimeout(self) -> Any:
        return self.timeout

    def settimeout(self, t: Any) -> None:
        self.timeout = t

    def recv(self, n: int) -> bytes:
        chunk = bytes(self.blob[self.pos:self.pos + n])
        self.pos += len(chunk)
        return chunk


def _ws(payloads: List[bytes]) -> Any:
    import websocket

    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
    ws.sock = MemSock(b"".join(ws_frame(p) for p in payloads))
    ws.connected = True
    return ws


def per_frame(fn: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e9


def transport_sdk(payloads: List[bytes]) -> float:
    from simclient.transport import Connection

    recv = Connection(_ws(payloads), "mem").recv
    n = len(payloads)

    def run() -> None:
        for _ in range(n):
            recv(None)
    return per_frame(run, n)


def transport_raw(payloads: List[bytes]) -> float:
    recv = _ws(payloads).recv
    n = len(payloads)

    def run() -> None:
        for _ in range(n):
            recv()
    return per_frame(run, n)


def _pair_ws(sock: Any) -> Any:
    import websocket

    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    ws.sock = sock
    ws.connected = True
    return ws


def _over_socket(payloads: List[bytes], sdk: bool, burst: int) -> float:
    """ns per frame read by ``recv`` over a socketpair, frames written ``burst`` bytes at a time (0: one per write);
    only the reads are timed, in thread CPU time."""
    import socket as _socket

    a, b = _socket.socketpair()
    try:
        if sdk:
            from simclient.transport import Connection

            a.settimeout(30.0)  # what Connection.open leaves: the send timeout (older clients set it per recv)
            conn = Connection(_pair_ws(a), "pair")
            recv: Callable[[], Any] = lambda: conn.recv(0.5)  # noqa: E731
        else:
            a.settimeout(0.5)
            ws = _pair_ws(a)
            recv = ws.recv
        chunks: List[List[bytes]] = [[]]
        size = 0
        for p in payloads:
            if burst == 0 or size + len(p) > burst:
                chunks.append([])
                size = 0
            chunks[-1].append(ws_frame(p))
            size += len(p) + 10
        total = 0.0
        perf = time.thread_time  # CPU of this thread (syscalls included): preemption by other load excluded
        for chunk in chunks:
            if not chunk:
                continue
            b.sendall(b"".join(chunk))
            t0 = perf()
            for _ in chunk:
                recv()
            total += perf() - t0
        return total / len(payloads) * 1e9
    finally:
        a.close()
        b.close()


def socket_burst_sdk(payloads: List[bytes]) -> float:
    return _over_socket(payloads, True, 60_000)


def socket_burst_raw(payloads: List[bytes]) -> float:
    return _over_socket(payloads, False, 60_000)


def socket_single_sdk(payloads: List[bytes]) -> float:
    return _over_socket(payloads, True, 0)


def socket_single_raw(payloads: List[bytes]) -> float:
    return _over_socket(payloads, False, 0)


def _session() -> Any:
    from simclient import ClientConfig, CreateSession
    from simclient.control import ControlConnection, Route
    from simclient.session import Session

    cfg = ClientConfig()
    cc = ControlConnection("ws://127.0.0.1:1/backtest", "k", cfg, CreateSession(start_slot=1, slot_count=10),
                           parallel=False)
    route = Route("sid", "http://127.0.0.1:1/backtest/sid", None)
    cc.routes["sid"] = route
    return cc, route, Session(cc, route, cfg), cfg


def control_sdk(payloads: List[bytes]) -> float:
    cc, _route, s, _cfg = _session()
    dec, route_single, nxt = cc._decode, cc._route_single, s.next_event

    def run() -> None:
        for p in payloads:
            f = dec(p)
            route_single(f.seq_id, f.message)
            nxt(None)
    return per_frame(run, len(payloads))


def sub_sdk(payloads: List[bytes]) -> float:
    """The transaction pipeline as the orjson path decodes it (``decode_subscription_frame``)."""
    return _sub_pipeline(payloads, "decode_subscription_frame")


def sub_sdk_reader(payloads: List[bytes]) -> float:
    """The transaction pipeline as a transaction worker reads it: the kind's reader (``read_transaction_frame``,
    msgspec's typed decode when installed) and the event queued, else the general path as in :func:`sub_sdk`."""
    from simclient import protocol as wire
    from simclient.subscriptions import Subscription

    read = getattr(wire, "read_transaction_frame", None)
    if read is None:  # an older client (SIMCLIENT_BENCH_CLIENT_PATH): its transaction decoder
        return _sub_pipeline(payloads, "decode_transaction_frame")
    _cc, route, s, cfg = _session()
    sub = Subscription("transaction", ["p"], "http://127.0.0.1:1/backtest/sid", route.sink, cfg, route.completed, 1,
                       "sid", route.stats)
    ids: Dict[int, str] = {1: "programs"}
    ended: set = set()
    dec, on, deliver, nxt = wire.decode_subscription_frame, sub._on_notification, sub._deliver, s.next_event

    def run() -> None:
        for p in payloads:
            hit = read(p)
            if hit is not None:
                deliver(hit[1])
            else:
                on(dec(p), ids, ended)
            nxt(None)
    return per_frame(run, len(payloads))


def _sub_pipeline(payloads: List[bytes], decoder: str) -> float:
    from simclient import protocol as wire
    from simclient.subscriptions import Subscription

    _cc, route, s, cfg = _session()
    sub = Subscription("transaction", ["p"], "http://127.0.0.1:1/backtest/sid", route.sink, cfg, route.completed, 1,
                       "sid", route.stats)
    ids: Dict[int, str] = {1: "programs"}
    ended: set = set()
    dec, on, nxt = getattr(wire, decoder), sub._on_notification, s.next_event

    def run() -> None:
        for p in payloads:
            on(dec(p), ids, ended)
            nxt(None)
    return per_frame(run, len(payloads))


def loads_raw(payloads: List[bytes]) -> float:
    loads = json.loads

    def run() -> None:  # results dropped one by one, as in the SDK stages (a kept list would time the GC)
        for p in payloads:
            loads(p)
    return per_frame(run, len(payloads))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--best-of", type=int, default=5)
    args = ap.parse_args()
    from simclient import protocol

    frames = capture()
    print(f"[hot path] ns per frame, best of {args.best_of}, frames replayed from memory (no network, no threads); "
          f"SDK JSON backend {protocol.JSON_BACKEND}" + (f"; client from {_CLIENT}" if _CLIENT else ""))
    print(f"    {'stage':<24} {'frames':>6} {'SDK ns':>7} {'bare equivalent':<26} {'bare ns':>7} {'SDK / bare':>10}")
    rows = (("transport, control", transport_sdk, transport_raw, "control", "websocket-client recv()"),
            ("transport, transactions", transport_sdk, transport_raw, "sub", "websocket-client recv()"),
            ("socket, bursts", socket_burst_sdk, socket_burst_raw, "sub", "websocket-client recv()"),
            ("socket, 1 frame/write", socket_single_sdk, socket_single_raw, "sub", "websocket-client recv()"),
            ("control pipeline", control_sdk, loads_raw, "control", "json.loads"),
            ("subscription pipeline", sub_sdk, loads_raw, "sub", "json.loads"))
    for label, sdk_fn, raw_fn, kind, raw_label in rows:
        payloads = frames[kind]
        sdk = min(sdk_fn(payloads) for _ in range(args.best_of))
        raw = min(raw_fn(payloads) for _ in range(args.best_of))
        print(f"    {label:<24} {len(payloads):>6} {sdk:>7.0f} {raw_label:<26} {raw:>7.0f} {sdk / raw:>9.2f}x")


if __name__ == "__main__":
    main()
