"""What a replica does with a run it takes over, for each state a dead replica can leave behind.

The state is written to a real PostgreSQL database as the agent writes it (session, messages,
events, then the run, owned by a replica whose lease has run out); a real agent process on that
database takes the run over within its lease scan and is followed with StreamRun."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_service.pg_store import PostgresStore
from agent_service.runs import MAX_TAKEOVERS, RESUMED_REASON, TAKEOVER_REASON
from agent_service.toolloop import _CUT_CALL_RESULT, INTERRUPTED_CALL_RESULT
from firebox.agent.v1 import agent_pb2 as A
from tests.support.agent_server import UNREACHABLE_EXECUTOR, agent_stub, collect, kinds, new_session, text_of
from tests.support.executor_server import free_port
from tests.support.fake_provider import FakeProvider, shell_reply, text_reply
from tests.support.postgres import PostgresServer
from tests.support.service_process import AgentProcess

pytestmark = pytest.mark.slow

LEASE_SECONDS = 1.5
DEAD = "agent-that-was-killed"


@pytest.fixture
def database(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeProvider, database: str, metrics_port: int) -> Iterator[AgentProcess]:
    process = AgentProcess(
        tmp_path / "agent",
        executor=UNREACHABLE_EXECUTOR,
        provider=fake.base_url,
        args=[
            "--database-url",
            database,
            "--run-lease",
            str(LEASE_SECONDS),
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
    )
    process.start()
    try:
        yield process
    finally:
        process.__exit__()


def _message(run_id: str, role: int, content: str = "", **fields: object) -> A.Message:
    message = A.Message(
        id=f"msg-{role}-{content or 'x'}-{len(fields)}"[:60].replace(" ", "_"),
        role=role,  # type: ignore[arg-type]
        content=content,
        status=A.MESSAGE_STATUS_COMPLETE,
        run_id=run_id,
        **fields,  # type: ignore[arg-type]
    )
    message.create_time.GetCurrentTime()
    return message


async def _leave_behind(
    url: str,
    session_id: str,
    messages: list[A.Message],
    status: int = A.RUN_STATUS_RUNNING,
    takeovers: int = 0,
    approval_policy: int = 0,
) -> str:
    """Write what a replica killed mid-run leaves: its messages, its first event, and the run,
    owned by it, with a lease that ran out. Returns the run id."""
    store = await PostgresStore.open(url)
    try:
        run_id = messages[0].run_id if messages else "run-queued"
        for message in messages:
            await store.put_message(session_id, message)
        run = A.Run(
            id=run_id,
            session_id=session_id,
            status=status,  # type: ignore[arg-type]
            user_message_id=messages[0].id if messages else "",
            takeovers=takeovers,
            approval_policy=approval_policy,  # type: ignore[arg-type]
        )
        run.create_time.GetCurrentTime()
        started = A.RunEvent(index=1, run_id=run_id, run_started=A.RunStarted(session_id=session_id))
        if status == A.RUN_STATUS_RUNNING:
            assert await store.claim_run(run, DEAD, 1) == ""
            assert await store.append_events(run_id, [started], DEAD)
        else:
            await store.put_run(run, DEAD, 1)
        return run_id
    finally:
        await store.close()


def _takeovers(port: int, action: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "firebox_agent_run_takeovers_total" and sample.labels == {"action": action}:
                return sample.value
    return 0.0


async def _follow(stub, run_id: str) -> list[A.RunEvent]:
    async with asyncio.timeout(LEASE_SECONDS * 4 + 10):
        return await collect(stub.StreamRun(A.StreamRunRequest(run_id=run_id)))


async def test_a_final_answer_stored_before_the_outcome_completes_without_asking_the_model_again(
    agent, fake, database, metrics_port
):
    stub = agent_stub(agent.target)
    session = await new_session(stub)
    run_id = "run-final"
    await _leave_behind(
        database,
        session.id,
        [_message(run_id, A.ROLE_USER, "hi"), _message(run_id, A.ROLE_ASSISTANT, "the answer")],
    )
    events = await _follow(stub, run_id)
    assert kinds(events) == ["run_started", "run_resumed", "run_completed"]
    assert [e.index for e in events] == [1, 2, 3]
    assert events[1].run_resumed.after_index == 1 and events[1].run_resumed.next_step == 0
    assert fake.requests == []
    run = (await stub.GetRun(A.GetRunRequest(run_id=run_id))).run
    assert run.status == A.RUN_STATUS_COMPLETED and run.takeovers == 1
    assert _takeovers(metrics_port, "continued") == 1 and _takeovers(metrics_port, "interrupted") == 0


async def test_calls_without_results_at_the_step_limit_are_answered_interrupted_and_the_run_ends_there(
    agent, fake, database
):
    stub = agent_stub(agent.target)
    session = await new_session(stub, max_steps=1)
    run_id = "run-limit"
    calls = [
        A.ToolCall(id="call_1", name="shell", arguments='{"command": "ls"}'),
        A.ToolCall(id="call_2", name="shell", arguments='{"command": "make install"}'),
    ]
    await _leave_behind(
        database,
        session.id,
        [
            _message(run_id, A.ROLE_USER, "hi"),
            _message(run_id, A.ROLE_ASSISTANT, "two calls", tool_calls=calls),
            _message(run_id, A.ROLE_TOOL, "a b c", tool_call_id="call_1"),
        ],
    )
    events = await _follow(stub, run_id)
    resumed = next(e.run_resumed for e in events if e.HasField("run_resumed"))
    assert list(resumed.interrupted_tool_call_ids) == ["call_2"] and resumed.next_step == 2
    finished = [e.tool_call_finished for e in events if e.HasField("tool_call_finished")]
    assert [(f.tool_call_id, f.result) for f in finished] == [("call_2", INTERRUPTED_CALL_RESULT)]
    assert events[-1].run_completed.step_limit_reached
    assert fake.requests == []  # one step was allowed, and it was used
    messages = (
        await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
    ).messages
    assert [(m.tool_call_id, m.content) for m in messages if m.role == A.ROLE_TOOL] == [
        ("call_1", "a b c"),
        ("call_2", INTERRUPTED_CALL_RESULT),
    ]


async def test_the_taker_keeps_the_approval_policy_the_run_was_started_with(agent, fake, database):
    # The session asks for no approvals; the run was sent with ALWAYS. Taken over before its
    # first model call, its shell call must still wait for a person.
    stub = agent_stub(agent.target)
    session = await new_session(stub)
    run_id = "run-policy"
    fake.script(shell_reply("rm -rf /workspace", call_id="call_rm"))
    await _leave_behind(
        database,
        session.id,
        [_message(run_id, A.ROLE_USER, "clean up")],
        approval_policy=A.APPROVAL_POLICY_ALWAYS,
    )
    events: list[A.RunEvent] = []
    async with asyncio.timeout(LEASE_SECONDS * 4 + 10):
        async for response in stub.StreamRun(A.StreamRunRequest(run_id=run_id)):
            events.append(response.event)
            if response.event.HasField("approval_requested"):
                break
    assert events[-1].approval_requested.tool_call.id == "call_rm"
    assert fake.requests[0]["messages"][-1] == {"role": "user", "content": "clean up"}
    await stub.CancelRun(A.CancelRunRequest(run_id=run_id))


async def test_a_run_that_keeps_taking_replicas_down_ends_interrupted(agent, fake, database):
    stub = agent_stub(agent.target)
    session = await new_session(stub)
    run_id = "run-poison"
    await _leave_behind(database, session.id, [_message(run_id, A.ROLE_USER, "hi")], takeovers=MAX_TAKEOVERS)
    events = await _follow(stub, run_id)
    assert kinds(events) == ["run_started", "run_cancelled"]
    assert f"taken over {MAX_TAKEOVERS + 1} times" in events[-1].run_cancelled.reason
    run = (await stub.GetRun(A.GetRunRequest(run_id=run_id))).run
    assert run.status == A.RUN_STATUS_INTERRUPTED and fake.requests == []
    # The session is free for the next message.
    fake.script(text_reply("fresh"))
    again = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="again")))
    assert text_of(again) == "fresh"


async def test_a_queued_run_of_a_dead_replica_ends_interrupted_its_message_was_never_stored(
    agent, fake, database, metrics_port
):
    stub = agent_stub(agent.target)
    session = await new_session(stub)
    run_id = await _leave_behind(database, session.id, [], status=A.RUN_STATUS_QUEUED)
    events = await _follow(stub, run_id)
    assert kinds(events) == ["run_cancelled"] and events[0].run_cancelled.reason == TAKEOVER_REASON
    assert RESUMED_REASON not in events[0].run_cancelled.reason
    run = (await stub.GetRun(A.GetRunRequest(run_id=run_id))).run
    assert run.status == A.RUN_STATUS_INTERRUPTED and fake.requests == []
    assert _takeovers(metrics_port, "interrupted") == 1 and _takeovers(metrics_port, "continued") == 0


async def test_calls_of_an_answer_cut_at_the_output_limit_are_answered_as_cut_and_the_run_ends_truncated(
    agent, fake, database
):
    stub = agent_stub(agent.target)
    session = await new_session(stub)
    run_id = "run-cut"
    cut_call = A.ToolCall(id="call_cut", name="shell", arguments='{"command": "ec')
    await _leave_behind(
        database,
        session.id,
        [
            _message(run_id, A.ROLE_USER, "hi"),
            _message(run_id, A.ROLE_ASSISTANT, "long", tool_calls=[cut_call], truncated=True),
        ],
    )
    events = await _follow(stub, run_id)
    resumed = next(e.run_resumed for e in events if e.HasField("run_resumed"))
    # Never meant to run: not "interrupted", but answered as the normal path answers a cut call.
    assert not resumed.interrupted_tool_call_ids and resumed.next_step == 0
    finished = next(e.tool_call_finished for e in events if e.HasField("tool_call_finished"))
    assert finished.tool_call_id == "call_cut" and finished.result == _CUT_CALL_RESULT
    assert events[-1].run_completed.output_truncated and fake.requests == []
