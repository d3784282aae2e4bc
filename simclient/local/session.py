"""Server-side session state: single sessions, parallel sub-sessions, their control streams and subscriptions.

Everything in this module runs on the simulator's event loop thread. Inferred protocol choices made here:

* **Position model.** A session's position ``pos = (slot, batch)`` means "every block transaction before batch
  ``batch`` of ``slot`` has executed". It starts at ``(startSlot, 0)``. ``continue{advanceCount: N}`` runs slot
  numbers ``pos.slot .. pos.slot + N - 1`` (clamped to ``endSlot``; a partially executed slot counts as one; skipped
  slots count but emit nothing). ``continueTo{slot, batchIndex}`` runs up to immediately before that batch (a batch
  is one transaction; ``batchIndex`` is its index in the block) and emits ``paused``.
* **Per produced slot** the control stream carries ``status decodedTransactions``, ``[status
  appliedAccountModifications]`` (first slot of a continue that modified accounts), ``status
  readyToExecuteUserTransactions``, then the slot's data-plane notifications (awaited, so they are written before
  the next control frame), ``status executedBlockTransactions``, ``[status executedUserTransactions]`` (when user
  transactions ran in that slot), and ``slotNotification(slot)``. Skipped slots emit nothing.
  ``slotNotification(startSlot)`` is also sent once at startup, even if ``startSlot`` happens to be skipped.
* **Idle markers**: a continue ends with ``readyForContinue``, a continueTo with ``paused``, both preceded by the
  next ``discoveryBatch`` when the session has discovery filters: the first matching batch not yet executed (when
  paused at ``(s, b)``, the search starts at ``(s, b + 1)``, so a client feeding discoveries to ``continueTo``
  always makes progress). Two other readings of §5.5 can be played: ``LocalSimulator.discovery_after_idle_ms``
  (a background scan: the batch follows the idle marker after that delay, if the session is still idle) and
  ``discovery_reannounce_paused`` (the search starts at ``(s, b)``: the batch paused before is announced again). After ``endSlot``: ``completed{summary}``, then the data-plane end of stream.
* **Sequencing**: a single session created with ``disconnectTimeoutSecs > 0`` wraps every frame it emits with
  ``seqId`` (including ``status startingRuntime`` and ``sessionCreated``), and keeps them all in its replay buffer.
  ``sessionAttached`` (the attach reply) is *not* sequenced: it is a reply on the new connection, not a session
  event. Parallel sub-sessions always number their ``sessionEventV2`` ``seq_id`` from 1; ``sessionCreated``,
  ``sessionsCreatedV2`` and ``parallelSessionAttachedV2`` are bare. Errors about the request itself (garbled JSON,
  unknown method, unknown session id) are bare; errors about a session's state (``continue while busy``...) are
  that session's events and sequenced.
* **Retained window**: the last ``replay_window`` produced slots a session has (at least partly) executed. Replay
  notifications are regenerated from the deterministic chain, so replay is exact.
* **Account overrides** (``modifyAccountStates``, RPC ``modifyAccounts``, and the create's ``accountOverrides``
  ``{"<slot>": {address: AccountData}}``, applied as that slot starts, or at startup when it is at or before
  ``startSlot``) overlay the RPC state until the chain itself next writes the account; they never change the
  data-plane notifications. Program and ProgramData accounts are never written by the chain, so a program override
  (``simclient.modify_program``) stays visible for the rest of the session.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Tuple

from . import actions as _actions
from . import wire
from .chain import TxRecord
from .zstd import Compressed

if TYPE_CHECKING:  # pragma: no cover
    from .server import ControlConn, LocalSimulator, SubConn

log = logging.getLogger("simclient.local")

STARTING, IDLE, PAUSED, BUSY, COMPLETED, FAILED, CLOSED = (
    "starting", "idle", "paused", "busy", "completed", "failed", "closed")
FINISHED = (COMPLETED, FAILED, CLOSED)


class Subscription:
    """One data-plane subscription (``transactionSubscribe`` or ``accountDiffSubscribe``) on a socket."""

    def __init__(self, sub_id: int, kind: str, conn: "SubConn", programs: Optional[set] = None,
                 address: Optional[str] = None, address_type: str = "program"):
        self.id = sub_id
        self.kind = kind                  # "transaction" | "accountDiff"
        self.conn = conn
        self.programs = programs          # transaction: None = all programs
        self.address = address            # accountDiff filter
        self.address_type = address_type
        self.ended = False
        self.compressed = False           # asked for "compression":"zstd" (and zstandard is here): see .zstd

    def texts_for(self, tx: TxRecord) -> List[str]:
        """The notification frames this subscription gets for one executed transaction."""
        return NOTIFICATION_TEXTS[self.kind](self, tx)

    def end_text(self) -> str:
        """The end-of-stream frame in the simulator's dialect (PROTOCOL §9.5)."""
        return self.conn.sim.dialect.end_text(self.kind, self.id)

    def frame(self, text: str) -> Any:
        """A notification as this subscription gets it: compressed on its socket's stream when it asked (§9.4)."""
        return Compressed(text) if self.compressed else text

    def end_frame(self, text: Optional[str] = None) -> Any:
        """The end-of-stream frame (``text``, else :meth:`end_text`), compressed when it asked for zstd and the
        dialect's ``zstd_eos`` reading compresses it."""
        text = self.end_text() if text is None else text
        return Compressed(text) if self.compressed and self.conn.sim.dialect.zstd_eos == "zstd" else text


def _transaction_texts(sub: Subscription, tx: TxRecord) -> List[str]:
    if sub.programs is None or tx.program_id in sub.programs:
        return ['{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":%d,'
                '"result":{"context":{"slot":%d},"value":%s}}}' % (sub.id, tx.slot, tx.value_json)]
    return []


def _account_diff_texts(sub: Subscription, tx: TxRecord) -> List[str]:
    out = []
    if sub.address is None or (sub.address_type == "program" and tx.program_id == sub.address):
        for dj in tx.diff_json:
            out.append('{"jsonrpc":"2.0","method":"accountDiffNotification","params":{"subscription":%d,'
                       '"result":%s}}' % (sub.id, dj))
    elif sub.address_type != "program":
        for d, dj in zip(tx.diffs, tx.diff_json):
            if d["account"] == sub.address:
                out.append('{"jsonrpc":"2.0","method":"accountDiffNotification","params":{"subscription":%d,'
                           '"result":%s}}' % (sub.id, dj))
    return out


def _logs_texts(sub: Subscription, tx: TxRecord) -> List[str]:
    """``logsSubscribe`` (§9.2.2): the transaction's logs when it mentions the subscription's address (``programs``
    None: the ``"all"`` / ``"allWithVotes"`` filters; the synthetic chain has no vote transactions)."""
    if sub.programs is None or not sub.programs.isdisjoint(tx.mentions):
        return ['{"jsonrpc":"2.0","method":"logsNotification","params":{"subscription":%d,'
                '"result":{"context":{"slot":%d},"value":%s}}}' % (sub.id, tx.slot, wire.dumps(tx.logs_value))]
    return []


#: Per kind: the notification frames a subscription of that kind gets for one executed transaction.
NOTIFICATION_TEXTS: Dict[str, Callable[[Subscription, TxRecord], List[str]]] = {
    "transaction": _transaction_texts,
    "accountDiff": _account_diff_texts,
    "logs": _logs_texts,
    "action": lambda sub, tx: [],  # not per transaction: SimSession._emit_actions, at the actions' anchors
}


class SimSession:
    """A single session, or one sub-session of a parallel control session."""

    def __init__(self, sim: "LocalSimulator", session_id: str, task_id: str, req: wire.CreateRequest,
                 start: int, end: int, parent: Optional["ParallelControl"] = None):
        self.sim = sim
        self.id = session_id
        self.task_id = task_id
        self.request = req
        self.start_slot = start
        self.end_slot = end
        self.parent = parent
        self.timeout = req.disconnect_timeout_secs
        self.resumable = self.timeout > 0
        self.sequenced = parent is not None or self.resumable
        self.send_summary = req.send_summary
        self.discoveries = req.discoveries
        self.conn: Optional["ControlConn"] = None       # single sessions only
        self.seq = 0
        self.buffer: List[str] = []                     # sequenced frames; buffer[i] has seq i + 1
        self.state = STARTING
        self.pos: Tuple[int, int] = (start, 0)
        self.current_slot = start
        self.paused_at: Optional[Tuple[int, int]] = None
        self.retained: Deque[int] = deque()
        self.evicted_max: Optional[int] = None
        self.subs: List[Subscription] = []
        self._next_sub = 0
        self.overrides: Dict[str, Tuple[Tuple[int, int], Dict[str, Any]]] = {}
        self.create_overrides = sorted(req.account_overrides.items())  # (slot, accounts) not applied yet
        self.continues_started = 0                      # continues acted upon (the data plane is up after one)
        self.received_transactions: List[bytes] = []    # continue batches and RPC sendTransaction, in arrival order
        self.continue_transactions: List[bytes] = []
        self.rpc_transactions: List[bytes] = []
        self.modifications: List[Dict[str, Dict[str, Any]]] = []
        self.executed_txs = 0
        self.failed_txs = 0
        self.user_txs_pending = 0
        self.mods_pending = False
        self.task: Optional[asyncio.Task] = None
        self.expiry: Optional[asyncio.TimerHandle] = None
        self.ended = threading.Event()     # set once the session is removed (closed, torn down, expired)
        self.announced = False              # single: sessionCreated has been emitted (drop faults apply after it)
        # scheduled actions (PROTOCOL §3.1.1, simclient.local.actions): the engine, and the results sent per
        # retained slot (replayed as sent: a replay must not fire the actions again)
        self.action_engine = (_actions.ActionEngine(sim.chain, req.actions, req.start_slot)
                              if req.actions else None)
        self.action_notes: Dict[int, List[str]] = {}
        self._actions_begun: Optional[int] = None
        self.idle_gen = 0                   # bumped at every idle marker (a late discoveryBatch checks it)

    def __repr__(self) -> str:
        return f"<SimSession {self.id} [{self.start_slot}, {self.end_slot}] {self.state} pos={self.pos}>"

    @property
    def rpc_endpoint(self) -> str:
        return f"/backtest/{self.id}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def next_sub_id(self) -> int:
        self._next_sub += 1
        return self._next_sub

    # ------------------------------------------------------------------ control stream
    async def emit(self, text: str, then: Optional[Callable[[], None]] = None) -> None:
        """Emit one session event: sequence/wrap it, buffer it, and send it live if a control socket is attached.

        ``then`` runs synchronously once the frame has its place in the stream (before any other task can run), e.g.
        to become idle exactly when ``readyForContinue`` is emitted: a continue processed after that point follows the
        frame, one processed before it is refused as busy."""
        sim = self.sim
        await sim.stall_gate()
        parent = self.parent
        if parent is not None:
            self.seq += 1
            out = wire.session_event(self.id, self.seq, text)
            self.buffer.append(out)
            conn = parent.conn
            # drop faults only once the create is over: a drop during create makes clients retry the create
            resumable = parent.resumable and parent.created_done
        elif self.sequenced:
            self.seq += 1
            out = wire.with_seq(self.seq, text)
            self.buffer.append(out)
            conn = self.conn
            resumable = self.announced
        else:
            out = text
            conn = self.conn
            resumable = False
        if then is not None:
            then()
        if conn is None or conn.closed:
            return
        if resumable and sim.faults.take_control_drop():
            sim.stats["control_drops"] += 1
            log.info("fault: dropping control connection instead of sending %s", out[:80])
            conn.abort()
            return
        await conn.send(out)

    def replay_from(self, last: Optional[int]) -> List[str]:
        return self.buffer[(last or 0):]

    # ------------------------------------------------------------------ lifecycle
    async def startup(self, created_via_parent: bool = False) -> None:
        """Startup events: status bundleReady and startingRuntime, sessionCreated (single only),
        slotNotification(start), discovery, readyForContinue."""
        sim = self.sim
        if not created_via_parent:
            await self.emit(wire.status("bundleReady"))
            await self.emit(wire.status("startingRuntime"))
            if sim.create_delay_ms:
                await asyncio.sleep(sim.create_delay_ms / 1000)
            await self.emit(wire.session_created("sessionCreated", self.id, self.task_id))
            self.announced = True
        self.apply_create_overrides(self.start_slot)
        await self.emit(wire.slot_notification(self.start_slot))
        await self._become_idle(IDLE)

    async def _become_idle(self, state: str) -> None:
        disc = self._discovery_frame(state)
        late = self.sim.discovery_after_idle_ms
        if disc is not None and late is None:
            await self.emit(disc)
        def idle() -> None:
            self.state = state
            self.idle_gen += 1

        if state == PAUSED:
            assert self.paused_at is not None
            await self.emit(wire.frame("paused", {"slot": self.paused_at[0], "batchIndex": self.paused_at[1]}), idle)
        else:
            self.paused_at = None
            await self.emit(wire.READY, idle)
        if disc is not None and late is not None:
            self.sim._spawn(self._late_discovery(disc, late, self.idle_gen))

    async def _late_discovery(self, text: str, delay_ms: float, gen: int) -> None:
        """The background-scan reading of §5.5: the batch follows the idle marker (if still idle there)."""
        await asyncio.sleep(delay_ms / 1000)
        if self.idle_gen == gen and self.state in (IDLE, PAUSED):
            await self.emit(text)

    def _discovery_frame(self, state: str) -> Optional[str]:
        if not self.discoveries:
            return None
        s, b = self.pos
        if state == PAUSED and self.paused_at is not None:
            s, b = self.paused_at[0], self.paused_at[1] + (0 if self.sim.discovery_reannounce_paused else 1)
        found = self.sim.chain.find_match(self.discoveries, s, b, self.end_slot)
        if found is None:
            return None
        slot, i, matched = found
        payload = base64.b64encode(self.sim.chain.discovery_payload(slot, i)).decode()
        return wire.frame("discoveryBatch", {"slot": slot, "batchIndex": i, "matched": matched,
                                             "transactions": [{"data": payload, "encoding": "base64"}],
                                             "transactionIndices": [i]})

    def check_can_continue(self) -> Optional[str]:
        """None if a continue may start now, else the text of the error frame to answer with."""
        if self.state in (IDLE, PAUSED):
            return None
        if self.state in (BUSY, STARTING):
            return wire.invalid_request("continue while busy")
        return wire.invalid_request(f"session {self.id} has {self.state}")

    def begin(self, coro: Any) -> None:
        """Mark the session busy (synchronously: a second continue is then refused) and run ``coro``."""
        self.state = BUSY
        self.continues_started += 1
        self.task = asyncio.ensure_future(self._guard(coro))
        self.task.add_done_callback(lambda _: coro.close())  # a task cancelled before it ran never awaited coro
        self.sim._track(self.task)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug; make it visible and end the session loudly
            log.exception("session %s crashed", self.id)
            try:
                await self.emit(wire.error({"internal": {"error": "local simulator crashed; see its log"}}))
            finally:
                await self._finish(FAILED)

    def apply_continue_inputs(self, req: wire.ContinueRequest) -> bool:
        """Record a continue's transactions and overrides; True if accounts were modified."""
        for raw in req.transactions:
            self.received_transactions.append(raw)
            self.continue_transactions.append(raw)
        self.user_txs_pending += len(req.transactions)
        if req.modify:
            self.apply_overrides(req.modify)
            self.mods_pending = True
            return True
        return False

    def apply_overrides(self, mods: Dict[str, Dict[str, Any]]) -> None:
        self.modifications.append(dict(mods))
        for addr, acct in mods.items():
            self.overrides[addr] = (self.pos, acct)

    def apply_create_overrides(self, slot: int) -> bool:
        """Apply the create's ``accountOverrides`` due by ``slot`` (called as each slot starts, and at startup for
        those at or before ``startSlot``); True if any was applied."""
        applied = False
        while self.create_overrides and self.create_overrides[0][0] <= slot:
            self.apply_overrides(self.create_overrides.pop(0)[1])
            applied = True
        return applied

    def account(self, address: str) -> Optional[Dict[str, Any]]:
        """UiAccount of ``address`` at the session's position, with overrides applied."""
        chain = self.sim.chain
        ov = self.overrides.get(address)
        if ov is not None:
            opos, acct = ov
            w = chain.last_write_position(address, self.pos[0], self.pos[1])
            if w is None or w < opos:
                return acct
        return chain.account_at(address, self.pos[0], self.pos[1])

    async def run_continue(self, advance: int) -> None:
        last = min(self.pos[0] + advance - 1, self.end_slot)
        while self.pos[0] <= last:
            if not await self._exec_slot(self.pos[0], None):
                return
        if self.pos[0] > self.end_slot:
            await self._complete()
        else:
            await self._become_idle(IDLE)

    async def run_continue_to(self, slot: int, batch: int) -> None:
        while self.pos[0] < slot:
            if not await self._exec_slot(self.pos[0], None):
                return
        if self.pos < (slot, batch):
            if not await self._exec_slot(slot, batch):
                return
        self.paused_at = (slot, batch)
        await self._become_idle(PAUSED)

    async def _exec_slot(self, s: int, stop_batch: Optional[int]) -> bool:
        """Execute slot ``s`` from the current batch to ``stop_batch`` (None = to its end). False if it failed."""
        sim = self.sim
        chain = sim.chain
        await sim.stall_gate()
        start_batch = self.pos[1] if self.pos[0] == s else 0
        if start_batch == 0 and self.create_overrides:
            self.pos = (s, 0)
            if self.apply_create_overrides(s):
                self.mods_pending = True
        if start_batch == 0 and sim.faults.has_slot_failures:
            variant = sim.faults.failure_at(s)
            if variant is not None:
                from .faults import error_params
                log.info("fault: session %s fails at slot %d (%s)", self.id, s, variant)
                await self.emit(wire.error(error_params(variant, s)), lambda: setattr(self, "state", FAILED))
                await self._finish(FAILED)
                return False
        if not chain.is_produced(s):
            self.pos = (s + 1, 0)
            return True
        if sim.slot_pace_ms:
            await asyncio.sleep(sim.slot_pace_ms / 1000)
            await sim.stall_gate()
        else:
            # Yield once per slot: with nobody reading (a detached session) no send awaits anything, and a run
            # would otherwise hold the loop until it ends, so no other request (a close, an attach) is read.
            await asyncio.sleep(0)
        if start_batch == 0:
            if not self.retained or self.retained[-1] != s:
                self.retained.append(s)
                while len(self.retained) > sim.replay_window:
                    self.evicted_max = self.retained.popleft()
                    self.action_notes.pop(self.evicted_max, None)
            self.pos = (s, 0)
            await self.emit(wire.status("decodedTransactions"))
            if self.mods_pending:
                self.mods_pending = False
                await self.emit(wire.status("appliedAccountModifications"))
            await self.emit(wire.status("readyToExecuteUserTransactions"))
        engine = self.action_engine
        if engine is not None and start_batch == 0 and self._actions_begun != s:
            self._actions_begun = s  # once per slot, however often its batch 0 is (re)entered
            await self._emit_actions(engine.before_slot(s))
        n = chain.tx_count(s)
        end_batch = n if stop_batch is None else min(stop_batch, n)
        if (self.subs or engine is not None) and end_batch > start_batch:
            blk = chain.block(s)
            assert blk is not None
            for i in range(start_batch, end_batch):
                if engine is not None:
                    await self._emit_actions(engine.before_batch(s, i))
                self.pos = (s, i + 1)
                tx = blk.txs[i]
                for sub in list(self.subs):
                    for text in sub.texts_for(tx):
                        await sim.deliver(sub, text)
                if engine is not None:
                    await self._emit_actions(engine.after_batch(s, i))
        ntx, nfail = chain.tx_summary(s, start_batch, end_batch)
        self.executed_txs += ntx
        self.failed_txs += nfail
        if stop_batch is not None:
            self.pos = (s, end_batch)
            return True
        if engine is not None:
            self.pos = (s, end_batch)
            await self._emit_actions(engine.after_slot(s))
        self.pos = (s + 1, 0)
        self.current_slot = s
        await self.emit(wire.status("executedBlockTransactions"))
        if self.user_txs_pending:
            self.user_txs_pending = 0
            await self.emit(wire.status("executedUserTransactions"))
        await self.emit(wire.slot_notification(s))
        return True

    async def _emit_actions(self, firings: List["_actions.Firing"]) -> None:
        """Send scheduled-action results to the action subscriptions, keep them for replay, and apply what a
        committed ``send`` wrote to the session's state (RPC sees it like an account override)."""
        style = self.sim.dialect.actions
        for firing in firings:
            note = wire.dumps(_actions.render_result(firing.result, style))
            self.action_notes.setdefault(firing.slot, []).append(note)
            for addr, (pos, acct) in firing.commits.items():
                self.overrides[addr] = (pos, acct)
            for sub in list(self.subs):
                if sub.kind == "action":
                    await self.sim.deliver(sub, _actions.notification_text(sub.id, note))

    def summary(self) -> Dict[str, Any]:
        return {"correctSimulation": self.executed_txs, "incorrectSimulation": 0, "executionErrors": 0,
                "balanceDiff": 0, "logDiff": 0, "unsanitizable": 0, "rerouteStats": None}

    async def _complete(self) -> None:
        def done() -> None:
            self.state = COMPLETED

        await self.emit(wire.frame("completed", {"summary": self.summary() if self.send_summary else None}), done)
        self.sim.stats["sessions_completed"] += 1
        await self.end_subscriptions()

    async def _finish(self, state: str) -> None:
        self.state = state
        await self.end_subscriptions()

    async def end_subscriptions(self) -> None:
        """Data-plane end of stream (PROTOCOL §9.5): a ``subscriptionComplete`` (or, in the ``null`` dialect, a null
        notification) per subscription, then close 1000."""
        subs, self.subs = self.subs, []
        by_conn: Dict[int, Tuple["SubConn", List[Subscription]]] = {}
        for sub in subs:
            by_conn.setdefault(id(sub.conn), (sub.conn, []))[1].append(sub)
        for conn, conn_subs in by_conn.values():
            lagging = conn.lagging  # delayed notifications still queued: the end of stream goes behind them
            for sub in conn_subs:
                sub.ended = True
                if lagging:
                    conn.send_later("raw", sub.end_frame(), 0.0)
                else:
                    await conn.send(sub.end_frame())
            # the close handshake runs on its own: a client slow to answer must not hold up the session
            if lagging:
                conn.send_later("close", None, 0.0)
            else:
                self.sim._spawn(conn.close())

    def replay_texts(self, sub: Subscription, from_slot: int) -> List[str]:
        """Retained notifications of slots >= from_slot that ``sub`` matches, as sent live so far."""
        chain = self.sim.chain
        out: List[str] = []
        if sub.kind == "action":  # kept as sent (scheduled actions fire once)
            return [_actions.notification_text(sub.id, note) for s in self.retained if s >= from_slot
                    for note in self.action_notes.get(s, ())]
        for s in self.retained:
            if s < from_slot:
                continue
            blk = chain.block(s)
            if blk is None:
                continue
            limit = self.pos[1] if s == self.pos[0] else len(blk.txs)
            for tx in blk.txs[:limit]:
                out.extend(sub.texts_for(tx))
        return out

    async def teardown(self, reason: str) -> None:
        """Remove the session: cancel its work, end its subscriptions, stop serving it."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.sim._unregister(self)
        await self._teardown_rest(reason)

    async def _teardown_rest(self, reason: str) -> None:
        log.info("session %s torn down: %s", self.id, reason)
        self.ended.set()
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        task = self.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        await self.end_subscriptions()

    def on_detached(self) -> None:
        """The single session's control socket went away."""
        self.conn = None
        if self.state == CLOSED:
            return
        if not self.resumable:
            self.state = CLOSED          # unroutable at once; the async part ends the subscriptions
            self.sim._unregister(self)
            self.sim._spawn(self._teardown_rest("control connection closed without a disconnect timeout"))
            return
        log.info("session %s detached; kept for %ds", self.id, self.timeout)
        self.expiry = asyncio.get_event_loop().call_later(
            self.timeout, lambda: self.sim._spawn(self.teardown("disconnect timeout expired")))


class ParallelControl:
    """A parallel control session: N sub-sessions multiplexed over one control socket (PROTOCOL §8)."""

    def __init__(self, sim: "LocalSimulator", control_id: str, req: wire.CreateRequest):
        self.sim = sim
        self.id = control_id
        self.request = req
        self.timeout = req.disconnect_timeout_secs
        self.resumable = self.timeout > 0
        self.conn: Optional["ControlConn"] = None
        self.subs: List[SimSession] = []
        self.created_done = False
        self.closed = False
        self.task: Optional[asyncio.Task] = None
        self.expiry: Optional[asyncio.TimerHandle] = None

    def sub(self, session_id: str) -> Optional[SimSession]:
        for s in self.subs:
            if s.id == session_id:
                return s
        return None

    async def send_bare(self, text: str) -> None:
        await self.sim.stall_gate()
        conn = self.conn
        if conn is not None and not conn.closed:
            await conn.send(text)

    async def create(self, bundles: List[Tuple[int, int]]) -> None:
        """Stream one sessionCreated per sub-session (each after ``create_delay_ms``), with each sub-session's
        startup events interleaved as sessionEventV2, then the terminal sessionsCreatedV2."""
        sim = self.sim
        for start, end in bundles:
            if sim.create_delay_ms:
                await asyncio.sleep(sim.create_delay_ms / 1000)
            sub = sim._new_session(self.request, start, end, parent=self)
            self.subs.append(sub)
            hold = sim.faults.take_create_hold(len(self.subs))  # FaultPlan.hold_parallel_create: held from now on
            early = sim.early_session_events
            if early:
                await sub.emit(wire.status("bundleReady"))
            await self.send_bare(wire.session_created("sessionCreated", sub.id, sub.task_id))
            if not early:
                await sub.emit(wire.status("bundleReady"))
            await sub.emit(wire.status("startingRuntime"))
            await sub.startup(created_via_parent=True)
            if hold:  # the rest of the create waits for FaultPlan.release_parallel_create
                while sim.faults.create_hold_waiting() and not self.closed:
                    await asyncio.sleep(0.005)
        params: Dict[str, Any] = {"control_session_id": self.id, "session_ids": [s.id for s in self.subs],
                                  "task_ids": [s.task_id for s in self.subs]}
        if not sim.omit_parallel_ranges:
            params["start_slots"] = [s.start_slot for s in self.subs]
            params["end_slots"] = [s.end_slot for s in self.subs]
            if sim.mismatched_parallel_ranges:  # a broken server: the arrays no longer run parallel
                params["end_slots"] = params["end_slots"][:-1]
        self.created_done = True
        await self.send_bare(wire.frame("sessionsCreatedV2", params))

    async def teardown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("parallel control session %s torn down: %s", self.id, reason)
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self.task is not None and not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()
        self.sim._unregister_parallel(self)
        for sub in self.subs:
            await sub.teardown(reason)

    def on_detached(self) -> None:
        self.conn = None
        if self.closed:
            return
        if not self.resumable or not self.created_done:
            why = ("control connection closed before sessionsCreatedV2" if self.resumable else
                   "control connection closed without a disconnect timeout")
            self.sim._spawn(self.teardown(why))
            return
        log.info("parallel control %s detached; kept for %ds", self.id, self.timeout)
        self.expiry = asyncio.get_event_loop().call_later(
            self.timeout, lambda: self.sim._spawn(self.teardown("disconnect timeout expired")))
