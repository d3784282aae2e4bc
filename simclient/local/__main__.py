"""``python -m simclient.local``: run the local simulator in the foreground."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from . import serve
from .dialect import DIALECTS
from .faults import FaultPlan


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simclient.local",
                                description="Serve the Termina simulator protocol locally over a synthetic chain.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8900, help="TCP port (default 8900; 0 = any free port)")
    p.add_argument("--api-key", default="local-dev-key", help="required X-API-Key (default local-dev-key)")
    p.add_argument("--seed", type=int, default=0, help="synthetic chain seed (default 0)")
    p.add_argument("--bundle-size", type=int, default=100, help="slots per bundle (default 100)")
    p.add_argument("--num-bundles", type=int, default=100, help="number of bundles (default 100)")
    p.add_argument("--first-slot", type=int, default=300_000_000, help="first available slot (default 300000000)")
    p.add_argument("--replay-window", type=int, default=100, help="retained slots per session (default 100)")
    p.add_argument("--slot-pace-ms", type=float, default=0, help="sleep per executed slot (default 0)")
    p.add_argument("--create-delay-ms", type=float, default=0, help="delay before each sessionCreated (default 0)")
    p.add_argument("--drop-control-every", type=int, default=0, metavar="N", help="fault: drop control every N frames")
    p.add_argument("--drop-subscriptions-every", type=int, default=0, metavar="N",
                   help="fault: drop a subscription socket every N notifications")
    p.add_argument("--garbage-every", type=int, default=0, metavar="N", help="fault: garbage frame every N frames")
    p.add_argument("--lose-continue-every", type=int, default=0, metavar="N", help="fault: lose every N-th continue")
    p.add_argument("--dialect", default="evidenced", choices=sorted(DIALECTS),
                   help="reading of the protocol's open points (default evidenced; see docs/protocol.md)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    faults = (FaultPlan(args.seed).drop_control_every(args.drop_control_every)
              .drop_subscriptions_every(args.drop_subscriptions_every).garbage_every(args.garbage_every)
              .lose_continue_every(args.lose_continue_every))
    serve(port=args.port, api_key=args.api_key, seed=args.seed, bundle_size=args.bundle_size, host=args.host,
          num_bundles=args.num_bundles, first_slot=args.first_slot, replay_window=args.replay_window,
          slot_pace_ms=args.slot_pace_ms, create_delay_ms=args.create_delay_ms, faults=faults,
          dialect=args.dialect)
    return 0


if __name__ == "__main__":
    sys.exit(main())
