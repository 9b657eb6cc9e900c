"""The MCP configuration and naming rules the agent relies on (docs/mcp.md)."""

from __future__ import annotations

import json
import re

import pytest

from agent_service.mcp_tools import _backoff, load_mcp_config, offered_name, parse_servers, session_servers
from firebox.agent.v1 import agent_pb2 as A
from firebox.common.errors import InvalidArgument
from firebox.common.secrets import redactor

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_the_mcp_json_shape_gives_stdio_and_http_servers():
    specs = parse_servers(
        {
            "fs": {"command": "npx", "args": ["-y", "server-fs", "/tmp"], "env": {"A": "1"}},
            "web": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
        }
    )
    assert (specs["fs"].command, specs["fs"].args, dict(specs["fs"].env)) == (
        "npx",
        ("-y", "server-fs", "/tmp"),
        {"A": "1"},
    )
    assert (specs["web"].url, dict(specs["web"].headers)) == (
        "https://example.com/mcp",
        {"Authorization": "Bearer x"},
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"command": "a", "url": "http://b"}, "exactly one of command"),
        ({}, "exactly one of command"),
        ({"url": "ftp://b"}, "http:// or https://"),
        ({"command": "a", "args": "not a list"}, "list of strings"),
        ({"command": "a", "env": {"A": 1}}, "object of strings"),
        ({"command": "a", "extra": 1}, "unknown keys: extra"),
        ("npx", "must be an object"),
    ],
)
def test_a_malformed_server_entry_is_refused_naming_it(entry, problem):
    with pytest.raises(InvalidArgument, match=re.escape(problem)) as caught:
        parse_servers({"x": entry})
    assert "mcpServers.x" in caught.value.message


@pytest.mark.parametrize("name", ["a__b", "a_", "", "has space", "x" * 33, "dot.ted"])
def test_server_names_that_could_collide_or_break_function_names_are_refused(name):
    with pytest.raises(InvalidArgument):
        parse_servers({name: {"command": "a"}})


def test_the_config_file_must_hold_mcp_servers_and_its_secrets_are_redacted(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"servers": {}}))
    with pytest.raises(InvalidArgument, match="--mcp-config"):
        load_mcp_config(path)
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_mcp_config(tmp_path / "missing.json")
    path.write_text(
        json.dumps({"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "ghp-unit-test-secret"}}}})
    )
    assert set(load_mcp_config(path)) == {"gh"}
    assert "ghp-unit-test-secret" not in redactor.text("token ghp-unit-test-secret")


def test_offered_names_are_valid_function_names_and_never_collide():
    assert offered_name("github", "create_issue") == "mcp__github__create_issue"
    names = {
        offered_name("a", "b__c"),
        offered_name("a", "_b__c"),
        offered_name("a-", "b__c"),
        offered_name("srv", "tool.with.dots"),
        offered_name("srv", "tool_with_dots"),
        offered_name("srv", "x" * 100),
        offered_name("srv", "x" * 101),
    }
    assert len(names) == 7
    assert all(FUNCTION_NAME.match(n) for n in names)


def test_session_servers_are_stdio_only_and_keep_clear_of_operator_names():
    settings = A.SessionSettings(
        mcp_servers={"mine": A.McpServer(command="node", args=["s.js"], env={"K": "v"})}
    )
    specs = session_servers(settings, frozenset({"github"}))
    assert (specs["mine"].command, specs["mine"].args) == ("node", ("s.js",))
    with pytest.raises(InvalidArgument, match="stdio servers only"):
        session_servers(A.SessionSettings(mcp_servers={"w": A.McpServer(url="http://10.0.0.1/mcp")}))
    with pytest.raises(InvalidArgument, match="agent's own MCP configuration"):
        session_servers(
            A.SessionSettings(mcp_servers={"github": A.McpServer(command="x")}), frozenset({"github"})
        )


def test_restarts_back_off_after_the_first():
    assert [_backoff(n) for n in range(1, 9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
