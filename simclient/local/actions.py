"""Scheduled actions in the local simulator (PROTOCOL §3.1.1, §9.2.1): parsing, execution model, ground truth.

The simulator cannot run real transactions, so an action's outcome is a documented, deterministic function of the
action, its anchor position and the synthetic state, which a test predicts with :func:`expected_action_results`
(the live sessions run the very same :class:`ActionEngine`).

**Anchors** (a batch is one block transaction, as for discoveries):

* ``beforeSlot{slots}`` / ``afterSlot{slots}``: at slot ``s`` the transactions ``transactions[i]`` with
  ``slots[i] == s`` run together as one firing, before the slot's first batch / after its last one.
* ``beforeEverySlot{everyNSlots: n}`` / ``afterEverySlot``: every transaction, at every produced slot ``s`` with
  ``(s - startSlot) % n == 0``, where ``startSlot`` is the *create's* start slot (so a parallel run's sub-sessions
  keep the phase of the whole range, and the first slot of the range fires).
* ``beforeMatch{filter}`` / ``afterMatch{filter}``: every transaction, immediately before / after every batch that
  matches the discovery filter (§5.4, the same matching as ``discoveries``). A session paused (``continueTo``) at
  ``(s, b)`` has not yet run batch ``b``'s ``beforeMatch`` actions: they fire when the batch runs (nor, at ``(s, 0)``,
  the slot's ``beforeSlot`` ones).

Skipped slots fire nothing. A sub-session of a parallel run fires the anchors that fall in its own range, with its
own state (sub-sessions do not see each other's commits). Within one anchor point actions fire in ``actions`` order.

**Outcome of a firing** of action ``k`` with transactions ``txs`` at slot ``s`` (batch ``b`` for match anchors, else
``batchIndex: null``):

* ``err``: ``{"InstructionError": [j, {"Custom": 1}]}`` when transaction ``j`` (first one) contains the bytes
  :data:`FAIL_MARKER`, else null.
* ``unitsConsumed``: ``sum(UNITS_BASE + UNITS_PER_BYTE * len(tx))``; ``fee``: ``FEE_PER_TX * len(txs)``.
* ``logs``: per transaction ``"Program log: simclient-local action <k> (<label>) <kind> slot <s> batch <b> tx <j>"``.
* ``returnData``: ``{"programId": SYSTEM_PROGRAM, "data": [base64("<k>:<s>:<b>"), "base64"]}``.
* ``accounts``: per ``returnAccounts`` entry, the account *after* the action: its state at the anchor (the chain's
  state, overlaid by this session's earlier committed actions, overlaid by the action's ``accountOverrides``) with
  ``LAMPORTS_PER_TX * len(txs)`` lamports added (nothing added when ``err``); null for an unknown account.
* ``committed``: ``kind == "send"`` and no ``err``. A committed firing writes its ``accountOverrides`` and its
  returned accounts' new states into the session's state (like an account override: visible to later actions and
  to RPC ``getAccountInfo`` until the chain itself next writes the account). ``simulate`` never writes.

Actions read the chain and the session's own committed actions only (not ``continue``/RPC overrides), so the
ground truth is a function of the create request and the chain alone.

**Wire** (§3.1.1 [I]): anchors externally tagged, any casing of tags and keys (``afterSlot``/``after_slot``), or an
internally tagged ``{"type": "afterSlot", ...}``; ``kind`` any casing. Each ``transactions`` entry is base64 of the
bincode bytes, or base64 of a zstd frame of them (told apart by the zstd magic; decompressing needs the
``zstandard`` package). ``send`` with ``replayAccountState`` is refused (``invalidRequest``).
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import wire
from .chain import SYSTEM_PROGRAM, SyntheticChain

__all__ = ["ParsedAction", "ActionEngine", "Firing", "parse_actions", "expected_action_results", "render_result",
           "FAIL_MARKER", "UNITS_BASE", "UNITS_PER_BYTE", "FEE_PER_TX", "LAMPORTS_PER_TX"]

FAIL_MARKER = b"simclient-local:fail"
UNITS_BASE = 1000
UNITS_PER_BYTE = 10
FEE_PER_TX = 5000
LAMPORTS_PER_TX = 1000
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_ANCHORS = {"beforeslot": "beforeSlot", "afterslot": "afterSlot", "beforeeveryslot": "beforeEverySlot",
            "aftereveryslot": "afterEverySlot", "beforematch": "beforeMatch", "aftermatch": "afterMatch"}

Pos = Tuple[int, int]


@dataclass
class ParsedAction:
    index: int
    anchor: str                      # canonical camelCase tag
    kind: str                        # "simulate" | "send"
    transactions: List[bytes]
    slots: List[int] = field(default_factory=list)
    every: int = 0
    filter: Optional[Dict[str, Any]] = None
    overrides: Dict[str, Dict[str, Any]] = field(default_factory=dict)   # address -> UiAccount
    return_accounts: List[str] = field(default_factory=list)
    label: Optional[str] = None
    feeds_reroute: bool = False


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _decode_tx(index: int, j: int, t: Any) -> bytes:
    if not isinstance(t, str):
        raise wire.RequestError({"invalidTransactionEncoding": {"index": j, "error": f"action {index}: expected a "
                                                                                     "base64 string"}})
    try:
        raw = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise wire.RequestError({"invalidTransactionEncoding": {"index": j, "error": f"action {index}: {exc}"}}) \
            from None
    if raw.startswith(_ZSTD_MAGIC):
        try:
            import zstandard  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise wire.RequestError({"invalidTransactionEncoding": {"index": j, "error": (
                f"action {index}: a zstd-compressed transaction, but the simulator has no 'zstandard' package")}}) \
                from None
        try:
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        except zstandard.ZstdError as exc:
            raise wire.RequestError({"invalidTransactionEncoding": {"index": j, "error": f"action {index}: {exc}"}}) \
                from None
    if not raw:
        raise wire.RequestError({"invalidTransactionFormat": {"index": j, "error": f"action {index}: empty"}})
    return raw


def _anchor(index: int, raw: Any) -> Tuple[str, Any]:
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        tag, body = raw["type"], {k: v for k, v in raw.items() if k != "type"}
    elif isinstance(raw, dict) and len(raw) == 1 and isinstance(next(iter(raw)), str):
        (tag, body), = raw.items()
    else:
        raise wire.invalid(f"actions[{index}].anchor: expected an externally tagged ActionAnchor")
    canon = _ANCHORS.get(_norm(tag))
    if canon is None:
        raise wire.invalid(f"actions[{index}].anchor: unknown variant `{tag}`")
    return canon, body


def parse_actions(raw_actions: List[Any], replay_account_state: bool = False) -> List[ParsedAction]:
    """Validate the create's ``actions`` (RequestError ``invalidRequest`` / ``invalidTransaction*`` otherwise)."""
    out = []
    for k, raw in enumerate(raw_actions):
        if not isinstance(raw, dict):
            raise wire.invalid(f"actions[{k}]: expected an object")
        tag, body = _anchor(k, wire.get(raw, "anchor"))
        kind = wire.get(raw, "kind", "simulate")
        if not isinstance(kind, str) or kind.lower() not in ("simulate", "send"):
            raise wire.invalid(f"actions[{k}].kind: expected `simulate` or `send`, got {kind!r}")
        kind = kind.lower()
        if kind == "send" and replay_account_state:
            raise wire.invalid(f"actions[{k}]: a `send` action is not allowed with replayAccountState")
        txs_raw = wire.get(raw, "transactions", [])
        if not isinstance(txs_raw, list) or not txs_raw:
            raise wire.invalid(f"actions[{k}].transactions: expected a non-empty array")
        txs = [_decode_tx(k, j, t) for j, t in enumerate(txs_raw)]
        action = ParsedAction(index=k, anchor=tag, kind=kind, transactions=txs)
        if tag in ("beforeSlot", "afterSlot"):
            slots = wire.get(body, "slots") if isinstance(body, dict) else body
            if not isinstance(slots, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                      for s in slots):
                raise wire.invalid(f"actions[{k}].anchor.{tag}.slots: expected an array of slots")
            if len(slots) != len(txs):
                raise wire.invalid(f"actions[{k}]: {tag} has {len(slots)} slots for {len(txs)} transactions")
            action.slots = list(slots)
        elif tag in ("beforeEverySlot", "afterEverySlot"):
            n = wire.get(body, "everyNSlots") if isinstance(body, dict) else body
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise wire.invalid(f"actions[{k}].anchor.{tag}.everyNSlots: expected a non-zero slot count")
            action.every = n
        else:
            filt = wire.get(body, "filter") if isinstance(body, dict) else None
            action.filter = wire._discovery(filt)
        overrides = wire.get(raw, "accountOverrides", {})
        if not isinstance(overrides, dict):
            raise wire.invalid(f"actions[{k}].accountOverrides: expected an object")
        action.overrides = {addr: wire.parse_account_data(addr, acct) for addr, acct in overrides.items()}
        accounts = wire.get(raw, "returnAccounts", [])
        if not isinstance(accounts, list) or not all(wire.is_pubkey(a) for a in accounts):
            raise wire.invalid(f"actions[{k}].returnAccounts: expected an array of base58 addresses")
        action.return_accounts = list(accounts)
        label = wire.get(raw, "label")
        if label is not None and not isinstance(label, str):
            raise wire.invalid(f"actions[{k}].label: expected a string or null")
        action.label = label
        action.feeds_reroute = bool(wire.get(raw, "feedsReroute", False))
        out.append(action)
    return out


