"""Anthropic's Messages API, streamed, through the official `anthropic` SDK.

The conversation arrives in the shared chat shape and is sent in the Messages shape: system
messages go to `system`, tool results become `tool_result` blocks in a user turn, an assistant
turn is its signed thinking block (when it called tools), its text and its `tool_use` blocks,
and consecutive turns of one role are merged (the API wants them alternating).

The stream is the SDK's: its SSE decoder drops `ping` events and raises `error` events
(`overloaded_error` mid-stream) as APIStatusError; events are read as plain dicts (`cast_to=
object`, as the OpenAI module does) rather than built into typed models for every token.
`content_block_delta` events carry the pieces: `text_delta`, `thinking_delta` (relayed as
reasoning), `signature_delta`, `input_json_delta` (a tool call's arguments, assembled).
Usage comes in `message_start` (input, cache reads and writes) and `message_delta` (output);
`stop_reason` is mapped onto the shared finish words (`max_tokens` -> length).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from agent_service.providers.base import (
    FINISH_LENGTH,
    FINISH_REFUSAL,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    MAX_ERROR_CHARS,
    AttemptState,
    Completion,
    ContextLengthExceeded,
    Failure,
    ModelProvider,
    ModelRequest,
    ProviderEvent,
    ProviderSettings,
    ReasoningPiece,
    StreamFailed,
    TextPiece,
    TokenCounts,
    ToolCallBuilder,
    overflow,
    read_timeout,
    retry_after,
)
from firebox.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.provider.anthropic")

# stop_reason -> the shared finish words.
_STOP_REASONS = {
    "end_turn": FINISH_STOP,
    "stop_sequence": FINISH_STOP,
    "pause_turn": FINISH_STOP,
    "tool_use": FINISH_TOOL_CALLS,
    "max_tokens": FINISH_LENGTH,
    "model_context_window_exceeded": FINISH_LENGTH,
    "refusal": FINISH_REFUSAL,
}
# Error types (the `error.type` of a body or an `error` event) worth another attempt.
_RETRYABLE_TYPES = ("overloaded_error", "api_error", "rate_limit_error", "timeout_error")
# The smallest thinking budget the API accepts.
MIN_THINKING_BUDGET = 1024


class _StreamEndedEarly(Exception):
    """The stream closed before `message_stop`."""


class AnthropicMessagesProvider(ModelProvider):
    """Streams messages from Anthropic's API (or a server or proxy speaking it)."""

    key_hint = "FIREBOX_PROVIDER_API_KEY / ANTHROPIC_API_KEY"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._client: anthropic.AsyncAnthropic | None = None
        if settings.configured:
            timeout = httpx2.Timeout(read_timeout(settings), connect=settings.connect_timeout)
            try:
                # aiohttp's C parser, for the reason the OpenAI module gives.
                http_client: httpx2.AsyncClient | None = anthropic.DefaultAioHttpClient(timeout=timeout)
            except RuntimeError:
                http_client = None
            self._client = anthropic.AsyncAnthropic(
                base_url=settings.base_url or None,
                # A local server or proxy may need no key, but the SDK wants one.
                api_key=settings.api_key or "unused",
                max_retries=0,
                timeout=timeout,
                http_client=http_client,
            )

    @property
    def target(self) -> str:
        return self.settings.base_url or "https://api.anthropic.com"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        system, messages = messages_shape(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "messages": messages,
            "stream": True,
        }
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [tool_shape(t) for t in request.tools]
        budget = min(self.settings.thinking_budget, request.max_output_tokens - 1)
        if self.settings.thinking_budget and budget >= MIN_THINKING_BUDGET:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return body

    async def _attempt(self, request: ModelRequest, state: AttemptState) -> AsyncIterator[ProviderEvent]:
        assert self._client is not None
        state.reading = True
        try:
            stream = await self._client.post(
                "/v1/messages",
                cast_to=object,
                body=self._body(request),
                stream=True,
                stream_cls=anthropic.AsyncStream[object],
            )
        finally:
            state.reading = False
        events = stream.__aiter__()
        text: list[str] = []
        reasoning: list[str] = []
        signature: list[str] = []
        # Content blocks by index: which are tool calls (their builders are state.calls).
        kinds: dict[int, str] = {}
        completion = Completion()
        usage = TokenCounts()
        counted = False
        finished = False
        try:
            while True:
                state.reading = True
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                finally:
                    state.reading = False
                if not isinstance(event, dict):
                    continue
                kind = event.get("type")
                if kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    delta_kind = delta.get("type")
                    if delta_kind == "signature_delta":
                        state.fed()
                        signature.append(delta.get("signature") or "")
                        continue
                    state.piece()
                    if state.over_limit:
                        # The server ignores max_tokens: stop where it would have (the piece past
                        # the limit is not relayed).
                        log.warning("provider_ignored_output_limit", limit=request.max_output_tokens)
                        completion.finish_reason, finished = FINISH_LENGTH, True
                        break
                    if delta_kind == "text_delta":
                        piece = delta.get("text") or ""
                        if piece:
                            text.append(piece)
                            yield TextPiece(piece)
                    elif delta_kind == "thinking_delta":
                        piece = delta.get("thinking") or ""
                        if piece:
                            reasoning.append(piece)
                            yield ReasoningPiece(piece)
                    elif delta_kind == "input_json_delta":
                        builder = state.calls.get(event.get("index", 0))
                        if builder is not None:
                            builder.arguments.append(delta.get("partial_json") or "")
                elif kind == "content_block_start":
                    state.fed()
                    block = event.get("content_block") or {}
                    index = event.get("index", 0)
                    kinds[index] = block.get("type", "")
                    if block.get("type") == "tool_use":
                        state.calls[index] = ToolCallBuilder(block.get("id") or "", block.get("name") or "")
                    elif block.get("type") == "thinking" and block.get("signature"):
                        signature.append(block["signature"])
                elif kind == "message_start":
                    state.fed()
                    counted = _add_usage(usage, (event.get("message") or {}).get("usage")) or counted
                elif kind == "message_delta":
                    state.fed()
                    reason = (event.get("delta") or {}).get("stop_reason")
                    if reason:
                        completion.finish_reason = _STOP_REASONS.get(reason, reason)
                    counted = _add_usage(usage, event.get("usage")) or counted
                elif kind == "message_stop":
                    finished = True
                    break
        finally:
            await stream.close()
        if not finished:
            raise _StreamEndedEarly("the provider's stream ended before the model finished its answer")
        completion.finish_reason = completion.finish_reason or FINISH_STOP
        completion.text = "".join(text)
        completion.reasoning = "".join(reasoning)
        completion.reasoning_signature = "".join(signature)
        completion.tool_calls = [
            # A call with no arguments streams no input_json_delta: its input is {}.
            _with_default_input(call)
            for call in state.open_tool_calls()
        ]
        if counted:
            usage.total_tokens = usage.input_tokens + usage.output_tokens
            completion.usage = usage
        yield completion

    def _failure(self, exc: Exception, request: ModelRequest, tries: str) -> Failure:
        if isinstance(exc, anthropic.APIStatusError):
            detail, kind = _error_detail(exc)
            status = exc.status_code
            if status == 200:
                # An `error` event mid-stream (overloaded_error, api_error ...).
                return Failure(
                    StreamFailed(f"model provider reported {kind or 'an error'} mid-stream{tries}: {detail}"),
                    retryable=kind in _RETRYABLE_TYPES,
                    retry_after=retry_after(exc.response.headers),
                )
            if status == 429 or kind == "rate_limit_error":
                return Failure(
                    ResourceExhausted(f"model provider rate limit{tries}: {detail}"),
                    retryable=True,
                    retry_after=retry_after(exc.response.headers),
                )
            if status >= 500 or kind in _RETRYABLE_TYPES:
                return Failure(
                    Unavailable(
                        f"model provider unavailable (HTTP {status}, {kind or 'error'}){tries}: {detail}"
                    ),
                    retryable=True,
                    retry_after=retry_after(exc.response.headers),
                )
            if status in (401, 403):
                return Failure(
                    FailedPrecondition(
                        f"model provider refused the credentials (HTTP {status}): {detail}; check {self.key_hint}"
                    )
                )
            if status in (400, 413) and overflow(detail):
                return Failure(ContextLengthExceeded(f"HTTP {status}: {detail}"))
            return Failure(
                InvalidArgument("", f"model provider rejected the request (HTTP {status}): {detail}")
            )
        if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
            return Failure(
                StreamFailed(f"model provider sent no tokens for {self.settings.idle_timeout:g} s{tries}"),
                retryable=True,
            )
        if isinstance(exc, (anthropic.APIConnectionError, httpx2.RequestError)):
            # Reading the body, the SDK's stream lets the transport's errors through unwrapped.
            cause = exc.__cause__ or exc
            return Failure(
                StreamFailed(f"cannot reach the model provider at {self.target}{tries}: {cause}"),
                retryable=True,
            )
        if isinstance(exc, _StreamEndedEarly):
            return Failure(StreamFailed(f"{exc}{tries}"), retryable=True)
        if isinstance(exc, json.JSONDecodeError):
            return Failure(
                StreamFailed(f"model provider sent a malformed stream event: {exc.msg} in {exc.doc[:200]!r}")
            )
        if isinstance(exc, anthropic.APIError):
            return Failure(StreamFailed(f"model provider call failed: {exc.message[:MAX_ERROR_CHARS]}"))
        return Failure(Unavailable(f"model provider call failed: {exc!r}"))


