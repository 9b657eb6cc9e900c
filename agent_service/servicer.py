"""The gRPC edge of the agent: validates requests, calls the domain, shapes responses.

Errors are raised as `firebox.common.errors` and become statuses in the shared interceptor.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from agent_service.config import AgentConfig
from agent_service.executor_client import ExecutorClient, forwardable_timeout
from agent_service.generation import generate, new_id
from agent_service.provider import ModelProvider
from agent_service.runs import ConflictPolicy, LiveRun, RunManager
from agent_service.store import Store
from firebox import __version__
from firebox.agent.v1 import agent_pb2, agent_pb2_grpc
from firebox.common.errors import InvalidArgument, NotFound
from firebox.common.logging import get_logger
from firebox.common.trainlog import FEEDBACK, TrainingLog
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

log = get_logger("firebox.agent.servicer")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_FEEDBACK_EVENTS = 1000
MAX_CONTENT_BYTES = 4 * 1024 * 1024
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
        provider: ModelProvider,
        executor: ExecutorClient,
        training_log: TrainingLog,
    ) -> None:
        self._config = config
        self._store = store
        self._runs = runs
        self._provider = provider
        self._executor = executor
        self._log = training_log

    # -- sessions --------------------------------------------------------------------------

    async def _session(self, session_id: str, field: str = "session_id") -> agent_pb2.Session:
        session = await self._store.get_session(_require(session_id, field))
        if session is None:
            raise NotFound(f"session {session_id} not found")
        session.active_run_id = self._runs.active_run_id(session_id)
        return session

    async def CreateSession(
        self, request: agent_pb2.CreateSessionRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CreateSessionResponse:
        if len(request.title) > MAX_TITLE_CHARS:
            raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters")
        if request.settings.max_steps < 0:
            raise InvalidArgument("settings.max_steps", "must not be negative (0 means the server's default)")
        session = agent_pb2.Session(
            id=f"ses-{uuid.uuid4().hex}",
            title=request.title,
            settings=request.settings,
            labels=dict(request.labels),
        )
        session.create_time.GetCurrentTime()
        session.update_time.CopyFrom(session.create_time)
        await self._store.create_session(session)
        log.info("session_created", session_id=session.id)
        return agent_pb2.CreateSessionResponse(session=session)

    async def GetSession(
        self, request: agent_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetSessionResponse:
        session = await self._session(request.session_id)
        response = agent_pb2.GetSessionResponse(session=session)
        if request.include_messages:
            response.messages.extend(await self._store.list_messages(session.id))
        return response

    async def ListSessions(
        self, request: agent_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListSessionsResponse:
        sessions, token = await self._store.list_sessions(_page_size(request.page_size), request.page_token)
        for session in sessions:
            session.active_run_id = self._runs.active_run_id(session.id)
        return agent_pb2.ListSessionsResponse(sessions=sessions, next_page_token=token)

    async def DeleteSession(
        self, request: agent_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteSessionResponse:
        session = await self._session(request.session_id)
        await self._runs.cancel_session(session.id, "the session was deleted")
        await self._store.delete_session(session.id)
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

    # -- runs ------------------------------------------------------------------------------

    async def SendMessage(
        self, request: agent_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.SendMessageResponse]:
        _require(request.session_id, "session_id")
        if not request.content.strip():
            raise InvalidArgument("content", "must not be empty")
        if len(request.content.encode()) > MAX_CONTENT_BYTES:
            raise InvalidArgument("content", f"must be at most {MAX_CONTENT_BYTES} bytes")
        policy = _POLICIES.get(request.on_conflict)
        if policy is None:
            raise InvalidArgument(
                "on_conflict",
                f"unknown conflict policy {request.on_conflict}; use REJECT, ENQUEUE or INTERRUPT",
            )
        session = await self._session(request.session_id)
        # No provider or no model: say so now, as a status, rather than as a failed run.
        self._provider.resolve_model(session.settings.model)
        live = self._runs.submit(session.id, request.content, policy)
        log.info("run_submitted", run_id=live.id, session_id=session.id, policy=policy.value)
        async for event in live.follow(0):
            yield agent_pb2.SendMessageResponse(event=event)

    async def StreamRun(
        self, request: agent_pb2.StreamRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.StreamRunResponse]:
        _require(request.run_id, "run_id")
        if request.after_index < 0:
            raise InvalidArgument("after_index", f"must be 0 or more, got {request.after_index}")
        async for event in self._runs.follow(request.run_id, request.after_index):
            yield agent_pb2.StreamRunResponse(event=event)

    async def _run(self, run_id: str) -> agent_pb2.Run:
        live = self._runs.get(_require(run_id, "run_id"))
        if live is not None:
            return live.run
        stored = await self._store.get_run(run_id)
        if stored is None:
            raise NotFound(f"run {run_id} not found")
        return stored

    async def CancelRun(
        self, request: agent_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CancelRunResponse:
        live = self._runs.cancel(_require(request.run_id, "run_id"))
        if live is not None:
            await _wait_finished(live, CANCEL_WAIT_SECONDS)
            log.info("run_cancel_requested", run_id=live.id)
        return agent_pb2.CancelRunResponse(run=await self._run(request.run_id))

    async def GetRun(
        self, request: agent_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetRunResponse:
        return agent_pb2.GetRunResponse(run=await self._run(request.run_id))

    async def ListRuns(
        self, request: agent_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
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
        self, request: agent_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.GenerateResponse]:
        async for response in generate(self._provider, self._log, request):
            yield response

    async def LogEvents(
        self, request: agent_pb2.LogEventsRequest, context: grpc.aio.ServicerContext
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
        now = Timestamp()
        now.GetCurrentTime()
        for event in request.events:
            record = trace_pb2.FeedbackRecord(
                feedback_id=new_id("fb"), event=event, server_time=now, source="client"
            )
            self._log.write(FEEDBACK, record)
        return agent_pb2.LogEventsResponse(accepted=len(request.events))

    async def Execute(
        self, request_iterator: AsyncIterator[executor_pb2.ExecuteRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[executor_pb2.ExecuteResponse]:
        deadline = forwardable_timeout(context.time_remaining())
        async for response in self._executor.forward_execute(request_iterator, deadline):
            yield response

    async def GetServerInfo(
        self, request: agent_pb2.GetServerInfoRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetServerInfoResponse:
        return agent_pb2.GetServerInfoResponse(
            version=__version__,
            default_model=self._config.model,
            provider_configured=self._provider.configured,
            executor_target=self._config.executor,
            dropped_log_records=self._log.dropped,
        )


async def _wait_finished(live: LiveRun, limit: float) -> None:
    if live.task is None or live.done:
        return
    await asyncio.wait({live.task}, timeout=limit)
