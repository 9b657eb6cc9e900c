"""The gRPC edge of the executor: validate requests, map proto <-> domain, call the managers.

No logic lives here beyond that; errors raised by the managers (firebox.common.errors) become
statuses in firebox.common.server.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc

from executor_service import devcontainer
from executor_service import execution as ex
from executor_service.backend import Policy, SnapshotInfo, WorkspaceInfo
from executor_service.background import BackgroundExecution, BackgroundExecutions, FollowOutput
from executor_service.engine import ExecutionEngine
from executor_service.files import (
    DEFAULT_MAX_ENTRIES,
    DIRECTORY,
    OTHER,
    REGULAR,
    SYMLINK,
    FileEntry,
    WorkspaceFiles,
)
from executor_service.records import ExecutionRecorder
from executor_service.requests import (
    BACKENDS,
    STATUSES,
    execute_spec,
    final_to_proto,
    recorder_for,
)
from executor_service.sessions import Session, SessionManager
from executor_service.steps import OneShot, SetupProgress, setup_command, step
from executor_service.tools import Tool, ToolRegistry
from executor_service.workspaces import PolicyOverrides, WorkspaceManager
from firebox.common import errors
from firebox.common.logging import get_logger
from firebox.common.secrets import SecretPolicy, redactor
from firebox.common.trainlog import EXECUTIONS, TrainingLog
from firebox.common.workspace_paths import is_writable, workspace_path
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc

log = get_logger("executor.servicer")

_FIRST_ONLY = (
    "workspace_id",
    "session_id",
    "script",
    "argv",
    "directory",
    "env",
    "timeout",
    "known_id",
    "known_name",
    "tool_call_id",
    "run_id",
    "agent_session_id",
    "tty",
)
# Input read from an Execute stream ahead of what the program has taken (see _InputQueue).
INPUT_READ_AHEAD_BYTES = 32 * 1024 * 1024
# Bytes per ForwardPortResponse at most.
FORWARD_CHUNK = 256 * 1024
# After the final message, how long Execute waits for the client to close its side.
HALF_CLOSE_LINGER_SECONDS = 2.0
# How long the first message (execution_id, pid) waits to travel with the first output or the end.
STARTED_HOLD_SECONDS = 0.005


# ---- proto <-> domain ---------------------------------------------------------------------------


def policy_to_proto(policy: Policy) -> pb.IsolationPolicy:
    return pb.IsolationPolicy(
        network=policy.network,
        read_only=policy.read_only,
        user=policy.user,
        memory_bytes=policy.memory_bytes,
        pids_limit=policy.pids_limit,
        cpu_millis=policy.cpu_millis,
        capabilities=list(policy.capabilities),
        no_new_privileges=policy.no_new_privileges,
        read_only_root=policy.read_only_root,
        tmp_bytes=policy.tmp_bytes,
        writable_paths=list(policy.writable_paths),
        disk_bytes=policy.disk_bytes,
    )


def policy_overrides(message: pb.IsolationPolicy) -> PolicyOverrides:
    """Only the fields the client set (proto3 `optional` presence); the rest take defaults."""
    values: dict[str, Any] = {}
    for name in (
        "network",
        "read_only",
        "user",
        "memory_bytes",
        "pids_limit",
        "cpu_millis",
        "no_new_privileges",
        "read_only_root",
        "tmp_bytes",
        "disk_bytes",
    ):
        if message.HasField(name):
            values[name] = getattr(message, name)
    if message.capabilities:
        values["capabilities"] = tuple(message.capabilities)
    if message.writable_paths:
        values["writable_paths"] = tuple(message.writable_paths)
    return PolicyOverrides(**values)


def workspace_to_proto(info: WorkspaceInfo, session_count: int) -> pb.Workspace:
    workspace = pb.Workspace(
        id=info.id,
        name=info.name,
        image=info.image,
        status=STATUSES.get(info.state, pb.WORKSPACE_STATUS_UNSPECIFIED),
        backend=BACKENDS.get(info.backend, pb.BACKEND_UNSPECIFIED),
        policy=policy_to_proto(info.policy),
        isolation=info.isolation,
        labels=info.labels,
        # Allowed secrets reach the commands, never API responses.
        env=redactor.env(info.env),
        session_count=session_count,
        parent_snapshot_id=info.parent_snapshot_id,
    )
    workspace.create_time.FromDatetime(info.created)
    return workspace


def _seconds(duration: Any) -> float:
    # Not ToTimedelta: a Duration out of its documented range must be refused, not overflow.
    result: float = duration.seconds + duration.nanos / 1e9
    return result


def snapshot_to_proto(snapshot: SnapshotInfo) -> pb.Snapshot:
    message = pb.Snapshot(
        id=snapshot.id,
        name=snapshot.name,
        workspace_id=snapshot.workspace_id,
        image=snapshot.image,
        policy=policy_to_proto(snapshot.policy),
        env=redactor.env(snapshot.env),
        files_bytes=snapshot.files_bytes,
    )
    message.create_time.FromDatetime(snapshot.created)
    return message


def session_to_proto(session: Session) -> pb.Session:
    message = pb.Session(
        id=session.id,
        workspace_id=session.workspace_id,
        status={
            "idle": pb.SESSION_STATUS_IDLE,
            "busy": pb.SESSION_STATUS_BUSY,
            "ended": pb.SESSION_STATUS_ENDED,
        }.get(session.status, pb.SESSION_STATUS_UNSPECIFIED),
        current_execution_id=session.current_execution_id or "",
        command_count=session.command_count,
    )
    message.create_time.FromDatetime(session.created)
    return message


def _execution_info(bg: BackgroundExecution) -> pb.ExecutionInfo:
    info = pb.ExecutionInfo(
        execution_id=bg.id,
        workspace_id=bg.workspace_id,
        session_id=bg.session_id,
        command=bg.command,
        pid=bg.pid,
        state=pb.EXECUTION_STATE_RUNNING if bg.finished is None else pb.EXECUTION_STATE_FINISHED,
        tty=bg.tty,
        output_bytes=bg.buffer.end,
        dropped_bytes=bg.buffer.start,
        attached=len(bg.attachments),
    )
    info.started.FromDatetime(bg.started)
    if bg.finished is not None:
        final = final_to_proto(bg.finished)
        info.end_reason = final.end_reason
        info.message = final.message
        if final.HasField("exit_code"):
            info.exit_code.CopyFrom(final.exit_code)
        if bg.finished_at is not None:
            info.finished.FromDatetime(bg.finished_at)
    return info


class _InputQueue:
    """An Execute's input on its way to the program, written in order by one task (made with
    the first input: a command without input pays for none), at most INPUT_READ_AHEAD_BYTES
    ahead of the program."""

    def __init__(self, execution: ex.Execution) -> None:
        self.execution = execution
        self._items: collections.deque[bytes | None] = collections.deque()
        self._queued = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def put(self, data: bytes) -> None:
        if self._closed:
            return
        while self._queued >= INPUT_READ_AHEAD_BYTES and self._task is not None and not self._task.done():
            self._changed.clear()
            await self._changed.wait()
        self._items.append(data)
        self._queued += len(data)
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._write())
            # Its failure (the program went away under it) is the execution's to report.
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is None:
            await self.execution.close_input()
            return
        self._items.append(None)
        self._changed.set()

    async def drained(self) -> None:
        if self._task is not None:
            await self._task

    async def drained_soon(self, seconds: float = 5.0) -> None:
        """Until what is queued has been written (bounded: a program may never read it)."""
        while self._items and self._task is not None and not self._task.done():
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), seconds)
            except TimeoutError:
                return

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _write(self) -> None:
        while True:
            while not self._items:
                self._changed.clear()
                await self._changed.wait()
            item = self._items.popleft()
            if item is None:
                await self.execution.close_input()
                return
            await self.execution.write_input(item)
            self._queued -= len(item)
            self._changed.set()


def tool_to_proto(tool: Tool) -> pb.Tool:
    message = pb.Tool(
        name=tool.name,
        description=tool.description,
        args_schema_json=tool.args_schema_json,
        command=list(tool.command),
        read_only=tool.read_only,
    )
    if tool.timeout:
        message.timeout.FromTimedelta(dt.timedelta(seconds=tool.timeout))
    return message


_FILE_TYPES = {
    REGULAR: pb.FILE_TYPE_REGULAR,
    DIRECTORY: pb.FILE_TYPE_DIRECTORY,
    SYMLINK: pb.FILE_TYPE_SYMLINK,
    OTHER: pb.FILE_TYPE_OTHER,
}


def file_to_proto(entry: FileEntry) -> pb.FileInfo:
    message = pb.FileInfo(
        path=entry.path,
        name=entry.name,
        type=_FILE_TYPES[entry.type],
        size=entry.size,
        mode=entry.mode,
        link_target=entry.link_target,
    )
    message.modify_time.FromDatetime(entry.mtime)
    return message


# ---- the servicer -------------------------------------------------------------------------------


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    """firebox.executor.v1.ExecutorService over the workspace and session managers."""

    def __init__(
        self,
        workspaces: WorkspaceManager,
        sessions: SessionManager,
        engine: ExecutionEngine,
        training_log: TrainingLog,
        secret_policy: SecretPolicy,
        default_timeout: float,
        version: str,
        tools: ToolRegistry | None = None,
        files: WorkspaceFiles | None = None,
        step_output_bytes: int = 1024 * 1024,
        background: BackgroundExecutions | None = None,
    ) -> None:
        self.background = background or BackgroundExecutions(None)
        self.tools = tools or ToolRegistry()
        self.files = files
        self.step_output_bytes = step_output_bytes
        self.workspaces = workspaces
        self.sessions = sessions
        self.engine = engine
        self.training_log = training_log
        self.secret_policy = secret_policy
        self.default_timeout = default_timeout
        self.version = version
        self.oneshot = OneShot(engine, training_log, secret_policy, default_timeout, version)

    def _workspace(self, info: WorkspaceInfo) -> pb.Workspace:
        workspace = workspace_to_proto(info, self.workspaces.session_count(info.id))
        expiry = self.workspaces.expiry
        if expiry is not None:
            workspace.idle_timeout.FromTimedelta(dt.timedelta(seconds=expiry.idle_timeout(info)))
            workspace.ttl.FromTimedelta(dt.timedelta(seconds=expiry.ttl(info)))
            stop_time, delete_time = expiry.stop_time(info), expiry.delete_time(info)
            if stop_time is not None:
                workspace.stop_time.FromDatetime(stop_time)
            if delete_time is not None:
                workspace.delete_time.FromDatetime(delete_time)
            if info.state not in ("running", "paused"):
                workspace.stopped_reason = expiry.stopped_reason(info.id)
        return workspace

    # ---- workspaces ----

    async def CreateWorkspace(
        self, request: pb.CreateWorkspaceRequest, context: Any
    ) -> pb.CreateWorkspaceResponse:
        return await self._create_workspace(request, None)

    async def CreateWorkspaceWithProgress(
        self, request: pb.CreateWorkspaceRequest, context: Any
    ) -> AsyncIterator[pb.CreateWorkspaceWithProgressResponse]:
        progress = SetupProgress()
        creating = asyncio.create_task(self._create_workspace(request, progress))
        creating.add_done_callback(lambda _: progress.end())
        try:
            while (output := await progress.next()) is not None:
                yield pb.CreateWorkspaceWithProgressResponse(output=output)
            yield pb.CreateWorkspaceWithProgressResponse(done=await creating)
        finally:
            # The client went away: so does the creation, as a cancelled CreateWorkspace's does.
            creating.cancel()

    async def _create_workspace(
        self, request: pb.CreateWorkspaceRequest, progress: SetupProgress | None
    ) -> pb.CreateWorkspaceResponse:
        image, env, policy = request.image, dict(request.env), policy_overrides(request.policy)
        commands: tuple[devcontainer.Command, ...] = ()
        setup: list[pb.SetupCommand] = []
        if request.HasField("devcontainer"):
            if image:
                raise errors.InvalidArgument("image", "must be empty with devcontainer (it names its image)")
            given = request.devcontainer
            config = devcontainer.parse(given.json, given.dockerfile)
            image, env, commands = config.image, {**config.env, **env}, config.commands
            if config.user and policy.user is None:
                policy = replace(policy, user=config.user)
            if config.build is not None:
                spec = await devcontainer.build_spec(config.build, given.context)
                built = await self.workspaces.backend.build_image(
                    spec, None if progress is None else progress.sink("build")
                )
                log.info("devcontainer_image", image=built.image, cached=built.cached)
                image = built.image
                setup.append(pb.SetupCommand(name="build", stdout=built.log, truncated=built.truncated))
            elif given.context or given.dockerfile:
                raise errors.InvalidArgument(
                    "devcontainer.context", "only with build (the devcontainer.json names an image)"
                )
        info = await self.workspaces.create(
            name=request.name,
            image=image,
            policy=policy,
            env=env,
            labels=dict(request.labels),
            snapshot_id=request.snapshot_id,
            idle_timeout=_seconds(request.idle_timeout) if request.HasField("idle_timeout") else None,
            ttl=_seconds(request.ttl) if request.HasField("ttl") else None,
        )
        response = pb.CreateWorkspaceResponse(workspace=self._workspace(info), setup=setup)
        for command in commands:
            ran = await setup_command(self.oneshot, info, command, progress)
            response.setup.append(ran)
            if ran.exit_code != 0:
                break
        return response

    async def GetWorkspace(self, request: pb.GetWorkspaceRequest, context: Any) -> pb.GetWorkspaceResponse:
        return pb.GetWorkspaceResponse(
            workspace=self._workspace(await self.workspaces.get(request.workspace_id))
        )

    async def ListWorkspaces(
        self, request: pb.ListWorkspacesRequest, context: Any
    ) -> pb.ListWorkspacesResponse:
        infos = await self.workspaces.list()
        return pb.ListWorkspacesResponse(workspaces=[self._workspace(i) for i in infos])

    async def StartWorkspace(
        self, request: pb.StartWorkspaceRequest, context: Any
    ) -> pb.StartWorkspaceResponse:
        info = await self.workspaces.start(request.workspace_id)
        return pb.StartWorkspaceResponse(workspace=self._workspace(info))

    async def StopWorkspace(self, request: pb.StopWorkspaceRequest, context: Any) -> pb.StopWorkspaceResponse:
        info = await self.workspaces.stop(request.workspace_id)
        return pb.StopWorkspaceResponse(workspace=self._workspace(info))

    async def DeleteWorkspace(
        self, request: pb.DeleteWorkspaceRequest, context: Any
    ) -> pb.DeleteWorkspaceResponse:
        await self.workspaces.delete(request.workspace_id)
        await self.background.forget_workspace(request.workspace_id)
        return pb.DeleteWorkspaceResponse()

    async def SetWritablePaths(
        self, request: pb.SetWritablePathsRequest, context: Any
    ) -> pb.SetWritablePathsResponse:
        info = await self.workspaces.set_writable_paths(request.workspace_id, list(request.writable_paths))
        return pb.SetWritablePathsResponse(workspace=self._workspace(info))

    async def CreateSnapshot(
        self, request: pb.CreateSnapshotRequest, context: Any
    ) -> pb.CreateSnapshotResponse:
        snapshot = await self.workspaces.create_snapshot(request.workspace_id, request.name)
        return pb.CreateSnapshotResponse(snapshot=snapshot_to_proto(snapshot))

    async def ListSnapshots(self, request: pb.ListSnapshotsRequest, context: Any) -> pb.ListSnapshotsResponse:
        snapshots = await self.workspaces.list_snapshots(request.workspace_id)
        return pb.ListSnapshotsResponse(snapshots=[snapshot_to_proto(s) for s in snapshots])

    async def DeleteSnapshot(
        self, request: pb.DeleteSnapshotRequest, context: Any
    ) -> pb.DeleteSnapshotResponse:
        await self.workspaces.delete_snapshot(request.snapshot_id)
        return pb.DeleteSnapshotResponse()

    async def PauseWorkspace(
        self, request: pb.PauseWorkspaceRequest, context: Any
    ) -> pb.PauseWorkspaceResponse:
        info = await self.workspaces.pause(request.workspace_id)
        return pb.PauseWorkspaceResponse(workspace=self._workspace(info))

    async def ResumeWorkspace(
        self, request: pb.ResumeWorkspaceRequest, context: Any
    ) -> pb.ResumeWorkspaceResponse:
        info = await self.workspaces.resume(request.workspace_id)
        return pb.ResumeWorkspaceResponse(workspace=self._workspace(info))

    # ---- sessions ----

    async def CreateSession(self, request: pb.CreateSessionRequest, context: Any) -> pb.CreateSessionResponse:
        workspace = await self.workspaces.require_running(request.workspace_id)
        session = await self.sessions.create(workspace, request.session_id or None)
        return pb.CreateSessionResponse(session=session_to_proto(session))

    async def ListSessions(self, request: pb.ListSessionsRequest, context: Any) -> pb.ListSessionsResponse:
        if request.workspace_id:
            await self.workspaces.get(request.workspace_id)
        sessions = self.sessions.list(request.workspace_id or None)
        return pb.ListSessionsResponse(sessions=[session_to_proto(s) for s in sessions])

    async def CloseSession(self, request: pb.CloseSessionRequest, context: Any) -> pb.CloseSessionResponse:
        if not request.session_id:
            raise errors.InvalidArgument("session_id", "required")
        await self.sessions.close(request.session_id)
        return pb.CloseSessionResponse()

    # ---- info ----

    async def GetServerInfo(self, request: pb.GetServerInfoRequest, context: Any) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse(
            version=self.version,
            backend=BACKENDS.get(self.workspaces.backend.name, pb.BACKEND_UNSPECIFIED),
            default_image=self.workspaces.default_image,
            default_policy=policy_to_proto(self.workspaces.default_policy),
            dropped_log_records=self.training_log.dropped,
            workspace_count=self.workspaces.count,
            session_count=self.workspaces.session_count(None),
            # The executor's instance id (see WorkspaceBackend.owner).
            instance_id=self.workspaces.backend.owner,
        )

    # ---- Execute ----

    async def Execute(
        self, request_iterator: AsyncIterator[pb.ExecuteRequest], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ExecuteResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            raise errors.InvalidArgument("request", "the stream closed before the first message") from None
        if first.background:
            async for response in self._execute_in_background(first, request_iterator):
                yield response
            return
        spec = execute_spec(first, self.secret_policy, self.default_timeout)
        workspace = await self.workspaces.require_running(first.workspace_id, resume=first.resume_workspace)
        recorder = recorder_for(first, workspace, self.version)
        execution = await self.engine.start(workspace, spec)
        recorder.execution_id = execution.id
        recorder.session_id = execution.session_id or first.session_id
        pump = asyncio.create_task(self._pump_requests(request_iterator, execution, recorder))
        final: pb.ExecuteResponse | None = None
        # The first message carries execution_id and pid. When the command's first output or its
        # end follows within STARTED_HOLD_SECONDS, they travel together: a quick command's whole
        # Execute is one message (each message is a send and a wake-up on both sides).
        pid: int | None = None
        try:
            async for event in execution.events(hold_started=STARTED_HOLD_SECONDS):
                if isinstance(event, ex.Started):
                    if execution.next_ready():
                        pid = event.pid
                    else:
                        yield pb.ExecuteResponse(execution_id=execution.id, pid=event.pid)
                elif isinstance(event, ex.Output):
                    if not event.stdout and not event.stderr:
                        continue
                    recorder.stdout.add(event.stdout)
                    recorder.stderr.add(event.stderr)
                    response = pb.ExecuteResponse(stdout_data=event.stdout, stderr_data=event.stderr)
                    if pid is not None:
                        response.execution_id, response.pid, pid = execution.id, pid, None
                    yield response
                elif isinstance(event, ex.Finished):
                    final = final_to_proto(event)
                    if pid is not None:
                        final.execution_id, final.pid, pid = execution.id, pid, None
                    yield final
            # Give the client a moment to half-close before the call ends: a client write that
            # crosses the server's end of the call fails in gRPC's core and turns the client's
            # status into INTERNAL. Clients that have nothing more to send half-close at once.
            if not pump.done():  # the common case is done already: no wait (a hot path)
                await asyncio.wait([pump], timeout=HALF_CLOSE_LINGER_SECONDS)
        finally:
            pump.cancel()
            # Written before any await, so that a cancellation arriving now cannot lose it.
            self.training_log.write(EXECUTIONS, recorder.record(final))
            # Let the pump leave the request iterator before gRPC closes it.
            if not pump.done():
                await asyncio.wait([pump], timeout=1)
            if final is None:
                # The client cancelled or passed its deadline: kill the command. Shielded, so the
                # kill completes even though this handler is being cancelled.
                await asyncio.shield(asyncio.ensure_future(execution.cancel()))

    async def _execute_in_background(
        self, first: pb.ExecuteRequest, request_iterator: AsyncIterator[pb.ExecuteRequest]
    ) -> AsyncIterator[pb.ExecuteResponse]:
        """Execute with `background`: start, hand the execution to the registry, and follow it
        as its writer until this stream ends, which leaves it running."""
        spec = execute_spec(first, self.secret_policy, None)
        workspace = await self.workspaces.require_running(first.workspace_id)
        self.background.check_room(workspace.id)
        recorder = recorder_for(first, workspace, self.version)
        # No output cap: the background buffer bounds what is kept, and a server runs for days.
        execution = await self.engine.start(workspace, spec, output_cap_bytes=1 << 62)
        recorder.execution_id = execution.id
        recorder.session_id = execution.session_id or first.session_id

        def observe(out: bytes, err: bytes) -> None:
            recorder.stdout.add(out)
            recorder.stderr.add(err)

        def on_finished(finished: ex.Finished) -> None:
            self.training_log.write(EXECUTIONS, recorder.record(final_to_proto(finished)))

        bg = await self.background.adopt(execution, workspace.id, observe=observe, on_finished=on_finished)
        async for response in self._follow(bg, 0, request_iterator, read_only=False, recorder=recorder):
            yield response

    async def _follow(
        self,
        bg: BackgroundExecution,
        after_offset: int,
        request_iterator: AsyncIterator[Any],
        *,
        read_only: bool,
        recorder: ExecutionRecorder | None = None,
    ) -> AsyncIterator[pb.ExecuteResponse]:
        """Replay and follow a background execution while taking its writer's requests. The
        first response names the execution (id, pid)."""
        attachment = bg.attach(read_only)
        pump = asyncio.create_task(self._pump_attached(request_iterator, bg, attachment, recorder))
        events = bg.follow(after_offset)
        first = True
        step: asyncio.Future[Any] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(events))
                if first:
                    # Output already buffered goes with the first message; else it names the
                    # execution alone, at once (a quiet server may print nothing for long).
                    await asyncio.wait(
                        [step, pump], timeout=STARTED_HOLD_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not step.done():
                        yield pb.ExecuteResponse(execution_id=bg.id, pid=bg.pid, output_offset=after_offset)
                        first = False
                await asyncio.wait([step, pump], return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    # The requests failed (a read-only client wrote), or the Execute that started
                    # it half-closed: either ends this follow.
                    step.cancel()
                    pump.result()
                    await asyncio.wait([step])
                    return
                try:
                    event = step.result()
                except StopAsyncIteration:
                    return
                if isinstance(event, FollowOutput):
                    response = pb.ExecuteResponse(
                        stdout_data=event.stdout,
                        stderr_data=event.stderr,
                        output_offset=event.offset,
                        output_skipped=event.skipped,
                    )
                else:
                    response = final_to_proto(event)
                    response.output_offset = bg.buffer.end
                if first:
                    response.execution_id, response.pid, first = bg.id, bg.pid, False
                yield response
                if not isinstance(event, FollowOutput):
                    return
        finally:
            bg.detach(attachment)
            pump.cancel()
            if step is not None and not step.done():
                step.cancel()
                await asyncio.wait([step])
            await events.aclose()

    async def _pump_attached(
        self,
        request_iterator: AsyncIterator[Any],
        bg: BackgroundExecution,
        attachment: Any,
        recorder: ExecutionRecorder | None,
    ) -> None:
        """A follower's later requests (ExecuteRequest or AttachExecutionRequest: the same later
        fields): only the writer's act; one from a read-only follower fails its call. Input
        ends only with close_input."""
        inbox: _InputQueue | None = None
        try:
            async for request in request_iterator:
                acts = (
                    request.input_data or request.close_input or request.stop or request.HasField("winsize")
                )
                if not acts:
                    continue
                execution = bg.require_writer(attachment)
                if execution is None:
                    continue  # it has ended: input after the end is dropped
                if inbox is None:
                    inbox = _InputQueue(execution)
                if request.input_data:
                    if recorder is not None:
                        recorder.input_bytes += len(request.input_data)
                    await inbox.put(request.input_data)
                if request.close_input:
                    await inbox.close()
                if request.HasField("winsize"):
                    await execution.resize(request.winsize.rows, request.winsize.cols)
                if request.stop != pb.STOP_SIGNAL_UNSPECIFIED:
                    await execution.stop(kill=request.stop == pb.STOP_SIGNAL_KILL)
            # The stream's end is no end of input here: a client that goes away ends its stream
            # the way a half-close does, and the command is meant to outlive it. Its queued input
            # still goes in.
            if inbox is not None:
                await inbox.drained_soon()
            if recorder is not None:
                # The Execute that started it half-closed (grpcurl does at once): it has its
                # execution id, and the execution runs on. Attaching is how to follow it.
                return
            # Until the follow ends (the input queue keeps writing meanwhile).
            await asyncio.Event().wait()
        except (errors.FireboxError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the client went away mid-read: following ends with the call
            log.debug("attach_requests_ended", execution_id=bg.id, error=repr(exc))
            await asyncio.Event().wait()
        finally:
            if inbox is not None:
                inbox.cancel()

    # ---- background executions ----

    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: Any
    ) -> pb.ListExecutionsResponse:
        if not request.workspace_id:
            raise errors.InvalidArgument("workspace_id", "required")
        await self.workspaces.get(request.workspace_id)
        return pb.ListExecutionsResponse(
            executions=[_execution_info(b) for b in self.background.list(request.workspace_id)]
        )

    async def AttachExecution(
        self,
        request_iterator: AsyncIterator[pb.AttachExecutionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.AttachExecutionResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            raise errors.InvalidArgument("request", "the stream closed before the first message") from None
        if not first.execution_id:
            raise errors.InvalidArgument("execution_id", "required in the first message")
        for name in ("input_data", "close_input", "stop", "winsize"):
            if first.HasField(name) if name == "winsize" else getattr(first, name):
                raise errors.InvalidArgument(name, "not allowed in the first message; send it in a later one")
        bg = self.background.get(first.execution_id)
        if first.after_offset > bg.buffer.end:
            raise errors.InvalidArgument(
                "after_offset",
                f"{first.after_offset} is past the execution's output so far ({bg.buffer.end} bytes)",
            )
        async for response in self._follow(
            bg, first.after_offset, request_iterator, read_only=first.read_only
        ):
            yield pb.AttachExecutionResponse(response=response)

    async def StopExecution(self, request: pb.StopExecutionRequest, context: Any) -> pb.StopExecutionResponse:
        if not request.execution_id:
            raise errors.InvalidArgument("execution_id", "required")
        bg = await self.background.stop(request.execution_id, kill=request.signal == pb.STOP_SIGNAL_KILL)
        return pb.StopExecutionResponse(execution=_execution_info(bg))

    # ---- port forwarding ----

    async def ForwardPort(
        self,
        request_iterator: AsyncIterator[pb.ForwardPortRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.ForwardPortResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            raise errors.InvalidArgument("request", "the stream closed before the first message") from None
        if not first.workspace_id:
            raise errors.InvalidArgument("workspace_id", "required in the first message")
        if not 1 <= first.port <= 65535:
            raise errors.InvalidArgument("port", f"must be 1 to 65535, got {first.port}")
        workspace = await self.workspaces.require_running(first.workspace_id)
        sock = await self.workspaces.backend.connect_port(workspace, first.port)
        loop = asyncio.get_running_loop()

        async def send() -> None:
            """Our side's bytes; the request stream's end (or close_write) half-closes."""
            try:
                request = first
                requests = aiter(request_iterator)
                while True:
                    if request.data:
                        await loop.sock_sendall(sock, request.data)
                    if request.close_write:
                        break
                    try:
                        request = await anext(requests)
                    except StopAsyncIteration:
                        break
                sock.shutdown(socket.SHUT_WR)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection or the client went away: reading ends too
                log.debug("forward_port_send_ended", error=repr(exc))

        sender = asyncio.create_task(send())
        try:
            yield pb.ForwardPortResponse()
            while True:
                try:
                    data = await loop.sock_recv(sock, FORWARD_CHUNK)
                except OSError:
                    break
                if not data:
                    break
                yield pb.ForwardPortResponse(data=data)
        finally:
            sender.cancel()
            sock.close()

    async def _pump_requests(
        self,
        request_iterator: AsyncIterator[pb.ExecuteRequest],
        execution: ex.Execution,
        recorder: ExecutionRecorder,
    ) -> None:
        """Later requests: input, end of input, stop. The client closing its side is end of input,
        never a stop (grpcurl closes as soon as it has sent its -d messages).

        Input is written by a task of its own (started with the first input), up to
        INPUT_READ_AHEAD_BYTES behind: a program that stops reading its input must not keep a
        stop or a resize sent after that input from being read."""
        inbox = _InputQueue(execution)
        try:
            async for request in request_iterator:
                for name in _FIRST_ONLY:
                    if request.HasField(name) if name == "timeout" else bool(getattr(request, name)):
                        # The program already runs; a misplaced field is ignored, said once in the log.
                        log.warning("execute_field_ignored", field=name, execution_id=execution.id)
                        break
                if request.input_data:
                    recorder.input_bytes += len(request.input_data)
                    await inbox.put(request.input_data)
                if request.close_input:
                    await inbox.close()
                if request.HasField("winsize"):
                    try:
                        await execution.resize(request.winsize.rows, request.winsize.cols)
                    except errors.InvalidArgument as exc:
                        log.warning("execute_bad_winsize", execution_id=execution.id, error=exc.message)
                if request.stop != pb.STOP_SIGNAL_UNSPECIFIED:
                    await execution.stop(kill=request.stop == pb.STOP_SIGNAL_KILL)
            await inbox.close()
            await inbox.drained()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-read; the main loop handles the ending
            log.debug("execute_requests_ended", execution_id=execution.id, error=repr(exc))
        finally:
            inbox.cancel()

    # ---- named tools ----

    async def ListTools(self, request: pb.ListToolsRequest, context: Any) -> pb.ListToolsResponse:
        return pb.ListToolsResponse(tools=[tool_to_proto(t) for t in self.tools.list()])

    async def Step(self, request: pb.StepRequest, context: Any) -> pb.StepResponse:
        return await step(request, self.oneshot, self.tools, self.workspaces, self.step_output_bytes)

    # ---- workspace files ----

    def _files(self) -> WorkspaceFiles:
        if self.files is None:
            raise errors.Unavailable("workspace files are not configured on this executor")
        return self.files

    async def UploadFile(
        self, request_iterator: AsyncIterator[pb.UploadFileRequest], context: Any
    ) -> pb.UploadFileResponse:
        files = self._files()
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            raise errors.InvalidArgument("request", "the stream closed before the first message") from None
        if not first.path:
            raise errors.InvalidArgument("path", "required in the first message")
        if first.mode > 0o777:
            raise errors.InvalidArgument(
                "mode", f"permission bits only, at most 0777 (511), got {first.mode:o}"
            )
        path = workspace_path(first.path, allow_root=False)
        workspace = await self.workspaces.require_running(first.workspace_id)
        if workspace.policy.read_only:
            raise errors.FailedPrecondition(
                f"workspace {workspace.id} is read-only (policy.read_only); uploads are refused"
            )
        if not is_writable(workspace.policy.writable_paths, path):
            raise errors.PermissionDenied(
                f"{path} is outside the workspace's writable paths "
                f"({', '.join(workspace.policy.writable_paths)}); uploads there are refused"
            )

        async def later() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if (
                    message.workspace_id
                    or message.path
                    or message.mode
                    or message.overwrite
                    or message.create_parents
                ):
                    raise errors.InvalidArgument(
                        "path",
                        "workspace_id, path, mode, overwrite and create_parents belong in the first message only",
                    )
                yield message.data

        with files.upload_slot() as slot:
            spool, size, digest = await files.spool(first.data, later(), slot)
            entry = await files.write(
                workspace,
                path,
                spool,
                size,
                mode=first.mode or 0o644,
                overwrite=first.overwrite,
                create_parents=first.create_parents,
            )
        log.info("file_uploaded", workspace_id=workspace.id, path=path, size=size)
        return pb.UploadFileResponse(file=file_to_proto(entry), sha256=digest)

    async def DownloadFile(
        self, request: pb.DownloadFileRequest, context: Any
    ) -> AsyncIterator[pb.DownloadFileResponse]:
        files = self._files()
        if not request.path:
            raise errors.InvalidArgument("path", "required")
        workspace = await self.workspaces.require_running(request.workspace_id)
        async for item in files.download(workspace, request.path):
            if isinstance(item, FileEntry):
                yield pb.DownloadFileResponse(file=file_to_proto(item))
            else:
                yield pb.DownloadFileResponse(data=item)

    async def ListFiles(self, request: pb.ListFilesRequest, context: Any) -> pb.ListFilesResponse:
        files = self._files()
        if request.max_entries < 0:
            raise errors.InvalidArgument("max_entries", "must not be negative")
        limit = min(request.max_entries or DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRIES)
        workspace = await self.workspaces.require_running(request.workspace_id)
        entries, truncated = await files.list(workspace, request.path, request.recursive, limit)
        return pb.ListFilesResponse(entries=[file_to_proto(e) for e in entries], truncated=truncated)

    async def StatFile(self, request: pb.StatFileRequest, context: Any) -> pb.StatFileResponse:
        files = self._files()
        workspace = await self.workspaces.require_running(request.workspace_id)
        return pb.StatFileResponse(file=file_to_proto(await files.stat(workspace, request.path)))
