"""Firebox as an MCP server: workspaces, commands, files and the executor's named tools as
Model Context Protocol tools, for any MCP client (editors, agents).

`firebox mcp` serves it on stdin/stdout; `firebox mcp --http HOST:PORT` on streamable HTTP at
`/mcp`. Every tool is a call to the executor through the Firebox client (with `--via agent`,
workspaces and commands go through the agent's forwarding instead; shell sessions, files and named
tools are always the executor's), so authentication and the executor's policies apply unchanged: over stdio the CLI's own settings (--executor,
--token, TLS, FIREBOX_* env) are used; over HTTP each request's `Authorization: Bearer` token is
passed on as that call's token, and the CLI's own token is never lent to HTTP callers.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from firebox import __version__
from firebox.client import AsyncFireboxClient, ConnectionSettings, FireboxRpcError
from firebox.client.aio import Service
from firebox.common.headtail import HeadTail
from firebox.executor.v1 import executor_pb2 as ex

# What a tool gives back of a command's output, per stream (head and tail beyond it).
MAX_OUTPUT_BYTES = 64 * 1024
# The most of a file read_file returns.
MAX_READ_BYTES = 1024 * 1024
# The most a write_file or a command's stdin may carry.
MAX_WRITE_BYTES = 16 * 1024 * 1024
MAX_TIMEOUT_SECONDS = 3600.0
DEFAULT_TIMEOUT_SECONDS = 60.0

READ_ONLY = ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True)


def _bearer(headers: Any) -> str | None:
    value = (headers or {}).get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _workspace(workspace: ex.Workspace) -> dict[str, Any]:
    return {
        "workspace_id": workspace.id,
        "name": workspace.name,
        "image": workspace.image,
        "status": ex.WorkspaceStatus.Name(workspace.status).removeprefix("WORKSPACE_STATUS_").lower(),
    }


def _bounded(data: bytes) -> tuple[str, bool]:
    view = HeadTail(MAX_OUTPUT_BYTES)
    view.add(data)
    return view.text(), view.omitted > 0


def _timeout(seconds: float) -> float:
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise ToolError(f"timeout_seconds must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g}")
    return seconds


class FireboxTools:
    """The clients the tools call through: one for stdio, one per request over HTTP."""

    def __init__(
        self, settings: ConnectionSettings, *, caller_tokens: bool, via: Service = "executor"
    ) -> None:
        self._settings = settings
        self._caller_tokens = caller_tokens
        # Where workspaces are created, listed and deleted and commands run: the executor, or the
        # agent, which forwards to the executor replica owning the workspace.
        self.via: Service = via
        self._shared = None if caller_tokens else AsyncFireboxClient(settings)

    @contextlib.asynccontextmanager
    async def client(self, ctx: Context) -> AsyncIterator[AsyncFireboxClient]:
        """A client for this request; a Firebox error becomes the tool's error result."""
        owned = None
        if self._shared is not None:
            client = self._shared
        else:
            settings = dataclasses.replace(self._settings, token=_bearer(ctx.headers))
            client = owned = AsyncFireboxClient(settings)
        try:
            yield client
        except FireboxRpcError as error:
            raise ToolError(f"{error.code.name}: {error.reason()}") from None
        finally:
            if owned is not None:
                await owned.close()

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()


