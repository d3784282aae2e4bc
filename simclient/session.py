"""Session (single) and SubSession (one of a parallel run): the blocking driving surface.

Both read one ``queue.Queue`` fed by the control reader thread and by the session's subscription workers, and
both apply the completion drain: when ``completed`` arrives, trailing subscription notifications are delivered
before :class:`~simclient.events.Completed`; if a connected subscription does not reach end-of-stream within
``completion_drain_timeout`` (measured from the last event; time a subscription spends reconnecting does not
count, its reconnect budget bounds that), the iterator yields what arrived and then raises
:class:`CompletionDrainStalled`, so a truncated run is never reported as complete.

In-order steps (``ClientConfig.step_barrier``, on by default): every data-plane notification the server wrote
before a control event that ends a step (``ReadyForContinue``, ``Paused``, ``Completed``) is delivered before that
event. The control reader and the subscription workers read different sockets on different threads, so the queue
alone does not give that order. When the consumer dequeues ``ReadyForContinue``/``Paused`` it holds the event,
asks every live subscription for a barrier (a ping on its socket, :meth:`Subscription.request_barrier`) and keeps
reading the queue; the event is delivered once each subscription's :class:`BarrierPassed` marker (or its end of
stream) was read, after the notifications read meanwhile. The server writes a step's notifications before the
control message that ends the step (PROTOCOL §9, §11 step 3) and answers the ping after them, so the marker follows
them; a subscription that reconnects meanwhile pings again after its resubscribe, behind the replay from its
cursor. Control events read while an event is held stay behind it. ``Completed`` is ordered by the completion
drain. Only the consumer thread waits; the readers never block.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import events as ev
from ._base58 import is_pubkey
from .builders import Continue
from .compression import resolve_compression
from .config import ClientConfig
from .control import ControlConnection, Route
from .errors import CompletionDrainStalled, SessionClosedError, SessionError, SimclientError, Timeout
from .flow import FlowControl
from .protocol import AccountData
from .rpc import RpcClient
from .stats import SessionStats
from .kinds import ACCOUNT_DIFFS, ACTIONS, LOGS, TRANSACTIONS
from .subscriptions import (
    BarrierPassed,
    EndOfStream,
    ReconnectCoordinator,
    SlotMark,
    Subscription,
)

if TYPE_CHECKING:  # pragma: no cover
    from .discovery import DiscoveryStep

log = logging.getLogger("simclient.session")

_CLOSED = object()  # queue sentinel put by close()
_DRAIN_POLL = 0.25  # seconds: how often the completion drain looks at its subscriptions' connection state
#: Events the subscription workers queue (everything else in the queue comes from the control reader).
_DATA_EVENTS = (ev.Transaction, ev.AccountDiff, ev.Logs, ev.ActionResult)
#: Events whose delivery advance_to_discovery tracks (simclient.discovery).
_DISCOVERY_TRACKED = frozenset({ev.DiscoveryBatch, ev.ReadyForContinue, ev.Paused})


class _StepBarrier:
    """A step-ending event held until every subscription in ``waiting`` passed generation ``waiting[sub]`` (0: until
    its end of stream); ``before`` collects the notifications read meanwhile, ``after`` everything else."""

    __slots__ = ("held", "waiting", "before", "after", "started")

    def __init__(self, held: ev.Event, waiting: Dict[Subscription, int]):
        self.held = held
        self.waiting = waiting
        self.before: List[Any] = []
        self.after: List[Any] = []
        self.started = time.monotonic()


class _Drain:
    """The completion drain's state between calls: the held ``Completed`` and the idle clock."""

    __slots__ = ("completed", "idle", "spent", "last")

    def __init__(self, completed: ev.Completed, idle: float):
        self.completed = completed
        self.idle = idle
        self.spent = 0.0  # idle time while connected, since the last event
        self.last: Optional[float] = time.monotonic()  # when spent was last brought up to date (None: not counting)


