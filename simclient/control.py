"""The control connection: one background reader thread owns the control WebSocket.

It performs the handshake (create, or attach after a drop), keeps the connection alive (every wait reads through
one :class:`~simclient.reconnect.LinkReader`: ping every ``keepalive_interval``, dead after ``keepalive_deadline``
of inbound silence), reconnects under a :class:`~simclient.reconnect.ReconnectSupervisor` (the policy shared with
the data plane: backoff before every reconnect, a budget that only connections delivering new events reset, a
total deadline), keeps a sequence cursor per (sub-)session, drops replayed frames, and demultiplexes events into
one ``queue.Queue`` per (sub-)session.

A create whose connection stays up but gets no answer within ``create_timeout`` is not retried (a retry could
create a second session): it fails with :class:`~simclient.errors.Timeout`. Only a create whose connection dropped
is sent again. Server errors are classified by :data:`simclient.protocol.ERROR_ACTIONS` (§10.1) at every site.

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

The server is not trusted blindly: a restarted server can hand a session id it issued before to a new session
(another client's), and a client still re-attaching would otherwise adopt it. Two checks, each failing only that
(sub-)session with :class:`ProtocolError` (single session: the connection) and delivering nothing of the frame:

* **Resume point.** After an attach that sent cursor ``N`` for a (sub-)session, the first sequenced frame the server
  sends for it must have ``seqId >= N``: §7 step 3 promises a replay of ``seqId > N`` (``N`` itself, an inclusive
  replay of the last frame, is tolerated and dropped). A first frame with ``seqId < N`` — also the ``success``
  answering our ``resumeAttachedSession``, which is new by construction — means the stream under that id is not the
  one we read up to ``N``. Later frames with ``seqId <= cursor`` are ordinary duplicates: dropped, counted in
  ``replays_dropped``.
* **Range.** A ``slotNotification`` or ``paused`` whose slot is outside the (sub-)session's
  range (known once created: the request's range, or ``sessionsCreatedV2``'s) is not this session's.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from . import events as ev
from . import protocol as wire
from .config import ClientConfig
from .errors import (
    ConnectionLostError,
    InternalError,
    InvalidRequestError,
    ProtocolError,
    ServerTooOldError,
    SessionClosedError,
    SessionError,
    SimclientError,
    Timeout,
    redact,
)
from .reconnect import (
    ConnectionFactory,
    ConnectionLike,
    LinkReader,
    NoAnswer,
    ReconnectSupervisor,
    Stopped,
    connection_factory_for,
)
from .stats import ControlStats, SessionStats
from .transport import OPCODE_BINARY, OPCODE_PONG, OPCODE_TEXT, SendTimeout, TransportError
from .urls import resolve_rpc_endpoint

log = logging.getLogger("simclient.control")

_IDLE_EVENTS = (ev.ReadyForContinue, ev.Paused, ev.Completed)
#: Control events that carry a slot of the (sub-)session's range. Not ``discoveryBatch``: it announces an upcoming
#: match (§5.5), and nothing promises that a server's scan stops at the range's end.
_SLOT_EVENTS = frozenset({ev.Slot, ev.Paused})
#: Decoded control messages that are never a single session's event: handshake replies and parallel-mode messages.
_NOT_SINGLE_EVENTS = frozenset({wire.SessionCreated, wire.SessionAttached, wire.SessionsCreatedV2,
                                wire.ParallelSessionAttachedV2, wire.SessionEventV2})


class _Lost(Exception):
    """Internal: the current connection is gone (transient)."""


_Stop = Stopped  # the connection is being closed by us


def fresh_error(exc: BaseException) -> BaseException:
    """A new instance of ``exc`` caused by it, so that each (sub-)session's thread raises its own object (one
    object raised in many threads collects every thread's traceback). ``exc`` itself when it cannot be copied."""
    try:
        new = type(exc).__new__(type(exc))  # not __init__: the constructors take other arguments than ``args``
        new.__dict__.update(exc.__dict__)
        new.args = exc.args
    except Exception:  # noqa: BLE001 - an exotic exception type
        return exc
    new.__cause__ = exc
    new.__traceback__ = None
    return new


class InFlight:
    """The §7.1 continue in flight of one route, as one value: the wire ``request``, the connection generation
    ``gen`` it was written on (None: held until the re-attach), ``progress`` once any event arrived since it was
    sent, ``resent`` once it was sent again after a re-attach."""

    __slots__ = ("request", "gen", "progress", "resent")

    def __init__(self, request: Dict[str, Any], gen: Optional[int]):
        self.request = request
        self.gen = gen
        self.progress = False
        self.resent = False


