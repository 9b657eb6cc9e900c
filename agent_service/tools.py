"""The tool registry: each tool the model may call is one `Tool` — its OpenAI function spec, its
handler, and what it needs under an approval policy — and the loop finds it by name.

The built-ins (shell, files, the executor's named tools, load_skill) live in builtin_tools.py;
the background-process tools (exec_command, write_stdin, stop_process) in process_tools.py;
tools from MCP servers in mcp_tools.py. A new kind of tool is a new source of `Tool`s for the
`ToolCatalog`, never a new branch in the loop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent_service.approvals import is_read_only_command, written_paths
from agent_service.generation import SHELL_TOOL_NAME
from agent_service.skills import LOAD_SKILL_TOOL_NAME
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError
from firebox.common.workspace_paths import is_writable, workspace_path

if TYPE_CHECKING:
    from agent_service.runs import LiveRun

READ_FILE_TOOL_NAME = "read_file"
WRITE_FILE_TOOL_NAME = "write_file"
# Names no executor tool may take: the built-ins and the background-process tools (process_tools.py).
BUILTIN_NAMES = frozenset(
    {SHELL_TOOL_NAME, READ_FILE_TOOL_NAME, WRITE_FILE_TOOL_NAME, LOAD_SKILL_TOOL_NAME}
    | {"exec_command", "write_stdin", "stop_process"}
)
# The names of MCP servers' tools (mcp__SERVER__TOOL); no other tool may take it.
MCP_TOOL_PREFIX = "mcp__"


@dataclass
class ToolRun:
    """One call of a tool, as its handler sees it."""

    live: LiveRun
    session: agent_pb2.Session
    call: agent_pb2.ToolCall
    arguments: dict[str, Any]
    # The model call that asked for it (joins training-log records).
    generation_id: str = ""

    def finish(self, result: str, exit_code: int = -1) -> str:
        return finish_call(self.live, self.call.id, result, exit_code)


def finish_call(live: LiveRun, call_id: str, result: str, exit_code: int = -1) -> str:
    """Tell the client a tool call ended with `result` (what the model is told) and return it."""
    live.emit(
        tool_call_finished=agent_pb2.ToolCallFinished(
            tool_call_id=call_id, exit_code=exit_code, result=result
        )
    )
    return result


def never_read_only(name: str) -> Callable[[dict[str, Any], Sequence[str]], str]:
    """The approval rule of a tool that may change anything: it always waits under ON_REQUEST."""

    def rule(_arguments: dict[str, Any], _prefixes: Sequence[str]) -> str:
        return f"the tool {name!r} is not declared read-only"

    return rule


def always_runs(_arguments: dict[str, Any], _prefixes: Sequence[str]) -> str:
    return ""


_SOURCES = {
    "builtin": agent_pb2.TOOL_SOURCE_BUILTIN,
    "skill": agent_pb2.TOOL_SOURCE_SKILL,
    "executor": agent_pb2.TOOL_SOURCE_EXECUTOR,
    "mcp": agent_pb2.TOOL_SOURCE_MCP,
}


@dataclass(frozen=True)
class Tool:
    """One tool: what the model is shown, how a call runs, and when it waits for a person."""

    # The OpenAI function tool offered to the model ({"type": "function", "function": {...}}).
    spec: dict[str, Any]
    # Runs one call to its end; returns what the model is told (and has emitted the finish).
    run: Callable[[ToolRun], Awaitable[str]]
    # Under ON_REQUEST: why a call waits for a person, "" when it may run at once.
    on_request: Callable[[dict[str, Any], Sequence[str]], str]
    # False for tools that never wait, whatever the policy (loading a skill changes nothing).
    asks: bool = True
    # Refused in a READ_ONLY sandbox.
    writes_files: bool = False
    # Arguments that must be strings (checked before approval and again after an edit).
    string_arguments: tuple[str, ...] = ()
    # The argument a person approves and may edit as plain text (the shell's command); with none,
    # the whole call is shown and edited as JSON.
    edited_argument: str = ""
    # Where it comes from, for ListTools: builtin, skill, executor or mcp (with the server's name
    # and the tool's own name there).
    source: str = "builtin"
    server: str = ""
    remote_name: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["function"]["name"])

    @property
    def description(self) -> str:
        return str(self.spec["function"].get("description", ""))

    def info(self) -> agent_pb2.ToolInfo:
        """The tool as ListTools shows it."""
        return agent_pb2.ToolInfo(
            name=self.name,
            description=self.description,
            parameters_json=json.dumps(self.spec["function"].get("parameters", {}), ensure_ascii=False),
            source=_SOURCES[self.source],
            mcp_server=self.server,
            mcp_tool=self.remote_name,
        )

    def check(self, arguments: dict[str, Any]) -> None:
        for key in self.string_arguments:
            if not isinstance(arguments.get(key), str):
                raise TypeError(f'"{key}" must be a string')

    def approval_text(self, arguments: dict[str, Any]) -> str:
        """What the person is asked to approve: the edited argument alone, or the whole call."""
        if self.edited_argument:
            return str(arguments.get(self.edited_argument, ""))
        return json.dumps(arguments, ensure_ascii=False)

    def edited(self, arguments: dict[str, Any], edited: str) -> dict[str, Any]:
        """The call's arguments after a person edited it."""
        if self.edited_argument:
            return {**arguments, self.edited_argument: edited}
        replaced = json.loads(edited)
        if not isinstance(replaced, dict):
            raise TypeError("an edited tool call must be a JSON object of arguments")
        self.check(replaced)
        return replaced


