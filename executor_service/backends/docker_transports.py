"""The Docker backend's byte pipes to one process in a workspace (the `ShellTransport` of backend.py).

- `DockerExecTransport`: one `docker exec` whose attach socket is driven by the event loop
  (non-blocking, no thread per read). Non-TTY exec output is multiplexed in frames: an 8-byte
  header (stream id, three zero bytes, big-endian payload length) then the payload; frames are
  demultiplexed incrementally and may split anywhere across reads.
- `FifoTransport`: a session shell's bytes through FIFOs in a directory the executor shares with
  the container (a read-only bind mount). The engine starts the process (one `docker exec`, kept
  attached only to learn when it exits), but its input and output never pass through dockerd and
  containerd's shim: profiling showed that relay costing about 0.4 ms of CPU per command.
- `DockerTtyTransport`: a `docker exec` with a terminal (PTY executions).

The local processes of the bwrap backend have theirs in local_transports.py. All are bounded:
`read` hands out one chunk at a time and nothing is read ahead beyond one socket/pipe read, so a
slow consumer stops the reading and the process blocks on its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import struct
import time
from pathlib import Path
from typing import Any

import docker.errors
import requests

from executor_service.backend import READ_SIZE, STDERR, STDOUT
from executor_service.containment import ExecCgroup
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.transports")

_DETACH_KEYS = ",".join("ctrl-" + c for c in "@_^]\\@_^]\\@_^]\\@_^]\\@_^]\\@_^]\\@_")
# How long the engine may take to report a started exec's pid (a loaded machine: seconds).
EXEC_PID_WAIT_SECONDS = 10.0
_HEADER = struct.Struct(">BxxxL")


class DockerExecTransport:
    """stdin/stdout/stderr of one `docker exec` process, over its hijacked attach socket."""

    # No raw data path: a session's command input goes through stdin (see shell.py).
    data_path: str | None = None
    data_chunk = 0

    def __init__(
        self, api: Any, exec_id: str, response: Any, sock: socket.socket, cgroup: ExecCgroup | None = None
    ) -> None:
        # What the process forks is found by this (containment.py); None where unavailable.
        self.cgroup = cgroup
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
        tty: bool = False,
    ) -> DockerExecTransport:
        """`docker exec` `argv` in `container` (a DockerClient or its low-level APIClient) with
        exactly `env`, and connect to its stdin/stdout/stderr. NotFound when the container is
        gone, FailedPrecondition when it is not running. With `tty` the engine makes a
        pseudo-terminal for it (then the socket carries the terminal's bytes, unframed: use
        DockerTtyTransport)."""
        api = getattr(client, "api", client)

        def create_and_start() -> tuple[str, Any, socket.socket, ExecCgroup | None]:
            exec_id = api.exec_create(
                container,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=tty,
                # On a TTY the engine watches stdin for a detach sequence (Ctrl-P Ctrl-Q by
                # default) and cuts stdin off when it passes: editors use those keys, and binary
                # input holds them. It cannot be turned off, only replaced: by one no keyboard
                # or data plausibly sends.
                detach_keys=_DETACH_KEYS if tty else None,
                environment=env,
                workdir=workdir or None,
                user=user or "",
            )["Id"]
            response = api.exec_start(exec_id, socket=True, tty=tty)
            raw = getattr(response, "_sock", response)
            if not isinstance(raw, socket.socket):
                raise errors.Unavailable(
                    "the docker engine connection is not a plain socket (TLS?); use the local unix socket"
                )
            # Into a cgroup of its own before it forks anything (it first waits for our input).
            pid = _exec_pid(api, exec_id)
            cgroup = ExecCgroup.create(pid) if pid else None
            return exec_id, response, raw, cgroup

        starting = asyncio.ensure_future(asyncio.to_thread(create_and_start))
        try:
            exec_id, response, raw, cgroup = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The caller gave up (its client left, or a deadline passed) while the engine starts
            # the process: close its socket once started, so that it reads EOF and exits instead
            # of living on as an orphan nobody talks to.
            starting.add_done_callback(_close_abandoned_start)
            raise
        except docker.errors.NotFound as exc:
            raise errors.NotFound(
                f"the workspace's container {container!r} is gone: {exc.explanation}"
            ) from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout,
        ) as exc:
            raise errors.Unavailable(
                f"the Docker engine is not answering ({exc}); is dockerd running?"
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise errors.FailedPrecondition(
                    f"the workspace's container {container!r} is not running; start the workspace"
                ) from exc
            raise errors.Unavailable(f"docker exec failed: {exc.explanation or exc}") from exc
        raw.setblocking(False)
        return cls(api, exec_id, response, raw, cgroup)

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

    async def write_data(self, data: bytes) -> None:
        raise errors.Unavailable("this transport has no data path")

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
        if self.cgroup is not None:
            # Whatever the process left, daemons that shed its group and environment included.
            await asyncio.to_thread(self.cgroup.destroy)

    async def kill_strays(self) -> int:
        """Kill what the process's finished commands left running (see ShellTransport)."""
        if self.cgroup is None or self._closed:
            return 0
        return await asyncio.to_thread(self.cgroup.kill_strays)


