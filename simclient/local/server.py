"""The local simulator server: aiohttp routes for the control WS, the per-session data plane and available ranges.

Routes (PROTOCOL §1):

* ``GET /backtest``: control WebSocket; ``X-API-Key`` must match, else HTTP 401 before the upgrade.
* ``POST /backtest/{id}``: per-session JSON-RPC 2.0 (see :mod:`simclient.local.rpc`); no auth.
* ``GET /backtest/{id}``: per-session subscription WebSocket; no auth. Unknown session: HTTP 404.
* ``GET /available-ranges``: JSON array of AvailableRange (camelCase keys, ``kind``/``scope`` set); no auth.
* ``GET /health``: ``200 ok``; ``GET /ready``: ``200`` while sessions may be created, ``503`` while ``draining``
  (creates are then refused with ``invalidRequest`` "server is draining").

Ids are ``backtest_<uuid v7>`` / ``parallel_<uuid v7>`` (:mod:`simclient.local.ids`), unique across restarts; a test
that needs a chosen id passes ``session_id_factory``. ``dialect`` (:mod:`simclient.local.dialect`, settable while
running) picks the reading of each open point of the protocol; the default, ``evidenced``, is lenient on input.

All WebSockets use ``autoping=False``: the server answers pings itself, so a :meth:`FaultPlan.stall` also starves
the client's keepalive. Server-side compression (permessage-deflate) is off.

Inferred control-connection choices (see also :mod:`simclient.local.session`):

* One session (single or parallel) per control connection; a second create/attach on it is ``invalidRequest``.
* ``attachBacktestSession`` / ``attachParallelControlSessionV2`` on a session still attached elsewhere takes it over
  (the old connection is aborted), so a client recovering from a half-open connection is never locked out.
* Attach to an unknown, expired, non-resumable (no ``disconnectTimeoutSecs``) session, or to a parallel session
  whose create had not finished: ``error{sessionNotFound{session_id}}`` (bare).
* A parallel control connection dropped before ``sessionsCreatedV2`` tears the whole run down (clients retry the
  create); after it, the run survives for ``disconnectTimeoutSecs`` like a single session.
* ``closeBacktestSession`` on a parallel connection closes every sub-session and answers a bare ``success``;
  ``closeSessionV1`` answers with the sub-session's ``sessionEventV2{event: success}``.
* Plain ``continue``/``continueTo`` on a parallel connection is ``invalidRequest``; ``*SessionV1`` naming an unknown
  sub-session is ``sessionNotFound``.
* ``"compression":"zstd"`` in a subscribe config (§9.4): that subscription's frames go out as Binary frames of one
  streaming zstd compressor per socket (:mod:`simclient.local.zstd`; the dialect's ``zstd_ack`` / ``zstd_eos`` pick
  how its ack and end marker go). Without ``zstandard`` installed the option is ignored and frames stay Text
  (allowed by §9.3: absent or unsupported options default to off).

Bad-input hooks (for client tests; every one is thread-safe and usable while the simulator runs):

* :meth:`LocalSimulator.inject_control_frame` / :meth:`LocalSimulator.inject_subscription_frame` send a raw frame
  now on a session's live control / subscription socket(s) and return once it is written. Called while the session
  is idle (e.g. right after reading ``readyForContinue``, before the next continue), the frame's place in the
  stream is deterministic.
* :meth:`FaultPlan.inject_control` / :meth:`FaultPlan.inject_subscription` do the same at a counted point of the
  stream (e.g. during the create handshake); :meth:`FaultPlan.rpc_non_json`, :meth:`FaultPlan.rpc_http_error`,
  :meth:`FaultPlan.rpc_error` and :meth:`FaultPlan.rpc_reply` make ``POST /backtest/{id}`` misbehave.
* ``mismatched_parallel_ranges``: ``sessionsCreatedV2.end_slots`` is one element shorter than ``session_ids``.

Injected frames are extra frames: never sequenced, never in a replay buffer, not counted in ``frames_sent``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections import Counter, deque
from typing import Any, Callable, Coroutine, Deque, Dict, List, Optional, Set, Tuple, Union

from aiohttp import WSMsgType, web

from .._base58 import is_pubkey
from . import wire
from .chain import SyntheticChain
from .dialect import Dialect, complete_text, render_ranges, resolve_dialect
from .faults import FaultPlan, RpcFault
from .ids import new_session_id
from .rpc import handle_rpc
from .session import FINISHED, PAUSED, ParallelControl, SimSession, Subscription
from .zstd import Compressed, StreamCompressor, wants_zstd, zstd_available

#: GET: the local simulator's program ids (``{"program_ids": [...], "names": {id: name}}``); not on the hosted service.
LOCAL_PROGRAM_IDS_PATH = "/local/program-ids"

log = logging.getLogger("simclient.local")

THREAD_NAME = "simclient-local-sim"
STAT_KEYS = (
    "control_connections", "control_drops", "control_disconnects", "subscription_connections",
    "subscription_drops", "subscriptions", "garbage_sent", "frames_sent", "notifications_sent",
    "continues_received", "continues_lost", "continues_busy_rejected", "sessions_created",
    "parallel_sessions_created", "sessions_completed", "sessions_attached", "parallel_attached",
    "invalid_requests", "auth_rejected", "rpc_requests", "pings_answered", "pings_delayed",
    "injected_control_frames", "injected_subscription_frames", "rpc_faults",
    "creates_received", "creates_ignored", "control_flaps", "subscription_flaps", "read_stops",
    "early_completes_sent", "duplicate_field_rejections", "creates_refused_draining",
    "zstd_frames_sent", "zstd_bytes_in", "zstd_bytes_out", "zstd_ignored",
)
MAX_MSG_SIZE = 64 * 1024 * 1024
#: Seconds a client gets to echo our close frame (PROTOCOL §10: graceful close, [I] 10 s) before the abort.
CLOSE_HANDSHAKE_TIMEOUT = 10.0


class _Conn:
    """A server-side WebSocket with an ordered, stall-aware send path."""

    kind = "control"  # for FaultPlan.stop_reading

    def __init__(self, sim: "LocalSimulator", ws: web.WebSocketResponse, request: web.Request):
        self.sim = sim
        self.ws = ws
        self.transport = request.transport
        self.lock = asyncio.Lock()
        self.closed = False
        self.read_stopped_until = 0.0  # FaultPlan.stop_reading: TCP reads paused until then (loop time)

    def abort(self) -> None:
        """Kill the TCP connection without a close handshake (what a network failure looks like)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def send(self, text: Union[str, bytes]) -> bool:
        async with self.lock:
            return await self.send_locked(text)

    async def send_locked(self, text: Union[str, bytes]) -> bool:
        await self.sim.stall_gate()
        if self.closed:
            return False
        try:
            if isinstance(text, bytes):  # only injected frames are bytes
                await self.ws.send_bytes(text)
            else:
                await self.ws.send_str(text)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("send failed (%s: %s): connection considered closed", type(exc).__name__, exc)
            self.closed = True
            return False

    async def close(self, code: int = 1000, timeout: float = CLOSE_HANDSHAKE_TIMEOUT) -> None:
        """Close handshake; a client that has not echoed the close frame within ``timeout`` is cut off (abort).
        The timeout is generous: a client still reading its backlog reaches the close frame only after it, and an
        abort (RST) would discard whatever it has not read yet."""
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                await asyncio.wait_for(self.ws.close(code=code), timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("close handshake did not finish (%s): aborting the connection", type(exc).__name__)
                if self.transport is not None:
                    self.transport.abort()


class ControlConn(_Conn):
    def __init__(self, sim: "LocalSimulator", ws: web.WebSocketResponse, request: web.Request):
        super().__init__(sim, ws, request)
        self.session: Optional[SimSession] = None
        self.parallel: Optional[ParallelControl] = None
        self.creating = False
        self.flap_on_created = False  # FaultPlan.flap_control: close (1011) once the create is answered

    def session_ids(self) -> Optional[Set[str]]:
        """The ids this connection serves: its single session, or its parallel control session and sub-sessions."""
        if self.session is not None:
            return {self.session.id}
        if self.parallel is not None:
            return {self.parallel.id, *(s.id for s in self.parallel.subs)}
        return None

    async def send_raw_locked(self, text: Union[str, bytes]) -> bool:
        """Send an injected frame as is (no garbage, no counting); the caller holds ``lock``."""
        ok = await super().send_locked(text)
        if ok:
            self.sim.stats["injected_control_frames"] += 1
        return ok

    async def send_locked(self, text: Union[str, bytes]) -> bool:
        await self.sim.stall_gate()
        if self.closed:
            return False
        faults = self.sim.faults
        for injected in faults.take_control_injections(self.session_ids()):
            if not await self.send_raw_locked(injected):
                return False
        garbage = faults.on_control_frame()
        if garbage is not None:
            self.sim.stats["garbage_sent"] += 1
            if not await super().send_locked(garbage):
                return False
        self.sim.stats["frames_sent"] += 1  # before the write: a client that read the frame sees it counted
        ok = await super().send_locked(text)
        if not ok:
            self.sim.stats["frames_sent"] -= 1
        else:
            if self.flap_on_created and isinstance(text, str) and (
                    '"method":"sessionsCreatedV2"' in text
                    or (self.parallel is None and '"method":"sessionCreated"' in text)):
                self.flap_on_created = False
                self.flap()
        if faults.read_stop_epoch != self.sim._read_stop_epoch:
            self.sim._apply_read_stop()
        return ok

    def flap(self) -> None:
        """FaultPlan.flap_control from a send (``lock`` held): nothing more is sent or read; close with 1011."""
        self.closed = True
        self.sim.stats["control_flaps"] += 1
        log.info("fault: flapping the control connection (close 1011)")
        self.sim._spawn(self.flap_close())

    async def flap_close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=1011), 2.0)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the client went away first
            if self.transport is not None:
                self.transport.abort()


