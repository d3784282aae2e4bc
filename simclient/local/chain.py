"""A deterministic synthetic Solana-like chain: the ground truth the local simulator serves.

Everything here is a pure function of ``(seed, first_slot, bundle_size, num_bundles)``:

* Slots ``first_slot .. first_slot + bundle_size * num_bundles - 1`` are available, grouped in bundles of
  ``bundle_size`` slots (one :func:`available_ranges` entry per bundle). About 5 % of them are *skipped*: no block,
  never announced, no notifications.
* Five fixed programs (their ids do not depend on the seed, so chains with different seeds share them), each owning
  a pool of :data:`ACCOUNTS_PER_PROGRAM` accounts.
* Each produced slot carries 0–20 transactions. A transaction invokes exactly one program, is signed by a fresh fee
  payer, fails about 10 % of the time (``InstructionError`` / ``Custom``), and writes 1–3 accounts of its program.
  A failed transaction is rolled back, as on Solana: it writes nothing (only the fee payer pays the fee), so it
  produces no account diff.
* Account state is consistent: the ``pre`` of a write is the ``post`` of the previous successful write to that
  account (or its genesis state). The ``post`` of a write is derived from the write's own position, and the previous
  write is found by scanning cheap per-slot *skeletons* backwards, so any state is computed without replaying from
  the start and does not depend on where a session starts.

Signatures embed their position (slot, index) under a hash mask, so :meth:`SyntheticChain.locate_signature` can find
a transaction without an index; the rest of the 64 bytes is hash output.

Randomness comes from BLAKE2b streams, never from :mod:`random`, so streams are identical across Python versions.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import struct
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .._base58 import b58decode, b58encode
from ..programs import programdata_address as _programdata_address
from ..programs import programdata_account_data, program_account_data, rent_exempt_minimum

__all__ = [
    "SyntheticChain",
    "PROGRAM_NAMES",
    "ACCOUNTS_PER_PROGRAM",
    "GENESIS_UNIX_TIME",
    "BPF_LOADER",
    "SYSTEM_PROGRAM",
]

PROGRAM_NAMES = ("swap", "lend", "oracle", "perps", "mint")
ACCOUNTS_PER_PROGRAM = 8
SKIP_PER_MILLE = 50          # ~5 % of slots are skipped
FAIL_PER_MILLE = 100         # ~10 % of transactions fail
MAX_TXS_PER_SLOT = 20
BASE_FEE = 5000
GENESIS_UNIX_TIME = 1768478400   # 2026-01-15T12:00:00Z: blockTime of first_slot
SLOT_MILLIS = 400
RENT_EPOCH = 18446744073709551615  # u64::MAX, what Solana reports for rent-exempt accounts
BPF_LOADER = "BPFLoaderUpgradeab1e11111111111111111111111"
SYSTEM_PROGRAM = "11111111111111111111111111111111"
PROGRAM_LAMPORTS = 1141440

_INSTRUCTIONS = {
    "swap": ("Swap", "Route", "SharedAccountsRoute"),
    "lend": ("Deposit", "Borrow", "Repay", "Withdraw"),
    "oracle": ("UpdatePrice",),
    "perps": ("PlaceOrder", "CancelOrder", "Liquidate"),
    "mint": ("MintTo", "Transfer", "Burn"),
}
_ERRORS = ("slippage tolerance exceeded", "insufficient collateral", "stale price", "order would cross",
           "account not initialized")


def _fixed_key(label: str) -> bytes:
    return hashlib.sha256(b"simclient-local/" + label.encode()).digest()


PROGRAM_KEYS: Tuple[bytes, ...] = tuple(_fixed_key(f"program/{name}") for name in PROGRAM_NAMES)
PROGRAM_IDS: Tuple[str, ...] = tuple(b58encode(k) for k in PROGRAM_KEYS)
ACCOUNT_IDS: Tuple[Tuple[str, ...], ...] = tuple(
    tuple(b58encode(_fixed_key(f"account/{name}/{a}")) for a in range(ACCOUNTS_PER_PROGRAM))
    for name in PROGRAM_NAMES
)
#: Each program's ProgramData account (the upgradeable loader's PDA of ``[program_id]``), its upgrade authority,
#: and the ProgramData "last modified" slot every program reports.
PROGRAMDATA_IDS: Tuple[str, ...] = tuple(_programdata_address(pid) for pid in PROGRAM_IDS)
AUTHORITY_IDS: Tuple[str, ...] = tuple(b58encode(_fixed_key(f"authority/{name}")) for name in PROGRAM_NAMES)
PROGRAM_DEPLOY_SLOT = 1


def _account_space(p: int, a: int) -> int:
    return 16 + 8 * ((p * ACCOUNTS_PER_PROGRAM + a) % 9)


class _Stream:
    """A deterministic stream of integers from BLAKE2b(key || counter)."""

    __slots__ = ("_key", "_buf", "_pos", "_ctr")

    def __init__(self, key: bytes):
        self._key = key
        self._buf = b""
        self._pos = 0
        self._ctr = 0

    def u32(self) -> int:
        if self._pos + 4 > len(self._buf):
            self._buf = hashlib.blake2b(self._key + self._ctr.to_bytes(4, "little")).digest()
            self._ctr += 1
            self._pos = 0
        v = int.from_bytes(self._buf[self._pos:self._pos + 4], "little")
        self._pos += 4
        return v

    def below(self, n: int) -> int:
        return self.u32() % n


class _Skel:
    """The cheap skeleton of one transaction: everything needed for state scans and discovery."""

    __slots__ = ("program", "fail", "accounts", "cu", "code", "ix")

    def __init__(self, program: int, fail: bool, accounts: Tuple[int, ...], cu: int, code: int, ix: int):
        self.program = program
        self.fail = fail
        self.accounts = accounts
        self.cu = cu
        self.code = code
        self.ix = ix


class TxRecord:
    """One generated transaction: its JSON ``value`` (what ``getTransaction`` returns) and its account diffs."""

    __slots__ = ("slot", "index", "signature", "program_id", "failed", "value", "diffs", "writes", "_json",
                 "_diff_json")

    def __init__(self, slot: int, index: int, signature: str, program_id: str, failed: bool, value: Dict[str, Any],
                 diffs: List[Dict[str, Any]], writes: List[str]):
        self.slot = slot
        self.index = index
        self.signature = signature
        self.program_id = program_id
        self.failed = failed
        self.value = value
        self.diffs = diffs
        self.writes = writes          # accounts written (successful txs only), in diff order
        self._json: Optional[str] = None
        self._diff_json: Optional[List[str]] = None

    @property
    def value_json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.value, separators=(",", ":"))
        return self._json

    @property
    def mentions(self) -> List[str]:
        """Every address the transaction mentions (what ``logsSubscribe``'s ``mentions`` matches): its account keys
        (fee payer, accounts, program id) and loaded addresses."""
        msg = self.value["transaction"]["message"]
        loaded = self.value["meta"].get("loadedAddresses") or {}
        return list(msg["accountKeys"]) + list(loaded.get("writable") or []) + list(loaded.get("readonly") or [])

    @property
    def logs_value(self) -> Dict[str, Any]:
        """The ``value`` of this transaction's ``logsNotification`` (§9.2.2)."""
        return {"signature": self.signature, "err": self.value["meta"]["err"],
                "logs": list(self.value["meta"]["logMessages"])}

    @property
    def diff_json(self) -> List[str]:
        """The diffs serialised, each without its surrounding braces' context: the full result object."""
        if self._diff_json is None:
            self._diff_json = [json.dumps(d, separators=(",", ":")) for d in self.diffs]
        return self._diff_json


class Block:
    __slots__ = ("slot", "blockhash", "block_time", "txs")

    def __init__(self, slot: int, blockhash: str, block_time: int, txs: List[TxRecord]):
        self.slot = slot
        self.blockhash = blockhash
        self.block_time = block_time
        self.txs = txs


class _LRU:
    def __init__(self, maxsize: int):
        self._d: "OrderedDict[Any, Any]" = OrderedDict()
        self._max = maxsize
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self._max:
                self._d.popitem(last=False)


def ui_account(lamports: int, data: bytes, owner: str, executable: bool = False) -> Dict[str, Any]:
    """The standard Solana ``UiAccount`` (base64 data)."""
    return {"lamports": lamports, "data": [base64.b64encode(data).decode(), "base64"], "owner": owner,
            "executable": executable, "rentEpoch": RENT_EPOCH, "space": len(data)}


def _utc(ts: int) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SyntheticChain:
    """A deterministic synthetic chain. See the module docstring for the model.

    Public ground-truth helpers (used by tests): :meth:`is_produced`, :meth:`block`, :meth:`transactions`,
    :meth:`account_diffs`, :meth:`account_at`, :meth:`available_ranges`.
    """

    program_ids: List[str] = list(PROGRAM_IDS)

    def __init__(self, seed: int = 0, first_slot: int = 300_000_000, bundle_size: int = 100, num_bundles: int = 100):
        if bundle_size < 1 or num_bundles < 1:
            raise ValueError("bundle_size and num_bundles must be >= 1")
        if first_slot < 0:
            raise ValueError("first_slot must be >= 0")
        self.seed = int(seed)
        self.first_slot = int(first_slot)
        self.bundle_size = int(bundle_size)
        self.num_bundles = int(num_bundles)
        self.last_slot = self.first_slot + self.bundle_size * self.num_bundles - 1
        self.program_ids = list(PROGRAM_IDS)
        self._seed_bytes = str(self.seed).encode()
        self._skel_cache = _LRU(32768)
        self._block_cache = _LRU(1024)
        self._index: Dict[str, Tuple[int, int]] = {}
        for p, pid in enumerate(PROGRAM_IDS):
            self._index[pid] = (p, -1)
            self._index[PROGRAMDATA_IDS[p]] = (p, -2)
            for a, acc in enumerate(ACCOUNT_IDS[p]):
                self._index[acc] = (p, a)

    # ------------------------------------------------------------------ layout
    def __repr__(self) -> str:
        return (f"SyntheticChain(seed={self.seed}, first_slot={self.first_slot}, bundle_size={self.bundle_size}, "
                f"num_bundles={self.num_bundles})")

    def accounts_of(self, program_id: str) -> List[str]:
        """The pool of accounts owned by ``program_id`` (empty for an unknown program)."""
        entry = self._index.get(program_id)
        if entry is None or entry[1] != -1:
            return []
        return list(ACCOUNT_IDS[entry[0]])

    def programdata_address(self, program_id: str) -> str:
        """Ground truth: the ProgramData account of one of the chain's programs (KeyError for another id)."""
        if program_id not in PROGRAM_IDS:
            _missing(program_id)
        return PROGRAMDATA_IDS[PROGRAM_IDS.index(program_id)]

    def program_elf(self, program_id: str) -> bytes:
        """Ground truth: the (synthetic, 256-byte) code the chain's ProgramData account of ``program_id`` holds."""
        if program_id not in PROGRAM_IDS:
            _missing(program_id)
        return b"\x7fELF" + self._expand(252, "program-elf", PROGRAM_IDS.index(program_id))

    def in_range(self, slot: int) -> bool:
        return self.first_slot <= slot <= self.last_slot

    def bundle_of(self, slot: int) -> Tuple[int, int]:
        """The (start, end) of the bundle containing ``slot`` (which must be in range)."""
        i = (slot - self.first_slot) // self.bundle_size
        start = self.first_slot + i * self.bundle_size
        return start, start + self.bundle_size - 1

    def bundles_covering(self, start: int, end: int) -> List[Tuple[int, int]]:
        out = []
        s = self.bundle_of(start)[0]
        while s <= end:
            out.append((s, s + self.bundle_size - 1))
            s += self.bundle_size
        return out

    def block_time(self, slot: int) -> int:
        return GENESIS_UNIX_TIME + (slot - self.first_slot) * SLOT_MILLIS // 1000

    def available_ranges(self) -> List[Dict[str, Any]]:
        """One PROTOCOL §1.3 ``AvailableRange`` per bundle, with the SDK's (snake_case) field names; the server sends
        them in its dialect's casing (camelCase by default) and leaves out the absent snapshot fields."""
        out = []
        for i in range(self.num_bundles):
            s = self.first_slot + i * self.bundle_size
            e = s + self.bundle_size - 1
            out.append({"bundle_start_slot": s, "bundle_start_slot_utc": _utc(self.block_time(s)),
                        "max_bundle_end_slot": e, "max_bundle_end_slot_utc": _utc(self.block_time(e)),
                        "max_bundle_size": self.bundle_size, "kind": "blocks", "scope": "global",
                        "snapshot_slot": None, "snapshot_slot_utc": None})
        return out

    # ------------------------------------------------------------------ hashing
    def _hash(self, *parts: object, size: int = 32) -> bytes:
        key = "\x1f".join([str(part) for part in parts]).encode()
        return hashlib.blake2b(self._seed_bytes + b"\x1f" + key, digest_size=size).digest()

    def _expand(self, size: int, *parts: object) -> bytes:
        key = "\x1f".join([str(part) for part in parts]).encode()
        return hashlib.shake_256(self._seed_bytes + b"\x1e" + key).digest(size)

    def is_produced(self, slot: int) -> bool:
        """True if ``slot`` is available and not skipped."""
        if not self.in_range(slot):
            return False
        return int.from_bytes(self._hash("skip", slot, size=8), "little") % 1000 >= SKIP_PER_MILLE

    def produced_slots(self, start: int, end: int) -> List[int]:
        return [s for s in range(max(start, self.first_slot), min(end, self.last_slot) + 1) if self.is_produced(s)]

    def blockhash(self, slot: int) -> str:
        return b58encode(self._hash("blockhash", slot))

    # ------------------------------------------------------------------ skeletons
    def _skeleton(self, slot: int) -> Tuple[Tuple[_Skel, ...], frozenset]:
        cached = self._skel_cache.get(slot)
        if cached is not None:
            return cached
        if not self.is_produced(slot):
            result: Tuple[Tuple[_Skel, ...], frozenset] = ((), frozenset())
        else:
            st = _Stream(self._hash("skeleton", slot))
            n = st.below(MAX_TXS_PER_SLOT + 1)
            txs = []
            writes: set = set()
            for _ in range(n):
                p = st.below(len(PROGRAM_IDS))
                fail = st.below(1000) < FAIL_PER_MILLE
                k = 1 + st.below(3)
                pool = list(range(ACCOUNTS_PER_PROGRAM))
                accs = []
                for _j in range(k):
                    accs.append(pool.pop(st.below(len(pool))))
                cu = 1000 + st.below(199000)
                code = st.below(len(_ERRORS))
                ix = st.below(len(_INSTRUCTIONS[PROGRAM_NAMES[p]]))
                txs.append(_Skel(p, fail, tuple(accs), cu, code, ix))
                if not fail:
                    writes.update(p * ACCOUNTS_PER_PROGRAM + a for a in accs)
            result = (tuple(txs), frozenset(writes))
        self._skel_cache.put(slot, result)
        return result

    def tx_count(self, slot: int) -> int:
        """Number of block transactions in ``slot`` (0 for skipped or unavailable slots)."""
        return len(self._skeleton(slot)[0]) if self.in_range(slot) else 0

    def tx_programs(self, slot: int) -> List[str]:
        return [PROGRAM_IDS[t.program] for t in self._skeleton(slot)[0]]

    def tx_summary(self, slot: int, start_batch: int = 0, end_batch: Optional[int] = None) -> Tuple[int, int]:
        """(transactions, failed transactions) among batches [start_batch, end_batch) of ``slot``."""
        txs = self._skeleton(slot)[0][start_batch:end_batch]
        return len(txs), sum(1 for t in txs if t.fail)

    def _last_write(self, p: int, a: int, slot: int, batch: int) -> Optional[Tuple[int, int]]:
        """Position of the last successful write to account (p, a) strictly before position (slot, batch)."""
        key = p * ACCOUNTS_PER_PROGRAM + a
        s = min(slot, self.last_slot + 1)
        while s >= self.first_slot:
            txs, writes = self._skeleton(s) if s <= self.last_slot else ((), frozenset())
            if key in writes:
                hi = len(txs) if s != slot else min(batch, len(txs))
                for i in range(hi - 1, -1, -1):
                    t = txs[i]
                    if t.program == p and not t.fail and a in t.accounts:
                        return s, i
            s -= 1
        return None

    def _genesis(self, p: int, a: int) -> Tuple[int, bytes]:
        raw = self._expand(8 + _account_space(p, a), "genesis", p, a)
        return 1_000_000 + int.from_bytes(raw[:8], "little") % 9_000_000, raw[8:]

    def _post(self, p: int, a: int, slot: int, i: int) -> Tuple[int, bytes]:
        raw = self._expand(8 + _account_space(p, a), "post", slot, i, p, a)
        return 1_000_000 + int.from_bytes(raw[:8], "little") % 9_000_000, raw[8:]

    def _state(self, p: int, a: int, slot: int, batch: int) -> Tuple[int, bytes]:
        pos = self._last_write(p, a, slot, batch)
        return self._genesis(p, a) if pos is None else self._post(p, a, pos[0], pos[1])

    def last_write_position(self, address: str, slot: int, batch: int = 0) -> Optional[Tuple[int, int]]:
        """Position (slot, index) of the last chain write to ``address`` before (slot, batch), else None."""
        entry = self._index.get(address)
        if entry is None or entry[1] < 0:
            return None
        return self._last_write(entry[0], entry[1], slot, batch)

    def account_at(self, address: str, slot: int, batch: int = 0) -> Optional[Dict[str, Any]]:
        """UiAccount of ``address`` before executing batch ``batch`` of ``slot`` (default: before the slot).

        Program ids are executable accounts owned by the upgradeable BPF loader (``Program{programdata_address}``),
        each with its ProgramData account (:meth:`program_elf` after the 45-byte header); pool accounts are owned by
        their program; any other address is unknown (None).
        """
        entry = self._index.get(address)
        if entry is None:
            return None
        p, a = entry
        if a == -1:
            return ui_account(PROGRAM_LAMPORTS, program_account_data(PROGRAMDATA_IDS[p]), BPF_LOADER,
                              executable=True)
        if a == -2:
            data = programdata_account_data(self.program_elf(PROGRAM_IDS[p]), PROGRAM_DEPLOY_SLOT, AUTHORITY_IDS[p])
            return ui_account(rent_exempt_minimum(len(data)), data, BPF_LOADER)
        lam, data = self._state(p, a, slot, batch)
        return ui_account(lam, data, PROGRAM_IDS[p])

    # ------------------------------------------------------------------ signatures
    def _signature_bytes(self, slot: int, i: int) -> bytes:
        body = self._hash("signature", slot, i, size=48)
        pos = struct.pack(">QQ", slot, i)
        return body + bytes(x ^ y for x, y in zip(pos, body[:16]))

    def signature(self, slot: int, i: int) -> str:
        return b58encode(self._signature_bytes(slot, i))

    def locate_signature(self, signature: str) -> Optional[Tuple[int, int]]:
        """(slot, index) of a chain transaction's signature, or None if it is not one."""
        try:
            raw = b58decode(signature)
        except ValueError:
            return None
        if len(raw) != 64:
            return None
        slot, i = struct.unpack(">QQ", bytes(x ^ y for x, y in zip(raw[48:], raw[:16])))
        if not self.in_range(slot) or i >= self.tx_count(slot):
            return None
        return (slot, i) if self._signature_bytes(slot, i) == raw else None

    # ------------------------------------------------------------------ blocks
    def block(self, slot: int) -> Optional[Block]:
        """The full block of a produced slot (transactions with their account diffs), or None if skipped."""
        if not self.is_produced(slot):
            return None
        cached = self._block_cache.get(slot)
        if cached is not None:
            return cached
        blk = self._make_block(slot)
        self._block_cache.put(slot, blk)
        return blk

    def _make_block(self, slot: int) -> Block:
        skels = self._skeleton(slot)[0]
        bt = self.block_time(slot)
        recent = self.blockhash(slot - 1)
        state: Dict[Tuple[int, int], Tuple[int, bytes]] = {}
        txs = []
        for i, t in enumerate(skels):
            p = t.program
            pid = PROGRAM_IDS[p]
            name = PROGRAM_NAMES[p]
            sig = self.signature(slot, i)
            txh = self._hash("tx", slot, i, size=64)
            payer = b58encode(txh[:32])
            fee = BASE_FEE + (int.from_bytes(txh[32:36], "little") % 5) * 1000
            payer_pre = 10_000_000 + int.from_bytes(txh[36:44], "little") % 990_000_000
            accs = [ACCOUNT_IDS[p][a] for a in t.accounts]
            pre_bal = [payer_pre]
            post_bal = [payer_pre - fee]
            diffs = []
            writes = []
            for a, addr in zip(t.accounts, accs):
                pre = state.get((p, a))
                if pre is None:
                    pre = self._state(p, a, slot, 0)
                pre_bal.append(pre[0])
                if t.fail:
                    post_bal.append(pre[0])
                    continue
                post = self._post(p, a, slot, i)
                state[(p, a)] = post
                post_bal.append(post[0])
                writes.append(addr)
                diffs.append({"context": {"slot": slot}, "account": addr, "signature": sig,
                              "pre": ui_account(pre[0], pre[1], pid), "post": ui_account(post[0], post[1], pid)})
            pre_bal.append(PROGRAM_LAMPORTS)
            post_bal.append(PROGRAM_LAMPORTS)
            ix_name = _INSTRUCTIONS[name][t.ix]
            logs = [f"Program {pid} invoke [1]", f"Program log: Instruction: {ix_name}"]
            if t.fail:
                err: Any = {"InstructionError": [0, {"Custom": 6000 + t.code}]}
                status: Dict[str, Any] = {"Err": err}
                logs += [f"Program log: Error: {_ERRORS[t.code]}",
                         f"Program {pid} consumed {t.cu} of 200000 compute units",
                         f"Program {pid} failed: custom program error: {hex(6000 + t.code)}"]
            else:
                err = None
                status = {"Ok": None}
                logs += [f"Program {pid} consumed {t.cu} of 200000 compute units", f"Program {pid} success"]
            ix_data = bytes([t.ix]) + txh[44:52]
            value = {
                "slot": slot,
                "blockTime": bt,
                "version": 0,
                "transaction": {
                    "signatures": [sig],
                    "message": {
                        "accountKeys": [payer] + accs + [pid],
                        "header": {"numRequiredSignatures": 1, "numReadonlySignedAccounts": 0,
                                   "numReadonlyUnsignedAccounts": 1},
                        "recentBlockhash": recent,
                        "instructions": [{"programIdIndex": len(accs) + 1,
                                          "accounts": list(range(1, len(accs) + 1)),
                                          "data": b58encode(ix_data), "stackHeight": None}],
                        "addressTableLookups": [],
                    },
                },
                "meta": {
                    "err": err,
                    "status": status,
                    "fee": fee,
                    "preBalances": pre_bal,
                    "postBalances": post_bal,
                    "innerInstructions": [],
                    "logMessages": logs,
                    "preTokenBalances": [],
                    "postTokenBalances": [],
                    "rewards": [],
                    "loadedAddresses": {"writable": [], "readonly": []},
                    "computeUnitsConsumed": t.cu,
                },
            }
            txs.append(TxRecord(slot, i, sig, pid, t.fail, value, diffs, writes))
        return Block(slot, self.blockhash(slot), bt, txs)

    # ------------------------------------------------------------------ ground truth
    def transactions(self, start: int, end: int, program_ids: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
        """The transaction values a ``transactionSubscribe`` sends for slots [start, end], in order.

        ``program_ids`` None or empty means every program.
        """
        progs = set(program_ids) if program_ids else None
        out: List[Dict[str, Any]] = []
        for s in self.produced_slots(start, end):
            blk = self.block(s)
            assert blk is not None
            out.extend(t.value for t in blk.txs if progs is None or t.program_id in progs)
        return out

    def logs(self, start: int, end: int, mentions: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
        """What ``logsSubscribe`` sends for slots [start, end], in order: ``{slot, signature, err, logs}`` of every
        transaction that mentions one of ``mentions`` (None or empty: every transaction, the ``"all"`` filter)."""
        wanted = set(mentions) if mentions else None
        out: List[Dict[str, Any]] = []
        for s in self.produced_slots(start, end):
            blk = self.block(s)
            assert blk is not None
            for t in blk.txs:
                if wanted is None or not wanted.isdisjoint(t.mentions):
                    out.append({"slot": s, **t.logs_value})
        return out

    def account_diffs(self, start: int, end: int, program_ids: Optional[Iterable[str]] = None,
                      accounts: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
        """The diff results an ``accountDiffSubscribe`` sends for slots [start, end], in order.

        ``program_ids`` filters by owning program (``address_type: program``), ``accounts`` by account address
        (``address_type: account``); both None means every diff.
        """
        progs = set(program_ids) if program_ids else None
        accs = set(accounts) if accounts else None
        out: List[Dict[str, Any]] = []
        for s in self.produced_slots(start, end):
            blk = self.block(s)
            assert blk is not None
            for t in blk.txs:
                for d in t.diffs:
                    if (progs is None and accs is None) or (progs is not None and t.program_id in progs) or (
                            accs is not None and d["account"] in accs):
                        out.append(d)
        return out

    def find_match(self, filters: Sequence[Dict[str, Any]], slot: int, batch: int, end: int
                   ) -> Optional[Tuple[int, int, List[Dict[str, Any]]]]:
        """First transaction at or after position (slot, batch) and in a slot <= end matching a discovery filter.

        Returns (slot, index, matched filters) or None.
        """
        if not filters:
            return None
        s = max(slot, self.first_slot)
        b = batch if s == slot else 0
        while s <= min(end, self.last_slot):
            skels = self._skeleton(s)[0]
            for i in range(b, len(skels)):
                t = skels[i]
                pid = PROGRAM_IDS[t.program]
                written = [] if t.fail else [ACCOUNT_IDS[t.program][a] for a in t.accounts]
                matched = [f for f in filters if _filter_matches(f, pid, written)]
                if matched:
                    return s, i, matched
            s += 1
            b = 0
        return None

    def discovery_payload(self, slot: int, i: int) -> bytes:
        """Deterministic stand-in for the bincode ``TxWithMeta`` bytes of a discovery batch transaction."""
        return b"simclient-local:TxWithMeta\x00" + self._signature_bytes(slot, i) + self._hash("txwithmeta", slot, i)


def _missing(program_id: str) -> None:
    raise KeyError(f"{program_id} is not one of the chain's programs")


def _filter_matches(f: Dict[str, Any], program_id: str, written: List[str]) -> bool:
    if "programExecuted" in f:
        return f["programExecuted"] == program_id
    ou = f.get("oracleUpdate")
    if isinstance(ou, dict):
        if program_id not in (ou.get("programs") or []):
            return False
        accounts = ou.get("accounts") or []
        return not accounts or any(a in accounts for a in written)
    return False
