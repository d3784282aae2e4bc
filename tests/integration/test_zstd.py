"""zstd on the data plane against the local simulator (issue 13 item 5, PROTOCOL §9.4): compressed and plain
streams give the same events, equal to the simulator's ground truth, with control and subscription drops on, under
every reading of §9.4's open points (ack and end marker Text or compressed), across reconnects (a fresh decompressor
per connection), after a corrupt compressed frame, against a server without zstd, and in a parallel run."""
from __future__ import annotations

import sys
import threading
from typing import Any, Dict, Optional

import pytest

from simclient import Client, ClientConfig, CompressionUnavailableError, CreateSession
from simclient import compression as comp
from simclient.local import DIALECTS, FaultPlan, LocalSimulator
from simclient.local import server as local_server
from simclient.testing import fast_config

from simhelpers import Captured, assert_per_program_order, drive, truth_diff_keys, truth_signatures

try:
    import zstandard  # noqa: F401
    HAVE_ZSTD = True
except ImportError:  # the `zstd` extra (CI has it, through `dev`); only the missing-package test runs without it
    HAVE_ZSTD = False
needs_zstd = pytest.mark.skipif(not HAVE_ZSTD, reason="needs zstandard (pip install 'simclient[zstd]')")

SLOTS = 300


def _faults() -> FaultPlan:
    return FaultPlan(seed=3).drop_control_every(50).drop_subscriptions_every(100)


def run(sim: LocalSimulator, compression: Optional[str] = "zstd", config: Optional[ClientConfig] = None,
        advance_count: int = 10) -> Any:
    client = Client(sim.url, sim.api_key, config or fast_config())
    create = CreateSession(start_slot=sim.first_slot, slot_count=SLOTS - 1)
    with client.start_session(create) as session:
        session.subscribe_transactions(sim.program_ids, compression=compression)
        session.subscribe_account_diffs(sim.program_ids, compression=compression)
        cap = drive(session, advance_count)
        stats = session.stats
    return cap, stats, (create.start_slot, create.resolved_end_slot)


def check_truth(sim: LocalSimulator, cap: Captured, span: Any) -> None:
    start, end = span
    assert cap.completed is not None and cap.all[-1] == cap.completed
    assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
    assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids)
    assert [t.value for t in cap.transactions] == sim.chain.transactions(start, end, sim.program_ids)
    assert_per_program_order(cap)


@pytest.fixture(scope="module")
def plain_with_drops() -> Captured:
    with LocalSimulator(port=0, faults=_faults(), replay_window=1000) as sim:
        cap, _, _ = run(sim, compression=None)
        assert sim.stats["zstd_frames_sent"] == 0
    return cap


@needs_zstd
def test_zstd_and_plain_streams_give_identical_events_with_drops(plain_with_drops):
    with LocalSimulator(port=0, faults=_faults(), replay_window=1000) as sim:
        cap, stats, span = run(sim)
        assert sim.stats["control_drops"] > 0 and sim.stats["subscription_drops"] > 0
        # every notification (and replay, and end marker) went out compressed, as Binary frames
        assert sim.stats["zstd_frames_sent"] >= sim.stats["notifications_sent"] > 0
        assert sim.stats["zstd_bytes_out"] < sim.stats["zstd_bytes_in"] / 2
        check_truth(sim, cap, span)
    assert cap.signatures == plain_with_drops.signatures
    assert cap.diff_keys() == plain_with_drops.diff_keys() and len(cap.diffs) == len(plain_with_drops.diffs)
    # (the diff sockets interleave differently from run to run: compare per key)
    assert {d.key: (d.pre, d.post) for d in cap.diffs} == {d.key: (d.pre, d.post) for d in plain_with_drops.diffs}
    assert cap.control_signature() == plain_with_drops.control_signature()
    # the compressed streams went on across reconnects: each new socket's stream decoded with a new decompressor
    assert stats.subscription_reconnects > 0 and stats.control_reconnects > 0
    assert stats.decompress_failures == 0 and stats.frames_discarded == 0


