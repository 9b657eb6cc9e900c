"""The shell session protocol: one persistent session shell, driven over one transport.

One `open_shell` (a `docker exec`, or one bwrap process) runs `sh -c FRONT firebox-shell SH`,
the top shell T. T makes a private dir under /tmp with FIFOs (`c`: shell text for S, `i`: the
command's stdin, `r`: restart requests), starts F, the front loop, in the background with T's
stdin, and runs S, the session shell, in the FOREGROUND as `setsid SH -s DIR < c`: S leads its
own process group, so signals for the command never touch T or F, and S does not inherit the
SIGINT-ignored disposition that background jobs of a non-interactive shell get. When S exits,
T prints an `X STATUS` record on both streams and waits for F to ask for a new S or to quit.
T first raises its own OOM score adjustment to 500 (raising needs no privilege), so that when a
workspace runs out of memory the kernel kills a session's processes, the command first (the
biggest), and never the workspace's idle main process before them: killing that stops the
container, and with it every session.

F reads frames from the executor, one line at a time (the `read` builtin reads a pipe byte by
byte, so it never takes more than its line):

    <nonce>, <marker>,    first three lines: the session's secret nonce, the short line
    <mark>                that ends a block of shell text in a frame, and the mark exported
                          to the session's processes (FIREBOX_SESSION_MARK) by which closing
                          the session finds those that left its process group
    s / x                 shell text for S follows, up to the marker line;
                          `x` (a command) first reopens the command's stdin FIFO
    i <base64>            bytes for the command's stdin, written by a background job that
                          acks with an `A` record (one chunk in flight: F never blocks; a
                          job still running at the next command is killed, and that command
                          gets a new stdin FIFO, so nothing the job left there reaches it;
                          the job's stderr is /dev/null, so its shell's "Killed" does neither)
    D <path>              where the data FIFO is (docker sessions over FIFOs, when F has
                          `head`): then input comes as
    d N                   N raw bytes for the command's stdin, waiting in the data FIFO
                          (the executor never puts more there than the pipe holds); a
                          background `head -c N` moves them and acks with `A`. No base64
                          and no byte-by-byte `read`: ~0.9 MB/s become hundreds
    e                     end of the command's stdin
    k INT                 signal S's whole process group
    t                     stop the command: TERM to S (its trap abandons the script) and
                          SIGKILL to every other process of S's group; then a `W` record
    w                     sweep: SIGKILL every process of S's group except S (leftovers);
                          then a `W` record (the sweep is done)
    g                     SIGKILL S's group, S included (when S does not respond)
    p <pid>               S's pid, for the above;  r: start a new S;  q: clean up and exit

S runs each command in its own context (cd, variables and functions persist). A command frame
is four short lines (F reads byte by byte, so it stays small):

    x
    __fb_cmd='<the script, or: cd -- DIR && export K=V && command eval SCRIPT>'
    __fb_x SEQ
    <marker>

`__fb_x` opens the stdin FIFO read-write then read-only and drops its write end (so neither F
nor S ever blocks in open(), and the program sees EOF once F closes its end), prints an
`R SEQ` record (S has the FIFO open: closing input can no longer lose bytes), and calls
`__fb_run`, which re-enters S's working directory (so mounts made since, e.g. writable paths,
apply to it; OLDPWD kept), then runs `command eval "$__fb_cmd"` inside a function, so S's traps for INT and
TERM can abandon the script with `return` (and a syntax error does not kill S). `__fb_done`
then saves a snapshot of S's variables and cwd (`set`, `export -p`: builtins, no fork) and
prints a `D SEQ STATUS` record on stdout AND stderr: a command is complete when both arrived,
since the two streams may be reordered.

Records are `<0x1f>FBX<nonce> <fields><newline>`. The nonce is never in any process's argv or
environment, and no `set` listing has the record's leading 0x1f byte before it, so a command's
output cannot fake a record by accident. The executor scans both byte streams for the tag
across chunk boundaries, holding back only a suffix that may begin a tag, so output without a
trailing newline is delivered intact.

Stopping: INTERRUPT sends SIGINT to S's group and escalates to a kill after a grace period.
A kill (stop KILL, timeout, cancel, shutdown) sends `t`: the command's processes die and S
abandons the script, reports, and keeps its whole state. S runs its TERM trap only between
commands and only once its foreground child has ended, so a TERM that lands after S's last
check but before its next fork leaves S to fork a child the sweep could not see, and wait for
it. Until S reports, the executor therefore sends `w` again every `sweep_interval` (each one
once F's `W` says the previous sweep is done, so sweeps never pile up). If S does not report
within the grace (it ignores TERM, or is stuck), its whole group including S is killed and a
new S is started that restores the snapshot of the last completed command (cwd and variables;
ash/dash cannot list functions; what the aborted command set is lost), which the final message
says. Background jobs of the session are part of S's group and are killed by every stop.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from executor_service.backend import STDERR, STDOUT, ShellTransport
from executor_service.execution import (
    ESCALATED_MESSAGE,
    STOP_REASONS,
    EndReason,
    Execution,
    Finished,
    Started,
    StopRequest,
    shell_quote,
)
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.shell")

# The front shell F. $1 is the shell to run S with. Comments live in the module docstring: this
# text is an argv element, kept short.
FRONT = r"""
echo 500 >/proc/self/oom_score_adj 2>/dev/null
IFS= read -r t || exit 1
IFS= read -r m || exit 1
IFS= read -r k || exit 1
sh_=$1; S=; G=; F=; kk=
r() { printf '\037FBX%s %s\n' "$t" "$*"; }
d=${TMPDIR:-/tmp}/.firebox.$$
rm -rf "$d" 2>/dev/null
if ! mkdir -m 700 "$d" 2>/dev/null || ! mkfifo "$d/c" "$d/i" "$d/r" 2>/dev/null; then
  r E "cannot create FIFOs in $d: is /tmp writable?"; exit 1
