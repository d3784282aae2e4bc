"""URL normalisation, PROTOCOL.md §1.1."""
from __future__ import annotations

import pytest

from simclient import urls

BACKTEST_WS_URL = [
    # bare host → wss://host/backtest
    ("simulator.termina.technology", "wss://simulator.termina.technology/backtest"),
    ("staging.simulator.termina.technology", "wss://staging.simulator.termina.technology/backtest"),
    ("localhost:8900", "wss://localhost:8900/backtest"),
    ("simulator.termina.technology/", "wss://simulator.termina.technology/backtest"),
    ("  simulator.termina.technology \n", "wss://simulator.termina.technology/backtest"),
    # explicit ws:// / wss:// keep their scheme
    ("ws://localhost:8900", "ws://localhost:8900/backtest"),
    ("ws://localhost:8900/", "ws://localhost:8900/backtest"),
    ("ws://localhost:8900/backtest", "ws://localhost:8900/backtest"),
    ("ws://localhost:8900/backtest/", "ws://localhost:8900/backtest"),
    ("wss://simulator.termina.technology", "wss://simulator.termina.technology/backtest"),
    ("wss://simulator.termina.technology/backtest", "wss://simulator.termina.technology/backtest"),
    ("wss://h:443/backtest//", "wss://h:443/backtest"),
    ("wss://h/prefix", "wss://h/prefix/backtest"),
    ("wss://h/prefix/backtest", "wss://h/prefix/backtest"),
    # other schemes pass through untouched
    ("http://localhost:8900", "http://localhost:8900"),
    ("https://h/x/", "https://h/x/"),
    ("ftp://h", "ftp://h"),
]


@pytest.mark.parametrize("given,expected", BACKTEST_WS_URL)
def test_backtest_ws_url(given, expected):
    assert urls.backtest_ws_url(given) == expected


@pytest.mark.parametrize("given", [g for g, _ in BACKTEST_WS_URL])
def test_backtest_ws_url_is_idempotent(given):
    once = urls.backtest_ws_url(given)
    assert urls.backtest_ws_url(once) == once
    assert urls.backtest_ws_url(urls.backtest_ws_url(once)) == once


HTTP_BASE = [
    ("wss://h:443/backtest", "https://h:443"),
    ("wss://simulator.termina.technology/backtest", "https://simulator.termina.technology"),
    ("ws://localhost:8900/backtest", "http://localhost:8900"),
    ("ws://127.0.0.1:8900", "http://127.0.0.1:8900"),
    ("wss://h/a/b/c", "https://h"),
]


@pytest.mark.parametrize("given,expected", HTTP_BASE)
def test_http_base_from_ws_url(given, expected):
    assert urls.http_base_from_ws_url(given) == expected


@pytest.mark.parametrize("bad", ["https://h/backtest", "http://h", "ftp://h", "simulator.termina.technology", ""])
def test_http_base_from_ws_url_rejects_other_schemes(bad):
    with pytest.raises(ValueError, match="ws"):
        urls.http_base_from_ws_url(bad)


HTTP_TO_WS = [
    ("https://h:443/backtest/abc", "wss://h:443/backtest/abc"),
    ("http://127.0.0.1:8900/backtest/abc", "ws://127.0.0.1:8900/backtest/abc"),
    ("https://h", "wss://h"),
]


@pytest.mark.parametrize("given,expected", HTTP_TO_WS)
def test_http_to_ws_url(given, expected):
    assert urls.http_to_ws_url(given) == expected


@pytest.mark.parametrize("bad", ["wss://h/backtest", "ws://h", "h/backtest/abc", "ftp://h", ""])
def test_http_to_ws_url_rejects_other_schemes(bad):
    with pytest.raises(ValueError, match="http"):
        urls.http_to_ws_url(bad)


@pytest.mark.parametrize("ws,http_base", HTTP_BASE[:4])
def test_http_base_and_http_to_ws_are_inverse_on_the_host(ws, http_base):
    assert urls.http_to_ws_url(http_base) == ws.split("/backtest")[0]


RESOLVE = [
    # paths: https unless the control URL is ws://
    ("wss://h:443/backtest", "/backtest/6f0c", "https://h:443/backtest/6f0c"),
    ("wss://simulator.termina.technology/backtest", "/backtest/s-A", "https://simulator.termina.technology/backtest/s-A"),
    ("ws://localhost:8900/backtest", "/backtest/s-A", "http://localhost:8900/backtest/s-A"),
    ("ws://localhost:8900/backtest", "backtest/s-A", "http://localhost:8900/backtest/s-A"),
    ("wss://h/backtest", "//backtest/x", "https://h/backtest/x"),
    # absolute endpoints are used as is
    ("wss://h/backtest", "https://other.example/backtest/x", "https://other.example/backtest/x"),
    ("wss://h/backtest", "http://10.0.0.5:9000/backtest/x", "http://10.0.0.5:9000/backtest/x"),
    ("ws://localhost:8900/backtest", "https://remote/backtest/x", "https://remote/backtest/x"),
]


@pytest.mark.parametrize("control,endpoint,expected", RESOLVE)
def test_resolve_rpc_endpoint(control, endpoint, expected):
    assert urls.resolve_rpc_endpoint(control, endpoint) == expected


@pytest.mark.parametrize("control,endpoint,expected_ws", [
    ("wss://h:443/backtest", "/backtest/abc", "wss://h:443/backtest/abc"),
    ("ws://localhost:8900/backtest", "/backtest/abc", "ws://localhost:8900/backtest/abc"),
])
def test_subscription_url_is_http_to_ws_of_the_resolved_endpoint(control, endpoint, expected_ws):
    assert urls.http_to_ws_url(urls.resolve_rpc_endpoint(control, endpoint)) == expected_ws
