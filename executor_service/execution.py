"""Running one command: the domain-level Execute, with no gRPC types.

`ExecutionEngine.start(workspace, spec)` (engine.py) runs `spec` in a session's shell (or a fresh one) and
returns an `Execution` at once. The caller then iterates `execution.events()`:

    Started(execution_id, pid)        first, always
    Output(stdout, stderr)            zero or more, batched (a few ms / up to 64 KiB)
    Finished(exit_code, reason, ...)  last, always (unless the caller cancelled)

and may meanwhile call `write_input`, `close_input`, `stop(kill=...)` and, when the client goes
away, `cancel()` (kills the command; idempotent; safe after the end).
"""

from __future__ import annotations

import asyncio
import enum
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, cast

from firebox.common import errors

WORKDIR = "/workspace"
DEFAULT_OUTPUT_CAP_BYTES = 64 * 1024 * 1024
# Output waiting for a slow consumer, in chunks (each at most BATCH_BYTES): bounded memory.
QUEUE_CHUNKS = 64
BATCH_BYTES = 64 * 1024
# A burst of output is coalesced for at most this long into one event.
BATCH_SECONDS = 0.003
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A terminal's size when the client gives none, and the largest accepted.
DEFAULT_ROWS, DEFAULT_COLS = 24, 80
MAX_WINSIZE = 4096


class EndReason(enum.Enum):
    """Why a command ended (END_REASON_* in the proto)."""

    EXITED = "exited"
    SIGNALED = "signaled"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    OUT_OF_MEMORY = "out_of_memory"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class ExecuteSpec:
    """One command, validated by the caller's edge; `check()` re-checks what the shell relies on.

    `directory` is relative to /workspace unless absolute; in a session it persists like `cd`,
    `env` persists like `export`. A directory that does not exist makes the command fail like a
    shell would (a message on stderr, exit code 2 on ash/dash) without running the program.
    `timeout` in seconds; None or 0 means none.
    """

    workspace_id: str = ""
    session_id: str | None = None
    script: str | None = None
    argv: list[str] | None = None
    directory: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    # Run on a pseudo-terminal of this size (see terminal.py).
    tty: bool = False
    rows: int = DEFAULT_ROWS
    cols: int = DEFAULT_COLS

    def check(self) -> None:
        """Raise InvalidArgument naming the field for anything the shell cannot run."""
        if (self.script is None) == (not self.argv):
            raise errors.InvalidArgument("script", "give exactly one of script and argv")
        if self.argv is not None and self.argv and not self.argv[0]:
            raise errors.InvalidArgument("argv", "argv[0] (the program) is empty")
        for name, value in (("script", self.script or ""), ("directory", self.directory or "")):
            if "\x00" in value:
                raise errors.InvalidArgument(name, "contains a NUL byte")
        if any("\x00" in a for a in self.argv or ()):
            raise errors.InvalidArgument("argv", "contains a NUL byte")
        for key, value in self.env.items():
            if not ENV_NAME.fullmatch(key):
                raise errors.InvalidArgument("env", f"{key!r} is not a valid variable name")
            if "\x00" in value:
                raise errors.InvalidArgument("env", f"the value of {key} contains a NUL byte")
        if self.timeout is not None and self.timeout < 0:
            raise errors.InvalidArgument("timeout", "must not be negative")
        check_winsize(self.rows, self.cols)

    def shell_text(self) -> str:
        """The command as shell text: `cd DIR && export K=V && <script>` (argv quoted safely)."""
        program = self.script if self.script is not None else quote_argv(self.argv or [])
        steps = []
        if self.directory:
            directory = self.directory if self.directory.startswith("/") else f"{WORKDIR}/{self.directory}"
            steps.append(f"cd -- {shell_quote(directory)}")
        steps += [f"export {shell_quote(f'{k}={v}')}" for k, v in self.env.items()]
        steps.append(f"command eval {shell_quote(program)}")
        return " && ".join(steps)


def check_winsize(rows: int, cols: int) -> None:
    """InvalidArgument unless both are 1..MAX_WINSIZE."""
    for name, value in (("winsize.rows", rows), ("winsize.cols", cols)):
        if not 1 <= value <= MAX_WINSIZE:
            raise errors.InvalidArgument(name, f"must be 1 to {MAX_WINSIZE}, got {value}")


def shell_quote(text: str) -> str:
    """`text` as one single-quoted shell word, whatever it holds."""
    return "'" + text.replace("'", "'\\''") + "'"


def quote_argv(argv: list[str]) -> str:
    """Shell text that runs argv[0] with exactly these arguments (no expansion of any of them)."""
    return " ".join(shell_quote(a) for a in argv)


def new_execution_id() -> str:
    return "ex_" + secrets.token_hex(8)


