"""Executions on a terminal (ExecuteRequest.tty): the program gets a pseudo-terminal.

The backend makes the terminal (`open_tty`: a `docker exec` with a TTY, whose size the engine's
exec resize sets; or, for bwrap, a pty the executor holds the master of), so nothing has to be in
the image beyond a POSIX shell: no `script`, `python` or `socat`. The process started on it is
TTY_WRAPPER, a few lines of sh that:

1. print their pid (in the workspace) on a line of their own and wait for a line: the executor
   sends it, a fresh nonce, only once the terminal has its size (the engine can resize an exec
   only after it started: without the wait a program could read 0x0). The terminal echoes that
   line; the executor drops the pid line and the echo, so the client sees neither;
2. in a session, load the session shell's state (its `set` and `export -p` listing, given as an
   argument), so the program starts in the session's directory with its variables and
   positional parameters;
3. run the command inside a function whose SIGINT trap returns from it (Ctrl-C ends the
   foreground job and the command; the wrapper goes on, as a session's shell does);
4. in a session, print a record `<0x1f>FBX<nonce> T` and then, base64 (the terminal may
   rewrite newlines), its own state: the executor takes everything after the record as state, not
   output, and the session shell loads it, so what the command changed (cd, export, set --) is
   kept, as for a command without a terminal.

Ctrl-C (0x03 in input_data) and Ctrl-D (0x04) work through the terminal's line discipline; a
stop INTERRUPT sends SIGINT to the terminal's foreground process group, a kill-type stop SIGKILL
to every process of the terminal's session. Processes the command left in that session are
killed when it ends, as a sessionless command's are.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time

from executor_service.backend import TtyTransport
from executor_service.execution import (
    STOP_REASONS,
    EndReason,
    Execution,
    Finished,
    Started,
    StopRequest,
)
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.terminal")

# $1: "s" in a session (load $2, the session's state; print the state at the end), else empty;
# $3: the command's shell text. Comments are in the module docstring: this text is an argv element.
TTY_WRAPPER = r"""
printf '%s\n' "$$"
IFS= read -r __fb_n || exit 1
__fb_m=$1; __fb_c=$3
if [ -n "$__fb_m" ]; then command eval "$2" >/dev/null 2>&1; cd -- "${PWD:-/workspace}" 2>/dev/null; fi
__fb_q() { __fb_a=; for __fb_i do __fb_w=; while :; do case $__fb_i in *\'*) __fb_w="$__fb_w${__fb_i%%\'*}'\\''"; __fb_i=${__fb_i#*\'};; *) break;; esac; done; __fb_a="$__fb_a '$__fb_w$__fb_i'"; done; }
__fb_run() { __fb_busy=1; command eval "$__fb_c"; __fb_s=$?; __fb_busy=; __fb_q "$@"; return $__fb_s; }
trap '[ -n "$__fb_busy" ] && { __fb_busy=; return 130; }' INT
eval "set -- ${__fb_a-}"
__fb_run "$@"; __fb_s=$?
trap - INT
[ -n "$__fb_m" ] || exit $__fb_s
printf '\037FBX%s T\n' "$__fb_n"
unset __fb_n __fb_m __fb_c __fb_busy __fb_i __fb_w
{ set; export -p; } | base64
exit $__fb_s
"""

TAG_PREFIX = b"\x1fFBX"
# The session state handed to and taken back from a terminal: an argv element (Linux allows
# 128 KiB per element), and what is read back after the record.
MAX_STATE_BYTES = 120 * 1024
START_TIMEOUT = 20.0
# After a SIGINT stop, time the program gets to end before it is killed.
INTERRUPT_GRACE = 0.5
# After a kill, time the terminal gets to report its end.
EXIT_WAIT = 5.0


def wrapper_argv(shell: str, command: str, session_state: str | None) -> list[str]:
    return [
        shell,
        "-c",
        TTY_WRAPPER,
        "firebox-tty",
        "s" if session_state is not None else "",
        session_state or "",
        command,
    ]


def session_state_for_terminal(listing: bytes) -> str:
    """A session shell's `set; export -p` listing, without what the terminal must not see (the
    session's record nonce)."""
    lines = listing.decode("utf-8", "surrogateescape").split("\n")
    return "\n".join(line for line in lines if not line.startswith(("__fb_t=", "__fb_o=")))


class Terminal:
    """Runs one execution on a TtyTransport; the execution's driver (input, resize, stop)."""

    def __init__(self, transport: TtyTransport, execution: Execution, *, in_session: bool) -> None:
        self.transport = transport
        self.execution = execution
        self.in_session = in_session
        self.nonce = secrets.token_hex(12)
        self.leader = 0
        # The state the wrapper printed after its record (in a session), decoded; None if none.
        self.state: str | None = None
        self._tag = TAG_PREFIX + self.nonce.encode() + b" T"
        self._echo = self.nonce.encode() + b"\r\n"
        self._changed = asyncio.Event()
        self._reader_done = False

    # ---- the Driver interface ------------------------------------------------------------------

    async def write_input(self, execution: Execution, data: bytes) -> None:
        try:
            await self.transport.write(data)
        except errors.Unavailable:
            pass  # the program has ended: input after the end is dropped

    async def close_input(self, execution: Execution) -> None:
        """A terminal has no end of input but the one typed (Ctrl-D): closing the request stream
        must not end an interactive program, so nothing happens."""

    async def resize(self, execution: Execution, rows: int, cols: int) -> None:
        await self.transport.resize(rows, cols)

    def wake(self) -> None:
        self._changed.set()

    # ---- running -------------------------------------------------------------------------------

    async def run(self) -> Finished:
        """Start the wrapper's command, stream its output, honour stops and the timeout; the
        Finished event (the caller delivers it)."""
        execution = self.execution
        started = time.monotonic()
        leftover = await self._handshake()
        execution.shell = self
        await execution.emit(Started(execution.id, self.leader))
        execution.mark_running()
        reader = asyncio.create_task(self._read_loop(leftover))
        reader.add_done_callback(lambda _: self.wake())
        try:
            killed = await self._supervise(reader, started)
        finally:
            if not reader.done():
                reader.cancel()
        status = await self.transport.exit_status()
        # Whatever it left running on its terminal (background jobs) goes with it.
        await self.transport.signal(self.leader, kill=True)
        return self._outcome(status, time.monotonic() - started, killed)

    async def _handshake(self) -> bytes:
        """Read the wrapper's pid line, send the go line; the output after the pid line."""
        buffer = b""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while b"\n" not in buffer:
                    chunk = await self.transport.read()
                    if chunk is None:
                        raise errors.Unavailable(
                            f"the terminal's shell exited while starting: {buffer[:200].decode('utf-8', 'replace')!r}"
                        )
                    buffer += chunk
        except TimeoutError:
            raise errors.Unavailable(
                f"the terminal's shell did not start within {START_TIMEOUT:g}s"
            ) from None
        line, _, rest = buffer.partition(b"\n")
        try:
            self.leader = int(line.strip())
        except ValueError:
            raise errors.Unavailable(f"unexpected start of the terminal's output: {line[:80]!r}") from None
        await self.transport.write(self.nonce.encode() + b"\n")
        return rest

    async def _read_loop(self, leftover: bytes) -> None:
        pending = b""
        state: bytearray | None = None
        chunk: bytes | None = leftover
        while True:
            if not chunk:
                chunk = await self.transport.read()
                if chunk is None:
                    break
            if state is not None:
                state += chunk[: MAX_STATE_BYTES * 2 - len(state)]
                chunk = None
                continue
            if self._echo:
                # The terminal echoes the go line before anything else can come.
                common = min(len(self._echo), len(chunk))
                if chunk[:common] == self._echo[:common]:
                    self._echo = self._echo[common:]
                    chunk = chunk[common:]
                else:
                    self._echo = b""  # echo is off: there is nothing to drop
            data, pending, chunk = pending + chunk, b"", None
            if self.in_session:
                at = data.find(self._tag)
                if at >= 0:
                    state = bytearray(data[at + len(self._tag) :])
                    data = data[:at]
                else:
                    # Keep back what may be the start of the record.
                    keep = next(
                        (
                            n
                            for n in range(min(len(self._tag) - 1, len(data)), 0, -1)
                            if self._tag.startswith(data[-n:])
                        ),
                        0,
                    )
                    if keep:
                        data, pending = data[:-keep], data[-keep:]
            await self.execution.output(data, b"")
        await self.execution.output(pending, b"")
        if state is not None:
            try:
                text = base64.b64decode(bytes(state).translate(None, b"\r\n \t"), validate=True)
                self.state = text.decode("utf-8", "surrogateescape")
            except (binascii.Error, ValueError):
                log.warning("tty_state_unreadable", execution_id=self.execution.id)

    async def _supervise(self, reader: asyncio.Task[None], started: float) -> bool:
        """Until the terminal closes; True if the program had to be killed."""
        execution = self.execution
        timeout = execution.spec.timeout
        deadline = started + timeout if timeout else None
        escalate_at: float | None = None
        handled: StopRequest | None = None
        loop = asyncio.get_running_loop()
        while not reader.done():
            waits = [t for t in (deadline, escalate_at) if t is not None]
            timer = (
                loop.call_at(loop.time() + max(0.0, min(waits) - time.monotonic()), self.wake)
                if waits
                else None
            )
            try:
                await self._changed.wait()
            finally:
                if timer is not None:
                    timer.cancel()
            self._changed.clear()
            if reader.done():
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                execution.request_stop(StopRequest.TIMEOUT)
            if escalate_at is not None and now >= escalate_at:
                execution.escalate()
                escalate_at = None
            request = execution.stop_request
            if request is None or request is handled:
                continue
            handled = request
            if request is StopRequest.INTERRUPT:
                await self.transport.signal(self.leader, kill=False)
                escalate_at = time.monotonic() + INTERRUPT_GRACE
                continue
            await self.transport.signal(self.leader, kill=True)
            try:
                await asyncio.wait_for(asyncio.shield(reader), EXIT_WAIT)
            except TimeoutError:
                log.warning("tty_did_not_close", execution_id=execution.id)
            return True
        return False

    def _outcome(self, status: int | None, duration: float, killed: bool) -> Finished:
        execution = self.execution
        request = execution.stop_request
        truncated = execution.truncated
        note = f"; output past {execution.output_cap_bytes} bytes was dropped" if truncated else ""
        if killed and status is not None and status > 128:
            status = 128 + 9
        if request is not None and (killed or status is None or status > 128):
            reason = STOP_REASONS[request]
            message = execution.stop_description()
        elif status is None:
            reason, message = EndReason.SIGNALED, "the terminal's process went away"
        elif 128 < status <= 128 + 64:
            reason, message = EndReason.SIGNALED, f"ended by signal {status - 128}"
        else:
            reason, message = EndReason.EXITED, f"exited with status {status}"
        if self.in_session and self.state is None and not killed:
            note = "; the session keeps its state from before (the command ended its terminal's shell)" + note
        return Finished(status, reason, truncated, False, message + note, duration)
