"""Approvals from the CLI against a real agent (scripted fake provider) and a real executor:
standing answers (--approve-all / --deny-all), failing closed without a terminal, and
`firebox runs approve|deny` answering a waiting run."""

from __future__ import annotations

import json

import pytest

from firebox.agent.v1 import agent_pb2 as A
from firebox.cli.approvals import NO_TERMINAL_REASON
from firebox.executor.v1 import executor_pb2 as ex
from tests.integration.agent_policies.conftest import rest, run_until_approval
from tests.support.agent_server import agent_stub, executor_stub, new_session
from tests.support.cli import firebox
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeProvider) -> None:
    fake.reset()


def targets(agent, executor) -> dict[str, str]:
    return {"agent": agent.target, "executor": executor.target}


async def session_of(stderr: str) -> str:
    """The new session's id from chat's note `session ses-… (continue it with …)`."""
    line = next(line for line in stderr.splitlines() if line.startswith("session "))
    return line.split()[1]


async def exists(agent, executor, session_id: str, path: str) -> bool:
    """Whether `path` exists in the session's workspace, asked of the executor directly."""
    shown = await firebox("sessions", "show", session_id, "--json", **targets(agent, executor))
    workspace_id = json.loads(shown.stdout)["session"]["workspaceId"]
    assert workspace_id, "the session has no workspace yet"
    call = executor_stub(executor.target).Execute()
    await call.write(ex.ExecuteRequest(workspace_id=workspace_id, argv=["test", "-e", path]))
    await call.done_writing()
    responses = [response async for response in call]
    return responses[-1].exit_code.value == 0


def tool_result(fake: FakeProvider, call_id: str) -> str:
    for request in fake.requests:
        for message in request["messages"]:
            if message.get("tool_call_id") == call_id:
                return message["content"]
    raise AssertionError(f"no tool result for {call_id}")


def script_marker(fake: FakeProvider, marker: str) -> None:
    # `pwd` is read-only (runs at once under on-request, creating the workspace); the touch waits.
    fake.script(
        shell_reply("pwd", call_id="call_setup"),
        shell_reply(f"touch /workspace/{marker}", call_id="call_marker"),
        text_reply("done"),
    )


async def test_deny_all_in_one_shot_mode_denies_and_the_command_never_runs(agent, executor, fake) -> None:
    script_marker(fake, "deny-all-marker")
    result = await firebox(
        "chat", "--approval", "on-request", "--deny-all", "-m", "go", **targets(agent, executor)
    )
    assert result.code == 0, result.stderr
    assert "⏸ approval needed: shell: touch /workspace/deny-all-marker" in result.text
    assert "✘ denied: denied by --deny-all" in result.text
    assert "denied (--deny-all)" in result.stderr
    assert tool_result(fake, "call_marker") == "denied by the user: denied by --deny-all"
    session_id = await session_of(result.stderr)
    assert not await exists(agent, executor, session_id, "/workspace/deny-all-marker")


async def test_one_shot_without_a_terminal_fails_closed_and_says_how_to_allow(agent, executor, fake) -> None:
    script_marker(fake, "no-tty-marker")
    result = await firebox("chat", "--approval", "on-request", "-m", "go", **targets(agent, executor))
    assert result.code == 0, result.stderr
    assert "approval needs a terminal" in result.stderr and "--approve-all" in result.stderr
    assert tool_result(fake, "call_marker") == f"denied by the user: {NO_TERMINAL_REASON}"
    session_id = await session_of(result.stderr)
    assert not await exists(agent, executor, session_id, "/workspace/no-tty-marker")


async def test_approve_all_runs_the_command(agent, executor, fake) -> None:
    script_marker(fake, "approve-all-marker")
    result = await firebox(
        "chat", "--approval", "on-request", "--approve-all", "-m", "go", **targets(agent, executor)
    )
    assert result.code == 0, result.stderr
    assert "✔ approved" in result.text
    session_id = await session_of(result.stderr)
    assert await exists(agent, executor, session_id, "/workspace/approve-all-marker")


