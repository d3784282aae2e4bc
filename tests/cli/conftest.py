from __future__ import annotations

from typing import Iterator

import pytest

from simclient.local import LocalSimulator


@pytest.fixture
def sim() -> Iterator[LocalSimulator]:
    with LocalSimulator(port=0) as s:
        yield s
