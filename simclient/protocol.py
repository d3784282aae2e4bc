"""The wire format, in one place: encode requests, decode responses (PROTOCOL.md §2–§5, §8, §9, §12).

Everything the SDK puts on or takes off a socket goes through this module. Inferred ([I]) readings of the spec are
collected here, each with the rule it follows:

* Requests: adjacent tagging ``{"method", "params"}``; struct-variant keys snake_case (L1: ``session_id``,
  ``last_sequence``, ``control_session_id``, ``last_sequences``); payload structs camelCase (L2); the ``*V1``
  per-session requests in the §3.5 superset form (both id casings, params nested under ``request`` *and* flattened
  beside it), or the minimal form (``session_id`` + nested ``request``) once a server answered "duplicate field"
  (:class:`V1Form`, the one place that decides); ``parallel`` flattened beside the create params (§3.1);
  ``slot_count`` becomes ``endSlot = startSlot + slotCount`` (§3.1); ``continueTo`` extras merged into its params
  (§3.3).
* Responses: both casings accepted for every key (L1, L2); ``seqId`` popped from the top level (§2.1);
  ``sessionEventV2.event`` uses the same ``method``/``params`` envelope (§4.1); ``params: null`` equals absent.
* Errors (L4): an externally tagged object (any casing of the variant), a bare string, or ``{"code"|"type": …}``,
  normalised to ``BacktestError(variant=PascalCase, fields)``. Terminal vs transient per §10.1, in
  :data:`TERMINAL_VARIANTS` / :data:`TRANSIENT_VARIANTS`; unknown variants are terminal. The §7.1 "continue while
  busy" ``invalidRequest`` is the one non-terminal ``InvalidRequest`` (:func:`is_continue_busy`).
* Subscriptions (§9): ``transactionSubscribe`` filter ``{"programs": [...]}``; ``accountDiffSubscribe`` one
  request per program with ``{"address", "address_type": "program"}``; ``replayFromSlot`` inclusive; notification
  ``result`` either ``{context, value}`` or bare (L5); end of stream is a ``subscriptionComplete`` message (with or
  without ``params.subscription``) or, from older servers, a notification whose ``result`` is ``null`` (§9.5);
  error -32016 is the replay-window refusal (§9.3).
* Ranges (§1.3): every key read in both casings, ``snapshotSlot``/``snapshotSlotUtc`` kept, unknown ``kind`` /
  ``scope`` strings passed through. Ids are opaque strings everywhere (never parsed).
* Unknown methods decode to :class:`Unknown` (L6); callers log and skip them. Anything else malformed raises
  :class:`~simclient.errors.ProtocolError` (raw text truncated to 200 chars) and never another exception type.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from . import events as ev
from ._base58 import b58encode
from .errors import ProtocolError

#: ``SIMCLIENT_JSON=json`` (read once, at import) forces the stdlib ``json`` module even when orjson is installed,
#: e.g. to compare the two backends (``benchmarks/bench_throughput.py`` does).
_FORCE_STDLIB_JSON = os.environ.get("SIMCLIENT_JSON", "").strip().lower() in ("json", "stdlib")

#: ``SIMCLIENT_JSON=orjson`` keeps orjson but not msgspec (to compare the two notification readers).
_NO_MSGSPEC = _FORCE_STDLIB_JSON or os.environ.get("SIMCLIENT_JSON", "").strip().lower() == "orjson"

_orjson: Any = None
if not _FORCE_STDLIB_JSON:
    try:  # optional speed-up (extra ``fast``)
        import orjson as _orjson  # type: ignore[import-not-found, no-redef, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        _orjson = None

_msgspec: Any = None
if not _NO_MSGSPEC:
    try:  # optional speed-up (extra ``fast``): the transaction reader's typed decode (read_transaction_frame)
        import msgspec as _msgspec  # type: ignore[import-not-found, no-redef, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        _msgspec = None

__all__ = [
    "loads", "dumps", "JSON_BACKEND",
    "BacktestError", "AccountData", "AvailableRange",
    "SessionCreated", "SessionAttached", "SessionsCreatedV2", "ParallelSessionAttachedV2", "Success",
    "SessionEventV2", "Unknown", "Frame",
    "decode_response", "decode_error", "decode_available_ranges",
    "encode_create", "encode_continue", "encode_continue_to", "encode_close", "encode_attach", "encode_resume",
    "encode_attach_parallel", "encode_continue_v1", "encode_continue_to_v1", "encode_close_v1",
    "encode_account_data", "encode_continue_params", "V1_METHODS", "V1Form", "minimal_v1", "is_duplicate_field",
    "TERMINAL_VARIANTS", "TRANSIENT_VARIANTS", "RETRY_ONCE_VARIANTS", "is_continue_busy",
    "REPLAY_WINDOW_ERROR_CODE",
    "encode_subscribe", "SubscribeAck", "RpcErrorReply", "Notification", "SubscriptionComplete",
    "decode_subscription_frame", "is_early_complete",
    "transaction_from_result", "account_diff_from_result",
    "encode_scheduled_action", "encode_action_transactions", "ACTION_TRANSACTIONS_ENCODING",
    "action_filter", "action_result_from_result",
]

# --------------------------------------------------------------------------------------------------------- JSON

JSON_BACKEND = "orjson" if _orjson is not None else "json"


_json_decoder = json.JSONDecoder()  # what json.loads(str) uses
_json_decode = _json_decoder.decode
# the decoder's C scanner, set in JSONDecoder.__init__ (typeshed does not declare it)
_json_scan: Callable[[str, int], Tuple[Any, int]] = _json_decoder.scan_once  # type: ignore[attr-defined]


def _loads_str(text: str) -> Any:
    """``json.loads(text)`` for a ``str``: the decoder's C scanner straight from index 0, which is all that
    ``JSONDecoder.decode`` adds two whitespace regex matches around; leading or trailing whitespace, extra data and
    every error go through ``decode`` itself (its result, its exception)."""
    try:
        obj, end = _json_scan(text, 0)
    except StopIteration:
        return _json_decode(text)
    return obj if end == len(text) else _json_decode(text)


def loads(text: Union[str, bytes]) -> Any:
    if _orjson is not None:
        return _orjson.loads(text)
    if type(text) is bytes and len(text) >= 4 and 0 < text[0] < 0x80 and text[1]:
        # bytes json.detect_encoding reads as UTF-8 (no BOM, no UTF-16/32 zero bytes up front): decoded here as
        # json.loads(bytes) decodes them (same errors), then parsed as a str; json.loads(bytes) would run
        # detect_encoding in Python on every frame (0.4-0.6 us of a 1.5 us control frame)
        return _loads_str(text.decode("utf-8", "surrogatepass"))
    if type(text) is str and text[:1] != "\ufeff":
        return _loads_str(text)
    return json.loads(text)


def dumps(obj: Any) -> str:
    if _orjson is not None:
        text: str = _orjson.dumps(obj).decode()
        return text
    return json.dumps(obj, separators=(",", ":"))


def _raw(obj: Any) -> str:
    """Best-effort text of a decoded value for ``ProtocolError.raw``: never raises (orjson refuses ints beyond
    64 bits and non-string keys, which a caller-built or stdlib-decoded value may hold)."""
    try:
        return dumps(obj)
    except (TypeError, ValueError, RecursionError):
        return repr(obj)


# ------------------------------------------------------------------------------------------------- helpers


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _pascal(name: str) -> str:
    """Any casing of a variant name → PascalCase (``invalidRequest``/``invalid_request`` → ``InvalidRequest``)."""
    known = _KNOWN_VARIANTS_FOLDED.get(name.replace("_", "").replace("-", "").lower())
    if known is not None:
        return known
    if "_" in name or name.islower() or name.isupper():
        return "".join(p[:1].upper() + (p[1:].lower() if p.isupper() else p[1:]) for p in name.split("_") if p)
    return name[:1].upper() + name[1:]


def _get(obj: Mapping[str, Any], snake: str, default: Any = None) -> Any:
    """Read a key in either casing (L1/L2)."""
    if snake in obj:
        return obj[snake]
    camel = _snake_to_camel(snake)
    if camel in obj:
        return obj[camel]
    return default


def _require(obj: Mapping[str, Any], snake: str, what: str) -> Any:
    value = _get(obj, snake, _MISSING)
    if value is _MISSING:
        raise _Bad(f"{what}: missing field {snake!r}")
    return value


_MISSING = object()


class _Bad(Exception):
    """Internal: a decode failure, turned into ProtocolError with the raw frame at the boundary."""


_U64_MAX = 0xFFFFFFFFFFFFFFFF


def _u64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > _U64_MAX:
        raise _Bad(f"{what}: expected an unsigned integer, got {type(value).__name__} {value!r:.40}")
    return value


def _opt_u64(value: Any, what: str) -> Optional[int]:
    return None if value is None else _u64(value, what)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any, what: str) -> Optional[str]:
    return None if value is None else _str(value, what)


def _obj(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> List[Any]:
    if not isinstance(value, list):
        raise _Bad(f"{what}: expected an array, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------------------- BacktestError

#: §10.1 terminal variants (stop, surface, no reconnect). Every ``Invalid*`` variant is terminal too.
TERMINAL_VARIANTS = frozenset({
    "SessionNotFound", "SessionOwnerMismatch", "SessionNameTaken", "InvalidRequest", "BundleNotFound",
    "NoProducedBlocksInRange", "NoMoreBlocks", "AdvanceSlotFailed", "FinalizeSlotFailed",
    "InitializingSysvarsFailed", "SimulationError", "InvalidTransactionEncoding", "InvalidTransactionFormat",
    "InvalidAccountEncoding", "InvalidAccountOwner", "InvalidAccountPubkey", "InvalidBlockhashFormat",
})
#: §10.1 transient variants: reconnect and attach within the budget.
TRANSIENT_VARIANTS = frozenset({"SessionOwnershipBusy"})
#: §10.1 "retry once, then terminal".
RETRY_ONCE_VARIANTS = frozenset({"ClerkError", "Internal"})
#: Every §5.6 variant keyed by its case- and separator-folded name, so any wire casing maps back to it (L4).
_KNOWN_VARIANTS_FOLDED = {v.lower(): v for v in TERMINAL_VARIANTS | TRANSIENT_VARIANTS | RETRY_ONCE_VARIANTS}

_CONTINUE_BUSY = re.compile(r"continue while busy", re.IGNORECASE)
_DUPLICATE_FIELD = re.compile(r"duplicate field", re.IGNORECASE)


@dataclass(frozen=True)
class BacktestError:
    """A server ``error`` normalised per L4: PascalCase ``variant`` and its ``fields``."""

    variant: str
    fields: Dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def message(self) -> str:
        detail = self.fields.get("error") or self.fields.get("reason")
        if detail is None and self.fields:
            detail = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.variant}: {detail}" if detail else self.variant

    @property
    def terminal(self) -> bool:
        """§10.1: terminal unless transient, retry-once, or the §7.1 "continue while busy" answer."""
        if self.variant in TRANSIENT_VARIANTS or self.variant in RETRY_ONCE_VARIANTS:
            return False
        if is_continue_busy(self):
            return False
        return True  # listed terminal variants, every Invalid*, and unknown variants (L4)

    @property
    def is_invalid_request(self) -> bool:
        return self.variant.startswith("Invalid")

    def __str__(self) -> str:
        return self.message


def is_continue_busy(error: BacktestError) -> bool:
    """The §7.1 answer to a continue that arrived while the session was executing (non-terminal)."""
    return error.variant == "InvalidRequest" and bool(_CONTINUE_BUSY.search(str(error.fields.get("error", ""))))


def is_duplicate_field(error: BacktestError) -> bool:
    """serde's answer to a field present in two casings when the server declares an ``alias`` (§3.5)."""
    return error.variant == "InvalidRequest" and bool(_DUPLICATE_FIELD.search(str(error.fields.get("error", ""))))


