"""`firebox mcp`: Firebox workspaces as an MCP server (firebox/mcp_server.py)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from firebox.cli import exit_codes
from firebox.cli.app import App, CliError


def add_parser(subparsers: argparse._SubParsersAction[Any], parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mcp",
        parents=parents,
        help="serve Firebox workspaces as an MCP server (stdio, or streamable HTTP)",
        description=(
            "Serve Firebox to MCP clients: create, list and delete workspaces, run commands (in shell "
            "sessions, with timeouts and exit codes), read, write and list files, and run the "
            "executor's named tools. On stdin/stdout by default (for an MCP client's \"command\"), "
            "or on streamable HTTP at http://HOST:PORT/mcp with --http, where each caller's "
            "Authorization: Bearer token is what the executor sees. See docs/mcp.md."
        ),
    )
    parser.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP instead of stdio")
    parser.add_argument(
        "--via",
        choices=["executor", "agent"],
        default="executor",
        help="create, list and delete workspaces and run commands on the executor (default), or "
        "through the agent's forwarding (for executors clients cannot reach); shell sessions, "
        "files and named tools are always the executor's",
    )
    parser.set_defaults(handler=run)


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--http: expected HOST:PORT, got {value!r}", exit_codes.USAGE)
    return host.strip("[]"), int(port)


def run(app: App, args: argparse.Namespace) -> int:
    from firebox import mcp_server  # the MCP SDK loads only for this command

    if args.http:
        host, port = _address(args.http)
        asyncio.run(mcp_server.serve_http(app.settings, host, port, via=args.via))
    else:
        asyncio.run(mcp_server.serve_stdio(app.settings, via=args.via))
    return exit_codes.OK
