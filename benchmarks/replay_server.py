"""Replay server: recorded simulator frames served from memory, pre-framed, as fast as the socket takes them.

The local simulator awaits every notification write and runs its chain model per slot, so on the transaction stream
it (not the client) sets the pace. This server removes that: at start it records (once, cached in the temp dir)
what ``simclient.local`` sends for a few sessions, turns every frame into the raw bytes of an unmasked WebSocket
text frame, joins them into one blob per stream, and then answers each client with ``sendall`` of those blobs: no
JSON encoding, no per-frame Python work, no awaiting. It speaks just enough of the protocol for the SDK to run
unmodified:

* control socket ``ws://HOST:PORT/<scenario>/backtest`` (the scenario is the path prefix; ``Client(url)`` adds
  ``/backtest``): ``createBacktestSession`` → the recorded create phase (``sessionCreated`` … ``readyForContinue``,
  or for a parallel create every ``sessionCreated``/``sessionEventV2`` … ``sessionsCreatedV2``); the ``continue``
  (single) or every sub-session's ``continueSessionV1`` (parallel) → the recorded stream up to ``completed``;
  ``closeBacktestSession`` → the recorded ``success``; pings → pongs; a close frame → its echo.
* subscription socket ``/backtest/<session id>``: ``transactionSubscribe`` / ``accountDiffSubscribe`` → an ack with
  the recorded subscription id; each ``continue`` of the session then writes that step's recorded notifications (and
  after the last step the end-of-stream marker) to every subscription socket, then the step's control frames.
* ``GET /manifest``: scenarios, program ids, frame and byte counts of every blob; ``GET /stats``: frames and bytes
  written so far and the server's CPU time, so a benchmark can compute the server's own rate and utilisation.

Scenarios: ``control`` (a 10,000-slot session, control stream only), ``tx`` (a 2,000-slot session with its
transaction notifications, ~1.3 KB each, and the account diffs of two programs), ``steps`` (300 one-slot steps of
such a session: each ``continue`` gets one step) and ``fanout-N`` (a 6,400-slot parallel run split into N
sub-sessions, control stream only).

    python benchmarks/replay_server.py [--port 0] [--fanouts 1,8,32,64,128] [--no-cache]

One thread per connection, blocking sockets: ``sendall`` of a blob releases the GIL for its whole length.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import pickle
import socket
import struct
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
API_KEY = "local-dev-key"
FIRST_SLOT = 300_000_000
CONTROL_SLOTS = 10_000
TX_SLOTS = 2_000
FANOUT_SLOTS = 6_400
DIFF_PROGRAMS = 2
FANOUTS = (1, 8, 32, 64, 128)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STEP_SLOTS = 300  # the "steps" scenario: one-slot steps with subscriptions (the step barrier's per-step cost)
FORMAT = 4  # bump when the recording changes shape


# ---------------------------------------------------------------------------------------------- recording

def _recv_until(ws: Any, stop: Any) -> List[str]:
    out = []
    while True:
        text = ws.recv()
        out.append(text)
        if stop(json.loads(text)):
            return out


def _record_single(slots: int, subscribe: bool, step: Optional[int] = None) -> Dict[str, Any]:
    """One session: its create phase, stream, close reply and subscriptions' notifications. ``step``: continue
    ``advance_count=step`` at every readyForContinue (``step_ends`` marks where each step's frames end)."""
    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire
    from simclient.local import LocalSimulator

    with LocalSimulator(port=0, bundle_size=1000, num_bundles=(slots + 999) // 1000, first_slot=FIRST_SLOT) as sim:
        programs = list(sim.program_ids)
        ws = websocket.create_connection(sim.url, header=[f"X-API-Key: {API_KEY}"], timeout=60,
                                         skip_utf8_validation=True)
        ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1))))
        pre = _recv_until(ws, lambda m: m.get("method") == "readyForContinue")
        sid = next(json.loads(t)["params"]["session_id"] for t in pre if '"sessionCreated"' in t)
        subs: Dict[str, Any] = {}
        threads = []
        if subscribe:
            wanted = [("transaction", "transaction", wire.transaction_filter(programs))]
            wanted += [(f"accountDiff:{p}", "accountDiff", wire.account_diff_filter(p)) for p in programs[:DIFF_PROGRAMS]]
            for key, kind, filt in wanted:
                sub = websocket.create_connection(f"{sim.url}/{sid}", timeout=60, skip_utf8_validation=True)
                sub.send(json.dumps(wire.encode_subscribe(1, kind, filt)))
                ack = json.loads(sub.recv())
                frames: List[str] = []
                subs[key] = {"subscription": ack["result"], "frames": frames}

                def drain(sub: Any = sub, frames: List[str] = frames) -> None:
                    frames.extend(_recv_until(sub, lambda m: m.get("method") == "subscriptionComplete"
                                              or m["params"].get("result", 0) is None))  # either §9.5 marker
                    sub.close()

                threads.append(threading.Thread(target=drain))
        for th in threads:
            th.start()
        post: List[str] = []
        step_ends: List[int] = []
        while not post or '"completed"' not in post[-1][:80]:
            ws.send(json.dumps(wire.encode_continue(Continue(advance_count=step or slots))))
            post += _recv_until(ws, lambda m: m.get("method") in ("completed", "readyForContinue"))
            step_ends.append(len(post))
        for th in threads:
            th.join()
        ws.send(json.dumps(wire.encode_close()))
        close = _recv_until(ws, lambda m: m.get("method") == "success")
        ws.close()
    return {"parallel": False, "slots": slots, "session_ids": [sid], "programs": programs,
            "diff_programs": programs[:DIFF_PROGRAMS] if subscribe else [], "pre": pre, "post": post,
            "step_ends": step_ends, "close": close, "subs": subs}


