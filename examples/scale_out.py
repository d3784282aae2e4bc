"""Scale a backtest out over local worker processes with simclient.distributed.

    python examples/scale_out.py                  # against an in-process local simulator
    SIMULATOR_URL=... SIMULATOR_API_KEY=... python examples/scale_out.py --start-slot S --slots N --program-id P

Each slice of the range runs as its own session in a worker process, with ``Strategy`` running there; the
slices' run files are merged into one ``sim run`` file in slot order.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from simclient import events as ev
from simclient.distributed import plan_slices, retry_failed, run_distributed


class Strategy:
    """Counts failed transactions per slice (stand-in for real per-event work)."""

    def __init__(self, sl: Any) -> None:
        self.failed = 0

    def __call__(self, event: Any) -> None:
        if isinstance(event, ev.Transaction) and (event.value.get("meta") or {}).get("err") is not None:
            self.failed += 1

    def result(self) -> int:
        return self.failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--start-slot", type=int)
    ap.add_argument("--slots", type=int, default=400)
    ap.add_argument("--slice-slots", type=int, default=100)
    ap.add_argument("--program-id", action="append")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-o", "--output-file", default="scale-out-run.json")
    args = ap.parse_args()
    sim = None
    url, key = os.environ.get("SIMULATOR_URL"), os.environ.get("SIMULATOR_API_KEY")
    programs = args.program_id
    start = args.start_slot
    if url is None:
        from simclient.local import LocalSimulator

        sim = LocalSimulator(port=0).start()
        url, key = sim.url, sim.api_key
        programs = programs or sim.program_ids
        start = start if start is not None else sim.first_slot
    if start is None or not programs:
        ap.error("--start-slot and --program-id are needed against the hosted service")
    try:
        slices = plan_slices(start, start + args.slots - 1, slice_slots=args.slice_slots)
        with tempfile.TemporaryDirectory() as spool, \
                ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            result = run_distributed(pool, slices, url=url, api_key=key, transaction_programs=programs,
                                     handler_factory=Strategy, output_dir=spool)
            if not result.ok:
                result = retry_failed(pool, result)
            for r in result.slices:
                print(f"slice {r.slice.index} {r.slice.start_slot}..{r.slice.end_slot}: {r.transactions} txs, "
                      f"{r.value} failed, {'ok' if r.ok else 'FAILED: ' + '; '.join(r.failures)}")
            if result.ok:
                result.merge_run_files(args.output_file)
                print(f"wrote {args.output_file}")
        return 0 if result.ok else 1
    finally:
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    sys.exit(main())