def build_server(tools: FireboxTools) -> MCPServer:
    """The MCP server with every Firebox tool registered."""
    server = MCPServer(
        "firebox",
        version=__version__,
        # The client shows a server's stderr to its user: tool failures are in the results already.
        log_level="WARNING",
        instructions=(
            "Firebox runs commands in isolated workspaces (containers). Create a workspace, run "
            "commands in it (open_session keeps the working directory and environment between "
            "commands), read and write its files under /workspace, and delete it when done."
        ),
    )

    @server.tool(description="Create and start a workspace (an isolated container with /workspace).")
    async def create_workspace(
        ctx: Context, name: str = "", image: str = "", network: bool = False
    ) -> dict[str, Any]:
        policy = ex.IsolationPolicy(network=True) if network else None
        async with tools.client(ctx) as client:
            return _workspace(await client.create_workspace(name, image=image, policy=policy, via=tools.via))

    @server.tool(description="List the workspaces.", annotations=READ_ONLY)
    async def list_workspaces(ctx: Context) -> dict[str, Any]:
        async with tools.client(ctx) as client:
            return {"workspaces": [_workspace(w) for w in await client.list_workspaces(via=tools.via)]}

    @server.tool(description="Delete a workspace and everything in it.", annotations=DESTRUCTIVE)
    async def delete_workspace(ctx: Context, workspace_id: str) -> dict[str, Any]:
        async with tools.client(ctx) as client:
            await client.delete_workspace(workspace_id, via=tools.via)
        return {"deleted": workspace_id}

    @server.tool(
        description="Open a shell session in a workspace: commands run with its session_id share the "
        "working directory and exported variables."
    )
    async def open_session(ctx: Context, workspace_id: str) -> dict[str, Any]:
        async with tools.client(ctx) as client:
            session = await client.create_shell_session(workspace_id)
        return {"session_id": session.id, "workspace_id": workspace_id}

    @server.tool(
        description="Run a shell command in a workspace (in a shell session when session_id is given) "
        "and return its exit code and output (long output keeps its head and tail). The command is "
        "stopped after timeout_seconds."
    )
    async def run_command(
        ctx: Context,
        workspace_id: str,
        command: str,
        session_id: str = "",
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        stdin: str = "",
    ) -> dict[str, Any]:
        if len(stdin.encode()) > MAX_WRITE_BYTES:
            raise ToolError(f"stdin is over {MAX_WRITE_BYTES} bytes")
        async with tools.client(ctx) as client:
            result = await client.run(
                workspace_id,
                script=command,
                session_id=session_id,
                timeout=_timeout(timeout_seconds),
                stdin=stdin.encode() or None,
                known_name="mcp:run_command",
                via=tools.via,
            )
        stdout, stdout_cut = _bounded(result.stdout)
        stderr, stderr_cut = _bounded(result.stderr)
        return {
            "exit_code": result.exit_code,
            "end_reason": result.end_reason_name.removeprefix("END_REASON_").lower(),
            "message": result.message,
            "stdout": stdout,
            "stderr": stderr,
            "output_truncated": result.output_truncated or stdout_cut or stderr_cut,
            "execution_id": result.execution_id,
        }

    @server.tool(
        description="Read a text file in a workspace (paths relative to /workspace).", annotations=READ_ONLY
    )
    async def read_file(
        ctx: Context, workspace_id: str, path: str, max_bytes: int = 256 * 1024
    ) -> dict[str, Any]:
        limit = max(1, min(max_bytes, MAX_READ_BYTES))
        async with tools.client(ctx) as client:
            info, data = await client.read_file(workspace_id, path, limit)
        return {
            "path": info.path or path,
            "size": info.size,
            "content": data.decode(errors="replace"),
            "truncated": info.size > len(data),
        }

    @server.tool(
        description="Write a whole text file in a workspace (paths relative to /workspace), replacing it "
        "and creating missing directories."
    )
    async def write_file(ctx: Context, workspace_id: str, path: str, content: str) -> dict[str, Any]:
        data = content.encode()
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"content is over {MAX_WRITE_BYTES} bytes")
        async with tools.client(ctx) as client:
            info = await client.write_file(workspace_id, path, data)
        return {"path": info.path or path, "size": info.size}

    @server.tool(
        description="List a directory in a workspace (paths relative to /workspace).", annotations=READ_ONLY
    )
    async def list_files(
        ctx: Context, workspace_id: str, path: str = "", recursive: bool = False, max_entries: int = 1000
    ) -> dict[str, Any]:
        async with tools.client(ctx) as client:
            listed = await client.list_files(
                workspace_id, path, recursive=recursive, max_entries=max(1, min(max_entries, 10_000))
            )
        return {
            "entries": [
                {
                    "path": e.path,
                    "type": ex.FileType.Name(e.type).removeprefix("FILE_TYPE_").lower(),
                    "size": e.size,
                }
                for e in listed.entries
            ],
            "truncated": listed.truncated,
        }

    @server.tool(
        description="List the executor's named tools (run them with run_named_tool): name, description, "
        "JSON Schema of their arguments.",
        annotations=READ_ONLY,
    )
    async def list_named_tools(ctx: Context) -> dict[str, Any]:
        async with tools.client(ctx) as client:
            named = await client.list_tools()
        return {
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "args_schema_json": t.args_schema_json,
                    "read_only": t.read_only,
                }
                for t in named
            ]
        }

    @server.tool(description="Run one of the executor's named tools in a workspace with JSON arguments.")
    async def run_named_tool(
        ctx: Context,
        workspace_id: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> dict[str, Any]:
        action = ex.Action(tool_name=tool)
        action.args.update(arguments or {})
        request = ex.StepRequest(workspace_id=workspace_id, action=action)
        seconds = _timeout(timeout_seconds)
        request.timeout.FromNanoseconds(int(seconds * 1e9))
        async with tools.client(ctx) as client:
            response = await client.step(request, deadline=seconds + 30)
        out = response.observation.tool_output
        stdout, stdout_cut = _bounded(out.stdout.encode())
        stderr, stderr_cut = _bounded(out.stderr.encode())
        return {
            "exit_code": out.exit_status,
            "stdout": stdout,
            "stderr": stderr,
            "message": out.message,
            "output_truncated": out.truncated or stdout_cut or stderr_cut,
        }

    return server


async def serve_stdio(settings: ConnectionSettings, via: Service = "executor") -> None:
    tools = FireboxTools(settings, caller_tokens=False, via=via)
    try:
        await build_server(tools).run_stdio_async()
    finally:
        await tools.close()


async def serve_http(settings: ConnectionSettings, host: str, port: int, via: Service = "executor") -> None:
    """Streamable HTTP at http://HOST:PORT/mcp; callers bring their own bearer token."""
    tools = FireboxTools(settings, caller_tokens=True, via=via)
    await build_server(tools).run_streamable_http_async(host=host, port=port)
