"""A small async client of the executor: workspaces, shell sessions, scripts, and forwarding.

Executor errors keep their gRPC codes (as `ExecutorError`, a FireboxError whose code is the
executor's), so a client of the agent sees what the executor said. An executor that does not
answer gives UNAVAILABLE within a second, naming its address, instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from firebox.client.execution import ExecCall, first_request
from firebox.common import tracing
from firebox.common.errors import FireboxError, Unavailable
from firebox.common.logging import get_logger
from firebox.common.tls import ClientTLS, secure_or_insecure_channel
from firebox.executor.v1 import executor_pb2, executor_pb2_grpc

log = get_logger("firebox.agent.executor")

# How long to wait for the executor's channel to connect before calling it unreachable.
CONNECT_TIMEOUT_SECONDS = 1.0
# After a stop, how long to wait for the executor to report the program's end.
STOP_WAIT_SECONDS = 3.0
# After the final response, how long a forwarded Execute waits for its client to half-close.
HALF_CLOSE_LINGER_SECONDS = 2.0
# Deadlines beyond this (or none) are not forwarded: gRPC reports "no deadline" as a huge number.
_NO_DEADLINE = 10 * 365 * 24 * 3600.0


class ExecutorError(FireboxError):
    """An executor call failed; `code` is the executor's status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def forwardable_timeout(time_remaining: float | None) -> float | None:
    """The deadline to pass on: what the caller has left, or None when it set no deadline."""
    if time_remaining is None or time_remaining > _NO_DEADLINE:
        return None
    return max(time_remaining, 0.0)


@dataclass
class ExecutionOutcome:
    """How a script run through the executor ended."""

    execution_id: str = ""
    exit_code: int = -1
    end_reason: int = executor_pb2.END_REASON_UNSPECIFIED
    output_truncated: bool = False
    session_ended: bool = False
    message: str = ""


@dataclass
class ProcessOutput:
    """What a background execution printed after an offset (see ExecutorClient.read_process)."""

    output: bytes = b""
    # Offset just past `output`: where the next read continues.
    offset: int = 0
    # Bytes after the asked offset the executor no longer had (its buffer overflowed).
    skipped: int = 0
    # Set once it has ended: its last message.
    final: executor_pb2.ExecuteResponse | None = None


