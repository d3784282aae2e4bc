"""``simclient --log-frames``: the frame records on stderr (and only them, without -v), the key never shown."""
from __future__ import annotations

from .helpers import cli


def test_log_frames_flag_prints_frames_of_both_socket_kinds_and_never_the_key(sim, tmp_path):
    for where in ("before", "after"):  # a global option, accepted after the command too
        flag = ["--log-frames"]
        args = ["run", "--start-slot", str(sim.first_slot), "--slot-count", "20", "--program-id",
                sim.program_ids[0], "-o", str(tmp_path / "r.json"), "--progress", "none"]
        r = cli(sim, *(flag + args if where == "before" else args + flag))
        assert r.returncode == 0, r.stderr
        frames = [line for line in r.stderr.splitlines() if " DEBUG simclient.frames: " in line]
        assert any("> control#1 text" in x and "createBacktestSession" in x for x in frames)
        assert any("< control#1 text" in x and "sessionCreated" in x for x in frames)
        assert any("> subscription#" in x and "transactionSubscribe" in x for x in frames)
        assert any("< subscription#" in x and "transactionNotification" in x for x in frames)
        assert not [line for line in r.stderr.splitlines() if " DEBUG " in line and line not in frames]
        assert sim.api_key not in r.stdout + r.stderr


def test_without_the_flag_no_frames(sim, tmp_path):
    r = cli(sim, "-vv", "run", "--start-slot", str(sim.first_slot), "--slot-count", "5", "--program-id",
            sim.program_ids[0], "-o", str(tmp_path / "r.json"), "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert "DEBUG" in r.stderr and "simclient.frames" not in r.stderr
