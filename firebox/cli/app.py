"""What every command shares: the client, and turning failures into one line and an exit code."""

from __future__ import annotations

import grpc

from firebox.cli import exit_codes
from firebox.client import ConnectionSettings, FireboxClient, FireboxRpcError
from firebox.client.settings import ENV_AGENT, ENV_EXECUTOR, ENV_TOKEN


class CliError(Exception):
    """A failure the CLI reports as one line on stderr with `exit_code`."""

    def __init__(self, message: str, exit_code: int = exit_codes.FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class App:
    """The settings from flags and environment, and a client opened on first use."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._client: FireboxClient | None = None

    @property
    def client(self) -> FireboxClient:
        if self._client is None:
            self._client = FireboxClient(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# What each RPC does, as the start of an error line: "cannot <phrase>: <why>".
_ACTIONS = {
    "CreateWorkspace": "create the workspace",
    "GetWorkspace": "get the workspace",
    "ListWorkspaces": "list workspaces",
    "StartWorkspace": "start the workspace",
    "StopWorkspace": "stop the workspace",
    "DeleteWorkspace": "delete the workspace",
    "PauseWorkspace": "pause the workspace",
    "ResumeWorkspace": "resume the workspace",
    "CreateSnapshot": "snapshot the workspace",
    "ListSnapshots": "list snapshots",
    "DeleteSnapshot": "delete the snapshot",
    "CreateSession": "create the session",
    "ListSessions": "list sessions",
    "CloseSession": "close the shell session",
    "Execute": "run the command",
    "ListExecutions": "list the executions",
    "AttachExecution": "attach to the execution",
    "StopExecution": "stop the execution",
    "ForwardPort": "forward the port",
    "GetServerInfo": "get the server info",
    "GetSession": "get the session",
    "DeleteSession": "delete the session",
    "SendMessage": "send the message",
    "StreamRun": "follow the run",
    "CancelRun": "cancel the run",
    "GetRun": "get the run",
    "ListRuns": "list runs",
    "Generate": "generate",
    "LogEvents": "log the events",
    "ResolveApproval": "answer the approval request",
    "CompactSession": "compact the session",
    "EditMessage": "edit the message",
    "Health.Check": "check health",
}

_ENV_FOR = {"agent": ENV_AGENT, "executor": ENV_EXECUTOR}
_FLAG_FOR = {"agent": "--agent", "executor": "--executor"}


def describe(error: FireboxRpcError) -> str:
    """One line: what failed, why, and what to do about it."""
    service, target = error.service, error.target
    if error.unreachable:
        return (
            f"cannot reach the {service} at {target}: {error.reason()}. Start it with `make run` "
            f"or point {_FLAG_FOR[service]} / {_ENV_FOR[service]} at it."
        )
    action = _ACTIONS.get(error.method, error.method)
    why = error.reason().rstrip(".")
    code = error.code
    if code == grpc.StatusCode.UNAUTHENTICATED:
        hint = f" Pass the server's token with --token or {ENV_TOKEN}."
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = (
            f" The {service} at {target} did not answer in time; check that it is healthy (`firebox status`)."
        )
    elif code == grpc.StatusCode.UNAVAILABLE:
        hint = f" The {service} at {target} is not serving; check `firebox status`."
    elif code == grpc.StatusCode.INTERNAL:
        hint = f" This is a bug in the {service}; its log has the details."
    else:
        hint = ""
    return f"cannot {action}: {why}.{hint}"


def exit_code_for(error: FireboxRpcError) -> int:
    return exit_codes.for_status(error.code)
