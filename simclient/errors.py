"""Every exception simclient raises, in one module (as ``requests.exceptions`` does).

All of them subclass :class:`SimclientError`. Messages never contain the API key: exceptions are built from
server payloads, URLs and our own text only, and :func:`redact` scrubs any text that might echo it.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

__all__ = [
    "SimclientError",
    "AuthenticationError",
    "InvalidRequestError",
    "SessionError",
    "ConnectionLostError",
    "SubscriptionError",
    "CompletionDrainStalled",
    "ProtocolError",
    "SessionClosedError",
    "RpcError",
    "HttpStatusError",
    "ServerTooOldError",
    "Timeout",
    "HttpConnectionError",
    "InternalError",
    "RedirectRefusedError",
    "TlsVerificationError",
    "BadUrlError",
    "CompressionUnavailableError",
]


class SimclientError(Exception):
    """Base class of every simclient exception."""


class AuthenticationError(SimclientError):
    """The server refused the API key (HTTP 401/403 on the WebSocket upgrade). Never retried."""

    def __init__(self, status: int, url: str):
        self.status = status
        self.url = url
        super().__init__(f"authentication failed: HTTP {status} from {url} (check SIMULATOR_API_KEY)")


class SessionError(SimclientError):
    """A terminal server error (PROTOCOL.md §10.1): the session cannot continue.

    ``error`` is the decoded :class:`simclient.protocol.BacktestError` (``variant`` + ``fields``).
    """

    def __init__(self, error: Any, message: Optional[str] = None):
        self.error = error
        super().__init__(message or f"session failed: {error}")


class InvalidRequestError(SessionError):
    """The server rejected a request as invalid (``invalidRequest`` and the ``Invalid*`` family)."""


class ServerTooOldError(SimclientError):
    """The server's reply lacks something this client needs (e.g. parallel range arrays)."""


class ConnectionLostError(SimclientError):
    """The control (or a data-plane) connection could not be kept up.

    Raised when the reconnect budget is spent, or at once when the session cannot be resumed
    (``disconnect_timeout_secs=0``). ``attempts`` holds ``(attempt_number, reason)`` for each failed try.
    """

    def __init__(self, message: str, attempts: Sequence[Tuple[int, str]] = ()):
        self.attempts: List[Tuple[int, str]] = list(attempts)
        if self.attempts:
            history = "; ".join(f"#{n}: {why}" for n, why in self.attempts[-5:])
            message = f"{message} (after {len(self.attempts)} attempt(s); last: {history})"
        super().__init__(message)


class SubscriptionError(SimclientError):
    """A data-plane subscription failed and its captured stream is incomplete (e.g. replay window exceeded)."""


class CompletionDrainStalled(SubscriptionError):
    """``completed`` arrived but a subscription did not reach end-of-stream in time: the stream is incomplete."""


class ProtocolError(SimclientError):
    """A frame from the server could not be decoded. ``raw`` holds at most 200 characters of it."""

    def __init__(self, message: str, raw: Any = None):
        text = raw if isinstance(raw, str) else (None if raw is None else repr(raw))
        self.raw = None if text is None else text[:200]
        super().__init__(f"{message}" + (f" (raw: {self.raw!r})" if self.raw is not None else ""))


class SessionClosedError(SimclientError):
    """The session (or run) was closed while an operation was waiting on it."""


class RpcError(SimclientError):
    """A JSON-RPC error returned by the per-session endpoint, with the server's ``code`` and ``message``."""

    def __init__(self, code: int, message: str, data: Any = None, method: str = ""):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        super().__init__(f"{method or 'rpc'}: error {code}: {message}")


class HttpStatusError(SimclientError):
    """An HTTP request returned a non-2xx status (PROTOCOL.md §1.3 ``HttpStatus{url,status,body}``)."""

    def __init__(self, url: str, status: int, body: str):
        self.url = url
        self.status = status
        self.body = body[:200]
        super().__init__(f"HTTP {status} from {url}: {self.body}")


class Timeout(SimclientError, TimeoutError):
    """A bounded wait ran out (``events(timeout=)``, ``send_continue(timeout=)``, a create nobody answered).

    Also a builtin :class:`TimeoutError`, so ``except TimeoutError`` keeps working (as ``requests.Timeout``)."""


class HttpConnectionError(HttpStatusError, ConnectionError):
    """An HTTP request (JSON-RPC, ``/available-ranges``) failed below HTTP: refused, reset, DNS, timeout.

    Also a builtin :class:`ConnectionError`, and (as before it existed) an :class:`HttpStatusError` with
    ``status == 0`` and the reason as ``body``, so code that caught that keeps working. ``url`` is the endpoint
    (never carries the key)."""

    def __init__(self, url: str, message: str):
        super().__init__(url, 0, message)
        self.args = (f"{url}: {message}",)

    def __str__(self) -> str:
        return f"{self.url}: {self.body}"


class InternalError(SimclientError):
    """A bug in simclient (a background thread crashed). The original exception is chained as ``__cause__``."""


class BadUrlError(SimclientError, ValueError):
    """The URL cannot work whatever the retries (wrong scheme, a path the server does not serve). Never retried."""


class RedirectRefusedError(SimclientError):
    """The server answered the WebSocket upgrade with a redirect. simclient never follows one: the redirect would
    carry ``X-API-Key`` to whatever host it names. Point the client at the final URL instead."""


class TlsVerificationError(SimclientError, ConnectionError):
    """The server's TLS certificate did not verify (self-signed, expired, wrong host). Never retried; verification
    stays on. Point ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` (or ``ClientConfig.ca_bundle`` where present) at the CA
    that signed it."""


class CompressionUnavailableError(SimclientError, ImportError):
    """A subscription asked for ``compression="zstd"`` (PROTOCOL §9.4) but the ``zstandard`` package is missing (or
    too old): ``pip install 'simclient[zstd]'``. Raised by the ``subscribe_*`` call; also a builtin
    :class:`ImportError`."""


def redact(text: str, secret: Optional[str]) -> str:
    """Replace every occurrence of ``secret`` in ``text`` (used on anything that could echo the key)."""
    if secret and len(secret) >= 1 and secret in text:
        return text.replace(secret, "***")
    return text
