"""The simulator's own encoding of the control protocol (PROTOCOL.md §2–§5), independent of the client SDK.

Output follows the spec exactly: adjacent tagging ``{"method", "params"}`` with camelCase variant names, unit
variants without ``params``, struct-variant keys in snake_case (``session_id``, ``rpc_endpoint``...), payload structs
in camelCase (``batchIndex``, ``transactionIndices``...), ``error`` params externally tagged
(``{"invalidRequest":{"error":"..."}}``), and ``seqId`` at the top level of a sequenced frame. Frames are compact
JSON (``separators=(",", ":")``) so identical inputs give byte-identical streams.

Input is lenient, per PROTOCOL §12: method names in any casing (``continueSessionV1``, ``ContinueSessionV1``,
``continue_session_v1``); struct keys in snake_case or camelCase (L1, L2); ``*V1`` inner params nested under
``request`` or ``params``, or flattened next to the session id (L3); ``null`` equals an absent key; unknown keys
ignored (this includes the pre-0.23 fields ``preloadPrograms``, ``accountEvents``, ``agents``...).
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .._base58 import b58decode, is_pubkey

_MISSING: Any = object()


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------- output
def frame(method: str, params: Any = _MISSING) -> str:
    """A control frame; ``params`` omitted for unit variants (PROTOCOL §2)."""
    if params is _MISSING:
        return '{"method":%s}' % dumps(method)
    return '{"method":%s,"params":%s}' % (dumps(method), dumps(params))


READY = frame("readyForContinue")
SUCCESS = frame("success")
_STATUS_CACHE: Dict[str, str] = {}


def status(name: str) -> str:
    text = _STATUS_CACHE.get(name)
    if text is None:
        text = _STATUS_CACHE[name] = frame("status", {"status": name})
    return text


def slot_notification(slot: int) -> str:
    return '{"method":"slotNotification","params":%d}' % slot


def error(params: Any) -> str:
    """An ``error`` frame; ``params`` is a BacktestError (externally tagged dict, or a bare unit-variant string)."""
    return frame("error", params)


def invalid_request(message: str) -> str:
    return error({"invalidRequest": {"error": message}})


def session_created(method: str, session_id: str, task_id: Optional[str]) -> str:
    """``sessionCreated`` / ``sessionAttached`` (struct variant: snake_case keys)."""
    return frame(method, {"session_id": session_id, "rpc_endpoint": f"/backtest/{session_id}", "task_id": task_id})


def with_seq(seq_id: int, text: str) -> str:
    """Add the top-level ``seqId`` of a SequencedResponse (PROTOCOL §2.1) to a serialised frame."""
    return '{"seqId":%d,%s' % (seq_id, text[1:])


def session_event(session_id: str, seq_id: int, event_text: str) -> str:
    """``sessionEventV2{session_id, seq_id, event}`` around an already serialised event frame (PROTOCOL §4.1)."""
    return '{"method":"sessionEventV2","params":{"session_id":%s,"seq_id":%d,"event":%s}}' % (
        dumps(session_id), seq_id, event_text)


# ---------------------------------------------------------------------------------------------------- input
class RequestError(Exception):
    """A request the server refuses; ``params`` is the BacktestError to send in an ``error`` frame."""

    def __init__(self, params: Any):
        super().__init__(str(params))
        self.params = params


def invalid(message: str) -> RequestError:
    return RequestError({"invalidRequest": {"error": message}})


METHODS = (
    "createBacktestSession", "continue", "continueTo", "continueSessionV1", "continueToSessionV1",
    "closeBacktestSession", "closeSessionV1", "attachBacktestSession", "resumeAttachedSession",
    "attachParallelControlSessionV2",
)
_METHOD_INDEX = {m.lower(): m for m in METHODS}


def _norm_key(name: str) -> str:
    return name.replace("_", "").lower()


def canonical_method(name: Any) -> Optional[str]:
    if not isinstance(name, str):
        return None
    return _METHOD_INDEX.get(_norm_key(name))


def parse_frame(text: str) -> Tuple[str, Any]:
    """Decode one request frame into (canonical method, params). Raises RequestError (invalidRequest)."""
    try:
        msg = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise invalid(f"malformed JSON request: {exc}") from None
    if not isinstance(msg, dict):
        raise invalid("request must be a JSON object with a `method`")
    raw = msg.get("method")
    method = canonical_method(raw)
    if method is None:
        raise invalid(f"unknown variant `{raw}`" if isinstance(raw, str) else "missing field `method`")
    return method, msg.get("params")


def get(d: Dict[str, Any], name: str, default: Any = None) -> Any:
    """Look ``name`` up in either casing (``startSlot`` == ``start_slot``); null counts as absent."""
    if name in d and d[name] is not None:
        return d[name]
    want = _norm_key(name)
    for k, v in d.items():
        if isinstance(k, str) and _norm_key(k) == want and v is not None:
            return v
    return default


def _int(d: Dict[str, Any], name: str, *, required: bool = False, default: Any = None, maximum: int = 2 ** 64 - 1
         ) -> Any:
    v = get(d, name, _MISSING)
    if v is _MISSING:
        if required:
            raise invalid(f"missing field `{name}`")
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        raise invalid(f"invalid type for `{name}`: expected an unsigned integer")
    if v < 0 or v > maximum:
        raise invalid(f"invalid value for `{name}`: {v} is out of range 0..={maximum}")
    return v


def _bool(d: Dict[str, Any], name: str) -> bool:
    v = get(d, name, False)
    if not isinstance(v, bool):
        raise invalid(f"invalid type for `{name}`: expected a boolean")
    return v


def _list(d: Dict[str, Any], name: str) -> List[Any]:
    v = get(d, name, [])
    if not isinstance(v, list):
        raise invalid(f"invalid type for `{name}`: expected an array")
    return v


def _obj(params: Any, what: str) -> Dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid(f"invalid type for the params of `{what}`: expected an object")
    return params


MAX_DISCONNECT_TIMEOUT_SECS = 900


@dataclass
class CreateRequest:
    start_slot: int
    end_slot: int
    parallel: bool = False
    send_summary: bool = False
    disconnect_timeout_secs: int = 0
    capacity_wait_timeout_secs: int = 0
    extra_compute_units: Optional[int] = None
    signer_filter: List[str] = field(default_factory=list)
    discoveries: List[Dict[str, Any]] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict)
    replay_account_state: bool = False
    actions: List[Any] = field(default_factory=list)    # simclient.local.actions.ParsedAction
    account_overrides: Dict[int, Dict[str, Dict[str, Any]]] = field(default_factory=dict)  # slot -> UiAccounts


def _discovery(f: Any) -> Dict[str, Any]:
    if isinstance(f, dict) and len(f) == 1:
        (k, v), = f.items()
        nk = _norm_key(k) if isinstance(k, str) else ""
        if nk == "programexecuted":
            if not is_pubkey(v):
                raise invalid(f"invalid programExecuted address: {v!r}")
            return {"programExecuted": v}
        if nk == "oracleupdate" and isinstance(v, dict):
            programs = v.get("programs") or []
            accounts = v.get("accounts") or []
            if not isinstance(programs, list) or not isinstance(accounts, list) or not all(
                    is_pubkey(x) for x in programs + accounts):
                raise invalid("invalid oracleUpdate filter: `programs` and `accounts` must be base58 address arrays")
            return {"oracleUpdate": {"programs": programs, "accounts": accounts}}
    raise invalid(f"unknown discovery filter: {dumps(f)}")


def parse_create(params: Any) -> CreateRequest:
    """CreateBacktestSessionRequest (untagged V1 = params + `parallel`, else V0), validated (PROTOCOL §3.1)."""
    p = _obj(params, "createBacktestSession")
    start = _int(p, "startSlot", required=True)
    end = _int(p, "endSlot", required=True)
    if end < start:
        raise invalid(f"endSlot < startSlot ({end} < {start})")
    dts = _int(p, "disconnectTimeoutSecs", default=0, maximum=65535)
    if dts > MAX_DISCONNECT_TIMEOUT_SECS:
        raise invalid(f"disconnectTimeoutSecs must be <= {MAX_DISCONNECT_TIMEOUT_SECS} (got {dts})")
    signers = _list(p, "signerFilter")
    if not all(is_pubkey(s) for s in signers):
        raise invalid("invalid value for `signerFilter`: expected base58 addresses")
    from .actions import parse_actions  # scheduled actions (PROTOCOL §3.1.1) live in their own module

    replay_state = _bool(p, "replayAccountState")
    actions = parse_actions(_list(p, "actions"), replay_state)
    return CreateRequest(
        start_slot=start, end_slot=end, parallel=_bool(p, "parallel"), send_summary=_bool(p, "sendSummary"),
        disconnect_timeout_secs=dts, capacity_wait_timeout_secs=_int(p, "capacityWaitTimeoutSecs", default=0,
                                                                     maximum=65535),
        extra_compute_units=_int(p, "extraComputeUnits", maximum=2 ** 32 - 1), signer_filter=list(signers),
        discoveries=[_discovery(f) for f in _list(p, "discoveries")], raw=p, replay_account_state=replay_state,
        actions=actions,
        account_overrides=_create_overrides(get(p, "accountOverrides")))



def _create_overrides(raw: Any) -> Dict[int, Dict[str, Dict[str, Any]]]:
    """``accountOverrides`` of a create (the Rust builder's ``add_override(slot, AccountModifications)``; the
    wire form is inferred): ``{"<slot>": {"<base58>": AccountData}}``, applied from that slot on."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid("invalid type for `accountOverrides`: expected an object of slot -> accounts")
    out: Dict[int, Dict[str, Dict[str, Any]]] = {}
    for key, accounts in raw.items():
        try:
            slot = int(key)
        except (TypeError, ValueError):
            raise invalid(f"invalid `accountOverrides` slot {key!r}: expected a u64") from None
        if slot < 0 or not isinstance(accounts, dict):
            raise invalid(f"invalid `accountOverrides` entry for slot {key!r}")
        out[slot] = {addr: parse_account_data(addr, acct) for addr, acct in accounts.items()}
    return out


