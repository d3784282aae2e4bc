"""The error contract (issue 16, requests-style): every raised type is public, typed and catchable by builtin."""
from __future__ import annotations

import builtins

import simclient
from simclient import errors


def test_every_error_type_is_exported_from_simclient_and_is_a_simclient_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert getattr(simclient, name) is cls, f"simclient.{name} is not exported"
        assert name in simclient.__all__
        assert issubclass(cls, errors.SimclientError)


def test_builtin_bases_let_callers_catch_without_importing_simclient() -> None:
    assert issubclass(errors.Timeout, builtins.TimeoutError)
    assert issubclass(errors.HttpConnectionError, builtins.ConnectionError)
    assert issubclass(errors.TlsVerificationError, builtins.ConnectionError)
    assert issubclass(errors.BadUrlError, builtins.ValueError)


def test_http_connection_error_is_still_an_http_status_error_with_status_0() -> None:
    exc = errors.HttpConnectionError("http://127.0.0.1:1/backtest/s", "ConnectionError: refused")
    assert isinstance(exc, errors.HttpStatusError) and exc.status == 0 and exc.body == "ConnectionError: refused"
    assert str(exc) == "http://127.0.0.1:1/backtest/s: ConnectionError: refused"
    assert exc.url == "http://127.0.0.1:1/backtest/s"
