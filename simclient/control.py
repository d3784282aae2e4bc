"""The control connection: one background reader thread owns the control WebSocket.

It performs the handshake (create, or attach after a drop), keeps the connection alive (ping every
``keepalive_interval``, dead after ``keepalive_deadline`` of inbound silence), reconnects with tenacity
(exponential backoff with jitter, an attempt budget reset after ``reconnect_uptime_reset`` of uptime), keeps a
sequence cursor per (sub-)session, drops replayed frames, and demultiplexes events into one ``queue.Queue`` per
(sub-)session. This is the one place where reconnect logic lives.

Continues in flight across a drop (PROTOCOL.md §7.1) are handled here too. Each :class:`Route` remembers the
continue sent since its last ``readyForContinue``/``paused``/``completed``. After a re-attach, once the replay has
been read, a route that saw no event since that continue gets the same request again (once per re-attach); a
"continue while busy" error answering such a re-send is expected and logged at DEBUG. When "the replay has been
read" is the [I] part of the spec, decided here:

* single session: the ``success`` that answers our ``resumeAttachedSession`` (sent after the attach, once the
  session's subscriptions are back) — the server replays right after ``sessionAttached`` and answers later
  requests after the replay, so the ack is a barrier;
* parallel control: the protocol has no such ack, so the reader sends a WebSocket ping right after
  ``parallelSessionAttachedV2`` and decides when its pong returns: the server reads the ping after the attach it
  answered with the replay, so the pong follows the replayed frames. (A fixed settle time was tried first and
  double-advanced sessions whenever the server stalled between the ack and the replay.)

``discoveryBatch`` events do not count as evidence that a continue arrived: servers emit them from a background
scan while idle (§5.5).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import tenacity

from . import events as ev
from . import protocol as wire
from .config import ClientConfig
from .errors import (
    ConnectionLostError,
    InvalidRequestError,
    ProtocolError,
    ServerTooOldError,
    SessionClosedError,
    SessionError,
    SimclientError,
    redact,
)
from .stats import ControlStats, SessionStats
from .transport import OPCODE_BINARY, OPCODE_PONG, OPCODE_TEXT, Connection, TransportError
from .urls import resolve_rpc_endpoint

log = logging.getLogger("simclient.control")

_IDLE_EVENTS = (ev.ReadyForContinue, ev.Paused, ev.Completed)
#: Decoded control messages that are never a single session's event: handshake replies and parallel-mode messages.
_NOT_SINGLE_EVENTS = frozenset({wire.SessionCreated, wire.SessionAttached, wire.SessionsCreatedV2,
                                wire.ParallelSessionAttachedV2, wire.SessionEventV2})


class _Lost(Exception):
    """Internal: the current connection is gone (transient)."""


class _Stop(Exception):
    """Internal: the connection is being closed by us."""


def reconnect_retrying(config: ClientConfig, attempts: Callable[[], int], stopping: threading.Event,
                       stopped: type, retry_on: Tuple[type, ...],
                       before_sleep: Callable[[tenacity.RetryCallState], None]) -> tenacity.Retrying:
    """The reconnect policy of every connection, control and data plane alike: retry ``retry_on`` failures with
    :meth:`ClientConfig.backoff_delay` between attempts until ``attempts()`` reaches ``config.reconnect_attempts``;
    the waits end at once (raising ``stopped``) when ``stopping`` is set. Terminal errors are not in ``retry_on``
    and propagate on the first occurrence."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise stopped()

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=lambda rs: stopping.is_set() or attempts() >= config.reconnect_attempts,
        wait=lambda rs: config.backoff_delay(attempts()),
        sleep=sleep, reraise=True, before_sleep=before_sleep)


