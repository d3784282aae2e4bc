"""Scripted connections for unit tests of the control and subscription state machines: no sockets, no simulator.

A :class:`ScriptedServer` is the ``connection_factory`` (``factory(url, api_key, timeout)``) of the code under test.
Each connection it hands out is a :class:`ScriptedConnection`; what the client sends goes to the server's
``on_send(conn, request)`` (a test overrides it, or sets ``handler``), which answers with :meth:`reply` /
:meth:`drop`. Pings are answered with a pong unless ``answer_pings`` is off. Every call is recorded, so a test can
count connections, creates, pings per connection, and inspect what was sent on which connection.
"""
from __future__ import annotations

import collections
import json
import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from simclient.transport import OPCODE_PONG, OPCODE_TEXT, Closed, TransportError

Handler = Callable[["ScriptedConnection", Dict[str, Any]], None]


class _Batch(list):  # type: ignore[type-arg]
    """Frames queued as one read's worth (ScriptedConnection.reply_batch)."""


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
        self._front: "collections.deque[Any]" = collections.deque()  # read before the inbox
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

    def reply_batch(self, *frames: Dict[str, Any]) -> None:
        """Frames that arrive together, as one socket read brings them: one batch for ``recv_many`` (a reader
        that has started on it cannot see half of it)."""
        self._inbox.put(_Batch((OPCODE_TEXT, json.dumps(f).encode()) for f in frames))

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
        if self._front:
            item = self._front.popleft()
        else:
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                return None
            if type(item) is _Batch:
                self._front.extend(item[1:])
                item = item[0]
        if isinstance(item, BaseException):
            self.closed = True
            self._front.appendleft(item)  # every later read sees it too
            raise item
        return item  # type: ignore[no-any-return]

    def recv_many(self, timeout: Optional[float]) -> List[Tuple[int, Any]]:
        """Every frame queued by now as one batch, as :meth:`simclient.transport.Connection.recv_many` gives what
        one socket read brought (waiting at most ``timeout`` for the first); a break queued behind frames is
        raised by the next read."""
        first = self.recv(timeout)
        if first is None:
            return []
        out = [first]
        while True:
            if self._front:
                if isinstance(self._front[0], BaseException):
                    break
                out.append(self._front.popleft())
                continue
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if type(item) is _Batch:
                self._front.extend(item)
            elif isinstance(item, BaseException):
                self._front.append(item)
                break
            else:
                out.append(item)
        return out

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


class OneFrameConnection(ScriptedConnection):
    """A scripted connection without ``recv_many``: the SDK reads it one frame per ``recv`` (batch_reader)."""

    recv_many = None  # type: ignore[assignment]


class ScriptedServer:
    """The factory and the script. ``refuse`` > 0 refuses that many connects; ``handler`` answers requests."""

    def __init__(self, handler: Optional[Handler] = None, answer_pings: bool = True, batches: bool = True):
        self.handler = handler
        self.answer_pings = answer_pings
        #: connections read in batches (recv_many, as the SDK's real connections are); False: one frame per recv
        self.batches = batches
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
            conn = (ScriptedConnection if self.batches else OneFrameConnection)(self, len(self.connections) + 1, url)
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