def _record_parallel(total: int, n: int) -> Dict[str, Any]:
    import websocket

    from simclient import Continue, CreateSession
    from simclient import protocol as wire
    from simclient.local import LocalSimulator

    with LocalSimulator(port=0, bundle_size=total // n, num_bundles=n, first_slot=FIRST_SLOT) as sim:
        ws = websocket.create_connection(sim.url, header=[f"X-API-Key: {API_KEY}"], timeout=60,
                                         skip_utf8_validation=True)
        ws.send(json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=total - 1),
                                              parallel=True)))
        pre: List[str] = []
        ready: set = set()
        created: Optional[Dict[str, Any]] = None
        while created is None or len(ready) < len(created["session_ids"]):
            text = ws.recv()
            pre.append(text)
            m = json.loads(text)
            if m.get("method") == "sessionsCreatedV2":
                created = m["params"]
            elif m.get("method") == "sessionEventV2" and m["params"]["event"].get("method") == "readyForContinue":
                ready.add(m["params"]["session_id"])
        assert created is not None
        sids = created["session_ids"]
        for sid, s, e in zip(sids, created["start_slots"], created["end_slots"]):
            ws.send(json.dumps(wire.encode_continue_v1(sid, Continue(advance_count=e - s + 1))))
        post: List[str] = []
        done = 0
        while done < len(sids):
            text = ws.recv()
            post.append(text)
            m = json.loads(text)
            if m.get("method") == "sessionEventV2" and m["params"]["event"].get("method") == "completed":
                done += 1
        ws.close()
    return {"parallel": True, "slots": total, "session_ids": sids, "programs": [], "diff_programs": [],
            "pre": pre, "post": post, "close": [], "subs": {}}