# Runs first in the container: swaps the exec's stdio for the session's FIFOs, says so with one
# line on the new stdout, then becomes the real process. Exit 97: the directory is not shared.
def _exec_pid(api: Any, exec_id: str) -> int:
    """The exec'd process's host pid: the engine reports 0 for a moment after the start."""
    deadline = time.monotonic() + EXEC_PID_WAIT_SECONDS
    while True:
        info = api.exec_inspect(exec_id)
        if info.get("Pid") or not info.get("Running", True):
            return int(info.get("Pid") or 0)
        if time.monotonic() > deadline:
            log.warning("exec_pid_unknown", exec_id=exec_id, hint="its processes get no cgroup of their own")
            return 0
        time.sleep(0.005)


def _close_abandoned_start(task: asyncio.Future[tuple[str, Any, socket.socket, ExecCgroup | None]]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    _exec_id, response, raw, cgroup = task.result()
    with contextlib.suppress(OSError):
        raw.close()
    with contextlib.suppress(Exception):
        response.close()
    if cgroup is not None:
        cgroup.destroy()


# What the wrapper says when the container does not see the FIFOs (the one permanent failure).
FIFO_NOT_SHARED = "is not a FIFO shared with the executor"
_FIFO_WRAPPER = (
    'd=$1; shift; [ -p "$d/in" ] || { echo "$d/in is not a FIFO shared with the executor" >&2; exit 97; }; '
    'exec <"$d/in" >"$d/out" 2>"$d/err" || exit 97; printf "I\\n"; exec "$@"'
)
# Bigger FIFO buffers: fewer reads and wake-ups when a command streams output.
FIFO_PIPE_BYTES = 1024 * 1024
FIFO_DATA_BYTES = 8 * 1024 * 1024
FIFO_START_TIMEOUT = 20.0


class FifoUnavailable(Exception):
    """The shared FIFO directory is not visible in the container (e.g. the executor itself runs
    in a container and its config dir is not the host's): use the attach socket instead."""


class FifoTransport:
    """stdin/stdout/stderr of one process in a container, through FIFOs in `host_dir/<token>`,
    which the container sees at `container_dir/<token>`.

    The executor holds every FIFO open read-write, so no open ever blocks and a FIFO never reads
    as ended: the process's end is learnt from its `docker exec` attach socket instead (it closes
    when the process exits), after which what is left in the FIFOs is still read. Reads and
    writes are non-blocking on the event loop; a reader is registered only while a read waits,
    so output nobody is reading yet leaves the loop idle and blocks the writer (backpressure)."""

    def __init__(
        self, directory: Path, fds: dict[str, int], attach: DockerExecTransport, container_dir: str = ""
    ) -> None:
        self.directory = directory
        self._in, self._out, self._err, self._data = fds["in"], fds["out"], fds["err"], fds["data"]
        # The data FIFO as the container sees it (None: not told), and how much it holds.
        self.data_path: str | None = f"{container_dir}/data" if container_dir else None
        self.data_chunk = _pipe_size(self._data)
        self._attach = attach
        self._exited = False
        self._closed = False
        # What a waiting read and a waiting write wait on (each at most one at a time).
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        # Which stream a read tries first: alternates, so neither starves the other.
        self._first = STDOUT
        self._diagnostics = bytearray()
        self._watch = asyncio.get_running_loop().create_task(self._watch_exit())

    @classmethod
    async def open(
        cls,
        client: Any,
        container: str,
        *,
        host_dir: Path,
        container_dir: str,
        argv: list[str],
        env: dict[str, str],
        user: str = "",
        workdir: str = "/workspace",
    ) -> FifoTransport:
        """Start `argv` in `container` (like DockerExecTransport.open) with its stdio on fresh
        FIFOs. FifoUnavailable when the container does not see them."""
        token = "s" + secrets.token_hex(8)
        directory = host_dir / token
        try:
            fds = await asyncio.to_thread(_make_fifos, directory)
        except FileNotFoundError as exc:  # its directory was removed: the container cannot see it
            raise FifoUnavailable(f"{host_dir} is gone") from exc
        except OSError as exc:  # e.g. out of file descriptors, or the config dir's disk is full
            raise errors.Unavailable(f"cannot make the session's FIFOs in {host_dir}: {exc}") from exc
        try:
            attach = await DockerExecTransport.open(
                client,
                container,
                argv=[argv[0], "-c", _FIFO_WRAPPER, "firebox-io", f"{container_dir}/{token}", *argv],
                env=env,
                user=user,
                workdir=workdir,
            )
        except BaseException:
            await asyncio.to_thread(_remove_fifos, directory, fds)
            raise
        transport = cls(directory, fds, attach, f"{container_dir}/{token}")
        try:
            await transport._await_wrapper()
        except BaseException:
            await transport.close()
            raise
        return transport

    async def _await_wrapper(self) -> None:
        """Read the wrapper's one line (2 bytes: nothing else writes before the process is given
        its first input), or learn that it failed."""
        got = b""
        try:
            async with asyncio.timeout(FIFO_START_TIMEOUT):
                while len(got) < 2:
                    try:
                        chunk = os.read(self._out, 2 - len(got))
                    except BlockingIOError:
                        chunk = b""
                    got += chunk
                    if got == b"I\n":
                        return
                    if got and not b"I\n".startswith(got):
                        raise FifoUnavailable(f"unexpected start of output {got!r}")
                    if self._exited:
                        why = self._diagnostics.decode("utf-8", "replace").strip() or "it exited"
                        if FIFO_NOT_SHARED in why:
                            raise FifoUnavailable(why)
                        # Anything else (cannot fork at the pids limit, out of memory) is the
                        # workspace's passing state, not a reason to stop using FIFOs for good.
                        raise errors.Unavailable(f"the session shell exited while starting: {why[:200]}")
                    if not chunk:
                        await self._readable()
        except TimeoutError:
            raise errors.Unavailable(
                f"the session shell did not start within {FIFO_START_TIMEOUT:g}s (the workspace may be "
                "overloaded); retry later"
            ) from None

    async def _watch_exit(self) -> None:
        """Until the exec'd process ends; keeps what it wrote to the original stdio (a failed
        wrapper's reason) for diagnostics."""
        try:
            while True:
                item = await self._attach.read()
                if item is None:
                    break
                if len(self._diagnostics) < 4096:
                    self._diagnostics += item[1][: 4096 - len(self._diagnostics)]
        finally:
            self._exited = True
            self._wake_all()

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def _wake_all(self) -> None:
        self._wake_reader()
        self._wake_writer()

    async def _readable(self) -> None:
        if self._exited or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._read_waiter = loop.create_future()
        loop.add_reader(self._out, self._wake_reader)
        loop.add_reader(self._err, self._wake_reader)
        try:
            await self._read_waiter
        finally:
            self._read_waiter = None
            loop.remove_reader(self._out)
            loop.remove_reader(self._err)

    async def read(self) -> tuple[int, bytes] | None:
        while not self._closed:
            first, second = (
                ((STDOUT, self._out), (STDERR, self._err))
                if self._first == STDOUT
                else ((STDERR, self._err), (STDOUT, self._out))
            )
            for stream, fd in (first, second):
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    return None
                if data:
                    self._first = STDERR if stream == STDOUT else STDOUT
                    return stream, data
            if self._exited:
                return None
            await self._readable()
        return None

    async def write(self, data: bytes) -> None:
        await self._write_to(self._in, data)

    async def write_data(self, data: bytes) -> None:
        """Raw bytes into the data FIFO (at most `data_chunk` at a time: the pipe holds them all)."""
        self._drain_data()
        await self._write_to(self._data, data)

    def _drain_data(self) -> None:
        # Left by a reader that was killed mid-way: never let them reach the next reader.
        with contextlib.suppress(OSError):
            while os.read(self._data, READ_SIZE):
                pass

    async def _write_to(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            if self._closed or self._exited:
                raise errors.Unavailable("the shell's connection is closed")
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                raise errors.Unavailable(f"the shell's input failed: {exc}") from exc
            view = view[written:]
            if view:
                # The FIFO is full (the shell is not reading): wait until it drains or the
                # process ends.
                self._write_waiter = loop.create_future()
                loop.add_writer(fd, self._wake_writer)
                try:
                    await self._write_waiter
                finally:
                    self._write_waiter = None
                    loop.remove_writer(fd)

    async def host_pid(self) -> int | None:
        return await self._attach.host_pid()

    async def kill_strays(self) -> int:
        return await self._attach.kill_strays()

    async def close(self) -> None:
        """End the process's input (the front shell, reading EOF, kills what its session started
        and exits), give it a moment to go, then close everything and remove the FIFOs."""
        if self._closed:
            return
        self._closed = True
        self._wake_all()
        # Let a woken read or write unregister its fd before the fd number can be reused.
        await asyncio.sleep(0)
        with contextlib.suppress(OSError):
            os.close(self._in)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._watch), 2)
        await self._attach.close()
        self._watch.cancel()
        fds = {"out": self._out, "err": self._err, "data": self._data}
        await asyncio.to_thread(_remove_fifos, self.directory, fds)


