"""Tools from Model Context Protocol servers, offered to the model next to Firebox's own.

Where servers come from, and where they run (the trust boundary, docs/mcp.md):
- the operator's `--mcp-config FILE` (mcp.json: `{"mcpServers": {NAME: {command, args, env} |
  {url, headers}}}`): a stdio server runs as a process next to the agent, an HTTP server is
  dialled from the agent. The operator chose them; they are trusted like the agent itself.
- a session's `settings.mcp_servers`: stdio servers only, and each runs inside that session's
  workspace as one Execute whose stdin and stdout carry the protocol. Nothing a client supplies
  runs on the agent's host or is dialled from it.

Each server's tools are offered as `mcp__SERVER__TOOL` (server names hold no "__", so two servers
can never produce one name; a tool name that is not a valid function name, or is too long, is
cleaned and given a hash of the original). A call runs through the loop like any tool: approval,
the tool timeout, the output limit, cancellation, and a ToolCallRecord in the training log naming
the server and the tool.

A server is started on first use and kept. One that fails to start, crashes, times out or answers
with a malformed result gives the model a tool error and the run goes on; a dead or hung server is
stopped and started again on next use, the first restart at once, then after 1, 2, 4 ... 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pydantic
from google.protobuf.duration_pb2 import Duration
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

import firebox
from agent_service.executor_pool import ExecutorPool
from agent_service.session_workspace import SessionWorkspaces
from agent_service.tool_output import RUN_EVENT_OUTPUT_CAP_BYTES
from agent_service.tools import MCP_TOOL_PREFIX, Tool, ToolRun, always_runs, function_spec
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FireboxError, InvalidArgument
from firebox.common.headtail import HeadTail
from firebox.common.logging import get_logger
from firebox.common.secrets import redactor
from firebox.common.trainlog import TOOL_CALLS, TrainingLog
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

log = get_logger("firebox.agent.mcp")

# OpenAI function names: ^[a-zA-Z0-9_-]{1,64}$.
MAX_FUNCTION_NAME = 64
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Most servers one configuration may name, and tools taken from one server.
MAX_SERVERS = 32
MAX_TOOLS_PER_SERVER = 256
# Starting a server (process or connection, the handshake and its tool list).
START_TIMEOUT_SECONDS = 30.0
# An idle server is asked for its tools this often (MCP's ping is gone from the 2026-07-28
# protocol; tools/list is a request every tool server answers), so one that died between calls is
# restarted before the next call rather than failing it, and a changed tool list is picked up. No
# answer within the timeout counts as dead. Never during a call (a server may serve one at a time).
CHECK_INTERVAL_SECONDS = 15.0
CHECK_TIMEOUT_SECONDS = 10.0
# Restart backoff after consecutive failures: the first at once, then 1, 2, 4 ... this.
MAX_BACKOFF_SECONDS = 60.0
# Sessions whose MCP servers are kept running; the least recently used beyond this are stopped.
MAX_SESSIONS_WITH_SERVERS = 64
# One JSON-RPC line from a server running in a workspace.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A session server's process lives at most this long (then it is started again on next use).
SESSION_SERVER_LIFETIME_SECONDS = 6 * 3600
# A session server's stderr kept for its error message.
STDERR_TAIL_BYTES = 2048


@dataclass(frozen=True)
class McpServerSpec:
    """One server of an mcp.json configuration."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


def _strings(value: Any, where: str, kind: type) -> Any:
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(where, "must be a list of strings")
        return tuple(value)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(where, "must be an object of strings")
    return dict(value)


def check_server_name(name: str, where: str) -> None:
    # mcp__SERVER__TOOL splits at the first "__" after the prefix only if SERVER holds no "__" and
    # does not end with "_" (server "a_" with tool "b" would read as server "a" with tool "_b").
    if not SERVER_NAME.match(name) or "__" in name or name.endswith("_"):
        raise InvalidArgument(
            where,
            "a server name is 1-32 letters, digits, '-' or '_', with no '__' and not ending in '_' "
            "(it prefixes tool names)",
        )


