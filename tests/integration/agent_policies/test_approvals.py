"""Approvals and sandbox modes against a real executor: what waits, what runs, what is logged."""

from __future__ import annotations

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.integration.agent_policies.conftest import log_records, rest, run_until_approval, tool_results
from tests.support.agent_server import agent_stub, collect, executor_stub, kinds, new_session, running_agent
from tests.support.fake_provider import shell_reply, text_reply, tool_reply

pytestmark = pytest.mark.docker

A = agent_pb2


async def _exists(executor: str, workspace_id: str, path: str) -> bool:
    call = executor_stub(executor).Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id=workspace_id, script=f"test -e {path}"))
    await call.done_writing()
    responses = [r async for r in call]
    return responses[-1].exit_code.value == 0


async def _workspace(stub, session_id: str) -> str:
    return (await stub.GetSession(A.GetSessionRequest(session_id=session_id))).session.workspace_id


async def test_denied_command_never_runs_and_the_model_is_told_why(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST)
        fake.script(
            shell_reply("pwd", call_id="call_setup"),
            shell_reply("touch /workspace/denied-marker", call_id="call_rm"),
            text_reply("understood"),
        )
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="make a marker"))
        events, request = await run_until_approval(call)
        assert request is not None and request.tool_call.id == "call_rm"
        assert request.command == "touch /workspace/denied-marker"
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id,
                tool_call_id="call_rm",
                decision=A.APPROVAL_DECISION_DENY,
                reason="not now",
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        assert tool_results(events)["call_rm"] == "denied by the user: not now"
        resolved = next(e.approval_resolved for e in events if e.HasField("approval_resolved"))
        assert resolved.decision == A.APPROVAL_DECISION_DENY
        tool_message = next(m for m in fake.requests[2]["messages"] if m.get("tool_call_id") == "call_rm")
        assert tool_message["content"] == "denied by the user: not now"
        workspace_id = await _workspace(stub, session.id)
        assert not await _exists(executor, workspace_id, "/workspace/denied-marker")
    (record,) = log_records(tmp_path / "agent")
    assert record.source == "agent" and record.feedback_id and record.server_time.seconds > 0
    assert record.event.kind == trace_pb2.FEEDBACK_KIND_APPROVAL_DENIED
    assert record.event.tool_call_id == "call_rm" and record.event.run_id == events[0].run_id
    assert record.event.session_id == session.id
    assert record.event.suggested_text == "touch /workspace/denied-marker"
    assert record.event.reason == "not now"


async def test_edited_command_runs_instead_of_the_suggested_one(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
        fake.script(shell_reply("touch /workspace/suggested", call_id="call_1"), text_reply("ok"))
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, request = await run_until_approval(call)
        assert request is not None
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id,
                tool_call_id="call_1",
                decision=A.APPROVAL_DECISION_APPROVE_EDITED,
                edited_command="touch /workspace/edited && echo edited-ran",
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        assert "edited-ran" in tool_results(events)["call_1"]
        workspace_id = await _workspace(stub, session.id)
        assert await _exists(executor, workspace_id, "/workspace/edited")
        assert not await _exists(executor, workspace_id, "/workspace/suggested")
    (record,) = log_records(tmp_path / "agent")
    assert record.event.kind == trace_pb2.FEEDBACK_KIND_APPROVAL_EDITED
    assert record.event.suggested_text == "touch /workspace/suggested"
    assert record.event.edited_text == "touch /workspace/edited && echo edited-ran"
    assert record.event.generation_id.startswith("gen-")


async def test_an_approval_wait_past_the_timeout_is_a_denial(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor, approval_timeout=1.0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
        fake.script(
            shell_reply("pwd", call_id="call_0"),
            shell_reply("touch /workspace/late", call_id="call_1"),
            text_reply("ok"),
        )
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, first = await run_until_approval(call)
        assert first is not None and first.tool_call.id == "call_0"
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_0", decision=A.APPROVAL_DECISION_APPROVE
            )
        )
        events += await rest(call)  # nobody answers the second request
        resolved = [e.approval_resolved for e in events if e.HasField("approval_resolved")]
        assert [(r.decision, r.timed_out) for r in resolved] == [
            (A.APPROVAL_DECISION_APPROVE, False),
            (A.APPROVAL_DECISION_DENY, True),
        ]
        assert tool_results(events)["call_1"].startswith("denied by the user: no decision within 1s")
        assert not await _exists(executor, await _workspace(stub, session.id), "/workspace/late")


