"""simclient.solana_interop: endpoint helpers, the sync and async solana-py clients, and its failure messages."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("solders", reason="needs the 'solana' extra (solders): pip install 'simclient[solana]'")
pytest.importorskip("solana.rpc.async_api", reason="needs the 'solana' extra (solana-py): "
                                                   "pip install 'simclient[solana]'")

from solders.pubkey import Pubkey  # noqa: E402

from simclient import solana_interop  # noqa: E402
from simclient.protocol import AccountData  # noqa: E402

pytestmark = [pytest.mark.solana, pytest.mark.filterwarnings("ignore:Client is deprecated")]


def test_endpoint_helpers() -> None:
    class FakeSession:
        rpc_endpoint = "https://simulator.example/backtest/abc"

    assert solana_interop.http_endpoint(FakeSession()) == FakeSession.rpc_endpoint
    assert solana_interop.websocket_url(FakeSession()) == "wss://simulator.example/backtest/abc"
    assert solana_interop.websocket_url("http://127.0.0.1:8900/backtest/x") == "ws://127.0.0.1:8900/backtest/x"
    with pytest.raises(ValueError, match="rpc_endpoint"):
        solana_interop.http_endpoint("ws://127.0.0.1/backtest/x")
    with pytest.raises(ValueError):
        solana_interop.websocket_url(object())


def test_sync_client_from_a_session_or_url(advanced: Any) -> None:
    pytest.importorskip("solana.rpc.api", reason="solana-py >= 0.40 has no sync Client")
    with solana_interop.solana_client(advanced.session, timeout=5) as by_session, \
            solana_interop.solana_client(advanced.session.rpc_endpoint) as by_url:
        assert by_session.get_slot().value == by_url.get_slot().value == advanced.last_slot


def _connections_to(port: int) -> list:
    import psutil

    return [c for c in psutil.Process().net_connections("inet")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]


def test_sync_client_close_releases_its_connection_at_once(advanced: Any) -> None:
    """solana-py < 0.39 keeps the keep-alive socket of a dropped sync Client until the cyclic GC runs (the cause of
    "sockets still open" on Python 3.9 / solana 0.36): close() and ``with`` release it, and so does closing the
    session for the clients session.solana_client() handed out."""
    pytest.importorskip("solana.rpc.api", reason="solana-py >= 0.40 has no sync Client")
    port = advanced.sim.port
    before = _connections_to(port)   # the session's own control socket
    with solana_interop.solana_client(advanced.session) as client:
        client.get_slot()
        assert len(_connections_to(port)) == len(before) + 1
    assert len(_connections_to(port)) == len(before)
    advanced.session.solana_client().get_slot()
    assert len(_connections_to(port)) == len(before) + 1
    advanced.session.close()
    assert not _connections_to(port)


def test_async_client_reads_the_same_state(advanced: Any) -> None:
    sim, slot = advanced.sim, advanced.last_slot
    address = sim.chain.accounts_of(sim.program_ids[3])[2]

    async def read() -> Any:
        async with solana_interop.async_solana_client(advanced.session) as client:
            return (await client.get_slot()).value, (await client.get_account_info(Pubkey.from_string(address))).value

    got_slot, account = asyncio.run(read())
    assert got_slot == slot
    assert AccountData.from_solders(account) == AccountData.from_ui_account(
        dict(sim.chain.account_at(address, slot + 1), space=None))


def test_account_helpers() -> None:
    data = AccountData(lamports=3, data=b"\x01", owner=str(Pubkey.default()))
    assert solana_interop.account_data(solana_interop.solders_account(data)) == data


def test_clear_error_when_solana_py_has_no_sync_client() -> None:
    """solana-py 0.40 removed solana.rpc.api.Client: say so instead of "install the extra" (which is installed)."""
    code = ("import sys; sys.modules['solana.rpc.api'] = None\n"
            "from simclient import solana_interop\n"
            "try:\n"
            "    solana_interop.solana_client('http://127.0.0.1:1/backtest/x')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "removed it in 0.40" in out.stdout and "async_solana_client" in out.stdout


def test_importing_simclient_imports_neither_solders_nor_solana() -> None:
    code = ("import simclient, simclient.solana_interop, sys\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('solders', 'solana'))\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_websocket_api_reaches_the_session_socket(advanced: Any) -> None:
    """``solana.rpc.websocket_api`` connects to ``websocket_url(session)``; the local simulator serves only the custom
    kinds, so a standard subscription gets a JSON-RPC error that solana-py raises (``SubscriptionError`` from the
    ``connect`` API before 0.40, ``SolanaJsonRpcError`` from ``SolanaWsClient`` since)."""
    websocket_api = pytest.importorskip("solana.rpc.websocket_api")
    url = solana_interop.websocket_url(advanced.session)

    async def slot_subscribe() -> Any:
        if hasattr(websocket_api, "connect"):
            async with websocket_api.connect(url) as ws:
                await ws.slot_subscribe()
                return await asyncio.wait_for(ws.recv(), 5)
        async with websocket_api.SolanaWsClient(url) as client:
            return await asyncio.wait_for(client.slot_subscribe(), 5)

    with pytest.raises(Exception, match="Method not found: slotSubscribe") as info:
        asyncio.run(slot_subscribe())
    assert type(info.value).__module__.startswith("solana.")