class Route:
    """One (sub-)session on a control connection: its queue, cursor and in-flight continue. Written by the control
    reader (events, failure) and by ``send_continue`` (the in-flight continue), both under the control lock where
    it matters; read by the (sub-)session's consumer thread through ``sink``."""

    def __init__(self, session_id: str, rpc_endpoint: str, task_id: Optional[str]):
        self.session_id = session_id
        self.rpc_endpoint = rpc_endpoint
        self.task_id = task_id
        self.sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()  # C-implemented: the cheapest put/get
        self.range: Optional[Tuple[int, int]] = None
        self.last_seq: Optional[int] = None
        self.attach_cursor: Optional[int] = None  # cursor sent with the last attach, until a sequenced frame came
        self.stats = SessionStats()
        self.inflight: Optional[InFlight] = None  # §7.1: the continue sent since the last idle event
        self.completed = threading.Event()  # ``completed`` routed (subscriptions watch this for end-of-stream)
        self.failed = False
        self.error: Optional[BaseException] = None  # what failed it (raised again by later sends)
        self.closed = False
        self.acked = threading.Event()  # a ``success`` arrived (close ack)
        self.continues_sent = 0  # continue-type requests written (subscriptions: §9.5 early-complete trap)

    def __repr__(self) -> str:
        return f"Route({self.session_id!r}, last_seq={self.last_seq})"

    def saw_event(self, kind: type) -> None:
        """§7.1: any event but a discovery batch proves the in-flight continue arrived; an idle event ends it."""
        inflight = self.inflight
        if inflight is not None and kind is not ev.DiscoveryBatch:
            inflight.progress = True
            if kind in _IDLE_EVENTS:
                self.inflight = None

    def expects_busy(self) -> bool:
        """A "continue while busy" now answers our own re-send (§7.1): expected, not an event."""
        return self.inflight is not None and self.inflight.resent

    def after_reattach(self, gen: int) -> Optional[Dict[str, Any]]:
        """The request to write on connection ``gen`` once the replay was read: a held continue, or a lost one
        (written on an older connection and no event since) sent again, once per re-attach. None: nothing."""
        inflight = self.inflight
        if inflight is None or self.failed or self.completed.is_set():
            return None
        if inflight.gen is None:
            log.debug("sending held continue for %s", self.session_id)
        elif inflight.gen < gen and not inflight.progress:
            log.info("continue for %s was lost in the drop: sending it again", self.session_id)
            inflight.resent = True
            self.stats.continues_resent += 1
        else:
            return None
        inflight.gen = gen
        return inflight.request

    def fail(self, error: BaseException) -> None:
        """The route is over with ``error`` (raised by its consumer and by later sends)."""
        self.failed = True
        self.inflight = None
        self.error = error
        self.sink.put(error)


