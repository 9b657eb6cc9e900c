"""Runs: the append-only event list of each run, its live followers, and who may run when.

A run's events get strictly increasing integer indices from 1. A follower reads the list by
position and waits on a wake-up when it has caught up, so replay-then-follow has no gap and no
duplicate whatever the timing, and a slow follower costs nothing but its own place in the list.
A finished run's events stay in memory for the configured retention, then go.

One session has at most one active run. The check and the claim happen in one synchronous step
on the event loop, so concurrent SendMessage calls cannot both win. On conflict the caller's
policy decides: reject (ABORTED naming the active run), enqueue (start after it) or interrupt
(cancel it, keeping its partial output, then start).

What a run does is not decided here: the manager is given a `RunBody` to call (the tool loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from agent_service.store import Store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import (
    Aborted,
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
        # Followers waiting for the next event: futures resolved by the next append (or finish).
        # Cheaper per event than an asyncio.Event made and set for each one, which the most
        # frequent event (a text delta, one per token) paid even with nobody waiting.
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def session_id(self) -> str:
        return self.run.session_id

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
        if self._waiters:
            self._wake_all()
        return record

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a follower cancelled while waiting left a cancelled future
                waiter.set_result(None)

    def finish(self) -> None:
        self.done = True
        self._wake_all()

    async def _next(self) -> None:
        """Wait until an event is appended or the run finishes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def follow(self, after_index: int) -> AsyncIterator[agent_pb2.RunEvent]:
        """Every event with an index above `after_index`, then live ones until the run ends."""
        position = max(after_index, 0)
        while True:
            while position < len(self.events):
                position += 1
                yield self.events[position - 1]
            if self.done:
                return
            await self._next()

    async def follow_batches(self, after_index: int) -> AsyncIterator[list[agent_pb2.RunEvent]]:
        """`follow`, as lists: every event appended since the previous list, at most
        MAX_BATCH_EVENTS of them and about MAX_BATCH_BYTES (an event larger than that goes
        alone). Consecutive lists continue each other exactly, so nothing is lost or repeated."""
        position = max(after_index, 0)
        while True:
            end = len(self.events)
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
            if self.done:
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
        self, store: Store, body: RunBody, retention_seconds: float, run_timeout: float | None = None
    ) -> None:
        self._store = store
        self._body = body
        self._retention = retention_seconds
        # A run still going after this many seconds is stopped (as a cancel: partial output kept,
        # open tool calls answered) and fails DEADLINE_EXCEEDED.
        self._run_timeout = run_timeout
        self._runs: dict[str, LiveRun] = {}
        self._lanes: dict[str, _SessionLane] = {}
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

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
            self._lanes.pop(session_id, None)

    def submit(
        self, session_id: str, content: str, policy: ConflictPolicy, options: RunOptions | None = None
    ) -> LiveRun:
        """Claim the session for a new run, or queue it, or refuse; synchronous, hence atomic."""
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
        )
        live = LiveRun(run, content, options)
        self._runs[run.id] = live
        if not busy:
            self._start(lane, live)
            return live
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

    def _persist_soon(self, live: LiveRun) -> None:
        snapshot = agent_pb2.Run()
        snapshot.CopyFrom(live.run)
        task = asyncio.create_task(self._store.put_run(snapshot))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start(self, lane: _SessionLane, live: LiveRun) -> None:
        lane.active = live
        live.run.status = agent_pb2.RUN_STATUS_RUNNING
        live.task = asyncio.create_task(self._drive(lane, live), name=f"run {live.id}")

    async def _drive(self, lane: _SessionLane, live: LiveRun) -> None:
        try:
            await self._execute(live)
        finally:
            live.finish()
            lane.active = None
            asyncio.get_running_loop().call_later(self._retention, self._forget, live.id)
            if lane.waiting and not self._closing and not lane.held:
                self._start(lane, lane.waiting.popleft())
            elif not lane.waiting and not lane.held:
                self._lanes.pop(live.session_id, None)

    def _time_up(self, live: LiveRun) -> None:
        if live.done or live.cancelling or live.task is None:
            return
        live.timed_out = True
        live.cancel_reason = f"the run reached its time limit of {self._run_timeout:g} s (--run-timeout)"
        live.task.cancel()

    async def _execute(self, live: LiveRun) -> None:
        run = live.run
        timer = (
            asyncio.get_running_loop().call_later(self._run_timeout, self._time_up, live)
            if self._run_timeout
            else None
        )
        try:
            step_limit = await self._body(live)
        except asyncio.CancelledError:
            if live.timed_out and not self._closing:
                # The time limit's cancel, not a client's: the run failed.
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                run.status = agent_pb2.RUN_STATUS_FAILED
                run.error = live.cancel_reason
                live.emit(run_failed=agent_pb2.RunFailed(code="DEADLINE_EXCEEDED", message=run.error))
            else:
                run.status = (
                    agent_pb2.RUN_STATUS_INTERRUPTED if self._closing else agent_pb2.RUN_STATUS_CANCELLED
                )
                live.emit(run_cancelled=agent_pb2.RunCancelled(reason=live.cancel_reason or "cancelled"))
        except FireboxError as exc:
            run.status = agent_pb2.RUN_STATUS_FAILED
            run.error = exc.message
            live.emit(run_failed=agent_pb2.RunFailed(code=exc.code.name, message=exc.message))
        except Exception as exc:
            # A bug, not the client's doing: keep the run's data, say so in the run, log the trace.
            log.exception("run_failed_unexpectedly", run_id=run.id, error=repr(exc))
            run.status = agent_pb2.RUN_STATUS_FAILED
            run.error = f"internal error: {exc!r}"
            live.emit(run_failed=agent_pb2.RunFailed(code="INTERNAL", message=run.error))
        else:
            run.status = agent_pb2.RUN_STATUS_COMPLETED
            live.emit(
                run_completed=agent_pb2.RunCompleted(
                    step_limit_reached=step_limit, output_truncated=live.output_truncated
                )
            )
        finally:
            if timer is not None:
                timer.cancel()
        run.end_time.CopyFrom(_now())
        try:
            await self._store.put_run(run)
        except Exception as exc:
            log.error("run_not_persisted", run_id=run.id, error=repr(exc))

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
            asyncio.get_running_loop().call_later(self._retention, self._forget, live.id)
            self._persist_soon(live)
            if not lane.waiting and lane.active is None and not lane.held:
                self._lanes.pop(live.session_id, None)
        elif live.task is not None:
            live.task.cancel()
        return live

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

    async def follow(self, run_id: str, after_index: int) -> AsyncIterator[agent_pb2.RunEvent]:
        live = await self._live(run_id)
        async for event in live.follow(after_index):
            yield event

    async def _live(self, run_id: str) -> LiveRun:
        """The run's live record; NOT_FOUND, or FAILED_PRECONDITION when its events are gone."""
        live = self._runs.get(run_id)
        if live is None:
            stored = await self._store.get_run(run_id)
            if stored is None:
                raise NotFound(f"run {run_id} not found")
            raise FailedPrecondition(
                f"run {run_id} ended and its events are no longer kept (they are kept "
                f"{self._retention:g}s after a run ends, and not across restarts); its messages are in "
                "GetSession and its outcome in GetRun"
            )
        return live

    async def follow_batches(self, run_id: str, after_index: int) -> AsyncIterator[list[agent_pb2.RunEvent]]:
        """`follow`, several events at a time (LiveRun.follow_batches)."""
        live = await self._live(run_id)
        async for batch in live.follow_batches(after_index):
            yield batch

    async def shutdown(self, grace: float) -> None:
        """Refuse new runs, give running ones `grace` seconds, then stop them as INTERRUPTED."""
        self._closing = True
        tasks = {live.task for live in self._runs.values() if live.task is not None and not live.done}
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for live in list(self._runs.values()):
            if not live.done:
                if live.task is not None:
                    live.cancel_reason = live.cancel_reason or "the agent is shutting down"
                    live.task.cancel()
        remaining = {t for t in tasks if not t.done()}
        if remaining:
            await asyncio.wait(remaining, timeout=5)

    def _forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