@dataclass
class ContinueRequest:
    advance_count: int = 1
    transactions: List[bytes] = field(default_factory=list)
    modify: Dict[str, Dict[str, Any]] = field(default_factory=dict)   # address -> UiAccount


def parse_account_data(address: Any, acct: Any) -> Dict[str, Any]:
    """Validate an ``AccountData`` (PROTOCOL §5.1) and return it as a UiAccount (base64 data)."""
    if not is_pubkey(address):
        raise RequestError({"invalidAccountPubkey": {"address": str(address), "error": "not a base58 32-byte key"}})
    if not isinstance(acct, dict):
        raise RequestError({"invalidAccountEncoding": {"address": address, "encoding": "base64",
                                                       "error": "account data must be an object"}})
    data = get(acct, "data", {"data": "", "encoding": "base64"})
    if isinstance(data, list) and len(data) == 2:      # lenient: UiAccount style [b64, "base64"]
        data = {"data": data[0], "encoding": data[1]}
    enc = data.get("encoding", "base64") if isinstance(data, dict) else None
    if not isinstance(data, dict) or enc != "base64" or not isinstance(data.get("data"), str):
        raise RequestError({"invalidAccountEncoding": {"address": address, "encoding": str(enc),
                                                       "error": "expected {\"data\": <base64>, \"encoding\": \"base64\"}"}})
    try:
        raw = base64.b64decode(data["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError({"invalidAccountEncoding": {"address": address, "encoding": "base64",
                                                       "error": str(exc)}}) from None
    owner = get(acct, "owner", "11111111111111111111111111111111")
    if not is_pubkey(owner):
        raise RequestError({"invalidAccountOwner": {"address": address, "error": f"invalid owner {owner!r}"}})
    lamports = _int(acct, "lamports", default=0)
    executable = get(acct, "executable", False)
    if not isinstance(executable, bool):
        raise invalid("invalid type for `executable`: expected a boolean")
    return {"lamports": lamports, "data": [base64.b64encode(raw).decode(), "base64"], "owner": owner,
            "executable": executable, "rentEpoch": 18446744073709551615, "space": len(raw)}


