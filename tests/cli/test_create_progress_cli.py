"""``simclient run --parallel`` while the create streams: the progress line counts the sub-sessions created so far and
shows the server's latest startup status (issue 13 item 7). The simulator holds the create half-way, so the line is
read while the create is provably unfinished."""
from __future__ import annotations

from .helpers import popen_cli, wait_for_line


def test_progress_counts_created_sub_sessions_and_shows_the_status_while_the_create_streams(sim):
    sim.faults.hold_parallel_create(after_sessions=2)
    proc = popen_cli(sim, "run", "--parallel", "--start-slot", str(sim.first_slot), "--slot-count", "399",
                     "--program-id", sim.program_ids[0], "--progress", "lines", "--progress-interval", "0.1")
    try:
        match, lines = wait_for_line(
            proc, r"creating parallel sessions for [^:]+: created 2 sub-sessions, (bundleReady|startingRuntime)$", 30)
        assert match, "\n".join(lines)
        assert sim.faults.parallel_create_held  # the line came while the server had not finished the create
        assert not any("created 3 sub-sessions" in line for line in lines)
        sim.faults.release_parallel_create()
        _, err = proc.communicate(timeout=60)
    finally:
        sim.faults.release_parallel_create()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert b"4 sub-sessions" in err