class ControlConnection:
    """Owns one control WebSocket and its reader thread (``simclient-control-<id>``).

    ``parallel=False``: one session, top-level ``seqId`` cursors, ``attachBacktestSession`` + resume
    (:class:`SingleMode`). ``parallel=True``: N sub-sessions multiplexed as ``sessionEventV2``,
    ``attachParallelControlSessionV2`` (:class:`ParallelMode`).

    Threads: the reader thread owns the socket and every route's cursor; ``send_continue``, ``send_request`` and
    ``close`` may be called from any thread; each route's ``sink`` has one consumer (its session's thread).
    """

    def __init__(self, url: str, api_key: Optional[str], config: ClientConfig, create: Any, parallel: bool,
                 subscriptions_ready: Optional[Callable[[], bool]] = None,
                 connection_factory: Optional[ConnectionFactory] = None,
                 create_progress: Optional[Any] = None):
        self.url = url
        #: :class:`simclient.create_progress.CreateProgress` of a parallel create (its callbacks), or None
        self.create_progress = create_progress
        #: ``factory(url, api_key, timeout)``: the control and the session's subscriptions connect through it.
        self.connection_factory: ConnectionFactory = connection_factory or connection_factory_for(config)
        if config.log_frames:  # ClientConfig.log_frames: every socket opened through the factory logs its frames
            from .framelog import frame_logging_factory

            self.connection_factory = frame_logging_factory(self.connection_factory, api_key)
        self._api_key = api_key
        self.config = config
        self.parallel = parallel
        #: what differs between one session and a parallel run: create, attach, routing, "finished", close, and
        #: the encoding of continues
        self.mode: _Mode = ParallelMode(self) if parallel else SingleMode(self)
        self._create_request = wire.encode_create(create, parallel=parallel)
        self.resumable = create.disconnect_timeout_secs > 0
        self.stats = ControlStats()
        self.routes: Dict[str, Route] = {}
        self.control_session_id: Optional[str] = None
        self.subscriptions_ready = subscriptions_ready or (lambda: True)
        self.v1 = wire.V1Form()  # which §3.5 form the *SessionV1 requests take (decided in protocol.py)

        self._lock = threading.RLock()
        self._conn: Optional[ConnectionLike] = None
        self._gen = 0
        self._up = False
        self._closing = threading.Event()
        self._close_requested = False
        self._created = threading.Event()
        self._create_error: Optional[BaseException] = None
        self._fatal: Optional[BaseException] = None
        self._errors_seen: Dict[Tuple[str, str], int] = {}  # (§10.1 kind, where) -> count, for "retry once"
        self._sup = ReconnectSupervisor(config, "control connection", self._closing, logger=log)
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
            up = self._up and self._conn is not None
            # the generation is set even if the write fails: the re-attach logic then decides
            route.inflight = InFlight(request, self._gen if up else None)
            if up and self._conn is not None:
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

    def close(self, timeout: Optional[float] = None, wait_acks: bool = True) -> None:
        """Close gracefully within ``timeout`` in total (default ``close_timeout``): single sessions send
        ``closeBacktestSession`` and wait for ``success``; parallel runs send ``closeSessionV1`` for unfinished
        sub-sessions and (``wait_acks``) wait for each one's ``success`` while the link is up: a socket torn down
        with unread replies can lose the last requests to a reset, which left a sub-session running on the server
        until its disconnect timeout. Then the reader thread is joined. The whole close shares one ``timeout``."""
        timeout = self.config.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            self._close_requested = True
        acked = False
        if self._thread.is_alive() and self._created.is_set():
            closing = [r for r in self.routes.values() if not r.completed.is_set() and not r.failed]
            route = self.mode.send_close()
            if route is not None:
                acked = route.acked.wait(max(0.0, deadline - time.monotonic()))
            elif wait_acks and self.parallel:
                for r in closing:
                    # no ack can come over a link that is down: the server then drops the sessions by itself
                    while not r.acked.wait(max(0.0, min(0.05, deadline - time.monotonic()))):
                        if not self._up or not self._thread.is_alive() or time.monotonic() >= deadline:
                            break
        if threading.current_thread() is self._thread:
            self._closing.set()
            return
        if acked:  # the reader sees the ack, closes the socket gracefully and exits by itself
            self._thread.join(max(0.05, deadline - time.monotonic()))
        self._closing.set()
        with self._lock:
            conn = self._conn
        if conn is not None and self._thread.is_alive():
            conn.abort()
        self._thread.join(max(0.05, deadline - time.monotonic()))

    # ================================================================== reader thread

    def _run(self) -> None:
        try:
            self._main()
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - everything reaches the user through the queues
            if not isinstance(exc, SimclientError):
                log.exception("control reader crashed")
                crash = InternalError(f"control reader crashed: {type(exc).__name__}: {self._r(exc)}")
                crash.__cause__ = exc
                exc = crash
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
        sup = self._sup
        while True:
            self._raise_if_closing()
            sup.begin_attempt()
            self._show_reconnecting(sup.attempt)
            try:
                conn, reader = self._attempt()
            except (TransportError, _Lost) as exc:
                self._raise_if_closing()
                reason = self._r(exc)
                if isinstance(exc, TransportError) and exc.error is not None:
                    raise exc.error from None  # no retry can fix it (bad URL, certificate, redirect, 4xx upgrade)
                if isinstance(exc, TransportError) and exc.terminal:
                    raise ConnectionLostError(f"server closed the control connection with code {exc.close_code}",
                                              sup.history + [(sup.attempt, reason)]) from None
                sup.retry(reason)
                continue
            sup.connected()
            self._show_reconnecting(0)
            try:
                lost = self._message_loop(conn, reader)
            except BaseException:
                conn.release()  # fatal mid-run (terminal control error, close code 4xxx): _run no longer sees it
                raise
            finally:
                with self._lock:
                    self._up = False
                    self._conn = None
            if lost is None:
                conn.close(timeout=min(1.0, self.config.close_timeout))
                return
            conn.release()
            self._raise_if_closing()
            if self._created.is_set() and not self.resumable:
                raise ConnectionLostError(
                    "control connection lost and the session cannot resume (created with disconnect_timeout_secs=0)")
            with self._lock:
                self.stats.reconnects += 1
                for route in self.routes.values():
                    route.stats.control_reconnects += 1
            sup.retry(lost)

    def _raise_if_closing(self) -> None:
        if self._closing.is_set():
            raise Stopped()

    def _show_reconnecting(self, attempt: int) -> None:
        """``SessionStats.reconnecting_attempt`` of every route (a re-attach, not the first connect): the progress
        display's "reconnecting (attempt k/n)"; 0 once connected."""
        if self._created.is_set():
            for route in list(self.routes.values()):
                route.stats.reconnecting_attempt = attempt

    # ---------------------------------------------------------------- reconnect

    def _attempt(self) -> Tuple[ConnectionLike, LinkReader]:
        """One connection attempt: connect and run the handshake. Raises TransportError/_Lost (transient), a
        SimclientError (terminal), or Stopped."""
        self._raise_if_closing()
        conn: Optional[ConnectionLike] = None
        try:
            conn = self.connection_factory(self.url, self._api_key, self.config.connect_timeout)
            with self._lock:
                self._conn = conn  # so close() can abort a handshake in progress
                self._gen += 1
            if self._closing.is_set():
                raise Stopped()
            reader = LinkReader(conn, self.config, self._closing, self._poll)
            try:
                self._handshake(conn, reader)
            except NoAnswer as exc:
                if not self._created.is_set():
                    # The connection stayed up (pongs came back) but nobody answered: a retry would send the
                    # create again, and on a real service each create may start a session. One attempt, one error.
                    raise Timeout(f"the server did not answer the create within create_timeout="
                                  f"{exc.timeout:g}s (the connection stayed up; the create is not sent again)"
                                  ) from None
                raise _Lost(str(exc)) from None
        except BaseException:
            with self._lock:
                if self._conn is conn:
                    self._conn = None
            if conn is not None:
                conn.release()
            raise
        return conn, reader

    # ---------------------------------------------------------------- handshakes

    def _handshake(self, conn: ConnectionLike, reader: LinkReader) -> None:
        if not self._created.is_set():
            with self._lock:  # a drop mid-create retries the create from scratch
                self.routes = {}
                self.mode.reset()
            try:
                conn.send_json(self._create_request)
            except SendTimeout as exc:  # the connection is up but the server does not read: one attempt
                raise Timeout(f"create: {exc}") from None
            self.mode.create(reader)
            with self._lock:
                self._up = True
            self._created.set()
            self._sup.made_progress = True  # a session exists now: this connection was worth it
        else:
            self.mode.attach(reader)

    def _read_until(self, reader: LinkReader, timeout: float, stop: Callable[[Any, Optional[int]], bool],
                    what: str) -> None:
        """Read frames during a handshake until ``stop(message, seq)`` returns True; every message must come
        within ``timeout`` of the previous one (else :class:`NoAnswer`). Keepalive: the reader's."""

        def handle(opcode: int, payload: Any) -> bool:
            if opcode != OPCODE_TEXT and opcode != OPCODE_BINARY:
                return False
            decoded = self._decode(payload)
            return decoded is not None and stop(decoded.message, decoded.seq_id)

        reader.wait_for(timeout, handle, what, per_message=True)

    def _error_action(self, error: wire.BacktestError, phase: str, where: str) -> str:
        """The §10.1 action for ``error`` (:data:`simclient.protocol.ERROR_ACTIONS`), counting repeats per
        ``where`` (a handshake, a (sub-)session id, the control connection)."""
        key = (wire.error_kind(error), where)
        seen = self._errors_seen.get(key, 0)
        self._errors_seen[key] = seen + 1
        return wire.error_action(error, phase, repeat=seen > 0)

    def _handshake_error(self, error: wire.BacktestError, what: str) -> Optional[BaseException]:
        """Classify an ``error`` answering a handshake (§10.1): the exception to raise, or None to deliver it."""
        action = self._error_action(error, wire.PHASE_HANDSHAKE, what)
        if action == wire.ACTION_DELIVER:
            return None
        if action == wire.ACTION_RECONNECT:
            once = " (retrying once)" if wire.error_kind(error) == wire.KIND_RETRY_ONCE else ""
            return _Lost(f"{what}: {self._r(error.message)}{once}")
        cls = InvalidRequestError if error.is_invalid_request else SessionError
        return cls(error, f"{what} failed: {self._r(error.message)}")

    def _after_reattach(self) -> None:
        """The replay has been read: send held continues, re-send lost ones (§7.1), then accept sends."""
        with self._lock:
            conn = self._conn
            assert conn is not None
            for route in self.routes.values():
                request = route.after_reattach(self._gen)
                if request is not None:
                    route.continues_sent += 1
                    conn.send_json(self.v1.shape(request, self._gen))
            self._up = True

    # ---------------------------------------------------------------- the message loop

    def _message_loop(self, conn: ConnectionLike, reader: LinkReader) -> Optional[str]:
        """Read until the work is done (None) or the connection is lost (the reason)."""
        recv_many, route, closing, decode = reader.recv_many, self.mode.route, self._closing.is_set, wire.decode_response
        stats = self.stats
        while True:
            if closing():
                return None
            if self._maybe_done:
                self._maybe_done = False
                if self._finished():
                    return None
            try:
                frames = recv_many()  # every whole frame already read, in order, or none after the poll
                for opcode, payload in frames:
                    if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                        stats.frames_received += 1
                        try:
                            decoded = decode(payload)
                        except ProtocolError as exc:
                            self._discard(exc)
                            continue
                        route(decoded.seq_id, decoded.message)
                        if self._maybe_done:  # done with this frame: the rest of the batch is not read, as before
                            self._maybe_done = False
                            if self._finished():
                                return None
                if not frames and self._maybe_done is False and self.routes and self._finished():
                    return None
            except Stopped:
                return None
            except TransportError as exc:
                if self._closing.is_set():
                    return None
                if exc.terminal:
                    raise ConnectionLostError(f"server closed the control connection with code {exc.close_code}") from None
                log.info("control connection lost: %s", exc)
                return self._r(exc)
            except _Lost as exc:
                log.info("control: %s", exc)
                return self._r(exc)

    def _finished(self) -> bool:
        """All work done (see the mode's ``finished``)."""
        return bool(self.routes) and self.mode.finished()

    @property
    def _route_single(self) -> Callable[[Optional[int], Any], None]:
        """The frame router (kept under this name for benchmarks/bench_hotpath.py)."""
        return self.mode.route

    def _decode(self, payload: Any) -> Optional[wire.Frame]:
        """The frame, or None (counted and logged) when it does not decode."""
        try:
            return wire.decode_response(payload)
        except ProtocolError as exc:
            self._discard(exc)
            return None

    def _discard(self, exc: ProtocolError) -> None:
        self.stats.frames_discarded += 1
        for route in self.routes.values():
            route.stats.frames_discarded += 1
        if self._api_key and self._api_key in str(exc):
            exc = ProtocolError(self._r(exc))
        log.warning("discarding undecodable control frame: %s", exc)

    def _v1_form_error(self, err: wire.BacktestError, refused: Optional[Route] = None) -> bool:
        """A "duplicate field" answering our superset ``*SessionV1`` form (§3.5): switch to the minimal form (see
        :class:`protocol.V1Form`) and re-send, once, what is unanswered on this socket (``refused``: the route the
        server named, whose in-flight continue the refusal answers). True when consumed. Called before the §10.1
        error table, which would take the ``invalidRequest`` for terminal."""
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
                inflight = route.inflight
                if (inflight is not None and inflight.gen == self._gen
                        and (not inflight.progress or route is refused)):
                    again: Optional[Dict[str, Any]] = inflight.request
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
        """Cursor, replay dedup, the stale-session checks, §7.1 bookkeeping, then the route's queue."""
        if route.failed and route.error is not None and type(route.error) is ProtocolError:
            return  # a stale route: nothing more of it is data
        if seq is not None:
            if route.attach_cursor is not None and not self._check_resume_point(route, seq):
                return
            last = route.last_seq
            if last is not None and seq <= last:
                route.stats.replays_dropped += 1
                return
            route.last_seq = seq
        kind = type(event)
        if kind in _SLOT_EVENTS and route.range is not None and not route.range[0] <= event.slot <= route.range[1]:
            self._stale(route, f"the server sent {type(event).__name__}(slot={event.slot}) outside the session's "
                               f"range {list(route.range)}")
            return
        if kind is wire.Success:
            route.acked.set()
            self._maybe_done = True
            return
        if kind is wire.Unknown:
            log.debug("ignoring unknown method %r for %s", self._r(event.method), route.session_id)
            return
        if route.inflight is not None:
            route.saw_event(kind)
        if kind is ev.ServerError and self._error_consumed(route, event.error):
            return
        if kind is ev.Completed:
            route.completed.set()
            self._maybe_done = True
        route.sink.put(event)
        self._sup.made_progress = True  # new (not replayed) data: the outage, if any, is over

    def _check_resume_point(self, route: Route, seq: int) -> bool:
        """The first sequenced frame after an attach (see the module docstring); False when ``route`` failed."""
        cursor = route.attach_cursor
        route.attach_cursor = None
        if cursor is not None and seq < cursor:
            self._stale(route, f"after re-attaching at seqId {cursor} the server resumed at seqId {seq}, before the "
                               "cursor (PROTOCOL §7: the replay starts after it)")
            return False
        return True

    def _stale(self, route: Route, what: str) -> None:
        """The server's stream for ``route`` is not this session's: fail the route loudly (single session: the
        whole connection, by raising) and deliver nothing more of it."""
        exc = ProtocolError(f"session {route.session_id}: {what}; this is not the session this client created "
                            "(a restarted server that reused the id?), so nothing of it is delivered")
        log.error("%s", exc)
        if not self.parallel:
            raise exc
        self._maybe_done = True
        route.fail(exc)

    def _error_consumed(self, route: Route, err: wire.BacktestError) -> bool:
        """Handle a server error for ``route``; True when it must not be delivered as a ServerError event."""
        if self.parallel and self._v1_form_error(err, route):  # a server that routes the refusal to the sub-session
            return True
        if route.expects_busy() and wire.is_continue_busy(err):
            log.debug("expected 'continue while busy' after re-sending a continue for %s", route.session_id)
            return True
        action = self._error_action(err, wire.PHASE_SESSION, route.session_id)
        if action == wire.ACTION_DELIVER:
            return False  # non-terminal (the first "retry once" error too): a ServerError event
        if action == wire.ACTION_RECONNECT:
            raise _Lost(f"server: {self._r(err.message)}")
        self._maybe_done = True
        cls = InvalidRequestError if err.is_invalid_request else SessionError
        route.fail(cls(err, f"session {route.session_id} failed: {self._r(err.message)}"))
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
                route.fail(fresh_error(exc))  # one object per (sub-)session, each raised in its own thread

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
            raise fresh_error(self._fatal)


