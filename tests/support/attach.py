"""AttachExecution driven by hand: send requests while reading what it replays and streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc


class Attached:
    """One AttachExecution call."""

    def __init__(
        self,
        stub: executor_pb2_grpc.ExecutorServiceStub,
        execution_id: str,
        after_offset: int = 0,
        read_only: bool = False,
    ) -> None:
        self._queue: asyncio.Queue[pb.AttachExecutionRequest | None] = asyncio.Queue()
        self._queue.put_nowait(
            pb.AttachExecutionRequest(
                execution_id=execution_id, after_offset=after_offset, read_only=read_only
            )
        )
        self.call = stub.AttachExecution(self._requests(), timeout=60)
        self.responses: list[pb.ExecuteResponse] = []

    async def _requests(self) -> AsyncIterator[pb.AttachExecutionRequest]:
        while (item := await self._queue.get()) is not None:
            yield item

    def send(self, **fields: object) -> None:
        self._queue.put_nowait(pb.AttachExecutionRequest(**fields))  # type: ignore[arg-type]

    @property
    def stdout(self) -> bytes:
        return b"".join(r.stdout_data for r in self.responses)

    @property
    def final(self) -> pb.ExecuteResponse | None:
        last = self.responses[-1] if self.responses else None
        return last if last is not None and last.end_reason else None

    async def read_until(self, needle: bytes, within: float = 20.0) -> bytes:
        async with asyncio.timeout(within):
            while needle not in self.stdout:
                message = await self.call.read()
                assert isinstance(message, pb.AttachExecutionResponse), message
                self.responses.append(message.response)
        return self.stdout

    async def finish(self, within: float = 30.0) -> pb.ExecuteResponse:
        async with asyncio.timeout(within):
            while self.final is None:
                message = await self.call.read()
                assert isinstance(message, pb.AttachExecutionResponse), message
                self.responses.append(message.response)
        self._queue.put_nowait(None)
        assert self.final is not None
        return self.final

    def cancel(self) -> None:
        self.call.cancel()
