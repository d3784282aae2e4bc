"""zstd on the data plane (PROTOCOL §9.4): bytes on the wire and client CPU per notification, compressed vs plain,
on the same stream, side by side in one run.

The stream source is a small replay server in its own process (``python bench_zstd.py --serve``): at start it
builds the notifications the local simulator sends for a ``--slots``-slot range of its synthetic chain (every
transaction, or the account diffs of every program), once as plain Text frames and once as the Binary frames of one
zstd stream (level 3, context takeover, each message flushed to a block boundary: what ``simclient.local`` sends when
asked), each joined into one blob of WebSocket frames. A subscription socket then gets its ack, ``sendall`` of the
blob and the end-of-stream marker: no per-frame work on the server, so the client sets the pace.

The client is the SDK's own subscription worker (:class:`simclient.subscriptions.Subscription`: transport, the
per-connection decompressor, decode, event conversion, dedup, queue) plus a consumer draining its queue, in this
process. Per run: wall time and this process's CPU time (``time.process_time``: both threads; the server is another
process) from the subscribe to the end-of-stream marker. Plain and zstd runs alternate (the order flips every
repetition); the figures are medians, and the ratios are medians of adjacent pairs.

    python benchmarks/bench_zstd.py [--slots 2000] [--reps 7] [--json out.json]

``SIMCLIENT_JSON=json`` forces the stdlib JSON decoder (orjson otherwise, when installed); the run prints which.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import queue
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FIRST_SLOT = 300_000_000
STREAMS = ("transaction", "accountDiff")


# ---------------------------------------------------------------------------------------------- the server

def _frame(payload: bytes, opcode: int) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _messages(slots: int, kind: str) -> List[str]:
    """The notification texts ``simclient.local`` sends a subscription (id 1) to every program's ``kind``."""
    from simclient.local.chain import SyntheticChain

    chain = SyntheticChain(seed=0, first_slot=FIRST_SLOT, bundle_size=1000, num_bundles=(slots + 999) // 1000)
    out: List[str] = []
    for s in range(FIRST_SLOT, FIRST_SLOT + slots):
        blk = chain.block(s)
        for tx in (blk.txs if blk is not None else []):
            if kind == "transaction":
                out.append('{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":1,'
                           '"result":{"context":{"slot":%d},"value":%s}}}' % (tx.slot, tx.value_json))
            else:
                out.extend('{"jsonrpc":"2.0","method":"accountDiffNotification","params":{"subscription":1,'
                           '"result":%s}}' % dj for dj in tx.diff_json)
    return out


def build_blobs(slots: int) -> Tuple[Dict[Tuple[str, bool], bytes], Dict[str, Any]]:
    """{(kind, compressed): blob of frames}, and what they hold (messages, payload bytes, compressor CPU)."""
    from simclient.local.zstd import StreamCompressor

    blobs: Dict[Tuple[str, bool], bytes] = {}
    info: Dict[str, Any] = {}
    for kind in STREAMS:
        texts = _messages(slots, kind)
        blobs[(kind, False)] = b"".join(_frame(t.encode(), 0x1) for t in texts)
        comp = StreamCompressor()
        c0 = time.process_time()
        frames = [comp.compress(t) for t in texts]
        cpu = time.process_time() - c0
        blobs[(kind, True)] = b"".join(_frame(f, 0x2) for f in frames)
        info[kind] = {"messages": len(texts), "plain_payload_bytes": sum(len(t.encode()) for t in texts),
                      "zstd_payload_bytes": sum(map(len, frames)),
                      "plain_wire_bytes": len(blobs[(kind, False)]), "zstd_wire_bytes": len(blobs[(kind, True)]),
                      "compress_us_per_message": cpu / max(1, len(texts)) * 1e6}
    return blobs, info


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def _read_client_frame(sock: socket.socket) -> Tuple[int, bytes]:
    b0, b1 = _read_exactly(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exactly(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exactly(sock, 8))[0]
    mask = _read_exactly(sock, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exactly(sock, n)))
    return b0 & 0x0F, data


def _serve_one(sock: socket.socket, blobs: Dict[Tuple[str, bool], bytes]) -> None:
    try:
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = sock.recv(4096)
            if not chunk:
                return
            req += chunk
        key = ""
        for line in req.decode("latin-1").split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        while True:
            opcode, data = _read_client_frame(sock)
            if opcode == 0x1:
                break
            if opcode == 0x9:
                sock.sendall(_frame(data, 0xA))
        sub = json.loads(data)
        kind = sub["method"][:-len("Subscribe")]
        cfg = sub["params"][1] if len(sub["params"]) > 1 else {}
        compressed = cfg.get("compression") == "zstd"
        ack = json.dumps({"jsonrpc": "2.0", "id": sub["id"], "result": 1}).encode()
        end = b'{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":1}}'
        sock.sendall(_frame(ack, 0x1) + blobs[(kind, compressed)] + _frame(end, 0x1) + _frame(b"\x03\xe8", 0x8))
        while True:  # until the client's close (pings answered meanwhile)
            opcode, data = _read_client_frame(sock)
            if opcode == 0x8:
                return
            if opcode == 0x9:
                sock.sendall(_frame(data, 0xA))
    except (OSError, ConnectionError, ValueError):
        return
    finally:
        sock.close()


def serve(slots: int) -> None:
    blobs, info = build_blobs(slots)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(json.dumps({"port": listener.getsockname()[1], "info": info}), flush=True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(sock, blobs), daemon=True).start()


# ---------------------------------------------------------------------------------------------- the client

class _BatchingSink:
    """``--batched-queue`` (an experiment, not what the SDK does): the worker's events reach the queue 64 at a time
    (and at the end of stream), so the consumer is woken once per batch instead of once per event."""

    def __init__(self, target: "queue.SimpleQueue[Any]", size: int = 64):
        self.target = target
        self.size = size
        self.buf: List[Any] = []

    def put(self, item: Any) -> None:
        from simclient.subscriptions import EndOfStream

        self.buf.append(item)
        if len(self.buf) >= self.size or isinstance(item, (EndOfStream, BaseException)):
            for x in self.buf:
                self.target.put(x)
            self.buf = []


def one_run(port: int, kind: str, compression: Optional[str], batched: bool = False) -> Dict[str, float]:
    """One subscription through the SDK's worker to its end of stream: events, wall s, CPU s (this process)."""
    from simclient import events as ev
    from simclient.config import ClientConfig
    from simclient.stats import SessionStats
    from simclient.subscriptions import EndOfStream, Subscription

    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    completed = threading.Event()
    completed.set()
    stats = SessionStats()
    target: Any = _BatchingSink(sink) if batched else sink
    sub = Subscription(kind, ["all"], f"http://127.0.0.1:{port}/backtest/bench", target, ClientConfig(), completed,
                       FIRST_SLOT, "bench", stats, compression=compression)
    events = 0
    x0 = _ctx_switches()
    w0, c0 = time.perf_counter(), time.process_time()
    sub.start()
    while True:
        item = sink.get(timeout=60)
        if isinstance(item, EndOfStream):
            break
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, (ev.Transaction, ev.AccountDiff)):
            events += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    switches = _ctx_switches() - x0
    sub.join(10)
    assert stats.decompress_failures == 0 and stats.frames_discarded == 0, stats
    return {"events": events, "wall": wall, "cpu": cpu, "switches": switches}


