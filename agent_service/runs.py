"""Runs: the append-only event list of each run, its live followers, and who may run when.

A run's events get strictly increasing integer indices from 1. A follower reads the list by
position and waits on a wake-up when it has caught up, so replay-then-follow has no gap and no
duplicate whatever the timing, and a slow follower costs nothing but its own place in the list.
A finished run's events stay in memory for the configured retention, then go.

Events are also written to the store in order, a batch every few milliseconds: the store's
event table is the truth for a follower on another agent replica (woken by a notice naming the
run, then reading rows by index, so it too sees no gap and no duplicate) and for a reconnect
after the run left memory, until the retention ends.

One session has at most one active run. The check and the claim happen in one synchronous step
on the event loop, so concurrent SendMessage calls cannot both win; the store then records the
claim atomically (one RUNNING run per session), which decides between replicas. On conflict the
caller's policy decides: reject (ABORTED naming the active run), enqueue (start after it) or
interrupt (cancel it, keeping its partial output, then start), on whichever replica it runs.

With a shared store each run has an owner (this process) holding a lease it renews; a replica
that finds a lease run out takes the run over and goes on with it from what was stored (a
RunResumed event, then the run's body continues: see ToolLoop.resume), or ends it INTERRUPTED
with a reason when it cannot. With a shared store an event reaches clients only once it is
stored, so what a client saw from a replica that then died is exactly what the taker starts from:
no event is lost or repeated across a takeover (the cost: up to one flush, 20 ms, of delay).

What a run does is not decided here: the manager is given a `RunBody` to call (the tool loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from agent_service.metrics import RUN_TAKEOVERS
from agent_service.store import _LIVE_RUN_STATES, CONTROL_CHANNEL, EVENTS_CHANNEL, Store, add_usage
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FireboxError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.runs")


# Runs one session may have waiting behind its active run (ENQUEUE, INTERRUPT).
MAX_WAITING_RUNS = 16
# A batched stream message (batch_events) holds at most this many events and about this many
# bytes (well inside the 16 MiB message limit; a bigger single event goes alone).
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
# The shortest time between two writes of a run's events to the store (each one transaction):
# events that come within it of the last write go together in the next. With a shared store this
# is most of what a client waits for an event in a busy stream (events go out once stored);
# alone, the writes only serve reconnects, so fewer, larger ones are kept.
SHARED_FLUSH_SECONDS = 0.02
LOCAL_FLUSH_SECONDS = 0.2
# A follower on another replica, or a run waiting for a session held elsewhere, looks at the
# store at least this often even when no notice comes (a notice can be lost on a reconnect).
REMOTE_POLL_SECONDS = 1.0
# A follower elsewhere that finds a run ended waits this long for its last events to be written.
ENDED_GRACE_SECONDS = 5.0
# Default lease of a run's owner; renewed every third of it.
DEFAULT_LEASE_SECONDS = 5.0
TAKEOVER_REASON = (
    "the agent replica running it stopped (its lease ran out); the partial output is kept, send "
    "the message again to go on"
)
RESUMED_REASON = "the agent replica running it stopped (its lease ran out); another replica goes on with it"
# A run taken over more often than this ends INTERRUPTED instead: it may be what stops replicas.
MAX_TAKEOVERS = 3
# Runs one replica takes over per look (the rest are left for the next look, or other replicas).
TAKEOVERS_PER_SCAN = 20
LEASE_LOST_REASON = "another agent replica took this run over (this one did not renew its lease in time)"
_TERMINAL = ("run_completed", "run_failed", "run_cancelled")


class RunInterrupted(Exception):
    """Raised by a run's body when it cannot go on with a run taken over: the run ends
    INTERRUPTED with this reason (its partial output kept)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_terminal(event: agent_pb2.RunEvent) -> bool:
    return event.WhichOneof("event") in _TERMINAL


class ConflictPolicy(enum.Enum):
    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"


def _stamp(stamp: Timestamp) -> None:
    """Set `stamp` to now. Timestamp.GetCurrentTime goes through datetime, a few microseconds that
    every event of a run paid; this is the same value from one clock read."""
    stamp.seconds, stamp.nanos = divmod(time.time_ns(), 1_000_000_000)


def _now() -> Timestamp:
    stamp = Timestamp()
    _stamp(stamp)
    return stamp


@dataclass(frozen=True)
class RunOptions:
    """What a run was asked to do beyond its message."""

    # Overrides the session's approval policy (agent_pb2.ApprovalPolicy); 0 keeps the session's.
    approval_policy: int = 0
    # EditMessage RESEND: this stored user message is replaced by `content`, everything after it
    # dropped, and the run starts from it instead of adding a new message.
    resend_message_id: str = ""
    # Client-chosen ids that make a send idempotent: the new user message's id (SendMessage), or
    # the resend's request id (EditMessage RESEND).
    message_id: str = ""
    request_id: str = ""

    def idempotency_key(self, session_id: str) -> str:
        if self.message_id:
            return f"message:{self.message_id}"
        return f"resend:{session_id}:{self.request_id}" if self.request_id else ""


