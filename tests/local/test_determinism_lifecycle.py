"""Byte-identical streams for a fixed seed; start/stop, threads, CLI."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import List

import pytest
import requests

from simclient.local import LocalSimulator
from simclient.local.server import THREAD_NAME

from .rawclient import (control, create, data_ws, drain_subscription, recv_until, send, session_id_of, subscribe,
                        without_ids)


def _script(sim) -> List[str]:
    """A fixed client script: a single session with subscriptions, then a parallel run. Returns every frame."""
    out: List[str] = []
    start = sim.first_slot + 5
    ws = control(sim)
    try:
        frames = create(ws, startSlot=start, endSlot=start + 24, sendSummary=True, disconnectTimeoutSecs=30,
                        discoveries=[{"programExecuted": sim.program_ids[2]}])
        sid = session_id_of(frames)
        sub = data_ws(sim, sid)
        subscribe(sub, "transactionSubscribe", [{"programs": sim.program_ids[:3]}])
        subscribe(sub, "accountDiffSubscribe", [{"address": sim.program_ids[1], "address_type": "program"}])
        send(ws, "continue", {"advanceCount": 25})
        frames += recv_until(ws, lambda m: m.get("method") == "completed")
        data = drain_subscription(sub)
        sub.close()
        out += frames + [json.dumps(n, separators=(",", ":")) for n in data["notifications"]]
    finally:
        ws.close()
    ws = control(sim)
    try:
        send(ws, "createBacktestSession", {"startSlot": sim.first_slot, "endSlot": sim.first_slot + 29,
                                           "parallel": True, "disconnectTimeoutSecs": 30})
        frames = recv_until(ws, lambda m: m.get("method") == "sessionsCreatedV2")
        for sid in json.loads(frames[-1])["params"]["session_ids"]:
            send(ws, "continueSessionV1", {"sessionId": sid, "request": {"advanceCount": 10}})
            frames += recv_until(ws, lambda m: m.get("method") == "sessionEventV2"
                                 and m["params"]["event"]["method"] == "completed")
        out += frames
    finally:
        ws.close()
    return out


def test_fixed_seed_gives_byte_identical_streams(make_sim) -> None:
    a = _script(make_sim(seed=42))
    b = _script(make_sim(seed=42))
    assert len(a) > 100
    assert without_ids(a) == without_ids(b)  # the chain is deterministic...
    assert a != b  # ...the ids are not: fresh uuid v7s, so a restarted server never reissues an old id
    c = _script(make_sim(seed=43))
    assert without_ids(a) != without_ids(c)


def test_ids_are_prefixed_uuid7_unique_across_restarts_unless_forced(make_sim) -> None:
    import uuid

    ids = []
    for _ in range(2):
        sim = make_sim()
        ws = control(sim)
        try:
            ids.append(session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 3)))
        finally:
            ws.close()
        sim.stop()
    assert ids[0] != ids[1]
    for sid in ids:
        assert sid.startswith("backtest_") and uuid.UUID(sid[len("backtest_"):]).version == 7
    assert ids[0] < ids[1]  # v7: ordered by creation time
    forced = make_sim(session_id_factory=lambda kind: f"{kind}-fixed")
    ws = control(forced)
    try:
        assert session_id_of(create(ws, startSlot=forced.first_slot, endSlot=forced.first_slot + 3)) == "session-fixed"
    finally:
        ws.close()


def test_start_stop_threads_and_urls() -> None:
    before = set(threading.enumerate())
    sim = LocalSimulator(port=0, bundle_size=10, num_bundles=5)
    with pytest.raises(RuntimeError):
        _ = sim.url
    with sim:
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/backtest", sim.url)
        assert sim.http_url == sim.url[:-len("/backtest")].replace("ws://", "http://")
        assert [t.name for t in threading.enumerate() if t.name == THREAD_NAME] == [THREAD_NAME]
        assert all(t.daemon for t in threading.enumerate() if t.name == THREAD_NAME)
        assert len(sim.program_ids) == 5
        assert requests.get(sim.http_url + "/available-ranges", timeout=5).status_code == 200
        port = sim.port
        # the port is taken: a second simulator on it fails to start, loudly
        with pytest.raises(OSError):
            LocalSimulator(port=port).start()
    sim.stop()                               # idempotent
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/available-ranges", timeout=2)


def test_stop_is_quick_with_busy_sessions_and_open_sockets() -> None:
    sim = LocalSimulator(port=0, bundle_size=100, num_bundles=10, slot_pace_ms=50).start()
    ws = control(sim)
    sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 900,
                               disconnectTimeoutSecs=60))
    sub = data_ws(sim, sid)
    subscribe(sub, "transactionSubscribe", [{}])
    send(ws, "continue", {"advanceCount": 900})
    ws.recv()
    sim.faults.stall(30)                    # even a stalled server stops promptly
    t0 = time.monotonic()
    sim.stop()
    assert time.monotonic() - t0 < 2.0
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]
    ws.close()
    sub.close()


def test_python_dash_m_serves_until_interrupted() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "simclient.local", "--port", "0", "--seed", "3",
                             "--bundle-size", "50", "--api-key", "k", "--dialect", "nested-snake"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    try:
        line = proc.stderr.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/backtest", line)
        assert m, line
        ranges = requests.get(f"http://127.0.0.1:{m.group(1)}/available-ranges", timeout=5).json()
        assert ranges[0]["max_bundle_size"] == 50 and "dialect nested-snake" in line  # the dialect's casing
        r = requests.get(f"http://127.0.0.1:{m.group(1)}/backtest", headers={"X-API-Key": "nope"}, timeout=5)
        assert r.status_code == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
