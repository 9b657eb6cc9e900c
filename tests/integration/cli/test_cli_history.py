"""`firebox sessions compact` and `firebox sessions edit` against a real agent on the scripted fake
provider: progress as it streams, what the model sees afterwards, and the stored history."""

from __future__ import annotations

import json

import pytest

from agent_service.context import SUMMARY_PREFIX
from tests.support.cli import firebox
from tests.support.fake_provider import FakeProvider, text_reply

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeProvider) -> None:
    fake.reset()


def targets(agent, executor) -> dict[str, str]:
    return {"agent": agent.target, "executor": executor.target}


async def conversation(agent, executor, fake: FakeProvider, *pairs: tuple[str, str]) -> str:
    """A new session holding the (user, assistant) pairs; its id."""
    created = await firebox("sessions", "create", "--json", **targets(agent, executor))
    session_id = json.loads(created.stdout)["session"]["id"]
    for question, answer in pairs:
        fake.script(text_reply(answer))
        said = await firebox("chat", session_id, "-m", question, **targets(agent, executor))
        assert said.code == 0, said.stderr
    return session_id


async def messages(agent, executor, session_id: str) -> list[dict]:
    shown = await firebox("sessions", "show", session_id, "--json", **targets(agent, executor))
    assert shown.code == 0, shown.stderr
    return json.loads(shown.stdout)["messages"]


async def test_compact_streams_the_summary_and_later_calls_get_it(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("first", "one"), ("second", "two"))
    fake.script(text_reply("SUM", "MARY"))
    result = await firebox("sessions", "compact", session_id, **targets(agent, executor))
    assert result.code == 0, result.stderr
    assert result.text == "SUMMARY\n"
    assert f"compacting session {session_id}" in result.stderr
    assert "compacted: " in result.stderr and "summary stored as message msg-" in result.stderr

    fake.script(text_reply("after"))
    said = await firebox("chat", session_id, "-m", "next", **targets(agent, executor))
    assert said.code == 0, said.stderr
    contents = [m.get("content") for m in fake.requests[-1]["messages"]]
    assert SUMMARY_PREFIX + "SUMMARY" in contents
    stored = await messages(agent, executor, session_id)
    assert any("compaction" in m for m in stored)


async def test_compact_json_prints_started_deltas_and_compacted(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("hello", "hi"))
    fake.script(text_reply("S1", "S2"))
    result = await firebox("sessions", "compact", session_id, "--json", **targets(agent, executor))
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.text.splitlines()]
    assert "started" in lines[0] and "compacted" in lines[-1]
    assert "".join(line["summaryDelta"]["text"] for line in lines[1:-1]) == "S1S2"


async def test_compact_of_an_unknown_session_exits_3(agent, executor) -> None:
    result = await firebox("sessions", "compact", "ses-nope", **targets(agent, executor))
    assert result.code == 3
    assert "cannot compact the session" in result.error_line()


async def test_edit_saves_a_user_message_in_place(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("first", "one"), ("second", "two"))
    before = await messages(agent, executor, session_id)
    result = await firebox(
        "sessions",
        "edit",
        session_id,
        before[0]["id"],
        "--content",
        "first, edited",
        **targets(agent, executor),
    )
    assert result.code == 0, result.stderr
    assert f"edited message {before[0]['id']}" in result.stderr
    after = await messages(agent, executor, session_id)
    assert [m["content"] for m in after] == ["first, edited", "one", "second", "two"]
    assert len(fake.requests) == 2  # saving runs nothing


async def test_edit_resend_reruns_from_the_message_streaming_like_chat(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("first", "one"), ("second", "two"))
    before = await messages(agent, executor, session_id)
    fake.script(text_reply("a new ", "answer"))
    result = await firebox(
        "sessions", "edit", session_id, before[0]["id"], "--content", "first, again", "--resend",
        **targets(agent, executor),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.text == "a new answer\n"
    assert [m.get("content") for m in fake.requests[-1]["messages"] if m["role"] != "system"] == [
        "first, again"
    ]
    after = await messages(agent, executor, session_id)
    assert [m["content"] for m in after] == ["first, again", "a new answer"]


async def test_edit_resend_json_prints_the_message_then_the_run_events(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("question", "answer"))
    before = await messages(agent, executor, session_id)
    fake.script(text_reply("again"))
    result = await firebox(
        "sessions", "edit", session_id, before[0]["id"], "--content", "q2", "--resend", "--json",
        **targets(agent, executor),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.text.splitlines()]
    assert lines[0]["message"]["content"] == "q2"
    assert "runStarted" in lines[1] and "runCompleted" in lines[-1]


async def test_edit_of_an_assistant_message_is_a_usage_error(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("question", "answer"))
    before = await messages(agent, executor, session_id)
    result = await firebox(
        "sessions", "edit", session_id, before[1]["id"], "--content", "x", **targets(agent, executor)
    )
    assert result.code == 2
    assert "cannot edit the message" in result.error_line()


async def test_clear_empties_the_conversation_and_the_next_chat_starts_fresh(agent, executor, fake) -> None:
    session_id = await conversation(agent, executor, fake, ("first question", "first answer"))
    cleared = await firebox("sessions", "clear", session_id, **targets(agent, executor))
    assert cleared.code == 0, cleared.stderr
    assert f"cleared session {session_id}: 2 messages, 1 runs" in cleared.stderr
    assert await messages(agent, executor, session_id) == []
    fake.script(text_reply("fresh answer"))
    said = await firebox("chat", session_id, "-m", "new question", **targets(agent, executor))
    assert said.code == 0, said.stderr
    assert [m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "user"] == ["new question"]
    as_json = await firebox("sessions", "clear", session_id, "--json", **targets(agent, executor))
    assert json.loads(as_json.stdout)["clearedMessageCount"] == "2"
    missing = await firebox("sessions", "clear", "ses-nope", **targets(agent, executor))
    assert missing.code == 3


async def test_writable_paths_are_set_and_shown(agent, executor, fake) -> None:
    created = await firebox("sessions", "create", "--writable", "src", "--json", **targets(agent, executor))
    session = json.loads(created.stdout)["session"]
    assert session["settings"]["writablePaths"] == ["src"]
    changed = await firebox(
        "sessions", "writable-paths", session["id"], "docs", "src/x", **targets(agent, executor)
    )
    assert changed.code == 0, changed.stderr
    assert "writable docs, src/x" in changed.stderr
    reset = await firebox("sessions", "writable-paths", session["id"], **targets(agent, executor))
    assert "all of /workspace writable" in reset.stderr
