"""Data-plane subscriptions: one worker thread per subscription (``simclient-sub-<session>-<kind>``).

A worker owns one WebSocket to the session's endpoint, subscribes (``transactionSubscribe`` for a set of programs,
or one ``accountDiffSubscribe`` per program on the same socket), and puts events into the session's queue.
After a drop it reconnects (under the :class:`~simclient.reconnect.ReconnectSupervisor` policy the control
connection uses: a resubscribe that delivers no new notification spends the budget) and resubscribes with
``replayFromSlot`` = the last delivered slot; the server replays that slot inclusively (§9.3), so duplicates are
dropped by signature (transactions) or by ``(slot, account, signature)`` (diffs). Only the keys of the newest
slot are kept: a replay starts at that slot, so older keys can never repeat.

End of stream (§9.5): a ``subscriptionComplete`` for every subscription id (or one without an id: the whole
socket), a ``null`` result for every subscription id (older servers), a normal close (1000) once the session
completed, or ``config.eos_silence`` seconds without a notification once the session completed while connected (only
against a server not yet seen sending an end-of-stream marker: see ``_MARKER_SERVERS``).
A ``subscriptionComplete`` that cannot be the end (:func:`protocol.is_early_complete`: the subscription was made
before the session's data plane was up) is answered by re-subscribing from the same cursor after a backoff, as one
failed attempt of the subscription's :class:`~simclient.reconnect.ReconnectSupervisor` (budget, backoff and
``reconnect_max_total`` shared with its reconnects); if the session completes during that backoff, it was the
end after all.
A replay-window refusal (-32016) fails the subscription loudly with :class:`SubscriptionError`: the captured
stream would have a gap. A notification for a slot outside the session's range fails it with
:class:`ProtocolError` (the server's session under that id is not ours; see :mod:`simclient.control`).

Step barrier (PROTOCOL §9 "Ordering across sockets"): :meth:`Subscription.request_barrier` (called by the session's
consumer when it dequeues a step-ending control event) sends a WebSocket ping whose payload carries a generation
number; the worker, on reading the matching pong, queues :class:`BarrierPassed` behind every notification it read
before it. After a reconnect the worker sends the ping again once it has resubscribed, so the replay from the cursor
precedes the marker. A barrier whose pong does not come within ``keepalive_deadline`` counts as a dead connection.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from urllib.parse import urlsplit
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from . import protocol as wire
from .compression import new_inflater
from .framelog import logging_inflater
from .config import ClientConfig
from .errors import ConnectionLostError, InternalError, ProtocolError, SimclientError, SubscriptionError
from .kinds import ACCOUNT_DIFFS as ACCOUNT_DIFFS  # re-exported: older imports take them from here
from .kinds import TRANSACTIONS as TRANSACTIONS
from .kinds import kind as _kind
from .reconnect import (
    ConnectionFactory,
    ConnectionLike,
    LinkReader,
    NoAnswer,
    ReconnectSupervisor,
    Stopped,
    batch_reader,
    connection_factory_for,
)
from .stats import SessionStats
from .transport import OPCODE_BINARY, OPCODE_PONG, OPCODE_TEXT, Closed, TransportError
from .urls import http_to_ws_url

log = logging.getLogger("simclient.subscriptions")

#: Servers (``host:port``) seen ending a stream with an explicit marker (``subscriptionComplete`` or a ``null``
#: result). Against them silence after ``completed`` is never taken as the end of stream: a server that sends
#: markers sends one, and a stall must not cut the tail off a capture (the drain's own deadline,
#: ``completion_drain_timeout``, still bounds the wait, loudly). Process-wide: learnt once, kept for the process.
_MARKER_SERVERS: Set[str] = set()

#: Ping payload prefix of a step barrier; the generation number follows in ASCII.
BARRIER_PREFIX = b"simclient-step-"


class EndOfStream:
    """Queue marker: ``subscription`` reached its end of stream."""

    __slots__ = ("subscription",)

    def __init__(self, subscription: "Subscription"):
        self.subscription = subscription


class BarrierPassed:
    """Queue marker: ``subscription`` read the pong of step barrier ``generation``, so every notification it read
    before that pong is already queued in front of this marker."""

    __slots__ = ("subscription", "generation")

    def __init__(self, subscription: "Subscription", generation: int):
        self.subscription = subscription
        self.generation = generation


class SlotMark:
    """Queue marker put before a subscription's first event of a new slot: a consumer that reads it has seen every
    event of that subscription at lower slots (what :attr:`Session.delivered_through` is computed from)."""

    __slots__ = ("subscription", "slot")

    def __init__(self, subscription: "Subscription", slot: int):
        self.subscription = subscription
        self.slot = slot


class ReconnectCoordinator:
    """Lets at most one subscription of a parallel batch reconnect at a time while its siblings stream.

    Turns are handed out first come, first served: with dozens of subscriptions reconnecting after a common outage,
    a semaphore let some of them lose the race again and again (waits of 10-16 s were measured in the chaos suite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: Deque[threading.Event] = deque()

    def acquire(self, stop: threading.Event, skip: Optional[threading.Event] = None) -> Optional[bool]:
        """Wait for our turn: True (now holding it), False once ``stop`` is set, None once ``skip`` is set (go on
        without a turn); holding nothing in both latter cases."""
        turn = threading.Event()
        with self._lock:
            if not self._busy:
                self._busy = True
                return True
            self._waiting.append(turn)
        while not turn.wait(0.1):
            left = False if stop.is_set() else None if skip is not None and skip.is_set() else True
            if left is not True:
                with self._lock:
                    if turn in self._waiting:
                        self._waiting.remove(turn)
                        return left
                break  # handed to us just now: pass it on below
        if stop.is_set():
            self.release()
            return False
        return True

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the turn passes directly to the longest waiter
            else:
                self._busy = False


class _Lost(Exception):
    pass


_Stopped = Stopped


class _EarlyComplete(Exception):
    """``subscriptionComplete`` before the session's data plane was up (§9.5): re-subscribe."""


_EARLY_COMPLETE_REASON = "subscriptionComplete before the session's data plane was up"


class Subscription:
    """One data-plane subscription and its worker thread."""

    def __init__(self, kind: str, program_ids: Sequence[str], rpc_endpoint: str, sink: "queue.SimpleQueue[Any]",
                 config: ClientConfig, completed: threading.Event, start_slot: Optional[int], session_id: str,
                 stats: SessionStats, coordinator: Optional[ReconnectCoordinator] = None,
                 slot_range: Optional[Tuple[int, int]] = None,
                 connection_factory: Optional[ConnectionFactory] = None,
                 continue_sent: Optional[Callable[[], bool]] = None, compression: Optional[str] = None):
        spec = _kind(kind)
        programs = [str(p) for p in program_ids]
        if spec.needs_programs and not programs:
            raise ValueError("program_ids must name at least one program")
        if len(spec.requests(programs)) != 1:
            # one subscription per socket: the worker's resume cursor and dedup (last_slot) are per socket, and a
            # resubscribe replays each subscription from the cursor in turn, which would break the slot order
            raise ValueError(f"a {kind} subscription filters one address per socket, got {len(programs)}: "
                             "make one Subscription per program")
        self.kind = kind
        self.spec = spec
        self.program_ids = programs
        self.url = http_to_ws_url(rpc_endpoint)
        self._server = urlsplit(self.url).netloc  # for _MARKER_SERVERS
        self.sink = sink
        self.config = config
        self.completed = completed
        self.start_slot = start_slot
        self.session_id = session_id
        self.stats = stats
        self.coordinator = coordinator
        self.slot_range = slot_range  # the session's range: a notification outside it is not this session's
        #: True once a continue was sent on this (sub-)session (None: assume so, i.e. never the §9.5 trap)
        self.continue_sent: Callable[[], bool] = continue_sent or (lambda: True)
        self._early_ended: Set[int] = set()  # end markers read while waiting for the acks
        self._early_trap = False  # one of them was the §9.5 "data plane not up yet" answer
        self._early_completes = 0
        #: §9.4: "zstd" asks the server for compressed frames; ``_inflate`` is the current connection's decompressor
        #: (a fresh one per connection, None when plain): see :mod:`simclient.compression`
        self.compression = compression
        self._inflate: Optional[Callable[[Any], Any]] = None
        self.ready = threading.Event()  # up, or finished / failed (gating waits on this)
        self.up = False
        self.done = False
        self.error: Optional[BaseException] = None
        self.last_slot: Optional[int] = None
        self._seen: Set[Any] = set()
        self._stop = threading.Event()
        self._conn: Optional[ConnectionLike] = None
        #: subscribed at least once (the step barrier skips a subscription that never was: it owes nothing yet)
        self.has_been_up = False
        self._connect: ConnectionFactory = connection_factory or connection_factory_for(config)
        self._sup = ReconnectSupervisor(config, f"{kind} subscription of session {session_id}", self._stop,
                                        logger=log)
        self._lost_reason = "connection lost"
        convert: Callable[..., Any] = spec.convert if spec.bind is None else spec.bind(programs)
        #: (result, frame) → event: a kind whose converter takes the frame may defer fields (events._Deferred)
        self._convert: Callable[[Any, Any], Any] = (
            convert if spec.takes_frame and spec.bind is None else lambda result, frame: convert(result))
        self._key_attr = spec.key_attr  # the event attribute that identifies it within its slot (dedup)
        self._read_frame = spec.read_frame  # the kind's reader of its common frame (None: the general path only)
        # step barrier: generation requested (consumer thread) / passed (worker thread); the lock pairs the
        # request with ``up`` so that either the consumer or the worker sends the ping of a new generation
        self._barrier_lock = threading.Lock()
        self._barrier_wanted = 0
        self._barrier_passed = 0
        self._barrier_sent_at = 0.0
        name = f"simclient-sub-{session_id[-8:]}-{spec.tag(programs)}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # ------------------------------------------------------------------ caller side

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.abort()

    def join(self, timeout: Optional[float]) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def reconnecting(self) -> bool:
        """Between connections (backoff, waiting for a turn, connecting, subscribing): neither streaming nor
        finished. Its reconnect budget bounds this state."""
        return not self.up and not self.done and self.error is None and self._thread.is_alive()

    def request_barrier(self) -> Optional[int]:
        """Start a step barrier (consumer thread): returns its generation, whose :class:`BarrierPassed` marker the
        worker will queue, or None when this subscription has ended or failed (its EndOfStream marker or error is
        queued instead). Never blocks: the ping goes out now when connected, else after the next resubscribe."""
        with self._barrier_lock:
            if self.done or self.error is not None:
                return None
            self._barrier_wanted += 1
            gen = self._barrier_wanted
            conn = self._conn if self.up else None
            if conn is not None:
                self._barrier_sent_at = time.monotonic()
        if conn is not None:
            try:
                conn.ping(BARRIER_PREFIX + str(gen).encode())
            except TransportError:
                pass  # the worker sees the loss and sends the barrier again on its next connection
        return gen

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        sup = self._sup
        try:
            first = True
            while True:
                self._check_stop()
                sup.begin_attempt()
                if not first:
                    self.stats.reconnecting_attempt = sup.attempt  # the progress display's "reconnecting (k/n)"
                try:
                    conn, ids = self._attempt(first)
                except (TransportError, _Lost) as exc:
                    self._check_stop()
                    if isinstance(exc, TransportError) and exc.error is not None:
                        raise exc.error from None  # no retry can fix it (bad URL, certificate, redirect)
                    self._retry(str(exc))
                    continue
                first = False
                sup.connected()
                self.stats.reconnecting_attempt = 0
                with self._barrier_lock:
                    self.up = True
                    self.has_been_up = True
                if not self._early_trap:  # else not up at all: the gated continue must wait for the re-subscribe
                    self.ready.set()
                early_complete = False
                try:
                    outcome = self._stream(conn, ids)
                except _EarlyComplete:
                    self.ready.clear()  # not up after all: hold the gated continue until the re-subscribe
                    conn.close(timeout=0.5)  # this socket is done either way (close is idempotent)
                    early_complete = True
                    outcome = self._after_early_complete()  # its own backoff (and the budget) instead of _retry
                except BaseException:
                    conn.release()  # stopped or failed mid-stream: the finally below hides it from _run's cleanup
                    raise
                finally:
                    self.up = False
                    self._conn = None
                if outcome:
                    conn.close(timeout=0.5)
                    self.done = True
                    self.sink.put(EndOfStream(self))
                    return
                conn.release()
                self.ready.clear()
                self.stats.subscription_reconnects += 1
                if not early_complete:
                    self._retry(self._lost_reason)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - surfaced through the session's queue
            if not isinstance(exc, SimclientError):
                log.exception("subscription worker crashed")
                crash = InternalError(f"{self.kind} subscription worker crashed: {type(exc).__name__}: {exc}")
                crash.__cause__ = exc
                exc = crash
            self.error = exc
            self.sink.put(exc)
        finally:
            self.ready.set()
            left = self._conn
            if left is not None:
                left.release()

    def _after_early_complete(self) -> bool:
        """Back off before re-subscribing. The early complete is one failed attempt of the
        :class:`~simclient.reconnect.ReconnectSupervisor` (the budget, backoff and ``reconnect_max_total`` of every
        other reconnect of this subscription). True if the session completed meanwhile: the marker was the real end
        after all."""
        self._early_completes += 1
        if self.completed.is_set():
            return True
        try:
            delay = self._sup.lost(_EARLY_COMPLETE_REASON)
        except ConnectionLostError as exc:
            raise SubscriptionError(
                f"{self.kind} subscription of session {self.session_id}: the server answered "
                f"{self._early_completes} subscribes with subscriptionComplete before the session ran a slot "
                f"({exc}); the captured stream would be empty") from exc
        log.debug("%s subscription of %s: subscriptionComplete before the data plane was up; re-subscribing in "
                  "%.2fs (%d/%d)", self.kind, self.session_id, delay, self._sup.failures,
                  self.config.reconnect_attempts)
        deadline = time.monotonic() + delay
        while not self.completed.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._stop.wait(min(left, 0.05)):
                raise _Stopped()
        return True

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped()

    def _retry(self, reason: str) -> None:
        """Back off before the next attempt; a spent budget or deadline fails the subscription."""
        try:
            self._sup.retry(reason)
        except ConnectionLostError as exc:
            raise SubscriptionError(f"{exc}; the captured stream is incomplete") from exc

    @property
    def attempts(self) -> List[Tuple[int, str]]:
        """The failed attempts of the current outage ``(attempt number, reason)``."""
        return list(self._sup.history)

    def _attempt(self, first: bool) -> Tuple[ConnectionLike, Dict[int, str]]:
        self._check_stop()
        # A completed session's subscription only fetches its tail and end of stream, and the completion drain
        # waits for it: it does not queue behind siblings that are still streaming.
        gated = False
        if not first and self.coordinator is not None and not self.completed.is_set():
            turn = self.coordinator.acquire(self._stop, self.completed)
            if turn is False:
                raise _Stopped()
            gated = turn is True
        conn: Optional[ConnectionLike] = None
        try:
            conn = self._connect(self.url, None, self.config.connect_timeout)
            self._conn = conn
            self._inflate = new_inflater(self.compression)  # never the previous connection's (§9.4)
            if self._inflate is not None and self.config.log_frames:
                self._inflate = logging_inflater(self._inflate, conn)
            if self._stop.is_set():
                raise _Stopped()
            try:
                ids = self._subscribe(conn, first)
            except NoAnswer as exc:
                raise _Lost(str(exc)) from None
            return conn, ids
        except BaseException:
            if conn is not None:
                conn.release()
            self._conn = None
            raise
        finally:
            if gated:
                self.coordinator.release()  # type: ignore[union-attr]

    def _replay_from(self, first: bool) -> Optional[int]:
        if self.last_slot is not None:
            return self.last_slot
        return None if first else self.start_slot

    def _subscribe(self, conn: ConnectionLike, first: bool) -> Dict[int, str]:
        """Send the subscribe request(s) and wait for every ack. Returns {subscription id: label}."""
        replay = self._replay_from(first)
        requests: Dict[int, str] = {}
        for i, (filter_, label) in enumerate(self.spec.requests(self.program_ids), start=1):
            conn.send_json(wire.encode_subscribe(i, self.kind, filter_, replay, self.compression))
            requests[i] = label
        ids: Dict[int, str] = {}
        early: List[Any] = []
        # Before the session's first continue, a server whose data plane is not up yet answers the subscribe with
        # an immediate subscriptionComplete (§9.5). A ping sent once every ack is in is answered after whatever the
        # server queued with them, so its pong proves that no such answer is pending: only then is the
        # subscription "up" (and the gated continue may go). One round trip, only before the first continue.
        barrier: Optional[bytes] = None

        def acked(opcode: int, payload: Any) -> bool:
            nonlocal barrier
            if opcode == OPCODE_PONG and barrier is not None and payload == barrier:
                barrier = None
                return len(ids) >= len(requests)
            if opcode != OPCODE_TEXT and opcode != OPCODE_BINARY:
                return False
            try:
                if opcode == OPCODE_BINARY and self._inflate is not None:
                    payload = self._inflate(payload)  # a server that compresses its acks too
                msg = wire.decode_subscription_frame(payload)
            except ProtocolError as exc:
                if opcode == OPCODE_BINARY and self._inflate is not None:  # (CorruptCompressedFrame included)
                    raise _Lost(self._corrupt_frame(exc)) from None
                log.warning("discarding undecodable subscription frame: %s", exc)
                return False
            if isinstance(msg, wire.SubscribeAck) and msg.request_id in requests:
                ids[msg.subscription] = requests[msg.request_id]
                if len(ids) == len(requests) and not self.continue_sent():
                    barrier = f"simclient-subscribed-{self._sup.attempts_total}".encode()
                    conn.ping(barrier)
            elif isinstance(msg, wire.RpcErrorReply):
                if msg.code == wire.REPLAY_WINDOW_ERROR_CODE:
                    raise SubscriptionError(
                        f"{self.kind} subscription of session {self.session_id} cannot resume from slot {replay}: "
                        f"{msg.message}; the captured stream is incomplete")
                raise SubscriptionError(
                    f"{self.kind} subscribe for session {self.session_id} refused: {msg.code} {msg.message}")
            elif isinstance(msg, wire.Notification):
                early.append(msg)  # a notification racing its ack: keep it
            elif isinstance(msg, wire.SubscriptionComplete):
                early.append(msg)
            return len(ids) >= len(requests) and barrier is None

        # The ack wait pings like every other wait (management may park a subscribe upgrade for ~100 s).
        reader = LinkReader(conn, self.config, self._stop, min(0.5, self.config.keepalive_interval))
        reader.wait_for(self.config.handshake_timeout, acked, "subscribe ack")
        self._early_ended = set()
        self._early_trap = False
        for msg in early:
            if isinstance(msg, wire.SubscriptionComplete):
                # judged now, before ``ready``: the gated continue cannot have been sent since the check above
                self._early_trap |= wire.is_early_complete(self.completed.is_set(), self.continue_sent())
                self._early_ended.update(requests_ids(msg, ids))
            else:
                self._on_notification(msg, ids, self._early_ended)
        log.debug("%s subscription of %s up (replayFromSlot=%s)", self.kind, self.session_id, replay)
        return ids

    def _stream(self, conn: ConnectionLike, ids: Dict[int, str]) -> bool:
        """Read notifications; True at end of stream, False when the connection was lost."""
        cfg = self.config
        ended, self._early_ended = self._early_ended, set()
        if self._early_trap:
            self._early_trap = False
            raise _EarlyComplete()
        if ended and self._complete(ids, ended, ()):
            return True
        now = time.monotonic()
        last_inbound = last_note = now
        completed_at: Optional[float] = None
        next_ping = now + cfg.keepalive_interval
        poll = min(0.25, cfg.eos_silence / 2 if cfg.eos_silence > 0 else 0.25, cfg.keepalive_interval)
        with self._barrier_lock:  # a barrier requested while we were down (or its ping lost with the old socket)
            pending = self._barrier_wanted if self._barrier_wanted > self._barrier_passed else 0
            if pending:
                self._barrier_sent_at = now
        if pending:
            conn.ping(BARRIER_PREFIX + str(pending).encode())  # after the acks: the server's replay precedes the pong
        # per-frame lookups, hoisted
        stopped, recv_many, monotonic = self._stop.is_set, batch_reader(conn), time.monotonic
        decode, read = wire.decode_subscription_frame, self._read_frame
        notification, on_notification, deliver = wire.Notification, self._on_notification, self._deliver
        inflate = self._inflate  # this connection's decompressor (§9.4), None when plain
        while True:
            if stopped():
                raise _Stopped()
            try:
                frames = recv_many(poll)  # every whole frame already read, in order (at least one), or none
                now = monotonic()
                if frames:
                    last_inbound = now
                for opcode, payload in frames:
                    if opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                        last_note = now
                        try:
                            if opcode == OPCODE_BINARY and inflate is not None:
                                payload = inflate(payload)
                            hit = read(payload) if read is not None else None  # (subscription id, event)
                            msg = decode(payload) if hit is None else None
                        except ProtocolError as exc:
                            if opcode == OPCODE_BINARY and inflate is not None:
                                self._lost_reason = self._corrupt_frame(exc)
                                return False  # lost: reconnect with a fresh decompressor, replay from the cursor
                            self.stats.frames_discarded += 1
                            log.warning("discarding undecodable subscription frame: %s", exc)
                            continue
                        if hit is not None:  # the kind's common frame, read by the kind's own reader
                            if hit[0] in ids:
                                deliver(hit[1])
                            else:
                                self._unknown_id(hit[0])
                        elif type(msg) is notification:
                            if on_notification(msg, ids, ended):
                                return True
                        elif type(msg) is wire.SubscriptionComplete:
                            done = requests_ids(msg, ids)
                            if done and self._complete(ids, ended, done):
                                return True
                        elif isinstance(msg, wire.RpcErrorReply):
                            log.warning("%s subscription error: %s %s", self.kind, msg.code, msg.message)
                    elif opcode == OPCODE_PONG and payload[:len(BARRIER_PREFIX)] == BARRIER_PREFIX:
                        self._on_barrier_pong(payload)
                if not frames:
                    if completed_at is None and self.completed.is_set():
                        completed_at = now  # silence counts from when we learnt of completion
                    if completed_at is not None and now - max(last_note, completed_at) >= cfg.eos_silence \
                            and self._server not in _MARKER_SERVERS:
                        log.info("%s subscription of %s: end of stream by silence (no end-of-stream marker from the server)", self.kind, self.session_id)
                        return True
                    if now - last_inbound > cfg.keepalive_deadline:
                        log.warning("%s subscription of %s: keepalive deadline passed", self.kind, self.session_id)
                        self._lost_reason = "keepalive deadline passed"
                        return False
                if now >= next_ping:
                    if self._barrier_overdue(now):
                        log.warning("%s subscription of %s: no pong for a step barrier within %.1fs: connection "
                                    "declared dead", self.kind, self.session_id, cfg.keepalive_deadline)
                        return False
                    conn.ping()
                    next_ping = now + cfg.keepalive_interval
            except Closed as exc:
                if self._stop.is_set():
                    raise _Stopped() from None
                if exc.close_code == 1000 and self.completed.is_set():
                    log.debug("%s subscription of %s: end of stream by normal close", self.kind, self.session_id)
                    return True
                log.info("%s subscription of %s closed by server (%s)", self.kind, self.session_id, exc)
                self._lost_reason = str(exc)
                return False
            except TransportError as exc:
                if self._stop.is_set():
                    raise _Stopped() from None
                log.info("%s subscription of %s lost: %s", self.kind, self.session_id, exc)
                self._lost_reason = str(exc)
                return False

    def _corrupt_frame(self, exc: Exception) -> str:
        """A compressed frame that did not decode: the rest of this connection's stream depends on it (§9.4), so
        the connection counts as lost (the reconnect replays from the cursor). Returns the reason."""
        self.stats.decompress_failures += 1
        log.warning("%s subscription of %s: %s; reconnecting (the stream cannot be trusted past it)", self.kind,
                    self.session_id, exc)
        return f"undecodable compressed frame: {exc}"

    def _on_barrier_pong(self, payload: Any) -> None:
        try:
            gen = int(bytes(payload[len(BARRIER_PREFIX):]))
        except ValueError:
            return
        with self._barrier_lock:
            if gen <= self._barrier_passed:
                return  # a duplicate (both threads pinged) or an older generation
            self._barrier_passed = gen
        self.sink.put(BarrierPassed(self, gen))

    def _barrier_overdue(self, now: float) -> bool:
        with self._barrier_lock:
            return (self._barrier_wanted > self._barrier_passed
                    and now - self._barrier_sent_at > self.config.keepalive_deadline)

    def _complete(self, ids: Dict[int, str], ended: Set[int], now_ended: Any) -> bool:
        """``subscriptionComplete`` for ``now_ended`` (already added to ``ended`` when empty): True once every id
        ended; raises :class:`_EarlyComplete` when it cannot be the end yet (§9.5)."""
        if wire.is_early_complete(self.completed.is_set(), self.continue_sent()):
            ended.clear()
            raise _EarlyComplete()
        ended.update(now_ended)
        _MARKER_SERVERS.add(self._server)
        log.debug("%s subscription of %s: subscriptionComplete (%d/%d ids ended)", self.kind, self.session_id,
                  len(ended & set(ids)), len(ids))
        return len(ended & set(ids)) >= len(ids)

    def _on_notification(self, msg: wire.Notification, ids: Dict[int, str], ended: Set[int]) -> bool:
        """Deliver one notification; True once every subscription id reached its end of stream."""
        sub_id = msg.subscription
        result = msg.result
        if sub_id not in ids:
            self._unknown_id(sub_id)
            return False
        if result is None:
            log.debug("%s subscription of %s: end-of-stream marker for id %s", self.kind, self.session_id, sub_id)
            ended.add(sub_id)
            _MARKER_SERVERS.add(self._server)
            return len(ended) >= len(ids)
        try:
            event = self._convert(result, msg.frame)
        except ProtocolError as exc:
            self.stats.frames_discarded += 1
            log.warning("discarding undecodable %s notification: %s", self.kind, exc)
            return False
        self._deliver(event)
        return False

    def _unknown_id(self, sub_id: int) -> None:
        log.warning("notification for unknown subscription id %s ignored", sub_id)

    def _deliver(self, event: Any) -> None:
        """Queue one notification's event, unless it is a duplicate of one already queued (the server replays the
        cursor's slot inclusively: a reconnect's replay repeats that slot's notifications)."""
        slot = event.slot
        rng = self.slot_range
        if rng is not None and not rng[0] <= slot <= rng[1]:
            raise ProtocolError(
                f"{self.kind} subscription of session {self.session_id}: the server sent a notification for slot "
                f"{slot}, outside the session's range {list(rng)}; this is not the session this client created (a "
                "restarted server that reused the id?), so nothing of it is delivered")
        key = getattr(event, self._key_attr)
        last = self.last_slot
        if last is not None and slot <= last:
            if slot < last or key in self._seen:
                self.stats.duplicates_dropped += 1
                return
            self._seen.add(key)
        else:
            self.last_slot = slot
            self._seen = {key}
            self.sink.put(SlotMark(self, slot))
        self.sink.put(event)
        self._sup.made_progress = True  # a new notification: the outage, if any, is over


def requests_ids(msg: "wire.SubscriptionComplete", ids: Dict[int, str]) -> Set[int]:
    """The subscription ids a ``subscriptionComplete`` ends: its own, or every id of the socket when it names none."""
    if msg.subscription is None:
        return set(ids)
    if msg.subscription not in ids:
        log.warning("subscriptionComplete for unknown subscription id %s ignored", msg.subscription)
        return set()
    return {msg.subscription}
