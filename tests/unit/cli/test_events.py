"""Run events render as they arrive; each event kind is one registered function."""

from __future__ import annotations

import io
import json

from rich.console import Console

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import events
from firebox.cli.events import JsonRenderer, RunRenderer
from firebox.executor.v1 import executor_pb2 as ex
from firebox.trace.v1 import trace_pb2


def renderer() -> tuple[RunRenderer, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, color_system=None)
    return RunRenderer(stream=buffer, console=console), buffer


def test_text_deltas_are_written_as_they_arrive_without_added_newlines() -> None:
    r, buffer = renderer()
    r.render(ag.RunEvent(index=1, text_delta=ag.TextDelta(text="Hel")))
    assert buffer.getvalue() == "Hel"
    r.render(ag.RunEvent(index=2, text_delta=ag.TextDelta(text="lo")))
    assert buffer.getvalue() == "Hello"


def test_tool_call_starts_on_its_own_line_and_shows_the_shell_script() -> None:
    r, buffer = renderer()
    r.render(ag.RunEvent(index=1, text_delta=ag.TextDelta(text="Let me look")))
    call = ag.ToolCall(id="c1", name="shell", arguments=json.dumps({"script": "ls -la"}))
    r.render(ag.RunEvent(index=2, tool_call_started=ag.ToolCallStarted(tool_call=call)))
    r.render(ag.RunEvent(index=3, tool_output=ag.ToolOutput(tool_call_id="c1", stdout_data=b"a.txt\n")))
    r.render(
        ag.RunEvent(
            index=4,
            tool_call_finished=ag.ToolCallFinished(
                tool_call_id="c1", exit_code=2, end_reason=ex.END_REASON_EXITED
            ),
        )
    )
    assert buffer.getvalue() == "Let me look\n▶ shell: ls -la\na.txt\n✘ exit 2\n"


def test_tool_ended_by_timeout_says_so() -> None:
    r, buffer = renderer()
    finished = ag.ToolCallFinished(exit_code=137, end_reason=ex.END_REASON_TIMED_OUT, output_truncated=True)
    r.render(ag.RunEvent(index=1, tool_call_finished=finished))
    assert buffer.getvalue() == "✘ exit 137, timed out, output truncated\n"


def test_terminal_events_set_the_outcome() -> None:
    for kind, event in (
        ("run_completed", ag.RunEvent(run_completed=ag.RunCompleted())),
        ("run_failed", ag.RunEvent(run_failed=ag.RunFailed(code="UNAVAILABLE", message="provider down"))),
        ("run_cancelled", ag.RunEvent(run_cancelled=ag.RunCancelled(reason="by user"))),
    ):
        r, _ = renderer()
        r.render(event)
        assert r.outcome == kind
    r, _ = renderer()
    r.render(ag.RunEvent(run_failed=ag.RunFailed(code="UNAVAILABLE", message="provider down")))
    assert r.failure is not None and r.failure.message == "provider down"


def test_a_new_event_kind_is_one_registered_function(monkeypatch) -> None:
    seen: list[str] = []
    monkeypatch.setitem(
        events._HANDLERS, "run_started", lambda r, started, event: seen.append(started.session_id)
    )
    r, _ = renderer()
    r.render(ag.RunEvent(index=1, run_started=ag.RunStarted(session_id="s1")))
    assert seen == ["s1"]


def test_kinds_without_a_renderer_are_skipped(monkeypatch) -> None:
    monkeypatch.delitem(events._HANDLERS, "reasoning_delta")
    r, buffer = renderer()
    r.render(ag.RunEvent(index=1, reasoning_delta=ag.ReasoningDelta(text="thinking")))
    assert buffer.getvalue() == "" and r.outcome is None


def test_json_renderer_writes_one_parseable_event_per_line() -> None:
    buffer = io.StringIO()
    r = JsonRenderer(stream=buffer)
    r.render(ag.RunEvent(index=1, run_id="r1", text_delta=ag.TextDelta(text="hi")))
    r.render(ag.RunEvent(index=2, run_id="r1", run_completed=ag.RunCompleted()))
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["index"] for line in lines] == ["1", "2"]
    assert lines[0]["textDelta"]["text"] == "hi"
    assert r.outcome == "run_completed"


def test_approval_events_show_the_command_why_and_the_decision() -> None:
    r, buffer = renderer()
    call = ag.ToolCall(id="c1", name="shell", arguments=json.dumps({"command": "rm x"}))
    request = ag.ApprovalRequested(tool_call=call, command="rm x", reason="writes files", timeout_seconds=600)
    r.render(ag.RunEvent(index=1, approval_requested=request))
    r.render(
        ag.RunEvent(
            index=2,
            approval_resolved=ag.ApprovalResolved(
                tool_call_id="c1", decision=ag.APPROVAL_DECISION_DENY, reason="not now"
            ),
        )
    )
    r.render(
        ag.RunEvent(
            index=3,
            approval_resolved=ag.ApprovalResolved(
                tool_call_id="c2", decision=ag.APPROVAL_DECISION_APPROVE_EDITED, command="rm y"
            ),
        )
    )
    r.render(
        ag.RunEvent(
            index=4,
            approval_resolved=ag.ApprovalResolved(
                tool_call_id="c3", decision=ag.APPROVAL_DECISION_DENY, timed_out=True
            ),
        )
    )
    assert buffer.getvalue() == (
        "⏸ approval needed: shell: rm x\n"
        "  (writes files; denied if not answered within 600 s)\n"
        "✘ denied: not now\n"
        "✎ approved as edited: rm y\n"
        "✘ denied: no answer in time\n"
    )


def test_review_decisions_and_added_writable_paths_are_shown() -> None:
    r, buffer = renderer()
    call = ag.ToolCall(id="c1", name="shell", arguments=json.dumps({"command": "rm x"}))
    note = "the reviewer asked for a person: unsure"
    r.render(
        ag.RunEvent(
            index=1, approval_requested=ag.ApprovalRequested(tool_call=call, command="rm x", review_note=note)
        )
    )
    by_model = ag.ApprovalResolved(
        tool_call_id="c2",
        decision=ag.APPROVAL_DECISION_DENY,
        reason="destructive",
        decided_by=trace_pb2.APPROVAL_DECIDER_MODEL,
        reviewer_model="small",
    )
    r.render(ag.RunEvent(index=2, approval_resolved=by_model))
    always = ag.ApprovalResolved(
        tool_call_id="c3", decision=ag.APPROVAL_DECISION_APPROVE, added_writable_paths=["docs"]
    )
    r.render(ag.RunEvent(index=3, approval_resolved=always))
    assert buffer.getvalue() == (
        "⏸ approval needed: shell: rm x\n"
        "  (the session's approval policy)\n"
        "  (review: the reviewer asked for a person: unsure)\n"
        "✘ denied by review (small): destructive\n"
        "  now writable: docs\n"
        "✔ approved\n"
    )


def test_context_compaction_shows_tokens_before_and_after() -> None:
    r, buffer = renderer()
    r.render(ag.RunEvent(index=1, text_delta=ag.TextDelta(text="mid-line")))
    r.render(
        ag.RunEvent(index=2, context_compacted=ag.ContextCompacted(tokens_before=9000, tokens_after=1200))
    )
    assert buffer.getvalue() == "mid-line\n⋯ context compacted: 9000 → 1200 tokens\n"
