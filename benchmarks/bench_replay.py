"""Client-bound benchmarks on the replay server: the SDK beside raw WebSocket loops, fan-out, hot-path toggles.

The replay server (replay_server.py, its own process) writes recorded, pre-framed streams as fast as the socket
takes them, so the client sets the pace. Every client runs in its own long-lived worker process (warmed up once)
and the orchestrator asks them for one run at a time, alternating the order every repetition; ratios are medians
over adjacent pairs, printed with their range.

Clients (each decodes every frame it receives):

* ``null``: bare sockets that only count bytes (the server's own rate; it must be >= 2x every real client);
* ``sdk-json`` / ``sdk-orjson``: ``session.events()`` end to end (decode, dedup, queue, completion drain);
* ``sdk-read``: ``sdk-orjson`` whose consumer also reads every payload (``Transaction.value``, ``AccountDiff.pre``),
  which the SDK decodes on first read: the like of a raw loop that builds every frame's tree;
* ``wsclient``: websocket-client ``recv()`` + ``json.loads`` (``skip_utf8_validation=True``, one thread per socket);
* ``websockets``: the ``websockets`` sync client ``recv()`` + ``json.loads`` (one thread per socket);
* ``picows``: picows (Cython frame parser, asyncio) ``on_ws_frame`` + ``json.loads``, all sockets on one loop;
* ``wsclient-orjson``, ``websockets-orjson``, ``picows-orjson``: the same raw loops parsing with ``orjson.loads``.

Each raw loop is compared twice: with the SDK using orjson (the SDK's best against the raw loop as written with the
stdlib), and with the SDK using the same JSON decoder as the loop (``sdk-json`` beside the stdlib rows,
``sdk-orjson`` beside the ``-orjson`` rows): the like-for-like figure, in which the decoder's own speed cancels out.

Streams: ``control`` (10,000-slot session, control frames only), ``tx`` (2,000 slots, control + transaction
notifications), ``txdiff`` (``tx`` + account diffs of two programs, one socket each), ``steps-tx`` /
``steps-txdiff`` (300 one-slot steps, for the step barrier), ``fanout-N`` (6,400 slots over N sub-sessions).

Parts (``--only``): ``clients`` (A: every client on control / tx / txdiff, CPU per event by SDK thread, the
server-speed check), ``barrier`` (B: ``ClientConfig.step_barrier`` off vs on per step, skipped if the client has no
such field), ``fanout`` (C: ``drive()``, ``drive(max_workers=N)`` and the bare loop at N = 1..128), ``toggles`` (D:
each hot-path special case switched to the plain path, end to end) and ``hotpath`` (E: the same, deterministic, from
memory). ``SIMCLIENT_BENCH_CLIENT_PATH=/dir`` measures the ``simclient/`` package in /dir as the client.

    python benchmarks/bench_replay.py [--reps 5] [--only clients,barrier,fanout,toggles,hotpath]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, HERE, REPO, _die_with_parent, median, save_result  # noqa: E402

STREAMS = ("control", "tx", "txdiff")
STREAM_LABEL = {"control": "control stream only", "tx": "control + transactions",
                "txdiff": "control + transactions + account diffs"}
CLIENTS = ("null", "sdk-json", "sdk-orjson", "sdk-read", "wsclient", "websockets", "picows", "wsclient-orjson",
           "websockets-orjson", "picows-orjson")
FANOUTS = (1, 8, 32, 64, 128)
# Hot-path special cases, each replaced by the plain path in a worker of its own (see _apply_toggle).
TOGGLES = {
    "transport-fast-path": ("control", "tx"),
    "transport-read-ahead": ("control", "tx"),
    "status-cache": ("control",),
    "control-inline": ("control",),
    "notification-inline": ("tx",),
    "transaction-inline": ("tx",),
    "object-new-events": ("txdiff",),
    "deferred-payload": ("tx", "txdiff"),
    "msgspec-reader": ("tx", "txdiff"),
    "transport-read-rest": ("control", "tx"),
    "read-ahead-16k": ("control", "tx"),
}


def _scenario_and_subs(stream: str) -> Tuple[str, bool, bool]:
    """stream → (replay scenario, transaction subscription?, account-diff subscriptions?)."""
    if stream == "control":
        return "control", False, False
    if stream.startswith("steps-"):  # steps-tx, steps-txdiff: one-slot steps
        return "steps", True, stream == "steps-txdiff"
    return "tx", True, stream == "txdiff"


# ============================================================================================== server process

class ReplayProcess:
    """``python benchmarks/replay_server.py --port 0`` in a subprocess; ``base`` is ``ws://127.0.0.1:PORT``."""

    def __init__(self, fanouts: Sequence[int] = FANOUTS):
        self.fanouts = fanouts
        self.proc: Optional[subprocess.Popen] = None
        self._log = tempfile.TemporaryFile(mode="w+")
        self.base = ""
        self.http = ""
        self.manifest: Dict[str, Any] = {}

    def __enter__(self) -> "ReplayProcess":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
        env.pop("SIMCLIENT_JSON", None)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "replay_server.py"), "--port", "0",
             "--fanouts", ",".join(map(str, self.fanouts))], stdout=subprocess.DEVNULL, stderr=self._log, cwd=REPO,
            env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + 180  # the first start records the streams from the local simulator
        while time.monotonic() < deadline:
            self._log.seek(0)
            for line in self._log.read().splitlines():
                if line.startswith("replay server on ws://"):
                    self.base = line.split(" on ", 1)[1].split(" ", 1)[0]
                    self.http = "http://" + self.base.split("://", 1)[1]
                    self.manifest = self.get("/manifest")
                    self.banner = line
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__()
        self._log.seek(0)
        raise RuntimeError(f"replay server did not start: {self._log.read()[-3000:]}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=30) as r:
            return json.load(r)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# ============================================================================================== client side

def _now() -> Tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _result(events: int, t0: Tuple[float, float], t1: Tuple[float, float]) -> Dict[str, Any]:
    return {"events": events, "wall": t1[0] - t0[0], "cpu": t1[1] - t0[1]}


def _create_text(slots: int, parallel: bool = False) -> str:
    from simclient import CreateSession
    from simclient import protocol as wire

    return json.dumps(wire.encode_create(CreateSession(start_slot=FIRST_SLOT, slot_count=slots - 1),
                                         parallel=parallel))


def _continue_text(slots: int) -> str:
    from simclient import Continue
    from simclient import protocol as wire

    return json.dumps(wire.encode_continue(Continue(advance_count=slots)))


def _sub_requests(man: Dict[str, Any], tx: bool, diffs: bool) -> List[str]:
    from simclient import protocol as wire

    out = []
    if tx:
        out.append(json.dumps(wire.encode_subscribe(1, "transaction", wire.transaction_filter(man["programs"]))))
    if diffs:
        out += [json.dumps(wire.encode_subscribe(1, "accountDiff", wire.account_diff_filter(p)))
                for p in man["diff_programs"]]
    return out


# --- null client: bytes only --------------------------------------------------------------------------------

def _mask0(text: str, opcode: int = 0x1) -> bytes:
    """A client frame with an all-zero mask (valid, and the payload stays as is)."""
    data = text.encode()
    n = len(data)
    head = bytes([0x80 | opcode])
    if n < 126:
        return head + bytes([0x80 | n]) + b"\0\0\0\0" + data
    return head + bytes([0x80 | 126]) + n.to_bytes(2, "big") + b"\0\0\0\0" + data


def _null_connect(host: str, port: int, path: str) -> socket.socket:
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"X-API-Key: {API_KEY}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    if not buf.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {buf[:80]!r}")
    return s


