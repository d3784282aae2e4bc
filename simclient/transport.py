"""One WebSocket connection over ``websocket-client``: connect with headers, send, receive with a deadline, ping.

Nothing here retries or interprets messages: :mod:`simclient.control` and :mod:`simclient.subscriptions` do.
A ``Connection`` has exactly one reading thread; ``send_*`` and ``ping`` may be called from any thread.

Timeouts. A socket has one timeout, shared by every thread that uses it, so the reader's short poll must not be it:
a user thread's large ``send_json`` (a ~10 MiB continue) to a server briefly not reading would otherwise fail after a
fraction of a second. The socket's own timeout is the *send* timeout (how long a write may make no progress); the
reader waits for readability with ``poll``/``select`` for its own deadline and only then reads.

Errors no retry can fix (a scheme other than ws/wss, a certificate that does not verify, a redirect, an HTTP 4xx on
the control upgrade other than 408/425/429) are raised as a :class:`TransportError` whose ``error`` holds the typed
:class:`~simclient.errors.SimclientError` to surface; ``terminal`` is True for them, so no reconnect loop retries.
"""
from __future__ import annotations

import json
import logging
import os
import select
import socket
import ssl
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

import websocket

from ._version import __version__
from .errors import (
    AuthenticationError,
    BadUrlError,
    HttpStatusError,
    RedirectRefusedError,
    SimclientError,
    TlsVerificationError,
    redact,
)
from .protocol import dumps

log = logging.getLogger("simclient.transport")

USER_AGENT = f"simclient-python/{__version__}"

OPCODE_TEXT = websocket.ABNF.OPCODE_TEXT
OPCODE_BINARY = websocket.ABNF.OPCODE_BINARY
OPCODE_CLOSE = websocket.ABNF.OPCODE_CLOSE
OPCODE_PING = websocket.ABNF.OPCODE_PING
OPCODE_PONG = websocket.ABNF.OPCODE_PONG

#: Bytes asked of the socket at once by the read-ahead (a loopback stream of small frames fits many per read).
#: Each read lets the interpreter lock go to the consumer thread; the fewer reads, the fewer hand-offs of the lock
#: (and of the other core's cache) per frame: 64 KiB measured 6.4 us client CPU per transaction notification
#: event against 7.9 us at 16 KiB (docs/performance.md). A read returns at once with what is there, and a
#: connection drops its buffer once it is used up, so an idle or slow socket holds no more than before.
READ_AHEAD = 64 * 1024

#: Default of :attr:`simclient.ClientConfig.send_timeout`: how long one write may make no progress.
DEFAULT_SEND_TIMEOUT = 30.0

#: HTTP statuses on the upgrade that a retry can fix (request timeout, too early, too many requests) — with 5xx.
TRANSIENT_UPGRADE_STATUSES = frozenset({408, 425, 429})

#: ``Connection.open(endpoint=...)``: the control socket (4xx on the upgrade is terminal) or a data-plane socket.
CONTROL = "control"
SUBSCRIPTION = "subscription"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_REST_MAX = 4 * READ_AHEAD  # frames up to this size that straddle a read are completed by Connection._read_rest
_READ_MORE = object()  # Connection._recv_buffered: no whole frame buffered, but the cutter can take it once read
_DIRECT = object()  # _read_ahead: read with the socket's own timeout (websocket-client's close handshake)


class TransportError(Exception):
    """The connection failed or was lost (transient unless ``terminal``).

    ``error``: when set, the failure is one no retry can fix and ``error`` is the typed exception to raise instead
    (:class:`~simclient.errors.BadUrlError`, :class:`~simclient.errors.TlsVerificationError`, ...)."""

    def __init__(self, message: str, close_code: Optional[int] = None, status: Optional[int] = None,
                 error: Optional[SimclientError] = None):
        self.close_code = close_code
        self.status = status
        self.error = error
        super().__init__(message)

    @property
    def terminal(self) -> bool:
        """§10.1: WS close codes 4000–4999 are terminal, and so is every failure that carries a typed ``error``;
        401/403 are raised as AuthenticationError instead."""
        if self.error is not None:
            return True
        return self.close_code is not None and 4000 <= self.close_code <= 4999


