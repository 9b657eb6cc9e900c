"""Fixtures of the MCP tests: real MCP servers on the official SDK (tests/support/mcp_tool_server.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.executor_server import free_port

TOOL_SERVER = Path(__file__).resolve().parents[2] / "support" / "mcp_tool_server.py"


def stdio_server(**extra: object) -> dict[str, object]:
    """The mcp.json entry of the test server over stdio, run by this interpreter."""
    return {"command": sys.executable, "args": [str(TOOL_SERVER)], **extra}


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The test server on streamable HTTP; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(TOOL_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the HTTP MCP test server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


def write_config(path: Path, servers: dict[str, object]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}))
    return path
