"""The tools offered to the model: built-ins (shell, read_file, write_file, load_skill, and the
background-process tools of process_tools.py) and the executor's named tools (run through Step),
with what each needs under an approval policy."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agent_service import process_tools
from agent_service.approvals import is_read_only_command
from agent_service.executor_client import ExecutorClient
from agent_service.generation import SHELL_TOOL, SHELL_TOOL_NAME
from agent_service.skills import LOAD_SKILL_TOOL_NAME, SkillLibrary
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError
from firebox.common.logging import get_logger
from firebox.executor.v1 import executor_pb2

log = get_logger("firebox.agent.tools")

READ_FILE_TOOL_NAME = "read_file"
WRITE_FILE_TOOL_NAME = "write_file"
BUILTIN_NAMES = frozenset(
    {SHELL_TOOL_NAME, READ_FILE_TOOL_NAME, WRITE_FILE_TOOL_NAME, LOAD_SKILL_TOOL_NAME} | process_tools.NAMES
)
# How long the executor's tool list is reused before it is asked again.
NAMED_TOOLS_TTL_SECONDS = 30.0

READ_FILE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": READ_FILE_TOOL_NAME,
        "description": (
            "Read a text file in the workspace (paths relative to /workspace). Long files are cut; "
            "the result says how many bytes there were."
        ),
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "the file, e.g. src/main.py"}},
            "required": ["path"],
        },
    },
}
WRITE_FILE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": WRITE_FILE_TOOL_NAME,
        "description": (
            "Write a whole text file in the workspace (paths relative to /workspace), replacing it if it "
            "exists and creating missing directories."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "the file, e.g. notes/todo.md"},
                "content": {"type": "string", "description": "the file's entire new content"},
            },
            "required": ["path", "content"],
        },
    },
}


def named_tool_spec(tool: executor_pb2.Tool) -> dict[str, Any]:
    """An executor tool as an OpenAI function tool."""
    try:
        parameters = json.loads(tool.args_schema_json) if tool.args_schema_json else {}
    except ValueError:
        parameters = {}
    if not isinstance(parameters, dict) or not parameters:
        parameters = {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": parameters},
    }


@dataclass
class OfferedTools:
    """The tools of one model call, in the order offered."""

    specs: list[dict[str, Any]]
    named: dict[str, executor_pb2.Tool] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [s["function"]["name"] for s in self.specs]


def needs_approval(
    policy: int, name: str, arguments: dict[str, Any], offered: OfferedTools, prefixes: tuple[str, ...]
) -> str:
    """Why this call must wait for a person under `policy`, or "" when it may run at once."""
    if name == LOAD_SKILL_TOOL_NAME or policy == agent_pb2.APPROVAL_POLICY_NEVER:
        return ""
    if policy == agent_pb2.APPROVAL_POLICY_ALWAYS:
        return "the approval policy is ALWAYS"
    if name in (SHELL_TOOL_NAME, process_tools.EXEC_COMMAND):
        command = str(arguments.get("command", ""))
        if is_read_only_command(command, prefixes):
            return ""
        return "the command is not a plain read-only command from the allowlist"
    if name == process_tools.WRITE_STDIN:
        return "" if not arguments.get("chars") else "it types at a running process"
    if name in (READ_FILE_TOOL_NAME, process_tools.STOP_PROCESS):
        return ""
    if name == WRITE_FILE_TOOL_NAME:
        return "it writes a file"
    tool = offered.named.get(name)
    if tool is not None and tool.read_only:
        return ""
    return f"the tool {name!r} is not declared read-only"


def approval_text(name: str, arguments: dict[str, Any]) -> str:
    """What the person is asked to approve: the command for shell, the call otherwise."""
    if name in (SHELL_TOOL_NAME, process_tools.EXEC_COMMAND):
        return str(arguments.get("command", ""))
    return json.dumps(arguments, ensure_ascii=False)


class ToolCatalog:
    """Builds the tool list of each model call; caches the executor's named tools briefly."""

    def __init__(self, executor: ExecutorClient, skills: SkillLibrary) -> None:
        self._executor = executor
        self._skills = skills
        self._named: list[executor_pb2.Tool] = []
        self._fetched_at = float("-inf")

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
            kept.append(tool)
        self._named, self._fetched_at = kept, time.monotonic()
        return kept

    async def offered(self) -> OfferedTools:
        specs: list[dict[str, Any]] = [SHELL_TOOL, READ_FILE_TOOL, WRITE_FILE_TOOL, *process_tools.SPECS]
        if self._skills.skills:
            specs.append(self._skills.tool())
        named = await self.named_tools()
        specs.extend(named_tool_spec(t) for t in named)
        return OfferedTools(specs, {t.name: t for t in named})