def function_spec(name: str, description: str, parameters: Any) -> dict[str, Any]:
    """An OpenAI function tool; a schema that is not a JSON object becomes an empty object schema."""
    if not isinstance(parameters, dict) or not parameters:
        parameters = {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def shell_on_request(arguments: dict[str, Any], prefixes: Sequence[str]) -> str:
    if is_read_only_command(str(arguments.get("command", "")), prefixes):
        return ""
    return "the command is not a plain read-only command from the allowlist"


@dataclass
class OfferedTools:
    """The tools of one model call, in the order offered."""

    tools: dict[str, Tool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Tool]) -> OfferedTools:
        offered = cls()
        for tool in tools:
            offered.tools.setdefault(tool.name, tool)
        return offered

    @property
    def specs(self) -> list[dict[str, Any]]:
        return [t.spec for t in self.tools.values()]

    def names(self) -> list[str]:
        return list(self.tools)

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)


def needs_approval(
    policy: int,
    tool: Tool,
    arguments: dict[str, Any],
    prefixes: Sequence[str],
    writable_paths: Sequence[str] = (),
    outside: Sequence[str] = (),
) -> str:
    """Why this call must wait for a person under `policy`, or "" when it may run at once.
    `outside`: the paths it would write outside the session's `writable_paths`; a write_file
    inside them runs without asking (that is what the paths are for)."""
    if not tool.asks or policy == agent_pb2.APPROVAL_POLICY_NEVER:
        return ""
    if outside:
        return f"it writes outside the session's writable paths: {', '.join(outside)}"
    if policy == agent_pb2.APPROVAL_POLICY_ALWAYS:
        return "the approval policy is ALWAYS"
    if tool.name == WRITE_FILE_TOOL_NAME and writable_paths:
        return ""
    return tool.on_request(arguments, prefixes)


def paths_written_outside(
    name: str, arguments: dict[str, Any], writable_paths: tuple[str, ...]
) -> tuple[str, ...]:
    """The paths under /workspace this call would write outside `writable_paths` (none when
    the session has none: all of /workspace is writable then)."""
    if not writable_paths:
        return ()
    if name == WRITE_FILE_TOOL_NAME:
        try:
            written = [workspace_path(str(arguments.get("path", "")), allow_root=False)]
        except FireboxError:
            return ()  # a bad path: the executor refuses it and the model is told why
    elif name == SHELL_TOOL_NAME:
        written = written_paths(str(arguments.get("command", "")))
    else:
        return ()
    return tuple(path for path in written if not is_writable(writable_paths, path))


class ToolSource(Protocol):
    """Something that contributes tools to a session's model calls."""

    async def tools(self, session: agent_pb2.Session | None) -> list[Tool]: ...


class ToolCatalog:
    """Builds the tool list of each model call from its sources, in order; an earlier source's
    name wins (the built-ins come first, so nothing can shadow them)."""

    def __init__(self, sources: Sequence[ToolSource]) -> None:
        self._sources = list(sources)

    def add(self, source: ToolSource) -> None:
        self._sources.append(source)

    async def offered(self, session: agent_pb2.Session | None = None) -> OfferedTools:
        tools: list[Tool] = []
        for source in self._sources:
            tools.extend(await source.tools(session))
        return OfferedTools.of(tools)
