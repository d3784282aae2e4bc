"""Disk-backed compare / summarize (issue 12): the streaming reader and the sqlite index give the same results as
the in-memory implementation (load_run + compare_runs / summarize_run) on the same files."""
from __future__ import annotations

import copy
import json

import pytest

from simclient.runfile import RunFileError, compare_runs, load_run, render_comparison, summarize_run
from simclient.runindex import RunFileReader, compare_files, summarize_file

from .helpers import cli


def _rec(i, slot, ok=True, **kw):
    rec = {"slot": slot, "signature": f"sig{i}", "success": ok, "error": None if ok else {"Custom": i},
           "logs": [f"log {i}", "é ünïcode"], "sol_changes": {f"acc{i % 3}": -5000 - i},
           "token_changes": {}, "account_diffs": {f"acc{i % 3}": {"before": {"lamports": i}, "after": None}},
           "programs": [f"prog{i % 2}"]}
    rec.update(kw)
    return rec


def _docs():
    base_txs = [_rec(i, 100 + i // 3, ok=i % 7 != 0) for i in range(60)]
    base_txs.append(_rec(5, 200))  # a duplicate signature: the later record wins, at the first position
    exp_txs = copy.deepcopy(base_txs[5:55])
    exp_txs[3]["success"], exp_txs[3]["error"] = False, {"Custom": 99}       # regression
    exp_txs[2]["success"], exp_txs[2]["error"] = True, None                  # improvement
    exp_txs[9]["sol_changes"] = {"acc0": 1}                                  # balance
    exp_txs[10]["logs"] = ["other"]                                          # log change
    exp_txs[16]["error"] = {"Custom": -1}                                    # different error (both failed)
    exp_txs += [_rec(1000 + i, 300) for i in range(4)]                       # only in experiment
    meta = {"start_slot": 100, "end_slot": 300, "complete": True, "session_ids": ["a", "b"]}
    base = {"metadata": meta, "transactions": base_txs, "summary": {"total": 61}}
    exp = {"transactions": exp_txs, "summary": {"total": len(exp_txs)}, "metadata": dict(meta, complete=False)}
    return base, exp


def _write(path, doc, **kw):
    path.write_text(json.dumps(doc, **kw))
    return str(path)


@pytest.mark.parametrize("layout", [{}, {"indent": 2}, {"separators": (",", ":")}])
def test_compare_and_summarize_equal_the_in_memory_implementation(tmp_path, layout):
    base, exp = _docs()
    b = _write(tmp_path / "b.json", base, **layout)
    e = _write(tmp_path / "e.json", exp, **layout)
    old = compare_runs(load_run(b), load_run(e))
    new, n_b, n_e = compare_files(b, e, workdir=str(tmp_path))
    assert (n_b, n_e) == (len(base["transactions"]), len(exp["transactions"]))
    assert new.has_differences and new.regressions and new.improvements and new.balances and new.error_changes
    for section in (None, "regressions", "improvements", "balances"):
        assert new.as_dict(section) == old.as_dict(section)
        for limit in (3, 20):
            assert render_comparison(new, section, limit) == render_comparison(old, section, limit)
    same, _, _ = compare_files(b, b, workdir=str(tmp_path))
    assert same.as_dict() == compare_runs(load_run(b), load_run(b)).as_dict()
    for path in (b, e):
        for accounts in ((), ("acc0", "acc2", "missing")):
            assert summarize_file(path, accounts) == summarize_run(load_run(path), accounts)
    assert [f.name for f in tmp_path.iterdir() if "sqlite" in f.name] == []   # the index is removed


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_reader_yields_the_records_across_chunk_boundaries(tmp_path, chunk):
    base, _ = _docs()
    base["metadata"]["n"] = 12345678901234567890  # a number cut by a chunk boundary must not be truncated
    path = _write(tmp_path / "b.json", base, indent=1)
    with RunFileReader(path, chunk_size=chunk) as reader:
        got = list(reader.records())
        assert got == base["transactions"] and reader.count == len(got)
        assert reader.top["metadata"] == base["metadata"] and reader.top["summary"] == base["summary"]


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"metadata": {}}', '{"transactions": [{"slot": 1}]}',
                                  '{"transactions": [], "metadata": 3}', '{"transactions": [] "x": 1}',
                                  '{"transactions": {}}', '{"transactions": []} x'])
def test_bad_files_raise_the_same_kind_of_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RunFileError) as old:
        load_run(str(path))
    with pytest.raises(RunFileError) as new:
        summarize_file(str(path))
    o, n = str(old.value), str(new.value)
    if "not JSON" in o:
        assert "not JSON" in n
    else:
        assert n == o
    with pytest.raises(RunFileError, match="no such file"):
        compare_files(str(tmp_path / "missing.json"), str(path), workdir=str(tmp_path))


def test_cli_compare_output_equals_the_in_memory_implementation(sim, tmp_path):
    out = tmp_path / "run.json"
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "99", "--program-id",
            ",".join(sim.program_ids), "--subscriptions", "transactions,account-diff", "-o", str(out),
            "--progress", "none")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    doc["transactions"][0]["success"] = not doc["transactions"][0]["success"]
    del doc["transactions"][5]
    other = _write(tmp_path / "other.json", doc)
    expected = compare_runs(load_run(str(out)), load_run(other))
    r = cli(None, "compare", str(out), other, "--json")
    assert json.loads(r.stdout) == json.loads(json.dumps(expected.as_dict()))
    r = cli(None, "compare", str(out), other, "--limit", "5")
    assert r.stdout.splitlines()[2:] == render_comparison(expected, None, 5).splitlines()
    r = cli(None, "summarize", str(out), "--json")
    assert json.loads(r.stdout) == json.loads(json.dumps(summarize_run(load_run(str(out)))))
