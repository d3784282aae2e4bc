"""Counters a session exposes as ``session.stats`` (plain ints; written by one thread each, read by anyone)."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class ControlStats:
    """Counters of one control connection (shared by the sub-sessions of a parallel run)."""

    reconnects: int = 0
    frames_received: int = 0
    frames_discarded: int = 0  # undecodable / garbage frames, logged and skipped
    v1_minimal_fallbacks: int = 0  # switches to the minimal *SessionV1 form after "duplicate field" (§3.5): 0 or 1
    v1_minimal_resends: int = 0  # requests re-sent in the minimal form at that switch


@dataclass
class SessionStats:
    """What one (sub-)session survived and delivered.

    ``reconnects`` counts control re-attaches plus subscription reconnects; ``replays_dropped`` control frames
    dropped by sequence cursor; ``duplicates_dropped`` subscription notifications dropped by signature / diff key.
    ``reconnecting_attempt``: while a connection of this session is being re-established, the attempt in progress
    (1-based, out of ``ClientConfig.reconnect_attempts``); 0 when nothing is reconnecting. A display hint (the CLI
    progress shows it); with several connections down at once the last writer wins.
    """

    control_reconnects: int = 0
    subscription_reconnects: int = 0
    replays_dropped: int = 0
    duplicates_dropped: int = 0
    events_delivered: int = 0
    continues_resent: int = 0
    frames_discarded: int = 0
    reconnecting_attempt: int = 0
    step_barriers: int = 0  # step-ending events held for the step barrier (ClientConfig.step_barrier)
    step_barrier_seconds: float = 0.0  # total time they were held
    flow_windows: int = 0   # wire continues beyond the user's own (flow control split an advance into windows)
    flow_waits: int = 0     # windows that waited for the consumer to drain the queue
    decompress_failures: int = 0  # compressed frames that did not decode: each one cost a reconnect (§9.4)

    @property
    def reconnects(self) -> int:
        return self.control_reconnects + self.subscription_reconnects

    def as_dict(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reconnects"] = self.reconnects
        return out
