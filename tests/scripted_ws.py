"""A scripted subscription socket for unit tests of the subscription worker (no sockets, no simulator)."""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Iterator, List, Optional, Tuple

from simclient import protocol as wire
from simclient.transport import OPCODE_PONG, OPCODE_TEXT, TransportError


class ScriptedConn:
    """A subscription socket: acks subscribes, answers pings with pongs after what is queued before them, and can
    be told to die."""

    def __init__(self, script: "Script"):
        self.script = script
        self.frames: "queue.Queue[Any]" = queue.Queue()
        self.sent: List[Any] = []
        self.pings: List[bytes] = []
        self.dead = False

    def send_json(self, obj: Any) -> None:
        self.sent.append(obj)
        self.frames.put((OPCODE_TEXT, wire.dumps({"jsonrpc": "2.0", "id": obj["id"], "result": 40 + obj["id"]})))
        for replay in self.script.on_subscribe(self, obj):
            self.frames.put((OPCODE_TEXT, replay))

    def ping(self, payload: bytes = b"") -> None:
        if self.dead:
            raise TransportError("dead")
        self.pings.append(payload)
        if payload and not self.script.swallow_pings:
            self.frames.put((OPCODE_PONG, payload))

    def recv(self, timeout: Optional[float]) -> Any:
        if self.dead:
            raise TransportError("connection lost")
        try:
            item = self.frames.get(timeout=min(timeout or 0.05, 0.05))
        except queue.Empty:
            return None
        if item == "die":
            self.dead = True
            raise TransportError("connection lost")
        return item

    def put_note(self, slot: int, sig: str, sub_id: int = 41) -> None:
        self.frames.put((OPCODE_TEXT, note(slot, sig, sub_id)))

    def abort(self) -> None:
        self.dead = True

    def release(self) -> None:
        self.dead = True

    def close(self, timeout: float = 1.0) -> None:
        self.dead = True


def note(slot: int, sig: str, sub_id: int = 41) -> str:
    return wire.dumps({"jsonrpc": "2.0", "method": "transactionNotification", "params": {
        "subscription": sub_id, "result": {"context": {"slot": slot}, "value": {
            "slot": slot, "transaction": {"signatures": [sig]}, "meta": {"err": None}}}}})


class Script:
    def __init__(self) -> None:
        self.conns: List[ScriptedConn] = []
        self.opened = threading.Condition()
        self.swallow_pings = False
        self.replay: List[str] = []

    def open(self, url: str, key: Any, timeout: float) -> ScriptedConn:
        conn = ScriptedConn(self)
        with self.opened:
            self.conns.append(conn)
            self.opened.notify_all()
        return conn

    def on_subscribe(self, conn: ScriptedConn, request: Any) -> List[str]:
        return list(self.replay) if len(self.conns) > 1 else []

    def wait_conns(self, n: int) -> ScriptedConn:
        with self.opened:
            assert self.opened.wait_for(lambda: len(self.conns) >= n, 5.0)
            return self.conns[n - 1]


class FakeSubscription:
    """What the session's consumer side needs of a Subscription for a step barrier: identity, ``kind``,
    ``reconnecting``, ``has_been_up`` and ``request_barrier()`` (a new generation each time; None once ``ended``)."""

    def __init__(self, kind: str = "transaction", ended: bool = False):
        self.gen = 0
        self.ended = ended
        self.kind = kind
        self.reconnecting = False
        self.has_been_up = True

    def request_barrier(self) -> Optional[int]:
        if self.ended:
            return None
        self.gen += 1
        return self.gen


@contextlib.contextmanager
def scripted_worker(kind: str, programs: List[str], keepalive_deadline: float = 0.5, *,
                    script: Optional[Script] = None, compression: Optional[str] = None, config: Any = None
                    ) -> Iterator[Tuple[Script, Any, "queue.SimpleQueue[Any]"]]:
    """A started subscription worker (``Subscription``) of session ``s1`` whose sockets are scripted (by ``script``,
    a new :class:`Script` by default): yields ``(script, sub, sink)``, and stops and joins the worker on the way out.
    ``config`` replaces the fast keepalive settings it runs with otherwise."""
    from simclient.stats import SessionStats
    from simclient.subscriptions import Subscription
    from simclient.testing import fast_config

    script = script if script is not None else Script()
    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    if config is None:
        config = fast_config(keepalive_interval=0.05, keepalive_deadline=keepalive_deadline, backoff_initial=0.0)
    sub = Subscription(kind, programs, "http://127.0.0.1:1/backtest/s1", sink, config,
                       threading.Event(), 100, "s1", SessionStats(),
                       connection_factory=lambda url, key, timeout: script.open(url, key, timeout),
                       compression=compression)
    sub.start()
    try:
        yield script, sub, sink
    finally:
        sub.stop()
        sub.join(2.0)
        assert not sub.thread.is_alive()