@dataclass(frozen=True)
class Started:
    """The command is running: its execution id and the pid of the shell running it (in the
    workspace's pid namespace)."""

    execution_id: str
    pid: int


@dataclass(frozen=True)
class Output:
    """Output produced since the previous event; either may be empty."""

    stdout: bytes = b""
    stderr: bytes = b""


@dataclass(frozen=True)
class Finished:
    """The last event. exit_code is the shell's status ($?: 128+n after signal n), None if unknown."""

    exit_code: int | None
    reason: EndReason
    output_truncated: bool = False
    session_ended: bool = False
    message: str = ""
    duration: float = 0.0


Event = Started | Output | Finished


class StopRequest(enum.Enum):
    INTERRUPT = "interrupt"
    KILL = "kill"
    TIMEOUT = "timeout"
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


STOP_REASONS = {
    StopRequest.INTERRUPT: EndReason.STOPPED,
    StopRequest.KILL: EndReason.STOPPED,
    StopRequest.TIMEOUT: EndReason.TIMED_OUT,
    StopRequest.CANCEL: EndReason.CANCELLED,
    StopRequest.SHUTDOWN: EndReason.SHUTDOWN,
}


class Driver(Protocol):
    """What runs an execution (a session's shell, or a terminal): the Execution forwards the
    client's input, end of input, resizes and stop requests (through wake) to it."""

    async def write_input(self, execution: Execution, data: bytes) -> None: ...

    async def close_input(self, execution: Execution) -> None: ...

    async def resize(self, execution: Execution, rows: int, cols: int) -> None: ...

    def wake(self) -> None: ...


def stop_message(request: StopRequest, timeout: float | None) -> str:
    """How a command that a stop request ended is described to people."""
    return {
        StopRequest.INTERRUPT: "stopped by an interrupt",
        StopRequest.KILL: "killed by a stop request",
        StopRequest.TIMEOUT: f"killed after the {timeout or 0:g}s timeout",
        StopRequest.CANCEL: "killed: the client cancelled",
        StopRequest.SHUTDOWN: "killed: the executor is shutting down",
    }[request]


ESCALATED_MESSAGE = "killed: it did not end within the grace period after an interrupt"

# "No event" (None in the queue means the end).
_NOTHING = object()