def _read_exactly(s: socket.socket, n: int, buf: bytearray) -> None:
    view = memoryview(buf)
    while n > 0:
        got = s.recv_into(view, min(n, len(buf)))
        if not got:
            raise RuntimeError("replay server closed early")
        n -= got


def null_run(base: str, man: Dict[str, Any], stream: str) -> Dict[str, Any]:
    sc, tx, diffs = _scenario_and_subs(stream)
    m = man[sc]
    host, port = base.split("://", 1)[1].split(":")
    buf = bytearray(1 << 20)
    ctl = _null_connect(host, int(port), f"/{sc}/backtest")
    ctl.sendall(_mask0(_create_text(m["slots"])))
    _read_exactly(ctl, m["pre"][1], buf)
    keys = (["transaction"] if tx else []) + ([f"accountDiff:{p}" for p in m["diff_programs"]] if diffs else [])
    socks = []
    for key, req in zip(keys, _sub_requests(m, tx, diffs)):
        s = _null_connect(host, int(port), f"/backtest/{m['session_ids'][0]}")
        s.sendall(_mask0(req))
        _read_exactly(s, m["subs"][key]["ack_bytes"], buf)
        socks.append((s, m["subs"][key]["bytes"]))
    threads = [threading.Thread(target=_read_exactly, args=(s, n, bytearray(1 << 20))) for s, n in socks]
    t0 = _now()
    for th in threads:
        th.start()
    ctl.sendall(_mask0(_continue_text(m["slots"])))
    _read_exactly(ctl, m["post"][1], buf)
    for th in threads:
        th.join()
    t1 = _now()
    events = m["post"][0] + sum(m["subs"][k]["frames"] - 1 for k in keys)  # end-of-stream markers are not events
    ctl.sendall(_mask0(json.dumps({"method": "closeBacktestSession"})))
    _read_exactly(ctl, m["close"][1], buf)
    for s, _ in socks:
        s.close()
    ctl.close()
    return _result(events, t0, t1)


# --- raw thread-per-socket loops (websocket-client, websockets) ----------------------------------------------

def _raw_threaded(connect: Callable[[str, bool], Any], base: str, man: Dict[str, Any], stream: str,
                  loads: Callable[[Any], Any]) -> Dict[str, Any]:
    """create, subscribe, continue, then ``recv`` + ``loads`` of every frame until ``completed`` and every
    subscription's end-of-stream marker; ``connect(url, control)`` returns an object with send/recv/close."""
    sc, tx, diffs = _scenario_and_subs(stream)
    m = man[sc]
    ws = connect(f"{base}/{sc}/backtest", True)
    ws.send(_create_text(m["slots"]))
    sid = None
    while True:
        msg = loads(ws.recv())
        method = msg.get("method")
        if method == "sessionCreated":
            sid = msg["params"]["session_id"]
        elif method == "readyForContinue":
            break
    counts: List[int] = []
    subs = []
    for req in _sub_requests(m, tx, diffs):
        sub = connect(f"{base}/backtest/{sid}", False)
        sub.send(req)
        loads(sub.recv())  # the ack
        subs.append(sub)

    def drain(sub: Any) -> None:
        n = 0
        recv = sub.recv
        while True:
            msg = loads(recv())
            if msg.get("method") == "subscriptionComplete" or msg["params"].get("result", 0) is None:  # end marker
                counts.append(n)
                return
            n += 1

    threads = [threading.Thread(target=drain, args=(s,)) for s in subs]
    t0 = _now()
    for th in threads:
        th.start()
    ws.send(_continue_text(m["slots"]))
    frames = 0
    recv = ws.recv
    while True:
        msg = loads(recv())
        frames += 1
        if msg.get("method") == "completed":
            break
    for th in threads:
        th.join()
    t1 = _now()
    ws.send(json.dumps({"method": "closeBacktestSession"}))
    while loads(ws.recv()).get("method") != "success":
        pass
    for s in subs:
        s.close()
    ws.close()
    return _result(frames + sum(counts), t0, t1)


def _wsclient_connect(url: str, control: bool) -> Any:
    import websocket

    ws = websocket.create_connection(url, header=[f"X-API-Key: {API_KEY}"] if control else None, timeout=60,
                                     skip_utf8_validation=True, enable_multithread=False)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ws


def _websockets_connect(url: str, control: bool) -> Any:
    from websockets.sync.client import connect

    return connect(url, additional_headers={"X-API-Key": API_KEY} if control else None, compression=None,
                   max_size=None, proxy=None, ping_interval=None)


# --- picows: every socket on one asyncio loop --------------------------------------------------------------------

def picows_run(base: str, man: Dict[str, Any], stream: str, loads: Callable[[Any], Any]) -> Dict[str, Any]:
    import asyncio

    from picows import WSListener, WSMsgType, ws_connect

    sc, tx, diffs = _scenario_and_subs(stream)
    m = man[sc]

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self, handle: Callable[[Any], None]):
            self.handle = handle

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.TEXT or kind == WSMsgType.BINARY:
                self.handle(loads(frame.get_payload_as_bytes()))
            elif kind == WSMsgType.CLOSE:
                transport.disconnect()

    async def main() -> Dict[str, Any]:
        loop = asyncio.get_running_loop()
        state: Dict[str, Any] = {"phase": "create", "frames": 0, "sid": None}
        ready = loop.create_future()
        done = loop.create_future()
        closed = loop.create_future()

        def on_control(msg: Any) -> None:
            phase = state["phase"]
            if phase == "run":
                state["frames"] += 1
                if msg.get("method") == "completed":
                    done.set_result(None)
            elif phase == "create":
                method = msg.get("method")
                if method == "sessionCreated":
                    state["sid"] = msg["params"]["session_id"]
                elif method == "readyForContinue":
                    ready.set_result(None)
            elif msg.get("method") == "success" and not closed.done():
                closed.set_result(None)

        ctl, _ = await ws_connect(lambda: Listener(on_control), f"{base}/{sc}/backtest",
                                  extra_headers={"X-API-Key": API_KEY})
        ctl.send(WSMsgType.TEXT, _create_text(m["slots"]).encode())
        await ready
        sub_states = []
        for req in _sub_requests(m, tx, diffs):
            st: Dict[str, Any] = {"n": -1, "ack": loop.create_future(), "end": loop.create_future()}

            def on_sub(msg: Any, st: Dict[str, Any] = st) -> None:
                st["n"] += 1
                if st["n"] == 0:
                    st["ack"].set_result(None)
                elif msg.get("method") == "subscriptionComplete" or msg["params"].get("result", 0) is None:
                    st["end"].set_result(None)
            tr, _ = await ws_connect(lambda on_sub=on_sub: Listener(on_sub), f"{base}/backtest/{state['sid']}")
            tr.send(WSMsgType.TEXT, req.encode())
            await st["ack"]
            st["tr"] = tr
            sub_states.append(st)
        state["phase"] = "run"
        t0 = _now()
        ctl.send(WSMsgType.TEXT, _continue_text(m["slots"]).encode())
        await done
        for st in sub_states:
            await st["end"]
        t1 = _now()
        state["phase"] = "close"
        ctl.send(WSMsgType.TEXT, json.dumps({"method": "closeBacktestSession"}).encode())
        await closed
        for st in sub_states:
            st["tr"].disconnect()
        ctl.disconnect()
        return _result(state["frames"] + sum(st["n"] - 1 for st in sub_states), t0, t1)  # minus each marker

    return asyncio.run(main())


