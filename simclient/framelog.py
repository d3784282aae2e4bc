"""Raw-frame debugging: ``ClientConfig(log_frames=True)`` (the Rust client's ``log_raw``, both directions).

Every frame of every WebSocket the client opens (the control socket and each subscription socket, across
reconnects) is logged at DEBUG on the one logger ``simclient.frames``, so it can be switched on alone::

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("simclient.frames").setLevel(logging.DEBUG)
    client = Client(url, key, ClientConfig(log_frames=True))

One record per frame: ``"> control#1 text 183B {...}"`` (``>`` sent, ``<`` received, ``*`` opened/closed), with the
socket's kind and number (sockets are numbered in opening order, process-wide). Text frames are logged up to :data:`MAX_TEXT_CHARS` characters (the rest is counted, not
shown); binary frames as their length and a hex prefix of :data:`BINARY_PREFIX_BYTES` bytes (a caller that
decompresses one may log the result with :func:`log_decoded`); pings and pongs as their length. The API key never
appears: every logged payload goes through :func:`simclient.transport.secret_scrubber`, the same redaction the
control socket applies to what it reads, on subscription sockets too (which are opened without the key).

The wrapping happens in :func:`frame_logging_factory`, around whatever connection factory the client uses (real
sockets, or a test's scripted connections), so nothing changes when ``log_frames`` is off. With it on but the logger
not enabled for DEBUG, a frame costs one ``isEnabledFor`` call: nothing is formatted.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import urlsplit

from .protocol import dumps
from .reconnect import batch_reader
from .transport import OPCODE_BINARY, OPCODE_PING, OPCODE_PONG, OPCODE_TEXT, secret_scrubber

__all__ = ["FRAMES_LOGGER", "MAX_TEXT_CHARS", "BINARY_PREFIX_BYTES", "FrameLoggingConnection",
           "frame_logging_factory", "log_decoded"]

#: The logger of every frame record.
FRAMES_LOGGER = "simclient.frames"
#: Characters of a text frame shown (a 10 MiB continue is not worth a 10 MiB log line); the rest is counted.
MAX_TEXT_CHARS = 4096
#: Bytes of a binary frame shown, in hex.
BINARY_PREFIX_BYTES = 32

log = logging.getLogger(FRAMES_LOGGER)

_DEBUG = logging.DEBUG
_OPCODES = {OPCODE_TEXT: "text", OPCODE_BINARY: "binary", OPCODE_PING: "ping", OPCODE_PONG: "pong"}

Scrub = Callable[[bytes], bytes]

_NUMBERS = itertools.count(1)  # the socket numbers of the labels (next() on a count is atomic under the GIL)


def _no_scrub(payload: bytes) -> bytes:
    return payload


def _text(text: str, scrub: Scrub) -> str:
    text = scrub(text.encode("utf-8")).decode("utf-8", "replace")  # before the cut: no partial key at its edge
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f" ... ({len(text) - MAX_TEXT_CHARS:,} more characters)"


def describe(opcode: int, payload: Any, scrub: Scrub = _no_scrub) -> str:
    """``"text 183B {...}"`` / ``"binary 4096B 28b52ffd..."`` / ``"pong 12B"``: one frame for a log record, the
    key masked (the whole payload is scrubbed before it is cut, so no part of a key shows at the cut).

    A text payload may be ``str`` or ``bytes`` (the transport hands out the raw UTF-8 of a text frame); the size
    is the payload's, before the masking."""
    kind = _OPCODES.get(opcode, f"opcode {opcode}")
    if payload is None:
        payload = b""
    if opcode == OPCODE_TEXT:
        if isinstance(payload, (bytes, bytearray)):
            size = len(payload)
            text = bytes(payload).decode("utf-8", "replace")
        else:
            text = str(payload)
            size = len(text.encode("utf-8"))
        return f"text {size}B {_text(text, scrub)}"
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    if opcode == OPCODE_BINARY:
        head = scrub(data)[:BINARY_PREFIX_BYTES]
        more = "..." if len(data) > BINARY_PREFIX_BYTES else ""
        return f"binary {len(data)}B {head.hex()}{more}"
    return f"{kind} {len(data)}B"


