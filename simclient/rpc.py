"""Per-session Solana JSON-RPC over HTTP (``requests``), and ``GET /available-ranges``.

The endpoint needs no API key (PROTOCOL.md §1). Reads are valid from the first ``ReadyForContinue`` and the
endpoint stops serving once the session completes. JSON-RPC errors raise :class:`RpcError` with the server's
code and message; a non-2xx status :class:`HttpStatusError`, a non-JSON body :class:`ProtocolError`, a failure below
HTTP (refused, reset, DNS, timeout) :class:`HttpConnectionError`, a certificate that does not verify
:class:`TlsVerificationError`. Redirects are never followed (:class:`RedirectRefusedError`): requests strips
``Authorization`` across hosts but would forward any other header, and the answer belongs to the URL asked.
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union, cast

import requests
import tenacity

from . import protocol as wire
from ._version import __version__
from .errors import (
    HttpConnectionError,
    HttpStatusError,
    ProtocolError,
    RedirectRefusedError,
    RpcError,
    TlsVerificationError,
)
from .protocol import AccountData, AvailableRange

log = logging.getLogger("simclient.rpc")

_HEADERS = {"Content-Type": "application/json", "User-Agent": f"simclient-python/{__version__}"}


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _verify(ca_bundle: Optional[str]) -> Union[bool, str]:
    """``requests``' ``verify``: always on; a CA bundle path when one is configured."""
    return str(ca_bundle) if ca_bundle else True


def _transport_error(url: str, exc: requests.RequestException, ca_bundle: Optional[str]) -> Exception:
    """The typed error for a request that failed below HTTP."""
    if isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname or url
        where = f"the CA bundle {ca_bundle}" if ca_bundle else "the default CA store (certifi, or REQUESTS_CA_BUNDLE)"
        return TlsVerificationError(
            f"the TLS certificate of {host} did not verify against {where}. Verification stays on; if the server "
            "uses a private CA, point simclient at a PEM bundle that contains it: ClientConfig(ca_bundle=PATH), or "
            "REQUESTS_CA_BUNDLE=PATH (HTTP) and SSL_CERT_FILE=PATH (WebSocket)")
    return HttpConnectionError(url, f"{type(exc).__name__}: {exc}")


def _refuse_redirect(url: str, resp: requests.Response) -> None:
    """Raise RedirectRefusedError for a 3xx answer (naming only the Location's host, never a query or userinfo)."""
    if resp.status_code not in _REDIRECTS:
        return
    from urllib.parse import urlsplit

    location = resp.headers.get("Location", "")
    target = urlsplit(location)
    if target.hostname:
        where = f"to {target.scheme + '://' if target.scheme else ''}{target.hostname}" + (
            f":{target.port}" if target.port else "")
    else:
        where = f"to path {target.path or '/'} on the same host" if location else "without a Location"
    raise RedirectRefusedError(f"{url} answered HTTP {resp.status_code}, a redirect {where}: simclient never "
                               "follows redirects; use the final URL instead")