class _BaseSession:
    """What Session and SubSession share: subscriptions, events(), gating, run(), rpc, stats."""

    def __init__(self, control: ControlConnection, route: Route, config: ClientConfig,
                 coordinator: Optional[ReconnectCoordinator] = None):
        self._control = control
        self._route = route
        self._config = config
        self._coordinator = coordinator
        self._subscriptions: List[Subscription] = []
        self._rpc: Optional[RpcClient] = None
        self._solana_clients: List[Any] = []  # handed out by solana_client(); closed with the session
        self._finished = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._drain: Optional[_Drain] = None  # the completion drain, once Completed was read
        self._ended: set[Any] = set()  # subscriptions whose EndOfStream marker was read from the queue
        self._barrier: Optional[_StepBarrier] = None  # a step-ending event waiting for its barrier
        self._ready: Deque[Any] = deque()  # events released by a barrier, delivered before anything else
        self._requeue: Deque[Any] = deque()  # queue items read during a barrier that belong after its event
        self._marks: Dict[Any, int] = {}  # subscription -> slot of its newest SlotMark read from the queue
        self._through: Optional[int] = None  # cached delivered_through (None: recompute)
        self._flow = FlowControl(config.max_buffered_events, config.buffered_events_low_water)
        # advance_to_discovery bookkeeping (simclient.discovery), kept by next_event and the continue senders
        self._disc_fresh: List[ev.DiscoveryBatch] = []  # batches delivered since the last continue-type request
        self._disc_idle: Optional[ev.Event] = None  # the ReadyForContinue/Paused delivered since then
        self._disc_target: Optional[ev.DiscoveryBatch] = None  # the batch the last continueTo aimed at
        self._disc_asked: Optional[Tuple[int, int]] = None  # (slot, batch) of that continueTo (or a step-over)
        self._disc_returned: Optional[Tuple[int, int]] = None  # the last pause advance_to_discovery returned
        self._disc_carry: List[ev.Event] = []  # events a timed-out advance_to_discovery read

    # ------------------------------------------------------------------ identity

    @property
    def session_id(self) -> str:
        return self._route.session_id

    @property
    def rpc_endpoint(self) -> str:
        """Absolute ``http(s)://`` URL of this session's JSON-RPC endpoint."""
        return self._route.rpc_endpoint

    @property
    def task_id(self) -> Optional[str]:
        return self._route.task_id

    @property
    def range(self) -> Tuple[int, int]:
        """``(start_slot, end_slot)``, both inclusive (server-authoritative in parallel runs)."""
        assert self._route.range is not None
        return self._route.range

    @property
    def stats(self) -> SessionStats:
        return self._route.stats

    @property
    def rpc(self) -> RpcClient:
        """JSON-RPC client bound to :attr:`rpc_endpoint` (valid from the first ReadyForContinue)."""
        if self._rpc is None:
            self._rpc = RpcClient(self.rpc_endpoint, timeout=self._config.rpc_timeout, ca_bundle=self._config.ca_bundle)
        return self._rpc

    def solana_client(self) -> Any:
        """A synchronous ``solana.rpc.api.Client`` bound to this session's endpoint (needs the ``solana`` extra).

        Closed with the session (its pooled connection too). solana-py 0.39 warns that this client is deprecated
        (0.40 removed it; the extra pins ``<0.40``); :attr:`rpc` is the SDK's own client. See docs/solana.md."""
        from .solana_interop import solana_client

        client = solana_client(self.rpc_endpoint, timeout=self._config.rpc_timeout)
        self._solana_clients.append(client)
        return client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self.session_id!r}, range={self._route.range})"

    def modify_program(self, program_id: Any, elf_bytes: bytes, *, slot: Optional[int] = None,
                       check_elf: bool = True) -> Dict[str, AccountData]:
        """:func:`simclient.modify_program` shaped after the program as this session sees it (like the Rust
        ``BacktestSession::modify_program``): reads ``program_id`` through :attr:`rpc` and, when it is an
        upgradeable program, keeps its ProgramData address, upgrade authority and (unless ``slot`` is given) its
        ProgramData slot; a program that does not exist yet gets the derived layout. Put the result into
        ``Continue(modify_account_states=...)`` (or ``rpc.modify_accounts``). Raises ValueError when the account
        exists but is not an upgradeable program (another loader's code cannot be replaced this way).

        Keeping the slot follows "derives the ProgramData account shape" of the Rust client; pass ``slot=`` if
        your server needs a new deployment slot to reload the code (it must stay below the slots that run it)."""
        from .programs import BPF_LOADER_UPGRADEABLE, modify_program, parse_upgradeable_state

        pid = str(program_id)
        current = self.rpc.get_account(pid)
        if current is None:
            return modify_program(pid, elf_bytes, slot=0 if slot is None else slot, check_elf=check_elf)
        if current.owner != BPF_LOADER_UPGRADEABLE:
            raise ValueError(f"program_id {pid} is owned by {current.owner}, not the upgradeable loader "
                             f"{BPF_LOADER_UPGRADEABLE}: only upgradeable programs can be replaced")
        state = parse_upgradeable_state(current.data)
        if state["state"] != "program":
            raise ValueError(f"program_id {pid} holds an upgradeable-loader {state['state']} account, not a program")
        pda = state["programdata_address"]
        authority, last_slot = None, 0
        existing = self.rpc.get_account(pda)
        if existing is not None and existing.owner == BPF_LOADER_UPGRADEABLE:
            header = parse_upgradeable_state(existing.data)
            if header["state"] == "programdata":
                authority, last_slot = header["upgrade_authority"], header["slot"]
        return modify_program(pid, elf_bytes, slot=last_slot if slot is None else slot, upgrade_authority=authority,
                              programdata=pda, check_elf=check_elf)

    # ------------------------------------------------------------------ subscriptions

    def subscribe_transactions(self, program_ids: Sequence[str], compression: Optional[str] = None) -> None:
        """Stream every transaction invoking one of ``program_ids`` as :class:`events.Transaction`.

        ``compression="zstd"`` asks for zstd-compressed frames (PROTOCOL §9.4; ``pip install 'simclient[zstd]'``),
        ``"none"`` for plain ones; None (the default) takes ``ClientConfig.compression``. The events are the same
        either way (see :mod:`simclient.compression`)."""
        self._add_subscription(TRANSACTIONS, program_ids, compression)

    def subscribe_account_diffs(self, program_ids: Sequence[str], compression: Optional[str] = None) -> None:
        """Stream every write to an account owned by one of ``program_ids`` as :class:`events.AccountDiff`.

        The filter names one program (§9.2), so each program gets its own subscription socket: a server may close
        a socket once its subscription ended, which would cut off siblings sharing it. ``compression``: as for
        :meth:`subscribe_transactions`."""
        if isinstance(program_ids, str):
            program_ids = [program_ids]
        for program in dict.fromkeys(str(p) for p in program_ids):
            self._add_subscription(ACCOUNT_DIFFS, [program], compression)

    def subscribe_logs(self, program_ids: Sequence[str], compression: Optional[str] = None) -> None:
        """Stream the log messages of every transaction that mentions one of ``program_ids`` (any address: a program
        or an account) as :class:`events.Logs` (standard ``logsSubscribe`` with ``{"mentions": [address]}``).

        Standard Solana takes one address per ``mentions``, so each address gets its own subscription and, as for
        account diffs, its own socket (a resubscribe replays each subscription from the cursor in turn, which on
        one socket would break the worker's slot order). A transaction that mentions two of the addresses is
        delivered once per address (as standard Solana and the Rust ``subscribe_program_logs`` do), each
        :class:`~events.Logs` naming its ``program_id``; each address's stream is deduplicated by signature.
        ``compression``: as for :meth:`subscribe_transactions`."""
        if isinstance(program_ids, str):
            program_ids = [program_ids]
        programs = list(dict.fromkeys(str(p) for p in program_ids))
        if not programs:
            raise ValueError("subscribe_logs: program_ids must name at least one address")
        bad = [p for p in programs if not is_pubkey(p)]
        if bad:  # the server would refuse the subscribe (-32602); say so before anything is sent
            raise ValueError(f"subscribe_logs: program_ids: {bad[0]!r:.60} is not a base58 address")
        for program in programs:
            self._add_subscription(LOGS, [program], compression)

    def subscribe_actions(self, compression: Optional[str] = None) -> None:
        """Stream the results of the session's scheduled actions (``CreateSession(actions=...)``) as
        :class:`events.ActionResult`. Keyless (§9.2.1): one stream carries every action, told apart by
        ``action_index`` / ``label``. A second call does nothing (a second stream would only repeat the first)."""
        if any(s.kind == ACTIONS for s in self._subscriptions):
            return
        self._add_subscription(ACTIONS, [], compression)

    def _add_subscription(self, kind: str, program_ids: Sequence[str], compression: Optional[str] = None) -> None:
        if isinstance(program_ids, str):
            program_ids = [program_ids]
        if self._closed:
            raise SessionClosedError("session is closed")
        # checked here, on the caller's thread: a bad value or a missing zstandard fails the subscribe_* call
        compression = resolve_compression(compression, self._config.compression)
        sub = Subscription(kind, program_ids, self.rpc_endpoint, self._route.sink, self._config,
                           self._route.completed, self._route.range[0] if self._route.range else None,
                           self.session_id, self._route.stats, self._coordinator, self._route.range,
                           connection_factory=self._control.connection_factory,
                           continue_sent=lambda: self._route.continues_sent > 0, compression=compression)
        self._subscriptions.append(sub)
        self._through = None
        sub.start()

    def _subscriptions_ready(self) -> bool:
        return all(s.ready.is_set() for s in self._subscriptions)

    def _wait_subscriptions_up(self, timeout: Optional[float] = None) -> None:
        """Gating: a continue goes out only once every subscription is up (or has ended). Raises
        :class:`Timeout` after ``timeout`` seconds (None: until each subscription is up or has failed, which its
        reconnect budget and ``reconnect_max_total`` bound)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for sub in list(self._subscriptions):
            while not sub.ready.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))):
                if self._closed:
                    raise SessionClosedError("session is closed")
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"the {sub.kind} subscription of session {self.session_id} was not up within "
                                  f"{timeout:g}s: the continue was not sent")
            if sub.error is not None:
                raise sub.error

    # ------------------------------------------------------------------ driving

    def _encode_continue(self, cont: Continue) -> Dict[str, Any]:
        return self._control.mode.encode_continue(self.session_id, cont)

    def _encode_continue_to(self, slot: int, batch_index: int,
                            extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        return self._control.mode.encode_continue_to(self.session_id, slot, batch_index, extra)

    def send_continue(self, cont: Optional[Continue] = None, *, advance_count: Optional[int] = None,
                      timeout: Optional[float] = None) -> None:
        """Advance the session (``Continue`` or just ``advance_count=N``). Waits until every subscription is up
        (at most ``timeout`` seconds, else :class:`~simclient.errors.Timeout` and nothing is sent); a continue
        issued while the control connection is down is sent once, after the re-attach."""
        if cont is None:
            cont = Continue(advance_count=1 if advance_count is None else advance_count)
        elif advance_count is not None:
            raise ValueError("give either a Continue or advance_count, not both")
        if not isinstance(cont, Continue):
            raise TypeError(f"send_continue takes a Continue, got {type(cont).__name__}")
        cont = self._flow.split(cont, self._route.stats.events_delivered)  # flow control: maybe a first window
        self._wait_subscriptions_up(timeout)
        self._disc_sending()
        self._control.send_continue(self._route, self._encode_continue(cont))

    def _flow_send(self) -> None:
        """Flow control: send the next window of the user's advance if the queue has drained to low-water."""
        flow = self._flow
        cont = flow.next_window(self._route.sink.qsize(), self._route.stats.events_delivered)
        stats = self._route.stats
        stats.flow_waits = flow.waits
        if cont is None:
            return
        stats.flow_windows = flow.windows
        self._wait_subscriptions_up()
        self._disc_sending()
        self._control.send_continue(self._route, self._encode_continue(cont))

    def send_continue_to(self, slot: int, batch_index: int = 0, extra: Optional[Mapping[str, Any]] = None, *,
                         timeout: Optional[float] = None) -> None:
        """Run up to immediately before batch ``batch_index`` of ``slot``; the session then yields ``Paused``.
        ``timeout`` bounds the wait for the subscriptions, as in :meth:`send_continue`.

        ``extra``: ``continueTo`` fields newer than this SDK (wire names, e.g. the "before or after" switch of
        PROTOCOL §3.3), merged into the request's params as given."""
        for name, value in (("slot", slot), ("batch_index", batch_index)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self._flow.reset()
        if extra is not None:
            if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
                raise TypeError("extra must be a mapping of wire field names (str) to JSON values")
            clash = {"slot", "batchIndex", "batch_index"} & set(extra)
            if clash:
                raise ValueError(f"extra must not repeat {sorted(clash)}: pass slot/batch_index as arguments")
        self._wait_subscriptions_up(timeout)
        self._disc_sending()
        self._control.send_continue(self._route, self._encode_continue_to(slot, batch_index, extra))

    def _disc_sending(self) -> None:
        """A continue-type request is going out: the batches announced so far were for the step that ended (§5.5:
        the server announces the next one again after every continue)."""
        self._disc_fresh = []
        self._disc_idle = None
        self._disc_target = None
        self._disc_asked = None

    def _disc_track(self, event: Any) -> None:
        if type(event) is ev.DiscoveryBatch:
            self._disc_fresh.append(event)
        else:
            self._disc_idle = event

    def advance_to_discovery(self, timeout: Optional[float] = None, *, settle: Optional[float] = None,
                             extra: Optional[Mapping[str, Any]] = None) -> DiscoveryStep:
        """Run to immediately before the next batch the session's discovery filters match (``CreateSession(
        discoveries=[program_executed(pid)])``): consumes events up to the next ``DiscoveryBatch``, sends
        ``continueTo`` its ``(slot, batch_index)`` and returns the ``Paused`` event as a
        :class:`~simclient.discovery.DiscoveryPause` (``.batch``: the batch), or, when no batch is left, the
        ``Completed`` event as a :class:`~simclient.discovery.DiscoveryCompleted` (the rest of the range is run).
        Both are :class:`~simclient.discovery.DiscoveryStep`; every other event read meanwhile is in ``.events``.

        Call it from an idle point or before the first event (it reads up to the idle marker first). ``timeout``
        bounds the whole call (:class:`~simclient.errors.Timeout`; what was read is kept for the next call);
        ``settle`` is how long an idle session with nothing to target waits for a late batch (default
        :data:`~simclient.discovery.DISCOVERY_SETTLE`); ``extra`` goes into each ``continueTo`` (PROTOCOL §3.3).
        The rules (which batches count, late and repeated announcements) are in :mod:`simclient.discovery`."""
        from .discovery import advance_to_discovery

        return advance_to_discovery(self, timeout, settle, extra)

    def events(self, timeout: Optional[float] = None) -> Iterator[ev.Event]:
        """Yield events until ``Completed`` (inclusive). Raises the session's fatal error, SessionClosedError
        if closed meanwhile, or TimeoutError if ``timeout`` seconds pass without an event."""
        next_event, get, requeue, stats = self.next_event, self._route.sink.get, self._requeue, self._route.stats
        while True:
            drain = self._drain
            if drain is not None and not requeue and not self._finished:
                # the completion drain's common case, _serve_drain's first step without its two calls per event
                try:
                    item = get(False)
                except queue.Empty:
                    pass
                else:
                    kind = type(item)
                    if kind in _DATA_EVENTS:
                        drain.spent = 0.0
                        drain.last = None
                        stats.events_delivered += 1
                        yield item
                        continue
                    if kind is SlotMark:
                        self._apply_marker(item)
                        continue
                    requeue.append(item)  # anything else: next_event reads it first
            event = next_event(timeout)
            if event is None:
                return
            yield event
            if type(event) is ev.Completed:
                return

    def next_event(self, timeout: Optional[float] = None) -> Optional[ev.Event]:
        """The next event, or None once the session has finished."""
        if self._drain is not None:
            return self._serve_drain(timeout)
        if self._finished:
            return None
        if self._ready:
            return self._serve_ready()
        if self._barrier is not None:  # a previous call timed out while waiting for the barrier
            self._wait_barrier(timeout)
            return self._serve_ready()
        while True:
            if self._flow.waiting:  # before blocking: the next window may be due (the queue drained)
                self._flow_send()
            item = self._take(timeout)
            kind = type(item)
            if isinstance(item, ev.Event):
                if kind is ev.Completed:
                    self._flow.reset()
                    return self._start_drain(item, timeout)  # type: ignore[arg-type]
                if kind is ev.ReadyForContinue and self._flow.remaining:  # a window's end: hidden
                    self._flow.on_ready(self._route.stats.events_delivered)
                    self._flow_send()
                    continue
                if (kind is ev.ReadyForContinue or kind is ev.Paused) and self._begin_barrier(item):
                    self._wait_barrier(timeout)
                    return self._serve_ready()
                if kind in _DISCOVERY_TRACKED:
                    self._disc_track(item)
                self._route.stats.events_delivered += 1
                return item
            if (kind is SlotMark or kind is EndOfStream) and self._apply_marker(item):
                continue
            if kind is BarrierPassed:
                continue  # of a barrier that already ended (the subscription's end or an error released it)
            self._finished = True
            if item is _CLOSED:
                raise SessionClosedError(f"session {self.session_id} was closed")
            if isinstance(item, BaseException):
                raise item
            raise SimclientError(f"unexpected queue item {item!r}")  # pragma: no cover

    @property
    def delivered_through(self) -> int:
        """The highest slot S such that every subscription's events at slots <= S have already been returned by
        :meth:`next_event` / :meth:`events` (the range's end once every subscription ended; ``start - 1`` before
        anything arrived). A subscription delivers in slot order, so nothing at or below S can still come: the
        streamed run writer finalises records up to here. A subscription that is silent for a long stretch holds
        this back (there is no data-plane heartbeat to move it)."""
        through = self._through
        if through is None:
            start, end = self._route.range or (0, 0)
            through = end
            for sub in self._subscriptions:
                if sub in self._ended:
                    continue
                mark = self._marks.get(sub)
                through = min(through, (start if mark is None else mark) - 1)
            self._through = through
        return through

    def _get(self, timeout: Optional[float]) -> Any:
        try:
            return self._route.sink.get(timeout=timeout)
        except queue.Empty:
            raise Timeout(f"no event from session {self.session_id} within {timeout}s") from None

    def _take(self, timeout: Optional[float]) -> Any:
        """The next queue item: first those a barrier put back, then the queue."""
        if self._requeue:
            return self._requeue.popleft()
        return self._get(timeout)

    # ------------------------------------------------------------------ step barrier

    def _begin_barrier(self, held: ev.Event) -> bool:
        """Hold ``held`` behind a barrier on every live subscription; False when there is nothing to wait for."""
        if not self._config.step_barrier:
            return False
        waiting: Dict[Subscription, int] = {}
        for sub in self._subscriptions:
            if sub in self._ended or not sub.has_been_up:
                continue  # never subscribed yet: it cannot owe notifications of a step that ended before it
            gen = sub.request_barrier()
            waiting[sub] = 0 if gen is None else gen  # 0: ended or failed, its EndOfStream / error is queued
        if not waiting:
            return False
        self._barrier = _StepBarrier(held, waiting)
        return True

    def _wait_barrier(self, timeout: Optional[float]) -> None:
        """Read the queue until every subscription passed the barrier; then release the held event behind the
        notifications read meanwhile. A Timeout leaves the barrier in place for the next call."""
        barrier = self._barrier
        assert barrier is not None
        waiting = barrier.waiting
        while waiting:
            item = self._take(timeout)
            kind = type(item)
            if kind is BarrierPassed:
                want = waiting.get(item.subscription)
                if want is not None and want and item.generation >= want:
                    del waiting[item.subscription]
            elif kind is EndOfStream:
                waiting.pop(item.subscription, None)
                barrier.before.append(item)  # applied when served: ``delivered_through`` must not pass the
            elif kind is SlotMark:  # data read in this wait before the consumer has returned it
                barrier.before.append(item)
            elif kind in _DATA_EVENTS:
                barrier.before.append(item)
            else:
                barrier.after.append(item)
                if item is _CLOSED or isinstance(item, BaseException):
                    break  # the session ends here: deliver what we have, then this
        self._barrier = None
        self._route.stats.step_barriers += 1
        self._route.stats.step_barrier_seconds += time.monotonic() - barrier.started
        self._ready.extend(barrier.before)
        self._ready.append(barrier.held)
        self._requeue.extendleft(reversed(barrier.after))

    def _serve_ready(self) -> ev.Event:
        """The next event a barrier released. Markers read during the barrier (SlotMark, EndOfStream) are applied
        in their place in the stream, so ``delivered_through`` never runs ahead of what was returned (the held
        event is always last, so an event follows)."""
        while True:
            item = self._ready.popleft()
            kind = type(item)
            if (kind is SlotMark or kind is EndOfStream) and self._apply_marker(item):
                continue
            if kind in _DISCOVERY_TRACKED:
                self._disc_track(item)
            self._route.stats.events_delivered += 1
            return item  # type: ignore[no-any-return]

    def _apply_marker(self, item: Any) -> bool:
        """A subscription's SlotMark or EndOfStream, read in stream order: what ``delivered_through`` is made of."""
        if type(item) is SlotMark:
            self._marks[item.subscription] = item.slot
        else:
            self._ended.add(item.subscription)
        self._through = None
        return True

    def _start_drain(self, completed: ev.Completed, timeout: Optional[float]) -> Optional[ev.Event]:
        """``completed`` arrived: deliver trailing notifications until every subscription ended, then it."""
        self._drain = _Drain(completed, self._config.completion_drain_timeout)
        return self._serve_drain(timeout)

    def _serve_drain(self, timeout: Optional[float]) -> Optional[ev.Event]:
        """The completion drain, one event per call: read up to each subscription's own end-of-stream marker (the
        markers follow every event that worker queued, so nothing queued before them is left behind), returning
        each event as it is read, and ``Completed`` last. Streamed rather than collected first: on the replay
        server's transaction stream ``Completed`` reaches the queue long before the notifications, and holding
        them all made the garbage collector's full collections cost more than everything else
        (docs/performance.md). The idle clock pauses while a subscription still owed is reconnecting: that is
        bounded by its own reconnect budget (it ends with its end of stream or a SubscriptionError), so a
        reconnect that waits its turn is not a stall. ``timeout`` (the caller's): :class:`Timeout` when nothing
        came within it; the drain goes on at the next call."""
        drain = self._drain
        assert drain is not None
        if self._finished:
            return None
        if not self._requeue:  # the common case, a notification already queued: no clock, no connection states
            get = self._route.sink.get
            while True:
                try:
                    item = get(False)
                except queue.Empty:
                    break
                kind = type(item)
                if kind in _DATA_EVENTS:
                    drain.spent = 0.0
                    drain.last = None
                    self._route.stats.events_delivered += 1
                    return item  # type: ignore[no-any-return]
                if kind is SlotMark:  # a subscription's next slot (one per slot): applied, and on to its events
                    self._apply_marker(item)
                    continue
                self._requeue.append(item)  # anything else: read first by the full path below
                break
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = [s for s in self._subscriptions if s not in self._ended]
            if not pending:
                return self._end_drain(drain.completed)
            now = time.monotonic()
            if drain.last is not None and not any(s.reconnecting for s in pending):
                drain.spent += now - drain.last
            drain.last = now  # None after an event: the caller's time between two calls is not idle time
            left = drain.idle - drain.spent
            if left <= 0:
                return self._end_drain(CompletionDrainStalled(
                    f"session {self.session_id} completed but its {', '.join(s.kind for s in pending)} "
                    f"subscription(s) did not reach end-of-stream within {drain.idle:.0f}s while connected: the "
                    "captured stream is incomplete"))
            wait = min(left, _DRAIN_POLL)
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - now))  # 0: one look at the queue, without waiting
            try:
                item = (self._requeue.popleft() if self._requeue
                        else self._route.sink.get(timeout=wait))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Timeout(f"no event from session {self.session_id} within {timeout}s") from None
                continue
            kind = type(item)
            if kind is BarrierPassed:
                continue
            if item is _CLOSED:
                return self._end_drain(SessionClosedError(f"session {self.session_id} was closed"))
            if isinstance(item, BaseException):
                return self._end_drain(item)
            if (kind is SlotMark or kind is EndOfStream) and self._apply_marker(item):
                continue
            drain.spent = 0.0
            drain.last = None
            self._route.stats.events_delivered += 1
            return item  # type: ignore[no-any-return]

    def _drain_ready(self) -> bool:
        """Whether the completion drain has something to return without waiting: an item put back, or its end."""
        return bool(self._requeue) or self._finished or all(s in self._ended for s in self._subscriptions)

    def _end_drain(self, last: Any) -> ev.Event:
        """The drain's last item: ``Completed``, or the error that cut it short (raised)."""
        self._finished = True
        if isinstance(last, BaseException):
            raise last
        self._route.stats.events_delivered += 1
        return last  # type: ignore[no-any-return]

    def run(self, advance_count: Optional[int] = None, on_event: Optional[Callable[[ev.Event], Any]] = None,
            timeout: Optional[float] = None) -> ev.Completed:
        """Drive to the end: on each ReadyForContinue/Paused send ``Continue(advance_count)`` (default: the rest
        of the range in one go). ``on_event`` sees every event. Returns the ``Completed`` event."""
        if advance_count is None:
            start, end = self._route.range or (0, 0)
            advance_count = max(1, end - start + 1)
        for event in self.events(timeout):
            if on_event is not None:
                on_event(event)
            kind = type(event)
            if kind is ev.ReadyForContinue or kind is ev.Paused:
                self.send_continue(Continue(advance_count=advance_count))
            elif kind is ev.Completed:
                return event  # type: ignore[return-value]
        raise SessionClosedError(f"session {self.session_id} ended without Completed")

    # ------------------------------------------------------------------ closing

    def _stop_subscriptions(self, deadline: Optional[float] = None) -> None:
        """Stop and join every subscription worker by ``deadline`` (default: ``close_timeout`` from now)."""
        for sub in self._subscriptions:
            sub.stop()
        if deadline is None:
            deadline = time.monotonic() + self._config.close_timeout
        for sub in self._subscriptions:
            sub.join(max(0.05, deadline - time.monotonic()))
        if self._rpc is not None:
            self._rpc.close()
        for client in self._solana_clients:
            client.close()

    def _threads(self) -> List[threading.Thread]:
        return [s.thread for s in self._subscriptions]

    def __enter__(self) -> "_BaseSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # type: ignore[attr-defined]