fi
if kill -s 0 -- $$ 2>/dev/null; then kd=--; else kd=; fi
if command -v setsid >/dev/null 2>&1; then ss=setsid; else ss=; fi
sweep() {
  [ -n "$G" ] || return 0
  sig=$1
  for _ in 1 2 3; do
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      case $p in "$S"|"$$"|"$F") continue;; esac
      { IFS= read -r st <"/proc/$p/stat"; } 2>/dev/null || continue
      st=${st##*) }
      set -f; set -- $st; set +f
      [ "$3" = "$G" ] && kill -s "$sig" "$p" 2>/dev/null
    done
  done
}
marked() {
  # Processes that left the session's process group (setsid, daemons) still carry its mark.
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    case $p in "$$"|"$F") continue;; esac
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "FIREBOX_SESSION_MARK=$k" && kill -s KILL "$p" 2>/dev/null
  done
}
grp() {
  [ -n "$S" ] || return 0
  if [ -n "$ss" ]; then kill -s "$1" $kd -"$S" 2>/dev/null; else kill -s "$1" "$S" 2>/dev/null; sweep "$1"; fi
}
fwd() {
  while IFS= read -r l; do
    [ "$l" = "$m" ] && return 0
    printf '%s\n' "$l" >&3
  done
  return 1
}
kj() {
  # An input job still running (its program stopped reading): kill it and its children.
  [ -n "$J" ] || return 0
  if { IFS= read -r st </proc/$J/stat; } 2>/dev/null; then
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      { IFS= read -r st <"/proc/$p/stat"; } 2>/dev/null || continue
      st=${st##*) }; set -f; set -- $st; set +f
      [ "$2" = "$J" ] && kill -s KILL "$p" 2>/dev/null && kk="$kk $p"
    done
    kill -s KILL "$J" 2>/dev/null
  fi
  wait "$J" 2>/dev/null; J=
  # What the killed copier put in the stdin FIFO and nobody read would reach the next command
  # (the FIFO keeps it while anyone has it open): the next command gets a new FIFO.
  if [ -n "$kk" ]; then rm -f "$d/i"; mkfifo "$d/i"; fi
  kk=
}
front() {
  { IFS= read -r st </proc/self/stat; } 2>/dev/null && F=${st%% *}
  exec 3>"$d/c"
  if command -v head >/dev/null 2>&1; then hd=head; else hd=; fi
  r F "${ss:-nosetsid}" $hd
  J=
  while IFS= read -r l; do
    case $l in
    x) kj; exec 4>&- 4<>"$d/i"; fwd || break ;;
    s) fwd || break ;;
    "i "*) [ -n "$J" ] && wait "$J"; { printf '%s' "${l#i }" | base64 -d >&4; r A; } 3>&- 6>&- 2>/dev/null & J=$! ;;
    "d "*) [ -n "$J" ] && wait "$J"; { head -c "${l#d }" <"$df" >&4; r A; } 3>&- 6>&- 2>/dev/null & J=$! ;;
    "D "*) df=${l#D } ;;
    e) [ -n "$J" ] && wait "$J"; J=; exec 4>&- ;;
    "k "*) grp "${l#k }" ;;
    w) sweep KILL; r W ;;
    t) [ -n "$S" ] && kill -s TERM "$S" 2>/dev/null; sweep KILL; r W ;;
    g) grp KILL; sweep KILL ;;
    "p "*) S=${l#p }
      if [ -n "$ss" ]; then G=$S; else
        { IFS= read -r st </proc/$$/stat; } 2>/dev/null && { st=${st##*) }; set -f; set -- $st; set +f; G=$3; }
      fi ;;
    r) exec 3>&-; printf 'r\n' >&6; exec 3>"$d/c" ;;
    q) break ;;
    esac
  done
  exec 3>&- 4>&-
  grp KILL; sweep KILL; marked
  printf 'q\n' >&6
}
exec 5<&0 7>&2 6<>"$d/r"
front <&5 5<&- 7>&- &
exec 5<&- </dev/null 2>/dev/null
while :; do
  $ss "$sh_" -s "$d" <"$d/c" 2>&7 6<&- 7>&-; s=$?
  r X $s; r X $s >&7
  IFS= read -r l <&6 || break
  [ "$l" = r ] || break
