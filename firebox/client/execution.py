"""Running calls: one Execute (its output as it arrives, stdin and stop on the way in), and one
ForwardPort connection."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf import duration_pb2

from firebox.executor.v1 import executor_pb2 as ex

# What a failed call is raised as: the client's FireboxRpcError, the agent's ExecutorError, or
# the gRPC error itself (tests).
ErrorFactory = Callable[[grpc.RpcError], Exception]
# After the final response, how long the executor may take to end the call once we half-closed.
END_WAIT_SECONDS = 5.0


def first_request(
    workspace_id: str,
    *,
    script: str | None = None,
    argv: list[str] | None = None,
    session_id: str = "",
    directory: str = "",
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    known_id: str = "",
    known_name: str = "",
    resume_workspace: bool = False,
    tty: bool = False,
    winsize: tuple[int, int] | None = None,
    run_id: str = "",
    tool_call_id: str = "",
    agent_session_id: str = "",
) -> ex.ExecuteRequest:
    """The first message of an Execute stream: the program and where it runs (`tty`: on a
    terminal of `winsize` = (rows, cols)); an agent names the run, tool call and session it runs
    for (the training log's links)."""
    request = ex.ExecuteRequest(
        run_id=run_id,
        tool_call_id=tool_call_id,
        agent_session_id=agent_session_id,
        workspace_id=workspace_id,
        session_id=session_id,
        script=script or "",
        argv=argv or [],
        directory=directory,
        env=env or {},
        known_id=known_id,
        known_name=known_name,
        resume_workspace=resume_workspace,
        tty=tty,
    )
    if winsize is not None:
        request.winsize.CopyFrom(ex.Winsize(rows=winsize[0], cols=winsize[1]))
    if timeout is not None:
        request.timeout.CopyFrom(duration_pb2.Duration(seconds=int(timeout), nanos=int(timeout % 1 * 1e9)))
    return request


@dataclass
class ExecResult:
    """A finished execution with all its output collected (see `AsyncFireboxClient.run`)."""

    execution_id: str
    pid: int
    exit_code: int | None
    end_reason: int
    output_truncated: bool
    session_ended: bool
    message: str
    duration: dt.timedelta
    stdout: bytes
    stderr: bytes

    @property
    def end_reason_name(self) -> str:
        return ex.EndReason.Name(self.end_reason)


class ExecCall:
    """A running execution: the one client side of the Execute stream, used by the Python
    client, the CLI, the agent (its shell tool and its Execute relay) and the tests. Iterate it
    for ExecuteResponse messages (the first carries the execution id and pid, the last the exit
    code); `final` holds that last message afterwards.

    Input and stop go out on the same stream, so end of input is sent as a `close_input` message
    rather than by closing the stream: a stop must stay possible until the program ends. Once
    the final response arrives nothing more is written: the stream is half-closed at once, so the
    executor ends the call with OK (a write crossing the call's end would fail in gRPC's core and
    turn its status into INTERNAL). Iteration goes on to the call's end, so the executor finishes
    its bookkeeping the ordinary way; only a caller that stops iterating early cancels the call.
    """

    def __init__(self, call: grpc.aio.StreamStreamCall[Any, Any], error: ErrorFactory) -> None:
        self._call = call
        self._error = error
        # grpc.aio allows one write at a time; stdin and a stop may come from different tasks.
        self._write_lock = asyncio.Lock()
        self._writes_closed = False
        self.execution_id = ""
        self.pid = 0
        self.final: ex.ExecuteResponse | None = None

    async def _write(self, request: ex.ExecuteRequest, *, required: bool) -> bool:
        async with self._write_lock:
            if self._call.done() or self._writes_closed:
                return False
            try:
                await self._call.write(request)
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                # The program may end while input is still on its way: that race is not the
                # caller's error. A failure the call reports itself surfaces while iterating.
                if required and isinstance(exc, grpc.RpcError) and not self._call.done():
                    raise self._error(exc) from None
                return False
            return True

    async def start(self, request: ex.ExecuteRequest) -> None:
        await self._write(request, required=True)

    async def send(self, request: ex.ExecuteRequest) -> bool:
        """Send any later request as it is (a relay forwarding its client's); False when the
        execution is over and it was dropped."""
        return await self._write(request, required=False)

    async def done_writing(self) -> None:
        """Half-close: nothing more will be sent, not even a stop (a relay forwarding its
        client's half-close; done by itself after the final response)."""
        async with self._write_lock:
            if self._writes_closed or self._call.done():
                return
            self._writes_closed = True
            with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
                await self._call.done_writing()

    async def send_input(self, data: bytes) -> bool:
        """Send bytes to the program's stdin; False when the program already ended."""
        return await self._write(ex.ExecuteRequest(input_data=data), required=False)

    async def close_input(self) -> bool:
        """Signal end of stdin; the program keeps running and can still be stopped."""
        return await self._write(ex.ExecuteRequest(close_input=True), required=False)

    async def stop(self, kill: bool = False) -> bool:
        """Ask the program to stop: SIGINT (escalated by the server after a grace period), or
        SIGKILL to its whole process group with `kill`."""
        signal = ex.STOP_SIGNAL_KILL if kill else ex.STOP_SIGNAL_INTERRUPT
        return await self._write(ex.ExecuteRequest(stop=signal), required=False)

    async def resize(self, rows: int, cols: int) -> bool:
        """Resize the program's terminal (an execution with tty)."""
        return await self._write(ex.ExecuteRequest(winsize=ex.Winsize(rows=rows, cols=cols)), required=False)

    def cancel(self) -> None:
        """Abandon the call; the server kills the program (end reason CANCELLED)."""
        self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[ex.ExecuteResponse]:
        try:
            while True:
                if self.final is None:
                    response = await self._call.read()
                else:
                    try:
                        async with asyncio.timeout(END_WAIT_SECONDS):
                            response = await self._call.read()
                    except TimeoutError:
                        return  # the executor did not end the call: cancelled below
                if response is grpc.aio.EOF:
                    return
                # typeshed types read() as object (EOF or the response).
                response = cast(ex.ExecuteResponse, response)
                if response.execution_id and not self.execution_id:
                    self.execution_id = response.execution_id
                    self.pid = response.pid
                if response.HasField("exit_code") or response.end_reason:
                    self.final = response
                    # Nothing more is worth sending: half-close so the server can end the call
                    # at once (it waits briefly for this, so late writes cannot race its end).
                    await self.done_writing()
                yield response
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            if not self._call.done():
                self._call.cancel()

    async def collect(self, stdin: bytes | None = None) -> ExecResult:
        """Send `stdin` (then end of input) and gather all output until the program ends."""
        if stdin:
            await self.send_input(stdin)
        await self.close_input()
        stdout, stderr = bytearray(), bytearray()
        async for response in self:
            stdout += response.stdout_data
            stderr += response.stderr_data
        final = self.final or ex.ExecuteResponse()
        return ExecResult(
            execution_id=self.execution_id,
            pid=self.pid,
            exit_code=final.exit_code.value if final.HasField("exit_code") else None,
            end_reason=final.end_reason,
            output_truncated=final.output_truncated,
            session_ended=final.session_ended,
            message=final.message,
            duration=final.duration.ToTimedelta(),
            stdout=bytes(stdout),
            stderr=bytes(stderr),
        )


class PortConnection:
    """One TCP connection into a workspace (ForwardPort): `send` bytes, `close_write`, and
    iterate it for the bytes that come back until the workspace side closes."""

    def __init__(self, call: grpc.aio.StreamStreamCall[Any, Any], error: ErrorFactory) -> None:
        self._call = call
        self._error = error

    async def open(self, workspace_id: str, port: int) -> None:
        try:
            await self._call.write(ex.ForwardPortRequest(workspace_id=workspace_id, port=port))
            # The first response, empty, says the connection is made (or the call fails).
            if await self._call.read() is grpc.aio.EOF:
                raise RuntimeError("the executor ended ForwardPort before connecting")
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    async def send(self, data: bytes) -> None:
        try:
            await self._call.write(ex.ForwardPortRequest(data=data))
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass  # the connection is over; the reader sees how

    async def close_write(self) -> None:
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            await self._call.done_writing()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    return
                data = cast(ex.ForwardPortResponse, response).data
                if data:
                    yield data
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._call.cancel()