# §10.1 as one table, used by every site that meets a server ``error`` (handshakes, routed (sub-)session errors,
# top-level errors of a parallel control connection). Sites look the action up; none decides on its own.

#: Phases an ``error`` can arrive in.
PHASE_HANDSHAKE = "handshake"  # answering our create / attach / resume
PHASE_SESSION = "session"  # routed to a (sub-)session once it exists
PHASE_CONTROL = "control"  # top-level on a parallel control connection after ``sessionsCreatedV2``

#: Actions. ``terminal``: fail the create / the (sub-)session, no reconnect. ``reconnect``: transient, drop the
#: connection and reconnect + attach within the budget. ``deliver``: not terminal, hand it to the (sub-)session
#: as a :class:`~simclient.events.ServerError` event (at control level: log it).
ACTION_TERMINAL = "terminal"
ACTION_RECONNECT = "reconnect"
ACTION_DELIVER = "deliver"

#: Kinds of error (:func:`error_kind`).
KIND_TERMINAL = "terminal"
KIND_TRANSIENT = "transient"
KIND_RETRY_ONCE = "retry-once"
KIND_BUSY = "continue-busy"

#: ``(kind, phase) -> (action the first time, action for a repeat)``. "Retry once, then terminal" (§10.1):
#: during a handshake or at control level the retry is a reconnect; a (sub-)session gets the first one as a
#: non-terminal ServerError event. A repeat counts per (sub-)session, per handshake, per control connection.
ERROR_ACTIONS: Dict[Tuple[str, str], Tuple[str, str]] = {
    (KIND_TERMINAL, PHASE_HANDSHAKE): (ACTION_TERMINAL, ACTION_TERMINAL),
    (KIND_TERMINAL, PHASE_SESSION): (ACTION_TERMINAL, ACTION_TERMINAL),
    (KIND_TERMINAL, PHASE_CONTROL): (ACTION_TERMINAL, ACTION_TERMINAL),
    (KIND_TRANSIENT, PHASE_HANDSHAKE): (ACTION_RECONNECT, ACTION_RECONNECT),
    (KIND_TRANSIENT, PHASE_SESSION): (ACTION_RECONNECT, ACTION_RECONNECT),
    (KIND_TRANSIENT, PHASE_CONTROL): (ACTION_RECONNECT, ACTION_RECONNECT),
    (KIND_RETRY_ONCE, PHASE_HANDSHAKE): (ACTION_RECONNECT, ACTION_TERMINAL),
    (KIND_RETRY_ONCE, PHASE_SESSION): (ACTION_DELIVER, ACTION_TERMINAL),
    (KIND_RETRY_ONCE, PHASE_CONTROL): (ACTION_RECONNECT, ACTION_TERMINAL),
    (KIND_BUSY, PHASE_HANDSHAKE): (ACTION_DELIVER, ACTION_DELIVER),
    (KIND_BUSY, PHASE_SESSION): (ACTION_DELIVER, ACTION_DELIVER),
    (KIND_BUSY, PHASE_CONTROL): (ACTION_DELIVER, ACTION_DELIVER),
}


def error_kind(error: BacktestError) -> str:
    """The §10.1 kind of ``error``: transient, retry-once, the §7.1 continue-busy answer, or terminal."""
    if error.variant in TRANSIENT_VARIANTS:
        return KIND_TRANSIENT
    if error.variant in RETRY_ONCE_VARIANTS:
        return KIND_RETRY_ONCE
    if is_continue_busy(error):
        return KIND_BUSY
    return KIND_TERMINAL


def error_action(error: BacktestError, phase: str, repeat: bool = False) -> str:
    """What to do with ``error`` arriving in ``phase`` (``repeat``: the same kind was seen before there)."""
    first, again = ERROR_ACTIONS[(error_kind(error), phase)]
    return again if repeat else first