class Execution:
    """One running command. Output goes through a bounded queue: when the consumer is slow the
    shell's reader waits, so the command blocks on its own writes (backpressure); past the
    output cap output is counted and dropped, and the command runs on."""

    def __init__(self, spec: ExecuteSpec, *, output_cap_bytes: int, execution_id: str | None = None) -> None:
        self.id = execution_id or new_execution_id()
        self.spec = spec
        self.session_id = spec.session_id
        self.output_cap_bytes = output_cap_bytes
        self.output_bytes = 0
        self.truncated = False
        self.started_at = time.monotonic()
        self.finished: Finished | None = None
        # What the shell driving this execution must do: set by stop()/cancel()/timeout.
        self.stop_request: StopRequest | None = None
        # An interrupt's grace ran out and the command was killed for it (not asked to be).
        self.escalated = False
        self.stop_changed = asyncio.Event()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_CHUNKS)
        # An event taken from the queue early (see events(hold_started=...)).
        self._peeked: Event | object | None = _NOTHING
        self._consumer_gone = False
        self._done = asyncio.Event()
        self.shell: Driver | None = None
        # Set by the shell once the command has been handed to it (input may flow from then on).
        self.running = False
        # Set once running or finished: what input waits for (one event, no tasks per command).
        self._settled = asyncio.Event()
        # Set by the engine: the task that drives the command to its end.
        self.task: asyncio.Task[None] | None = None

    # ---- called by the client side ---------------------------------------------------------

    async def events(self, hold_started: float = 0.0) -> AsyncIterator[Event]:
        """Started, Output..., Finished. Output chunks produced close together are coalesced.

        With `hold_started`, Started is yielded once the next event has arrived or that many
        seconds have passed, whichever is first; `next_ready()` then tells which, so that a
        caller can send the two as one message (a quick command's whole Execute in one)."""
        while True:
            if self._peeked is not _NOTHING:
                event, self._peeked = cast(Event | None, self._peeked), _NOTHING
            else:
                event = await self._queue.get()
            if event is None:
                return
            if isinstance(event, Started) and hold_started > 0:
                self._peeked = await self._get_within(hold_started)
            if isinstance(event, Output):
                event, follower = await self._coalesce(event)
                yield event
                if follower is None:
                    continue
                event = follower
                if event is None:
                    return
            yield event
            if isinstance(event, Finished):
                return

    def next_ready(self) -> bool:
        """The event after the one just yielded has arrived already."""
        return self._peeked is not _NOTHING or not self._queue.empty()

    async def _get_within(self, seconds: float) -> Event | object | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            async with asyncio.timeout(seconds):  # a timer, no task
                return await self._queue.get()
        except TimeoutError:
            return _NOTHING

    async def _coalesce(self, first: Output) -> tuple[Output, Event | None]:
        out, err = [first.stdout], [first.stderr]
        size = len(first.stdout) + len(first.stderr)
        deadline = time.monotonic() + BATCH_SECONDS
        while size < BATCH_BYTES:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                # Idle: deliver now. Busy (a big chunk just came): wait a moment for more.
                remaining = deadline - time.monotonic()
                if size < 4096 or remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if not isinstance(nxt, Output):
                return Output(b"".join(out), b"".join(err)), nxt
            out.append(nxt.stdout)
            err.append(nxt.stderr)
            size += len(nxt.stdout) + len(nxt.stderr)
        return Output(b"".join(out), b"".join(err)), None

    async def write_input(self, data: bytes) -> None:
        """Send bytes to the command's standard input (waits while earlier input is pending, and
        until the command has started). Input after the command's end is dropped."""
        if data and await self._wait_running():
            assert self.shell is not None
            await self.shell.write_input(self, data)

    async def close_input(self) -> None:
        """End of standard input: the program reads EOF once it has read what was sent."""
        if await self._wait_running():
            assert self.shell is not None
            await self.shell.close_input(self)

    async def resize(self, rows: int, cols: int) -> None:
        """Resize the command's terminal (InvalidArgument for a bad size; nothing without tty)."""
        check_winsize(rows, cols)
        if self.spec.tty and await self._wait_running():
            assert self.shell is not None
            await self.shell.resize(self, rows, cols)

    async def _wait_running(self) -> bool:
        await self._settled.wait()
        return self.running and self.finished is None and self.shell is not None

    def mark_running(self) -> None:
        """The shell has the command: input may flow from now on."""
        self.running = True
        self._settled.set()

    async def stop(self, kill: bool = False) -> None:
        """INTERRUPT (SIGINT, escalated to a kill after a grace period) or KILL."""
        self.request_stop(StopRequest.KILL if kill else StopRequest.INTERRUPT)

    async def cancel(self) -> None:
        """The client went away: kill the command and wait (bounded) until it is gone."""
        self._consumer_gone = True
        self.request_stop(StopRequest.CANCEL)
        # Free a reader blocked on a full queue: nobody will read it any more.
        while not self._queue.empty():
            self._queue.get_nowait()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 10)
            except (TimeoutError, asyncio.CancelledError):
                pass

    async def wait(self) -> Finished:
        """Until the command has ended; its Finished event."""
        await self._done.wait()
        assert self.finished is not None
        return self.finished

    # ---- called by the shell driving it -------------------------------------------------------

    def escalate(self) -> None:
        """The command outlived the grace after an interrupt: it is killed, and says why."""
        self.stop_request = StopRequest.KILL
        self.escalated = True

    def stop_description(self) -> str:
        """How the stop request that ended the command is described to people."""
        assert self.stop_request is not None
        if self.escalated:
            return ESCALATED_MESSAGE
        return stop_message(self.stop_request, self.spec.timeout)

    def request_stop(self, request: StopRequest) -> None:
        if self.finished is not None:
            return
        # A stronger request replaces a weaker one (an INTERRUPT may become a KILL).
        if self.stop_request is None or self.stop_request is StopRequest.INTERRUPT:
            self.stop_request = request
            self.stop_changed.set()
            if self.shell is not None:
                self.shell.wake()

    async def emit(self, event: Event) -> None:
        if self._consumer_gone:
            return
        await self._queue.put(event)

    async def output(self, stdout: bytes, stderr: bytes) -> None:
        """Count output against the cap; queue what fits (waits while the consumer is slow)."""
        size = len(stdout) + len(stderr)
        if size == 0:
            return
        room = self.output_cap_bytes - self.output_bytes
        self.output_bytes += size
        if room < size:
            self.truncated = True
            if room <= 0:
                return
            stdout = stdout[:room]
            stderr = stderr[: max(0, room - len(stdout))]
        await self.emit(Output(stdout, stderr))

    async def finish(self, finished: Finished) -> None:
        if self.finished is not None:
            return
        self.finished = finished
        self._done.set()
        self._settled.set()
        if self._consumer_gone:
            return
        # Never block forever on a consumer that stopped reading without cancelling. (Room in
        # the queue is the common case: no wait_for, which costs a task per command.)
        try:
            self._queue.put_nowait(finished)
            return
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(self._queue.put(finished), 30)
        except TimeoutError:
            self._consumer_gone = True
