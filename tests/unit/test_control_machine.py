"""The control and subscription state machines driven through scripted connections (no sockets, no simulator).

Each test scripts a server (:mod:`scripted`) and runs the real :class:`ControlConnection` / :class:`Subscription`
reader thread against it: create, attach with cursors, the §7.1 re-send, replay dedup, each §10.1 row, flaps,
a never-answered create, keepalive pings during every wait, the reconnect deadline.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Dict, List, Optional

import pytest
from scripted import ScriptedConnection, ScriptedServer

from simclient import (
    ConnectionLostError,
    CreateSession,
    InternalError,
    InvalidRequestError,
    SessionError,
    SubscriptionError,
    Timeout,
)
from simclient import events as ev
from simclient import protocol as wire
from simclient.control import ControlConnection, Route
from simclient.reconnect import ReconnectSupervisor
from simclient.stats import SessionStats
from simclient.subscriptions import Subscription
from simclient.testing import fast_config

URL = "ws://scripted.invalid/backtest"
WAIT = 5.0
#: tiny timeouts: every wait in these tests is over in well under a second
CFG = fast_config(keepalive_interval=0.05, keepalive_deadline=2.0, backoff_initial=0.001, backoff_max=0.005,
                  reconnect_attempts=3, reconnect_uptime_reset=60.0, handshake_timeout=1.0, create_timeout=1.0,
                  close_timeout=1.0)
SID = "sess-1"


def _next(route: Route, timeout: float = WAIT) -> Any:
    try:
        return route.sink.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no event") from None


class SingleServer(ScriptedServer):
    """A resumable single-session server with a sequenced replay buffer."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.buffer: List[Any] = []  # (seq, method, params)
        self.flap = False  # answer every attach/resume, then drop at once (1011)
        self.on_continue: Optional[Any] = None
        self.on_create: Optional[Any] = None

    def emit(self, conn: ScriptedConnection, method: str, params: Any = None) -> int:
        seq = len(self.buffer) + 1
        self.buffer.append((seq, method, params))
        conn.reply(method, params, seq=seq)
        return seq

    def on_send(self, conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        method = req["method"]
        if method == "createBacktestSession":
            if self.on_create is not None:
                self.on_create(conn)
                return
            self.emit(conn, "sessionCreated", {"session_id": SID, "rpc_endpoint": f"/backtest/{SID}"})
            self.emit(conn, "readyForContinue")
        elif method == "attachBacktestSession":
            last = req["params"].get("last_sequence") or 0
            conn.reply("sessionAttached", {"session_id": SID, "rpc_endpoint": f"/backtest/{SID}"})
            for seq, m, p in self.buffer:
                if seq > last:
                    conn.reply(m, p, seq=seq)
        elif method == "resumeAttachedSession":
            self.emit(conn, "success")
            if self.flap:
                conn.drop(1011)
        elif method == "continue":
            if self.on_continue is not None:
                self.on_continue(conn, req)
            else:
                slot = 100 + len(self.buffer)
                self.emit(conn, "slotNotification", {"slot": slot})
                self.emit(conn, "readyForContinue")
        elif method == "closeBacktestSession":
            self.emit(conn, "success")


def _control(server: ScriptedServer, parallel: bool = False, config: Any = CFG,
             ready: Optional[Any] = None) -> ControlConnection:
    cc = ControlConnection(URL, "secret-key", config, CreateSession(start_slot=100, slot_count=10), parallel=parallel,
                           subscriptions_ready=ready, connection_factory=server)
    cc.start()
    return cc


@pytest.fixture
def closing() -> Any:
    made: List[ControlConnection] = []

    def track(cc: ControlConnection) -> ControlConnection:
        made.append(cc)
        return cc

    yield track
    for cc in made:
        cc.close(timeout=1.0)
        cc.thread.join(2.0)
        assert not cc.thread.is_alive()


# ====================================================================== create


def test_create_single(closing: Any) -> None:
    server = SingleServer()
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert route.rpc_endpoint == "http://scripted.invalid/backtest/sess-1"
    assert isinstance(_next(route), ev.ReadyForContinue)
    assert [n for n, _ in server.sent("createBacktestSession")] == [1]
    assert route.last_seq == 2


def test_create_parallel(closing: Any) -> None:
    def handler(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] == "createBacktestSession":
            assert req["params"]["parallel"] is True
            for sid in ("a", "b"):
                conn.reply("sessionCreated", {"session_id": sid, "rpc_endpoint": f"/backtest/{sid}"})
            conn.reply("sessionEventV2", {"session_id": "b", "seq_id": 1, "event": {"method": "readyForContinue"}})
            conn.reply("sessionsCreatedV2", {"control_session_id": "ctl", "session_ids": ["a", "b"],
                                             "start_slots": [100, 106], "end_slots": [105, 110]})

    cc = closing(_control(ScriptedServer(handler), parallel=True))
    cc.wait_created()
    assert cc.control_session_id == "ctl"
    assert {sid: r.range for sid, r in cc.routes.items()} == {"a": (100, 105), "b": (106, 110)}
    assert isinstance(_next(cc.routes["b"]), ev.ReadyForContinue)


def test_create_parallel_keeps_events_that_arrive_before_their_sub_session(closing: Any) -> None:
    def handler(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] == "createBacktestSession":  # reordered: b's first event before b's sessionCreated
            conn.reply("sessionEventV2", {"session_id": "b", "seq_id": 1, "event": {"method": "slotNotification",
                                                                                    "params": 106}})
            for sid in ("a", "b"):
                conn.reply("sessionCreated", {"session_id": sid, "rpc_endpoint": f"/backtest/{sid}"})
            conn.reply("sessionEventV2", {"session_id": "b", "seq_id": 2, "event": {"method": "readyForContinue"}})
            conn.reply("sessionsCreatedV2", {"control_session_id": "ctl", "session_ids": ["a", "b"],
                                             "start_slots": [100, 106], "end_slots": [105, 110]})

    cc = closing(_control(ScriptedServer(handler), parallel=True))
    cc.wait_created()
    b = cc.routes["b"]
    assert _next(b) == ev.Slot(106) and isinstance(_next(b), ev.ReadyForContinue)
    assert b.last_seq == 2


def test_parallel_attach_sends_every_cursor(closing: Any) -> None:
    server = ParallelServer()
    cc = _parallel(closing, server)
    cc.send_continue(cc.routes["b"], wire.encode_continue_v1("b", _cont()))
    assert isinstance(_next(cc.routes["b"]), ev.ReadyForContinue)  # b: seq 2, a: seq 1
    server.connections[0].drop()
    conn2 = server.wait_connections(2)
    assert conn2.sent[0] == wire.encode_attach_parallel("ctl", {"a": 1, "b": 2})


def test_never_answered_create_is_one_attempt_and_pings_while_waiting(closing: Any) -> None:
    server = SingleServer()
    server.on_create = lambda conn: None  # read, never answered; pongs keep coming
    cc = closing(_control(server))
    with pytest.raises(Timeout) as info:
        cc.wait_created()
    assert "did not answer the create" in str(info.value)
    assert len(server.connections) == 1 and len(server.sent("createBacktestSession")) == 1
    assert len(server.connections[0].pings) >= 5  # 1 s wait, a ping every 0.05 s


def test_create_whose_connection_dropped_is_sent_again(closing: Any) -> None:
    server = SingleServer()
    dropped: List[int] = []

    def first_drops(conn: ScriptedConnection) -> None:
        if not dropped:
            dropped.append(conn.number)
            conn.drop()
            return
        server.on_create = None
        server.on_send(conn, {"method": "createBacktestSession"})

    server.on_create = first_drops
    cc = closing(_control(server))
    cc.wait_created()
    assert [n for n, _ in server.sent("createBacktestSession")] == [1, 2]


# ====================================================================== attach, §7.1, dedup


def test_attach_sends_the_cursor_and_drops_replays(closing: Any) -> None:
    server = SingleServer()
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    cc.send_continue(route, {"method": "continue", "params": {"advanceCount": 1}})
    assert isinstance(_next(route), ev.Slot)
    assert isinstance(_next(route), ev.ReadyForContinue)  # seq 4
    first = server.connections[0]
    first.drop()
    conn2 = server.wait_connections(2)
    attach = [m for m in conn2.sent if m["method"] == "attachBacktestSession"]
    assert attach == [wire.encode_attach(SID, 4)]


def test_replay_is_deduplicated_by_seq(closing: Any) -> None:
    server = SingleServer()
    real = server.on_send

    def replay_everything(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] == "attachBacktestSession":
            conn.reply("sessionAttached", {"session_id": SID, "rpc_endpoint": f"/backtest/{SID}"})
            for seq, m, p in server.buffer:  # ignores the cursor: a server replaying too much
                conn.reply(m, p, seq=seq)
            server.emit(conn, "slotNotification", {"slot": 777})
            return
        real(conn, req)

    server.on_send = replay_everything  # type: ignore[method-assign]
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    server.connections[0].drop()
    event = _next(route)
    assert event == ev.Slot(777)
    assert route.stats.replays_dropped == 1  # seq 2 (readyForContinue); seq 1 is sessionCreated, never an event


def test_lost_continue_is_sent_again_once_and_busy_answer_is_swallowed(closing: Any) -> None:
    server = SingleServer()
    lost: List[int] = []

    def lose_first(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if not lost:
            lost.append(conn.number)
            conn.drop()  # the continue never reached the server
            return
        server.emit(conn, "error", {"invalidRequest": {"error": "continue while busy"}})
        server.emit(conn, "slotNotification", {"slot": 101})
        server.emit(conn, "readyForContinue")

    server.on_continue = lose_first
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    cc.send_continue(route, {"method": "continue", "params": {"advanceCount": 1}})
    assert _next(route) == ev.Slot(101)  # the busy error answering the re-send is not delivered
    assert isinstance(_next(route), ev.ReadyForContinue)
    assert [n for n, _ in server.sent("continue")] == [1, 2]
    assert route.stats.continues_resent == 1
    assert server.connections[1].methods() == ["attachBacktestSession", "resumeAttachedSession", "continue"]


# ====================================================================== §10.1, every row


@pytest.mark.parametrize("kind, phase, first, again", [
    (k, p, a1, a2) for (k, p), (a1, a2) in sorted(wire.ERROR_ACTIONS.items())])
def test_error_table_rows(kind: str, phase: str, first: str, again: str) -> None:
    sample = {
        wire.KIND_TERMINAL: wire.BacktestError("AdvanceSlotFailed", {"slot": 3}),
        wire.KIND_TRANSIENT: wire.BacktestError("SessionOwnershipBusy"),
        wire.KIND_RETRY_ONCE: wire.BacktestError("Internal", {"error": "x"}),
        wire.KIND_BUSY: wire.BacktestError("InvalidRequest", {"error": "continue while busy"}),
    }[kind]
    assert wire.error_kind(sample) == kind
    assert wire.error_action(sample, phase) == first
    assert wire.error_action(sample, phase, repeat=True) == again


def test_every_kind_and_phase_has_a_row() -> None:
    kinds = {wire.KIND_TERMINAL, wire.KIND_TRANSIENT, wire.KIND_RETRY_ONCE, wire.KIND_BUSY}
    phases = {wire.PHASE_HANDSHAKE, wire.PHASE_SESSION, wire.PHASE_CONTROL}
    assert set(wire.ERROR_ACTIONS) == {(k, p) for k in kinds for p in phases}
    assert wire.error_kind(wire.BacktestError("QuantumFlux")) == wire.KIND_TERMINAL  # unknown variants


def _error_on_create(variants: List[Any]) -> SingleServer:
    """A server whose n-th create is answered by ``variants[n]`` (an error's params), then normally."""
    server = SingleServer()

    def create(conn: ScriptedConnection) -> None:
        n = len(server.sent("createBacktestSession"))
        if n <= len(variants):
            conn.reply("error", variants[n - 1])
            return
        conn.reply("sessionCreated", {"session_id": SID, "rpc_endpoint": f"/backtest/{SID}"})

    server.on_create = create
    return server


def test_handshake_terminal_error_fails_the_create_at_once(closing: Any) -> None:
    server = _error_on_create([{"bundleNotFound": {"start_slot": 1, "end_slot": 2}}])
    with pytest.raises(SessionError) as info:
        closing(_control(server)).wait_created()
    assert info.value.error.variant == "BundleNotFound"
    assert len(server.connections) == 1


def test_handshake_invalid_error_is_invalid_request_error(closing: Any) -> None:
    server = _error_on_create([{"invalidAccountPubkey": {"error": "bad"}}])
    with pytest.raises(InvalidRequestError):
        closing(_control(server)).wait_created()


def test_handshake_transient_error_reconnects(closing: Any) -> None:
    server = _error_on_create([{"sessionOwnershipBusy": {"reason": "deploy"}}])
    cc = closing(_control(server))
    cc.wait_created()
    assert len(server.sent("createBacktestSession")) == 2


def test_handshake_retry_once_error_retries_once_then_is_terminal(closing: Any) -> None:
    server = _error_on_create([{"internal": {"error": "a"}}])
    closing(_control(server)).wait_created()
    assert len(server.sent("createBacktestSession")) == 2
    server = _error_on_create([{"internal": {"error": "a"}}, {"internal": {"error": "b"}}])
    with pytest.raises(SessionError) as info:
        closing(_control(server)).wait_created()
    assert len(server.sent("createBacktestSession")) == 2 and "Internal" in str(info.value)


def _running(closing: Any, server: SingleServer) -> Any:
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    return cc, route


def test_session_terminal_error_fails_the_route(closing: Any) -> None:
    server = SingleServer()
    server.on_continue = lambda conn, req: server.emit(conn, "error", {"advanceSlotFailed": {"slot": 3}})
    cc, route = _running(closing, server)
    cc.send_continue(route, {"method": "continue", "params": {}})
    err = _next(route)
    assert isinstance(err, SessionError) and err.error.variant == "AdvanceSlotFailed"
    assert route.failed and len(server.connections) == 1


def test_session_transient_error_reconnects(closing: Any) -> None:
    server = SingleServer()
    busy: List[int] = []

    def once(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if not busy:
            busy.append(1)
            server.emit(conn, "error", {"sessionOwnershipBusy": {"reason": "handoff"}})
            return
        server.emit(conn, "readyForContinue")

    server.on_continue = once
    cc, route = _running(closing, server)
    cc.send_continue(route, {"method": "continue", "params": {}})
    server.wait_connections(2)
    assert server.connections[1].methods()[0] == "attachBacktestSession"


def test_session_retry_once_error_is_delivered_then_terminal(closing: Any) -> None:
    server = SingleServer()
    server.on_continue = lambda conn, req: (server.emit(conn, "error", {"clerkError": {"error": "x"}}),
                                            server.emit(conn, "error", {"clerkError": {"error": "y"}}))
    cc, route = _running(closing, server)
    cc.send_continue(route, {"method": "continue", "params": {}})
    first = _next(route)
    assert isinstance(first, ev.ServerError) and first.error.variant == "ClerkError"
    second = _next(route)
    assert isinstance(second, SessionError) and "y" in str(second)


def test_session_busy_error_is_delivered(closing: Any) -> None:
    server = SingleServer()
    server.on_continue = lambda conn, req: server.emit(conn, "error",
                                                       {"invalidRequest": {"error": "continue while busy"}})
    cc, route = _running(closing, server)
    cc.send_continue(route, {"method": "continue", "params": {}})
    event = _next(route)
    assert isinstance(event, ev.ServerError) and wire.is_continue_busy(event.error)
    assert not route.failed


class ParallelServer(ScriptedServer):
    """Two sub-sessions; ``top_level`` errors are sent (one per continue) at control level."""

    def __init__(self, batches: bool = True) -> None:
        super().__init__(batches=batches)
        self.top_level: List[Any] = []
        self.seq: Dict[str, int] = {"a": 0, "b": 0}

    def event(self, conn: ScriptedConnection, sid: str, method: str) -> None:
        self.seq[sid] += 1
        conn.reply("sessionEventV2", {"session_id": sid, "seq_id": self.seq[sid], "event": {"method": method}})

    def on_send(self, conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        method = req["method"]
        if method == "createBacktestSession":
            for sid in ("a", "b"):
                conn.reply("sessionCreated", {"session_id": sid, "rpc_endpoint": f"/backtest/{sid}"})
            conn.reply("sessionsCreatedV2", {"control_session_id": "ctl", "session_ids": ["a", "b"],
                                             "start_slots": [100, 106], "end_slots": [105, 110]})
            for sid in ("a", "b"):
                self.event(conn, sid, "readyForContinue")
        elif method == "attachParallelControlSessionV2":
            conn.reply("parallelSessionAttachedV2", {"control_session_id": "ctl", "session_ids": ["a", "b"]})
        elif method == "continueSessionV1":
            if self.top_level:
                conn.reply("error", self.top_level.pop(0))
            else:
                self.event(conn, req["params"]["sessionId"], "readyForContinue")


def _parallel(closing: Any, server: ParallelServer) -> Any:
    cc = closing(_control(server, parallel=True))
    cc.wait_created()
    for sid in ("a", "b"):
        assert isinstance(_next(cc.routes[sid]), ev.ReadyForContinue)
    return cc


@pytest.mark.parametrize("batches", [True, False], ids=["recv_many", "recv"])
def test_frames_after_the_last_completion_in_one_batch_are_not_read(closing: Any, batches: bool) -> None:
    """The reader takes what one read brought as a batch; once the work is done (every sub-session completed) it
    stops at that frame, as a frame-at-a-time reader does: the rest of the batch is neither routed nor counted."""
    server = ParallelServer(batches=batches)
    cc = _parallel(closing, server)
    received = cc.stats.frames_received

    def event(sid: str, seq: int, method: str, params: Any = None) -> Dict[str, Any]:
        inner: Dict[str, Any] = {"method": method} if params is None else {"method": method, "params": params}
        return {"method": "sessionEventV2", "params": {"session_id": sid, "seq_id": seq, "event": inner}}
    server.connections[0].reply_batch(event("a", 2, "slotNotification", 101), event("a", 3, "completed", {}),
                                      event("b", 2, "completed", {}), event("b", 3, "slotNotification", 107),
                                      event("a", 4, "slotNotification", 102))
    assert _next(cc.routes["a"]) == ev.Slot(101) and isinstance(_next(cc.routes["a"]), ev.Completed)
    assert isinstance(_next(cc.routes["b"]), ev.Completed)
    cc._thread.join(WAIT)  # the reader ends once every sub-session completed
    assert not cc._thread.is_alive()
    assert cc.stats.frames_received == received + 3
    assert cc.routes["a"].sink.empty() and cc.routes["b"].sink.empty()


def test_control_terminal_error_fails_every_sub_session_with_its_own_exception(closing: Any) -> None:
    server = ParallelServer()
    server.top_level = [{"simulationError": {"error": "boom"}}]
    cc = _parallel(closing, server)
    cc.send_continue(cc.routes["a"], wire.encode_continue_v1("a", _cont()))
    errs = [_next(cc.routes[sid]) for sid in ("a", "b")]
    assert all(isinstance(e, SessionError) for e in errs)
    assert errs[0] is not errs[1] and errs[0].__cause__ is errs[1].__cause__  # fresh per route, one cause
    assert len(server.connections) == 1


def test_control_transient_error_reconnects(closing: Any) -> None:
    server = ParallelServer()
    server.top_level = [{"sessionOwnershipBusy": {"reason": "x"}}]
    cc = _parallel(closing, server)
    cc.send_continue(cc.routes["a"], wire.encode_continue_v1("a", _cont()))
    conn2 = server.wait_connections(2)
    assert conn2.methods()[0] == "attachParallelControlSessionV2"
    assert isinstance(_next(cc.routes["a"]), ev.ReadyForContinue)  # the lost continue was sent again


def test_control_retry_once_error_reconnects_then_is_terminal(closing: Any) -> None:
    server = ParallelServer()
    server.top_level = [{"internal": {"error": "first"}}, {"internal": {"error": "second"}}]
    cc = _parallel(closing, server)
    cc.send_continue(cc.routes["a"], wire.encode_continue_v1("a", _cont()))
    server.wait_connections(2)  # the first one: reconnect (and the lost continue is re-sent -> second error)
    err = _next(cc.routes["a"])
    assert isinstance(err, SessionError) and "second" in str(err)
    assert len(server.connections) == 2


def _cont() -> Any:
    from simclient import Continue

    return Continue(advance_count=1)


# ====================================================================== flaps, budget, deadline, crashes


def test_flapping_control_spends_the_budget_within_n_connections(closing: Any) -> None:
    server = SingleServer()
    server.flap = True
    cc = closing(_control(server))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    server.connections[0].drop(1011)
    err = _next(route)
    assert isinstance(err, ConnectionLostError)
    assert [n for n, _ in err.attempts] == [1, 2, 3] and "re-established" in str(err)
    assert len(server.connections) == 1 + CFG.reconnect_attempts
    assert "attempt(s)" in str(err) and "secret-key" not in str(err)


def test_reconnect_deadline(closing: Any) -> None:
    server = SingleServer()
    server.refuse = 10_000
    cfg = CFG.with_(reconnect_attempts=10_000, reconnect_max_total=0.2, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(ConnectionLostError) as info:
        closing(_control(server, config=cfg)).wait_created()
    assert "reconnect_max_total=0.2s" in str(info.value) and "could not be established" in str(info.value)
    assert 2 < server.refused < 100


def test_reader_crash_is_an_internal_error_with_the_cause(closing: Any) -> None:
    server = SingleServer()
    server.factory_error = ValueError("bug in a factory")
    with pytest.raises(InternalError) as info:
        closing(_control(server)).wait_created()
    assert isinstance(info.value.__cause__, ValueError)


# ====================================================================== keepalive during every wait


def test_attach_and_resume_waits_ping(closing: Any) -> None:
    server = SingleServer()
    real = server.on_send

    def slow(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] in ("attachBacktestSession", "resumeAttachedSession") and conn.number == 2:
            def later() -> None:
                threading.Event().wait(0.4)  # a slow server, not a synchronisation
                real(conn, req)
            threading.Thread(target=later, name="test-later", daemon=True).start()
            return
        real(conn, req)

    server.on_send = slow  # type: ignore[method-assign]
    cc, route = _running(closing, server)
    server.connections[0].drop()
    conn2 = server.wait_connections(2)
    cc.send_continue(route, {"method": "continue", "params": {}})
    assert isinstance(_next(route), ev.Slot)
    assert len(conn2.pings) >= 4  # two waits of 0.4 s, a ping every 0.05 s


def test_idle_connection_pings_and_a_dead_one_is_replaced(closing: Any) -> None:
    server = SingleServer()
    cc, route = _running(closing, server)
    first = server.connections[0]
    first.wait_pings(5)  # idle in the message loop: a ping every keepalive_interval
    assert len(server.connections) == 1  # pongs keep it alive
    server.answer_pings = False  # the link goes silent: dead after keepalive_deadline (2 s)
    conn2 = server.wait_connections(2)
    assert conn2.methods()[0] == "attachBacktestSession"
    server.answer_pings = True
    assert cc.stats.reconnects == 1


def test_subscriptions_ready_wait_pings_and_is_bounded(closing: Any) -> None:
    server = SingleServer()
    ready = threading.Event()
    cc = closing(_control(server, ready=lambda: ready.is_set()))
    cc.wait_created()
    route = cc.routes[SID]
    assert isinstance(_next(route), ev.ReadyForContinue)
    server.connections[0].drop()
    conn2 = server.wait_connections(2)
    server.wait_connections(3)  # the 1 s bound passed: that attach counts as a failed attempt
    assert len(conn2.pings) >= 5 and "resumeAttachedSession" not in conn2.methods()
    ready.set()


def test_parallel_replay_barrier_wait_pings(closing: Any) -> None:
    server = ParallelServer()
    cc = _parallel(closing, server)
    server.answer_pings = False  # the barrier pong never comes
    server.connections[0].drop()
    conn2 = server.wait_connections(2)
    server.wait_connections(3)
    assert len(conn2.pings) >= 5 and conn2.pings[0].startswith(b"simclient-replay-barrier")
    server.answer_pings = True
    assert cc.routes["a"].last_seq == 1


# ====================================================================== subscriptions


def _subscription(server: ScriptedServer, config: Any = CFG) -> Any:
    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    sub = Subscription("transaction", ["prog"], f"http://scripted.invalid/backtest/{SID}", sink, config,
                       threading.Event(), 100, SID, SessionStats(), connection_factory=server)
    return sub, sink


def test_flapping_subscription_spends_the_budget() -> None:
    def ack_then_close(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        conn.reply_raw(wire.dumps({"jsonrpc": "2.0", "id": req["id"], "result": 7}))
        conn.drop(1011)

    server = ScriptedServer(ack_then_close)
    sub, sink = _subscription(server)
    sub.start()
    try:
        err = sink.get(timeout=WAIT)
    finally:
        sub.stop()
        sub.join(2.0)
    assert isinstance(err, SubscriptionError) and isinstance(err.__cause__, ConnectionLostError)
    assert len(server.connections) == CFG.reconnect_attempts
    assert [n for n, _ in err.__cause__.attempts] == [1, 2, 3]


def test_subscription_ack_wait_pings_and_is_bounded() -> None:
    server = ScriptedServer(lambda conn, req: None)  # never acked
    sub, sink = _subscription(server, CFG.with_(handshake_timeout=0.4))
    sub.start()
    try:
        err = sink.get(timeout=WAIT)
    finally:
        sub.stop()
        sub.join(2.0)
    assert isinstance(err, SubscriptionError)
    assert "no subscribe ack within 0.4s" in str(err)
    assert len(server.connections) == CFG.reconnect_attempts
    assert all(len(c.pings) >= 4 for c in server.connections)  # a ping every 0.05 s


def test_subscription_that_delivers_new_notifications_never_spends_the_budget() -> None:
    slot = [200]

    def ack_one_then_close(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        conn.reply_raw(wire.dumps({"jsonrpc": "2.0", "id": req["id"], "result": 7}))
        slot[0] += 1
        note = {"jsonrpc": "2.0", "method": "transactionNotification", "params": {"subscription": 7, "result": {
            "context": {"slot": slot[0]}, "value": {"signature": f"sig{slot[0]}", "slot": slot[0],
                                                    "transaction": {"signatures": [f"sig{slot[0]}"]}}}}}
        conn.reply_raw(wire.dumps(note))
        conn.drop(1011)

    server = ScriptedServer(ack_one_then_close)
    sub, sink = _subscription(server)
    sub.start()
    try:
        from simclient.subscriptions import SlotMark

        got: List[Any] = []
        while len(got) < 10:
            item = sink.get(timeout=WAIT)
            if not isinstance(item, SlotMark):  # the streamed writer's bookkeeping marker
                got.append(item)
    finally:
        sub.stop()
        sub.join(2.0)
    assert all(isinstance(e, ev.Transaction) for e in got), got[:2]
    assert len(server.connections) >= 10 > CFG.reconnect_attempts


# ====================================================================== the supervisor on a fake clock


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_supervisor_policy() -> None:
    clock = _Clock()
    cfg = fast_config(backoff_initial=1.0, backoff_multiplier=2.0, backoff_max=100.0, backoff_jitter=0.0,
                      reconnect_attempts=3, reconnect_uptime_reset=60.0, reconnect_max_total=0)
    sup = ReconnectSupervisor(cfg, "link", threading.Event(), clock=clock)
    sup.begin_attempt()
    sup.connected()
    clock.now += 61  # up long enough: immediate retry
    assert sup.lost("a") == 0.0
    sup.begin_attempt()
    sup.connected()
    sup.made_progress = True  # short but productive: the budget resets, the backoff starts again
    clock.now += 1
    assert sup.lost("b") == 1.0 and sup.failures == 0
    delays = []
    for _ in range(2):  # up but nothing new: failed attempts, growing backoff
        sup.begin_attempt()
        sup.connected()
        clock.now += 1
        delays.append(sup.lost("c"))
    assert delays == [1.0, 2.0] and sup.failures == 2
    sup.begin_attempt()
    sup.made_progress = True  # a replay delivered new events, then the handshake broke: still progress
    assert sup.lost("c2") == 1.0 and sup.failures == 0
    for _ in range(2):
        sup.begin_attempt()  # connect refused: failed attempts
        sup.lost("refused")
    sup.begin_attempt()
    with pytest.raises(ConnectionLostError) as info:
        sup.lost("d")
    assert [n for n, _ in info.value.attempts] == [1, 2, 3] and "re-established" in str(info.value)


def test_supervisor_pause_is_interrupted_by_stop() -> None:
    stop = threading.Event()
    sup = ReconnectSupervisor(CFG, "link", stop)
    stop.set()
    from simclient.reconnect import Stopped

    with pytest.raises(Stopped):
        sup.pause(30.0)


# ====================================================================== the seam, end to end through Client


def test_client_connection_factory_carries_control_and_subscriptions() -> None:
    from simclient import Client

    server = SingleServer()
    real = server.on_send

    def with_subscriptions(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req.get("method") == "transactionSubscribe":
            conn.reply_raw(wire.dumps({"jsonrpc": "2.0", "id": req["id"], "result": 7}))
            return
        real(conn, req)

    server.on_send = with_subscriptions  # type: ignore[method-assign]
    client = Client(URL, "secret-key", CFG, connection_factory=server)
    with client.start_session(CreateSession(start_slot=100, slot_count=10)) as session:
        session.subscribe_transactions(["prog"])
        assert isinstance(session.next_event(WAIT), ev.ReadyForContinue)
        session.send_continue(advance_count=1, timeout=WAIT)  # gated on the scripted subscription's ack
        assert isinstance(session.next_event(WAIT), ev.Slot)
    urls = [c.url for c in server.connections]
    assert urls == [URL, "ws://scripted.invalid/backtest/sess-1"]
    assert server.connections[0].methods()[-1] == "closeBacktestSession"