# --- the SDK ------------------------------------------------------------------------------------------------

_THREAD_CPU: Dict[str, float] = {}  # reader-thread kind → CPU seconds of threads that ended (see _count_threads)


def _count_threads() -> None:
    """Record each SDK reader thread's CPU time at its end (control reader, subscription readers), by wrapping
    the thread targets: a breakdown of where the client's CPU goes, at the cost of two calls per thread."""
    from simclient.control import ControlConnection
    from simclient.subscriptions import Subscription

    for cls, kind in ((ControlConnection, "control reader"), (Subscription, "subscription readers")):
        run = cls._run

        def counted(self: Any, run: Any = run, kind: str = kind) -> None:
            c0 = time.thread_time()
            try:
                run(self)
            finally:
                _THREAD_CPU[kind] = _THREAD_CPU.get(kind, 0.0) + time.thread_time() - c0
        cls._run = counted  # type: ignore[method-assign]


#: sdk-read (SIMCLIENT_BENCH_READ=1): the SDK with a consumer that reads every event's payload, the fair match of a
#: raw loop that builds every frame's tree (the SDK decodes Transaction.value / AccountDiff.pre, post on first read)
_READ_PAYLOADS = os.environ.get("SIMCLIENT_BENCH_READ") == "1"


def sdk_run(base: str, man: Dict[str, Any], stream: str, config: Dict[str, Any]) -> Dict[str, Any]:
    from simclient import Client, ClientConfig, CreateSession
    from simclient import events as ev

    sc, tx, diffs = _scenario_and_subs(stream)
    m = man[sc]
    before = dict(_THREAD_CPU)
    client = Client(f"{base}/{sc}", API_KEY, ClientConfig(**config))
    with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=m["slots"] - 1)) as s:
        if tx:
            s.subscribe_transactions(m["programs"])
        if diffs:
            s.subscribe_account_diffs(m["diff_programs"])
        it = s.events(timeout=60)
        for e in it:
            if type(e) is ev.ReadyForContinue:
                break
        s._wait_subscriptions_up()  # every client starts timing with its subscriptions up
        stepwise = m["steps"] > 1
        consumer0 = time.thread_time()
        t0 = _now()
        s.send_continue(advance_count=1 if stepwise else m["slots"])
        events = 0
        last = None
        read = _READ_PAYLOADS
        for item in it:
            events += 1
            last = item
            if read:  # sdk-read: the consumer reads every payload (Transaction.value, AccountDiff.pre/post)
                kind = type(item)
                if kind is ev.Transaction:
                    item.value  # noqa: B018 - the read is the point
                elif kind is ev.AccountDiff:
                    item.pre  # noqa: B018
            if stepwise and type(item) is ev.ReadyForContinue:
                s.send_continue(advance_count=1)
        t1 = _now()
        consumer = time.thread_time() - consumer0
        if type(last) is not ev.Completed:  # pragma: no cover
            raise RuntimeError(f"stream ended with {last!r}")
    # the reader threads of this session have ended (close joins them): their whole lives are counted, connect
    # and subscribe included
    out = _result(events, t0, t1)
    out["threads"] = {"consumer": consumer, **{k: v - before.get(k, 0.0) for k, v in _THREAD_CPU.items()}}
    return out


def sdk_fanout(base: str, man: Dict[str, Any], n: int, consumers: Optional[int] = None,
               threads: bool = False) -> Dict[str, Any]:
    """drive() as it is by default, with ``consumers``, or (``threads``) one thread per sub-session."""
    from simclient import Client, ClientConfig, CreateSession

    m = man[f"fanout-{n}"]
    client = Client(f"{base}/fanout-{n}", API_KEY, ClientConfig())
    with client.start_parallel(CreateSession(start_slot=FIRST_SLOT, slot_count=m["slots"] - 1)) as run:
        if len(run.sub_sessions) != n:
            raise RuntimeError(f"expected {n} sub-sessions, got {len(run.sub_sessions)}")
        t0 = _now()
        result = (run.drive(max_workers=n) if threads else run.drive() if consumers is None
                  else run.drive(consumers=consumers))
        t1 = _now()
        if not result.ok:
            raise RuntimeError(f"parallel run failed: {result.failures[:3]}")
        events = sum(s.stats.events_delivered for s in run.sub_sessions)
    return _result(events, t0, t1)


def wsclient_fanout(base: str, man: Dict[str, Any], n: int) -> Dict[str, Any]:
    """Bare websocket-client on the one control socket: recv + json.loads of every frame, one
    ``continueSessionV1`` per sub-session for its whole range."""
    from simclient import Continue
    from simclient import protocol as wire

    m = man[f"fanout-{n}"]
    ws = _wsclient_connect(f"{base}/fanout-{n}/backtest", True)
    ws.send(_create_text(m["slots"], parallel=True))
    loads = json.loads
    ranges: Dict[str, int] = {}
    ready: List[str] = []
    while True:
        msg = loads(ws.recv())
        method = msg.get("method")
        if method == "sessionEventV2" and msg["params"]["event"].get("method") == "readyForContinue":
            ready.append(msg["params"]["session_id"])
        elif method == "sessionsCreatedV2":
            p = msg["params"]
            ranges = {sid: e - s + 1 for sid, s, e in zip(p["session_ids"], p["start_slots"], p["end_slots"])}
        if ranges and len(ready) >= len(ranges):
            break
    t0 = _now()
    for sid in ready:
        ws.send(json.dumps(wire.encode_continue_v1(sid, Continue(advance_count=ranges[sid]))))
    events = done = 0
    recv = ws.recv
    while done < len(ranges):
        msg = loads(recv())
        events += 1
        if msg.get("method") == "sessionEventV2" and msg["params"]["event"].get("method") == "completed":
            done += 1
    t1 = _now()
    ws.close()
    return _result(events, t0, t1)


