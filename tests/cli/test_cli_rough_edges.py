"""What a new user hits first on the command line (issue 18): each as a subprocess, as a shell would run it."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, List

import pytest
import requests

from simclient.local import LocalSimulator

from .helpers import REPO, clean_env, cli, popen_cli, wait_for_line

CLI = [sys.executable, "-m", "simclient.cli"]


def _pipe_to_head(cmd: List[str], head_args: List[str]) -> "tuple[int, str, bytes]":
    """``cmd | head ARGS``: (cmd's exit code, cmd's stderr, what head printed)."""
    producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), cwd=REPO)
    head = subprocess.run(["head", *head_args], stdin=producer.stdout, capture_output=True, timeout=60)
    producer.stdout.close()  # type: ignore[union-attr]   # only head holds the read end now, and it exited
    try:
        code = producer.wait(timeout=60)
        err = producer.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        producer.stderr.close()  # type: ignore[union-attr]
    return code, err, head.stdout


def _quiet_broken_pipe(code: int, err: str) -> None:
    assert code in (0, 141), (code, err)
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err, err


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: Any) -> Any:
    path = tmp_path_factory.mktemp("runs") / "run.json"
    with LocalSimulator(port=0) as sim:
        r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "999", "--program-id",
                ",".join(sim.program_ids), "--output-file", str(path), "--progress", "none")
    assert r.returncode == 0, r.stderr
    return path


def test_ranges_into_head_exits_quietly() -> None:
    with LocalSimulator(port=0, num_bundles=3000) as sim:   # a table larger than a pipe's buffer
        code, err, out = _pipe_to_head(CLI + ["--url", sim.url, "ranges"], ["-1"])
    assert out.startswith(b"START SLOT")
    _quiet_broken_pipe(code, err)


def test_summarize_json_into_head_exits_quietly(big_run: Any) -> None:
    code, err, out = _pipe_to_head(CLI + ["summarize", "--json", "--accounts", "x", str(big_run)], ["-1"])
    assert out.strip() == b"{"
    _quiet_broken_pipe(code, err)


def test_run_to_stdout_into_head_exits_quietly(sim: Any) -> None:
    code, err, out = _pipe_to_head(CLI + ["--url", sim.url, "--api-key", sim.api_key, "run", "--start-slot",
                                          str(sim.first_slot), "--slot-count", "1999", "--program-id",
                                          ",".join(sim.program_ids), "--subscriptions", "transactions,account-diff",
                                          "-o", "-", "--progress", "none"], ["-c", "100"])
    assert out.startswith(b'{"metadata"') and len(out) == 100
    _quiet_broken_pipe(code, err)


def test_program_ids_with_spaces_after_the_commas(sim: Any, tmp_path: Any) -> None:
    out = tmp_path / "run.json"
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "20", "--program-id",
            f"{sim.program_ids[0]}, {sim.program_ids[1]} ,  {sim.program_ids[2]}", "-o", str(out),
            "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["metadata"]["program_ids"] == sim.program_ids[:3]


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_serve_with_an_impossible_port_is_a_one_line_usage_error(port: str) -> None:
    r = subprocess.run(CLI + ["serve", "--port", port], capture_output=True, text=True, timeout=30,
                       env=clean_env(), cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"simclient: error: --port {port} is not a TCP port "
                                             "(0-65535; 0 picks a free one)"]


def test_verbose_run_error_prints_the_traceback() -> None:
    args = ["--url", "ws://127.0.0.1:9/backtest", "run", "--start-slot", "1", "--slot-count", "2",
            "--subscriptions", "none", "--progress", "none"]
    quiet = subprocess.run(CLI + args, capture_output=True, text=True, timeout=60, env=clean_env(), cwd=REPO)
    loud = subprocess.run(CLI + ["-v"] + args, capture_output=True, text=True, timeout=60, env=clean_env(), cwd=REPO)
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "cannot reach" in quiet.stderr
    assert "Traceback (most recent call last)" in loud.stderr and "ConnectError" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1] == quiet.stderr.rstrip().splitlines()[-1]


def test_global_options_after_the_command(sim: Any) -> None:
    before = cli(None, "--url", sim.url, "ranges", "--json")
    after = cli(None, "ranges", "--json", "--url", sim.url)
    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout) != []
    r = cli(None, "run", "--url", sim.url, "--api-key", sim.api_key, "--start-slot", str(sim.first_slot),
            "--slot-count", "5", "--subscriptions", "none", "--progress", "none", "-v")
    assert r.returncode == 0, r.stderr
    assert " INFO " in r.stderr   # -v after the command still turns on logging
    # given only before the command, the global value is kept (the sub-command's default does not override it)
    r = cli(None, "--url", "ws://127.0.0.1:9/backtest", "ranges")
    assert r.returncode == 2 and "127.0.0.1:9" in r.stderr


def test_local_simulator_offers_its_program_ids_and_run_uses_them(sim: Any, tmp_path: Any) -> None:
    got = requests.get(sim.http_url + "/local/program-ids", timeout=5)
    assert got.status_code == 200 and got.json()["program_ids"] == sim.program_ids
    assert set(got.json()["names"].values()) == {"swap", "lend", "oracle", "perps", "mint"}
    out = tmp_path / "run.json"
    r = cli(sim, "run", "--start-slot", str(sim.first_slot), "--slot-count", "20", "-o", str(out),
            "--progress", "none")   # no --program-id
    assert r.returncode == 0, r.stderr
    assert "using the local simulator's 5 program ids" in r.stderr
    doc = json.loads(out.read_text())
    assert doc["metadata"]["program_ids"] == sim.program_ids and doc["transactions"]


def test_without_the_local_endpoint_program_ids_are_still_required(tmp_path: Any) -> None:
    """A server without /local/program-ids (the hosted service): the usage error as before, before any session."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, name="simclient-test-http", daemon=True)
    thread.start()
    try:
        r = cli(None, "--url", f"ws://127.0.0.1:{server.server_address[1]}/backtest", "run", "--start-slot", "1",
                "--slot-count", "2", "--progress", "none")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert r.returncode == 2
    assert "--subscriptions needs at least one --program-id" in r.stderr


def test_serve_prints_the_program_ids() -> None:
    proc = popen_cli(None, "serve", "--port", "0")
    try:
        m, lines = wait_for_line(proc, r"program ids", timeout=30)
        assert m, lines
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    from simclient.local.chain import PROGRAM_IDS

    assert all(p in lines[-1] for p in PROGRAM_IDS) and "swap" in lines[-1]
