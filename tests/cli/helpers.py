"""Helpers for running the CLI as a subprocess against a simulator in the test process."""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(sim: Any, *args: str, timeout: float = 60.0, env: Optional[Dict[str, str]] = None
        ) -> subprocess.CompletedProcess:
    """``python -m simclient.cli --url sim.url --api-key sim.api_key ARGS`` (``sim`` None: no target options)."""
    target = ["--url", sim.url, "--api-key", sim.api_key] if sim is not None else []
    return subprocess.run([sys.executable, "-m", "simclient.cli", *target, *args], capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env(), cwd=REPO)


def popen_cli(sim: Any, *args: str) -> subprocess.Popen:
    target = ["--url", sim.url, "--api-key", sim.api_key] if sim is not None else []
    return subprocess.Popen([sys.executable, "-m", "simclient.cli", *target, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(), cwd=REPO)


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float) -> Tuple[Optional[re.Match], List[str]]:
    """Read the process's stderr (raw, unbuffered) until a line matches ``pattern``, EOF or ``timeout``."""
    regex = re.compile(pattern)
    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    lines: List[str] = []
    pending = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                m = regex.search(line)
                if m:
                    return m, lines
    return None, lines


def signatures(doc: Dict[str, Any]) -> List[str]:
    return [t["signature"] for t in doc["transactions"]]


def truth_signatures(chain: Any, start: int, end: int, programs: List[str]) -> List[str]:
    return [t["transaction"]["signatures"][0] for t in chain.transactions(start, end, programs)]
