"""Asking before a tool call runs, and the writable paths an answer can widen.

`ApprovalFlow.ask` is what the tool loop calls when a session's approval policy says a call needs
a decision: the reviewer model first (MODEL_REVIEW), then the person unless the reviewer decided;
bounded by the approval timeout (fail closed); the client told of both the question and the
answer; the decision and who made it written to the training log. `WritablePaths` changes a
session's writable paths in its workspace and its store, and lets one approved call write
beyond them for its duration.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from agent_service.approvals import ApprovalBroker, Decision, Resolution
from agent_service.connections import Connection
from agent_service.context import model_view
from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.generation import new_id
from agent_service.review import APPROVE, ASK, DENY, Action, ApprovalReviewer, Verdict
from agent_service.runs import LiveRun
from agent_service.session_workspace import SessionWorkspaces, sandbox_mode
from agent_service.store import Store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FailedPrecondition, NotFound
from firebox.common.logging import get_logger
from firebox.common.trainlog import FEEDBACK, TrainingLog
from firebox.common.workspace_paths import WORKDIR, is_writable, normalize_writable_paths
from firebox.trace.v1 import trace_pb2

log = get_logger("agent.approvals")

# Executor failures that stop the run rather than only the call.
_FATAL_CODES = ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED")

_DECISIONS = {
    Decision.APPROVE: agent_pb2.APPROVAL_DECISION_APPROVE,
    Decision.DENY: agent_pb2.APPROVAL_DECISION_DENY,
    Decision.APPROVE_EDITED: agent_pb2.APPROVAL_DECISION_APPROVE_EDITED,
}
_FEEDBACK_KINDS = {
    Decision.APPROVE: trace_pb2.FEEDBACK_KIND_APPROVAL_APPROVED,
    Decision.DENY: trace_pb2.FEEDBACK_KIND_APPROVAL_DENIED,
    Decision.APPROVE_EDITED: trace_pb2.FEEDBACK_KIND_APPROVAL_EDITED,
}


def directory(path: str) -> str:
    """The directory (relative to /workspace; "" for /workspace itself) that must be writable to
    create, change or remove `path`."""
    return posixpath.dirname(path.removeprefix(WORKDIR + "/")) if path != WORKDIR else ""


class WritablePaths:
    """A session's writable paths: in its workspace (when it has one) and in the store."""

    def __init__(self, store: Store, executor: ExecutorPool, workspaces: SessionWorkspaces) -> None:
        self._store = store
        self._executor = executor
        self._workspaces = workspaces

    async def set(self, session: agent_pb2.Session, paths: list[str]) -> agent_pb2.Session:
        """Replace the session's writable paths, in its workspace first (the shell keeps its
        state) and then in the store. The caller keeps runs off the session."""
        normalized = normalize_writable_paths(paths, "settings.writable_paths")
        stored = await self._store.get_session(session.id)
        if stored is None:
            raise NotFound(f"session {session.id} not found")
        if sandbox_mode(stored) == agent_pb2.SANDBOX_MODE_READ_ONLY:
            if normalized:
                raise FailedPrecondition(
                    f"session {session.id} is READ_ONLY (sandbox_mode): nothing in /workspace is writable"
                )
            return stored  # nothing to change: a read-only workspace has no writable paths
        if stored.workspace_id:
            try:
                await self._executor.set_writable_paths(stored.workspace_id, list(normalized))
            except ExecutorError as exc:
                if exc.code.name != "NOT_FOUND":
                    raise
                # Gone: the next tool call makes a new workspace, with these paths.
        del stored.settings.writable_paths[:]
        stored.settings.writable_paths.extend(normalized)
        stored.update_time.GetCurrentTime()
        await self._store.update_session(stored)
        del session.settings.writable_paths[:]
        session.settings.writable_paths.extend(normalized)
        log.info("writable_paths_set", session_id=session.id, writable_paths=list(normalized))
        return stored

    @contextlib.asynccontextmanager
    async def widened(
        self,
        session: agent_pb2.Session,
        paths: tuple[str, ...],
        restore: Callable[[Awaitable[object]], Awaitable[None]],
    ) -> AsyncIterator[None]:
        """Let one approved call write `paths` (their directories; all of /workspace for a file
        at its top) beyond the session's writable paths, and take that back afterwards (through
        `restore`, which finishes even while the run is being cancelled)."""
        current = tuple(session.settings.writable_paths)
        wanted = {directory(p) for p in paths if not is_writable(current, p)}
        if not wanted:
            yield
            return
        workspace_id, _shell = await self._workspaces.ensure(session)
        widened = [] if "" in wanted else list(normalize_writable_paths([*current, *wanted]))
        try:
            await self._executor.set_writable_paths(workspace_id, widened)
        except ExecutorError as exc:
            if exc.code.name in _FATAL_CODES:
                raise
            # E.g. a backend that cannot change a live sandbox: the call runs as it is, and the
            # model sees the writes refused.
            log.warning("writable_paths_not_widened", session_id=session.id, error=exc.message)
            yield
            return
        try:
            yield
        finally:
            await restore(self._executor.set_writable_paths(workspace_id, list(current)))


