"""Benchmark: peak RSS of writing a run's records, Parquet sink vs. the in-memory JSON writer (issue 14).

Each writer runs in its own process and gets the same N ``transactions[]`` records (the local simulator's payloads
for 300 slots, through ``transaction_record`` with their account diffs joined, cycled with fresh signatures up to N).
Measured: peak RSS (``ru_maxrss``) of the process minus that of a process that generates the same records and drops
them (same imports, and the same one-row Parquet warm-up write: loading the Parquet library costs ~60 MB of RSS once),
at two sizes. A bounded writer's figure does not grow with N.

* ``parquet``: :class:`simclient.results.ParquetRunSink`, one record at a time (row groups of 5,000 rows).
* ``json``: what ``simclient run`` does today: every record in a list, then ``runfile.write_run`` of the document.

    python benchmarks/bench_writer_memory.py [--sizes 20000,80000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, run_worker, save_result  # noqa: E402


def _records(n: int) -> Iterator[Dict[str, Any]]:
    from simclient.local.chain import SyntheticChain
    from simclient.runfile import transaction_record

    chain = SyntheticChain()
    start, end = chain.first_slot, chain.first_slot + 299
    diffs: Dict[str, Dict[str, Any]] = {}
    for d in chain.account_diffs(start, end):
        diffs.setdefault(d["signature"], {})[d["account"]] = {"before": d["pre"], "after": d["post"]}
    base = []
    for value in chain.transactions(start, end):
        rec = transaction_record(value)
        rec["account_diffs"] = diffs.get(rec["signature"], {})
        base.append(rec)
    for i in range(n):
        rec = dict(base[i % len(base)])
        rec["signature"] = f"{rec['signature'][:60]}{i:08d}"
        rec["slot"] = start + i // 10
        yield rec


def _peak_rss() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb * 1024 if sys.platform != "darwin" else kb)


def worker(kind: str, n: int, row_group: int = 5_000) -> Dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simclient import results, runfile

    out_dir = tempfile.mkdtemp(prefix="simclient-bench-")
    # Every worker loads the Parquet library and writes one tiny file first: its code pages and thread pool are
    # ~60 MB of RSS that do not depend on the run (measured: the same for 1 row and for 40,000), and the baseline
    # subtracts them.
    pq.write_table(pa.table({"x": ["a"], "n": [1]}), os.path.join(out_dir, "warm-up.parquet"), compression="zstd")
    size = 0
    if kind == "baseline":
        for _ in _records(n):
            pass
    elif kind == "parquet":
        sink = results.ParquetRunSink(os.path.join(out_dir, "run.parquet"), row_group_size=row_group)
        for rec in _records(n):
            sink.add(rec)
        paths = sink.finish({"start_slot": 0})
        size = sum(os.path.getsize(p) for p in paths.values())
    elif kind == "json":
        txs: List[Dict[str, Any]] = list(_records(n))
        path = os.path.join(out_dir, "run.json")
        runfile.write_run(path, {"metadata": {}, "transactions": txs, "summary": {"total": len(txs)}})
        size = os.path.getsize(path)
    return {"kind": kind, "n": n, "peak_rss": _peak_rss(), "bytes": size}


def run(sizes: List[int], row_group: int = 5_000) -> Dict[str, Any]:
    rows = []
    for n in sizes:
        base = run_worker("bench_writer_memory.py", ["--kind", "baseline", "--n", str(n)])["peak_rss"]
        for kind in ("parquet", "json"):
            r = run_worker("bench_writer_memory.py", ["--kind", kind, "--n", str(n), "--row-group", str(row_group)])
            rows.append({"writer": kind, "records": n, "rss_mb": round((r["peak_rss"] - base) / 1e6, 1),
                         "output_mb": round(r["bytes"] / 1e6, 1)})
    print("writer memory: peak RSS above a process that only generates the records (same imports and warm-up)")
    print(f"  {'writer':<8} {'records':>8} {'peak RSS MB':>12} {'output MB':>10}")
    for r in rows:
        print(f"  {r['writer']:<8} {r['records']:>8} {r['rss_mb']:>12} {r['output_mb']:>10}")
    by = {(r["writer"], r["records"]): r["rss_mb"] for r in rows}
    small, large = sizes[0], sizes[-1]
    result: Dict[str, Any] = {"rows": rows}
    for kind in ("parquet", "json"):
        growth = by[(kind, large)] - by[(kind, small)]
        result[f"{kind}_growth_mb"] = round(growth, 1)
    result["json_over_parquet_at_largest"] = round(by[("json", large)] / max(by[("parquet", large)], 0.1), 1)
    print(f"  growth {small}->{large} records: parquet {result['parquet_growth_mb']} MB, "
          f"json {result['json_growth_mb']} MB; json/parquet at {large}: {result['json_over_parquet_at_largest']}x")
    save_result("writer_memory", result)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", choices=("baseline", "parquet", "json"))
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--row-group", type=int, default=5_000, help="Parquet rows per row group (default 5000)")
    ap.add_argument("--sizes", default="20000,80000", help="record counts, comma-separated (default 20000,80000)")
    args = ap.parse_args(argv)
    if args.worker:
        emit(worker(args.kind, args.n, args.row_group))
    else:
        run([int(x) for x in args.sizes.split(",")], args.row_group)


if __name__ == "__main__":
    main()