__all__ += ["PHASE_HANDSHAKE", "PHASE_SESSION", "PHASE_CONTROL", "ACTION_TERMINAL", "ACTION_RECONNECT",
            "ACTION_DELIVER", "ERROR_ACTIONS", "error_kind", "error_action"]


def decode_error(params: Any) -> BacktestError:
    """L4: externally tagged object, bare string, or ``{"code"|"type": variant, ...}``."""
    if isinstance(params, str) and params:
        return BacktestError(_pascal(params))
    if isinstance(params, dict):
        for tag in ("code", "type"):
            if isinstance(params.get(tag), str) and params[tag]:
                rest = {_camel_to_snake(k): v for k, v in params.items() if k != tag}
                return BacktestError(_pascal(params[tag]), rest)
        if len(params) == 1 and next(iter(params)):
            (variant, content), = params.items()
            if isinstance(content, dict):
                return BacktestError(_pascal(variant), {_camel_to_snake(k): v for k, v in content.items()})
            if content is None:
                return BacktestError(_pascal(variant))
            return BacktestError(_pascal(variant), {"error": content})
    raise _Bad(f"error: cannot decode params of type {type(params).__name__}")


# ------------------------------------------------------------------------------------------ payload types


@dataclass(frozen=True)
class AccountData:
    """An account override (PROTOCOL §5.1): raw ``data`` bytes, ``space`` = len(data) unless given."""

    lamports: int
    data: bytes = b""
    owner: str = "11111111111111111111111111111111"
    executable: bool = False
    space: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.lamports, bool) or not isinstance(self.lamports, int) or self.lamports < 0:
            raise ValueError(f"AccountData.lamports must be a non-negative int, got {self.lamports!r}")
        if not isinstance(self.data, (bytes, bytearray)):
            raise ValueError(f"AccountData.data must be bytes, got {type(self.data).__name__}")
        if not isinstance(self.owner, str) or not self.owner:
            raise ValueError(f"AccountData.owner must be a base58 string, got {self.owner!r}")

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "AccountData":
        """Decode the §5.1 shape ``{"data": {"data": b64, "encoding": "base64"}, ...}``."""
        enc = obj.get("data") or {}
        raw = _decode_binary(enc.get("data", ""), enc.get("encoding", "base64"))
        return cls(lamports=int(obj["lamports"]), data=raw, owner=obj["owner"],
                   executable=bool(obj.get("executable", False)), space=obj.get("space"))

    @classmethod
    def from_ui_account(cls, ui: Mapping[str, Any]) -> "AccountData":
        """Decode a Solana ``UiAccount`` (``data: [payload, encoding]``). Unknown encodings raise ValueError."""
        data = ui.get("data")
        if isinstance(data, list) and len(data) == 2:
            raw = _decode_binary(data[0], data[1])
        elif isinstance(data, dict) and "data" in data:
            raw = _decode_binary(data["data"], data.get("encoding", "base64"))
        elif isinstance(data, dict):  # jsonParsed: {"program", "parsed", "space"} carries no raw bytes
            raise ValueError(f"UiAccount.data is jsonParsed (program {data.get('program')!r}), which has no raw "
                             f"bytes to decode; request the account with encoding 'base64'")
        elif isinstance(data, str):
            raw = _decode_binary(data, "base58")
        else:
            raise ValueError(f"UiAccount.data has an unsupported shape: {type(data).__name__}")
        try:
            lamports, owner = int(ui["lamports"]), ui["owner"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"UiAccount is missing or has an invalid lamports/owner: {exc!r}") from None
        return cls(lamports=lamports, data=raw, owner=owner,
                   executable=bool(ui.get("executable", False)), space=ui.get("space"))

    @classmethod
    def from_solders(cls, account: Any) -> "AccountData":
        """From a ``solders.account.Account`` (``rent_epoch`` is dropped: §5.1 does not carry it)."""
        try:
            lamports, data = account.lamports, account.data
            owner, executable = account.owner, account.executable
        except AttributeError:
            raise ValueError(f"expected a solders Account (lamports, data, owner, executable), "
                             f"got {type(account).__name__}") from None
        return cls(lamports=int(lamports), data=bytes(data), owner=str(owner), executable=bool(executable))

    def to_solders(self) -> Any:
        """To a ``solders.account.Account`` (needs the ``solana`` extra). ``space`` is implied by ``len(data)`` and
        ``rent_epoch`` is left at solders' default (0)."""
        from solders.account import Account  # type: ignore[import-not-found, unused-ignore]
        from solders.pubkey import Pubkey  # type: ignore[import-not-found, unused-ignore]

        return Account(lamports=self.lamports, data=bytes(self.data), owner=Pubkey.from_string(self.owner),
                       executable=self.executable)


def _decode_binary(payload: Any, encoding: Any) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError(f"invalid base64 account data: {exc}") from None
    if encoding == "base58":
        from ._base58 import b58decode

        return b58decode(payload)
    raise ValueError(f"unknown account data encoding {encoding!r} (expected 'base64' or 'base58')")


def encode_account_data(acct: AccountData) -> Dict[str, Any]:
    return {
        "data": {"data": base64.b64encode(bytes(acct.data)).decode(), "encoding": "base64"},
        "executable": acct.executable,
        "lamports": acct.lamports,
        "owner": acct.owner,
        "space": len(acct.data) if acct.space is None else acct.space,
    }


@dataclass(frozen=True)
class AvailableRange:
    """One entry of ``GET /available-ranges`` (§1.3)."""

    bundle_start_slot: int
    bundle_start_slot_utc: Optional[str] = None
    max_bundle_end_slot: Optional[int] = None
    max_bundle_end_slot_utc: Optional[str] = None
    max_bundle_size: Optional[int] = None
    kind: Optional[str] = None
    scope: Optional[str] = None
    snapshot_slot: Optional[int] = None
    snapshot_slot_utc: Optional[str] = None


def _opt_text(value: Any) -> Optional[str]:
    """``kind`` / ``scope``: any string passes through (unknown values included); None stays None."""
    return None if value is None else str(value)


def decode_available_ranges(body: Any) -> List[AvailableRange]:
    if not isinstance(body, list):
        raise ProtocolError("available-ranges: expected a JSON array", _raw(body) if body is not None else None)
    out = []
    try:
        for item in body:
            item = _obj(item, "available-ranges entry")
            out.append(AvailableRange(
                bundle_start_slot=_u64(_require(item, "bundle_start_slot", "available-ranges"), "bundle_start_slot"),
                bundle_start_slot_utc=_opt_str(_get(item, "bundle_start_slot_utc"), "bundle_start_slot_utc"),
                max_bundle_end_slot=_opt_u64(_get(item, "max_bundle_end_slot"), "max_bundle_end_slot"),
                max_bundle_end_slot_utc=_opt_str(_get(item, "max_bundle_end_slot_utc"), "max_bundle_end_slot_utc"),
                max_bundle_size=_opt_u64(_get(item, "max_bundle_size"), "max_bundle_size"),
                kind=_opt_text(_get(item, "kind")),
                scope=_opt_text(_get(item, "scope")),
                snapshot_slot=_opt_u64(_get(item, "snapshot_slot"), "snapshot_slot"),
                snapshot_slot_utc=_opt_str(_get(item, "snapshot_slot_utc"), "snapshot_slot_utc"),
            ))
    except _Bad as exc:
        raise ProtocolError(str(exc), _raw(body)) from None
    return out


# ------------------------------------------------------------------------------------- response types


@dataclass(frozen=True)
class SessionCreated:
    session_id: str
    rpc_endpoint: str
    task_id: Optional[str] = None


@dataclass(frozen=True)
class SessionAttached(SessionCreated):
    pass


