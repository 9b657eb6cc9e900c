"""How a reviewer model's answer is read: one JSON verdict, or a failure that goes to the person."""

from __future__ import annotations

import pytest

from agent_service.review import APPROVE, ASK, DENY, FAILED, REASON_CHARS, Action, parse_verdict, review_text
from firebox.agent.v1 import agent_pb2


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ('{"decision": "approve", "reason": "builds the project"}', APPROVE),
        ('```json\n{"decision": "DENY", "reason": "deletes the repo"}\n```', DENY),
        ('Here you go: {"decision": "ask", "reason": "unclear"}', ASK),
        ("approve", FAILED),
        ('{"decision": "yes"}', FAILED),
        ('["approve"]', FAILED),
        ("", FAILED),
        ('{"decision": "approve", "reason": ', FAILED),
    ],
)
def test_only_a_json_verdict_decides_anything_else_fails(text: str, decision: str) -> None:
    assert parse_verdict(text).decision == decision


def test_reasons_are_bounded_and_never_empty() -> None:
    assert parse_verdict('{"decision": "deny"}').reason == "no reason given"
    long = parse_verdict('{"decision": "deny", "reason": "' + "x" * 5000 + '"}')
    assert len(long.reason) == REASON_CHARS


def test_the_reviewer_sees_the_request_the_recent_transcript_and_the_exact_action() -> None:
    # Ten long messages (each cut to its first 4,000 characters), then the recent one.
    transcript = [agent_pb2.Message(role=agent_pb2.ROLE_USER, content="old " * 10_000) for _ in range(10)] + [
        agent_pb2.Message(
            role=agent_pb2.ROLE_ASSISTANT,
            content="cleaning",
            tool_calls=[agent_pb2.ToolCall(name="shell", arguments='{"command": "rm -rf build"}')],
        )
    ]
    action = Action("shell", "rm -rf build", "not read-only", ("/workspace/build",))
    text = review_text("clean the build", transcript, action)
    assert text.startswith("The user's request:\nclean the build")
    assert "[... earlier transcript cut ...]" in text and len(text) < 30_000
    assert "assistant: cleaning\n[tool call shell:" in text
    assert "command: rm -rf build" in text and "/workspace/build" in text and "not read-only" in text
