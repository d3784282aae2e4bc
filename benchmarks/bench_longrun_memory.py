"""Long runs in bounded memory (issue 12): client RSS of ``simclient run``, of a slow consumer, and of ``compare``.

Every client measurement runs in its own worker process and reports its peak RSS (``ru_maxrss``); the simulator is
``python -m simclient.local`` in another process, so none of its memory is counted.

* ``simclient run`` with both subscriptions (transactions + account diffs of every program) over 1,000, 5,000 and
  20,000 slots, single session, written to a file: this tree (streamed writer) and, side by side, the SDK of the
  baseline commit (``--baseline``, default the commit before the streamed writer: the in-memory ``RunRecorder``),
  unpacked with ``git archive`` and run through ``SIMCLIENT_BENCH_CLIENT_PATH``. At 5,000 slots the two alternate
  ``--pairs`` times for the wall-time ratio. The baseline is not run at 20,000 slots (it needs about 1 GiB).
  The 5,000-slot files of both writers are checked equal record by record (streamed, key order ignored).
* A consumer of ``session.events()`` that spends 1 ms per event (``time.sleep``) over 5,000 slots, both
  subscriptions, against the same consumer at full speed: peak RSS and events delivered, with flow control at its
  default and (``--contrast``) switched off (``max_buffered_events=0``).
* ``simclient compare`` of two 20,000-slot files (the run file, and a copy with every 10th outcome flipped).

    python benchmarks/bench_longrun_memory.py [--quick] [--contrast] [--pairs 2] [--baseline 5e856f5]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import API_KEY, FIRST_SLOT, REPO, SIM_WHERE, SimProcess, emit, run_worker, save_result  # noqa: E402

BASELINE = "5e856f5"
MiB = 2 ** 20


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


# ------------------------------------------------------------------------------------------ workers


def cli_worker(args: argparse.Namespace) -> None:
    from simclient.cli import main

    argv = json.loads(args.argv)
    started = time.monotonic()
    code = main(argv)
    emit({"code": code, "wall": time.monotonic() - started, "rss": _maxrss()})


def consumer_worker(args: argparse.Namespace) -> None:
    from simclient import Client, ClientConfig, CreateSession
    from simclient import events as ev

    config = ClientConfig() if args.flow < 0 else ClientConfig(max_buffered_events=args.flow)
    client = Client(args.url, API_KEY, config)
    delay = args.delay_ms / 1000.0
    programs = args.programs.split(",")
    counts: Dict[str, int] = {}
    started = time.monotonic()
    with client.start_session(CreateSession(start_slot=FIRST_SLOT, slot_count=args.slots - 1)) as s:
        if not args.no_subs:
            s.subscribe_transactions(programs)
            s.subscribe_account_diffs(programs)
        for event in s.events():
            name = type(event).__name__
            counts[name] = counts.get(name, 0) + 1
            if delay:
                time.sleep(delay)
            if type(event) is ev.ReadyForContinue:
                s.send_continue(advance_count=args.slots)
        stats = s.stats.as_dict()
    emit({"wall": time.monotonic() - started, "rss": _maxrss(), "events": counts, "stats": stats})


# ------------------------------------------------------------------------------------------ driver


def _baseline_client(commit: str, where: str) -> str:
    target = os.path.join(where, "baseline")
    os.makedirs(target)
    archive = subprocess.run(["git", "-C", REPO, "archive", commit, "simclient"], check=True, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, check=True)
    return target


def _cli(sim: SimProcess, slots: int, out: str, client: Optional[str], extra: List[str] = ()) -> Dict[str, Any]:
    argv = ["--url", sim.url, "--api-key", API_KEY, "run", "--start-slot", str(FIRST_SLOT), "--slot-count",
            str(slots - 1), "--program-id", ",".join(sim.program_ids), "--subscriptions",
            "transactions,account-diff", "-o", out, "--progress", "none", *extra]
    env = {"SIMCLIENT_BENCH_CLIENT_PATH": client} if client else {"SIMCLIENT_BENCH_CLIENT_PATH": ""}
    r = run_worker("bench_longrun_memory.py", ["--kind", "cli", "--argv", json.dumps(argv)], env=env, timeout=1800)
    if r["code"] != 0:
        raise RuntimeError(f"simclient run exited {r['code']}")
    r["size"] = os.path.getsize(out)
    return r


def _compare_cli(a: str, b: str, client: Optional[str]) -> Dict[str, Any]:
    env = {"SIMCLIENT_BENCH_CLIENT_PATH": client or ""}
    return run_worker("bench_longrun_memory.py", ["--kind", "cli", "--argv", json.dumps(
        ["compare", a, b, "--limit", "3"])], env=env, timeout=1800)


def _same_records(a: str, b: str) -> int:
    """Both files hold equal records in the same order and equal summaries (streamed); returns the count."""
    from simclient.runindex import RunFileReader

    with RunFileReader(a) as ra, RunFileReader(b) as rb:
        n = 0
        ib = rb.records()
        for x in ra.records():
            y = next(ib, None)
            if x != y:
                raise AssertionError(f"record {n} differs: {x.get('signature')} vs {(y or {}).get('signature')}")
            n += 1
        if next(ib, None) is not None:
            raise AssertionError("second file has more records")
        if ra.top.get("summary") != rb.top.get("summary"):
            raise AssertionError("summaries differ")
    return n


def _flipped_copy(src: str, dst: str) -> None:
    """``src`` with every 10th transaction's outcome flipped, written record by record."""
    from simclient.runindex import RunFileReader

    enc = json.JSONEncoder(separators=(",", ":")).encode
    with RunFileReader(src) as reader, open(dst, "w", encoding="utf-8") as out:
        out.write('{"transactions":[')
        for i, tx in enumerate(reader.records()):
            if i % 10 == 0 and tx.get("success") is not None:
                tx["success"] = not tx["success"]
                tx["error"] = None if tx["success"] else {"InstructionError": [0, {"Custom": 1}]}
            out.write(("," if i else "") + enc(tx))
        out.write("]," + ",".join(f'"{k}":{enc(v)}' for k, v in reader.top.items()) + "}")


