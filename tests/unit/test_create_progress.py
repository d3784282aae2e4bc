"""start_parallel's create progress callbacks through scripted connections: a create re-sent after a drop, statuses
of sub-sessions not announced yet and top-level ones, and a callback that raises."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest
from scripted import ScriptedConnection, ScriptedServer

from simclient import Client, CreateSession, CreateStatus, SessionCreatedInfo
from simclient.create_progress import CreateProgress
from simclient.testing import fast_config

URL = "ws://scripted.invalid/backtest"
CFG = fast_config(keepalive_interval=0.05, keepalive_deadline=2.0, backoff_initial=0.001, backoff_max=0.005,
                  reconnect_attempts=3, handshake_timeout=1.0, create_timeout=2.0, close_timeout=1.0)


def _created(conn: ScriptedConnection, sid: str) -> None:
    conn.reply("sessionCreated", {"session_id": sid, "rpc_endpoint": f"/backtest/{sid}", "task_id": f"t-{sid}"})


def _status(conn: ScriptedConnection, sid: str, status: str, seq: int) -> None:
    conn.reply("sessionEventV2", {"session_id": sid, "seq_id": seq,
                                  "event": {"method": "status", "params": {"status": status}}})


def _done(conn: ScriptedConnection, ids: List[str]) -> None:
    conn.reply("sessionsCreatedV2", {"control_session_id": "ctl", "session_ids": ids,
                                     "start_slots": [100 + 10 * i for i in range(len(ids))],
                                     "end_slots": [109 + 10 * i for i in range(len(ids))]})


def test_a_create_re_sent_after_a_drop_counts_again_and_statuses_are_reported_as_they_come() -> None:
    def handler(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] != "createBacktestSession":
            return
        if conn.number == 1:  # the first attempt loses its connection after one sub-session
            _created(conn, "a")
            conn.drop()
            return
        conn.reply("status", {"status": "preparingBundle"})  # a top-level status of the control session
        _status(conn, "d", "bundleReady", 1)                  # before d's own sessionCreated
        _created(conn, "c")
        _status(conn, "c", "bundleReady", 1)
        _created(conn, "d")
        _status(conn, "c", "warmingUpSomethingNew", 2)        # unknown statuses pass through
        _done(conn, ["c", "d"])

    server = ScriptedServer(handler)
    created: List[SessionCreatedInfo] = []
    statuses: List[CreateStatus] = []
    client = Client(URL, "key", CFG, connection_factory=server)
    with client.start_parallel(CreateSession(start_slot=100, slot_count=19), on_session_created=created.append,
                               on_status=statuses.append) as run:
        assert [s.session_id for s in run.sub_sessions] == ["c", "d"]
    assert [(i.session_id, i.count, i.attempt, i.task_id) for i in created] == [
        ("a", 1, 1, "t-a"), ("c", 1, 2, "t-c"), ("d", 2, 2, "t-d")]
    assert created[1].rpc_endpoint == "http://scripted.invalid/backtest/c"
    assert [(s.status, s.session_id, s.created, s.attempt) for s in statuses] == [
        ("preparingBundle", None, 0, 2), ("bundleReady", "d", 0, 2), ("bundleReady", "c", 1, 2),
        ("warmingUpSomethingNew", "c", 2, 2)]
    assert len(server.sent("createBacktestSession")) == 2


def test_a_raising_callback_closes_every_sub_session_then_raises() -> None:
    def handler(conn: ScriptedConnection, req: Dict[str, Any]) -> None:
        if req["method"] == "createBacktestSession":
            for sid in ("a", "b", "c"):
                _created(conn, sid)
            _done(conn, ["a", "b", "c"])
        elif req["method"] == "closeSessionV1":
            sid = req["params"]["session_id"]
            conn.reply("sessionEventV2", {"session_id": sid, "seq_id": 9, "event": {"method": "success"}})

    calls: List[int] = []

    def boom(info: SessionCreatedInfo) -> None:
        calls.append(info.count)
        raise RuntimeError(f"bad callback at {info.session_id}")

    server = ScriptedServer(handler)
    with pytest.raises(RuntimeError, match="bad callback at a"):
        Client(URL, "key", CFG, connection_factory=server).start_parallel(
            CreateSession(start_slot=100, slot_count=29), on_session_created=boom)
    assert calls == [1]
    assert sorted(m["params"]["session_id"] for _, m in server.sent("closeSessionV1")) == ["a", "b", "c"]


def test_the_same_announcement_twice_is_one_sub_session() -> None:
    seen: List[SessionCreatedInfo] = []
    progress = CreateProgress(seen.append)
    progress.new_attempt()
    progress.session_created("a", "/a", None)
    progress.session_created("a", "/a", None)
    progress.session_created("b", "/b", None)
    assert [(i.session_id, i.count) for i in seen] == [("a", 1), ("b", 2)] and progress.created == 2
