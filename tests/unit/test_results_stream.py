"""simclient.results without pyarrow/pandas: the streamed run-file reader, the rows, CSV / JSON lines export."""
from __future__ import annotations

import csv
import json
import sys

import pytest

from simclient import results
from simclient.results import RunStream
from simclient.runfile import RunFileError, transaction_record


def _tx(slot, sig, success=True, sol=None, tokens=None, diffs=None, **extra):
    rec = {"slot": slot, "signature": sig, "success": success, "error": None if success else {"Custom": 1},
           "logs": [f"log {sig}"], "sol_changes": sol or {}, "token_changes": tokens or {},
           "account_diffs": diffs or {}, "programs": ["P1"]}
    rec.update(extra)
    return rec


def _doc(n=50):
    txs = [_tx(100 + i // 3, f"sig{i}", success=i % 4 != 0, sol={"A": -5000 - i, "B": i} if i % 2 else {"A": -5000},
               tokens={"B": {"M": 10 * i}} if i % 5 == 0 else None,
               diffs={"A": {"before": {"lamports": 10, "owner": "P1", "data": ["AAAA", "base64"], "space": 3},
                            "after": {"lamports": 7, "owner": "P1", "data": ["AAAB", "base64"], "space": 3}}}
               if i % 3 == 0 else None, fee=5000 + i)
           for i in range(n)]
    return {"metadata": {"start_slot": 100, "end_slot": 130, "program_id": "P1"}, "transactions": txs,
            "summary": {"total": n}, "unattributed_account_diffs": [
                {"slot": 101, "account": "C", "before": None, "after": {"lamports": 9, "owner": "P1"}}]}


def _write(tmp_path, obj, name="run.json", text=None):
    p = tmp_path / name
    p.write_text(text if text is not None else json.dumps(obj, separators=(",", ":")))
    return p


@pytest.mark.parametrize("chunk", [1024, 1 << 20])
def test_stream_yields_every_record_across_chunk_boundaries(tmp_path, chunk):
    doc = _doc(400)
    p = _write(tmp_path, doc)
    assert p.stat().st_size > 10 * 1024  # many chunk boundaries at 1 KiB
    s = RunStream(str(p), chunk_size=chunk)
    items = list(s.items())
    assert [v for k, v in items if k == "transaction"] == doc["transactions"]
    assert [v for k, v in items if k == "unattributed"] == doc["unattributed_account_diffs"]
    assert s.metadata == doc["metadata"] and s.summary == doc["summary"]


def test_stream_reads_pretty_printed_files_and_metadata_after_transactions(tmp_path):
    doc = _doc(10)
    reordered = {"transactions": doc["transactions"], "summary": doc["summary"], "metadata": doc["metadata"]}
    p = _write(tmp_path, None, text=json.dumps(reordered, indent=4))
    s = RunStream(str(p), chunk_size=1024)
    assert s.metadata == doc["metadata"]            # found without a full pass first
    assert list(s.transactions()) == doc["transactions"]


def test_number_at_a_chunk_boundary_is_not_cut(tmp_path):
    # a top-level number that straddles the chunk boundary must come out whole
    text = '{"transactions":[],"pad":"' + "x" * 1000 + '","n":1234567890123}'
    cut = text.index("1234567890123") + 3
    assert cut >= 1024  # the reader's smallest chunk
    p = _write(tmp_path, None, text=text)
    s = RunStream(str(p), chunk_size=cut)
    list(s.items())
    assert s.extra["n"] == 1234567890123


def test_one_element_larger_than_many_chunks(tmp_path):
    doc = {"metadata": {}, "transactions": [_tx(1, "big", logs=["y" * 200_000])]}
    p = _write(tmp_path, doc)
    assert list(RunStream(str(p), chunk_size=1024).transactions()) == doc["transactions"]


