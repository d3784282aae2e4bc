"""Request builders: :class:`CreateSession` and :class:`Continue`, validated on construction.

A bad value raises ``ValueError`` naming the field. The wire encoding lives in :mod:`simclient.protocol`.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._base58 import is_pubkey
from .protocol import AccountData

__all__ = ["CreateSession", "Continue", "program_executed", "oracle_update", "MAX_DISCONNECT_TIMEOUT_SECS"]

#: §3.1: ``disconnectTimeoutSecs`` may not exceed 900.
MAX_DISCONNECT_TIMEOUT_SECS = 900
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def _check_uint(name: str, value: Any, maximum: int = _U64, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def _check_pubkey(name: str, value: Any) -> None:
    if not is_pubkey(value):
        raise ValueError(f"{name} must be a base58 public key (32 bytes), got {value!r}")


def program_executed(program_id: str) -> Dict[str, Any]:
    """Discovery filter ``ProgramExecuted(program)`` (§5.4)."""
    _check_pubkey("program_executed.program_id", program_id)
    return {"programExecuted": program_id}


def oracle_update(programs: Sequence[str], accounts: Sequence[str] = ()) -> Dict[str, Any]:
    """Discovery filter ``OracleUpdate{programs, accounts}`` (§5.4, servers 0.28+)."""
    for p in programs:
        _check_pubkey("oracle_update.programs[]", p)
    for a in accounts:
        _check_pubkey("oracle_update.accounts[]", a)
    return {"oracleUpdate": {"programs": list(programs), "accounts": list(accounts)}}


@dataclass(frozen=True)
class CreateSession:
    """What to replay. Both bounds are inclusive; give exactly one of ``end_slot`` / ``slot_count``
    (``slot_count=N`` replays N + 1 slots, like the official builder: ``endSlot = startSlot + slotCount``).

    ``discoveries`` takes ``program_executed(...)`` / ``oracle_update(...)`` dicts or plain program-id strings
    (read as ``programExecuted``). ``actions`` takes :class:`simclient.ScheduledAction` values (§3.1.1); a ``send``
    one is refused with ``replay_account_state=True`` (wire ``replayAccountState``, sent only when on). ``extra`` is
    merged into the wire params for server fields newer than this SDK.
    """

    start_slot: int
    end_slot: Optional[int] = None
    slot_count: Optional[int] = None
    signer_filter: Tuple[str, ...] = ()
    send_summary: bool = False
    disconnect_timeout_secs: int = MAX_DISCONNECT_TIMEOUT_SECS
    capacity_wait_timeout_secs: Optional[int] = None
    extra_compute_units: Optional[int] = None
    discoveries: Tuple[Dict[str, Any], ...] = ()
    actions: Tuple[Any, ...] = ()
    account_overrides: Optional[Mapping[int, Mapping[str, AccountData]]] = None
    extra: Optional[Mapping[str, Any]] = None
    replay_account_state: bool = False

    def __post_init__(self) -> None:
        _check_uint("start_slot", self.start_slot)
        if (self.end_slot is None) == (self.slot_count is None):
            raise ValueError("give exactly one of end_slot / slot_count")
        if self.end_slot is not None:
            _check_uint("end_slot", self.end_slot)
            if self.end_slot < self.start_slot:
                raise ValueError(f"end_slot ({self.end_slot}) must be >= start_slot ({self.start_slot})")
        if self.slot_count is not None:
            _check_uint("slot_count", self.slot_count, _U64 - self.start_slot)
        if not isinstance(self.send_summary, bool):
            raise ValueError(f"send_summary must be a bool, got {self.send_summary!r}")
        _check_uint("disconnect_timeout_secs", self.disconnect_timeout_secs, MAX_DISCONNECT_TIMEOUT_SECS)
        if self.capacity_wait_timeout_secs is not None:
            _check_uint("capacity_wait_timeout_secs", self.capacity_wait_timeout_secs, _U16)
        if self.extra_compute_units is not None:
            _check_uint("extra_compute_units", self.extra_compute_units, _U32)
        if isinstance(self.signer_filter, str):
            raise ValueError("signer_filter must be a sequence of base58 keys, not one string")
        object.__setattr__(self, "signer_filter", tuple(self.signer_filter))
        for key in self.signer_filter:
            _check_pubkey("signer_filter[]", key)
        discoveries = []
        for d in self.discoveries if not isinstance(self.discoveries, (str, dict)) else [self.discoveries]:
            if isinstance(d, str):
                _check_pubkey("discoveries[]", d)
                d = program_executed(d)
            if not isinstance(d, dict) or len(d) != 1:
                raise ValueError(f"discoveries[] must be a filter like {{'programExecuted': id}}, got {d!r}")
            if "programExecuted" in d:
                _check_pubkey("discoveries[].programExecuted", d["programExecuted"])
            discoveries.append(d)
        object.__setattr__(self, "discoveries", tuple(discoveries))
        if not isinstance(self.replay_account_state, bool):
            raise ValueError(f"replay_account_state must be a bool, got {self.replay_account_state!r}")
        object.__setattr__(self, "actions", _check_actions(self.actions, self.replay_account_state))
        if self.account_overrides is not None:
            for slot, accounts in self.account_overrides.items():
                _check_uint("account_overrides slot", slot)
                for addr, acct in accounts.items():
                    _check_pubkey("account_overrides address", addr)
                    if not isinstance(acct, AccountData):
                        raise ValueError(f"account_overrides[{slot}][{addr}] must be AccountData")
        if self.extra is not None and not isinstance(self.extra, Mapping):
            raise ValueError("extra must be a mapping of wire field names to values")

    @property
    def resolved_end_slot(self) -> int:
        """The inclusive end slot sent on the wire."""
        if self.end_slot is not None:
            return self.end_slot
        assert self.slot_count is not None
        return self.start_slot + self.slot_count

    @property
    def total_slots(self) -> int:
        return self.resolved_end_slot - self.start_slot + 1


def _check_actions(actions: Any, replay_account_state: bool) -> Tuple[Any, ...]:
    """``CreateSession.actions``: ScheduledAction instances (or raw wire dicts, sent as given); a ``send`` one is
    refused with ``replay_account_state`` (§3.1.1: the server rejects that combination)."""
    from .actions import ScheduledAction  # actions.py builds on this module

    if actions is None:
        return ()
    if isinstance(actions, ScheduledAction):
        actions = [actions]
    elif isinstance(actions, (str, bytes, Mapping)) or not isinstance(actions, Iterable):
        raise ValueError(f"actions must be a sequence of ScheduledAction, got {type(actions).__name__}")
    out = tuple(dict(a) if isinstance(a, Mapping) else a for a in actions)
    for i, action in enumerate(out):
        if isinstance(action, dict):  # a raw wire action, sent as given (fields newer than this SDK)
            kind = action.get("kind")
        elif isinstance(action, ScheduledAction):
            kind = action.kind
        else:
            raise ValueError(f"actions[{i}] must be a simclient.ScheduledAction (or a raw wire action dict), got "
                             f"{type(action).__name__}")
        if kind == "send" and replay_account_state:
            raise ValueError(f"actions[{i}]: a 'send' action commits state, which replay_account_state=True "
                             "forbids (the server rejects it); use kind='simulate' or turn replay_account_state off")
    return out


def _transaction_to_b64(tx: Any) -> str:
    """solders (Versioned)Transaction, raw bytes, or a base64 string → base64 of the bincode bytes (§3.2)."""
    if isinstance(tx, (bytes, bytearray, memoryview)):
        raw = bytes(tx)
        if not raw:
            raise ValueError("transaction bytes are empty")
        return base64.b64encode(raw).decode()
    if isinstance(tx, str):
        try:
            raw = base64.b64decode(tx, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("transaction string is not valid base64") from None
        if not raw:
            raise ValueError("transaction is empty")
        return tx
    if _is_solders(tx, _SOLDERS_TRANSACTIONS):
        # bytes() of a solders transaction is its wire (bincode) form; a legacy Transaction serialises to the same
        # bytes as the VersionedTransaction wrapping its message, so both are accepted (§3.2).
        return base64.b64encode(bytes(tx)).decode()
    # Only transaction types are serialised: other solders objects have bytes() too (a Keypair's are its secret key),
    # and pushing them would send the wrong bytes, or a secret, to the server.
    raise ValueError(
        f"transaction must be a solders Transaction/VersionedTransaction, bytes or a base64 str, "
        f"got {type(tx).__module__}.{type(tx).__name__}")


#: solders classes serialised by ``push_transaction`` (matched by name: solders is an optional dependency).
_SOLDERS_TRANSACTIONS = frozenset({"Transaction", "VersionedTransaction"})


def _is_solders(obj: Any, names: frozenset[str]) -> bool:
    cls = type(obj)
    return (cls.__module__ or "").startswith("solders") and cls.__name__ in names


def _account_to_data(acct: Any) -> AccountData:
    if isinstance(acct, AccountData):
        return acct
    if _is_solders(acct, frozenset({"Account"})):
        return AccountData.from_solders(acct)
    raise ValueError(f"account must be AccountData or a solders Account, "
                     f"got {type(acct).__module__}.{type(acct).__name__}")


@dataclass
class Continue:
    """One ``continue``: run ``advance_count`` slots (skipped slots count), then pause again.

    ``transactions`` are base64 bincode transactions run after the block's own; ``modify_account_states``
    overrides accounts before execution. Both helpers return ``self`` so calls chain.
    """

    advance_count: int = 1
    transactions: List[str] = field(default_factory=list)
    modify_account_states: Dict[str, AccountData] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_uint("advance_count", self.advance_count, minimum=1)
        txs: Iterable[Any] = self.transactions or ()
        if isinstance(txs, (str, bytes, bytearray, memoryview)) or _is_solders(txs, _SOLDERS_TRANSACTIONS):
            raise ValueError("transactions must be a sequence of transactions, not a single one")
        self.transactions = [_transaction_to_b64(t) for t in txs]
        mods = dict(self.modify_account_states or {})
        self.modify_account_states = {}
        for addr, acct in mods.items():
            self.modify_account(addr, acct)

    def push_transaction(self, tx: Any) -> "Continue":
        """Append a transaction (solders object, bincode bytes, or base64 str)."""
        self.transactions.append(_transaction_to_b64(tx))
        return self

    def modify_account(self, address: Any, account: Any) -> "Continue":
        """Override ``address`` (base58 str or solders Pubkey) with ``account`` before execution."""
        addr = str(address)
        _check_pubkey("modify_account.address", addr)
        self.modify_account_states[addr] = _account_to_data(account)
        return self

    def modify_program(self, program_id: Any, elf_bytes: bytes, **options: Any) -> "Continue":
        """Replace upgradeable program ``program_id``'s code with ``elf_bytes`` from this continue on: adds the program
        and ProgramData overrides of :func:`simclient.programs.modify_program` (``options`` are passed on)."""
        from .programs import modify_program

        for addr, acct in modify_program(program_id, elf_bytes, **options).items():
            self.modify_account(addr, acct)
        return self
