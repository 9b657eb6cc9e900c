"""Turning the training log into chat-format training examples (see docs/training-log.md).

A *suggestion* is a command the model proposed: a tool call in a generation record whose
arguments carry a command, or a SUGGESTION_SHOWN feedback event with suggested text. Feedback
and executions are joined to it on the tool call id first, then on the cell's `known_id` within
the same session (agent session or client context), going to the latest suggestion for that cell
made before them. Each suggestion becomes one example labelled from what happened next. A
SESSION_CLEARED event is a wall: nothing after it joins a generation or suggestion of that
session made before it, since the model no longer saw that history.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from firebox.dataset.reader import LogRecords, Progress, read_logs
from firebox.executor.v1 import executor_pb2
from firebox.trace.v1 import trace_pb2

ACCEPTED, EDITED, REJECTED, NOT_EXECUTED = "accepted", "edited", "rejected", "not_executed"
LABELS = (ACCEPTED, EDITED, REJECTED, NOT_EXECUTED)

# Keys of a tool call's JSON arguments that hold the command, in the order they are looked for.
COMMAND_KEYS = ("command", "cmd", "script", "argv")

_FK = trace_pb2.FeedbackKind
# Feedback that decides a label when no execution settles it.
_DECISIVE = {
    _FK.FEEDBACK_KIND_SUGGESTION_ACCEPTED: ACCEPTED,
    _FK.FEEDBACK_KIND_APPROVAL_APPROVED: ACCEPTED,
    _FK.FEEDBACK_KIND_SUGGESTION_EDITED: EDITED,
    _FK.FEEDBACK_KIND_APPROVAL_EDITED: EDITED,
    _FK.FEEDBACK_KIND_SUGGESTION_REJECTED: REJECTED,
    _FK.FEEDBACK_KIND_APPROVAL_DENIED: REJECTED,
}

_Time = tuple[int, int]


@dataclass
class ExportSummary:
    """What an export read, wrote and left out; `str()` is the summary the CLI prints."""

    out_file: Path
    files_read: int = 0
    records_read: Counter[str] = field(default_factory=Counter)
    examples_written: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    # Lines, records and suggestions left out, by reason.
    skipped: Counter[str] = field(default_factory=Counter)
    # Executions and feedback that joined no suggestion (commands typed by hand, session events).
    unmatched: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_file": str(self.out_file),
            "files_read": self.files_read,
            "records_read": dict(sorted(self.records_read.items())),
            "examples_written": self.examples_written,
            "labels": {label: self.labels[label] for label in LABELS},
            "skipped": dict(sorted(self.skipped.items())),
            "unmatched": dict(sorted(self.unmatched.items())),
        }

    def __str__(self) -> str:
        def counts(c: Counter[str], keys: tuple[str, ...] | None = None) -> str:
            items = [(k, c[k]) for k in keys] if keys else sorted(c.items())
            return ", ".join(f"{k} {n}" for k, n in items) or "none"

        return "\n".join(
            [
                f"read {self.files_read} files: {counts(self.records_read, ('generations', 'executions', 'feedback'))}",
                f"wrote {self.examples_written} examples to {self.out_file}: {counts(self.labels, LABELS)}",
                f"skipped: {counts(self.skipped)}",
                f"unmatched records: {counts(self.unmatched)}",
            ]
        )


@dataclass
class _Suggestion:
    sort_id: str
    time: _Time
    suggested: str
    known_id: str = ""
    sessions: set[str] = field(default_factory=set)
    generation: trace_pb2.GenerationRecord | None = None
    tool_call: trace_pb2.ChatToolCall | None = None
    command_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    feedback: list[trace_pb2.FeedbackRecord] = field(default_factory=list)
    executions: list[trace_pb2.ExecutionRecord] = field(default_factory=list)


def export(
    logs_dir: Path, out_file: Path, include_failed: bool = False, progress: Progress | None = None
) -> ExportSummary:
    """Write one chat-format example per suggestion found in `logs_dir` to `out_file` (JSON lines).

    Examples whose execution failed (non-zero exit, or ended other than by exiting) are left out
    unless `include_failed`. The output is sorted by suggestion time then id, so the same logs
    always give the same bytes; it is written to a temporary file and renamed into place.
    `progress(done_bytes, total_bytes)` is called while the logs are read.
    """
    records = read_logs(logs_dir, progress)
    summary = ExportSummary(
        out_file=out_file,
        files_read=records.files_read,
        records_read=Counter(records.records_read),
        skipped=Counter(records.skipped),
    )
    suggestions = _join(records, summary)
    examples: list[str] = []
    for suggestion in sorted(suggestions, key=lambda s: (s.time, s.sort_id)):
        if suggestion.executions and not include_failed and _failed(suggestion.executions[0]):
            summary.skipped["failed_execution"] += 1
            continue
        example = _example(suggestion)
        examples.append(json.dumps(example, ensure_ascii=False))
        summary.labels[example["label"]] += 1
    _write_atomically(out_file, examples)
    summary.examples_written = len(examples)
    return summary


def _join(records: LogRecords, summary: ExportSummary) -> list[_Suggestion]:
    suggestions: list[_Suggestion] = []
    by_tool_call: dict[str, _Suggestion] = {}
    by_generation: dict[str, trace_pb2.GenerationRecord] = {}
    generations = sorted(records.generations, key=lambda g: (_ts(g.start_time), g.generation_id))
    for generation in generations:
        by_generation[generation.generation_id] = generation
        for call in generation.tool_calls:
            if call.id in by_tool_call:
                summary.skipped["duplicate_tool_call"] += 1
                continue
            found = _command_in(call.arguments)
            if found is None:
                summary.skipped["not_a_command"] += 1
                continue
            key, command, arguments = found
            suggestion = _Suggestion(
                sort_id=call.id,
                time=_ts(generation.start_time, generation.latency.ToNanoseconds()),
                suggested=command,
                sessions=_ids(generation.session_id, generation.context_id),
                generation=generation,
                tool_call=call,
                command_key=key,
                arguments=arguments,
            )
            suggestions.append(suggestion)
            if call.id:
                by_tool_call[call.id] = suggestion

    feedback = sorted(records.feedback, key=lambda f: (_feedback_time(f), f.feedback_id))
    clears = _Clears(feedback)
    rest: list[trace_pb2.FeedbackRecord] = []
    for record in feedback:
        event = record.event
        if event.kind != _FK.FEEDBACK_KIND_SUGGESTION_SHOWN:
            rest.append(record)
        elif event.tool_call_id in by_tool_call:
            shown = by_tool_call[event.tool_call_id]
            shown.known_id = shown.known_id or event.known_id
            shown.sessions |= _ids(event.session_id, event.context_id)
            shown.feedback.append(record)
        elif event.suggested_text.strip():
            matched = by_generation.get(event.generation_id) or _latest_generation(
                generations, _ids(event.session_id, event.context_id), _feedback_time(record), clears
            )
            if matched is None:
                summary.skipped["no_conversation"] += 1
                continue
            suggestions.append(
                _Suggestion(
                    sort_id=record.feedback_id,
                    time=_feedback_time(record),
                    suggested=event.suggested_text,
                    known_id=event.known_id,
                    sessions=_ids(event.session_id, event.context_id, matched.session_id, matched.context_id),
                    generation=matched,
                    feedback=[record],
                )
            )
        else:
            summary.unmatched["feedback"] += 1

    by_cell: dict[str, list[_Suggestion]] = {}
    for suggestion in sorted(suggestions, key=lambda s: (s.time, s.sort_id)):
        if suggestion.known_id:
            by_cell.setdefault(suggestion.known_id, []).append(suggestion)

    for record in rest:
        event = record.event
        target = by_tool_call.get(event.tool_call_id) or _for_cell(
            by_cell, event.known_id, _ids(event.session_id, event.context_id), _feedback_time(record), clears
        )
        if target is None:
            summary.unmatched["feedback"] += 1
        else:
            target.feedback.append(record)

    for execution in sorted(records.executions, key=lambda e: (_ts(e.start_time), e.execution_id)):
        request = execution.request
        target = by_tool_call.get(request.tool_call_id) or _for_cell(
            by_cell, request.known_id, _ids(request.agent_session_id), _ts(execution.start_time), clears
        )
        if target is None:
            summary.unmatched["executions"] += 1
        else:
            target.executions.append(execution)
    return suggestions


def _example(s: _Suggestion) -> dict[str, Any]:
    """The example for one suggestion: conversation, then the command as actually run (or kept)."""
    execution = s.executions[0] if s.executions else None
    decisive = [f for f in s.feedback if f.event.kind in _DECISIVE]
    last = decisive[-1] if decisive else None
    if execution is not None:
        command = _executed_command(execution.request)
        label = ACCEPTED if _same_command(command, s.suggested) else EDITED
    elif last is not None:
        label = _DECISIVE[last.event.kind]
        edited = last.event.edited_text
        command = edited if label == EDITED and edited.strip() else s.suggested
    else:
        label, command = NOT_EXECUTED, s.suggested

    generation = s.generation
    assert generation is not None
    messages = [_chat_message(m) for m in generation.messages]
    if s.tool_call is not None:
        arguments = s.tool_call.arguments
        if command != s.suggested:
            rewritten = dict(s.arguments)
            as_list = isinstance(rewritten[s.command_key], list)
            if as_list and execution is not None and execution.request.argv:
                rewritten[s.command_key] = list(execution.request.argv)
            else:
                rewritten[s.command_key] = shlex.split(command) if as_list else command
            arguments = json.dumps(rewritten, ensure_ascii=False)
        call = {"id": s.tool_call.id, "name": s.tool_call.name, "arguments": arguments}
        messages.append(
            {"role": "assistant", "content": generation.completion, "tool_calls": [_tool_call(call)]}
        )
    else:
        messages.append({"role": "assistant", "content": command})

    event_ids = [f.event for f in s.feedback]
    return {
        "messages": messages,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": _json_or_empty(t.parameters),
                },
            }
            for t in generation.tools
        ],
        "label": label,
        "exit_code": execution.exit_code if execution is not None else None,
        "end_reason": executor_pb2.EndReason.Name(execution.end_reason) if execution is not None else None,
        "suggested": s.suggested,
        "ids": {
            "session_id": generation.session_id
            or next((e.session_id for e in event_ids if e.session_id), ""),
            "context_id": generation.context_id
            or next((e.context_id for e in event_ids if e.context_id), ""),
            "run_id": generation.run_id,
            "generation_id": generation.generation_id,
            "tool_call_id": s.tool_call.id if s.tool_call is not None else "",
            "known_id": s.known_id or (execution.request.known_id if execution is not None else ""),
            "execution_id": execution.execution_id if execution is not None else "",
            "feedback_ids": [f.feedback_id for f in s.feedback],
        },
    }


def _failed(execution: trace_pb2.ExecutionRecord) -> bool:
    return execution.end_reason != executor_pb2.END_REASON_EXITED or execution.exit_code != 0


def _command_in(arguments: str) -> tuple[str, str, dict[str, Any]] | None:
    """The command a tool call's JSON arguments carry: (key, command text, parsed arguments)."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    for key in COMMAND_KEYS:
        value = parsed.get(key)
        if isinstance(value, str) and value.strip():
            return key, value, parsed
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return key, shlex.join(value), parsed
    return None