class FrameLoggingConnection:
    """A connection (anything with the methods of :class:`simclient.reconnect.ConnectionLike`) whose every frame
    is logged before it is sent / after it was received. Other attributes are the wrapped connection's."""

    def __init__(self, inner: Any, label: str, scrub: Scrub = _no_scrub):
        self._inner = inner
        self.label = label
        self._scrub = scrub
        self._send_text: Optional[Callable[[str], None]] = getattr(inner, "send_text", None)
        self._recv_many = batch_reader(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"FrameLoggingConnection({self.label})"

    def _log(self, arrow: str, opcode: int, payload: Any) -> None:
        log.debug("%s %s %s", arrow, self.label, describe(opcode, payload, self._scrub))

    def send_json(self, obj: Any) -> None:
        if not log.isEnabledFor(_DEBUG):
            self._inner.send_json(obj)
            return
        text = dumps(obj)  # serialised once: what is logged is exactly what is written
        self._log(">", OPCODE_TEXT, text)
        if self._send_text is not None:
            self._send_text(text)
        else:
            self._inner.send_json(obj)

    def send_text(self, text: str) -> None:
        if log.isEnabledFor(_DEBUG):
            self._log(">", OPCODE_TEXT, text)
        if self._send_text is None:
            raise AttributeError(f"{type(self._inner).__name__} has no send_text")
        self._send_text(text)

    def ping(self, payload: bytes = b"") -> None:
        if log.isEnabledFor(_DEBUG):
            self._log(">", OPCODE_PING, payload)
        self._inner.ping(payload)

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Any]]:
        frame: Optional[Tuple[int, Any]] = self._inner.recv(timeout)
        if frame is not None and log.isEnabledFor(_DEBUG):
            self._log("<", frame[0], frame[1])
        return frame

    def recv_many(self, timeout: Optional[float]) -> List[Tuple[int, Any]]:
        frames: List[Tuple[int, Any]] = list(self._recv_many(timeout))
        if frames and log.isEnabledFor(_DEBUG):
            for opcode, payload in frames:
                self._log("<", opcode, payload)
        return frames

    def close(self, timeout: float = 1.0) -> None:
        if log.isEnabledFor(_DEBUG):
            log.debug("* %s close", self.label)
        self._inner.close(timeout)

    def abort(self) -> None:
        if log.isEnabledFor(_DEBUG):
            log.debug("* %s abort", self.label)
        self._inner.abort()

    def release(self) -> None:
        self._inner.release()


def frame_logging_factory(factory: Callable[[str, Optional[str], float], Any], secret: Optional[str]
                          ) -> Callable[[str, Optional[str], float], Any]:
    """``factory`` with every connection it opens wrapped in a :class:`FrameLoggingConnection` that redacts
    ``secret`` (the API key). A connection opened with a key is the control socket, one without a subscription
    socket (the convention of :func:`simclient.reconnect.default_connection_factory`). Sockets are numbered in
    the order they are opened, across every client of the process, so a label names one socket."""
    if getattr(factory, "_simclient_frame_logging", False):
        return factory
    scrub = secret_scrubber(secret) if secret else _no_scrub
    numbers = _NUMBERS

    def open_logged(url: str, api_key: Optional[str], timeout: float) -> Any:
        kind = "control" if api_key is not None else "subscription"
        number = next(numbers)
        label = f"{kind}#{number}"
        where = _where(url, scrub)
        try:
            conn = factory(url, api_key, timeout)
        except Exception as exc:
            if log.isEnabledFor(_DEBUG):
                log.debug("* %s connect to %s failed: %s", label, where, type(exc).__name__)
            raise
        if log.isEnabledFor(_DEBUG):
            log.debug("* %s open %s", label, where)
        return FrameLoggingConnection(conn, label, scrub)

    open_logged._simclient_frame_logging = True  # type: ignore[attr-defined]
    return open_logged


def _where(url: str, scrub: Scrub) -> str:
    """``scheme://host:port/path`` of ``url`` (no userinfo, no query), scrubbed."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        text = f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        text = "<unparsable url>"
    return scrub(text.encode("utf-8")).decode("utf-8", "replace")


def log_decoded(conn: Any, text: Any, what: str = "decoded") -> None:
    """Log ``text`` (e.g. the decompressed payload of a binary frame) as belonging to ``conn``'s last frame, when
    ``conn`` is a :class:`FrameLoggingConnection` and DEBUG is on for ``simclient.frames``; else nothing."""
    if isinstance(conn, FrameLoggingConnection) and log.isEnabledFor(_DEBUG):
        log.debug("< %s %s %s", conn.label, what, describe(OPCODE_TEXT, text, conn._scrub))


def logging_inflater(inflate: Callable[[Any], Any], conn: Any) -> Callable[[Any], Any]:
    """``inflate`` (a connection's decompressor, :mod:`simclient.compression`) that also logs what each binary
    frame decompressed to, under ``conn``'s label: with ``log_frames`` a zstd stream is readable in the log."""
    def inflate_and_log(payload: Any) -> Any:
        text = inflate(payload)
        log_decoded(conn, text, "inflated")
        return text

    return inflate_and_log
