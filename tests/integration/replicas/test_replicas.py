"""Two real agent processes sharing one real PostgreSQL: every RPC works on either replica.

Replica A drives a run; replica B follows it, cancels it, answers its approval, is refused a
second run on the same session, and takes the run over and goes on with it when A is killed
with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agent_service.runs import RESUMED_REASON
from agent_service.toolloop import INTERRUPTED_CALL_RESULT
from firebox.agent.v1 import agent_pb2 as A
from tests.support.agent_server import UNREACHABLE_EXECUTOR, agent_stub, collect, kinds, new_session, text_of
from tests.support.fake_provider import FakeProvider, Hold, Pause, Reply, chunk, shell_reply, text_reply
from tests.support.postgres import PostgresServer
from tests.support.service_process import AgentProcess

pytestmark = pytest.mark.slow

# Short, so the takeover test waits seconds, not the default five.
LEASE_SECONDS = 1.5


@pytest.fixture
def replicas(
    tmp_path: Path, fake: FakeProvider, postgres_server: PostgresServer
) -> Iterator[list[AgentProcess]]:
    url = postgres_server.create_database()
    agents = [
        AgentProcess(
            tmp_path / name,
            executor=UNREACHABLE_EXECUTOR,
            provider=fake.base_url,
            args=["--database-url", url, "--run-lease", str(LEASE_SECONDS)],
        )
        for name in ("a", "b")
    ]
    try:
        for agent in agents:
            agent.start()
        yield agents
    finally:
        for agent in agents:
            agent.__exit__()


def _send(stub, session_id: str, content: str = "hi", policy: int = 0):
    return stub.SendMessage(A.SendMessageRequest(session_id=session_id, content=content, on_conflict=policy))


async def _first_event(call) -> A.RunEvent:
    async for response in call:
        return response.event
    raise AssertionError("the run sent no event")


async def _until_approval_requested(call) -> list[A.RunEvent]:
    """A run's events up to its approval_requested (the call stays open)."""
    events = []
    async for response in call:
        events.append(response.event)
        if response.event.HasField("approval_requested"):
            break
    return events


async def _collect_batches(call) -> list[A.RunEvent]:
    return [event async for response in call for event in response.events]


async def test_a_follower_on_another_replica_sees_every_event_once_in_order(replicas, fake):
    a, b = (agent_stub(r.target) for r in replicas)
    session = await new_session(a)
    fake.script(text_reply(*[f"w{i} " for i in range(60)], pause=0.01))
    call = _send(a, session.id)
    first = await _first_event(call)
    # Followers on B join at different points, one mid-run from index 0, one after index 3.
    from_start, after_three = await asyncio.gather(
        collect(b.StreamRun(A.StreamRunRequest(run_id=first.run_id))),
        _collect_batches(
            b.StreamRun(A.StreamRunRequest(run_id=first.run_id, after_index=3, batch_events=True))
        ),
    )
    on_a = [first, *[r.event async for r in call]]
    assert [e.index for e in on_a] == list(range(1, len(on_a) + 1))
    assert from_start == on_a
    assert after_three == on_a[3:]
    assert text_of(on_a) == "".join(f"w{i} " for i in range(60))
    # GetSession and GetRun on B read the same database.
    run = (await b.GetRun(A.GetRunRequest(run_id=first.run_id))).run
    assert run.status == A.RUN_STATUS_COMPLETED


