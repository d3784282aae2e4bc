"""The transaction reader's typed decode with msgspec (``protocol.read_transaction_frame``, extra ``fast``).

It must decide what the general path (orjson, or the stdlib without it) decides: the same event (slot, signature,
the value read later) for a well-formed notification, and the general path's verdict (the same event, message or
ProtocolError) for everything else, malformed frames included; with one documented exception, a number beyond a
double's range, which orjson refuses and the stdlib reads as ``inf``. It must be safe on several reader threads."""
from __future__ import annotations

import json
import random
import re
import threading
from typing import Any, List

import pytest

from simclient import events as ev
from simclient import protocol as wire
from simclient.errors import ProtocolError

pytestmark = pytest.mark.skipif(wire._decode_transaction is None, reason="needs msgspec (pip install 'simclient[fast]')")

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
            out.append((type(v).__name__, repr(v) if type(v) is float else v))  # NaN equals NaN here
    return out


@pytest.fixture(params=["orjson", "json"])
def general_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The general path with orjson (when installed) and with the stdlib alone: the reader must agree with both."""
    if request.param == "json":
        monkeypatch.setattr(wire, "_orjson", None)
    elif wire._orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


FRAMES = [
    tx_frame(),
    tx_frame(',"blockTime":1768478400,"version":0'),
    tx_frame(slot="0"), tx_frame(slot="18446744073709551615"),
    tx_frame(sigs=f'["{SIG}","second"]'),
    tx_frame(tx_extra=',"message":{"accountKeys":["a","b"],"instructions":[{"data":"x","accounts":[1,2]}]}'),
    tx_frame(',"s":"caf\u00e9 \\ud83d\\ude00"'),  # non-ASCII bytes: the general path
    b" " + tx_frame(),
    tx_frame() + b" ",
    b"\t\r\n " + tx_frame() + b"\n",
    # these leave the msgspec path, each for its own reason; the general path decides
    b"\xef\xbb\xbf" + tx_frame(),  # a BOM: orjson refuses it
    tx_frame() + b"x",
    tx_frame() + tx_frame(),
    # invalid UTF-8 in a part the reader skips (msgspec would not check it): a stray byte, an encoded surrogate,
    # an overlong form, a truncated sequence, and outside any string
    tx_frame(',"bad":"@"').replace(b"@", b"\xff"), tx_frame(',"bad":"@"').replace(b"@", b"\xed\xa0\x80"),
    tx_frame(',"bad":"@"').replace(b"@", b"\xc0\xaf"), tx_frame(',"bad":"@"').replace(b"@", b"\xe2\x82"),
    tx_frame(',"bad":1@').replace(b"@", b"\x80"),
    tx_frame(',"bad":"\\ud800"'),  # lone surrogate escapes
    tx_frame(',"bad":"\\udc00"'), tx_frame(',"bad":"\\ud800\\u0041"'),
    tx_frame(',"ok":"\\ud83d\\ude00 \\u00e9 \\n \\/ \\""'),
    tx_frame(',"bad":"\\x"'), tx_frame(',"bad":"\\u00"'), tx_frame(',"bad":"a\x01b"'), tx_frame(',"bad":"a\nb"'),
    tx_frame(',"n":01'), tx_frame(',"n":1.'), tx_frame(',"n":.5'), tx_frame(',"n":-0'), tx_frame(',"n":1e308'),
    tx_frame(',"n":1e-400'), tx_frame(',"n":[1,]'), tx_frame(',"n":{"a":1,}'), tx_frame(",'n':1"),
    tx_frame(',"big":18446744073709551616'),  # beyond u64: orjson reads a float
    tx_frame(',"big":-9223372036854775809'),
    tx_frame(',"nan":NaN'),
    tx_frame(',"deep":' + "[" * 600 + "]" * 600),
    tx_frame(',"deep":' + "[" * 1000 + "]" * 1000),  # beyond msgspec's depth, within orjson's
    tx_frame(',"deep":' + "[" * 1100 + "]" * 1100),  # beyond both
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
    # a repeated key: orjson, json and msgspec all keep the last
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
    tx_frame(',"unknownField":1'),
    b'{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,"result":{"context":{"slot":1},'
    b'"value":{"slot":1,"transaction":{"signatures":["s"]}}}},"params":5}',  # the last params is not an object
    b'{"method":"transactionNotification","params":{"result":{"context":null,"value":{"transaction":{"signatures":'
    b'["s"]},"slot":3}},"subscription":7}}',  # another key order, a null context
    # known keys absent (the §9.1 example has no version)
    SPEC_EXAMPLE,
    SPEC_EXAMPLE.replace(b',"blockTime":1760000000', b''),
    SPEC_EXAMPLE.replace(b'"jsonrpc":"2.0",', b''),
    tx_frame(tx_extra=',"message":{"accountKeys":[]}').replace(b'"meta":{"err":null,"logMessages":["Program log: hi"]}',
                                                               b'"version":0'),
]


# numbers beyond a double's range: orjson refuses the frame; msgspec checks a number it skips for its syntax only, so
# the reader delivers it and its value is read by the stdlib (as an install without orjson reads it: inf)
OVERFLOWS = [tx_frame(',"big":1e999'), tx_frame(',"big":-1E+400'), tx_frame(',"big":' + "9" * 400)]


@pytest.mark.parametrize("raw", FRAMES, ids=range(len(FRAMES)))
def test_the_reader_decides_what_the_general_path_decides(raw: bytes, general_path: str) -> None:
    assert outcome(wire.decode_transaction_frame, raw) == outcome(wire.decode_subscription_frame, raw)


@pytest.mark.parametrize("raw", OVERFLOWS, ids=range(len(OVERFLOWS)))
def test_a_number_beyond_a_double_is_read_as_the_stdlib_reads_it(raw: bytes) -> None:
    with_stdlib = outcome(wire.decode_subscription_frame, raw) if wire._orjson is None else None
    msg = wire.decode_transaction_frame(raw)
    assert type(msg.result) is ev.Transaction
    value = msg.result.value
    assert value == json.loads(raw)["params"]["result"]["value"]
    if with_stdlib is not None:
        assert outcome(wire.decode_transaction_frame, raw) == with_stdlib


def test_the_reader_takes_the_usual_frames() -> None:
    """The frames that must not fall back (else the reader is switched off without any test noticing)."""
    fast = [raw for raw in FRAMES if wire.read_transaction_frame(raw) is not None]
    assert len(fast) >= 16
    for raw in (tx_frame(), SPEC_EXAMPLE, b" " + tx_frame(), tx_frame(',"unknownField":1'), tx_frame(',"slot":5')):
        assert wire.read_transaction_frame(raw) is not None
    for raw in (tx_frame(',"s":"caf\u00e9"'), tx_frame(',"bad":"\\ud800"'), tx_frame(sigs="[]"), tx_frame(sub="-1")):
        assert wire.read_transaction_frame(raw) is None


def test_a_well_formed_notification_takes_the_reader_and_defers_its_value() -> None:
    raw = tx_frame()
    hit = wire.read_transaction_frame(raw)
    assert hit is not None and hit[0] == 7
    msg = wire.decode_transaction_frame(raw)
    event = msg.result
    assert type(event) is ev.Transaction and msg.frame is raw and msg.subscription == 7
    assert "value" not in vars(event)  # deferred: decoded from the frame when read
    assert wire.transaction_from_result(event, raw) is event
    assert event == wire.transaction_from_result(wire.decode_subscription_frame(raw).result)


@pytest.mark.parametrize("raw, expected", [(tx_frame(',"slot":300000009'), (300000009, SIG)),
                                           (tx_frame(tx_extra=',"signatures":["other"]'), (300000001, "other"))])
def test_a_repeated_key_is_read_at_its_last_occurrence_as_orjson_reads_it(raw: bytes, expected: Any) -> None:
    event = wire.decode_transaction_frame(raw).result
    assert type(event) is ev.Transaction
    assert (event.slot, event.signature) == expected
    general = wire.transaction_from_result(wire.decode_subscription_frame(raw).result)
    assert (general.slot, general.signature) == expected


def test_reader_threads_share_the_decoder() -> None:
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
    threads = [threading.Thread(target=read, args=(i,), name=f"test-reader-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and not any(t.is_alive() for t in threads)
    assert all(r == [(300000000 + i, SIG) for i in range(300)] for r in results)


def test_without_msgspec_the_general_path_decodes(monkeypatch: Any) -> None:
    raw = tx_frame()
    monkeypatch.setattr(wire, "_decode_transaction", None)
    assert wire.read_transaction_frame(raw) is None
    assert type(wire.decode_transaction_frame(raw).result) is dict
    assert outcome(wire.decode_transaction_frame, raw) == outcome(wire.decode_subscription_frame, raw)


def test_mutated_frames_decide_as_the_general_path_decides(monkeypatch: Any) -> None:
    """3,000 frames, each a well-formed one with one to three bytes replaced, inserted or deleted (seeded): the
    reader's outcome is the general path's, or, only for a number beyond a double's range, the stdlib's."""
    rnd = random.Random(20261201)
    seeds = [tx_frame(), SPEC_EXAMPLE, tx_frame(',"blockTime":1768478400,"version":0', sigs=f'["{SIG}","x"]')]
    alphabet = b'{}[]",:0123456789-+.eE\\/ntrufalsbx \t\n\x00\x7f\xc3\xff'
    differ = 0
    for _ in range(3000):
        raw = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            pos, op, byte = rnd.randrange(len(raw)), rnd.random(), rnd.choice(alphabet)
            if op < 0.4:
                raw[pos] = byte
            elif op < 0.7:
                raw.insert(pos, byte)
            else:
                del raw[pos]
        frame = bytes(raw)
        got = outcome(wire.decode_transaction_frame, frame)
        want = outcome(wire.decode_subscription_frame, frame)
        if got != want:
            differ += 1
            with monkeypatch.context() as m:
                m.setattr(wire, "_orjson", None)
                assert got == outcome(wire.decode_subscription_frame, frame), frame
            assert re.search(rb"[0-9][eE][+]?[0-9]{3}|[0-9]{309}", frame), frame  # the overflow class only
    assert differ < 30
