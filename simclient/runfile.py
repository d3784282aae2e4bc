"""The run file: what ``simclient run`` writes and ``simclient compare`` / ``summarize`` read.

The shape is the one of the Rust ``sim run`` (RUST_CLIENT.md §4), so files from either tool can be compared::

    {"metadata": {"start_slot", "end_slot", "program_id", "session_ids": [...], "timestamp": RFC3339,
                  "complete": bool, ...},
     "transactions": [{"slot", "signature", "success", "error", "logs": [...],
                       "sol_changes": {pubkey: lamport delta},
                       "token_changes": {pubkey: {mint: raw-amount delta}},
                       "account_diffs": {pubkey: {"before": UiAccount|null, "after": UiAccount|null}}}, ...],
     "summary": {"total", "successes", "failures"}}

simclient adds a few keys that the Rust reader ignores: ``metadata.program_ids`` (every program id),
``metadata.sessions`` (each (sub-)session's server-authoritative range and whether it completed),
``metadata.failures``, ``metadata.interrupted``, and per transaction ``programs`` (the top-level instructions'
program ids, used by ``summarize``), ``fee`` and ``compute_units`` (``meta.fee`` / ``meta.computeUnitsConsumed``,
when the payload has them). :class:`RunRecorder` also keeps :class:`simclient.events.ActionResult` events, when a
session subscribed to its scheduled actions, under ``actions`` (:func:`action_record`; the Rust reader ignores it).

:class:`RunRecorder` builds the document from :class:`simclient.events.Transaction` and
:class:`simclient.events.AccountDiff` events (thread-safe: ``ParallelRun.drive`` calls handlers from worker threads),
joining diffs to transactions by signature, in memory. :func:`write_run` writes atomically (temp file + rename),
so a reader never sees half a file, even after Ctrl-C. ``simclient run`` itself streams the same records to disk
while the run goes on (:mod:`simclient.runwriter`), and ``compare`` / ``summarize`` stream files back
(:mod:`simclient.runindex`); the in-memory functions here stay for documents already loaded.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import stat
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import events as ev

__all__ = [
    "RunFileError",
    "OutputPathError",
    "check_output_path",
    "RunRecorder",
    "transaction_record",
    "write_run",
    "load_run",
    "compare_runs",
    "Comparison",
    "render_comparison",
    "summarize_run",
    "render_summary",
    "SECTIONS",
]

#: ``compare`` sections (the optional third argument).
SECTIONS = ("regressions", "improvements", "balances")


class RunFileError(Exception):
    """A run file is missing, unreadable or not in the ``sim run`` shape."""


# ------------------------------------------------------------------------------------------ building records


def _account_keys(value: Mapping[str, Any]) -> List[str]:
    """Every account key of a transaction in balance order: static keys, then loaded writable, loaded readonly."""
    tx = value.get("transaction") or {}
    message = tx.get("message") if isinstance(tx, dict) else None
    keys: List[str] = []
    if isinstance(message, dict):
        for k in message.get("accountKeys") or []:
            keys.append(k.get("pubkey", "") if isinstance(k, dict) else str(k))  # jsonParsed: {pubkey, ...}
    meta = value.get("meta") or {}
    loaded = meta.get("loadedAddresses") or {}
    if isinstance(loaded, dict):
        keys.extend(str(k) for k in loaded.get("writable") or [])
        keys.extend(str(k) for k in loaded.get("readonly") or [])
    return keys


def _top_level_programs(value: Mapping[str, Any], keys: Sequence[str]) -> List[str]:
    tx = value.get("transaction") or {}
    message = tx.get("message") if isinstance(tx, dict) else None
    out: List[str] = []
    if not isinstance(message, dict):
        return out
    for ix in message.get("instructions") or []:
        if not isinstance(ix, dict):
            continue
        pid = ix.get("programId")
        if pid is None:
            idx = ix.get("programIdIndex")
            if isinstance(idx, int) and 0 <= idx < len(keys):
                pid = keys[idx]
        if pid and pid not in out:
            out.append(str(pid))
    return out


def _sol_changes(meta: Mapping[str, Any], keys: Sequence[str]) -> Dict[str, int]:
    pre = meta.get("preBalances") or []
    post = meta.get("postBalances") or []
    out: Dict[str, int] = {}
    for i, (a, b) in enumerate(zip(pre, post)):
        try:
            delta = int(b) - int(a)
        except (TypeError, ValueError):
            continue
        if delta and i < len(keys):
            out[keys[i]] = out.get(keys[i], 0) + delta
    return out


def _token_amount(entry: Mapping[str, Any]) -> int:
    ui = entry.get("uiTokenAmount") or {}
    try:
        return int(ui.get("amount", 0))
    except (TypeError, ValueError):
        return 0


def _token_changes(meta: Mapping[str, Any], keys: Sequence[str]) -> Dict[str, Dict[str, int]]:
    balances: Dict[Tuple[str, str], List[int]] = {}
    for which, entries in ((0, meta.get("preTokenBalances")), (1, meta.get("postTokenBalances"))):
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            idx = entry.get("accountIndex")
            account = keys[idx] if isinstance(idx, int) and 0 <= idx < len(keys) else f"#{idx}"
            pair = balances.setdefault((account, str(entry.get("mint", ""))), [0, 0])
            pair[which] += _token_amount(entry)
    out: Dict[str, Dict[str, int]] = {}
    for (account, mint), (before, after) in balances.items():
        if after != before:
            out.setdefault(account, {})[mint] = after - before
    return out


def action_record(event: ev.ActionResult) -> Dict[str, Any]:
    """One ``actions[]`` entry of the run document from an :class:`~simclient.events.ActionResult` (returned
    accounts as ``{lamports, owner, executable, data: [base64, "base64"]}`` or null)."""
    import base64

    accounts = [None if a is None else {"lamports": a.lamports, "owner": a.owner, "executable": a.executable,
                                        "data": [base64.b64encode(bytes(a.data)).decode(), "base64"]}
                for a in event.accounts]
    return {"slot": event.slot, "batch_index": event.batch_index, "action_index": event.action_index,
            "label": event.label, "committed": event.committed, "success": event.err is None, "error": event.err,
            "logs": list(event.logs), "units_consumed": event.units_consumed, "fee": event.fee,
            "return_data": event.return_data, "accounts": accounts}


def transaction_record(value: Mapping[str, Any], slot: Optional[int] = None,
                       signature: Optional[str] = None) -> Dict[str, Any]:
    """One ``transactions[]`` entry from a ``transactionSubscribe`` payload (``getTransaction``'s shape)."""
    meta = value.get("meta") or {}
    keys = _account_keys(value)
    if signature is None:
        sigs = (value.get("transaction") or {}).get("signatures") or [""]
        signature = str(sigs[0])
    err = meta.get("err")
    record = {
        "slot": int(value.get("slot") or 0) if slot is None else int(slot),
        "signature": signature,
        "success": err is None,
        "error": err,
        "logs": list(meta.get("logMessages") or []),
        "sol_changes": _sol_changes(meta, keys),
        "token_changes": _token_changes(meta, keys),
        "account_diffs": {},
        "programs": _top_level_programs(value, keys),
    }
    for src, dst in (("fee", "fee"), ("computeUnitsConsumed", "compute_units")):  # when the payload has them
        if isinstance(meta.get(src), int) and not isinstance(meta.get(src), bool):
            record[dst] = meta[src]
    return record


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class _SessionInfo:
    session_id: str
    start_slot: int
    end_slot: int
    completed: bool = False
    error: Optional[str] = None


class _RunBook:
    """What both recorders (:class:`RunRecorder`, :class:`simclient.runwriter.StreamingRunRecorder`) keep besides
    the records: the run's bounds and metadata, its (sub-)sessions and their failures, under one lock."""

    def __init__(self, start_slot: int, end_slot: int, program_ids: Sequence[str] = (),
                 extra_metadata: Optional[Mapping[str, Any]] = None):
        self.start_slot = start_slot
        self.end_slot = end_slot
        self.program_ids = [str(p) for p in program_ids]
        self.extra_metadata = dict(extra_metadata or {})
        self._lock = threading.Lock()
        self._sessions: Dict[str, _SessionInfo] = {}
        self._failures: List[Dict[str, Any]] = []

    def mark_completed(self, session_id: str) -> None:
        with self._lock:
            if session_id in self._sessions:
                self._sessions[session_id].completed = True

    def add_failure(self, session_id: str, rng: Optional[Tuple[int, int]], reason: str) -> None:
        with self._lock:
            if session_id in self._sessions:
                self._sessions[session_id].error = reason
            self._failures.append({"session_id": session_id, "start_slot": rng[0] if rng else None,
                                   "end_slot": rng[1] if rng else None, "reason": reason})


class RunRecorder(_RunBook):
    """Collects Transaction / AccountDiff events into the run document. Thread-safe.

    :meth:`document` orders transactions by slot, then by arrival of the transaction itself (a transaction
    subscription delivers in chain order; the sub-sessions of a parallel run cover disjoint slot ranges). Account diffs are
    joined to their transaction by signature; a diff whose transaction was not subscribed to gets a record of its
    own with ``success``/``error`` null, and a diff without a signature is kept in ``unattributed_account_diffs``.
    """

    def __init__(self, start_slot: int, end_slot: int, program_ids: Sequence[str] = (),
                 extra_metadata: Optional[Mapping[str, Any]] = None):
        super().__init__(start_slot, end_slot, program_ids, extra_metadata)
        self._records: Dict[str, Dict[str, Any]] = {}
        self._order: Dict[str, Tuple[int, int]] = {}     # signature -> (0, tx arrival) or (1, first diff arrival)
        self._arrivals = 0
        self._unattributed: List[Dict[str, Any]] = []
        self._actions: List[Dict[str, Any]] = []
        self.diff_count = 0

    # --------------------------------------------------------------------------- feeding
    def add_session(self, session_id: str, start_slot: int, end_slot: int) -> None:
        with self._lock:
            self._sessions.setdefault(session_id, _SessionInfo(session_id, start_slot, end_slot))

    def add_event(self, event: ev.Event) -> None:
        """Record a Transaction, AccountDiff or ActionResult (other events are ignored)."""
        kind = type(event)
        if kind is ev.Transaction:
            self.add_transaction(event)  # type: ignore[arg-type]
        elif kind is ev.AccountDiff:
            self.add_account_diff(event)  # type: ignore[arg-type]
        elif kind is ev.ActionResult:
            record = action_record(event)  # type: ignore[arg-type]
            with self._lock:
                self._actions.append(record)

    def add_transaction(self, event: ev.Transaction) -> None:
        record = transaction_record(event.value, event.slot, event.signature)
        with self._lock:
            self._arrivals += 1
            existing = self._records.get(event.signature)
            if existing is not None:  # a diff arrived first: keep its diffs
                record["account_diffs"] = existing["account_diffs"]
            self._records[event.signature] = record
            self._order[event.signature] = (0, self._arrivals)

    def add_account_diff(self, event: ev.AccountDiff) -> None:
        entry = {"before": event.pre, "after": event.post}
        with self._lock:
            self.diff_count += 1
            if event.signature is None:
                self._unattributed.append({"slot": event.slot, "account": event.account, **entry})
                return
            self._arrivals += 1
            record = self._records.get(event.signature)
            if record is None:
                self._order[event.signature] = (1, self._arrivals)
                record = {"slot": event.slot, "signature": event.signature, "success": None, "error": None,
                          "logs": [], "sol_changes": {}, "token_changes": {}, "account_diffs": {}, "programs": []}
                self._records[event.signature] = record
            record["account_diffs"][event.account] = entry

    # --------------------------------------------------------------------------- output
    @property
    def transaction_count(self) -> int:
        with self._lock:
            return len(self._records)

    def document(self, complete: bool, interrupted: bool = False) -> Dict[str, Any]:
        """The run document as it stands (a deep-enough copy to serialise while events keep arriving)."""
        with self._lock:
            ordered = sorted(self._records.items(), key=lambda kv: (kv[1]["slot"], self._order[kv[0]]))
            records = [dict(r, account_diffs=dict(r["account_diffs"])) for _, r in ordered]
            sessions = sorted(self._sessions.values(), key=lambda s: (s.start_slot, s.session_id))
            failures = list(self._failures)
            unattributed = list(self._unattributed)
            actions = sorted(self._actions, key=lambda a: (a["slot"], a["batch_index"] is not None,
                                                           a["batch_index"] or 0, a["action_index"]))
        metadata = run_metadata(self.start_slot, self.end_slot, self.program_ids, sessions, failures, complete,
                                interrupted, self.extra_metadata)
        doc: Dict[str, Any] = {"metadata": metadata, "transactions": records, "summary": _summary(records)}
        if unattributed:
            doc["unattributed_account_diffs"] = unattributed
        if actions:
            doc["actions"] = actions
        return doc


def run_metadata(start_slot: int, end_slot: int, program_ids: Sequence[str], sessions: Sequence[_SessionInfo],
                 failures: Sequence[Mapping[str, Any]], complete: bool, interrupted: bool,
                 extra: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``metadata`` object (shared by :class:`RunRecorder` and the streamed writer); ``sessions`` in range order."""
    metadata: Dict[str, Any] = {
        "start_slot": start_slot,
        "end_slot": end_slot,
        "program_id": program_ids[0] if len(program_ids) == 1 else (
            ",".join(program_ids) if program_ids else None),
        "program_ids": list(program_ids),
        "session_ids": [s.session_id for s in sessions],
        "timestamp": _utc_now(),
        "complete": bool(complete),
        "interrupted": bool(interrupted),
        "sessions": [{"session_id": s.session_id, "start_slot": s.start_slot, "end_slot": s.end_slot,
                      "completed": s.completed, **({"error": s.error} if s.error else {})} for s in sessions],
        "failures": list(failures),
    }
    metadata.update(extra)
    return metadata


def _summary(records: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    total = successes = failures = 0
    for r in records:
        total += 1
        if r.get("success") is True:
            successes += 1
        elif r.get("success") is False:
            failures += 1
    return {"total": total, "successes": successes, "failures": failures}


# ------------------------------------------------------------------------------------------ reading / writing


class OutputPathError(RunFileError):
    """The run file cannot be written where asked (missing directory, a directory, a read-only location)."""


def check_output_path(path: str) -> str:
    """Fail fast, before a run starts, when ``path`` cannot be written; returns its directory (``-``: stdout).

    Creates (and removes) a probe file in the directory: permission bits alone do not tell (root, read-only
    mounts, /proc)."""
    if path == "-":
        return ""
    if os.path.isdir(path):
        raise OutputPathError(f"--output-file {path!r} is a directory")
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.exists(directory):
        raise OutputPathError(f"--output-file {path!r}: directory {directory!r} does not exist")
    if not os.path.isdir(directory):
        raise OutputPathError(f"--output-file {path!r}: {directory!r} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".simclient-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(f"--output-file {path!r}: cannot write in {directory!r} "
                              f"({exc.strerror or exc})") from None
    return directory


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (briefly process-wide)
    os.umask(mask)
    return mask


def target_mode(path: str) -> int:
    """The mode the renamed file should have: the existing target's, else what ``open()`` would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_text_file(path: str, prefix: str = ".simclient-run-", suffix: str = ".json") -> Iterator[IO[str]]:
    """A text file that becomes ``path`` only when the block ends without an exception: a temp file in the same
    directory, then ``os.replace``, keeping an existing target's mode (mkstemp makes 0600 files); on an exception
    the temp file is removed and ``path`` is untouched. The one place for writing a whole output file."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    mode = target_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_run(path: str, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (:func:`atomic_text_file`)."""
    with atomic_text_file(path) as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")


def load_run(path: str) -> Dict[str, Any]:
    """Read and check a run file (ours or the Rust ``sim run``'s). Raises :class:`RunFileError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("transactions"), list):
        raise RunFileError(f"{path}: not a run file (expected an object with a 'transactions' array)")
    for i, tx in enumerate(doc["transactions"]):
        if not isinstance(tx, dict) or not isinstance(tx.get("signature"), str):
            raise RunFileError(f"{path}: transactions[{i}] has no signature")
    doc.setdefault("metadata", {})
    if not isinstance(doc["metadata"], dict):
        raise RunFileError(f"{path}: 'metadata' must be an object")
    return doc


# ------------------------------------------------------------------------------------------ compare


@dataclass
class Comparison:
    """Differences between two runs, by signature."""

    common: int = 0
    only_in_baseline: List[Dict[str, Any]] = field(default_factory=list)
    only_in_experiment: List[Dict[str, Any]] = field(default_factory=list)
    regressions: List[Tuple[Dict[str, Any], Dict[str, Any]]] = field(default_factory=list)    # ok -> failed
    improvements: List[Tuple[Dict[str, Any], Dict[str, Any]]] = field(default_factory=list)   # failed -> ok
    error_changes: List[Tuple[Dict[str, Any], Dict[str, Any]]] = field(default_factory=list)  # failed both, differently
    balances: List[Tuple[Dict[str, Any], Dict[str, Any]]] = field(default_factory=list)       # sol/token deltas differ
    log_changes: int = 0

    @property
    def has_differences(self) -> bool:
        return bool(self.only_in_baseline or self.only_in_experiment or self.regressions or self.improvements
                    or self.error_changes or self.balances or self.log_changes)

    def as_dict(self, section: Optional[str] = None) -> Dict[str, Any]:
        def pair(items: List[Tuple[Dict[str, Any], Dict[str, Any]]]) -> List[Dict[str, Any]]:
            return [{"signature": b["signature"], "slot": b.get("slot"),
                     "baseline": _outcome(b), "experiment": _outcome(e)} for b, e in items]

        bal = [{"signature": b["signature"], "slot": b.get("slot"),
                "sol_changes": {"baseline": b.get("sol_changes") or {}, "experiment": e.get("sol_changes") or {}},
                "token_changes": {"baseline": b.get("token_changes") or {},
                                  "experiment": e.get("token_changes") or {}}} for b, e in self.balances]
        if section == "regressions":
            return {"regressions": pair(self.regressions)}
        if section == "improvements":
            return {"improvements": pair(self.improvements)}
        if section == "balances":
            return {"balances": bal}
        return {
            "common": self.common,
            "only_in_baseline": [t["signature"] for t in self.only_in_baseline],
            "only_in_experiment": [t["signature"] for t in self.only_in_experiment],
            "regressions": pair(self.regressions),
            "improvements": pair(self.improvements),
            "error_changes": pair(self.error_changes),
            "balances": bal,
            "log_changes": self.log_changes,
            "differences": self.has_differences,
        }


def _outcome(tx: Mapping[str, Any]) -> str:
    if tx.get("success") is True:
        return "ok"
    if tx.get("success") is False:
        return f"failed: {json.dumps(tx.get('error'), sort_keys=True)}"
    return "unknown"


def compare_runs(baseline: Mapping[str, Any], experiment: Mapping[str, Any]) -> Comparison:
    """Compare two run documents transaction by transaction (matched by signature)."""
    base = {t["signature"]: t for t in baseline.get("transactions", [])}
    exp = {t["signature"]: t for t in experiment.get("transactions", [])}
    out = Comparison()
    out.only_in_baseline = [t for s, t in base.items() if s not in exp]
    out.only_in_experiment = [t for s, t in exp.items() if s not in base]
    for sig, b in base.items():
        e = exp.get(sig)
        if e is None:
            continue
        out.common += 1
        bs, es = b.get("success"), e.get("success")
        if bs is True and es is False:
            out.regressions.append((b, e))
        elif bs is False and es is True:
            out.improvements.append((b, e))
        elif bs is False and es is False and b.get("error") != e.get("error"):
            out.error_changes.append((b, e))
        if (b.get("sol_changes") or {}) != (e.get("sol_changes") or {}) or \
                (b.get("token_changes") or {}) != (e.get("token_changes") or {}):
            out.balances.append((b, e))
        if (b.get("logs") or []) != (e.get("logs") or []):
            out.log_changes += 1
    return out


def _fmt_changes(changes: Mapping[str, Any]) -> str:
    if not changes:
        return "{}"
    return ", ".join(f"{_short(k)}:{v:+d}" if isinstance(v, int) else f"{_short(k)}:{v}" for k, v in
                     sorted(changes.items()))


def _short(key: str, n: int = 8) -> str:
    return key if len(key) <= n + 1 else f"{key[:n]}…"


def render_comparison(cmp: Comparison, section: Optional[str] = None, limit: int = 20) -> str:
    """Human-readable comparison (one screen by default: ``limit`` rows per list)."""
    lines: List[str] = []

    def listing(title: str, items: List[Any], fmt: Any) -> None:
        lines.append(f"{title}: {len(items)}")
        for item in items[:limit]:
            lines.append(f"  {fmt(item)}")
        if len(items) > limit:
            lines.append(f"  … and {len(items) - limit} more")

    def outcome_pair(p: Tuple[Dict[str, Any], Dict[str, Any]]) -> str:
        b, e = p
        return f"slot {b.get('slot')} {b['signature']}: {_outcome(b)} -> {_outcome(e)}"

    def balance_pair(p: Tuple[Dict[str, Any], Dict[str, Any]]) -> str:
        b, e = p
        text = f"slot {b.get('slot')} {b['signature']}: sol {_fmt_changes(b.get('sol_changes') or {})} -> " \
               f"{_fmt_changes(e.get('sol_changes') or {})}"
        if (b.get("token_changes") or {}) != (e.get("token_changes") or {}):
            text += f"; tokens {json.dumps(b.get('token_changes'))} -> {json.dumps(e.get('token_changes'))}"
        return text

    if section in (None, "regressions"):
        listing("regressions (ok -> failed)", cmp.regressions, outcome_pair)
    if section in (None, "improvements"):
        listing("improvements (failed -> ok)", cmp.improvements, outcome_pair)
    if section in (None, "balances"):
        listing("balance differences", cmp.balances, balance_pair)
    if section is None:
        listing("different errors", cmp.error_changes, outcome_pair)
        lines.append(f"log differences: {cmp.log_changes}")
        listing("only in baseline", cmp.only_in_baseline, lambda t: f"slot {t.get('slot')} {t['signature']}")
        listing("only in experiment", cmp.only_in_experiment, lambda t: f"slot {t.get('slot')} {t['signature']}")
        lines.insert(0, f"{cmp.common} transactions in both runs")
        lines.append("no differences" if not cmp.has_differences else "runs differ")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ summarize


def summarize_run(doc: Mapping[str, Any], accounts: Sequence[str] = ()) -> Dict[str, Any]:
    """Totals of a run document, plus per-account totals for ``accounts``."""
    acc = SummaryAccumulator(accounts)
    for t in doc.get("transactions") or []:
        acc.add(t)
    return acc.result(doc.get("metadata") or {}, doc.get("summary"))


class SummaryAccumulator:
    """:func:`summarize_run` one record at a time (``simclient summarize`` streams the file through this)."""

    def __init__(self, accounts: Sequence[str] = ()):
        self.accounts = list(accounts)
        self.total = self.successes = self.failures = 0
        self.slots: set[int] = set()
        self.first_slot: Optional[int] = None
        self.last_slot: Optional[int] = None
        self.programs: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.diffs = 0
        self.per: Dict[str, Dict[str, Any]] = {
            a: {"transactions": 0, "sol_change": 0, "token_changes": Counter(), "writes": 0,
                "lamports_before": None, "lamports_after": None} for a in self.accounts}

    def add(self, t: Mapping[str, Any]) -> None:
        self.total += 1
        if t.get("success") is True:
            self.successes += 1
        elif t.get("success") is False:
            self.failures += 1
            self.errors[json.dumps(t.get("error"), sort_keys=True)] += 1
        slot = t.get("slot")
        if isinstance(slot, int):
            self.slots.add(slot)
            self.first_slot = slot if self.first_slot is None else min(self.first_slot, slot)
            self.last_slot = slot if self.last_slot is None else max(self.last_slot, slot)
        for p in t.get("programs") or []:
            self.programs[p] += 1
        self.diffs += len(t.get("account_diffs") or {})
        for acc, a in self.per.items():
            hit = False
            if acc in (t.get("sol_changes") or {}):
                a["sol_change"] += int(t["sol_changes"][acc])
                hit = True
            for mint, delta in ((t.get("token_changes") or {}).get(acc) or {}).items():
                a["token_changes"][mint] += int(delta)
                hit = True
            diff = (t.get("account_diffs") or {}).get(acc)
            if diff is not None:
                a["writes"] += 1
                hit = True
                if a["lamports_before"] is None:
                    a["lamports_before"] = (diff.get("before") or {}).get("lamports")
                a["lamports_after"] = (diff.get("after") or {}).get("lamports")
            a["transactions"] += hit

    def result(self, meta: Mapping[str, Any], file_summary: Any) -> Dict[str, Any]:
        known = self.successes + self.failures
        out: Dict[str, Any] = {
            "start_slot": meta.get("start_slot"),
            "end_slot": meta.get("end_slot"),
            "complete": meta.get("complete"),
            "sessions": len(meta.get("session_ids") or []),
            "total": self.total,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": (self.successes / known) if known else None,
            "slots_with_transactions": len(self.slots),
            "first_slot": self.first_slot,
            "last_slot": self.last_slot,
            "account_diffs": self.diffs,
            "top_programs": self.programs.most_common(10),
            "top_errors": self.errors.most_common(5),
            "file_summary": file_summary,
        }
        if self.accounts:
            out["accounts"] = {acc: dict(a, token_changes=dict(a["token_changes"])) for acc, a in self.per.items()}
        return out


def render_summary(s: Mapping[str, Any], names: Optional[Mapping[str, str]] = None) -> str:
    names = names or {}
    rate = s.get("success_rate")
    lines = [
        f"range:        {s.get('start_slot')}..{s.get('end_slot')}  (complete: {s.get('complete')})",
        f"sessions:     {s.get('sessions')}",
        f"transactions: {s['total']}  ({s['successes']} ok, {s['failures']} failed"
        + (f", success rate {rate:.1%})" if rate is not None else ")"),
        f"slots:        {s.get('slots_with_transactions')} with transactions"
        + (f" ({s['first_slot']}..{s['last_slot']})" if s.get("first_slot") is not None else ""),
        f"account diffs: {s.get('account_diffs')}",
    ]
    if s.get("top_programs"):
        lines.append("top programs:")
        for pid, n in s["top_programs"]:
            label = f"{names[pid]} " if pid in names else ""
            lines.append(f"  {n:>7}  {label}{pid}")
    if s.get("top_errors"):
        lines.append("top errors:")
        for err, n in s["top_errors"]:
            lines.append(f"  {n:>7}  {err}")
    for acc, a in (s.get("accounts") or {}).items():
        lines.append(f"account {acc}:")
        lines.append(f"  transactions {a['transactions']}, writes {a['writes']}, sol change {a['sol_change']:+d}"
                     + (f", lamports {a['lamports_before']} -> {a['lamports_after']}"
                        if a.get("lamports_before") is not None else ""))
        for mint, delta in sorted(a["token_changes"].items()):
            lines.append(f"  token {mint}: {delta:+d}")
    return "\n".join(lines)
