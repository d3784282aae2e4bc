"""zstd on the data plane (PROTOCOL §9.3 ``compression``, §9.4): the client's side.

A subscription made with ``compression="zstd"`` (or under ``ClientConfig(compression="zstd")``) sends
``"compression":"zstd"`` in its subscribe config. The server then sends each notification as a **Binary** frame cut
from **one streaming zstd compressor per connection** (level 3, context takeover, flushed per message): a frame only
decodes when every earlier frame of that connection went, in order, through the same decompressor. So each
connection gets one :class:`ZstdInflater`, made when it is opened and dropped with it (a reconnect starts a new one:
the server starts a new compressor on the new socket).

What is read, and how:

* Text frames decode as before (acks [I: §9.4 says they stay Text], and every message of a server that ignores the
  option: §9.3 lets it).
* Binary frames go through the connection's inflater before :func:`simclient.protocol.decode_subscription_frame`.
  A server that acks or ends the stream in Binary too is read the same way (either reading of §9.4 works).
* The first Binary frame of a connection that is not zstd but starts like JSON (``{``): that server sends plain JSON
  in Binary frames; the connection reads its Binary frames as is from then on.
* A Binary frame that decompresses to more than :data:`MAX_INFLATED` bytes (64 MiB; a Solana account is at most
  10 MiB, so a notification with both states base64-encoded stays far below) is refused as it is decompressed, in
  slices of :data:`_SLICE` compressed bytes, so a small frame that would expand to gigabytes (a decompression bomb,
  or a broken server) costs at most the cap plus one slice's output (a zstd block regenerates at most 128 KiB from
  at least 4 bytes), never the whole expansion. It counts as a frame that does not decompress (below).
* A Binary frame that does not decompress, decompresses to nothing, or does not decode to one message after
  decompressing: the stream cannot be trusted past it (the next frame depends on this one), so the connection is
  treated as lost: counted in ``SessionStats.decompress_failures``, logged, reconnected and replayed from the cursor
  (``replayFromSlot``; duplicates are dropped as after any drop). Nothing is silently skipped. A server that keeps
  sending such frames spends the reconnect budget (a reconnect that delivers nothing new is a failed attempt) and
  the subscription then fails with :class:`~simclient.errors.SubscriptionError`.

``zstandard`` (the ``zstd`` extra, ``pip install 'simclient[zstd]'``) is imported only when a subscription asks for
compression; ``import simclient`` never imports it. Asking without it installed raises
:class:`~simclient.errors.CompressionUnavailableError` (an ``ImportError``) from the ``subscribe_*`` call.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from .errors import CompressionUnavailableError, ProtocolError

log = logging.getLogger("simclient.compression")

__all__ = ["ZSTD", "COMPRESSIONS", "INSTALL_HINT", "MAX_INFLATED", "check_compression", "resolve_compression",
           "require_zstd", "ZstdInflater", "CorruptCompressedFrame", "new_inflater"]

ZSTD = "zstd"
#: The values ``compression`` accepts: ``"zstd"``, or ``"none"`` (plain, also when the config's default is zstd).
COMPRESSIONS = (ZSTD, "none")
INSTALL_HINT = "pip install 'simclient[zstd]'"
#: zstandard's ``decompressobj(read_across_frames=True)`` (0.22) reads a server that ends a zstd frame per message.
_MIN_VERSION = (0, 22)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: The most one Binary frame may decompress to (bytes); more is refused (see the module docstring).
MAX_INFLATED = 64 * 1024 * 1024
#: Compressed bytes fed to the decompressor at a time: one slice can regenerate at most 128 KiB per 4 bytes
#: (8 MiB for 256 bytes), so the cap is checked before a bomb's output grows past it by more than that.
_SLICE = 256


def check_compression(value: Any, field: str = "compression") -> Optional[str]:
    """``value`` normalised (``None``, ``"zstd"`` or ``"none"``); ``ValueError`` naming ``field`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in COMPRESSIONS:
        return value.lower()
    raise ValueError(f"{field} must be one of {', '.join(repr(c) for c in COMPRESSIONS)} or None, got {value!r}")


def resolve_compression(value: Any, default: Optional[str]) -> Optional[str]:
    """The compression a subscription asks for: ``value`` (``None``: the config's ``default``), None for plain.
    Raises ``ValueError`` for an unknown value and :class:`CompressionUnavailableError` for zstd without zstandard
    (on the caller's thread, at subscribe time)."""
    chosen = check_compression(value)
    if chosen is None:
        chosen = check_compression(default, "ClientConfig.compression")
    if chosen is None or chosen == "none":
        return None
    require_zstd()
    return chosen


_zstd: Any = None


def require_zstd() -> Any:
    """The ``zstandard`` module (imported on first use); :class:`CompressionUnavailableError` when it is missing
    or older than 0.22."""
    global _zstd
    if _zstd is not None:
        return _zstd
    try:
        import zstandard  # the `zstd` extra: never imported by `import simclient`
    except ImportError as exc:
        raise CompressionUnavailableError(
            f"compression='zstd' needs the zstandard package, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}") from None
    version = getattr(zstandard, "__version__", "0")
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        parts = _MIN_VERSION
    if parts < _MIN_VERSION:
        raise CompressionUnavailableError(
            f"compression='zstd' needs zstandard >= {'.'.join(map(str, _MIN_VERSION))}, found {version}; "
            f"upgrade it with: {INSTALL_HINT}")
    _zstd = zstandard
    return zstandard


class CorruptCompressedFrame(ProtocolError):
    """A Binary frame of a compressed stream did not decompress into one message: the connection's stream cannot
    be trusted past it (internal: the subscription worker reconnects)."""


class ZstdInflater:
    """The decompressor of one connection: feed it every Binary frame of that connection, in order."""

    __slots__ = ("_decompress", "_error", "_first", "plain", "frames")

    def __init__(self, zstandard: Any) -> None:
        obj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        self._decompress: Callable[[Any], bytes] = obj.decompress
        self._error = zstandard.ZstdError
        self._first = True
        self.plain = False  # the server sends plain JSON in Binary frames (decided on the first one)
        self.frames = 0

    def inflate(self, payload: Any) -> Any:
        """The message in one Binary frame; :class:`CorruptCompressedFrame` when it cannot be decompressed."""
        if self.plain:
            return payload
        try:
            out = self._decompress(payload) if len(payload) <= _SLICE else self._decompress_bounded(payload)
        except self._error as exc:
            if self._first and bytes(payload[:1]) == b"{" and bytes(payload[:4]) != _ZSTD_MAGIC:
                self.plain = True
                log.info("compressed subscription: the server sends plain JSON in Binary frames; reading them as is")
                return payload
            raise CorruptCompressedFrame(f"compressed subscription frame #{self.frames + 1} does not decompress "
                                         f"({exc})", bytes(payload[:64])) from None
        if len(out) > MAX_INFLATED:  # one slice's worth (<= 8 MiB) past the cap at most: see _decompress_bounded
            raise self._too_big(payload)
        self._first = False
        self.frames += 1
        if not out:
            raise CorruptCompressedFrame(f"compressed subscription frame #{self.frames} decompressed to nothing "
                                         "(a truncated or misordered stream)", bytes(payload[:64]))
        return out

    def _decompress_bounded(self, payload: Any) -> bytes:
        """``payload`` decompressed slice by slice, refused once the output passes :data:`MAX_INFLATED`."""
        view = memoryview(payload)
        parts = []
        size = 0
        for start in range(0, len(view), _SLICE):
            part = self._decompress(view[start:start + _SLICE])
            size += len(part)
            if size > MAX_INFLATED:
                raise self._too_big(payload)
            parts.append(part)
        return b"".join(parts)

    def _too_big(self, payload: Any) -> CorruptCompressedFrame:
        return CorruptCompressedFrame(
            f"compressed subscription frame #{self.frames + 1} ({len(payload):,} bytes) decompresses to more than "
            f"{MAX_INFLATED:,} bytes: refused (a decompression bomb, or a broken stream)", bytes(payload[:64]))


def new_inflater(compression: Optional[str]) -> Optional[Callable[[Any], Any]]:
    """A fresh per-connection decompressing hook for ``compression`` (None when plain)."""
    if compression != ZSTD:
        return None
    return ZstdInflater(require_zstd()).inflate
