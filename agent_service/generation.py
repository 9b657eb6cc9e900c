"""Model calls as the agent makes them: the conversation in the provider's shape, the built-in
tools offered, the GenerationRecord written for every call, and stateless Generate."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.trace import Status, StatusCode

from agent_service import metrics
from agent_service.providers.base import Completion, ModelProvider, ReasoningPiece, TextPiece, TokenCounts
from firebox.agent.v1 import agent_pb2
from firebox.common import tracing
from firebox.common.errors import InvalidArgument
from firebox.common.trainlog import GENERATIONS, TrainingLog
from firebox.trace.v1 import trace_pb2

SHELL_TOOL_NAME = "shell"
SHELL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SHELL_TOOL_NAME,
        "description": (
            "Run a shell command in the session's workspace (a Linux sandbox; files under /workspace). "
            "The shell is persistent: the working directory and exported variables carry over between calls. "
            "Returns the combined output (long output is cut in the middle) and the exit code."
        ),
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "the shell command to run"}},
            "required": ["command"],
        },
    },
}

_ROLE_NAMES = {
    agent_pb2.ROLE_SYSTEM: "system",
    agent_pb2.ROLE_USER: "user",
    agent_pb2.ROLE_ASSISTANT: "assistant",
    agent_pb2.ROLE_TOOL: "tool",
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def provider_messages(system_prompt: str, messages: Iterable[agent_pb2.Message]) -> list[dict[str, Any]]:
    """The conversation as chat-completions messages, every message in order."""
    result: list[dict[str, Any]] = []
    if system_prompt:
        result.append({"role": "system", "content": system_prompt})
    for index, message in enumerate(messages):
        role = _ROLE_NAMES.get(message.role)
        if role is None:
            raise InvalidArgument(f"messages[{index}].role", "must be SYSTEM, USER, ASSISTANT or TOOL")
        entry: dict[str, Any] = {"role": role, "content": message.content}
        if role == "assistant" and message.tool_calls:
            # A message cut short may hold a call cut mid-arguments (it never ran; its result
            # says so): servers that parse the history's arguments get {} for it.
            cut = message.truncated or message.status == agent_pb2.MESSAGE_STATUS_INTERRUPTED
            entry["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": _whole_json(call.arguments) if cut else call.arguments,
                    },
                }
                for call in message.tool_calls
            ]
            entry["content"] = message.content or None
            if message.reasoning_signature:
                # Anthropic's signed thinking goes back with the tool calls it led to.
                entry["reasoning"] = message.reasoning
                entry["reasoning_signature"] = message.reasoning_signature
            if message.redacted_reasoning:
                entry["redacted_reasoning"] = list(message.redacted_reasoning)
        if role == "tool":
            if not message.tool_call_id:
                raise InvalidArgument(
                    f"messages[{index}].tool_call_id", "a TOOL message must name the call it answers"
                )
            entry["tool_call_id"] = message.tool_call_id
        result.append(entry)
    return result


def _whole_json(arguments: str) -> str:
    try:
        json.loads(arguments or "{}")
    except ValueError:
        return "{}"
    return arguments


def usage_proto(counts: TokenCounts | None) -> agent_pb2.Usage:
    if counts is None:
        return agent_pb2.Usage()
    return agent_pb2.Usage(
        input_tokens=counts.input_tokens,
        cached_input_tokens=counts.cached_input_tokens,
        output_tokens=counts.output_tokens,
        reasoning_tokens=counts.reasoning_tokens,
        total_tokens=counts.total_tokens,
        cache_write_tokens=counts.cache_write_tokens,
    )


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


@dataclass
class GenerationTrace:
    """Collects what one model call did, for its GenerationRecord."""

    generation_id: str
    model: str
    messages: list[dict[str, Any]]
    session_id: str = ""
    run_id: str = ""
    context_id: str = ""
    step: int = 0
    # The tools offered in this call (OpenAI function tools).
    tools: list[dict[str, Any]] | None = None
    started_wall: Timestamp = field(default_factory=Timestamp)
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None

    # The model call's span (tracing on): started with the call, ended by record().
    span: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.started_wall.GetCurrentTime()
        self.span = tracing.start_span("model_call", model=self.model, step=self.step)

    def saw_output(self) -> None:
        if self.first_token is None:
            self.first_token = time.monotonic()

    def record(
        self,
        completion: Completion | None,
        error: str = "",
        partial_text: str = "",
    ) -> trace_pb2.GenerationRecord:
        """The record of the call: finished (`completion`), or cut short by `error` with what
        arrived in `partial_text`."""
        now = time.monotonic()
        record = trace_pb2.GenerationRecord(
            generation_id=self.generation_id,
            session_id=self.session_id,
            run_id=self.run_id,
            context_id=self.context_id,
            model=self.model,
            messages=[_chat_message(m) for m in self.messages],
            completion=completion.text if completion else partial_text,
            start_time=self.started_wall,
            latency=_duration(now - self.started),
            error=error,
            step=self.step,
            tools=[chat_tool(t) for t in self.tools or ()],
            finish_reason=completion.finish_reason if completion else "",
            cut_short=completion is None,
        )
        if self.first_token is not None:
            record.time_to_first_token.CopyFrom(_duration(self.first_token - self.started))
        if completion is not None:
            record.tool_calls.extend(
                trace_pb2.ChatToolCall(id=c.id, name=c.name, arguments=c.arguments)
                for c in completion.tool_calls
            )
            if completion.usage is not None:
                u = completion.usage
                record.usage.CopyFrom(
                    trace_pb2.TokenUsage(
                        input_tokens=u.input_tokens,
                        cached_input_tokens=u.cached_input_tokens,
                        output_tokens=u.output_tokens,
                        reasoning_tokens=u.reasoning_tokens,
                        cache_write_tokens=u.cache_write_tokens,
                    )
                )
        # Every model call ends here exactly once, whichever path made it.
        metrics.observe_model_call(record)
        if record.HasField("usage"):
            self.span.set_attribute("input_tokens", record.usage.input_tokens)
            self.span.set_attribute("output_tokens", record.usage.output_tokens)
        if error:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()
        return record


def chat_tool(tool: dict[str, Any]) -> trace_pb2.ChatTool:
    """An OpenAI function tool as the training log records it."""
    function = tool.get("function") or {}
    return trace_pb2.ChatTool(
        name=function.get("name", ""),
        description=function.get("description", ""),
        parameters=json.dumps(function.get("parameters") or {}, sort_keys=True),
    )


def _chat_message(message: dict[str, Any]) -> trace_pb2.ChatMessage:
    return trace_pb2.ChatMessage(
        role=message.get("role", ""),
        content=message.get("content") or "",
        tool_call_id=message.get("tool_call_id", ""),
        tool_calls=[
            trace_pb2.ChatToolCall(
                id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"]
            )
            for c in message.get("tool_calls") or ()
        ],
    )


async def generate(
    provider: ModelProvider,
    log: TrainingLog,
    request: agent_pb2.GenerateRequest,
) -> AsyncIterator[agent_pb2.GenerateResponse]:
    """Stateless Generate: every message of the request goes to the model; deltas and tool calls
    (not run) stream back; only the generation record is kept."""
    if not request.messages:
        raise InvalidArgument("messages", "must hold at least one message")
    for index, message in enumerate(request.messages):
        if message.role == agent_pb2.ROLE_UNSPECIFIED:
            raise InvalidArgument(f"messages[{index}].role", "must be set")
    if request.max_output_tokens < 0:
        raise InvalidArgument("max_output_tokens", "must be zero (the server's default) or more")
    model = provider.resolve_model(request.model)
    messages = provider_messages("", request.messages)
    tools = [SHELL_TOOL] if request.enable_tools else None
    trace = GenerationTrace(new_id("gen"), model, messages, context_id=request.context_id, tools=tools)
    first = True
    completion: Completion | None = None
    text: list[str] = []
    error = ""
    try:
        # Not restartable: a failure after text was sent fails the call (the client has no way
        # to be told to drop what it got).
        async for event in provider.stream(
            messages, model, tools, max_output_tokens=request.max_output_tokens
        ):
            response = agent_pb2.GenerateResponse()
            if isinstance(event, TextPiece):
                trace.saw_output()
                text.append(event.text)
                response.text_delta.text = event.text
            elif isinstance(event, ReasoningPiece):
                trace.saw_output()
                response.reasoning_delta.text = event.text
            elif isinstance(event, Completion):
                completion = event
                continue
            else:
                continue
            if first:
                response.generation_id, first = trace.generation_id, False
            yield response
        assert completion is not None
        tail: list[agent_pb2.GenerateResponse] = [
            agent_pb2.GenerateResponse(
                tool_call=agent_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments)
            )
            for c in completion.tool_calls
        ]
        if completion.usage is not None:
            tail.append(agent_pb2.GenerateResponse(usage=usage_proto(completion.usage)))
        if not tail:
            # Something carries the finish reason (and, if the model said nothing at all, the
            # generation id).
            tail.append(agent_pb2.GenerateResponse(text_delta=agent_pb2.TextDelta(text="")))
        tail[-1].finish_reason = completion.finish_reason
        for response in tail:
            if first:
                response.generation_id, first = trace.generation_id, False
            yield response
    except BaseException as exc:
        error = getattr(exc, "message", None) or repr(exc)
        raise
    finally:
        log.write(GENERATIONS, trace.record(completion, error=error, partial_text="".join(text)))
