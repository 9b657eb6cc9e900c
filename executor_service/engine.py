"""The engine that starts executions: in a named session's shell, on a terminal, or in a fresh
shell under admission control. It depends on the execution types (execution.py) and the session
layer (sessions.py); neither depends on it."""

from __future__ import annotations

import asyncio

from executor_service.admission import Admission
from executor_service.backend import WorkspaceBackend, WorkspaceInfo
from executor_service.execution import DEFAULT_OUTPUT_CAP_BYTES, ExecuteSpec, Execution
from executor_service.sessions import SessionManager


class ExecutionEngine:
    """Starts executions: in a named session's shell (state kept) or in a fresh shell (nothing
    kept; taken from the workspace's pre-started spare so that it costs no `docker exec`)."""

    def __init__(
        self,
        backend: WorkspaceBackend,
        sessions: SessionManager,
        *,
        output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES,
        admission: Admission | None = None,
    ) -> None:
        self.backend = backend
        self.sessions = sessions
        self.output_cap_bytes = output_cap_bytes
        # Executions not yet ended, per workspace: a workspace with any is never idle.
        self._running: dict[str, int] = {}
        # Bounds sessionless executions (a named session runs one at a time on its own shell).
        self.admission = admission or Admission()

    def running_count(self, workspace_id: str) -> int:
        return self._running.get(workspace_id, 0)

    async def start(
        self, workspace: WorkspaceInfo, spec: ExecuteSpec, *, output_cap_bytes: int | None = None
    ) -> Execution:
        """Start `spec` and return at once. Raises NotFound (unknown session), FailedPrecondition
        (session busy — naming the running execution — or ended), InvalidArgument.
        `output_cap_bytes` replaces the engine's cap (a background execution has none: its
        buffer bounds what is kept)."""
        spec.check()
        execution = Execution(spec, output_cap_bytes=output_cap_bytes or self.output_cap_bytes)
        if spec.tty:
            session = (
                self.sessions.acquire(workspace.id, spec.session_id, execution) if spec.session_id else None
            )
            execution.task = asyncio.create_task(self.sessions.run_on_terminal(workspace, session, execution))
        elif spec.session_id:
            # Marks the session busy atomically (no await between the check and the mark).
            session = self.sessions.acquire(workspace.id, spec.session_id, execution)
            execution.task = asyncio.create_task(self.sessions.run_in_session(session, execution))
        else:
            ticket = await self.admission.admit(workspace.id)
            try:
                shell = await self.sessions.take_fresh_shell(workspace)
            except BaseException:
                ticket.release()
                raise
            execution.task = asyncio.create_task(
                self.sessions.run_sessionless(workspace, shell, execution, ticket.release)
            )
        self._running[workspace.id] = self._running.get(workspace.id, 0) + 1
        execution.task.add_done_callback(lambda _task: self._ended(workspace.id))
        return execution

    def _ended(self, workspace_id: str) -> None:
        left = self._running.get(workspace_id, 1) - 1
        if left > 0:
            self._running[workspace_id] = left
        else:
            self._running.pop(workspace_id, None)
