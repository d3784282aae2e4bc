"""Parallel create progress (issue 13 item 7): ``start_parallel(create, on_session_created=, on_status=)`` against
the local simulator. The simulator holds the create half-way (FaultPlan.hold_parallel_create), so the test sees
callbacks arrive while the server has not finished the create, without any timing."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, List, Tuple

import pytest

from simclient import Client, CreateSession, CreateStatus, SessionCreatedInfo
from simclient.testing import fast_config

pytest.importorskip("aiohttp")
from simclient.local import LocalSimulator  # noqa: E402

BUNDLES = 4


def _create(sim: LocalSimulator) -> CreateSession:
    return CreateSession(start_slot=sim.first_slot, slot_count=BUNDLES * sim.bundle_size - 1)


def test_one_callback_per_streamed_session_created_while_the_server_is_still_creating() -> None:
    with LocalSimulator(port=0, create_delay_ms=5) as sim:
        sim.faults.hold_parallel_create(after_sessions=2)
        created: List[Tuple[SessionCreatedInfo, bool, str]] = []
        statuses: List[CreateStatus] = []
        returned = threading.Event()

        def on_created(info: SessionCreatedInfo) -> None:
            held = sim.faults.parallel_create_held
            created.append((info, held, threading.current_thread().name))
            assert not returned.is_set()
            if info.count == 2:
                sim.faults.release_parallel_create()

        def on_status(status: CreateStatus) -> None:
            assert not returned.is_set()
            statuses.append(status)

        client = Client(sim.url, sim.api_key, fast_config())
        with client.start_parallel(_create(sim), on_session_created=on_created, on_status=on_status) as run:
            returned.set()
            subs = run.sub_sessions
            assert [info.count for info, _, _ in created] == list(range(1, BUNDLES + 1))
            # the server's order of creation is the order of its bundles: the ids match the run's, range by range
            assert [info.session_id for info, _, _ in created] == [s.session_id for s in subs]
            assert [info.rpc_endpoint for info, _, _ in created] == [s.rpc_endpoint for s in subs]
            assert [info.task_id for info, _, _ in created] == [sim.session(s.session_id).task_id for s in subs]
            # the second callback ran while the server held the rest of the create (no sessionsCreatedV2 yet)
            assert [held for _, held, _ in created] == [False, True, False, False]
            assert all(name.startswith("simclient-control") for _, _, name in created)
            assert all(info.attempt == 1 for info, _, _ in created)
            elapsed = [info.elapsed for info, _, _ in created]
            assert elapsed == sorted(elapsed)
            # every sub-session's startup statuses came through, in the server's order
            for sub in subs:
                mine = [s.status for s in statuses if s.session_id == sub.session_id]
                assert mine[:2] == ["bundleReady", "startingRuntime"], mine
            # a status is counted against the sub-sessions announced when it arrived
            first_of = {s.session_id: s.created for s in reversed(statuses)}
            assert [first_of[s.session_id] for s in subs] == [1, 2, 3, 4]
            run.drive()  # the run is the usual one
        assert not sim.faults.parallel_create_held


def test_a_raising_callback_does_not_kill_the_reader_and_is_raised_after_closing_the_run(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="simclient.create_progress")
    with LocalSimulator(port=0) as sim:
        calls: List[int] = []

        def on_created(info: SessionCreatedInfo) -> None:
            calls.append(info.count)
            if info.count == 2:
                raise KeyError("strategy bug")

        client = Client(sim.url, sim.api_key, fast_config())
        with pytest.raises(KeyError, match="strategy bug"):
            client.start_parallel(_create(sim), on_session_created=on_created)
        assert calls == [1, 2]  # not called again after it raised
        assert any("KeyError" in r.getMessage() for r in caplog.records)
        # the whole run was created, then closed: no sub-session is left for the disconnect timeout
        subs = [s for s in sim.sessions()]
        assert len(subs) == BUNDLES
        deadline = time.monotonic() + 5.0
        while any(s.state != "closed" for s in subs) and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert [s.state for s in subs] == ["closed"] * BUNDLES


def test_callbacks_are_optional_and_checked() -> None:
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        with pytest.raises(TypeError, match="on_status"):
            client.start_parallel(_create(sim), on_status="not callable")  # type: ignore[arg-type]
        seen: List[Any] = []
        with client.start_parallel(_create(sim), on_status=seen.append) as run:
            assert len(run.sub_sessions) == BUNDLES
        assert {s.status for s in seen} >= {"bundleReady", "startingRuntime"}
