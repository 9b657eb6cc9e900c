"""Sessions, persistence across restarts, the provider-less agent, feedback, server info."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from agent_service.server import start_agent
from agent_service.store import SqliteStore
from firebox.agent.v1 import agent_pb2
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2
from tests.support.agent_server import (
    UNREACHABLE_EXECUTOR,
    agent_config,
    agent_stub,
    collect,
    new_session,
    running_agent,
    text_of,
)
from tests.support.executor_server import free_port, health_status
from tests.support.fake_provider import held_reply

REPO = Path(__file__).resolve().parents[3]


async def until_stored_text(database: Path, session_id: str, text: str, within: float = 30.0) -> None:
    """Wait (bounded) until the session's last message in the SQLite file carries `text`."""

    def last_text() -> str:
        """The text the database holds twice over: in the last message, and in the run's events
        (written in batches of their own); "" until both say the same."""
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT data FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (session_id,)
            ).fetchone()
            events = db.execute("SELECT data FROM events ORDER BY run_id, idx").fetchall()
        message = agent_pb2.Message.FromString(row[0]).content if row else ""
        streamed = "".join(agent_pb2.RunEvent.FromString(e[0]).text_delta.text for e in events)
        return message if message == streamed else ""

    deadline = time.monotonic() + within
    while (seen := await asyncio.to_thread(last_text)) != text:
        assert time.monotonic() < deadline, f"stored {seen!r}, waited for {text!r}"
        await asyncio.sleep(0.05)


async def test_sessions_are_listed_newest_first_a_page_at_a_time(stub):
    created = [await new_session(stub) for _ in range(5)]
    first = await stub.ListSessions(agent_pb2.ListSessionsRequest(page_size=2))
    second = await stub.ListSessions(
        agent_pb2.ListSessionsRequest(page_size=2, page_token=first.next_page_token)
    )
    third = await stub.ListSessions(
        agent_pb2.ListSessionsRequest(page_size=2, page_token=second.next_page_token)
    )
    listed = [s.id for page in (first, second, third) for s in page.sessions]
    assert listed == [s.id for s in reversed(created)]
    assert third.next_page_token == ""


async def test_session_keeps_its_settings_and_labels(stub):
    policy = executor_pb2.IsolationPolicy(network=False, memory_bytes=128 << 20)
    response = await stub.CreateSession(
        agent_pb2.CreateSessionRequest(
            title="deploy",
            settings=agent_pb2.SessionSettings(
                model="m2", system_prompt="sp", workspace_policy=policy, max_steps=3
            ),
            labels={"team": "ops"},
        )
    )
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=response.session.id))
    assert got.session.title == "deploy"
    assert got.session.settings.workspace_policy.memory_bytes == 128 << 20
    assert got.session.settings.max_steps == 3
    assert dict(got.session.labels) == {"team": "ops"}
    assert got.session.create_time.seconds > 0