def _executed_command(request: executor_pb2.ExecuteRequest) -> str:
    return request.script if request.script else shlex.join(request.argv)


def _same_command(a: str, b: str) -> bool:
    """Equal but for line endings and whitespace at line ends and around the whole text."""

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))

    return norm(a) == norm(b)


def _chat_message(m: trace_pb2.ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            _tool_call({"id": c.id, "name": c.name, "arguments": c.arguments}) for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _tool_call(call: dict[str, str]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": call["arguments"]},
    }


def _json_or_empty(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _ids(*ids: str) -> set[str]:
    return {i for i in ids if i}


def _ts(t: Timestamp, plus_nanos: int = 0) -> _Time:
    total = t.seconds * 1_000_000_000 + t.nanos + plus_nanos
    return divmod(total, 1_000_000_000)


def _feedback_time(f: trace_pb2.FeedbackRecord) -> _Time:
    # The server's clock, comparable with generation and execution times; the client's if absent.
    return _ts(f.server_time) if f.HasField("server_time") else _ts(f.event.client_time)


class _Clears:
    """When each session's conversation was cleared (SESSION_CLEARED feedback)."""

    def __init__(self, feedback: list[trace_pb2.FeedbackRecord]) -> None:
        self._times: dict[str, list[_Time]] = {}
        for record in feedback:
            if record.event.kind == _FK.FEEDBACK_KIND_SESSION_CLEARED and record.event.session_id:
                self._times.setdefault(record.event.session_id, []).append(_feedback_time(record))

    def between(self, sessions: set[str], earlier: _Time, later: _Time) -> bool:
        """Whether one of `sessions` was cleared after `earlier` and at or before `later`."""
        return any(earlier < t <= later for s in sessions for t in self._times.get(s, ()))


def _latest_generation(
    generations: list[trace_pb2.GenerationRecord], sessions: set[str], before: _Time, clears: _Clears
) -> trace_pb2.GenerationRecord | None:
    if not sessions:
        return None
    found = None
    for g in generations:
        if _ts(g.start_time) > before:
            break
        if _ids(g.session_id, g.context_id) & sessions:
            found = g
    if found is not None and clears.between(sessions, _ts(found.start_time), before):
        return None
    return found


def _for_cell(
    by_cell: dict[str, list[_Suggestion]], known_id: str, sessions: set[str], at: _Time, clears: _Clears
) -> _Suggestion | None:
    """The latest suggestion for this cell, in a compatible session, made at or before `at`,
    with no clear of the session in between."""
    found = None
    for s in by_cell.get(known_id, []) if known_id else []:
        if s.time > at:
            break
        if not sessions or not s.sessions or sessions & s.sessions:
            found = s
    if found is not None and clears.between(sessions | found.sessions, found.time, at):
        return None
    return found


def _write_atomically(out_file: Path, lines: list[str]) -> None:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", dir=out_file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
        os.replace(tmp, out_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