async def test_one_running_run_per_session_holds_across_replicas(replicas, fake):
    a, b = (agent_stub(r.target) for r in replicas)
    session = await new_session(a)
    fake.script(Reply(steps=[chunk({"content": "held"}), Hold(), chunk({}, finish_reason="stop")]))
    call = _send(a, session.id)
    first = await _first_event(call)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await collect(_send(b, session.id, "second"))
    assert refused.value.code() == grpc.StatusCode.ABORTED
    assert first.run_id in refused.value.details()
    got = await b.GetSession(A.GetSessionRequest(session_id=session.id))
    assert got.session.active_run_id == first.run_id
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        _ = [r async for r in b.CompactSession(A.CompactSessionRequest(session_id=session.id))]
    assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION and first.run_id in busy.value.details()
    # ENQUEUE on B waits for A's run to end, then runs.
    fake.script(text_reply("queued answer"))
    queued = asyncio.create_task(collect(_send(b, session.id, "third", A.CONFLICT_POLICY_ENQUEUE)))
    await asyncio.sleep(0.5)
    assert not queued.done()  # waiting for A's run, not refused
    fake.release()
    assert kinds([r.event async for r in call])[-1] == "run_completed"
    rest = await queued
    assert kinds(rest)[-1] == "run_completed" and text_of(rest) == "queued answer"


async def test_cancel_on_another_replica_stops_the_run(replicas, fake):
    a, b = (agent_stub(r.target) for r in replicas)
    session = await new_session(a)
    fake.script(Reply(steps=[chunk({"content": "partial"}), Hold(), chunk({}, finish_reason="stop")]))
    call = _send(a, session.id)
    first = await _first_event(call)
    async for response in call:  # the partial text has arrived
        if response.event.HasField("text_delta"):
            break
    cancelled = await b.CancelRun(A.CancelRunRequest(run_id=first.run_id))
    assert cancelled.run.status == A.RUN_STATUS_CANCELLED
    events = [r.event async for r in call]
    assert events[-1].run_cancelled.reason == "cancelled by the client"
    messages = (
        await b.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    assert [m.content for m in messages] == ["hi", "partial"]


async def test_an_approval_sent_to_another_replica_reaches_the_run(replicas, fake):
    a, b = (agent_stub(r.target) for r in replicas)
    session = await new_session(a, approval_policy=A.APPROVAL_POLICY_ALWAYS)
    fake.script(shell_reply("rm -rf /workspace/x", call_id="call_rm"), text_reply("fine"))
    call = _send(a, session.id)
    events = await _until_approval_requested(call)
    run_id = events[0].run_id
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await b.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=run_id, tool_call_id="call_other", decision=A.APPROVAL_DECISION_DENY
            )
        )
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await b.ResolveApproval(
        A.ResolveApprovalRequest(
            run_id=run_id, tool_call_id="call_rm", decision=A.APPROVAL_DECISION_DENY, reason="not here"
        )
    )
    events += [r.event async for r in call]
    assert kinds(events)[-1] == "run_completed"
    finished = next(e.tool_call_finished for e in events if e.HasField("tool_call_finished"))
    assert finished.result == "denied by the user: not here"