async def test_cancel_during_an_approval_wait_ends_the_run(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
        fake.script(shell_reply("touch /workspace/x", call_id="call_1"))
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, request = await run_until_approval(call)
        assert request is not None
        cancelled = await stub.CancelRun(A.CancelRunRequest(run_id=events[0].run_id))
        assert cancelled.run.status == A.RUN_STATUS_CANCELLED
        events += await rest(call)
        assert kinds(events)[-1] == "run_cancelled"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ResolveApproval(
                A.ResolveApprovalRequest(
                    run_id=events[0].run_id, tool_call_id="call_1", decision=A.APPROVAL_DECISION_APPROVE
                )
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_on_request_lets_ls_through_but_stops_rm_and_ls_then_rm(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor, approval_timeout=30.0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ON_REQUEST)
        fake.script(
            shell_reply("ls /workspace", call_id="call_ls"),
            shell_reply("rm -f x", call_id="call_rm"),
            shell_reply("ls; rm -f x", call_id="call_chain"),
            text_reply("done"),
        )
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
        events, request = await run_until_approval(call)
        assert request is not None and request.tool_call.id == "call_rm"
        assert "call_ls" in tool_results(events)  # ran without asking
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_rm", decision=A.APPROVAL_DECISION_DENY
            )
        )
        more, request = await run_until_approval(call)
        events += more
        assert request is not None and request.tool_call.id == "call_chain"
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_chain", decision=A.APPROVAL_DECISION_APPROVE
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        assert tool_results(events)["call_chain"].endswith("[exit code 0]")


async def test_a_message_can_override_the_policy_but_not_the_sandbox(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
        fake.script(shell_reply("touch /workspace/never-asked", call_id="call_1"), text_reply("ok"))
        events = await collect(
            stub.SendMessage(
                A.SendMessageRequest(
                    session_id=session.id, content="go", approval_policy=A.APPROVAL_POLICY_NEVER
                )
            )
        )
        assert "approval_requested" not in kinds(events)
        assert await _exists(executor, await _workspace(stub, session.id), "/workspace/never-asked")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(
                stub.SendMessage(
                    A.SendMessageRequest(
                        session_id=session.id, content="go", sandbox_mode=A.SANDBOX_MODE_FULL
                    )
                )
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "sandbox" in info.value.details()


async def test_read_only_sandbox_refuses_writes(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(
            stub, approval_policy=A.APPROVAL_POLICY_NEVER, sandbox_mode=A.SANDBOX_MODE_READ_ONLY
        )
        fake.script(
            tool_reply(("write_file", {"path": "notes.txt", "content": "hi"}, "call_w")),
            shell_reply("touch /workspace/by-shell", call_id="call_s"),
            text_reply("ok"),
        )
        events = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="write")))
        results = tool_results(events)
        assert "READ_ONLY" in results["call_w"] and "refused" in results["call_w"]
        assert "read-only" in results["call_s"].lower()
        workspace = await executor_stub(executor).GetWorkspace(
            executor_pb2.GetWorkspaceRequest(workspace_id=await _workspace(stub, session.id))
        )
        assert workspace.workspace.policy.read_only and not workspace.workspace.policy.network


async def test_resolve_approval_refuses_bad_requests(tmp_path, fake):
    async with running_agent(tmp_path / "agent", fake.base_url) as agent:
        stub = agent_stub(agent)
        cases = [
            (
                A.ResolveApprovalRequest(tool_call_id="c", decision=A.APPROVAL_DECISION_APPROVE),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (A.ResolveApprovalRequest(run_id="r", tool_call_id="c"), grpc.StatusCode.INVALID_ARGUMENT),
            (
                A.ResolveApprovalRequest(
                    run_id="r", tool_call_id="c", decision=A.APPROVAL_DECISION_APPROVE_EDITED
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                A.ResolveApprovalRequest(
                    run_id="run-nope", tool_call_id="c", decision=A.APPROVAL_DECISION_APPROVE
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
        ]
        for request, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ResolveApproval(request)
            assert info.value.code() == code, request