class Closed(TransportError):
    """The peer sent a close frame (``close_code`` holds its status)."""


class SendTimeout(TransportError):
    """A write made no progress for the send timeout: the peer stopped reading. Part of the frame may have been
    written, so the connection cannot be used any more (abort it)."""


class Connection:
    """A connected WebSocket. Use :meth:`open`."""

    def __init__(self, ws: Any, url: str, send_timeout: Optional[float] = None, secret: Optional[str] = None):
        self._ws: Any = ws
        self.url = url
        self.send_timeout = send_timeout
        self._send_lock = threading.Lock()
        self._closed = False
        self._timeout: Optional[float] = -1.0  # legacy reads only: last value given to settimeout
        # Read-ahead: websocket-client's frame parser asks the socket for each frame's header, length and payload
        # separately (two or three recv syscalls per frame); serve those requests from one larger read instead.
        # The read-ahead is also where the reader waits for readability (see the module docstring).
        self._rbuf = b""
        self._rpos = 0
        self._wait: Any = None  # the current recv()'s timeout, for _read_ahead (None: no limit)
        frame_buffer: Any = getattr(ws, "frame_buffer", None)
        self._hooked = frame_buffer is not None and hasattr(frame_buffer, "recv")
        if self._hooked:
            frame_buffer.recv = self._read_ahead
        self._refill = self._make_refill(getattr(ws, "sock", None))
        # Fast path of recv(): only where websocket-client's parser state is what this module expects, and without
        # UTF-8 validation (which open() turns off; the fast path does not validate).
        cont = getattr(ws, "cont_frame", None)
        self._fb: Any = frame_buffer
        self._cont: Any = cont
        self._fast = (self._hooked and cont is not None
                      and getattr(frame_buffer, "skip_utf8_validation", False) is True
                      and all(hasattr(frame_buffer, a) for a in ("header", "recv_buffer", "lock"))
                      and hasattr(cont, "cont_data"))
        # A key the server echoes never reaches an event, an exception or a log line: every payload read on a
        # connection opened with a key is scrubbed before anyone decodes it (see _scrubbed).
        if secret:
            self.recv = _scrubbing(self.recv, secret)  # type: ignore[method-assign,assignment]
            self.recv_many = _scrubbing_many(self.recv_many, secret)  # type: ignore[method-assign,assignment]

    def _make_refill(self, sock: Any) -> Callable[[], bytes]:
        """The read of a read-ahead refill for ``sock``: it waits for readability at most ``self._wait`` (raising
        websocket-client's ``WebSocketTimeoutException`` when nothing came), then reads up to :data:`READ_AHEAD`.

        * plain TCP in timeout mode (the fd is non-blocking): one ``read`` syscall when data is there (cheaper than
          the poll + recv a socket timeout costs); poll only when it would block;
        * TLS, or a blocking socket: decrypted bytes pending, else poll; then websocket-client's own read;
        * no file descriptor (in-memory sockets of benchmarks and tests): websocket-client's read, no wait."""
        ws = self._ws
        try:
            fd = sock.fileno()
        except Exception:  # noqa: BLE001 - no socket, or not a real one
            fd = -1
        if not isinstance(fd, int) or fd < 0:
            return lambda: ws._recv(READ_AHEAD)
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            poll = poller.poll

            def readable(timeout: Optional[float]) -> bool:
                return bool(poll(None if timeout is None else max(0.0, timeout) * 1000.0))
        else:  # pragma: no cover - Windows
            def readable(timeout: Optional[float]) -> bool:
                return bool(select.select((sock,), (), (), None if timeout is None else max(0.0, timeout))[0])
        no_data = websocket.WebSocketTimeoutException
        if isinstance(sock, ssl.SSLSocket) or not sock.gettimeout():
            pending: Optional[Callable[[], int]] = getattr(sock, "pending", None)

            def refill_waiting() -> bytes:
                if not (pending is not None and pending()) and not readable(self._wait):
                    raise no_data("no data within the read timeout")
                return ws._recv(READ_AHEAD)  # type: ignore[no-any-return]
            return refill_waiting

        read = os.read

        def refill_fd() -> bytes:
            current = ws.sock
            if current is None:
                raise websocket.WebSocketConnectionClosedException("socket is already closed.")
            fileno = current.fileno()  # -1 once closed: EBADF, never a reused descriptor
            try:
                data = read(fileno, READ_AHEAD)
            except BlockingIOError:
                if not readable(self._wait):
                    raise no_data("no data within the read timeout") from None
                try:
                    data = read(fileno, READ_AHEAD)
                except BlockingIOError:
                    raise no_data("no data within the read timeout") from None
            if not data:  # end of stream: websocket-client's read reports it (and drops the socket) as it does
                return ws._recv(READ_AHEAD)  # type: ignore[no-any-return]
            return data
        return refill_fd

    def _read_ahead(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes for websocket-client's frame parser (which loops until it has what it asked
        for), from the read-ahead buffer, refilled by one read of up to :data:`READ_AHEAD` bytes when empty.
        A refill first waits until the socket is readable, at most the current ``recv()``'s timeout (a timeout
        is websocket-client's own ``WebSocketTimeoutException``: its parser keeps a half-read frame for the next
        call). Called with the frame parser's lock held."""
        buf = self._rbuf
        pos = self._rpos
        if pos >= len(buf):
            buf = self._ws._recv(READ_AHEAD) if self._wait is _DIRECT else self._refill()
            pos = 0
        chunk = buf[pos:pos + bufsize]
        self._rbuf = buf
        self._rpos = pos + len(chunk)
        return chunk

    @classmethod
    def open(cls, url: str, api_key: Optional[str] = None, timeout: float = 30.0,
             send_timeout: Optional[float] = DEFAULT_SEND_TIMEOUT, ca_bundle: Optional[str] = None,
             endpoint: str = CONTROL) -> "Connection":
        """Connect (TCP + TLS + upgrade) within ``timeout``; afterwards each write may make no progress for at
        most ``send_timeout`` (None: no limit). TLS certificates are always verified for ``wss://``, against
        ``ca_bundle`` when given (else the system's default CA store, which ``SSL_CERT_FILE`` overrides).

        Raises AuthenticationError on 401/403, and TransportError on anything else: with ``error`` set (and
        ``terminal`` True) when no retry can fix it (bad scheme, certificate, redirect, and on the ``CONTROL``
        endpoint an HTTP 4xx other than 408/425/429). Redirects are never followed: they would carry
        ``X-API-Key`` to whatever host they name."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss"):
            raise _fatal(BadUrlError(_bad_scheme_message(url, scheme)))
        headers = [f"User-Agent: {USER_AGENT}"]
        if api_key is not None:
            headers.append(f"X-API-Key: {api_key}")
        sslopt: Dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
        if ca_bundle:
            sslopt["ca_certs"] = ca_bundle
        ws: Any = websocket.WebSocket(
            sslopt=sslopt,
            # The reader thread writes too: recv_data_frame answers pings (and close frames) itself, outside
            # _send_lock. websocket-client's lock serialises every frame write, so such a pong cannot land between
            # the partial writes of a frame that another thread is sending.
            enable_multithread=True,
            skip_utf8_validation=True,  # JSON decoding validates; websocket-client's pure-Python check is slow
        )
        try:
            ws.connect(url, header=headers, timeout=timeout, suppress_origin=True, redirect_limit=0)
        except websocket.WebSocketBadStatusException as exc:
            ws.shutdown()
            code = int(exc.status_code)
            if code in (401, 403):
                raise AuthenticationError(code, url) from None
            raise _upgrade_refused(url, code, endpoint, _body(exc, api_key)) from None
        except ssl.SSLCertVerificationError as exc:
            ws.shutdown()
            raise _fatal(TlsVerificationError(_tls_message(url, exc, ca_bundle))) from None
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            response = getattr(ws, "handshake_response", None)
            ws.shutdown()
            status = getattr(response, "status", None)
            if status in _REDIRECT_STATUSES:
                raise _fatal(RedirectRefusedError(_redirect_message(url, int(status), response))) from None
            reason = redact(f"{type(exc).__name__}: {exc}", api_key)
            raise TransportError(f"connect to {url} failed: {reason}") from None
        response = getattr(ws, "handshake_response", None)
        status = getattr(response, "status", 101)
        if status in _REDIRECT_STATUSES:  # websocket-client < 1.9.2 returns from connect() on an unfollowed 3xx
            ws.shutdown()
            raise _fatal(RedirectRefusedError(_redirect_message(url, int(status), response)))
        ws.settimeout(send_timeout)  # the socket's own timeout bounds writes; reads wait in _read_ahead
        try:  # keep latency low for small frames
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        return cls(ws, url, send_timeout=send_timeout, secret=api_key)

    # ------------------------------------------------------------------ sending (any thread)

    def send_text(self, text: str) -> None:
        """Send one text frame. Raises :class:`SendTimeout` when a write made no progress for the send timeout
        and :class:`TransportError` when the connection broke; either way the connection is unusable."""
        with self._send_lock:
            try:
                self._ws.send(text, OPCODE_TEXT)
            except websocket.WebSocketTimeoutException:
                raise SendTimeout(
                    f"send of a {len(text):,}-character frame made no progress for "
                    f"{_seconds(self.send_timeout)}: the server is not reading (ClientConfig.send_timeout)") from None
            except (OSError, websocket.WebSocketException) as exc:
                raise TransportError(f"send failed: {type(exc).__name__}: {exc}") from None

    def send_json(self, obj: Any) -> None:
        self.send_text(dumps(obj))

    def ping(self, payload: bytes = b"") -> None:
        with self._send_lock:
            try:
                self._ws.ping(payload)
            except websocket.WebSocketTimeoutException:
                raise SendTimeout(f"ping made no progress for {_seconds(self.send_timeout)}: "
                                  "the server is not reading") from None
            except (OSError, websocket.WebSocketException) as exc:
                raise TransportError(f"ping failed: {exc}") from None

    # ------------------------------------------------------------------ receiving (one thread)

    def _recv_buffered(self) -> Union[None, object, Tuple[int, bytes]]:
        """A whole text/binary frame (FIN, unmasked, no RSV bits, no fragment pending) already in the read-ahead
        buffer, cut straight out of it: what websocket-client's parser would return for it, without its per-frame
        overhead. :data:`_READ_MORE` when the cutter can take the next frame once more bytes are read (the buffer
        ends before a frame header, or inside a frame it can cut: see :meth:`_read_rest`); None when
        websocket-client's parser must read it (control frames, fragments, large frames)."""
        fb = self._fb
        with fb.lock:
            buf = self._rbuf
            pos = self._rpos
            avail = len(buf) - pos
            if fb.header is not None or fb.recv_buffer or self._cont.cont_data is not None:
                return None
            if avail < 2:
                return _READ_MORE
            b0 = buf[pos]
            length = buf[pos + 1]  # mask bit clear: < 0x80
            if (b0 != 0x81 and b0 != 0x82) or length >= 0x80:
                return None
            start = pos + 2
            if length == 126:
                if avail < 4:
                    return _READ_MORE
                length = (buf[pos + 2] << 8) | buf[pos + 3]  # 16-bit big-endian length, without a slice
                start = pos + 4
            elif length == 127:
                if avail < 10:
                    return _READ_MORE
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > len(buf):
                # the frame's start is here, its end not yet: recv() reads the rest itself, unless the frame is
                # large (each read-rest copies the buffered part; websocket-client's parser joins chunks once)
                return _READ_MORE if length <= _READ_REST_MAX else None
            if end == len(buf):
                self._rbuf = b""  # used up: do not keep up to READ_AHEAD bytes alive until the next frame
                self._rpos = 0
            else:
                self._rpos = end
            return b0 & 0x0F, buf[start:end]

    def _read_rest(self, timeout: Optional[float]) -> None:
        """The read-ahead buffer holds no whole frame, and the next one is one the cutter can take (or its header
        is not all here yet): one more read (waiting at most ``timeout``), appended behind the buffered part,
        instead of handing the frame to websocket-client's parser (on the transaction stream about one 1.4 KB
        frame in 45 straddles the end of a 64 KiB read). Raises websocket-client's timeout / connection exceptions
        as the read-ahead does; what was buffered stays put."""
        fb = self._fb
        with fb.lock:
            self._wait = timeout
            data = self._refill()
            self._rbuf = self._rbuf[self._rpos:] + data if self._rpos < len(self._rbuf) else data
            self._rpos = 0

    def recv_many(self, timeout: Optional[float]) -> List[Tuple[int, Union[bytes, str]]]:
        """Every whole text/binary frame already in the read-ahead buffer, in order, cut in one pass (a reader
        takes them as one batch: on the transaction stream about 45 frames per 64 KiB read); when there is none,
        ``[recv(timeout)]``, or ``[]`` when ``timeout`` passed with nothing. Raises what :meth:`recv` raises."""
        if self._fast:
            frames = self._cut_buffered()
            if frames:
                return frames
        frame = Connection.recv(self, timeout)  # the plain read: a key scrubber wraps recv_many itself
        return [] if frame is None else [frame]

    def _cut_buffered(self) -> List[Tuple[int, Union[bytes, str]]]:
        """The whole text/binary frames (FIN, unmasked, no RSV bits) at the start of the read-ahead buffer, up to
        the first frame :meth:`_recv_buffered` would not cut (or a partial one), which stays buffered for it."""
        out: List[Tuple[int, Union[bytes, str]]] = []
        fb = self._fb
        with fb.lock:
            if fb.header is not None or fb.recv_buffer or self._cont.cont_data is not None:
                return out
            buf = self._rbuf
            pos = self._rpos
            size = len(buf)
            append = out.append
            while pos + 2 <= size:
                b0 = buf[pos]
                length = buf[pos + 1]
                if (b0 != 0x81 and b0 != 0x82) or length >= 0x80:
                    break
                start = pos + 2
                if length == 126:
                    if pos + 4 > size:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    start = pos + 4
                elif length == 127:
                    if pos + 10 > size:
                        break
                    length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                    start = pos + 10
                end = start + length
                if end > size:
                    break
                append((b0 & 0x0F, buf[start:end]))
                pos = end
            if pos >= size:
                self._rbuf = b""
                self._rpos = 0
            else:
                self._rpos = pos
        return out

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Union[bytes, str]]]:
        """The next data frame as ``(opcode, payload)``, or ``None`` when ``timeout`` passed with nothing.
        Pings are answered and returned as ``(OPCODE_PING, b"")``, pongs as ``(OPCODE_PONG, payload)``, so callers can
        count inbound traffic and match a ping they sent.
        Raises :class:`Closed` on a close frame and :class:`TransportError` when the connection breaks."""
        ws = self._ws
        try:
            if self._fast:
                fast = self._recv_buffered()
                while fast is _READ_MORE:
                    self._read_rest(timeout)
                    fast = self._recv_buffered()
                if fast is not None:
                    return fast  # type: ignore[return-value]
            if self._hooked:
                self._wait = timeout  # _read_ahead waits for readability at most this long per refill
            elif timeout != self._timeout:
                # websocket-client's internals are not what this module expects: the old way, a per-socket
                # timeout (which a concurrent send then shares)
                ws.sock.settimeout(timeout)
                self._timeout = timeout
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except socket.timeout:
            return None
        except (OSError, AttributeError, websocket.WebSocketException, struct.error, ValueError) as exc:
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
                self._wait = _DIRECT  # websocket-client's close loop reads with its own socket timeout
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