class SubConn(_Conn):
    """A subscription socket. Its close handshake runs on the connection's own handler task: aiohttp's
    ``ws.close()`` called from another task while the handler waits in ``receive()`` closes the transport right after
    the close frame, without waiting for the client's; with client pings still unread the kernel then sends RST, and
    the client's kernel drops every notification it had not read yet (a lagging client lost its backlog)."""

    kind = "subscription"

    def __init__(self, sim: "LocalSimulator", ws: web.WebSocketResponse, request: web.Request, session: SimSession):
        super().__init__(sim, ws, request)
        self.session = session
        self._close_requested = asyncio.Event()
        self._close_code = 1000
        # FaultPlan.delay_subscriptions_ms: writes held back, in order: (due loop time, "note"|"raw"|"pong"|"close", x)
        self._lagged: Deque[Tuple[float, str, Any]] = deque()
        self._lag_task: Optional["asyncio.Task[Any]"] = None
        self.compressor: Optional[StreamCompressor] = None  # §9.4: made with this socket's first compressed frame

    async def send_locked(self, text: Any) -> bool:
        """Send one frame (``lock`` held); a :class:`~simclient.local.zstd.Compressed` one goes through this socket's
        compressor now, so compressor order is wire order, and out as a Binary frame."""
        if type(text) is Compressed:
            if self.closed:
                return False
            if self.compressor is None:
                self.compressor = StreamCompressor()
            raw = len(text.text)
            text = self.compressor.compress(text.text)
            stats = self.sim.stats
            stats["zstd_frames_sent"] += 1
            stats["zstd_bytes_in"] += raw
            stats["zstd_bytes_out"] += len(text)
        return await super().send_locked(text)

    @property
    def lagging(self) -> bool:
        """Writes are queued behind the delayed data plane: later writes must queue too, to keep their order."""
        return bool(self._lagged) or (self._lag_task is not None and not self._lag_task.done())

    def send_later(self, kind: str, payload: Any, delay: float) -> None:
        """Queue a write ``delay`` seconds from now, behind every write queued before it (FIFO)."""
        loop = asyncio.get_event_loop()
        self._lagged.append((loop.time() + delay, kind, payload))
        if self._lag_task is None or self._lag_task.done():
            self._lag_task = self.sim._spawn(self._flush_lagged())

    async def _flush_lagged(self) -> None:
        loop = asyncio.get_event_loop()
        while self._lagged:
            due, kind, payload = self._lagged[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._lagged.popleft()
            if kind == "note":
                if await self.send(payload):
                    self.sim.stats["notifications_sent"] += 1
            elif kind == "raw":
                await self.send(payload)
            elif kind == "pong":
                await self.sim._pong(self, payload)
            else:
                await self.close()

    async def close(self, code: int = 1000, timeout: float = CLOSE_HANDSHAKE_TIMEOUT) -> None:
        """Send nothing more and let the handler task run the close handshake (see the class docstring)."""
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            self._close_code = code
        self._close_requested.set()

    async def receive(self) -> Optional[Any]:
        """The next client message, or None once :meth:`close` was requested."""
        recv = asyncio.ensure_future(self.ws.receive())
        stop = asyncio.ensure_future(self._close_requested.wait())
        try:
            await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not recv.done():
                recv.cancel()
                await asyncio.wait({recv})  # let receive() leave its waiting state before ws.close()
        return recv.result() if not recv.cancelled() else None

    async def finish_close(self) -> None:
        """The close handshake (on the handler task); a client that does not answer in time is cut off."""
        try:
            await asyncio.wait_for(self.ws.close(code=self._close_code), CLOSE_HANDSHAKE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("close handshake did not finish (%s): aborting the connection", type(exc).__name__)
            if self.transport is not None:
                self.transport.abort()


class LocalSimulator:
    """A local stand-in for the hosted simulator, serving PROTOCOL.md over a deterministic :class:`SyntheticChain`.

    It runs an asyncio loop and an aiohttp server in a daemon thread named ``simclient-local-sim``. Use it as a
    context manager, or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free port.

    Attributes that may be changed while running: ``faults`` (a :class:`FaultPlan`, also mutable in place),
    ``create_delay_ms``, ``slot_pace_ms``, ``replay_window``, ``omit_parallel_ranges`` (``sessionsCreatedV2``
    without ``start_slots``/``end_slots``, like a too-old server), ``mismatched_parallel_ranges``
    (``sessionsCreatedV2.end_slots`` one element shorter than ``session_ids``), ``early_session_events`` (a parallel
    sub-session's first ``sessionEventV2`` arrives before its own ``sessionCreated``), ``discovery_after_idle_ms``
    (a ``discoveryBatch`` follows the idle marker by that many ms, like a background scan) and
    ``discovery_reannounce_paused`` (the batch a ``continueTo`` paused before is announced again), ``session_ids`` (a list of ids
    handed out, in order, to the next sessions created instead of generated ones: e.g. to make a restarted simulator
    reuse an id a client still holds); ``dialect`` (a preset name of :data:`~simclient.local.dialect.DIALECTS` or a :class:`~simclient.local.dialect.Dialect`), ``draining``
    (``GET /ready`` answers 503 and creates are refused).

    ``session_id_factory(kind)`` (``kind`` is ``"session"`` or ``"control"``) replaces the default
    ``backtest_<uuid v7>`` / ``parallel_<uuid v7>`` ids, for tests that need a chosen (e.g. reused) id.

    Raw frames can be sent on a session's live sockets with :meth:`inject_control_frame` and
    :meth:`inject_subscription_frame` (see also :class:`FaultPlan` for injections at counted points).
    """

    def __init__(self, port: int = 0, api_key: str = "local-dev-key", seed: int = 0, bundle_size: int = 100,
                 num_bundles: int = 100, first_slot: int = 300_000_000, replay_window: int = 100,
                 slot_pace_ms: float = 0, create_delay_ms: float = 0, faults: Optional[FaultPlan] = None,
                 host: str = "127.0.0.1", dialect: Union[None, str, Dialect] = None,
                 session_id_factory: Optional[Callable[[str], str]] = None):
        if replay_window < 1:
            raise ValueError("replay_window must be >= 1")
        self.host = host
        self.requested_port = port
        self.api_key = api_key
        self.seed = seed
        self.chain = SyntheticChain(seed=seed, first_slot=first_slot, bundle_size=bundle_size,
                                    num_bundles=num_bundles)
        self.replay_window = replay_window
        self.slot_pace_ms = slot_pace_ms
        self.create_delay_ms = create_delay_ms
        self._faults = faults if faults is not None else FaultPlan(seed)
        self.omit_parallel_ranges = False
        self.mismatched_parallel_ranges = False
        self.early_session_events = False
        self.discovery_after_idle_ms: Optional[float] = None  # §5.5 readings, see simclient.local.session
        self.discovery_reannounce_paused = False
        self.session_ids: List[str] = []
        self._dialect = resolve_dialect(dialect)
        self.draining = False
        self.session_id_factory: Callable[[str], str] = session_id_factory or new_session_id
        self.stats: Counter = Counter({k: 0 for k in STAT_KEYS})
        self._port: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()
        self._start_error: Optional[BaseException] = None
        self._sessions: Dict[str, SimSession] = {}          # live (routable) sessions, incl. sub-sessions
        self._all_sessions: Dict[str, SimSession] = {}      # every session ever created (for inspection)
        self._parallels: Dict[str, ParallelControl] = {}
        self._conns: Set[_Conn] = set()
        self._tasks: Set[asyncio.Future] = set()
        self._read_stop_epoch = 0  # the FaultPlan.read_stop_epoch last applied to live sockets

    # ------------------------------------------------------------------ public surface
    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, plan: Optional[FaultPlan]) -> None:
        self._faults = plan if plan is not None else FaultPlan(self.seed)

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @dialect.setter
    def dialect(self, dialect: Union[None, str, Dialect]) -> None:
        self._dialect = resolve_dialect(dialect)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        return self._port

    @property
    def url(self) -> str:
        """The control WebSocket URL, ``ws://host:port/backtest``."""
        return f"ws://{self.host}:{self.port}/backtest"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def first_slot(self) -> int:
        return self.chain.first_slot

    @property
    def last_slot(self) -> int:
        return self.chain.last_slot

    @property
    def bundle_size(self) -> int:
        return self.chain.bundle_size

    @property
    def program_ids(self) -> List[str]:
        return list(self.chain.program_ids)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def session(self, session_id: str) -> SimSession:
        """The server-side state of a session (also after it ended). KeyError if unknown."""
        return self._all_sessions[session_id]

    def sessions(self) -> List[SimSession]:
        return list(self._all_sessions.values())

    # ------------------------------------------------------------------ raw injection (any thread but the loop's)
    def inject_control_frame(self, session_id: str, text: Union[str, bytes], timeout: float = 5.0) -> bool:
        """Send ``text`` verbatim (``bytes``: a Binary frame) on the live control socket of ``session_id`` (a single
        session, a parallel control session, or a sub-session: its shared control socket) and return once it is
        written. The frame is not sequenced and not kept for replay. Returns False when no control socket is
        attached; raises KeyError for an id the simulator never issued."""
        text = _raw_frame(text)

        async def inject() -> bool:
            conn = self._control_conn_of(session_id)
            if conn is None or conn.closed:
                return False
            async with conn.lock:
                return await conn.send_raw_locked(text)

        return self._run_in_loop(inject, timeout)

    def inject_subscription_frame(self, session_id: str, text: Union[str, bytes], timeout: float = 5.0) -> int:
        """Send ``text`` verbatim on every live subscription socket of ``session_id`` that has an active
        subscription (so after its subscribe ack); returns how many sockets it was written to."""
        text = _raw_frame(text)

        async def inject() -> int:
            sess = self._all_sessions.get(session_id)
            if sess is None:
                raise KeyError(session_id)
            conns = list({id(s.conn): s.conn for s in sess.subs}.values())
            sent = 0
            for conn in conns:
                if not conn.closed and await conn.send(text):
                    sent += 1
                    self.stats["injected_subscription_frames"] += 1
            return sent

        return self._run_in_loop(inject, timeout)

    def stop_reading(self, seconds: float, control: bool = True, subscriptions: bool = True,
                     timeout: float = 5.0) -> int:
        """Stop reading every live client socket of the chosen kinds (and those accepted meanwhile) for ``seconds``,
        starting now: returns once the reads are paused, with the number of live sockets paused. The server keeps
        writing; the clients' writes block once their send buffers are full (:meth:`FaultPlan.stop_reading`)."""
        self._faults.stop_reading(seconds, control=control, subscriptions=subscriptions)

        async def apply() -> int:
            return self._apply_read_stop()

        return int(self._run_in_loop(apply, timeout))

    def _apply_read_stop(self) -> int:
        """Pause reading on every live socket the current stop_reading window covers (loop thread)."""
        self._read_stop_epoch = self._faults.read_stop_epoch
        paused = 0
        for conn in list(self._conns):
            if self._stop_reading(conn):
                paused += 1
        return paused

    def _stop_reading(self, conn: _Conn) -> bool:
        """Pause ``conn``'s TCP reads while a stop_reading window covers its kind; resumed when it ends."""
        left = self._faults.read_stop_remaining(conn.kind)
        transport = conn.transport
        if left <= 0 or conn.closed or transport is None or transport.is_closing():
            return False
        loop = asyncio.get_running_loop()
        until = loop.time() + left
        if conn.read_stopped_until <= loop.time():
            transport.pause_reading()
            self.stats["read_stops"] += 1
        if until > conn.read_stopped_until:
            conn.read_stopped_until = until
            loop.call_later(left, self._resume_reading, conn)
        return True

    def _resume_reading(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        if conn.read_stopped_until > loop.time() + 0.001:
            return  # a later window extended the pause; its own timer resumes
        transport = conn.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _control_conn_of(self, session_id: str) -> Optional[ControlConn]:
        sess = self._all_sessions.get(session_id)
        if sess is not None:
            return sess.parent.conn if sess.parent is not None else sess.conn
        par = self._parallels.get(session_id)
        if par is not None:
            return par.conn
        raise KeyError(session_id)

    def _run_in_loop(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float) -> Any:
        loop = self._loop
        if loop is None or not self.running:
            raise RuntimeError("the simulator is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("call this from another thread than the simulator's")
        future: "concurrent.futures.Future[Any]" = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __enter__(self) -> "LocalSimulator":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<LocalSimulator {where} seed={self.seed} dialect={self._dialect.name}>"

    def start(self, timeout: float = 10.0) -> "LocalSimulator":
        """Start serving in the background thread; returns once the port is bound."""
        if self.running:
            return self
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._thread_main, name=THREAD_NAME, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("local simulator did not start in time")
        if self._start_error is not None:
            self._thread.join(2.0)
            self._thread = None
            raise self._start_error
        log.info("local simulator listening on %s (seed=%s)", self.url, self.seed)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Close every socket, stop the loop and join the thread (within ``timeout`` seconds)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # loop already closed
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover
            log.warning("local simulator thread did not stop within %.1fs", timeout)
        self._thread = None
        self._port = None

    def serve_forever(self) -> None:
        """Block the calling thread until interrupted (KeyboardInterrupt) and then stop."""
        self.start()
        try:
            assert self._thread is not None
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    # ------------------------------------------------------------------ thread and loop
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # port in use, bad host...
                self._start_error = exc
                self._ready.set()
                return
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._ashutdown())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None

    async def _astart(self) -> None:
        app = web.Application(client_max_size=MAX_MSG_SIZE)
        app.router.add_get("/available-ranges", self._h_ranges)
        app.router.add_get("/health", self._h_health)
        app.router.add_get("/ready", self._h_ready)
        app.router.add_get(LOCAL_PROGRAM_IDS_PATH, self._h_program_ids)
        app.router.add_get("/backtest", self._h_control)
        app.router.add_get("/backtest/", self._h_control)
        app.router.add_post("/backtest/{sid}", self._h_rpc)
        app.router.add_get("/backtest/{sid}", self._h_subscriptions)
        app.router.add_get("/", self._h_root)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.requested_port)
        await site.start()
        self._port = runner.addresses[0][1]

    async def _ashutdown(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        for sess in list(self._sessions.values()):
            if sess.expiry is not None:
                sess.expiry.cancel()
        for par in list(self._parallels.values()):
            if par.expiry is not None:
                par.expiry.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=0.5)
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner.cleanup(), 1.0)
            except (asyncio.TimeoutError, Exception):  # pragma: no cover
                log.debug("runner cleanup timed out", exc_info=True)
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.wait(rest, timeout=0.5)

    def _track(self, task: "asyncio.Future[Any]") -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Any) -> "asyncio.Task[Any]":
        task = asyncio.ensure_future(coro)
        self._track(task)
        return task

    async def stall_gate(self) -> None:
        """Wait while a FaultPlan stall is in effect."""
        while True:
            left = self._faults.stall_remaining()
            if left <= 0:
                return
            await asyncio.sleep(left)

    # ------------------------------------------------------------------ registry
    def _new_id(self, kind: str) -> str:
        sid = self.session_id_factory(kind)
        if not isinstance(sid, str) or not sid:
            raise TypeError(f"session_id_factory({kind!r}) must return a non-empty str, got {sid!r}")
        return sid

    def _new_session(self, req: wire.CreateRequest, start: int, end: int,
                     parent: Optional[ParallelControl] = None) -> SimSession:
        sid = self.session_ids.pop(0) if self.session_ids else self._new_id("session")
        task_id = "task-" + sid[-12:]
        sess = SimSession(self, sid, task_id, req, start, end, parent)
        self._sessions[sid] = sess
        self._all_sessions[sid] = sess
        self.stats["sessions_created"] += 1
        log.info("session %s created for [%d, %d]%s", sid, start, end, " (parallel)" if parent else "")
        return sess

    def _unregister(self, sess: SimSession) -> None:
        self._sessions.pop(sess.id, None)

    def _unregister_parallel(self, par: ParallelControl) -> None:
        self._parallels.pop(par.id, None)

    async def deliver(self, sub: Subscription, text: str) -> None:
        """Send one live notification (subject to ``drop_subscriptions_every``)."""
        conn = sub.conn
        if conn.closed or sub.ended:
            return
        for injected in self._faults.take_subscription_injections(conn.session.id):
            if await conn.send(injected):
                self.stats["injected_subscription_frames"] += 1
        if self._faults.take_subscription_drop():
            self.stats["subscription_drops"] += 1
            log.info("fault: dropping subscription socket of session %s", conn.session.id)
            conn.abort()
            return
        delay = self._faults.subscription_delay
        if delay > 0 or conn.lagging:
            conn.send_later("note", sub.frame(text), delay)
            return
        if await conn.send(sub.frame(text)):
            self.stats["notifications_sent"] += 1

    # ------------------------------------------------------------------ HTTP handlers
    async def _h_root(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "simclient.local", "control": "/backtest",
                                  "available_ranges": "/available-ranges", "health": "/health", "ready": "/ready",
                                  "dialect": self._dialect.name})

    async def _h_program_ids(self, request: web.Request) -> web.Response:
        """Local-only (the hosted service has no such endpoint): the synthetic programs, so that ``simclient run``
        without ``--program-id`` can subscribe to them."""
        from .chain import PROGRAM_IDS, PROGRAM_NAMES

        return web.json_response({"program_ids": self.program_ids,
                                  "names": {p: n for p, n in zip(PROGRAM_IDS, PROGRAM_NAMES)}})

    async def _h_ranges(self, request: web.Request) -> web.Response:
        await self.stall_gate()
        body = render_ranges(self.chain.available_ranges(), self._dialect)
        return web.Response(text=wire.dumps(body), content_type="application/json")

    async def _h_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _h_ready(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="draining\n")
        return web.Response(text="ready")

    async def _h_rpc(self, request: web.Request) -> web.Response:
        self.stats["rpc_requests"] += 1
        sess = self._sessions.get(request.match_info["sid"])
        await self.stall_gate()
        body = await request.read()
        fault = self._faults.take_rpc_fault()
        if fault is not None:
            self.stats["rpc_faults"] += 1
            return _rpc_fault_response(fault, body)
        if sess is None:
            err = {"jsonrpc": "2.0", "id": None,
                   "error": {"code": -32001, "message": f"session not found: {request.match_info['sid']}"}}
            return web.Response(status=404, text=wire.dumps(err), content_type="application/json")
        return web.Response(text=handle_rpc(sess, body), content_type="application/json")

    async def _ws_accept(self, request: web.Request) -> Optional[web.WebSocketResponse]:
        """The upgraded WebSocket, or None when the client left during the upgrade (e.g. it gave up waiting while
        the server was stalled): a normal client disconnect, not a handler error."""
        ws = web.WebSocketResponse(autoping=False, autoclose=True, compress=False, max_msg_size=MAX_MSG_SIZE)
        try:
            await ws.prepare(request)
        except ConnectionError as exc:
            log.info("client left during the WebSocket upgrade of %s (%s)", request.path, exc)
            return None
        return ws

    def _on_ping(self, conn: _Conn, data: bytes) -> None:
        """Answer a ping; while stalled the pong waits for the end of the stall (the reader itself goes on). On a
        lagging subscription socket the pong queues behind the delayed notifications (PROTOCOL §9)."""
        if self._faults.stall_remaining() > 0:
            self.stats["pings_delayed"] += 1
        if isinstance(conn, SubConn) and conn.lagging:
            conn.send_later("pong", data, 0.0)
            return
        self._spawn(self._pong(conn, data))

    async def _pong(self, conn: _Conn, data: bytes) -> None:
        await self.stall_gate()
        if conn.closed:
            return
        try:
            # aiohttp writers are not safe for concurrent use while one of them awaits a drain: serialise
            async with conn.lock:
                if conn.closed:
                    return
                await conn.ws.pong(data)
            self.stats["pings_answered"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.debug("pong failed", exc_info=True)
            conn.closed = True

    # ------------------------------------------------------------------ control WS
    async def _h_control(self, request: web.Request) -> web.StreamResponse:
        await self.stall_gate()
        if request.headers.get("X-API-Key") != self.api_key:
            self.stats["auth_rejected"] += 1
            raise web.HTTPUnauthorized(text="missing or invalid X-API-Key\n")
        ws = await self._ws_accept(request)
        if ws is None:
            return web.Response(status=400, text="client left during the upgrade\n")  # never reaches it
        conn = ControlConn(self, ws, request)
        self._conns.add(conn)
        self.stats["control_connections"] += 1
        self._stop_reading(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_control_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._on_control_text(conn, msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.PING:
                    self._on_ping(conn, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if conn.closed:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug in a request handler: make it visible
            log.exception("control connection handler failed")
        finally:
            conn.closed = True
            self._conns.discard(conn)
            self.stats["control_disconnects"] += 1
            if conn.session is not None and conn.session.conn is conn:
                conn.session.on_detached()
            if conn.parallel is not None and conn.parallel.conn is conn:
                conn.parallel.on_detached()
        return ws

    async def _reply(self, conn: ControlConn, text: str) -> None:
        """A bare (unsequenced) reply on this connection."""
        await conn.send(text)

    async def _on_control_text(self, conn: ControlConn, text: str) -> None:
        try:
            method, params = wire.parse_frame(text)
        except wire.RequestError as exc:
            self.stats["invalid_requests"] += 1
            await self._reply(conn, wire.error(exc.params))
            return
        if conn.closed:
            return  # flapped: a closing connection reads nothing more
        if method == "createBacktestSession":
            self.stats["creates_received"] += 1
            if self._faults.take_ignored_create():
                self.stats["creates_ignored"] += 1
                log.info("fault: ignoring a create (never answered)")
                if self._faults.drop_ignored_creates:
                    conn.abort()
                return
            if self._faults.take_control_flap():
                conn.flap_on_created = True
        is_continue = method in ("continue", "continueTo", "continueSessionV1", "continueToSessionV1")
        if is_continue:
            self.stats["continues_received"] += 1
            if self._faults.take_lost_continue():
                self.stats["continues_lost"] += 1
                log.info("fault: losing %s and dropping the control connection", method)
                conn.abort()
                return
        try:
            await getattr(self, "_m_" + method)(conn, params)
        except wire.RequestError as exc:
            self.stats["invalid_requests"] += 1
            await self._reply(conn, wire.error(exc.params))
            return
        if method in ("resumeAttachedSession", "attachParallelControlSessionV2") and not conn.closed \
                and self._faults.take_control_flap():
            conn.closed = True
            self.stats["control_flaps"] += 1
            log.info("fault: flapping the control connection after %s (close 1011)", method)
            await conn.flap_close()

    # --- create
    async def _m_createBacktestSession(self, conn: ControlConn, params: Any) -> None:
        if conn.session is not None or conn.parallel is not None or conn.creating:
            raise wire.invalid("this control connection already has a session")
        if self.draining:
            self.stats["creates_refused_draining"] += 1
            raise wire.invalid("server is draining (GET /ready answers 503): no new sessions; retry on another "
                               "instance or later")
        req = wire.parse_create(params)
        chain = self.chain
        if req.start_slot < chain.first_slot or req.end_slot > chain.last_slot:
            raise wire.RequestError({"bundleNotFound": {"start_slot": req.start_slot, "end_slot": req.end_slot}})
        if not req.parallel:
            if not any(chain.is_produced(s) for s in range(req.start_slot, req.end_slot + 1)):
                raise wire.RequestError(
                    {"noProducedBlocksInRange": {"start_slot": req.start_slot, "end_slot": req.end_slot}})
            sess = self._new_session(req, req.start_slot, req.end_slot)
            sess.conn = conn
            conn.session = sess
            sess.task = self._spawn(sess._guard(sess.startup()))
            return
        bundles = [b for b in chain.bundles_covering(req.start_slot, req.end_slot)
                   if any(chain.is_produced(s) for s in range(b[0], b[1] + 1))]
        if not bundles:
            raise wire.RequestError(
                {"noProducedBlocksInRange": {"start_slot": req.start_slot, "end_slot": req.end_slot}})
        par = ParallelControl(self, self._new_id("control"), req)
        par.conn = conn
        conn.parallel = par
        self._parallels[par.id] = par
        self.stats["parallel_sessions_created"] += 1
        par.task = self._spawn(par.create(bundles))

    # --- continue family
    def _target(self, conn: ControlConn, session_id: Optional[str]) -> SimSession:
        if session_id is None:
            if conn.parallel is not None:
                raise wire.invalid("plain continue/continueTo is not valid on a parallel control session; "
                                   "use continueSessionV1/continueToSessionV1")
            if conn.session is None:
                raise wire.invalid("no session on this control connection")
            return conn.session
        sess: Optional[SimSession] = None
        if conn.parallel is not None:
            sess = conn.parallel.sub(session_id)
        elif conn.session is not None and conn.session.id == session_id:
            sess = conn.session
        if sess is None:
            raise wire.RequestError({"sessionNotFound": {"session_id": session_id}})
        return sess

    async def _start_continue(self, sess: SimSession, params: Any) -> None:
        busy = sess.check_can_continue()
        if busy is not None:
            self.stats["continues_busy_rejected"] += 1
            await sess.emit(busy)
            return
        try:
            req = wire.parse_continue(params)
        except wire.RequestError as exc:
            await sess.emit(wire.error(exc.params))
            return
        sess.apply_continue_inputs(req)
        sess.begin(sess.run_continue(req.advance_count))

    async def _start_continue_to(self, sess: SimSession, params: Any) -> None:
        busy = sess.check_can_continue()
        if busy is not None:
            self.stats["continues_busy_rejected"] += 1
            await sess.emit(busy)
            return
        try:
            slot, batch = wire.parse_continue_to(params)
            if slot > sess.end_slot:
                raise wire.invalid(f"continueTo target slot {slot} is after endSlot {sess.end_slot}")
            if (slot, batch) < sess.pos or (sess.state == PAUSED and (slot, batch) == sess.paused_at):
                raise wire.invalid(f"continueTo target ({slot}, {batch}) is not ahead of the session position "
                                   f"({sess.pos[0]}, {sess.pos[1]})")
        except wire.RequestError as exc:
            await sess.emit(wire.error(exc.params))
            return
        sess.begin(sess.run_continue_to(slot, batch))

    async def _m_continue(self, conn: ControlConn, params: Any) -> None:
        await self._start_continue(self._target(conn, None), params)

    async def _m_continueTo(self, conn: ControlConn, params: Any) -> None:
        await self._start_continue_to(self._target(conn, None), params)

    def _split_v1(self, params: Any, what: str) -> Any:
        try:
            return self._dialect.split_v1(params, what)
        except wire.RequestError as exc:
            if "duplicate field" in str(exc.params):
                self.stats["duplicate_field_rejections"] += 1
            raise

    async def _m_continueSessionV1(self, conn: ControlConn, params: Any) -> None:
        sid, inner = self._split_v1(params, "continueSessionV1")
        await self._start_continue(self._target(conn, sid), inner)

    async def _m_continueToSessionV1(self, conn: ControlConn, params: Any) -> None:
        sid, inner = self._split_v1(params, "continueToSessionV1")
        await self._start_continue_to(self._target(conn, sid), inner)

    # --- close
    async def _m_closeBacktestSession(self, conn: ControlConn, params: Any) -> None:
        if conn.session is not None:
            sess = conn.session
            await sess.emit(wire.SUCCESS)
            await sess.teardown("closed by the client")
            return
        if conn.parallel is not None:
            par = conn.parallel
            await self._reply(conn, wire.SUCCESS)
            await par.teardown("closed by the client")
            return
        raise wire.invalid("no session on this control connection")

    async def _m_closeSessionV1(self, conn: ControlConn, params: Any) -> None:
        sid, _inner = self._split_v1(params, "closeSessionV1")
        sess = self._target(conn, sid)
        await sess.emit(wire.SUCCESS)
        await sess.teardown("closed by the client (closeSessionV1)")

    # --- attach / resume
    @staticmethod
    def _check_free(conn: ControlConn) -> None:
        if conn.session is not None or conn.parallel is not None or conn.creating:
            raise wire.invalid("this control connection already has a session")

    @staticmethod
    def _take_over(holder: Any, conn: ControlConn) -> None:
        """An attach claims a (parallel) session: drop its previous control connection, stop its expiry timer."""
        old = holder.conn
        if old is not None and old is not conn:
            log.info("%s: attach takes over from a previous control connection", holder.id)
            holder.conn = None
            old.abort()
        if holder.expiry is not None:
            holder.expiry.cancel()
            holder.expiry = None

    async def _m_attachBacktestSession(self, conn: ControlConn, params: Any) -> None:
        sid, last = wire.parse_attach(params)
        self._check_free(conn)
        sess = self._sessions.get(sid)
        if sess is None or sess.parent is not None or not sess.resumable:
            raise wire.RequestError({"sessionNotFound": {"session_id": sid}})
        self._take_over(sess, conn)
        self.stats["sessions_attached"] += 1
        async with conn.lock:
            replay = sess.replay_from(last)
            sess.conn = conn
            conn.session = sess
            await conn.send_locked(wire.session_created("sessionAttached", sess.id, sess.task_id))
            for text in replay:
                if not await conn.send_locked(text):
                    break

    async def _m_resumeAttachedSession(self, conn: ControlConn, params: Any) -> None:
        if conn.session is not None:
            await conn.session.emit(wire.SUCCESS)
        elif conn.parallel is not None:
            await self._reply(conn, wire.SUCCESS)
        else:
            raise wire.invalid("resumeAttachedSession without an attached session")

    async def _m_attachParallelControlSessionV2(self, conn: ControlConn, params: Any) -> None:
        cid, last_seqs = wire.parse_parallel_attach(params)
        self._check_free(conn)
        par = self._parallels.get(cid)
        if par is None or not par.resumable or not par.created_done:
            raise wire.RequestError({"sessionNotFound": {"session_id": cid}})
        self._take_over(par, conn)
        self.stats["parallel_attached"] += 1
        subs = [s for s in par.subs if s.state != "closed"]
        async with conn.lock:
            replays = [s.replay_from(last_seqs.get(s.id)) for s in subs]
            par.conn = conn
            conn.parallel = par
            await conn.send_locked(wire.frame("parallelSessionAttachedV2", {
                "control_session_id": par.id, "session_ids": [s.id for s in subs],
                "task_ids": [s.task_id for s in subs]}))
            for replay in replays:
                for text in replay:
                    if not await conn.send_locked(text):
                        return

    # ------------------------------------------------------------------ subscription WS
    async def _h_subscriptions(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        await self.stall_gate()
        sess = self._sessions.get(sid)
        if sess is None:
            raise web.HTTPNotFound(text=f"session not found: {sid}\n")
        if not request.headers.get("Upgrade", "").lower() == "websocket":
            raise web.HTTPMethodNotAllowed("GET", ["POST"], text="POST JSON-RPC or open a WebSocket\n")
        ws = await self._ws_accept(request)
        if ws is None:
            return web.Response(status=400, text="client left during the upgrade\n")  # never reaches it
        conn = SubConn(self, ws, request, sess)
        self._conns.add(conn)
        self.stats["subscription_connections"] += 1
        self._stop_reading(conn)
        try:
            while not conn.closed:
                msg = await conn.receive()
                if msg is None:
                    break
                if msg.type == WSMsgType.TEXT:
                    await self._on_sub_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    self._on_ping(conn, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
            if conn._close_requested.is_set() and not ws.closed:
                await conn.finish_close()
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug in a request handler: make it visible
            log.exception("subscription connection handler failed")
        finally:
            conn.closed = True
            self._conns.discard(conn)
            sess.subs = [s for s in sess.subs if s.conn is not conn]
        return ws

    async def _on_sub_text(self, conn: SubConn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await conn.send(wire.dumps({"jsonrpc": "2.0", "id": None,
                                        "error": {"code": -32700, "message": "Parse error"}}))
            return
        if not isinstance(msg, dict):
            await conn.send(wire.dumps({"jsonrpc": "2.0", "id": None,
                                        "error": {"code": -32600, "message": "Invalid request"}}))
            return
        rid = msg.get("id")
        method = msg.get("method")
        params = msg.get("params")
        if params is None:
            params = []
        if not isinstance(params, list):
            params = [params]

        def err(code: int, message: str) -> str:
            return wire.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})

        method = method if isinstance(method, str) else ""
        if method.endswith("Subscribe") and method[:-len("Subscribe")] in SUBSCRIBE_FILTERS:
            if self._faults.take_ignored_subscribe():
                log.info("fault: ignoring a subscribe (never acked)")
                return
            await self._subscribe(conn, rid, method, params, err)
        elif method.endswith("Unsubscribe") and method[:-len("Unsubscribe")] in SUBSCRIBE_FILTERS:
            kind = method[:-len("Unsubscribe")]
            sub_id = params[0] if params else None
            sess = conn.session
            found = [s for s in sess.subs if s.conn is conn and s.id == sub_id and s.kind == kind]
            if not found:
                await conn.send(err(-32602, f"Invalid subscription id: {sub_id}"))
                return
            sess.subs = [s for s in sess.subs if s not in found]
            await conn.send(wire.dumps({"jsonrpc": "2.0", "id": rid, "result": True}))
        else:
            served = ", ".join(f"{k}Subscribe" for k in sorted(SUBSCRIBE_FILTERS))
            await conn.send(err(-32601, f"Method not found: {method} (the local simulator serves {served})"))

    async def _subscribe(self, conn: SubConn, rid: Any, method: str, params: List[Any], err: Any) -> None:
        sess = conn.session
        filt = params[0] if params else None
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if method == "actionSubscribe" and len(params) == 1 and isinstance(filt, dict):
            cfg = filt  # keyless: ``params: [<config>]`` is the config alone (§9.2.1)
        if filt is None:
            filt = {}
        make = SUBSCRIBE_FILTERS[method[:-len("Subscribe")]](conn, filt)
        if isinstance(make, str):
            await conn.send(err(-32602, f"Invalid params: {make}"))
            return
        replay = wire.get(cfg, "replayFromSlot", None)
        if replay is not None and (not isinstance(replay, int) or isinstance(replay, bool)):
            replay = None   # malformed options default to off (PROTOCOL §9.3)
        async with conn.lock:
            if replay is not None and sess.evicted_max is not None and replay <= sess.evicted_max:
                oldest = sess.retained[0] if sess.retained else sess.evicted_max + 1
                await conn.send_locked(err(-32016, f"replay window exceeded: oldest retained slot {oldest}"))
                return
            sub = make(sess.next_sub_id())
            if wants_zstd(cfg):
                sub.compressed = zstd_available()
                if not sub.compressed:
                    self.stats["zstd_ignored"] += 1
                    log.info("a subscribe asked for zstd but zstandard is not installed here: sending Text frames")
            ack: Any = wire.dumps({"jsonrpc": "2.0", "id": rid, "result": sub.id})
            if sub.compressed and self._dialect.zstd_ack == "zstd":
                ack = Compressed(ack)
            if not sess.finished and sess.continues_started == 0 and self._faults.take_early_complete(sess.id):
                # "subscribed before the data plane was up" (PROTOCOL §9.5): acked, then ended at once, no results
                self.stats["subscriptions"] += 1
                self.stats["early_completes_sent"] += 1
                await conn.send_locked(ack)
                await conn.send_locked(sub.end_frame(complete_text(sub.id)))
                return
            texts = sess.replay_texts(sub, replay) if replay is not None else []
            finished = sess.state in FINISHED
            if not finished:
                sess.subs.append(sub)
            self.stats["subscriptions"] += 1
            await conn.send_locked(ack)
            flap = self._faults.take_subscription_flap()
            if flap:
                sess.subs = [s for s in sess.subs if s is not sub]
                texts, finished = [], False
            for text in texts:
                if not await conn.send_locked(sub.frame(text)):
                    return
            if finished:
                sub.ended = True
                await conn.send_locked(sub.end_frame())
        if flap:
            self.stats["subscription_flaps"] += 1
            log.info("fault: flapping a subscription socket of session %s (close 1011)", sess.id)
            await conn.close(code=1011)
        elif finished:
            await conn.close()


SubscriptionFactory = Callable[[int], Subscription]


def _transaction_filter(conn: SubConn, filt: Any) -> Union[str, SubscriptionFactory]:
    """``transactionSubscribe``'s filter (§9.1): ``{"programs": [...]}`` (or a bare list; none: every program)."""
    if isinstance(filt, list):
        filt = {"programs": filt}
    if not isinstance(filt, dict):
        return "filter must be an object {\"programs\": [...]}"
    programs = wire.get(filt, "programs", None)
    if programs is None:
        programs = wire.get(filt, "programIds", None)
    if programs is not None and (not isinstance(programs, list) or not all(isinstance(p, str) for p in programs)):
        return "`programs` must be an array of base58 ids"
    chosen = set(programs) if programs else None
    return lambda sub_id: Subscription(sub_id, "transaction", conn, chosen)


def _account_diff_filter(conn: SubConn, filt: Any) -> Union[str, SubscriptionFactory]:
    """``accountDiffSubscribe``'s filter (§9.2): ``{"address": .., "address_type": "program"|"account"}``."""
    if isinstance(filt, str):
        filt = {"address": filt, "address_type": "account"}
    address = wire.get(filt, "address") if isinstance(filt, dict) else None
    atype = wire.get(filt, "addressType", "account") if isinstance(filt, dict) else None
    if not isinstance(address, str) or atype not in ("program", "account"):
        return "expected {\"address\": <base58>, \"address_type\": \"program\"|\"account\"}"
    return lambda sub_id: Subscription(sub_id, "accountDiff", conn, None, address, atype)


def _logs_filter(conn: SubConn, filt: Any) -> Union[str, SubscriptionFactory]:
    """``logsSubscribe``'s filter (§9.2.2, standard Solana): ``"all"``, ``"allWithVotes"`` or ``{"mentions":
    [address]}`` (standard Solana takes exactly one address); anything else is refused naming what is wrong."""
    if filt == "all" or filt == "allWithVotes":
        return lambda sub_id: Subscription(sub_id, "logs", conn, None)
    if isinstance(filt, str):
        return ("filter must be \"all\", \"allWithVotes\" or {\"mentions\": [<base58 address>]}, "
                f"got the string {filt!r:.60}")
    if not isinstance(filt, dict):
        return f"filter must be \"all\", \"allWithVotes\" or {{\"mentions\": [...]}}, got {type(filt).__name__}"
    unknown = sorted(str(k) for k in filt if k != "mentions")
    if unknown:
        return f"unknown logs filter field(s) {', '.join(unknown)} (expected \"mentions\")"
    if "mentions" not in filt:
        return "missing field `mentions` (or give the filter \"all\" / \"allWithVotes\")"
    mentions = filt.get("mentions")
    if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
        return "`mentions` must be an array holding one base58 address"
    if len(mentions) != 1:
        return f"`mentions` must hold exactly one address, got {len(mentions)} (one logsSubscribe per address)"
    if not is_pubkey(mentions[0]):
        return f"`mentions`: {mentions[0]!r:.60} is not a base58 address"
    return lambda sub_id: Subscription(sub_id, "logs", conn, {mentions[0]})


def _action_filter(conn: SubConn, filt: Any) -> Union[str, SubscriptionFactory]:
    """``actionSubscribe`` (§9.2.1): keyless; any filter object (usually ``{}``) is accepted and ignored."""
    return lambda sub_id: Subscription(sub_id, "action", conn)


#: The data-plane kinds served: ``<kind>Subscribe``'s filter parser, which returns the subscription's factory (called
#: with its id) or the text of an ``Invalid params`` error. A new kind is one entry here and one in
#: :data:`simclient.local.session.NOTIFICATION_TEXTS`.
SUBSCRIBE_FILTERS: Dict[str, Callable[[SubConn, Any], Union[str, SubscriptionFactory]]] = {
    "transaction": _transaction_filter,
    "accountDiff": _account_diff_filter,
    "logs": _logs_filter,
    "action": _action_filter,
}


def _raw_frame(text: Any) -> Union[str, bytes]:
    if isinstance(text, bytearray):
        text = bytes(text)
    if not isinstance(text, (str, bytes)):
        raise TypeError(f"an injected frame is a str (Text frame) or bytes (Binary frame), not {type(text).__name__}")
    return text


def _rpc_fault_response(fault: RpcFault, body: bytes) -> web.Response:
    """The HTTP answer of an injected JSON-RPC fault (see :class:`FaultPlan`)."""
    if fault.error is None:
        return web.Response(status=fault.status, body=fault.body.encode(), content_type=fault.content_type)
    try:
        request = json.loads(body)
    except ValueError:
        request = None
    rid = request.get("id") if isinstance(request, dict) else None
    text = wire.dumps({"jsonrpc": "2.0", "id": rid, "error": fault.error})
    return web.Response(status=fault.status, text=text, content_type="application/json")


__all__ = ["LocalSimulator", "ControlConn", "SubConn", "THREAD_NAME"]
