"""Model-reviewed approvals (MODEL_REVIEW) against the local fake provider and a real executor: the
reviewer approves, denies or asks the person; a review that fails, times out or answers
malformed goes to the person and never approves; every decision is logged with who made it."""

from __future__ import annotations

import json

import pytest

from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.integration.agent_policies.conftest import log_records, rest, run_until_approval, tool_results
from tests.support.agent_server import agent_stub, collect, executor_stub, kinds, new_session, running_agent
from tests.support.fake_provider import Hold, Reply, error_reply, shell_reply, text_reply

pytestmark = pytest.mark.docker

A = agent_pb2
COMMAND = "touch /workspace/reviewed-marker"


def _verdict(decision: str, reason: str) -> Reply:
    return text_reply(json.dumps({"decision": decision, "reason": reason}))


async def _marker_exists(stub, executor: str, session_id: str) -> bool:
    workspace_id = (await stub.GetSession(A.GetSessionRequest(session_id=session_id))).session.workspace_id
    if not workspace_id:
        return False  # nothing ran: the workspace was never made
    call = executor_stub(executor).Execute()
    await call.write(
        executor_pb2.ExecuteRequest(workspace_id=workspace_id, script="test -e /workspace/reviewed-marker")
    )
    await call.done_writing()
    return [r async for r in call][-1].exit_code.value == 0


async def _review_session(stub) -> agent_pb2.Session:
    return await new_session(stub, approval_policy=A.APPROVAL_POLICY_MODEL_REVIEW)


def _send(stub, session_id: str):
    return stub.SendMessage(
        A.SendMessageRequest(session_id=session_id, content="please make the marker file")
    )


@pytest.mark.parametrize(
    ("decision", "runs", "result_prefix"),
    [("approve", True, "[exit code 0]"), ("deny", False, "denied by the reviewer: not needed")],
)
async def test_the_reviewer_model_approves_or_denies_without_asking_the_person(
    tmp_path, fake, executor, decision, runs, result_prefix
):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await _review_session(stub)
        fake.script(
            shell_reply(COMMAND, call_id="call_1"),
            _verdict(decision, "fine for the request" if decision == "approve" else "not needed"),
            text_reply("finished"),
        )
        events = await collect(_send(stub, session.id))
        assert kinds(events)[-1] == "run_completed"
        assert not any(e.HasField("approval_requested") for e in events)
        resolved = next(e.approval_resolved for e in events if e.HasField("approval_resolved"))
        assert resolved.decided_by == trace_pb2.APPROVAL_DECIDER_MODEL
        assert resolved.reviewer_model == "fake-model"
        assert resolved.decision == (A.APPROVAL_DECISION_APPROVE if runs else A.APPROVAL_DECISION_DENY)
        assert tool_results(events)["call_1"].startswith(result_prefix)
        assert await _marker_exists(stub, executor, session.id) is runs
        # The reviewer saw the user's request and the exact action, and was offered no tools.
        review_call = fake.requests[1]
        assert "tools" not in review_call
        shown = review_call["messages"][1]["content"]
        assert "please make the marker file" in shown and f"command: {COMMAND}" in shown
    (record,) = log_records(tmp_path / "agent")
    assert record.event.decided_by == trace_pb2.APPROVAL_DECIDER_MODEL
    assert record.event.review_verdict == decision and record.event.reviewer_model == "fake-model"


@pytest.mark.parametrize(
    ("review", "note"),
    [
        (
            _verdict("ask", "cannot tell if the user wants this"),
            "the reviewer asked for a person: cannot tell",
        ),
        (text_reply("Sure, looks fine to me!"), "not a JSON object"),
        (_verdict("maybe", "hm"), "not approve, deny or ask"),
        (error_reply(400, "model not found"), "the review failed"),
        (Reply(steps=[Hold()]), "no answer within"),
    ],
    ids=["ask", "malformed", "unknown-decision", "provider-error", "timeout"],
)
async def test_ask_or_a_failed_review_goes_to_the_person_and_never_approves(
    tmp_path, fake, executor, review, note
):
    async with running_agent(tmp_path / "agent", fake.base_url, executor, review_timeout=1.0) as agent:
        stub = agent_stub(agent)
        session = await _review_session(stub)
        fake.script(shell_reply(COMMAND, call_id="call_1"), review, text_reply("ok"))
        call = _send(stub, session.id)
        events, request = await run_until_approval(call)
        fake.release()
        assert request is not None, "the request must reach the person"
        assert note in request.review_note
        assert not await _marker_exists(stub, executor, session.id)
        await stub.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_1", decision=A.APPROVAL_DECISION_DENY, reason="no"
            )
        )
        events += await rest(call)
        assert kinds(events)[-1] == "run_completed"
        resolved = next(e.approval_resolved for e in events if e.HasField("approval_resolved"))
        assert resolved.decided_by == trace_pb2.APPROVAL_DECIDER_PERSON
        assert tool_results(events)["call_1"] == "denied by the user: no"
    (record,) = log_records(tmp_path / "agent")
    assert record.event.decided_by == trace_pb2.APPROVAL_DECIDER_PERSON
    assert record.event.review_verdict == ("ask" if note.startswith("the reviewer asked") else "failed")
    assert record.event.review_reason
