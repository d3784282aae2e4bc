"""End of stream by silence (PROTOCOL §9.5's last fallback) must not cut the tail off a capture from a server that
sends explicit end-of-stream markers: once one was seen, a stall after ``completed`` is waited out."""
from __future__ import annotations

from simclient import Client, CreateSession
from simclient.local import LocalSimulator
from simclient.testing import fast_config

from simhelpers import drive, truth_signatures


def test_a_lagging_data_plane_after_completed_loses_nothing_once_markers_were_seen() -> None:
    with LocalSimulator(port=0) as sim:
        cfg = fast_config(eos_silence=0.5, keepalive_deadline=6.0, completion_drain_timeout=20.0)
        client = Client(sim.url, sim.api_key, cfg)
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=5)) as first:
            first.subscribe_transactions(sim.program_ids)
            drive(first, 100)  # ends with the server's subscriptionComplete: this server sends markers
        # The data plane now lags 1.5 s behind the control plane: `completed` arrives, then 1.5 s of silence (more
        # than eos_silence) before the first notification. By silence alone, the whole capture would be lost.
        sim.faults.delay_subscriptions_ms(1500)
        start = sim.first_slot + 10
        with client.start_session(CreateSession(start_slot=start, slot_count=20)) as session:
            session.subscribe_transactions(sim.program_ids)
            cap = drive(session, 100, timeout=30.0)
        truth = truth_signatures(sim.chain, start, start + 20, sim.program_ids)
        assert truth and cap.signatures == truth
        assert cap.completed is not None