@dataclass
class Firing:
    """One action result (camelCase ``ActionResultNotification``) and what it committed (address → (position,
    UiAccount))."""

    slot: int
    result: Dict[str, Any]
    commits: Dict[str, Tuple[Pos, Dict[str, Any]]] = field(default_factory=dict)


class ActionEngine:
    """Fires a session's actions at their anchors; holds the state the session's committed actions wrote.

    The session calls the hooks in execution order: :meth:`before_slot`, then per batch :meth:`before_batch` /
    :meth:`after_batch`, then :meth:`after_slot`; each returns the firings of that point."""

    def __init__(self, chain: SyntheticChain, actions: List[ParsedAction], phase_start: int):
        self.chain = chain
        self.actions = actions
        self.phase_start = phase_start
        self.committed: Dict[str, Tuple[Pos, Dict[str, Any]]] = {}
        self._match_slot: Optional[int] = None
        self._matches: Dict[int, List[Tuple[ParsedAction, Dict[str, Any]]]] = {}

    # ------------------------------------------------------------------ state
    def account(self, address: str, pos: Pos) -> Optional[Dict[str, Any]]:
        """The account at ``pos`` (before batch ``pos[1]`` of slot ``pos[0]``) as this session's actions see it."""
        ov = self.committed.get(address)
        if ov is not None:
            opos, acct = ov
            w = self.chain.last_write_position(address, pos[0], pos[1])
            if w is None or w < opos:
                return acct
        return self.chain.account_at(address, pos[0], pos[1])

    # ------------------------------------------------------------------ hooks
    def before_slot(self, s: int) -> List[Firing]:
        return self._slot_point(s, "beforeSlot", "beforeEverySlot", (s, 0))

    def after_slot(self, s: int) -> List[Firing]:
        return self._slot_point(s, "afterSlot", "afterEverySlot", (s, self.chain.tx_count(s)))

    def before_batch(self, s: int, i: int) -> List[Firing]:
        return self._batch_point(s, i, "beforeMatch", (s, i))

    def after_batch(self, s: int, i: int) -> List[Firing]:
        return self._batch_point(s, i, "afterMatch", (s, i + 1))

    def _slot_point(self, s: int, listed: str, every: str, pos: Pos) -> List[Firing]:
        out = []
        for a in self.actions:
            if a.anchor == listed:
                txs = [t for t, at in zip(a.transactions, a.slots) if at == s]
            elif a.anchor == every and (s - self.phase_start) % a.every == 0:
                txs = a.transactions
            else:
                continue
            if txs:
                out.append(self._fire(a, s, None, pos, txs, None))
        return out

    def _batch_point(self, s: int, i: int, anchor: str, pos: Pos) -> List[Firing]:
        if self._match_slot != s:
            self._match_slot = s
            self._matches = {}
            for a in self.actions:
                if a.filter is None:
                    continue
                b = 0
                while True:
                    found = self.chain.find_match([a.filter], s, b, s)
                    if found is None or found[0] != s:
                        break
                    self._matches.setdefault(found[1], []).append((a, found[2][0]))
                    b = found[1] + 1
        out = []
        for a, _f in self._matches.get(i, ()):
            if a.anchor == anchor:
                matched = {"data": base64.b64encode(self.chain.discovery_payload(s, i)).decode(),
                           "encoding": "base64"}
                out.append(self._fire(a, s, i, pos, a.transactions, matched))
        return out

    def _fire(self, a: ParsedAction, s: int, batch: Optional[int], pos: Pos, txs: List[bytes],
              matched: Optional[Dict[str, Any]]) -> Firing:
        err: Any = None
        for j, t in enumerate(txs):
            if FAIL_MARKER in t:
                err = {"InstructionError": [j, {"Custom": 1}]}
                break
        b = "-" if batch is None else str(batch)
        logs = [f"Program log: simclient-local action {a.index} ({a.label or ''}) {a.kind} slot {s} batch {b} tx {j}"
                for j in range(len(txs))]
        units = sum(UNITS_BASE + UNITS_PER_BYTE * len(t) for t in txs)
        delta = 0 if err is not None else LAMPORTS_PER_TX * len(txs)
        accounts: List[Optional[Dict[str, Any]]] = []
        posts: Dict[str, Dict[str, Any]] = {}
        for addr in a.return_accounts:
            pre = a.overrides.get(addr) or self.account(addr, pos)
            if pre is None:
                accounts.append(None)
                continue
            post = dict(pre, lamports=pre["lamports"] + delta)
            posts[addr] = post
            accounts.append(post)
        committed = a.kind == "send" and err is None
        commits: Dict[str, Tuple[Pos, Dict[str, Any]]] = {}
        if committed:
            for addr, acct in a.overrides.items():
                commits[addr] = (pos, acct)
            for addr, post in posts.items():
                commits[addr] = (pos, post)
            self.committed.update(commits)
        result = {
            "context": {"slot": s}, "slot": s, "batchIndex": batch, "actionIndex": a.index, "label": a.label,
            "committed": committed, "err": err, "logs": logs, "unitsConsumed": units,
            "fee": FEE_PER_TX * len(txs),
            "returnData": {"programId": SYSTEM_PROGRAM,
                           "data": [base64.b64encode(f"{a.index}:{s}:{b}".encode()).decode(), "base64"]},
            "accounts": accounts, "matched": matched,
        }
        return Firing(s, result, commits)

    def run(self, s: int, start_batch: int = 0, end_batch: Optional[int] = None, finish: bool = True
            ) -> List[Firing]:
        """Every firing of slot ``s`` from ``start_batch`` to ``end_batch`` (None: its end), with the after-slot
        ones when ``finish`` (what a session executing that stretch fires, in order)."""
        if not self.chain.is_produced(s):
            return []
        n = self.chain.tx_count(s)
        end = n if end_batch is None else min(end_batch, n)
        out: List[Firing] = []
        if start_batch == 0:
            out += self.before_slot(s)
        for i in range(start_batch, end):
            out += self.before_batch(s, i)
            out += self.after_batch(s, i)
        if finish:
            out += self.after_slot(s)
        return out


