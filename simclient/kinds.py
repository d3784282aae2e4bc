"""Data-plane subscription kinds: one table entry per kind, the single place that says how a kind subscribes, what
its notifications become, and what identifies a notification for deduplication.

A :class:`~simclient.subscriptions.Subscription` worker is the same for every kind (connect, subscribe, stream,
reconnect with ``replayFromSlot``, dedup, end of stream); what differs is only what this table holds. A new kind is
one :class:`SubscriptionKind` registered with :func:`register`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import protocol as wire

__all__ = ["SubscriptionKind", "KINDS", "register", "kind", "TRANSACTIONS", "ACCOUNT_DIFFS", "LOGS", "ACTIONS"]

TRANSACTIONS = "transaction"
ACCOUNT_DIFFS = "accountDiff"
LOGS = "logs"
ACTIONS = "action"


@dataclass(frozen=True)
class SubscriptionKind:
    """How one kind of subscription is made and read.

    ``name`` is the wire prefix (``<name>Subscribe`` / ``<name>Notification``). ``requests(program_ids)`` gives the
    subscribe filters to send on one socket, each with a label for logs. ``convert(result)`` turns a notification's
    ``result`` into an event (raising :class:`~simclient.errors.ProtocolError` for a malformed one). The event's
    ``key_attr`` attribute identifies it within its slot: the server replays the cursor's slot inclusively, so a
    notification of the newest slot whose key was already delivered is a duplicate. ``tag(program_ids)`` names the
    worker thread (``simclient-sub-<session>-<tag>``).
    ``needs_programs``: the kind is filtered by program ids (False for a keyless kind).
    ``bind(program_ids)``, when given, makes the converter of one worker (in place of ``convert``): for a kind
    whose notifications do not say which of the worker's filters they answer (logs).
    ``takes_frame``: ``convert(result, frame)`` is given the notification's bytes too, and may keep them in place of
    decoded fields (:class:`simclient.events._Deferred`).
    ``read_frame``: the worker's reader of the kind's common frame, tried before
    :func:`simclient.protocol.decode_subscription_frame`: ``read_frame(payload)`` gives ``(subscription id, event)``
    for a well-formed notification of the usual shape, None for anything else (which the general path decodes);
    it raises nothing (transactions: :func:`simclient.protocol.read_transaction_frame`).
    """

    name: str
    tag: Callable[[Sequence[str]], str]
    requests: Callable[[Sequence[str]], List[Tuple[Any, str]]]
    convert: Callable[..., Any]  # (result) → event; (result, frame) → event when takes_frame
    key_attr: str
    needs_programs: bool = True
    bind: Optional[Callable[[Sequence[str]], Callable[[Any], Any]]] = None
    takes_frame: bool = False
    read_frame: Optional[Callable[[Any], Optional[Tuple[int, Any]]]] = None


KINDS: Dict[str, SubscriptionKind] = {}


def register(spec: SubscriptionKind) -> SubscriptionKind:
    KINDS[spec.name] = spec
    return spec


def kind(name: str) -> SubscriptionKind:
    """The registered kind ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown subscription kind {name!r} (known: {', '.join(sorted(KINDS))})") from None


register(SubscriptionKind(
    TRANSACTIONS, lambda programs: "tx",
    # one transactionSubscribe names every program (§9.1)
    lambda programs: [(wire.transaction_filter(programs), "programs")],
    wire.transaction_from_result, "signature", takes_frame=True, read_frame=wire.read_transaction_frame))

register(SubscriptionKind(
    ACCOUNT_DIFFS, lambda programs: f"diff-{programs[0][:6]}",
    # §9.2: the filter names one address; the session gives each program its own socket (Subscription refuses more)
    lambda programs: [(wire.account_diff_filter(p), p) for p in programs],
    wire.account_diff_from_result, "key", takes_frame=True))

register(SubscriptionKind(
    LOGS, lambda programs: f"logs-{programs[0][:6]}",
    # standard Solana logsSubscribe: one address in ``mentions`` per request (§9.2.2); the session gives each
    # program its own worker (socket), so a worker's notifications are all about its one program (with several
    # programs on one socket, which the session never does, the events would carry no program_id)
    lambda programs: [(wire.logs_filter(p), p) for p in programs],
    wire.logs_from_result, "signature",
    bind=lambda programs: functools.partial(wire.logs_from_result,
                                            program_id=programs[0] if len(programs) == 1 else None)))

register(SubscriptionKind(
    ACTIONS, lambda programs: "action",
    # keyless (§9.2.1): one actionSubscribe with an empty filter carries every action's results
    lambda programs: [(wire.action_filter(), "actions")],
    wire.action_result_from_result, "key", needs_programs=False))