@needs_zstd
@pytest.mark.parametrize("ack, eos, base", [
    ("text", "zstd", "evidenced"),       # the default reading
    ("zstd", "zstd", "evidenced"),       # the ack compressed too
    ("text", "text", "evidenced"),       # the end marker in Text
    ("zstd", "text", "nested-snake"),    # ... and with `result: null` as the end of stream
    ("zstd", "zstd", "nested-snake"),
])
def test_every_reading_of_the_open_points(ack, eos, base):
    dialect = DIALECTS[base].with_(name=f"{base}-{ack}-{eos}", zstd_ack=ack, zstd_eos=eos)
    with LocalSimulator(port=0, faults=_faults(), replay_window=1000, dialect=dialect) as sim:
        cap, stats, span = run(sim)
        assert sim.stats["subscription_drops"] > 0 and sim.stats["zstd_frames_sent"] > 0
        check_truth(sim, cap, span)
    assert stats.decompress_failures == 0


@needs_zstd
def test_a_lagging_data_plane_keeps_the_compressed_order():
    """Delayed writes (FaultPlan.delay_subscriptions_ms) are compressed when they are written, in wire order."""
    faults = FaultPlan().delay_subscriptions_ms(2).drop_subscriptions_every(150)
    with LocalSimulator(port=0, faults=faults, replay_window=1000) as sim:
        cap, stats, span = run(sim, advance_count=50)
        assert sim.stats["zstd_frames_sent"] > 0
        check_truth(sim, cap, span)
    assert stats.decompress_failures == 0


@needs_zstd
def test_early_complete_on_a_compressed_subscription_resubscribes():
    """§9.5's "subscribed before the data plane was up" answer arrives on the compressed stream (ack, then a
    compressed end marker); the re-subscribe is a new socket with a new compressor."""
    faults = FaultPlan().early_complete_subscribes(1)
    dialect = DIALECTS["evidenced"].with_(name="zstd-ack", zstd_ack="zstd")
    with LocalSimulator(port=0, faults=faults, dialect=dialect) as sim:
        cap, stats, span = run(sim)
        assert sim.stats["early_completes_sent"] == 1
        check_truth(sim, cap, span)
    assert stats.decompress_failures == 0


@needs_zstd
def test_a_corrupt_compressed_frame_costs_a_reconnect_not_data():
    """An injected Binary frame that is not part of the socket's zstd stream: the client cannot trust what follows
    on that socket, so it reconnects and replays from its cursor; nothing is skipped and nothing repeats."""
    faults = FaultPlan().inject_subscription(b"\x00\x01 not zstd \xff", after_notifications=200)
    with LocalSimulator(port=0, faults=faults, replay_window=1000) as sim:
        cap, stats, span = run(sim)
        assert sim.stats["injected_subscription_frames"] == 1
        check_truth(sim, cap, span)
    assert stats.decompress_failures == 1
    assert stats.subscription_reconnects >= 1
    assert len(set(cap.signatures)) == len(cap.signatures)


@needs_zstd
def test_the_config_default_and_a_per_subscription_opt_out():
    with LocalSimulator(port=0) as sim:
        config = fast_config(compression="zstd")
        client = Client(sim.url, sim.api_key, config)
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=SLOTS - 1)) as session:
            session.subscribe_transactions(sim.program_ids)                       # the config's zstd
            session.subscribe_account_diffs(sim.program_ids, compression="none")  # plain
            cap = drive(session, 50)
            compressed = {s.kind: s.compression for s in session._subscriptions}
        check_truth(sim, cap, (sim.first_slot, sim.first_slot + SLOTS - 1))
        assert compressed == {"transaction": "zstd", "accountDiff": None}
        # compressed frames: the transactions (and their end marker) only
        assert 0 < sim.stats["zstd_frames_sent"] <= len(cap.transactions) + 1 < sim.stats["notifications_sent"]


@needs_zstd
def test_a_server_without_zstd_sends_text_and_the_client_reads_it(monkeypatch):
    monkeypatch.setattr(local_server, "zstd_available", lambda: False)
    with LocalSimulator(port=0, faults=_faults(), replay_window=1000) as sim:
        cap, stats, span = run(sim)
        assert sim.stats["zstd_ignored"] > 0 and sim.stats["zstd_frames_sent"] == 0
        check_truth(sim, cap, span)
    assert stats.decompress_failures == 0


