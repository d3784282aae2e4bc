"""One WebSocket connection over ``websocket-client``: connect with headers, send, receive with a deadline, ping.

Nothing here retries or interprets messages: :mod:`simclient.control` and :mod:`simclient.subscriptions` do.
A ``Connection`` has exactly one reading thread; ``send_*`` and ``ping`` may be called from any thread.
"""
from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from typing import Any, Optional, Tuple, Union

import websocket

from ._version import __version__
from .errors import AuthenticationError
from .protocol import dumps

log = logging.getLogger("simclient.transport")

USER_AGENT = f"simclient-python/{__version__}"

OPCODE_TEXT = websocket.ABNF.OPCODE_TEXT
OPCODE_BINARY = websocket.ABNF.OPCODE_BINARY
OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
OPCODE_PING = websocket.ABNF.OPCODE_PING
OPCODE_PONG = websocket.ABNF.OPCODE_PONG

#: Bytes asked of the socket at once by the read-ahead (a loopback stream of small frames fits many per read).
READ_AHEAD = 16 * 1024


class TransportError(Exception):
    """The connection failed or was lost (transient unless ``close_code`` says otherwise)."""

    def __init__(self, message: str, close_code: Optional[int] = None, status: Optional[int] = None):
        self.close_code = close_code
        self.status = status
        super().__init__(message)

    @property
    def terminal(self) -> bool:
        """§10.1: WS close codes 4000–4999 are terminal; 401/403 are raised as AuthenticationError instead."""
        return self.close_code is not None and 4000 <= self.close_code <= 4999


class Closed(TransportError):
    """The peer sent a close frame (``close_code`` holds its status)."""