@dataclass(frozen=True)
class SessionsCreatedV2:
    """Terminal message of a parallel create. ``start_slots``/``end_slots`` are None when the server omits
    them (a server too old for the multiplexed client; the caller fails loudly)."""

    control_session_id: str
    session_ids: Tuple[str, ...]
    task_ids: Tuple[Optional[str], ...] = ()
    start_slots: Optional[Tuple[int, ...]] = None
    end_slots: Optional[Tuple[int, ...]] = None


@dataclass(frozen=True)
class ParallelSessionAttachedV2:
    control_session_id: str
    session_ids: Tuple[str, ...] = ()
    task_ids: Tuple[Optional[str], ...] = ()


@dataclass(frozen=True)
class Success:
    """Ack of close and of resume."""


@dataclass(frozen=True)
class SessionEventV2:
    """One sub-session's event on a parallel control socket; ``event`` is an :mod:`simclient.events` value,
    :class:`Success`, or :class:`Unknown`."""

    session_id: str
    seq_id: int
    event: Any


@dataclass(frozen=True)
class Unknown:
    """A method this client does not know (L6): log and skip."""

    method: str
    params: Any = None


class Frame:
    """A decoded control frame: the message and the top-level ``seqId`` (None when unwrapped)."""

    __slots__ = ("message", "seq_id")

    def __init__(self, message: Any, seq_id: Optional[int]):
        self.message = message
        self.seq_id = seq_id

    def __repr__(self) -> str:
        return f"Frame(seq_id={self.seq_id!r}, message={self.message!r})"


_READY = ev.ReadyForContinue()
_SUCCESS = Success()


def _d_session_created(params: Any, cls: type = SessionCreated) -> Any:
    p = _obj(params, "sessionCreated")
    return cls(
        session_id=_str(_require(p, "session_id", "sessionCreated"), "session_id"),
        rpc_endpoint=_str(_require(p, "rpc_endpoint", "sessionCreated"), "rpc_endpoint"),
        task_id=_opt_str(_get(p, "task_id"), "task_id"),
    )


def _d_sessions_created_v2(params: Any) -> SessionsCreatedV2:
    p = _obj(params, "sessionsCreatedV2")
    ids = tuple(_str(s, "session_ids[]") for s in _list(_require(p, "session_ids", "sessionsCreatedV2"), "session_ids"))
    task_ids = tuple(_opt_str(t, "task_ids[]") for t in _list(_get(p, "task_ids") or [], "task_ids"))
    starts = _get(p, "start_slots")
    ends = _get(p, "end_slots")
    return SessionsCreatedV2(
        control_session_id=_str(_require(p, "control_session_id", "sessionsCreatedV2"), "control_session_id"),
        session_ids=ids,
        task_ids=task_ids,
        start_slots=None if starts is None else tuple(_u64(s, "start_slots[]") for s in _list(starts, "start_slots")),
        end_slots=None if ends is None else tuple(_u64(s, "end_slots[]") for s in _list(ends, "end_slots")),
    )


def _d_parallel_attached(params: Any) -> ParallelSessionAttachedV2:
    p = _obj(params, "parallelSessionAttachedV2")
    return ParallelSessionAttachedV2(
        control_session_id=_str(_require(p, "control_session_id", "parallelSessionAttachedV2"), "control_session_id"),
        session_ids=tuple(_str(s, "session_ids[]") for s in _list(_get(p, "session_ids") or [], "session_ids")),
        task_ids=tuple(_opt_str(t, "task_ids[]") for t in _list(_get(p, "task_ids") or [], "task_ids")),
    )


def _d_paused(params: Any) -> ev.Paused:
    p = _obj(params, "paused")
    return ev.Paused(slot=_u64(_require(p, "slot", "paused"), "paused.slot"),
                     batch_index=_opt_u64(_get(p, "batch_index"), "paused.batchIndex"))


def _d_discovery(params: Any) -> ev.DiscoveryBatch:
    p = _obj(params, "discoveryBatch")
    return ev.DiscoveryBatch(
        slot=_u64(_require(p, "slot", "discoveryBatch"), "discoveryBatch.slot"),
        batch_index=_u64(_require(p, "batch_index", "discoveryBatch"), "discoveryBatch.batchIndex"),
        matched=tuple(_list(_get(p, "matched") or [], "matched")),
        transactions=tuple(_list(_get(p, "transactions") or [], "transactions")),
        transaction_indices=tuple(_u64(i, "transactionIndices[]")
                                  for i in _list(_get(p, "transaction_indices") or [], "transactionIndices")),
    )


_SUMMARY_FIELDS = ("correct_simulation", "incorrect_simulation", "execution_errors", "balance_diff", "log_diff",
                   "unsanitizable")


def _d_summary(raw: Any) -> Optional[ev.SessionSummary]:
    if raw is None:
        return None
    s = _obj(raw, "summary")
    known = {name: _u64(_get(s, name, 0), f"summary.{name}") for name in _SUMMARY_FIELDS}
    seen = set(_SUMMARY_FIELDS) | {_snake_to_camel(n) for n in _SUMMARY_FIELDS} | {"rerouteStats", "reroute_stats"}
    return ev.SessionSummary(**known, reroute_stats=_get(s, "reroute_stats"),
                             extra={k: v for k, v in s.items() if k not in seen})


def _d_completed(params: Any) -> ev.Completed:
    if params is None:
        return ev.Completed(None)
    p = _obj(params, "completed")
    return ev.Completed(summary=_d_summary(p.get("summary")))


def _d_status(params: Any) -> ev.Status:
    if isinstance(params, str):  # lenient: a bare status string
        return _status(params)
    p = _obj(params, "status")
    return _status(_str(_require(p, "status", "status"), "status.status"))


#: Status events by phase: a frozen event per phase, shared (a session announces a handful of phases per slot).
_STATUS_EVENTS: Dict[str, ev.Status] = {}


def _status(phase: str) -> ev.Status:
    event = _STATUS_EVENTS.get(phase)
    if event is None:
        event = ev.Status(phase)
        if len(_STATUS_EVENTS) < 256:  # bounded: unknown phases pass through, a server could invent many
            _STATUS_EVENTS[phase] = event
    return event


def _d_slot(params: Any) -> ev.Slot:
    if isinstance(params, dict):  # lenient: {"slot": n}
        params = _require(params, "slot", "slotNotification")
    return ev.Slot(_u64(params, "slotNotification"))


def _d_session_event_v2(params: Any) -> SessionEventV2:
    if type(params) is dict:  # the usual, well-formed snake_case frame, checked inline (same result as below)
        sid, seq, inner = params.get("session_id"), params.get("seq_id"), params.get("event")
        if type(sid) is str and type(seq) is int and 0 <= seq <= _U64_MAX and type(inner) is dict:
            return SessionEventV2(session_id=sid, seq_id=seq, event=_decode_message(inner, nested=True))
    p = _obj(params, "sessionEventV2")
    inner = _obj(_require(p, "event", "sessionEventV2"), "sessionEventV2.event")
    return SessionEventV2(
        session_id=_str(_require(p, "session_id", "sessionEventV2"), "session_id"),
        seq_id=_u64(_require(p, "seq_id", "sessionEventV2"), "seq_id"),
        event=_decode_message(inner, nested=True),
    )


_DECODERS: Dict[str, Callable[[Any], Any]] = {
    "sessionCreated": _d_session_created,
    "sessionAttached": lambda p: _d_session_created(p, SessionAttached),
    "sessionsCreatedV2": _d_sessions_created_v2,
    "parallelSessionAttachedV2": _d_parallel_attached,
    "readyForContinue": lambda p: _READY,
    "slotNotification": _d_slot,
    "paused": _d_paused,
    "discoveryBatch": _d_discovery,
    "status": _d_status,
    "success": lambda p: _SUCCESS,
    "completed": _d_completed,
    "error": lambda p: ev.ServerError(decode_error(p)),
    "sessionEventV2": _d_session_event_v2,
}
# Methods allowed inside sessionEventV2.event (§4.1 SessionEventKind).
_NESTED = frozenset({"readyForContinue", "slotNotification", "paused", "discoveryBatch", "status", "success",
                     "completed", "error"})


