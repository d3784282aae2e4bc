"""zstd on the data plane, client side (PROTOCOL §9.4; simclient.compression): the per-connection decompressor,
the option's validation, and the subscription worker's hook (frames in order, a fresh decompressor per connection,
an undecodable compressed frame is a lost connection), through scripted connections."""
from __future__ import annotations

import contextlib
import json
import queue
import sys
from typing import Any, Iterator, List, Tuple

import pytest

from simclient import ClientConfig, CompressionUnavailableError, SimclientError
from simclient import compression as comp
from simclient import protocol as wire
from simclient import subscriptions as subs_mod
from simclient import events as ev
from simclient.stats import SessionStats
from simclient.subscriptions import SlotMark, Subscription
from simclient.testing import fast_config
from simclient.transport import OPCODE_BINARY, OPCODE_TEXT

from scripted_ws import Script, ScriptedConn, note, scripted_worker

try:
    import zstandard
except ImportError:  # the option's tests below still run; the stream's need the `zstd` extra (CI has it: `dev`)
    zstandard = None
needs_zstd = pytest.mark.skipif(zstandard is None, reason="needs zstandard (pip install 'simclient[zstd]')")


class ZstdStream:
    """What a §9.4 server does per connection: one compressor, level 3, each message flushed to a block."""

    def __init__(self) -> None:
        self._c = zstandard.ZstdCompressor(level=3).compressobj()

    def frame(self, text: str) -> bytes:
        return self._c.compress(text.encode()) + self._c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


