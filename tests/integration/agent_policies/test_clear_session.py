"""ClearSession: a new chat in the same workspace, against a real executor (Docker)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from firebox.agent.v1 import agent_pb2
from firebox.trace.v1 import trace_pb2
from tests.integration.agent_policies.conftest import log_records
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent, text_of
from tests.support.fake_provider import Hold, Reply, chunk, shell_reply, text_reply

pytestmark = pytest.mark.docker

A = agent_pb2


def _send(stub, session_id: str, content: str, policy: int = 0):
    return stub.SendMessage(A.SendMessageRequest(session_id=session_id, content=content, on_conflict=policy))


async def _until(call, predicate) -> list[A.RunEvent]:
    events = []
    async for response in call:
        events.append(response.event)
        if predicate(response.event):
            break
    return events


async def test_clear_during_a_streaming_tool_call_cancels_it_empties_history_and_keeps_the_shell(
    tmp_path, fake, executor
):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(shell_reply("export KEEP=kept; cd /tmp", call_id="call_setup"), text_reply("set up"))
        first = await collect(_send(stub, session.id, "set things up"))
        assert kinds(first)[-1] == "run_completed"
        before = (await stub.GetSession(A.GetSessionRequest(session_id=session.id))).session
        assert before.message_count == 4 and before.usage.total_tokens > 0

        fake.script(shell_reply("echo started; sleep 60", call_id="call_long"))
        call = _send(stub, session.id, "run something long")
        seen = await _until(call, lambda e: b"started" in e.tool_output.stdout_data)
        run_id = seen[0].run_id
        # A second follower, attached from the start of the run.
        follower = stub.StreamRun(A.StreamRunRequest(run_id=run_id))
        usage = (await stub.GetSession(A.GetSessionRequest(session_id=session.id))).session.usage

        cleared = await stub.ClearSession(A.ClearSessionRequest(session_id=session.id))

        assert cleared.cancelled_run_id == run_id
        # Run 1: user, assistant (tool call), tool result, answer. Run 2: user, assistant (tool
        # call), and the synthetic result its cancelled call got.
        assert (cleared.cleared_message_count, cleared.cleared_run_count) == (7, 2)
        rest = [r.event async for r in call]
        followed = await collect(follower)
        for events in (seen + rest, followed):
            assert kinds(events)[-1] == "run_cancelled"
            assert events[-1].run_cancelled.reason == "the session was cleared"
            synthetic = [
                e.message_completed.message
                for e in events
                if e.HasField("message_completed") and e.message_completed.message.tool_call_id == "call_long"
            ]
            assert synthetic and synthetic[0].content.startswith("[cancelled:")

        after = cleared.session
        assert after.message_count == 0 and after.active_run_id == ""
        assert (after.id, after.settings, after.workspace_id, after.shell_session_id) == (
            before.id,
            before.settings,
            before.workspace_id,
            before.shell_session_id,
        )
        assert after.usage == usage and after.context_tokens == 0
        got = await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        assert list(got.messages) == []
        assert list((await stub.ListRuns(A.ListRunsRequest(session_id=session.id))).runs) == []

        # The next message works, sees none of the old history, and the shell kept its state.
        fake.script(shell_reply('echo "$KEEP"; pwd', call_id="call_next"), text_reply("fresh start"))
        events = await collect(_send(stub, session.id, "hello again"))
        assert kinds(events)[-1] == "run_completed" and text_of(events) == "fresh start"
        output = b"".join(e.tool_output.stdout_data for e in events if e.HasField("tool_output"))
        assert output == b"kept\n/tmp\n"
        first_call_of_new_chat = fake.requests[-2]["messages"]
        assert [m["content"] for m in first_call_of_new_chat if m["role"] == "user"] == ["hello again"]
        assert not any("run something long" in str(m.get("content")) for m in first_call_of_new_chat)

    (record,) = [
        r for r in log_records(tmp_path / "agent") if r.event.kind == trace_pb2.FEEDBACK_KIND_SESSION_CLEARED
    ]
    assert record.source == "agent" and record.event.session_id == session.id
    assert record.event.run_id == run_id and record.event.reason == "cleared 7 messages and 2 runs"
    generations = log_records(tmp_path / "agent", "generations")
    # The training log keeps the generations from before the clear.
    assert len(generations) == 5


async def test_clear_of_an_idle_empty_session_is_fine_and_an_unknown_one_is_not_found(
    tmp_path, fake, executor
):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        cleared = await stub.ClearSession(A.ClearSessionRequest(session_id=session.id))
        assert (cleared.cleared_message_count, cleared.cleared_run_count, cleared.cancelled_run_id) == (
            0,
            0,
            "",
        )
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ClearSession(A.ClearSessionRequest(session_id="ses-nope"))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ClearSession(A.ClearSessionRequest())
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_message_racing_a_clear_lands_in_the_cleared_session_or_is_refused(tmp_path, fake, executor):
    async with running_agent(tmp_path / "agent", fake.base_url, executor) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(
            Reply(steps=[chunk({"content": "old "}), Hold(), chunk({}, finish_reason="stop")]),
            text_reply("after the clear"),
        )
        call = _send(stub, session.id, "old message")
        await _until(call, lambda e: e.HasField("text_delta"))
        clear = asyncio.ensure_future(stub.ClearSession(A.ClearSessionRequest(session_id=session.id)))
        # While the clear waits for the cancelled run: one message is refused, one queues.
        await asyncio.sleep(0)
        refused = _send(stub, session.id, "refused")
        queued = _send(stub, session.id, "queued", A.CONFLICT_POLICY_ENQUEUE)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await collect(refused)
        assert error.value.code() == grpc.StatusCode.ABORTED
        queued_events = await collect(queued)
        cleared = await clear
        assert cleared.cleared_message_count == 2  # the old message and its interrupted answer
        assert text_of(queued_events) == "after the clear"
        got = await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        assert [m.content for m in got.messages] == ["queued", "after the clear"]
        assert kinds(await collect(call))[-1] == "run_cancelled"
