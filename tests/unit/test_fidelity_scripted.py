"""Issue 11 state machines over scripted connections (no server): the §3.5 duplicate-field fallback of a parallel
control connection, and the §9.5 end of stream of a subscription worker (subscriptionComplete, the early-complete
trap). A ``Scripted`` connection answers each request the client writes from a script and returns queued frames
from ``recv``; a ping is answered by a pong queued after every frame already queued (as a server does)."""
from __future__ import annotations

import json
import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from simclient import Continue, CreateSession
from simclient import control as control_mod
from simclient import protocol as wire
from simclient import subscriptions as subs_mod
from simclient.stats import SessionStats
from simclient.testing import fast_config
from simclient.transport import OPCODE_PONG, OPCODE_TEXT

WAIT = 5.0


class Scripted:
    """A fake ``transport.Connection``: ``on_send(conn, request)`` reacts to each request written."""

    def __init__(self, on_send: Callable[["Scripted", Dict[str, Any]], None]):
        self.on_send = on_send
        self.frames: "queue.Queue[Any]" = queue.Queue()
        self.sent: List[Dict[str, Any]] = []
        self.closed = threading.Event()

    def push(self, obj: Any) -> None:
        self.frames.put((OPCODE_TEXT, obj if isinstance(obj, str) else json.dumps(obj)))

    def send_json(self, obj: Dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(obj)))
        self.on_send(self, obj)

    def ping(self, payload: bytes = b"") -> None:
        self.frames.put((OPCODE_PONG, payload))

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Any]]:
        if self.closed.is_set():
            from simclient.transport import TransportError
            raise TransportError("closed")
        try:
            return self.frames.get(timeout=min(timeout or 0.05, 0.05))
        except queue.Empty:
            return None

    def close(self, timeout: float = 1.0) -> None:
        self.closed.set()

    release = abort = close


# ============================================================================ §3.5 duplicate-field fallback


def _ev(sid: str, seq: int, method: str, params: Any = None) -> Dict[str, Any]:
    event: Dict[str, Any] = {"method": method} if params is None else {"method": method, "params": params}
    return {"method": "sessionEventV2", "params": {"session_id": sid, "seq_id": seq, "event": event}}


def strict_server(ids: List[str]) -> Callable[[Scripted, Dict[str, Any]], None]:
    """A parallel server whose V1 id field has a serde alias: both casings ⇒ "duplicate field"."""
    seqs = {sid: 2 for sid in ids}

    def on_send(conn: Scripted, req: Dict[str, Any]) -> None:
        method, params = req["method"], req.get("params") or {}
        if method == "createBacktestSession":
            for sid in ids:
                conn.push({"method": "sessionCreated", "params": {"session_id": sid, "rpc_endpoint": f"/backtest/{sid}"}})
                conn.push(_ev(sid, 1, "readyForContinue"))
            conn.push({"method": "sessionsCreatedV2", "params": {
                "control_session_id": "parallel_x", "session_ids": ids, "task_ids": [None] * len(ids),
                "start_slots": [10 * i for i in range(len(ids))], "end_slots": [10 * i + 9 for i in range(len(ids))]}})
        elif method == "continueSessionV1":
            if "session_id" in params and "sessionId" in params:
                conn.push({"method": "error", "params": {"invalidRequest": {"error": "duplicate field `session_id`"}}})
                return
            sid = params["session_id"]
            assert params["request"]["advanceCount"] == 10
            conn.push(_ev(sid, seqs[sid], "completed", {"summary": None}))
            seqs[sid] += 1

    return on_send


def _control(monkeypatch, on_send) -> Tuple[control_mod.ControlConnection, List[Scripted]]:
    conns: List[Scripted] = []

    def open_(url: str, key: Any, timeout: float) -> Scripted:
        conns.append(Scripted(on_send))
        return conns[-1]

    ctl = control_mod.ControlConnection("ws://scripted/backtest", "k", fast_config(), CreateSession(
        start_slot=0, end_slot=29, disconnect_timeout_secs=60), parallel=True, connection_factory=open_)
    return ctl, conns