# --- hot-path toggles: the plain path put back in this process -------------------------------------------------

_PATCHED = (("transport", "Connection.__init__"), ("transport", "Connection._recv_buffered"), ("transport", "READ_AHEAD"),
            ("protocol", "_status"), ("protocol", "decode_subscription_frame"),
            ("protocol", "transaction_from_result"), ("protocol", "account_diff_from_result"),
            ("protocol", "_decode_transaction"), ("protocol", "decode_response"))


def _snapshot() -> List[Tuple[Any, str, Any]]:
    """Everything _apply_toggle may replace, to put back with _restore."""
    import importlib

    out = []
    for mod, attr in _PATCHED:
        obj: Any = importlib.import_module(f"simclient.{mod}")
        *path, last = attr.split(".")
        for a in path:
            obj = getattr(obj, a)
        out.append((obj, last, getattr(obj, last)))
    from simclient import kinds

    out.append((kinds.KINDS, "", dict(kinds.KINDS)))  # the kind table holds the converters it was built with
    return out


def _restore(snap: List[Tuple[Any, str, Any]]) -> None:
    for obj, name, value in snap:
        if isinstance(obj, dict):
            obj.update(value)
        else:
            setattr(obj, name, value)


def _set_converters() -> None:
    """Point the kind table at protocol's (possibly replaced) converters: a Subscription takes its converter from
    the table (simclient/kinds.py), which keeps the function objects it was built with."""
    import dataclasses

    from simclient import kinds
    from simclient import protocol as wire

    for name, fn in ((kinds.TRANSACTIONS, wire.transaction_from_result),
                     (kinds.ACCOUNT_DIFFS, wire.account_diff_from_result)):
        kinds.KINDS[name] = dataclasses.replace(kinds.KINDS[name], convert=fn)


def _apply_toggle(name: str) -> None:
    """Replace one hot-path special case with the plain path it short-cuts (same results, measured cost)."""
    from simclient import events as ev
    from simclient import protocol as wire
    from simclient import transport

    if name in ("transport-fast-path", "transport-read-ahead"):
        init = transport.Connection.__init__

        def plain_init(self: Any, ws: Any, url: str, *args: Any, **kwargs: Any) -> None:
            init(self, ws, url, *args, **kwargs)
            self._fast = False
            if name == "transport-read-ahead" and getattr(ws, "frame_buffer", None) is not None:
                ws.frame_buffer.recv = ws._recv
            secret = kwargs.get("secret")
            if secret:  # the key scrubber took the fast cutter when it wrapped recv: wrap the plain recv again
                self.recv = transport._scrubbing(types.MethodType(transport.Connection.recv, self), secret)
        transport.Connection.__init__ = plain_init  # type: ignore[method-assign]
    elif name == "transport-read-rest":
        # a frame that straddles the read-ahead goes to websocket-client's parser, as before Connection._read_rest
        cut = transport.Connection._recv_buffered

        def cut_whole_only(self: Any) -> Any:
            got = cut(self)
            return None if got is transport._READ_MORE else got
        transport.Connection._recv_buffered = cut_whole_only  # type: ignore[method-assign]
    elif name == "read-ahead-16k":
        transport.READ_AHEAD = 16 * 1024  # the read size before this issue (read when each refill reads)
    elif name == "status-cache":
        wire._status = ev.Status  # a new frozen Status per frame instead of the shared one per phase
    elif name == "control-inline":
        # every control frame through decode_response's general path (the per-slot frames' inline checks skipped)
        orig_control = wire.decode_response

        def plain_control(raw: Any) -> Any:
            obj = wire.loads(raw)
            try:
                seq = obj["seqId"] if "seqId" in obj else obj.get("seq_id")
                seq_id = seq if seq is None or (type(seq) is int and 0 <= seq <= wire._U64_MAX) else wire._u64(
                    seq, "seqId")
                return wire.Frame(wire._decode_message(obj), seq_id)
            except Exception:  # noqa: BLE001 - malformed: the SDK's own errors
                return orig_control(raw)
        wire.decode_response = plain_control
    elif name == "notification-inline":
        orig = wire.decode_subscription_frame

        def plain_decode(raw: Any) -> Any:
            obj = wire.loads(raw)
            if isinstance(obj, dict) and "method" in obj:
                method = wire._str(obj["method"], "method")
                params = obj.get("params")
                if method.endswith("Notification") and isinstance(params, dict):
                    return wire.Notification(method, wire._u64(wire._require(params, "subscription", method),
                                                               "subscription"), params.get("result"), raw)
            return orig(raw)
        wire.decode_subscription_frame = plain_decode
    elif name == "transaction-inline":
        def plain_tx(result: Any, frame: Any = None) -> Any:
            ctx_slot, value = wire._unwrap(result)
            value = wire._obj(value, "transactionNotification.value")
            slot = value.get("slot", ctx_slot)
            event = ev.Transaction(slot=wire._u64(slot, "transaction.slot"), signature=wire._tx_signature(value),
                                   value=value)
            return _defer(event, frame, wire._fill_transaction)
        wire.transaction_from_result = plain_tx
        _set_converters()
    elif name == "object-new-events":
        # the same inline checks, but every event built by its dataclass constructor instead of object.__new__
        # plus a __dict__ fill
        orig_sub, orig_tx, orig_diff = (wire.decode_subscription_frame, wire.transaction_from_result,
                                        wire.account_diff_from_result)
        notification, transaction, account_diff = wire.Notification, ev.Transaction, ev.AccountDiff
        loads_, u64_max = wire.loads, wire._U64_MAX

        def ctor_decode(raw: Any) -> Any:
            obj = loads_(raw)
            if type(obj) is dict:
                params = obj.get("params")
                if type(params) is dict:
                    method = obj.get("method")
                    sub = params.get("subscription")
                    if (type(method) is str and type(sub) is int and method.endswith("Notification")
                            and 0 <= sub <= u64_max):
                        return notification(method, sub, params.get("result"), raw)
            return orig_sub(raw)

        def ctor_tx(result: Any, frame: Any = None) -> Any:
            if type(result) is dict and "context" in result:
                value = result.get("value")
                if type(value) is dict:
                    slot = value.get("slot")
                    tx = value.get("transaction")
                    if type(slot) is int and type(tx) is dict and 0 <= slot <= u64_max:
                        sigs = tx.get("signatures")
                        if type(sigs) is list and sigs and type(sigs[0]) is str:
                            return _defer(transaction(slot, sigs[0], value), frame, wire._fill_transaction)
            return orig_tx(result, frame)

        def ctor_diff(result: Any, frame: Any = None) -> Any:  # account_diff_from_result's checks, the constructor
            try:
                ctx_slot, value = wire._unwrap(result)
                value = wire._obj(value, "accountDiffNotification")
                ctx = value["context"] if isinstance(value.get("context"), dict) else {}
                slot = ctx.get("slot", value.get("slot", ctx_slot))
                pre, post = value.get("pre"), value.get("post")
                slot = wire._u64(slot, "accountDiff.slot")
                account = wire._str(wire._require(value, "account", "accountDiff"), "account")
                signature = wire._opt_str(value.get("signature"), "signature")
                pre = None if pre is None else wire._obj(pre, "pre")
                post = None if post is None else wire._obj(post, "post")
            except wire._Bad:
                return orig_diff(result)  # raises the ProtocolError
            return _defer(account_diff(slot, account, signature, pre, post), frame, wire._fill_account_diff)

        wire.decode_subscription_frame = ctor_decode
        wire.transaction_from_result = ctor_tx
        wire.account_diff_from_result = ctor_diff
        _set_converters()
    elif name == "msgspec-reader":
        wire._decode_transaction = None  # the transaction worker's frames through decode_subscription_frame (orjson)
    elif name == "deferred-payload":
        # the decoded payloads handed to the consumer with the event, as before deferral (events._Deferred)
        eager_tx, eager_diff = wire.transaction_from_result, wire.account_diff_from_result
        wire.transaction_from_result = lambda result, frame=None: eager_tx(result)
        wire.account_diff_from_result = lambda result, frame=None: eager_diff(result)
        _set_converters()
    else:
        raise ValueError(f"unknown toggle {name}")


