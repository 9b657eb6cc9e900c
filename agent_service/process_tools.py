"""Background-process tools for the model, in the shape Codex's unified exec has proved:

- `exec_command(command, yield_time_ms)`: start a command in the workspace as a background
  execution; wait up to `yield_time_ms` for it. A command that ends by then returns its output
  and exit code like `shell`; one still running returns its output so far and a `session_id`.
- `write_stdin(session_id, chars, yield_time_ms)`: type `chars` at it (may be empty: just
  read), wait, and return only the output that is new since the last call.
- `stop_process(session_id)`: kill it (and what it started).

So a model can start a dev server, test it with `shell` (curl…), read the server's log and stop
it. Each process is an executor background execution (ListExecutions shows it; its output is
bounded there); which offset the model has read up to is kept here, per process.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.session_workspace import SessionWorkspaces
from agent_service.tools import Tool, ToolRun, always_runs, shell_on_request
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError, InvalidArgument
from firebox.common.headtail import HeadTail

EXEC_COMMAND = "exec_command"
WRITE_STDIN = "write_stdin"
STOP_PROCESS = "stop_process"
NAMES = frozenset({EXEC_COMMAND, WRITE_STDIN, STOP_PROCESS})
DEFAULT_YIELD_MS = 1000
MAX_YIELD_MS = 30_000
# Processes whose read position is remembered (the oldest is forgotten past this).
MAX_TRACKED = 256

_SESSION_ID = {"type": "string", "description": "the session_id exec_command returned"}
_YIELD = {
    "type": "integer",
    "description": f"how long to wait for output, in ms (default {DEFAULT_YIELD_MS}, at most {MAX_YIELD_MS})",
}
SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": EXEC_COMMAND,
            "description": (
                "Start a command in the workspace that may keep running (a server, a watcher, an interactive "
                "program). Waits yield_time_ms: if it ended, returns its output and exit code; otherwise its "
                "output so far and a session_id for write_stdin and stop_process. It does not share the "
                "shell tool's working directory or variables: cd in the command itself."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "the shell command to start"},
                    "yield_time_ms": _YIELD,
                },
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": WRITE_STDIN,
            "description": (
                "Write chars to a running process's standard input (empty: only read), wait yield_time_ms, and "
                "return the output it printed since the last call, and its exit code if it has ended."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "session_id": _SESSION_ID,
                    "chars": {"type": "string", "description": "text to send, e.g. a line ending in \\n"},
                    "yield_time_ms": _YIELD,
                },
                "required": ["session_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": STOP_PROCESS,
            "description": "Kill a process started with exec_command, and everything it started.",
            "parameters": {
                "type": "object",
                "properties": {"session_id": _SESSION_ID},
                "required": ["session_id"],
            },
        },
    },
]


@dataclass
class _Tracked:
    workspace_id: str
    offset: int = 0


@dataclass
class ProcessResult:
    """What a tool call produced: the output to show (raw), and how to describe the process."""

    output: bytes
    exit_code: int
    status: str


def _types_at_a_process(arguments: dict[str, Any], _prefixes: Sequence[str]) -> str:
    return "it types at a running process" if arguments.get("chars") else ""


class ProcessTools:
    """The three tools, as a source of the tool registry, run against the executor pool in each
    session's workspace."""

    def __init__(self, executor: ExecutorPool, workspaces: SessionWorkspaces, output_limit: int) -> None:
        self._executor = executor
        self._workspaces = workspaces
        self._output_limit = output_limit
        self._tracked: collections.OrderedDict[str, _Tracked] = collections.OrderedDict()
        exec_spec, stdin_spec, stop_spec = SPECS
        self._tools = [
            Tool(
                exec_spec,
                self._handle,
                shell_on_request,
                string_arguments=("command",),
                edited_argument="command",
            ),
            Tool(stdin_spec, self._handle, _types_at_a_process, string_arguments=("session_id",)),
            Tool(stop_spec, self._handle, always_runs, string_arguments=("session_id",)),
        ]

    async def tools(self, session: agent_pb2.Session | None) -> list[Tool]:
        return list(self._tools)

    async def _handle(self, run: ToolRun) -> str:
        """One call in the session's workspace; the model is told the output (head and tail) and
        whether the process runs on."""
        try:
            workspace_id, _ = await self._workspaces.ensure(run.session)
            result = await self.run(
                run.call.name,
                run.arguments,
                workspace_id=workspace_id,
                run_id=run.live.id,
                tool_call_id=run.call.id,
                agent_session_id=run.session.id,
            )
        except ExecutorError as exc:
            if exc.code.name in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                raise
            return run.finish(f"[error: {exc.message}]")
        except FireboxError as exc:  # bad arguments
            return run.finish(f"[error: {exc.message}]")
        output = HeadTail(self._output_limit)
        output.add(result.output)
        if result.output:
            run.live.emit(
                tool_output=agent_pb2.ToolOutput(tool_call_id=run.call.id, stdout_data=result.output)
            )
        body = output.text()
        return run.finish(f"{body}\n[{result.status}]" if body else f"[{result.status}]", result.exit_code)

    async def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        workspace_id: str,
        run_id: str,
        tool_call_id: str,
        agent_session_id: str,
    ) -> ProcessResult:
        """One call. InvalidArgument for bad arguments or a session_id not started here."""
        wait = _yield_seconds(arguments)
        if name == EXEC_COMMAND:
            command = arguments.get("command")
            if not isinstance(command, str) or not command.strip():
                raise InvalidArgument("command", "give the command to start")
            execution_id = await self._executor.start_process(
                workspace_id=workspace_id,
                script=command,
                run_id=run_id,
                tool_call_id=tool_call_id,
                agent_session_id=agent_session_id,
            )
            self._track(execution_id, workspace_id)
            return await self._read(execution_id, wait, b"")
        execution_id = str(arguments.get("session_id", ""))
        tracked = self._tracked.get(execution_id)
        if tracked is None or tracked.workspace_id != workspace_id:
            raise InvalidArgument(
                "session_id", f"no process {execution_id!r} was started with exec_command here"
            )
        if name == WRITE_STDIN:
            chars = arguments.get("chars", "")
            if not isinstance(chars, str):
                raise InvalidArgument("chars", "must be a string")
            return await self._read(execution_id, wait, chars.encode())
        if name == STOP_PROCESS:
            await self._executor.stop_process(execution_id, workspace_id=workspace_id)
            return await self._read(execution_id, 5.0, b"", until_end=True)
        raise InvalidArgument("name", f"not a process tool: {name}")

    def _track(self, execution_id: str, workspace_id: str) -> None:
        self._tracked[execution_id] = _Tracked(workspace_id)
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)

    async def _read(
        self, execution_id: str, wait: float, data: bytes, until_end: bool = False
    ) -> ProcessResult:
        tracked = self._tracked[execution_id]
        got = await self._executor.read_process(
            workspace_id=tracked.workspace_id,
            execution_id=execution_id,
            after_offset=tracked.offset,
            wait_seconds=wait,
            max_bytes=self._output_limit * 4 if not until_end else 1 << 30,
            input_data=data,
        )
        tracked.offset = got.offset
        output = (
            f"[{got.skipped} bytes of earlier output were no longer kept]\n".encode() if got.skipped else b""
        ) + (got.output)
        if got.final is not None:
            self._tracked.pop(execution_id, None)
            code = got.final.exit_code.value if got.final.HasField("exit_code") else -1
            return ProcessResult(output, code, f"the process ended: {got.final.message}")
        return ProcessResult(output, -1, f"the process is still running; session_id: {execution_id}")


def _yield_seconds(arguments: dict[str, Any]) -> float:
    value = arguments.get("yield_time_ms", DEFAULT_YIELD_MS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgument("yield_time_ms", "must be a number of milliseconds")
    return min(float(value), MAX_YIELD_MS) / 1000