def parse_continue(params: Any) -> ContinueRequest:
    p = _obj(params, "continue")
    advance = _int(p, "advanceCount", default=1)
    if advance < 1:
        raise invalid("advanceCount must be >= 1")
    txs = []
    for i, t in enumerate(_list(p, "transactions")):
        if not isinstance(t, str):
            raise RequestError({"invalidTransactionEncoding": {"index": i, "error": "expected a base64 string"}})
        try:
            txs.append(base64.b64decode(t, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise RequestError({"invalidTransactionEncoding": {"index": i, "error": str(exc)}}) from None
    mods_raw = get(p, "modifyAccountStates", {})
    if not isinstance(mods_raw, dict):
        raise invalid("invalid type for `modifyAccountStates`: expected an object")
    mods = {addr: parse_account_data(addr, acct) for addr, acct in mods_raw.items()}
    return ContinueRequest(advance, txs, mods)


def parse_continue_to(params: Any) -> Tuple[int, int]:
    p = _obj(params, "continueTo")
    return _int(p, "slot", required=True), _int(p, "batchIndex", default=0, maximum=2 ** 32 - 1)


def split_v1(params: Any, what: str) -> Tuple[str, Any]:
    """(session id, inner params) of a ``*SessionV1`` request (L1 + L3)."""
    p = _obj(params, what)
    sid = get(p, "sessionId")
    if not isinstance(sid, str):
        raise invalid(f"missing field `sessionId` in `{what}`")
    inner = get(p, "request", _MISSING)
    if inner is _MISSING:
        inner = get(p, "params", _MISSING)
    if inner is _MISSING:
        inner = {k: v for k, v in p.items() if _norm_key(k) != "sessionid"}
    return sid, inner


def parse_attach(params: Any) -> Tuple[str, Optional[int]]:
    p = _obj(params, "attachBacktestSession")
    sid = get(p, "sessionId")
    if not isinstance(sid, str):
        raise invalid("missing field `session_id`")
    return sid, _int(p, "lastSequence")


def parse_parallel_attach(params: Any) -> Tuple[str, Dict[str, int]]:
    p = _obj(params, "attachParallelControlSessionV2")
    cid = get(p, "controlSessionId")
    if not isinstance(cid, str):
        raise invalid("missing field `control_session_id`")
    seqs = get(p, "lastSequences", {})
    if not isinstance(seqs, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in seqs.values()):
        raise invalid("invalid type for `last_sequences`: expected an object of session id -> u64")
    return cid, dict(seqs)


def decode_tx_signature(raw: bytes) -> Optional[str]:
    """The first signature of a bincode ``VersionedTransaction`` (shortvec count, then 64-byte signatures)."""
    from .._base58 import b58encode
    if len(raw) >= 65 and 1 <= raw[0] < 0x80:
        return b58encode(raw[1:65])
    return None


__all__ = [
    "dumps", "frame", "READY", "SUCCESS", "status", "slot_notification", "error", "invalid_request",
    "session_created", "with_seq", "session_event", "RequestError", "invalid", "parse_frame", "parse_create",
    "parse_continue", "parse_continue_to", "split_v1", "parse_attach", "parse_parallel_attach", "CreateRequest",
    "ContinueRequest", "parse_account_data", "get", "b58decode", "decode_tx_signature",
]