class RpcClient:
    """A small JSON-RPC 2.0 client bound to one session's ``rpc_endpoint``. Thread-safe."""

    def __init__(self, endpoint: str, timeout: float = 30.0, session: Optional[requests.Session] = None,
                 ca_bundle: Optional[str] = None):
        self.endpoint = endpoint
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self._http = session or requests.Session()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RpcClient({self.endpoint!r})"

    def close(self) -> None:
        """Close every pooled connection now. urllib3 2's ``PoolManager.clear()`` (what ``requests.Session.close()``
        calls) leaves that to the garbage collector, so a socket outlived the session whenever something still
        referenced its pool, e.g. a kept RpcError's traceback."""
        for adapter in self._http.adapters.values():
            manager = getattr(adapter, "poolmanager", None)
            if manager is not None:
                for key in list(manager.pools.keys()):
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pool.close()
        self._http.close()

    def call(self, method: str, params: Optional[Sequence[Any]] = None) -> Any:
        """One JSON-RPC call; returns ``result`` or raises :class:`RpcError`."""
        with self._lock:
            request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params or [])}
        try:
            resp = self._http.post(self.endpoint, data=wire.dumps(body), headers=_HEADERS, timeout=self.timeout,
                                   allow_redirects=False, verify=_verify(self.ca_bundle))
        except requests.RequestException as exc:
            raise _transport_error(self.endpoint, exc, self.ca_bundle) from None
        _refuse_redirect(self.endpoint, resp)
        try:
            payload = wire.loads(resp.content)
        except ValueError:
            if resp.status_code >= 400:
                raise HttpStatusError(self.endpoint, resp.status_code, resp.text) from None
            raise ProtocolError(f"{method}: response is not JSON", resp.text) from None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            err = payload["error"]
            code = err.get("code")
            raise RpcError(code if isinstance(code, int) else -1, str(err.get("message", "")), err.get("data"),
                           method)
        if resp.status_code >= 400:
            raise HttpStatusError(self.endpoint, resp.status_code, resp.text)
        if not isinstance(payload, dict) or "result" not in payload:
            raise ProtocolError(f"{method}: response has neither result nor error", resp.text)
        return payload["result"]

    # ------------------------------------------------------------------ typed helpers

    @staticmethod
    def _value(result: Any) -> Any:
        if isinstance(result, dict) and "value" in result and "context" in result:
            return result["value"]
        return result

    def get_slot(self) -> int:
        return int(self.call("getSlot"))

    def get_balance(self, address: str) -> int:
        return int(self._value(self.call("getBalance", [str(address)])))

    def get_account_info(self, address: str, encoding: str = "base64") -> Optional[Dict[str, Any]]:
        """The ``UiAccount`` dict (or None). ``AccountData.from_ui_account`` decodes it."""
        return cast(Optional[Dict[str, Any]],
                    self._value(self.call("getAccountInfo", [str(address), {"encoding": encoding}])))

    def get_account(self, address: str) -> Optional[AccountData]:
        ui = self.get_account_info(address)
        return None if ui is None else AccountData.from_ui_account(ui)

    def get_multiple_accounts(self, addresses: Sequence[str], encoding: str = "base64") -> List[Optional[Dict[str, Any]]]:
        return list(self._value(self.call("getMultipleAccounts", [[str(a) for a in addresses],
                                                                  {"encoding": encoding}])))

    def get_transaction(self, signature: str, encoding: str = "json") -> Optional[Dict[str, Any]]:
        return cast(Optional[Dict[str, Any]],
                    self.call("getTransaction", [str(signature), {"encoding": encoding,
                                                                  "maxSupportedTransactionVersion": 0}]))

    def get_latest_blockhash(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._value(self.call("getLatestBlockhash")))

    def send_transaction(self, tx: Union[str, bytes, Any]) -> str:
        """Execute a transaction now, in the current slot (solders object, bytes or base64)."""
        from .builders import _transaction_to_b64

        return str(self.call("sendTransaction", [_transaction_to_b64(tx), {"encoding": "base64"}]))

    def simulate_transaction(self, tx: Union[str, bytes, Any]) -> Dict[str, Any]:
        from .builders import _transaction_to_b64

        return cast(Dict[str, Any],
                    self._value(self.call("simulateTransaction", [_transaction_to_b64(tx), {"encoding": "base64"}])))

    def modify_accounts(self, accounts: Mapping[str, AccountData]) -> Any:
        """The custom ``modifyAccounts`` method: ``[{address: AccountData}]``."""
        return self.call("modifyAccounts", [{str(k): wire.encode_account_data(v) for k, v in accounts.items()}])


def fetch_available_ranges(http_base: str, timeout: float, retries: int,
                           ca_bundle: Optional[str] = None) -> List[AvailableRange]:
    """``GET {http_base}/available-ranges`` with retries on connection errors and 5xx (not on a certificate that
    does not verify, nor on a redirect, which are never followed)."""
    url = f"{http_base}/available-ranges"

    class _Retry(Exception):
        def __init__(self, error: Exception):
            super().__init__(str(error))
            self.error = error

    def attempt() -> List[AvailableRange]:
        try:
            resp = requests.get(url, headers={"User-Agent": _HEADERS["User-Agent"]}, timeout=timeout,
                                allow_redirects=False, verify=_verify(ca_bundle))
        except requests.RequestException as exc:
            error = _transport_error(url, exc, ca_bundle)
            if isinstance(error, TlsVerificationError):
                raise error from None
            raise _Retry(error) from None
        _refuse_redirect(url, resp)
        if resp.status_code >= 500:
            raise _Retry(HttpStatusError(url, resp.status_code, resp.text))
        if resp.status_code >= 400:
            raise HttpStatusError(url, resp.status_code, resp.text)
        try:
            body = wire.loads(resp.content)
        except ValueError:
            raise ProtocolError("available-ranges: response is not JSON", resp.text) from None
        return wire.decode_available_ranges(body)

    try:
        return tenacity.Retrying(retry=tenacity.retry_if_exception_type(_Retry),
                                 stop=tenacity.stop_after_attempt(max(1, retries)),
                                 wait=tenacity.wait_exponential(multiplier=0.2, max=2), reraise=True)(attempt)
    except _Retry as exc:
        raise exc.error from None
