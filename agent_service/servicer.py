"""The gRPC edge of the agent: validates requests, calls the domain, shapes responses.

Errors are raised as `firebox.common.errors` and become statuses in the shared interceptor.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from agent_service.approval_relay import ApprovalRelay
from agent_service.approvals import Decision, Resolution
from agent_service.config import AgentConfig
from agent_service.connections import Connections
from agent_service.context import estimate_tokens, model_view
from agent_service.executor_client import ExecutorError, forwardable_timeout
from agent_service.executor_pool import ExecutorPool
from agent_service.generation import generate, new_id, provider_messages
from agent_service.mcp_tools import session_servers
from agent_service.runs import ConflictPolicy, LiveRun, RunManager, RunOptions
from agent_service.store import Store
from agent_service.toolloop import ToolLoop
from firebox import __version__
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from firebox.common.logging import get_logger
from firebox.common.trainlog import FEEDBACK, TrainingLog
from firebox.common.workspace_paths import normalize_writable_paths
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

_Response = TypeVar("_Response")

log = get_logger("firebox.agent.servicer")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_FEEDBACK_EVENTS = 1000
MAX_TITLE_CHARS = 1000
# How long CancelRun waits for the run to wind down before answering with its state then.
CANCEL_WAIT_SECONDS = 5.0

_POLICIES = {
    agent_pb2.CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy.REJECT,
    agent_pb2.CONFLICT_POLICY_REJECT: ConflictPolicy.REJECT,
    agent_pb2.CONFLICT_POLICY_ENQUEUE: ConflictPolicy.ENQUEUE,
    agent_pb2.CONFLICT_POLICY_INTERRUPT: ConflictPolicy.INTERRUPT,
}


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    return value


def _page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    if value > MAX_PAGE_SIZE:
        raise InvalidArgument(field, f"must be at most {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """firebox.agent.v1.AgentService."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        runs: RunManager,
        connections: Connections,
        executor: ExecutorPool,
        training_log: TrainingLog,
        loop: ToolLoop,
    ) -> None:
        self._loop = loop
        self._config = config
        self._store = store
        self._runs = runs
        # Decisions for runs another replica drives go through the store; ones for this
        # replica's runs that another replica received come back the same way.
        self._approval_relay = ApprovalRelay(store, loop.approvals)
        runs.control_handlers.append(self._approval_relay.take)
        self._connections = connections
        self._executor = executor
        self._log = training_log

    # -- sessions --------------------------------------------------------------------------

    async def _session(self, session_id: str, field: str = "session_id") -> agent_pb2.Session:
        session = await self._store.get_session(_require(session_id, field))
        if session is None:
            raise NotFound(f"session {session_id} not found")
        session.active_run_id = self._runs.active_run_id(session_id) or await self._store.running_run_id(
            session_id
        )
        session.context_window = self._context_window(session)
        return session

    def _context_window(self, session: agent_pb2.Session) -> int:
        """The window of the session's connection (the default's if it names one this agent no
        longer has: the session can still be read)."""
        try:
            return self._connections.get(session.settings.connection).context_window
        except InvalidArgument:
            return self._connections.default.context_window

    async def CreateSession(
        self, request: agent_pb2.CreateSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.CreateSessionResponse:
        if len(request.title) > MAX_TITLE_CHARS:
            raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters")
        if request.settings.max_steps < 0:
            raise InvalidArgument("settings.max_steps", "must not be negative (0 means the server's default)")
        if request.settings.max_output_tokens < 0:
            raise InvalidArgument(
                "settings.max_output_tokens", "must not be negative (0 means the server's default)"
            )
        _check_enum(request.settings.approval_policy, agent_pb2.ApprovalPolicy, "settings.approval_policy")
        self._connections.get(request.settings.connection, "settings.connection")
        _check_enum(request.settings.sandbox_mode, agent_pb2.SandboxMode, "settings.sandbox_mode")
        writable_paths = normalize_writable_paths(request.settings.writable_paths, "settings.writable_paths")
        if writable_paths and request.settings.sandbox_mode == agent_pb2.SANDBOX_MODE_READ_ONLY:
            raise InvalidArgument("settings.writable_paths", "a READ_ONLY session has no writable paths")
        del request.settings.writable_paths[:]
        request.settings.writable_paths.extend(writable_paths)
        session_servers(request.settings, self._loop.mcp.operator_names)
        session = _new_session(request.title, request.settings, request.labels)
        await self._store.create_session(session)
        session.context_window = self._context_window(session)
        log.info(
            "session_created",
            session_id=session.id,
            connection=self._connections.get(session.settings.connection).name,
        )
        return agent_pb2.CreateSessionResponse(session=session)

    async def GetSession(
        self, request: agent_pb2.GetSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.GetSessionResponse:
        session = await self._session(request.session_id)
        response = agent_pb2.GetSessionResponse(session=session)
        if request.include_messages:
            response.messages.extend(await self._store.list_messages(session.id))
        return response

    async def ListSessions(
        self, request: agent_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ListSessionsResponse:
        sessions, token = await self._store.list_sessions(_page_size(request.page_size), request.page_token)
        for session in sessions:
            session.active_run_id = self._runs.active_run_id(session.id)
            session.context_window = self._context_window(session)
        return agent_pb2.ListSessionsResponse(sessions=sessions, next_page_token=token)

    async def DeleteSession(
        self, request: agent_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.DeleteSessionResponse:
        session = await self._session(request.session_id)
        await self._runs.cancel_session(session.id, "the session was deleted")
        await self._store.delete_session(session.id)
        await self._loop.mcp.forget_session(session.id)
        if session.workspace_id:
            # Best effort: the session is gone either way; a workspace left behind is logged.
            try:
                await self._executor.delete_workspace(session.workspace_id, deadline=30)
            except Exception as exc:
                log.warning(
                    "workspace_not_deleted",
                    session_id=session.id,
                    workspace_id=session.workspace_id,
                    error=getattr(exc, "message", repr(exc)),
                )
        log.info("session_deleted", session_id=session.id)
        return agent_pb2.DeleteSessionResponse()

    async def UpdateSession(
        self, request: agent_pb2.UpdateSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.UpdateSessionResponse:
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask", f"name the fields to change: {', '.join(_UPDATABLE)}")
        unknown = [p for p in paths if p not in _UPDATABLE]
        if unknown:
            raise InvalidArgument(
                "update_mask", f"cannot change {', '.join(unknown)}; changeable: {', '.join(_UPDATABLE)}"
            )
        if "title" in paths and len(request.title) > MAX_TITLE_CHARS:
            raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters")
        if "settings.connection" in paths:
            self._connections.get(request.settings.connection, "settings.connection")
        session = await self._session(request.session_id)
        # Refused while a run is active: a run reads the settings once, at its start (so a new
        # connection or model is used from the session's next run).
        with self._runs.hold(session.id):
            if "settings.writable_paths" in paths:
                await self._loop.set_writable_paths(session, list(request.settings.writable_paths))
            plain = [p for p in paths if p != "settings.writable_paths"]
            if plain:
                stored = await self._store.get_session(session.id)
                if stored is None:
                    raise NotFound(f"session {session.id} not found")
                if "title" in paths:
                    stored.title = request.title
                if "settings.connection" in paths:
                    stored.settings.connection = request.settings.connection
                if "settings.model" in paths:
                    stored.settings.model = request.settings.model
                stored.update_time.GetCurrentTime()
                await self._store.update_session(stored)
        log.info("session_updated", session_id=session.id, fields=paths)
        return agent_pb2.UpdateSessionResponse(session=await self._session(session.id))

    async def ClearSession(
        self, request: agent_pb2.ClearSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ClearSessionResponse:
        session = await self._session(request.session_id)
        async with self._runs.take_over(session.id, "the session was cleared") as cancelled:
            counts = await self._store.clear_conversation(session.id, time.time_ns())
        if counts is None:
            raise NotFound(f"session {session.id} not found")
        messages, runs = counts
        self._log_session_event(
            trace_pb2.FEEDBACK_KIND_SESSION_CLEARED,
            session.id,
            f"cleared {messages} messages and {runs} runs",
            run_id=cancelled,
        )
        log.info("session_cleared", session_id=session.id, messages=messages, runs=runs, cancelled=cancelled)
        return agent_pb2.ClearSessionResponse(
            session=await self._session(session.id),
            cleared_message_count=messages,
            cleared_run_count=runs,
            cancelled_run_id=cancelled,
        )

    async def ForkSession(
        self, request: agent_pb2.ForkSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ForkSessionResponse:
        source, user, messages = await self._turn_of(request.session_id, request.message_id)
        fork = _new_session(source.title, source.settings, source.labels)
        fork.workspace_id = await self._loop.snapshots.restore(source, user, fork.id)
        await self._store.create_session(fork)
        kept = messages[: [m.id for m in messages].index(user.id)]
        for message in kept:
            # Its own ids; the turn snapshots stay the original's (each session prunes its own).
            copy = agent_pb2.Message()
            copy.CopyFrom(message)
            copy.id, copy.workspace_snapshot_id, copy.workspace_snapshot_bytes = new_id("msg"), "", 0
            await self._store.put_message(fork.id, copy)
        self._log_session_event(
            trace_pb2.FEEDBACK_KIND_SESSION_FORKED,
            fork.id,
            f"forked from {source.id} with {len(kept)} messages; workspace "
            + (
                f"{fork.workspace_id} restored from snapshot {user.workspace_snapshot_id}"
                if fork.workspace_id
                else "none"
            ),
            message_id=user.id,
            parent=source.id,
        )
        log.info(
            "session_forked",
            session_id=fork.id,
            parent=source.id,
            message_id=user.id,
            workspace_id=fork.workspace_id,
        )
        return agent_pb2.ForkSessionResponse(session=await self._session(fork.id), message_count=len(kept))

    async def RewindSession(
        self, request: agent_pb2.RewindSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.RewindSessionResponse:
        session, user, messages = await self._turn_of(request.session_id, request.message_id)
        _refuse_if_running_elsewhere(session, self._runs)
        with self._runs.hold(session.id):
            # The files first: when they cannot be had, nothing has changed.
            workspace_id = await self._loop.snapshots.restore(session, user, session.id)
            index = [m.id for m in messages].index(user.id)
            removed = messages[index:]
            if index:
                await self._store.rewind(session.id, messages[index - 1])
            else:
                await self._store.clear_conversation(session.id, time.time_ns())
            stored = await self._store.get_session(session.id)
            if stored is None:
                raise NotFound(f"session {session.id} not found")
            replaced = stored.workspace_id
            stored.workspace_id, stored.shell_session_id = workspace_id, ""
            stored.update_time.GetCurrentTime()
            await self._store.update_session(stored)
            if replaced and replaced != workspace_id:
                try:
                    await self._executor.delete_workspace(replaced)
                except ExecutorError as exc:
                    log.warning("rewound_workspace_not_deleted", workspace_id=replaced, error=exc.message)
            await self._loop.snapshots.drop_all(session.id, removed)
        self._log_session_event(
            trace_pb2.FEEDBACK_KIND_SESSION_REWOUND,
            session.id,
            f"removed {len(removed)} messages; workspace "
            + (
                f"{workspace_id} restored from snapshot {user.workspace_snapshot_id}"
                if workspace_id
                else "none"
            ),
            message_id=user.id,
        )
        log.info("session_rewound", session_id=session.id, message_id=user.id, removed=len(removed))
        return agent_pb2.RewindSessionResponse(
            session=await self._session(session.id), removed_message_count=len(removed)
        )

    async def _turn_of(
        self, session_id: str, message_id: str
    ) -> tuple[agent_pb2.Session, agent_pb2.Message, list[agent_pb2.Message]]:
        """The session, its user message `message_id` and all its messages; a precise error
        when the message is not a user message of the session."""
        _require(message_id, "message_id")
        session = await self._session(session_id)
        messages = await self._store.list_messages(session.id)
        user = next((m for m in messages if m.id == message_id), None)
        if user is None:
            raise NotFound(f"message {message_id} not found in session {session.id}")
        if user.role != agent_pb2.ROLE_USER:
            raise InvalidArgument(
                "message_id",
                f"message {user.id} is a {agent_pb2.Role.Name(user.role)} message; a turn begins at a user message",
            )
        return session, user, messages

    def _log_session_event(
        self,
        kind: trace_pb2.FeedbackKind,
        session_id: str,
        reason: str,
        *,
        run_id: str = "",
        message_id: str = "",
        parent: str = "",
    ) -> None:
        """A training-log event of the session's history (cleared, forked, rewound), so datasets
        do not join history across it."""
        event = trace_pb2.FeedbackEvent(
            kind=kind,
            session_id=session_id,
            run_id=run_id,
            message_id=message_id,
            parent_session_id=parent,
            reason=reason,
        )
        record = trace_pb2.FeedbackRecord(feedback_id=new_id("fb"), event=event, source="agent")
        record.server_time.GetCurrentTime()
        self._log.write(FEEDBACK, record)

    # -- runs ------------------------------------------------------------------------------

    async def SendMessage(
        self, request: agent_pb2.SendMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agent_pb2.SendMessageResponse]:
        _require(request.session_id, "session_id")
        if not request.content.strip():
            raise InvalidArgument("content", "must not be empty")
        policy = _POLICIES.get(request.on_conflict)
        if policy is None:
            raise InvalidArgument(
                "on_conflict",
                f"unknown conflict policy {request.on_conflict}; use REJECT, ENQUEUE or INTERRUPT",
            )
        _check_enum(request.approval_policy, agent_pb2.ApprovalPolicy, "approval_policy")
        _check_enum(request.sandbox_mode, agent_pb2.SandboxMode, "sandbox_mode")
        _check_client_id(request.message_id, "message_id")
        session = await self._session(request.session_id)
        _check_sandbox_unchanged(session, request.sandbox_mode)
        if request.message_id:
            found = await self._store.find_message(request.message_id)
            if found is not None:
                owner, existing = found
                if owner != session.id:
                    raise AlreadyExists(
                        f"message id {request.message_id} is used by another session; choose another"
                    )
                raise AlreadyExists(
                    f"message {existing.id} was already sent (run {existing.run_id}, session {owner}); "
                    "StreamRun that run instead of sending it again"
                )
        # No provider, no model, or a connection the agent no longer has: say so now, as a
        # status, rather than as a failed run.
        self._loop.connection(session).resolve_model(session.settings.model)
        live = self._runs.submit(
            session.id,
            request.content,
            policy,
            RunOptions(approval_policy=request.approval_policy, message_id=request.message_id),
        )
        await live.wait_accepted()
        log.info("run_submitted", run_id=live.id, session_id=session.id, policy=policy.value)
        async for response in _responses(
            request.batch_events,
            partial(self._runs.follow, live.id, 0, live),
            partial(self._runs.follow_batches, live.id, 0, live),
            agent_pb2.SendMessageResponse,
        ):
            yield response

    async def StreamRun(
        self, request: agent_pb2.StreamRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agent_pb2.StreamRunResponse]:
        _require(request.run_id, "run_id")
        if request.after_index < 0:
            raise InvalidArgument("after_index", f"must be 0 or more, got {request.after_index}")
        async for response in _responses(
            request.batch_events,
            partial(self._runs.follow, request.run_id, request.after_index),
            partial(self._runs.follow_batches, request.run_id, request.after_index),
            agent_pb2.StreamRunResponse,
        ):
            yield response

    async def _run(self, run_id: str) -> agent_pb2.Run:
        live = self._runs.get(_require(run_id, "run_id"))
        if live is not None:
            return live.run
        stored = await self._store.get_run(run_id)
        if stored is None:
            raise NotFound(f"run {run_id} not found")
        return stored

    async def CancelRun(
        self, request: agent_pb2.CancelRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.CancelRunResponse:
        live = self._runs.cancel(_require(request.run_id, "run_id"))
        if live is not None:
            await _wait_finished(live, CANCEL_WAIT_SECONDS)
            log.info("run_cancel_requested", run_id=live.id)
        elif await self._runs.cancel_elsewhere(
            request.run_id, "cancelled by the client", CANCEL_WAIT_SECONDS
        ):
            log.info("run_cancel_requested", run_id=request.run_id, elsewhere=True)
        return agent_pb2.CancelRunResponse(run=await self._run(request.run_id))

    async def GetRun(
        self, request: agent_pb2.GetRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.GetRunResponse:
        return agent_pb2.GetRunResponse(run=await self._run(request.run_id))

    async def ListRuns(
        self, request: agent_pb2.ListRunsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ListRunsResponse:
        session = await self._session(request.session_id)
        runs, token = await self._store.list_runs(
            session.id, _page_size(request.page_size), request.page_token
        )
        # Runs this process is driving are fresher in memory than on disk.
        runs = [self._runs.get(r.id).run if self._runs.get(r.id) else r for r in runs]  # type: ignore[union-attr]
        return agent_pb2.ListRunsResponse(runs=runs, next_page_token=token)

    # -- stateless -------------------------------------------------------------------------

    async def Generate(
        self, request: agent_pb2.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agent_pb2.GenerateResponse]:
        connection = self._connections.get(request.connection)
        async for response in generate(connection, self._log, request):
            yield response

    async def LogEvents(
        self, request: agent_pb2.LogEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.LogEventsResponse:
        if len(request.events) > MAX_FEEDBACK_EVENTS:
            raise InvalidArgument(
                "events", f"at most {MAX_FEEDBACK_EVENTS} events per call, got {len(request.events)}"
            )
        for index, event in enumerate(request.events):
            if event.kind == trace_pb2.FEEDBACK_KIND_UNSPECIFIED:
                raise InvalidArgument(f"events[{index}].kind", "must be set")
            if event.kind not in trace_pb2.FeedbackKind.values():
                raise InvalidArgument(f"events[{index}].kind", f"unknown feedback kind {event.kind}")
            try:
                # The training log writes proto-JSON: a value it cannot write (a timestamp out of
                # range) would be counted as accepted, then dropped.
                json_format.MessageToDict(event)
            except (json_format.SerializeToJsonError, ValueError) as exc:
                raise InvalidArgument(f"events[{index}]", f"cannot be recorded: {exc}") from None
        now = Timestamp()
        now.GetCurrentTime()
        for event in request.events:
            record = trace_pb2.FeedbackRecord(
                feedback_id=new_id("fb"), event=event, server_time=now, source="client"
            )
            self._log.write(FEEDBACK, record)
        return agent_pb2.LogEventsResponse(accepted=len(request.events))

    async def Execute(
        self,
        request_iterator: AsyncIterator[executor_pb2.ExecuteRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[executor_pb2.ExecuteResponse]:
        deadline = forwardable_timeout(context.time_remaining())
        async for response in self._executor.forward_execute(request_iterator, deadline):
            yield response

    # -- workspaces, forwarded to the executor replica that owns them -----------------------

    async def CreateWorkspace(
        self, request: executor_pb2.CreateWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.CreateWorkspaceResponse:
        deadline = forwardable_timeout(context.time_remaining()) or 120.0
        return await self._executor.create_workspace_from(request, deadline)

    async def CreateWorkspaceWithProgress(
        self, request: executor_pb2.CreateWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[executor_pb2.CreateWorkspaceWithProgressResponse]:
        messages = self._executor.create_workspace_with_progress(
            request, forwardable_timeout(context.time_remaining())
        )
        try:
            async for message in messages:
                yield message
        finally:
            await messages.aclose()

    async def GetWorkspace(
        self, request: executor_pb2.GetWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.GetWorkspaceResponse:
        workspace_id = _require(request.workspace_id, "workspace_id")
        return executor_pb2.GetWorkspaceResponse(workspace=await self._executor.get_workspace(workspace_id))

    async def ListWorkspaces(
        self, request: executor_pb2.ListWorkspacesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.ListWorkspacesResponse:
        return executor_pb2.ListWorkspacesResponse(workspaces=await self._executor.list_workspaces())

    async def DeleteWorkspace(
        self, request: executor_pb2.DeleteWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.DeleteWorkspaceResponse:
        workspace_id = _require(request.workspace_id, "workspace_id")
        await self._executor.delete_workspace(workspace_id)
        log.info("workspace_deleted", workspace_id=workspace_id)
        return executor_pb2.DeleteWorkspaceResponse()

    async def CreateSnapshot(
        self, request: executor_pb2.CreateSnapshotRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.CreateSnapshotResponse:
        _require(request.workspace_id, "workspace_id")
        deadline = forwardable_timeout(context.time_remaining()) or 600.0
        return await self._executor.create_snapshot(request, deadline)

    async def ListSnapshots(
        self, request: executor_pb2.ListSnapshotsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.ListSnapshotsResponse:
        return executor_pb2.ListSnapshotsResponse(
            snapshots=await self._executor.list_snapshots(request.workspace_id)
        )

    async def DeleteSnapshot(
        self, request: executor_pb2.DeleteSnapshotRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.DeleteSnapshotResponse:
        snapshot_id = _require(request.snapshot_id, "snapshot_id")
        await self._executor.delete_snapshot(snapshot_id)
        return executor_pb2.DeleteSnapshotResponse()

    async def PauseWorkspace(
        self, request: executor_pb2.PauseWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.PauseWorkspaceResponse:
        workspace_id = _require(request.workspace_id, "workspace_id")
        deadline = forwardable_timeout(context.time_remaining()) or 60.0
        return executor_pb2.PauseWorkspaceResponse(
            workspace=await self._executor.pause_workspace(workspace_id, deadline)
        )

    async def ResumeWorkspace(
        self, request: executor_pb2.ResumeWorkspaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_pb2.ResumeWorkspaceResponse:
        workspace_id = _require(request.workspace_id, "workspace_id")
        deadline = forwardable_timeout(context.time_remaining()) or 60.0
        return executor_pb2.ResumeWorkspaceResponse(
            workspace=await self._executor.resume_workspace(workspace_id, deadline)
        )

    # -- approvals, compaction, edits ------------------------------------------------------

    async def ResolveApproval(
        self, request: agent_pb2.ResolveApprovalRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ResolveApprovalResponse:
        _require(request.run_id, "run_id")
        _require(request.tool_call_id, "tool_call_id")
        decision = _DECISIONS.get(request.decision)
        if decision is None:
            raise InvalidArgument("decision", "must be APPROVE, DENY or APPROVE_EDITED")
        if decision is not Decision.APPROVE_EDITED and request.edited_command:
            raise InvalidArgument("edited_command", "is only allowed with APPROVE_EDITED")
        if decision is Decision.DENY and request.always_allow_paths:
            raise InvalidArgument("always_allow_paths", "is only allowed with APPROVE or APPROVE_EDITED")
        resolution = Resolution(
            decision, request.reason, request.edited_command, always_allow_paths=request.always_allow_paths
        )
        stored = None if self._runs.get(request.run_id) else await self._store.get_run(request.run_id)
        if stored is not None and stored.status in (
            agent_pb2.RUN_STATUS_RUNNING,
            agent_pb2.RUN_STATUS_QUEUED,
        ):
            if decision is Decision.APPROVE_EDITED and not request.edited_command.strip():
                raise InvalidArgument("edited_command", "is required with APPROVE_EDITED")
            # Driven by another replica.
            await self._approval_relay.deliver(request.run_id, request.tool_call_id, resolution)
        else:
            self._loop.approvals.resolve(
                request.run_id,
                request.tool_call_id,
                resolution,
                self._runs.get(request.run_id) is not None or stored is not None,
            )
        log.info(
            "approval_decided",
            run_id=request.run_id,
            tool_call_id=request.tool_call_id,
            decision=decision.value,
        )
        return agent_pb2.ResolveApprovalResponse()

    async def CompactSession(
        self, request: agent_pb2.CompactSessionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agent_pb2.CompactSessionResponse]:
        session = await self._session(request.session_id)
        connection = self._loop.connection(session)
        model = connection.resolve_model(session.settings.model)
        queue: asyncio.Queue[agent_pb2.CompactSessionResponse | None] = asyncio.Queue()
        _refuse_if_running_elsewhere(session, self._runs)
        with self._runs.hold(session.id):
            stored = await self._store.list_messages(session.id)
            if not stored:
                raise FailedPrecondition(f"session {session.id} has no messages to compact")
            offered = await self._loop.catalog.offered()
            tools_tokens = estimate_tokens((), offered.specs)
            before = estimate_tokens(
                provider_messages(self._loop.system_prompt(session), model_view(stored)), offered.specs
            )
            yield agent_pb2.CompactSessionResponse(started=agent_pb2.CompactionStarted(tokens_before=before))

            def on_delta(text: str) -> None:
                queue.put_nowait(
                    agent_pb2.CompactSessionResponse(summary_delta=agent_pb2.TextDelta(text=text))
                )

            # The summary is written in a task of its own, so it completes (and is stored) even if
            # this client goes away; its deltas are relayed meanwhile.
            task = asyncio.ensure_future(
                self._loop.compact(session, connection, model, stored, tools_tokens, on_delta=on_delta)
            )
            task.add_done_callback(lambda _t: queue.put_nowait(None))
            try:
                while (item := await queue.get()) is not None:
                    yield item
            finally:
                if not task.done():
                    await asyncio.wait({task})
            result = task.result()
            yield agent_pb2.CompactSessionResponse(
                compacted=agent_pb2.ContextCompacted(
                    tokens_before=result.tokens_before,
                    tokens_after=result.tokens_after,
                    marker_message_id=result.marker.id,
                )
            )

    async def EditMessage(
        self, request: agent_pb2.EditMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agent_pb2.EditMessageResponse]:
        _require(request.message_id, "message_id")
        if request.action not in (agent_pb2.EDIT_ACTION_SAVE, agent_pb2.EDIT_ACTION_RESEND):
            raise InvalidArgument("action", "must be SAVE or RESEND")
        if not request.content.strip():
            raise InvalidArgument("content", "must not be empty")
        session = await self._session(request.session_id)
        message = await self._store.get_message(session.id, request.message_id)
        if message is None:
            raise NotFound(f"message {request.message_id} not found in session {session.id}")
        if message.role != agent_pb2.ROLE_USER:
            raise InvalidArgument(
                "message_id",
                f"message {message.id} is a {agent_pb2.Role.Name(message.role)} message; only user "
                "messages can be edited",
            )
        _check_client_id(request.request_id, "request_id")
        if request.request_id and request.action != agent_pb2.EDIT_ACTION_RESEND:
            raise InvalidArgument("request_id", "is only for RESEND")
        if request.action == agent_pb2.EDIT_ACTION_RESEND:
            self._loop.connection(session).resolve_model(session.settings.model)
        if request.request_id and message.run_id:
            last = await self._store.get_run(message.run_id)
            if last is not None and last.request_id == request.request_id:
                raise AlreadyExists(
                    f"resend {request.request_id} of message {message.id} was already made (run {last.id}); "
                    "StreamRun that run instead of resending"
                )
        # Checked again after the awaits above, and claimed in the same step: atomic.
        if self._runs.busy(session.id):
            active = self._runs.active_run_id(session.id)
            raise FailedPrecondition(
                f"session {session.id} has an active run{' ' + active if active else ''}; wait for it or "
                "cancel it before editing"
            )
        if request.action == agent_pb2.EDIT_ACTION_SAVE:
            _refuse_if_running_elsewhere(session, self._runs)
            with self._runs.hold(session.id):
                message.content = request.content
                await self._store.put_message(session.id, message)
            log.info("message_edited", session_id=session.id, message_id=message.id)
            yield agent_pb2.EditMessageResponse(message=message)
            return
        live = self._runs.submit(
            session.id,
            request.content,
            ConflictPolicy.REJECT,
            RunOptions(resend_message_id=message.id, request_id=request.request_id),
        )
        await live.wait_accepted()
        message.content = request.content
        yield agent_pb2.EditMessageResponse(message=message)
        async for response in _responses(
            request.batch_events,
            partial(self._runs.follow, live.id, 0, live),
            partial(self._runs.follow_batches, live.id, 0, live),
            agent_pb2.EditMessageResponse,
        ):
            yield response

    async def ListTools(
        self, request: agent_pb2.ListToolsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.ListToolsResponse:
        session = await self._session(request.session_id) if request.session_id else None
        offered = await self._loop.catalog.offered(session)
        return agent_pb2.ListToolsResponse(
            tools=[tool.info() for tool in offered.tools.values()],
            mcp_servers=await self._loop.mcp.statuses(session),
        )

    async def GetServerInfo(
        self, request: agent_pb2.GetServerInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.GetServerInfoResponse:
        default = self._connections.default
        return agent_pb2.GetServerInfoResponse(
            version=__version__,
            default_model=default.spec.default_model,
            provider_configured=default.provider.configured,
            connections=[
                agent_pb2.ProviderConnection(
                    name=c.name,
                    wire_format=c.spec.wire_format,
                    default_model=c.spec.default_model,
                    context_window=c.context_window,
                    configured=c.provider.configured,
                )
                for c in self._connections
            ],
            executor_target=self._config.executor,
            dropped_log_records=self._log.dropped,
            executors=[
                agent_pb2.ExecutorReplica(
                    address=r.address,
                    instance_id=r.instance_id or "",
                    reachable=r.reachable,
                    workspace_count=r.workspace_count,
                )
                for r in self._executor.replicas()
            ],
        )


def _check_enum(value: int, enum: object, field: str) -> None:
    if value not in enum.values():  # type: ignore[attr-defined]
        names = ", ".join(n for n in enum.keys() if not n.endswith("UNSPECIFIED"))  # type: ignore[attr-defined]
        raise InvalidArgument(field, f"unknown value {value}; use one of {names}")


# Client-chosen ids (SendMessageRequest.message_id, EditMessageRequest.request_id).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _check_client_id(value: str, field: str) -> None:
    if value and not _CLIENT_ID.fullmatch(value):
        raise InvalidArgument(field, "must be 1-128 characters of A-Z a-z 0-9 . _ : -")


def _check_sandbox_unchanged(session: agent_pb2.Session, requested: int) -> None:
    """A message may not change the sandbox: the workspace's isolation is fixed when it is made."""
    current = session.settings.sandbox_mode or agent_pb2.SANDBOX_MODE_WORKSPACE_WRITE
    if requested not in (agent_pb2.SANDBOX_MODE_UNSPECIFIED, current):
        raise FailedPrecondition(
            f"sandbox_mode: the session's sandbox is {agent_pb2.SandboxMode.Name(current)} and is fixed when its "
            f"workspace is created; {agent_pb2.SandboxMode.Name(requested)} needs a new session"
        )


# The fields UpdateSession can change (update_mask paths).
_UPDATABLE = ("title", "settings.writable_paths", "settings.connection", "settings.model")

_DECISIONS = {
    agent_pb2.APPROVAL_DECISION_APPROVE: Decision.APPROVE,
    agent_pb2.APPROVAL_DECISION_DENY: Decision.DENY,
    agent_pb2.APPROVAL_DECISION_APPROVE_EDITED: Decision.APPROVE_EDITED,
}


async def _responses(
    batch: bool,
    events: Callable[[], AsyncIterator[agent_pb2.RunEvent]],
    batches: Callable[[], AsyncIterator[list[agent_pb2.RunEvent]]],
    response: Callable[..., _Response],
) -> AsyncIterator[_Response]:
    """A run's events as stream messages: with `batch` (the request's batch_events), every event
    ready at once in one message's `events`; else one event per message in `event`."""
    if batch:
        async for ready in batches():
            yield response(events=ready)
    else:
        async for event in events():
            yield response(event=event)


def _new_session(
    title: str, settings: agent_pb2.SessionSettings, labels: Mapping[str, str]
) -> agent_pb2.Session:
    """A session not yet stored: a new id, created and updated now."""
    session = agent_pb2.Session(
        id=f"ses-{uuid.uuid4().hex}", title=title, settings=settings, labels=dict(labels)
    )
    session.create_time.GetCurrentTime()
    session.update_time.CopyFrom(session.create_time)
    return session


def _refuse_if_running_elsewhere(session: agent_pb2.Session, runs: RunManager) -> None:
    """FAILED_PRECONDITION when another agent replica runs the session (as `runs.hold` says for
    this one). A check, not a claim: a run starting elsewhere right after is not excluded."""
    if session.active_run_id and runs.get(session.active_run_id) is None:
        raise FailedPrecondition(
            f"session {session.id} has an active run {session.active_run_id} (on another agent replica); "
            "wait for it or cancel it first"
        )


async def _wait_finished(live: LiveRun, limit: float) -> None:
    if live.task is None or live.done:
        return
    await asyncio.wait({live.task}, timeout=limit)