done
wait
rm -rf "$d"
"""

# Sent to each new S (first line of S's input). {nonce} is filled in.
SESSION_INIT = r"""__fb_d=$1; set --; __fb_t={nonce}; __fb_busy=; __fb_o='\037FBX{nonce} R %s\n'
FIREBOX_SESSION_MARK={mark}; export FIREBOX_SESSION_MARK
trap '[ -n "$__fb_busy" ] && {{ __fb_busy=; __fb_sig=130; return 130; }}' INT
trap '[ -n "$__fb_busy" ] && {{ __fb_busy=; __fb_sig=137; return 137; }}' TERM
__fb_q() {{ __fb_a=; for __fb_i do __fb_w=; while :; do case $__fb_i in *\'*) __fb_w="$__fb_w${{__fb_i%%\'*}}'\\''"; __fb_i=${{__fb_i#*\'}};; *) break;; esac; done; __fb_a="$__fb_a '$__fb_w$__fb_i'"; done; }}
__fb_run() {{ __fb_sig=; __fb_busy=1; __fb_op=$OLDPWD; cd -- "$PWD" 2>/dev/null; OLDPWD=$__fb_op; command eval "$__fb_cmd"; __fb_s=$?; __fb_busy=; __fb_q "$@"; return $__fb_s; }}
__fb_x() {{ exec 9<>"$__fb_d/i"; {{ exec 9>&-; printf "$__fb_o" "$1"; eval "__fb_run ${{__fb_a-}}"; }} <"$__fb_d/i"; __fb_done "$1" $?; }}
__fb_done() {{ __fb_cmd=; __fb_s=${{__fb_sig:-$2}}; __fb_sig=; set >"$__fb_d/st" 2>/dev/null; export -p >>"$__fb_d/st" 2>/dev/null; printf '\037FBX%s D %s %s\n' "$__fb_t" "$1" "$__fb_s"; printf '\037FBX%s D %s %s\n' "$__fb_t" "$1" "$__fb_s" >&2; }}
__fb_r=0; if [ -f "$__fb_d/st" ]; then command . "$__fb_d/st" >/dev/null 2>&1; cd -- "$PWD" 2>/dev/null; __fb_r=1; fi
printf '\037FBX%s H %s %s\n' "$__fb_t" "$$" "$__fb_r"
"""

TAG_PREFIX = b"\x1fFBX"
# Longest record line we accept; a longer one is treated as output (it cannot be ours).
MAX_RECORD = 256
# Raw stdin bytes per frame: F reads the base64 line byte by byte, so keep it modest.
INPUT_CHUNK = 16 * 1024


@dataclass(frozen=True)
class ShellConfig:
    """Tunables of shell sessions. Defaults suit both backends."""

    # The shell run for F and S inside the workspace.
    shell: str = "/bin/sh"
    # Time for a new shell to say hello.
    start_timeout: float = 20.0
    # After a SIGINT, time the command gets to end before it is killed.
    interrupt_grace: float = 0.5
    # After a kill-type stop, time S gets to report before its whole group, S included, is killed
    # and S restarted (which loses the aborted command's variables and every function). S acts on
    # its TERM only once its foreground child is gone and it gets the CPU: on a loaded machine that
    # can take a few hundred milliseconds.
    kill_grace: float = 1.0
    # During that grace, the least time between two sweeps of S's process group (each sweep waits
    # for the previous one to be done, so a slow sweep never piles up behind the next command).
    sweep_interval: float = 0.05
    # Time a killed S gets to be reported gone (then the transport is considered broken).
    exit_wait: float = 5.0


class Scanner:
    """Splits one output stream into data and records (`TAG fields\\n`), across chunk bounds."""

    DATA = 0
    RECORD = 1

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self._held = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._held + data if self._held else data
        self._held = b""
        out: list[tuple[int, bytes]] = []
        pos = 0
        tag = self.tag
        while True:
            i = buf.find(tag, pos)
            if i < 0:
                break
            j = buf.find(b"\n", i + len(tag), i + len(tag) + MAX_RECORD)
            if j < 0:
                if len(buf) - i < len(tag) + MAX_RECORD:
                    if i > pos:
                        out.append((self.DATA, buf[pos:i]))
                    self._held = buf[i:]
                    return out
                # Not a record of ours after all: output.
                out.append((self.DATA, buf[pos : i + len(tag)]))
                pos = i + len(tag)
                continue
            if i > pos:
                out.append((self.DATA, buf[pos:i]))
            out.append((self.RECORD, buf[i + len(tag) : j].strip()))
            pos = j + 1
        # Hold back a suffix that could be the start of a tag (the tag has one \x1f, first).
        k = buf.rfind(b"\x1f", max(pos, len(buf) - len(tag) + 1))
        end = len(buf)
        if k >= 0 and tag.startswith(buf[k:]):
            self._held = buf[k:]
            end = k
        if end > pos:
            out.append((self.DATA, buf[pos:end] if pos or end != len(buf) else buf))
        return out

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


class _Command:
    """Bookkeeping of the command running now."""

    def __init__(self, execution: Execution, seq: int) -> None:
        self.execution = execution
        self.seq = seq
        self.status: dict[int, int] = {}
        self.input_closed = False
        # Some input was sent to F for this command (then closing must wait for stdin_open).
        self.input_sent = False
        # S has opened the command's stdin: from then on closing F's end cannot lose input.
        self.stdin_open = asyncio.Event()


class Shell:
    """One session's F and S over one transport. `run` drives one command at a time."""

    def __init__(
        self,
        transport: ShellTransport,
        config: ShellConfig,
        nonce: str,
        oom_kills: Callable[[], Awaitable[int | None]] | None = None,
    ) -> None:
        self.transport = transport
        self.config = config
        self.nonce = nonce
        self.tag = TAG_PREFIX + nonce.encode()
        # Ends a block of shell text in a frame (F reads frames byte by byte: keep it short).
        self.end_marker = "." + nonce[:10]
        # Exported to the session's processes so that closing it also finds those that left its
        # process group (setsid, daemons). Not the nonce: commands must never learn that.
        self.mark = secrets.token_hex(8)
        self._scanners = {STDOUT: Scanner(self.tag), STDERR: Scanner(self.tag)}
        self._oom_kills = oom_kills
        self._oom_seen: int | None = None
        self.pid = 0
        self.setsid = True
        # S's state was restored after a kill (functions are lost then).
        self.restored = False
        self.ended = False
        self.end_message = ""
        self.exit_status: int | None = None
        self._closed = False
        self._eof = False
        self._seq = 0
        self._current: _Command | None = None
        self._changed = asyncio.Event()
        self._hello: asyncio.Future[tuple[int, bool]] | None = None
        self._front: asyncio.Future[str] | None = None
        self._exit_records: dict[int, int] = {}
        # `t` and `w` frames sent, and `W` records (F's "sweep done") received: F answers in order.
        self._sweeps_sent = 0
        self._sweeps_done = 0
        # F has `head` and the transport a data FIFO: command input goes raw through it, up to
        # this many bytes per acknowledged chunk (0: base64 lines through F's stdin).
        self._front_has_head = False
        self._data_chunk = 0
        self._ack = asyncio.Event()
        self._ack.set()
        self._input_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    # ---- life cycle --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        opener: Callable[[list[str]], Awaitable[ShellTransport]],
        config: ShellConfig | None = None,
        oom_kills: Callable[[], Awaitable[int | None]] | None = None,
    ) -> Shell:
        """Start F (through `opener(argv)`) and S, and wait until S says hello."""
        config = config or ShellConfig()
        transport = await opener([config.shell, "-c", FRONT, "firebox-shell", config.shell])
        shell = cls(transport, config, secrets.token_hex(12), oom_kills)
        shell._reader = asyncio.create_task(shell._read_loop())
        try:
            await shell._write(f"{shell.nonce}\n{shell.end_marker}\n{shell.mark}\n".encode())
            mode = await shell._start_session_shell(first=True)
            shell.setsid = mode != "nosetsid"
            if not shell.setsid:
                log.warning(
                    "shell_without_setsid",
                    hint="the image has no setsid: stops reach the command's processes through a "
                    "sweep of the shell's process group, which also holds the session's front shell",
                )
            if transport.data_path and shell._front_has_head:
                await shell._write(f"D {transport.data_path}\n".encode())
                shell._data_chunk = transport.data_chunk
            if oom_kills is not None:
                shell._oom_seen = await oom_kills()
        except BaseException:
            await shell.close()
            raise
        return shell

    async def _start_session_shell(self, first: bool) -> str:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        if first:
            self._front = loop.create_future()
        self._exit_records = {}
        init = SESSION_INIT.format(nonce=self.nonce, mark=self.mark)
        await self._write((("" if first else "r\n") + "s\n" + init + self.end_marker + "\n").encode())
        waits: list[asyncio.Future[Any]] = [self._hello]
        if first:
            assert self._front is not None
            waits.append(self._front)
        try:
            async with asyncio.timeout(self.config.start_timeout):
                for fut in waits:
                    await asyncio.shield(fut)
        except TimeoutError:
            raise errors.Unavailable(
                f"the workspace shell did not start within {self.config.start_timeout:g}s"
            ) from None
        pid, restored = self._hello.result()
        self.pid = pid
        self.restored = restored
        await self._write(f"p {pid}\n".encode())
        return self._front.result() if self._front is not None else ""

    async def close(self) -> None:
        """End F and S and everything S started; close the transport. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.ended = True
        self.end_message = self.end_message or "closed"
        try:
            await asyncio.wait_for(self._write(b"q\n"), 2)
            if self._reader is not None:
                await asyncio.wait_for(asyncio.shield(self._reader), 2)
        except Exception:
            pass
        try:
            await self.transport.close()
        finally:
            if self._reader is not None:
                self._reader.cancel()

    # ---- one command -------------------------------------------------------------------------

    async def run(self, execution: Execution, isolated: bool = False) -> Finished:
        """Run `execution` to its end: emits Started and its output, honours its stop requests
        and timeout, and returns its Finished event (the caller delivers it, after releasing the
        session, so that a client that sees the end may send its next command at once).

        `isolated` runs it in a subshell of S, so that nothing it changes (cwd, variables,
        functions, `exit`) outlives it: a sessionless command, on a warm shell reused for the
        next one."""
        started = time.monotonic()
        if self.ended or self._eof:
            return Finished(
                None, EndReason.EXITED, False, True, f"the session has ended ({self.end_message})"
            )
        await self._wait_input_settled()
        self._seq += 1
        cmd = _Command(execution, self._seq)
        spec = execution.spec
        # The text goes through `command eval` in S; a bare script needs no wrapper.
        text = (
            spec.script
            if spec.script is not None and not spec.directory and not spec.env
            else spec.shell_text()
        )
        if isolated:
            # The subshell waits out its foreground child on SIGINT and then abandons the script,
            # as S does (a trap, not an ignore: the command's own programs get the default).
            text = f"(trap 'exit 130' INT; command eval {shell_quote(text)})"
        if any(line == self.end_marker for line in text.split("\n")):
            raise errors.InvalidArgument("script", "contains a line reserved by the session protocol")
        frame = f"x\n__fb_cmd={shell_quote(text)}\n__fb_x {cmd.seq}\n{self.end_marker}\n"
        execution.shell = self
        await execution.emit(Started(execution.id, self.pid))
        self._current = cmd
        self._changed.clear()
        try:
            await self._write(frame.encode())
            execution.mark_running()
            finished = await self._supervise(cmd, started)
        finally:
            self._current = None
        return finished

    async def _supervise(self, cmd: _Command, started: float) -> Finished:
        execution = cmd.execution
        timeout = execution.spec.timeout
        deadline = started + timeout if timeout else None
        handled: StopRequest | None = None
        escalate_at: float | None = None
        killed_shell = False
        loop = asyncio.get_running_loop()
        while not self._command_over(cmd):
            # `_changed` is the one wake-up: records, the transport's end, the execution's stop
            # requests (Execution.request_stop calls wake()) and a timer for the deadlines all set
            # it. This runs a few times per command: one future per wait, no tasks (profiled: the
            # task-per-event asyncio.wait was a good part of the loop's per-command work).
            pending = execution.stop_request is not None and execution.stop_request is not handled
            if not pending:
                now = time.monotonic()
                waits = [t for t in (deadline, escalate_at) if t is not None]
                timer = loop.call_at(loop.time() + max(0.0, min(waits) - now), self.wake) if waits else None
                try:
                    await self._changed.wait()
                finally:
                    if timer is not None:
                        timer.cancel()
                self._changed.clear()
                execution.stop_changed.clear()
                if self._command_over(cmd):
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
                await self._write(b"k INT\n")
                escalate_at = time.monotonic() + self.config.interrupt_grace
                continue
            escalate_at = None
            killed_shell = await self._kill(cmd)
            break
        if execution.stop_request is not None and not killed_shell and not self.ended:
            # The command is over; its background jobs (which ignore SIGINT) go too.
            await self._sweep(b"w\n")
        return await self._outcome(cmd, started, killed_shell)

    async def resize(self, execution: Execution, rows: int, cols: int) -> None:
        """A session shell's commands have no terminal: nothing to resize."""

    async def sweep_leftovers(self) -> bool:
        """Kill what the last command left running: its background jobs in S's process group
        (F's sweep) and whatever detached from it (the transport's cgroup). False when the
        shell cannot be reused."""
        if self.ended or self._eof or self._current is not None:
            return False
        await self._sweep(b"w\n")
        deadline = time.monotonic() + self.config.exit_wait
        while self._sweeps_done < self._sweeps_sent:
            if self.ended or self._eof or time.monotonic() >= deadline:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        # Daemons that left the group (setsid, `env -i`) are found by the transport's cgroup.
        await self.transport.kill_strays()
        return not self.ended and not self._eof

    def wake(self) -> None:
        """Something may have changed for the running command (spurious wake-ups are harmless:
        every waiter re-checks its condition)."""
        self._changed.set()

    def _command_over(self, cmd: _Command) -> bool:
        return len(cmd.status) == 2 or len(self._exit_records) == 2 or self._eof

    async def _kill(self, cmd: _Command) -> bool:
        """Kill the command for sure. True if S had to be killed and restarted."""
        await self._sweep(b"t\n")
        if await self._sweep_until_over(cmd, self.config.kill_grace):
            return False
        await self._write(b"g\n")
        deadline = time.monotonic() + self.config.exit_wait
        while len(self._exit_records) < 2 and not self._eof and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            self._changed.clear()
        if self._eof:
            return True
        if len(self._exit_records) < 2:
            self._mark_ended("the session's shell did not respond to a kill")
            return True
        # S is gone: start a new one with the last snapshot, so the session stays usable.
        try:
            await self._start_session_shell(first=False)
        except Exception as exc:
            self._mark_ended(f"the session's shell could not be restarted: {exc}")
        return True

    async def _sweep(self, frame: bytes) -> None:
        self._sweeps_sent += 1
        await self._write(frame)

    async def _sweep_until_over(self, cmd: _Command, seconds: float) -> bool:
        """Sweep S's group again and again until the command is over (True) or `seconds` pass.

        One sweep is not enough: S acts on its TERM only between commands, and waits for a
        foreground child before that. If the TERM came when S had passed its last check but not
        yet forked (a loaded machine preempts it there easily), S forks after the first sweep
        and would wait for that child, alive, until the grace ran out and S was restarted."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + seconds
        next_sweep = time.monotonic() + self.config.sweep_interval
        while not self._command_over(cmd):
            now = time.monotonic()
            if now >= deadline:
                return False
            if now >= next_sweep and self._sweeps_done >= self._sweeps_sent:
                await self._sweep(b"w\n")
                next_sweep = now + self.config.sweep_interval
            # D records, W records (a sweep done) and the transport's end set `_changed`; the
            # timer wakes us when the next sweep is due, unless one is still running.
            wake_at = deadline if now >= next_sweep else min(deadline, next_sweep)
            timer = loop.call_at(loop.time() + (wake_at - now), self.wake)
            try:
                await self._changed.wait()
            finally:
                timer.cancel()
            self._changed.clear()
        return True

    async def _outcome(self, cmd: _Command, started: float, killed_shell: bool) -> Finished:
        execution = cmd.execution
        duration = time.monotonic() - started
        request = execution.stop_request
        truncated = execution.truncated
        note = f"; output past {execution.output_cap_bytes} bytes was dropped" if truncated else ""
        if killed_shell and not self.ended:
            status: int | None = 128 + 9
            restored = (
                "; the shell was restarted with its working directory and variables (functions are lost)"
            )
            note = restored + note
        elif len(cmd.status) == 2:
            status = cmd.status[STDOUT]
        elif len(self._exit_records) == 2:
            status = self._exit_records[STDOUT]
            if not killed_shell:
                self._mark_ended(f"its shell exited with status {status}")
        else:
            status = None
            self._mark_ended("its shell went away")
        ended = self.ended
        if request not in (None, StopRequest.INTERRUPT) and status is not None and status > 128:
            # Whichever trap fired first in the shell (an earlier interrupt may still be pending),
            # a kill-type stop ends the command as SIGKILL would.
            status = 128 + 9
        if request is not None:
            reason = STOP_REASONS[request]
            message = execution.stop_description()
            if request is StopRequest.INTERRUPT and status == 137:
                message = ESCALATED_MESSAGE
        elif status is None:
            reason, message = EndReason.SIGNALED, "the session's shell went away"
        elif status == 137 and await self._oom_increased():
            reason, message = EndReason.OUT_OF_MEMORY, "killed by the workspace's memory limit"
        elif 128 < status <= 128 + 64:
            reason, message = EndReason.SIGNALED, f"ended by signal {status - 128}"
        else:
            reason, message = EndReason.EXITED, f"exited with status {status}"
        if ended:
            message += "; the session has ended" if not message.endswith("ended") else ""
        return Finished(status, reason, truncated, ended, message + note, duration)

    async def _oom_increased(self) -> bool:
        if self._oom_kills is None:
            return False
        try:
            now = await self._oom_kills()
        except Exception:
            return False
        before, self._oom_seen = self._oom_seen, now
        return now is not None and before is not None and now > before

    def _mark_ended(self, why: str) -> None:
        self.ended = True
        self.end_message = self.end_message or why

    # ---- stdin -------------------------------------------------------------------------------

    async def write_input(self, execution: Execution, data: bytes) -> None:
        """Send `data` to the command's stdin, one acknowledged chunk at a time, so that F never
        blocks on a full pipe (it must stay free to deliver a stop)."""
        size = self._data_chunk or INPUT_CHUNK
        async with self._input_lock:
            for offset in range(0, len(data), size):
                cmd = self._current
                if cmd is None or cmd.execution is not execution or cmd.input_closed:
                    return
                await self._wait_ack(cmd)
                if self._current is not cmd or len(cmd.status) == 2:
                    return
                self._ack.clear()
                cmd.input_sent = True
                piece = data[offset : offset + size]
                if self._data_chunk:
                    # The pipe holds the whole chunk: this write never waits for the reader.
                    await self.transport.write_data(piece)
                    await self._write(f"d {len(piece)}\n".encode())
                else:
                    await self._write(b"i " + base64.b64encode(piece) + b"\n")

    async def close_input(self, execution: Execution) -> None:
        """End of stdin: sent after every chunk written so far has reached the pipe."""
        async with self._input_lock:
            cmd = self._current
            if cmd is None or cmd.execution is not execution or cmd.input_closed:
                return
            await self._wait_ack(cmd)
            # Before S has opened the FIFO, F's end is the only one: closing it would drop
            # the input written so far. With none written there is nothing to lose, and the
            # program reads EOF either way (the common Execute: no input, then half-close).
            loop = asyncio.get_running_loop()
            while (
                cmd.input_sent
                and not cmd.stdin_open.is_set()
                and self._current is cmd
                and not self._command_over(cmd)
            ):
                # The R record wakes `_changed`; the timer bounds the wait as a re-check.
                timer = loop.call_later(0.2, self.wake)
                try:
                    await self._changed.wait()
                finally:
                    timer.cancel()
            if self._current is cmd and not self._command_over(cmd):
                cmd.input_closed = True
                await self._write(b"e\n")

    async def _wait_ack(self, cmd: _Command) -> None:
        while not self._ack.is_set() and self._current is cmd and not self._command_over(cmd):
            ack = asyncio.ensure_future(self._ack.wait())
            over = asyncio.ensure_future(cmd.execution.stop_changed.wait())
            await asyncio.wait([ack, over], timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
            ack.cancel()
            over.cancel()

    async def _wait_input_settled(self) -> None:
        # A chunk of the previous command still in flight must end (EPIPE) before the FIFO is
        # reopened, or its bytes could reach the next command.
        if not self._ack.is_set():
            try:
                await asyncio.wait_for(self._ack.wait(), 1)
            except TimeoutError:
                self._ack.set()

    # ---- transport ---------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self.transport.write(data)

    async def _read_loop(self) -> None:
        try:
            while True:
                item = await self.transport.read()
                if item is None:
                    break
                stream, data = item
                if stream not in self._scanners:
                    stream = STDOUT
                for kind, payload in self._scanners[stream].feed(data):
                    if kind == Scanner.DATA:
                        await self._on_output(stream, payload)
                    else:
                        self._on_record(stream, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("shell_transport_failed", error=repr(exc))
        finally:
            self._eof = True
            self.ended = True
            self.end_message = self.end_message or "its shell went away"
            for fut in (self._hello, self._front):
                if fut is not None and not fut.done():
                    fut.set_exception(errors.Unavailable("the workspace shell exited while starting"))
            self._ack.set()
            self._changed.set()

    async def _on_output(self, stream: int, data: bytes) -> None:
        cmd = self._current
        if cmd is None or stream in cmd.status:
            return  # between commands (background jobs): nobody to give it to
        if stream == STDOUT:
            await cmd.execution.output(data, b"")
        else:
            await cmd.execution.output(b"", data)

    def _on_record(self, stream: int, record: bytes) -> None:
        fields = record.decode("ascii", "replace").split()
        if not fields:
            return
        kind = fields[0]
        if kind == "D" and len(fields) == 3:
            cmd = self._current
            if cmd is not None and fields[1] == str(cmd.seq):
                cmd.status[stream] = int(fields[2])
                self._changed.set()
        elif kind == "A":
            self._ack.set()
        elif kind == "W":
            self._sweeps_done += 1
            self._changed.set()
        elif kind == "R" and len(fields) == 2:
            cmd = self._current
            if cmd is not None and fields[1] == str(cmd.seq):
                cmd.stdin_open.set()
                self._changed.set()
        elif kind == "X" and len(fields) == 2:
            self._exit_records[stream] = int(fields[1])
            self._changed.set()
        elif kind == "H" and len(fields) == 3:
            if self._hello is not None and not self._hello.done():
                self._hello.set_result((int(fields[1]), fields[2] == "1"))
        elif kind == "F" and len(fields) in (2, 3):
            self._front_has_head = fields[2:] == ["head"]
            if self._front is not None and not self._front.done():
                self._front.set_result(fields[1])
        elif kind == "E":
            message = record.decode("utf-8", "replace")[2:]
            for fut in (self._hello, self._front):
                if fut is not None and not fut.done():
                    fut.set_exception(
                        errors.FailedPrecondition(f"cannot start a shell in the workspace: {message}")
                    )
