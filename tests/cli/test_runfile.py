"""The run-file logic and the progress display, in-process (no simulator)."""
from __future__ import annotations

import io
import json
import threading

import pytest

from simclient import events as ev
from simclient.cli import LineRenderer, ProgressModel, TqdmRenderer, make_renderer
from simclient.runfile import (
    RunFileError,
    RunRecorder,
    compare_runs,
    load_run,
    summarize_run,
    transaction_record,
    write_run,
)

PAYER, POOL, MINT, PROG, ALT_W, ALT_R = "Payer1", "Pool1", "Mint1", "Prog1", "AltW1", "AltR1"


def _tx(sig="sig1", slot=10, err=None):
    return {
        "slot": slot,
        "transaction": {"signatures": [sig], "message": {
            "accountKeys": [PAYER, POOL, PROG],
            "instructions": [{"programIdIndex": 2, "accounts": [1], "data": ""}]}},
        "meta": {
            "err": err, "logMessages": ["Program Prog1 invoke [1]"],
            "preBalances": [1000, 50, 1, 7, 9], "postBalances": [900, 150, 1, 7, 9],
            "loadedAddresses": {"writable": [ALT_W], "readonly": [ALT_R]},
            "preTokenBalances": [{"accountIndex": 1, "mint": MINT, "uiTokenAmount": {"amount": "100"}}],
            "postTokenBalances": [{"accountIndex": 1, "mint": MINT, "uiTokenAmount": {"amount": "40"}},
                                  {"accountIndex": 3, "mint": MINT, "uiTokenAmount": {"amount": "60"}}],
        },
    }


def test_transaction_record_balances_tokens_and_loaded_addresses():
    rec = transaction_record(_tx())
    assert rec["signature"] == "sig1" and rec["slot"] == 10
    assert rec["success"] is True and rec["error"] is None
    assert rec["sol_changes"] == {PAYER: -100, POOL: 100}
    assert rec["token_changes"] == {POOL: {MINT: -60}, ALT_W: {MINT: 60}}   # index 3 = first loaded writable
    assert rec["programs"] == [PROG]
    failed = transaction_record(_tx(err={"InstructionError": [0, {"Custom": 1}]}))
    assert failed["success"] is False and failed["error"] == {"InstructionError": [0, {"Custom": 1}]}


def test_recorder_joins_diffs_in_any_order_and_orders_by_slot():
    rec = RunRecorder(10, 20, [PROG])
    diff = ev.AccountDiff(slot=12, account=POOL, signature="b", pre={"lamports": 1}, post={"lamports": 2})
    rec.add_event(diff)                                                     # diff before its transaction
    rec.add_event(ev.Transaction(slot=12, signature="b", value=_tx("b", 12)))
    rec.add_event(ev.Transaction(slot=11, signature="a", value=_tx("a", 11)))
    rec.add_event(ev.AccountDiff(slot=11, account=POOL, signature="a", pre=None, post={"lamports": 5}))
    rec.add_event(ev.AccountDiff(slot=13, account=POOL, signature=None, pre=None, post=None))
    rec.add_event(ev.Slot(13))                                              # ignored
    doc = rec.document(complete=True)
    assert [t["signature"] for t in doc["transactions"]] == ["a", "b"]
    assert doc["transactions"][1]["account_diffs"] == {POOL: {"before": {"lamports": 1}, "after": {"lamports": 2}}}
    assert doc["transactions"][0]["account_diffs"] == {POOL: {"before": None, "after": {"lamports": 5}}}
    assert doc["unattributed_account_diffs"] == [{"slot": 13, "account": POOL, "before": None, "after": None}]
    assert doc["summary"] == {"total": 2, "successes": 2, "failures": 0}
    meta = doc["metadata"]
    assert (meta["start_slot"], meta["end_slot"], meta["program_id"], meta["complete"]) == (10, 20, PROG, True)
    assert meta["timestamp"].endswith("Z")


