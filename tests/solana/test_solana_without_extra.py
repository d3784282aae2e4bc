"""The interop surface that must behave without the ``solana`` extra (these run in CI, where it is absent)."""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from simclient import Continue
from simclient import events as ev
from simclient.protocol import AccountData

pytestmark = pytest.mark.solana

KEY = "TokenkegQfeZyiNwAJbNbGKPFXCWuWvf9ss623VQ5DA"


def _fake_solders(module: str, name: str, payload: bytes = b"\x01" * 64) -> object:
    """An object that looks like a solders class to the duck typing (module + class name), with bytes()."""
    cls = type(name, (), {"__module__": module, "__bytes__": lambda self: payload})
    return cls()


@pytest.mark.parametrize("module,name", [("solders.keypair", "Keypair"), ("solders.pubkey", "Pubkey"),
                                         ("solders.hash", "Hash"), ("solders.message", "MessageV0")])
def test_only_solders_transactions_are_serialised(module: str, name: str) -> None:
    with pytest.raises(ValueError, match="must be a solders Transaction/VersionedTransaction"):
        Continue().push_transaction(_fake_solders(module, name))


@pytest.mark.parametrize("name", ["Transaction", "VersionedTransaction"])
def test_solders_transactions_are_serialised_by_bytes(name: str) -> None:
    raw = b"\x01" + b"\x02" * 70
    cont = Continue().push_transaction(_fake_solders("solders.transaction", name, raw))
    assert cont.transactions == [base64.b64encode(raw).decode()]


def test_modify_account_refuses_non_account_objects() -> None:
    with pytest.raises(ValueError, match="AccountData or a solders Account"):
        Continue().modify_account(KEY, _fake_solders("solders.pubkey", "Pubkey"))
    with pytest.raises(ValueError, match="expected a solders Account"):
        AccountData.from_solders(object())


def test_json_parsed_ui_account_is_a_clear_error_not_empty_data() -> None:
    ui = {"lamports": 1, "owner": KEY, "executable": False, "rentEpoch": 0, "space": 165,
          "data": {"program": "spl-token", "parsed": {"type": "account"}, "space": 165}}
    with pytest.raises(ValueError, match="jsonParsed .*encoding 'base64'"):
        ev.AccountDiff(1, KEY, None, post=ui).post_account()


def test_solana_client_without_the_extra_names_the_extra() -> None:
    code = ("import sys\n"
            "sys.modules['solana'] = None; sys.modules['solders'] = None\n"
            "from simclient import solana_interop, events as ev\n"
            "assert ev.AccountDiff(1, 'a', None).account_pubkey == 'a'\n"
            "try:\n"
            "    solana_interop.solana_client('http://127.0.0.1:1/backtest/x')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'simclient[solana]'" in out.stdout