class Connection:
    """A connected WebSocket. Use :meth:`open`."""

    def __init__(self, ws: websocket.WebSocket, url: str):
        self._ws = ws
        self.url = url
        self._send_lock = threading.Lock()
        self._closed = False
        self._timeout: Optional[float] = -1.0  # last value given to settimeout (avoid a syscall per frame)
        # Read-ahead: websocket-client's frame parser asks the socket for each frame's header, length and payload
        # separately (two or three recv syscalls per frame); serve those requests from one larger read instead.
        self._rbuf = b""
        self._rpos = 0
        frame_buffer = getattr(ws, "frame_buffer", None)
        if frame_buffer is not None and hasattr(frame_buffer, "recv"):
            frame_buffer.recv = self._read_ahead
        # Fast path of recv(): only where websocket-client's parser state is what this module expects, and without
        # UTF-8 validation (which open() turns off; the fast path does not validate).
        cont = getattr(ws, "cont_frame", None)
        self._fb: Any = frame_buffer
        self._cont: Any = cont
        self._fast = (frame_buffer is not None and cont is not None
                      and getattr(frame_buffer, "skip_utf8_validation", False) is True
                      and all(hasattr(frame_buffer, a) for a in ("header", "recv_buffer", "lock"))
                      and hasattr(cont, "cont_data"))

    def _read_ahead(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes for websocket-client's frame parser (which loops until it has what it asked
        for), from the read-ahead buffer, refilled by one ``recv`` of up to :data:`READ_AHEAD` bytes when empty.
        Called with the frame parser's lock held; errors and timeouts are websocket-client's own, as before."""
        buf = self._rbuf
        pos = self._rpos
        if pos >= len(buf):
            buf = self._ws._recv(READ_AHEAD)
            pos = 0
        chunk = buf[pos:pos + bufsize]
        self._rbuf = buf
        self._rpos = pos + len(chunk)
        return chunk

    @classmethod
    def open(cls, url: str, api_key: Optional[str] = None, timeout: float = 30.0) -> "Connection":
        """Connect (TCP + TLS + upgrade) within ``timeout``. Raises AuthenticationError on 401/403 and
        TransportError on anything else. TLS certificates are always verified for ``wss://``."""
        headers = [f"User-Agent: {USER_AGENT}"]
        if api_key is not None:
            headers.append(f"X-API-Key: {api_key}")
        ws = websocket.WebSocket(
            sslopt={"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True},
            # The reader thread writes too: recv_data_frame answers pings (and close frames) itself, outside
            # _send_lock. websocket-client's lock serialises every frame write, so such a pong cannot land between
            # the partial writes of a frame that another thread is sending.
            enable_multithread=True,
            skip_utf8_validation=True,  # JSON decoding validates; websocket-client's pure-Python check is slow
        )
        try:
            ws.connect(url, header=headers, timeout=timeout, suppress_origin=True)
        except websocket.WebSocketBadStatusException as exc:
            ws.shutdown()
            if exc.status_code in (401, 403):
                raise AuthenticationError(exc.status_code, url) from None
            raise TransportError(f"upgrade refused: HTTP {exc.status_code}", status=exc.status_code) from None
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            ws.shutdown()
            raise TransportError(f"connect to {url} failed: {type(exc).__name__}: {exc}") from None
        ws.settimeout(None)
        try:  # keep latency low for small frames
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        return cls(ws, url)

    # ------------------------------------------------------------------ sending (any thread)

    def send_text(self, text: str) -> None:
        with self._send_lock:
            try:
                self._ws.send(text, OPCODE_TEXT)
            except (OSError, websocket.WebSocketException) as exc:
                raise TransportError(f"send failed: {type(exc).__name__}: {exc}") from None

    def send_json(self, obj: Any) -> None:
        self.send_text(dumps(obj))

    def ping(self, payload: bytes = b"") -> None:
        with self._send_lock:
            try:
                self._ws.ping(payload)
            except (OSError, websocket.WebSocketException) as exc:
                raise TransportError(f"ping failed: {exc}") from None

    # ------------------------------------------------------------------ receiving (one thread)

    def _recv_buffered(self) -> Optional[Tuple[int, bytes]]:
        """A whole text/binary frame (FIN, unmasked, no RSV bits, no fragment pending) already in the read-ahead
        buffer, cut straight out of it: what websocket-client's parser would return for it, without its per-frame
        overhead. None when there is no such frame (then websocket-client reads the next frame as usual)."""
        fb = self._fb
        with fb.lock:
            buf = self._rbuf
            pos = self._rpos
            avail = len(buf) - pos
            if avail < 2 or fb.header is not None or fb.recv_buffer or self._cont.cont_data is not None:
                return None
            b0 = buf[pos]
            length = buf[pos + 1]  # mask bit clear: < 0x80
            if (b0 != 0x81 and b0 != 0x82) or length >= 0x80:
                return None
            start = pos + 2
            if length == 126:
                if avail < 4:
                    return None
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if avail < 10:
                    return None
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > len(buf):
                return None
            self._rpos = end
            return b0 & 0x0F, buf[start:end]

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Union[bytes, str]]]:
        """The next data frame as ``(opcode, payload)``, or ``None`` when ``timeout`` passed with nothing.
        Pings are answered and returned as ``(OPCODE_PING, b"")``, pongs as ``(OPCODE_PONG, payload)``, so callers can
        count inbound traffic and match a ping they sent.
        Raises :class:`Closed` on a close frame and :class:`TransportError` when the connection breaks."""
        ws = self._ws
        try:
            if timeout != self._timeout:
                ws.sock.settimeout(timeout)  # type: ignore[union-attr]
                self._timeout = timeout
            if self._fast:
                fast = self._recv_buffered()
                if fast is not None:
                    return fast
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except socket.timeout:
            return None
        except (OSError, AttributeError, websocket.WebSocketException, struct.error) as exc:
            raise TransportError(f"connection lost: {type(exc).__name__}: {exc}") from None
        if opcode == OPCODE_CLOSE:
            code = None
            data = frame.data or b""
            if len(data) >= 2:
                code = struct.unpack("!H", data[:2])[0]
            raise Closed(f"closed by peer (code {code})", close_code=code)
        if opcode == OPCODE_PING:
            return (OPCODE_PING, b"")  # already answered by websocket-client; counts as inbound traffic
        return opcode, frame.data  # text/binary payloads, and pongs with their payload

    # ------------------------------------------------------------------ closing

    def close(self, timeout: float = 1.0) -> None:
        """Graceful close (close frame, wait briefly for the echo), then release the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._send_lock:
                self._ws.close(timeout=timeout)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        finally:
            self._ws.shutdown()

    def abort(self) -> None:
        """Wake the reading thread at once (shutdown of the socket); the reader then sees TransportError."""
        try:
            self._ws.abort()
        except Exception:  # noqa: BLE001
            pass

    def release(self) -> None:
        """Drop the socket without a close handshake."""
        self._closed = True
        try:
            self._ws.shutdown()
        except Exception:  # noqa: BLE001
            pass
