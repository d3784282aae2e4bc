"""Issue 14 "Done when": tables of a demo run equal its run file; Parquet from ``simclient run -o x.parquet`` equals
Parquet exported from the JSON of the same run; the plot of the demo run is a real picture."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from simclient import results

from .helpers import REPO, clean_env, cli

DEMO_SLOTS = "300"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``python -m simclient.demo --slots 300`` (the `make demo` run, shorter)."""
    path = tmp_path_factory.mktemp("demo") / "demo-run.json"
    r = subprocess.run([sys.executable, "-m", "simclient.demo", "--slots", DEMO_SLOTS, "--output-file", str(path),
                        "--progress", "none"], capture_output=True, text=True, timeout=120, env=clean_env(),
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    doc = json.loads(path.read_text())
    assert doc["metadata"]["complete"] and len(doc["transactions"]) > 500
    return path, doc


def _busiest(doc, n=3):
    c: Counter = Counter(a for t in doc["transactions"] for a in t["sol_changes"])
    return [a for a, _ in c.most_common(n)]


def _sol_sums(doc):
    sums: Counter = Counter()
    for t in doc["transactions"]:
        for acc, d in t["sol_changes"].items():
            sums[acc] += d
    return sums


def test_demo_tables_equal_the_run_file(demo):
    path, doc = demo
    txs = doc["transactions"]
    tracked = _busiest(doc)
    t = results.read_run(str(path), accounts=tracked, chunk_size=64 * 1024)   # many chunks for a ~5 MB file
    # counts
    assert len(t.transactions) == len(txs) == doc["summary"]["total"]
    rows = t.transactions.to_pylist()
    assert sum(r["success"] is True for r in rows) == doc["summary"]["successes"]
    assert sum(r["success"] is False for r in rows) == doc["summary"]["failures"]
    assert len(t.account_diffs) == sum(len(x["account_diffs"]) for x in txs) > 0
    assert len(t.sol_changes) == sum(len(x["sol_changes"]) for x in txs)
    assert len(t.token_changes) == sum(len(m) for x in txs for m in x["token_changes"].values())
    # the set of signatures
    assert {r["signature"] for r in rows} == {x["signature"] for x in txs}
    # sums of sol changes per account: the long table for every account, the columns for the tracked ones
    per_account: Counter = Counter()
    for r in t.sol_changes.to_pylist():
        per_account[r["account"]] += r["lamports"]
    assert per_account == _sol_sums(doc)
    for acc in tracked:
        assert sum(r[f"sol_change.{acc}"] for r in rows) == _sol_sums(doc)[acc] != 0
    # the local simulator's payloads carry fee and compute units
    assert all(isinstance(r["fee"], int) and r["fee"] > 0 for r in rows)
    assert all(isinstance(r["compute_units"], int) for r in rows)
    assert t.metadata["start_slot"] == doc["metadata"]["start_slot"]


def test_demo_tables_to_pandas_and_arrow(demo):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path, doc = demo
    tracked = _busiest(doc, 2)
    t = results.read_run(str(path), accounts=tracked)
    df = t.transactions.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == len(doc["transactions"])
    assert str(df["fee"].dtype) == "Int64" and str(df["success"].dtype) == "boolean"
    assert int(df["success"].sum()) == doc["summary"]["successes"]
    sols = t.sol_changes.to_pandas().groupby("account")["lamports"].sum()
    assert {k: int(v) for k, v in sols.items()} == dict(_sol_sums(doc))
    assert int(df[f"sol_change.{tracked[0]}"].sum()) == _sol_sums(doc)[tracked[0]]
    arrow = t.to_arrow()
    assert {k: v.num_rows for k, v in arrow.items()} == {k: len(v) for k, v in t.tables.items()}
    assert arrow["account_diffs"].schema.field("lamports_change").type == "int64"


def test_to_pandas_and_arrow_across_packed_batches(tmp_path):
    pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    table = results.ResultTable("sol_changes", results.columns("sol_changes"), compact_rows=7)
    for i in range(30):
        table.append((i, f"s{i}", "A", i))
    assert len(table) == 30 and len(table._batches) == 4        # packed into Arrow every 7 rows
    assert table.column("lamports") == list(range(30))
    at = table.to_arrow()
    assert isinstance(at, pa.Table) and at.column("lamports").to_pylist() == list(range(30))
    assert table.to_pandas()["lamports"].sum() == sum(range(30))


def test_run_parquet_equals_parquet_exported_from_the_json_of_the_same_run(sim, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    common = ["run", "--start-slot", str(sim.first_slot), "--slot-count", "149", "--program-id",
              ",".join(sim.program_ids), "--subscriptions", "transactions,account-diff", "--progress", "none"]
    r = cli(sim, *common, "-o", str(tmp_path / "run.json"))
    assert r.returncode == 0, r.stderr
    r = cli(sim, *common, "-o", str(tmp_path / "run.parquet"))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and not (tmp_path / "run.parquet.json").exists()
    r = cli(None, "export", str(tmp_path / "run.json"), "--format", "parquet", "-o", str(tmp_path / "exp"))
    assert r.returncode == 0, r.stderr
    streamed = results.run_paths(str(tmp_path / "run.parquet"))
    assert streamed["account_diffs"] == str(tmp_path / "run.account_diffs.parquet")
    for name in results.TABLES:
        a = pq.read_table(streamed[name])
        b = pq.read_table(tmp_path / "exp" / f"{name}.parquet")
        assert a.schema == b.schema, name
        assert a.equals(b), name
    n = pq.read_table(streamed["transactions"]).num_rows
    assert n == len(json.loads((tmp_path / "run.json").read_text())["transactions"]) > 0
    meta = results.read_parquet_metadata(streamed["transactions"])
    assert meta["metadata"]["complete"] is True and meta["metadata"]["start_slot"] == sim.first_slot
    assert meta["summary"]["total"] == n and meta["table"] == "transactions"
    assert json.loads((tmp_path / "exp" / "metadata.json").read_text())["summary"]["total"] == n


def test_export_command_formats_and_errors(demo, tmp_path, capsys):
    from simclient.cli import main

    path, doc = demo
    acc = _busiest(doc, 1)[0]
    assert main(["export", str(path), "--format", "csv", "-o", str(tmp_path / "csv"), "--accounts", acc]) == 0
    header = (tmp_path / "csv" / "transactions.csv").read_text().splitlines()[0]
    assert header.endswith(f"sol_change.{acc}")
    assert sum(1 for _ in open(tmp_path / "csv" / "transactions.csv")) == len(doc["transactions"]) + 1
    capsys.readouterr()
    assert main(["export", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", str(path), "--format", "xml", "-o", str(tmp_path / "x")])
    assert e.value.code == 2


def _png(path):
    mpimg = pytest.importorskip("matplotlib.image")
    return mpimg.imread(str(path))


def _has_colour(img, hex_colour, tol=0.03):
    import numpy as np

    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(img[:, :, :3] - rgb).max(axis=2) < tol).sum() > 50)


def test_summarize_plot_draws_the_demo_run(demo, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = demo
    out = tmp_path / "run.png"
    r = cli(None, "summarize", str(path), "--plot", str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and "transactions:" in r.stdout      # the text summary is still printed
    img = _png(out)
    h, w = img.shape[:2]
    assert (w, h) == (1000, 740)
    assert img[:, :, :3].std() > 0.05                               # not blank
    from simclient.plot import _FAILED, _OK

    assert _has_colour(img, _OK) and _has_colour(img, _FAILED)      # success and failure bars are there
    assert out.stat().st_size < 200_000


def test_compare_plot_draws_the_difference(demo, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from simclient.cli import main

    path, doc = demo
    other = dict(doc, transactions=[dict(t, success=False) if i % 7 == 0 else t
                                    for i, t in enumerate(doc["transactions"]) if i % 11])
    (tmp_path / "other.json").write_text(json.dumps(other))
    out = tmp_path / "cmp.png"
    assert main(["compare", str(path), str(tmp_path / "other.json"), "--plot", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    img = _png(out)
    assert img.shape[1] == 1000 and img[:, :, :3].std() > 0.05
    from simclient.plot import _FAILED, _OK

    assert _has_colour(img, _OK) and _has_colour(img, _FAILED)      # both difference series are drawn


def test_plot_series_match_the_run(demo):
    from simclient.plot import run_series

    path, doc = demo
    tracked = _busiest(doc, 2)
    s = run_series(str(path), tracked)
    assert sum(s.successes.values()) == doc["summary"]["successes"]
    assert sum(s.failures.values()) == doc["summary"]["failures"]
    assert (s.start, s.end) == (doc["metadata"]["start_slot"], doc["metadata"]["end_slot"])
    slots = list(range(s.start, s.end + 1))
    assert s.cumulative_sol(tracked[0], slots)[-1] * 1e9 == pytest.approx(_sol_sums(doc)[tracked[0]])
    assert run_series(str(path)).accounts == _busiest(doc, 4)   # default: the accounts most transactions touch


def test_event_tables_from_a_session_like_the_notebook_snippet(sim):
    from simclient import Client, CreateSession
    from simclient import events as ev

    from .helpers import truth_signatures

    collected = results.EventTables()
    with Client(sim.url, sim.api_key).start_session(CreateSession(start_slot=sim.first_slot, slot_count=99)) as s:
        s.subscribe_transactions(sim.program_ids)
        s.subscribe_account_diffs(sim.program_ids)
        for event in s.events():
            collected.add_event(event)
            if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
                s.send_continue(advance_count=50)
    t = collected.tables()
    truth = truth_signatures(sim.chain, sim.first_slot, sim.first_slot + 99, sim.program_ids)
    assert t.transactions.column("signature") == truth
    assert len(t.account_diffs) == collected.diff_count > 0
    assert all(sig is not None for sig in t.account_diffs.column("signature"))
