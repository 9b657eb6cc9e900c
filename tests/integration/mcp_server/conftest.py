"""A real executor (Docker backend, a bearer token, one named tool) and `firebox mcp` in front of it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.executor_server import delete_workspaces, free_port, running_executor

TOKEN = "mcp-test-token-0123456789"
TOOLS_FILE = {
    "tools": [
        {
            "name": "count_lines",
            "description": "Count the lines of a file in the workspace.",
            "args_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
            "command": ["wc", "-l", "{path}"],
            "read_only": True,
        }
    ]
}
FIREBOX = str(Path(sys.executable).with_name("firebox"))


@pytest.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    config_dir = tmp_path_factory.mktemp("executor")
    tools = config_dir / "tools.json"
    tools.write_text(json.dumps(TOOLS_FILE))
    async with running_executor(config_dir, backend="docker", tools_file=tools, auth_token=TOKEN) as target:
        try:
            yield target
        finally:
            await asyncio.to_thread(delete_workspaces, target, TOKEN)


def firebox_env(executor: str, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")}
    env["FIREBOX_EXECUTOR"] = executor
    if token:
        env["FIREBOX_AUTH_TOKEN"] = token
    return env


@pytest.fixture
def mcp_http(executor: str) -> Iterator[str]:
    """`firebox mcp --http` with the CLI's own token set (it must never be lent to callers)."""
    port = free_port()
    process = subprocess.Popen(
        [FIREBOX, "mcp", "--http", f"127.0.0.1:{port}"],
        env=firebox_env(executor),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(
                        f"firebox mcp --http did not start: {process.stderr.read()!r}"
                    ) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


NODE = shutil.which("node")