def run_compare_only(slots: int = 20000) -> Dict[str, Any]:
    """Only the ``compare`` figure: one ``--parallel`` run of ``slots`` slots (faster to make), a flipped copy."""
    work = tempfile.mkdtemp(prefix="simclient-bench-longrun-", dir=os.environ.get("BENCH_TMP"))
    try:
        with SimProcess(bundle_size=100, num_bundles=max(100, slots // 100)) as sim:
            big = os.path.join(work, f"new-{slots}.json")
            made = _cli(sim, slots, big, None, ["--parallel"])
        other = os.path.join(work, f"flipped-{slots}.json")
        _flipped_copy(big, other)
        cmp = _compare_cli(big, other, None)
        print(f"    compare of two {slots}-slot files ({os.path.getsize(big) / MiB:.0f} + "
              f"{os.path.getsize(other) / MiB:.0f} MiB; made by a --parallel run, RSS {made['rss'] / MiB:.1f} MiB): "
              f"RSS {cmp['rss'] / MiB:.1f} MiB = {cmp['rss'] / 1e6:.0f} MB (target < 150 MB), wall {cmp['wall']:.1f}s")
        return cmp
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(quick: bool = False, contrast: bool = False, pairs: int = 2, baseline: str = BASELINE,
        flow_pairs: int = 3) -> Dict[str, Any]:
    sizes = (500, 2000, 5000) if quick else (1000, 5000, 20000)
    mid = sizes[1]
    slow_slots = 1000 if quick else 5000
    print(f"[longrun] memory of long runs: peak client RSS (ru_maxrss), both subscriptions; sizes {sizes}")
    print(f"    {SIM_WHERE}; the machine is shared with other jobs, so wall times are noisy")
    result: Dict[str, Any] = {"sizes": sizes, "baseline": baseline}
    work = tempfile.mkdtemp(prefix="simclient-bench-longrun-", dir=os.environ.get("BENCH_TMP"))
    try:
        old_client = _baseline_client(baseline, work)
        with SimProcess(bundle_size=100, num_bundles=max(100, sizes[-1] // 100)) as sim:
            programs = ",".join(sim.program_ids)
            new: Dict[int, Dict[str, Any]] = {}
            old: Dict[int, Dict[str, Any]] = {}
            for n in sizes:
                new[n] = _cli(sim, n, os.path.join(work, f"new-{n}.json"), None)
                print(f"    run {n:>6} slots  streamed writer:  RSS {new[n]['rss'] / MiB:7.1f} MiB  "
                      f"wall {new[n]['wall']:6.1f}s  file {new[n]['size'] / MiB:7.1f} MiB", flush=True)
                if n != sizes[-1]:
                    old[n] = _cli(sim, n, os.path.join(work, f"old-{n}.json"), old_client)
                    print(f"    run {n:>6} slots  baseline writer:  RSS {old[n]['rss'] / MiB:7.1f} MiB  "
                          f"wall {old[n]['wall']:6.1f}s  file {old[n]['size'] / MiB:7.1f} MiB", flush=True)
            walls_new, walls_old = [new[mid]["wall"]], [old[mid]["wall"]]
            for _ in range(max(0, pairs - 1)):
                o = _cli(sim, mid, os.path.join(work, f"old-{mid}.json"), old_client)
                w = _cli(sim, mid, os.path.join(work, f"new-{mid}.json"), None)
                walls_old.append(o["wall"])
                walls_new.append(w["wall"])
            ratios = sorted(w / o for w, o in zip(walls_new, walls_old))
            same = _same_records(os.path.join(work, f"new-{mid}.json"), os.path.join(work, f"old-{mid}.json"))
            growth = new[sizes[-1]]["rss"] / new[sizes[0]]["rss"]
            print(f"    streamed RSS {sizes[-1]} / {sizes[0]} slots: {growth:.2f}x (target <= 1.3x); baseline "
                  f"{mid} / {sizes[0]}: {old[mid]['rss'] / old[sizes[0]]['rss']:.2f}x")
            print(f"    wall at {mid} slots, streamed / baseline, per adjacent pair: "
                  + ", ".join(f"{r:.2f}x" for r in ratios) + " (target <= 1.1x)")
            print(f"    {mid}-slot files of both writers: {same} records, equal record by record")
            result.update({"new": new, "old": old, "rss_growth": growth, "wall_ratios": ratios,
                           "equal_records": same})

            def consumer(delay: float, flow: int, slots: int = slow_slots, subs: bool = True) -> Dict[str, Any]:
                return run_worker("bench_longrun_memory.py", [
                    "--kind", "consumer", "--url", sim.url, "--programs", programs, "--slots", str(slots),
                    "--delay-ms", str(delay), "--flow", str(flow)] + ([] if subs else ["--no-subs"]), timeout=3600)

            # flow control must not slow a fast consumer: default vs off, alternating, on both streams
            for label, slots, subs in (("control + both subscriptions", slow_slots, True),
                                       ("control only", sizes[-1], False)):
                on_off = []
                for _ in range(flow_pairs):
                    off = consumer(0, 0, slots, subs)
                    on = consumer(0, -1, slots, subs)
                    if on["events"] != off["events"]:
                        raise AssertionError(f"flow control changed the events: {on['events']} vs {off['events']}")
                    on_off.append((off["wall"] / on["wall"], on["stats"]["flow_windows"]))
                speeds = sorted(r for r, _ in on_off)
                print(f"    fast consumer, {label}, {slots} slots ({sum(off['events'].values())} events): "
                      f"throughput flow control on / off per adjacent pair: "
                      + ", ".join(f"{r:.2f}x" for r in speeds) + f" (median {speeds[len(speeds) // 2]:.2f}x; "
                      f"{on_off[0][1]} extra windows)", flush=True)
                result.setdefault("flow_throughput", {})[label] = {"slots": slots, "ratios": speeds}

            fast = consumer(0, -1)
            slow = consumer(1.0, -1)
            total = sum(fast["events"].values())
            print(f"    consumer over {slow_slots} slots, fast:        RSS {fast['rss'] / MiB:7.1f} MiB  "
                  f"wall {fast['wall']:6.1f}s  {total} events")
            print(f"    consumer, 1 ms/event (flow control): RSS {slow['rss'] / MiB:7.1f} MiB  wall "
                  f"{slow['wall']:6.1f}s  {sum(slow['events'].values())} events, "
                  f"{slow['stats']['flow_windows']} extra windows, {slow['stats']['flow_waits']} waits; "
                  f"ratio {slow['rss'] / fast['rss']:.2f}x (target <= 1.3x)")
            if slow["events"] != fast["events"]:
                raise AssertionError(f"slow consumer saw other events: {slow['events']} vs {fast['events']}")
            result.update({"fast": fast, "slow": slow, "slow_ratio": slow["rss"] / fast["rss"]})
            if contrast:
                off = consumer(1.0, 0)
                print(f"    consumer, 1 ms/event, flow control off: RSS {off['rss'] / MiB:7.1f} MiB  "
                      f"({off['rss'] / fast['rss']:.2f}x of fast)")
                result["slow_no_flow"] = off
        big = os.path.join(work, f"new-{sizes[-1]}.json")
        other = os.path.join(work, f"flipped-{sizes[-1]}.json")
        _flipped_copy(big, other)
        cmp = _compare_cli(big, other, None)
        print(f"    compare of two {sizes[-1]}-slot files ({os.path.getsize(big) / MiB:.0f} + "
              f"{os.path.getsize(other) / MiB:.0f} MiB): RSS {cmp['rss'] / MiB:.1f} MiB = {cmp['rss'] / 1e6:.0f} MB "
              f"(target < 150 MB), "
              f"wall {cmp['wall']:.1f}s")
        result["compare"] = cmp
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save_result("longrun_memory", result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", choices=("cli", "consumer"))
    ap.add_argument("--argv")
    ap.add_argument("--url")
    ap.add_argument("--programs")
    ap.add_argument("--slots", type=int, default=5000)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--flow", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--no-subs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only-compare", action="store_true", help="only the compare figure (20,000 slots, --parallel)")
    ap.add_argument("--flow-pairs", type=int, default=3,
                    help="fast consumer, flow control default vs off, alternating pairs per stream (default 3)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (500/2,000/5,000; slow consumer 1,000)")
    ap.add_argument("--contrast", action="store_true", help="also the slow consumer with flow control off")
    ap.add_argument("--pairs", type=int, default=2, help="baseline/streamed runs at the middle size (default 2)")
    ap.add_argument("--baseline", default=BASELINE, help=f"commit of the in-memory writer (default {BASELINE})")
    args = ap.parse_args(argv)
    if args.worker:
        (cli_worker if args.kind == "cli" else consumer_worker)(args)
    elif args.only_compare:
        run_compare_only()
    else:
        run(args.quick, args.contrast, args.pairs, args.baseline, args.flow_pairs)


if __name__ == "__main__":
    main()
