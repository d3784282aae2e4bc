"""A local simulator in its own process (the scale-out workers are other processes, as in production)."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest

SERVER = r"""
import sys
from simclient.local import LocalSimulator
sim = LocalSimulator(port=0, seed=7, bundle_size=50, num_bundles=20, replay_window=1000)
sim.start()
print(sim.url, sim.chain.first_slot, " ".join(sim.program_ids), flush=True)
sys.stdin.read()   # until the test closes our stdin
sim.stop()
"""


class ServerProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=dict(os.environ))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line:
            raise RuntimeError("local simulator process did not start")
        self.url = line[0]
        self.first_slot = int(line[1])
        self.program_ids = line[2:]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def sim_process() -> Iterator[ServerProcess]:
    server = ServerProcess()
    try:
        yield server
    finally:
        server.stop()