async def _events_until_cut(call, events: list[A.RunEvent], text: str, seen: asyncio.Event) -> None:
    """Add the events a client gets from a replica to `events` until its stream breaks (the
    replica was killed); `seen` is set once their text is `text`."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        async for response in call:
            events.append(response.event)
            if text_of(events) == text:
                seen.set()


async def test_a_killed_replicas_streaming_run_goes_on_at_another_with_the_model_call_made_again(
    replicas, fake
):
    a_process, b_process = replicas
    a, b = agent_stub(a_process.target), agent_stub(b_process.target)
    session = await new_session(a)
    fake.script(
        Reply(steps=[chunk({"content": "half "}), Pause(0.05), chunk({"content": "done"}), Hold()]),
        text_reply("all ", "done ", "again"),
    )
    seen_on_a: list[A.RunEvent] = []
    half = asyncio.Event()
    on_a = asyncio.create_task(_events_until_cut(_send(a, session.id), seen_on_a, "half done", half))
    await half.wait()
    await asyncio.sleep(0.7)  # "half done" is stored (events every 20 ms, the message every 0.5 s)
    follower = asyncio.create_task(collect(b.StreamRun(A.StreamRunRequest(run_id=seen_on_a[0].run_id))))
    await asyncio.sleep(0.2)
    await asyncio.to_thread(a_process.kill)
    await on_a
    async with asyncio.timeout(LEASE_SECONDS * 4 + 10):
        seen = await follower
    # One list, no gap, no repeat, whoever followed where: the client cut off from A goes on at B
    # after the last index it got and ends with exactly what B's follower saw.
    assert [e.index for e in seen] == list(range(1, len(seen) + 1))
    rest = await collect(
        b.StreamRun(A.StreamRunRequest(run_id=seen[0].run_id, after_index=seen_on_a[-1].index))
    )
    assert seen_on_a + rest == seen
    resumed = next(e.run_resumed for e in seen if e.HasField("run_resumed"))
    assert resumed.reason == RESUMED_REASON and resumed.next_step == 1
    assert len(resumed.interrupted_message_ids) == 1 and not resumed.interrupted_tool_call_ids
    assert kinds(seen)[-1] == "run_completed"
    # The text before the takeover, then the answer of the call made again.
    assert text_of(seen) == "half doneall done again"
    # The model was asked again from the user's message, not shown its own broken-off start.
    assert len(fake.requests) == 2
    assert fake.requests[1]["messages"][-1] == {"role": "user", "content": "hi"}
    run = (await b.GetRun(A.GetRunRequest(run_id=seen[0].run_id))).run
    assert run.status == A.RUN_STATUS_COMPLETED and run.takeovers == 1
    messages = (
        await b.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    assert [(m.role, m.status, m.content) for m in messages] == [
        (A.ROLE_USER, A.MESSAGE_STATUS_COMPLETE, "hi"),
        (A.ROLE_ASSISTANT, A.MESSAGE_STATUS_INTERRUPTED, "half done"),
        (A.ROLE_ASSISTANT, A.MESSAGE_STATUS_COMPLETE, "all done again"),
    ]
    assert messages[1].id == resumed.interrupted_message_ids[0]


async def test_a_tool_call_left_without_a_result_by_a_killed_replica_is_reported_as_interrupted(
    replicas, fake
):
    a_process, b_process = replicas
    a, b = agent_stub(a_process.target), agent_stub(b_process.target)
    # The call waits for an approval when the replica dies: it started and has no result.
    session = await new_session(a, approval_policy=A.APPROVAL_POLICY_ALWAYS)
    fake.script(shell_reply("make deploy", call_id="call_deploy"), text_reply("I will check first."))
    call = _send(a, session.id)
    events = await _until_approval_requested(call)
    await asyncio.sleep(0.2)  # stored
    await asyncio.to_thread(a_process.kill)
    async with asyncio.timeout(LEASE_SECONDS * 4 + 10):
        seen = await collect(b.StreamRun(A.StreamRunRequest(run_id=events[0].run_id)))
    assert seen[: len(events)] == events
    assert [e.index for e in seen] == list(range(1, len(seen) + 1))
    resumed = next(e.run_resumed for e in seen if e.HasField("run_resumed"))
    assert list(resumed.interrupted_tool_call_ids) == ["call_deploy"] and resumed.next_step == 2
    finished = next(e.tool_call_finished for e in seen if e.HasField("tool_call_finished"))
    assert finished.tool_call_id == "call_deploy" and finished.result == INTERRUPTED_CALL_RESULT
    assert kinds(seen)[-1] == "run_completed" and text_of(seen) == "I will check first."
    # The run's usage counts both model calls, the one made on A included (from its stored events).
    usages = [e.usage.call for e in seen if e.HasField("usage")]
    run = (await b.GetRun(A.GetRunRequest(run_id=events[0].run_id))).run
    assert len(usages) == 2 and run.usage.output_tokens == sum(u.output_tokens for u in usages) > 0
    # The model is told, and nothing ran: the second request carries the interrupted result.
    tool_message = fake.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_deploy"
    assert tool_message["content"] == INTERRUPTED_CALL_RESULT
    # An approval for it on B now is refused precisely: nothing waits for it.
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await b.ResolveApproval(
            A.ResolveApprovalRequest(
                run_id=events[0].run_id, tool_call_id="call_deploy", decision=A.APPROVAL_DECISION_APPROVE
            )
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
