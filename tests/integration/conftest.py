"""Integration fixtures: run a test against the readings of the protocol's open points (issue 11).

``dialect`` covers every preset of :data:`simclient.local.DIALECTS`; ``dialect_subset`` covers a representative
subset (each reading of each open point at least once: nested + snake_case id + ``result: null`` end of stream,
flattened + camelCase id + ``subscriptionComplete``, serde alias), for the slower fault tests. The default dialect
(``evidenced``) is what every other test runs against.
"""
from __future__ import annotations

import pytest

from simclient.local import DIALECTS

#: Each reading of every open point at least once (see the module docstring).
REPRESENTATIVE = ("nested-snake", "flattened-camel", "strict")


@pytest.fixture(params=list(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    """A simulator dialect name; pass it as ``LocalSimulator(dialect=...)``."""
    return request.param


@pytest.fixture(params=REPRESENTATIVE)
def dialect_subset(request: pytest.FixtureRequest) -> str:
    return request.param