def _defer(event: Any, frame: Any, fill: Callable[..., Any]) -> Any:
    """What the SDK's converter does with a frame (events._Deferred), for a toggle's own converter."""
    if frame is not None:
        d = event.__dict__
        for name in type(event)._DEFERRED:
            del d[name]
        d["_source"] = (frame, fill)
    return event


# --- the same toggles, deterministic: recorded frames through the SDK's stages from memory (bench_hotpath) ------

def hotpath_worker(rounds: int) -> None:
    """ns per frame of each SDK stage on the replay recording, no network and no threads: for every toggle, the
    unchanged SDK and the toggled one alternate ``rounds`` times in this one process (lowest of each kept)."""
    import bench_hotpath as hp

    from replay_server import record

    def per_frame_cpu(fn: Callable[[], None], n: int) -> float:  # CPU time: preemption by other load excluded
        t0 = time.thread_time_ns()
        fn()
        return (time.thread_time_ns() - t0) / n

    hp.per_frame = per_frame_cpu
    recs = record()
    ctl = [t.encode() for t in recs["control"]["post"] if '"completed"' not in t[:80]]
    tx = [t.encode() for t in recs["tx"]["subs"]["transaction"]["frames"][:-1]]
    diff_key = next(k for k in recs["tx"]["subs"] if k.startswith("accountDiff:"))
    diffs = recs["tx"]["subs"][diff_key]
    sub_id = diffs["subscription"]
    diff_frames = [t.encode() for t in diffs["frames"][:-1]]

    def diff_sdk(payloads: List[bytes]) -> float:
        from simclient import protocol as wire
        from simclient.subscriptions import Subscription

        _cc, route, sess, cfg = hp._session()
        sub = Subscription("accountDiff", ["p"], "http://127.0.0.1:1/backtest/sid", route.sink, cfg,
                           route.completed, 1, "sid", route.stats)
        ids, ended = {sub_id: "p"}, set()
        dec, on, nxt = wire.decode_subscription_frame, sub._on_notification, sess.next_event

        def go() -> None:
            for p in payloads:
                on(dec(p), ids, ended)
                nxt(None)
        return hp.per_frame(go, len(payloads))

    stages = {"transport, control": (hp.transport_sdk, ctl), "transport, transactions": (hp.transport_sdk, tx),
              "control pipeline": (hp.control_sdk, ctl), "transaction pipeline": (hp.sub_sdk, tx),
              "transaction reader": (hp.sub_sdk_reader, tx),
              "account-diff pipeline": (diff_sdk, diff_frames)}
    relevant = {"transport-fast-path": ("transport, control", "transport, transactions"),
                "transport-read-ahead": ("transport, control", "transport, transactions"),
                "transport-read-rest": ("transport, control", "transport, transactions"),
                "status-cache": ("control pipeline",),
                "control-inline": ("control pipeline",),
                "notification-inline": ("transaction pipeline", "account-diff pipeline"),
                "transaction-inline": ("transaction pipeline",),
                "object-new-events": ("transaction pipeline", "account-diff pipeline"),
                "msgspec-reader": ("transaction reader",)}
    snap = _snapshot()
    out: Dict[str, Any] = {}
    for toggle, names in relevant.items():
        base = {n: float("inf") for n in names}
        tog = dict(base)
        for _ in range(rounds):
            for n in names:
                fn, frames = stages[n]
                base[n] = min(base[n], fn(frames))
            _apply_toggle(toggle)
            for n in names:
                fn, frames = stages[n]
                tog[n] = min(tog[n], fn(frames))
            _restore(snap)
        out[toggle] = {n: [base[n], tog[n]] for n in names}
    sys.stdout.write(json.dumps(out) + "\n")


def run_hotpath_toggles(e2e: Optional[Dict[str, float]] = None, rounds: int = 5) -> Dict[str, Any]:
    """Each toggle's extra ns per frame on the stages it touches, against the unchanged SDK in the same process."""
    print(f"[replay E] the same special cases, deterministic: recorded frames through each SDK stage from memory, "
          f"no network or threads; unchanged and toggled SDK alternate in one process (thread CPU time, lowest of "
          f"{rounds} each)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.environ.get("SIMCLIENT_BENCH_CLIENT_PATH", ""), REPO, HERE, os.environ.get("PYTHONPATH", ""))
        if p))
    env.pop("SIMCLIENT_JSON", None)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "bench_replay.py"), "--hotpath-worker",
                           "--reps", str(rounds)], env=env, cwd=REPO, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"hot-path worker failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    stream_of = {"transport, control": "control", "control pipeline": "control", "transport, transactions": "tx",
                 "transaction pipeline": "tx", "transaction reader": "tx", "account-diff pipeline": "txdiff"}
    print(f"    {'special case':<22} {'stage':<24} {'with ns':>8} {'without ns':>10} {'extra':>7} "
          f"{'share of e2e SDK CPU/event':>27}")
    for toggle, stages in out.items():
        for stage, (b, t) in stages.items():
            share = ""
            if e2e and stream_of[stage] in e2e:
                share = f"{(t - b) / 1000 / e2e[stream_of[stage]] * 100:+.1f}% of {e2e[stream_of[stage]]:.1f} us"
            print(f"    {toggle:<22} {stage:<24} {b:>8,.0f} {t:>10,.0f} {t - b:>+7,.0f} {share:>27}")
    return out