class Session(_BaseSession):
    """One managed backtest session (``client.start_session``). Owns its control connection.

    Threads: one consumer thread per session reads ``events()`` / ``next_event()`` / ``run()`` (the event stream
    is a single queue; two readers would split it). ``send_continue``, ``send_continue_to``, ``rpc`` and ``close``
    may be called from any thread, e.g. a watchdog closing a session its consumer is blocked on."""

    def __init__(self, control: ControlConnection, route: Route, config: ClientConfig):
        super().__init__(control, route, config)
        control.subscriptions_ready = self._subscriptions_ready

    def close(self) -> None:
        """Idempotent: ``closeBacktestSession`` (when still connected), then stop and join every thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._route.closed = True
        deadline = time.monotonic() + self._config.close_timeout  # one budget for the whole close
        try:
            self._stop_subscriptions(deadline)
            self._control.close(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            self._route.sink.put(_CLOSED)
            leftover = [t.name for t in self._threads() + [self._control.thread] if t.is_alive()]
            if leftover:
                log.warning("threads still running after close: %s", leftover)

    def __enter__(self) -> "Session":
        return self


class SubSession(_BaseSession):
    """One sub-session of a parallel run: own queue and subscriptions, shared control connection.

    Threads: as :class:`Session`, one consumer thread per sub-session reads its events (different sub-sessions may
    be consumed by different threads, as ``ParallelRun.drive`` does); ``send_continue*`` and ``close`` from any."""

    def close(self) -> None:
        """Stop this sub-session's subscriptions (the shared control belongs to the ParallelRun)."""
        self._close_by(None)

    def _close_by(self, deadline: Optional[float]) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop_subscriptions(deadline)
        self._route.sink.put(_CLOSED)

    def __enter__(self) -> "SubSession":
        return self


__all__ = ["Session", "SubSession", "SessionError"]