class ExecutorClient:
    """The agent's connection to one executor (one replica of a pool: see executor_pool), over
    TLS when `tls` is given. Building it reads the TLS files: a bad one raises InvalidArgument."""

    def __init__(self, target: str, auth_token: str | None = None, tls: ClientTLS | None = None) -> None:
        self.target = target
        self._channel = secure_or_insecure_channel(
            target,
            tls,
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
                # Reconnect quickly after the executor restarts, not after the default backoff.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._stub = executor_pb2_grpc.ExecutorServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {auth_token}"),) if auth_token else ()
        )

    async def close(self) -> None:
        await self._channel.close()

    async def ensure_reachable(self) -> None:
        """Return at once when connected; otherwise wait up to a second, then UNAVAILABLE."""
        state = self._channel.get_state(try_to_connect=True)
        if state == grpc.ChannelConnectivity.READY:
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await self._channel.channel_ready()
        except TimeoutError:
            raise Unavailable(
                f"the executor at {self.target} is unreachable (no connection within "
                f"{CONNECT_TIMEOUT_SECONDS:g}s); check --executor / FIREBOX_EXECUTOR and that it is running"
            ) from None

    def _error(self, exc: grpc.RpcError, doing: str) -> ExecutorError:
        if isinstance(exc, grpc.aio.AioRpcError):
            code, detail = exc.code(), exc.details() or exc.code().name
        else:  # grpc.aio's calls raise AioRpcError, with the status; anything else is unknown
            code, detail = grpc.StatusCode.UNKNOWN, str(exc) or type(exc).__name__
        if code == grpc.StatusCode.UNAVAILABLE:
            detail = f"the executor at {self.target} is unavailable: {detail}"
        return ExecutorError(code, f"{doing}: {detail}" if doing else detail)

    async def _unary(self, method: Callable[..., Any], request: object, doing: str, deadline: float) -> Any:
        """One unary call; the stubs are untyped, so callers name what they get back."""
        await self.ensure_reachable()
        try:
            return await method(request, metadata=self._metadata, timeout=deadline, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, doing) from None

    async def server_info(self, deadline: float = 5.0) -> executor_pb2.GetServerInfoResponse:
        info: executor_pb2.GetServerInfoResponse = await self._unary(
            self._stub.GetServerInfo, executor_pb2.GetServerInfoRequest(), "", deadline
        )
        return info

    async def create_workspace(
        self,
        image: str,
        policy: executor_pb2.IsolationPolicy | None,
        labels: Mapping[str, str],
        deadline: float = 120.0,
    ) -> executor_pb2.Workspace:
        request = executor_pb2.CreateWorkspaceRequest(image=image, policy=policy, labels=dict(labels))
        response = await self._unary(self._stub.CreateWorkspace, request, "creating the workspace", deadline)
        result: executor_pb2.Workspace = response.workspace
        return result

    async def server_info_now(self, deadline: float = 2.0) -> executor_pb2.GetServerInfoResponse:
        """GetServerInfo without waiting for a connection: an executor that is down fails at once."""
        try:
            result: executor_pb2.GetServerInfoResponse = await self._stub.GetServerInfo(
                executor_pb2.GetServerInfoRequest(),
                metadata=self._metadata,
                timeout=deadline,
                wait_for_ready=False,
            )
            return result
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "asking the executor who it is") from None

    async def create_workspace_from(
        self, request: executor_pb2.CreateWorkspaceRequest, deadline: float = 120.0
    ) -> executor_pb2.CreateWorkspaceResponse:
        """CreateWorkspace with the caller's whole request (the agent's forwarding RPC)."""
        response: executor_pb2.CreateWorkspaceResponse = await self._unary(
            self._stub.CreateWorkspace, request, "creating the workspace", deadline
        )
        return response

    async def create_workspace_with_progress(
        self, request: executor_pb2.CreateWorkspaceRequest, deadline: float | None
    ) -> AsyncGenerator[executor_pb2.CreateWorkspaceWithProgressResponse, None]:
        """CreateWorkspaceWithProgress with the caller's whole request: its messages as they come
        (the agent's forwarding RPC). Closing this generator cancels the call."""
        await self.ensure_reachable()
        call = self._stub.CreateWorkspaceWithProgress(
            request, metadata=tracing.outgoing(self._metadata), timeout=deadline, wait_for_ready=False
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "creating the workspace") from None
        finally:
            call.cancel()

    async def get_workspace(self, workspace_id: str, deadline: float = 10.0) -> executor_pb2.Workspace:
        request = executor_pb2.GetWorkspaceRequest(workspace_id=workspace_id)
        response = await self._unary(
            self._stub.GetWorkspace, request, f"reading workspace {workspace_id}", deadline
        )
        result: executor_pb2.Workspace = response.workspace
        return result

    async def list_workspaces(self, deadline: float = 10.0) -> list[executor_pb2.Workspace]:
        response = await self._unary(
            self._stub.ListWorkspaces, executor_pb2.ListWorkspacesRequest(), "listing workspaces", deadline
        )
        return list(response.workspaces)

    async def delete_workspace(self, workspace_id: str, deadline: float = 60.0) -> None:
        request = executor_pb2.DeleteWorkspaceRequest(workspace_id=workspace_id)
        await self._unary(self._stub.DeleteWorkspace, request, f"deleting workspace {workspace_id}", deadline)

    async def set_writable_paths(
        self, workspace_id: str, writable_paths: list[str], deadline: float = 60.0
    ) -> executor_pb2.Workspace:
        request = executor_pb2.SetWritablePathsRequest(
            workspace_id=workspace_id, writable_paths=writable_paths
        )
        response = await self._unary(
            self._stub.SetWritablePaths,
            request,
            f"setting the writable paths of workspace {workspace_id}",
            deadline,
        )
        result: executor_pb2.Workspace = response.workspace
        return result

    async def pause_workspace(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Workspace:
        request = executor_pb2.PauseWorkspaceRequest(workspace_id=workspace_id)
        response = await self._unary(
            self._stub.PauseWorkspace, request, f"pausing workspace {workspace_id}", deadline
        )
        result: executor_pb2.Workspace = response.workspace
        return result

    async def resume_workspace(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Workspace:
        request = executor_pb2.ResumeWorkspaceRequest(workspace_id=workspace_id)
        response = await self._unary(
            self._stub.ResumeWorkspace, request, f"resuming workspace {workspace_id}", deadline
        )
        result: executor_pb2.Workspace = response.workspace
        return result

    async def create_snapshot(
        self, request: executor_pb2.CreateSnapshotRequest, deadline: float = 600.0
    ) -> executor_pb2.CreateSnapshotResponse:
        doing = f"snapshotting workspace {request.workspace_id}"
        response: executor_pb2.CreateSnapshotResponse = await self._unary(
            self._stub.CreateSnapshot, request, doing, deadline
        )
        return response

    async def list_snapshots(
        self, workspace_id: str = "", deadline: float = 10.0
    ) -> list[executor_pb2.Snapshot]:
        request = executor_pb2.ListSnapshotsRequest(workspace_id=workspace_id)
        response = await self._unary(self._stub.ListSnapshots, request, "listing snapshots", deadline)
        return list(response.snapshots)

    async def delete_snapshot(self, snapshot_id: str, deadline: float = 60.0) -> None:
        request = executor_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id)
        await self._unary(self._stub.DeleteSnapshot, request, f"deleting snapshot {snapshot_id}", deadline)

    async def create_shell_session(self, workspace_id: str, deadline: float = 60.0) -> executor_pb2.Session:
        request = executor_pb2.CreateSessionRequest(workspace_id=workspace_id)
        response = await self._unary(
            self._stub.CreateSession, request, "starting the shell session", deadline
        )
        result: executor_pb2.Session = response.session
        return result

    async def list_tools(self, deadline: float = 10.0) -> list[executor_pb2.Tool]:
        """The named tools the executor's operator declared."""
        response = await self._unary(
            self._stub.ListTools, executor_pb2.ListToolsRequest(), "listing the executor's tools", deadline
        )
        return list(response.tools)

    async def list_tools_now(self, deadline: float = 3.0) -> list[executor_pb2.Tool]:
        """ListTools without waiting for a connection: an unreachable executor fails at once, so a
        run's start never waits on it."""
        try:
            response = await self._stub.ListTools(
                executor_pb2.ListToolsRequest(),
                metadata=self._metadata,
                timeout=deadline,
                wait_for_ready=False,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "listing the executor's tools") from None
        return list(response.tools)

    async def step(self, request: executor_pb2.StepRequest, deadline: float) -> executor_pb2.StepResponse:
        """Run one named tool (Step) and return its observation."""
        response: executor_pb2.StepResponse = await self._unary(
            self._stub.Step, request, f"running tool {request.action.tool_name}", deadline
        )
        return response

    async def download_file(
        self, workspace_id: str, path: str, limit: int, deadline: float = 60.0
    ) -> tuple[executor_pb2.FileInfo, bytes]:
        """A file's info and at most `limit` of its first bytes (the rest is not read)."""
        await self.ensure_reachable()
        call = self._stub.DownloadFile(
            executor_pb2.DownloadFileRequest(workspace_id=workspace_id, path=path),
            metadata=self._metadata,
            timeout=deadline,
            wait_for_ready=False,
        )
        info = executor_pb2.FileInfo()
        data = bytearray()
        try:
            async for response in call:
                if response.HasField("file"):
                    info.CopyFrom(response.file)
                data += response.data
                if len(data) >= limit:
                    break
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"reading {path}") from None
        finally:
            if not call.done():
                call.cancel()
        return info, bytes(data[:limit])

    async def upload_file(
        self, workspace_id: str, path: str, data: bytes, chunk: int = 1024 * 1024, deadline: float = 60.0
    ) -> executor_pb2.UploadFileResponse:
        """Write a whole file (replacing one there, creating parent directories)."""
        await self.ensure_reachable()

        def requests() -> list[executor_pb2.UploadFileRequest]:
            first = executor_pb2.UploadFileRequest(
                workspace_id=workspace_id, path=path, overwrite=True, create_parents=True, data=data[:chunk]
            )
            rest = [
                executor_pb2.UploadFileRequest(data=data[i : i + chunk])
                for i in range(chunk, len(data), chunk)
            ]
            return [first, *rest]

        try:
            result: executor_pb2.UploadFileResponse = await self._stub.UploadFile(
                iter(requests()), metadata=self._metadata, timeout=deadline, wait_for_ready=False
            )
            return result
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"writing {path}") from None

    async def start_process(
        self, *, workspace_id: str, script: str, run_id: str, tool_call_id: str, agent_session_id: str
    ) -> str:
        """Start `script` as a background execution (it outlives this call); its id."""
        await self.ensure_reachable()
        first = executor_pb2.ExecuteRequest(
            workspace_id=workspace_id,
            script=script,
            background=True,
            run_id=run_id,
            tool_call_id=tool_call_id,
            agent_session_id=agent_session_id,
        )
        call = self._stub.Execute(metadata=self._metadata, timeout=60, wait_for_ready=False)
        try:
            await call.write(first)
            response = await call.read()
            if response is grpc.aio.EOF:
                raise ExecutorError(
                    grpc.StatusCode.UNAVAILABLE, "the executor ended the call before starting it"
                )
            result: str = response.execution_id
            return result
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "starting the process") from None
        finally:
            call.cancel()  # the execution runs on: that is what background means

    async def read_process(
        self,
        *,
        workspace_id: str,
        execution_id: str,
        after_offset: int,
        wait_seconds: float,
        max_bytes: int,
        input_data: bytes = b"",
    ) -> ProcessOutput:
        """Send `input_data` (if any), then collect what the background execution prints after
        `after_offset` for up to `wait_seconds` (less once it ends or `max_bytes` came).
        `workspace_id` is the execution's (a pool of executors routes by it)."""
        await self.ensure_reachable()
        call = self._stub.AttachExecution(
            metadata=self._metadata, timeout=wait_seconds + 30, wait_for_ready=False
        )
        result = ProcessOutput(offset=after_offset)
        chunks: list[bytes] = []
        size = 0
        try:
            await call.write(
                executor_pb2.AttachExecutionRequest(
                    execution_id=execution_id, after_offset=after_offset, read_only=not input_data
                )
            )
            if input_data:
                await call.write(executor_pb2.AttachExecutionRequest(input_data=input_data))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    while size < max_bytes:
                        message = await call.read()
                        if message is grpc.aio.EOF:
                            break
                        response = message.response
                        result.skipped += response.output_skipped
                        data = response.stdout_data + response.stderr_data
                        chunks.append(data)
                        size += len(data)
                        result.offset = max(result.offset, response.output_offset)
                        if response.end_reason:
                            result.final = response
                            break
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "reading the process") from None
        finally:
            call.cancel()
        result.output = b"".join(chunks)
        return result

    async def stop_process(
        self, execution_id: str, *, workspace_id: str, deadline: float = 30.0
    ) -> executor_pb2.ExecutionInfo:
        request = executor_pb2.StopExecutionRequest(
            execution_id=execution_id, signal=executor_pb2.STOP_SIGNAL_KILL
        )
        result: executor_pb2.ExecutionInfo = (
            await self._unary(self._stub.StopExecution, request, "stopping the process", deadline)
        ).execution
        return result

    async def run_script(
        self,
        *,
        workspace_id: str,
        session_id: str,
        script: str,
        run_id: str,
        tool_call_id: str,
        agent_session_id: str,
        timeout_seconds: float,
        on_output: Callable[[bytes, bytes], None],
    ) -> ExecutionOutcome:
        """Run a script in a shell session, handing output to `on_output` as it streams.

        Cancelling the caller kills the program: a KILL stop is sent and its end awaited briefly
        before the call itself is cancelled (which makes the executor kill it too)."""
        await self.ensure_reachable()
        first = first_request(
            workspace_id,
            session_id=session_id,
            script=script,
            timeout=timeout_seconds,
            run_id=run_id,
            tool_call_id=tool_call_id,
            agent_session_id=agent_session_id,
        )
        # The call's own deadline leaves the executor time to report its timeout first.
        execution = self._execute(timeout_seconds + 30, "running the tool")
        outcome = ExecutionOutcome()
        reader: asyncio.Task[None] | None = None
        try:
            await execution.start(first)
            # End of input now, but the request side stays open so a stop can still be sent.
            await execution.close_input()
            # Read in a task of its own: cancelling a coroutine that awaits a gRPC read cancels the
            # RPC at once, and a stop could no longer be sent.
            reader = asyncio.create_task(_read_to_end(execution, outcome, on_output))
            await asyncio.shield(reader)
        except asyncio.CancelledError:
            await _stop(execution, reader, outcome)
            raise
        finally:
            if reader is not None and not reader.done():
                reader.cancel()
            execution.cancel()
        return outcome

    def _execute(self, deadline: float | None, doing: str) -> ExecCall:
        """An Execute call on the executor (firebox.client's ExecCall), its errors as ExecutorError."""
        call = self._stub.Execute(
            metadata=tracing.outgoing(self._metadata), timeout=deadline, wait_for_ready=False
        )
        return ExecCall(call, lambda exc: self._error(exc, doing))

    async def forward_execute(
        self,
        first: executor_pb2.ExecuteRequest,
        rest: AsyncIterator[executor_pb2.ExecuteRequest],
        deadline: float | None,
    ) -> AsyncGenerator[executor_pb2.ExecuteResponse, None]:
        """Proxy one Execute stream: `first`, then the requests of `rest` (stdin, stops,
        half-close) go through as they come, responses come back as they come, every field of
        every message unchanged. Closing this generator cancels the executor's call.

        A client write that crosses the end of a call fails in gRPC's core and turns that call's
        status into INTERNAL, hiding the real one. So later requests wait until the executor has
        accepted the first (its first response); ExecCall sends nothing after the final response;
        and the client gets a moment to half-close before this call ends (as the executor does)."""
        await self.ensure_reachable()
        execution = self._execute(deadline, "")
        accepted = asyncio.Event()

        async def pump() -> None:
            # The call's own status says what went wrong; the client's requests are still read
            # to its half-close (and dropped once the execution is over), so that its last write
            # does not cross the end of this call, refused ones included.
            with contextlib.suppress(ExecutorError):
                await execution.start(first)
            async for request in rest:
                await accepted.wait()
                with contextlib.suppress(ExecutorError):
                    await execution.send(request)
            with contextlib.suppress(ExecutorError):
                await execution.done_writing()

        async def linger() -> None:
            accepted.set()
            if not pump_task.done():  # usually done: the client half-closed long ago
                await asyncio.wait([pump_task], timeout=HALF_CLOSE_LINGER_SECONDS)

        pump_task = asyncio.create_task(pump())
        try:
            async for response in execution:
                accepted.set()
                yield response
            await linger()
        except ExecutorError:
            await linger()  # a refusal (a paused workspace, a bad request) ends the call as well
            raise
        finally:
            accepted.set()
            pump_task.cancel()
            execution.cancel()