def _with_default_input(call: Any) -> Any:
    if not call.arguments.strip():
        call.arguments = "{}"
    return call


def _add_usage(usage: TokenCounts, counts: Any) -> bool:
    """Fold one event's usage in; input counts come once (message_start), output is cumulative."""
    if not isinstance(counts, dict):
        return False
    read = int(counts.get("cache_read_input_tokens") or 0)
    written = int(counts.get("cache_creation_input_tokens") or 0)
    if "input_tokens" in counts and counts.get("input_tokens") is not None:
        usage.input_tokens = int(counts["input_tokens"]) + read + written
    if read or written:
        usage.cached_input_tokens, usage.cache_write_tokens = read, written
    if counts.get("output_tokens") is not None:
        usage.output_tokens = int(counts["output_tokens"])
    return True


def _error_detail(exc: anthropic.APIStatusError) -> tuple[str, str]:
    """The error's message and type from its body ({"type": "error", "error": {type, message}})."""
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or exc.message)[:MAX_ERROR_CHARS], str(error.get("type") or "")
    return exc.message[:MAX_ERROR_CHARS], ""


def tool_shape(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic tool."""
    function = tool.get("function") or {}
    return {
        "name": function.get("name", ""),
        "description": function.get("description", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the `input` object; a call cut mid-arguments (it never ran, and
    its result says so) goes back as {}."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def messages_shape(chat: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The chat-shape conversation as (system, messages) in the Messages shape."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in chat:
        role = message.get("role")
        content = message.get("content") or ""
        if role == "system":
            if content:
                system.append(content)
        elif role == "user":
            add("user", [{"type": "text", "text": content}] if content else [])
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": content or "(no output)",
                    }
                ],
            )
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            calls = message.get("tool_calls") or []
            if calls and message.get("reasoning_signature"):
                blocks.append(
                    {
                        "type": "thinking",
                        "thinking": message.get("reasoning") or "",
                        "signature": message["reasoning_signature"],
                    }
                )
            if content:
                blocks.append({"type": "text", "text": content})
            for call in calls:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": _input(function.get("arguments", "")),
                    }
                )
            add("assistant", blocks)
    return "\n\n".join(system), turns