@pytest.mark.parametrize("text, needle", [
    ("[1, 2]", "expected '{'"),
    ('{"metadata": {}}', "'transactions' array"),
    ('{"transactions": {"a": 1}}', "'transactions' array"),
    ('{"transactions": [{"slot": 1}]}', "no signature"),
    ('{"transactions": [{"signature": "a"}, ', "not JSON"),
    ('{"transactions": [{"signature": "a"} {"signature": "b"}]}', "expected ',' or ']'"),
    ('{"metadata": 3, "transactions": []}', "'metadata' must be an object"),
])
def test_bad_files_raise_run_file_error(tmp_path, text, needle):
    p = _write(tmp_path, None, text=text)
    with pytest.raises(RunFileError, match=needle):
        list(RunStream(str(p)).items())


def test_missing_file(tmp_path):
    with pytest.raises(RunFileError, match="no such file"):
        results.read_run(str(tmp_path / "nope.json"))


def test_empty_run_is_fine(tmp_path):
    p = _write(tmp_path, {"metadata": {"start_slot": 1}, "transactions": []})
    t = results.read_run(str(p))
    assert len(t.transactions) == 0 and t.metadata == {"start_slot": 1}


def test_tables_hold_the_documents_content(tmp_path):
    doc = _doc(60)
    t = results.read_run(str(_write(tmp_path, doc)), accounts=["A", "B"])
    txs = doc["transactions"]
    assert len(t.transactions) == len(txs)
    rows = t.transactions.to_pylist()
    assert [r["signature"] for r in rows] == [x["signature"] for x in txs]
    assert [r["fee"] for r in rows] == [x["fee"] for x in txs]
    assert all(r["compute_units"] is None for r in rows)       # not in this payload
    assert [r["success"] for r in rows] == [x["success"] for x in txs]
    assert rows[0]["error"] == '{"Custom":1}' and rows[1]["error"] is None
    assert sum(r["sol_change.A"] for r in rows) == sum(x["sol_changes"].get("A", 0) for x in txs)
    assert sum(r["sol_change.B"] for r in rows) == sum(x["sol_changes"].get("B", 0) for x in txs)
    assert len(t.sol_changes) == sum(len(x["sol_changes"]) for x in txs)
    assert sum(t.token_changes.column("amount")) == sum(x["token_changes"].get("B", {}).get("M", 0) for x in txs)
    diffs = t.account_diffs.to_pylist()
    assert len(diffs) == sum(len(x["account_diffs"]) for x in txs) + 1
    first = diffs[0]
    assert (first["lamports_before"], first["lamports_after"], first["lamports_change"]) == (10, 7, -3)
    assert (first["data_encoding"], first["data_before"], first["data_after"]) == ("base64", "AAAA", "AAAB")
    created = diffs[-1]   # the unattributed one: no signature, created account
    assert created["signature"] is None and created["lamports_before"] is None
    assert created["lamports_change"] == 9


def test_transaction_record_keeps_fee_and_compute_units():
    value = {"slot": 5, "transaction": {"signatures": ["s"], "message": {"accountKeys": ["a"], "instructions": []}},
             "meta": {"err": None, "fee": 5000, "computeUnitsConsumed": 1234, "preBalances": [10],
                      "postBalances": [5]}}
    rec = transaction_record(value)
    assert rec["fee"] == 5000 and rec["compute_units"] == 1234
    del value["meta"]["fee"], value["meta"]["computeUnitsConsumed"]
    rec = transaction_record(value)
    assert "fee" not in rec and "compute_units" not in rec