def test_duplicate_field_switches_to_the_minimal_form_once_and_resends_each_refused_request(monkeypatch):
    ids = ["s-a", "s-b", "s-c"]
    ctl, conns = _control(monkeypatch, strict_server(ids))
    ctl.start()
    try:
        ctl.wait_created()
        routes = [ctl.routes[sid] for sid in ids]
        for r in routes:
            assert r.sink.get(timeout=WAIT).__class__.__name__ == "ReadyForContinue"
        with ctl._lock:  # all three written before any answer is read: three refusals are on their way
            for r in routes:
                ctl.send_continue(r, wire.encode_continue_v1(r.session_id, Continue(advance_count=10)))
        for r in routes:
            assert r.sink.get(timeout=WAIT).__class__.__name__ == "Completed"
        ctl.thread.join(WAIT)
    finally:
        ctl.close()
    v1 = [m for m in conns[0].sent if m["method"] == "continueSessionV1"]
    superset, minimal = v1[:3], v1[3:]
    assert all({"session_id", "sessionId", "request", "advanceCount"} <= set(m["params"]) for m in superset)
    assert [m["params"] for m in minimal] == [{"session_id": sid, "request": superset[0]["params"]["request"]}
                                              for sid in ids]
    assert ctl.stats.v1_minimal_fallbacks == 1 and ctl.stats.v1_minimal_resends == 3
    assert len(conns) == 1 and not any(r.failed for r in routes)


def test_duplicate_field_answering_the_minimal_form_is_surfaced(monkeypatch):
    def on_send(conn: Scripted, req: Dict[str, Any]) -> None:
        if req["method"] == "continueSessionV1":  # refuses every form
            conn.push({"method": "error", "params": {"invalidRequest": {"error": "duplicate field `session_id`"}}})
        else:
            strict_server(["s-a"])(conn, req)

    ctl, conns = _control(monkeypatch, on_send)
    ctl.start()
    try:
        ctl.wait_created()
        route = ctl.routes["s-a"]
        route.sink.get(timeout=WAIT)
        ctl.send_continue(route, wire.encode_continue_v1("s-a", Continue(advance_count=10)))
        err = route.sink.get(timeout=WAIT)
        assert isinstance(err, Exception) and "duplicate field" in str(err)
    finally:
        ctl.close()
    assert ctl.stats.v1_minimal_fallbacks == 1 and ctl.stats.v1_minimal_resends == 1


# ============================================================================ §9.5 end of stream


class SubServer:
    """Scripted subscription sockets: ``plans[i]`` says what connection i answers after the ack."""

    def __init__(self, plans: List[List[Any]]):
        self.plans = plans
        self.conns: List[Scripted] = []

    def open(self, url: str, key: Any, timeout: float) -> Scripted:
        plan = self.plans[len(self.conns)]

        def on_send(conn: Scripted, req: Dict[str, Any]) -> None:
            conn.push({"jsonrpc": "2.0", "id": req["id"], "result": 7})
            for item in plan:
                conn.push(item)

        self.conns.append(Scripted(on_send))
        return self.conns[-1]


def _note(slot: int, sig: str) -> Dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "transactionNotification", "params": {"subscription": 7, "result": {
        "context": {"slot": slot}, "value": {"slot": slot, "transaction": {"signatures": [sig]}, "meta": {}}}}}


COMPLETE = {"jsonrpc": "2.0", "method": "subscriptionComplete", "params": {"subscription": 7}}


def _subscription(monkeypatch, server: SubServer, continue_sent: Callable[[], bool], completed=None, config=None):
    sink: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    stats = SessionStats()
    completed = completed or threading.Event()
    sub = subs_mod.Subscription("transaction", ["P"], "http://scripted/backtest/s", sink, config or fast_config(),
                                completed,
                                100, "s", stats, continue_sent=continue_sent,
                                connection_factory=server.open)
    return sub, sink, stats


