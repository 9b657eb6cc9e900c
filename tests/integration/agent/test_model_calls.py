"""Model calls through the agent against a scripted OpenAI-compatible server: streaming,
fragments, usage, retries, and how provider failures become statuses."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
import structlog
import structlog.testing

from firebox.agent.v1 import agent_pb2
from tests.support.agent_server import (
    agent_stub,
    collect,
    generation_records,
    kinds,
    new_session,
    running_agent,
    text_of,
)
from tests.support.fake_provider import (
    Cut,
    FakeProvider,
    Raw,
    Reply,
    chunk,
    error_reply,
    held_reply,
    text_reply,
    tool_call_fragments,
    tool_reply,
)


def _generate_request(*contents: str) -> agent_pb2.GenerateRequest:
    roles = [agent_pb2.ROLE_USER, agent_pb2.ROLE_ASSISTANT]
    return agent_pb2.GenerateRequest(
        messages=[agent_pb2.Message(role=roles[i % 2], content=c) for i, c in enumerate(contents)]
    )


async def _generate(stub, request) -> list[agent_pb2.GenerateResponse]:
    return [r async for r in stub.Generate(request)]


async def test_send_message_streams_text_deltas_in_order_and_stores_the_answer(stub, fake):
    session = await new_session(stub, system_prompt="be brief")
    # Every piece is its own delta event, whether the pieces arrive apart or in one network read.
    fake.script(text_reply("Hel", "lo, ", "world"))
    events = await collect(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
    )

    assert kinds(events) == [
        "run_started",
        "text_delta",
        "text_delta",
        "text_delta",
        "usage",
        "message_completed",
        "run_completed",
    ]
    assert [e.index for e in events] == list(range(1, len(events) + 1))
    assert text_of(events) == "Hello, world"
    assert [e.text_delta.text for e in events if e.HasField("text_delta")] == ["Hel", "lo, ", "world"]
    assert fake.sent(0) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    stored = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert [(m.role, m.content, m.status) for m in stored.messages] == [
        (agent_pb2.ROLE_USER, "hi", agent_pb2.MESSAGE_STATUS_COMPLETE),
        (agent_pb2.ROLE_ASSISTANT, "Hello, world", agent_pb2.MESSAGE_STATUS_COMPLETE),
    ]
    assert stored.session.message_count == 2


async def test_second_message_sends_the_whole_conversation(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("one"), text_reply("two"))
    await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="first")))
    await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="second")))
    assert fake.sent(1) == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]


async def test_reasoning_is_relayed_as_reasoning_deltas_and_stored(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("answer", reasoning=["let me ", "think"]))
    events = await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="q")))
    assert "".join(e.reasoning_delta.text for e in events if e.HasField("reasoning_delta")) == "let me think"
    done = [e for e in events if e.HasField("message_completed")][-1].message_completed.message
    assert (done.content, done.reasoning) == ("answer", "let me think")


async def test_usage_is_reported_per_call_and_cumulated_on_the_session(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("a"), text_reply("b"))
    first = await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="1")))
    second = await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="2")))
    usage1 = next(e.usage for e in first if e.HasField("usage"))
    usage2 = next(e.usage for e in second if e.HasField("usage"))
    assert (usage1.call.input_tokens, usage1.call.output_tokens, usage1.call.total_tokens) == (11, 7, 18)
    assert usage2.cumulative.total_tokens == 36
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id))
    assert got.session.usage.input_tokens == 22
    if fake.wire == "openai":
        assert fake.requests[0]["stream_options"] == {"include_usage": True}


async def test_missing_usage_and_null_choices_are_tolerated(stub, fake):
    session = await new_session(stub)
    fake.script(text_reply("fine", usage=False, null_choices=True))
    events = await collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="q")))
    assert "usage" not in kinds(events)
    assert kinds(events)[-1] == "run_completed"
    assert text_of(events) == "fine"


@pytest.mark.parametrize("wire", ["openai"])
async def test_server_refusing_stream_options_is_asked_again_without_them(stub, fake):
    fake.script(
        error_reply(400, "Unrecognized request argument supplied: stream_options"),
        text_reply("ok", usage=False),
    )
    responses = await _generate(stub, _generate_request("hi"))
    assert "".join(r.text_delta.text for r in responses) == "ok"
    assert "stream_options" in fake.requests[0]
    assert "stream_options" not in fake.requests[1]


@pytest.mark.parametrize("wire", ["openai"])
async def test_tool_call_fragments_are_assembled_by_index(stub, fake):
    steps = [chunk({"role": "assistant"})]
    first = tool_call_fragments(
        "shell", json.dumps({"command": "echo one two three"}), "call_a", index=0, pieces=7
    )
    second = tool_call_fragments("shell", json.dumps({"command": "ls -la /"}), "call_b", index=1, pieces=4)
    # Interleave the two calls' fragments, as some servers do.
    for pair in zip(first, second, strict=False):
        steps.extend(pair)
    steps.extend(first[len(second) :])
    steps += [chunk({}, finish_reason="tool_calls")]
    fake.script(Reply(steps=steps))
    request = _generate_request("list files")
    request.enable_tools = True
    responses = await _generate(stub, request)
    calls = [r.tool_call for r in responses if r.HasField("tool_call")]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_a", "shell", {"command": "echo one two three"}),
        ("call_b", "shell", {"command": "ls -la /"}),
    ]
    assert fake.requests[0]["tools"][0]["function"]["name"] == "shell"


async def test_generate_sends_every_message_and_stores_no_session(stub, fake):
    fake.script(text_reply("4"))
    request = _generate_request("what is 1+1", "2", "and 2+2")
    request.messages.insert(0, agent_pb2.Message(role=agent_pb2.ROLE_SYSTEM, content="math"))
    responses = await _generate(stub, request)
    assert fake.sent(0) == [
        {"role": "system", "content": "math"},
        {"role": "user", "content": "what is 1+1"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "and 2+2"},
    ]
    assert responses[0].generation_id.startswith("gen-")
    assert [r.usage.total_tokens for r in responses if r.HasField("usage")] == [18]
    listed = await stub.ListSessions(agent_pb2.ListSessionsRequest())
    assert list(listed.sessions) == []


async def test_rate_limit_is_retried_after_the_time_the_server_asks(stub, fake):
    fake.script(error_reply(429, "slow down", retry_after=0.4), text_reply("made it"))
    responses = await _generate(stub, _generate_request("hi"))
    assert "".join(r.text_delta.text for r in responses) == "made it"
    assert len(fake.requests) == 2
    assert fake.request_times[1] - fake.request_times[0] >= 0.38


async def test_rate_limit_that_persists_becomes_resource_exhausted(tmp_path, fake):
    fake.script(*[error_reply(429, "quota used up", retry_after=0.01)] * 3)
    async with running_agent(tmp_path, fake=fake, provider_retries=2) as agent:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _generate(agent_stub(agent), _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota used up" in caught.value.details()
    assert len(fake.requests) == 3


async def test_server_errors_are_retried_then_unavailable(tmp_path, fake):
    fake.script(*[error_reply(500, "model server on fire")] * 3)
    async with running_agent(tmp_path, fake=fake, provider_retries=2) as agent:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _generate(agent_stub(agent), _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "model server on fire" in caught.value.details()
    assert len(fake.requests) == 3


async def test_rejected_request_is_invalid_argument_and_not_retried(stub, fake):
    fake.script(error_reply(400, "context length exceeded"), text_reply("never"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _generate(stub, _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context length exceeded" in caught.value.details()
    assert len(fake.requests) == 1


async def test_failed_run_reports_the_provider_status_and_keeps_the_user_message(stub, fake):
    session = await new_session(stub)
    fake.script(error_reply(400, "bad model name"))
    events = await collect(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
    )
    assert kinds(events) == ["run_started", "run_failed"]
    assert events[-1].run_failed.code == "INVALID_ARGUMENT"
    assert "bad model name" in events[-1].run_failed.message
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert [m.content for m in got.messages] == ["hi"]
    run = await stub.GetRun(agent_pb2.GetRunRequest(run_id=events[0].run_id))
    assert run.run.status == agent_pb2.RUN_STATUS_FAILED


@pytest.mark.parametrize("wire", ["openai"])
async def test_malformed_chunk_fails_the_run_keeping_partial_text(stub, fake):
    session = await new_session(stub)
    fake.script(Reply(steps=[chunk({"content": "partial "}), Raw("data: {this is not json")]))
    events = await collect(
        stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
    )
    assert events[-1].run_failed.code == "UNAVAILABLE"
    assert "malformed" in events[-1].run_failed.message
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assistant = got.messages[-1]
    assert (assistant.content, assistant.status) == ("partial ", agent_pb2.MESSAGE_STATUS_INTERRUPTED)


@pytest.mark.parametrize("wire", ["openai"])
async def test_stream_cut_mid_tool_call_is_retried_and_never_runs_half_a_call(stub, fake):
    cut = Reply(steps=[*tool_call_fragments("shell", json.dumps({"command": "rm -rf /tmp/x"}))[:3], Cut()])
    fake.script(cut, text_reply("recovered"))
    responses = await _generate(stub, _generate_request("hi"))
    assert not [r for r in responses if r.HasField("tool_call")]
    assert "".join(r.text_delta.text for r in responses) == "recovered"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("wire", ["openai"])
async def test_stream_cut_every_time_fails_unavailable(tmp_path, fake):
    cut = Reply(steps=[*tool_call_fragments("shell", json.dumps({"command": "ls"}))[:2], Cut()])
    fake.script(cut, cut)
    async with running_agent(tmp_path, fake=fake, provider_retries=1) as agent:
        request = _generate_request("hi")
        request.enable_tools = True
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _generate(agent_stub(agent), request)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("wire", ["openai"])
async def test_stream_that_ends_without_finishing_fails_unavailable(stub, fake):
    fake.script(Reply(steps=[chunk({"content": "half"})], done=True))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _generate(stub, _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ended before" in caught.value.details()


async def test_stalled_stream_fails_after_the_idle_timeout(tmp_path, fake):
    fake.script(held_reply("thinking..."))
    async with running_agent(tmp_path, fake=fake, idle_timeout=0.5, provider_retries=0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        started = time.monotonic()
        events = await collect(
            stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
        )
        elapsed = time.monotonic() - started
        got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
    assert events[-1].run_failed.code == "UNAVAILABLE"
    assert "sent no tokens for 0.5 s" in events[-1].run_failed.message
    assert elapsed < 10
    assert got.messages[-1].content == "thinking..."
    assert got.messages[-1].status == agent_pb2.MESSAGE_STATUS_INTERRUPTED


async def test_generation_records_are_written_for_runs_and_generate(tmp_path, fake):
    fake.script(text_reply("from run"), tool_reply(("shell", {"command": "true"}, "call_z")))
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await collect(
            stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session.id, content="hi"))
        )
        request = _generate_request("gen")
        request.context_id = "notebook-7"
        request.enable_tools = True
        await _generate(stub, request)
    records = generation_records(tmp_path)
    assert len(records) == 2
    run_record = next(r for r in records if r.run_id)
    assert (run_record.session_id, run_record.run_id, run_record.step) == (session.id, events[0].run_id, 1)
    assert run_record.completion == "from run"
    assert (run_record.finish_reason, run_record.cut_short) == ("stop", False)
    assert [m.content for m in run_record.messages] == ["hi"]
    assert run_record.usage.input_tokens == 11
    generate_record = next(r for r in records if r.context_id)
    assert generate_record.context_id == "notebook-7"
    assert [c.id for c in generate_record.tool_calls] == ["call_z"]


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_failed_precondition_and_not_retried(stub, fake, status):
    """docs/agent.md: 401/403 → FAILED_PRECONDITION with the provider's message, no retry."""
    fake.script(error_reply(status, "invalid api key"), text_reply("never"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _generate(stub, _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "invalid api key" in caught.value.details()
    assert len(fake.requests) == 1


def _retries(logs: list[dict]) -> int:
    return sum(1 for entry in logs if entry["event"] == "provider_retry")


async def test_connection_refused_is_retried_until_the_provider_is_back(tmp_path, fake):
    """docs/agent.md: connection errors are retried with backoff. The provider is down (its port
    refuses connections) when the call starts; it comes back after the agent's first retry (seen
    in the agent's log), and the same call then succeeds."""
    port, wire = fake.port, fake.wire
    await fake.stop()
    with structlog.testing.capture_logs() as logs:
        async with running_agent(tmp_path, fake=fake, provider_retries=8, retry_base_delay=0.2) as agent:
            call = asyncio.ensure_future(_generate(agent_stub(agent), _generate_request("hi")))
            for _ in range(300):  # bounded wait for the first retry
                if _retries(logs) or call.done():
                    break
                await asyncio.sleep(0.1)
            assert _retries(logs) and not call.done(), [entry["event"] for entry in logs][-20:]
            back = await FakeProvider.start(wire=wire, port=port)
            try:
                back.script(text_reply("made it"))
                responses = await call
            finally:
                await back.stop()
    assert "".join(r.text_delta.text for r in responses) == "made it"
    assert len(back.requests) == 1


async def test_connection_refused_after_retries_is_unavailable(tmp_path, fake):
    await fake.stop()
    with structlog.testing.capture_logs() as logs:
        async with running_agent(tmp_path, fake=fake, provider_retries=2) as agent:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _generate(agent_stub(agent), _generate_request("hi"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _retries(logs) == 2
