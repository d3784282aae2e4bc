"""ParquetRunSink: a row group per ``row_group_size`` rows as records arrive, bounded memory, atomic finish."""
from __future__ import annotations

import math

import pytest

from simclient import results

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _rec(i):
    return {"slot": 10 + i // 4, "signature": f"sig{i}", "success": i % 5 != 0, "error": None if i % 5 else "E",
            "logs": ["x" * 200] * 4, "sol_changes": {"payer": -5000, f"acc{i % 3}": 7},
            "token_changes": {}, "programs": ["P"], "fee": 5000, "compute_units": 100 + i,
            "account_diffs": {f"acc{i % 3}": {"before": {"lamports": 1, "data": ["A" * 400, "base64"]},
                                               "after": {"lamports": 8, "data": ["B" * 400, "base64"]}}}}


def test_row_groups_are_written_as_records_arrive(tmp_path):
    path = tmp_path / "run.parquet"
    sink = results.ParquetRunSink(str(path), accounts=["acc0"], row_group_size=100)
    for i in range(1050):
        sink.add(_rec(i))
        if i == 499:
            assert sink.rows_written["transactions"] == 500      # already on disk mid-run
    assert not path.exists()                                     # only temp files until finish
    paths = sink.finish({"start_slot": 10, "complete": True})
    pf = pq.ParquetFile(paths["transactions"])
    assert pf.metadata.num_rows == 1050
    assert pf.metadata.num_row_groups == math.ceil(1050 / 100)
    assert pq.ParquetFile(paths["sol_changes"]).metadata.num_row_groups == math.ceil(2100 / 100)
    t = pq.read_table(paths["transactions"])
    assert t.column("sol_change.acc0").to_pylist().count(7) == 350
    assert t.column("compute_units").to_pylist() == [100 + i for i in range(1050)]
    meta = results.read_parquet_metadata(paths["account_diffs"])
    assert meta["metadata"] == {"start_slot": 10, "complete": True} and meta["table"] == "account_diffs"
    assert meta["summary"] == {"total": 1050, "successes": 840, "failures": 210}


def test_memory_stays_bounded_by_the_row_group(tmp_path):
    sink = results.ParquetRunSink(str(tmp_path / "run.parquet"), row_group_size=200)
    peak = 0
    for i in range(6000):
        sink.add(_rec(i))
        if i % 50 == 0:
            peak = max(peak, pa.total_allocated_bytes())
    assert sink.max_buffered <= 200
    # ~8 MB of rows went through; Arrow never holds more than a few row groups' worth at once
    assert sum(sink.rows_written.values()) > 15_000
    assert peak < 4_000_000, peak
    sink.finish({})


def test_abort_and_exceptions_leave_no_files(tmp_path):
    with pytest.raises(RuntimeError):
        with results.ParquetRunSink(str(tmp_path / "run.parquet"), row_group_size=10) as sink:
            for i in range(25):
                sink.add(_rec(i))
            raise RuntimeError("run failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="finished or aborted"):
        sink.add(_rec(0))


def test_empty_run_still_writes_every_table(tmp_path):
    paths = results.write_run_parquet(str(tmp_path / "r.parquet"), {"metadata": {"a": 1}, "transactions": []})
    for name in results.TABLES:
        t = pq.read_table(paths[name])
        assert t.num_rows == 0 and t.schema.names == [c for c, _ in results.columns(name)]
