"""Fixtures of the MCP tests: real MCP servers on the official SDK (tests/support/mcp_tool_server.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.executor_server import free_port, listening_process
from tests.support.fake_provider import FakeProvider

TOOL_SERVER = Path(__file__).resolve().parents[2] / "support" / "mcp_tool_server.py"


def stdio_server(**extra: object) -> dict[str, object]:
    """The mcp.json entry of the test server over stdio, run by this interpreter."""
    return {"command": sys.executable, "args": [str(TOOL_SERVER)], **extra}


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The test server on streamable HTTP; yields its URL."""
    port = free_port()
    with listening_process([sys.executable, str(TOOL_SERVER), "--http", str(port)], port):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider.start()
    try:
        yield provider
    finally:
        await provider.stop()


def write_config(path: Path, servers: dict[str, object]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}))
    return path
