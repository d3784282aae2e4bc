"""Run-file records -> flat table rows (stdlib only; Arrow types are attached in :mod:`._arrow`).

Four tables, one row per:

* ``transactions``: transaction (slot, signature, success, error as JSON text, fee and compute units where the
  payload had them, programs, logs, count of account diffs, and ``sol_change.<pubkey>`` per tracked account);
* ``sol_changes``: (transaction, account) with a nonzero lamport delta;
* ``token_changes``: (transaction, account, mint) with a nonzero raw-amount delta;
* ``account_diffs``: account diff (joined ones, then ``unattributed_account_diffs`` with a null signature).

Column kinds: ``int`` (int64, nullable), ``str``, ``bool`` (nullable: a diff-only record's outcome is unknown),
``json`` (JSON text), ``strs`` (list of strings).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

Column = Tuple[str, str]     # (name, kind)
Row = Tuple[Any, ...]

TABLES = ("transactions", "sol_changes", "token_changes", "account_diffs")

#: Prefix of the per-tracked-account columns of ``transactions``.
SOL_CHANGE_PREFIX = "sol_change."

_TX_COLUMNS: List[Column] = [
    ("slot", "int"), ("signature", "str"), ("success", "bool"), ("error", "json"), ("fee", "int"),
    ("compute_units", "int"), ("program", "str"), ("programs", "strs"), ("logs", "strs"),
    ("account_diff_count", "int"),
]
_SOL_COLUMNS: List[Column] = [("slot", "int"), ("signature", "str"), ("account", "str"), ("lamports", "int")]
_TOKEN_COLUMNS: List[Column] = [("slot", "int"), ("signature", "str"), ("account", "str"), ("mint", "str"),
                                ("amount", "int")]
_DIFF_COLUMNS: List[Column] = [
    ("slot", "int"), ("signature", "str"), ("account", "str"), ("lamports_before", "int"), ("lamports_after", "int"),
    ("lamports_change", "int"), ("owner_before", "str"), ("owner_after", "str"), ("space_before", "int"),
    ("space_after", "int"), ("executable", "bool"), ("data_encoding", "str"), ("data_before", "str"),
    ("data_after", "str"),
]


def columns(table: str, accounts: Sequence[str] = ()) -> List[Column]:
    """The columns of ``table``; ``accounts`` adds one ``sol_change.<pubkey>`` column each to ``transactions``."""
    if table == "transactions":
        return _TX_COLUMNS + [(SOL_CHANGE_PREFIX + a, "int") for a in accounts]
    return {"sol_changes": _SOL_COLUMNS, "token_changes": _TOKEN_COLUMNS, "account_diffs": _DIFF_COLUMNS}[table]


def _int(v: Any) -> Optional[int]:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _slot(record: Mapping[str, Any]) -> Optional[int]:
    return _int(record.get("slot"))


def transaction_row(record: Mapping[str, Any], accounts: Sequence[str] = ()) -> Row:
    err = record.get("error")
    success = record.get("success")
    programs = [str(p) for p in record.get("programs") or []]
    sol = record.get("sol_changes") or {}
    return (
        _slot(record), record["signature"], success if isinstance(success, bool) else None,
        None if err is None else json.dumps(err, sort_keys=True, separators=(",", ":")),
        _int(record.get("fee")), _int(record.get("compute_units")), programs[0] if programs else None, programs,
        [str(x) for x in record.get("logs") or []], len(record.get("account_diffs") or {}),
        *(_int(sol.get(a, 0)) or 0 for a in accounts),
    )


def sol_change_rows(record: Mapping[str, Any]) -> List[Row]:
    slot, sig = _slot(record), record["signature"]
    rows = [(slot, sig, str(acc), _int(delta)) for acc, delta in (record.get("sol_changes") or {}).items()]
    return [r for r in rows if r[3] is not None]   # a non-numeric delta (not ours, not Rust's) is left out


def token_change_rows(record: Mapping[str, Any]) -> List[Row]:
    slot, sig = _slot(record), record["signature"]
    out: List[Row] = []
    for acc, mints in (record.get("token_changes") or {}).items():
        for mint, delta in (mints or {}).items():
            amount = _int(delta)
            if amount is not None:
                out.append((slot, sig, str(acc), str(mint), amount))
    return out


def _data(ui: Optional[Mapping[str, Any]]) -> Tuple[Optional[str], Optional[str]]:
    """(encoding, text) of a UiAccount's data: ``[text, encoding]`` as is, anything else (jsonParsed) as JSON."""
    if not ui:
        return None, None
    data = ui.get("data")
    if isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data):
        return data[1], data[0]
    if isinstance(data, str):
        return "base58", data
    if data is None:
        return None, None
    return "json", json.dumps(data, sort_keys=True, separators=(",", ":"))


def _space(ui: Optional[Mapping[str, Any]]) -> Optional[int]:
    if not ui:
        return None
    return _int(ui.get("space"))


def diff_row(slot: Any, signature: Optional[str], account: str, before: Optional[Mapping[str, Any]],
             after: Optional[Mapping[str, Any]]) -> Row:
    lb = _int((before or {}).get("lamports")) if before else None
    la = _int((after or {}).get("lamports")) if after else None
    enc_b, data_b = _data(before)
    enc_a, data_a = _data(after)
    side = after or before or {}
    executable = side.get("executable")
    return (
        _int(slot), signature, str(account), lb, la, (la or 0) - (lb or 0),
        (before or {}).get("owner") if before else None, (after or {}).get("owner") if after else None,
        _space(before), _space(after), executable if isinstance(executable, bool) else None, enc_a or enc_b,
        data_b, data_a,
    )


def account_diff_rows(record: Mapping[str, Any]) -> List[Row]:
    slot, sig = record.get("slot"), record["signature"]
    out: List[Row] = []
    for acc, entry in (record.get("account_diffs") or {}).items():
        entry = entry or {}
        out.append(diff_row(slot, sig, acc, entry.get("before"), entry.get("after")))
    return out


def unattributed_row(diff: Mapping[str, Any]) -> Row:
    return diff_row(diff.get("slot"), None, str(diff.get("account", "")), diff.get("before"), diff.get("after"))


def record_rows(record: Mapping[str, Any], accounts: Sequence[str] = ()) -> Dict[str, List[Row]]:
    """Every table's rows for one ``transactions[]`` record."""
    return {"transactions": [transaction_row(record, accounts)], "sol_changes": sol_change_rows(record),
            "token_changes": token_change_rows(record), "account_diffs": account_diff_rows(record)}


def text_cell(value: Any, kind: str) -> str:
    """A CSV cell: null empty, booleans ``true``/``false``, lists as JSON."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "strs":
        return json.dumps(value, separators=(",", ":"))
    return str(value)