def _pipe_size(fd: int) -> int:
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return 64 * 1024


def _make_fifos(directory: Path) -> dict[str, int]:
    """The FIFOs in/out/err (the process's stdio) and data (a command's stdin, raw: see
    shell.py) in a new `directory`, each opened read-write and non-blocking."""
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    fds: dict[str, int] = {}
    try:
        for name in ("in", "out", "err", "data"):
            path = directory / name
            os.mkfifo(path, 0o666)
            path.chmod(0o666)  # whatever the umask: the workspace's user must open them
            fds[name] = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        for name in ("out", "err"):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fds[name], fcntl.F_SETPIPE_SZ, FIFO_PIPE_BYTES)
        # A command's input moves a pipe-full per acknowledged step: bigger steps, fewer of
        # them. Past /proc/sys/fs/pipe-max-size only root may go; else the default size stays.
        for size in (FIFO_DATA_BYTES, FIFO_PIPE_BYTES):
            try:
                fcntl.fcntl(fds["data"], fcntl.F_SETPIPE_SZ, size)
                break
            except OSError:
                continue
    except BaseException:
        _remove_fifos(directory, fds)
        raise
    return fds


def _remove_fifos(directory: Path, fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    shutil.rmtree(directory, ignore_errors=True)


# Run by a second `docker exec` to signal a terminal's processes (the engine has no kill for an
# exec). $1: INT (the terminal's foreground process group, read from its leader's stat) or KILL
# (every process of the leader's session); $2: the leader's pid.
_TTY_SIGNAL = r"""
l=$2
if [ "$1" = INT ]; then
  { IFS= read -r st <"/proc/$l/stat"; } 2>/dev/null || exit 0
  st=${st##*) }; set -f; set -- $st; set +f
  [ "${6:-0}" -gt 0 ] && kill -s INT -- "-$6" 2>/dev/null
  exit 0
fi
for p in /proc/[0-9]*; do
  p=${p#/proc/}
  { IFS= read -r st <"/proc/$p/stat"; } 2>/dev/null || continue
  st=${st##*) }; set -f; set -- $st; set +f
  [ "$4" = "$l" ] && kill -s KILL "$p" 2>/dev/null
done
exit 0
"""


class DockerTtyTransport:
    """A `docker exec` with a terminal the engine made: its socket carries the terminal's bytes
    both ways; resizing is the engine's exec resize call."""

    def __init__(self, exec_transport: DockerExecTransport, container: str, user: str) -> None:
        self._exec = exec_transport
        self._api = exec_transport.api
        self._sock = exec_transport._sock
        self._container = container
        self._user = user

    @classmethod
    async def open(
        cls,
        client: Any,
        container: str,
        *,
        argv: list[str],
        env: dict[str, str],
        rows: int,
        cols: int,
        user: str = "",
        workdir: str = "/workspace",
    ) -> DockerTtyTransport:
        exec_transport = await DockerExecTransport.open(
            client, container, argv=argv, env=env, user=user, workdir=workdir, tty=True
        )
        transport = cls(exec_transport, container, user)
        try:
            await transport.resize(rows, cols)
        except BaseException:
            await transport.close()
            raise
        return transport

    async def write(self, data: bytes) -> None:
        await self._exec.write(data)

    async def read(self) -> bytes | None:
        try:
            data = await asyncio.get_running_loop().sock_recv(self._sock, READ_SIZE)
        except (ConnectionError, OSError):
            return None
        return data or None

    async def resize(self, rows: int, cols: int) -> None:
        try:
            await asyncio.to_thread(self._api.exec_resize, self._exec.exec_id, height=rows, width=cols)
        except docker.errors.APIError as exc:
            # The process has just ended (the engine refuses to resize a finished exec).
            log.debug("tty_resize_failed", error=str(exc))

    async def signal(self, leader: int, kill: bool) -> None:
        def run() -> None:
            exec_id = self._api.exec_create(
                self._container,
                ["/bin/sh", "-c", _TTY_SIGNAL, "firebox-signal", "KILL" if kill else "INT", str(leader)],
                user=self._user,
            )["Id"]
            self._api.exec_start(exec_id)

        try:
            await asyncio.to_thread(run)
        except docker.errors.APIError as exc:
            # 404/409: the container is gone or stopped, and its processes with it.
            if exc.status_code not in (404, 409):
                log.warning("tty_signal_failed", error=str(exc))
        except requests.exceptions.RequestException as exc:
            log.warning("tty_signal_failed", error=str(exc))

    async def exit_status(self) -> int | None:
        # The socket closes as the process ends; the engine may record its status a moment later.
        for _ in range(50):
            try:
                info = await asyncio.to_thread(self._api.exec_inspect, self._exec.exec_id)
            except (docker.errors.APIError, requests.exceptions.RequestException):
                return None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            await asyncio.sleep(0.02)
        return None

    async def close(self) -> None:
        await self._exec.close()
