"""``simclient ranges``: the available slot ranges, filtered by date and size."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
from typing import Any, Optional, Tuple

from .common import EXIT_OK, _client, add_global_options


def _parse_date(text: str) -> _dt.datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 time)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when


def _range_times(r: Any) -> Tuple[Optional[_dt.datetime], Optional[_dt.datetime]]:
    out = []
    for v in (r.bundle_start_slot_utc, r.max_bundle_end_slot_utc):
        try:
            out.append(_parse_date(v) if v else None)
        except argparse.ArgumentTypeError:
            out.append(None)
    return out[0], out[1]


def cmd_ranges(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    ranges = _client(args).available_ranges()
    picked = []
    for r in ranges:
        start, end = _range_times(r)
        if args.after is not None and (start is None or start < args.after):
            continue
        if args.before is not None and (end is None or end > args.before):
            continue
        if args.min_size is not None and (r.max_bundle_size or 0) < args.min_size:
            continue
        picked.append(r)
    if args.json:
        print(json.dumps([asdict(r) for r in picked], indent=2))
        return EXIT_OK
    header = ("START SLOT", "END SLOT", "SIZE", "START (UTC)", "END (UTC)", "KIND", "SCOPE")
    rows = [(str(r.bundle_start_slot), "" if r.max_bundle_end_slot is None else str(r.max_bundle_end_slot),
             "" if r.max_bundle_size is None else str(r.max_bundle_size), r.bundle_start_slot_utc or "",
             r.max_bundle_end_slot_utc or "", r.kind or "blocks", r.scope or "") for r in picked]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"{len(picked)} range(s)" + (f" of {len(ranges)}" if len(picked) != len(ranges) else ""))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    r = sub.add_parser("ranges", help="list the available slot ranges")
    r.add_argument("--after", type=_parse_date, metavar="DATE", help="only ranges starting at or after DATE")
    r.add_argument("--before", type=_parse_date, metavar="DATE", help="only ranges ending at or before DATE")
    r.add_argument("--min-size", type=int, metavar="SLOTS", help="only bundles of at least SLOTS slots")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_global_options(r)
    r.set_defaults(func=cmd_ranges)
