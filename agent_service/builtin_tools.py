"""Firebox's own tools: `shell` in the session's shell session, `read_file` / `write_file`
through the executor's file RPCs, the executor's named tools through Step, and `load_skill`.

Each is a `Tool` (tools.py); the loop never names them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct

from agent_service.executor_client import ExecutorError
from agent_service.executor_pool import ExecutorPool
from agent_service.generation import SHELL_TOOL
from agent_service.session_workspace import SessionWorkspaces
from agent_service.skills import SkillLibrary
from agent_service.tool_output import RUN_EVENT_OUTPUT_CAP_BYTES, tool_result_text
from agent_service.tools import (
    BUILTIN_NAMES,
    MCP_TOOL_PREFIX,
    READ_FILE_TOOL_NAME,
    WRITE_FILE_TOOL_NAME,
    Tool,
    ToolRun,
    always_runs,
    function_spec,
    never_read_only,
    shell_on_request,
)
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError
from firebox.common.headtail import HeadTail
from firebox.common.logging import get_logger
from firebox.executor.v1 import executor_pb2

log = get_logger("firebox.agent.builtin_tools")

# How long the executor's tool list is reused before it is asked again.
NAMED_TOOLS_TTL_SECONDS = 30.0

READ_FILE_TOOL: dict[str, Any] = function_spec(
    READ_FILE_TOOL_NAME,
    "Read a text file in the workspace (paths relative to /workspace). Long files are cut; "
    "the result says how many bytes there were.",
    {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "the file, e.g. src/main.py"}},
        "required": ["path"],
    },
)
WRITE_FILE_TOOL: dict[str, Any] = function_spec(
    WRITE_FILE_TOOL_NAME,
    "Write a whole text file in the workspace (paths relative to /workspace), replacing it if it "
    "exists and creating missing directories.",
    {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "the file, e.g. notes/todo.md"},
            "content": {"type": "string", "description": "the file's entire new content"},
        },
        "required": ["path", "content"],
    },
)


def named_tool_spec(tool: executor_pb2.Tool) -> dict[str, Any]:
    """An executor tool as an OpenAI function tool."""
    try:
        parameters = json.loads(tool.args_schema_json) if tool.args_schema_json else {}
    except ValueError:
        parameters = {}
    return function_spec(tool.name, tool.description, parameters)


def _writes_a_file(_arguments: dict[str, Any], _prefixes: object) -> str:
    return "it writes a file"


class BuiltinTools:
    """The built-in tools, and the executor's named tools (its list cached briefly)."""

    def __init__(
        self,
        executor: ExecutorPool,
        workspaces: SessionWorkspaces,
        skills: SkillLibrary,
        tool_output_limit: int,
        tool_timeout: float,
    ) -> None:
        self._executor = executor
        self._workspaces = workspaces
        self._skills = skills
        self._output_limit = tool_output_limit
        self._timeout = tool_timeout
        self._named: list[executor_pb2.Tool] = []
        self._fetched_at = float("-inf")
        self._fixed = [
            Tool(
                SHELL_TOOL,
                self._shell,
                shell_on_request,
                string_arguments=("command",),
                edited_argument="command",
            ),
            Tool(READ_FILE_TOOL, self._read_file, always_runs, string_arguments=("path",)),
            Tool(
                WRITE_FILE_TOOL,
                self._write_file,
                _writes_a_file,
                writes_files=True,
                string_arguments=("path", "content"),
            ),
        ]

    async def tools(self, session: agent_pb2.Session | None) -> list[Tool]:
        tools = list(self._fixed)
        if self._skills.skills:
            tools.append(
                Tool(
                    self._skills.tool(),
                    self._load_skill,
                    always_runs,
                    asks=False,
                    string_arguments=("name",),
                    source="skill",
                )
            )
        for named in await self.named_tools():
            rule = always_runs if named.read_only else never_read_only(named.name)
            tools.append(Tool(named_tool_spec(named), self._step, rule, source="executor"))
        return tools

    async def named_tools(self) -> list[executor_pb2.Tool]:
        if time.monotonic() - self._fetched_at < NAMED_TOOLS_TTL_SECONDS:
            return self._named
        try:
            tools = await self._executor.list_tools_now()
        except FireboxError as exc:
            # No executor (or an old one): offer the built-ins; the next run asks again.
            log.debug("named_tools_unavailable", error=exc.message)
            return self._named
        kept = []
        for tool in tools:
            if tool.name in BUILTIN_NAMES:
                log.warning("named_tool_shadows_builtin", name=tool.name)
                continue
            if tool.name.startswith(MCP_TOOL_PREFIX):
                log.warning("named_tool_takes_mcp_prefix", name=tool.name)
                continue
            kept.append(tool)
        self._named, self._fetched_at = kept, time.monotonic()
        return kept

    async def _load_skill(self, run: ToolRun) -> str:
        skill = self._skills.get(str(run.arguments.get("name", "")))
        if skill is None:
            return run.finish(
                f"[error: no skill {run.arguments.get('name')!r}; skills: {', '.join(self._skills.skills)}]"
            )
        return run.finish(f"Skill {skill.name}:\n\n{skill.instructions}", exit_code=0)

    async def _read_file(self, run: ToolRun) -> str:
        workspace_id, _shell = await self._workspaces.ensure(run.session)
        limit = self._output_limit
        path = str(run.arguments["path"])
        info, data = await self._executor.download_file(workspace_id, path, limit + 1)
        text = data[:limit].decode(errors="replace")
        if info.size > limit or len(data) > limit:
            text += f"\n[... cut: showing the first {limit} of {info.size} bytes ...]"
        if not run.live.done:
            run.live.emit(
                tool_output=agent_pb2.ToolOutput(tool_call_id=run.call.id, stdout_data=data[:limit])
            )
        return run.finish(text, exit_code=0)

    async def _write_file(self, run: ToolRun) -> str:
        workspace_id, _shell = await self._workspaces.ensure(run.session)
        path = str(run.arguments["path"])
        data = run.arguments["content"].encode()
        response = await self._executor.upload_file(workspace_id, path, data)
        return run.finish(f"wrote {len(data)} bytes to {response.file.path or path}", exit_code=0)

    async def _step(self, run: ToolRun) -> str:
        live, call = run.live, run.call
        workspace_id, _shell = await self._workspaces.ensure(run.session)
        args = Struct()
        args.update(run.arguments)
        timeout = self._timeout
        request = executor_pb2.StepRequest(
            workspace_id=workspace_id,
            action=executor_pb2.Action(tool_name=call.name, args=args),
            timeout=Duration(seconds=int(timeout), nanos=int((timeout % 1) * 1e9)),
            tool_call_id=call.id,
            run_id=live.id,
            agent_session_id=run.session.id,
        )
        response = await self._executor.step(request, deadline=timeout + 30)
        out = response.observation.tool_output
        output = HeadTail(self._output_limit)
        output.add(out.stdout.encode())
        output.add(out.stderr.encode())
        if out.stdout or out.stderr:
            live.emit(
                tool_output=agent_pb2.ToolOutput(
                    tool_call_id=call.id, stdout_data=out.stdout.encode(), stderr_data=out.stderr.encode()
                )
            )
        result = tool_result_text(output, out.exit_status, out.end_reason, out.message)
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call.id,
                exit_code=out.exit_status,
                end_reason=out.end_reason,
                output_truncated=out.truncated or output.omitted > 0,
                result=result,
                execution_id=response.execution_id,
            )
        )
        return result

    async def _shell(self, run: ToolRun) -> str:
        live, session, call = run.live, run.session, run.call
        output = HeadTail(self._output_limit)
        dropped = False

        def on_output(stdout: bytes, stderr: bytes) -> None:
            nonlocal dropped
            output.add(stdout)
            output.add(stderr)
            size = len(stdout) + len(stderr)
            if live.output_bytes + size > RUN_EVENT_OUTPUT_CAP_BYTES:
                dropped = True
                return
            live.output_bytes += size
            live.emit(
                tool_output=agent_pb2.ToolOutput(tool_call_id=call.id, stdout_data=stdout, stderr_data=stderr)
            )

        outcome = None
        for attempt in (1, 2):
            try:
                workspace_id, shell_id = await self._workspaces.ensure(session)
                outcome = await self._executor.run_script(
                    workspace_id=workspace_id,
                    session_id=shell_id,
                    script=run.arguments["command"],
                    run_id=live.id,
                    tool_call_id=call.id,
                    agent_session_id=session.id,
                    timeout_seconds=self._timeout,
                    on_output=on_output,
                )
                break
            except ExecutorError as exc:
                if exc.code.name in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
                    raise  # the executor itself is the problem: the run fails and says so
                if exc.code.name == "NOT_FOUND" and attempt == 1:
                    # The shell (or its workspace) went away, e.g. the executor restarted: set up
                    # fresh ones and run the command there.
                    log.info("shell_session_lost", session_id=session.id, error=exc.message)
                    await self._workspaces.forget_shell(session)
                    continue
                return run.finish(f"[error: the executor refused the command: {exc.message}]")
        assert outcome is not None
        if outcome.session_ended:
            await self._workspaces.forget_shell(session)
        result = tool_result_text(output, outcome.exit_code, outcome.end_reason, outcome.message)
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call.id,
                exit_code=outcome.exit_code,
                end_reason=outcome.end_reason,  # type: ignore[arg-type]
                output_truncated=outcome.output_truncated or output.omitted > 0 or dropped,
                result=result,
                execution_id=outcome.execution_id,
            )
        )
        return result
