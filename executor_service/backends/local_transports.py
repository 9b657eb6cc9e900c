"""Byte pipes to a local process (the bwrap backend's `ShellTransport`s, see backend.py).

- `PipeTransport`: an asyncio subprocess with its stdin, stdout and stderr on pipes.
- `PtyTransport`: an asyncio subprocess on a pseudo-terminal the executor holds the master of.

Both are bounded like the Docker ones (docker_transports.py): one chunk read ahead at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios

from executor_service.backend import READ_SIZE, STDERR, STDOUT
from firebox.common import errors


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyTransport:
    """A local process (bwrap) on a pseudo-terminal the executor made and holds the master of."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self._master = master
        self._closed = False

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], rows: int, cols: int) -> PtyTransport:
        master, slave = pty.openpty()
        try:
            set_winsize(master, rows, cols)
            # A session of its own but no controlling terminal: `argv` takes the terminal itself
            # (see BwrapBackend.open_tty). Not Python's preexec_fn to take it here: forking a
            # process with gRPC's threads to run Python code in the child can crash that child.
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
            )
        except OSError as exc:
            os.close(master)
            raise errors.Unavailable(f"cannot start {argv[0]!r}: {exc}") from exc
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(process, master)

    async def _ready(self, writer: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        (loop.add_writer if writer else loop.add_reader)(self._master, wake)
        try:
            await waiter
        finally:
            (loop.remove_writer if writer else loop.remove_reader)(self._master)

    async def read(self) -> bytes | None:
        while not self._closed:
            try:
                data = os.read(self._master, READ_SIZE)
            except BlockingIOError:
                await self._ready(writer=False)
                continue
            except OSError:  # EIO: every holder of the terminal's other side has closed it
                return None
            return data or None
        return None

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed:
                raise errors.Unavailable("the terminal is closed")
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                await self._ready(writer=True)
            except OSError as exc:
                raise errors.Unavailable(f"the terminal went away: {exc}") from exc

    async def resize(self, rows: int, cols: int) -> None:
        if not self._closed:
            set_winsize(self._master, rows, cols)

    async def signal(self, leader: int, kill: bool) -> None:
        try:
            if kill:
                # bwrap and its pid namespace's init: killing them ends every process inside.
                os.killpg(self.process.pid, signal.SIGKILL)
            elif not self._closed:
                os.killpg(os.tcgetpgrp(self._master), signal.SIGINT)
        except (ProcessLookupError, OSError):
            pass

    async def exit_status(self) -> int | None:
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._master)


class PipeTransport:
    """An asyncio subprocess with its stdin, stdout and stderr on pipes."""

    # No raw data path: a session's command input goes through stdin (see shell.py).
    data_path: str | None = None
    data_chunk = 0

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
        cls,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> PipeTransport:
        """Start `argv` with exactly `env` (nothing of the executor's environment when given)
        in its own session, so signals meant for the executor never reach it. `pass_fds` stay
        open in it (bwrap's --bind-fd)."""
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
                pass_fds=pass_fds,
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

    async def write_data(self, data: bytes) -> None:
        raise errors.Unavailable("this transport has no data path")

    async def read(self) -> tuple[int, bytes] | None:
        if self._open_streams == 0 and self._queue.empty():
            return None
        item = await self._queue.get()
        if item is None:
            # Let a later read see the end too.
            self._open_streams = 0
        return item

    async def kill_strays(self) -> int:
        """A bwrap shell is a pid namespace of its own: whatever detached inside it (setsid, a
        cleared environment) is reparented to the namespace's init, so it is still a descendant
        of our process on the host. Kill every descendant but the shell protocol's top shell
        (the highest process running `firebox-shell`) and its direct children."""
        return await asyncio.to_thread(_kill_stray_descendants, self.process.pid)

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


def _kill_stray_descendants(root: int) -> int:
    children: dict[int, list[int]] = {}
    argv: dict[int, bytes] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv[int(entry.name)] = f.read()
        except OSError:
            continue
        parent = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))

    def is_top_shell(pid: int) -> bool:
        # `sh -c FRONT firebox-shell SH` (bubblewrap's own processes carry it further on).
        return argv.get(pid, b"").split(b"\0")[3:4] == [b"firebox-shell"]

    top: int | None = root if is_top_shell(root) else None
    descendants: list[int] = []
    pending = [root]
    while pending:  # breadth first: the first `firebox-shell` met is the top shell
        pid = pending.pop(0)
        for child in children.get(pid, ()):
            descendants.append(child)
            pending.append(child)
            if top is None and is_top_shell(child):
                top = child
    if top is None:
        return 0
    keep = {top, *children.get(top, ())}
    # The sandbox's own processes between us and the top shell stay too.
    ancestors = set()
    parent_of = {child: parent for parent, kids in children.items() for child in kids}
    up = parent_of.get(top)
    while up is not None and up != root:
        ancestors.add(up)
        up = parent_of.get(up)
    killed = 0
    for pid in descendants:
        if pid in keep or pid in ancestors:
            continue
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed
