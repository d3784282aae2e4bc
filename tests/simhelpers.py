"""Shared helpers for integration tests against the local simulator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from simclient import events as ev


@dataclass
class Captured:
    """Everything one (sub-)session delivered, split by source so that order can be compared per source."""

    control: List[Any] = field(default_factory=list)
    transactions: List[ev.Transaction] = field(default_factory=list)
    diffs: List[ev.AccountDiff] = field(default_factory=list)
    completed: Optional[ev.Completed] = None
    all: List[Any] = field(default_factory=list)

    def add(self, event: Any) -> None:
        self.all.append(event)
        if isinstance(event, ev.Transaction):
            self.transactions.append(event)
        elif isinstance(event, ev.AccountDiff):
            self.diffs.append(event)
        else:
            self.control.append(event)
            if isinstance(event, ev.Completed):
                self.completed = event

    @property
    def signatures(self) -> List[str]:
        return [t.signature for t in self.transactions]

    def diff_keys(self) -> List[Tuple[int, str, Optional[str]]]:
        return sorted(d.key for d in self.diffs)

    def control_signature(self) -> List[Any]:
        """Control events without non-deterministic ServerErrors."""
        return [e for e in self.control if not isinstance(e, ev.ServerError)]


def drive(session: Any, advance_count: int, timeout: float = 15.0) -> Captured:
    """Drive a session to completion with ``advance_count`` per continue, capturing everything."""
    cap = Captured()
    for event in session.events(timeout=timeout):
        cap.add(event)
        if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
            session.send_continue(advance_count=advance_count)
    return cap


def drive_one_slot_steps(session: Any, data_kind: type, on_step: Optional[Any] = None,
                         timeout: float = 15.0) -> Tuple[int, List[Any]]:
    """Drive ``session`` one slot per continue to completion. Returns ``(late, delivered)``: the events of type
    ``data_kind`` in delivery order, and how many of them came after the step that held their slot had ended (its
    ``ReadyForContinue`` was delivered). ``on_step(session)`` runs before each continue."""
    late = 0
    delivered: List[Any] = []
    ended_through: Optional[int] = None  # highest slot of the steps that ended so far
    step_slots: List[int] = []  # slots announced since the last continue
    continued = False
    for event in session.events(timeout=timeout):
        kind = type(event)
        if kind is data_kind:
            delivered.append(event)
            if ended_through is not None and event.slot <= ended_through:
                late += 1
        elif kind is ev.Slot:
            step_slots.append(event.slot)
        elif kind is ev.ReadyForContinue:
            if continued and step_slots:
                ended_through = max(step_slots)
            step_slots = []
            if on_step is not None:
                on_step(session)
            session.send_continue(advance_count=1)
            continued = True
    return late, delivered


def truth_diff_keys(chain: Any, start: int, end: int, programs: List[str]) -> List[Tuple[int, str, Optional[str]]]:
    return sorted((d["context"]["slot"], d["account"], d.get("signature"))
                  for d in chain.account_diffs(start, end, programs))


def truth_signatures(chain: Any, start: int, end: int, programs: Optional[List[str]] = None) -> List[str]:
    return [t["transaction"]["signatures"][0] for t in chain.transactions(start, end, programs)]


def assert_per_program_order(cap: Captured) -> None:
    """Within one source, slots never go backwards."""
    slots = [t.slot for t in cap.transactions]
    assert slots == sorted(slots), "transactions out of order"
    by_owner: Dict[str, List[int]] = {}
    for d in cap.diffs:
        owner = (d.post or d.pre or {}).get("owner", "")
        by_owner.setdefault(owner, []).append(d.slot)
    for owner, s in by_owner.items():
        assert s == sorted(s), f"diffs of {owner} out of order"


def drive_quietly(session: Any, advance_count: int, timeout: float = 15.0) -> ev.Completed:
    """Run a session to completion without keeping its events (hygiene and load tests)."""
    for event in session.events(timeout=timeout):
        if isinstance(event, (ev.ReadyForContinue, ev.Paused)):
            session.send_continue(advance_count=advance_count)
        elif isinstance(event, ev.Completed):
            return event
    raise AssertionError("session ended without Completed")