# --- worker loop ----------------------------------------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    import logging

    # the SDK's own account of how each subscription ended (e.g. "end of stream by silence"), for the orchestrator
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("simclient.subscriptions").setLevel(logging.INFO)
    man = json.loads(urllib.request.urlopen(args.url.replace("ws://", "http://") + "/manifest").read())
    kind = args.worker
    config = json.loads(args.config) if args.config else {}
    if args.toggle:
        _apply_toggle(args.toggle)
    if kind == "sdk":
        _count_threads()
    loads: Callable[[Any], Any] = json.loads
    if os.environ.get("SIMCLIENT_BENCH_RAW_LOADS") == "orjson":  # the raw loops' -orjson rows
        import orjson

        loads = orjson.loads

    def one(cmd: Dict[str, Any]) -> Dict[str, Any]:
        stream = cmd["stream"]
        if stream.startswith("fanout-"):  # fanout-N; fanout-N:K for drive(consumers=K), fanout-N:t for threads
            n_text, _, k_text = stream.split("-", 1)[1].partition(":")
            n = int(n_text)
            if kind.startswith("sdk"):
                if k_text == "t":
                    return sdk_fanout(args.url, man, n, threads=True)
                return sdk_fanout(args.url, man, n, int(k_text) if k_text else None)
            return wsclient_fanout(args.url, man, n)
        if kind == "null":
            return null_run(args.url, man, stream)
        if kind.startswith("sdk"):
            return sdk_run(args.url, man, stream, config)
        if kind == "wsclient":
            return _raw_threaded(_wsclient_connect, args.url, man, stream, loads)
        if kind == "websockets":
            return _raw_threaded(_websockets_connect, args.url, man, stream, loads)
        if kind == "picows":
            return picows_run(args.url, man, stream, loads)
        raise ValueError(kind)

    from simclient import protocol as wire

    sys.stdout.write(json.dumps({"ready": True, "backend": wire.JSON_BACKEND}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            out: Dict[str, Any] = one(cmd)
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which fails loudly
            import traceback

            out = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


# ============================================================================================== orchestrator

class Worker:
    """One client process; ``run(stream)`` asks it for one timed run."""

    def __init__(self, name: str, kind: str, url: str, env: Optional[Dict[str, str]] = None,
                 toggle: str = "", config: Optional[Dict[str, Any]] = None):
        self.name = name
        full_env = _client_env()
        full_env.update(env or {})
        cmd = [sys.executable, os.path.join(HERE, "bench_replay.py"), "--worker", kind, "--url", url]
        if toggle:
            cmd += ["--toggle", toggle]
        if config:
            cmd += ["--config", json.dumps(config)]
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1)
        hello = self._read()
        self.backend = hello.get("backend")

    def _read(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._err.seek(0)
            raise RuntimeError(f"client worker {self.name} died:\n{self._err.read()[-3000:]}")
        return json.loads(line)

    def run(self, stream: str) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"stream": stream}) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "error" in out:
            raise RuntimeError(f"client {self.name} failed on {stream}: {out['error']}\n{out.get('trace', '')}")
        return out

    def log_lines(self, needle: str) -> List[str]:
        """Lines of the worker's stderr (the SDK's log) that contain ``needle``."""
        self._err.seek(0)
        return [ln for ln in self._err.read().splitlines() if needle in ln]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()


def _timed(server: ReplayProcess, w: Worker, stream: str) -> Dict[str, Any]:
    """One run, with the server's CPU and frames over the same window (for its utilisation and own rate)."""
    before = server.get("/stats")
    r = w.run(stream)
    after = server.get("/stats")
    r["server_cpu"] = after["cpu"] - before["cpu"]
    r["server_frames"] = after["frames"] - before["frames"]
    return r


def _alternate(server: ReplayProcess, workers: Sequence[Worker], stream: str, reps: int) -> Dict[str, List[Any]]:
    runs: Dict[str, List[Any]] = {w.name: [] for w in workers}
    for rep in range(reps):
        order = list(workers) if rep % 2 == 0 else list(reversed(workers))
        for w in order:
            runs[w.name].append(_timed(server, w, stream))
    return runs


def _rate(r: Dict[str, Any]) -> float:
    return r["events"] / r["wall"]


def _cpu_us(r: Dict[str, Any]) -> float:
    return r["cpu"] / r["events"] * 1e6


def _rng(xs: Sequence[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))}"


def _pace(runs: Sequence[Dict[str, Any]]) -> str:
    """Which process set the pace: the one busier over the timed window (client CPU / wall vs server CPU /
    wall); a client at ~1.0 is CPU-bound (its busy thread holds the GIL)."""
    cu = median([r["cpu"] / r["wall"] for r in runs])
    su = median([r["server_cpu"] / r["wall"] for r in runs])
    who = "client" if cu >= su else "SERVER"
    return f"{who} (client {cu:.2f} / server {su:.2f} CPU s per s)"


def run_clients(server: ReplayProcess, reps: int, only: Sequence[str] = CLIENTS,
                streams: Sequence[str] = STREAMS) -> Dict[str, Any]:
    print(f"[replay A] the SDK beside raw loops on the same recorded stream (median of {reps} alternating runs, "
          f"range in brackets); replay server: its own process; every client: its own process")
    workers = _workers(server, only)
    result: Dict[str, Any] = {}
    try:
        for w in workers:  # warm-up: imports, first connections, caches
            for stream in streams:
                w.run(stream)
        for stream in streams:
            runs = _alternate(server, workers, stream, reps)
            result[stream] = runs
            _print_stream(stream, runs)
        for w in workers:
            for line in w.log_lines("end of stream by silence"):
                print(f"    !! {w.name}: {line}")
    finally:
        for w in workers:
            w.close()
    check_server(result)
    return result


def _workers(server: ReplayProcess, names: Sequence[str]) -> List[Worker]:
    out = []
    for name in names:
        if name == "sdk-json":
            out.append(Worker(name, "sdk", server.base, env={"SIMCLIENT_JSON": "json"}))
        elif name in ("sdk-orjson", "sdk-read"):
            w = Worker(name, "sdk", server.base, env={"SIMCLIENT_BENCH_READ": "1"} if name == "sdk-read" else None)
            if w.backend != "orjson":
                w.close()
                print("    (orjson not installed: sdk-orjson skipped)")
                continue
            out.append(w)
        elif name.endswith("-orjson") and name != "sdk-orjson":  # a raw loop decoding with orjson
            base = name[:-len("-orjson")]
            module = {"wsclient": "websocket"}.get(base, base)
            if importlib.util.find_spec("orjson") is None or importlib.util.find_spec(module) is None:
                print(f"    (orjson or {base} not installed: {name} skipped)")
                continue
            out.append(Worker(name, base, server.base, env={"SIMCLIENT_BENCH_RAW_LOADS": "orjson"}))
        elif name in ("websockets", "picows") and importlib.util.find_spec(name) is None:
            print(f"    ({name} not installed: its row is skipped; pip install -e '.[bench]')")
        else:
            out.append(Worker(name, name, server.base))
    return out


