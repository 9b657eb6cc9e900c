"""How run events look on a terminal. Each event kind is one function registered with `@renders`;
a new kind of event is one more function. Kinds without a renderer are skipped, so an older CLI
keeps working against a newer agent."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console

from firebox.agent.v1 import agent_pb2 as ag
from firebox.cli import output
from firebox.executor.v1 import executor_pb2 as ex
from firebox.trace.v1 import trace_pb2

Handler = Callable[["RunRenderer", Any, ag.RunEvent], None]
_HANDLERS: dict[str, Handler] = {}

# Events after which a run is over.
TERMINAL = frozenset({"run_completed", "run_failed", "run_cancelled"})


def renders(kind: str) -> Callable[[Handler], Handler]:
    """Register the renderer of one RunEvent `event` oneof field."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


class RunRenderer:
    """Writes a run's events as they arrive: the answer's text to stdout as it streams, tool calls
    and their output in dim colours, and how the run ended."""

    def __init__(self, stream: TextIO | None = None, console: Console | None = None) -> None:
        self.stream = stream or sys.stdout
        self.console = console or output.out
        # Whether the last thing written ended a line, so blocks start on a fresh one.
        self.at_line_start = True
        self.last_usage: ag.UsageReported | None = None
        self.outcome: str | None = None
        self.failure: ag.RunFailed | None = None

    def render(self, event: ag.RunEvent) -> None:
        kind = event.WhichOneof("event")
        if kind is None:
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, getattr(event, kind), event)
        if kind in TERMINAL:
            self.outcome = kind

    def write(self, text: str, style: str | None = None) -> None:
        if not text:
            return
        if style and self.console.is_terminal:
            self.console.print(text, style=style, end="", markup=False, highlight=False)
        else:
            self.stream.write(text)
        self.stream.flush()
        self.at_line_start = text.endswith("\n")

    def line(self, text: str, style: str | None = None) -> None:
        """A line of its own, starting a new line first if text is mid-line."""
        self.end_line()
        self.write(text + "\n", style)

    def end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")


class JsonRenderer(RunRenderer):
    """One proto-JSON RunEvent per line, for scripts."""

    def render(self, event: ag.RunEvent) -> None:
        self.stream.write(output.to_json(event, compact=True) + "\n")
        self.stream.flush()
        kind = event.WhichOneof("event")
        if kind in TERMINAL:
            self.outcome = kind
            if kind == "run_failed":
                self.failure = event.run_failed


@renders("run_started")
def _run_started(renderer: RunRenderer, _started: ag.RunStarted, event: ag.RunEvent) -> None:
    output.note(f"run {event.run_id}")


@renders("text_delta")
def _text_delta(renderer: RunRenderer, delta: ag.TextDelta, _event: ag.RunEvent) -> None:
    renderer.write(delta.text)


@renders("reasoning_delta")
def _reasoning_delta(renderer: RunRenderer, delta: ag.ReasoningDelta, _event: ag.RunEvent) -> None:
    renderer.write(delta.text, style="dim italic")


def _tool_call_summary(call: ag.ToolCall) -> str:
    """`shell: ls -la` for the shell tool; the name and its JSON arguments otherwise."""
    try:
        arguments = json.loads(call.arguments) if call.arguments else {}
    except json.JSONDecodeError:
        return f"{call.name} {call.arguments}"
    if isinstance(arguments, dict):
        for key in ("script", "command", "cmd"):
            if isinstance(arguments.get(key), str) and len(arguments) == 1:
                return f"{call.name}: {arguments[key]}"
    return f"{call.name} {json.dumps(arguments, ensure_ascii=False)}"


def describe_request(request: ag.ApprovalRequested) -> str:
    """`shell: rm -rf build` for the shell tool; `make_marker: {"name": "x"}` for a named tool."""
    call = request.tool_call
    if call.name in ("shell", ""):
        return f"shell: {request.command}"
    return f"{call.name}: {request.command or call.arguments}"


@renders("tool_call_started")
def _tool_call_started(renderer: RunRenderer, started: ag.ToolCallStarted, _event: ag.RunEvent) -> None:
    renderer.line(f"▶ {_tool_call_summary(started.tool_call)}", style="bold cyan")


@renders("tool_output")
def _tool_output(renderer: RunRenderer, chunk: ag.ToolOutput, _event: ag.RunEvent) -> None:
    renderer.write(chunk.stdout_data.decode(errors="replace"), style="dim")
    renderer.write(chunk.stderr_data.decode(errors="replace"), style="dim red")