def _drain(sink) -> List[Any]:
    out = []
    while True:
        item = sink.get(timeout=WAIT)
        if isinstance(item, subs_mod.SlotMark):  # the streamed writer's bookkeeping, not an event
            continue
        out.append(item)
        if isinstance(item, (subs_mod.EndOfStream, Exception)):
            return out


def test_immediate_complete_before_any_continue_resubscribes_from_the_same_cursor(monkeypatch):
    sent = threading.Event()
    server = SubServer([[COMPLETE], []])
    sub, sink, stats = _subscription(monkeypatch, server, sent.is_set)
    sub.start()
    try:
        assert sub.ready.wait(WAIT)  # up only on the second socket: the first answered at once, before its pong
        assert len(server.conns) == 2
        sent.set()  # the gated continue goes out; the session runs and ends
        for item in (_note(100, "sig1"), _note(101, "sig2"), COMPLETE):
            server.conns[1].push(item)
        items = _drain(sink)
    finally:
        sub.stop()
        sub.join(WAIT)
    assert [i.signature for i in items[:-1]] == ["sig1", "sig2"] and isinstance(items[-1], subs_mod.EndOfStream)
    assert len(server.conns) == 2 and stats.subscription_reconnects == 1
    # the first subscribe had no cursor; the re-subscribe starts at the session's first slot: nothing can be missed
    assert server.conns[0].sent[0]["params"][1].get("replayFromSlot") is None
    assert server.conns[1].sent[0]["params"][1]["replayFromSlot"] == 100
    # the subscription only counted as up after the pong of its barrier ping
    assert sub._early_completes == 1


def test_complete_after_a_continue_is_the_end_with_or_without_an_id(monkeypatch):
    bare = {"jsonrpc": "2.0", "method": "subscriptionComplete"}
    server = SubServer([[_note(100, "sig1"), bare]])
    sub, sink, stats = _subscription(monkeypatch, server, lambda: True)
    sub.start()
    try:
        items = _drain(sink)
    finally:
        sub.stop()
        sub.join(WAIT)
    assert [type(i).__name__ for i in items] == ["Transaction", "EndOfStream"]
    assert len(server.conns) == 1 and stats.subscription_reconnects == 0


def test_early_complete_budget_is_the_reconnect_budget(monkeypatch):
    server = SubServer([[COMPLETE]] * 10)
    sub, sink, stats = _subscription(monkeypatch, server, lambda: False, config=fast_config(reconnect_attempts=3))
    sub.start()
    try:
        items = _drain(sink)
    finally:
        sub.stop()
        sub.join(WAIT)
    assert isinstance(items[-1], Exception) and "subscriptionComplete" in str(items[-1])
    # each early complete is one failed attempt of the ReconnectSupervisor: reconnect_attempts=3 allows three
    # subscribes in all (as three flapping connections would), the third one's complete spends the budget
    assert len(server.conns) == 3
    assert [reason for _, reason in sub.attempts] == [subs_mod._EARLY_COMPLETE_REASON] * 3


def test_a_session_that_completes_during_the_backoff_ends_the_stream(monkeypatch):
    completed = threading.Event()
    server = SubServer([[COMPLETE]])

    def not_sent() -> bool:
        completed.set()  # the session completes right as the marker is judged: the end after all
        return False

    sub, sink, stats = _subscription(monkeypatch, server, not_sent, completed)
    sub.start()
    try:
        items = _drain(sink)
    finally:
        sub.stop()
        sub.join(WAIT)
    assert isinstance(items[-1], subs_mod.EndOfStream)
    assert len(server.conns) == 1


@pytest.mark.parametrize("eos", [COMPLETE, {"jsonrpc": "2.0", "method": "transactionNotification",
                                            "params": {"subscription": 7, "result": None}}])
def test_both_end_of_stream_markers(monkeypatch, eos):
    server = SubServer([[_note(100, "sig1"), eos]])
    sub, sink, _ = _subscription(monkeypatch, server, lambda: True)
    sub.start()
    try:
        items = _drain(sink)
    finally:
        sub.stop()
        sub.join(WAIT)
    assert [type(i).__name__ for i in items] == ["Transaction", "EndOfStream"]