class _Mode:
    """What differs between a single session and a parallel run on one control connection: the create and attach
    handshakes, routing a decoded frame to its route, when the work is "finished", and the close requests. The
    connection (``cc``) owns the state the modes share (routes, cursors, the reader); a mode owns only its own
    handshake buffers."""

    parallel = False

    def __init__(self, cc: "ControlConnection"):
        self.cc = cc

    def reset(self) -> None:
        """A create is (re)sent: forget what an earlier attempt buffered."""

    def create(self, reader: LinkReader) -> None:
        raise NotImplementedError

    def attach(self, reader: LinkReader) -> None:
        raise NotImplementedError

    def route(self, seq: Optional[int], msg: Any) -> None:
        raise NotImplementedError

    def finished(self) -> bool:
        raise NotImplementedError

    def send_close(self) -> Optional[Route]:
        """Write the close request(s); the route whose ``acked`` to wait for, if any."""
        raise NotImplementedError

    def encode_continue(self, session_id: str, cont: Any) -> Dict[str, Any]:
        """The wire request of ``cont`` for (sub-)session ``session_id``."""
        raise NotImplementedError

    def encode_continue_to(self, session_id: str, slot: int, batch_index: int,
                           extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """``extra``: ``continueTo`` fields newer than this SDK, merged into the params (§3.3)."""
        raise NotImplementedError


class SingleMode(_Mode):
    """One session: top-level ``seqId`` cursor, ``attachBacktestSession`` + ``resumeAttachedSession``."""

    def __init__(self, cc: "ControlConnection"):
        super().__init__(cc)
        self.prebuffer: List[Tuple[Optional[int], Any]] = []  # frames before sessionCreated

    def reset(self) -> None:
        self.prebuffer = []

    def create(self, reader: LinkReader) -> None:
        cc = self.cc
        self.prebuffer = []

        def stop(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionCreated):
                route = Route(msg.session_id, resolve_rpc_endpoint(cc.url, msg.rpc_endpoint), msg.task_id)
                with cc._lock:
                    cc.routes[msg.session_id] = route
                cc._thread.name = f"simclient-control-{_short(msg.session_id)}"
                log.info("session %s created (rpc %s)", msg.session_id, route.rpc_endpoint)
                for pseq, pmsg in self.prebuffer:
                    cc._deliver(route, pseq, pmsg)
                self.prebuffer = []
                return True
            if isinstance(msg, ev.ServerError):
                err = cc._handshake_error(msg.error, "create")
                if err is not None:
                    raise err
            if isinstance(msg, (ev.Event, wire.Success)):
                self.prebuffer.append((seq, msg))
            return False

        cc._read_until(reader, cc.config.create_timeout, stop, "sessionCreated")

    def attach(self, reader: LinkReader) -> None:
        cc = self.cc
        conn = reader.conn
        route = next(iter(cc.routes.values()))
        route.attach_cursor = route.last_seq
        conn.send_json(wire.encode_attach(route.session_id, route.last_seq))

        def attached(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionAttached):
                return True
            if isinstance(msg, ev.ServerError):
                err = cc._handshake_error(msg.error, "attach")
                if err is not None:
                    raise err
            self.route(seq, msg)
            return False

        cc._read_until(reader, cc.config.handshake_timeout, attached, "sessionAttached")
        log.info("session %s re-attached after seq %s", route.session_id, route.last_seq)
        # Subscriptions first (PROTOCOL §7 step 4), reading the replay meanwhile (the reader keeps pinging).
        timeout = cc.config.handshake_timeout
        deadline = time.monotonic() + timeout
        while not cc.subscriptions_ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Lost(f"subscriptions did not come back within {timeout:g}s of the re-attach")
            frame = reader.recv(min(left, 0.02))
            if frame is not None and frame[0] in (OPCODE_TEXT, OPCODE_BINARY):
                decoded = cc._decode(frame[1])
                if decoded is not None:
                    self.route(decoded.seq_id, decoded.message)
        conn.send_json(wire.encode_resume())

        def resumed(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.Success):
                if seq is not None:
                    if route.attach_cursor is not None:
                        cc._check_resume_point(route, seq)
                    if route.last_seq is not None and seq <= route.last_seq:
                        return False  # an old, replayed ack
                    route.last_seq = seq
                return True
            self.route(seq, msg)
            return False

        cc._read_until(reader, cc.config.handshake_timeout, resumed, "resume ack")
        cc._after_reattach()

    def route(self, seq: Optional[int], msg: Any) -> None:
        cc = self.cc
        if type(msg) in _NOT_SINGLE_EVENTS:
            # a replayed sessionCreated (it is sequenced, §2.1), or a parallel-mode message: not an event (L6)
            log.debug("ignoring unexpected control message %s", cc._r(repr(msg)))
            return
        route = next(iter(cc.routes.values()), None)
        if route is None:
            self.prebuffer.append((seq, msg))
            return
        cc._deliver(route, seq, msg)

    def finished(self) -> bool:
        """The route failed, or the close we asked for was acknowledged."""
        route = next(iter(self.cc.routes.values()))
        return route.failed or (self.cc._close_requested and route.acked.is_set())

    def send_close(self) -> Optional[Route]:
        cc = self.cc
        route = next(iter(cc.routes.values()), None)
        if route is not None and not route.failed and cc.send_request(wire.encode_close()):
            return route
        return None

    def encode_continue(self, session_id: str, cont: Any) -> Dict[str, Any]:
        return wire.encode_continue(cont)

    def encode_continue_to(self, session_id: str, slot: int, batch_index: int,
                           extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        return wire.encode_continue_to(slot, batch_index, extra)


class ParallelMode(_Mode):
    """N sub-sessions multiplexed as ``sessionEventV2``: per-route ``seq_id`` cursors,
    ``attachParallelControlSessionV2`` and a ping as the replay barrier."""

    parallel = True

    def __init__(self, cc: "ControlConnection"):
        super().__init__(cc)
        self.early: Dict[str, List[Tuple[int, Any]]] = {}  # events for ids not announced yet

    def reset(self) -> None:
        self.early = {}
        if self.cc.create_progress is not None:
            self.cc.create_progress.new_attempt()

    def create(self, reader: LinkReader) -> None:
        cc = self.cc
        pending: Dict[str, Route] = {}
        progress = cc.create_progress

        def stop(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.SessionCreated):
                route = Route(msg.session_id, resolve_rpc_endpoint(cc.url, msg.rpc_endpoint), msg.task_id)
                pending[msg.session_id] = route
                with cc._lock:
                    cc.routes[msg.session_id] = route
                for eseq, event in self.early.pop(msg.session_id, []):
                    cc._deliver(route, eseq, event)
                log.debug("sub-session %s created (%d so far)", msg.session_id, len(pending))
                if progress is not None:
                    progress.session_created(msg.session_id, route.rpc_endpoint, msg.task_id)
                return False
            if progress is not None:  # the server's startup statuses, while the create streams
                if type(msg) is wire.SessionEventV2 and type(msg.event) is ev.Status:
                    progress.status(msg.event.status, msg.session_id)
                elif type(msg) is ev.Status:
                    progress.status(msg.status, None)
            if isinstance(msg, wire.SessionsCreatedV2):
                self._bind(msg)
                return True
            if isinstance(msg, ev.ServerError):
                err = cc._handshake_error(msg.error, "parallel create")
                if err is not None:
                    raise err
                log.warning("non-terminal parallel control error during create: %s", cc._r(msg.error.message))
                return False
            self.route(None, msg)  # sessionEventV2 of known ids, or buffered for ids not announced yet
            return False

        cc._read_until(reader, cc.config.create_timeout, stop, "sessionsCreatedV2")

    def _bind(self, msg: wire.SessionsCreatedV2) -> None:
        cc = self.cc
        n = len(msg.session_ids)
        if msg.start_slots is None or msg.end_slots is None or len(msg.start_slots) != n or len(msg.end_slots) != n:
            raise ServerTooOldError(
                "server did not report per-sub-session ranges in sessionsCreatedV2 "
                f"(session_ids={n}, start_slots={_len(msg.start_slots)}, end_slots={_len(msg.end_slots)}): "
                "the server is too old for the multiplexed parallel client")
        with cc._lock:
            listed = {}
            for sid, start, end in zip(msg.session_ids, msg.start_slots, msg.end_slots):
                route = cc.routes.get(sid)
                if route is None:  # listed but never announced: still routable, endpoint by convention
                    route = Route(sid, resolve_rpc_endpoint(cc.url, f"/backtest/{sid}"), None)
                    for eseq, event in self.early.pop(sid, []):
                        cc._deliver(route, eseq, event)
                route.range = (start, end)
                listed[sid] = route
            dropped = set(cc.routes) - set(listed)
            if dropped:
                log.warning("ignoring sub-sessions not listed in sessionsCreatedV2: %s", sorted(dropped))
            cc.routes = listed
            self.early.clear()
            cc.control_session_id = msg.control_session_id
        cc._thread.name = f"simclient-control-{_short(msg.control_session_id)}"
        log.info("parallel run %s created: %d sub-sessions", msg.control_session_id, n)

    def attach(self, reader: LinkReader) -> None:
        cc = self.cc
        assert cc.control_session_id is not None
        conn = reader.conn
        with cc._lock:
            cursors = {sid: r.last_seq for sid, r in cc.routes.items() if r.last_seq is not None}
            for sid, cursor in cursors.items():
                cc.routes[sid].attach_cursor = cursor
        conn.send_json(wire.encode_attach_parallel(cc.control_session_id, cursors))

        def attached(msg: Any, seq: Optional[int]) -> bool:
            if isinstance(msg, wire.ParallelSessionAttachedV2):
                return True
            if isinstance(msg, ev.ServerError):
                err = cc._handshake_error(msg.error, "parallel attach")
                if err is not None:
                    raise err
                log.warning("non-terminal parallel control error during attach: %s", cc._r(msg.error.message))
                return False
            self.route(None, msg)
            return False

        cc._read_until(reader, cc.config.handshake_timeout, attached, "parallelSessionAttachedV2")
        log.info("parallel control %s re-attached", cc.control_session_id)
        # The replay has no end marker. A ping sent now is read by the server after the attach it answered with the
        # replay, so its pong arrives after the replayed frames: once it is back, the replay has been read.
        token = f"simclient-replay-barrier-{cc._gen}".encode()
        conn.ping(token)

        def barrier(opcode: int, payload: Any) -> bool:
            if opcode == OPCODE_PONG:
                return bool(payload == token)
            if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                decoded = cc._decode(payload)
                if decoded is not None:
                    self.route(None, decoded.message)
            return False

        reader.wait_for(cc.config.handshake_timeout, barrier, "pong for the replay barrier")
        cc._after_reattach()

    def route(self, seq: Optional[int], msg: Any) -> None:
        cc = self.cc
        if type(msg) is wire.SessionEventV2:
            route = cc.routes.get(msg.session_id)
            if route is not None:
                cc._deliver(route, msg.seq_id, msg.event)
            elif not cc._created.is_set():
                self.early.setdefault(msg.session_id, []).append((msg.seq_id, msg.event))
            else:
                log.debug("event for unknown sub-session %s ignored", msg.session_id)
            return
        if isinstance(msg, ev.ServerError):  # top-level: it concerns the whole run
            if cc._v1_form_error(msg.error):  # the §3.5 form fallback, before the error table
                return
            action = cc._error_action(msg.error, wire.PHASE_CONTROL, "control")
            if action == wire.ACTION_TERMINAL:
                raise SessionError(msg.error, f"parallel control session failed: {cc._r(msg.error.message)}")
            if action == wire.ACTION_RECONNECT:
                raise _Lost(f"server: {cc._r(msg.error.message)}")
            log.warning("non-terminal parallel control error: %s", cc._r(msg.error.message))
            return
        if isinstance(msg, wire.Unknown):
            log.debug("ignoring unknown control method %r", cc._r(msg.method))
            return
        log.debug("ignoring unexpected control message %s", cc._r(repr(msg)))

    def finished(self) -> bool:
        """Every sub-session completed or failed."""
        return all(r.completed.is_set() or r.failed for r in self.cc.routes.values())

    def send_close(self) -> Optional[Route]:
        cc = self.cc
        for route in cc.routes.values():
            if not route.completed.is_set() and not route.failed:
                cc.send_request(wire.encode_close_v1(route.session_id))
        return None  # closeSessionV1 acks carry no driver signal: nothing to wait for

    def encode_continue(self, session_id: str, cont: Any) -> Dict[str, Any]:
        return wire.encode_continue_v1(session_id, cont)

    def encode_continue_to(self, session_id: str, slot: int, batch_index: int,
                           extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        return wire.encode_continue_to_v1(session_id, slot, batch_index, extra)


def _short(session_id: str) -> str:
    return session_id[-8:]


def _len(x: Optional[Tuple[Any, ...]]) -> str:
    return "missing" if x is None else str(len(x))
