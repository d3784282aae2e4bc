"""simclient.distributed: slices run in worker processes (stdlib pool and a real Dask LocalCluster) must merge to
exactly what one process captures over the same range; a killed worker is that slice's failure, re-runnable."""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List

import pytest

from simclient.distributed import (
    Slice, SliceJob, merge_run_files, plan_slices, retry_failed, run_distributed, run_slice,
)

from .handlers import CountByKind, KillOnce

SLOTS = 240


def _records(path: str) -> List[Dict[str, Any]]:
    with open(path) as fh:
        return json.load(fh)["transactions"]


@pytest.fixture(scope="module")
def reference(sim_process: Any, tmp_path_factory: Any) -> str:
    """One process, one session over the whole range: what the slices must add up to."""
    out = tmp_path_factory.mktemp("ref")
    start = sim_process.first_slot
    job = SliceJob(slice=Slice(0, start, start + SLOTS - 1), url=sim_process.url, api_key="local-dev-key",
                   transaction_programs=tuple(sim_process.program_ids),
                   account_diff_programs=tuple(sim_process.program_ids), output_dir=str(out))
    res = run_slice(job)
    assert res.ok, res.failures
    assert res.transactions > 50
    assert res.run_file is not None
    return res.run_file


# ------------------------------------------------------------------------------------------------ planning


def test_plan_by_size_covers_range_without_gaps() -> None:
    slices = plan_slices(100, 349, slice_slots=100)
    assert [(s.start_slot, s.end_slot) for s in slices] == [(100, 199), (200, 299), (300, 349)]
    assert [s.index for s in slices] == [0, 1, 2]


def test_plan_by_boundaries_never_spans_two_and_skips_gaps() -> None:
    slices = plan_slices(150, 420, boundaries=[(100, 199), (200, 299), (350, 500)], slice_slots=60)
    assert [(s.start_slot, s.end_slot) for s in slices] == [
        (150, 199), (200, 259), (260, 299), (350, 409), (410, 420)]


@pytest.mark.parametrize("kwargs, match", [
    (dict(start_slot=10, end_slot=5), "before start_slot"),
    (dict(start_slot=1, end_slot=5, slice_slots=0), "slice_slots"),
    (dict(start_slot=1, end_slot=5, boundaries=[(10, 20)]), "no slot"),
])
def test_plan_rejects_bad_input(kwargs: Dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_slices(**kwargs)


def test_job_repr_hides_the_key() -> None:
    job = SliceJob(slice=Slice(0, 1, 2), url="ws://x/backtest", api_key="sekrit-key-123")
    assert "sekrit" not in repr(job)


def test_merge_is_slot_ordered_and_metadata_combined(tmp_path: Any) -> None:
    def part(name: str, start: int, end: int, sigs: List[str], complete: bool) -> str:
        doc = {"metadata": {"start_slot": start, "end_slot": end, "session_ids": [name], "sessions": [],
                            "failures": [], "complete": complete},
               "transactions": [{"slot": start + i, "signature": s, "success": True} for i, s in enumerate(sigs)],
               "summary": {"total": len(sigs), "successes": len(sigs), "failures": 0}}
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc))
        return str(p)

    out = tmp_path / "merged.json"
    out.write_text("old")
    os.chmod(out, 0o640)
    merge_run_files([part("a", 10, 19, ["s1", "s2"], True), part("b", 20, 29, ["s3"], False)], str(out))
    doc = json.loads(out.read_text())
    assert [t["signature"] for t in doc["transactions"]] == ["s1", "s2", "s3"]
    assert doc["summary"] == {"total": 3, "successes": 3, "failures": 0}
    assert doc["metadata"]["start_slot"] == 10 and doc["metadata"]["end_slot"] == 29
    assert doc["metadata"]["complete"] is False
    assert doc["metadata"]["session_ids"] == ["a", "b"]
    assert os.stat(out).st_mode & 0o777 == 0o640


# ------------------------------------------------------------------------------------------------ end to end


def test_process_pool_merge_equals_one_process(sim_process: Any, reference: str, tmp_path: Any) -> None:
    start = sim_process.first_slot
    slices = plan_slices(start, start + SLOTS - 1, slice_slots=70)
    assert len(slices) == 4
    done: List[int] = []
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = run_distributed(pool, slices, url=sim_process.url, api_key="local-dev-key",
                                 transaction_programs=sim_process.program_ids,
                                 account_diff_programs=sim_process.program_ids, output_dir=str(tmp_path / "s"),
                                 handler_factory=CountByKind, on_slice_done=lambda r: done.append(r.slice.index))
    assert result.ok, [r.failures for r in result.failed]
    assert sorted(done) == [0, 1, 2, 3]
    # the handler ran in the workers and its result came back per slice
    assert sum(r.value["Transaction"] for r in result.slices) == sum(r.transactions for r in result.slices) > 0
    merged = result.merge_run_files(str(tmp_path / "merged.json"))
    assert _records(merged) == _records(reference)
    doc = json.loads(open(merged).read())
    assert doc["metadata"]["complete"] is True
    assert len(doc["metadata"]["slices"]) == 4


def test_dask_cluster_merge_equals_one_process_and_killed_slice_reruns(sim_process: Any, reference: str,
                                                                        tmp_path: Any,
                                                                        monkeypatch: Any) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    marker = tmp_path / "killed"
    monkeypatch.setenv("SIMCLIENT_TEST_KILL_MARKER", str(marker))
    start = sim_process.first_slot
    slices = plan_slices(start, start + SLOTS - 1, slice_slots=80)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None, host="127.0.0.1") as cluster, \
                distributed.Client(cluster) as dclient:
            result = run_distributed(dclient, slices, url=sim_process.url, api_key="local-dev-key",
                                     transaction_programs=sim_process.program_ids,
                                     account_diff_programs=sim_process.program_ids,
                                     output_dir=str(tmp_path / "s"), handler_factory=KillOnce)
            assert marker.exists(), "the handler never killed its worker"
            assert [r.slice.index for r in result.failed] == [KillOnce.KILL_SLICE]
            assert "worker failed" in result.failed[0].failures[0]
            assert all(r.ok for r in result.slices if r.slice.index != KillOnce.KILL_SLICE)
            again = retry_failed(dclient, result)
    assert again.ok, [r.failures for r in again.failed]
    merged = again.merge_run_files(str(tmp_path / "merged.json"))
    assert _records(merged) == _records(reference)


def test_cli_workers_merges_to_the_single_process_file(tmp_path: Any) -> None:
    import subprocess
    import sys

    common = ["run", "--local", "--slot-count", "149", "--subscriptions", "transactions,account-diff",
              "--progress", "lines", "--progress-interval", "0.2"]
    one = subprocess.run([sys.executable, "-m", "simclient.cli", *common, "-o", str(tmp_path / "one.json")],
                         capture_output=True, text=True, timeout=60)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "simclient.cli", *common, "--workers", "2", "--slice-slots", "40",
                          "-o", str(tmp_path / "two.json")], capture_output=True, text=True, timeout=60)
    assert two.returncode == 0, two.stderr
    assert "in 4 slices" in two.stderr
    assert _records(str(tmp_path / "two.json")) == _records(str(tmp_path / "one.json"))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".simclient-")], "spool left behind"


def test_cli_workers_needs_an_output_file() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "simclient.cli", "run", "--local", "--slot-count", "10",
                        "--workers", "2"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--output-file" in r.stderr
