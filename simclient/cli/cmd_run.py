"""``simclient run``: validate the options, optionally start an in-process local simulator, execute the run."""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any, Dict, List, Optional, Tuple

from ..runfile import check_output_path
from .common import UsageError, _client, add_global_options
from .engine import RunOptions, RunOutcome, execute_run, finish_interrupted, report_run

SUBSCRIPTION_KINDS = ("transactions", "account-diff", "logs")

def _parse_subscriptions(text: str) -> Tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    kinds = []
    for part in text.split(","):
        k = part.strip().lower().replace("_", "-")
        if k in ("transaction", "txs", "tx"):
            k = "transactions"
        if k in ("account-diffs", "accountdiff", "diffs"):
            k = "account-diff"
        if k in ("log", "program-logs"):
            k = "logs"
        if k not in SUBSCRIPTION_KINDS:
            raise argparse.ArgumentTypeError(
                f"unknown subscription {part.strip()!r} (choose from {', '.join(SUBSCRIPTION_KINDS)}, or none)")
        if k not in kinds:
            kinds.append(k)
    return tuple(kinds)


def cmd_run(args: argparse.Namespace) -> int:
    sim = None
    outcome: Optional[RunOutcome] = None
    if args.output_file:  # before anything starts: a run whose file cannot be written is lost
        check_output_path(args.output_file)
    if args.local:
        try:
            from ..local import LocalSimulator
        except ImportError as exc:
            raise UsageError(f"--local needs the 'local' extra (pip install 'simclient[local]'): {exc}") from None
        sim = LocalSimulator(port=0, seed=args.local_seed, slot_pace_ms=args.local_slot_pace_ms,
                             create_delay_ms=args.local_create_delay_ms).start()
    try:
        start = args.start_slot
        if start is None:
            if sim is None:
                raise UsageError("--start-slot is required (see `simclient ranges`)")
            start = sim.first_slot
        if args.end_slot is not None and args.slot_count is not None:
            raise UsageError("give either --end-slot or --slot-count, not both")
        if args.end_slot is None and args.slot_count is None:
            raise UsageError("give --end-slot E or --slot-count N")
        end = args.end_slot if args.end_slot is not None else start + args.slot_count
        if end < start:
            raise UsageError(f"--end-slot ({end}) must be >= --start-slot ({start})")
        program_ids = [p.strip() for arg in (args.program_id or []) for p in arg.split(",") if p.strip()]
        if not program_ids and sim is not None:
            program_ids = sim.program_ids
        from .._base58 import is_pubkey

        bad = [p for p in program_ids if not is_pubkey(p)]
        if bad:
            raise UsageError(f"--program-id {bad[0]!r} is not a base58 public key")
        client = _client(args, sim.url if sim else None, sim.api_key if sim else None)
        if args.subscriptions and not program_ids:
            program_ids = local_program_ids(client.http_base)
            if program_ids:
                print(f"simclient: no --program-id: using the local simulator's {len(program_ids)} program ids",
                      file=sys.stderr)
        if args.subscriptions and not program_ids:
            raise UsageError("--subscriptions needs at least one --program-id (or --subscriptions none)")
        if args.advance_count is not None and args.advance_count < 1:
            raise UsageError("--advance-count must be >= 1")
        if (args.output_file or "").lower().endswith(".parquet"):  # fail before the run, not after it
            from ..results._arrow import require_pyarrow

            try:
                require_pyarrow("--output-file *.parquet")
            except ImportError as exc:
                raise UsageError(str(exc)) from None
        overrides, override_meta = _program_override(args, program_ids)
        opts = RunOptions(start_slot=start, end_slot=end, parallel=args.parallel, program_ids=program_ids,
                          subscriptions=args.subscriptions, advance_count=args.advance_count,
                          program_overrides=overrides)
        if args.workers is not None or args.scheduler:
            if "logs" in args.subscriptions:
                raise UsageError("--subscriptions logs is not supported with --workers / --scheduler yet")
            if overrides:
                raise UsageError("--program-so is not supported with --workers/--scheduler yet")
            from .scaleout import run_scaled_out

            return run_scaled_out(client, opts, args)
        extra: Dict[str, Any] = {"local_seed": args.local_seed} if sim is not None else {}
        extra.update(override_meta)
        outcome = execute_run(client, opts, args.output_file, args.progress, args.progress_interval, sys.stderr,
                              extra)
    finally:
        if sim is not None:
            sim.stop(timeout=0.5 if outcome is not None and outcome.interrupted else 2.0)
    if args.verbose and outcome.exception is not None:  # the README promises the traceback with -v
        traceback.print_exception(type(outcome.exception), outcome.exception, outcome.exception.__traceback__,
                                  file=sys.stderr)
    report_run(outcome, args.output_file)
    finish_interrupted(outcome)
    return outcome.exit_code


