"""A session's workspace as it was before each user turn: taken as the turn begins, bounded, and
restored by ForkSession and RewindSession (a rewind that brings the files back with the
conversation).

Each user turn begins with a snapshot of the session's workspace (the executor's
CreateSnapshot: its filesystem and /workspace), made while the model is first asked; the turn's
tools wait for it, so it shows the workspace before any of them ran. Its id is kept on the user
message (Message.workspace_snapshot_id, with its /workspace bytes). A session keeps its newest
`keep` turn snapshots, none older than `max_age` and together at most `max_bytes` of files (each
snapshot copies /workspace whole); the others are deleted and their messages' ids cleared. A session with
settings.no_turn_snapshots, or an agent with keep 0, takes none.
"""

from __future__ import annotations

import time

from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.session_workspace import LABEL_AGENT_SESSION
from agent_service.store import Store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FailedPrecondition
from firebox.common.logging import get_logger
from firebox.executor.v1 import executor_pb2

log = get_logger("agent.turn_snapshots")

DEFAULT_KEEP = 20
DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 3600.0
DEFAULT_MAX_BYTES = 4 * 1024 * 1024 * 1024
# Executor failures that mean the snapshot is simply not there any more.
_GONE = ("NOT_FOUND",)


class TurnSnapshots:
    """Takes, bounds and restores the per-turn workspace snapshots of sessions."""

    def __init__(
        self,
        store: Store,
        executor: ExecutorPool,
        keep: int,
        max_age: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._store = store
        self._executor = executor
        self.keep = keep
        self.max_age = max_age
        self.max_bytes = max_bytes

    def enabled(self, session: agent_pb2.Session) -> bool:
        return self.keep > 0 and not session.settings.no_turn_snapshots

    async def take(self, session: agent_pb2.Session, user: agent_pb2.Message) -> None:
        """Snapshot the session's workspace (`session` as the run read it when it began) for the
        turn `user` begins and record it on the message; then drop what is beyond the bounds. Nothing when the session has no workspace
        yet (the turn will make it: nothing to restore before it) or takes no snapshots. A
        failure is logged, never raised: the turn goes on without one."""
        if not session.workspace_id or not self.enabled(session):
            return
        if user.workspace_snapshot_id:  # a resend of this message: its old snapshot goes
            await self._delete(session.id, user)
        started = time.perf_counter()
        request = executor_pb2.CreateSnapshotRequest(
            workspace_id=session.workspace_id, name=f"turn-{user.id}"
        )
        try:
            snapshot = (await self._executor.create_snapshot(request)).snapshot
        except ExecutorError as exc:
            log.warning("turn_snapshot_failed", session_id=session.id, message_id=user.id, error=exc.message)
            return
        user.workspace_snapshot_id, user.workspace_snapshot_bytes = snapshot.id, snapshot.files_bytes
        await self._store.put_message(session.id, user)
        log.info(
            "turn_snapshot_taken",
            session_id=session.id,
            message_id=user.id,
            snapshot_id=snapshot.id,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        await self.prune(session.id)

    async def prune(self, session_id: str) -> None:
        """Keep the session's newest turn snapshots within the bounds: at most `keep`, none
        older than `max_age`, at most `max_bytes` of files together (newest first)."""
        taken = [m for m in await self._store.list_messages(session_id) if m.workspace_snapshot_id]
        cutoff = time.time() - self.max_age
        kept, total, full = 0, 0, False
        for message in reversed(taken):
            # The newest that fit, one after another: once one does not, none older is kept.
            total += message.workspace_snapshot_bytes
            full = full or kept >= self.keep or total > self.max_bytes or message.create_time.seconds < cutoff
            if full:
                await self._delete(session_id, message)
            else:
                kept += 1

    async def _delete(self, session_id: str, message: agent_pb2.Message) -> None:
        try:
            await self._executor.delete_snapshot(message.workspace_snapshot_id)
        except ExecutorError as exc:
            if exc.code.name not in _GONE:
                log.warning(
                    "turn_snapshot_not_deleted", snapshot_id=message.workspace_snapshot_id, error=exc.message
                )
                return
        message.workspace_snapshot_id, message.workspace_snapshot_bytes = "", 0
        await self._store.put_message(session_id, message)

    async def drop_all(self, session_id: str, messages: list[agent_pb2.Message]) -> None:
        """Delete the turn snapshots of `messages` (messages leaving the session)."""
        for message in messages:
            if message.workspace_snapshot_id:
                try:
                    await self._executor.delete_snapshot(message.workspace_snapshot_id)
                except ExecutorError as exc:
                    if exc.code.name not in _GONE:
                        log.warning("turn_snapshot_not_deleted", session_id=session_id, error=exc.message)

    async def restore(self, session: agent_pb2.Session, user: agent_pb2.Message, for_session: str) -> str:
        """A new workspace (labelled for `for_session`) as `session`'s was before `user`'s turn;
        "" when the session had none then. FailedPrecondition when that moment's files cannot be
        had (no snapshot was kept of a workspace that existed then)."""
        if user.workspace_snapshot_id:
            request = executor_pb2.CreateWorkspaceRequest(
                snapshot_id=user.workspace_snapshot_id, labels={LABEL_AGENT_SESSION: for_session}
            )
            try:
                return (await self._executor.create_workspace_from(request)).workspace.id
            except ExecutorError as exc:
                if exc.code.name not in _GONE:
                    raise
        elif not session.workspace_id or await self._made_after(session.workspace_id, user):
            return ""  # no workspace before that turn: the new history starts without one
        raise FailedPrecondition(
            f"the workspace of session {session.id} as it was before message {user.id} is not kept "
            f"(turn snapshots {'are off for the session' if not self.enabled(session) else 'dropped'}: the agent "
            f"keeps the newest {self.keep}, none older than {self.max_age / 3600:g} h, at most "
            f"{self.max_bytes >> 20} MiB of files together); its files cannot be restored"
        )

    async def _made_after(self, workspace_id: str, user: agent_pb2.Message) -> bool:
        """Whether the workspace was made after `user` was sent (or is gone)."""
        try:
            workspace = await self._executor.get_workspace(workspace_id)
        except ExecutorError as exc:
            if exc.code.name in _GONE:
                return True
            raise
        return workspace.create_time.ToNanoseconds() > user.create_time.ToNanoseconds()
