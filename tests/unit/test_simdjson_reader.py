"""The transaction reader's validating parse with pysimdjson (``protocol.decode_transaction_frame``, extra ``fast``).

It must decide exactly what the orjson path decides: the same event (slot, signature, the value read later) for a
well-formed notification, and the general path's verdict (the same event, message or ProtocolError) for everything
else, malformed frames included. It must be safe on several reader threads at once."""
from __future__ import annotations

import threading
from typing import Any, List

import pytest

from simclient import events as ev
from simclient import protocol as wire
from simclient.errors import ProtocolError

pytestmark = pytest.mark.skipif(wire._simdjson is None or wire._orjson is None,
                                reason="needs pysimdjson and orjson (pip install 'simclient[fast]')")

SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


# PROTOCOL §9.1's example notification, with a signature (its transaction is {}) and without a version
SPEC_EXAMPLE = (b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"context":'
                b'{"slot":400000124},"value":{"slot":400000124,"transaction":{"signatures":["' + SIG.encode() + b'"]},'
                b'"meta":{},"blockTime":1760000000}}}}')


def tx_frame(value_extra: str = "", *, slot: str = "300000001", sigs: str = f'["{SIG}"]', sub: str = "7",
             method: str = "transactionNotification", tx_extra: str = "") -> bytes:
    return (f'{{"jsonrpc":"2.0","method":"{method}","params":{{"subscription":{sub},"result":{{"context":'
            f'{{"slot":{slot}}},"value":{{"slot":{slot},"transaction":{{"signatures":{sigs}{tx_extra}}},'
            f'"meta":{{"err":null,"logMessages":["Program log: hi"]}}{value_extra}}}}}}}}}').encode()


def outcome(decode: Any, raw: bytes) -> Any:
    """What the reader makes of ``raw`` with ``decode``: the event (value read), another message, or the error."""
    try:
        msg = decode(raw)
    except ProtocolError:
        return ProtocolError
    if type(msg) is not wire.Notification:
        return msg
    if msg.result is None:
        return ("end of stream", msg.subscription)
    try:
        event = wire.transaction_from_result(msg.result, msg.frame)
    except ProtocolError:
        return ProtocolError
    return (msg.subscription, event.slot, event.signature, flat(event.value))


def flat(value: Any) -> List[Any]:
    """A deep value as a flat list (depth-first, with markers), comparable without recursion."""
    out: List[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            out.append(("{", len(v)))
            for k in sorted(v, reverse=True):
                stack.append(v[k])
                stack.append(("key", k))
        elif type(v) is list:
            out.append(("[", len(v)))
            stack.extend(reversed(v))
        else:
            out.append((type(v).__name__, v))
    return out


FRAMES = [
    tx_frame(),
    tx_frame(',"blockTime":1768478400,"version":0'),
    tx_frame(slot="0"), tx_frame(slot="18446744073709551615"),
    tx_frame(sigs=f'["{SIG}","second"]'),
    tx_frame(tx_extra=',"message":{"accountKeys":["a","b"],"instructions":[{"data":"x","accounts":[1,2]}]}'),
    tx_frame(',"s":"caf\u00e9 \\ud83d\\ude00"'),
    # these leave the simdjson path, each for its own reason; the general path decides
    b"\xef\xbb\xbf" + tx_frame(),  # a BOM: orjson refuses it, simdjson would not
    b" " + tx_frame(),
    tx_frame() + b" ",
    tx_frame() + b"x",
    tx_frame(',"bad":"\xff"'),  # invalid UTF-8 in a part the reader skips
    tx_frame(',"bad":"\\ud800"'),  # a lone surrogate escape
    tx_frame(',"big":1e999'),
    tx_frame(',"big":18446744073709551616'),  # beyond u64: orjson reads a float, simdjson refuses
    tx_frame(',"big":-9223372036854775809'),
    tx_frame(',"nan":NaN'),
    tx_frame(',"deep":' + "[" * 600 + "]" * 600),
    tx_frame(',"deep":' + "[" * 1100 + "]" * 1100),  # beyond simdjson's depth (1024), within orjson's
    tx_frame(',"deep":' + "[" * 5000 + "]" * 5000),
    tx_frame(slot="-1"), tx_frame(slot="true"), tx_frame(slot='"5"'), tx_frame(slot="1.5"),
    tx_frame(slot="18446744073709551616"),
    tx_frame(sigs="[]"), tx_frame(sigs=f'"{SIG}"'), tx_frame(sigs="[5]"), tx_frame(sigs=f'{{"0":"{SIG}"}}'),
    tx_frame(sub="-1"), tx_frame(sub='"7"'), tx_frame(sub="true"), tx_frame(sub="18446744073709551616"),
    tx_frame(method="accountDiffNotification"), tx_frame(method="transactionNotificationX"),
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":null}}',
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"value":{}}}}',
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"context":{},'
    b'"value":[1]}}}',
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":[7]}',
    b'{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":7}}',
    b'{"jsonrpc":"2.0","result":7,"id":1}',
    b'{"jsonrpc":"2.0","error":{"code":-32602,"message":"bad"},"id":1}',
    b"[1,2]", b"{", b"", b"null",
    # a repeated key: simdjson would read the first, orjson reads the last; the frame must go to the general path
    tx_frame(',"slot":300000009'),
    tx_frame(',"transaction":{"signatures":["other"]}'),
    tx_frame(tx_extra=',"signatures":["other"]'),
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"subscription":8,"result":'
    b'{"context":{"slot":1},"value":{"slot":1,"transaction":{"signatures":["s"]}}}}}',
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"context":{"slot":1},'
    b'"value":{"slot":1,"transaction":{"signatures":["s"]}},"value":{"slot":2,"transaction":{"signatures":["t"]}}}}}',
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"context":{"slot":1},'
    b'"value":{"slot":1,"transaction":{"signatures":["s"]}}}},"params":{"subscription":8,"result":{"context":'
    b'{"slot":2},"value":{"slot":2,"transaction":{"signatures":["t"]}}}}}',
    tx_frame(',"unknownField":1'),  # an unknown key: general path too (it cannot tell it from a repeat cheaply)
    # known keys absent (the §9.1 example has no version): still the simdjson path, and the same decision
    SPEC_EXAMPLE,
    SPEC_EXAMPLE.replace(b',"blockTime":1760000000', b''),
    SPEC_EXAMPLE.replace(b'"jsonrpc":"2.0",', b''),
    tx_frame(tx_extra=',"message":{"accountKeys":[]}').replace(b'"meta":{"err":null,"logMessages":["Program log: hi"]}',
                                                               b'"version":0'),
]