def parse_servers(servers: Any, where: str = "mcpServers") -> dict[str, McpServerSpec]:
    """The servers of an mcp.json `mcpServers` object, checked."""
    if not isinstance(servers, dict):
        raise InvalidArgument(where, "must be an object of servers by name")
    if len(servers) > MAX_SERVERS:
        raise InvalidArgument(where, f"at most {MAX_SERVERS} servers")
    specs = {}
    for name, entry in servers.items():
        here = f"{where}.{name}"
        check_server_name(str(name), here)
        if not isinstance(entry, dict):
            raise InvalidArgument(here, "must be an object with command or url")
        unknown = set(entry) - {"command", "args", "env", "url", "headers", "type", "cwd"}
        if unknown:
            raise InvalidArgument(here, f"unknown keys: {', '.join(sorted(unknown))}")
        command, url = entry.get("command", ""), entry.get("url", "")
        if not isinstance(command, str) or not isinstance(url, str) or bool(command) == bool(url):
            raise InvalidArgument(here, "needs exactly one of command (stdio) or url (streamable HTTP)")
        if url and not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"{here}.url", "must be an http:// or https:// URL")
        specs[name] = McpServerSpec(
            name=name,
            command=command,
            args=_strings(entry.get("args", []), f"{here}.args", list),
            env=_strings(entry.get("env", {}), f"{here}.env", dict),
            url=url,
            headers=_strings(entry.get("headers", {}), f"{here}.headers", dict),
        )
    return specs


def load_mcp_config(path: Path) -> dict[str, McpServerSpec]:
    """The operator's servers; an unreadable or malformed file stops start-up naming the flag.
    Values of env and headers are registered with the log redactor (they often hold keys)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument("--mcp-config", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or "mcpServers" not in data:
        raise InvalidArgument("--mcp-config", f'{path} must be an object with "mcpServers"')
    specs = parse_servers(data["mcpServers"], "--mcp-config mcpServers")
    for spec in specs.values():
        for value in (*spec.env.values(), *spec.headers.values()):
            redactor.add_value(value)
    return specs


def session_servers(
    settings: agent_pb2.SessionSettings, operator_names: frozenset[str] = frozenset()
) -> dict[str, McpServerSpec]:
    """A session's own servers, checked: stdio only (they run in its workspace), and no name the
    operator already uses."""
    specs = {}
    if len(settings.mcp_servers) > MAX_SERVERS:
        raise InvalidArgument("settings.mcp_servers", f"at most {MAX_SERVERS} servers")
    for name, server in settings.mcp_servers.items():
        where = f"settings.mcp_servers.{name}"
        check_server_name(name, where)
        if name in operator_names:
            raise InvalidArgument(where, "the server has a name the agent's own MCP configuration uses")
        if server.url or server.headers:
            raise InvalidArgument(
                where,
                "a session may add stdio servers only (they run in its workspace); HTTP servers are "
                "configured by the operator (--mcp-config)",
            )
        if not server.command:
            raise InvalidArgument(f"{where}.command", "is required")
        specs[name] = McpServerSpec(
            name=name, command=server.command, args=tuple(server.args), env=dict(server.env)
        )
    return specs


def offered_name(server: str, tool: str) -> str:
    """The function name of a server's tool: mcp__SERVER__TOOL, cleaned and hashed when needed."""
    name = f"{MCP_TOOL_PREFIX}{server}__{tool}"
    if _FUNCTION_NAME.match(tool) and len(name) <= MAX_FUNCTION_NAME:
        return name
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)[: MAX_FUNCTION_NAME - 9]
    return f"{cleaned}_{digest}"


# JSON-RPC errors that are about the call itself, not the connection.
_CALLER_ERRORS = frozenset({mcp_types.INVALID_PARAMS, mcp_types.METHOD_NOT_FOUND, mcp_types.INVALID_REQUEST})


