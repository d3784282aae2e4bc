"""Per-session HTTP JSON-RPC 2.0 (PROTOCOL §9.6), answered from the session's state at its current position.

Served methods: getSlot, getBlockHeight, getAccountInfo, getBalance, getMultipleAccounts, getProgramAccounts,
getTransaction, getSignatureStatuses, getLatestBlockhash, getFeeForMessage, getMinimumBalanceForRentExemption,
getHealth, getVersion, sendTransaction, simulateTransaction, modifyAccounts. Batches (JSON arrays) are accepted.

Inferred choices (documented here, see PROTOCOL §9.6):

* ``context`` is ``{"slot": <session's current slot>, "apiVersion": "2.0.0"}``; the current slot is ``startSlot``
  until the first slot executes, then the last fully executed slot.
* Account ``encoding`` defaults to ``base64`` (the Solana default, legacy ``binary``, is not served); ``base58``
  and ``base64+zstd`` (when the ``zstandard`` module is present) are also served; ``jsonParsed`` falls back to
  base64 as Solana does for accounts it cannot parse.
* ``getTransaction`` returns transactions this session has executed (``json`` encoding only), else ``null``.
* ``getProgramAccounts`` applies the standard ``dataSize`` and ``memcmp`` (base58 or base64 bytes) filters to the
  full account data; any other filter is refused with -32602 rather than ignored.
* ``sendTransaction`` takes base64 by default (``{"encoding": "base58"}`` also accepted) and returns the
  transaction's first signature when the bytes look like a bincode transaction.
* Errors: unknown method -32601, bad params -32602, parse error -32700, completed / failed session -32004
  ``session completed``. An unknown session id is an HTTP 404 (with a -32001 JSON-RPC error body).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from . import wire
from .._base58 import b58decode, b58encode, is_pubkey
from .chain import BASE_FEE

if TYPE_CHECKING:  # pragma: no cover
    from .session import SimSession

API_VERSION = "2.0.0"


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(message: str) -> RpcError:
    return RpcError(-32602, f"Invalid params: {message}")


def _ctx(sess: "SimSession") -> Dict[str, Any]:
    return {"slot": sess.current_slot, "apiVersion": API_VERSION}


def _cfg(params: List[Any], index: int) -> Dict[str, Any]:
    if len(params) > index and params[index] is not None:
        if not isinstance(params[index], dict):
            raise _bad("configuration must be an object")
        return params[index]
    return {}


def _encode_account(acct: Optional[Dict[str, Any]], cfg: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if acct is None:
        return None
    enc = cfg.get("encoding") or "base64"
    if enc not in ("base64", "base58", "base64+zstd", "jsonParsed"):
        raise _bad(f"unsupported encoding {enc!r}")
    raw = base64.b64decode(acct["data"][0])
    ds = cfg.get("dataSlice")
    if isinstance(ds, dict):
        off, length = ds.get("offset", 0), ds.get("length", len(raw))
        if not isinstance(off, int) or not isinstance(length, int):
            raise _bad("dataSlice offset/length must be integers")
        raw = raw[off:off + length]
    if enc == "base58":
        data: List[str] = [b58encode(raw), "base58"]
    elif enc == "base64+zstd":
        try:
            import zstandard  # type: ignore
        except ImportError:
            raise _bad("base64+zstd needs the zstandard module on the simulator side") from None
        data = [base64.b64encode(zstandard.ZstdCompressor().compress(raw)).decode(), "base64+zstd"]
    else:
        data = [base64.b64encode(raw).decode(), "base64"]
    out = dict(acct)
    out["data"] = data
    return out


def _pubkey(params: List[Any], index: int = 0) -> str:
    if len(params) <= index or not is_pubkey(params[index]):
        raise _bad("expected a base58 public key")
    return params[index]


def _decode_tx(params: List[Any]) -> bytes:
    if not params or not isinstance(params[0], str):
        raise _bad("expected an encoded transaction string")
    enc = _cfg(params, 1).get("encoding")
    text = params[0]
    if enc == "base58":
        try:
            return b58decode(text)
        except ValueError as exc:
            raise _bad(str(exc)) from None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if enc is None:
            try:
                return b58decode(text)
            except ValueError:
                pass
        raise _bad("transaction is not valid base64") from None


def _tx_signature(raw: bytes) -> str:
    sig = wire.decode_tx_signature(raw)
    if sig is not None:
        return sig
    return b58encode(hashlib.sha512(raw).digest())


# ---------------------------------------------------------------------------------------------------- methods
def m_getSlot(sess: "SimSession", params: List[Any]) -> Any:
    return sess.current_slot


def m_getBlockHeight(sess: "SimSession", params: List[Any]) -> Any:
    return sess.current_slot


def m_getHealth(sess: "SimSession", params: List[Any]) -> Any:
    return "ok"


def m_getVersion(sess: "SimSession", params: List[Any]) -> Any:
    return {"solana-core": API_VERSION, "feature-set": 0}


def m_getAccountInfo(sess: "SimSession", params: List[Any]) -> Any:
    addr = _pubkey(params)
    return {"context": _ctx(sess), "value": _encode_account(sess.account(addr), _cfg(params, 1))}


def m_getBalance(sess: "SimSession", params: List[Any]) -> Any:
    acct = sess.account(_pubkey(params))
    return {"context": _ctx(sess), "value": acct["lamports"] if acct else 0}


def m_getMultipleAccounts(sess: "SimSession", params: List[Any]) -> Any:
    if not params or not isinstance(params[0], list) or not all(is_pubkey(a) for a in params[0]):
        raise _bad("expected an array of base58 public keys")
    cfg = _cfg(params, 1)
    return {"context": _ctx(sess), "value": [_encode_account(sess.account(a), cfg) for a in params[0]]}


def _account_filter(f: Any) -> Callable[[bytes], bool]:
    """One ``getProgramAccounts`` filter (``dataSize`` or ``memcmp``, as Solana defines them) as a predicate on the
    account's full data."""
    if isinstance(f, dict) and len(f) == 1 and isinstance(f.get("dataSize"), int):
        size = f["dataSize"]
        return lambda raw: len(raw) == size
    if isinstance(f, dict) and len(f) == 1 and isinstance(f.get("memcmp"), dict):
        mc = f["memcmp"]
        off, text, enc = mc.get("offset"), mc.get("bytes"), mc.get("encoding") or "base58"
        if not isinstance(off, int) or off < 0 or not isinstance(text, str):
            raise _bad("memcmp needs an integer offset and a bytes string")
        if enc not in ("base58", "base64"):
            raise _bad(f"unsupported memcmp encoding {enc!r}")
        try:
            want = b58decode(text) if enc == "base58" else base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"memcmp bytes are not valid {enc}") from None
        return lambda raw: raw[off:off + len(want)] == want
    raise _bad(f"unsupported filter {json.dumps(f)[:100]} (dataSize and memcmp are served)")


