"""A real MCP server on the official SDK, for tests: stdio by default, streamable HTTP with
`--http PORT`. It imports nothing from Firebox, so it also runs inside a workspace.

Tools: echo, add (declared read-only), where (where the process runs), sleep, crash (the process
exits mid-call), malformed (stdio only: answers its own call with a result that breaks the
schema), big (a long text).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("firebox-test-tools")


@server.tool(description="Say the text back.")
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Add two integers.", annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Where this server runs: its pid, working directory, host and a marker file.")
def where() -> str:
    marker = "/workspace/mcp-marker"
    return json.dumps(
        {
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "hostname": socket.gethostname(),
            "marker": open(marker).read().strip() if os.path.exists(marker) else None,
            "started": STARTED,
        }
    )


@server.tool(description="Sleep, then answer.")
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Exit the server process in the middle of the call.")
def crash() -> str:
    os._exit(17)


@server.tool(description="Answer with a malformed result (stdio only).")
def malformed(ctx: Context) -> str:
    request_id: object = ctx.request_id
    if isinstance(request_id, str) and request_id.isdigit():
        request_id = int(request_id)
    bad = {"jsonrpc": "2.0", "id": request_id, "result": {"content": "not a list of blocks"}}
    # The SDK moves the wire off fd 1 while it serves; WIRE is the stdout it was started with.
    os.write(WIRE, (json.dumps(bad) + "\n").encode())
    return "the real answer, too late"


@server.tool(description="A long text of `size` characters.")
def big(size: int) -> str:
    return "".join(chr(ord("a") + i % 26) for i in range(size))


STARTED = time.time()
WIRE = os.dup(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=0, help="serve streamable HTTP on this port")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