RAW = ("wsclient", "websockets", "picows")


def _same_decoder_sdk(name: str) -> str:
    """The SDK row a raw loop is matched with: the one parsing with the same JSON decoder."""
    return "sdk-orjson" if name.endswith("-orjson") else "sdk-json"


def _print_stream(stream: str, runs: Dict[str, List[Any]]) -> None:
    first = next(iter(runs.values()))[0]
    print(f"  {STREAM_LABEL[stream]} ({first['events']:,} events per run):")
    print(f"    {'client':<17} {'events/s':>9} {'(range)':<17} {'CPU us/ev':>9} {'(range)':<11} "
          f"{'this CPU / SDK-orjson CPU':>25} {'this CPU / SDK CPU, same decoder':>33}  pace set by")
    sdk = runs.get("sdk-orjson") or runs.get("sdk-json")
    expected = runs["null"][0]["events"] if "null" in runs else first["events"]
    for name, rs in runs.items():
        short = [r["events"] for r in rs if r["events"] != expected]
        if short:  # loud, but the other runs still count: this is a finding, not a benchmark failure
            print(f"    !! {name}: {len(short)} of {len(rs)} runs delivered {short} events, not {expected:,} "
                  f"(each still ended with Completed)")
        rates = [_rate(r) for r in rs]
        cpus = [_cpu_us(r) for r in rs]
        cpu_ratio = same = ""
        if sdk is not None and name not in ("sdk-orjson", "null"):
            c = [_cpu_us(r) / _cpu_us(s) for s, r in zip(sdk, rs)]
            cpu_ratio = f"{median(c):.2f}x ({_rng(c)})"
        base = name[:-len("-orjson")] if name.endswith("-orjson") else name
        match = runs.get(_same_decoder_sdk(name))
        if base in RAW and match is not None:
            c = [_cpu_us(r) / _cpu_us(s) for s, r in zip(match, rs)]
            same = f"{median(c):.2f}x ({_rng(c)}) vs {_same_decoder_sdk(name)}"
        print(f"    {name:<17} {median(rates):>9,.0f} ({_rng(rates, '{:,.0f}'):<15}) {median(cpus):>9.2f} "
              f"({_rng(cpus, '{:.1f}'):<9}) {cpu_ratio:>25} {same:>33}  {_pace(rs)}")
    for name in ("sdk-orjson", "sdk-read", "sdk-json"):
        rs = runs.get(name)
        if rs and all("threads" in r for r in rs):
            kinds = list(rs[0]["threads"])
            parts = [f"{k} {median([r['threads'].get(k, 0.0) / r['events'] * 1e6 for r in rs]):.2f}" for k in kinds]
            print(f"    {name} CPU us per event by thread: " + ", ".join(parts)
                  + " (reader threads over their whole lives)")
    if "null" in runs:
        srv = [r["server_frames"] / r["server_cpu"] for r in runs["null"] if r["server_cpu"] > 0]
        if srv:
            print(f"    replay server's own rate serving the null client: {median([_rate(r) for r in runs['null']]):,.0f}"
                  f" frames/s wall, {median(srv):,.0f} frames per server CPU second")


def check_server(result: Dict[str, Any]) -> None:
    """Fail loudly unless the replay server (null client's rate) out-ran the fastest real client by >= 2x."""
    bad = []
    for stream, runs in result.items():
        if "null" not in runs:
            continue
        null = median([_rate(r) for r in runs["null"]])
        fastest = max((median([_rate(r) for r in rs]), name) for name, rs in runs.items() if name != "null")
        margin = null / fastest[0]
        print(f"    {stream:<8}: replay server {null:,.0f} events/s vs fastest client {fastest[1]} "
              f"{fastest[0]:,.0f}: {margin:.1f}x {'ok' if margin >= 2 else 'NOT >= 2x'}")
        if margin < 2:
            bad.append(f"{stream}: {margin:.2f}x over {fastest[1]}")
    if bad:
        raise SystemExit("REPLAY SERVER TOO SLOW: it must out-run every client by >= 2x, and did not on "
                         + "; ".join(bad) + ". The figures above are not client-bound; rerun on a quieter machine.")


