"""``ranges``, ``serve``, errors and exit codes, ``python -m simclient``."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

from .helpers import REPO, clean_env, cli, wait_for_line


def test_ranges_json_parses(sim):
    r = cli(sim, "ranges", "--json")
    assert r.returncode == 0, r.stderr
    ranges = json.loads(r.stdout)
    assert ranges == sim.chain.available_ranges()


def test_ranges_table_and_date_filters(sim):
    truth = sim.chain.available_ranges()
    r = cli(sim, "ranges")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0].split()[:2] == ["START", "SLOT"]
    assert f"{len(truth)} range(s)" in r.stdout
    after, before = truth[3]["bundle_start_slot_utc"], truth[6]["max_bundle_end_slot_utc"]
    picked = json.loads(cli(sim, "ranges", "--after", after, "--before", before, "--json").stdout)
    assert picked == truth[3:7]
    bad = cli(sim, "ranges", "--after", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_url_and_key_from_environment(sim):
    r = subprocess.run([sys.executable, "-m", "simclient", "ranges", "--json"], capture_output=True, text=True,
                       timeout=60, cwd=REPO, env=clean_env(SIMULATOR_URL=sim.url, SIMULATOR_API_KEY=sim.api_key))
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == len(sim.chain.available_ranges())


def test_connection_refused_is_one_line_exit_2():
    r = subprocess.run([sys.executable, "-m", "simclient.cli", "--url", "ws://127.0.0.1:9/backtest", "run",
                        "--start-slot", "1", "--slot-count", "2", "--program-id", "11111111111111111111111111111111",
                        "--progress", "none"], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env=clean_env())
    assert r.returncode == 2
    assert r.stderr.strip() == "simclient: error: cannot reach the simulator at http://127.0.0.1:9 " \
                               "(connection refused)"


def test_bad_api_key_exit_2_and_key_never_printed(sim):
    secret = "not-the-key-5f1c2e"
    for verbosity in ([], ["-vv"]):
        r = subprocess.run([sys.executable, "-m", "simclient.cli", "--url", sim.url, "--api-key", secret,
                            *verbosity, "run", "--start-slot", str(sim.first_slot), "--slot-count", "3",
                            "--program-id", sim.program_ids[0], "--progress", "none"],
                           capture_output=True, text=True, timeout=60, cwd=REPO, env=clean_env())
        assert r.returncode == 2
        assert "authentication failed" in r.stderr
        assert secret not in r.stdout + r.stderr
        if not verbosity:
            assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_good_key_never_printed_in_verbose_run(sim, tmp_path):
    r = cli(sim, "-vv", "run", "--start-slot", str(sim.first_slot), "--slot-count", "20", "--program-id",
            sim.program_ids[0], "-o", str(tmp_path / "r.json"), "--progress", "lines")
    assert r.returncode == 0, r.stderr
    assert "DEBUG" in r.stderr
    assert sim.api_key not in r.stdout + r.stderr
    assert sim.api_key not in (tmp_path / "r.json").read_text()


def test_usage_errors_exit_2(sim):
    assert cli(sim, "run", "--start-slot", "5").returncode == 2                      # no end
    assert cli(sim, "run", "--start-slot", "9", "--end-slot", "5").returncode == 2   # end < start
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "2", "--program-id", "nope")
    assert r.returncode == 2 and "not a base58 public key" in r.stderr
    r = cli(sim, "run", "--start-slot", "5", "--slot-count", "2", "--subscriptions", "none", "--progress", "none")
    assert r.returncode == 2 and "BundleNotFound" in r.stderr                        # rejected by the server
    assert cli(None).returncode == 2


def test_python_dash_m_simclient_version():
    r = subprocess.run([sys.executable, "-m", "simclient", "--version"], capture_output=True, text=True,
                       timeout=60, cwd=REPO, env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith("simclient ")


def test_serve_then_ranges_then_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "simclient.cli", "serve", "--port", "0", "--seed", "3",
                             "--bundle-size", "50", "--api-key", "serve-key"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO, env=clean_env())
    try:
        m, lines = wait_for_line(proc, r"(ws://127\.0\.0\.1:\d+/backtest)", timeout=30)
        assert m, lines
        url = m.group(1)
        r = subprocess.run([sys.executable, "-m", "simclient.cli", "--url", url, "ranges", "--json"],
                           capture_output=True, text=True, timeout=60, cwd=REPO, env=clean_env())
        ranges = json.loads(r.stdout)
        assert ranges[0]["max_bundle_size"] == 50
        bad = subprocess.run([sys.executable, "-m", "simclient.cli", "--url", url, "run", "--start-slot",
                              str(ranges[0]["bundle_start_slot"]), "--slot-count", "3", "--subscriptions", "none"],
                             capture_output=True, text=True, timeout=60, cwd=REPO, env=clean_env())
        assert bad.returncode == 2 and "authentication failed" in bad.stderr   # default key, server wants serve-key
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
