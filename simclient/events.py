"""The events a session yields: frozen dataclasses, ``match``-friendly.

Control events (from the control WebSocket) and data-plane events (from the session's subscriptions) share one
stream per session. ``Transaction.value`` / ``AccountDiff.pre|post`` keep the server's JSON as dicts, so nothing
the server sent is lost; typed helpers decode it on demand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .protocol import AccountData, BacktestError

__all__ = [
    "KNOWN_STATUSES",
    "STARTUP_STATUSES",
    "Event",
    "ReadyForContinue",
    "Slot",
    "Status",
    "Paused",
    "DiscoveryBatch",
    "Transaction",
    "AccountDiff",
    "Logs",
    "ActionResult",
    "Completed",
    "ServerError",
    "SessionSummary",
]


class Event:
    """Marker base class of every event."""

    __slots__ = ()


class _Deferred:
    """Fields decoded from the notification's frame on first access (``Transaction.value``, ``AccountDiff.pre`` /
    ``post``).

    The subscription reader decodes and checks every frame in full (a malformed one never becomes an event), keeps
    what it needs (slot, signature, dedup key) and drops the rest; the event holds the frame's bytes and the
    function that fills the deferred fields from them (``_source``: the converter's own extraction, in
    :mod:`simclient.protocol`). The first read of a deferred field decodes the same bytes again, on the reading
    thread: the same values the eager path gives. Why: a decoded tree handed from
    the reader thread to the consumer thread cost more than the decode itself (docs/performance.md: the garbage
    collector and the other core's cache), and a consumer that never reads ``value`` pays nothing for it.
    A deferred field must have no class-level default (one would be found before ``__getattr__`` is asked)."""

    __slots__ = ()
    _DEFERRED: Tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:  # only for names not in the instance's __dict__
        if name in type(self)._DEFERRED:
            d = self.__dict__
            source = d.get("_source")
            if source is not None:
                frame, fill = source
                fill(frame, d)  # frozen: the fields are set in __dict__, as the fast constructors do
                d.pop("_source", None)
            if name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass(frozen=True)
class ReadyForContinue(Event):
    """The session is idle and waits for ``send_continue`` / ``send_continue_to``."""


@dataclass(frozen=True)
class Slot(Event):
    """A slot became current or finished executing (skipped slots are never announced)."""

    slot: int


#: The ``BacktestStatus`` phases this SDK knows (PROTOCOL §5.2), startup ones first: ``bundleReady`` comes between
#: ``preparingBundle`` and ``startingRuntime``. A :class:`Status` may carry any other string (passed through).
KNOWN_STATUSES = ("preparingBundle", "bundleReady", "startingRuntime", "decodedTransactions",
                  "appliedAccountModifications", "readyToExecuteUserTransactions", "executedUserTransactions",
                  "executingBlockTransactions", "executedBlockTransactions", "programAccountsLoaded")
#: Phases before a session's first slot (what a progress display narrates while waiting).
STARTUP_STATUSES = ("preparingBundle", "bundleReady", "startingRuntime")


@dataclass(frozen=True)
class Status(Event):
    """A progress phase (``preparingBundle``, ``bundleReady``, ``startingRuntime``, ``executedBlockTransactions`` …,
    see :data:`KNOWN_STATUSES`).

    Unknown phases are passed through unchanged."""

    @property
    def known(self) -> bool:
        return self.status in KNOWN_STATUSES

    status: str


@dataclass(frozen=True)
class Paused(Event):
    """Reached a ``continue_to`` target: the session stopped immediately before ``(slot, batch_index)``."""

    slot: int
    batch_index: Optional[int] = None


@dataclass(frozen=True)
class DiscoveryBatch(Event):
    """An upcoming batch matches one of the session's discovery filters."""

    slot: int
    batch_index: int
    matched: Tuple[Any, ...] = ()
    transactions: Tuple[Any, ...] = ()
    transaction_indices: Tuple[int, ...] = ()


@dataclass(frozen=True)
class SessionSummary:
    """Counters of a finished session (``sendSummary``)."""

    correct_simulation: int = 0
    incorrect_simulation: int = 0
    execution_errors: int = 0
    balance_diff: int = 0
    log_diff: int = 0
    unsanitizable: int = 0
    reroute_stats: Any = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Completed(Event):
    """The range is exhausted and every trailing subscription notification was delivered before this."""

    summary: Optional[SessionSummary] = None


@dataclass(frozen=True)
class ServerError(Event):
    """A non-terminal server error, delivered in order (terminal ones raise :class:`SessionError`)."""

    error: "BacktestError"


@dataclass(frozen=True)
class Transaction(_Deferred, Event):
    """One executed transaction from ``transactionSubscribe`` (what ``getTransaction`` would return).

    ``value`` is decoded from the frame when first read (see :class:`_Deferred`); every frame was checked whole
    when it arrived."""

    _DEFERRED = ("value",)

    slot: int
    signature: str
    value: Dict[str, Any] = field(compare=True, hash=False)

    @property
    def success(self) -> bool:
        meta = self.value.get("meta") or {}
        return meta.get("err") is None

    @property
    def error(self) -> Any:
        return (self.value.get("meta") or {}).get("err")

    @property
    def logs(self) -> list[str]:
        return list((self.value.get("meta") or {}).get("logMessages") or [])

    @property
    def signature_obj(self) -> Any:
        """A ``solders.signature.Signature`` when the ``solana`` extra is installed, else the base58 string."""
        try:
            from solders.signature import Signature  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return self.signature
        return Signature.from_string(self.signature)


@dataclass(frozen=True)
class AccountDiff(_Deferred, Event):
    """One account write from ``accountDiffSubscribe``. ``pre`` is None for a created account, ``post`` for a
    deleted one; both are Solana ``UiAccount`` dicts, decoded from the frame when first read (see
    :class:`_Deferred`)."""

    _DEFERRED = ("pre", "post")

    slot: int
    account: str
    signature: Optional[str]
    pre: Optional[Dict[str, Any]] = field(default=None, hash=False)
    post: Optional[Dict[str, Any]] = field(default=None, hash=False)

    @property
    def key(self) -> Tuple[int, str, Optional[str]]:
        """The dedup key ``(slot, account, signature)``."""
        return (self.slot, self.account, self.signature)

    def pre_account(self) -> "Optional[AccountData]":
        """``pre`` decoded into :class:`simclient.protocol.AccountData` (None when absent)."""
        from .protocol import AccountData

        return None if self.pre is None else AccountData.from_ui_account(self.pre)

    def post_account(self) -> "Optional[AccountData]":
        from .protocol import AccountData

        return None if self.post is None else AccountData.from_ui_account(self.post)

    @property
    def account_pubkey(self) -> Any:
        """A ``solders.pubkey.Pubkey`` when the ``solana`` extra is installed, else the base58 string."""
        try:
            from solders.pubkey import Pubkey  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return self.account
        return Pubkey.from_string(self.account)


# A deferred field must not be found on the class (see _Deferred): the constructor keeps its defaults (None).
del AccountDiff.pre, AccountDiff.post


@dataclass(frozen=True)
class Logs(Event):
    """One transaction's log messages from ``logsSubscribe`` (``{"mentions": [program_id]}``, PROTOCOL §9.2.2).

    ``err`` is the transaction's error (None when it succeeded), ``logs`` its log messages. ``program_id`` is the
    address of the subscription that delivered it (standard Solana pushes a transaction once per subscription whose
    address it mentions, so one mentioning two subscribed programs arrives once for each); it is not part of the
    notification, the SDK fills it in (None when a converter is used on its own)."""

    slot: int
    signature: str
    err: Any = field(default=None, hash=False)
    logs: Tuple[str, ...] = ()
    program_id: Optional[str] = None

    @property
    def success(self) -> bool:
        return self.err is None

    @property
    def key(self) -> Tuple[Optional[str], str]:
        """What the SDK delivers at most once: ``(program_id, signature)``."""
        return (self.program_id, self.signature)


@dataclass(frozen=True)
class ActionResult(Event):
    """The result of one firing of a scheduled action (``actionSubscribe``, PROTOCOL §9.2.1).

    ``action_index`` is the action's position in ``CreateSession.actions`` (``label`` its label): every action
    shares one keyless stream. ``batch_index`` is the matched batch of a ``before_match``/``after_match`` anchor
    (None when the server sends none). ``committed``: the action's effects were committed (a ``send`` that
    succeeded). ``accounts`` holds the ``return_accounts``, positionally, decoded (None: the account does not
    exist). ``matched`` is the server's ``EncodedBinary`` of the matched transaction, as sent; ``raw`` the whole
    notification."""

    slot: int
    batch_index: Optional[int] = None  # field order as in the design contract (positional ``match`` patterns)
    action_index: int = 0
    label: Optional[str] = None
    committed: bool = False
    err: Any = field(default=None, hash=False)
    logs: Tuple[str, ...] = ()
    units_consumed: int = 0
    fee: Optional[int] = None
    return_data: Any = field(default=None, hash=False)
    accounts: "Tuple[Optional[AccountData], ...]" = ()
    matched: Any = field(default=None, hash=False)
    raw: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def key(self) -> Tuple[int, int, Optional[int]]:
        """The dedup key ``(slot, action_index, batch_index)``."""
        return (self.slot, self.action_index, self.batch_index)

    def matched_bytes(self) -> Optional[bytes]:
        """``matched`` decoded (the bincode ``TxWithMeta`` bytes), None when absent."""
        m = self.matched
        if m is None:
            return None
        import base64

        if isinstance(m, dict):
            return base64.b64decode(m.get("data", ""))
        if isinstance(m, list) and m:
            return base64.b64decode(m[0])
        return base64.b64decode(m)

    @property
    def success(self) -> bool:
        return self.err is None

