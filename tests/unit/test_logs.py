"""Program logs (issue 13 item 2): the ``logsNotification`` converter, the subscribe request, and the generic worker
and consumer applied to the logs kind, through scripted connections (no sockets, no simulator)."""
from __future__ import annotations

import queue
from typing import Any, Iterator, List, Tuple

import pytest

from simclient import events as ev
from simclient import protocol
from simclient.control import Route
from simclient.errors import ProtocolError
from simclient.kinds import LOGS, kind
from simclient.session import _BaseSession
from simclient.subscriptions import BarrierPassed, EndOfStream, SlotMark, Subscription
from simclient.testing import fast_config

from scripted_ws import FakeSubscription, Script, scripted_worker

PROG = "Prog1111111111111111111111111111111111111111"
LINES = ["Program X invoke [1]", "Program log: hello", "Program X success"]


def logs_note(slot: int, sig: str, sub_id: int = 41, err: Any = None, logs: Any = None) -> str:
    return protocol.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": {
        "subscription": sub_id, "result": {"context": {"slot": slot}, "value": {
            "signature": sig, "err": err, "logs": list(LINES) if logs is None else logs}}}})


# ------------------------------------------------------------------------------------------- the converter

def test_standard_solana_shape():
    err = {"InstructionError": [0, {"Custom": 6001}]}
    got = protocol.logs_from_result({"context": {"slot": 7}, "value": {"signature": "s1", "err": err,
                                                                       "logs": LINES}})
    assert got == ev.Logs(slot=7, signature="s1", err=err, logs=tuple(LINES))
    assert not got.success and got.program_id is None


def test_program_id_is_filled_in_by_the_caller():
    got = protocol.logs_from_result({"context": {"slot": 7}, "value": {"signature": "s1", "err": None,
                                                                       "logs": []}}, program_id=PROG)
    assert got.program_id == PROG and got.key == (PROG, "s1") and got.success


@pytest.mark.parametrize("result", [
    {"slot": 9, "signature": "s", "err": None, "logs": LINES},                        # bare payload (L5)
    {"value": {"slot": 9, "signature": "s", "err": None, "logs": LINES}},             # value without context
    {"context": {"slot": 9}, "value": {"slot": 8, "signature": "s", "logs": LINES}},  # context wins, err absent
    {"context": {}, "value": {"slot": 9, "signature": "s", "err": None, "logs": LINES}},  # slot only inside
])
def test_lenient_shapes(result):
    assert protocol.logs_from_result(result) == ev.Logs(slot=9, signature="s", err=None, logs=tuple(LINES))


def test_null_logs_are_empty():
    got = protocol.logs_from_result({"context": {"slot": 1}, "value": {"signature": "s", "err": None,
                                                                       "logs": None}})
    assert got.logs == ()


@pytest.mark.parametrize("result, needle", [
    ([1, 2], "expected an object"),
    ({"context": {"slot": 1}, "value": "x"}, "logsNotification.value"),
    ({"context": {"slot": 1}, "value": {"err": None, "logs": []}}, "signature"),
    ({"context": {"slot": 1}, "value": {"signature": 5, "logs": []}}, "logs.signature"),
    ({"context": {"slot": -1}, "value": {"signature": "s", "logs": []}}, "logs.slot"),
    ({"signature": "s", "logs": []}, "logs.slot"),                                   # no slot anywhere
    ({"context": {"slot": 1}, "value": {"signature": "s", "logs": "one line"}}, "logs.logs"),
    ({"context": {"slot": 1}, "value": {"signature": "s", "logs": ["a", 3]}}, "logs.logs"),
])
def test_malformed_results_raise_protocol_error(result, needle):
    with pytest.raises(ProtocolError, match=needle):
        protocol.logs_from_result(result)