def _cache_key(fanouts: Tuple[int, ...]) -> str:
    h = hashlib.sha256(repr((FORMAT, CONTROL_SLOTS, TX_SLOTS, STEP_SLOTS, FANOUT_SLOTS, DIFF_PROGRAMS,
                             fanouts)).encode())
    local = os.path.join(REPO, "simclient", "local")
    for name in sorted(os.listdir(local)):
        if name.endswith(".py"):
            with open(os.path.join(local, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def record(fanouts: Tuple[int, ...] = FANOUTS, cache: bool = True) -> Dict[str, Dict[str, Any]]:
    """Every scenario's recorded frames (text), from the local simulator; cached by the simulator's source."""
    path = os.path.join(tempfile.gettempdir(), f"simclient-replay-{_cache_key(fanouts)}.pickle")
    if cache and os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - our own file
    scenarios = {"control": _record_single(CONTROL_SLOTS, False), "tx": _record_single(TX_SLOTS, True),
                 "steps": _record_single(STEP_SLOTS, True, step=1)}
    for n in fanouts:
        scenarios[f"fanout-{n}"] = _record_parallel(FANOUT_SLOTS, n)
    # Session ids repeat between simulator instances (same seed): make them unique per scenario, so that a
    # subscription socket's path names its scenario.
    for name, sc in scenarios.items():
        mapping = {sid: f"{name}-{i:04d}-{sid[-12:]}" for i, sid in enumerate(sc["session_ids"])}

        def swap(text: str, mapping: Dict[str, str] = mapping) -> str:
            for old, new in mapping.items():
                if old in text:
                    text = text.replace(old, new)
            return text
        for key in ("pre", "post", "close"):
            sc[key] = [swap(t) for t in sc[key]]
        for sub in sc["subs"].values():
            sub["frames"] = [swap(t) for t in sub["frames"]]
        sc["session_ids"] = [mapping[s] for s in sc["session_ids"]]
    if cache:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(scenarios, f)
        os.replace(tmp, path)
    return scenarios


# ---------------------------------------------------------------------------------------------- framing

def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked server-to-client frame (FIN set)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        return head + bytes([n]) + payload
    if n < 65536:
        return head + bytes([126]) + struct.pack("!H", n) + payload
    return head + bytes([127]) + struct.pack("!Q", n) + payload


class Blob:
    """One stream, pre-framed: the bytes to write and how many frames they hold."""

    __slots__ = ("data", "frames")

    def __init__(self, texts: List[str]):
        self.data = b"".join(ws_frame(t.encode()) for t in texts)
        self.frames = len(texts)


class Scenario:
    def __init__(self, name: str, rec: Dict[str, Any]):
        self.name = name
        self.parallel = rec["parallel"]
        self.slots = rec["slots"]
        self.session_ids: List[str] = rec["session_ids"]
        self.programs: List[str] = rec["programs"]
        self.diff_programs: List[str] = rec["diff_programs"]
        self.pre = Blob(rec["pre"])
        self.post = Blob(rec["post"])
        self.close = Blob(rec["close"])
        # Single sessions, step by step: the control frames up to each step's readyForContinue (the last: up to
        # completed), and each subscription's notifications of that step's slots (the last step also gets the
        # end-of-stream marker). A recording made with one continue is one step.
        post = rec["post"]
        ends = rec.get("step_ends") or [len(post)]
        texts_per_step = [post[a:b] for a, b in zip([0] + ends[:-1], ends)]
        self.steps = [Blob(t) for t in texts_per_step]
        step_of_slot: Dict[int, int] = {}
        for i, texts in enumerate(texts_per_step if len(texts_per_step) > 1 else []):
            for t in texts:
                if '"slotNotification"' in t:
                    step_of_slot.setdefault(json.loads(t)["params"], i)
        self.subs: Dict[str, Tuple[int, List[Blob]]] = {}
        for key, v in rec["subs"].items():
            per_step: List[List[str]] = [[] for _ in self.steps]
            for t in v["frames"]:
                result = (json.loads(t).get("params") or {}).get("result")  # None: the end-of-stream marker
                slot = None if result is None else (result.get("context") or {}).get("slot")
                per_step[step_of_slot.get(slot, len(self.steps) - 1) if len(self.steps) > 1 else 0].append(t)
            self.subs[key] = (v["subscription"], [Blob(t) for t in per_step])
        # Parallel: the recorded stream as runs of consecutive frames of one sub-session, in recorded order, each
        # pre-framed (a sub-session's frames go out only after its own continue; see ReplayServer._stream_parallel).
        self.runs: List[Tuple[str, Blob]] = []
        if self.parallel:
            current: Optional[str] = None
            texts: List[str] = []
            for text in rec["post"]:
                sid = json.loads(text)["params"]["session_id"]
                if sid != current and texts:
                    self.runs.append((current or "", Blob(texts)))
                    texts = []
                current = sid
                texts.append(text)
            if texts:
                self.runs.append((current or "", Blob(texts)))

    def manifest(self) -> Dict[str, Any]:
        return {"parallel": self.parallel, "slots": self.slots, "session_ids": self.session_ids,
                "programs": self.programs, "diff_programs": self.diff_programs,
                "pre": [self.pre.frames, len(self.pre.data)], "post": [self.post.frames, len(self.post.data)],
                "close": [self.close.frames, len(self.close.data)],
                "steps": len(self.steps),
                "subs": {k: {"subscription": sid, "frames": sum(b.frames for b in bs),
                             "bytes": sum(len(b.data) for b in bs), "ack_bytes": len(_ack(1, sid))}
                         for k, (sid, bs) in self.subs.items()}}


def _ack(request_id: Any, subscription: int) -> bytes:
    return ws_frame(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": subscription},
                               separators=(",", ":")).encode())


# ---------------------------------------------------------------------------------------------- serving

class _Peer:
    """A client connection: reads (masked) client frames; writes raw bytes."""

    def __init__(self, sock: socket.socket, buf: bytes):
        self.sock = sock
        self.buf = buf
        self.wlock = threading.Lock()  # the control thread writes notifications; the socket's own thread pongs

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_frame(self) -> Optional[Tuple[int, bytes]]:
        """(opcode, unmasked payload), or None at EOF."""
        if not self._fill(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._fill(4):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._fill(10):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        mask = b""
        if b1 & 0x80:
            if not self._fill(pos + 4):
                return None
            mask = self.buf[pos:pos + 4]
            pos += 4
        if not self._fill(pos + n):
            return None
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if mask:  # client frames are small requests: a plain loop is fast enough
            payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        return b0 & 0x0F, payload

    def write(self, data: bytes) -> None:
        with self.wlock:
            self.sock.sendall(data)


class ReplayServer:
    def __init__(self, scenarios: Dict[str, Scenario], host: str = "127.0.0.1", port: int = 0):
        self.scenarios = scenarios
        self.by_session = {sid: sc for sc in scenarios.values() for sid in sc.session_ids}
        self.listener = socket.create_server((host, port), backlog=512)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.subscribers: Dict[str, List[Tuple[_Peer, str]]] = {}  # session id → its subscription sockets
        self.frames_sent = 0
        self.bytes_sent = 0
        self.send_seconds = 0.0  # wall time spent inside sendall of stream blobs
        self.threads: List[threading.Thread] = []

    # --- plumbing

    def serve_forever(self) -> None:
        """Accept until :meth:`close`; one thread per connection."""
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # closed
                return
            th = threading.Thread(target=self._handle, args=(sock,), name="replay-conn", daemon=True)
            self.threads = [t for t in self.threads if t.is_alive()] + [th]
            th.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting and wait for the connection threads (they end when their clients close)."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        deadline = time.monotonic() + timeout
        for th in list(self.threads):
            th.join(max(0.0, deadline - time.monotonic()))

    def _count(self, blob: Blob, seconds: float) -> None:
        with self.lock:
            self.frames_sent += blob.frames
            self.bytes_sent += len(blob.data)
            self.send_seconds += seconds

    def _send_blob(self, peer: _Peer, blob: Blob) -> None:
        t0 = time.perf_counter()
        peer.write(blob.data)
        self._count(blob, time.perf_counter() - t0)

    def _handle(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            if headers.get("upgrade", "").lower() != "websocket":
                self._http(sock, path)
                return
            key = headers.get("sec-websocket-key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            peer = _Peer(sock, rest)
            parts = [p for p in path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[1] == "backtest" and parts[0] in self.scenarios:
                if headers.get("x-api-key") != API_KEY:
                    sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    return
                self._upgrade(sock, accept)
                self._control(peer, self.scenarios[parts[0]])
            elif len(parts) == 2 and parts[0] == "backtest" and parts[1] in self.by_session:
                self._upgrade(sock, accept)
                self._subscription(peer, self.by_session[parts[1]], parts[1])
            else:
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ValueError, IndexError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _upgrade(sock: socket.socket, accept: str) -> None:
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())

    def _http(self, sock: socket.socket, path: str) -> None:
        if path == "/manifest":
            body: Any = {name: sc.manifest() for name, sc in self.scenarios.items()}
        elif path == "/stats":
            with self.lock:
                body = {"frames": self.frames_sent, "bytes": self.bytes_sent, "send_seconds": self.send_seconds,
                        "cpu": time.process_time(), "wall": time.perf_counter()}
        else:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        data = json.dumps(body).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data) + data)

    def _frames(self, peer: _Peer) -> Any:
        """Client text frames as parsed JSON; pings answered, a close frame echoed (then the generator ends)."""
        while True:
            frame = peer.read_frame()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 0x8:
                peer.write(ws_frame(payload[:2], 0x8))
                return
            if opcode == 0x9:
                peer.write(ws_frame(payload, 0xA))
            elif opcode in (0x1, 0x2):
                try:
                    yield json.loads(payload)
                except ValueError:
                    continue

    # --- protocol

    def _control(self, peer: _Peer, sc: Scenario) -> None:
        continued: set = set()
        cond = threading.Condition()
        writer: Optional[threading.Thread] = None
        step = 0
        for msg in self._frames(peer):
            method = msg.get("method") if isinstance(msg, dict) else None
            params = msg.get("params") or {}
            if method == "createBacktestSession":
                with self.lock:
                    for sid in sc.session_ids:
                        self.subscribers[sid] = []
                self._send_blob(peer, sc.pre)
            elif method == "continue" and not sc.parallel and step < len(sc.steps):
                self._step(peer, sc, step)
                step += 1
            elif method == "continueSessionV1" and sc.parallel:
                with cond:
                    continued.add(params.get("sessionId") or params.get("session_id"))
                    cond.notify()
                if writer is None:
                    writer = threading.Thread(target=self._stream_parallel, args=(peer, sc, continued, cond),
                                              daemon=True)
                    writer.start()
            elif method == "closeBacktestSession":
                self._send_blob(peer, sc.close)
        if writer is not None:
            writer.join(5)

    def _step(self, peer: _Peer, sc: Scenario, i: int) -> None:
        """Step ``i`` of a single session: its notifications on every subscription socket, then its control
        frames. One step (the whole stream) is written concurrently, one thread per socket, as a server streams;
        with many small steps the notifications go out first, as a server writes them before the step's end."""
        with self.lock:
            subs = list(self.subscribers.get(sc.session_ids[0], []))
        jobs = [(p, sc.subs[key][1][i]) for p, key in subs]
        if len(sc.steps) == 1:
            threads = [threading.Thread(target=self._send_quietly, args=job, daemon=True) for job in jobs]
            for th in threads:
                th.start()
        else:
            for job in jobs:
                self._send_quietly(*job)
        self._send_blob(peer, sc.steps[i])

    def _send_quietly(self, peer: _Peer, blob: Blob) -> None:
        try:
            self._send_blob(peer, blob)
        except OSError:
            pass

    def _stream_parallel(self, peer: _Peer, sc: Scenario, continued: set, cond: threading.Condition) -> None:
        """The recorded interleaving, except that a sub-session's frames wait for its own continue (then go out
        in their recorded order, before its later frames). Consecutive writable runs go out in one sendall."""
        backlog: Dict[str, List[Blob]] = {}
        flushed: set = set()
        pending: List[Blob] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if pending:
                t0 = time.perf_counter()
                peer.write(pending[0].data if len(pending) == 1 else b"".join(b.data for b in pending))
                seconds = time.perf_counter() - t0
                for b in pending:
                    self._count(b, seconds / len(pending))
                pending.clear()
                size = 0

        def release_new() -> None:
            nonlocal size
            with cond:
                ready = [sid for sid in continued if sid not in flushed]
            for sid in ready:
                flushed.add(sid)
                for b in backlog.pop(sid, []):
                    pending.append(b)
                    size += len(b.data)
        try:
            for sid, blob in sc.runs:
                release_new()
                if sid in flushed:
                    pending.append(blob)
                    size += len(blob.data)
                    if size >= 65536:
                        flush()
                else:
                    backlog.setdefault(sid, []).append(blob)
            while backlog:
                flush()
                with cond:
                    if not any(sid in continued and sid not in flushed for sid in backlog):
                        if not cond.wait(60):
                            return
                release_new()
            flush()
        except OSError:
            pass

    def _subscription(self, peer: _Peer, sc: Scenario, sid: str) -> None:
        for msg in self._frames(peer):
            method = msg.get("method") if isinstance(msg, dict) else None
            if method not in ("transactionSubscribe", "accountDiffSubscribe"):
                continue
            if method == "transactionSubscribe":
                key = "transaction"
            else:
                text = json.dumps(msg.get("params"))
                key = next((f"accountDiff:{p}" for p in sc.diff_programs if p in text), "")
            if key not in sc.subs:
                peer.write(ws_frame(json.dumps({"jsonrpc": "2.0", "id": msg.get("id"), "error": {
                    "code": -32602, "message": f"replay server has no recording for {key or method}"}}).encode()))
                continue
            with self.lock:  # registered before the ack: a client sends its continue only after the ack
                self.subscribers.setdefault(sid, []).append((peer, key))
            peer.write(_ack(msg.get("id"), sc.subs[key][0]))
        with self.lock:
            subs = self.subscribers.get(sid, [])
            self.subscribers[sid] = [(p, k) for p, k in subs if p is not peer]


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fanouts", default=",".join(map(str, FANOUTS)))
    ap.add_argument("--no-cache", action="store_true", help="record again even if a recording is cached")
    args = ap.parse_args(argv)
    fanouts = tuple(int(x) for x in args.fanouts.split(",") if x)
    t0 = time.monotonic()
    recs = record(fanouts, cache=not args.no_cache)
    scenarios = {name: Scenario(name, rec) for name, rec in recs.items()}
    server = ReplayServer(scenarios, args.host, args.port)
    print(f"replay server on ws://{args.host}:{server.port} (scenarios {', '.join(scenarios)}; ready in "
          f"{time.monotonic() - t0:.1f}s)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