# ---------------------------------------------------------------------- the key never comes back


def _needles(secret: str) -> Tuple[bytes, bytes]:
    """The key's bytes as they may appear in a frame: raw, and as a JSON string spells it (``escaped`` is ``raw``
    itself, the same object, when the two agree)."""
    raw = secret.encode("utf-8")
    escaped = json.dumps(secret)[1:-1].encode("ascii")  # e.g. a quote or backslash in the key
    return (raw, raw) if escaped == raw else (raw, escaped)


def secret_scrubber(secret: str) -> Callable[[bytes], bytes]:
    """``scrub(payload) -> payload`` with every occurrence of ``secret`` (raw, or as a JSON string spells it)
    replaced by ``***``: the one redaction of frame payloads, used by the scrubbing ``recv`` below and by the
    frame log (:mod:`simclient.framelog`)."""
    raw, escaped = _needles(secret)
    needles = (raw,) if escaped is raw else (raw, escaped)
    mask = b"***"

    def scrub(payload: bytes) -> bytes:
        for needle in needles:
            payload = payload.replace(needle, mask)
        return payload

    return scrub


def _frame_scrubber(secret: str) -> Callable[[Tuple[int, Any]], Tuple[int, Any]]:
    """``clean(frame) -> frame``: the frame itself when its payload does not contain ``secret`` (raw, or as a JSON
    string spells it), else the frame with every occurrence replaced by ``***``. One substring search per frame
    when the key is absent."""
    raw, escaped = _needles(secret)
    scrub = secret_scrubber(secret)

    def clean(frame: Tuple[int, Any]) -> Tuple[int, Any]:
        payload = frame[1]
        if type(payload) is bytes:
            # find, not ``in``: bytes.__contains__ first tries the needle as an int (a raised and cleared
            # TypeError), which doubles the cost of this per-frame search (80 vs 160 ns on a status frame)
            if payload.find(raw) >= 0 or (escaped is not raw and payload.find(escaped) >= 0):
                return frame[0], scrub(payload)
        elif isinstance(payload, (bytes, bytearray)):
            return frame[0], scrub(bytes(payload))
        elif isinstance(payload, str):
            return frame[0], scrub(payload.encode("utf-8")).decode("utf-8")
        return frame

    return clean