def test_subscribe_request_is_standard_logs_subscribe():
    spec = kind(LOGS)
    assert spec.requests([PROG]) == [({"mentions": [PROG]}, PROG)]  # one address per request (§9.2.2)
    req = protocol.encode_subscribe(3, LOGS, protocol.logs_filter(PROG), 120)
    assert req == {"jsonrpc": "2.0", "id": 3, "method": "logsSubscribe",
                   "params": [{"mentions": [PROG]}, {"commitment": "confirmed", "replayFromSlot": 120}]}
    assert protocol.encode_subscribe(1, LOGS, {"mentions": [PROG]})["params"][1] == {"commitment": "confirmed"}


# ------------------------------------------------------------------------------------------- the worker

@pytest.fixture
def worker() -> Iterator[Tuple[Script, Subscription, "queue.SimpleQueue[Any]"]]:
    with scripted_worker(LOGS, [PROG]) as got:
        yield got


def events_of(sink: "queue.SimpleQueue[Any]", n: int) -> List[Any]:
    out: List[Any] = []
    while len(out) < n:
        item = sink.get(timeout=5)
        if not isinstance(item, SlotMark):
            out.append(item)
    return out


def test_worker_subscribes_delivers_discards_and_dedups_across_a_drop(worker):
    script, sub, sink = worker
    conn = script.wait_conns(1)
    assert conn.sent[0]["method"] == "logsSubscribe"
    assert conn.sent[0]["params"] == [{"mentions": [PROG]}, {"commitment": "confirmed"}]
    assert "simclient-sub-" in sub.thread.name and sub.thread.name.endswith("logs-Prog11")
    conn.frames.put((1, logs_note(100, "a")))
    conn.frames.put((1, protocol.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": {
        "subscription": 41, "result": {"context": {"slot": 100}, "value": {"logs": []}}}})))  # no signature
    conn.frames.put((1, logs_note(101, "b", err={"Custom": 1})))
    got = events_of(sink, 2)
    assert got == [ev.Logs(100, "a", None, tuple(LINES), PROG), ev.Logs(101, "b", {"Custom": 1}, tuple(LINES), PROG)]
    assert sub.stats.frames_discarded == 1
    # the server replays slot 101 inclusively after the drop: "b" repeats and is dropped, "c" is new
    script.replay = [logs_note(101, "b", err={"Custom": 1}), logs_note(101, "c"), logs_note(102, "d")]
    conn.frames.put("die")
    conn2 = script.wait_conns(2)
    assert conn2.sent[0]["params"][1] == {"commitment": "confirmed", "replayFromSlot": 101}
    assert [e.signature for e in events_of(sink, 2)] == ["c", "d"]
    assert sub.stats.duplicates_dropped == 1


def test_worker_end_of_stream_on_null_result(worker):
    script, sub, sink = worker
    conn = script.wait_conns(1)
    conn.frames.put((1, logs_note(100, "a")))
    conn.frames.put((1, protocol.dumps({"jsonrpc": "2.0", "method": "logsNotification",
                                        "params": {"subscription": 41, "result": None}})))
    first, end = events_of(sink, 2)
    assert first.signature == "a" and isinstance(end, EndOfStream)


# ------------------------------------------------------------------------------------------- the consumer

def test_logs_read_behind_a_step_end_are_delivered_before_it():
    """The in-order step rule covers Logs: read after ReadyForContinue but before the barrier's pong, they come
    first (a Logs treated as a control event would be delivered after the held event)."""
    fake = FakeSubscription(LOGS)
    route = Route("sess-1", "http://x/backtest/sess-1", None)
    s = _BaseSession(None, route, fast_config())  # type: ignore[arg-type]
    s._subscriptions = [fake]  # type: ignore[list-item]
    rfc, late = ev.ReadyForContinue(), ev.Logs(5, "x", None, (), PROG)
    for item in (rfc, late, BarrierPassed(fake, 1)):  # type: ignore[arg-type]
        route.sink.put(item)
    assert [s.next_event(1.0), s.next_event(1.0)] == [late, rfc]
