"""A real executor (Docker backend, a bearer token, one named tool) and `firebox mcp` in front of it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.agent_policies.conftest import TOOLS_FILE
from tests.support.executor_server import delete_workspaces, free_port, listening_process, running_executor

TOKEN = "mcp-test-token-0123456789"
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
    with listening_process([FIREBOX, "mcp", "--http", f"127.0.0.1:{port}"], port, env=firebox_env(executor)):
        yield f"http://127.0.0.1:{port}/mcp"
