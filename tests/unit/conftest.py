"""Shared fixtures of the wire-protocol unit tests."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from simclient import protocol

_BACKENDS = ["json"] + (["orjson"] if protocol._orjson is not None else []) + (
    ["orjson-only"] if protocol._orjson is not None and protocol._decode_transaction is not None else [])


@pytest.fixture(params=_BACKENDS)
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per JSON backend: the stdlib one and, when installed, orjson (extra ``fast``; with
    msgspec, also installed by ``fast``, reading transaction notifications) and orjson alone.

    ``protocol.loads``/``dumps`` and ``read_transaction_frame`` pick the backend at call time, so patching the
    module globals is enough."""
    if request.param == "json":
        monkeypatch.setattr(protocol, "_orjson", None)
    if request.param in ("json", "orjson-only"):
        monkeypatch.setattr(protocol, "_decode_transaction", None)
    return request.param


def _assert_fields(actual: Any, expected: Any, path: str = "value") -> None:
    """Assert ``actual`` has exactly ``expected``'s type and, recursively, every dataclass field equal.

    Unlike ``==`` this also checks fields declared ``compare=False`` and names the first differing field."""
    assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    if dataclasses.is_dataclass(expected):
        for f in dataclasses.fields(expected):
            _assert_fields(getattr(actual, f.name), getattr(expected, f.name), f"{path}.{f.name}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_fields(a, e, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            _assert_fields(actual[k], expected[k], f"{path}[{k!r}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.fixture
def assert_fields():
    """The field-by-field comparison above, as a fixture (works under every pytest import mode)."""
    return _assert_fields