@renders("tool_call_finished")
def _tool_call_finished(renderer: RunRenderer, finished: ag.ToolCallFinished, _event: ag.RunEvent) -> None:
    reason = finished.end_reason
    if reason in (ex.END_REASON_EXITED, ex.END_REASON_UNSPECIFIED):
        text = f"exit {finished.exit_code}"
    else:
        text = f"exit {finished.exit_code}, {output.enum_word(ex.EndReason.Name(reason), 'END_REASON_')}"
    if finished.output_truncated:
        text += ", output truncated"
    ok = finished.exit_code == 0 and reason in (ex.END_REASON_EXITED, ex.END_REASON_UNSPECIFIED)
    renderer.line(f"{'✔' if ok else '✘'} {text}", style="green" if ok else "red")


@renders("usage")
def _usage(renderer: RunRenderer, usage: ag.UsageReported, _event: ag.RunEvent) -> None:
    renderer.last_usage = usage


@renders("message_completed")
def _message_completed(renderer: RunRenderer, _completed: ag.MessageCompleted, _event: ag.RunEvent) -> None:
    renderer.end_line()


@renders("run_completed")
def _run_completed(renderer: RunRenderer, completed: ag.RunCompleted, _event: ag.RunEvent) -> None:
    renderer.end_line()
    if completed.step_limit_reached:
        output.warn("the run stopped at the step limit before the model gave a final answer")
    if completed.output_truncated:
        output.warn(
            "the answer was cut at the output-token limit (max_output_tokens); its tool calls did not run"
        )
    if renderer.last_usage is not None:
        call, total = renderer.last_usage.call, renderer.last_usage.cumulative
        output.note(
            f"tokens: {call.input_tokens} in, {call.output_tokens} out (session total {total.total_tokens})"
        )


@renders("run_failed")
def _run_failed(renderer: RunRenderer, failed: ag.RunFailed, _event: ag.RunEvent) -> None:
    renderer.end_line()
    renderer.failure = failed


@renders("run_cancelled")
def _run_cancelled(renderer: RunRenderer, cancelled: ag.RunCancelled, _event: ag.RunEvent) -> None:
    renderer.end_line()
    output.warn(f"run cancelled{': ' + cancelled.reason if cancelled.reason else ''}")


@renders("approval_requested")
def _approval_requested(renderer: RunRenderer, request: ag.ApprovalRequested, _event: ag.RunEvent) -> None:
    renderer.line(f"⏸ approval needed: {describe_request(request)}", style="bold yellow")
    details = request.reason or "the session's approval policy"
    if request.timeout_seconds > 0:
        details += f"; denied if not answered within {request.timeout_seconds:g} s"
    renderer.line(f"  ({details})", style="yellow")
    if request.review_note:
        renderer.line(f"  (review: {request.review_note})", style="yellow")


@renders("approval_resolved")
def _approval_resolved(renderer: RunRenderer, resolved: ag.ApprovalResolved, _event: ag.RunEvent) -> None:
    if resolved.decided_by == trace_pb2.APPROVAL_DECIDER_MODEL:
        verdict = "approved" if resolved.decision == ag.APPROVAL_DECISION_APPROVE else "denied"
        style = "green" if verdict == "approved" else "red"
        renderer.line(
            f"{'✔' if verdict == 'approved' else '✘'} {verdict} by review ({resolved.reviewer_model}): {resolved.reason}",
            style=style,
        )
        return
    if resolved.added_writable_paths:
        renderer.line(f"  now writable: {', '.join(resolved.added_writable_paths)}", style="green")
    if resolved.decision == ag.APPROVAL_DECISION_APPROVE:
        renderer.line("✔ approved", style="green")
    elif resolved.decision == ag.APPROVAL_DECISION_APPROVE_EDITED:
        renderer.line(f"✎ approved as edited: {resolved.command}", style="green")
    elif resolved.timed_out:
        renderer.line("✘ denied: no answer in time", style="red")
    else:
        renderer.line(f"✘ denied{': ' + resolved.reason if resolved.reason else ''}", style="red")


@renders("model_retry")
def _model_retry(renderer: RunRenderer, retry: ag.ModelRetry, _event: ag.RunEvent) -> None:
    renderer.end_line()
    output.warn(
        f"the model call failed ({retry.reason}); retrying in {retry.delay_seconds:.1f} s, "
        "the answer above is superseded"
    )


@renders("run_resumed")
def _run_resumed(renderer: RunRenderer, resumed: ag.RunResumed, _event: ag.RunEvent) -> None:
    renderer.end_line()
    calls = len(resumed.interrupted_tool_call_ids)
    note = f"; {calls} tool call(s) reported to the model as interrupted" if calls else ""
    superseded = ", the answer above is superseded" if resumed.interrupted_message_ids else ""
    output.warn(f"{resumed.reason}{superseded}{note}")


@renders("context_compacted")
def _context_compacted(renderer: RunRenderer, compacted: ag.ContextCompacted, _event: ag.RunEvent) -> None:
    renderer.line(
        f"⋯ context compacted: {compacted.tokens_before} → {compacted.tokens_after} tokens", style="dim"
    )
