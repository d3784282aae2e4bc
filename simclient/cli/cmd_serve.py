"""``simclient serve``: the local simulator in the foreground (the ``local`` extra)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .common import EXIT_OK, UsageError, add_global_options


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ..local import DIALECTS, serve
    except ImportError as exc:
        raise UsageError(f"serve needs the 'local' extra (pip install 'simclient[local]'): {exc}") from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0-65535; 0 picks a free one)")
    if args.dialect not in DIALECTS:
        raise UsageError(f"unknown --dialect {args.dialect!r}; known: {', '.join(DIALECTS)}")
    key = args.serve_api_key or args.api_key or os.environ.get("SIMULATOR_API_KEY") or "local-dev-key"
    if not args.verbose:  # the one "listening on ..." line
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    serve(port=args.port, api_key=key, seed=args.seed, bundle_size=args.bundle_size, host=args.host,
          num_bundles=args.num_bundles, first_slot=args.first_slot, slot_pace_ms=args.slot_pace_ms,
          create_delay_ms=args.create_delay_ms, dialect=args.dialect)
    return EXIT_OK



def add_parser(sub: Any) -> None:
    sv = sub.add_parser("serve", help="serve the local simulator in the foreground (needs the `local` extra)")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8900, help="TCP port (default 8900)")
    sv.add_argument("--api-key", dest="serve_api_key", default=None, metavar="KEY",
                    help="the key clients must send (default: --api-key, SIMULATOR_API_KEY, else local-dev-key)")
    sv.add_argument("--seed", type=int, default=0, help="synthetic chain seed (default 0)")
    sv.add_argument("--bundle-size", type=int, default=100, help="slots per bundle (default 100)")
    sv.add_argument("--num-bundles", type=int, default=100, help="number of bundles (default 100)")
    sv.add_argument("--first-slot", type=int, default=300_000_000, help="first slot (default 300000000)")
    sv.add_argument("--slot-pace-ms", type=float, default=0, help="sleep per executed slot (default 0)")
    sv.add_argument("--create-delay-ms", type=float, default=0, metavar="MS",
                    help="delay before each sessionCreated, per sub-session of a parallel create (default 0)")
    sv.add_argument("--dialect", default="evidenced", metavar="NAME",
                    help="reading of the protocol's open points: evidenced (default), nested-snake, nested-camel, "
                         "flattened-snake, flattened-camel, strict (see docs/protocol.md)")
    add_global_options(sv, target=False)
    sv.set_defaults(func=cmd_serve)