MESSAGES = [note(100 + i // 3, f"sig{i}") for i in range(12)]


# ------------------------------------------------------------------------------------------ the decompressor

@needs_zstd
def test_frames_fed_in_order_each_decode_to_their_message():
    stream = ZstdStream()
    frames = [stream.frame(m) for m in MESSAGES]
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    assert [inflate(f).decode() for f in frames] == MESSAGES
    # context takeover: later frames lean on earlier ones (much smaller than compressing each message alone)
    assert sum(map(len, frames[1:])) < sum(len(zstandard.ZstdCompressor(level=3).compress(m.encode()))
                                           for m in MESSAGES[1:])


@needs_zstd
def test_a_fresh_decompressor_cannot_start_mid_stream():
    """Why the decompressor belongs to one connection: a frame depends on every frame before it."""
    stream = ZstdStream()
    frames = [stream.frame(m) for m in MESSAGES]
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    with pytest.raises(comp.CorruptCompressedFrame):
        inflate(frames[3])


@needs_zstd
def test_a_frame_out_of_order_does_not_decode_to_its_message():
    stream = ZstdStream()
    frames = [stream.frame(m) for m in MESSAGES]
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    inflate(frames[0])
    try:
        out = inflate(frames[2])
    except comp.CorruptCompressedFrame:
        return
    assert out.decode() != MESSAGES[2]


@needs_zstd
def test_a_server_that_ends_a_zstd_frame_per_message_is_read_too():
    """The other reading of "flushed per message": a complete zstd frame per message, one decompressor."""
    c = zstandard.ZstdCompressor(level=3)
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    assert [inflate(c.compress(m.encode())).decode() for m in MESSAGES] == MESSAGES


@needs_zstd
def test_plain_json_in_binary_frames_is_read_as_is():
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    assert inflate(MESSAGES[0].encode()) == MESSAGES[0].encode()
    assert inflate(MESSAGES[1].encode()) == MESSAGES[1].encode()


@needs_zstd
@pytest.mark.parametrize("garbage", [b"\x00\x01\x02garbage", b"\x28\xb5\x2f\xfdnot really"])
def test_garbage_raises_corrupt_frame(garbage):
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    with pytest.raises(comp.CorruptCompressedFrame) as info:
        inflate(garbage)
    assert isinstance(info.value, SimclientError)


@needs_zstd
def test_a_truncated_frame_decompresses_to_nothing_and_is_refused():
    stream = ZstdStream()
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    inflate(stream.frame(MESSAGES[0]))
    with pytest.raises(comp.CorruptCompressedFrame, match="nothing"):
        inflate(stream.frame(MESSAGES[1])[:3])


def _bomb(total: int, stream: "ZstdStream | None" = None) -> bytes:
    """One Binary frame of ``total`` zero bytes, compressed in 1 MiB pieces (never all in memory at once)."""
    c = (stream or ZstdStream())._c
    piece = bytes(1024 * 1024)
    out = [c.compress(piece) for _ in range(total // len(piece))]
    return b"".join(out) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


@needs_zstd
def test_a_frame_that_inflates_past_the_cap_is_refused_at_the_default_cap():
    bomb = _bomb(comp.MAX_INFLATED + 4 * 1024 * 1024)
    assert len(bomb) < 64 * 1024  # thousands of times smaller than what it expands to
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    with pytest.raises(comp.CorruptCompressedFrame, match="decompresses to more than 67,108,864 bytes"):
        inflate(bomb)


@needs_zstd
def test_the_cap_is_checked_while_decompressing_and_frames_below_it_pass(monkeypatch):
    monkeypatch.setattr(comp, "MAX_INFLATED", 3 * 1024 * 1024)
    stream = ZstdStream()
    inflate = comp.new_inflater("zstd")
    assert inflate is not None
    assert inflate(stream.frame(MESSAGES[0])).decode() == MESSAGES[0]
    assert inflate(_bomb(2 * 1024 * 1024, stream)) == bytes(2 * 1024 * 1024)  # below the cap: whole, in order
    assert inflate(stream.frame(MESSAGES[1])).decode() == MESSAGES[1]  # and the stream goes on
    fed: List[int] = []
    real = inflate.__self__._decompress  # type: ignore[attr-defined]

    def counting(chunk: Any) -> bytes:
        fed.append(len(chunk))
        return real(chunk)
    inflate.__self__._decompress = counting  # type: ignore[attr-defined]
    bomb = _bomb(32 * 1024 * 1024, stream)  # zeros: 4-byte blocks of 128 KiB each, so 1 KiB of frame
    assert len(bomb) > comp._SLICE
    with pytest.raises(comp.CorruptCompressedFrame, match="more than 3,145,728 bytes"):
        inflate(bomb)
    assert sum(fed) < len(bomb)  # refused before the whole frame went in
    small = comp.new_inflater("zstd")
    assert small is not None
    with pytest.raises(comp.CorruptCompressedFrame, match="more than 3,145,728 bytes"):
        small(_bomb(4 * 1024 * 1024))  # one slice or less: the cap holds there too


def test_no_inflater_when_plain():
    assert comp.new_inflater(None) is None


# ------------------------------------------------------------------------------------------ the option

@needs_zstd
@pytest.mark.parametrize("value, default, expected", [
    (None, None, None),
    ("zstd", None, "zstd"),
    ("ZSTD", None, "zstd"),
    (None, "zstd", "zstd"),
    ("none", "zstd", None),       # a subscription can opt out of the config's default
    ("none", None, None),
])
def test_resolve_compression(value, default, expected):
    assert comp.resolve_compression(value, default) == expected


@pytest.mark.parametrize("value", ["gzip", "", 3, True, "zstd "])
def test_an_unknown_compression_is_a_value_error_naming_the_field(value):
    with pytest.raises(ValueError, match="compression"):
        comp.resolve_compression(value, None)
    with pytest.raises(ValueError, match="ClientConfig.compression"):
        ClientConfig(compression=value)


def test_client_config_normalises_and_defaults_to_plain():
    assert ClientConfig().compression is None
    assert ClientConfig(compression="ZSTD").compression == "zstd"
    assert fast_config(compression="zstd").with_(compression=None).compression is None


def test_without_zstandard_asking_for_zstd_raises_a_clear_import_error(monkeypatch):
    monkeypatch.setattr(comp, "_zstd", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` now raises ImportError
    with pytest.raises(CompressionUnavailableError) as info:
        comp.resolve_compression("zstd", None)
    assert isinstance(info.value, ImportError) and isinstance(info.value, SimclientError)
    assert "pip install 'simclient[zstd]'" in str(info.value)
    assert comp.resolve_compression(None, None) is None  # plain needs nothing
    assert comp.resolve_compression("none", "zstd") is None


def test_too_old_zstandard_is_refused(monkeypatch):
    class Old:
        __version__ = "0.21.0"

    monkeypatch.setattr(comp, "_zstd", None)
    monkeypatch.setitem(sys.modules, "zstandard", Old())
    with pytest.raises(CompressionUnavailableError, match="0.22"):
        comp.require_zstd()


# ------------------------------------------------------------------------------------------ the worker's hook

class ZstdConn(ScriptedConn):
    """A scripted subscription socket of a §9.4 server: its own compressor; the ack as Text (or, with
    ``compressed_acks``, as a compressed Binary frame)."""

    def __init__(self, script: "ZstdScript"):
        super().__init__(script)
        self.stream = ZstdStream()

    def send_json(self, obj: Any) -> None:
        self.sent.append(obj)
        ack = wire.dumps({"jsonrpc": "2.0", "id": obj["id"], "result": 40 + obj["id"]})
        if self.script.compressed_acks:  # type: ignore[attr-defined]
            self.frames.put((OPCODE_BINARY, self.stream.frame(ack)))
        else:
            self.frames.put((OPCODE_TEXT, ack))
        for replay in self.script.on_subscribe(self, obj):
            self.put_frame(replay)

    def put_frame(self, text: str) -> None:
        self.frames.put((OPCODE_BINARY, self.stream.frame(text)))

    def put_note(self, slot: int, sig: str, sub_id: int = 41) -> None:
        self.put_frame(note(slot, sig, sub_id))


class ZstdScript(Script):
    def __init__(self, compressed_acks: bool = False) -> None:
        super().__init__()
        self.compressed_acks = compressed_acks

    def open(self, url: str, key: Any, timeout: float) -> ScriptedConn:
        conn = ZstdConn(self)
        with self.opened:
            self.conns.append(conn)
            self.opened.notify_all()
        return conn


@contextlib.contextmanager
def _worker(script: Script, compression: Any = "zstd") -> Iterator[Tuple[Subscription, "queue.SimpleQueue[Any]",
                                                                       SessionStats]]:
    """A started transaction worker on ``script``'s sockets: ``(sub, sink, stats)``; stopped and joined after."""
    with scripted_worker(subs_mod.TRANSACTIONS, ["P"], script=script, compression=compression,
                         config=fast_config(backoff_initial=0.0)) as (_, sub, sink):
        yield sub, sink, sub.stats


def _transactions(sink: "queue.SimpleQueue[Any]", n: int) -> List[ev.Transaction]:
    out: List[ev.Transaction] = []
    while len(out) < n:
        item = sink.get(timeout=5)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ev.Transaction):
            out.append(item)
        else:
            assert isinstance(item, SlotMark)
    return out


@needs_zstd
@pytest.mark.parametrize("compressed_acks", [False, True])
def test_compressed_stream_decodes_and_a_reconnect_starts_a_fresh_decompressor(compressed_acks):
    script = ZstdScript(compressed_acks)
    with _worker(script) as (sub, sink, stats):
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        assert first.sent[0]["params"][1]["compression"] == "zstd"
        for i in range(3):
            first.put_note(100, f"a{i}")
        first.put_note(101, "b0")
        assert [t.signature for t in _transactions(sink, 4)] == ["a0", "a1", "a2", "b0"]
        # the server replays slot 101 (inclusive cursor) on a new socket, through a new compressor
        script.replay = [note(101, "b0"), note(101, "b1"), note(102, "c0")]  # (c0: live, after the replay)
        first.frames.put("die")
        # with the first connection's decompressor the new stream's first frame would not decode
        assert [t.signature for t in _transactions(sink, 2)] == ["b1", "c0"]
        assert stats.decompress_failures == 0 and stats.duplicates_dropped == 1
        second = script.wait_conns(2)
        assert second.sent[0]["params"][1] == {"commitment": "confirmed", "encoding": "json",
                                               "maxSupportedTransactionVersion": 0, "replayFromSlot": 101,
                                               "compression": "zstd"}


@needs_zstd
def test_an_undecodable_compressed_frame_loses_the_connection_and_replays_from_the_cursor():
    script = ZstdScript()
    with _worker(script) as (sub, sink, stats):
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        first.put_note(100, "a0")
        first.put_note(101, "b0")
        assert [t.signature for t in _transactions(sink, 2)] == ["a0", "b0"]
        script.replay = [note(101, "b0"), note(101, "b1"), note(102, "c0")]  # what the next socket gets
        first.frames.put((OPCODE_BINARY, b"\x00garbage\xff"))  # nothing after it can be trusted
        first.put_note(101, "b1")                                # (so this one is not read from this socket)
        assert [t.signature for t in _transactions(sink, 2)] == ["b1", "c0"]  # nothing skipped, nothing twice
        second = script.wait_conns(2)
        assert second.sent[0]["params"][1]["replayFromSlot"] == 101
        assert stats.decompress_failures == 1
        assert stats.subscription_reconnects == 1
        assert stats.frames_discarded == 0


@needs_zstd
def test_a_compressed_frame_that_is_not_json_after_decompressing_loses_the_connection():
    script = ZstdScript()
    with _worker(script) as (sub, sink, stats):
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        first.put_frame("this is not json")
        script.wait_conns(2)
        assert stats.decompress_failures == 1


@needs_zstd
def test_text_frames_still_decode_on_a_compressed_subscription():
    """A server that ignores the option (§9.3) sends Text: read as before."""
    script = Script()  # plain Text acks and notifications
    with _worker(script) as (sub, sink, stats):
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        assert first.sent[0]["params"][1]["compression"] == "zstd"
        first.put_note(100, "a0")
        first.put_note(101, "b0")
        assert [t.signature for t in _transactions(sink, 2)] == ["a0", "b0"]
        assert stats.decompress_failures == 0


def test_a_plain_subscription_sends_no_compression_and_reads_binary_json_as_before():
    script = Script()
    with _worker(script, compression=None) as (sub, sink, stats):
        first = script.wait_conns(1)
        assert sub.ready.wait(5)
        assert "compression" not in first.sent[0]["params"][1]
        first.frames.put((OPCODE_BINARY, note(100, "a0").encode()))
        assert [t.signature for t in _transactions(sink, 1)] == ["a0"]


def test_the_wire_request_carries_the_option():
    req = wire.encode_subscribe(1, "accountDiff", wire.account_diff_filter("P"), None, "zstd")
    assert json.loads(wire.dumps(req))["params"][1] == {"compression": "zstd"}
