"""In-memory tables of a run: :class:`ResultTable` (one table), :class:`RunTables` (the four of a run),
:class:`EventTables` (built live from a session's events, e.g. in a notebook)."""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ..runfile import RunRecorder
from . import _rows
from ._rows import Column, Row
from ._stream import RunStream

#: Rows kept as Python tuples before they are packed into an Arrow record batch (when pyarrow is installed).
COMPACT_ROWS = 65_536

_HAVE_ARROW: Optional[bool] = None


def _have_arrow() -> bool:
    global _HAVE_ARROW
    if _HAVE_ARROW is None:  # asked only once rows are to be packed or converted
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            _HAVE_ARROW = False
        else:
            _HAVE_ARROW = True
    return _HAVE_ARROW


class ResultTable:
    """One table: named, typed columns (see :mod:`simclient.results`). ``to_arrow()`` / ``to_pandas()`` /
    ``to_pylist()``; Polars: ``polars.from_arrow(table.to_arrow())``.

    Rows are packed into Arrow record batches every :data:`COMPACT_ROWS` rows when pyarrow is installed (a few
    times smaller than Python tuples); without it they stay tuples and ``to_pandas()`` builds the frame directly.
    """

    def __init__(self, name: str, cols: Sequence[Column], compact_rows: int = COMPACT_ROWS):
        self.name = name
        self.columns: List[Column] = list(cols)
        self._rows: List[Row] = []
        self._batches: List[Any] = []
        self._packed = 0
        self._compact_rows = compact_rows
        self._schema: Any = None

    def __repr__(self) -> str:
        return f"<ResultTable {self.name}: {len(self)} rows, {len(self.columns)} columns>"

    def __len__(self) -> int:
        return self._packed + len(self._rows)

    @property
    def column_names(self) -> List[str]:
        return [c for c, _ in self.columns]

    def append(self, row: Row) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._compact_rows and _have_arrow():
            self._pack()

    def extend(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.append(row)

    def arrow_schema(self) -> Any:
        if self._schema is None:
            from ._arrow import require_pyarrow, schema

            require_pyarrow("to_arrow()")
            self._schema = schema(self.columns)
        return self._schema

    def _pack(self) -> None:
        from ._arrow import record_batch

        self._batches.append(record_batch(self._rows, self.arrow_schema()))
        self._packed += len(self._rows)
        self._rows = []

    def rows(self) -> Iterator[Row]:
        """Every row as a tuple, in order."""
        names = self.column_names
        for batch in self._batches:
            cols = [batch.column(n).to_pylist() for n in names]
            yield from zip(*cols)
        yield from self._rows

    def to_pylist(self) -> List[Dict[str, Any]]:
        names = self.column_names
        return [dict(zip(names, r)) for r in self.rows()]

    def column(self, name: str) -> List[Any]:
        i = self.column_names.index(name)
        return [r[i] for r in self.rows()]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` (needs the ``data`` extra)."""
        import pyarrow as pa

        from ._arrow import record_batch

        sch = self.arrow_schema()
        batches = list(self._batches)
        if self._rows or not batches:
            batches.append(record_batch(self._rows, sch))
        return pa.Table.from_batches(batches, schema=sch)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with nullable ``Int64`` / ``boolean`` columns (needs the ``data`` extra)."""
        from ._arrow import arrow_to_pandas, rows_to_pandas

        if _have_arrow():
            return arrow_to_pandas(self.to_arrow())
        return rows_to_pandas(self._rows, self.columns)


class RunTables:
    """The four tables of a run (``transactions``, ``sol_changes``, ``token_changes``, ``account_diffs``), plus the
    run's ``metadata`` and ``summary``. ``accounts``: the tracked accounts, one ``sol_change.<pubkey>`` column each
    in ``transactions``."""

    def __init__(self, accounts: Sequence[str] = (), metadata: Optional[Mapping[str, Any]] = None,
                 summary: Optional[Mapping[str, Any]] = None):
        self.accounts = [str(a) for a in accounts]
        self.metadata: Dict[str, Any] = dict(metadata or {})
        self.summary: Optional[Dict[str, Any]] = dict(summary) if summary else None
        self.transactions = ResultTable("transactions", _rows.columns("transactions", self.accounts))
        self.sol_changes = ResultTable("sol_changes", _rows.columns("sol_changes"))
        self.token_changes = ResultTable("token_changes", _rows.columns("token_changes"))
        self.account_diffs = ResultTable("account_diffs", _rows.columns("account_diffs"))

    def __repr__(self) -> str:
        return "<RunTables " + ", ".join(f"{t.name}={len(t)}" for t in self.tables.values()) + ">"

    @property
    def tables(self) -> Dict[str, ResultTable]:
        return {"transactions": self.transactions, "sol_changes": self.sol_changes,
                "token_changes": self.token_changes, "account_diffs": self.account_diffs}

    def __getitem__(self, name: str) -> ResultTable:
        return self.tables[name]

    def add_record(self, record: Mapping[str, Any]) -> None:
        """Add one ``transactions[]`` record of the run file."""
        self.transactions.append(_rows.transaction_row(record, self.accounts))
        self.sol_changes.extend(_rows.sol_change_rows(record))
        self.token_changes.extend(_rows.token_change_rows(record))
        self.account_diffs.extend(_rows.account_diff_rows(record))

    def add_unattributed(self, diff: Mapping[str, Any]) -> None:
        """Add one ``unattributed_account_diffs[]`` entry (an account diff without a signature)."""
        self.account_diffs.append(_rows.unattributed_row(diff))

    def to_arrow(self) -> Dict[str, Any]:
        """``{name: pyarrow.Table}``."""
        return {name: t.to_arrow() for name, t in self.tables.items()}

    def to_pandas(self) -> Dict[str, Any]:
        """``{name: pandas.DataFrame}``."""
        return {name: t.to_pandas() for name, t in self.tables.items()}

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], accounts: Sequence[str] = (),
                     metadata: Optional[Mapping[str, Any]] = None) -> "RunTables":
        out = cls(accounts, metadata)
        for r in records:
            out.add_record(r)
        return out

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], accounts: Sequence[str] = ()) -> "RunTables":
        """From a run document already in memory (``RunRecorder.document()``, ``load_run()``)."""
        out = cls.from_records(doc.get("transactions") or [], accounts, doc.get("metadata"))
        out.summary = dict(doc["summary"]) if isinstance(doc.get("summary"), dict) else None
        for diff in doc.get("unattributed_account_diffs") or []:
            out.add_unattributed(diff)
        return out


def read_run(path: str, accounts: Sequence[str] = (), chunk_size: int = 1 << 20) -> RunTables:
    """Read a run file (ours or the Rust ``sim run``'s) into :class:`RunTables`, streaming: the JSON is never
    loaded whole. Raises :class:`simclient.runfile.RunFileError` for a file that is not a run file."""
    stream = RunStream(path, chunk_size)
    out = RunTables(accounts)
    for kind, value in stream.items():
        if kind == "transaction":
            out.add_record(value)
        else:
            out.add_unattributed(value)
    out.metadata = dict(stream.metadata)
    out.summary = stream.summary
    return out


class EventTables(RunRecorder):
    """A :class:`simclient.runfile.RunRecorder` that turns into tables: feed it a session's events (``add_event``;
    account diffs are joined to their transaction by signature), then :meth:`tables` or :meth:`to_pandas`."""

    def __init__(self, accounts: Sequence[str] = (), program_ids: Sequence[str] = ()):
        super().__init__(0, 0, program_ids)
        self.accounts = [str(a) for a in accounts]

    def tables(self) -> RunTables:
        return RunTables.from_document(self.document(complete=False), self.accounts)

    def to_pandas(self, table: str = "transactions") -> Any:
        return self.tables()[table].to_pandas()

    def to_arrow(self, table: str = "transactions") -> Any:
        return self.tables()[table].to_arrow()
