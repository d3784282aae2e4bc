"""ClientConfig: every timeout, interval and retry budget in one documented place.

Defaults follow PROTOCOL.md §10 (and RUST_CLIENT.md §3 where the Rust values are visible). All durations are
seconds (floats). Tests shrink them; production code should rarely need to.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ClientConfig:
    """Timeouts, keepalive and reconnect policy of a :class:`simclient.Client`.

    Attributes:
        connect_timeout: TCP + TLS + WebSocket upgrade of one connection (Rust ``CONNECT_TIMEOUT``: 30 s).
        create_timeout: longest wait for each reply while creating a session; bundle preparation and capacity
            waits can take minutes (PROTOCOL §10 advises ≥ 600 s; the seed's parallel create waits 900 s/read).
        handshake_timeout: one reply during attach / resume / a subscribe ack (management parks subscribe
            upgrades ~100 s on cold runtimes, so this is generous).
        keepalive_interval: a WebSocket ping every this often (``KEEPALIVE_INTERVAL``: 15 s).
        keepalive_deadline: a connection with no inbound traffic for this long is dead (``KEEPALIVE_MISS_DEADLINE``).
        backoff_initial: first reconnect delay; doubles each attempt (``backoff_multiplier``).
        backoff_multiplier: growth factor of the reconnect delay.
        backoff_max: cap of one reconnect delay (``RECONNECT_MAX_BACKOFF``).
        backoff_jitter: random fraction (±) applied to each delay.
        reconnect_attempts: attempts per outage before :class:`ConnectionLostError` (the reconnect budget).
        reconnect_uptime_reset: a connection that stays up this long resets the attempt counter.
        completion_drain_timeout: after ``completed``, how long subscriptions may take to reach end-of-stream
            before :class:`CompletionDrainStalled` (the seed's 60 s liveness backstop).
        eos_silence: PROTOCOL §9.5: while a subscription is connected and ``completed`` has arrived, this long
            without a notification counts as its end-of-stream.
        close_timeout: graceful close (close request + close frame) and joining every thread.
        rpc_timeout: one HTTP JSON-RPC request on the per-session endpoint.
        http_retries: attempts for idempotent HTTP reads (``available_ranges``) on connection errors / 5xx.
        max_buffered_events: flow control (:mod:`simclient.flow`): a ``continue`` of many slots is sent in windows
            sized so that about ``max_buffered_events - low_water`` events arrive per window, and the next window
            goes out only once the consumer reached the previous one's end and at most
            ``buffered_events_low_water`` events are queued. Bounds a slow consumer's memory per (sub-)session;
            the windows' ReadyForContinue events are hidden. 0: off (one wire continue per ``send_continue``).
        buffered_events_low_water: see ``max_buffered_events``; 0 means half of it.
    """

    connect_timeout: float = 30.0
    create_timeout: float = 600.0
    handshake_timeout: float = 120.0
    keepalive_interval: float = 15.0
    keepalive_deadline: float = 45.0
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0
    backoff_jitter: float = 0.2
    reconnect_attempts: int = 10
    reconnect_uptime_reset: float = 60.0
    completion_drain_timeout: float = 60.0
    eos_silence: float = 1.0
    close_timeout: float = 10.0
    rpc_timeout: float = 30.0
    http_retries: int = 3
    max_buffered_events: int = 5000
    buffered_events_low_water: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:  # NaN too
                raise ValueError(f"ClientConfig.{f.name} must be a non-negative number, got {value!r}")
        if self.reconnect_attempts < 1:
            raise ValueError("ClientConfig.reconnect_attempts must be >= 1")
        if self.backoff_multiplier < 1:
            raise ValueError("ClientConfig.backoff_multiplier must be >= 1")
        if self.max_buffered_events and self.buffered_events_low_water >= self.max_buffered_events:
            raise ValueError("ClientConfig.buffered_events_low_water must be below max_buffered_events")
        if self.keepalive_interval <= 0 or self.keepalive_deadline <= 0:
            raise ValueError("ClientConfig.keepalive_interval and keepalive_deadline must be > 0")

    def backoff_delay(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt + 1`` (1-based ``attempt``): ``backoff_initial`` ×
        ``backoff_multiplier`` per attempt, capped at ``backoff_max``, then ± ``backoff_jitter`` at random."""
        base = min(self.backoff_max, self.backoff_initial * (self.backoff_multiplier ** max(0, attempt - 1)))
        return max(0.0, base * random.uniform(1 - self.backoff_jitter, 1 + self.backoff_jitter))

    def with_(self, **changes: Any) -> "ClientConfig":
        """A copy with some fields changed: ``config.with_(reconnect_attempts=3)``."""
        return replace(self, **changes)
