"""Context size, automatic and on-demand compaction, and edit-and-resend (fake provider only)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agent_service.context import SUMMARY_INSTRUCTIONS, SUMMARY_PREFIX
from firebox.agent.v1 import agent_pb2
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent
from tests.support.fake_provider import Hold, Reply, chunk, error_reply, text_reply, tool_reply, usage_chunk

A = agent_pb2
LONG = 1200  # characters: about 300 tokens each


async def _say(stub, session_id: str, content: str) -> list[A.RunEvent]:
    events = await collect(stub.SendMessage(A.SendMessageRequest(session_id=session_id, content=content)))
    assert kinds(events)[-1] == "run_completed", events[-1]
    return events


def _compaction_agent(tmp_path, fake, **overrides):
    # The window leaves room for the tool specs sent with each call (those count toward it).
    values = {"context_window": 2800, "compact_threshold": 0.5, "keep_user_tokens": 700}
    values.update(overrides)
    return running_agent(tmp_path / "agent", fake.base_url, **values)


async def test_session_reports_its_context_size_against_the_window(tmp_path, fake):
    async with running_agent(tmp_path / "agent", fake.base_url, context_window=50_000) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, system_prompt="be brief")
        fake.script(text_reply("short answer", usage=False))
        await _say(stub, session.id, "x" * 4000)
        got = (await stub.GetSession(A.GetSessionRequest(session_id=session.id))).session
        assert got.context_window == 50_000
        # Estimated from characters when the provider sent no usage: 4000 chars ≈ 1000 tokens.
        assert 1000 <= got.context_tokens < 2500
        fake.script(text_reply("ok"))
        events = await _say(stub, session.id, "more")
        usage = next(e.usage for e in events if e.HasField("usage"))
        assert usage.context_window == 50_000 and usage.context_tokens >= got.context_tokens


async def test_long_conversation_is_compacted_to_system_recent_users_and_summary(tmp_path, fake):
    async with _compaction_agent(tmp_path, fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub, system_prompt="SYSTEM-PROMPT")
        fake.script(text_reply("answer A"), text_reply("answer B"))
        await _say(stub, session.id, "A" * LONG)
        await _say(stub, session.id, "B" * LONG)
        fake.script(text_reply("## Goal\nSUMMARY-TEXT"), text_reply("answer C"))
        events = await _say(stub, session.id, "C" * LONG)

        compacted = next(e.context_compacted for e in events if e.HasField("context_compacted"))
        assert compacted.tokens_before > compacted.tokens_after > 0
        summary_call, after = fake.requests[-2], fake.requests[-1]
        assert summary_call["messages"][-1] == {"role": "user", "content": SUMMARY_INSTRUCTIONS}
        assert "tools" not in summary_call
        assert [m["content"][:1] for m in summary_call["messages"][1:4]] == ["A", "a", "B"]
        sent = [(m["role"], m["content"]) for m in after["messages"]]
        assert sent[0][0] == "system" and sent[0][1].startswith("SYSTEM-PROMPT")
        assert sent[1:] == [
            ("user", "B" * LONG),
            ("user", "C" * LONG),
            ("user", SUMMARY_PREFIX + "## Goal\nSUMMARY-TEXT"),
        ]
        stored = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
        assert [m.content[:1] for m in stored if m.role == A.ROLE_USER] == ["A", "B", "C"]
        marker = next(m for m in stored if m.HasField("compaction"))
        assert marker.id == compacted.marker_message_id and marker.content == "## Goal\nSUMMARY-TEXT"
        assert stored[-1].content == "answer C"
        got = (await stub.GetSession(A.GetSessionRequest(session_id=session.id))).session
        assert got.context_tokens < compacted.tokens_before


async def test_summary_call_that_overflows_is_retried_without_the_oldest_items(tmp_path, fake):
    async with _compaction_agent(tmp_path, fake) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("answer A"), text_reply("answer B"))
        await _say(stub, session.id, "A" * LONG)
        await _say(stub, session.id, "B" * LONG)
        fake.script(
            error_reply(400, "This model's maximum context length is 100 tokens"),
            error_reply(400, "This model's maximum context length is 100 tokens"),
            text_reply("SUMMARY"),
            text_reply("answer C"),
        )
        events = await _say(stub, session.id, "C" * LONG)
        assert "context_compacted" in kinds(events)
        first, second, third = (r["messages"] for r in fake.requests[-4:-1])
        assert len(first) > len(second) > len(third)
        assert first[0]["content"].startswith("A") and second[0]["content"].startswith("answer A")
        assert third[0]["content"].startswith("B")


async def test_compact_session_streams_progress_and_is_refused_during_a_run(tmp_path, fake):
    async with _compaction_agent(tmp_path, fake, context_window=100_000) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("first answer"))
        await _say(stub, session.id, "first question")

        fake.script(Reply(steps=[chunk({"content": "wait"}), Hold(), chunk({}, finish_reason="stop")]))
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="slow"))
        async for response in call:
            if response.event.HasField("text_delta"):
                break
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(stub.CompactSession(A.CompactSessionRequest(session_id=session.id)))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        fake.release()
        [_ async for _ in call]

        fake.script(text_reply("SUM", "MARY"), text_reply("after"))
        responses = [r async for r in stub.CompactSession(A.CompactSessionRequest(session_id=session.id))]
        assert responses[0].WhichOneof("event") == "started"
        assert "".join(r.summary_delta.text for r in responses if r.HasField("summary_delta")) == "SUMMARY"
        assert responses[-1].HasField("compacted")
        await _say(stub, session.id, "next")
        assert fake.requests[-1]["messages"][-2]["content"] == SUMMARY_PREFIX + "SUMMARY"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(stub.CompactSession(A.CompactSessionRequest(session_id="ses-nope")))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_edit_message_save_changes_a_user_message_in_place(tmp_path, fake):
    async with running_agent(tmp_path / "agent", fake.base_url) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("one"), text_reply("two"))
        await _say(stub, session.id, "first")
        await _say(stub, session.id, "second")
        before = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
        responses = [
            r
            async for r in stub.EditMessage(
                A.EditMessageRequest(
                    session_id=session.id,
                    message_id=before[0].id,
                    content="first, edited",
                    action=A.EDIT_ACTION_SAVE,
                )
            )
        ]
        assert len(responses) == 1 and responses[0].message.content == "first, edited"
        after = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
        assert [m.id for m in after] == [m.id for m in before]
        assert [m.content for m in after] == ["first, edited", "one", "second", "two"]


async def test_edit_message_resend_drops_what_followed_and_runs_again(tmp_path, fake):
    async with running_agent(tmp_path / "agent", fake.base_url) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("one"), text_reply("two"), text_reply("three"))
        await _say(stub, session.id, "first")
        await _say(stub, session.id, "second")
        before = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
        responses = [
            r
            async for r in stub.EditMessage(
                A.EditMessageRequest(
                    session_id=session.id,
                    message_id=before[0].id,
                    content="again",
                    action=A.EDIT_ACTION_RESEND,
                )
            )
        ]
        assert responses[0].message.content == "again"
        events = [r.event for r in responses[1:]]
        assert kinds(events)[0] == "run_started" and kinds(events)[-1] == "run_completed"
        assert events[0].run_started.user_message_id == before[0].id
        assert [m["content"] for m in fake.requests[-1]["messages"]] == ["again"]
        after = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages
        assert [(m.id, m.content) for m in after][:1] == [(before[0].id, "again")]
        assert [m.content for m in after] == ["again", "three"]


async def test_edit_message_refusals(tmp_path, fake):
    async with running_agent(tmp_path / "agent", fake.base_url) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("one"))
        await _say(stub, session.id, "first")
        user, assistant = (
            await stub.GetSession(A.GetSessionRequest(session_id=session.id, include_messages=True))
        ).messages

        async def edit(**fields):
            request = A.EditMessageRequest(session_id=session.id, content="x", action=A.EDIT_ACTION_SAVE)
            for key, value in fields.items():
                setattr(request, key, value)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await collect(stub.EditMessage(request))
            return info.value.code()

        assert await edit(message_id=assistant.id) == grpc.StatusCode.INVALID_ARGUMENT
        assert await edit(message_id="msg-nope") == grpc.StatusCode.NOT_FOUND
        assert (
            await edit(message_id=user.id, action=A.EDIT_ACTION_UNSPECIFIED)
            == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert await edit(message_id=user.id, content=" ") == grpc.StatusCode.INVALID_ARGUMENT

        fake.script(Reply(steps=[chunk({"content": "w"}), Hold(), chunk({}, finish_reason="stop")]))
        call = stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="slow"))
        async for response in call:
            if response.event.HasField("text_delta"):
                break
        assert await edit(message_id=user.id) == grpc.StatusCode.FAILED_PRECONDITION
        assert (
            await edit(message_id=user.id, action=A.EDIT_ACTION_RESEND) == grpc.StatusCode.FAILED_PRECONDITION
        )
        fake.release()
        await asyncio.wait_for(collect(call), 30)


async def test_compaction_also_follows_the_providers_own_token_count(tmp_path, fake):
    async with _compaction_agent(tmp_path, fake, context_window=10_000) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        call_reply = tool_reply(("no_such_tool", {}, "call_1"))
        call_reply.steps[-1] = usage_chunk(prompt=6000, completion=10)  # short text, large count
        fake.script(call_reply, text_reply("SUMMARY"), text_reply("done"))
        events = await _say(stub, session.id, "hi")
        compacted = next(e.context_compacted for e in events if e.HasField("context_compacted"))
        assert compacted.tokens_before >= 6010 > compacted.tokens_after
        assert fake.requests[1]["messages"][-1]["content"] == SUMMARY_INSTRUCTIONS
        assert fake.requests[2]["messages"][-1]["content"] == SUMMARY_PREFIX + "SUMMARY"
