"""Shell sessions: long-lived shells in workspaces whose state survives between commands.

A session is one `Shell` (see shell.py) started by one `open_shell` (one `docker exec` or one
bwrap process) when the session is created; each command then costs a round trip over its
pipes, not a process start. Session ids are global (CloseSession names only the id).

Sessionless executions run on warm shells: each command runs in a subshell of the shell (so
nothing it changes is kept), its leftover background jobs are killed after it, and the shell goes
back to the workspace's idle list (at most `warm_shells_per_workspace`) for the next one. Only
when none is idle does a command take the pre-started spare shell (refilled in the background)
or, failing that, start one; so a burst of sessionless Executes does not start a shell each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from executor_service.backend import ShellTransport, WorkspaceBackend, WorkspaceInfo
from executor_service.execution import (
    EndReason,
    ExecuteSpec,
    Execution,
    Finished,
    Output,
    StopRequest,
    shell_quote,
)
from executor_service.shell import Shell, ShellConfig
from executor_service.terminal import (
    MAX_STATE_BYTES,
    Terminal,
    session_state_for_terminal,
    wrapper_argv,
)
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.sessions")

SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
DEFAULT_MAX_SESSIONS_PER_WORKSPACE = 64
# As many as may run at once in a workspace (admission.py): a steady load starts no shells.
DEFAULT_WARM_SHELLS_PER_WORKSPACE = 8
IDLE, BUSY, ENDED = "idle", "busy", "ended"


@dataclass
class Session:
    """A session as clients see it (Session in the proto)."""

    id: str
    workspace_id: str
    shell: Shell
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    command_count: int = 0
    current: Execution | None = None
    # Why it takes no more commands, once it has ended.
    end_message: str = ""

    @property
    def status(self) -> str:
        if self.current is not None:
            return BUSY
        if self.end_message or self.shell.ended:
            self.end_message = self.end_message or self.shell.end_message or "ended"
            return ENDED
        return IDLE

    @property
    def current_execution_id(self) -> str | None:
        return self.current.id if self.current is not None else None


class SessionManager:
    """Creates, finds, lists and closes sessions; runs commands in them one at a time."""

    def __init__(
        self,
        backend: WorkspaceBackend,
        *,
        max_sessions_per_workspace: int = DEFAULT_MAX_SESSIONS_PER_WORKSPACE,
        shell_config: ShellConfig | None = None,
        keep_spare_shells: bool = True,
        warm_shells_per_workspace: int = DEFAULT_WARM_SHELLS_PER_WORKSPACE,
    ) -> None:
        self.backend = backend
        self.max_sessions_per_workspace = max_sessions_per_workspace
        self.shell_config = shell_config or ShellConfig()
        self.keep_spare_shells = keep_spare_shells
        self._sessions: dict[str, Session] = {}
        # Ids being created right now: reserved so two creates of one id cannot both succeed.
        self._creating: dict[str, str] = {}
        self._spares: dict[str, asyncio.Task[Shell]] = {}
        # Idle warm shells of sessionless executions, per workspace (most recent last).
        self.warm_shells_per_workspace = warm_shells_per_workspace
        self._warm: dict[str, list[Shell]] = {}
        self._sessionless: set[Execution] = set()
        self._closing = False
        # Background closes of ended shells: referenced so they are not collected mid-way.
        self._background: set[asyncio.Task[None]] = set()

    # ---- sessions ------------------------------------------------------------------------------

    async def create(self, workspace: WorkspaceInfo, session_id: str | None = None) -> Session:
        """Start a session's shell in `workspace`. Raises InvalidArgument (bad id), AlreadyExists,
        ResourceExhausted (too many sessions in the workspace), Unavailable (shutting down)."""
        if self._closing:
            raise errors.Unavailable("the executor is shutting down")
        if session_id:
            if not SESSION_ID.fullmatch(session_id):
                raise errors.InvalidArgument("session_id", "use 1 to 128 letters, digits, '.', '_' or '-'")
            if session_id in self._sessions or session_id in self._creating:
                raise errors.AlreadyExists(f"session {session_id!r} already exists")
        else:
            session_id = "se_" + secrets.token_hex(8)
        if self.count(workspace.id) >= self.max_sessions_per_workspace:
            raise errors.ResourceExhausted(
                f"workspace {workspace.id!r} already has {self.max_sessions_per_workspace} sessions; "
                "close some (CloseSession) first"
            )
        self._creating[session_id] = workspace.id
        try:
            shell = await self._open_shell(workspace)
        finally:
            del self._creating[session_id]
        session = Session(id=session_id, workspace_id=workspace.id, shell=shell)
        self._sessions[session_id] = session
        log.info("session_created", session_id=session_id, workspace_id=workspace.id, pid=shell.pid)
        return session

    def get(self, session_id: str) -> Session:
        """The session; NotFound if there is none."""
        session = self._sessions.get(session_id)
        if session is None:
            raise errors.NotFound(f"session {session_id!r} not found")
        return session

    def list(self, workspace_id: str | None = None) -> list[Session]:
        """Sessions of one workspace, or of all, oldest first."""
        return [s for s in self._sessions.values() if not workspace_id or s.workspace_id == workspace_id]

    def count(self, workspace_id: str | None = None) -> int:
        return len(self.list(workspace_id)) + sum(
            1 for w in self._creating.values() if not workspace_id or w == workspace_id
        )

    async def close(self, session_id: str) -> None:
        """End the session: its running command (if any) is killed as CANCELLED, its shell and
        every process it started are killed. NotFound if unknown."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise errors.NotFound(f"session {session_id!r} not found")
        await self._end_session(session, StopRequest.CANCEL)
        log.info("session_closed", session_id=session_id, workspace_id=session.workspace_id)

    async def close_workspace(self, workspace_id: str) -> None:
        """Close every session and the spare shell of a workspace (it is being stopped/deleted)."""
        sessions = [s for s in self._sessions.values() if s.workspace_id == workspace_id]
        for session in sessions:
            self._sessions.pop(session.id, None)
        spare = self._spares.pop(workspace_id, None)
        warm = self._warm.pop(workspace_id, [])
        await asyncio.gather(
            *(self._end_session(s, StopRequest.CANCEL) for s in sessions),
            self._discard_spare(spare),
            *(shell.close() for shell in warm),
        )

    async def shutdown(self, grace: float) -> None:
        """Refuse new sessions; running commands get `grace` seconds, then are killed (SHUTDOWN);
        then every shell is closed. Workspaces themselves keep running."""
        self._closing = True
        running = [s.current for s in self._sessions.values() if s.current is not None]
        running += list(self._sessionless)
        if running:
            await asyncio.wait([asyncio.ensure_future(e.wait()) for e in running], timeout=max(grace, 0))
            for execution in running:
                execution.request_stop(StopRequest.SHUTDOWN)
            await asyncio.wait([asyncio.ensure_future(e.wait()) for e in running], timeout=5)
        sessions = list(self._sessions.values())
        self._sessions.clear()
        spares = list(self._spares.values())
        self._spares.clear()
        warm = [shell for shells in self._warm.values() for shell in shells]
        self._warm.clear()
        await asyncio.gather(
            *(s.shell.close() for s in sessions),
            *(self._discard_spare(t) for t in spares),
            *(shell.close() for shell in warm),
            return_exceptions=True,
        )

    # ---- running commands ----------------------------------------------------------------------

    def acquire(self, workspace_id: str, session_id: str, execution: Execution) -> Session:
        """Mark the session busy with `execution`, or refuse at once. No await in here: the
        check and the mark are one step for the event loop."""
        session = self._sessions.get(session_id)
        if session is None or session.workspace_id != workspace_id:
            raise errors.NotFound(f"session {session_id!r} not found in workspace {workspace_id!r}")
        if session.current is None and session.status == ENDED:
            raise errors.FailedPrecondition(
                f"session {session_id!r} has ended ({session.end_message}); create a new session"
            )
        if session.current is not None:
            raise errors.FailedPrecondition(
                f"session {session_id!r} is busy running execution {session.current.id}; "
                "wait for it to finish or stop it"
            )
        session.current = execution
        return session

    async def run_in_session(self, session: Session, execution: Execution) -> None:
        """Drive `execution` on the session's shell to its end (the session was acquired)."""
        try:
            finished = await session.shell.run(execution)
        except Exception as exc:  # a bug or a broken transport: the command still gets its end
            log.exception("execution_failed", execution_id=execution.id, session_id=session.id)
            await session.shell.close()
            finished = Finished(
                None, EndReason.SIGNALED, execution.truncated, True, f"the session's shell failed: {exc}"
            )
        session.command_count += 1
        session.current = None
        if session.shell.ended:
            session.end_message = session.shell.end_message or "ended"
            # An ended session stays listed (ENDED) until closed, so its end can be seen.
            self._in_background(session.shell.close())
        # Released first: a client that sees the end may send its next command at once.
        await execution.finish(finished)

    async def run_on_terminal(
        self, workspace: WorkspaceInfo, session: Session | None, execution: Execution
    ) -> None:
        """Drive a tty execution to its end: on a new terminal, with the session's state loaded
        before and kept after when it runs in `session` (acquired already), see terminal.py."""
        spec = execution.spec
        finished: Finished | None = None
        terminal: Terminal | None = None
        if session is None:
            self._sessionless.add(execution)
        try:
            state: str | None = None
            if session is not None:
                listing = await self._hidden_command(session, "set; export -p")
                state = session_state_for_terminal(listing)
                if len(state.encode("utf-8", "surrogateescape")) > MAX_STATE_BYTES:
                    finished = Finished(
                        None,
                        EndReason.EXITED,
                        message=f"the session's variables take more than {MAX_STATE_BYTES} bytes: "
                        "too many to hand to a terminal; unset some or run without tty",
                    )
            if finished is None:
                env = {**workspace.env, "TERM": "xterm"}
                argv = wrapper_argv(self.shell_config.shell, spec.shell_text(), state)
                transport = await self.backend.open_tty(workspace, argv, env, spec.rows, spec.cols)
                try:
                    terminal = Terminal(transport, execution, in_session=session is not None)
                    finished = await terminal.run()
                finally:
                    await transport.close()
            if session is not None and terminal is not None and terminal.state is not None:
                await self._hidden_command(
                    session,
                    # `set --` too: the positional parameters are saved from the command's own.
                    f"command eval {shell_quote(terminal.state)} >/dev/null 2>&1; "
                    'cd -- "$PWD" 2>/dev/null; eval "set -- ${__fb_a-}"',
                )
        except Exception as exc:
            log.warning("tty_execution_failed", execution_id=execution.id, error=repr(exc))
            message = exc.message if isinstance(exc, errors.FireboxError) else f"the terminal failed: {exc}"
            finished = Finished(None, EndReason.SIGNALED, execution.truncated, False, message)
        finally:
            self._sessionless.discard(execution)
            if session is not None:
                session.command_count += 1
                session.current = None
        assert finished is not None
        await execution.finish(finished)

    async def _hidden_command(self, session: Session, script: str) -> bytes:
        """Run `script` in the session's shell for the executor itself; its stdout (bounded)."""
        hidden = Execution(ExecuteSpec(script=script, timeout=30), output_cap_bytes=MAX_STATE_BYTES * 2)
        out = bytearray()

        async def drain() -> None:
            async for event in hidden.events():
                if isinstance(event, Output):
                    out.extend(event.stdout)

        reader = asyncio.create_task(drain())
        try:
            finished = await session.shell.run(hidden)
            await hidden.finish(finished)
            await reader
        finally:
            reader.cancel()
        if finished.exit_code is None:
            raise errors.Unavailable(f"the session's shell failed: {finished.message}")
        return bytes(out)

    async def take_fresh_shell(self, workspace: WorkspaceInfo) -> Shell:
        """A shell that has run nothing: the pre-started spare when it is ready, else a new one."""
        if self._closing:
            raise errors.Unavailable("the executor is shutting down")
        warm = self._warm.get(workspace.id)
        while warm:
            candidate = warm.pop()
            if not candidate.ended:
                return candidate
            self._in_background(candidate.close())
        shell: Shell | None = None
        spare = self._spares.pop(workspace.id, None)
        if spare is not None and spare.done() and not spare.cancelled() and spare.exception() is None:
            candidate = spare.result()
            if not candidate.ended:
                shell = candidate
            else:
                self._in_background(candidate.close())
        elif spare is not None:
            # Still starting: wait for it rather than start a second one.
            try:
                candidate = await spare
                shell = None if candidate.ended else candidate
            except Exception:
                shell = None
        if shell is None:
            shell = await self._open_shell(workspace)
        self._refill_spare(workspace)
        return shell

    def prestart(self, workspace: WorkspaceInfo) -> None:
        """Start the workspace's spare shell now (in the background), so that its first
        sessionless Execute does not wait for one. Call when a workspace starts running."""
        self._refill_spare(workspace)

    async def run_sessionless(
        self,
        workspace: WorkspaceInfo,
        shell: Shell,
        execution: Execution,
        release: Callable[[], None] | None = None,
    ) -> None:
        """Run `execution` in a subshell of `shell`; then kill what it left in the shell's group
        and keep the shell warm for the next one (or close it). `release` (its admission place)
        is called once the shell is back or closed."""
        self._sessionless.add(execution)
        try:
            try:
                finished = await shell.run(execution, isolated=True)
            except Exception as exc:
                log.exception("execution_failed", execution_id=execution.id)
                finished = Finished(
                    None, EndReason.SIGNALED, execution.truncated, False, f"the shell failed: {exc}"
                )
            finally:
                self._sessionless.discard(execution)
            # A sessionless command never "ends a session": there is none.
            finished = dataclasses.replace(
                finished, session_ended=False, message=finished.message.replace("; the session has ended", "")
            )
            await execution.finish(finished)
            await self._keep_warm(workspace.id, shell)
        finally:
            if release is not None:
                release()

    async def _keep_warm(self, workspace_id: str, shell: Shell) -> None:
        warm = self._warm.setdefault(workspace_id, [])
        if (
            self._closing
            or len(warm) >= self.warm_shells_per_workspace
            or not await shell.sweep_leftovers()
            # The workspace was stopped or deleted meanwhile (close_workspace took its list).
            or self._warm.get(workspace_id) is not warm
        ):
            await shell.close()
            return
        warm.append(shell)

    # ---- internals -----------------------------------------------------------------------------

    async def _open_shell(self, workspace: WorkspaceInfo) -> Shell:
        async def opener(argv: list[str]) -> ShellTransport:
            return await self.backend.open_shell(workspace, argv, dict(workspace.env), session=True)

        async def oom_kills() -> int | None:
            return await self.backend.oom_kills(workspace)

        return await Shell.open(opener, self.shell_config, oom_kills=oom_kills)

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _refill_spare(self, workspace: WorkspaceInfo) -> None:
        if not self.keep_spare_shells or self._closing or workspace.id in self._spares:
            return
        task = asyncio.create_task(self._open_shell(workspace))
        # A failed spare is simply not used; say why once.
        task.add_done_callback(
            lambda t: (
                t.cancelled()
                or t.exception() is None
                or log.warning("spare_shell_failed", workspace_id=workspace.id, error=repr(t.exception()))
            )
        )
        self._spares[workspace.id] = task

    async def _discard_spare(self, spare: asyncio.Task[Shell] | None) -> None:
        if spare is None:
            return
        try:
            shell = await spare
        except BaseException:
            return
        await shell.close()

    async def _end_session(self, session: Session, why: StopRequest) -> None:
        session.end_message = session.end_message or "closed"
        if session.current is not None:
            execution = session.current
            execution.request_stop(why)
            try:
                await asyncio.wait_for(execution.wait(), 5)
            except TimeoutError:
                pass
        await session.shell.close()
