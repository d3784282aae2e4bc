"""One client process, several runs of one replay stream: client CPU per event and by SDK thread.

The quick loop used to measure each hot-path change of issue 17 (docs/performance.md, "What took the transaction
stream from 12.2 to 6.3 us"): no worker processes and no alternation, so compare two trees by running this once per
tree, back to back (``--client DIR`` puts another ``simclient/`` first), or use ``bench_replay.py`` for the figures
that count. ``--read`` makes the consumer read every payload (the ``sdk-read`` client); ``--gc-off`` runs with the
cyclic collector disabled (an experiment, to see what the collector costs); pin with ``taskset -c 0`` to see what
the second core costs.

    python benchmarks/inprocess_replay.py [--stream tx] [--runs 5] [--read] [--gc-off] [--client DIR]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stream", default="tx", help="control, tx, txdiff (see bench_replay.py)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--read", action="store_true", help="the consumer reads every payload")
    ap.add_argument("--gc-off", action="store_true", help="disable the cyclic garbage collector")
    ap.add_argument("--client", default="", help="a directory holding the simclient/ package to measure")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))  # this tree's simclient, unless --client comes first
    if args.client:
        sys.path.insert(0, os.path.abspath(args.client))
    if args.read:
        os.environ["SIMCLIENT_BENCH_READ"] = "1"  # read by bench_replay at import
    sys.path.insert(1, HERE)
    import bench_replay as br

    if args.gc_off:
        gc.disable()
    br._count_threads()
    with br.ReplayProcess(fanouts=(1,)) as server:
        br.sdk_run(server.base, server.manifest, args.stream, {})  # warm-up
        cpus = []
        for _ in range(args.runs):
            gc.collect()
            r = br.sdk_run(server.base, server.manifest, args.stream, {})
            cpus.append(r["cpu"] / r["events"] * 1e6)
            threads = ", ".join(f"{k} {v / r['events'] * 1e6:.2f}" for k, v in r["threads"].items())
            print(f"{args.stream}: {cpus[-1]:.2f} us CPU per event, {r['events'] / r['wall']:,.0f} events/s; "
                  f"by thread (us per event): {threads}", flush=True)
        client = os.path.dirname(sys.modules["simclient"].__file__ or "")
        print(f"median {sorted(cpus)[len(cpus) // 2]:.2f} us CPU per event over {args.runs} runs (simclient from "
              f"{client})")


if __name__ == "__main__":
    main()
