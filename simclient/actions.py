"""Scheduled actions (PROTOCOL §3.1.1): user transactions the server runs at anchors of the replay, with results on
the data plane (``session.subscribe_actions()`` → :class:`simclient.events.ActionResult`).

    from simclient import CreateSession, ScheduledAction, after_slot, before_match, program_executed

    probe = ScheduledAction(after_slot([s + 10]), [tx_bytes], kind="simulate", label="probe",
                            return_accounts=[vault])
    create = CreateSession(start_slot=s, slot_count=100, actions=[probe])

Anchors: :func:`before_slot` / :func:`after_slot` (one transaction per listed slot: ``transactions[i]`` fires at
``slots[i]``), :func:`before_every_slot` / :func:`after_every_slot` (period ``n > 0``; every transaction each time),
:func:`before_match` / :func:`after_match` (around every batch matching a discovery filter, §5.4). Kinds:
``"simulate"`` (run, report, never commit) and ``"send"`` (commits; refused with ``replay_account_state``).

Everything is validated on construction (``ValueError`` naming the field). The wire shape (externally tagged,
camelCase, [I]) is :func:`simclient.protocol.encode_scheduled_action`; the transaction blob is
:func:`simclient.protocol.encode_action_transactions`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

from .builders import (
    _SOLDERS_TRANSACTIONS,
    _account_to_data,
    _check_pubkey,
    _check_uint,
    _is_solders,
    _transaction_to_b64,
    program_executed,
)
from .protocol import AccountData

__all__ = ["ActionAnchor", "ScheduledAction", "ACTION_KINDS", "before_slot", "after_slot", "before_every_slot",
           "after_every_slot", "before_match", "after_match"]

#: ``ActionKind`` values (lowercase on the wire).
ACTION_KINDS = ("simulate", "send")

#: Anchor variants → wire tag (§3.1.1 ``ActionAnchor``, 0.23).
_SLOT_ANCHORS = {"before_slot": "beforeSlot", "after_slot": "afterSlot"}
_EVERY_ANCHORS = {"before_every_slot": "beforeEverySlot", "after_every_slot": "afterEverySlot"}
_MATCH_ANCHORS = {"before_match": "beforeMatch", "after_match": "afterMatch"}
_WIRE_TAGS = {**_SLOT_ANCHORS, **_EVERY_ANCHORS, **_MATCH_ANCHORS}
_FROM_WIRE = {tag: name for name, tag in _WIRE_TAGS.items()}


def _discovery_filter(value: Any, field: str) -> Dict[str, Any]:
    """A §5.4 filter: ``program_executed(...)`` / ``oracle_update(...)`` dicts, or a program id (programExecuted)."""
    if isinstance(value, str):
        _check_pubkey(field, value)
        return program_executed(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"{field} must be a discovery filter like program_executed(id) or oracle_update(...), "
                         f"got {value!r}")
    (tag, body), = value.items()
    if tag == "programExecuted":
        _check_pubkey(f"{field}.programExecuted", body)
    elif tag == "oracleUpdate":
        if not isinstance(body, Mapping):
            raise ValueError(f"{field}.oracleUpdate must be an object {{programs, accounts}}, got {body!r}")
        for key in ("programs", "accounts"):
            items = body.get(key) or ()
            if isinstance(items, str):
                raise ValueError(f"{field}.oracleUpdate.{key} must be a list of base58 keys, not one string")
            for item in items:
                _check_pubkey(f"{field}.oracleUpdate.{key}[]", item)
        return {"oracleUpdate": {"programs": list(body.get("programs") or ()),
                                 "accounts": list(body.get("accounts") or ())}}
    else:
        raise ValueError(f"{field}: unknown discovery filter {tag!r} (expected programExecuted or oracleUpdate)")
    return dict(value)


@dataclass(frozen=True)
class ActionAnchor:
    """Where a :class:`ScheduledAction` fires. Build one with the constructors below (or the module functions of
    the same names). ``variant`` is the snake_case variant name; exactly one of ``slots`` / ``every_n_slots`` /
    ``filter`` is set, matching it."""

    variant: str
    slots: Sequence[int] = ()
    every_n_slots: Optional[int] = None
    filter: Optional[Dict[str, Any]] = field(default=None, hash=False)

    def __post_init__(self) -> None:
        snake = _FROM_WIRE.get(self.variant) if isinstance(self.variant, str) else None
        if snake is not None:  # the wire (camelCase) name is accepted too
            object.__setattr__(self, "variant", snake)
        if self.variant in _SLOT_ANCHORS:
            if isinstance(self.slots, (str, bytes)) or not isinstance(self.slots, (list, tuple)):
                raise ValueError(f"{self.variant}.slots must be a list of slot numbers, got {self.slots!r}")
            object.__setattr__(self, "slots", tuple(self.slots))
            if not self.slots:
                raise ValueError(f"{self.variant}.slots must name at least one slot")
            for s in self.slots:
                _check_uint(f"{self.variant}.slots[]", s)
        elif self.variant in _EVERY_ANCHORS:
            _check_uint(f"{self.variant}.n", self.every_n_slots, minimum=1)
        elif self.variant in _MATCH_ANCHORS:
            object.__setattr__(self, "filter", _discovery_filter(self.filter, f"{self.variant}.filter"))
        else:
            raise ValueError(f"anchor variant must be one of {sorted(_WIRE_TAGS)}, got {self.variant!r}")

    @property
    def wire_tag(self) -> str:
        """The camelCase variant name on the wire (``afterSlot`` ...)."""
        return _WIRE_TAGS[self.variant]

    @property
    def is_slot_anchor(self) -> bool:
        return self.variant in _SLOT_ANCHORS

    @classmethod
    def before_slot(cls, slots: Sequence[int]) -> "ActionAnchor":
        """Before the block transactions of each slot in ``slots`` (``transactions[i]`` at ``slots[i]``)."""
        return cls("before_slot", slots=slots)

    @classmethod
    def after_slot(cls, slots: Sequence[int]) -> "ActionAnchor":
        """After the block transactions of each slot in ``slots`` (``transactions[i]`` at ``slots[i]``)."""
        return cls("after_slot", slots=slots)

    @classmethod
    def before_every_slot(cls, n: int) -> "ActionAnchor":
        """Before the block transactions of every ``n``-th slot (``n`` > 0)."""
        return cls("before_every_slot", every_n_slots=n)

    @classmethod
    def after_every_slot(cls, n: int) -> "ActionAnchor":
        """After the block transactions of every ``n``-th slot (``n`` > 0)."""
        return cls("after_every_slot", every_n_slots=n)

    @classmethod
    def before_match(cls, filter: Any) -> "ActionAnchor":
        """Immediately before every batch matching the discovery ``filter`` (§5.4)."""
        return cls("before_match", filter=filter)

    @classmethod
    def after_match(cls, filter: Any) -> "ActionAnchor":
        """Immediately after every batch matching the discovery ``filter`` (§5.4)."""
        return cls("after_match", filter=filter)


before_slot = ActionAnchor.before_slot
after_slot = ActionAnchor.after_slot
before_every_slot = ActionAnchor.before_every_slot
after_every_slot = ActionAnchor.after_every_slot
before_match = ActionAnchor.before_match
after_match = ActionAnchor.after_match


@dataclass(frozen=True)
class ScheduledAction:
    """One scheduled action (§3.1.1), passed as ``CreateSession(actions=[...])``.

    ``transactions`` take what :meth:`Continue.push_transaction` takes (solders transactions, bincode bytes, base64
    strings) and are kept as base64 of the bincode bytes. ``return_accounts`` (base58) are reported back,
    positionally, in :attr:`ActionResult.accounts`; ``account_overrides`` (address → :class:`AccountData` or a
    solders Account) apply while the action runs. ``label`` tells actions apart in the keyless result stream (so
    does :attr:`ActionResult.action_index`, the position in ``actions``)."""

    anchor: ActionAnchor
    transactions: Sequence[Any]
    kind: str = "simulate"
    label: Optional[str] = None
    return_accounts: Sequence[str] = ()
    account_overrides: Mapping[str, Any] = field(default_factory=dict, hash=False)
    feeds_reroute: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.anchor, ActionAnchor):
            raise ValueError(f"anchor must be an ActionAnchor (after_slot([...]), before_match(filter) ...), "
                             f"got {type(self.anchor).__name__}")
        txs: Any = self.transactions
        if txs is None or isinstance(txs, (str, bytes, bytearray, memoryview)) or _is_solders(
                txs, _SOLDERS_TRANSACTIONS):
            raise ValueError("transactions must be a non-empty sequence of transactions, not a single one")
        encoded = []
        for i, tx in enumerate(txs):
            try:
                encoded.append(_transaction_to_b64(tx))
            except ValueError as exc:
                raise ValueError(f"transactions[{i}]: {exc}") from None
        if not encoded:
            raise ValueError("transactions must hold at least one transaction")
        object.__setattr__(self, "transactions", tuple(encoded))
        if self.anchor.is_slot_anchor and len(self.anchor.slots) != len(encoded):
            raise ValueError(f"transactions: the {self.anchor.variant} anchor fires transactions[i] at slots[i], so "
                             f"the two must have the same length (slots: {len(self.anchor.slots)}, "
                             f"transactions: {len(encoded)})")
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"kind must be one of {ACTION_KINDS}, got {self.kind!r}")
        if self.label is not None and not isinstance(self.label, str):
            raise ValueError(f"label must be a str or None, got {type(self.label).__name__}")
        if isinstance(self.return_accounts, str):
            raise ValueError("return_accounts must be a sequence of base58 keys, not one string")
        accounts = tuple(str(a) for a in (self.return_accounts or ()))
        for a in accounts:
            _check_pubkey("return_accounts[]", a)
        object.__setattr__(self, "return_accounts", accounts)
        overrides: Dict[str, AccountData] = {}
        raw = self.account_overrides or {}
        if not isinstance(raw, Mapping):
            raise ValueError("account_overrides must be a mapping of address to AccountData")
        for addr, acct in raw.items():
            key = str(addr)
            _check_pubkey("account_overrides address", key)
            try:
                overrides[key] = _account_to_data(acct)
            except ValueError as exc:
                raise ValueError(f"account_overrides[{key}]: {exc}") from None
        object.__setattr__(self, "account_overrides", overrides)
        if not isinstance(self.feeds_reroute, bool):
            raise ValueError(f"feeds_reroute must be a bool, got {self.feeds_reroute!r}")
