"""``make bench``: the benchmarks, each printing ratios measured side by side in the same run.

    python benchmarks/run_all.py [--quick] [--json results.json] [--only replay,resume,memory,throughput,fanout]

Default (``replay,resume,memory``; about 2-2.5 minutes on 2 cores, under load from other jobs):

* replay: client-bound figures from the replay server (bench_replay.py): the SDK beside raw websocket-client,
  websockets and picows loops on the control / transaction / account-diff streams, the in-order step barrier, fan-out
  at 1-128 sub-sessions, and which hot-path special cases pay (measured from memory; the end-to-end variant is
  ``bench_replay.py --only toggles``). Fails loudly if the replay server did not out-run the fastest client by >= 2x.
* resume: forced control drop to the next delivered event (bench_resume.py)
* memory: client RSS per sub-session at 64 sub-sessions (bench_memory.py)

On request: ``throughput`` and ``fanout``, the same comparisons against the local simulator (bench_throughput.py,
bench_fanout.py), where the simulator, not the client, sets the pace on the transaction stream.

The servers run in separate processes and every client measurement in its own worker process. See
docs/performance.md for the figures and how to read them.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_fanout  # noqa: E402
import bench_memory  # noqa: E402
import bench_replay  # noqa: E402
import bench_resume  # noqa: E402
import bench_throughput  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    ap.add_argument("--only", default="replay,resume,memory",
                    help="comma-separated: replay, resume, memory, throughput, fanout")
    args = ap.parse_args()
    which = set(args.only.split(","))
    out = args.json or os.path.join(tempfile.gettempdir(), f"simclient-bench-{os.getpid()}.json")
    if os.path.exists(out):
        os.remove(out)
    os.environ["SIMCLIENT_BENCH_OUT"] = out
    from simclient import __version__
    from simclient import protocol

    print(f"simclient {__version__} benchmarks: Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; orjson {'installed' if protocol._orjson is not None else 'NOT installed'}")
    if os.environ.get("SIMCLIENT_BENCH_CLIENT_PATH"):
        print(f"client under test: simclient from {os.environ['SIMCLIENT_BENCH_CLIENT_PATH']} "
              f"(SIMCLIENT_BENCH_CLIENT_PATH); simulator: this tree")
    t0 = time.monotonic()
    if "replay" in which:
        # the end-to-end toggles (bench_replay.py --only toggles) are left out: slow, and noisier than the
        # deterministic ones ("hotpath") that make bench prints
        bench_replay.run(reps=3 if args.quick else 5, only=("clients", "barrier", "fanout", "hotpath"))
        print()
    if "throughput" in which:
        bench_throughput.run(reps=3 if args.quick else 5, tx_reps=2 if args.quick else 3)
        print()
    if "fanout" in which:
        bench_fanout.run(reps=2 if args.quick else 3)
        print()
    if "resume" in which:
        bench_resume.run(reps=1 if args.quick else 2)
        print()
    if "memory" in which:
        bench_memory.run()
        print()
    print(f"done in {time.monotonic() - t0:.0f}s" + (f"; figures in {args.json}" if args.json else ""))
    if not args.json:
        os.remove(out) if os.path.exists(out) else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
