"""A picture of a run: ``simclient summarize RUN.json --plot run.png`` and ``simclient compare A B --plot d.png``.

Panels (x: slot numbers over the run's range, empty slots included):

* transactions per slot, successes and failures stacked (compare: the per-slot difference experiment - baseline);
* cumulative SOL change of each tracked account (``accounts``; default the accounts touched by the most
  transactions). Compare draws the baseline dashed, the experiment solid.

Needs the ``plot`` extra (matplotlib). Draws on an Agg canvas without pyplot, so the process-wide backend (a
notebook's inline one, say) is left alone. The run files are streamed (:class:`simclient.results.RunStream`).
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .results import RunStream

#: Beyond this many slots, bars are summed over bins of several slots (the y label says how many).
MAX_BARS = 600
#: Accounts plotted when none are given.
DEFAULT_ACCOUNTS = 4
LAMPORTS_PER_SOL = 1_000_000_000

_OK, _FAILED, _UNKNOWN = "#2e7d32", "#c62828", "#9e9e9e"
#: Legends right of the plot area (never over the data); the constrained layout makes room for them.
_LEGEND: Dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small",
                           "borderaxespad": 0.0}


@dataclass
class RunSeries:
    """Per-slot counts and per-account lamport deltas of one run."""

    path: str
    start: int
    end: int
    successes: Counter[int] = field(default_factory=Counter)
    failures: Counter[int] = field(default_factory=Counter)
    unknown: Counter[int] = field(default_factory=Counter)
    sol: Dict[str, Counter[int]] = field(default_factory=dict)   # account -> slot -> lamports
    accounts: List[str] = field(default_factory=list)
    owners: Dict[str, str] = field(default_factory=dict)    # account -> owner program (from its account diffs)

    @property
    def total(self) -> int:
        return sum(self.successes.values()) + sum(self.failures.values()) + sum(self.unknown.values())

    def cumulative_sol(self, account: str, slots: Sequence[int]) -> List[float]:
        """The running total (SOL) at each of ``slots`` (ascending), counting every delta at or before it."""
        items = sorted((self.sol.get(account) or Counter()).items())
        out: List[float] = []
        acc = i = 0
        for s in slots:
            while i < len(items) and items[i][0] <= s:
                acc += items[i][1]
                i += 1
            out.append(acc / LAMPORTS_PER_SOL)
        return out


def _busiest_accounts(path: str, n: int) -> List[str]:
    touched: Counter[str] = Counter()
    for tx in RunStream(path).transactions():
        touched.update((tx.get("sol_changes") or {}).keys())
    return [a for a, _ in touched.most_common(n)]


def run_series(path: str, accounts: Sequence[str] = ()) -> RunSeries:
    """Read ``path`` (streamed) into a :class:`RunSeries`. No ``accounts``: the :data:`DEFAULT_ACCOUNTS` accounts
    touched by the most transactions (one extra pass over the file)."""
    path = os.fspath(path)
    chosen = list(accounts) or _busiest_accounts(path, DEFAULT_ACCOUNTS)
    stream = RunStream(path)
    series = RunSeries(path, 0, 0, accounts=chosen, sol={a: Counter() for a in chosen})
    wanted = set(chosen)
    lo: Optional[int] = None
    hi: Optional[int] = None
    for tx in stream.transactions():
        slot = tx.get("slot")
        if not isinstance(slot, int):
            continue
        lo = slot if lo is None else min(lo, slot)
        hi = slot if hi is None else max(hi, slot)
        ok = tx.get("success")
        (series.successes if ok is True else series.failures if ok is False else series.unknown)[slot] += 1
        for acc, delta in (tx.get("sol_changes") or {}).items():
            if acc in wanted and isinstance(delta, int):
                series.sol[acc][slot] += delta
        for acc, diff in (tx.get("account_diffs") or {}).items():
            if acc in wanted and acc not in series.owners:
                owner = ((diff or {}).get("after") or (diff or {}).get("before") or {}).get("owner")
                if isinstance(owner, str):
                    series.owners[acc] = owner
    meta = stream.metadata
    start, end = meta.get("start_slot"), meta.get("end_slot")
    series.start = start if isinstance(start, int) else (lo if lo is not None else 0)
    series.end = end if isinstance(end, int) else (hi if hi is not None else series.start)
    if lo is not None and hi is not None:  # a file whose metadata range does not cover its transactions
        series.start, series.end = min(series.start, lo), max(series.end, hi)
    return series


def _bins(start: int, end: int) -> Tuple[int, List[int]]:
    """(bin width in slots, first slot of each bin)."""
    n = max(end - start + 1, 1)
    width = max(1, math.ceil(n / MAX_BARS))
    return width, list(range(start, end + 1, width))


def _line_slots(start: int, end: int, width: int, starts: Sequence[int]) -> List[int]:
    """x points of the cumulative lines: every slot, or the last slot of each bin for long runs."""
    return list(range(start, end + 1)) if width == 1 else [min(b + width - 1, end) for b in starts]


def _binned(counts: Counter[int], starts: Sequence[int], width: int) -> List[int]:
    return [sum(counts.get(s + i, 0) for i in range(width)) for s in starts]


def _short(key: str) -> str:
    return key if len(key) <= 12 else f"{key[:5]}…{key[-4:]}"


def _label(key: str, names: Optional[Dict[str, str]], owners: Dict[str, str]) -> str:
    """A short pubkey, prefixed with the name of the program that owns it (or of the program itself) if known."""
    names = names or {}
    name = names.get(key) or names.get(owners.get(key, ""))
    return f"{name} {_short(key)}" if name else _short(key)


def _figure(panels: int) -> Tuple[Any, List[Any]]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'simclient[plot]'") from None
    fig = Figure(figsize=(10, 3.4 * panels + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))  # the first panel counts transactions
    axes[-1].set_xlabel("slot")
    return fig, list(axes)


def _per(width: int) -> str:
    return "per slot" if width == 1 else f"per {width} slots"


def _sol_panel(ax: Any, runs: Sequence[Tuple[RunSeries, str]], accounts: Sequence[str], slots: Sequence[int],
               names: Optional[Dict[str, str]]) -> None:
    colors = [f"C{i % 10}" for i in range(len(accounts))]
    for (series, style) in runs:
        for acc, color in zip(accounts, colors):
            suffix = "" if len(runs) == 1 else (" (baseline)" if style == "--" else " (experiment)")
            ax.step(slots, series.cumulative_sol(acc, slots), where="post", linestyle=style, color=color,
                    label=_label(acc, names, series.owners) + suffix)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title("Cumulative SOL change of tracked accounts")
    ax.set_ylabel("SOL change (SOL)")
    if accounts:
        ax.legend(**_LEGEND)
    else:
        ax.text(0.5, 0.5, "no account has a SOL change", transform=ax.transAxes, ha="center", va="center")


def _save(fig: Any, out: str) -> str:
    out = os.fspath(out)
    fig.savefig(out, format="png")
    return out


def plot_run(path: str, out: str, accounts: Sequence[str] = (), names: Optional[Dict[str, str]] = None) -> str:
    """Write the PNG of one run to ``out``; returns ``out``."""
    s = run_series(path, accounts)
    width, starts = _bins(s.start, s.end)
    fig, (ax_tx, ax_sol) = _figure(2)
    ok, failed, unknown = (_binned(c, starts, width) for c in (s.successes, s.failures, s.unknown))
    bar_w = width * 0.9
    ax_tx.bar(starts, ok, width=bar_w, align="edge", color=_OK, label="succeeded")
    ax_tx.bar(starts, failed, width=bar_w, align="edge", bottom=ok, color=_FAILED, label="failed")
    if any(unknown):
        ax_tx.bar(starts, unknown, width=bar_w, align="edge", bottom=[a + b for a, b in zip(ok, failed)],
                  color=_UNKNOWN, label="outcome unknown (diff only)")
    ax_tx.set_title(f"Transactions {_per(width)}")
    ax_tx.set_ylabel(f"transactions {_per(width)}")
    ax_tx.legend(**_LEGEND)
    _sol_panel(ax_sol, [(s, "-")], s.accounts, _line_slots(s.start, s.end, width, starts), names)
    ax_sol.set_xlim(s.start, s.end + 1)
    n_ok, n_failed = sum(s.successes.values()), sum(s.failures.values())
    fig.suptitle(f"{os.path.basename(s.path)}: slots {s.start}..{s.end}, {s.total:,} transactions "
                 f"({n_ok:,} ok, {n_failed:,} failed)")
    return _save(fig, out)


def plot_compare(baseline: str, experiment: str, out: str, accounts: Sequence[str] = (),
                 names: Optional[Dict[str, str]] = None) -> str:
    """Write the PNG of the per-slot difference experiment - baseline to ``out``; returns ``out``."""
    b = run_series(baseline, accounts)
    e = run_series(experiment, b.accounts)
    start, end = min(b.start, e.start), max(b.end, e.end)
    width, starts = _bins(start, end)
    fig, (ax_tx, ax_sol) = _figure(2)
    d_ok = [x - y for x, y in zip(_binned(e.successes, starts, width), _binned(b.successes, starts, width))]
    d_failed = [x - y for x, y in zip(_binned(e.failures, starts, width), _binned(b.failures, starts, width))]
    half = width * 0.45
    ax_tx.bar(starts, d_ok, width=half, align="edge", color=_OK, label="Δ succeeded")
    ax_tx.bar([x + half for x in starts], d_failed, width=half, align="edge", color=_FAILED, label="Δ failed")
    ax_tx.axhline(0, color="black", linewidth=0.6)
    ax_tx.set_title(f"Transactions {_per(width)}: experiment − baseline")
    ax_tx.set_ylabel(f"Δ transactions {_per(width)}")
    ax_tx.legend(**_LEGEND)
    _sol_panel(ax_sol, [(b, "--"), (e, "-")], b.accounts, _line_slots(start, end, width, starts), names)
    ax_sol.set_xlim(start, end + 1)
    fig.suptitle(f"{os.path.basename(e.path)} ({e.total:,} tx) − {os.path.basename(b.path)} ({b.total:,} tx), "
                 f"slots {start}..{end}")
    return _save(fig, out)
