"""Table writers fed one run record at a time: Parquet (row groups as the run goes), CSV and JSON lines.

A sink takes the ``transactions[]`` records of the run file (:func:`simclient.runfile.transaction_record`'s shape,
account diffs joined) one by one with :meth:`RunSink.add`, buffers at most ``row_group_size`` rows per table, and
writes them out when the buffer is full, so memory stays bounded however long the run. Every table goes to a temp
file next to its target; :meth:`RunSink.finish` closes them and renames them into place (a reader never sees half a
file), :meth:`RunSink.abort` removes them.

Layouts: :func:`run_paths` for ``simclient run --output-file run.parquet`` (``run.parquet`` is the transactions
table, the others are ``run.sol_changes.parquet`` ...), :func:`directory_paths` for ``simclient export`` (``DIR/
transactions.parquet`` ... plus ``DIR/metadata.json``). Parquet files carry the run's metadata and summary as JSON
in their key-value metadata under :data:`PARQUET_METADATA_KEY`.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence

from . import _rows
from ._rows import TABLES, Row
from ._stream import RunStream

log = logging.getLogger("simclient.results")

FORMATS = ("parquet", "csv", "jsonl")
DEFAULT_ROW_GROUP = 5_000
PARQUET_METADATA_KEY = "simclient.run"


def run_paths(path: str) -> Dict[str, str]:
    """``run.parquet`` -> transactions in ``run.parquet``, the others in ``run.<table>.parquet`` beside it."""
    root, ext = os.path.splitext(str(path))
    return {t: str(path) if t == "transactions" else f"{root}.{t}{ext}" for t in TABLES}


def directory_paths(out_dir: str, fmt: str) -> Dict[str, str]:
    return {t: os.path.join(str(out_dir), f"{t}.{fmt}") for t in TABLES}


class RunSink:
    """Base of the table sinks: records -> rows, a bounded buffer per table, temp files renamed on finish.

    Subclasses implement ``_open(table, tmp_path)``, ``_write(table, rows)`` and ``_close(table, run_doc)``.
    """

    fmt = ""

    def __init__(self, paths: Mapping[str, str], accounts: Sequence[str] = (),
                 row_group_size: int = DEFAULT_ROW_GROUP, metadata_path: Optional[str] = None):
        if row_group_size < 1:
            raise ValueError("row_group_size must be >= 1")
        missing = [t for t in TABLES if t not in paths]
        if missing:
            raise ValueError(f"no path for table(s) {', '.join(missing)}")
        self.paths = {t: str(paths[t]) for t in TABLES}
        self.metadata_path = metadata_path
        self.accounts = [str(a) for a in accounts]
        self.row_group_size = int(row_group_size)
        self.columns = {t: _rows.columns(t, self.accounts) for t in TABLES}
        self._buffers: Dict[str, List[Row]] = {t: [] for t in TABLES}
        self.rows_written: Dict[str, int] = {t: 0 for t in TABLES}
        self.flushes = 0
        self.max_buffered = 0
        self.total = self.successes = self.failures = 0
        self._tmp: Dict[str, str] = {}
        self._done = False
        try:
            for t in TABLES:
                directory = os.path.dirname(os.path.abspath(self.paths[t])) or "."
                fd, tmp = tempfile.mkstemp(prefix=f".simclient-{t}-", suffix=f".{self.fmt}", dir=directory)
                os.close(fd)
                self._tmp[t] = tmp
                self._open(t, tmp)
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ feeding
    def add(self, record: Mapping[str, Any]) -> None:
        """One ``transactions[]`` record."""
        self._check_open()
        self.total += 1
        if record.get("success") is True:
            self.successes += 1
        elif record.get("success") is False:
            self.failures += 1
        for table, rows in _rows.record_rows(record, self.accounts).items():
            if rows:
                self._extend(table, rows)

    def add_unattributed(self, diff: Mapping[str, Any]) -> None:
        """One account diff without a signature (``unattributed_account_diffs[]``)."""
        self._check_open()
        self._extend("account_diffs", [_rows.unattributed_row(diff)])

    def _extend(self, table: str, rows: List[Row]) -> None:
        buf = self._buffers[table]
        buf.extend(rows)
        if len(buf) > self.max_buffered:
            self.max_buffered = len(buf)
        while len(buf) >= self.row_group_size:
            chunk, rest = buf[:self.row_group_size], buf[self.row_group_size:]
            self._buffers[table] = buf = rest
            self._flush(table, chunk)

    def _flush(self, table: str, rows: List[Row]) -> None:
        if rows:
            self._write(table, rows)
            self.rows_written[table] += len(rows)
            self.flushes += 1

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("the sink is finished or aborted")

    @property
    def summary(self) -> Dict[str, int]:
        return {"total": self.total, "successes": self.successes, "failures": self.failures}

    # ------------------------------------------------------------------ ending
    def finish(self, metadata: Mapping[str, Any], summary: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
        """Write what is buffered, close every table with the run's metadata and rename them into place.
        Returns ``{table: path}``."""
        self._check_open()
        run_doc = {"metadata": dict(metadata or {}), "summary": dict(summary) if summary else self.summary}
        try:
            for t in TABLES:
                rows, self._buffers[t] = self._buffers[t], []
                self._flush(t, rows)
                self._close(t, run_doc)
            mode = _file_mode()
            for t in TABLES:
                tmp = self._tmp.pop(t)
                os.chmod(tmp, mode)  # mkstemp makes 0600; a finished table gets the usual umask mode
                os.replace(tmp, self.paths[t])
            if self.metadata_path:
                _write_json_atomic(self.metadata_path, run_doc)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return dict(self.paths)

    def abort(self) -> None:
        """Drop everything written so far (temp files removed; targets untouched)."""
        self._done = True
        for t, tmp in list(self._tmp.items()):
            try:
                self._discard(t)
            except Exception:  # noqa: BLE001 - cleaning up
                log.debug("closing %s failed", t, exc_info=True)
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._tmp.clear()

    def __enter__(self) -> "RunSink":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._done:
            self.abort()

    # ------------------------------------------------------------------ format hooks
    def _open(self, table: str, tmp_path: str) -> None:
        raise NotImplementedError

    def _write(self, table: str, rows: List[Row]) -> None:
        raise NotImplementedError

    def _close(self, table: str, run_doc: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _discard(self, table: str) -> None:
        raise NotImplementedError


class ParquetRunSink(RunSink):
    """Parquet, one row group per ``row_group_size`` rows (zstd). Needs the ``data`` extra (pyarrow)."""

    fmt = "parquet"

    def __init__(self, paths: Any, accounts: Sequence[str] = (), row_group_size: int = DEFAULT_ROW_GROUP,
                 metadata_path: Optional[str] = None, compression: str = "zstd"):
        from ._arrow import require_pyarrow

        require_pyarrow("Parquet output")
        self.compression = compression
        self._writers: Dict[str, Any] = {}
        self._schemas: Dict[str, Any] = {}
        super().__init__(run_paths(os.fspath(paths)) if isinstance(paths, (str, os.PathLike)) else paths, accounts,
                         row_group_size, metadata_path)

    def _open(self, table: str, tmp_path: str) -> None:
        import pyarrow.parquet as pq

        from ._arrow import schema

        self._schemas[table] = schema(self.columns[table])
        self._writers[table] = pq.ParquetWriter(tmp_path, self._schemas[table], compression=self.compression)

    def _write(self, table: str, rows: List[Row]) -> None:
        import pyarrow as pa

        from ._arrow import record_batch

        batch = record_batch(rows, self._schemas[table])
        self._writers[table].write_table(pa.Table.from_batches([batch]), row_group_size=len(rows))

    def _close(self, table: str, run_doc: Mapping[str, Any]) -> None:
        writer = self._writers.pop(table)
        text = json.dumps(dict(run_doc, table=table), separators=(",", ":"))
        if hasattr(writer, "add_key_value_metadata"):
            writer.add_key_value_metadata({PARQUET_METADATA_KEY: text})
        writer.close()

    def _discard(self, table: str) -> None:
        writer = self._writers.pop(table, None)
        if writer is not None:
            writer.close()


class CsvRunSink(RunSink):
    """CSV with a header row: nulls empty, booleans ``true``/``false``, lists as JSON text. Stdlib only."""

    fmt = "csv"

    def __init__(self, paths: Mapping[str, str], accounts: Sequence[str] = (),
                 row_group_size: int = DEFAULT_ROW_GROUP, metadata_path: Optional[str] = None):
        self._files: Dict[str, IO[str]] = {}
        self._writers: Dict[str, Any] = {}
        super().__init__(paths, accounts, row_group_size, metadata_path)

    def _open(self, table: str, tmp_path: str) -> None:
        fh = open(tmp_path, "w", encoding="utf-8", newline="")
        self._files[table] = fh
        self._writers[table] = csv.writer(fh)
        self._writers[table].writerow([c for c, _ in self.columns[table]])

    def _write(self, table: str, rows: List[Row]) -> None:
        kinds = [k for _, k in self.columns[table]]
        self._writers[table].writerows([_rows.text_cell(v, k) for v, k in zip(r, kinds)] for r in rows)

    def _close(self, table: str, run_doc: Mapping[str, Any]) -> None:
        self._files.pop(table).close()

    def _discard(self, table: str) -> None:
        fh = self._files.pop(table, None)
        if fh is not None:
            fh.close()


class JsonlRunSink(CsvRunSink):
    """JSON lines: one object per row (lists stay lists). Stdlib only."""

    fmt = "jsonl"

    def _open(self, table: str, tmp_path: str) -> None:
        self._files[table] = open(tmp_path, "w", encoding="utf-8")

    def _write(self, table: str, rows: List[Row]) -> None:
        names = [c for c, _ in self.columns[table]]
        fh = self._files[table]
        fh.writelines(json.dumps(dict(zip(names, r)), separators=(",", ":")) + "\n" for r in rows)


_SINKS = {"parquet": ParquetRunSink, "csv": CsvRunSink, "jsonl": JsonlRunSink}


def open_sink(fmt: str, paths: Mapping[str, str], accounts: Sequence[str] = (),
              row_group_size: int = DEFAULT_ROW_GROUP, metadata_path: Optional[str] = None) -> RunSink:
    if fmt not in _SINKS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    return _SINKS[fmt](paths, accounts, row_group_size, metadata_path)  # type: ignore[no-any-return]


def export_run(path: str, out_dir: str, fmt: str = "parquet", accounts: Sequence[str] = (),
               row_group_size: int = DEFAULT_ROW_GROUP) -> Dict[str, str]:
    """Stream the run file ``path`` into ``out_dir/<table>.<fmt>`` (+ ``metadata.json``). Returns the paths."""
    if fmt not in _SINKS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    stream = RunStream(path)
    stream.metadata  # noqa: B018 - a file that is not a run file fails here, before any output is created
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(str(out_dir), "metadata.json")
    with open_sink(fmt, directory_paths(out_dir, fmt), accounts, row_group_size, meta_path) as sink:
        for kind, value in stream.items():
            if kind == "transaction":
                sink.add(value)
            else:
                sink.add_unattributed(value)
        written = sink.finish(stream.metadata, stream.summary)
    return dict(written, metadata=meta_path)


def write_run_parquet(path: str, doc: Mapping[str, Any], accounts: Sequence[str] = (),
                      row_group_size: int = DEFAULT_ROW_GROUP) -> Dict[str, str]:
    """A run document in memory -> the :func:`run_paths` Parquet layout (what ``simclient run -o x.parquet``
    writes)."""
    with ParquetRunSink(run_paths(path), accounts, row_group_size) as sink:
        for record in doc.get("transactions") or []:
            sink.add(record)
        for diff in doc.get("unattributed_account_diffs") or []:
            sink.add_unattributed(diff)
        return sink.finish(doc.get("metadata") or {}, doc.get("summary"))


def read_parquet_metadata(path: str) -> Dict[str, Any]:
    """``{"metadata", "summary", "table"}`` stored in a Parquet file written by a :class:`ParquetRunSink`."""
    import pyarrow.parquet as pq

    kv = pq.ParquetFile(path).metadata.metadata or {}
    raw = kv.get(PARQUET_METADATA_KEY.encode())
    return json.loads(raw) if raw else {}


def _file_mode() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux: read the umask without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _write_json_atomic(path: str, doc: Mapping[str, Any]) -> None:
    from ..runfile import atomic_text_file

    with atomic_text_file(path, prefix=".simclient-meta-") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


class ParquetSpoolSink:
    """The streamed writer's sink (:class:`simclient.runwriter.RunSink`) for ``simclient run -o run.parquet``.

    Records go to a JSON spool beside the output as the run goes (the JSON sink: one spool per sub-session, put in
    range order at the end), and :meth:`finish` streams that spool into the Parquet tables in bounded memory
    (:class:`RunStream` -> :class:`ParquetRunSink`, row groups of ``row_group_size``), then removes it. Same rows,
    same order as ``simclient export`` of the JSON run file."""

    def __init__(self, path: str, parallel: bool = False, accounts: Sequence[str] = (),
                 row_group_size: int = DEFAULT_ROW_GROUP):
        from ..runwriter import JsonRunSink
        from ._arrow import require_pyarrow

        require_pyarrow("simclient run -o FILE.parquet")
        self.path = path
        self.accounts = list(accounts)
        self.row_group_size = row_group_size
        directory = os.path.dirname(os.path.abspath(path)) or "."
        fd, self._spool = tempfile.mkstemp(prefix=".simclient-run-spool-", suffix=".json", dir=directory)
        os.close(fd)
        self._json = JsonRunSink(self._spool, parallel=parallel)

    def add_session(self, session_id: str, start_slot: int, end_slot: int) -> None:
        self._json.add_session(session_id, start_slot, end_slot)

    def add_transaction_record(self, session_id: str, record: Dict[str, Any]) -> None:
        self._json.add_transaction_record(session_id, record)

    def add_unattributed_diff(self, entry: Dict[str, Any]) -> None:
        self._json.add_unattributed_diff(entry)

    def finish(self, metadata: Dict[str, Any], summary: Dict[str, int]) -> None:
        try:
            self._json.finish(metadata, summary)
            stream = RunStream(self._spool)
            with ParquetRunSink(run_paths(self.path), self.accounts, self.row_group_size) as sink:
                for kind, value in stream.items():
                    if kind == "transaction":
                        sink.add(value)
                    else:
                        sink.add_unattributed(value)
                sink.finish(stream.metadata, stream.summary)
        finally:
            self._remove_spool()

    def abort(self) -> None:
        try:
            self._json.abort()
        finally:
            self._remove_spool()

    def _remove_spool(self) -> None:
        try:
            os.unlink(self._spool)
        except OSError:
            pass
