"""Per-session Solana JSON-RPC over HTTP (``requests``), and ``GET /available-ranges``.

The endpoint needs no API key (PROTOCOL.md §1). Reads are valid from the first ``ReadyForContinue`` and the
endpoint stops serving once the session completes. JSON-RPC errors raise :class:`RpcError` with the server's
code and message; transport failures and non-JSON bodies raise :class:`HttpStatusError` / :class:`ProtocolError`.
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import requests
import tenacity

from . import protocol as wire
from ._version import __version__
from .errors import HttpStatusError, ProtocolError, RpcError
from .protocol import AccountData, AvailableRange

log = logging.getLogger("simclient.rpc")

_HEADERS = {"Content-Type": "application/json", "User-Agent": f"simclient-python/{__version__}"}


class RpcClient:
    """A small JSON-RPC 2.0 client bound to one session's ``rpc_endpoint``. Thread-safe."""

    def __init__(self, endpoint: str, timeout: float = 30.0, session: Optional[requests.Session] = None):
        self.endpoint = endpoint
        self.timeout = timeout
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
            resp = self._http.post(self.endpoint, data=wire.dumps(body), headers=_HEADERS, timeout=self.timeout)
        except requests.RequestException as exc:
            raise HttpStatusError(self.endpoint, 0, f"{type(exc).__name__}: {exc}") from None
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
        return self._value(self.call("getAccountInfo", [str(address), {"encoding": encoding}]))

    def get_account(self, address: str) -> Optional[AccountData]:
        ui = self.get_account_info(address)
        return None if ui is None else AccountData.from_ui_account(ui)

    def get_multiple_accounts(self, addresses: Sequence[str], encoding: str = "base64") -> List[Optional[Dict]]:
        return list(self._value(self.call("getMultipleAccounts", [[str(a) for a in addresses],
                                                                  {"encoding": encoding}])))

    def get_transaction(self, signature: str, encoding: str = "json") -> Optional[Dict[str, Any]]:
        return self.call("getTransaction", [str(signature), {"encoding": encoding,
                                                             "maxSupportedTransactionVersion": 0}])

    def get_latest_blockhash(self) -> Dict[str, Any]:
        return self._value(self.call("getLatestBlockhash"))

    def send_transaction(self, tx: Union[str, bytes, Any]) -> str:
        """Execute a transaction now, in the current slot (solders object, bytes or base64)."""
        from .builders import _transaction_to_b64

        return str(self.call("sendTransaction", [_transaction_to_b64(tx), {"encoding": "base64"}]))

    def simulate_transaction(self, tx: Union[str, bytes, Any]) -> Dict[str, Any]:
        from .builders import _transaction_to_b64

        return self._value(self.call("simulateTransaction", [_transaction_to_b64(tx), {"encoding": "base64"}]))

    def modify_accounts(self, accounts: Mapping[str, AccountData]) -> Any:
        """The custom ``modifyAccounts`` method: ``[{address: AccountData}]``."""
        return self.call("modifyAccounts", [{str(k): wire.encode_account_data(v) for k, v in accounts.items()}])


def fetch_available_ranges(http_base: str, timeout: float, retries: int) -> List[AvailableRange]:
    """``GET {http_base}/available-ranges`` with retries on connection errors and 5xx."""
    url = f"{http_base}/available-ranges"

    class _Retry(Exception):
        pass

    def attempt() -> List[AvailableRange]:
        try:
            resp = requests.get(url, headers={"User-Agent": _HEADERS["User-Agent"]}, timeout=timeout)
        except requests.RequestException as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code >= 500:
            raise _Retry(f"HTTP {resp.status_code}")
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
        raise HttpStatusError(url, 0, str(exc)) from None
