"""What only the Anthropic Messages wire has: the system prompt and tool results in its shape,
signed thinking sent back with tool use, cache reads and writes in usage, `error` events mid-stream,
stop reasons, retry-after on 529."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from firebox.agent.v1 import agent_pb2
from firebox.trace.v1 import trace_pb2
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent, text_of
from tests.support.fake_provider import (
    Event,
    Reply,
    anthropic_tool_use,
    block_delta,
    block_start,
    block_stop,
    error_reply,
    shell_reply,
    text_reply,
)

pytestmark = pytest.mark.parametrize("wire", ["anthropic"])


def _send(stub, session_id: str, content: str = "hi"):
    return collect(stub.SendMessage(agent_pb2.SendMessageRequest(session_id=session_id, content=content)))


def _start(usage: dict[str, int]) -> list[Event]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": usage}
    return [
        Event("message_start", {"type": "message_start", "message": message}),
        Event("ping", {"type": "ping"}),
    ]


def _end(stop_reason: str, output_tokens: int = 9) -> list[Event]:
    return [
        Event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        Event("message_stop", {"type": "message_stop"}),
    ]


def _records(config_dir: Path) -> list[trace_pb2.GenerationRecord]:
    records = []
    for path in sorted((config_dir / "logs").glob("generations-*.jsonl")):
        for line in path.read_text().splitlines():
            record = trace_pb2.GenerationRecord()
            json_format.ParseDict(json.loads(line), record)
            records.append(record)
    return records


async def test_system_prompt_and_tool_results_go_in_the_messages_shape(stub, fake):
    session = await new_session(stub, system_prompt="be brief")
    # No executor here: the call fails, and its synthetic result still has to go back as a
    # tool_result block answering the tool_use.
    fake.script(shell_reply("ls", call_id="toolu_1"), text_reply("fine"))
    await _send(stub, session.id, "list")
    await _send(stub, session.id, "and now?")
    second = fake.requests[1]
    assert fake.paths[1] == "/v1/messages"
    assert second["system"] == "be brief"
    assert second["max_tokens"] > 0 and second["stream"] is True
    assert second["tools"][0]["name"] == "shell" and "input_schema" in second["tools"][0]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": "ls"}}
    ]
    result, text = second["messages"][2]["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_1")
    assert result["content"].startswith("[failed")
    assert text == {"type": "text", "text": "and now?"}


async def test_thinking_is_relayed_as_reasoning_and_sent_back_signed_with_tool_use(tmp_path, fake):
    thinking_then_tool = Reply(
        anthropic=[
            *_start({"input_tokens": 10, "output_tokens": 1}),
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            block_delta(0, {"type": "thinking_delta", "thinking": "I should "}),
            block_delta(0, {"type": "thinking_delta", "thinking": "look."}),
            block_delta(0, {"type": "signature_delta", "signature": "EqQBCkgIARABGAIiQ"}),
            block_stop(0),
            *anthropic_tool_use(1, "shell", json.dumps({"command": "ls"}), "toolu_9"),
            *_end("tool_use"),
        ]
    )
    fake.script(thinking_then_tool, text_reply("done"))
    async with running_agent(tmp_path, fake=fake, thinking_budget=2048, max_output_tokens=8000) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
        reasoning = "".join(e.reasoning_delta.text for e in events if e.HasField("reasoning_delta"))
        assert reasoning == "I should look."
        got = await stub.GetSession(agent_pb2.GetSessionRequest(session_id=session.id, include_messages=True))
        assistant = got.messages[1]
        assert (assistant.reasoning, assistant.reasoning_signature) == ("I should look.", "EqQBCkgIARABGAIiQ")
        await _send(stub, session.id, "next")
    assert fake.requests[0]["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    blocks = fake.requests[1]["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "I should look.", "signature": "EqQBCkgIARABGAIiQ"}
    assert blocks[1]["type"] == "tool_use"


async def test_usage_counts_cache_reads_and_writes(stub, fake):
    usage = {
        "input_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "output_tokens": 1,
    }
    fake.script(
        Reply(
            anthropic=[
                *_start(usage),
                block_start(0, {"type": "text", "text": ""}),
                block_delta(0, {"type": "text_delta", "text": "cached"}),
                block_stop(0),
                *_end("end_turn", output_tokens=3),
            ]
        )
    )
    session = await new_session(stub)
    events = await _send(stub, session.id)
    call = next(e.usage.call for e in events if e.HasField("usage"))
    assert (call.input_tokens, call.cached_input_tokens, call.cache_write_tokens) == (125, 100, 20)
    assert (call.output_tokens, call.total_tokens) == (3, 128)


async def test_overloaded_error_event_mid_stream_is_retried(stub, fake):
    overloaded = Reply(
        anthropic=[
            *_start({"input_tokens": 5, "output_tokens": 1}),
            Event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
    )
    fake.script(overloaded, text_reply("second try"))
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert text_of(events) == "second try"
    assert len(fake.requests) == 2


async def test_error_event_that_persists_fails_unavailable_naming_its_type(tmp_path, fake):
    overloaded = Reply(
        anthropic=[
            *_start({"input_tokens": 5, "output_tokens": 1}),
            Event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
    )
    fake.script(overloaded, overloaded)
    async with running_agent(tmp_path, fake=fake, provider_retries=1) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
    assert events[-1].run_failed.code == "UNAVAILABLE"
    assert "overloaded_error" in events[-1].run_failed.message
    assert "Overloaded" in events[-1].run_failed.message


async def test_overloaded_529_honours_retry_after(stub, fake):
    fake.script(error_reply(529, "Overloaded", retry_after=0.4), text_reply("made it"))
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert text_of(events) == "made it"
    assert fake.request_times[1] - fake.request_times[0] >= 0.38


async def test_invalid_request_is_invalid_argument_with_the_apis_message(stub, fake):
    fake.script(error_reply(400, "messages: roles must alternate"))
    session = await new_session(stub)
    events = await _send(stub, session.id)
    assert events[-1].run_failed.code == "INVALID_ARGUMENT"
    assert "roles must alternate" in events[-1].run_failed.message
    assert len(fake.requests) == 1


async def test_refusal_stop_reason_ends_the_run_and_is_logged(tmp_path, fake):
    fake.script(
        Reply(
            anthropic=[
                *_start({"input_tokens": 5, "output_tokens": 1}),
                block_start(0, {"type": "text", "text": ""}),
                block_delta(0, {"type": "text_delta", "text": "I can't help with that."}),
                block_stop(0),
                *_end("refusal"),
            ]
        )
    )
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        events = await _send(stub, session.id)
    assert kinds(events)[-1] == "run_completed"
    assert not events[-1].run_completed.output_truncated
    assert [r.finish_reason for r in _records(tmp_path)] == ["refusal"]


async def test_max_tokens_stop_reason_is_truncation(tmp_path, fake):
    fake.script(
        Reply(
            anthropic=[
                *_start({"input_tokens": 5, "output_tokens": 1}),
                block_start(0, {"type": "text", "text": ""}),
                block_delta(0, {"type": "text_delta", "text": "and then the"}),
                block_stop(0),
                *_end("max_tokens"),
            ]
        )
    )
    async with running_agent(tmp_path, fake=fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, max_output_tokens=4)
        events = await _send(stub, session.id)
    assert events[-1].run_completed.output_truncated
    assert fake.requests[0]["max_tokens"] == 4
    assert [r.finish_reason for r in _records(tmp_path)] == ["length"]
