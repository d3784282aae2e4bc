"""``simclient run --workers N`` / ``--scheduler ADDRESS``: the range in slices on local processes or a Dask cluster.

Each slice runs in its own worker (:mod:`simclient.distributed`) and writes its own run file into a spool
directory beside the output; at the end the spools are merged in slot order into one ``sim run`` file. Progress:
one bar per slice (fed from the workers' progress files; on a remote Dask cluster a slice's bar moves when it
finishes) and a total.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
from typing import Any, Dict, List

from .. import events as ev
from .common import EXIT_FAILED, EXIT_OK, UsageError
from .engine import RunOptions
from .progress import ProgressModel, make_renderer


def _executor(args: argparse.Namespace) -> Any:
    if args.scheduler:
        try:
            from distributed import Client as DaskClient
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install 'simclient[dask]'") from None
        return DaskClient(args.scheduler)  # type: ignore[no-untyped-call, unused-ignore]
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"))


def run_scaled_out(client: Any, opts: RunOptions, args: argparse.Namespace) -> int:
    from ..distributed import plan_slices, read_progress, run_distributed

    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if not args.output_file or args.output_file == "-":
        raise UsageError("--workers/--scheduler write one run file per slice and merge them: give --output-file FILE")
    workers = args.workers or 2
    slots = opts.end_slot - opts.start_slot + 1
    size = args.slice_slots or max(1, -(-slots // (workers * 2)))
    slices = plan_slices(opts.start_slot, opts.end_slot, slice_slots=size)
    out_dir = os.path.dirname(os.path.abspath(args.output_file))
    spool = tempfile.mkdtemp(prefix=".simclient-slices-", dir=out_dir)
    model = ProgressModel()
    names = {sl.index: f"slice {sl.index} {sl.start_slot}..{sl.end_slot}" for sl in slices}
    for sl in slices:
        model.add(names[sl.index], sl.start_slot, sl.end_slot)
    model.set_phase(f"{len(slices)} slices on {'dask ' + args.scheduler if args.scheduler else f'{workers} processes'}")
    renderer = make_renderer(args.progress, model, sys.stderr, args.progress_interval)
    stop = threading.Event()
    finished: Dict[int, bool] = {}

    def poll() -> None:  # workers' progress files -> the model
        seen: Dict[int, int] = {}
        while not stop.wait(0.5):
            for sl in slices:
                if sl.index in finished:
                    continue
                p = read_progress(os.path.join(spool, f"slice-{sl.index}.progress"))
                if not p:
                    continue
                if isinstance(p.get("transactions"), int):
                    model.set_transactions(names[sl.index], p["transactions"])
                if isinstance(p.get("slot"), int) and p["slot"] != seen.get(sl.index):
                    seen[sl.index] = p["slot"]
                    model.on_event(names[sl.index], ev.Slot(slot=p["slot"]))

    def on_done(res: Any) -> None:
        finished[res.slice.index] = res.ok
        model.set_transactions(names[res.slice.index], res.transactions)
        if res.ok:
            model.on_event(names[res.slice.index], ev.Completed(summary=None))
        else:
            model.fail(names[res.slice.index])

    poller = threading.Thread(target=poll, name="simclient-cli-slices", daemon=True)
    renderer.start()
    poller.start()
    executor = _executor(args)
    try:
        result = run_distributed(executor, slices, url=client.url, api_key=client._api_key,
                                 parallel=opts.parallel, advance_count=opts.advance_count,
                                 transaction_programs=opts.program_ids if "transactions" in opts.subscriptions else (),
                                 account_diff_programs=opts.program_ids if "account-diff" in opts.subscriptions
                                 else (), output_dir=spool, progress_dir=spool, on_slice_done=on_done,
                                 config=client.config)
    finally:
        stop.set()
        poller.join()
        renderer.stop(final=True)
        (executor.close if hasattr(executor, "close") else executor.shutdown)()
    try:
        files = [r.run_file for r in result.slices if r.run_file and os.path.exists(r.run_file)]
        if files:
            result_path = _merge(files, args.output_file)
        else:
            result_path = None
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    total = sum(r.transactions for r in result.slices)
    print(f"simclient: {'done' if result.ok else 'failed'}: {total} transactions in {len(slices)} slices"
          + (f"; wrote {result_path}" if result_path else "")
          + ("" if result.ok else ' (partial: "complete": false)'), file=sys.stderr)
    failed: List[Any] = result.failed
    if failed:
        print(f"simclient: {len(failed)} of {len(slices)} slice(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.slice.start_slot}..{r.slice.end_slot} (slice {r.slice.index}): "
                  f"{'; '.join(r.failures) or 'failed'}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _merge(files: List[str], out: str) -> str:
    from ..distributed import merge_run_files

    return merge_run_files(files, out)


def add_arguments(run: Any) -> None:
    g = run.add_argument_group("scale-out (simclient.distributed)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=int, metavar="N",
                   help="run the range in slices on N local worker processes, merged into --output-file")
    x.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the slices on a Dask cluster (tcp://host:8786; needs simclient[dask])")
    g.add_argument("--slice-slots", type=int, metavar="K",
                   help="slots per slice with --workers/--scheduler (default: the range in 2 x workers slices)")