def _program_override(args: argparse.Namespace, program_ids: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``--program-so FILE``: the overrides replacing the one ``--program-id``'s code, and what the run file's
    metadata records about them (file, size, sha256). ``({}, {})`` without the flag."""
    path = getattr(args, "program_so", None)
    if not path:
        return {}, {}
    if len(program_ids) != 1:
        raise UsageError(f"--program-so replaces one program: give exactly one --program-id (got {len(program_ids)})")
    try:
        with open(path, "rb") as fh:
            elf = fh.read()
    except OSError as exc:
        raise UsageError(f"--program-so {path}: {exc.strerror or exc}") from None
    from ..programs import modify_program

    try:
        overrides = modify_program(program_ids[0], elf)
    except ValueError as exc:
        raise UsageError(f"--program-so {path}: {exc}") from None
    import hashlib

    return overrides, {"program_so": {"path": path, "bytes": len(elf), "sha256": hashlib.sha256(elf).hexdigest(),
                                      "program_id": program_ids[0]}}


#: simclient.local.server.LOCAL_PROGRAM_IDS_PATH (not imported: that module needs the ``local`` extra).
LOCAL_PROGRAM_IDS_PATH = "/local/program-ids"


def local_program_ids(http_base: str, timeout: float = 2.0) -> List[str]:
    """The program ids a local simulator offers at ``GET /local/program-ids``; [] from any other server (the hosted
    service has no such endpoint) or on any error: then ``--program-id`` is required as before."""
    import requests

    try:
        resp = requests.get(http_base.rstrip("/") + LOCAL_PROGRAM_IDS_PATH, timeout=timeout)
        try:
            if resp.status_code != 200:
                return []
            ids = resp.json().get("program_ids")
        finally:
            resp.close()
    except (requests.RequestException, ValueError, AttributeError):
        return []
    if not isinstance(ids, list):
        return []
    from .._base58 import is_pubkey

    return [p for p in ids if isinstance(p, str) and is_pubkey(p)]


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a backtest and write the `sim run` JSON")
    run.add_argument("--start-slot", type=int, metavar="S", help="first slot (inclusive)")
    g = run.add_mutually_exclusive_group()
    g.add_argument("--end-slot", type=int, metavar="E", help="last slot (inclusive)")
    g.add_argument("--slot-count", type=int, metavar="N", help="replay slots S..S+N (N+1 slots, like the Rust CLI)")
    run.add_argument("--parallel", action="store_true", help="let the server split the range into sub-sessions")
    run.add_argument("--program-id", action="append", metavar="ID",
                     help="program whose transactions / account diffs to capture (repeatable, or comma-separated)")
    run.add_argument("--program-so", metavar="FILE",
                     help="replace the --program-id program's code with this ELF (.so) for the whole run (like the "
                          "Rust CLI): upgradeable-loader overrides sent with the create at --start-slot")
    run.add_argument("--subscriptions", type=_parse_subscriptions, default=("transactions",),
                     metavar="KINDS", help="comma-separated: transactions, account-diff, logs, or none "
                                           "(default: transactions)")
    run.add_argument("--advance-count", type=int, metavar="K",
                     help="slots per continue (default: the whole range in one continue)")
    run.add_argument("--output-file", "-o", metavar="FILE",
                     help="write the run JSON here (- for stdout); FILE.parquet: Parquet tables instead (FILE.parquet "
                          "= transactions, FILE.<table>.parquet the others; extra 'data')")
    run.add_argument("--local", action="store_true",
                     help="start an in-process local simulator and run against it (default program ids: its own)")
    run.add_argument("--local-seed", type=int, default=0, metavar="N", help="--local: chain seed (default 0)")
    run.add_argument("--local-slot-pace-ms", type=float, default=0, metavar="MS", help=argparse.SUPPRESS)
    run.add_argument("--local-create-delay-ms", type=float, default=0, metavar="MS", help=argparse.SUPPRESS)
    run.add_argument("--progress", choices=("auto", "bars", "lines", "none"), default="auto",
                     help="progress display on stderr (default auto: bars on a terminal, else lines)")
    run.add_argument("--progress-interval", type=float, default=None, metavar="SECONDS",
                     help="seconds between progress lines when not on a terminal (default 5)")
    add_global_options(run)
    from .scaleout import add_arguments

    add_arguments(run)
    run.set_defaults(func=cmd_run)