def test_without_zstandard_the_subscribe_call_raises_and_the_session_goes_on(monkeypatch):
    monkeypatch.setattr(comp, "_zstd", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config(compression="zstd"))
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=99)) as session:
            threads = threading.active_count()
            with pytest.raises(CompressionUnavailableError, match=r"pip install 'simclient\[zstd\]'"):
                session.subscribe_transactions(sim.program_ids)  # the config's default asks for zstd
            with pytest.raises(ImportError):
                session.subscribe_account_diffs(sim.program_ids, compression="zstd")
            assert threading.active_count() == threads and session._subscriptions == []  # no worker started
            session.subscribe_transactions(sim.program_ids, compression="none")
            cap = drive(session, 50)
        assert cap.signatures == truth_signatures(sim.chain, sim.first_slot, sim.first_slot + 99, sim.program_ids)
        assert sim.stats["zstd_frames_sent"] == 0


@needs_zstd
def test_parallel_run_with_zstd_and_drops():
    bundles = 4
    with LocalSimulator(port=0, faults=_faults(), replay_window=1000) as sim:
        client = Client(sim.url, sim.api_key, fast_config())
        create = CreateSession(start_slot=sim.first_slot, slot_count=bundles * sim.bundle_size - 1)
        caps: Dict[str, Captured] = {}
        lock = threading.Lock()

        def on_event(sub: Any, event: Any) -> None:
            with lock:
                caps.setdefault(sub.session_id, Captured()).add(event)

        with client.start_parallel(create) as prun:
            ranges = {s.session_id: s.range for s in prun.sub_sessions}
            prun.subscribe_transactions(sim.program_ids, compression="zstd")
            prun.subscribe_account_diffs(sim.program_ids, compression="zstd")
            result = prun.drive(on_event=on_event, advance_count=20)
            failures = sum(s.stats.decompress_failures for s in prun.sub_sessions)
        assert result.failures == [] and len(result.completed) == bundles
        assert sim.stats["subscription_drops"] > 0 and sim.stats["zstd_frames_sent"] > 0
        for sid, (start, end) in ranges.items():
            cap = caps[sid]
            assert cap.completed is not None and cap.all[-1] == cap.completed
            assert cap.signatures == truth_signatures(sim.chain, start, end, sim.program_ids)
            assert cap.diff_keys() == truth_diff_keys(sim.chain, start, end, sim.program_ids)
    assert failures == 0


@needs_zstd
def test_logs_with_zstd_and_drops_match_the_chain():
    """A kind added beside transactions and diffs (logsSubscribe) goes through the same compressed path."""
    from simclient import events as ev

    with LocalSimulator(port=0, faults=_faults(), replay_window=1000) as sim:
        watch = [sim.program_ids[0], sim.chain.accounts_of(sim.program_ids[0])[0]]
        client = Client(sim.url, sim.api_key, fast_config(compression="zstd"))
        create = CreateSession(start_slot=sim.first_slot, slot_count=SLOTS - 1)
        events = []
        with client.start_session(create) as session:
            session.subscribe_logs(watch)
            for event in session.events(timeout=15):
                events.append(event)
                if isinstance(event, ev.ReadyForContinue):
                    session.send_continue(advance_count=10)
            stats = session.stats
        assert sim.stats["subscription_drops"] > 0 and sim.stats["zstd_frames_sent"] > 0
        start, end = create.start_slot, create.resolved_end_slot
        for address in watch:
            mine = [(e.slot, e.signature, e.err, e.logs) for e in events
                    if isinstance(e, ev.Logs) and e.program_id == address]
            assert mine == [(r["slot"], r["signature"], r["err"], tuple(r["logs"]))
                            for r in sim.chain.logs(start, end, [address])] and mine
    assert isinstance(events[-1], ev.Completed)
    assert stats.decompress_failures == 0
