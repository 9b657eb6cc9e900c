"""What every model provider shares, whatever its wire format: the events a model call streams,
the one retry layer, the idle watch that ends a stalled stream, and the error shapes.

A wire format (OpenAI chat completions, Anthropic Messages) is one module that subclasses
`ModelProvider` and implements `_attempt` (one HTTP call, streamed) and `_failure` (how its
SDK's errors are classified). Callers hold a `ModelProvider` and never learn which it is.

The conversation handed to `stream` is in the chat-completions shape (generation.py builds it),
with one extension the OpenAI module strips: an assistant message may carry
`reasoning_signature` (and `reasoning`) and `redacted_reasoning`, which the Anthropic module sends
back as its signed thinking and redacted_thinking blocks.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from firebox.common.errors import (
    FailedPrecondition,
    FireboxError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from firebox.common.logging import get_logger

log = get_logger("firebox.agent.provider")

# The most characters of a provider's error message carried into a status.
MAX_ERROR_CHARS = 2000
# The wire formats a provider may speak (--provider).
OPENAI = "openai"
ANTHROPIC = "anthropic"
WIRE_FORMATS = (OPENAI, ANTHROPIC)

# Why a model call ended, the same words whatever the wire format (OpenAI's finish_reason; the
# Anthropic module maps its stop_reason onto these).
FINISH_STOP = "stop"
# The output reached max_output_tokens: the answer (and any tool call in it) is cut.
FINISH_LENGTH = "length"
FINISH_TOOL_CALLS = "tool_calls"
FINISH_CONTENT_FILTER = "content_filter"
FINISH_REFUSAL = "refusal"


class ContextLengthExceeded(InvalidArgument):
    """The provider refused the request because it does not fit the model's context window."""

    def __init__(self, detail: str) -> None:
        super().__init__("messages", f"the conversation does not fit the model's context window: {detail}")


# Words providers use when a request is longer than the window (OpenAI, vLLM, llama.cpp, Ollama,
# Anthropic, LiteLLM).
OVERFLOW_MARKERS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the context",
)


@dataclass(frozen=True)
class TextPiece:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class ReasoningPiece:
    """A piece of the model's reasoning, when the server sends it."""

    text: str


@dataclass(frozen=True)
class Restarted:
    """The stream failed after text was relayed and the call starts again from the beginning:
    what was relayed so far is superseded (the caller closes it as cut short and streams the
    new attempt as a new message)."""

    attempt: int
    delay_seconds: float
    reason: str


@dataclass
class AssembledToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class TokenCounts:
    # Every input token, cached or not (OpenAI's prompt_tokens; Anthropic's three counts summed).
    input_tokens: int = 0
    # Of those, read from the provider's prompt cache, and written to it (Anthropic).
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0


@dataclass
class Completion:
    """The end of one model call: everything assembled, usage if the server sent it."""

    text: str = ""
    reasoning: str = ""
    # Anthropic's signature over the reasoning, sent back with it when the message called tools.
    reasoning_signature: str = ""
    # Anthropic's redacted_thinking blocks (their data), sent back like the signed reasoning.
    redacted_reasoning: list[str] = field(default_factory=list)
    tool_calls: list[AssembledToolCall] = field(default_factory=list)
    # One of the FINISH_* words (or what an unusual server said).
    finish_reason: str = ""
    usage: TokenCounts | None = None

    @property
    def truncated(self) -> bool:
        """The output hit the output-token limit: the text, and any tool call, may be cut."""
        return self.finish_reason == FINISH_LENGTH


ProviderEvent = TextPiece | ReasoningPiece | Restarted | Completion


class StreamFailed(Unavailable):
    """The stream broke after the response began (stalled, cut, ended early, an error event):
    a transport failure. `open_tool_calls` holds the calls the model had begun, as far as they
    arrived; they must never run."""

    def __init__(self, message: str, open_tool_calls: list[AssembledToolCall] | None = None) -> None:
        super().__init__(message)
        self.open_tool_calls = open_tool_calls or []


@dataclass(frozen=True)
class ProviderSettings:
    """One provider connection: its wire format, where it is, its key, its defaults."""

    wire_format: str = OPENAI
    base_url: str = ""
    api_key: str = ""
    default_model: str = ""
    # A stream that carries no model data (deltas, tool-call fragments, usage) for this long
    # fails; keep-alive comments, pings and empty events do not count.
    idle_timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 3
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    # Output tokens asked of one model call when the caller does not say.
    max_output_tokens: int = 16_384
    # Anthropic extended thinking: the budget in tokens (0: off).
    thinking_budget: int = 0

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)


def read_timeout(settings: ProviderSettings) -> float:
    """The HTTP read timeout under the idle watch: a backstop for a socket that goes silent, a
    little longer than the idle timeout so that the watch, which words the failure, fires first."""
    return settings.idle_timeout + 1.0


