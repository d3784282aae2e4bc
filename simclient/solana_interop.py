"""Optional helpers for using ``solders`` / ``solana-py`` with a simulator session (extra ``solana``).

Nothing in the core SDK imports this module; importing it does not import solders or solana either (they are
imported when a helper is called). See ``docs/solana.md``.

* :func:`solana_client` — a synchronous ``solana.rpc.api.Client`` bound to a session's RPC endpoint (what
  ``session.solana_client()`` returns), with a clear error on solana-py 0.40+, which removed the sync client.
* :func:`async_solana_client` — a ``solana.rpc.async_api.AsyncClient`` bound to the same endpoint (every solana-py
  version).
* :func:`websocket_url` — the session's PubSub URL, for ``solana.rpc.websocket_api.connect``.
* :func:`account_data` / :func:`solders_account` — :class:`~simclient.protocol.AccountData` ↔ ``solders`` Account.

Each helper takes a session (anything with an ``rpc_endpoint``) or an endpoint URL string.
"""
from __future__ import annotations

from typing import Any, Optional, Union

from .protocol import AccountData

__all__ = ["solana_client", "async_solana_client", "websocket_url", "http_endpoint", "account_data",
           "solders_account", "SOLANA_EXTRA_HINT"]

#: The install command printed by every "extra missing" error.
SOLANA_EXTRA_HINT = "pip install 'simclient[solana]'"


def http_endpoint(session_or_url: Union[str, Any]) -> str:
    """The session's per-session JSON-RPC URL (``http(s)://<host>/backtest/<session_id>``)."""
    url = session_or_url if isinstance(session_or_url, str) else getattr(session_or_url, "rpc_endpoint", None)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected a session or its http(s) rpc_endpoint, got {session_or_url!r}")
    return url


def websocket_url(session_or_url: Union[str, Any]) -> str:
    """The session's PubSub WebSocket URL (``ws(s)://<host>/backtest/<session_id>``, PROTOCOL §1)."""
    url = http_endpoint(session_or_url)
    return "wss://" + url[len("https://"):] if url.startswith("https://") else "ws://" + url[len("http://"):]


def solana_client(session_or_url: Union[str, Any], timeout: Optional[float] = None, **kwargs: Any) -> Any:
    """A synchronous ``solana.rpc.api.Client`` bound to the session's endpoint.

    solana-py deprecated the sync client in 0.39 (it warns on construction) and removed it in 0.40; the ``solana``
    extra pins ``solana<0.40``. On 0.40+ this raises ImportError saying so; use :func:`async_solana_client` there.
    """
    endpoint = http_endpoint(session_or_url)
    _require("solders")
    _require("solana")
    try:
        from solana.rpc.api import Client as SolanaClient  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ImportError(
            f"solana {_version('solana')} has no synchronous solana.rpc.api.Client (solana-py removed it in 0.40): "
            f"install 'solana>=0.34,<0.40' ({SOLANA_EXTRA_HINT} pins it), or use "
            f"simclient.solana_interop.async_solana_client(session)") from None
    if timeout is not None:
        kwargs["timeout"] = timeout
    return _closable(SolanaClient)(endpoint, **kwargs)


_CLOSABLE: dict[type, type] = {}


def _closable(base: Any) -> Any:
    """``base`` (solana-py's sync ``Client``) with ``close()`` and ``with`` support.

    solana-py's sync Client has no ``close()``. Before 0.39 (httpx 0.2x) its connection pool sits in a reference
    cycle, so the keep-alive socket stayed open until the cyclic garbage collector ran, long after the client was
    dropped; closing the provider's ``httpx.Client`` releases it at once."""
    cls = _CLOSABLE.get(base)
    if cls is None:
        def close(self: Any) -> None:
            http = getattr(getattr(self, "_provider", None), "session", None)
            if http is not None:
                http.close()

        def __exit__(self: Any, *exc: Any) -> None:
            self.close()

        cls = _CLOSABLE[base] = type(base.__name__, (base,), {
            "close": close, "__enter__": lambda self: self, "__exit__": __exit__,
            "__module__": __name__, "__doc__": base.__doc__})
    return cls


def async_solana_client(session_or_url: Union[str, Any], timeout: Optional[float] = None, **kwargs: Any) -> Any:
    """A ``solana.rpc.async_api.AsyncClient`` bound to the session's endpoint (use it inside ``asyncio``)."""
    endpoint = http_endpoint(session_or_url)
    _require("solders")
    _require("solana")
    from solana.rpc.async_api import AsyncClient  # type: ignore[import-not-found, unused-ignore]

    if timeout is not None:
        kwargs["timeout"] = timeout
    return AsyncClient(endpoint, **kwargs)


def account_data(account: Any) -> AccountData:
    """A solders ``Account`` (for instance ``client.get_account_info(pk).value``) as :class:`AccountData`."""
    return AccountData.from_solders(account)


def solders_account(data: AccountData) -> Any:
    """:class:`AccountData` as a ``solders.account.Account``."""
    _require("solders")
    return data.to_solders()


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise ImportError(f"this needs the 'solana' extra ({module} is not installed): {SOLANA_EXTRA_HINT}") \
            from exc


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover - metadata missing
        return "?"
