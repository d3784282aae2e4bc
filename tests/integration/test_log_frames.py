"""ClientConfig.log_frames (issue 13 item 6): every frame of every socket at DEBUG on ``simclient.frames``, the API
key masked even when the server echoes it (on the control socket and on a subscription socket, which is opened
without the key), and nothing at all when it is off."""
from __future__ import annotations

import json
import logging
from typing import List

import pytest

from simclient import Client, CreateSession
from simclient import events as ev
from simclient.framelog import FRAMES_LOGGER
from simclient.testing import fast_config

pytest.importorskip("aiohttp")
from simclient.local import LocalSimulator  # noqa: E402

SECRET = "sk-live-frames-5be1c0d2-DO-NOT-LOG"


def _frame_lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == FRAMES_LOGGER]


def _run(sim: LocalSimulator, key: str, log_frames: bool, echo: bool = False) -> List[ev.Event]:
    """One session over 3 bundles, a transactions subscription, driven to completion; with ``echo``, frames that
    carry the key are injected on the control socket (text and binary) and on the subscription socket."""
    client = Client(sim.url, key, fast_config(log_frames=log_frames))
    seen: List[ev.Event] = []
    create = CreateSession(start_slot=sim.first_slot, slot_count=299)
    with client.start_session(create) as session:
        session.subscribe_transactions(sim.program_ids[:1])
        idle = 0
        for event in session.events(timeout=15):
            seen.append(event)
            if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
                if echo and idle == 1:
                    status = json.dumps({"method": "status", "params": {"status": f"warming {key}"}})
                    assert sim.inject_control_frame(session.session_id, status)
                    assert sim.inject_control_frame(session.session_id, b"\x01\x02" + key.encode() + b"\x03")
                    note = json.dumps({"jsonrpc": "2.0", "method": "x-echo", "params": {"apiKey": key}})
                    assert sim.inject_subscription_frame(session.session_id, note) >= 1
                idle += 1
                session.send_continue(advance_count=100)
    return seen


def test_frames_of_control_and_subscription_sockets_are_logged_both_ways(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=FRAMES_LOGGER)
    with LocalSimulator(port=0) as sim:
        seen = _run(sim, sim.api_key, log_frames=True)
    assert any(isinstance(e, ev.Completed) for e in seen)
    lines = _frame_lines(caplog)
    sent_control = [x for x in lines if x.startswith("> control#")]
    got_control = [x for x in lines if x.startswith("< control#")]
    sent_sub = [x for x in lines if x.startswith("> subscription#")]
    got_sub = [x for x in lines if x.startswith("< subscription#")]
    assert any('"method":"createBacktestSession"' in x.replace(" ", "") for x in sent_control)
    continues = [json.loads(x.split("B ", 1)[1]) for x in sent_control if '"method":"continue"' in x]
    assert sum(c["params"]["advanceCount"] for c in continues) == 300  # the wire's continues cover the range
    assert any('"sessionCreated"' in x for x in got_control)
    assert any('"completed"' in x for x in got_control)
    assert any("transactionSubscribe" in x for x in sent_sub)
    transactions = [e for e in seen if isinstance(e, ev.Transaction)]
    assert transactions
    # every delivered transaction's signature is in some inbound subscription frame
    assert all(any(t.signature in x for x in got_sub) for t in transactions)
    assert len([x for x in lines if x.startswith("* control#") and " open ws://127.0.0.1:" in x]) == 1
    assert any(x.startswith("* subscription#") and "/backtest/" in x for x in lines)
    # the step barrier's pings and their pongs are frames too
    assert any(" ping " in x for x in sent_sub) and any(" pong " in x for x in got_sub)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == FRAMES_LOGGER)


def test_the_key_never_appears_even_when_the_server_echoes_it(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    with LocalSimulator(port=0, api_key=SECRET) as sim:
        seen = _run(sim, SECRET, log_frames=True, echo=True)
    assert any(isinstance(e, ev.Status) and e.status == "warming ***" for e in seen)
    lines = _frame_lines(caplog)
    echoed_status = [x for x in lines if x.startswith("< control#") and "warming" in x]
    echoed_sub = [x for x in lines if x.startswith("< subscription#") and "x-echo" in x]
    binary = [x for x in lines if x.startswith("< control#") and " binary " in x]
    assert echoed_status and echoed_sub and binary, "the echoing frames were logged (so the test looked at them)"
    assert "warming ***" in echoed_status[0] and "***" in echoed_sub[0]
    assert binary[0].split("B ", 1)[1] == f"0102{b'***'.hex()}03"  # masked (by the control socket's own scrub)
    everything = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert SECRET not in everything
    assert SECRET.encode().hex() not in everything


def test_off_no_frame_records(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="simclient")
    with LocalSimulator(port=0) as sim:
        seen = _run(sim, sim.api_key, log_frames=False)
    assert any(isinstance(e, ev.Completed) for e in seen)
    assert _frame_lines(caplog) == []
    assert any(r.name.startswith("simclient.") for r in caplog.records)  # DEBUG was on: other loggers spoke


def test_sockets_opened_by_reconnects_log_too(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=FRAMES_LOGGER)
    with LocalSimulator(port=0) as sim:
        sim.faults.drop_control_every(40, times=1).drop_subscriptions_every(150)
        seen = _run(sim, sim.api_key, log_frames=True)
        drops = sim.stats["control_drops"]
    assert drops == 1 and any(isinstance(e, ev.Completed) for e in seen)
    lines = _frame_lines(caplog)
    opened = [x.split()[1] for x in lines if x.startswith("* ") and " open " in x]
    assert len(set(opened)) == len(opened)  # one label per socket
    assert len([x for x in opened if x.startswith("control#")]) == 2  # the first one and the re-attach
    assert len([x for x in opened if x.startswith("subscription#")]) >= 2  # the data plane reconnected too
    assert any(x.startswith("> control#") and "attachBacktestSession" in x for x in lines)
    assert any(x.startswith("> subscription#") and "replayFromSlot" in x for x in lines)


def test_a_zstd_stream_is_logged_decompressed_too(caplog) -> None:
    pytest.importorskip("zstandard")
    caplog.set_level(logging.DEBUG, logger=FRAMES_LOGGER)
    with LocalSimulator(port=0) as sim:
        client = Client(sim.url, sim.api_key, fast_config(log_frames=True))
        with client.start_session(CreateSession(start_slot=sim.first_slot, slot_count=99)) as session:
            session.subscribe_transactions(sim.program_ids[:1], compression="zstd")
            txs = [e for e in session.events(timeout=15) if isinstance(e, ev.Transaction)
                   or (isinstance(e, ev.ReadyForContinue) and session.send_continue(advance_count=100))]
    assert txs
    lines = _frame_lines(caplog)
    assert any(x.startswith("< subscription#") and " binary " in x for x in lines)
    inflated = [x for x in lines if x.startswith("< subscription#") and " inflated " in x]
    # every compressed notification is readable in the log, in the order it was read
    assert sum('"method":"transactionNotification"' in x.replace(" ", "") for x in inflated) == len(txs)