def _scrubbing(recv: Callable[[Optional[float]], Optional[Tuple[int, Union[bytes, str]]]], secret: str
               ) -> Callable[[Optional[float]], Optional[Tuple[int, Union[bytes, str]]]]:
    """``recv`` of a connection opened with an API key: a payload that contains the key (raw, or as a JSON string
    spells it) has it replaced by ``***`` before anyone decodes it, so no event, exception, log line or repr built
    from server text can carry it."""
    clean = _frame_scrubber(secret)
    buffered = getattr(recv, "__self__", None)
    fast: Any = buffered._recv_buffered if isinstance(buffered, Connection) and buffered._fast else None

    def recv_scrubbed(timeout: Optional[float]) -> Optional[Tuple[int, Union[bytes, str]]]:
        frame = fast() if fast is not None else None  # Connection.recv's own first step, one call less
        if type(frame) is not tuple:  # None or _READ_MORE: Connection.recv reads on
            frame = recv(timeout)
        return None if frame is None else clean(frame)

    return recv_scrubbed


def _scrubbing_many(recv_many: Callable[[Optional[float]], List[Tuple[int, Union[bytes, str]]]], secret: str
                    ) -> Callable[[Optional[float]], List[Tuple[int, Union[bytes, str]]]]:
    """``recv_many`` of a connection opened with an API key: each frame of the batch as :func:`_scrubbing`'s."""
    clean = _frame_scrubber(secret)

    def recv_many_scrubbed(timeout: Optional[float]) -> List[Tuple[int, Union[bytes, str]]]:
        return [clean(frame) for frame in recv_many(timeout)]

    return recv_many_scrubbed