_SNAKE = {"batchIndex": "batch_index", "actionIndex": "action_index", "unitsConsumed": "units_consumed",
          "returnData": "return_data"}


def render_result(result: Dict[str, Any], style: str = "camel") -> Dict[str, Any]:
    """A result in a dialect's casing: ``camel`` (as built), ``snake``, or ``outcomes`` (snake, and the older
    ``transaction_outcomes[].err`` in place of ``err``)."""
    if style == "camel":
        return result
    out = {_SNAKE.get(k, k): v for k, v in result.items()}
    if style == "outcomes":
        err = out.pop("err")
        n = len(out["logs"]) or 1
        out["transaction_outcomes"] = [{"err": err if err is not None and j == err["InstructionError"][0] else None}
                                       for j in range(n)]
    return out


def notification_text(sub_id: int, result_json: str) -> str:
    return ('{"jsonrpc":"2.0","method":"actionNotification","params":{"subscription":%d,"result":%s}}'
            % (sub_id, result_json))


def _create_params(create: Any) -> Dict[str, Any]:
    if isinstance(create, dict):
        return dict(create.get("params", create)) if "method" in create else dict(create)
    from ..protocol import encode_create  # a simclient.CreateSession (tests' convenience)

    params: Dict[str, Any] = encode_create(create)["params"]
    return params


def expected_action_results(chain: SyntheticChain, create: Any, start: Optional[int] = None,
                            end: Optional[int] = None) -> List[Dict[str, Any]]:
    """Ground truth: the action results (camelCase dicts) a session over ``[start, end]`` (default: the create's
    range; a parallel sub-session's own range for it) sends, in order. ``create`` is a ``simclient.CreateSession``
    or the wire params of a create."""
    params = _create_params(create)
    req = wire.parse_create(params)
    lo = req.start_slot if start is None else start
    hi = req.end_slot if end is None else end
    engine = ActionEngine(chain, req.actions, req.start_slot)
    out: List[Dict[str, Any]] = []
    for s in range(lo, hi + 1):
        out.extend(f.result for f in engine.run(s))
    return out


def results_json(results: Iterable[Dict[str, Any]]) -> List[str]:
    return [json.dumps(r, separators=(",", ":")) for r in results]