def m_getProgramAccounts(sess: "SimSession", params: List[Any]) -> Any:
    pid = _pubkey(params)
    cfg = _cfg(params, 1)
    filters = cfg.get("filters") or []
    if not isinstance(filters, list):
        raise _bad("filters must be an array")
    preds = [_account_filter(f) for f in filters]
    addrs = set(sess.sim.chain.accounts_of(pid))
    addrs.update(a for a, (_pos, acct) in sess.overrides.items() if acct["owner"] == pid)
    out = []
    for a in sorted(addrs):
        acct = sess.account(a)
        if acct is not None and acct["owner"] == pid:
            if preds:
                raw = base64.b64decode(acct["data"][0])
                if not all(p(raw) for p in preds):
                    continue
            out.append({"pubkey": a, "account": _encode_account(acct, cfg)})
    if cfg.get("withContext"):
        return {"context": _ctx(sess), "value": out}
    return out


def _executed(sess: "SimSession", sig: Any) -> Optional[Any]:
    if not isinstance(sig, str):
        raise _bad("expected a base58 signature")
    loc = sess.sim.chain.locate_signature(sig)
    if loc is None or loc[0] < sess.start_slot or loc >= sess.pos:
        return None
    blk = sess.sim.chain.block(loc[0])
    return None if blk is None else blk.txs[loc[1]]


