"""The executor's named tools offered to the model and run through Step, and read_file /
write_file on the executor's file RPCs, against a real executor (Docker)."""

from __future__ import annotations

import json

import pytest

from firebox.agent.v1 import agent_pb2
from tests.integration.agent_policies.conftest import log_records, rest, run_until_approval, tool_results
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent
from tests.support.fake_provider import text_reply, tool_reply

pytestmark = pytest.mark.docker

A = agent_pb2


async def test_named_tools_are_offered_and_run_through_step(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_NEVER)
        fake.script(
            tool_reply(("write_file", {"path": "src/a.txt", "content": "one\ntwo\nthree\n"}, "call_w")),
            tool_reply(("count_lines", {"path": "src/a.txt"}, "call_count")),
            text_reply("three lines"),
        )
        events = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="count")))
        assert kinds(events)[-1] == "run_completed"
        offered = {t["function"]["name"]: t["function"] for t in fake.requests[0]["tools"]}
        assert list(offered)[:3] == ["shell", "read_file", "write_file"]
        assert {"count_lines", "make_marker"} <= set(offered)
        assert offered["count_lines"]["parameters"]["required"] == ["path"]
        assert offered["count_lines"]["description"] == "Count the lines of a file in the workspace."
        results = tool_results(events)
        assert results["call_count"].startswith("3 src/a.txt") and results["call_count"].endswith(
            "[exit code 0]"
        )
        finished = next(
            e.tool_call_finished for e in events if e.tool_call_finished.tool_call_id == "call_count"
        )
        assert finished.execution_id
    generations = log_records(tmp_path / "agent", "generations")
    assert {"shell", "read_file", "write_file", "count_lines"} <= {t.name for t in generations[0].tools}
    schema = next(t for t in generations[0].tools if t.name == "count_lines").parameters
    assert json.loads(schema)["properties"] == {"path": {"type": "string"}}


async def test_approval_policy_applies_to_named_tools(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST)
        fake.script(
            tool_reply(("count_lines", {"path": "nothing"}, "call_ro")),  # declared read-only: no wait
            tool_reply(("make_marker", {"name": "m1"}, "call_mk")),
            text_reply("ok"),
        )
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, request = await run_until_approval(call)
        assert request is not None and request.tool_call.id == "call_mk"
        assert "call_ro" in tool_results(events)
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id,
                tool_call_id="call_mk",
                decision=A.APPROVAL_DECISION_APPROVE_EDITED,
                edited_command='{"name": "m2"}',
            )
        )
        events += await rest(call)
        fake.script(tool_reply(("shell", {"command": "ls /workspace"}, "call_ls")), text_reply("ok"))
        listing = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="ls")))
        assert tool_results(listing)["call_ls"].split() == ["m2", "[exit", "code", "0]"]


async def test_read_file_and_write_file_round_trip_and_escapes_are_refused(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor, tool_output_limit=64) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_NEVER)
        fake.script(
            tool_reply(("write_file", {"path": "notes/todo.md", "content": "- ship it\n"}, "call_w")),
            tool_reply(("read_file", {"path": "notes/todo.md"}, "call_r")),
            tool_reply(("read_file", {"path": "../../etc/passwd"}, "call_escape")),
            tool_reply(("write_file", {"path": "/etc/evil", "content": "x"}, "call_abs")),
            tool_reply(("write_file", {"path": "big.txt", "content": "y" * 500}, "call_big")),
            tool_reply(("read_file", {"path": "big.txt"}, "call_rbig")),
            text_reply("ok"),
        )
        events = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="files")))
        assert kinds(events)[-1] == "run_completed"
        results = tool_results(events)
        assert results["call_w"] == "wrote 10 bytes to /workspace/notes/todo.md"
        assert results["call_r"] == "- ship it\n"
        assert results["call_escape"].startswith("[error:") and "root:" not in results["call_escape"]
        assert results["call_abs"].startswith("[error:")
        assert results["call_rbig"].startswith("y" * 64) and "first 64 of 500 bytes" in results["call_rbig"]


async def test_write_file_waits_for_approval_under_the_servers_default_policy(tmp_path, fake, executor):
    async with running_agent(
        tmp_path / "agent", fake.base_url, executor, default_approval_policy="on-request"
    ) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)  # no policy: the server's default, ON_REQUEST here
        fake.script(
            tool_reply(("write_file", {"path": "x.txt", "content": "x"}, "call_w")),
            tool_reply(("read_file", {"path": "x.txt"}, "call_r")),
            text_reply("ok"),
        )
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, request = await run_until_approval(call)
        assert request is not None and request.tool_call.id == "call_w"
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_w", decision=A.APPROVAL_DECISION_DENY
            )
        )
        events += await rest(call)
        assert sum(e.HasField("approval_requested") for e in events) == 1  # read_file did not ask
        assert tool_results(events)["call_r"].startswith("[error:")
