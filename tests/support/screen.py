"""A terminal screen for PTY executions: an Execute with `tty` whose output a VT100 emulator
(pyte) draws, so that tests assert on what a person would see.

    async with TerminalExecution(stub, first_request(ws, script="vi f", tty=True)) as term:
        await term.wait_for("~")
        term.type(":wq\\r")
"""

from __future__ import annotations

import asyncio
import contextlib

import pyte

from firebox.executor.v1 import executor_pb2 as pb
from firebox.executor.v1 import executor_pb2_grpc
from tests.support.executor_client import ExecuteResult, LiveExecution


class TerminalExecution:
    """An Execute on a terminal, its output fed to a pyte screen as it arrives."""

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceStub, first: pb.ExecuteRequest) -> None:
        rows = first.winsize.rows or 24
        cols = first.winsize.cols or 80
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.live = LiveExecution(stub, first)
        self.raw = bytearray()
        self.final: pb.ExecuteResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> TerminalExecution:
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.final is None:
            self.live.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def _read(self) -> None:
        while True:
            response = await self.live.call.read()
            if not isinstance(response, pb.ExecuteResponse):
                break
            self.live.responses.append(response)
            if response.stdout_data:
                self.raw += response.stdout_data
                self.stream.feed(response.stdout_data)
            if response.HasField("exit_code") or response.end_reason:
                self.final = response
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def type(self, data: str | bytes) -> None:
        self.live.send(pb.ExecuteRequest(input_data=data.encode() if isinstance(data, str) else data))

    def resize(self, rows: int, cols: int) -> None:
        self.screen.resize(rows, cols)
        self.live.send(pb.ExecuteRequest(winsize=pb.Winsize(rows=rows, cols=cols)))

    async def wait_for(self, text: str, within: float = 20.0) -> str:
        """The screen once `text` shows on it."""
        try:
            async with asyncio.timeout(within):
                while text not in self.text:
                    if self._reader is not None and self._reader.done():
                        break
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pass
        assert text in self.text, f"{text!r} not on the screen:\n{self.text}"
        return self.text

    async def finish(self, within: float = 30.0) -> ExecuteResult:
        """Half-close and wait for the end."""
        self.live.close()
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), within)
        return ExecuteResult(self.live.responses)
