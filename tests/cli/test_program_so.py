"""``simclient run --program-id ID --program-so FILE``: the program override reaches every (sub-)session."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from simclient.programs import PROGRAMDATA_METADATA_SIZE, parse_upgradeable_state

from .helpers import cli

ELF = b"\x7fELF" + b"\x42" * 500


@pytest.mark.parametrize("parallel", [False, True])
def test_program_so_overrides_the_program_in_every_session(sim, tmp_path, parallel):
    so = tmp_path / "prog.so"
    so.write_bytes(ELF)
    out = tmp_path / "run.json"
    pid = sim.program_ids[2]
    pda = sim.chain.programdata_address(pid)
    args = ["run", "--start-slot", str(sim.first_slot + 50), "--slot-count", "99", "--program-id", pid,
            "--program-so", str(so), "-o", str(out), "--progress", "none"] + (["--parallel"] if parallel else [])
    r = cli(sim, *args)
    assert r.returncode == 0, r.stderr
    meta = json.loads(out.read_text())["metadata"]
    assert meta["program_so"] == {"path": str(so), "bytes": len(ELF), "sha256": hashlib.sha256(ELF).hexdigest(),
                                  "program_id": pid}
    assert len(meta["session_ids"]) == (2 if parallel else 1)
    for sid in meta["session_ids"]:
        # what the session's getAccountInfo serves (SimSession.account is the RPC's source; RPC itself stops
        # serving once a session completed)
        acct = sim.session(sid).account(pda)
        state = parse_upgradeable_state(base64.b64decode(acct["data"][0]))
        assert state["elf"] == ELF and len(base64.b64decode(acct["data"][0])) == PROGRAMDATA_METADATA_SIZE + len(ELF)
        program = parse_upgradeable_state(base64.b64decode(sim.session(sid).account(pid)["data"][0]))
        assert program == {"state": "program", "programdata_address": pda}


def test_program_so_errors(sim, tmp_path):
    so = tmp_path / "prog.so"
    so.write_bytes(b"MZ not an elf")
    base = ["run", "--start-slot", str(sim.first_slot), "--slot-count", "5", "--progress", "none"]
    r = cli(sim, *base, "--program-id", sim.program_ids[0], "--program-so", str(so))
    assert r.returncode != 0 and "ELF magic" in r.stderr
    r = cli(sim, *base, "--program-id", ",".join(sim.program_ids[:2]), "--program-so", str(so))
    assert r.returncode != 0 and "exactly one --program-id" in r.stderr
    r = cli(sim, *base, "--program-id", sim.program_ids[0], "--program-so", str(tmp_path / "missing.so"))
    assert r.returncode != 0 and "missing.so" in r.stderr