def test_export_csv_and_jsonl_stream_rows_with_stdlib_only(tmp_path):
    doc = _doc(33)
    src = _write(tmp_path, doc)
    out = results.export_run(str(src), str(tmp_path / "csv"), "csv", accounts=["A"], row_group_size=7)
    with open(out["transactions"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["signature"] for r in rows] == [x["signature"] for x in doc["transactions"]]
    assert rows[0]["success"] == "false" and rows[1]["success"] == "true"
    assert json.loads(rows[0]["programs"]) == ["P1"]
    assert sum(int(r["sol_change.A"]) for r in rows) == sum(x["sol_changes"]["A"] for x in doc["transactions"])
    meta = json.loads(open(out["metadata"]).read())
    assert meta["metadata"] == doc["metadata"] and meta["summary"] == doc["summary"]

    out = results.export_run(str(src), str(tmp_path / "jsonl"), "jsonl")
    lines = [json.loads(x) for x in open(out["account_diffs"])]
    assert len(lines) == sum(len(x["account_diffs"]) for x in doc["transactions"]) + 1
    sols = [json.loads(x) for x in open(out["sol_changes"])]
    assert sum(r["lamports"] for r in sols) == sum(sum(x["sol_changes"].values()) for x in doc["transactions"])


def test_sink_abort_leaves_nothing_and_failed_export_writes_nothing(tmp_path):
    paths = results.directory_paths(str(tmp_path), "csv")
    sink = results.CsvRunSink(paths, row_group_size=2)
    for i in range(5):
        sink.add(_tx(1, f"s{i}"))
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    bad = _write(tmp_path, None, name="bad.json", text='{"transactions": [{"signature": "a"}, {"slot": 2}]}')
    with pytest.raises(RunFileError):
        results.export_run(str(bad), str(tmp_path / "out"), "csv")
    assert list((tmp_path / "out").iterdir()) == []


def test_sink_buffers_at_most_a_row_group(tmp_path):
    sink = results.JsonlRunSink(results.directory_paths(str(tmp_path), "jsonl"), row_group_size=10)
    for i in range(95):
        sink.add(_tx(1, f"s{i}", sol={"A": 1, "B": 2}))
    assert sink.max_buffered == 10            # flushed whenever a table's buffer reaches the row-group size
    assert sink.rows_written["transactions"] == 90 and sink.rows_written["sol_changes"] == 190
    paths = sink.finish({"x": 1})
    assert sum(1 for _ in open(paths["transactions"])) == 95


def test_missing_extras_are_usage_errors_naming_the_extra(tmp_path, monkeypatch, capsys):
    """Without pyarrow / matplotlib: exit 2 with the pip line, and `run -o x.parquet` fails before the run."""
    from simclient.cli import main

    src = str(_write(tmp_path, _doc(5)))
    for name in [m for m in sys.modules if m.split(".")[0] in ("pyarrow", "matplotlib")]:
        monkeypatch.delitem(sys.modules, name)      # as if never imported (restored after the test)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["export", src, "--format", "parquet", "-o", str(tmp_path / "out")]) == 2
    assert "simclient[data]" in capsys.readouterr().err
    assert not (tmp_path / "out" / "transactions.parquet").exists()
    assert main(["summarize", src, "--plot", str(tmp_path / "x.png")]) == 2
    assert "simclient[plot]" in capsys.readouterr().err
    assert main(["--url", "ws://127.0.0.1:9/backtest", "run", "--start-slot", "1", "--slot-count", "1",
                 "--program-id", "11111111111111111111111111111111", "-o", str(tmp_path / "r.parquet")]) == 2
    err = capsys.readouterr().err
    assert "simclient[data]" in err and "cannot reach" not in err
    assert main(["export", src, "--format", "csv", "-o", str(tmp_path / "csv")]) == 0   # stdlib formats still work


def test_plot_bins_long_runs_and_draws_them(tmp_path):
    from simclient import plot

    assert plot._bins(100, 399) == (1, list(range(100, 400)))              # one bar per slot up to MAX_BARS
    width, starts = plot._bins(0, 5999)
    assert width == 10 and len(starts) == 600 and starts[-1] == 5990
    assert plot._binned(__import__("collections").Counter({0: 1, 9: 2, 10: 4}), [0, 10], 10) == [3, 4]
    pytest.importorskip("matplotlib")
    doc = {"metadata": {"start_slot": 0, "end_slot": 5999},
           "transactions": [_tx(i * 3, f"s{i}", success=i % 3 != 0, sol={"A": 1000 * i}) for i in range(2000)]}
    out = plot.plot_run(str(_write(tmp_path, doc)), str(tmp_path / "long.png"))
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[1] == 1000 and img[:, :, :3].std() > 0.05


def test_cumulative_sol_counts_deltas_between_sampled_slots():
    from collections import Counter

    from simclient.plot import RunSeries

    s = RunSeries("x", 0, 30, sol={"A": Counter({3: 1_000_000_000, 12: -500_000_000, 25: 2_000_000_000})})
    assert s.cumulative_sol("A", [0, 9, 19, 29]) == [0.0, 1.0, 0.5, 2.5]
    assert s.cumulative_sol("A", list(range(31)))[12] == 0.5