async def _read_to_end(
    execution: ExecCall, outcome: ExecutionOutcome, on_output: Callable[[bytes, bytes], None]
) -> None:
    async for response in execution:
        if response.execution_id:
            outcome.execution_id = response.execution_id
        if response.stdout_data or response.stderr_data:
            on_output(response.stdout_data, response.stderr_data)
        if response.HasField("exit_code") or response.end_reason:
            outcome.exit_code = response.exit_code.value if response.HasField("exit_code") else -1
            outcome.end_reason = response.end_reason
            outcome.output_truncated = response.output_truncated
            outcome.session_ended = response.session_ended
            outcome.message = response.message


async def _stop(execution: ExecCall, reader: asyncio.Task[None] | None, outcome: ExecutionOutcome) -> None:
    """Send a KILL stop and wait (briefly) for the executor to report the end; the caller then
    cancels the call, which makes the executor kill it too if the stop did not arrive."""
    confirmed = False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STOP_WAIT_SECONDS):
            if await execution.stop(kill=True) and reader is not None:
                await asyncio.wait({reader})
                confirmed = True
    if not confirmed:
        log.warning("tool_stop_not_confirmed", execution_id=outcome.execution_id)
    log.info("tool_execution_stopped", execution_id=outcome.execution_id, end_reason=outcome.end_reason)
