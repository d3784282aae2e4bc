"""The reconnect policy of every connection, control and data plane alike, and the one receive loop they all wait in.

:class:`ReconnectSupervisor` decides, after each lost connection (or failed attempt at one), whether to try again
and how long to wait first (PROTOCOL.md §10):

* every reconnect waits ``config.backoff_delay(failures)`` first; the one exception is the first retry after a
  connection that stayed up at least ``reconnect_uptime_reset`` (a real outage resumes in milliseconds);
* a connection that delivered *new* data (an event that was not a replay, a notification that was not a duplicate)
  ends the outage: the attempt budget and the backoff start again from the beginning;
* a connection that delivered nothing new, or an attempt that never got up, is one failed attempt: it is backed off
  and spends the budget (``reconnect_attempts``), so a server that accepts, answers the handshake and drops at once
  cannot make the client reconnect forever;
* an outage also ends, with :class:`~simclient.errors.ConnectionLostError`, once ``reconnect_max_total`` seconds
  passed since it began (the Rust client's ``RECONNECT_MAX_TOTAL``);
* waits end at once when the owner's ``stop`` event is set (:class:`Stopped`).

:class:`LinkReader` is the receive loop of one connection. Every wait on a connection (create, attach, resume,
subscribe acks, the replay barrier, streaming) reads through it, so the keepalive ping and the dead-connection
deadline are written once and no wait runs without them.

:data:`ConnectionFactory` is the seam between the state machines and the network: ``factory(url, api_key,
timeout)`` returns a connected object with the methods of :class:`ConnectionLike` (the default is
:meth:`simclient.transport.Connection.open`). Unit tests pass a factory of scripted connections (no sockets).
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, List, Optional, Protocol, Sequence, Tuple

from .config import ClientConfig
from .errors import ConnectionLostError
from .transport import (
    CONTROL,
    DEFAULT_SEND_TIMEOUT,
    OPCODE_BINARY,
    OPCODE_TEXT,
    SUBSCRIPTION,
    Connection,
    TransportError,
)

log = logging.getLogger("simclient.reconnect")

Frame = Tuple[int, Any]


class ConnectionLike(Protocol):
    """What the state machines need from a connection (see :class:`simclient.transport.Connection`)."""

    def send_json(self, obj: Any) -> None: ...

    def recv(self, timeout: Optional[float]) -> Optional[Frame]: ...

    def ping(self, payload: bytes = b"") -> None: ...

    def close(self, timeout: float = 1.0) -> None: ...

    def abort(self) -> None: ...

    def release(self) -> None: ...


def batch_reader(conn: ConnectionLike) -> Callable[[Optional[float]], Sequence[Frame]]:
    """``read(timeout)``: the connection's whole buffered frames as one batch (:meth:`Connection.recv_many`), or,
    for a connection whose class has no such method (the injected ones of tests, wrappers), the one frame
    ``recv`` gives (none on timeout)."""
    # looked up on the class: a wrapper that defines recv and hands other names to the connection it wraps
    # (__getattr__) must not have its recv bypassed by the inner connection's recv_many
    if getattr(type(conn), "recv_many", None) is not None:
        many: Callable[[Optional[float]], Sequence[Frame]] = conn.recv_many  # type: ignore[attr-defined]
        return many
    recv = conn.recv

    def one(timeout: Optional[float]) -> Sequence[Frame]:
        frame = recv(timeout)
        return () if frame is None else (frame,)
    return one


#: ``factory(url, api_key, connect_timeout) -> ConnectionLike``; raises TransportError (or AuthenticationError...).
ConnectionFactory = Callable[[str, Optional[str], float], ConnectionLike]


def default_connection_factory(url: str, api_key: Optional[str], timeout: float,
                               send_timeout: Optional[float] = DEFAULT_SEND_TIMEOUT,
                               ca_bundle: Optional[str] = None) -> ConnectionLike:
    """A real WebSocket (:meth:`simclient.transport.Connection.open`). A connection with an API key is a control
    socket (a 4xx on its upgrade is terminal), one without a data-plane socket."""
    return Connection.open(url, api_key, timeout, send_timeout=send_timeout, ca_bundle=ca_bundle,
                           endpoint=CONTROL if api_key is not None else SUBSCRIPTION)


def connection_factory_for(config: ClientConfig) -> ConnectionFactory:
    """The default factory with ``config``'s ``send_timeout`` and ``ca_bundle``."""
    return functools.partial(default_connection_factory, send_timeout=config.send_timeout,
                             ca_bundle=config.ca_bundle)