class LiveRun:
    """A run this process is running (or has queued, or finished within the retention)."""

    def __init__(self, run: agent_pb2.Run, content: str, options: RunOptions | None = None) -> None:
        self.run = run
        self.options = options or RunOptions()
        # The user's message; stored when the run starts, so a queued run does not slip it into
        # the history of the run ahead of it.
        self.content = content
        self.events: list[agent_pb2.RunEvent] = []
        self.done = False
        self.cancel_reason = ""
        # Bytes of tool output held in `events` (bounded by the tool loop).
        self.output_bytes = 0
        # Stopped by the run time limit (not by a client's cancel).
        self.timed_out = False
        # The run ended on a model answer cut at the output-token limit.
        self.output_truncated = False
        self.task: asyncio.Task[None] | None = None
        self.policy = ConflictPolicy.REJECT
        # Resolved once the run is accepted (claimed, or waiting its turn); an Aborted when the
        # session's running run is on another replica and the policy is REJECT.
        self.accepted: asyncio.Future[None] | None = None
        # When the store made it the session's running run (monotonic), and whether another
        # replica has since taken it over: then this process writes nothing more of it.
        self.claimed_at: float | None = None
        # Set when another replica took the run over: nothing more of it is written or delivered
        # from here (followers go on from the store: RunManager.follow).
        self.fenced = False
        # Events known to be in the store; with `gated` (a shared store) followers get only
        # those, so a client never sees an event that a takeover would not start from.
        self.stored = 0
        self.gated = False
        # Set when this process took the run over from another replica: the index of the last
        # event recorded before, which the body goes on after.
        self.resumed_after: int | None = None
        self._saver_waiter: asyncio.Future[None] | None = None
        # Followers waiting for the next event: futures resolved by the next append (or finish).
        # Cheaper per event than an asyncio.Event made and set for each one, which the most
        # frequent event (a text delta, one per token) paid even with nobody waiting.
        self._waiters: list[asyncio.Future[None]] = []
        self._finished = asyncio.Event()

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def session_id(self) -> str:
        return self.run.session_id

    async def wait_accepted(self) -> None:
        """Until the run is claimed or waiting its turn; Aborted when another replica runs its
        session and the policy is REJECT."""
        if self.accepted is not None:
            await self.accepted

    @property
    def cancelling(self) -> bool:
        return bool(self.cancel_reason)

    def emit(self, **event: object) -> agent_pb2.RunEvent:
        """Append one event (a RunEvent oneof field and its message) and wake the followers."""
        if self.done:
            raise RuntimeError(f"run {self.id} is finished; no more events")
        record = agent_pb2.RunEvent(index=len(self.events) + 1, run_id=self.run.id, **event)  # type: ignore[arg-type]
        return self._append(record)

    def emit_delta(self, message_id: str, text: str, reasoning: bool = False) -> agent_pb2.RunEvent:
        """Append a text (or reasoning) delta: `emit` for the most frequent event, with its fields
        set in place rather than built as a message and copied into the event."""
        if self.done:
            raise RuntimeError(f"run {self.id} is finished; no more events")
        # Fields set one by one: the keyword constructor costs twice as much (one event a token).
        record = agent_pb2.RunEvent()
        record.index = len(self.events) + 1
        record.run_id = self.run.id
        delta = record.reasoning_delta if reasoning else record.text_delta
        delta.message_id = message_id
        delta.text = text
        return self._append(record)

    def _append(self, record: agent_pb2.RunEvent) -> agent_pb2.RunEvent:
        _stamp(record.time)
        self.events.append(record)
        self.run.last_event_index = record.index
        if self._waiters and not self.gated:
            self._wake_all()
        if self._saver_waiter is not None:
            self._wake_saver()
        return record

    def _wake_saver(self) -> None:
        waiter, self._saver_waiter = self._saver_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def appended(self) -> None:
        """Wait until an event is appended or the run finishes (the event writer's wait)."""
        if self._saver_waiter is None:
            self._saver_waiter = asyncio.get_running_loop().create_future()
        await self._saver_waiter

    def mark_stored(self, count: int) -> None:
        """The first `count` events are in the store: followers may have them."""
        self.stored = count
        if self._waiters:
            self._wake_all()

    def ungate(self) -> None:
        """Deliver every event, stored or not (the writer stopped: done, gave up or fenced)."""
        self.gated = False
        self._wake_all()

    def _visible(self) -> int:
        return self.stored if self.gated else len(self.events)

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a follower cancelled while waiting left a cancelled future
                waiter.set_result(None)

    def finish(self) -> None:
        self.done = True
        self._finished.set()
        self._wake_all()
        self._wake_saver()

    async def _next(self) -> None:
        """Wait until an event is appended or the run finishes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def follow(self, after_index: int) -> AsyncIterator[agent_pb2.RunEvent]:
        """Every event with an index above `after_index`, then live ones until the run ends (or,
        once another replica took it over, until the last one stored: the rest is the taker's)."""
        position = max(after_index, 0)
        while True:
            while position < self._visible():
                position += 1
                yield self.events[position - 1]
            if self.fenced or (self.done and not self.gated):
                return
            await self._next()

    async def follow_batches(self, after_index: int) -> AsyncIterator[list[agent_pb2.RunEvent]]:
        """`follow`, as lists: every event appended since the previous list, at most
        MAX_BATCH_EVENTS of them and about MAX_BATCH_BYTES (an event larger than that goes
        alone). Consecutive lists continue each other exactly, so nothing is lost or repeated."""
        position = max(after_index, 0)
        while True:
            end = self._visible()
            if position < end:
                end = min(end, position + MAX_BATCH_EVENTS)
                batch = self.events[position:end]
                size = 0
                for n, event in enumerate(batch):
                    size += event.ByteSize()
                    if size > MAX_BATCH_BYTES and n:
                        batch = batch[:n]
                        break
                position += len(batch)
                yield batch
                continue
            if self.fenced or (self.done and not self.gated):
                return
            await self._next()


# The body of a run: does the work, emitting events; returns whether the step limit was reached.
RunBody = Callable[[LiveRun], Awaitable[bool]]


class _SessionLane:
    """The active run of one session and the runs waiting behind it."""

    def __init__(self) -> None:
        self.active: LiveRun | None = None
        self.waiting: collections.deque[LiveRun] = collections.deque()
        # Held by maintenance (a compaction): no run starts until it is released.
        self.held = False


class RunManager:
    """Starts, queues, cancels and remembers runs; the one place that knows who runs when."""

    def __init__(
        self,
        store: Store,
        body: RunBody,
        retention_seconds: float,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        owner: str = "",
        run_timeout: float | None = None,
    ) -> None:
        self._store = store
        self._body = body
        self._retention = retention_seconds
        # A run still going after this many seconds is stopped (as a cancel: partial output kept,
        # open tool calls answered) and fails DEADLINE_EXCEEDED.
        self._run_timeout = run_timeout
        self._lease = lease_seconds
        # This process, as the owner of its runs in a shared store.
        self.owner = owner or f"agent-{uuid.uuid4().hex[:16]}"
        self._flush_seconds = SHARED_FLUSH_SECONDS if store.shared else LOCAL_FLUSH_SECONDS
        self._runs: dict[str, LiveRun] = {}
        self._lanes: dict[str, _SessionLane] = {}
        self._closing = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Every run task until it ends, forgotten runs' included (a resend drops a run from
        # _runs while its task may still be finishing): shutdown waits for them all.
        self._tasks: set[asyncio.Task[None]] = set()
        # Set once shutdown is over: the store is closed next, so nothing more is scheduled.
        self._closed = False
        # Idempotency keys (RunOptions.idempotency_key) of the runs still remembered -> run id:
        # a repeated send is caught here from submit on, before its message is stored.
        self._keys: dict[str, str] = {}
        # Waiters for events of runs driven elsewhere, woken by the store's notices.
        self._remote_waiters: dict[str, list[asyncio.Future[None]]] = {}
        # Called with a run id when another replica left a request for one of this process's
        # runs (an approval decision); cancels are handled here.
        self.control_handlers: list[Callable[[str], Awaitable[None]]] = []
        self._maintenance: asyncio.Task[None] | None = None
        # Runs taken over whose resumption failed, tried again at the next look.
        self._unresumed: list[agent_pb2.Run] = []

    async def start(self) -> None:
        """Listen to other replicas and, with a shared store, keep leases and take over runs."""
        await self._store.watch(self._on_notice)
        if self._store.shared:
            self._maintenance = asyncio.create_task(self._maintain(), name="run leases")

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def counts(self) -> dict[str, int]:
        """Runs this process drives that have not ended, by status (for metrics)."""
        counts = {"running": 0, "queued": 0}
        for live in self._runs.values():
            if not live.done:
                counts["running" if live.run.status == agent_pb2.RUN_STATUS_RUNNING else "queued"] += 1
        return counts

    def active_run_id(self, session_id: str) -> str:
        lane = self._lanes.get(session_id)
        return lane.active.id if lane and lane.active else ""

    def busy(self, session_id: str) -> bool:
        """The session has a run going or waiting, or is held by a compaction."""
        lane = self._lanes.get(session_id)
        return lane is not None and (lane.active is not None or bool(lane.waiting) or lane.held)

    @contextlib.contextmanager
    def hold(self, session_id: str) -> Iterator[None]:
        """Keep runs off the session while the block runs (they queue or are refused as for an
        active run); FAILED_PRECONDITION if it is busy now. Synchronous check and claim: atomic."""
        if self.busy(session_id):
            active = self.active_run_id(session_id)
            raise FailedPrecondition(
                f"session {session_id} has an active run{' ' + active if active else ''} (or a compaction); "
                "wait for it or cancel it first"
            )
        lane = self._lanes.setdefault(session_id, _SessionLane())
        lane.held = True
        try:
            yield
        finally:
            self._release(session_id, lane)

    @contextlib.asynccontextmanager
    async def take_over(self, session_id: str, reason: str) -> AsyncIterator[str]:
        """Hold the session (as `hold`), cancel its active run and wait for it to end, then run
        the block; yields the id of the run cancelled ("" if none). The claim comes first, in
        one synchronous step, so no message can start a run between the cancel and the block:
        messages sent meanwhile are refused (ABORTED) or, with ENQUEUE, run after it. Runs that
        were already waiting stay waiting. FAILED_PRECONDITION if a compaction holds it."""
        lane = self._lanes.setdefault(session_id, _SessionLane())
        if lane.held:
            raise FailedPrecondition(
                f"session {session_id} is being compacted or cleared; try again when that is done"
            )
        lane.held = True
        try:
            active = lane.active
            if active is not None:
                self.cancel(active.id, reason)
                if active.task is not None:
                    await asyncio.wait({active.task})
            yield active.id if active is not None else ""
        finally:
            self._release(session_id, lane)

    def _release(self, session_id: str, lane: _SessionLane) -> None:
        lane.held = False
        if lane.waiting and not self._closing:
            self._start(lane, lane.waiting.popleft())
        elif lane.active is None:
            self._drop_lane(session_id, lane)

    def _drop_lane(self, session_id: str, lane: _SessionLane) -> None:
        # A run taken over while the session had a lane here runs in a lane of its own.
        if self._lanes.get(session_id) is lane:
            del self._lanes[session_id]

    def submit(
        self, session_id: str, content: str, policy: ConflictPolicy, options: RunOptions | None = None
    ) -> LiveRun:
        """Claim the session for a new run, or queue it, or refuse; synchronous, hence atomic in
        this process. Await `live.accepted` for the verdict of other replicas (ABORTED when one
        of them runs the session and the policy is REJECT)."""
        if self._closing:
            raise Unavailable("the agent is shutting down; send the message again once it is back")
        lane = self._lanes.setdefault(session_id, _SessionLane())
        busy = lane.active is not None or bool(lane.waiting) or lane.held
        if busy and policy is ConflictPolicy.REJECT:
            if lane.active is None and not lane.waiting:
                raise Aborted(
                    f"session {session_id} is being compacted or cleared; send the message again when it is done"
                )
            active = lane.active or lane.waiting[0]
            raise Aborted(
                f"session {session_id} already has an active run {active.id}; wait for it, cancel it, or send "
                "with on_conflict ENQUEUE or INTERRUPT"
            )
        options = options or RunOptions()
        key = options.idempotency_key(session_id)
        if key in self._keys:
            existing = self._runs[self._keys[key]]
            if existing.session_id != session_id:
                raise AlreadyExists(
                    f"message id {options.message_id} is used by another session; choose another"
                )
            raise AlreadyExists(_repeated(session_id, options, existing.id))
        if busy and len(lane.waiting) >= MAX_WAITING_RUNS:
            raise ResourceExhausted(
                f"session {session_id} already has {len(lane.waiting)} runs waiting (at most {MAX_WAITING_RUNS}); "
                "wait for them or cancel some"
            )
        run = agent_pb2.Run(
            id=f"run-{uuid.uuid4().hex}",
            session_id=session_id,
            status=agent_pb2.RUN_STATUS_QUEUED,
            create_time=_now(),
            request_id=options.request_id,
            approval_policy=options.approval_policy,  # type: ignore[arg-type]
        )
        live = LiveRun(run, content, options)
        live.policy = policy
        live.accepted = asyncio.get_running_loop().create_future()
        # Nobody may await it (tests driving the manager directly): never "exception never retrieved".
        live.accepted.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._runs[run.id] = live
        if key:
            self._keys[key] = run.id
        if not busy:
            self._start(lane, live)
            return live
        live.accepted.set_result(None)
        # Recorded now so that GetRun and ListRuns show it while it waits.
        self._persist_soon(live)
        if policy is ConflictPolicy.INTERRUPT:
            # Jump the queue, then end whatever is running; its end starts this one.
            lane.waiting.appendleft(live)
            if lane.active is not None:
                self.cancel(lane.active.id, "interrupted by a newer message")
        else:
            lane.waiting.append(live)
        return live

    def _lease_until(self) -> int:
        return time.time_ns() + int(self._lease * 1e9)

    def _persist_soon(self, live: LiveRun) -> None:
        snapshot = agent_pb2.Run()
        snapshot.CopyFrom(live.run)
        self._spawn(self._store.put_run(snapshot, self.owner, self._lease_until()))

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        if self._closed:
            work.close()  # the store is closed: nothing more is written
            return

        async def run() -> None:
            try:
                await work
            except Exception as exc:
                log.error("run_store_write_failed", error=repr(exc))

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start(self, lane: _SessionLane, live: LiveRun) -> None:
        lane.active = live
        live.task = asyncio.create_task(self._drive(lane, live), name=f"run {live.id}")
        self._tasks.add(live.task)
        live.task.add_done_callback(self._tasks.discard)

    async def _drive(self, lane: _SessionLane, live: LiveRun) -> None:
        live.gated = self._store.shared
        saver = asyncio.create_task(self._save_events(live), name=f"events of {live.id}")
        try:
            await self._execute(live)
        finally:
            live.finish()
            if live.accepted is not None and not live.accepted.done():
                live.accepted.set_result(None)
            lane.active = None
            try:
                # Followers elsewhere wait for the last events; bounded like any store call.
                await asyncio.wait_for(asyncio.shield(saver), 30)
            except (Exception, asyncio.CancelledError) as exc:
                log.error("run_events_not_saved", run_id=live.id, error=repr(exc))
            if not live.fenced:
                live.ungate()
            self._later(self._retention, self._forget, live.id)
            if lane.waiting and not self._closing and not lane.held:
                self._start(lane, lane.waiting.popleft())
            elif not lane.waiting and not lane.held:
                self._drop_lane(live.session_id, lane)

    def _time_up(self, live: LiveRun) -> None:
        if live.done or live.cancelling or live.task is None:
            return
        live.timed_out = True
        live.cancel_reason = f"the run reached its time limit of {self._run_timeout:g} s (--run-timeout)"
        live.task.cancel()

    async def _save_events(self, live: LiveRun) -> None:
        """Write the run's events to the store in order, a batch at a time, until it is done;
        followers of a gated run get each batch once it is written. When the writing ends (the
        run's end, five failed writes in a row) they get the rest; after a takeover they go on
        from the store instead (the taker's events)."""
        saved = live.stored
        failures = 0
        # With a shared store a write is refused once another replica owns the run.
        owner = self.owner if self._store.shared else ""
        last_write = -self._flush_seconds
        try:
            while True:
                if saved == len(live.events):
                    if live.done:
                        return
                    await live.appended()
                    continue
                # At most one write per flush interval: events arriving within one interval of
                # the last write wait for its end and go together; the first event after a
                # quiet interval goes at once. The run's end writes at once.
                wait = last_write + self._flush_seconds - time.monotonic()
                if wait > 0 and not live.done:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(live._finished.wait(), wait)
                if live.fenced:
                    return  # the store's events are the taker's now
                batch = live.events[saved:]
                try:
                    written = await self._store.append_events(live.id, batch, owner)
                except Exception as exc:
                    failures += 1
                    log.error("run_events_write_failed", run_id=live.id, error=repr(exc), failures=failures)
                    if failures >= 5:
                        return
                    await asyncio.sleep(0.2 * failures)
                    continue
                last_write = time.monotonic()
                if not written:
                    self._lost(live)
                    return
                failures = 0
                saved += len(batch)
                live.mark_stored(saved)
        finally:
            if not live.fenced:
                live.ungate()

    async def _claim(self, live: LiveRun) -> bool:
        """Make the run its session's running run in the store, waiting while another replica
        runs the session (ENQUEUE, INTERRUPT); False when refused (REJECT)."""
        run = live.run
        asked_to_cancel = ""
        while True:
            run.status = agent_pb2.RUN_STATUS_RUNNING
            other = await self._store.claim_run(run, self.owner, self._lease_until())
            if not other:
                live.claimed_at = time.monotonic()
                if live.accepted is not None and not live.accepted.done():
                    live.accepted.set_result(None)
                return True
            run.status = agent_pb2.RUN_STATUS_QUEUED
            if live.policy is ConflictPolicy.REJECT:
                if live.accepted is not None and not live.accepted.done():
                    live.accepted.set_exception(
                        Aborted(
                            f"session {run.session_id} already has an active run {other} (on another agent "
                            "replica); wait for it, cancel it, or send with on_conflict ENQUEUE or INTERRUPT"
                        )
                    )
                self._runs.pop(run.id, None)
                return False
            if live.accepted is not None and not live.accepted.done():
                live.accepted.set_result(None)
                await self._store.put_run(run, self.owner, self._lease_until())
            if live.policy is ConflictPolicy.INTERRUPT and asked_to_cancel != other:
                await self._store.request_cancel(other, "interrupted by a newer message")
                asked_to_cancel = other
            await self._wait_remote(other, REMOTE_POLL_SECONDS)

    async def _execute(self, live: LiveRun) -> None:
        run = live.run
        timer = None
        if self._run_timeout:
            # A run taken over keeps the time it had: the limit counts from its creation.
            elapsed = max(0.0, time.time() - run.create_time.ToNanoseconds() / 1e9)
            left = self._run_timeout - elapsed if live.resumed_after is not None else self._run_timeout
            timer = self._later(max(left, 0.0), self._time_up, live)
        try:
            if live.resumed_after is None:
                if not await self._claim(live):
                    return
            elif run.takeovers > MAX_TAKEOVERS:
                raise RunInterrupted(
                    f"the run was taken over {run.takeovers} times (agent replicas running it kept "
                    f"stopping; at most {MAX_TAKEOVERS}); the partial output is kept, send the message again"
                )
            step_limit = await self._body(live)
        except RunInterrupted as exc:
            run.status = agent_pb2.RUN_STATUS_INTERRUPTED
            run.error = exc.reason
            final: dict[str, object] = {"run_cancelled": agent_pb2.RunCancelled(reason=exc.reason)}
        except asyncio.CancelledError:
            if live.timed_out and not self._closing:
                # The time limit's cancel, not a client's: the run failed.
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                run.status = agent_pb2.RUN_STATUS_FAILED
                run.error = live.cancel_reason
                final = {"run_failed": agent_pb2.RunFailed(code="DEADLINE_EXCEEDED", message=run.error)}
            else:
                run.status = (
                    agent_pb2.RUN_STATUS_INTERRUPTED if self._closing else agent_pb2.RUN_STATUS_CANCELLED
                )
                final = {"run_cancelled": agent_pb2.RunCancelled(reason=live.cancel_reason or "cancelled")}
        except FireboxError as exc:
            run.status = agent_pb2.RUN_STATUS_FAILED
            run.error = exc.message
            final = {"run_failed": agent_pb2.RunFailed(code=exc.code.name, message=exc.message)}
        except Exception as exc:
            # A bug, not the client's doing: keep the run's data, say so in the run, log the trace.
            log.exception("run_failed_unexpectedly", run_id=run.id, error=repr(exc))
            run.status = agent_pb2.RUN_STATUS_FAILED
            run.error = f"internal error: {exc!r}"
            final = {"run_failed": agent_pb2.RunFailed(code="INTERNAL", message=run.error)}
        else:
            run.status = agent_pb2.RUN_STATUS_COMPLETED
            final = {
                "run_completed": agent_pb2.RunCompleted(
                    step_limit_reached=step_limit, output_truncated=live.output_truncated
                )
            }
        finally:
            if timer is not None:
                self._cancel_later(timer)
        run.end_time.CopyFrom(_now())
        if live.fenced:
            # Another replica goes on with it (or ended it) in the store; followers here get an
            # end that says so, however far the body got meanwhile.
            run.status = agent_pb2.RUN_STATUS_INTERRUPTED
            live.emit(run_cancelled=agent_pb2.RunCancelled(reason=LEASE_LOST_REASON))
            return
        # Stored before the last event goes out: a client that saw its run end may send the
        # next message to any replica, and must find the session free there. The stored run
        # counts that last event already.
        run.last_event_index = len(live.events) + 1
        try:
            owner = self.owner if self._store.shared else ""
            await asyncio.shield(self._store.put_run(run, only_owner=owner))
        except asyncio.CancelledError:
            pass  # cancelled again (shutdown) while storing: the write goes on, the end is still sent
        except Exception as exc:
            log.error("run_not_persisted", run_id=run.id, error=repr(exc))
        live.emit(**final)

    def cancel(self, run_id: str, reason: str = "cancelled by the client") -> LiveRun | None:
        """Stop a run if it is going or waiting; idempotent. None if this process never had it."""
        live = self._runs.get(run_id)
        if live is None:
            return None
        if live.done or live.cancelling:
            return live
        live.cancel_reason = reason
        lane = self._lanes.get(live.session_id)
        if lane is not None and live in lane.waiting:
            lane.waiting.remove(live)
            live.run.status = agent_pb2.RUN_STATUS_CANCELLED
            live.run.end_time.CopyFrom(_now())
            live.emit(run_cancelled=agent_pb2.RunCancelled(reason=reason))
            live.finish()
            self._later(self._retention, self._forget, live.id)
            self._persist_soon(live)
            self._spawn(self._store.append_events(live.id, live.events))
            if not lane.waiting and lane.active is None and not lane.held:
                self._lanes.pop(live.session_id, None)
        elif live.task is not None:
            live.task.cancel()
        return live

    async def cancel_elsewhere(self, run_id: str, reason: str, wait_seconds: float) -> bool:
        """Cancel a run another replica drives (through the store), waiting up to
        `wait_seconds` for it to end; False when it is not live anywhere."""
        if not await self._store.request_cancel(run_id, reason):
            return False
        deadline = time.monotonic() + wait_seconds
        while (left := deadline - time.monotonic()) > 0:
            stored = await self._store.get_run(run_id)
            if stored is None or stored.status not in _LIVE_RUN_STATES:
                break
            await self._wait_remote(run_id, min(left, REMOTE_POLL_SECONDS))
        return True

    async def cancel_session(self, session_id: str, reason: str) -> None:
        """Cancel a session's active and waiting runs and wait until they have ended."""
        lane = self._lanes.get(session_id)
        if lane is None:
            return
        for waiting in list(lane.waiting):
            self.cancel(waiting.id, reason)
        active = lane.active
        if active is not None:
            self.cancel(active.id, reason)
            if active.task is not None:
                await asyncio.wait({active.task})

    # -- following -------------------------------------------------------------------------

    async def follow(
        self, run_id: str, after_index: int, live: LiveRun | None = None
    ) -> AsyncIterator[agent_pb2.RunEvent]:
        """A run's events after `after_index`, then live ones until it ends: from memory when
        this process drives it (or `live`, the run a send just started), else from the store."""
        live = live or self._runs.get(run_id)
        if live is not None:
            async for event in live.follow(after_index):
                after_index = event.index
                yield event
            if not live.fenced:
                return
            # Taken over by another replica: the rest comes from the store, as the taker writes it.
        async for page in self._follow_stored(run_id, after_index):
            for event in page:
                yield event

    async def follow_batches(
        self, run_id: str, after_index: int, live: LiveRun | None = None
    ) -> AsyncIterator[list[agent_pb2.RunEvent]]:
        """`follow`, several events at a time (LiveRun.follow_batches)."""
        live = live or self._runs.get(run_id)
        if live is not None:
            async for batch in live.follow_batches(after_index):
                after_index = batch[-1].index
                yield batch
            if not live.fenced:
                return
        async for page in self._follow_stored(run_id, after_index):
            while page:
                n, size = 0, 0
                while n < len(page):
                    size += page[n].ByteSize()
                    if size > MAX_BATCH_BYTES and n:
                        break
                    n += 1
                yield page[:n]
                page = page[n:]

    async def _follow_stored(self, run_id: str, after_index: int) -> AsyncIterator[list[agent_pb2.RunEvent]]:
        """Pages of a run's events read from the store: a run another replica drives (live,
        woken by its notices) or one that has left memory."""
        stored = await self._store.get_run(run_id)
        if stored is None:
            raise NotFound(f"run {run_id} not found")
        if stored.status not in _LIVE_RUN_STATES and not await self._store.list_events(run_id, 0, 1):
            raise FailedPrecondition(
                f"run {run_id} ended and its events are no longer kept (they are kept "
                f"{self._retention:g}s after a run ends); its messages are in GetSession and its outcome "
                "in GetRun"
            )
        position = max(after_index, 0)
        ended_at: float | None = None
        while True:
            # Registered before reading, so a notice between the read and the wait is not lost.
            waiter = self._remote_waiter(run_id)
            try:
                page = await self._store.list_events(run_id, position, MAX_BATCH_EVENTS)
                if page:
                    position = page[-1].index
                    yield page
                    if is_terminal(page[-1]):
                        return
                    continue
                if ended_at is None:
                    current = await self._store.get_run(run_id)
                    if current is None:
                        return
                    if current.status not in _LIVE_RUN_STATES:
                        # The outcome is stored just before the last events: they follow within
                        # a flush, unless the owner died in between.
                        ended_at = time.monotonic()
                elif time.monotonic() - ended_at > ENDED_GRACE_SECONDS:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, REMOTE_POLL_SECONDS if ended_at is None else 0.05)
            finally:
                self._drop_remote_waiter(run_id, waiter)

    def _remote_waiter(self, run_id: str) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        self._remote_waiters.setdefault(run_id, []).append(waiter)
        return waiter

    def _drop_remote_waiter(self, run_id: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._remote_waiters.get(run_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._remote_waiters.pop(run_id, None)

    async def _wait_remote(self, run_id: str, seconds: float) -> None:
        """Until a notice about the run's events, or `seconds`."""
        waiter = self._remote_waiter(run_id)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, seconds)
        finally:
            self._drop_remote_waiter(run_id, waiter)

    def _on_notice(self, channel: str, run_id: str) -> None:
        if channel == EVENTS_CHANNEL:
            for waiter in self._remote_waiters.pop(run_id, []):
                if not waiter.done():
                    waiter.set_result(None)
        elif channel == CONTROL_CHANNEL and run_id in self._runs and not self._runs[run_id].done:
            self._spawn(self._control(run_id))

    async def _control(self, run_id: str) -> None:
        await self._renew()
        for handler in self.control_handlers:
            await handler(run_id)

    # -- leases ----------------------------------------------------------------------------

    async def _renew(self) -> None:
        """Extend this process's leases; act on cancels other replicas left for its runs, and
        stop the runs another replica took over (this one was too slow to renew): they must not
        go on twice."""
        asked = time.monotonic()
        held = await self._store.renew_leases(self.owner, self._lease_until())
        for run_id, reason in held.items():
            if reason:
                self.cancel(run_id, reason)
        for live in list(self._runs.values()):
            lost = (
                live.claimed_at is not None
                and live.claimed_at < asked
                and not live.done
                and not live.run.HasField("end_time")  # ending: its outcome is being stored
                and live.id not in held
            )
            if lost and not live.fenced:
                self._lost(live)

    def _lost(self, live: LiveRun) -> None:
        """Another replica took this run over: stop it here, writing nothing more of it."""
        if live.fenced:
            return
        live.fenced = True
        log.warning("run_lease_lost", run_id=live.id)
        live.mark_stored(live.stored)  # its followers go on from the store
        self.cancel(live.id, LEASE_LOST_REASON)

    async def _maintain(self) -> None:
        """Renew this process's leases every third of the lease; look for runs of replicas whose
        leases ran out every tenth (a cheap indexed query), so a takeover comes within about
        the lease of a replica's death."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self._lease / 10)
            try:
                if time.monotonic() - renewed >= self._lease / 3:
                    await self._renew()
                    renewed = time.monotonic()
                await self._take_over_expired()
            except Exception as exc:
                log.error("run_leases_not_kept", error=repr(exc))

    async def _take_over_expired(self) -> None:
        """Go on with the running runs of replicas whose leases ran out; end their queued ones
        (their messages were never stored) INTERRUPTED."""
        if self._closing:
            return
        now = time.time_ns()
        ended = await self._store.interrupt_expired(now, TAKEOVER_REASON)
        if ended:
            RUN_TAKEOVERS.labels("interrupted").inc(len(ended))
            log.warning("queued_runs_interrupted", count=len(ended), run_ids=ended[:20])
            for run_id in ended:
                self._later(self._retention, self._forget_taken, run_id)
        claimed_at = time.monotonic()
        # Runs claimed at an earlier look whose start failed (a store error reading their events)
        # are this process's now (its renewals keep them), so they are tried again here.
        retry, self._unresumed = self._unresumed, []
        claimed = await self._store.claim_expired(now, self.owner, self._lease_until(), TAKEOVERS_PER_SCAN)
        for run in claimed:
            RUN_TAKEOVERS.labels("continued").inc()
            log.warning("run_taken_over", run_id=run.id, session_id=run.session_id, takeovers=run.takeovers)
        for run in retry + claimed:
            try:
                await self._resume(run, claimed_at)
            except Exception as exc:
                log.error("run_not_resumed", run_id=run.id, error=repr(exc))
                self._unresumed.append(run)

    async def _resume(self, run: agent_pb2.Run, claimed_at: float) -> None:
        """Drive a run taken over from another replica: its stored events first, then its body
        goes on (RunResumed)."""
        events: list[agent_pb2.RunEvent] = []
        # Written in order, a transaction per batch, and deleted all at once: contiguous from 1.
        while page := await self._store.list_events(run.id, len(events), MAX_BATCH_EVENTS):
            events.extend(page)
        # The usage of its model calls so far: the owner stores it only when a run ends.
        run.usage.Clear()
        for event in events:
            if event.HasField("usage"):
                add_usage(run.usage, event.usage.call)
        options = RunOptions(approval_policy=run.approval_policy, request_id=run.request_id)
        live = LiveRun(run, "", options)
        live.events = events
        live.stored = len(events)
        live.resumed_after = len(events)
        run.last_event_index = len(events)
        live.claimed_at = claimed_at
        self._runs[run.id] = live
        lane = self._lanes.get(run.session_id)
        if lane is None:
            lane = self._lanes[run.session_id] = _SessionLane()
        else:
            lane = _SessionLane()  # the session has a lane here (a run waiting for this one)
        self._start(lane, live)

    def _forget_taken(self, run_id: str) -> None:
        self._spawn(self._store.delete_events(run_id))

    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        """callback(*args) after `delay` seconds, unless the manager shuts down first (its store
        is closed by then) or the returned handle is given to `_cancel_later`."""

        def fire() -> None:
            self._timers.discard(handle)
            if not self._closed:
                callback(*args)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)
        return handle

    def _cancel_later(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()
        self._timers.discard(handle)

    async def shutdown(self, grace: float) -> None:
        """Refuse new runs, give running ones `grace` seconds, then stop them as INTERRUPTED."""
        self._closing = True
        # Tasks, not runs: a finished run's task may still be writing its last events and outcome.
        tasks = {task for task in self._tasks if not task.done()}
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for live in list(self._runs.values()):
            if not live.done and live.task is not None:
                live.cancel_reason = live.cancel_reason or "the agent is shutting down"
                live.task.cancel()
        # A finished run's task (forgotten ones included) gets a little longer for its last writes.
        remaining = {t for t in tasks if not t.done()}
        if remaining:
            await asyncio.wait(remaining, timeout=5)
        if self._maintenance is not None:
            self._maintenance.cancel()
        # From here nothing new is scheduled (the store is closed after this returns); the
        # writes already under way are waited for.
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)

    def _forget(self, run_id: str) -> None:
        live = self._runs.pop(run_id, None)
        if live is not None:
            key = live.options.idempotency_key(live.session_id)
            if self._keys.get(key) == run_id:
                del self._keys[key]
        # The store keeps events as long as memory does: both are bounded by the retention.
        self._spawn(self._store.delete_events(run_id))


def _repeated(session_id: str, options: RunOptions, run_id: str) -> str:
    """The ALREADY_EXISTS message of a repeated send: what exists, and what to do instead."""
    if options.message_id:
        return (
            f"message {options.message_id} was already sent (run {run_id}, session {session_id}); "
            "StreamRun that run instead of sending it again"
        )
    return (
        f"resend {options.request_id} of message {options.resend_message_id} was already made (run {run_id}, "
        f"session {session_id}); StreamRun that run instead of resending"
    )
