"""Deferred payloads (issue 17): a ``Transaction`` delivered by a subscription worker keeps its frame's bytes and
decodes ``value`` on first read. The frame was decoded and checked whole on the reader thread, so the deferred event
must be indistinguishable from the eager one: same value, equality, hash, repr, pickling, ``replace``."""
from __future__ import annotations

import copy
import dataclasses
import pickle
import queue
import threading
from typing import Any, Iterator, List, Tuple

import pytest

from simclient import events as ev
from simclient import protocol
from simclient.errors import ProtocolError
from simclient.kinds import TRANSACTIONS
from simclient.subscriptions import SlotMark, Subscription

from scripted_ws import Script, note, scripted_worker

pytestmark = pytest.mark.usefixtures("json_backend")

SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
VALUE = {"slot": 7, "blockTime": 1, "transaction": {"signatures": [SIG], "message": {"accountKeys": ["a", "b"]}},
         "meta": {"err": {"InstructionError": [0, {"Custom": 6001}]}, "logMessages": ["Program log: x"], "fee": 5000}}
FRAME = protocol.dumps({"jsonrpc": "2.0", "method": "transactionNotification", "params": {
    "subscription": 3, "result": {"context": {"slot": 7}, "value": VALUE}}}).encode()


def deferred() -> ev.Transaction:
    note_ = protocol.decode_subscription_frame(FRAME)
    assert note_.frame is FRAME
    return protocol.transaction_from_result(note_.result, note_.frame)


def test_value_is_decoded_on_first_read_and_the_frame_then_released():
    event = deferred()
    assert "value" not in event.__dict__ and event.__dict__["_source"][0] is FRAME
    assert (event.slot, event.signature) == (7, SIG)  # known without the payload
    assert event.value == VALUE
    assert "_source" not in event.__dict__
    assert event.value is event.value  # decoded once
    assert not event.success and event.error == {"InstructionError": [0, {"Custom": 6001}]}
    assert event.logs == ["Program log: x"]


def test_a_deferred_event_is_the_eager_event():
    eager = ev.Transaction(slot=7, signature=SIG, value=VALUE)
    assert deferred() == eager and eager == deferred()
    assert hash(deferred()) == hash(eager)
    assert repr(deferred()) == repr(eager)
    assert pickle.loads(pickle.dumps(deferred())) == eager  # pickled before its first read
    assert copy.deepcopy(deferred()) == eager
    assert dataclasses.replace(deferred(), slot=8) == ev.Transaction(slot=8, signature=SIG, value=VALUE)
    assert dataclasses.asdict(deferred()) == {"slot": 7, "signature": SIG, "value": VALUE}
    # ``match`` patterns read the fields as attributes, by __match_args__ on 3.10+ (no match statement here: the
    # suite runs on 3.9 too, whose dataclasses have no __match_args__)
    names = [f.name for f in dataclasses.fields(ev.Transaction)]
    assert getattr(ev.Transaction, "__match_args__", tuple(names)) == tuple(names)
    assert [getattr(deferred(), name) for name in names] == [7, SIG, VALUE]


def test_without_a_frame_or_off_the_fast_path_the_value_is_eager():
    result = protocol.decode_subscription_frame(FRAME).result
    assert "value" in protocol.transaction_from_result(result).__dict__
    bare = protocol.transaction_from_result(VALUE, FRAME)  # a bare L5 result: the general path, eager
    assert bare.__dict__["value"] == VALUE and "_source" not in bare.__dict__


def test_a_missing_attribute_is_still_an_attribute_error():
    event = deferred()
    with pytest.raises(AttributeError, match="'Transaction' object has no attribute 'nope'"):
        event.nope  # noqa: B018
    assert getattr(event, "__setstate__", None) is None or callable(event.__setstate__)


def test_two_threads_reading_value_at_once_both_get_it():
    def read(event: ev.Transaction, start: threading.Barrier, got: List[Any]) -> None:
        start.wait(5)
        got.append(event.value)

    for _ in range(50):
        event = deferred()
        got: List[Any] = []
        start = threading.Barrier(2)
        threads = [threading.Thread(target=read, args=(event, start, got), name=f"test-deferred-{i}")
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert got == [VALUE, VALUE]


# ------------------------------------------------------------------------------------------- through the worker

@pytest.fixture
def worker() -> Iterator[Tuple[Script, Subscription, "queue.SimpleQueue[Any]"]]:
    with scripted_worker(TRANSACTIONS, ["Prog1111111111111111111111111111111111111111"]) as got:
        yield got


def test_the_worker_delivers_deferred_transactions_and_still_discards_bad_frames(worker):
    script, sub, sink = worker
    conn = script.wait_conns(1)
    conn.frames.put((1, note(100, "a").encode()))
    conn.frames.put((1, note(100, "b")[:-3].encode()))  # truncated: not JSON, discarded on the reader thread
    conn.frames.put((1, protocol.dumps({"jsonrpc": "2.0", "method": "transactionNotification", "params": {
        "subscription": 41, "result": {"context": {"slot": 100}, "value": {"slot": 100, "transaction": {}}}}})))
    conn.frames.put((1, note(101, "c").encode()))
    got: List[Any] = []
    while len(got) < 2:
        item = sink.get(timeout=5)
        if not isinstance(item, SlotMark):
            got.append(item)
    assert [e.signature for e in got] == ["a", "c"]
    assert all("value" not in e.__dict__ for e in got)  # nothing decoded crossed to the consumer
    assert got[1].value == {"slot": 101, "transaction": {"signatures": ["c"]}, "meta": {"err": None}}
    assert sub.stats.frames_discarded == 2  # the truncated frame and the one without a signature


def test_account_diff_pre_and_post_are_deferred_too():
    pre = {"lamports": 1, "data": ["", "base64"], "owner": "o", "executable": False, "rentEpoch": 0}
    frame = protocol.dumps({"jsonrpc": "2.0", "method": "accountDiffNotification", "params": {"subscription": 2,
                            "result": {"context": {"slot": 9}, "value": {"account": "acc", "signature": SIG,
                                                                          "pre": pre, "post": None}}}}).encode()
    note_ = protocol.decode_subscription_frame(frame)
    diff = protocol.account_diff_from_result(note_.result, note_.frame)
    assert "pre" not in diff.__dict__ and diff.key == (9, "acc", SIG)
    assert diff == ev.AccountDiff(9, "acc", SIG, pre, None)
    assert (diff.pre, diff.post) == (pre, None) and "_source" not in diff.__dict__
    assert ev.AccountDiff(1, "a", None).pre is None  # the constructor's defaults stand
    with pytest.raises(ProtocolError):  # a bad pre is refused when the frame arrives, not when pre is read
        bad = protocol.decode_subscription_frame(frame.replace(b'"pre":{', b'"pre":[{').replace(b'0},"post"', b'0}],"post"'))
        protocol.account_diff_from_result(bad.result, bad.frame)