def _ctx_switches() -> float:
    """Voluntary context switches of this process so far (psutil, when installed; NaN otherwise)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    return float(psutil.Process().num_ctx_switches().voluntary)


def _inflate_only(slots: int, kind: str, reps: int = 3) -> Dict[str, float]:
    """Per-frame cost of the decompressor alone and of the JSON decode alone (no network, one thread)."""
    from simclient import protocol as wire
    from simclient.compression import new_inflater
    from simclient.local.zstd import StreamCompressor

    texts = _messages(slots, kind)
    comp = StreamCompressor()
    frames = [comp.compress(t) for t in texts]
    raw = [t.encode() for t in texts]
    best_inflate = best_decode = float("inf")
    for _ in range(reps):
        inflate = new_inflater("zstd")
        assert inflate is not None
        t0 = time.thread_time()
        for f in frames:
            inflate(f)
        best_inflate = min(best_inflate, time.thread_time() - t0)
        t0 = time.thread_time()
        for r in raw:
            wire.decode_subscription_frame(r)
        best_decode = min(best_decode, time.thread_time() - t0)
    n = len(texts)
    return {"inflate_us": best_inflate / n * 1e6, "decode_us": best_decode / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slots", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--batched-queue", action="store_true",
                    help="experiment: the worker's events reach the consumer's queue 64 at a time (not the SDK's "
                         "behaviour; measures what batching the hand-off would save)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.slots)
        return

    from simclient import protocol as wire

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", "--slots", str(args.slots)],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert server.stdout is not None
        banner = json.loads(server.stdout.readline())
        port, info = banner["port"], banner["info"]
        backend = wire.JSON_BACKEND
        print(f"bench_zstd: {args.slots} slots, {args.reps} alternating repetitions; JSON backend: {backend}; "
              "server: separate process (pre-framed blobs); client: the SDK's subscription worker in this process"
              + ("; EXPERIMENT: events queued 64 at a time" if args.batched_queue else ""))
        results: Dict[str, Any] = {"slots": args.slots, "reps": args.reps, "json_backend": backend,
                                   "batched_queue": args.batched_queue, "streams": {}}
        for kind in STREAMS:
            one_run(port, kind, None)  # warm-up (imports, the decompressor's first use)
            one_run(port, kind, "zstd")
            runs: Dict[str, List[Dict[str, float]]] = {"plain": [], "zstd": []}
            for rep in range(args.reps):
                order = ("plain", "zstd") if rep % 2 == 0 else ("zstd", "plain")
                for mode in order:
                    runs[mode].append(one_run(port, kind, "zstd" if mode == "zstd" else None, args.batched_queue))
            n = info[kind]["messages"]
            assert all(r["events"] == n for rs in runs.values() for r in rs), "an incomplete stream"
            med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "switches")}
                   for m, rs in runs.items()}
            cpu_ratio = statistics.median(z["cpu"] / p["cpu"] for z, p in zip(runs["zstd"], runs["plain"]))
            wall_ratio = statistics.median(z["wall"] / p["wall"] for z, p in zip(runs["zstd"], runs["plain"]))
            micro = _inflate_only(min(args.slots, 500), kind)
            i = info[kind]
            row = {
                "messages": n,
                "plain_bytes_per_msg": i["plain_wire_bytes"] / n, "zstd_bytes_per_msg": i["zstd_wire_bytes"] / n,
                "wire_ratio": i["zstd_wire_bytes"] / i["plain_wire_bytes"],
                "plain_cpu_us_per_msg": med["plain"]["cpu"] / n * 1e6, "zstd_cpu_us_per_msg": med["zstd"]["cpu"] / n * 1e6,
                "cpu_ratio": cpu_ratio,
                "plain_msgs_per_s": n / med["plain"]["wall"], "zstd_msgs_per_s": n / med["zstd"]["wall"],
                "wall_ratio": wall_ratio,
                "plain_switches_per_msg": med["plain"]["switches"] / n, "zstd_switches_per_msg": med["zstd"]["switches"] / n,
                "inflate_us_per_msg": micro["inflate_us"], "decode_us_per_msg": micro["decode_us"],
                "server_compress_us_per_msg": i["compress_us_per_message"],
            }
            results["streams"][kind] = row
            print(f"\n{kind} stream: {n} notifications")
            print(f"  bytes on the wire / notification   plain {row['plain_bytes_per_msg']:8.0f}   "
                  f"zstd {row['zstd_bytes_per_msg']:8.0f}   zstd/plain {row['wire_ratio']:.3f}")
            print(f"  client CPU us / notification       plain {row['plain_cpu_us_per_msg']:8.1f}   "
                  f"zstd {row['zstd_cpu_us_per_msg']:8.1f}   zstd/plain {row['cpu_ratio']:.2f} (median of pairs)")
            print(f"  notifications / s (wall)           plain {row['plain_msgs_per_s']:8.0f}   "
                  f"zstd {row['zstd_msgs_per_s']:8.0f}   wall zstd/plain {row['wall_ratio']:.2f}")
            print(f"  context switches / notification    plain {row['plain_switches_per_msg']:8.2f}   "
                  f"zstd {row['zstd_switches_per_msg']:8.2f}   (voluntary, this process)")
            print(f"  one thread, no network: decompress {row['inflate_us_per_msg']:.1f} us/frame, "
                  f"JSON decode {row['decode_us_per_msg']:.1f} us/frame; server compress "
                  f"{row['server_compress_us_per_msg']:.1f} us/frame")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