class Stopped(Exception):
    """Internal: the owner is closing; a wait or a reconnect was interrupted."""


class KeepaliveExpired(TransportError):
    """No inbound traffic (not even a pong) for ``keepalive_deadline``: the connection is dead."""


class NoAnswer(Exception):
    """A wait for a reply ran out while the connection itself stayed alive (pongs kept coming)."""

    def __init__(self, what: str, timeout: float):
        self.what = what
        self.timeout = timeout
        super().__init__(f"no {what} within {timeout:g}s")


class ReconnectSupervisor:
    """Failures, uptime and the attempt history of one logical connection (see the module docstring).

    The owner calls :meth:`begin_attempt` before each connection attempt, :meth:`connected` once it is up (the
    handshake done), sets :attr:`made_progress` when the connection delivers new data, and calls :meth:`retry`
    when the connection or the attempt ended: it raises :class:`ConnectionLostError` when the budget or the
    deadline is spent, else waits the backoff (raising :class:`Stopped` when ``stop`` is set meanwhile).
    One thread (the owner's) uses a supervisor.
    """

    def __init__(self, config: ClientConfig, what: str, stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic, logger: Optional[logging.Logger] = None):
        self.config = config
        self.what = what
        self._stop = stop
        self._clock = clock
        self._log = logger or log
        self.failures = 0  # failed attempts in the current outage
        self.history: List[Tuple[int, str]] = []  # (attempt number in the outage, reason), this outage only
        self.established = False  # a connection was up at least once
        self.made_progress = False  # the current connection delivered new data (set by the owner)
        self.attempts_total = 0
        self._up_since: Optional[float] = None
        self._outage_since: Optional[float] = None

    def begin_attempt(self) -> None:
        """A new connection attempt starts (the first one, or a reconnect after :meth:`retry`)."""
        self._up_since = None
        self.made_progress = False
        self.attempts_total += 1

    def connected(self) -> None:
        """The connection and its handshake are up."""
        self._up_since = self._clock()
        self.established = True

    @property
    def attempt(self) -> int:
        """The number of the next (or current) attempt within the outage (1-based)."""
        return self.failures + 1

    def retry(self, reason: str) -> None:
        """The connection (or the attempt) ended for ``reason``: record it, then wait before the next attempt, or
        raise :class:`ConnectionLostError` when the budget or the total deadline is spent."""
        delay = self.lost(reason)
        self.pause(delay)

    def lost(self, reason: str) -> float:
        """Record the end of a connection or attempt; the delay before the next attempt (or raise)."""
        cfg = self.config
        now = self._clock()
        up = self._up_since
        uptime = None if up is None else now - up
        long_up = uptime is not None and uptime >= cfg.reconnect_uptime_reset
        healthy = self.made_progress or long_up  # new data counts even if the handshake did not finish
        self._up_since = None
        self.made_progress = False
        if healthy:  # that connection ended the outage before it; a new one starts now
            self.failures = 0
            self.history = []
            self._outage_since = now
            delay = 0.0 if long_up else cfg.backoff_delay(0)
            self._log.info("%s lost (%s); reconnecting %s (attempt 1/%d)", self.what, reason,
                           "at once" if delay == 0 else f"in {delay:.2f}s", cfg.reconnect_attempts)
            return delay
        if self._outage_since is None:
            self._outage_since = now
        self.failures += 1
        self.history.append((self.failures, reason))
        verb = "re-established" if self.established else "established"
        if self.failures >= cfg.reconnect_attempts:
            self._log.warning("%s: attempt %d/%d failed (%s); reconnect budget spent, giving up", self.what,
                              self.failures, cfg.reconnect_attempts, reason)
            raise ConnectionLostError(f"{self.what} could not be {verb}: reconnect budget of "
                                      f"{cfg.reconnect_attempts} attempt(s) spent", self.history)
        delay = cfg.backoff_delay(self.failures)
        total = cfg.reconnect_max_total
        if total > 0:
            left = self._outage_since + total - now
            if left <= 0:
                self._log.warning("%s: attempt %d failed (%s); reconnect_max_total=%gs passed, giving up",
                                  self.what, self.failures, reason, total)
                raise ConnectionLostError(f"{self.what} could not be {verb} within reconnect_max_total="
                                          f"{total:g}s", self.history)
            delay = min(delay, left)
        self._log.info("%s: attempt %d/%d failed (%s); reconnecting in %.2fs (attempt %d/%d)", self.what,
                       self.failures, cfg.reconnect_attempts, reason, delay, self.failures + 1,
                       cfg.reconnect_attempts)
        return delay

    def pause(self, delay: float) -> None:
        """Wait ``delay`` seconds, or raise :class:`Stopped` as soon as ``stop`` is set."""
        if self._stop.is_set() or (delay > 0 and self._stop.wait(delay)):
            raise Stopped()