@dataclass(frozen=True)
class Question:
    """What is asked about one tool call, and in which turn."""

    session: agent_pb2.Session
    connection: Connection
    model: str
    policy: int
    generation_id: str
    call: agent_pb2.ToolCall
    command: str
    why: str
    paths: tuple[str, ...] = ()


class ApprovalFlow:
    """Asks about tool calls the session's approval policy holds back (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        training_log: TrainingLog,
        broker: ApprovalBroker,
        reviewer: ApprovalReviewer,
        writable: WritablePaths,
        timeout: float,
    ) -> None:
        self._store = store
        self._log = training_log
        self.broker = broker
        self.reviewer = reviewer
        self._writable = writable
        self._timeout = timeout

    async def ask(self, live: LiveRun, question: Question) -> Resolution:
        """Ask, wait (bounded), tell the client, and log the decision and who made it. An
        approval with always_allow_paths adds the directories of the question's paths to the
        session's writable paths."""
        call, session = question.call, question.session
        verdict, reviewer_model = await self._review(live, question)
        if verdict is not None and verdict.decision in (APPROVE, DENY):
            decided = Decision.APPROVE if verdict.decision == APPROVE else Decision.DENY
            resolution = Resolution(decided, verdict.reason, reviewed=True)
            decided_by = trace_pb2.APPROVAL_DECIDER_MODEL
        else:
            note = ""
            if verdict is not None:
                note = (
                    f"the reviewer asked for a person: {verdict.reason}"
                    if verdict.decision == ASK
                    else verdict.reason
                )
            live.emit(
                approval_requested=agent_pb2.ApprovalRequested(
                    tool_call=call,
                    command=question.command,
                    reason=question.why,
                    timeout_seconds=self._timeout,
                    paths=question.paths,
                    review_note=note,
                )
            )
            log.info("approval_requested", run_id=live.id, tool_call_id=call.id, tool=call.name)
            resolution = await self.broker.wait(live.id, call.id, self._timeout)
            decided_by = (
                trace_pb2.APPROVAL_DECIDER_TIMEOUT
                if resolution.timed_out
                else trace_pb2.APPROVAL_DECIDER_PERSON
            )
        edited = resolution.decision is Decision.APPROVE_EDITED
        added = await self._allow_paths(session, question.paths, resolution)
        live.emit(
            approval_resolved=agent_pb2.ApprovalResolved(
                tool_call_id=call.id,
                decision=_DECISIONS[resolution.decision],
                reason=resolution.reason,
                command=""
                if resolution.decision is Decision.DENY
                else (resolution.edited_command if edited else question.command),
                timed_out=resolution.timed_out,
                added_writable_paths=added,
                decided_by=decided_by,
                reviewer_model=reviewer_model,
            )
        )
        record = trace_pb2.FeedbackRecord(
            feedback_id=new_id("fb"),
            event=trace_pb2.FeedbackEvent(
                kind=_FEEDBACK_KINDS[resolution.decision],
                session_id=session.id,
                run_id=live.id,
                tool_call_id=call.id,
                generation_id=question.generation_id,
                suggested_text=question.command,
                edited_text=resolution.edited_command if edited else "",
                reason=resolution.reason,
                paths=question.paths,
                writable_paths_added=added,
                decided_by=decided_by,
                review_verdict=verdict.decision if verdict is not None else "",
                review_reason=verdict.reason if verdict is not None else "",
                reviewer_model=reviewer_model,
            ),
            source="agent",
        )
        record.server_time.GetCurrentTime()
        self._log.write(FEEDBACK, record)
        log.info(
            "approval_resolved", run_id=live.id, tool_call_id=call.id, decision=resolution.decision.value
        )
        return resolution

    async def _review(self, live: LiveRun, question: Question) -> tuple[Verdict | None, str]:
        """The reviewer model's verdict under MODEL_REVIEW (None under other policies), and its model."""
        if question.policy != agent_pb2.APPROVAL_POLICY_MODEL_REVIEW:
            return None, ""
        connection, model = self.reviewer.choose(question.connection, question.model)
        transcript = model_view(await self._store.list_messages(question.session.id))
        verdict = await self.reviewer.review(
            connection,
            model,
            live.content,
            transcript,
            Action(question.call.name, question.command, question.why, question.paths),
        )
        log.info("approval_reviewed", run_id=live.id, tool_call_id=question.call.id, verdict=verdict.decision)
        return verdict, model

    async def _allow_paths(
        self, session: agent_pb2.Session, paths: tuple[str, ...], resolution: Resolution
    ) -> list[str]:
        """With always_allow_paths on an approval: the paths' directories become writable for
        the session from now on; returns those that were added."""
        directories = [d for d in {directory(p) for p in paths} if d]
        if not (resolution.always_allow_paths and resolution.decision is not Decision.DENY and directories):
            return []
        before = set(session.settings.writable_paths)
        try:
            await self._writable.set(session, [*before, *directories])
        except ExecutorError as exc:
            if exc.code.name in _FATAL_CODES:
                raise
            log.warning("writable_paths_not_added", session_id=session.id, error=exc.message)
        return [p for p in session.settings.writable_paths if p not in before]
