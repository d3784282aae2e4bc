"""Shared pieces of the command line: exit codes, the two CLI-level errors, one-line error text, the client."""
from __future__ import annotations

import argparse
from typing import Any, Optional

from ..runfile import RunFileError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

class UsageError(Exception):
    """Bad command-line input (exit 2)."""


class ConnectError(Exception):
    """The simulator could not be reached or refused us (exit 2)."""


def probe_reason(url: str, timeout: float = 5.0) -> Optional[str]:
    """Why ``url`` cannot be reached (None if it answers at all). The SDK's HttpStatusError keeps only the
    first 200 characters of the error, which often cuts off the actual reason."""
    import requests

    try:
        requests.get(url, timeout=timeout).close()
    except requests.RequestException as exc:
        return connection_reason(str(exc))
    return None


def connection_reason(text: str) -> str:
    """A short reason from a requests/urllib3 connection error text."""
    low = text.lower()
    for needle, reason in (("refused", "connection refused"), ("name or service not known", "unknown host"),
                           ("nodename nor servname", "unknown host"), ("failed to resolve", "unknown host"),
                           ("timed out", "timed out"), ("certificate", "TLS certificate error"),
                           ("ssl", "TLS error"), ("reset by peer", "connection reset")):
        if needle in low:
            return reason
    return text if len(text) <= 120 else text[:117] + "..."


def _one_line(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip()
    from ..errors import SimclientError

    from ..errors import HttpStatusError

    if isinstance(exc, HttpStatusError) and exc.status == 0:
        return f"cannot reach {exc.url} ({probe_reason(exc.url) or connection_reason(exc.body)})"
    if isinstance(exc, (ConnectError, UsageError, SimclientError, RunFileError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client(args: argparse.Namespace, url: Optional[str] = None, api_key: Optional[str] = None) -> Any:
    from .. import Client, ClientConfig

    config = ClientConfig(log_frames=True) if getattr(args, "log_frames", False) else None
    return Client(url or args.url, api_key if api_key is not None else args.api_key, config)




def add_global_options(parser: argparse.ArgumentParser, target: bool = True) -> None:
    """The global options, accepted after the command too (``simclient run --url URL ...``). SUPPRESS defaults:
    given only before the command, the global value stays."""
    if target:
        parser.add_argument("--url", default=argparse.SUPPRESS, help="as the global --url (env SIMULATOR_URL)")
        parser.add_argument("--api-key", default=argparse.SUPPRESS,
                            help="as the global --api-key (env SIMULATOR_API_KEY). Never printed.")
        parser.add_argument("--log-frames", action="store_true", default=argparse.SUPPRESS,
                            help="as the global --log-frames")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="as the global -v/-vv")
