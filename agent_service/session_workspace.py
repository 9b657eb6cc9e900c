"""Each agent session's workspace and shell session on the executor, created on first use."""

from __future__ import annotations

from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.store import Store
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import NotFound
from firebox.common.logging import get_logger
from firebox.executor.v1 import executor_pb2

log = get_logger("firebox.agent.session_workspace")

# Labels put on the workspaces the agent creates, so they can be traced back to a session.
LABEL_AGENT_SESSION = "dev.firebox.agent-session"


class SessionWorkspaces:
    """Finds (or makes) the workspace and shell session of an agent session."""

    def __init__(self, store: Store, executor: ExecutorPool) -> None:
        self._store = store
        self._executor = executor

    async def ensure(self, session: agent_pb2.Session) -> tuple[str, str]:
        """The session's workspace and shell session, created on first use (and again when the
        executor no longer knows them). No lock: a session has one active run at a time."""
        stored = await self._store.get_session(session.id)
        if stored is None:
            raise NotFound(f"session {session.id} was deleted")
        workspace_id, shell_id = stored.workspace_id, stored.shell_session_id
        if workspace_id and shell_id:
            return workspace_id, shell_id
        if workspace_id:
            try:
                shell_id = (await self._executor.create_shell_session(workspace_id)).id
            except ExecutorError as exc:
                if exc.code.name != "NOT_FOUND":
                    raise
                log.info("workspace_lost", session_id=session.id, workspace_id=workspace_id)
                workspace_id = ""
        if not workspace_id:
            workspace = await self._executor.create_workspace(
                session.settings.workspace_image,
                workspace_policy(session.settings),
                {LABEL_AGENT_SESSION: session.id},
            )
            workspace_id = workspace.id
            shell_id = (await self._executor.create_shell_session(workspace_id)).id
        stored.workspace_id, stored.shell_session_id = workspace_id, shell_id
        stored.update_time.GetCurrentTime()
        await self._store.update_session(stored)
        session.workspace_id, session.shell_session_id = workspace_id, shell_id
        log.info(
            "workspace_ready", session_id=session.id, workspace_id=workspace_id, shell_session_id=shell_id
        )
        return workspace_id, shell_id

    async def forget_shell(self, session: agent_pb2.Session) -> None:
        stored = await self._store.get_session(session.id)
        if stored is None:
            return
        stored.shell_session_id = session.shell_session_id = ""
        await self._store.update_session(stored)


def sandbox_mode(session: agent_pb2.Session) -> int:
    return session.settings.sandbox_mode or agent_pb2.SANDBOX_MODE_WORKSPACE_WRITE


def workspace_policy(settings: agent_pb2.SessionSettings) -> executor_pb2.IsolationPolicy | None:
    """The session's workspace policy with the sandbox mode applied: READ_ONLY makes /workspace
    read-only, FULL turns the network on, WORKSPACE_WRITE (the default) neither. A session with
    no sandbox mode set keeps what its workspace_policy says. The session's writable_paths
    replace the policy's."""
    policy = executor_pb2.IsolationPolicy()
    if settings.HasField("workspace_policy"):
        policy.CopyFrom(settings.workspace_policy)
    if settings.writable_paths:
        del policy.writable_paths[:]
        policy.writable_paths.extend(settings.writable_paths)
    mode = settings.sandbox_mode
    if mode != agent_pb2.SANDBOX_MODE_UNSPECIFIED:
        policy.read_only = mode == agent_pb2.SANDBOX_MODE_READ_ONLY
        policy.network = mode == agent_pb2.SANDBOX_MODE_FULL
    elif not settings.HasField("workspace_policy") and not settings.writable_paths:
        return None
    return policy
