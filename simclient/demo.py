"""``make demo`` / ``python -m simclient.demo``: a parallel backtest on an in-process local simulator.

Starts a :class:`simclient.local.LocalSimulator`, runs ~2,000 slots as a parallel run (the server splits the range
into sub-sessions) with transaction and account-diff subscriptions, shows progress, writes the ``sim run`` JSON
(``demo-run.json``) and prints a one-screen summary. Offline, no API key. Ctrl-C stops it cleanly.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Dict, List, Optional

from .cli import EXIT_USAGE, RunOptions, RunOutcome, execute_run, finish_interrupted, report_run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simclient.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-file", "-o", default="demo-run.json", help="where to write the run (default demo-run.json)")
    p.add_argument("--slots", type=int, default=2000, help="slots to replay (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="synthetic chain seed (default 0)")
    p.add_argument("--progress", choices=("auto", "bars", "lines", "none"), default="auto",
                   help="progress display (default: bars on a terminal, else lines)")
    p.add_argument("--progress-interval", type=float, default=2.0, help="seconds between progress lines (default 2)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.slots < 1:
        print("simclient demo: --slots must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        from .local import LocalSimulator
        from .local.chain import PROGRAM_IDS, PROGRAM_NAMES
    except ImportError as exc:
        print(f"simclient demo: needs the 'local' extra (pip install -e '.[local,cli]'): {exc}", file=sys.stderr)
        return EXIT_USAGE
    from . import Client

    names = dict(zip(PROGRAM_IDS, PROGRAM_NAMES))
    with LocalSimulator(port=0, seed=args.seed) as sim:
        slots = min(args.slots, sim.last_slot - sim.first_slot + 1)
        opts = RunOptions(start_slot=sim.first_slot, end_slot=sim.first_slot + slots - 1, parallel=True,
                          program_ids=sim.program_ids, subscriptions=("transactions", "account-diff"))
        print(f"simclient demo: parallel backtest of {slots:,} slots on a local simulator at {sim.url} "
              f"(seed {args.seed})", file=sys.stderr, flush=True)
        outcome = execute_run(Client(sim.url, sim.api_key), opts, args.output_file, args.progress,
                              args.progress_interval, sys.stderr, {"local_seed": args.seed, "demo": True})
        sessions = outcome.doc["metadata"].get("sessions") or []
        lo = min((s["start_slot"] for s in sessions), default=opts.start_slot)
        hi = max((s["end_slot"] for s in sessions), default=opts.end_slot)
        produced = len(sim.chain.produced_slots(lo, hi))
    report_run(outcome, args.output_file)
    if outcome.error and not outcome.written:
        return outcome.exit_code
    print_summary(outcome, names, args.output_file, produced)
    finish_interrupted(outcome)
    return outcome.exit_code


def print_summary(outcome: RunOutcome, names: Dict[str, str], output_file: str, produced: int) -> None:
    doc = outcome.doc
    meta, summary = doc["metadata"], doc["summary"]
    sessions = meta.get("sessions") or []
    covered = sum(s["end_slot"] - s["start_slot"] + 1 for s in sessions)
    lo = min((s["start_slot"] for s in sessions), default=meta["start_slot"])
    hi = max((s["end_slot"] for s in sessions), default=meta["end_slot"])
    programs: Counter[str] = outcome.programs   # counted while the records were streamed to the file
    diffs = outcome.account_diffs
    known = summary["successes"] + summary["failures"]
    rate = f"{summary['successes'] / known:.1%}" if known else "n/a"
    size = os.path.getsize(output_file) if outcome.written and os.path.exists(output_file) else 0
    completed = sum(1 for s in sessions if s.get("completed"))
    lines = [
        "",
        "simclient demo " + ("complete" if meta.get("complete") else "INCOMPLETE"),
        f"  sub-sessions    {len(sessions)} ({completed} completed, {len(outcome.failures)} failed)",
        f"  slots           {covered:,} ({lo}..{hi}); {produced:,} produced, {covered - produced:,} skipped",
        f"  transactions    {summary['total']:,} ({summary['successes']:,} ok, {summary['failures']:,} failed; "
        f"success rate {rate})",
        f"  account diffs   {diffs:,}",
        "  top programs    " + "  ".join(f"{names.get(p, p[:8])} {n:,}" for p, n in programs.most_common(5)),
        f"  reconnects      {outcome.control_reconnects} control, {outcome.subscription_reconnects} subscription",
        f"  elapsed         {outcome.elapsed:.1f}s ({covered / max(outcome.elapsed, 1e-9):,.0f} slots/s)",
    ]
    if outcome.written:
        lines.append(f"  output          {output_file} ({size / 1e6:.1f} MB)")
        lines.append(f"next: simclient summarize {output_file}   |   simclient compare {output_file} OTHER.json")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
