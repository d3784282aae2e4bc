"""The argument parser: global options, then one sub-parser per command (each command module adds its own)."""
from __future__ import annotations

import argparse
import os

from .._version import __version__
from . import cmd_export, cmd_ranges, cmd_results, cmd_run, cmd_serve


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simclient", description="Backtests on the Termina simulator (or the local one) from the shell.",
        epilog="Exit codes: 0 ok, 1 a session failed, 2 usage/connection error, 130 interrupted.")
    p.add_argument("--version", action="version", version=f"simclient {__version__}")
    p.add_argument("--url", default=os.environ.get("SIMULATOR_URL"),
                   help="simulator URL or bare host (env SIMULATOR_URL; default ws://127.0.0.1:8900/backtest)")
    p.add_argument("--api-key", default=None,
                   help="API key (env SIMULATOR_API_KEY; default local-dev-key). Never printed.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)")
    p.add_argument("--log-frames", action="store_true", default=False,
                   help="log every WebSocket frame sent and received to stderr, API key masked "
                        "(ClientConfig.log_frames)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    cmd_ranges.add_parser(sub)
    cmd_run.add_parser(sub)
    cmd_results.add_parsers(sub)
    cmd_export.add_parser(sub)
    cmd_serve.add_parser(sub)
    return p
