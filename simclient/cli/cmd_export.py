"""``simclient export RUN.json --format parquet|csv|jsonl -o DIR``: the run file as tables (streamed)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..results.sinks import DEFAULT_ROW_GROUP
from .common import EXIT_OK, UsageError


def cmd_export(args: argparse.Namespace) -> int:
    from ..results import export_run

    accounts = [a.strip() for a in (args.accounts or "").split(",") if a.strip()]
    if args.row_group_size < 1:
        raise UsageError("--row-group-size must be >= 1")
    try:
        written = export_run(args.file, args.output_dir, args.format, accounts, args.row_group_size)
    except ImportError as exc:  # parquet without pyarrow
        raise UsageError(str(exc)) from None
    for name, path in written.items():
        print(f"{name:<14} {path}")
    print(f"simclient: exported {args.file} to {args.output_dir} ({args.format})", file=sys.stderr)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    e = sub.add_parser("export", help="write a run file's tables as Parquet, CSV or JSON lines",
                       description="Tables: transactions, sol_changes, token_changes, account_diffs (one file "
                                   "each, DIR/<table>.<format>) and DIR/metadata.json. The run file is streamed, "
                                   "never loaded whole. Parquet needs the 'data' extra.")
    e.add_argument("file", metavar="RUN.json")
    e.add_argument("--format", "-f", choices=("parquet", "csv", "jsonl"), default="parquet",
                   help="output format (default parquet)")
    e.add_argument("--output-dir", "-o", required=True, metavar="DIR", help="directory to write (created)")
    e.add_argument("--accounts", metavar="A,B",
                   help="tracked accounts: a sol_change.<pubkey> column each in the transactions table")
    e.add_argument("--row-group-size", type=int, default=DEFAULT_ROW_GROUP, metavar="N",
                   help="rows per Parquet row group / per write (default %(default)s)")
    e.set_defaults(func=cmd_export)
