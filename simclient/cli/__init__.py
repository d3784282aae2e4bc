"""``simclient``: the command line (the Python counterpart of the Rust ``sim`` CLI).

    simclient ranges [--after DATE] [--before DATE] [--json]
    simclient run --start-slot S (--end-slot E | --slot-count N) [--parallel] [--program-id ID ...]
                  [--subscriptions transactions,account-diff] [--advance-count K] [--output-file run.json] [--local]
    simclient compare BASELINE EXPERIMENT [regressions|improvements|balances] [--plot PNG]
    simclient summarize FILE [--accounts A,B] [--plot PNG]
    simclient export RUN.json [--format parquet|csv|jsonl] -o DIR
    simclient serve [--port 8900] [--api-key KEY] [--seed N] [--bundle-size N]

Global options: ``--url`` (env ``SIMULATOR_URL``), ``--api-key`` (env ``SIMULATOR_API_KEY``; never printed or
logged), ``-v``/``-vv`` (logging to stderr, tracebacks of errors); before the command or after it.

Exit codes: 0 success; 1 a session or sub-session failed (each failure is listed once, at the end); 2 usage,
connection or authentication error; 130 interrupted (Ctrl-C: the run is closed and what was captured is written
with ``"complete": false``); 141 stdout closed early (``| head``), quietly.

Layout (one module per concern): :mod:`.app` ``main()`` and exit-code mapping, :mod:`.args` the parser,
``cmd_*`` one module per command (each adds its own sub-parser), :mod:`.engine` the run engine shared with
``simclient.demo``, :mod:`.progress` the progress model and renderers, :mod:`.common` exit codes and errors.
"""
from __future__ import annotations

from .app import main
from .args import build_parser
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConnectError, UsageError, \
    connection_reason, probe_reason
from .engine import INTERRUPT_CLOSE_BUDGET, RunEngine, RunOptions, RunOutcome, execute_run, finish_interrupted, \
    report_run
from .progress import LineRenderer, NullRenderer, ProgressModel, TqdmRenderer, make_renderer

__all__ = [
    "main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError",
    "ConnectError", "connection_reason", "probe_reason", "INTERRUPT_CLOSE_BUDGET", "RunEngine", "RunOptions",
    "RunOutcome", "execute_run", "finish_interrupted", "report_run", "LineRenderer", "NullRenderer",
    "ProgressModel", "TqdmRenderer", "make_renderer",
]