# ---------------------------------------------------------------------- failures no retry can fix


def _fatal(error: SimclientError) -> TransportError:
    """A terminal TransportError carrying the typed ``error`` (same message)."""
    return TransportError(str(error), error=error)


def _seconds(value: Optional[float]) -> str:
    return "ever" if value is None else f"{value:g}s"


def _bad_scheme_message(url: str, scheme: str) -> str:
    hint = {"http": "ws", "https": "wss"}.get(scheme)
    fix = f"; did you mean {hint}://{url.split('://', 1)[1]}?" if hint else ""
    shown = scheme + "://" if scheme else "no scheme"
    return (f"the WebSocket URL {url} has scheme {shown}: simclient connects to ws:// (local) or wss:// (hosted) "
            f"URLs only{fix}")


def _body(exc: Any, secret: Optional[str]) -> str:
    raw = getattr(exc, "resp_body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return redact(str(raw or "").strip(), secret)[:200]


def _upgrade_refused(url: str, status: int, endpoint: str, body: str) -> TransportError:
    """A non-101, non-3xx answer to the upgrade: transient for 5xx and 408/425/429 (and on data-plane sockets,
    whose 4xx the caller classifies), otherwise a typed terminal error."""
    message = f"upgrade refused: HTTP {status}"
    if endpoint != CONTROL or status >= 500 or status < 400 or status in TRANSIENT_UPGRADE_STATUSES:
        return TransportError(message, status=status)
    path = urlsplit(url).path or "/"
    if status == 404:
        error: SimclientError = BadUrlError(
            f"the server has no WebSocket endpoint at {path} (HTTP 404 from {url}): the control URL is "
            "ws(s)://HOST[:PORT]/backtest")
    else:
        error = HttpStatusError(url, status, body or "the server refused the WebSocket upgrade; no retry can fix it")
    return TransportError(message, status=status, error=error)


def _tls_message(url: str, exc: ssl.SSLCertVerificationError, ca_bundle: Optional[str]) -> str:
    host = urlsplit(url).hostname or url
    why = getattr(exc, "verify_message", None) or str(exc)
    where = (f"the CA bundle {ca_bundle}" if ca_bundle
             else "the system's CA store (ClientConfig.ca_bundle and SSL_CERT_FILE are unset)")
    return (f"the TLS certificate of {host} did not verify against {where}: {why}. Verification stays on; if the "
            "server uses a private CA, point simclient at a PEM bundle that contains it: "
            "ClientConfig(ca_bundle='/path/ca.pem') (used for the WebSocket and the HTTP endpoints), or the "
            "environment variables SSL_CERT_FILE (WebSocket) and REQUESTS_CA_BUNDLE (HTTP)")


def _redirect_message(url: str, status: int, response: Any) -> str:
    headers = getattr(response, "headers", None) or {}
    location = str(headers.get("location", "")) if hasattr(headers, "get") else ""
    target = urlsplit(location) if location else None
    if target is not None and target.hostname:
        host = target.hostname + (f":{target.port}" if target.port else "")  # never any userinfo
        where = f"to {target.scheme}://{host}" if target.scheme else f"to {host}"
    elif target is not None:
        where = f"to path {target.path or '/'} on the same host"
    else:
        where = "without a Location"
    return (f"the server answered the WebSocket upgrade at {url} with HTTP {status}, a redirect {where}: simclient "
            "never follows redirects (the API key would go with it); use the final URL instead")
