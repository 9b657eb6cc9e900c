"""Named tools: commands an operator declares in a tools file, run by Step with checked arguments.

The tools file (`--tools-file`, JSON or TOML by its extension) holds a list `tools`, each with a
`name`, a `description`, an `args_schema` (JSON Schema of the arguments, an object schema), a
`command` template (argv elements with `{placeholders}`) and optionally `read_only` and
`timeout_seconds`. See docs/executor.md for the format.

Arguments never become shell text: each argv element of the template is filled on its own and
the result runs through the execution engine's argv path, which quotes every element. A
placeholder that is a whole element and names an array expands to one element per item; an
element whose placeholders name an argument the caller left out is dropped. `{{` and `}}` are
literal braces.

A file that cannot be read or parsed stops the executor at start-up; a bad tool in a good file
is reported in the log and skipped, so one typo does not take every other tool away.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

from executor_service import execution as ex
from firebox.common import errors
from firebox.common.logging import get_logger

log = get_logger("executor.tools")

TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_TOOLS = 256
MAX_ARGS_JSON_BYTES = 256 * 1024
MAX_ARGV_BYTES = 1024 * 1024
Validator = jsonschema.Draft202012Validator


class ToolsFileError(errors.FailedPrecondition):
    """The tools file cannot be used at all (unreadable, not JSON/TOML, no `tools` list); the
    executor refuses to start (firebox-executor prints the message and exits with status 2)."""


@dataclass(frozen=True)
class Tool:
    """One declared tool, checked."""

    name: str
    description: str
    args_schema: dict[str, Any]
    command: tuple[str, ...]
    read_only: bool = False
    timeout: float | None = None

    @property
    def args_schema_json(self) -> str:
        return json.dumps(self.args_schema, sort_keys=True)

    def placeholders(self) -> set[str]:
        return {name for element in self.command for name in _fields(element)}


def _fields(element: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(element) if name is not None]


def _check_template(element: str, where: str) -> None:
    try:
        parsed = list(string.Formatter().parse(element))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or spec or conversion:
            raise ValueError(f"{where}: placeholder {{{name}}} must be a plain argument name")


def parse_tool(raw: Any, index: int) -> Tool:
    """One entry of the tools list -> Tool; ValueError saying what is wrong with it."""
    where = f"tools[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table/object")
    unknown = set(raw) - {"name", "description", "args_schema", "command", "read_only", "timeout_seconds"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise ValueError(
            f"{where}.name: {name!r}: use a letter then letters, digits, '_' or '-' (at most 64)"
        )
    where = f"tool {name!r}"
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{where}: description is required")
    schema = raw.get("args_schema", {"type": "object", "properties": {}})
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: args_schema must be an object (a JSON Schema)")
    try:
        Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ValueError(f"{where}: args_schema is not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise ValueError(f'{where}: args_schema must have "type": "object"')
    command = raw.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(e, str) and "\x00" not in e for e in command)
    ):
        raise ValueError(f"{where}: command must be a non-empty list of strings (an argv template)")
    for i, element in enumerate(command):
        _check_template(element, f"{where}: command[{i}]")
    if _fields(command[0]):
        raise ValueError(f"{where}: command[0] (the program) must not come from an argument")
    properties = schema.get("properties", {})
    tool = Tool(name, description.strip(), schema, tuple(command))
    missing = sorted(tool.placeholders() - set(properties))
    if missing:
        raise ValueError(f"{where}: placeholder(s) {', '.join(missing)} not in args_schema.properties")
    read_only = raw.get("read_only", False)
    if not isinstance(read_only, bool):
        raise ValueError(f"{where}: read_only must be true or false")
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ValueError(f"{where}: timeout_seconds must be a positive number")
    return Tool(name, tool.description, schema, tool.command, read_only, float(timeout) if timeout else None)


def load_tools_file(path: Path) -> list[Tool]:
    """Read and check a tools file. Raises ToolsFileError when the file is unusable; bad tools
    inside it are logged (`tool_skipped`) and left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolsFileError(f"cannot read the tools file {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ToolsFileError(f"the tools file {path} is not valid {kind}: {exc}") from exc
    entries = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ToolsFileError(f"the tools file {path} needs a top-level list `tools`")
    if len(entries) > MAX_TOOLS:
        raise ToolsFileError(f"the tools file {path} declares {len(entries)} tools; at most {MAX_TOOLS}")
    tools: list[Tool] = []
    seen: set[str] = set()
    for index, raw in enumerate(entries):
        try:
            tool = parse_tool(raw, index)
            if tool.name in seen:
                raise ValueError(f"tool {tool.name!r}: declared twice; the first one is kept")
        except ValueError as exc:
            log.error("tool_skipped", file=str(path), problem=str(exc))
            continue
        seen.add(tool.name)
        tools.append(tool)
    log.info("tools_loaded", file=str(path), tools=[t.name for t in tools], skipped=len(entries) - len(tools))
    return tools


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _whole_numbers(value: Any) -> Any:
    """Struct numbers are doubles: 3.0 stands for 3 (so "integer" schemas accept it)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


class ToolRegistry:
    """The declared tools, by name; checks arguments and renders a tool's argv."""

    def __init__(self, tools: Sequence[Tool] = ()) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._validators = {tool.name: Validator(tool.args_schema) for tool in tools}

    def list(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda t: t.name)

    def get(self, name: str) -> Tool:
        """The tool; InvalidArgument when no name is given, NotFound when none is declared."""
        if not name:
            raise errors.InvalidArgument("action.tool_name", "required")
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none are declared"
            raise errors.NotFound(f"tool {name!r} not found (known tools: {known}); see ListTools")
        return tool

    def render(self, name: str, args: Mapping[str, Any]) -> tuple[Tool, builtins.list[str]]:
        """Check `args` against the tool's schema and fill its command template. InvalidArgument
        names the failing argument's path (e.g. `action.args.paths[1]`)."""
        tool = self.get(name)
        checked: dict[str, Any] = _whole_numbers(dict(args))
        # A property the caller left out takes its schema default, when it declares one.
        for key, prop in tool.args_schema.get("properties", {}).items():
            if key not in checked and isinstance(prop, dict) and "default" in prop:
                checked[key] = prop["default"]
        if len(json.dumps(checked)) > MAX_ARGS_JSON_BYTES:
            raise errors.InvalidArgument("action.args", f"larger than {MAX_ARGS_JSON_BYTES} bytes")
        error = jsonschema.exceptions.best_match(self._validators[name].iter_errors(checked))
        if error is not None:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise errors.InvalidArgument(f"action.args{path}", f"{error.message} (tool {name!r})")
        argv: list[str] = []
        for element in tool.command:
            names = _fields(element)
            if any(n not in checked or checked[n] is None for n in names):
                continue
            if len(names) == 1 and element == "{" + names[0] + "}" and isinstance(checked[names[0]], list):
                argv.extend(_text(v) for v in checked[names[0]])
                continue
            argv.append(
                "".join(
                    literal.replace("\x00", "") + (_text(checked[field]) if field is not None else "")
                    for literal, field, _, _ in string.Formatter().parse(element)
                )
            )
        if any("\x00" in a for a in argv):
            raise errors.InvalidArgument("action.args", "an argument contains a NUL byte")
        if sum(len(a.encode()) for a in argv) > MAX_ARGV_BYTES:
            raise errors.InvalidArgument(
                "action.args", f"the command would be longer than {MAX_ARGV_BYTES} bytes"
            )
        return tool, argv


@dataclass
class StepResult:
    """What a tool run produced: its end, and its output cut at the cap per stream."""

    execution_id: str
    finished: ex.Finished
    stdout: bytes
    stderr: bytes
    truncated: bool


async def collect(execution: ex.Execution, cap_bytes: int, observe: Any = None) -> StepResult:
    """Drain `execution` to its end, keeping at most `cap_bytes` of each stream; `observe(out,
    err)` sees every chunk (the training-log recorder). Cancels the execution if the caller is
    cancelled."""
    out, err = bytearray(), bytearray()
    truncated = False
    finished: ex.Finished | None = None
    try:
        async for event in execution.events():
            if isinstance(event, ex.Output):
                if observe is not None:
                    observe(event.stdout, event.stderr)
                for buf, data in ((out, event.stdout), (err, event.stderr)):
                    room = cap_bytes - len(buf)
                    if len(data) > room:
                        truncated = True
                    buf += data[: max(room, 0)]
            elif isinstance(event, ex.Finished):
                finished = event
    finally:
        if finished is None:
            await asyncio.shield(asyncio.ensure_future(execution.cancel()))
    assert finished is not None
    return StepResult(execution.id, finished, bytes(out), bytes(err), truncated or finished.output_truncated)