class Route:
    """One (sub-)session on a control connection: its queue, cursor and in-flight continue."""

    def __init__(self, session_id: str, rpc_endpoint: str, task_id: Optional[str]):
        self.session_id = session_id
        self.rpc_endpoint = rpc_endpoint
        self.task_id = task_id
        self.sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()  # C-implemented: the cheapest put/get
        self.range: Optional[Tuple[int, int]] = None
        self.last_seq: Optional[int] = None
        self.stats = SessionStats()
        # §7.1 bookkeeping (guarded by the control lock where it matters)
        self.pending: Optional[Dict[str, Any]] = None  # wire request of the continue in flight
        self.sent_gen: Optional[int] = None  # connection generation it was written on; None = held
        self.progress = False  # an event arrived since it was sent
        self.resent = False
        self.completed = threading.Event()  # ``completed`` routed (subscriptions watch this for end-of-stream)
        self.failed = False
        self.error: Optional[BaseException] = None  # what failed it (raised again by later sends)
        self.closed = False
        self.acked = threading.Event()  # a ``success`` arrived (close ack)
        self.continues_sent = 0  # continue-type requests written (subscriptions: §9.5 early-complete trap)

    def __repr__(self) -> str:
        return f"Route({self.session_id!r}, last_seq={self.last_seq})"


