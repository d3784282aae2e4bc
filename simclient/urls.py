"""URL normalisation, exactly as PROTOCOL.md §1.1 (the Rust ``urls.rs``) specifies."""
from __future__ import annotations

__all__ = ["backtest_ws_url", "http_base_from_ws_url", "http_to_ws_url", "resolve_rpc_endpoint"]


def backtest_ws_url(url: str) -> str:
    """Control URL: bare host → ``wss://host/backtest``; ws(s) URLs keep their scheme, lose a trailing ``/``
    and gain ``/backtest`` only if missing; other schemes pass through unchanged. Idempotent."""
    url = url.strip()
    if "://" not in url:
        url = f"wss://{url}"  # a bare host (optionally with the /backtest path) means wss
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("ws", "wss"):
        return url
    url = url.rstrip("/")
    if not url.endswith("/backtest"):
        url += "/backtest"
    return url


def http_base_from_ws_url(url: str) -> str:
    """``wss://h:443/backtest`` → ``https://h:443``; ``ws://`` → ``http://``; the path is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    mapped = {"wss": "https", "ws": "http"}.get(scheme.lower())
    if mapped is None:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    host = rest.split("/", 1)[0]
    return f"{mapped}://{host}"


def http_to_ws_url(url: str) -> str:
    """``https://…`` → ``wss://…`` and ``http://…`` → ``ws://…`` (path kept); other schemes are an error."""
    scheme, sep, rest = url.partition("://")
    mapped = {"https": "wss", "http": "ws"}.get(scheme.lower()) if sep else None
    if mapped is None:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    return f"{mapped}://{rest}"


def resolve_rpc_endpoint(control_url: str, rpc_endpoint: str) -> str:
    """Absolute ``http(s)://`` endpoints are used as is; a path is joined to the control URL's HTTP base
    (``http`` when the control URL is ``ws://``, else ``https``)."""
    lowered = rpc_endpoint.lower()
    if lowered.startswith("http://") or lowered.startswith("https://"):
        return rpc_endpoint
    scheme = "http" if control_url.lower().startswith("ws://") else "https"
    host = control_url.split("://", 1)[-1].split("/", 1)[0]
    return f"{scheme}://{host}/{rpc_endpoint.lstrip('/')}"
