"""MCP in the agent: operator-configured servers (stdio next to the agent, streamable HTTP) offer
their tools to the model; calls go through approvals, timeouts, output limits, cancellation and
the training log; failures are tool errors and the server comes back on next use."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from agent_service import mcp_tools
from agent_service.server import Agent
from firebox.agent.v1 import agent_pb2 as A
from firebox.trace.v1 import trace_pb2
from tests.integration.agent_mcp.conftest import stdio_server, write_config
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent
from tests.support.fake_provider import FakeProvider, text_reply, tool_reply


@pytest.fixture
async def agent(tmp_path: Path, fake: FakeProvider, http_server: str) -> AsyncIterator[Agent]:
    config = write_config(
        tmp_path / "mcp.json",
        {
            "tools": stdio_server(env={"TEST_SECRET": "s3cr3t-value"}),
            "web": {"url": http_server, "headers": {"X-Test": "1"}},
            "broken": {"command": str(tmp_path / "no-such-program")},
        },
    )
    async with running_agent(
        tmp_path / "agent", provider=fake.base_url, mcp_config=config, tool_timeout=5.0, tool_output_limit=200
    ) as running:
        yield running


def _results(events: list[A.RunEvent]) -> dict[str, A.ToolCallFinished]:
    return {
        e.tool_call_finished.tool_call_id: e.tool_call_finished
        for e in events
        if e.HasField("tool_call_finished")
    }


async def _chat(stub, session_id: str, fake: FakeProvider, *calls) -> list[A.RunEvent]:
    fake.script(tool_reply(*calls), text_reply("done"))
    events = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session_id, content="go")))
    assert kinds(events)[-1] == "run_completed", kinds(events)
    return events


async def test_list_tools_shows_mcp_tools_with_their_source_and_schema(agent):
    stub = agent_stub(agent)
    response = await stub.ListTools(A.ListToolsRequest())
    tools = {t.name: t for t in response.tools}
    assert {"shell", "read_file", "write_file"} <= set(tools)
    assert tools["shell"].source == A.TOOL_SOURCE_BUILTIN
    echo = tools["mcp__tools__echo"]
    assert (echo.source, echo.mcp_server, echo.mcp_tool) == (A.TOOL_SOURCE_MCP, "tools", "echo")
    assert json.loads(echo.parameters_json)["properties"]["text"]["type"] == "string"
    assert "Say the text back." in echo.description
    assert tools["mcp__web__add"].mcp_server == "web"
    assert not [n for n in tools if n.startswith("mcp__broken__")]
    servers = {s.name: s for s in response.mcp_servers}
    assert servers["tools"].ready and servers["tools"].tool_count == 7
    assert servers["tools"].origin == A.MCP_SERVER_ORIGIN_OPERATOR
    assert servers["web"].ready
    assert not servers["broken"].ready and "failed to start" in servers["broken"].error


async def test_model_uses_stdio_and_http_server_tools_in_a_chat(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub)
    events = await _chat(
        stub,
        session.id,
        fake,
        ("mcp__tools__echo", {"text": "hello"}, "call_echo"),
        ("mcp__web__add", {"a": 2, "b": 40}, "call_add"),
    )
    results = _results(events)
    assert results["call_echo"].result == "echo: hello" and results["call_echo"].exit_code == 0
    assert results["call_add"].result == "42"
    offered = {t["function"]["name"] for t in fake.requests[0]["tools"]}
    assert {"mcp__tools__echo", "mcp__web__add", "shell"} <= offered
    told = {m.get("tool_call_id"): m["content"] for m in fake.requests[1]["messages"] if m["role"] == "tool"}
    assert told == {"call_echo": "echo: hello", "call_add": "42"}

    agent.training_log.flush()
    records = [
        json_format.Parse(line, trace_pb2.ToolCallRecord())
        for path in sorted((agent.config.log_dir).glob("tool_calls-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    by_call = {r.tool_call_id: r for r in records}
    assert (by_call["call_echo"].server, by_call["call_echo"].tool) == ("tools", "echo")
    assert json.loads(by_call["call_echo"].arguments) == {"text": "hello"}
    assert by_call["call_echo"].result == "echo: hello" and not by_call["call_echo"].is_error
    assert (by_call["call_add"].server, by_call["call_add"].tool) == ("web", "add")
    assert by_call["call_add"].session_id == session.id and by_call["call_add"].generation_id


async def test_a_crash_mid_call_is_a_tool_error_and_the_server_restarts_on_next_use(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub)
    before = json.loads(
        _results(await _chat(stub, session.id, fake, ("mcp__tools__where", {}, "c1")))["c1"].result
    )
    events = await _chat(stub, session.id, fake, ("mcp__tools__crash", {}, "c2"))
    crashed = _results(events)["c2"]
    assert "closed the connection" in crashed.result and crashed.exit_code == 1
    after = json.loads(
        _results(await _chat(stub, session.id, fake, ("mcp__tools__where", {}, "c3")))["c3"].result
    )
    assert after["pid"] != before["pid"]
    # The agent kept serving throughout.
    assert (await stub.GetServerInfo(A.GetServerInfoRequest())).version


async def test_a_server_that_dies_while_idle_is_restarted_before_the_next_call(agent, fake, monkeypatch):
    monkeypatch.setattr(mcp_tools, "CHECK_INTERVAL_SECONDS", 0.1)
    stub = agent_stub(agent)
    session = await new_session(stub)
    before = json.loads(
        _results(await _chat(stub, session.id, fake, ("mcp__tools__where", {}, "c1")))["c1"].result
    )
    connection = agent.loop.mcp._operator["tools"]  # white box: the idle checks' verdict
    await asyncio.sleep(1.0)  # several checks of a live server
    assert connection.ready and connection.failures == 0, connection.error
    os.kill(before["pid"], signal.SIGKILL)
    for _ in range(200):
        if not connection.ready:
            break
        await asyncio.sleep(0.05)
    assert not connection.ready and "no answer while idle" in connection.error
    after = _results(await _chat(stub, session.id, fake, ("mcp__tools__where", {}, "c2")))["c2"]
    assert after.exit_code == 0 and json.loads(after.result)["pid"] != before["pid"]


async def test_timeouts_and_malformed_results_are_tool_errors_and_the_run_goes_on(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub)
    events = await _chat(
        stub,
        session.id,
        fake,
        ("mcp__tools__sleep", {"seconds": 30}, "slow"),
        ("mcp__tools__malformed", {}, "bad"),
        ("mcp__tools__echo", {"text": "still here"}, "after"),
    )
    results = _results(events)
    assert "timed out after 5s" in results["slow"].result
    assert "malformed" in results["bad"].result and results["bad"].exit_code == 1
    assert results["after"].result == "echo: still here"


async def test_mcp_output_is_cut_to_the_tool_output_limit(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub)
    events = await _chat(stub, session.id, fake, ("mcp__tools__big", {"size": 5000}, "big"))
    finished = _results(events)["big"]
    assert finished.output_truncated and "bytes omitted" in finished.result
    assert len(finished.result) < 400
    streamed = b"".join(e.tool_output.stdout_data for e in events if e.HasField("tool_output"))
    assert len(streamed) == 5000


async def test_mcp_calls_follow_the_approval_policy(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST)
    fake.script(
        tool_reply(("mcp__tools__add", {"a": 1, "b": 1}, "ro"), ("mcp__tools__echo", {"text": "x"}, "rw")),
        text_reply("ok"),
    )
    call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
    events: list[A.RunEvent] = []
    async for response in call:
        events.append(response.event)
        if response.event.HasField("approval_requested"):
            break
    request = events[-1].approval_requested
    # add is declared read-only by an operator's server: it ran without asking; echo waits.
    assert _results(events)["ro"].result == "2"
    assert request.tool_call.id == "rw" and json.loads(request.command) == {"text": "x"}
    assert "not declared read-only" in request.reason
    await stub.ResolveApproval(
        A.ResolveApprovalRequest(
            run_id=events[0].run_id,
            tool_call_id="rw",
            decision=A.APPROVAL_DECISION_APPROVE_EDITED,
            edited_command=json.dumps({"text": "edited"}),
        )
    )
    events += [r.event async for r in call]
    assert _results(events)["rw"].result == "echo: edited"


async def test_cancelling_a_run_stops_an_mcp_call_and_the_server_still_serves(agent, fake):
    stub = agent_stub(agent)
    session = await new_session(stub)
    fake.script(tool_reply(("mcp__web__sleep", {"seconds": 4}, "long")))
    call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
    events: list[A.RunEvent] = []
    async for response in call:
        events.append(response.event)
        if response.event.HasField("tool_call_started"):
            break
    await asyncio.sleep(0.3)
    await stub.CancelRun(A.CancelRunRequest(run_id=events[0].run_id))
    events += [r.event async for r in call]
    assert kinds(events)[-1] == "run_cancelled"
    got = await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
    assert "cancelled" in got.messages[-1].content and got.messages[-1].tool_call_id == "long"
    events = await _chat(stub, session.id, fake, ("mcp__web__echo", {"text": "again"}, "next"))
    assert _results(events)["next"].result == "echo: again"


async def test_operator_secrets_in_mcp_config_are_redacted_from_logs(agent, fake):
    from firebox.common.secrets import redactor

    assert "s3cr3t-value" not in redactor.text("env s3cr3t-value here")


@pytest.mark.parametrize(
    ("servers", "problem"),
    [
        ({"remote": A.McpServer(url="http://10.0.0.1/mcp")}, "stdio servers only"),
        ({"a__b": A.McpServer(command="x")}, "no '__'"),
        ({"tools": A.McpServer(command="x")}, "agent's own MCP configuration"),
        ({"empty": A.McpServer()}, "command"),
    ],
)
async def test_session_servers_are_checked_at_create(agent, servers, problem):
    stub = agent_stub(agent)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateSession(A.CreateSessionRequest(settings=A.SessionSettings(mcp_servers=servers)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in caught.value.details()


async def test_a_bad_mcp_config_stops_start_up_naming_the_flag(tmp_path):
    bad = tmp_path / "mcp.json"
    bad.write_text(json.dumps({"mcpServers": {"x": {"command": "a", "url": "http://b"}}}))
    from firebox.common.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="--mcp-config"):
        async with running_agent(tmp_path / "agent", mcp_config=bad):
            pass
