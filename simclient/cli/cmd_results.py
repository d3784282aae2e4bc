"""``simclient compare`` and ``simclient summarize``: read run files and print differences or totals."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

from ..runfile import SECTIONS, compare_runs, load_run, render_comparison, render_summary, summarize_run
from .common import EXIT_FAILED, EXIT_OK, UsageError, add_global_options


def cmd_compare(args: argparse.Namespace) -> int:
    base = load_run(args.baseline)
    exp = load_run(args.experiment)
    cmp = compare_runs(base, exp)
    if args.plot:
        _plot("plot_compare", args, args.baseline, args.experiment)
    if args.json:
        print(json.dumps(cmp.as_dict(args.section), indent=2))
    else:
        print(f"baseline:   {args.baseline} ({len(base['transactions'])} transactions)")
        print(f"experiment: {args.experiment} ({len(exp['transactions'])} transactions)")
        print(render_comparison(cmp, args.section, args.limit))
    if args.exit_code:
        relevant = cmp.has_differences if args.section is None else bool(
            {"regressions": cmp.regressions, "improvements": cmp.improvements, "balances": cmp.balances}
            [args.section])
        return EXIT_FAILED if relevant else EXIT_OK
    return EXIT_OK


def cmd_summarize(args: argparse.Namespace) -> int:
    doc = load_run(args.file)
    accounts = [a.strip() for a in (args.accounts or "").split(",") if a.strip()]
    s = summarize_run(doc, accounts)
    if args.plot:
        _plot("plot_run", args, args.file)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"file:         {args.file}")
        print(render_summary(s, _program_names()))
    return EXIT_OK


def _plot(which: str, args: argparse.Namespace, *files: str) -> None:
    """``--plot PNG`` (simclient.plot; the `plot` extra)."""
    try:
        from .. import plot
        fn = getattr(plot, which)
        fn(*files, args.plot, _accounts(args), _program_names())
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    print(f"simclient: wrote {args.plot}", file=sys.stderr)


def _accounts(args: argparse.Namespace) -> List[str]:
    return [a.strip() for a in (getattr(args, "accounts", None) or "").split(",") if a.strip()]


def _program_names() -> Dict[str, str]:
    """Names of the local simulator's synthetic programs (for nicer summaries); empty without the extra."""
    try:
        from ..local.chain import PROGRAM_IDS, PROGRAM_NAMES
    except Exception:  # noqa: BLE001 - optional
        return {}
    return {pid: name for pid, name in zip(PROGRAM_IDS, PROGRAM_NAMES)}

def add_parsers(sub: Any) -> None:
    c = sub.add_parser("compare", help="compare two run files by signature")
    c.add_argument("baseline", metavar="BASELINE")
    c.add_argument("experiment", metavar="EXPERIMENT")
    c.add_argument("section", nargs="?", choices=SECTIONS, help="only this section")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--limit", type=int, default=20, help="rows per list in text output (default 20)")
    c.add_argument("--exit-code", action="store_true", help="exit 1 when the runs differ (like git diff)")
    add_global_options(c, target=False)
    c.add_argument("--plot", metavar="PNG", help="also draw the per-slot difference to PNG (extra 'plot')")
    c.add_argument("--accounts", metavar="A,B", help="--plot: accounts whose cumulative SOL change to draw")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("summarize", help="totals of a run file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--accounts", metavar="A,B", help="also per-account totals for these accounts")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_global_options(s, target=False)
    s.add_argument("--plot", metavar="PNG", help="also draw the run to PNG: transactions per slot, cumulative SOL "
                                                 "change of --accounts (default: the busiest); extra 'plot'")
    s.set_defaults(func=cmd_summarize)