class LinkReader:
    """The receive loop of one connection: reads with ``poll``-bounded waits, pings every ``keepalive_interval``,
    and raises :class:`KeepaliveExpired` after ``keepalive_deadline`` without inbound traffic and :class:`Stopped`
    once ``stop`` is set. Every wait on the connection goes through :meth:`recv` or :meth:`wait_for`."""

    def __init__(self, conn: ConnectionLike, config: ClientConfig, stop: threading.Event, poll: float,
                 clock: Callable[[], float] = time.monotonic):
        self.conn = conn
        self._recv = conn.recv
        self._recv_many = batch_reader(conn)
        self._config = config
        self._stop = stop
        self._stopped = stop.is_set
        self.poll = poll
        self._clock = clock
        now = clock()
        self.last_inbound = now
        self._next_ping = now + config.keepalive_interval

    def recv(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """One inbound frame (any opcode) or None after at most ``min(timeout, poll)`` seconds."""
        if self._stopped():
            raise Stopped()
        wait = self.poll if timeout is None else max(0.0, min(timeout, self.poll))
        frame = self._recv(wait)
        self._keepalive(frame is not None)
        return frame

    def recv_many(self) -> Sequence[Frame]:
        """:meth:`recv` for a batch: every whole frame the connection has read (:func:`batch_reader`), in order,
        or none after at most ``poll`` seconds; the same keepalive."""
        if self._stopped():
            raise Stopped()
        frames = self._recv_many(self.poll)
        self._keepalive(bool(frames))
        return frames

    def _keepalive(self, inbound: bool) -> None:
        """After a read: inbound traffic moves the deadline, none past it raises :class:`KeepaliveExpired`; a
        ping goes out every ``keepalive_interval``."""
        now = self._clock()
        if inbound:
            self.last_inbound = now
        elif now - self.last_inbound > self._config.keepalive_deadline:
            raise KeepaliveExpired(f"no inbound traffic for {now - self.last_inbound:.1f}s: connection declared dead")
        if now >= self._next_ping:
            self._next_ping = now + self._config.keepalive_interval
            self.conn.ping()

    def wait_for(self, timeout: float, handle: Callable[[int, Any], bool], what: str,
                 per_message: bool = False) -> None:
        """Read until ``handle(opcode, payload)`` returns True (it sees every frame, pongs included). Raises
        :class:`NoAnswer` when ``timeout`` passes first (counted from now, or, with ``per_message``, from the
        last text/binary frame: the timeout then bounds each wait for a message)."""
        deadline = self._clock() + timeout
        while True:
            left = deadline - self._clock()
            if left <= 0:
                raise NoAnswer(what, timeout)
            frame = self.recv(left)
            if frame is None:
                continue
            opcode = frame[0]
            if per_message and (opcode == OPCODE_TEXT or opcode == OPCODE_BINARY):
                deadline = self._clock() + timeout
            if handle(opcode, frame[1]):
                return
