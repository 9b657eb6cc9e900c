"""`firebox mcp` driven by the official MCP TypeScript SDK (@modelcontextprotocol/sdk) under
`node --test`, so `make test` covers a Node MCP client too (tests/mcp_node/)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.integration.mcp_server.conftest import FIREBOX, TOKEN, firebox_env

pytestmark = pytest.mark.docker

NODE_TESTS = Path(__file__).resolve().parents[2] / "mcp_node"


async def test_the_typescript_mcp_sdk_drives_firebox_mcp(executor, mcp_http):
    node = shutil.which("node")
    assert node, "node is required (scripts/test-env.sh installs it)"
    assert (NODE_TESTS / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "run `npm ci` in tests/mcp_node (scripts/test-env.sh does)"
    )
    env = {
        **firebox_env(executor),
        "FIREBOX_BIN": FIREBOX,
        "FIREBOX_MCP_URL": mcp_http,
        "FIREBOX_AUTH_TOKEN": TOKEN,
    }
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "--test-reporter=tap",
        "firebox_mcp.test.mjs",
        cwd=NODE_TESTS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "# pass 2" in text and "# fail 0" in text, text
