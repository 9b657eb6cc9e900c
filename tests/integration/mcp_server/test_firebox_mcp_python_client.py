"""`firebox mcp` driven by the official MCP Python client SDK: over stdio as an MCP client would
launch it, and over streamable HTTP where each caller's bearer token is what the executor sees."""

from __future__ import annotations

import json

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.integration.mcp_server.conftest import FIREBOX, TOKEN, firebox_env
from tests.support.agent_server import running_agent

pytestmark = pytest.mark.docker

EXPECTED_TOOLS = {
    "create_workspace",
    "list_workspaces",
    "delete_workspace",
    "open_session",
    "run_command",
    "read_file",
    "write_file",
    "list_files",
    "list_named_tools",
    "run_named_tool",
}


def _data(result) -> dict:
    assert not result.is_error, result.content
    return (
        result.structured_content
        if isinstance(result.structured_content, dict)
        else json.loads(result.content[0].text)
    )


async def test_an_mcp_client_runs_commands_and_files_in_a_workspace_over_stdio(executor):
    params = StdioServerParameters(command=FIREBOX, args=["mcp"], env=firebox_env(executor))
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == EXPECTED_TOOLS
        workspace = _data(await client.call_tool("create_workspace", {"name": "mcp-py"}))
        ws = workspace["workspace_id"]
        try:
            assert workspace["status"] == "running"
            assert ws in {
                w["workspace_id"] for w in _data(await client.call_tool("list_workspaces", {}))["workspaces"]
            }

            session = _data(await client.call_tool("open_session", {"workspace_id": ws}))["session_id"]
            first = _data(
                await client.call_tool(
                    "run_command",
                    {"workspace_id": ws, "session_id": session, "command": "cd /tmp && export A=kept"},
                )
            )
            assert first["exit_code"] == 0
            second = _data(
                await client.call_tool(
                    "run_command",
                    {"workspace_id": ws, "session_id": session, "command": 'pwd; echo "$A"; exit 3'},
                )
            )
            assert (second["stdout"], second["exit_code"]) == ("/tmp\nkept\n", 3)
            timed = _data(
                await client.call_tool(
                    "run_command", {"workspace_id": ws, "command": "sleep 30", "timeout_seconds": 1}
                )
            )
            assert timed["end_reason"] == "timed_out"
            fed = _data(
                await client.call_tool(
                    "run_command", {"workspace_id": ws, "command": "wc -c", "stdin": "12345"}
                )
            )
            assert fed["stdout"].strip() == "5"

            wrote = _data(
                await client.call_tool(
                    "write_file", {"workspace_id": ws, "path": "notes/a.txt", "content": "one\ntwo\n"}
                )
            )
            assert wrote["size"] == 8
            read = _data(await client.call_tool("read_file", {"workspace_id": ws, "path": "notes/a.txt"}))
            assert (read["content"], read["truncated"]) == ("one\ntwo\n", False)
            cut = _data(
                await client.call_tool(
                    "read_file", {"workspace_id": ws, "path": "notes/a.txt", "max_bytes": 3}
                )
            )
            assert (cut["content"], cut["truncated"]) == ("one", True)
            listed = _data(await client.call_tool("list_files", {"workspace_id": ws, "path": "notes"}))
            assert [(e["path"].rsplit("/", 1)[-1], e["type"]) for e in listed["entries"]] == [
                ("a.txt", "regular")
            ]

            named = _data(await client.call_tool("list_named_tools", {}))["tools"]
            assert {"count_lines", "make_marker"} <= {t["name"] for t in named}
            counted = _data(
                await client.call_tool(
                    "run_named_tool",
                    {"workspace_id": ws, "tool": "count_lines", "arguments": {"path": "notes/a.txt"}},
                )
            )
            assert counted["exit_code"] == 0 and counted["stdout"].split()[0] == "2"

            missing = await client.call_tool("read_file", {"workspace_id": ws, "path": "nope.txt"})
            assert missing.is_error and "NOT_FOUND" in missing.content[0].text
            refused = await client.call_tool(
                "run_command", {"workspace_id": ws, "command": "true", "timeout_seconds": 0}
            )
            assert refused.is_error and "timeout_seconds" in refused.content[0].text
        finally:
            deleted = await client.call_tool("delete_workspace", {"workspace_id": ws})
        assert _data(deleted) == {"deleted": ws}
        gone = await client.call_tool("run_command", {"workspace_id": ws, "command": "true"})
        assert gone.is_error and "NOT_FOUND" in gone.content[0].text


async def test_the_executor_token_is_required_over_stdio(executor):
    params = StdioServerParameters(
        command=FIREBOX, args=["mcp"], env=firebox_env(executor, token="wrong-token-value")
    )
    async with Client(params) as client:
        result = await client.call_tool("list_workspaces", {})
    assert result.is_error and "UNAUTHENTICATED" in result.content[0].text


async def test_http_callers_bring_their_own_bearer_token(mcp_http):
    async with Client(mcp_http) as anonymous:
        refused = await anonymous.call_tool("list_workspaces", {})
    # The server process holds the right token itself, and still does not lend it.
    assert refused.is_error and "UNAUTHENTICATED" in refused.content[0].text

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http,
        Client(streamable_http_client(mcp_http, http_client=http)) as client,
    ):
        workspace = _data(await client.call_tool("create_workspace", {"name": "mcp-http"}))
        try:
            ran = _data(
                await client.call_tool(
                    "run_command", {"workspace_id": workspace["workspace_id"], "command": "echo over-http"}
                )
            )
            assert (ran["stdout"], ran["exit_code"]) == ("over-http\n", 0)
        finally:
            await client.call_tool("delete_workspace", {"workspace_id": workspace["workspace_id"]})


async def test_with_via_agent_workspaces_and_commands_go_through_the_agent(executor, tmp_path):
    async with running_agent(tmp_path / "agent", executor=executor, auth_token=TOKEN) as agent:
        # The executor itself is unreachable for this server: only the agent's forwarding works.
        env = {**firebox_env("127.0.0.1:9"), "FIREBOX_AGENT": agent.target}
        params = StdioServerParameters(command=FIREBOX, args=["mcp", "--via", "agent"], env=env)
        async with Client(params) as client:
            workspace = _data(await client.call_tool("create_workspace", {"name": "mcp-via-agent"}))
            ws = workspace["workspace_id"]
            try:
                listed = _data(await client.call_tool("list_workspaces", {}))["workspaces"]
                assert ws in {w["workspace_id"] for w in listed}
                ran = _data(
                    await client.call_tool(
                        "run_command", {"workspace_id": ws, "command": "echo via-agent; exit 2"}
                    )
                )
                assert (ran["stdout"], ran["exit_code"]) == ("via-agent\n", 2)
                files = await client.call_tool("list_files", {"workspace_id": ws})
                assert files.is_error and "UNAVAILABLE" in files.content[0].text
            finally:
                assert _data(await client.call_tool("delete_workspace", {"workspace_id": ws})) == {
                    "deleted": ws
                }
