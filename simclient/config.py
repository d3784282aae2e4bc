"""ClientConfig: every timeout, interval and retry budget in one documented place.

Defaults follow PROTOCOL.md §10 (and RUST_CLIENT.md §3 where the Rust values are visible). All durations are
seconds (floats). Tests shrink them; production code should rarely need to.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

#: Fields that are switches, not durations or counts.
_BOOL_FIELDS = frozenset({"step_barrier", "log_frames"})


@dataclass(frozen=True)
class ClientConfig:
    """Timeouts, keepalive and reconnect policy of a :class:`simclient.Client`.

    Attributes:
        connect_timeout: TCP + TLS + WebSocket upgrade of one connection (Rust ``CONNECT_TIMEOUT``: 30 s).
        send_timeout: longest time one write on a WebSocket may make no progress (a server that stopped reading)
            before the send fails; its own deadline, independent of the reader's short poll, so a large continue
            to a server that is busy for a moment goes through. A create that cannot be written in time fails at
            once; a continue aborts the connection and is re-sent after the re-attach (PROTOCOL §7.1).
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
        reconnect_attempts: failed attempts per outage before :class:`ConnectionLostError` (the reconnect budget).
            An attempt fails when it cannot connect, or when its connection ends before delivering anything new
            (a server that answers the handshake and drops at once spends the budget); a connection that delivered
            new data ends the outage and resets the budget and the backoff.
        reconnect_uptime_reset: a connection that stays up this long also ends the outage, and the first retry
            after it is immediate (every other reconnect waits ``backoff_delay``).
        reconnect_max_total: an outage gives up with :class:`ConnectionLostError` once this many seconds passed
            since it began, whatever budget is left (the Rust client's ``RECONNECT_MAX_TOTAL``, PROTOCOL §10;
            the 10-attempt default backoff alone sums to ~2.5 min plus connect times). ``0`` disables it.
        completion_drain_timeout: after ``completed``, how long connected subscriptions may go without an event
            before :class:`CompletionDrainStalled` if they have not reached end-of-stream (the seed's 60 s liveness
            backstop). Time a subscription spends reconnecting does not count: its reconnect budget bounds it.
        eos_silence: PROTOCOL §9.5: while a subscription is connected and ``completed`` has arrived, this long
            without a notification counts as its end-of-stream.
        close_timeout: graceful close (close request + close frame) and joining every thread.
        rpc_timeout: one HTTP JSON-RPC request on the per-session endpoint.
        http_retries: attempts for idempotent HTTP reads (``available_ranges``) on connection errors / 5xx.
        ca_bundle: path of a PEM file of CA certificates to verify ``wss://`` and ``https://`` servers against
            instead of the default store (WebSocket: the system's, or ``SSL_CERT_FILE``; HTTP: certifi's, or
            ``REQUESTS_CA_BUNDLE``). For a server whose certificate a private CA signed. Verification stays on.
        step_barrier: in-order steps (a bool, on by default): a ``ReadyForContinue`` / ``Paused`` is delivered only
            after every subscription of the session has read the notifications the server wrote before it (a ping
            on each subscription socket whose pong proves it; PROTOCOL §9 "Ordering across sockets"). Off, a step's
            notifications may be delivered after the event that ended the step (costs one ping round trip per
            step and subscription when on; see docs/performance.md).
        max_buffered_events: flow control (:mod:`simclient.flow`): a ``continue`` of many slots is sent in windows
            sized so that about ``max_buffered_events - low_water`` events arrive per window, and the next window
            goes out only once the consumer reached the previous one's end and at most
            ``buffered_events_low_water`` events are queued. Bounds a slow consumer's memory per (sub-)session;
            the windows' ReadyForContinue events are hidden. 0: off (one wire continue per ``send_continue``).
        buffered_events_low_water: see ``max_buffered_events``; 0 means half of it.
        log_frames: raw-frame debugging (a bool, off by default; the Rust client's ``log_raw``): every frame sent
            and received on the control socket and on every subscription socket is logged at DEBUG on the logger
            ``simclient.frames``, the API key masked (text in full up to 4096 characters, binary as its length and
            a hex prefix; see :mod:`simclient.framelog`). Off, no connection is wrapped: it costs nothing.
        compression: the data-plane compression every ``subscribe_*`` asks for unless it passes its own
            ``compression=`` (PROTOCOL §9.4): None (plain Text frames, the default) or ``"zstd"`` (Binary frames
            from one streaming compressor per connection; needs ``pip install 'simclient[zstd]'``, checked when a
            subscription is made). Fewer bytes on the wire, more client CPU per notification: see
            docs/performance.md (zstd) and :mod:`simclient.compression`.
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
    send_timeout: float = 30.0
    ca_bundle: Optional[str] = None
    step_barrier: bool = True
    max_buffered_events: int = 5000
    buffered_events_low_water: int = 0
    reconnect_max_total: float = 600.0  # last: positional construction of the older fields keeps working
    log_frames: bool = False
    compression: Optional[str] = None  # keyword only in practice (after reconnect_max_total)

    def __post_init__(self) -> None:
        if self.ca_bundle is not None and not isinstance(self.ca_bundle, (str, os.PathLike)):
            raise ValueError(f"ClientConfig.ca_bundle must be a path or None, got {self.ca_bundle!r}")
        if self.compression is not None:
            from .compression import check_compression  # (no zstandard import: that waits for a subscription)

            object.__setattr__(self, "compression", check_compression(self.compression, "ClientConfig.compression"))
        for f in fields(self):
            if f.name in ("ca_bundle", "compression"):
                continue
            value = getattr(self, f.name)
            if f.name in _BOOL_FIELDS:
                if not isinstance(value, bool):
                    raise ValueError(f"ClientConfig.{f.name} must be a bool, got {value!r}")
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:  # NaN too
                raise ValueError(f"ClientConfig.{f.name} must be a non-negative number, got {value!r}")
        if self.reconnect_attempts < 1:
            raise ValueError("ClientConfig.reconnect_attempts must be >= 1")
        if self.backoff_multiplier < 1:
            raise ValueError("ClientConfig.backoff_multiplier must be >= 1")
        if self.send_timeout <= 0:
            raise ValueError("ClientConfig.send_timeout must be > 0")
        if self.max_buffered_events and self.buffered_events_low_water >= self.max_buffered_events:
            raise ValueError("ClientConfig.buffered_events_low_water must be below max_buffered_events")
        if self.keepalive_interval <= 0 or self.keepalive_deadline <= 0:
            raise ValueError("ClientConfig.keepalive_interval and keepalive_deadline must be > 0")

    def backoff_delay(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt + 1`` (1-based ``attempt``): ``backoff_initial`` ×
        ``backoff_multiplier`` per attempt, capped at ``backoff_max``, then ± ``backoff_jitter`` at random."""
        exponent = min(max(0, attempt - 1), 64)  # growth past 2**64 is capped anyway (and a float power overflows)
        base = min(self.backoff_max, self.backoff_initial * (self.backoff_multiplier ** exponent))
        return max(0.0, base * random.uniform(1 - self.backoff_jitter, 1 + self.backoff_jitter))

    def with_(self, **changes: Any) -> "ClientConfig":
        """A copy with some fields changed: ``config.with_(reconnect_attempts=3)``."""
        return replace(self, **changes)
