"""Dialects: the readings of the protocol's open points the local simulator can speak (PROTOCOL §1.3, §3.5, §9.5).

The public sources leave a few points open; a server could read each of them more than one way, and the SDK must
work against all of them. A :class:`Dialect` fixes one reading per point:

* ``v1_params``: how a ``continueSessionV1`` / ``continueToSessionV1`` carries its params. ``"nested"`` reads only
  ``request``; ``"flattened"`` reads them beside the id and ignores a nested ``request`` (what serde ``flatten``
  does: a request sent nested only then runs a default continue, one slot and no transactions); ``"any"`` accepts
  nested under ``request`` or ``params`` or flattened (rule L3).
* ``v1_id``: which casing of the id it reads: ``"session_id"``, ``"sessionId"`` (the other is an unknown key,
  ignored), or ``"any"``.
* ``aliases``: a serde ``alias`` for the other casing: either is read, but a request carrying both is answered with
  ``invalidRequest`` "duplicate field `session_id`" (bare, as the request cannot be routed).
* ``eos``: end of a subscription's stream: ``"subscriptionComplete"`` (the evidenced name) or ``"null"`` (a
  notification whose ``result`` is null, as older stand-ins did); then a close 1000 either way.
* ``ranges``: ``GET /available-ranges`` keys in ``"camel"`` (the docs listing) or ``"snake"`` (the Rust field names).
* ``actions``: ``actionNotification`` results (§9.2.1, casing [I]) in ``"camel"``, ``"snake"``, or ``"outcomes"``
  (snake_case with the older ``transaction_outcomes[].err`` in place of ``err``).
* ``zstd_ack`` / ``zstd_eos`` (§9.4, only for a subscription that asked for ``"compression":"zstd"``): its subscribe
  ack as ``"text"`` (the default, §9.4's reading) or ``"zstd"`` (a Binary frame of the socket's compressed stream);
  its end-of-stream marker as ``"zstd"`` (the default) or ``"text"``. See :mod:`simclient.local.zstd`.

:data:`DIALECTS` names the presets; together they cover every reading of every point at least once. ``evidenced``
is the default: what the public sources show, lenient where they are silent.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Tuple, Union

from . import wire

__all__ = ["Dialect", "DIALECTS", "DEFAULT_DIALECT", "resolve_dialect", "render_ranges"]

_V1_PARAMS = ("any", "nested", "flattened")
_V1_ID = ("any", "session_id", "sessionId")
_EOS = ("subscriptionComplete", "null")
_RANGES = ("camel", "snake")
_ACTIONS = ("camel", "snake", "outcomes")
_ZSTD_FRAME = ("text", "zstd")
_ID_KEYS = ("session_id", "sessionId")


@dataclass(frozen=True)
class Dialect:
    """One reading of every open point (see the module docstring)."""

    name: str = "custom"
    v1_params: str = "any"
    v1_id: str = "any"
    aliases: bool = False
    eos: str = "subscriptionComplete"
    ranges: str = "camel"
    actions: str = "camel"
    zstd_ack: str = "text"
    zstd_eos: str = "zstd"

    def __post_init__(self) -> None:
        for attr, allowed in (("v1_params", _V1_PARAMS), ("v1_id", _V1_ID), ("eos", _EOS), ("ranges", _RANGES),
                              ("actions", _ACTIONS), ("zstd_ack", _ZSTD_FRAME), ("zstd_eos", _ZSTD_FRAME)):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"Dialect.{attr} must be one of {allowed}, got {getattr(self, attr)!r}")

    def with_(self, **changes: Any) -> "Dialect":
        return replace(self, **changes)

    # ------------------------------------------------------------------ *SessionV1 reading (§3.5)
    def split_v1(self, params: Any, what: str) -> Tuple[str, Any]:
        """(session id, inner params) of a ``*SessionV1`` request under this reading; RequestError otherwise."""
        if self.v1_params == "any" and self.v1_id == "any" and not self.aliases:
            return wire.split_v1(params, what)
        p = params if isinstance(params, dict) else {}
        if params is not None and not isinstance(params, dict):
            raise wire.invalid(f"invalid type for the params of `{what}`: expected an object")
        present = [k for k in _ID_KEYS if k in p]
        if self.aliases:
            if len(present) > 1:
                raise wire.invalid("duplicate field `session_id`")
            keys: Tuple[str, ...] = _ID_KEYS
        elif self.v1_id == "any":
            keys = tuple(k for k in p if isinstance(k, str) and k.replace("_", "").lower() == "sessionid")
        else:
            keys = (self.v1_id,)
        sid = next((p[k] for k in keys if k in p), None)
        if not isinstance(sid, str):
            raise wire.invalid(f"missing field `{keys[0] if len(keys) == 1 else 'session_id'}` in `{what}`")
        if what == "closeSessionV1":
            return sid, None
        if self.v1_params == "nested":
            if "request" not in p:
                raise wire.invalid(f"missing field `request` in `{what}`")
            return sid, p["request"]
        if self.v1_params == "flattened":
            # serde flatten: every key but the id goes to the inner struct, which ignores unknown ones
            # (a nested ``request`` included)
            return sid, {k: v for k, v in p.items() if k not in keys and k != "request"}
        return sid, wire.split_v1({**{k: v for k, v in p.items() if k not in _ID_KEYS}, "sessionId": sid}, what)[1]

    # ------------------------------------------------------------------ data-plane end of stream (§9.5)
    def end_text(self, kind: str, sub_id: int) -> str:
        if self.eos == "null":
            return '{"jsonrpc":"2.0","method":"%sNotification","params":{"subscription":%d,"result":null}}' % (
                kind, sub_id)
        return complete_text(sub_id)


def complete_text(sub_id: int) -> str:
    """A ``subscriptionComplete`` for ``sub_id`` (the stand-in's shape of §9.5)."""
    return '{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":%d}}' % sub_id


_CAMEL = {"bundle_start_slot": "bundleStartSlot", "bundle_start_slot_utc": "bundleStartSlotUtc",
          "max_bundle_end_slot": "maxBundleEndSlot", "max_bundle_end_slot_utc": "maxBundleEndSlotUtc",
          "max_bundle_size": "maxBundleSize", "snapshot_slot": "snapshotSlot", "snapshot_slot_utc": "snapshotSlotUtc"}
_OPTIONAL_ABSENT = ("snapshot_slot", "snapshot_slot_utc")  # left out when there is none, as the docs listing does


def render_ranges(ranges: List[Dict[str, Any]], dialect: "Dialect") -> List[Dict[str, Any]]:
    """The chain's canonical (snake_case) ranges as this dialect sends them."""
    out = []
    for r in ranges:
        item = {k: v for k, v in r.items() if not (k in _OPTIONAL_ABSENT and v is None)}
        if dialect.ranges == "camel":
            item = {_CAMEL.get(k, k): v for k, v in item.items()}
        out.append(item)
    return out


DIALECTS: Dict[str, Dialect] = {d.name: d for d in (
    Dialect("evidenced"),
    Dialect("nested-snake", v1_params="nested", v1_id="session_id", eos="null", ranges="snake", actions="snake"),
    Dialect("nested-camel", v1_params="nested", v1_id="sessionId", ranges="snake"),
    Dialect("flattened-snake", v1_params="flattened", v1_id="session_id", eos="null", actions="outcomes"),
    Dialect("flattened-camel", v1_params="flattened", v1_id="sessionId"),
    Dialect("strict", v1_params="nested", aliases=True),
)}
DEFAULT_DIALECT = DIALECTS["evidenced"]


def resolve_dialect(dialect: Union[None, str, Dialect]) -> Dialect:
    """A :class:`Dialect` from a preset name (or a Dialect, or None for the default)."""
    if dialect is None:
        return DEFAULT_DIALECT
    if isinstance(dialect, Dialect):
        return dialect
    if isinstance(dialect, str) and dialect in DIALECTS:
        return DIALECTS[dialect]
    raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
