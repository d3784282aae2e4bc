"""A run as tables: pandas / Arrow / Polars, Parquet, CSV, JSON lines.

::

    from simclient import results

    tables = results.read_run("run.json", accounts=["<pubkey>"])   # streamed: the JSON is never loaded whole
    df = tables.transactions.to_pandas()        # pandas (extra `data`)
    at = tables.account_diffs.to_arrow()        # pyarrow.Table
    pl_df = polars.from_arrow(tables.transactions.to_arrow())      # Polars, through Arrow

Tables (columns in :mod:`simclient.results._rows`): ``transactions`` (one row per transaction: slot, signature,
success, error, fee, compute_units, program(s), logs, account_diff_count, ``sol_change.<pubkey>`` per tracked
account), ``sol_changes`` (transaction x account), ``token_changes`` (transaction x account x mint),
``account_diffs`` (one row per account diff).

This package imports only the standard library; pyarrow and pandas are imported when ``to_arrow()``,
``to_pandas()`` or a Parquet sink is used (``pip install 'simclient[data]'``). CSV and JSON lines need nothing.
"""
from __future__ import annotations

from ._rows import SOL_CHANGE_PREFIX, TABLES, columns
from ._stream import RunStream
from ._tables import EventTables, ResultTable, RunTables, read_run
from .sinks import DEFAULT_ROW_GROUP, FORMATS, PARQUET_METADATA_KEY, CsvRunSink, JsonlRunSink, ParquetRunSink, \
    RunSink, directory_paths, export_run, open_sink, read_parquet_metadata, run_paths, write_run_parquet

__all__ = [
    "TABLES", "SOL_CHANGE_PREFIX", "columns", "RunStream", "ResultTable", "RunTables", "EventTables", "read_run",
    "RunSink", "ParquetRunSink", "CsvRunSink", "JsonlRunSink", "open_sink", "export_run", "write_run_parquet",
    "run_paths", "directory_paths", "read_parquet_metadata", "FORMATS", "DEFAULT_ROW_GROUP", "PARQUET_METADATA_KEY",
]
