"""The model's context: what it is given from the stored history, how big that is, and compaction.

The stored history keeps every message. A compaction appends a marker (a SYSTEM message whose
`compaction` is set and whose content is the model's handoff summary); from then on the model is
given the system prompt, the user messages the marker names (the most recent ones, word for
word, within a token budget), the summary, and whatever came after the marker.

Token counts are estimates (about four characters a token) unless the provider reported usage;
the estimate errs on the large side, which only makes compaction come a little early.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent_service.connections import Connection
from agent_service.generation import GenerationTrace, new_id, provider_messages
from agent_service.providers.base import Completion, ContextLengthExceeded, TextPiece
from firebox.agent.v1 import agent_pb2
from firebox.common.errors import FailedPrecondition
from firebox.common.logging import get_logger
from firebox.common.trainlog import GENERATIONS, TrainingLog

log = get_logger("firebox.agent.context")

CHARS_PER_TOKEN = 4
# Per-message framing the provider adds (role, separators), in tokens.
_MESSAGE_OVERHEAD_TOKENS = 4
SUMMARY_PREFIX = "Summary of the conversation so far (a handoff written when the context was compacted):\n\n"
SUMMARY_INSTRUCTIONS = (
    "The conversation is about to be compacted: you will continue this work with no memory of it "
    "except what you write now. Write a structured handoff summary with these sections, in this order:\n"
    "## Goal\n## Progress\n## Step in progress (exactly what was being done at this moment, so it is "
    "not redone or lost)\n## Decisions\n## Constraints\n## Next steps\n"
    "Be concrete: name files, commands, results and errors. Do not call tools."
)


def estimate_tokens(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()) -> int:
    """About four characters a token over everything sent, plus a little per message."""
    chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
    chars += sum(len(json.dumps(t, ensure_ascii=False)) for t in tools)
    return chars // CHARS_PER_TOKEN + _MESSAGE_OVERHEAD_TOKENS * len(messages)


def model_view(stored: Sequence[agent_pb2.Message]) -> list[agent_pb2.Message]:
    """The messages the model is given, from the stored history (see the module's docstring)."""
    marker_at = -1
    for index in range(len(stored) - 1, -1, -1):
        if stored[index].HasField("compaction"):
            marker_at = index
            break
    if marker_at < 0:
        return _without_superseded(stored)
    marker = stored[marker_at]
    by_id = {m.id: m for m in stored[:marker_at]}
    kept = [by_id[i] for i in marker.compaction.kept_user_message_ids if i in by_id]
    summary = agent_pb2.Message(
        id=marker.id,
        role=agent_pb2.ROLE_USER,
        content=SUMMARY_PREFIX + marker.content,
        status=agent_pb2.MESSAGE_STATUS_COMPLETE,
    )
    summary.compaction.CopyFrom(marker.compaction)
    return [*kept, summary, *_without_superseded(stored[marker_at + 1 :])]


def _without_superseded(messages: Sequence[agent_pb2.Message]) -> list[agent_pb2.Message]:
    """The messages minus assistant answers a retry superseded: an interrupted assistant message
    (no tool calls) directly followed by another assistant message is the partial text of a
    call that failed and was made again (a ModelRetry event); the model sees only the retry.
    One that ends the history is a call being made again now (a run taken over by another
    replica, RunResumed): the model is asked afresh, not shown its own broken-off start."""
    kept: list[agent_pb2.Message] = []
    for index, message in enumerate(messages):
        if (
            message.role == agent_pb2.ROLE_ASSISTANT
            and message.status == agent_pb2.MESSAGE_STATUS_INTERRUPTED
            and not message.tool_calls
            and (index + 1 == len(messages) or messages[index + 1].role == agent_pb2.ROLE_ASSISTANT)
        ):
            continue
        kept.append(message)
    return kept


def _drop_oldest(view: list[agent_pb2.Message]) -> list[agent_pb2.Message]:
    """The view without its oldest item; a dropped assistant takes its tool results along, so the
    rest stays a valid conversation."""
    if not view:
        return view
    first, rest = view[0], view[1:]
    if first.role == agent_pb2.ROLE_ASSISTANT and first.tool_calls:
        answered = {c.id for c in first.tool_calls}
        rest = [m for m in rest if not (m.role == agent_pb2.ROLE_TOOL and m.tool_call_id in answered)]
    while rest and rest[0].role == agent_pb2.ROLE_TOOL:
        rest = rest[1:]
    return rest


def recent_user_messages(view: Sequence[agent_pb2.Message], budget_tokens: int) -> list[agent_pb2.Message]:
    """The newest user messages whose estimated size fits the budget, in conversation order."""
    kept: list[agent_pb2.Message] = []
    used = 0
    for message in reversed(view):
        if message.role != agent_pb2.ROLE_USER or message.HasField("compaction"):
            continue
        cost = len(message.content) // CHARS_PER_TOKEN + _MESSAGE_OVERHEAD_TOKENS
        if used + cost > budget_tokens:
            break
        used += cost
        kept.append(message)
    kept.reverse()
    return kept


@dataclass(frozen=True)
class CompactionResult:
    marker: agent_pb2.Message
    tokens_before: int
    tokens_after: int


class Compactor:
    """Asks the model for a handoff summary and builds the marker that replaces the history."""

    # How many times a summary call that overflows is retried with the oldest item dropped.
    MAX_OVERFLOW_RETRIES = 64

    def __init__(self, training_log: TrainingLog, keep_user_tokens: int) -> None:
        self._log = training_log
        self._keep_user_tokens = keep_user_tokens

    async def summarize(
        self,
        *,
        system_prompt: str,
        stored: Sequence[agent_pb2.Message],
        connection: Connection,
        model: str,
        tools_tokens: int,
        session_id: str,
        run_id: str = "",
        on_delta: Callable[[str], Awaitable[None] | None] | None = None,
        reported_tokens: int = 0,
    ) -> CompactionResult:
        """Write the summary (retrying without the oldest items while it overflows) and return the
        marker message to append; nothing is stored here."""
        view = model_view(stored)
        # The provider's own count of the context, when it gave one, beats the estimate.
        before = max(estimate_tokens(provider_messages(system_prompt, view)) + tools_tokens, reported_tokens)
        attempt_view = list(view)
        summary = ""
        for attempt in range(self.MAX_OVERFLOW_RETRIES + 1):
            if not attempt_view:
                raise FailedPrecondition(
                    "cannot compact: the summary call overflows the model's window even with every "
                    "earlier item dropped"
                )
            messages = provider_messages(system_prompt, attempt_view)
            messages.append({"role": "user", "content": SUMMARY_INSTRUCTIONS})
            trace = GenerationTrace(
                new_id("gen"),
                model,
                messages,
                session_id=session_id,
                run_id=run_id,
                connection=connection.name,
            )
            pieces: list[str] = []
            completion: Completion | None = None
            try:
                async for event in connection.provider.stream(messages, model, None):
                    if isinstance(event, TextPiece):
                        trace.saw_output()
                        pieces.append(event.text)
                        if on_delta is not None:
                            maybe = on_delta(event.text)
                            if maybe is not None:
                                await maybe
                    elif isinstance(event, Completion):
                        completion = event
            except ContextLengthExceeded as exc:
                self._log.write(GENERATIONS, trace.record(None, error=exc.message))
                log.info("compaction_summary_overflowed", session_id=session_id, attempt=attempt + 1)
                attempt_view = _drop_oldest(attempt_view)
                continue
            self._log.write(GENERATIONS, trace.record(completion))
            summary = (completion.text if completion else "".join(pieces)).strip()
            break
        else:
            raise FailedPrecondition(
                f"cannot compact: the summary call still overflowed after {self.MAX_OVERFLOW_RETRIES} retries"
            )
        if not summary:
            raise FailedPrecondition("cannot compact: the model returned an empty summary")
        kept = recent_user_messages(view, self._keep_user_tokens)
        marker = agent_pb2.Message(
            id=new_id("msg"),
            role=agent_pb2.ROLE_SYSTEM,
            content=summary,
            status=agent_pb2.MESSAGE_STATUS_COMPLETE,
            run_id=run_id,
        )
        marker.create_time.GetCurrentTime()
        marker.compaction.kept_user_message_ids.extend(m.id for m in kept)
        after_view = model_view([*stored, marker])
        after = estimate_tokens(provider_messages(system_prompt, after_view)) + tools_tokens
        marker.compaction.tokens_before = before
        marker.compaction.tokens_after = after
        return CompactionResult(marker, before, after)