async def test_session_created_by_chat_keeps_the_approval_and_sandbox_flags(agent, executor, fake) -> None:
    fake.script(text_reply("hi"))
    result = await firebox(
        "chat", "--approval", "always", "--sandbox", "read-only", "-m", "hi", **targets(agent, executor)
    )
    assert result.code == 0, result.stderr
    session_id = await session_of(result.stderr)
    shown = await firebox("sessions", "show", session_id, "--json", **targets(agent, executor))
    settings = json.loads(shown.stdout)["session"]["settings"]
    assert settings["approvalPolicy"] == "APPROVAL_POLICY_ALWAYS"
    assert settings["sandboxMode"] == "SANDBOX_MODE_READ_ONLY"


async def test_runs_deny_and_runs_approve_command_answer_a_waiting_run(agent, executor, fake) -> None:
    stub = agent_stub(agent.target)
    session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
    fake.script(
        shell_reply("touch /workspace/runs-denied", call_id="call_a"),
        shell_reply("touch /workspace/runs-suggested", call_id="call_b"),
        text_reply("ok"),
    )
    call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
    events, request = await run_until_approval(call)
    assert request is not None and request.tool_call.id == "call_a"
    run_id = events[0].run_id

    denied = await firebox(
        "runs", "deny", run_id, "call_a", "--reason", "not today", **targets(agent, executor)
    )
    assert denied.code == 0, denied.stderr
    more, request = await run_until_approval(call)
    assert request is not None and request.tool_call.id == "call_b"

    edited = await firebox(
        "runs", "approve", run_id, "call_b", "--command", "touch /workspace/runs-edited",
        **targets(agent, executor),
    )  # fmt: skip
    assert edited.code == 0, edited.stderr
    events += more + await rest(call)
    resolved = [e.approval_resolved for e in events if e.HasField("approval_resolved")]
    assert [(r.decision, r.reason, r.command) for r in resolved] == [
        (A.APPROVAL_DECISION_DENY, "not today", ""),
        (A.APPROVAL_DECISION_APPROVE_EDITED, "", "touch /workspace/runs-edited"),
    ]
    assert tool_result(fake, "call_a") == "denied by the user: not today"
    assert await exists(agent, executor, session.id, "/workspace/runs-edited")
    assert not await exists(agent, executor, session.id, "/workspace/runs-suggested")

    # Nothing waits any more: a conflict (exit 6), one line.
    again = await firebox("runs", "approve", run_id, "call_b", **targets(agent, executor))
    assert again.code == 6
    assert "answer the approval request" in again.error_line()


async def test_attach_answers_only_the_request_still_waiting_not_replayed_ones(agent, executor, fake) -> None:
    stub = agent_stub(agent.target)
    session = await new_session(stub, approval_policy=A.APPROVAL_POLICY_ALWAYS)
    fake.script(
        shell_reply("echo first-call", call_id="call_1"),
        shell_reply("touch /workspace/attach-approved", call_id="call_2"),
        text_reply("finished"),
    )
    call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="go"))
    events, request = await run_until_approval(call)
    run_id = events[0].run_id
    await stub.ResolveApproval(
        A.ResolveApprovalRequest(run_id=run_id, tool_call_id="call_1", decision=A.APPROVAL_DECISION_APPROVE)
    )
    _, request = await run_until_approval(call)
    assert request is not None and request.tool_call.id == "call_2"

    # The replay holds call_1's request and its resolution, then call_2's request, still waiting.
    attached = await firebox("runs", "attach", run_id, "--approve-all", **targets(agent, executor))
    assert attached.code == 0, attached.stderr
    assert "approved (--approve-all): shell: touch /workspace/attach-approved" in attached.stderr
    assert "echo first-call" not in attached.stderr  # the resolved request was not answered again
    assert "answered already" not in attached.stderr
    assert attached.text.endswith("finished\n")
    await rest(call)
    assert await exists(agent, executor, session.id, "/workspace/attach-approved")
