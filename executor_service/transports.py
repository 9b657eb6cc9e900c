"""Byte pipes to one process in a workspace (the `ShellTransport` of backend.py).

- `DockerExecTransport`: one `docker exec` whose attach socket is driven by the event loop
  (non-blocking, no thread per read). Non-TTY exec output is multiplexed in frames: an 8-byte
  header (stream id, three zero bytes, big-endian payload length) then the payload; frames are
  demultiplexed incrementally and may split anywhere across reads.
- `PipeTransport`: an asyncio subprocess with pipes (the bwrap backend, and local tests).

Both are bounded: `read` hands out one chunk at a time and nothing is read ahead beyond one
socket/pipe read, so a slow consumer stops the reading and the process blocks on its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from typing import Any

import docker.errors

from executor_service.backend import STDERR, STDOUT
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.transports")

READ_SIZE = 256 * 1024
_HEADER = struct.Struct(">BxxxL")


class DockerExecTransport:
    """stdin/stdout/stderr of one `docker exec` process, over its hijacked attach socket."""

    def __init__(self, api: Any, exec_id: str, response: Any, sock: socket.socket) -> None:
        self.api = api
        self.exec_id = exec_id
        # Keeps the SDK's response object (and so the connection) alive.
        self._response = response
        self._sock = sock
        self._buf = bytearray()
        # Start of the unconsumed bytes in _buf.
        self._pos = 0
        self._stream = STDOUT
        self._remaining = 0
        self._closed = False

    @classmethod
    async def open(
        cls,
        client: Any,
        container: str,
        *,
        argv: list[str],
        env: dict[str, str],
        user: str = "",
        workdir: str = "/workspace",
    ) -> DockerExecTransport:
        """`docker exec` `argv` in `container` (a DockerClient or its low-level APIClient) with
        exactly `env`, and connect to its stdin/stdout/stderr. NotFound when the container is
        gone, FailedPrecondition when it is not running."""
        api = getattr(client, "api", client)

        def create_and_start() -> tuple[str, Any, socket.socket]:
            exec_id = api.exec_create(
                container,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                environment=env,
                workdir=workdir or None,
                user=user or "",
            )["Id"]
            response = api.exec_start(exec_id, socket=True)
            raw = getattr(response, "_sock", response)
            if not isinstance(raw, socket.socket):
                raise errors.Unavailable(
                    "the docker engine connection is not a plain socket (TLS?); use the local unix socket"
                )
            return exec_id, response, raw

        try:
            exec_id, response, raw = await asyncio.to_thread(create_and_start)
        except docker.errors.NotFound as exc:
            raise errors.NotFound(
                f"the workspace's container {container!r} is gone: {exc.explanation}"
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise errors.FailedPrecondition(
                    f"the workspace's container {container!r} is not running; start the workspace"
                ) from exc
            raise errors.Unavailable(f"docker exec failed: {exc.explanation or exc}") from exc
        raw.setblocking(False)
        return cls(api, exec_id, response, raw)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise errors.Unavailable("the shell's connection is closed")
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def read(self) -> tuple[int, bytes] | None:
        loop = asyncio.get_running_loop()
        buf = self._buf
        while True:
            available = len(buf) - self._pos
            if self._remaining and available:
                # Hand out this frame's bytes, and those of the following frames of the same
                # stream already here: small writes make many small frames.
                parts = []
                size = 0
                while True:
                    n = min(self._remaining, len(buf) - self._pos)
                    parts.append(buf[self._pos : self._pos + n])
                    size += n
                    self._pos += n
                    self._remaining -= n
                    if self._remaining or size >= READ_SIZE or len(buf) - self._pos < _HEADER.size:
                        break
                    stream, length = _HEADER.unpack_from(buf, self._pos)
                    if (STDERR if stream == STDERR else STDOUT) != self._stream:
                        break
                    self._pos += _HEADER.size
                    self._remaining = length
                return self._stream, b"".join(parts)
            if not self._remaining and available >= _HEADER.size:
                stream, length = _HEADER.unpack_from(buf, self._pos)
                self._pos += _HEADER.size
                self._stream = STDERR if stream == STDERR else STDOUT
                self._remaining = length
                continue
            if self._closed:
                return None
            # Everything before _pos is consumed: drop it before reading more (no copy per frame).
            del buf[: self._pos]
            self._pos = 0
            try:
                chunk = await loop.sock_recv(self._sock, READ_SIZE)
            except (ConnectionError, OSError):
                return None
            if not chunk:
                return None
            buf += chunk

    async def host_pid(self) -> int | None:
        """The exec'd process's pid on the host (None when it is gone)."""
        info = await asyncio.to_thread(self.api.exec_inspect, self.exec_id)
        return info.get("Pid") or None

    async def close(self) -> None:
        """Close the socket: the engine closes the process's stdin, and the front shell, reading
        EOF, kills everything its session started and exits."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._response.close)


class PipeTransport:
    """An asyncio subprocess with its stdin, stdout and stderr on pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        # One chunk read ahead per stream at most: bounded.
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(2)
        self._open_streams = 2
        self._pumps = [
            asyncio.create_task(self._pump(STDOUT, process.stdout)),
            asyncio.create_task(self._pump(STDERR, process.stderr)),
        ]
        self._closed = False

    @classmethod
    async def spawn(
        cls, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None
    ) -> PipeTransport:
        """Start `argv` with exactly `env` (nothing of the executor's environment when given)
        in its own session, so signals meant for the executor never reach it."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env if env is not None else dict(os.environ),
                cwd=cwd,
                start_new_session=True,
                limit=READ_SIZE,
            )
        except OSError as exc:
            raise errors.Unavailable(f"cannot start {argv[0]!r}: {exc}") from exc
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _pump(self, stream: int, reader: asyncio.StreamReader | None) -> None:
        try:
            while reader is not None:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                await self._queue.put((stream, data))
        except (ConnectionError, OSError):
            pass
        finally:
            self._open_streams -= 1
            if self._open_streams == 0:
                await self._queue.put(None)

    async def write(self, data: bytes) -> None:
        stdin = self.process.stdin
        if self._closed or stdin is None or stdin.is_closing():
            raise errors.Unavailable("the shell's stdin is closed")
        stdin.write(data)
        try:
            await stdin.drain()
        except (ConnectionError, OSError) as exc:
            raise errors.Unavailable(f"the shell went away: {exc}") from exc

    async def read(self) -> tuple[int, bytes] | None:
        if self._open_streams == 0 and self._queue.empty():
            return None
        item = await self._queue.get()
        if item is None:
            # Let a later read see the end too.
            self._open_streams = 0
        return item

    async def close(self) -> None:
        """Close stdin (the front shell cleans up and exits), then make sure the process is gone."""
        if self._closed:
            return
        self._closed = True
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        for pump in self._pumps:
            pump.cancel()