@pytest.mark.parametrize("raw", FRAMES, ids=range(len(FRAMES)))
def test_simdjson_path_decides_what_the_orjson_path_decides(raw: bytes) -> None:
    assert outcome(wire.decode_transaction_frame, raw) == outcome(wire.decode_subscription_frame, raw)


def test_a_well_formed_notification_takes_the_simdjson_path_and_defers_its_value() -> None:
    raw = tx_frame()
    msg = wire.decode_transaction_frame(raw)
    event = msg.result
    assert type(event) is ev.Transaction and msg.frame is raw and msg.subscription == 7
    assert "value" not in vars(event)  # deferred: decoded from the frame when read
    assert wire.transaction_from_result(event, raw) is event
    assert event == wire.transaction_from_result(wire.decode_subscription_frame(raw).result)


@pytest.mark.parametrize("raw", [tx_frame(',"slot":300000009'), tx_frame(tx_extra=',"signatures":["other"]')])
def test_a_repeated_key_is_read_as_orjson_reads_it_last_wins(raw: bytes) -> None:
    msg = wire.decode_transaction_frame(raw)
    assert type(msg.result) is dict  # not the simdjson path (it would have read the first occurrence)
    event = wire.transaction_from_result(msg.result, msg.frame)
    assert (event.slot, event.signature) in ((300000009, SIG), (300000001, "other"))


@pytest.mark.parametrize("raw", [SPEC_EXAMPLE, SPEC_EXAMPLE.replace(b'"jsonrpc":"2.0",', b'')])
def test_frames_without_optional_keys_still_take_the_simdjson_path(raw: bytes) -> None:
    assert type(wire.decode_transaction_frame(raw).result) is ev.Transaction


def test_a_frame_orjson_would_refuse_after_simdjson_accepted_it_is_still_read(monkeypatch: Any) -> None:
    """The deferred read falls back to pysimdjson when orjson refuses (no such frame is known: the safety net)."""
    event = wire.decode_transaction_frame(tx_frame()).result
    expected = wire.loads(tx_frame())["params"]["result"]["value"]

    def refuse(raw: Any) -> Any:
        raise ValueError("refused")
    monkeypatch.setattr(wire, "loads", refuse)
    assert event.value == expected


def test_reader_threads_each_use_their_own_parser() -> None:
    frames = [tx_frame(slot=str(300000000 + i)) for i in range(300)]
    start = threading.Barrier(4)
    results: List[Any] = [None] * 4
    errors: List[BaseException] = []

    def read(i: int) -> None:
        try:
            start.wait(5)
            results[i] = [(m.result.slot, m.result.signature) for m in map(wire.decode_transaction_frame, frames)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=read, args=(i,), name=f"test-simd-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and not any(t.is_alive() for t in threads)
    assert all(r == [(300000000 + i, SIG) for i in range(300)] for r in results)


def test_without_orjson_or_simdjson_the_general_path_decodes(monkeypatch: Any) -> None:
    raw = tx_frame()
    for name in ("_simdjson", "_orjson"):
        with monkeypatch.context() as m:
            m.setattr(wire, name, None)
            msg = wire.decode_transaction_frame(raw)
            assert type(msg.result) is dict
            assert outcome(wire.decode_transaction_frame, raw) == outcome(wire.decode_subscription_frame, raw)


def test_a_parser_still_held_elsewhere_is_replaced_not_fatal() -> None:
    """simdjson refuses to reuse a parser while a document of it is alive; should one ever leak (say, in a kept
    traceback), the frame goes to the general path and the thread gets a fresh parser."""
    held = wire._simd_parser().parse(b'{"a":1}')  # a live document of this thread's parser
    raw = tx_frame()
    msg = wire.decode_transaction_frame(raw)
    assert type(msg.result) is dict  # decoded by the general path
    assert outcome(wire.decode_transaction_frame, raw) == outcome(wire.decode_subscription_frame, raw)
    assert type(wire.decode_transaction_frame(raw).result) is ev.Transaction  # the fresh parser took over
    del held
