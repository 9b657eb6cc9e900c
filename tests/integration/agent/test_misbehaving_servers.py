"""The agent against model servers that misbehave as real ones do, on both wire formats: keep-alive
pings and no tokens (llama.cpp), a stream that stops mid tool-call JSON, a model that never stops
(with and without honouring the output limit), servers that refuse a request field, one that
ignores tools, one that closes without [DONE]. Every run ends, keeps what arrived, and leaves the
session free for the next message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from firebox.agent.v1 import agent_pb2
from firebox.trace.v1 import trace_pb2
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent, text_of
from tests.support.fake_provider import (
    Pings,
    Reply,
    chunk,
    cut_reply,
    endless_reply,
    partial_tool_reply,
    shell_reply,
    stalled_reply,
    text_reply,
    truncated_tool_reply,
)


def _send(stub, session_id: str, content: str = "hi"):
    return collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session_id, content=content)))


async def _messages(stub, session_id: str) -> list[agent_pb2.Message]:
    got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session_id, include_messages=True))
    return list(got.messages)


def _records(config_dir: Path) -> list[trace_pb2.GenerationRecord]:
    records = []
    for path in sorted((config_dir / "logs").glob("generations-*.jsonl")):
        for line in path.read_text().splitlines():
            record = trace_pb2.GenerationRecord()
            json_format.ParseDict(json.loads(line), record)
            records.append(record)
    return records


async def test_keepalive_pings_without_tokens_fail_the_step_and_free_the_session(tmp_path, fake):
    # llama.cpp: about 50 deltas, then `: ping - <time>` comments (Anthropic: ping events) and
    # no tokens. The pings arrive well inside the idle timeout; they must not keep the run alive.
    fake.script(stalled_reply("The answer ", "is", interval=0.1))
    async with running_agent(tmp_path, fake=fake, idle_timeout=0.6, provider_retries=0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert events[-1].run_failed.code == "UNAVAILABLE"
        assert events[-1].run_failed.message == "model provider sent no tokens for 0.6 s"
        assert text_of(events) == "The answer is"
        stored = await _messages(stub, session.id)
        assert (stored[-1].content, stored[-1].status) == (
            "The answer is",
            agent_pb2.MESSAGE_STATUS_INTERRUPTED,
        )
        # The session is free: the next message runs (the fake's default answer is "ok").
        fake.release()
        after = await _send(stub, session.id, "again")
        assert kinds(after)[-1] == "run_completed"
        assert text_of(after) == "ok"
    cut = [r for r in _records(tmp_path) if r.cut_short]
    assert len(cut) == 1
    assert (cut[0].completion, cut[0].error) == ("The answer is", "model provider sent no tokens for 0.6 s")
    assert cut[0].finish_reason == ""


async def test_stall_after_text_is_retried_into_a_new_message_and_says_so(tmp_path, fake):
    fake.script(stalled_reply("half ", interval=0.1), text_reply("whole answer"), text_reply("next"))
    async with running_agent(tmp_path, fake=fake, idle_timeout=0.5, provider_retries=1) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert kinds(events)[-1] == "run_completed"
        retry = next(e.model_retry for e in events if e.HasField("model_retry"))
        assert (retry.attempt, retry.reason) == (1, "model provider sent no tokens for 0.5 s")
        # The superseded message is closed before the retry starts; the retry streams into a
        # new message, so no text is relayed twice under one id.
        order = kinds(events)
        superseded = next(e.message_completed.message for e in events if e.HasField("message_completed"))
        assert superseded.id == retry.superseded_message_id
        assert (superseded.content, superseded.status) == ("half ", agent_pb2.MESSAGE_STATUS_INTERRUPTED)
        assert order.index("model_retry") > order.index("message_completed")
        deltas = [e.text_delta for e in events if e.HasField("text_delta")]
        assert [(d.message_id == superseded.id, d.text) for d in deltas] == [
            (True, "half "),
            (False, "whole answer"),
        ]
        stored = await _messages(stub, session.id)
        assert [(m.content, m.status) for m in stored] == [
            ("hi", agent_pb2.MESSAGE_STATUS_COMPLETE),
            ("half ", agent_pb2.MESSAGE_STATUS_INTERRUPTED),
            ("whole answer", agent_pb2.MESSAGE_STATUS_COMPLETE),
        ]
        fake.release()
        await _send(stub, session.id, "more")
    # The model is not shown the superseded partial, on the retry nor later.
    assert fake.sent(1) == fake.sent(0)
    assert [m["content"] for m in fake.sent(2)] == ["hi", "whole answer", "more"]


async def test_connection_cut_mid_tool_call_json_is_retried_and_never_runs_half_a_call(tmp_path, fake):
    half = partial_tool_reply("shell", '{"command": "rm -rf /work', "call_cut")
    fake.script(half, text_reply("recovered"))
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
    # Nothing had been relayed: the retry is invisible, and no tool call ever started.
    assert kinds(events) == ["run_started", "text_delta", "usage", "message_completed", "run_completed"]
    assert text_of(events) == "recovered"
    assert len(fake.requests) == 2


async def test_stall_mid_tool_call_keeps_the_open_call_with_a_synthetic_result(tmp_path, fake):
    # The executor is unreachable: had the half call been run, the run would fail UNAVAILABLE
    # on the executor, not on the provider.
    fake.script(partial_tool_reply("shell", '{"command": "ls -la /wo', "call_open", then=Pings(0.1)))
    async with running_agent(tmp_path, fake=fake, idle_timeout=0.5, provider_retries=0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert events[-1].run_failed.message == "model provider sent no tokens for 0.5 s"
        assert "tool_call_started" not in kinds(events)
        stored = await _messages(stub, session.id)
        assistant, result = stored[-2], stored[-1]
        assert [(c.id, c.arguments) for c in assistant.tool_calls] == [
            ("call_open", '{"command": "ls -la /wo')
        ]
        assert assistant.status == agent_pb2.MESSAGE_STATUS_INTERRUPTED
        assert result.tool_call_id == "call_open"
        assert result.content.startswith("[not run: the model's output stopped before this call was complete")
        fake.release()
        after = await _send(stub, session.id, "go on")
        assert kinds(after)[-1] == "run_completed"
    # The history stays valid for the model: the cut call goes back with {} and its result.
    sent = fake.sent(1)
    call = sent[1]["tool_calls"][0]
    assert (call["id"], json.loads(call["function"]["arguments"])) == ("call_open", {})
    assert sent[2]["role"] == "tool" and sent[2]["tool_call_id"] == "call_open"


async def test_model_that_never_stops_is_bounded_by_the_sessions_output_limit(tmp_path, fake):
    fake.script(endless_reply())
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, max_output_tokens=40)
        events = await _send(stub, session.id)
        assert events[-1].run_completed.output_truncated
        done = [e.message_completed.message for e in events if e.HasField("message_completed")][-1]
        assert done.truncated and done.status == agent_pb2.MESSAGE_STATUS_COMPLETE
        assert done.content == "more " * 40
        stored = await _messages(stub, session.id)
        assert stored[-1].truncated
    assert fake.requests[0]["max_tokens"] == 40
    assert [r.finish_reason for r in _records(tmp_path)] == ["length"]


async def test_server_that_ignores_the_output_limit_is_cut_by_the_agent(tmp_path, fake):
    fake.script(endless_reply(honours_limit=False))
    async with running_agent(tmp_path, fake=fake, max_output_tokens=30) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert events[-1].run_completed.output_truncated
        assert text_of(events) == "more " * 30
        # The session is free again (the endless stream was closed, not left running).
        assert kinds(await _send(stub, session.id, "again"))[-1] == "run_completed"
    assert fake.requests[0]["max_tokens"] == 30


async def test_answer_cut_mid_tool_call_at_the_limit_never_runs_the_call(tmp_path, fake):
    fake.script(truncated_tool_reply("shell", '{"command": "echo hel', "call_len", text="Running it:"))
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert events[-1].run_completed.output_truncated
        assert "tool_call_started" not in kinds(events)
        stored = await _messages(stub, session.id)
    assistant, result = stored[-2], stored[-1]
    assert assistant.truncated and [c.id for c in assistant.tool_calls] == ["call_len"]
    assert result.tool_call_id == "call_len"
    assert "output-token limit" in result.content


async def test_run_past_its_time_limit_fails_deadline_exceeded_keeping_partial_output(tmp_path, fake):
    fake.script(endless_reply(pause=0.05, honours_limit=False))
    async with running_agent(tmp_path, fake=fake, run_timeout=1.0) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        assert events[-1].run_failed.code == "DEADLINE_EXCEEDED"
        assert "time limit of 1 s" in events[-1].run_failed.message
        run = await stub.GetRun(agent_pb2.GetRunRequest(run_id=events[0].run_id))
        assert run.run.status == agent_pb2.RUN_STATUS_FAILED
        stored = await _messages(stub, session.id)
        assert stored[-1].status == agent_pb2.MESSAGE_STATUS_INTERRUPTED
        assert stored[-1].content.startswith("more more")
        assert kinds(await _send(stub, session.id, "again"))[-1] == "run_completed"


async def test_server_that_ignores_tools_and_answers_in_text_completes_the_run(stub, fake):
    fake.script(text_reply("I would run ls, but I cannot run commands."))
    session = await new_session(stub)
    events = await _send(stub, session.id, "list the files")
    assert kinds(events)[-1] == "run_completed"
    assert "tool_call_started" not in kinds(events)
    assert text_of(events) == "I would run ls, but I cannot run commands."
    assert next(t.get("name") or t["function"]["name"] for t in fake.requests[0]["tools"]) == "shell"


async def test_stream_closed_without_its_end_is_retried(stub, fake):
    # No finish_reason and no [DONE] (Anthropic: no message_delta, no message_stop), then the
    # connection closes: a transport failure, retried (nothing was relayed... but here text was:
    # the retry streams into a new message).
    fake.script(cut_reply("par"), text_reply("full"))
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert kinds(events)[-1] == "run_completed"
    assert any(e.HasField("model_retry") for e in events)
    assert [m.content for m in await _messages(stub, session.id)][-1] == "full"


@pytest.mark.parametrize("wire", ["openai"])
async def test_stream_closed_without_done_after_its_finish_is_complete(stub, fake):
    fake.script(Reply(steps=[chunk({"content": "all here"}), chunk({}, finish_reason="stop")], done=False))
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert kinds(events)[-1] == "run_completed"
    assert len(fake.requests) == 1


@pytest.mark.parametrize("wire", ["openai"])
async def test_server_refusing_max_tokens_gets_max_completion_tokens_from_then_on(stub, fake):
    fake.refuse("max_tokens")
    fake.script(text_reply("one"), text_reply("two"))
    session = await new_session(stub, max_output_tokens=123)
    first = await _send(stub, session.id)
    second = await _send(stub, session.id, "again")
    assert [text_of(first), text_of(second)] == ["one", "two"]
    assert [("max_tokens" in r, r.get("max_completion_tokens")) for r in fake.requests] == [
        (True, None),
        (False, 123),
        (False, 123),
    ]


@pytest.mark.parametrize("wire", ["openai"])
async def test_server_refusing_max_completion_tokens_keeps_getting_max_tokens(stub, fake):
    fake.refuse("max_completion_tokens")
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert kinds(events)[-1] == "run_completed"
    assert "max_completion_tokens" not in fake.requests[0] and fake.requests[0]["max_tokens"] > 0


@pytest.mark.parametrize("wire", ["openai"])
async def test_server_refusing_stream_options_and_tools_fails_naming_the_fix(stub, fake):
    fake.refuse("stream_options", "tools")
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert events[-1].run_failed.code == "FAILED_PRECONDITION"
    assert "refused tool definitions" in events[-1].run_failed.message
    assert "--enable-auto-tool-choice" in events[-1].run_failed.message
    # stream_options was dropped first, then tools were refused: two requests, no retry storm.
    assert len(fake.requests) == 2
    assert "stream_options" not in fake.requests[1]


async def test_tool_loop_runs_on_both_wires_with_results_in_the_wire_shape(tmp_path, fake):
    """Without an executor a shell call fails UNAVAILABLE; what matters here is that the model's
    call reached the loop (tool_call_started) assembled from its fragments."""
    fake.script(shell_reply("echo hi", call_id="call_1"))
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
    started = next(e.tool_call_started.tool_call for e in events if e.HasField("tool_call_started"))
    assert (started.id, started.name, json.loads(started.arguments)) == (
        "call_1",
        "shell",
        {"command": "echo hi"},
    )