async def test_deleted_session_is_gone_with_its_runs(stub, fake):
    session = await new_session(stub)
    events = await collect(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
    )
    await stub.DeleteSession(agent_pb2.DeleteSessionRequest(session_id=session.id))
    for call in (
        stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id)),
        stub.ListRuns(agent_pb2.ListRunsRequest(session_id=session.id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert events[0].run_id


async def test_without_a_provider_model_calls_fail_precondition_and_sessions_work(tmp_path):
    async with running_agent(tmp_path) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi")))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "FIREBOX_PROVIDER_BASE_URL" in caught.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(
                stub.Generate(
                    agent_pb2.GenerateRequest(
                        messages=[agent_pb2.Message(role=agent_pb2.ROLE_USER, content="x")]
                    )
                )
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = await stub.GetServerInfo(agent_pb2.GetServerInfoRequest())
        assert not info.provider_configured
        got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
        assert list(got.messages) == []


async def test_execute_with_an_unreachable_executor_is_unavailable_within_a_second(stub):
    started = time.monotonic()
    call = stub.Execute()
    await call.write(executor_pb2.ExecuteRequest(workspace_id="ws", script="true"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert UNREACHABLE_EXECUTOR in caught.value.details()
    assert time.monotonic() - started < 3


async def test_server_info_and_health(stub, agent):
    info = await stub.GetServerInfo(agent_pb2.GetServerInfoRequest())
    assert (info.default_model, info.provider_configured, info.executor_target) == (
        "fake-model",
        True,
        UNREACHABLE_EXECUTOR,
    )
    assert await asyncio.to_thread(health_status, agent.target) == 1


async def test_log_events_writes_one_feedback_record_per_event(tmp_path, fake):
    async with running_agent(tmp_path, fake=fake) as agent:
        response = await agent_stub(agent).LogEvents(
            agent_pb2.LogEventsRequest(
                events=[
                    trace_pb2.FeedbackEvent(
                        kind=trace_pb2.FEEDBACK_KIND_SUGGESTION_EDITED,
                        known_id="cell-1",
                        generation_id="gen-1",
                        suggested_text="ls",
                        edited_text="ls -la",
                    ),
                    trace_pb2.FeedbackEvent(kind=trace_pb2.FEEDBACK_KIND_CELL_EXECUTED, known_id="cell-1"),
                ]
            )
        )
        assert response.accepted == 2
    lines = [
        json.loads(line)
        for p in (tmp_path / "logs").glob("feedback-*.jsonl")
        for line in p.read_text().splitlines()
    ]
    assert [(line["source"], line["event"]["kind"]) for line in lines] == [
        ("client", "FEEDBACK_KIND_SUGGESTION_EDITED"),
        ("client", "FEEDBACK_KIND_CELL_EXECUTED"),
    ]
    assert lines[0]["event"]["editedText"] == "ls -la"
    assert lines[0]["feedbackId"] != lines[1]["feedbackId"]


async def test_auth_token_is_required_when_set(tmp_path, fake):
    async with running_agent(tmp_path, fake=fake, auth_token="s3cret-token") as agent:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await agent_stub(agent).ListSessions(agent_pb2.ListSessionsRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await agent_stub(agent).ListSessions(
            agent_pb2.ListSessionsRequest(), metadata=(("authorization", "Bearer s3cret-token"),)
        )
        assert list(ok.sessions) == []


async def test_restart_with_a_run_in_flight_marks_it_interrupted_keeping_partial_output(tmp_path, fake):
    """The agent process is killed (SIGKILL) mid-stream; a new agent on the same database finds
    the run INTERRUPTED, the partial answer stored and marked interrupted, and its events
    replayable up to a final run_cancelled that says why."""
    fake.script(held_reply("half an ans", "wer"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBOX_", "OPENAI_"))}
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [
            sys.executable,
            "-m",
            "agent_service",
            "--listen",
            f"127.0.0.1:{port}",
            "--config-dir",
            str(tmp_path),
            "--provider",
            fake.wire,
            "--provider-base-url",
            fake.base_url,
            "--model",
            "fake-model",
            "--executor",
            UNREACHABLE_EXECUTOR,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            while await asyncio.to_thread(health_status, f"127.0.0.1:{port}", "", 1.0) != 1:
                assert proc.poll() is None, "agent process exited"
                await asyncio.sleep(0.1)
        stub = agent_stub(f"127.0.0.1:{port}")
        session = await new_session(stub)
        call = stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="question"))
        text = ""
        async for response in call:
            text += response.event.text_delta.text
            if text == "half an answer":
                break
        # Progress is written within about half a second of arriving: kill once the store has it.
        await until_stored_text(tmp_path / "agent.db", session.id, "half an answer")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        call.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
        runs = await stub.ListRuns(agent_pb2.ListRunsRequest(session_id=session.id))
        replay = await collect(stub.StreamRun(agent_pb2.StreamRunRequest(run_id=runs.runs[0].id)))
    assert [r.status for r in runs.runs] == [agent_pb2.RUN_STATUS_INTERRUPTED]
    # The events written before the kill replay, in order, ending with why the run stopped.
    assert [e.index for e in replay] == list(range(1, len(replay) + 1))
    assert replay[-1].run_cancelled.reason == "the agent stopped while the run was going"
    assert text_of(replay) == "half an answer"
    assert [(m.role, m.content, m.status) for m in got.messages] == [
        (agent_pb2.ROLE_USER, "question", agent_pb2.MESSAGE_STATUS_COMPLETE),
        (agent_pb2.ROLE_ASSISTANT, "half an answer", agent_pb2.MESSAGE_STATUS_INTERRUPTED),
    ]
    assert got.session.active_run_id == ""


async def test_graceful_stop_ends_running_runs_as_interrupted_keeping_their_output(tmp_path, fake):
    fake.script(held_reply("going"))
    agent = await start_agent(agent_config(tmp_path, fake=fake))
    stub = agent_stub(agent)
    session = await new_session(stub)
    call = stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="long job"))
    events = []
    async for response in call:
        events.append(response.event)
        if response.event.HasField("text_delta"):
            break
    stopping = asyncio.create_task(agent.stop(grace=0.5))
    rest = [r.event async for r in call]
    await stopping
    assert rest[-1].HasField("run_cancelled") and "shutting down" in rest[-1].run_cancelled.reason
    store = await SqliteStore.open(tmp_path / "agent.db")
    try:
        run = await store.get_run(events[0].run_id)
        messages = await store.list_messages(session.id)
    finally:
        await store.close()
    assert run is not None and run.status == agent_pb2.RUN_STATUS_INTERRUPTED
    assert (messages[-1].content, messages[-1].status) == ("going", agent_pb2.MESSAGE_STATUS_INTERRUPTED)