class ControlConnection:
    """Owns one control WebSocket and its reader thread (``simclient-control-<id>``).

    ``parallel=False``: one session, top-level ``seqId`` cursors, ``attachBacktestSession`` + resume.
    ``parallel=True``: N sub-sessions multiplexed as ``sessionEventV2``, ``attachParallelControlSessionV2``.
    """

    def __init__(self, url: str, api_key: Optional[str], config: ClientConfig, create: Any, parallel: bool,
                 subscriptions_ready: Optional[Callable[[], bool]] = None):
        self.url = url
        self._api_key = api_key
        self.config = config
        self.parallel = parallel
        self._create_request = wire.encode_create(create, parallel=parallel)
        self.resumable = create.disconnect_timeout_secs > 0
        self.stats = ControlStats()
        self.routes: Dict[str, Route] = {}
        self.control_session_id: Optional[str] = None
        self.subscriptions_ready = subscriptions_ready or (lambda: True)
        self.v1 = wire.V1Form()  # which §3.5 form the *SessionV1 requests take (decided in protocol.py)

        self._lock = threading.RLock()
        self._conn: Optional[Connection] = None
        self._gen = 0
        self._up = False
        self._closing = threading.Event()
        self._close_requested = False
        self._created = threading.Event()
        self._create_error: Optional[BaseException] = None
        self._fatal: Optional[BaseException] = None
        self._early: Dict[str, List[Tuple[int, Any]]] = {}  # parallel: events for ids not yet announced
        self._prebuffer: List[Tuple[Optional[int], Any]] = []  # single: frames before sessionCreated
        self._retry_once_seen: Dict[str, int] = {}
        self._attempts_in_budget = 0
        self._history: List[Tuple[int, str]] = []
        self._up_since = 0.0
        self._poll = min(config.keepalive_interval, 0.5)
        self._maybe_done = False
        self._thread = threading.Thread(target=self._run, name="simclient-control-new", daemon=True)

    # ================================================================== public (caller threads)

    def start(self) -> None:
        self._thread.start()

    def wait_created(self) -> None:
        """Block until the create handshake finished; raise what made it fail."""
        while not self._created.wait(0.2):
            if not self._thread.is_alive():
                break
        if self._create_error is not None:
            raise self._create_error
        if not self._created.is_set():
            raise ConnectionLostError("control connection ended before the session was created")

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def send_continue(self, route: Route, request: Dict[str, Any]) -> None:
        """Send (or hold until the re-attach) a continue-type request for ``route``. Never blocks on a reconnect."""
        with self._lock:
            self._check_usable(route)
            route.pending = request
            route.progress = False
            route.resent = False
            route.sent_gen = None
            if self._up and self._conn is not None:
                route.sent_gen = self._gen  # even if the write fails: the re-attach logic then decides
                route.continues_sent += 1
                try:
                    self._conn.send_json(self.v1.shape(request, self._gen))
                except TransportError as exc:
                    log.info("continue for %s not confirmed written (%s); handled after re-attach",
                             route.session_id, exc)
                    self._conn.abort()
            else:
                log.debug("control down: holding continue for %s until the re-attach", route.session_id)

    def send_request(self, request: Dict[str, Any]) -> bool:
        """Best-effort send of a non-continue request (close). Returns False when not connected."""
        with self._lock:
            if not self._up or self._conn is None:
                return False
            try:
                self._conn.send_json(self.v1.shape(request, self._gen))
                return True
            except TransportError:
                return False

    def close(self, timeout: Optional[float] = None) -> None:
        """Close gracefully: single sessions send ``closeBacktestSession`` and wait for ``success``; parallel
        runs send ``closeSessionV1`` for unfinished sub-sessions. Then the reader thread is joined."""
        timeout = self.config.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            self._close_requested = True
        acked = False
        if self._thread.is_alive() and self._created.is_set():
            if not self.parallel:
                route = next(iter(self.routes.values()), None)
                if route is not None and not route.failed and self.send_request(wire.encode_close()):
                    acked = route.acked.wait(max(0.0, min(timeout, deadline - time.monotonic())))
            else:
                for route in self.routes.values():
                    if not route.completed.is_set() and not route.failed:
                        self.send_request(wire.encode_close_v1(route.session_id))
        if threading.current_thread() is self._thread:
            self._closing.set()
            return
        if acked:  # the reader sees the ack, closes the socket gracefully and exits by itself
            self._thread.join(max(0.1, deadline - time.monotonic()))
        self._closing.set()
        with self._lock:
            conn = self._conn
        if conn is not None and self._thread.is_alive():
            conn.abort()
        self._thread.join(max(0.1, deadline - time.monotonic()))

    # ================================================================== reader thread

    def _run(self) -> None:
        try:
            self._main()
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - everything reaches the user through the queues
            if not isinstance(exc, SimclientError):
                log.exception("control reader crashed")
                exc = ConnectionLostError(f"control reader crashed: {type(exc).__name__}: {exc}")
            self._fail(exc)
        finally:
            with self._lock:
                self._up = False
                conn, self._conn = self._conn, None
            if conn is not None:
                conn.release()
            if not self._created.is_set():
                if self._create_error is None:
                    self._create_error = SessionClosedError("closed before the session was created")
                self._created.set()
            log.debug("control reader exits")

    def _main(self) -> None:
        while True:
            self._raise_if_closing()
            conn = self._establish()
            try:
                done = self._message_loop(conn)
            except BaseException:
                conn.release()  # fatal mid-run (terminal control error, close code 4xxx): _run no longer sees it
                raise
            finally:
                with self._lock:
                    self._up = False
                    self._conn = None
            if done:
                conn.close(timeout=min(1.0, self.config.close_timeout))
                return
            conn.release()
            self._raise_if_closing()
            if self._created.is_set() and not self.resumable:
                raise ConnectionLostError(
                    "control connection lost and the session cannot resume (created with disconnect_timeout_secs=0)")
            if time.monotonic() - self._up_since >= self.config.reconnect_uptime_reset:
                self._attempts_in_budget = 0
            with self._lock:
                self.stats.reconnects += 1
                for route in self.routes.values():
                    route.stats.control_reconnects += 1

    def _raise_if_closing(self) -> None:
        if self._closing.is_set():
            raise _Stop()

    # ---------------------------------------------------------------- reconnect

    def _establish(self) -> Connection:
        retrying = reconnect_retrying(
            self.config, lambda: self._attempts_in_budget, self._closing, _Stop, (TransportError, _Lost),
            lambda rs: log.info("control: reconnecting in %.2fs (attempt %d/%d): %s",
                                rs.next_action.sleep if rs.next_action else 0.0, self._attempts_in_budget,
                                self.config.reconnect_attempts, rs.outcome.exception() if rs.outcome else ""))
        try:
            return retrying(self._attempt)
        except (TransportError, _Lost) as exc:
            self._raise_if_closing()
            raise ConnectionLostError("control connection could not be re-established", self._history) from exc

    def _attempt(self) -> Connection:
        self._raise_if_closing()
        self._attempts_in_budget += 1
        attempt = len(self._history) + 1
        conn: Optional[Connection] = None
        try:
            conn = Connection.open(self.url, self._api_key, self.config.connect_timeout)
            with self._lock:
                self._conn = conn  # so close() can abort a handshake in progress
                self._gen += 1
            self._handshake(conn)
        except (TransportError, _Lost) as exc:
            self._history.append((attempt, str(exc)))
            if conn is not None:
                conn.release()
            if isinstance(exc, TransportError) and exc.terminal:
                raise ConnectionLostError(f"server closed the connection with code {exc.close_code}",
                                          self._history) from None
            raise
        except BaseException:
            if conn is not None:
                conn.release()
            raise
        self._up_since = time.monotonic()
        return conn

    # ---------------------------------------------------------------- handshakes

    def _handshake(self, conn: Connection) -> None:
        if not self._created.is_set():
            with self._lock:  # a drop mid-create retries the create from scratch
                self.routes = {}
                self._early = {}
            conn.send_json(self._create_request)
            if self.parallel:
                self._create_parallel(conn)
            else:
                self._create_single(conn)
            with self._lock:
                self._up = True
            self._created.set()
        elif self.parallel:
            self._attach_parallel(conn)
        else:
            self._attach_single(conn)

    def _read_until(self, conn: Connection, timeout: float, stop: Callable[[Any, Optional[int]], bool],
                    what: str) -> None:
        """Read frames during a handshake until ``stop(message, seq)`` returns True. Each inbound frame
        (pongs included) resets the ``timeout`` only for pings; messages must come within ``timeout``."""
        deadline = time.monotonic() + timeout
        next_ping = time.monotonic() + self.config.keepalive_interval
        last_inbound = time.monotonic()
        while True:
            self._raise_if_closing()
            now = time.monotonic()
            if now >= deadline:
                raise _Lost(f"no {what} within {timeout:.0f}s")
            if now - last_inbound > self.config.keepalive_deadline:
                raise _Lost(f"keepalive deadline passed during {what}")
            if now >= next_ping:
                conn.ping()
                next_ping = now + self.config.keepalive_interval
            frame = conn.recv(min(self._poll, max(0.01, deadline - now)))
            if frame is None:
                continue
            last_inbound = time.monotonic()
            opcode, payload = frame
            if opcode not in (OPCODE_TEXT, OPCODE_BINARY):
                continue
            deadline = last_inbound + timeout  # the timeout bounds each wait for a message, not the whole
            decoded = self._decode(payload)
            if decoded is not None and stop(decoded.message, decoded.seq_id):
                return

    def _handshake_error(self, error: wire.BacktestError, what: str) -> BaseException:
        """Classify an ``error`` answering a handshake (§10.1)."""
        if error.variant in wire.TRANSIENT_VARIANTS:
            return _Lost(f"{what}: {self._r(error.message)}")
        if error.variant in wire.RETRY_ONCE_VARIANTS:
            seen = self._retry_once_seen.get(what, 0)
            self._retry_once_seen[what] = seen + 1
            if seen == 0:
                return _Lost(f"{what}: {self._r(error.message)} (retrying once)")
        cls = InvalidRequestError if error.is_invalid_request else SessionError
        return cls(error, f"{what} failed: {self._r(error.message)}")

    def _create_single(self, conn: Connection) -> None:
        self._prebuffer = []

        def stop(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionCreated):
                route = Route(msg.session_id, resolve_rpc_endpoint(self.url, msg.rpc_endpoint), msg.task_id)
                with self._lock:
                    self.routes[msg.session_id] = route
                self._thread.name = f"simclient-control-{_short(msg.session_id)}"
                log.info("session %s created (rpc %s)", msg.session_id, route.rpc_endpoint)
                for pseq, pmsg in self._prebuffer:
                    self._deliver(route, pseq, pmsg)
                self._prebuffer = []
                return True
            if isinstance(msg, ev.ServerError) and msg.error.terminal:
                raise self._handshake_error(msg.error, "create")
            if isinstance(msg, ev.ServerError) and not wire.is_continue_busy(msg.error):
                raise self._handshake_error(msg.error, "create")
            if isinstance(msg, (ev.Event, wire.Success)):
                self._prebuffer.append((seq, msg))
            return False

        self._read_until(conn, self.config.create_timeout, stop, "sessionCreated")

    def _create_parallel(self, conn: Connection) -> None:
        pending: Dict[str, Route] = {}

        def stop(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionCreated):
                route = Route(msg.session_id, resolve_rpc_endpoint(self.url, msg.rpc_endpoint), msg.task_id)
                pending[msg.session_id] = route
                with self._lock:
                    self.routes[msg.session_id] = route
                for eseq, event in self._early.pop(msg.session_id, []):
                    self._deliver(route, eseq, event)
                log.debug("sub-session %s created (%d so far)", msg.session_id, len(pending))
                return False
            if isinstance(msg, wire.SessionsCreatedV2):
                self._bind_parallel(msg)
                return True
            if isinstance(msg, ev.ServerError):
                raise self._handshake_error(msg.error, "parallel create")
            self._route_parallel(msg)  # sessionEventV2 of known ids, or buffered for ids not announced yet
            return False

        self._read_until(conn, self.config.create_timeout, stop, "sessionsCreatedV2")

    def _bind_parallel(self, msg: wire.SessionsCreatedV2) -> None:
        n = len(msg.session_ids)
        if msg.start_slots is None or msg.end_slots is None or len(msg.start_slots) != n or len(msg.end_slots) != n:
            raise ServerTooOldError(
                "server did not report per-sub-session ranges in sessionsCreatedV2 "
                f"(session_ids={n}, start_slots={_len(msg.start_slots)}, end_slots={_len(msg.end_slots)}): "
                "the server is too old for the multiplexed parallel client")
        with self._lock:
            listed = {}
            for sid, start, end in zip(msg.session_ids, msg.start_slots, msg.end_slots):
                route = self.routes.get(sid)
                if route is None:  # listed but never announced: still routable, endpoint by convention
                    route = Route(sid, resolve_rpc_endpoint(self.url, f"/backtest/{sid}"), None)
                    for eseq, event in self._early.pop(sid, []):
                        self._deliver(route, eseq, event)
                route.range = (start, end)
                listed[sid] = route
            dropped = set(self.routes) - set(listed)
            if dropped:
                log.warning("ignoring sub-sessions not listed in sessionsCreatedV2: %s", sorted(dropped))
            self.routes = listed
            self._early.clear()
            self.control_session_id = msg.control_session_id
        self._thread.name = f"simclient-control-{_short(msg.control_session_id)}"
        log.info("parallel run %s created: %d sub-sessions", msg.control_session_id, n)

    def _attach_single(self, conn: Connection) -> None:
        route = next(iter(self.routes.values()))
        conn.send_json(wire.encode_attach(route.session_id, route.last_seq))

        def attached(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionAttached):
                return True
            if isinstance(msg, ev.ServerError) and (msg.error.terminal or not wire.is_continue_busy(msg.error)):
                raise self._handshake_error(msg.error, "attach")
            self._route_single(seq, msg)
            return False

        self._read_until(conn, self.config.handshake_timeout, attached, "sessionAttached")
        log.info("session %s re-attached after seq %s", route.session_id, route.last_seq)
        # Subscriptions first (PROTOCOL §7 step 4), reading the replay meanwhile.
        deadline = time.monotonic() + self.config.handshake_timeout
        while not self.subscriptions_ready():
            if time.monotonic() > deadline:
                raise _Lost("subscriptions did not come back before resume")
            self._raise_if_closing()
            frame = conn.recv(0.02)
            if frame is not None and frame[0] in (OPCODE_TEXT, OPCODE_BINARY):
                decoded = self._decode(frame[1])
                if decoded is not None:
                    self._route_single(decoded.seq_id, decoded.message)
        conn.send_json(wire.encode_resume())

        def resumed(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.Success):
                if seq is not None:
                    if route.last_seq is not None and seq <= route.last_seq:
                        return False  # an old, replayed ack
                    route.last_seq = seq
                return True
            self._route_single(seq, msg)
            return False

        self._read_until(conn, self.config.handshake_timeout, resumed, "resume ack")
        self._after_reattach()

    def _attach_parallel(self, conn: Connection) -> None:
        assert self.control_session_id is not None
        with self._lock:
            cursors = {sid: r.last_seq for sid, r in self.routes.items() if r.last_seq is not None}
        conn.send_json(wire.encode_attach_parallel(self.control_session_id, cursors))

        def attached(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.ParallelSessionAttachedV2):
                return True
            if isinstance(msg, ev.ServerError):
                raise self._handshake_error(msg.error, "parallel attach")
            self._route_parallel(msg)
            return False

        self._read_until(conn, self.config.handshake_timeout, attached, "parallelSessionAttachedV2")
        log.info("parallel control %s re-attached", self.control_session_id)
        # The replay has no end marker. A ping sent now is read by the server after the attach it answered with the
        # replay, so its pong arrives after the replayed frames: once it is back, the replay has been read.
        token = f"simclient-replay-barrier-{self._gen}".encode()
        conn.ping(token)
        deadline = time.monotonic() + self.config.handshake_timeout
        while True:
            self._raise_if_closing()
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Lost("no pong for the replay barrier")
            frame = conn.recv(min(left, self._poll))
            if frame is None:
                continue
            opcode, payload = frame
            if opcode == OPCODE_PONG and payload == token:
                break
            if opcode in (OPCODE_TEXT, OPCODE_BINARY):
                decoded = self._decode(payload)
                if decoded is not None:
                    self._route_parallel(decoded.message)
        self._after_reattach()

    def _after_reattach(self) -> None:
        """The replay has been read: send held continues, re-send lost ones (§7.1), then accept sends."""
        with self._lock:
            conn = self._conn
            assert conn is not None
            for route in self.routes.values():
                if route.pending is None or route.failed or route.completed.is_set():
                    continue
                if route.sent_gen is None:
                    log.debug("sending held continue for %s", route.session_id)
                elif route.sent_gen < self._gen and not route.progress:
                    log.info("continue for %s was lost in the drop: sending it again", route.session_id)
                    route.resent = True
                    route.stats.continues_resent += 1
                else:
                    continue
                route.sent_gen = self._gen
                route.continues_sent += 1
                conn.send_json(self.v1.shape(route.pending, self._gen))
            self._up = True

    # ---------------------------------------------------------------- the message loop

    def _message_loop(self, conn: Connection) -> bool:
        """Read until the connection is lost (False) or the work is done (True)."""
        cfg = self.config
        now = time.monotonic()
        last_inbound = now
        next_ping = now + cfg.keepalive_interval
        poll = self._poll
        recv = conn.recv
        while True:
            if self._closing.is_set():
                return True
            if self._maybe_done:
                self._maybe_done = False
                if self._finished():
                    return True
            try:
                frame = recv(poll)
                now = time.monotonic()
                if frame is not None:
                    last_inbound = now
                    opcode, payload = frame
                    if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                        self.stats.frames_received += 1
                        decoded = self._decode(payload)
                        if decoded is not None:
                            if self.parallel:
                                self._route_parallel(decoded.message)
                            else:
                                self._route_single(decoded.seq_id, decoded.message)
                else:
                    if self._maybe_done is False and self.routes and self._finished():
                        return True
                    if now - last_inbound > cfg.keepalive_deadline:
                        log.warning("control: no inbound traffic for %.1fs: connection declared dead",
                                    now - last_inbound)
                        return False
                if now >= next_ping:
                    conn.ping()
                    next_ping = now + cfg.keepalive_interval
            except TransportError as exc:
                if self._closing.is_set():
                    return True
                if exc.terminal:
                    raise ConnectionLostError(f"server closed the control connection with code {exc.close_code}") from None
                log.info("control connection lost: %s", exc)
                return False
            except _Lost as exc:
                log.info("control: %s", exc)
                return False

    def _finished(self) -> bool:
        """All work done: every route completed or failed (parallel), or the close ack arrived (single)."""
        routes = self.routes
        if not routes:
            return False
        if self.parallel:
            return all(r.completed.is_set() or r.failed for r in routes.values())
        route = next(iter(routes.values()))
        return route.failed or (self._close_requested and route.acked.is_set())

    def _decode(self, payload: Any) -> Optional[wire.Frame]:
        try:
            return wire.decode_response(payload)
        except ProtocolError as exc:
            self.stats.frames_discarded += 1
            for route in self.routes.values():
                route.stats.frames_discarded += 1
            if self._api_key and self._api_key in str(exc):
                exc = ProtocolError(self._r(exc))
            log.warning("discarding undecodable control frame: %s", exc)
            return None

    def _route_single(self, seq: Optional[int], msg: Any) -> None:
        if type(msg) in _NOT_SINGLE_EVENTS:
            # a replayed sessionCreated (it is sequenced, §2.1), or a parallel-mode message: not an event (L6)
            log.debug("ignoring unexpected control message %s", self._r(repr(msg)))
            return
        route = next(iter(self.routes.values()), None)
        if route is None:
            self._prebuffer.append((seq, msg))
            return
        self._deliver(route, seq, msg)

    def _route_parallel(self, msg: Any) -> None:
        if type(msg) is wire.SessionEventV2:
            route = self.routes.get(msg.session_id)
            if route is not None:
                self._deliver(route, msg.seq_id, msg.event)
            elif not self._created.is_set():
                self._early.setdefault(msg.session_id, []).append((msg.seq_id, msg.event))
            else:
                log.debug("event for unknown sub-session %s ignored", msg.session_id)
            return
        if isinstance(msg, ev.ServerError):
            if self._v1_form_error(msg.error):
                return
            if msg.error.terminal:
                raise SessionError(msg.error, f"parallel control session failed: {self._r(msg.error.message)}")
            if msg.error.variant in wire.TRANSIENT_VARIANTS:
                raise _Lost(f"server: {self._r(msg.error.message)}")
            log.warning("non-terminal parallel control error: %s", self._r(msg.error.message))
            return
        if isinstance(msg, wire.Unknown):
            log.debug("ignoring unknown control method %r", self._r(msg.method))
            return
        log.debug("ignoring unexpected control message %s", self._r(repr(msg)))

    def _v1_form_error(self, err: wire.BacktestError, refused: Optional[Route] = None) -> bool:
        """A "duplicate field" answering our superset ``*SessionV1`` form (§3.5): switch to the minimal form (see
        :class:`protocol.V1Form`) and re-send, once, what is unanswered on this socket (``refused``: the route the
        server named, whose in-flight continue the refusal answers). True when consumed."""
        with self._lock:
            verdict = self.v1.on_error(err, self._gen)
            if verdict is None:
                return False
            if not verdict:
                log.debug("expected duplicate-field answer to an earlier superset request: dropped")
                return True
            self.stats.v1_minimal_fallbacks += 1
            log.debug("server refused the superset *SessionV1 form (%s): minimal form from now on",
                      self._r(err.message))
            conn = self._conn
            for route in self.routes.values():
                if route.failed or route.completed.is_set():
                    continue
                if route.pending is not None and route.sent_gen == self._gen and (not route.progress or route is refused):
                    again: Optional[Dict[str, Any]] = route.pending
                elif self._close_requested and not route.acked.is_set():
                    again = wire.encode_close_v1(route.session_id)
                else:
                    again = None
                if again is not None and conn is not None:
                    self.stats.v1_minimal_resends += 1
                    try:
                        conn.send_json(self.v1.shape(again, self._gen))
                    except TransportError as exc:
                        log.info("minimal-form re-send for %s not written (%s)", route.session_id, exc)
            return True

    def _deliver(self, route: Route, seq: Optional[int], event: Any) -> None:
        """Cursor, replay dedup, §7.1 bookkeeping, then the route's queue."""
        if seq is not None:
            last = route.last_seq
            if last is not None and seq <= last:
                route.stats.replays_dropped += 1
                return
            route.last_seq = seq
        kind = type(event)
        if kind is wire.Success:
            route.acked.set()
            self._maybe_done = True
            return
        if kind is wire.Unknown:
            log.debug("ignoring unknown method %r for %s", self._r(event.method), route.session_id)
            return
        if route.pending is not None and kind is not ev.DiscoveryBatch:
            route.progress = True  # any event proves the in-flight continue arrived
            if kind in _IDLE_EVENTS:
                route.pending = None
                route.resent = False
        if kind is ev.ServerError and self._error_consumed(route, event.error):
            return
        if kind is ev.Completed:
            route.completed.set()
            self._maybe_done = True
        route.sink.put(event)

    def _error_consumed(self, route: Route, err: wire.BacktestError) -> bool:
        """Handle a server error for ``route``; True when it must not be delivered as a ServerError event."""
        if self.parallel and self._v1_form_error(err, route):  # a server that routes the refusal to the sub-session
            return True
        if wire.is_continue_busy(err):
            if route.resent:
                log.debug("expected 'continue while busy' after re-sending a continue for %s", route.session_id)
                return True
            return False
        if err.variant in wire.TRANSIENT_VARIANTS:
            raise _Lost(f"server: {self._r(err.message)}")
        if err.variant in wire.RETRY_ONCE_VARIANTS:
            seen = self._retry_once_seen.get(route.session_id, 0)
            self._retry_once_seen[route.session_id] = seen + 1
            if not seen:
                return False  # delivered as a non-terminal ServerError the first time
        elif not err.terminal:
            return False
        route.failed = True
        route.pending = None
        self._maybe_done = True
        cls = InvalidRequestError if err.is_invalid_request else SessionError
        route.error = cls(err, f"session {route.session_id} failed: {self._r(err.message)}")
        route.sink.put(route.error)
        return True

    def _fail(self, exc: BaseException) -> None:
        """A fatal error of the connection: the creator and every unfinished route hear about it."""
        self._fatal = exc
        if not self._created.is_set():
            self._create_error = exc
            self._created.set()
            return
        for route in self.routes.values():
            if not route.completed.is_set() and not route.failed:
                route.failed = True
                route.error = exc
                route.sink.put(exc)

    def _r(self, text: Any) -> str:
        """``text`` for a log record or an exception message, without the API key (a server or proxy may echo it)."""
        return redact(str(text), self._api_key)

    def _check_usable(self, route: Route) -> None:
        if route.failed:
            if route.error is not None:  # the cause, not just "has failed": a send can race the error's delivery
                raise route.error
            raise SessionClosedError(f"session {route.session_id} has failed")
        if route.completed.is_set():
            raise SessionClosedError(f"session {route.session_id} has completed")
        if route.closed or self._closing.is_set():
            raise SessionClosedError(f"session {route.session_id} is closed")
        if self._fatal is not None:
            raise self._fatal


def _short(session_id: str) -> str:
    return session_id[-8:]


def _len(x: Optional[tuple]) -> str:
    return "missing" if x is None else str(len(x))