def _decode_message(obj: Dict[str, Any], nested: bool = False) -> Any:
    method = obj.get("method")
    if not isinstance(method, str):
        raise _Bad("frame has no string 'method'")
    decoder = _DECODERS.get(method)
    if decoder is None or (nested and method not in _NESTED):
        return Unknown(method, obj.get("params"))
    return decoder(obj.get("params"))


#: Builds a frozen dataclass instance without running its ``__init__`` (whose frozen ``__setattr__`` calls cost
#: more than the decode itself on the notification hot path); the caller fills ``__dict__`` with every field, in
#: field order, which gives the same instance (equality, hash, repr, pickling, ``match``) as the constructor.
_new_notification = _new_event = object.__new__


def decode_response(raw: Union[str, bytes]) -> Frame:
    """Decode one control frame. Raises :class:`ProtocolError` (and nothing else) on a malformed frame."""
    try:
        obj = loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"control frame is not JSON ({exc})", _text(raw)) from None
    if type(obj) is dict:
        # Fast path: the two frames of every slot, ``{"seqId": u64, "method": "status", "params": {"status": str}}``
        # and ``{"seqId": u64, "method": "slotNotification", "params": u64}``, checked inline; anything else (every
        # malformed frame included) takes the general path below, which decodes these two the same way.
        seq = obj.get("seqId")
        if type(seq) is int and 0 <= seq <= _U64_MAX:
            method = obj.get("method")
            if method == "status":
                params = obj.get("params")
                if type(params) is dict:
                    phase = params.get("status")
                    if type(phase) is str:
                        return Frame(_status(phase), seq)
            elif method == "slotNotification":
                params = obj.get("params")
                if type(params) is int and 0 <= params <= _U64_MAX:
                    slot = _new_event(ev.Slot)
                    slot.__dict__["slot"] = params
                    return Frame(slot, seq)
    elif not isinstance(obj, dict):
        raise ProtocolError(f"control frame is a JSON {type(obj).__name__}, not an object", _text(raw))
    try:
        seq = obj["seqId"] if "seqId" in obj else obj.get("seq_id")
        if seq is None:
            seq_id = None
        elif type(seq) is int and 0 <= seq <= _U64_MAX:  # the usual case, without the call
            seq_id = seq
        else:
            seq_id = _u64(seq, "seqId")
        return Frame(_decode_message(obj), seq_id)
    except _Bad as exc:
        raise ProtocolError(str(exc), _text(raw)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # defensive: never leak another type
        raise ProtocolError(f"malformed control frame ({type(exc).__name__}: {exc})", _text(raw)) from None


def _text(raw: Union[str, bytes]) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)


# ------------------------------------------------------------------------------------------- requests


def _request(method: str, params: Any = _MISSING) -> Dict[str, Any]:
    return {"method": method} if params is _MISSING else {"method": method, "params": params}


def encode_create(create: Any, parallel: bool = False) -> Dict[str, Any]:
    """``createBacktestSession`` from a :class:`simclient.CreateSession` (§3.1: V1 = params + ``parallel``)."""
    params: Dict[str, Any] = {
        "startSlot": create.start_slot,
        "endSlot": create.resolved_end_slot,
        "signerFilter": list(create.signer_filter),
        "sendSummary": create.send_summary,
        "disconnectTimeoutSecs": create.disconnect_timeout_secs,
    }
    if create.capacity_wait_timeout_secs is not None:
        params["capacityWaitTimeoutSecs"] = create.capacity_wait_timeout_secs
    if create.extra_compute_units is not None:
        params["extraComputeUnits"] = create.extra_compute_units
    if create.discoveries:
        params["discoveries"] = [dict(d) for d in create.discoveries]
    if create.actions:
        params["actions"] = [dict(a) if isinstance(a, Mapping) else encode_scheduled_action(a)
                             for a in create.actions]
    if getattr(create, "replay_account_state", False):
        params["replayAccountState"] = True
    if create.account_overrides:
        params["accountOverrides"] = {
            str(slot): {addr: encode_account_data(a) for addr, a in accounts.items()}
            for slot, accounts in create.account_overrides.items()
        }
    if create.extra:
        params.update(create.extra)
    if parallel:
        params["parallel"] = True
    return _request("createBacktestSession", params)


#: How :func:`encode_action_transactions` frames a scheduled action's transactions by default (see there).
ACTION_TRANSACTIONS_ENCODING = "base64"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def encode_action_transactions(transactions: Sequence[str], encoding: Optional[str] = None) -> List[str]:
    """The wire form of a scheduled action's ``transactions`` (§3.1.1): the one place that decides it.

    The spec's sources say the transactions are "carried over the wire as a base64-encoded, zstd-compressed blob"
    but not how that blob is framed ([I]). The field is a list (``transactions: [base64]``), so each entry is one
    transaction. Readings: (a) ``"base64"``, base64 of the bincode bytes, exactly what ``continue`` sends (§3.2);
    (b) ``"zstd"``, base64 of a zstd frame of the bincode bytes (needs the ``zstandard`` package, imported only
    here and only then). The default is (a), ``ACTION_TRANSACTIONS_ENCODING``: it needs no extra dependency and is
    the form the server already decodes for ``continue``; a zstd frame starts with the magic ``28 b5 2f fd``, which
    no transaction does (its first byte is the signature count: 40 signatures do not fit in a 1232-byte packet), so
    a server can tell the two apart. If a
    real server wants (b), change the default here and nowhere else. ``transactions`` are base64 bincode strings
    (what :class:`~simclient.ScheduledAction` keeps)."""
    encoding = ACTION_TRANSACTIONS_ENCODING if encoding is None else encoding
    if encoding == "base64":
        return list(transactions)
    if encoding == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ValueError("zstd-compressed action transactions need the 'zstandard' package") from None
        comp = zstandard.ZstdCompressor(level=3)
        return [base64.b64encode(comp.compress(base64.b64decode(t))).decode() for t in transactions]
    raise ValueError(f"unknown action transactions encoding {encoding!r} (expected 'base64' or 'zstd')")


def encode_scheduled_action(action: Any, encoding: Optional[str] = None) -> Dict[str, Any]:
    """A :class:`simclient.ScheduledAction` on the wire (§3.1.1 [I]: externally tagged camelCase, like
    ``DiscoveryFilter``; the kind a lowercase string; the transactions per :func:`encode_action_transactions`)."""
    anchor = action.anchor
    body: Dict[str, Any]
    if anchor.is_slot_anchor:
        body = {"slots": list(anchor.slots)}
    elif anchor.every_n_slots is not None:
        body = {"everyNSlots": anchor.every_n_slots}
    else:
        body = {"filter": dict(anchor.filter)}
    return {
        "anchor": {anchor.wire_tag: body},
        "kind": action.kind,
        "transactions": encode_action_transactions(action.transactions, encoding),
        "accountOverrides": {addr: encode_account_data(a) for addr, a in action.account_overrides.items()},
        "feedsReroute": action.feeds_reroute,
        "returnAccounts": list(action.return_accounts),
        "label": action.label,
    }


def encode_continue_params(cont: Any) -> Dict[str, Any]:
    """``ContinueParams`` (§3.2) from a :class:`simclient.Continue`."""
    return {
        "advanceCount": cont.advance_count,
        "transactions": list(cont.transactions),
        "modifyAccountStates": {addr: encode_account_data(a) for addr, a in cont.modify_account_states.items()},
    }


def encode_continue(cont: Any) -> Dict[str, Any]:
    return _request("continue", encode_continue_params(cont))


