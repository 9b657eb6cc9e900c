"""AsyncFireboxClient: typed asyncio calls to the agent and the executor over the generated stubs."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from firebox.agent.v1 import agent_pb2 as ag
from firebox.agent.v1 import agent_pb2_grpc as ag_grpc
from firebox.client.errors import FireboxRpcError
from firebox.client.execution import ExecCall, ExecResult, PortConnection, first_request
from firebox.client.settings import ConnectionSettings
from firebox.executor.v1 import executor_pb2 as ex
from firebox.executor.v1 import executor_pb2_grpc as ex_grpc
from firebox.trace.v1 import trace_pb2 as tr

Service = Literal["agent", "executor"]

# Unary calls get a deadline so a wedged server cannot hang a script; workspace creation may pull
# or build an image, which takes longer.
DEFAULT_TIMEOUT = 30.0
SLOW_TIMEOUT = 600.0


class AsyncFireboxClient:
    """Calls both Firebox services. Channels open on first use; `close()` (or `async with`) ends them.

    Every failed call raises `FireboxRpcError`. Executor shell sessions are called "shell sessions"
    here, to keep them apart from the agent's conversation sessions.
    """

    def __init__(self, settings: ConnectionSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or ConnectionSettings.from_env(**overrides)
        self._channels: dict[str, grpc.aio.Channel] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def target(self, service: Service) -> str:
        return self.settings.agent if service == "agent" else self.settings.executor

    def _channel(self, service: Service) -> grpc.aio.Channel:
        channel = self._channels.get(service)
        if channel is None:
            target = self.target(service)
            credentials = self.settings.channel_credentials()
            options = self.settings.channel_options()
            channel = (
                grpc.aio.secure_channel(target, credentials, options=options)
                if credentials is not None
                else grpc.aio.insecure_channel(target, options=options)
            )
            self._channels[service] = channel
        return channel

    def _agent(self) -> ag_grpc.AgentServiceStub:
        return ag_grpc.AgentServiceStub(self._channel("agent"))

    def _executor(self) -> ex_grpc.ExecutorServiceStub:
        return ex_grpc.ExecutorServiceStub(self._channel("executor"))

    def _error(self, exc: grpc.RpcError, service: Service, method: str) -> FireboxRpcError:
        return FireboxRpcError.from_grpc(exc, service=service, target=self.target(service), method=method)

    async def _unary(
        self, service: Service, method: str, request: Any, deadline: float = DEFAULT_TIMEOUT
    ) -> Any:
        stub = self._agent() if service == "agent" else self._executor()
        try:
            return await getattr(stub, method)(request, timeout=deadline, metadata=self.settings.metadata())
        except grpc.RpcError as exc:
            raise self._error(exc, service, method) from None

    async def _server_stream(self, service: Service, method: str, request: Any) -> AsyncIterator[Any]:
        stub = self._agent() if service == "agent" else self._executor()
        call = getattr(stub, method)(request, metadata=self.settings.metadata())
        try:
            async for response in call:
                yield response
        except grpc.RpcError as exc:
            raise self._error(exc, service, method) from None
        finally:
            # Leaving the loop early (or being cancelled) must not leave the stream open.
            call.cancel()

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> AsyncFireboxClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- both services -------------------------------------------------------------------------

    async def health(self, service: Service, name: str = "", deadline: float = 5.0) -> str:
        """The standard health check: "SERVING", "NOT_SERVING", ... (health needs no token)."""
        stub = health_pb2_grpc.HealthStub(self._channel(service))
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=deadline)
        except grpc.RpcError as exc:
            raise self._error(exc, service, "Health.Check") from None
        result: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return result

    # -- executor: workspaces ------------------------------------------------------------------

    async def create_workspace(self, name: str = "", **kwargs: Any) -> ex.Workspace:
        """Create and start a workspace; see create_workspace_response for the arguments."""
        return (await self.create_workspace_response(name, **kwargs)).workspace

    async def create_workspace_response(
        self,
        name: str = "",
        *,
        image: str = "",
        policy: ex.IsolationPolicy | None = None,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        snapshot_id: str = "",
        idle_timeout: float | None = None,
        ttl: float | None = None,
        devcontainer: str | ex.Devcontainer | None = None,
        deadline: float = SLOW_TIMEOUT,
        via: Service = "executor",
        on_output: Callable[[ex.SetupOutput], None] | None = None,
    ) -> ex.CreateWorkspaceResponse:
        """Create and start a workspace; with `snapshot_id`, a fork of that snapshot; with
        `devcontainer` (a devcontainer.json's text, or what firebox.client.devcontainer.load
        read from a folder: with a Dockerfile, its build context), from it, the build's and its
        lifecycle commands' output in the response's `setup`. `via="agent"`: the agent places it on one of its executor
        replicas and forwards later calls for it there (create, get, list and delete go through
        the agent; start and stop are the executor's only). `idle_timeout` / `ttl` in seconds:
        stop when idle that long / delete that long after creation (0: never; None: the
        executor's defaults). With `on_output`, the build's and the commands' output is handed
        to it as it is produced (CreateWorkspaceWithProgress), long before the response."""
        request = ex.CreateWorkspaceRequest(
            name=name, image=image, policy=policy, env=env, labels=labels, snapshot_id=snapshot_id
        )
        if idle_timeout is not None:
            request.idle_timeout.FromTimedelta(dt.timedelta(seconds=idle_timeout))
        if ttl is not None:
            request.ttl.FromTimedelta(dt.timedelta(seconds=ttl))
        if isinstance(devcontainer, str):
            request.devcontainer.json = devcontainer
        elif devcontainer is not None:
            request.devcontainer.CopyFrom(devcontainer)
        if on_output is None:
            result: ex.CreateWorkspaceResponse = await self._unary(via, "CreateWorkspace", request, deadline)
            return result
        async for message in self._server_stream(via, "CreateWorkspaceWithProgress", request):
            if message.HasField("output"):
                on_output(message.output)
            elif message.HasField("done"):
                done: ex.CreateWorkspaceResponse = message.done
                return done
        raise FireboxRpcError(
            grpc.StatusCode.UNKNOWN,
            "the stream ended without the workspace",
            service=via,
            target=self.target(via),
            method="CreateWorkspaceWithProgress",
        )

    async def get_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        request = ex.GetWorkspaceRequest(workspace_id=workspace_id)
        result: ex.Workspace = (await self._unary(via, "GetWorkspace", request)).workspace
        return result

    async def list_workspaces(self, *, via: Service = "executor") -> list[ex.Workspace]:
        """The executor's workspaces; through the agent, those of every reachable replica."""
        return list((await self._unary(via, "ListWorkspaces", ex.ListWorkspacesRequest())).workspaces)

    async def find_workspace(self, id_or_name: str, *, via: Service = "executor") -> ex.Workspace | None:
        """The workspace with this id, else the one with this name, else None."""
        workspaces = await self.list_workspaces(via=via)
        for workspace in workspaces:
            if workspace.id == id_or_name:
                return workspace
        return next((w for w in workspaces if w.name == id_or_name), None)

    async def start_workspace(self, workspace_id: str) -> ex.Workspace:
        request = ex.StartWorkspaceRequest(workspace_id=workspace_id)
        result: ex.Workspace = (
            await self._unary("executor", "StartWorkspace", request, SLOW_TIMEOUT)
        ).workspace
        return result

    async def stop_workspace(self, workspace_id: str) -> ex.Workspace:
        request = ex.StopWorkspaceRequest(workspace_id=workspace_id)
        result: ex.Workspace = (
            await self._unary("executor", "StopWorkspace", request, SLOW_TIMEOUT)
        ).workspace
        return result

    async def pause_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        """Freeze the workspace's processes (its sessions are kept); see ResumeWorkspace."""
        request = ex.PauseWorkspaceRequest(workspace_id=workspace_id)
        result: ex.Workspace = (await self._unary(via, "PauseWorkspace", request, SLOW_TIMEOUT)).workspace
        return result

    async def resume_workspace(self, workspace_id: str, *, via: Service = "executor") -> ex.Workspace:
        request = ex.ResumeWorkspaceRequest(workspace_id=workspace_id)
        result: ex.Workspace = (await self._unary(via, "ResumeWorkspace", request, SLOW_TIMEOUT)).workspace
        return result

    async def create_snapshot(
        self, workspace_id: str, name: str = "", *, via: Service = "executor"
    ) -> ex.Snapshot:
        """Capture the workspace's filesystem and files; fork it with create_workspace(snapshot_id=…)."""
        request = ex.CreateSnapshotRequest(workspace_id=workspace_id, name=name)
        result: ex.Snapshot = (await self._unary(via, "CreateSnapshot", request, SLOW_TIMEOUT)).snapshot
        return result

    async def list_snapshots(self, workspace_id: str = "", *, via: Service = "executor") -> list[ex.Snapshot]:
        request = ex.ListSnapshotsRequest(workspace_id=workspace_id)
        return list((await self._unary(via, "ListSnapshots", request)).snapshots)

    async def delete_snapshot(self, snapshot_id: str, *, via: Service = "executor") -> None:
        request = ex.DeleteSnapshotRequest(snapshot_id=snapshot_id)
        await self._unary(via, "DeleteSnapshot", request, SLOW_TIMEOUT)

    async def delete_workspace(self, workspace_id: str, *, via: Service = "executor") -> None:
        request = ex.DeleteWorkspaceRequest(workspace_id=workspace_id)
        await self._unary(via, "DeleteWorkspace", request, SLOW_TIMEOUT)

    # -- executor: shell sessions --------------------------------------------------------------

    async def create_shell_session(self, workspace_id: str, session_id: str = "") -> ex.Session:
        request = ex.CreateSessionRequest(workspace_id=workspace_id, session_id=session_id)
        result: ex.Session = (await self._unary("executor", "CreateSession", request)).session
        return result

    async def list_shell_sessions(self, workspace_id: str = "") -> list[ex.Session]:
        request = ex.ListSessionsRequest(workspace_id=workspace_id)
        return list((await self._unary("executor", "ListSessions", request)).sessions)

    async def close_shell_session(self, session_id: str) -> None:
        await self._unary("executor", "CloseSession", ex.CloseSessionRequest(session_id=session_id))

    # -- executor: files and named tools -------------------------------------------------------

    async def list_files(
        self, workspace_id: str, path: str = "", *, recursive: bool = False, max_entries: int = 0
    ) -> ex.ListFilesResponse:
        request = ex.ListFilesRequest(
            workspace_id=workspace_id, path=path, recursive=recursive, max_entries=max_entries
        )
        result: ex.ListFilesResponse = await self._unary("executor", "ListFiles", request)
        return result

    async def read_file(self, workspace_id: str, path: str, max_bytes: int) -> tuple[ex.FileInfo, bytes]:
        """A file's info and at most `max_bytes` of its content (the rest is not transferred)."""
        info = ex.FileInfo()
        data = bytearray()
        request = ex.DownloadFileRequest(workspace_id=workspace_id, path=path)
        stream = self._server_stream("executor", "DownloadFile", request)
        try:
            async for response in stream:
                if response.HasField("file"):
                    info = response.file
                data += response.data[: max_bytes - len(data)]
                if len(data) >= max_bytes:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return info, bytes(data)

    async def write_file(
        self,
        workspace_id: str,
        path: str,
        data: bytes,
        *,
        mode: int = 0,
        overwrite: bool = True,
        create_parents: bool = True,
        chunk_bytes: int = 1024 * 1024,
    ) -> ex.FileInfo:
        first = ex.UploadFileRequest(
            workspace_id=workspace_id,
            path=path,
            mode=mode,
            overwrite=overwrite,
            create_parents=create_parents,
            data=data[:chunk_bytes],
        )
        rest = [
            ex.UploadFileRequest(data=data[i : i + chunk_bytes])
            for i in range(chunk_bytes, len(data), chunk_bytes)
        ]
        stub = self._executor()
        try:
            response = await stub.UploadFile(
                iter([first, *rest]), timeout=SLOW_TIMEOUT, metadata=self.settings.metadata()
            )
        except grpc.RpcError as exc:
            raise self._error(exc, "executor", "UploadFile") from None
        result: ex.FileInfo = response.file
        return result

    async def list_tools(self) -> list[ex.Tool]:
        """The executor's named tools (run with `step`)."""
        return list((await self._unary("executor", "ListTools", ex.ListToolsRequest())).tools)

    async def step(self, request: ex.StepRequest, deadline: float = SLOW_TIMEOUT) -> ex.StepResponse:
        """Run one named tool (Hardpoint's Environment.step)."""
        result: ex.StepResponse = await self._unary("executor", "Step", request, deadline)
        return result

    async def executor_info(self) -> ex.GetServerInfoResponse:
        result: ex.GetServerInfoResponse = await self._unary(
            "executor", "GetServerInfo", ex.GetServerInfoRequest()
        )
        return result

    # -- Execute, on the executor or forwarded by the agent ------------------------------------

    async def exec(
        self,
        workspace_id: str,
        *,
        script: str | None = None,
        argv: list[str] | None = None,
        session_id: str = "",
        directory: str = "",
        env: dict[str, str] | None = None,
        # The command's own time limit on the server (ExecuteRequest.timeout), not a call deadline.
        timeout: float | None = None,  # noqa: ASYNC109
        known_id: str = "",
        known_name: str = "",
        resume_workspace: bool = False,
        via: Service = "executor",
        tty: bool = False,
        winsize: tuple[int, int] | None = None,
    ) -> ExecCall:
        """Start a program and return the running call: iterate it for output, send input or a
        stop through it. `via="agent"` sends the stream through the agent's Execute forwarding."""
        request = first_request(
            workspace_id,
            script=script,
            argv=argv,
            session_id=session_id,
            directory=directory,
            env=env,
            timeout=timeout,
            known_id=known_id,
            known_name=known_name,
            resume_workspace=resume_workspace,
            tty=tty,
            winsize=winsize,
        )
        stub = self._agent() if via == "agent" else self._executor()
        call = stub.Execute(metadata=self.settings.metadata())
        execution = ExecCall(call, lambda exc: self._error(exc, via, "Execute"))
        await execution.start(request)
        return execution

    async def forward_port(self, workspace_id: str, port: int) -> PortConnection:
        """One TCP connection to `port` inside the workspace (ForwardPort), once it is made."""
        call = self._executor().ForwardPort(metadata=self.settings.metadata())
        connection = PortConnection(call, lambda exc: self._error(exc, "executor", "ForwardPort"))
        await connection.open(workspace_id, port)
        return connection

    async def run(self, workspace_id: str, *, stdin: bytes | None = None, **exec_args: Any) -> ExecResult:
        """Run a program to the end and return its exit status and all its output."""
        execution = await self.exec(workspace_id, **exec_args)
        return await execution.collect(stdin)

    # -- agent: sessions -----------------------------------------------------------------------

    async def create_session(
        self,
        title: str = "",
        *,
        settings: ag.SessionSettings | None = None,
        labels: dict[str, str] | None = None,
    ) -> ag.Session:
        request = ag.CreateSessionRequest(title=title, settings=settings, labels=labels)
        result: ag.Session = (await self._unary("agent", "CreateSession", request)).session
        return result

    async def get_session(self, session_id: str, include_messages: bool = False) -> ag.GetSessionResponse:
        request = ag.GetSessionRequest(session_id=session_id, include_messages=include_messages)
        result: ag.GetSessionResponse = await self._unary("agent", "GetSession", request)
        return result

    async def list_sessions(self, page_size: int = 0, page_token: str = "") -> ag.ListSessionsResponse:
        request = ag.ListSessionsRequest(page_size=page_size, page_token=page_token)
        result: ag.ListSessionsResponse = await self._unary("agent", "ListSessions", request)
        return result

    async def iter_sessions(
        self, page_size: int = 100, limit: int | None = None
    ) -> AsyncIterator[ag.Session]:
        """Every session, newest first, following pages (at most `limit`)."""
        token, seen = "", 0
        while True:
            page = await self.list_sessions(page_size, token)
            for session in page.sessions:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield session
            token = page.next_page_token
            if not token:
                return

    async def delete_session(self, session_id: str) -> None:
        await self._unary(
            "agent", "DeleteSession", ag.DeleteSessionRequest(session_id=session_id), SLOW_TIMEOUT
        )

    async def clear_session(self, session_id: str) -> ag.ClearSessionResponse:
        result: ag.ClearSessionResponse = await self._unary(
            "agent", "ClearSession", ag.ClearSessionRequest(session_id=session_id), SLOW_TIMEOUT
        )
        return result

    async def fork_session(self, session_id: str, message_id: str) -> ag.ForkSessionResponse:
        """A new session with the history before user message `message_id` and the workspace as
        it was then."""
        request = ag.ForkSessionRequest(session_id=session_id, message_id=message_id)
        result: ag.ForkSessionResponse = await self._unary("agent", "ForkSession", request, SLOW_TIMEOUT)
        return result

    async def rewind_session(self, session_id: str, message_id: str) -> ag.RewindSessionResponse:
        """Cut the session's history before user message `message_id` and restore its workspace."""
        request = ag.RewindSessionRequest(session_id=session_id, message_id=message_id)
        result: ag.RewindSessionResponse = await self._unary("agent", "RewindSession", request, SLOW_TIMEOUT)
        return result

    async def update_session(
        self,
        session_id: str,
        paths: list[str],
        *,
        title: str = "",
        settings: ag.SessionSettings | None = None,
    ) -> ag.Session:
        """Change the session fields named in `paths` (e.g. "settings.writable_paths")."""
        request = ag.UpdateSessionRequest(session_id=session_id, title=title, settings=settings)
        request.update_mask.paths.extend(paths)
        response = await self._unary("agent", "UpdateSession", request, SLOW_TIMEOUT)
        result: ag.Session = response.session
        return result

    # -- agent: runs ---------------------------------------------------------------------------

    async def send_message(
        self,
        session_id: str,
        content: str,
        on_conflict: ag.ConflictPolicy = ag.CONFLICT_POLICY_UNSPECIFIED,
        *,
        approval_policy: ag.ApprovalPolicy = ag.APPROVAL_POLICY_UNSPECIFIED,
        sandbox_mode: ag.SandboxMode = ag.SANDBOX_MODE_UNSPECIFIED,
        message_id: str = "",
    ) -> AsyncIterator[ag.RunEvent]:
        """Add a user message and stream the events of the run it starts. `approval_policy`
        overrides the session's for this run; `sandbox_mode` must match the session's if set.
        `message_id` (e.g. a UUID) makes the send idempotent: sent again, it is ALREADY_EXISTS
        naming the run to `stream_run`."""
        request = ag.SendMessageRequest(
            session_id=session_id,
            content=content,
            on_conflict=on_conflict,
            approval_policy=approval_policy,
            sandbox_mode=sandbox_mode,
            batch_events=True,
            message_id=message_id,
        )
        async for response in self._server_stream("agent", "SendMessage", request):
            for event in run_events(response):
                yield event

    async def stream_run(self, run_id: str, after_index: int = 0) -> AsyncIterator[ag.RunEvent]:
        """Replay a run's events after `after_index`, then follow it live until it ends."""
        request = ag.StreamRunRequest(run_id=run_id, after_index=after_index, batch_events=True)
        async for response in self._server_stream("agent", "StreamRun", request):
            for event in run_events(response):
                yield event

    async def cancel_run(self, run_id: str) -> ag.Run:
        result: ag.Run = (await self._unary("agent", "CancelRun", ag.CancelRunRequest(run_id=run_id))).run
        return result

    async def get_run(self, run_id: str) -> ag.Run:
        result: ag.Run = (await self._unary("agent", "GetRun", ag.GetRunRequest(run_id=run_id))).run
        return result

    async def list_runs(
        self, session_id: str, page_size: int = 0, page_token: str = ""
    ) -> ag.ListRunsResponse:
        request = ag.ListRunsRequest(session_id=session_id, page_size=page_size, page_token=page_token)
        result: ag.ListRunsResponse = await self._unary("agent", "ListRuns", request)
        return result

    async def resolve_approval(
        self,
        run_id: str,
        tool_call_id: str,
        decision: ag.ApprovalDecision,
        *,
        reason: str = "",
        edited_command: str = "",
        always_allow_paths: bool = False,
    ) -> None:
        """Answer a run's approval request: APPROVE, DENY (with `reason`, told to the model) or
        APPROVE_EDITED (`edited_command` runs instead); `always_allow_paths` adds the request's
        paths to the session's writable paths."""
        request = ag.ResolveApprovalRequest(
            run_id=run_id,
            tool_call_id=tool_call_id,
            decision=decision,
            reason=reason,
            edited_command=edited_command,
            always_allow_paths=always_allow_paths,
        )
        await self._unary("agent", "ResolveApproval", request)

    # -- agent: history ------------------------------------------------------------------------

    async def compact_session(self, session_id: str) -> AsyncIterator[ag.CompactSessionResponse]:
        """Summarize the session's history now: `started`, `summary_delta`s, then `compacted`."""
        request = ag.CompactSessionRequest(session_id=session_id)
        async for response in self._server_stream("agent", "CompactSession", request):
            yield response

    async def edit_message(
        self, session_id: str, message_id: str, content: str, *, resend: bool = False
    ) -> AsyncIterator[ag.EditMessageResponse]:
        """Rewrite a user message: first the edited message, then (with `resend`, which drops
        everything after it and starts a run from it) the run's events, several per response in
        `events` (read them with `run_events`)."""
        request = ag.EditMessageRequest(
            session_id=session_id,
            message_id=message_id,
            content=content,
            action=ag.EDIT_ACTION_RESEND if resend else ag.EDIT_ACTION_SAVE,
            batch_events=True,
        )
        async for response in self._server_stream("agent", "EditMessage", request):
            yield response

    # -- agent: stateless generation, feedback, info -------------------------------------------

    async def generate(
        self,
        messages: Iterable[ag.Message],
        *,
        model: str = "",
        enable_tools: bool = False,
        context_id: str = "",
        connection: str = "",
    ) -> AsyncIterator[ag.GenerateResponse]:
        request = ag.GenerateRequest(
            messages=list(messages),
            model=model,
            enable_tools=enable_tools,
            context_id=context_id,
            connection=connection,
        )
        async for response in self._server_stream("agent", "Generate", request):
            yield response

    async def log_events(self, events: Iterable[tr.FeedbackEvent]) -> int:
        """Record client feedback in the agent's training log; returns how many were accepted."""
        request = ag.LogEventsRequest(events=list(events))
        result: int = (await self._unary("agent", "LogEvents", request)).accepted
        return result

    async def agent_info(self) -> ag.GetServerInfoResponse:
        result: ag.GetServerInfoResponse = await self._unary(
            "agent", "GetServerInfo", ag.GetServerInfoRequest()
        )
        return result


def run_events(
    response: ag.SendMessageResponse | ag.StreamRunResponse | ag.EditMessageResponse,
) -> Sequence[ag.RunEvent]:
    """The run events of one stream message. The client asks for batch_events (several events
    per message, far fewer messages for a fast run); an agent older than that field ignores it
    and sends one event per message in `event`."""
    if response.events:
        return response.events
    return (response.event,) if response.HasField("event") else ()