@dataclass
class Failure:
    """How one failed attempt is handled."""

    error: FireboxError
    retryable: bool = False
    retry_after: float | None = None
    # The module changed the request to suit the server (dropped an option it refused): try
    # again at once, without counting a retry.
    adjusted: bool = False


class ToolCallBuilder:
    """Joins a tool call's fragments as they arrive."""

    def __init__(self, id: str = "", name: str = "") -> None:
        self.id = id
        self.name = name
        self.arguments: list[str] = []

    def assembled(self, index: int) -> AssembledToolCall:
        return AssembledToolCall(
            id=self.id or f"call_{index}_{int(time.time() * 1000)}",
            name=self.name,
            arguments="".join(self.arguments),
        )


class Stall(Exception):
    """No model data for the idle timeout."""


class StreamEndedEarly(Exception):
    """The stream closed before the model said it was finished (no finish reason, no
    message_stop): a transport failure, retried."""

    def __init__(self) -> None:
        super().__init__("the provider's stream ended before the model finished its answer")


class AttemptState:
    """One attempt's bookkeeping, shared by the wire module and the retry loop.

    The idle watch: a timer that cancels the streaming task when no model data has come for
    `idle` seconds, but only while the task is waiting on the server (`reading`): a caller that
    is slow to take the events (a client under flow control) is not the server's silence. The
    wire module sets `reading` around each read and calls `fed()` for each piece of model data;
    `fed` also counts pieces, which bounds output the server does not (`over_limit`)."""

    def __init__(self, idle: float, max_pieces: int) -> None:
        self.idle = idle
        self.max_pieces = max_pieces
        self.pieces = 0
        self.reading = False
        self.fired = False
        self.calls: dict[int, ToolCallBuilder] = {}
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self.last + idle, self._check)

    def fed(self) -> None:
        """Model data arrived."""
        self.last = self._loop.time()

    def piece(self) -> None:
        """A piece of output (text, reasoning, tool-call arguments) arrived."""
        self.last = self._loop.time()
        self.pieces += 1

    @property
    def over_limit(self) -> bool:
        """More pieces than the output-token limit allows (every piece is at least one token):
        the server ignores max_tokens."""
        return self.max_pieces > 0 and self.pieces > self.max_pieces

    def _check(self) -> None:
        now = self._loop.time()
        due = self.last + self.idle
        if now < due:
            self._handle = self._loop.call_at(due, self._check)
        elif self.reading and self._task is not None:
            self.fired = True
            self._handle = None
            self._task.cancel()
        else:
            # The caller is busy with what arrived: look again a little later.
            self._handle = self._loop.call_at(now + min(self.idle, 1.0), self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def took_cancel(self) -> bool:
        """After a CancelledError: whether the watch caused it alone (then it is taken back)."""
        if not self.fired or self._task is None:
            return False
        self.fired = False
        return self._task.uncancel() == 0

    def open_tool_calls(self) -> list[AssembledToolCall]:
        return [b.assembled(i) for i, b in sorted(self.calls.items())]


@dataclass(frozen=True)
class ModelRequest:
    messages: list[dict[str, Any]]
    model: str
    tools: list[dict[str, Any]] | None
    max_output_tokens: int


class ModelProvider(abc.ABC):
    """Streams model calls from one endpoint; the wire format is the subclass's."""

    # For messages: the variables the key may come from.
    key_hint = "FIREBOX_PROVIDER_API_KEY"

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return self.settings.configured

    @property
    @abc.abstractmethod
    def target(self) -> str: ...

    def resolve_model(self, requested: str) -> str:
        """The model to call: the one asked for, else the default; FAILED_PRECONDITION if neither."""
        self.require_configured()
        model = requested or self.settings.default_model
        if not model:
            raise FailedPrecondition(
                "no model given and no default model configured: set --model or FIREBOX_MODEL, or the "
                "session's settings.model"
            )
        return model

    def require_configured(self) -> None:
        if not self.configured:
            raise FailedPrecondition(
                "no model provider configured: set --provider-base-url (FIREBOX_PROVIDER_BASE_URL) for a "
                f"local or proxy server, or {self.key_hint} for the provider's own API"
            )

    async def close(self) -> None:
        """Release connections (a subclass holding a client closes it; by default there is none)."""
        return None

    async def stream(
        self,
        messages: list[dict[str, Any]],
        model: str,
        tools: list[dict[str, Any]] | None = None,
        *,
        max_output_tokens: int = 0,
        restartable: bool = False,
    ) -> AsyncIterator[ProviderEvent]:
        """Stream one model call: text and reasoning pieces as they come, then one Completion.

        The one retry layer: 429, 5xx, connection failures, stalls and streams that end early
        are retried with exponential backoff and jitter, honouring Retry-After. Before any
        text was relayed a retry is invisible; after, it happens only when `restartable` (the
        caller can supersede what it relayed, on a `Restarted` event), else the failure is
        raised. Failures leave as `firebox.common.errors`, carrying the provider's message."""
        self.require_configured()
        request = ModelRequest(messages, model, tools, max_output_tokens or self.settings.max_output_tokens)
        attempt = 0
        while True:
            produced = False
            state = AttemptState(self.settings.idle_timeout, request.max_output_tokens)
            try:
                try:
                    async for event in self._attempt(request, state):
                        if not produced and not isinstance(event, Completion):
                            produced = True
                        yield event
                    return
                except asyncio.CancelledError:
                    if not state.took_cancel():
                        raise
                    raise Stall() from None
            except FireboxError:
                raise
            except Exception as exc:
                failure = self._classify(exc, state, request, attempt)
            finally:
                state.stop()
            if failure.adjusted:
                continue
            if not failure.retryable or attempt >= self.settings.retries or (produced and not restartable):
                raise failure.error from None
            delay = self._delay(attempt, failure.retry_after)
            attempt += 1
            log.info(
                "provider_retry", attempt=attempt, delay_seconds=round(delay, 3), error=failure.error.message
            )
            if produced:
                yield Restarted(attempt, delay, failure.error.message)
            await asyncio.sleep(delay)

    def _classify(self, exc: Exception, state: AttemptState, request: ModelRequest, attempt: int) -> Failure:
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        if isinstance(exc, Stall) or (state.fired and state.took_cancel()):
            # (A library that turned the watch's cancel into an error of its own: still a stall,
            # and the cancel is taken back.)
            failure = self._silent(tries)
        elif isinstance(exc, StreamEndedEarly):
            failure = Failure(StreamFailed(f"{exc}{tries}"), retryable=True)
        else:
            failure = self._failure(exc, request, tries)
        if isinstance(failure.error, StreamFailed) and not failure.error.open_tool_calls:
            failure.error.open_tool_calls = state.open_tool_calls()
        return failure

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.settings.retry_max_delay)
        backoff = min(self.settings.retry_base_delay * (2**attempt), self.settings.retry_max_delay)
        # Full jitter between half and all of the backoff, so clients that failed together spread out.
        result: float = backoff * (0.5 + random.random() / 2)
        return result

    def _silent(self, tries: str) -> Failure:
        """No tokens for the idle timeout (the watch fired, or the socket's read timeout)."""
        return Failure(
            StreamFailed(f"model provider sent no tokens for {self.settings.idle_timeout:g} s{tries}"),
            retryable=True,
        )

    def _unreachable(self, cause: BaseException, tries: str) -> Failure:
        return Failure(
            StreamFailed(f"cannot reach the model provider at {self.target}{tries}: {cause}"), retryable=True
        )

    def _http_failure(
        self, status: int, detail: str, headers: Mapping[str, str], tries: str, kind: str = ""
    ) -> Failure:
        """What an HTTP error status stands for, whatever the wire; `kind` is the provider's
        error type when it has one (Anthropic's overloaded_error ...)."""
        named = f", {kind}" if kind else ""
        if status == 429:
            return Failure(
                ResourceExhausted(f"model provider rate limit{tries}: {detail}"),
                retryable=True,
                retry_after=retry_after(headers),
            )
        if status >= 500:
            return Failure(
                Unavailable(f"model provider unavailable (HTTP {status}{named}){tries}: {detail}"),
                retryable=True,
                retry_after=retry_after(headers),
            )
        if status in (401, 403):
            return Failure(
                FailedPrecondition(
                    f"model provider refused the credentials (HTTP {status}): {detail}; check {self.key_hint}"
                )
            )
        if status in (400, 413, 422) and overflow(detail):
            return Failure(ContextLengthExceeded(f"HTTP {status}: {detail}"))
        return Failure(InvalidArgument("", f"model provider rejected the request (HTTP {status}): {detail}"))

    @abc.abstractmethod
    def _attempt(self, request: ModelRequest, state: AttemptState) -> AsyncIterator[ProviderEvent]:
        """One HTTP call, streamed: pieces as they come, then the Completion."""

    @abc.abstractmethod
    def _failure(self, exc: Exception, request: ModelRequest, tries: str) -> Failure:
        """What the wire's SDK raised, as a Failure."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, retry-after as seconds or a date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def overflow(detail: str) -> bool:
    lowered = detail.lower()
    return any(m in lowered for m in OVERFLOW_MARKERS)


# Words servers use when they refuse a request field they do not know or support.
_REFUSAL_WORDS = (
    "unsupported",
    "not supported",
    "unrecognized",
    "unknown",
    "extra inputs are not permitted",
    "extra_forbidden",
    "not allowed",
    "not permitted",
    "invalid parameter",
)


def refuses_field(text: str, name: str) -> bool:
    """A 400's text says the server does not accept the field `name`."""
    lowered = text.lower()
    return name in lowered and any(w in lowered for w in _REFUSAL_WORDS)