def continue_to_params(slot: int, batch_index: int, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``ContinueToParams`` (§3.3); ``extra`` (fields newer than this SDK) is merged in as given."""
    params: Dict[str, Any] = {"slot": slot, "batchIndex": batch_index}
    if extra:
        params.update(extra)
    return params


def encode_continue_to(slot: int, batch_index: int, extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    return _request("continueTo", continue_to_params(slot, batch_index, extra))


def encode_close() -> Dict[str, Any]:
    return _request("closeBacktestSession")


def encode_attach(session_id: str, last_sequence: Optional[int]) -> Dict[str, Any]:
    params: Dict[str, Any] = {"session_id": session_id}
    if last_sequence is not None:
        params["last_sequence"] = last_sequence
    return _request("attachBacktestSession", params)


def encode_resume() -> Dict[str, Any]:
    return _request("resumeAttachedSession")


def encode_attach_parallel(control_session_id: str, last_sequences: Mapping[str, int]) -> Dict[str, Any]:
    return _request("attachParallelControlSessionV2",
                    {"control_session_id": control_session_id, "last_sequences": dict(last_sequences)})


#: The per-session requests of a parallel control connection (§3.5).
V1_METHODS = frozenset({"continueSessionV1", "continueToSessionV1", "closeSessionV1"})


def _v1(method: str, session_id: str, inner: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The §3.5 superset form: both id casings; the params nested under ``request`` and flattened beside it, so the
    request decodes the same whether the server reads ``session_id`` or ``sessionId``, nested or flattened."""
    params: Dict[str, Any] = {"session_id": session_id, "sessionId": session_id}
    if inner is not None:
        params["request"] = inner
        for key, value in inner.items():
            params.setdefault(key, value)  # never shadows the id or ``request`` itself
    return _request(method, params)


def encode_continue_v1(session_id: str, cont: Any) -> Dict[str, Any]:
    return _v1("continueSessionV1", session_id, encode_continue_params(cont))


def encode_continue_to_v1(session_id: str, slot: int, batch_index: int,
                          extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    return _v1("continueToSessionV1", session_id, continue_to_params(slot, batch_index, extra))


def encode_close_v1(session_id: str) -> Dict[str, Any]:
    return _v1("closeSessionV1", session_id)


def minimal_v1(request: Dict[str, Any]) -> Dict[str, Any]:
    """The minimal form of a superset ``*SessionV1`` request: ``session_id`` plus the nested ``request`` (§3.5)."""
    params = request.get("params") or {}
    out: Dict[str, Any] = {"session_id": params.get("session_id", params.get("sessionId"))}
    if "request" in params:
        out["request"] = params["request"]
    return {"method": request["method"], "params": out}


class V1Form:
    """The one place that decides which form of the ``*SessionV1`` requests a control connection sends (§3.5).

    Superset until a server answers ``invalidRequest`` "duplicate field" (a serde ``alias`` for the other id
    casing); from then on the minimal form, for the rest of the :class:`~simclient.control.ControlConnection`
    (its reconnects included: it talks to the same service). A strict server answers *every* superset request sent
    before the switch, so after the first "duplicate field" the next ones, up to the number of superset requests
    written on that socket, are expected echoes; one after that means the minimal form failed too and is surfaced.
    ``shape`` and ``on_error`` are called with the control lock held (socket generation ``gen``).
    """

    def __init__(self) -> None:
        self.minimal = False
        self.fallbacks = 0
        self._gen: Optional[int] = None
        self._superset_sent = 0
        self._echoes_due = 0

    def _socket(self, gen: int) -> None:
        if gen != self._gen:  # a new socket: nothing sent on the old one will be answered
            self._gen = gen
            self._superset_sent = 0
            self._echoes_due = 0

    def shape(self, request: Dict[str, Any], gen: int) -> Dict[str, Any]:
        """The request as it goes on the wire (non-V1 requests unchanged)."""
        if request.get("method") not in V1_METHODS:
            return request
        self._socket(gen)
        if self.minimal:
            return minimal_v1(request)
        self._superset_sent += 1
        return request

    def on_error(self, error: BacktestError, gen: int) -> Optional[bool]:
        """An ``error`` read on socket ``gen``. None: not about the V1 form (handle it as usual); True: switched to
        the minimal form just now (re-send what is unanswered); False: an expected echo of the switch (drop it)."""
        if not is_duplicate_field(error):
            return None
        self._socket(gen)
        if not self.minimal:
            if not self._superset_sent:
                return None  # no superset request on this socket: not ours to explain
            self.minimal = True
            self.fallbacks += 1
            self._echoes_due = self._superset_sent - 1
            return True
        if self._echoes_due > 0:
            self._echoes_due -= 1
            return False
        return None  # the minimal form was refused too


# --------------------------------------------------------------------------------- data-plane (§9)

#: JSON-RPC error code of the §9.3 replay-window refusal.
REPLAY_WINDOW_ERROR_CODE = -32016


def encode_subscribe(request_id: int, kind: str, filter_: Any, replay_from_slot: Optional[int] = None,
                     compression: Optional[str] = None) -> Dict[str, Any]:
    """``<kind>Subscribe`` with the shared config object (§9.3)."""
    config: Dict[str, Any] = {}
    if kind == "transaction":
        config.update({"commitment": "confirmed", "encoding": "json", "maxSupportedTransactionVersion": 0})
    elif kind == "logs":
        config["commitment"] = "confirmed"  # §9.2.2, the standard Solana logsSubscribe config
    if replay_from_slot is not None:
        config["replayFromSlot"] = replay_from_slot
    if compression:
        config["compression"] = compression
    return {"jsonrpc": "2.0", "id": request_id, "method": f"{kind}Subscribe", "params": [filter_, config]}


def transaction_filter(program_ids: Sequence[str]) -> Dict[str, Any]:
    return {"programs": list(program_ids)}


def account_diff_filter(program_id: str) -> Dict[str, Any]:
    return {"address": program_id, "address_type": "program"}


def logs_filter(address: str) -> Dict[str, Any]:
    """``logsSubscribe``'s filter (§9.2.2): standard Solana PubSub takes exactly one address in ``mentions``."""
    return {"mentions": [address]}


@dataclass(frozen=True)
class SubscribeAck:
    request_id: Any
    subscription: int


@dataclass(frozen=True)
class RpcErrorReply:
    request_id: Any
    code: int
    message: str
    data: Any = None


@dataclass(frozen=True)
class Notification:
    """``<kind>Notification``; ``result`` None is end-of-stream (§9.5)."""

    method: str
    subscription: int
    result: Any
    #: The frame's bytes (fast path only): what a converter given it may keep instead of the decoded result
    #: (events._Deferred). Not part of equality or repr.
    frame: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SubscriptionComplete:
    """The server ended a subscription's stream (§9.5); ``subscription`` None means every subscription of the
    socket. ``result`` is whatever ``params.result`` carried (usually absent)."""

    subscription: Optional[int] = None
    result: Any = None


def _subscription_complete(params: Any) -> SubscriptionComplete:
    if not isinstance(params, dict):
        return SubscriptionComplete()
    sub = params.get("subscription")
    if isinstance(sub, bool) or not isinstance(sub, int) or not 0 <= sub <= _U64_MAX:
        sub = None
    return SubscriptionComplete(sub, params.get("result"))


def is_early_complete(completed: bool, continue_sent: bool) -> bool:
    """§9.5: a ``subscriptionComplete`` that cannot be the end of the stream: the session has not completed and no
    continue has been sent on it, so no slot can have run (the subscription was made before the session's data plane
    was up). The caller re-subscribes after a backoff, and takes it as the end after all if the session completes
    during that backoff. (Subscriptions made before the first continue wait for a ping barrier before they count as
    up, so an immediate answer is read while the gated continue is still held back.)"""
    return not completed and not continue_sent


def decode_subscription_frame(raw: Union[str, bytes]) -> Any:
    """Decode one data-plane frame into SubscribeAck, RpcErrorReply, Notification, SubscriptionComplete or
    Unknown."""
    try:
        obj = loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"subscription frame is not JSON ({exc})", _text(raw)) from None
    if type(obj) is dict:
        # Fast path: the well-formed ``{"method": "…Notification", "params": {"subscription": u64, ...}}``.
        # Anything else (including every malformed frame) takes the general path below, unchanged.
        params = obj.get("params")
        if type(params) is dict:
            method = obj.get("method")
            sub = params.get("subscription")
            if (type(method) is str and type(sub) is int and method.endswith("Notification")
                    and 0 <= sub <= _U64_MAX):
                note = _new_notification(Notification)
                d = note.__dict__
                d["method"] = method
                d["subscription"] = sub
                d["result"] = params.get("result")
                d["frame"] = raw
                return note
    elif not isinstance(obj, dict):
        raise ProtocolError("subscription frame is not a JSON object", _text(raw))
    try:
        if "method" in obj:
            method = _str(obj["method"], "method")
            params = obj.get("params")
            if method == "subscriptionComplete":
                return _subscription_complete(params)
            if not method.endswith("Notification") or not isinstance(params, dict):
                return Unknown(method, params)
            return Notification(method, _u64(_require(params, "subscription", method), "subscription"),
                                params.get("result"))
        if "error" in obj and obj["error"] is not None:
            err = _obj(obj["error"], "error")
            code = err.get("code")
            if isinstance(code, bool) or not isinstance(code, int):
                raise _Bad("error.code is not an integer")
            return RpcErrorReply(obj.get("id"), code, str(err.get("message", "")), err.get("data"))
        if "result" in obj:
            result = obj["result"]
            if isinstance(result, bool) or not isinstance(result, int):
                return Unknown("response", obj)  # e.g. an unsubscribe's ``true``
            return SubscribeAck(obj.get("id"), result)
        return Unknown("", obj)
    except _Bad as exc:
        raise ProtocolError(str(exc), _text(raw)) from None


def _unwrap(result: Any) -> Tuple[Optional[int], Any]:
    """L5: ``{context, value}`` or a bare payload → (context slot, payload)."""
    if isinstance(result, dict) and "value" in result and "context" in result:
        ctx = result.get("context") or {}
        return (ctx.get("slot") if isinstance(ctx, dict) else None), result["value"]
    return None, result


def _fill_transaction(frame: Union[str, bytes], fields: Dict[str, Any]) -> None:
    """A deferred :class:`events.Transaction`'s ``value`` from its frame, which :func:`transaction_from_result`
    (or :func:`decode_transaction_frame`) checked (``{context, value: {...}}``)."""
    fields["value"] = _loads_checked(frame)["params"]["result"]["value"]


def _loads_checked(frame: Union[str, bytes]) -> Any:
    """A frame the reader already checked, decoded: by ``loads``, or, where orjson refuses what msgspec accepted (a
    number beyond a double's range, such as ``1e400``: msgspec checks a number it skips for its syntax only), by
    the stdlib, as an install without orjson decodes it (``inf``)."""
    try:
        return loads(frame)
    except ValueError:
        if _orjson is None:
            raise
        return json.loads(frame)


# --- the transaction reader's typed decode (msgspec, extra ``fast``) ----------------------------------------------
#
# orjson builds the whole tree of a 1.4 KB transaction notification (2.7 us with freeing it) although the reader
# keeps only the subscription id, slot and signature (Transaction.value is decoded from the frame when first read).
# msgspec decodes the frame into a schema of those few fields: it checks the whole document's syntax (every value
# it skips too) and builds only what the schema names, in 1.2 us (docs/performance.md). A key that repeats counts
# at its last occurrence, as in orjson and json; unknown keys are skipped. Only a frame of the usual shape takes
# this path; anything else (msgspec's refusal, a value outside u64, another method, an empty signature list, any
# byte outside ASCII: msgspec does not check the UTF-8 of the strings it skips) is decoded by
# decode_subscription_frame, unchanged.


def _transaction_decoder() -> Optional[Callable[[bytes], Any]]:
    """msgspec's decoder of ``{"method", "params": {"subscription", "result": {"context", "value": {"slot",
    "transaction": {"signatures"}}}}}``; None without msgspec."""
    if _msgspec is None:
        return None
    struct = _msgspec.defstruct
    tx = struct("Tx", [("signatures", List[str])], gc=False)
    value = struct("Value", [("slot", int), ("transaction", tx)], gc=False)
    result = struct("Result", [("context", _msgspec.Raw), ("value", value)], gc=False)
    params = struct("Params", [("subscription", int), ("result", result)], gc=False)
    doc = struct("TransactionNotification", [("method", str), ("params", params)], gc=False)
    decode: Callable[[bytes], Any] = _msgspec.json.Decoder(doc).decode
    return decode


_decode_transaction = _transaction_decoder()
#: what msgspec raises for a frame it refuses: its DecodeError (a ValueError in msgspec 0.23, not in 0.20, the last
#: release with a cp39 wheel), and RecursionError for a frame nested deeper than it goes
_MSGSPEC_REFUSALS: Tuple[Type[BaseException], ...] = (ValueError, RecursionError) + (
    (_msgspec.DecodeError,) if _msgspec is not None else ())


def read_transaction_frame(raw: Any) -> Optional[Tuple[int, ev.Transaction]]:
    """``(subscription id, Transaction)`` of a well-formed ``transactionNotification`` (``{"method", "params":
    {"subscription": u64, "result": {"context": ..., "value": {"slot": u64, "transaction": {"signatures": [str,
    ...]}, ...}}}}`` as ASCII bytes), its ``value`` deferred to the frame; None for every other frame, and for every
    frame without msgspec: :func:`decode_subscription_frame` decides those. The transaction worker's reader (the
    kind table's ``read_frame``): no :class:`Notification` is built for the common frame."""
    decode = _decode_transaction
    if decode is None or type(raw) is not bytes or not raw.isascii():
        return None
    try:
        doc = decode(raw)
    except _MSGSPEC_REFUSALS:  # not JSON, or another shape: the general path's verdict
        return None
    params = doc.params
    sub = params.subscription
    value = params.result.value
    slot = value.slot
    sigs = value.transaction.signatures
    if doc.method != "transactionNotification" or not sigs or not 0 <= sub <= _U64_MAX or not 0 <= slot <= _U64_MAX:
        return None
    event = _new_event(ev.Transaction)
    fields = event.__dict__
    fields["slot"] = slot
    fields["signature"] = sigs[0]
    fields["_source"] = (raw, _fill_transaction)
    return sub, event


def decode_transaction_frame(raw: Union[str, bytes]) -> Any:
    """:func:`decode_subscription_frame` for a transaction subscription's socket: a frame
    :func:`read_transaction_frame` reads comes back as a :class:`Notification` whose ``result`` is the
    :class:`events.Transaction` already (which :func:`transaction_from_result` passes through); every other frame
    is decoded by :func:`decode_subscription_frame`."""
    hit = read_transaction_frame(raw)
    if hit is None:
        return decode_subscription_frame(raw)  # not msgspec's, or another shape: the general path decides
    return Notification("transactionNotification", hit[0], hit[1], raw)


def _fill_account_diff(frame: Union[str, bytes], fields: Dict[str, Any]) -> None:
    """A deferred :class:`events.AccountDiff`'s ``pre`` and ``post`` from its frame, which
    :func:`account_diff_from_result` checked."""
    _, value = _unwrap(loads(frame)["params"].get("result"))
    fields["pre"] = value.get("pre")
    fields["post"] = value.get("post")


def transaction_from_result(result: Any, frame: Any = None) -> ev.Transaction:
    """A ``transactionNotification`` result → :class:`events.Transaction`. With ``frame`` (the notification's
    bytes, :attr:`Notification.frame`), a well-formed result's ``value`` is left to be decoded from it on first
    access (the frame was decoded and checked whole; see :class:`events._Deferred`). A Transaction is passed
    through: :func:`decode_transaction_frame` built it from the frame already."""
    if type(result) is ev.Transaction:
        return result
    if type(result) is dict and "context" in result:
        # Fast path: ``{context, value: {slot: u64, transaction: {signatures: [str, ...]}, ...}}``. Any other shape,
        # and every malformed one, takes the general path below, unchanged.
        value = result.get("value")
        if type(value) is dict:
            slot = value.get("slot")
            tx = value.get("transaction")
            if type(slot) is int and type(tx) is dict and 0 <= slot <= _U64_MAX:
                sigs = tx.get("signatures")
                if type(sigs) is list and sigs and type(sigs[0]) is str:
                    event = _new_event(ev.Transaction)
                    d = event.__dict__
                    d["slot"] = slot
                    d["signature"] = sigs[0]
                    if frame is None:
                        d["value"] = value
                    else:
                        d["_source"] = (frame, _fill_transaction)
                    return event
    try:
        ctx_slot, value = _unwrap(result)
        value = _obj(value, "transactionNotification.value")
        slot = value.get("slot", ctx_slot)
        return ev.Transaction(slot=_u64(slot, "transaction.slot"), signature=_tx_signature(value), value=value)
    except _Bad as exc:
        raise ProtocolError(str(exc), _raw(result)) from None


def _tx_signature(value: Dict[str, Any]) -> str:
    tx = value.get("transaction")
    if isinstance(tx, dict):
        sigs = tx.get("signatures")
        if isinstance(sigs, list) and sigs and isinstance(sigs[0], str):
            return sigs[0]
    if isinstance(tx, list) and len(tx) == 2 and tx[1] == "base64" and isinstance(tx[0], str):
        try:
            raw = base64.b64decode(tx[0], validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("transaction is not valid base64") from None
        if len(raw) >= 65 and raw[0] >= 1:  # shortvec count (< 128) then 64-byte signatures
            return b58encode(raw[1:65])
    raise _Bad("transaction has no signature")


def account_diff_from_result(result: Any, frame: Any = None) -> ev.AccountDiff:
    """An ``accountDiffNotification`` result → :class:`events.AccountDiff` (context may sit inside or around).
    With ``frame`` (:attr:`Notification.frame`), ``pre`` and ``post`` are left to be decoded from it on first access
    (both were checked here; see :class:`events._Deferred`)."""
    try:
        ctx_slot, value = _unwrap(result)
        value = _obj(value, "accountDiffNotification")
        ctx: Dict[str, Any] = value["context"] if isinstance(value.get("context"), dict) else {}
        slot = ctx.get("slot", value.get("slot", ctx_slot))
        pre, post = value.get("pre"), value.get("post")
        slot = _u64(slot, "accountDiff.slot")
        account = _str(_require(value, "account", "accountDiff"), "account")
        signature = _opt_str(value.get("signature"), "signature")
        pre = None if pre is None else _obj(pre, "pre")
        post = None if post is None else _obj(post, "post")
    except _Bad as exc:
        raise ProtocolError(str(exc), _raw(result)) from None
    event = _new_event(ev.AccountDiff)  # every field validated above; same instance as AccountDiff(...) builds
    d = event.__dict__
    d["slot"] = slot
    d["account"] = account
    d["signature"] = signature
    if frame is None:
        d["pre"] = pre
        d["post"] = post
    else:
        d["_source"] = (frame, _fill_account_diff)
    return event


def logs_from_result(result: Any, program_id: Optional[str] = None) -> ev.Logs:
    """A ``logsNotification`` result → :class:`events.Logs` (§9.2.2; ``program_id``: the subscription's address).

    Reads ``{context: {slot}, value: {signature, err, logs}}`` (standard Solana) and, by L5, a bare
    ``{slot, signature, err, logs}``; the slot may sit in ``context`` or in the value. ``logs: null`` (a node that
    records no logs) is an empty list. Anything else is a :class:`ProtocolError`."""
    try:
        value = _obj(result, "logsNotification.result")
        ctx_slot = None
        if "value" in value:
            ctx = value.get("context")
            ctx_slot = ctx.get("slot") if isinstance(ctx, dict) else None
            value = _obj(value["value"], "logsNotification.value")
        slot = _u64(ctx_slot if ctx_slot is not None else value.get("slot"), "logs.slot")
        signature = _str(_require(value, "signature", "logsNotification"), "logs.signature")
        raw_logs = value.get("logs")
        logs = () if raw_logs is None else tuple(_list(raw_logs, "logs.logs"))
        for line in logs:
            if not isinstance(line, str):
                raise _Bad(f"logs.logs: expected strings, got {type(line).__name__}")
        err = value.get("err")
    except _Bad as exc:
        raise ProtocolError(str(exc), _raw(result)) from None
    return ev.Logs(slot=slot, signature=signature, err=err, logs=logs, program_id=program_id)


def action_filter() -> Dict[str, Any]:
    """``actionSubscribe``'s filter (§9.2.1): keyless, an empty object."""
    return {}


def _action_accounts(raw: Any) -> Tuple[Optional[AccountData], ...]:
    out: List[Optional[AccountData]] = []
    for i, ui in enumerate(_list(raw, "actionNotification.accounts")):
        if ui is None:
            out.append(None)
            continue
        try:
            out.append(AccountData.from_ui_account(_obj(ui, f"accounts[{i}]")))
        except ValueError as exc:
            raise _Bad(f"actionNotification.accounts[{i}]: {exc}") from None
    return tuple(out)


def _outcomes_err(value: Mapping[str, Any]) -> Any:
    """Older servers: ``transaction_outcomes[].err``, the first error of the action's transactions."""
    outcomes = _get(value, "transaction_outcomes")
    if not isinstance(outcomes, list):
        return None
    for outcome in outcomes:
        if isinstance(outcome, dict):
            err = outcome.get("err")
            if err is not None:
                return err
    return None


def action_result_from_result(result: Any) -> ev.ActionResult:
    """An ``actionNotification`` result (``ActionResultNotification``, §9.2.1) → :class:`events.ActionResult`.

    Every key is read in both casings (the casing is [I]); ``result`` may be wrapped in ``{context, value}`` (L5) or
    carry its ``context`` inside; ``err`` falls back to the older ``transaction_outcomes[].err``; ``committed``
    absent reads as False (nothing is known to have been committed)."""
    try:
        ctx_slot, value = _unwrap(result)
        value = _obj(value, "actionNotification")
        ctx = value.get("context")
        if isinstance(ctx, dict) and ctx.get("slot") is not None:
            ctx_slot = ctx.get("slot")
        slot = _get(value, "slot")
        slot = _u64(ctx_slot if slot is None else slot, "action.slot")
        action_index = _u64(_require(value, "action_index", "actionNotification"), "action.actionIndex")
        batch_index = _opt_u64(_get(value, "batch_index"), "action.batchIndex")
        label = _opt_str(_get(value, "label"), "action.label")
        committed = _get(value, "committed", False)
        if not isinstance(committed, bool):
            raise _Bad(f"action.committed: expected a bool, got {type(committed).__name__}")
        err = _get(value, "err")
        if err is None:
            err = _outcomes_err(value)
        logs = tuple(_str(line, "action.logs[]") for line in _list(_get(value, "logs") or [], "action.logs"))
        units = _opt_u64(_get(value, "units_consumed"), "action.unitsConsumed")
        fee = _opt_u64(_get(value, "fee"), "action.fee")
        accounts = _action_accounts(_get(value, "accounts") or [])
    except _Bad as exc:
        raise ProtocolError(str(exc), _raw(result)) from None
    return ev.ActionResult(slot=slot, action_index=action_index, batch_index=batch_index, label=label,
                           committed=committed, err=err, logs=logs, units_consumed=units or 0, fee=fee,
                           return_data=_get(value, "return_data"), accounts=accounts, matched=_get(value, "matched"),
                           raw=value)
