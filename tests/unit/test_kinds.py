"""The subscription kind table (simclient.kinds): what a worker accepts."""
from __future__ import annotations

import queue
import threading

import pytest

from simclient.kinds import ACCOUNT_DIFFS, ACTIONS, KINDS, LOGS, TRANSACTIONS, kind
from simclient.stats import SessionStats
from simclient.subscriptions import Subscription
from simclient.testing import fast_config

A, B = "11111111111111111111111111111111", "Vote111111111111111111111111111111111111111"


def _sub(name, programs):
    return Subscription(name, programs, "http://127.0.0.1:1/backtest/s1", queue.SimpleQueue(), fast_config(),
                        threading.Event(), None, "s1", SessionStats())


def test_every_kind_is_registered_and_an_unknown_one_is_named():
    assert {TRANSACTIONS, ACCOUNT_DIFFS, LOGS, ACTIONS} <= set(KINDS)
    with pytest.raises(ValueError, match="unknown subscription kind 'blocks'.*known:"):
        kind("blocks")


@pytest.mark.parametrize("name", [ACCOUNT_DIFFS, LOGS])
def test_a_per_address_kind_takes_one_address_per_socket(name):
    # several subscriptions on one socket would share the worker's resume cursor: a resubscribe replays each from
    # the cursor in turn, and the second replay would be dropped as out of order
    with pytest.raises(ValueError, match="one address per socket, got 2"):
        _sub(name, [A, B])
    assert _sub(name, [A]).program_ids == [A]


def test_transactions_take_many_programs_in_one_request_and_actions_none():
    assert _sub(TRANSACTIONS, [A, B]).program_ids == [A, B]
    assert _sub(ACTIONS, []).program_ids == []
    with pytest.raises(ValueError, match="at least one program"):
        _sub(TRANSACTIONS, [])
