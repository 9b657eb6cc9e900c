"""Small helpers for talking to a real executor over gRPC in tests.

result = await execute(stub, workspace_id, script="echo hi")
assert result.stdout == b"hi\\n" and result.exit_code == 0
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from firebox.client.execution import ExecCall
from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc


@dataclass
class ExecuteResult:
    """Everything an Execute stream returned, put together."""

    responses: list[pb.ExecuteResponse] = field(default_factory=list)

    @property
    def first(self) -> pb.ExecuteResponse:
        return self.responses[0]

    @property
    def final(self) -> pb.ExecuteResponse:
        return self.responses[-1]

    @property
    def stdout(self) -> bytes:
        return b"".join(r.stdout_data for r in self.responses)

    @property
    def stderr(self) -> bytes:
        return b"".join(r.stderr_data for r in self.responses)

    @property
    def exit_code(self) -> int | None:
        return self.final.exit_code.value if self.final.HasField("exit_code") else None

    @property
    def end_reason(self) -> int:
        return self.final.end_reason


def first_request(
    workspace_id: str,
    script: str = "",
    argv: Sequence[str] = (),
    session_id: str = "",
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    **fields: object,
) -> pb.ExecuteRequest:
    request = pb.ExecuteRequest(
        workspace_id=workspace_id,
        script=script,
        argv=list(argv),
        session_id=session_id,
        env=env or {},
        **fields,
    )
    if timeout is not None:
        request.timeout.FromTimedelta(dt.timedelta(seconds=timeout))
    return request


def _raw(exc: grpc.RpcError) -> Exception:
    """Tests see the gRPC error itself (its code and details)."""
    return exc


async def execute(
    stub: executor_pb2_grpc.ExecutorServiceStub,
    workspace_id: str,
    script: str = "",
    argv: Sequence[str] = (),
    later: Sequence[pb.ExecuteRequest] = (),
    deadline: float = 60.0,
    metadata: Sequence[tuple[str, str]] | None = None,
    **kwargs: object,
) -> ExecuteResult:
    """Run one Execute to its end through firebox.client's ExecCall: send the first request (and
    `later` ones), half-close, collect every response."""
    first = first_request(workspace_id, script, argv, **kwargs)  # type: ignore[arg-type]
    execution = ExecCall(stub.Execute(timeout=deadline, metadata=metadata), _raw)
    await execution.start(first)
    for request in later:
        await execution.send(request)
    await execution.done_writing()
    result = ExecuteResult()
    async for response in execution:
        result.responses.append(response)
    return result


class LiveExecution:
    """An Execute stream driven by hand (firebox.client's ExecCall underneath): send requests
    while reading responses. `call` is the gRPC call, for tests that read or cancel it raw."""

    def __init__(
        self, stub: executor_pb2_grpc.ExecutorServiceStub, first: pb.ExecuteRequest, deadline: float = 60.0
    ):
        self.call = stub.Execute(timeout=deadline)
        self.execution = ExecCall(self.call, _raw)
        self._responses = aiter(self.execution)
        # Requests go out in order from one task, so `send` and `close` need not be awaited.
        self._queue: asyncio.Queue[pb.ExecuteRequest | None] = asyncio.Queue()
        self._queue.put_nowait(first)
        self._writer = asyncio.create_task(self._write())
        # A test that cancels the gRPC call itself ends the writer too.
        self.call.add_done_callback(lambda _: self._writer.cancel())
        self.responses: list[pb.ExecuteResponse] = []

    async def _write(self) -> None:
        first = await self._queue.get()
        assert first is not None
        await self.execution.start(first)
        while (request := await self._queue.get()) is not None:
            await self.execution.send(request)
        await self.execution.done_writing()

    def send(self, request: pb.ExecuteRequest) -> None:
        self._queue.put_nowait(request)

    def close(self) -> None:
        """Half-close: end of our requests."""
        self._queue.put_nowait(None)

    def cancel(self) -> None:
        """Cancel the call, as a client that goes away does."""
        self.execution.cancel()
        self._writer.cancel()

    async def next(self, within: float = 10.0) -> pb.ExecuteResponse:
        response = await asyncio.wait_for(anext(self._responses), within)
        self.responses.append(response)
        return response

    async def read_until_output(self, needle: bytes, within: float = 10.0) -> bytes:
        """Read responses until stdout so far contains `needle`; returns stdout so far."""
        seen = b"".join(r.stdout_data for r in self.responses)
        while needle not in seen:
            response = await self.next(within)
            seen += response.stdout_data
        return seen

    async def finish(self, within: float = 30.0) -> ExecuteResult:
        """Read to the end of the stream."""

        async def rest() -> None:
            async for response in self._responses:
                self.responses.append(response)

        try:
            await asyncio.wait_for(rest(), within)
        finally:
            self.close()
        return ExecuteResult(self.responses)