def _client_env() -> Dict[str, str]:
    """A worker's environment: the client under test (SIMCLIENT_BENCH_CLIENT_PATH, else this tree) first."""
    env = dict(os.environ)
    env.pop("SIMCLIENT_JSON", None)
    client = env.get("SIMCLIENT_BENCH_CLIENT_PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (client, REPO, env.get("PYTHONPATH", "")) if p)
    return env


def _client_has_config(field: str) -> bool:
    """Whether the client under test (not necessarily this tree) has ``ClientConfig.<field>``."""
    out = subprocess.run([sys.executable, "-c", f"from simclient import ClientConfig; "
                          f"print(hasattr(ClientConfig(), {field!r}))"], env=_client_env(), cwd=HERE,
                         stdout=subprocess.PIPE, text=True, timeout=60)
    return out.stdout.strip() == "True"


def run_barrier(server: ReplayProcess, reps: int) -> Optional[Dict[str, Any]]:
    steps = server.manifest["steps"]["steps"]
    if not _client_has_config("step_barrier"):
        print("[replay B] per-step cost of the in-order step barrier: skipped (this tree has no "
              "ClientConfig.step_barrier)")
        return None
    print(f"[replay B] per-step cost of the in-order step barrier (ClientConfig.step_barrier): {steps} one-slot steps "
          f"(send_continue(advance_count=1) at every ReadyForContinue), SDK orjson, barrier off / on alternating, "
          f"median of {reps}")
    off = Worker("barrier-off", "sdk", server.base, config={"step_barrier": False})
    on = Worker("barrier-on", "sdk", server.base, config={"step_barrier": True})
    out: Dict[str, Any] = {}
    try:
        for stream, label in (("steps-tx", "1 transaction subscription"),
                              ("steps-txdiff", "transactions + 2 account-diff subscriptions (3 sockets)")):
            for w in (off, on):
                w.run(stream)
            runs = _alternate(server, [off, on], stream, reps)
            a, b = runs["barrier-on"], runs["barrier-off"]
            d_cpu = [(x["cpu"] - y["cpu"]) / steps * 1e6 for x, y in zip(a, b)]
            d_wall = [(x["wall"] - y["wall"]) / steps * 1e6 for x, y in zip(a, b)]
            off_wall = [y["wall"] / steps * 1e6 for y in b]
            out[stream] = {"runs": runs, "cpu_us_per_step": median(d_cpu), "wall_us_per_step": median(d_wall),
                           "off_wall_us_per_step": median(off_wall)}
            print(f"  {label}: a step takes {median(off_wall):,.0f} us with the barrier off; the barrier adds "
                  f"{median(d_wall):+,.0f} us wall ({_rng(d_wall, '{:+,.0f}')}) and {median(d_cpu):+,.0f} us client "
                  f"CPU ({_rng(d_cpu, '{:+,.0f}')}) per step; pace: {_pace(a)}")
    finally:
        off.close()
        on.close()
    return out


def run_fanout(server: ReplayProcess, reps: int, fanouts: Sequence[int] = FANOUTS) -> Dict[str, Any]:
    from simclient.parallel import DEFAULT_CONSUMERS as k
    print(f"[replay C] fan-out: {server.manifest['fanout-1']['slots']:,} slots over N sub-sessions on one control "
          f"socket, control stream only: ParallelRun.drive() as by default (up to N = {k} one thread per "
          f"sub-session, beyond that {k} grouped consumers), drive(max_workers=N) (one thread per sub-session, the "
          f"default before), and bare websocket-client on the same socket (median of {reps} alternating runs)")
    sdk = Worker("sdk", "sdk", server.base)
    threaded = Worker("sdk-threads", "sdk", server.base)
    raw = Worker("wsclient", "wsclient", server.base)
    kinds = ((sdk, ""), (threaded, ":t"), (raw, ""))
    runs: Dict[str, List[Any]] = {}
    try:
        for n in fanouts:
            for w, suffix in kinds:
                w.run(f"fanout-{n}{suffix}")
        for rep in range(reps):
            order = list(fanouts) if rep % 2 == 0 else list(reversed(fanouts))
            for n in order:
                for w, suffix in (kinds if rep % 2 == 0 else tuple(reversed(kinds))):
                    runs.setdefault(f"{w.name}-{n}", []).append(_timed(server, w, f"fanout-{n}{suffix}"))
    finally:
        for w, _ in kinds:
            w.close()
    names = [w.name for w, _ in kinds]
    print(f"    {'N':>4} {'events':>7}" + "".join(f" {nm + ' ev/s':>16} {'/ N=1':>6} {'CPU us/ev':>9}" for nm in names)
          + "  pace (drive())")
    rows = []
    base: Dict[str, float] = {}
    for n in fanouts:
        row: Dict[str, Any] = {"subs": n}
        cells = []
        for kind in names:
            rs = runs[f"{kind}-{n}"]
            rate = median([_rate(r) for r in rs])
            base.setdefault(kind, rate)
            row[kind] = {"events": rs[0]["events"], "ev_per_s": rate, "ratio": rate / base[kind],
                         "cpu_us_per_ev": median([_cpu_us(r) for r in rs]),
                         "range": [min(_rate(r) for r in rs), max(_rate(r) for r in rs)]}
            cells.append(f" {rate:>16,.0f} {rate / base[kind]:>5.2f}x {row[kind]['cpu_us_per_ev']:>9.2f}")
        rows.append(row)
        print(f"    {n:>4} {row['sdk']['events']:>7}" + "".join(cells) + f"  {_pace(runs[f'sdk-{n}'])}")
    one = {kind: rows[0][kind]["cpu_us_per_ev"] for kind in names}
    print("    CPU per event relative to N=1: " + "; ".join(
        f"{kind} " + " ".join(f"{r['subs']}:{r[kind]['cpu_us_per_ev'] / one[kind]:.2f}x" for r in rows)
        for kind in names))
    return {"rows": rows, "runs": runs}


def run_toggles(server: ReplayProcess, reps: int, toggles: Sequence[str] = tuple(TOGGLES)) -> Dict[str, Any]:
    print(f"[replay D] hot-path special cases: each replaced by the plain path in its own SDK (orjson) process, "
          f"alternating with the unchanged SDK (median of {reps} pairs; saving = extra CPU without it, as a share "
          f"of the unchanged SDK's client CPU; keep if >= 3% on some stream)")
    base = Worker("sdk", "sdk", server.base)
    out: Dict[str, Any] = {}
    try:
        for toggle in toggles:
            w = Worker(toggle, "sdk", server.base, toggle=toggle)
            try:
                for stream in TOGGLES[toggle]:
                    w.run(stream)
                    base.run(stream)
                    runs = _alternate(server, [base, w], stream, reps)
                    saving = [(_cpu_us(t) - _cpu_us(b)) / _cpu_us(b) * 100 for b, t in zip(runs["sdk"], runs[toggle])]
                    d_us = [_cpu_us(t) - _cpu_us(b) for b, t in zip(runs["sdk"], runs[toggle])]
                    out.setdefault(toggle, {})[stream] = {"saving_pct": median(saving), "range": [min(saving), max(saving)],
                                                          "us_per_event": median(d_us)}
                    verdict = "pays" if median(saving) >= 3 else "below 3%"
                    print(f"    {toggle:<22} {stream:<8} saves {median(saving):+5.1f}% of client CPU "
                          f"({_rng(saving, '{:+.1f}')}), {median(d_us):+.2f} us per event "
                          f"(SDK {median([_cpu_us(r) for r in runs['sdk']]):.2f} us/ev)  {verdict}")
            finally:
                w.close()
    finally:
        base.close()
    return out


def run(reps: int = 5, only: Sequence[str] = ("clients", "barrier", "fanout", "toggles", "hotpath"),
        toggle_reps: Optional[int] = None, clients: Sequence[str] = CLIENTS,
        streams: Sequence[str] = STREAMS) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    with ReplayProcess() as server:
        print(f"    {server.banner}")
        if "clients" in only:
            result["clients"] = run_clients(server, reps, clients, streams)
            print()
        if "barrier" in only:
            result["barrier"] = run_barrier(server, reps)
            print()
        if "fanout" in only:
            result["fanout"] = run_fanout(server, reps)
            print()
        if "toggles" in only:
            result["toggles"] = run_toggles(server, toggle_reps or reps)
            print()
    if "hotpath" in only:
        e2e = None
        if "clients" in result and "sdk-orjson" in result["clients"]["control"]:
            e2e = {k: median([_cpu_us(r) for r in v["sdk-orjson"]]) for k, v in result["clients"].items()}
        result["hotpath"] = run_hotpath_toggles(e2e)
        print()
    save_result("replay", result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--toggle", default="", help=argparse.SUPPRESS)
    ap.add_argument("--config", default="", help=argparse.SUPPRESS)
    ap.add_argument("--hotpath-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="clients,barrier,fanout,toggles,hotpath")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="part A's clients (null must stay for the check)")
    ap.add_argument("--streams", default=",".join(STREAMS), help="part A's streams")
    args = ap.parse_args(argv)
    if args.hotpath_worker:
        hotpath_worker(args.reps)
    elif args.worker:
        worker(args)
    else:
        run(args.reps, args.only.split(","), clients=args.clients.split(","), streams=args.streams.split(","))


if __name__ == "__main__":
    main()
