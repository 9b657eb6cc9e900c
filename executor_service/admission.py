"""Admission control for sessionless executions: bounded running and waiting, per workspace and
for the whole executor.

Without it, 500 concurrent sessionless Executes each started a shell at once: the workspace hit
its pids limit, shells timed out starting, commands waited minutes, and the host's load soared.
Now at most `running_per_workspace` run in a workspace and `running` in the executor; the next
ones wait in one FIFO queue (at most `queued_per_workspace` per workspace and `queued` in all,
each for at most `queue_timeout` seconds); past that a call is refused at once with
RESOURCE_EXHAUSTED and a retry delay, never left to time out inside. Executions in a named
session are not counted here: a session runs one command at a time on a shell it already has.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from firebox.common import errors

DEFAULT_RUNNING_PER_WORKSPACE = 8
DEFAULT_QUEUED_PER_WORKSPACE = 32
DEFAULT_RUNNING = 64
DEFAULT_QUEUED = 256
DEFAULT_QUEUE_TIMEOUT = 60.0
# What a refusal suggests: about when a running command may have made room.
RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class AdmissionLimits:
    running_per_workspace: int = DEFAULT_RUNNING_PER_WORKSPACE
    queued_per_workspace: int = DEFAULT_QUEUED_PER_WORKSPACE
    running: int = DEFAULT_RUNNING
    queued: int = DEFAULT_QUEUED
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT


class Ticket:
    """One admitted execution's place; `release()` (idempotent) gives it back."""

    def __init__(self, admission: Admission, workspace_id: str) -> None:
        self._admission = admission
        self.workspace_id = workspace_id
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self.workspace_id)


class Admission:
    """The bounded places and queue (see the module docstring)."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits or AdmissionLimits()
        self._running: collections.Counter[str] = collections.Counter()
        self._queued: collections.Counter[str] = collections.Counter()
        self._running_total = 0
        # Waiters in arrival order: (workspace id, future set when admitted).
        self._waiting: collections.deque[tuple[str, asyncio.Future[None]]] = collections.deque()
        self.refused = 0

    @property
    def running(self) -> int:
        return self._running_total

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def running_in(self, workspace_id: str) -> int:
        return self._running[workspace_id]

    async def admit(self, workspace_id: str) -> Ticket:
        """A place to run in `workspace_id`: at once, after a bounded wait in the queue, or
        ResourceExhausted (with a retry delay) when the queue is full or the wait too long."""
        if not self._waiting and self._has_room(workspace_id):
            self._take(workspace_id)
            return Ticket(self, workspace_id)
        limits = self.limits
        if self._queued[workspace_id] >= limits.queued_per_workspace or len(self._waiting) >= limits.queued:
            self.refused += 1
            raise errors.ResourceExhausted(
                f"too many executions waiting (workspace {workspace_id}: {self._running[workspace_id]} "
                f"running, {self._queued[workspace_id]} waiting; executor: {self._running_total} running, "
                f"{len(self._waiting)} waiting); retry later",
                retry_after=RETRY_AFTER_SECONDS,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (workspace_id, waiter)
        self._waiting.append(entry)
        self._queued[workspace_id] += 1
        # Earlier waiters may all be for full workspaces: this one may run at once.
        self._wake()
        try:
            async with asyncio.timeout(limits.queue_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Admitted just as the wait ended: hand the place on.
                self._release(workspace_id)
            else:
                self._forget(entry)
            if isinstance(exc, TimeoutError):
                self.refused += 1
                raise errors.ResourceExhausted(
                    f"no place to run in workspace {workspace_id} within {limits.queue_timeout:g}s; retry later",
                    retry_after=RETRY_AFTER_SECONDS,
                ) from None
            raise
        return Ticket(self, workspace_id)

    def _has_room(self, workspace_id: str) -> bool:
        return (
            self._running[workspace_id] < self.limits.running_per_workspace
            and self._running_total < self.limits.running
        )

    def _take(self, workspace_id: str) -> None:
        self._running[workspace_id] += 1
        self._running_total += 1

    def _forget(self, entry: tuple[str, asyncio.Future[None]]) -> None:
        try:
            self._waiting.remove(entry)
        except ValueError:
            return
        self._dequeued(entry[0])

    def _dequeued(self, workspace_id: str) -> None:
        self._queued[workspace_id] -= 1
        if self._queued[workspace_id] <= 0:
            del self._queued[workspace_id]

    def _release(self, workspace_id: str) -> None:
        self._running[workspace_id] -= 1
        if self._running[workspace_id] <= 0:
            del self._running[workspace_id]
        self._running_total -= 1
        self._wake()

    def _wake(self) -> None:
        """Admit waiters in arrival order, skipping those whose workspace is full."""
        if not self._waiting or self._running_total >= self.limits.running:
            return
        for entry in list(self._waiting):
            if self._running_total >= self.limits.running:
                return
            workspace_id, waiter = entry
            if waiter.done() or not self._has_room(workspace_id):
                continue
            self._waiting.remove(entry)
            self._dequeued(workspace_id)
            self._take(workspace_id)
            waiter.set_result(None)
