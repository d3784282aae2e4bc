"""Scripted connections for unit tests of the control and subscription state machines: no sockets, no simulator.

A :class:`ScriptedServer` is the ``connection_factory`` (``factory(url, api_key, timeout)``) of the code under test.
Each connection it hands out is a :class:`ScriptedConnection`; what the client sends goes to the server's
``on_send(conn, request)`` (a test overrides it, or sets ``handler``), which answers with :meth:`reply` /
:meth:`drop`. Pings are answered with a pong unless ``answer_pings`` is off. Every call is recorded, so a test can
count connections, creates, pings per connection, and inspect what was sent on which connection.
"""
from __future__ import annotations

import json
import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from simclient.transport import OPCODE_PONG, OPCODE_TEXT, Closed, TransportError

Handler = Callable[["ScriptedConnection", Dict[str, Any]], None]


class ScriptedConnection:
    """One fake connection: an inbox of frames for the client, and a log of what it sent."""

    def __init__(self, server: "ScriptedServer", number: int, url: str):
        self.server = server
        self.number = number
        self.url = url
        self.sent: List[Dict[str, Any]] = []
        self.pings: List[bytes] = []
        self.closed = False
        self._inbox: "queue.Queue[Any]" = queue.Queue()
        self._lock = threading.Lock()
        self._pinged = threading.Condition(self._lock)

    # ------------------------------------------------------------------ server side (the test)
    def reply(self, method: str, params: Any = None, seq: Optional[int] = None) -> None:
        """Deliver one control frame ``{"method", "params"[, "seqId"]}``."""
        obj: Dict[str, Any] = {"method": method}
        if params is not None:
            obj["params"] = params
        if seq is not None:
            obj["seqId"] = seq
        self.reply_raw(json.dumps(obj))

    def reply_raw(self, text: str) -> None:
        self._inbox.put((OPCODE_TEXT, text.encode()))

    def drop(self, code: Optional[int] = None) -> None:
        """The connection breaks (``code``: a close frame with that code, else a reset)."""
        self._inbox.put(Closed(f"closed by peer (code {code})", close_code=code) if code is not None
                        else TransportError("connection lost: reset by the script"))

    def methods(self) -> List[str]:
        return [m.get("method", "") for m in self.sent]

    def wait_pings(self, n: int, timeout: float = 5.0) -> None:
        """Block until the client sent ``n`` pings on this connection."""
        with self._lock:
            if not self._pinged.wait_for(lambda: len(self.pings) >= n, timeout):
                raise AssertionError(f"only {len(self.pings)} ping(s), expected {n}")

    # ------------------------------------------------------------------ client side (ConnectionLike)
    def send_json(self, obj: Any) -> None:
        if self.closed:
            raise TransportError("send failed: connection closed")
        with self._lock:
            self.sent.append(obj)
        self.server.on_send(self, obj)

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Any]]:
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            self.closed = True
            self._inbox.put(item)  # every later read sees it too
            raise item
        return item  # type: ignore[no-any-return]

    def ping(self, payload: bytes = b"") -> None:
        if self.closed:
            raise TransportError("ping failed: connection closed")
        with self._lock:
            self.pings.append(payload)
            self._pinged.notify_all()
        if self.server.answer_pings:
            self._inbox.put((OPCODE_PONG, payload))

    def close(self, timeout: float = 1.0) -> None:
        self.release()

    def abort(self) -> None:
        self._inbox.put(TransportError("connection lost: aborted"))

    def release(self) -> None:
        self.closed = True
        self._inbox.put(TransportError("connection lost: released"))


class ScriptedServer:
    """The factory and the script. ``refuse`` > 0 refuses that many connects; ``handler`` answers requests."""

    def __init__(self, handler: Optional[Handler] = None, answer_pings: bool = True):
        self.handler = handler
        self.answer_pings = answer_pings
        self.connections: List[ScriptedConnection] = []
        self.refuse = 0
        self.refused = 0
        self.factory_error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self.connected = threading.Condition(self._lock)

    def __call__(self, url: str, api_key: Optional[str], timeout: float) -> ScriptedConnection:
        with self._lock:
            if self.factory_error is not None:
                raise self.factory_error
            if self.refuse:
                self.refuse -= 1
                self.refused += 1
                raise TransportError(f"connect to {url} failed: refused by the script")
            conn = ScriptedConnection(self, len(self.connections) + 1, url)
            self.connections.append(conn)
            self.connected.notify_all()
        return conn

    def on_send(self, conn: ScriptedConnection, request: Dict[str, Any]) -> None:
        if self.handler is not None:
            self.handler(conn, request)

    def sent(self, method: str) -> List[Tuple[int, Dict[str, Any]]]:
        """Every request named ``method`` as ``(connection number, request)``."""
        return [(c.number, m) for c in list(self.connections) for m in list(c.sent) if m.get("method") == method]

    def wait_connections(self, n: int, timeout: float = 5.0) -> ScriptedConnection:
        with self._lock:
            if not self.connected.wait_for(lambda: len(self.connections) >= n, timeout):
                raise AssertionError(f"only {len(self.connections)} connection(s), expected {n}")
            return self.connections[n - 1]