def test_recorder_is_thread_safe():
    rec = RunRecorder(0, 100)
    def feed(base):
        for i in range(500):
            sig = f"{base}-{i}"
            rec.add_event(ev.Transaction(slot=i % 100, signature=sig, value=_tx(sig, i % 100)))
            rec.add_event(ev.AccountDiff(slot=i % 100, account=POOL, signature=sig, pre=None, post=None))
    threads = [threading.Thread(target=feed, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    snapshots = [rec.document(complete=False) for _ in range(5)]            # while writers run
    for t in threads:
        t.join()
    assert all(isinstance(s["transactions"], list) for s in snapshots)
    doc = rec.document(complete=True)
    assert doc["summary"]["total"] == 2000
    assert all(len(t["account_diffs"]) == 1 for t in doc["transactions"])


def test_write_is_atomic_and_load_validates(tmp_path):
    path = tmp_path / "run.json"
    doc = RunRecorder(1, 2).document(complete=True)
    write_run(str(path), doc)
    assert load_run(str(path))["summary"] == {"total": 0, "successes": 0, "failures": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]           # no temp file left behind
    (tmp_path / "bad.json").write_text(json.dumps({"transactions": [{"slot": 1}]}))
    with pytest.raises(RunFileError, match="no signature"):
        load_run(str(tmp_path / "bad.json"))
    (tmp_path / "rust.json").write_text(json.dumps({"transactions": []}))   # a minimal `sim run` file
    assert load_run(str(tmp_path / "rust.json"))["metadata"] == {}


def test_compare_and_summarize_logic():
    a = {"transactions": [transaction_record(_tx("x")), transaction_record(_tx("y", err={"E": 1})),
                          transaction_record(_tx("z"))]}
    b = json.loads(json.dumps(a))
    b["transactions"][0].update(success=False, error={"E": 2})
    b["transactions"][1].update(success=True, error=None)
    b["transactions"][2]["sol_changes"][PAYER] = -1
    b["transactions"].append(transaction_record(_tx("w")))
    cmp = compare_runs(a, b)
    assert [p[0]["signature"] for p in cmp.regressions] == ["x"]
    assert [p[0]["signature"] for p in cmp.improvements] == ["y"]
    assert [p[0]["signature"] for p in cmp.balances] == ["z"]
    assert [t["signature"] for t in cmp.only_in_experiment] == ["w"] and not cmp.only_in_baseline
    assert not compare_runs(a, a).has_differences
    s = summarize_run(a, [POOL])
    assert (s["total"], s["successes"], s["failures"]) == (3, 2, 1)
    assert s["accounts"][POOL]["sol_change"] == 300 and s["accounts"][POOL]["token_changes"] == {MINT: -180}


def _model():
    model = ProgressModel()
    model.add("session-aaaaaaaa", 100, 199)
    model.add("session-bbbbbbbb", 200, 299)
    return model


def test_line_progress_shows_status_before_the_first_slot_then_slots():
    model, out = _model(), io.StringIO()
    r = LineRenderer(model, out, interval=60)
    model.on_event("session-aaaaaaaa", ev.Status("preparingBundle"))
    r.render()
    assert "waiting: preparingBundle for" in out.getvalue() and "…aaaaaaaa" in out.getvalue()
    model.on_event("session-aaaaaaaa", ev.Slot(100))        # the startup announcement: 0 done
    r.render()
    assert "0/200 slots" in out.getvalue().splitlines()[-1]
    model.on_event("session-aaaaaaaa", ev.Slot(149))        # slots from numbers: 50 of 100 done
    model.on_event("session-bbbbbbbb", ev.Slot(205))        # skipped slots never announced
    model.on_event("session-bbbbbbbb", ev.Completed())
    r.render()
    last = out.getvalue().splitlines()[-1]
    assert "150/200 slots (75.0%)" in last and "1/2 sessions done" in last
    model.on_event("session-aaaaaaaa", ev.Slot(10_000))     # clamped to the range
    r.render(final=True)
    assert "200/200 slots" in out.getvalue().splitlines()[-1]


def test_tqdm_progress_bars_per_session_and_total():
    pytest.importorskip("tqdm")
    from tqdm import tqdm

    model, out = _model(), io.StringIO()
    r = TqdmRenderer(model, out, tqdm, max_bars=10)
    model.on_event("session-aaaaaaaa", ev.Status("startingRuntime"))
    r.render()
    assert "startingRuntime for" in out.getvalue()
    model.on_event("session-aaaaaaaa", ev.Slot(149))
    model.on_event("session-bbbbbbbb", ev.Slot(299))
    r.render()
    text = out.getvalue()
    assert "100..199" in text and "200..299" in text and "total" in text and "150/200 slots" in text
    r.close()


def test_renderer_choice():
    model = ProgressModel()
    assert isinstance(make_renderer("auto", model, io.StringIO()), LineRenderer)   # not a terminal
    assert isinstance(make_renderer("lines", model, io.StringIO()), LineRenderer)
    assert type(make_renderer("none", model, io.StringIO())).__name__ == "NullRenderer"
