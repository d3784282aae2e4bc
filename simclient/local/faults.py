"""FaultPlan: deterministic fault injection for the local simulator.

Every fault is counter based ("every n-th ..."), so a given client behaviour always meets the faults at the same
points; the seed only chooses the content of garbage frames. A plan is thread-safe: tests may reconfigure it from
their own thread while the simulator runs. Each configuring method returns the plan, so calls chain::

    FaultPlan(seed=1).drop_control_every(25).garbage_every(7)

Counting rules (chosen so that progress is always possible):

* ``drop_control_every(n, times=None)``: counts *live sequenced* control frames only (frames of a session created with
  ``disconnectTimeoutSecs > 0``, single ``seqId`` frames or parallel ``sessionEventV2`` frames) emitted after the
  create completed (after a single session's ``sessionCreated``, after ``sessionsCreatedV2`` in parallel mode): a
  drop during create makes a client retry the create, which could otherwise loop forever. Attach replies and
  replayed frames are not counted either, so a reattach always gets its replay through. The n-th frame is kept in
  the replay buffer but not sent; the TCP connection is aborted instead. With ``times``, the fault switches itself
  off after that many drops (``drop_control_every(1, times=1)``: the first live sequenced frame, exactly once).
* ``drop_subscriptions_every(n)``: counts live data-plane notifications (not replayed ones); the n-th is not sent and
  its subscription socket is aborted. It stays in the retained window, so a ``replayFromSlot`` resubscribe gets it.
* ``garbage_every(n)``: counts every control frame sent (live or replayed); before the n-th, a non-JSON text frame is
  sent. Garbage is never sequenced.
* ``lose_continue_every(n)``: counts received continue requests of any form (``continue``, ``continueTo``,
  ``continueSessionV1``, ``continueToSessionV1``); the n-th is not acted upon and the control socket is aborted.
* ``stall(seconds, after_frames=0)``: the server sends nothing on any socket, answers no pings and sessions do not
  advance, for ``seconds``. It starts immediately, or after ``after_frames`` more control frames have been sent.
* ``stop_reading(seconds, after_frames=0, control=True, subscriptions=True)``: the server stops reading its client
  sockets (TCP reads paused, so the client's send buffer fills and its writes block) for ``seconds``: every socket
  of the chosen kinds accepted while it lasts, and, once ``after_frames`` more control frames have been sent (with
  ``after_frames`` given), every live one too. It still writes. For "every live socket, now", see
  :meth:`LocalSimulator.stop_reading`.
* ``fail_at_slot(slot, variant)``: a session reaching ``slot`` emits a terminal ``error`` of that ``BacktestError``
  variant instead of executing it.
* ``early_complete_subscribes(n=1)``: the first ``n`` subscribe requests of each session that arrive before it acted
  on any continue are acked and then answered at once with ``subscriptionComplete`` (no results, the subscription is
  not kept): the "subscribed before the data plane was up" answer of PROTOCOL §9.5.
* ``flap_control(times=None)``: a flapping control link. The server answers the handshake correctly (the create's
  ``sessionCreated``/``sessionsCreatedV2``, the ``success`` of a ``resumeAttachedSession``, a parallel attach with its
  replay), then closes the connection at once with code 1011, before reading anything else. Every handshake
  answered while the fault is on flaps; with ``times`` it switches itself off after that many flaps.
* ``flap_subscriptions(times=None)``: the same on the data plane: a subscribe is acked, then the socket is closed
  with 1011 at once (no replay, no notification).
* ``ignore_creates(n=None, drop=False)``: the next ``n`` create requests (all while on, with None) are read and never
  answered (no reply, no session); the connection stays up and pings are answered, or, with ``drop``, it is
  aborted at once (a create lost with its connection).
* ``ignore_subscribes(n=None)``: the same for subscribe requests on the data plane (never acked).
* ``hold_parallel_create(after_sessions)``: the next parallel create stops right after its ``after_sessions``-th
  ``sessionCreated`` (and that sub-session's startup events) and sends nothing more of the create (no further
  ``sessionCreated``, no ``sessionsCreatedV2``) until :meth:`FaultPlan.release_parallel_create`;
  :attr:`FaultPlan.parallel_create_held` is True while it waits there. Once. For tests that must observe a client
  in the middle of a streamed create (the create's progress callbacks) without timing.
* ``delay_subscriptions_ms(ms)``: the data plane lags the control plane: each live notification is written ``ms``
  milliseconds after the session produced it (a FIFO per subscription socket), while the session goes on and its
  control messages go out at once. The socket's end of stream, close and pongs queue behind the delayed
  notifications (PROTOCOL §9: a lagging data plane flushes before it answers a ping), so a client that reads each
  subscription up to a ping barrier still sees every step's notifications before the step's end.

Raw injection (bad-input tests: frames no real server would send). Injected frames are extra frames: they are never
sequenced, never kept in a replay buffer, and do not count for ``garbage_every`` / ``drop_control_every``.

* ``inject_control(text, after_frames=0, session_id=None)``: send ``text`` verbatim (``bytes``: a Binary frame) on a
  control socket, once, immediately before the (``after_frames`` + 1)-th control frame sent from now on. Only frames
  sent on the control connection of ``session_id`` count when it is given (a single session id, a parallel
  control session id, or one of its sub-session ids); ``None`` means any control connection, which is how to reach
  the create handshake, where no id is known yet. Several injections may be pending; each counts on its own.
* ``inject_subscription(text, after_notifications=0, session_id=None)``: the same on the data plane: ``text`` goes out
  on a subscription socket immediately before the (``after_notifications`` + 1)-th live notification (of
  ``session_id`` when given).
* For "now, on this session's live socket", see :meth:`LocalSimulator.inject_control_frame` and
  :meth:`LocalSimulator.inject_subscription_frame`.

RPC faults: the per-session HTTP JSON-RPC endpoint (``POST /backtest/{id}``, any session id) answers the next ``n``
requests with a fault instead of serving them. Faults queue up in call order (``rpc_http_error(n=2)`` then
``rpc_error(...)``: two 500s, then one JSON-RPC error), and each request consumes one.

* ``rpc_non_json(n=1, status=200)``: a ``text/html`` body that is not JSON, with that HTTP status.
* ``rpc_http_error(status=500, n=1, body=...)``: that HTTP status with a plain-text (non-JSON) body.
* ``rpc_error(code, message, n=1, data=None)``: HTTP 200 with a JSON-RPC error object (the request's ``id`` echoed).
* ``rpc_reply(body, status=200, n=1, content_type="application/json")``: any raw body, e.g. JSON that is no
  JSON-RPC response at all.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Collection, Dict, List, Optional, Tuple, Union

__all__ = ["FaultPlan", "RpcFault"]

Raw = Union[str, bytes]

_SLOT_VARIANTS = {"advanceSlotFailed", "finalizeSlotFailed", "initializingSysvarsFailed", "invalidBlockhashFormat"}
_ERROR_VARIANTS = {"internal", "clerkError", "simulationError", "invalidRequest"}


def error_params(variant: str, slot: int) -> Any:
    """The ``error`` params (PROTOCOL §5.6, external tagging) of an injected fault at ``slot``."""
    if variant in _SLOT_VARIANTS:
        return {variant: {"slot": slot, "error": "injected fault"}}
    if variant in _ERROR_VARIANTS:
        return {variant: {"error": f"injected fault at slot {slot}"}}
    if variant == "sessionOwnershipBusy":
        return {variant: {"reason": "injected fault"}}
    return variant  # unit variants, e.g. "noMoreBlocks"


@dataclass(frozen=True)
class RpcFault:
    """One queued answer of the per-session JSON-RPC endpoint. ``error`` set: a JSON-RPC error object (the server
    echoes the request id); else ``body`` is sent verbatim."""

    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    error: Optional[Dict[str, Any]] = None


class _Injection:
    __slots__ = ("text", "left", "session_id")

    def __init__(self, text: Raw, left: int, session_id: Optional[str]):
        self.text = text
        self.left = left
        self.session_id = session_id


def _check_raw(text: Any) -> Raw:
    if isinstance(text, bytearray):
        text = bytes(text)
    if not isinstance(text, (str, bytes)):
        raise TypeError(f"an injected frame is a str (Text frame) or bytes (Binary frame), not {type(text).__name__}")
    return text


class FaultPlan:
    """A thread-safe, deterministic set of faults (see the module docstring for the exact counting rules)."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._drop_control = 0
        self._drop_control_left: Optional[int] = None  # drops still allowed (None: unlimited)
        self._drop_subs = 0
        self._garbage = 0
        self._lose_continue = 0
        self._fail_slots: Dict[int, str] = {}
        self._stall_until = 0.0
        self._stall_pending: Optional[tuple] = None  # (frames_left, seconds)
        self._read_stop_until = 0.0
        self._read_stop_kinds: tuple = ()  # of "control", "subscription"
        self._read_stop_pending: Optional[tuple] = None  # (frames_left, seconds, kinds)
        self._read_stop_epoch = 0  # bumped when a window starts on live sockets (the server applies it)
        self._sub_delay = 0.0  # seconds
        self._n_control_seq = 0
        self._n_notifications = 0
        self._n_frames = 0
        self._n_continues = 0
        self._control_injections: List[_Injection] = []
        self._subscription_injections: List[_Injection] = []
        self._rpc_faults: List[List[Any]] = []  # [remaining, RpcFault], in call order
        self._early_complete = 0
        self._early_completed: Dict[str, int] = {}  # session id -> early completes sent
        self._flap_control: Optional[int] = 0  # flaps left (None: forever, 0: off)
        self._flap_subs: Optional[int] = 0
        self._ignore_creates: Optional[int] = 0
        self.drop_ignored_creates = False
        self._ignore_subscribes: Optional[int] = 0
        self._create_hold_after = 0  # hold_parallel_create: after this many sessionCreated (0: off)
        self._create_released = threading.Event()
        self._create_holding = False

    def __repr__(self) -> str:
        with self._lock:
            parts = [f"seed={self.seed}"]
            for name, v in (("drop_control_every", self._drop_control), ("drop_subscriptions_every", self._drop_subs),
                            ("garbage_every", self._garbage), ("lose_continue_every", self._lose_continue)):
                if v:
                    parts.append(f"{name}={v}")
            if self._fail_slots:
                parts.append(f"fail_at_slot={self._fail_slots}")
            if self._sub_delay:
                parts.append(f"delay_subscriptions_ms={self._sub_delay * 1000:g}")
            pending = len(self._control_injections) + len(self._subscription_injections)
            if pending:
                parts.append(f"injections_pending={pending}")
            if self._rpc_faults:
                parts.append(f"rpc_faults_pending={sum(n for n, _ in self._rpc_faults)}")
            return f"FaultPlan({', '.join(parts)})"

    @staticmethod
    def _check_n(n: Optional[int]) -> int:
        if n is None:
            return 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("n must be a non-negative int (0 or None disables the fault)")
        return n

    # ------------------------------------------------------------------ configuration (any thread)
    def drop_control_every(self, n: Optional[int], times: Optional[int] = None) -> "FaultPlan":
        """Abort the control connection instead of sending every n-th live sequenced control frame (only the
        first ``times`` such drops when given: ``drop_control_every(1, times=1)`` drops the first one, once)."""
        n = self._check_n(n)
        times = None if times is None else self._check_n(times)
        with self._lock:
            self._drop_control, self._n_control_seq = n, 0
            self._drop_control_left = times
        return self

    def drop_subscriptions_every(self, n: Optional[int]) -> "FaultPlan":
        """Abort a subscription socket instead of sending every n-th live notification."""
        n = self._check_n(n)
        with self._lock:
            self._drop_subs, self._n_notifications = n, 0
        return self

    def garbage_every(self, n: Optional[int]) -> "FaultPlan":
        """Send a non-JSON text frame before every n-th control frame."""
        n = self._check_n(n)
        with self._lock:
            self._garbage, self._n_frames = n, 0
        return self

    def lose_continue_every(self, n: Optional[int]) -> "FaultPlan":
        """On every n-th continue request received, drop the control socket without acting on it."""
        n = self._check_n(n)
        with self._lock:
            self._lose_continue, self._n_continues = n, 0
        return self

    def stall(self, seconds: float, after_frames: int = 0) -> "FaultPlan":
        """Stall the whole server for ``seconds`` (now, or after ``after_frames`` more control frames)."""
        if seconds < 0 or after_frames < 0:
            raise ValueError("seconds and after_frames must be >= 0")
        with self._lock:
            if after_frames:
                self._stall_pending = (after_frames, float(seconds))
            else:
                self._stall_pending = None
                self._stall_until = time.monotonic() + seconds
        return self

    def stop_reading(self, seconds: float, after_frames: int = 0, control: bool = True,
                     subscriptions: bool = True) -> "FaultPlan":
        """Stop reading client sockets for ``seconds``: sockets accepted from now on while it lasts, and (with
        ``after_frames`` > 0) every live one once that many more control frames were sent."""
        if seconds < 0 or after_frames < 0:
            raise ValueError("seconds and after_frames must be >= 0")
        kinds = tuple(k for k, on in (("control", control), ("subscription", subscriptions)) if on)
        with self._lock:
            if after_frames:
                self._read_stop_pending = (after_frames, float(seconds), kinds)
            else:
                self._read_stop_pending = None
                self._read_stop_until = time.monotonic() + seconds
                self._read_stop_kinds = kinds
        return self

    def delay_subscriptions_ms(self, ms: float) -> "FaultPlan":
        """Write every live notification ``ms`` milliseconds late, relative to the control plane (0 turns it off)."""
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not ms >= 0:
            raise ValueError(f"ms must be a non-negative number, got {ms!r}")
        with self._lock:
            self._sub_delay = ms / 1000.0
        return self

    def fail_at_slot(self, slot: int, variant: str = "advanceSlotFailed") -> "FaultPlan":
        """Make any session reaching ``slot`` fail with a terminal ``error`` of BacktestError ``variant``."""
        with self._lock:
            self._fail_slots[int(slot)] = variant
        return self

    # --- flaps and unanswered handshakes
    @staticmethod
    def _check_times(times: Optional[int]) -> Optional[int]:
        if times is None:
            return None
        if not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise ValueError("times must be a non-negative int or None (forever)")
        return times

    def flap_control(self, times: Optional[int] = None) -> "FaultPlan":
        """Answer each control handshake, then close with 1011 at once (``times`` flaps; None: forever)."""
        times = self._check_times(times)
        with self._lock:
            self._flap_control = times
        return self

    def flap_subscriptions(self, times: Optional[int] = None) -> "FaultPlan":
        """Ack each subscribe, then close its socket with 1011 at once (``times`` flaps; None: forever)."""
        times = self._check_times(times)
        with self._lock:
            self._flap_subs = times
        return self

    def ignore_creates(self, n: Optional[int] = None, drop: bool = False) -> "FaultPlan":
        """Never answer the next ``n`` create requests (None: every create while the fault is on); with ``drop``
        the connection is aborted when the create arrives."""
        n = self._check_times(n)
        with self._lock:
            self._ignore_creates = n
            self.drop_ignored_creates = bool(drop)
        return self

    def ignore_subscribes(self, n: Optional[int] = None) -> "FaultPlan":
        """Never ack the next ``n`` subscribe requests (None: every subscribe while the fault is on)."""
        n = self._check_times(n)
        with self._lock:
            self._ignore_subscribes = n
        return self

    def hold_parallel_create(self, after_sessions: int) -> "FaultPlan":
        """Hold the next parallel create after its ``after_sessions``-th ``sessionCreated`` until
        :meth:`release_parallel_create` (see the module docstring)."""
        if not isinstance(after_sessions, int) or isinstance(after_sessions, bool) or after_sessions < 1:
            raise ValueError("after_sessions must be an int >= 1")
        with self._lock:
            self._create_hold_after = after_sessions
            self._create_released.clear()
            self._create_holding = False
        return self

    def release_parallel_create(self) -> None:
        """Let a held parallel create go on (also before it reached the hold: then it does not stop)."""
        with self._lock:
            self._create_hold_after = 0
            self._create_released.set()

    @property
    def parallel_create_held(self) -> bool:
        """A parallel create is waiting at the :meth:`hold_parallel_create` point right now."""
        with self._lock:
            return self._create_holding

    @staticmethod
    def _take(left: Optional[int]) -> Tuple[bool, Optional[int]]:
        if left is None:
            return True, None
        if left <= 0:
            return False, 0
        return True, left - 1

    def take_control_flap(self) -> bool:
        """Called when a control handshake was answered: True means close the connection (1011) now."""
        with self._lock:
            hit, self._flap_control = self._take(self._flap_control)
            return hit

    def take_subscription_flap(self) -> bool:
        """Called when a subscribe was acked: True means close the socket (1011) now."""
        with self._lock:
            hit, self._flap_subs = self._take(self._flap_subs)
            return hit

    def take_ignored_subscribe(self) -> bool:
        """Called for each subscribe request: True means read it and never answer."""
        with self._lock:
            hit, self._ignore_subscribes = self._take(self._ignore_subscribes)
            return hit

    def take_ignored_create(self) -> bool:
        """Called for each create request: True means read it and never answer."""
        with self._lock:
            hit, self._ignore_creates = self._take(self._ignore_creates)
            return hit

    # --- raw injection
    def inject_control(self, text: Raw, after_frames: int = 0, session_id: Optional[str] = None) -> "FaultPlan":
        """Send ``text`` verbatim on a control socket once, right before the (after_frames+1)-th control frame from
        now on (frames of ``session_id``'s control connection only, when given)."""
        after_frames = self._check_n(after_frames)
        with self._lock:
            self._control_injections.append(_Injection(_check_raw(text), after_frames, session_id))
        return self

    def inject_subscription(self, text: Raw, after_notifications: int = 0,
                            session_id: Optional[str] = None) -> "FaultPlan":
        """Send ``text`` verbatim on a subscription socket once, right before the (after_notifications+1)-th live
        notification from now on (of ``session_id`` only, when given)."""
        after_notifications = self._check_n(after_notifications)
        with self._lock:
            self._subscription_injections.append(_Injection(_check_raw(text), after_notifications, session_id))
        return self

    # --- RPC faults
    def _queue_rpc(self, n: int, fault: RpcFault) -> "FaultPlan":
        n = self._check_n(n)
        if n:
            with self._lock:
                self._rpc_faults.append([n, fault])
        return self

    def rpc_non_json(self, n: int = 1, status: int = 200,
                     body: str = "<html><body>simclient.local: injected non-JSON reply</body></html>") -> "FaultPlan":
        """The next ``n`` JSON-RPC requests get a body that is not JSON (``text/html``), with HTTP ``status``."""
        return self._queue_rpc(n, RpcFault(int(status), body, "text/html"))

    def rpc_http_error(self, status: int = 500, n: int = 1,
                       body: str = "simclient.local: injected internal server error") -> "FaultPlan":
        """The next ``n`` JSON-RPC requests get HTTP ``status`` with a plain-text body."""
        return self._queue_rpc(n, RpcFault(int(status), body, "text/plain"))

    def rpc_error(self, code: int, message: str, n: int = 1, data: Any = None) -> "FaultPlan":
        """The next ``n`` JSON-RPC requests get HTTP 200 with the JSON-RPC error ``{code, message[, data]}``."""
        error: Dict[str, Any] = {"code": int(code), "message": str(message)}
        if data is not None:
            error["data"] = data
        return self._queue_rpc(n, RpcFault(200, "", "application/json", error))

    def rpc_reply(self, body: str, status: int = 200, n: int = 1,
                  content_type: str = "application/json") -> "FaultPlan":
        """The next ``n`` JSON-RPC requests get ``body`` verbatim with HTTP ``status``."""
        return self._queue_rpc(n, RpcFault(int(status), body, content_type))

    def early_complete_subscribes(self, n: Optional[int] = 1) -> "FaultPlan":
        """Answer each session's first ``n`` subscribes (before any continue) with an immediate subscriptionComplete."""
        n = self._check_n(n)
        with self._lock:
            self._early_complete = n
            self._early_completed = {}
        return self

    def take_early_complete(self, session_id: str) -> bool:
        """Called for each subscribe of a session that has not started a continue yet."""
        with self._lock:
            done = self._early_completed.get(session_id, 0)
            if done >= self._early_complete:
                return False
            self._early_completed[session_id] = done + 1
            return True

    def clear(self) -> "FaultPlan":
        """Remove every fault (including a running stall and pending injections) and reset the counters."""
        with self._lock:
            self._drop_control = self._drop_subs = self._garbage = self._lose_continue = 0
            self._n_control_seq = self._n_notifications = self._n_frames = self._n_continues = 0
            self._fail_slots.clear()
            self._sub_delay = 0.0
            self._stall_until = 0.0
            self._stall_pending = None
            self._read_stop_until = 0.0
            self._read_stop_pending = None
            self._control_injections = []
            self._subscription_injections = []
            self._rpc_faults = []
            self._early_complete = 0
            self._early_completed = {}
            self._flap_control = self._flap_subs = self._ignore_creates = self._ignore_subscribes = 0
            self._create_hold_after = 0
            self._create_released.set()
        return self

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._drop_control or self._drop_subs or self._garbage or self._lose_continue
                        or self._sub_delay or self._fail_slots or self._stall_pending or self._stall_until > time.monotonic()
                        or self._read_stop_pending or self._read_stop_until > time.monotonic()
                        or self._control_injections or self._subscription_injections or self._rpc_faults
                        or self._flap_control != 0 or self._flap_subs != 0 or self._ignore_creates != 0
                        or self._ignore_subscribes != 0 or self._early_complete)

    @property
    def pending_injections(self) -> int:
        """Injected frames (control and data plane) not sent yet."""
        with self._lock:
            return len(self._control_injections) + len(self._subscription_injections)

    @property
    def pending_rpc_faults(self) -> int:
        """JSON-RPC requests that will still get a fault."""
        with self._lock:
            return sum(n for n, _ in self._rpc_faults)

    # ------------------------------------------------------------------ hooks (simulator loop thread)
    @property
    def subscription_delay(self) -> float:
        """Seconds each live notification is held back (``delay_subscriptions_ms``); read without the lock."""
        return self._sub_delay

    def take_create_hold(self, announced: int) -> bool:
        """Called before a parallel create sends its ``announced``-th ``sessionCreated``: True means the create is
        held from now on (:attr:`parallel_create_held`, so a client reading that ``sessionCreated`` sees it held):
        send it and its sub-session's startup events, then wait while :meth:`create_hold_waiting`."""
        with self._lock:
            if not self._create_hold_after or announced != self._create_hold_after:
                return False
            self._create_hold_after = 0
            self._create_holding = True
            return True

    def create_hold_waiting(self) -> bool:
        """While a create is held: True until :meth:`release_parallel_create` (then the hold is over)."""
        if self._create_released.is_set():
            with self._lock:
                self._create_holding = False
            return False
        return True

    def stall_remaining(self) -> float:
        with self._lock:
            return max(0.0, self._stall_until - time.monotonic())

    def read_stop_remaining(self, kind: str) -> float:
        """Seconds the server must still not read a socket of ``kind`` (``control`` / ``subscription``)."""
        with self._lock:
            if kind not in self._read_stop_kinds:
                return 0.0
            return max(0.0, self._read_stop_until - time.monotonic())

    @property
    def read_stop_epoch(self) -> int:
        """Bumped each time a counted ``stop_reading`` starts: the server then pauses every live socket."""
        return self._read_stop_epoch

    def on_control_frame(self) -> Optional[str]:
        """Called before each control frame is sent; returns a garbage text to send first, or None."""
        with self._lock:
            if self._read_stop_pending is not None:
                left, secs, kinds = self._read_stop_pending
                left -= 1
                if left <= 0:
                    self._read_stop_pending = None
                    self._read_stop_until = time.monotonic() + secs
                    self._read_stop_kinds = kinds
                    self._read_stop_epoch += 1
                else:
                    self._read_stop_pending = (left, secs, kinds)
            if self._stall_pending is not None:
                left, secs = self._stall_pending
                left -= 1
                if left <= 0:
                    self._stall_pending = None
                    self._stall_until = time.monotonic() + secs
                else:
                    self._stall_pending = (left, secs)
            if not self._garbage:
                return None
            self._n_frames += 1
            if self._n_frames % self._garbage:
                return None
            return f"<<simclient-local garbage #{self._n_frames} {self._rng.getrandbits(32):08x}>> not json {{"

    def take_control_drop(self) -> bool:
        """Called for each live sequenced control frame: True means abort the connection instead of sending."""
        with self._lock:
            if not self._drop_control:
                return False
            self._n_control_seq += 1
            if self._n_control_seq % self._drop_control:
                return False
            if self._drop_control_left is not None:
                self._drop_control_left -= 1
                if self._drop_control_left <= 0:
                    self._drop_control = 0  # that was the last one
            return True

    def take_subscription_drop(self) -> bool:
        with self._lock:
            if not self._drop_subs:
                return False
            self._n_notifications += 1
            return self._n_notifications % self._drop_subs == 0

    def take_lost_continue(self) -> bool:
        with self._lock:
            if not self._lose_continue:
                return False
            self._n_continues += 1
            return self._n_continues % self._lose_continue == 0

    def failure_at(self, slot: int) -> Optional[str]:
        with self._lock:
            return self._fail_slots.get(slot)

    @property
    def has_slot_failures(self) -> bool:
        with self._lock:
            return bool(self._fail_slots)

    @staticmethod
    def _due(pending: List[_Injection], session_ids: Optional[Collection[str]]) -> List[Raw]:
        out: List[Raw] = []
        for inj in list(pending):
            if inj.session_id is not None and (session_ids is None or inj.session_id not in session_ids):
                continue
            if inj.left:
                inj.left -= 1
            else:
                pending.remove(inj)
                out.append(inj.text)
        return out

    def take_control_injections(self, session_ids: Optional[Collection[str]]) -> List[Raw]:
        """Called before each control frame (``session_ids``: the ids the connection serves, None before any);
        returns the frames to send first."""
        if not self._control_injections:  # fast path, no lock: a list's truth value is read atomically
            return []
        with self._lock:
            return self._due(self._control_injections, session_ids)

    def take_subscription_injections(self, session_id: str) -> List[Raw]:
        """Called before each live notification of ``session_id``; returns the frames to send first."""
        if not self._subscription_injections:
            return []
        with self._lock:
            return self._due(self._subscription_injections, (session_id,))

    def take_rpc_fault(self) -> Optional[RpcFault]:
        """Called for each JSON-RPC request: the fault to answer with, or None to serve it."""
        if not self._rpc_faults:
            return None
        with self._lock:
            if not self._rpc_faults:
                return None
            entry = self._rpc_faults[0]
            entry[0] -= 1
            if entry[0] <= 0:
                self._rpc_faults.pop(0)
            return entry[1]