class McpToolError(Exception):
    """A call that could not give a result; the message is what the model is told."""


def _backoff(failures: int) -> float:
    return 0.0 if failures <= 1 else min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 2))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


class McpServerConnection:
    """One MCP server: started on first use and held open by a task of its own (the SDK's
    context managers must be left in the task that entered them); calls come from run tasks."""

    def __init__(
        self,
        spec: McpServerSpec,
        origin: int,
        transport: Callable[[], AbstractAsyncContextManager[Any]],
    ) -> None:
        self.spec = spec
        self.origin = origin
        self._transport = transport
        self._client: Client | None = None
        self._tools: list[mcp_types.Tool] = []
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._starting = asyncio.Lock()
        self.failures = 0
        self.retry_at = 0.0
        self.error = ""
        self._in_flight = 0

    @property
    def ready(self) -> bool:
        return self._client is not None

    async def tools(self) -> list[mcp_types.Tool]:
        await self._ensure()
        return self._tools

    async def call(
        self, tool: str, arguments: dict[str, Any], limit_seconds: float
    ) -> mcp_types.CallToolResult:
        """Call a tool; McpToolError (with what to tell the model) when no result came."""
        timeout = limit_seconds
        client = await self._ensure()
        self._in_flight += 1
        try:
            async with asyncio.timeout(timeout):
                result = await client.call_tool(tool, arguments)
        except TimeoutError:
            self._failed(f"the call of {tool} timed out after {timeout:g}s", client)
            raise McpToolError(f"timed out after {timeout:g}s; the server is restarted on next use") from None
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self._failed(f"the connection closed during {tool}", client)
                raise McpToolError(
                    "the server closed the connection (crashed?) during the call; it is restarted on next use"
                ) from None
            if exc.code in _CALLER_ERRORS:
                raise McpToolError(f"the server refused the call: {_describe(exc)}") from None
            # Anything else may be a server that lost our session (an HTTP server restarted):
            # a fresh connection next time.
            self._failed(f"{tool} failed: {_describe(exc)}", client)
            raise McpToolError(
                f"the call failed: {_describe(exc)}; the server is reconnected on next use"
            ) from None
        except pydantic.ValidationError as exc:
            raise McpToolError(
                f"the server's result is malformed: {exc.error_count()} validation error(s)"
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError) as exc:
            self._failed(_describe(exc), client)
            raise McpToolError(
                f"the call failed: {_describe(exc)}; the server is restarted on next use"
            ) from None
        finally:
            self._in_flight -= 1
        self.failures = 0
        return result

    async def _ensure(self) -> Client:
        async with self._starting:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            wait = self.retry_at - time.monotonic()
            if wait > 0:
                raise McpToolError(f"the server is unavailable ({self.error}); next start in {wait:.0f}s")
            self._client = None
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[tuple[Client, list[mcp_types.Tool]]] = loop.create_future()
            self._stop = asyncio.Event()
            self._holder = asyncio.create_task(self._hold(ready, self._stop), name=f"mcp-{self.spec.name}")
            try:
                async with asyncio.timeout(START_TIMEOUT_SECONDS):
                    client, self._tools = await asyncio.shield(ready)
                    self._client = client
            except (Exception, TimeoutError) as exc:
                why = "it did not start in time" if isinstance(exc, TimeoutError) else _describe(exc)
                self._failed(f"failed to start: {why}", None)
                raise McpToolError(f"the server failed to start: {why}") from None
            self.error = ""
            log.info("mcp_server_started", server=self.spec.name, tools=len(self._tools))
            return client

    async def _hold(
        self, ready: asyncio.Future[tuple[Client, list[mcp_types.Tool]]], stop: asyncio.Event
    ) -> None:
        try:
            async with Client(
                self._transport(),
                client_info=mcp_types.Implementation(name="firebox-agent", version=firebox.__version__),
            ) as client:
                tools: list[mcp_types.Tool] = []
                cursor: str | None = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor or len(tools) >= MAX_TOOLS_PER_SERVER:
                        break
                if not ready.done():
                    ready.set_result((client, tools[:MAX_TOOLS_PER_SERVER]))
                await self._keep_alive(client, stop)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_describe(exc)))
            elif not stop.is_set():
                log.warning("mcp_server_lost", server=self.spec.name, error=_describe(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self._stop is stop:
                self._client = None

    async def _keep_alive(self, client: Client, stop: asyncio.Event) -> None:
        """Wait for `stop`, checking the server is alive while no call is in flight."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL_SECONDS):
                    await stop.wait()
            if stop.is_set() or self._in_flight:
                continue
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                    page = await client.list_tools(cache_mode="bypass")
            except Exception as exc:
                if not stop.is_set() and not self._in_flight:
                    self._failed(f"no answer while idle: {_describe(exc)}", client)
                continue
            if page.next_cursor is None:
                self._tools = page.tools[:MAX_TOOLS_PER_SERVER]

    def _failed(self, why: str, client: Client | None) -> None:
        """Stop the server; the next use starts it again once its backoff has passed. A failure
        seen through an older connection (`client` is no longer the current one) changes nothing:
        that connection is already gone, and a newer one must not be stopped for it."""
        if client is not self._client:
            return
        self.failures += 1
        self.error = why
        self.retry_at = time.monotonic() + _backoff(self.failures)
        self._client = None
        if self._stop is not None:
            self._stop.set()
        log.warning("mcp_server_failed", server=self.spec.name, error=why, failures=self.failures)

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._holder is not None and not self._holder.done():
            try:
                async with asyncio.timeout(10):
                    await asyncio.shield(self._holder)
            except (TimeoutError, Exception):
                self._holder.cancel()
        self._client = None


def _operator_transport(spec: McpServerSpec) -> Callable[[], AbstractAsyncContextManager[Any]]:
    if spec.url:

        @contextlib.asynccontextmanager
        async def http() -> AsyncIterator[Any]:
            async with (
                create_mcp_http_client(headers=dict(spec.headers)) as client,
                streamable_http_client(spec.url, http_client=client) as streams,
            ):
                yield streams

        return http
    params = StdioServerParameters(command=spec.command, args=list(spec.args), env=dict(spec.env) or None)
    return lambda: stdio_client(params)


def workspace_stdio(
    executor: ExecutorPool, workspaces: SessionWorkspaces, session: agent_pb2.Session, spec: McpServerSpec
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """A stdio transport whose process runs in the session's workspace: one Execute (a fresh
    process, no shell session) whose stdin and stdout carry newline-delimited JSON-RPC."""

    @contextlib.asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        workspace_id, _shell = await workspaces.ensure(session)
        first = executor_pb2.ExecuteRequest(
            workspace_id=workspace_id,
            argv=[spec.command, *spec.args],
            env=dict(spec.env),
            known_name=f"mcp:{spec.name}",
            agent_session_id=session.id,
            timeout=Duration(seconds=SESSION_SERVER_LIFETIME_SECONDS),
        )
        requests: asyncio.Queue[executor_pb2.ExecuteRequest | None] = asyncio.Queue(maxsize=64)
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](16)
        stderr_tail = bytearray()

        async def outgoing() -> AsyncIterator[executor_pb2.ExecuteRequest]:
            yield first
            while (request := await requests.get()) is not None:
                yield request

        async def read_stdout() -> None:
            buffer = bytearray()
            async with read_writer:
                responses = executor.forward_execute(outgoing(), deadline=None)
                try:
                    async for response in responses:
                        if response.stderr_data:
                            stderr_tail.extend(response.stderr_data)
                            del stderr_tail[:-STDERR_TAIL_BYTES]
                        buffer += response.stdout_data
                        while (end := buffer.find(b"\n")) >= 0:
                            line, buffer = bytes(buffer[:end]), buffer[end + 1 :]
                            if line.strip():
                                await read_writer.send(_parse_line(line))
                        if len(buffer) > MAX_MESSAGE_BYTES:
                            raise McpToolError(f"a message from the server is over {MAX_MESSAGE_BYTES} bytes")
                        if response.HasField("exit_code") or response.end_reason:
                            log.info(
                                "mcp_server_exited",
                                server=spec.name,
                                exit_code=response.exit_code.value,
                                stderr=stderr_tail.decode(errors="replace")[-300:],
                            )
                            return
                finally:
                    await responses.aclose()

        async def write_stdin() -> None:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await requests.put(executor_pb2.ExecuteRequest(input_data=data.encode()))

        async with anyio.create_task_group() as group:
            group.start_soon(read_stdout)
            group.start_soon(write_stdin)
            try:
                yield read_stream, write_stream
            finally:
                # Closing the Execute stream ends the process (the executor kills what its
                # client abandons); the stop says so first.
                with contextlib.suppress(asyncio.QueueFull):
                    requests.put_nowait(executor_pb2.ExecuteRequest(stop=executor_pb2.STOP_SIGNAL_KILL))
                group.cancel_scope.cancel()

    return transport


def _parse_line(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


def result_text(result: mcp_types.CallToolResult) -> str:
    """What the model is told of a tool's result: its text, and a note for what is not text."""
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
            parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {resource.uri}]")
        else:
            parts.append(f"[resource link {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


@dataclass
class _SessionServers:
    connections: dict[str, McpServerConnection]


class McpTools:
    """The MCP servers' tools as a source for the ToolCatalog, and the servers themselves."""

    def __init__(
        self,
        operator: Mapping[str, McpServerSpec],
        executor: ExecutorPool,
        workspaces: SessionWorkspaces,
        training_log: TrainingLog,
        tool_output_limit: int,
        tool_timeout: float,
    ) -> None:
        self._executor = executor
        self._workspaces = workspaces
        self._log = training_log
        self._output_limit = tool_output_limit
        self._timeout = tool_timeout
        self._operator = {
            name: McpServerConnection(spec, agent_pb2.MCP_SERVER_ORIGIN_OPERATOR, _operator_transport(spec))
            for name, spec in operator.items()
        }
        self._sessions: OrderedDict[str, _SessionServers] = OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def operator_names(self) -> frozenset[str]:
        return frozenset(self._operator)

    def _connections(self, session: agent_pb2.Session | None) -> list[McpServerConnection]:
        connections = list(self._operator.values())
        if session is None or not session.settings.mcp_servers:
            return connections
        held = self._sessions.get(session.id)
        specs = session_servers(session.settings, self.operator_names)
        if held is None or {n: c.spec for n, c in held.connections.items()} != specs:
            if held is not None:
                self._close_later(held)
            held = _SessionServers(
                {
                    name: McpServerConnection(
                        spec,
                        agent_pb2.MCP_SERVER_ORIGIN_SESSION,
                        workspace_stdio(self._executor, self._workspaces, session, spec),
                    )
                    for name, spec in specs.items()
                }
            )
            self._sessions[session.id] = held
        self._sessions.move_to_end(session.id)
        while len(self._sessions) > MAX_SESSIONS_WITH_SERVERS:
            _old, evicted = self._sessions.popitem(last=False)
            self._close_later(evicted)
        return connections + list(held.connections.values())

    def _close_later(self, held: _SessionServers) -> None:
        for connection in held.connections.values():
            task = asyncio.ensure_future(connection.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def forget_session(self, session_id: str) -> None:
        """Stop a session's servers (the session was deleted)."""
        held = self._sessions.pop(session_id, None)
        if held is not None:
            await asyncio.gather(*(c.close() for c in held.connections.values()))

    async def tools(self, session: agent_pb2.Session | None) -> list[Tool]:
        connections = self._connections(session)
        listed = await asyncio.gather(*(self._listed(c) for c in connections))
        return [tool for tools in listed for tool in tools]

    async def statuses(self, session: agent_pb2.Session | None) -> list[agent_pb2.McpServerStatus]:
        """Each server's state, after trying to list its tools."""
        connections = self._connections(session)
        listed = await asyncio.gather(*(self._listed(c) for c in connections))
        return [
            agent_pb2.McpServerStatus(
                name=c.spec.name,
                origin=c.origin,  # type: ignore[arg-type]
                ready=c.ready,
                error=c.error,
                tool_count=len(tools),
            )
            for c, tools in zip(connections, listed, strict=True)
        ]

    async def _listed(self, connection: McpServerConnection) -> list[Tool]:
        try:
            remote = await connection.tools()
        except (McpToolError, FireboxError) as exc:
            log.info("mcp_server_unavailable", server=connection.spec.name, error=str(exc))
            return []
        return [self._tool(connection, t) for t in remote]

    def _tool(self, connection: McpServerConnection, remote: mcp_types.Tool) -> Tool:
        server = connection.spec.name
        trusted = connection.origin == agent_pb2.MCP_SERVER_ORIGIN_OPERATOR
        # The SDK's own advice: annotations are hints, never trusted from untrusted servers. Only
        # the operator's servers may declare a tool read-only (and skip ON_REQUEST approval).
        read_only = trusted and remote.annotations is not None and bool(remote.annotations.read_only_hint)
        description = (remote.description or "").strip()
        label = f"[MCP server {server}, tool {remote.name}]"
        spec = function_spec(
            offered_name(server, remote.name),
            f"{description} {label}".strip() if description else label,
            remote.input_schema,
        )

        def not_read_only(_arguments: dict[str, Any], _prefixes: object) -> str:
            return f"the MCP tool {remote.name!r} of server {server!r} is not declared read-only"

        async def run(call: ToolRun) -> str:
            return await self._run(connection, remote.name, call)

        return Tool(
            spec,
            run,
            always_runs if read_only else not_read_only,
            source="mcp",
            server=server,
            remote_name=remote.name,
        )

    async def _run(self, connection: McpServerConnection, tool: str, call: ToolRun) -> str:
        live = call.live
        started = time.time_ns()
        record = trace_pb2.ToolCallRecord(
            tool_call_id=call.call.id,
            run_id=live.id,
            session_id=call.session.id,
            generation_id=call.generation_id,
            name=call.call.name,
            source="mcp",
            server=connection.spec.name,
            tool=tool,
            arguments=json.dumps(call.arguments, ensure_ascii=False),
        )
        record.start_time.FromNanoseconds(started)
        text, is_error = "", True
        try:
            try:
                result = await connection.call(tool, call.arguments, self._timeout)
                text, is_error = result_text(result), bool(result.is_error)
            except McpToolError as exc:
                text = f"[error: MCP server {connection.spec.name}: {exc}]"
        except asyncio.CancelledError:
            text = "[cancelled]"
            raise
        finally:
            record.is_error = is_error
            record.duration.FromNanoseconds(time.time_ns() - started)
            data = text.encode()
            output = HeadTail(self._output_limit)
            output.add(data)
            record.result = output.text()
            record.result_bytes = len(data)
            record.result_truncated = output.omitted > 0
            self._log.write(TOOL_CALLS, record)
        shown = output.text()
        if data and not live.done and live.output_bytes + len(data) <= RUN_EVENT_OUTPUT_CAP_BYTES:
            live.output_bytes += len(data)
            live.emit(
                tool_output=agent_pb2.ToolOutput(
                    tool_call_id=call.call.id,
                    **({"stderr_data": data} if is_error else {"stdout_data": data}),
                )
            )
        live.emit(
            tool_call_finished=agent_pb2.ToolCallFinished(
                tool_call_id=call.call.id,
                exit_code=1 if is_error else 0,
                output_truncated=output.omitted > 0,
                result=shown,
            )
        )
        return shown

    async def close(self) -> None:
        connections = list(self._operator.values())
        for held in self._sessions.values():
            connections.extend(held.connections.values())
        self._sessions.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