def m_getTransaction(sess: "SimSession", params: List[Any]) -> Any:
    if not params:
        raise _bad("expected a signature")
    cfg = params[1] if len(params) > 1 else {}
    enc = cfg if isinstance(cfg, str) else (cfg or {}).get("encoding") if isinstance(cfg, dict) else None
    if enc not in (None, "json"):
        raise _bad(f"the local simulator serves getTransaction in `json` encoding only (got {enc!r})")
    tx = _executed(sess, params[0])
    return None if tx is None else tx.value


def m_getSignatureStatuses(sess: "SimSession", params: List[Any]) -> Any:
    if not params or not isinstance(params[0], list):
        raise _bad("expected an array of signatures")
    out: List[Optional[Dict[str, Any]]] = []
    for sig in params[0]:
        tx = _executed(sess, sig)
        if tx is None:
            out.append(None)
        else:
            meta = tx.value["meta"]
            out.append({"slot": tx.slot, "confirmations": None, "err": meta["err"], "status": meta["status"],
                        "confirmationStatus": "finalized"})
    return {"context": _ctx(sess), "value": out}


def m_getLatestBlockhash(sess: "SimSession", params: List[Any]) -> Any:
    slot = sess.current_slot
    return {"context": _ctx(sess), "value": {"blockhash": sess.sim.chain.blockhash(slot),
                                              "lastValidBlockHeight": slot + 150}}


def m_getFeeForMessage(sess: "SimSession", params: List[Any]) -> Any:
    return {"context": _ctx(sess), "value": BASE_FEE}


def m_getMinimumBalanceForRentExemption(sess: "SimSession", params: List[Any]) -> Any:
    if not params or not isinstance(params[0], int):
        raise _bad("expected a data length")
    return (params[0] + 128) * 6960


def m_sendTransaction(sess: "SimSession", params: List[Any]) -> Any:
    raw = _decode_tx(params)
    sess.received_transactions.append(raw)
    sess.rpc_transactions.append(raw)
    sess.user_txs_pending += 1
    return _tx_signature(raw)


def m_simulateTransaction(sess: "SimSession", params: List[Any]) -> Any:
    _decode_tx(params)
    return {"context": _ctx(sess), "value": {"err": None, "logs": [], "accounts": None, "unitsConsumed": 0,
                                              "returnData": None}}


def m_modifyAccounts(sess: "SimSession", params: Any) -> Any:
    mods = params[0] if isinstance(params, list) and params else params
    if not isinstance(mods, dict):
        raise _bad("expected [{\"<base58>\": AccountData}]")
    try:
        parsed = {addr: wire.parse_account_data(addr, acct) for addr, acct in mods.items()}
    except wire.RequestError as exc:
        raise _bad(json.dumps(exc.params)) from None
    sess.apply_overrides(parsed)
    return None


METHODS: Dict[str, Callable[["SimSession", Any], Any]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("m_") and callable(fn)
}


def _one(sess: "SimSession", req: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        return {"jsonrpc": "2.0", "id": req.get("id") if isinstance(req, dict) else None,
                "error": {"code": -32600, "message": "Invalid request"}}
    rid = req.get("id")
    method = req["method"]
    params = req.get("params")
    if params is None:
        params = []
    try:
        fn = METHODS.get(method)
        if fn is None:
            raise RpcError(-32601, f"Method not found: {method}")
        if sess.finished:
            raise RpcError(-32004, f"session completed: {sess.id} ({sess.state}) no longer serves RPC")
        if method != "modifyAccounts" and not isinstance(params, list):
            raise _bad("params must be an array")
        result = fn(sess, params)
    except RpcError as exc:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": exc.code, "message": exc.message}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def handle_rpc(sess: "SimSession", body: bytes) -> str:
    """Answer one HTTP JSON-RPC body (single request or batch) for ``sess``."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return wire.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
    if isinstance(req, list):
        if not req:
            return wire.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}})
        return wire.dumps([_one(sess, r) for r in req])
    return wire.dumps(_one(sess, req))
