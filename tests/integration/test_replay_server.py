"""The benchmarks' replay server (benchmarks/replay_server.py) serves what the local simulator sent, so that the
SDK, unmodified, sees the same events: otherwise its figures would measure a different stream."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.local import LocalSimulator
from simclient.testing import fast_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "benchmarks"))
import replay_server  # noqa: E402

SLOTS = 60


def _drive_single(url, api_key, programs, diff_programs, advance_count=SLOTS):
    client = Client(url, api_key, fast_config())
    out = {"control": [], "tx": [], "diffs": []}
    with client.start_session(CreateSession(start_slot=replay_server.FIRST_SLOT, slot_count=SLOTS - 1)) as s:
        s.subscribe_transactions(programs)
        s.subscribe_account_diffs(diff_programs)
        completed = s.run(advance_count=advance_count, on_event=lambda e: out[
            "tx" if isinstance(e, ev.Transaction) else "diffs" if isinstance(e, ev.AccountDiff) else "control"
        ].append(e), timeout=10)
    assert isinstance(completed, ev.Completed)
    return out


class _Serving:
    def __init__(self, scenarios):
        self.server = replay_server.ReplayServer(scenarios)
        self.thread = threading.Thread(target=self.server.serve_forever, name="replay-accept")

    def __enter__(self):
        self.thread.start()
        return f"ws://127.0.0.1:{self.server.port}"

    def __exit__(self, *exc):
        self.server.close()
        self.thread.join(5)


@pytest.mark.parametrize("step", [None, 1], ids=["one-continue", "one-slot-steps"])
def test_replayed_single_session_gives_the_sdk_the_simulator_s_events(step):
    rec = replay_server._record_single(SLOTS, subscribe=True, step=step)
    assert rec["diff_programs"] and rec["subs"]["transaction"]["frames"]
    scenario = replay_server.Scenario("tx", rec)
    assert len(scenario.steps) == (SLOTS if step else 1)
    advance = step or SLOTS
    with LocalSimulator(port=0, bundle_size=1000, num_bundles=1, first_slot=replay_server.FIRST_SLOT) as sim:
        direct = _drive_single(sim.url, sim.api_key, rec["programs"], rec["diff_programs"], advance)
    with _Serving({"tx": scenario}) as base:
        replayed = _drive_single(f"{base}/tx", replay_server.API_KEY, rec["programs"], rec["diff_programs"], advance)
    assert direct["tx"] and direct["diffs"]
    assert replayed["tx"] == direct["tx"]
    assert sorted(replayed["diffs"], key=lambda d: d.key) == sorted(direct["diffs"], key=lambda d: d.key)
    assert [type(e) for e in replayed["control"]] == [type(e) for e in direct["control"]]
    assert [e.slot for e in replayed["control"] if isinstance(e, ev.Slot)] == \
        [e.slot for e in direct["control"] if isinstance(e, ev.Slot)]


def test_replayed_parallel_run_holds_each_sub_session_until_its_continue():
    rec = replay_server._record_parallel(400, 4)
    with _Serving({"fanout-4": replay_server.Scenario("fanout-4", rec)}) as base:
        client = Client(f"{base}/fanout-4", replay_server.API_KEY, fast_config())
        with client.start_parallel(CreateSession(start_slot=replay_server.FIRST_SLOT, slot_count=399)) as run:
            assert len(run.sub_sessions) == 4
            # one worker: the sub-sessions run one after another, so all but the first wait for their continue
            result = run.drive(max_workers=1)
        assert result.failures == [] and len(result.completed) == 4


def test_benchmark_fails_loudly_when_the_server_is_not_twice_the_fastest_client():
    import bench_replay

    def runs(rate):
        return [{"events": 1000, "wall": 1000 / rate, "cpu": 0.01}]

    bench_replay.check_server({"tx": {"null": runs(300_000), "picows": runs(100_000), "sdk-orjson": runs(50_000)}})
    with pytest.raises(SystemExit, match="REPLAY SERVER TOO SLOW.*picows"):
        bench_replay.check_server({"tx": {"null": runs(150_000), "picows": runs(100_000)}})
