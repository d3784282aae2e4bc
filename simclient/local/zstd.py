"""zstd on the local simulator's data plane (PROTOCOL §9.3 ``compression``, §9.4): the server's side.

A subscribe whose config has ``"compression":"zstd"`` marks that subscription compressed. Its socket then gets one
streaming compressor (:class:`StreamCompressor`: zstd level 3, context takeover, each message flushed to a block
boundary so that it decodes on its own once every earlier frame was decoded), created with the first compressed
subscription of the socket and dropped with the socket (a reconnect gets a new one). Every frame of a compressed
subscription is compressed at the moment it is written, in wire order (live and lagged notifications, the replay
from ``replayFromSlot``), and sent as a Binary frame. Subscriptions of the same socket that did not ask stay Text.

The two open points of §9.4 are dialect knobs (:class:`~simclient.local.dialect.Dialect`), so a test can play
either reading:

* ``zstd_ack``: the subscribe ack as ``"text"`` (the default; §9.4 [I] "acks stay plain Text") or ``"zstd"``.
* ``zstd_eos``: the end-of-stream marker (§9.5) as ``"zstd"`` (the default: it is a message of the stream, after
  its notifications) or ``"text"``.

JSON-RPC error replies (a refused subscribe, the replay-window refusal) stay Text. Without ``zstandard`` installed
in the simulator's process the option is ignored and frames stay Text (allowed by §9.3: an option a server does not
support is off); ``LocalSimulator.stats["zstd_ignored"]`` counts those subscribes.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Compressed", "StreamCompressor", "wants_zstd", "zstd_available", "maybe_compressed", "LEVEL"]

#: The level §9.4 names.
LEVEL = 3


class Compressed:
    """A frame to be sent compressed on its socket: the socket's compressor turns it into a Binary frame when the
    write happens (so compressor order is wire order)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _module() -> Any:
    try:
        import zstandard  # the `zstd` extra; imported only when a subscribe asks for compression
    except ImportError:
        return None
    return zstandard


def zstd_available() -> bool:
    return _module() is not None


def wants_zstd(config: Any) -> bool:
    """The subscribe config asks for zstd (``"compression":"zstd"``; any other value, or none, is plain)."""
    if not isinstance(config, dict):
        return False
    value = config.get("compression")
    return isinstance(value, str) and value.lower() == "zstd"


class StreamCompressor:
    """One socket's compressor: :meth:`compress` one message, get one self-contained-in-order frame."""

    __slots__ = ("_compress", "_flush", "_block", "frames", "bytes_in", "bytes_out")

    def __init__(self, level: int = LEVEL):
        zstandard = _module()
        if zstandard is None:  # pragma: no cover - callers check zstd_available() first
            raise RuntimeError("zstandard is not installed")
        obj = zstandard.ZstdCompressor(level=level).compressobj()
        self._compress = obj.compress
        self._flush = obj.flush
        self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        self.frames = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def compress(self, text: str) -> bytes:
        raw = text.encode("utf-8")
        out = self._compress(raw) + self._flush(self._block)
        self.frames += 1
        self.bytes_in += len(raw)
        self.bytes_out += len(out)
        return out


def maybe_compressed(text: str, compressed: bool) -> Any:
    """``text`` wrapped for compression when ``compressed``, else as is."""
    return Compressed(text) if compressed else text
